//! Growing a model to an expanded tokenizer: old logits kept bit for bit, new rows from the base
//! rows of their pieces (or the mean of all rows), padding, noise, saving, and the errors.
use std::path::{Path, PathBuf};

use allam::model::expand::{VocabExpansion, expand_pretrained, save_expanded, tokenizer_size};
use allam::model::{
    HfConfig, Llama, LlamaConfig, PretrainedModel, RowInit, SaveOptions, StorageDtype, TextTokenizer,
    TokenBatch, expand_vocab,
};
use burn::tensor::{Device, Tensor};
use serde_json::{Value, json};

const FIXTURES: [&str; 4] = [
    "tiny-gqa-untied",
    "tiny-mha-tied-bf16",
    "tiny-llama3-rope-scaling",
    "tiny-qwen2-bias",
];
/// Ids every fixture has: `<s>`, letters, punctuation, `</s>`, merged pieces.
const OLD_IDS: [u32; 8] = [1, 5, 9, 33, 2, 17, 60, 44];

/// The pieces appended to a fixture tokenizer, in id order, with the merge that makes each.
/// In the base, `▁c` splits into `▁ c`, `▁cat` into `▁ c at`, `▁cats` into `▁ c at s` and
/// `▁the▁cat` into `▁the ▁ c at`; the Arabic letters have no base piece (no byte pieces either),
/// so they split into `<unk>`, which is left out: `▁با` is `▁` alone, the others have no pieces.
const NEW_PIECES: [(&str, [&str; 2]); 8] = [
    ("▁c", ["▁", "c"]),
    ("▁cat", ["▁c", "at"]),
    ("▁cats", ["▁cat", "s"]),
    ("▁the▁cat", ["▁the", "▁cat"]),
    ("ب", ["", ""]),
    ("ا", ["", ""]),
    ("با", ["ب", "ا"]),
    ("▁با", ["▁", "با"]),
];
/// Base ids (`▁`=3, `c`=6, `s`=22, `▁the`=37, `at`=44) of the new pieces' splits (`<unk>` left
/// out), `None` for those left with no piece.
const SPLITS: [Option<&[usize]>; 8] = [
    Some(&[3, 6]),
    Some(&[3, 6, 44]),
    Some(&[3, 6, 44, 22]),
    Some(&[37, 3, 6, 44]),
    None,
    None,
    None,
    Some(&[3]),
];
/// One added special token after the pieces.
const ADDED: &str = "<|ar|>";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn load(dir: &Path) -> PretrainedModel {
    PretrainedModel::load(dir, &Device::flex()).unwrap()
}

/// Writes the fixture's tokenizer plus [`NEW_PIECES`] and [`ADDED`] to `dir/tokenizer.json`;
/// returns the path and the first new id.
fn expanded_tokenizer(name: &str, dir: &Path) -> (PathBuf, usize) {
    let text = std::fs::read_to_string(fixture(name).join("tokenizer.json")).unwrap();
    let mut t: Value = serde_json::from_str(&text).unwrap();
    let first = t["model"]["vocab"].as_object().unwrap().len();
    for (i, (piece, merge)) in NEW_PIECES.iter().enumerate() {
        t["model"]["vocab"][*piece] = json!(first + i);
        if !merge[0].is_empty() {
            t["model"]["merges"].as_array_mut().unwrap().push(json!(merge));
        }
    }
    t["added_tokens"].as_array_mut().unwrap().push(json!({
        "id": first + NEW_PIECES.len(), "content": ADDED, "single_word": false, "lstrip": false,
        "rstrip": false, "normalized": false, "special": true
    }));
    let path = dir.join("tokenizer.json");
    std::fs::write(&path, serde_json::to_string(&t).unwrap()).unwrap();
    (path, first)
}

fn new_tokenizer(name: &str, dir: &Path) -> (TextTokenizer, usize) {
    let (path, first) = expanded_tokenizer(name, dir);
    (TextTokenizer::from_file(&path).unwrap(), first)
}

