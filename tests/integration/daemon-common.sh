# shellcheck shell=bash
# Shared setup for the certbrokerd tests (daemon-*.sh). Sourced, not a test itself.
# Needs lab.sh loaded and lab_enter done (daemon-enter.sh does both, then loads this).

CB_DAEMON=$CB_BUILD_ROOT/service/certbrokerd
CB_BUS=org.certbroker.Broker1
CB_PATH=/org/certbroker/Broker1

# broker_need_ctl: CTL, the built certbrokerctl; fails the test when it is not built.
broker_need_ctl() {
        CTL=$CB_BUILD_ROOT/client-lib/certbrokerctl
        [ -x "$CTL" ] || lab_fail "certbrokerctl is not built: $CTL (meson compile -C \$builddir client-lib/certbrokerctl)"
}

# broker_lab [CA_URL]: the broker's usual lab: KDC, Apache in front of the NDES emulator
# (ndes-common.sh), a private bus with ipc/'s policy, and $CB_CONF. Root's own ticket is
# destroyed: the broker must authenticate with its keytab.
broker_lab() {
        ndes_setup
        kdestroy -A 2>/dev/null || true
        lab_bus
        broker_config "$@"
}

# broker_config [CA_URL]: write $CB_CONF (certbroker.conf, ca.d/corp.conf, policy.d/tenants.policy)
# for the lab realm and the NDES emulator.
broker_config() {
        local url=${1:-https://ndes.example.test/certsrv/mscep/mscep.dll}
        CB_CONF=$LAB_DIR/cb-conf
        CB_STATE=$LAB_DIR/cb-state
        mkdir -p "$CB_CONF/ca.d" "$CB_CONF/policy.d"
        broker_main_conf "$CB_CONF/certbroker.conf" "$CB_STATE"
        cat >"$CB_CONF/ca.d/corp.conf" <<CONF
[CA]
URL=$url
TrustAnchors=${LAB_TLS_ROOT:-}
Default=yes
PollInterval=1
CONF
        cat >"$CB_CONF/policy.d/tenants.policy" <<CONF
# tenant A: its group, its names
[Rule]
Name=tenant-a
Groups=tenant-a
Names=*.a.example.test a.example.test
MaxActive=5

# tenant B: one user, anything below b.example.test, its own organization in the subject
[Rule]
Name=tenant-b
Users=bob
Names=**.b.example.test
Keys=ec:p256 rsa:2048
Subject=O=Tenant\ B
CONF
}

# broker_main_conf FILE STATE_DIR: a certbroker.conf for the lab realm (the service account's
# keytab, the lab's KDC) with StateDirectory=STATE_DIR.
broker_main_conf() {
        cat >"$1" <<CONF
[Kerberos]
Realm=EXAMPLE.TEST
KDC=kdc.example.test:$LAB_KDC_PORT
Principal=svc-scep@EXAMPLE.TEST
Keytab=$LAB_SVC_KEYTAB

[Broker]
PermittedSuffix=example.test
StateDirectory=$2
CONF
}

# broker_badpw_ca [LINE...]: $CB_CONF/ca.d/badpw.conf, a CA at the NDES emulator whose static
# challenge password NDES does not know (NDES answers FAILURE), and then each LINE.
broker_badpw_ca() {
        printf 'not-a-valid-challenge\n' >"$LAB_DIR/badpw.secret"
        chmod 0600 "$LAB_DIR/badpw.secret"
        cat >"$CB_CONF/ca.d/badpw.conf" <<CONF
[CA]
URL=https://ndes.example.test/certsrv/mscep/mscep.dll
TrustAnchors=$LAB_TLS_ROOT
Challenge=static
ChallengeFile=$LAB_DIR/badpw.secret
CONF
        [ $# -eq 0 ] || printf '%s\n' "$@" >>"$CB_CONF/ca.d/badpw.conf"
}

# broker_scepserver_config CHALLENGE: broker_config for the lab's scepserver (lab_scepserver) in
# place of the NDES emulator: no corp CA, and CHALLENGE in $LAB_DIR/mdm.challenge (0600) for
# scepserver_ca's CAs.
broker_scepserver_config() {
        broker_config
        rm "$CB_CONF/ca.d/corp.conf"
        (umask 077; echo "$1" >"$LAB_DIR/mdm.challenge")
}

# scepserver_ca NAME LEGACY DEFAULT [LINE...]: $CB_CONF/ca.d/NAME.conf, a CA at the lab's
# scepserver with the static challenge of broker_scepserver_config, AllowLegacyCiphers=LEGACY,
# Default=DEFAULT and then each LINE. scepserver listens on its own port, reached by a name
# under the suffix (IP literals are refused); it speaks http:// only, so the broker insists on
# the CA being pinned (CAFingerprint=).
scepserver_ca() {
        local name=$1 legacy=$2 default=$3 fp
        shift 3
        fp=sha256:$(openssl x509 -in "$LAB_SCEPSERVER_CA" -noout -fingerprint -sha256 | cut -d= -f2)
        cat >"$CB_CONF/ca.d/$name.conf" <<CONF
[CA]
URL=http://ndes-alias.example.test:$LAB_SCEPSERVER_PORT/scep
CAFingerprint=$fp
Authentication=none
Challenge=static
ChallengeFile=$LAB_DIR/mdm.challenge
AllowLegacyCiphers=$legacy
Default=$default
CONF
        [ $# -eq 0 ] || printf '%s\n' "$@" >>"$CB_CONF/ca.d/$name.conf"
}

# broker_unit_cgroup UNIT: make a cgroup named like the systemd service UNIT,
# system.slice/UNIT, in the hierarchy systemd tracks processes in (cgroup2: unified/ in a
# hybrid setup, else the root; else the legacy name=systemd one) and print its path; fails,
# printing nothing, where no such hierarchy can be written.
broker_unit_cgroup() {
        local root
        for root in /sys/fs/cgroup/unified /sys/fs/cgroup /sys/fs/cgroup/systemd; do
                if [ -e "$root/cgroup.procs" ] && mkdir -p "$root/system.slice/$1" 2>/dev/null; then
                        echo "$root/system.slice/$1"
                        return 0
                fi
        done
        return 1
}

# broker_policy_alice NAME [LINE...]: replace the tenants' policy with one rule NAME letting alice
# have *.a.example.test, plus the rule's further LINEs (e.g. its limits), for benchmarks.
broker_policy_alice() {
        local name=$1
        shift
        printf '[Rule]\nName=%s\nUsers=alice\nNames=*.a.example.test\n' "$name" >"$CB_CONF/policy.d/tenants.policy"
        [ $# -eq 0 ] || printf '%s\n' "$@" >>"$CB_CONF/policy.d/tenants.policy"
}

# broker_start: run certbrokerd (logging to $LAB_DIR/certbrokerd.log) and wait for its name.
# As root, or as the lab user named by CB_BROKER_USER (e.g. certbroker, for Mode=gss-proxy).
broker_start() {
        local as=()
        [ -x "$CB_DAEMON" ] || lab_fail "certbrokerd is not built: $CB_DAEMON"
        if [ -n "${CB_BROKER_USER:-}" ]; then
                mkdir -p -m 0700 "$CB_STATE"
                chown "$CB_BROKER_USER:" "$CB_STATE"
                as=(setpriv --reuid="$(id -u "$CB_BROKER_USER")" --regid="$(id -g "$CB_BROKER_USER")"
                    --init-groups --inh-caps=-all --)
        fi
        # Logs to stderr ($LAB_DIR/certbrokerd.log) unless CB_BROKER_JOURNAL=1 (then to the
        # journal socket, when there is one).
        if [ "${CB_BROKER_JOURNAL:-0}" = 1 ]; then
                CERTBROKER_LOG_LEVEL=debug \
                        lab_start certbrokerd "${as[@]}" "$CB_DAEMON" --config-dir="$CB_CONF" --state-dir="$CB_STATE"
        else
                CERTBROKER_LOG_STDERR=1 CERTBROKER_LOG_LEVEL=debug \
                        lab_start certbrokerd "${as[@]}" "$CB_DAEMON" --config-dir="$CB_CONF" --state-dir="$CB_STATE"
        fi
        lab_wait_for 20 "certbrokerd on the bus" busctl --system status "$CB_BUS"
}

# cb USER busctl-args...: busctl --system as USER (root: directly).
cb() {
        local user=$1
        shift
        if [ "$user" = root ]; then
                busctl --system "$@"
        else
                lab_run_as "$user" busctl --system "$@"
        fi
}

# cb_enroll USER CA NAME...: Enroll with default subject and options; prints the request path.
cb_enroll() {
        local user=$1 ca=$2 out
        shift 2
        out=$(cb "$user" call "$CB_BUS" "$CB_PATH" "$CB_BUS.Manager" Enroll ssasa{sv} "$ca" "" "$#" "$@" 0) ||
                return 1
        # o "/org/certbroker/Broker1/request/0123456789abcdef"
        out=${out#o \"}
        echo "${out%\"}"
}

# cb_prop USER PATH PROPERTY: a string property's value, unquoted.
cb_prop() {
        local out
        out=$(cb "$1" get-property "$CB_BUS" "$2" "$CB_BUS.Request" "$3") || return 1
        out=${out#s \"}
        printf '%b' "${out%\"}"
}

# enroll_renew USER CA NAME: Enroll with renew=true; prints the request path.
enroll_renew() {
        local out
        out=$(cb "$1" call "$CB_BUS" "$CB_PATH" "$CB_BUS.Manager" Enroll ssasa{sv} "$2" "" 1 "$3" 1 renew b true) ||
                return 1
        out=${out#o \"}
        echo "${out%\"}"
}
# tprop USER PATH PROPERTY: a request property's value without its type (numbers, booleans);
# oprop USER PATH PROPERTY: an object path property, unquoted.
tprop() { local o; o=$(cb "$1" get-property "$CB_BUS" "$2" "$CB_BUS.Request" "$3") || return 1; echo "${o#* }"; }
oprop() { local o; o=$(cb "$1" get-property "$CB_BUS" "$2" "$CB_BUS.Request" "$3"); o=${o#o \"}; echo "${o%\"}"; }

# cb_wait USER PATH SECONDS: Request.Wait; prints the state.
cb_wait() {
        local out
        out=$(cb "$1" --timeout=$(($3 + 5)) call "$CB_BUS" "$2" "$CB_BUS.Request" Wait t "$(($3 * 1000000))") || return 1
        out=${out#s \"}
        echo "${out%\"}"
}

# broker_stop: SIGTERM, wait for a clean exit, and fail on any sanitizer report in its log
# (under ASan the leak check runs at exit).
broker_stop() {
        local pid
        pid=$(lab_pid certbrokerd)
        kill -TERM "$pid" 2>/dev/null || true
        lab_wait_for 30 "certbrokerd to exit" bash -c "! kill -0 $pid 2>/dev/null"
        lab_stop certbrokerd
        broker_check_log
}

broker_check_log() {
        if grep -qE "ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:" "$LAB_DIR/certbrokerd.log"; then
                cat "$LAB_DIR/certbrokerd.log" >&2
                lab_fail "certbrokerd: sanitizer report in its log (above)"
        fi
}
