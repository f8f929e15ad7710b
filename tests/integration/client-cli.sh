#!/usr/bin/env bash
# certbrokerctl end to end on the real lab (KDC, Apache + mod_auth_gssapi + NDES emulator,
# private system bus, certbrokerd), as the unprivileged tenants alice and bob: enroll
# writing key/cert/chain (modes, exclusivity, --force), --json parsed by python, status,
# wait, fetch, list, cancel, remove, cas, check, access, and every error path with its exit
# code and a message naming what was wrong.
set -euo pipefail
: "${CB_SOURCE_ROOT:=$(cd "$(dirname "$0")/../.." && pwd)}"
. "$CB_SOURCE_ROOT/tests/integration/daemon-enter.sh" "$@"

broker_need_ctl
PY=$LAB_PYTHON

# ctl USER ARGS...: certbrokerctl as USER in USER's work directory; sets OUT (stdout),
# ERR (stderr) and RC.
ctl() {
        local user=$1
        shift
        set +e
        OUT=$(cd "$LAB_DIR/$user" && lab_run_as "$user" "$CTL" "$@" 2>"$LAB_DIR/ctl.err")
        RC=$?
        set -e
        ERR=$(cat "$LAB_DIR/ctl.err")
        case "$ERR" in
        *"runtime error:"*|*Sanitizer*) lab_fail "certbrokerctl $*: sanitizer report: $ERR" ;;
        esac
}

# expect RC WHAT: the last ctl's exit code.
expect_rc() {
        if [ "$RC" != "$1" ]; then
                lab_fail "$2: exit code $RC, expected $1; stdout: $OUT; stderr: $ERR"
        fi
}

# json EXPR: evaluate a python expression on the last stdout parsed as JSON (as j).
json() {
        printf '%s' "$OUT" | "$PY" -c "import json,sys; j=json.load(sys.stdin); v=($1); print(v)" ||
                lab_fail "stdout is not the JSON expected ($1): $OUT"
}

for u in alice bob mallory; do
        mkdir -p "$LAB_DIR/$u"
        chown "$u" "$LAB_DIR/$u"
        chmod 0700 "$LAB_DIR/$u"
done

broker_lab
# A second CA whose static challenge password NDES does not know: NDES rejects (FAILURE).
broker_badpw_ca PollInterval=1

# ---- the daemon is not running / there is no bus ----
ctl alice list
expect_rc 7 "list without certbrokerd"
lab_assert_contains "$ERR" "certbrokerd is not running" "list without certbrokerd"
ctl alice --json cas
expect_rc 7 "cas --json without certbrokerd"
lab_assert_eq "$(json 'j["error"]["exit_code"]')" 7 "JSON error object without certbrokerd"
set +e
OUT=$(cd "$LAB_DIR/alice" && DBUS_SYSTEM_BUS_ADDRESS=unix:path=$LAB_DIR/no-such-bus lab_run_as alice "$CTL" list 2>&1)
RC=$?
set -e
ERR=$OUT
expect_rc 7 "list without a bus"
lab_assert_contains "$ERR" "Cannot connect to the system bus (unix:path=$LAB_DIR/no-such-bus)" "list without a bus"
lab_pass "without certbrokerd or without a bus: exit 7 and a message saying which"

