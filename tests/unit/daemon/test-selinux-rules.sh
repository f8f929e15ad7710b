#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The compiled certbroker module, linked into Debian's refpolicy (selinux-policy-default), and
# asked with sesearch (setools) for the rules the daemon needs and the ones it must not have.
# SELinux need not be enabled: the module is added to a copy of the policy store in a temp
# root (semodule -p), never to the system's.
# Exit 77 (skip) when selinux-policy-dev, selinux-policy-default or setools is missing.
set -euo pipefail

src=${1:?usage: test-selinux-rules.sh SELINUX_SOURCE_DIR}
makefile=/usr/share/selinux/devel/Makefile
store=/var/lib/selinux/default
for need in "$makefile" "$store/active" /etc/selinux/default; do
    if [ ! -e "$need" ]; then
        echo "SKIP: $need not found (install selinux-policy-dev and selinux-policy-default)"
        exit 77
    fi
done
if ! command -v semodule >/dev/null || ! command -v sesearch >/dev/null ||
   ! /usr/bin/python3 -c 'import setools' 2>/dev/null; then
    echo "SKIP: semodule, sesearch or Debian's python3 setools module not found (install setools and policycoreutils)"
    exit 77
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/cb-selinux-rules-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/build"
cp "$src/certbroker.te" "$src/certbroker.if" "$src/certbroker.fc" "$tmp/build/"
(cd "$tmp/build" && make -f "$makefile" certbroker.pp >make.log 2>&1) ||
    { cat "$tmp/build/make.log"; echo "FAIL: building certbroker.pp"; exit 1; }

root=$tmp/root
mkdir -p "$root/var/lib/selinux" "$root/etc/selinux"
cp -a "$store" "$root/var/lib/selinux/"
cp -a /etc/selinux/default "$root/etc/selinux/"
semodule -p "$root" -s default -n -i "$tmp/build/certbroker.pp" >"$tmp/semodule.log" 2>&1 ||
    { cat "$tmp/semodule.log"; echo "FAIL: semodule could not link certbroker.pp into the default policy"; exit 1; }
policy=$(ls "$root"/etc/selinux/default/policy/policy.* | sort -V | tail -n 1)
fc=$root/etc/selinux/default/contexts/files/file_contexts

# One sesearch line for the record: everything certbrokerd_t is allowed, as sesearch prints it.
sesearch -A -s certbrokerd_t "$policy" >"$tmp/certbrokerd_t.rules"
echo "# $(wc -l <"$tmp/certbrokerd_t.rules") allow rules apply to certbrokerd_t (sesearch -A -s certbrokerd_t)"

# The checks: setools' Python API (what sesearch runs on), loading the policy once.
exec /usr/bin/python3 - "$policy" "$fc" <<'PY'

import subprocess
import sys

import setools

policy = setools.SELinuxPolicy(sys.argv[1])
fc = sys.argv[2]
D = 'certbrokerd_t'
failures = 0
# auth_use_nsswitch() grants these only when the allow_ypbind boolean is on (off by default).
ALLOWED_CONDITIONS = {'allow_ypbind'}


def ok(msg):
    print(f'ok - {msg}')


def fail(msg):
    global failures
    failures += 1
    print(f'not ok - {msg}')


def booleans(rule):
    try:
        return {b.name for b in rule.conditional.booleans}
    except setools.exception.RuleNotConditional:
        return set()


# Every rule whose source is certbrokerd_t or an attribute holding it, queried once; targets
# expanded to their types (an attribute like "domain" matches each of its types).
_rules = {}


def _rules_from(source, ruletype):
    key = (source, ruletype)
    if key not in _rules:
        _rules[key] = [(r, {str(t) for t in r.target.expand()})
                       for r in setools.TERuleQuery(policy, ruletype=[ruletype], source=source).results()]
    return _rules[key]


def rules(source=D, target=None, tclass=None, perm=None, ruletype='allow'):
    out = []
    for r, targets in _rules_from(source, ruletype):
        if target and target != str(r.target) and target not in targets:
            continue
        if tclass and str(r.tclass) != tclass:
            continue
        if perm and perm not in r.perms:
            continue
        out.append(r)
    return out


types = {str(t) for t in policy.types()}


def has(what, target, tclass, *perms, source=D):
    missing = [p for p in perms
               if not any(not booleans(r) for r in rules(source, target, tclass, p))]
    if missing:
        fail(f'{what}: {source} -> {target}:{tclass} lacks {" ".join(missing)} (unconditionally)')
    else:
        ok(what)


def lacks(what, target=None, tclass=None, perms=(None,)):
    found = []
    for p in perms:
        for r in rules(D, target, tclass, p):
            if booleans(r) and booleans(r) <= ALLOWED_CONDITIONS:
                continue
            found.append(str(r))
    if found:
        fail(f'{what}: {"; ".join(sorted(set(found)))}')
    else:
        ok(what)


def transition(what, source, target, tclass, default):
    if any(str(r.default) == default for r in rules(source, target, tclass, ruletype='type_transition')):
        ok(what)
    else:
        fail(f'{what}: no type_transition {source} {target}:{tclass} {default}')


# ---- what it needs ----
transition('systemd (init_t) starts certbrokerd_exec_t in certbrokerd_t',
           'init_t', 'certbrokerd_exec_t', 'process', D)
