#!/usr/bin/env bash
# Every GPU check and benchmark in one go, for a machine with an NVIDIA GPU (docs/PERFORMANCE.md,
# "GPU"). Results go under $OUT (default /tmp/allam-gpu): one log or JSON file per check, and
# summary.txt with one line per check.
#
# Build on the development machine first, where cargo and the LLVM for CUDA are:
#   scripts/setup-cuda-build.sh
#   cargo build --release -p allam-cli --features cuda,wgpu
#   cargo test --release --workspace --features cuda,wgpu --no-run
# then run this on the GPU machine from the repository root (the target/ folder carried over).
#   ALLAM_TEST_BINS=1 runs the prebuilt test binaries instead of `cargo test` (no cargo there).
# The GPU machine needs the NVIDIA driver, libdevice.10.bc (CUDA_PATH or /usr/local/cuda) and,
# for the Vulkan run, the NVIDIA Vulkan driver. PyTorch's side runs only where torch imports.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/allam-gpu}
ALLAM=${ALLAM:-target/release/allam}
mkdir -p "$OUT"
summary="$OUT/summary.txt"
: > "$summary"
record() { echo "$1: $2" | tee -a "$summary"; }

nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1 || record nvidia-smi "failed (no driver?)"

# 1. The backend-generic tests on CUDA and on Vulkan, required (a missing device fails).
export ALLAM_REQUIRE_DEVICES=cpu,cuda,vulkan
if [[ "${ALLAM_TEST_BINS:-0}" == 1 ]]; then
    status=0
    for bin in $(find target/release/deps -maxdepth 1 -type f -executable -name '*-*' ! -name '*.so' ! -name '*.d'); do
        "$bin" >> "$OUT/tests.log" 2>&1 || status=1
    done
else
    cargo test --release --workspace --features cuda,wgpu > "$OUT/tests.log" 2>&1
    status=$?
fi
record tests "exit $status, $(grep -c '^test result: ok' "$OUT/tests.log") binaries ok, $(grep -c '^test result: FAILED' "$OUT/tests.log") failed"

# 2. allam bench on CUDA: the default shapes, then a ~1.1B Llama shape (TinyLlama-1.1B: 2048
#    hidden, 22 layers, 32/4 heads, FFN 5632, vocab 32000).
BIG=(--hidden 2048 --layers 22 --heads 32 --kv-heads 4 --ffn 5632 --vocab 32000)
for kind in train decode prefill; do
    "$ALLAM" bench "$kind" --device cuda --json > "$OUT/allam-$kind.json" 2> "$OUT/allam-$kind.err"
    record "allam $kind default" "exit $? $(tail -c 300 "$OUT/allam-$kind.json")"
done
"$ALLAM" bench train --device cuda "${BIG[@]}" --seq 1024 --batch 4 --json > "$OUT/allam-train-1b.json" 2> "$OUT/allam-train-1b.err"
record "allam train 1.1B" "exit $? $(tail -c 300 "$OUT/allam-train-1b.json")"
"$ALLAM" bench prefill --device cuda "${BIG[@]}" --seq 2048 --json > "$OUT/allam-prefill-1b.json" 2> "$OUT/allam-prefill-1b.err"
record "allam prefill 1.1B" "exit $? $(tail -c 300 "$OUT/allam-prefill-1b.json")"
"$ALLAM" bench decode --device cuda "${BIG[@]}" --json > "$OUT/allam-decode-1b.json" 2> "$OUT/allam-decode-1b.err"
record "allam decode 1.1B" "exit $? $(tail -c 300 "$OUT/allam-decode-1b.json")"
# The same on wgpu (Vulkan), default shapes.
for kind in train decode prefill; do
    "$ALLAM" bench "$kind" --device vulkan --json > "$OUT/vulkan-$kind.json" 2> "$OUT/vulkan-$kind.err"
    record "allam $kind vulkan" "exit $? $(tail -c 300 "$OUT/vulkan-$kind.json")"
done

# 3. PyTorch eager on the same GPU, same shapes (only where torch and transformers import).
if python3 -c 'import torch, transformers; assert torch.cuda.is_available()' 2> /dev/null; then
    for kind in train decode prefill; do
        python3 scripts/bench_pytorch.py "$kind" --device cuda > "$OUT/torch-$kind.json" 2> "$OUT/torch-$kind.err"
        record "torch $kind default" "exit $? $(tail -c 300 "$OUT/torch-$kind.json")"
    done
    python3 scripts/bench_pytorch.py train --device cuda "${BIG[@]}" --seq 1024 --batch 4 > "$OUT/torch-train-1b.json" 2> "$OUT/torch-train-1b.err"
    record "torch train 1.1B" "exit $? $(tail -c 300 "$OUT/torch-train-1b.json")"
else
    record torch "not run: torch with CUDA does not import here"
fi