# ---- usage errors: exit 2, before any bus traffic ----
usage_case() {
        local want=$1
        shift
        ctl alice "$@"
        expect_rc 2 "certbrokerctl $*"
        lab_assert_contains "$ERR" "$want" "certbrokerctl $*"
        [ -z "$(ls -A "$LAB_DIR/alice")" ] || lab_fail "certbrokerctl $* left files: $(ls -A "$LAB_DIR/alice")"
}
usage_case "No command given"
usage_case "Unknown command 'frobnicate'" frobnicate
usage_case "needs at least one --dns" enroll --ca corp
usage_case "takes exactly one request id" status
usage_case "takes exactly one request id" wait a b
usage_case "Option --dns is not valid with 'list'" list --dns x.a.example.test
usage_case "Unknown option '--bogus'" list --bogus
usage_case "Option '--ca' needs a value" enroll --dns x.a.example.test --ca
usage_case "Invalid --timeout 'soon'" wait 0123456789abcdef --timeout soon
usage_case "--no-wait cannot be combined with --key-out" enroll --dns x.a.example.test --no-wait --key-out k.pem
usage_case "name the same file 'a.pem'" enroll --dns x.a.example.test --key-out a.pem --cert-out a.pem
usage_case "--force only applies" enroll --dns x.a.example.test --force
usage_case "Option --ca given twice" access --ca corp --ca corp --dns x.a.example.test
usage_case "'fetch' needs --key-out" fetch 0123456789abcdef
usage_case "'cas' takes no arguments" cas corp
usage_case "is not a request id" status 'ZZZ'
usage_case "is not a request id" cancel /org/certbroker/Broker1/request/../x
ctl alice --json enroll
expect_rc 2 "--json enroll without names"
lab_assert_contains "$(json 'j["error"]["message"]')" "needs at least one --dns" "--json usage error"
ctl alice --help
expect_rc 0 "--help"
lab_assert_contains "$OUT" "Exit status:" "--help documents the exit codes"
for code in "0  success" "2  usage error" "3  denied by policy" "4  the CA rejected" "5  --timeout passed" \
            "6  the request failed" "7  no system bus" "8  no such request or CA"; do
        lab_assert_contains "$OUT" "$code" "--help exit codes"
done
lab_pass "bad command lines exit 2 naming the offending argument; --help documents exit codes 0-8"

broker_start

# ---- cas, check, access ----
ctl alice cas
expect_rc 0 "cas"
lab_assert_contains "$OUT" "corp" "cas lists corp"
lab_assert_contains "$OUT" "https://ndes.example.test/certsrv/mscep/mscep.dll" "cas shows the URL"
ctl alice --json cas
expect_rc 0 "cas --json"
lab_assert_eq "$(json 'sorted(c["name"] for c in j)')" "['badpw', 'corp']" "cas --json names"
lab_assert_eq "$(json '[(c["authentication"], c["challenge"]) for c in j if c["name"] == "corp"]')" \
        "[('kerberos', 'mscep-admin')]" "cas --json modes"

lab_wait_for 20 "ticket-granting ticket" bash -c \
        "[ \"\$(busctl --system get-property $CB_BUS $CB_PATH $CB_BUS.Manager CredentialState)\" = 's \"valid\"' ]"
ctl alice check corp
expect_rc 0 "check corp"
for step in configuration keytab ticket-granting-ticket service-ticket tls getcacaps getcacert; do
        grep -qE "^\[ok\] +$step " <<<"$OUT" || lab_fail "check corp: no '[ok] $step' line in: $OUT"
done
lab_assert_contains "$OUT" "all steps passed" "check corp summary"
ctl alice --json check corp --challenge
expect_rc 0 "check --json --challenge"
lab_assert_eq "$(json '[s["result"] for s in j["steps"] if s["step"] == "challenge"]')" "['ok']" "check --challenge runs the challenge step"
lab_assert_eq "$(json 'j["failed"]')" 0 "check --json failed count"
ctl mallory check corp
expect_rc 3 "check by mallory"
lab_assert_contains "$ERR" "No policy rule lets you use CA 'corp'" "check by mallory"
lab_assert_contains "$ERR" "AccessDenied" "check by mallory names the error"
ctl alice check nope
expect_rc 8 "check of an unknown CA"
lab_assert_contains "$ERR" "No CA 'nope'" "check nope"
lab_pass "cas and check print readable tables and JSON; check refuses mallory (3) and unknown CAs (8)"

ctl alice access --ca corp --dns mail.a.example.test
expect_rc 0 "access allowed"
lab_assert_contains "$OUT" "allowed by rule 'tenant-a'" "access allowed"
ctl alice access --dns mail.b.example.test
expect_rc 3 "access denied"
lab_assert_contains "$OUT" "denied:" "access denied"
ctl alice --json access --dns mail.b.example.test
expect_rc 3 "access --json denied"
lab_assert_eq "$(json 'j["allowed"]')" False "access --json allowed"
[ -n "$(json 'j["reason"]')" ] || lab_fail "access --json: no reason"
ctl bob --json access --dns x.y.b.example.test --key-type ec:p256
expect_rc 0 "bob's access"
lab_assert_eq "$(json 'j["allowed"], j["rule"]')" "(True, 'tenant-b')" "bob's access --json"
lab_pass "access: the policy dry run (0 allowed / 3 denied) with rule and reason"

