//! `allam-eval` against the reference fixtures: log-probabilities, batch-size invariance,
//! perplexity and bits per byte — the model-running ones on every device of
//! `allam_model::device::test_devices`.
use std::path::{Path, PathBuf};

use allam_eval::{
    EncodedRequest, ScoreRequest, SlidingWindow, encode_request, score_encoded, score_requests, sequence_nll,
    text_stats,
};
use allam_model::PretrainedModel;
use allam_model::device::test_devices;
use burn::tensor::Device;
use serde_json::Value;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(name)
}

fn load(name: &str) -> (PretrainedModel, Value) {
    load_on(name, &allam_model::device::select("cpu").unwrap())
}

fn load_on(name: &str, device: &Device) -> (PretrainedModel, Value) {
    let dir = fixture(name);
    let model = PretrainedModel::load(&dir, device).unwrap();
    let text = std::fs::read_to_string(dir.join("reference.json")).unwrap();
    (model, serde_json::from_str(&text).unwrap())
}

fn ids(value: &Value) -> Vec<u32> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as u32)
        .collect()
}

fn floats(value: &Value) -> Vec<f64> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect()
}

fn requests_from_reference(reference: &Value) -> (Vec<EncodedRequest>, Vec<f64>) {
    let mut requests = Vec::new();
    let mut expected = Vec::new();
    for (row, logprobs) in reference["input_ids"]
        .as_array()
        .unwrap()
        .iter()
        .zip(reference["next_token_logprobs"].as_array().unwrap())
    {
        let row = ids(row);
        let logprobs = floats(logprobs);
        for split in [1, 4, row.len() - 1] {
            requests.push(EncodedRequest {
                context: row[..split].to_vec(),
                continuation: row[split..].to_vec(),
            });
            expected.push(logprobs[split - 1..].iter().sum());
        }
    }
    (requests, expected)
}

#[test]
fn scores_equal_the_reference_logprobs() {
    for (dev, device) in test_devices() {
        for name in ["tiny-gqa-untied", "tiny-mha-tied-bf16"] {
            let (model, reference) = load_on(name, &device);
            let (requests, expected) = requests_from_reference(&reference);
            let scores = score_encoded(&model.model, &requests, 4).unwrap();
            for (score, expected) in scores.iter().zip(&expected) {
                assert!(
                    (score.logprob - expected).abs() < 1e-3,
                    "{dev} {name}: {} vs {expected}",
                    score.logprob
                );
            }
            let greedy = EncodedRequest {
                context: ids(&reference["greedy_prompt"]),
                continuation: ids(&reference["greedy_continuation"]),
            };
            let mut wrong = greedy.clone();
            let last = wrong.continuation.len() - 1;
            wrong.continuation[last] = (wrong.continuation[last] + 1) % 50 + 3;
            let scores = score_encoded(&model.model, &[greedy, wrong], 2).unwrap();
            assert!(scores[0].is_greedy, "{dev} {name}: the greedy continuation");
            assert!(!scores[1].is_greedy, "{dev} {name}: a changed continuation");
        }
    }
}

fn text_requests() -> Vec<ScoreRequest> {
    vec![
        ScoreRequest::new("the cat sat on the", " mat."),
        ScoreRequest::new("hello", " world, how are you?"),
        ScoreRequest::new("a b c d e f g h i j k l m n o p", " q"),
        ScoreRequest::new("is it ", "raining?"),
        ScoreRequest::new("", "a whole sentence with no context!"),
    ]
}

#[test]
fn text_scores_do_not_depend_on_the_batch_size() {
    let (model, _) = load("tiny-gqa-untied");
    let requests = text_requests();
    let one = score_requests(&model, &requests, 1).unwrap();
    for batch_size in [2, 3, 8] {
        let many = score_requests(&model, &requests, batch_size).unwrap();
        for (a, b) in one.iter().zip(&many) {
            assert!((a.logprob - b.logprob).abs() < 1e-4, "batch {batch_size}");
            assert_eq!(a.continuation_tokens, b.continuation_tokens);
            assert_eq!(a.is_greedy, b.is_greedy);
        }
    }
}

#[test]
fn continuation_tokens_are_the_whole_encoding_minus_the_context() {
    let (model, _) = load("tiny-gqa-untied");
    let tokenizer = model.tokenizer().unwrap();
    for request in text_requests() {
        let encoded = encode_request(tokenizer, &request, Some(1)).unwrap();
        let whole = tokenizer
            .encode(&format!("{}{}", request.context, request.continuation), true)
            .unwrap();
        let joined: Vec<u32> = encoded
            .context
            .iter()
            .chain(&encoded.continuation)
            .copied()
            .collect();
        assert_eq!(joined, whole, "{request:?}");
        assert_eq!(encoded.context[0], 1, "BOS leads the context");
        assert!(!encoded.continuation.is_empty());
    }
    let empty = ScoreRequest::new("hello", "");
    assert!(encode_request(tokenizer, &empty, Some(1)).is_err());
}

