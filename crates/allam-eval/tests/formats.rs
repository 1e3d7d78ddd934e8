//! Each task's reference prompt, byte for byte: one item 0-shot and 2-shot, the whole context and
//! every continuation written out by hand from the reference definitions (lm-evaluation-harness
//! `mmlu`, `arabicmmlu`, `arabic_leaderboard_complete` EXAMS and ACVA; ArabicMMLU's
//! `prepare_data_ar`), assembled as the harness does: description + (shot + " " + answer +
//! "\n\n")* + question.
use std::path::{Path, PathBuf};

use allam_eval::multiple_choice::render_items;
use allam_eval::{McOptions, PromptFormat, RenderedItem, TaskFormat, read_items};

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// The test file's first item rendered in `format` with `shots` examples from `dev`.
fn render(task: TaskFormat, format: &str, test: &str, dev: &str, shots: usize) -> RenderedItem {
    let temp = tempfile::tempdir().unwrap();
    let items = read_items(&write(temp.path(), "test.jsonl", test), task).unwrap();
    let dev = read_items(&write(temp.path(), "dev.jsonl", dev), task).unwrap();
    let options = McOptions {
        format: PromptFormat::from_name(format).unwrap(),
        shots,
        ..McOptions::default()
    };
    render_items(&items, Some(&dev), &options).unwrap().remove(0)
}

const MMLU_TEST: &str = r#"{"question": "  What is 2 + 2?\n", "subject": "high_school_mathematics", "choices": ["3", "4", " 5", "6"], "answer": 1}
"#;

/// An item of another subject first: MMLU's examples are its subject's dev items, in file order.
const MMLU_DEV: &str = r#"{"question": "Which is a noble gas?", "subject": "high_school_chemistry", "choices": ["He", "H", "O", "N"], "answer": 0}
{"question": "What is 1 + 1?", "subject": "high_school_mathematics", "choices": ["2", "3", "4", "5"], "answer": 0}
{"question": "What is 3 * 3?", "subject": "high_school_mathematics", "choices": ["6", "8", "9", "12"], "answer": 2}
{"question": "What is 5 - 5?", "subject": "high_school_mathematics", "choices": ["0", "1", "5", "10"], "answer": 0}
"#;

#[test]
fn mmlu_is_lm_evaluation_harness_mmlu() {
    let zero = render(TaskFormat::McJsonl, "mmlu", MMLU_TEST, MMLU_DEV, 0);
    assert_eq!(
        zero.context,
        "The following are multiple choice questions (with answers) about high school mathematics.\n\n\
         What is 2 + 2?\nA. 3\nB. 4\nC.  5\nD. 6\nAnswer:"
    );
    assert_eq!(zero.continuations, [" A", " B", " C", " D"]);
    assert_eq!(zero.choices, ["A", "B", "C", "D"]);
    let two = render(TaskFormat::McJsonl, "mmlu", MMLU_TEST, MMLU_DEV, 2);
    assert_eq!(
        two.context,
        "The following are multiple choice questions (with answers) about high school mathematics.\n\n\
         What is 1 + 1?\nA. 2\nB. 3\nC. 4\nD. 5\nAnswer: A\n\n\
         What is 3 * 3?\nA. 6\nB. 8\nC. 9\nD. 12\nAnswer: C\n\n\
         What is 2 + 2?\nA. 3\nB. 4\nC.  5\nD. 6\nAnswer:"
    );
    assert_eq!(two.continuations, [" A", " B", " C", " D"]);
    // The original CSV (subject from the file name) renders the same.
    let temp = tempfile::tempdir().unwrap();
    let test = write(
        temp.path(),
        "high_school_mathematics_test.csv",
        "\"  What is 2 + 2?\n\",3,4, 5,6,B\n",
    );
    let dev = write(
        temp.path(),
        "high_school_mathematics_dev.csv",
        "What is 1 + 1?,2,3,4,5,A\n\"What is 3 * 3?\",6,8,9,12,C\n",
    );
    let format = TaskFormat::for_file("mmlu", &test).unwrap();
    let (test, dev) = (
        read_items(&test, format).unwrap(),
        read_items(&dev, format).unwrap(),
    );
    let options = McOptions {
        format: PromptFormat::Mmlu,
        shots: 2,
        ..McOptions::default()
    };
    assert_eq!(render_items(&test, Some(&dev), &options).unwrap()[0], two);
}

