#!/usr/bin/env bash
# Transport: credentials from the keytab in-process, challenges over http and https with
# Negotiate, every admin-page encoding of the NDES emulator, TLS verification.
set -euo pipefail
. "$CB_SOURCE_ROOT/tests/lab/lab.sh"
lab_enter "$@"
. "$CB_SOURCE_ROOT/tests/integration/transport-common.sh"
transport_setup

# Credentials: a TGT in memory, state valid, expiry in the future; no ccache file appears.
tf state
lab_assert_eq "$TF_RC" 0 "transport-fetch state exit status ($(cat "$TF_OUT"))"
lab_assert_contains "$(cat "$TF_OUT")" "state=valid" "credential state"
expiry=$(sed -n 's/.*expiry_usec=\([0-9]*\).*/\1/p' "$TF_OUT")
now=$(date +%s)
[ "$((expiry / 1000000))" -gt "$now" ] || lab_fail "CredentialExpiry $expiry is not in the future"
lab_assert_contains "$(cat "$TRT/krb5.conf")" "dns_canonicalize_hostname = false" "generated profile"
lab_assert_contains "$(cat "$TRT/krb5.conf")" "kdc = 127.0.0.1:$LAB_KDC_PORT" "generated profile KDC"
lab_assert_eq "$(stat -c %a "$TRT/krb5.conf")" 600 "profile mode"
[ -z "$(ls -A "$LAB_DIR/krb5/cc")" ] || lab_fail "a ccache file appeared: $(ls -A "$LAB_DIR/krb5/cc")"
lab_pass "TGT acquired in-process from the keytab (state valid, expiry $(( (expiry / 1000000) - now )) s ahead, no ccache file)"

# http, default emulator encoding: UTF-16LE with BOM. The challenge equals one the emulator issued.
tf challenge "$ADMIN_HTTP" 1
lab_assert_eq "$TF_RC" 0 "challenge over http ($(cat "$TF_OUT"))"
tf_assert_result ok "challenge over http"
lab_assert_contains "$(tf_result)" "encoding=utf-16le-bom" "encoding"
lab_assert_contains "$(tf_result)" "challenge_len=16" "challenge length"
got=$(sed -n 's/.*challenge_sha256=\([0-9a-f]*\).*/\1/p' "$TF_OUT")
issued=$(awk '{print $2}' "$LAB_NDES_STATE_DIR/challenges" | while read -r c; do
        printf '%s' "$c" | sha256sum | cut -c1-16; done)
lab_assert_contains "$issued" "$got" "the fetched challenge is one the emulator issued"
lab_assert_file_lacks "$TF_OUT" "$(awk '{print $2}' "$LAB_NDES_STATE_DIR/challenges" | head -1)" "driver output (no challenge in clear)"
lab_assert_contains "$(tail -1 "$LAB_APACHE_ACCESS_LOG")" "svc-scep@$LAB_REALM" "Apache saw the Kerberos user"
lab_pass "challenge over http with Negotiate (UTF-16LE with BOM), equal to the emulator's"

# The other encodings.
ndes_ctl admin_encoding=utf16le
tf challenge "$ADMIN_HTTP" 1
tf_assert_result ok "challenge, UTF-16LE without BOM"
lab_assert_contains "$(tf_result)" "encoding=utf-16le " "encoding without BOM"
ndes_ctl admin_encoding=utf8
tf challenge "$ADMIN_HTTP" 1
tf_assert_result ok "challenge, UTF-8"
lab_assert_contains "$(tf_result)" "encoding=utf-8 " "encoding UTF-8"
lab_pass "challenge pages in UTF-16LE without BOM and UTF-8"
ndes_ctl admin_encoding=utf16le-bom

# https against the lab root.
tf --trust-anchors "$LAB_TLS_ROOT" challenge "$ADMIN_HTTPS" 1
tf_assert_result ok "challenge over https"
lab_pass "challenge over https, verified against TrustAnchors"

