#!/usr/bin/env bash
# The seed's Windows-side steps, broken one at a time with real components, each named by
# CA.Check() and certbrokerctl check: Anonymous Authentication left on for mscep_admin (an
# Apache route without AuthType), the server's ticket key rotated at the KDC (the server can
# no longer decrypt), the service account's key rotated (a stale broker keytab), and Realm=
# not matching the keytab. Delegation and IIS_USRS cannot be simulated here (README table).
set -euo pipefail
: "${CB_SOURCE_ROOT:=$(cd "$(dirname "$0")/../.." && pwd)}"
. "$CB_SOURCE_ROOT/tests/integration/daemon-enter.sh" "$@"

broker_need_ctl
broker_lab
# A second CA whose AdminURL is the same page with Anonymous Authentication on (https: an
# http:// AdminURL with Kerberos is refused). Apache keeps no connection alive here, so no
# SCEP request shares one with a fetch: each fetch comes on a fresh connection and is judged
# (the warning must still come once).
sed -e 's/Default=yes/Default=no/' "$CB_CONF/ca.d/corp.conf" >"$CB_CONF/ca.d/anon.conf"
echo "AdminURL=$LAB_HTTPS_URL/anonymous/certsrv/mscep_admin/" >>"$CB_CONF/ca.d/anon.conf"
lab_apache_stop
echo "KeepAlive Off" >>"$LAB_DIR/apache/httpd.conf"
lab_apache_start
broker_start
wait_tgt() {
        lab_wait_for 20 "ticket-granting ticket" bash -c \
                "[ \"\$(busctl --system get-property $CB_BUS $CB_PATH $CB_BUS.Manager CredentialState)\" = 's \"valid\"' ]"
}
wait_tgt
check() { cb root --timeout=60 call "$CB_BUS" "/org/certbroker/Broker1/ca/$1" "$CB_BUS.CA" Check a{sv} "${@:2}"; }
anon_warnings() { grep -c "CA anon: mscep_admin answered without authentication" "$LAB_DIR/certbrokerd.log" || true; }

