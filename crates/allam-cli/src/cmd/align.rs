//! `allam sft`, `allam sft inspect` and `allam dpo`: the alignment stages from the shell.
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Args, Subcommand};

use allam_align::config::Stage;
use allam_align::{AlignConfig, MarkStyle, SftExample, inspect_tokens, load_conversations};
use allam_model::TextTokenizer;

use allam_cli::display::{Display, StepBar};

use allam_train::Start;

use crate::cmd::train::RunArgs;

/// `allam sft`: train, or inspect what would be trained.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct SftCommand {
    #[command(subcommand)]
    command: Option<SftSubcommand>,
    #[command(flatten)]
    args: Option<RunArgs>,
}

/// Subcommands of `allam sft`.
#[derive(Debug, Subcommand)]
pub enum SftSubcommand {
    /// Print rendered conversations with the trained tokens marked ([[like this]]).
    Inspect {
        /// Stage configuration (its data, template and tokenizer are used).
        #[arg(long)]
        config: PathBuf,
        /// How many conversations to show.
        #[arg(long, default_value_t = 1)]
        n: usize,
        /// Mark trained tokens with ANSI colour instead of brackets.
        #[arg(long)]
        color: bool,
    },
}

/// Runs `allam sft`.
pub fn sft(command: SftCommand, display: Display) -> Result<()> {
    match (command.command, command.args) {
        (Some(SftSubcommand::Inspect { config, n, color }), _) => inspect(config, n, color),
        (None, Some(args)) => run_stage(args, Stage::Sft, display, |config, out, steps, start, bar| {
            allam_align::run_sft(config, out, steps, start, bar)
        }),
        (None, None) => anyhow::bail!("give --config and --out (or the inspect subcommand)"),
    }
}

/// Runs `allam dpo`.
pub fn dpo(args: RunArgs, display: Display) -> Result<()> {
    run_stage(args, Stage::Dpo, display, |config, out, steps, start, bar| {
        allam_align::run_dpo(config, out, steps, start, bar)
    })
}

/// `--plan`, or the stage run into `--out` with its summary printed as JSON.
fn run_stage<S: serde::Serialize>(
    args: RunArgs,
    stage: Stage,
    display: Display,
    run: impl FnOnce(&AlignConfig, &Path, Option<u64>, Start, &StepBar) -> allam_align::Result<S>,
) -> Result<()> {
    let config = AlignConfig::load(&args.config)?;
    let name = match stage {
        Stage::Sft => "sft",
        Stage::Dpo => "dpo",
    };
    if args.plan {
        let plan = config
            .plan(stage, args.model_config.as_deref())
            .with_context(|| format!("planning {}", args.config.display()))?;
        return args.print_plan(&plan);
    }
    let bar = StepBar::new(name, display);
    let summary = run(&config, args.out(), args.max_steps, args.start()?, &bar);
    bar.finish();
    let summary = summary.with_context(|| {
        format!(
            "{} {} into {}",
            name.to_uppercase(),
            args.config.display(),
            args.out().display()
        )
    })?;
    println!("{}", serde_json::to_string(&summary)?);
    Ok(())
}

fn inspect(config_path: PathBuf, n: usize, color: bool) -> Result<()> {
    let config = AlignConfig::load(&config_path)?;
    let model = &config.model;
    let tokenizer_path = match (&model.dir, &model.checkpoint, &model.tokenizer) {
        (Some(dir), _, _) => dir.join("tokenizer.json"),
        (None, Some(checkpoint), _) => checkpoint.join("model/tokenizer.json"),
        (None, None, Some(path)) => path.clone(),
        (None, None, None) => anyhow::bail!("{}: [model] names no tokenizer", config_path.display()),
    };
    let tokenizer = TextTokenizer::from_file(&tokenizer_path)?;
    let template = config.template(&tokenizer)?;
    let style = if color {
        MarkStyle::Ansi
    } else {
        MarkStyle::Brackets
    };
    for (i, conversation) in load_conversations(&config.data.path)?.iter().take(n).enumerate() {
        let example = SftExample::encode(conversation, &template, &tokenizer)?;
        let marked = inspect_tokens(&example.input_ids, &example.trainable_mask(), &tokenizer, style)?;
        println!(
            "── conversation {} · {} tokens · {} trained ──\n{marked}\n",
            i + 1,
            example.input_ids.len(),
            example.trained_tokens()
        );
    }
    Ok(())
}
