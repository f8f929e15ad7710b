#!/usr/bin/env bash
# certbrokerd against an independent SCEP server: micromdm's scepserver (Debian package scep),
# with a static challenge, no RA (CA only), and single-DES replies that only a CA with
# AllowLegacyCiphers=yes accepts. scepserver implements no CertPoll (it answers HTTP 500): a
# request interrupted while its PKCSReq is there (the broker killed -9, or scepserver killed)
# must still end issued, submitted again after at most 3 CertPolls, the duplicate risk recorded.
set -euo pipefail
: "${CB_SOURCE_ROOT:=$(cd "$(dirname "$0")/../.." && pwd)}"
. "$CB_SOURCE_ROOT/tests/integration/daemon-enter.sh" "$@"

challenge=lab-static-$RANDOM$RANDOM
lab_kdc
lab_scepserver "$challenge"
lab_bus
broker_scepserver_config "$challenge"
scepserver_ca mdm yes yes
scepserver_ca mdm-strict no no
broker_start

path=$(cb_enroll alice mdm svc.a.example.test) || lab_fail "Enroll against scepserver failed"
state=$(cb_wait alice "$path" 60)
if [ "$state" != issued ]; then
        cat "$LAB_DIR/certbrokerd.log" >&2
        lab_fail "scepserver enrollment ended '$state': $(cb_prop alice "$path" ErrorMessage)"
fi
cb_prop alice "$path" Certificate >"$LAB_DIR/mdm.crt"
out=$(openssl verify -CAfile "$LAB_SCEPSERVER_CA" "$LAB_DIR/mdm.crt" 2>&1) || lab_fail "not issued by scepserver's CA: $out"
lab_assert_contains "$(openssl x509 -in "$LAB_DIR/mdm.crt" -noout -subject -nameopt RFC2253)" "CN=svc.a.example.test" "subject"
key=$(cb alice call "$CB_BUS" "$path" "$CB_BUS.Request" TakeKey)
key=${key#s \"}
printf '%b' "${key%\"}" >"$LAB_DIR/mdm.key"
lab_assert_eq "$(openssl pkey -in "$LAB_DIR/mdm.key" -pubout | sha256sum)" \
        "$(openssl x509 -in "$LAB_DIR/mdm.crt" -noout -pubkey | sha256sum)" "key matches certificate"
lab_assert_contains "$(cb alice get-property "$CB_BUS" /org/certbroker/Broker1/ca/mdm "$CB_BUS.CA" Capabilities)" \
        "SCEPStandard" "the CA's Capabilities property"
lab_assert_eq "$(cb alice get-property "$CB_BUS" /org/certbroker/Broker1/ca/mdm "$CB_BUS.CA" RACertificates)" \
        's ""' "scepserver has no RA"
lab_pass "enrolled against micromdm's scepserver with a static challenge (CA only, legacy DES reply)"

path=$(cb_enroll alice mdm-strict strict.a.example.test) || lab_fail "Enroll (strict CA) failed"
state=$(cb_wait alice "$path" 60)
lab_assert_eq "$state" failed "a DES reply without AllowLegacyCiphers"
msg=$(cb_prop alice "$path" ErrorMessage)
lab_assert_contains "$msg" "AllowLegacyCiphers" "the failure names the setting that allows it"
lab_pass "the same server's single-DES reply is refused where AllowLegacyCiphers=no, naming the setting"

# ---- interrupted while the PKCSReq is at scepserver ----
# scepserver refuses a second certificate for a subject it issued one for within 14 days
# (-allowrenew); NDES issues again. Run it as NDES behaves, so that a resubmission issues.
lab_stop scepserver
lab_start scepserver scepserver -depot "$LAB_SCEPSERVER_DEPOT" -port "$LAB_SCEPSERVER_PORT" -challenge "$challenge" \
        -allowrenew 0
lab_wait_for 15 "scepserver to answer" curl -sf -o /dev/null --max-time 2 "$LAB_SCEPSERVER_URL?operation=GetCACaps"
# scepserver_queued: the stopped scepserver has a request waiting in a socket's receive queue.
scepserver_queued() {
        ss -Htn state established "( sport = :$LAB_SCEPSERVER_PORT )" | awk '$1 > 0 { found = 1 } END { exit !found }'
}
# check_resubmitted PATH WHAT: issued once more after CertPolls scepserver could not answer.
check_resubmitted() {
        local p=$1 what=$2 state w
        state=$(cb_wait alice "$p" 240)
        [ "$state" = issued ] || lab_fail "$what: ended '$state': $(cb_prop alice "$p" ErrorMessage)"
        w=$(cb_prop alice "$p" Warning)
        lab_assert_contains "$w" "may have been issued twice" "$what: the duplicate risk is recorded"
        lab_assert_contains "$w" "$(cb_prop alice "$p" TransactionId)" "$what: the Warning names the transaction"
        lab_assert_contains "$w" "CertPoll" "$what: the Warning says CertPoll could not tell"
}

# The broker killed -9 while scepserver (stopped) holds the PKCSReq; scepserver issues after
# the broker is gone; the restarted broker asks with CertPoll (HTTP 500) and submits again.
kill -STOP "$(lab_pid scepserver)"
p=$(cb_enroll alice mdm crash.a.example.test) || lab_fail "Enroll (broker killed) failed"
lab_wait_for 30 "the PKCSReq to wait at scepserver" scepserver_queued
kill -9 "$(lab_pid certbrokerd)"
lab_stop certbrokerd
broker_check_log
kill -CONT "$(lab_pid scepserver)"
broker_start
check_resubmitted "$p" "killed broker"
n=$(grep -c "CertPoll for transaction" "$LAB_DIR/certbrokerd.log" || true)
[ "$n" -ge 1 ] && [ "$n" -le 3 ] || lab_fail "killed broker: $n CertPolls without a CertRep before submitting again (1 to 3 expected)"
lab_pass "broker killed -9 with its PKCSReq at scepserver (no CertPoll, HTTP 500): submitted again after $n CertPolls, issued, duplicate risk recorded"

# scepserver killed -9 while it holds the PKCSReq, then started again on the same depot.
kill -STOP "$(lab_pid scepserver)"
p=$(cb_enroll alice mdm killed-ca.a.example.test) || lab_fail "Enroll (scepserver killed) failed"
lab_wait_for 30 "the PKCSReq to wait at scepserver" scepserver_queued
kill -9 "$(lab_pid scepserver)"
lab_stop scepserver
lab_start scepserver scepserver -depot "$LAB_SCEPSERVER_DEPOT" -port "$LAB_SCEPSERVER_PORT" -challenge "$challenge" \
        -allowrenew 0
lab_wait_for 15 "scepserver to answer again" curl -sf -o /dev/null --max-time 2 "$LAB_SCEPSERVER_URL?operation=GetCACaps"
check_resubmitted "$p" "killed scepserver"
lab_pass "scepserver killed -9 mid-PKIOperation and started again: the request is submitted again and issued"
lab_assert_eq "$(cb_prop alice "$p" State)" issued "state after the scepserver kill"

# The static challenge never reaches the log.
lab_assert_file_lacks "$LAB_DIR/certbrokerd.log" "$challenge" "certbrokerd log"
lab_pass "the static challenge stays out of the log"
broker_stop