# The lab's two pages really differ the way IIS's do: 200 with a Negotiate token, 200 without.
kinit -k -t "$LAB_SVC_KEYTAB" svc-scep >/dev/null
hdr=$(curl -sS --negotiate -u : --cacert "$LAB_TLS_ROOT" -D - -o /dev/null https://ndes.example.test/certsrv/mscep_admin/)
lab_assert_contains "$hdr" "WWW-Authenticate: Negotiate " "the protected page's mutual authentication token"
hdr=$(curl -sS --negotiate -u : --cacert "$LAB_TLS_ROOT" -D - -o /dev/null \
        https://ndes.example.test/anonymous/certsrv/mscep_admin/)
lab_assert_contains "$hdr" "HTTP/1.1 200" "the anonymous page answers"
lab_assert_not_contains "$hdr" "WWW-Authenticate" "the anonymous page's headers"
kdestroy -A
# Those two fetches left two unused challenges in NDES's cache of five: forget them (an IIS
# restart), so that what follows never meets "The password cache is full" by chance of timing.
: >"$NDES_STATE/challenges"

# --- Anonymous Authentication left on ---
out=$(check corp 1 challenge b true)
lab_assert_contains "$out" '"challenge" "ok"' "challenge step of the protected page"
out=$(check anon 1 challenge b true)
for step in configuration keytab ticket-granting-ticket service-ticket tls getcacaps getcacert; do
        lab_assert_contains "$out" "\"$step\" \"ok\"" "anon: Check step $step"
done
lab_assert_contains "$out" '"service-ticket" "ok" "ticket for HTTP/ndes.example.test. Seed: Configuring Windows servers, step 1 (setspn -s http/' \
        "an ok step names the seed step it verified"
lab_assert_contains "$out" '"ticket-granting-ticket" "ok" "valid for svc-scep@EXAMPLE.TEST. Seed: Configuring Kerberos settings' \
        "the ticket-granting ticket step's seed step"
lab_assert_contains "$out" '"challenge" "fail" "Disable Anonymous Authentication on the Microsoft SCEP Admin webpage (mscep_admin): Authentication > Anonymous Authentication > Disable' \
        "the challenge step of a page that never asked for Kerberos"
lab_assert_contains "$out" "anyone who can reach that page can mint enrollment challenges" "why"
lab_assert_contains "$out" "Seed: Configuring Windows servers, step 4" "the seed step"
lab_pass "Check fails the challenge step of an anonymous mscep_admin, naming the seed's step 4"

# Enrollments through that CA go on, with one warning per CA and configuration load. The
# first one takes the challenge the Check fetched; the next ones fetch their own.
paths=()
for n in 1 2 3; do
        paths+=("$(cb_enroll alice anon "anon$n.a.example.test")")
done
for p in "${paths[@]}"; do
        lab_assert_eq "$(cb_wait alice "$p" 60)" issued "an enrollment through the anonymous mscep_admin"
done
lab_assert_eq "$(anon_warnings)" 1 "anonymous warnings for three enrollments (two challenges fetched)"
lab_assert_contains "$(grep "CA anon: mscep_admin answered without authentication" "$LAB_DIR/certbrokerd.log")" \
        "Disable Anonymous Authentication on the Microsoft SCEP Admin webpage" "the warning names the seed step"
cb root call "$CB_BUS" "$CB_PATH" "$CB_BUS.Manager" Reload >/dev/null
p=$(cb_enroll alice anon anon4.a.example.test)
lab_assert_eq "$(cb_wait alice "$p" 60)" issued "an enrollment after the Reload"
lab_assert_eq "$(anon_warnings)" 2 "anonymous warnings after a Reload and one more enrollment"
p=$(cb_enroll alice corp protected.a.example.test)
lab_assert_eq "$(cb_wait alice "$p" 60)" issued "an enrollment through the protected mscep_admin"
lab_assert_eq "$(grep -c "mscep_admin answered without authentication" "$LAB_DIR/certbrokerd.log")" 2 \
        "warnings after an enrollment through the protected page"
lab_pass "enrollments through an anonymous mscep_admin succeed, with one warning per CA and configuration load"

# certbrokerctl check: a checklist, the fix under the failing step; --json carries the ids.
out=$("$CTL" check anon --challenge) && lab_fail "certbrokerctl check anon passed: $out"
echo "$out"
grep -qE '^\[ok\] +getcacert ' <<<"$out" || lab_fail "no '[ok] getcacert' line in: $out"
grep -qx '\[FAIL\] challenge' <<<"$out" || lab_fail "no '[FAIL] challenge' line in: $out"
lab_assert_contains "$(grep -A2 -x '\[FAIL\] challenge' <<<"$out")" \
        "       fix: Disable Anonymous Authentication on the Microsoft SCEP Admin webpage" "the fix under the failing step"
lab_assert_contains "$(grep -A2 -x '\[FAIL\] challenge' <<<"$out")" \
        "       Seed: Configuring Windows servers, step 4" "the seed step under the failing step"
json=$("$CTL" --json check anon --challenge) || true
lab_assert_eq "$(python3 -c 'import json,sys; j=json.load(sys.stdin); print(" ".join(s["step"]+"="+s["result"] for s in j["steps"]))' <<<"$json")" \
        "configuration=ok keytab=ok ticket-granting-ticket=ok service-ticket=ok tls=ok getcacaps=ok getcacert=ok challenge=fail" \
        "check --json step ids and results"
lab_assert_contains "$(python3 -c 'import json,sys; j=json.load(sys.stdin); print([s["seed"] for s in j["steps"] if s["step"] == "challenge"][0])' <<<"$json")" \
        "Seed: Configuring Windows servers, step 4" "check --json seed of the challenge step"
lab_pass "certbrokerctl check prints the steps as a checklist with the fix under the failing one; --json the ids"

# --- The server's ticket key rotated at the KDC, Apache's keytab not updated: the server
# cannot decrypt the broker's new ticket (IIS: the application pool is not the SPN's account,
# useAppPoolCredentials off, or kernel-mode authentication with the machine key). ---
kadmin.local -r EXAMPLE.TEST -q "cpw -randkey HTTP/ndes.example.test" >>"$LAB_DIR/kadmin.log" 2>&1
broker_stop
broker_start
wait_tgt
out=$(check corp 1 challenge b true)
lab_assert_contains "$out" '"service-ticket" "ok"' "service ticket after the server's key rotated"
lab_assert_contains "$out" '"challenge" "fail" "the server ndes.example.test answered https://ndes.example.test/certsrv/mscep_admin/ with 401 although this host obtained a valid Kerberos ticket' \
        "the challenge step when the server cannot decrypt the ticket"
lab_assert_contains "$out" "useAppPoolCredentials=True" "the fix names useAppPoolCredentials"
lab_assert_contains "$out" "export the keytab of HTTP/ndes.example.test again" "the fix names the server's keytab"
lab_assert_contains "$out" "Seed: Configuring Windows servers, step 3" "the seed step"
lab_pass "a ticket the server cannot decrypt (its key rotated at the KDC) names useAppPoolCredentials and the server's keytab"
# Apache gets the new key (-norandkey: the KDC's key stays).
kadmin.local -r EXAMPLE.TEST -q "ktadd -norandkey -k $LAB_HTTP_KEYTAB HTTP/ndes.example.test" >>"$LAB_DIR/kadmin.log" 2>&1

# --- The service account's key rotated (its password changed), the broker's keytab not ---
kadmin.local -r EXAMPLE.TEST -q "cpw -randkey svc-scep" >>"$LAB_DIR/kadmin.log" 2>&1
broker_stop
broker_start
out=$(check corp 0)
lab_assert_contains "$out" '"keytab" "ok"' "the keytab step (it can be read)"
lab_assert_contains "$out" '"ticket-granting-ticket" "fail" "the KDC for EXAMPLE.TEST did not accept the key of svc-scep@EXAMPLE.TEST' \
        "the ticket-granting ticket with a stale keytab"
lab_assert_contains "$out" "the keytab is stale (the service account\\'s password or key version changed after it was made); create a new keytab" \
        "the fix names re-exporting the keytab"
lab_assert_contains "$out" "Seed: Configuring Kerberos settings (Service user credentials" "the seed step"
lab_assert_contains "$out" '"getcacert" "skip"' "steps after the failure"
lab_pass "the service account's key rotated (a stale keytab) names re-exporting the keytab"
broker_stop
kadmin.local -r EXAMPLE.TEST -q "ktadd -norandkey -k $LAB_SVC_KEYTAB svc-scep" >>"$LAB_DIR/kadmin.log" 2>&1

# --- Realm= not matching the keytab ---
sed -i -e 's/^Realm=.*/Realm=OTHER.TEST/' -e 's/^Principal=.*/Principal=svc-scep@OTHER.TEST/' "$CB_CONF/certbroker.conf"
broker_start
out=$(check corp 0)
lab_assert_contains "$out" "\"ticket-granting-ticket\" \"fail\" \"keytab $LAB_SVC_KEYTAB holds keys for svc-scep@EXAMPLE.TEST, not for svc-scep@OTHER.TEST: Realm=OTHER.TEST does not match the realm the keytab was made for (EXAMPLE.TEST)" \
        "the ticket-granting ticket with Realm= not matching the keytab"
lab_assert_contains "$out" "Seed: Configuring Kerberos settings (Active Directory\\'s Kerberos Realm: Realm=)" "the seed step"
lab_pass "Realm= not matching the keytab is named, with the keytab's realm"
broker_stop
