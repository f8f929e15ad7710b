# shellcheck shell=bash
# certbroker real-component test lab.  Source this file from a bash script:
#
#     #!/usr/bin/env bash
#     set -euo pipefail
#     . "$CB_SOURCE_ROOT/tests/lab/lab.sh"
#     lab_enter "$@"     # re-execs the script in a private mount+network namespace
#     lab_kdc            # MIT KDC, realm EXAMPLE.TEST
#     lab_apache         # Apache + mod_auth_gssapi, http and https
#     ...
#
# This header is the lab's contract with its users.  Everything runs on
# loopback inside `unshare --mount --net --propagation private`; every server
# function refuses to run anywhere else.  Servers are killed by PID from the
# EXIT trap (also on failure, SIGINT, SIGTERM); LAB_DIR is removed unless
# CB_LAB_KEEP=1.
#
# Functions (API)
#   lab_enter "$@"                 enter the lab (re-exec under unshare), set it up
#   lab_kdc                        MIT KDC on 127.0.0.1:$LAB_KDC_PORT
#   lab_kdc_addprinc PRINC [KT]    add a -randkey principal, ktadd to KT when given
#   lab_kdc_stop                   stop the KDC ("KDC down" tests)
#   lab_apache                     Apache httpd: http :$LAB_HTTP_PORT, https :$LAB_HTTPS_PORT
#   lab_apache2                    a second NDES server (after lab_apache): its own Apache on
#                                  127.0.0.2 for ndes2.example.test, SPN HTTP/ndes2.example.test
#                                  in the same HTTP keytab, the same NDES CGI with its own state
#                                  directory $LAB_NDES2_STATE_DIR (lab_apache2_stop/_start)
#   lab_bus                        private dbus-daemon (type system) with ipc/system.d
#   lab_scepserver [CHALLENGE]     micromdm scepserver on :$LAB_SCEPSERVER_PORT
#   lab_gssproxy UID|USER          gssproxy holding svc-scep.keytab for that uid
#   lab_run_as USER CMD...         run CMD as a lab user (uid, gid, supplementary groups)
#   lab_wait_for SECS DESC CMD...  poll CMD every 20 ms until it succeeds, else fail
#   lab_start NAME CMD...          start a background server, log to $LAB_DIR/NAME.log
#   lab_pid NAME                   print the PID of a server started with lab_start
#   lab_fail MSG                   print "not ok - MSG" and exit 1
#   lab_assert_eq GOT WANT WHAT
#   lab_assert_contains HAYSTACK NEEDLE WHAT
#   lab_assert_file_lacks FILE NEEDLE WHAT
#   lab_pass MSG                   print "ok - MSG"
#
# Variables the functions export
#   lab_enter:      LAB_DIR (mode 0711), KRB5_CONFIG=$LAB_DIR/krb5.conf, KRB5_KDC_PROFILE,
#                   KRB5RCACHEDIR, LAB_REALM=EXAMPLE.TEST, LAB_*_PORT (KDC 88, HTTP 80,
#                   HTTPS 443, SCEPSERVER 8080)
#   lab_kdc:        LAB_KDC_LOG, LAB_HTTP_KEYTAB, LAB_SVC_KEYTAB
#   lab_apache:     LAB_TLS_ROOT (PEM), LAB_APACHE_ACCESS_LOG, LAB_APACHE_ERROR_LOG,
#                   LAB_NDES_STATE_DIR, LAB_NDES_CGI_USED (reads LAB_NDES_CGI: the NDES
#                   CGI to run; default: tests/lab/ndes-placeholder.cgi)
#   lab_bus:        DBUS_SYSTEM_BUS_ADDRESS
#   lab_scepserver: LAB_SCEPSERVER_URL (http://127.0.0.1:8080/scep), LAB_SCEPSERVER_CA,
#                   LAB_SCEPSERVER_DEPOT
#   lab_gssproxy:   GSSPROXY_SOCKET, LAB_GSSPROXY_SOCKET (clients add GSS_USE_PROXY=yes
#                   and a writable ccache, e.g. KRB5CCNAME=MEMORY:x)
#
# Apache routes, on http and https (server certificate for ndes.example.test,
# ndes-alias.example.test, evil.attacker.test under LAB_TLS_ROOT):
#   /certsrv/mscep_admin/...            GSSAPI (HTTP/ndes.example.test, krb5 only) -> NDES CGI
#   /certsrv/mscep/mscep.dll[/...]      anonymous -> NDES CGI
#   /redirect-foreign                   302 to https://evil.attacker.test/
#   /always-401/certsrv/mscep_admin/    401 WWW-Authenticate: Negotiate, even to a valid ticket
#
# Additions beyond the contract
#   lab_inside                     true in the process lab_enter re-executed inside the
#                                  namespaces (also before lab_enter has run there)
#   lab_kdc_start                  start the KDC again on its database after lab_kdc_stop
#   lab_apache_stop / lab_apache_start   stop Apache ("NDES down"), start it again
#                                  with the same configuration and state
#   lab_stop NAME                  stop one server started with lab_start (TERM, then KILL)
#   lab_on_exit CMD                run CMD (eval'd) from the EXIT trap, before servers are
#                                  killed; use this instead of your own `trap ... EXIT`,
#                                  which would replace the lab's
#   lab_assert_not_contains HAYSTACK NEEDLE WHAT
#   lab_times                      print "# lab bring-up: kdc=412ms apache=..." (one line)
#   lab_curl ARGS...               curl with the lab TLS root and a 10 s limit, silent
#   LAB_PYTHON                     /usr/bin/python3 (Debian's, with python3-dbus; not a pyenv one)
#   LAB_TIME_<NAME>_MS             bring-up time of each server function, in ms
#   LAB_HOSTS                      names that resolve to 127.0.0.1 inside the lab
#   LAB_HTTP_URL / LAB_HTTPS_URL   http://ndes.example.test / https://ndes.example.test
#   LAB_HTTP_KEYTAB                $LAB_DIR/http.keytab (root:www-data 0640)
#   LAB_SVC_KEYTAB                 $LAB_DIR/svc-scep.keytab (root 0600)
#   LAB_SVC_PRINCIPAL              svc-scep@EXAMPLE.TEST
#                                  (the KDC readiness probe uses principal lab-probe, so
#                                  every svc-scep line in LAB_KDC_LOG comes from a test)
#   KRB5CCNAME                     unset: the default ccache is FILE:$LAB_DIR/krb5/cc/krb5cc_<uid>
#                                  (per uid, so lab_run_as users never share root's)
#   LAB_NDES_STATE_DIR             $LAB_DIR/ndes (www-data, passed to the CGI)
#   LAB_SCEPSERVER_DEPOT           scepserver's depot directory
#   CB_LAB_KEEP=on-failure         keep LAB_DIR only when the script fails (=1: always)
#   CB_LAB_INSIDE                  set to the PID of the process that entered the lab;
#                                  a child script calling lab_enter gets its own lab
#
# Private files bind-mounted inside the lab: /etc/hosts, /etc/resolv.conf,
# /etc/passwd, /etc/group, /etc/nsswitch.conf (files only) and /etc/krb5.conf
# (= $KRB5_CONFIG, for programs that clear their environment).
#
# Users inside the lab (private /etc/passwd and /etc/group):
#   alice 2001 (tenant-a 3001), bob 2002 (tenant-b 3002), mallory 2003 (mallory 3003),
#   certbroker 2010 (certbroker 2010).

