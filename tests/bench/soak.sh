#!/usr/bin/env bash
# Soak: certbrokerd in the lab against the NDES emulator (behind Apache with Kerberos) for
# SOAK_SECONDS (600) while
#   - 3 users (bob, mallory, carol) keep 250 connections each to the bus (dbus-daemon allows
#     256 per user) that come and go: each calls the broker once, stays 2 to 30 s, leaves, and
#     is made again;
#   - 16 callers of alice's enroll in a loop: Enroll, Wait, Certificate, TakeKey, Remove;
#   - root calls Reload every 30 s;
#   - NSS fails for 20 s, twice: an nsswitch.conf naming a module that is down
#     (tests/bench/nss-down.c: every look-up UNAVAIL with ECONNREFUSED, as sssd or winbind
#     stopped) is bind-mounted over /etc/nsswitch.conf in the broker's own mount namespace
#     (the broker runs in one of its own, so the bus daemon and the callers keep theirs); the
#     broker's policy names alice, so every decision needs NSS;
#   - the broker is killed -9 twice (the first time inside the first NSS window, so it starts
#     again with NSS down) and started again at once;
# and every second it samples that the broker's name has an owner on the bus, the owner's fd
# count and RssAnon. After the load stops and the requests settle it ends with one line:
#
#   soak: N enrolled, L lost, S stuck, T failed by a transient cause, max fds F, RssAnon start A end B MiB
#
# N: requests issued (certificate and key taken). L: accepted requests (Enroll answered with a
# path) that the broker no longer knows, or that had not ended when their caller gave up
# after the settle time. S: requests of the broker (accepted or not) not terminal at the end
# with no next attempt planned (NextAttempt 0). T: requests that ended failed or rejected with
# Error CAUnreachable, Timeout, ChallengeUnavailable, KerberosFailed, QuotaExceeded or
# NotReady. RssAnon: the last broker process's, A 60 s after it started (load running, its
# connections remembered), B at the end after the load stopped, once the broker has given the
# memory its calls freed back to the system (5 s without calls; the figure right after the
# load is printed beside it); every caller Removes its requests once ended and any finished
# request left is Removed before B, so B holds no more requests than A did.
#
# A benchmark, not a test: loopback only, bounded in time; exits 1 when a goal is missed
# (0 lost, 0 stuck, 0 transient failures, the name owned at every sample but while the
# broker was killed and restarting, B within 10% of A).
#
#   meson test -C build --benchmark soak        (or: bash tests/bench/soak.sh)
#   options (environment): SOAK_SECONDS=600 SOAK_CALLERS=16 SOAK_CONNECTIONS=250
#   SOAK_SETTLE=180 (seconds the callers follow their last requests after the load)
set -euo pipefail
: "${CB_SOURCE_ROOT:=$(cd "$(dirname "$0")/../.." && pwd)}"
. "$CB_SOURCE_ROOT/tests/integration/daemon-enter.sh" "$@"

S=${SOAK_SECONDS:-600}
CALLERS=${SOAK_CALLERS:-16}
PER_USER=${SOAK_CONNECTIONS:-250}
SETTLE=${SOAK_SETTLE:-180}
[ "$S" -ge 120 ] || lab_fail "SOAK_SECONDS must be at least 120"
client=$CB_SOURCE_ROOT/tests/bench/soak-client.py
nss_dir=$CB_BUILD_ROOT/tests
[ -e "$nss_dir/libnss_down.so.2" ] || lab_fail "$nss_dir/libnss_down.so.2 is not built"
t0=$SECONDS

# A third user with connections besides bob and mallory (the lab's /etc/passwd and /etc/group
# are its own).
echo 'carol:x:2004:3004:lab tenant c:/nonexistent:/bin/sh' >>/etc/passwd
echo 'tenant-c:x:3004:carol' >>/etc/group

broker_lab
sed -i "s/^\[Broker\]$/[Broker]\nKeyPool=rsa:2048=16\nMaxStoredRequests=1000000/" "$CB_CONF/certbroker.conf"
echo "Timeout=5" >>"$CB_CONF/ca.d/corp.conf"
broker_policy_alice soak MaxRequests=1000000/1h MaxActive=100000
# Every kill -9 orphans the challenges the broker held: the emulator's cache is made large.
ndes ctl cache_size=1000 >/dev/null

