#!/usr/bin/env bash
# certbrokerctl deploy end to end on the real lab, with the NDES emulator issuing certificates
# valid for 16 s and RenewBefore=6s (a new certificate every 10 s), as the tenant alice: the
# directory's live generation changes once per certificate and its key always matches the
# certificate beside it (openssl, sampled while it runs); the reload command runs once per
# certificate with the paths and request id in its environment; a failing reload command is
# reported and retried; kill -9 of the deploy command and a restart re-attach to the same chain
# (one enrollment); killed between Enroll's reply and recording it, and an Enroll whose sender
# died before certbrokerd read it: the restart's Enroll with the same intent token gets that
# request (one request at the broker); kill -9 mid-write at each point
# of a renewal, including between TakeKeySealed's reply and key.pem on disk (the same sealed
# key again);
# a hung reload command killed with its process group at the reload timeout and retried;
# kill -9 of certbrokerd under it: the deployment goes on; a directory
# writable by others, a directory that is a symlink and planted links are refused.
set -euo pipefail
: "${CB_SOURCE_ROOT:=$(cd "$(dirname "$0")/../.." && pwd)}"
. "$CB_SOURCE_ROOT/tests/integration/daemon-enter.sh" "$@"

broker_need_ctl
PY=$LAB_PYTHON
A=$LAB_DIR/alice
mkdir -p "$A"
chown alice "$A"
chmod 0700 "$A"
alice_uid=$(getent passwd alice | cut -d: -f3)
alice_gid=$(getent passwd alice | cut -d: -f4)

broker_lab
printf 'RenewBefore=6s\nRenewJitter=0\n' >>"$CB_CONF/ca.d/corp.conf"
# Several deployments renew every 10 s here: on a loaded machine more of alice's requests are
# in flight at once than tenant-a's MaxActive=5, which is not what this test is about.
sed -i 's/^MaxActive=5$/MaxActive=50/' "$CB_CONF/policy.d/tenants.policy"
grep -qx 'MaxActive=50' "$CB_CONF/policy.d/tenants.policy" || lab_fail "tenant-a's MaxActive= not raised"
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

# ---- one deployment per directory: a second one is refused while the first runs ----
set +e
out=$(as_alice "$CTL" deploy --once --dir "$D" --reload "$A/reload.sh" --dns deploy.a.example.test --label web 2>&1)
rc=$?
set -e
lab_assert_eq "$rc" 1 "a second deploy for a directory in use ($out)"
lab_assert_contains "$out" "another certbrokerctl deploy is running for this directory" "a second deploy"
kill -0 "$(lab_pid deploy2)" || lab_fail "the running deploy exited: $(cat "$LAB_DIR/deploy2.log")"
lab_pass "a second deploy for the same directory is refused while one runs (its lock)"
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

# ---- killed after Enroll replied, before the id was recorded: re-attached, never enrolled twice ----
# (CERTBROKER_TEST_KILL_AT=deploy-enrolled: SIGKILL right after Enroll's reply.) The intent token
# was made durable before Enroll and is its option token (and in its label); the next run's
# Enroll with it is answered with that request.
# heads_of NAME: "COUNT LABEL..." of alice's first enrollments for NAME.
heads_of() {
        as_alice "$CTL" --json list | "$PY" -c "
import json, sys
h = [r for r in json.load(sys.stdin) if '$1' in r.get('names', []) and not r.get('predecessor')]
print(len(h), *[r.get('label', '') for r in h])"
}
# a private copy of reload.sh per directory: its own reload.log beside it
reload_copy() { mkdir -m 0700 "$1"; cp "$A/reload.sh" "$1/reload.sh"; chown -R alice "$1"; }
K=$A/crash
mkdir -m 0700 "$K"
chown alice "$K"
reload_copy "$A/crash.bin"
set +e
out=$(as_alice env CERTBROKER_TEST_KILL_AT=deploy-enrolled "$CTL" deploy --once --dir "$K" \
        --reload "$A/crash.bin/reload.sh" --dns crash.a.example.test --label crash 2>&1)
