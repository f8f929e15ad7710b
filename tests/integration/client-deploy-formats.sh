#!/usr/bin/env bash
# certbrokerctl deploy's formats end to end on the real lab, read by the real tools: a
# deploy.d-style file with Format=pem pkcs12 nssdb, run as root with User=alice and the PKCS#12
# passphrase in a credential ($CREDENTIALS_DIRECTORY, as systemd's LoadCredential= gives it;
# root-only, read before deploy becomes alice). Checked:
#   - refused before anything is written: a passphrase file others can read, an NSS database
#     directory others can write, a symbolic link as the NSS database, a planted cert9.db link;
#   - bundle.p12: `openssl pkcs12 -info` (PBES2/PBKDF2/AES-256-CBC, hmacWithSHA256, MAC
#     sha256), `keytool -list` (alias = Nickname=, a PrivateKeyEntry), its key matching
#     cert.pem, and a TLS handshake with a Java server that reads it as its keystore
#     (openssl s_client verifying the chain and the name);
#   - the NSS database: `certutil -L` (the nickname) and `certutil -K` (its key), and a TLS
#     handshake between NSS's own selfserv (serving the nickname from the database) and
#     vfyserv (verifying against the CA; without it, refused);
#   - renewal (certificates valid 60 s, RenewBefore=45s: a successor 15 s later): the running
#     deployment rewrites every format: a new bundle.p12 in the new generation with the new
#     certificate, and in the database only the new certificate and key under the nickname;
#   - killed after the formats are written but before live switches, the restart completes;
#     a live generation whose bundle.p12 and database were removed gets them again.
set -euo pipefail
: "${CB_SOURCE_ROOT:=$(cd "$(dirname "$0")/../.." && pwd)}"
. "$CB_SOURCE_ROOT/tests/integration/daemon-enter.sh" "$@"

broker_need_ctl
for tool in keytool java certutil selfserv vfyserv; do
        command -v "$tool" >/dev/null || lab_fail "$tool is not installed (tests/install-deps)"
done
A=$LAB_DIR/alice
mkdir -p "$A"
chown alice "$A"
chmod 0711 "$A"
alice_uid=$(getent passwd alice | cut -d: -f3)
alice_gid=$(getent passwd alice | cut -d: -f4)
NAME=fmt.a.example.test
echo "127.0.0.1 $NAME" >>/etc/hosts

broker_lab
printf 'RenewBefore=45s\nRenewJitter=0\n' >>"$CB_CONF/ca.d/corp.conf"
ndes ctl validity=60 >/dev/null
broker_start

as_alice() { (cd "$A" && lab_run_as alice "$@"); }
mkalice() { mkdir -m "$1" "$2"; chown alice "$2"; }

# The passphrase, as a root-only credential and (for the tools) a file of alice's.
PASS=$(head -c 18 /dev/urandom | base64)
CREDS=$LAB_DIR/creds
mkdir -m 0700 "$CREDS"
printf '%s\n' "$PASS" >"$CREDS/p12"
chmod 0400 "$CREDS/p12"
printf '%s\n' "$PASS" >"$A/pass"
chown alice "$A/pass"
chmod 0600 "$A/pass"

cat >"$A/reload.sh" <<'SH'
#!/bin/sh
echo "$CERTBROKER_REQUEST $CERTBROKER_PKCS12 $CERTBROKER_NSSDB $CERTBROKER_NICKNAME" >>"$(dirname "$0")/reload.log"
SH
chmod 0755 "$A/reload.sh"
chown alice "$A/reload.sh"

# ---- refused, named, nothing written ----
refuse() {      # WHAT EXPECTED-MESSAGE DEPLOY-ARGS...
        local what=$1 msg=$2 out rc=0
        shift 2
        mkalice 0700 "$A/refused"
        out=$(as_alice "$CTL" deploy --once --dir "$A/refused" --dns refused.a.example.test "$@" 2>&1) || rc=$?
        lab_assert_eq "$rc" 1 "deploy with $what: exit code ($out)"
        lab_assert_contains "$out" "$msg" "deploy with $what"
        lab_assert_not_contains "$out" "$PASS" "a message quoting the passphrase"
        lab_assert_eq "$(ls -A "$A/refused")" "" "files written into the deployment directory with $what"
        rm -rf "$A/refused"
}
cp -p "$A/pass" "$A/pass-open"
chmod 0644 "$A/pass-open"
refuse "a passphrase file others can read" "the passphrase file $A/pass-open can be read or written by its group or others (mode 0644)" \
        --format pkcs12 --passphrase-file "$A/pass-open"
