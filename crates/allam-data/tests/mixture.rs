//! The mixture end to end: formula, 1 % windows, determinism, resume, re-weighting, packing,
//! upsampling and the cleaning counts in the report.
mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use allam_data::PassOrder;
use allam_data::{
    BlendState, BuildOptions, IGNORE_INDEX, Mixture, NoProgress, PackedSequence, Report, build,
};
use common::*;

const RECIPE: &str = r#"
tokenizer = "tok.json"
seq_len = 64
seed = 1234
[languages]
en = 0.55
ar = 0.225
ar_translated = 0.225
[[sources]]
name = "en-web"
language = "en"
domain = "web"
paths = ["en/web-*.txt"]
[[sources]]
name = "en-books"
language = "en"
domain = "books"
multiplier = 3.0
paths = ["en/books.jsonl.gz"]
[[sources]]
name = "ar-news"
language = "ar"
domain = "news"
paths = ["ar/news.txt"]
[[sources]]
name = "ar-books"
language = "ar"
domain = "books"
multiplier = 3.0
paths = ["ar/books.txt.zst"]
[[sources]]
name = "ar-mt"
language = "ar_translated"
paths = ["mt/pairs.jsonl"]
[sources.parallel]
"#;

fn setup(d: &Path) {
    tokenizer(d);
    let en = english(900, "web");
    write(d, "en/web-1.txt", lines(&en[..500]).as_bytes());
    write(d, "en/web-2.txt", lines(&en[500..]).as_bytes());
    write(
        d,
        "en/books.jsonl.gz",
        &gz(jsonl(&english(120, "book"), "text").as_bytes()),
    );
    let ar = arabic(700);
    write(d, "ar/news.txt", lines(&ar[..550]).as_bytes());
    write(d, "ar/books.txt.zst", &zst(lines(&ar[550..]).as_bytes()));
    write(d, "mt/pairs.jsonl", pairs_jsonl(150).as_bytes());
    write(d, "recipe.toml", RECIPE.as_bytes());
}

fn built(d: &Path, sequences: u64) -> (Mixture, Report) {
    setup(d);
    let r = allam_data::Recipe::load(&d.join("recipe.toml")).unwrap();
    let out = d.join("out");
    let opts = BuildOptions {
        sequences: Some(sequences),
        batch_bytes: 4096, // many small batches exercise the streaming path
        dedup_memory_hashes: 64,
    };
    let report = build(&r, &out, &opts, &NoProgress).unwrap();
    (Mixture::open(&out).unwrap(), report)
}

#[test]
fn weights_follow_the_paper_formula_and_languages_hit_their_targets() {
    let dir = tempfile::tempdir().unwrap();
    let (m, report) = built(dir.path(), 2000);
    let s = &report.sources;
    let tm = |n: &str| s[n].tokens as f64 * s[n].multiplier;
    let en = tm("en-web") + tm("en-books");
    let ar = tm("ar-news") + tm("ar-books");
    let want = [
        ("en-web", 0.55 * tm("en-web") / en),
        ("en-books", 0.55 * tm("en-books") / en),
        ("ar-news", 0.225 * tm("ar-news") / ar),
        ("ar-books", 0.225 * tm("ar-books") / ar),
        ("ar-mt", 0.225),
    ];
    for (name, w) in want {
        assert!((s[name].weight - w).abs() < 1e-12, "{name}");
        assert!((m.weights()[name] - w).abs() < 1e-12);
        assert!((s[name].realised_fraction - w).abs() < 0.01, "{name}");
    }
    for (lang, target) in [("en", 0.55), ("ar", 0.225), ("ar_translated", 0.225)] {
        assert!((report.languages[lang] - target).abs() < 0.01, "{lang}");
    }
    // 2000 × 64 tokens; sources are small, so the Arabic ones are read more than once.
    assert_eq!(report.sequences, 2000);
    let sampled: u64 = s.values().map(|x| x.sampled_tokens).sum();
    assert_eq!(sampled, 2000 * 64);
    // `en-books` (small, ×3) is read almost twice; the report says so.
    assert!(s["en-books"].passes > 1.5, "{}", s["en-books"].passes);
    assert!(report.upsampled.contains(&"en-books".to_string()));
    for (name, x) in s {
        assert_eq!(x.passes > 1.0, report.upsampled.contains(name));
        assert!((x.passes - x.sampled_tokens as f64 / x.tokens as f64).abs() < 1e-12);
    }
    // The report on disk says the same, with the contract's keys.
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("out/report.json")).unwrap()).unwrap();
    let src = &json["sources"]["en-books"];
    for key in ["documents", "tokens", "dropped", "sampled_tokens", "passes"] {
        assert!(!src[key].is_null(), "{key}");
    }
    assert!(json["languages"]["ar"].as_f64().is_some());
}

