#!/bin/sh
# run.sh LIB PROG [ARGS]: run a dmirror test program with LIB
# (libusvm-dmirror.so) preloaded, as a user would.  In sanitizer builds the
# library is instrumented too and comes before the sanitizer runtime the
# program links: that order is intended, so ASan is told not to object.
lib=$1
shift
ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0" \
LD_PRELOAD="$lib${LD_PRELOAD:+:$LD_PRELOAD}" exec "$@"
