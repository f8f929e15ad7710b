#!/usr/bin/env bash
# certbrokerd's request lifecycle on the real lab: PENDING survives a restart and keeps polling;
# kill -9 while submitting loses and duplicates nothing; Cancel and Remove; MaxActive and
# MaxRequests quotas; Remove of a live request; a malformed configuration refuses to start
# naming file and line; a bad Reload (bus or SIGHUP) keeps the old configuration.
set -euo pipefail
: "${CB_SOURCE_ROOT:=$(cd "$(dirname "$0")/../.." && pwd)}"
. "$CB_SOURCE_ROOT/tests/integration/daemon-enter.sh" "$@"

broker_lab
cat >>"$CB_CONF/policy.d/tenants.policy" <<'CONF'

[Rule]
Name=mallory-few
Users=mallory
Names=*.m.example.test
MaxRequests=2/1h
CONF
# The broker is killed -9 three times below with a submission in flight: the challenge of each
# counts against MaxOutstandingChallenges= until NDES forgets it (an hour; certbroker.conf(5)),
# as NDES may not have consumed it. That trade-off is tested in daemon-challenge-restart; here
# the requests must go on, so the cap leaves room for those records.
echo "MaxOutstandingChallenges=16" >>"$CB_CONF/ca.d/corp.conf"
# The same NDES as a CA that gives up on pending requests after 2 seconds.
sed -e 's/Default=yes/Default=no/' "$CB_CONF/ca.d/corp.conf" >"$CB_CONF/ca.d/impatient.conf"
echo "PendingDeadline=2" >>"$CB_CONF/ca.d/impatient.conf"
broker_start

state_of() { cb_prop "$1" "$2" State; }
n_requests() { cb root call "$CB_BUS" "$CB_PATH" "$CB_BUS.Manager" ListRequests | awk '{print $2}'; }

