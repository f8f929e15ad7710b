#!/usr/bin/env bash
# Renewal (the Enroll option "renew", org.certbroker.Broker1(5)) on the real lab, with the NDES emulator
# issuing certificates valid for seconds: RenewAt fixed at issuance from RenewBefore= and
# RenewJitter=; the successor at RenewAt with a fresh key, same owner and parameters; exactly
# one successor per request under kill -9 around RenewAt; a withdrawn rule ends the chain with
# a named error; NDES down at RenewAt retries and renews after expiry; expiry warnings; other
# tenants get AccessDenied; StopRenewal; a fleet's RenewAt spread over the jitter.
set -euo pipefail
: "${CB_SOURCE_ROOT:=$(cd "$(dirname "$0")/../.." && pwd)}"
. "$CB_SOURCE_ROOT/tests/integration/daemon-enter.sh" "$@"

broker_lab
sed -i "s/^\[Broker\]$/[Broker]\nKeyPool=rsa:2048=4/" "$CB_CONF/certbroker.conf"
printf 'RenewBefore=6s\nRenewJitter=0\n' >>"$CB_CONF/ca.d/corp.conf"
# A second CA on the same NDES for the fleet: 4 to 14 s before NotAfter.
sed -e 's/Default=yes/Default=no/' -e '/^Renew/d' "$CB_CONF/ca.d/corp.conf" >"$CB_CONF/ca.d/fleet.conf"
printf 'RenewBefore=4s\nRenewJitter=10s\n' >>"$CB_CONF/ca.d/fleet.conf"
ndes ctl validity=16 >/dev/null
broker_start

successor_of() { oprop alice "$1" Successor; }
pubkey_of_cert() { cb_prop alice "$1" Certificate | openssl x509 -noout -pubkey | sha256sum | cut -c1-16; }

# ---- a chain: RenewAt, the successor, its fresh key, its owner ----
p1=$(enroll_renew alice corp chain.a.example.test)
lab_assert_eq "$(cb_wait alice "$p1" 60)" issued "the first request of the chain"
out=$(cb alice get-property "$CB_BUS" "$p1" "$CB_BUS.Request" Renew 2>&1) || lab_fail "Renew: $out"
lab_assert_eq "$out" "b true" "Renew"
na=$(tprop alice "$p1" NotAfter)
lab_assert_eq "$(tprop alice "$p1" RenewAt)" "$((na - 6000000))" "RenewAt = NotAfter - RenewBefore (no jitter)"
lab_assert_eq "$(oprop alice "$p1" Predecessor)" / "Predecessor of a first enrollment"
lab_wait_for 30 "the successor" bash -c "[ \"\$(busctl --system get-property $CB_BUS $p1 $CB_BUS.Request Successor)\" != 'o \"/\"' ]"
p2=$(successor_of "$p1")
lab_assert_eq "$(oprop alice "$p2" Predecessor)" "$p1" "the successor's Predecessor"
lab_assert_eq "$(cb_wait alice "$p2" 60)" issued "the successor"
lab_assert_eq "$(tprop alice "$p2" Owner)" "$(tprop alice "$p1" Owner)" "the successor's owner"
lab_assert_eq "$(cb_prop alice "$p2" Key)" "$(cb_prop alice "$p1" Key)" "the successor's key type"
lab_assert_contains "$(cb alice get-property "$CB_BUS" "$p2" "$CB_BUS.Request" Names)" chain.a.example.test "its names"
[ "$(pubkey_of_cert "$p1")" != "$(pubkey_of_cert "$p2")" ] || lab_fail "the successor reuses the old key"
lab_assert_eq "$(cb_prop alice "$p1" State)" issued "the predecessor stays issued"
if out=$(cb bob get-property "$CB_BUS" "$p2" "$CB_BUS.Request" Certificate 2>&1); then
        lab_fail "bob read alice's successor: $out"
fi
lab_assert_contains "$out" "belongs to another user" "bob on alice's successor"
lab_pass "a renew request gets one successor at RenewAt: same owner and parameters, a fresh key; others are denied"

# ---- kill -9 around RenewAt, again and again: exactly one successor per request ----
for i in 1 2 3 4 5 6; do
        sleep "0.$((RANDOM % 9 + 1))"
        kill -9 "$(lab_pid certbrokerd)"
        lab_stop certbrokerd
        broker_start
