#!/usr/bin/env bash
# CONFIG.md "Audit": every decision and outcome reaches the journal with structured fields
# (CERTBROKER_REQUEST, _UID, _RULE, _DECISION, _NAMES, _CA, _ERROR), sent by sd_journal_send()
# over journald's real native socket protocol to a receiver standing in for journald (a tmpfs
# over /run, inside the lab's mount namespace only). No field holds a key or a challenge.
set -euo pipefail
: "${CB_SOURCE_ROOT:=$(cd "$(dirname "$0")/../.." && pwd)}"
. "$CB_SOURCE_ROOT/tests/lab/lab.sh"
lab_enter "$@"
. "$CB_SOURCE_ROOT/tests/integration/ndes-common.sh"
. "$CB_SOURCE_ROOT/tests/integration/daemon-common.sh"

broker_lab
mount -t tmpfs -o mode=0755 tmpfs /run          # this namespace only
mkdir -p /run/systemd/journal
journal=$LAB_DIR/journal.jsonl
: >"$journal"
lab_start journal-sink "$LAB_PYTHON" "$CB_SOURCE_ROOT/tests/integration/journal-sink.py" \
        /run/systemd/journal/socket "$journal"
lab_wait_for 10 "the journal socket" test -S /run/systemd/journal/socket
CB_BROKER_JOURNAL=1 broker_start

path=$(cb_enroll alice corp audit.a.example.test)
lab_assert_eq "$(cb_wait alice "$path" 60)" issued "the audited request"
id=${path##*/}
if cb_enroll alice corp web.b.example.test >/dev/null 2>&1; then
        lab_fail "alice was allowed a tenant-b name"
fi
cb alice call "$CB_BUS" "$path" "$CB_BUS.Request" TakeKey >/dev/null
lab_wait_for 10 "the key-taken record" grep -q '"CERTBROKER_DECISION": "key-taken"' "$journal"

"$LAB_PYTHON" - "$journal" "$id" <<'PYEOF' || lab_fail "journal records (above)"
import json
import re
import sys

entries = [json.loads(l) for l in open(sys.argv[1])]
rid = sys.argv[2]
bad = []
if any('_SINK_ERROR' in e for e in entries):
    bad.append('undecodable datagram')
audit = [e for e in entries if 'CERTBROKER_DECISION' in e]

def find(**want):
    for e in audit:
        if all(e.get(k) == v for k, v in want.items()):
            return e
    bad.append(f'no record with {want}')
    return {}

allow = find(CERTBROKER_DECISION='allow', CERTBROKER_REQUEST=rid)
for k, v in [('CERTBROKER_UID', '2001'), ('CERTBROKER_RULE', 'tenant-a'), ('CERTBROKER_CA', 'corp'),
             ('CERTBROKER_NAMES', 'audit.a.example.test'), ('CERTBROKER_ERROR', '')]:
    if allow and allow.get(k) != v:
        bad.append(f'allow record: {k}={allow.get(k)!r}, want {v!r}')
deny = find(CERTBROKER_DECISION='deny', CERTBROKER_NAMES='web.b.example.test')
if deny and deny.get('CERTBROKER_ERROR') != 'org.certbroker.Broker1.Error.NameNotPermitted':
    bad.append(f'deny record: CERTBROKER_ERROR={deny.get("CERTBROKER_ERROR")!r}')
if deny and 'web.b.example.test' not in deny.get('MESSAGE', ''):
    bad.append('deny record: MESSAGE does not name the refused name')
find(CERTBROKER_DECISION='issued', CERTBROKER_REQUEST=rid, CERTBROKER_UID='2001')
find(CERTBROKER_DECISION='key-taken', CERTBROKER_REQUEST=rid)
for e in entries:
    if e.get('SYSLOG_IDENTIFIER') != 'certbrokerd':
        bad.append(f'record without SYSLOG_IDENTIFIER=certbrokerd: {e}')
        break
# Secrets: no key material, no NDES challenge (16 upper-case hex digits), in any field.
for e in entries:
    blob = json.dumps(e)
    if 'PRIVATE KEY' in blob or re.search(r'(?<![0-9A-Fa-f])[0-9A-F]{16}(?![0-9A-Fa-f])', blob):
        bad.append(f'a secret-looking value in {e.get("MESSAGE")!r}')
for b in bad:
    print('not ok - ' + b)
print(f'# {len(entries)} journal records, {len(audit)} audit records')
sys.exit(1 if bad else 0)
PYEOF
lab_pass "allow, deny, issued and key-taken records carry the CERTBROKER_* fields; no secrets in the journal"
broker_stop
