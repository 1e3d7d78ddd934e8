#!/usr/bin/env bash
# Stage 1 of the ALLaM recipe on a modern base: expand Llama-3.2's byte-level BPE tokenizer
# (128,000 pieces + 256 special tokens = 128,256 ids) with Arabic pieces learned in its own byte-level
# alphabet and pre-tokenisation, then grow Llama-3.2-1B's (tied) embedding to it; new rows = mean of
# the base rows of the pieces the old tokenizer splits each new token into.
# Run from this directory (or the copy of it that holds Llama-3.2-1B/ and data/).
set -euo pipefail
ALLAM=${ALLAM:-allam}    # e.g. ALLAM=../../../target/release/allam

# 161,024 = 128,256 + 32,768 new ids (a multiple of 128). The paper added ~32K Arabic pieces to
# Llama-2's 32K; the same number of new pieces here is this project's choice, not the paper's.
# New ids start after Llama-3's special tokens, so every base id (special ones included) is kept.
# Llama-3's pre-tokenizer splits Arabic diacritics from letters (they are marks, not letters, in its
# regex), so fully vowelled text gains less; `--normalize-arabic` (recorded in the tokenizer's
# normalizer) lifts that limit at the price of changing how vowelled Arabic is encoded
# (docs/TOKENIZER.md, "Byte-level bases").
"$ALLAM" tokenizer expand \
  --base Llama-3.2-1B/tokenizer.json \
  --corpus data/ar/web/*.jsonl.zst data/ar/news/*.jsonl.zst data/ar/books/*.jsonl.zst \
           data/ar/encyclopedia/*.jsonl.zst \
  --field text \
  --vocab-size 161024 \
  --eval data/heldout/ar.txt \
  --out tokenizers/llama3-ar
# → tokenizers/llama3-ar/{tokenizer.json, tokenizer_config.json, expansion-report.json}

"$ALLAM" tokenizer stats \
  --tokenizer Llama-3.2-1B/tokenizer.json \
  --tokenizer tokenizers/llama3-ar/tokenizer.json \
  --text data/heldout/en.txt data/heldout/ar.txt

"$ALLAM" model expand \
  --model Llama-3.2-1B \
  --tokenizer tokenizers/llama3-ar/tokenizer.json \
  --init mean \
  --out llama3.2-1b-ar-expanded
# → llama3.2-1b-ar-expanded/ (a Hugging Face directory, 161,024 rows, the base's config.json with
#   its llama3 rope scaling kept) with expansion.json ({"old_vocab_size": 128256, …})

"$ALLAM" model info --model llama3.2-1b-ar-expanded
