#!/usr/bin/env bash
# certbrokerctl deploy end to end on the real lab, with the NDES emulator issuing certificates
# valid for 16 s and RenewBefore=6s (a new certificate every 10 s), as the tenant alice: the
# directory's live generation changes once per certificate and its key always matches the
# certificate beside it (openssl, sampled while it runs); the reload command runs once per
# certificate with the paths and request id in its environment; a failing reload command is
# reported and retried; kill -9 of the deploy command and a restart re-attach to the same chain
# (one enrollment); kill -9 of certbrokerd under it: the deployment goes on; a directory
# writable by others, a directory that is a symlink and planted links are refused.
set -euo pipefail
: "${CB_SOURCE_ROOT:=$(cd "$(dirname "$0")/../.." && pwd)}"
. "$CB_SOURCE_ROOT/tests/lab/lab.sh"
lab_enter "$@"
. "$CB_SOURCE_ROOT/tests/integration/ndes-common.sh"
. "$CB_SOURCE_ROOT/tests/integration/daemon-common.sh"

CTL=$CB_BUILD_ROOT/client-lib/certbrokerctl
[ -x "$CTL" ] || lab_fail "certbrokerctl is not built: $CTL"
PY=$LAB_PYTHON
A=$LAB_DIR/alice
mkdir -p "$A"
chown alice "$A"
chmod 0700 "$A"
alice_uid=$(getent passwd alice | cut -d: -f3)
alice_gid=$(getent passwd alice | cut -d: -f4)

broker_lab
printf 'RenewBefore=6s\nRenewJitter=0\n' >>"$CB_CONF/ca.d/corp.conf"
ndes ctl validity=16 >/dev/null
broker_start

# as_alice CMD...: run as alice in her directory.
as_alice() { (cd "$A" && lab_run_as alice "$@"); }
# deploy_start NAME ARGS...: certbrokerctl deploy as alice in the background ($LAB_DIR/NAME.log).
deploy_start() {
        local name=$1
        shift
        lab_start "$name" setpriv --reuid="$alice_uid" --regid="$alice_gid" --init-groups --inh-caps=-all -- \
                "$CTL" deploy "$@"
}
# chain_heads NAME: how many of alice's requests for NAME are first enrollments.
chain_heads() {
        as_alice "$CTL" --json list | "$PY" -c "
import json, sys
print(sum(1 for r in json.load(sys.stdin) if '$1' in r.get('names', []) and not r.get('predecessor')))"
}
# check_generation DIR: the live generation, resolved once: key matches certificate, fullchain
# starts with it, key mode 0600. Prints the generation's name.
check_generation() {
        local d=$1 g k c
        g=$(readlink "$d/live") || return 1
        k=$(openssl pkey -in "$d/$g/key.pem" -pubout 2>/dev/null | sha256sum) || return 1
        c=$(openssl x509 -in "$d/$g/cert.pem" -noout -pubkey 2>/dev/null | sha256sum) || return 1
        [ "$k" = "$c" ] || { echo "MISMATCH $g"; return 0; }
        [ "$(head -c 27 "$d/$g/fullchain.pem")" = "-----BEGIN CERTIFICATE-----" ] || { echo "BADFULLCHAIN $g"; return 0; }
        echo "$g"
}

# The reload command: records request id, key and certificate public keys, once per run.
cat >"$A/reload.sh" <<'SH'
#!/bin/sh
set -e
k=$(openssl pkey -in "$CERTBROKER_KEY" -pubout | sha256sum | cut -c1-16)
c=$(openssl x509 -in "$CERTBROKER_CERT" -noout -pubkey | sha256sum | cut -c1-16)
n=$(grep -c BEGIN "$CERTBROKER_CHAIN" || true)
echo "$CERTBROKER_REQUEST $k $c $n $CERTBROKER_DIR" >>"$(dirname "$0")/reload.log"
SH
chmod 0755 "$A/reload.sh"
chown alice "$A/reload.sh"

