#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Tests of the usvm command-line program.
#
#   test/cli_test.sh PATH/TO/usvm
#
# Every workload at a small size passes its verification; a corrupted byte
# makes every workload fail; --json parses and its counters add up; bad
# arguments exit 2 with a message; --plot writes well-formed XML; help and
# version work; info and bench run; trace sums up a hand-written trace exactly
# and a real run's trace in agreement with the run's counters.  Prints what failed; exits 0 when all
# passed, 1 otherwise, 77 (skip) when this machine cannot run usvm.
set -u

USVM=${1:?usage: $0 PATH/TO/usvm}
if [ ! -x "$USVM" ]; then
	echo "cli_test: $USVM is not an executable" >&2
	exit 1
fi
TMP=$(mktemp -d "${TMPDIR:-/tmp}/usvm_cli_test.XXXXXX")
trap 'rm -rf "$TMP"' EXIT

PY=$(command -v python3 || true)
tests=0
fails=0
T0=$(date +%s)

ok() { tests=$((tests + 1)); }
bad() {
	tests=$((tests + 1))
	fails=$((fails + 1))
	echo "FAIL: $*"
}

# run_case NAME EXPECTED_RC CMD... : stdout in $TMP/out, stderr in $TMP/err
run_case() {
	local name=$1 want=$2 rc
	shift 2
	"$@" >"$TMP/out" 2>"$TMP/err"
	rc=$?
	if [ "$rc" -ne "$want" ]; then
		bad "$name: exit status $rc, expected $want: $*"
		sed 's/^/    stderr: /' "$TMP/err" | head -5
		return 1
	fi
	ok
	return 0
}

# usage_case NAME PATTERN ARGS... : must exit 2, print PATTERN on stderr, nothing on stdout
usage_case() {
	local name=$1 pat=$2
	shift 2
	run_case "$name" 2 "$USVM" "$@" || return
	if ! grep -qi -- "$pat" "$TMP/err"; then
		bad "$name: stderr lacks '$pat': $(head -c 300 "$TMP/err")"
	elif [ -s "$TMP/out" ]; then
		bad "$name: printed on stdout for a usage error"
	else
		ok
	fi
}

# ---- can this machine run usvm at all? ---------------------------------
"$USVM" info >"$TMP/info" 2>&1
info_rc=$?
if [ "$info_rc" -ne 0 ]; then
	echo "SKIP: usvm cannot run here (userfaultfd with UFFDIO_MOVE needed):"
	sed 's/^/    /' "$TMP/info"
	exit 77
fi
grep -q "^kernel" "$TMP/info" && grep -q "UFFDIO_MOVE" "$TMP/info" &&
	grep -q "CUDA *not built" "$TMP/info" && grep -q "simulated *usable" "$TMP/info" && ok ||
	bad "info: missing kernel / UFFDIO_MOVE / backends lines"

# ---- help and version ---------------------------------------------------
for args in "--help" "-h" "help" "run --help" "info --help" "bench --help" "demo --help" \
	    "trace --help" "help run" "help bench" "help trace"; do
	# shellcheck disable=SC2086
	if run_case "help: usvm $args" 0 "$USVM" $args; then
		grep -q "Usage" "$TMP/out" && ok || bad "help: usvm $args prints no Usage"
	fi
done
run_case "version" 0 "$USVM" --version && {
	grep -Eq '^usvm [0-9]+\.[0-9]+\.[0-9]+$' "$TMP/out" && ok || bad "version: $(cat "$TMP/out")"
}
grep -q "thrash events" <("$USVM" run --help) && ok || bad "run --help does not define thrash events"

