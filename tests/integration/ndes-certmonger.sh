#!/usr/bin/env bash
# NDES emulator with certmonger (an independent SCEP client: its scep-submit helper, GET
# only): enrollment with DNS names, Windows 2012 replies (RSA-OAEP, SHA-1, no
# certificates), RA certificates in any order, PENDING then approval, a bad challenge.
# certmonger builds the pkiMessage in its daemon and hands it to scep-submit, so the
# daemon runs too: on a private socket (-L -P), its state in the lab directory.
set -euo pipefail
. "$CB_SOURCE_ROOT/tests/lab/lab.sh"
lab_enter "$@"
. "$CB_SOURCE_ROOT/tests/integration/ndes-common.sh"
ndes_setup
W=$NDES_WORK

CM=$LAB_DIR/certmonger
mkdir -m 0700 "$CM" "$CM/cas" "$CM/requests" "$CM/local" "$CM/tmp" "$CM/out"
export CERTMONGER_CONFIG_DIR=$CM CERTMONGER_REQUESTS_DIR=$CM/requests CERTMONGER_CAS_DIR=$CM/cas \
        CERTMONGER_LOCAL_CA_DIR=$CM/local CERTMONGER_TMPDIR=$CM/tmp CERTMONGER_SYSTEM_LOCK_FILE=$CM/lock
export CERTMONGER_PVT_ADDRESS=unix:path=$CM/socket
# no -d: certmonger's debug log would print the CSR, challenge included
lab_start certmonger certmonger -n -L -P "$CM/socket"
lab_wait_for 10 "certmonger on $CM/socket" getcert list-cas
openssl x509 -in "$NDES_STATE/ca.crt" -out "$CM/ca.pem"

# cm_status ID: certmonger's status word for a request
cm_status() {
        getcert list -i "$1" | sed -n 's/^[[:space:]]*status: //p'
}

# cm_expect ID STATUS WHAT: the request's status, with certmonger's view when it differs
cm_expect() {
        local st
        st=$(cm_status "$1")
        [ "$st" = "$2" ] || { getcert list -i "$1" >&2; tail -n 5 "$NDES_STATE/scep.log" >&2; }
        lab_assert_eq "$st" "$2" "$3"
}

# cm_enroll CA ID CN CHALLENGE [DNS...]: request and wait for a final state; prints it.
cm_enroll() {
        local ca=$1 id=$2 cn=$3 challenge=$4 args=() d
        shift 4
        for d in "$@"; do args+=(-D "$d"); done
        timeout 60 getcert request -c "$ca" -I "$id" -f "$CM/out/$id.crt" -k "$CM/out/$id.key" \
                -N "CN=$cn" "${args[@]}" -L "$challenge" -w >/dev/null 2>&1 || true
        cm_status "$id"
}

getcert add-scep-ca -c ndes -u "$NDES_URL" -N "$CM/ca.pem" >/dev/null ||
        lab_fail "getcert add-scep-ca failed"

# --- default (Windows 2016-2022) enrollment with two DNS names
cm_enroll ndes cm1 cm1.example.test "$(ndes_challenge)" cm1.example.test www.cm1.example.test >/dev/null
cm_expect cm1 MONITORING "certmonger status (win2016)"
ndes_verify_cert "$CM/out/cm1.crt" cm1.example.test cm1.example.test www.cm1.example.test
lab_assert_eq "$(openssl x509 -in "$CM/out/cm1.crt" -noout -pubkey)" "$(openssl pkey -in "$CM/out/cm1.key" -pubout)" "certmonger's key in the certificate"
lab_assert_eq "$(ndes_scep_log_count 'method=GET type=19 .* status=SUCCESS')" 1 "GET PKCSReq SUCCESS lines in scep.log"
lab_assert_eq "$(ndes_scep_log_count 'method=POST')" 0 "POSTs in scep.log (certmonger only uses GET)"
lab_pass "certmonger enrolls by GET: certificate chains to the emulator CA, subject and both DNS names"

# --- Windows 2012 replies: SHA-1, no certificates. (certmonger's scep-submit cannot
# decrypt RSA-OAEP envelopes, the third win2012 trait: it stops in NEED_GUIDANCE. The
# OAEP replies are checked with openssl in the pending test below.)
ndes ctl caps=win2012 reply_oaep=off
cm_enroll ndes cm2 cm2.example.test "$(ndes_challenge)" cm2.example.test >/dev/null
cm_expect cm2 MONITORING "certmonger status (win2012 replies)"
ndes_verify_cert "$CM/out/cm2.crt" cm2.example.test cm2.example.test
lab_pass "caps=win2012 (SHA-1 CertRep without certificates; OAEP off): certmonger enrolls"
ndes ctl caps=win2016 reply_oaep=auto