# ---- refused directories: nothing is enrolled for them ----
for bad in open link planted state; do
        mkdir -m 0700 "$A/$bad.d"
        chown alice "$A/$bad.d"
done
chmod 0770 "$A/open.d"
ln -s "$A/link.d" "$A/symlink.d"
ln -s /etc "$A/planted.d/live"
ln -s /etc/passwd "$A/state.d/.certbroker-request"
chown -h alice "$A/planted.d/live" "$A/state.d/.certbroker-request"
refuse() {      # DIR EXPECTED-MESSAGE
        local out rc=0
        out=$(as_alice "$CTL" deploy --once --dir "$1" --dns refused.a.example.test 2>&1) || rc=$?
        lab_assert_eq "$rc" 1 "deploy into $1: exit code ($out)"
        lab_assert_contains "$out" "$2" "deploy into $1"
}
refuse "$A/open.d" "writable by its group or others"
refuse "$A/symlink.d" "is a symbolic link"
refuse "$A/planted.d" "points to '/etc', not to a generation"
refuse "$A/state.d" ".certbroker-request is a symbolic link"
lab_assert_eq "$(chain_heads refused.a.example.test)" 0 "requests enrolled for refused directories"
lab_pass "deploy refuses a directory others can write, a directory that is a symlink, a planted live link and a planted state file, before enrolling"

# ---- a running deployment: one generation and one reload per certificate, always matching ----
D=$A/web
mkdir -m 0750 "$D"
chown alice "$D"
deploy_start deploy1 --dir "$D" --reload "$A/reload.sh" --dns deploy.a.example.test --label web
lab_wait_for 60 "the first deployed certificate" test -s "$A/reload.log"
first=$(sed -n 's/^request=//p' "$D/.certbroker-request")
samples=0 bad=()
declare -A seen=()
deadline=$((SECONDS + 60))
while [ "$(wc -l <"$A/reload.log")" -lt 3 ]; do
        [ $SECONDS -lt $deadline ] || lab_fail "three certificates not deployed in 60 s: $(cat "$LAB_DIR/deploy1.log")"
        g=$(check_generation "$D") || continue
        case "$g" in MISMATCH*|BADFULLCHAIN*) bad+=("$g") ;; *) seen[$g]=1 ;; esac
        samples=$((samples + 1))
        sleep 0.2
