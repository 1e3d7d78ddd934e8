#!/usr/bin/env python3
"""Writes the golden files of `allam eval`'s prompt formats: what the reference implementations
themselves render for a few documents of ours.

Output: `crates/allam-eval/tests/golden/<format>.json`, one file per format, each holding the test
and dev documents (in the JSON Lines shape `allam eval --task <task>` reads), the reference that
rendered them and, for every test document, 0 and `shots` examples, without a chat template and
under three chat templates: the context the choices continue and each choice's continuation,
exactly as the reference builds its log-likelihood requests. `crates/allam-eval/tests/golden.rs`
renders the same documents through `allam-eval` and compares byte for byte.

| format | rendered by |
|---|---|
| `mmlu` | lm-evaluation-harness: `ConfigurableTask`s of `tasks/mmlu/default` (`mmlu_<subject>`) |
| `arabic-mmlu` | lm-evaluation-harness: `tasks/arabicmmlu` (`arabicmmlu_<group>`) |
| `arabic-exams` | lm-evaluation-harness: `tasks/arabic_leaderboard_complete` `arabic_exams` |
| `acva` | lm-evaluation-harness: `arabic_leaderboard_acva_<subset>` |
| `arabic-mmlu-ar` | ArabicMMLU's own `util_prompt.prepare_data_ar` / `util_compute.alpa_ar` for each document's prompt and letters, assembled (examples, chat) by lm-evaluation-harness' `ConfigurableTask` (the original is 0-shot) |
| `arabic-exams-oall`, `acva-oall` | lighteval 0.10.0: its community `arabic_evals.py` (`arabic_exams_pfn`, `acva_pfn`, their task configs) through its own `LightevalTask`, `PromptManager.add_context_to_doc` and `construct_requests` |

The harness' tasks are built from the YAML configs inside the installed `lm_eval` (through its
`TaskManager`), with `custom_dataset` returning our documents instead of loading from the Hub;
requests come from `ConfigurableTask.build_all_requests` (`fewshot_context` and
`construct_requests`), as `lm_eval.evaluator` calls it. Examples are chosen by the configs' own
sampler (`first_n` for every task here; lighteval's `sequential`), so the goldens test
selection and assembly together; nothing is sampled at random. One harness task is one group
(an MMLU subject, an ArabicMMLU level and subject, an ACVA subset, all of EXAMS): it is given
the test and dev documents of its group, and the golden maps its requests back to the
documents' places in the files.

Chat templates (`--chat`): the harness' `HFLM.apply_chat_template` (system turn dropped and the
template retried when it raises) on a `transformers` tokenizer loaded offline from a fixture of
this repository: `chatml` (`tests/fixtures/tiny-mha-tied-bf16`), `llama2`
(`tests/fixtures/tiny-gqa-untied`, BOS in the template, system in `<<SYS>>`), and `nosystem`
(the `chatml` tokenizer with `NO_SYSTEM_TEMPLATE` below, which raises on a system turn as
Gemma's does). lighteval calls `tokenizer.apply_chat_template` itself.

Run (Python 3.11; PyPI only):

    python3 -m venv scripts/.venv-harness
    scripts/.venv-harness/bin/pip install lm_eval==0.4.13 lighteval==0.10.0 transformers==5.25.0 \\
        "pyarrow<21"
    scripts/.venv-harness/bin/python scripts/make_eval_goldens.py \\
        --lighteval-arabic-evals PATH/lighteval@v0.10.0/community_tasks/arabic_evals.py \\
        --arabicmmlu PATH/ArabicMMLU@8d5b148b

lighteval's wheel does not ship its community tasks and ArabicMMLU is not a package: the two
options name a checkout of each (lighteval at tag v0.10.0, mbzuai-nlp/ArabicMMLU at 8d5b148b).
Without one, the formats that need it are not written (the committed files stay).
`prepare_data_ar` reads its CSV through pandas, so an option column whose values are all numbers
would come back as floats (`1800.0`); no option column of ours is all numbers. `pyarrow<21`
because lighteval 0.10 pins numpy<2.

The committed files were made with lm_eval 0.4.13, lighteval 0.10.0 (arabic_evals.py at
v0.10.0), ArabicMMLU 8d5b148b, transformers 5.25.0, jinja2 3.1.6, datasets 5.2.0, torch 2.15.0
(imported by `lm_eval.models.huggingface` and lighteval, unused), Python 3.11.7.
"""
import argparse
import functools
import importlib.util
import json
import logging
import os
import pathlib
import random
import sys
import tempfile
import types

