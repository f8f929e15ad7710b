#!/usr/bin/env bash
# certbrokerd through transient failures and in gss-proxy mode, on the real lab:
#  - the KDC is down: requests wait in `retrying` (KerberosFailed, NextAttempt set) and are
#    issued once it is back;
#  - NDES's password cache is full: `retrying` with ChallengeUnavailable, issued once the old
#    challenges expire;
#  - Mode=gss-proxy: the broker runs as its own user, cannot read the keytab, and enrolls.
set -euo pipefail
: "${CB_SOURCE_ROOT:=$(cd "$(dirname "$0")/../.." && pwd)}"
. "$CB_SOURCE_ROOT/tests/integration/daemon-enter.sh" "$@"

broker_lab

state_is() {    # state_is PATH STATE
        [ "$(busctl --system get-property "$CB_BUS" "$1" "$CB_BUS.Request" State)" = "s \"$2\"" ]
}
export -f state_is
export CB_BUS

# ---- KDC down ----
lab_kdc_stop
broker_start
p1=$(cb_enroll alice corp kdc.a.example.test)
lab_wait_for 60 "request retrying while the KDC is down" state_is "$p1" retrying
lab_assert_eq "$(cb_prop alice "$p1" Error)" "org.certbroker.Broker1.Error.KerberosFailed" "Error with the KDC down"
lab_assert_contains "$(cb_prop alice "$p1" ErrorMessage)" "kdc.example.test" "the message names the KDC"
next=$(cb alice get-property "$CB_BUS" "$p1" "$CB_BUS.Request" NextAttempt | awk '{print $2}')
[ "$next" -gt 0 ] || lab_fail "NextAttempt is not set on a retrying request"
lab_assert_eq "$(cb alice get-property "$CB_BUS" "$CB_PATH" "$CB_BUS.Manager" CredentialState)" 's "unavailable"' "CredentialState with the KDC down"
lab_kdc_start
state=$(cb_wait alice "$p1" 120)
[ "$state" = issued ] || lab_fail "after the KDC came back the request ended '$state': $(cb_prop alice "$p1" ErrorMessage)"
lab_assert_eq "$(cb_prop alice "$p1" Error)" "" "Error once issued"
lab_pass "KDC down: retrying with KerberosFailed and NextAttempt; issued once the KDC is back"

# ---- NDES password cache full ----
kinit -k -t "$LAB_SVC_KEYTAB" svc-scep >/dev/null
for _ in 1 2 3 4 5; do ndes_challenge >/dev/null; done      # five unused challenges: full
p2=$(cb_enroll alice corp full.a.example.test)
lab_wait_for 60 "request retrying on a full cache" state_is "$p2" retrying
lab_assert_eq "$(cb_prop alice "$p2" Error)" "org.certbroker.Broker1.Error.ChallengeUnavailable" "Error on a full cache"
lab_assert_contains "$(cb_prop alice "$p2" ErrorMessage)" "cache is full" "the message says the cache is full"
ndes ctl clock_offset=3700 >/dev/null           # the five challenges expire
state=$(cb_wait alice "$p2" 120)
[ "$state" = issued ] || lab_fail "after the challenges expired the request ended '$state': $(cb_prop alice "$p2" ErrorMessage)"
ndes ctl clock_offset=0 >/dev/null
lab_pass "password cache full: retrying with ChallengeUnavailable; issued once old challenges expire"

# ---- no Enroll permission: a configuration error, failed at once ----
ndes ctl permission=denied >/dev/null
p3=$(cb_enroll alice corp noperm.a.example.test)
lab_assert_eq "$(cb_wait alice "$p3" 30)" failed "a request whose service account may not enroll"
lab_assert_eq "$(cb_prop alice "$p3" Error)" "org.certbroker.Broker1.Error.ChallengeUnavailable" "its error"
lab_assert_contains "$(cb_prop alice "$p3" ErrorMessage)" "Enroll permission on the certificate template" "its fix"
lab_assert_eq "$(cb alice get-property "$CB_BUS" "$p3" "$CB_BUS.Request" Attempts)" "u 1" "attempts before failing"
ndes ctl permission=granted >/dev/null
lab_pass "no permission to enroll: failed at once with the template-permission fix, not retried"

