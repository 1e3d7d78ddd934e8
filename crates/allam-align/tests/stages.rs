//! SFT and DPO runs end to end on a tiny model trained from scratch with a byte tokenizer.
use std::path::Path;

use allam_align::{AlignConfig, run_dpo, run_sft};
use allam_train::Quiet;
use allam_train::Start;

fn rows(run_dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(run_dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// A byte tokenizer, data and a configuration for `stage` in `dir`.
fn setup(dir: &Path, data: &str, body: &str) -> AlignConfig {
    allam_data::testing::byte_tokenizer()
        .save(dir.join("tokenizer.json"), false)
        .unwrap();
    std::fs::write(dir.join("data.jsonl"), data).unwrap();
    let text = format!(
        "[model]\ntokenizer = \"tokenizer.json\"\nseed = 5\n[model.architecture]\nhidden_size = 32\n\
         intermediate_size = 64\nnum_hidden_layers = 1\nnum_attention_heads = 2\nnum_key_value_heads = 1\n\
         max_position_embeddings = 256\n[data]\npath = \"data.jsonl\"\ntemplate = \"llama2\"\nseq_len = 256\n{body}"
    );
    std::fs::write(dir.join("stage.toml"), text).unwrap();
    AlignConfig::load(&dir.join("stage.toml")).unwrap()
}

const PAIRS: &str = r#"{"prompt": "Capital of France?", "chosen": "Paris.", "rejected": "Rome, obviously."}
{"prompt": "2 + 2 =", "chosen": "4", "rejected": "5"}
{"prompt": "Say hi", "chosen": "Hello!", "rejected": "Go away."}
{"messages": [{"role": "user", "content": "عاصمة مصر؟"}], "chosen": "القاهرة.", "rejected": "Cairo."}
"#;

const DPO_BODY: &str = "[schedule]\nkind = \"constant\"\nlr = 1e-2\n[train]\nmax_steps = 12\nmicro_batch_size = 4\n\
                        [dpo]\nbeta = 0.1\nloss = \"sigmoid\"\nreference = \"REF\"\n[checkpoint]\nkeep = 1\n";

#[test]
fn dpo_starts_at_ln2_and_learns_the_training_pairs() {
    let dir = tempfile::tempdir().unwrap();
    let config = setup(dir.path(), PAIRS, &DPO_BODY.replace("REF", "cached"));
    let run = dir.path().join("run");
    run_dpo(&config, &run, None, Start::Fresh, &Quiet).unwrap();
    let rows = rows(&run);
    assert_eq!(rows.len(), 12);
    // policy = reference at the first step: h = 0, loss = ln 2, rewards 0
    let first = &rows[0];
    assert!(
        (first["loss"].as_f64().unwrap() - std::f64::consts::LN_2).abs() < 1e-6,
        "{first}"
    );
    assert!(first["margin"].as_f64().unwrap().abs() < 1e-6, "{first}");
    let last = rows.last().unwrap();
    assert_eq!(last["accuracy"].as_f64().unwrap(), 1.0, "{last}");
    assert!(last["margin"].as_f64().unwrap() > 0.0);
    assert!(last["rewards_chosen"].as_f64().unwrap() > last["rewards_rejected"].as_f64().unwrap());
    assert!(
        last["loss"].as_f64().unwrap() < 0.5 * std::f64::consts::LN_2,
        "{last}"
    );
    assert!(run.join("reference_logprobs.json").exists());
    assert!(run.join("final/model.safetensors").exists());
}

/// Held-out pairs are scored at the evaluation (here the last step) against the starting model:
/// the training pairs themselves are all won with a positive margin, and the same pairs with chosen
/// and rejected swapped are all lost with exactly the opposite margin.
#[test]
fn dpo_reports_reward_accuracy_and_margin_on_held_out_pairs() {
    let swapped: String = PAIRS
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            let (c, r) = (v["chosen"].clone(), v["rejected"].clone());
            v["chosen"] = r;
            v["rejected"] = c;
            v.to_string() + "\n"
        })
        .collect();
    let heldout = |pairs: &str| {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("heldout.jsonl"), pairs).unwrap();
        let body = DPO_BODY.replace("REF", "cached");
        let mut config = setup(dir.path(), PAIRS, &body);
        config.data.eval_path = Some(dir.path().join("heldout.jsonl"));
        let run = dir.path().join("run");
        run_dpo(&config, &run, None, Start::Fresh, &Quiet).unwrap();
        let last = rows(&run).pop().unwrap();
        let value = |k: &str| last[k].as_f64().unwrap_or_else(|| panic!("no {k} in {last}"));
        (value("eval/pairs/reward_accuracy"), value("eval/pairs/margin"))
    };
    let (accuracy, margin) = heldout(PAIRS);
    assert_eq!(accuracy, 1.0);
    assert!(margin > 0.05, "{margin}");
    let (accuracy, swapped_margin) = heldout(&swapped);
    assert_eq!(accuracy, 0.0);
    assert!(
        (swapped_margin + margin).abs() < 1e-6,
        "{swapped_margin} vs {margin}"
    );
}