const ARABIC_MMLU_TEST: &str = r#"{"ID": 7, "Subject": "Accounting", "Level": "Univ", "Country": "KSA", "Context": "نص قصير", "Question": "ما هو الأصل؟", "Option 1": "نقد", "Option 2": "دين", "Option 3": "ربح", "Option 4": null, "Option 5": "", "Answer Key": "B"}
"#;

/// A high-school item first (another group), then two university accounting items.
const ARABIC_MMLU_DEV: &str = r#"{"ID": 1, "Subject": "Accounting", "Level": "High", "Country": "", "Context": "", "Question": "س٠", "Option 1": "م", "Option 2": "ن", "Answer Key": "A"}
{"ID": 2, "Subject": "Accounting", "Level": "Univ", "Country": "", "Context": "", "Question": "س١", "Option 1": "x", "Option 2": "y", "Answer Key": "A"}
{"ID": 3, "Subject": "Accounting", "Level": "Univ", "Country": "Egypt", "Context": "", "Question": "س٢", "Option 1": "ق", "Option 2": "ك", "Option 3": "ل", "Option 4": "م", "Answer Key": "D"}
"#;

#[test]
fn arabic_mmlu_is_lm_evaluation_harness_arabicmmlu() {
    let zero = render(
        TaskFormat::ArabicMmlu,
        "arabic-mmlu",
        ARABIC_MMLU_TEST,
        ARABIC_MMLU_DEV,
        0,
    );
    assert_eq!(
        zero.context,
        "This is a Accounting question for university in KSA. Select the correct answer!\n\n\
         Question: نص قصير\n\nما هو الأصل؟\nA. نقد\nB. دين\nC. ربح\n\nAnswer:"
    );
    assert_eq!(zero.continuations, [" A", " B", " C"]);
    let two = render(
        TaskFormat::ArabicMmlu,
        "arabic-mmlu",
        ARABIC_MMLU_TEST,
        ARABIC_MMLU_DEV,
        2,
    );
    assert_eq!(
        two.context,
        "This is a Accounting question for university. Select the correct answer!\n\n\
         Question: س١\nA. x\nB. y\n\nAnswer: A\n\n\
         This is a Accounting question for university in Egypt. Select the correct answer!\n\n\
         Question: س٢\nA. ق\nB. ك\nC. ل\nD. م\n\nAnswer: D\n\n\
         This is a Accounting question for university in KSA. Select the correct answer!\n\n\
         Question: نص قصير\n\nما هو الأصل؟\nA. نقد\nB. دين\nC. ربح\n\nAnswer:"
    );
    assert_eq!(two.continuations, [" A", " B", " C"]);
}