mkalice 0700 "$A/nss-open"
chmod 0777 "$A/nss-open"
refuse "an NSS database directory others can write" "refusing the NSS database: the NSS database directory: '$A/nss-open' is writable by its group or others (mode 0777)" \
        --format nssdb --nssdb "$A/nss-open"
lab_assert_eq "$(ls -A "$A/nss-open")" "" "files written into the refused NSS database directory"
mkdir -m 0755 "$A/mallory-db"
ln -s "$A/mallory-db" "$A/nss-link"             # planted by root here: another user than alice
refuse "an NSS database that is a symbolic link" "'$A/nss-link' is a symbolic link" --format nssdb --nssdb "sql:$A/nss-link"
mkalice 0700 "$A/nss-planted"
ln -s /etc/passwd "$A/nss-planted/cert9.db"
refuse "a planted cert9.db link" "$A/nss-planted/cert9.db is a symbolic link" --format nssdb --nssdb "$A/nss-planted"
lab_assert_eq "$(ls -A "$A/nss-planted")" "cert9.db" "files written beside the planted link"
lab_pass "refused before anything is written, each named: a passphrase file mode 0644, an NSS database directory mode 0777, a symbolic link as the database, a planted cert9.db"

# ---- the first certificate, in every format ----
D=$A/web
mkalice 0750 "$D"
DB=$A/nssdb
mkalice 0700 "$DB"
as_alice certutil -N -d "sql:$DB" --empty-password     # as Firefox or `certutil -N` leave it
mkdir -p "$LAB_DIR/deploy.d"
cat >"$LAB_DIR/deploy.d/web.conf" <<CONF
User=alice
Dir=$D
Reload=$A/reload.sh
DNS=$NAME
Format=pem pkcs12 nssdb
PassphraseCredential=p12
NSSDB=sql:$DB
Nickname=web
CONF
out=$(CREDENTIALS_DIRECTORY=$CREDS "$CTL" deploy --once --config="$LAB_DIR/deploy.d/web.conf" 2>&1) ||
        lab_fail "deploy --once: $out"
