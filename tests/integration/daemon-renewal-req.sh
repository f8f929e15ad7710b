#!/usr/bin/env bash
# Renewal= on the real lab (README "Renewal without a challenge"): with scep-renewal a tracked
# chain's successor is enrolled with a RenewalReq signed by the certificate being renewed: the
# NDES emulator issues it (scep.log type=17 why=renewed) and no challenge is fetched (its
# challenge.log, one line per mscep_admin GET, does not grow). The key of the live member is
# kept encrypted in the store after TakeKey (which still works once) and erased once the
# successor is issued. auto: a RenewalReq the CA refuses (renewal=refuse) falls back to a
# PKCSReq with a challenge at once, and the CA's next successor goes straight to a PKCSReq.
# scep-renewal on a CA whose GetCACaps lacks Renewal: the successor fails with
# InvalidConfiguration naming the setting, and auto enrolls it with a challenge (a log line).
# A successor's RenewalReq answered PENDING survives a kill -9 of the broker: its CertPoll
# after the restart gets the certificate once NDES approves.
set -euo pipefail
: "${CB_SOURCE_ROOT:=$(cd "$(dirname "$0")/../.." && pwd)}"
. "$CB_SOURCE_ROOT/tests/integration/daemon-enter.sh" "$@"

broker_lab
sed -i "s/^\[Broker\]$/[Broker]\nKeyPool=rsa:2048=4/" "$CB_CONF/certbroker.conf"
printf 'RenewBefore=3s\nRenewJitter=0\nRenewal=scep-renewal\n' >>"$CB_CONF/ca.d/corp.conf"
sed -e 's/Default=yes/Default=no/' -e 's/^Renewal=.*/Renewal=auto/' -e 's/^RenewBefore=.*/RenewBefore=5s/' "$CB_CONF/ca.d/corp.conf" >"$CB_CONF/ca.d/auto.conf"
sed -e 's/Default=yes/Default=no/' -e 's/^RenewBefore=.*/RenewBefore=5s/' "$CB_CONF/ca.d/corp.conf" >"$CB_CONF/ca.d/norenew.conf"
sed -e 's/^Renewal=.*/Renewal=auto/' "$CB_CONF/ca.d/norenew.conf" >"$CB_CONF/ca.d/autonr.conf"
ndes ctl validity=11 >/dev/null
broker_start

