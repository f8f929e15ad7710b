#!/usr/bin/env bash
# A good NDES citizen: NDES keeps at most PasswordMax (5) unused challenges for all its clients,
# each until it expires. For five minutes, three CAs of one broker on one NDES meet nothing but
# failing PKIOperations (an envelope NDES cannot decrypt: no CertRep; HTTP 500; timeouts), and
# a fourth enrolls normally beside them. A challenge that no CertRep proved consumed stays
# counted against MaxOutstandingChallenges= until NDES forgets it (the minutes its page gives),
# so NDES's own count of outstanding challenges never exceeds the broker's caps, never fills,
# and the well-behaved CA never meets "The password cache is full." Then trust on first use: a
# CA without CAFingerprint= must match the thumbprint on the Kerberos-authenticated admin page.
set -euo pipefail
: "${CB_SOURCE_ROOT:=$(cd "$(dirname "$0")/../.." && pwd)}"
. "$CB_SOURCE_ROOT/tests/integration/daemon-enter.sh" "$@"

RUN_SECONDS=${CB_CITIZEN_SECONDS:-300}
broker_lab
rm "$CB_CONF/ca.d/corp.conf"
broker_policy_alice citizen MaxActive=200 MaxRequests=1000/1h
# NDES's defaults (PasswordMax 5), its PasswordValidity scaled from 60 minutes to 1 so that a
# held challenge expires, and is fetched again, within the run.
ndes ctl cache_size=5 challenge_ttl=60 >/dev/null
base=https://ndes.example.test

# ca_conf NAME SPEC CAP: a CA meeting the faults of SPEC ("-": none) with MaxOutstandingChallenges=CAP.
ca_conf() {
        local prefix=/f/tag.$1
        [ "$2" = - ] || prefix=$prefix,$2
        cat >"$CB_CONF/ca.d/$1.conf" <<CONF
[CA]
URL=$base$prefix/certsrv/mscep/mscep.dll
AdminURL=$base$prefix/certsrv/mscep_admin/
TrustAnchors=$LAB_TLS_ROOT
Timeout=4
MaxOutstandingChallenges=$3
CONF
}
ca_conf undecryptable pkcsreq.undecryptable 1
ca_conf error500 pkcsreq.500 1
ca_conf timeout pkcsreq.timeout 1
ca_conf good - 2
broker_start

bad_cas=(undecryptable error500 timeout)
declare -A paths
for ca in "${bad_cas[@]}"; do
        for i in 1 2 3; do
                paths[$ca-$i]=$(cb_enroll alice "$ca" "$ca-$i.a.example.test") || lab_fail "Enroll on $ca failed"
        done
done

# The run: the well-behaved CA enrolls one certificate every 20 s meanwhile.
t0=$(date +%s)
good=0
while [ $(($(date +%s) - t0)) -lt "$RUN_SECONDS" ]; do
        p=$(cb_enroll alice good "good-$good.a.example.test") || lab_fail "Enroll on the good CA failed"
        state=$(cb_wait alice "$p" 60)
        [ "$state" = issued ] ||
                lab_fail "the well-behaved CA's request $good ended '$state' beside failing ones: $(cb_prop alice "$p" ErrorMessage)"
        good=$((good + 1))
        lab_wait_for 30 "the next 20 s" bash -c "[ \$(( \$(date +%s) - $t0 )) -ge $((good * 20)) ]"
done