# ---- PENDING, across a restart ----
ndes ctl pending=on >/dev/null
p1=$(cb_enroll alice corp pend.a.example.test)
lab_wait_for 30 "request pending" bash -c "[ \"\$(busctl --system get-property $CB_BUS $p1 $CB_BUS.Request State)\" = 's \"pending\"' ]"
txid=$(cb_prop alice "$p1" TransactionId)
[ ${#txid} -ge 32 ] || lab_fail "pending request has no transactionID: '$txid'"
lab_assert_eq "$(ndes pending | grep -c "$txid")" 1 "the emulator holds the pending transaction"

# No secret at rest: the one-time challenge password the request carried (as the emulator
# received it) is nowhere in the journal files, raw or inside a PEM block.
pending_csr=$NDES_STATE/transactions/$(printf %s "$txid" | sha256sum | cut -c1-32).csr
challenge=$(openssl req -inform DER -in "$pending_csr" -noout -text | sed -n 's/^ *challengePassword *: *//p')
[ ${#challenge} -eq 16 ] || lab_fail "no challenge password in the request NDES holds: '$challenge'"
# journal_scan: prints where the challenge is found in the journal files (none: exit 0).
journal_scan() {
        "$LAB_PYTHON" - "$challenge" "$CB_STATE"/certbroker.db* <<'PY'
import base64, re, sys
needle = sys.argv[1].encode()
found = []
for f in sys.argv[2:]:
    try:
        data = open(f, 'rb').read()
    except FileNotFoundError:
        continue
    if needle in data:
        found.append(f + ' (raw)')
    for m in re.finditer(rb'-----BEGIN ([A-Z0-9 ]+)-----(.*?)-----END \1-----', data, re.S):
        try:
            der = base64.b64decode(re.sub(rb'\s', b'', m.group(2)), validate=True)
        except ValueError:
            continue
        if needle in der:
            found.append(f + ' (in a PEM ' + m.group(1).decode() + ')')
print(', '.join(found))
sys.exit(1 if found else 0)
PY
}
where=$(journal_scan) || lab_fail "the challenge password of a PENDING request is stored in: $where"
# What the journal keeps is still a valid request: signed again by its key once the
# challenge was taken out (only a PENDING request is signed again).
"$LAB_PYTHON" -c 'import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute("SELECT csr FROM requests WHERE id = ?", (sys.argv[2],)).fetchone()[0])' \
        "$CB_STATE/certbroker.db" "${p1##*/}" >"$LAB_DIR/p1-kept.csr"
openssl req -in "$LAB_DIR/p1-kept.csr" -noout -verify 2>&1 | grep -q "verify OK" ||
        lab_fail "the PENDING request's kept CSR does not verify: $(openssl req -in "$LAB_DIR/p1-kept.csr" -noout -verify 2>&1)"
lab_assert_eq "$(openssl req -in "$LAB_DIR/p1-kept.csr" -noout -pubkey)" "$(openssl req -inform DER -in "$pending_csr" -noout -pubkey)" \
        "the kept CSR's key is the submitted one"
broker_stop
where=$(journal_scan) || lab_fail "the challenge password of a PENDING request is stored in (stopped): $where"
lab_pass "a PENDING request's journal entry holds no challenge password (database and WAL)"

# A journal written by an older certbrokerd kept the CSR whole, challenge included: the exact
# PKCS#10 NDES received. At load the challenge is taken out; the request still polls.
"$LAB_PYTHON" - "$CB_STATE/certbroker.db" "${p1##*/}" "$(openssl req -inform DER -in "$pending_csr" -outform PEM)" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
n = db.execute('UPDATE requests SET csr = ? WHERE id = ?', (sys.argv[3] + '\n', sys.argv[2])).rowcount
db.commit()
db.close()
sys.exit(0 if n == 1 else 1)
PY
[ -z "${CB_BROKER_USER:-}" ] || chown "$CB_BROKER_USER:" "$CB_STATE"/certbroker.db*
if journal_scan >/dev/null; then
        lab_fail "the old-style journal entry (CSR with challenge) was not written"
fi
broker_start
lab_assert_eq "$(state_of alice "$p1")" pending "state after restart"
where=$(journal_scan) || lab_fail "an old journal's challenge password is still stored after a restart in: $where"
lab_pass "an old journal's CSR loses its challenge password at load"
lab_assert_eq "$(cb_prop alice "$p1" TransactionId)" "$txid" "transactionID after restart"
ndes approve all >/dev/null
state=$(cb_wait alice "$p1" 60)
[ "$state" = issued ] || lab_fail "approved request ended '$state': $(cb_prop alice "$p1" ErrorMessage)"
cb_prop alice "$p1" Certificate >"$LAB_DIR/pend.crt"
ndes_verify_cert "$LAB_DIR/pend.crt" pend.a.example.test pend.a.example.test
attempts=$(cb alice get-property "$CB_BUS" "$p1" "$CB_BUS.Request" Attempts | awk '{print $2}')
[ "$attempts" -ge 2 ] || lab_fail "a polled request should count its polls (Attempts=$attempts)"
lab_pass "PENDING survives a restart, keeps its transactionID and is collected by CertPoll after approval"

# ---- PendingDeadline ----
pd=$(cb_enroll alice impatient late.a.example.test)
lab_assert_eq "$(cb_wait alice "$pd" 30)" failed "a pending request past PendingDeadline"
lab_assert_eq "$(cb_prop alice "$pd" Error)" "org.certbroker.Broker1.Error.Timeout" "Error past PendingDeadline"
lab_assert_contains "$(cb_prop alice "$pd" ErrorMessage)" "PendingDeadline" "the message names PendingDeadline"
lab_pass "a request still pending at PendingDeadline fails with Timeout"

# ---- Cancel and Remove ----
p2=$(cb_enroll alice corp cancel.a.example.test)
lab_wait_for 30 "second request pending" bash -c "[ \"\$(busctl --system get-property $CB_BUS $p2 $CB_BUS.Request State)\" = 's \"pending\"' ]"
if out=$(cb alice call "$CB_BUS" "$p2" "$CB_BUS.Request" Remove 2>&1); then
        lab_fail "Remove of a pending request succeeded"
fi
lab_assert_contains "$out" "Cancel() it first" "Remove of a live request"
# Its key's ciphertext, to look for in the store's files once Cancel erased it.
blob=$(sqlite3 -readonly "$CB_STATE/certbroker.db" "SELECT hex(key_blob) FROM requests WHERE id = '${p2##*/}'")
[ -n "$blob" ] || lab_fail "the pending request has no stored key"
cb alice call "$CB_BUS" "$p2" "$CB_BUS.Request" Cancel >/dev/null
# Cancel answered once the erase was on disk; the journal's worker then truncates the WAL, so the
# ciphertext is in neither file (secure_delete zeroed the database's pages).
blob_gone() {
        "$LAB_PYTHON" - "$blob" "$CB_STATE"/certbroker.db* <<'PY'
import sys
needle = bytes.fromhex(sys.argv[1])[:64]
sys.exit(1 if any(needle in open(p, "rb").read() for p in sys.argv[2:]) else 0)
PY
}
lab_wait_for 10 "the cancelled request's key gone from the database and its WAL" blob_gone
lab_assert_eq "$(state_of alice "$p2")" cancelled "state after Cancel"
lab_assert_eq "$(cb_prop alice "$p2" Error)" "org.certbroker.Broker1.Error.Cancelled" "Error after Cancel"
lab_assert_eq "$(cb_wait alice "$p2" 5)" cancelled "Wait on a cancelled request"
cb alice call "$CB_BUS" "$p2" "$CB_BUS.Request" Remove >/dev/null
if out=$(cb alice get-property "$CB_BUS" "$p2" "$CB_BUS.Request" State 2>&1); then
        lab_fail "a removed request is still there"
fi
lab_assert_contains "$out" "No request" "a removed request"
lab_pass "Cancel ends a pending request and erases its key from the store's files (database and WAL), Remove forgets it; Remove refuses a live one"

# ---- MaxActive=5 (tenant-a) while requests wait in pending ----
active=()
for i in 1 2 3 4 5; do
        active+=("$(cb_enroll alice corp q$i.a.example.test)")
done
if out=$(cb_enroll alice corp q6.a.example.test 2>&1); then
        lab_fail "a sixth active request was accepted"
fi
lab_assert_contains "$out" "MaxActive" "sixth request"
for p in "${active[@]}"; do
        cb alice call "$CB_BUS" "$p" "$CB_BUS.Request" Cancel >/dev/null
done
p7=$(cb_enroll alice corp q7.a.example.test) || lab_fail "after cancelling, a new request should be accepted"
cb alice call "$CB_BUS" "$p7" "$CB_BUS.Request" Cancel >/dev/null
lab_pass "MaxActive=5 refuses the sixth active request, and frees up after Cancel"

# ---- MaxRequests=2/1h (mallory): counts removed requests too ----
for i in 1 2; do
        p=$(cb_enroll mallory corp r$i.m.example.test)
        cb mallory call "$CB_BUS" "$p" "$CB_BUS.Request" Cancel >/dev/null
        cb mallory call "$CB_BUS" "$p" "$CB_BUS.Request" Remove >/dev/null
done
if out=$(cb_enroll mallory corp r3.m.example.test 2>&1); then
        lab_fail "a third request within the hour was accepted"
fi
lab_assert_contains "$out" "MaxRequests" "third request within the window"
lab_pass "MaxRequests=2/1h refuses the third request, even after the first two were removed"
ndes ctl pending=off >/dev/null

# ---- kill -9 while submitting: nothing lost, nothing duplicated ----
before=$(n_requests)
apache_pids=$(pgrep -f "apache2.*$LAB_DIR" || true)
[ -n "$apache_pids" ] || lab_fail "cannot find the lab's Apache processes"
# shellcheck disable=SC2086
kill -STOP $apache_pids
p8=$(cb_enroll alice corp crash.a.example.test)
lab_wait_for 30 "request submitting" bash -c "[ \"\$(busctl --system get-property $CB_BUS $p8 $CB_BUS.Request State)\" = 's \"submitting\"' ]"
kill -9 "$(lab_pid certbrokerd)"
lab_stop certbrokerd    # reaps it; the lab no longer counts it as running
broker_check_log
# shellcheck disable=SC2086
kill -CONT $apache_pids
broker_start
lab_assert_eq "$(n_requests)" "$((before + 1))" "requests after kill -9"
state=$(cb_wait alice "$p8" 60)
[ "$state" = issued ] || lab_fail "the interrupted request ended '$state': $(cb_prop alice "$p8" ErrorMessage)"
lab_assert_eq "$(n_requests)" "$((before + 1))" "requests after resuming"
lab_assert_eq "$(cb_prop alice "$p8" Warning)" "" "Warning of a request killed before its PKCSReq left"
lab_pass "a request killed -9 while submitting resumes after restart and is issued once"

# ---- kill -9 while the PKCSReq is at the CA: CertPoll before submitting again ----
# The CA issues, then answers 30 s late; the broker is killed meanwhile. With certpoll_issued=on
# the CA can be asked about a transaction it issued at once: the certificate comes from CertPoll,
# issued once. With off (NDES documents CertPoll for pending requests only) the CA answers
# badCertId: the broker submits again, the CA issues twice, and the request says so.
for mode in on off; do
        ndes ctl certpoll_issued=$mode reply_delay=30 >/dev/null
        issued_before=$(find "$NDES_STATE/issued" -name '*.pem' | wc -l)
        pw=$(cb_enroll alice corp "wire-$mode.a.example.test")
        lab_wait_for 30 "the CA to issue ($mode)" bash -c \
                "[ \$(find '$NDES_STATE/issued' -name '*.pem' | wc -l) -gt $issued_before ]"
        kill -9 "$(lab_pid certbrokerd)"
        lab_stop certbrokerd
        broker_check_log
        ndes ctl reply_delay=0 >/dev/null
        broker_start
        state=$(cb_wait alice "$pw" 60)
        [ "$state" = issued ] || lab_fail "the request killed at the CA ($mode) ended '$state': $(cb_prop alice "$pw" ErrorMessage)"
        txid=$(cb_prop alice "$pw" TransactionId)
        issued_now=$(find "$NDES_STATE/issued" -name '*.pem' | wc -l)
        lab_assert_eq "$(ndes log --scep | grep "txid=$txid" | grep -c 'type=20')" 1 "CertPolls for the transaction ($mode)"
        if [ $mode = on ]; then
                lab_assert_eq "$issued_now" "$((issued_before + 1))" "certificates the CA issued (certpoll_issued=on)"
                lab_assert_eq "$(ndes log --scep | grep "txid=$txid" | grep -c 'type=19')" 1 "PKCSReqs (on)"
                lab_assert_eq "$(cb_prop alice "$pw" Warning)" "" "Warning when CertPoll found the certificate"
        else
                lab_assert_eq "$issued_now" "$((issued_before + 2))" "certificates the CA issued (certpoll_issued=off)"
                lab_assert_eq "$(ndes log --scep | grep "txid=$txid" | grep -c 'type=19')" 2 "PKCSReqs (off)"
                w=$(cb_prop alice "$pw" Warning)
                lab_assert_contains "$w" "may have been issued twice" "Warning after a resubmission"
                lab_assert_contains "$w" "$txid" "the Warning names the transaction"
                lab_assert_contains "$(cat "$LAB_DIR/certbrokerd.log")" "may have been issued twice" "the log says so"
        fi
done
ndes ctl certpoll_issued=off >/dev/null
lab_pass "a request killed while its PKCSReq is at the CA asks with CertPoll first; a resubmission is recorded with its transaction"

# ---- a key nobody takes is erased when its certificate expires ----
ndes ctl clock_offset=-34560000 >/dev/null     # 400 days ago: the certificate is already expired
p9=$(cb_enroll alice corp old.a.example.test)
lab_assert_eq "$(cb_wait alice "$p9" 60)" issued "state of the backdated request"
ndes ctl clock_offset=0 >/dev/null
broker_stop
broker_start                                    # housekeeping runs at start (then hourly)
lab_assert_eq "$(cb alice get-property "$CB_BUS" "$p9" "$CB_BUS.Request" KeyAvailable)" "b false" "KeyAvailable after expiry"
if out=$(cb alice call "$CB_BUS" "$p9" "$CB_BUS.Request" TakeKey 2>&1); then
        lab_fail "the key of an expired certificate could still be taken"
fi
lab_assert_contains "$out" "erased when its certificate expired" "TakeKey after expiry"
lab_pass "a key never taken is erased once its certificate has expired"

# ---- configuration errors ----
cp -a "$CB_CONF" "$LAB_DIR/good-conf"
printf '[Rule]\nName=broken\nUsers=alice\nNames=*.elsewhere.org\n' >"$CB_CONF/policy.d/zz-broken.policy"
if out=$(cb root call "$CB_BUS" "$CB_PATH" "$CB_BUS.Manager" Reload 2>&1); then
        lab_fail "Reload accepted a pattern outside the suffix"
fi
lab_assert_contains "$out" "zz-broken.policy:4" "Reload error names file and line"
lab_assert_contains "$out" "old configuration stays" "Reload error says the old configuration stays"
lab_assert_contains "$(cb alice call "$CB_BUS" "$CB_PATH" "$CB_BUS.Manager" CheckAccess ssasa{sv} corp "" 1 x.a.example.test 0)" \
        "bss true" "old policy after a failed Reload"
kill -HUP "$(lab_pid certbrokerd)"
lab_wait_for 10 "SIGHUP reload failure logged" grep -q "zz-broken.policy:4" "$LAB_DIR/certbrokerd.log"
lab_assert_contains "$(cb alice call "$CB_BUS" "$CB_PATH" "$CB_BUS.Manager" CheckAccess ssasa{sv} corp "" 1 x.a.example.test 0)" \
        "bss true" "old policy after a failed SIGHUP"
if out=$(cb alice call "$CB_BUS" "$CB_PATH" "$CB_BUS.Manager" Reload 2>&1); then
        lab_fail "alice may reload"
fi
lab_assert_contains "$out" "Only root" "Reload by alice"
printf '[Rule]\nName=alice-c\nUsers=alice\nNames=*.c.example.test\n' >"$CB_CONF/policy.d/zz-broken.policy"
cb root call "$CB_BUS" "$CB_PATH" "$CB_BUS.Manager" Reload >/dev/null
lab_assert_contains "$(cb alice call "$CB_BUS" "$CB_PATH" "$CB_BUS.Manager" CheckAccess ssasa{sv} corp "" 1 x.c.example.test 0)" \
        'bss true "alice-c"' "new rule after a good Reload"
lab_pass "a bad Reload or SIGHUP names file:line and keeps the old policy; a good one applies; only root reloads"

# ---- Reload and start-up decide the requests in progress again ----
ndes ctl pending=on >/dev/null
pc=$(cb_enroll alice corp redecide.c.example.test)
pa=$(cb_enroll alice corp redecide.a.example.test)
for p in "$pc" "$pa"; do
        lab_wait_for 30 "request pending" bash -c "[ \"\$(busctl --system get-property $CB_BUS $p $CB_BUS.Request State)\" = 's \"pending\"' ]"
done
rm "$CB_CONF/policy.d/zz-broken.policy"          # the rule alice-c goes
cb root call "$CB_BUS" "$CB_PATH" "$CB_BUS.Manager" Reload >/dev/null
lab_assert_eq "$(state_of alice "$pc")" failed "a pending request whose rule was removed by a Reload"
lab_assert_eq "$(cb_prop alice "$pc" Error)" org.certbroker.Broker1.Error.NameNotPermitted "its error"
msg=$(cb_prop alice "$pc" ErrorMessage)
lab_assert_contains "$msg" "no longer allows this request" "its message"
lab_assert_contains "$msg" "redecide.c.example.test" "its message names the name"
lab_assert_contains "$msg" "tenant-a" "its message names the rule"
lab_assert_contains "$msg" "tenants.policy:2" "its message names the rule's file and line"
lab_assert_eq "$(state_of alice "$pa")" pending "a pending request its rule (Groups=tenant-a) still allows"
broker_stop
sed -i 's/^Names=\*\.a\.example\.test a\.example\.test$/Names=*.a2.example.test/' "$CB_CONF/policy.d/tenants.policy"
broker_start
lab_assert_eq "$(state_of alice "$pa")" failed "a pending request the policy no longer allows at start-up"
lab_assert_contains "$(cb_prop alice "$pa" ErrorMessage)" "since the start-up no longer allows" "its message"
cp "$LAB_DIR/good-conf/policy.d/tenants.policy" "$CB_CONF/policy.d/tenants.policy"
cb root call "$CB_BUS" "$CB_PATH" "$CB_BUS.Manager" Reload >/dev/null
ndes ctl pending=off >/dev/null
for p in "$pc" "$pa"; do
        lab_assert_eq "$(ndes pending | grep -c "$(cb_prop alice "$p" TransactionId)")" 1 \
                "the CA still holds the transaction (the broker stopped polling it)"
done
lab_pass "Reload and start-up decide requests in progress again: one no rule allows any more fails, naming name and rule"

broker_stop
out=$("$CB_DAEMON" --config-dir="$CB_CONF" --check-config) || lab_fail "--check-config refused a good configuration: $out"
lab_assert_contains "$out" "valid. Realm EXAMPLE.TEST" "--check-config on a good configuration"
lab_assert_contains "$out" "CA corp (default)" "--check-config lists the CAs"
printf '[Kerberos]\nRealm=EXAMPLE.TEST\nPrincipal=svc-scep@EXAMPLE.TEST\nBogus=1\n' >"$CB_CONF/certbroker.conf"
if out=$("$CB_DAEMON" --config-dir="$CB_CONF" --check-config 2>&1); then
        lab_fail "--check-config accepted an unknown key"
fi
lab_assert_contains "$out" "certbroker.conf:4" "--check-config names file and line"
if out=$("$CB_DAEMON" --config-dir="$CB_CONF" --state-dir="$CB_STATE" 2>&1); then
        lab_fail "certbrokerd started with an unknown key"
fi
lab_assert_contains "$out" "certbroker.conf:4" "start-up error names file and line"
lab_assert_contains "$out" "Bogus" "start-up error names the key"
lab_pass "a malformed configuration refuses to start, naming file, line and key"
