//! `allam data ...`: build the weighted, packed training stream and inspect it.
use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;

use allam_data::{BuildOptions, Mixture, Recipe};

/// Data-mixture commands.
#[derive(Debug, Subcommand)]
pub enum DataCommand {
    /// Read, clean, deduplicate and tokenise every source of a recipe into memory-mapped shards,
    /// and write `mixture.json` (what the training stream needs) and `report.json`.
    ///
    /// Tokenisation runs on all cores; set RAYON_NUM_THREADS to limit it.
    Build {
        /// The TOML recipe.
        #[arg(long)]
        recipe: PathBuf,
        /// Output directory (created if missing).
        #[arg(long)]
        out: PathBuf,
        /// Sequences of the planned stream the report describes (default: enough for every
        /// kept token once).
        #[arg(long)]
        sequences: Option<u64>,
    },
    /// Decode the first sequences of a built mixture with their source labels.
    Inspect {
        /// A directory written by `allam data build`.
        dir: PathBuf,
        /// How many sequences to show.
        #[arg(long, default_value_t = 3)]
        n: usize,
    },
}

/// Runs one `allam data` command.
pub fn run(command: DataCommand, display: allam_cli::display::Display) -> anyhow::Result<()> {
    match command {
        DataCommand::Build {
            recipe,
            out,
            sequences,
        } => build(recipe, out, sequences, display),
        DataCommand::Inspect { dir, n } => inspect(dir, n),
    }
}

fn build(
    recipe_path: PathBuf,
    out: PathBuf,
    sequences: Option<u64>,
    display: allam_cli::display::Display,
) -> anyhow::Result<()> {
    let recipe =
        Recipe::load(&recipe_path).with_context(|| format!("loading recipe {}", recipe_path.display()))?;
    let options = BuildOptions {
        sequences,
        ..BuildOptions::default()
    };
    let progress = allam_cli::display::BytesBar::new("data build", display);
    let report = allam_data::build(&recipe, &out, &options, &progress);
    progress.finish();
    let report =
        report.with_context(|| format!("building {} into {}", recipe_path.display(), out.display()))?;

    println!(
        "{:<20} {:>10} {:>12} {:>9} {:>9} {:>7}  dropped",
        "source", "documents", "tokens", "target", "realised", "passes"
    );
    for (name, s) in &report.sources {
        let dropped: Vec<String> = s
            .dropped
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(k, n)| format!("{k}={n}"))
            .collect();
        println!(
            "{:<20} {:>10} {:>12} {:>9.4} {:>9.4} {:>7.2}  {}",
            name,
            s.documents,
            s.tokens,
            s.weight,
            s.realised_fraction,
            s.passes,
            dropped.join(" ")
        );
    }
    for (lang, f) in &report.languages {
        println!(
            "language {lang:<14} target {:.4}  realised {f:.4}",
            report.language_targets.get(lang).copied().unwrap_or(0.0)
        );
    }
    if !report.upsampled.is_empty() {
        println!("upsampled (more than one pass): {}", report.upsampled.join(", "));
    }
    println!(
        "{} sequences of {} tokens planned; wrote {}",
        report.sequences,
        report.seq_len,
        out.join("report.json").display()
    );
    Ok(())
}

fn inspect(dir: PathBuf, n: usize) -> anyhow::Result<()> {
    let mixture = Mixture::open(&dir).with_context(|| format!("opening mixture {}", dir.display()))?;
    let samples = allam_data::inspect(&mixture, n)
        .with_context(|| format!("decoding sequences of {}", dir.display()))?;
    for (i, (seq, spans)) in samples.iter().enumerate() {
        println!(
            "=== sequence {i} · source {} · {} tokens · {} documents · {} padding",
            seq.source,
            seq.input_ids.len(),
            spans.len(),
            seq.padding()
        );
        for span in spans {
            println!(
                "--- [{}] document {} · tokens {}..{}{}",
                span.source,
                span.document,
                span.offset,
                span.offset + span.tokens,
                if span.continues { " · continues" } else { "" }
            );
            println!("{}", span.text);
        }
    }
    Ok(())
}
