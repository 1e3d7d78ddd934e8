//! `allam recipe`: the options of recipes from a base, on a fixture checkpoint and the sample data.
mod common;

use common::{allam, allam_in_repo, fixture, json, repo, stderr};

/// A recipe from the `tiny-llama3-rope-scaling` fixture (byte-fallback tokenizer of 112 ids, a chat
/// template) with the sample data, in `dir`.
fn recipe(dir: &std::path::Path) -> std::path::PathBuf {
    let sample = |name: &str| repo().join("data/sample").join(name).canonicalize().unwrap();
    let text = format!(
        "out = \"out\"\n[base]\ndir = {base:?}\n[expansion]\nnew_pieces = 100\npad_to_multiple = 64\n\
         [data]\n[[data.sources]]\nname = \"en\"\nlanguage = \"en\"\npaths = [{en:?}]\n\
         [[data.sources]]\nname = \"ar\"\nlanguage = \"ar\"\npaths = [{ar:?}]\n\
         [[data.sources]]\nname = \"pairs\"\nlanguage = \"ar_translated\"\npaths = [{pairs:?}]\n\
         parallel = {{ fields = [\"en\", \"ar\"] }}\n\
         [continued]\ntokens = 4096\nseq_len = 128\nmicro_batch_size = 2\ngrad_accum = 4\nlr = 1e-3\n\
         [sft]\npath = {sft:?}\nlr = 1e-4\n[dpo]\npath = {dpo:?}\nlr = 1e-5\nmicro_batch_size = 3\n\
         [eval]\nheldout = {{ en = {en_h:?}, ar = {ar_h:?} }}\n",
        base = fixture("tiny-llama3-rope-scaling").canonicalize().unwrap(),
        en = sample("en_docs.txt"),
        ar = sample("ar_docs.jsonl"),
        pairs = sample("parallel.jsonl"),
        sft = sample("sft.jsonl"),
        dpo = sample("preferences.jsonl"),
        en_h = sample("en_heldout.txt"),
        ar_h = sample("ar_heldout.txt"),
    );
    let path = dir.join("recipe.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn plan_prints_every_training_stage_on_the_expanded_vocabulary() {
    let dir = tempfile::tempdir().unwrap();
    let path = recipe(dir.path());
    let out = allam(&["recipe", "--config", path.to_str().unwrap(), "--plan", "--json"]);
    let plans = json(&out);
    let plans = plans.as_array().unwrap();
    assert_eq!(plans.len(), 3);
    assert_eq!(plans[0]["tokens_per_micro_batch"], 2 * 128);
    assert_eq!(
        plans[2]["tokens_per_micro_batch"],
        2 * 3 * 512,
        "DPO: chosen and rejected rows"
    );
    // 112 + 100 ids padded to 256 rows of 64 hidden, tied: 16,384 more parameters than 112 rows.
    let base: u64 = 112 * 64;
    assert_eq!(plans[0]["parameters"].as_u64().unwrap() - (256 * 64 - base), {
        let text = std::fs::read_to_string(fixture("tiny-llama3-rope-scaling/config.json")).unwrap();
        let c: serde_json::Value = serde_json::from_str(&text).unwrap();
        let (h, f, l) = (
            64u64,
            c["intermediate_size"].as_u64().unwrap(),
            c["num_hidden_layers"].as_u64().unwrap(),
        );
        let (q, kv, d) = (4u64, 2u64, 16u64);
        base + l * (h * q * d + 2 * h * kv * d + q * d * h + 3 * h * f + 2 * h) + h
    });
    assert!(!dir.path().join("out").exists(), "--plan runs nothing");
}

#[test]
fn options_of_recipes_from_a_base_are_refused_elsewhere_and_checked() {
    let out = allam_in_repo(&["recipe", "--config", "examples/recipes/toy.toml", "--resume"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("apply to recipes from an existing base"),
        "{}",
        stderr(&out)
    );
    let dir = tempfile::tempdir().unwrap();
    let path = recipe(dir.path());
    let out = allam(&[
        "recipe",
        "--config",
        path.to_str().unwrap(),
        "--stop-after",
        "pretrain",
    ]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("not a stage"), "{}", stderr(&out));
}
