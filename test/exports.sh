#!/usr/bin/env bash
# exports: libusvm.so exports exactly the functions its public headers
# declare (include/usvm.h, include/usvm/backend.h): nothing internal can be
# interposed by a program defining the same name, and nothing public is
# missing.  Usage: exports.sh LIBUSVM.so INCLUDE_DIR
set -u
lib=$1; inc=$2
command -v nm >/dev/null || { echo "skip: nm (binutils) is not installed"; exit 77; }
declared=$(cat "$inc/usvm.h" "$inc/usvm/backend.h" |
  grep -oE '^[a-z][a-z0-9_ ]*[ *]+usvm_[a-z0-9_]+\(' | grep -oE 'usvm_[a-z0-9_]+\($' | tr -d '(' | sort -u)
exported=$(nm -D --defined-only "$lib" | awk '$2 ~ /^[TDBRW]$/ {print $3}' |
  sed 's/@.*//' | grep -v '^USVM_' | sort -u)
missing=$(comm -23 <(echo "$declared") <(echo "$exported"))
extra=$(comm -13 <(echo "$declared") <(echo "$exported"))
echo "$(echo "$declared" | wc -l) functions declared, $(echo "$exported" | wc -l) symbols exported"
rc=0
if [ -n "$missing" ]; then echo "declared but not exported:"; echo "$missing"; rc=1; fi
if [ -n "$extra" ]; then echo "exported but not declared in include/:"; echo "$extra"; rc=1; fi
[ $rc -eq 0 ] && echo ok
exit $rc
