#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Check ipc/: the introspection XML carries every member of the D-Bus contract (the API
table below, which org.certbroker.Broker1(5) documents) with the exact
signature and access, the activation file and the systemd unit agree with each other,
and every XML file is well-formed (xmllint too, when installed).

Usage: test-ipc-files.py IPC_SOURCE_DIR BUILT_UNIT_FILE"""

import configparser
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET

EMITS = 'org.freedesktop.DBus.Property.EmitsChangedSignal'

# The D-Bus contract: version 1 and the additions since, each documented in the XML and in
# org.certbroker.Broker1(5).
# methods: name -> (in signature list, out signature list); properties: name -> type
API = {
    'org.certbroker.Broker1.Manager': {
        'methods': {
            'Enroll': (['s', 's', 'as', 'a{sv}'], ['o']),
            'CheckAccess': (['s', 's', 'as', 'a{sv}'], ['b', 's', 's']),
            'ListRequests': ([], ['a(sso)']),
            'ListCAs': ([], ['a(so)']),
            'Reload': ([], []),
            # Additions beyond version 1 (documented in the XML):
            'GetMetrics': ([], ['s']),
            # every user's requests, for root and polkit's org.certbroker.broker1.manage:
            'ListAllRequests': ([], ['a(ssou)']),
        },
        'properties': {
            'Version': 's', 'Realm': 's', 'PermittedSuffix': 's', 'Principal': 's',
            'CredentialState': 's', 'CredentialExpiry': 't',
            # Additions beyond version 1 (each deliberate, documented in the XML):
            'KeyPool': 'a(suu)',
        },
    },
    'org.certbroker.Broker1.Request': {
        'methods': {
            'Wait': (['t'], ['s']),
            'TakeKey': ([], ['s']),
            'Cancel': ([], []),
            'Remove': ([], []),
            'StopRenewal': ([], []),
            # Additions beyond version 1 (the sealed key hand-off, documented in the XML):
            'TakeKeySealed': (['ay'], ['ay']),
            'ConfirmKey': ([], []),
        },
        'properties': {
            'Id': 's', 'CA': 's', 'Label': 's', 'Subject': 's', 'Key': 's', 'Usage': 's',
            'Names': 'as', 'Owner': 'u', 'State': 's', 'Error': 's', 'ErrorMessage': 's',
            'FailInfo': 's', 'TransactionId': 's', 'Certificate': 's', 'Chain': 's',
            'Serial': 's', 'NotBefore': 't', 'NotAfter': 't', 'Created': 't', 'Updated': 't',
            'NextAttempt': 't', 'Attempts': 'u', 'KeyAvailable': 'b',
            # Additions beyond version 1 (each deliberate, documented in the XML):
            'Warning': 's',
            'Renew': 'b', 'RenewAt': 't', 'Successor': 'o', 'Predecessor': 'o',
            'KeySealed': 'b',
        },
    },
    'org.certbroker.Broker1.CA': {
        'methods': {
            'Check': (['a{sv}'], ['a(sss)']),
            'Refresh': ([], []),
            # Additions beyond version 1 (documented in the XML):
            'GetTrustAnchors': ([], ['a(sbs)', 's']),
        },
        'properties': {
            'Name': 's', 'URL': 's', 'AdminURL': 's', 'Authentication': 's', 'Challenge': 's',
            'Capabilities': 'as', 'CACertificates': 's', 'RACertificates': 's',
            'LastContact': 't', 'LastError': 's',
            # Addition beyond version 1 (documented in the XML):
            'InstallTrust': 'b',
        },
    },
}

# Request properties that change over a request's life: their PropertiesChanged must be
# invalidation-only (org.certbroker.Broker1(5)); the rest never change ("const").
REQUEST_MUTABLE = {'State', 'Error', 'ErrorMessage', 'FailInfo', 'TransactionId',
                   'Certificate', 'Chain', 'Serial', 'NotBefore', 'NotAfter', 'Updated',
                   'NextAttempt', 'Attempts', 'KeyAvailable', 'Warning',
                   'Renew', 'RenewAt', 'Successor', 'KeySealed'}

failures = []


def fail(msg):
    failures.append(msg)
    print('FAIL: ' + msg)


def annotation(elem, name):
    for a in elem.findall('annotation'):
        if a.get('name') == name:
            return a.get('value')
    return None


def check_interface(path, iface_name, spec):
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as e:
        fail(f'{path}: not well-formed XML: {e}')
        return
    if root.tag != 'node':
        fail(f'{path}: root element is <{root.tag}>, expected <node>')
    ifaces = root.findall('interface')
    if [i.get('name') for i in ifaces] != [iface_name]:
        fail(f'{path}: interfaces {[i.get("name") for i in ifaces]}, expected exactly {iface_name}')
        return
    iface = ifaces[0]

    methods = {m.get('name'): m for m in iface.findall('method')}
    props = {p.get('name'): p for p in iface.findall('property')}
    if iface.findall('signal'):
        fail(f'{path}: unexpected signals (the contract defines none)')

    for name, (ins, outs) in spec['methods'].items():
        m = methods.get(name)
        if m is None:
            fail(f'{path}: method {iface_name}.{name} missing')
            continue
        got_in = [a.get('type') for a in m.findall('arg') if a.get('direction', 'in') == 'in']
        got_out = [a.get('type') for a in m.findall('arg') if a.get('direction') == 'out']
        if got_in != ins or got_out != outs:
            fail(f'{path}: {name} has in {got_in} out {got_out}, the contract says in {ins} out {outs}')
        for a in m.findall('arg'):
            if not a.get('name'):
                fail(f'{path}: {name} has an unnamed argument')
    for name in methods:
        if name not in spec['methods']:
            fail(f'{path}: method {name} is not in the contract (add it to API above and to org.certbroker.Broker1(5) first)')

    for name, typ in spec['properties'].items():
        p = props.get(name)
        if p is None:
            fail(f'{path}: property {iface_name}.{name} missing')
            continue
        if p.get('type') != typ:
            fail(f'{path}: property {name} has type {p.get("type")}, the contract says {typ}')
        if p.get('access') != 'read':
            fail(f'{path}: property {name} has access {p.get("access")}, expected read')
    for name in props:
        if name not in spec['properties']:
            fail(f'{path}: property {name} is not in the contract (add it to API above and to org.certbroker.Broker1(5) first)')

    if iface_name == 'org.certbroker.Broker1.Request':
        if annotation(iface, EMITS) != 'invalidates':
            fail(f'{path}: Request must carry {EMITS}="invalidates" (no values in signals)')
        for name, p in props.items():
            own = annotation(p, EMITS)
            effective = own or annotation(iface, EMITS)
            want = 'invalidates' if name in REQUEST_MUTABLE else 'const'
            if effective != want:
                fail(f'{path}: Request.{name} emits "{effective}", expected "{want}"')
            if own is not None and own not in ('const', 'invalidates'):
                fail(f'{path}: Request.{name} would send values ({own})')

    # Doc comments: every member is preceded by a comment (checked on the raw text).
    text = open(path, encoding='utf-8').read()
    for name in list(spec['methods']) + list(spec['properties']):
        kind = 'method' if name in spec['methods'] else 'property'
        idx = text.find(f'<{kind} name="{name}"')
        before = text[:idx].rstrip()
        if idx < 0 or not before.endswith('-->'):
            fail(f'{path}: {kind} {name} has no doc comment right before it')


def check_xmllint(paths):
    xmllint = shutil.which('xmllint')
    if not xmllint:
        print('note: xmllint not installed (Debian package libxml2-utils); using xml.etree only')
        return
    r = subprocess.run([xmllint, '--noout', '--nonet'] + paths, capture_output=True, text=True)
    if r.returncode != 0:
        fail(f'xmllint: {r.stderr.strip()}')


def read_ini(path):
    cp = configparser.ConfigParser(strict=False, interpolation=None, delimiters=('=',),
                                   comment_prefixes=('#', ';'))
    cp.optionxform = str
    with open(path, encoding='utf-8') as f:
        cp.read_file(f)
    return cp


def check_activation(ipc_dir):
    path = os.path.join(ipc_dir, 'org.certbroker.Broker1.service')
    cp = read_ini(path)
    s = cp['D-BUS Service']
    if s.get('Name') != 'org.certbroker.Broker1':
        fail(f'{path}: Name={s.get("Name")}')
    if s.get('SystemdService') != 'certbrokerd.service':
        fail(f'{path}: SystemdService={s.get("SystemdService")}, expected certbrokerd.service')
    if not s.get('User'):
        fail(f'{path}: system bus activation files need User=')


def check_unit(unit_path, ipc_dir):
    # systemd units allow repeated keys; read them line by line.
    settings = {}
    section = None
    for line in open(unit_path, encoding='utf-8'):
        line = line.strip()
        if not line or line.startswith('#'):
            continue
        if line.startswith('['):
            section = line.strip('[]')
            continue
        k, _, v = line.partition('=')
        settings.setdefault((section, k), []).append(v)

    def one(key, section='Service'):
        v = settings.get((section, key))
        return v[-1] if v else None

    want = {
        'Type': 'notify', 'BusName': 'org.certbroker.Broker1', 'User': 'certbroker',
        'StateDirectory': 'certbroker', 'StateDirectoryMode': '0700',
        'NoNewPrivileges': 'yes', 'ProtectSystem': 'strict', 'ProtectHome': 'yes',
        'PrivateTmp': 'yes', 'PrivateDevices': 'yes', 'CapabilityBoundingSet': '',
        'ExecReload': '/bin/kill -HUP $MAINPID', 'MemoryDenyWriteExecute': 'yes',
        'RestrictSUIDSGID': 'yes', 'SystemCallArchitectures': 'native',
    }
    for k, v in want.items():
        if one(k) != v:
            fail(f'{unit_path}: {k}={one(k)!r}, expected {v!r}')
    after = ' '.join(settings.get(('Unit', 'After'), [])).split()
    if 'nss-user-lookup.target' not in after:
        fail(f'{unit_path}: not ordered After=nss-user-lookup.target (policy reads names from NSS)')
    limit = one('LimitNOFILE')
    if not limit or not limit.isdigit() or int(limit) < 1024:
        fail(f'{unit_path}: LimitNOFILE={limit!r}: the caller registry is bounded by it; set a number')
    execstart = one('ExecStart') or ''
    if '@' in execstart or '--config-dir=' not in execstart or not execstart.startswith('/'):
        fail(f'{unit_path}: ExecStart={execstart!r} (unsubstituted or without --config-dir=)')
    fams = set((one('RestrictAddressFamilies') or '').split())
    if not {'AF_UNIX', 'AF_INET', 'AF_INET6'} <= fams:
        fail(f'{unit_path}: RestrictAddressFamilies={fams} lacks what the broker needs')
    if 'AF_PACKET' in fams:
        fail(f'{unit_path}: AF_PACKET allowed')

    # Every relaxation of hostnamed's hardening carries a comment saying why.
    raw = open(unit_path, encoding='utf-8').read()
    for relaxed in ('PrivateNetwork=no', 'RestrictAddressFamilies='):
        idx = raw.find('\n' + relaxed)
        if idx < 0 or 'RELAXED' not in raw[max(0, idx - 600):idx]:
            fail(f'{unit_path}: {relaxed} lacks a "RELAXED:" comment')

    # The bus policy lets the unit's user own the name.
    policy = os.path.join(ipc_dir, 'system.d', 'org.certbroker.Broker1.conf')
    root = ET.parse(policy).getroot()
    owners = [p.get('user') for p in root.findall('policy')
              if any(a.get('own') == 'org.certbroker.Broker1' for a in p.findall('allow'))]
    if one('User') not in owners:
        fail(f'{policy}: user {one("User")} (the unit\'s) may not own the name')

    # sysusers creates that user.
    sysusers = open(os.path.join(ipc_dir, 'sysusers.d-certbroker.conf'), encoding='utf-8').read()
    if not any(l.split()[:2] == ['u', one('User')] for l in sysusers.splitlines()
               if l.strip() and not l.startswith('#')):
        fail(f'sysusers.d-certbroker.conf does not create user {one("User")}')

    # systemd's own offline checker, when it can run here.
    sa = shutil.which('systemd-analyze')
    if sa:
        r = subprocess.run([sa, 'security', '--offline=true', '--no-pager', unit_path],
                           capture_output=True, text=True)
        last = [l for l in r.stdout.splitlines() if 'Overall exposure level' in l]
        if last:
            print('systemd-analyze security: ' + last[-1].strip())


def main():
    if len(sys.argv) != 3:
        print(__doc__)
        return 2
    ipc_dir, unit_path = sys.argv[1], sys.argv[2]
    paths = []
    for iface, spec in API.items():
        path = os.path.join(ipc_dir, iface + '.xml')
        paths.append(path)
        if not os.path.exists(path):
            fail(f'{path} missing')
            continue
        check_interface(path, iface, spec)
    paths.append(os.path.join(ipc_dir, 'system.d', 'org.certbroker.Broker1.conf'))
    check_xmllint(paths)
    check_activation(ipc_dir)
    check_unit(unit_path, ipc_dir)

    n = sum(len(s['methods']) + len(s['properties']) for s in API.values())
    if failures:
        print(f'{len(failures)} failure(s)')
        return 1
    print(f'ok: {len(API)} interfaces, {n} members, activation file, unit, bus policy, sysusers')
    return 0


if __name__ == '__main__':
    sys.exit(main())
