//! k-shot examples from a dev split, Arabic labels and cues, and chat-template prompts.
use std::path::{Path, PathBuf};

use allam_eval::multiple_choice::{adds_special_tokens, item_prompts, render_scored_items};
use allam_eval::{
    ChoiceMode, LetterScript, McItem, McOptions, ShotPool, TaskFormat, encode_request_with,
    evaluate_with_dev, read_items,
};
use allam_model::PretrainedModel;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(name)
}

fn item(question: &str, subject: &str) -> McItem {
    McItem {
        question: question.into(),
        choices: vec!["yes".into(), "no".into()],
        labels: vec!["A".into(), "B".into()],
        answer: 0,
        subject: subject.into(),
        ..McItem::default()
    }
}

/// Twenty dev items of subject `s`, five of `t`, and one that repeats the test question.
fn dev_split() -> Vec<McItem> {
    let mut dev: Vec<McItem> = (0..20).map(|i| item(&format!("s question {i}"), "s")).collect();
    dev.extend((0..5).map(|i| item(&format!("t question {i}"), "t")));
    dev.push(item("the test question", "s"));
    dev
}

#[test]
fn dev_shots_are_seeded_same_subject_and_never_the_question_itself() {
    let dev = dev_split();
    let pool = ShotPool::new(&dev, false);
    let test = item("the test question", "s");
    let twin = dev.len() - 1;
    let draw = |seed| pool.sample(&test, 0, 3, seed);
    assert_eq!(draw(1234), draw(1234), "same seed, same shots");
    assert_ne!(draw(1234), draw(1235), "another seed, other shots");
    for seed in 0..300 {
        let shots = draw(seed);
        assert_eq!(shots.len(), 3);
        assert!(
            !shots.contains(&twin),
            "seed {seed}: the question is its own example"
        );
        assert!(
            shots.iter().all(|&i| dev[i].subject == "s"),
            "seed {seed}: same subject first"
        );
        let mut unique = shots.clone();
        unique.dedup();
        assert_eq!(unique.len(), 3, "no example twice");
    }
    // Too few of its subject: the rest comes from the others.
    let shots = pool.sample(&item("a u question", "t"), 0, 8, 7);
    assert_eq!(shots.iter().filter(|&&i| dev[i].subject == "t").count(), 5);
    assert_eq!(shots.len(), 8);
    // Without a dev split the test file is the pool, and an item never draws itself.
    let items = dev_split();
    let own = ShotPool::new(&items, true);
    for (index, item) in items.iter().enumerate() {
        assert!(!own.sample(item, index, 25, 1234).contains(&index));
    }
}

#[test]
fn prompts_depend_on_the_seed_only() {
    let dev = dev_split();
    let items: Vec<McItem> = (0..4).map(|i| item(&format!("q{i}"), "s")).collect();
    let options = |seed| McOptions {
        shots: 2,
        seed,
        ..McOptions::default()
    };
    let a = item_prompts(&items, Some(&dev), &options(1)).unwrap();
    assert_eq!(a, item_prompts(&items, Some(&dev), &options(1)).unwrap());
    assert_ne!(a, item_prompts(&items, Some(&dev), &options(2)).unwrap());
    assert!(a.iter().all(|p| p.matches("Question:").count() == 3));
}

const ARABIC_TEST: &str = r#"{"id": "t1", "language": "ar", "subject": "geo", "question": "ما عاصمة السعودية؟", "choices": ["جدة", "الرياض", "مكة", "الدمام"], "answer": 1}
{"id": "t2", "subject": "geo", "question": "What is the capital of Egypt?", "choices": ["Cairo", "Giza"], "answer": 0}
"#;

const ARABIC_DEV: &str = r#"{"id": "d1", "language": "ar", "subject": "geo", "question": "ما عاصمة مصر؟", "choices": ["القاهرة", "الإسكندرية", "أسوان", "الأقصر", "طنطا"], "answer": 0}
"#;

