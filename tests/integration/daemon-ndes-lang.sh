#!/usr/bin/env bash
# certbrokerd against mscep_admin pages it has to read by their structure, on the real lab (KDC,
# Apache + mod_auth_gssapi in front of the NDES emulator, a private bus):
#  - German and Japanese pages (lang=de, lang=ja: translated sentences, a <B><I>Microsoft</I></B>
#    banner before the thumbprint), in UTF-16LE with and without a byte-order mark and UTF-8:
#    issued;
#  - challenges of 1 and 64 bytes (password_length=1, =64: 2 and 128 hex digits): issued;
#  - single-password mode (single_password=on, Windows 2008 R2, certnanny/sscep#46): two requests
#    issued with the same password;
#  - a localized cache-full page: the request stays retrying with ChallengeUnavailable (not
#    failed) and is issued once the cache has room;
#  - a localized permission page: failed at once, naming the fix;
#  - a page that is no NDES page (admin_page=garbage): retrying, its visible text (escaped) in the
#    request's ErrorMessage and in the broker's log; issued once NDES answers again.
set -euo pipefail
: "${CB_SOURCE_ROOT:=$(cd "$(dirname "$0")/../.." && pwd)}"
. "$CB_SOURCE_ROOT/tests/integration/daemon-enter.sh" "$@"

broker_lab
broker_start

state_is() {    # state_is PATH STATE
        [ "$(busctl --system get-property "$CB_BUS" "$1" "$CB_BUS.Request" State)" = "s \"$2\"" ]
}
export -f state_is
export CB_BUS

# enroll_issued NAME WHAT: alice enrolls NAME; it must be issued, with a certificate that chains to
# the emulator's CA and carries exactly NAME.
enroll_issued() {
        local name=$1 what=$2 path state
        path=$(cb_enroll alice corp "$name") || lab_fail "$what: Enroll failed"
        state=$(cb_wait alice "$path" 60)
        [ "$state" = issued ] || lab_fail "$what: the request ended '$state': $(cb_prop alice "$path" ErrorMessage)"
        cb_prop alice "$path" Certificate >"$LAB_DIR/$name.crt"
        ndes_verify_cert "$LAB_DIR/$name.crt" "$name" "$name"
}

# error_message PATH: alice's request's ErrorMessage exactly (busctl --json, no shell escapes).
error_message() {
        cb alice --json=short get-property "$CB_BUS" "$1" "$CB_BUS.Request" ErrorMessage |
                python3 -c 'import json, sys; sys.stdout.write(json.load(sys.stdin)["data"])'
}

# admin_page_text: the page mscep_admin serves now, as UTF-8 (one GET with root's ticket).
admin_page_text() {
        local f=$NDES_WORK/page
        [ "$(ndes_admin_get "$f")" = 200 ] || lab_fail "mscep_admin did not answer 200"
        ndes_page_text "$f"
}

# ---- German and Japanese pages, in each encoding ----
kinit -k -t "$LAB_SVC_KEYTAB" svc-scep >/dev/null
ndes ctl lang=de >/dev/null
text=$(admin_page_text)
lab_assert_contains "$text" "<B><I>Microsoft</I></B>" "the German page's banner"
lab_assert_contains "$text" "Das Kennwort für die Registrierungsabfrage lautet: <B> " "the German challenge line"
lab_assert_not_contains "$text" "The enrollment challenge password is" "the German page"
ndes ctl lang=ja >/dev/null
text=$(admin_page_text)
lab_assert_contains "$text" "登録チャレンジ パスワード: <B> " "the Japanese challenge line"
rm -f "$NDES_STATE/challenges"          # the two fetched here are not the broker's
for lang in de ja; do
        for enc in utf16le-bom utf16le utf8; do
                ndes ctl lang=$lang admin_encoding=$enc >/dev/null
                enroll_issued "$lang-$enc.a.example.test" "lang=$lang admin_encoding=$enc"
        done
done
lab_pass "German and Japanese pages (UTF-16LE with and without BOM, UTF-8): issued, the challenge found by the page's structure"
ndes ctl lang=en admin_encoding=utf16le-bom >/dev/null

# ---- challenges of 1 and 64 bytes ----
ndes ctl password_length=1 >/dev/null
[[ "$(admin_page_text)" =~ password\ is:\ \<B\>\ [0-9A-F]{2}\ \</B\> ]] || lab_fail "password_length=1: no 2-digit challenge"
rm -f "$NDES_STATE/challenges"
enroll_issued len1.a.example.test "password_length=1"
ndes ctl password_length=64 lang=de >/dev/null
[[ "$(admin_page_text)" =~ lautet:\ \<B\>\ [0-9A-F]{128}\ \</B\> ]] || lab_fail "password_length=64: no 128-digit challenge"
rm -f "$NDES_STATE/challenges"
enroll_issued len64.a.example.test "password_length=64 (German page)"
ndes ctl password_length=8 lang=en >/dev/null
lab_pass "challenges of 2 and 128 hex digits (password_length=1 and =64): issued"

