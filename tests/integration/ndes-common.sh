# shellcheck shell=bash
# Shared setup for the NDES emulator tests (ndes-*.sh). Sourced, not a test itself.
# Needs lab.sh loaded and lab_enter done.

# ndes_setup: KDC, Apache with the emulator as its NDES CGI, emulator state, a ticket
# for svc-scep in root's default ccache.
ndes_setup() {
        NDES_EMULATOR=$CB_BUILD_ROOT/tests/ndes/ndes-emulator
        [ -x "$NDES_EMULATOR" ] ||
                lab_fail "ndes: $NDES_EMULATOR is missing (meson compile -C \$builddir tests/ndes/ndes-emulator)"
        LAB_NDES_CGI=$NDES_EMULATOR
        export LAB_NDES_CGI
        lab_kdc
        lab_apache
        NDES_STATE=$LAB_NDES_STATE_DIR
        # root creates the files; the emulator gives them to the directory's owner (www-data)
        ndes init ${NDES_INIT_ARGS:-} >/dev/null || lab_fail "ndes: ndes-emulator init failed"
        [ "$(stat -c %U "$NDES_STATE/ra-enc.key")" = www-data ] ||
                lab_fail "ndes: $NDES_STATE/ra-enc.key is not owned by www-data"
        NDES_URL=$LAB_HTTP_URL/certsrv/mscep/mscep.dll
        NDES_ADMIN_URL=$LAB_HTTP_URL/certsrv/mscep_admin/
        NDES_WORK=$LAB_DIR/ndes-test
        mkdir -p "$NDES_WORK"
        kinit -k -t "$LAB_SVC_KEYTAB" svc-scep >/dev/null 2>&1 ||
                lab_fail "ndes: kinit -k svc-scep from $LAB_SVC_KEYTAB failed"
}

ndes() {
        local cmd=$1
        shift
        "$NDES_EMULATOR" "$cmd" --state "$NDES_STATE" "$@"
}

# ndes_admin_get FILE: GET mscep_admin with Negotiate, body to FILE, prints the HTTP status.
ndes_admin_get() {
        curl -sS --max-time 10 --negotiate -u : -o "$1" -w '%{http_code}' "$NDES_ADMIN_URL"
}

# ndes_page_text FILE: the page as UTF-8 text, whatever the admin_encoding.
ndes_page_text() {
        local f=$1
        if [ "$(head -c 2 "$f" | od -An -tx1 | tr -d ' \n')" = fffe ]; then
                tail -c +3 "$f" | iconv -f UTF-16LE -t UTF-8
        elif [ "$(head -c 2 "$f" | od -An -tx1 | tr -d ' \n')" = 3c00 ]; then
                iconv -f UTF-16LE -t UTF-8 <"$f"
        else
                cat "$f"
        fi
}

# ndes_challenge: fetch one challenge (prints it; fails the test when there is none).
ndes_challenge() {
        local f code c
        f=$(mktemp -p "$NDES_WORK" page.XXXXXX)
        code=$(ndes_admin_get "$f")
        [ "$code" = 200 ] || lab_fail "ndes_challenge: mscep_admin answered HTTP $code"
        c=$(ndes_page_text "$f" | sed -n 's/.*The enrollment challenge password is: <B> \([0-9A-F]*\) <\/B>.*/\1/p')
        rm -f "$f"
        [ "${#c}" = 16 ] || lab_fail "ndes_challenge: no 16-hex-digit challenge in the admin page"
        echo "$c"
}

# ndes_verify_cert PEM CN [DNS...]: issued by the emulator CA, subject CN, exactly these DNS SANs.
ndes_verify_cert() {
        local pem=$1 cn=$2 out sans want
        shift 2
        out=$(openssl verify -CAfile "$NDES_STATE/ca.crt" -purpose sslclient "$pem" 2>&1) ||
                lab_fail "certificate $pem does not chain to the emulator CA: $out"
        lab_assert_contains "$(openssl x509 -in "$pem" -noout -subject -nameopt RFC2253)" "CN=$cn" "subject of $pem"
        sans=$(openssl x509 -in "$pem" -noout -ext subjectAltName 2>/dev/null | sed -n 's/^ *//p' | grep -v '^X509v3' || true)
        want=$(for d in "$@"; do printf 'DNS:%s, ' "$d"; done)
        want=${want%, }
        lab_assert_eq "$sans" "$want" "subjectAltName of $pem"
}

# ndes_scep_log_count PATTERN: number of PKIOperations in the emulator's log matching PATTERN.
ndes_scep_log_count() {
        ndes log --scep | grep -c -E -- "$1" || true
}

# ndes_cms_attr DER OID: value of a signed attribute of a SignedData (first signer):
# PrintableString as text, OCTET STRING as lowercase hex.
ndes_cms_attr() {
        openssl cms -cmsout -print -inform DER -in "$1" 2>/dev/null | awk -v oid="($2)" '
                found == 0 && index($0, oid) { found = 1; next }
                found == 1 && /set:/ { next }
                found == 1 && /PRINTABLESTRING:/ { sub(/.*PRINTABLESTRING:/, ""); print; exit }
                found == 1 && /OCTET STRING:/ { found = 2; next }
                found == 2 && / [0-9a-f][0-9a-f][0-9a-f][0-9a-f] - / {
                        s = $0; sub(/.* [0-9a-f][0-9a-f][0-9a-f][0-9a-f] - /, "", s); sub(/   .*/, "", s)
                        gsub(/-/, " ", s); n = split(s, b, " ")
                        for (i = 1; i <= n; i++) hex = hex b[i]
                        next }
                found == 2 { print hex; exit }'
}

# ndes_post FILE OUT: POST FILE as a PKIOperation, body to OUT, prints the HTTP status.
ndes_post() {
        curl -sS --max-time 10 -o "$2" -w '%{http_code}' -H 'Content-Type: application/x-pki-message' \
                --data-binary @"$1" "$NDES_URL?operation=PKIOperation"
}

# ndes_get_pkiop FILE OUT: the same as a GET with message= (standard base64, percent-escaped).
ndes_get_pkiop() {
        local b64
        b64=$(base64 -w0 <"$1" | sed 's/+/%2B/g; s/\//%2F/g; s/=/%3D/g')
        curl -sS --max-time 10 -o "$2" -w '%{http_code}' "$NDES_URL?operation=PKIOperation&message=$b64"
}

# ndes_scepclient DIR CHALLENGE CN [args...]: micromdm's scepclient in a fresh DIR (it
# keeps its self-signed signer in ./self.pem), output in DIR/out. Returns its status.
ndes_scepclient() {
        local dir=$1 challenge=$2 cn=$3
        shift 3
        mkdir -p "$dir"
        (cd "$dir" && timeout 60 scepclient -server-url "$NDES_URL" -private-key key.pem -certificate cert.pem \
                -challenge "$challenge" -cn "$cn" "$@" >out 2>&1)
}

# ndes_check_error_log: the CGI never crashed or reported sanitizer findings (ASan builds).
ndes_check_error_log() {
        if grep -E 'AH01215.*(Sanitizer|runtime error)|AddressSanitizer|LeakSanitizer|runtime error:|Segmentation fault' \
                "$LAB_APACHE_ERROR_LOG" >&2; then
                lab_fail "the NDES emulator crashed or reported memory errors (Apache error log lines above)"
        fi
        lab_pass "no crash or sanitizer report from the emulator in the Apache error log"
}
