#!/usr/bin/env bash
# Transport at scale: 200 sequential challenge fetches cost exactly 1 AS and 1 TGS exchange at
# the KDC and use one kept-alive connection (http and https); 300 fetches at once all succeed
# on the event loop. Prints the time per fetch.
set -euo pipefail
. "$CB_SOURCE_ROOT/tests/lab/lab.sh"
lab_enter "$@"
. "$CB_SOURCE_ROOT/tests/integration/transport-common.sh"
transport_setup
ndes_ctl cache_size=1000 admin_encoding=utf16le-bom

summary_field() { sed -n "s/^summary.* $1=\([0-9.]*\).*/\1/p" "$TF_OUT"; }

for scheme in http https; do
        as0=$(kdc_as_count)
        tgs0=$(kdc_tgs_count)
        a0=$(wc -l <"$LAB_APACHE_ACCESS_LOG")
        if [ "$scheme" = http ]; then
                tf challenge "$ADMIN_HTTP" 200
        else
                tf --trust-anchors "$LAB_TLS_ROOT" challenge "$ADMIN_HTTPS" 200
        fi
        lab_assert_eq "$TF_RC" 0 "200 fetches over $scheme ($(grep -v '^result=ok' "$TF_OUT" | head -3))"
        lab_assert_eq "$(grep -c '^result=ok' "$TF_OUT")" 200 "successful fetches over $scheme"
        lab_assert_eq "$(( $(kdc_as_count) - as0 ))" 1 "AS exchanges at the KDC for 200 fetches over $scheme"
        lab_assert_eq "$(( $(kdc_tgs_count) - tgs0 ))" 1 "TGS exchanges at the KDC for 200 fetches over $scheme"
        lab_assert_eq "$(summary_field connects)" 1 "TCP connections for 200 fetches over $scheme"
        # Apache saw 200 authenticated requests (plus the 401 round before each).
        lab_assert_eq "$(tail -n +"$((a0 + 1))" "$LAB_APACHE_ACCESS_LOG" | grep -c " svc-scep@$LAB_REALM .* 200 ")" 200 \
                "authenticated 200s in Apache's log over $scheme"
        lab_pass "200 sequential fetches over $scheme: 1 AS + 1 TGS, 1 connection, $(summary_field per_fetch_ms) ms per fetch"
done

# Hundreds at once: 300 fetches started together (MaxOutstandingChallenges=300), curl multi
# on sd-event with at most 8 connections to the host.
as0=$(kdc_as_count)
tgs0=$(kdc_tgs_count)
tf --max-outstanding 300 --timeout 60 challenge-parallel "$ADMIN_HTTP" 300
lab_assert_eq "$TF_RC" 0 "300 parallel fetches ($(grep -v '^result=ok' "$TF_OUT" | head -3))"
lab_assert_eq "$(grep -c '^result=ok' "$TF_OUT")" 300 "successful parallel fetches"
lab_assert_eq "$(( $(kdc_tgs_count) - tgs0 ))" 1 "TGS exchanges for 300 parallel fetches"
lab_assert_eq "$(( $(kdc_as_count) - as0 ))" 1 "AS exchanges for 300 parallel fetches"
conns=$(summary_field connects)
[ "$conns" -le 8 ] || lab_fail "300 parallel fetches opened $conns connections (limit 8 per host)"
lab_pass "300 fetches at once: all ok, $conns connections, $(summary_field elapsed_ms) ms in total"