fn expand(name: &str, vocab_size: usize, init: RowInit, seed: u64) -> (Llama, Llama, usize) {
    let dir = tempfile::tempdir().unwrap();
    let base = load(&fixture(name));
    let (new, first) = new_tokenizer(name, dir.path());
    let plan = VocabExpansion {
        vocab_size,
        init,
        seed,
    };
    let old = base.model.clone();
    let (grown, _) = expand_vocab(base.model, base.tokenizer.as_ref().unwrap(), &new, &plan).unwrap();
    (old, grown, first)
}

fn host<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_into_vec().unwrap()
}

fn logits(model: &Llama, ids: &[u32]) -> (Vec<f32>, usize) {
    let out = model.forward(&TokenBatch::single(ids)).unwrap();
    let vocab = out.dims()[2];
    (host(out), vocab)
}

/// The embedding's rows and, when untied, the head's rows (as `[vocab, hidden]`), flattened.
fn matrices(model: &Llama) -> Vec<Vec<f32>> {
    let mut out = vec![host(model.embed_tokens.weight.val())];
    if let Some(head) = &model.lm_head {
        out.push(host(head.weight.val().transpose()));
    }
    out
}

fn hidden(model: &Llama) -> usize {
    model.config.hidden_size
}

fn row(matrix: &[f32], hidden: usize, r: usize) -> &[f32] {
    &matrix[r * hidden..(r + 1) * hidden]
}

fn mean_rows(matrix: &[f32], hidden: usize, rows: impl Iterator<Item = usize>) -> Vec<f32> {
    let rows: Vec<usize> = rows.collect();
    (0..hidden)
        .map(|c| {
            let s: f64 = rows.iter().map(|&r| f64::from(matrix[r * hidden + c])).sum();
            (s / rows.len() as f64) as f32
        })
        .collect()
}

fn assert_close(a: &[f32], b: &[f32], tol: f32, what: &str) {
    let d = a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max);
    assert!(d <= tol, "{what}: max difference {d}");
}

fn std_of(values: &[f32]) -> f64 {
    let n = values.len() as f64;
    let m = values.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
    (values.iter().map(|&v| (f64::from(v) - m).powi(2)).sum::<f64>() / n).sqrt()
}

#[test]
fn old_logits_are_exactly_the_old_logits_for_every_init() {
    for name in FIXTURES {
        for init in [
            RowInit::Mean,
            RowInit::NoisyMean { std_fraction: 0.1 },
            RowInit::Random,
        ] {
            let old_vocab = load(&fixture(name)).model.config.vocab_size;
            let (old, grown, _) = expand(name, old_vocab + 16, init, 3);
            assert_eq!(grown.config.vocab_size, old_vocab + 16);
            let (before, v0) = logits(&old, &OLD_IDS);
            let (after, v1) = logits(&grown, &OLD_IDS);
            assert_eq!((v0, v1), (old_vocab, old_vocab + 16));
            for pos in 0..OLD_IDS.len() {
                let b = &before[pos * v0..(pos + 1) * v0];
                let a = &after[pos * v1..pos * v1 + v0];
                let same = a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits());
                assert!(same, "{name} {init:?}: position {pos} changed");
            }
            // the new ids are valid inputs now
            logits(&grown, &[1, old_vocab as u32 + 2, old_vocab as u32 + 15]);
        }
    }
}

