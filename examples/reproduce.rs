//! The whole ALLaM recipe end to end at toy scale, on CPU, from one command:
//!
//! ```sh
//! cargo run --release --example reproduce                       # examples/recipes/toy.toml
//! cargo run --release --example reproduce -- path/to/recipe.toml
//! ```
//! Base pretraining from scratch → Arabic tokenizer expansion → embeddings-only warm-up and
//! continued pretraining on the paper's mixture (and an English-only control) → SFT → DPO, with an
//! evaluation after every stage; writes `runs/reproduce/report.md`.
fn main() {
    allam::train::heap::keep_freed_memory();
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| concat!(env!("CARGO_MANIFEST_DIR"), "/examples/recipes/toy.toml").into());
    let result = allam::recipe::RecipeConfig::load(path.as_ref())
        .and_then(|config| allam::recipe::reproduce(&config, &allam_cli::display::Bars::detect()));
    match result {
        Ok((_, verdicts, report)) => {
            println!("{}", std::fs::read_to_string(&report).unwrap_or_default());
            eprintln!("verdicts: {verdicts:?}\nreport: {}", report.display());
        }
        Err(error) => {
            eprintln!("error: {error}");
            std::process::exit(1);
        }
    }
}
