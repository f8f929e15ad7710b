#!/usr/bin/env bash
# Lab smoke test: micromdm scepserver (an independent SCEP server) answers
# GetCACaps and GetCACert inside the lab.
set -euo pipefail
: "${CB_SOURCE_ROOT:=$(cd "$(dirname "$0")/../.." && pwd)}"
. "$CB_SOURCE_ROOT/tests/lab/lab.sh"
lab_enter "$@"

lab_scepserver lab-scep-challenge
lab_assert_eq "$LAB_SCEPSERVER_URL" "http://127.0.0.1:$LAB_SCEPSERVER_PORT/scep" "LAB_SCEPSERVER_URL"

caps=$(curl -sS --max-time 10 -w '\n%{http_code}' "$LAB_SCEPSERVER_URL?operation=GetCACaps")
lab_assert_eq "${caps##*$'\n'}" 200 "GetCACaps status"
for cap in Renewal SHA-256 AES POSTPKIOperation SCEPStandard; do
        lab_assert_contains "$caps" "$cap" "GetCACaps"
done
lab_pass "scepserver answers GetCACaps ($(echo "${caps%$'\n'*}" | tr '\n' ' '))"

curl -sS --max-time 10 -D "$LAB_DIR/cacert.hdr" -o "$LAB_DIR/cacert.der" "$LAB_SCEPSERVER_URL?operation=GetCACert"
lab_assert_contains "$(cat "$LAB_DIR/cacert.hdr")" "application/x-x509-ca-cert" "GetCACert content type"
want=$(openssl x509 -in "$LAB_SCEPSERVER_CA" -noout -fingerprint -sha256)
got=$(openssl x509 -inform DER -in "$LAB_DIR/cacert.der" -noout -fingerprint -sha256)
lab_assert_eq "$got" "$want" "GetCACert certificate vs LAB_SCEPSERVER_CA"
lab_pass "scepserver answers GetCACert with LAB_SCEPSERVER_CA"

# It listens on all interfaces: only loopback exists here.
lab_assert_eq "$(ip -o link show | awk -F': ' '{print $2}')" lo "interfaces while scepserver runs"

lab_times
