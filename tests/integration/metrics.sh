#!/usr/bin/env bash
# Metrics: certbrokerctl metrics (root sees every request, a user their own), checked by
# promtool; MetricsTextfileDirectory= written for node_exporter's textfile collector and
# scraped by a real prometheus-node-exporter over loopback; NDES's answers counted by outcome
# (issued, pending, failure, cache full, permission, HTTP errors). A textfile directory that is
# a symbolic link planted by another user, or writable by others, is refused and named.
set -euo pipefail
: "${CB_SOURCE_ROOT:=$(cd "$(dirname "$0")/../.." && pwd)}"
. "$CB_SOURCE_ROOT/tests/integration/daemon-enter.sh" "$@"

broker_need_ctl
command -v promtool >/dev/null || lab_fail "promtool missing (prometheus; tests/install-deps)"
NODE_EXPORTER=$(command -v prometheus-node-exporter) || lab_fail "prometheus-node-exporter missing (tests/install-deps)"

# ---- the README's alert rules: valid, and firing (only) when they should ----
sed -n '/<!-- alert-rules:begin -->/,/<!-- alert-rules:end -->/p' "$CB_SOURCE_ROOT/README.md" |
        sed '1,2d; $d' | sed '$d' >"$LAB_DIR/rules.yml"
out=$(promtool check rules "$LAB_DIR/rules.yml" 2>&1) || lab_fail "promtool check rules on the README's rules: $out"
lab_assert_contains "$out" "2 rules found" "the README's two rules"
cat >"$LAB_DIR/rules-test.yml" <<'YAML'
rule_files: [rules.yml]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      # expires 5 days after the test's start, no renewal: alerts
      - series: 'certbroker_certificate_not_after_seconds{instance="h",request="r1",owner="1000",ca="corp",name="a.example.test"}'
        values: '432000x180'
      - series: 'certbroker_certificate_superseded{instance="h",request="r1",owner="1000",ca="corp",name="a.example.test"}'
        values: '0x180'
      # expires as soon, its renewal issued: quiet
      - series: 'certbroker_certificate_not_after_seconds{instance="h",request="r2",owner="1000",ca="corp",name="b.example.test"}'
        values: '432000x180'
      - series: 'certbroker_certificate_superseded{instance="h",request="r2",owner="1000",ca="corp",name="b.example.test"}'
        values: '1x180'
      # expires in 30 days: quiet
      - series: 'certbroker_certificate_not_after_seconds{instance="h",request="r3",owner="1000",ca="corp",name="c.example.test"}'
        values: '2592000x180'
      - series: 'certbroker_certificate_superseded{instance="h",request="r3",owner="1000",ca="corp",name="c.example.test"}'
        values: '0x180'
      # cache-full answers rising at corp, flat at other; issued rising: only corp alerts
      - series: 'certbroker_ndes_answers_total{instance="h",ca="corp",outcome="cache_full"}'
        values: '0+1x180'
      - series: 'certbroker_ndes_answers_total{instance="h",ca="other",outcome="cache_full"}'
        values: '3x180'
      - series: 'certbroker_ndes_answers_total{instance="h",ca="other",outcome="issued"}'
        values: '0+5x180'
    alert_rule_test:
      - eval_time: 2h
        alertname: CertbrokerCertificateExpiringWithoutSuccessor
        exp_alerts:
          - exp_labels: {severity: warning, instance: h, request: r1, owner: "1000", ca: corp, name: a.example.test}
            exp_annotations:
              summary: "a.example.test (request r1, CA corp) expires within 7 days and has no issued renewal"
      - eval_time: 2h
        alertname: CertbrokerNdesCacheFull
        exp_alerts:
          - exp_labels: {severity: warning, instance: h, ca: corp, outcome: cache_full}
            exp_annotations:
              summary: "NDES of CA corp keeps answering that its password cache is full: lower MaxOutstandingChallenges= or raise NDES's cache"
YAML
out=$(cd "$LAB_DIR" && promtool test rules rules-test.yml 2>&1) || lab_fail "promtool test rules: $out"
lab_pass "the README's alert rules: promtool checks them, and they fire for what they describe only"

