#!/usr/bin/env python3
"""A bus client that speaks the D-Bus wire protocol itself, so one connection can outlive the
process that made it (fork, exec), which libdbus, sd-bus and GDBus all refuse or break.

Used by daemon-identity.sh to hand a connection from the process that connected to another:

  rawbus.py connect-fork PIDFILE GOFILE [CALL... --] CALL...   connect (AUTH EXTERNAL +
        Hello) as the current process, make the CALLs before `--` there, fork; the parent (the
        connecting process) writes its pid to PIDFILE and exits; the child waits until GOFILE
        exists, then makes the other CALLs on the inherited connection. One line per call.
  rawbus.py connect-exec PROGRAM CALL...   connect, then exec PROGRAM (e.g. a setgid copy of
        python3) running this script with `--fd N --serial S` and the CALLs: same pid, the bus
        fd kept across the exec. The exec'd program first prints `egid N`.
  rawbus.py --fd N --serial S CALL...     make the CALLs on an already connected fd.

  rawbus.py connect-send GOFILE CALL... -- CALL   connect, make the CALLs before `--`, wait
        until GOFILE exists, then send the last CALL without waiting for its reply, and exit
        (daemon-side: a caller that is gone before the broker read its call; used by
        client-deploy.sh with certbrokerd stopped).

A CALL is one argument: `CheckAccess:NAME` or `Enroll:NAME` (CA "corp", default subject, no
options) or `EnrollToken:NAME:LABEL:TOKEN` (options label, renew=true, token) or `Wait:PATH`
(Wait(0)). Output per call: `reply SIG VALUES` or `error NAME: MESSAGE`.
"""
import os
import socket
import struct
import sys
import time

BUS = "org.certbroker.Broker1"
PATH = "/org/certbroker/Broker1"


def align(n, a):
    return (n + a - 1) // a * a


class W:
    def __init__(self):
        self.b = bytearray()

    def pad(self, a):
        self.b += b"\0" * (align(len(self.b), a) - len(self.b))

    def put(self, sig, v):
        c = sig[0]
        if c == "y":
            self.b += struct.pack("<B", v)
        elif c in "bu":
            self.pad(4)
            self.b += struct.pack("<I", int(v))
        elif c == "i":
            self.pad(4)
            self.b += struct.pack("<i", v)
        elif c == "t":
            self.pad(8)
            self.b += struct.pack("<Q", v)
        elif c in "so":
            self.pad(4)
            e = v.encode()
            self.b += struct.pack("<I", len(e)) + e + b"\0"
        elif c == "g":
            e = v.encode()
            self.b += struct.pack("<B", len(e)) + e + b"\0"
        elif c == "v":
            s, val = v
            self.put("g", s)
            self.put(s, val)
        elif c == "a":
            elem = one_type(sig[1:])
            self.pad(4)
            at = len(self.b)
            self.b += b"\0\0\0\0"
            self.pad(8 if elem[0] in "({xtd" else alignment(elem))
            start = len(self.b)
            items = v.items() if elem[0] == "{" else v
            for item in items:
                self.put(elem, item)
            struct.pack_into("<I", self.b, at, len(self.b) - start)
        elif c in "({":
            self.pad(8)
            for s, val in zip(split_types(sig[1:len(one_type(sig)) - 1]), v):
                self.put(s, val)
        else:
            raise ValueError("unsupported type " + c)


def alignment(t):
    return {"y": 1, "g": 1, "v": 1, "b": 4, "u": 4, "i": 4, "s": 4, "o": 4, "a": 4,
            "t": 8, "x": 8, "d": 8, "(": 8, "{": 8, "n": 2, "q": 2, "h": 4}[t[0]]


def one_type(sig):
    c = sig[0]
    if c == "a":
        return "a" + one_type(sig[1:])
    if c in "({":
        close = ")" if c == "(" else "}"
        depth = 0
        for i, ch in enumerate(sig):
            if ch in "({":
                depth += 1
            elif ch in ")}":
                depth -= 1
                if depth == 0:
                    assert ch == close
                    return sig[:i + 1]
    return c


