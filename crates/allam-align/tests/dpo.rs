//! DPO: losses against closed forms computed here in f64, preference files and their errors, and
//! response log-probabilities against the model crate's scorer, with gradients flowing.
use std::path::{Path, PathBuf};

use allam_align::dpo::log_sigmoid;
use allam_align::{
    ChatTemplate, DpoBatch, DpoConfig, DpoExample, DpoLossKind, PairTruncation, PreferencePair,
    SequenceTruncation, Truncation, TruncationCount, TruncationMode, load_preferences,
};
use allam_align::{dpo_loss, response_logprobs};
use allam_model::score::score_continuations;
use allam_model::{HfConfig, TextTokenizer};
use burn::tensor::{Device, Tensor};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(name)
}

fn t(values: &[f64]) -> Tensor<1> {
    let v: Vec<f32> = values.iter().map(|&x| x as f32).collect();
    Tensor::from_floats(v.as_slice(), &Device::flex())
}

fn host(x: Tensor<1>) -> Vec<f64> {
    x.into_data().convert::<f64>().try_to_vec::<f64>().unwrap()
}

/// Hand-made summed log-probs of two pairs: (policy chosen, policy rejected, ref chosen, ref rejected).
const PC: [f64; 2] = [-10.0, -8.0];
const PR: [f64; 2] = [-12.0, -7.0];
const RC: [f64; 2] = [-11.0, -8.5];
const RR: [f64; 2] = [-11.5, -7.8];

fn losses(config: DpoConfig) -> (Vec<f64>, allam_align::DpoOutput) {
    let out = dpo_loss(t(&PC), t(&PR), t(&RC), t(&RR), &config).unwrap();
    (host(out.loss.clone()), out)
}

fn assert_close(a: &[f64], b: &[f64]) {
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        assert!((x - y).abs() < 1e-5 * (1.0 + y.abs()), "{a:?} vs {b:?}");
    }
}

#[test]
fn losses_match_their_closed_forms() {
    // h = (πc − πr) − (rc − rr) = [2 − 0.5, −1 − (−0.7)] = [1.5, −0.3]
    let h = [1.5, -0.3];
    let logsig = |x: f64| -(1.0 + (-x).exp()).ln();
    let beta = 0.5;

    let config = |loss, label_smoothing| DpoConfig {
        beta,
        loss,
        label_smoothing,
    };
    let (sigmoid, out) = losses(config(DpoLossKind::Sigmoid, 0.0));
    assert_close(&sigmoid, &h.map(|h| -logsig(beta * h)));
    let eps = 0.2;
    let (smoothed, _) = losses(config(DpoLossKind::Sigmoid, eps));
    assert_close(
        &smoothed,
        &h.map(|h| -(1.0 - eps) * logsig(beta * h) - eps * logsig(-beta * h)),
    );
    let (ipo, _) = losses(config(DpoLossKind::Ipo, 0.0));
    assert_close(&ipo, &h.map(|h| (h - 1.0 / (2.0 * beta)).powi(2)));
    let (hinge, _) = losses(config(DpoLossKind::Hinge, 0.0));
    assert_close(&hinge, &h.map(|h| (1.0 - beta * h).max(0.0)));
    assert_close(&hinge, &[0.25, 1.15]);

    // rewards β·(π − ref), margins, accuracy
    let rc: Vec<f64> = (0..2).map(|i| beta * (PC[i] - RC[i])).collect();
    let rr: Vec<f64> = (0..2).map(|i| beta * (PR[i] - RR[i])).collect();
    assert_close(&host(out.rewards_chosen), &rc);
    assert_close(&host(out.rewards_rejected), &rr);
    assert_close(&host(out.margins), &h.map(|h| beta * h));
    assert_eq!(
        host(out.correct),
        vec![1.0],
        "one of two pairs has a positive margin"
    );
}

