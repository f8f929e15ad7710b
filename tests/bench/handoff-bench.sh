#!/usr/bin/env bash
# Key hand-off benchmark: what the sealed hand-off (TakeKeySealed + ConfirmKey, what
# certbrokerctl deploy uses) costs against the plain TakeKey, measured in the same run against
# the same broker, alternating request by request. Prints medians and the ratio; asserts
# nothing about time, fails if a key does not come back.
#
#   meson test -C build --benchmark handoff-bench     (or: bash tests/bench/handoff-bench.sh)
#   BENCH_HANDOFF_N=60 to change the count (half each way).
set -euo pipefail
: "${CB_SOURCE_ROOT:=$(cd "$(dirname "$0")/../.." && pwd)}"
. "$CB_SOURCE_ROOT/tests/integration/daemon-enter.sh" "$@"

N=${BENCH_HANDOFF_N:-60}
client=$CB_SOURCE_ROOT/tests/bench/bench-client.py
broker_lab
broker_policy_alice bench MaxRequests=unlimited
broker_start
out=$(lab_run_as alice "$LAB_PYTHON" "$client" handoff "$N" handoff) || lab_fail "the hand-off run failed: $out"
"$LAB_PYTHON" - "$out" <<'PYEOF'
import json, statistics, sys
d = json.loads(sys.argv[1])
def ms(v): return f'{statistics.median(v) * 1000:.2f} ms'
def p95(v): v = sorted(v); return f'{v[int(0.95 * (len(v) - 1))] * 1000:.2f} ms'
print(f'# key hand-off: {len(d["takekey"])} TakeKey, {len(d["sealed"])} TakeKeySealed + ConfirmKey, alternating')
print(f'TakeKey (key read and erased):              median {ms(d["takekey"])}, p95 {p95(d["takekey"])}')
print(f'TakeKeySealed (sealed, key erased):         median {ms(d["sealed"])}, p95 {p95(d["sealed"])}')
print(f'TakeKeySealed + ConfirmKey (copy erased):   median {ms(d["sealed_confirmed"])}, p95 {p95(d["sealed_confirmed"])}')
print(f'ratio (sealed hand-off / TakeKey): {statistics.median(d["sealed_confirmed"]) / statistics.median(d["takekey"]):.2f}')
PYEOF
broker_stop
