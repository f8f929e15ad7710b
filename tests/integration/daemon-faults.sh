#!/usr/bin/env bash
# The state stays healthy under faults: a full state directory (a small tmpfs)
# refuses new requests with a clear error and loses none it accepted; a damaged database
# refuses to start with a message that says what to do, and never starts empty.
set -euo pipefail
: "${CB_SOURCE_ROOT:=$(cd "$(dirname "$0")/../.." && pwd)}"
. "$CB_SOURCE_ROOT/tests/integration/daemon-enter.sh" "$@"

broker_lab
mkdir -p -m 0700 "$CB_STATE"
mount -t tmpfs -o size=4m,mode=0700 tmpfs "$CB_STATE"  # this mount namespace only
broker_start
state_of() { cb_prop alice "$1" State; }

# Requests in flight when the disk fills: pending at the CA.
ndes ctl pending=on >/dev/null
inflight=()
for i in 1 2 3; do
        inflight+=("$(cb_enroll alice corp "full$i.a.example.test")")
done
for p in "${inflight[@]}"; do
        lab_wait_for 30 "request pending" bash -c \
                "[ \"\$(busctl --system get-property $CB_BUS $p $CB_BUS.Request State)\" = 's \"pending\"' ]"
done
# Fill the state directory up.
dd if=/dev/zero of="$CB_STATE/filler" bs=64k 2>/dev/null || true
if out=$(cb_enroll alice corp refused.a.example.test 2>&1); then
        lab_fail "an Enroll was accepted on a full disk: $out"
fi
lab_assert_contains "$out" "$CB_STATE" "the refusal names the state directory"
lab_assert_contains "$out" "full" "the refusal says the disk is full"
# The CA issues while the disk is full; the broker's polls cannot record it yet.
ndes approve all >/dev/null
lab_wait_for 60 "a state the journal could not take" grep -q "kept in memory, written again" "$LAB_DIR/certbrokerd.log"
rm -f "$CB_STATE/filler"
for p in "${inflight[@]}"; do
        lab_assert_eq "$(cb_wait alice "$p" 120)" issued "a request accepted before the disk filled"
done
broker_stop
broker_start
for p in "${inflight[@]}"; do
        lab_assert_eq "$(state_of "$p")" issued "after a restart: a request accepted before the disk filled"
        lab_assert_contains "$(cb_prop alice "$p" Certificate)" "BEGIN CERTIFICATE" "its certificate after a restart"
done
ndes ctl pending=off >/dev/null
p=$(cb_enroll alice corp after.a.example.test) || lab_fail "Enroll after space came back"
lab_assert_eq "$(cb_wait alice "$p" 60)" issued "a request after space came back"
lab_pass "a full state directory refuses new requests naming it; the accepted ones finish once space is back"

# The disk fills while a request's new key is stored: the Enroll is on disk, the key (RSA 4096,
# made on demand: a second or so) meets a full disk. The request keeps its state, says what ran
# out (QuotaExceeded) and is issued once space returns. Whether the filler lands before the key
# is stored is a race: a try where the key got in first is done again (at most 6 tries).
hit=""
for try in 1 2 3 4 5 6; do
        # An empty write-ahead log: the broker's next writes need new blocks (SQLite reuses the
        # log's old ones, which a full disk would not stop).
        sqlite3 "$CB_STATE/certbroker.db" 'PRAGMA wal_checkpoint(TRUNCATE);' >/dev/null || true
        p=$(cb alice call "$CB_BUS" "$CB_PATH" "$CB_BUS.Manager" Enroll ssasa{sv} corp "" 1 "key$try.a.example.test"                 1 key s rsa:4096) || lab_fail "Enroll with an RSA 4096 key"
        dd if=/dev/zero of="$CB_STATE/filler" bs=64k 2>/dev/null || true
        p=${p#o \"}; p=${p%\"}
        for _ in $(seq 150); do
                if grep -q "Request ${p##*/}: Cannot store the private key (encrypted) in the journal: No space left on device" \
                        "$LAB_DIR/certbrokerd.log"; then
                        hit=$p
                        break
                fi
                [ "$(state_of "$p")" != queued ] && break       # the key got in first
                sleep 0.2
        done
        [ -z "$hit" ] || break
        rm -f "$CB_STATE/filler"
        lab_assert_eq "$(cb_wait alice "$p" 60)" issued "try $try, whose key was stored before the disk filled"
done
[ -n "$hit" ] || lab_fail "in 6 tries the disk never filled before the new key was stored"
sleep 2
st=$(state_of "$hit")
[ "$st" != failed ] && [ "$st" != issued ] || lab_fail "the request whose key met a full disk is $st"
lab_assert_eq "$(cb_prop alice "$hit" Error)" "org.certbroker.Broker1.Error.QuotaExceeded" "its Error"
lab_assert_contains "$(cb_prop alice "$hit" ErrorMessage)" "state directory is full" "its ErrorMessage"
rm -f "$CB_STATE/filler"
lab_assert_eq "$(cb_wait alice "$hit" 120)" issued "the request once space came back"
lab_assert_eq "$(tprop alice "$hit" KeyAvailable)" true "its key"
lab_pass "the disk filling while a new key is stored: the request kept, QuotaExceeded named, issued once space returns (try $try)"

# A damaged database: the broker refuses to start and says what to do; the file is kept.
broker_stop
size=$(stat -c %s "$CB_STATE/certbroker.db")
dd if=/dev/urandom of="$CB_STATE/certbroker.db" bs=1 seek=4096 count=8192 conv=notrunc 2>/dev/null
cp "$CB_STATE/certbroker.db" "$LAB_DIR/damaged.db"
if out=$(CERTBROKER_LOG_STDERR=1 timeout 30 "$CB_DAEMON" --config-dir="$CB_CONF" --state-dir="$CB_STATE" 2>&1); then
        lab_fail "certbrokerd started on a damaged database: $out"
fi
lab_assert_contains "$out" "$CB_STATE/certbroker.db" "the refusal names the database"
lab_assert_contains "$out" "Restore it from a backup" "the refusal says what to do"
cmp -s "$CB_STATE/certbroker.db" "$LAB_DIR/damaged.db" || lab_fail "the damaged database was changed"
lab_assert_eq "$(stat -c %s "$CB_STATE/certbroker.db")" "$size" "the damaged database's size"
lab_pass "a damaged database refuses to start, names the file and the fix, and is left as it was"
