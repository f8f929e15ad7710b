#!/usr/bin/env bash
# Several NDES servers behind one CA (URL= with two URLs): two Apache+mod_auth_gssapi servers
# (ndes.example.test and ndes2.example.test, each with its own SPN and its own emulator state,
# so its own password cache and logs). An enrollment's challenge and its PKIOperation always go
# to the same server (a challenge from the other server would be unknown there, and each
# server's cache ends empty); in-order sticks to the first server, round-robin spreads; with
# the first server down enrollments succeed on the second, and go back to the first after
# FailbackAfter=; a PENDING request keeps polling the server that has it, across a restart of
# the broker and while that server is down, and is issued once it is back; CA.Check reports
# both servers; a host outside PermittedSuffix= is refused at load, named.
set -euo pipefail
: "${CB_SOURCE_ROOT:=$(cd "$(dirname "$0")/../.." && pwd)}"
. "$CB_SOURCE_ROOT/tests/integration/daemon-enter.sh" "$@"

t_start=$(date +%s)
broker_lab
# Server 2: the same CA and RA certificates (one CA behind both), its own state otherwise.
lab_apache2
cp -a "$NDES_STATE/." "$LAB_NDES2_STATE_DIR/"
rm -f "$LAB_NDES2_STATE_DIR"/{challenges,challenges-used,challenge.log,scep.log}
ndes2() { local cmd=$1; shift; "$NDES_EMULATOR" "$cmd" --state "$LAB_NDES2_STATE_DIR" "$@"; }
[ "$(stat -c %U "$LAB_NDES2_STATE_DIR/ra-enc.key")" = www-data ] || lab_fail "server 2's RA key is not www-data's"