# ---- NDES answering 503 (its application pool stopped) before the broker knows its caps ----
broker_stop
ndes ctl unavailable=on >/dev/null
broker_start
p5=$(cb_enroll alice corp pool.a.example.test)
lab_wait_for 60 "request retrying while NDES answers 503" state_is "$p5" retrying
lab_assert_eq "$(cb_prop alice "$p5" Error)" "org.certbroker.Broker1.Error.CAUnreachable" "Error while NDES answers 503"
lab_assert_contains "$(cb_prop alice "$p5" ErrorMessage)" "HTTP 503" "the message names the answer"
ndes ctl unavailable=off >/dev/null
lab_assert_eq "$(cb_wait alice "$p5" 120)" issued "the request once NDES answers again"
lab_pass "NDES answering 503 to GetCACaps: retrying with CAUnreachable (not a missing capability); issued after"

# ---- Reload with another service account: new credentials, used at once ----
lab_kdc_addprinc svc-two "$LAB_DIR/svc-two.keytab"
sed -i -e 's/^Principal=.*/Principal=svc-two@EXAMPLE.TEST/' -e "s|^Keytab=.*|Keytab=$LAB_DIR/svc-two.keytab|" \
        "$CB_CONF/certbroker.conf"
cb root call "$CB_BUS" "$CB_PATH" "$CB_BUS.Manager" Reload >/dev/null
lab_assert_eq "$(cb alice get-property "$CB_BUS" "$CB_PATH" "$CB_BUS.Manager" Principal)" 's "svc-two@EXAMPLE.TEST"' "Principal after Reload"
p4=$(cb_enroll alice corp two.a.example.test)
state=$(cb_wait alice "$p4" 60)
[ "$state" = issued ] || lab_fail "after the Reload the request ended '$state': $(cb_prop alice "$p4" ErrorMessage)"
lab_assert_contains "$(ndes log | tail -n 1)" "svc-two@EXAMPLE.TEST" "the challenge after the Reload was fetched as"
lab_pass "a Reload that changes the service account takes effect at once"
broker_stop
sed -i -e 's/^Principal=.*/Principal=svc-scep@EXAMPLE.TEST/' -e "s|^Keytab=.*|Keytab=$LAB_SVC_KEYTAB|" \
        "$CB_CONF/certbroker.conf"

# ---- Mode=gss-proxy, the broker as user certbroker ----
sed -i 's/^\[Kerberos\]$/[Kerberos]\nMode=gss-proxy/' "$CB_CONF/certbroker.conf"
lab_gssproxy certbroker
rm -rf "$CB_STATE"
CB_BROKER_USER=certbroker broker_start
lab_assert_eq "$(ps -o user= -p "$(lab_pid certbrokerd)")" certbroker "the broker's user"
if lab_run_as certbroker cat "$LAB_SVC_KEYTAB" >/dev/null 2>&1; then
        lab_fail "the certbroker user can read the keytab: the test proves nothing"
fi
p3=$(cb_enroll alice corp proxy.a.example.test)
state=$(cb_wait alice "$p3" 60)
[ "$state" = issued ] || lab_fail "gss-proxy enrollment ended '$state': $(cb_prop alice "$p3" ErrorMessage)"
cb_prop alice "$p3" Certificate >"$LAB_DIR/proxy.crt"
ndes_verify_cert "$LAB_DIR/proxy.crt" proxy.a.example.test proxy.a.example.test
lab_assert_contains "$(ndes log | tail -1)" "svc-scep@EXAMPLE.TEST" "the challenge was fetched as the service account"
lab_pass "Mode=gss-proxy: the broker, unable to read the keytab, enrolls through gss-proxy"
broker_stop
