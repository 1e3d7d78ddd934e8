//! One sample per item, as lm-evaluation-harness' `--log_samples` writes them: the scored text,
//! each continuation's log-likelihood and the predictions agree with scoring the pairs by hand.
use std::path::{Path, PathBuf};

use allam_eval::multiple_choice::{pick, render_items};
use allam_eval::{
    Bos, McOptions, PromptFormat, ScoreRequest, TaskFormat, evaluate_samples, read_items, score_requests,
};
use allam_model::PretrainedModel;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(name)
}

const ACVA: &str = r#"{"id": "1", "question": "الرياض عاصمة السعودية", "answer": "صح", "subject": "Saudi_Arabia"}
{"id": "2", "question": "مكة في مصر", "answer": "خطأ", "subject": "Saudi_Arabia"}
{"id": "3", "question": "جدة مدينة ساحلية", "answer": "صح", "subject": "Saudi_Arabia"}
"#;

#[test]
fn samples_record_prompts_scores_and_predictions() {
    let device = allam_model::device::select("cpu").unwrap();
    let model = PretrainedModel::load(&fixture("tiny-gqa-untied"), &device).unwrap();
    let temp = tempfile::tempdir().unwrap();
    let path = temp.path().join("acva.jsonl");
    std::fs::write(&path, ACVA).unwrap();
    let items = read_items(&path, TaskFormat::Acva).unwrap();
    let options = McOptions {
        format: PromptFormat::Acva,
        shots: 1,
        batch_size: 3,
        ..McOptions::default()
    };
    let (report, samples) = evaluate_samples(&model, &items, None, options).unwrap();
    let rendered = render_items(&items, None, &options).unwrap();
    assert_eq!(samples.len(), 3);
    let (mut acc, mut norm) = (0.0, 0.0);
    for (i, sample) in samples.iter().enumerate() {
        assert_eq!(sample.doc_id, i);
        assert_eq!(sample.context, rendered[i].context);
        assert_eq!(sample.continuations, [" صح", " خطأ"]);
        assert_eq!(
            sample.choice_chars,
            [2, 3],
            "the space before a choice is not counted"
        );
        assert_eq!(sample.gold, items[i].answer);
        let requests: Vec<ScoreRequest> = sample
            .continuations
            .iter()
            .map(|c| ScoreRequest::new(sample.context.clone(), c.clone()))
            .collect();
        let expected: Vec<f64> = score_requests(&model, &requests, 1)
            .unwrap()
            .iter()
            .map(|s| s.logprob)
            .collect();
        for (got, want) in sample.logprobs.iter().zip(&expected) {
            assert!((got - want).abs() < 1e-9, "{got} vs {want}");
        }
        assert_eq!((sample.pred, sample.pred_norm), pick(&sample.logprobs, &[2, 3]));
        assert_eq!(sample.acc, f64::from(u8::from(sample.pred == sample.gold)));
        assert_eq!(
            sample.acc_norm,
            f64::from(u8::from(sample.pred_norm == sample.gold))
        );
        acc += sample.acc / 3.0;
        norm += sample.acc_norm / 3.0;
    }
    assert!((report.overall.acc - acc).abs() < 1e-12);
    assert!((report.overall.acc_norm - norm).abs() < 1e-12);
    // Without the tokenizer's BOS the scores change (the fixture's tokenizer adds one).
    let (_, plain) = evaluate_samples(
        &model,
        &items,
        None,
        McOptions {
            bos: Bos::None,
            ..options
        },
    )
    .unwrap();
    assert_ne!(plain[0].logprobs, samples[0].logprobs);
}
