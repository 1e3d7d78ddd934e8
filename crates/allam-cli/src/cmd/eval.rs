//! `allam score`, `allam ppl` and `allam eval`: evaluation from the shell.
use std::io::Write;
use std::path::PathBuf;

use allam_eval::{SlidingWindow, read_jsonl, score_requests_with, text_stats_with};
use allam_recipe::{Display, ScoreBar};
use anyhow::{Context, Result};
use clap::Args;
use serde_json::{Value, json};

use super::model::{DeviceArgs, load};

/// Arguments of `allam score`.
#[derive(Debug, Args)]
pub struct ScoreArgs {
    /// Hugging Face model directory (with its tokenizer).
    #[arg(long)]
    model: PathBuf,
    /// JSON Lines requests: `{"context": ..., "continuation": ...}`; other fields are passed through.
    #[arg(long)]
    input: PathBuf,
    /// Requests per forward pass (scores do not depend on it).
    #[arg(long, default_value_t = 8)]
    batch_size: usize,
    #[command(flatten)]
    device: DeviceArgs,
}

/// Prints each request as a JSON line with `logprob`, `continuation_tokens` and `is_greedy` added.
pub fn score(args: ScoreArgs, display: Display) -> Result<()> {
    let records = read_jsonl(&args.input)?;
    let requests = records
        .iter()
        .map(|r| r.score_request(&args.input))
        .collect::<Result<Vec<_>, _>>()?;
    let pretrained = load(&args.model, &args.device)?;
    let bar = ScoreBar::new("score", requests.len() as u64, display);
    let scores = score_requests_with(&pretrained, &requests, args.batch_size, &bar);
    bar.finish();
    let scores = scores.with_context(|| format!("scoring {}", args.input.display()))?;
    let mut out = std::io::stdout().lock();
    for (record, score) in records.into_iter().zip(scores) {
        let mut object = record.object;
        object.insert("logprob".into(), json!(score.logprob));
        object.insert("continuation_tokens".into(), json!(score.continuation_tokens));
        object.insert("is_greedy".into(), json!(score.is_greedy));
        serde_json::to_writer(&mut out, &Value::Object(object))?;
        writeln!(out)?;
    }
    Ok(())
}

/// Arguments of `allam ppl`.
#[derive(Debug, Args)]
pub struct PplArgs {
    /// Hugging Face model directory (with its tokenizer).
    #[arg(long)]
    model: PathBuf,
    /// UTF-8 text files, each measured as one document (e.g. one per language).
    #[arg(long, num_args = 1.., required = true)]
    text: Vec<PathBuf>,
    /// Most tokens the model reads per pass (default: the model's context length).
    #[arg(long)]
    window: Option<usize>,
    /// New tokens scored per pass (default: the window, i.e. disjoint windows).
    #[arg(long)]
    stride: Option<usize>,
    /// Windows per forward pass.
    #[arg(long, default_value_t = 8)]
    batch_size: usize,
    /// Print one JSON object per file instead of a table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    device: DeviceArgs,
}

/// Prints tokens, bytes, nll, perplexity and bits per byte for each file.
pub fn ppl(args: PplArgs, display: Display) -> Result<()> {
    let pretrained = load(&args.model, &args.device)?;
    let default = SlidingWindow::for_model(&pretrained.model);
    let window = args.window.unwrap_or(default.window);
    let window = SlidingWindow {
        window,
        stride: args.stride.unwrap_or(window),
    };
    let texts = args
        .text
        .iter()
        .map(|path| std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display())))
        .collect::<Result<Vec<_>>>()?;
    // The windows of every file, counted up front so that the progress has its total.
    let tokenizer = pretrained.tokenizer()?;
    let mut windows = 0;
    for text in &texts {
        windows += window.requests(&tokenizer.encode(text, true)?).len() as u64;
    }
    let bar = ScoreBar::new("ppl", windows, display);
    let mut out = std::io::stdout().lock();
    if !args.json {
        writeln!(out, "file\ttokens\tbytes\tnll\tppl\tbpb")?;
    }
    for (path, text) in args.text.iter().zip(&texts) {
        let stats = text_stats_with(&pretrained, text, window, args.batch_size, &bar);
        if stats.is_err() {
            bar.finish();
        }
        let stats = stats.with_context(|| format!("measuring {}", path.display()))?;
        let (ppl, bpb) = (stats.perplexity(), stats.bits_per_byte());
        if args.json {
            let line = json!({
                "file": path.display().to_string(),
                "tokens": stats.tokens,
                "bytes": stats.bytes,
                "nll": stats.nll,
                "ppl": ppl,
                "bpb": bpb,
            });
            writeln!(out, "{line}")?;
        } else {
            writeln!(
                out,
                "{}\t{}\t{}\t{:.4}\t{:.4}\t{:.4}",
                path.display(),
                stats.tokens,
                stats.bytes,
                stats.nll,
                ppl,
                bpb
            )?;
        }
    }
    bar.finish();
    Ok(())
}

