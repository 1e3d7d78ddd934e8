//! Vowelled Arabic on byte-level bases: the pre-tokenizer rewrite that keeps Arabic combining marks with
//! their letters (`arabic_marks`), on the small Llama-3-style and GPT-2/SmolLM2-style tokenizers of
//! `fixture.rs` and texts we wrote (no `../shared`).
use allam_tokenizer::arabic_marks::{
    GPT2_PATTERN, attach_marks, has_arabic_mark, is_arabic_mark, rewrite_letter_classes,
};
use allam_tokenizer::byte_level::{is_arabic_piece, piece_bytes};
use allam_tokenizer::fixture::{
    ARABIC, ENGLISH, LLAMA3_SPLIT, byte_level_style_tokenizer, llama_style_tokenizer,
};
use allam_tokenizer::script::{has_arabic, is_arabic};
use allam_tokenizer::{
    ArabicNormalization, ByteLevelStyle, Corpus, Expansion, ExpansionConfig, MergePriority, TextPipeline,
    Tokenizer, expand,
};
use proptest::prelude::*;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::{
    OffsetReferential, OffsetType, PreTokenizedString, PreTokenizer, PreTokenizerWrapper,
    SplitDelimiterBehavior,
};

const STYLES: [ByteLevelStyle; 2] = [ByteLevelStyle::Llama3, ByteLevelStyle::Gpt2];

/// Vowelled sentences we wrote (the first four are the fixture's first lines with harakat), and two
/// common formulas in Quranic spelling (alef wasla, superscript alef, sukun as U+06E1).
const VOWELLED: &str = "ذَهَبَ الوَلَدُ إِلَى المَدْرَسَةِ فِي الصَّبَاحِ البَاكِرِ.
تَقْرَأُ البِنْتُ كِتَابًا جَدِيدًا عَنْ تَارِيخِ المَدِينَةِ.
كَانَ الجَوُّ جَمِيلًا فَخَرَجْنَا إِلَى الحَدِيقَةِ.
يَعْمَلُ أَبِي مُهَنْدِسًا فِي شَرِكَةٍ كَبِيرَةٍ لِلْبِنَاءِ.
كَتَبَ المُعَلِّمُ الدَّرْسَ عَلَى السَّبُّورَةِ فِي المَدْرَسَةِ.
شَرِبَ الطِّفْلُ الحَلِيبَ ثُمَّ نَامَ فِي البَيْتِ.
فِي المَدِينَةِ سُوقٌ كَبِيرٌ وَمَسْجِدٌ قَدِيمٌ.
سَافَرَ أَخِي إِلَى القَاهِرَةِ لِيَدْرُسَ الطِّبَّ.
نَحْنُ نُحِبُّ القِرَاءَةَ وَالكِتَابَةَ كَثِيرًا.
جَلَسَ الوَلَدُ فِي المَدْرَسَةِ يَقْرَأُ الكِتَابَ.
بِسۡمِ ٱللَّهِ ٱلرَّحۡمَٰنِ ٱلرَّحِيمِ
ٱلۡحَمۡدُ لِلَّهِ رَبِّ ٱلۡعَٰلَمِينَ";

