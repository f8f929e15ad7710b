#!/usr/bin/env bash
# libcertbroker against certbrokerd in the real lab, as the unprivileged tenant alice: every
# call of certbroker.h, its results, and its errors (D-Bus name, errno, message), through
# tests/unit/client/client-lib-driver.c.
set -euo pipefail
: "${CB_SOURCE_ROOT:=$(cd "$(dirname "$0")/../.." && pwd)}"
. "$CB_SOURCE_ROOT/tests/lab/lab.sh"
lab_enter "$@"
. "$CB_SOURCE_ROOT/tests/integration/ndes-common.sh"
. "$CB_SOURCE_ROOT/tests/integration/daemon-common.sh"

DRIVER=$CB_BUILD_ROOT/tests/unit/client/client-lib-driver
[ -x "$DRIVER" ] || lab_fail "not built: $DRIVER (meson compile -C \$builddir tests/unit/client/client-lib-driver)"

broker_lab
broker_start
lab_wait_for 20 "ticket-granting ticket" bash -c \
        "[ \"\$(busctl --system get-property $CB_BUS $CB_PATH $CB_BUS.Manager CredentialState)\" = 's \"valid\"' ]"

# bob's request, for the AccessDenied case
bpath=$(cb_enroll bob corp other.b.example.test) || lab_fail "bob's Enroll failed"

# run_driver ARGS: as alice; fails on a non-zero exit or a sanitizer report
run_driver() {
        local out rc=0
        out=$(lab_run_as alice "$DRIVER" "$@" 2>&1) || rc=$?
        printf '%s\n' "$out"
        [ "$rc" = 0 ] || lab_fail "client-lib-driver $* exited $rc"
        case "$out" in
        *"runtime error:"*|*Sanitizer*) lab_fail "client-lib-driver $*: sanitizer report" ;;
        esac
}

run_driver "${bpath##*/}"
ndes ctl pending=on >/dev/null
run_driver --pending
lab_pass "done"
broker_stop
