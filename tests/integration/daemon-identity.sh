#!/usr/bin/env bash
# A caller is who its bus connection says it is, and nobody else: Groups= match the groups the
# bus daemon captured at connect time, Units= only the unit of the process that connected,
# while it provably still is that process with the bus's uid (certbroker.policy(5) "WHAT THE SELECTORS TRUST").
#
# Real processes on the real bus, handing one connection on (tests/integration/rawbus.py
# speaks the wire protocol itself, so a connection survives fork and exec):
#   1. alice connects, forks and lets the connecting process exit; a process of bob (tenant-b)
#      takes the freed pid. alice's CheckAccess/Enroll for a name only tenant-b's group, or only
#      a unit bob's process runs in, may request: denied.
#   2. alice connects and execs a setgid-tenant-b program keeping the bus fd: the gained group
#      does not count.
#   3. alice's connecting process exits with nobody on its pid: Units= no longer match, and the
#      denial says why; while it lives (and across a setgid exec), it does.
# The pid is placed deterministically: the test runs in its own pid namespace, where root
# writes /proc/sys/kernel/ns_last_pid.
set -euo pipefail
: "${CB_SOURCE_ROOT:=$(cd "$(dirname "$0")/../.." && pwd)}"
if [ -z "${CB_IDENTITY_PIDNS:-}" ]; then
        [ "$(id -u)" -eq 0 ] || { echo "not ok - run as root" >&2; exit 1; }
        export CB_IDENTITY_PIDNS=1
        exec unshare --pid --fork --mount-proc -- "$BASH" "$(readlink -f "$0")" "$@"
fi
. "$CB_SOURCE_ROOT/tests/integration/daemon-enter.sh" "$@"

RAWBUS=$CB_SOURCE_ROOT/tests/integration/rawbus.py
PY=/usr/bin/python3.11
[ -x "$PY" ] || PY=$(readlink -f /usr/bin/python3)
D=$LAB_DIR/identity
mkdir -m 0777 "$D"

unit=cbident-$$.service
cg=$(broker_unit_cgroup "$unit") || cg=
[ -n "$cg" ] && lab_on_exit "for p in \$(cat '$cg/cgroup.procs' 2>/dev/null); do kill -9 \$p; done; sleep 0.1; rmdir '$cg' 2>/dev/null || true"

broker_lab
cat >"$CB_CONF/policy.d/identity.policy" <<CONF
# Only tenant-b's group may have names under bg.example.test.
[Rule]
Name=tenant-b-group
Groups=tenant-b
Names=*.bg.example.test

# Anyone whose process runs in the unit may have names under ub.example.test.
[Rule]
Name=unit-b
Units=$unit
Names=*.ub.example.test
CONF
broker_start

uid_alice=$(id -u alice) gid_alice=$(id -g alice)
uid_bob=$(id -u bob) gid_bob=$(id -g bob)
as_alice=(setpriv --reuid="$uid_alice" --regid="$gid_alice" --init-groups --inh-caps=-all --)
as_bob=(setpriv --reuid="$uid_bob" --regid="$gid_bob" --init-groups --inh-caps=-all --)

# in_unit CMD...: CMD with its shell moved into the unit's cgroup first (same pid).
in_unit() {
        bash -c 'echo $$ >"$0/cgroup.procs" && exec "$@"' "$cg" "$@"
}

# take_pid PID IN_UNIT: start a long-lived process of bob's on PID (in the unit's cgroup when
# IN_UNIT is 1); prints nothing, sets TAKEN to its pid. Retries when some other process of the
# namespace (a broker thread) got the pid first.
take_pid() {
        local want=$1 inunit=$2 try p
        for try in $(seq 1 50); do
                echo $((want - 1)) >/proc/sys/kernel/ns_last_pid
                if [ "$inunit" = 1 ]; then
                        ( exec bash -c 'echo $$ >"$0/cgroup.procs" && exec "$@"' "$cg" "${as_bob[@]}" sleep 120 ) &
                else
                        "${as_bob[@]}" sleep 120 &
                fi
                p=$!
                if [ "$p" = "$want" ]; then
                        TAKEN=$p
                        lab_on_exit "kill -9 $p 2>/dev/null || true"
                        # Wait until it is bob's and (when asked) in the unit.
                        lab_wait_for 10 "bob's process on pid $p" \
                                bash -c "[ \"\$(stat -c %u /proc/$p)\" = $uid_bob ] && { [ $inunit = 0 ] || grep -q '$unit' /proc/$p/cgroup; }"
                        return 0
                fi
                kill -9 "$p" 2>/dev/null || true
                wait "$p" 2>/dev/null || true
        done
        lab_fail "could not place a process on pid $want"
}