# certbrokerd in a mount namespace of its own: its /etc/nsswitch.conf can be changed alone.
# While $LAB_DIR/nss-down exists it starts with the failing one already in place.
printf 'passwd: down\ngroup: down\nshadow: files\nhosts: files\nnetworks: files\nservices: files\nprotocols: files\n' \
        >"$LAB_DIR/nsswitch-down.conf"
# Each look-up the down module answers is logged ("down ENTRY KEY", tests/nss-module-log.h):
# the end checks the broker really met it.
: >"$LAB_DIR/nss-calls.log"
chmod 0666 "$LAB_DIR/nss-calls.log"
real_daemon=$CB_DAEMON
CB_DAEMON=$LAB_DIR/certbrokerd-soak
cat >"$CB_DAEMON" <<EOF
#!/bin/sh
exec unshare --mount --propagation private -- sh -c '
        [ ! -e "$LAB_DIR/nss-down" ] || mount --bind "$LAB_DIR/nsswitch-down.conf" /etc/nsswitch.conf || exit 1
        exec env LD_LIBRARY_PATH="$nss_dir" CB_NSS_LOG="$LAB_DIR/nss-calls.log" "$real_daemon" "\$@"' certbrokerd "\$@"
EOF
chmod 0755 "$CB_DAEMON"

# The unit's LimitNOFILE=8192: 6144 connections remembered, 384 per user.
ulimit -Sn 8192
broker_start

nss_check() {           # what getpwuid_r and getgrgid_r answer in the broker's mount namespace
        nsenter -t "$(lab_pid certbrokerd)" -m env LD_LIBRARY_PATH="$nss_dir" "$LAB_PYTHON" -c '
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
buf = ctypes.create_string_buffer(1 << 16)
ent = ctypes.create_string_buffer(256)
res = ctypes.c_void_p()
p = libc.getpwuid_r(2001, ent, buf, len(buf), ctypes.byref(res))
found_p = bool(res.value)
g = libc.getgrgid_r(3001, ent, buf, len(buf), ctypes.byref(res))
print("getpwuid_r(2001) = %d (%s%s), getgrgid_r(3001) = %d (%s%s)" % (
    p, os.strerror(p), ", found" if found_p else "", g, os.strerror(g), ", found" if res.value else ""))'
}
# nss_expect WHAT WANT: the broker's namespace answers as WANT says, or the run fails naming it.
nss_expect() {
        local got
        got=$(nss_check)
        echo "# $((SECONDS - t0)) s: NSS $1: $got"
        [ "$got" = "$2" ] || lab_fail "NSS is not $1 in the broker's mount namespace: $got"
}
nss_down() {
        touch "$LAB_DIR/nss-down"
        nsenter -t "$(lab_pid certbrokerd)" -m mount --bind "$LAB_DIR/nsswitch-down.conf" /etc/nsswitch.conf
        nss_expect down "getpwuid_r(2001) = 111 (Connection refused), getgrgid_r(3001) = 111 (Connection refused)"
}
nss_up() {
        rm -f "$LAB_DIR/nss-down"
        nsenter -t "$(lab_pid certbrokerd)" -m umount /etc/nsswitch.conf
        nss_expect up "getpwuid_r(2001) = 0 (Success, found), getgrgid_r(3001) = 0 (Success, found)"
}
kills=0
broker_kill() {
        local pid t st dead states=
        pid=$(lab_pid certbrokerd)
        touch "$LAB_DIR/restarting"
        t=$(_lab_now_ms)
        kill -9 "$pid"
        # Gone or a zombie: what it was in meanwhile (D: in the kernel, not yet dead) is said.
        while st=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) && [ "$st" != Z ]; do
                [[ "$states" == *"$st"* ]] || states+=$st
                [ $(($(_lab_now_ms) - t)) -lt 30000 ] || lab_fail "pid $pid still there 30 s after kill -9 (state $st)"
                sleep 0.01
        done
        dead=$(($(_lab_now_ms) - t))
        lab_stop certbrokerd
        cp "$LAB_DIR/certbrokerd.log" "$LAB_DIR/certbrokerd.$kills.log"   # broker_start starts a new log
        broker_start
        rm -f "$LAB_DIR/restarting"
        echo "# $((SECONDS - t0)) s: killed -9 pid $pid (dead after $dead ms${states:+, seen in state $states}), on the bus again after $(($(_lab_now_ms) - t)) ms: pid $(lab_pid certbrokerd)"
}

