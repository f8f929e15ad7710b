#!/usr/bin/env bash
# NDES emulator, RenewalReq (tests/ndes/README.md, "RenewalReq"): micromdm's scepclient, an
# independent client that sends a RenewalReq when it is given a certificate, renews a certificate
# the emulator issued without a challenge; the emulator refuses a RenewalReq signed by a
# certificate it did not issue, by one no longer valid, for another subject, and every one with
# renewal=refuse; caps_renewal=off drops Renewal from GetCACaps.
set -euo pipefail
. "$CB_SOURCE_ROOT/tests/lab/lab.sh"
lab_enter "$@"
. "$CB_SOURCE_ROOT/tests/integration/ndes-common.sh"
ndes_setup
W=$NDES_WORK

admin_gets() { ndes log | grep -c 'result=issued' || true; }
# renew DIR CN: scepclient with the certificate in DIR (a RenewalReq); no challenge given.
renew() {
        local dir=$1 cn=$2
        (cd "$dir" && timeout 60 scepclient -server-url "$NDES_URL" -private-key key.pem -certificate cert.pem \
                -cn "$cn" >out 2>&1)
}
serial() { openssl x509 -in "$1" -noout -serial; }

c=$(ndes_challenge)
ndes_scepclient "$W/r1" "$c" renew1.example.test || { cat "$W/r1/out" >&2; lab_fail "scepclient enrollment failed"; }
ndes_verify_cert "$W/r1/cert.pem" renew1.example.test
cp "$W/r1/cert.pem" "$W/r1/first.pem"
cp -r "$W/r1" "$W/r1-copy"
gets=$(admin_gets)

# ---- a RenewalReq signed by a certificate the emulator issued: issued, no challenge ----
renew "$W/r1" renew1.example.test || { cat "$W/r1/out" >&2; lab_fail "scepclient renewal failed"; }
lab_assert_eq "$(ndes_scep_log_count 'type=17 .*status=SUCCESS failinfo=-1 why=renewed')" 1 "RenewalReqs issued"
ndes_verify_cert "$W/r1/cert.pem" renew1.example.test
[ "$(serial "$W/r1/cert.pem")" != "$(serial "$W/r1/first.pem")" ] || lab_fail "the renewal returned the old certificate"
lab_assert_eq "$(admin_gets)" "$gets" "challenges fetched for the renewal"
lab_pass "scepclient renews with a RenewalReq signed by the certificate the emulator issued, without a challenge"

# ---- refused: another subject (scepclient reuses a csr.pem it finds: a new one with the CN) ----
rm -f "$W/r1-copy/csr.pem"
renew "$W/r1-copy" other.example.test || true        # scepclient exits 0 on a FAILURE CertRep too
lab_assert_eq "$(ndes_scep_log_count 'type=17 .*status=FAILURE failinfo=2 why=renewal-subject-differs')" 1 \
        "RenewalReq for another subject (badRequest)"

# ---- refused: signed by a certificate the emulator did not issue (self-signed, same key and subject) ----
mkdir -p "$W/self"
cp "$W/r1-copy/key.pem" "$W/self/key.pem"
openssl req -new -x509 -key "$W/self/key.pem" -subj /CN=renew1.example.test -days 30 -out "$W/self/cert.pem" 2>/dev/null
renew "$W/self" renew1.example.test || true        # scepclient exits 0 on a FAILURE CertRep too
lab_assert_eq "$(ndes_scep_log_count 'type=17 .*status=FAILURE failinfo=1 why=renewal-signer-not-issued-here')" 1 \
        "RenewalReq signed by a certificate not issued here (badMessageCheck)"

# ---- refused: the certificate renewed is no longer valid (the emulator's clock 2 years on) ----
ndes ctl clock_offset=$((2 * 366 * 86400)) >/dev/null
rm -f "$W/r1-copy/csr.pem"
renew "$W/r1-copy" renew1.example.test || true        # scepclient exits 0 on a FAILURE CertRep too
lab_assert_eq "$(ndes_scep_log_count 'type=17 .*status=FAILURE failinfo=1 why=renewal-signer-not-valid-now')" 1 \
        "RenewalReq signed by an expired certificate (badMessageCheck)"
ndes ctl clock_offset=0 >/dev/null

# ---- renewal=refuse: an NDES that does not take RenewalReq ----
ndes ctl renewal=refuse >/dev/null
renew "$W/r1-copy" renew1.example.test || true        # scepclient exits 0 on a FAILURE CertRep too
lab_assert_eq "$(ndes_scep_log_count 'type=17 .*status=FAILURE failinfo=2 why=renewal-refused')" 1 "renewal=refuse (badRequest)"
ndes ctl renewal=accept >/dev/null
lab_assert_eq "$(ndes_scep_log_count 'type=17 .*status=SUCCESS')" 1 "RenewalReqs issued in all (the refused ones not)"
lab_pass "refused: another subject, a signer not issued here, an expired signer, and everything with renewal=refuse"

# ---- caps_renewal=off ----
ndes ctl caps_renewal=off >/dev/null
caps=$(curl -sS --max-time 10 "$NDES_URL?operation=GetCACaps" | tr -d '\r' | tr '\n' ' ')
lab_assert_eq "$caps" "POSTPKIOperation SHA-512 SHA-256 SHA-1 DES3" "GetCACaps with caps_renewal=off"
ndes ctl caps_renewal=on >/dev/null
caps=$(curl -sS --max-time 10 "$NDES_URL?operation=GetCACaps" | tr -d '\r' | tr '\n' ' ')
lab_assert_eq "$caps" "POSTPKIOperation Renewal SHA-512 SHA-256 SHA-1 DES3" "GetCACaps with caps_renewal=on"
lab_pass "caps_renewal=off drops Renewal from GetCACaps"
ndes_check_error_log
