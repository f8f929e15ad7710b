#!/usr/bin/env bash
# Lab smoke test: isolation, MIT KDC, Apache + mod_auth_gssapi over http and
# https, the test routes, and teardown of everything the lab started.
set -euo pipefail
: "${CB_SOURCE_ROOT:=$(cd "$(dirname "$0")/../.." && pwd)}"
. "$CB_SOURCE_ROOT/tests/lab/lab.sh"
lab_enter "$@"

# --- isolation ------------------------------------------------------------
links=$(ip -o link show | awk -F': ' '{print $2}' | sed 's/@.*//' | tr '\n' ' ')
lab_assert_eq "$links" "lo " "network interfaces inside the lab"
lab_assert_eq "$(ip route show)" "" "IPv4 routes besides loopback's local table"
lab_assert_eq "$(ip -6 route show | grep -v '^::1 dev lo' || true)" "" "IPv6 routes besides ::1 on lo"
start=$(_lab_now_ms)
if curl -s -o /dev/null --max-time 5 http://192.0.2.1/ 2>/dev/null; then
        lab_fail "a connection to 192.0.2.1 (outside loopback) succeeded"
fi
if (exec 3<>/dev/tcp/10.0.0.1/88) 2>/dev/null; then
        lab_fail "a TCP connection to 10.0.0.1:88 (outside loopback) succeeded"
fi
if curl -s -o /dev/null --max-time 5 "http://[2001:db8::1]/" 2>/dev/null; then
        lab_fail "a connection to 2001:db8::1 (outside loopback) succeeded"
fi
elapsed=$(( $(_lab_now_ms) - start ))
[ "$elapsed" -lt 1000 ] || lab_fail "connects outside loopback should fail at once (network unreachable), took ${elapsed}ms"
lab_pass "only lo exists; connects outside loopback fail immediately (${elapsed}ms)"

for h in ndes.example.test ndes-alias.example.test kdc.example.test evil.attacker.test evilexample.test; do
        lab_assert_eq "$(getent hosts "$h" | awk '{print $1}')" 127.0.0.1 "lab resolution of $h"
done
if getent hosts debian.org >/dev/null; then
        lab_fail "debian.org resolves inside the lab: DNS is not dead-ended"
fi
lab_assert_eq "$(cat /etc/resolv.conf)" "nameserver 127.0.0.1" "private /etc/resolv.conf"
lab_pass "private /etc/hosts and a dead-end resolv.conf"

lab_assert_eq "$(id -u alice):$(id -g alice):$(id -Gn alice)" "2001:3001:tenant-a" "lab user alice"
lab_assert_eq "$(id -u bob):$(id -g bob):$(id -Gn bob)" "2002:3002:tenant-b" "lab user bob"
lab_assert_eq "$(id -u mallory):$(id -g mallory)" "2003:3003" "lab user mallory"
lab_assert_eq "$(id -u certbroker):$(id -g certbroker)" "2010:2010" "lab user certbroker"
lab_assert_eq "$(lab_run_as alice id -u):$(lab_run_as alice id -G)" "2001:3001" "lab_run_as alice"
lab_pass "lab users in a private /etc/passwd and /etc/group; lab_run_as switches uid and groups"

lab_assert_eq "$KRB5_CONFIG" "$LAB_DIR/krb5.conf" "KRB5_CONFIG"
if [ -f /etc/krb5.conf ]; then
        cmp -s /etc/krb5.conf "$KRB5_CONFIG" || lab_fail "/etc/krb5.conf inside the lab is not the lab's krb5.conf"
fi
lab_assert_eq "$(stat -c %a "$LAB_DIR")" 711 "LAB_DIR mode (traversable, not listable)"