#[test]
fn arabic_items_get_arabic_labels_and_cue() {
    let temp = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let path = temp.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let items = read_items(&write("test.jsonl", ARABIC_TEST), TaskFormat::McJsonl).unwrap();
    let dev = read_items(&write("dev.jsonl", ARABIC_DEV), TaskFormat::McJsonl).unwrap();
    assert_eq!(
        (items[0].language.as_str(), items[0].subject.as_str()),
        ("ar", "geo")
    );
    let options = McOptions {
        mode: ChoiceMode::Letters,
        shots: 1,
        ..McOptions::default()
    };
    let prompts = item_prompts(&items, Some(&dev), &options).unwrap();
    assert_eq!(
        prompts[0],
        "السؤال: ما عاصمة مصر؟\nأ. القاهرة\nب. الإسكندرية\nج. أسوان\nد. الأقصر\nه. طنطا\nالإجابة: أ\n\n\
         السؤال: ما عاصمة السعودية؟\nأ. جدة\nب. الرياض\nج. مكة\nد. الدمام\nالإجابة:"
    );
    // An English question keeps Latin labels under `auto`, and gets Arabic ones when asked.
    assert_eq!(
        prompts[1],
        "Question: ما عاصمة مصر؟\nA. القاهرة\nB. الإسكندرية\nC. أسوان\nD. الأقصر\nE. طنطا\nAnswer: A\n\n\
         Question: What is the capital of Egypt?\nA. Cairo\nB. Giza\nAnswer:"
    );
    let arabic = McOptions {
        letters: LetterScript::Arabic,
        shots: 0,
        ..options
    };
    assert_eq!(
        item_prompts(&items, None, &arabic).unwrap()[1],
        "السؤال: What is the capital of Egypt?\nأ. Cairo\nب. Giza\nالإجابة:"
    );
    // Without a language key the script decides.
    let mut unlabelled = items[0].clone();
    unlabelled.language.clear();
    assert_eq!(
        LetterScript::Auto.for_item(&unlabelled),
        allam_eval::Script::Arabic
    );
}

#[test]
fn chat_prompts_render_through_the_model_template() {
    let device = allam_model::device::select("cpu").unwrap();
    let model = PretrainedModel::load(&fixture("tiny-gqa-untied"), &device).unwrap();
    let tokenizer = model.tokenizer().unwrap();
    let items = vec![item("is ice cold?", "s"), item("is fire hot?", "s")];
    let options = McOptions {
        shots: 1,
        chat: true,
        ..McOptions::default()
    };
    let rendered = &render_scored_items(tokenizer, &items, None, &options).unwrap()[0];
    let context = rendered.context.clone();
    assert_eq!(
        context,
        "<s>[INST] Question: is fire hot?\nAnswer: yes\n\nQuestion: is ice cold?\nAnswer: [/INST]"
    );
    // The choices follow the generation prompt without the delimiter.
    assert_eq!(rendered.continuations, ["yes", "no"]);
    // The template's BOS is the only one: the text starts with it, so no special tokens.
    assert!(!adds_special_tokens(tokenizer, options.bos, &context));
    let bos = model.model.config.bos_token_id;
    let request = allam_eval::ScoreRequest::new(context, "yes");
    let encoded = encode_request_with(tokenizer, &request, bos, false).unwrap();
    assert_eq!(Some(encoded.context[0]), bos);
    assert_ne!(Some(encoded.context[1]), bos);
    // A template without BOS (ChatML) still gets the tokenizer's, as the harness encodes it.
    let chatml = tokenizer.clone().with_chat_template(
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}<|im_start|>assistant\n",
    );
    let rendered = &render_scored_items(&chatml, &items, None, &options).unwrap()[0];
    assert!(
        rendered.context.starts_with("<|im_start|>user\n"),
        "{}",
        rendered.context
    );
    assert!(adds_special_tokens(&chatml, options.bos, &rendered.context));
    assert!(!adds_special_tokens(
        &chatml,
        allam_eval::Bos::None,
        &rendered.context
    ));
    let report = evaluate_with_dev(&model, &items, None, options).unwrap();
    assert_eq!(report.overall.n, 2);
    let plain = evaluate_with_dev(
        &model,
        &items,
        None,
        McOptions {
            chat: false,
            ..options
        },
    )
    .unwrap();
    assert_eq!(plain.overall.n, 2);
}
