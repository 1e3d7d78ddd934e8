//! The recipe from an existing base, end to end at a few steps per stage, on a tiny byte-level
//! base written by the test (random weights, a GPT-2-style tokenizer with a ChatML chat template)
//! and the repository's sample data.
use std::path::{Path, PathBuf};

use allam_recipe::from_base::{Options, StopAfter};
use allam_recipe::{BaseRecipe, Recipe, Silent, reproduce_from_base};

/// A Hugging Face directory: byte-level tokenizer (GPT-2 style, ~300 pieces), `tokenizer_config.json`
/// with a ChatML template, a 1-layer tied Llama with random weights.
fn tiny_base(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let tokenizer =
        allam_tokenizer::fixture::byte_level_style_tokenizer(300, 0, allam_tokenizer::ByteLevelStyle::Gpt2)
            .unwrap();
    tokenizer.save(dir.join("tokenizer.json"), false).unwrap();
    let template = "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}\
                    {% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";
    let config = serde_json::json!({"eos_token": "<|im_end|>", "bos_token": null, "chat_template": template});
    std::fs::write(dir.join("tokenizer_config.json"), config.to_string()).unwrap();
    let vocab = allam_model::expand::tokenizer_size(&tokenizer);
    let llama = allam_model::LlamaConfig::new(vocab, 32, 64, 1, 2, 1, 16)
        .with_tie_word_embeddings(true)
        .with_max_position_embeddings(1024);
    let device = allam_model::device::select("cpu").unwrap();
    let model = allam_train::params::seeded_init(llama.init(&device), 0.05, 3);
    let hf = allam_model::HfConfig::new(&llama);
    allam_model::save_model(&model, &hf, dir, &allam_model::SaveOptions::default()).unwrap();
}

fn sample(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../data/sample")
        .join(name);
    path.canonicalize().unwrap().display().to_string()
}

/// The recipe text for a base in `root/base`, writing into `root/out`.
fn recipe_text(root: &Path) -> String {
    let exams = root.join("exams.jsonl");
    let item = |stem: &str, answer: &str| {
        serde_json::json!({"question": {"stem": stem, "choices": [
            {"text": "الرياض", "label": "A"}, {"text": "القاهرة", "label": "B"},
            {"text": "تونس", "label": "C"}, {"text": "الرباط", "label": "D"}]},
            "answerKey": answer, "info": {"subject": "Geography"}})
        .to_string()
    };
    let items = [
        item("ما عاصمة السعودية؟", "A"),
        item("ما عاصمة مصر؟", "B"),
        item("ما عاصمة تونس؟", "C"),
    ];
    std::fs::write(&exams, items.join("\n")).unwrap();
    format!(
        r#"out = "out"
seed = 7
[base]
dir = "base"
[expansion]
new_pieces = 200
[data]
[data.clean]
min_chars = 10
min_words = 2
[[data.sources]]
name = "en"
language = "en"
paths = ["{en}"]
[[data.sources]]
name = "ar"
language = "ar"
paths = ["{ar}"]
[[data.sources]]
name = "pairs"
language = "ar_translated"
paths = ["{pairs}"]
parallel = {{ fields = ["en", "ar"] }}
[continued]
tokens = 1000
seq_len = 64
micro_batch_size = 2
grad_accum = 2
embedding_warmup_steps = 2
lr = 1e-3
min_lr = 1e-4
checkpoint_every = 1
[sft]
path = "{sft}"
steps = 2
seq_len = 384
micro_batch_size = 2
lr = 1e-3
checkpoint_every = 1
[dpo]
path = "{dpo}"
eval_path = "{dpo_heldout}"
steps = 2
seq_len = 256
micro_batch_size = 2
lr = 1e-3
[eval]
heldout = {{ en = "{en_heldout}", ar = "{ar_heldout}" }}
[[eval.tasks]]
name = "EXAMS-ar"
task = "exams"
path = "{exams}"
shots = 0
[[eval.tasks]]
name = "MC"
task = "mc-jsonl"
path = "{mc}"
limit = 8
"#,
        en = sample("en_docs.txt"),
        ar = sample("ar_docs.jsonl"),
        pairs = sample("parallel.jsonl"),
        sft = sample("sft.jsonl"),
        dpo = sample("preferences.jsonl"),
        dpo_heldout = sample("preferences_heldout.jsonl"),
        en_heldout = sample("en_heldout.txt"),
        ar_heldout = sample("ar_heldout.txt"),
        exams = exams.display(),
        mc = sample("mc_questions.jsonl"),
    )
}