# handoff NAME IN_UNIT CALL...: alice connects (in the unit's cgroup when IN_UNIT is 1), forks,
# the connecting process exits; prints the connecting pid. The child waits for $D/NAME.go and
# then makes the CALLs, writing $D/NAME.out.
handoff() {
        local name=$1 inunit=$2 p
        shift 2
        if [ "$inunit" = 1 ]; then
                ( exec bash -c 'echo $$ >"$0/cgroup.procs" && exec "$@"' "$cg" "${as_alice[@]}" \
                        "$PY" "$RAWBUS" connect-fork "$D/$name.pid" "$D/$name.go" "$@" >"$D/$name.out" 2>"$D/$name.err" ) &
        else
                "${as_alice[@]}" "$PY" "$RAWBUS" connect-fork "$D/$name.pid" "$D/$name.go" "$@" >"$D/$name.out" 2>"$D/$name.err" &
        fi
        p=$!
        wait "$p" || lab_fail "$name: the connecting process failed: $(cat "$D/$name.err")"
        [ "$(cat "$D/$name.pid")" = "$p" ] || lab_fail "$name: the connecting pid is not $p"
        CONNECTED=$p
}

# results NAME COUNT: wait for COUNT lines of the child's output, print them.
results() {
        lab_wait_for 30 "$1's calls" bash -c "[ \$(wc -l <'$D/$1.out') -ge $2 ]"
        cat "$D/$1.out"
}

# ---- controls: the rules do what they say for the callers they are meant for ----
out=$(cb bob call "$CB_BUS" "$CB_PATH" "$CB_BUS.Manager" CheckAccess ssasa{sv} corp "" 1 x.bg.example.test 0)
lab_assert_contains "$out" 'true "tenant-b-group"' "bob (tenant-b) on his own connection"
out=$(cb alice call "$CB_BUS" "$CB_PATH" "$CB_BUS.Manager" CheckAccess ssasa{sv} corp "" 1 x.bg.example.test 0)
lab_assert_contains "$out" 'bss false' "alice on her own connection"

# ---- 1. Groups=: the connecting pid taken by another tenant ----
handoff groups-reuse 0 CheckAccess:x.bg.example.test Enroll:y.bg.example.test
take_pid "$CONNECTED" 0
touch "$D/groups-reuse.go"
out=$(results groups-reuse 2)
lab_assert_contains "$(sed -n 1p <<<"$out")" "reply bss False" "alice's CheckAccess with bob on her connecting pid"
lab_assert_contains "$(sed -n 2p <<<"$out")" "error org.certbroker.Broker1.Error.NameNotPermitted" \
        "alice's Enroll with bob on her connecting pid"
kill -9 "$TAKEN"; wait "$TAKEN" 2>/dev/null || true
lab_pass "Groups=: a pid taken by another tenant lends alice none of its groups"

# ---- 2. Groups=: a setgid exec keeps the connection but gains nothing ----
cp "$PY" "$D/python-tenant-b"
chown root:tenant-b "$D/python-tenant-b"
chmod 2755 "$D/python-tenant-b"
out=$("${as_alice[@]}" "$PY" "$RAWBUS" connect-exec "$D/python-tenant-b" CheckAccess:x.bg.example.test Enroll:y.bg.example.test)
lab_assert_contains "$(sed -n 1p <<<"$out")" "egid $(getent group tenant-b | cut -d: -f3)" "the exec'd program runs with tenant-b as its group"
lab_assert_contains "$(sed -n 2p <<<"$out")" "reply bss False" "CheckAccess after a setgid exec"
lab_assert_contains "$(sed -n 3p <<<"$out")" "error org.certbroker.Broker1.Error.NameNotPermitted" "Enroll after a setgid exec"
lab_pass "Groups=: a setgid exec over a kept bus fd gains no group"

