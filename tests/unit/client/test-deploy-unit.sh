#!/usr/bin/env bash
# certbroker-deploy@.service as built: substituted, runs 'certbrokerctl deploy --config=' from
# deploy.d/%i.conf, and keeps its hardening (every relaxation commented "RELAXED:").
#   test-deploy-unit.sh UNIT
set -euo pipefail
unit=$1
fail() { echo "not ok - $*" >&2; exit 1; }
settings=$(grep -v '^[[:space:]]*#' "$unit" | grep '=')
! grep -q '@[A-Z]*@' <<<"$settings" || fail "unsubstituted @VAR@ in $unit"
grep -qE '^ExecStart=/.*/certbrokerctl deploy --config=/.*/certbroker/deploy\.d/%i\.conf$' <<<"$settings" ||
        fail "ExecStart: $(grep ^ExecStart= <<<"$settings")"
for want in NoNewPrivileges=yes ProtectSystem=strict ProtectHome=yes PrivateTmp=yes PrivateDevices=yes \
            PrivateNetwork=yes RestrictAddressFamilies=AF_UNIX RestrictSUIDSGID=yes MemoryDenyWriteExecute=yes \
            'CapabilityBoundingSet=CAP_SETUID CAP_SETGID' AmbientCapabilities= StateDirectory=certbroker-deploy \
            'RestartPreventExitStatus=2 6 8' UMask=0077; do
        grep -qxF "$want" <<<"$settings" || fail "$unit lacks $want"
done
! grep -qE '^User=' <<<"$settings" || fail "User= belongs in deploy.d/NAME.conf, not in the unit"
idx=$(grep -n '^CapabilityBoundingSet=' "$unit" | cut -d: -f1)
head -n "$idx" "$unit" | tail -n 4 | grep -q RELAXED || fail "CapabilityBoundingSet= lacks a RELAXED: comment"
if command -v systemd-analyze >/dev/null; then
        out=$(systemd-analyze security --offline=true --no-pager "$unit" 2>/dev/null | grep 'Overall exposure' || true)
        echo "# systemd-analyze security: ${out:-n/a}"
fi
echo "ok - $(basename "$unit"): substituted, deploy --config from deploy.d, hardened"