# ---- bad arguments --------------------------------------------------------
usage_case "no command" "usage" 
usage_case "unknown command" "unknown command" frobnicate
usage_case "unknown top option" "unknown option" --frobnicate
usage_case "no workload" "stream" run
usage_case "unknown workload" "valid workloads:.*stream.*stencil.*random.*pingpong.*oversubscribe.*thrash.*pipeline" run nosuch
usage_case "size no parse" "not a size" run stream --size 12Q
usage_case "size letters" "not a size" run stream --size abc
usage_case "size zero" "greater than 0" run stream --size 0
usage_case "size missing" "needs a value" run stream --size
usage_case "capacity zero" "device-mem" run stream --device-mem 0
usage_case "capacity no parse" "not a size" run stream --device-mem 1X
usage_case "unknown option" "unknown option" run stream --bogus
usage_case "devices zero" "between 1 and 8" run stream --devices 0
usage_case "devices many" "between 1 and 8" run stream --devices 9
usage_case "chunks not pow2" "power of two" run stream --chunks 3K
usage_case "chunks order" "descending" run stream --chunks 64K,2M,4K
usage_case "chunks last" "last chunk" run stream --chunks 2M,64K
usage_case "policy" "always, once or never" run stream --policy maybe
usage_case "iterations" "not a number" run stream --iterations x
usage_case "flag value" "takes no value" run stream --json=yes
usage_case "extra arg" "unexpected argument" run stream stencil
usage_case "info option" "unknown option" info --bogus
usage_case "bench option" "unknown option" bench --bogus
usage_case "bench size" "not a size" bench --size huge
usage_case "bench size step" "multiple of 2M" bench --size 3M
usage_case "bench rounds" "not a number from 1" bench --rounds 0
usage_case "bench rounds missing" "needs a value" bench --rounds
usage_case "bench only" "no group 'bogus'" bench --only fault,bogus
usage_case "trace no file" "no trace file given" trace
usage_case "trace option" "unknown option '--bogus'" trace x.json --bogus
usage_case "trace top" "not a number" trace x.json --top many
usage_case "trace top missing" "needs a value" trace x.json --top
usage_case "trace extra arg" "unexpected argument 'y.json'" trace x.json y.json
usage_case "trace json value" "takes no value" trace x.json --json=yes
usage_case "trace plot dir" "cannot create it" trace x.json --plot /nonexistent-dir/x.svg
# --advise and --prefetch: each bad spec says what is wrong.
usage_case "advise unknown kind" "unknown advice 'bogus'" run stream --advise bogus
usage_case "advise no location" "needs a location" run stream --advise preferred
usage_case "advise bad location" "'gpu' is not a location" run stream --advise preferred=gpu
usage_case "advise accessed-by system" "'system' is not a device" run stream --advise accessed-by=system
usage_case "advise location not taken" "takes no location" run stream --advise read-mostly=dev0
usage_case "advise unknown buffer" "no buffer 'x' (its buffers: a b)" run stream --advise x:preferred=dev0
usage_case "advise empty buffer" "not a buffer name" run stream --advise :preferred=dev0
usage_case "advise no such device" "no device dev1" run stream --advise preferred=dev1
usage_case "advise in a list" "unknown advice 'nope'" run stream --advise preferred=dev0,nope
usage_case "advise missing" "needs a value" run stream --advise
usage_case "advise empty" "empty" run stream --advise=
usage_case "prefetch where" "use both, device, devN or system" run stream --prefetch=somewhere
usage_case "prefetch no such device" "no such device" run stream --prefetch=dev2 --devices 2
# Messages name the command used and the value given (issue #11).
usage_case "demo extra arg names demo" "usvm demo: unexpected argument" demo bogus
usage_case "size 4095 said as given" "size 4095 is too small" run stream --size 4095
# --plot that cannot be written fails before the run, not after it.
usage_case "plot path checked first" "cannot create it" run stream --size 2M \
	--plot /nonexistent-dir/x.svg

# ---- no userfaultfd permission ---------------------------------------------
# Simulated with an LD_PRELOAD shim making userfaultfd(2) fail with EPERM;
# skipped when there is no C compiler or the shim cannot take effect.
CC=$(command -v cc || command -v gcc || true)
if [ -n "$CC" ]; then
	cat >"$TMP/noperm.c" <<'EOF'
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <sys/syscall.h>
long syscall(long n, ...)
{
	long (*real)(long, ...) = (long (*)(long, ...))dlsym(RTLD_NEXT, "syscall");
	long a[6];
	va_list ap;
	int i;

	if (n == SYS_userfaultfd) {
		errno = EPERM;
		return -1;
	}
	va_start(ap, n);
	for (i = 0; i < 6; i++)
		a[i] = va_arg(ap, long);
	va_end(ap);
	return real(n, a[0], a[1], a[2], a[3], a[4], a[5]);
}
EOF
	if "$CC" -shared -fPIC -o "$TMP/noperm.so" "$TMP/noperm.c" -ldl 2>/dev/null &&
	   LD_PRELOAD="$TMP/noperm.so" "$USVM" info 2>&1 | grep -q "not permitted"; then
		run_case "EPERM run" 1 env LD_PRELOAD="$TMP/noperm.so" "$USVM" run stream --size 1M &&
			{ grep -q "not permitted" "$TMP/err" && grep -q "unprivileged_userfaultfd" "$TMP/err" &&
				ok || bad "EPERM run: message: $(cat "$TMP/err")"; }
		run_case "EPERM info" 1 env LD_PRELOAD="$TMP/noperm.so" "$USVM" info &&
			{ grep -q "cannot run here" "$TMP/out" && ok || bad "EPERM info: $(cat "$TMP/out")"; }
		run_case "EPERM bench" 1 env LD_PRELOAD="$TMP/noperm.so" "$USVM" bench --quick
	else
		echo "note: could not simulate a missing userfaultfd permission; EPERM checks skipped"
	fi
fi

# ---- every workload verifies at a small size -----------------------------
W="stream stencil random pingpong oversubscribe thrash pipeline"
for w in $W; do
	run_case "run $w" 0 "$USVM" run "$w" --size 4M --no-progress &&
		{ grep -q "^verified" "$TMP/out" && ok || bad "run $w: no 'verified' line"; }
	# Nothing but errors on stderr, never a progress bar into a pipe.
	[ ! -s "$TMP/err" ] && ok || bad "run $w: wrote to stderr: $(head -c 200 "$TMP/err")"
done
for w in $W; do
	run_case "run $w --devices 2 small chunks" 0 "$USVM" run "$w" --size 2M --devices 2 \
		--chunks 64K,4K --timeslice 1 --iterations 2 --seed 42 --threads 2 -q
	[ ! -s "$TMP/out" ] && ok || bad "run $w -q printed on stdout"
done
run_case "run stencil --policy never" 0 "$USVM" run stencil --size 2M --policy never -q
run_case "run random --policy once, 3 devices" 0 "$USVM" run random --size 2M --policy once \
	--devices 3 -q
run_case "run oversubscribe 4x" 0 "$USVM" run oversubscribe --size 8M --device-mem 2M -q
run_case "run pingpong 1 device" 0 "$USVM" run pingpong --size 2M --devices 1 -q
run_case "run stream odd size" 0 "$USVM" run stream --size 1000K -q
for w in thrash pipeline; do
	run_case "run $w odd size" 0 "$USVM" run "$w" --size 1000K -q
	run_case "run $w 3 devices --prefetch" 0 "$USVM" run "$w" --size 4M --devices 3 --prefetch -q
	run_case "run $w oversubscribed --prefetch" 0 "$USVM" run "$w" --size 8M --device-mem 2M \
		--prefetch -q
