#!/usr/bin/env bash
# NDES emulator, mscep.dll: micromdm's scepclient (an independent SCEP client) enrolls
# with a challenge fetched over Kerberos; the CertRep details NDES clients rely on
# (FAILURE/badMessageCheck with a 0x00 content and the MS HRESULT, nonces, signer);
# GetCACaps/GetCACert; win2012 POST; IIS's 404.15 for a long GET; hostile input.
set -euo pipefail
. "$CB_SOURCE_ROOT/tests/lab/lab.sh"
lab_enter "$@"
. "$CB_SOURCE_ROOT/tests/integration/ndes-common.sh"
ndes_setup
ndes ctl keep_requests=on
W=$NDES_WORK
OID=2.16.840.1.113733.1.9

# --- GetCACaps: Windows 2016-2022 words, CRLF separated
caps=$(curl -sS --max-time 10 "$NDES_URL?operation=GetCACaps" | od -An -c | tr -s ' \n' ' ')
lab_assert_contains "$caps" 'P O S T P K I O p e r a t i o n \r \n R e n e w a l \r \n S H A - 5 1 2 \r \n S H A - 2 5 6 \r \n S H A - 1 \r \n D E S 3' "GetCACaps (win2016)"
lab_pass "GetCACaps: POSTPKIOperation Renewal SHA-512 SHA-256 SHA-1 DES3, CRLF"

# --- GetCACert: RA signing, RA encryption and CA in a degenerate PKCS#7, order configurable
ctype=$(curl -sS --max-time 10 -o "$W/cacert.der" -w '%{content_type}' "$NDES_URL?operation=GetCACert&message=0")
lab_assert_eq "$ctype" "application/x-x509-ca-ra-cert" "GetCACert content type"
ku_order() {
        openssl pkcs7 -inform DER -in "$1" -print_certs -text -noout |
                grep -A1 'X509v3 Key Usage' | grep -v -e 'Key Usage' -e '^--' | sed 's/^ *//' | tr '\n' '|'
}
lab_assert_eq "$(ku_order "$W/cacert.der")" "Digital Signature|Key Encipherment|Digital Signature, Certificate Sign, CRL Sign|" "GetCACert order (sign,enc,ca)"
ndes ctl ra_order=ca,enc,sign
curl -sS --max-time 10 -o "$W/cacert2.der" "$NDES_URL?operation=GetCACert"
lab_assert_eq "$(ku_order "$W/cacert2.der")" "Digital Signature, Certificate Sign, CRL Sign|Key Encipherment|Digital Signature|" "GetCACert order (ca,enc,sign)"
lab_pass "GetCACert: 3 certificates (RA sign, RA encrypt, CA) as application/x-x509-ca-ra-cert, order follows ra_order"

# --- scepclient enrolls (POST, since POSTPKIOperation is offered)
c=$(ndes_challenge)
ndes_scepclient "$W/sc1" "$c" scep1.example.test || { cat "$W/sc1/out" >&2; lab_fail "scepclient enrollment failed"; }
ndes_verify_cert "$W/sc1/cert.pem" scep1.example.test
lab_assert_eq "$(openssl x509 -in "$W/sc1/cert.pem" -noout -pubkey)" "$(openssl pkey -in "$W/sc1/key.pem" -pubout)" "issued certificate carries the CSR's key"
lab_assert_eq "$(ndes_scep_log_count 'method=POST type=19 .* status=SUCCESS')" 1 "POST PKCSReq SUCCESS lines in scep.log"
cp "$NDES_STATE/last-request.der" "$W/req1.der"
lab_pass "scepclient (micromdm) enrolls with a Kerberos-fetched challenge; cert chains to the emulator CA, right subject and key"

# --- the same over https (Apache's TLS in front of the CGI; the challenge over https too)
c=$(curl -sS --max-time 10 --cacert "$LAB_TLS_ROOT" --negotiate -u : "$LAB_HTTPS_URL/certsrv/mscep_admin/" |
        tail -c +3 | iconv -f UTF-16LE -t UTF-8 | sed -n 's/.*password is: <B> \([0-9A-F]*\) <\/B>.*/\1/p')
