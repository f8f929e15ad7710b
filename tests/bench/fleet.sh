#!/usr/bin/env bash
# Fleet: many brokers renewing against one NDES (the emulator behind Apache with Kerberos) whose
# password cache holds 5 unused challenges for all of them.
#
#   - FLEET_BROKERS (20) certbrokerd, each with its own configuration, state directory and
#     private dbus-daemon, all with the same service account (svc-scep) and keytab;
#   - each tracks FLEET_CERTS (10) certificates (Enroll with renew), all issued in the same
#     second (NDES holds them for approval until all are in, then issues them at once), valid
#     FLEET_VALIDITY (150) seconds: with RenewBefore= at its default (33%) the whole fleet
#     renews every ~100 s, three times in the run;
#   - from t=0, NDES's challenges live FLEET_CHALLENGE_TTL (120) seconds instead of 60 minutes
#     (the emulator's challenge_ttl: its page then says "will expire within 2 minutes" and the
#     brokers count 2 minutes plus their margin of one);
#   - faults, from the moment the fleet is issued (t=0) for FLEET_SECONDS (300):
#       NDES answers 503 to everything for 10 s every 60 s (from t=30 s);
#       b02 is killed -9 every FLEET_KILL_EVERY (15) seconds and started again at once;
#       b03's PKIOperations cannot be decrypted by NDES (emulator fault `undecryptable`: HTTP
#           500, the challenge inside stays unused in the cache), set by a Reload at t=0;
#       b04 has MaxOutstandingChallenges=8, above NDES's cache.
#     Every broker's CA URL is https://ndes.example.test/f/tag.bNN[,FAULTS]/certsrv/...: the
#     emulator records who fetched each challenge (challenge.log: who=bNN) and, for each
#     cache-full answer, who held the unused challenges then (holders=bNN:K,...).
#
# The run is made twice, each in its own lab: the design (the defaults: RenewJitter= 5% of
# the lifetime, jittered exponential retry backoff) and a control without jitter and backoff
# (RenewJitter=0, and CERTBROKER_TEST_RETRY_FIXED=5: every retry after exactly 5 s). Each ends
# with one line (the control's labelled):
#
#   fleet: B brokers, C certificates: R renewed in time, E expired, X cache-full answers, max N outstanding at NDES (cache 5), T s
#
# C: the tracked certificates of the brokers NDES can serve (b03's are not: NDES can decrypt
# none of its PKIOperations, so its certificates cannot be renewed and are reported on a
# line of their own). R: certificates of theirs whose lifetime ended during the run and whose
# successor was issued before it ended; E: those whose successor was not. X: cache-full
# answers to anyone after t=0; N: the most unused challenges NDES held at once after t=0 (its
# own count, under its lock). T: the run's seconds, set-up included.
#
# Goals (design run; exit 1 when missed): 0 expired, N never above the cache, and no
# cache-full answer to a well-behaved broker caused by a misbehaving one. How that is counted:
# at every cache-full answer the emulator logs who held the unused challenges in its cache
# (holders=bNN:K,...). An answer to a well-behaved broker (not b02, b03 or b04) counts as caused
# by misbehaving ones when the well-behaved brokers together held fewer than the cache (5): the
# cache was full only because misbehaving brokers held the rest; had they held none, the answer
# would have been a challenge. When the well-behaved brokers alone filled the cache, the answer
# is their own congestion, not counted. The strict count, printed beside it (not a goal), counts
# every cache-full answer to a well-behaved broker while any misbehaving broker held at least one
# challenge. Also printed: how far apart the certificates issued together fell due for renewal
# (RenewBefore=, RenewJitter=), scaled to real lifetimes, and the most challenge requests in any
# 5 s. A benchmark, not a test: loopback only, bounded in time.
#
#   meson test -C build --benchmark fleet        (or: bash tests/bench/fleet.sh)
#   options (environment): FLEET_SECONDS=300 FLEET_BROKERS=20 FLEET_CERTS=10 FLEET_VALIDITY=150
#   FLEET_CHALLENGE_TTL=120 FLEET_KILL_EVERY=15 FLEET_RUNS="design control" FLEET_KEEP=DIR (raw results)
set -euo pipefail
: "${CB_SOURCE_ROOT:=$(cd "$(dirname "$0")/../.." && pwd)}"
self=$CB_SOURCE_ROOT/tests/bench/fleet.sh