def split_types(sig):
    out = []
    while sig:
        t = one_type(sig)
        out.append(t)
        sig = sig[len(t):]
    return out


class R:
    def __init__(self, b):
        self.b = b
        self.p = 0

    def pad(self, a):
        self.p = align(self.p, a)

    def get(self, sig):
        c = sig[0]
        if c == "y":
            v = self.b[self.p]
            self.p += 1
            return v
        if c in "buih":
            self.pad(4)
            v = struct.unpack_from("<i" if c == "i" else "<I", self.b, self.p)[0]
            self.p += 4
            return bool(v) if c == "b" else v
        if c in "nq":
            self.pad(2)
            v = struct.unpack_from("<h" if c == "n" else "<H", self.b, self.p)[0]
            self.p += 2
            return v
        if c in "txd":
            self.pad(8)
            v = struct.unpack_from({"t": "<Q", "x": "<q", "d": "<d"}[c], self.b, self.p)[0]
            self.p += 8
            return v
        if c in "so":
            self.pad(4)
            n = struct.unpack_from("<I", self.b, self.p)[0]
            self.p += 4
            v = self.b[self.p:self.p + n].decode()
            self.p += n + 1
            return v
        if c == "g":
            n = self.b[self.p]
            v = self.b[self.p + 1:self.p + 1 + n].decode()
            self.p += n + 2
            return v
        if c == "v":
            s = self.get("g")
            return (s, self.get(s))
        if c == "a":
            elem = one_type(sig[1:])
            self.pad(4)
            n = struct.unpack_from("<I", self.b, self.p)[0]
            self.p += 4
            self.pad(alignment(elem))
            end = self.p + n
            out = []
            while self.p < end:
                out.append(self.get(elem))
            return dict(out) if elem[0] == "{" else out
        if c in "({":
            self.pad(8)
            return tuple(self.get(s) for s in split_types(one_type(sig)[1:-1]))
        raise ValueError("unsupported type " + c)


class Conn:
    def __init__(self, sock, serial=0):
        self.sock = sock
        self.serial = serial
        self.buf = b""

    @classmethod
    def connect(cls):
        addr = os.environ.get("DBUS_SYSTEM_BUS_ADDRESS", "unix:path=/run/dbus/system_bus_socket")
        path = [kv.split("=", 1)[1] for kv in addr.split(":", 1)[1].split(",") if kv.startswith("path=")][0]
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.set_inheritable(True)
        s.connect(path)
        s.sendall(b"\0AUTH EXTERNAL " + str(os.geteuid()).encode().hex().encode() + b"\r\n")
        line = b""
        while not line.endswith(b"\r\n"):
            line += s.recv(1)
        if not line.startswith(b"OK "):
            raise RuntimeError("bus refused authentication: " + line.decode())
        s.sendall(b"BEGIN\r\n")
        c = cls(s)
        kind, _, body = c.call("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus", "Hello", "", [])
        if kind != "reply":
            raise RuntimeError("Hello failed: %s" % (body,))
        return c

    def _read(self, n):
        while len(self.buf) < n:
            d = self.sock.recv(65536)
            if not d:
                raise RuntimeError("bus closed the connection")
            self.buf += d
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def call(self, dest, path, iface, member, sig, args, timeout=60, wait=True):
        self.serial += 1
        body = W()
        for t, a in zip(split_types(sig), args):
            body.put(t, a)
        fields = [(1, ("o", path)), (2, ("s", iface)), (3, ("s", member)), (6, ("s", dest))]
        if sig:
            fields.append((8, ("g", sig)))
        h = W()
        h.b += struct.pack("<cBBBII", b"l", 1, 0, 1, len(body.b), self.serial)
        h.put("a(yv)", fields)
        h.pad(8)
        self.sock.sendall(bytes(h.b) + bytes(body.b))
        if not wait:
            return None
        self.sock.settimeout(timeout)
        while True:
            fixed = self._read(16)
            _, mtype, _, _, blen, _, flen = struct.unpack("<cBBBIII", fixed)
            rest = self._read(align(16 + flen, 8) - 16)
            hdr = R(fixed + rest)
            hdr.p = 12
            fields = dict(hdr.get("a(yv)"))
            data = self._read(blen)
            if mtype not in (2, 3) or fields.get(5, (None, None))[1] != self.serial:
                continue        # signals, and replies to nothing we wait for
            rsig = fields.get(8, ("g", ""))[1]
            r = R(data)
            values = [r.get(t) for t in split_types(rsig)]
            if mtype == 3:
                return "error", fields[4][1], values
            return "reply", rsig, values


