#!/usr/bin/env bash
# libcertbroker exports exactly the functions its header declares, each versioned
# LIBCERTBROKER_1.0, (the renewal calls) LIBCERTBROKER_1.1, (the token and sealed-key calls)
# LIBCERTBROKER_1.2 or (the access check with flags) LIBCERTBROKER_1.3 by the version script,
# and nothing else.
#   test-client-symbols.sh LIBRARY HEADER VERSION_SCRIPT
set -euo pipefail
lib=$1 header=$2 sym=$3 sym_file=$3
fail() { echo "not ok - $*" >&2; exit 1; }

exported=$(nm -D --defined-only "$lib" | awk '$2 == "T" { print $3 }' | sort)
[ -n "$exported" ] || fail "$lib exports no functions"
declared=$(grep -oE '\bcertbroker_[a-z_]+\(' "$header" | tr -d '(' | sort -u)
scripted=$(sed -n 's/^[[:space:]]*\(certbroker_[a-z_]*\);.*/\1/p' "$sym" | sort -u)

unversioned=$(echo "$exported" | grep -vE '@@LIBCERTBROKER_1\.[0123]$' || true)
[ -z "$unversioned" ] || fail "symbols without a LIBCERTBROKER_1.0, 1.1, 1.2 or 1.3 version: $unversioned"
# Each symbol carries the version of the block the script lists it in.
while read -r sym ver; do
        want=$(awk -v s="$sym;" '/^LIBCERTBROKER_/ { v = $1 } $1 == s { print v }' "$sym_file")
        [ "$ver" = "$want" ] || fail "$sym is versioned $ver, the script lists it under $want"
done < <(echo "$exported" | sed 's/@@/ /')
names=$(echo "$exported" | sed 's/@@.*//' | sort)
[ "$names" = "$declared" ] || fail "exported and declared functions differ: $(diff <(echo "$names") <(echo "$declared") || true)"
[ "$names" = "$scripted" ] || fail "exported functions and $sym differ: $(diff <(echo "$names") <(echo "$scripted") || true)"
soname=$(objdump -p "$lib" | awk '$1 == "SONAME" { print $2 }')
[ "$soname" = libcertbroker.so.1 ] || fail "SONAME is '$soname', expected libcertbroker.so.1"
echo "ok - $(echo "$names" | wc -l) functions, all declared in certbroker.h, each with its block's version, SONAME $soname"
