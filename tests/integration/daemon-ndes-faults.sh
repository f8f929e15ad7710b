#!/usr/bin/env bash
# Nothing gets stuck: every answer class a server can give (2xx that is not the answer asked
# for, 3xx, 4xx, 5xx, a timeout, a TLS failure, CertRep FAILURE with each failInfo, PENDING
# for ever) at every step (GetCACaps, GetCACert, the mscep_admin challenge, PKCSReq, CertPoll),
# on a fresh request and on one resumed after kill -9 while its PKCSReq was at the CA. Each
# case is a CA of its own whose URL names its faults (tests/ndes/README.md, "Faults by path"),
# so all cases of a phase run at once against one emulator. Each must end as its row says:
# issued (with the duplicate risk recorded where a submission was in doubt), failed with a
# named error, or rejected with the failInfo named; none may be left without a next step.
set -euo pipefail
: "${CB_SOURCE_ROOT:=$(cd "$(dirname "$0")/../.." && pwd)}"
. "$CB_SOURCE_ROOT/tests/integration/daemon-enter.sh" "$@"

broker_lab
rm "$CB_CONF/ca.d/corp.conf"
# Dozens of CAs fetch at once here: the password cache is not what this test is about.
ndes ctl cache_size=500 >/dev/null
broker_policy_alice faults MaxActive=200 MaxRequests=1000/1h
base=https://ndes.example.test

# Another TLS root than the one that signed the lab server's certificate.
openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$LAB_DIR/other-root.key" \
        -out "$LAB_DIR/other-root.pem" -days 2 -subj "/CN=not the lab root" >/dev/null 2>&1
chmod 0644 "$LAB_DIR/other-root.pem"

# ca_conf NAME SPEC [DEADLINE [TIMEOUT [SCEP_HOST]]]: a CA meeting the faults of SPEC ("-":
# none), giving up on pending requests after DEADLINE seconds (default 600), waiting TIMEOUT
# seconds for an answer (default 4), its mscep.dll on SCEP_HOST (default the admin page's host,
# ndes.example.test). The CA's name tags the SPEC, so that no two CAs share the emulator's
# fault counters.
ca_conf() {
        local name=$1 spec=$2 deadline=${3:-600} timeout=${4:-4} scep=${5:-ndes.example.test} prefix
        prefix=/f/tag.$name
        [ "$spec" = - ] || prefix=$prefix,$spec
        {
                echo "[CA]"
                echo "URL=https://$scep$prefix/certsrv/mscep/mscep.dll"
                echo "AdminURL=$base$prefix/certsrv/mscep_admin/"
                echo "TrustAnchors=$LAB_TLS_ROOT"
                echo "Timeout=$timeout"
                echo "PollInterval=1"
                echo "PendingDeadline=$deadline"
        } >"$CB_CONF/ca.d/$name.conf"
}

