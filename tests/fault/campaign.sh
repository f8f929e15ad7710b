#!/usr/bin/env bash
# Fault campaign: certbrokerd in the lab against the NDES emulator (behind Apache
# with Kerberos), enrolling while it is killed -9 at random moments, with the KDC stopped
# across some restarts, windows where NDES answers 503, a SIGSTOP of the broker mid-flight
# and the state directory filled up. It counts what the CA issued per name from the
# emulator's own records and ends with one line:
#
#   campaign: N accepted, K kills: L lost, S stuck, D duplicated (R recorded), F failed
#
# A benchmark-like run, not a test: bounded in time and count, loopback only; it exits 1 when
# anything was lost or stuck or a duplicate went unrecorded.
#
#   meson test -C build --benchmark fault-campaign     (or: bash tests/fault/campaign.sh)
#   options (environment): CAMPAIGN_ENROLLMENTS=1000 CAMPAIGN_KILLS=100 CAMPAIGN_KDC_STOPS=10
#   CAMPAIGN_NDES_503=10 CAMPAIGN_SIGSTOPS=2 CAMPAIGN_FILLS=2 CAMPAIGN_CONCURRENCY=16
#   CAMPAIGN_CERTPOLL_ISSUED=off (on: the emulator also answers CertPoll for transactions it
#   issued at once, which NDES is not documented to do) CAMPAIGN_SEED=<number>
set -euo pipefail
: "${CB_SOURCE_ROOT:=$(cd "$(dirname "$0")/../.." && pwd)}"
. "$CB_SOURCE_ROOT/tests/integration/daemon-enter.sh" "$@"

N=${CAMPAIGN_ENROLLMENTS:-1000}
K=${CAMPAIGN_KILLS:-100}
KDC_STOPS=${CAMPAIGN_KDC_STOPS:-10}
NDES_503=${CAMPAIGN_NDES_503:-10}
SIGSTOPS=${CAMPAIGN_SIGSTOPS:-2}
FILLS=${CAMPAIGN_FILLS:-2}
C=${CAMPAIGN_CONCURRENCY:-16}
CERTPOLL_ISSUED=${CAMPAIGN_CERTPOLL_ISSUED:-off}
RANDOM=${CAMPAIGN_SEED:-$$}
client=$CB_SOURCE_ROOT/tests/fault/campaign-client.py
t0=$SECONDS

broker_lab
mkdir -p -m 0700 "$CB_STATE"
mount -t tmpfs -o size=64m,mode=0700 tmpfs "$CB_STATE"          # this mount namespace only
sed -i "s/^\[Broker\]$/[Broker]\nKeyPool=rsa:2048=16\nMaxStoredRequests=1000000/" "$CB_CONF/certbroker.conf"
echo "Timeout=5" >>"$CB_CONF/ca.d/corp.conf"
broker_policy_alice campaign MaxRequests=1000000/1h MaxActive=100000
# Every kill -9 orphans the challenges the broker held (NDES counts them until they expire,
# 60 minutes): a real NDES would have its password cache full after a few. The campaign is
# about the broker's state, not about NDES's cache, so the emulator's cache is made large.
ndes ctl certpoll_issued="$CERTPOLL_ISSUED" cache_size=1000 >/dev/null
broker_start

accepted=$LAB_DIR/accepted.txt
: >"$accepted"
chmod 0666 "$accepted"
lab_start campaign-client setpriv --reuid="$(id -u alice)" --regid="$(id -g alice)" --init-groups -- \
        "$LAB_PYTHON" "$client" enroll "$N" "$C" "$accepted"
client_pid=$(lab_pid campaign-client)