# ---- the parent: one lab per run, the lines side by side ----
if [ -z "${FLEET_MODE:-}" ]; then
        rc=0
        lines=()
        for mode in ${FLEET_RUNS:-design control}; do
                out=$(mktemp)
                set +e
                FLEET_MODE=$mode bash "$self" "$@" 2>&1 | tee "$out"
                st=${PIPESTATUS[0]}
                set -e
                line=$(grep '^fleet' "$out" | tail -1 || true)
                rm -f "$out"
                [ -n "$line" ] || line="fleet ($mode): no result (exit $st)"
                lines+=("$line")
                # Only the design run has goals; the control shows what they are worth.
                [ "$mode" != design ] || [ "$st" = 0 ] || rc=1
        done
        echo "# ---- fleet results ----"
        for l in "${lines[@]}"; do
                case "$l" in
                "fleet (control):"*) echo "$l" ;;
                *) ;;
                esac
        done
        for l in "${lines[@]}"; do
                case "$l" in
                "fleet (control):"*) ;;
                *) echo "$l" ;;
                esac
        done
        # Both runs: what the design buys, as the ratio of their cache-full answers and expiries.
        c_full= d_full= c_exp= d_exp=
        for l in "${lines[@]}"; do
                f=$(sed -n 's/.* \([0-9]*\) cache-full answers.*/\1/p' <<<"$l")
                e=$(sed -n 's/.* \([0-9]*\) expired,.*/\1/p' <<<"$l")
                case "$l" in
                "fleet (control):"*) c_full=$f c_exp=$e ;;
                "fleet:"*) d_full=$f d_exp=$e ;;
                esac
        done
        if [ -n "$c_full" ] && [ -n "$d_full" ]; then
                echo "# control/design: cache-full answers $c_full/$d_full ($(awk -v c="$c_full" -v d="$d_full" \
                        'BEGIN { if (d > 0) printf "%.1f times", c / d; else print "design none" }')), expired $c_exp/$d_exp"
        fi
        exit "$rc"
fi

. "$CB_SOURCE_ROOT/tests/integration/daemon-enter.sh" "$@"

MODE=$FLEET_MODE
S=${FLEET_SECONDS:-300}
B=${FLEET_BROKERS:-20}
N=${FLEET_CERTS:-10}
V=${FLEET_VALIDITY:-150}
TTL=${FLEET_CHALLENGE_TTL:-120}
KILL_EVERY=${FLEET_KILL_EVERY:-15}
CACHE=5
[ "$B" -ge 5 ] || lab_fail "FLEET_BROKERS must be at least 5 (b02..b04 misbehave)"
[ "$S" -ge 60 ] || lab_fail "FLEET_SECONDS must be at least 60"
case "$MODE" in design | control) ;; *) lab_fail "FLEET_MODE=$MODE: design or control" ;; esac
t_start=$SECONDS
KILLED=b02 UNDECRYPTABLE=b03 OVERCAP=b04

ndes_setup
kdestroy -A 2>/dev/null || true
ndes ctl validity="$V" cache_size=1000 >/dev/null        # challenge_ttl from t=0

name() { printf 'b%02d' "$1"; }
bus_of() { echo "unix:path=$LAB_DIR/fleet/$1/bus/socket"; }

