#!/usr/bin/env bash
# A broker killed -9 does not orphan the challenges NDES holds for it. The broker records, in
# its store, every challenge fetched and not known consumed (per CA and server) and unused
# spares, encrypted with the store's key: after a restart it counts what NDES still holds
# against MaxOutstandingChallenges=, and the next enrollment uses the spare a CA.Check() left;
# a challenge fetched for an enrollment and not sent when the broker died is a spare as well.
# A spare for a server whose URL= changed is neither used nor kept.
# No challenge password is ever in the store's files (database, WAL) in the clear.
set -euo pipefail
: "${CB_SOURCE_ROOT:=$(cd "$(dirname "$0")/../.." && pwd)}"
. "$CB_SOURCE_ROOT/tests/integration/daemon-enter.sh" "$@"

broker_lab
base=https://ndes.example.test
# A second CA on the same NDES whose PKCSReqs get no answer in time (Timeout=3): whether NDES
# read the challenge is unknown, so each one it fetches counts until it expires.
cat >"$CB_CONF/ca.d/bad.conf" <<CONF
[CA]
URL=$base/f/tag.bad,pkcsreq.timeout/certsrv/mscep/mscep.dll
AdminURL=$base/f/tag.bad,pkcsreq.timeout/certsrv/mscep_admin/
TrustAnchors=$LAB_TLS_ROOT
Timeout=3
MaxOutstandingChallenges=2
CONF
broker_start
lab_wait_for 20 "ticket-granting ticket" bash -c \
        "[ \"\$(busctl --system get-property $CB_BUS $CB_PATH $CB_BUS.Manager CredentialState)\" = 's \"valid\"' ]"

check() { cb "$1" --timeout=60 call "$CB_BUS" "/org/certbroker/Broker1/ca/$2" "$CB_BUS.CA" Check a{sv} "${@:3}"; }
fetches() { ndes log | grep -c "result=issued" || true; }
fetches_by() { ndes log | grep -c " who=$1 result=issued" || true; }
# The unused challenges in NDES's cache, in the clear (the emulator's own file).
ndes_unused() { awk '{print $2}' "$NDES_STATE/challenges" 2>/dev/null || true; }
outstanding() {         # CA: the broker's own count (certbroker_outstanding_challenges)
        "$CB_BUILD_ROOT/client-lib/certbrokerctl" metrics |
                sed -n "s/^certbroker_outstanding_challenges{ca=\"$1\"} \([0-9]*\)$/\1/p"
}
store_clean() {         # no unused challenge in the store's files in the clear
        local c f
        for c in $(ndes_unused); do
                for f in "$CB_STATE"/certbroker.db*; do
                        if grep -qaF "$c" "$f"; then
                                lab_fail "the challenge password is in the clear in $f"
                        fi
                done
        done
}
kill9() {
        local pid t
        pid=$(lab_pid certbrokerd)
        kill -9 "$pid"
        t=$(_lab_now_ms)
        while [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null || echo Z)" != Z ]; do
                [ $(($(_lab_now_ms) - t)) -lt 30000 ] || lab_fail "pid $pid still there 30 s after kill -9"
                sleep 0.05
        done
        lab_stop certbrokerd 2>/dev/null
        cat "$LAB_DIR/certbrokerd.log" >>"$LAB_DIR/certbrokerd.all.log"
        broker_check_log
}

# ---- a spare over kill -9 ----
before=$(fetches)
out=$(check alice corp 1 challenge b true)
lab_assert_contains "$out" '"challenge" "ok"' "Check with challenge=true"
lab_assert_eq "$(fetches)" "$((before + 1))" "challenge fetches during Check"
spare=$(ndes_unused | tail -1)
[ -n "$spare" ] || lab_fail "NDES holds no unused challenge after the Check"
# The spare is in the store (encrypted) the moment it is kept: no need to stop the broker.
spares_kept() { sqlite3 -readonly "$CB_STATE/certbroker.db" 'SELECT count(*) FROM challenges WHERE spare IS NOT NULL'; }
spare_recorded() { [ "$(spares_kept)" = 1 ]; }
lab_wait_for 10 "the spare's record in the store" spare_recorded
store_clean
kill9
broker_start
path=$(cb_enroll alice corp spare.a.example.test)
lab_assert_eq "$(cb_wait alice "$path" 60)" issued "the enrollment after kill -9"
lab_assert_eq "$(fetches)" "$((before + 1))" "challenge fetches for Check, kill -9 and the next enrollment"
ndes_unused | grep -qxF "$spare" && lab_fail "NDES still holds the spare: the enrollment did not use it"
lab_assert_eq "$(sqlite3 -readonly "$CB_STATE/certbroker.db" 'SELECT count(*) FROM challenges')" 0 \
        "challenge records once the spare was consumed"
store_clean
lab_pass "a spare kept by a Check survives kill -9 and serves the next enrollment (no new fetch)"

