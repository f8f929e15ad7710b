#!/usr/bin/env bash
# Transport: failures and their hints, against the real KDC and Apache. A host without an
# HTTP principal (ServicePrincipalUnknown with the setspn command, the server never
# contacted), a server that answers 401 to valid tickets, keytab problems (unreadable, no
# key, stale key version), the KDC down, the web server down.
set -euo pipefail
. "$CB_SOURCE_ROOT/tests/lab/lab.sh"
lab_enter "$@"
. "$CB_SOURCE_ROOT/tests/integration/transport-common.sh"
transport_setup

# ndes-alias.example.test resolves to the same Apache, but has no HTTP/ principal.
before=$(grep -c "ndes-alias" "$LAB_APACHE_ACCESS_LOG" || true)
tf challenge "http://ndes-alias.example.test/certsrv/mscep_admin/" 1
tf_assert_result ServicePrincipalUnknown "host without an HTTP principal"
lab_assert_contains "$(cat "$TF_OUT")" 'setspn -s http/ndes-alias.example.test EXAMPLE\svc-scep' "setspn hint"
lab_assert_contains "$(cat "$TF_OUT")" "KDC_ERR_S_PRINCIPAL_UNKNOWN" "KDC error named"
lab_assert_eq "$(grep -c "ndes-alias" "$LAB_APACHE_ACCESS_LOG" || true)" "$before" "Apache requests for ndes-alias"
grep -q "TGS_REQ.*LOOKING_UP_SERVER.*for HTTP/ndes-alias.example.test@$LAB_REALM, Server not found" "$LAB_KDC_LOG" ||
        lab_fail "the KDC did not see the TGS request for HTTP/ndes-alias.example.test: $(grep TGS_REQ "$LAB_KDC_LOG" | tail -3)"
lab_pass "no HTTP principal: ServicePrincipalUnknown with the setspn command; the web server was not contacted"

# After `setspn` (here: the principal added to Apache's keytab) the same URL works.
lab_kdc_addprinc HTTP/ndes-alias.example.test "$LAB_HTTP_KEYTAB"
# lab_kdc_addprinc leaves keytabs 0600; Apache's workers (www-data) read this one by group.
chmod 0640 "$LAB_HTTP_KEYTAB"
tf challenge "http://ndes-alias.example.test/certsrv/mscep_admin/" 1
tf_assert_result ok "host after adding its HTTP principal"
lab_pass "after adding HTTP/ndes-alias.example.test the fetch succeeds"

# A server that answers 401 even to a valid ticket (IIS kernel-mode auth / useAppPoolCredentials).
tf challenge "$LAB_HTTP_URL/always-401/certsrv/mscep_admin/" 1
tf_assert_result AuthenticationRejected "401 to a valid ticket"
lab_assert_contains "$(cat "$TF_OUT")" "useAppPoolCredentials" "hint: useAppPoolCredentials"
lab_assert_contains "$(cat "$TF_OUT")" "Kernel mode authentication" "hint: kernel-mode authentication"
lab_assert_contains "$(cat "$TF_OUT")" "valid Kerberos ticket for HTTP/ndes.example.test" "says the ticket was valid"
lab_pass "401 to a valid ticket: AuthenticationRejected with the IIS hints"

# Keytab unreadable by the process (alice cannot read root's 0600 keytab).
ART=$LAB_DIR/alice-run
mkdir -m 0700 "$ART"
chown alice "$ART"
TF_RC=0
lab_run_as alice "$TF" --runtime-dir "$ART" --realm "$LAB_REALM" --kdc "127.0.0.1:$LAB_KDC_PORT" \
        --principal "$LAB_SVC_PRINCIPAL" --keytab "$LAB_SVC_KEYTAB" state >"$TF_OUT" 2>&1 || TF_RC=$?
tf_check_sanitizers "$TF_OUT"
lab_assert_eq "$TF_RC" 1 "state as alice exit status ($(cat "$TF_OUT"))"
lab_assert_contains "$(cat "$TF_OUT")" "state=unavailable" "state with an unreadable keytab"
lab_assert_contains "$(cat "$TF_OUT")" "cannot read keytab $LAB_SVC_KEYTAB" "message"
lab_assert_contains "$(cat "$TF_OUT")" "Mode=gss-proxy" "hint"
lab_pass "unreadable keytab: KerberosFailed, state unavailable, hint names Mode=gss-proxy"

# A keytab without the principal's key.
lab_kdc_addprinc other-svc "$LAB_DIR/other.keytab"
tf --keytab "$LAB_DIR/other.keytab" state
lab_assert_contains "$(cat "$TF_OUT")" "state=unavailable" "state with a keytab lacking the key"
lab_assert_contains "$(cat "$TF_OUT")" "holds no key for $LAB_SVC_PRINCIPAL" "message"
lab_pass "keytab without the service user's key: KerberosFailed naming the principal"

# A stale keytab: the account's key changed after the keytab was made.
cp "$LAB_SVC_KEYTAB" "$LAB_DIR/stale.keytab"
kadmin.local -r "$LAB_REALM" -q "cpw -randkey -keepold svc-scep" >/dev/null 2>&1 || true
kadmin.local -r "$LAB_REALM" -q "cpw -randkey svc-scep" >/dev/null 2>&1 ||
        lab_fail "kadmin.local cpw -randkey svc-scep failed"
tf --keytab "$LAB_DIR/stale.keytab" state
lab_assert_contains "$(cat "$TF_OUT")" "state=unavailable" "state with a stale keytab"
lab_assert_contains "$(cat "$TF_OUT")" "stale" "message says stale"
lab_assert_contains "$(cat "$TF_OUT")" "new keytab" "hint: a new keytab"
lab_pass "stale keytab (key version changed): KerberosFailed with the new-keytab hint"
# Give svc-scep its keytab back for the rest.
kadmin.local -r "$LAB_REALM" -q "ktadd -k $LAB_SVC_KEYTAB svc-scep" >/dev/null 2>&1 || lab_fail "ktadd svc-scep failed"

# The web server down: CAUnreachable.
lab_apache_stop
tf challenge "$ADMIN_HTTP" 1
tf_assert_result CAUnreachable "Apache down"
lab_assert_contains "$(cat "$TF_OUT")" "cannot connect to ndes.example.test" "message"
lab_pass "web server down: CAUnreachable naming the host"
lab_apache_start

# The KDC down: KerberosFailed, "cannot contact any KDC", for credentials and for fetches.
lab_kdc_stop
tf state
lab_assert_contains "$(cat "$TF_OUT")" "state=unavailable" "state with the KDC down"
lab_assert_contains "$(cat "$TF_OUT")" "cannot contact any KDC for realm $LAB_REALM" "message"
lab_assert_contains "$(cat "$TF_OUT")" "127.0.0.1:$LAB_KDC_PORT" "message names the KDC"
tf challenge "$ADMIN_HTTP" 1
tf_assert_result KerberosFailed "fetch with the KDC down"
lab_pass "KDC down: KerberosFailed, the message names realm and KDC"