#[test]
fn sigmoid_loss_at_the_reference_is_ln_2() {
    let out = dpo_loss(t(&PC), t(&PR), t(&PC), t(&PR), &DpoConfig::default()).unwrap();
    assert_close(&host(out.loss), &[std::f64::consts::LN_2; 2]);
    assert_eq!(host(out.rewards_chosen), vec![0.0, 0.0]);
    assert_eq!(host(out.correct), vec![0.0]);
}

#[test]
fn log_sigmoid_is_stable_far_from_zero() {
    let v = host(log_sigmoid(t(&[-200.0, 0.0, 200.0])));
    assert_close(&v, &[-200.0, -std::f64::consts::LN_2, 0.0]);
    // a huge margin in the wrong direction gives a large finite loss, not inf
    let out = dpo_loss(
        t(&[-3000.0]),
        t(&[-1.0]),
        t(&[-1.0]),
        t(&[-1.0]),
        &DpoConfig::default(),
    )
    .unwrap();
    assert_close(&host(out.loss), &[299.9]);
}

#[test]
fn bad_settings_and_shapes_are_refused() {
    let bad = DpoConfig {
        loss: DpoLossKind::Ipo,
        label_smoothing: 0.1,
        ..Default::default()
    };
    assert!(dpo_loss(t(&PC), t(&PR), t(&RC), t(&RR), &bad).is_err());
    let bad = DpoConfig {
        beta: 0.0,
        ..Default::default()
    };
    assert!(dpo_loss(t(&PC), t(&PR), t(&RC), t(&RR), &bad).is_err());
    let err = dpo_loss(t(&PC), t(&PR), t(&RC), t(&[1.0]), &DpoConfig::default()).unwrap_err();
    assert!(err.to_string().contains("same non-zero length"), "{err}");
}

#[test]
fn preference_files_load_and_name_bad_lines() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("prefs.jsonl");
    std::fs::write(
        &path,
        concat!(
            r#"{"prompt": "hi", "chosen": "hello", "rejected": "go away"}"#,
            "\n",
            r#"{"messages": [{"role": "system", "content": "be kind"}, {"role": "user", "content": "hi"}],"#,
            r#" "chosen": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}],"#,
            r#" "rejected": [{"role": "assistant", "content": "no"}]}"#,
            "\n",
        ),
    )
    .unwrap();
    let pairs = load_preferences(&path).unwrap();
    assert_eq!(pairs.len(), 2);
    assert_eq!(pairs[1].prompt.len(), 2);
    assert_eq!(
        (pairs[1].chosen.as_str(), pairs[1].rejected.as_str()),
        ("hello", "no")
    );

    for (line, what) in [
        (
            r#"{"prompt": "hi", "chosen": "", "rejected": "x"}"#,
            "`chosen` is empty",
        ),
        (
            r#"{"prompt": "hi", "chosen": "x", "rejected": "  "}"#,
            "`rejected` is empty",
        ),
        (r#"{"prompt": "hi", "chosen": "x"}"#, "missing `rejected`"),
        (
            r#"{"prompt": [{"role": "robot", "content": "x"}], "chosen": "x", "rejected": "y"}"#,
            "unknown role `robot`",
        ),
    ] {
        std::fs::write(&path, format!("\n{line}\n")).unwrap();
        let err = load_preferences(&path).unwrap_err().to_string();
        assert!(err.contains("prefs.jsonl:2") && err.contains(what), "{err}");
    }
}

