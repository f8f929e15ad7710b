#!/usr/bin/env bash
# Renewal= against an independent SCEP server, micromdm's scepserver (Debian package scep). Its
# -allowrenew N issues a certificate for a CN that already has one only when that one expires
# within N days (0: always), whatever the message type; its -challenge is checked on every
# request, RenewalReq included. So:
#  - without -challenge and with -allowrenew 0, a tracked chain (Renewal=scep-renewal) renews by
#    RenewalReq: scepserver issues the successor to a request signed by the old certificate;
#  - with -challenge, a RenewalReq (which carries none) gets a FAILURE CertRep: Renewal=auto falls
#    back to a PKCSReq with the static challenge and the successor is issued;
#    Renewal=scep-renewal ends the successor rejected, naming Renewal=auto.
set -euo pipefail
: "${CB_SOURCE_ROOT:=$(cd "$(dirname "$0")/../.." && pwd)}"
. "$CB_SOURCE_ROOT/tests/integration/daemon-enter.sh" "$@"

challenge=lab-static-$RANDOM$RANDOM
lab_kdc
lab_scepserver ""
lab_stop scepserver
# 1-day certificates (scepserver's shortest), renewed 4 s after issuance.
scepserver_run() {
        lab_start scepserver scepserver -depot "$LAB_SCEPSERVER_DEPOT" -port "$LAB_SCEPSERVER_PORT" -crtvalid 1 \
                -allowrenew 0 -debug "$@"
        lab_wait_for 15 "scepserver to answer" curl -sf -o /dev/null --max-time 2 "$LAB_SCEPSERVER_URL?operation=GetCACaps"
}
scepserver_run
caps=$(curl -sf --max-time 5 "$LAB_SCEPSERVER_URL?operation=GetCACaps")
lab_assert_contains "$caps" Renewal "scepserver's GetCACaps"
lab_bus
broker_scepserver_config "$challenge"
scepserver_ca mdm yes yes RenewBefore=86396s RenewJitter=0 Renewal=scep-renewal
scepserver_ca mdm-auto yes no RenewBefore=86396s RenewJitter=0 Renewal=auto
broker_start

wait_successor() {
        lab_wait_for "$2" "a successor of $1" bash -c "[ \"\$(busctl --system get-property $CB_BUS $1 $CB_BUS.Request Successor)\" != 'o \"/\"' ]"
        oprop alice "$1" Successor
}
pubkey_of() { cb_prop alice "$1" Certificate | openssl x509 -noout -pubkey | sha256sum | cut -c1-16; }
# scepserver -debug logs each PKIOperation's message type ("RenewalReq (17)", "PKCSReq (19)").
scep_count() { grep -c -- "$1" "$LAB_DIR/scepserver.log" || true; }
[ -f "$LAB_DIR/scepserver.log" ] || lab_fail "no scepserver log at $LAB_DIR/scepserver.log"

# ---- scepserver without -challenge: the successor by RenewalReq ----
p1=$(enroll_renew alice mdm renew.a.example.test)
lab_assert_eq "$(cb_wait alice "$p1" 60)" issued "the first request of the chain"
p2=$(wait_successor "$p1" 30)
state=$(cb_wait alice "$p2" 60)
[ "$state" = issued ] || { cat "$LAB_DIR/scepserver.log" >&2; lab_fail "the RenewalReq's successor ended $state: $(cb_prop alice "$p2" ErrorMessage)"; }
cb_prop alice "$p2" Certificate >"$LAB_DIR/p2.crt"
out=$(openssl verify -CAfile "$LAB_SCEPSERVER_CA" "$LAB_DIR/p2.crt" 2>&1) || lab_fail "not issued by scepserver's CA: $out"
[ "$(pubkey_of "$p1")" != "$(pubkey_of "$p2")" ] || lab_fail "the successor reuses the old key"
grep -q "Request ${p2##*/}: enrolling with a RenewalReq signed by the certificate of request ${p1##*/}" "$LAB_DIR/certbrokerd.log" ||
        lab_fail "the broker did not send a RenewalReq for the successor"
n17=$(scep_count 'RenewalReq')
[ "$n17" -ge 1 ] || { cat "$LAB_DIR/scepserver.log" >&2; lab_fail "scepserver logged no RenewalReq"; }
cb alice call "$CB_BUS" "$p2" "$CB_BUS.Request" StopRenewal >/dev/null
lab_pass "scepserver issues the successor of a tracked chain to a RenewalReq signed by the old certificate"

# ---- scepserver with -challenge: the RenewalReq is refused ----
lab_stop scepserver
scepserver_run -challenge "$challenge"
p3=$(enroll_renew alice mdm-auto auto.a.example.test)
lab_assert_eq "$(cb_wait alice "$p3" 60)" issued "the first request of the auto chain"
p4=$(wait_successor "$p3" 30)
state=$(cb_wait alice "$p4" 60)
[ "$state" = issued ] || lab_fail "auto's successor ended $state: $(cb_prop alice "$p4" ErrorMessage)"
grep -q "Request ${p4##*/}: .* refused the RenewalReq" "$LAB_DIR/certbrokerd.log" ||
        lab_fail "no log line for the RenewalReq scepserver refused"
# (The restarted scepserver logs afresh.)
[ "$(scep_count 'RenewalReq')" -ge 1 ] || lab_fail "no RenewalReq reached the restarted scepserver"
grep -q "invalid challenge" "$LAB_DIR/scepserver.log" || { cat "$LAB_DIR/scepserver.log" >&2; lab_fail "scepserver did not refuse the challenge"; }
cb alice call "$CB_BUS" "$p4" "$CB_BUS.Request" StopRenewal >/dev/null
lab_pass "Renewal=auto: scepserver -challenge refuses the RenewalReq; the successor is enrolled with the static challenge"

p5=$(enroll_renew alice mdm strict.a.example.test)
lab_assert_eq "$(cb_wait alice "$p5" 60)" issued "the first request of the scep-renewal chain"
p6=$(wait_successor "$p5" 30)
lab_assert_eq "$(cb_wait alice "$p6" 60)" rejected "scep-renewal's successor at scepserver -challenge"
lab_assert_eq "$(cb_prop alice "$p6" Error)" org.certbroker.Broker1.Error.CARejected "its Error"
lab_assert_contains "$(cb_prop alice "$p6" ErrorMessage)" "RenewalReq (Renewal=scep-renewal; Renewal=auto" "its ErrorMessage"
cb alice call "$CB_BUS" "$p5" "$CB_BUS.Request" StopRenewal >/dev/null
lab_pass "Renewal=scep-renewal: the refused RenewalReq ends the successor rejected, naming Renewal=auto"

broker_stop
