//! Helpers shared by the training tests: a tiny run configuration on generated text.
#![allow(dead_code)]
use std::collections::BTreeMap;
use std::path::Path;

use allam_model::{Llama, LlamaConfig};
use allam_train::RunConfig;
use allam_train::params::named_values;
use burn::tensor::{Device, Tensor};

/// The vocabulary of [`tiny_model`].
pub const VOCAB: usize = 32;

pub fn device() -> Device {
    allam_model::device::select("cpu").unwrap()
}

pub fn tiny_model(seed: u64) -> Llama {
    tiny_model_on(seed, &device())
}

/// A tiny untied model with every bias a Llama config can ask for (`attention_bias`, `mlp_bias`),
/// so each trainer test covers them too.
pub fn tiny_model_on(seed: u64, device: &Device) -> Llama {
    let config = LlamaConfig::new(VOCAB, 16, 32, 2, 4, 2, 4)
        .with_tie_word_embeddings(false)
        .with_qkv_bias(true)
        .with_o_proj_bias(true)
        .with_mlp_bias(true);
    // Burn's initialisers draw lazily from a process-wide generator (tests run in parallel).
    allam_train::params::seeded_init(config.init(device), 0.02, seed)
}

pub fn host(t: &Tensor<1>) -> Vec<f32> {
    t.clone()
        .into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .unwrap()
}

pub fn params(model: &Llama) -> BTreeMap<String, Vec<f32>> {
    named_values(model)
        .into_iter()
        .map(|(k, v)| (k, host(&v.values)))
        .collect()
}

pub fn max_diff(a: &BTreeMap<String, Vec<f32>>, b: &BTreeMap<String, Vec<f32>>) -> f32 {
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    a.iter()
        .flat_map(|(k, va)| va.iter().zip(&b[k]).map(|(x, y)| (x - y).abs()))
        .fold(0.0, f32::max)
}

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