# ---- enroll end to end: key 0600, certificate, chain ----
cd "$LAB_DIR/alice"
ctl alice enroll --ca corp --dns web.a.example.test --dns www.a.example.test --label "web" \
        --key-out key.pem --cert-out cert.pem --chain-out chain.pem --timeout 60
expect_rc 0 "enroll"
lab_assert_contains "$ERR" ": issued" "enroll progress (plain lines when not on a terminal)"
lab_assert_contains "$OUT" "Private key:  key.pem" "enroll summary"
lab_assert_eq "$(stat -c '%a %U' key.pem)" "600 alice" "key file mode and owner"
lab_assert_eq "$(stat -c '%a %U' cert.pem)" "644 alice" "certificate file mode and owner"
lab_assert_contains "$(head -1 key.pem)" "BEGIN PRIVATE KEY" "key file"
lab_assert_eq "$(openssl pkey -in key.pem -pubout | sha256sum)" \
        "$(openssl x509 -in cert.pem -noout -pubkey | sha256sum)" "key matches certificate"
ndes_verify_cert cert.pem web.a.example.test web.a.example.test www.a.example.test
openssl verify -CAfile chain.pem cert.pem >/dev/null || lab_fail "the certificate does not verify against --chain-out"
lab_pass "enroll writes a 0600 key, the certificate with exactly the names, and a chain it verifies against"

# ---- never overwrite; --force replaces safely ----
n_before=$(busctl --system call "$CB_BUS" "$CB_PATH" "$CB_BUS.Manager" ListRequests | awk '{print $2}')
key_sum=$(sha256sum <key.pem)
ctl alice enroll --dns web.a.example.test --key-out key.pem --cert-out new-cert.pem
expect_rc 1 "enroll onto an existing key file"
lab_assert_contains "$ERR" "Refusing to overwrite the existing file 'key.pem' (--key-out)" "existing key file"
lab_assert_contains "$ERR" "--force" "existing key file: the fix"
lab_assert_eq "$(sha256sum <key.pem)" "$key_sum" "key file after a refused enroll"
[ ! -e new-cert.pem ] || lab_fail "a refused enroll created new-cert.pem"
lab_assert_eq "$(busctl --system call "$CB_BUS" "$CB_PATH" "$CB_BUS.Manager" ListRequests | awk '{print $2}')" \
        "$n_before" "requests after a refused enroll (checked before Enroll)"
ln -s /etc/passwd link.pem
ctl alice enroll --dns web.a.example.test --key-out link.pem
expect_rc 1 "enroll onto a symlink"
lab_assert_contains "$ERR" "Refusing to overwrite the existing file 'link.pem'" "symlink key file"
rm -f link.pem

ctl alice enroll --dns web.a.example.test --key-out key.pem --cert-out cert.pem --force --timeout 60
expect_rc 0 "enroll --force"
[ "$(sha256sum <key.pem)" != "$key_sum" ] || lab_fail "--force did not replace the key"
lab_assert_eq "$(stat -c '%a %U' key.pem)" "600 alice" "replaced key file mode"
lab_assert_eq "$(stat -c '%a' cert.pem)" "644" "replaced certificate mode"
lab_assert_eq "$(openssl pkey -in key.pem -pubout | sha256sum)" \
        "$(openssl x509 -in cert.pem -noout -pubkey | sha256sum)" "replaced key matches replaced certificate"
lab_assert_eq "$(ls -A | grep -c '^\.' || true)" 0 "temporary files left behind by --force"
lab_pass "existing files are never overwritten (exit 1, nothing enrolled); --force replaces them via rename"

# ---- --json, with a label holding quotes and a backslash ----
label='say "hi" \ back\slash'
ctl alice --json enroll --dns json.a.example.test --label "$label" --key-out json.key --timeout 60
expect_rc 0 "enroll --json"
lab_assert_eq "$(json 'j["label"]')" "$label" "label through --json"
lab_assert_eq "$(json 'j["state"], j["names"], j["key_out"], j["exit_code"]')" \
        "('issued', ['json.a.example.test'], 'json.key', 0)" "enroll --json fields"
