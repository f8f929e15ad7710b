#!/usr/bin/env bash
# A user's certificate for its own identity (certbroker.policy(5), Identity=self), used end to
# end against a TLS server that requires client certificates from the CA and maps them to the
# UPN (Apache mod_ssl, SSLVerifyClient require, the UPN otherName in its log and in an
# access rule):
#   - realm accounts come from a directory (libnss-extrausers standing for sssd: carol with a
#     fully qualified name carol@example.test, dave with a short name in the realm's domain);
#     each enrolls with the option identity=self and no names, and gets CN=<user> with its UPN
#     (otherName 1.3.6.1.4.1.311.20.2.3) and e-mail (rfc822Name) derived by the broker;
#   - refused, each named: another user's identity in the request, a UPN outside the permitted
#     suffix, a local account (alice, in /etc/passwd) where the rule wants a realm one, a uid
#     outside the rule's IdentityUIDs=, a DNS name in an identity request;
#   - the TLS server accepts carol's certificate and logs carol@example.test; /carol/ admits
#     only carol's UPN: dave's certificate (a valid one) is refused there, and a certificate
#     claiming carol's UPN from another CA fails the handshake;
#   - renewal keeps the identity (the successor is decided again and names the same UPN).
set -euo pipefail
: "${CB_SOURCE_ROOT:=$(cd "$(dirname "$0")/../.." && pwd)}"
. "$CB_SOURCE_ROOT/tests/integration/daemon-enter.sh" "$@"

ldconfig -p | grep 'libnss_extrausers\.so\.2 ' >/dev/null || lab_fail "libnss-extrausers is not installed (tests/install-deps)"

# The directory's users (what sssd would answer): only through NSS, not in /etc/passwd.
xu=$LAB_DIR/extrausers
mkdir -m 0755 "$xu"
cat >"$xu/passwd" <<'PW'
carol@example.test:x:1500001:1500000:realm user carol:/nonexistent:/bin/sh
dave:x:1500002:1500000:realm user dave:/nonexistent:/bin/sh
erin@other.test:x:1500003:1500000:user of another domain:/nonexistent:/bin/sh
frank@example.test:x:1700001:1500000:realm user outside the mapped range:/nonexistent:/bin/sh
PW
echo "domain-users:x:1500000:" >"$xu/group"
chmod 0644 "$xu/passwd" "$xu/group"
mkdir -p /var/lib/extrausers
mount --bind "$xu" /var/lib/extrausers
# The lab's /etc/nsswitch.conf is a private file: add the directory after files.
nss=$(sed -e 's/^passwd:.*/passwd: files extrausers/' -e 's/^group:.*/group: files extrausers/' /etc/nsswitch.conf)
printf '%s\n' "$nss" >/etc/nsswitch.conf
[ "$(getent passwd 1500001 | cut -d: -f1)" = carol@example.test ] || lab_fail "NSS does not answer the directory's users"

broker_lab
printf 'RenewBefore=6s\nRenewJitter=0\n' >>"$CB_CONF/ca.d/corp.conf"
cat >"$CB_CONF/policy.d/identity.policy" <<'CONF'
# The domain's users: a certificate for their own identity, UPN and e-mail, the
# SignatureTemplate (IdentityUsage=signature, the default).
[Rule]
Name=staff-identity
Groups=domain-users
Identity=self
IdentityNames=upn email
IdentityUIDs=1500000-1599999

# A local account may not have one (IdentityAccounts=realm, the default).
[Rule]
Name=local-identity
Users=alice
Identity=self
CONF
broker_start
lab_wait_for 20 "ticket-granting ticket" bash -c \
        "[ \"\$(busctl --system get-property $CB_BUS $CB_PATH $CB_BUS.Manager CredentialState)\" = 's \"valid\"' ]"