rc=$?
set -e
lab_assert_eq "$rc" 137 "deploy killed at deploy-enrolled ($out)"
lab_assert_contains "$out" "CERTBROKER_TEST_KILL_AT=deploy-enrolled" "the kill point was reached"
lab_assert_eq "$(sed -n 's/^request=//p' "$K/.certbroker-request")" "" "the request id recorded before the kill"
token=$(sed -n 's/^intent=//p' "$K/.certbroker-request")
[[ "$token" =~ ^[0-9a-f]{32}$ ]] || lab_fail "no intent token in the state file: $(cat "$K/.certbroker-request")"
heads=$(heads_of crash.a.example.test)
lab_assert_eq "$heads" "1 crash deploy:$token" "requests at the broker after the kill (count and label)"
[ ! -e "$K/live" ] || lab_fail "something was deployed before the kill"
out=$(as_alice "$CTL" deploy --once --dir "$K" --reload "$A/crash.bin/reload.sh" --dns crash.a.example.test \
        --label crash 2>&1) || lab_fail "deploy after the kill: $out"
lab_assert_contains "$out" "answer to Enroll with the token" "the restarted deploy enrolls with its token again"
lab_assert_eq "$(heads_of crash.a.example.test)" "$heads" "requests at the broker after the restart"
id=$(sed -n 's/^request=//p' "$K/.certbroker-request")
lab_assert_eq "$(as_alice "$CTL" --json list | "$PY" -c "
import json, sys
print(sum(1 for r in json.load(sys.stdin) if 'crash.a.example.test' in r.get('names', [])))")" 1 \
        "requests of any kind for the directory"
lab_assert_eq "$(wc -l <"$A/crash.bin/reload.log")" 1 "reloads"
lab_assert_eq "$(cut -d' ' -f1 "$A/crash.bin/reload.log")" "$id" "the reloaded request is the one enrolled before the kill"
lab_assert_eq "$(check_generation "$K")" "gen-$id" "the deployed generation"
lab_assert_eq "$(find "$K" -maxdepth 1 -name 'gen-*' | wc -l)" 1 "generations"
# An intent whose Enroll never reached the broker: enrolled then (once).
N=$A/never
mkdir -m 0700 "$N"
printf 'intent=%s\n' "$(openssl rand -hex 16)" >"$N/.certbroker-request"
chmod 0600 "$N/.certbroker-request"
chown -R alice "$N"
out=$(as_alice "$CTL" deploy --once --dir "$N" --dns never.a.example.test 2>&1) || lab_fail "deploy with a stale intent: $out"
lab_assert_eq "$(heads_of never.a.example.test | cut -d' ' -f1)" 1 "requests for a stale intent"
lab_pass "deploy killed between Enroll's reply and recording the id: the restart's Enroll with the same token gets that request (1 request at the broker, deployed and reloaded once); a token the broker never saw is enrolled once"

# ---- an Enroll sent, its sender gone before certbrokerd read it: still one request ----
# A deploy killed right after it sent Enroll, on a connection certbrokerd already knew, while
# certbrokerd had not read that Enroll yet: the restart's Enroll races the first. Made
# deterministic with tests/integration/rawbus.py as alice: a connection that made a call
# (CheckAccess) sends the Enroll deploy would send (the intent token of the state file as
# option token and in the label, renew) while certbrokerd is stopped (SIGSTOP), and exits; the
# restarted deploy sends its own Enroll; certbrokerd, continued, reads both in that order: the
# first makes the request, the second is answered with it (without the token: two requests).
U=$A/unread
mkdir -m 0700 "$U"
utoken=$(openssl rand -hex 16)
printf 'intent=%s\n' "$utoken" >"$U/.certbroker-request"
chmod 0600 "$U/.certbroker-request"
chown -R alice "$U"
reload_copy "$A/unread.bin"
rm -f "$LAB_DIR/unread.go"
lab_start unread-sender setpriv --reuid="$alice_uid" --regid="$alice_gid" --init-groups --inh-caps=-all -- \
        "$PY" "$CB_SOURCE_ROOT/tests/integration/rawbus.py" connect-send "$LAB_DIR/unread.go" \
        CheckAccess:unread.a.example.test -- "EnrollToken:unread.a.example.test:deploy:$utoken:$utoken"
