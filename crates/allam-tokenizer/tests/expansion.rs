//! The expansion guarantees, on a small Llama-style tokenizer and texts we own (no `../shared`).
use std::collections::HashMap;
use std::path::PathBuf;

use allam_tokenizer::fixture::{ARABIC, ENGLISH, llama_style_tokenizer};
use allam_tokenizer::script::has_arabic;
use allam_tokenizer::{
    ArabicNormalization, Corpus, Error, Expansion, ExpansionConfig, MergePriority, Script, Tokenizer, expand,
    expand_files,
};
use tokenizers::Model;

/// English prose and code we own: the fixture sentences and this crate's own sources (no Arabic lines).
fn english_and_code() -> Vec<String> {
    let sources = [
        include_str!("../src/merge.rs"),
        include_str!("../src/corpus.rs"),
        include_str!("../src/stats.rs"),
        include_str!("../src/expand.rs"),
    ];
    ENGLISH
        .lines()
        .chain(sources.iter().flat_map(|s| s.lines()))
        .filter(|l| !has_arabic(l) && !l.trim().is_empty())
        .map(String::from)
        .collect()
}

struct Setup {
    base: Tokenizer,
    _dir: tempfile::TempDir,
    corpus: Corpus,
}

fn setup(base_arabic_lines: usize) -> Setup {
    let base = llama_style_tokenizer(600, base_arabic_lines).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("arabic.txt");
    std::fs::write(&path, ARABIC).unwrap();
    let corpus = Corpus::new([path], "text");
    Setup {
        base,
        _dir: dir,
        corpus,
    }
}

fn config(vocab_size: u32, priority: MergePriority) -> ExpansionConfig {
    let mut c = ExpansionConfig::new(vocab_size);
    c.priority = priority;
    c.min_frequency = 1;
    c
}

fn run(s: &Setup, c: &ExpansionConfig) -> Expansion {
    expand(&s.base, "fixture", &s.corpus, c).unwrap()
}

fn base_size(s: &Setup) -> u32 {
    s.base.get_vocab_size(true) as u32
}

#[test]
fn base_ids_and_added_tokens_are_kept() {
    let s = setup(8);
    for priority in [MergePriority::ArabicFirst, MergePriority::AfterBase] {
        let e = run(&s, &config(base_size(&s) + 120, priority));
        let merged = &e.tokenizer.tokenizer;
        for (piece, id) in s.base.get_vocab(true) {
            assert_eq!(merged.token_to_id(&piece), Some(id), "{piece}");
            assert_eq!(merged.id_to_token(id).as_deref(), Some(piece.as_str()));
        }
        let before: HashMap<_, _> = s.base.get_added_tokens_decoder().into_iter().collect();
        let after: HashMap<_, _> = merged.get_added_tokens_decoder().into_iter().collect();
        assert_eq!(before, after);
        assert_eq!(
            merged.encode("hello", true).unwrap().get_ids()[0],
            s.base.token_to_id("<s>").unwrap()
        );
    }
}

#[test]
fn text_without_arabic_encodes_to_the_base_ids() {
    let s = setup(8);
    let lines = english_and_code();
    assert!(lines.len() > 500);
    for priority in [MergePriority::ArabicFirst, MergePriority::AfterBase] {
        let e = run(&s, &config(base_size(&s) + 120, priority));
        for line in &lines {
            let a = s.base.encode(line.as_str(), true).unwrap();
            let b = e.tokenizer.tokenizer.encode(line.as_str(), true).unwrap();
            assert_eq!(a.get_ids(), b.get_ids(), "{priority:?}: {line}");
        }
        // The whole text at once too (one long BPE word: no pre-tokenizer).
        let all = lines.join("\n");
        let a = s.base.encode(all.as_str(), false).unwrap();
        let b = e.tokenizer.tokenizer.encode(all.as_str(), false).unwrap();
        assert_eq!(a.get_ids(), b.get_ids());
        assert_eq!(e.report.non_arabic_check.mismatches, 0);
    }
}