# Fixed ports: each test file has its own network namespace.
LAB_KDC_PORT=88
LAB_HTTP_PORT=80
LAB_HTTPS_PORT=443
LAB_SCEPSERVER_PORT=8080
LAB_REALM=EXAMPLE.TEST
LAB_SVC_PRINCIPAL=svc-scep@EXAMPLE.TEST
LAB_HOSTS="ndes.example.test ndes-alias.example.test kdc.example.test evil.attacker.test evilexample.test evilexample.com"
LAB_HTTP_URL=http://ndes.example.test
LAB_PYTHON=/usr/bin/python3
LAB_HTTPS_URL=https://ndes.example.test
export LAB_KDC_PORT LAB_HTTP_PORT LAB_HTTPS_PORT LAB_SCEPSERVER_PORT LAB_REALM \
       LAB_SVC_PRINCIPAL LAB_HOSTS LAB_HTTP_URL LAB_HTTPS_URL LAB_PYTHON

_lab_self=$(readlink -f "${BASH_SOURCE[0]}")
_lab_dir_src=$(dirname "$_lab_self")
: "${CB_SOURCE_ROOT:=$(cd "$_lab_dir_src/../.." && pwd)}"
: "${CB_BUILD_ROOT:=$CB_SOURCE_ROOT/build-test}"
export CB_SOURCE_ROOT CB_BUILD_ROOT

declare -gA _LAB_PIDS=()
declare -ga _LAB_ORDER=()
declare -ga _LAB_EXIT_HOOKS=()
declare -gA _LAB_TIMES=()
declare -ga _LAB_TIME_ORDER=()

# ---------------------------------------------------------------------------
# Assertions and messages

lab_fail() {
        echo "not ok - $*" >&2
        exit 1
}

lab_pass() {
        echo "ok - $*"
}

lab_assert_eq() {
        local got=$1 want=$2 what=$3
        if [ "$got" != "$want" ]; then
                lab_fail "$what: expected '$want', got '$got'"
        fi
}

lab_assert_contains() {
        local haystack=$1 needle=$2 what=$3
        if [[ "$haystack" != *"$needle"* ]]; then
                lab_fail "$what: expected to contain '$needle', got: $(printf '%s' "$haystack" | head -c 2000)"
        fi
}

lab_assert_not_contains() {
        local haystack=$1 needle=$2 what=$3
        if [[ "$haystack" == *"$needle"* ]]; then
                lab_fail "$what: must not contain '$needle', got: $(printf '%s' "$haystack" | head -c 2000)"
        fi
}

lab_assert_file_lacks() {
        local file=$1 needle=$2 what=$3
        [ -r "$file" ] || lab_fail "$what: cannot read $file"
        if grep -qF -- "$needle" "$file"; then
                lab_fail "$what: $file must not contain the given text, but it does at line(s) $(grep -nF -- "$needle" "$file" | cut -d: -f1 | tr '\n' ' ')"
        fi
}

_lab_now_ms() {
        local t=${EPOCHREALTIME/./}
        echo $(( t / 1000 ))
}

_lab_time_record() {
        local name=$1 start=$2 ms
        ms=$(( $(_lab_now_ms) - start ))
        [ -n "${_LAB_TIMES[$name]:-}" ] || _LAB_TIME_ORDER+=("$name")
        _LAB_TIMES[$name]=$ms
        export "LAB_TIME_${name^^}_MS=$ms"
}

lab_times() {
        local out="# lab bring-up:" n
        for n in "${_LAB_TIME_ORDER[@]}"; do
                out+=" $n=${_LAB_TIMES[$n]}ms"
        done
        echo "$out"
}

# ---------------------------------------------------------------------------
# Namespace and process management

lab_inside() {
        [ "${CB_LAB_INSIDE:-}" = "$$" ]
}

