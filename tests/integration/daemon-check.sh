#!/usr/bin/env bash
# CA.Check(): the diagnostic steps in order, against the real lab, with fixes in the words of
# the Windows-side setup; who may call it; the challenge step only on request.
set -euo pipefail
: "${CB_SOURCE_ROOT:=$(cd "$(dirname "$0")/../.." && pwd)}"
. "$CB_SOURCE_ROOT/tests/integration/daemon-enter.sh" "$@"

broker_lab
# A second CA on a host without an HTTP/ principal: the setspn step is missing.
sed -e 's/Default=yes/Default=no/' -e 's/ndes\.example\.test/ndes-alias.example.test/' \
        "$CB_CONF/ca.d/corp.conf" >"$CB_CONF/ca.d/nospn.conf"
sed -e 's/Default=yes/Default=no/' "$CB_CONF/ca.d/corp.conf" >"$CB_CONF/ca.d/gone.conf"
broker_start
lab_wait_for 20 "ticket-granting ticket" bash -c \
        "[ \"\$(busctl --system get-property $CB_BUS $CB_PATH $CB_BUS.Manager CredentialState)\" = 's \"valid\"' ]"

check() { cb "$1" --timeout=60 call "$CB_BUS" "/org/certbroker/Broker1/ca/$2" "$CB_BUS.CA" Check a{sv} "${@:3}"; }

out=$(check root corp 0)
for step in configuration keytab ticket-granting-ticket service-ticket tls getcacaps getcacert; do
        lab_assert_contains "$out" "\"$step\" \"ok\"" "Check step $step"
done
lab_assert_not_contains "$out" '"challenge"' "Check without the challenge option"
before=$(ndes log | wc -l)
out=$(check alice corp 1 challenge b true)
lab_assert_contains "$out" '"challenge" "ok"' "Check with challenge=true, as alice (tenant-a may use corp)"
lab_assert_eq "$(ndes log | wc -l)" "$((before + 1))" "challenge fetches during Check"
lab_pass "Check passes every step against a well set-up NDES; the challenge step only on request"

# The challenge the Check fetched is not thrown away: the next enrollment uses it.
path=$(cb_enroll alice corp spare.a.example.test)
lab_assert_eq "$(cb_wait alice "$path" 60)" issued "the enrollment after a challenge Check"
lab_assert_eq "$(ndes log | wc -l)" "$((before + 1))" "challenge fetches for Check and the next enrollment"
lab_assert_eq "$(ndes_scep_log_count 'status=SUCCESS')" 1 "certificates issued"
lab_pass "a challenge fetched by Check serves the next enrollment (one challenge spent for both)"

# Each challenge Check spends one of NDES's few passwords: once per 10 minutes per user and CA.
if out=$(check alice corp 1 challenge b true 2>&1); then
        lab_fail "a second challenge Check by alice right away was run: $out"
fi
lab_assert_contains "$out" "once per 10 minutes per user" "the second challenge Check's reason"
lab_assert_eq "$(ndes log | wc -l)" "$((before + 1))" "challenge fetches after the refused Check"
out=$(check alice corp 0)
lab_assert_contains "$out" '"getcacert" "ok"' "alice's Check without the challenge option"
out=$(check root corp 1 challenge b true)
lab_assert_contains "$out" '"challenge" "ok"' "root's challenge Check"
lab_pass "challenge Checks are limited per user and CA (root is not); Checks without it are not"

out=$(check root nospn 0)
lab_assert_contains "$out" '"service-ticket" "fail"' "service ticket for a host without SPN"
lab_assert_contains "$out" "setspn" "the fix names setspn"
lab_assert_contains "$out" '"getcacert" "skip"' "steps after a failure"
lab_pass "a host without an HTTP/ principal fails at the service ticket with the setspn fix"

if out=$(check mallory corp 0 2>&1); then
        lab_fail "mallory (no rule) ran Check: $out"
fi
lab_assert_contains "$out" "No policy rule lets you use CA 'corp'" "Check by mallory"
if out=$(check alice corp 1 bogus b true 2>&1); then
        lab_fail "an unknown Check option was accepted"
fi
lab_assert_contains "$out" "Unknown option 'bogus'" "unknown Check option"
if out=$(cb alice call "$CB_BUS" /org/certbroker/Broker1/ca/corp "$CB_BUS.CA" Refresh 2>&1); then
        lab_fail "alice may Refresh"
fi
cb root call "$CB_BUS" /org/certbroker/Broker1/ca/corp "$CB_BUS.CA" Refresh >/dev/null
if out=$(cb alice call "$CB_BUS" /org/certbroker/Broker1/ca/nope "$CB_BUS.CA" Check a{sv} 0 2>&1); then
        lab_fail "Check on a CA that is not configured succeeded"
fi
lab_assert_contains "$out" "No CA 'nope' is configured" "Check on an unknown CA"
lab_pass "Check is for root and callers a rule allows to use the CA; Refresh is root's; unknown CAs are named"