#[test]
fn arabic_mmlu_ar_is_the_original_arabic_prompt() {
    let zero = render(
        TaskFormat::ArabicMmlu,
        "arabic-mmlu-ar",
        ARABIC_MMLU_TEST,
        ARABIC_MMLU_DEV,
        0,
    );
    // `prepare_data_ar`: the cue ends in a space and the letters follow it directly.
    assert_eq!(
        zero.context,
        "هذا سؤال في المحاسبة للجامعات في المملكة العربية السعودية. اختر الإجابة الصحيحة!\n\n\
         سؤال: نص قصير\n\nما هو الأصل؟\nأ- نقد\nب- دين\nج- ربح\n\nإجابة: "
    );
    assert_eq!(zero.continuations, ["أ", "ب", "ج"]);
    assert_eq!(zero.choices, ["أ", "ب", "ج"]);
    let two = render(
        TaskFormat::ArabicMmlu,
        "arabic-mmlu-ar",
        ARABIC_MMLU_TEST,
        ARABIC_MMLU_DEV,
        2,
    );
    assert_eq!(
        two.context,
        "هذا سؤال في المحاسبة للجامعات. اختر الإجابة الصحيحة!\n\n\
         سؤال: س١\nأ- x\nب- y\n\nإجابة: أ\n\n\
         هذا سؤال في المحاسبة للجامعات في مصر. اختر الإجابة الصحيحة!\n\n\
         سؤال: س٢\nأ- ق\nب- ك\nج- ل\nد- م\n\nإجابة: د\n\n\
         هذا سؤال في المحاسبة للجامعات في المملكة العربية السعودية. اختر الإجابة الصحيحة!\n\n\
         سؤال: نص قصير\n\nما هو الأصل؟\nأ- نقد\nب- دين\nج- ربح\n\nإجابة: "
    );
    // The table's quirks are kept (a leading space before Political Science), and a subject
    // outside it is an error naming the item and the value.
    let political = ARABIC_MMLU_TEST
        .replace("Accounting", "Political Science")
        .replace(
            r#""Level": "Univ", "Country": "KSA""#,
            r#""Level": "", "Country": """#,
        );
    let item = render(
        TaskFormat::ArabicMmlu,
        "arabic-mmlu-ar",
        &political,
        ARABIC_MMLU_DEV,
        0,
    );
    assert!(
        item.context.starts_with("هذا سؤال  في العلوم السياسية. اختر"),
        "{}",
        item.context
    );
    let temp = tempfile::tempdir().unwrap();
    let unknown = ARABIC_MMLU_TEST.replace("Accounting", "Astrology");
    let items = read_items(&write(temp.path(), "t.jsonl", &unknown), TaskFormat::ArabicMmlu).unwrap();
    let options = McOptions {
        format: PromptFormat::ArabicMmluAr,
        ..McOptions::default()
    };
    let err = render_items(&items, None, &options).unwrap_err().to_string();
    assert!(err.contains("item 1") && err.contains("Astrology"), "{err}");
}

const EXAMS_TEST: &str = r#"{"id": "e1", "question": {"stem": "ما عاصمة مصر؟", "choices": [{"text": "القاهرة", "label": "A"}, {"text": "الجيزة", "label": "B"}, {"text": "أسوان", "label": "C"}, {"text": "الأقصر", "label": "D"}]}, "answerKey": "A", "info": {"grade": 4, "subject": "Social_Studies", "language": "Arabic"}}
"#;

/// The leaderboard's own export (`OALL/Arabic_EXAMS`); one task, so any subject is an example.
const EXAMS_DEV: &str = r#"{"id": "v1", "question": "ما لون السماء؟", "A": "أحمر", "B": "أزرق", "C": "أخضر", "D": "أصفر", "answer": "B", "subject": "Science"}
{"id": "v2", "question": "كم عدد أركان الإسلام؟", "A": "ثلاثة", "B": "أربعة", "C": "خمسة", "D": "ستة", "answer": "C", "subject": "Islamic Studies"}
{"id": "v3", "question": "سؤال ثالث", "A": "١", "B": "٢", "C": "٣", "D": "٤", "answer": "D", "subject": "Science"}
"#;