has('the system bus: connect', 'system_dbusd_t', 'unix_stream_socket', 'connectto')
has('the system bus: the socket', 'system_dbusd_runtime_t', 'sock_file', 'write')
has('the system bus: messages, and owning its name', 'system_dbusd_t', 'dbus', 'send_msg', 'acquire_svc')
has('sd_notify to systemd', 'init_t', 'unix_dgram_socket', 'sendto')
has('the KDC: kerberos_port_t over TCP', 'kerberos_port_t', 'tcp_socket', 'name_connect')
has('NDES: http_port_t (80, 443)', 'http_port_t', 'tcp_socket', 'name_connect')
proxy = rules(D, 'http_cache_port_t', 'tcp_socket', 'name_connect')
if proxy and all(booleans(r) == {'certbroker_use_http_proxy'} for r in proxy):
    ok('HTTP proxy ports (http_cache_port_t) only with the certbroker_use_http_proxy tunable')
else:
    fail(f'http_cache_port_t not behind certbroker_use_http_proxy alone: {[str(r) for r in proxy]}')
has('its configuration: read', 'certbroker_conf_t', 'file', 'open', 'read', 'getattr')
has('its configuration: list', 'certbroker_conf_t', 'dir', 'search', 'read')
has('its keytab: read', 'certbroker_keytab_t', 'file', 'open', 'read')
has('its state directory: manage', 'certbroker_var_lib_t', 'dir', 'create', 'add_name', 'remove_name', 'write', 'search')
has('its state files: manage', 'certbroker_var_lib_t', 'file', 'create', 'open', 'read', 'write', 'unlink', 'rename', 'lock')
transition('a directory it makes in /var/lib is certbroker_var_lib_t', D, 'var_lib_t', 'dir', 'certbroker_var_lib_t')
has('its runtime directory: manage', 'certbroker_runtime_t', 'dir', 'create', 'add_name', 'remove_name', 'write', 'search')
has('its runtime files (krb5.conf): manage', 'certbroker_runtime_t', 'file', 'create', 'open', 'read', 'write', 'unlink')
transition('a directory it makes in /run is certbroker_runtime_t', D, 'var_run_t', 'dir', 'certbroker_runtime_t')
for caller in ('user_t', 'httpd_t', 'unconfined_t'):
    if caller in types:
        has(f"callers' /proc/<pid> ({caller}): read (unit, groups, label)", caller, 'file', 'open', 'read')
        has(f"callers' /proc/<pid> ({caller}): search", caller, 'dir', 'search')
has('/dev/urandom', 'urandom_device_t', 'chr_file', 'open', 'read')
has('TLS trust anchors', 'cert_t', 'file', 'open', 'read')
if 'gssproxy_t' in types:
    has("gss-proxy's socket (Mode=gss-proxy)", 'gssproxy_t', 'unix_stream_socket', 'connectto')
else:
    print("# gssproxy_t is not in this base policy (Debian's refpolicy ships no gssproxy module): "
          "the optional gssproxy_stream_connect() block is dropped, Mode=gss-proxy is not covered")

# ---- what it must not have ----
lacks('no capabilities', tclass='capability')
lacks('no ptrace of anything', tclass='process', perms=('ptrace',))
lacks('user homes: no contents', target='user_home_t')
lacks('user home directories: no listing', target='user_home_dir_t', tclass='dir', perms=('read', 'write', 'add_name'))
for t in sorted(types):
    if t.endswith('_keytab_t') and t != 'certbroker_keytab_t':
        lacks(f'no other keytab: {t}', target=t, tclass='file', perms=('read', 'open'))
lacks('no shadow passwords', target='shadow_t')
lacks('/etc: no writing files', target='etc_t', tclass='file',
      perms=('write', 'append', 'create', 'unlink', 'rename', 'setattr'))
lacks('/etc: no new entries', target='etc_t', tclass='dir', perms=('add_name', 'remove_name', 'write'))
for cls in ('file', 'dir', 'lnk_file'):
    lacks(f'its configuration ({cls}): read only', target='certbroker_conf_t', tclass=cls,
          perms=('write', 'append', 'create', 'unlink', 'rename', 'setattr', 'add_name', 'remove_name'))
lacks('its keytab: read only', target='certbroker_keytab_t', tclass='file',
      perms=('write', 'append', 'create', 'unlink', 'rename', 'setattr'))
lacks('no binding to ports', tclass='tcp_socket', perms=('name_bind',))
lacks('no binding to UDP ports', tclass='udp_socket', perms=('name_bind',))
lacks('no executing other programs', tclass='file', perms=('execute_no_trans',))
lacks('no loading kernel modules', tclass='system', perms=('module_load', 'module_request'))

# ---- file contexts ----
for path, want in [('/usr/libexec/certbrokerd', 'certbrokerd_exec_t'),
                   ('/etc/certbroker/certbroker.conf', 'certbroker_conf_t'),
                   ('/etc/certbroker/policy.d/tenants.policy', 'certbroker_conf_t'),
                   ('/etc/certbroker/svc-scep.keytab', 'certbroker_keytab_t'),
                   ('/var/lib/certbroker/requests.db', 'certbroker_var_lib_t'),
                   ('/run/certbroker/krb5.conf', 'certbroker_runtime_t'),
                   ('/lib/systemd/system/certbrokerd.service', 'certbroker_unit_t')]:
    out = subprocess.run(['selabel_lookup', '-b', 'file', '-k', path, '-f', fc],
                         capture_output=True, text=True).stdout
    if f':{want}:' in out:
        ok(f'{path} is {want}')
    else:
        fail(f'{path}: expected {want}, selabel_lookup says {out.strip()!r}')

if failures:
    print(f'FAIL: {failures} check(s)')
    sys.exit(1)
print("ok: the module's rules, as linked into Debian's default policy")
PY