done
[ ${#bad[@]} -eq 0 ] || lab_fail "a generation's key does not match its certificate: ${bad[*]}"
[ "$samples" -ge 20 ] || lab_fail "only $samples samples of the live generation"
[ "${#seen[@]}" -ge 2 ] || lab_fail "the live generation never changed while sampled: ${!seen[*]}"
# The reload log: distinct requests, each a member of one chain, key = certificate, a chain.
"$PY" - "$A/reload.log" "$D" <<'PYEOF' || lab_fail "reload log (above)"
import sys
rows = [l.split() for l in open(sys.argv[1])]
ids = [r[0] for r in rows]
bad = [r for r in rows if r[1] != r[2] or int(r[3]) < 1 or r[4] != sys.argv[2]]
if len(set(ids)) != len(ids):
    print(f'not ok - a request reloaded twice: {ids}')
if bad:
    print(f'not ok - reload saw a mismatched key or no chain: {bad}')
if len(set(r[1] for r in rows)) != len(rows):
    print(f'not ok - a key was reused: {rows}')
sys.exit(1 if bad or len(set(ids)) != len(ids) or len(set(r[1] for r in rows)) != len(rows) else 0)
PYEOF
# Each reloaded request is the predecessor of the next, and its certificate is in gen-<id>.
prev=
while read -r id _; do
        if [ -n "$prev" ]; then
                lab_assert_eq "$(as_alice "$CTL" --json status "$id" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["predecessor"])')" \
                        "$prev" "request $id renews the one reloaded before"
        fi
        prev=$id
done <"$A/reload.log"
live=$(readlink "$D/live")
lab_assert_eq "$(cb_prop alice "$CB_PATH/request/${live#gen-}" Certificate)" "$(cat "$D/live/cert.pem")" "live cert.pem is the broker's"
lab_assert_eq "$(stat -c '%a %U' "$D/$live/key.pem")" "600 alice" "key.pem mode and owner"
lab_assert_eq "$(stat -c '%a' "$D/$live/cert.pem")" 644 "cert.pem mode"
gens=$(find "$D" -maxdepth 1 -name 'gen-*' | wc -l)
[ "$gens" -le 2 ] || lab_fail "$gens generations kept, expected at most 2"
lab_assert_eq "$(grep -c ' deployed: ' "$LAB_DIR/deploy1.log")" "$(wc -l <"$A/reload.log")" "generations deployed = reloads"
lab_assert_eq "$(chain_heads deploy.a.example.test)" 1 "enrollments for the directory"
lab_pass "deploy: one generation and one reload per certificate ($(wc -l <"$A/reload.log") so far), key always matching its certificate ($samples samples), 2 generations kept"

# ---- kill -9 of the deploy command, and a restart: the same chain, no second enrollment ----
kill -9 "$(lab_pid deploy1)"
lab_stop deploy1
n=$(wc -l <"$A/reload.log")
deploy_start deploy2 --dir "$D" --reload "$A/reload.sh" --dns deploy.a.example.test --label web
lab_wait_for 40 "a certificate deployed after the restart" bash -c "[ \$(wc -l <'$A/reload.log') -gt $n ]"
lab_assert_contains "$(cat "$LAB_DIR/deploy2.log")" "following the chain of request" "the restarted deploy re-attaches"
lab_assert_eq "$(chain_heads deploy.a.example.test)" 1 "enrollments after kill -9 and restart"
lab_assert_eq "$(sort "$A/reload.log" | cut -d' ' -f1 | uniq -d)" "" "requests reloaded twice"
g=$(check_generation "$D")
[[ "$g" == gen-* ]] || lab_fail "after the restart: $g"
lab_pass "kill -9 of deploy and a restart re-attach to the chain of $first: one enrollment, no request reloaded twice"

# ---- kill -9 of certbrokerd under it: the deployment goes on ----
kill -9 "$(lab_pid certbrokerd)"
lab_stop certbrokerd
sleep 1
broker_start
n=$(wc -l <"$A/reload.log")
lab_wait_for 60 "a certificate deployed after certbrokerd's kill -9" bash -c "[ \$(wc -l <'$A/reload.log') -gt $n ]"
kill -0 "$(lab_pid deploy2)" || lab_fail "deploy exited when certbrokerd was killed: $(cat "$LAB_DIR/deploy2.log")"
lab_assert_eq "$(chain_heads deploy.a.example.test)" 1 "enrollments after certbrokerd's kill -9"
g=$(check_generation "$D")
[[ "$g" == gen-* ]] || lab_fail "after certbrokerd's restart: $g"
lab_pass "kill -9 of certbrokerd under a deployment: it reconnects and deploys the next certificate"
lab_stop deploy2

# ---- a failing reload command is reported and retried; --once ----
F=$A/fail
mkdir -m 0700 "$F"
chown alice "$F"
cat >"$A/flaky.sh" <<'SH'
#!/bin/sh
# fails twice, then succeeds
n=$(cat "$(dirname "$0")/flaky.count" 2>/dev/null || echo 0)
n=$((n + 1))
echo "$n" >"$(dirname "$0")/flaky.count"
echo "flaky run $n for $CERTBROKER_REQUEST" >&2
[ "$n" -ge 3 ] || exit 3
SH
chmod 0755 "$A/flaky.sh"
chown alice "$A/flaky.sh"
set +e
out=$(as_alice "$CTL" deploy --once --dir "$F" --reload "$A/flaky.sh" --dns flaky.a.example.test 2>&1)
rc=$?
set -e
lab_assert_eq "$rc" 0 "deploy --once with a flaky reload command ($out)"
lab_assert_contains "$out" "failed with exit status 3 (attempt 1); retrying in 1 s" "the first failure is reported"
lab_assert_contains "$out" "failed with exit status 3 (attempt 2); retrying in 2 s" "the second failure is reported"
lab_assert_contains "$out" "flaky run 2 for" "the command's stderr"
lab_assert_contains "$out" "succeeded (after retries)" "the success after retries"
lab_assert_eq "$(cat "$A/flaky.count")" 3 "reload runs"
lab_assert_eq "$(sed -n 's/^reloaded=//p' "$F/.certbroker-request")" "$(sed -n 's/^request=//p' "$F/.certbroker-request")" \
        "the state records the reload"
# --once again: the same chain, nothing reloaded twice, no second enrollment.
as_alice "$CTL" deploy --once --dir "$F" --reload "$A/flaky.sh" --dns flaky.a.example.test 2>/dev/null
[ "$(cat "$A/flaky.count")" -le 4 ] || lab_fail "reload ran again for an already reloaded certificate"
lab_assert_eq "$(chain_heads flaky.a.example.test)" 1 "enrollments for the --once directory"
lab_pass "a failing reload command is reported with its exit status and stderr and retried with backoff; --once re-attaches"

# ---- --config (what certbroker-deploy@.service runs): root switches to User= first ----
C=$A/conf
mkdir -m 0750 "$C"
chown alice "$C"
mkdir -p "$LAB_DIR/deploy.d"
cat >"$LAB_DIR/deploy.d/web.conf" <<CONF
# tenant A's web server
User=alice
Dir=$C
Reload=$A/reload.sh
DNS=conf.a.example.test www-conf.a.example.test
Label=conf
CONF
chmod 0644 "$LAB_DIR/deploy.d/web.conf"
n=$(wc -l <"$A/reload.log")
out=$("$CTL" deploy --once --config="$LAB_DIR/deploy.d/web.conf" 2>&1) || lab_fail "deploy --config as root: $out"
id=$(sed -n 's/^request=//p' "$C/.certbroker-request")
lab_assert_eq "$(cb root get-property "$CB_BUS" "$CB_PATH/request/$id" "$CB_BUS.Request" Owner)" \
        "u $alice_uid" "the request's owner (the broker saw User=, not root)"
lab_assert_eq "$(stat -c %U "$C/.certbroker-request" "$C/live/key.pem" | sort -u)" alice "files written as User="
lab_assert_eq "$(tail -1 "$A/reload.log" | cut -d' ' -f1)" "$id" "the reload command ran for it"
[ "$(wc -l <"$A/reload.log")" -eq $((n + 1)) ] || lab_fail "reload ran $(( $(wc -l <"$A/reload.log") - n )) times"
sed -i '/^User=/d' "$LAB_DIR/deploy.d/web.conf"
set +e
out=$("$CTL" deploy --once --config="$LAB_DIR/deploy.d/web.conf" 2>&1)
rc=$?
set -e
lab_assert_eq "$rc" 2 "deploy --config as root without User= ($out)"
lab_assert_contains "$out" "User= is missing" "root without User="
chmod 0666 "$LAB_DIR/deploy.d/web.conf"
set +e
out=$(as_alice "$CTL" deploy --once --config="$LAB_DIR/deploy.d/web.conf" 2>&1)
rc=$?
set -e
lab_assert_eq "$rc" 1 "a world-writable --config ($out)"
lab_assert_contains "$out" "not writable by group or others" "a world-writable --config"
lab_pass "deploy --config as root runs as its User= (request owner, file owner, reload); refuses no User= and a writable file"

ndes ctl validity=0 >/dev/null
broker_stop
