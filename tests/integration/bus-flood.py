#!/usr/bin/env python3
"""Many idle connections of one user to certbrokerd, each of which has called it once.

  bus-flood.py N READYFILE GOFILE

Opens N connections to the system bus as the current user (rawbus.py: AUTH EXTERNAL + Hello),
and on each calls Manager.ListRequests once, so that certbrokerd identifies, and remembers, the
connection. Then it writes one line to READYFILE,

  connected C refused-by-bus B replies R quota Q other O

(C connections made, B refused by the bus daemon itself, R calls answered, Q refused with
org.certbroker.Broker1.Error.QuotaExceeded, O other errors, the first of them after it), keeps
every connection open and idle until GOFILE exists, and exits (closing them all).

Exit status: 0 when every connection was made and every call answered (a reply or
QuotaExceeded, both outcomes the caller asserts on), 1 when the bus refused a connection or a
call got another answer (the first is on stderr), 2 when GOFILE never appeared (600 s).
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rawbus  # noqa: E402

QUOTA = "org.certbroker.Broker1.Error.QuotaExceeded"


def main(argv):
    n, readyfile, gofile = int(argv[0]), argv[1], argv[2]
    conns = []
    refused_by_bus = replies = quota = other = 0
    first_other = ""
    for _ in range(n):
        try:
            c = rawbus.Conn.connect()
        except (RuntimeError, OSError) as e:
            refused_by_bus += 1
            first_other = first_other or "bus: %s" % e
            continue
        conns.append(c)
        kind, what, values = c.call(rawbus.BUS, rawbus.PATH, rawbus.BUS + ".Manager", "ListRequests", "", [],
                                    timeout=30)
        if kind == "reply":
            replies += 1
        elif what == QUOTA:
            quota += 1
        else:
            other += 1
            first_other = first_other or "%s: %s" % (what, values[0] if values else "")
    line = "connected %d refused-by-bus %d replies %d quota %d other %d %s\n" % (
        len(conns), refused_by_bus, replies, quota, other, first_other)
    with open(readyfile + ".tmp", "w") as f:
        f.write(line)
    os.rename(readyfile + ".tmp", readyfile)
    deadline = time.monotonic() + 600
    while not os.path.exists(gofile):
        if time.monotonic() >= deadline:
            print("bus-flood: %s never appeared" % gofile, file=sys.stderr)
            return 2
        time.sleep(0.05)
    for c in conns:
        c.sock.close()
    if refused_by_bus or other or replies + quota != len(conns):
        print("bus-flood: %s" % line.strip(), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
