#!/usr/bin/env python3
"""Python `tokenizers` reads an expanded tokenizer.json as written and encodes like the Rust crate.

    python scripts/tokenizer_python_check.py --tokenizer DIR/tokenizer.json --rust IDS.jsonl

IDS.jsonl is what `cargo run -p allam-tokenizer --example tokenizer_tool -- encode --tokenizer
DIR/tokenizer.json --text TEXTS` prints: one JSON object per text with `text`, `ids` (no special tokens),
`ids_with_specials` and `decoded_equal`. For each text this prints the pre-tokens Python's pre-tokenizer
makes, the ids of both libraries, whether they are equal, and whether Python's decode gives the text back;
it exits with status 1 if any ids differ or a decode does not give the text back.

Needs only `pip install tokenizers` (e.g. in /tmp/venv-tok); Python `tokenizers` uses Oniguruma for its
regexes, the Rust crate (as built here) fancy-regex, so equal ids also show that both engines read the
rewritten pre-tokenizer regex alike.
"""
import argparse
import json
import sys

import tokenizers
from tokenizers import Tokenizer


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokenizer", required=True, help="the tokenizer.json written by the Rust crate")
    parser.add_argument("--rust", required=True, help="JSONL of `tokenizer_tool encode` on the same file")
    args = parser.parse_args()

    tok = Tokenizer.from_file(args.tokenizer)
    with open(args.tokenizer, encoding="utf-8") as f:
        pre = json.load(f)["pre_tokenizer"]
    print(f"python tokenizers {tokenizers.__version__}; {args.tokenizer}; vocab {tok.get_vocab_size(True)}")
    print(f"pre_tokenizer: {json.dumps(pre, ensure_ascii=False)[:160]}...")
    failures = 0
    with open(args.rust, encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            text = row["text"]
            ids = tok.encode(text, add_special_tokens=False).ids
            with_specials = tok.encode(text, add_special_tokens=True).ids
            decoded = tok.decode(ids, skip_special_tokens=False)
            pieces = [p for p, _ in tok.pre_tokenizer.pre_tokenize_str(text)]
            same = ids == row["ids"] and with_specials == row["ids_with_specials"]
            back = decoded == text
            failures += (not same) + (not back) + (not row["decoded_equal"])
            shown = [tokenizers.decoders.ByteLevel().decode([p]) for p in pieces]
            print(f"\ntext: {text[:120]}")
            print(f"  python pre-tokens ({len(pieces)}): {shown[:12]}{' ...' if len(shown) > 12 else ''}")
            print(f"  rust ids   ({len(row['ids'])}): {row['ids'][:16]}{' ...' if len(ids) > 16 else ''}")
            print(f"  python ids ({len(ids)}): {ids[:16]}{' ...' if len(ids) > 16 else ''}")
            print(f"  ids equal (without / with special tokens): {ids == row['ids']} / "
                  f"{with_specials == row['ids_with_specials']}; decode == text: python {back}, "
                  f"rust {row['decoded_equal']}")
    print(f"\n{'OK' if failures == 0 else f'{failures} FAILURES'}")
    return 0 if failures == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