# Rows: CA-name | SPEC | expected outcome. Outcomes: issued; issued-warned (issued, with the
# duplicate risk in Warning); failed:ERROR; rejected:FAILINFO; timeout (failed Timeout after
# PendingDeadline=). A trailing "!k" on the name marks resumed cases (killed while the
# PKCSReq was at the CA; the SPEC applies from the restart on).
fresh_rows=(
        "caps-html|caps.html.2|issued"
        "caps-302|caps.302.2|failed:ProtocolError"
        "caps-404|caps.404.2|failed:ProtocolError"
        "caps-500|caps.500.2|issued"
        "caps-503|caps.503.2|issued"
        "caps-timeout|caps.timeout.2|issued"
        "cacert-html|cacert.html.2|issued"
        "cacert-302|cacert.302.2|failed:ProtocolError"
        "cacert-404|cacert.404.2|failed:ProtocolError"
        "cacert-500|cacert.500.2|issued"
        "cacert-503|cacert.503.2|issued"
        "cacert-timeout|cacert.timeout.2|issued"
        "admin-html|admin.html.2|issued"
        "admin-302|admin.302.2|failed:ProtocolError"
        "admin-404|admin.404.2|failed:ProtocolError"
        "admin-500|admin.500.2|issued"
        "admin-503|admin.503.2|issued"
        "admin-timeout|admin.timeout.2|issued"
        "pkcs-html|pkcsreq.html.2|issued-warned"
        "pkcs-302|pkcsreq.302.2|failed:ProtocolError"
        "pkcs-404|pkcsreq.404.2|failed:ProtocolError"
        "pkcs-500|pkcsreq.500.2|issued-warned"
        "pkcs-503|pkcsreq.503.2|issued"
        "pkcs-timeout|pkcsreq.timeout.2|issued-warned"
        "pkcs-undecryptable|pkcsreq.undecryptable.2|issued-warned"
        "pkcs-unknownpw|pkcsreq.unknownpw.1|issued"
        "pkcs-unknownpw-twice|pkcsreq.unknownpw.2|rejected:badMessageCheck"
        "pkcs-fail0|pkcsreq.fail0|rejected:badAlg"
        "pkcs-fail1|pkcsreq.fail1|rejected:badMessageCheck"
        "pkcs-fail2|pkcsreq.fail2|rejected:badRequest"
        "pkcs-fail3|pkcsreq.fail3|rejected:badTime"
        "pkcs-fail4|pkcsreq.fail4|rejected:badCertId"
        "pending-forever|pkcsreq.pending,certpoll.pending|timeout"
        "poll-html|pkcsreq.pending.1,certpoll.html.2|issued"
        "poll-302|pkcsreq.pending.1,certpoll.302.2|issued"
        "poll-404|pkcsreq.pending.1,certpoll.404.2|issued"
        "poll-500|pkcsreq.pending.1,certpoll.500.2|issued"
        "poll-503|pkcsreq.pending.1,certpoll.503.2|issued"
        "poll-timeout|pkcsreq.pending.1,certpoll.timeout.2|issued"
        "poll-fail2|pkcsreq.pending.1,certpoll.fail2|rejected:badRequest"
        "tls|-|failed:TLSVerifyFailed"
)
resumed_rows=(
        "r-none|-|issued-warned"
        "r-caps-html|caps.html.2|issued-warned"
        "r-caps-302|caps.302|failed:ProtocolError"
        "r-caps-404|caps.404|failed:ProtocolError"
        "r-caps-500|caps.500.2|issued-warned"
        "r-caps-503|caps.503.2|issued-warned"
        "r-caps-timeout|caps.timeout.2|issued-warned"
        "r-cacert-html|cacert.html.2|issued-warned"
        "r-cacert-302|cacert.302|failed:ProtocolError"
        "r-cacert-404|cacert.404|failed:ProtocolError"
        "r-cacert-500|cacert.500.2|issued-warned"
        "r-cacert-503|cacert.503.2|issued-warned"
        "r-cacert-timeout|cacert.timeout.2|issued-warned"
        "r-admin-html|admin.html.2|issued-warned"
        "r-admin-302|admin.302|failed:ProtocolError"
        "r-admin-404|admin.404|failed:ProtocolError"
        "r-admin-500|admin.500.2|issued-warned"
        "r-admin-503|admin.503.2|issued-warned"
        "r-admin-timeout|admin.timeout.2|issued-warned"
        "r-pkcs-html|pkcsreq.html.2|issued-warned"
        "r-pkcs-302|pkcsreq.302|failed:ProtocolError"
        "r-pkcs-404|pkcsreq.404|failed:ProtocolError"
        "r-pkcs-500|pkcsreq.500.1|issued-warned"
        "r-pkcs-503|pkcsreq.503.2|issued-warned"
        "r-pkcs-timeout|pkcsreq.timeout.1|issued-warned"
        "r-pkcs-fail0|pkcsreq.fail0|rejected:badAlg"
        "r-pkcs-fail1|pkcsreq.fail1|rejected:badMessageCheck"
        "r-pkcs-fail2|pkcsreq.fail2|rejected:badRequest"
        "r-pkcs-fail3|pkcsreq.fail3|rejected:badTime"
        "r-pkcs-fail4|pkcsreq.fail4|rejected:badCertId"
        "r-poll-html|certpoll.html|issued-warned"
        "r-poll-302|certpoll.302|issued-warned"
        "r-poll-404|certpoll.404|issued-warned"
        "r-poll-500|certpoll.500|issued-warned"
        "r-poll-503|certpoll.503.2|issued-warned"
        "r-poll-timeout|certpoll.timeout|issued-warned"
        "r-poll-fail2|certpoll.fail2|issued-warned"
        "r-poll-pending|certpoll.pending|timeout"
        "r-tls|-|failed:TLSVerifyFailed"
)

