//! `--chat`: the prompt through the model's chat template, as lm-evaluation-harness builds a
//! multiple-choice request with `apply_chat_template` on (`fewshot_as_multiturn` off).
use std::path::{Path, PathBuf};

use allam_eval::{McItem, McOptions, PromptFormat, evaluate_samples};
use allam_model::PretrainedModel;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(name)
}

fn item(question: &str, choices: [&str; 4], answer: usize) -> McItem {
    McItem {
        question: question.into(),
        choices: choices.iter().map(|c| c.to_string()).collect(),
        labels: ["A", "B", "C", "D"].iter().map(|l| l.to_string()).collect(),
        answer,
        subject: "high_school_mathematics".into(),
        ..McItem::default()
    }
}

/// lm-evaluation-harness `ConfigurableTask.construct_requests`: under a chat template (and no
/// `gen_prefix`) the target delimiter is `""`, so the letters follow the generation prompt
/// directly; the examples inside the user turn keep theirs.
#[test]
fn chat_continuations_have_no_target_delimiter() {
    let device = allam_model::device::select("cpu").unwrap();
    let model = PretrainedModel::load(&fixture("tiny-mha-tied-bf16"), &device).unwrap();
    let test = [item("What is 2 + 2?", ["3", "4", "5", "6"], 1)];
    let dev = [item("What is 1 + 1?", ["2", "3", "4", "5"], 0)];
    let options = McOptions {
        format: PromptFormat::Mmlu,
        shots: 1,
        chat: true,
        ..McOptions::default()
    };
    let (_, samples) = evaluate_samples(&model, &test, Some(&dev), options).unwrap();
    assert_eq!(samples[0].continuations, ["A", "B", "C", "D"]);
    // The description is the system turn; the example keeps its " " before the answer.
    assert_eq!(
        samples[0].context,
        "<|im_start|>system\nThe following are multiple choice questions (with answers) about high school \
         mathematics.\n\n<|im_end|>\n<|im_start|>user\nWhat is 1 + 1?\nA. 2\nB. 3\nC. 4\nD. 5\nAnswer: A\n\n\
         What is 2 + 2?\nA. 3\nB. 4\nC. 5\nD. 6\nAnswer:<|im_end|>\n<|im_start|>assistant\n"
    );
    assert_eq!(samples[0].choice_chars, [1, 1, 1, 1]);
    // Without the chat template the delimiter stays.
    let plain = McOptions {
        chat: false,
        ..options
    };
    let (_, samples) = evaluate_samples(&model, &test, Some(&dev), plain).unwrap();
    assert_eq!(samples[0].continuations, [" A", " B", " C", " D"]);
}
