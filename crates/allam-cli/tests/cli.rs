//! The `allam` binary's contract: `logits`, `generate`, `export`, `score`, `ppl`, and errors without panics (`eval` in `eval.rs`).
mod common;

use std::process::Output;

use common::{allam, fixture, json};

/// `--device` reaches the model: the reference logits on every device of
/// `allam_model::device::test_devices`.
#[test]
fn logits_prints_the_reference_logits() {
    let dir = fixture("tiny-gqa-untied");
    let reference: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("reference.json")).unwrap()).unwrap();
    let ids: Vec<String> = reference["input_ids"][0]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.to_string())
        .collect();
    for (dev, _) in allam_model::device::test_devices() {
        let out = json(&allam(&[
            "logits",
            "--model",
            dir.to_str().unwrap(),
            "--ids",
            &ids.join(","),
            "--json",
            "--device",
            dev,
        ]));
        let got = out["logits"].as_array().unwrap();
        let expected = reference["logits"][0].as_array().unwrap();
        assert_eq!(got.len(), expected.len(), "{dev}");
        for (g, e) in got.iter().zip(expected) {
            let (g, e) = (g.as_array().unwrap(), e.as_array().unwrap());
            assert_eq!(g.len(), 96, "{dev}");
            for (a, b) in g.iter().zip(e) {
                assert!((a.as_f64().unwrap() - b.as_f64().unwrap()).abs() < 1e-4, "{dev}");
            }
        }
    }
}

/// Past `max_position_embeddings` (128 for the fixture) the model still runs, with a warning naming
/// both lengths, as `transformers` warns; within it nothing is said.
#[test]
fn inputs_past_the_trained_context_are_warned_about() {
    let dir = fixture("tiny-gqa-untied");
    let ids = |n: usize| (0..n).map(|i| (i % 90).to_string()).collect::<Vec<_>>().join(",");
    let run = |n: usize| {
        allam(&[
            "logits",
            "--model",
            dir.to_str().unwrap(),
            "--ids",
            &ids(n),
            "--json",
        ])
    };
    let long = run(130);
    assert!(long.status.success());
    let stderr = String::from_utf8_lossy(&long.stderr);
    assert!(
        stderr.contains("130 positions") && stderr.contains("128"),
        "{stderr}"
    );
    let short = run(128);
    assert!(!String::from_utf8_lossy(&short.stderr).contains("warning"));
}

#[test]
fn generate_json_gives_ids_and_their_text() {
    let dir = fixture("tiny-gqa-untied");
    let out = json(&allam(&[
        "generate",
        "--model",
        dir.to_str().unwrap(),
        "--prompt",
        "the cat sat",
        "--max-new-tokens",
        "6",
        "--json",
    ]));
    let ids = out["ids"].as_array().unwrap();
    assert!(!ids.is_empty() && ids.len() <= 6);
    // greedy twice gives the same; sampling with a seed is reproducible and may differ
    let again = json(&allam(&[
        "generate",
        "--model",
        dir.to_str().unwrap(),
        "--prompt",
        "the cat sat",
        "--max-new-tokens",
        "6",
        "--json",
    ]));
    assert_eq!(out, again);
    let sample = |seed: &str| {
        json(&allam(&[
            "generate",
            "--model",
            dir.to_str().unwrap(),
            "--prompt",
            "the cat sat",
            "--max-new-tokens",
            "6",
            "--temperature",
            "1.5",
            "--top-k",
            "20",
            "--top-p",
            "0.95",
            "--seed",
            seed,
            "--json",
        ]))
    };
    assert_eq!(sample("3"), sample("3"));
    // a chat prompt renders through the fixture's Llama-2 template
    let chat = allam(&[
        "generate",
        "--model",
        dir.to_str().unwrap(),
        "--prompt",
        "hello",
        "--chat",
        "--max-new-tokens",
        "3",
    ]);
    assert!(chat.status.success(), "{}", String::from_utf8_lossy(&chat.stderr));
}