#[test]
fn mean_rows_are_the_mean_of_the_base_pieces_rows() {
    for name in FIXTURES {
        let old_vocab = load(&fixture(name)).model.config.vocab_size;
        let (old, grown, first) = expand(name, old_vocab + NEW_PIECES.len() + 1, RowInit::Mean, 0);
        assert_eq!(
            first, old_vocab,
            "{name}: the fixture tokenizer fills the vocabulary"
        );
        let h = hidden(&old);
        let kinds = if old.lm_head.is_some() { 2 } else { 1 };
        let (old_m, new_m) = (matrices(&old), matrices(&grown));
        assert_eq!(new_m.len(), kinds);
        for (o, n) in old_m.iter().zip(&new_m) {
            assert_eq!(&n[..o.len()], &o[..], "{name}: old rows are untouched");
            // no usable base pieces (Arabic → <unk>) and the added token: mean of all rows
            let all = mean_rows(o, h, 0..old_vocab);
            for (i, split) in SPLITS.iter().enumerate() {
                let expected = match split {
                    Some(split) => mean_rows(o, h, split.iter().copied()),
                    None => all.clone(),
                };
                assert_close(row(n, h, first + i), &expected, 1e-7, NEW_PIECES[i].0);
            }
            assert_close(row(n, h, first + NEW_PIECES.len()), &all, 1e-7, ADDED);
            let not_all = mean_rows(o, h, [3, 6].into_iter());
            assert!(not_all.iter().zip(&all).any(|(a, b)| (a - b).abs() > 1e-4));
        }
    }
}

#[test]
fn padding_rows_are_the_mean_of_all_rows() {
    let name = "tiny-gqa-untied";
    let tokens = 96 + NEW_PIECES.len() + 1;
    let size = VocabExpansion::default_size(96, tokens, Some(16));
    assert_eq!(size, 112);
    for init in [
        RowInit::Mean,
        RowInit::NoisyMean { std_fraction: 0.1 },
        RowInit::Random,
    ] {
        let (old, grown, _) = expand(name, size, init, 1);
        let h = hidden(&old);
        for (o, n) in matrices(&old).iter().zip(&matrices(&grown)) {
            assert_eq!(n.len(), size * h);
            let all = mean_rows(o, h, 0..96);
            for r in tokens..size {
                assert_close(row(n, h, r), &all, 1e-7, "padding row");
            }
        }
    }
}

#[test]
fn noisy_mean_is_near_the_mean_and_random_has_the_old_spread() {
    let name = "tiny-gqa-untied";
    let size = 96 + NEW_PIECES.len() + 1;
    let (old, mean, _) = expand(name, size, RowInit::Mean, 5);
    let (_, noisy, _) = expand(name, size, RowInit::NoisyMean { std_fraction: 0.1 }, 5);
    let (_, noisy_again, _) = expand(name, size, RowInit::NoisyMean { std_fraction: 0.1 }, 5);
    let (_, noisy_other, _) = expand(name, size, RowInit::NoisyMean { std_fraction: 0.1 }, 6);
    let (_, random, _) = expand(name, size, RowInit::Random, 5);
    let h = hidden(&old);
    let old_m = matrices(&old);
    let (mean_m, noisy_m, random_m) = (matrices(&mean), matrices(&noisy), matrices(&random));
    assert_eq!(noisy_m, matrices(&noisy_again), "same seed, same rows");
    assert_ne!(noisy_m, matrices(&noisy_other), "another seed, other noise");
    for k in 0..old_m.len() {
        let sigma = std_of(&old_m[k]);
        let new = 96 * h..size * h;
        let diff: Vec<f32> = noisy_m[k][new.clone()]
            .iter()
            .zip(&mean_m[k][new.clone()])
            .map(|(a, b)| a - b)
            .collect();
        let noise = std_of(&diff);
        assert!(
            noise > 0.07 * sigma && noise < 0.13 * sigma,
            "noise {noise} vs σ {sigma}"
        );
        let spread = std_of(&random_m[k][new]);
        assert!(
            spread > 0.85 * sigma && spread < 1.15 * sigma,
            "random {spread} vs σ {sigma}"
        );
        assert_eq!(&random_m[k][..96 * h], &old_m[k][..]);
    }
}

