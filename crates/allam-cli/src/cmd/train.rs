//! `allam pretrain` and `allam plot`: the training loop from the shell.
use std::path::PathBuf;

use allam_cli::display::{Display, StepBar};
use allam_train::plan::MemoryPlan;
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
    #[arg(long, required_unless_present = "plan")]
    pub out: Option<PathBuf>,
    /// Stop after this many steps (the schedule keeps the configured length).
    #[arg(long)]
    pub max_steps: Option<u64>,
    /// Continue from the newest intact checkpoint in --out.
    #[arg(long, conflicts_with = "overwrite")]
    pub resume: bool,
    /// Delete the run already in --out (checkpoints, final/, metrics) and start a new one.
    #[arg(long)]
    pub overwrite: bool,
    /// Print the memory the run will need per device (weights, gradients, AdamW moments,
    /// activations, output head) without loading or allocating the model, and stop.
    #[arg(long)]
    pub plan: bool,
    /// With --plan: say whether the run fits a device of this size (`80GB`, `24GiB`).
    #[arg(long, requires = "plan", value_parser = parse_device_memory)]
    pub device_memory: Option<u64>,
    /// With --plan: the model shape from this `config.json` instead of the run's model (to plan
    /// before the model exists, e.g. a base downloaded without its weights).
    #[arg(long, requires = "plan")]
    pub model_config: Option<PathBuf>,
    /// With --plan: print the plan as JSON.
    #[arg(long, requires = "plan")]
    pub json: bool,
}

fn parse_device_memory(text: &str) -> Result<u64, String> {
    allam_train::plan::parse_size(text)
        .ok_or_else(|| format!("`{text}` is not a size such as 80GB, 24GiB or 512MB"))
}

impl RunArgs {
    /// How the run treats what --out already holds.
    pub fn start(&self) -> Result<Start> {
        Ok(Start::from_flags(self.resume, self.overwrite)?)
    }

    /// The run directory (present unless --plan).
    pub fn out(&self) -> &std::path::Path {
        self.out.as_deref().expect("clap requires --out without --plan")
    }

    /// Prints `plan` as --plan asked (text or JSON, with the fit verdict).
    pub fn print_plan(&self, plan: &MemoryPlan) -> Result<()> {
        if self.json {
            let mut value = serde_json::to_value(plan)?;
            if let Some(memory) = self.device_memory {
                value["device_memory"] = memory.into();
                value["fits"] = (plan.total <= memory).into();
            }
            println!("{value}");
        } else {
            print!("{}", plan.render(self.device_memory));
        }
        Ok(())
    }
}

/// Runs `allam pretrain` and prints the run summary as JSON.
pub fn pretrain(args: RunArgs, display: Display) -> Result<()> {
    let config = RunConfig::load(&args.config)?;
    if args.plan {
        let plan = allam_train::plan::pretraining_plan(&config, args.model_config.as_deref())
            .with_context(|| format!("planning {}", args.config.display()))?;
        return args.print_plan(&plan);
    }
    let options = RunOptions {
        max_steps: args.max_steps,
        start: args.start()?,
    };
    let bar = StepBar::new("pretrain", display);
    let summary = allam_train::train(&config, args.out(), &options, &bar);
    bar.finish();
    let summary = summary
        .with_context(|| format!("training {} into {}", args.config.display(), args.out().display()))?;
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
