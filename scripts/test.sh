#!/usr/bin/env bash
# Build and run the whole test suite: a normal build, AddressSanitizer+UBSan,
# ThreadSanitizer, and the normal build once more on a loaded machine (every
# core kept busy by bounded background loops while ctest runs four tests at
# a time).  Usage: scripts/test.sh [normal|asan|tsan|loaded ...]
# Ends with one line CI can read: "N passed, N failed".
set -u
cd "$(dirname "$0")/.."
flavours=("$@")
[ ${#flavours[@]} -eq 0 ] && flavours=(normal asan tsan loaded)
jobs=$(nproc 2>/dev/null || echo 2)
pass=0; fail=0; failed=()

# ASan: UBSan reports are errors; TSan: races are failures.
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:halt_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
# die_after_fork=0: tests fork children (with threads) to check fork and hangs.
export TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1:report_signal_unsafe=0:die_after_fork=0

load_pids=()
start_load() {
  local i n=$((jobs * 3))
  for ((i = 0; i < n; i++)); do
    timeout 1800 sh -c 'while :; do :; done' &
    load_pids+=($!)
  done
}
stop_load() {
  [ ${#load_pids[@]} -gt 0 ] && kill "${load_pids[@]}" 2>/dev/null
  wait "${load_pids[@]}" 2>/dev/null
  load_pids=()
}
trap stop_load EXIT

for f in "${flavours[@]}"; do
  par=$jobs; timeout=300; slow=1
  case "$f" in
    normal) dir=build;      opt=() ;;
    asan)   dir=build-asan; opt=(-DUSVM_SANITIZE=address); timeout=900 ;;
    tsan)   dir=build-tsan; opt=(-DUSVM_SANITIZE=thread); timeout=900 ;;
    loaded) dir=build;      opt=(); par=4; timeout=900; slow=4 ;;
    *) echo "unknown flavour $f" >&2; exit 2 ;;
  esac
  echo "=== $f build ($dir) ==="
  if ! cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "${opt[@]}" >/dev/null ||
     ! cmake --build "$dir" -j"$jobs" 2>&1 | tail -n 20; then
    echo "$f: build failed"; fail=$((fail + 1)); failed+=("$f:build"); continue
  fi
  log="$dir/ctest-$f.log"
  [ "$f" = loaded ] && start_load
  USVM_TEST_SLOW=$slow ctest --test-dir "$dir" --output-on-failure --timeout "$timeout" \
    -j"$par" 2>&1 | tee "$log"
  [ "$f" = loaded ] && stop_load
  # ctest: "100% tests passed, 0 tests failed out of 12"
  line=$(grep -E 'tests failed out of [0-9]+' "$log" | tail -1)
  t=$(echo "$line" | grep -Eo 'out of [0-9]+' | grep -Eo '[0-9]+' || true)
  nf=$(echo "$line" | grep -Eo '[0-9]+ tests failed' | grep -Eo '^[0-9]+' || true)
  t=${t:-0}; nf=${nf:-0}; p=$((t - nf))
  if grep -q 'Skipped' "$log"; then echo "$f: some tests were skipped (see above)"; fi
  if [ "$t" -eq 0 ]; then
    echo "$f: no tests ran"; fail=$((fail + 1)); failed+=("$f:none"); continue
  fi
  pass=$((pass + p)); fail=$((fail + t - p))
  [ "$p" -ne "$t" ] && failed+=("$f")
done
[ ${#failed[@]} -gt 0 ] && echo "failing flavours: ${failed[*]}"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
