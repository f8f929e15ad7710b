#!/usr/bin/env bash
# certbroker_wait() (and so `certbrokerctl wait`) reports progress as it happens by following
# the request's PropertiesChanged signals (org.certbroker.Broker1(5): invalidations only, no values). This
# checks that contract on the real lab: the owner of a PENDING request that the broker polls
# sees the signals, they carry no values, and another tenant learns nothing but the change.
set -euo pipefail
: "${CB_SOURCE_ROOT:=$(cd "$(dirname "$0")/../.." && pwd)}"
. "$CB_SOURCE_ROOT/tests/integration/daemon-enter.sh" "$@"

broker_need_ctl
W=$LAB_DIR/alice
mkdir -p "$W"
chown alice "$W"

broker_lab
broker_start
ndes ctl pending=on >/dev/null

id=$(cd "$W" && lab_run_as alice "$CTL" enroll --dns slow.a.example.test --no-wait) ||
        lab_fail "enroll --no-wait failed"
state_is() { [ "$(busctl --system get-property "$CB_BUS" "$CB_PATH/request/$1" "$CB_BUS.Request" State)" = "s \"$2\"" ]; }
lab_wait_for 30 "request pending" state_is "$id" pending

# listen USER: the first PropertiesChanged of the request within 20 s, as USER.
listen() {
        (cd "$W" && lab_run_as "$1" "$LAB_PYTHON" - "$CB_PATH/request/$id" <<'PYEOF'
import sys
import dbus
from dbus.mainloop.glib import DBusGMainLoop
from gi.repository import GLib

DBusGMainLoop(set_as_default=True)
bus = dbus.SystemBus()
loop = GLib.MainLoop()
got = []

def changed(iface, values, invalidated):
    got.append((str(iface), len(values), sorted(str(i) for i in invalidated)))
    loop.quit()

bus.add_signal_receiver(changed, signal_name="PropertiesChanged",
                        dbus_interface="org.freedesktop.DBus.Properties", path=sys.argv[1])
GLib.timeout_add_seconds(20, loop.quit)
loop.run()
print(got[0] if got else "no signal")
PYEOF
)
}

# The broker polls the pending request (PollInterval=1, backing off), changing Attempts.
sig=$(listen alice)
lab_assert_contains "$sig" "('org.certbroker.Broker1.Request', 0, [" "the owner's PropertiesChanged (interface, no values)"
lab_assert_contains "$sig" "'Attempts'" "PropertiesChanged invalidates Attempts"
lab_assert_contains "$sig" "'State'" "PropertiesChanged invalidates State"
lab_pass "the owner sees PropertiesChanged invalidations (no values) while the broker polls"

sig=$(listen bob)
lab_assert_contains "$sig" "('org.certbroker.Broker1.Request', 0, [" "another tenant's view of the signal"
lab_pass "another tenant sees only that something changed, no values"

ndes approve all >/dev/null
out=$(cd "$W" && lab_run_as alice "$CTL" wait "$id" --timeout 60 2>&1) || lab_fail "wait after approval: $out"
lab_assert_contains "$out" "issued" "wait after approval"
lab_pass "done"
broker_stop
