//! Multiple-choice task files and scoring: formats parsed from small files, acc vs acc_norm.
use std::path::{Path, PathBuf};

use allam_eval::multiple_choice::{choice_continuation, few_shot_context, pick, question_prompt};
use allam_eval::{
    ChoiceMode, EvalError, McOptions, ScoreRequest, TaskFormat, evaluate, read_items, score_requests,
};
use allam_model::PretrainedModel;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(name)
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

const EXAMS: &str = r#"{"id": "q1", "question": {"stem": "what is red?", "choices": [{"text": "the sky", "label": "A"}, {"text": "a rose", "label": "B"}, {"text": "grass", "label": "C"}]}, "answerKey": "B", "info": {"subject": "colors", "grade": 4}}
{"id": "q2", "question": {"stem": "what is blue?", "choices": [{"text": "the sea", "label": "1"}, {"text": "the sun", "label": "2"}]}, "answerKey": "1", "info": {"subject": "colors"}}

{"id": "q3", "question": {"stem": "how many legs has a cat?", "choices": [{"text": "four", "label": "A"}, {"text": "two", "label": "B"}]}, "answerKey": "A", "info": {"subject": "animals"}}
"#;

const MC: &str = r#"{"question": "is ice cold?", "choices": ["yes", "no"], "answer": 0, "subject": "physics"}
{"question": "the opposite of up is", "choices": ["left", "down", "right"], "answer": 1}
"#;

#[test]
fn exams_and_generic_jsonl_are_read_into_items() {
    let temp = tempfile::tempdir().unwrap();
    let exams = read_items(&write(temp.path(), "exams.jsonl", EXAMS), TaskFormat::Exams).unwrap();
    assert_eq!(exams.len(), 3);
    assert_eq!(exams[0].question, "what is red?");
    assert_eq!(exams[0].choices, ["the sky", "a rose", "grass"]);
    assert_eq!(exams[0].answer, 1);
    assert_eq!(exams[0].subject, "colors");
    assert_eq!(exams[1].labels, ["1", "2"]);
    assert_eq!(exams[1].answer, 0);
    assert_eq!(exams[2].subject, "animals");

    let mc = read_items(&write(temp.path(), "mc.jsonl", MC), TaskFormat::McJsonl).unwrap();
    assert_eq!(mc.len(), 2);
    assert_eq!(mc[1].labels, ["A", "B", "C"]);
    assert_eq!(mc[1].answer, 1);
    assert_eq!(mc[0].subject, "physics");
    assert_eq!(mc[1].subject, "");
    assert_eq!(TaskFormat::from_name("mmlu").unwrap(), TaskFormat::McJsonl);
    assert!(TaskFormat::from_name("nope").is_err());
}

