//! `allam score`, `allam ppl` and `allam eval`: evaluation from the shell.
use std::io::Write;
use std::path::PathBuf;

use allam_cli::display::{Display, ScoreBar};
use allam_eval::{SlidingWindow, read_jsonl, score_requests_with, text_stats_with};
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
    let truncated = scores.iter().filter(|s| s.context_tokens_dropped > 0).count();
    if truncated > 0 {
        display.message(&format!(
            "warning: {truncated} request(s) longer than the model's context ({} tokens) lost context tokens \
             from the left (\"context_tokens_dropped\" in their lines)",
            pretrained.model.config.max_position_embeddings
        ));
    }
    let mut out = std::io::stdout().lock();
    for (record, score) in records.into_iter().zip(scores) {
        let mut object = record.object;
        object.insert("logprob".into(), json!(score.logprob));
        object.insert("continuation_tokens".into(), json!(score.continuation_tokens));
        object.insert("is_greedy".into(), json!(score.is_greedy));
        if score.context_tokens_dropped > 0 {
            object.insert(
                "context_tokens_dropped".into(),
                json!(score.context_tokens_dropped),
            );
        }
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

/// What starts the scored text in `allam eval`.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum BosArg {
    /// The tokenizer's special tokens (Llama-2, Llama-3: BOS).
    Tokenizer,
    /// No special tokens (lm-evaluation-harness `add_bos_token=False`).
    None,
}

/// Arguments of `allam eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Hugging Face model directory (with its tokenizer).
    #[arg(long)]
    model: PathBuf,
    /// The file format: `exams` (EXAMS' JSONL, or the Arabic leaderboard's `OALL/Arabic_EXAMS`
    /// export), `mc-jsonl`, `mmlu` (JSON Lines as `datasets` exports them, or the original
    /// `question,A,B,C,D,answer` CSV for a `.csv` file), `mmlu-csv`, `acva` (statements answered
    /// `صح`/`خطأ`) or `arabic-mmlu` (JSON Lines, or CSV with a header for a `.csv` file).
    #[arg(long)]
    task: String,
    /// The prompt format (default: the task's reference prompt): `mmlu` (lm-evaluation-harness),
    /// `arabic-mmlu` (lm-evaluation-harness arabicmmlu, English meta prompt), `arabic-mmlu-ar`
    /// (ArabicMMLU's own Arabic prompt), `arabic-exams` and `acva` (the Arabic leaderboard's
    /// tasks as lm-evaluation-harness ports them), `arabic-exams-oall` and `acva-oall` (as
    /// lighteval ran them for the Open Arabic LLM Leaderboard), or `house` (this project's, with
    /// `--mode` and `--letters`; the default of `mc-jsonl`).
    #[arg(long)]
    format: Option<String>,
    /// The task's file (JSON Lines, or CSV where the format allows).
    #[arg(long)]
    data: PathBuf,
    /// Solved examples before each question (default: 5 for the `arabic-exams` and `acva`
    /// formats, else 0): the first ones of the question's group in `--dev` (else in `--data`,
    /// the question left out) for the reference formats, a seeded draw for `house`.
    #[arg(long)]
    shots: Option<usize>,
    /// The dev split the examples are drawn from (same format as `--data`).
    #[arg(long)]
    dev: Option<PathBuf>,
    /// Seed of the house format's draw of examples (same seed, same prompts).
    #[arg(long, default_value_t = allam_eval::DEFAULT_SEED)]
    seed: u64,
    /// House format: score by choice text (default) or by letter label.
    #[arg(long, value_enum)]
    mode: Option<ModeArg>,
    /// House format: labels and cues `latin` (A B C D, `Answer:`), `arabic` (أ ب ج د, `الإجابة:`)
    /// or `auto` (default: Arabic for items whose `language` is Arabic or whose question is mostly
    /// Arabic letters).
    #[arg(long, value_enum)]
    letters: Option<LettersArg>,
    /// Score through the model's chat template as lm-evaluation-harness' `--apply_chat_template`
    /// does: the description (MMLU's subject line) as the system turn, the examples and the
    /// question as one user turn (lighteval's turns for the `-oall` formats), each choice right
    /// after the generation prompt with no space before it.
    #[arg(long)]
    chat: bool,
    /// What starts the scored text: the tokenizer's special tokens (`tokenizer`, default) or none.
    #[arg(long, value_enum, default_value = "tokenizer")]
    bos: BosArg,
    /// Write one JSON line per item (as lm-evaluation-harness' `--log_samples`): the full
    /// prompt, each continuation and its log-likelihood, the predictions and the gold answer.
    #[arg(long, value_name = "FILE")]
    log_samples: Option<PathBuf>,
    /// Requests per forward pass.
    #[arg(long, default_value_t = 8)]
    batch_size: usize,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    device: DeviceArgs,
}

