#!/usr/bin/env bash
# libcertbroker against certbrokerd in the real lab, as the unprivileged tenant alice: every
# call of certbroker.h, its results, and its errors (D-Bus name, errno, message), through
# tests/unit/client/client-lib-driver.c.
set -euo pipefail
: "${CB_SOURCE_ROOT:=$(cd "$(dirname "$0")/../.." && pwd)}"
. "$CB_SOURCE_ROOT/tests/integration/daemon-enter.sh" "$@"

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

# ---- Enroll's token over busctl: per user, durable across a restart of certbrokerd ----
# tok USER NAME TOKEN: Enroll NAME with option token; prints the reply.
tok() { cb "$1" call "$CB_BUS" "$CB_PATH" "$CB_BUS.Manager" Enroll ssasa{sv} corp "" 1 "$2" 1 token s "$3"; }
b1=$(tok bob tok.b.example.test shared-token) || lab_fail "bob's Enroll with a token"
lab_assert_eq "$(tok bob tok.b.example.test shared-token)" "$b1" "bob's Enroll with the same token again"
a1=$(tok alice tok.a.example.test shared-token) || lab_fail "alice's Enroll with bob's token"
[ "$a1" != "$b1" ] || lab_fail "alice's Enroll with bob's token returned bob's request $b1"
if out=$(tok alice tok.a.example.test shared-token-2 >/dev/null && tok alice tok2.a.example.test shared-token-2 2>&1); then
        lab_fail "the same token with other names was accepted: $out"
fi
lab_assert_contains "$out" "which was made with another names" "the same token with other names"
broker_stop
broker_start
lab_assert_eq "$(tok bob tok.b.example.test shared-token)" "$b1" "bob's token after a restart of certbrokerd"
lab_assert_eq "$(tok alice tok.a.example.test shared-token)" "$a1" "alice's token after a restart of certbrokerd"
lab_assert_eq "$(cb bob call "$CB_BUS" "$CB_PATH" "$CB_BUS.Manager" ListRequests | grep -o 'request/' | wc -l)" 2 \
        "bob's requests (the one of the driver and the token's)"
lab_pass "Enroll's token: the same request for the same user (also after a restart of certbrokerd), another user's token is not theirs, other parameters refused"
ndes ctl pending=on >/dev/null
run_driver --pending
lab_pass "done"
broker_stop
