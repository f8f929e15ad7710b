#!/usr/bin/env bash
# certbrokerd against an independent SCEP server: micromdm's scepserver (Debian package scep),
# with a static challenge, no RA (CA only), and single-DES/SHA-1 replies that only a CA with
# AllowLegacyCiphers=yes accepts.
set -euo pipefail
: "${CB_SOURCE_ROOT:=$(cd "$(dirname "$0")/../.." && pwd)}"
. "$CB_SOURCE_ROOT/tests/lab/lab.sh"
lab_enter "$@"
. "$CB_SOURCE_ROOT/tests/integration/daemon-common.sh"

challenge=lab-static-$RANDOM$RANDOM
lab_kdc
lab_scepserver "$challenge"
lab_bus
broker_config
# scepserver listens on port 8080; reach it by a name under the suffix (IP literals are refused).
url=http://ndes-alias.example.test:$LAB_SCEPSERVER_PORT/scep
rm "$CB_CONF/ca.d/corp.conf"
# scepserver speaks http:// only: the broker then insists on the CA being pinned.
fp=sha256:$(openssl x509 -in "$LAB_SCEPSERVER_CA" -noout -fingerprint -sha256 | cut -d= -f2)
(umask 077; echo "$challenge" >"$LAB_DIR/mdm.challenge")
for ca in mdm mdm-strict; do
        cat >"$CB_CONF/ca.d/$ca.conf" <<CONF
[CA]
URL=$url
CAFingerprint=$fp
Authentication=none
Challenge=static
ChallengeFile=$LAB_DIR/mdm.challenge
AllowLegacyCiphers=$([ "$ca" = mdm ] && echo yes || echo no)
Default=$([ "$ca" = mdm ] && echo yes || echo no)
CONF
done
broker_start

path=$(cb_enroll alice mdm svc.a.example.test) || lab_fail "Enroll against scepserver failed"
state=$(cb_wait alice "$path" 60)
if [ "$state" != issued ]; then
        cat "$LAB_DIR/certbrokerd.log" >&2
        lab_fail "scepserver enrollment ended '$state': $(cb_prop alice "$path" ErrorMessage)"
fi
cb_prop alice "$path" Certificate >"$LAB_DIR/mdm.crt"
out=$(openssl verify -CAfile "$LAB_SCEPSERVER_CA" "$LAB_DIR/mdm.crt" 2>&1) || lab_fail "not issued by scepserver's CA: $out"
lab_assert_contains "$(openssl x509 -in "$LAB_DIR/mdm.crt" -noout -subject -nameopt RFC2253)" "CN=svc.a.example.test" "subject"
key=$(cb alice call "$CB_BUS" "$path" "$CB_BUS.Request" TakeKey)
key=${key#s \"}
printf '%b' "${key%\"}" >"$LAB_DIR/mdm.key"
lab_assert_eq "$(openssl pkey -in "$LAB_DIR/mdm.key" -pubout | sha256sum)" \
        "$(openssl x509 -in "$LAB_DIR/mdm.crt" -noout -pubkey | sha256sum)" "key matches certificate"
lab_assert_contains "$(cb alice get-property "$CB_BUS" /org/certbroker/Broker1/ca/mdm "$CB_BUS.CA" Capabilities)" \
        "SCEPStandard" "the CA's Capabilities property"
lab_assert_eq "$(cb alice get-property "$CB_BUS" /org/certbroker/Broker1/ca/mdm "$CB_BUS.CA" RACertificates)" \
        's ""' "scepserver has no RA"
lab_pass "enrolled against micromdm's scepserver with a static challenge (CA only, legacy DES reply)"

path=$(cb_enroll alice mdm-strict strict.a.example.test) || lab_fail "Enroll (strict CA) failed"
state=$(cb_wait alice "$path" 60)
lab_assert_eq "$state" failed "a DES reply without AllowLegacyCiphers"
msg=$(cb_prop alice "$path" ErrorMessage)
lab_assert_contains "$msg" "AllowLegacyCiphers" "the failure names the setting that allows it"
lab_pass "the same server's single-DES reply is refused where AllowLegacyCiphers=no, naming the setting"

# The static challenge never reaches the log.
lab_assert_file_lacks "$LAB_DIR/certbrokerd.log" "$challenge" "certbrokerd log"
lab_pass "the static challenge stays out of the log"
broker_stop
