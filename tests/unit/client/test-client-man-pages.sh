#!/usr/bin/env bash
# The man pages are clean roff: no warnings from groff -ww nor from man --warnings, and
# each has NAME, SYNOPSIS (or a DESCRIPTION) and SEE ALSO sections.
#   test-client-man-pages.sh PAGE...
set -euo pipefail
fail() { echo "not ok - $*" >&2; exit 1; }
[ $# -gt 0 ] || fail "no man pages given"
for page in "$@"; do
        out=$(LC_ALL=C.UTF-8 groff -ww -z -t -man "$page" 2>&1) || fail "groff failed on $page: $out"
        [ -z "$out" ] || fail "groff -ww warns about $page: $out"
        out=$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings=all -l "$page" 2>&1 >/dev/null) ||
                fail "man -l failed on $page: $out"
        [ -z "$out" ] || fail "man --warnings warns about $page: $out"
        text=$(LC_ALL=C.UTF-8 MANWIDTH=80 man -l "$page" 2>/dev/null | col -b)
        for section in NAME DESCRIPTION "SEE ALSO"; do
                grep -q "^$section\$" <<<"$text" || fail "$page has no $section section"
        done
        echo "ok - $(basename "$page"): $(wc -l <<<"$text") lines, no warnings"
done