#[test]
fn response_logprobs_match_the_scorer_and_carry_gradients() {
    let tokenizer = TextTokenizer::from_file(&fixture("tiny-gqa-untied").join("tokenizer.json")).unwrap();
    let config = HfConfig::from_file(fixture("tiny-gqa-untied").join("config.json"))
        .unwrap()
        .to_llama_config()
        .unwrap();
    let pair = |p: &str, c: &str, r: &str| {
        PreferencePair::from_json(&serde_json::json!({"prompt": p, "chosen": c, "rejected": r})).unwrap()
    };
    let pairs = [
        pair("the cat sat", "on the mat.", "in the sea is blue and warm."),
        pair("is it time to eat?", "yes", "we read a book."),
    ];
    let examples: Vec<DpoExample> = pairs
        .iter()
        .map(|p| DpoExample::encode(p, &ChatTemplate::Llama2, &tokenizer).unwrap())
        .collect();
    // only the final turn is the response, and it closes with EOS
    for e in &examples {
        let first = e.chosen_mask.iter().position(|&m| m).unwrap();
        assert!(e.chosen_mask[first..].iter().all(|&m| m));
        assert_eq!(*e.chosen_ids.last().unwrap(), 2);
    }
    let batch = DpoBatch::new(&examples, 0).unwrap();
    assert_eq!(batch.responses.tokens.rows, 4);

    let device = Device::flex().autodiff();
    let model = config.init(&device);
    let (chosen, rejected) = batch.logprobs(&model).unwrap();
    let got: Vec<f64> = host(chosen.clone())
        .into_iter()
        .chain(host(rejected.clone()))
        .collect();
    let requests: Vec<(Vec<u32>, Vec<u32>)> = examples
        .iter()
        .flat_map(|e| [(&e.chosen_ids, &e.chosen_mask)])
        .chain(examples.iter().map(|e| (&e.rejected_ids, &e.rejected_mask)))
        .map(|(ids, mask)| {
            let cut = mask.iter().position(|&m| m).unwrap();
            (ids[..cut].to_vec(), ids[cut..].to_vec())
        })
        .collect();
    let want: Vec<f64> = score_continuations(&model, &requests, 4)
        .unwrap()
        .iter()
        .map(|s| s.logprob)
        .collect();
    assert_close(&got, &want);
    // one pass with every row equals each row alone (padding is masked)
    let alone = response_logprobs(&model, &DpoBatch::new(&examples[1..], 0).unwrap().responses).unwrap();
    assert_close(&host(alone), &[want[1], want[3]]);

    let reference = |x: &Tensor<1>| x.clone().detach();
    let out = dpo_loss(
        chosen.clone(),
        rejected.clone(),
        reference(&chosen),
        reference(&rejected),
        &DpoConfig::default(),
    )
    .unwrap();
    let grads = out.loss.mean().backward();
    let grad = model
        .embed_tokens
        .weight
        .val()
        .grad(&grads)
        .expect("embedding gradient");
    let norm: f64 = host(grad.abs().sum().reshape([1]))[0];
    assert!(norm > 0.0 && norm.is_finite(), "{norm}");
}

/// A pair with a 5-token prompt, a 3-token chosen and a 2-token rejected response.
fn long_pair() -> DpoExample {
    DpoExample {
        chosen_ids: vec![1, 2, 3, 4, 5, 10, 11, 12],
        chosen_mask: [vec![false; 5], vec![true; 3]].concat(),
        rejected_ids: vec![1, 2, 3, 4, 5, 20, 21],
        rejected_mask: [vec![false; 5], vec![true; 2]].concat(),
    }
}

fn cut(
    mut pair: DpoExample,
    max_length: usize,
    max_prompt_length: usize,
    mode: TruncationMode,
) -> (bool, DpoExample) {
    let limits = PairTruncation {
        max_length,
        max_prompt_length,
        mode,
    };
    limits.validate().unwrap();
    (pair.truncate(&limits), pair)
}

