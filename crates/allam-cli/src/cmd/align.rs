//! `allam sft`, `allam sft inspect` and `allam dpo`: the alignment stages from the shell.
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};

use allam_align::config::Stage;
use allam_align::{AlignConfig, MarkStyle, SftExample, inspect_tokens, load_conversations};
use allam_model::TextTokenizer;

use allam_recipe::{Display, StepBar};

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
        (None, Some(args)) => {
            let config = AlignConfig::load(&args.config)?;
            if args.plan {
                let plan = config
                    .plan(Stage::Sft, args.model_config.as_deref())
                    .with_context(|| format!("planning {}", args.config.display()))?;
                return args.print_plan(&plan);
            }
            let bar = StepBar::new("sft", display);
            let summary = allam_align::run_sft(&config, args.out(), args.max_steps, args.start()?, &bar);
            bar.finish();
            let summary = summary
                .with_context(|| format!("SFT {} into {}", args.config.display(), args.out().display()))?;
            println!("{}", serde_json::to_string(&summary)?);
            Ok(())
        }
        (None, None) => anyhow::bail!("give --config and --out (or the inspect subcommand)"),
    }
}

/// Runs `allam dpo`.
pub fn dpo(args: RunArgs, display: Display) -> Result<()> {
    let config = AlignConfig::load(&args.config)?;
    if args.plan {
        let plan = config
            .plan(Stage::Dpo, args.model_config.as_deref())
            .with_context(|| format!("planning {}", args.config.display()))?;
        return args.print_plan(&plan);
    }
    let bar = StepBar::new("dpo", display);
    let summary = allam_align::run_dpo(&config, args.out(), args.max_steps, args.start()?, &bar);
    bar.finish();
    let summary =
        summary.with_context(|| format!("DPO {} into {}", args.config.display(), args.out().display()))?;
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
