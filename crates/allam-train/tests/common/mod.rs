//! Helpers shared by the training tests: a tiny run configuration on generated text.
#![allow(dead_code)]
use std::path::Path;

use allam_train::RunConfig;

/// Writes a small learnable corpus, its byte-tokenizer recipe and a run configuration.
pub fn write_run(dir: &Path, max_steps: u64, every: u64) -> RunConfig {
    write_run_on(dir, max_steps, every, "cpu")
}

/// [`write_run`] training on `device`.
pub fn write_run_on(dir: &Path, max_steps: u64, every: u64, device: &str) -> RunConfig {
    let tok = dir.join("tokenizer.json");
    allam_data::testing::byte_tokenizer().save(&tok, false).unwrap();
    let lines: Vec<String> = (0..60)
        .map(|i| {
            format!(
                "the {} cat sat on mat number {}.",
                ["red", "big", "old"][i % 3],
                i % 10
            )
        })
        .collect();
    std::fs::write(dir.join("en.txt"), lines.join("\n")).unwrap();
    std::fs::write(dir.join("heldout.txt"), "the red cat sat on mat number 3.\n").unwrap();
    std::fs::write(
        dir.join("recipe.toml"),
        "tokenizer = \"tokenizer.json\"\nseq_len = 48\nseed = 1\n[languages]\nen = 1.0\n\
         [[sources]]\nname = \"en\"\nlanguage = \"en\"\npaths = [\"en.txt\"]\n",
    )
    .unwrap();
    let text = format!(
        "[model]\ntokenizer = \"tokenizer.json\"\nseed = 3\n\
         [model.architecture]\nhidden_size = 16\nintermediate_size = 32\nnum_hidden_layers = 2\n\
         num_attention_heads = 4\nnum_key_value_heads = 2\nmax_position_embeddings = 64\n\
         [data]\nrecipe = \"recipe.toml\"\n\
         [schedule]\nkind = \"cosine\"\nlr = 1e-2\nmin_lr = 1e-3\nwarmup_steps = 2\n\
         [train]\ndevice = \"{device}\"\nmax_steps = {max_steps}\nmicro_batch_size = 2\ngrad_accum = 2\n\
         [checkpoint]\nevery = {every}\nkeep = 2\n\
         [eval]\nevery = {every}\ntext = [{{ language = \"en\", path = \"heldout.txt\" }}]\n"
    );
    let path = dir.join("run.toml");
    std::fs::write(&path, text).unwrap();
    RunConfig::load(&path).unwrap()
}

pub fn losses(run_dir: &Path) -> Vec<(u64, f64)> {
    std::fs::read_to_string(run_dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (v["step"].as_u64().unwrap(), v["loss"].as_f64().unwrap())
        })
        .collect()
}