# Checked once before the load (and at every window): the failing NSS gives ECONNREFUSED, not
# "not found"; back up, the lab's entries are found.
echo "# NSS as the lab has it: $(nss_check)"
nss_down
nss_up
: >"$LAB_DIR/nss-calls.log"     # what the broker asks from here on

# ---- sampler: one line a second: elapsed state pid fds rss_kib ----
samples=$LAB_DIR/samples.txt
: >"$samples"
sampler() {
        local start next owner pid fds rss state t
        set +e          # a broker killed between two reads of /proc must not end the sampling
        start=$(_lab_now_ms)
        next=$start
        while [ ! -e "$LAB_DIR/sampler-stop" ]; do
                next=$((next + 1000))
                pid= fds=0 rss=0
                if owner=$(busctl --system --timeout=2 call org.freedesktop.DBus /org/freedesktop/DBus \
                                org.freedesktop.DBus GetConnectionUnixProcessID s "$CB_BUS" 2>/dev/null); then
                        pid=${owner#u }
                        state=owned
                        fds=$(find "/proc/$pid/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
                        rss=$(awk '/^RssAnon:/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
                elif [ -e "$LAB_DIR/restarting" ]; then
                        state=restarting
                else
                        state=missing
                fi
                echo "$(( ($(_lab_now_ms) - start) / 1000 )) $state ${pid:--} $fds ${rss:-0}" >>"$samples"
                t=$(( next - $(_lab_now_ms) ))
                [ "$t" -le 0 ] || sleep "$(awk -v m="$t" 'BEGIN {printf "%.3f", m / 1000}')"
        done
}
sampler &
sampler_pid=$!
lab_on_exit "touch '$LAB_DIR/sampler-stop'; wait $sampler_pid 2>/dev/null"

# ---- the load ----
out=$LAB_DIR/soak
mkdir -p "$out"
chmod 0777 "$out"
churners=()
for u in bob mallory carol; do
        lab_run_as "$u" "$LAB_PYTHON" "$client" churn "$PER_USER" "$S" "$out/churn.$u" &
        churners+=($!)
done
lab_run_as alice "$LAB_PYTHON" "$client" enroll "$CALLERS" "$S" "$SETTLE" "$out/enroll" &
callers_pid=$!
load_start=$SECONDS

# The faults, at fixed moments of the run: NSS down at 20% and 60% of it for 20 s each; kill
# -9 10 s into the first NSS window and at 35%; Reload every 30 s.
nss1=$((S * 20 / 100)) nss2=$((S * 60 / 100)) kill1=$((S * 20 / 100 + 10)) kill2=$((S * 35 / 100))
rss_at=$((kill2 + 60))
reloads=0 reload_failed=0 nss_windows=0 rss_start= held_start=
next_reload=30
while :; do
        e=$((SECONDS - load_start))
        [ "$e" -lt "$S" ] || break
        if [ "$e" -ge "$next_reload" ]; then
                if busctl --system --timeout=30 call "$CB_BUS" "$CB_PATH" "$CB_BUS.Manager" Reload >/dev/null 2>"$LAB_DIR/reload.err"; then
                        reloads=$((reloads + 1))
                else
                        reload_failed=$((reload_failed + 1))
                        echo "# $e s: Reload failed: $(cat "$LAB_DIR/reload.err")"
                fi
                next_reload=$((next_reload + 30))
        fi
        if [ "$e" -ge "$nss1" ] && [ "$nss_windows" = 0 ]; then
                nss_down; nss_windows=1; nss_up_at=$((e + 20))
        elif [ "$e" -ge "$nss2" ] && [ "$nss_windows" = 1 ] && [ -z "${nss_up_at:-}" ]; then
                nss_down; nss_windows=2; nss_up_at=$((e + 20))
        fi
        if [ -n "${nss_up_at:-}" ] && [ "$e" -ge "$nss_up_at" ]; then
                nss_up; nss_up_at=
        fi
        if { [ "$e" -ge "$kill1" ] && [ "$kills" = 0 ]; } || { [ "$e" -ge "$kill2" ] && [ "$kills" = 1 ]; }; then
                broker_kill; kills=$((kills + 1))
        fi
        if [ -z "$rss_start" ] && [ "$kills" = 2 ] && [ "$e" -ge "$rss_at" ]; then
                rss_start=$(awk '/^RssAnon:/ {print $2}' "/proc/$(lab_pid certbrokerd)/status")
                held_start=$(busctl --system call "$CB_BUS" "$CB_PATH" "$CB_BUS.Manager" ListRequests | awk '{print $2}')
                echo "# $e s: RssAnon $rss_start KiB, $held_start requests held (the start sample)"
        fi
        sleep 0.5
done
[ -z "${nss_up_at:-}" ] || nss_up
echo "# load stopped after $((SECONDS - load_start)) s: $reloads Reloads ($reload_failed failed), $kills kills, $nss_windows NSS windows"
[ -n "$rss_start" ] || lab_fail "no start sample of RssAnon (SOAK_SECONDS too short?)"

wait "${churners[@]}"
wait "$callers_pid" || lab_fail "the enrolling callers failed"     # bounded by SOAK_SETTLE
settled=$SECONDS
touch "$LAB_DIR/sampler-stop"
wait "$sampler_pid" || true

# ---- the end: census, remove what is finished, the end sample ----
census=$out/census.jsonl
log=$LAB_DIR/certbrokerd.log
trims=$(grep -c 'Quiet for .* freed memory' "$log" || true)
lab_run_as alice "$LAB_PYTHON" "$client" census "$census"
removed=$(lab_run_as alice "$LAB_PYTHON" "$client" remove-finished)
pid=$(lab_pid certbrokerd)
held_end=$(busctl --system call "$CB_BUS" "$CB_PATH" "$CB_BUS.Manager" ListRequests | awk '{print $2}')
rss_busy=$(awk '/^RssAnon:/ {print $2}' "/proc/$pid/status")
# The broker gives the memory its calls freed back to the system once 5 s pass without method
# calls or request changes (service/memory-trim.h; it logs "Quiet for 5 s: freed memory
# ..."): B is sampled after that, as a quiet broker on a host would be.
lab_wait_for 60 "the broker to give freed memory back after the load (a 'Quiet for' line in $log)" \
        bash -c "[ \"\$(grep -c 'Quiet for .* freed memory' '$log')\" -gt $trims ]"
rss_end=$(awk '/^RssAnon:/ {print $2}' "/proc/$pid/status")
echo "# end: $removed finished requests removed, $held_end held; RssAnon $rss_busy KiB right after," \
        "$rss_end KiB once quiet: $(grep 'Quiet for .* freed memory' "$log" | tail -1)"
for u in bob mallory carol; do
        echo "# $u: $(cat "$out/churn.$u")"
done
# The broker itself met the down module (the checks above ask from outside the broker).
consults=$(grep -c '^down ' "$LAB_DIR/nss-calls.log" || true)
echo "# the down module answered the broker $consults look-up(s)"
[ "$consults" -gt 0 ] || lab_fail "the broker never asked the down NSS module during the NSS windows"
for f in "$LAB_DIR"/certbrokerd.[0-9].log "$LAB_DIR/certbrokerd.log"; do
        echo "# $(basename "$f"): $(grep -c 'through NSS' "$f" || true) lines about NSS, the first:" \
                "$(grep -m1 'through NSS' "$f" || true)"
done
broker_stop

"$LAB_PYTHON" - "$out" "$census" "$samples" "$rss_start" "$rss_end" "$held_start" "$held_end" "$((SECONDS - t0))" <<'PYEOF'
import collections
import glob
import json
import sys

out, census_file, samples_file, rss_start, rss_end, held_start, held_end, seconds = sys.argv[1:9]
TRANSIENT = {'org.certbroker.Broker1.Error.' + e for e in
             ('CAUnreachable', 'Timeout', 'ChallengeUnavailable', 'KerberosFailed', 'QuotaExceeded', 'NotReady')}
TERMINAL = {'issued', 'rejected', 'failed', 'cancelled'}
accepted, done, open_, unknown = {}, {}, {}, {}
refused = collections.Counter()
for f in glob.glob(out + '/enroll.*'):
    for line in open(f):
        w = line.split()
        if w[0] == 'accepted':
            accepted[w[1]] = w[2]
        elif w[0] == 'done':
            done[w[1]] = (w[2], w[3], ' '.join(w[4:]))
        elif w[0] == 'open':
            open_[w[1]] = w[2]
        elif w[0] == 'unknown':
            unknown[w[1]] = w[2]
        elif w[0] == 'refused':
            refused[w[1]] += 1
census = [json.loads(l) for l in open(census_file)]
known = {r['path']: r for r in census}

enrolled = sum(1 for s, e, _ in done.values() if s == "issued" and e == "-")
lost = sorted(p for p in accepted if p not in done and (p not in known or p in unknown or p in open_))
stuck = [r for r in census if r['state'] not in TERMINAL and r['next_attempt'] == 0]
ended_failed = {p: v for p, v in done.items() if v[0] in ('failed', 'rejected')}
transient = {p: v for p, v in ended_failed.items() if v[1] in TRANSIENT}
odd = {p: v for p, v in done.items() if v[0] == 'issued' and v[1] != '-'}
other_failed = collections.Counter(v[1] for p, v in ended_failed.items() if p not in transient)

samples = [l.split() for l in open(samples_file)]
owned = [s for s in samples if s[1] == 'owned']
restarting = [s for s in samples if s[1] == 'restarting']
missing = [s for s in samples if s[1] == 'missing']
max_fds = max(int(s[3]) for s in owned)
a, b = int(rss_start) / 1024, int(rss_end) / 1024

for p in lost[:10]:
    print(f'# lost: {p} {accepted[p]} caller saw {unknown.get(p) or open_.get(p) or "no end"}; broker: {known.get(p)}')
for r in stuck[:10]:
    print(f'# stuck: {r}')
for p, v in list(ended_failed.items())[:10]:
    print(f'# ended {v[0]}: {p} {accepted.get(p)} {v[1]}: {v[2]}')
for p, v in list(odd.items())[:10]:
    print(f'# issued but: {p} {v[1]}')
print(f'# {len(accepted)} accepted, {len(done)} ended and removed, {len(census)} left in the broker at the end '
      f'(not accepted by a caller: {sum(1 for r in census if r["path"] not in accepted)}); '
      f'Enroll answered with an error: {dict(refused)}')
print(f'# ended failed or rejected by other causes (not a goal of the line; each one named above): {dict(other_failed)}')
print(f'# samples: {len(samples)}, name owned {len(owned)}, missing while killed and restarting {len(restarting)}, '
      f'missing otherwise {len(missing)}{" at " + ",".join(s[0] for s in missing[:10]) if missing else ""}')
both = [p for p in lost if p in {r['path'] for r in stuck}]
if both:
    print(f'# {len(both)} of the {len(lost)} lost (accepted, never ended) are also counted stuck (no next attempt)')
print(f'# requests held: {held_start} at the start sample, {held_end} at the end; {seconds} s in all')
print(f'soak: {enrolled} enrolled, {len(lost)} lost, {len(stuck)} stuck, {len(transient)} failed by a transient cause, '
      f'max fds {max_fds}, RssAnon start {a:.1f} end {b:.1f} MiB')
bad = []
if lost or stuck or transient or odd:
    bad.append('requests lost, stuck, failed by a transient cause or issued without their key')
if missing:
    bad.append(f'the name had no owner for {len(missing)} samples while the broker was not being restarted')
if b > a * 1.10:
    bad.append(f'RssAnon grew {100 * (b - a) / a:.0f}% (more than 10%)')
for m in bad:
    print(f'# goal missed: {m}')
sys.exit(1 if bad else 0)
PYEOF