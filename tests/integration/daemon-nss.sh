#!/usr/bin/env bash
# NSS trouble is never final, and a slow NSS stalls nobody else. The lab's policy selects
# callers by name (Groups=tenant-a, Users=bob), so every decision needs NSS. certbrokerd runs in
# a mount namespace of its own where /etc/nsswitch.conf can be swapped alone:
#   - slow: a module that sleeps before each look-up (nss-slow.c, 3 s), then "files" answers;
#   - down: a module that fails every look-up with ECONNREFUSED (tests/bench/nss-down.c: sssd
#     or winbind stopped).
# Checked:
#   1. slow NSS: while alice's Enroll waits for her names, root's ListCAs and ListRequests are
#      answered at once (the loop is not blocked); alice's Enroll is then answered, allowed;
#      a look-up slower than the broker's 10 s bound answers NotReady, named, nothing decided;
#   2. NSS down at start-up: a PENDING request in the journal is neither failed nor resumed
#      (not polled: it stays PENDING though NDES has approved it) while its decision waits;
#      NSS back: decided, resumed, issued;
#   3. NSS down at Reload, with new rules that deny the request: it is kept as it is while NSS
#      is down, then ended by the new rules once NSS answers, the rule's reason named;
#   4. NSS down at RenewAt (renewals fallen due while the broker was stopped): no successor is
#      made failed and no chain ends; NSS back: the successor is made and issued.
set -euo pipefail
: "${CB_SOURCE_ROOT:=$(cd "$(dirname "$0")/../.." && pwd)}"
. "$CB_SOURCE_ROOT/tests/integration/daemon-enter.sh" "$@"

t_start=$SECONDS
down_dir=$CB_BUILD_ROOT/tests
slow_dir=$CB_BUILD_ROOT/tests/integration
[ -e "$down_dir/libnss_down.so.2" ] || lab_fail "$down_dir/libnss_down.so.2 is not built"
[ -e "$slow_dir/libnss_slow.so.2" ] || lab_fail "$slow_dir/libnss_slow.so.2 is not built"

broker_lab
base='shadow: files\nhosts: files\nnetworks: files\nservices: files\nprotocols: files\n'
printf "passwd: down\ngroup: down\n$base" >"$LAB_DIR/nsswitch-down.conf"
printf "passwd: slow files\ngroup: slow files\n$base" >"$LAB_DIR/nsswitch-slow.conf"
echo 0 >"$LAB_DIR/nss-slow-ms"

# certbrokerd in its own mount namespace; while $LAB_DIR/nss-mode names a mode it starts with
# that nsswitch.conf in place.
real_daemon=$CB_DAEMON
CB_DAEMON=$LAB_DIR/certbrokerd-nss
cat >"$CB_DAEMON" <<EOF
#!/bin/sh
exec unshare --mount --propagation private -- sh -c '
        mode=\$(cat "$LAB_DIR/nss-mode" 2>/dev/null || true)
        [ -z "\$mode" ] || mount --bind "$LAB_DIR/nsswitch-\$mode.conf" /etc/nsswitch.conf || exit 1
        exec env LD_LIBRARY_PATH="$down_dir:$slow_dir" CB_NSS_SLOW_FILE="$LAB_DIR/nss-slow-ms" \
                CB_NSS_LOG="$LAB_DIR/nss-calls.log" "$real_daemon" "\$@"' certbrokerd "\$@"
EOF
chmod 0755 "$CB_DAEMON"
# Each look-up the test modules answer, "MODULE ENTRY KEY" (tests/nss-module-log.h): the checks
# below ask it whether the broker really met the module each case sets up.
: >"$LAB_DIR/nss-calls.log"
chmod 0666 "$LAB_DIR/nss-calls.log"
alice_uid=$(getent passwd alice | cut -d: -f3)
# consulted MODULE ENTRY KEY WHAT: the broker asked MODULE that look-up (since the last call).
consulted() {
        grep -qx "$1 $2 $3" "$LAB_DIR/nss-calls.log" ||
                lab_fail "$4: the broker never asked the $1 module $2($3) ($(wc -l <"$LAB_DIR/nss-calls.log") look-ups logged)"
        : >"$LAB_DIR/nss-calls.log"
}

