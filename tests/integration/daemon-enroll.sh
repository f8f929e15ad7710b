#!/usr/bin/env bash
# certbrokerd end to end on the real lab: KDC, Apache + mod_auth_gssapi in front of the NDES
# emulator, a private system bus loading ipc/'s policy. Unprivileged tenants enroll with busctl;
# the issued certificate verifies and carries exactly the requested names; TakeKey works once;
# another tenant gets AccessDenied on everything; names outside a tenant's rules or the suffix
# are refused before any traffic.
set -euo pipefail
: "${CB_SOURCE_ROOT:=$(cd "$(dirname "$0")/../.." && pwd)}"
. "$CB_SOURCE_ROOT/tests/integration/daemon-enter.sh" "$@"

broker_lab
broker_start

# ---- alice (group tenant-a) enrolls ----
path=$(cb_enroll alice corp web.a.example.test) || lab_fail "alice's Enroll failed"
lab_assert_contains "$path" "$CB_PATH/request/" "request path"
state=$(cb_wait alice "$path" 60)
if [ "$state" != issued ]; then
        cat "$LAB_DIR/certbrokerd.log" >&2
        lab_fail "alice's request ended '$state', error: $(cb_prop alice "$path" ErrorMessage)"
fi
lab_pass "alice enrolled web.a.example.test through Kerberos and mscep_admin: $state"

cb_prop alice "$path" Certificate >"$LAB_DIR/alice.crt"
ndes_verify_cert "$LAB_DIR/alice.crt" web.a.example.test web.a.example.test
lab_pass "the certificate chains to the NDES CA with exactly the requested name"

lab_assert_eq "$(cb alice get-property "$CB_BUS" "$path" "$CB_BUS.Request" Owner)" "u 2001" "Owner"
lab_assert_eq "$(cb alice get-property "$CB_BUS" "$path" "$CB_BUS.Request" KeyAvailable)" "b true" "KeyAvailable before TakeKey"

# ---- bob (another tenant) can see and do nothing with it ----
for prop in Id CA Label Subject Key Usage Names Owner State Error ErrorMessage FailInfo TransactionId \
            Certificate Chain Serial NotBefore NotAfter Created Updated NextAttempt Attempts KeyAvailable; do
        if out=$(cb bob get-property "$CB_BUS" "$path" "$CB_BUS.Request" "$prop" 2>&1); then
                lab_fail "bob read alice's $prop: $out"
        fi
        lab_assert_contains "$out" "belongs to another user" "bob reading $prop"
done
for method in "TakeKey" "Cancel" "Remove" "Wait t 0"; do
        # shellcheck disable=SC2086
        if out=$(cb bob call "$CB_BUS" "$path" "$CB_BUS.Request" $method 2>&1); then
                lab_fail "bob called $method on alice's request: $out"
        fi
        lab_assert_contains "$out" "belongs to another user" "bob calling $method"
done
lab_assert_eq "$(cb bob call "$CB_BUS" "$CB_PATH" "$CB_BUS.Manager" ListRequests)" "a(sso) 0" "bob's ListRequests"
lab_pass "bob gets AccessDenied on every property and method of alice's request"

