#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Build the certbroker SELinux module with the refpolicy devel Makefile in a temp copy,
# plus a throwaway client module that calls every interface of certbroker.if, so
# misspelled interfaces, types or macros in .te, .if or .fc fail the test.
# Exit 77 (skip) only when the devel Makefile is absent (package selinux-policy-dev).
set -euo pipefail

src=${1:?usage: test-selinux-module.sh SELINUX_SOURCE_DIR}
makefile=/usr/share/selinux/devel/Makefile
if [ ! -f "$makefile" ]; then
    echo "SKIP: $makefile not found (install selinux-policy-dev)"
    exit 77
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/cb-selinux-XXXXXX")
trap 'rm -rf "$tmp"' EXIT

cp "$src/certbroker.te" "$src/certbroker.if" "$src/certbroker.fc" "$tmp/"

# A client domain using the interfaces a packager or admin would.
cat >"$tmp/certbrokertest.te" <<'TE'
policy_module(certbrokertest, 1.0.0)

type certbrokertest_t;
type certbrokertest_exec_t;
init_daemon_domain(certbrokertest_t, certbrokertest_exec_t)
role system_r types certbrokertest_t;

certbroker_dbus_chat(certbrokertest_t)
certbroker_read_config(certbrokertest_t)
certbroker_domtrans(certbrokertest_t)
certbroker_admin(certbrokertest_t, system_r)
TE
: >"$tmp/certbrokertest.if"
: >"$tmp/certbrokertest.fc"

cd "$tmp"
status=0
for m in certbroker certbrokertest; do
    if ! make -f "$makefile" "$m.pp" >"$m.log" 2>&1; then
        echo "FAIL: building $m.pp:"
        cat "$m.log"
        status=1
        continue
    fi
    # checkmodule/m4 warnings (unknown interfaces are warnings in some versions).
    if grep -iE "warning|error|undefined|not defined" "$m.log"; then
        echo "FAIL: $m.pp built with the warnings above"
        status=1
    fi
    [ -s "$m.pp" ] || { echo "FAIL: $m.pp is empty"; status=1; }
done
[ "$status" = 0 ] && echo "ok: certbroker.pp and an interface client module built"
exit "$status"
