#!/usr/bin/env bash
# Lab smoke test: through gss-proxy, a process running as alice, which cannot
# read the svc-scep keytab, authenticates to mscep_admin as svc-scep.
set -euo pipefail
: "${CB_SOURCE_ROOT:=$(cd "$(dirname "$0")/../.." && pwd)}"
. "$CB_SOURCE_ROOT/tests/lab/lab.sh"
lab_enter "$@"

lab_kdc
lab_apache
lab_gssproxy "$(id -u alice)"
lab_assert_eq "$LAB_GSSPROXY_SOCKET" "$GSSPROXY_SOCKET" "LAB_GSSPROXY_SOCKET"

# alice cannot read the keytab.
if out=$(lab_run_as alice cat "$LAB_SVC_KEYTAB" 2>&1 >/dev/null); then
        lab_fail "alice could read $LAB_SVC_KEYTAB"
fi
lab_assert_contains "$out" "Permission denied" "alice reading the svc-scep keytab"
if lab_run_as alice env KRB5CCNAME=MEMORY:a kinit -k -t "$LAB_SVC_KEYTAB" svc-scep 2>/dev/null; then
        lab_fail "alice got a ticket from $LAB_SVC_KEYTAB directly"
fi
lab_pass "alice cannot read the svc-scep keytab"

as_via_proxy() {
        local user=$1 url=$2
        lab_run_as "$user" env GSS_USE_PROXY=yes KRB5CCNAME=MEMORY:lab \
                curl -sS --max-time 10 --cacert "$LAB_TLS_ROOT" --negotiate -u : -w '\n%{http_code}' "$url"
}
for url in "$LAB_HTTP_URL/certsrv/mscep_admin/" "$LAB_HTTPS_URL/certsrv/mscep_admin/"; do
        body=$(as_via_proxy alice "$url")
        lab_assert_eq "${body##*$'\n'}" 200 "alice through gss-proxy: $url"
        lab_assert_contains "$body" "REMOTE_USER=svc-scep@EXAMPLE.TEST" "alice through gss-proxy: $url"
done
lab_pass "alice authenticates to mscep_admin through gss-proxy (http and https) as svc-scep@EXAMPLE.TEST"

# Nobody else gets svc-scep's credentials: bob uses the same socket and fails,
# and alice without GSS_USE_PROXY has nothing.
body=$(as_via_proxy bob "$LAB_HTTP_URL/certsrv/mscep_admin/")
lab_assert_eq "${body##*$'\n'}" 401 "bob through gss-proxy (no service section for his uid)"
code=$(lab_run_as alice env KRB5CCNAME=MEMORY:lab curl -sS --max-time 10 --negotiate -u : -o /dev/null -w '%{http_code}' \
        "$LAB_HTTP_URL/certsrv/mscep_admin/")
lab_assert_eq "$code" 401 "alice without gss-proxy"
lab_pass "bob through gss-proxy and alice without it get 401"

lab_times