declare -A path_of expect_of
# enroll_rows ROW...: one request per row, on its CA.
enroll_rows() {
        local row name
        for row in "$@"; do
                name=${row%%|*}
                path_of[$name]=$(cb_enroll alice "$name" "$name.a.example.test") || lab_fail "Enroll on CA $name failed"
                expect_of[$name]=${row##*|}
        done
}

# settle SECONDS ROW...: waits until every row's request is terminal (approving what the CA
# holds pending meanwhile), then checks each outcome against its row. A request still in
# progress at the end must have a next attempt within the retry bound.
settle() {
        local limit=$1 row name state now next left t0
        shift
        t0=$(date +%s)
        while :; do
                left=0
                for row in "$@"; do
                        name=${row%%|*}
                        case $(cb_prop alice "${path_of[$name]}" State) in
                                issued|failed|rejected|cancelled) ;;
                                *) left=$((left + 1)) ;;
                        esac
                done
                [ "$left" -gt 0 ] || break
                if [ $(($(date +%s) - t0)) -ge "$limit" ]; then
                        now=$(date +%s)
                        for row in "$@"; do
                                name=${row%%|*}
                                state=$(cb_prop alice "${path_of[$name]}" State)
                                case $state in issued|failed|rejected) continue ;; esac
                                next=$(tprop alice "${path_of[$name]}" NextAttempt)
                                echo "# $name: still $state, next attempt at $next (now $now), $(cb_prop alice "${path_of[$name]}" ErrorMessage)" >&2
                                [ "$next" -gt 0 ] && [ "$next" -le $(((now + 20 * 60) * 1000000)) ] ||
                                        lab_fail "$name: $state without a bounded next attempt (NextAttempt=$next)"
                        done
                        lab_fail "$left requests did not finish within $limit s (listed above)"
                fi
                ndes approve all >/dev/null 2>&1 || true
                sleep 1
        done
        for row in "$@"; do
                check_row "$row"
        done
}

check_row() {
        local row=$1 name expect p state err msg warn
        name=${row%%|*}
        expect=${expect_of[$name]}
        p=${path_of[$name]}
        state=$(cb_prop alice "$p" State)
        err=$(cb_prop alice "$p" Error)
        msg=$(cb_prop alice "$p" ErrorMessage)
        warn=$(cb_prop alice "$p" Warning)
        case $expect in
        issued)
                [ "$state" = issued ] || lab_fail "$name: ended $state ($err: $msg), expected issued"
                lab_assert_eq "$warn" "" "$name: Warning of a request never in doubt"
                ;;
        issued-warned)
                [ "$state" = issued ] || lab_fail "$name: ended $state ($err: $msg), expected issued"
                lab_assert_contains "$warn" "may have been issued twice" "$name: the duplicate risk is recorded"
                lab_assert_contains "$warn" "$(cb_prop alice "$p" TransactionId)" "$name: the Warning names the transaction"
                ;;
        failed:*)
                [ "$state" = failed ] || lab_fail "$name: ended $state ($err: $msg), expected failed"
                lab_assert_eq "$err" "org.certbroker.Broker1.Error.${expect#failed:}" "$name: Error"
                [ -n "$msg" ] || lab_fail "$name: failed without an ErrorMessage"
                ;;
        rejected:*)
                [ "$state" = rejected ] || lab_fail "$name: ended $state ($err: $msg), expected rejected"
                lab_assert_eq "$(cb_prop alice "$p" FailInfo)" "${expect#rejected:}" "$name: FailInfo"
                [ -n "$msg" ] || lab_fail "$name: rejected without an ErrorMessage"
                ;;
        timeout)
                [ "$state" = failed ] || lab_fail "$name: ended $state ($err: $msg), expected failed (Timeout)"
                lab_assert_eq "$err" "org.certbroker.Broker1.Error.Timeout" "$name: Error"
                ;;
        *) lab_fail "$name: unknown expectation '$expect'" ;;
        esac
}

