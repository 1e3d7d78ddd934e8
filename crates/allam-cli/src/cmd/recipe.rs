//! `allam recipe`: the whole recipe end to end from one configuration.
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

/// Arguments of `allam recipe`.
#[derive(Debug, Args)]
pub struct RecipeArgs {
    /// Recipe configuration (e.g. examples/recipes/toy.toml).
    #[arg(long)]
    config: PathBuf,
    /// Print the verdicts as JSON instead of the report.
    #[arg(long)]
    json: bool,
}

/// Runs every stage, writes the report and prints it.
pub fn recipe(args: RecipeArgs, display: allam_recipe::Display) -> Result<()> {
    let config = allam_recipe::RecipeConfig::load(&args.config)?;
    let (outcome, verdicts, report) = allam_recipe::reproduce(&config, &allam_recipe::Bars { display })
        .with_context(|| format!("running the recipe {}", args.config.display()))?;
    if args.json {
        println!(
            "{}",
            serde_json::json!({ "outcome": outcome, "verdicts": verdicts, "report": report })
        );
    } else {
        println!("{}", std::fs::read_to_string(&report)?);
    }
    Ok(())
}