/// Share of each source's tokens in `rows`.
fn shares(rows: &[PackedSequence]) -> HashMap<String, f64> {
    let mut c: HashMap<String, f64> = HashMap::new();
    let total = (rows.len() * rows[0].input_ids.len()) as f64;
    for r in rows {
        *c.entry(r.source.clone()).or_default() += (r.input_ids.len() - r.padding()) as f64;
    }
    c.values_mut().for_each(|v| *v /= total);
    c
}

#[test]
fn every_window_of_1000_sequences_is_within_one_percent() {
    let dir = tempfile::tempdir().unwrap();
    let (m, _) = built(dir.path(), 10);
    let rows: Vec<PackedSequence> = m.stream().take(4000).collect();
    let w = m.weights();
    for start in (0..=3000).step_by(50) {
        let s = shares(&rows[start..start + 1000]);
        for (name, target) in &w {
            let got = s.get(name).copied().unwrap_or(0.0);
            assert!(
                (got - target).abs() < 0.01,
                "window {start} {name}: {got} vs {target}"
            );
        }
    }
}

#[test]
fn builds_and_streams_are_deterministic() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let (ma, ra) = built(a.path(), 300);
    let (mb, rb) = built(b.path(), 300);
    for s in &ma.manifest().sources {
        for ext in ["bin", "idx"] {
            let f = format!("out/shards/{}.{ext}", s.name);
            assert_eq!(
                std::fs::read(a.path().join(&f)).unwrap(),
                std::fs::read(b.path().join(&f)).unwrap(),
                "{f}"
            );
        }
    }
    assert_eq!(ra.sources, rb.sources);
    let xa: Vec<_> = ma.stream().take(300).collect();
    let xb: Vec<_> = mb.stream().take(300).collect();
    assert_eq!(xa, xb);
}

#[test]
fn resuming_from_a_saved_state_reproduces_the_stream() {
    let dir = tempfile::tempdir().unwrap();
    let (m, _) = built(dir.path(), 10);
    let straight: Vec<_> = m.stream().take(700).collect();
    let mut s = m.stream();
    let first: Vec<_> = (&mut s).take(250).collect();
    assert_eq!(first, straight[..250]);
    let path = dir.path().join("ckpt/blend.json");
    s.state().save(&path).unwrap();
    let json = std::fs::read_to_string(&path).unwrap();
    assert!(json.len() < 4096, "state must stay small: {} bytes", json.len());
    drop(s);
    let mut resumed = m.resume(BlendState::load(&path).unwrap()).unwrap();
    let rest: Vec<_> = (&mut resumed).take(450).collect();
    assert_eq!(rest, straight[250..]);
    // A state from another seed is refused.
    let mut other = BlendState::load(&path).unwrap();
    other.seed += 1;
    assert!(m.resume(other).is_err());
}

/// Per source, the documents started (offset 0) in stream order.
fn starts(rows: &[PackedSequence], into: &mut BTreeMap<String, Vec<u64>>) {
    for r in rows {
        for span in &r.documents {
            if span.offset == 0 {
                into.entry(span.source.clone()).or_default().push(span.document);
            }
        }
    }
}