u1=https://ndes.example.test/certsrv/mscep/mscep.dll
u2=https://ndes2.example.test/certsrv/mscep/mscep.dll
ca_conf() {     # NAME SELECTION
        cat >"$CB_CONF/ca.d/$1.conf" <<CONF
[CA]
URL=$u1 $u2
TrustAnchors=$LAB_TLS_ROOT
PollInterval=1
Timeout=4
FailbackAfter=6
ServerSelection=$2
CONF
}
ca_conf corp in-order
ca_conf rr round-robin
# Server 1 answering HTTP 503 to GetCACaps (IIS with NDES's pool stopped), or an HTML page
# that is not NDES's instead of the challenge page (tests/ndes/README.md, "Faults by path");
# server 2 well.
for f in caps.503 admin.html; do
        name=f-${f//./-}
        cat >"$CB_CONF/ca.d/$name.conf" <<CONF
[CA]
URL=https://ndes.example.test/f/tag.$name,$f/certsrv/mscep/mscep.dll $u2
TrustAnchors=$LAB_TLS_ROOT
PollInterval=1
Timeout=4
CONF
done
sed -i 's/^MaxActive=5$/MaxActive=50/' "$CB_CONF/policy.d/tenants.policy"

# A host outside PermittedSuffix= in the second URL: refused at load, naming it.
mkdir -p "$LAB_DIR/bad-conf"
cp -a "$CB_CONF/." "$LAB_DIR/bad-conf/"
sed -i "s|^URL=.*|URL=$u1 https://ndes2.evil.attacker.test/certsrv/mscep/mscep.dll|" "$LAB_DIR/bad-conf/ca.d/corp.conf"
if out=$("$CB_DAEMON" --config-dir="$LAB_DIR/bad-conf" --check-config 2>&1); then
        lab_fail "a configuration with a server outside PermittedSuffix= was accepted: $out"
fi
lab_assert_contains "$out" "ca.d/corp.conf:2" "the refusal names the file and line"
lab_assert_contains "$out" "ndes2.evil.attacker.test" "the refusal names the host"
lab_assert_contains "$out" "PermittedSuffix=example.test" "the refusal names the suffix"
"$CB_DAEMON" --config-dir="$CB_CONF" --check-config >/dev/null 2>&1 || lab_fail "the two-server configuration does not load"
lab_pass "each server's host passes the suffix guard at load; one outside it is refused, named"

broker_start
lab_wait_for 20 "ticket-granting ticket" bash -c \
        "[ \"\$(busctl --system get-property $CB_BUS $CB_PATH $CB_BUS.Manager CredentialState)\" = 's \"valid\"' ]"

caprop() { local o; o=$(busctl --system get-property "$CB_BUS" /org/certbroker/Broker1/ca/corp "$CB_BUS.CA" "$1"); o=${o#s \"}; echo "${o%\"}"; }
lab_assert_eq "$(caprop URL)" "$u1 $u2" "the CA's URL property: every server, space-separated"
lab_assert_eq "$(caprop AdminURL)" "https://ndes.example.test/certsrv/mscep_admin/ https://ndes2.example.test/certsrv/mscep_admin/" \
        "the CA's AdminURL property: every server's admin page, space-separated"

pkcs1() { ndes log --scep | grep -c 'status=SUCCESS' || true; }
pkcs2() { ndes2 log --scep | grep -c 'status=SUCCESS' || true; }
fetch1() { ndes log | grep -c 'result=issued' || true; }
fetch2() { ndes2 log | grep -c 'result=issued' || true; }
unused() { local n=0; [ -f "$1/challenges" ] && n=$(grep -c . "$1/challenges" || true); echo "$n"; }
# same_server: every challenge fetched was spent on the server that issued it (both caches end
# empty, no PKIOperation answered as unknown challenge), and fetches equal issuances per server.
same_server() {
        lab_assert_eq "$(unused "$NDES_STATE")" 0 "unused challenges left at server 1 ($1)"
        lab_assert_eq "$(unused "$LAB_NDES2_STATE_DIR")" 0 "unused challenges left at server 2 ($1)"
        lab_assert_eq "$( (ndes log --scep; ndes2 log --scep) | grep -c 'FAILURE' || true)" 0 \
                "PKIOperations refused by either server ($1)"
        lab_assert_eq "$(fetch1)" "$(pkcs1)" "challenges fetched and certificates issued at server 1 ($1)"
        lab_assert_eq "$(fetch2)" "$(pkcs2)" "challenges fetched and certificates issued at server 2 ($1)"
}
enroll_n() {    # CA PREFIX N: enroll N at once, all must be issued
        local ca=$1 pre=$2 n=$3 i paths=()
        for ((i = 1; i <= n; i++)); do
                paths+=("$(cb_enroll alice "$ca" "$pre$i.a.example.test")") || lab_fail "Enroll $pre$i"
        done
        for p in "${paths[@]}"; do
                lab_assert_eq "$(cb_wait alice "$p" 60)" issued "request $p ($pre)"
        done
}

# In order: every enrollment goes to the first server while it answers.
enroll_n corp stick 3
lab_assert_eq "$(pkcs1)/$(pkcs2)" "3/0" "certificates issued by server 1/server 2, in-order"
same_server in-order
lab_pass "in-order: enrollments stick to the first server, challenge and PKCSReq on it"

# Round-robin: spread over both.
enroll_n rr spread 4
lab_assert_eq "$(pkcs1)/$(pkcs2)" "5/2" "certificates issued by server 1/server 2 after round-robin"
same_server round-robin
lab_pass "round-robin: enrollments spread over both servers, each challenge used where it was issued"

# CA.Check: one set of server rows per server, named.
check() { cb root --timeout=60 call "$CB_BUS" "/org/certbroker/Broker1/ca/corp" "$CB_BUS.CA" Check a{sv} 0; }
out=$(check)
for h in ndes.example.test ndes2.example.test; do
        for step in service-ticket tls getcacaps getcacert; do
                lab_assert_contains "$out" "\"$step\" \"ok\" \"$h: " "Check step $step for $h"
        done
        lab_assert_contains "$out" "ticket for HTTP/$h" "Check's service ticket for $h"
done
lab_assert_contains "$out" '"configuration" "ok" "CA corp at 2 servers' "Check's configuration row"

# Server 1 down (its Apache stopped: connection refused): enrollments go to server 2.
lab_apache_stop
out=$(check)
lab_assert_contains "$out" '"getcacaps" "fail" "ndes.example.test: ' "Check with server 1 down: its GetCACaps fails"
lab_assert_contains "$out" '"getcacert" "skip" "ndes.example.test: ' "Check with server 1 down: its later steps skipped"
lab_assert_contains "$out" '"getcacert" "ok" "ndes2.example.test: ' "Check with server 1 down: server 2 still checked, ok"
lab_pass "CA.Check reports both servers, each by name, a failure of one not hiding the other"

enroll_n corp failover 2
lab_assert_eq "$(pkcs1)/$(pkcs2)" "5/4" "certificates issued by server 1/server 2 with server 1 down"
lab_assert_contains "$(cat "$LAB_DIR/certbrokerd.log")" "server ndes.example.test is passed over for 6 s" \
        "the broker says it passes server 1 over"
lab_pass "with server 1 down, enrollments fail over to server 2 and succeed"

# Server 1 back: after FailbackAfter= new enrollments go to it again.
lab_apache_start
sleep 6
enroll_n corp failback 1
lab_assert_eq "$(pkcs1)/$(pkcs2)" "6/4" "certificates issued by server 1/server 2 after FailbackAfter="
same_server failback
lab_pass "after FailbackAfter= enrollments go back to the first server"

# PENDING at server 1: it polls server 1 only, through a broker restart and server 1 being down,
# and is issued once server 1 is back; meanwhile new enrollments go to server 2.
ndes ctl pending=on >/dev/null
pend=$(cb_enroll alice corp pending.a.example.test)
lab_wait_for 30 "request pending" bash -c \
        "[ \"\$(busctl --system get-property $CB_BUS $pend $CB_BUS.Request State)\" = 's \"pending\"' ]"
txid=$(cb_prop alice "$pend" TransactionId)
[ -n "$txid" ] || lab_fail "the pending request has no transaction id"
lab_assert_contains "$(ndes log --scep)" "txid=$txid status=PENDING" "server 1 holds the pending request"
broker_stop
lab_apache_stop
broker_start
lab_wait_for 30 "a CertPoll of the pending request failing at server 1" \
        grep -q "ndes.example.test is passed over" "$LAB_DIR/certbrokerd.log"
lab_assert_eq "$(cb_prop alice "$pend" State)" pending "the pending request while its server is down"
enroll_n corp meanwhile 1
lab_assert_eq "$(pkcs1)/$(pkcs2)" "6/5" "certificates issued by server 1/server 2 while server 1 is down again"
ndes approve all >/dev/null
lab_apache_start
lab_assert_eq "$(cb_wait alice "$pend" 60)" issued "the pending request once its server is back"
lab_assert_eq "$(ndes2 log --scep | grep -c "txid=$txid" || true)" 0 "messages of the pending transaction at server 2"
lab_assert_contains "$(ndes log --scep | grep "txid=$txid" | tail -n 1)" "status=SUCCESS" \
        "server 1 answered the pending transaction's last CertPoll with the certificate"
cb_prop alice "$pend" Certificate >"$LAB_DIR/pending.pem"
ndes_verify_cert "$LAB_DIR/pending.pem" pending.a.example.test pending.a.example.test
ndes ctl pending=off >/dev/null
lab_pass "a PENDING request polls its own server, across a restart and while it is down, and is issued when it is back"

# Server 1 answering 503 or an HTML page: the enrollment fails over to server 2 at once.
before=$(pkcs2)
for name in f-caps-503 f-admin-html; do
        p=$(cb_enroll alice "$name" "$name.a.example.test")
        lab_assert_eq "$(cb_wait alice "$p" 60)" issued "an enrollment of CA $name"
        lab_assert_contains "$(grep "CA $name: server ndes.example.test is passed over" "$LAB_DIR/certbrokerd.log")" \
                "$(case $name in *503) echo "HTTP 503" ;; *) echo "holds no enrollment challenge password" ;; esac)" \
                "why server 1 of $name is passed over"
done
lab_assert_eq "$(pkcs2)" "$((before + 2))" "certificates issued by server 2 for the CAs whose server 1 fails"
lab_pass "server 1 answering HTTP 503, or a page without a challenge: enrollments fail over to server 2"

# A Reload that reorders URL=: the new first server gets the next enrollment.
b1=$(pkcs1) b2=$(pkcs2)
sed -i "s|^URL=.*|URL=$u2 $u1|" "$CB_CONF/ca.d/corp.conf"
cb root call "$CB_BUS" "$CB_PATH" "$CB_BUS.Manager" Reload >/dev/null || lab_fail "Reload with URL= reordered"
lab_assert_eq "$(caprop URL)" "$u2 $u1" "the CA's URL property after the Reload"
enroll_n corp reordered 1
lab_assert_eq "$(pkcs1)/$(pkcs2)" "$b1/$((b2 + 1))" "certificates issued by server 1/server 2 after URL= was reordered"
lab_pass "a Reload that reorders URL= makes the new first server the one enrollments go to"

ndes_check_error_log
broker_stop
echo "# daemon-multiserver: $(( $(date +%s) - t_start )) s"
