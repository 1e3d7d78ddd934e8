//! `allam`: the ALLaM recipe from the shell. Each subcommand group is one stage of the recipe.
mod cmd;

use clap::{Parser, Subcommand};

/// `allam --help`: the commands grouped by stage of the recipe, each with an example that runs
/// from the repository root in this order (the later ones use `runs/pretrain-tiny/final`).
const COMMANDS: &str = "\
Commands, by stage of the recipe (`allam help <command>` for all options):

 The whole recipe, at toy scale, with its report
  recipe     every stage end to end (what `cargo run --release --example reproduce` runs)
               allam recipe --config examples/recipes/toy.toml

 1. Base model (Hugging Face Llama-family checkpoints)
  model      info, expand (rows for a new tokenizer), average (checkpoints)
               allam model info --model runs/pretrain-tiny/final
  generate   text from a prompt: greedy, or sampled with a temperature
               allam generate --model runs/pretrain-tiny/final --prompt the --max-new-tokens 20
  logits     the logits of every position of one sequence of token ids
               allam logits --model runs/pretrain-tiny/final --ids 3,17,42 --json
  export     write a checkpoint again (dtype, shards) as transformers does
               allam export --model runs/pretrain-tiny/final --out runs/export --dtype bf16

 2. Tokenizer expansion
  tokenizer  learn Arabic pieces and merge them into a base tokenizer; fertility by script
               allam tokenizer stats --tokenizer data/sample/tokenizer.json --text data/sample/ar_heldout.txt

 3. Data mixture
  data       clean, deduplicate, tokenise and blend sources into packed shards; inspect them
               allam data build --recipe examples/recipes/data-tiny.toml --out runs/data-tiny

 4. Pretraining and continued pretraining
  pretrain   train on a mixture: metrics, checkpoints, exact resume, loss.svg
               allam pretrain --config examples/configs/pretrain-tiny.toml --out runs/pretrain-tiny
  plot       draw a run's charts again (RUN_DIR/loss.svg)
               allam plot runs/pretrain-tiny

 5. Alignment
  sft        supervised fine-tuning, loss on assistant turns (`sft inspect` shows which)
               allam sft --config examples/configs/sft-tiny.toml --out runs/sft-tiny
  dpo        direct preference optimisation on chosen/rejected pairs
               allam dpo --config examples/configs/dpo-tiny.toml --out runs/dpo-tiny

 6. Evaluation
  ppl        perplexity and bits per byte of text files
               allam ppl --model runs/pretrain-tiny/final --text data/sample/en_heldout.txt data/sample/ar_heldout.txt
  eval       multiple-choice accuracy (EXAMS, MMLU, Arabic MMLU, ACVA, JSON Lines)
               allam eval --model runs/pretrain-tiny/final --task mc-jsonl --data data/sample/mc_questions.jsonl
  score      log-likelihood of {\"context\", \"continuation\"} JSON lines
               allam score --model runs/pretrain-tiny/final --input data/sample/requests.jsonl

 The toolchain itself
  bench      tokens/s and peak memory of training, decoding or prefill on random weights
               allam bench prefill --layers 2 --json
  help       this text, or a command's: allam help pretrain
";

/// The layout of `allam --help`: [`COMMANDS`] in place of clap's flat list.
const HELP_TEMPLATE: &str = "\
{about-with-newline}
{usage-heading} {usage}{after-help}
Options:
{options}";

/// The ALLaM recipe on Burn: teach a Llama-family model Arabic without forgetting English.
#[derive(Debug, Parser)]
#[command(
    name = "allam",
    version,
    propagate_version = true,
    help_template = HELP_TEMPLATE,
    after_help = COMMANDS
)]
struct Cli {
    /// Show no progress on stderr (else a bar on a terminal, or a plain line every
    /// ALLAM_PROGRESS_EVERY seconds, default 10, when stderr is a file or a pipe).
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
    allam_train::heap::keep_freed_memory();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let display = allam_cli::display::Display::detect(cli.quiet);
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

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    /// The example lines of [`COMMANDS`], split into arguments (no quoting in them).
    fn examples() -> Vec<Vec<&'static str>> {
        COMMANDS
            .lines()
            .map(str::trim)
            .filter(|l| l.starts_with("allam "))
            .map(|l| l.split_whitespace().collect())
            .collect()
    }

    #[test]
    fn the_grouped_help_lists_every_command_once_with_an_example_that_parses() {
        let cli = Cli::command();
        cli.clone().debug_assert();
        let listed: Vec<&str> = COMMANDS
            .lines()
            .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
            .filter_map(|l| l.split_whitespace().next())
            .collect();
        let mut names: Vec<&str> = cli.get_subcommands().map(|c| c.get_name()).collect();
        names.push("help");
        let (mut a, mut b) = (listed.clone(), names.clone());
        a.sort_unstable();
        b.sort_unstable();
        assert_eq!(a, b, "COMMANDS lists exactly the subcommands, once each");
        let examples = examples();
        assert!(examples.len() >= names.len() - 1, "an example per command");
        for args in examples {
            if let Err(e) = Cli::try_parse_from(&args) {
                panic!("{}: {e}", args.join(" "));
            }
        }
        let help = cli.clone().render_help().to_string();
        assert!(
            help.contains("4. Pretraining") && help.contains("--quiet"),
            "{help}"
        );
        assert!(
            !help.contains("Commands:\n"),
            "no flat list besides the grouped one: {help}"
        );
    }
}
