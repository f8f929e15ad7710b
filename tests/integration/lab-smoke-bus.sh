#!/usr/bin/env bash
# Lab smoke test: the private system bus answers and enforces the project's
# own policy from ipc/system.d.
set -euo pipefail
: "${CB_SOURCE_ROOT:=$(cd "$(dirname "$0")/../.." && pwd)}"
. "$CB_SOURCE_ROOT/tests/lab/lab.sh"
lab_enter "$@"

lab_bus
lab_assert_eq "$DBUS_SYSTEM_BUS_ADDRESS" "unix:path=$LAB_DIR/bus/system_bus_socket" "DBUS_SYSTEM_BUS_ADDRESS"
list=$(busctl --system list --no-pager)
lab_assert_contains "$list" "org.freedesktop.DBus" "busctl --system list"
lab_assert_contains "$list" "$(lab_pid bus)" "busctl --system list names the lab's dbus-daemon PID"
lab_assert_contains "$(busctl --system --no-pager status org.freedesktop.DBus)" "PID=$(lab_pid bus)" "busctl status"
lab_pass "the private system bus answers busctl --system list"

# request_name USER: try to own org.certbroker.Broker1 as USER; prints the
# RequestName reply (1 = primary owner) or the D-Bus error name.
request_name() {
        lab_run_as "$1" "$LAB_PYTHON" -c '
import dbus, sys
try:
    r = dbus.SystemBus().request_name("org.certbroker.Broker1", dbus.bus.NAME_FLAG_DO_NOT_QUEUE)
    print(int(r))
except dbus.exceptions.DBusException as e:
    print(e.get_dbus_name())
'
}
lab_assert_eq "$(request_name root)" 1 "root owning org.certbroker.Broker1"
lab_assert_eq "$(request_name certbroker)" 1 "user certbroker owning org.certbroker.Broker1 (allowed only by ipc/system.d)"
for u in alice bob mallory; do
        lab_assert_eq "$(request_name "$u")" org.freedesktop.DBus.Error.AccessDenied "user $u owning org.certbroker.Broker1"
done
# Without the project's policy the daemon's own user is refused like anyone else:
# that is what proves the bus loaded ipc/system.d.
lab_assert_eq "$(lab_run_as certbroker "$LAB_PYTHON" -c '
import dbus
try:
    print(int(dbus.SystemBus().request_name("org.certbroker.Other1", dbus.bus.NAME_FLAG_DO_NOT_QUEUE)))
except dbus.exceptions.DBusException as e:
    print(e.get_dbus_name())
')" org.freedesktop.DBus.Error.AccessDenied "user certbroker owning a name the project policy does not grant"
lab_pass "bus policy from ipc/system.d: root and certbroker may own org.certbroker.Broker1; alice, bob, mallory may not"

# Anyone may call the broker: alice reaches a service owned by root (a tiny
# python3-dbus service; its main loop needs python3-gi).
"$LAB_PYTHON" -c 'from gi.repository import GLib' 2>/dev/null ||
        lab_fail "python3-gi is not installed (needed for the fake broker's main loop): add it to tests/install-deps"
lab_start fake-broker "$LAB_PYTHON" -c '
import dbus, dbus.service, dbus.mainloop.glib
from gi.repository import GLib
dbus.mainloop.glib.DBusGMainLoop(set_as_default=True)
bus = dbus.SystemBus()
name = dbus.service.BusName("org.certbroker.Broker1", bus, do_not_queue=True)
class O(dbus.service.Object):
    @dbus.service.method("org.certbroker.LabPing1", out_signature="s")
    def Ping(self):
        return "pong"
o = O(bus, "/org/certbroker/Broker1")
GLib.MainLoop().run()
'
lab_wait_for 10 "the fake broker to own org.certbroker.Broker1" \
        busctl --system status org.certbroker.Broker1
out=$(lab_run_as alice busctl --system call org.certbroker.Broker1 /org/certbroker/Broker1 org.certbroker.LabPing1 Ping)
lab_assert_eq "$out" 's "pong"' "alice calling a method on org.certbroker.Broker1"
lab_pass "alice may call org.certbroker.Broker1 (the broker authorizes calls itself)"

lab_times
