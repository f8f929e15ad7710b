#!/usr/bin/env bash
# Transport, Mode=gss-proxy: the process cannot read the keytab (root 0600; it runs as
# alice); gssproxy holds it. Challenges still arrive; the keytab is never opened.
set -euo pipefail
. "$CB_SOURCE_ROOT/tests/lab/lab.sh"
lab_enter "$@"
. "$CB_SOURCE_ROOT/tests/integration/transport-common.sh"
transport_setup
lab_gssproxy alice

ART=$LAB_DIR/alice-run
mkdir -m 0700 "$ART"
chown alice "$ART"
lab_run_as alice test -r "$LAB_SVC_KEYTAB" && lab_fail "alice can read $LAB_SVC_KEYTAB: the test proves nothing"

run_alice() {
        TF_RC=0
        lab_run_as alice "$TF" --runtime-dir "$ART" --realm "$LAB_REALM" --kdc "127.0.0.1:$LAB_KDC_PORT" \
                --principal "$LAB_SVC_PRINCIPAL" --keytab "$LAB_SVC_KEYTAB" --suffix example.test --timeout 10 \
                "$@" >"$TF_OUT" 2>&1 || TF_RC=$?
        tf_check_sanitizers "$TF_OUT"
}

# Keytab mode as alice fails: she cannot read it.
run_alice challenge "$ADMIN_HTTP" 1
tf_assert_result KerberosFailed "keytab mode as alice"
lab_assert_contains "$(cat "$TF_OUT")" "cannot read keytab" "message"

# gss-proxy mode as alice: works.
run_alice --mode gss-proxy challenge "$ADMIN_HTTP" 3
lab_assert_eq "$TF_RC" 0 "gss-proxy fetches ($(cat "$TF_OUT"))"
lab_assert_eq "$(grep -c '^result=ok' "$TF_OUT")" 3 "challenges through gss-proxy"
lab_assert_contains "$(tail -1 "$LAB_APACHE_ACCESS_LOG")" "svc-scep@$LAB_REALM" "Apache saw svc-scep"
lab_pass "gss-proxy mode: 3 challenges as alice, who cannot read the keytab"

run_alice --mode gss-proxy state
lab_assert_eq "$TF_RC" 0 "gss-proxy state ($(cat "$TF_OUT"))"
lab_assert_contains "$(cat "$TF_OUT")" "state=valid" "state"
lab_pass "gss-proxy mode: CredentialState valid"

# gss-proxy mode with gssproxy gone: KerberosFailed, naming gss-proxy.
lab_stop gssproxy
run_alice --mode gss-proxy challenge "$ADMIN_HTTP" 1
case "$(tf_result)" in
result=KerberosFailed*|result=AuthenticationRejected*) ;;
*) lab_fail "gss-proxy down: expected KerberosFailed, got $(cat "$TF_OUT")" ;;
esac
lab_pass "gss-proxy down: $(tf_result | cut -d' ' -f1)"