done
# The chain goes on after the kills: two more links (RenewAt comes every 10 s).
last=$(cb alice call "$CB_BUS" "$CB_PATH" "$CB_BUS.Manager" ListRequests | grep -o '/org/certbroker/Broker1/request/[0-9a-f]*' | tail -1)
lab_wait_for 40 "the chain to go on" bash -c "[ \"\$(busctl --system get-property $CB_BUS $last $CB_BUS.Request Successor 2>/dev/null)\" != 'o \"/\"' ]"
broker_stop
"$LAB_PYTHON" - "$CB_STATE/certbroker.db" <<'PYEOF' || lab_fail "successors after kill -9 (above)"
import collections, sqlite3, sys
db = sqlite3.connect(sys.argv[1])
rows = db.execute("SELECT id, successor, predecessor FROM requests WHERE renew = 1 OR predecessor != ''").fetchall()
by_pred = collections.Counter(p for _, _, p in rows if p)
bad = [p for p, n in by_pred.items() if n > 1]
ids = {i: s for i, s, _ in rows}
unlinked = [i for i, _, p in rows if p and ids.get(p) != i]
print(f'# {len(rows)} requests in chains, {len(by_pred)} with a successor')
for p in bad:
    print(f'not ok - request {p} has {by_pred[p]} successors')
for i in unlinked:
    print(f'not ok - request {i} is not its predecessor\'s successor')
sys.exit(1 if bad or unlinked or len(by_pred) < 2 else 0)
PYEOF
broker_start
lab_pass "kill -9 at random moments around RenewAt: every request has at most one successor, linked both ways"

# ---- kill -9 at each point of a successor's creation: before, once recorded, once started ----
stop_all() {            # every chain of alice's so far ends: only the request under test renews
        local p
        for p in $(cb alice call "$CB_BUS" "$CB_PATH" "$CB_BUS.Manager" ListRequests |
                   grep -o '/org/certbroker/Broker1/request/[0-9a-f]*'); do
                cb alice call "$CB_BUS" "$p" "$CB_BUS.Request" StopRenewal >/dev/null
        done
}
stop_all
for point in renewal-before renewal-inserted renewal-started; do
        broker_stop
        CERTBROKER_TEST_KILL_AT=$point broker_start
        pk=$(enroll_renew alice corp "kill-$point.a.example.test")
        lab_assert_eq "$(cb_wait alice "$pk" 60)" issued "the request killed at $point"
        pid=$(lab_pid certbrokerd)
        lab_wait_for 30 "the broker to kill itself at $point" bash -c "! kill -0 $pid 2>/dev/null"
        lab_stop certbrokerd
        broker_check_log
        broker_start
        lab_wait_for 30 "the successor after $point" bash -c \
                "[ \"\$(busctl --system get-property $CB_BUS $pk $CB_BUS.Request Successor)\" != 'o \"/\"' ]"
        pks=$(successor_of "$pk")
        lab_assert_eq "$(cb_wait alice "$pks" 60)" issued "the successor after a kill at $point"
        n=$("$LAB_PYTHON" -c 'import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute(
                "SELECT count(*) FROM requests WHERE predecessor = ?", (sys.argv[2],)).fetchone()[0])' \
                "$CB_STATE/certbroker.db" "${pk##*/}")
        lab_assert_eq "$n" 1 "successors of the request killed at $point"
        cb alice call "$CB_BUS" "$pks" "$CB_BUS.Request" StopRenewal >/dev/null
done
lab_pass "kill -9 before, while and after a successor is made: exactly one successor, issued"

# ---- StopRenewal: RenewAt 0, no successor ----
ps=$(enroll_renew alice corp stop.a.example.test)
lab_assert_eq "$(cb_wait alice "$ps" 60)" issued "the request to stop"
cb alice call "$CB_BUS" "$ps" "$CB_BUS.Request" StopRenewal >/dev/null
lab_assert_eq "$(tprop alice "$ps" RenewAt)" 0 "RenewAt after StopRenewal"
lab_assert_eq "$(tprop alice "$ps" Renew)" false "Renew after StopRenewal"
if cb bob call "$CB_BUS" "$ps" "$CB_BUS.Request" StopRenewal >/dev/null 2>&1; then
        lab_fail "bob stopped alice's renewal"
fi

# ---- a rule withdrawn before RenewAt: the successor fails, naming the rule ----
cat >"$CB_CONF/policy.d/zz-c.policy" <<'CONF'
[Rule]
Name=alice-c
Users=alice
Names=*.c.example.test
CONF
cb root call "$CB_BUS" "$CB_PATH" "$CB_BUS.Manager" Reload >/dev/null
pw=$(enroll_renew alice corp gone.c.example.test)
lab_assert_eq "$(cb_wait alice "$pw" 60)" issued "a request of the rule to withdraw"
rm "$CB_CONF/policy.d/zz-c.policy"
cb root call "$CB_BUS" "$CB_PATH" "$CB_BUS.Manager" Reload >/dev/null
lab_wait_for 30 "the successor of the withdrawn rule's request" bash -c \
        "[ \"\$(busctl --system get-property $CB_BUS $pw $CB_BUS.Request Successor)\" != 'o \"/\"' ]"
