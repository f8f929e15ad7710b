#!/usr/bin/env bash
# polkit delegation of the administrative methods, with a real polkitd on the lab's bus and a
# rules file (README, "Delegating administration with polkit"):
#   - helen, a member of the group helpdesk that the rules file grants
#     org.certbroker.broker1.manage, .check and .reload, reads another user's request, stops its
#     renewal and cancels a pending one, runs Check() with a challenge on a CA no policy rule lets
#     her use, and reloads the configuration; never the key (TakeKey);
#   - mallory, whom the rules file refuses .reload, is refused with polkit's reason
#     (AccessDenied), and for .manage (no rule: the action's default auth_admin_keep) is told
#     authentication is needed (org.freedesktop.DBus.Error.InteractiveAuthorizationRequired);
#   - with polkitd gone, non-root callers are refused, saying polkit did not answer.
# polkitd reads the shipped ipc/polkit/org.certbroker.broker1.policy and the test's rules from
# /usr/share/polkit-1/actions and /etc/polkit-1/rules.d, bind-mounted in the lab's private
# mount namespace.
set -euo pipefail
: "${CB_SOURCE_ROOT:=$(cd "$(dirname "$0")/../.." && pwd)}"
. "$CB_SOURCE_ROOT/tests/integration/daemon-enter.sh" "$@"

POLKITD=/usr/lib/polkit-1/polkitd
[ -x "$POLKITD" ] || lab_fail "polkitd is not installed (Debian package polkitd)"
getent passwd polkitd >/dev/null || lab_fail "no user polkitd (Debian package polkitd)"

# helen: the helpdesk's member (the lab's /etc/passwd and /etc/group are private files).
echo "helen:x:2004:3004:lab helpdesk:/nonexistent:/bin/sh" >>/etc/passwd
echo "helpdesk:x:3004:helen" >>/etc/group

ndes_setup
kdestroy -A 2>/dev/null || true

# The lab's bus, with polkit's own bus policy (polkitd may own org.freedesktop.PolicyKit1,
# everyone may call it) beside the project's.
bd=$LAB_DIR/bus
mkdir -m 0755 "$bd" "$bd/system.d"
cp "$CB_SOURCE_ROOT"/ipc/system.d/*.conf "$bd/system.d/"
cp /usr/share/dbus-1/system.d/org.freedesktop.PolicyKit1.conf "$bd/system.d/"
sed -e "s|@SOCKET@|$bd/system_bus_socket|g" -e "s|@SYSTEM_D@|$bd/system.d|g" \
        "$CB_SOURCE_ROOT/tests/lab/bus.conf.in" >"$bd/system.conf"
lab_start bus dbus-daemon --config-file="$bd/system.conf" --nofork --nopidfile
export DBUS_SYSTEM_BUS_ADDRESS=unix:path=$bd/system_bus_socket
lab_wait_for 10 "the private system bus" busctl --system --timeout=2 call org.freedesktop.DBus \
        /org/freedesktop/DBus org.freedesktop.DBus GetId

# polkit's actions: the system's and ours; its rules: the test's only.
pk=$LAB_DIR/polkit
mkdir -p "$pk/actions" "$pk/rules.d"
cp /usr/share/polkit-1/actions/*.policy "$pk/actions/" 2>/dev/null || true
cp "$CB_SOURCE_ROOT/ipc/polkit/org.certbroker.broker1.policy" "$pk/actions/"
cat >"$pk/rules.d/50-certbroker-helpdesk.rules" <<'RULES'
// The helpdesk group may administer certbroker; mallory may never reload it.
polkit.addRule(function(action, subject) {
        if (action.id.indexOf("org.certbroker.broker1.") == 0 && subject.isInGroup("helpdesk"))
                return polkit.Result.YES;
        if (action.id == "org.certbroker.broker1.reload" && subject.user == "mallory")
                return polkit.Result.NO;
});
RULES
chmod -R a+rX "$pk"
mkdir -p /usr/share/polkit-1/actions /etc/polkit-1/rules.d
mount --bind "$pk/actions" /usr/share/polkit-1/actions
mount --bind "$pk/rules.d" /etc/polkit-1/rules.d
# Started as root, polkitd switches to its user polkitd itself.
lab_start polkitd "$POLKITD"
lab_wait_for 20 "polkitd on the bus" busctl --system status org.freedesktop.PolicyKit1
lab_wait_for 20 "polkitd to load its rules" grep -q "Finished loading, compiling and executing" "$LAB_DIR/polkitd.log"

broker_config
broker_start
lab_wait_for 20 "ticket-granting ticket" bash -c \
        "[ \"\$(busctl --system get-property $CB_BUS $CB_PATH $CB_BUS.Manager CredentialState)\" = 's \"valid\"' ]"

# refused CMD...: runs CMD, which must fail; prints its output.
refused() {
        local out
        if out=$("$@" 2>&1); then
                lab_fail "allowed: $* -> $out"
        fi
        printf '%s' "$out"
}

# --- .manage: another user's request ---
path=$(enroll_renew alice corp one.a.example.test)
lab_assert_eq "$(cb_wait alice "$path" 60)" issued "alice's request"
lab_assert_eq "$(cb_prop helen "$path" State)" issued "helen reading alice's request"
lab_assert_contains "$(cb helen call "$CB_BUS" "$CB_PATH" "$CB_BUS.Manager" ListAllRequests)" \
        "\"${path##*/}\" \"issued\" \"$path\" $(id -u alice)" "helen listing every user's requests"