# ---- fresh requests ----
for row in "${fresh_rows[@]}"; do
        IFS='|' read -r name spec _ <<<"$row"
        case $name in
                tls) ca_conf "$name" "$spec" ;;
                pending-forever) ca_conf "$name" "$spec" 15 ;;
                *) ca_conf "$name" "$spec" ;;
        esac
done
sed -i "s|^TrustAnchors=.*|TrustAnchors=$LAB_DIR/other-root.pem|" "$CB_CONF/ca.d/tls.conf"
broker_start
enroll_rows "${fresh_rows[@]}"
settle 400 "${fresh_rows[@]}"
lab_pass "fresh: ${#fresh_rows[@]} answer classes at GetCACaps, GetCACert, mscep_admin, PKCSReq and CertPoll each end as expected"

# A CertRep FAILURE with 0x80070490 (challenge unknown) is retried at once with a fresh
# challenge, once: two PKCSReqs for the first case, two (then rejected) for the second.
for name in pkcs-unknownpw pkcs-unknownpw-twice; do
        txid=$(cb_prop alice "${path_of[$name]}" TransactionId)
        lab_assert_eq "$(ndes log --scep | grep "txid=$txid" | grep -c 'type=19 .*status=\(SUCCESS\|FAILURE\)')" 2 \
                "$name: PKCSReqs answered"
done
lab_assert_contains "$(cb_prop alice "${path_of[pkcs-unknownpw-twice]}" ErrorMessage)" "0x80070490" \
        "the rejection names NDES's HRESULT"
lab_pass "an unknown challenge (0x80070490) is retried once at once with a fresh one"

# A PKCSReq answered 503 (IIS: NDES's application pool stopped) never reached NDES: not in
# doubt (no CertPoll, no Warning), and its challenge serves the next try: one fetched in all.
lab_assert_eq "$(grep -c 'GET /f/tag.pkcs-503,[^ ]*certsrv/mscep_admin/ [^"]*" 200' "$LAB_APACHE_ACCESS_LOG" || true)" 1 \
        "challenges fetched for three PKCSReqs, two answered 503"
txid=$(cb_prop alice "${path_of[pkcs-503]}" TransactionId)
lab_assert_eq "$(ndes log --scep | grep "txid=$txid" | grep -c 'type=20' || true)" 0 "CertPolls after a 503"
lab_pass "a PKCSReq answered 503 is not in doubt, and its challenge is used again"

# A Reload while a PKIOperation is at the CA: the answer is read with the CA certificates the
# request was built with (the Reload makes the broker fetch the CA's again).
ca_conf reload-inflight pkcsreq.hold.1 600 120
cb root call "$CB_BUS" "$CB_PATH" "$CB_BUS.Manager" Reload >/dev/null
rm -f "$NDES_STATE/release"
answered=$(ndes log --scep | grep -c 'type=19 .*status=SUCCESS' || true)
p=$(cb_enroll alice reload-inflight reload-inflight.a.example.test)
lab_wait_for 60 "the PKCSReq to be issued and held at the CA" bash -c \
        "[ \$('$NDES_EMULATOR' log --state '$NDES_STATE' --scep | grep -c 'type=19 .*status=SUCCESS') -gt $answered ]"
cb root call "$CB_BUS" "$CB_PATH" "$CB_BUS.Manager" Reload >/dev/null
ndes release
state=$(cb_wait alice "$p" 60)
[ "$state" = issued ] || lab_fail "a request whose PKIOperation was at the CA during a Reload ended '$state': $(cb_prop alice "$p" ErrorMessage)"
lab_assert_eq "$(cb_prop alice "$p" Warning)" "" "Warning of the request answered across the Reload"
lab_pass "a Reload while a PKIOperation is at the CA: its answer is still read, the request issued once"