# NDES's own count: the unused, unexpired challenges in its cache at every fetch.
max=$(ndes log | sed -n 's/.*outstanding=\([0-9]*\).*/\1/p' | sort -n | tail -1)
full=$(ndes log | grep -c 'result=cache-full' || true)
lab_assert_eq "$full" 0 "cache-full answers"
[ "${max:-0}" -le 5 ] || lab_fail "NDES held $max unused challenges (its cache holds 5)"
# Per failing CA: the challenges it fetched, never more than one at a time held at NDES; a held
# one is freed only after it expired (1 minute + the broker's margin), so over the run the CA
# whose PKIOperations time out fetches about once every two minutes, where its retries alone
# would have fetched one every few seconds at first. The two answered HTTP 500 fetch one in
# all: after it, their tries pass it on while NDES keeps it, then ask without a challenge.
now=$(date +%s)
for ca in "${bad_cas[@]}"; do
        n=$(grep -c "GET /f/tag.$ca[,/][^ ]*certsrv/mscep_admin/ [^\"]*\" 200" "$LAB_APACHE_ACCESS_LOG" || true)
        echo "# $ca: $n challenges fetched in ${RUN_SECONDS} s"
        if [ "$ca" != timeout ]; then
                lab_assert_eq "$n" 1 "challenges fetched by $ca, which NDES answered HTTP 500"
                ids="${paths[$ca-1]##*/}|${paths[$ca-2]##*/}|${paths[$ca-3]##*/}"
                [ "$RUN_SECONDS" -lt 120 ] ||
                        grep -qE "Request ($ids): .*PKCSReq that carries no challenge" "$LAB_DIR/certbrokerd.log" ||
                        lab_fail "no request of $ca asked NDES without a challenge"
        fi
        [ "$RUN_SECONDS" -lt 120 ] || [ "$ca" != timeout ] || [ "$n" -ge 2 ] ||
                lab_fail "$ca fetched $n challenges: a held challenge was never given back after it expired"
        [ "$n" -le $((RUN_SECONDS / 110 + 2)) ] ||
                lab_fail "$ca fetched $n challenges in $RUN_SECONDS s: unconsumed ones were not held until they expired"
        for i in 1 2 3; do
                p=${paths[$ca-$i]}
                state=$(cb_prop alice "$p" State)
                case $state in
                        issued|failed|rejected|cancelled)
                                lab_fail "$ca-$i ended '$state' ($(cb_prop alice "$p" ErrorMessage)); a failing server is transient" ;;
                esac
                next=$(tprop alice "$p" NextAttempt)
                # Waiting for a challenge slot (at most until the held one expires) or for its
                # next attempt (at most the 15-minute backoff cap): bounded either way.
                [ "$next" -le $(((now + 20 * 60) * 1000000)) ] ||
                        lab_fail "$ca-$i: next attempt at $next, not within 20 minutes"
        done
done
echo "# NDES held at most $max unused challenges; the good CA enrolled $good times"
[ "$RUN_SECONDS" -lt 120 ] || lab_assert_contains "$(cb_prop alice "${paths[undecryptable-1]}" ErrorMessage)" \
        "HTTP 500" "the undecryptable CA's requests say what NDES answered"
lab_pass "$RUN_SECONDS s of failing PKIOperations on 3 CAs: NDES held at most $max unused challenges (cache 5), 0 cache-full, the good CA enrolled $good of $good"

# ---- CA.Check does not wait an hour for a slot held at NDES ----
# From here on NDES's cache is not what is tested: room for what the failing CAs left there.
ndes ctl challenge_ttl=3600 cache_size=50 >/dev/null
ca_conf held pkcsreq.undecryptable 1
cb root call "$CB_BUS" "$CB_PATH" "$CB_BUS.Manager" Reload >/dev/null
p=$(cb_enroll alice held held.a.example.test)
lab_wait_for 60 "the PKIOperation that NDES cannot decrypt" bash -c \
        "busctl --system get-property $CB_BUS $p $CB_BUS.Request ErrorMessage | grep -q 'HTTP 500'"
out=$(cb root --timeout=30 call "$CB_BUS" /org/certbroker/Broker1/ca/held "$CB_BUS.CA" Check a{sv} 1 challenge b true)
lab_assert_contains "$out" '"challenge" "skip" "not fetched: all 1 of MaxOutstandingChallenges= are taken (1 by challenges NDES still holds unused' \
        "Check's challenge step with the only slot held"
lab_pass "CA.Check reports a slot held at NDES instead of waiting for it"