# ---- single-password mode: the same password, used twice ----
ndes ctl single_password=on >/dev/null
text=$(admin_page_text)
lab_assert_contains "$text" "This password can be used multiple times and will not expire." "the single-password page"
single=$(cat "$NDES_STATE/single-password")
lab_assert_contains "$text" "<B> $single </B>" "the page shows the single password"
issued_before=$(ndes log | grep -c 'result=issued-single' || true)
enroll_issued single1.a.example.test "single password, first request"
enroll_issued single2.a.example.test "single password, second request"
lab_assert_eq "$(cat "$NDES_STATE/single-password")" "$single" "the single password after two enrollments"
lab_assert_eq "$(cat "$NDES_STATE/challenges" 2>/dev/null | grep -c . || true)" 0 "one-time challenges in NDES's cache"
[ "$(ndes log | grep -c 'result=issued-single')" -ge $((issued_before + 2)) ] ||
        lab_fail "the broker did not fetch the single password for each request: $(ndes log | tail -n 3)"
lab_assert_eq "$(ndes_scep_log_count 'why=issued')" 10 "certificates issued so far (6 + 2 + 2)"
lab_assert_file_lacks "$LAB_DIR/certbrokerd.log" "$single" "the broker's log"
ndes ctl single_password=off >/dev/null
lab_pass "single-password mode: two requests issued with the same password, nothing counted in NDES's cache"

# ---- a localized cache-full page: retried, not failed ----
rm -f "$NDES_STATE/challenges"
ndes ctl lang=de cache_size=2 >/dev/null
admin_page_text >/dev/null
admin_page_text >/dev/null                      # two unused challenges: the cache is full
text=$(admin_page_text)
lab_assert_contains "$text" "Der Kennwortcache ist voll." "the German cache-full page"
p=$(cb_enroll alice corp full-de.a.example.test)
lab_wait_for 60 "request retrying on a German cache-full page" state_is "$p" retrying
lab_assert_eq "$(cb_prop alice "$p" Error)" "org.certbroker.Broker1.Error.ChallengeUnavailable" "Error on a German cache-full page"
msg=$(error_message "$p")
lab_assert_contains "$msg" "recognised by the page's structure" "the message says how the page was read"
lab_assert_contains "$msg" "The password cache is full." "the message says the cache is full"
lab_assert_contains "$msg" "restart IIS" "the message's fix"
ndes ctl cache_size=5 >/dev/null                # room again
state=$(cb_wait alice "$p" 120)
[ "$state" = issued ] || lab_fail "after the cache had room the request ended '$state': $(cb_prop alice "$p" ErrorMessage)"
lab_pass "German cache-full page: retrying with ChallengeUnavailable, issued once the cache has room"

# ---- a localized permission page: failed at once, naming the fix ----
ndes ctl lang=ja permission=denied >/dev/null
p=$(cb_enroll alice corp noperm-ja.a.example.test)
lab_assert_eq "$(cb_wait alice "$p" 30)" failed "a request on a Japanese permission page"
lab_assert_eq "$(cb_prop alice "$p" Error)" "org.certbroker.Broker1.Error.ChallengeUnavailable" "its error"
msg=$(error_message "$p")
lab_assert_contains "$msg" "recognised by the page's structure" "the message says how the page was read"
lab_assert_contains "$msg" "Enroll permission on the certificate template" "its fix"
lab_assert_contains "$msg" "svc-scep@EXAMPLE.TEST" "the account named"
lab_assert_eq "$(cb alice get-property "$CB_BUS" "$p" "$CB_BUS.Request" Attempts)" "u 1" "attempts before failing"
ndes ctl lang=en permission=granted >/dev/null
lab_pass "Japanese permission page: failed at once with the template-permission fix"

# ---- a page that is no NDES page: retried, its text quoted ----
ndes ctl admin_page=garbage >/dev/null
p=$(cb_enroll alice corp garbage.a.example.test)
lab_wait_for 60 "request retrying on a page that is no NDES page" state_is "$p" retrying
lab_assert_eq "$(cb_prop alice "$p" Error)" "org.certbroker.Broker1.Error.ChallengeUnavailable" "Error on an unknown page"
raw=$(error_message "$p")
lab_assert_contains "$raw" "ndes.example.test" "the message names the host"
lab_assert_contains "$raw" "Scheduled maintenance The enrollment portal is offline until 06:00 UTC." "the page's visible text"
lab_assert_contains "$raw" "Netzwerkgeräte. Ticket CHG-4711." "its non-ASCII text"
lab_assert_contains "$raw" 'UTC.\x07 Wartungsfenster' "the control character, escaped"
lab_assert_not_contains "$raw" "Maintenance</Title>" "the page's head and tags"
lab_wait_for 30 "the broker's log quoting the page" \
        grep -qF "Scheduled maintenance The enrollment portal is offline until 06:00 UTC.\\x07 Wartungsfenster" \
        "$LAB_DIR/certbrokerd.log"
ndes ctl admin_page=ndes >/dev/null
state=$(cb_wait alice "$p" 120)
[ "$state" = issued ] || lab_fail "after NDES answered again the request ended '$state': $(cb_prop alice "$p" ErrorMessage)"
lab_pass "a page that is no NDES page: retrying with its visible text (escaped) in ErrorMessage and the log; issued after"

broker_stop
ndes_check_error_log