# The faults: one kill -9 every 0.3 to 2.3 s; some restarts with the KDC down for a while,
# some with NDES answering 503; SIGSTOPs and a full disk in between.
rand_ms() { echo $((RANDOM % ($2 - $1) + $1)); }
pause_ms() { sleep "$(awk -v m="$1" 'BEGIN {printf "%.3f", m / 1000}')"; }
broker_restart() {
        local pid
        pid=$(lab_pid certbrokerd)
        kill -9 "$pid" 2>/dev/null || true
        lab_stop certbrokerd
        broker_start
}
every() { [ "$2" -gt 0 ] && [ $(( $1 % (K / $2 > 0 ? K / $2 : 1) )) = 0 ]; }
kills=0 kdc_stops=0 windows=0 stops=0 fills=0
for k in $(seq 1 "$K"); do
        kill -0 "$client_pid" 2>/dev/null || break      # all enrollments made
        pause_ms "$(rand_ms 300 2300)"
        if every "$k" "$FILLS" && [ "$fills" -lt "$FILLS" ]; then
                dd if=/dev/zero of="$CB_STATE/filler" bs=1M 2>/dev/null || true
                pause_ms 1500
                rm -f "$CB_STATE/filler"
                fills=$((fills + 1))
        fi
        if every "$((k + 1))" "$SIGSTOPS" && [ "$stops" -lt "$SIGSTOPS" ]; then
                kill -STOP "$(lab_pid certbrokerd)"
                pause_ms 3000
                kill -CONT "$(lab_pid certbrokerd)"
                stops=$((stops + 1))
        fi
        if every "$((k + 2))" "$KDC_STOPS" && [ "$kdc_stops" -lt "$KDC_STOPS" ]; then
                lab_kdc_stop
                broker_restart
                pause_ms "$(rand_ms 500 2500)"
                lab_kdc_start
                kdc_stops=$((kdc_stops + 1))
        elif every "$((k + 3))" "$NDES_503" && [ "$windows" -lt "$NDES_503" ]; then
                ndes ctl unavailable=on >/dev/null
                broker_restart
                pause_ms "$(rand_ms 500 2500)"
                ndes ctl unavailable=off >/dev/null
                windows=$((windows + 1))
        else
                broker_restart
        fi
        kills=$((kills + 1))
done
echo "# faults done after $((SECONDS - t0)) s: $kills kills ($kdc_stops with the KDC down, $windows in 503" \
        "windows), $stops SIGSTOPs, $fills full disks"
lab_wait_for 1800 "the client to make all $N enrollments" bash -c "! kill -0 $client_pid 2>/dev/null"
lab_stop campaign-client

census=$LAB_DIR/census.jsonl
lab_run_as alice "$LAB_PYTHON" "$client" census 900 >"$census"
broker_stop

# What the CA issued, per name (the emulator keeps every certificate it issued).
issued=$LAB_DIR/issued-names.txt
for f in "$NDES_STATE"/issued/*.pem; do
        [ -e "$f" ] || continue
        openssl x509 -in "$f" -noout -subject -nameopt multiline | sed -n 's/^ *commonName *= *//p'
done >"$issued"

"$LAB_PYTHON" - "$accepted" "$census" "$issued" "$kills" "$((SECONDS - t0))" <<'PYEOF'
import collections
import json
import sys

accepted_file, census_file, issued_file, kills, seconds = sys.argv[1:6]
accepted = {}
for line in open(accepted_file):
    path, name = line.split()
    accepted[path] = name
census = [json.loads(l) for l in open(census_file)]
known = {r['path']: r for r in census}
per_name = collections.Counter(l.strip() for l in open(issued_file) if l.strip())

lost = [p for p in accepted if p not in known]
stuck = [r for r in census if r['state'] not in ('issued', 'rejected', 'failed', 'cancelled')]
failed = [r for r in census if r['state'] in ('rejected', 'failed', 'cancelled')]
warned = {n for r in census if r['warning'] for n in r['names']}
dups = {n: c for n, c in per_name.items() if c > 1}
recorded = [n for n in dups if n in warned]
issued_without_request = [n for n in per_name if n not in {x for r in census for x in r['names']}]

for r in failed[:10]:
    print(f"# failed: {r['names'][0]} {r['state']} {r['error']}")
for n in list(dups)[:10]:
    print(f"# duplicated: {n} issued {dups[n]} times{' (recorded)' if n in warned else ''}")
if issued_without_request:
    print(f"# {len(issued_without_request)} names issued by the CA without a request in the broker")
errors = collections.Counter(r['error'] for r in failed)
for m, n in collections.Counter(r.get('message', '')[:160] for r in failed).most_common(5):
    print(f"# {n} failed with: {m}")
print(f"# {len(census)} requests, {sum(per_name.values())} certificates issued, {len(warned)} with a Warning; "
      f"failures by error: {dict(errors)}; {seconds} s")
print(f"campaign: {len(census)} accepted, {kills} kills: {len(lost)} lost, {len(stuck)} stuck, "
      f"{len(dups)} duplicated ({len(recorded)} recorded), {len(failed)} failed")
sys.exit(1 if lost or stuck or len(recorded) < len(dups) else 0)
PYEOF