# Refuse to do anything with servers unless we are in a private network and
# mount namespace with nothing but loopback.
_lab_require_inside() {
        local what=$1 links
        lab_inside && [ -n "${LAB_DIR:-}" ] && [ -d "$LAB_DIR" ] ||
                lab_fail "$what: not inside the lab; call lab_enter \"\$@\" first"
        # Compared with the namespaces lab_enter started from (in a test that runs in its own pid
        # namespace, /proc/1 is the test itself).
        if [ "$(readlink /proc/self/ns/net)" = "${CB_LAB_OUTER_NET:-$(readlink /proc/1/ns/net)}" ] ||
           [ "$(readlink /proc/self/ns/mnt)" = "${CB_LAB_OUTER_MNT:-$(readlink /proc/1/ns/mnt)}" ] ||
           [ "$(readlink /proc/self/ns/net)" = "$(readlink /proc/1/ns/net)" -a "$$" != 1 ]; then
                lab_fail "$what: refusing to start a server in the host's network or mount namespace"
        fi
        links=$(ip -o link show | awk -F': ' '{print $2}' | sed 's/@.*//' | grep -vx lo || true)
        if [ -n "$links" ]; then
                lab_fail "$what: refusing to start a server: interfaces other than lo are visible: $(echo "$links" | tr '\n' ' ')"
        fi
}

lab_on_exit() {
        _LAB_EXIT_HOOKS+=("$1")
}

# Stop one PID: TERM, wait up to 5 s, then KILL.
_lab_kill_pid() {
        local pid=$1 i
        kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
        kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < 250; i++)); do
                kill -0 "$pid" 2>/dev/null || break
                # Reap it if it is our child and already exited.
                if [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" = Z ]; then
                        break
                fi
                sleep 0.02
        done
        if kill -0 "$pid" 2>/dev/null && [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != Z ]; then
                echo "# lab: PID $pid ignored SIGTERM for 5 s, sending SIGKILL" >&2
                kill -KILL "$pid" 2>/dev/null || true
        fi
        wait "$pid" 2>/dev/null || true
}

lab_stop() {
        local name=$1 pid i
        pid=${_LAB_PIDS[$name]:-}
        [ -n "$pid" ] || lab_fail "lab_stop: no server named '$name' was started"
        _lab_kill_pid "$pid"
        unset "_LAB_PIDS[$name]"
        for i in "${!_LAB_ORDER[@]}"; do
                [ "${_LAB_ORDER[$i]}" = "$name" ] && unset "_LAB_ORDER[$i]"
        done
        _LAB_ORDER=("${_LAB_ORDER[@]}")
        return 0
}