# A server function refuses to run outside lab_enter ...
out=$(bash -c '. "$1"; LAB_DIR=$2; lab_kdc' - "$_lab_self" "$LAB_DIR" 2>&1) && rc=0 || rc=$?
lab_assert_eq "$rc" 1 "lab_kdc without lab_enter: exit status"
lab_assert_contains "$out" "not inside the lab" "lab_kdc refusal without lab_enter"
# ... and where an interface other than lo is visible (a bridge or a tun device
# in a throwaway network namespace; neither is connected to anything).
mkif='ip link add lab-if0 type bridge 2>/dev/null || ip tuntap add dev lab-if0 mode tun 2>/dev/null || exit 99'
if unshare --net -- bash -c "$mkif"; then
        out=$(unshare --net -- bash -c "$mkif"'
                . "$1"; CB_LAB_INSIDE=$$; LAB_DIR=$2; lab_kdc' - "$_lab_self" "$LAB_DIR" 2>&1) && rc=0 || rc=$?
        lab_assert_eq "$rc" 1 "lab_kdc with a non-loopback interface visible: exit status"
        lab_assert_contains "$out" "interfaces other than lo are visible: lab-if0" "lab_kdc refusal"
else
        echo "# note: this kernel makes neither bridge nor tun devices; the interface check is not exercised"
fi
lab_pass "server functions refuse to run outside a loopback-only namespace"

# --- KDC ------------------------------------------------------------------
lab_kdc
lab_assert_eq "$(stat -c '%U:%G %a' "$LAB_SVC_KEYTAB")" "root:root 600" "svc-scep keytab owner and mode"
lab_assert_eq "$(stat -c '%U:%G %a' "$LAB_HTTP_KEYTAB")" "root:www-data 640" "HTTP keytab owner and mode"
kinit -k -t "$LAB_SVC_KEYTAB" svc-scep
klist_out=$(klist)
lab_assert_contains "$klist_out" "Default principal: svc-scep@EXAMPLE.TEST" "klist after kinit -k"
lab_assert_contains "$klist_out" "krbtgt/EXAMPLE.TEST@EXAMPLE.TEST" "klist after kinit -k"
lab_assert_eq "$(grep -c 'AS_REQ.*svc-scep@EXAMPLE.TEST for krbtgt/EXAMPLE.TEST@EXAMPLE.TEST' "$LAB_KDC_LOG")" 1 \
        "svc-scep AS_REQ lines in the KDC log after one kinit (the readiness probe uses lab-probe)"
lab_pass "a ticket from the svc-scep keytab"

lab_kdc_stop
if KRB5CCNAME=MEMORY:down kinit -k -t "$LAB_SVC_KEYTAB" svc-scep 2>"$LAB_DIR/kinit-down.err"; then
        lab_fail "kinit succeeded with the KDC stopped"
fi
lab_assert_contains "$(cat "$LAB_DIR/kinit-down.err")" "Cannot contact any KDC" "kinit with the KDC stopped"
lab_kdc_start
KRB5CCNAME=MEMORY:up kinit -k -t "$LAB_SVC_KEYTAB" svc-scep || lab_fail "kinit after lab_kdc_start"
lab_pass "lab_kdc_stop: kinit cannot contact the KDC; lab_kdc_start brings it back"

lab_kdc_addprinc extra-client "$LAB_DIR/extra.keytab"
KRB5CCNAME=MEMORY:extra kinit -k -t "$LAB_DIR/extra.keytab" extra-client ||
        lab_fail "kinit with a principal added by lab_kdc_addprinc"
lab_kdc_addprinc svc "$LAB_DIR/svc.keytab"
KRB5CCNAME=MEMORY:svc kinit -k -t "$LAB_DIR/svc.keytab" svc || lab_fail "kinit as svc (a prefix of svc-scep)"
out=$(bash -c '. "$1"; CB_LAB_INSIDE=$$; LAB_DIR=$2; lab_kdc_addprinc svc-scep' - "$_lab_self" "$LAB_DIR" 2>&1) && rc=0 || rc=$?
lab_assert_eq "$rc" 1 "lab_kdc_addprinc of an existing principal: exit status"
lab_assert_contains "$out" "could not create svc-scep@EXAMPLE.TEST" "lab_kdc_addprinc of an existing principal"
lab_pass "lab_kdc_addprinc adds a principal and its keytab, and fails on an existing one"

# --- Apache ---------------------------------------------------------------
lab_apache
lab_assert_eq "$LAB_NDES_CGI_USED" "$LAB_DIR/apache/cgi-bin/ndes-placeholder.cgi" "NDES CGI without LAB_NDES_CGI"
for scheme in http https; do
        base=$scheme://ndes.example.test
        code=$(lab_curl -o /dev/null -w '%{http_code}' "$base/certsrv/mscep_admin/")
        lab_assert_eq "$code" 401 "$scheme mscep_admin without a ticket"
        hdrs=$(lab_curl -o /dev/null -D - "$base/certsrv/mscep_admin/")
        lab_assert_contains "$hdrs" "WWW-Authenticate: Negotiate" "$scheme mscep_admin 401 headers"
        body=$(lab_curl --negotiate -u : -w '\n%{http_code}' "$base/certsrv/mscep_admin/")
        lab_assert_eq "${body##*$'\n'}" 200 "$scheme mscep_admin with a ticket"
        lab_assert_contains "$body" "REMOTE_USER=svc-scep@EXAMPLE.TEST" "$scheme mscep_admin body"
        lab_assert_contains "$body" "The enrollment challenge password is: <B> " "$scheme mscep_admin body"
        lab_pass "$scheme mscep_admin: 401 without a ticket, 200 with one, REMOTE_USER svc-scep@EXAMPLE.TEST"

        code=$(lab_curl -o /dev/null -w '%{http_code}' "$base/certsrv/mscep/mscep.dll?operation=GetCACaps&message=x")
        lab_assert_eq "$code" 501 "$scheme anonymous mscep.dll on the placeholder"

        hdrs=$(lab_curl -o /dev/null -D - -w '%{http_code}' "$base/redirect-foreign")
        lab_assert_eq "${hdrs##*$'\n'}" 302 "$scheme /redirect-foreign status"
        lab_assert_contains "$hdrs" "Location: https://evil.attacker.test/" "$scheme /redirect-foreign"

        out=$(lab_curl --negotiate -u : -D - -o /dev/null -w '%{http_code}' "$base/always-401/certsrv/mscep_admin/")
        lab_assert_eq "${out##*$'\n'}" 401 "$scheme /always-401 with a valid ticket"
        lab_assert_contains "$out" "WWW-Authenticate: Negotiate" "$scheme /always-401 headers"
        lab_pass "$scheme /redirect-foreign answers 302 to evil.attacker.test; /always-401 answers 401 Negotiate to a valid ticket"
done

# The TLS certificate names the alias and the foreign host, from the lab root only.
code=$(lab_curl --negotiate -u : -o /dev/null -w '%{http_code}' "https://ndes-alias.example.test/certsrv/mscep_admin/")
lab_assert_eq "$code" 401 "https mscep_admin through ndes-alias (no keytab entry for HTTP/ndes-alias)"
if curl -s -o /dev/null --max-time 5 "https://ndes.example.test/" 2>/dev/null; then
        lab_fail "https with the system trust store accepted the lab certificate"
fi
lab_pass "https: certificate valid for the alias names under the lab root only"

lab_apache_stop
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$LAB_HTTP_URL/certsrv/mscep_admin/") || true
lab_assert_eq "$code" 000 "HTTP status with Apache stopped (no connection)"
lab_apache_start
code=$(lab_curl --negotiate -u : -o /dev/null -w '%{http_code}' "$LAB_HTTPS_URL/certsrv/mscep_admin/")
lab_assert_eq "$code" 200 "https mscep_admin after lab_apache_start"
lab_pass "lab_apache_stop: connections refused; lab_apache_start brings Apache back"

# The host's Kerberos configuration is never used.
lab_assert_file_lacks "$LAB_APACHE_ERROR_LOG" "/etc/krb5.conf" "Apache error log"
lab_assert_eq "$(grep -c '"GET /certsrv/mscep_admin/ HTTP/1.1" 200' "$LAB_APACHE_ACCESS_LOG")" 3 \
        "authenticated admin page requests in the access log"

# --- teardown -------------------------------------------------------------
# A nested lab (child script) must kill its servers and remove its LAB_DIR, on
# failure and on SIGTERM; if it is SIGKILLed (no trap can run), its servers
# still die (parent-death signal).
child=$LAB_DIR/child-lab.sh
cat >"$child" <<'CHILD'
#!/usr/bin/env bash
set -euo pipefail
. "$CB_SOURCE_ROOT/tests/lab/lab.sh"
lab_enter "$@"
lab_kdc
lab_apache
echo "pids $(lab_pid kdc) $(lab_pid apache) dir $LAB_DIR" >"$1"
if [ "$2" = fail ]; then
        false
fi
while :; do sleep 0.1; done
CHILD
# procs_of DIR: PIDs of processes whose environment names LAB_DIR=DIR.
procs_of() {
        grep -lsxzF "LAB_DIR=$1" /proc/[0-9]*/environ | cut -d/ -f3 | tr '\n' ' ' || true
}
no_procs_of() {
        [ -z "$(procs_of "$1")" ]
}
for mode in fail term kill; do
        info=$LAB_DIR/child-$mode.info
        if [ "$mode" = fail ]; then
                bash "$child" "$info" fail >"$LAB_DIR/child-$mode.log" 2>&1 && lab_fail "child lab with a failing command exited 0"
        else
                bash "$child" "$info" term >"$LAB_DIR/child-$mode.log" 2>&1 &
                cpid=$!
                lab_wait_for 20 "the child lab to come up" test -s "$info"
                kill -"${mode^^}" "$cpid"
                { wait "$cpid"; } 2>/dev/null && lab_fail "child lab exited 0 after SIG${mode^^}" || true
        fi
        read -r _ kpid apid _ cdir <"$info"
        if [ "$mode" = kill ]; then
                # The kernel sends SIGTERM to the servers; they need a moment to exit.
                lab_wait_for 10 "the SIGKILLed child lab's servers to exit" no_procs_of "$cdir"
                lab_assert_eq "$(procs_of "$cdir")" "" "processes left by the child lab"
                [ -d "$cdir" ] || lab_fail "SIGKILLed child lab: $cdir vanished although no trap could run"
                rm -rf --one-file-system "$cdir"
                lab_pass "teardown on kill: child lab's servers died with it"
                continue
        fi
        lab_assert_eq "$(procs_of "$cdir")" "" "processes left by the child lab ($mode)"
        for p in "$kpid" "$apid"; do
                if kill -0 "$p" 2>/dev/null; then
                        lab_fail "after a child lab exited ($mode), its server PID $p is still running: $(cat /proc/"$p"/cmdline | tr '\0' ' ')"
                fi
        done
        [ ! -e "$cdir" ] || lab_fail "after a child lab exited ($mode), its LAB_DIR $cdir still exists"
        lab_pass "teardown on $mode: child lab's KDC and Apache are gone, LAB_DIR removed"
done

lab_times
