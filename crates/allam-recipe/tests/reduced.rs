//! The end-to-end recipe, reduced to a few steps per stage, on the repository's sample data.
use std::path::Path;

use allam_recipe::{RecipeConfig, Silent, reproduce};

#[test]
fn a_reduced_recipe_runs_every_stage_and_reports() {
    let dir = tempfile::tempdir().unwrap();
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/sample");
    let text = format!(
        "out = {out:?}\nsample = {sample:?}\nseed = 7\n\
         [base_tokenizer]\npieces = 300\n\
         [model]\nhidden_size = 32\nintermediate_size = 64\nnum_hidden_layers = 1\nnum_attention_heads = 2\nnum_key_value_heads = 1\n\
         [pretrain]\nsteps = 4\nlr = 3e-3\nmin_lr = 3e-4\nwarmup_steps = 1\nmicro_batch_size = 2\nseq_len = 64\n\
         [expansion]\nnew_pieces = 200\n\
         [continued]\nsteps = 4\nembedding_warmup_steps = 2\nlr = 1e-3\nmicro_batch_size = 2\nseq_len = 64\n\
         [continued.languages]\nen = 0.55\nar = 0.225\nar_translated = 0.225\n\
         [sft]\nsteps = 2\nlr = 1e-3\nmicro_batch_size = 2\nseq_len = 384\n\
         [dpo]\nsteps = 2\nlr = 1e-3\nmicro_batch_size = 2\nseq_len = 384\n",
        out = dir.path().join("run").display().to_string(),
        sample = sample.display().to_string(),
    );
    let path = dir.path().join("toy.toml");
    std::fs::write(&path, text).unwrap();
    let config = RecipeConfig::load(&path).unwrap();
    let (outcome, verdicts, report) = reproduce(&config, &Silent).unwrap();
    // tokenizer claims hold whatever the training length
    assert!(verdicts.arabic_fertility_down, "{:?}", outcome.arabic_fertility);
    assert!(verdicts.english_unchanged, "{:?}", outcome.english_fertility);
    assert!(outcome.expanded_vocab > outcome.base_vocab);
    assert_eq!(outcome.scores.len(), 6);
    for s in &outcome.scores {
        assert!(
            s.en_bpb > 0.0 && s.ar_bpb > 0.0 && (0.0..=1.0).contains(&s.accuracy["MC (en)"]),
            "{s:?}"
        );
        assert!(s.dir.join("model.safetensors").exists(), "{s:?}");
    }
    assert!((0.0..=1.0).contains(&outcome.dpo_reward_accuracy));
    let md = std::fs::read_to_string(report).unwrap();
    for heading in [
        "## 1. Tokenizer expansion",
        "## 3. Continued pretraining",
        "## 4. English",
        "## 5. Alignment",
    ] {
        assert!(md.contains(heading), "{heading} missing:\n{md}");
    }
    let run = dir.path().join("run");
    assert!(run.join("bpb.svg").exists() && run.join("report.json").exists());
    assert!(run.join("stage3-mixed/metrics.jsonl").exists() && run.join("stage3-control/final").exists());
    let warmup: Vec<String> = std::fs::read_to_string(run.join("stage3-mixed/metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["trained"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(warmup, ["new_rows", "new_rows", "all", "all"]);
}

#[test]
fn the_shipped_configurations_load() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let toy = RecipeConfig::load(&root.join("examples/recipes/toy.toml")).unwrap();
    assert_eq!(toy.continued.languages["en"], 0.55);
    let real = root.join("examples/recipes/llama2-7b");
    for run in ["continued-pretraining.toml", "pretrain-from-scratch.toml"] {
        let config = allam_train::RunConfig::load(&real.join(run)).unwrap_or_else(|e| panic!("{run}: {e}"));
        assert_eq!(
            config.optimizer,
            allam_train::AdamWConfig::default(),
            "{run}: the paper's AdamW"
        );
    }
    let cpt = allam_train::RunConfig::load(&real.join("continued-pretraining.toml")).unwrap();
    assert_eq!((cpt.schedule.lr, cpt.schedule.warmup_steps), (3e-5, 20));
    assert_eq!(
        (cpt.train.embedding_lr, cpt.train.embedding_lr_warmup_steps),
        (Some(3e-5), 20)
    );
    // the translated bucket has the paper's domains: books ×3, C4 ×2, peS2o ×2, Wikipedia ×1
    for dir in [&real, &root.join("examples/recipes/llama3.2-1b")] {
        let mixture = allam_data::Recipe::load(&dir.join("data-mixture.toml")).unwrap();
        let translated: Vec<f64> = mixture
            .sources
            .iter()
            .filter(|s| s.language == "ar_translated")
            .map(|s| s.multiplier)
            .collect();
        assert_eq!(translated, [3.0, 2.0, 2.0, 1.0], "{}", dir.display());
    }
    for stage in ["sft.toml", "dpo.toml"] {
        allam_align::AlignConfig::load(&real.join(stage)).unwrap_or_else(|e| panic!("{stage}: {e}"));
    }
    let dpo = allam_align::AlignConfig::load(&real.join("dpo.toml")).unwrap();
    assert_eq!((dpo.dpo.beta, dpo.schedule.lr), (0.1, 9e-7));
    for data in ["data-mixture.toml", "data-english.toml"] {
        let recipe = allam_data::Recipe::load(&real.join(data)).unwrap_or_else(|e| panic!("{data}: {e}"));
        assert!(!recipe.sources.is_empty());
    }
    // The modern-base files: the same loaders, Llama-3's vocabulary and chat format.
    let modern = root.join("examples/recipes/llama3.2-1b");
    let cpt = allam_train::RunConfig::load(&modern.join("continued-pretraining.toml")).unwrap();
    assert_eq!(cpt.optimizer, allam_train::AdamWConfig::default());
    assert_eq!(cpt.train.first_new_row, Some(128_256));
    for stage in ["sft.toml", "dpo.toml"] {
        let config =
            allam_align::AlignConfig::load(&modern.join(stage)).unwrap_or_else(|e| panic!("{stage}: {e}"));
        assert_eq!(config.data.template, "llama3", "{stage}");
    }
    let recipe = allam_data::Recipe::load(&modern.join("data-mixture.toml")).unwrap();
    assert_eq!((recipe.seq_len, recipe.languages["en"]), (8192, 0.55));
    allam_train::RunConfig::load(&root.join("examples/configs/pretrain-tiny.toml")).unwrap();
    allam_align::AlignConfig::load(&root.join("examples/configs/sft-tiny.toml")).unwrap();
    allam_align::AlignConfig::load(&root.join("examples/configs/dpo-tiny.toml")).unwrap();
}
