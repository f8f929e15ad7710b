#!/usr/bin/env bash
# The examples of client-lib/examples, built and run against the real lab as the
# unprivileged tenant alice: the busctl commands of org.certbroker.Broker1(5) EXAMPLES, the python3-dbus script, and the
# C example (built by meson, and again with cc and the uninstalled libcertbroker.pc).
set -euo pipefail
: "${CB_SOURCE_ROOT:=$(cd "$(dirname "$0")/../.." && pwd)}"
. "$CB_SOURCE_ROOT/tests/integration/daemon-enter.sh" "$@"

EX=$CB_SOURCE_ROOT/client-lib/examples
C_EXAMPLE=$CB_BUILD_ROOT/client-lib/certbroker-example
[ -x "$C_EXAMPLE" ] || lab_fail "the C example is not built: $C_EXAMPLE (meson compile -C \$builddir client-lib/certbroker-example)"
W=$LAB_DIR/alice
mkdir -p "$W"
chown alice "$W"
chmod 0700 "$W"
as_alice() { (cd "$W" && lab_run_as alice "$@"); }

# key_matches KEY CERT
key_matches() {
        lab_assert_eq "$(openssl pkey -in "$1" -pubout | sha256sum)" \
                "$(openssl x509 -in "$2" -noout -pubkey | sha256sum)" "$1 matches $2"
}

broker_lab
broker_start

# ---- the busctl commands of org.certbroker.Broker1(5) ----
out=$(as_alice sh "$EX/busctl-api.sh" busctl.a.example.test corp 2>"$LAB_DIR/busctl.err") ||
        lab_fail "busctl-api.sh failed: $(cat "$LAB_DIR/busctl.err")"
lab_assert_contains "$out" 's "issued"' "busctl Wait"
cert=$(printf '%s\n' "$out" | sed -n '2p')
key=$(printf '%s\n' "$out" | sed -n '3p')
cert=${cert#s \"}
key=${key#s \"}
printf '%b' "${cert%\"}" >"$LAB_DIR/busctl.crt"
printf '%b' "${key%\"}" >"$LAB_DIR/busctl.key"
ndes_verify_cert "$LAB_DIR/busctl.crt" busctl.a.example.test busctl.a.example.test
key_matches "$LAB_DIR/busctl.key" "$LAB_DIR/busctl.crt"
lab_pass "the busctl commands of org.certbroker.Broker1(5) enroll, wait, read the certificate and take the key"

# ---- python3-dbus ----
as_alice "$LAB_PYTHON" "$EX/enroll.py" py.a.example.test corp 2>"$LAB_DIR/py.err" ||
        lab_fail "enroll.py failed: $(cat "$LAB_DIR/py.err")"
lab_assert_contains "$(cat "$LAB_DIR/py.err")" ": issued" "enroll.py progress"
lab_assert_eq "$(stat -c '%a %U' "$W/py.a.example.test.key")" "600 alice" "enroll.py key file"
ndes_verify_cert "$W/py.a.example.test.crt" py.a.example.test py.a.example.test
key_matches "$W/py.a.example.test.key" "$W/py.a.example.test.crt"
if as_alice "$LAB_PYTHON" "$EX/enroll.py" web.b.example.test corp 2>"$LAB_DIR/py.err"; then
        lab_fail "enroll.py of bob's name succeeded"
fi
lab_assert_contains "$(cat "$LAB_DIR/py.err")" "NameNotPermitted" "enroll.py refusal"
lab_pass "the python3-dbus example enrolls, and reports a refusal with its D-Bus error name"

# ---- the C example, as built by meson ----
as_alice "$C_EXAMPLE" c.a.example.test corp >"$LAB_DIR/c.crt" 2>"$LAB_DIR/c.err" ||
        lab_fail "certbroker-example failed: $(cat "$LAB_DIR/c.err")"
lab_assert_eq "$(stat -c '%a %U' "$W/key.pem")" "600 alice" "C example key file"
ndes_verify_cert "$LAB_DIR/c.crt" c.a.example.test c.a.example.test
key_matches "$W/key.pem" "$LAB_DIR/c.crt"
rm -f "$W/key.pem"
if as_alice "$C_EXAMPLE" web.b.example.test corp >/dev/null 2>"$LAB_DIR/c.err"; then
        lab_fail "the C example enrolled bob's name"
fi
lab_assert_contains "$(cat "$LAB_DIR/c.err")" "[org.certbroker.Broker1.Error.NameNotPermitted]" "C example refusal"
lab_pass "the C example (meson build) enrolls and prints the daemon's error name on refusal"

# ---- the C example again, built with cc and pkg-config (the uninstalled .pc) ----
export PKG_CONFIG_PATH=$CB_BUILD_ROOT/meson-uninstalled
flags=$(pkg-config --cflags --libs libcertbroker-uninstalled) ||
        lab_fail "pkg-config does not know libcertbroker-uninstalled in $PKG_CONFIG_PATH"
# A sanitizer build of the library needs the sanitizer runtime first in the program.
sanitize=
case "$(ldd "$CB_BUILD_ROOT/client-lib/libcertbroker.so.1")" in
*libasan*) sanitize=-fsanitize=address,undefined ;;
esac
# shellcheck disable=SC2086
cc -std=gnu11 -Wall -Werror $sanitize -o "$LAB_DIR/example-pc" "$EX/enroll.c" $flags ||
        lab_fail "cc enroll.c \$(pkg-config --cflags --libs libcertbroker) failed"
chmod 0755 "$LAB_DIR/example-pc"
as_alice env LD_LIBRARY_PATH="$CB_BUILD_ROOT/client-lib" "$LAB_DIR/example-pc" pc.a.example.test >"$LAB_DIR/pc.crt" 2>"$LAB_DIR/pc.err" ||
        lab_fail "the pkg-config-built example failed: $(cat "$LAB_DIR/pc.err")"
ndes_verify_cert "$LAB_DIR/pc.crt" pc.a.example.test pc.a.example.test
key_matches "$W/key.pem" "$LAB_DIR/pc.crt"
lab_pass "the C example builds with cc and pkg-config and enrolls through the default CA"

for f in "$LAB_DIR"/*.err; do
        if grep -qE "runtime error:|Sanitizer" "$f"; then
                lab_fail "sanitizer report in $f: $(cat "$f")"
        fi
done
lab_pass "done"
broker_stop