ROOT = pathlib.Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "crates/allam-eval/tests/golden"
FIXTURES = ROOT / "tests/fixtures"
SHOTS = 2

# A Gemma-like template: no system role (the harness then drops the description).
NO_SYSTEM_TEMPLATE = (
    "{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}"
    "{% for message in messages %}{{ '<start_of_turn>' + message['role'] + '\\n' + message['content'] | trim"
    " + '<end_of_turn>\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<start_of_turn>model\\n' }}{% endif %}"
)
CHATS = {
    "chatml": {"fixture": "tiny-mha-tied-bf16"},
    "llama2": {"fixture": "tiny-gqa-untied"},
    "nosystem": {"fixture": "tiny-mha-tied-bf16", "template": NO_SYSTEM_TEMPLATE},
}

# ---------------------------------------------------------------- our documents (written here)

MMLU_TEST = [
    {"question": "  What is 2 + 2?\n", "subject": "high_school_mathematics", "choices": ["3", "4", " 5", "6"], "answer": 1},
    {"question": "Which planet is closest to the Sun?", "subject": "astronomy", "choices": ["Venus", "Mercury", "Mars", "Earth"], "answer": 1},
    {"question": "What is 10 / 2?", "subject": "high_school_mathematics", "choices": ["2", "5", "8", "20"], "answer": 1},
]
MMLU_DEV = [
    {"question": "What is 1 + 1?", "subject": "high_school_mathematics", "choices": ["2", "3", "4", "5"], "answer": 0},
    {"question": "What is the Moon?", "subject": "astronomy", "choices": ["A star", "A planet", "A satellite", "A comet"], "answer": 2},
    {"question": "What is 3 * 3?", "subject": "high_school_mathematics", "choices": ["6", "8", "9", "12"], "answer": 2},
    {"question": "Which star is nearest to Earth?", "subject": "astronomy", "choices": ["Sirius", "The Sun", "Vega", "Polaris"], "answer": 1},
    {"question": "What is 5 - 5?", "subject": "high_school_mathematics", "choices": ["0", "1", "5", "10"], "answer": 0},
]
MMLU_TASKS = {"high_school_mathematics": "mmlu_high_school_mathematics", "astronomy": "mmlu_astronomy"}


def amm(id_, subject, level, country, context, question, options, key):
    options = list(options) + [None] * (5 - len(options))
    doc = {"ID": id_, "Subject": subject, "Level": level, "Country": country, "Context": context,
           "Question": question}
    doc.update({f"Option {i + 1}": o for i, o in enumerate(options)})
    doc["Answer Key"] = key
    return doc


ARABIC_MMLU_TEST = [
    amm(7, "Accounting", "Univ", "KSA", "نص قصير", "ما هو الأصل؟", ["نقد", "دين", "ربح"], "B"),
    amm(8, "History", "High", None, None, "متى بدأت الحرب العالمية الأولى؟", ["1914", "1918", "1939", "1945", "لا شيء مما سبق"], "A"),
    amm(9, "Political Science", "Univ", "Egypt", None, "ما هي السلطة التشريعية؟", ["البرلمان", "المحكمة"], "A"),
]
ARABIC_MMLU_DEV = [
    amm(1, "Accounting", "Univ", None, None, "س١", ["x", "y"], "A"),
    amm(2, "History", "High", "Jordan", None, "من بنى الأهرامات؟", ["المصريون", "الرومان", "الفرس"], "A"),
    amm(3, "Accounting", "Univ", "Egypt", None, "س٢", ["ق", "ك", "ل", "م"], "D"),
    amm(4, "History", "High", None, "نص تاريخي", "في أي قرن؟", ["الأول", "الثاني"], "B"),
    amm(5, "Political Science", "Univ", None, None, "ما الدستور؟", ["قانون أساسي", "عقد"], "A"),
    amm(6, "Political Science", "Univ", "UAE", None, "من يسن القوانين؟", ["الشعب", "البرلمان", "الوزير"], "B"),
]
ARABIC_MMLU_TASKS = {
    ("Accounting", "Univ"): "arabicmmlu_accounting_university",
    ("History", "High"): "arabicmmlu_history_high_school",
    ("Political Science", "Univ"): "arabicmmlu_political_science_university",
}

