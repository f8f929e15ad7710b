#!/usr/bin/env bash
# NDES emulator, mscep_admin: the one-time challenge page behind Kerberos, in each
# encoding, the 5-challenge cache, expiry, the permission page, and the fetch log.
set -euo pipefail
. "$CB_SOURCE_ROOT/tests/lab/lab.sh"
lab_enter "$@"
. "$CB_SOURCE_ROOT/tests/integration/ndes-common.sh"
ndes_setup

page=$NDES_WORK/page

# No ticket: Apache (mod_auth_gssapi) refuses, like IIS with Windows authentication.
code=$(KRB5CCNAME=MEMORY:empty curl -sS --max-time 10 --negotiate -u : -o "$page" -w '%{http_code}' "$NDES_ADMIN_URL")
lab_assert_eq "$code" 401 "mscep_admin without a ticket"
lab_pass "mscep_admin without a Kerberos ticket: 401"

# Default encoding: UTF-16LE with a byte-order mark (what Windows sends).
code=$(ndes_admin_get "$page")
lab_assert_eq "$code" 200 "mscep_admin status"
lab_assert_eq "$(head -c 4 "$page" | od -An -tx1 | tr -d ' \n')" fffe3c00 "first bytes (BOM, then '<' in UTF-16LE)"
lab_assert_eq $(( $(stat -c %s "$page") % 2 )) 0 "UTF-16 body length is even"
text=$(ndes_page_text "$page")
lab_assert_contains "$text" "The enrollment challenge password is: <B> " "challenge line"
lab_assert_contains "$text" "This password can be used only once and will expire within 60 minutes." "single-use line"
thumb=$(openssl x509 -in "$NDES_STATE/ca.crt" -noout -fingerprint -md5 | sed 's/.*=//; s/://g')
thumb_spaced="${thumb:0:8} ${thumb:8:8} ${thumb:16:8} ${thumb:24:8}"
lab_assert_contains "$text" "The thumbprint (hash value) for the CA certificate is: <B> $thumb_spaced </B>" "CA thumbprint line"
c1=$(printf '%s' "$text" | sed -n 's/.*password is: <B> \([^ ]*\) <\/B>.*/\1/p')
[[ "$c1" =~ ^[0-9A-F]{16}$ ]] || lab_fail "challenge is not 16 uppercase hex digits: '$c1'"
lab_pass "admin page: UTF-16LE with BOM, 16 uppercase hex digits, thumbprint and single-use text"

# UTF-16LE without BOM
ndes ctl admin_encoding=utf16le
lab_assert_eq "$(ndes_admin_get "$page")" 200 "status (utf16le)"
lab_assert_eq "$(head -c 4 "$page" | od -An -tx1 | tr -d ' \n')" 3c004800 "first bytes without BOM ('<H' in UTF-16LE)"
c2=$(iconv -f UTF-16LE -t UTF-8 <"$page" | sed -n 's/.*password is: <B> \([^ ]*\) <\/B>.*/\1/p')
[[ "$c2" =~ ^[0-9A-F]{16}$ ]] || lab_fail "utf16le page: no challenge"
lab_pass "admin page: UTF-16LE without BOM"

# UTF-8
ndes ctl admin_encoding=utf8
lab_assert_eq "$(ndes_admin_get "$page")" 200 "status (utf8)"
lab_assert_eq "$(head -c 6 "$page")" "<HTML>" "UTF-8 page starts with plain ASCII"
if od -An -tx1 "$page" | grep -q ' 00'; then lab_fail "UTF-8 page contains NUL bytes"; fi
c3=$(sed -n 's/.*password is: <B> \([^ ]*\) <\/B>.*/\1/p' "$page")
[[ "$c3" =~ ^[0-9A-F]{16}$ ]] || lab_fail "utf8 page: no challenge"
lab_pass "admin page: UTF-8"

# Every GET gives a fresh challenge.
[ "$c1" != "$c2" ] && [ "$c2" != "$c3" ] && [ "$c1" != "$c3" ] || lab_fail "challenges repeat: $c1 $c2 $c3"
lab_pass "each GET gives a new challenge"

# Two more fill the cache of 5; the 6th GET gets the cache-full page, HTTP 200 like NDES.
ndes_challenge >/dev/null
ndes_challenge >/dev/null
lab_assert_eq "$(ndes_admin_get "$page")" 200 "status of the cache-full page"
text=$(ndes_page_text "$page")
lab_assert_contains "$text" "The password cache is full." "6th GET"
lab_assert_not_contains "$text" "The enrollment challenge password is" "6th GET"
lab_pass "6th unused challenge: 'The password cache is full.' (HTTP 200)"