admin_gets() { ndes log | grep -c 'result=issued' || true; }
db() { "$LAB_PYTHON" -c 'import sqlite3, sys
db = sqlite3.connect("file:" + sys.argv[1] + "?mode=ro", uri=True)
for row in db.execute(sys.argv[2], sys.argv[3:]):
    print(*row)' "$CB_STATE/certbroker.db" "$@"; }
kept() { db "SELECT renewal_key IS NOT NULL FROM requests WHERE id = ?" "${1##*/}"; }
wait_successor() {
        lab_wait_for "$2" "a successor of $1" bash -c "[ \"\$(busctl --system get-property $CB_BUS $1 $CB_BUS.Request Successor)\" != 'o \"/\"' ]"
        oprop alice "$1" Successor
}
subject_of() { cb_prop alice "$1" Certificate | openssl x509 -noout -subject -nameopt RFC2253; }
pubkey_of() { cb_prop alice "$1" Certificate | openssl x509 -noout -pubkey | sha256sum | cut -c1-16; }
# scep_lines PATH PATTERN: the emulator's scep.log lines for the request's transaction that match.
scep_lines() { ndes_scep_log_count "txid=$(cb_prop alice "$1" TransactionId) .*$2"; }

# ---- scep-renewal: the successor by RenewalReq, no challenge ----
p1=$(enroll_renew alice corp rr.a.example.test)
lab_assert_eq "$(cb_wait alice "$p1" 60)" issued "the first request of the chain"
before=$(admin_gets)
[ "$before" -ge 1 ] || lab_fail "the first enrollment fetched no challenge ($before)"
lab_assert_eq "$(kept "$p1")" 1 "the key of the live member kept for its RenewalReq"
key=$(cb alice call "$CB_BUS" "$p1" "$CB_BUS.Request" TakeKey) || lab_fail "TakeKey failed"
key=${key#s \"}
printf '%b' "${key%\"}" >"$LAB_DIR/p1.key"
openssl pkey -in "$LAB_DIR/p1.key" -noout 2>/dev/null || lab_fail "TakeKey gave no private key"
if out=$(cb alice call "$CB_BUS" "$p1" "$CB_BUS.Request" TakeKey 2>&1); then
        lab_fail "TakeKey worked twice: $out"
fi
lab_assert_contains "$out" "was already taken" "a second TakeKey"
lab_assert_eq "$(kept "$p1")" 1 "the kept key after TakeKey"
# Encrypted at rest: no part of the key's PEM in any file of the state directory.
chunk=$(sed -n 3p "$LAB_DIR/p1.key" | cut -c1-40)
[ ${#chunk} -eq 40 ] || lab_fail "no base64 line in the taken key"
if grep -rqF -- "$chunk" "$CB_STATE"; then
        lab_fail "the kept key is in the state directory in plaintext"
fi
lab_pass "the key is kept encrypted after TakeKey, which still works once"

p2=$(wait_successor "$p1" 30)
lab_assert_eq "$(cb_wait alice "$p2" 60)" issued "the successor by RenewalReq"
# At once, before p2's own successor is due (8 s): the keys, then the chain stopped.
lab_assert_eq "$(kept "$p1")" 0 "the predecessor's kept key once its successor is issued"
lab_assert_eq "$(kept "$p2")" 1 "the successor's key, kept for the next renewal"
cb alice call "$CB_BUS" "$p2" "$CB_BUS.Request" StopRenewal >/dev/null
lab_assert_eq "$(oprop alice "$p2" Successor)" / "the successor's Successor when its renewal was stopped"
lab_assert_eq "$(kept "$p2")" 0 "the kept key after StopRenewal"
lab_assert_eq "$(admin_gets)" "$before" "challenges fetched (mscep_admin GETs) for the RenewalReq"
lab_assert_eq "$(scep_lines "$p2" 'status=SUCCESS failinfo=-1 why=renewed')" 1 "the successor's RenewalReq issued"
lab_assert_eq "$(ndes_scep_log_count "type=17 txid=$(cb_prop alice "$p2" TransactionId) ")" 1 "the successor's RenewalReqs"
lab_assert_eq "$(ndes_scep_log_count "type=19 txid=$(cb_prop alice "$p2" TransactionId) ")" 0 "the successor's PKCSReqs"
lab_assert_eq "$(subject_of "$p2")" "$(subject_of "$p1")" "the successor's subject"
[ "$(pubkey_of "$p1")" != "$(pubkey_of "$p2")" ] || lab_fail "the successor reuses the old key"
cb_prop alice "$p2" Certificate >"$LAB_DIR/p2.crt"
# (Its 11 s may be over by now under a sanitizer: the chain is checked, not the time.)
out=$(openssl verify -no_check_time -CAfile "$NDES_STATE/ca.crt" "$LAB_DIR/p2.crt" 2>&1) ||
        lab_fail "the successor does not chain to the emulator's CA: $out"
grep -q "the key kept for its renewal is erased: its successor is issued" "$LAB_DIR/certbrokerd.log" ||
        lab_fail "no log line for the erased key"
lab_pass "scep-renewal: the successor is issued on a RenewalReq signed by the old certificate, no challenge fetched"

# ---- scep-renewal answered PENDING, the broker killed -9, NDES approves after its restart ----
# The successor's RenewalReq is held for approval; the broker is killed -9 and started again;
# the resumed successor polls (CertPoll, no challenge, no new RenewalReq) and is issued once
# NDES approves it.
ndes ctl pending=on >/dev/null
pa=$(enroll_renew alice corp rp.a.example.test)
lab_wait_for 60 "the first request of the pending chain to be PENDING" bash -c \
        "[ \"\$(busctl --system get-property $CB_BUS $pa $CB_BUS.Request State)\" = 's \"pending\"' ]"
ndes approve all >/dev/null
lab_assert_eq "$(cb_wait alice "$pa" 60)" issued "the first request of the pending chain, approved"
before=$(admin_gets)
pb=$(wait_successor "$pa" 30)
lab_wait_for 60 "the successor's RenewalReq to be PENDING" bash -c \
        "[ \"\$(busctl --system get-property $CB_BUS $pb $CB_BUS.Request State)\" = 's \"pending\"' ]"
lab_assert_eq "$(ndes_scep_log_count "type=17 txid=$(cb_prop alice "$pb" TransactionId) .*status=PENDING .*why=renewal-pending-approval")" 1 \
        "the successor's RenewalReq held for approval"
kill -9 "$(lab_pid certbrokerd)"
lab_stop certbrokerd
broker_check_log
broker_start
ndes approve all >/dev/null
state=$(cb_wait alice "$pb" 90)
[ "$state" = issued ] || lab_fail "the pending successor after kill -9 ended '$state': $(cb_prop alice "$pb" ErrorMessage)"
cb alice call "$CB_BUS" "$pb" "$CB_BUS.Request" StopRenewal >/dev/null
lab_assert_eq "$(ndes_scep_log_count "type=17 txid=$(cb_prop alice "$pb" TransactionId) ")" 1 "the successor's RenewalReqs"
lab_assert_eq "$(ndes_scep_log_count "type=19 txid=$(cb_prop alice "$pb" TransactionId) ")" 0 "the successor's PKCSReqs"
[ "$(ndes_scep_log_count "type=20 txid=$(cb_prop alice "$pb" TransactionId) .*status=SUCCESS")" -ge 1 ] || lab_fail "no CertPoll answered SUCCESS for the successor"
lab_assert_eq "$(admin_gets)" "$before" "challenges fetched for the pending RenewalReq and its polls"
lab_assert_eq "$(kept "$pa")" 0 "the predecessor's kept key once its pending successor is issued"
lab_assert_eq "$(subject_of "$pb")" "$(subject_of "$pa")" "the pending successor's subject"
[ "$(pubkey_of "$pa")" != "$(pubkey_of "$pb")" ] || lab_fail "the pending successor reuses the old key"
lab_assert_eq "$(cb_prop alice "$pb" Warning)" "" "Warning of the pending successor"
ndes ctl pending=off >/dev/null
lab_pass "scep-renewal: a RenewalReq answered PENDING is polled after kill -9 and issued once NDES approves"

# ---- auto: the CA refuses RenewalReq: a PKCSReq with a challenge, remembered for the CA ----
ndes ctl renewal=refuse >/dev/null
p3=$(enroll_renew alice auto fb.a.example.test)
lab_assert_eq "$(cb_wait alice "$p3" 60)" issued "the first request of the auto chain"
before=$(admin_gets)
p4=$(wait_successor "$p3" 30)
lab_assert_eq "$(cb_wait alice "$p4" 60)" issued "the successor after the refused RenewalReq"
lab_assert_eq "$(ndes_scep_log_count "type=17 txid=$(cb_prop alice "$p4" TransactionId) .*status=FAILURE failinfo=2 why=renewal-refused")" 1 \
        "the successor's refused RenewalReqs"
lab_assert_eq "$(ndes_scep_log_count "type=19 txid=$(cb_prop alice "$p4" TransactionId) .*status=SUCCESS")" 1 \
        "the successor's PKCSReq after the refusal"
[ "$(admin_gets)" -gt "$before" ] || lab_fail "the fallback fetched no challenge"
lab_assert_eq "$(cb_prop alice "$p4" Warning)" "" "Warning of a successor that fell back under auto"
until=$(db "SELECT refused_until FROM ca_renewal WHERE ca = 'auto'")
[ -n "$until" ] && [ "$until" -gt "$(($(date +%s) * 1000000))" ] || lab_fail "the refusal is not remembered for CA auto ($until)"
grep -q "refused the RenewalReq" "$LAB_DIR/certbrokerd.log" || lab_fail "no log line for the refused RenewalReq"
p5=$(wait_successor "$p4" 30)
lab_assert_eq "$(cb_wait alice "$p5" 60)" issued "the next successor of the auto chain"
[ -n "$(cb_prop alice "$p5" TransactionId)" ] || lab_fail "the next successor has no transaction"
lab_assert_eq "$(ndes_scep_log_count "type=17 txid=$(cb_prop alice "$p5" TransactionId) ")" 0 \
        "RenewalReqs of the next successor (the CA refused one within 24 hours)"
cb alice call "$CB_BUS" "$p5" "$CB_BUS.Request" StopRenewal >/dev/null
lab_pass "auto: a refused RenewalReq falls back to a challenge at once, and the CA's next successor enrolls with one"

# ---- a CA whose GetCACaps lacks Renewal: scep-renewal named, auto falls back with a log line ----
ndes ctl renewal=accept caps_renewal=off >/dev/null
p6=$(enroll_renew alice norenew nr.a.example.test)
p8=$(enroll_renew alice autonr anr.a.example.test)
lab_assert_eq "$(cb_wait alice "$p6" 60)" issued "the first request on the CA without Renewal"
lab_assert_eq "$(cb_wait alice "$p8" 60)" issued "the first request on the CA without Renewal (auto)"
p7=$(wait_successor "$p6" 30)
lab_assert_eq "$(cb_wait alice "$p7" 60)" failed "the successor on a CA without Renewal"
lab_assert_eq "$(cb_prop alice "$p7" Error)" org.certbroker.Broker1.Error.InvalidConfiguration "its Error"
msg=$(cb_prop alice "$p7" ErrorMessage)
lab_assert_contains "$msg" "Renewal=scep-renewal" "its ErrorMessage names the setting"
lab_assert_contains "$msg" "does not offer Renewal" "its ErrorMessage names GetCACaps"
lab_assert_eq "$(cb_prop alice "$p7" TransactionId)" "" "the successor's TransactionId (nothing was sent)"
lab_assert_eq "$(grep -c "Request ${p7##*/}: enrolling with a RenewalReq" "$LAB_DIR/certbrokerd.log" || true)" 0 \
        "RenewalReqs to a CA without Renewal"
p9=$(wait_successor "$p8" 30)
lab_assert_eq "$(cb_wait alice "$p9" 60)" issued "auto's successor on a CA without Renewal"
cb alice call "$CB_BUS" "$p9" "$CB_BUS.Request" StopRenewal >/dev/null
grep -q "Request ${p9##*/}: CA autonr does not offer Renewal in GetCACaps; enrolling with a challenge (Renewal=auto)" \
        "$LAB_DIR/certbrokerd.log" || lab_fail "no log line for auto's fallback on a CA without Renewal"
lab_assert_eq "$(cb_prop alice "$p9" Warning)" "" "Warning of auto's successor on a CA without Renewal"
lab_assert_eq "$(ndes_scep_log_count "type=19 txid=$(cb_prop alice "$p9" TransactionId) .*status=SUCCESS")" 1 \
        "auto's successor enrolled by PKCSReq"
lab_pass "a CA without Renewal in GetCACaps: scep-renewal fails with InvalidConfiguration naming the setting, auto enrolls with a challenge"

ndes ctl validity=0 caps_renewal=on >/dev/null
broker_stop