broker_lab
TEXTFILE=$LAB_DIR/textfile
mkdir -m 0755 "$TEXTFILE"
sed -i "s|^\[Broker\]$|[Broker]\nMetricsTextfileDirectory=$TEXTFILE|" "$CB_CONF/certbroker.conf"
# A CA whose static challenge NDES does not know: NDES answers FAILURE.
broker_badpw_ca
broker_start
lab_wait_for 10 "the textfile at start-up" test -s "$TEXTFILE/certbroker.prom"

# metrics_check FILE WHAT: promtool accepts it.
metrics_check() {
        local out
        out=$(promtool check metrics <"$1" 2>&1) || lab_fail "promtool check metrics ($2): $out"
}
# value FILE SERIES: the value of one series (exact name and labels), or "" when absent.
value() {
        awk -v s="$2" 'index($0, s " ") == 1 { print $NF }' "$1"
}

# ---- outcomes: issued (alice, bob), pending then issued, failure, permission, cache full, HTTP 503 ----
a=$(cb_enroll alice corp web.a.example.test)
b=$(enroll_renew bob corp host.b.example.test)      # renewed by the broker: a RenewAt
lab_assert_eq "$(cb_wait alice "$a" 60)" issued "alice's request"
lab_assert_eq "$(cb_wait bob "$b" 60)" issued "bob's request"
ndes ctl pending=on >/dev/null
p=$(cb_enroll alice corp pend.a.example.test)
lab_wait_for 30 "pending" bash -c "[ \"\$(busctl --system get-property $CB_BUS $p $CB_BUS.Request State)\" = 's \"pending\"' ]"
ndes ctl pending=off >/dev/null
ndes approve all >/dev/null
lab_assert_eq "$(cb_wait alice "$p" 60)" issued "the pending request, approved"
f=$(cb_enroll root badpw bad.a.example.test)
lab_assert_eq "$(cb_wait root "$f" 60)" rejected "the request with a challenge NDES does not know"
ndes ctl permission=denied >/dev/null
d=$(cb_enroll root corp denied.a.example.test)
lab_assert_eq "$(cb_wait root "$d" 60)" failed "the request NDES's admin page refuses"
# NDES's cache of unused challenges, one deep, filled by a challenge fetched here and not used.
ndes ctl permission=granted cache_size=1 >/dev/null
KRB5CCNAME=FILE:$LAB_DIR/test.ccache kinit -k -t "$LAB_SVC_KEYTAB" svc-scep >/dev/null 2>&1 || lab_fail "kinit svc-scep"
KRB5CCNAME=FILE:$LAB_DIR/test.ccache ndes_challenge >/dev/null
full=$(cb_enroll root corp full.a.example.test)
lab_wait_for 30 "a cache-full answer" bash -c "busctl --system get-property $CB_BUS $full $CB_BUS.Request ErrorMessage | grep -q 'password cache is full'"
cb root call "$CB_BUS" "$full" "$CB_BUS.Request" Cancel >/dev/null
ndes restart >/dev/null
ndes ctl cache_size=5 unavailable=on >/dev/null
u=$(cb_enroll root corp down.a.example.test)
lab_wait_for 30 "an HTTP 503 answer" bash -c "busctl --system get-property $CB_BUS $u $CB_BUS.Request State | grep -q retrying"
cb root call "$CB_BUS" "$u" "$CB_BUS.Request" Cancel >/dev/null
ndes ctl unavailable=off >/dev/null