/// Prints the settings, then accuracy (acc, acc_norm) overall and per subject.
pub fn eval(args: EvalArgs, display: Display) -> Result<()> {
    let task = allam_eval::TaskFormat::for_file(&args.task, &args.data)?;
    let format = match &args.format {
        Some(name) => allam_eval::PromptFormat::from_name(name)?,
        None => allam_eval::PromptFormat::default_for_task(&args.task),
    };
    if format != allam_eval::PromptFormat::House && (args.mode.is_some() || args.letters.is_some()) {
        anyhow::bail!(
            "--mode and --letters set the house prompt; the `{}` format fixes its own (add --format house)",
            format.name()
        );
    }
    let items = allam_eval::read_items(&args.data, task)?;
    let dev = match &args.dev {
        Some(path) => {
            let task = allam_eval::TaskFormat::for_file(&args.task, path)?;
            Some(allam_eval::read_items(path, task)?)
        }
        None => None,
    };
    let pretrained = load(&args.model, &args.device)?;
    let options = allam_eval::McOptions {
        format,
        mode: match args.mode.unwrap_or(ModeArg::Text) {
            ModeArg::Text => allam_eval::ChoiceMode::Text,
            ModeArg::Letters => allam_eval::ChoiceMode::Letters,
        },
        shots: args.shots.unwrap_or(format.default_shots()),
        seed: args.seed,
        letters: match args.letters.unwrap_or(LettersArg::Auto) {
            LettersArg::Latin => allam_eval::LetterScript::Latin,
            LettersArg::Arabic => allam_eval::LetterScript::Arabic,
            LettersArg::Auto => allam_eval::LetterScript::Auto,
        },
        chat: args.chat,
        bos: match args.bos {
            BosArg::Tokenizer => allam_eval::Bos::Tokenizer,
            BosArg::None => allam_eval::Bos::None,
        },
        batch_size: args.batch_size,
    };
    let settings = allam_eval::multiple_choice::settings(&pretrained, &options, dev.is_some())?;
    let choices = items.iter().map(|item| item.choices.len() as u64).sum();
    let bar = ScoreBar::new("eval", choices, display);
    let evaluated = allam_eval::evaluate_observed(&pretrained, &items, dev.as_deref(), options, &bar);
    bar.finish();
    let (report, samples) = evaluated.with_context(|| format!("evaluating {}", args.data.display()))?;
    if let Some(path) = &args.log_samples {
        write_samples(path, &samples).with_context(|| format!("writing {}", path.display()))?;
    }
    if report.items_truncated > 0 {
        display.message(&format!(
            "warning: {} item(s) longer than the model's context ({} tokens) lost prompt tokens from the left",
            report.items_truncated, pretrained.model.config.max_position_embeddings
        ));
    }
    let mut out = std::io::stdout().lock();
    if args.json {
        let line = json!({
            "task": args.task,
            "format": settings.format,
            "shots": options.shots,
            "seed": args.seed,
            "dev": args.dev.as_ref().map(|p| p.display().to_string()),
            "chat": args.chat,
            "settings": settings,
            "overall": report.overall,
            "subjects": report.subjects,
            "items_truncated": report.items_truncated,
        });
        writeln!(out, "{line}")?;
    } else {
        writeln!(out, "# task: {} ({})", args.task, args.data.display())?;
        writeln!(out, "# format: {} — {}", settings.format, settings.reference)?;
        writeln!(out, "# shots: {} ({})", settings.shots, settings.shot_selection)?;
        writeln!(out, "# target delimiter: {:?}", settings.target_delimiter)?;
        writeln!(out, "# normalisation: {}", settings.normalisation)?;
        writeln!(out, "# bos: {}", settings.bos)?;
        writeln!(
            out,
            "# chat template: {}",
            if settings.chat { "yes" } else { "no" }
        )?;
        writeln!(out, "subject\tn\tacc\tacc_norm")?;
        for (subject, a) in &report.subjects {
            writeln!(out, "{subject}\t{}\t{:.4}\t{:.4}", a.n, a.acc, a.acc_norm)?;
        }
        let a = report.overall;
        writeln!(out, "(all)\t{}\t{:.4}\t{:.4}", a.n, a.acc, a.acc_norm)?;
    }
    Ok(())
}

/// Writes one JSON line per sample to `path` (all or nothing: a temporary file renamed).
fn write_samples(path: &std::path::Path, samples: &[allam_eval::McSample]) -> Result<()> {
    let mut bytes = Vec::new();
    for sample in samples {
        serde_json::to_writer(&mut bytes, sample)?;
        bytes.push(b'\n');
    }
    allam_data::report::write_atomic(path, &bytes)?;
    Ok(())
}
