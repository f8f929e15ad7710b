#!/usr/bin/python3
"""Soak benchmark clients, run by tests/bench/soak.sh as lab users.

  soak-client.py churn N SECONDS OUT
        Keeps N connections of the current user to the bus (rawbus.py: AUTH EXTERNAL + Hello),
        each of which calls Manager.ListRequests once (so that certbrokerd remembers it),
        stays a random 2 to 30 s, leaves, and is made again, until SECONDS have passed. A
        connection is closed before its successor is made: never more than N at once. Writes
        one line to OUT at the end:
          churn connects C refused-by-bus B replies R quota Q other O [first other error]
  soak-client.py enroll K SECONDS SETTLE OUT
        K callers (one process and bus connection each) enroll soak-<k>-<i>.a.example.test in
        a loop until SECONDS have passed: Enroll, Wait until terminal, then, when issued, the
        Certificate and TakeKey; then Remove. The broker is killed -9 and restarted under
        them: a Wait cut off waits for the broker and goes on with the same request; an
        Enroll cut off is not retried with the same name. After SECONDS a caller makes no new
        request and follows the one it has for at most SETTLE seconds more. Lines in OUT.<k>:
          accepted PATH NAME
          done PATH STATE ERROR MESSAGE  (the request ended; removed after)
          open PATH STATE                (not ended after SETTLE)
          unknown PATH ERROR-NAME        (the broker said it has no such request)
          refused ERROR-NAME             (an Enroll answered with an error)
  soak-client.py census OUT
        Every request of the caller, one JSON object per line: path, state, error, next
        attempt (NextAttempt, microseconds since the epoch, 0 for none).
  soak-client.py remove-finished
        Removes every terminal request of the caller; prints how many.
"""
import json
import os
import random
import sys
import time

BUS = 'org.certbroker.Broker1'
PATH = '/org/certbroker/Broker1'
MANAGER = BUS + '.Manager'
REQUEST = BUS + '.Request'
TERMINAL = {'issued', 'rejected', 'failed', 'cancelled'}
QUOTA = BUS + '.Error.QuotaExceeded'
# Errors that mean the broker is not there (killed, restarting), not an answer of its own.
GONE = {'org.freedesktop.DBus.Error.NoReply', 'org.freedesktop.DBus.Error.ServiceUnknown',
        'org.freedesktop.DBus.Error.NameHasNoOwner', 'org.freedesktop.DBus.Error.Disconnected',
        'org.freedesktop.DBus.Error.Timeout'}


def churn(n, seconds, out):
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'integration'))
    import rawbus
    deadline = time.monotonic() + seconds
    stats = {'connects': 0, 'refused-by-bus': 0, 'replies': 0, 'quota': 0, 'other': 0}
    first_other = ''
    conns = []          # [leave_at, conn]

    def one():
        nonlocal first_other
        try:
            c = rawbus.Conn.connect()
        except (RuntimeError, OSError) as e:
            stats['refused-by-bus'] += 1
            first_other = first_other or 'bus: %s' % e
            return None
        stats['connects'] += 1
        try:
            kind, what, values = c.call(rawbus.BUS, rawbus.PATH, MANAGER, 'ListRequests', '', [], timeout=30)
        except (RuntimeError, OSError) as e:
            stats['other'] += 1
            first_other = first_other or 'call: %s' % e
            c.sock.close()
            return None
        if kind == 'reply':
            stats['replies'] += 1
        elif what == QUOTA:
            stats['quota'] += 1
        elif what in GONE:
            stats.setdefault('broker-away', 0)
            stats['broker-away'] += 1
        else:
            stats['other'] += 1
            first_other = first_other or '%s: %s' % (what, values[0] if values else '')
        return c

    while time.monotonic() < deadline:
        now = time.monotonic()
        for entry in [e for e in conns if e[0] <= now]:
            entry[1].sock.close()
            conns.remove(entry)
        while len(conns) < n and time.monotonic() < deadline:
            c = one()
            if c is None:
                time.sleep(0.05)
                break
            conns.append([time.monotonic() + random.uniform(2, 30), c])
        time.sleep(0.02)
    for _, c in conns:
        c.sock.close()
    line = 'churn ' + ' '.join('%s %d' % kv for kv in stats.items()) + (' ' + first_other if first_other else '')
    with open(out + '.tmp', 'w') as f:
        f.write(line + '\n')
    os.rename(out + '.tmp', out)


def dbus_name(e):
    return e.get_dbus_name() or ''


def wait_for_broker(bus, seconds=60):
    import dbus
    deadline = time.monotonic() + seconds
    iface = dbus.Interface(bus.get_object('org.freedesktop.DBus', '/org/freedesktop/DBus'), 'org.freedesktop.DBus')
    while time.monotonic() < deadline:
        try:
            if iface.NameHasOwner(BUS):
                return
        except dbus.exceptions.DBusException:
            pass
        time.sleep(0.1)