/// Lines without Arabic in other scripts, including combining marks of other scripts (é as e + U+0301,
/// Hebrew points, Devanagari vowel signs, Thai) and neighbours of the Arabic block (Syriac and its marks,
/// Thaana, N'Ko).
const OTHER_SCRIPTS: &str = "Crème brûlée, naïve façade, Straße — «quotes», it's we'll they'd
cafe\u{301} re\u{301}sume\u{301} n\u{303}o, Z\u{335}a\u{336}l\u{337}g\u{338}o
Привет, мир! Καλημέρα κόσμε. שָׁלוֹם עוֹלָם. नमस्ते दुनिया. สวัสดีครับ
東京の天気は晴れです。北京欢迎你！서울에서 만나요.
Emoji: 🙂🚀🎉 👩‍💻 🇸🇦 — and symbols ™ © ® € £ ¥ ₹ § ¬ x² 25 °C
Syriac ܐܒܓܕ ܐܰܒ݂ܳܐ ܀; Thaana ދިވެހި; N'Ko ߒߞߏ
fn main() { let x = vec![1, 2, 3]; println!(\"{x:?}\"); }   \t trailing
\r\n  indented\r\n\n\n12345678 3.14159 0x1F 1,000,000";

fn non_arabic_lines() -> Vec<String> {
    let sources = [
        include_str!("../src/arabic_marks.rs"),
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

/// A fixture base of `style` and a corpus: the vowelled lines three times over, then the plain fixture.
fn setup(style: ByteLevelStyle) -> Setup {
    let base = byte_level_style_tokenizer(600, 8, style).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("arabic.txt");
    let text = [VOWELLED, VOWELLED, VOWELLED, ARABIC].join("\n");
    std::fs::write(&path, text).unwrap();
    Setup {
        base,
        _dir: dir,
        corpus: Corpus::new([path], "text"),
    }
}

fn config(s: &Setup, extra: u32) -> ExpansionConfig {
    let mut c = ExpansionConfig::new(s.base.get_vocab_size(true) as u32 + extra);
    c.priority = MergePriority::ArabicFirst;
    c.min_frequency = 1;
    c
}

fn run(s: &Setup, c: &ExpansionConfig) -> Expansion {
    expand(&s.base, "fixture", &s.corpus, c).unwrap()
}

fn pipeline(tok: &Tokenizer) -> TextPipeline {
    TextPipeline {
        normalizer: tok.get_normalizer().cloned(),
        pre_tokenizer: tok.get_pre_tokenizer().cloned(),
    }
}

/// The pre-tokens of `text` as text (byte symbols decoded).
fn pre_tokens(tok: &Tokenizer, text: &str) -> Vec<String> {
    pipeline(tok)
        .segments(text)
        .unwrap()
        .iter()
        .map(|s| String::from_utf8(piece_bytes(s).unwrap()).unwrap())
        .collect()
}

/// Pre-tokens with their offsets in `text`.
fn splits(pre: &PreTokenizerWrapper, text: &str) -> Vec<(String, (usize, usize))> {
    let mut p = PreTokenizedString::from(text);
    pre.pre_tokenize(&mut p).unwrap();
    p.get_splits(OffsetReferential::Original, OffsetType::Byte)
        .into_iter()
        .map(|(s, o, _)| (s.to_string(), o))
        .collect()
}

fn regex_split(pattern: &str) -> PreTokenizerWrapper {
    PreTokenizerWrapper::Split(
        Split::new(
            SplitPattern::Regex(pattern.into()),
            SplitDelimiterBehavior::Isolated,
            false,
        )
        .unwrap(),
    )
}

/// The byte-level pre-tokenizers of GPT-2/SmolLM2, Llama-3 and Qwen2 as their `tokenizer.json` files have
/// them.
fn base_pre_tokenizers() -> Vec<(&'static str, PreTokenizerWrapper)> {
    const QWEN2: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
    let split_then_bytes = |pattern: &str| {
        PreTokenizerWrapper::Sequence(Sequence::new(vec![
            regex_split(pattern),
            PreTokenizerWrapper::ByteLevel(ByteLevel::new(false, false, false)),
        ]))
    };
    vec![
        (
            "gpt2",
            PreTokenizerWrapper::ByteLevel(ByteLevel::new(false, true, true)),
        ),
        ("llama3", split_then_bytes(LLAMA3_SPLIT)),
        ("qwen2", split_then_bytes(QWEN2)),
    ]
}

#[test]
fn marks_stay_with_their_letters() {
    for style in STYLES {
        let s = setup(style);
        let e = run(&s, &config(&s, 300));
        assert!(
            e.report.pre_tokenizer.arabic_marks_attached,
            "{:?}",
            e.report.pre_tokenizer
        );
        let tok = &e.tokenizer.tokenizer;
        // Hand-computed: a word with its marks (and the space before it) is one pre-token.
        assert_eq!(
            pre_tokens(tok, "ذَهَبَ الوَلَدُ إِلَى المَدْرَسَةِ."),
            ["ذَهَبَ", " الوَلَدُ", " إِلَى", " المَدْرَسَةِ", "."]
        );
        assert_eq!(pre_tokens(tok, "بِسۡمِ ٱللَّهِ ٱلرَّحۡمَٰنِ"), ["بِسۡمِ", " ٱللَّهِ", " ٱلرَّحۡمَٰنِ"]);
        // The base splits at every mark: letter, mark, letter, ... (Llama-3 joins a mark to the next
        // letter).
        let base = pre_tokens(&s.base, "ذَهَبَ");
        assert!(base.len() >= 4, "{style:?}: {base:?}");
        // Every Arabic pre-token of the vowelled lines is a whole word (with its space), never a lone mark.
        for line in VOWELLED.lines() {
            let words: Vec<&str> = line.split(' ').map(|w| w.trim_end_matches('.')).collect();
            let arabic: Vec<String> = pre_tokens(tok, line)
                .into_iter()
                .filter(|p| has_arabic(p))
                .map(|p| p.trim_start().to_string())
                .collect();
            assert_eq!(arabic, words, "{style:?}");
        }

        // The learned pieces are letter+mark runs...
        let pieces: Vec<String> = e
            .tokenizer
            .new_ids
            .clone()
            .map(|id| tok.id_to_token(id).unwrap())
            .collect();
        assert!(pieces.iter().all(|p| is_arabic_piece(p)));
        let with_marks = pieces
            .iter()
            .filter_map(|p| String::from_utf8(piece_bytes(p).unwrap()).ok())
            .filter(|t| has_arabic_mark(t) && t.chars().any(|c| is_arabic(c) && !is_arabic_mark(c)))
            .count();
        assert!(with_marks > 150, "{style:?}: {with_marks} of {}", pieces.len());
        // ...and a learned vowelled word is one new id, where the base needs several per word.
        for word in [" المَدْرَسَةِ", " الوَلَدُ", " فِي", " ٱللَّهِ"] {
            let ids = tok.encode(word, false).unwrap().get_ids().to_vec();
            assert_eq!(
                ids.len(),
                1,
                "{style:?} {word}: {:?}",
                tok.encode(word, false).unwrap().get_tokens()
            );
            assert!(e.tokenizer.new_ids.contains(&ids[0]));
            assert!(s.base.encode(word, false).unwrap().len() >= 3, "{word}");
        }
        let f = e.report.fertility.arabic_tokens_per_word;
        assert!(f.expanded < 0.5 * f.base, "{style:?}: {f:?}");
    }
}

#[test]
fn keeping_the_base_pre_tokenizer_keeps_marks_apart() {
    for style in STYLES {
        let s = setup(style);
        let mut c = config(&s, 100);
        c.arabic_marks_pre_tokenizer = false;
        let e = run(&s, &c);
        assert!(!e.report.pre_tokenizer.arabic_marks_attached);
        assert!(
            e.report
                .pre_tokenizer
                .note
                .contains("arabic_marks_pre_tokenizer = false")
        );
        let tok = &e.tokenizer.tokenizer;
        assert_eq!(tok.get_pre_tokenizer(), s.base.get_pre_tokenizer());
        // " الوَلَدُ" is still split at its marks (GPT-2: " الو", "َ", "ل", "َ", "د", "ُ"; Llama-3: " الو",
        // "َل", "َد", "ُ"), so it takes at least that many tokens.
        let pieces = pre_tokens(tok, " الوَلَدُ");
        assert_eq!(
            pieces.len(),
            if style == ByteLevelStyle::Gpt2 { 6 } else { 4 },
            "{pieces:?}"
        );
        assert!(tok.encode(" الوَلَدُ", false).unwrap().len() >= pieces.len());
    }
}

#[test]
fn text_without_marks_keeps_the_base_ids_and_pre_tokens() {
    let lines = non_arabic_lines();
    assert!(lines.len() > 300);
    for style in STYLES {
        let s = setup(style);
        let e = run(&s, &config(&s, 300));
        let tok = &e.tokenizer.tokenizer;
        assert_ne!(tok.get_pre_tokenizer(), s.base.get_pre_tokenizer());
        for line in &lines {
            let a = s.base.encode(line.as_str(), true).unwrap();
            let b = tok.encode(line.as_str(), true).unwrap();
            assert_eq!(a.get_ids(), b.get_ids(), "{style:?}: {line}");
            assert_eq!(a.get_offsets(), b.get_offsets(), "{style:?}: {line}");
        }
        let all = lines.join("\n");
        assert_eq!(
            s.base.encode(all.as_str(), false).unwrap().get_ids(),
            tok.encode(all.as_str(), false).unwrap().get_ids()
        );
        assert_eq!(e.report.non_arabic_check.mismatches, 0);
        // The same pre-tokens as the base's (a stronger check than ids: BPE on two pre-tokens joined can
        // give the ids of the two), also for Arabic without marks (whose ids change: new pieces).
        let (base_pre, new_pre) = (
            s.base.get_pre_tokenizer().unwrap(),
            tok.get_pre_tokenizer().unwrap(),
        );
        let unvowelled = ARABIC
            .lines()
            .chain(["ذهب الولد (درسه) in English، 42 أيضا 🙂 ـــ ۞ ٣٤"]);
        for line in lines.iter().map(String::as_str).chain(unvowelled) {
            assert!(!has_arabic_mark(line));
            assert_eq!(splits(base_pre, line), splits(new_pre, line), "{line}");
        }
    }
}

#[test]
fn vowelled_text_round_trips_byte_for_byte() {
    let mixed = [
        "قَالَ: «Hello, world!» ثُمَّ كَتَبَ 42 كَلِمَةً.",
        "ـــبِسۡمِ  ٱللَّهِ\n\tٱلرَّحۡمَٰنِ ۞ ٱلرَّحِيمِ ۩",
        "َ ً ُّ a\u{64E}b 5\u{650} \u{6D6}\u{6DF}\u{8F0}\u{10EFD}",
    ];
    for style in STYLES {
        let s = setup(style);
        let e = run(&s, &config(&s, 300));
        let dir = tempfile::tempdir().unwrap();
        e.tokenizer.save(dir.path()).unwrap();
        let saved = allam_tokenizer::load_tokenizer(&dir.path().join("tokenizer.json")).unwrap();
        for tok in [&e.tokenizer.tokenizer, &saved] {
            for line in VOWELLED.lines().chain(mixed).chain([VOWELLED]) {
                let ids = tok.encode(line, false).unwrap().get_ids().to_vec();
                assert_eq!(tok.decode(&ids, false).unwrap(), line, "{style:?}");
                assert_eq!(
                    ids,
                    e.tokenizer.tokenizer.encode(line, false).unwrap().get_ids(),
                    "save and load"
                );
            }
        }
        // Normalisation, by contrast, deletes the marks: its decode is not the input.
        let mut c = config(&s, 100);
        c.normalization = ArabicNormalization::all();
        let normalised = run(&s, &c);
        let tok = &normalised.tokenizer.tokenizer;
        let line = VOWELLED.lines().next().unwrap();
        let back = tok
            .decode(tok.encode(line, false).unwrap().get_ids(), false)
            .unwrap();
        assert_ne!(back, line);
        assert!(!has_arabic_mark(&back));
    }
}

#[test]
fn the_rewrite_changes_vowelled_text_only() {
    // A control for the property below: with marks, the splits do change.
    for (name, base) in base_pre_tokenizers() {
        let rewritten = attach_marks(&base).unwrap().unwrap();
        let word = "كَتَبَ";
        assert_eq!(splits(&rewritten, word).len(), 1, "{name}");
        assert!(splits(&base, word).len() > 1, "{name}");
        let text = [ENGLISH, OTHER_SCRIPTS, ARABIC].join("\n");
        assert_eq!(splits(&base, &text), splits(&rewritten, &text), "{name}");
    }
}

/// Characters for the property test: any scalar value, or one from a list that exercises the regexes
/// (letters, digits, apostrophes, whitespace, other scripts' marks, Arabic letters and Arabic-block
/// non-marks) — never one of the Arabic marks.
fn mark_free_char() -> impl Strategy<Value = char> {
    let listed: Vec<char> = "aZé ß'sltrevmd 09\n\r\t\u{A0}\u{2009}.,!?-_(){}[]\"\\/\u{301}\u{308}\u{5B0}\u{93F}\u{E31}\
        東🙂\u{200D}\u{200C}ابتثلمنهويةءأإآٱى\u{640}\u{660}\u{663}\u{60C}\u{61F}\u{6D4}\u{6DD}\u{6DE}\u{6E5}\u{6E6}\
        \u{6E9}\u{8E2}\u{890}ܐ\u{730}\u{FDFA}\u{FEFB}\u{1EE00}"
        .chars()
        .collect();
    prop_oneof![
        3 => proptest::sample::select(listed),
        1 => any::<char>(),
    ]
    .prop_filter("not an Arabic mark", |c| !is_arabic_mark(*c))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// On strings without Arabic marks, every rewritten pre-tokenizer splits exactly as its base: the same
    /// pre-tokens at the same offsets.
    #[test]
    fn mark_free_strings_split_as_by_the_base(chars in proptest::collection::vec(mark_free_char(), 0..48)) {
        let text: String = chars.into_iter().collect();
        for (name, base) in base_pre_tokenizers() {
            let rewritten = attach_marks(&base).unwrap().unwrap();
            prop_assert_eq!(splits(&base, &text), splits(&rewritten, &text), "{}: {:?}", name, text);
        }
    }
}

#[test]
fn bases_the_rewrite_does_not_apply_to() {
    let s = setup(ByteLevelStyle::Gpt2);
    // GPT-2's ByteLevel with add_prefix_space: a clear error naming the opt-out, which works.
    let mut json: serde_json::Value = serde_json::from_str(&s.base.to_string(false).unwrap()).unwrap();
    json["pre_tokenizer"]["add_prefix_space"] = true.into();
    let prefixed: Tokenizer = json.to_string().parse().unwrap();
    let c = config(&s, 60);
    let err = expand(&prefixed, "b", &s.corpus, &c).unwrap_err().to_string();
    assert!(err.contains("add_prefix_space = true"), "{err}");
    assert!(err.contains("--keep-base-pre-tokenizer"), "{err}");
    let mut keep = c.clone();
    keep.arabic_marks_pre_tokenizer = false;
    let e = expand(&prefixed, "b", &s.corpus, &keep).unwrap();
    assert_eq!(
        e.tokenizer.tokenizer.get_pre_tokenizer(),
        prefixed.get_pre_tokenizer()
    );

    // A Split with a literal (String) pattern has no letter class: kept, and said so.
    json["pre_tokenizer"] = serde_json::json!({"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"String": " "}, "behavior": "MergedWithNext", "invert": false},
        {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false}]});
    let literal: Tokenizer = json.to_string().parse().unwrap();
    let e = expand(&literal, "b", &s.corpus, &c).unwrap();
    assert!(!e.report.pre_tokenizer.arabic_marks_attached);
    assert!(
        e.report.pre_tokenizer.note.contains("no \\p{L}"),
        "{}",
        e.report.pre_tokenizer.note
    );
    assert_eq!(
        e.tokenizer.tokenizer.get_pre_tokenizer(),
        literal.get_pre_tokenizer()
    );

    // Byte-fallback bases (Llama-2/Mistral: no pre-tokenizer) are left as they are.
    let llama = llama_style_tokenizer(600, 8).unwrap();
    let mut c = ExpansionConfig::new(llama.get_vocab_size(true) as u32 + 60);
    c.min_frequency = 1;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ar.txt");
    std::fs::write(&path, VOWELLED).unwrap();
    let e = expand(&llama, "b", &Corpus::new([path], "text"), &c).unwrap();
    assert!(!e.report.pre_tokenizer.arabic_marks_attached);
    assert!(e.report.pre_tokenizer.note.contains("byte-fallback"));
    assert!(e.tokenizer.tokenizer.get_pre_tokenizer().is_none());
}

#[test]
fn the_written_pre_tokenizer_is_split_then_byte_level() {
    // What `tokenizer.json` holds for GPT-2's ByteLevel: a Split with the rewritten GPT-2 regex (marks as
    // \x{....} escapes) and a ByteLevel without regex, trim_offsets kept.
    let s = setup(ByteLevelStyle::Gpt2);
    let e = run(&s, &config(&s, 60));
    let json: serde_json::Value =
        serde_json::from_str(&e.tokenizer.tokenizer.to_string(false).unwrap()).unwrap();
    let steps = json["pre_tokenizer"]["pretokenizers"].as_array().unwrap();
    assert_eq!(steps.len(), 2);
    assert_eq!(steps[0]["type"], "Split");
    assert_eq!(steps[0]["behavior"], "Isolated");
    let pattern = steps[0]["pattern"]["Regex"].as_str().unwrap();
    assert!(pattern.starts_with(r"'s|'t|'re|'ve|'m|'ll|'d| ?[\p{L}\x{0610}-\x{061A}\x{064B}-\x{065F}"));
    assert_eq!(
        Some(pattern.to_string()),
        rewrite_letter_classes(GPT2_PATTERN).unwrap()
    );
    assert_eq!(
        steps[1],
        serde_json::json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false})
    );
}
