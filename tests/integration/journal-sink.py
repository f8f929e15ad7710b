#!/usr/bin/python3
"""A stand-in for journald's native socket, for tests: binds a datagram socket, decodes each
entry (journald's native protocol: KEY=value lines, or KEY\\n<le64 length><bytes>\\n for
values with newlines; large entries arrive as a memfd passed with SCM_RIGHTS), and appends it
as one JSON object per line to the output file.

  journal-sink.py SOCKET OUTPUT

A helper, not a test: it fails (exits non-zero, so lab_wait_for in the calling test times out)
when it is misused or cannot bind the socket."""
import array
import json
import os
import socket
import struct
import sys

if len(sys.argv) != 3:
    sys.exit('usage: journal-sink.py SOCKET OUTPUT')
sock_path, out_path = sys.argv[1], sys.argv[2]
if os.path.exists(sock_path):
    os.unlink(sock_path)
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sock_path)
os.chmod(sock_path, 0o666)


def decode(data):
    entry = {}
    i = 0
    while i < len(data):
        nl = data.index(b'\n', i)
        line = data[i:nl]
        if b'=' in line:
            k, v = line.split(b'=', 1)
            entry[k.decode()] = v.decode('utf-8', 'replace')
            i = nl + 1
        else:
            (n,) = struct.unpack_from('<Q', data, nl + 1)
            v = data[nl + 9:nl + 9 + n]
            entry[line.decode()] = v.decode('utf-8', 'replace')
            i = nl + 9 + n + 1
    return entry


with open(out_path, 'a', buffering=1) as out:
    while True:
        fds = array.array('i')
        data, anc, _, _ = s.recvmsg(1 << 20, socket.CMSG_SPACE(4 * fds.itemsize))
        for level, kind, cdata in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.frombytes(cdata[:len(cdata) - (len(cdata) % fds.itemsize)])
        for fd in fds:
            with os.fdopen(fd, 'rb') as f:
                data = f.read()
        try:
            out.write(json.dumps(decode(data)) + '\n')
        except (ValueError, struct.error) as e:
            out.write(json.dumps({'_SINK_ERROR': str(e)}) + '\n')