[ ${#c} = 16 ] || lab_fail "no challenge from mscep_admin over https"
mkdir -p "$W/sc-tls"
(cd "$W/sc-tls" && SSL_CERT_FILE=$LAB_TLS_ROOT timeout 60 scepclient -server-url "$LAB_HTTPS_URL/certsrv/mscep/mscep.dll" \
        -private-key key.pem -certificate cert.pem -challenge "$c" -cn tls.example.test >out 2>&1) ||
        { cat "$W/sc-tls/out" >&2; lab_fail "scepclient enrollment over https failed"; }
ndes_verify_cert "$W/sc-tls/cert.pem" tls.example.test
lab_pass "scepclient enrolls over https too"

# --- The same request again: its challenge is used up -> FAILURE badMessageCheck, NDES style
code=$(ndes_post "$W/req1.der" "$W/rep1.der")
lab_assert_eq "$code" 200 "replayed PKCSReq HTTP status"
lab_assert_eq "$(ndes_cms_attr "$W/rep1.der" $OID.2)" 3 "messageType of the reply"
lab_assert_eq "$(ndes_cms_attr "$W/rep1.der" $OID.3)" 2 "pkiStatus (FAILURE)"
lab_assert_eq "$(ndes_cms_attr "$W/rep1.der" $OID.4)" 1 "failInfo (badMessageCheck)"
lab_assert_eq "$(ndes_cms_attr "$W/rep1.der" 1.3.6.1.4.1.311.21.33)" "-2146762480" "MS HRESULT attribute (0x800B0110: challenge already used)"
lab_assert_eq "$(ndes_cms_attr "$W/rep1.der" $OID.7)" "$(ndes_cms_attr "$W/req1.der" $OID.7)" "transactionID echoed"
lab_assert_eq "$(ndes_cms_attr "$W/rep1.der" $OID.6)" "$(ndes_cms_attr "$W/req1.der" $OID.5)" "recipientNonce = request's senderNonce"
lab_assert_eq "$(ndes_cms_attr "$W/rep1.der" $OID.5 | wc -c)" 33 "reply senderNonce is 16 bytes"
openssl cms -verify -inform DER -in "$W/rep1.der" -certfile "$NDES_STATE/ra-sign.crt" -CAfile "$NDES_STATE/ca.crt" \
        -purpose any -binary -out "$W/rep1.content" -signer "$W/rep1.signer" 2>"$W/verify.err" ||
        lab_fail "reply signature: $(cat "$W/verify.err")"
lab_assert_eq "$(od -An -tx1 "$W/rep1.content" | tr -d ' \n')" 00 "FAILURE content (a single 0x00 byte)"
lab_assert_eq "$(openssl x509 -in "$W/rep1.signer" -noout -fingerprint -sha256)" \
        "$(openssl x509 -in "$NDES_STATE/ra-sign.crt" -noout -fingerprint -sha256)" "reply signer (the RA signing certificate)"
lab_pass "reused challenge: FAILURE badMessageCheck, 0x00 content, HRESULT, nonce and transactionID echoed, signed by the RA signing cert"

# --- scepclient with a challenge NDES never issued, and with a reused one
ndes_scepclient "$W/sc2" 0123456789ABCDEF scep2.example.test && lab_fail "scepclient enrolled with an unknown challenge"
lab_assert_contains "$(cat "$W/sc2/out")" "badMessageCheck" "scepclient output (unknown challenge)"
ndes_scepclient "$W/sc3" "$c" scep3.example.test && lab_fail "scepclient enrolled with a used challenge"
lab_assert_contains "$(cat "$W/sc3/out")" "badMessageCheck" "scepclient output (reused challenge)"
lab_pass "unknown and reused challenges: scepclient gets FAILURE badMessageCheck"

# --- a challenge older than 60 minutes is refused
c=$(ndes_challenge)
ndes ctl clock_offset=3601
ndes_scepclient "$W/sc4" "$c" scep4.example.test && lab_fail "scepclient enrolled with an expired challenge"
lab_assert_contains "$(cat "$W/sc4/out")" "badMessageCheck" "scepclient output (expired challenge)"
ndes ctl clock_offset=0
lab_pass "challenge older than 60 minutes: FAILURE badMessageCheck"

# --- clock_offset also moves the validity of issued certificates (for expiry tests)
ndes ctl clock_offset=-31500000
c=$(ndes_challenge)
ndes_scepclient "$W/sc-old" "$c" old.example.test || { cat "$W/sc-old/out" >&2; lab_fail "scepclient enrollment (clock_offset) failed"; }
openssl x509 -in "$W/sc-old/cert.pem" -noout -checkend 0 >/dev/null || lab_fail "certificate issued 364.6 days in the past is already expired"
if openssl x509 -in "$W/sc-old/cert.pem" -noout -checkend 86400 >/dev/null; then
        lab_fail "certificate issued 364.6 days in the past should expire within a day: $(openssl x509 -in "$W/sc-old/cert.pem" -noout -enddate)"
fi
ndes ctl clock_offset=0
lab_pass "clock_offset=-364.6 days: the issued certificate expires within a day"

# --- AES and SCEPStandard profiles, SHA-512 reply signatures
for profile in aes scepstandard; do
        ndes ctl caps=$profile reply_digest=sha512
        caps=$(curl -sS --max-time 10 "$NDES_URL?operation=GetCACaps")
        lab_assert_contains "$caps" "AES" "caps ($profile)"
        c=$(ndes_challenge)
        ndes_scepclient "$W/sc-$profile" "$c" "$profile.example.test" || { cat "$W/sc-$profile/out" >&2; lab_fail "scepclient enrollment ($profile) failed"; }
        ndes_verify_cert "$W/sc-$profile/cert.pem" "$profile.example.test"
done
lab_assert_contains "$(curl -sS --max-time 10 "$NDES_URL?operation=GetCACaps")" "SCEPStandard" "caps (scepstandard)"
lab_pass "caps=aes and caps=scepstandard (AES replies, SHA-512 signatures): scepclient enrolls"
ndes ctl caps=win2016 reply_digest=auto

# --- Windows 2012: a POSTed PKIOperation gets an empty 200, GET still works
ndes ctl caps=win2012
c=$(ndes_challenge)
ndes_scepclient "$W/sc5" "$c" scep5.example.test && lab_fail "scepclient enrolled by POST against win2012 (should get an empty 200)"
code=$(ndes_post "$W/req1.der" "$W/rep2012.der")
lab_assert_eq "$code" 200 "win2012 POST status"
lab_assert_eq "$(stat -c %s "$W/rep2012.der")" 0 "win2012 POST body size"
code=$(ndes_get_pkiop "$W/req1.der" "$W/rep2012get.der")
lab_assert_eq "$code" 200 "win2012 GET status"
lab_assert_eq "$(ndes_cms_attr "$W/rep2012get.der" $OID.3)" 2 "win2012 GET reply pkiStatus (replayed request: FAILURE)"
lab_assert_contains "$(openssl cms -cmsout -print -inform DER -in "$W/rep2012get.der" | grep -A1 digestAlgorithm | head -2)" "sha1" "win2012 reply digest"
lab_assert_eq "$(openssl cms -cmsout -print -inform DER -in "$W/rep2012get.der" | grep -A1 ' certificates:' | tail -n 1 | tr -d ' ')" \
        "<ABSENT>" "certificates field of the win2012 reply (Windows 2012 sends none)"
lab_assert_contains "$(openssl cms -cmsout -print -inform DER -in "$W/rep1.der" | grep -A1 ' certificates:' | tail -n 1)" \
        "d.certificate:" "certificates field of the win2016 reply"
lab_pass "caps=win2012: POST answered by an empty 200; GET works; SHA-1 reply without certificates"
ndes ctl caps=win2016

# --- IIS URL limit: a long GET gets 404 (IIS logs 404.15, not 414), a short one does not
ndes ctl max_get_url=2048
code=$(ndes_get_pkiop "$W/req1.der" "$W/rep414")
lab_assert_eq "$code" 404 "GET PKIOperation longer than max_get_url"
lab_assert_contains "$(cat "$W/rep414")" "404.15" "IIS's error page names the substatus"
lab_assert_eq "$(curl -sS --max-time 10 -o /dev/null -w '%{http_code}' "$NDES_URL?operation=GetCACaps")" 200 "short GET with max_get_url"
lab_assert_eq "$(ndes_post "$W/req1.der" "$W/rep414post.der")" 200 "POST is not limited by max_get_url"
ndes ctl max_get_url=0
lab_pass "max_get_url=2048: long GET PKIOperation gets 404.15, POST and short GETs do not"

# --- Hostile input: errors, never a crash, and the CGI keeps working
head -c 4000 /dev/urandom >"$W/garbage"
head -c 300000 /dev/zero >"$W/huge"
head -c 700 "$W/req1.der" >"$W/truncated"
lab_assert_eq "$(ndes_post "$W/garbage" /dev/null)" 400 "POST of random bytes"
lab_assert_eq "$(ndes_post "$W/truncated" /dev/null)" 400 "POST of a truncated pkiMessage"
lab_assert_eq "$(ndes_post "$W/huge" /dev/null)" 413 "POST of 300 kB"
lab_assert_eq "$(curl -sS --max-time 10 -o /dev/null -w '%{http_code}' "$NDES_URL?operation=PKIOperation&message=%%%21%21")" 400 "GET with a non-base64 message"
lab_assert_eq "$(ndes_get_pkiop "$W/garbage" /dev/null)" 400 "GET with base64 garbage"
lab_assert_eq "$(curl -sS --max-time 10 -o /dev/null -w '%{http_code}' "$NDES_URL?operation=Nope")" 400 "unknown operation"
lab_assert_eq "$(curl -sS --max-time 10 -o /dev/null -w '%{http_code}' "$NDES_URL")" 400 "no operation"
if grep -E 'AH01215|AH00052|Segmentation|AddressSanitizer|runtime error' "$LAB_APACHE_ERROR_LOG"; then
        lab_fail "the CGI crashed or reported memory errors (Apache error log above)"
fi
lab_assert_eq "$(curl -sS --max-time 10 -o /dev/null -w '%{http_code}' "$NDES_URL?operation=GetCACaps")" 200 "GetCACaps after hostile input"
lab_pass "hostile input: 400/413, no crash, no memory errors in the Apache error log"

# --- mscep.dll is anonymous; permission mode only concerns the admin page
ndes ctl permission=denied
lab_assert_eq "$(curl -sS --max-time 10 -o /dev/null -w '%{http_code}' "$NDES_URL?operation=GetCACert")" 200 "GetCACert in permission=denied"
ndes ctl permission=granted

lab_pass "mscep.dll stays anonymous and available in permission=denied"
ndes_check_error_log
