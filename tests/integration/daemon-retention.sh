#!/usr/bin/env bash
# What the broker keeps per tenant is bounded: MaxStoredRequests= requests of any
# state per uid, and finished requests are forgotten (their keys erased) RetainFinished= after
# they end.
set -euo pipefail
: "${CB_SOURCE_ROOT:=$(cd "$(dirname "$0")/../.." && pwd)}"
. "$CB_SOURCE_ROOT/tests/integration/daemon-enter.sh" "$@"

broker_lab
sed -i "s/^\[Broker\]$/[Broker]\nMaxStoredRequests=3\nRetainFinished=60s/" "$CB_CONF/certbroker.conf"
broker_start
list() { cb "$1" call "$CB_BUS" "$CB_PATH" "$CB_BUS.Manager" ListRequests; }

# ---- MaxStoredRequests=3 ----
paths=()
for i in 1 2 3; do
        paths+=("$(cb_enroll bob corp "keep$i.b.example.test")")
done
for p in "${paths[@]}"; do
        lab_assert_eq "$(cb_wait bob "$p" 60)" issued "bob's request $p"
done
if out=$(cb_enroll bob corp keep4.b.example.test 2>&1); then
        lab_fail "bob's fourth request was accepted with MaxStoredRequests=3: $out"
fi
lab_assert_contains "$out" "keeps 3 requests" "the refusal counts them"
lab_assert_contains "$out" "MaxStoredRequests=3" "the refusal names the setting"
alice_p=$(cb_enroll alice corp other.a.example.test) || lab_fail "alice is limited by bob's requests"
lab_assert_eq "$(cb_wait alice "$alice_p" 60)" issued "alice's request"
cb bob call "$CB_BUS" "${paths[0]}" "$CB_BUS.Request" Remove >/dev/null
p4=$(cb_enroll bob corp keep4.b.example.test) || lab_fail "bob's request after a Remove"
lab_assert_eq "$(cb_wait bob "$p4" 60)" issued "bob's request after a Remove"
lab_pass "MaxStoredRequests= bounds the requests a uid keeps, per uid; Remove makes room"

# ---- RetainFinished=60s: an old finished request is forgotten, a recent one and a live one kept ----
ndes ctl pending=on >/dev/null
live=$(cb_enroll alice corp live.a.example.test)
lab_wait_for 30 "request pending" bash -c "[ \"\$(busctl --system get-property $CB_BUS $live $CB_BUS.Request State)\" = 's \"pending\"' ]"
broker_stop
old_id=${paths[1]##*/} live_id=${live##*/}
"$LAB_PYTHON" - "$CB_STATE/certbroker.db" "$old_id" "$live_id" <<'PYEOF'
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1])
two_minutes_ago = int((time.time() - 120) * 1e6)
for rid in sys.argv[2:]:
    db.execute('UPDATE requests SET updated = ? WHERE id = ?', (two_minutes_ago, rid))
db.commit()
PYEOF
broker_start
all=$(list root)
lab_assert_not_contains "$all" "$old_id" "a request finished two minutes ago (RetainFinished=60s)"
lab_assert_contains "$all" "${paths[2]##*/}" "a request finished just now"
lab_assert_contains "$all" "$live_id" "a pending request last changed two minutes ago"
if cb bob get-property "$CB_BUS" "${paths[1]}" "$CB_BUS.Request" State >/dev/null 2>&1; then
        lab_fail "the forgotten request's object is still on the bus"
fi
lab_assert_contains "$(cat "$LAB_DIR/certbrokerd.log")" "Request $old_id (issued) forgotten" "the audit record"
"$LAB_PYTHON" - "$CB_STATE/certbroker.db" "$old_id" <<'PYEOF' || lab_fail "the forgotten request is still in the journal"
import sqlite3, sys
n = sqlite3.connect(sys.argv[1]).execute('SELECT count(*) FROM requests WHERE id = ?', (sys.argv[2],)).fetchone()[0]
sys.exit(1 if n else 0)
PYEOF
ndes ctl pending=off >/dev/null
lab_pass "RetainFinished= forgets finished requests (journal, bus, key) once that long has passed; live ones stay"
broker_stop
