//! Every input format, parallel sources, and the errors a user can cause.
mod common;

use allam_data::{BuildOptions, DataError, Mixture, NoProgress, Recipe, build};
use common::*;

fn header(tok: &str) -> String {
    format!("tokenizer = \"{tok}\"\nseq_len = 32\nseed = 7\n[languages]\nen = 0.5\nar = 0.5\n")
}

fn shard_docs(dir: &std::path::Path, name: &str) -> Vec<Vec<u32>> {
    let m = Mixture::open(dir).unwrap();
    let i = m.manifest().sources.iter().position(|s| s.name == name).unwrap();
    let s = m.shard(i);
    (0..s.len()).map(|d| s.document(d)).collect()
}

#[test]
fn txt_jsonl_parquet_plain_gzip_zstd_give_identical_shards() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    tokenizer(d);
    let en = english(30, "fmt");
    let ar = arabic(30);
    write(d, "in/a.txt", lines(&en).as_bytes());
    write(d, "in/b.txt.gz", &gz(lines(&en).as_bytes()));
    write(d, "in/c.txt.zst", &zst(lines(&en).as_bytes()));
    write(d, "in/d.jsonl", jsonl(&en, "body").as_bytes());
    write(d, "in/e.jsonl.gz", &gz(jsonl(&en, "body").as_bytes()));
    write(d, "in/f.jsonl.zst", &zst(jsonl(&ar, "text").as_bytes()));
    parquet(&d.join("in/g.parquet"), &en);
    let mut text = header("tok.json");
    for (name, path, field) in [
        ("txt", "in/a.txt", "text"),
        ("txt-gz", "in/b.txt.gz", "text"),
        ("txt-zst", "in/c.txt.zst", "text"),
        ("jsonl", "in/d.jsonl", "body"),
        ("jsonl-gz", "in/e.jsonl.gz", "body"),
        ("parquet", "in/g.parquet", "text"),
    ] {
        text += &format!(
            "[[sources]]\nname = \"{name}\"\nlanguage = \"en\"\npaths = [\"{path}\"]\ntext_field = \"{field}\"\n"
        );
    }
    text += "[[sources]]\nname = \"ar\"\nlanguage = \"ar\"\npaths = [\"in/*.zst\"]\n";
    // `in/*.zst` also matches c.txt.zst: globs may mix formats.
    let r = recipe(d, &text);
    let out = d.join("out");
    let report = build(&r, &out, &BuildOptions::default(), &NoProgress).unwrap();
    let want: Vec<Vec<u32>> = en
        .iter()
        .map(|t| {
            let mut v: Vec<u32> = t.bytes().map(byte_id).collect();
            v.push(0);
            v
        })
        .collect();
    for name in ["txt", "txt-gz", "txt-zst", "jsonl", "jsonl-gz", "parquet"] {
        assert_eq!(shard_docs(&out, name), want, "{name}");
        assert_eq!(report.sources[name].documents, 30);
    }
    assert_eq!(report.sources["ar"].documents, 60);
    assert_eq!(report.sources["ar"].files, 2);
}

/// The byte tokenizer's id for a byte.
fn byte_id(b: u8) -> u32 {
    let tok = allam_data::testing::byte_tokenizer();
    let s = String::from_utf8(vec![b]).unwrap();
    tok.encode_fast(s.as_str(), false).unwrap().get_ids()[0]
}

#[test]
fn parallel_sources_pair_both_directions_and_work_monolingually() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    tokenizer(d);
    write(d, "pairs.jsonl", pairs_jsonl(40).as_bytes());
    let mut text = header("tok.json");
    text += r#"
[[sources]]
name = "pairs"
language = "ar"
paths = ["pairs.jsonl"]
[sources.parallel]
labels = ["English", "Arabic"]
template = "{src_label}: {src} => {tgt_label}: {tgt}"
[[sources]]
name = "en-side"
language = "en"
paths = ["pairs.jsonl"]
[sources.parallel]
mode = "first"
[[sources]]
name = "ar-side"
language = "en"
paths = ["pairs.jsonl"]
[sources.parallel]
mode = "second"
"#;
    let r = recipe(d, &text);
    let out = d.join("out");
    build(&r, &out, &BuildOptions::default(), &NoProgress).unwrap();
    let tok = allam_data::testing::byte_tokenizer();
    let decode = |docs: Vec<Vec<u32>>| -> Vec<String> {
        docs.iter()
            .map(|ids| tok.decode(&ids[..ids.len() - 1], false).unwrap())
            .collect()
    };
    let pairs = decode(shard_docs(&out, "pairs"));
    let en = english(40, "pair");
    let ar = arabic(40);
    let (mut forward, mut backward) = (0, 0);
    for (i, p) in pairs.iter().enumerate() {
        if *p == format!("English: {} => Arabic: {}", en[i], ar[i]) {
            forward += 1;
        } else if *p == format!("Arabic: {} => English: {}", ar[i], en[i]) {
            backward += 1;
        } else {
            panic!("unexpected pair document {p}");
        }
    }
    assert!(forward > 5 && backward > 5, "{forward} / {backward}");
    assert_eq!(decode(shard_docs(&out, "en-side")), en);
    assert_eq!(decode(shard_docs(&out, "ar-side")), ar);

    // The directions are drawn from the seeded RNG: a rebuild gives the same documents.
    let out2 = d.join("out2");
    build(&r, &out2, &BuildOptions::default(), &NoProgress).unwrap();
    assert_eq!(shard_docs(&out2, "pairs"), shard_docs(&out, "pairs"));
}

