#!/usr/bin/env bash
# certbrokerd and its callers on the bus: many idle connections of three users (more than the
# bus daemon's 512 match rules per connection) cost the broker neither its connection nor its
# name nor file descriptors past its limit; a user past its share of remembered connections is
# refused with QuotaExceeded while others go on enrolling; a connection that leaves is
# forgotten (its Wait() calls dropped); a group too large for a small NSS buffer is named; a
# caller's bytes echoed in an error are valid UTF-8; and when the bus goes away the broker
# exits with a failure (for systemd to restart it).
set -euo pipefail
: "${CB_SOURCE_ROOT:=$(cd "$(dirname "$0")/../.." && pwd)}"
. "$CB_SOURCE_ROOT/tests/integration/daemon-enter.sh" "$@"

FLOOD=$CB_SOURCE_ROOT/tests/integration/bus-flood.py
PER_USER=250            # below dbus-daemon's max_connections_per_user (256)

# A third flooding user besides bob and mallory (the lab's /etc/passwd and /etc/group are its own).
echo 'carol:x:2004:3004:lab tenant c:/nonexistent:/bin/sh' >>/etc/passwd
echo 'tenant-c:x:3004:carol' >>/etc/group

broker_lab
# The broker's bounds follow its RLIMIT_NOFILE: with 4096, 3072 connections remembered (a
# quarter is kept for everything else), 192 per user (a sixteenth).
ulimit -Sn 4096
broker_start
pid=$(lab_pid certbrokerd)

owner() { busctl --system call org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus GetNameOwner s "$CB_BUS" | awk '{print $2}' | tr -d '"'; }
match_rules() {
        busctl --system --json=short call org.freedesktop.DBus /org/freedesktop/DBus \
                org.freedesktop.DBus.Debug.Stats GetConnectionStats s "$1" |
                "$LAB_PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["data"][0]["MatchRules"]["data"])'
}
n_fds() { find "/proc/$pid/fd" -mindepth 1 -maxdepth 1 | wc -l; }

unique=$(owner)
rules_before=$(match_rules "$unique")
fds_before=$(n_fds)
echo "# broker $unique: $rules_before match rules, $fds_before fds before the flood"

# ---- 3 users x 250 idle connections, each of which called the broker once ----
flood_dir=$LAB_DIR/flood
mkdir -p "$flood_dir"
chmod 0777 "$flood_dir"
flooders=()
for u in bob mallory carol; do
        lab_run_as "$u" "$LAB_PYTHON" "$FLOOD" "$PER_USER" "$flood_dir/ready.$u" "$flood_dir/go" \
                >"$flood_dir/$u.log" 2>&1 &
        flooders+=($!)
done
for u in bob mallory carol; do
        lab_wait_for 180 "$u's $PER_USER connections" test -e "$flood_dir/ready.$u"
done
kept=0
for u in bob mallory carol; do
        line=$(cat "$flood_dir/ready.$u")
        echo "# $u: $line"
        read -r _ connected _ by_bus _ replies _ quota _ other _ <<<"$line"
        lab_assert_eq "$connected $by_bus $other" "$PER_USER 0 0" "$u: connections made, refused by the bus, other errors"
        lab_assert_eq "$replies" 192 "$u: calls answered (its share of remembered connections)"
        lab_assert_eq "$quota" $((PER_USER - 192)) "$u: calls refused with QuotaExceeded"
        kept=$((kept + replies))
done
lab_assert_eq "$(owner)" "$unique" "the broker's connection owning $CB_BUS after the flood"
rules_after=$(match_rules "$unique")
fds_after=$(n_fds)
echo "# broker $unique: $rules_after match rules, $fds_after fds with $kept connections remembered"
lab_assert_eq "$rules_after" "$rules_before" "the broker's match rules on the bus"
[ "$fds_after" -lt 4096 ] || lab_fail "the broker holds $fds_after fds, past its limit of 4096"
[ "$fds_after" -le $((fds_before + kept)) ] || lab_fail "the broker holds $fds_after fds: more than one per remembered connection"
lab_pass "$((3 * PER_USER)) idle connections of 3 users ($kept remembered, over dbus-daemon's 512 match rules): the broker keeps its name and $rules_after match rules, holds $fds_after fds (limit 4096), refuses each user past 192 with QuotaExceeded"

