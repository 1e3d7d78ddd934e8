#!/usr/bin/env bash
# Throughput of `allam score` (requests/s) on a SmolLM2-135M-shaped checkpoint with random weights
# (d 576, 30 layers, 9 query / 3 KV heads, FFN 1536, vocab 49,152, tied, f32), 64 requests of
# ~100-token contexts and a short continuation, at --batch-size 1 and 8.
# Usage: scripts/bench_score.sh [requests]   (writes under /tmp; NO_BUILD=1 skips the builds)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-64}
dir=/tmp/allam-smollm2-135m-shape
work=/tmp/allam-bench-score
mkdir -p "$work"
# The dev profile builds every dependency at -O3 (see Cargo.toml).
[ -n "${NO_BUILD:-}" ] || cargo build -q -p allam --example random_checkpoint
[ -n "${NO_BUILD:-}" ] || cargo build -q -p allam-cli
if [ ! -f "$dir/model.safetensors" ]; then
  target/debug/examples/random_checkpoint "$dir" 576 30 49152 f32 3 tied
  # Any tokenizer will do for timing: the fixture's (its ids are a subset of the vocabulary).
  cp tests/fixtures/tiny-gqa-untied/tokenizer.json tests/fixtures/tiny-gqa-untied/tokenizer_config.json "$dir/"
fi
# Requests: pseudo-random sentences (fixed seed), ~100 tokens of context each.
python3 - "$n" "$work" <<'PY'
import json, random, sys
n, work = int(sys.argv[1]), sys.argv[2]
rng = random.Random(1234)
words = "the cat sat on a mat and then it ran to see what was in the big red box by the door".split()
def text(k): return " ".join(rng.choice(words) for _ in range(k))
with open(f"{work}/requests.jsonl", "w") as f:
    for _ in range(n):
        f.write(json.dumps({"context": text(rng.randint(52, 64)), "continuation": " " + text(3)}) + "\n")
# Calibration: the first 8 contexts scored as continuations give their token counts.
with open(f"{work}/calibrate.jsonl", "w") as f, open(f"{work}/requests.jsonl") as r:
    for line in list(r)[:8]:
        f.write(json.dumps({"context": ".", "continuation": " " + json.loads(line)["context"]}) + "\n")
PY
tokens=$(target/debug/allam score --model "$dir" --input "$work/calibrate.jsonl" --batch-size 8 \
  | python3 -c "import json,sys;t=[json.loads(l)['continuation_tokens'] for l in sys.stdin];print(f'{sum(t)/len(t):.0f}')")
echo "model: $dir; $n requests, contexts ~$tokens tokens (mean of the first 8), $(nproc) cores"
# Load time plus one request, subtracted below so the rate is the scoring's alone.
head -1 "$work/requests.jsonl" > "$work/one.jsonl"
start=$(date +%s.%N)
target/debug/allam score --model "$dir" --input "$work/one.jsonl" --batch-size 1 > /dev/null
one=$(python3 -c "print($(date +%s.%N)-$start)")
echo "load + 1 request: $(printf %.1f "$one") s"
for bs in 1 8; do
  start=$(date +%s.%N)
  target/debug/allam score --model "$dir" --input "$work/requests.jsonl" --batch-size "$bs" > "$work/out-$bs.jsonl"
  end=$(date +%s.%N)
  python3 -c "w=$end-$start;print(f'batch-size $bs: {w:.1f} s wall, {$n/w:.2f} requests/s incl. load, {($n-1)/(w-$one):.2f} requests/s without')"
done
# Scores must not depend on the batch size.
python3 - "$work" <<'PY'
import json, sys
w = sys.argv[1]
a = [json.loads(l)["logprob"] for l in open(f"{w}/out-1.jsonl")]
b = [json.loads(l)["logprob"] for l in open(f"{w}/out-8.jsonl")]
print(f"max |logprob(bs 1) - logprob(bs 8)| = {max(abs(x - y) for x, y in zip(a, b)):.2e}")
PY