fn write_recipe(root: &Path, text: &str) -> PathBuf {
    let path = root.join("recipe.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn load(path: &Path) -> BaseRecipe {
    match Recipe::load(path).unwrap() {
        Recipe::FromBase(recipe) => *recipe,
        Recipe::Toy(_) => panic!("a recipe with [base] is a recipe from a base"),
    }
}

fn numbers(outcome: &allam_recipe::Outcome) -> Vec<(String, f64, f64, Vec<f64>)> {
    outcome
        .scores
        .iter()
        .map(|s| {
            (
                s.stage.clone(),
                s.en_bpb,
                s.ar_bpb,
                s.accuracy.values().copied().collect(),
            )
        })
        .collect()
}

#[test]
fn a_recipe_from_a_base_runs_every_stage_and_resumes_stage_by_stage() {
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    tiny_base(&root.join("base"));
    let path = write_recipe(root, &recipe_text(root));
    let recipe = load(&path);
    // 1000 tokens / (2 rows × 64 tokens × 2 micro-batches) = 3.9 → 4 steps.
    assert_eq!(recipe.continued_steps(), Ok(4));

    let (outcome, verdicts, report) = reproduce_from_base(&recipe, Options::default(), &Silent)
        .unwrap()
        .expect("no stop asked for");
    let stages: Vec<&str> = outcome.scores.iter().map(|s| s.stage.as_str()).collect();
    assert_eq!(
        stages,
        [
            "1 base (base)",
            "2 expanded (before CPT)",
            "3 mixed CPT",
            "3 control CPT (English only)",
            "4 SFT",
            "5 DPO"
        ]
    );
    assert!(outcome.expanded_vocab >= outcome.base_vocab + 200, "{outcome:?}");
    assert!(
        verdicts.arabic_fertility_down && verdicts.english_unchanged,
        "{outcome:?}"
    );
    for s in &outcome.scores {
        assert!(s.en_bpb > 0.0 && s.ar_bpb > 0.0, "{s:?}");
        assert_eq!(s.accuracy.keys().collect::<Vec<_>>(), ["EXAMS-ar", "MC"]);
        // 3 EXAMS items: an accuracy in thirds; 8 MC items: in eighths.
        let exams = s.accuracy["EXAMS-ar"] * 3.0;
        assert!((exams - exams.round()).abs() < 1e-9, "{s:?}");
    }
    // The base's chat template travelled with the expanded tokenizer into every stage.
    let config = std::fs::read_to_string(root.join("out/stage4-sft/final/tokenizer_config.json")).unwrap();
    assert!(config.contains("im_start"), "{config}");
    let out = root.join("out");
    let trained: Vec<String> = std::fs::read_to_string(out.join("stage3-mixed/metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["trained"]
                .as_str()
                .unwrap()
                .into()
        })
        .collect();
    assert_eq!(trained, ["new_rows", "new_rows", "all", "all"]);
    assert_eq!(outcome.throughput.len(), 4, "{:?}", outcome.throughput);
    assert!(outcome.dpo_heldout_reward_accuracy.is_some());
    let md = std::fs::read_to_string(&report).unwrap();
    for want in [
        "# ALLaM recipe from base",
        "EXAMS-ar acc",
        "## 4. English",
        "## Training speed",
    ] {
        assert!(md.contains(want), "{want} missing:\n{md}");
    }
    assert!(out.join("bpb.svg").exists() && out.join("report.json").exists());

    // The same recipe interrupted inside stage 3, then after it, then resumed to the end.
    let second = root.join("second");
    std::fs::create_dir_all(&second).unwrap();
    std::fs::rename(root.join("base"), second.join("base")).unwrap();
    let path = write_recipe(&second, &recipe_text(&second));
    let recipe = load(&path);
    let stop = |s: &str| Options {
        resume: true,
        stop_after: Some(s.parse::<StopAfter>().unwrap()),
    };
    assert!(
        reproduce_from_base(&recipe, stop("mixed:2"), &Silent)
            .unwrap()
            .is_none()
    );
    let mixed = second.join("out/stage3-mixed");
    assert!(mixed.join("checkpoints/step-00000002").exists());
    let expanded = second.join("out/stage2-expanded/model.safetensors");
    let written = std::fs::metadata(&expanded).unwrap().modified().unwrap();
    assert!(
        reproduce_from_base(&recipe, stop("control"), &Silent)
            .unwrap()
            .is_none()
    );
    assert!(second.join("out/stage3-control/final").exists() && !second.join("out/stage4-sft").exists());
    let (resumed, _, _) = reproduce_from_base(
        &recipe,
        Options {
            resume: true,
            stop_after: None,
        },
        &Silent,
    )
    .unwrap()
    .unwrap();
    // Stage 2 was not done again; stage 3 continued from step 2: every number is the same.
    assert_eq!(std::fs::metadata(&expanded).unwrap().modified().unwrap(), written);
    let steps: Vec<u64> = std::fs::read_to_string(mixed.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["step"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(steps, [1, 2, 3, 4]);
    let (a, b) = (numbers(&outcome), numbers(&resumed));
    assert_eq!(a.len(), b.len());
    // Equal up to the last bit a JSON round trip of the kept scores may change.
    let same = |p: f64, q: f64| (p - q).abs() <= 1e-12 * p.abs().max(1.0);
    for (x, y) in a.iter().zip(&b) {
        assert!(
            x.0 == y.0 && same(x.1, y.1) && same(x.2, y.2) && x.3 == y.3,
            "{x:?} vs {y:?}"
        );
    }
    assert_eq!(outcome.dpo_reward_accuracy, resumed.dpo_reward_accuracy);

    // A changed recipe does not resume someone else's run.
    let changed = recipe_text(&second).replace("lr = 1e-3\nmin_lr", "lr = 2e-3\nmin_lr");
    let path = write_recipe(&second, &changed);
    let error = reproduce_from_base(
        &load(&path),
        Options {
            resume: true,
            stop_after: None,
        },
        &Silent,
    )
    .unwrap_err()
    .to_string();
    assert!(
        error.contains("differs") && error.contains("continued"),
        "{error}"
    );

    // The memory plan: the base's shape grown to the expanded vocabulary.
    let plans = allam_recipe::from_base::plans(&recipe).unwrap();
    assert_eq!(plans.len(), 3);
    assert_eq!(plans[0].1.tokens_per_micro_batch, 2 * 64);
    let grown = allam_recipe::from_base::config::BaseRecipe::clone(&recipe);
    assert!(plans[0].1.parameters > 0 && grown.expansion.new_pieces == Some(200));
}

#[test]
fn recipe_errors_name_the_file_and_the_key() {
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    tiny_base(&root.join("base"));
    let good = recipe_text(root);
    let cases = [
        (
            good.replace("new_pieces = 200", "vocab_size = 600\nnew_pieces = 200"),
            "exactly one of new_pieces or vocab_size",
        ),
        (
            good.replace("[base]", "[pretrain]\nsteps = 3\n[base]"),
            "trains no model from scratch",
        ),
        (
            good.replace("seed = 7", "seed = 7\nbogus = 1"),
            "unknown field `bogus`",
        ),
        (good.replace("dir = \"base\"", "dir = \"nowhere\""), "[base] dir"),
        (
            good.replace("tokens = 1000", "tokens = 1000\nsteps = 4"),
            "one of tokens, steps or epochs",
        ),
        (
            good.replace("embedding_warmup_steps = 2", "embedding_warmup_steps = 4"),
            "fewer than the stage's 4 steps",
        ),
        (good.replace("en = \"", "fr = \""), "heldout needs `en`"),
        (
            good.replace("language = \"ar\"\n", "language = \"fr\"\n"),
            "not in [languages]",
        ),
        (good.replace("task = \"exams\"", "task = \"quiz\""), "EXAMS-ar"),
        (
            good.replace("[sft]\n", "[sft]\ntemplate = \"vicuna\"\n"),
            "[sft] template",
        ),
    ];
    for (text, want) in cases {
        let path = write_recipe(root, &text);
        let error = Recipe::load(&path).unwrap_err().to_string();
        assert!(error.contains(want), "{want}: {error}");
        assert!(error.contains("recipe.toml") || want.contains("bogus"), "{error}");
    }
    // The base's own chat template is required for `template = "tokenizer"` (the default).
    std::fs::remove_file(root.join("base/tokenizer_config.json")).unwrap();
    let error = Recipe::load(&write_recipe(root, &good)).unwrap_err().to_string();
    assert!(
        error.contains("has no chat template") && error.contains("chatml"),
        "{error}"
    );
    let fixed = good.replace("[sft]\n", "[sft]\ntemplate = \"chatml\"\n");
    load(&write_recipe(root, &fixed));
}
