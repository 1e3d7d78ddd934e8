#!/usr/bin/env python3
"""Build a ~100 MB Arabic training text (one document per line) from ../shared's Quran verses, for the
tokenizer-training measurement in docs/PERFORMANCE.md. Never commit the output.

  repeat     the 6,236 verses, shuffled again for every copy (real text, only ~21k distinct words)
  recombine  lines of 5-30 pseudo-words, each the first half of one Quran word and the second half of
             another (~2.5M distinct words: a stress test for the trainer's merge phase)

usage: scripts/make_arabic_100mb.py repeat|recombine OUT [--shared ../shared]
"""
import json
import random
import sys

mode, out = sys.argv[1], sys.argv[2]
shared = sys.argv[sys.argv.index("--shared") + 1] if "--shared" in sys.argv else "../shared"
verses = [json.loads(l)["ar"] for l in open(f"{shared}/data/quran_parallel.jsonl", encoding="utf-8")]
target = 100 * 1000 * 1000
size = 0
with open(out, "w", encoding="utf-8") as f:
    if mode == "repeat":
        rng = random.Random(0)
        while size < target:
            rng.shuffle(verses)
            for v in verses:
                f.write(v + "\n")
                size += len(v.encode()) + 1
    elif mode == "recombine":
        rng = random.Random(1)
        words = [w for v in verses for w in v.split()]
        while size < target:
            line = " ".join(
                a[: max(1, len(a) // 2)] + b[len(b) // 2 :]
                for a, b in ((rng.choice(words), rng.choice(words)) for _ in range(rng.randint(5, 30)))
            )
            f.write(line + "\n")
            size += len(line.encode()) + 1
    else:
        sys.exit(f"unknown mode {mode}")
print(f"{out}: {size} bytes")