out=$(refused cb mallory call "$CB_BUS" "$CB_PATH" "$CB_BUS.Manager" ListAllRequests)
lab_assert_contains "$out" "org.certbroker.broker1.manage needs authentication" "mallory listing every user's requests"
lab_assert_eq "$(tprop helen "$path" Owner)" "$(id -u alice)" "the owner helen reads"
out=$(refused cb helen call "$CB_BUS" "$path" "$CB_BUS.Request" TakeKey)
lab_assert_contains "$out" "belongs to another user" "helen's TakeKey on alice's request"
out=$(refused cb mallory get-property "$CB_BUS" "$path" "$CB_BUS.Request" State)
lab_assert_contains "$out" "belongs to another user" "mallory reading alice's request"
lab_assert_contains "$out" "org.certbroker.broker1.manage needs authentication" "mallory's reason"
# errname_interactive USER PATH IFACE METHOD: the same, allowing interactive authorization.
errname_interactive() {
        lab_run_as "$1" "$LAB_PYTHON" -c '
import dbus, sys
b = dbus.SystemBus()
m = dbus.lowlevel.MethodCallMessage("org.certbroker.Broker1", sys.argv[1], sys.argv[2], sys.argv[3])
m.set_allow_interactive_authorization(True)
try:
    b.send_message_with_reply_and_block(m, 30000)
except dbus.DBusException as e:
    print(e.get_dbus_name())
' "$2" "$3" "$4"
}
# errname USER PATH IFACE METHOD: the D-Bus error name USER's call gets ("" when it succeeds).
errname() {
        lab_run_as "$1" "$LAB_PYTHON" -c '
import dbus, sys
o = dbus.SystemBus().get_object("org.certbroker.Broker1", sys.argv[1], introspect=False)
try:
    getattr(o, sys.argv[3])(dbus_interface=sys.argv[2])
except dbus.DBusException as e:
    print(e.get_dbus_name())
' "$2" "$3" "$4"
}
lab_assert_eq "$(errname mallory "$path" "$CB_BUS.Request" StopRenewal)" \
        org.freedesktop.DBus.Error.InteractiveAuthorizationRequired "the error of mallory's StopRenewal"
lab_assert_eq "$(tprop alice "$path" Renew)" true "Renew after mallory's StopRenewal"
# Allowing interactive authorization, the broker passes polkit the flag AllowUserInteraction
# (seen on the bus); with no agent to ask, the refusal says so (AccessDenied).
lab_start monitor busctl --system monitor org.freedesktop.PolicyKit1
lab_wait_for 10 "the bus monitor" grep -q "Monitoring bus message stream" "$LAB_DIR/monitor.log"
out=$(refused cb mallory --allow-interactive-authorization=yes call "$CB_BUS" "$path" "$CB_BUS.Request" StopRenewal)
lab_assert_contains "$out" "belongs to another user" "mallory's interactive StopRenewal"
lab_assert_contains "$out" "no polkit agent asked" "mallory's interactive StopRenewal: why"
lab_assert_eq "$(errname_interactive mallory "$path" "$CB_BUS.Request" StopRenewal)" \
        org.certbroker.Broker1.Error.AccessDenied "the error of mallory's interactive StopRenewal"
lab_wait_for 10 "CheckAuthorization with AllowUserInteraction on the bus" bash -c \
        "grep -A20 'Member=CheckAuthorization' '$LAB_DIR/monitor.log' | grep -q 'UINT32 1;'"
lab_stop monitor
lab_assert_eq "$(tprop alice "$path" Renew)" true "Renew after mallory's interactive StopRenewal"
cb helen call "$CB_BUS" "$path" "$CB_BUS.Request" StopRenewal >/dev/null
lab_assert_eq "$(tprop alice "$path" Renew)" false "Renew after helen's StopRenewal"
lab_assert_contains "$(cat "$LAB_DIR/certbrokerd.log")" \
        "polkit authorized action org.certbroker.broker1.manage for uid 2004" "the broker's log"

