#!/usr/bin/env bash
# Transport: the NDES error pages ("The password cache is full.", "You do not have
# sufficient permission to enroll with SCEP.") become ChallengeUnavailable with the
# Windows-side fix; MaxOutstandingChallenges caps what the broker holds.
set -euo pipefail
. "$CB_SOURCE_ROOT/tests/lab/lab.sh"
lab_enter "$@"
. "$CB_SOURCE_ROOT/tests/integration/transport-common.sh"
transport_setup

# Permission page, in each encoding.
ndes_ctl permission=denied
for enc in utf16le-bom utf16le utf8; do
        ndes_ctl admin_encoding=$enc
        tf challenge "$ADMIN_HTTP" 1
        tf_assert_result ChallengeUnavailable "permission page ($enc)"
        lab_assert_contains "$(cat "$TF_OUT")" "You do not have sufficient permission to enroll with SCEP." "quoted page ($enc)"
        lab_assert_contains "$(cat "$TF_OUT")" "Enroll permission on the certificate template" "hint ($enc)"
        lab_assert_contains "$(cat "$TF_OUT")" "$LAB_SVC_PRINCIPAL" "hint names the account ($enc)"
done
lab_pass "permission page (UTF-16LE with/without BOM, UTF-8): ChallengeUnavailable, template Enroll permission hint"
ndes_ctl permission=granted admin_encoding=utf16le-bom

# Cache full: NDES keeps 2 unused challenges here; the third fetch gets the cache-full page.
ndes_ctl cache_size=2
tf challenge "$ADMIN_HTTP" 2
lab_assert_eq "$(grep -c '^result=ok' "$TF_OUT")" 2 "two challenges fit the cache ($(cat "$TF_OUT"))"
tf challenge "$ADMIN_HTTP" 1
tf_assert_result ChallengeUnavailable "cache full"
lab_assert_contains "$(cat "$TF_OUT")" "The password cache is full." "quoted page"
lab_assert_contains "$(cat "$TF_OUT")" "restart IIS" "hint"
lab_pass "cache full page: ChallengeUnavailable with the wait/restart hint"
ndes_ctl cache_size=1000

# MaxOutstandingChallenges: 12 fetches at once with a cap of 3: all succeed, never more than 3
# outstanding (fetching or held unused) at any moment.
tf --max-outstanding 3 challenge-parallel "$ADMIN_HTTP" 12
lab_assert_eq "$TF_RC" 0 "parallel fetches ($(cat "$TF_OUT"))"
lab_assert_eq "$(grep -c '^result=ok' "$TF_OUT")" 12 "successful fetches"
max=$(sed -n 's/.*outstanding=\([0-9]*\).*/\1/p' "$TF_OUT" | sort -n | tail -1)
[ "$max" -le 3 ] || lab_fail "outstanding challenges reached $max with MaxOutstandingChallenges=3"
lab_pass "12 concurrent fetches with MaxOutstandingChallenges=3: all ok, at most $max outstanding"

# A challenge freed without a CertRep that proved NDES consumed it is still in NDES's cache:
# its slot stays held (until the challenge expires), so three unused ones fill a cap of 3.
tf --max-outstanding 3 --unused challenge-parallel "$ADMIN_HTTP" 3
lab_assert_eq "$TF_RC" 0 "three fetches freed unused ($(cat "$TF_OUT"))"
lab_assert_eq "$(grep -c '^result=ok' "$TF_OUT")" 3 "successful fetches (unused)"
lab_assert_eq "$(grep '^held=' "$TF_OUT" | tail -1)" "held=3 outstanding=3 queued=0" \
        "slots after three challenges were freed unused"
lab_pass "challenges freed unused keep their slots (held until NDES forgets them)"