# ---- TakeKey once; the key matches the certificate ----
key=$(cb alice call "$CB_BUS" "$path" "$CB_BUS.Request" TakeKey)
key=${key#s \"}
printf '%b' "${key%\"}" >"$LAB_DIR/alice.key"
lab_assert_contains "$(head -1 "$LAB_DIR/alice.key")" "BEGIN PRIVATE KEY" "TakeKey returns PKCS#8 PEM"
lab_assert_eq "$(openssl pkey -in "$LAB_DIR/alice.key" -pubout | sha256sum)" \
        "$(openssl x509 -in "$LAB_DIR/alice.crt" -noout -pubkey | sha256sum)" "key matches certificate"
if out=$(cb alice call "$CB_BUS" "$path" "$CB_BUS.Request" TakeKey 2>&1); then
        lab_fail "a second TakeKey succeeded"
fi
lab_assert_contains "$out" "already taken" "second TakeKey"
lab_assert_eq "$(cb alice get-property "$CB_BUS" "$path" "$CB_BUS.Request" KeyAvailable)" "b false" "KeyAvailable after TakeKey"
lab_pass "TakeKey works once, the key matches the certificate, then KeyAlreadyTaken"

# ---- bob enrolls an EC key for a deeper name ----
bpath=$(cb bob call "$CB_BUS" "$CB_PATH" "$CB_BUS.Manager" Enroll ssasa{sv} "" "CN=api.x.b.example.test,O=Tenant B" \
        2 api.x.b.example.test www.b.example.test 1 key s ec:p256) || lab_fail "bob's Enroll failed"
bpath=${bpath#o \"}
bpath=${bpath%\"}
state=$(cb_wait bob "$bpath" 60)
[ "$state" = issued ] || lab_fail "bob's request ended '$state': $(cb_prop bob "$bpath" ErrorMessage)"
cb_prop bob "$bpath" Certificate >"$LAB_DIR/bob.crt"
ndes_verify_cert "$LAB_DIR/bob.crt" api.x.b.example.test api.x.b.example.test www.b.example.test
lab_assert_contains "$(openssl x509 -in "$LAB_DIR/bob.crt" -noout -subject -nameopt RFC2253)" "O=Tenant B" "bob's subject"
lab_assert_contains "$(openssl x509 -in "$LAB_DIR/bob.crt" -noout -text)" "id-ecPublicKey" "bob's key type"
lab_pass "bob enrolled an EC P-256 certificate with a subject DN and two names"

# ---- root, with no rule (RootBypassesRules=yes), any name under the suffix ----
rpath=$(cb_enroll root corp host.infra.example.test) || lab_fail "root's Enroll failed"
state=$(cb_wait root "$rpath" 60)
[ "$state" = issued ] || lab_fail "root's request ended '$state': $(cb_prop root "$rpath" ErrorMessage)"
cb_prop root "$rpath" Certificate >"$LAB_DIR/root.crt"
ndes_verify_cert "$LAB_DIR/root.crt" host.infra.example.test host.infra.example.test
if out=$(cb_enroll root corp host.example.org 2>&1); then
        lab_fail "root was allowed a name outside the suffix"
fi
lab_assert_contains "$out" "not under the permitted suffix" "root outside the suffix"
# alice may not see root's request either (root sees everyone's: checked below)
if cb alice get-property "$CB_BUS" "$rpath" "$CB_BUS.Request" State >/dev/null 2>&1; then
        lab_fail "alice read root's request"
fi
lab_pass "root enrolls any name under the suffix without a rule, and nothing outside it"

# ---- refusals happen before any traffic ----
before=$(wc -l <"$LAB_APACHE_ACCESS_LOG")
for name in web.b.example.test evilexample.test web.a.example.test.evil.attacker.test 127.0.0.1 WEB.A.EXAMPLE.TEST..; do
        if out=$(cb alice call "$CB_BUS" "$CB_PATH" "$CB_BUS.Manager" Enroll ssasa{sv} corp "" 1 "$name" 0 2>&1); then
                lab_fail "alice's Enroll of '$name' was accepted: $out"
        fi
        case "$out" in
        *NameNotPermitted*|*"not permitted"*|*"not under"*|*"outside"*|*"no rule"*|*"IP"*|*"empty label"*) ;;
        *) lab_fail "alice's Enroll of '$name' failed without naming the refusal: $out" ;;
        esac
done
if out=$(cb alice call "$CB_BUS" "$CB_PATH" "$CB_BUS.Manager" Enroll ssasa{sv} corp "" 1 x.a.example.test 1 bogus s 1 2>&1); then
        lab_fail "an unknown option was accepted"
fi
lab_assert_contains "$out" "Unknown option 'bogus'" "unknown option"
lab_assert_eq "$(wc -l <"$LAB_APACHE_ACCESS_LOG")" "$before" "Apache requests during refused Enrolls"
lab_pass "out-of-policy, lookalike and IP names are refused with a reason, and nothing reaches NDES"

# ---- CheckAccess: the same decision, no network ----
out=$(cb alice call "$CB_BUS" "$CB_PATH" "$CB_BUS.Manager" CheckAccess ssasa{sv} corp "" 1 mail.a.example.test 0)
lab_assert_contains "$out" 'true "tenant-a"' "CheckAccess allowed"
out=$(cb alice call "$CB_BUS" "$CB_PATH" "$CB_BUS.Manager" CheckAccess ssasa{sv} corp "" 1 mail.b.example.test 0)
lab_assert_contains "$out" "bss false" "CheckAccess denied"
lab_assert_eq "$(wc -l <"$LAB_APACHE_ACCESS_LOG")" "$before" "Apache requests during CheckAccess"
lab_pass "CheckAccess answers the policy decision without traffic"

# ---- root: ListRequests sees all; ListCAs; properties ----
n=$(cb root call "$CB_BUS" "$CB_PATH" "$CB_BUS.Manager" ListRequests | awk '{print $2}')
lab_assert_eq "$n" 3 "root's ListRequests count"
lab_assert_contains "$(cb alice call "$CB_BUS" "$CB_PATH" "$CB_BUS.Manager" ListCAs)" '"corp" "/org/certbroker/Broker1/ca/corp"' "ListCAs"
lab_assert_eq "$(cb alice get-property "$CB_BUS" "$CB_PATH" "$CB_BUS.Manager" CredentialState)" 's "valid"' "CredentialState"
lab_assert_eq "$(cb alice get-property "$CB_BUS" "$CB_PATH" "$CB_BUS.Manager" Realm)" 's "EXAMPLE.TEST"' "Realm"

# ---- the log never holds a challenge or a key ----
ndes log >"$LAB_DIR/ndes.log" 2>/dev/null || true
lab_assert_file_lacks "$LAB_DIR/certbrokerd.log" "PRIVATE KEY" "certbrokerd log"
lab_assert_file_lacks "$LAB_DIR/certbrokerd.log" "challenge password is" "certbrokerd log"
lab_pass "done"
broker_stop