#[test]
fn bad_items_name_file_and_line() {
    let temp = tempfile::tempdir().unwrap();
    let cases = [
        (
            TaskFormat::Exams,
            EXAMS.replace(r#""answerKey": "A""#, r#""answerKey": "Z""#),
            4,
            "answerKey",
        ),
        (
            TaskFormat::McJsonl,
            MC.replace(r#""answer": 1"#, r#""answer": 3"#),
            2,
            "out of range",
        ),
        (
            TaskFormat::McJsonl,
            MC.replace(r#"["yes", "no"]"#, "[1, 2]"),
            1,
            "choices",
        ),
        (
            TaskFormat::McJsonl,
            MC.replace(r#", "answer": 0"#, ""),
            1,
            "answer",
        ),
    ];
    for (format, text, line, what) in cases {
        let path = write(temp.path(), "bad.jsonl", &text);
        match read_items(&path, format) {
            Err(e @ EvalError::Format { .. }) => {
                let message = e.to_string();
                assert!(
                    message.contains(&format!("bad.jsonl:{line}:")) && message.contains(what),
                    "{message}"
                );
            }
            other => panic!("expected a format error, got {other:?}"),
        }
    }
}

#[test]
fn acc_and_acc_norm_differ_when_length_matters() {
    // " no" (3 chars) at -3.0 beats " absolutely yes" (15 chars) at -6.0 by total, but per
    // character the long answer is more likely: -0.4 against -1.0.
    assert_eq!(pick(&[-3.0, -6.0], &[3, 15]), (0, 1));
    assert_eq!(pick(&[-6.0, -3.0], &[3, 15]), (1, 1));
    assert_eq!(pick(&[-1.0, -1.0], &[2, 2]), (0, 0), "first on ties");
}

#[test]
fn acc_norm_divides_by_the_choice_without_its_delimiter() {
    // Choices "ab" and "abcdef" at log-likelihoods -1.0 and -2.8. Without the delimiter (the
    // harness' len(choice)): -1.0 / 2 = -0.5 against -2.8 / 6 = -0.467, the long one wins.
    // Counting the space (" ab", " abcdef"): -1.0 / 3 = -0.333 against -2.8 / 7 = -0.4, the
    // short one would.
    assert_eq!(pick(&[-1.0, -2.8], &[2, 6]), (0, 1));
    assert_eq!(pick(&[-1.0, -2.8], &[3, 7]), (0, 0));
}

#[test]
fn prompts_and_shots() {
    let temp = tempfile::tempdir().unwrap();
    let items = read_items(&write(temp.path(), "exams.jsonl", EXAMS), TaskFormat::Exams).unwrap();
    assert_eq!(
        question_prompt(&items[0], ChoiceMode::Text),
        "Question: what is red?\nAnswer:"
    );
    assert_eq!(
        question_prompt(&items[1], ChoiceMode::Letters),
        "Question: what is blue?\n1. the sea\n2. the sun\nAnswer:"
    );
    assert_eq!(choice_continuation(&items[0], 1, ChoiceMode::Text), " a rose");
    assert_eq!(choice_continuation(&items[0], 1, ChoiceMode::Letters), " B");
    // One shot for q1 comes from its own subject (q2), never from itself.
    let context = few_shot_context(&items, 0, 1, ChoiceMode::Text).unwrap();
    assert_eq!(
        context,
        "Question: what is blue?\nAnswer: the sea\n\nQuestion: what is red?\nAnswer:"
    );
    assert_eq!(
        few_shot_context(&items, 2, 5, ChoiceMode::Text)
            .unwrap()
            .matches("Question:")
            .count(),
        3
    );
}

#[test]
fn evaluation_agrees_with_scoring_by_hand() {
    let device = allam_model::device::select("cpu").unwrap();
    let model = PretrainedModel::load(&fixture("tiny-gqa-untied"), &device).unwrap();
    let temp = tempfile::tempdir().unwrap();
    let items = read_items(&write(temp.path(), "exams.jsonl", EXAMS), TaskFormat::Exams).unwrap();
    let options = McOptions {
        mode: ChoiceMode::Text,
        shots: 0,
        batch_size: 4,
        ..McOptions::default()
    };
    let report = evaluate(&model, &items, options).unwrap();
    assert_eq!(report.overall.n, 3);
    assert_eq!(report.subjects["colors"].n, 2);
    assert_eq!(report.subjects["animals"].n, 1);
    let (mut acc, mut norm) = (0, 0);
    for item in &items {
        let requests: Vec<ScoreRequest> = (0..item.choices.len())
            .map(|i| {
                ScoreRequest::new(
                    question_prompt(item, ChoiceMode::Text),
                    format!(" {}", item.choices[i]),
                )
            })
            .collect();
        let scores = score_requests(&model, &requests, 1).unwrap();
        let logprobs: Vec<f64> = scores.iter().map(|s| s.logprob).collect();
        // acc_norm divides by the choice's characters, not counting the space before it.
        let lengths: Vec<usize> = item.choices.iter().map(|c| c.chars().count()).collect();
        let (a, n) = pick(&logprobs, &lengths);
        acc += usize::from(a == item.answer);
        norm += usize::from(n == item.answer);
    }
    assert!((report.overall.acc - acc as f64 / 3.0).abs() < 1e-12);
    assert!((report.overall.acc_norm - norm as f64 / 3.0).abs() < 1e-12);
    let letters = McOptions {
        mode: ChoiceMode::Letters,
        shots: 1,
        batch_size: 2,
        ..McOptions::default()
    };
    let report = evaluate(&model, &items, letters).unwrap();
    assert_eq!(report.overall.n, 3);
    assert!((0.0..=1.0).contains(&report.overall.acc));
}

const ACVA: &str = r#"{"id": "1", "question": "الرياض عاصمة السعودية", "answer": "صح", "subject": "Saudi_Arabia"}
{"id": "2", "question": "الشمس تدور حول الأرض", "answer": "خطأ"}
"#;

const ARABIC_MMLU_JSONL: &str = r#"{"ID": 1, "Subject": "Math", "Context": "", "Question": "كم يساوي ٢ + ٢؟", "Option 1": "٣", "Option 2": "٤", "Option 3": "٥", "Option 4": "", "Option 5": null, "Answer Key": "B"}
{"ID": 2, "Subject": "History", "Context": "قرأ الطالب نصاً.", "Question": "ما موضوع النص؟", "Option 1": "التاريخ", "Option 2": "العلوم", "Answer Key": "أ"}
{"Question": "اختر الخامس", "Option 1": "1", "Option 2": "2", "Option 3": "3", "Option 4": "4", "Option 5": "5", "Answer Key": "هـ"}
"#;

const ARABIC_MMLU_CSV: &str = "ID,Subject,Context,Question,Option 1,Option 2,Option 3,Option 4,Option 5,Answer Key\n\
1,Math,,\"كم يساوي ٢ + ٢، تقريباً؟\",٣,٤,,,,ب\n\
2,Physics,\"سياق\nمن سطرين\",ما هذا؟,أ,ب,ج,د,,D\n";

const MMLU_CSV: &str = "\"What is 1+1, in base 10?\",1,2,3,4,B\n\
Which is a prime?,4,6,7,9,C\n";

#[test]
fn acva_statements_become_true_false_items() {
    let temp = tempfile::tempdir().unwrap();
    let path = write(temp.path(), "acva.jsonl", ACVA);
    let items = read_items(&path, TaskFormat::from_name("acva").unwrap()).unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0].question, "الرياض عاصمة السعودية");
    assert_eq!(items[0].choices, allam_eval::ACVA_CHOICES);
    assert_eq!(items[0].answer, 0);
    assert_eq!(items[0].subject, "Saudi_Arabia");
    assert_eq!(items[1].answer, 1);
    assert_eq!(items[1].subject, "");
}

#[test]
fn arabic_mmlu_is_read_from_jsonl_and_csv() {
    let temp = tempfile::tempdir().unwrap();
    let format = TaskFormat::from_name("arabic-mmlu").unwrap();
    let items = read_items(&write(temp.path(), "ammlu.jsonl", ARABIC_MMLU_JSONL), format).unwrap();
    assert_eq!(items.len(), 3);
    assert_eq!(
        items[0].question, "كم يساوي ٢ + ٢؟",
        "an empty context is left out"
    );
    assert_eq!(
        items[0].choices,
        ["٣", "٤", "٥"],
        "empty and null options are skipped"
    );
    assert_eq!(items[0].labels, ["A", "B", "C"]);
    assert_eq!(items[0].answer, 1);
    assert_eq!(items[0].subject, "Math");
    assert_eq!(
        (items[1].context.as_str(), items[1].question.as_str()),
        ("قرأ الطالب نصاً.", "ما موضوع النص؟"),
        "the passage is kept apart from the question"
    );
    assert_eq!(
        question_prompt(&items[1], ChoiceMode::Text),
        "Question: قرأ الطالب نصاً.\nما موضوع النص؟\nAnswer:",
        "the house prompt puts it before the question"
    );
    assert_eq!(items[1].answer, 0);
    assert_eq!(items[2].answer, 4);
    assert_eq!(items[2].subject, "");

    let path = write(temp.path(), "ammlu.csv", ARABIC_MMLU_CSV);
    assert_eq!(TaskFormat::for_file("arabic-mmlu", &path).unwrap(), format);
    let items = read_items(&path, format).unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0].question, "كم يساوي ٢ + ٢، تقريباً؟");
    assert_eq!(items[0].choices, ["٣", "٤"]);
    assert_eq!(items[0].answer, 1);
    assert_eq!(items[1].context, "سياق\nمن سطرين");
    assert_eq!(items[1].question, "ما هذا؟");
    assert_eq!(items[1].choices.len(), 4);
    assert_eq!(items[1].answer, 3);
    assert_eq!(items[1].subject, "Physics");
}

