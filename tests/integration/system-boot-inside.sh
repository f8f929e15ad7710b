#!/bin/bash
# The checks of system-boot.sh, run inside the booted container (systemd 252 as PID 1) by
# system-boot-test.service. Not a test by itself. /lab holds the packages, the NDES root
# certificate, a copy of the svc-scep keytab and the NDES emulator (its state at
# $NDES_STATE); the KDC and Apache listen on 127.0.0.1 in the shared network namespace.
# Prints TAP-like "ok - ..." lines; the first failure ends the run with "not ok - ...".
set -euo pipefail
export PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C.UTF-8
. /lab/env
OUT=/out
BUS=org.certbroker.Broker1
OBJ=/org/certbroker/Broker1
U=certbrokerd.service

dump_journal() {
        journalctl --no-pager -n 300 >"$OUT/boot.journal.txt" 2>&1 || true
}
on_exit() {
        local status=$?
        dump_journal
        exit "$status"
}
trap on_exit EXIT

fail() { echo "not ok - $*"; exit 1; }
pass() { echo "ok - $*"; }
assert_eq() { [ "$1" = "$2" ] || fail "$3: expected '$2', got '$1'"; }
assert_contains() { [[ "$1" == *"$2"* ]] || fail "$3: expected to contain '$2', got: $(printf '%s' "$1" | head -c 1500)"; }
wait_for() {
        local secs=$1 what=$2 i
        shift 2
        for ((i = 0; i < secs * 20; i++)); do
                "$@" >/dev/null 2>&1 && return 0
                sleep 0.05
        done
        fail "timed out after ${secs}s waiting for $what ($*)"
}
ndes() { local cmd=$1; shift; /lab/ndes-emulator "$cmd" --state "$NDES_STATE" "$@"; }