done
# Every --prefetch form and --advise kind runs and verifies, on every workload.
for w in $W; do
	run_case "run $w --prefetch" 0 "$USVM" run "$w" --size 2M --iterations 2 --prefetch -q
done
for args in "--prefetch=device" "--prefetch=system" "--prefetch=both" "--prefetch=dev1" \
	    "--advise preferred=system" "--advise preferred=dev1" \
	    "--advise accessed-by=dev0 --advise buf:accessed-by=dev1" \
	    "--advise preferred=dev0,unset-preferred,accessed-by=dev1,unset-accessed-by=dev1"; do
	# shellcheck disable=SC2086
	run_case "run pingpong $args" 0 "$USVM" run pingpong --size 2M --iterations 2 $args -q
done
run_case "run stream --advise said" 0 "$USVM" run stream --size 2M --advise a:preferred=system \
	--prefetch && {
	grep -q "advise: a:preferred=system" "$TMP/out" && grep -q "prefetch: into each device" "$TMP/out" &&
		grep -q "prefetched (--prefetch)" "$TMP/out" && ok ||
		bad "run stream --advise --prefetch: not said: $(head -c 300 "$TMP/out")"
}
run_case "run thrash explains" 0 "$USVM" run thrash --size 2M && {
	grep -q "What happened" "$TMP/out" && grep -q "^verified" "$TMP/out" && ok ||
		bad "run thrash: no explanation"
}
run_case "run pipeline explains" 0 "$USVM" run pipeline --size 4M --prefetch && {
	grep -q "by prefetch" "$TMP/out" && grep -q "^verified" "$TMP/out" && ok ||
		bad "run pipeline: no explanation"
}
run_case "demo" 0 "$USVM" demo --size 2M && {
	grep -q "What happened" "$TMP/out" && ok || bad "demo: no explanation"
}
run_case "run stream default" 0 "$USVM" run stream && {
	grep -q "What happened" "$TMP/out" && grep -q "^Summary" "$TMP/out" && ok ||
		bad "run stream: no explanation or summary"
}

# ---- a corrupted byte is caught by every workload ------------------------
for w in $W; do
	run_case "corruption caught by $w" 1 "$USVM" run "$w" --size 2M --inject-corruption -q &&
		{ grep -q "FAILED.*expected" "$TMP/err" && ok ||
			bad "corruption in $w: no failure message: $(head -c 200 "$TMP/err")"; }
done
run_case "corruption --json" 1 "$USVM" run stream --size 2M --inject-corruption --json

# ---- --json: parses, counters add up --------------------------------------
check_json() {   # FILE EXTRA_PYTHON_CHECKS
	"$PY" - "$1" "$2" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
t, mm, devs, ph = d["totals"], d["mm"], d["devices"], d["phases"]
errs = []
def eq(name, *vals):
    if len(set(vals)) != 1:
        errs.append("%s: %s" % (name, vals))
S = lambda f: sum(f(x) for x in devs)
P = lambda k: sum(p[k] for p in ph)
eq("ok", d["ok"], True)
eq("devices", len(devs), d["config"]["devices"])
eq("cpu_faults", t["cpu_faults"], mm["cpu_faults"], P("cpu_faults"))
eq("device_faults", t["device_faults"], S(lambda x: x["device"]["device_faults"]), P("device_faults"))
eq("migrations_to_device", t["migrations_to_device"], S(lambda x: x["pagemap"]["migrations_to_dev"]),
   mm["migrations_to_dev"], P("migrations_to_device"))
eq("bytes_to_device", t["bytes_to_device"], S(lambda x: x["pagemap"]["bytes_to_dev"]),
   mm["bytes_to_dev"], P("bytes_to_device"))
eq("migrations_to_system", t["migrations_to_system"], S(lambda x: x["pagemap"]["migrations_to_ram"]),
   mm["migrations_to_ram"], P("migrations_to_system"),
   t["migrations_to_system_by_cpu_fault"] + t["evictions"] + t["migrations_to_system_other"])
eq("bytes_to_system", t["bytes_to_system"], S(lambda x: x["pagemap"]["bytes_to_ram"]),
   mm["bytes_to_ram"], P("bytes_to_system"))
eq("by_cpu_fault", t["migrations_to_system_by_cpu_fault"], S(lambda x: x["pagemap"]["cpu_fault_migrations"]))
eq("evictions", t["evictions"], S(lambda x: x["pagemap"]["evictions"]))
eq("evicted_bytes", t["evicted_bytes"], S(lambda x: x["pagemap"]["evicted_bytes"]))
eq("pages_cleared", t["pages_cleared"], S(lambda x: x["pagemap"]["pages_cleared"]))
eq("thrash_events", t["thrash_events"], S(lambda x: x["thrash_events"]), P("thrash_events"))
for p in ph:
    eq("resident_after phase %d" % p["index"], sum(p["resident_after"].values()), t["workload_bytes"])
eq("prefetch_bytes_to_device", t["prefetch_bytes_to_device"], P("prefetch_bytes_to_device"))
eq("prefetch_bytes_to_system", t["prefetch_bytes_to_system"], P("prefetch_bytes_to_system"))
eq("moved by prefetch + on demand", t["bytes_moved_by_prefetch"] + t["bytes_moved_on_demand"],
   t["bytes_to_device"] + t["bytes_to_system"])
eq("thrash_pins", t["thrash_pins"], S(lambda x: x["device"]["thrash_pins"]))
eq("thrash_throttles", t["thrash_throttles"], S(lambda x: x["device"]["thrash_throttles"]))
eq("advice_in_place", t["advice_in_place"], S(lambda x: x["device"]["advice_in_place"]))
if t["time_s"] <= 0 or t["bytes_processed"] <= 0:
    errs.append("time or bytes_processed not positive")
exec(sys.argv[2])
if errs:
    print("\n".join(errs))
    sys.exit(1)
EOF
}

