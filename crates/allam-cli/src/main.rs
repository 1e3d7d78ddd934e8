//! `allam`: the ALLaM recipe from the shell. Each subcommand group is one stage of the recipe.
mod cmd;

use clap::{Parser, Subcommand};

/// The ALLaM recipe on Burn: teach a Llama-family model Arabic without forgetting English.
#[derive(Debug, Parser)]
#[command(name = "allam", version, about, propagate_version = true)]
struct Cli {
    /// Show no progress (by default a bar on a terminal, else a plain line every
    /// ALLAM_PROGRESS_EVERY seconds, default 10, on stderr).
    #[arg(long, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the logits of every position for one sequence of token ids.
    Logits(cmd::model::LogitsArgs),
    /// Generate text from a prompt.
    Generate(cmd::model::GenerateArgs),
    /// Write a model directory again (dtype, sharding) as `transformers` writes it.
    Export(cmd::model::ExportArgs),
    /// Log-likelihood of continuations (`{"context", "continuation"}` JSON lines), as lm-evaluation-harness.
    Score(cmd::eval::ScoreArgs),
    /// Perplexity and bits per byte of text files (one line per file).
    Ppl(cmd::eval::PplArgs),
    /// Multiple-choice accuracy (acc, acc_norm, per subject) on a task file.
    Eval(cmd::eval::EvalArgs),
    /// The whole recipe end to end (base pretraining, expansion, continued pretraining vs control, SFT, DPO, report).
    Recipe(cmd::recipe::RecipeArgs),
    /// Pretrain or continue pretraining on a data mixture (metrics, checkpoints, exact resume).
    Pretrain(cmd::train::RunArgs),
    /// Supervised fine-tuning on chat conversations (loss on assistant turns only); `sft inspect` shows what is trained.
    Sft(cmd::align::SftCommand),
    /// Direct preference optimisation on chosen/rejected pairs (sigmoid, IPO, hinge; cached reference).
    Dpo(cmd::train::RunArgs),
    /// Draw a run's loss curves (`RUN_DIR/loss.svg`) from its metrics.jsonl.
    Plot(cmd::train::PlotArgs),
    /// Throughput of training steps, decoding or prefill on a random model of a given shape (JSON).
    Bench(cmd::bench::BenchArgs),
    /// Model operations.
    #[command(subcommand)]
    Model(cmd::model::ModelCommand),
    /// Learn an Arabic vocabulary, merge it into a base tokenizer, and measure tokenizers.
    #[command(subcommand)]
    Tokenizer(cmd::tokenizer::TokenizerCommand),
    /// Build the weighted, packed training data of the mixture.
    #[command(subcommand)]
    Data(cmd::data::DataCommand),
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let display = allam_recipe::Display::detect(cli.quiet);
    let result = match cli.command {
        Command::Logits(args) => cmd::model::logits(args),
        Command::Generate(args) => cmd::model::generate(args),
        Command::Export(args) => cmd::model::export(args),
        Command::Score(args) => cmd::eval::score(args, display),
        Command::Ppl(args) => cmd::eval::ppl(args, display),
        Command::Eval(args) => cmd::eval::eval(args, display),
        Command::Recipe(args) => cmd::recipe::recipe(args, display),
        Command::Pretrain(args) => cmd::train::pretrain(args, display),
        Command::Sft(command) => cmd::align::sft(command, display),
        Command::Dpo(args) => cmd::align::dpo(args, display),
        Command::Plot(args) => cmd::train::plot(args),
        Command::Bench(args) => cmd::bench::bench(args),
        Command::Model(command) => cmd::model::run(command),
        Command::Tokenizer(command) => cmd::tokenizer::run(command),
        Command::Data(command) => cmd::data::run(command, display),
    };
    if let Err(error) = result {
        eprintln!("error: {error:#}");
        std::process::exit(1);
    }
}
