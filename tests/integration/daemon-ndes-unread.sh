#!/usr/bin/env bash
# A CA whose PKIOperations NDES cannot read (an envelope it cannot decrypt: HTTP 500, no CertRep,
# the challenge inside never read) spends no more of NDES's password cache than the challenge its
# first PKCSReq carried. That one stays unused at NDES until it expires; the CA's tries pass it on
# while NDES still keeps it, and then ask NDES with a PKCSReq that carries no challenge: HTTP 500
# again, nothing is fetched; once NDES reads it (FAILURE, 0x80096004: no challenge), the
# enrollments fetch their challenges and are issued. After each 500 the CA's certificates are
# fetched again (GetCACert), NDES's RA certificates being the likeliest cause. Three enrollments
# of the CA at once, every retry after 3 s (CERTBROKER_TEST_RETRY_FIXED), NDES's challenges
# living 60 s; two of them start after the first 500.
set -euo pipefail
: "${CB_SOURCE_ROOT:=$(cd "$(dirname "$0")/../.." && pwd)}"
. "$CB_SOURCE_ROOT/tests/integration/daemon-enter.sh" "$@"

broker_lab
rm "$CB_CONF/ca.d/corp.conf"
broker_policy_alice unread MaxActive=20
ndes ctl cache_size=5 challenge_ttl=60 >/dev/null
# Every PKCSReq of this CA is undecryptable until the test lets NDES read them (the emulator's
# counter of the fault, in its state directory, set to the fault's count).
prefix=/f/tag.unread,pkcsreq.undecryptable.1000000
cat >"$CB_CONF/ca.d/unread.conf" <<CONF
[CA]
URL=https://ndes.example.test$prefix/certsrv/mscep/mscep.dll
AdminURL=https://ndes.example.test$prefix/certsrv/mscep_admin/
TrustAnchors=$LAB_TLS_ROOT
Timeout=30
MaxOutstandingChallenges=4
CONF
CB_LOG=$LAB_DIR/certbrokerd.log
export CERTBROKER_TEST_RETRY_FIXED=3
broker_start

fetches() { ndes log | grep -c " who=unread result=issued" || true; }
# PKCSReqs (messageType 19) NDES read (no fault fired): none until the test allows it.
reads() { grep -E ' type=19 ' "$NDES_STATE/scep.log" 2>/dev/null | grep -vc ' status=fault-' || true; }
probes_unread() { grep -c "HTTP 500 to a PKCSReq without a challenge" "$CB_LOG" || true; }

# The first enrollment meets the first 500; the two others start after it (enrollments started
# together may each fetch a challenge before the first 500 comes back: those count at NDES too).
paths=()
paths+=("$(cb_enroll alice unread unread-1.a.example.test)") || lab_fail "Enroll 1 failed"
lab_wait_for 120 "the first HTTP 500" grep -q "CA unread: .*HTTP 500" "$CB_LOG"
for i in 2 3; do
        paths+=("$(cb_enroll alice unread "unread-$i.a.example.test")") || lab_fail "Enroll $i failed"
done

# While NDES answers 500, the CA has fetched one challenge, whatever its three enrollments do:
# they pass it on while NDES keeps it (60 s), then ask without one. Sampled until at least three
# of those asks were answered 500 and the challenge is past its 60 s (so that the enrollments
# below cannot use it); the fetch count is read before the read count, so a sample with no
# PKCSReq read yet saw every fetch made while NDES could read none.
deadline=$((SECONDS + 300))
samples=0
first=
while [ "$(probes_unread)" -lt 3 ] || [ -z "$first" ] || [ "$SECONDS" -lt $((first + 65)) ]; do
        [ "$SECONDS" -lt "$deadline" ] ||
                lab_fail "no three PKCSReqs without a challenge answered 500 within 240 s ($(probes_unread); fetches $(fetches))"
        f=$(fetches)
        r=$(reads)
        lab_assert_eq "$r" 0 "PKCSReqs NDES read before it was allowed to"
        [ "$f" -le 1 ] || {
                grep -E "CA unread|unread-|challenge" "$CB_LOG" | tail -30 >&2
                lab_fail "the CA fetched $f challenges while NDES could read none of its PKCSReqs (at most 1)"
        }
        [ -n "$first" ] || [ "$f" = 0 ] || first=$SECONDS
        samples=$((samples + 1))
        sleep 1
done
lab_assert_eq "$(fetches)" 1 "challenges fetched while NDES answered 500 (after $samples samples)"
lab_assert_contains "$(grep 'CA unread:' "$CB_LOG")" "uses one challenge at a time" "the notice of the first 500"
# After each 500 the next try asks GetCACert again (NDES may have new RA certificates).
cacert=$(grep -c "GET /f/tag.unread[,/][^ ]*operation=GetCACert" "$LAB_APACHE_ACCESS_LOG" || true)
[ "$cacert" -ge 3 ] || lab_fail "GetCACert asked $cacert times while NDES answered 500 (at least 3: once, then after 500s)"
for p in "${paths[@]}"; do
        state=$(cb_prop alice "$p" State)
        [ "$state" = submitting ] || [ "$state" = retrying ] || [ "$state" = queued ] ||
                lab_fail "request $p is '$state' while NDES cannot read the CA's requests"
done
lab_pass "NDES answering 500: one challenge fetched, then PKCSReqs without one ($(probes_unread) answered 500)"

# NDES can read the CA's PKCSReqs again.
counters=("$NDES_STATE"/fault-*)
[ "${#counters[@]}" = 1 ] && [ -f "${counters[0]}" ] || lab_fail "expected one fault counter in $NDES_STATE: ${counters[*]}"
printf '1000000\n' >"${counters[0]}"
for p in "${paths[@]}"; do
        state=$(cb_wait alice "$p" 120)
        [ "$state" = issued ] || lab_fail "request $p ended '$state' once NDES could read it: $(cb_prop alice "$p" ErrorMessage)"
done
lab_assert_contains "$(grep ' type=19 ' "$NDES_STATE/scep.log")" "why=no-challenge" \
        "NDES's answer to a PKCSReq without a challenge"
lab_assert_contains "$(grep 'CA unread:' "$CB_LOG")" "with a CertRep again" "the notice that NDES reads the CA again"
# The first challenge expired unused at NDES (it could not read it); each enrollment then
# fetched its own: 1 + 3.
lab_assert_eq "$(fetches)" 4 "challenges fetched in all"
lab_pass "once NDES reads the CA's PKCSReqs again, its enrollments fetch their challenges and are issued"

broker_stop
lab_pass "daemon-ndes-unread"
