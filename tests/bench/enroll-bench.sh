#!/usr/bin/env bash
# Enrollment benchmark: certbrokerd against the NDES emulator (behind Apache with Kerberos),
# and, in the same run against the same server, the independent clients micromdm scepclient
# and certmonger. Prints figures and ratios; asserts nothing about time (it is a benchmark,
# not a test), but fails if any enrollment fails.
#
#   meson test -C build --benchmark enroll-bench       (or: bash tests/bench/enroll-bench.sh)
#   BENCH_N=20 BENCH_CONCURRENT=100 to change the counts.
set -euo pipefail
: "${CB_SOURCE_ROOT:=$(cd "$(dirname "$0")/../.." && pwd)}"
. "$CB_SOURCE_ROOT/tests/lab/lab.sh"
lab_enter "$@"
. "$CB_SOURCE_ROOT/tests/integration/ndes-common.sh"
. "$CB_SOURCE_ROOT/tests/integration/daemon-common.sh"

N=${BENCH_N:-20}
C=${BENCH_CONCURRENT:-100}
client=$CB_SOURCE_ROOT/tests/bench/bench-client.py

median() { sort -g | awk '{a[NR]=$1} END {if (NR % 2) print a[(NR+1)/2]; else printf "%.6f\n", (a[NR/2]+a[NR/2+1])/2}'; }
ms() { awk -v s="$1" 'BEGIN {printf "%.1f ms", s * 1000}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }

broker_lab
sed -i "s/^\[Broker\]$/[Broker]\nKeyPool=rsa:2048=$((N + 2))/" "$CB_CONF/certbroker.conf"
cat >"$CB_CONF/policy.d/tenants.policy" <<'CONF'
[Rule]
Name=bench
Users=alice
Names=*.a.example.test
CONF
broker_start
echo "# waiting for the key pool: $(lab_run_as alice "$LAB_PYTHON" "$client" pool-ready 300)"

# Warm-up: ticket-granting ticket, service ticket, CA capabilities and certificates.
lab_run_as alice "$LAB_PYTHON" "$client" sequential 1 warm >/dev/null
kdc_before=$(grep -c 'svc-scep@EXAMPLE.TEST' "$LAB_KDC_LOG" || true)
http_before=$(wc -l <"$LAB_APACHE_ACCESS_LOG")

lab_run_as alice "$LAB_PYTHON" "$client" sequential "$N" seq >"$LAB_DIR/cb-seq.txt"
cb_med=$(median <"$LAB_DIR/cb-seq.txt")
kdc_after=$(grep -c 'svc-scep@EXAMPLE.TEST' "$LAB_KDC_LOG" || true)
http_after=$(wc -l <"$LAB_APACHE_ACCESS_LOG")
http_per=$(awk -v a="$http_before" -v b="$http_after" -v n="$N" 'BEGIN {printf "%.2f", (b - a) / n}')

# Without the pool: every key generated on demand (on the pool's worker thread).
sed -i "/^KeyPool=/d" "$CB_CONF/certbroker.conf"
cb root call "$CB_BUS" "$CB_PATH" "$CB_BUS.Manager" Reload >/dev/null
lab_run_as alice "$LAB_PYTHON" "$client" sequential "$N" nopool >"$LAB_DIR/cb-nopool.txt"
cb_nopool=$(median <"$LAB_DIR/cb-nopool.txt")

# Many at once, while ListCAs is timed.
conc=$(lab_run_as alice "$LAB_PYTHON" "$client" concurrent "$C" conc)
broker_stop

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
echo "steady state per certbrokerd enrollment (pool): $http_per HTTP requests, $((kdc_after - kdc_before)) KDC exchanges for $N enrollments"
echo "$C enrollments in flight: $conc"