grep -q 'A connection of uid 2002 was refused: its user has its share of connections' "$LAB_DIR/certbrokerd.log" ||
        lab_fail "no audit record of bob's refused connections"
# One more connection of bob's (the file to wait for, /dev/null, is there: it closes at once).
lab_run_as bob "$LAB_PYTHON" "$FLOOD" 1 "$flood_dir/one.bob" /dev/null
lab_assert_contains "$(cat "$flood_dir/one.bob")" "replies 0 quota 1 other 0" "bob's 251st connection"
lab_pass "a refused user is told QuotaExceeded, and the refusal is audited"

# ---- others are served meanwhile: alice enrolls, root lists ----
path=$(cb_enroll alice corp web.a.example.test) || lab_fail "alice's Enroll during the flood failed"
state=$(cb_wait alice "$path" 60)
if [ "$state" != issued ]; then
        tail -n 40 "$LAB_DIR/certbrokerd.log" >&2
        lab_fail "alice's request during the flood ended '$state': $(cb_prop alice "$path" Error): $(cb_prop alice "$path" ErrorMessage)"
fi
cb root call "$CB_BUS" "$CB_PATH" "$CB_BUS.Manager" ListRequests >/dev/null || lab_fail "root's ListRequests during the flood"
lab_pass "alice enrolls (issued) and root is served while 3 users hold $((3 * PER_USER)) connections"

# ---- connections that leave are forgotten ----
touch "$flood_dir/go"
for f in "${flooders[@]}"; do
        wait "$f" || lab_fail "a flooding user's connections did not all get an answer (status $?): $(cat "$flood_dir"/*.log)"
done
lab_wait_for 30 "bob's connections forgotten" bash -c \
        "rm -f '$flood_dir/again.bob'; setpriv --reuid=2002 --regid=3002 --init-groups '$LAB_PYTHON' '$FLOOD' 192 '$flood_dir/again.bob' /dev/null &&
         grep -q 'replies 192 quota 0 other 0' '$flood_dir/again.bob'"
# Alice's enrollment left a few HTTP connections in curl's cache: 16 fds of slack.
lab_wait_for 20 "the broker's fds back to about $fds_before" bash -c \
        "[ \$(find /proc/$pid/fd -mindepth 1 -maxdepth 1 | wc -l) -le $((fds_before + 16)) ]"
fds_end=$(n_fds)
lab_pass "callers that left are forgotten: bob has his 192 again, the broker is back to $fds_end fds"

ndes ctl pending=on >/dev/null
held=$(cb_enroll alice corp held.a.example.test) || lab_fail "alice's second Enroll failed"
# Wait() sent without waiting for its answer, then ListRequests on the same connection: once
# that is answered the broker holds the Wait() call; then the connection closes.
lab_run_as alice "$LAB_PYTHON" - "$CB_SOURCE_ROOT/tests/integration" "$held" <<'PYEOF' ||
import sys
sys.path.insert(0, sys.argv[1])
import rawbus
c = rawbus.Conn.connect()
c.call(rawbus.BUS, sys.argv[2], rawbus.BUS + ".Request", "Wait", "t", [100000000], wait=False)
kind, _, _ = c.call(rawbus.BUS, rawbus.PATH, rawbus.BUS + ".Manager", "ListRequests", "", [])
assert kind == "reply"
c.sock.close()
PYEOF
        lab_fail "alice's Wait() and ListRequests"
lab_wait_for 20 "the Wait() of the departed connection dropped" grep -q "left the bus: dropped its 1 Wait() call(s)" \
        "$LAB_DIR/certbrokerd.log"