lab_wait_for 20 "the sender's CheckAccess answered" grep -q '^reply' "$LAB_DIR/unread-sender.log"
bpid=$(lab_pid certbrokerd)
kill -STOP "$bpid"
touch "$LAB_DIR/unread.go"
lab_wait_for 20 "the sender to send Enroll and exit" bash -c "! kill -0 $(lab_pid unread-sender) 2>/dev/null"
lab_assert_contains "$(cat "$LAB_DIR/unread-sender.log")" "sent EnrollToken" "the unanswered Enroll"
deploy_start unread2 --once --dir "$U" --reload "$A/unread.bin/reload.sh" --dns unread.a.example.test
sleep 1         # its Enroll is on the bus behind the first
kill -CONT "$bpid"
lab_wait_for 60 "the restarted deploy to finish" bash -c "! kill -0 $(lab_pid unread2) 2>/dev/null"
lab_assert_eq "$(as_alice "$CTL" --json list | "$PY" -c "
import json, sys
print(sum(1 for r in json.load(sys.stdin) if 'unread.a.example.test' in r.get('names', [])))")" 1 \
        "requests at the broker for an Enroll whose sender was gone before certbrokerd read it"
uid=$(sed -n 's/^request=//p' "$U/.certbroker-request")
grep -q "repeated with the token of request $uid" "$LAB_DIR/certbrokerd.log" ||
        lab_fail "certbrokerd did not answer the second Enroll with the first's request $uid: $(grep unread "$LAB_DIR/certbrokerd.log")"
lab_assert_eq "$(check_generation "$U")" "gen-$uid" "the deployed generation"
lab_assert_eq "$(wc -l <"$A/unread.bin/reload.log")" 1 "reloads"
lab_pass "an Enroll whose sender died before certbrokerd read it, then the restarted deploy's Enroll with the same token: one request (made by the first, the second answered with it), deployed and reloaded once"

# A directory whose token names a request made with other parameters: deploy says so and how to
# start anew, and enrolls nothing.
P=$A/changed
mkdir -m 0700 "$P"
printf 'intent=%s\n' "$utoken" >"$P/.certbroker-request"
chmod 0600 "$P/.certbroker-request"
chown -R alice "$P"
set +e
out=$(as_alice "$CTL" deploy --once --dir "$P" --dns changed.a.example.test 2>&1)
rc=$?
set -e
lab_assert_eq "$rc" 1 "deploy whose token names a request with other names ($out)"
lab_assert_contains "$out" "was started with other parameters than now" "deploy with changed parameters"
lab_assert_contains "$out" "made with another names" "deploy with changed parameters: what differs"
lab_assert_contains "$out" "remove the intent= line" "deploy with changed parameters: the way out"
lab_assert_eq "$(heads_of changed.a.example.test | cut -d' ' -f1)" 0 "requests for the changed parameters"
lab_pass "a deployment restarted with other parameters than its token's request: refused naming what differs and the way out, nothing enrolled"

# ---- kill -9 mid-write of a renewal, at each point: the live files always match ----
# One directory per kill point, all at once: the first certificate deployed with --once, then a
# deployment killed while it writes the second (TakeKeySealed answered, key.pem not written; the
# key in gen-<id>/ only; gen-<id>/ complete, live not switched; live switched, reload not run;
# reload run, not recorded), then --once.
points="deploy-key-sealed deploy-key-written deploy-generation-written deploy-live-swapped deploy-reloaded"
for p in $points; do
        mkdir -m 0700 "$A/$p"
        chown alice "$A/$p"
        reload_copy "$A/$p.bin"
        out=$(as_alice "$CTL" deploy --once --dir "$A/$p" --reload "$A/$p.bin/reload.sh" --dns "$p.a.example.test" 2>&1) ||
                lab_fail "first deploy for $p: $out"