#[test]
fn every_new_piece_is_reachable() {
    let s = setup(8);
    for priority in [MergePriority::ArabicFirst, MergePriority::AfterBase] {
        let e = run(&s, &config(base_size(&s) + 120, priority));
        let tok = &e.tokenizer.tokenizer;
        let mut word_initial = 0;
        for id in e.tokenizer.new_ids.clone() {
            let piece = tok.id_to_token(id).unwrap();
            // The model maps the piece's surface string to that one id...
            let tokens = tok.get_model().tokenize(&piece).unwrap();
            assert_eq!(tokens.len(), 1, "{priority:?}: {piece} -> {tokens:?}");
            assert_eq!(tokens[0].id, id);
            // ...and a word-initial piece is what the whole tokenizer gives for that word.
            if let Some(word) = piece.strip_prefix('▁') {
                word_initial += 1;
                let enc = tok.encode(word, false).unwrap();
                assert_eq!(enc.get_ids(), [id], "{priority:?}: {piece}");
            }
        }
        assert!(word_initial > 20);
    }
}

#[test]
fn vocabulary_ends_at_the_requested_size_or_multiple() {
    let s = setup(8);
    let target = base_size(&s) + 101;
    let e = run(&s, &config(target, MergePriority::ArabicFirst));
    assert_eq!(e.tokenizer.tokenizer.get_vocab_size(true) as u32, target);
    assert_eq!(e.report.new_pieces, 101);
    assert_eq!(e.tokenizer.new_ids, base_size(&s)..target);

    let mut padded = config(target, MergePriority::ArabicFirst);
    padded.pad_to_multiple = Some(64);
    let e = run(&s, &padded);
    let size = e.tokenizer.tokenizer.get_vocab_size(true) as u32;
    assert_eq!(size % 64, 0);
    assert!(size >= target && size < target + 64);
    assert_eq!(e.report.padding, size - target);
    // Dense ids 0..size, reserved entries never produced by encoding.
    let ids: std::collections::BTreeSet<u32> = e.tokenizer.tokenizer.get_vocab(true).into_values().collect();
    assert_eq!(ids.len() as u32, size);
    assert_eq!(ids.last(), Some(&(size - 1)));
    let enc = e.tokenizer.tokenizer.encode(ARABIC, false).unwrap();
    assert!(
        enc.get_ids()
            .iter()
            .all(|id| !e.tokenizer.padding_ids.contains(id))
    );
}

#[test]
fn arabic_fertility_is_close_to_the_arabic_tokenizer_alone() {
    let s = setup(8);
    for priority in [MergePriority::ArabicFirst, MergePriority::AfterBase] {
        let e = run(&s, &config(base_size(&s) + 150, priority));
        let f = e.report.fertility.arabic_tokens_per_word;
        println!("{priority:?}: {f:?}");
        assert!(f.expanded < 0.7 * f.base, "{f:?}");
        if priority == MergePriority::ArabicFirst {
            assert!(f.expanded_over_arabic_only <= 1.10, "{f:?}");
        }
        let arabic = e.report.fertility.expanded.script(Script::Arabic).unwrap();
        assert_eq!(arabic.counts.byte_fallback, 0);
    }
}

