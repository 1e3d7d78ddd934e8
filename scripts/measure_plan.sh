#!/usr/bin/env bash
# The memory plan (`allam pretrain --plan`, crates/allam-train/src/plan.rs) against measured peak RSS:
# one `allam bench train` per shape, two steps (the second holds the AdamW moments), printed as the
# markdown rows of docs/PERFORMANCE.md. Usage: scripts/measure_plan.sh [f32|bf16-mixed] [ALLAM_BINARY]
set -euo pipefail
precision="${1:-bf16-mixed}"
allam="${2:-target/release/allam}"
many="--hidden 1024 --layers 16 --heads 16 --kv-heads 8 --ffn 2816"
shapes=(
    "--batch 1 --seq 32"
    "--batch 1 --seq 128"
    "--batch 4"
    "--batch 8"
    "--batch 4 --seq 1024"
    "--batch 16"
    "--batch 8 --checkpoint-layers"
    "--batch 4 --head-chunk 0"
    "$many --batch 1 --seq 32"
    "$many --batch 2 --seq 256"
    "--hidden 64 --layers 2 --heads 4 --kv-heads 2 --ffn 172 --vocab 1000 --batch 8 --seq 128"
)
echo "| arguments | peak RSS (MiB) | plan (MiB) | plan − measured | tokens/s |"
echo "|---|---:|---:|---:|---:|"
for args in "${shapes[@]}"; do
    # shellcheck disable=SC2086
    line=$("$allam" bench train --json --steps 2 --warmup 0 --precision "$precision" $args)
    python3 - "$args" "$line" <<'PY'
import json, sys
args, r = sys.argv[1], json.loads(sys.argv[2])
m, p = r["peak_rss_mb"], r["planned_peak_mb"]
print(f"| `{args}` | {m:,.1f} | {p:,.1f} | {100 * (p - m) / m:+.1f} % | {r['tokens_per_s']:,.1f} |")
PY
done
