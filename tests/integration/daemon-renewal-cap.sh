#!/usr/bin/env bash
# The per-CA challenge cap under a renewal fleet: N renew requests issued in the
# same second (held PENDING at NDES, then approved at once), so that their successors all
# come due at the same RenewAt (RenewJitter=0). NDES's own record of the challenges it handed
# out (challenge.log: "outstanding=N", counted under its lock at each admin GET) must never
# show more unused challenges than the CA's MaxOutstandingChallenges=, and every successor
# must be issued. NDES's cache is made larger than the fleet, so that only the broker's cap
# can hold the count down.
#
# CB_RENEWAL_CAP_BROKER=N configures the broker with MaxOutstandingChallenges=N while still
# asserting the cap of 3: the control run that shows the measurement catches a broker that
# does not hold the cap (with N=16 the test fails).
set -euo pipefail
: "${CB_SOURCE_ROOT:=$(cd "$(dirname "$0")/../.." && pwd)}"
. "$CB_SOURCE_ROOT/tests/integration/daemon-enter.sh" "$@"

FLEET=${CB_FLEET_SIZE:-16}
CAP=3
VALIDITY=20             # seconds; RenewAt = NotAfter - 8 s
t_start=$SECONDS

broker_lab
sed -i "s/^\[Broker\]$/[Broker]\nKeyPool=rsa:2048=$FLEET/" "$CB_CONF/certbroker.conf"
printf 'MaxOutstandingChallenges=%s\nRenewBefore=8s\nRenewJitter=0\n' "${CB_RENEWAL_CAP_BROKER:-$CAP}" >>"$CB_CONF/ca.d/corp.conf"
ndes ctl cache_size=$((FLEET * 4)) validity=$VALIDITY pending=on >/dev/null
broker_start

# max_outstanding [FROM_LINE]: the most unused challenges NDES held at once (its log from that line).
max_outstanding() {
        ndes log | tail -n +"${1:-1}" | sed -n 's/.* outstanding=\([0-9]*\)$/\1/p' | sort -n | tail -1
}

# ---- the fleet: enrolled together, PENDING at NDES, approved in one go ----
fleet=()
for i in $(seq 1 "$FLEET"); do
        fleet+=("$(enroll_renew bob corp "cap$i.b.example.test")")       # bob: no MaxActive=
done
lab_wait_for 60 "all $FLEET requests PENDING at NDES" bash -c \
        "[ \$(ls '$NDES_STATE/transactions/' 2>/dev/null | grep -c '\\.txid\$') -ge $FLEET ]"
first_max=$(max_outstanding)
[ "$first_max" -le "$CAP" ] || lab_fail "the first enrollments had $first_max challenges outstanding at NDES (cap $CAP)"
ndes approve all >/dev/null
ndes ctl pending=off >/dev/null
nas=()
for p in "${fleet[@]}"; do
        lab_assert_eq "$(cb_wait bob "$p" 60)" issued "a fleet request"
        nas+=("$(tprop bob "$p" NotAfter)")
done
at=$(tprop bob "${fleet[0]}" RenewAt)
distinct=$(printf '%s\n' "${nas[@]}" | cut -c1-10 | sort -u | wc -l)
[ "$distinct" -le 2 ] || lab_fail "the fleet's NotAfter spans $distinct seconds: ${nas[*]}"
lab_pass "$FLEET renew requests issued together (NotAfter within one second or two), at most $first_max challenges outstanding at NDES while they were enrolled"

# ---- their successors come due together: NDES never holds more than the cap ----
from=$(( $(ndes log | wc -l) + 1 ))
now_us=$(( $(date +%s%N) / 1000 ))
[ "$at" -gt "$now_us" ] || lab_fail "RenewAt already passed before the fleet was issued: the test is too slow for VALIDITY=$VALIDITY"
t_due=$SECONDS
succ=()
for p in "${fleet[@]}"; do
        lab_wait_for 60 "the successor of $p" bash -c \
                "[ \"\$(setpriv --reuid=$(id -u bob) --regid=$(id -g bob) --init-groups busctl --system get-property $CB_BUS $p $CB_BUS.Request Successor)\" != 'o \"/\"' ]"
        succ+=("$(oprop bob "$p" Successor)")
done
for s in "${succ[@]}"; do
        lab_assert_eq "$(cb_wait bob "$s" 90)" issued "a successor ($(cb_prop bob "$s" ErrorMessage 2>/dev/null || true))"
done
t_all=$((SECONDS - t_due))
for p in "${fleet[@]}"; do
        cb bob call "$CB_BUS" "$p" "$CB_BUS.Request" StopRenewal >/dev/null 2>&1 || true
done
for s in "${succ[@]}"; do
        cb bob call "$CB_BUS" "$s" "$CB_BUS.Request" StopRenewal >/dev/null 2>&1 || true
done
lab_assert_eq "$(printf '%s\n' "${succ[@]}" | sort -u | wc -l)" "$FLEET" "distinct successors"
fetched=$(ndes log | tail -n +"$from" | grep -c 'result=issued' || true)
full=$(ndes log | tail -n +"$from" | grep -c 'result=cache-full' || true)
renew_max=$(max_outstanding "$from")
echo "# successors: $FLEET issued in ${t_all}s after the fleet came due; challenges fetched $fetched, cache-full $full, at most $renew_max outstanding at NDES (cap $CAP)"
[ "$fetched" -ge "$FLEET" ] || lab_fail "only $fetched challenges fetched for $FLEET successors"
lab_assert_eq "$full" 0 "cache-full answers"
[ "$renew_max" -le "$CAP" ] || lab_fail "$renew_max challenges outstanding at NDES at once, above MaxOutstandingChallenges=$CAP"
[ "$renew_max" -ge 2 ] || lab_fail "at most $renew_max challenge outstanding: the fleet never ran concurrently, the cap was not exercised"
lab_assert_eq "$(ndes_scep_log_count 'status=SUCCESS')" "$((FLEET * 2))" "certificates issued (fleet and successors)"
lab_pass "$FLEET successors due at the same RenewAt: all issued, never more than $renew_max challenges outstanding at NDES (MaxOutstandingChallenges=$CAP), no cache-full"

ndes ctl validity=0 >/dev/null
broker_stop
broker_check_log
echo "# daemon-renewal-cap: $((SECONDS - t_start)) s"
