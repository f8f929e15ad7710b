#!/usr/bin/env bash
# certbroker as deployed: the Debian package, installed with apt into a system that boots
# Debian's systemd 252 as PID 1 in systemd-nspawn, and used the way an administrator and a
# tenant would. The lab's KDC and Apache + NDES emulator run on loopback in this test's
# network namespace, which the container shares (only lo).
#
# The container's root is an overlay of the host's root filesystem with a tmpfs on top (the
# host's files are never written); /etc/systemd/system is a fresh directory, so none of the
# host's enabled services (apache2, krb5-kdc, ...) start inside. The checks themselves run
# inside, in system-boot-inside.sh, as a oneshot unit that ends the container. Among them:
# certbroker-deploy@web-a.service as shipped, for the unprivileged user www-a, deploys a
# certificate, reloads, and deploys and reloads its renewal by itself; certbroker-trust.path, as
# the package enables and starts it, has certbroker-trust.service put the CA of a CA with
# InstallTrust=yes into the system trust store (openssl verify then accepts the broker's
# certificates) and take it out again when the CA goes; certbroker-deploy-user@wifi, enabled by
# a user in her own systemd --user, deploys her certificate (Identity=self) into her home.
#
# CB_SYSTEM_BOOT_DEBS=DIR: use the .deb files in DIR instead of building them here.
set -euo pipefail
: "${CB_SOURCE_ROOT:=$(cd "$(dirname "$0")/../.." && pwd)}"
. "$CB_SOURCE_ROOT/tests/lab/lab.sh"

for tool in systemd-nspawn dpkg-buildpackage dh; do
        if ! command -v "$tool" >/dev/null; then
                echo "SKIP: $tool not found (tests/install-deps installs systemd-container, dpkg-dev, debhelper)"
                exit 77
        fi
done
grep -qw overlay /proc/filesystems || modprobe overlay 2>/dev/null || true
if ! grep -qw overlay /proc/filesystems; then
        echo "SKIP: the kernel has no overlayfs (the container's root is an overlay of the host's)"
        exit 77
fi

lab_enter "$@"
. "$CB_SOURCE_ROOT/tests/integration/ndes-common.sh"

t_start=$(_lab_now_ms)
ndes_setup
kdestroy -A 2>/dev/null || true

# ---- the package ----
debs=$LAB_DIR/debs
mkdir -p "$debs"
if [ -n "${CB_SYSTEM_BOOT_DEBS:-}" ]; then
        cp "$CB_SYSTEM_BOOT_DEBS"/certbroker_*.deb "$CB_SYSTEM_BOOT_DEBS"/libcertbroker1_*.deb "$debs/"
        lab_pass "packages from $CB_SYSTEM_BOOT_DEBS"
else
        t0=$(_lab_now_ms)
        mkdir -p "$LAB_DIR/pkg/src"
        tar -C "$CB_SOURCE_ROOT" --exclude=./.git --exclude='./build*' --exclude='./obj-*' \
                --exclude=./debian/tmp --exclude=./debian/.debhelper -cf - . | tar -C "$LAB_DIR/pkg/src" -xf -
        if ! (cd "$LAB_DIR/pkg/src" &&
              DEB_BUILD_OPTIONS="nocheck parallel=1" nice -n 10 dpkg-buildpackage -b -us -uc -Pnocheck) \
                >"$LAB_DIR/dpkg-buildpackage.log" 2>&1; then
                tail -n 40 "$LAB_DIR/dpkg-buildpackage.log" >&2
                lab_fail "dpkg-buildpackage -b -us -uc failed (log above)"
        fi
        cp "$LAB_DIR"/pkg/certbroker_*.deb "$LAB_DIR"/pkg/libcertbroker1_*.deb "$debs/"
        lab_pass "dpkg-buildpackage -b built $(cd "$debs" && echo *.deb) in $(( $(_lab_now_ms) - t0 )) ms"
fi

# ---- the container ----
c=$LAB_DIR/container
mkdir -p "$c/ov" "$c/root" "$c/units" "$c/lab" "$c/out" "$c/etc"
mount -t tmpfs -o mode=0755 cb-boot-upper "$c/ov"
mkdir "$c/ov/upper" "$c/ov/work"
mount -t overlay cb-boot-root -o "lowerdir=/,upperdir=$c/ov/upper,workdir=$c/ov/work" "$c/root" ||
        lab_fail "cannot mount the container's overlay root"
lab_on_exit "umount -l '$c/root' 2>/dev/null; umount -l '$c/ov' 2>/dev/null"
# A container image's /usr/sbin/policy-rc.d ("exit 101": Docker's, so that apt-get install in an
# image build starts nothing) is no part of a Debian system: with it, deb-systemd-invoke would
# not start the units the package starts on installation. Hidden in the overlay only.
rm -f "$c/root/usr/sbin/policy-rc.d"

