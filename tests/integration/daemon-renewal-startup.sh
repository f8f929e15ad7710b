#!/usr/bin/env bash
# Renewals that fell due while the broker was stopped: CB_DUE_COUNT (60; 1200 as a benchmark)
# renewing certificates of three uids (alice, bob, mallory: a third each, each uid's enrolled
# one after the other, so the broker meets them owner by owner) are issued, the broker is
# stopped, their RenewAt is moved into the past in its journal (as if months went by while it
# was down: the only thing changed), and the broker is started again: every successor must be
# made at start-up and issued, none failed, exactly one per certificate. 1200 successors at
# once are more than the key generation queue holds (1024, no KeyPool=): the rest meet a full
# queue, a shortage retried with backoff, not an ending. Fairness between owners: once half of
# the successors are issued, every uid has had at least CB_DUE_FAIR_PERCENT (20) percent of
# its own issued.
#
# Registered as the integration test daemon-renewal-startup (60, about 150 s) and as the
# benchmark renewal-startup-bench (CB_DUE_COUNT=1200: as long as 2400 enrollments take).
set -euo pipefail
: "${CB_SOURCE_ROOT:=$(cd "$(dirname "$0")/../.." && pwd)}"
. "$CB_SOURCE_ROOT/tests/integration/daemon-enter.sh" "$@"