_lab_cleanup() {
        local rc=$? i name hook
        trap - EXIT INT TERM
        set +e
        for hook in "${_LAB_EXIT_HOOKS[@]}"; do
                eval "$hook"
        done
        # Stop servers in reverse start order, each by its own PID.
        for ((i = ${#_LAB_ORDER[@]} - 1; i >= 0; i--)); do
                name=${_LAB_ORDER[$i]}
                _lab_kill_pid "${_LAB_PIDS[$name]}"
        done
        if [ -n "${LAB_DIR:-}" ] && [ -d "$LAB_DIR" ]; then
                if [ "${CB_LAB_KEEP:-0}" = 1 ]; then
                        echo "# lab: kept $LAB_DIR" >&2
                elif [ "$rc" -ne 0 ] && [ "${CB_LAB_KEEP:-}" = on-failure ]; then
                        echo "# lab: failed, kept $LAB_DIR" >&2
                else
                        rm -rf --one-file-system "$LAB_DIR"
                fi
        fi
        exit "$rc"
}

lab_start() {
        local name=$1
        shift
        _lab_require_inside "lab_start $name"
        [ -z "${_LAB_PIDS[$name]:-}" ] || lab_fail "lab_start: a server named '$name' is already running (PID ${_LAB_PIDS[$name]})"
        # pdeathsig: should this script be SIGKILLed (no trap runs), its
        # servers get SIGTERM from the kernel instead of living on.
        setpriv --pdeathsig TERM -- "$@" </dev/null >"$LAB_DIR/$name.log" 2>&1 &
        _LAB_PIDS[$name]=$!
        _LAB_ORDER+=("$name")
}

lab_pid() {
        local name=$1
        [ -n "${_LAB_PIDS[$name]:-}" ] || lab_fail "lab_pid: no server named '$name' was started"
        echo "${_LAB_PIDS[$name]}"
}

lab_wait_for() {
        local timeout=$1 desc=$2 deadline
        shift 2
        deadline=$(( $(_lab_now_ms) + timeout * 1000 ))
        while ! "$@" >/dev/null 2>&1; do
                if [ "$(_lab_now_ms)" -ge "$deadline" ]; then
                        lab_fail "timed out after ${timeout}s waiting for $desc (command: $*)"
                fi
                sleep 0.02
        done
}

# Like lab_wait_for, but also fail at once (with the log tail) when the server
# NAME has exited.
_lab_wait_server() {
        local name=$1 timeout=$2 desc=$3 deadline pid
        shift 3
        pid=${_LAB_PIDS[$name]}
        deadline=$(( $(_lab_now_ms) + timeout * 1000 ))
        while ! "$@" >/dev/null 2>&1; do
                if ! kill -0 "$pid" 2>/dev/null || [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" = Z ]; then
                        echo "# --- last lines of $LAB_DIR/$name.log:" >&2
                        tail -n 30 "$LAB_DIR/$name.log" >&2 || true
                        lab_fail "$name exited while waiting for $desc (log: $LAB_DIR/$name.log)"
                fi
                if [ "$(_lab_now_ms)" -ge "$deadline" ]; then
                        echo "# --- last lines of $LAB_DIR/$name.log:" >&2
                        tail -n 30 "$LAB_DIR/$name.log" >&2 || true
                        lab_fail "timed out after ${timeout}s waiting for $desc (command: $*)"
                fi
                sleep 0.02
        done
}

_lab_user_ids() {
        # prints "uid gid" for a lab user name or numeric uid
        local u=$1 ent
        ent=$(getent passwd "$u") || lab_fail "lab_run_as: no user '$u' in the lab's /etc/passwd"
        echo "$ent" | awk -F: '{print $3, $4}'
}

lab_run_as() {
        local user=$1 ids uid gid
        shift
        ids=$(_lab_user_ids "$user")
        uid=${ids% *}
        gid=${ids#* }
        setpriv --reuid="$uid" --regid="$gid" --init-groups --inh-caps=-all -- "$@"
}

lab_curl() {
        curl -sS --max-time 10 --cacert "${LAB_TLS_ROOT:-/dev/null}" "$@"
}

_lab_write_passwd() {
        local f=$1 kind=$2
        if [ "$kind" = passwd ]; then
                awk -F: '$1 !~ /^(alice|bob|mallory|certbroker)$/ && $3 !~ /^(2001|2002|2003|2010)$/' /etc/passwd >"$f"
                cat >>"$f" <<'EOF'
alice:x:2001:3001:lab tenant a:/nonexistent:/bin/sh
bob:x:2002:3002:lab tenant b:/nonexistent:/bin/sh
mallory:x:2003:3003:lab attacker:/nonexistent:/bin/sh
certbroker:x:2010:2010:certbroker daemon:/nonexistent:/usr/sbin/nologin
EOF
        else
                awk -F: '$1 !~ /^(tenant-a|tenant-b|mallory|certbroker)$/ && $3 !~ /^(3001|3002|3003|2010)$/' /etc/group >"$f"
                cat >>"$f" <<'EOF'
tenant-a:x:3001:alice
tenant-b:x:3002:bob
mallory:x:3003:mallory
certbroker:x:2010:
EOF
        fi
        chmod 0644 "$f"
}

_lab_bind_file() {
        local src=$1 dst=$2
        mount --bind "$src" "$dst" || lab_fail "lab_enter: cannot bind-mount $src over $dst"
}

lab_enter() {
        local script t0
        if [ "${CB_LAB_INSIDE:-}" != "$$" ]; then
                [ "$(id -u)" -eq 0 ] || lab_fail "lab_enter: run as root (the lab builds private namespaces and starts a KDC on port 88)"
                command -v unshare >/dev/null || lab_fail "lab_enter: unshare not found (util-linux; run tests/install-deps)"
                script=$(readlink -f "${BASH_SOURCE[-1]}")
                [ -f "$script" ] && [ "$script" != "$_lab_self" ] ||
                        lab_fail "lab_enter: call it from a bash script (it re-executes the script that sourced lab.sh), not from '${BASH_SOURCE[-1]}'"
                # unshare without --fork execs bash in place: same PID inside.
                export CB_LAB_INSIDE=$$
                CB_LAB_OUTER_NET=$(readlink /proc/self/ns/net)
                CB_LAB_OUTER_MNT=$(readlink /proc/self/ns/mnt)
                export CB_LAB_OUTER_NET CB_LAB_OUTER_MNT
                exec unshare --mount --net --propagation private -- "$BASH" "$script" "$@"
        fi

        # Inside the fresh namespaces.
        t0=$(_lab_now_ms)
        ip link set lo up || lab_fail "lab_enter: cannot bring lo up"

        LAB_DIR=$(mktemp -d /tmp/cb-lab.XXXXXX)
        export LAB_DIR
        trap _lab_cleanup EXIT
        trap 'exit 130' INT
        trap 'exit 143' TERM
        chmod 0711 "$LAB_DIR"     # www-data and lab users traverse, never list
        _lab_require_inside lab_enter

        mkdir -m 0755 "$LAB_DIR/etc"
        {
                echo "127.0.0.1 localhost $LAB_HOSTS"
                echo "::1 localhost ip6-localhost ip6-loopback"
        } >"$LAB_DIR/etc/hosts"
        echo "nameserver 127.0.0.1" >"$LAB_DIR/etc/resolv.conf"
        printf 'passwd: files\ngroup: files\nshadow: files\nhosts: files\nnetworks: files\nservices: files\nprotocols: files\n' \
                >"$LAB_DIR/etc/nsswitch.conf"
        _lab_write_passwd "$LAB_DIR/etc/passwd" passwd
        _lab_write_passwd "$LAB_DIR/etc/group" group
        chmod 0644 "$LAB_DIR"/etc/*
        _lab_bind_file "$LAB_DIR/etc/hosts" /etc/hosts
        _lab_bind_file "$LAB_DIR/etc/resolv.conf" /etc/resolv.conf
        _lab_bind_file "$LAB_DIR/etc/passwd" /etc/passwd
        _lab_bind_file "$LAB_DIR/etc/group" /etc/group
        _lab_bind_file "$LAB_DIR/etc/nsswitch.conf" /etc/nsswitch.conf

        # Kerberos client config: every krb5 consumer in the lab uses this,
        # never the host's /etc/krb5.conf.
        mkdir -m 0755 "$LAB_DIR/krb5"
        mkdir -m 0700 "$LAB_DIR/krb5/cc"
        export KRB5_CONFIG=$LAB_DIR/krb5.conf
        export KRB5_KDC_PROFILE=$LAB_DIR/krb5/kdc.conf
        export KRB5RCACHEDIR=$LAB_DIR/krb5/rcache
        mkdir -m 0700 "$KRB5RCACHEDIR"
        unset KRB5CCNAME KRB5_KTNAME KRB5_CLIENT_KTNAME KRB5_TRACE GSS_USE_PROXY GSSPROXY_SOCKET \
              DBUS_SYSTEM_BUS_ADDRESS DBUS_SESSION_BUS_ADDRESS
        cat >"$KRB5_CONFIG" <<EOF
[libdefaults]
    default_realm = $LAB_REALM
    dns_lookup_kdc = false
    dns_lookup_realm = false
    dns_canonicalize_hostname = false
    rdns = false
    udp_preference_limit = 1
    ignore_acceptor_hostname = false
    default_ccache_name = FILE:$LAB_DIR/krb5/cc/krb5cc_%{uid}
    default_client_keytab_name = FILE:$LAB_DIR/krb5/client_%{uid}.keytab
    permitted_enctypes = aes256-cts-hmac-sha1-96 aes128-cts-hmac-sha1-96 aes256-cts-hmac-sha384-192 aes128-cts-hmac-sha256-128
[realms]
    $LAB_REALM = {
        kdc = 127.0.0.1:$LAB_KDC_PORT
        admin_server = 127.0.0.1:749
    }
[domain_realm]
    .example.test = $LAB_REALM
    example.test = $LAB_REALM
EOF
        chmod 0644 "$KRB5_CONFIG"
        # Also for programs that clear their environment (CGIs, daemons).
        if [ -f /etc/krb5.conf ]; then
                _lab_bind_file "$KRB5_CONFIG" /etc/krb5.conf
        fi
        # Lab users may keep their own ccaches next to root's.
        chmod 1777 "$LAB_DIR/krb5/cc"
        _lab_time_record enter "$t0"
        return 0
}

# ---------------------------------------------------------------------------
# MIT KDC

lab_kdc() {
        local t0 kdcdir
        _lab_require_inside lab_kdc
        t0=$(_lab_now_ms)
        kdcdir=$LAB_DIR/krb5/kdc
        mkdir -m 0700 "$kdcdir"
        cat >"$KRB5_KDC_PROFILE" <<EOF
[kdcdefaults]
    kdc_listen = 127.0.0.1:$LAB_KDC_PORT
    kdc_tcp_listen = 127.0.0.1:$LAB_KDC_PORT
[realms]
    $LAB_REALM = {
        database_name = $kdcdir/principal
        key_stash_file = $kdcdir/stash
        acl_file = $kdcdir/kadm5.acl
        kdc_listen = 127.0.0.1:$LAB_KDC_PORT
        kdc_tcp_listen = 127.0.0.1:$LAB_KDC_PORT
        supported_enctypes = aes256-cts-hmac-sha1-96:normal aes128-cts-hmac-sha1-96:normal
        max_life = 10h
        max_renewable_life = 7d
    }
[logging]
    kdc = FILE:$LAB_DIR/kdc.log
EOF
        : >"$kdcdir/kadm5.acl"
        LAB_KDC_LOG=$LAB_DIR/kdc.log
        export LAB_KDC_LOG
        # The master password only protects a throwaway database.
        kdb5_util -r "$LAB_REALM" create -s -P "lab-master-$RANDOM$RANDOM" \
                >"$LAB_DIR/kdb5_util.log" 2>&1 ||
                { cat "$LAB_DIR/kdb5_util.log" >&2; lab_fail "lab_kdc: kdb5_util create failed (log above)"; }

        LAB_HTTP_KEYTAB=$LAB_DIR/http.keytab
        LAB_SVC_KEYTAB=$LAB_DIR/svc-scep.keytab
        export LAB_HTTP_KEYTAB LAB_SVC_KEYTAB
        kadmin.local -r "$LAB_REALM" -q "addprinc -randkey HTTP/ndes.example.test" >>"$LAB_DIR/kadmin.log" 2>&1 &&
        kadmin.local -r "$LAB_REALM" -q "addprinc -randkey svc-scep" >>"$LAB_DIR/kadmin.log" 2>&1 &&
        kadmin.local -r "$LAB_REALM" -q "ktadd -k $LAB_HTTP_KEYTAB HTTP/ndes.example.test" >>"$LAB_DIR/kadmin.log" 2>&1 &&
        kadmin.local -r "$LAB_REALM" -q "ktadd -k $LAB_SVC_KEYTAB svc-scep" >>"$LAB_DIR/kadmin.log" 2>&1 &&
        kadmin.local -r "$LAB_REALM" -q "addprinc -randkey lab-probe" >>"$LAB_DIR/kadmin.log" 2>&1 &&
        kadmin.local -r "$LAB_REALM" -q "ktadd -k $kdcdir/lab-probe.keytab lab-probe" >>"$LAB_DIR/kadmin.log" 2>&1 ||
                { cat "$LAB_DIR/kadmin.log" >&2; lab_fail "lab_kdc: kadmin.local could not create the lab principals (log above)"; }
        chown root:www-data "$LAB_HTTP_KEYTAB"
        chmod 0640 "$LAB_HTTP_KEYTAB"
        chown root:root "$LAB_SVC_KEYTAB"
        chmod 0600 "$LAB_SVC_KEYTAB"

        _lab_kdc_run
        _lab_time_record kdc "$t0"
}

_lab_kdc_run() {
        lab_start kdc krb5kdc -n -r "$LAB_REALM"
        # Ready when a real AS exchange works.  The probe uses its own principal
        # (lab-probe), so svc-scep's AS_REQ lines in LAB_KDC_LOG are all the tests'.
        _lab_wait_server kdc 10 "the KDC to issue a ticket" \
                env KRB5CCNAME="MEMORY:lab-ready" kinit -k -t "$LAB_DIR/krb5/kdc/lab-probe.keytab" lab-probe
}

lab_kdc_start() {
        _lab_require_inside lab_kdc_start
        [ -f "$LAB_DIR/krb5/kdc/stash" ] || lab_fail "lab_kdc_start: no KDC database; call lab_kdc first"
        [ -z "${_LAB_PIDS[kdc]:-}" ] || lab_fail "lab_kdc_start: the KDC is already running"
        _lab_kdc_run
}

lab_kdc_addprinc() {
        local princ=$1 kt=${2:-} full out existed
        _lab_require_inside lab_kdc_addprinc
        [ -f "$LAB_DIR/krb5/kdc/stash" ] || lab_fail "lab_kdc_addprinc: call lab_kdc first"
        case "$princ" in
        *@*) full=$princ ;;
        *) full=$princ@$LAB_REALM ;;
        esac
        # kadmin.local -q exits 0 even when the query fails: check its output.
        out=$(kadmin.local -r "$LAB_REALM" -q "addprinc -randkey $princ" 2>&1) || true
        printf '%s\n' "$out" >>"$LAB_DIR/kadmin.log"
        [[ "$out" == *"Principal \"$full\" created."* ]] ||
                lab_fail "lab_kdc_addprinc: could not create $full: $(printf '%s' "$out" | grep -v '^Authenticating' | tr '\n' ' ')"
        if [ -n "$kt" ]; then
                existed=
                [ -e "$kt" ] && existed=1
                out=$(kadmin.local -r "$LAB_REALM" -q "ktadd -k $kt $princ" 2>&1) || true
                printf '%s\n' "$out" >>"$LAB_DIR/kadmin.log"
                [[ "$out" == *"Entry for principal $princ with kvno"*"added to keytab"* ]] && [ -s "$kt" ] ||
                        lab_fail "lab_kdc_addprinc: could not write $full to keytab $kt: $(printf '%s' "$out" | grep -v '^Authenticating' | tr '\n' ' ')"
                # A new keytab is private; an existing one (Apache's, root:www-data 0640)
                # keeps its owner and mode.
                [ -n "$existed" ] || chmod 0600 "$kt"
        fi
}

lab_kdc_stop() {
        lab_stop kdc
}

# ---------------------------------------------------------------------------
# TLS: a throwaway lab root and a server certificate (EC P-256: fast)

_lab_tls() {
        local d=$LAB_DIR/tls
        [ -d "$d" ] && return 0
        mkdir -m 0755 "$d"
        (
                set -e
                umask 077
                openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
                        -keyout "$d/root.key" -out "$d/root.pem" -days 2 \
                        -subj "/O=certbroker lab/CN=certbroker lab root" \
                        -addext basicConstraints=critical,CA:TRUE \
                        -addext keyUsage=critical,keyCertSign,cRLSign
                openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
                        -keyout "$d/server.key" -out "$d/server.csr" \
                        -subj "/O=certbroker lab/CN=ndes.example.test"
                printf '%s\n' \
                        "basicConstraints=critical,CA:FALSE" \
                        "keyUsage=critical,digitalSignature" \
                        "extendedKeyUsage=serverAuth" \
                        "subjectAltName=DNS:ndes.example.test,DNS:ndes-alias.example.test,DNS:evil.attacker.test,DNS:ndes2.example.test" \
                        >"$d/server.ext"
                openssl x509 -req -in "$d/server.csr" -CA "$d/root.pem" -CAkey "$d/root.key" \
                        -CAcreateserial -days 2 -extfile "$d/server.ext" -out "$d/server.pem"
        ) >"$LAB_DIR/openssl.log" 2>&1 || { cat "$LAB_DIR/openssl.log" >&2; lab_fail "lab_apache: making the lab TLS certificates failed (log above)"; }
        chmod 0644 "$d/root.pem" "$d/server.pem"
        LAB_TLS_ROOT=$d/root.pem
        export LAB_TLS_ROOT
}

# ---------------------------------------------------------------------------
# Apache httpd + mod_auth_gssapi

lab_apache() {
        local t0 ad cgi conf mod
        _lab_require_inside lab_apache
        t0=$(_lab_now_ms)
        [ -n "${LAB_HTTP_KEYTAB:-}" ] || lab_fail "lab_apache: call lab_kdc first (Apache needs the HTTP keytab)"
        _lab_tls
        ad=$LAB_DIR/apache
        mkdir -m 0755 "$ad" "$ad/logs" "$ad/run" "$ad/cgi-bin" "$ad/htdocs"
        mkdir -m 0700 "$ad/rcache"
        chown www-data:www-data "$ad/rcache"
        LAB_NDES_STATE_DIR=$LAB_DIR/ndes
        mkdir -m 0700 "$LAB_NDES_STATE_DIR"
        chown www-data:www-data "$LAB_NDES_STATE_DIR"
        export LAB_NDES_STATE_DIR

        install -m 0755 "$_lab_dir_src/ndes-placeholder.cgi" "$ad/cgi-bin/ndes-placeholder.cgi"
        install -m 0755 "$_lab_dir_src/always-401.cgi" "$ad/cgi-bin/always-401.cgi"
        if [ -n "${LAB_NDES_CGI:-}" ]; then
                cgi=$(readlink -f "$LAB_NDES_CGI") || lab_fail "lab_apache: LAB_NDES_CGI=$LAB_NDES_CGI does not exist"
                [ -f "$cgi" ] && [ -x "$cgi" ] || lab_fail "lab_apache: LAB_NDES_CGI=$LAB_NDES_CGI is not an executable file"
                setpriv --reuid=www-data --regid=www-data --clear-groups test -x "$cgi" ||
                        lab_fail "lab_apache: www-data cannot execute LAB_NDES_CGI=$cgi (check the permissions of every directory above it)"
        else
                cgi=$ad/cgi-bin/ndes-placeholder.cgi
        fi
        LAB_NDES_CGI_USED=$cgi
        export LAB_NDES_CGI_USED

        LAB_APACHE_ACCESS_LOG=$ad/logs/access.log
        LAB_APACHE_ERROR_LOG=$ad/logs/error.log
        export LAB_APACHE_ACCESS_LOG LAB_APACHE_ERROR_LOG
        conf=$ad/httpd.conf
        {
                for mod in mpm_event authz_core authz_user authn_core mime dir alias env \
                           cgid auth_gssapi ssl socache_shmcb; do
                        echo "LoadModule ${mod}_module /usr/lib/apache2/modules/mod_${mod}.so"
                done
                sed -e "s|@LAB_DIR@|$LAB_DIR|g" \
                    -e "s|@AD@|$ad|g" \
                    -e "s|@CGI@|$cgi|g" \
                    -e "s|@CGIDIR@|$(dirname "$cgi")|g" \
                    -e "s|@HTTP_PORT@|$LAB_HTTP_PORT|g" \
                    -e "s|@HTTPS_PORT@|$LAB_HTTPS_PORT|g" \
                    -e "s|@KEYTAB@|$LAB_HTTP_KEYTAB|g" \
                    -e "s|@NDES_STATE_DIR@|$LAB_NDES_STATE_DIR|g" \
                    -e "s|@KRB5_CONFIG@|$KRB5_CONFIG|g" \
                    "$_lab_dir_src/httpd.conf.in"
        } >"$conf"

        _lab_apache_run
        _lab_time_record apache "$t0"
}

_lab_apache_run() {
        local ad=$LAB_DIR/apache
        # mod_auth_gssapi runs in the workers (www-data): krb5 config and the
        # replay cache come from the environment Apache starts with.
        lab_start apache env KRB5_CONFIG="$KRB5_CONFIG" KRB5RCACHEDIR="$ad/rcache" \
                KRB5_KTNAME="FILE:$LAB_HTTP_KEYTAB" \
                apache2 -f "$ad/httpd.conf" -d "$ad" -D FOREGROUND
        _lab_wait_server apache 15 "Apache to answer http on port $LAB_HTTP_PORT" \
                curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$LAB_HTTP_PORT/lab-ready"
        _lab_wait_server apache 15 "Apache to answer https on port $LAB_HTTPS_PORT" \
                curl -s -o /dev/null --max-time 2 --cacert "$LAB_TLS_ROOT" "https://ndes.example.test:$LAB_HTTPS_PORT/lab-ready"
}

lab_apache_stop() {
        lab_stop apache
}

lab_apache_start() {
        _lab_require_inside lab_apache_start
        [ -f "$LAB_DIR/apache/httpd.conf" ] || lab_fail "lab_apache_start: call lab_apache first"
        [ -z "${_LAB_PIDS[apache]:-}" ] || lab_fail "lab_apache_start: Apache is already running"
        # lab_start truncates apache.log; Apache's own logs are appended to.
        _lab_apache_run
}

# A second NDES server behind the same CA (several URLs in a CA's URL=): ndes2.example.test
# on 127.0.0.2 (its own /etc/hosts line), its own Apache (stopped and started on its own),
# its own SPN HTTP/ndes2.example.test in the HTTP keytab, and the NDES CGI with its own state
# directory, so its challenge cache and logs are its own. The emulator state is made by the
# caller (e.g. a copy of the first server's CA and RA files).
lab_apache2() {
        local ad=$LAB_DIR/apache2 t0
        _lab_require_inside lab_apache2
        t0=$(_lab_now_ms)
        [ -f "$LAB_DIR/apache/httpd.conf" ] || lab_fail "lab_apache2: call lab_apache first"
        grep -q ' ndes2\.example\.test$' "$LAB_DIR/etc/hosts" ||
                echo "127.0.0.2 ndes2.example.test" >>"$LAB_DIR/etc/hosts"
        lab_kdc_addprinc HTTP/ndes2.example.test "$LAB_HTTP_KEYTAB"
        mkdir -m 0755 "$ad" "$ad/logs" "$ad/run" "$ad/htdocs"
        cp -a "$LAB_DIR/apache/cgi-bin" "$ad/cgi-bin"
        mkdir -m 0700 "$ad/rcache"
        chown www-data:www-data "$ad/rcache"
        LAB_NDES2_STATE_DIR=$LAB_DIR/ndes2
        mkdir -m 0700 "$LAB_NDES2_STATE_DIR"
        chown www-data:www-data "$LAB_NDES2_STATE_DIR"
        LAB_APACHE2_ACCESS_LOG=$ad/logs/access.log
        export LAB_NDES2_STATE_DIR LAB_APACHE2_ACCESS_LOG
        sed -e "s|$LAB_DIR/apache/|$ad/|g; s|\"$LAB_DIR/apache\"|\"$ad\"|g" \
            -e "s|$LAB_NDES_STATE_DIR|$LAB_NDES2_STATE_DIR|g" \
            -e "s|127\.0\.0\.1:|127.0.0.2:|g" \
            -e "s|^ServerName ndes\.example\.test|ServerName ndes2.example.test|" \
            -e "s|^    ServerName ndes\.example\.test|    ServerName ndes2.example.test|" \
            "$LAB_DIR/apache/httpd.conf" >"$ad/httpd.conf"
        _lab_apache2_run
        _lab_time_record apache2 "$t0"
}

_lab_apache2_run() {
        local ad=$LAB_DIR/apache2
        lab_start apache2 env KRB5_CONFIG="$KRB5_CONFIG" KRB5RCACHEDIR="$ad/rcache" \
                KRB5_KTNAME="FILE:$LAB_HTTP_KEYTAB" \
                apache2 -f "$ad/httpd.conf" -d "$ad" -D FOREGROUND
        _lab_wait_server apache2 15 "the second Apache to answer https on ndes2.example.test" \
                curl -s -o /dev/null --max-time 2 --cacert "$LAB_TLS_ROOT" "https://ndes2.example.test:$LAB_HTTPS_PORT/lab-ready"
}

lab_apache2_stop() {
        lab_stop apache2
}

lab_apache2_start() {
        _lab_require_inside lab_apache2_start
        [ -f "$LAB_DIR/apache2/httpd.conf" ] || lab_fail "lab_apache2_start: call lab_apache2 first"
        [ -z "${_LAB_PIDS[apache2]:-}" ] || lab_fail "lab_apache2_start: the second Apache is already running"
        _lab_apache2_run
}

# ---------------------------------------------------------------------------
# Private system bus

# lab_bus_config SOCKET FILE: a dbus-daemon configuration FILE for a system bus listening on
# SOCKET, with ipc/'s policy (bus.conf.in).
lab_bus_config() {
        [ -d "$CB_SOURCE_ROOT/ipc/system.d" ] || lab_fail "lab_bus_config: $CB_SOURCE_ROOT/ipc/system.d does not exist"
        sed -e "s|@SOCKET@|$1|g" \
            -e "s|@SYSTEM_D@|$CB_SOURCE_ROOT/ipc/system.d|g" \
            "$_lab_dir_src/bus.conf.in" >"$2"
}

lab_bus() {
        local t0 bd
        _lab_require_inside lab_bus
        t0=$(_lab_now_ms)
        bd=$LAB_DIR/bus
        mkdir -m 0755 "$bd"
        lab_bus_config "$bd/system_bus_socket" "$bd/system.conf"
        lab_start bus dbus-daemon --config-file="$bd/system.conf" --nofork --nopidfile
        DBUS_SYSTEM_BUS_ADDRESS=unix:path=$bd/system_bus_socket
        export DBUS_SYSTEM_BUS_ADDRESS
        _lab_wait_server bus 10 "the private system bus to answer" \
                busctl --system --timeout=2 call org.freedesktop.DBus /org/freedesktop/DBus \
                org.freedesktop.DBus GetId
        _lab_time_record bus "$t0"
}

# ---------------------------------------------------------------------------
# micromdm scepserver

lab_scepserver() {
        local challenge=${1:-} t0 depot args
        _lab_require_inside lab_scepserver
        t0=$(_lab_now_ms)
        depot=$LAB_DIR/scepserver/depot
        mkdir -m 0700 "$LAB_DIR/scepserver" "$depot"
        LAB_SCEPSERVER_DEPOT=$depot
        export LAB_SCEPSERVER_DEPOT
        (cd "$LAB_DIR/scepserver" && scepserver ca -init -depot "$depot" -keySize 2048 \
                -organization "certbroker lab" -organizational_unit "scepserver CA") \
                >"$LAB_DIR/scepserver-init.log" 2>&1 ||
                { cat "$LAB_DIR/scepserver-init.log" >&2; lab_fail "lab_scepserver: scepserver ca -init failed (log above)"; }
        LAB_SCEPSERVER_CA=$depot/ca.pem
        [ -s "$LAB_SCEPSERVER_CA" ] || lab_fail "lab_scepserver: $LAB_SCEPSERVER_CA was not created"
        # The server listens on all interfaces: only lo exists here.
        args=(-depot "$depot" -port "$LAB_SCEPSERVER_PORT")
        [ -z "$challenge" ] || args+=(-challenge "$challenge")
        lab_start scepserver scepserver "${args[@]}"
        LAB_SCEPSERVER_URL=http://127.0.0.1:$LAB_SCEPSERVER_PORT/scep
        export LAB_SCEPSERVER_URL LAB_SCEPSERVER_CA
        _lab_wait_server scepserver 15 "scepserver to answer GetCACaps" \
                curl -sf -o /dev/null --max-time 2 "$LAB_SCEPSERVER_URL?operation=GetCACaps"
        _lab_time_record scepserver "$t0"
}

# ---------------------------------------------------------------------------
# gss-proxy

lab_gssproxy() {
        local who=$1 t0 gd uid
        _lab_require_inside lab_gssproxy
        [ -n "${LAB_SVC_KEYTAB:-}" ] || lab_fail "lab_gssproxy: call lab_kdc first"
        t0=$(_lab_now_ms)
        if [[ "$who" =~ ^[0-9]+$ ]]; then
                uid=$who
        else
                uid=$(_lab_user_ids "$who")
                uid=${uid% *}
        fi
        gd=$LAB_DIR/gssproxy
        mkdir -m 0755 "$gd"
        mkdir -m 0700 "$gd/conf.d" "$gd/ccache"
        cat >"$gd/gssproxy.conf" <<EOF
[gssproxy]
    debug_level = 1

[service/certbroker-lab]
    mechs = krb5
    socket = $gd/gssproxy.sock
    euid = $uid
    cred_usage = initiate
    cred_store = client_keytab:$LAB_SVC_KEYTAB
    cred_store = ccache:FILE:$gd/ccache/krb5cc_%U
    krb5_principal = $LAB_SVC_PRINCIPAL
    allow_any_uid = false
EOF
        chmod 0600 "$gd/gssproxy.conf"
        GSSPROXY_SOCKET=$gd/gssproxy.sock
        LAB_GSSPROXY_SOCKET=$GSSPROXY_SOCKET
        export GSSPROXY_SOCKET LAB_GSSPROXY_SOCKET
        lab_start gssproxy gssproxy -i -c "$gd/gssproxy.conf" -C "$gd/conf.d" -s "$gd/gssproxy-default.sock"
        _lab_wait_server gssproxy 10 "gssproxy to create $GSSPROXY_SOCKET" test -S "$GSSPROXY_SOCKET"
        _lab_time_record gssproxy "$t0"
}
