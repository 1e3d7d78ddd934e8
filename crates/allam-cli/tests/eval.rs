//! `allam eval`: accuracy overall and per subject, examples from a dev split, the settings it
//! used, `--log-samples`, and errors that name the file and line.
mod common;

use common::{allam, fixture, json};

#[test]
fn eval_reports_accuracy_overall_and_per_subject() {
    let dir = fixture("tiny-gqa-untied");
    let temp = tempfile::tempdir().unwrap();
    let data = temp.path().join("mc.jsonl");
    std::fs::write(
        &data,
        concat!(
            r#"{"question": "is ice cold?", "choices": ["yes", "no"], "answer": 0, "subject": "physics"}"#,
            "\n",
            r#"{"question": "the opposite of up is", "choices": ["left", "down"], "answer": 1, "subject": "words"}"#,
            "\n",
            r#"{"question": "is fire hot?", "choices": ["no", "yes"], "answer": 1, "subject": "physics"}"#,
            "\n",
        ),
    )
    .unwrap();
    for mode in ["text", "letters"] {
        let report = json(&allam(&[
            "eval",
            "--model",
            dir.to_str().unwrap(),
            "--task",
            "mc-jsonl",
            "--data",
            data.to_str().unwrap(),
            "--shots",
            "1",
            "--mode",
            mode,
            "--json",
        ]));
        assert_eq!(report["overall"]["n"], 3);
        assert_eq!(report["subjects"]["physics"]["n"], 2);
        assert_eq!(report["subjects"]["words"]["n"], 1);
        let acc = report["overall"]["acc"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&acc));
    }
    let out = allam(&[
        "eval",
        "--model",
        dir.to_str().unwrap(),
        "--task",
        "nope",
        "--data",
        data.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope"));
    // A known format that does not fit the file names the file and line.
    let out = allam(&[
        "eval",
        "--model",
        dir.to_str().unwrap(),
        "--task",
        "acva",
        "--data",
        data.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("mc.jsonl:1:"));
}

#[test]
fn eval_draws_shots_from_a_dev_split() {
    let dir = fixture("tiny-gqa-untied");
    let temp = tempfile::tempdir().unwrap();
    let data = temp.path().join("test.jsonl");
    let dev = temp.path().join("dev.jsonl");
    std::fs::write(
        &data,
        concat!(
            r#"{"id": "t1", "language": "en", "subject": "physics", "question": "is ice cold?", "choices": ["yes", "no"], "answer": 0}"#,
            "\n",
            r#"{"id": "t2", "language": "ar", "subject": "words", "question": "عكس فوق", "choices": ["يسار", "تحت"], "answer": 1}"#,
            "\n",
            r#"{"id": "t3", "language": "en", "subject": "physics", "question": "is fire hot?", "choices": ["no", "yes"], "answer": 1}"#,
            "\n",
        ),
    )
    .unwrap();
    std::fs::write(
        &dev,
        concat!(
            r#"{"id": "d1", "language": "en", "subject": "physics", "question": "is water wet?", "choices": ["yes", "no"], "answer": 0}"#,
            "\n",
            r#"{"id": "d2", "language": "en", "subject": "physics", "question": "is snow hot?", "choices": ["yes", "no"], "answer": 1}"#,
            "\n",
            r#"{"id": "d3", "language": "ar", "subject": "words", "question": "عكس يمين", "choices": ["يسار", "فوق"], "answer": 0}"#,
            "\n",
        ),
    )
    .unwrap();
    let run = |extra: &[&str]| {
        let mut args = vec![
            "eval",
            "--model",
            dir.to_str().unwrap(),
            "--task",
            "mc-jsonl",
            "--data",
            data.to_str().unwrap(),
            "--dev",
            dev.to_str().unwrap(),
            "--shots",
            "2",
            "--json",
        ];
        args.extend_from_slice(extra);
        json(&allam(&args))
    };
    let report = run(&[]);
    assert_eq!(report["shots"], 2);
    assert_eq!(report["seed"], 1234);
    assert_eq!(report["overall"]["n"], 3);
    assert_eq!(report["subjects"]["physics"]["n"], 2);
    assert_eq!(report["subjects"]["words"]["n"], 1);
    for subject in ["physics", "words"] {
        let acc = report["subjects"][subject]["acc"].as_f64().unwrap();
        let norm = report["subjects"][subject]["acc_norm"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&acc) && (0.0..=1.0).contains(&norm));
    }
    assert_eq!(run(&[]), report, "the same seed gives the same result");
    // Under a chat template each choice follows the generation prompt with no space (as
    // lm-evaluation-harness scores it). This fixture's tokenizer has tokens for lowercase Latin
    // letters and `▁` only, so a bare Arabic choice adds no token: an error naming the item.
    let chat_on = |data: &std::path::Path| {
        allam(&[
            "eval",
            "--model",
            dir.to_str().unwrap(),
            "--task",
            "mc-jsonl",
            "--data",
            data.to_str().unwrap(),
            "--dev",
            dev.to_str().unwrap(),
            "--shots",
            "2",
            "--chat",
            "--seed",
            "7",
            "--json",
        ])
    };
    let out = chat_on(&data);
    assert_eq!(out.status.code(), Some(1));
    let err = common::stderr(&out);
    assert!(err.contains("item 2") && err.contains("adds no tokens"), "{err}");
    let english = temp.path().join("english.jsonl");
    let lines: String = std::fs::read_to_string(&data)
        .unwrap()
        .lines()
        .filter(|l| l.contains(r#""language": "en""#))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&english, lines).unwrap();
    let chat = json(&chat_on(&english));
    assert_eq!(
        (chat["chat"].as_bool(), chat["seed"].as_u64()),
        (Some(true), Some(7))
    );
    assert_eq!(chat["overall"]["n"], 2);
    assert_eq!(chat["settings"]["target_delimiter"], "");
    // A bad dev file names itself and its line.
    std::fs::write(&dev, "{\"question\": \"x\"}\n").unwrap();
    let out = allam(&[
        "eval",
        "--model",
        dir.to_str().unwrap(),
        "--task",
        "mc-jsonl",
        "--data",
        data.to_str().unwrap(),
        "--dev",
        dev.to_str().unwrap(),
        "--shots",
        "1",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("dev.jsonl:1:"));
}

#[test]
fn eval_prints_its_settings_and_logs_samples() {
    let dir = fixture("tiny-gqa-untied");
    let temp = tempfile::tempdir().unwrap();
    let data = temp.path().join("acva.jsonl");
    std::fs::write(
        &data,
        concat!(
            r#"{"id": "1", "question": "الرياض عاصمة السعودية", "answer": "صح", "subject": "Saudi_Arabia"}"#,
            "\n",
            r#"{"id": "2", "question": "مكة في مصر", "answer": "خطأ", "subject": "Saudi_Arabia"}"#,
            "\n",
            r#"{"id": "3", "question": "جدة مدينة ساحلية", "answer": "صح", "subject": "Saudi_Arabia"}"#,
            "\n",
        ),
    )
    .unwrap();
    let log = temp.path().join("samples.jsonl");
    let base = [
        "eval",
        "--model",
        dir.to_str().unwrap(),
        "--task",
        "acva",
        "--data",
        data.to_str().unwrap(),
    ];
    let with = |extra: &[&str]| {
        let mut args = base.to_vec();
        args.extend_from_slice(extra);
        allam(&args)
    };
    let report = json(&with(&[
        "--shots",
        "1",
        "--log-samples",
        log.to_str().unwrap(),
        "--json",
    ]));
    let settings = &report["settings"];
    assert_eq!(report["format"], "acva");
    assert_eq!(settings["shots"], 1);
    assert!(
        settings["shot_selection"]
            .as_str()
            .unwrap()
            .starts_with("first_n")
    );
    assert!(
        settings["normalisation"]
            .as_str()
            .unwrap()
            .contains("without the target delimiter")
    );
    assert!(
        settings["bos"].as_str().unwrap().starts_with("tokenizer"),
        "{settings}"
    );
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(
        lines[1]["context"],
        "السؤال: الرياض عاصمة السعودية\nالإجابة: صح\n\nالسؤال: مكة في مصر\nالإجابة:"
    );
    assert_eq!(lines[1]["continuations"], serde_json::json!([" صح", " خطأ"]));
    assert_eq!(lines[1]["gold"], 1);
    let mean = |key: &str| lines.iter().map(|l| l[key].as_f64().unwrap()).sum::<f64>() / 3.0;
    assert!((mean("acc") - report["overall"]["acc"].as_f64().unwrap()).abs() < 1e-12);
    assert!((mean("acc_norm") - report["overall"]["acc_norm"].as_f64().unwrap()).abs() < 1e-12);
    assert_eq!(lines[0]["logprobs"].as_array().unwrap().len(), 2);
    // The text table starts with the same settings.
    let out = with(&["--shots", "1", "--bos", "none"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("# format: acva"), "{text}");
    assert!(text.contains("# shots: 1 (first_n"), "{text}");
    assert!(text.contains("# bos: none"), "{text}");
    assert!(text.contains("(all)\t3\t"), "{text}");
    // ACVA's default is 5 shots: three statements cannot give them, and the error says why.
    let out = with(&[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("5 examples asked"));
    // House settings do not apply to a reference format.
    let out = with(&["--mode", "letters"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--format house"));
    let house = json(&with(&["--format", "house", "--mode", "letters", "--json"]));
    assert_eq!(house["format"], "house (mode letters, letters auto)");
}