# ---- the brokers: configuration, bus, daemon ----
broker_conf() {         # NAME FAULTS: (re)write NAME's CA file with its URL path
        local b=$1 faults=$2 d=$LAB_DIR/fleet/$1
        {
                echo "[CA]"
                echo "URL=https://ndes.example.test/f/tag.$b$faults/certsrv/mscep/mscep.dll"
                echo "TrustAnchors=$LAB_TLS_ROOT"
                echo "Default=yes"
                echo "DefaultKey=ec:p256"
                # Longer than any answer of the emulator on a loaded machine (Apache's own
                # Timeout is 300): a PKCSReq given up while NDES still works on it comes back as a
                # CertPoll NDES knows nothing of yet.
                echo "Timeout=240"
                echo "PollInterval=5"
                [ "$MODE" != control ] || echo "RenewJitter=0"
                [ "$b" != "$OVERCAP" ] || echo "MaxOutstandingChallenges=8"
        } >"$d/conf/ca.d/corp.conf"
}
broker_run() {          # NAME: start its daemon
        local b=$1 d=$LAB_DIR/fleet/$1 env=()
        [ "$MODE" != control ] || env+=(CERTBROKER_TEST_RETRY_FIXED=5)
        lab_start "$b" env DBUS_SYSTEM_BUS_ADDRESS="$(bus_of "$b")" CERTBROKER_LOG_STDERR=1 CERTBROKER_LOG_LEVEL=info \
                "${env[@]}" "$CB_DAEMON" --config-dir="$d/conf" --state-dir="$d/state"
}
on_bus() {              # NAME CMD...: CMD with NAME's bus as the system bus
        local b=$1
        shift
        DBUS_SYSTEM_BUS_ADDRESS=$(bus_of "$b") "$@"
}
broker_up() { on_bus "$1" busctl --system --timeout=2 status "$CB_BUS" >/dev/null 2>&1; }

mkdir -p "$LAB_DIR/fleet"
for i in $(seq 1 "$B"); do
        b=$(name "$i")
        d=$LAB_DIR/fleet/$b
        mkdir -p "$d/conf/ca.d" "$d/conf/policy.d" "$d/bus" "$d/state"
        chmod 0755 "$d" "$d/bus"
        chmod 0700 "$d/state"
        broker_main_conf "$d/conf/certbroker.conf" "$d/state"
        broker_conf "$b" ""
        printf '[Rule]\nName=fleet\nUsers=alice\nNames=*.a.example.test\nKeys=ec:p256\nMaxActive=100000\nMaxRequests=1000000/1h\n' \
                >"$d/conf/policy.d/fleet.policy"
        lab_bus_config "$d/bus/socket" "$d/bus/system.conf"
        lab_start "bus-$b" dbus-daemon --config-file="$d/bus/system.conf" --nofork --nopidfile
done
for i in $(seq 1 "$B"); do
        b=$(name "$i")
        lab_wait_for 20 "the bus of $b" on_bus "$b" busctl --system --timeout=2 call org.freedesktop.DBus \
                /org/freedesktop/DBus org.freedesktop.DBus GetId
        broker_run "$b"
done
for i in $(seq 1 "$B"); do
        lab_wait_for 60 "$(name "$i") on its bus" broker_up "$(name "$i")"
done
echo "# $MODE: $B brokers up after $((SECONDS - t_start)) s"