#[test]
fn exams_is_the_arabic_leaderboard_prompt() {
    let zero = render(TaskFormat::Exams, "arabic-exams", EXAMS_TEST, EXAMS_DEV, 0);
    assert_eq!(
        zero.context,
        "الأسئلة التالية هي أسئلة متعددة الإختيارات مع الجواب الصحيح حول Social Studies. \n\n\
         السؤال: ما عاصمة مصر؟\n أ) القاهرة\n\n ب) الجيزة\n\n ج) أسوان\n\n د) الأقصر\n\nالإجابة:"
    );
    assert_eq!(zero.continuations, [" أ", " ب", " ج", " د"]);
    let two = render(TaskFormat::Exams, "arabic-exams", EXAMS_TEST, EXAMS_DEV, 2);
    assert_eq!(
        two.context,
        "الأسئلة التالية هي أسئلة متعددة الإختيارات مع الجواب الصحيح حول Science. \n\n\
         السؤال: ما لون السماء؟\n أ) أحمر\n\n ب) أزرق\n\n ج) أخضر\n\n د) أصفر\n\nالإجابة: ب\n\n\
         الأسئلة التالية هي أسئلة متعددة الإختيارات مع الجواب الصحيح حول Islamic Studies. \n\n\
         السؤال: كم عدد أركان الإسلام؟\n أ) ثلاثة\n\n ب) أربعة\n\n ج) خمسة\n\n د) ستة\n\nالإجابة: ج\n\n\
         الأسئلة التالية هي أسئلة متعددة الإختيارات مع الجواب الصحيح حول Social Studies. \n\n\
         السؤال: ما عاصمة مصر؟\n أ) القاهرة\n\n ب) الجيزة\n\n ج) أسوان\n\n د) الأقصر\n\nالإجابة:"
    );
    assert_eq!(two.continuations, [" أ", " ب", " ج", " د"]);
}

const ACVA_TEST: &str = r#"{"id": "1", "question": "الرياض عاصمة السعودية", "answer": "صح", "subject": "Saudi_Arabia"}
"#;

/// Another subject's statement first: ACVA's examples are its subset's validation items.
const ACVA_DEV: &str = r#"{"id": "a", "question": "القاهرة في تونس", "answer": "خطأ", "subject": "Tunisia"}
{"id": "b", "question": "جدة مدينة ساحلية", "answer": "صح", "subject": "Saudi_Arabia"}
{"id": "c", "question": "مكة في مصر", "answer": "خطأ", "subject": "Saudi_Arabia"}
{"id": "d", "question": "الدمام شرق المملكة", "answer": "صح", "subject": "Saudi_Arabia"}
"#;

#[test]
fn acva_is_the_arabic_leaderboard_prompt() {
    let zero = render(TaskFormat::Acva, "acva", ACVA_TEST, ACVA_DEV, 0);
    assert_eq!(zero.context, "السؤال: الرياض عاصمة السعودية\nالإجابة:");
    assert_eq!(zero.continuations, [" صح", " خطأ"]);
    assert_eq!(zero.choices, ["صح", "خطأ"]);
    let two = render(TaskFormat::Acva, "acva", ACVA_TEST, ACVA_DEV, 2);
    assert_eq!(
        two.context,
        "السؤال: جدة مدينة ساحلية\nالإجابة: صح\n\n\
         السؤال: مكة في مصر\nالإجابة: خطأ\n\n\
         السؤال: الرياض عاصمة السعودية\nالإجابة:"
    );
    assert_eq!(two.continuations, [" صح", " خطأ"]);
}

