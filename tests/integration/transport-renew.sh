#!/usr/bin/env bash
# Transport: credentials are renewed before they expire, and reacquired after a KDC outage.
# svc-scep's tickets live 16 s here; the driver fetches a challenge every second.
set -euo pipefail
. "$CB_SOURCE_ROOT/tests/lab/lab.sh"
lab_enter "$@"
. "$CB_SOURCE_ROOT/tests/integration/transport-common.sh"
transport_setup
ndes_ctl cache_size=1000

out=$(kadmin.local -r "$LAB_REALM" -q 'modprinc -maxlife "16 seconds" svc-scep' 2>&1) || true
lab_assert_contains "$out" "Principal \"svc-scep@$LAB_REALM\" modified." "kadmin modprinc -maxlife"

W=$LAB_DIR/watch.out
"$TF" --runtime-dir "$TRT" --realm "$LAB_REALM" --kdc "127.0.0.1:$LAB_KDC_PORT" \
        --principal "$LAB_SVC_PRINCIPAL" --keytab "$LAB_SVC_KEYTAB" --suffix example.test --timeout 10 \
        watch "$ADMIN_HTTP" 120 >"$W" 2>&1 &
watch_pid=$!
lab_on_exit "kill $watch_pid 2>/dev/null || true"

valid_expiries() { grep 'state=valid .* error=-$' "$W" | sed 's/.*expiry_usec=\([0-9]*\).*/\1/' | sort -u | wc -l; }
renewed() { [ "$(valid_expiries)" -ge 2 ]; }

lab_wait_for 10 "the first challenge" grep -q '^t=.*result=ok' "$W"
lab_wait_for 20 "a renewed ticket (second expiry)" renewed
grep -q 'state=expired\|state=unavailable' "$W" && lab_fail "credentials lapsed before renewal: $(cat "$W")"
grep -q 'result=KerberosFailed' "$W" && lab_fail "a fetch failed while renewing: $(cat "$W")"
lab_pass "TGT renewed before expiry (16 s tickets), fetches uninterrupted"

# KDC down: the ticket runs out, state becomes expired, fetches fail with KerberosFailed.
lab_kdc_stop
lab_wait_for 30 "state=expired after the KDC went away" grep -q 'state=expired' "$W"
lab_wait_for 10 "a fetch failing with KerberosFailed" grep -q 'result=KerberosFailed' "$W"
lab_pass "KDC down: CredentialState expired once the ticket ran out; fetches KerberosFailed"

# KDC back: reacquired (backoff retries), fetches succeed again.
lines=$(wc -l <"$W")
lab_kdc_start
lab_wait_for 15 "state=valid after the KDC came back" sh -c "tail -n +$((lines + 1)) '$W' | grep -q 'state=valid .* error=-\$'"
lab_wait_for 10 "a challenge after recovery" sh -c "tail -n +$((lines + 1)) '$W' | grep -q 'result=ok'"
lab_pass "KDC back: credentials reacquired with backoff, fetches succeed"
kill "$watch_pid" 2>/dev/null || true
wait "$watch_pid" 2>/dev/null || true
tf_check_sanitizers "$W"
