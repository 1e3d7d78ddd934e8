//! `allam pretrain` and `allam plot`: the training loop from the shell.
use std::path::PathBuf;

use allam_recipe::{Display, StepBar};
use allam_train::{RunConfig, RunOptions, Start};
use anyhow::{Context, Result};
use clap::Args;

/// Arguments of `allam pretrain`, `allam sft` and `allam dpo`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Run configuration (TOML): model, data, optimizer, schedule, batch or epochs, checkpoints.
    #[arg(long)]
    pub config: PathBuf,
    /// Run directory: metrics.jsonl, checkpoints/, final/, loss.svg.
    #[arg(long)]
    pub out: PathBuf,
    /// Stop after this many steps (the schedule keeps the configured length).
    #[arg(long)]
    pub max_steps: Option<u64>,
    /// Continue from the newest intact checkpoint in --out.
    #[arg(long, conflicts_with = "overwrite")]
    pub resume: bool,
    /// Delete the run already in --out (checkpoints, final/, metrics) and start a new one.
    #[arg(long)]
    pub overwrite: bool,
}

impl RunArgs {
    /// How the run treats what --out already holds.
    pub fn start(&self) -> Result<Start> {
        Ok(Start::from_flags(self.resume, self.overwrite)?)
    }
}

/// Runs `allam pretrain` and prints the run summary as JSON.
pub fn pretrain(args: RunArgs, display: Display) -> Result<()> {
    let config = RunConfig::load(&args.config)?;
    let options = RunOptions {
        max_steps: args.max_steps,
        start: args.start()?,
    };
    let bar = StepBar::new("pretrain", display);
    let summary = allam_train::train(&config, &args.out, &options, &bar);
    bar.finish();
    let summary =
        summary.with_context(|| format!("training {} into {}", args.config.display(), args.out.display()))?;
    println!("{}", serde_json::to_string(&summary)?);
    Ok(())
}

/// Arguments of `allam plot`.
#[derive(Debug, Args)]
pub struct PlotArgs {
    /// A run directory with metrics.jsonl.
    run_dir: PathBuf,
}

/// Draws `RUN_DIR/loss.svg`.
pub fn plot(args: PlotArgs) -> Result<()> {
    let out = allam_train::plot::plot_run(&args.run_dir)?;
    println!("{}", out.display());
    Ok(())
}