COUNT=${CB_DUE_COUNT:-60}
FAIR=${CB_DUE_FAIR_PERCENT:-20}
USERS=(alice bob mallory)
PER=$((COUNT / ${#USERS[@]}))
COUNT=$((PER * ${#USERS[@]}))
t_start=$SECONDS

broker_lab
sed -i "s/^\[Broker\]$/[Broker]\nDefaultMaxRequests=unlimited\nMaxStoredRequests=$((2 * PER + 10))/" \
        "$CB_CONF/certbroker.conf"
printf 'MaxOutstandingChallenges=8\n' >>"$CB_CONF/ca.d/corp.conf"
: >"$CB_CONF/policy.d/tenants.policy"
for u in "${USERS[@]}"; do
        printf '[Rule]\nName=due-%s\nUsers=%s\nNames=*.%s.example.test\nKeys=ec:p256\n\n' "$u" "$u" "$u" \
                >>"$CB_CONF/policy.d/tenants.policy"
done
ndes ctl cache_size=16 validity=0 >/dev/null        # a year: RenewAt months away
broker_start

# enroll_many USER N: N renewing ec:p256 enrollments of USER in one client, one after the other.
enroll_many() {
        (cd / && lab_run_as "$1" "$LAB_PYTHON" - "$1" "$2") <<'PYEOF'
import sys
import dbus
user, n = sys.argv[1], int(sys.argv[2])
bus = dbus.SystemBus()
m = dbus.Interface(bus.get_object("org.certbroker.Broker1", "/org/certbroker/Broker1"),
                   "org.certbroker.Broker1.Manager")
opts = dbus.Dictionary({"renew": dbus.Boolean(True), "key": dbus.String("ec:p256")}, signature="sv")
for i in range(n):
    m.Enroll("", "", ["due%d.%s.example.test" % (i, user)], opts, timeout=120)
PYEOF
}

# states USER: "STATE COUNT" lines of USER's requests (ListRequests).
states() {
        cb "$1" --json=short call "$CB_BUS" "$CB_PATH" "$CB_BUS.Manager" ListRequests |
                "$LAB_PYTHON" -c 'import collections, json, sys
c = collections.Counter(r[1] for r in json.load(sys.stdin)["data"][0])
print(" ".join("%s=%d" % kv for kv in sorted(c.items())))'
}
# count_of USER STATE: how many of USER's requests are in STATE.
count_of() {
        local kv
        for kv in $(states "$1"); do
                [ "${kv%%=*}" = "$2" ] && { echo "${kv#*=}"; return; }
        done
        echo 0
}

# wait_states SECONDS WANT_PER_UID STATE: until every uid has WANT_PER_UID requests in STATE;
# fails naming every uid's states, and on any failed request.
wait_states() {
        local deadline=$((SECONDS + $1)) u ok
        while :; do
                ok=1
                for u in "${USERS[@]}"; do
                        [ "$(count_of "$u" failed)" = 0 ] || lab_fail "$u: a request failed: $(states "$u")"
                        [ "$(count_of "$u" "$3")" = "$2" ] || ok=0
                done
                [ "$ok" = 1 ] && return 0
                if [ "$SECONDS" -ge "$deadline" ]; then
                        for u in "${USERS[@]}"; do echo "# $u: $(states "$u")"; done
                        lab_fail "after $1 s not every uid has $2 requests $3"
                fi
                sleep 2
        done
}

t0=$SECONDS
for u in "${USERS[@]}"; do
        enroll_many "$u" "$PER" || lab_fail "enrolling $PER requests as $u failed"
done
wait_states "${CB_DUE_TIMEOUT:-1800}" "$PER" issued
t_first=$((SECONDS - t0))
broker_stop
lab_pass "$COUNT renewing certificates of ${#USERS[@]} uids issued in ${t_first}s, the broker stopped"

# While it is down their RenewAt passes: moved to a second ago in the journal.
past=$(( $(date +%s%N) / 1000 - 1000000 ))
sqlite3 "$CB_STATE/certbroker.db" "UPDATE requests SET renew_at = $past WHERE renew = 1 AND state = 'issued';"
lab_assert_eq "$(sqlite3 "$CB_STATE/certbroker.db" "SELECT count(*) FROM requests WHERE renew_at = $past;")" \
        "$COUNT" "renewals due"
from=$(( $(ndes log --scep | wc -l) + 1 ))
t1=$SECONDS
broker_start

# fair_diagnose: where each uid's successors are (made or not, their states) and what the broker
# logged about waiting (NSS, queues, retries), for a fairness failure to be explained.
fair_diagnose() {
        local u uid
        for u in "${USERS[@]}"; do
                uid=$(id -u "$u")
                echo "# $u (uid $uid): $(states "$u"); successors made: $(sqlite3 -readonly "$CB_STATE/certbroker.db" \
                        "SELECT count(*) FROM requests WHERE owner = $uid AND predecessor IS NOT NULL AND predecessor != '';")" >&2
        done
        echo "# the broker's log on waiting (last 40 lines):" >&2
        grep -E -i "nss|not answered|queue is full|retry|again|waits|backoff" "$LAB_DIR/certbrokerd.log" | tail -40 >&2 || true
}

# Wait for all of them, sampling each uid's progress; the first sample with at least half of
# the successors issued is the fairness check.
fair_line=""
deadline=$((SECONDS + ${CB_DUE_TIMEOUT:-1800}))
while :; do
        total=0
        line=""
        for u in "${USERS[@]}"; do
                n=$(count_of "$u" issued)
                f=$(count_of "$u" failed)
                [ "$f" = 0 ] || lab_fail "$u: $f request(s) failed: $(states "$u")"
                total=$((total + n - PER))
                line="$line $u=$((n - PER))"
        done
        if [ -z "$fair_line" ] && [ "$total" -ge $((COUNT / 2)) ]; then
                fair_line=$line
                for kv in $line; do
                        if [ "${kv#*=}" -lt $((PER * FAIR / 100)) ]; then
                                fair_diagnose
                                lab_fail "half of the successors issued ($total), but ${kv%%=*} has only ${kv#*=} of $PER:$line"
                        fi
                done
        fi
        [ "$total" -ge "$COUNT" ] && break
        [ "$SECONDS" -lt "$deadline" ] || lab_fail "after ${CB_DUE_TIMEOUT:-1800}s only $total of $COUNT successors issued:$line"
        sleep 2
done
t_succ=$((SECONDS - t1))
for u in "${USERS[@]}"; do
        lab_assert_eq "$(states "$u")" "issued=$((2 * PER))" "$u's requests: the first ones and one successor each"
done
lab_assert_eq "$(ndes log --scep | tail -n +"$from" | grep -c 'status=SUCCESS' || true)" "$COUNT" \
        "certificates NDES issued after the start"
full=$(grep -c "key generation queue is full" "$LAB_DIR/certbrokerd.log" || true)
echo "# $COUNT successors due at start-up: all issued in ${t_succ}s; when half were issued:$fair_line; key queue full met $full time(s)"
lab_pass "$COUNT successors due at start-up all issued, none failed, one per certificate; owners progressed together:$fair_line"

broker_stop
broker_check_log
echo "# daemon-renewal-startup: $((SECONDS - t_start)) s"
