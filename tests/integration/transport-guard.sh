#!/usr/bin/env bash
# Transport: the suffix guard runs before any connection. Hosts outside the suffix, lookalikes
# and IP literals are never contacted (Apache's access log and the KDC log stay silent); a
# redirect to a foreign host is refused, not followed; case and a trailing dot are normalized.
set -euo pipefail
. "$CB_SOURCE_ROOT/tests/lab/lab.sh"
lab_enter "$@"
. "$CB_SOURCE_ROOT/tests/integration/transport-common.sh"
transport_setup

access_lines() { wc -l <"$LAB_APACHE_ACCESS_LOG"; }
tgs_lines() { grep -c "TGS_REQ" "$LAB_KDC_LOG" || true; }

for url in "https://evil.attacker.test/certsrv/mscep_admin/" \
           "http://evilexample.test/certsrv/mscep_admin/" \
           "http://127.0.0.1/certsrv/mscep_admin/" \
           "http://[::1]/certsrv/mscep_admin/" \
           "http://2130706433/certsrv/mscep_admin/" \
           "http://svc-scep:pw@ndes.example.test/certsrv/mscep_admin/" \
           "ftp://ndes.example.test/x"; do
        a0=$(access_lines)
        t0=$(tgs_lines)
        tf challenge "$url" 1
        case "$(tf_result)" in
        result=NameNotPermitted*|result=ProtocolError*) ;;
        *) lab_fail "challenge from $url: expected a refusal, got $(cat "$TF_OUT")" ;;
        esac
        lab_assert_eq "$(access_lines)" "$a0" "Apache requests after $url"
        lab_assert_eq "$(tgs_lines)" "$t0" "KDC TGS requests after $url"
        tf get "$url"
        case "$(tf_result)" in
        result=NameNotPermitted*|result=ProtocolError*) ;;
        *) lab_fail "get $url: expected a refusal, got $(cat "$TF_OUT")" ;;
        esac
        lab_assert_eq "$(access_lines)" "$a0" "Apache requests after GET $url"
done
lab_assert_file_lacks "$LAB_APACHE_ACCESS_LOG" "evil" "Apache access log"
lab_pass "hosts outside example.test, lookalikes, IP literals, user info: refused, nothing contacted"

tf challenge "https://evil.attacker.test/certsrv/mscep_admin/" 1
tf_assert_result NameNotPermitted "foreign host"
lab_assert_contains "$(cat "$TF_OUT")" "evil.attacker.test" "message names the host"
lab_assert_contains "$(cat "$TF_OUT")" "example.test" "message names the suffix"
lab_pass "foreign host: NameNotPermitted naming host and suffix"

# Upper case and one trailing dot: the same host.
tf challenge "http://NDES.Example.TEST./certsrv/mscep_admin/" 1
tf_assert_result ok "upper case with a trailing dot"
lab_pass "upper-case URL host with a trailing dot is normalized and allowed"

# A redirect to a foreign host is an error naming that host; the foreign host is never asked.
a0=$(grep -c '"evil.attacker.test' "$LAB_APACHE_ACCESS_LOG" || true)
tf --no-kerberos get "$LAB_HTTP_URL/redirect-foreign"
tf_assert_result ProtocolError "redirect"
lab_assert_contains "$(cat "$TF_OUT")" "redirect to host evil.attacker.test" "message names the Location host"
lab_assert_contains "$(cat "$TF_OUT")" "http=302" "status"
lab_assert_eq "$(grep -c '"evil.attacker.test' "$LAB_APACHE_ACCESS_LOG" || true)" "$a0" "requests with Host evil.attacker.test"
tf --trust-anchors "$LAB_TLS_ROOT" get "$LAB_HTTPS_URL/redirect-foreign"
tf_assert_result ProtocolError "redirect over https"
lab_assert_eq "$(grep -c '"evil.attacker.test' "$LAB_APACHE_ACCESS_LOG" || true)" "$a0" "requests with Host evil.attacker.test"
lab_pass "redirect to evil.attacker.test: ProtocolError naming it, not followed"

# Proxy variables in the environment are ignored (no proxy can redirect traffic).
a0=$(access_lines)
http_proxy=http://evil.attacker.test:80 HTTPS_PROXY=http://evil.attacker.test:80 ALL_PROXY=http://evil.attacker.test:80 \
        tf challenge "$ADMIN_HTTP" 1
tf_assert_result ok "with proxy variables set"
# Through a proxy the request line would be absolute ("GET http://ndes.example.test/...").
lab_assert_eq "$(tail -n +"$((a0 + 1))" "$LAB_APACHE_ACCESS_LOG" | grep -c '"GET http' || true)" 0 "proxied requests"
lab_assert_contains "$(tail -n +"$((a0 + 1))" "$LAB_APACHE_ACCESS_LOG")" '"GET /certsrv/mscep_admin/' "direct request"
lab_pass "http_proxy/HTTPS_PROXY/ALL_PROXY are ignored"
