#!/usr/bin/env bash
# Enrollment benchmark: certbrokerd against the NDES emulator (behind Apache with Kerberos),
# and, in the same run against the same server, the independent clients micromdm scepclient
# and certmonger. Prints figures and ratios; asserts nothing about time (it is a benchmark,
# not a test), but fails if any enrollment fails.
#
#   meson test -C build --benchmark enroll-bench       (or: bash tests/bench/enroll-bench.sh)
#   BENCH_N=20 BENCH_CONCURRENT=100 to change the counts; BENCH_THROUGHPUT_N (64, at most
#   the pool's 64) per caller count, BENCH_CAPACITY_N (300) for the server's capacity,
#   BENCH_MEMORY_N (1000) enrollments before the second memory figure.
#
# Also measured: the server's own time per enrollment (Apache's %D for the challenge page and
# the PKIOperation, matched from the access log) and the broker's overhead beyond it; the
# server's capacity with a load that bypasses the broker (tests/bench/ndes-load.c, the
# broker's SCEP code sending pre-made PKCSReqs) and the broker's throughput with 1, 4 and 16
# callers against it; the broker's private memory (RssAnon) idle and after BENCH_MEMORY_N.
set -euo pipefail
: "${CB_SOURCE_ROOT:=$(cd "$(dirname "$0")/../.." && pwd)}"
. "$CB_SOURCE_ROOT/tests/integration/daemon-enter.sh" "$@"

N=${BENCH_N:-20}
C=${BENCH_CONCURRENT:-100}
T=${BENCH_THROUGHPUT_N:-64}
CAP_N=${BENCH_CAPACITY_N:-300}
MEM_N=${BENCH_MEMORY_N:-1000}
pool=$((N + 2 > T ? N + 2 : T))
[ "$pool" -le 64 ] || lab_fail "BENCH_N + 2 and BENCH_THROUGHPUT_N must be at most 64 (the key pool's limit)"
client=$CB_SOURCE_ROOT/tests/bench/bench-client.py