# as USER busctl-args...: busctl --system as that user (its groups from /etc/group)
as() {
        local user=$1
        shift
        setpriv --reuid="$(id -u "$user")" --regid="$(id -g "$user")" --init-groups --inh-caps=-all -- "$@"
}
cb() { local user=$1; shift; as "$user" busctl --system "$@"; }
unquote() { local v=${1#* \"}; printf '%b' "${v%\"}"; }
enroll() {       # enroll USER NAME: prints the request path
        local out
        out=$(cb "$1" call "$BUS" "$OBJ" "$BUS.Manager" Enroll "ssasa{sv}" corp "" 1 "$2" 0) || return 1
        unquote "$out"
}
prop() { unquote "$(cb "$1" get-property "$BUS" "$2" "$BUS.Request" "$3")"; }
wait_req() { unquote "$(cb "$1" --timeout=70 call "$BUS" "$2" "$BUS.Request" Wait t 60000000)"; }
check_access() { cb "$1" call "$BUS" "$OBJ" "$BUS.Manager" CheckAccess "ssasa{sv}" corp "" 1 "$2" 0; }
show() { systemctl show -P "$2" "$1"; }
mainpid() { show "$U" MainPID; }

echo "# inside: $(systemctl --version | head -1), $(uname -r)"
# (is-system-running says "starting" as long as this unit runs)
wait_for 30 "multi-user.target and dbus.service" systemctl is-active -q multi-user.target dbus.service

# ---- install the package as an administrator would ----
! getent passwd certbroker >/dev/null || fail "a certbroker user exists before the package is installed"
t0=${EPOCHREALTIME/./}
out=$(DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        /lab/certbroker_*.deb /lab/libcertbroker1_*.deb 2>&1) || fail "apt-get install ./certbroker_*.deb failed: $out"
assert_eq "$(dpkg-query -W -f='${Status}' certbroker)" "install ok installed" "certbroker's dpkg status"
pass "apt-get install ./certbroker_*.deb ./libcertbroker1_*.deb in $(( (${EPOCHREALTIME/./} - t0) / 1000 )) ms"

# ---- sysusers and tmpfiles ----
ent=$(getent passwd certbroker) || fail "sysusers did not create the certbroker user"
IFS=: read -r _ _ cb_uid cb_gid _ cb_home cb_shell <<<"$ent"
[ "$cb_uid" -gt 0 ] && [ "$cb_uid" -lt 1000 ] || fail "certbroker's uid $cb_uid is not a system uid"
assert_eq "$(getent group certbroker | cut -d: -f3)" "$cb_gid" "certbroker's primary group is group certbroker"
assert_eq "$cb_home" /var/lib/certbroker "certbroker's home"
assert_eq "$cb_shell" /usr/sbin/nologin "certbroker's shell"
pass "sysusers created system user certbroker ($cb_uid) with group certbroker, home /var/lib/certbroker, nologin"
assert_eq "$(stat -c '%a %U %G' /var/lib/certbroker)" "700 certbroker certbroker" "/var/lib/certbroker"
for d in /etc/certbroker /etc/certbroker/ca.d /etc/certbroker/policy.d; do
        assert_eq "$(stat -c '%a %U %G' "$d")" "755 root root" "$d"
done
pass "tmpfiles: /var/lib/certbroker 0700 certbroker:certbroker; /etc/certbroker, ca.d, policy.d 0755 root"

assert_eq "$(systemctl is-enabled $U)" enabled "certbrokerd after installation"
assert_eq "$(show $U ActiveState)" inactive "certbrokerd after installation (not started without a configuration)"
assert_eq "$(show $U FragmentPath)" /lib/systemd/system/certbrokerd.service "the unit file in use"
assert_eq "$(show $U DropInPaths)" "" "drop-ins of certbrokerd.service"
dpkg -V certbroker || fail "dpkg -V: installed files differ from the package"
pass "the unit is enabled, not started, exactly as shipped (no drop-ins, dpkg -V clean)"

# ---- the trust store units after installation; the broker has never run ----
# The package enables and starts the path unit and the timer (they only watch; what they start
# is skipped until the broker has run), and leaves certbroker-trust.service to them.
T=certbroker-trust.service
TP=certbroker-trust.path
TT=certbroker-trust.timer
STAMP=/run/certbroker/trust-anchors
for u in $TP $TT; do
        assert_eq "$(systemctl is-enabled $u)" enabled "$u after installation"
        assert_eq "$(show $u ActiveState)" active "$u after installation"
        assert_eq "$(show $u FragmentPath)" "/lib/systemd/system/$u" "the unit file of $u"
done
assert_eq "$(show $TP SubState)" waiting "$TP after installation"
assert_contains "$(show $TP Paths)" "$STAMP" "what $TP watches"
assert_contains "$(show $TP Paths)" PathChanged "how $TP watches"
assert_eq "$(systemctl is-enabled $T)" static "$T after installation"
assert_eq "$(show $T ActiveState)" inactive "$T after installation"
assert_eq "$(show $TT LastTriggerUSecMonotonic)" 0 "$TT has not fired yet"
[ ! -e "$STAMP" ] || fail "$STAMP exists before the broker ever ran"
# What the timer would do on a host where the broker has not run: skipped, not failed, and no
# broker started.
since=$(date '+%Y-%m-%d %H:%M:%S')
systemctl start $T || fail "systemctl start $T before the broker ran: $(systemctl status --no-pager $T 2>&1 | tail -n 5)"
assert_eq "$(show $T ConditionResult) $(show $T ActiveState) $(show $T Result)" "no inactive success" \
        "$T before the broker ran (ConditionResult, ActiveState, Result)"
assert_eq "$(show $T ExecMainStartTimestampMonotonic)" 0 "$T's command before the broker ran (never executed)"
assert_eq "$(show $U ActiveState)" inactive "certbrokerd after $T was skipped"
wait_for 10 "the skip in the journal" bash -c \
        "journalctl -u $T --since '$since' --no-pager | grep -q 'unmet condition check (ConditionPathExists=$STAMP)'"
pass "$TP and $TT are enabled and active after installation; $T, before the broker ever ran, is skipped by ConditionPathExists= (not failed, no broker started)"

# ---- no configuration: the unit fails and says what to fix ----
if systemctl start $U 2>/dev/null; then fail "certbrokerd started without any configuration"; fi
assert_eq "$(show $U ActiveState)" failed "ActiveState without configuration"
status=$(systemctl status --no-pager --full --lines=5 $U 2>&1 || true)
assert_eq "$(show $U ExecMainStatus)" 78 "exit status without a configuration (EX_CONFIG: no restarts)"
assert_eq "$(show $U NRestarts)" 0 "restarts without a configuration"
assert_contains "$status" 'Status: "Invalid configuration, fix it and start again: /etc/certbroker/certbroker.conf: cannot open: No such file' \
        "systemctl status without a configuration"
echo "$status" | sed 's/^/#   /'
pass "without a configuration the unit fails at once (status 78, no restart loop); its Status: line names the missing certbroker.conf"
systemctl reset-failed $U

# ---- the administrator's configuration ----
groupadd -g 3001 tenant-a
useradd -M -N -u 2001 -g tenant-a -s /bin/sh alice
useradd -M -U -u 2002 -s /bin/sh bob
install -m 0640 -o root -g certbroker /lab/svc-scep.keytab /etc/certbroker/svc-scep.keytab
install -m 0644 /lab/ndes-root.pem /etc/certbroker/ndes-root.pem
cat >/etc/certbroker/certbroker.conf <<EOF
[Kerberos]
Realm=$LAB_REALM
KDC=kdc.example.test:$LAB_KDC_PORT
Principal=svc-scep@$LAB_REALM

[Broker]
PermittedSuffix=example.test
EOF
cat >/etc/certbroker/ca.d/corp.conf <<'EOF'
[CA]
URL=https://ndes.example.test/certsrv/mscep/mscep.dll
TrustAnchors=/etc/certbroker/ndes-root.pem
Default=yes
PollInterval=1
EOF
cat >/etc/certbroker/policy.d/tenants.policy <<'EOF'
# tenant A: its group, its names
[Rule]
Name=tenant-a
Groups=tenant-a
Names=*.a.example.test a.example.test
EOF
out=$(/usr/libexec/certbrokerd --check-config 2>&1) || fail "certbrokerd --check-config: $out"
pass "configuration written: $out"

# ---- D-Bus activation by an unprivileged caller, an enrollment under the shipped unit ----
assert_eq "$(show $U ActiveState)" inactive "certbrokerd before the first call"
out=$(check_access alice web.a.example.test) || fail "alice's first call (CheckAccess) failed: $out"
assert_contains "$out" 'true "tenant-a"' "alice's CheckAccess"
assert_eq "$(show $U ActiveState)" active "certbrokerd after the first call"
wait_for 10 "dbus-daemon's activation message" bash -c \
        "journalctl -u dbus --no-pager | grep -q \"Activating via systemd: service name='$BUS'.*unit='$U'\""
pass "alice's first busctl call activated certbrokerd through D-Bus (dbus-daemon asked systemd for $U)"

path=$(enroll alice web.a.example.test) || fail "alice's Enroll failed"
state=$(wait_req alice "$path")
[ "$state" = issued ] || fail "alice's request ended '$state': $(prop alice "$path" ErrorMessage)"
prop alice "$path" Certificate >"$OUT/alice.crt"
key=$(cb alice call "$BUS" "$path" "$BUS.Request" TakeKey) || fail "alice's TakeKey failed"
unquote "$key" >/tmp/alice.key
assert_eq "$(openssl pkey -in /tmp/alice.key -pubout | sha256sum)" \
        "$(openssl x509 -in "$OUT/alice.crt" -noout -pubkey | sha256sum)" "alice's key matches her certificate"
assert_eq "$(ps -o user= -p "$(mainpid)")" certbroker "certbrokerd's user"
pass "alice enrolled web.a.example.test under the unit as shipped (user certbroker, seccomp, ProtectSystem=strict); TakeKey matches"

# ---- a denial, and its journal record ----
if out=$(enroll alice web.b.example.test 2>&1); then fail "alice was allowed web.b.example.test: $out"; fi
assert_contains "$out" "not permitted" "alice's denied Enroll"
wait_for 10 "the deny record" bash -c \
        "journalctl -u certbrokerd CERTBROKER_DECISION=deny CERTBROKER_NAMES=web.b.example.test -o json --no-pager | grep -q CERTBROKER_UID"
rec=$(journalctl -u certbrokerd CERTBROKER_DECISION=deny CERTBROKER_NAMES=web.b.example.test -o json --no-pager | tail -n 1)
python3 - "$rec" <<'PY' || fail "the deny record lacks its fields: $rec"
import json, sys
e = json.loads(sys.argv[1])
want = {'CERTBROKER_DECISION': 'deny', 'CERTBROKER_UID': '2001', 'CERTBROKER_CA': 'corp',
        'CERTBROKER_NAMES': 'web.b.example.test',
        'CERTBROKER_ERROR': 'org.certbroker.Broker1.Error.NameNotPermitted'}
bad = {k: e.get(k) for k, v in want.items() if e.get(k) != v}
sys.exit(1 if bad else 0)
PY
pass "journalctl -u certbrokerd CERTBROKER_DECISION=deny finds alice's denial with uid, CA, names and error"

# ---- systemctl reload: a policy change applies; a broken policy keeps the old one ----
pid=$(mainpid)
assert_contains "$(check_access alice www.c.example.test)" "bss false" "CheckAccess for c before the change"
cat >>/etc/certbroker/policy.d/tenants.policy <<'EOF'

[Rule]
Name=tenant-a-c
Groups=tenant-a
Names=*.c.example.test
EOF
systemctl reload $U
wait_for 10 "the new rule after systemctl reload" bash -c \
        "setpriv --reuid=2001 --regid=3001 --init-groups busctl --system call $BUS $OBJ $BUS.Manager CheckAccess ssasa{sv} corp '' 1 www.c.example.test 0 | grep -q 'true \"tenant-a-c\"'"
assert_eq "$(mainpid)" "$pid" "MainPID across the reload"
pass "systemctl reload applied a new policy rule without a restart"

cp /etc/certbroker/policy.d/tenants.policy /tmp/tenants.policy.good
printf '\n[Rule]\nName=broken\nGroups=tenant-a\nNames=*.d.example.test\nFrobnicate=yes\n' >>/etc/certbroker/policy.d/tenants.policy
bad_line=$(grep -n '^Frobnicate=' /etc/certbroker/policy.d/tenants.policy | cut -d: -f1)
since=$(date '+%Y-%m-%d %H:%M:%S')
sleep 1
systemctl reload $U
wait_for 10 "the failed reload in the journal" bash -c \
        "journalctl -u certbrokerd --since '$since' --no-pager | grep -q 'keeping the old configuration'"
msg=$(journalctl -u certbrokerd --since "$since" --no-pager | grep 'keeping the old configuration' | tail -n 1)
assert_contains "$msg" "tenants.policy:$bad_line" "the failed reload's journal message"
assert_contains "$(check_access alice www.c.example.test)" 'true "tenant-a-c"' "CheckAccess after the broken reload"
assert_eq "$(show $U ActiveState) $(mainpid)" "active $pid" "certbrokerd after the broken reload"
echo "#   ${msg#*: }"
pass "a broken policy leaves the old one in force; the journal names tenants.policy:$bad_line"
cp /tmp/tenants.policy.good /etc/certbroker/policy.d/tenants.policy
systemctl reload $U

# ---- certbroker-deploy@web-a.service as shipped: an application user's certificate, renewed ----
# The NDES emulator issues certificates valid for 20 s, the CA renews 8 s before NotAfter: the
# instance must deploy the first certificate into its directory as www-a (an unprivileged user
# of tenant-a), run its reload command, and deploy and reload the successor, with nobody
# touching it, under the unit's own hardening.
D=certbroker-deploy@web-a.service
DIR=/var/lib/certbroker-deploy/web-a
ndes ctl validity=20 >/dev/null
cp /etc/certbroker/ca.d/corp.conf /tmp/corp.conf.good
printf 'RenewBefore=8s\nRenewJitter=0\n' >>/etc/certbroker/ca.d/corp.conf
systemctl reload $U
useradd -M -N -u 2003 -g tenant-a -d /nonexistent -s /usr/sbin/nologin www-a
install -d -m 0755 /var/lib/certbroker-deploy
install -d -o www-a -g tenant-a -m 0750 "$DIR"
cat >/usr/local/bin/web-a-reload <<'SH'
#!/bin/sh
# what "nginx -s reload" would be: records the request and the public keys it was given
set -e
k=$(openssl pkey -in "$CERTBROKER_KEY" -pubout | sha256sum | cut -c1-16)
c=$(openssl x509 -in "$CERTBROKER_CERT" -noout -pubkey | sha256sum | cut -c1-16)
echo "$CERTBROKER_REQUEST $k $c $(id -un)" >>"$CERTBROKER_DIR/reload.log"
SH
chmod 0755 /usr/local/bin/web-a-reload
cat >/etc/certbroker/deploy.d/web-a.conf <<EOF
# tenant A's web server
User=www-a
Dir=$DIR
Reload=/usr/local/bin/web-a-reload
DNS=deploy.a.example.test
Label=web-a
ReloadTimeout=30
EOF
chmod 0644 /etc/certbroker/deploy.d/web-a.conf
dpkg -S /lib/systemd/system/certbroker-deploy@.service >/dev/null || fail "certbroker-deploy@.service is not in a package"
assert_eq "$(show $D FragmentPath)" /lib/systemd/system/certbroker-deploy@.service "the deploy unit file in use"
since=$(date '+%Y-%m-%d %H:%M:%S')
systemctl start $D || fail "systemctl start $D failed: $(systemctl status --no-pager $D 2>&1 | tail -n 20)"
wait_for 60 "the first certificate deployed and reloaded by $D" test -s "$DIR/reload.log"
assert_eq "$(show $D ActiveState)" active "$D after the first certificate"
assert_eq "$(ps -o user= -p "$(show $D MainPID)")" www-a "the deploy command's user"
first=$(sed -n 's/^request=//p' "$DIR/.certbroker-request")
assert_eq "$(unquote "$(cb root get-property "$BUS" "$OBJ/request/$first" "$BUS.Request" Owner)" | tr -d 'u ')" 2003 \
        "the request's owner (the broker saw www-a)"
assert_eq "$(readlink "$DIR/live")" "gen-$first" "live after the first certificate"
assert_eq "$(stat -c '%a %U' "$DIR/live/key.pem")" "600 www-a" "key.pem"
read -r r1 k1 c1 u1 <"$DIR/reload.log"
assert_eq "$r1 $u1" "$first www-a" "the first reload (request, user)"
assert_eq "$k1" "$c1" "the first reload: key matches certificate"
pass "$D (as shipped) deployed the first certificate into $DIR as www-a (owner 2003) and ran the reload command"

wait_for 60 "the renewed certificate deployed and reloaded by $D" bash -c "[ \$(wc -l <'$DIR/reload.log') -ge 2 ]"
read -r r2 k2 c2 u2 < <(sed -n 2p "$DIR/reload.log")
[ "$r2" != "$first" ] || fail "the second reload was for the first request again"
assert_eq "$u2" www-a "the second reload's user"
assert_eq "$k2" "$c2" "the second reload: key matches certificate"
[ "$k2" != "$k1" ] || fail "the renewed certificate reuses the old key"
pred=$(unquote "$(cb root get-property "$BUS" "$OBJ/request/$r2" "$BUS.Request" Predecessor)")
assert_eq "$pred" "$OBJ/request/$first" "the second generation's predecessor"
assert_eq "$(readlink "$DIR/live")" "gen-$r2" "live after the renewal"
assert_eq "$(openssl pkey -in "$DIR/live/key.pem" -pubout | sha256sum)" \
        "$(openssl x509 -in "$DIR/live/cert.pem" -noout -pubkey | sha256sum)" "the live key matches its certificate"
assert_eq "$(show $D NRestarts) $(show $D ActiveState)" "0 active" "$D after the renewal"
openssl x509 -in "$DIR/live/cert.pem" >"$OUT/deploy.crt"
jr=$(journalctl -u "$D" --since "$since" --no-pager -o cat)
printf '%s\n' "$jr" >"$OUT/deploy.journal.txt"
assert_contains "$jr" "reload command for request $r2 succeeded" "the journal of $D"
# (systemd's own "Failed to configure loopback network device" for PrivateNetwork= is the
# container's: PID 1 here may not configure lo in the new network namespace; the unit uses
# only AF_UNIX.)
if printf '%s\n' "$jr" | grep -v 'Failed to configure loopback network device' |
        grep -Ei 'denied|permission|read-only file system|operation not permitted|bad system call'; then
        fail "$D's journal shows a denied operation (above)"
fi
pass "$D renewed by itself: a second generation with a fresh key, reloaded again (journal: no denied write or call)"

line=$(systemd-analyze security --no-pager $D | grep 'Overall exposure level')
echo "# $D: $line"
systemctl stop $D
assert_eq "$(show $D ActiveState)" inactive "$D after systemctl stop"
cb root call "$BUS" "$OBJ/request/$(sed -n 's/^request=//p' "$DIR/.certbroker-request")" "$BUS.Request" StopRenewal >/dev/null
cp /tmp/corp.conf.good /etc/certbroker/ca.d/corp.conf
systemctl reload $U
ndes ctl validity=0 >/dev/null
level=$(echo "$line" | sed -n 's/.*: \([0-9.]*\) .*/\1/p')
[ -n "$level" ] || fail "no exposure level in: $line"
awk -v l="$level" 'BEGIN { exit !(l <= 1.5) }' || fail "systemd-analyze security $D: exposure $level > 1.5"
pass "systemd-analyze security $D: exposure $level (at most 1.5)"

# ---- SIGKILL: Restart=on-failure, and the request in flight finishes ----
ndes ctl pending=on >/dev/null
path=$(enroll alice killed.a.example.test) || fail "Enroll before the kill failed"
wait_for 30 "the request to be PENDING at NDES" bash -c \
        "[ \"\$(setpriv --reuid=2001 --regid=3001 --init-groups busctl --system get-property $BUS $path $BUS.Request State)\" = 's \"pending\"' ]"
pid=$(mainpid)
systemctl kill -s KILL $U
wait_for 20 "systemd to restart certbrokerd" bash -c \
        "[ \"\$(systemctl show -P ActiveState $U)\" = active ] && [ \"\$(systemctl show -P MainPID $U)\" != $pid ] && [ \"\$(systemctl show -P MainPID $U)\" != 0 ]"
assert_eq "$(show $U NRestarts)" 1 "NRestarts after SIGKILL"
assert_eq "$(prop alice "$path" State)" pending "the request after the restart"
ndes approve all >/dev/null
ndes ctl pending=off >/dev/null
state=$(wait_req alice "$path")
[ "$state" = issued ] || fail "the request in flight ended '$state': $(prop alice "$path" ErrorMessage)"
prop alice "$path" Certificate >"$OUT/killed.crt"
pass "systemctl kill -s KILL: Restart=on-failure brought certbrokerd back (pid $pid -> $(mainpid)) and the request in flight was issued"

# ---- Mode=gss-proxy with Debian's gssproxy.service ----
install -m 0600 -o root -g root /lab/svc-scep.keytab /etc/gssproxy/svc-scep.keytab
cat >/etc/gssproxy/80-certbroker.conf <<EOF
[service/certbroker]
    mechs = krb5
    cred_usage = initiate
    cred_store = client_keytab:/etc/gssproxy/svc-scep.keytab
    cred_store = ccache:FILE:/var/lib/gssproxy/clients/krb5cc_%U
    krb5_principal = svc-scep@$LAB_REALM
    euid = $cb_uid
EOF
systemctl start gssproxy.service || fail "Debian's gssproxy.service did not start"
rm /etc/certbroker/svc-scep.keytab
sed -i 's/^\[Kerberos\]$/[Kerberos]\nMode=gss-proxy/' /etc/certbroker/certbroker.conf
mkdir -p /etc/systemd/system/certbrokerd.service.d
printf '[Service]\nEnvironment=GSS_USE_PROXY=yes\n' >/etc/systemd/system/certbrokerd.service.d/gss-proxy.conf
systemctl daemon-reload
systemctl restart $U
if as certbroker test -r /etc/gssproxy/svc-scep.keytab; then fail "user certbroker can read gss-proxy's keytab"; fi
[ ! -e /etc/certbroker/svc-scep.keytab ] || fail "a keytab is still in /etc/certbroker"
path=$(enroll alice gss.a.example.test) || fail "Enroll in Mode=gss-proxy failed"
state=$(wait_req alice "$path")
[ "$state" = issued ] || fail "the gss-proxy request ended '$state': $(prop alice "$path" ErrorMessage)"
prop alice "$path" Certificate >"$OUT/gssproxy.crt"
pass "Mode=gss-proxy with Debian's gssproxy.service and GSS_USE_PROXY=yes: enrolled with no keytab the broker could open"

# ---- a broken configuration: the unit fails and says what to fix ----
cp /etc/certbroker/certbroker.conf /tmp/certbroker.conf.good
printf '[Kerberos]\nRealm=%s\nthis line has no equals sign\n' "$LAB_REALM" >/etc/certbroker/certbroker.conf
if systemctl restart $U 2>/dev/null; then fail "certbrokerd started with a broken certbroker.conf"; fi
assert_eq "$(show $U ActiveState)" failed "ActiveState with a broken certbroker.conf"
status=$(systemctl status --no-pager --full --lines=5 $U 2>&1 || true)
assert_eq "$(show $U ExecMainStatus)" 78 "exit status with a broken certbroker.conf"
assert_contains "$status" 'Status: "Invalid configuration, fix it and start again: /etc/certbroker/certbroker.conf:3' \
        "systemctl status with a broken certbroker.conf"
echo "$status" | sed 's/^/#   /'
pass "a broken certbroker.conf: the unit fails and systemctl status names certbroker.conf:3"
cp /tmp/certbroker.conf.good /etc/certbroker/certbroker.conf
systemctl reset-failed $U

# ---- systemd-analyze security ----
rm -r /etc/systemd/system/certbrokerd.service.d
systemctl daemon-reload
systemctl start $U
line=$(systemd-analyze security --no-pager $U | grep 'Overall exposure level')
echo "# $line"
level=$(echo "$line" | sed -n 's/.*: \([0-9.]*\) .*/\1/p')
[ -n "$level" ] || fail "no exposure level in: $line"
awk -v l="$level" 'BEGIN { exit !(l <= 1.5) }' || fail "systemd-analyze security certbrokerd: exposure $level > 1.5"
pass "systemd-analyze security certbrokerd: exposure $level (at most 1.5)"

# ---- the CA in the system trust store: InstallTrust=yes, certbroker-trust.path as shipped ----
# The broker vouches only for a CA certificate it authenticated: here pinned by CAFingerprint=
# (the NDES CA's certificate; the admin page's thumbprint would need an enrollment since the
# broker's last start). Nobody starts certbroker-trust.service by hand from here on, and the
# timer has not fired: each run below is the path unit's, on the broker's stamp.
STORE=/usr/local/share/ca-certificates
BUNDLE=/etc/ssl/certs/ca-certificates.crt
ca_fp=$(openssl x509 -in "$NDES_STATE/ca.crt" -noout -fingerprint -sha256 | sed 's/.*=//; s/://g' | tr A-F a-f)
[ ${#ca_fp} = 64 ] || fail "no SHA-256 fingerprint of the NDES CA certificate: '$ca_fp'"
anchor=$STORE/certbroker-corp.$ca_fp.crt
# in_bundle PEM: the certificate of PEM is in the bundle update-ca-certificates writes
in_bundle() {
        local body
        body=$(sed '/^-----/d' "$1" | tr -d '\n')
        [ -n "$body" ] && tr -d '\n' <"$BUNDLE" | grep -qF "$body"
}
anchor_in() { [ -s "$anchor" ] && in_bundle "$anchor"; }
anchor_gone() { [ ! -e "$anchor" ] && [ ! -e "/etc/ssl/certs/certbroker-corp.$ca_fp.pem" ] && ! in_bundle /tmp/anchor.pem; }
# trust_ran SINCE: certbroker-trust.service started after SINCE (monotonic usec) and is done
trust_ran() {
        [ "$(show $T ExecMainStartTimestampMonotonic)" -gt "$1" ] && [ "$(show $T ActiveState)" = inactive ]
}
# (A change while a sync runs only merges into that run's start job: each step below starts
# from an idle certbroker-trust.service, its path unit waiting.)
trust_idle() { [ "$(show $T ActiveState)" = inactive ] && [ "$(show $TP SubState)" = waiting ]; }
# The broker was just started: its stamp, written at start-up, has the path unit run a sync.
wait_for 120 "the path unit's run of $T after certbrokerd's start" trust_ran "$(show $U ExecMainStartTimestampMonotonic)"
assert_eq "$(show $T Result) $(show $T ExecMainStatus)" "success 0" "$T after certbrokerd's start (Result, exit status)"
if out=$(openssl verify "$OUT/alice.crt" 2>&1); then fail "alice's certificate verifies with the system store before InstallTrust=yes: $out"; fi
[ -z "$(ls "$STORE" | grep '^certbroker-')" ] || fail "certbroker anchors before InstallTrust=yes: $(ls "$STORE")"
assert_eq "$(show $TP ActiveState)" active "$TP before InstallTrust=yes"
cp /etc/certbroker/ca.d/corp.conf /tmp/corp.conf.trust
printf 'InstallTrust=yes\nCAFingerprint=sha256:%s\n' "$ca_fp" >>/etc/certbroker/ca.d/corp.conf
out=$(/usr/libexec/certbrokerd --check-config 2>&1) || fail "certbrokerd --check-config with InstallTrust=yes: $out"
wait_for 120 "$T to be idle" trust_idle
t_mono=$(show $T ExecMainStartTimestampMonotonic)
since=$(date '+%Y-%m-%d %H:%M:%S')
sleep 1
t0=${EPOCHREALTIME/./}
systemctl reload $U
wait_for 30 "the broker's stamp to show corp's pinned certificate" \
        grep -qx "corp InstallTrust=yes sha256:$ca_fp authenticated" "$STAMP"
wait_for 180 "the anchor in $STORE and $BUNDLE" anchor_in
wait_for 120 "the path unit's run of $T to end" trust_ran "$t_mono"
sync_ms=$(( (${EPOCHREALTIME/./} - t0) / 1000 ))
assert_eq "$(show $T Result) $(show $T ExecMainStatus)" "success 0" "$T after InstallTrust=yes (Result, exit status)"
assert_eq "$(show $TT LastTriggerUSecMonotonic)" 0 "$TT (it did not start $T)"
assert_eq "$(stat -c '%a %U' "$anchor")" "644 root" "the anchor file"
assert_eq "$(openssl x509 -in "$anchor" -noout -fingerprint -sha256 | sed 's/.*=//; s/://g' | tr A-F a-f)" "$ca_fp" \
        "the anchor is the NDES CA's certificate"
assert_eq "$(ls "$STORE" | grep -c '^certbroker-')" 1 "certbroker anchors in $STORE"
assert_eq "$(readlink "/etc/ssl/certs/certbroker-corp.$ca_fp.pem")" "$anchor" "update-ca-certificates' link to the anchor"
jr=$(journalctl -u $T --since "$since" --no-pager -o cat)
assert_contains "$jr" "installed $anchor" "the journal of $T"
out=$(openssl verify "$OUT/alice.crt" 2>&1) || fail "openssl verify (the default store) of alice's certificate after InstallTrust=yes: $out"
cp "$anchor" /tmp/anchor.pem
pass "InstallTrust=yes + CAFingerprint=, systemctl reload: the stamp changed, $TP ran $T (Result=success) which installed $anchor into the store and $BUNDLE ($sync_ms ms); openssl verify now accepts alice's certificate"

# The CA removed from the configuration (another one left): the next sync, again by the path
# unit after the reload, takes its anchor out of the store.
mv /etc/certbroker/ca.d/corp.conf /tmp/corp.conf.installtrust
cat >/etc/certbroker/ca.d/other.conf <<'EOF'
[CA]
URL=https://ndes.example.test/certsrv/mscep/mscep.dll
TrustAnchors=/etc/certbroker/ndes-root.pem
Default=yes
EOF
out=$(/usr/libexec/certbrokerd --check-config 2>&1) || fail "certbrokerd --check-config without corp: $out"
wait_for 120 "$T to be idle" trust_idle
t_mono=$(show $T ExecMainStartTimestampMonotonic)
since=$(date '+%Y-%m-%d %H:%M:%S')
sleep 1
systemctl reload $U
wait_for 30 "the broker's stamp to drop corp" bash -c "grep -q '^other ' '$STAMP' && ! grep -q '^corp ' '$STAMP'"
wait_for 180 "the anchor to leave $STORE and $BUNDLE" anchor_gone
wait_for 120 "the path unit's run of $T to end" trust_ran "$t_mono"
assert_eq "$(show $T Result) $(show $T ExecMainStatus)" "success 0" "$T after the CA was removed (Result, exit status)"
assert_eq "$(show $TT LastTriggerUSecMonotonic)" 0 "$TT (it did not start $T)"
jr=$(journalctl -u $T --since "$since" --no-pager -o cat)
assert_contains "$jr" "the CA is no longer configured" "the journal of $T after the CA was removed"
if out=$(openssl verify "$OUT/alice.crt" 2>&1); then fail "openssl verify still accepts alice's certificate after corp was removed: $out"; fi
pass "corp removed from ca.d, systemctl reload: $TP ran $T again, which removed the anchor from $STORE and $BUNDLE; openssl verify refuses alice's certificate again"
rm /etc/certbroker/ca.d/other.conf
cp /tmp/corp.conf.trust /etc/certbroker/ca.d/corp.conf
systemctl reload $U
wait_for 30 "the broker's stamp to show corp again" grep -q "^corp InstallTrust=no " "$STAMP"

# ---- certbroker-deploy-user@wifi under carol's own systemd --user ----
# A user with a home directory and a user manager (lingering: user@UID.service, started by
# systemd-logind), a policy rule with Identity=self for her local account, and the user unit
# as shipped, enabled by carol herself.
useradd -m -U -u 2004 -s /bin/sh carol
carol_home=$(getent passwd carol | cut -d: -f6)
cat >/etc/certbroker/policy.d/workstation.policy <<'EOF'
# carol's own certificate, from her session (a local account here: IdentityAccounts=any)
[Rule]
Name=carol-identity
Users=carol
Identity=self
IdentityAccounts=any
EOF
chmod 0644 /etc/certbroker/policy.d/workstation.policy
systemctl reload $U
wait_for 10 "carol's identity rule after systemctl reload" bash -c \
        "setpriv --reuid=2004 --regid=2004 --init-groups busctl --system call $BUS $OBJ $BUS.Manager CheckAccess ssasa{sv} '' '' 0 1 identity s self | grep -q 'true \"carol-identity\"'"
loginctl enable-linger carol
wait_for 60 "carol's user manager (user@2004.service)" systemctl is-active -q user@2004.service
# uctl ARGS...: systemctl --user as carol, as in her session
uctl() { as carol env XDG_RUNTIME_DIR=/run/user/2004 systemctl --user "$@"; }
wait_for 60 "carol's default.target" uctl is-active -q default.target
UD=certbroker-deploy-user@wifi.service
WIFI=$carol_home/.local/share/certbroker/wifi
out=$(uctl enable --now $UD 2>&1) || fail "systemctl --user enable --now $UD as carol: $out"
assert_eq "$(uctl show -P FragmentPath $UD)" /usr/lib/systemd/user/certbroker-deploy-user@.service "the user unit file in use"
dpkg -S /usr/lib/systemd/user/certbroker-deploy-user@.service >/dev/null || fail "the user unit is not in a package"
wait_for 60 "carol's certificate deployed by $UD" test -s "$WIFI/live/cert.pem"
assert_eq "$(uctl is-enabled $UD)" enabled "$UD after enable --now"
assert_eq "$(uctl show -P ActiveState $UD) $(uctl show -P NRestarts $UD)" "active 0" "$UD after the first certificate"
assert_eq "$(ps -o user= -p "$(uctl show -P MainPID $UD)")" carol "the user unit's command's user"
assert_eq "$(stat -c '%a %U' "$carol_home/.local/share/certbroker" "$WIFI" | tr '\n' ' ')" "700 carol 700 carol " \
        "the deployment directories"
assert_eq "$(stat -L -c '%a %U' "$WIFI/live/key.pem")" "600 carol" "carol's deployed key"
req=$(sed -n 's/^request=//p' "$WIFI/.certbroker-request")
[ -n "$req" ] || fail "no request recorded in $WIFI/.certbroker-request"
assert_eq "$(unquote "$(cb root get-property "$BUS" "$OBJ/request/$req" "$BUS.Request" Owner)" | tr -d 'u ')" 2004 \
        "the request's owner (the broker saw carol)"
assert_eq "$(openssl x509 -in "$WIFI/live/cert.pem" -noout -subject -nameopt RFC2253)" "subject=CN=carol" "carol's subject"
text=$(openssl x509 -in "$WIFI/live/cert.pem" -noout -text)
assert_contains "$text" "othername: UPN::carol@${LAB_REALM,,}" "carol's UPN otherName"
assert_eq "$(openssl pkey -in "$WIFI/live/key.pem" -pubout | sha256sum)" \
        "$(openssl x509 -in "$WIFI/live/cert.pem" -noout -pubkey | sha256sum)" "carol's deployed key matches her certificate"
out=$(openssl verify -CAfile "$NDES_STATE/ca.crt" "$WIFI/live/cert.pem" 2>&1) || fail "carol's certificate does not chain to the NDES CA: $out"
openssl x509 -in "$WIFI/live/cert.pem" >"$OUT/carol.crt"
wait_for 10 "$UD's note in the journal" bash -c \
        "journalctl _SYSTEMD_USER_UNIT=$UD --no-pager -o cat | grep -qF 'request $req deployed: $WIFI/live -> gen-$req'"
jr=$(journalctl _SYSTEMD_USER_UNIT=$UD --no-pager -o cat)
printf '%s\n' "$jr" >"$OUT/deploy-user.journal.txt"
if printf '%s\n' "$jr" | grep -Ei 'denied|permission|read-only file system|operation not permitted|bad system call'; then
        fail "$UD's journal shows a denied operation (above)"
fi
pass "$UD under carol's systemd --user (linger): active, deployed CN=carol with UPN carol@${LAB_REALM,,} into ~/.local/share/certbroker/wifi/live (key 0600, matches); the broker saw uid 2004"
uctl disable --now $UD >/dev/null 2>&1 || fail "systemctl --user disable --now $UD"
assert_eq "$(uctl show -P ActiveState $UD)" inactive "$UD after disable --now"

# ---- apt-get remove: the daemon and the trust store units stop with their files ----
assert_eq "$(show $U ActiveState) $(show $TP ActiveState) $(show $TT ActiveState)" "active active active" \
        "certbrokerd, $TP and $TT before apt-get remove"
out=$(DEBIAN_FRONTEND=noninteractive apt-get remove -y certbroker 2>&1) || fail "apt-get remove certbroker failed: $out"
assert_eq "$(dpkg-query -W -f='${Status}' certbroker)" "deinstall ok config-files" "certbroker's dpkg status after remove"
for u in $U $TP $TT $T; do
        assert_eq "$(show $u ActiveState) $(show $u LoadState)" "inactive not-found" "$u after apt-get remove"
done
if out=$(pgrep -a -x certbrokerd); then fail "certbrokerd still runs after apt-get remove: $out"; fi
pass "apt-get remove certbroker stopped certbrokerd, $TP and $TT; no certbrokerd process is left"

echo "ok - done"