# ---- NDES cannot decrypt a CA's requests (HTTP 500): one challenge at a time ----
# NDES never reads the challenge of a PKIOperation it cannot decrypt, so the challenge stays
# unused in its cache: it is passed on to the CA's next try, and the CA fetches no other one
# while it has it (MaxOutstandingChallenges=4 notwithstanding).
ca_conf unread pkcsreq.500 4
cb root call "$CB_BUS" "$CB_PATH" "$CB_BUS.Manager" Reload >/dev/null
unread_fetches() { ndes log | grep -c " who=unread result=issued" || true; }
got_500() { cb_prop alice "$1" ErrorMessage | grep -q 'HTTP 500'; }
u1=$(cb_enroll alice unread unread-1.a.example.test)
lab_wait_for 60 "the first PKIOperation answered HTTP 500" got_500 "$u1"
lab_assert_contains "$(grep 'CA unread:' "$LAB_DIR/certbrokerd.log")" "uses one challenge at a time" \
        "the notice of the CA's one challenge at a time"
cb alice call "$CB_BUS" "$u1" "$CB_BUS.Request" Cancel >/dev/null
# Its challenge is a spare now, the one the CA may have: a challenge Check does not fetch another.
out=$(cb root --timeout=30 call "$CB_BUS" /org/certbroker/Broker1/ca/unread "$CB_BUS.CA" Check a{sv} 1 challenge b true)
lab_assert_contains "$out" '"challenge" "skip" "not fetched: NDES could not read a PKIOperation of this CA lately (HTTP 500), so this broker fetches at most 1 at once (of MaxOutstandingChallenges=4)' \
        "a challenge Check while the CA has its one challenge"
u2=$(cb_enroll alice unread unread-2.a.example.test)
lab_wait_for 90 "the second request's HTTP 500" got_500 "$u2"
cb alice call "$CB_BUS" "$u2" "$CB_BUS.Request" Cancel >/dev/null
lab_assert_eq "$(unread_fetches)" 1 "challenges fetched for a Check and two requests NDES cannot decrypt"
rm "$CB_CONF/ca.d/unread.conf"
lab_pass "a CA whose PKIOperations NDES cannot decrypt passes one challenge on instead of fetching more"

# ---- trust on first use ----
for ca in "${bad_cas[@]}" held; do rm "$CB_CONF/ca.d/$ca.conf"; done
fp=sha256:$(openssl x509 -in "$NDES_STATE/ca.crt" -noout -fingerprint -sha256 | cut -d= -f2)
ca_conf pinned - 2
echo "CAFingerprint=$fp" >>"$CB_CONF/ca.d/pinned.conf"
cb root call "$CB_BUS" "$CB_PATH" "$CB_BUS.Manager" Reload >/dev/null
ndes ctl thumbprint=other >/dev/null
p=$(cb_enroll alice good tofu.a.example.test)
state=$(cb_wait alice "$p" 60)
lab_assert_eq "$state" failed "a CA certificate that is not the one the admin page shows"
msg=$(cb_prop alice "$p" ErrorMessage)
lab_assert_contains "$msg" "thumbprint" "the refusal names the thumbprint"
lab_assert_contains "$msg" "$(openssl x509 -in "$NDES_STATE/ca.crt" -noout -fingerprint -md5 | cut -d= -f2 | tr -d : | tr A-F a-f)" \
        "the refusal names GetCACert's CA"
lab_assert_contains "$msg" "CAFingerprint=" "the refusal names the way to pin a CA"
p=$(cb_enroll alice pinned pinned.a.example.test)
lab_assert_eq "$(cb_wait alice "$p" 60)" issued "a pinned CA (CAFingerprint=) does not need the page's thumbprint"
ndes ctl thumbprint=ca >/dev/null
p=$(cb_enroll alice good tofu-ok.a.example.test)
lab_assert_eq "$(cb_wait alice "$p" 60)" issued "the CA certificate the admin page shows"
lab_pass "without CAFingerprint=, GetCACert's CA must match the MD5 thumbprint on the authenticated admin page"

broker_stop