EXAMS_TEST = [
    {"id": "e1", "question": "ما عاصمة مصر؟", "A": "القاهرة", "B": "الجيزة", "C": "أسوان", "D": "الأقصر", "answer": "A", "subject": "Social_Studies"},
    {"id": "e2", "question": "ما ناتج ٢ + ٣؟", "A": "٤", "B": "٥", "C": "٦", "D": "٧", "answer": "B", "subject": "Math"},
]
EXAMS_DEV = [
    {"id": "v1", "question": "ما لون السماء؟", "A": "أحمر", "B": "أزرق", "C": "أخضر", "D": "أصفر", "answer": "B", "subject": "Science"},
    {"id": "v2", "question": "كم عدد أركان الإسلام؟", "A": "ثلاثة", "B": "أربعة", "C": "خمسة", "D": "ستة", "answer": "C", "subject": "Islamic Studies"},
    {"id": "v3", "question": "سؤال ثالث", "A": "١", "B": "٢", "C": "٣", "D": "٤", "answer": "D", "subject": "Science"},
]

ACVA_TEST = [
    {"id": "1", "question": "الرياض عاصمة السعودية", "answer": "صح", "subject": "Saudi_Arabia"},
    {"id": "2", "question": "تونس تقع في آسيا", "answer": "خطأ", "subject": "Tunisia"},
    {"id": "3", "question": "جدة على البحر الأحمر", "answer": "صح", "subject": "Saudi_Arabia"},
]
ACVA_DEV = [
    {"id": "a", "question": "القاهرة في تونس", "answer": "خطأ", "subject": "Tunisia"},
    {"id": "b", "question": "جدة مدينة ساحلية", "answer": "صح", "subject": "Saudi_Arabia"},
    {"id": "c", "question": "مكة في مصر", "answer": "خطأ", "subject": "Saudi_Arabia"},
    {"id": "d", "question": "القيروان مدينة تونسية", "answer": "صح", "subject": "Tunisia"},
    {"id": "e", "question": "الدمام شرق المملكة", "answer": "صح", "subject": "Saudi_Arabia"},
]
ACVA_TASKS = {"Saudi_Arabia": "arabic_leaderboard_acva_Saudi_Arabia", "Tunisia": "arabic_leaderboard_acva_Tunisia"}


def versions():
    import datasets
    import jinja2
    import transformers
    from importlib.metadata import version

    out = {"python": sys.version.split()[0], "lm_eval": version("lm_eval"), "transformers": transformers.__version__,
           "jinja2": jinja2.__version__, "datasets": datasets.__version__}
    try:
        out["lighteval"] = version("lighteval")
    except Exception:
        pass
    return out


# ---------------------------------------------------------------- chat templates


def tokenizers():
    """The fixtures' tokenizers, as `transformers` loads a model directory (offline)."""
    from transformers import AutoTokenizer

    out = {}
    for name, spec in CHATS.items():
        tok = AutoTokenizer.from_pretrained(str(FIXTURES / spec["fixture"]), local_files_only=True)
        if "template" in spec:
            tok.chat_template = spec["template"]
        out[name] = tok
    return out


def harness_chat_template(tokenizer):
    """`HFLM.apply_chat_template` (lm_eval/models/huggingface.py), bound to a model that is only
    its tokenizer: the callable `lm_eval.evaluator` passes to `build_all_requests`."""
    from lm_eval.models.huggingface import HFLM

    lm = types.SimpleNamespace(tokenizer=tokenizer, chat_template_args={})
    return functools.partial(HFLM.apply_chat_template, lm)


# ---------------------------------------------------------------- lm-evaluation-harness


def harness_task(name, test, dev, shots, overrides=None):
    """The harness' own `ConfigurableTask` for registered task `name`, its data `test`/`dev`."""
    import datasets
    from lm_eval.api.task import ConfigurableTask
    from lm_eval.tasks import TaskManager

    manager = harness_task.manager = getattr(harness_task, "manager", None) or TaskManager()
    entry = manager._index[name]
    config = manager._factory._load_full_config(entry, None)
    for key in ("tag", "group", "task_list"):
        config.pop(key, None)
    splits = {config["test_split"]: test, config["fewshot_split"]: dev}

    def dataset(**_):
        return datasets.DatasetDict({s: datasets.Dataset.from_list(rows) for s, rows in splits.items()})

    config["custom_dataset"] = dataset
    config["num_fewshot"] = shots
    config.update(overrides or {})
    return ConfigurableTask(config=config)


def harness_requests(task, chat_template):
    """`{doc_id: (context, [continuations])}` from `build_all_requests`, as the evaluator calls it."""
    task.build_all_requests(apply_chat_template=chat_template is not None, fewshot_as_multiturn=False,
                            chat_template=chat_template)
    out = {}
    for inst in task.instances:
        ctx, cont = inst.arguments
        context, conts = out.setdefault(inst.doc_id, (ctx, []))
        assert context == ctx
        conts.append(cont)
    return out


