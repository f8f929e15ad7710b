#!/usr/bin/env bash
# certbrokerd's front door with hostile or broken arguments: each is refused with a named error
# that says what was wrong, nothing is recorded, nothing reaches the network, and the daemon
# keeps serving. Normalization is visible in the request it records.
set -euo pipefail
: "${CB_SOURCE_ROOT:=$(cd "$(dirname "$0")/../.." && pwd)}"
. "$CB_SOURCE_ROOT/tests/integration/daemon-enter.sh" "$@"

broker_lab
ndes ctl pending=on >/dev/null          # requests that get through stay in flight
broker_start

enroll() { cb alice call "$CB_BUS" "$CB_PATH" "$CB_BUS.Manager" Enroll "$@"; }
n_requests() { cb root call "$CB_BUS" "$CB_PATH" "$CB_BUS.Manager" ListRequests | awk '{print $2}'; }

before_http=$(wc -l <"$LAB_APACHE_ACCESS_LOG")
before_n=$(n_requests)

# Each case: Enroll arguments, the error name and a part of the message it must carry.
lab_run_as alice "$LAB_PYTHON" - <<'PYEOF' || lab_fail "hostile Enroll calls (above)"
import sys
import dbus

E = 'org.certbroker.Broker1.Error.'
bus = dbus.SystemBus()
mgr = dbus.Interface(bus.get_object('org.certbroker.Broker1', '/org/certbroker/Broker1'),
                     'org.certbroker.Broker1.Manager')
S = dbus.String
def opts(**kw):
    return dbus.Dictionary(kw, signature='sv')
many = [f'h{i}.a.example.test' for i in range(101)]
cases = [
    ('101 names', ('corp', '', many, opts()), 'InvalidArgument', '100'),
    ('label 129 bytes', ('corp', '', ['x.a.example.test'], opts(label=S('L' * 129))), 'InvalidArgument', '128'),
    ('key as a number', ('corp', '', ['x.a.example.test'], opts(key=dbus.UInt32(2048))), 'InvalidArgument', 'must be a string'),
    ('key rsa:1024', ('corp', '', ['x.a.example.test'], opts(key=S('rsa:1024'))), 'InvalidArgument', 'rsa:2048'),
    ('usage everything', ('corp', '', ['x.a.example.test'], opts(usage=S('everything'))), 'InvalidArgument', 'signature'),
    ('unknown option', ('corp', '', ['x.a.example.test'], opts(validity=S('10y'))), 'InvalidArgument', "Unknown option 'validity'"),
    ('subject attribute E', ('corp', 'E=root@example.test', ['x.a.example.test'], opts()), 'InvalidArgument', 'E'),
    ('subject C=Germany', ('corp', 'CN=x.a.example.test,C=Germany', ['x.a.example.test'], opts()), 'InvalidArgument', 'C'),
    ('no names, no subject', ('corp', '', [], opts()), 'InvalidArgument', 'name'),
    ('names equal once normalized', ('corp', '', ['dup.a.example.test', 'DUP.a.example.test.'], opts()), 'InvalidArgument', 'dup.a.example.test'),
    ('empty name', ('corp', '', [''], opts()), 'NameNotPermitted', ''),
    ('empty label', ('corp', '', ['x..a.example.test'], opts()), 'NameNotPermitted', 'x..a.example.test'),
    ('leading hyphen', ('corp', '', ['-x.a.example.test'], opts()), 'NameNotPermitted', '-x.a.example.test'),
    ('64-byte label', ('corp', '', ['a' * 64 + '.a.example.test'], opts()), 'NameNotPermitted', '63'),
    ('percent sign', ('corp', '', ['x%2e.a.example.test'], opts()), 'NameNotPermitted', 'x%2e.a.example.test'),
    ('wildcard without Wildcards=yes', ('corp', '', ['*.a.example.test'], opts()), 'NameNotPermitted', '*.a.example.test'),
    ('U-label IDN', ('corp', '', ['bücher.a.example.test'], opts()), 'NameNotPermitted', 'xn--'),
    ('IPv4 literal', ('corp', '', ['127.0.0.1'], opts()), 'NameNotPermitted', '127.0.0.1'),
    ('lookalike suffix', ('corp', '', ['web.evilexample.test'], opts()), 'NameNotPermitted', 'web.evilexample.test'),
    ('unknown CA', ('nope', '', ['x.a.example.test'], opts()), 'UnknownCA', 'nope'),
    ('CA name with a path', ('../corp', '', ['x.a.example.test'], opts()), 'UnknownCA', '../corp'),
]
bad = 0
for what, args, name, part in cases:
    try:
        path = mgr.Enroll(*args)
        print(f'not ok - {what}: accepted as {path}')
        bad += 1
        continue
    except dbus.DBusException as e:
        got, msg = e.get_dbus_name(), e.get_dbus_message()
    if got != E + name or part not in msg:
        print(f'not ok - {what}: got {got}: {msg!r}; want {E + name} with {part!r}')
        bad += 1
    else:
        print(f'# {what}: {name}: {msg}')
