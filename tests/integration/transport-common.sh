# shellcheck shell=bash
# Shared setup for the transport tests (transport-*.sh). Sourced, not a test itself.
# Needs lab.sh loaded and lab_enter done.

# transport_setup: KDC, Apache with the NDES emulator as its CGI, emulator state, and a
# private runtime directory for the broker's generated krb5 profile.
# Under ASan, leaks inside gssproxy's interposer plugin are not ours (tests/lsan.supp).
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$CB_SOURCE_ROOT/tests/lsan.supp:print_suppressions=0}

transport_setup() {
        TF=$CB_BUILD_ROOT/tests/integration/transport-fetch
        [ -x "$TF" ] || lab_fail "transport: $TF is missing (meson compile -C \$builddir tests/integration/transport-fetch)"
        # CB_NDES_EMULATOR: another build of the emulator (e.g. a non-ASan one when this build is ASan).
        NDES_EMULATOR=${CB_NDES_EMULATOR:-$CB_BUILD_ROOT/tests/ndes/ndes-emulator}
        [ -x "$NDES_EMULATOR" ] ||
                lab_fail "transport: $NDES_EMULATOR is missing (meson compile -C \$builddir tests/ndes/ndes-emulator)"
        LAB_NDES_CGI=$NDES_EMULATOR
        export LAB_NDES_CGI
        lab_kdc
        lab_apache
        "$NDES_EMULATOR" init --state "$LAB_NDES_STATE_DIR" >/dev/null || lab_fail "transport: ndes-emulator init failed"
        TRT=$LAB_DIR/transport-run
        mkdir -m 0700 "$TRT"
        ADMIN_HTTP=$LAB_HTTP_URL/certsrv/mscep_admin/
        ADMIN_HTTPS=$LAB_HTTPS_URL/certsrv/mscep_admin/
        TF_OUT=$LAB_DIR/transport-out
}

ndes_ctl() {
        "$NDES_EMULATOR" ctl --state "$LAB_NDES_STATE_DIR" "$@" >/dev/null || lab_fail "ndes-emulator ctl $* failed"
}

# tf ARGS...: run transport-fetch as root with the lab's realm, KDC and svc-scep keytab;
# output in $TF_OUT, exit status in $TF_RC (never fails the script by itself).
tf() {
        TF_RC=0
        "$TF" --runtime-dir "$TRT" --realm "$LAB_REALM" --kdc "127.0.0.1:$LAB_KDC_PORT" \
                --principal "$LAB_SVC_PRINCIPAL" --keytab "$LAB_SVC_KEYTAB" --suffix example.test \
                --timeout 10 "$@" >"$TF_OUT" 2>&1 || TF_RC=$?
        tf_check_sanitizers "$TF_OUT"
}

# Under -Db_sanitize, a report from ASan/UBSan/LSan in the driver's output fails the test.
tf_check_sanitizers() {
        if grep -q 'Sanitizer\|runtime error:' "$1"; then
                lab_fail "transport-fetch: sanitizer report: $(grep -m3 -A8 'Sanitizer\|runtime error:' "$1")"
        fi
}

# Count KDC exchanges for svc-scep: AS issued (TGT) and TGS issued for HTTP/.
kdc_as_count() {
        grep -c "AS_REQ.*ISSUE.*svc-scep@$LAB_REALM for krbtgt/" "$LAB_KDC_LOG" || true
}
kdc_tgs_count() {
        grep -c "TGS_REQ.*ISSUE.*svc-scep@$LAB_REALM for HTTP/" "$LAB_KDC_LOG" || true
}

# The result line of the last tf run.
tf_result() {
        grep -m1 '^result=' "$TF_OUT" || true
}

tf_assert_result() {
        local want=$1 what=$2 got
        got=$(tf_result)
        case "$got" in
        "result=$want "*) ;;
        *) lab_fail "$what: expected result=$want, got: $(cat "$TF_OUT")" ;;
        esac
}