def harness_cases(groups, toks, overrides=None):
    """Cases for `groups`: `[(task name, [(file index, test doc)], dev docs)]`."""
    cases = []
    for shots in (0, SHOTS):
        for chat in [None] + list(CHATS):
            template = harness_chat_template(toks[chat]) if chat else None
            for name, test, dev in groups:
                task = harness_task(name, [d for _, d in test], dev, shots, overrides)
                requests = harness_requests(task, template)
                for doc_id, (index, _) in enumerate(test):
                    context, conts = requests[doc_id]
                    cases.append({"doc": index, "shots": shots, "chat": chat, "context": context,
                                  "continuations": conts})
    cases.sort(key=lambda c: (c["doc"], c["shots"], c["chat"] or ""))
    return cases


def grouped(test, dev, key, tasks):
    return [
        (task, [(i, d) for i, d in enumerate(test) if key(d) == group], [d for d in dev if key(d) == group])
        for group, task in tasks.items()
    ]


# ---------------------------------------------------------------- ArabicMMLU's own prompt


def arabicmmlu_ar(checkout, toks):
    """`prepare_data_ar` (Arabic prompt, Arabic letters, no LoRA) on our documents, written as the
    CSV it reads; the harness' arabicmmlu tasks assemble examples and chat around it with the
    letters of `util_compute.alpa_ar` and no target delimiter (the prompt ends in a space)."""
    import pandas as pd

    sys.path.insert(0, str(checkout))
    import util_compute
    import util_prompt

    docs = ARABIC_MMLU_TEST + ARABIC_MMLU_DEV
    with tempfile.TemporaryDirectory() as tmp:
        (pathlib.Path(tmp) / "data").mkdir()
        frame = pd.DataFrame([dict(d, is_few_shot=0) for d in docs])
        frame.to_csv(pathlib.Path(tmp) / "data/ArabicMMLU.csv", index=False)
        here = os.getcwd()
        os.chdir(tmp)
        try:
            inputs, _, options = util_prompt.prepare_data_ar(types.SimpleNamespace(lora_weights="x", lang_alpa="ar"))
        finally:
            os.chdir(here)
    prompts = {d["ID"]: p for d, p in zip(docs, inputs)}
    letters = list(util_compute.alpa_ar.values())
    choices = {d["ID"]: letters[: len(o)] for d, o in zip(docs, options)}
    overrides = {
        "doc_to_text": lambda doc: prompts[doc["ID"]],
        "doc_to_choice": lambda doc: choices[doc["ID"]],
        "doc_to_target": lambda doc: "ABCDE".index(doc["Answer Key"]),
        "target_delimiter": "",
    }
    groups = grouped(ARABIC_MMLU_TEST, ARABIC_MMLU_DEV, lambda d: (d["Subject"], d["Level"]), ARABIC_MMLU_TASKS)
    return harness_cases(groups, toks, overrides)


# ---------------------------------------------------------------- lighteval <= 0.10


def lighteval_cases(arabic_evals, config_of, test, dev, key, toks):
    """lighteval 0.10's requests: `PromptManager.add_context_to_doc` then `construct_requests`,
    the calls of `create_requests_from_tasks` (seed 0, no truncation, no system prompt)."""
    import datasets
    from lighteval.tasks.lighteval_task import LightevalTask
    from lighteval.tasks.prompt_manager import PromptManager

    spec = importlib.util.spec_from_file_location("arabic_evals", arabic_evals)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    groups = sorted({key(d) for d in test})
    cases = []
    for shots in (0, SHOTS):
        for chat in [None] + list(CHATS):
            for group in groups:
                cfg = config_of(module, group)
                task = LightevalTask(cfg.name, cfg)
                rows = {"test": [d for d in test if key(d) == group], "validation": [d for d in dev if key(d) == group]}
                task.dataset = datasets.DatasetDict({s: datasets.Dataset.from_list(r) for s, r in rows.items()})
                lm = types.SimpleNamespace(tokenizer=toks[chat] if chat else None, max_length=None)
                manager = PromptManager(task=task, lm=lm)
                indices = [i for i, d in enumerate(test) if key(d) == group]
                for index, doc in zip(indices, task.eval_docs()):
                    doc = manager.add_context_to_doc(doc, num_fewshot=shots, seed=0, sampler=random.Random(42),
                                                     truncate_few_shots=False, use_chat_template=chat is not None)
                    reqs = [r for rs in task.construct_requests(doc, doc.ctx, f"{index}_0", f"{cfg.name}|{shots}").values()
                            for r in rs]
                    assert all(r.context == doc.ctx for r in reqs)
                    cases.append({"doc": index, "shots": shots, "chat": chat, "context": doc.ctx,
                                  "continuations": [r.choice for r in reqs]})
    cases.sort(key=lambda c: (c["doc"], c["shots"], c["chat"] or ""))
    return cases


