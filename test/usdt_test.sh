#!/usr/bin/env bash
# usdt_test: libusvm.so carries the documented USDT probes, and bpftrace
# attached to them sees the faults and migrations of `usvm run stream`.
# Skips (77) with the reason when the build had no <sys/sdt.h>, bpftrace is
# missing or the user may not load BPF programs; CI installs both.
# Usage: usdt_test.sh LIBUSVM_SO USVM_CLI
set -u
lib=$1 cli=$2
skip() { echo "usdt_test: skip: $*"; exit 77; }
fail() { echo "usdt_test: FAIL: $*"; exit 1; }

command -v readelf >/dev/null || skip "readelf missing (binutils)"
probes=$(readelf -n "$lib" | awk '/Provider: usvm/ { getline; print $2 }' | sort -u)
[ -n "$probes" ] || skip "$lib has no stapsdt notes (built without <sys/sdt.h>: install systemtap-sdt-dev)"
for p in cpu_fault device_fault migrate populate invalidate unbind; do
	echo "$probes" | grep -qx "$p" || fail "probe usvm:$p missing from $lib (has: $(echo $probes))"
done
echo "usdt_test: $lib has probes: $(echo $probes)"

command -v bpftrace >/dev/null || skip "bpftrace is not installed"
[ "$(id -u)" = 0 ] || skip "bpftrace needs root"
out=$(timeout 120 bpftrace -e "
usdt:$cli:usvm:migrate { @mig = count(); @bytes = sum(arg1); }
usdt:$cli:usvm:cpu_fault { @faults = count(); }
usdt:$cli:usvm:populate { @pop = count(); }" -c "$cli run stream" 2>&1)
rc=$?
if [ $rc -ne 0 ] && echo "$out" | grep -qiE "permission|not permitted|operation not supported|failed to attach"; then
	skip "bpftrace cannot attach here: $(echo "$out" | grep -iE 'permission|permitted|supported|attach' | head -1)"
fi
mig=$(echo "$out" | awk '/^@mig:/ { print $2 }')
faults=$(echo "$out" | awk '/^@faults:/ { print $2 }')
pop=$(echo "$out" | awk '/^@pop:/ { print $2 }')
bytes=$(echo "$out" | awk '/^@bytes:/ { print $2 }')
[ "${mig:-0}" -gt 0 ] && [ "${faults:-0}" -gt 0 ] && [ "${pop:-0}" -gt 0 ] ||
	fail "bpftrace saw migrations=${mig:-0} faults=${faults:-0} populates=${pop:-0}: $(echo "$out" | tail -5)"
# stream moves its buffers to the device and back: at least 2 x 64 MiB.
[ "${bytes:-0}" -ge $((128 << 20)) ] || fail "migrated bytes ${bytes:-0} < 128 MiB"
echo "usdt_test: bpftrace saw $mig migrations ($bytes bytes), $faults CPU faults, $pop populates"
exit 0
