//! The expansion guarantees for byte-level bases, on small Llama-3-style (`Split` + `ByteLevel`,
//! `ignore_merges`) and GPT-2/SmolLM2-style (`ByteLevel` with its own regex) tokenizers trained on texts we
//! own (no `../shared`).
use std::collections::{BTreeSet, HashMap};

use allam_tokenizer::byte_level::{byte_symbol, piece_bytes};
use allam_tokenizer::fixture::{ARABIC, ENGLISH, byte_level_style_tokenizer};
use allam_tokenizer::script::has_arabic;
use allam_tokenizer::{
    ArabicNormalization, BpeFamily, ByteLevelStyle, Corpus, Expansion, ExpansionConfig, MergePriority,
    Script, TextPipeline, Tokenizer, expand,
};
use tokenizers::models::bpe::BPE;
use tokenizers::{Model, ModelWrapper};

const STYLES: [ByteLevelStyle; 2] = [ByteLevelStyle::Llama3, ByteLevelStyle::Gpt2];
const PRIORITIES: [MergePriority; 2] = [MergePriority::ArabicFirst, MergePriority::AfterBase];

/// Lines without Arabic in other scripts we wrote: Latin with diacritics, Cyrillic, Greek, Hebrew,
/// Devanagari, CJK, Hangul, emoji, symbols, and scripts whose UTF-8 lead bytes neighbour Arabic's (Syriac
/// U+0700–074F and Thaana share 0xDC–0xDE with Arabic Supplement; § and ¬ end in 0xA7 and 0xAC like ا
/// and ج).
const OTHER_SCRIPTS: &str = "Crème brûlée, naïve façade, Ærøskøbing, Straße — «quotes» and ‘single’ ones
§ 12 ¶ 3, 25 °C, ½ ± ¼, ¬p ∧ q → r, x² + y² = z²
Привет, мир! Καλημέρα κόσμε. שלום עולם. नमस्ते दुनिया
東京の天気は晴れです。北京欢迎你！서울에서 만나요.
Emoji: 🙂🚀🎉 👩‍💻 🇸🇦 — and symbols ™ © ® € £ ¥ ₹
Syriac ܐܒܓܕ ܀ ݂݀݁ marks; Thaana ދިވެހި; N'Ko ߒߞߏ
fn main() { let x = vec![1, 2, 3]; println!(\"{x:?}\"); }   \t trailing";

/// English prose, code (this crate's sources) and other scripts: every line without Arabic.
fn non_arabic_lines() -> Vec<String> {
    let sources = [
        include_str!("../src/byte_level.rs"),
        include_str!("../src/merge.rs"),
        include_str!("../src/stats.rs"),
    ];
    ENGLISH
        .lines()
        .chain(OTHER_SCRIPTS.lines())
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

fn setup(style: ByteLevelStyle, base_arabic_lines: usize, corpus_text: &str) -> Setup {
    let base = byte_level_style_tokenizer(600, base_arabic_lines, style).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("arabic.txt");
    std::fs::write(&path, corpus_text).unwrap();
    Setup {
        base,
        _dir: dir,
        corpus: Corpus::new([path], "text"),
    }
}

fn config(vocab_size: u32, priority: MergePriority) -> ExpansionConfig {
    let mut c = ExpansionConfig::new(vocab_size);
    c.priority = priority;
    c.min_frequency = 1;
    c
}

fn base_size(s: &Setup) -> u32 {
    s.base.get_vocab_size(true) as u32
}

fn run(s: &Setup, extra: u32, priority: MergePriority) -> Expansion {
    expand(
        &s.base,
        "fixture",
        &s.corpus,
        &config(base_size(s) + extra, priority),
    )
    .unwrap()
}

/// The expanded model with `ignore_merges` off: what its merges alone produce.
fn merges_only(tok: &Tokenizer) -> BPE {
    let ModelWrapper::BPE(bpe) = tok.get_model() else {
        panic!("a BPE model")
    };
    let mut bpe = bpe.clone();
    bpe.ignore_merges = false;
    bpe
}

#[test]
fn base_ids_and_added_tokens_are_kept() {
    for style in STYLES {
        let s = setup(style, 8, ARABIC);
        for priority in PRIORITIES {
            let e = run(&s, 150, priority);
            assert_eq!(e.report.base_family, BpeFamily::ByteLevel);
            assert_eq!(e.report.base_ignores_merges, style == ByteLevelStyle::Llama3);
            let merged = &e.tokenizer.tokenizer;
            for (piece, id) in s.base.get_vocab(true) {
                assert_eq!(merged.token_to_id(&piece), Some(id), "{style:?}: {piece}");
                assert_eq!(merged.id_to_token(id).as_deref(), Some(piece.as_str()));
            }
            let before: HashMap<_, _> = s.base.get_added_tokens_decoder().into_iter().collect();
            let after: HashMap<_, _> = merged.get_added_tokens_decoder().into_iter().collect();
            assert_eq!(before, after);
            // Llama-3 keeps its specials after the vocabulary: the new ids start after them.
            assert_eq!(e.tokenizer.new_ids.start, base_size(&s));
            let special = if style == ByteLevelStyle::Llama3 {
                "<|begin_of_text|>"
            } else {
                "<|im_start|>"
            };
            let text = format!("{special}hello");
            let ids = merged.encode(text.as_str(), true).unwrap().get_ids().to_vec();
            assert_eq!(ids, s.base.encode(text.as_str(), true).unwrap().get_ids());
            assert!(ids.contains(&s.base.token_to_id(special).unwrap()));
        }
    }
}

#[test]
fn text_without_arabic_encodes_to_the_base_ids() {
    let lines = non_arabic_lines();
    assert!(lines.len() > 500);
    for style in STYLES {
        let s = setup(style, 8, ARABIC);
        for priority in PRIORITIES {
            let e = run(&s, 150, priority);
            let tok = &e.tokenizer.tokenizer;
            for line in &lines {
                let a = s.base.encode(line.as_str(), true).unwrap();
                let b = tok.encode(line.as_str(), true).unwrap();
                assert_eq!(a.get_ids(), b.get_ids(), "{style:?} {priority:?}: {line}");
            }
            let all = lines.join("\n");
            let a = s.base.encode(all.as_str(), false).unwrap();
            let b = tok.encode(all.as_str(), false).unwrap();
            assert_eq!(a.get_ids(), b.get_ids());
            assert_eq!(e.report.non_arabic_check.mismatches, 0);
        }
    }
}

#[test]
fn every_new_piece_is_reachable() {
    for style in STYLES {
        let s = setup(style, 8, ARABIC);
        for priority in PRIORITIES {
            let e = run(&s, 150, priority);
            let tok = &e.tokenizer.tokenizer;
            let merges = merges_only(tok);
            let pipeline = TextPipeline {
                normalizer: tok.get_normalizer().cloned(),
                pre_tokenizer: tok.get_pre_tokenizer().cloned(),
            };
            let (mut whole_pre_tokens, mut partial) = (0, 0);
            for id in e.tokenizer.new_ids.clone() {
                let piece = tok.id_to_token(id).unwrap();
                // The merges alone turn the piece's byte symbols into that one id...
                let tokens = merges.tokenize(&piece).unwrap();
                assert_eq!(tokens.len(), 1, "{style:?} {priority:?}: {piece} -> {tokens:?}");
                assert_eq!(tokens[0].id, id);
                // ...and a piece that is a whole pre-token of its own text is what the tokenizer gives.
                let bytes = piece_bytes(&piece).unwrap();
                let Ok(text) = String::from_utf8(bytes) else {
                    partial += 1;
                    continue;
                };
                if pipeline.segments(&text).unwrap() == [piece.clone()] {
                    whole_pre_tokens += 1;
                    assert_eq!(
                        tok.encode(text.as_str(), false).unwrap().get_ids(),
                        [id],
                        "{text}"
                    );
                }
            }
            println!(
                "{style:?} {priority:?}: {whole_pre_tokens} whole pre-tokens, {partial} partial-UTF-8 pieces"
            );
            assert!(whole_pre_tokens > 60, "{whole_pre_tokens}");
        }
    }
}

#[test]
fn vocabulary_ends_at_the_requested_size_or_multiple() {
    for style in STYLES {
        let s = setup(style, 8, ARABIC);
        let target = base_size(&s) + 101;
        let e = expand(
            &s.base,
            "b",
            &s.corpus,
            &config(target, MergePriority::ArabicFirst),
        )
        .unwrap();
        assert_eq!(e.tokenizer.tokenizer.get_vocab_size(true) as u32, target);
        assert_eq!(e.report.new_pieces, 101);
        assert_eq!(e.tokenizer.new_ids, base_size(&s)..target);

        let mut padded = config(target, MergePriority::ArabicFirst);
        padded.pad_to_multiple = Some(64);
        let e = expand(&s.base, "b", &s.corpus, &padded).unwrap();
        let size = e.tokenizer.tokenizer.get_vocab_size(true) as u32;
        assert_eq!(size, target.div_ceil(64) * 64);
        assert_eq!(e.report.padding, size - target);
        let ids: BTreeSet<u32> = e.tokenizer.tokenizer.get_vocab(true).into_values().collect();
        assert_eq!(ids.len() as u32, size);
        assert_eq!(ids.last(), Some(&(size - 1)));
        let enc = e.tokenizer.tokenizer.encode(ARABIC, false).unwrap();
        assert!(
            enc.get_ids()
                .iter()
                .all(|id| !e.tokenizer.padding_ids.contains(id))
        );
    }
}

#[test]
fn arabic_fertility_drops_and_decoding_round_trips() {
    for style in STYLES {
        let s = setup(style, 8, ARABIC);
        for priority in PRIORITIES {
            let e = run(&s, 300, priority);
            let f = e.report.fertility.arabic_tokens_per_word;
            println!("{style:?} {priority:?}: {f:?}");
            assert!(f.base > 2.5, "{f:?}");
            assert!(f.expanded < 0.5 * f.base, "{f:?}");
            if priority == MergePriority::ArabicFirst {
                assert!(f.expanded_over_arabic_only <= 1.10, "{f:?}");
            }
            // The base splits Arabic letters into bytes; the expanded tokenizer hardly does.
            let rate = |stats: &allam_tokenizer::TokenizerStats| {
                stats.script(Script::Arabic).unwrap().byte_fallback_rate
            };
            assert!(
                rate(&e.report.fertility.base) > 0.2,
                "{}",
                rate(&e.report.fertility.base)
            );
            assert!(rate(&e.report.fertility.expanded) < 0.05);
            let tok = &e.tokenizer.tokenizer;
            for line in ARABIC.lines().chain(["كتب الولد (درسه) in English، 42 أيضا 🙂"]) {
                let ids = tok.encode(line, false).unwrap().get_ids().to_vec();
                assert_eq!(tok.decode(&ids, false).unwrap(), line);
            }
        }
    }
}

/// Diacritised text we wrote (the first fixture lines with harakat).
const DIACRITISED: &str = "ذَهَبَ الوَلَدُ إِلَى المَدْرَسَةِ فِي الصَّبَاحِ البَاكِرِ.
تَقْرَأُ البِنْتُ كِتَابًا جَدِيدًا عَنْ تَارِيخِ المَدِينَةِ.
كَانَ الجَوُّ جَمِيلًا فَخَرَجْنَا إِلَى الحَدِيقَةِ.
يَعْمَلُ أَبِي مُهَنْدِسًا فِي شَرِكَةٍ كَبِيرَةٍ لِلْبِنَاءِ.";

#[test]
fn pieces_are_units_of_the_base_pre_tokenizer() {
    // With the base's pre-tokenizer kept, both regexes split diacritised words at the marks (\p{M} is not
    // \p{L}); every new piece must lie inside one pre-token of the training text, or no text could
    // produce it. (The default rewrite keeps marks with their letters: `tests/arabic_marks.rs`.)
    for style in STYLES {
        let s = setup(style, 0, DIACRITISED);
        let mut c = config(base_size(&s) + 60, MergePriority::ArabicFirst);
        c.arabic_marks_pre_tokenizer = false;
        let e = expand(&s.base, "fixture", &s.corpus, &c).unwrap();
        let tok = &e.tokenizer.tokenizer;
        let pipeline = TextPipeline {
            normalizer: None,
            pre_tokenizer: s.base.get_pre_tokenizer().cloned(),
        };
        let pre_tokens: Vec<Vec<u8>> = DIACRITISED
            .lines()
            .flat_map(|l| pipeline.segments(l).unwrap())
            .map(|p| piece_bytes(&p).unwrap())
            .collect();
        // "ذَهَبَ" is six pre-tokens under both regexes: letter, mark, letter, ...
        assert!(
            pre_tokens.len() > 4 * DIACRITISED.split_whitespace().count(),
            "{}",
            pre_tokens.len()
        );
        for id in e.tokenizer.new_ids.clone() {
            let piece = piece_bytes(&tok.id_to_token(id).unwrap()).unwrap();
            assert!(
                pre_tokens
                    .iter()
                    .any(|p| p.windows(piece.len()).any(|w| w == piece)),
                "{style:?}: {:?}",
                String::from_utf8_lossy(&piece)
            );
        }
    }
}

#[test]
fn arabic_normalisation_works_for_byte_level_bases() {
    for style in STYLES {
        let s = setup(style, 0, ARABIC);
        let mut c = config(base_size(&s) + 150, MergePriority::ArabicFirst);
        c.normalization = ArabicNormalization::all();
        let e = expand(&s.base, "b", &s.corpus, &c).unwrap();
        let tok = &e.tokenizer.tokenizer;
        let text = "ذهب الولد الى المدرسة";
        let plain = tok.encode(text, false).unwrap();
        let marked = tok.encode("ذَهَبَ الوَلَدُ إلى المَدرَســة", false).unwrap();
        assert_eq!(plain.get_ids(), marked.get_ids());
        let before = s.base.encode(text, false).unwrap().len();
        assert!(2 * plain.len() <= before, "{before} -> {:?}", plain.get_tokens());
        for line in non_arabic_lines() {
            assert_eq!(
                s.base.encode(line.as_str(), false).unwrap().get_ids(),
                tok.encode(line.as_str(), false).unwrap().get_ids()
            );
        }
    }
}

#[test]
fn missing_arabic_byte_symbols_are_added_and_others_stay_missing() {
    // SmolLM2's vocabulary lacks 21 of the 256 byte symbols, and the base BPE drops such bytes. Here the
    // base lacks the symbols of 0xD9 (lead byte of U+0640–U+067F, Arabic) and 0x04 (a control byte).
    let s = setup(ByteLevelStyle::Gpt2, 0, ARABIC);
    let mut json: serde_json::Value = serde_json::from_str(&s.base.to_string(false).unwrap()).unwrap();
    let vocab = json["model"]["vocab"].as_object_mut().unwrap();
    let (d9, ctrl) = (byte_symbol(0xD9).to_string(), byte_symbol(0x04).to_string());
    let mut freed: Vec<u64> = [&d9, &ctrl]
        .iter()
        .map(|k| vocab.remove(*k).unwrap().as_u64().unwrap())
        .collect();
    // Keep the ids dense: move the two highest pieces into the freed ids.
    freed.sort();
    let mut top: Vec<(String, u64)> = vocab
        .iter()
        .map(|(k, v)| (k.clone(), v.as_u64().unwrap()))
        .collect();
    top.sort_by_key(|(_, id)| std::cmp::Reverse(*id));
    for ((piece, _), id) in top.into_iter().zip(freed.into_iter().rev()) {
        vocab.insert(piece, id.into());
    }
    let base: Tokenizer = json.to_string().parse().unwrap();
    let e = expand(
        &base,
        "b",
        &s.corpus,
        &config(base.get_vocab_size(true) as u32 + 100, MergePriority::ArabicFirst),
    )
    .unwrap();
    let tok = &e.tokenizer.tokenizer;
    let new = e.tokenizer.new_ids.clone();
    assert!(new.contains(&tok.token_to_id(&d9).unwrap()));
    assert_eq!(tok.token_to_id(&ctrl), None);
    for line in non_arabic_lines().iter().map(String::as_str).chain(["a\u{4}b"]) {
        assert_eq!(
            base.encode(line, false).unwrap().get_ids(),
            tok.encode(line, false).unwrap().get_ids(),
            "{line}"
        );
    }
    // Arabic now keeps every byte: decoding gives the text back.
    let line = ARABIC.lines().next().unwrap();
    let ids = tok.encode(line, false).unwrap().get_ids().to_vec();
    assert_eq!(tok.decode(&ids, false).unwrap(), line);
    let lost = base.encode(line, false).unwrap().get_ids().to_vec();
    assert_ne!(base.decode(&lost, false).unwrap(), line);
}
