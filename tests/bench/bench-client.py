#!/usr/bin/python3
"""certbrokerd benchmark client (python3-dbus), run by tests/bench/enroll-bench.sh in the lab.

  bench-client.py sequential N PREFIX      N enrollments one after the other; prints one
                                           line per enrollment: seconds
  bench-client.py concurrent N PREFIX      N Enroll calls at once while ListCAs is timed every
                                           5 ms; prints JSON with the figures
  bench-client.py callers K N PREFIX       K callers (one process and bus connection each) share
                                           N enrollments, while ListCAs is timed every 5 ms
                                           from another process (and after each, the bus
                                           daemon's own GetId); prints JSON with the figures
  bench-client.py pool-ready TIMEOUT       waits until every KeyPool type is at its target
  bench-client.py handoff N PREFIX         N enrollments, then the key of each taken, in
                                           turns, with TakeKey or with TakeKeySealed (a random
                                           recipient) and ConfirmKey; prints JSON with the
                                           times of each way (seconds)

Every enrollment is Enroll → Wait(issued) → Certificate → TakeKey, and is checked: a request
that does not end `issued` or a key that does not come back is an error (exit 1)."""
import json
import multiprocessing
import sys
import threading
import time

import dbus

BUS = 'org.certbroker.Broker1'
PATH = '/org/certbroker/Broker1'
MANAGER = BUS + '.Manager'
REQUEST = BUS + '.Request'


def manager(bus):
    return dbus.Interface(bus.get_object(BUS, PATH), MANAGER)


def enroll_one(bus, name):
    t0 = time.monotonic()
    path = manager(bus).Enroll('', '', [name], {})
    obj = bus.get_object(BUS, path)
    req = dbus.Interface(obj, REQUEST)
    state = req.Wait(dbus.UInt64(120_000_000), timeout=130)
    if state != 'issued':
        props = dbus.Interface(obj, 'org.freedesktop.DBus.Properties')
        raise SystemExit(f'{name}: ended {state}: {props.Get(REQUEST, "ErrorMessage")}')
    props = dbus.Interface(obj, 'org.freedesktop.DBus.Properties')
    cert = props.Get(REQUEST, 'Certificate')
    key = req.TakeKey()
    if 'BEGIN CERTIFICATE' not in cert or 'BEGIN PRIVATE KEY' not in key:
        raise SystemExit(f'{name}: no certificate or key came back')
    return time.monotonic() - t0, path


def sequential(n, prefix):
    bus = dbus.SystemBus()
    for i in range(n):
        dt, _ = enroll_one(bus, f'{prefix}{i}.a.example.test')
        print(f'{dt:.6f}', flush=True)