#[test]
fn reweighting_on_resume_follows_new_weights_without_repeating_documents() {
    let dir = tempfile::tempdir().unwrap();
    let (m, _) = built(dir.path(), 10);
    let mut s = m.stream();
    let before: Vec<_> = (&mut s).take(400).collect();
    let state = s.state().clone();
    let langs: BTreeMap<String, f64> = [
        ("en".to_string(), 0.2),
        ("ar".to_string(), 0.7),
        ("ar_translated".to_string(), 0.1),
    ]
    .into();
    let new = m.weights_for(&langs, None).unwrap();
    let mut resumed = m.resume(state).unwrap();
    resumed.reweight(new.clone()).unwrap();
    let after: Vec<_> = (&mut resumed).take(2000).collect();
    // The same re-weighting done in a continuous run gives the same stream.
    let mut cont = m.stream();
    let _: Vec<_> = (&mut cont).take(400).collect();
    cont.reweight(new.clone()).unwrap();
    let cont_after: Vec<_> = cont.take(2000).collect();
    assert_eq!(after, cont_after);
    // New proportions in every 1000-window after the change.
    for start in (0..=1000).step_by(100) {
        let sh = shares(&after[start..start + 1000]);
        for (name, target) in &new {
            let got = sh.get(name).copied().unwrap_or(0.0);
            assert!((got - target).abs() < 0.01, "{name}: {got} vs {target}");
        }
    }
    // Across the change, each source's documents come exactly in pass order: nothing consumed
    // is repeated and nothing is skipped until the pass ends.
    let mut started = BTreeMap::new();
    starts(&before, &mut started);
    starts(&after, &mut started);
    for (i, src) in m.manifest().sources.iter().enumerate() {
        let n = m.shard(i).len() as u64;
        let got = &started[&src.name];
        let want: Vec<u64> = (0..)
            .flat_map(|pass| {
                let order = PassOrder::new(1234, &src.name, pass, n);
                (0..n).map(move |p| order.document(p))
            })
            .take(got.len())
            .collect();
        assert_eq!(got, &want, "{}", src.name);
    }
}

#[test]
fn packed_rows_keep_documents_apart() {
    let dir = tempfile::tempdir().unwrap();
    let (m, _) = built(dir.path(), 10);
    let eos = m.manifest().eos_id;
    let mut s = m.stream();
    let batch = s.next_batch(4);
    assert_eq!(batch.input_ids.len(), 4 * 64);
    for r in s.take(500) {
        assert_eq!(r.input_ids.len(), 64);
        let mut covered = 0;
        for (k, span) in r.documents.iter().enumerate() {
            let (a, b) = (span.start as usize, (span.start + span.len) as usize);
            assert_eq!(a, covered);
            covered = b;
            assert_eq!(span.source, r.source);
            for i in a..b {
                assert_eq!(r.document_ids[i], k as u32);
                assert_eq!(r.position_ids[i] as usize, i - a);
            }
            for i in a..b - 1 {
                assert_eq!(r.labels[i], r.input_ids[i + 1] as i32);
            }
            if span.continues {
                assert_eq!(b, 64);
                assert_ne!(r.labels[b - 1], IGNORE_INDEX);
            } else {
                assert_eq!(r.input_ids[b - 1], eos, "documents end with EOS");
                assert_eq!(r.labels[b - 1], IGNORE_INDEX, "EOS predicts nothing");
                if b < 64 {
                    assert!(!r.may_attend(b, b - 1));
                }
            }
        }
        assert_eq!(covered, 64, "split mode leaves no padding");
    }
}

#[test]
fn report_counts_each_filter() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    tokenizer(d);
    let mut docs = varied_english(40);
    docs.push(String::new()); // empty
    docs.push("hi".into()); // too short
    docs.push("مرحبا بكم في هذا النص العربي الطويل نسبيا".into()); // script
    docs.push(format!("spam {}", "!".repeat(60))); // char run
    docs.push("buy cheap pills now ".repeat(8)); // repeated n-grams
    docs.push(docs[3].to_uppercase()); // exact duplicate after normalisation
    docs.push(format!("{} today", docs[4])); // near duplicate
    write(d, "en.txt", lines(&docs).as_bytes());
    write(d, "ar.txt", lines(&arabic(5)).as_bytes());
    let text = r#"