def enroll_caller(k, seconds, settle, out_path):
    import dbus
    bus = dbus.SystemBus()
    out = open(out_path, 'a', buffering=1)
    stop_new = time.monotonic() + seconds
    give_up = stop_new + settle

    def obj(path):
        return bus.get_object(BUS, path, introspect=False, follow_name_owner_changes=False)

    def req_call(path, method, *args, timeout=30):
        return getattr(dbus.Interface(obj(path), REQUEST), method)(*args, timeout=timeout)

    def prop(path, name):
        return dbus.Interface(obj(path), 'org.freedesktop.DBus.Properties').Get(REQUEST, name, timeout=30)

    def retrying(fn):
        """fn() until it returns, riding over the broker being away; None when past give_up."""
        while time.monotonic() < give_up:
            try:
                return fn()
            except dbus.exceptions.DBusException as e:
                if dbus_name(e) not in GONE:
                    raise
                wait_for_broker(bus)
        return None

    i = 0
    while time.monotonic() < stop_new:
        name = 'soak-%d-%d.a.example.test' % (k, i)
        i += 1
        try:
            path = str(dbus.Interface(obj(PATH), MANAGER).Enroll('', '', [name], dbus.Dictionary({}, signature='sv'),
                                                                 timeout=30))
        except dbus.exceptions.DBusException as e:
            out.write('refused %s\n' % dbus_name(e))
            if dbus_name(e) in GONE:
                wait_for_broker(bus)
            else:
                time.sleep(0.5)         # NotReady while NSS is down, a quota: ask again a bit later
            continue
        out.write('accepted %s %s\n' % (path, name))
        try:
            state = None
            while time.monotonic() < give_up:
                state = retrying(lambda: str(req_call(path, 'Wait', dbus.UInt64(20_000_000), timeout=40)))
                if state in TERMINAL:
                    break
            if state not in TERMINAL:
                out.write('open %s %s\n' % (path, state))
                continue
            error = retrying(lambda: str(prop(path, 'Error')))
            message = retrying(lambda: str(prop(path, 'ErrorMessage'))) if error else ''
            if state == 'issued':
                cert = retrying(lambda: str(prop(path, 'Certificate')))
                key = retrying(lambda: str(req_call(path, 'TakeKey')))
                if not cert or 'BEGIN CERTIFICATE' not in cert or not key or 'PRIVATE KEY' not in key:
                    error = 'no-certificate-or-key'
            retrying(lambda: req_call(path, 'Remove'))
            out.write('done %s %s %s %s\n' % (path, state, error or '-', ' '.join((message or '').split())))
        except dbus.exceptions.DBusException as e:
            out.write('unknown %s %s\n' % (path, dbus_name(e)))
    out.close()


def enroll(k, seconds, settle, out):
    children = []
    for n in range(k):
        pid = os.fork()
        if pid == 0:
            try:
                enroll_caller(n, seconds, settle, '%s.%d' % (out, n))
            finally:
                os._exit(0)
        children.append(pid)
    for pid in children:
        os.waitpid(pid, 0)


def requests(bus):
    import dbus
    m = dbus.Interface(bus.get_object(BUS, PATH, introspect=False), MANAGER)
    return [(str(p), str(s)) for _, s, p in m.ListRequests(timeout=30)]


def census(out):
    import dbus
    bus = dbus.SystemBus()
    with open(out, 'w') as f:
        for path, state in requests(bus):
            o = dbus.Interface(bus.get_object(BUS, path, introspect=False), 'org.freedesktop.DBus.Properties')
            f.write(json.dumps({'path': path, 'state': state, 'error': str(o.Get(REQUEST, 'Error')),
                                'next_attempt': int(o.Get(REQUEST, 'NextAttempt'))}) + '\n')


def remove_finished():
    import dbus
    bus = dbus.SystemBus()
    n = 0
    for path, state in requests(bus):
        if state in TERMINAL:
            dbus.Interface(bus.get_object(BUS, path, introspect=False), REQUEST).Remove(timeout=30)
            n += 1
    print(n)


if __name__ == '__main__':
    a = sys.argv[1:]
    if a[:1] == ['churn']:
        churn(int(a[1]), float(a[2]), a[3])
    elif a[:1] == ['enroll']:
        enroll(int(a[1]), float(a[2]), float(a[3]), a[4])
    elif a[:1] == ['census']:
        census(a[1])
    elif a[:1] == ['remove-finished']:
        remove_finished()
    else:
        raise SystemExit(__doc__)