# enroll_self USER [NAME...]: Enroll with identity=self (and NAMEs); prints the path.
enroll_self() {
        local user=$1 out
        shift
        out=$(cb "$user" call "$CB_BUS" "$CB_PATH" "$CB_BUS.Manager" Enroll ssasa{sv} "" "" "$#" "$@" \
                1 identity s self) || return 1
        out=${out#o \"}
        echo "${out%\"}"
}
# enroll_err USER SUBJECT OPTIONS-JSON NAME...: Enroll that must fail; prints "ERROR-NAME: message".
enroll_err() {
        lab_run_as "$1" "$LAB_PYTHON" -c '
import dbus, json, sys
m = dbus.Interface(dbus.SystemBus().get_object("org.certbroker.Broker1", "/org/certbroker/Broker1",
                                               introspect=False), "org.certbroker.Broker1.Manager")
opts = {k: (dbus.Boolean(v) if isinstance(v, bool) else dbus.String(v)) for k, v in json.loads(sys.argv[2]).items()}
try:
    print("allowed:", m.Enroll("", sys.argv[1], dbus.Array(sys.argv[3:], signature="s"), dbus.Dictionary(opts, signature="sv")))
    sys.exit(1)
except dbus.DBusException as e:
    print("%s: %s" % (e.get_dbus_name(), e.get_dbus_message()))
' "$2" "$3" "${@:4}" || lab_fail "an Enroll by $1 that must fail was allowed"
}
# refused CMD...: CMD must fail; prints its output.
refused() {
        local out
        if out=$("$@" 2>&1); then
                lab_fail "allowed: $* -> $out"
        fi
        printf '%s' "$out"
}
W=$LAB_DIR/identity
mkdir -m 0755 "$W"
# fetch USER PATH BASE: the certificate and the key of an issued request into BASE.crt/.key.
fetch() {
        local out
        cb_prop "$1" "$2" Certificate >"$3.crt"
        out=$(cb "$1" call "$CB_BUS" "$2" "$CB_BUS.Request" TakeKey)
        out=${out#s \"}
        printf '%b' "${out%\"}" >"$3.key"
        chmod 0600 "$3.key"
}

# --- carol (sssd-style fully qualified name) and dave (short name, the realm's domain) ---
pc=$(enroll_self carol@example.test)
lab_assert_eq "$(cb_wait carol@example.test "$pc" 60)" issued "carol's identity certificate"
fetch carol@example.test "$pc" "$W/carol"
text=$(openssl x509 -in "$W/carol.crt" -noout -text)
lab_assert_contains "$(openssl x509 -in "$W/carol.crt" -noout -subject)" "subject=CN = carol" "carol's subject"
lab_assert_contains "$text" "othername: UPN::carol@example.test" "carol's UPN otherName"
lab_assert_contains "$text" "email:carol@example.test" "carol's rfc822Name"
lab_assert_contains "$text" "Digital Signature" "carol's key usage"
lab_assert_not_contains "$text" "Key Encipherment" "carol's key usage"
lab_assert_contains "$text" "TLS Web Client Authentication" "carol's extended key usage"
lab_assert_eq "$(cb_prop carol@example.test "$pc" Usage)" signature "carol's usage (IdentityUsage=)"
lab_assert_contains "$(cb carol@example.test get-property "$CB_BUS" "$pc" "$CB_BUS.Request" Names)" \
        '"upn:carol@example.test" "email:carol@example.test"' "carol's request's names"

pd=$(enroll_self dave)
lab_assert_eq "$(cb_wait dave "$pd" 60)" issued "dave's identity certificate"
fetch dave "$pd" "$W/dave"
text=$(openssl x509 -in "$W/dave.crt" -noout -text)
lab_assert_contains "$(openssl x509 -in "$W/dave.crt" -noout -subject)" "subject=CN = dave" "dave's subject"
lab_assert_contains "$text" "othername: UPN::dave@example.test" "dave's UPN (the realm's domain)"
lab_pass "Identity=self: realm users get CN=<user> with their UPN and e-mail derived from their accounts"

# --- refusals, each named ---
out=$(enroll_err carol@example.test "" '{"identity": "self"}' upn:dave@example.test)
lab_assert_contains "$out" "org.certbroker.Broker1.Error.NameNotPermitted: " "carol asking for dave's UPN"
lab_assert_contains "$out" "is not your identity: you are carol@example.test" "carol asking for dave's UPN: why"
out=$(enroll_err carol@example.test CN=dave '{"identity": "self"}')
lab_assert_contains "$out" "NameNotPermitted: subject 'CN=dave' is not your identity" "carol asking for CN=dave"
out=$(enroll_err carol@example.test "" '{"identity": "self"}' www.example.test)
lab_assert_contains "$out" "InvalidArgument: name 'www.example.test' is no identity" "an identity request with a DNS name"
out=$(enroll_err erin@other.test "" '{"identity": "self"}')
lab_assert_contains "$out" "org.certbroker.Broker1.Error.NameNotPermitted: " "erin (other.test)"
lab_assert_contains "$out" "the UPN erin@other.test is not permitted: its domain is not under the permitted suffix example.test" \
        "erin: why"
out=$(enroll_err alice "" '{"identity": "self"}')
lab_assert_contains "$out" "org.certbroker.Broker1.Error.AccessDenied: " "alice (a local account)"
lab_assert_contains "$out" "a local account (in /etc/passwd)" "alice: why"
lab_assert_contains "$out" "IdentityAccounts=realm" "alice: the rule's setting"
out=$(enroll_err frank@example.test "" '{"identity": "self"}')
lab_assert_contains "$out" "uid 1700001 is outside rule 'staff-identity'" "frank (outside IdentityUIDs=)"
out=$(enroll_err bob "" '{}' upn:bob@example.test)
lab_assert_contains "$out" "AccessDenied: rule 'tenant-b'" "bob, whose rule has no Identity=self"
lab_assert_contains "$out" "has no Identity=self" "bob: why"
out=$(enroll_err carol@example.test "" '{"identity": "self", "usage": "both"}')
lab_assert_contains "$out" "IdentityUsage=signature" "carol asking for another usage"
lab_pass "Identity=self refuses, named: another user's identity, a DNS name, a UPN outside the suffix, a local account, a uid outside the range, another usage"

# --- certbrokerctl access --identity self: the same decision as a dry run ---
broker_need_ctl
out=$(lab_run_as carol@example.test "$CTL" --json access --identity self --ca corp) ||
        lab_fail "access --identity self as carol: exit $? ($out)"
lab_assert_contains "$out" '"allowed":true' "carol's access dry run: allowed"
lab_assert_contains "$out" '"rule":"staff-identity"' "carol's access dry run: the rule"
rc=0
out=$(lab_run_as alice "$CTL" access --identity self --ca corp 2>&1) || rc=$?
lab_assert_eq "$rc" 3 "access --identity self as alice (a local account): exit 3, denied by policy"
lab_assert_contains "$out" "IdentityAccounts=realm" "alice's access dry run: why"
rc=0
out=$(lab_run_as carol@example.test "$CTL" access --identity self --ca corp --usage both 2>&1) || rc=$?
lab_assert_eq "$rc" 3 "access --identity self --usage both as carol: exit 3"
lab_assert_contains "$out" "IdentityUsage=signature" "carol's access dry run for another usage: why"
lab_pass "certbrokerctl access --identity self: allowed for carol by staff-identity, denied for alice and for another usage, each named"

# --- the TLS server: client certificates from the CA, mapped to the UPN ---
ca_pem=$W/ndes-ca.pem
out=$(busctl --system get-property "$CB_BUS" /org/certbroker/Broker1/ca/corp "$CB_BUS.CA" CACertificates)
out=${out#s \"}
printf '%b' "${out%\"}" >"$ca_pem"
openssl verify -CAfile "$ca_pem" "$W/carol.crt" >/dev/null || lab_fail "carol's certificate does not verify against the CA"
sd=$LAB_DIR/site
mkdir -m 0755 "$sd" "$sd/logs" "$sd/run" "$sd/htdocs" "$sd/htdocs/carol"
echo "hello" >"$sd/htdocs/index.html"
echo "carol's page" >"$sd/htdocs/carol/index.html"
SITE_PORT=8443
{
        for mod in mpm_event authz_core mime dir ssl socache_shmcb; do
                echo "LoadModule ${mod}_module /usr/lib/apache2/modules/mod_${mod}.so"
        done
        cat <<CONF
ServerRoot "$sd"
ServerName ndes.example.test
PidFile "$sd/run/httpd.pid"
DefaultRuntimeDir "$sd/run"
Mutex file:$sd/run default
User www-data
Group www-data
ErrorLog "$sd/logs/error.log"
LogLevel info
LogFormat "%h user=%u upn=%{SSL_CLIENT_SAN_OTHER_msUPN_0}x email=%{SSL_CLIENT_SAN_Email_0}x \"%r\" %>s" site
CustomLog "$sd/logs/access.log" site
TypesConfig /etc/mime.types
DirectoryIndex index.html
Listen 127.0.0.1:$SITE_PORT
SSLSessionCache "shmcb:$sd/run/ssl_scache(512000)"
DocumentRoot "$sd/htdocs"
<Directory "$sd/htdocs">
    Require all granted
</Directory>
<VirtualHost 127.0.0.1:$SITE_PORT>
    SSLEngine on
    SSLCertificateFile "$LAB_DIR/tls/server.pem"
    SSLCertificateKeyFile "$LAB_DIR/tls/server.key"
    SSLCACertificateFile "$ca_pem"
    SSLVerifyClient require
    SSLVerifyDepth 2
    SSLUserName SSL_CLIENT_SAN_OTHER_msUPN_0
    <Location "/carol/">
        Require expr %{SSL_CLIENT_SAN_OTHER_msUPN_0} == 'carol@example.test'
    </Location>
</VirtualHost>
CONF
} >"$sd/httpd.conf"
lab_start site apache2 -f "$sd/httpd.conf" -d "$sd" -D FOREGROUND
site() { curl -sS --max-time 10 --cacert "$LAB_TLS_ROOT" -o /dev/null -w '%{http_code}' "$@"; }
lab_wait_for 15 "the TLS site" bash -c "curl -s -o /dev/null --max-time 2 --cacert '$LAB_TLS_ROOT' \
        --cert '$W/carol.crt' --key '$W/carol.key' https://ndes.example.test:$SITE_PORT/"

lab_assert_eq "$(site --cert "$W/carol.crt" --key "$W/carol.key" "https://ndes.example.test:$SITE_PORT/carol/")" 200 \
        "carol's certificate on carol's page"
lab_assert_contains "$(cat "$sd/logs/access.log")" \
        'user=carol@example.test upn=carol@example.test email=carol@example.test "GET /carol/ HTTP/1.1" 200' \
        "the site's log for carol"
lab_assert_eq "$(site --cert "$W/dave.crt" --key "$W/dave.key" "https://ndes.example.test:$SITE_PORT/")" 200 \
        "dave's certificate on the site"
lab_assert_eq "$(site --cert "$W/dave.crt" --key "$W/dave.key" "https://ndes.example.test:$SITE_PORT/carol/")" 403 \
        "dave's certificate on carol's page"
lab_assert_contains "$(cat "$sd/logs/access.log")" 'user=dave@example.test upn=dave@example.test' "the site's log for dave"
lab_assert_not_contains "$(grep 'user=dave' "$sd/logs/access.log")" "=carol" "dave's log lines"
as_carol=$(grep -c 'upn=carol@example.test' "$sd/logs/access.log")

# A certificate claiming carol's UPN, from another CA: no TLS session at all.
openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$W/forged.key" \
        -out "$W/forged.crt" -days 1 -subj "/CN=carol" \
        -addext "subjectAltName=otherName:1.3.6.1.4.1.311.20.2.3;UTF8:carol@example.test" \
        -addext "extendedKeyUsage=clientAuth" 2>/dev/null
if code=$(site --cert "$W/forged.crt" --key "$W/forged.key" "https://ndes.example.test:$SITE_PORT/carol/" 2>&1) &&
   [ "$code" = 200 ]; then
        lab_fail "a forged certificate for carol's UPN was accepted"
fi
lab_assert_eq "$(grep -c 'upn=carol@example.test' "$sd/logs/access.log")" "$as_carol" "requests logged as carol after the forged one"
if curl -s -o /dev/null --max-time 10 --cacert "$LAB_TLS_ROOT" "https://ndes.example.test:$SITE_PORT/"; then
        lab_fail "the site answered without a client certificate"
fi
lab_pass "the TLS server accepts carol's certificate and logs carol@example.test; dave's is not carol; a forged one and none are refused"

# --- the user's session: certbroker-deploy-user@wifi's commands, run as carol ---
# The unit as built (the man pages it names are not installed here: --man=no).
unit=$CB_BUILD_ROOT/ipc/certbroker-deploy-user@.service
[ -f "$unit" ] || lab_fail "the user unit is not built: $unit"
cp "$unit" "$W/certbroker-deploy-user@wifi.service"
mkdir -m 0700 "$W/run"
out=$(XDG_RUNTIME_DIR=$W/run systemd-analyze --user verify --man=no "$W/certbroker-deploy-user@wifi.service" 2>&1) ||
        lab_fail "systemd-analyze --user verify: $out"
home=$LAB_DIR/home-carol
mkdir -m 0700 "$home"
chown carol@example.test: "$home"
# Its Exec lines with the specifiers a user manager would expand for carol (%h home, %i the
# instance, %E ~/.config) and the certbrokerctl of this build for the installed one.
bindir=$(sed -n 's|^ExecStart=.* \(/[^ ]*\)/certbrokerctl .*|\1|p' "$unit")
[ -n "$bindir" ] || lab_fail "no certbrokerctl in the unit's ExecStart="
expand() { sed -e "s|%h|$home|g" -e "s|%i|wifi|g" -e "s|%E|$home/.config|g" -e "s|$bindir/certbrokerctl|$CB_BUILD_ROOT/client-lib/certbrokerctl|g"; }
grep '^ExecStartPre=' "$unit" | sed 's/^ExecStartPre=//' | expand | while IFS= read -r line; do
        eval "lab_run_as carol@example.test env HOME=$home $line" || lab_fail "ExecStartPre= failed: $line"
done
start=$(grep '^ExecStart=' "$unit" | sed 's/^ExecStart=//' | expand)
eval "lab_start session-wifi setpriv --reuid=1500001 --regid=1500000 --init-groups --inh-caps=-all -- env HOME=$home $start"
live=$home/.local/share/certbroker/wifi/live
lab_wait_for 60 "carol's deployed certificate" test -s "$live/cert.pem"
lab_assert_eq "$(stat -c %a "$home/.local/share/certbroker/wifi")" 700 "the deployment directory's mode"
lab_assert_eq "$(stat -L -c '%U %a' "$live/key.pem")" "carol@example.test 600" "the deployed key's owner and mode"
lab_assert_contains "$(openssl x509 -in "$live/cert.pem" -noout -text)" "othername: UPN::carol@example.test" \
        "the deployed certificate's UPN"
lab_assert_eq "$(site --cert "$live/cert.pem" --key "$live/key.pem" "https://ndes.example.test:$SITE_PORT/carol/")" 200 \
        "the deployed certificate on carol's page"
lab_assert_contains "$(tail -n 1 "$sd/logs/access.log")" 'user=carol@example.test' "the site's log for the deployed certificate"
lab_stop session-wifi
lab_pass "the user unit's commands deploy carol's own certificate into ~/.local/share/certbroker/wifi, and the TLS server takes it"

# --- the same in the browser's NSS database: a deploy.d file of carol's with Format=nssdb ---
as_carol() { lab_run_as carol@example.test env HOME="$home" "$@"; }
as_carol mkdir -p -m 0700 "$home/.pki/nssdb" "$home/.config/certbroker/deploy.d"
cat >"$home/.config/certbroker/deploy.d/browser.conf" <<CONF
Dir=$home/.local/share/certbroker/browser
Identity=self
Format=pem nssdb
NSSDB=sql:$home/.pki/nssdb
Nickname=carol-ad
CONF
chown carol@example.test: "$home/.config/certbroker/deploy.d/browser.conf"
chmod 0600 "$home/.config/certbroker/deploy.d/browser.conf"
as_carol mkdir -p -m 0700 "$home/.local/share/certbroker/browser"
lab_start session-browser setpriv --reuid=1500001 --regid=1500000 --init-groups --inh-caps=-all -- \
        env HOME="$home" "$CB_BUILD_ROOT/client-lib/certbrokerctl" deploy \
        --config="$home/.config/certbroker/deploy.d/browser.conf"
lab_wait_for 60 "carol's certificate in her NSS database" \
        bash -c "setpriv --reuid=1500001 --regid=1500000 --init-groups -- certutil -L -d 'sql:$home/.pki/nssdb' -n carol-ad >/dev/null 2>&1"
nss_cert=$(as_carol certutil -L -d "sql:$home/.pki/nssdb" -n carol-ad -a | openssl x509 -noout -text)
lab_assert_contains "$nss_cert" "othername: UPN::carol@example.test" "the certificate in ~/.pki/nssdb"
lab_assert_contains "$(as_carol certutil -K -d "sql:$home/.pki/nssdb")" "carol-ad" "its key in ~/.pki/nssdb"
lab_assert_eq "$(as_carol certutil -L -d "sql:$home/.pki/nssdb" -n carol-ad -a | openssl x509 -noout -fingerprint -sha256)" \
        "$(openssl x509 -in "$home/.local/share/certbroker/browser/live/cert.pem" -noout -fingerprint -sha256)" \
        "the database's certificate and the live one"
lab_stop session-browser
lab_pass "carol's own certificate deployed into her browser's NSS database (~/.pki/nssdb, nickname carol-ad) with its key"

# --- renewal keeps the identity ---
ndes ctl validity=16 >/dev/null
pr=$(cb carol@example.test call "$CB_BUS" "$CB_PATH" "$CB_BUS.Manager" Enroll ssasa{sv} "" "" 0 2 identity s self renew b true)
pr=${pr#o \"}; pr=${pr%\"}
lab_assert_eq "$(cb_wait carol@example.test "$pr" 60)" issued "carol's renewing request"
lab_wait_for 40 "the successor of carol's request" bash -c \
        "[ \"\$(busctl --system get-property $CB_BUS $pr $CB_BUS.Request Successor)\" != 'o \"/\"' ]"
ps=$(oprop carol@example.test "$pr" Successor)
lab_assert_eq "$(cb_wait carol@example.test "$ps" 60)" issued "the successor"
lab_assert_contains "$(cb carol@example.test get-property "$CB_BUS" "$ps" "$CB_BUS.Request" Names)" \
        '"upn:carol@example.test" "email:carol@example.test"' "the successor's names"
text=$(cb_prop carol@example.test "$ps" Certificate | openssl x509 -noout -text)
lab_assert_contains "$text" "othername: UPN::carol@example.test" "the successor's UPN"
lab_assert_eq "$(cb_prop carol@example.test "$ps" Subject)" "CN=carol" "the successor's subject"
broker_stop
lab_pass "renewal keeps carol's identity: the successor is decided again and names the same UPN"