def concurrent(n, prefix):
    bus = dbus.SystemBus()
    mgr = manager(bus)
    latencies = []
    stop = threading.Event()

    def probe():
        pbus = dbus.SystemBus(private=True)     # its own connection: not queued behind Enroll calls
        pm = manager(pbus)
        while not stop.is_set():
            t0 = time.monotonic()
            cas = pm.ListCAs()
            latencies.append(time.monotonic() - t0)
            if len(cas) < 1:
                raise SystemExit('ListCAs returned nothing')
            time.sleep(0.005)

    # Baseline: the same probe against an idle broker, so machine noise (other processes on
    # these 2 cores) is told apart from time the broker's loop is busy.
    th = threading.Thread(target=probe, daemon=True)
    th.start()
    time.sleep(2)
    idle = sorted(latencies)
    latencies.clear()
    t0 = time.monotonic()
    paths = [mgr.Enroll('', '', [f'{prefix}{i}.a.example.test'], {}) for i in range(n)]
    t_enrolled = time.monotonic() - t0
    for p in paths:
        req = dbus.Interface(bus.get_object(BUS, p), REQUEST)
        state = req.Wait(dbus.UInt64(300_000_000), timeout=310)
        if state != 'issued':
            raise SystemExit(f'{p}: ended {state}')
    total = time.monotonic() - t0
    stop.set()
    th.join()
    latencies.sort()
    q = lambda f: latencies[min(len(latencies) - 1, int(f * len(latencies)))]
    print(json.dumps({
        'enrollments': n,
        'enroll_calls_s': round(t_enrolled, 3),
        'all_issued_s': round(total, 3),
        'listcas_samples': len(latencies),
        'listcas_p50_ms': round(q(0.5) * 1000, 2),
        'listcas_p99_ms': round(q(0.99) * 1000, 2),
        'listcas_max_ms': round(latencies[-1] * 1000, 2),
        'idle_listcas_p50_ms': round(idle[len(idle) // 2] * 1000, 2),
        'idle_listcas_p99_ms': round(idle[min(len(idle) - 1, int(0.99 * len(idle)))] * 1000, 2),
        'idle_listcas_max_ms': round(idle[-1] * 1000, 2),
    }))


def quantile(values, f):
    return values[min(len(values) - 1, int(f * len(values)))]


def caller_main(counter, n, prefix, start, results):
    # Processes, not threads: a caller's Python work never holds up another caller or the probe
    # behind the GIL, so the figures are the broker's.
    bus = dbus.SystemBus(private=True)
    manager(bus).ListCAs()
    start.wait()
    times = []
    try:
        while True:
            with counter.get_lock():
                i = counter.value
                counter.value += 1
            if i >= n:
                break
            dt, _ = enroll_one(bus, f'{prefix}{i}.a.example.test')
            times.append(dt)
    except BaseException as e:
        results.put(f'{prefix}: {e}')     # the parent stops at the first failure
        raise SystemExit(1)
    results.put(times)


def probe_main(start, stop, results):
    """ListCAs timed every 5 ms; after each, the bus daemon's own GetId from the same process:
    the same path (this process, the bus, scheduling under the same load) without the broker,
    so the difference between the two is the broker's."""
    bus = dbus.SystemBus(private=True)
    pm = manager(bus)
    driver = dbus.Interface(bus.get_object('org.freedesktop.DBus', '/org/freedesktop/DBus'),
                            'org.freedesktop.DBus')
    pm.ListCAs()
    driver.GetId()
    start.wait()
    latencies, bus_latencies = [], []
    while not stop.is_set():
        t0 = time.monotonic()
        if len(pm.ListCAs()) < 1:
            raise SystemExit('ListCAs returned nothing')
        t1 = time.monotonic()
        driver.GetId()
        latencies.append(t1 - t0)
        bus_latencies.append(time.monotonic() - t1)
        time.sleep(0.005)
    results.put((latencies, bus_latencies))


def callers(k, n, prefix):
    ctx = multiprocessing.get_context('fork')
    counter = ctx.Value('l', 0)
    start = ctx.Barrier(k + 2)
    stop = ctx.Event()
    results, probe_results = ctx.Queue(), ctx.Queue()
    procs = [ctx.Process(target=caller_main, args=(counter, n, prefix, start, results)) for _ in range(k)]
    probe = ctx.Process(target=probe_main, args=(start, stop, probe_results))
    for p in procs + [probe]:
        p.start()
    start.wait()
    t0 = time.monotonic()
    times = []
    for _ in procs:
        got = results.get(timeout=1800)
        if isinstance(got, str):
            stop.set()
            for p in procs + [probe]:
                p.terminate()
            raise SystemExit(f'a caller failed: {got}')
        times += got
    total = time.monotonic() - t0
    stop.set()
    latencies, bus_latencies = (sorted(x) for x in probe_results.get(timeout=60))
    for p in procs + [probe]:
        p.join()
        if p.exitcode != 0:
            raise SystemExit(f'a caller failed (exit {p.exitcode})')
    if len(times) != n:
        raise SystemExit(f'{len(times)} of {n} enrollments came back')
    times.sort()
    print(json.dumps({
        'callers': k,
        'enrollments': n,
        'seconds': round(total, 3),
        'per_s': round(n / total, 2),
        'enroll_p50_ms': round(quantile(times, 0.5) * 1000, 1),
        'enroll_p95_ms': round(quantile(times, 0.95) * 1000, 1),
        'listcas_samples': len(latencies),
        'listcas_p50_ms': round(quantile(latencies, 0.5) * 1000, 2),
        'listcas_p99_ms': round(quantile(latencies, 0.99) * 1000, 2),
        'listcas_max_ms': round(latencies[-1] * 1000, 2),
        'bus_getid_p50_ms': round(quantile(bus_latencies, 0.5) * 1000, 2),
        'bus_getid_p99_ms': round(quantile(bus_latencies, 0.99) * 1000, 2),
    }))


def pool_ready(timeout):
    bus = dbus.SystemBus()
    props = dbus.Interface(bus.get_object(BUS, PATH), 'org.freedesktop.DBus.Properties')
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pool = props.Get(MANAGER, 'KeyPool')
        if pool and all(int(ready) >= int(target) for _, ready, target in pool):
            print(' '.join(f'{t}={int(r)}' for t, r, _ in pool))
            return
        time.sleep(0.1)
    raise SystemExit(f'KeyPool not full after {timeout} s: {props.Get(MANAGER, "KeyPool")}')


def handoff(n, prefix):
    import os
    bus = dbus.SystemBus()
    mgr = manager(bus)
    paths = []
    for i in range(n):
        path = mgr.Enroll('', '', [f'{prefix}{i}.a.example.test'], {})
        paths.append(path)
    plain, sealed = [], []
    for i, path in enumerate(paths):
        obj = bus.get_object(BUS, path)
        req = dbus.Interface(obj, REQUEST)
        state = req.Wait(dbus.UInt64(120_000_000), timeout=130)
        if state != 'issued':
            raise SystemExit(f'{path}: ended {state}')
        if i % 2 == 0:
            t0 = time.monotonic()
            key = req.TakeKey()
            plain.append(time.monotonic() - t0)
            if 'BEGIN PRIVATE KEY' not in key:
                raise SystemExit(f'{path}: TakeKey returned no key')
        else:
            recipient = dbus.ByteArray(os.urandom(32))
            t0 = time.monotonic()
            box = req.TakeKeySealed(recipient, byte_arrays=True)
            t1 = time.monotonic()
            req.ConfirmKey()
            t2 = time.monotonic()
            sealed.append((t1 - t0, t2 - t0))
            if len(box) < 48 + 200:
                raise SystemExit(f'{path}: TakeKeySealed returned {len(box)} bytes')
    print(json.dumps({'takekey': plain, 'sealed': [a for a, _ in sealed], 'sealed_confirmed': [b for _, b in sealed]}))


if __name__ == '__main__':
    cmd = sys.argv[1]
    if cmd == 'sequential':
        sequential(int(sys.argv[2]), sys.argv[3])
    elif cmd == 'concurrent':
        concurrent(int(sys.argv[2]), sys.argv[3])
    elif cmd == 'callers':
        callers(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
    elif cmd == 'pool-ready':
        pool_ready(float(sys.argv[2]))
    elif cmd == 'handoff':
        handoff(int(sys.argv[2]), sys.argv[3])
    else:
        raise SystemExit(f'unknown command {cmd}')