lab_assert_contains "$(json 'j["certificate"]')" "BEGIN CERTIFICATE" "enroll --json certificate"
json_id=$(json 'j["id"]')
ctl alice --json status "$json_id"
expect_rc 0 "status --json"
lab_assert_eq "$(json 'j["label"]')" "$label" "status --json label"
lab_assert_eq "$(json 'j["key_available"], j["owner"], j["state"]')" "(False, 2001, 'issued')" "status --json"
lab_pass "--json output parses, and a label with quotes and backslashes survives exactly"

# ---- --no-wait, wait, status, fetch (the key once), list ----
ctl alice --json enroll --dns later.a.example.test --no-wait
expect_rc 0 "enroll --json --no-wait"
id=$(json 'j["id"]')
lab_assert_eq "$(json 'j["path"]')" "$CB_PATH/request/$id" "enroll --json --no-wait path"
[[ "$id" =~ ^[0-9a-f]{16}$ ]] || lab_fail "enroll --no-wait printed '$id', not a request id"
ctl alice wait "$id" --timeout 60
expect_rc 0 "wait"
lab_assert_eq "$OUT" issued "wait prints the final state"
ctl alice status "$id"
expect_rc 0 "status"
lab_assert_contains "$OUT" "State:         issued" "status"
lab_assert_contains "$OUT" "Names:         later.a.example.test" "status names"
lab_assert_contains "$OUT" "Key available: yes" "status key"
ctl alice fetch "$id" --key-out later.key --cert-out later.crt
expect_rc 0 "fetch"
lab_assert_eq "$(openssl pkey -in later.key -pubout | sha256sum)" \
        "$(openssl x509 -in later.crt -noout -pubkey | sha256sum)" "fetched key matches"
ctl alice fetch "$id" --key-out again.key
expect_rc 1 "a second fetch of the key"
lab_assert_contains "$ERR" "already taken" "second fetch"
lab_assert_contains "$ERR" "KeyAlreadyTaken" "second fetch names the error"
[ ! -e again.key ] || lab_fail "a failed fetch left again.key behind"
ctl alice --json list
expect_rc 0 "list --json"
lab_assert_eq "$(json 'sorted(set(r["state"] for r in j))')" "['issued']" "list --json states"
lab_assert_contains "$(json '[r["id"] for r in j]')" "'$id'" "list --json holds the request"
ctl alice list
lab_assert_contains "$OUT" "$id  issued" "list"
ctl bob --json list
lab_assert_eq "$OUT" "[]" "bob's list"
lab_pass "--no-wait prints the id; wait, status, fetch (key once), list as alice; bob sees nothing"

# ---- once TakeKey succeeded the key is never deleted ----
# A sticky, world-writable directory holding root's files: alice may create files in it (so
# --force's precheck and temporary files pass) but not rename over root's (EPERM at commit).
mkdir -m 1777 "$LAB_DIR/sticky"
touch "$LAB_DIR/sticky/cert.pem" "$LAB_DIR/sticky/key.pem"
ctl alice --json enroll --dns keep.a.example.test --no-wait
keep_id=$(json 'j["id"]')
ctl alice wait "$keep_id" --timeout 60
expect_rc 0 "wait for the request whose key is kept"
cb_prop alice "$CB_PATH/request/$keep_id" Certificate >keep-broker.crt
ctl alice fetch "$keep_id" --key-out keep.key --cert-out "$LAB_DIR/sticky/cert.pem" --force
expect_rc 1 "fetch whose --cert-out cannot be committed"
lab_assert_contains "$ERR" "Cannot replace --cert-out '$LAB_DIR/sticky/cert.pem'" "the --cert-out error"
[ -e keep.key ] || lab_fail "a failed --cert-out deleted the key the broker no longer has: $ERR"
lab_assert_contains "$ERR" "private key of request $keep_id is in 'keep.key'" "the error says where the key is"
lab_assert_eq "$(stat -c '%a %U' keep.key)" "600 alice" "kept key file mode and owner"
lab_assert_eq "$(openssl pkey -in keep.key -pubout | sha256sum)" \
        "$(openssl x509 -in keep-broker.crt -noout -pubkey | sha256sum)" "kept key matches the certificate"
lab_assert_eq "$(ls -A "$LAB_DIR/sticky" | sort | tr '\n' ' ')" "cert.pem key.pem " \
        "the certificate's temporary file is removed"
lab_assert_eq "$(stat -c '%s %U' "$LAB_DIR/sticky/cert.pem")" "0 root" "root's cert.pem untouched"