/// How each choice is scored in `allam eval`.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum ModeArg {
    /// By the choice's text (acc and acc_norm).
    Text,
    /// By the choice's letter label, after a prompt listing the choices.
    Letters,
}

/// The script of labels and cues in `allam eval`.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum LettersArg {
    /// A B C D and `Answer:`.
    Latin,
    /// أ ب ج د and `الإجابة:`.
    Arabic,
    /// By each item's language or script.
    Auto,
}

/// Arguments of `allam eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Hugging Face model directory (with its tokenizer).
    #[arg(long)]
    model: PathBuf,
    /// The file format: `exams`, `mc-jsonl`, `mmlu` (JSON Lines as `datasets` exports them, or
    /// the original `question,A,B,C,D,answer` CSV for a `.csv` file), `mmlu-csv`, `acva` (statements
    /// answered `صح`/`خطأ`) or `arabic-mmlu` (JSON Lines, or CSV with a header for a `.csv` file).
    #[arg(long)]
    task: String,
    /// The task's file (JSON Lines, or CSV where the format allows).
    #[arg(long)]
    data: PathBuf,
    /// Solved examples before each question, drawn from `--dev` (else from the other items of
    /// `--data`), same subject first.
    #[arg(long, default_value_t = 0)]
    shots: usize,
    /// The dev split the examples are drawn from (same format as `--data`).
    #[arg(long)]
    dev: Option<PathBuf>,
    /// Seed of the draw of examples (same seed, same prompts).
    #[arg(long, default_value_t = allam_eval::DEFAULT_SEED)]
    seed: u64,
    /// Score by choice text or by letter label.
    #[arg(long, value_enum, default_value = "text")]
    mode: ModeArg,
    /// Labels and cues: `latin` (A B C D, `Answer:`), `arabic` (أ ب ج د, `الإجابة:`) or `auto`
    /// (Arabic for items whose `language` is Arabic or whose question is mostly Arabic letters).
    #[arg(long, value_enum, default_value = "auto")]
    letters: LettersArg,
    /// Wrap each prompt as one user turn of the model's chat template and score the choices
    /// after its generation prompt.
    #[arg(long)]
    chat: bool,
    /// Requests per forward pass.
    #[arg(long, default_value_t = 8)]
    batch_size: usize,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    device: DeviceArgs,
}

/// Prints accuracy (acc, acc_norm) overall and per subject.
pub fn eval(args: EvalArgs, display: Display) -> Result<()> {
    let format = allam_eval::TaskFormat::for_file(&args.task, &args.data)?;
    let items = allam_eval::read_items(&args.data, format)?;
    let dev = match &args.dev {
        Some(path) => {
            let format = allam_eval::TaskFormat::for_file(&args.task, path)?;
            Some(allam_eval::read_items(path, format)?)
        }
        None => None,
    };
    let pretrained = load(&args.model, &args.device)?;
    let options = allam_eval::McOptions {
        mode: match args.mode {
            ModeArg::Text => allam_eval::ChoiceMode::Text,
            ModeArg::Letters => allam_eval::ChoiceMode::Letters,
        },
        shots: args.shots,
        seed: args.seed,
        letters: match args.letters {
            LettersArg::Latin => allam_eval::LetterScript::Latin,
            LettersArg::Arabic => allam_eval::LetterScript::Arabic,
            LettersArg::Auto => allam_eval::LetterScript::Auto,
        },
        chat: args.chat,
        batch_size: args.batch_size,
    };
    let choices = items.iter().map(|item| item.choices.len() as u64).sum();
    let bar = ScoreBar::new("eval", choices, display);
    let report = allam_eval::evaluate_observed(&pretrained, &items, dev.as_deref(), options, &bar);
    bar.finish();
    let report = report.with_context(|| format!("evaluating {}", args.data.display()))?;
    let mut out = std::io::stdout().lock();
    if args.json {
        let line = json!({
            "task": args.task,
            "shots": args.shots,
            "seed": args.seed,
            "dev": args.dev.as_ref().map(|p| p.display().to_string()),
            "chat": args.chat,
            "overall": report.overall,
            "subjects": report.subjects,
        });
        writeln!(out, "{line}")?;
    } else {
        writeln!(out, "subject\tn\tacc\tacc_norm")?;
        for (subject, a) in &report.subjects {
            writeln!(out, "{subject}\t{}\t{:.4}\t{:.4}", a.n, a.acc, a.acc_norm)?;
        }
        let a = report.overall;
        writeln!(out, "(all)\t{}\t{:.4}\t{:.4}", a.n, a.acc, a.acc_norm)?;
    }
    Ok(())
}
