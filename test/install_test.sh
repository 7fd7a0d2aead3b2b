#!/usr/bin/env bash
# install: usvm installed into a prefix is usable as a library the three
# ways a C user expects, each built and run:
#  - find_package(usvm) from CMake: the out-of-tree backend in
#    examples/backend/ (only <usvm/backend.h>) builds and passes its test;
#  - pkg-config usvm: hello_usvm links the shared library;
#  - pkg-config usvm-static: hello_usvm links statically (no libusvm.so).
# Usage: install_test.sh SOURCE_DIR BUILD_DIR
set -u
src=$1; build=$2
for t in cc pkg-config cmake; do
  command -v $t >/dev/null || { echo "skip: $t is not installed"; exit 77; }
done
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
# Sanitizer builds: the examples need the same runtime.
flags=$(sed -n 's/^CMAKE_C_FLAGS:STRING=//p' "$build/CMakeCache.txt")
san=$(sed -n 's/^USVM_SANITIZE:[A-Z]*=//p' "$build/CMakeCache.txt")
case "$san" in
  address) flags="$flags -fsanitize=address,undefined" ;;
  thread) flags="$flags -fsanitize=thread" ;;
esac

cmake --install "$build" --prefix "$tmp/prefix" >/dev/null || fail "cmake --install"
pcdir=$(dirname "$(find "$tmp/prefix" -name usvm.pc | head -1)")
[ -f "$pcdir/usvm-static.pc" ] || fail "usvm-static.pc not installed"
[ -f "$tmp/prefix/include/usvm/backend.h" ] || fail "usvm/backend.h not installed"
libdir=$(dirname "$(find "$tmp/prefix" -name 'libusvm.so' | head -1)")

echo "find_package(usvm): examples/backend"
cmake -S "$src/examples/backend" -B "$tmp/ext" -DCMAKE_PREFIX_PATH="$tmp/prefix" \
  -DCMAKE_C_FLAGS="$flags" >/dev/null || fail "configure examples/backend"
cmake --build "$tmp/ext" 2>&1 | grep -E "\.c:[0-9]+:[0-9]+: (warning|error)" && fail "examples/backend: warnings"
cmake --build "$tmp/ext" >/dev/null || fail "build examples/backend"
LD_LIBRARY_PATH="$libdir" "$tmp/ext/backend_test"; rc=$?
[ $rc -eq 0 ] || [ $rc -eq 77 ] || fail "backend_test exit $rc"

export PKG_CONFIG_PATH="$pcdir"
echo "pkg-config usvm (shared)"
cc $flags "$src/examples/hello_usvm.c" $(pkg-config --cflags --libs usvm) \
  -Wl,-rpath,"$libdir" -o "$tmp/hello_shared" || fail "link with pkg-config usvm"
ldd "$tmp/hello_shared" | grep -q libusvm.so || fail "hello_shared does not use libusvm.so"
"$tmp/hello_shared" >/dev/null; rc=$?
[ $rc -eq 0 ] || [ $rc -eq 77 ] || fail "hello_shared exit $rc"

echo "pkg-config usvm-static"
cc $flags "$src/examples/hello_usvm.c" $(pkg-config --cflags --libs usvm-static) \
  -o "$tmp/hello_static" || fail "link with pkg-config usvm-static"
ldd "$tmp/hello_static" | grep -q libusvm && fail "hello_static links libusvm.so"
"$tmp/hello_static" >/dev/null; rc=$?
[ $rc -eq 0 ] || [ $rc -eq 77 ] || fail "hello_static exit $rc"
echo ok
