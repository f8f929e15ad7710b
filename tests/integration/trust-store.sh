#!/usr/bin/env bash
# The CA's certificates in the system trust store (certbrokerctl trust, InstallTrust=): Debian's
# /usr/local/share/ca-certificates and update-ca-certificates, on tmpfs copies in this test's
# mount namespace (the host's store is untouched). After install, openssl verify (default store)
# and curl (system bundle) trust a server certificate the broker got; after remove they do not.
# A CA certificate the broker cannot authenticate (a substituted one, against CAFingerprint=, or
# before the admin page's thumbprint vouched for it) is refused and named. Removed CAs take their
# anchors with them; the broker's trust-anchors stamp tells certbroker-trust.path of changes.
set -euo pipefail
: "${CB_SOURCE_ROOT:=$(cd "$(dirname "$0")/../.." && pwd)}"
. "$CB_SOURCE_ROOT/tests/integration/daemon-enter.sh" "$@"

broker_need_ctl
command -v update-ca-certificates >/dev/null || lab_fail "update-ca-certificates missing (ca-certificates; tests/install-deps)"
STORE=/usr/local/share/ca-certificates
BUNDLE=/etc/ssl/certs/ca-certificates.crt

# ---- a private copy of the system store (this namespace only) ----
# The copies go on tmpfs over the originals; update-ca-certificates' hooks (ca-certificates-java
# would run dpkg) are hidden behind an empty directory.
for d in "$STORE" /etc/ssl/certs; do
        copy=$LAB_DIR/store-copy${d//\//_}
        mkdir -p "$copy"
        cp -a "$d/." "$copy/"
        mount -t tmpfs -o mode=0755 tmpfs "$d"
        cp -a "$copy/." "$d/"
done
mkdir -p "$LAB_DIR/no-hooks"
mount --bind "$LAB_DIR/no-hooks" /etc/ca-certificates/update.d
# Only the local certificates go into this bundle (the distribution's ~140 would make each run
# of update-ca-certificates take seconds on a loaded machine; they change nothing here).
printf '# this test: only the certificates of %s\n' "$STORE" >"$LAB_DIR/ca-certificates.conf"
mount --bind "$LAB_DIR/ca-certificates.conf" /etc/ca-certificates.conf
for d in "$STORE" /etc/ssl/certs; do
        lab_assert_eq "$(findmnt -n -o FSTYPE --mountpoint "$d")" tmpfs "$d in this namespace"
done
[ -s "$BUNDLE" ] || lab_fail "$BUNDLE is missing from the copy"

broker_lab
mkdir -p -m 0700 "$LAB_DIR/run"
RUNTIME_DIRECTORY=$LAB_DIR/run
export RUNTIME_DIRECTORY
broker_start
STAMP=$LAB_DIR/run/trust-anchors
lab_wait_for 20 "the broker's trust-anchors stamp" test -s "$STAMP"
lab_assert_contains "$(cat "$STAMP")" "corp InstallTrust=no" "the stamp names the CA and its setting"

ca_fp=$(openssl x509 -in "$NDES_STATE/ca.crt" -noout -fingerprint -sha256 | sed 's/.*=//; s/://g' | tr A-F a-f)
anchor=$STORE/certbroker-corp.$ca_fp.crt

# ctl ARGS...: certbrokerctl as root; OUT, ERR, RC.
ctl() {
        set +e
        OUT=$("$CTL" "$@" 2>"$LAB_DIR/ctl.err")
        RC=$?
        set -e
        ERR=$(cat "$LAB_DIR/ctl.err")
}

# ---- before any enrollment: the CA certificate is not authenticated (no CAFingerprint=, the
# admin page not seen yet): refused and named, nothing written ----
ctl trust install corp
[ "$RC" != 0 ] || lab_fail "trust install of an unauthenticated CA certificate succeeded: $OUT"
lab_assert_contains "$ERR" "refusing the certificate sha256:$ca_fp" "the refusal names the certificate"
lab_assert_contains "$ERR" "CAFingerprint=sha256:$ca_fp" "the refusal says how to pin it"
[ ! -e "$anchor" ] || lab_fail "an unauthenticated CA certificate was written to $anchor"
lab_pass "trust install: a CA certificate nothing authenticated is refused and named, nothing written"

# ---- a server certificate from the broker; not trusted by the system store yet ----
cd "$LAB_DIR"
ctl enroll --ca corp --dns web.a.example.test --key-out "$LAB_DIR/web.key" --cert-out "$LAB_DIR/web.crt" --timeout 60
[ "$RC" = 0 ] || lab_fail "enroll: rc $RC: $ERR"
if openssl verify "$LAB_DIR/web.crt" >/dev/null 2>&1; then
        lab_fail "the broker's certificate verifies against the system store before trust install"
fi
lab_wait_for 10 "the stamp to say the CA certificate is authenticated" \
        grep -q "corp InstallTrust=no sha256:$ca_fp authenticated" "$STAMP"

PORT=4433
lab_start s_server openssl s_server -quiet -accept "127.0.0.1:$PORT" -cert "$LAB_DIR/web.crt" -key "$LAB_DIR/web.key" -www
lab_wait_for 10 "openssl s_server" bash -c "echo | openssl s_client -connect 127.0.0.1:$PORT >/dev/null 2>&1"
web_curl() {
        curl -sS --max-time 10 --resolve "web.a.example.test:$PORT:127.0.0.1" -o /dev/null -w '%{http_code}' \
                "https://web.a.example.test:$PORT/"
}
if code=$(web_curl 2>"$LAB_DIR/curl.err"); then
        lab_fail "curl trusted the broker's certificate before trust install (HTTP $code)"
fi
lab_assert_contains "$(cat "$LAB_DIR/curl.err")" "certificate" "curl's refusal before install"

# ---- install: the admin page's thumbprint vouched for it at the enrollment ----
ctl trust install corp
[ "$RC" = 0 ] || lab_fail "trust install corp: rc $RC: $OUT $ERR"
lab_assert_contains "$OUT" "installed $anchor" "trust install says what it wrote"
lab_assert_eq "$(stat -c '%a %U' "$anchor")" "644 root" "the anchor file"
lab_assert_eq "$(openssl x509 -in "$anchor" -noout -fingerprint -sha256 | sed 's/.*=//; s/://g' | tr A-F a-f)" \
        "$ca_fp" "the anchor is the CA's certificate"
out=$(openssl verify "$LAB_DIR/web.crt" 2>&1) || lab_fail "openssl verify (default store) after install: $out"
lab_assert_eq "$(web_curl)" 200 "curl with the system bundle after install"
ctl trust status corp
lab_assert_contains "$OUT" "installed sha256:$ca_fp" "trust status lists the anchor"
lab_assert_contains "$OUT" "CN=EXAMPLE-NDES-CA" "trust status names its subject"
lab_pass "trust install: openssl verify and curl trust the broker's server certificate"

# A second install changes nothing (and runs no update).
ctl trust install corp
[ "$RC" = 0 ] || lab_fail "second trust install: rc $RC: $ERR"
lab_assert_not_contains "$OUT" "installed" "a second install writes nothing"

# ---- remove ----
ctl trust remove corp
[ "$RC" = 0 ] || lab_fail "trust remove corp: rc $RC: $OUT $ERR"
lab_assert_contains "$OUT" "removed $anchor" "trust remove says what it removed"
[ ! -e "$anchor" ] || lab_fail "$anchor is still there after trust remove"
if openssl verify "$LAB_DIR/web.crt" >/dev/null 2>&1; then
        lab_fail "openssl verify still trusts the broker's certificate after trust remove"
fi
if code=$(web_curl 2>/dev/null); then
        lab_fail "curl still trusts the broker's certificate after trust remove (HTTP $code)"
fi
lab_pass "trust remove: openssl verify and curl no longer trust it"

# ---- InstallTrust=yes: sync installs; remove is refused while it is set ----
echo "InstallTrust=yes" >>"$CB_CONF/ca.d/corp.conf"
busctl --system call "$CB_BUS" "$CB_PATH" "$CB_BUS.Manager" Reload
lab_wait_for 10 "the stamp to show InstallTrust=yes" grep -q "corp InstallTrust=yes" "$STAMP"
ctl trust sync
[ "$RC" = 0 ] || lab_fail "trust sync: rc $RC: $OUT $ERR"
[ -e "$anchor" ] || lab_fail "trust sync did not install the anchor of a CA with InstallTrust=yes: $OUT"
out=$(openssl verify "$LAB_DIR/web.crt" 2>&1) || lab_fail "openssl verify after sync: $out"
ctl trust remove corp
[ "$RC" != 0 ] || lab_fail "trust remove of an InstallTrust=yes CA succeeded"
lab_assert_contains "$ERR" "InstallTrust=yes" "the refusal names the setting"
[ -e "$anchor" ] || lab_fail "a refused remove removed the anchor"
lab_pass "InstallTrust=yes: trust sync installs the CA's certificate; trust remove is refused while it is set"

# ---- the broker's stamp changing while a sync runs: --stamp syncs again ----
# (what certbroker-trust.service passes; the path unit starts nothing while the service runs).
# A copy of the stamp, changed by the update command of the first round only.
cp "$STAMP" "$LAB_DIR/stamp-copy"
cat >"$LAB_DIR/update-and-touch" <<SCRIPT
#!/bin/sh
echo run >>"$LAB_DIR/update-runs"
[ -e "$LAB_DIR/stamp-touched" ] || { echo "changed meanwhile" >>"$LAB_DIR/stamp-copy"; touch "$LAB_DIR/stamp-touched"; }
exec /usr/sbin/update-ca-certificates
SCRIPT
chmod 0755 "$LAB_DIR/update-and-touch"
rm -f "$anchor"         # so that the sync has something to do and runs the update command
ctl trust sync --stamp "$LAB_DIR/stamp-copy" --update-command "$LAB_DIR/update-and-touch"
[ "$RC" = 0 ] || lab_fail "trust sync --stamp: rc $RC: $OUT $ERR"
lab_assert_contains "$OUT" "changed during the sync" "trust sync --stamp when the stamp changed meanwhile"
lab_assert_eq "$(grep -c 'syncing again' <<<"$OUT")" 1 "rounds after the first"
[ -e "$anchor" ] || lab_fail "trust sync --stamp did not put the anchor back"
lab_assert_eq "$(wc -l <"$LAB_DIR/update-runs")" 1 "update runs (the second round changed nothing)"
ctl trust status --stamp "$LAB_DIR/stamp-copy"
[ "$RC" = 2 ] || lab_fail "--stamp with status: rc $RC: $OUT $ERR"
lab_assert_contains "$ERR" "only with 'trust sync'" "--stamp with another verb"
lab_pass "the broker's stamp changing during trust sync --stamp: synced again, once"

# ---- a substituted CA certificate: CAFingerprint= pins another one ----
other_fp=$(printf 'substituted' | sha256sum | cut -c1-64)
sed -i "s/^InstallTrust=yes$/InstallTrust=yes\nCAFingerprint=sha256:$other_fp/" "$CB_CONF/ca.d/corp.conf"
busctl --system call "$CB_BUS" "$CB_PATH" "$CB_BUS.Manager" Reload
ctl trust install corp
[ "$RC" != 0 ] || lab_fail "trust install accepted a CA certificate that is not the pinned one: $OUT"
lab_assert_contains "$ERR" "sha256:$ca_fp" "the refusal names the certificate served"
lab_assert_contains "$ERR" "sha256:$other_fp" "the refusal names the pinned fingerprint"
[ "$(ls "$STORE" | grep -c '^certbroker-')" = 1 ] || lab_fail "a refused install changed the store: $(ls "$STORE")"
lab_pass "a CA certificate other than the pinned one is refused and named; the store keeps what it had"

# ---- pinned right: installs; the CA removed from the configuration takes its anchor ----
sed -i "s/^CAFingerprint=.*/CAFingerprint=sha256:$ca_fp/" "$CB_CONF/ca.d/corp.conf"
busctl --system call "$CB_BUS" "$CB_PATH" "$CB_BUS.Manager" Reload
ctl trust sync
[ "$RC" = 0 ] || lab_fail "trust sync with the right CAFingerprint=: rc $RC: $OUT $ERR"
mv "$CB_CONF/ca.d/corp.conf" "$LAB_DIR/corp.conf.removed"
cat >"$CB_CONF/ca.d/other.conf" <<CONF
[CA]
URL=https://ndes.example.test/certsrv/mscep/mscep.dll
TrustAnchors=$LAB_TLS_ROOT
CONF
busctl --system call "$CB_BUS" "$CB_PATH" "$CB_BUS.Manager" Reload
lab_wait_for 10 "the stamp to drop the removed CA" bash -c "! grep -q '^corp ' '$STAMP'"
ctl trust sync
[ "$RC" = 0 ] || lab_fail "trust sync after the CA was removed: rc $RC: $OUT $ERR"
lab_assert_contains "$OUT" "the CA is no longer configured" "sync says why it removed the anchor"
[ ! -e "$anchor" ] || lab_fail "the anchor of a CA removed from the configuration is still there"
if openssl verify "$LAB_DIR/web.crt" >/dev/null 2>&1; then
        lab_fail "openssl verify trusts the removed CA's certificate"
fi
lab_pass "a CA removed from the configuration takes its anchor with it (Reload, trust sync)"

# ---- an anchor no longer served stays until it expires, then goes ----
mv "$LAB_DIR/corp.conf.removed" "$CB_CONF/ca.d/corp.conf"
busctl --system call "$CB_BUS" "$CB_PATH" "$CB_BUS.Manager" Reload
ctl trust sync
[ -e "$anchor" ] || lab_fail "trust sync did not install the anchor again: $OUT $ERR"
# An old CA certificate of corp, expired: made with openssl ca and dates in the past.
old=$LAB_DIR/old-ca
mkdir -p "$old"
: >"$old/index.txt"
printf '[ca]\ndefault_ca=c\n[c]\ndatabase=%s/index.txt\nnew_certs_dir=%s\nserial=%s/serial\ndefault_md=sha256\npolicy=p\ncopy_extensions=copy\n[p]\ncommonName=supplied\n' \
        "$old" "$old" "$old" >"$old/ca.cnf"
echo 01 >"$old/serial"
openssl req -new -newkey rsa:2048 -nodes -keyout "$old/key.pem" -subj "/CN=Old corp CA" -out "$old/req.pem" 2>/dev/null
openssl ca -batch -config "$old/ca.cnf" -selfsign -keyfile "$old/key.pem" -in "$old/req.pem" -out "$old/cert.pem" \
        -startdate 20200101000000Z -enddate 20200201000000Z -notext 2>/dev/null
old_fp=$(openssl x509 -in "$old/cert.pem" -noout -fingerprint -sha256 | sed 's/.*=//; s/://g' | tr A-F a-f)
cp "$old/cert.pem" "$STORE/certbroker-corp.$old_fp.crt"
ctl trust sync
[ "$RC" = 0 ] || lab_fail "trust sync with old anchors: rc $RC: $OUT $ERR"
[ ! -e "$STORE/certbroker-corp.$old_fp.crt" ] || lab_fail "an expired anchor no longer served was kept"
lab_assert_contains "$OUT" "removed $STORE/certbroker-corp.$old_fp.crt (no longer served by the CA, expired)" "sync names it"
[ -e "$anchor" ] || lab_fail "the served anchor went"
lab_pass "an expired anchor the CA no longer serves goes"

# ---- the CA renewed (a new key, the same name): the new certificate is installed once the
# admin page vouched for it; the previous one stays while it is valid ----
sed -i '/^CAFingerprint=/d' "$CB_CONF/ca.d/corp.conf"
busctl --system call "$CB_BUS" "$CB_PATH" "$CB_BUS.Manager" Reload
ndes init >/dev/null || lab_fail "ndes init (the CA renewed)"
new_fp=$(openssl x509 -in "$NDES_STATE/ca.crt" -noout -fingerprint -sha256 | sed 's/.*=//; s/://g' | tr A-F a-f)
[ "$new_fp" != "$ca_fp" ] || lab_fail "the emulator's CA did not change"
ctl enroll --ca corp --dns new.a.example.test --key-out "$LAB_DIR/new.key" --cert-out "$LAB_DIR/new.crt" --timeout 60
[ "$RC" = 0 ] || lab_fail "enroll from the renewed CA: rc $RC: $ERR"
lab_wait_for 10 "the stamp to show the renewed CA certificate authenticated" \
        grep -q "corp InstallTrust=yes sha256:$new_fp authenticated" "$STAMP"
ctl trust sync
[ "$RC" = 0 ] || lab_fail "trust sync after the CA renewal: rc $RC: $OUT $ERR"
lab_assert_contains "$OUT" "installed $STORE/certbroker-corp.$new_fp.crt" "the renewed CA certificate installed"
lab_assert_contains "$OUT" "$anchor is no longer served by the CA; it stays until it expires" "the previous one kept"
out=$(openssl verify "$LAB_DIR/new.crt" 2>&1) || lab_fail "openssl verify of a certificate from the renewed CA: $out"
out=$(openssl verify "$LAB_DIR/web.crt" 2>&1) || lab_fail "openssl verify of a certificate from the previous CA: $out"
lab_pass "a renewed CA: its new certificate installed, the previous one kept while valid; both verify"

# ---- bad input ----
ctl trust install 'x/../y'
[ "$RC" = 2 ] || lab_fail "trust install x/../y: rc $RC"
ctl trust install nosuch
[ "$RC" = 8 ] || lab_fail "trust install of an unknown CA: rc $RC: $ERR"
lab_assert_contains "$ERR" "nosuch" "the unknown CA is named"
mkdir -m 0777 "$LAB_DIR/open-store"
ctl trust sync --directory "$LAB_DIR/open-store"
[ "$RC" = 1 ] || lab_fail "trust sync into a world-writable directory: rc $RC"
lab_assert_contains "$ERR" "$LAB_DIR/open-store is not a directory owned by root and writable only by root" "the directory is named"
[ -z "$(ls -A "$LAB_DIR/open-store")" ] || lab_fail "something was written to the refused directory"
ctl trust status --directory "$LAB_DIR/missing"
[ "$RC" = 0 ] || lab_fail "trust status without a store: rc $RC: $ERR"
lab_assert_contains "$OUT" "no trust anchors installed in $LAB_DIR/missing" "trust status without a store"
ctl trust sync --directory "$LAB_DIR/missing"
[ "$RC" = 1 ] || lab_fail "trust sync into a missing store (InstallTrust=yes): rc $RC"
lab_assert_contains "$ERR" "cannot write $LAB_DIR/missing/certbroker-corp." "the missing store is named"
[ ! -e "$LAB_DIR/missing" ] || lab_fail "trust sync created the missing store"
out=$(lab_run_as alice "$CTL" trust status 2>&1) && lab_fail "trust status as alice succeeded: $out"
lab_assert_contains "$out" "only root" "trust as a user"
lab_pass "bad input: a CA name with a slash, an unknown CA, a world-writable or missing store, a non-root caller"

broker_stop
lab_stop s_server
