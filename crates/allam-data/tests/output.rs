//! Builds into a directory that already holds something: a failed build leaves the previous one as
//! it was, a finished one replaces it whole, unrelated files are never deleted, and what a killed
//! build left behind is cleaned up (or restored) by the next one.
mod common;

use std::path::Path;
use std::sync::Mutex;

use allam_data::{BuildOptions, Mixture, NoProgress, Progress, build};
use common::*;

const RECIPE: &str = r#"
tokenizer = "tok.json"
seq_len = SEQ
seed = 7
[languages]
en = 1.0
[[sources]]
name = "en"
language = "en"
paths = ["en.jsonl"]
"#;

fn setup(dir: &Path, seq_len: usize, jsonl: &str) -> allam_data::Recipe {
    tokenizer(dir);
    write(dir, "en.jsonl", jsonl.as_bytes());
    recipe(dir, &RECIPE.replace("SEQ", &seq_len.to_string()))
}

fn good_lines() -> String {
    jsonl(&english(40, "doc"), "text")
}

/// Progress that keeps its messages.
#[derive(Default)]
struct Messages(Mutex<Vec<String>>);

impl Progress for Messages {
    fn message(&self, message: &str) {
        self.0.lock().unwrap().push(message.to_string());
    }
}

fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".out."))
        .collect()
}

#[test]
fn a_failed_build_leaves_the_previous_one_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let recipe = setup(dir.path(), 32, &good_lines());
    build(&recipe, &out, &BuildOptions::default(), &NoProgress).unwrap();
    let manifest = std::fs::read(out.join("mixture.json")).unwrap();
    let shard = std::fs::read(out.join("shards/en.bin")).unwrap();

    // The same source, now with a broken line 30: the build fails part-way through the source.
    let mut lines: Vec<String> = good_lines().lines().map(str::to_string).collect();
    lines[29] = "{not json".into();
    let broken = setup(dir.path(), 64, &(lines.join("\n") + "\n"));
    let err = build(&broken, &out, &BuildOptions::default(), &NoProgress).unwrap_err();
    assert!(err.to_string().contains("en.jsonl:30"), "{err}");
    assert_eq!(std::fs::read(out.join("mixture.json")).unwrap(), manifest);
    assert_eq!(std::fs::read(out.join("shards/en.bin")).unwrap(), shard);
    assert_eq!(Mixture::open(&out).unwrap().manifest().seq_len, 32);
    assert!(leftovers(dir.path()).is_empty(), "{:?}", leftovers(dir.path()));

    // A finished build replaces it whole.
    let longer = setup(dir.path(), 64, &good_lines());
    build(&longer, &out, &BuildOptions::default(), &NoProgress).unwrap();
    assert_eq!(Mixture::open(&out).unwrap().manifest().seq_len, 64);
    assert!(leftovers(dir.path()).is_empty(), "{:?}", leftovers(dir.path()));
}

#[test]
fn a_directory_that_is_not_a_build_is_refused_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    write(&out, "notes.txt", b"mine");
    let recipe = setup(dir.path(), 32, &good_lines());
    let err = build(&recipe, &out, &BuildOptions::default(), &NoProgress).unwrap_err();
    assert!(err.to_string().contains("no mixture.json"), "{err}");
    assert_eq!(std::fs::read(out.join("notes.txt")).unwrap(), b"mine");
    // an empty directory is fine
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    build(&recipe, &empty, &BuildOptions::default(), &NoProgress).unwrap();
    assert!(empty.join("mixture.json").exists());
}

/// What `kill -9` leaves: a staging directory of a process that is gone is removed and reported; a
/// previous build moved aside by a process killed before it put its own in place is moved back.
#[test]
fn what_a_killed_build_left_is_cleaned_up_or_restored() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let recipe = setup(dir.path(), 32, &good_lines());
    // No process has a pid above the kernel's maximum (2^22).
    let dead = 4_194_399u32;
    let stale = dir.path().join(format!(".out.building-{dead}"));
    write(&stale, "shards/en.bin", &vec![0u8; 4096]);
    let messages = Messages::default();
    build(&recipe, &out, &BuildOptions::default(), &messages).unwrap();
    assert!(!stale.exists());
    let said = messages.0.lock().unwrap().join("\n");
    assert!(said.contains(&format!("left by process {dead}")), "{said}");

    // killed between moving the old build aside and putting the new one in place
    let aside = dir.path().join(format!(".out.old-{dead}"));
    std::fs::rename(&out, &aside).unwrap();
    let messages = Messages::default();
    build(&recipe, &out, &BuildOptions::default(), &messages).unwrap();
    let said = messages.0.lock().unwrap().join("\n");
    assert!(said.contains("restored the previous build"), "{said}");
    assert!(!aside.exists() && Mixture::open(&out).is_ok());
    assert!(leftovers(dir.path()).is_empty(), "{:?}", leftovers(dir.path()));
}

/// Files written atomically get the permissions of a plain `File::create` (the umask), not the
/// owner-only mode of a private temporary file.
#[cfg(unix)]
#[test]
fn outputs_have_the_permissions_of_a_plain_create() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let recipe = setup(dir.path(), 32, &good_lines());
    build(&recipe, &out, &BuildOptions::default(), &NoProgress).unwrap();
    let probe = dir.path().join("probe");
    std::fs::File::create(&probe).unwrap();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    for file in ["mixture.json", "report.json", "tokenizer.json", "shards/en.idx"] {
        assert_eq!(mode(&out.join(file)), mode(&probe), "{file}");
    }
}
