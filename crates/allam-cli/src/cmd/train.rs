//! `allam pretrain` and `allam plot`: the training loop from the shell.
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use allam_train::run::RunObserver;
use allam_train::{RunConfig, RunOptions, StepRecord};

/// Arguments of `allam pretrain`.
#[derive(Debug, Args)]
pub struct PretrainArgs {
    /// Run configuration (TOML): model, data, optimizer, schedule, batch, checkpoints, evaluation.
    #[arg(long)]
    config: PathBuf,
    /// Run directory: metrics.jsonl, checkpoints/, final/, loss.svg.
    #[arg(long)]
    out: PathBuf,
    /// Stop after this many steps (the schedule keeps the configured length).
    #[arg(long)]
    max_steps: Option<u64>,
    /// Continue from the newest checkpoint in --out.
    #[arg(long)]
    resume: bool,
}

/// A progress bar over steps, showing loss, learning rate and throughput.
pub struct StepBar {
    bar: ProgressBar,
}

impl StepBar {
    /// A hidden bar until the loop starts.
    pub fn new(prefix: &str) -> Self {
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template("{prefix} [{elapsed_precise}] {wide_bar} {pos}/{len} {msg}")
                .expect("valid progress template"),
        );
        bar.set_prefix(prefix.to_string());
        Self { bar }
    }

    /// Removes the bar.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl RunObserver for StepBar {
    fn start(&self, first_step: u64, last_step: u64) {
        self.bar.set_length(last_step);
        self.bar.set_position(first_step);
    }

    fn step(&self, r: &StepRecord) {
        self.bar.set_position(r.step);
        self.bar.set_message(format!(
            "loss {:.4} lr {:.2e} |g| {:.3} {:.0} tok/s{}",
            r.loss,
            r.lr,
            r.grad_norm,
            r.tokens_per_s,
            if r.trained == "new_rows" {
                " (new rows only)"
            } else {
                ""
            }
        ));
    }

    fn message(&self, message: &str) {
        self.bar.println(message);
    }
}

/// Runs `allam pretrain` and prints the run summary as JSON.
pub fn pretrain(args: PretrainArgs) -> Result<()> {
    let config = RunConfig::load(&args.config)?;
    let options = RunOptions {
        max_steps: args.max_steps,
        resume: args.resume,
    };
    let bar = StepBar::new("pretrain");
    let summary = allam_train::train(&config, &args.out, &options, &bar)
        .with_context(|| format!("training {} into {}", args.config.display(), args.out.display()))?;
    bar.finish();
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