#[test]
fn mmlu_csv_is_the_original_layout_and_jsonl_stays_generic() {
    let temp = tempfile::tempdir().unwrap();
    let path = write(temp.path(), "abstract_algebra_test.csv", MMLU_CSV);
    let format = TaskFormat::for_file("mmlu", &path).unwrap();
    assert_eq!(format, TaskFormat::MmluCsv);
    assert_eq!(TaskFormat::from_name("mmlu-csv").unwrap(), TaskFormat::MmluCsv);
    assert_eq!(
        TaskFormat::for_file("mmlu", Path::new("mmlu.jsonl")).unwrap(),
        TaskFormat::McJsonl
    );
    assert_eq!(
        TaskFormat::for_file("mc-jsonl", &path).unwrap(),
        TaskFormat::McJsonl,
        "only the mmlu name follows the extension"
    );
    let items = read_items(&path, format).unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0].question, "What is 1+1, in base 10?");
    assert_eq!(items[0].choices, ["1", "2", "3", "4"]);
    assert_eq!(items[0].answer, 1);
    assert_eq!(items[0].subject, "abstract_algebra");
    assert_eq!(items[1].answer, 2);
}

#[test]
fn bad_new_format_items_name_file_and_line() {
    let temp = tempfile::tempdir().unwrap();
    let cases = [
        (
            TaskFormat::Acva,
            "bad.jsonl",
            ACVA.replace(r#""answer": "خطأ""#, r#""answer": "ربما""#),
            2,
            "answer",
        ),
        (
            TaskFormat::Acva,
            "bad.jsonl",
            ACVA.replace(r#""question": "الرياض عاصمة السعودية", "#, ""),
            1,
            "question",
        ),
        (
            TaskFormat::ArabicMmlu,
            "bad.jsonl",
            ARABIC_MMLU_JSONL.replace(r#""Answer Key": "أ""#, r#""Answer Key": "C""#),
            2,
            "Option 3",
        ),
        (
            TaskFormat::ArabicMmlu,
            "bad.jsonl",
            ARABIC_MMLU_JSONL.replace(r#""Answer Key": "هـ""#, r#""Answer Key": "Z""#),
            3,
            "Answer Key",
        ),
        (
            TaskFormat::ArabicMmlu,
            "bad.csv",
            ARABIC_MMLU_CSV.replace(",,D\n", ",D\n"),
            3,
            "header",
        ),
        (
            TaskFormat::MmluCsv,
            "bad.csv",
            MMLU_CSV.replace(",C\n", ",X\n"),
            2,
            "answer",
        ),
        (
            TaskFormat::MmluCsv,
            "bad.csv",
            MMLU_CSV.replace("4,B", "B"),
            1,
            "question,A,B,C,D,answer",
        ),
    ];
    for (format, name, text, line, what) in cases {
        let path = write(temp.path(), name, &text);
        match read_items(&path, format) {
            Err(e @ EvalError::Format { .. }) => {
                let message = e.to_string();
                assert!(
                    message.contains(&format!("{name}:{line}:")) && message.contains(what),
                    "{message}"
                );
            }
            other => panic!("expected a format error, got {other:?}"),
        }
    }
}