# ---- resumed after kill -9 while the PKCSReq was at the CA ----
# Before the kill every resumed CA issues, but holds its answer to the PKCSReq until the test
# releases it, and the broker waits for it (Timeout=280). The broker keeps at most 8
# connections to one host, so the PKIOperations go to another name of the server
# (ndes-alias.example.test) than the challenges: 8 PKCSReqs are at the CA, issued, when the
# broker is killed, the others recorded as submitted (their TransactionId set) and waiting for
# a connection; either way the broker cannot know after the restart and must ask. From the
# restart on each CA meets the faults of its row, all on ndes.example.test.
for row in "${resumed_rows[@]}"; do
        IFS='|' read -r name spec _ <<<"$row"
        ca_conf "$name" tag.before,pkcsreq.hold.1 600 280 ndes-alias.example.test
done
cb root call "$CB_BUS" "$CB_PATH" "$CB_BUS.Manager" Reload >/dev/null
# Their capabilities and certificates first (CA.Refresh), so that the held PKIOperations are the
# only traffic to ndes-alias.example.test when the enrollments start.
ca_path() { printf '%s/ca/%s' "$CB_PATH" "$(printf '%s' "$1" | sed 's/_/_5f/g; s/-/_2d/g')"; }
ca_ready() { [ "$(busctl --system get-property "$CB_BUS" "$(ca_path "$1")" "$CB_BUS.CA" CACertificates)" != 's ""' ]; }
for row in "${resumed_rows[@]}"; do
        cb root call "$CB_BUS" "$(ca_path "${row%%|*}")" "$CB_BUS.CA" Refresh >/dev/null
done
for row in "${resumed_rows[@]}"; do
        lab_wait_for 120 "CA ${row%%|*}'s certificates" ca_ready "${row%%|*}"
done
answered_before=$(ndes log --scep | grep -c 'type=19 .*status=SUCCESS' || true)
rm -f "$NDES_STATE/release"
enroll_rows "${resumed_rows[@]}"
all_submitted() {
        local row
        for row in "${resumed_rows[@]}"; do
                [ "$(busctl --system get-property "$CB_BUS" "${path_of[${row%%|*}]}" "$CB_BUS.Request" TransactionId)" != 's ""' ] ||
                        return 1
        done
}
lab_wait_for 200 "8 PKCSReqs issued and held at the CA" bash -c \
        "[ \$('$NDES_EMULATOR' log --state '$NDES_STATE' --scep | grep -c 'type=19 .*status=SUCCESS') -ge $((answered_before + 8)) ]"
lab_wait_for 200 "all ${#resumed_rows[@]} PKCSReqs recorded as submitted" all_submitted
kill -9 "$(lab_pid certbrokerd)"
lab_stop certbrokerd
broker_check_log
ndes release
for row in "${resumed_rows[@]}"; do
        IFS='|' read -r name spec _ <<<"$row"
        case $name in
                r-poll-pending) ca_conf "$name" "$spec" 60 ;;
                *) ca_conf "$name" "$spec" ;;
        esac
done
sed -i "s|^TrustAnchors=.*|TrustAnchors=$LAB_DIR/other-root.pem|" "$CB_CONF/ca.d/r-tls.conf"
broker_start
settle 400 "${resumed_rows[@]}"
# micromdm-like CertPoll (HTTP 500 for ever): at most 3 CertPolls before the resubmission.
txid=$(cb_prop alice "${path_of[r-poll-500]}" TransactionId)
polls=$(ndes log --scep | grep "txid=$txid" | grep -c 'type=20' || true)
[ "$polls" -ge 1 ] && [ "$polls" -le 3 ] || lab_fail "r-poll-500: $polls CertPolls before submitting again (1 to 3 expected)"
lab_assert_contains "$(cat "$LAB_DIR/certbrokerd.log")" "duplicate-risk" "the audit log records the duplicate risk"
lab_pass "resumed after kill -9: ${#resumed_rows[@]} answer classes end as expected; a server that cannot answer CertPoll gets at most 3 before the request is submitted again"

broker_stop