# The key itself cannot be put in place: it stays in its 0600 temporary file, named.
ctl alice --json enroll --dns keep2.a.example.test --no-wait
keep_id=$(json 'j["id"]')
ctl alice wait "$keep_id" --timeout 60
expect_rc 0 "wait for the second request whose key is kept"
cb_prop alice "$CB_PATH/request/$keep_id" Certificate >keep-broker.crt
ctl alice fetch "$keep_id" --key-out "$LAB_DIR/sticky/key.pem" --cert-out keep2.crt --force
expect_rc 1 "fetch whose --key-out cannot be committed"
kept=$(printf '%s\n' "$ERR" | sed -n "s/.*private key of request $keep_id is in '\([^']*\)' (mode 0600).*/\1/p")
[ -n "$kept" ] || lab_fail "the error does not name where the key is: $ERR"
lab_assert_contains "$kept" "$LAB_DIR/sticky/.key.pem." "the key is kept next to --key-out"
lab_assert_eq "$(stat -c '%a %U' "$kept")" "600 alice" "kept temporary key file mode and owner"
lab_assert_eq "$(openssl pkey -in "$kept" -pubout | sha256sum)" \
        "$(openssl x509 -in keep-broker.crt -noout -pubkey | sha256sum)" "kept temporary key matches the certificate"
[ ! -e keep2.crt ] || lab_fail "a failed fetch left keep2.crt behind"
rm -rf "$LAB_DIR/sticky" keep.key keep-broker.crt
lab_pass "once the key is taken a failed --cert-out or --key-out commit keeps it (0600, matching), and says where"

# ---- another tenant's request, unknown ones ----
ctl bob status "$id"
expect_rc 3 "bob's status of alice's request"
lab_assert_contains "$ERR" "belongs to another user" "bob's status"
ctl bob cancel "$id"
expect_rc 3 "bob's cancel of alice's request"
ctl alice status 0000000000000000
expect_rc 8 "status of an unknown request"
lab_assert_contains "$ERR" "No request '0000000000000000'" "unknown request"
ctl alice --json remove 0000000000000000
expect_rc 8 "--json remove of an unknown request"
lab_assert_eq "$(json 'j["error"]["name"]')" org.certbroker.Broker1.Error.NoSuchRequest "--json error name"
lab_pass "another tenant's request: exit 3 (AccessDenied); unknown ids: exit 8 (NoSuchRequest)"

# ---- policy refusals ----
ctl alice enroll --dns web.b.example.test --key-out b.key
expect_rc 3 "enroll of bob's name"
lab_assert_contains "$ERR" "NameNotPermitted" "denied name"
lab_assert_contains "$ERR" "web.b.example.test" "denied name names the name"
[ ! -e b.key ] || lab_fail "a denied enroll created b.key"
ctl alice enroll --ca nope --dns x.a.example.test
expect_rc 8 "enroll with an unknown CA"
lab_assert_contains "$ERR" "UnknownCA" "unknown CA"
lab_assert_contains "$ERR" "nope" "unknown CA names it"
ctl bob enroll --dns k.b.example.test --key-type rsa:4096
expect_rc 3 "bob's enroll of a key type his rule does not allow"
lab_assert_contains "$ERR" "KeyNotPermitted" "key type refusal"
ctl alice enroll --dns x.a.example.test --key-type dsa:1024
expect_rc 2 "an unknown key type"
lab_assert_contains "$ERR" "dsa:1024" "unknown key type named"
lab_assert_contains "$ERR" "InvalidArgument" "unknown key type"
ctl alice enroll --dns x.a.example.test --usage everything
expect_rc 2 "an unknown usage"
lab_assert_contains "$ERR" "usage='everything'" "unknown usage named"
ctl alice enroll --dns x.a.example.test --label "$(head -c 200 /dev/zero | tr '\0' x)"
expect_rc 2 "a 200-byte label"
lab_assert_contains "$ERR" "InvalidArgument" "long label"
lab_pass "denied names (3), unknown CA (8), disallowed key (3), bad options (2) all say what was wrong"