# --- RA certificates in another order (a client must pick them by key usage)
for order in ca,enc,sign enc,ca,sign; do
        ndes ctl ra_order=$order
        name=ndes-${order//,/-}
        getcert add-scep-ca -c "$name" -u "$NDES_URL" -N "$CM/ca.pem" >/dev/null || lab_fail "add-scep-ca $name"
        id=cm-${order//,/-}
        cm_enroll "$name" "$id" "$id.example.test" "$(ndes_challenge)" "$id.example.test" >/dev/null
        cm_expect "$id" MONITORING "certmonger status (ra_order=$order)"
        ndes_verify_cert "$CM/out/$id.crt" "$id.example.test" "$id.example.test"
done
ndes ctl ra_order=sign,enc,ca
lab_pass "GetCACert in orders ca,enc,sign and enc,ca,sign: certmonger enrolls"

# --- PENDING until approved. certmonger's request is kept (keep_requests) and replayed
# by hand in win2012 mode after the approval, to check an RSA-OAEP SUCCESS reply.
ndes ctl pending=on keep_requests=on
getcert request -c ndes -I cm3 -f "$CM/out/cm3.crt" -k "$CM/out/cm3.key" -N CN=cm3.example.test \
        -D cm3.example.test -L "$(ndes_challenge)" >/dev/null
lab_wait_for 30 "certmonger to see PENDING (CA_WORKING)" bash -c "getcert list -i cm3 | grep -q 'status: CA_WORKING'"
lab_assert_eq "$(ndes_scep_log_count 'type=19 .* status=PENDING')" 1 "PENDING replies in scep.log"
cp "$NDES_STATE/last-request.der" "$W/cm3-req.der"
pending=$(ndes pending)
[ -n "$pending" ] || lab_fail "ndes-emulator pending lists nothing"
lab_assert_eq "$pending" "$(ndes_cms_attr "$W/cm3-req.der" 2.16.840.1.113733.1.9.7)" "pending transactionID"
[ ! -e "$CM/out/cm3.crt" ] || lab_fail "certificate written while the request is pending"
ndes approve "$pending" >/dev/null

ndes ctl caps=win2012
lab_assert_eq "$(ndes_get_pkiop "$W/cm3-req.der" "$W/cm3-rep.der")" 200 "replayed request (win2012) status"
lab_assert_eq "$(ndes_cms_attr "$W/cm3-rep.der" 2.16.840.1.113733.1.9.3)" 0 "pkiStatus of the approved transaction"
lab_assert_eq "$(ndes_scep_log_count 'status=SUCCESS failinfo=-1 why=approved')" 1 "approved SUCCESS lines in scep.log after the openssl replay"
openssl cms -verify -inform DER -in "$W/cm3-rep.der" -certfile "$NDES_STATE/ra-sign.crt" -CAfile "$NDES_STATE/ca.crt" \
        -purpose any -binary -out "$W/cm3-env.der" 2>"$W/verify.err" || lab_fail "win2012 reply signature: $(cat "$W/verify.err")"
lab_assert_contains "$(openssl cms -cmsout -print -inform DER -in "$W/cm3-env.der" | grep -A1 keyEncryptionAlgorithm)" "rsaesOaep" "key transport of the win2012 reply"
openssl cms -decrypt -inform DER -in "$W/cm3-env.der" -inkey "$CM/out/cm3.key" -binary -out "$W/cm3-p7.der" 2>"$W/decrypt.err" ||
        lab_fail "decrypting the OAEP envelope with certmonger's key: $(cat "$W/decrypt.err")"
openssl pkcs7 -inform DER -in "$W/cm3-p7.der" -print_certs -out "$W/cm3-p7.pem"
lab_assert_contains "$(openssl x509 -in "$W/cm3-p7.pem" -noout -subject)" "cm3.example.test" "first certificate of the degenerate PKCS#7"
lab_assert_eq "$(openssl x509 -in "$W/cm3-p7.pem" -noout -pubkey)" "$(openssl pkey -in "$CM/out/cm3.key" -pubout)" "key of the issued certificate"
ndes ctl caps=win2016 keep_requests=off
lab_pass "win2012 SUCCESS reply: SHA-1 signature by the RA, RSA-OAEP envelope decryptable by the requester, issued cert inside"

timeout 60 getcert resubmit -i cm3 -w >/dev/null 2>&1 || true
cm_expect cm3 MONITORING "certmonger status after approval"
ndes_verify_cert "$CM/out/cm3.crt" cm3.example.test cm3.example.test
# certmonger polls a pending request on its own as well as on resubmit: how often it asked
# between the approval and now depends on its timer, so at least once more than the replay.
approved=$(ndes_scep_log_count 'status=SUCCESS failinfo=-1 why=approved')
[ "$approved" -ge 2 ] || lab_fail "approved SUCCESS lines in scep.log (openssl replay, certmonger): expected at least 2, got $approved"
lab_assert_eq "$(ndes pending)" "" "pending list after approval"
ndes ctl pending=off
lab_pass "pending=on: certmonger waits (CA_WORKING); after 'ndes-emulator approve' it gets the certificate"

# --- a challenge NDES never issued
cm_enroll ndes cm4 cm4.example.test 0123456789ABCDEF cm4.example.test >/dev/null
cm_expect cm4 CA_REJECTED "certmonger status with an unknown challenge"
lab_assert_eq "$(ndes_scep_log_count 'status=FAILURE failinfo=1 why=challenge-unknown-or-expired')" 1 "badMessageCheck in scep.log"
lab_pass "unknown challenge: certmonger's request is rejected (FAILURE badMessageCheck)"

# --- keyUsage comes from the CSR (NDES picks the template by it)
timeout 60 getcert request -c ndes -I cm5 -f "$CM/out/cm5.crt" -k "$CM/out/cm5.key" -N CN=cm5.example.test \
        -D cm5.example.test -u digitalSignature -L "$(ndes_challenge)" -w >/dev/null 2>&1 || true
cm_expect cm5 MONITORING "certmonger status (keyUsage digitalSignature)"
ndes_verify_cert "$CM/out/cm5.crt" cm5.example.test cm5.example.test
lab_assert_eq "$(openssl x509 -in "$CM/out/cm5.crt" -noout -ext keyUsage | tail -n 1 | sed 's/^ *//')" "Digital Signature" "keyUsage of the issued certificate"
lab_assert_contains "$(getcert list -i cm5)" "certificate template/profile: SignatureTemplate" "template name extension (as certmonger reads it)"
lab_pass "keyUsage digitalSignature in the CSR: same keyUsage and the SignatureTemplate name in the certificate"

ndes_check_error_log
