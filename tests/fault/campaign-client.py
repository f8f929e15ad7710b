#!/usr/bin/python3
"""Fault campaign client (python3-dbus), run by tests/fault/campaign.sh as a lab tenant.

  campaign-client.py enroll N CONCURRENCY ACCEPTED_FILE
        Enrolls campaign-<i>.a.example.test, i = 0, 1, ..., until N Enroll calls were accepted,
        at most CONCURRENCY requests in progress at once, each name once. The broker is killed
        and restarted under it: a call that fails is not retried with the same name (its
        request may exist: the census below finds it); the next waits for the broker to be
        back. Every request path an Enroll returned goes to ACCEPTED_FILE with its name.
  campaign-client.py census TIMEOUT
        Waits (at most TIMEOUT seconds) until every request of the caller is terminal, then
        prints one JSON object per request: id, state, names, error, warning.
"""
import json
import sys
import time

import dbus

BUS = 'org.certbroker.Broker1'
PATH = '/org/certbroker/Broker1'
MANAGER = BUS + '.Manager'
REQUEST = BUS + '.Request'
TERMINAL = {'issued', 'rejected', 'failed', 'cancelled'}


def call(bus, path, iface, method, *args, timeout=10):
    obj = bus.get_object(BUS, path, introspect=False, follow_name_owner_changes=False)
    return getattr(dbus.Interface(obj, iface), method)(*args, timeout=timeout)


def prop(bus, path, name):
    obj = bus.get_object(BUS, path, introspect=False, follow_name_owner_changes=False)
    return dbus.Interface(obj, 'org.freedesktop.DBus.Properties').Get(REQUEST, name, timeout=10)


def states(bus):
    return {str(p): str(s) for _, s, p in call(bus, PATH, MANAGER, 'ListRequests')}


def wait_for_broker(bus, seconds=60):
    """Until the broker's name has an owner again (it is being restarted)."""
    deadline = time.monotonic() + seconds
    dbus_iface = dbus.Interface(bus.get_object('org.freedesktop.DBus', '/org/freedesktop/DBus'),
                                'org.freedesktop.DBus')
    while time.monotonic() < deadline:
        if dbus_iface.NameHasOwner(BUS):
            return
        time.sleep(0.05)


def enroll(n, concurrency, accepted_file):
    bus = dbus.SystemBus()
    out = open(accepted_file, 'a', buffering=1)
    in_progress = 0
    accepted = 0
    refused = 0                 # QuotaExceeded in a row (a full disk is brief; a quota is not)
    i = 0
    while accepted < n and refused < 600:
        try:
            if in_progress >= concurrency:
                st = states(bus)
                in_progress = sum(1 for s in st.values() if s not in TERMINAL)
                if in_progress >= concurrency:
                    time.sleep(0.05)
                    continue
            name = f'campaign-{i}.a.example.test'
            i += 1
            path = call(bus, PATH, MANAGER, 'Enroll', '', '', [name], dbus.Dictionary({}, signature='sv'))
            out.write(f'{path} {name}\n')
            in_progress += 1
            accepted += 1
            refused = 0
        except dbus.exceptions.DBusException as e:
            # The broker is down (killed, stopped: the request of a call in flight may exist,
            # the census finds it) or refused (a full disk). Never the same name again.
            if 'QuotaExceeded' in (e.get_dbus_name() or ''):
                refused += 1
                time.sleep(0.2)
            else:
                wait_for_broker(bus)
    out.close()
    if refused:
        raise SystemExit(f'stopped after {accepted} accepted: QuotaExceeded {refused} times in a row')


def census(timeout):
    bus = dbus.SystemBus()
    deadline = time.monotonic() + timeout
    while True:
        try:
            st = states(bus)
            if all(s in TERMINAL for s in st.values()) or time.monotonic() > deadline:
                break
        except dbus.exceptions.DBusException:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.5)
    for path, state in sorted(st.items()):
        print(json.dumps({
            'path': path,
            'state': state,
            'names': [str(x) for x in prop(bus, path, 'Names')],
            'error': str(prop(bus, path, 'Error')),
            'message': str(prop(bus, path, 'ErrorMessage')),
            'warning': str(prop(bus, path, 'Warning')),
        }))


if __name__ == '__main__':
    if sys.argv[1] == 'enroll':
        enroll(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
    elif sys.argv[1] == 'census':
        census(float(sys.argv[2]))
    else:
        raise SystemExit(__doc__)
