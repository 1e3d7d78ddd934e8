#!/usr/bin/env bash
# allam bench vs PyTorch eager (transformers LlamaForCausalLM), same shapes, random weights, f32.
#
#   scripts/compare.sh [train decode prefill]      (default: all three)
#
# Runs `allam bench KIND --json` (dev binary, target/debug/allam; ALLAM=path to use another) and
# `scripts/bench_pytorch.py KIND` (2 threads; makes scripts/.venv with torch + transformers on first
# use if PyPI is reachable), one process per measurement so each peak RSS is its own, and prints
# tokens/s, peak RSS and the ratio allam / PyTorch. Extra flags for both: BENCH_FLAGS="--steps 2".
# Results are also written to $OUT (default /tmp/allam-compare) as JSON lines.
set -euo pipefail
cd "$(dirname "$0")/.."
ALLAM=${ALLAM:-target/debug/allam}
OUT=${OUT:-/tmp/allam-compare}
PY=${PYTHON:-python3}
KINDS=("$@")
[ ${#KINDS[@]} -eq 0 ] && KINDS=(train decode prefill)
mkdir -p "$OUT"
[ -x "$ALLAM" ] || cargo build -p allam-cli --bin allam
# Make sure the PyTorch side can run (and install it) before spending minutes on our side.
"$PY" scripts/bench_pytorch.py check >&2

for kind in "${KINDS[@]}"; do
    echo "== $kind: allam" >&2
    # shellcheck disable=SC2086
    "$ALLAM" bench "$kind" --json ${BENCH_FLAGS:-} | tee "$OUT/allam-$kind.json"
    echo "== $kind: pytorch" >&2
    # shellcheck disable=SC2086
    "$PY" scripts/bench_pytorch.py "$kind" ${BENCH_FLAGS:-} | tee "$OUT/pytorch-$kind.json"
done

"$PY" - "$OUT" "${KINDS[@]}" <<'PYEOF'
import json, sys
out, kinds = sys.argv[1], sys.argv[2:]
print(f"{'bench':8} {'allam tok/s':>12} {'torch tok/s':>12} {'ratio':>7} {'allam RSS MB':>13} {'torch RSS MB':>13}")
for k in kinds:
    a = json.loads(open(f"{out}/allam-{k}.json").read().strip().splitlines()[-1])
    p = json.loads(open(f"{out}/pytorch-{k}.json").read().strip().splitlines()[-1])
    ratio = a["tokens_per_s"] / p["tokens_per_s"] if p["tokens_per_s"] else float("nan")
    print(f"{k:8} {a['tokens_per_s']:12.1f} {p['tokens_per_s']:12.1f} {ratio:7.3f} "
          f"{a['peak_rss_mb'] or float('nan'):13.1f} {p['peak_rss_mb'] or float('nan'):13.1f}")
PYEOF