lab_pass "a connection that leaves has its Wait() call dropped"

# ---- a group of 1000 members (an /etc/group line of about 11 KB) is named through NSS ----
members=$(printf 'member%04d,' $(seq 0 999))
echo "bigteam:x:3100:${members}alice" >>/etc/group
cat >"$CB_CONF/policy.d/bigteam.policy" <<'CONF'
[Rule]
Name=bigteam
Groups=bigteam
Names=*.big.example.test
CONF
cb root call "$CB_BUS" "$CB_PATH" "$CB_BUS.Manager" Reload >/dev/null || lab_fail "Reload with the bigteam rule"
out=$(cb alice call "$CB_BUS" "$CB_PATH" "$CB_BUS.Manager" CheckAccess ssasa{sv} corp "" 1 web.big.example.test 0)
lab_assert_contains "$out" 'true "bigteam"' "alice's CheckAccess through the group of 1000 members"
path=$(cb_enroll alice corp web.big.example.test) || lab_fail "alice's Enroll through the group of 1000 members"
lab_pass "a group of 1000 members ($(grep '^bigteam:' /etc/group | wc -c)-byte line) is named through NSS: its rule allows alice"

# ---- a caller's bytes in error messages: valid UTF-8, an answer at once ----
# /request/_c3 decodes to the single byte 0xc3 (half a character).
out=$(cb alice --timeout=5 call "$CB_BUS" "$CB_PATH/request/_c3" "$CB_BUS.Request" Wait t 0 2>&1) &&
        lab_fail "Wait on request/_c3 succeeded: $out"
lab_assert_contains "$out" 'No request '"'"'\xc3'"'"'' "Wait on request/_c3"
out=$(cb alice --timeout=5 call "$CB_BUS" "$CB_PATH/ca/_c3_a9_ff" "$CB_BUS.CA" Check a{sv} 0 2>&1) &&
        lab_fail "Check on ca/_c3_a9_ff succeeded: $out"
lab_assert_contains "$out" "No CA 'é\\xff' is configured" "Check on ca/_c3_a9_ff"
# An unknown option of 70 characters, the 64th of them two bytes long.
opt=$(printf 'o%.0s' $(seq 1 63))é$(printf 'p%.0s' $(seq 1 6))
out=$(cb alice --timeout=5 call "$CB_BUS" "$CB_PATH" "$CB_BUS.Manager" Enroll ssasa{sv} corp "" 1 \
        x.a.example.test 1 "$opt" s v 2>&1) && lab_fail "Enroll with option $opt succeeded: $out"
lab_assert_contains "$out" "Unknown option '$(printf 'o%.0s' $(seq 1 63))...'" "Enroll with a 70-character option"
out=$(cb alice --timeout=5 call "$CB_BUS" "$CB_PATH/ca/corp" "$CB_BUS.CA" Check a{sv} 1 "$opt" b true 2>&1) &&
        lab_fail "Check with option $opt succeeded: $out"
lab_assert_contains "$out" "Unknown option '$(printf 'o%.0s' $(seq 1 63))...'" "Check with a 70-character option"
lab_pass "request/_c3, ca/_c3_a9_ff and 70-character option names: named errors at once, the bytes escaped, cut on a character boundary"

# ---- the bus goes away: the broker exits with a failure ----
lab_stop bus
lab_wait_for 5 "certbrokerd to exit after the bus stopped" bash -c "! kill -0 $pid 2>/dev/null || [ \"\$(awk '{print \$3}' /proc/$pid/stat)\" = Z ]"
rc=0
wait "$pid" || rc=$?
lab_stop certbrokerd
lab_assert_eq "$rc" 1 "certbrokerd's exit status after losing the bus"
grep -q "Lost the connection to the system bus" "$LAB_DIR/certbrokerd.log" ||
        lab_fail "certbrokerd did not say it lost the bus"
broker_check_log
lab_pass "the bus daemon stopped: certbrokerd exits with status 1 within 5 s (Restart=on-failure starts it again)"
