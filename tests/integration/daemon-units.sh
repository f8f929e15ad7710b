#!/usr/bin/env bash
# Units= selectors through the real bus: the broker learns a caller's systemd unit from its
# cgroup (sd-bus reads /proc/<pid>/cgroup). A throwaway cgroup named like a service unit,
# system.slice/cbtest-<pid>.service, holds the caller; a rule with Units= that unit allows it
# there, and the same user outside that cgroup is denied. The cgroup is removed on exit.
# Skipped (77) where the systemd cgroup hierarchy cannot be written.
set -euo pipefail
: "${CB_SOURCE_ROOT:=$(cd "$(dirname "$0")/../.." && pwd)}"
. "$CB_SOURCE_ROOT/tests/integration/daemon-enter.sh" "$@"

unit=cbtest-$$.service
cg=$(broker_unit_cgroup "$unit") || cg=
if [ -z "$cg" ]; then
        echo "# skip: no writable systemd cgroup hierarchy here"
        exit 77
fi
lab_on_exit "rmdir '$cg' 2>/dev/null; rmdir '${cg%/*}' 2>/dev/null || true"

broker_lab
# alice gets names under u.example.test only from inside the unit.
cat >"$CB_CONF/policy.d/units.policy" <<CONF
[Rule]
Name=web-unit
Users=alice
Units=$unit
Names=*.u.example.test
CONF
broker_start

# as_unit CMD...: run CMD as alice inside the unit's cgroup (root moves the shell, then drops
# to alice as lab_run_as does).
as_unit() {
        bash -c 'echo $$ >"$0/cgroup.procs" && exec setpriv --reuid="$1" --regid="$2" --init-groups --inh-caps=-all -- "${@:3}"' \
                "$cg" "$(id -u alice)" "$(id -g alice)" "$@"
}

out=$(as_unit busctl --system call "$CB_BUS" "$CB_PATH" "$CB_BUS.Manager" CheckAccess ssasa{sv} corp "" 1 www.u.example.test 0)
lab_assert_contains "$out" 'true "web-unit"' "CheckAccess from inside $unit"
out=$(cb alice call "$CB_BUS" "$CB_PATH" "$CB_BUS.Manager" CheckAccess ssasa{sv} corp "" 1 www.u.example.test 0)
lab_assert_contains "$out" "bss false" "CheckAccess from outside the unit"
path=$(as_unit busctl --system call "$CB_BUS" "$CB_PATH" "$CB_BUS.Manager" Enroll ssasa{sv} corp "" 1 www.u.example.test 0)
path=${path#o \"}
path=${path%\"}
lab_assert_eq "$(cb_wait alice "$path" 60)" issued "the unit's request"
lab_pass "Units=$unit allows alice's requests from that unit only, through the bus's credentials"
broker_stop