# Cancel: a request NDES holds pending.
ndes ctl pending=on >/dev/null
held=$(cb_enroll alice corp two.a.example.test)
lab_wait_for 60 "alice's second request pending" bash -c \
        "[ \"\$(busctl --system get-property $CB_BUS $held $CB_BUS.Request State)\" = 's \"pending\"' ]"
lab_assert_eq "$(errname mallory "$held" "$CB_BUS.Request" Cancel)" \
        org.freedesktop.DBus.Error.InteractiveAuthorizationRequired "the error of mallory's Cancel"
lab_assert_eq "$(cb_prop alice "$held" State)" pending "alice's request after mallory's Cancel"
cb helen call "$CB_BUS" "$held" "$CB_BUS.Request" Cancel >/dev/null
lab_assert_eq "$(cb_wait alice "$held" 30)" cancelled "alice's request after helen's Cancel"
ndes ctl pending=off >/dev/null
lab_pass "polkit .manage: the helpdesk's member reads, stops renewing and cancels another user's requests (never takes the key); another user is told authentication is needed"

# --- .check: Check() on a CA no policy rule lets helen use, with a challenge ---
check() { cb "$1" --timeout=60 call "$CB_BUS" "/org/certbroker/Broker1/ca/$2" "$CB_BUS.CA" Check a{sv} "${@:3}"; }
out=$(check helen corp 1 challenge b true)
lab_assert_contains "$out" '"challenge" "ok"' "helen's challenge Check"
out=$(check helen corp 1 challenge b true)
lab_assert_contains "$out" '"challenge" "ok"' "helen's second challenge Check (no per-user interval, like root)"
out=$(refused check mallory corp 0)
lab_assert_contains "$out" "No policy rule lets you use CA 'corp'" "mallory's Check"
lab_assert_contains "$out" "org.certbroker.broker1.check needs authentication" "mallory's Check: why"
lab_pass "polkit .check: the helpdesk's member checks a CA with a challenge; another user is told why not"

# --- .reload ---
cb helen call "$CB_BUS" "$CB_PATH" "$CB_BUS.Manager" Reload
lab_assert_contains "$(cat "$LAB_DIR/certbrokerd.log")" \
        "polkit authorized action org.certbroker.broker1.reload for uid 2004" "the broker's log"
out=$(refused cb mallory call "$CB_BUS" "$CB_PATH" "$CB_BUS.Manager" Reload)
lab_assert_contains "$out" "polkit does not authorize uid $(id -u mallory) for action org.certbroker.broker1.reload" \
        "mallory's Reload"
lab_assert_eq "$(errname mallory "$CB_PATH" "$CB_BUS.Manager" Reload)" \
        org.certbroker.Broker1.Error.AccessDenied "the error of mallory's Reload"
out=$(refused cb alice call "$CB_BUS" "/org/certbroker/Broker1/ca/corp" "$CB_BUS.CA" Refresh)
lab_assert_contains "$out" "org.certbroker.broker1.reload needs authentication" "alice's Refresh"
cb helen call "$CB_BUS" "/org/certbroker/Broker1/ca/corp" "$CB_BUS.CA" Refresh
lab_pass "polkit .reload: the helpdesk's member reloads and refreshes; a user the rules refuse gets AccessDenied with polkit's reason"

# --- root needs no polkit; without polkitd nobody else gets anything ---
lab_stop polkitd
lab_wait_for 20 "polkitd gone from the bus" bash -c "! busctl --system status org.freedesktop.PolicyKit1 >/dev/null 2>&1"
cb root call "$CB_BUS" "$CB_PATH" "$CB_BUS.Manager" Reload
out=$(refused cb helen call "$CB_BUS" "$CB_PATH" "$CB_BUS.Manager" Reload)
lab_assert_contains "$out" "Only root, or a user polkit authorizes for org.certbroker.broker1.reload" "helen's Reload without polkitd"
lab_assert_contains "$out" "polkit did not answer" "helen's Reload without polkitd: why"
out=$(refused cb helen get-property "$CB_BUS" "$path" "$CB_BUS.Request" State)
lab_assert_contains "$out" "belongs to another user" "helen reading alice's request without polkitd"
lab_assert_eq "$(cb_prop alice "$path" State)" issued "alice reading her own request"
broker_stop
lab_pass "root needs no polkit; without polkitd only root and the owners have access"