# ---- root's view ----
"$CTL" metrics >"$LAB_DIR/root.prom" || lab_fail "certbrokerctl metrics as root failed"
metrics_check "$LAB_DIR/root.prom" "root's view"
a_id=${a##*/} b_id=${b##*/}
alice_uid=$(id -u alice) bob_uid=$(id -u bob)
not_after=$(busctl --system get-property "$CB_BUS" "$a" "$CB_BUS.Request" NotAfter | cut -d' ' -f2)
lab_assert_eq "$(value "$LAB_DIR/root.prom" "certbroker_certificate_not_after_seconds{request=\"$a_id\",owner=\"$alice_uid\",ca=\"corp\",name=\"web.a.example.test\"}")" \
        "$((not_after / 1000000))" "alice's certificate's NotAfter"
renew_at=$(busctl --system get-property "$CB_BUS" "$b" "$CB_BUS.Request" RenewAt | cut -d' ' -f2)
[ "$renew_at" != 0 ] || lab_fail "bob's renewed request has no RenewAt"
b_labels="{request=\"$b_id\",owner=\"$bob_uid\",ca=\"corp\",name=\"host.b.example.test\"}"
lab_assert_eq "$(value "$LAB_DIR/root.prom" "certbroker_certificate_renew_at_seconds$b_labels")" \
        "$((renew_at / 1000000))" "bob's certificate's RenewAt"
lab_assert_eq "$(value "$LAB_DIR/root.prom" "certbroker_certificate_superseded$b_labels")" 0 "bob's certificate not renewed yet"
[ -z "$(value "$LAB_DIR/root.prom" "certbroker_certificate_renew_at_seconds{request=\"$a_id\",owner=\"$alice_uid\",ca=\"corp\",name=\"web.a.example.test\"}")" ] ||
        lab_fail "a RenewAt for alice's request, which the broker does not renew"
lab_assert_eq "$(value "$LAB_DIR/root.prom" 'certbroker_renewals_failed')" 0 "failed renewals"
[ -n "$(value "$LAB_DIR/root.prom" "certbroker_certificate_not_after_seconds{request=\"$b_id\",owner=\"$bob_uid\",ca=\"corp\",name=\"host.b.example.test\"}")" ] ||
        lab_fail "root's view lacks bob's certificate"
lab_assert_eq "$(value "$LAB_DIR/root.prom" 'certbroker_requests{state="issued"}')" 3 "issued requests"
lab_assert_eq "$(value "$LAB_DIR/root.prom" 'certbroker_requests{state="rejected"}')" 1 "rejected requests"
lab_assert_eq "$(value "$LAB_DIR/root.prom" 'certbroker_requests{state="cancelled"}')" 2 "cancelled requests"
lab_assert_eq "$(value "$LAB_DIR/root.prom" 'certbroker_ndes_answers_total{ca="corp",outcome="issued"}')" 3 "NDES issued"
n=$(value "$LAB_DIR/root.prom" 'certbroker_ndes_answers_total{ca="corp",outcome="pending"}')
[ "${n:-0}" -ge 1 ] || lab_fail "NDES pending answers not counted: $n"
lab_assert_eq "$(value "$LAB_DIR/root.prom" 'certbroker_ndes_answers_total{ca="badpw",outcome="failure"}')" 1 "NDES failure"
lab_assert_eq "$(value "$LAB_DIR/root.prom" 'certbroker_ndes_answers_total{ca="corp",outcome="permission"}')" 1 "NDES permission"
n=$(value "$LAB_DIR/root.prom" 'certbroker_ndes_answers_total{ca="corp",outcome="cache_full"}')
[ "${n:-0}" -ge 1 ] || lab_fail "NDES cache-full answers not counted: $n"
n=$(value "$LAB_DIR/root.prom" 'certbroker_ndes_answers_total{ca="corp",outcome="http_error"}')
[ "${n:-0}" -ge 1 ] || lab_fail "NDES HTTP errors (503) not counted: $n"
lab_assert_eq "$(value "$LAB_DIR/root.prom" 'certbroker_enrollment_duration_seconds_count{ca="corp"}')" 3 "enrollment durations observed"
lab_assert_eq "$(value "$LAB_DIR/root.prom" 'certbroker_enrollment_duration_seconds_bucket{ca="corp",le="+Inf"}')" 3 "the +Inf bucket"
[ -n "$(value "$LAB_DIR/root.prom" 'certbroker_outstanding_challenges{ca="corp"}')" ] || lab_fail "no outstanding challenges gauge"
lab_pass "certbrokerctl metrics as root: certificates, requests by state, NDES outcomes, durations; promtool accepts it"

out=$("$CTL" --json metrics 2>&1) && lab_fail "certbrokerctl --json metrics succeeded: $out"
lab_assert_contains "$out" "'metrics' does not take --json" "metrics with --json"

# ---- alice's view: her own requests, no broker-wide counters ----
lab_run_as alice "$CTL" metrics >"$LAB_DIR/alice.prom" || lab_fail "certbrokerctl metrics as alice failed"
metrics_check "$LAB_DIR/alice.prom" "alice's view"
lab_assert_contains "$(cat "$LAB_DIR/alice.prom")" "request=\"$a_id\"" "alice sees her request"
lab_assert_file_lacks "$LAB_DIR/alice.prom" "$b_id" "alice does not see bob's request"
lab_assert_file_lacks "$LAB_DIR/alice.prom" "certbroker_ndes_answers_total" "alice does not see the broker's counters"
lab_assert_eq "$(value "$LAB_DIR/alice.prom" 'certbroker_requests{state="issued"}')" 2 "alice's issued requests"
lab_pass "certbrokerctl metrics as a user: only her own requests"

# ---- the textfile, rewritten every minute (no Reload here: the minutely writer must bring the
# requests made since the start-up's write), and a real node_exporter scraping it ----
p_id=${p##*/}
lab_wait_for 75 "the minutely textfile with the approved request" \
        grep -q "certbroker_certificate_not_after_seconds{request=\"$p_id\"" "$TEXTFILE/certbroker.prom"
metrics_check "$TEXTFILE/certbroker.prom" "the textfile"
lab_assert_eq "$(stat -c %a "$TEXTFILE/certbroker.prom")" 644 "the textfile's mode"
[ -z "$(find "$TEXTFILE" -name '*.tmp')" ] || lab_fail "a temporary file was left behind"
lab_start node_exporter "$NODE_EXPORTER" --web.listen-address=127.0.0.1:9100 --collector.disable-defaults \
        --collector.textfile --collector.textfile.directory="$TEXTFILE"
lab_wait_for 20 "node_exporter" curl -sf -o /dev/null http://127.0.0.1:9100/metrics
scrape=$(curl -sf http://127.0.0.1:9100/metrics) || lab_fail "cannot scrape node_exporter"
lab_assert_contains "$scrape" "certbroker_certificate_not_after_seconds{ca=\"corp\",name=\"web.a.example.test\",owner=\"$alice_uid\",request=\"$a_id\"} " \
        "node_exporter serves alice's certificate"
lab_assert_contains "$scrape" 'certbroker_ndes_answers_total{ca="corp",outcome="issued"} 3' "node_exporter serves the NDES counters"
lab_assert_contains "$scrape" 'node_textfile_scrape_error 0' "node_exporter read the file without error"
lab_stop node_exporter
lab_pass "the textfile: atomic, 0644, accepted by promtool and served by prometheus-node-exporter"

# ---- bad input: a symbolic link planted by another user; a directory others can write ----
mkdir -m 0755 "$LAB_DIR/target"
mkdir -m 0777 "$LAB_DIR/shared"
lab_run_as alice ln -s "$LAB_DIR/target" "$LAB_DIR/shared/planted"
sed -i "s|^MetricsTextfileDirectory=.*|MetricsTextfileDirectory=$LAB_DIR/shared/planted|" "$CB_CONF/certbroker.conf"
busctl --system call "$CB_BUS" "$CB_PATH" "$CB_BUS.Manager" Reload
lab_wait_for 10 "the broker's refusal of the planted link" \
        grep -q "MetricsTextfileDirectory=$LAB_DIR/shared/planted is a symbolic link owned by uid $alice_uid" "$LAB_DIR/certbrokerd.log"
[ -z "$(ls -A "$LAB_DIR/target")" ] || lab_fail "the broker wrote through a planted link: $(ls -A "$LAB_DIR/target")"
sed -i "s|^MetricsTextfileDirectory=.*|MetricsTextfileDirectory=$LAB_DIR/shared|" "$CB_CONF/certbroker.conf"
busctl --system call "$CB_BUS" "$CB_PATH" "$CB_BUS.Manager" Reload
lab_wait_for 10 "the broker's refusal of a world-writable directory" \
        grep -q "MetricsTextfileDirectory=$LAB_DIR/shared (owner uid 0, group gid 0, mode 0777) can be written by others" "$LAB_DIR/certbrokerd.log"
[ "$(ls -A "$LAB_DIR/shared")" = planted ] || lab_fail "the broker wrote into a world-writable directory: $(ls -A "$LAB_DIR/shared")"
lab_pass "bad input: a planted link and a world-writable textfile directory are refused and named, nothing written"
broker_stop
