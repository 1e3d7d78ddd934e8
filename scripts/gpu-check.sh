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

# 2b. Real-scale training (issue 15): a ~1B Llama step in bf16-mixed, with and without activation
#     checkpointing, against the memory plan (planned_peak_mb vs device_memory_reserved_mb).
for extra in "" "--checkpoint-layers"; do
    name="allam-train-1b-bf16${extra:+-ckpt}"
    "$ALLAM" bench train --device cuda "${BIG[@]}" --seq 2048 --batch 1 --precision bf16-mixed $extra --json > "$OUT/$name.json" 2> "$OUT/$name.err"
    record "allam train 1.1B bf16-mixed $extra" "exit $? $(tail -c 400 "$OUT/$name.json")"
done

# 3. PyTorch eager on the same GPU, same shapes (only where torch and transformers import).
if python3 -c 'import torch, transformers; assert torch.cuda.is_available()' 2> /dev/null; then
    for kind in train decode prefill; do
        python3 scripts/bench_pytorch.py "$kind" --device cuda > "$OUT/torch-$kind.json" 2> "$OUT/torch-$kind.err"
        record "torch $kind default" "exit $? $(tail -c 300 "$OUT/torch-$kind.json")"
    done
    python3 scripts/bench_pytorch.py train --device cuda "${BIG[@]}" --seq 1024 --batch 4 > "$OUT/torch-train-1b.json" 2> "$OUT/torch-train-1b.err"
    record "torch train 1.1B" "exit $? $(tail -c 300 "$OUT/torch-train-1b.json")"
    for extra in "" "--checkpoint-layers"; do
        name="torch-train-1b-bf16${extra:+-ckpt}"
        python3 scripts/bench_pytorch.py train --device cuda "${BIG[@]}" --seq 2048 --batch 1 --precision bf16-mixed $extra > "$OUT/$name.json" 2> "$OUT/$name.err"
        record "torch train 1.1B bf16-mixed $extra" "exit $? $(tail -c 400 "$OUT/$name.json")"
    done
else
    record torch "not run: torch with CUDA does not import here"
fi

# 4. MFU of the bf16-mixed 1B steps against the H100's dense bf16 peak (989 TFLOP/s), counting
#    6 · parameters FLOPs per token (recomputation not counted), and each step's planned peak.
python3 - "$OUT" >> "$summary" 2>&1 <<'PYEOF'
import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
for name in ["allam-train-1b-bf16", "allam-train-1b-bf16-ckpt", "torch-train-1b-bf16", "torch-train-1b-bf16-ckpt"]:
    try:
        d = json.loads((out / f"{name}.json").read_text().strip().splitlines()[-1])
    except Exception as e:  # a failed or missing run
        print(f"mfu {name}: no result ({e})")
        continue
    params = d["shape"]["params"]
    mfu = 6 * params * d["tokens_per_s"] / 989e12
    print(f"mfu {name}: {mfu:.3f} ({d['tokens_per_s']} tokens/s, {params} parameters, "
          f"memory reserved {d.get('device_memory_reserved_mb')} MB, planned {d.get('planned_peak_mb')} MiB)")
PYEOF