# nss_set MODE|up: the broker's nsswitch.conf now (and at its next start).
nss_set() {
        local pid
        pid=${_LAB_PIDS[certbrokerd]:-}   # none while the broker is stopped
        if [ "$1" = up ]; then
                rm -f "$LAB_DIR/nss-mode"
                [ -z "$pid" ] || nsenter -t "$pid" -m sh -c 'while umount /etc/nsswitch.conf 2>/dev/null; do :; done'
        else
                echo "$1" >"$LAB_DIR/nss-mode"
                [ -z "$pid" ] || nsenter -t "$pid" -m mount --bind "$LAB_DIR/nsswitch-$1.conf" /etc/nsswitch.conf
        fi
}
# nss_answer: what getgrgid_r(3001) answers in the broker's mount namespace. In a sanitizer
# build the modules need the ASan runtime first in the (uninstrumented) python.
asan_rt=$(ldd "$slow_dir/libnss_slow.so.2" 2>/dev/null | sed -n 's/.*=> \(\/[^ ]*libasan[^ ]*\) .*/\1/p' | head -1)
nss_answer() {
        nsenter -t "$(lab_pid certbrokerd)" -m env LD_LIBRARY_PATH="$down_dir:$slow_dir" \
                ${asan_rt:+LD_PRELOAD=$asan_rt ASAN_OPTIONS=detect_leaks=0} \
                CB_NSS_SLOW_FILE="$LAB_DIR/nss-slow-ms" "$LAB_PYTHON" -c '
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
buf = ctypes.create_string_buffer(1 << 16)
ent = ctypes.create_string_buffer(256)
res = ctypes.c_void_p()
g = libc.getgrgid_r(3001, ent, buf, len(buf), ctypes.byref(res))
print("%s%s" % (os.strerror(g), ", found" if res.value else ""))'
}
state_of() { cb_prop "$1" "$2" State; }
# wait_state USER PATH STATE SECONDS
wait_state() {
        lab_wait_for "$4" "$2 to be $3 (now $(state_of "$1" "$2" 2>/dev/null))" \
                bash -c "[ \"\$(busctl --system get-property $CB_BUS '$2' $CB_BUS.Request State 2>/dev/null)\" = 's \"$3\"' ]"
}
log_lines() { wc -l <"$LAB_DIR/certbrokerd.log"; }

broker_start

# ---- 1. slow NSS does not stall the loop ----
nss_set slow
echo 3000 >"$LAB_DIR/nss-slow-ms"
lab_assert_eq "$(nss_answer)" "Success, found" "getgrgid_r(3001) through the slow module"
out=$LAB_DIR/alice-enroll.out
(cb alice --timeout=60 call "$CB_BUS" "$CB_PATH" "$CB_BUS.Manager" Enroll ssasa{sv} "" "" 1 web.a.example.test 0 \
        >"$out" 2>&1; echo "rc=$?" >>"$out") &
alice_pid=$!
sleep 0.5
kill -0 "$alice_pid" 2>/dev/null || lab_fail "alice's Enroll was answered before NSS could: $(cat "$out")"
for call in ListCAs ListRequests; do
        cb root call "$CB_BUS" "$CB_PATH" "$CB_BUS.Manager" "$call" >/dev/null || lab_fail "root's $call"
        kill -0 "$alice_pid" 2>/dev/null ||
                lab_fail "root's $call was answered only after alice's Enroll: the loop waited for NSS"
done
lab_pass "slow NSS (3 s a look-up): root's ListCAs and ListRequests answered while alice's Enroll waits for her names"
wait "$alice_pid" || true
lab_assert_contains "$(cat "$out")" 'o "/org/certbroker/Broker1/request/' "alice's Enroll, answered once NSS did"
lab_assert_contains "$(cat "$out")" "rc=0" "alice's Enroll"
first=$(sed -n 's/^o "\(.*\)"$/\1/p' "$out")
wait_state alice "$first" issued 60
lab_pass "alice's Enroll decided through slow NSS and issued"

# A look-up slower than the broker's bound (10 s): NotReady, nothing decided. bob (Users=bob):
# his name was never looked up, so no answer is reused.
echo 13000 >"$LAB_DIR/nss-slow-ms"
n_before=$(cb root --json=short call "$CB_BUS" "$CB_PATH" "$CB_BUS.Manager" ListRequests | "$LAB_PYTHON" -c 'import json,sys; print(len(json.load(sys.stdin)["data"][0]))')
if o=$(cb bob --timeout=60 call "$CB_BUS" "$CB_PATH" "$CB_BUS.Manager" Enroll ssasa{sv} "" "" 1 slow.b.example.test 0 2>&1); then
        lab_fail "bob's Enroll while NSS takes 13 s per look-up was answered: $o"
fi
lab_assert_contains "$o" "NSS has not answered in time" "the NotReady answer names NSS"
n_after=$(cb root --json=short call "$CB_BUS" "$CB_PATH" "$CB_BUS.Manager" ListRequests | "$LAB_PYTHON" -c 'import json,sys; print(len(json.load(sys.stdin)["data"][0]))')
lab_assert_eq "$n_after" "$n_before" "requests after the NotReady answer"
lab_pass "a look-up past 10 s: bob told NotReady naming NSS, nothing decided"
consulted slow getpwuid_r "$alice_uid" "the slow NSS cases"
echo 0 >"$LAB_DIR/nss-slow-ms"
nss_set up
sleep 14        # the stuck look-ups end