#[test]
fn cached_and_in_memory_references_give_the_same_losses() {
    let dir = tempfile::tempdir().unwrap();
    let cached = setup(dir.path(), PAIRS, &DPO_BODY.replace("REF", "cached"));
    let memory = setup(dir.path(), PAIRS, &DPO_BODY.replace("REF", "memory"));
    run_dpo(&cached, &dir.path().join("a"), Some(3), Start::Fresh, &Quiet).unwrap();
    run_dpo(&memory, &dir.path().join("b"), Some(3), Start::Fresh, &Quiet).unwrap();
    let (a, b) = (rows(&dir.path().join("a")), rows(&dir.path().join("b")));
    for (x, y) in a.iter().zip(&b) {
        let (lx, ly) = (x["loss"].as_f64().unwrap(), y["loss"].as_f64().unwrap());
        assert!((lx - ly).abs() < 1e-5, "{lx} vs {ly}");
    }
    assert!(!dir.path().join("b/reference_logprobs.json").exists());
}

/// Under bf16-mixed the reference runs in the policy's arithmetic, so at the first step the
/// policy is the reference: rewards 0 and loss ln 2, whichever way the reference is kept.
#[test]
fn under_bf16_mixed_dpo_starts_at_the_reference() {
    for reference in ["cached", "memory"] {
        let dir = tempfile::tempdir().unwrap();
        let body = DPO_BODY
            .replace("REF", reference)
            .replace("[train]\n", "[train]\nprecision = \"bf16-mixed\"\n");
        let config = setup(dir.path(), PAIRS, &body);
        let run = dir.path().join("run");
        run_dpo(&config, &run, Some(1), Start::Fresh, &Quiet).unwrap();
        let first = &rows(&run)[0];
        let value = |k: &str| first[k].as_f64().unwrap_or_else(|| panic!("no {k} in {first}"));
        assert!(
            (value("loss") - std::f64::consts::LN_2).abs() < 1e-6,
            "{reference}: {first}"
        );
        for key in ["rewards_chosen", "rewards_rejected", "margin"] {
            assert!(value(key).abs() < 1e-6, "{reference}: {key} in {first}");
        }
    }
}

const CONVERSATIONS: &str = r#"{"messages": [{"role": "user", "content": "Say yes."}, {"role": "assistant", "content": "yes"}]}
{"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Colour of the sky?"}, {"role": "assistant", "content": "Blue."}]}
{"instruction": "Translate to Arabic", "input": "cat", "output": "قطة"}
"#;

#[test]
fn sft_trains_assistant_tokens_and_reports_packing() {
    let dir = tempfile::tempdir().unwrap();
    let body = "[schedule]\nkind = \"constant\"\nlr = 1e-2\n[train]\nepochs = 20\nmicro_batch_size = 1\n[checkpoint]\nkeep = 1\n";
    let config = setup(dir.path(), CONVERSATIONS, body);
    let run = dir.path().join("run");
    let summary = run_sft(&config, &run, None, Start::Fresh, &Quiet).unwrap();
    // three short conversations fit one row of 256 bytes: 20 epochs of one row = 20 steps
    assert_eq!(summary.packing.rows, 1);
    assert_eq!(summary.run.steps, 20);
    let rows = rows(&run);
    let (first, last) = (
        rows[0]["loss"].as_f64().unwrap(),
        rows[19]["loss"].as_f64().unwrap(),
    );
    assert!(last < 0.5 * first, "{first} → {last}");
    let packing: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("packing.json")).unwrap()).unwrap();
    assert_eq!(packing["conversations"], 3);
    assert_eq!(packing["conversations_dropped"], 0);
}

#[test]
fn the_reference_cache_is_recomputed_when_the_pairs_change() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let read = || allam_align::stage::ReferenceCache::read(&run.join("reference_logprobs.json")).unwrap();
    let config = setup(dir.path(), PAIRS, &DPO_BODY.replace("REF", "cached"));
    run_dpo(&config, &run, Some(1), Start::Fresh, &Quiet).unwrap();
    let first = read();
    // same number of pairs, other answers: a stale cache would be silently wrong
    let changed = PAIRS.replace("Paris.", "Paris, on the Seine.");
    let config = setup(dir.path(), &changed, &DPO_BODY.replace("REF", "cached"));
    run_dpo(&config, &run, Some(1), Start::Resume, &Quiet).unwrap();
    let second = read();
    assert_ne!(first.key, second.key);
    assert_ne!(first.values[0], second.values[0]);
    assert_eq!(first.values[1..], second.values[1..]);
}

