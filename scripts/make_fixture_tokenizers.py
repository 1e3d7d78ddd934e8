#!/usr/bin/env python3
"""Writes the small Llama-style tokenizers of the test fixtures (no dependencies).

Each is a `tokenizers` BPE with byte fallback and `▁` word marks, like Llama-2 / Mistral, trained here
by a few lines of BPE on text we wrote ourselves, so that `tests/fixtures/*` look like a model
directory downloaded from the Hub:

- tiny-gqa-untied: BOS added by the post-processor, a Llama-2 `[INST]` chat template;
- tiny-mha-tied-bf16: no post-processor (no BOS), a ChatML-style chat template;
- tiny-llama3-rope-scaling: as tiny-gqa-untied (the model side is what that fixture tests);
- tiny-qwen2-bias: as tiny-mha-tied-bf16 (Qwen2 adds no BOS and chats in ChatML).

Run from the repository root: `python3 scripts/make_fixture_tokenizers.py`.
"""
import collections
import json
import pathlib

TEXT = """the cat sat on the mat. the dog ran to the park! a bird sang in the tree.
we read a book and then we went home. is it time to eat? yes, it is time.
the sun is warm and the sea is blue. she said hello to her friend at the door."""

SPECIALS = ["<unk>", "<s>", "</s>"]
ALPHABET = ["▁"] + [chr(c) for c in range(ord("a"), ord("z") + 1)] + list(".,!?'")


def train(vocab_size):
    vocab = SPECIALS + ALPHABET
    words = collections.Counter("▁" + w for w in TEXT.replace("\n", " ").split(" ") if w)
    splits = {w: list(w) for w in words}
    merges = []
    while len(vocab) < vocab_size:
        pairs = collections.Counter()
        for w, n in words.items():
            s = splits[w]
            for a, b in zip(s, s[1:]):
                pairs[(a, b)] += n
        if not pairs:
            break
        (a, b), _ = max(pairs.items(), key=lambda kv: (kv[1], kv[0]))
        merges.append([a, b])
        vocab.append(a + b)
        for w in splits:
            s, out, i = splits[w], [], 0
            while i < len(s):
                if i + 1 < len(s) and s[i] == a and s[i + 1] == b:
                    out.append(a + b)
                    i += 2
                else:
                    out.append(s[i])
                    i += 1
            splits[w] = out
    return {t: i for i, t in enumerate(vocab)}, merges


def tokenizer_json(vocab_size, add_bos):
    vocab, merges = train(vocab_size)
    added = [
        {"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False,
         "normalized": False, "special": True}
        for i, t in enumerate(SPECIALS)
    ]
    post = None
    if add_bos:
        post = {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": "<s>", "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}},
        }
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "Prepend", "prepend": "▁"},
            {"type": "Replace", "pattern": {"String": " "}, "content": "▁"},
        ]},
        "pre_tokenizer": None,
        "post_processor": post,
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
            {"type": "ByteFallback"},
            {"type": "Fuse"},
            {"type": "Strip", "content": " ", "start": 1, "stop": 0},
        ]},
        "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>", "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": True, "byte_fallback": True,
                  "ignore_merges": False, "vocab": vocab, "merges": merges},
    }


LLAMA2_TEMPLATE = (
    "{% if messages[0]['role'] == 'system' %}{% set system = messages[0]['content'] %}"
    "{% set messages = messages[1:] %}{% else %}{% set system = false %}{% endif %}"
    "{% for message in messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if loop.index0 == 0 and system %}{% set content = '<<SYS>>\\n' + system + '\\n<</SYS>>\\n\\n' + message['content'] %}"
    "{% else %}{% set content = message['content'] %}{% endif %}"
    "{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ ' ' + content.strip() + ' ' + eos_token }}{% endif %}"
    "{% endfor %}"
)

CHATML_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def main():
    root = pathlib.Path(__file__).resolve().parent.parent / "tests" / "fixtures"
    for name, size, bos, template in [
        ("tiny-gqa-untied", 96, True, LLAMA2_TEMPLATE),
        ("tiny-mha-tied-bf16", 80, False, CHATML_TEMPLATE),
        ("tiny-llama3-rope-scaling", 112, True, LLAMA2_TEMPLATE),
        ("tiny-qwen2-bias", 100, False, CHATML_TEMPLATE),
    ]:
        d = root / name
        (d / "tokenizer.json").write_text(json.dumps(tokenizer_json(size, bos), ensure_ascii=False, indent=2) + "\n")
        config = {"add_bos_token": bos, "add_eos_token": False, "bos_token": "<s>", "eos_token": "</s>",
                  "unk_token": "<unk>", "pad_token": None, "model_max_length": 128, "legacy": False,
                  "tokenizer_class": "LlamaTokenizerFast", "chat_template": template}
        (d / "tokenizer_config.json").write_text(json.dumps(config, ensure_ascii=False, indent=2) + "\n")


if __name__ == "__main__":
    main()
