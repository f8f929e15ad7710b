#!/usr/bin/env bash
# certbrokerd against every mode of the NDES emulator: Windows 2016-2022 caps (POST, DES3,
# SHA-256), Windows 2012 (POST answered by an empty 200 → GET; RSA-OAEP and SHA-1 replies
# without certificates), AES, SCEPStandard; the admin page in UTF-16LE with and without BOM and
# in UTF-8; the RA certificates in any order; and IIS's 404.15 on a long GET (IIS request
# filtering answers 404, not 414), which fails with a clear ProtocolError naming the limits.
set -euo pipefail
: "${CB_SOURCE_ROOT:=$(cd "$(dirname "$0")/../.." && pwd)}"
. "$CB_SOURCE_ROOT/tests/integration/daemon-enter.sh" "$@"

broker_lab
broker_start

n=0
# enroll_in MODE-DESCRIPTION CTL-SETTINGS...: switch the emulator, refresh the CA, enroll, verify.
enroll_in() {
        local what=$1 path state name
        shift
        ndes ctl "$@" >/dev/null
        cb root call "$CB_BUS" /org/certbroker/Broker1/ca/corp "$CB_BUS.CA" Refresh >/dev/null
        n=$((n + 1))
        name=m$n.a.example.test
        path=$(cb_enroll alice corp "$name") || lab_fail "$what: Enroll failed"
        state=$(cb_wait alice "$path" 60)
        if [ "$state" != issued ]; then
                tail -n 20 "$LAB_DIR/certbrokerd.log" >&2
                lab_fail "$what: ended '$state': $(cb_prop alice "$path" ErrorMessage)"
        fi
        cb_prop alice "$path" Certificate >"$LAB_DIR/$name.crt"
        ndes_verify_cert "$LAB_DIR/$name.crt" "$name" "$name"
        lab_pass "$what"
}

enroll_in "Windows 2016-2022 capabilities (POST, DES3, SHA-256)" caps=win2016
method=$(ndes log --scep | tail -n 1)
lab_assert_contains "$method" "method=POST" "transport with POSTPKIOperation"

enroll_in "AES capabilities" caps=aes
enroll_in "SCEPStandard" caps=scepstandard

before=$(ndes log --scep | grep -c "method=GET" || true)
enroll_in "Windows 2012: POST answered by an empty 200, then GET; OAEP, SHA-1, no certificates" caps=win2012
after=$(ndes log --scep | grep -c "method=GET" || true)
[ "$after" -gt "$before" ] || lab_fail "after the empty 200 the broker did not fall back to GET"
lab_assert_contains "$(cat "$LAB_DIR/certbrokerd.log")" "empty 200" "the fallback is logged"

enroll_in "admin page UTF-16LE with BOM" caps=win2016 admin_encoding=utf16le-bom
enroll_in "admin page UTF-16LE without BOM" admin_encoding=utf16le
enroll_in "admin page UTF-8" admin_encoding=utf8
enroll_in "RA certificates in the order CA, encryption, signing" ra_order=ca,enc,sign
enroll_in "RA certificates in the order encryption, CA, signing" ra_order=enc,ca,sign

# IIS's URL limit: GET only (Windows 2012) with a URL limit below any pkiMessage; IIS answers
# 404 (404.15 in its log), which the broker must read as the URL limit.
ndes ctl caps=win2012 max_get_url=512 >/dev/null
cb root call "$CB_BUS" /org/certbroker/Broker1/ca/corp "$CB_BUS.CA" Refresh >/dev/null
path=$(cb_enroll alice corp long.a.example.test)
state=$(cb_wait alice "$path" 60)
lab_assert_eq "$state" failed "a PKIOperation refused with IIS's 404.15"
lab_assert_eq "$(cb_prop alice "$path" Error)" "org.certbroker.Broker1.Error.ProtocolError" "Error after 404.15"
msg=$(cb_prop alice "$path" ErrorMessage)
lab_assert_contains "$msg" "HTTP 404" "the message names the 404"
lab_assert_contains "$msg" "404.15" "the message says what IIS logs"
lab_assert_contains "$msg" "maxQueryString" "the message names the IIS setting to raise"
lab_pass "IIS's 404.15 on a long GET fails with ProtocolError naming it and the fix"
broker_stop
