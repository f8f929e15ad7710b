#!/usr/bin/env bash
# Audit (certbroker.conf(5), README "Audit records"): every decision and outcome reaches the journal with structured fields
# (CERTBROKER_REQUEST, _UID, _RULE, _DECISION, _NAMES, _CA, _ERROR), sent by sd_journal_send()
# over journald's real native socket protocol to a receiver standing in for journald (a tmpfs
# over /run, inside the lab's mount namespace only). No field holds a key or a challenge.
set -euo pipefail
: "${CB_SOURCE_ROOT:=$(cd "$(dirname "$0")/../.." && pwd)}"
. "$CB_SOURCE_ROOT/tests/integration/daemon-enter.sh" "$@"

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

# A tenant floods the audit: 60 denied CheckAccess calls, with names that try to forge
# journal lines and one of 100 000 bytes. At most a burst of them is logged, names escaped
# and cut; the rest are counted into one "suppressed" record (written at the latest when
# the broker stops); alice's enrollment in the middle of it is logged all the same.
flood=60
forged=$'evil.example.test\nCERTBROKER_DECISION=allow\nMESSAGE=forged'
long=$(head -c 100000 /dev/zero | tr '\0' 'x')
for i in $(seq 1 $flood); do
        name=$forged
        [ "$i" = 7 ] && name=$long
        cb mallory call "$CB_BUS" "$CB_PATH" "$CB_BUS.Manager" CheckAccess ssasa{sv} corp "" 1 "$name" 0 \
                >/dev/null || lab_fail "CheckAccess call $i failed"
        if [ "$i" = 30 ]; then
                mid=$(cb_enroll alice corp flood.a.example.test) || lab_fail "alice's Enroll during the flood"
        fi
done
lab_assert_eq "$(cb_wait alice "$mid" 60)" issued "alice's request during the flood"
broker_stop

"$LAB_PYTHON" - "$journal" "$flood" "${mid##*/}" <<'PYEOF' || lab_fail "flood records (above)"
import json
import sys

entries = [json.loads(l) for l in open(sys.argv[1])]
flood, mid = int(sys.argv[2]), sys.argv[3]
bad = []
mine = [e for e in entries if e.get('CERTBROKER_UID') == '2003']
checks = [e for e in mine if e.get('MESSAGE', '').startswith('CheckAccess by uid 2003')]
summaries = [e for e in mine if e.get('CERTBROKER_DECISION') == 'suppressed']
held = 0
for e in summaries:
    words = e['MESSAGE'].split()
    held += int(words[2])
if not 20 <= len(checks) < flood:
    bad.append(f'{len(checks)} of {flood} CheckAccess records logged: want the burst of 20 and a few refills')
if len(checks) + held != flood:
    bad.append(f'{len(checks)} logged + {held} counted as suppressed != {flood} calls')
if not summaries:
    bad.append('no "suppressed" record for uid 2003')
for e in checks:
    names = e.get('CERTBROKER_NAMES', '')
    if '\n' in names or '\n' in e.get('MESSAGE', '') or len(names) > 1024 or len(e.get('MESSAGE', '')) > 2048:
        bad.append(f'raw or oversized argument in a record: {names[:80]!r} ({len(names)} bytes)')
        break
if not any(e.get('CERTBROKER_NAMES', '').startswith('evil.example.test\\x0aCERTBROKER_DECISION') for e in checks):
    bad.append('no record shows the forged name escaped')
if any(e.get('MESSAGE') == 'forged' for e in entries):
    bad.append('a forged journal record')
if not any(e.get('CERTBROKER_DECISION') == 'allow' and e.get('CERTBROKER_REQUEST') == mid for e in entries):
    bad.append("alice's Enroll during the flood was not logged")
if not any(e.get('CERTBROKER_DECISION') == 'issued' and e.get('CERTBROKER_REQUEST') == mid for e in entries):
    bad.append("alice's issued request during the flood was not logged")
for b in bad:
    print('not ok - ' + b)
print(f'# uid 2003: {len(checks)} CheckAccess records logged, {held} suppressed in {len(summaries)} summaries')
sys.exit(1 if bad else 0)
PYEOF
lab_pass "a tenant's CheckAccess flood: a burst logged with names escaped and cut, the rest counted; other records unaffected"