pws=$(successor_of "$pw")
lab_assert_eq "$(cb_wait alice "$pws" 10)" failed "the successor once the rule is gone"
lab_assert_eq "$(cb_prop alice "$pws" Error)" org.certbroker.Broker1.Error.NameNotPermitted "its error"
lab_assert_contains "$(cb_prop alice "$pws" ErrorMessage)" "Renewal of request ${pw##*/}" "its message names the chain"
lab_assert_contains "$(cb_prop alice "$pws" ErrorMessage)" "gone.c.example.test" "its message names the name"
lab_assert_eq "$(successor_of "$ps")" / "no successor after StopRenewal"
lab_pass "StopRenewal ends a chain (owner or root); a withdrawn rule makes the successor fail with NameNotPermitted"

# ---- NDES down at RenewAt: retrying past expiry, renewed when NDES is back; warnings ----
pd=$(enroll_renew alice corp down.a.example.test)
lab_assert_eq "$(cb_wait alice "$pd" 60)" issued "the request whose renewal meets a CA that is down"
ndes ctl unavailable=on >/dev/null
lab_wait_for 30 "its successor" bash -c "[ \"\$(busctl --system get-property $CB_BUS $pd $CB_BUS.Request Successor)\" != 'o \"/\"' ]"
pds=$(successor_of "$pd")
na=$(tprop alice "$pd" NotAfter)
lab_wait_for 40 "the certificate to expire" bash -c "[ \$(date +%s%6N) -gt $((na + 2000000)) ]"
lab_assert_eq "$(cb_prop alice "$pds" State)" retrying "the successor while NDES is down, after expiry"
lab_wait_for 10 "the expiry warning" grep -q "Request ${pd##*/}: the certificate for down.a.example.test has expired" \
        "$LAB_DIR/certbrokerd.log"
ndes ctl unavailable=off >/dev/null
lab_assert_eq "$(cb_wait alice "$pds" 120)" issued "the successor once NDES is back (the old certificate expired)"
lab_assert_eq "$(grep -c "Request ${pd##*/}: the certificate for down.a.example.test has expired" \
        "$LAB_DIR/certbrokerd.log")" 1 "expiry warnings for it (once per threshold)"
lab_pass "NDES down at RenewAt: the successor retries past expiry and renews when NDES is back; one expiry warning"

# ---- a fleet: ten issued in the same seconds spread their RenewAt over the jitter ----
fleet=()
for i in $(seq 1 10); do
        fleet+=("$(enroll_renew bob fleet "fleet$i.b.example.test")")    # bob: no MaxActive=
done
ats=()
for p in "${fleet[@]}"; do
        lab_assert_eq "$(cb_wait bob "$p" 60)" issued "a fleet request"
        at=$(tprop bob "$p" RenewAt) na=$(tprop bob "$p" NotAfter)
        [ "$at" -le $((na - 4000000)) ] && [ "$at" -ge $((na - 14000000)) ] ||
                lab_fail "RenewAt $at outside [NotAfter - 14 s, NotAfter - 4 s] (NotAfter $na)"
        ats+=($((na - at)))
        cb bob call "$CB_BUS" "$p" "$CB_BUS.Request" StopRenewal >/dev/null
done
distinct=$(printf '%s\n' "${ats[@]}" | sort -u | wc -l)
[ "$distinct" -ge 8 ] || lab_fail "ten RenewAt leads, only $distinct distinct: ${ats[*]}"
lab_pass "a fleet issued together spreads its RenewAt over RenewJitter ($distinct distinct leads of 10)"
# ---- Enroll's token follows the chain: successors keep it ----
tenroll() {     # TOKEN: alice's Enroll of tokchain.a.example.test with renew and the token; the path
        local out
        out=$(cb alice call "$CB_BUS" "$CB_PATH" "$CB_BUS.Manager" Enroll ssasa{sv} corp "" 1 tokchain.a.example.test \
                2 renew b true token s "$1") || return 1
        out=${out#o \"}
        echo "${out%\"}"
}
t1=$(tenroll chain-token) || lab_fail "Enroll with a token"
lab_assert_eq "$(cb_wait alice "$t1" 60)" issued "the token's first request"
lab_wait_for 30 "its successor" bash -c "[ \"\$(busctl --system get-property $CB_BUS $t1 $CB_BUS.Request Successor)\" != 'o \"/\"' ]"
t2=$(successor_of "$t1")
lab_assert_eq "$(tenroll chain-token)" "$t1" "Enroll with the token while the chain's first member is kept"
cb alice call "$CB_BUS" "$t1" "$CB_BUS.Request" Remove >/dev/null || lab_fail "Remove of the first member"
lab_assert_eq "$(tenroll chain-token)" "$t2" "Enroll with the token once the first member is removed: its successor"
cb alice call "$CB_BUS" "$t2" "$CB_BUS.Request" StopRenewal >/dev/null
lab_pass "Enroll's token names the chain: the first member while kept, then the successor (made by the broker at RenewAt, it kept the token)"

ndes ctl validity=0 >/dev/null
broker_stop