if [ -n "$PY" ]; then
	json_case() {   # NAME EXTRA_CHECKS ARGS...
		local name=$1 extra=$2
		shift 2
		run_case "json $name" 0 "$USVM" run "$@" --json || return
		cp "$TMP/out" "$TMP/j.json"
		if msg=$(check_json "$TMP/j.json" "$extra" 2>&1); then
			ok
		else
			bad "json $name: $msg"
		fi
	}
	# Everything fits: all of a and b go to the device and come back.
	json_case "stream" 'eq("stream moves everything", t["bytes_to_device"], t["bytes_to_system"], d["config"]["size"])' \
		stream --size 4M
	json_case "stream 2 devices" 'eq("both devices work", min(x["device"]["device_faults"] > 0 for x in devs), True)' \
		stream --size 4M --devices 2
	json_case "pingpong" 'eq("device to device moves", t["migrations_to_system_other"] > 0, True); eq("thrash", t["thrash_events"] > 0, True)' \
		pingpong --size 4M --devices 2 --iterations 2
	json_case "oversubscribe" 'eq("evictions happen", t["evictions"] > 0, True); eq("peak within capacity", max(x["pagemap"]["peak_used_bytes"] <= x["pagemap"]["capacity_bytes"] for x in devs), True)' \
		oversubscribe --size 8M
	json_case "random" 'eq("devices fault and migrate", t["device_faults"] > 0 and t["bytes_to_device"] > 0, True)' \
		random --size 4M --devices 2
	json_case "stencil" '' stencil --size 4M --chunks 64K,4K --timeslice 1

	# --advise: a stays in system memory, the device maps b where it is.
	json_case "stream --advise" 'eq("nothing moves", t["bytes_to_device"] + t["bytes_to_system"], 0); eq("in place", t["advice_in_place"] > 0, True); eq("config", ",".join(d["config"]["advise"]), "a:preferred=system,b:accessed-by=dev0"); eq("no prefetch", d["config"]["prefetch"], None)' \
		stream --size 4M --advise a:preferred=system --advise b:accessed-by=dev0
	json_case "thrash --advise preferred=system" 'eq("nothing moves", t["bytes_to_device"] + t["bytes_to_system"], 0); eq("no pins needed", t["thrash_pins"], 0)' \
		thrash --size 4M --iterations 8 --advise preferred=system
	# --prefetch: the device phase's data moves by prefetch, not by faults.
	# (Not exactly all of it: a stale CPU fault message, served late, may
	# take a prefetched page back; the device then faults it in again.)
	json_case "stream --prefetch" 'eq("prefetched", t["prefetch_calls"] > 0 and t["bytes_moved_by_prefetch"] > 0, True); eq("a and b prefetched", t["prefetch_bytes_to_device"] >= d["config"]["size"], True); eq("config", d["config"]["prefetch"], "both")' \
		stream --size 4M --prefetch
	json_case "stream --prefetch=system" 'eq("only to system", t["prefetch_bytes_to_device"], 0); eq("config", d["config"]["prefetch"], "system")' \
		stream --size 4M --prefetch=system
	json_case "stencil --prefetch=dev1" 'eq("config", d["config"]["prefetch"], "dev1"); eq("dev1 only", t["prefetch_bytes_to_device"] <= devs[1]["pagemap"]["bytes_to_dev"], True)' \
		stencil --size 4M --devices 2 --iterations 2 --prefetch=dev1
	# pipeline: 2 MiB chunks; without --prefetch everything moves on demand,
	# with it (nearly) everything moves by prefetch; out (advised
	# preferred=system) is read in place and never prefetched to a device.
	json_case "pipeline" 'eq("on demand", t["bytes_moved_by_prefetch"], t["prefetch_calls"], 0); eq("moved", t["bytes_moved_on_demand"] > 0, True); eq("out in place", t["advice_in_place"] > 0, True)' \
		pipeline --size 8M
	cp "$TMP/j.json" "$TMP/pipe_off.json"
	json_case "pipeline --prefetch" 'eq("by prefetch", t["bytes_moved_on_demand"] * 4 <= t["bytes_moved_by_prefetch"], True); eq("moved", t["bytes_moved_by_prefetch"] > 0, True); eq("out skipped", t["prefetch_skipped"] > 0, True); eq("no failures", t["prefetch_failed"], 0); eq("out in place", t["advice_in_place"] > 0, True)' \
		pipeline --size 8M --prefetch
	cp "$TMP/j.json" "$TMP/pipe_on.json"
	"$PY" - "$TMP/pipe_off.json" "$TMP/pipe_on.json" <<'EOF' && ok || bad "pipeline: --prefetch moves other bytes than faults do"
