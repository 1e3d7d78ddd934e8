#!/usr/bin/env bash
# Data-mixture benchmark (docs/PERFORMANCE.md, "Data mixture"): MB/s of input text read, cleaned,
# deduplicated, tokenised (real Mistral tokenizer), sharded and packed, per core; and peak memory for
# 1x, 10x and 100x input. Inputs are the reference texts in ../shared/data; the 10x copies (each line
# tagged with its copy number, so deduplication keeps them) are made in /tmp and never committed.
# SCALES="1 10" skips the 100x run (531 MB of input, ~20 s per build).
# NEAR=0.8 turns on near-duplicate detection at that Jaccard threshold; the copies then have their
# words shuffled (per line and copy, seeded) instead of a tag, so they are not near duplicates of
# each other and the near-dedup tables grow with the input. Inputs go to $WORK/near-x$SCALE.
#
#   scripts/bench-data.sh            # uses ../shared next to the repository
#   SHARED=/path/to/shared scripts/bench-data.sh
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SHARED=${SHARED:-$ROOT/../shared}
TOK=$SHARED/tokenizers/mistral-7b-v0.1/tokenizer.json
WORK=${WORK:-/tmp/allam-data-bench}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
mkdir -p "$WORK"

NEAR=${NEAR:-}
export NEAR
python3 - "$SHARED/data" "$WORK" <<'PY'
import json, os, random, sys
src, work = sys.argv[1], sys.argv[2]
near = bool(os.environ.get("NEAR"))

def vary(text, k, line_no):
    """Copy k of a line: tagged with k, or (NEAR) its words shuffled by a seeded generator."""
    if k == 0 or not text.strip():
        return text
    if not near:
        return f"{text} ({k})"
    words = text.split()
    random.Random(k * 1_000_003 + line_no).shuffle(words)
    return " ".join(words)

botchan = open(os.path.join(src, "en_botchan.txt"), encoding="utf-8").read().splitlines()
quran = [json.loads(l) for l in open(os.path.join(src, "quran_parallel.jsonl"), encoding="utf-8")]
for scale in map(int, os.environ.get("SCALES", "1 10 100").split()):
    d = os.path.join(work, f"{'near-' if near else ''}x{scale}")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "botchan.txt"), "w", encoding="utf-8") as f:
        for k in range(scale):
            for i, line in enumerate(botchan):
                f.write(vary(line, k, i) + "\n")
    with open(os.path.join(d, "quran.jsonl"), "w", encoding="utf-8") as f:
        for k in range(scale):
            for i, r in enumerate(quran):
                f.write(json.dumps({"id": r["id"], "ar": vary(r["ar"], k, i), "en": vary(r["en"], k, i)},
                                   ensure_ascii=False) + "\n")
PY

SCALES=${SCALES:-1 10 100}
export SCALES
IN=$WORK/${NEAR:+near-}x   # input folder prefix, then the scale
CLEAN=${NEAR:+near_duplicate_threshold = $NEAR}
for scale in $SCALES; do
  cat > "${IN}$scale/recipe.toml" <<TOML
tokenizer = "$TOK"
seq_len = 2048
seed = 1234
[clean]
$CLEAN
[languages]
en = 0.55
ar = 0.225
ar_translated = 0.225
[[sources]]
name = "botchan"
language = "en"
paths = ["botchan.txt"]
[[sources]]
name = "quran-ar"
language = "ar"
paths = ["quran.jsonl"]
[sources.parallel]
mode = "second"
[[sources]]
name = "quran-pairs"
language = "ar_translated"
paths = ["quran.jsonl"]
[sources.parallel]
TOML
done

(cd "${WORKSPACE:-$ROOT}" && cargo build --release -q -p allam-data --example bench_mixture)
BIN=$CARGO_TARGET_DIR/release/examples/bench_mixture

run() { # threads scale mode
  RAYON_NUM_THREADS=$1 /usr/bin/time -v "$BIN" "${IN}$2/recipe.toml" "$WORK/out-$1-$2" "$3" \
    2> "$WORK/time-$1-$2-$3.txt"
  echo "  peak RSS ($3, threads=$1, ${2}x): $(grep 'Maximum resident' "$WORK/time-$1-$2-$3.txt" | awk '{print $6}') KiB;" \
       "user+sys $(grep -E 'User time|System time' "$WORK/time-$1-$2-$3.txt" | awk '{s+=$4} END {print s}') s"
}
for scale in $SCALES; do
  rm -rf "$WORK/out-1-$scale"
  echo "== 1 thread, ${scale}x"; run 1 $scale build; run 1 $scale pack
done
rm -rf "$WORK/out-2-1"
echo "== 2 threads, 1x"; run 2 1 build
