#!/usr/bin/env bash
# Vowelled Arabic on byte-level bases: the table of docs/TOKENIZER.md ("Vowelled Arabic on byte-level
# bases"), and the Python `tokenizers` check.
#
#   scripts/tokenizer_arabic_marks.sh            # from the repository root; SHARED=../shared OUT=/tmp/arabic-marks
#
# Bases: SmolLM2-135M's tokenizer.json (GPT-2 ByteLevel regex) and a Llama-3-style tokenizer made from it
# (SmolLM2's vocabulary and merges with Llama-3's published pre-tokenizer, Split(regex, Isolated) +
# ByteLevel(use_regex=false), and ignore_merges=true, as Llama-3 has; no real Llama-3 tokenizer.json is
# available here). Corpus: the Quran's Arabic (quran_parallel.jsonl, field `ar`, fully vowelled), every
# 10th verse held out for measuring, the rest learned from. Each row adds NEW (16,384) pieces; where the
# base's pre-tokenizer leaves fewer distinct pieces than that, the row takes all there are (the script
# says so). English: every line of en_botchan.txt, ids with special tokens, base vs expanded.
#
# Needs: cargo; python3 (standard library) for the Llama-3-style file; for the last step a Python with
# `tokenizers` (PY, default /tmp/venv-tok/bin/python: python3 -m venv /tmp/venv-tok &&
# /tmp/venv-tok/bin/pip install tokenizers); it is skipped if that Python is missing.
set -euo pipefail

SHARED=${SHARED:-../shared}
OUT=${OUT:-/tmp/arabic-marks}
NEW=${NEW:-16384}
PY=${PY:-/tmp/venv-tok/bin/python}
TARGET=${CARGO_TARGET_DIR:-target}
QURAN=$SHARED/data/quran_parallel.jsonl
ENGLISH=$SHARED/data/en_botchan.txt
SMOL=$SHARED/tokenizers/smollm2-135m/tokenizer.json
LLAMA3=$OUT/llama3-style/tokenizer.json
mkdir -p "$OUT/llama3-style"

# The dev profile builds dependencies (tokenizers) at opt-level 3; the figures do not depend on the profile.
cargo build -q -p allam-tokenizer --example heldout_fertility --example tokenizer_tool
H=$TARGET/debug/examples/heldout_fertility
T=$TARGET/debug/examples/tokenizer_tool

python3 - "$SMOL" "$LLAMA3" <<'EOF'
import json, sys
src, dst = sys.argv[1], sys.argv[2]
t = json.load(open(src, encoding="utf-8"))
# Llama-3's pre-tokenizer, as in Meta-Llama-3's tokenizer.json.
t["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
    {"type": "Split", "pattern": {"Regex": "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},
     "behavior": "Isolated", "invert": False},
    {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]}
t["model"]["ignore_merges"] = True
json.dump(t, open(dst, "w", encoding="utf-8"), ensure_ascii=False)
EOF

# One past the largest id (vocabulary and added tokens).
size() { python3 -c "import json,sys; t=json.load(open(sys.argv[1])); print(max(list(t['model']['vocab'].values())+[a['id'] for a in t['added_tokens']])+1)" "$1"; }

header_done=
# row NAME BASE [flags...]: one expansion, held out every 10th verse; prints its table row.
row() {
    local name=$1 base=$2
    shift 2
    local base_size
    base_size=$(size "$base")
    local args=(--base "$base" --corpus "$QURAN" --field ar --hold-out-every 10 --min-frequency 1
        --english "$ENGLISH" --out "$OUT/$name" "$@")
    if ! "$H" "${args[@]}" --vocab-size $((base_size + NEW)) >"$OUT/$name.txt" 2>"$OUT/$name.err"; then
        local n
        n=$(grep -o 'gives only [0-9]* reachable' "$OUT/$name.err" | grep -o '[0-9]*') || {
            cat "$OUT/$name.err" >&2
            exit 1
        }
        echo "$name: the pre-tokens give only $n new pieces; expanding by $n" >&2
        "$H" "${args[@]}" --vocab-size $((base_size + n)) >"$OUT/$name.txt"
    fi
    if [ -z "$header_done" ]; then
        sed -n 1,2p "$OUT/$name.txt"
        header_done=1
    fi
    sed -n 3p "$OUT/$name.txt" | sed "s/^| [^|]* |/| $name |/"
    sed -n '4,$p' "$OUT/$name.txt" | sed 's/^/    /' >&2
}

row smollm2-marks "$SMOL"
row smollm2-base "$SMOL" --keep-base-pre-tokenizer
row smollm2-normalized "$SMOL" --normalize-arabic
row llama3-marks "$LLAMA3"
row llama3-base "$LLAMA3" --keep-base-pre-tokenizer
row llama3-normalized "$LLAMA3" --normalize-arabic

# Python `tokenizers` reads the written files and encodes like Rust: a held-out vowelled verse, a
# vowelled sentence with marks the Quran lacks, and an English line.
python3 - "$OUT/smollm2-marks/heldout.jsonl" "$ENGLISH" "$OUT/check.jsonl" <<'EOF'
import json, sys
verse = json.loads(open(sys.argv[1], encoding="utf-8").readline())["text"]
english = next(l.strip() for l in open(sys.argv[2], encoding="utf-8") if len(l.split()) > 8)
with open(sys.argv[3], "w", encoding="utf-8") as f:
    for text in [verse, "ذَهَبَ الوَلَدُ إِلَى المَدْرَسَةِ فِي الصَّبَاحِ البَاكِرِ.", english]:
        f.write(json.dumps({"text": text}, ensure_ascii=False) + "\n")
EOF
if [ -x "$PY" ]; then
    for name in smollm2-marks llama3-marks; do
        "$T" encode --tokenizer "$OUT/$name/tokenizer.json" --text "$OUT/check.jsonl" >"$OUT/$name.ids.jsonl"
        "$PY" scripts/tokenizer_python_check.py --tokenizer "$OUT/$name/tokenizer.json" --rust "$OUT/$name.ids.jsonl"
    done
else
    echo "skipped the Python check: no $PY" >&2
fi