# https against the system store: the lab root is not in it.
tf challenge "$ADMIN_HTTPS" 1
tf_assert_result TLSVerifyFailed "https without the lab root"
lab_assert_contains "$(cat "$TF_OUT")" "ndes.example.test" "TLS message names the host"
lab_pass "https with an untrusted certificate: TLSVerifyFailed"

# https with a trust anchor that did not issue the server's certificate.
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$LAB_DIR/other.key" -out "$LAB_DIR/other-root.pem" \
        -subj "/CN=other root" -days 1 >/dev/null 2>&1
tf --trust-anchors "$LAB_DIR/other-root.pem" challenge "$ADMIN_HTTPS" 1
tf_assert_result TLSVerifyFailed "https with a foreign trust anchor"
lab_assert_contains "$(cat "$TF_OUT")" "$LAB_DIR/other-root.pem" "message names the trust anchors"
lab_pass "https with a foreign trust anchor: TLSVerifyFailed naming TrustAnchors"

# Authentication=none against the Kerberos-protected page: AuthenticationRejected.
tf --no-kerberos challenge "$ADMIN_HTTP" 1
tf_assert_result AuthenticationRejected "no Kerberos"
lab_pass "mscep_admin without Kerberos: AuthenticationRejected"

# Response size cap: 2 MiB against the 1 MiB default is aborted, not buffered.
head -c $((2 * 1024 * 1024)) /dev/zero >"$LAB_DIR/apache/htdocs/big.bin"
chmod 0644 "$LAB_DIR/apache/htdocs/big.bin"
tf --no-kerberos get "$LAB_HTTP_URL/big.bin"
tf_assert_result ProtocolError "oversized answer"
lab_assert_contains "$(cat "$TF_OUT")" "larger" "message"
head -c $((512 * 1024)) /dev/zero >"$LAB_DIR/apache/htdocs/ok.bin"
chmod 0644 "$LAB_DIR/apache/htdocs/ok.bin"
tf --no-kerberos get "$LAB_HTTP_URL/ok.bin"
tf_assert_result ok "512 KiB answer"
lab_assert_contains "$(tf_result)" "body_size=524288" "body size"
lab_pass "response size cap: 2 MiB refused (ProtocolError), 512 KiB accepted"

# A server that accepts the connection and never answers: Timeout after --timeout.
lab_start silent "$LAB_PYTHON" -c '
import socket, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 8181)); s.listen(16)
conns = []
while True:
    c, _ = s.accept(); conns.append(c)
'
lab_wait_for 10 "the silent server on port 8181" "$LAB_PYTHON" -c 'import socket; socket.create_connection(("127.0.0.1", 8181), 1).close()'
t0=$(date +%s%N)
tf --timeout 1 --no-kerberos get "http://ndes.example.test:8181/certsrv/mscep_admin/"
t1=$(date +%s%N)
tf_assert_result Timeout "silent server"
ms=$(( (t1 - t0) / 1000000 ))
[ "$ms" -lt 5000 ] || lab_fail "the 1 s timeout took $ms ms"
lab_pass "silent server: Timeout after $ms ms (Timeout=1)"

# Anonymous GET and POST to mscep.dll (what the SCEP layer will do through the same client).
tf --no-kerberos get "$LAB_HTTP_URL/certsrv/mscep/mscep.dll?operation=GetCACaps"
tf_assert_result ok "GetCACaps"
lab_assert_contains "$(tf_result)" "http=200" "GetCACaps status"
printf 'not a pkiMessage' >"$LAB_DIR/junk.der"
tf --no-kerberos post "$LAB_HTTP_URL/certsrv/mscep/mscep.dll?operation=PKIOperation" "$LAB_DIR/junk.der" application/x-pki-message
tf_assert_result ok "POST PKIOperation"
lab_assert_contains "$(tf_result)" "http=400" "the emulator read and refused the body"
lab_assert_contains "$(tail -1 "$LAB_APACHE_ACCESS_LOG")" '"POST /certsrv/mscep/mscep.dll?operation=PKIOperation HTTP/1.1" 400' "Apache saw the POST"
lab_pass "anonymous GET (GetCACaps) and POST (PKIOperation, body delivered) through the client"