# A Reload that removes a CA while a Check() of it waits for the server: the Check answers.
apache_pids=$(pgrep -f "apache2.*$LAB_DIR" || true)
# shellcheck disable=SC2086
kill -STOP $apache_pids
check root gone 0 >"$LAB_DIR/gone.out" 2>&1 &
checker=$!
lab_wait_for 20 "the Check to reach the server" bash -c "ss -tn state established '( dport = :443 )' | grep -q 127.0.0.1"
# While it hangs: one Check per user at a time, and at most 8 in all.
started() { grep -c "CA.Check of corp by uid $1 started" "$LAB_DIR/certbrokerd.log" || true; }
base=$(started 2001)
check alice corp 0 >"$LAB_DIR/alice-check.out" 2>&1 &
alice_checker=$!
lab_wait_for 20 "alice's Check to start" bash -c "[ \$(grep -c 'CA.Check of corp by uid 2001 started' \
        '$LAB_DIR/certbrokerd.log') -gt $base ]"
if out=$(check alice corp 0 2>&1); then
        lab_fail "alice ran a second Check while her first one runs: $out"
fi
lab_assert_contains "$out" "previous Check is still running" "alice's second Check at once"
base=$(started 0)
others=()
for i in 1 2 3 4 5 6; do
        check root corp 0 >"$LAB_DIR/root-check-$i.out" 2>&1 &
        others+=($!)
done
lab_wait_for 20 "eight Checks running" bash -c "[ \$(grep -c 'CA.Check of corp by uid 0 started' \
        '$LAB_DIR/certbrokerd.log') -ge $((base + 6)) ]"
if out=$(check root corp 0 2>&1); then
        lab_fail "a ninth Check ran while eight were running: $out"
fi
lab_assert_contains "$out" "8 Checks are running already" "the ninth Check"
rm "$CB_CONF/ca.d/gone.conf"
cb root call "$CB_BUS" "$CB_PATH" "$CB_BUS.Manager" Reload >/dev/null
wait "$checker" || lab_fail "the interrupted Check got no reply: $(cat "$LAB_DIR/gone.out")"
# shellcheck disable=SC2086
kill -CONT $apache_pids
lab_assert_contains "$(cat "$LAB_DIR/gone.out")" "run Check() again" "a Check interrupted by a Reload"
lab_pass "a Reload that removes a CA answers its running Check instead of leaving it dangling"
wait "$alice_checker" || lab_fail "alice's Check failed: $(cat "$LAB_DIR/alice-check.out")"
for p in "${others[@]}"; do
        wait "$p" || lab_fail "a root Check failed"
done
lab_assert_contains "$(cat "$LAB_DIR/alice-check.out")" '"getcacert" "ok"' "alice's Check after the server woke up"
lab_pass "Checks run one at a time per user and at most 8 at once; the refused ones say why"

# After "The password cache is full" the CA fetches fewer challenges at once for a while (the
# ceiling); a challenge Check meeting that ceiling says so at once instead of waiting, for up
# to an hour, for a slot. NDES restarted with PasswordMax 1 (its cache empty).
sed -e 's/Default=yes/Default=no/' -e '/^MaxOutstandingChallenges=/d' "$CB_CONF/ca.d/corp.conf" \
        >"$CB_CONF/ca.d/ceiling.conf"
echo "MaxOutstandingChallenges=4" >>"$CB_CONF/ca.d/ceiling.conf"
cb root call "$CB_BUS" "$CB_PATH" "$CB_BUS.Manager" Reload >/dev/null
: >"$NDES_STATE/challenges"
ndes ctl cache_size=1 >/dev/null
out=$(check root ceiling 1 challenge b true)
lab_assert_contains "$out" '"challenge" "ok"' "the first challenge Check (its challenge kept: NDES's cache is full)"
out=$(check root ceiling 1 challenge b true)
lab_assert_contains "$out" '"challenge" "fail" "ndes.example.test answered \"The password cache is full.\"' \
        "the second challenge Check"
out=$(check root ceiling 1 challenge b true)
lab_assert_contains "$out" '"challenge" "skip" "not fetched: NDES answered \"The password cache is full\" lately, so this broker fetches at most 1 at once (of MaxOutstandingChallenges=4)' \
        "the third challenge Check, under the ceiling"
ndes ctl cache_size=5 >/dev/null
lab_pass "a challenge Check under the ceiling learned from a full NDES cache answers at once"

lab_kdc_stop
broker_stop
broker_start
out=$(check root corp 0)
lab_assert_contains "$out" '"ticket-granting-ticket" "fail"' "TGT with the KDC down"
lab_assert_contains "$out" "kdc.example.test" "the failure names the KDC"
lab_pass "with the KDC down, the ticket-granting ticket step fails naming the KDC"
broker_stop
