#!/usr/bin/env bash
# Stage 1 of the ALLaM recipe at real scale: expand Llama-2's 32K tokenizer to 64K with Arabic
# pieces, then grow Llama-2-7B's embedding and output head to it (new rows = mean of the base rows
# of the pieces the old tokenizer splits each new token into).
# Run from this directory (or the copy of it that holds Llama-2-7b-hf/ and data/).
set -euo pipefail
ALLAM=${ALLAM:-allam}    # e.g. ALLAM=../../../target/release/allam

# Arabic corpus to learn the new pieces from (.txt or .jsonl with a "text" field, .gz/.zst allowed),
# and held-out Arabic text to measure fertility (tokens per word) before and after.
"$ALLAM" tokenizer expand \
  --base Llama-2-7b-hf/tokenizer.json \
  --corpus data/ar/web/*.jsonl.zst data/ar/news/*.jsonl.zst data/ar/books/*.jsonl.zst \
           data/ar/encyclopedia/*.jsonl.zst \
  --field text \
  --vocab-size 64000 \
  --eval data/heldout/ar.txt \
  --out tokenizers/llama2-ar-64k
# → tokenizers/llama2-ar-64k/{tokenizer.json, tokenizer_config.json, expansion-report.json}

"$ALLAM" tokenizer stats \
  --tokenizer Llama-2-7b-hf/tokenizer.json \
  --tokenizer tokenizers/llama2-ar-64k/tokenizer.json \
  --text data/heldout/en.txt data/heldout/ar.txt

"$ALLAM" model expand \
  --model Llama-2-7b-hf \
  --tokenizer tokenizers/llama2-ar-64k/tokenizer.json \
  --init mean \
  --out llama2-7b-ar-expanded
# → llama2-7b-ar-expanded/ (a Hugging Face directory, 64K rows) with expansion.json
#   ({"old_vocab_size": 32000, …}: the first new row for the embeddings-only warm-up)

"$ALLAM" model info --model llama2-7b-ar-expanded