/// lighteval <= 0.10 (the Open Arabic LLM Leaderboard's runs): the instruction once, the
/// question's, and no space before the answer.
#[test]
fn the_oall_formats_are_lightevals_assembly() {
    let zero = render(TaskFormat::Exams, "arabic-exams-oall", EXAMS_TEST, EXAMS_DEV, 0);
    let exams = render(TaskFormat::Exams, "arabic-exams", EXAMS_TEST, EXAMS_DEV, 0);
    assert_eq!(zero.context, exams.context);
    assert_eq!(zero.continuations, ["أ", "ب", "ج", "د"]);
    let two = render(TaskFormat::Exams, "arabic-exams-oall", EXAMS_TEST, EXAMS_DEV, 2);
    assert_eq!(
        two.context,
        "الأسئلة التالية هي أسئلة متعددة الإختيارات مع الجواب الصحيح حول Social Studies. \n\n\
         السؤال: ما لون السماء؟\n أ) أحمر\n\n ب) أزرق\n\n ج) أخضر\n\n د) أصفر\n\nالإجابة:ب\n\n\
         السؤال: كم عدد أركان الإسلام؟\n أ) ثلاثة\n\n ب) أربعة\n\n ج) خمسة\n\n د) ستة\n\nالإجابة:ج\n\n\
         السؤال: ما عاصمة مصر؟\n أ) القاهرة\n\n ب) الجيزة\n\n ج) أسوان\n\n د) الأقصر\n\nالإجابة:"
    );
    assert_eq!(two.continuations, ["أ", "ب", "ج", "د"]);

    let zero = render(TaskFormat::Acva, "acva-oall", ACVA_TEST, ACVA_DEV, 0);
    assert_eq!(zero.context, "السؤال: الرياض عاصمة السعودية\nالإجابة:");
    assert_eq!(zero.continuations, ["صح", "خطأ"]);
    let two = render(TaskFormat::Acva, "acva-oall", ACVA_TEST, ACVA_DEV, 2);
    assert_eq!(
        two.context,
        "السؤال: جدة مدينة ساحلية\nالإجابة:صح\n\n\
         السؤال: مكة في مصر\nالإجابة:خطأ\n\n\
         السؤال: الرياض عاصمة السعودية\nالإجابة:"
    );
    for format in ["arabic-exams-oall", "acva-oall"] {
        assert_eq!(
            PromptFormat::from_name(format).unwrap().default_shots(),
            0,
            "{format}"
        );
    }
}

#[test]
fn first_n_without_a_dev_split_skips_the_question_and_too_few_is_an_error() {
    let temp = tempfile::tempdir().unwrap();
    // The Saudi_Arabia statements only (Tunisia's one statement could have no example).
    let saudi: String = ACVA_DEV.lines().skip(1).map(|l| format!("{l}\n")).collect();
    let test = format!("{ACVA_TEST}{saudi}");
    let items = read_items(&write(temp.path(), "t.jsonl", &test), TaskFormat::Acva).unwrap();
    let options = McOptions {
        format: PromptFormat::Acva,
        shots: 2,
        ..McOptions::default()
    };
    let rendered = render_items(&items, None, &options).unwrap();
    // Item 2 (مكة) takes the first two items other than itself: 0 and 1.
    assert_eq!(
        rendered[2].context,
        "السؤال: الرياض عاصمة السعودية\nالإجابة: صح\n\n\
         السؤال: جدة مدينة ساحلية\nالإجابة: صح\n\n\
         السؤال: مكة في مصر\nالإجابة:"
    );
    let options = McOptions { shots: 4, ..options };
    let err = render_items(&items, None, &options).unwrap_err().to_string();
    assert!(
        err.contains("4 examples") && err.contains("Saudi_Arabia"),
        "{err}"
    );
}

#[test]
fn each_task_defaults_to_its_reference_format() {
    let cases = [
        ("mmlu", "mmlu", 0),
        ("mmlu-csv", "mmlu", 0),
        ("arabic-mmlu", "arabic-mmlu", 0),
        ("exams", "arabic-exams", 5),
        ("acva", "acva", 5),
        ("mc-jsonl", "house", 0),
    ];
    for (task, format, shots) in cases {
        let default = PromptFormat::default_for_task(task);
        assert_eq!(
            (default.name(), default.default_shots()),
            (format, shots),
            "{task}"
        );
        assert_eq!(PromptFormat::from_name(format).unwrap(), default);
    }
    assert!(PromptFormat::from_name("helm").is_err());
}

#[test]
fn the_house_format_is_kept() {
    let temp = tempfile::tempdir().unwrap();
    let items = read_items(&write(temp.path(), "t.jsonl", ACVA_TEST), TaskFormat::Acva).unwrap();
    let rendered = render_items(&items, None, &McOptions::default()).unwrap();
    assert_eq!(rendered[0].context, "السؤال: الرياض عاصمة السعودية\nالإجابة:");
    assert_eq!(rendered[0].continuations, [" صح", " خطأ"]);
}