#[test]
fn an_empty_context_without_bos_is_an_error_not_a_panic() {
    let (model, _) = load("tiny-mha-tied-bf16");
    let request = ScoreRequest::new("", "hello");
    let tokenizer = model.tokenizer().unwrap();
    assert!(encode_request(tokenizer, &request, None).is_err());
}

#[test]
fn bits_per_byte_by_hand() {
    for (dev, device) in test_devices() {
        let (model, _) = load_on("tiny-gqa-untied", &device);
        let text = "the cat sat.";
        let ids = model.tokenizer().unwrap().encode(text, true).unwrap();
        let by_hand = score_encoded(
            &model.model,
            &[EncodedRequest {
                context: ids[..1].to_vec(),
                continuation: ids[1..].to_vec(),
            }],
            1,
        )
        .unwrap();
        let nll = -by_hand[0].logprob;
        let stats = text_stats(&model, text, SlidingWindow::for_model(&model.model), 1).unwrap();
        assert_eq!(stats.tokens, ids.len() - 1, "{dev}");
        assert_eq!(stats.bytes, 12, "{dev}");
        assert!((stats.nll - nll).abs() < 1e-4, "{dev}: {} vs {nll}", stats.nll);
        let bpb = nll / (std::f64::consts::LN_2 * 12.0);
        assert!((stats.bits_per_byte() - bpb).abs() < 1e-5, "{dev}");
        let ppl = (nll / (ids.len() - 1) as f64).exp();
        assert!((stats.perplexity() - ppl).abs() < 1e-3, "{dev}");
    }
}

#[test]
fn sliding_windows_score_every_token_once() {
    for (dev, device) in test_devices() {
        let (model, _) = load_on("tiny-gqa-untied", &device);
        let text = "the quick brown fox jumps over the lazy dog, again and again!";
        let ids = model.tokenizer().unwrap().encode(text, true).unwrap();
        let full = SlidingWindow::for_model(&model.model);
        let (tokens, whole) = sequence_nll(&model.model, &ids, full, 1).unwrap();
        assert_eq!(tokens, ids.len() - 1, "{dev}");
        // Small windows see less context, so the total changes, but every token is still scored.
        for (window, stride) in [(8, 8), (8, 3), (5, 1)] {
            let w = SlidingWindow { window, stride };
            let (n, nll) = sequence_nll(&model.model, &ids, w, 3).unwrap();
            assert_eq!(n, ids.len() - 1, "{dev}");
            assert!(nll.is_finite() && nll > 0.0, "{dev}");
            let (_, again) = sequence_nll(&model.model, &ids, w, 1).unwrap();
            assert!(
                (nll - again).abs() < 1e-3,
                "{dev}: batch size changes {window}/{stride}"
            );
        }
        // A window as long as the text is one pass: the same as the full window.
        let w = SlidingWindow {
            window: ids.len(),
            stride: ids.len(),
        };
        let (_, same) = sequence_nll(&model.model, &ids, w, 1).unwrap();
        assert!((same - whole).abs() < 1e-4, "{dev}");
        let bad = SlidingWindow { window: 4, stride: 5 };
        assert!(sequence_nll(&model.model, &ids, bad, 1).is_err(), "{dev}");
    }
}

#[test]
fn a_request_longer_than_the_context_loses_context_from_the_left_and_says_how_much() {
    let (pretrained, _) = load("tiny-gqa-untied");
    let context_size = pretrained.model.config.max_position_embeddings;
    let continuation = vec![5u32, 6, 7];
    let long: Vec<u32> = (0..context_size as u32 + 10).map(|i| 3 + i % 50).collect();
    let request = |context: Vec<u32>| EncodedRequest {
        context,
        continuation: continuation.clone(),
    };
    // The model reads context + continuation − 1 tokens: at most `context_size`.
    let kept = context_size + 1 - continuation.len();
    let scores = score_encoded(
        &pretrained.model,
        &[request(long.clone()), request(long[long.len() - kept..].to_vec())],
        2,
    )
    .unwrap();
    assert_eq!(scores[0].context_tokens_dropped, long.len() - kept);
    assert_eq!(scores[1].context_tokens_dropped, 0);
    assert!((scores[0].logprob - scores[1].logprob).abs() < 1e-4);
}