/// Three SFT steps and three DPO steps (cached reference) on every test device give the CPU's
/// losses, and DPO the CPU's rewards, to 1e-4 relative: the same stages, configured only by
/// `[train] device`.
#[test]
fn sft_and_dpo_steps_agree_on_every_device() {
    let metrics = |device: &str| {
        let dir = tempfile::tempdir().unwrap();
        let sft = format!(
            "[schedule]\nkind = \"constant\"\nlr = 1e-2\n[train]\ndevice = \"{device}\"\nmax_steps = 3\n\
             micro_batch_size = 1\n[checkpoint]\nkeep = 1\n"
        );
        let config = setup(dir.path(), CONVERSATIONS, &sft);
        run_sft(&config, &dir.path().join("sft"), None, Start::Fresh, &Quiet).unwrap();
        let dpo = DPO_BODY
            .replace("REF", "cached")
            .replace("max_steps = 12", &format!("max_steps = 3\ndevice = \"{device}\""));
        let config = setup(dir.path(), PAIRS, &dpo);
        run_dpo(&config, &dir.path().join("dpo"), None, Start::Fresh, &Quiet).unwrap();
        (rows(&dir.path().join("sft")), rows(&dir.path().join("dpo")))
    };
    let (sft_cpu, dpo_cpu) = metrics("cpu");
    assert_eq!((sft_cpu.len(), dpo_cpu.len()), (3, 3));
    for (dev, _) in allam_model::device::test_devices() {
        let (sft, dpo) = metrics(dev);
        let keys = [
            ("sft", &sft, &sft_cpu, &["loss"][..]),
            (
                "dpo",
                &dpo,
                &dpo_cpu,
                &["loss", "rewards_chosen", "rewards_rejected"][..],
            ),
        ];
        for (stage, got, want, names) in keys {
            assert_eq!(got.len(), want.len(), "{dev} {stage}");
            for (g, w) in got.iter().zip(want) {
                for name in names {
                    let (a, b) = (g[name].as_f64().unwrap(), w[name].as_f64().unwrap());
                    assert!(
                        (a - b).abs() <= 1e-4 * b.abs().max(1.0),
                        "{dev} {stage} step {}: {name} {a} vs {b}",
                        w["step"]
                    );
                }
            }
        }
    }
}

/// Collects the messages a run tells.
#[derive(Default)]
struct Messages(std::sync::Mutex<Vec<String>>);

impl allam_train::RunObserver for Messages {
    fn message(&self, message: &str) {
        self.0.lock().unwrap().push(message.to_string());
    }
}

#[test]
fn dpo_cuts_pairs_longer_than_seq_len_and_says_how_many() {
    let dir = tempfile::tempdir().unwrap();
    let body = DPO_BODY
        .replace("REF", "cached")
        .replace("max_steps = 12", "max_steps = 2")
        .replace("loss = \"sigmoid\"", "loss = \"sigmoid\"\nmax_prompt_length = 16");
    let mut config = setup(dir.path(), PAIRS, &body);
    config.data.seq_len = 40;
    let run = dir.path().join("run");
    let messages = Messages::default();
    run_dpo(&config, &run, None, Start::Fresh, &messages).unwrap();
    let told = messages.0.lock().unwrap().join("\n");
    // Byte tokens, Llama-2 template (BOS, `[INST] `, ` [/INST]`: 16 tokens around the prompt):
    // France (34 + 18 for "Rome, obviously.") and Egypt (16 + 19 bytes of Arabic + 16 bytes of
    // answer) exceed 40; "2 + 2" and "Say hi" fit.
    assert!(
        told.contains("2 of 4 pair(s) longer than 40 tokens cut (prompt to 16 tokens, keeping its end"),
        "{told}"
    );
    let first = &rows(&run)[0];
    assert!(
        (first["loss"].as_f64().unwrap() - std::f64::consts::LN_2).abs() < 1e-6,
        "{first}"
    );
}

/// `truncation = "sequence"` (current TRL): each sequence is cut to seq_len keeping its start,
/// and a pair whose prompt alone fills seq_len is dropped; a prompt limit is refused there.
#[test]
fn dpo_cuts_whole_sequences_as_current_trl_does() {
    let dir = tempfile::tempdir().unwrap();
    let body = DPO_BODY
        .replace("REF", "cached")
        .replace("max_steps = 12", "max_steps = 1")
        .replace(
            "loss = \"sigmoid\"",
            "loss = \"sigmoid\"\ntruncation = \"sequence\"",
        );
    let mut config = setup(dir.path(), PAIRS, &body);
    // The France (34) and Egypt (35) prompts fill 34 tokens; "2 + 2" and "Say hi" fit whole.
    config.data.seq_len = 34;
    let run = dir.path().join("run");
    let messages = Messages::default();
    run_dpo(&config, &run, None, Start::Fresh, &messages).unwrap();
    let told = messages.0.lock().unwrap().join("\n");
    assert!(
        told.contains("2 of 4 pair(s) dropped: their prompt alone fills 34 tokens"),
        "{told}"
    );
    assert!(!told.contains("cut ("), "{told}");

    let refused = body.replace(
        "truncation = \"sequence\"",
        "truncation = \"sequence\"\nmax_prompt_length = 8",
    );
    std::fs::write(
        dir.path().join("stage.toml"),
        format!(
            "{}{refused}",
            std::fs::read_to_string(dir.path().join("stage.toml"))
                .unwrap()
                .split("[schedule]")
                .next()
                .unwrap()
        ),
    )
    .unwrap();
    let error = AlignConfig::load(&dir.path().join("stage.toml"))
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("max_prompt_length applies to truncation = \"prompt-first\" only"),
        "{error}"
    );
}