# A wrong signature is refused by sd-bus before our code sees it.
try:
    bus.call_blocking('org.certbroker.Broker1', '/org/certbroker/Broker1', 'org.certbroker.Broker1.Manager',
                      'Enroll', 'ss', ['corp', ''])
    print('not ok - wrong signature accepted')
    bad += 1
except dbus.DBusException as e:
    if e.get_dbus_name() != 'org.freedesktop.DBus.Error.InvalidArgs':
        print(f'not ok - wrong signature: {e.get_dbus_name()}')
        bad += 1
sys.exit(1 if bad else 0)
PYEOF
lab_assert_eq "$(n_requests)" "$before_n" "requests recorded by refused calls"
lab_assert_eq "$(wc -l <"$LAB_APACHE_ACCESS_LOG")" "$before_http" "HTTP requests caused by refused calls"
lab_pass "21 hostile Enroll calls and a wrong signature refused with named errors saying what was wrong; nothing recorded, nothing sent"

# Accepted names are recorded normalized (lower case, one trailing dot removed).
path=$(enroll ssasa{sv} corp "" 2 WEB.A.Example.Test. api.a.example.test 0)
path=${path#o \"}
path=${path%\"}
lab_assert_eq "$(cb alice get-property "$CB_BUS" "$path" "$CB_BUS.Request" Names)" \
        'as 2 "web.a.example.test" "api.a.example.test"' "normalized names"
lab_assert_eq "$(cb_prop alice "$path" Subject)" "CN=web.a.example.test" "default subject"
lab_pass "names are recorded normalized; the default subject is CN=<first name>"

# A Wait flood on one request is capped; the daemon keeps answering. 70 calls at once: the
# first 64 the daemon dispatches wait, the other 6 are refused at once; when the request ends,
# every waiting call gets its one reply.
flood=$LAB_DIR/flood
mkdir -p "$flood"
pids=()
for i in $(seq 1 70); do
        cb alice --timeout=60 call "$CB_BUS" "$path" "$CB_BUS.Request" Wait t 50000000 >"$flood/$i" 2>&1 &
        pids+=($!)
done
refused_calls() { grep -l "Wait() calls outstanding" "$flood"/* 2>/dev/null | wc -l; }
lab_wait_for 30 "6 Wait calls refused" bash -c "[ \$(grep -l 'Wait() calls outstanding' $flood/* 2>/dev/null | wc -l) -ge 6 ]"
lab_assert_contains "$(cb alice call "$CB_BUS" "$CB_PATH" "$CB_BUS.Manager" ListCAs)" '"corp"' "ListCAs during the flood"
cb alice call "$CB_BUS" "$path" "$CB_BUS.Request" Cancel >/dev/null
failed=0
for p in "${pids[@]}"; do
        wait "$p" || failed=$((failed + 1))
done
lab_assert_eq "$failed" 6 "Wait calls that failed"
lab_assert_eq "$(refused_calls)" 6 "Wait calls refused as over the limit"
lab_assert_eq "$(grep -l '^s "cancelled"' "$flood"/* | wc -l)" 64 "Wait calls answered 'cancelled'"
lab_pass "at most 64 Wait calls per request (the rest refused at once); each waiting one answered once when it ends"
broker_stop