#[test]
fn expanded_model_saves_with_its_tokenizer_and_loads_back() {
    for name in FIXTURES {
        let tok_dir = tempfile::tempdir().unwrap();
        let (tokenizer_path, _) = expanded_tokenizer(name, tok_dir.path());
        let base = load(&fixture(name));
        let old_vocab = base.model.config.vocab_size;
        let new = TextTokenizer::from_file(&tokenizer_path).unwrap();
        assert_eq!(tokenizer_size(new.inner()), old_vocab + NEW_PIECES.len() + 1);
        let size = VocabExpansion::default_size(old_vocab, tokenizer_size(new.inner()), Some(8));
        let plan = VocabExpansion {
            vocab_size: size,
            init: RowInit::NoisyMean { std_fraction: 0.1 },
            seed: 0,
        };
        // stored as the source is (bf16 for the tied fixture), so the rope tables stay the same
        let dtype = base
            .hf_config
            .storage_dtype()
            .unwrap()
            .unwrap_or(StorageDtype::F32);
        let original = base.model.clone();
        let (grown, summary) = expand_pretrained(base, new, &plan).unwrap();
        assert_eq!(
            (summary.from_pieces, summary.fallback, summary.padding),
            (5, 4, size - old_vocab - 9)
        );
        let out = tempfile::tempdir().unwrap();
        let options = SaveOptions {
            dtype,
            ..SaveOptions::default()
        };
        save_expanded(&grown, out.path(), &options).unwrap();

        let config = HfConfig::from_file(out.path().join("config.json")).unwrap();
        assert_eq!(config.to_llama_config().unwrap().vocab_size, size);
        assert_eq!(
            std::fs::read(out.path().join("tokenizer.json")).unwrap(),
            std::fs::read(&tokenizer_path).unwrap(),
            "the new tokenizer is written, not the base one"
        );
        // no tokenizer_config.json beside the new tokenizer: the model's is kept
        assert!(out.path().join("tokenizer_config.json").exists());

        let back = load(out.path());
        assert_eq!(back.model.config.vocab_size, size);
        assert_eq!(back.tokenizer().unwrap().vocab_size(), old_vocab + 9);
        // the reloaded model gives the base model's logits over the old vocabulary, bit for bit
        let (before, _) = logits(&original, &OLD_IDS);
        let (after, _) = logits(&back.model, &OLD_IDS);
        for pos in 0..OLD_IDS.len() {
            let b = &before[pos * old_vocab..(pos + 1) * old_vocab];
            let a = &after[pos * size..pos * size + old_vocab];
            assert!(
                a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits()),
                "{name} {pos}"
            );
        }
        // new rows survive the trip (to the storage dtype's precision)
        let h = hidden(&original);
        for (m_back, m_grown) in matrices(&back.model).iter().zip(&matrices(&grown.model)) {
            let tol = if dtype == StorageDtype::F32 { 0.0 } else { 1e-2 };
            assert_close(&m_back[old_vocab * h..], &m_grown[old_vocab * h..], tol, name);
        }
        // the new tokenizer really uses the new pieces
        let enc = back.tokenizer().unwrap().encode("the cats", false).unwrap();
        assert_eq!(enc, vec![37, old_vocab as u32 + 2], "{name}");
    }
}

#[test]
fn impossible_expansions_are_clear_errors() {
    let name = "tiny-gqa-untied";
    let dir = tempfile::tempdir().unwrap();
    let (new, _) = new_tokenizer(name, dir.path());
    let plan = |vocab_size| VocabExpansion {
        vocab_size,
        init: RowInit::Mean,
        seed: 0,
    };
    let err = |vocab_size, new: &TextTokenizer| {
        let base = load(&fixture(name));
        expand_vocab(
            base.model,
            base.tokenizer.as_ref().unwrap(),
            new,
            &plan(vocab_size),
        )
        .unwrap_err()
        .to_string()
    };

    let e = err(90, &new);
    assert!(
        e.contains("shrink") && e.contains("96") && e.contains("90"),
        "{e}"
    );

    let e = err(100, &new);
    assert!(
        e.contains("tokenizer.json") && e.contains("105") && e.contains("100"),
        "{e}"
    );

    // absurd sizes are refused before any row is allocated
    let started = std::time::Instant::now();
    let e = err(4_000_000_000, &new);
    assert!(e.contains("at most 65536 padding rows"), "{e}");
    assert!(started.elapsed().as_secs() < 5);

    // a tokenizer that renumbers base pieces does not extend the base
    let mut t: Value = serde_json::from_str(&std::fs::read_to_string(new.path()).unwrap()).unwrap();
    t["model"]["vocab"]["▁sat"] = json!(79);
    t["model"]["vocab"]["▁rea"] = json!(78);
    let other = dir.path().join("other.json");
    std::fs::write(&other, serde_json::to_string(&t).unwrap()).unwrap();
    let e = err(112, &TextTokenizer::from_file(&other).unwrap());
    assert!(
        e.contains("id 78") && e.contains("▁sat") && e.contains("other.json"),
        "{e}"
    );

    // without a base tokenizer nothing can be split
    let mut bare = load(&fixture(name));
    bare.tokenizer = None;
    let e = expand_pretrained(bare, new, &plan(112)).unwrap_err().to_string();
    assert!(e.contains("tokenizer.json") && e.contains("base"), "{e}");

    assert!("avg".parse::<RowInit>().is_err());
}