lab_assert_contains "$out" "imported into the NSS database sql:$DB as 'web'" "deploy's note"
g1=$(readlink "$D/live")
id1=${g1#gen-}
lab_assert_eq "$(stat -c '%a %U' "$D/$g1/bundle.p12")" "600 alice" "bundle.p12 mode and owner"
lab_assert_eq "$(head -n1 "$A/reload.log")" "$id1 $D/live/bundle.p12 sql:$DB web" "the reload command's environment"

# openssl pkcs12 -info: the algorithms.
info=$(as_alice openssl pkcs12 -info -in "$D/$g1/bundle.p12" -passin "file:$A/pass" -noout 2>&1) ||
        lab_fail "openssl pkcs12 -info: $info"
lab_assert_contains "$info" "MAC: sha256" "the MAC"
lab_assert_contains "$info" "Shrouded Keybag: PBES2, PBKDF2, AES-256-CBC, Iteration 10000, PRF hmacWithSHA256" "the key's encryption"
lab_assert_contains "$info" "PKCS7 Encrypted data: PBES2, PBKDF2, AES-256-CBC, Iteration 10000, PRF hmacWithSHA256" "the certificates' encryption"
lab_assert_not_contains "$info" "RC2" "legacy algorithms"
lab_assert_not_contains "$info" "3DES" "legacy algorithms"
! as_alice openssl pkcs12 -info -in "$D/$g1/bundle.p12" -passin pass:wrong -noout >/dev/null 2>&1 ||
        lab_fail "openssl pkcs12 opened the bundle with a wrong passphrase"
k=$(as_alice openssl pkcs12 -in "$D/$g1/bundle.p12" -passin "file:$A/pass" -nocerts -nodes 2>/dev/null | openssl pkey -pubout | sha256sum)
c=$(openssl x509 -in "$D/$g1/cert.pem" -noout -pubkey | sha256sum)
lab_assert_eq "$k" "$c" "bundle.p12's key is cert.pem's"
lab_assert_eq "$(as_alice openssl pkcs12 -in "$D/$g1/bundle.p12" -passin "file:$A/pass" -nokeys -clcerts 2>/dev/null | openssl x509 -fingerprint -noout)" \
        "$(openssl x509 -in "$D/$g1/cert.pem" -fingerprint -noout)" "bundle.p12's certificate is cert.pem"

# keytool -list.
kl=$(as_alice keytool -J-XX:-UsePerfData -list -v -storetype PKCS12 -keystore "$D/$g1/bundle.p12" -storepass:file "$A/pass" 2>&1) ||
        lab_fail "keytool -list: $kl"
lab_assert_contains "$kl" "Alias name: web" "keytool: the alias"
lab_assert_contains "$kl" "Entry type: PrivateKeyEntry" "keytool: a key entry"
lab_assert_contains "$kl" "Your keystore contains 1 entry" "keytool: entries"
lab_assert_contains "$kl" "CN=$NAME" "keytool: the certificate"
! as_alice keytool -J-XX:-UsePerfData -list -storetype PKCS12 -keystore "$D/$g1/bundle.p12" -storepass wrongpass >/dev/null 2>&1 ||
        lab_fail "keytool opened the bundle with a wrong passphrase"

# TLS: a Java server with bundle.p12 as its keystore; openssl s_client verifies chain and name.
cat >"$A/P12Server.java" <<'JAVA'
import java.io.*;
import java.net.InetAddress;
import java.nio.file.*;
import java.security.KeyStore;
import javax.net.ssl.*;

public class P12Server {
    public static void main(String[] a) throws Exception {
        char[] pw = Files.readString(Path.of(a[1])).strip().toCharArray();
        KeyStore ks = KeyStore.getInstance("PKCS12");
        try (InputStream in = new FileInputStream(a[0])) { ks.load(in, pw); }
        KeyManagerFactory kmf = KeyManagerFactory.getInstance("PKIX");
        kmf.init(ks, pw);
        SSLContext ctx = SSLContext.getInstance("TLS");
        ctx.init(kmf.getKeyManagers(), null, null);
        try (SSLServerSocket s = (SSLServerSocket) ctx.getServerSocketFactory().createServerSocket(
                Integer.parseInt(a[2]), 5, InetAddress.getLoopbackAddress())) {
            Files.writeString(Path.of(a[3]), "listening\n");
            try (SSLSocket c = (SSLSocket) s.accept()) {
                c.startHandshake();
                OutputStream o = c.getOutputStream();
                o.write(("java keystore alias " + ks.aliases().nextElement() + "\n").getBytes());
                o.flush();
            }
        }
    }
}
JAVA
chown alice "$A/P12Server.java"
lab_start javasrv setpriv --reuid="$alice_uid" --regid="$alice_gid" --init-groups --inh-caps=-all -- \
        java -XX:-UsePerfData "$A/P12Server.java" "$D/$g1/bundle.p12" "$A/pass" 8443 "$A/java.ready"
lab_wait_for 60 "the Java server" test -s "$A/java.ready"
tls=$(openssl s_client -connect 127.0.0.1:8443 -servername "$NAME" -verify_hostname "$NAME" -CAfile "$D/$g1/chain.pem" \
        -verify_return_error -ign_eof </dev/null 2>&1) || lab_fail "s_client to the Java server: $tls"
lab_assert_contains "$tls" "Verify return code: 0 (ok)" "the Java server's chain and name"
lab_assert_contains "$tls" "java keystore alias web" "the Java server's answer"
lab_wait_for 20 "the Java server's exit after its one connection" bash -c "! kill -0 $(lab_pid javasrv)"
lab_stop javasrv

# The NSS database: certutil -L / -K, then selfserv (the nickname from the database) and vfyserv.
cl=$(as_alice certutil -L -d "sql:$DB")
lab_assert_eq "$(grep -c '^web ' <<<"$cl")" 1 "certutil -L: certificates named web ($cl)"
ck=$(as_alice certutil -K -d "sql:$DB")
lab_assert_eq "$(grep -c ' web$' <<<"$ck")" 1 "certutil -K: keys named web ($ck)"
lab_assert_eq "$(grep -c '^<' <<<"$ck")" 1 "certutil -K: keys in the database ($ck)"
lab_assert_eq "$(as_alice certutil -L -d "sql:$DB" -n web -a | openssl x509 -fingerprint -noout)" \
        "$(openssl x509 -in "$D/$g1/cert.pem" -fingerprint -noout)" "certutil -L -n web is cert.pem"
CDB=$A/clientdb
mkalice 0700 "$CDB"
as_alice certutil -N -d "sql:$CDB" --empty-password
n=0
csplit -s -z -f "$A/ca-" "$D/$g1/chain.pem" '/-----BEGIN CERTIFICATE-----/' '{*}'
for f in "$A"/ca-*; do
        n=$((n + 1))
        chown alice "$f"
        as_alice certutil -A -d "sql:$CDB" -n "ca$n" -t "C,," -i "$f"
done
# nss_handshake WHAT [CLIENTDB]: NSS's selfserv serves 'web' from the database; NSS's vfyserv
# (tstclnt does not exit on its own) connects with CLIENTDB and verifies the chain against it.
nss_handshake() {
        local db=${2:-$CDB} out rc=0
        lab_start selfserv setpriv --reuid="$alice_uid" --regid="$alice_gid" --init-groups --inh-caps=-all -- \
                selfserv -d "sql:$DB" -n web -p 8444
        lab_wait_for 30 "selfserv listening" bash -c "ss -ltn | grep -q ':8444 '"
        out=$(as_alice timeout 20 vfyserv -d "sql:$db" -p 8444 "$NAME" </dev/null 2>&1) || rc=$?
        lab_stop selfserv
        echo "$rc"
        echo "$out"
}
out=$(nss_handshake "the first certificate")
lab_assert_eq "$(head -n1 <<<"$out")" 0 "vfyserv to selfserv: exit code ($out)"
lab_assert_contains "$out" "Handshake Complete: SERVER CONFIGURED CORRECTLY" "vfyserv to selfserv"
lab_assert_contains "$out" "CN=$NAME" "vfyserv: the server's certificate"
# The same client without the CA: the verification is real.
mkalice 0700 "$A/noca"
as_alice certutil -N -d "sql:$A/noca" --empty-password
out=$(nss_handshake "no CA" "$A/noca")
lab_assert_not_contains "$out" "SERVER CONFIGURED CORRECTLY" "vfyserv without the CA"
lab_assert_contains "$out" "PROBLEM WITH THE CERT CHAIN" "vfyserv without the CA"
lab_pass "first certificate: bundle.p12 (PBES2/AES-256-CBC, PBKDF2-HMAC-SHA256, MAC SHA-256) read by openssl pkcs12, keytool -list and a Java TLS server; the NSS database read by certutil -L/-K and NSS's selfserv in a handshake with vfyserv (verifying; refused without the CA)"

# ---- renewal: the running deployment rewrites every format ----
lab_start deploy env CREDENTIALS_DIRECTORY="$CREDS" "$CTL" deploy --config="$LAB_DIR/deploy.d/web.conf"
lab_wait_for 60 "the successor deployed" bash -c "[ \$(readlink '$D/live') != '$g1' ] && grep -q 'removed 1 previous' '$LAB_DIR/deploy.log'"
lab_stop deploy
g2=$(readlink "$D/live")
id2=${g2#gen-}
lab_assert_eq "$(tail -n1 "$A/reload.log")" "$id2 $D/live/bundle.p12 sql:$DB web" "the reload for the successor"
lab_assert_eq "$(as_alice openssl pkcs12 -in "$D/$g2/bundle.p12" -passin "file:$A/pass" -nokeys -clcerts 2>/dev/null | openssl x509 -fingerprint -noout)" \
        "$(openssl x509 -in "$D/$g2/cert.pem" -fingerprint -noout)" "the new bundle.p12's certificate is the new cert.pem"
k=$(as_alice openssl pkcs12 -in "$D/$g2/bundle.p12" -passin "file:$A/pass" -nocerts -nodes 2>/dev/null | openssl pkey -pubout | sha256sum)
c=$(openssl x509 -in "$D/$g2/cert.pem" -noout -pubkey | sha256sum)
lab_assert_eq "$k" "$c" "the new bundle.p12's key is the new cert.pem's"
[ "$(openssl x509 -in "$D/$g1/cert.pem" -fingerprint -noout 2>/dev/null)" != "$(openssl x509 -in "$D/$g2/cert.pem" -fingerprint -noout)" ] ||
        lab_fail "the successor has the same certificate"
ck=$(as_alice certutil -K -d "sql:$DB")
lab_assert_eq "$(grep -c '^<' <<<"$ck")" 1 "certutil -K after the renewal: keys in the database ($ck)"
lab_assert_eq "$(as_alice certutil -L -d "sql:$DB" | grep -c '^web ')" 1 "certutil -L after the renewal: certificates named web"
lab_assert_eq "$(as_alice certutil -L -d "sql:$DB" -n web -a | openssl x509 -fingerprint -noout)" \
        "$(openssl x509 -in "$D/$g2/cert.pem" -fingerprint -noout)" "certutil -L -n web is the new cert.pem"
out=$(nss_handshake "the successor")
lab_assert_eq "$(head -n1 <<<"$out")" 0 "vfyserv to selfserv with the successor: exit code ($out)"
lab_assert_contains "$out" "Handshake Complete: SERVER CONFIGURED CORRECTLY" "vfyserv to selfserv with the successor"
lab_pass "renewal: request $id1 -> $id2, the running deployment wrote a new bundle.p12 (its key and certificate the new ones) and left in the NSS database only the new certificate and key (certutil -L/-K, selfserv/vfyserv)"

# ---- killed after the formats were written, before live switched; a format added later ----
# (CERTBROKER_TEST_KILL_AT=deploy-formats-written, on the command line with --passphrase-file.)
K=$A/crash
mkalice 0750 "$K"
KDB=$A/crash-nssdb
mkalice 0700 "$KDB"
kargs=(deploy --once --dir "$K" --dns crash-fmt.a.example.test --format pkcs12,nssdb --passphrase-file "$A/pass"
       --nssdb "$KDB" --nickname crash)
rc=0
out=$(as_alice env CERTBROKER_TEST_KILL_AT=deploy-formats-written "$CTL" "${kargs[@]}" 2>&1) || rc=$?
lab_assert_eq "$rc" 137 "deploy killed at deploy-formats-written ($out)"
[ ! -e "$K/live" ] || lab_fail "live switched before the kill"
lab_assert_eq "$(as_alice certutil -L -d "sql:$KDB" | grep -c '^crash ')" 1 "killed: the new certificate already in the database"
out=$(as_alice "$CTL" "${kargs[@]}" 2>&1) || lab_fail "deploy after the kill: $out"
gk=$(readlink "$K/live")
lab_assert_eq "$(as_alice openssl pkcs12 -in "$K/$gk/bundle.p12" -passin "file:$A/pass" -nokeys -clcerts 2>/dev/null | openssl x509 -fingerprint -noout)" \
        "$(openssl x509 -in "$K/$gk/cert.pem" -fingerprint -noout)" "after the restart: bundle.p12 is the live certificate"
lab_assert_eq "$(as_alice certutil -L -d "sql:$KDB" -n crash -a | openssl x509 -fingerprint -noout)" \
        "$(openssl x509 -in "$K/$gk/cert.pem" -fingerprint -noout)" "after the restart: the database's 'crash' is the live certificate"
lab_assert_eq "$(as_alice certutil -K -d "sql:$KDB" | grep -c '^<')" 1 "after the restart: keys in the database"
# The live generation without bundle.p12 and the database emptied (a format added, a database
# replaced): the next run writes them for the same certificate, nothing enrolled.
rm "$K/$gk/bundle.p12"
rm "$KDB"/*
out=$(as_alice "$CTL" "${kargs[@]}" 2>&1) || lab_fail "deploy after removing the formats: $out"
lab_assert_eq "$(readlink "$K/live")" "$gk" "the live generation after the refresh"
lab_assert_contains "$out" "wrote $K/$gk/bundle.p12" "deploy's note of the refresh"
lab_assert_eq "$(as_alice openssl pkcs12 -in "$K/$gk/bundle.p12" -passin "file:$A/pass" -nokeys -clcerts 2>/dev/null | openssl x509 -fingerprint -noout)" \
        "$(openssl x509 -in "$K/$gk/cert.pem" -fingerprint -noout)" "the refreshed bundle.p12"
lab_assert_eq "$(as_alice certutil -L -d "sql:$KDB" -n crash -a | openssl x509 -fingerprint -noout)" \
        "$(openssl x509 -in "$K/$gk/cert.pem" -fingerprint -noout)" "the refilled database"
lab_pass "killed after the formats were written, before live switched: the restart completes with one certificate in the database; a live generation missing its formats gets them on the next run"
