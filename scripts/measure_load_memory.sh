#!/usr/bin/env bash
# Peak resident memory while loading a ~1 GB f32 (or bf16) checkpoint, against its size in f32.
# Usage: scripts/measure_load_memory.sh [f32|bf16]   (writes a random checkpoint under /tmp)
set -euo pipefail
cd "$(dirname "$0")/.."
dtype=${1:-f32}
dir=/tmp/allam-synthetic-1gb-$dtype
# The dev profile builds every dependency at -O3 (see Cargo.toml); memory does not depend on the profile.
[ -n "${NO_BUILD:-}" ] || cargo build -q -p allam --example random_checkpoint
[ -n "${NO_BUILD:-}" ] || cargo build -q -p allam-cli
# hidden 1536, 8 layers, vocab 32000 ≈ 0.99 GB in f32 (untied)
[ -f "$dir/config.json" ] || target/debug/examples/random_checkpoint "$dir" 1536 8 32000 "$dtype"
f32_bytes=$(python3 -c "import json;c=json.load(open('$dir/config.json'));d=c['hidden_size'];f=c['intermediate_size'];v=c['vocab_size'];L=c['num_hidden_layers'];print(4*(2*v*d+L*(4*d*d+3*d*f+2*d)+d))")
/usr/bin/time -v target/debug/allam logits --model "$dir" --ids 1,2,3 > /dev/null 2> /tmp/allam-load-time.txt
peak_kb=$(grep "Maximum resident set size" /tmp/allam-load-time.txt | awk '{print $NF}')
python3 -c "p=$peak_kb*1024;s=$f32_bytes;print(f'checkpoint ({\"$dtype\"} on disk): {s/1e9:.3f} GB in f32; peak RSS {p/1e9:.3f} GB = {p/s:.2f} x')"