#[test]
fn export_writes_a_loadable_sharded_bf16_directory() {
    let out = tempfile::tempdir().unwrap();
    let dir = fixture("tiny-gqa-untied");
    let status = allam(&[
        "export",
        "--model",
        dir.to_str().unwrap(),
        "--out",
        out.path().to_str().unwrap(),
        "--dtype",
        "bf16",
        "--max-shard-size",
        "50KB",
    ]);
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    assert!(out.path().join("model.safetensors.index.json").exists());
    let logits = json(&allam(&[
        "logits",
        "--model",
        out.path().to_str().unwrap(),
        "--ids",
        "1,2,3",
        "--json",
    ]));
    assert_eq!(logits["logits"].as_array().unwrap().len(), 3);
}

#[test]
fn bad_input_is_a_clear_error_not_a_panic() {
    let out = allam(&["logits", "--model", "/no/such/model", "--ids", "1,2"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("/no/such/model/config.json") && !stderr.contains("panicked"),
        "{stderr}"
    );

    let dir = fixture("tiny-gqa-untied");
    let out = allam(&["logits", "--model", dir.to_str().unwrap(), "--ids", "1,500"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("500") && stderr.contains("vocabulary"),
        "{stderr}"
    );
}

#[test]
fn model_expand_writes_a_grown_directory_that_keeps_old_logits() {
    let dir = fixture("tiny-gqa-untied");
    let tok_dir = tempfile::tempdir().unwrap();
    // the fixture tokenizer plus `▁c`, `▁cat` (ids 96, 97) and an added token (98)
    let mut t: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("tokenizer.json")).unwrap()).unwrap();
    t["model"]["vocab"]["▁c"] = 96.into();
    t["model"]["vocab"]["▁cat"] = 97.into();
    let merges = t["model"]["merges"].as_array_mut().unwrap();
    merges.push(serde_json::json!(["▁", "c"]));
    merges.push(serde_json::json!(["▁c", "at"]));
    t["added_tokens"].as_array_mut().unwrap().push(serde_json::json!({
        "id": 98, "content": "<|ar|>", "single_word": false, "lstrip": false, "rstrip": false,
        "normalized": false, "special": true
    }));
    let tokenizer = tok_dir.path().join("tokenizer.json");
    std::fs::write(&tokenizer, t.to_string()).unwrap();

    let out = tempfile::tempdir().unwrap();
    let expand = |extra: &[&str]| {
        let mut args = vec![
            "model",
            "expand",
            "--model",
            dir.to_str().unwrap(),
            "--tokenizer",
            tokenizer.to_str().unwrap(),
            "--out",
            out.path().to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        allam(&args)
    };
    let summary = json(&expand(&["--init", "mean", "--pad-to-multiple", "8"]));
    assert_eq!(summary["new_vocab_size"], 104);
    assert_eq!(summary["from_pieces"], 2);
    assert_eq!(summary["fallback"], 1);
    assert_eq!(summary["padding"], 5);
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("config.json")).unwrap()).unwrap();
    assert_eq!(config["vocab_size"], 104);
    assert_eq!(
        std::fs::read(out.path().join("tokenizer.json")).unwrap(),
        std::fs::read(&tokenizer).unwrap()
    );

    let ids = ["--ids", "1,5,9,33,2,17,60,44", "--json"];
    let before = json(&allam(
        &[&["logits", "--model", dir.to_str().unwrap()], &ids[..]].concat(),
    ));
    let after = json(&allam(
        &[&["logits", "--model", out.path().to_str().unwrap()], &ids[..]].concat(),
    ));
    for (b, a) in before["logits"]
        .as_array()
        .unwrap()
        .iter()
        .zip(after["logits"].as_array().unwrap())
    {
        let (b, a) = (b.as_array().unwrap(), a.as_array().unwrap());
        assert_eq!((b.len(), a.len()), (96, 104));
        assert_eq!(&a[..96], &b[..], "old logits are kept exactly");
    }
    // the new ids are usable
    json(&allam(&[
        "logits",
        "--model",
        out.path().to_str().unwrap(),
        "--ids",
        "96,97,98,103",
        "--json",
    ]));

    let out_err = expand(&["--vocab-size", "90"]);
    let stderr = String::from_utf8_lossy(&out_err.stderr);
    assert_eq!(out_err.status.code(), Some(1));
    assert!(
        stderr.contains("shrink") && !stderr.contains("panicked"),
        "{stderr}"
    );
    let out_err = expand(&["--init", "avg"]);
    assert!(!out_err.status.success());
}

fn json_lines(out: &Output) -> Vec<serde_json::Value> {
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect()
}