/// A byte-level base (a Llama-3-style tokenizer: byte symbols, `Ġ` word marks, `ignore_merges`)
/// expanded with Arabic by `allam::tokenizer`, then the model grown with `mean` rows: each new row
/// is the mean of the base rows of the ids the base tokenizer gives the new piece's own text.
#[test]
fn a_byte_level_base_grows_with_the_mean_of_its_byte_pieces() {
    use allam::tokenizer::fixture::{ARABIC, ByteLevelStyle, byte_level_style_tokenizer};
    use allam::tokenizer::{Corpus, ExpansionConfig, byte_level};
    let dir = tempfile::tempdir().unwrap();
    let base_tokenizer = byte_level_style_tokenizer(300, 2, ByteLevelStyle::Llama3).unwrap();
    let base_path = dir.path().join("base.json");
    base_tokenizer.save(&base_path, false).unwrap();
    std::fs::write(dir.path().join("ar.txt"), ARABIC).unwrap();
    let old_vocab = tokenizer_size(&base_tokenizer);
    let config = ExpansionConfig::new((old_vocab + 40) as u32);
    let corpus = Corpus::new([dir.path().join("ar.txt")], "text");
    let expansion = allam::tokenizer::expand(&base_tokenizer, "base", &corpus, &config).unwrap();
    let new_path = dir.path().join("new.json");
    expansion.tokenizer.tokenizer.save(&new_path, false).unwrap();
    let (base, new) = (
        TextTokenizer::from_file(&base_path).unwrap(),
        TextTokenizer::from_file(&new_path).unwrap(),
    );
    let model: Llama = LlamaConfig::new(old_vocab, 16, 24, 1, 4, 2, 4)
        .with_tie_word_embeddings(true)
        .init(&Device::flex());
    let plan = VocabExpansion {
        vocab_size: old_vocab + 40,
        init: RowInit::Mean,
        seed: 0,
    };
    let (grown, _) = expand_vocab(model.clone(), &base, &new, &plan).unwrap();
    let h = hidden(&model);
    let (old_m, new_m) = (&matrices(&model)[0], &matrices(&grown)[0]);
    assert_eq!(&new_m[..old_m.len()], &old_m[..], "old rows are untouched");
    let mut averaged = 0;
    for id in old_vocab..old_vocab + 40 {
        let piece = new.inner().id_to_token(id as u32).unwrap();
        // Pieces holding part of a character have no text of their own.
        let Ok(text) = String::from_utf8(byte_level::piece_bytes(&piece).unwrap()) else {
            continue;
        };
        let ids = base.encode(&text, false).unwrap();
        let expected = mean_rows(old_m, h, ids.iter().map(|&i| i as usize));
        assert_close(row(new_m, h, id), &expected, 1e-6, &piece);
        averaged += usize::from(ids.len() > 1);
    }
    assert!(
        averaged > 20,
        "most new rows average several byte pieces ({averaged})"
    );
}