# Concurrent GETs against a full cache never hand out a 6th challenge (flock).
ndes ctl cache_size=5
# (wait for these PIDs only: a bare `wait` would wait for the lab's servers too)
pids=()
for i in 1 2 3 4 5 6 7 8; do ndes_admin_get "$page.$i" >/dev/null & pids+=($!); done
wait "${pids[@]}"
n=0
for i in 1 2 3 4 5 6 7 8; do
        if ndes_page_text "$page.$i" | grep -q 'password is:'; then n=$((n + 1)); fi
done
lab_assert_eq "$n" 0 "challenges handed out by 8 concurrent GETs on a full cache"
lab_pass "8 concurrent GETs on a full cache: no challenge handed out"

# 60 minutes later the five have expired: the cache has room again.
ndes ctl clock_offset=3601
c6=$(ndes_challenge)
lab_pass "after 60 minutes (clock_offset) the expired challenges are dropped: new challenge"

# Concurrency with room in the cache: 4 parallel GETs, 4 distinct challenges, then full.
pids=()
for i in 1 2 3 4; do ndes_admin_get "$page.p$i" >/dev/null & pids+=($!); done
wait "${pids[@]}"
got=$(for i in 1 2 3 4; do printf "%s\n" "$(ndes_page_text "$page.p$i" | sed -n 's/.*password is: <B> \([^ ]*\) <\/B>.*/\1/p')"; done | sort -u | wc -l)
lab_assert_eq "$got" 4 "distinct challenges from 4 concurrent GETs"
lab_assert_contains "$(ndes_admin_get "$page" >/dev/null; ndes_page_text "$page")" "The password cache is full." "after 5 (1 + 4 concurrent)"
lab_pass "4 concurrent GETs: 4 distinct challenges, then the cache is full"

# Permission mode.
ndes ctl permission=denied
lab_assert_eq "$(ndes_admin_get "$page")" 200 "status of the permission page"
text=$(ndes_page_text "$page")
lab_assert_contains "$text" "You do not have sufficient permission to enroll with SCEP." "permission page"
lab_assert_not_contains "$text" "password is" "permission page"
lab_pass "permission=denied: 'You do not have sufficient permission to enroll with SCEP.'"

# The log names the Kerberos user of every fetch; challenges appear in no log.
log=$(ndes log)
lab_assert_contains "$log" "user=svc-scep@EXAMPLE.TEST result=issued" "challenge log"
lab_assert_contains "$log" "user=svc-scep@EXAMPLE.TEST result=cache-full" "challenge log"
lab_assert_contains "$log" "user=svc-scep@EXAMPLE.TEST result=denied" "challenge log"
lab_assert_eq "$(printf '%s\n' "$log" | grep -c 'result=issued')" 10 "issued challenges in the log (3 + 2 + 1 + 4)"
for c in "$c1" "$c2" "$c3" "$c6"; do
        lab_assert_file_lacks "$LAB_APACHE_ERROR_LOG" "$c" "Apache error log"
        lab_assert_file_lacks "$NDES_STATE/challenge.log" "$c" "challenge log"
        lab_assert_file_lacks "$LAB_APACHE_ACCESS_LOG" "$c" "Apache access log"
done
lab_assert_eq "$(stat -c '%a %U' "$NDES_STATE/challenges")" "600 www-data" "mode of the challenge cache file"
lab_pass "fetch log names REMOTE_USER for each fetch; no challenge in any log; cache file 0600"
# --- the CLI refuses bad settings and unknown transactions, naming what was wrong
out=$(ndes ctl caps=win2003 2>&1) && lab_fail "ctl accepted caps=win2003"
lab_assert_contains "$out" "caps must be win2016, win2012, aes or scepstandard" "ctl error message"
out=$(ndes ctl ra_order=ca,ca,sign 2>&1) && lab_fail "ctl accepted ra_order=ca,ca,sign"
lab_assert_contains "$out" "ra_order must name sign, enc and ca once each" "ctl error message"
out=$(ndes approve no-such-transaction 2>&1) && lab_fail "approve accepted an unknown transactionID"
lab_assert_contains "$out" 'no pending request with transactionID "no-such-transaction"' "approve error message"
lab_assert_contains "$(ndes ctl)" "permission=denied" "ctl without arguments prints the settings"
lab_pass "ctl and approve refuse bad input with a message naming it"

ndes_check_error_log