def do_call(c, spec, wait=True):
    what, _, arg = spec.partition(":")
    if what == "EnrollToken":
        name, rest = arg.split(":", 1)
        label, token = rest.rsplit(":", 1)     # the label may hold a colon
        res = c.call(BUS, PATH, BUS + ".Manager", "Enroll", "ssasa{sv}",
                     ["corp", "", [name], {"label": ("s", label), "renew": ("b", True), "token": ("s", token)}],
                     wait=wait)
        if not wait:
            return
    elif what == "CheckAccess":
        res = c.call(BUS, PATH, BUS + ".Manager", "CheckAccess", "ssasa{sv}", ["corp", "", [arg], {}])
    elif what == "Enroll":
        res = c.call(BUS, PATH, BUS + ".Manager", "Enroll", "ssasa{sv}", ["corp", "", [arg], {}])
    elif what == "Wait":
        res = c.call(BUS, arg, BUS + ".Request", "Wait", "t", [0])
    else:
        raise SystemExit("rawbus: unknown call " + spec)
    kind, a, values = res
    if kind == "error":
        print("error %s: %s" % (a, values[0] if values else ""), flush=True)
    else:
        print("reply %s %s" % (a, " ".join(repr(v) for v in values)), flush=True)


def main(argv):
    if argv[0] == "--fd":
        fd, serial, calls = int(argv[1]), int(argv[3]), argv[4:]
        c = Conn(socket.socket(fileno=fd), serial)
        print("egid %d" % os.getegid(), flush=True)
        for spec in calls:
            do_call(c, spec)
        return
    c = Conn.connect()
    if argv[0] == "connect-fork":
        pidfile, gofile, calls = argv[1], argv[2], argv[3:]
        if "--" in calls:
            pre, calls = calls[:calls.index("--")], calls[calls.index("--") + 1:]
            for spec in pre:
                do_call(c, spec)
        if os.fork() != 0:
            with open(pidfile + ".tmp", "w") as f:
                f.write("%d\n" % os.getpid())
            os.rename(pidfile + ".tmp", pidfile)
            os._exit(0)
        deadline = time.monotonic() + 60
        while not os.path.exists(gofile):
            if time.monotonic() > deadline:
                raise SystemExit("rawbus: %s never appeared" % gofile)
            time.sleep(0.02)
        for spec in calls:
            do_call(c, spec)
    elif argv[0] == "connect-send":
        gofile, calls = argv[1], argv[2:]
        pre, last = calls[:calls.index("--")], calls[calls.index("--") + 1:]
        for spec in pre:
            do_call(c, spec)
        deadline = time.monotonic() + 60
        while not os.path.exists(gofile):
            if time.monotonic() > deadline:
                raise SystemExit("rawbus: %s never appeared" % gofile)
            time.sleep(0.02)
        do_call(c, last[0], wait=False)
        print("sent %s" % last[0], flush=True)
        c.sock.close()
    elif argv[0] == "connect-exec":
        prog, calls = argv[1], argv[2:]
        fd = c.sock.fileno()
        os.set_inheritable(fd, True)
        os.execv(prog, [prog, os.path.abspath(__file__), "--fd", str(fd), "--serial", str(c.serial)] + calls)
    else:
        raise SystemExit("rawbus: unknown mode " + argv[0])


if __name__ == "__main__":
    main(sys.argv[1:])