median() { sort -g | awk '{a[NR]=$1} END {if (NR % 2) print a[(NR+1)/2]; else printf "%.6f\n", (a[NR/2]+a[NR/2+1])/2}'; }
ms() { awk -v s="$1" 'BEGIN {printf "%.1f ms", s * 1000}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
p95() { sort -g | awk '{a[NR]=$1} END {i = int(NR * 0.95); if (i < 1) i = 1; if (i < NR) i++; print a[i]}'; }
json() { sed -n "s/.*\"$2\": \([0-9.]*\).*/\1/p" <<<"$1"; }
# Private memory of a process (MiB): RssAnon, the anonymous pages it alone maps (not RSS,
# which counts shared libraries).
rss_anon() { awk '/^RssAnon:/ {printf "%.1f", $2 / 1024}' "/proc/$1/status"; }
# Server time per enrollment (µs, one line each) for access-log lines FROM..TO: an enrollment
# is a challenge page (mscep_admin) and the PKIOperation that follows; %D is the last field.
server_times() {
        sed -n "$1,$2p" "$LAB_APACHE_ACCESS_LOG" | awk '
                /\/certsrv\/mscep_admin\// { if (!open || pki) { if (open) print sum; sum = 0; open = 1; pki = 0 } }
                /operation=PKIOperation/ { pki = 1 }
                open { sum += $NF }
                END { if (open) print sum }'
}
# CPU seconds (user + system) of a process's threads named NAME, of its main thread (NAME
# "main"), or of the whole process (NAME empty; includes threads that have ended).
cpu_s() {
        local pid=$1 name=${2:-} f
        if [ -z "$name" ] || [ "$name" = main ]; then
                awk -v t="$(getconf CLK_TCK)" '{sub(/^.*\) /, ""); printf "%.3f\n", ($12 + $13) / t}' \
                        "/proc/$pid/$([ "$name" = main ] && echo "task/$pid/")stat"
                return
        fi
        for f in /proc/"$pid"/task/*/stat; do
                if grep -q "($name)" "$f"; then cat "$f"; fi
        done | awk -v t="$(getconf CLK_TCK)" '{sub(/^.*\) /, ""); s += $12 + $13} END {printf "%.3f\n", s / t}'
}

broker_lab
mem_total=$((1 + N + 3 * T + N + C + MEM_N))
sed -i "s/^\[Broker\]$/[Broker]\nKeyPool=rsa:2048=$pool\nMaxStoredRequests=$((mem_total + 10))/" "$CB_CONF/certbroker.conf"
broker_policy_alice bench MaxRequests=unlimited
broker_start
echo "# waiting for the key pool: $(lab_run_as alice "$LAB_PYTHON" "$client" pool-ready 300)"
cb_pid=$(lab_pid certbrokerd)
mem_idle=$(rss_anon "$cb_pid")
# The scheduling policy of the refill workers (5: SCHED_IDLE), as the kernel reports it.
refill_policy=$(for f in /proc/"$cb_pid"/task/*; do
        if grep -qx cb-keyfill "$f/comm"; then awk '/^policy/ {print $3}' "$f/sched"; fi; done | sort | uniq -c | xargs)

# Warm-up: ticket-granting ticket, service ticket, CA capabilities and certificates.
lab_run_as alice "$LAB_PYTHON" "$client" sequential 1 warm >/dev/null
kdc_before=$(grep -c 'svc-scep@EXAMPLE.TEST' "$LAB_KDC_LOG" || true)
http_before=$(wc -l <"$LAB_APACHE_ACCESS_LOG")

lab_run_as alice "$LAB_PYTHON" "$client" sequential "$N" seq >"$LAB_DIR/cb-seq.txt"
cb_med=$(median <"$LAB_DIR/cb-seq.txt")
kdc_after=$(grep -c 'svc-scep@EXAMPLE.TEST' "$LAB_KDC_LOG" || true)
http_after=$(wc -l <"$LAB_APACHE_ACCESS_LOG")
http_per=$(awk -v a="$http_before" -v b="$http_after" -v n="$N" 'BEGIN {printf "%.2f", (b - a) / n}')
server_times $((http_before + 1)) "$http_after" >"$LAB_DIR/cb-seq-server.txt"
[ "$(wc -l <"$LAB_DIR/cb-seq-server.txt")" = "$N" ] ||
        lab_fail "the access log does not pair into $N enrollments (challenge + PKIOperation)"
paste "$LAB_DIR/cb-seq.txt" "$LAB_DIR/cb-seq-server.txt" |
        awk '{printf "%.6f\n", $1 - $2 / 1e6}' >"$LAB_DIR/cb-seq-overhead.txt"
srv_med=$(awk '{printf "%.6f\n", $1 / 1e6}' "$LAB_DIR/cb-seq-server.txt" | median)
srv_p95=$(awk '{printf "%.6f\n", $1 / 1e6}' "$LAB_DIR/cb-seq-server.txt" | p95)
ovh_med=$(median <"$LAB_DIR/cb-seq-overhead.txt")
ovh_p95=$(p95 <"$LAB_DIR/cb-seq-overhead.txt")

# Throughput with 1, 4 and 16 callers, keys from a full pool each time; ListCAs timed meanwhile.
# The broker's CPU during each run: its loop (main thread), the crypto workers (cb-crypto: the
# CSR, signer certificate, PKCSReq and CertRep), the refill workers (cb-keyfill, SCHED_IDLE)
# and the on-demand key workers (cb-keygen), per enrollment.
declare -A thr cpu
per_ms() { awk -v a="$1" -v b="$2" -v n="$T" 'BEGIN {printf "%.1f", (b - a) * 1000 / n}'; }
for k in 1 4 16; do
        lab_run_as alice "$LAB_PYTHON" "$client" pool-ready 300 >/dev/null
        cpu0=$(cpu_s "$cb_pid") main0=$(cpu_s "$cb_pid" main) fill0=$(cpu_s "$cb_pid" cb-keyfill)
        gen0=$(cpu_s "$cb_pid" cb-keygen) crypto0=$(cpu_s "$cb_pid" cb-crypto)
        thr[$k]=$(lab_run_as alice "$LAB_PYTHON" "$client" callers "$k" "$T" "thr$k-")
        cpu1=$(cpu_s "$cb_pid") main1=$(cpu_s "$cb_pid" main) fill1=$(cpu_s "$cb_pid" cb-keyfill)
        gen1=$(cpu_s "$cb_pid" cb-keygen) crypto1=$(cpu_s "$cb_pid" cb-crypto)
        cpu[$k]="loop $(per_ms "$main0" "$main1") ms, crypto workers $(per_ms "$crypto0" "$crypto1") ms, key refill $(per_ms "$fill0" "$fill1") ms, on-demand keys $(per_ms "$gen0" "$gen1") ms, whole process $(per_ms "$cpu0" "$cpu1") ms"
done

# Without the pool: every key generated on demand (on the pool's worker thread).
sed -i "/^KeyPool=/d" "$CB_CONF/certbroker.conf"
cb root call "$CB_BUS" "$CB_PATH" "$CB_BUS.Manager" Reload >/dev/null
lab_run_as alice "$LAB_PYTHON" "$client" sequential "$N" nopool >"$LAB_DIR/cb-nopool.txt"
cb_nopool=$(median <"$LAB_DIR/cb-nopool.txt")

# Many at once, while ListCAs is timed.
conc=$(lab_run_as alice "$LAB_PYTHON" "$client" concurrent "$C" conc)

# Memory after many more enrollments (16 callers, keys made on demand); the broker keeps every
# request (bus object, journal row), so some growth per request is expected.
lab_run_as alice "$LAB_PYTHON" "$client" callers 16 "$MEM_N" mem >/dev/null
mem_after=$(rss_anon "$cb_pid")
broker_stop

# ---- the server's capacity, without the broker: pre-made PKCSReqs (the broker's SCEP code,
# each with a one-time challenge fetched beforehand), then per enrollment a challenge-page GET
# (Kerberos) and the PKIOperation POST, over https like the broker, from 4 to 48 clients (Apache serves 50 at once).
kinit -k -t "$LAB_SVC_KEYTAB" svc-scep >/dev/null
ndes ctl cache_size=1000 >/dev/null
cap=0
cap_at=
cap_lines=
# Also at 4 clients: the broker keeps at most MaxOutstandingChallenges= (default 4, below
# NDES's cache of 5) enrollments at the server at once, so that is the most it can reach.
cap4=
for cc in 4 8 16 32 48; do
        ok0=$(ndes_scep_log_count 'type=19 .* status=SUCCESS')
        out=$("$CB_BUILD_ROOT/tests/ndes-load" "$LAB_HTTPS_URL/certsrv/mscep_admin/" \
                "$LAB_HTTPS_URL/certsrv/mscep/mscep.dll" "$LAB_TLS_ROOT" "$CAP_N" "$cc") ||
                lab_fail "ndes-load with $cc clients failed"
        ok1=$(ndes_scep_log_count 'type=19 .* status=SUCCESS')
        [ $((ok1 - ok0)) = "$CAP_N" ] || lab_fail "ndes-load: $((ok1 - ok0)) of $CAP_N PKCSReqs issued"
        rate=$(json "$out" per_s)
        [ "$cc" = 4 ] && cap4=$rate
        cap_lines+="  $cc clients: $rate enrollments/s (enrollment p50 $(json "$out" p50_ms) ms, p95 $(json "$out" p95_ms) ms)"$'\n'
        if awk -v a="$rate" -v b="$cap" 'BEGIN {exit !(a > b)}'; then cap=$rate cap_at=$cc; fi
        # The fetched challenges stay unused: forget them, so the cache is as the peers expect.
        flock "$NDES_STATE/lock" truncate -s 0 "$NDES_STATE/challenges"
done
ndes ctl cache_size=5 >/dev/null
# The capacity the broker can be compared with: NDES's own password cache of 5 and the broker's
# cap, MaxOutstandingChallenges= (default 4) challenges outstanding at once. Each of the 4
# clients GETs a challenge page and POSTs a PKCSReq built with that challenge (by the broker's
# SCEP code, on the client's thread): the bare load at the same cap.
same_cap=4
ok0=$(ndes_scep_log_count 'type=19 .* status=SUCCESS')
out=$("$CB_BUILD_ROOT/tests/ndes-load" "$LAB_HTTPS_URL/certsrv/mscep_admin/" \
        "$LAB_HTTPS_URL/certsrv/mscep/mscep.dll" "$LAB_TLS_ROOT" "$CAP_N" "$same_cap" live) ||
        lab_fail "ndes-load live with $same_cap clients (password cache 5) failed"
ok1=$(ndes_scep_log_count 'type=19 .* status=SUCCESS')
[ $((ok1 - ok0)) = "$CAP_N" ] || lab_fail "ndes-load live: $((ok1 - ok0)) of $CAP_N PKCSReqs issued"
cap_same=$(json "$out" per_s)
cap_same_line="$same_cap clients, password cache 5, each PKCSReq built with its challenge: $cap_same enrollments/s (enrollment p50 $(json "$out" p50_ms) ms, p95 $(json "$out" p95_ms) ms)"

# ---- peers, same server, same challenge source (mscep_admin with Kerberos) ----
kinit -k -t "$LAB_SVC_KEYTAB" svc-scep >/dev/null
peer_dir=$LAB_DIR/peers
mkdir -p "$peer_dir"
openssl genrsa -traditional -out "$peer_dir/premade.key" 2048 2>/dev/null
: >"$peer_dir/scepclient.txt"
: >"$peer_dir/scepclient-premade.txt"
for i in $(seq 1 "$N"); do
        for kind in fresh premade; do
                # scepclient keeps csr.pem and self.pem beside the key and reuses them next
                # time: each run gets a directory of its own.
                run=$peer_dir/$kind$i
                mkdir "$run"
                [ "$kind" = premade ] && cp "$peer_dir/premade.key" "$run/key.pem"
                t0=$(date +%s.%N)
                c=$(ndes_challenge)
                (cd "$run" && scepclient -server-url "$NDES_URL" -challenge "$c" -private-key "$run/key.pem" \
                        -certificate "$run/cert.pem" -cn "sc$i.a.example.test" >"$run/log" 2>&1) ||
                        { cat "$run/log"; lab_fail "scepclient enrollment $i ($kind) failed"; }
                t1=$(date +%s.%N)
                [ -s "$run/cert.pem" ] || lab_fail "scepclient wrote no certificate ($kind $i)"
                awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.6f\n", b - a}' \
                        >>"$peer_dir/scepclient$([ "$kind" = premade ] && echo -premade).txt"
        done
done
sc_med=$(median <"$peer_dir/scepclient.txt")
sc_pre=$(median <"$peer_dir/scepclient-premade.txt")

# certmonger, with its state and socket inside the lab (as tests/integration/ndes-certmonger.sh):
# it would otherwise use the host's /var/lib/certmonger.
cm_med=
cm_note=
if command -v certmonger >/dev/null && command -v getcert >/dev/null; then
        cm=$LAB_DIR/certmonger
        mkdir -m 0700 "$cm" "$cm/cas" "$cm/requests" "$cm/local" "$cm/tmp"
        export CERTMONGER_CONFIG_DIR=$cm CERTMONGER_REQUESTS_DIR=$cm/requests CERTMONGER_CAS_DIR=$cm/cas \
                CERTMONGER_LOCAL_CA_DIR=$cm/local CERTMONGER_TMPDIR=$cm/tmp CERTMONGER_SYSTEM_LOCK_FILE=$cm/lock
        export CERTMONGER_PVT_ADDRESS=unix:path=$cm/socket
        lab_start certmonger certmonger -n -L -P "$cm/socket"
        lab_wait_for 10 "certmonger on $cm/socket" getcert list-cas
        if getcert add-scep-ca -c ndes -u "$NDES_URL" -N "$NDES_STATE/ca.crt" >"$cm/add.log" 2>&1; then
                : >"$cm/times.txt"
                for i in $(seq 1 "$N"); do
                        t0=$(date +%s.%N)
                        c=$(ndes_challenge)
                        if ! timeout 120 getcert request -w -c ndes -L "$c" \
                                -k "$cm/k$i.key" -f "$cm/c$i.crt" -N "CN=cm$i.a.example.test" \
                                -D "cm$i.a.example.test" >"$cm/req.log" 2>&1; then
                                cm_note="certmonger enrollment $i failed: $(tail -2 "$cm/req.log" | tr '\n' ' ')"
                                break
                        fi
                        t1=$(date +%s.%N)
                        [ -s "$cm/c$i.crt" ] || { cm_note="certmonger wrote no certificate"; break; }
                        awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.6f\n", b - a}' >>"$cm/times.txt"
                done
                [ -z "$cm_note" ] && cm_med=$(median <"$cm/times.txt")
        else
                cm_note="certmonger refused the CA: $(tail -2 "$cm/add.log" | tr '\n' ' ')"
        fi
        lab_stop certmonger
fi

echo
echo "# enrollment benchmark: $N sequential enrollments each, RSA-2048, NDES emulator behind"
echo "# Apache + mod_auth_gssapi (caps $(ndes ctl | sed -n 's/^caps=//p'), http), challenge from mscep_admin with Kerberos"
printf '%-44s %s\n' "certbrokerd, keys from the pool (median)" "$(ms "$cb_med")"
printf '%-44s %s\n' "certbrokerd, keys generated per request" "$(ms "$cb_nopool")"
printf '%-44s %s\n' "scepclient + curl challenge, key generated" "$(ms "$sc_med")"
printf '%-44s %s\n' "scepclient + curl challenge, pre-made key" "$(ms "$sc_pre")"
if [ -n "$cm_med" ]; then
        printf '%-44s %s\n' "certmonger + curl challenge, key generated" "$(ms "$cm_med")"
else
        printf '%-44s %s\n' "certmonger" "not measured: ${cm_note:-not installed}"
fi
echo "ratios (peer time / certbrokerd time, >1: certbrokerd faster):"
printf '  scepclient (key generated) / certbrokerd (pool):     %s\n' "$(ratio "$sc_med" "$cb_med")"
printf '  scepclient (pre-made key) / certbrokerd (pool):      %s\n' "$(ratio "$sc_pre" "$cb_med")"
printf '  scepclient (key generated) / certbrokerd (no pool):  %s\n' "$(ratio "$sc_med" "$cb_nopool")"
[ -n "$cm_med" ] && printf '  certmonger / certbrokerd (no pool):                  %s\n' "$(ratio "$cm_med" "$cb_nopool")"
echo "overhead per enrollment (pool): $(ms "$ovh_med" | sed 's/ ms//') ms over the server's $(ms "$srv_med" | sed 's/ ms//') ms"
echo "overhead per enrollment (pool), p95: $(ms "$ovh_p95" | sed 's/ ms//') ms over the server's $(ms "$srv_p95" | sed 's/ ms//') ms"
echo "  (the client's time from Enroll to TakeKey, minus Apache's %D for the challenge page and the PKIOperation)"
echo "server capacity with a 1000-slot password cache (ndes-load, $CAP_N pre-made PKCSReqs, broker not involved): $cap/s at $cap_at clients"
printf '%s' "$cap_lines"
for k in 1 4; do
        echo "$k caller$([ "$k" = 1 ] || echo s): $(json "${thr[$k]}" per_s) enrollments/s ($T enrollments, pool keys; certbrokerd CPU per enrollment: ${cpu[$k]})"
done
echo "16 callers: $(json "${thr[16]}" per_s) enrollments/s, server capacity $cap_same/s at the same cap (ratio $(ratio "$(json "${thr[16]}" per_s)" "$cap_same"))"
echo "  same cap: the server's $cap_same_line"
echo "  1000-slot password cache, pre-made PKCSReqs (not the broker's cap): best $cap/s at $cap_at clients (ratio $(ratio "$(json "${thr[16]}" per_s)" "$cap")), $cap4/s at 4 clients (ratio $(ratio "$(json "${thr[16]}" per_s)" "$cap4"))"
echo "  ListCAs during the 16-caller run: p50 $(json "${thr[16]}" listcas_p50_ms) ms, p99 $(json "${thr[16]}" listcas_p99_ms) ms, max $(json "${thr[16]}" listcas_max_ms) ms ($(json "${thr[16]}" listcas_samples) samples)"
echo "  the bus daemon's own GetId, timed after each ListCAs from the same process: p50 $(json "${thr[16]}" bus_getid_p50_ms) ms, p99 $(json "${thr[16]}" bus_getid_p99_ms) ms (the same path without certbrokerd)"
echo "  certbrokerd CPU per enrollment in the 16-caller run: ${cpu[16]}"
echo "key refill workers' scheduling policy (count policy; 5 = SCHED_IDLE, 0 = normal): ${refill_policy:-none found}"
echo "private memory of certbrokerd (RssAnon): idle $mem_idle MiB, after $mem_total enrollments $mem_after MiB"
echo "steady state per certbrokerd enrollment (pool): $http_per HTTP requests, $((kdc_after - kdc_before)) KDC exchanges for $N enrollments"
echo "$C enrollments in flight: $conc"