cp "$LAB_DIR/etc/hosts" "$LAB_DIR/etc/resolv.conf" "$c/etc/"
# For gss-proxy (Debian's gssproxy.service reads the system krb5.conf).
cat >"$c/etc/krb5.conf" <<EOF
[libdefaults]
    default_realm = $LAB_REALM
    dns_lookup_kdc = false
    dns_lookup_realm = false
    dns_canonicalize_hostname = false
    rdns = false
    udp_preference_limit = 1
[realms]
    $LAB_REALM = {
        kdc = 127.0.0.1:$LAB_KDC_PORT
    }
[domain_realm]
    .example.test = $LAB_REALM
EOF
echo "cb-boot-$$" >"$c/etc/hostname"
chmod 0644 "$c"/etc/*

cp "$debs"/*.deb "$c/lab/"
install -m 0755 "$CB_SOURCE_ROOT/tests/integration/system-boot-inside.sh" "$c/lab/inside.sh"
install -m 0755 "$NDES_EMULATOR" "$c/lab/ndes-emulator"
install -m 0644 "$LAB_TLS_ROOT" "$c/lab/ndes-root.pem"
install -m 0600 "$LAB_SVC_KEYTAB" "$c/lab/svc-scep.keytab"
cat >"$c/lab/env" <<EOF
NDES_STATE=/ndes-state
LAB_KDC_PORT=$LAB_KDC_PORT
LAB_REALM=$LAB_REALM
EOF

cat >"$c/units/system-boot-test.service" <<'EOF'
[Unit]
Description=certbroker system-boot checks
After=basic.target dbus.socket
SuccessAction=exit
FailureAction=exit

[Service]
Type=oneshot
ExecStart=/bin/bash /lab/inside.sh
StandardOutput=append:/out/inside.log
StandardError=append:/out/inside.log
TimeoutStartSec=420
EOF

# systemd-nspawn keeps lock and propagation directories under /run/systemd/nspawn; where the
# host's /run is not a tmpfs they would outlive the test. A private /run (this test's mount
# namespace only; the lab's servers keep theirs in LAB_DIR) takes them.
mount -t tmpfs -o mode=0755 cb-boot-run /run

t0=$(_lab_now_ms)
rc=0
timeout 480 systemd-nspawn --quiet --directory="$c/root" --boot --register=no --keep-unit \
        --link-journal=no --machine="cb-boot-$$" \
        --bind="$c/units:/etc/systemd/system" \
        --bind-ro="$c/etc/hosts:/etc/hosts" --bind-ro="$c/etc/resolv.conf:/etc/resolv.conf" \
        --bind-ro="$c/etc/krb5.conf:/etc/krb5.conf" --bind-ro="$c/etc/hostname:/etc/hostname" \
        --bind-ro="$c/lab:/lab" --bind="$c/out:/out" --bind="$NDES_STATE:/ndes-state" \
        -- systemd.firstboot=off systemd.wants=system-boot-test.service \
        </dev/null >"$LAB_DIR/nspawn.log" 2>&1 || rc=$?
boot_ms=$(( $(_lab_now_ms) - t0 ))

[ -f "$c/out/inside.log" ] && cat "$c/out/inside.log"
if [ "$rc" -ne 0 ] || ! grep -qx "ok - done" "$c/out/inside.log" 2>/dev/null; then
        echo "# --- last lines of the container's console ($LAB_DIR/nspawn.log):" >&2
        tail -n 40 "$LAB_DIR/nspawn.log" >&2
        for f in "$c"/out/*.journal.txt; do
                [ -f "$f" ] || continue
                echo "# --- $f:" >&2
                tail -n 60 "$f" >&2
        done
        lab_fail "the checks inside the container failed (systemd-nspawn exit status $rc)"
fi

# The certificates the container got chain to the emulator's CA with exactly their names.
ndes_verify_cert "$c/out/alice.crt" web.a.example.test web.a.example.test
ndes_verify_cert "$c/out/killed.crt" killed.a.example.test killed.a.example.test
ndes_verify_cert "$c/out/gssproxy.crt" gss.a.example.test gss.a.example.test
lab_pass "the certificates issued inside the container chain to the NDES CA with the requested names"
out=$(openssl verify -CAfile "$NDES_STATE/ca.crt" "$c/out/carol.crt" 2>&1) ||
        lab_fail "carol's certificate from the user unit does not chain to the NDES CA: $out"
lab_assert_contains "$(openssl x509 -in "$c/out/carol.crt" -noout -text)" "othername: UPN::carol@${LAB_REALM,,}" \
        "the UPN of carol's certificate"
lab_pass "carol's certificate, deployed by the user unit, chains to the NDES CA and names her UPN"

echo "# system-boot: boot, checks and power-off ${boot_ms} ms; whole test $(( $(_lab_now_ms) - t_start )) ms"
lab_pass "system-boot"