# ---- killed with a challenge fetched and not sent yet: a spare after the restart ----
# (CERTBROKER_TEST_KILL_AT=challenge-unsent: SIGKILL right after the challenge came, before the
# PKCSReq that would carry it is built.) NDES holds it unused; the restarted broker resumes the
# request with it instead of fetching another, so it does not sit in NDES's cache, shared by
# every broker of the service account, for its whole validity.
broker_stop
before=$(fetches)
unused_before=$(ndes_unused | sort)
CERTBROKER_TEST_KILL_AT=challenge-unsent broker_start
pid=$(lab_pid certbrokerd)
path=$(cb_enroll alice corp unsent.a.example.test)
lab_wait_for 60 "the broker to kill itself with the challenge fetched" bash -c "! kill -0 $pid 2>/dev/null"
lab_stop certbrokerd 2>/dev/null
cat "$LAB_DIR/certbrokerd.log" >>"$LAB_DIR/certbrokerd.all.log"
lab_assert_contains "$(cat "$LAB_DIR/certbrokerd.log")" "CERTBROKER_TEST_KILL_AT=challenge-unsent" "the kill point was reached"
broker_check_log
lab_assert_eq "$(fetches)" "$((before + 1))" "challenge fetches before the kill"
unsent=$(comm -13 <(echo "$unused_before") <(ndes_unused | sort))
[ -n "$unsent" ] || lab_fail "NDES holds no new unused challenge after the kill"
store_clean
broker_start
lab_assert_eq "$(cb_wait alice "$path" 60)" issued "the request killed with its challenge not sent"
lab_assert_eq "$(fetches)" "$((before + 1))" "challenge fetches after the restart"
ndes_unused | grep -qxF "$unsent" && lab_fail "NDES still holds the challenge fetched before the kill"
lab_assert_eq "$(sqlite3 -readonly "$CB_STATE/certbroker.db" 'SELECT count(*) FROM challenges')" 0 \
        "challenge records once it was consumed"
store_clean
lab_pass "a challenge fetched and not sent at kill -9 serves the resumed request after the restart (no new fetch)"

# ---- what NDES holds counts after kill -9 ----
bad=$(cb_enroll alice bad held.a.example.test)
two_fetched() { [ "$(fetches_by bad)" -ge 2 ]; }
two_taken() { [ "$(outstanding bad)" = 2 ]; }
lab_wait_for 60 "two challenges fetched by the bad CA and left unused at NDES" two_fetched
lab_wait_for 30 "the bad CA's two slots taken" two_taken
n=$(fetches_by bad)
lab_assert_eq "$n" 2 "challenges fetched by the bad CA (MaxOutstandingChallenges=2)"
store_clean
kill9
broker_start
# At once, before any fetch: the two challenges NDES holds count.
lab_assert_eq "$(outstanding bad)" 2 "the bad CA's outstanding challenges after kill -9"
# Its request comes due again after the restart, and fetches nothing while NDES holds two of
# its challenges (they expire after 60 minutes): its attempt waits for a slot. (The absence of
# a fetch is watched for 10 s once the attempt is due.)
due() { [ "$(($(date +%s) * 1000000))" -gt "$(tprop alice "$bad" NextAttempt)" ]; }
lab_wait_for 120 "the bad CA's request to be due again after the restart" due
sleep 10
lab_assert_eq "$(fetches_by bad)" 2 "challenges fetched by the bad CA after the restart"
lab_assert_eq "$(outstanding bad)" 2 "the bad CA's outstanding challenges"
store_clean
lab_pass "challenges NDES still holds count after kill -9: no new fetch beyond MaxOutstandingChallenges="

# ---- in an enrollment at kill -9, then proven consumed: its CertRep frees the slot ----
# The CA issues at once but answers 30 s late, and the broker is killed meanwhile: whether NDES
# read the challenge is unknown after the restart, so it counts, until the request's CertPoll is
# answered (the CA has the request: NDES consumed its challenge).
ndes ctl certpoll_issued=on reply_delay=30 >/dev/null
issued_before=$(find "$NDES_STATE/issued" -name '*.pem' | wc -l)
held_before=$(outstanding corp)
p=$(cb_enroll alice corp inflight.a.example.test)
lab_wait_for 30 "the CA to issue" bash -c \
        "[ \$(find '$NDES_STATE/issued' -name '*.pem' | wc -l) -gt $issued_before ]"
kill9
broker_start
# The resumed request's CertPoll is answered 30 s late too, so the count is read before that
# answer can settle it (with an immediate answer it sometimes came first).
lab_assert_eq "$(outstanding corp)" "$((held_before + 1))" "corp's count at once after kill -9 with a PKCSReq at the CA"
ndes ctl reply_delay=0 >/dev/null
lab_assert_eq "$(cb_wait alice "$p" 60)" issued "the request killed with its PKCSReq at the CA"
lab_assert_eq "$(outstanding corp)" "$held_before" "corp's count once the request's CertPoll was answered"
ndes ctl certpoll_issued=off >/dev/null
store_clean
lab_pass "a challenge in an enrollment at kill -9 counts until that request's CertRep proves it consumed"

# ---- URL= changed: the spare is dropped (never used, no longer kept) ----
before=$(fetches)
out=$(check root corp 1 challenge b true)
lab_assert_contains "$out" '"challenge" "ok"' "root's Check with challenge=true"
spare=$(ndes_unused | tail -1)
broker_stop
# Another URL= (and so another AdminURL=, derived from it) for the same NDES.
sed -i 's|^URL=.*|URL=https://ndes.example.test/f/tag.moved/certsrv/mscep/mscep.dll|' "$CB_CONF/ca.d/corp.conf"
broker_start
path=$(cb_enroll alice corp other-url.a.example.test)
lab_assert_eq "$(cb_wait alice "$path" 60)" issued "the enrollment after URL= changed"
lab_assert_eq "$(fetches)" "$((before + 2))" "challenge fetches: the Check's, and a new one after URL= changed"
ndes_unused | grep -qxF "$spare" || lab_fail "the spare for the old URL= was used"
lab_assert_eq "$(spares_kept)" 0 "spares kept after URL= changed"
store_clean
broker_stop
lab_pass "a spare for a URL= that changed is never used and no longer kept"