tokenizer = "tok.json"
seq_len = 16
seed = 3
[languages]
en = 0.5
ar = 0.5
[clean]
min_chars = 5
near_duplicate_threshold = 0.7
[[sources]]
name = "en"
language = "en"
paths = ["en.txt"]
[sources.clean]
script = "latin"
[[sources]]
name = "ar"
language = "ar"
paths = ["ar.txt"]
"#;
    let r = recipe(d, text);
    let report = build(&r, &d.join("out"), &BuildOptions::default(), &NoProgress).unwrap();
    let en = &report.sources["en"];
    let want: BTreeMap<String, u64> = [
        ("empty", 1),
        ("too_short", 1),
        ("script", 1),
        ("repetition", 2),
        ("exact_duplicate", 1),
        ("near_duplicate", 1),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), *v))
    .collect();
    assert_eq!(en.dropped, want);
    assert_eq!(en.documents, 40);
    assert_eq!(en.documents_read, 47);
}

#[test]
fn dedup_spilled_to_disk_drops_the_same_documents() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    tokenizer(d);
    // 300 documents, then the first 120 again (changed only in case and punctuation) and 60 with
    // a word added, so most duplicates are found in runs on disk when memory holds 4 entries.
    let mut docs = varied_english(300);
    let again: Vec<String> = docs[..120]
        .iter()
        .map(|t| format!("{}!", t.to_uppercase()))
        .collect();
    let near: Vec<String> = docs[120..180].iter().map(|t| format!("{t} today")).collect();
    docs.extend(again);
    docs.extend(near);
    write(d, "en.txt", lines(&docs).as_bytes());
    let r = recipe(
        d,
        "tokenizer = \"tok.json\"\nseq_len = 16\nseed = 3\n[languages]\nen = 1.0\n\
         [clean]\nnear_duplicate_threshold = 0.7\n\
         [[sources]]\nname = \"en\"\nlanguage = \"en\"\npaths = [\"en.txt\"]\n",
    );
    let mut reports = Vec::new();
    for (out, memory) in [("in-memory", 1 << 20), ("spilled", 4)] {
        let options = BuildOptions {
            batch_bytes: 2048,
            dedup_memory_hashes: memory,
            ..BuildOptions::default()
        };
        let report = build(&r, &d.join(out), &options, &NoProgress).unwrap();
        let en = &report.sources["en"];
        assert_eq!(en.dropped["exact_duplicate"], 120, "{out}");
        assert!(en.dropped["near_duplicate"] >= 55, "{out}: {:?}", en.dropped);
        assert_eq!(en.documents + en.dropped["near_duplicate"], 360, "{out}");
        // The temporaries are gone: the shard folder holds the shard and nothing else.
        let mut left: Vec<String> = std::fs::read_dir(d.join(out).join("shards"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["en.bin", "en.idx"], "{out}");
        reports.push(report.sources);
    }
    assert_eq!(reports[0], reports[1]);
    for ext in ["bin", "idx"] {
        let shard = |out: &str| std::fs::read(d.join(out).join("shards").join(format!("en.{ext}"))).unwrap();
        assert_eq!(shard("in-memory"), shard("spilled"), "{ext}");
    }
}

#[test]
fn documents_that_do_not_fit_start_a_new_row_without_splitting() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    setup(d);
    let text = RECIPE
        .replace("seed = 1234", "seed = 1234\nsplit_documents = false")
        .replace("seq_len = 64", "seq_len = 512");
    let r = recipe(d, &text);
    let report = build(&r, &d.join("out"), &BuildOptions::default(), &NoProgress).unwrap();
    assert!(report.padding_tokens > 0);
    let m = Mixture::open(&d.join("out")).unwrap();
    for r in m.stream().take(300) {
        for span in &r.documents {
            assert_eq!(span.offset, 0);
            assert!(!span.continues);
        }
    }
}