import json, sys
a, b = (json.load(open(f))["totals"] for f in sys.argv[1:3])
assert b["cpu_faults_devmem"] < a["cpu_faults_devmem"], (a["cpu_faults_devmem"], b["cpu_faults_devmem"])
EOF

	# thrash: mitigation on (the default) moves at least 5x fewer bytes than
	# USVM_THRASHING=0, by pinning; counts, not timing: a window and pin time
	# no run outlasts.
	for m in 0 1; do
		rm -f "$TMP/thrash$m.json"
		run_case "json thrash USVM_THRASHING=$m" 0 env USVM_THRASHING=$m USVM_THRASH_WINDOW_MS=1000000 \
			USVM_THRASH_PIN_MS=1000000 "$USVM" run thrash --size 4M --json || continue
		cp "$TMP/out" "$TMP/thrash$m.json"
		if msg=$(check_json "$TMP/thrash$m.json" '' 2>&1); then
			ok
		else
			bad "json thrash USVM_THRASHING=$m: $msg"
		fi
	done
	if [ -s "$TMP/thrash0.json" ] && [ -s "$TMP/thrash1.json" ]; then
		"$PY" - "$TMP/thrash0.json" "$TMP/thrash1.json" <<'EOF' && ok || bad "thrash: mitigation does not show"