#[test]
fn long_pairs_are_cut_as_trl_cuts_them() {
    // Fits: untouched.
    let (changed, pair) = cut(long_pair(), 8, 2, TruncationMode::KeepEnd);
    assert!(!changed);
    assert_eq!(pair, long_pair());
    // 5 + 3 > 6: the prompt keeps its last 2 tokens; 2 + 3 fits, the responses stay whole.
    let (changed, pair) = cut(long_pair(), 6, 2, TruncationMode::KeepEnd);
    assert!(changed);
    assert_eq!(pair.chosen_ids, [4, 5, 10, 11, 12]);
    assert_eq!(pair.rejected_ids, [4, 5, 20, 21]);
    assert_eq!(pair.chosen_mask, [false, false, true, true, true]);
    // keep_start keeps the first 2.
    let (_, pair) = cut(long_pair(), 6, 2, TruncationMode::KeepStart);
    assert_eq!(pair.chosen_ids, [1, 2, 10, 11, 12]);
    assert_eq!(pair.rejected_ids, [1, 2, 20, 21]);
    // 2 + 3 > 4 still: responses keep their first 4 − 2 = 2 tokens.
    let (_, pair) = cut(long_pair(), 4, 2, TruncationMode::KeepEnd);
    assert_eq!(pair.chosen_ids, [4, 5, 10, 11]);
    assert_eq!(pair.chosen_mask, [false, false, true, true]);
    assert_eq!(pair.rejected_ids, [4, 5, 20, 21]);
    // A short prompt stays; only the long response is cut (to max_length − max_prompt_length).
    let short = DpoExample {
        chosen_ids: vec![1, 10, 11, 12, 13, 14, 15, 16],
        chosen_mask: [vec![false], vec![true; 7]].concat(),
        rejected_ids: vec![1, 20],
        rejected_mask: vec![false, true],
    };
    let (_, pair) = cut(short, 5, 2, TruncationMode::KeepEnd);
    assert_eq!(pair.chosen_ids, [1, 10, 11, 12]);
    assert_eq!(pair.rejected_ids, [1, 20]);
    // A prompt limit that leaves no room for a response is refused.
    let none = PairTruncation {
        max_length: 4,
        max_prompt_length: 4,
        mode: TruncationMode::KeepEnd,
    };
    assert!(
        none.validate()
            .unwrap_err()
            .to_string()
            .contains("max_prompt_length")
    );
}

/// Current TRL (`DataCollatorForPreference`): each prompt + response sequence is cut to
/// `max_length` on its own; with `keep_start` a pair whose prompt fills `max_length` is dropped.
#[test]
fn sequences_are_cut_as_current_trl_cuts_them() {
    let cut = |max_length: usize, mode: TruncationMode| {
        let mut pairs = vec![long_pair()];
        let count = Truncation::Sequence(SequenceTruncation { max_length, mode }).apply(&mut pairs);
        (count, pairs.pop())
    };
    // Fits: untouched.
    let (count, pair) = cut(8, TruncationMode::KeepStart);
    assert_eq!(count, TruncationCount::default());
    assert_eq!(pair.unwrap(), long_pair());
    // keep_start, 7 tokens: chosen (8) loses its last token, rejected (7) fits.
    let (count, pair) = cut(7, TruncationMode::KeepStart);
    let pair = pair.unwrap();
    assert_eq!(count, TruncationCount { cut: 1, dropped: 0 });
    assert_eq!(pair.chosen_ids, [1, 2, 3, 4, 5, 10, 11]);
    assert_eq!(pair.chosen_mask, [false, false, false, false, false, true, true]);
    assert_eq!(pair.rejected_ids, [1, 2, 3, 4, 5, 20, 21]);
    // keep_end, 4 tokens: each sequence keeps its own last 4, so the prompts differ.
    let (_, pair) = cut(4, TruncationMode::KeepEnd);
    let pair = pair.unwrap();
    assert_eq!(pair.chosen_ids, [5, 10, 11, 12]);
    assert_eq!(pair.chosen_mask, [false, true, true, true]);
    assert_eq!(pair.rejected_ids, [4, 5, 20, 21]);
    // keep_start, 5 tokens: the 5-token prompt fills the sequence, nothing to learn: dropped.
    let (count, pair) = cut(5, TruncationMode::KeepStart);
    assert_eq!(count, TruncationCount { cut: 0, dropped: 1 });
    assert!(pair.is_none());
    // keep_end keeps responses' ends, so nothing is dropped at any length.
    let (count, pair) = cut(1, TruncationMode::KeepEnd);
    assert_eq!(count, TruncationCount { cut: 1, dropped: 0 });
    assert_eq!(pair.unwrap().chosen_ids, [12]);
}