# ---- 2. NSS down at start-up ----
ndes ctl pending=on >/dev/null
p2=$(cb_enroll alice "" pend.a.example.test) || lab_fail "alice's Enroll for the start-up case"
wait_state alice "$p2" pending 60
broker_stop
nss_set down
ndes approve all >/dev/null
from=1          # broker_start begins a new log
broker_start
lab_assert_eq "$(nss_answer)" "Connection refused" "getgrgid_r(3001) in the broker's namespace at start-up"
lab_wait_for 30 "the broker to say it keeps the request undecided" \
        bash -c "tail -n +$from '$LAB_DIR/certbrokerd.log' | grep -q 'cannot be decided again after the start-up'"
sleep 5         # PollInterval=1: a resumed request would have polled and been issued by now
lab_assert_eq "$(state_of alice "$p2")" pending "the PENDING request's state while NSS is down at start-up"
consulted down getpwuid_r "$alice_uid" "NSS down at start-up"
nss_set up
wait_state alice "$p2" issued 90
lab_assert_eq "$(tprop alice "$p2" KeyAvailable)" "true" "its key, kept through the NSS failure"
lab_pass "NSS down at start-up: the PENDING request kept and not resumed; NSS back: decided, resumed, issued"

# ---- 3. NSS down at Reload, the new rules denying the request ----
p3=$(cb_enroll alice "" held.a.example.test) || lab_fail "alice's Enroll for the Reload case"
wait_state alice "$p3" pending 60
nss_set down    # (Reload forgets the names alice's Enroll looked up: no answer is reused)
cp "$CB_CONF/policy.d/tenants.policy" "$LAB_DIR/tenants.policy.orig"
sed -i 's/^Names=\*\.a\.example\.test a\.example\.test$/Names=*.other.example.test/' "$CB_CONF/policy.d/tenants.policy"
from=$(log_lines)
cb root call "$CB_BUS" "$CB_PATH" "$CB_BUS.Manager" Reload >/dev/null || lab_fail "Reload with NSS down"
lab_wait_for 30 "the broker to say it keeps the request undecided" \
        bash -c "tail -n +$from '$LAB_DIR/certbrokerd.log' | grep -q 'cannot be decided again after the reload'"
lab_assert_eq "$(state_of alice "$p3")" pending "the request's state after a Reload while NSS is down"
consulted down getpwuid_r "$alice_uid" "NSS down at Reload"
nss_set up
wait_state alice "$p3" failed 90
lab_assert_contains "$(cb_prop alice "$p3" ErrorMessage)" "The policy in force since the reload no longer allows this request" \
        "the ended request's message"
lab_pass "NSS down at Reload: the request kept as it was; NSS back: ended by the new rules, named"
cp "$LAB_DIR/tenants.policy.orig" "$CB_CONF/policy.d/tenants.policy"
cb root call "$CB_BUS" "$CB_PATH" "$CB_BUS.Manager" Reload >/dev/null || lab_fail "Reload back"
ndes ctl pending=off >/dev/null

# ---- 4. NSS down at RenewAt ----
p4=$(enroll_renew alice "" renew.a.example.test) || lab_fail "alice's renewing Enroll"
wait_state alice "$p4" issued 60
id4=${p4##*/}
broker_stop
past=$(( $(date +%s%N) / 1000 - 1000000 ))
sqlite3 "$CB_STATE/certbroker.db" "UPDATE requests SET renew_at = $past WHERE id = '$id4';"
nss_set down
from=1
broker_start
lab_wait_for 30 "the broker to fail to resolve the owner for the renewal" \
        bash -c "tail -n +$from '$LAB_DIR/certbrokerd.log' | grep -q 'cannot resolve its owner 2001 for the renewal'"
sleep 6         # past the first retry (5 s): still no successor, none failed
lab_assert_eq "$(oprop alice "$p4" Successor)" "/" "the chain's successor while NSS is down"
lab_assert_eq "$(sqlite3 "$CB_STATE/certbroker.db" "SELECT count(*) FROM requests WHERE state = 'failed' AND predecessor = '$id4';")" 0 \
        "failed successors"
consulted down getpwuid_r "$alice_uid" "NSS down at RenewAt"
nss_set up
lab_wait_for 90 "the successor to be made" bash -c "[ \"\$(busctl --system get-property $CB_BUS '$p4' $CB_BUS.Request Successor)\" != 'o \"/\"' ]"
s4=$(oprop alice "$p4" Successor)
wait_state alice "$s4" issued 90
lab_pass "NSS down at RenewAt: no successor failed, the chain kept; NSS back: its successor made and issued"

broker_stop
echo "# daemon-nss: $((SECONDS - t_start)) s"