# ---------------------------------------------------------------- files


def write(fmt, task, reference, test, dev, cases):
    chats = {name: dict(spec) for name, spec in CHATS.items()}
    golden = {
        "format": fmt,
        "task": task,
        "reference": reference,
        "made_by": {"script": "scripts/make_eval_goldens.py", **versions()},
        "shots": SHOTS,
        "chat_templates": chats,
        "test": test,
        "dev": dev,
        "cases": cases,
    }
    GOLDEN.mkdir(parents=True, exist_ok=True)
    path = GOLDEN / f"{fmt}.json"
    path.write_text(json.dumps(golden, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {path.relative_to(ROOT)} ({len(cases)} cases)")


def main():
    os.environ.setdefault("TQDM_DISABLE", "1")
    logging.disable(logging.WARNING)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lighteval-arabic-evals", type=pathlib.Path,
                        help="community_tasks/arabic_evals.py of lighteval v0.10.0 (for the -oall formats)")
    parser.add_argument("--arabicmmlu", type=pathlib.Path,
                        help="a checkout of mbzuai-nlp/ArabicMMLU at 8d5b148b (for arabic-mmlu-ar)")
    args = parser.parse_args()
    toks = tokenizers()

    groups = grouped(MMLU_TEST, MMLU_DEV, lambda d: d["subject"], MMLU_TASKS)
    write("mmlu", "mmlu", "lm_eval tasks/mmlu/default: " + ", ".join(MMLU_TASKS.values()), MMLU_TEST, MMLU_DEV,
          harness_cases(groups, toks))

    groups = grouped(ARABIC_MMLU_TEST, ARABIC_MMLU_DEV, lambda d: (d["Subject"], d["Level"]), ARABIC_MMLU_TASKS)
    write("arabic-mmlu", "arabic-mmlu", "lm_eval tasks/arabicmmlu: " + ", ".join(ARABIC_MMLU_TASKS.values()),
          ARABIC_MMLU_TEST, ARABIC_MMLU_DEV, harness_cases(groups, toks))

    groups = [("arabic_exams", list(enumerate(EXAMS_TEST)), EXAMS_DEV)]
    write("arabic-exams", "exams", "lm_eval tasks/arabic_leaderboard_complete: arabic_exams", EXAMS_TEST, EXAMS_DEV,
          harness_cases(groups, toks))

    groups = grouped(ACVA_TEST, ACVA_DEV, lambda d: d["subject"], ACVA_TASKS)
    write("acva", "acva", "lm_eval tasks/arabic_leaderboard_complete: " + ", ".join(ACVA_TASKS.values()),
          ACVA_TEST, ACVA_DEV, harness_cases(groups, toks))

    if args.arabicmmlu:
        write("arabic-mmlu-ar", "arabic-mmlu",
              "ArabicMMLU 8d5b148b util_prompt.prepare_data_ar + util_compute.alpa_ar, assembled by lm_eval's arabicmmlu tasks "
              "(target delimiter \"\")", ARABIC_MMLU_TEST, ARABIC_MMLU_DEV, arabicmmlu_ar(args.arabicmmlu, toks))
    else:
        print("arabic-mmlu-ar not written: no --arabicmmlu checkout")

    if args.lighteval_arabic_evals:
        path = args.lighteval_arabic_evals
        write("arabic-exams-oall", "exams", "lighteval 0.10.0 community_tasks/arabic_evals.py at v0.10.0: arabic_exams",
              EXAMS_TEST, EXAMS_DEV,
              lighteval_cases(path, lambda m, _: m.arabic_exams_task, EXAMS_TEST, EXAMS_DEV, lambda d: "all", toks))
        write("acva-oall", "acva", "lighteval 0.10.0 community_tasks/arabic_evals.py at v0.10.0: acva:<subset>", ACVA_TEST, ACVA_DEV,
              lighteval_cases(path, lambda m, s: m.CustomACVATask(name=f"acva:{s}", hf_subset=s), ACVA_TEST, ACVA_DEV,
                              lambda d: d["subject"], toks))
    else:
        print("arabic-exams-oall, acva-oall not written: no --lighteval-arabic-evals file")


if __name__ == "__main__":
    main()