# ---- the fleet: N renewing certificates per broker, issued together ----
# NDES holds every PKCSReq for approval (pending=on) until all are in, then issues them in one
# go: the fleet's certificates are issued in the same second, however slow the enrollments were.
ndes ctl pending=on >/dev/null
enroll_all() {          # NAME: its N certificates, one path per line in paths.NAME
        local b=$1 k out
        for k in $(seq 1 "$N"); do
                # On a machine this busy a call may time out and still have been accepted: the
                # certificates are counted from the brokers' own lists at the end.
                local try=0
                until out=$(on_bus "$b" lab_run_as alice busctl --system --timeout=120 call "$CB_BUS" "$CB_PATH" \
                                "$CB_BUS.Manager" Enroll ssasa{sv} corp "" 1 "c$k-$b.a.example.test" 1 renew b true); do
                        try=$((try + 1))
                        [ "$try" -lt 3 ] || { echo "$b: Enroll c$k failed 3 times" >&2; return 1; }
                done
                out=${out#o \"}
                echo "$b ${out%\"}" >>"$LAB_DIR/fleet/paths.$b"
        done
}
pids=()
for i in $(seq 1 "$B"); do
        enroll_all "$(name "$i")" &
        pids+=($!)
done
for p in "${pids[@]}"; do
        wait "$p" || lab_fail "an Enroll failed (above)"
done
paths=$LAB_DIR/fleet/paths
cat "$LAB_DIR"/fleet/paths.b* >"$paths"
lab_wait_for 600 "all $((B * N)) PKCSReqs held for approval at NDES" bash -c \
        "[ \$(ls '$NDES_STATE/transactions/' 2>/dev/null | grep -c '\\.txid\$') -ge $((B * N)) ]"
ndes approve all >/dev/null
ndes ctl pending=off >/dev/null

# ---- t=0: the fleet is issued; NDES's cache as NDES has it; b03 meets its fault ----
# From the approval on, not from when the last broker has picked its certificate up: the
# renewals that fall due meanwhile meet NDES's real cache too.
ndes ctl cache_size=$CACHE challenge_ttl="$TTL" >/dev/null
from=$(( $(ndes log | wc -l) + 1 ))
t0_epoch=$(date +%s)
load_start=$SECONDS
broker_conf "$UNDECRYPTABLE" ",pkcsreq.undecryptable"
on_bus "$UNDECRYPTABLE" busctl --system --timeout=30 call "$CB_BUS" "$CB_PATH" "$CB_BUS.Manager" Reload >/dev/null ||
        lab_fail "$UNDECRYPTABLE: Reload failed"
wait_issued() {         # NAME PATH
        local st
        st=$(on_bus "$1" lab_run_as alice busctl --system --timeout=305 call "$CB_BUS" "$2" "$CB_BUS.Request" Wait t 300000000) ||
                return 1
        [ "$st" = 's "issued"' ] && return 0
        # Issued, and renewed or being renewed already: also picked up.
        on_bus "$1" lab_run_as alice "$CB_BUILD_ROOT/client-lib/certbrokerctl" status "${2##*/}" 2>/dev/null |
                grep -q '^Successor:'
}
picked_up() {           # NAME: each of its certificates issued (all of them at once, per broker)
        local b=$1 p
        while read -r _ p; do
                wait_issued "$b" "$p" || { echo "$b: $p was not issued within 300 s of the approval: $(on_bus "$b" lab_run_as alice "$CB_BUILD_ROOT/client-lib/certbrokerctl" status "${p##*/}" 2>&1 | tr '\n' ' ')" >&2; return 1; }
        done <"$LAB_DIR/fleet/paths.$b"
}
pids=()
for i in $(seq 1 "$B"); do
        picked_up "$(name "$i")" &
        pids+=($!)
done
for p in "${pids[@]}"; do
        wait "$p" || lab_fail "a certificate was not picked up (above)"
done
echo "# $MODE: $((B * N)) certificates issued together (NDES approved them at $(date -u -d "@$t0_epoch" +%T)), picked up $((SECONDS - load_start)) s later, $((SECONDS - t_start)) s after the start"

kills=0 windows=0
kill_broker() {
        local b=$1 pid st t
        pid=$(lab_pid "$b")
        kill -9 "$pid"
        t=$(_lab_now_ms)
        while st=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) && [ "$st" != Z ]; do
                [ $(($(_lab_now_ms) - t)) -lt 30000 ] || lab_fail "$b: pid $pid still there 30 s after kill -9"
                sleep 0.05
        done
        lab_stop "$b" 2>/dev/null     # (bash would report the kill)
        cat "$LAB_DIR/$b.log" >>"$LAB_DIR/$b.all.log"
        broker_run "$b"
        kills=$((kills + 1))
}
next_kill=$(( SECONDS - load_start + KILL_EVERY ))
# bash reports each killed background job ("Killed setpriv ..."): not news here.
exec 3>&2 2> >(grep --line-buffered -v 'Killed  *setpriv' >&3)
while :; do
        e=$((SECONDS - load_start))
        [ "$e" -lt "$S" ] || break
        # 503 windows: [30, 40), [90, 100), ...
        if [ "$e" -ge 30 ] && [ $(((e - 30) % 60)) -lt 10 ]; then
                if [ "${unavailable:-off}" = off ]; then
                        ndes ctl unavailable=on >/dev/null
                        unavailable=on
                        windows=$((windows + 1))
                fi
        elif [ "${unavailable:-off}" = on ]; then
                ndes ctl unavailable=off >/dev/null
                unavailable=off
        fi
        if [ "$e" -ge "$next_kill" ]; then
                kill_broker "$KILLED"
                next_kill=$((e + KILL_EVERY))
        fi
        sleep 1
done
[ "${unavailable:-off}" = off ] || ndes ctl unavailable=off >/dev/null
end_epoch=$(date +%s)
lab_wait_for 60 "$KILLED on its bus again" broker_up "$KILLED"
echo "# $MODE: $S s of faults: $windows windows of 503, $KILLED killed -9 $kills times"

# ---- the result ----
res=$LAB_DIR/fleet/result
mkdir -p "$res"
for i in $(seq 1 "$B"); do
        b=$(name "$i")
        on_bus "$b" lab_run_as alice "$CB_BUILD_ROOT/client-lib/certbrokerctl" --json list >"$res/$b.json" ||
                lab_fail "$b: certbrokerctl list failed"
done
ndes log | tail -n +"$from" >"$res/challenge.log"
# FLEET_KEEP=DIR: the run's raw results (the brokers' lists, NDES's log) are kept in DIR/MODE.
[ -z "${FLEET_KEEP:-}" ] || { mkdir -p "$FLEET_KEEP" && rm -rf "${FLEET_KEEP:?}/$MODE" && cp -r "$res" "$FLEET_KEEP/$MODE"; }
set +e
"$LAB_PYTHON" - "$res" "$B" "$CACHE" "$end_epoch" "$MODE" "$((SECONDS - t_start))" \
        "$KILLED $UNDECRYPTABLE $OVERCAP" "$UNDECRYPTABLE" <<'PY'
import json, os, re, sys, time
res, B, cache, end, mode, secs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5], sys.argv[6]
bad = set(sys.argv[7].split())
undecryptable = sys.argv[8]
certs = renewed = expired = 0
u_expired = u_renewed = 0
late = []
for i in range(1, B + 1):
    b = "b%02d" % i
    reqs = {r["id"]: r for r in json.load(open(os.path.join(res, b + ".json")))}
    chains = [r for r in reqs.values() if not r.get("predecessor")]
    if b != undecryptable:
        certs += len(chains)
    for r in reqs.values():
        if r.get("state") != "issued" and not (r.get("successor") and r.get("not_after")):
            continue
        na = r.get("not_after", 0) // 1000000
        if na == 0 or na > end:
            continue        # still valid at the end of the run
        s = reqs.get(r.get("successor") or "")
        ok = s is not None and s.get("not_before", 0) > 0 and s["not_before"] // 1000000 <= na
        if b == undecryptable:
            u_renewed += ok
            u_expired += not ok
        elif ok:
            renewed += 1
        else:
            expired += 1
            late.append("%s %s (NotAfter %d, successor %s %s)" % (b, r["id"], na, s and s["id"], s and s.get("state")))
full = to_good = caused = strict = 0
peak = 0
bad_slots = {}          # misbehaving broker -> slots it held at the caused answers
per_second = {}         # challenge requests per second (any answer)
for line in open(os.path.join(res, "challenge.log")):
    m = re.search(r"outstanding=(\d+)", line)
    if m:
        peak = max(peak, int(m.group(1)))
    per_second[line[:19]] = per_second.get(line[:19], 0) + 1
    if "result=cache-full" not in line:
        continue
    full += 1
    who = re.search(r" who=(\S+)", line)
    who = who.group(1) if who else "-"
    if who in bad:
        continue
    to_good += 1
    h = re.search(r" holders=(\S+)", line)
    good_held = 0
    held_bad = {}
    for item in (h.group(1).split(",") if h else []):
        w, _, k = item.rpartition(":")
        if w not in bad:
            good_held += int(k)
        elif int(k) > 0:
            held_bad[w] = int(k)
    if held_bad:
        strict += 1
    if good_held < cache:
        caused += 1
        for w, k in held_bad.items():
            bad_slots[w] = bad_slots.get(w, 0) + k
label = "fleet" if mode == "design" else "fleet (control)"
print("# %s: %d cache-full answers to well-behaved brokers; caused by misbehaving ones: %d (the well-behaved "
      "brokers together held fewer than the cache's %d unused challenges, so the cache was full only because of "
      "the slots misbehaving brokers held%s); strict count: %d (a misbehaving broker held at least one)"
      % (mode, to_good, caused, cache,
         ": " + ", ".join("%s %d slot-answers" % (w, k) for w, k in sorted(bad_slots.items())) if bad_slots else "",
         strict))
print("# %s: %s: %d certificates renewed, %d expired (NDES can decrypt none of its requests)"
      % (mode, undecryptable, u_renewed, u_expired))
# The spread of the fleet's renewals (the certificates issued together at t=0): when their first
# successors were due (RenewAt: RenewBefore= less up to RenewJitter=), scaled to real lifetimes;
# and the busiest 5 s of challenge requests (retries bunch up without backoff).
due = []
life = 0
for i in range(1, B + 1):
    b = "b%02d" % i
    if b == undecryptable:
        continue
    for r in json.load(open(os.path.join(res, b + ".json"))):
        if not r.get("predecessor") and r.get("renew_at") and r.get("not_after") and r.get("not_before"):
            due.append(r["renew_at"] / 1e6)
            life = max(life, (r["not_after"] - r["not_before"]) / 1e6)
if due and life > 0:
    spread = max(due) - min(due)
    print("# %s: the first renewals of the %d certificates issued together were due over %.1f s, %.1f%% of their "
          "%.0f-s lifetime: for one-year certificates %.1f days, for 30-day ones %.1f hours, for 1-day ones %.0f minutes"
          % (mode, len(due), spread, 100 * spread / life, life, spread / life * 365, spread / life * 30 * 24,
             spread / life * 24 * 60))
secs5 = {}
for k, n in per_second.items():
    t = int(time.mktime(time.strptime(k, "%Y-%m-%dT%H:%M:%S"))) // 5
    secs5[t] = secs5.get(t, 0) + n
if secs5:
    print("# %s: challenge requests: at most %d in any 5 s (%d in all)" % (mode, max(secs5.values()), sum(per_second.values())))
for l in late[:10]:
    print("# expired: " + l)
print("%s: %d brokers, %d certificates: %d renewed in time, %d expired, %d cache-full answers, max %d outstanding at NDES (cache %d), %s s"
      % (label, B, certs, renewed, expired, full, peak, cache, secs))
sys.exit(0 if expired == 0 and peak <= cache and caused == 0 else 2)
PY
st=$?
set -e
for i in $(seq 1 "$B"); do
        grep -hE "ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:" "$LAB_DIR/$(name "$i").log" \
                "$LAB_DIR/$(name "$i").all.log" 2>/dev/null | head -3 || true
done
[ "$st" = 0 ] || { [ "$MODE" = control ] && exit 0; } || exit 1