fn one_source(d: &std::path::Path, path: &str, extra: &str) -> Recipe {
    tokenizer(d);
    let text = header("tok.json")
        + &format!(
            "[[sources]]\nname = \"s\"\nlanguage = \"en\"\npaths = [\"{path}\"]\n{extra}\n\
             [[sources]]\nname = \"t\"\nlanguage = \"ar\"\npaths = [\"ok.txt\"]\n"
        );
    write(d, "ok.txt", lines(&arabic(5)).as_bytes());
    recipe(d, &text)
}

fn build_err(r: &Recipe, d: &std::path::Path) -> String {
    build(r, &d.join("out"), &BuildOptions::default(), &NoProgress)
        .unwrap_err()
        .to_string()
}

#[test]
fn broken_json_line_names_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(
        d,
        "x.jsonl",
        b"{\"text\": \"fine\"}\n\n{\"text\": \"also fine\"}\n{\"text\": \"broken\n",
    );
    let e = build_err(&one_source(d, "x.jsonl", ""), d);
    assert!(e.contains("x.jsonl:4") && e.contains("invalid JSON"), "{e}");

    write(d, "y.jsonl", b"{\"text\": 3}\n");
    let e = build_err(&one_source(d, "y.jsonl", ""), d);
    assert!(
        e.contains("y.jsonl:1") && e.contains("must be a string, found a number"),
        "{e}"
    );

    write(d, "z.jsonl", b"{\"body\": \"x\"}\n");
    let e = build_err(&one_source(d, "z.jsonl", ""), d);
    assert!(
        e.contains("z.jsonl:1") && e.contains("missing string field `text`"),
        "{e}"
    );

    write(d, "w.jsonl", b"[1, 2]\n");
    let e = build_err(&one_source(d, "w.jsonl", ""), d);
    assert!(e.contains("expected a JSON object"), "{e}");
}

#[test]
fn invalid_utf8_names_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(d, "bad.txt.gz", &gz(b"good line\nbad \xff\xfe line\n"));
    let r = one_source(d, "bad.txt.gz", "");
    let err = build(&r, &d.join("out"), &BuildOptions::default(), &NoProgress).unwrap_err();
    assert!(matches!(err, DataError::InvalidUtf8 { line: 2, .. }), "{err:?}");
    let e = err.to_string();
    assert!(e.contains("bad.txt.gz:2") && e.contains("invalid UTF-8"), "{e}");
}

/// Compression is read from the first bytes, as the tokenizer's corpus reader does: a plain or
/// zstd file behind a `.txt` name is decoded; a `.gz` name over bytes that are not gzip is an
/// error naming the file, not garbage tokens.
#[test]
fn compression_is_told_by_content() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let text = lines(&english(6, "content"));
    write(d, "plain.txt", text.as_bytes());
    write(d, "hidden-zstd.txt", &zst(text.as_bytes()));
    let shards = |name: &str| {
        let r = one_source(d, name, "");
        let out = d.join(format!("out-{name}"));
        build(&r, &out, &BuildOptions::default(), &NoProgress).unwrap();
        shard_docs(&out, "s")
    };
    let plain = shards("plain.txt");
    assert_eq!(plain.len(), 6);
    assert_eq!(shards("hidden-zstd.txt"), plain);
    write(d, "not-gzip.txt.gz", text.as_bytes());
    let e = build_err(&one_source(d, "not-gzip.txt.gz", ""), d);
    assert!(e.contains("not-gzip.txt.gz") && e.contains("Gzip"), "{e}");
}

#[test]
fn missing_files_and_unknown_formats() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let e = build_err(&one_source(d, "nothing/*.jsonl", ""), d);
    assert!(e.contains("source `s`") && e.contains("nothing/*.jsonl"), "{e}");
    let e = build_err(&one_source(d, "absent.txt", ""), d);
    assert!(e.contains("absent.txt"), "{e}");
    write(d, "table.csv", b"a,b\n");
    let e = build_err(&one_source(d, "table.csv", ""), d);
    assert!(
        e.contains("table.csv") && e.contains("unknown input format"),
        "{e}"
    );
    write(d, "p.parquet", b"not parquet at all");
    let e = build_err(&one_source(d, "p.parquet", ""), d);
    assert!(e.contains("p.parquet") && e.contains("parquet"), "{e}");
    parquet(&d.join("q.parquet"), &english(3, "q"));
    let e = build_err(&one_source(d, "q.parquet", "text_field = \"body\""), d);
    assert!(e.contains("q.parquet") && e.contains("no column `body`"), "{e}");
    // Nothing is left looking complete after a failed build.
    assert!(!d.join("out/mixture.json").exists());
}

#[test]
fn languages_that_do_not_sum_to_one_name_the_recipe() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let text = "tokenizer = \"tok.json\"\nseq_len = 8\nseed = 1\n[languages]\nen = 0.55\nar = 0.225\nar_translated = 0.2\n\
                [[sources]]\nname = \"a\"\nlanguage = \"en\"\npaths = [\"a.txt\"]\n";
    let path = write(d, "mix.toml", text.as_bytes());
    let e = Recipe::load(&path).unwrap_err().to_string();
    assert!(e.contains("mix.toml") && e.contains("sums to 0.975"), "{e}");
}

#[test]
fn a_source_left_empty_after_filtering_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(d, "en.txt", lines(&english(10, "e")).as_bytes());
    let r = one_source(d, "en.txt", "[sources.clean]\nscript = \"arabic\"");
    let err = build(&r, &d.join("out"), &BuildOptions::default(), &NoProgress).unwrap_err();
    let e = err.to_string();
    assert!(
        e.contains("source `s` is empty after filtering") && e.contains("script=10"),
        "{e}"
    );
    assert!(!d.join("out/shards/s.idx").exists());
}
