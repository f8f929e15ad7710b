#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Enroll one name through certbrokerd's D-Bus API with python3-dbus, wait for the
certificate, write it and its key (mode 0600).

    enroll.py NAME [CA]    writes NAME.crt and NAME.key in the current directory
"""
import os
import sys

import dbus

BUS_NAME = "org.certbroker.Broker1"


def main():
    name = sys.argv[1] if len(sys.argv) > 1 else "web.a.example.com"
    ca = sys.argv[2] if len(sys.argv) > 2 else ""
    bus = dbus.SystemBus()
    manager = dbus.Interface(bus.get_object(BUS_NAME, "/org/certbroker/Broker1"),
                             BUS_NAME + ".Manager")
    try:
        path = manager.Enroll(ca, "", [name], dbus.Dictionary({}, signature="sv"))
    except dbus.DBusException as e:
        sys.exit(f"Enroll refused: {e.get_dbus_message()} [{e.get_dbus_name()}]")

    obj = bus.get_object(BUS_NAME, path)
    request = dbus.Interface(obj, BUS_NAME + ".Request")
    props = dbus.Interface(obj, "org.freedesktop.DBus.Properties")
    state = request.Wait(dbus.UInt64(60 * 1000000), timeout=90)
    print(f"{os.path.basename(path)}: {state}", file=sys.stderr)
    if state != "issued":
        sys.exit(f"request ended {state}: {props.Get(BUS_NAME + '.Request', 'ErrorMessage')}")

    with open(name + ".crt", "x") as f:
        f.write(props.Get(BUS_NAME + ".Request", "Certificate"))
    fd = os.open(name + ".key", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(request.TakeKey())


if __name__ == "__main__":
    main()
