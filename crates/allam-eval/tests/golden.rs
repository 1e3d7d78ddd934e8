//! Every reference format against its reference's own rendering: `tests/golden/<format>.json`,
//! written by `scripts/make_eval_goldens.py` with lm-evaluation-harness' `ConfigurableTask`s
//! (and lighteval 0.10 for the `-oall` formats, ArabicMMLU's `prepare_data_ar` for
//! `arabic-mmlu-ar`). Each golden holds the documents, and for each test document with 0 and k
//! examples, without and with three chat templates, the context and the continuations the
//! reference scores; `allam-eval` must render the same bytes from the same files.
use std::path::{Path, PathBuf};

use allam_eval::chat::chat_item;
use allam_eval::multiple_choice::render_prompts;
use allam_eval::{McOptions, PromptFormat, TaskFormat, read_items};
use allam_model::TextTokenizer;
use serde_json::Value;

fn manifest() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn golden(format: &str) -> Value {
    let path = manifest().join("tests/golden").join(format!("{format}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// `docs` as a JSON Lines file.
fn jsonl(dir: &Path, name: &str, docs: &Value) -> PathBuf {
    let lines: Vec<String> = docs
        .as_array()
        .unwrap()
        .iter()
        .map(|d| serde_json::to_string(d).unwrap())
        .collect();
    let path = dir.join(name);
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path
}

/// The golden's chat template `name`: a fixture's tokenizer, its template replaced when the
/// golden gives one.
fn chat_tokenizer(golden: &Value, name: &str) -> TextTokenizer {
    let spec = &golden["chat_templates"][name];
    let fixture = spec["fixture"].as_str().unwrap();
    let path = manifest()
        .join("../../tests/fixtures")
        .join(fixture)
        .join("tokenizer.json");
    let tokenizer = TextTokenizer::from_file(&path).unwrap();
    match spec["template"].as_str() {
        Some(template) => tokenizer.with_chat_template(template),
        None => tokenizer,
    }
}

/// Renders every case of `format`'s golden and compares; returns how many cases were compared.
fn check(format: &str) -> usize {
    let golden = golden(format);
    assert_eq!(golden["format"], format);
    let temp = tempfile::tempdir().unwrap();
    let task = TaskFormat::from_name(golden["task"].as_str().unwrap()).unwrap();
    let test = read_items(&jsonl(temp.path(), "test.jsonl", &golden["test"]), task).unwrap();
    let dev = read_items(&jsonl(temp.path(), "dev.jsonl", &golden["dev"]), task).unwrap();
    let cases = golden["cases"].as_array().unwrap();
    let mut covered = vec![0; test.len()];
    for case in cases {
        let doc = case["doc"].as_u64().unwrap() as usize;
        let shots = case["shots"].as_u64().unwrap() as usize;
        let chat = case["chat"].as_str();
        let options = McOptions {
            format: PromptFormat::from_name(format).unwrap(),
            shots,
            chat: chat.is_some(),
            ..McOptions::default()
        };
        let prompt = &render_prompts(&test, Some(&dev), &options).unwrap()[doc];
        let rendered = match chat {
            None => prompt.plain(),
            Some(name) => chat_item(prompt, &chat_tokenizer(&golden, name)).unwrap(),
        };
        let what = format!("{format}: document {doc}, {shots} shot(s), chat {chat:?}");
        assert_eq!(rendered.context, case["context"].as_str().unwrap(), "{what}");
        let continuations: Vec<&str> = case["continuations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap())
            .collect();
        assert_eq!(rendered.continuations, continuations, "{what}");
        covered[doc] += 1;
    }
    // Each document with and without examples, without and with each template.
    let per_doc = 2 * (1 + golden["chat_templates"].as_object().unwrap().len());
    assert_eq!(covered, vec![per_doc; test.len()], "{format}: cases per document");
    cases.len()
}

#[test]
fn mmlu_matches_lm_evaluation_harness() {
    assert_eq!(check("mmlu"), 24);
}

#[test]
fn arabic_mmlu_matches_lm_evaluation_harness() {
    assert_eq!(check("arabic-mmlu"), 24);
}

#[test]
fn arabic_exams_matches_lm_evaluation_harness() {
    assert_eq!(check("arabic-exams"), 16);
}

#[test]
fn acva_matches_lm_evaluation_harness() {
    assert_eq!(check("acva"), 24);
}

#[test]
fn arabic_mmlu_ar_matches_arabicmmlu_prepare_data_ar() {
    assert_eq!(check("arabic-mmlu-ar"), 24);
}

#[test]
fn the_oall_formats_match_lighteval_0_10() {
    assert_eq!(check("arabic-exams-oall"), 16);
    assert_eq!(check("acva-oall"), 24);
}
