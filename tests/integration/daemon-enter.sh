# shellcheck shell=bash
# The start of a certbrokerd test (or benchmark), sourced with the script's arguments right
# after CB_SOURCE_ROOT is known:
#   . "$CB_SOURCE_ROOT/tests/integration/daemon-enter.sh" "$@"
# loads lab.sh, enters the lab (lab_enter re-executes the script in fresh namespaces) and loads
# ndes-common.sh and daemon-common.sh. Sourced, not a test itself. It checks what it loaded: a
# file that is missing or does not define what the tests call stops the test, named, instead
# of letting it fail later on a "command not found" (or pass on a check that never ran).
[ -n "${CB_SOURCE_ROOT:-}" ] && [ -f "$CB_SOURCE_ROOT/tests/lab/lab.sh" ] || {
        echo "not ok - daemon-enter.sh: CB_SOURCE_ROOT ('${CB_SOURCE_ROOT:-}') is not the source tree" >&2
        exit 1
}
. "$CB_SOURCE_ROOT/tests/lab/lab.sh"
declare -F lab_enter lab_fail >/dev/null || {
        echo "not ok - daemon-enter.sh: tests/lab/lab.sh defines no lab_enter or lab_fail" >&2
        exit 1
}
lab_enter "$@"
for _cb_enter_f in ndes-common.sh daemon-common.sh; do
        [ -f "$CB_SOURCE_ROOT/tests/integration/$_cb_enter_f" ] || lab_fail "daemon-enter.sh: tests/integration/$_cb_enter_f is missing"
        . "$CB_SOURCE_ROOT/tests/integration/$_cb_enter_f"
done
unset _cb_enter_f
declare -F ndes broker_lab broker_start >/dev/null ||
        lab_fail "daemon-enter.sh: ndes-common.sh and daemon-common.sh do not define ndes, broker_lab and broker_start"
