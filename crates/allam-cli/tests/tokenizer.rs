//! `allam tokenizer expand` on a byte-level base: Arabic marks kept with their letters by default,
//! `--keep-base-pre-tokenizer` to keep the base's pre-tokenizer.
mod common;
use common::{allam, stderr};

use allam_tokenizer::ByteLevelStyle;
use allam_tokenizer::fixture::byte_level_style_tokenizer;

#[test]
fn expand_keeps_arabic_marks_with_their_letters_unless_told_not_to() {
    let dir = tempfile::tempdir().unwrap();
    let base = byte_level_style_tokenizer(300, 5, ByteLevelStyle::Gpt2).unwrap();
    let base_path = dir.path().join("tokenizer.json");
    std::fs::write(&base_path, base.to_string(false).unwrap()).unwrap();
    let corpus = dir.path().join("ar.txt");
    let vowelled = "ذَهَبَ الوَلَدُ إِلَى المَدْرَسَةِ فِي الصَّبَاحِ البَاكِرِ.\n\
                    جَلَسَ الوَلَدُ فِي المَدْرَسَةِ يَقْرَأُ الكِتَابَ.\n";
    std::fs::write(&corpus, vowelled.repeat(3)).unwrap();
    let size = (base.get_vocab_size(true) + 20).to_string();

    for keep in [false, true] {
        let out = dir.path().join(format!("out-{keep}"));
        let mut args = vec![
            "tokenizer",
            "expand",
            "--base",
            base_path.to_str().unwrap(),
            "--corpus",
            corpus.to_str().unwrap(),
            "--vocab-size",
            &size,
            "--min-frequency",
            "1",
            "--out",
            out.to_str().unwrap(),
        ];
        if keep {
            args.push("--keep-base-pre-tokenizer");
        }
        let run = allam(&args);
        assert!(run.status.success(), "{}", stderr(&run));
        let stdout = String::from_utf8_lossy(&run.stdout);
        let read = |name: &str| -> serde_json::Value {
            serde_json::from_str(&std::fs::read_to_string(out.join(name)).unwrap()).unwrap()
        };
        let (tokenizer, report) = (read("tokenizer.json"), read("expansion-report.json"));
        assert_eq!(report["pre_tokenizer"]["arabic_marks_attached"], !keep);
        if keep {
            assert!(
                stdout.contains("pre-tokenizer: base pre-tokenizer kept"),
                "{stdout}"
            );
            assert_eq!(tokenizer["pre_tokenizer"]["type"], "ByteLevel");
        } else {
            assert!(stdout.contains("pre-tokenizer: letter classes"), "{stdout}");
            let steps = tokenizer["pre_tokenizer"]["pretokenizers"].as_array().unwrap();
            assert_eq!(steps[0]["type"], "Split");
            assert!(
                steps[0]["pattern"]["Regex"]
                    .as_str()
                    .unwrap()
                    .contains(r"\x{064B}-\x{065F}")
            );
            assert_eq!(steps[1]["use_regex"], false);
        }
    }
}