#[test]
fn other_model_types_and_impossible_sizes_are_clear_errors() {
    let s = setup(0);
    let wordpiece = Tokenizer::new(tokenizers::models::wordpiece::WordPiece::default());
    let err = expand(
        &wordpiece,
        "wp",
        &s.corpus,
        &config(1000, MergePriority::ArabicFirst),
    )
    .unwrap_err();
    assert!(matches!(err, Error::UnsupportedBase { .. }), "{err}");

    let err = expand(&s.base, "b", &s.corpus, &config(100, MergePriority::ArabicFirst)).unwrap_err();
    assert!(err.to_string().contains("larger than the base"), "{err}");

    let err = expand(
        &s.base,
        "b",
        &s.corpus,
        &config(base_size(&s) + 50_000, MergePriority::ArabicFirst),
    )
    .unwrap_err();
    assert!(err.to_string().contains("reachable new pieces"), "{err}");

    // sizes that would abort the process in the trainer, or pad for ever, are refused at once
    let started = std::time::Instant::now();
    for (vocab_size, pad, what) in [
        (4_000_000_000, None, "larger than the maximum 2097152"),
        (64_000, Some(4_000_000_000), "pad_to_multiple 4000000000"),
        (2_097_100, Some(1000), "vocabulary size 2098000"),
    ] {
        let mut c = config(vocab_size, MergePriority::ArabicFirst);
        c.pad_to_multiple = pad;
        let err = expand(&s.base, "b", &s.corpus, &c).unwrap_err().to_string();
        assert!(err.contains(what), "{vocab_size} {pad:?}: {err}");
    }
    assert!(started.elapsed().as_secs() < 5, "refused before any work");
}

#[test]
fn expand_files_writes_tokenizer_config_and_report() {
    let s = setup(8);
    let dir = tempfile::tempdir().unwrap();
    let base_dir = dir.path().join("base");
    std::fs::create_dir(&base_dir).unwrap();
    let base_path: PathBuf = base_dir.join("tokenizer.json");
    std::fs::write(&base_path, s.base.to_string(true).unwrap()).unwrap();
    std::fs::write(base_dir.join("tokenizer_config.json"), "{\"bos_token\": \"<s>\"}").unwrap();
    let out = dir.path().join("out");
    let c = config(base_size(&s) + 80, MergePriority::ArabicFirst);
    expand_files(&base_path, &s.corpus, &c, &out).unwrap();

    let saved = allam_tokenizer::load_tokenizer(&out.join("tokenizer.json")).unwrap();
    assert_eq!(saved.get_vocab_size(true) as u32, base_size(&s) + 80);
    let enc = saved.encode(ARABIC, false).unwrap();
    assert!(enc.get_ids().iter().any(|id| *id >= base_size(&s)));
    assert_eq!(
        std::fs::read_to_string(out.join("tokenizer_config.json")).unwrap(),
        "{\"bos_token\": \"<s>\"}"
    );
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("expansion-report.json")).unwrap()).unwrap();
    assert_eq!(report["new_pieces"], 80);
    assert!(
        report["fertility"]["arabic_tokens_per_word"]["expanded"]
            .as_f64()
            .unwrap()
            > 0.0
    );
    assert_eq!(report["normalization"]["strip_diacritics"], false);
    // Decoding round-trips.
    let line = ARABIC.lines().next().unwrap();
    let ids = saved.encode(line, false).unwrap().get_ids().to_vec();
    assert_eq!(saved.decode(&ids, true).unwrap(), line);
    // Outputs are as readable as a plain `File::create` makes them (the umask), not owner-only.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let probe = dir.path().join("probe");
        std::fs::File::create(&probe).unwrap();
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        for file in ["tokenizer.json", "tokenizer_config.json", "expansion-report.json"] {
            assert_eq!(mode(&out.join(file)), mode(&probe), "{file}");
        }
    }
}

#[test]
fn arabic_normalisation_is_recorded_in_the_output() {
    let s = setup(0);
    let mut c = config(base_size(&s) + 60, MergePriority::ArabicFirst);
    c.normalization = ArabicNormalization::all();
    let e = run(&s, &c);
    assert!(e.report.normalization.strip_diacritics);
    let tok = &e.tokenizer.tokenizer;
    let plain = "ذهب الولد الى المدرسة";
    let marked = "ذَهَبَ الوَلَدُ إلى المَدرَســة";
    assert_eq!(
        tok.encode(plain, false).unwrap().get_ids(),
        tok.encode(marked, false).unwrap().get_ids()
    );
    let json = tok.to_string(false).unwrap();
    assert!(json.contains("\"Replace\""));
    // English is still untouched.
    for line in ENGLISH.lines() {
        assert_eq!(
            s.base.encode(line, false).unwrap().get_ids(),
            tok.encode(line, false).unwrap().get_ids()
        );
    }
}