#[test]
fn score_adds_logprobs_that_do_not_depend_on_the_batch_size() {
    let dir = fixture("tiny-gqa-untied");
    let temp = tempfile::tempdir().unwrap();
    let input = temp.path().join("requests.jsonl");
    std::fs::write(
        &input,
        concat!(
            r#"{"id": 1, "context": "the cat sat on the", "continuation": " mat."}"#,
            "\n",
            r#"{"id": 2, "context": "hello", "continuation": " world, how are you?"}"#,
            "\n\n",
            r#"{"id": 3, "context": "", "continuation": "no context at all!"}"#,
            "\n",
        ),
    )
    .unwrap();
    let run = |batch: &str| {
        json_lines(&allam(&[
            "score",
            "--model",
            dir.to_str().unwrap(),
            "--input",
            input.to_str().unwrap(),
            "--batch-size",
            batch,
        ]))
    };
    let one = run("1");
    let three = run("3");
    assert_eq!(one.len(), 3);
    let device = allam_model::device::select("cpu").unwrap();
    let model = allam_model::PretrainedModel::load(&dir, &device).unwrap();
    let requests = [
        allam_eval::ScoreRequest::new("the cat sat on the", " mat."),
        allam_eval::ScoreRequest::new("hello", " world, how are you?"),
        allam_eval::ScoreRequest::new("", "no context at all!"),
    ];
    let expected = allam_eval::score_requests(&model, &requests, 1).unwrap();
    for (i, ((a, b), e)) in one.iter().zip(&three).zip(&expected).enumerate() {
        assert_eq!(a["id"], i + 1, "other fields pass through");
        assert_eq!(a["continuation"], b["continuation"]);
        let (la, lb) = (a["logprob"].as_f64().unwrap(), b["logprob"].as_f64().unwrap());
        assert!((la - lb).abs() < 1e-4 && (la - e.logprob).abs() < 1e-4);
        assert!(la < 0.0);
        assert_eq!(a["continuation_tokens"], e.continuation_tokens);
        assert_eq!(a["is_greedy"], e.is_greedy);
    }
}

#[test]
fn score_names_the_bad_line() {
    let dir = fixture("tiny-gqa-untied");
    let temp = tempfile::tempdir().unwrap();
    let input = temp.path().join("bad.jsonl");
    std::fs::write(
        &input,
        "{\"context\": \"a\", \"continuation\": \"b\"}\n{\"context\": 3}\n",
    )
    .unwrap();
    let out = allam(&[
        "score",
        "--model",
        dir.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("bad.jsonl:2") && stderr.contains("context") && !stderr.contains("panicked"),
        "{stderr}"
    );
}

#[test]
fn ppl_reports_bits_per_byte_per_file() {
    let dir = fixture("tiny-gqa-untied");
    let temp = tempfile::tempdir().unwrap();
    let en = temp.path().join("en.txt");
    let other = temp.path().join("other.txt");
    std::fs::write(&en, "the quick brown fox jumps over the lazy dog.").unwrap();
    std::fs::write(&other, "hello there, is it raining? yes it is!").unwrap();
    let run = |extra: &[&str]| {
        let mut args = vec![
            "ppl",
            "--model",
            dir.to_str().unwrap(),
            "--json",
            "--text",
            en.to_str().unwrap(),
            other.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        json_lines(&allam(&args))
    };
    let full = run(&[]);
    assert_eq!(full.len(), 2);
    assert_eq!(full[0]["bytes"], 44);
    for line in &full {
        let tokens = line["tokens"].as_f64().unwrap();
        let bytes = line["bytes"].as_f64().unwrap();
        let nll = line["nll"].as_f64().unwrap();
        assert!(nll > 0.0);
        assert!((line["ppl"].as_f64().unwrap() - (nll / tokens).exp()).abs() < 1e-6 * (nll / tokens).exp());
        assert!((line["bpb"].as_f64().unwrap() - nll / (std::f64::consts::LN_2 * bytes)).abs() < 1e-9);
    }
    let windowed = run(&["--window", "8", "--stride", "4", "--batch-size", "3"]);
    assert_eq!(windowed[0]["tokens"], full[0]["tokens"]);
    assert_ne!(
        windowed[0]["nll"], full[0]["nll"],
        "shorter windows see less context"
    );
}