n_alice=$(cb alice call "$CB_BUS" "$CB_PATH" "$CB_BUS.Manager" ListRequests)
lab_assert_eq "$n_alice" "a(sso) 0" "alice owns no request after the denied Enrolls"

if [ -z "$cg" ]; then
        echo "# skip: Units= cases: no writable systemd cgroup hierarchy here"
        broker_stop
        exit 0
fi

# ---- controls for Units= ----
out=$(in_unit "${as_bob[@]}" busctl --system call "$CB_BUS" "$CB_PATH" "$CB_BUS.Manager" CheckAccess ssasa{sv} corp "" 1 x.ub.example.test 0)
lab_assert_contains "$out" 'true "unit-b"' "bob from inside the unit"
out=$(in_unit "${as_alice[@]}" busctl --system call "$CB_BUS" "$CB_PATH" "$CB_BUS.Manager" CheckAccess ssasa{sv} corp "" 1 x.ub.example.test 0)
lab_assert_contains "$out" 'true "unit-b"' "alice from inside the unit"

# ---- 3. Units=: the connecting pid taken by another tenant's process in the unit ----
handoff units-reuse 0 CheckAccess:x.ub.example.test Enroll:y.ub.example.test
take_pid "$CONNECTED" 1
touch "$D/units-reuse.go"
out=$(results units-reuse 2)
lab_assert_contains "$(sed -n 1p <<<"$out")" "reply bss False" "alice's CheckAccess with bob's unit process on her pid"
lab_assert_contains "$(sed -n 1p <<<"$out")" "Units=" "the denial says why Units= did not match"
lab_assert_contains "$(sed -n 2p <<<"$out")" "error org.certbroker.Broker1.Error.NameNotPermitted" \
        "alice's Enroll with bob's unit process on her pid"
kill -9 "$TAKEN"; wait "$TAKEN" 2>/dev/null || true
lab_pass "Units=: a pid taken by another tenant's process in the unit does not lend its unit"

# ---- 4. Units=: the connecting process is gone (connected in the unit, first call after) ----
handoff units-gone 1 CheckAccess:x.ub.example.test
touch "$D/units-gone.go"
out=$(results units-gone 1)
lab_assert_contains "$out" "reply bss False" "CheckAccess after the connecting process in the unit exited"
lab_assert_contains "$out" "has exited" "the denial says the connecting process exited"

# Pinned at the first call: allowed while the connecting process lives, not after it exited.
( exec bash -c 'echo $$ >"$0/cgroup.procs" && exec "$@"' "$cg" "${as_alice[@]}" "$PY" "$RAWBUS" connect-fork "$D/pinned.pid" \
        "$D/pinned.go" CheckAccess:x.ub.example.test -- CheckAccess:x.ub.example.test >"$D/pinned.out" 2>"$D/pinned.err" ) &
p=$!
wait "$p"
touch "$D/pinned.go"
out=$(results pinned 2)
lab_assert_contains "$(sed -n 1p <<<"$out")" "reply bss True 'unit-b'" "the connecting process, in the unit, while it lives"
lab_assert_contains "$(sed -n 2p <<<"$out")" "reply bss False" "its child, on the same connection, after it exited"
lab_pass "Units=: a caller whose connecting process is gone matches no Units=, and is told why"

# ---- 5. Units=: a setgid exec is still the process that connected (same pid, same uid) ----
out=$(in_unit "${as_alice[@]}" "$PY" "$RAWBUS" connect-exec "$D/python-tenant-b" CheckAccess:x.ub.example.test CheckAccess:x.bg.example.test)
lab_assert_contains "$(sed -n 2p <<<"$out")" "reply bss True 'unit-b'" "Units= after a setgid exec in the unit"
lab_assert_contains "$(sed -n 3p <<<"$out")" "reply bss False" "Groups= after a setgid exec in the unit"
lab_pass "Units=: the process that connected keeps its unit across exec; its new group still does not count"

broker_stop