# ---- pending: progress, timeout, cancel, remove ----
ndes ctl pending=on >/dev/null
ctl alice enroll --dns slow.a.example.test --no-wait
slow=$OUT
state_is() { [ "$(busctl --system get-property "$CB_BUS" "$CB_PATH/request/$1" "$CB_BUS.Request" State)" = "s \"$2\"" ]; }
lab_wait_for 30 "request pending" state_is "$slow" pending
ctl alice wait "$slow" --timeout 0.5
expect_rc 5 "wait with a timeout on a pending request"
lab_assert_contains "$ERR" "request $slow is still pending after 0.5 s" "timeout message"
lab_assert_contains "$ERR" "certbrokerctl wait $slow" "timeout message: the fix"
lab_assert_eq "$OUT" pending "wait prints the state at the timeout"
# progress on a terminal: one line rewritten in place
script -qec "cd $LAB_DIR/alice && setpriv --reuid=2001 --regid=3001 --init-groups $CTL wait $slow --timeout 0.3" \
        "$LAB_DIR/tty.log" >/dev/null 2>&1 || true
grep -q $'\r\033\[K' "$LAB_DIR/tty.log" || lab_fail "no in-place progress line on a terminal: $(cat -v "$LAB_DIR/tty.log")"
grep -q "request $slow: pending" "$LAB_DIR/tty.log" || lab_fail "terminal progress lacks the state: $(cat -v "$LAB_DIR/tty.log")"
ctl alice remove "$slow"
expect_rc 1 "remove of a pending request"
lab_assert_contains "$ERR" "Cancel() it first" "remove of a pending request"
ctl alice cancel "$slow"
expect_rc 0 "cancel"
lab_assert_contains "$OUT" "Request $slow cancelled." "cancel"
ctl alice wait "$slow"
expect_rc 6 "wait on a cancelled request"
lab_assert_contains "$ERR" "ended cancelled" "wait on a cancelled request"
ctl alice --json remove "$slow"
expect_rc 0 "remove"
lab_assert_eq "$(json 'j["result"]')" removed "remove --json"
ctl alice status "$slow"
expect_rc 8 "status after remove"

# enroll waits through PENDING and reports the progress
ctl alice enroll --dns approve.a.example.test --no-wait
pend=$OUT
lab_wait_for 30 "request pending" state_is "$pend" pending
( cd "$LAB_DIR/alice" && lab_run_as alice "$CTL" wait "$pend" --timeout 60 >"$LAB_DIR/wait.out" 2>"$LAB_DIR/wait.err"; echo $? >"$LAB_DIR/wait.rc" ) &
lab_wait_for 30 "the waiter to report pending" grep -q "request $pend: pending" "$LAB_DIR/wait.err"
# The broker polls (PollInterval=1, backing off): each poll changes Attempts, and the waiter
# reports it (from the PropertiesChanged signal, or at the latest after its 5 s Wait() slice).
pending_lines() { [ "$(grep -c "request $pend: pending, [0-9]* attempts" "$LAB_DIR/wait.err")" -ge 2 ]; }
lab_wait_for 30 "the waiter to report two polls" pending_lines
ndes approve all >/dev/null
lab_wait_for 60 "the waiter to finish" test -s "$LAB_DIR/wait.rc"
lab_assert_eq "$(cat "$LAB_DIR/wait.rc")" 0 "wait through approval"
lab_assert_eq "$(cat "$LAB_DIR/wait.out")" issued "wait through approval"
grep -q "request $pend: issued" "$LAB_DIR/wait.err" || lab_fail "no 'issued' progress line: $(cat "$LAB_DIR/wait.err")"
ndes ctl pending=off >/dev/null
lab_pass "pending: progress lines, --timeout (5), terminal progress, cancel, wait on cancelled (6), remove"

# ---- the CA rejects ----
ctl alice enroll --ca badpw --dns rejected.a.example.test --key-out rejected.key --timeout 60
expect_rc 4 "enroll the CA rejects"
lab_assert_contains "$ERR" "ended rejected" "rejection"
lab_assert_contains "$ERR" "CARejected" "rejection names the error"
[ ! -e rejected.key ] || lab_fail "a rejected enroll created rejected.key"
lab_pass "a CA rejection exits 4 naming CARejected and writes nothing"

# ---- the daemon goes away ----
broker_stop
ctl alice status "$id"
expect_rc 7 "status after certbrokerd stopped"
lab_assert_contains "$ERR" "certbrokerd is not running" "status after certbrokerd stopped"
lab_assert_file_lacks "$LAB_DIR/certbrokerd.log" "PRIVATE KEY" "certbrokerd log"
lab_pass "done"