done
for p in $points; do
        lab_start "kill-$p" env CERTBROKER_TEST_KILL_AT="$p" setpriv --reuid="$alice_uid" --regid="$alice_gid" \
                --init-groups --inh-caps=-all -- "$CTL" deploy --dir "$A/$p" --reload "$A/$p.bin/reload.sh" \
                --dns "$p.a.example.test"
done
for p in $points; do
        lab_wait_for 60 "deploy to be killed at $p" bash -c "! kill -0 $(lab_pid "kill-$p") 2>/dev/null"
        lab_assert_contains "$(cat "$LAB_DIR/kill-$p.log")" "CERTBROKER_TEST_KILL_AT=$p" "the kill point $p"
        g=$(check_generation "$A/$p")
        [[ "$g" == gen-* ]] || lab_fail "killed at $p: the live generation: $g"
        first=$(head -1 "$A/$p.bin/reload.log" | cut -d' ' -f1)
        case $p in
        deploy-key-sealed|deploy-key-written|deploy-generation-written)
                lab_assert_eq "$g" "gen-$first" "killed at $p: live still points to the first certificate" ;;
        *)
                [ "$g" != "gen-$first" ] || lab_fail "killed at $p: live was not switched" ;;
        esac
        if [ "$p" = deploy-key-sealed ]; then
                sid=$(sed -n 's/^seal=\([0-9a-f]*\) .*/\1/p' "$A/$p/.certbroker-request")
                [ -n "$sid" ] || lab_fail "killed at $p: no receiver key in the state file"
                lab_assert_eq "$(as_alice "$CTL" --json status "$sid" | "$PY" -c 'import json,sys; d=json.load(sys.stdin); print(d["key_sealed"], d["key_available"])')" \
                        "True False" "killed at $p: status --json of $sid (key_sealed, key_available)"
                lab_assert_contains "$(as_alice "$CTL" status "$sid")" "Key sealed:    yes" "killed at $p: status"
        fi
        killed=${g#gen-}        # the certificate live when it was killed
        lab_stop "kill-$p"
        out=$(as_alice "$CTL" deploy --once --dir "$A/$p" --reload "$A/$p.bin/reload.sh" --dns "$p.a.example.test" 2>&1) ||
                lab_fail "deploy --once after the kill at $p: $out"
        g=$(check_generation "$A/$p")
        [[ "$g" == gen-* ]] || lab_fail "after the kill at $p: $g"
        id=$(sed -n 's/^request=//p' "$A/$p/.certbroker-request")
        lab_assert_eq "$g" "gen-$id" "after the kill at $p: live is the recorded request"
        lab_assert_eq "$(tail -1 "$A/$p.bin/reload.log" | cut -d' ' -f1)" "$id" "after the kill at $p: reloaded for it"
        lab_assert_eq "$(cb_prop alice "$CB_PATH/request/$id" Certificate)" "$(cat "$A/$p/live/cert.pem")" \
                "after the kill at $p: live cert.pem is the broker's"
        dups=$(cut -d' ' -f1 "$A/$p.bin/reload.log" | sort | uniq -d)
        if [ "$p" = deploy-reloaded ] && [ "$id" = "$killed" ]; then
                # The reload command had succeeded, its success was not recorded: it runs again.
                lab_assert_eq "$dups" "$id" "killed after the reload ran: it is run again for $id (at least once)"
        elif [ "$p" = deploy-reloaded ]; then
                # A newer successor was issued before the restart (a loaded machine, short
                # lifetimes): the restart deploys that one, reloaded once; the killed one's reload
                # ran (before the kill) and is not needed again.
                lab_assert_eq "$(grep -c "^$killed " "$A/$p.bin/reload.log")" 1 "killed after the reload ran for $killed"
                lab_assert_eq "$dups" "" "killed after the reload ran, then a newer successor: a request reloaded twice"
                echo "# $p: a newer successor ($id) than the one killed after its reload ($killed) was deployed"
        else
                lab_assert_eq "$dups" "" "killed at $p: a request reloaded twice"
        fi
        lab_assert_eq "$(chain_heads "$p.a.example.test")" 1 "enrollments for $p"
        lab_assert_eq "$(cb alice get-property "$CB_BUS" "$CB_PATH/request/$id" "$CB_BUS.Request" KeySealed)" "b false" \
                "after the kill at $p: the sealed copy confirmed and erased"
        lab_assert_eq "$(grep -c '^seal=' "$A/$p/.certbroker-request" || true)" 0 "after the kill at $p: the receiver key forgotten"
        if [ "$p" = deploy-key-sealed ] && [ "$id" != "$sid" ]; then
                # A newer successor than the sealed one was issued before the restart: deployed
                # with its own key, the sealed one's is not needed.
                echo "# $p: a newer successor ($id) than the sealed one ($sid) was deployed"
        elif [ "$p" = deploy-key-sealed ]; then
                lab_assert_contains "$out" "took its sealed key again" "killed between TakeKeySealed and key.pem"
                lab_assert_eq "$(cb alice get-property "$CB_BUS" "$CB_PATH/request/$id" "$CB_BUS.Request" KeyAvailable)" \
                        "b false" "killed at $p: the key left certbrokerd once"
        fi
done
lab_pass "kill -9 mid-write at each point (key sealed but not written, key written, generation written, live switched, reload run): live always a matching generation, the restart completes it, one reload per certificate (the last point: run again, at least once), one enrollment"

# ---- ConfirmKey lost (as if it timed out): deployed anyway, confirmed by the next run ----
L=$A/confirm-lost
mkdir -m 0700 "$L"
chown alice "$L"
reload_copy "$A/confirm-lost.bin"
out=$(as_alice env CERTBROKER_TEST_KILL_AT=deploy-confirm-lost "$CTL" deploy --once --dir "$L" \
        --reload "$A/confirm-lost.bin/reload.sh" --dns confirm-lost.a.example.test 2>&1) ||
        lab_fail "deploy with a lost ConfirmKey: $out"
lab_assert_contains "$out" "will ask again" "a lost ConfirmKey is reported"
lid=$(sed -n 's/^request=//p' "$L/.certbroker-request")
lab_assert_eq "$(check_generation "$L")" "gen-$lid" "deployed although ConfirmKey was lost"
lab_assert_eq "$(wc -l <"$A/confirm-lost.bin/reload.log")" 1 "reloads after a lost ConfirmKey"
lab_assert_eq "$(sed -n 's/^seal=\([0-9a-f]*\) .*/\1/p' "$L/.certbroker-request")" "$lid" "the receiver key kept for the retry"
lab_assert_eq "$(cb alice get-property "$CB_BUS" "$CB_PATH/request/$lid" "$CB_BUS.Request" KeySealed)" "b true" \
        "the sealed copy after a lost ConfirmKey"
out=$(as_alice "$CTL" deploy --once --dir "$L" --reload "$A/confirm-lost.bin/reload.sh" \
        --dns confirm-lost.a.example.test 2>&1) || lab_fail "deploy after a lost ConfirmKey: $out"
lab_assert_eq "$(cb alice get-property "$CB_BUS" "$CB_PATH/request/$lid" "$CB_BUS.Request" KeySealed)" "b false" \
        "the sealed copy once the next run confirmed it"
lab_assert_eq "$(grep -c '^seal=' "$L/.certbroker-request" || true)" 0 "the receiver key forgotten after the confirmation"
lab_assert_eq "$(wc -l <"$A/confirm-lost.bin/reload.log")" 1 "reloads after the confirmation (none again)"
lab_assert_eq "$(check_generation "$L")" "gen-$lid" "the deployed generation after the confirmation"
lab_pass "a ConfirmKey that does not get through: the key is deployed and reloaded anyway, the receiver key kept, and the next run confirms it (sealed copy erased, no second reload)"

# ---- a hung reload command: killed with its process group at the timeout, retried ----
H=$A/hung
mkdir -m 0700 "$H" "$A/hung.bin"
cat >"$A/hung.bin/hang.sh" <<'SH'
#!/bin/sh
# first run: hangs, ignoring SIGTERM, with a child of its own; then succeeds
d=$(dirname "$0")
n=$(cat "$d/count" 2>/dev/null || echo 0)
n=$((n + 1))
echo "$n" >"$d/count"
[ "$n" -ge 2 ] && exit 0
trap '' TERM
sleep 300 &
echo $! >"$d/child.pid"
sleep 300
SH
chmod 0755 "$A/hung.bin/hang.sh"
chown -R alice "$H" "$A/hung.bin"
t0=$SECONDS
set +e
out=$(as_alice "$CTL" deploy --once --dir "$H" --reload "$A/hung.bin/hang.sh" --reload-timeout 2 \
        --dns hung.a.example.test 2>&1)
rc=$?
set -e
lab_assert_eq "$rc" 0 "deploy --once with a hung reload command ($out)"
lab_assert_contains "$out" "timed out: still running after the reload timeout of 2 s, killed with its process group (attempt 1); retrying in 1 s" \
        "the timeout is reported"
lab_assert_contains "$out" "succeeded (after retries)" "the retry"
lab_assert_eq "$(cat "$A/hung.bin/count")" 2 "reload runs"
child=$(cat "$A/hung.bin/child.pid")
# (gone, or a zombie until the namespace's init reaps it)
lab_wait_for 5 "the hung command's child $child to be killed with its group" bash -c \
        "[ ! -e /proc/$child ] || grep -q '^State:.*Z' /proc/$child/status"
[ $((SECONDS - t0)) -lt 30 ] || lab_fail "deploy with a 2 s reload timeout took $((SECONDS - t0)) s"
lab_assert_eq "$(sed -n 's/^reloaded=//p' "$H/.certbroker-request")" "$(sed -n 's/^request=//p' "$H/.certbroker-request")" \
        "the state records the reload after the retry"
set +e
out=$(as_alice "$CTL" deploy --once --dir "$H" --reload-timeout soon --dns hung.a.example.test 2>&1)
rc=$?
set -e
lab_assert_eq "$rc" 2 "--reload-timeout soon ($out)"
lab_assert_contains "$out" "Invalid --reload-timeout 'soon'" "--reload-timeout soon"
lab_pass "a hung reload command (ignoring SIGTERM, with a child) is killed with its process group at --reload-timeout, reported naming the timeout, and retried"

# ---- --config (what certbroker-deploy@.service runs): root switches to User= first ----
# Certificates of a year from here on: these one-shot deploys check whom they ran for, and a
# 16-s certificate could be renewed (and its successor deployed) before a slow one ends.
ndes ctl validity=0 >/dev/null
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
ReloadTimeout=1
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
# ReloadTimeout= of the file: a hung command in a second instance is killed after 1 s.
mkdir -m 0750 "$A/conf2"
chown alice "$A/conf2"
rm -f "$A/hung.bin/count"
sed -e "s|^Dir=.*|Dir=$A/conf2|" -e "s|^Reload=.*|Reload=$A/hung.bin/hang.sh|" -e 's/^DNS=.*/DNS=conf2.a.example.test/' \
        "$LAB_DIR/deploy.d/web.conf" >"$LAB_DIR/deploy.d/web2.conf"
chmod 0644 "$LAB_DIR/deploy.d/web2.conf"
out=$("$CTL" deploy --once --config="$LAB_DIR/deploy.d/web2.conf" 2>&1) || lab_fail "deploy --config with ReloadTimeout=: $out"
lab_assert_contains "$out" "after the reload timeout of 1 s, killed" "ReloadTimeout=1"
lab_assert_eq "$(cat "$A/hung.bin/count")" 2 "reload runs with ReloadTimeout=1"
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

broker_stop
