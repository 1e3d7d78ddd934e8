//! The repository's example recipe (`examples/recipes/data-tiny.toml` over `data/sample/`) builds,
//! and its stream decodes back to the sample sentences.
use std::path::Path;

use allam_data::{BuildOptions, Mixture, NoProgress, Recipe, build, inspect};

#[test]
fn tiny_example_recipe_builds_and_decodes() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let recipe = Recipe::load(&root.join("examples/recipes/data-tiny.toml")).unwrap();
    let out = tempfile::tempdir().unwrap();
    let report = build(&recipe, out.path(), &BuildOptions::default(), &NoProgress).unwrap();
    assert_eq!(report.sources["en-sentences"].documents, 32);
    assert_eq!(report.sources["ar-sentences"].documents, 32);
    assert_eq!(report.sources["en-ar-pairs"].documents, 32);
    let m = Mixture::open(out.path()).unwrap();
    let samples = inspect(&m, 5).unwrap();
    let en = std::fs::read_to_string(root.join("data/sample/en.txt")).unwrap();
    for (seq, spans) in samples {
        assert_eq!(seq.input_ids.len(), 128);
        for span in spans {
            if span.source == "en-sentences" && span.offset == 0 && !span.continues {
                let line = span.text.trim_end_matches("</s>");
                assert!(en.lines().any(|l| l == line), "{line:?}");
            }
        }
    }
}