import json, sys
off, on = (json.load(open(f))["totals"] for f in sys.argv[1:3])
mv = lambda t: t["bytes_to_device"] + t["bytes_to_system"]
assert mv(on) * 5 <= mv(off), ("moved", mv(on), mv(off))
assert on["thrash_pins"] > 0 and on["thrash_throttles"] > 0 and on["thrash_bytes_kept"] > 0, on
assert off["thrash_pins"] == off["thrash_throttles"] == off["thrash_bytes_kept"] == 0, off
# 40 rounds: off moves every block both ways (nearly) every round.
assert off["bytes_to_device"] >= 20 * (4 << 20) and off["bytes_to_system"] >= 20 * (4 << 20), off
EOF
	fi

	# info and bench JSON
	run_case "info --json" 0 "$USVM" info --json &&
		{ "$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["usable"] is True and d["backends"]["cuda"] == "not built"' "$TMP/out" && ok ||
			bad "info --json: $(head -c 300 "$TMP/out")"; }
	# Every figure, each side and the ratio with median <= ... within [min, max].
	run_case "bench --quick --json" 0 "$USVM" bench --quick --size 2M --json &&
		{ "$PY" -c '
import json,math,sys
d=json.load(open(sys.argv[1]))
assert d["command"] == "bench" and d["cpus"] >= 1 and d["kernel"] and d["uffd_mode"], d
assert d["quick"] is True and d["rounds"] == 3 and d["migrate_bytes_per_size"] == 2 << 20
want = ["first_touch", "fault_4K_median", "fault_4K_p99"]
want += [k + "_" + s for s in ("4K", "64K", "2M") for k in ("populate", "migrate_back")]
want += ["free_4K", "free_4K_device", "launch_median", "launch_p99", "scaling_2_threads",
         "scaling_2_threads_same_blocks", "read_back_2M", "read_back_64K"]
f=d["figures"]
assert list(f) == want, list(f)
for n, x in f.items():
    assert 1 <= x["rounds"] <= 3 and x["unit"] and x["what"] and x["baseline_what"], n
    assert x["better"] in ("higher", "lower"), n
    for side in ("usvm", "baseline", "ratio"):
        s = x[side]
        assert all(math.isfinite(s[k]) and s[k] > 0 for k in ("median", "min", "max")), (n, side)
        assert s["min"] <= s["median"] <= s["max"], (n, side)
assert f["migrate_back_4K"]["extra"]["migrations_to_ram"]["median"] == 512
' "$TMP/out" && ok || bad "bench --json: $(head -c 300 "$TMP/out")"; }
	run_case "bench --only --json" 0 "$USVM" bench --quick --only launch,free --rounds 1 --json &&
		{ "$PY" -c '
import json,sys
d=json.load(open(sys.argv[1]))
assert list(d["figures"]) == ["free_4K", "free_4K_device", "launch_median", "launch_p99"], d["figures"]
assert all(x["rounds"] == 1 for x in d["figures"].values())
' "$TMP/out" && ok || bad "bench --only --json: $(head -c 300 "$TMP/out")"; }
else
	echo "note: python3 not found; JSON and SVG checks skipped"
fi

# ---- --plot: well-formed SVG ------------------------------------------------
for w in stencil pingpong; do
	run_case "plot $w" 0 "$USVM" run "$w" --size 4M --devices 2 --plot "$TMP/$w.svg" -q || continue
	if [ ! -s "$TMP/$w.svg" ]; then
		bad "plot $w: no file"
	elif [ -n "$PY" ]; then
		"$PY" - "$TMP/$w.svg" <<'EOF' && ok || bad "plot $w: not a well-formed SVG"
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
ns = "{http://www.w3.org/2000/svg}"
assert root.tag == ns + "svg", root.tag
texts = " ".join(t.text or "" for t in root.iter(ns + "text"))
for want in ("time (s)", "resident (MiB)", "system memory", "dev0", "dev1", "CPU"):
    assert want in texts, want
assert len(list(root.iter(ns + "polygon"))) >= 3
EOF
	fi
done
# A directory that exists but is not writable is found before the run too.
if [ "$(id -u)" -ne 0 ]; then
	run_case "plot to a read-only dir" 2 "$USVM" run stream --size 1M -q --plot /proc/x.svg
fi

# ---- output that cannot be written is a failure ------------------------------
if [ -w /dev/full ]; then
	for args in "run stream --size 2M --json" "info" "--help" "run --help"; do
		# shellcheck disable=SC2086
		"$USVM" $args >/dev/full 2>"$TMP/err"
		rc=$?
		if [ "$rc" -eq 0 ]; then
			bad "usvm $args > /dev/full: exit status 0"
		elif ! grep -q "error writing to standard output" "$TMP/err"; then
			bad "usvm $args > /dev/full: no message: $(head -c 200 "$TMP/err")"
		else
			ok
		fi
	done
fi

# ---- too little device memory is said, and the run still verifies ---------------
run_case "device memory below a chunk" 0 "$USVM" run stream --size 8M --device-mem 1M && {
	if grep -q "less than one 2M chunk" "$TMP/out"; then ok; else
		bad "--device-mem 1M: no note that ranges cannot migrate"; fi
}
run_case "demo with too little device memory" 0 "$USVM" demo --size 8M --device-mem 1M && {
	if grep -q "no chunk could migrate" "$TMP/out" && ! grep -q "migrated the$" "$TMP/out"
	then ok; else bad "demo --device-mem 1M still says chunks migrated"; fi
}
run_case "oversubscribe ratio said once" 0 "$USVM" run oversubscribe --size 8M --devices 8 && {
	if grep -q "3x the device" "$TMP/out"; then
		bad "oversubscribe: hard-coded 3x next to the measured ratio"; else ok; fi
}

# ---- usvm trace ---------------------------------------------------------------
# A hand-written trace with known content: 3 migrations (one across two 2 MiB
# blocks), 5 CPU faults, a device fault, 2 populate calls, a line that is not
# an event; every figure of the summary is checked.
cat >"$TMP/tiny.json" <<'EOF'
{"displayTimeUnit":"ns","traceEvents":[
{"name":"thread_name","ph":"M","pid":1,"tid":1,"args":{"name":"main (1)"}},
{"name":"migrate_to_device","cat":"migration","ph":"X","ts":1000.000,"dur":100.000,"pid":1,"tid":1,"args":{"addr":"0x40000000","len":2097152,"cause":"populate","result":0,"from":"system","to":"dev0"}},
{"name":"migrate_to_device","cat":"migration","ph":"X","ts":2000.000,"dur":300.000,"pid":1,"tid":1,"args":{"addr":"0x40200000","len":1048576,"cause":"populate","result":0,"from":"system","to":"dev0"}},
{"name":"migrate_to_ram","cat":"migration","ph":"X","ts":3000.000,"dur":200.000,"pid":1,"tid":1,"args":{"addr":"0x401f0000","len":131072,"cause":"cpu_fault","result":0,"from":"dev0","to":"system"}},
{"name":"cpu_fault","cat":"fault","ph":"X","ts":1500.000,"dur":1.000,"pid":1,"tid":1,"args":{"addr":"0x40000000","len":4096,"cause":"first_touch","result":0}},
{"name":"cpu_fault","cat":"fault","ph":"X","ts":1600.000,"dur":2.000,"pid":1,"tid":1,"args":{"addr":"0x40001000","len":4096,"cause":"first_touch","result":0}},
this line is not an event
{"name":"cpu_fault","cat":"fault","ph":"X","ts":1700.000,"dur":3.000,"pid":1,"tid":1,"args":{"addr":"0x40002000","len":4096,"cause":"first_touch","result":0}},
{"name":"cpu_fault","cat":"fault","ph":"X","ts":1800.000,"dur":4.000,"pid":1,"tid":1,"args":{"addr":"0x40003000","len":4096,"cause":"first_touch","result":0}},
{"name":"cpu_fault","cat":"fault","ph":"X","ts":2990.000,"dur":210.000,"pid":1,"tid":1,"args":{"addr":"0x401f0000","len":131072,"cause":"devmem","result":0}},
{"name":"device_fault","cat":"fault","ph":"X","ts":990.000,"dur":120.000,"pid":1,"tid":2,"args":{"addr":"0x40000000","len":4096,"cause":"none","result":0,"from":"dev0","to":""}},
{"name":"populate","cat":"populate","ph":"X","ts":995.000,"dur":110.000,"pid":1,"tid":2,"args":{"addr":"0x40000000","len":2097152,"cause":"populate","result":0,"from":"","to":"dev0"}},
{"name":"populate","cat":"populate","ph":"X","ts":1995.000,"dur":10.000,"pid":1,"tid":2,"args":{"addr":"0x40400000","len":2097152,"cause":"populate","result":-12,"from":"","to":"dev0"}},
{"name":"process_name","ph":"M","pid":1,"args":{"name":"usvm"}}
]}
EOF
# want REGEX... : each matches a line of $TMP/out; says which one does not
want() {
	local re

	for re in "$@"; do
		grep -Eq -- "$re" "$TMP/out" || { echo "no line matches: $re"; return 1; }
	done
}
run_case "trace tiny" 0 "$USVM" trace "$TMP/tiny.json" && {
	if msg=$(want "^Trace .*tiny.json: 11 events in 2.21 ms \(from 990.0 us to 3.20 ms" \
		"^  16 lines: 11 events, 2 metadata, 1 skipped .*line 8$" \
		"^  cpu_fault +5$" "^  migrate_to_device +2$" "^  migrate_to_ram +1$" \
		"^  system -> dev0 +populate +2 +3 MiB +400.0 us +200.0 us +7.86$" \
		"^  dev0 -> system +cpu_fault +1 +128 KiB +200.0 us +200.0 us +0.66$" \
		"^2 MiB blocks by bytes moved: top 2 of 2$" "^  0x40000000 +2.1 MiB +1 +1$" \
		"^  0x40200000 +1.1 MiB +1 +1$" \
		"^  all +5 +3.00 us +210.0 us +210.0 us +210.0 us$" \
		"^  first_touch +4 +2.00 us +4.00 us +4.00 us +4.00 us$" \
		"^  dev0 +1 +120.0 us" "^  0 \(ok\) +1 +2 MiB +110.0 us$" \
		"^  -12 \(Cannot allocate memory\) +1 "); then
		ok
	else
		bad "trace tiny: $msg"
		sed 's/^/    /' "$TMP/out"
	fi
	grep -q "skipped 1 line that could not be read (the first: line 8)" "$TMP/err" && ok ||
		bad "trace tiny: the skipped line is not said on stderr: $(cat "$TMP/err")"
}
run_case "trace tiny --top 1 from stdin" 0 "$USVM" trace - --top 1 <"$TMP/tiny.json" && {
	want "^2 MiB blocks by bytes moved: top 1 of 2$" "^  0x40000000 " >/dev/null &&
		! grep -q "^  0x40200000" "$TMP/out" && ok || bad "trace --top 1: $(cat "$TMP/out")"
}
if [ -n "$PY" ]; then
	run_case "trace tiny --json" 0 "$USVM" trace "$TMP/tiny.json" --json &&
		{ "$PY" - "$TMP/out" <<'EOF' && ok || bad "trace tiny --json"
import json, sys
d = json.load(open(sys.argv[1]))
assert (d["events"], d["metadata"], d["skipped_lines"], d["lines"]) == (11, 2, 1, 16), d
assert d["complete"] is True and (d["first_us"], d["last_us"], d["span_us"]) == (990, 3200, 2210)
assert d["events_by_name"] == {"cpu_fault": 5, "device_fault": 1, "migrate_to_device": 2,
                               "migrate_to_ram": 1, "populate": 2}, d["events_by_name"]
m = d["migrations"]
assert [(x["direction"], x["from"], x["to"], x["cause"], x["count"], x["bytes"], x["total_us"],
         x["mean_us"], x["failed"]) for x in m] == [
    ("to_device", "system", "dev0", "populate", 2, 3 << 20, 400, 200, 0),
    ("to_system", "dev0", "system", "cpu_fault", 1, 128 << 10, 200, 200, 0)], m
assert abs(m[0]["gb_per_s"] - 7.86432) < 1e-9 and abs(m[1]["gb_per_s"] - 0.65536) < 1e-9
t = d["migration_totals"]
assert (t["to_device"]["count"], t["to_device"]["bytes"]) == (2, 3 << 20)
assert (t["to_system"]["count"], t["to_system"]["bytes"]) == (1, 128 << 10)
b = d["top_blocks"]
assert d["blocks_moved"] == 2 and [(x["addr"], x["bytes"], x["bytes_to_device"],
    x["bytes_to_system"], x["to_device"], x["to_system"]) for x in b] == [
    ("0x40000000", (2 << 20) + (64 << 10), 2 << 20, 64 << 10, 1, 1),
    ("0x40200000", (1 << 20) + (64 << 10), 1 << 20, 64 << 10, 1, 1)], b
c = d["cpu_fault_latency_us"]
P = lambda x: (x["count"], x["p50"], x["p90"], x["p99"], x["max"])
assert list(c) == ["all", "first_touch", "devmem"], list(c)
assert P(c["all"]) == (5, 3, 210, 210, 210) and P(c["first_touch"]) == (4, 2, 4, 4, 4)
assert P(c["devmem"]) == (1, 210, 210, 210, 210)
assert P(d["device_fault_latency_us"]["dev0"]) == (1, 120, 120, 120, 120)
assert [(x["result"], x["error"], x["count"], x["bytes"]) for x in d["populate"]] == [
    (0, None, 1, 2 << 20), (-12, "Cannot allocate memory", 1, 2 << 20)], d["populate"]
EOF
		}
fi
# A trace of a real run: the summary adds up to the run's own counters.
for args in "stream --size 4M" "pingpong --size 4M --devices 2"; do
	rm -f "$TMP/t.json"
	# shellcheck disable=SC2086
	run_case "traced run $args" 0 env USVM_TRACE="$TMP/t.json" "$USVM" run $args --json || continue
	cp "$TMP/out" "$TMP/run.json"
	run_case "trace of $args" 0 "$USVM" trace "$TMP/t.json" --plot "$TMP/heat.svg" && {
		want "^Trace .*: [0-9,]+ events in " "^  [0-9]+ lines: .*, 0 skipped" \
			"^Migrations +cause +count +bytes +time +mean +GB/s$" \
			"^  system -> dev0 +populate +[0-9]+ " "^  dev0 -> system +" \
			"^  to devices +all " "^2 MiB blocks by bytes moved: top [0-9]+ of [0-9]+$" \
			"^CPU fault latency +count +p50 +p90 +p99 +max$" "^  devmem +[0-9]+ " \
			"^Device fault latency " "^  dev0 +[0-9]+ " "^  0 \(ok\) +[0-9]+ " \
			>"$TMP/msg" && [ ! -s "$TMP/err" ] && ok ||
			bad "trace of $args: $(cat "$TMP/msg" "$TMP/err")"
		grep -q "<svg" "$TMP/heat.svg" && ok || bad "trace of $args: --plot wrote no SVG"
	}
	[ -n "$PY" ] || continue
	run_case "trace of $args --json" 0 "$USVM" trace "$TMP/t.json" --json &&
		{ "$PY" - "$TMP/out" "$TMP/run.json" "$TMP/heat.svg" <<'EOF' && ok || bad "trace of $args --json"
import json, sys, xml.etree.ElementTree as ET
t = json.load(open(sys.argv[1]))
r = json.load(open(sys.argv[2]))["totals"]
m = t["migration_totals"]
c, d = t["cpu_fault_latency_us"]["all"], t["device_fault_latency_us"]["all"]
k = lambda kind: t["cpu_fault_latency_us"].get(kind, {"count": 0})["count"]
for name, got, want in (("to_device", m["to_device"]["count"], r["migrations_to_device"]),
        ("bytes_to_device", m["to_device"]["bytes"], r["bytes_to_device"]),
        ("to_system", m["to_system"]["count"], r["migrations_to_system"]),
        ("bytes_to_system", m["to_system"]["bytes"], r["bytes_to_system"]),
        ("device_faults", d["count"], r["device_faults"])):
    assert got == want, (name, got, want)
# A CPU fault whose thread another fault's fill or migration already woke
# is counted when its (stale) message is served: possibly after the last
# phase, so only in the trace (src/cli/report.c).  Never fewer.
for name, got, want in (("first_touch", k("first_touch"), r["cpu_faults_first_touch"]),
        ("devmem", k("devmem") + k("timeslice_wait"), r["cpu_faults_devmem"]),
        ("raced", k("raced"), r["cpu_faults_raced"]),
        ("cpu_faults", c["count"], r["cpu_faults"])):
    assert got >= want, (name, got, want)
assert t["complete"] and t["skipped_lines"] == 0 and t["span_us"] > 0
for x in (c, d):
    assert 0 <= x["p50"] <= x["p90"] <= x["p99"] <= x["max"], x
assert t["top_blocks"] and t["top_blocks"][0]["bytes"] >= t["top_blocks"][-1]["bytes"]
root = ET.parse(sys.argv[3]).getroot()
ns = "{http://www.w3.org/2000/svg}"
assert root.tag == ns + "svg", root.tag
texts = " ".join(x.text or "" for x in root.iter(ns + "text"))
assert "time since the trace started" in texts and "2 MiB block (address)" in texts, texts
assert len(list(root.iter(ns + "rect"))) > 3
EOF
		}
done
# Not a trace, no file: exit 1 with a message naming the file.
printf 'hello, world\n' >"$TMP/garbage.json"
run_case "trace garbage" 1 "$USVM" trace "$TMP/garbage.json" && {
	grep -q "garbage.json: not a usvm trace" "$TMP/err" && ok ||
		bad "trace garbage: $(cat "$TMP/err")"
}
head -c 4096 /dev/urandom >"$TMP/random.bin"
run_case "trace binary" 1 "$USVM" trace "$TMP/random.bin"
run_case "trace missing" 1 "$USVM" trace "$TMP/nosuch.json" && {
	grep -q "nosuch.json: No such file or directory" "$TMP/err" && ok ||
		bad "trace missing: $(cat "$TMP/err")"
}
run_case "trace a directory" 1 "$USVM" trace "$TMP"
# A trace cut short (the program still running, or killed): what is there counts.
head -n 5 "$TMP/tiny.json" >"$TMP/cut.json"
run_case "trace cut short" 0 "$USVM" trace "$TMP/cut.json" && {
	want "^Trace .*: 3 events" "no closing" >/dev/null && ok || bad "trace cut short: $(cat "$TMP/out")"
}
run_case "trace --top 0 --plot" 0 "$USVM" trace "$TMP/cut.json" --top 0 --plot "$TMP/cut.svg" && {
	grep -q "<svg" "$TMP/cut.svg" && ! grep -q "^2 MiB blocks" "$TMP/out" && ok ||
		bad "trace --top 0 --plot: $(cat "$TMP/out")"
}

# ---- bench --------------------------------------------------------------------
# The table: a header naming the machine, one row per figure with its ratio.
bench_rows() {
	grep -q "kernel .*CPUs" "$TMP/out" &&
		grep -Eq "^populate_4K +GB/s .*x" "$TMP/out" &&
		grep -Eq "^migrate_back_64K +GB/s .*x" "$TMP/out" &&
		grep -Eq "^migrate_back_2M +GB/s .*x" "$TMP/out" &&
		grep -Eq "^launch_p99 +us .*x" "$TMP/out" && ! grep -q "^first_touch" "$TMP/out"
}
run_case "bench --quick" 0 "$USVM" bench --quick --size 2M --rounds 2 --only migrate,launch && {
	bench_rows && [ ! -s "$TMP/err" ] && ok || bad "bench: missing rows: $(cat "$TMP/out" "$TMP/err")"
}
# bench/migrate_bench is the same suite behind its own main.
MB=$(dirname "$USVM")/bench/migrate_bench
if [ -x "$MB" ]; then
	run_case "migrate_bench --quick" 0 "$MB" --quick --size 2M --rounds 1 --only migrate,launch && {
		bench_rows && grep -q "^migrate_bench" "$TMP/out" && ok ||
			bad "migrate_bench: missing rows: $(cat "$TMP/out")"
	}
	"$MB" --bogus >"$TMP/out" 2>"$TMP/err"
	[ $? -eq 2 ] && grep -q "^migrate_bench: unknown option" "$TMP/err" && ok ||
		bad "migrate_bench --bogus: $(cat "$TMP/err")"
fi

echo "cli_test: $((tests - fails))/$tests passed in $(($(date +%s) - T0)) s"
[ "$fails" -eq 0 ]
