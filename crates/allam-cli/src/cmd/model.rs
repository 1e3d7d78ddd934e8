//! `allam logits`, `allam generate`, `allam export` and `allam model ...`.
use std::io::Write;
use std::path::PathBuf;

use allam_model::{GenerationConfig, PretrainedModel, SaveOptions, StorageDtype, TextTokenizer, TokenBatch};
use anyhow::{Context, Result};
use clap::{Args, Subcommand};

/// Where the model runs.
#[derive(Debug, Args)]
pub struct DeviceArgs {
    /// `cpu`, `cuda[:N]` (needs `--features cuda`), `wgpu` or `vulkan` (wgpu pinned to Vulkan;
    /// both need `--features wgpu`).
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

impl DeviceArgs {
    pub(crate) fn device(&self) -> Result<burn::tensor::Device> {
        allam_model::device::select(&self.device).map_err(anyhow::Error::msg)
    }
}

pub(crate) fn load(dir: &std::path::Path, device: &DeviceArgs) -> Result<PretrainedModel> {
    PretrainedModel::load(dir, &device.device()?)
        .with_context(|| format!("loading the model in {}", dir.display()))
}

/// Arguments of `allam logits`.
#[derive(Debug, Args)]
pub struct LogitsArgs {
    /// Hugging Face model directory.
    #[arg(long)]
    model: PathBuf,
    /// Comma-separated token ids (no special tokens are added).
    #[arg(long, value_delimiter = ',', required = true)]
    ids: Vec<u32>,
    /// Print JSON (`{"logits": [[...], ...]}`); the default is one line of logits per position.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    device: DeviceArgs,
}

/// Prints the logits of every position.
pub fn logits(args: LogitsArgs) -> Result<()> {
    let pretrained = load(&args.model, &args.device)?;
    warn_past_context(&args.model, args.ids.len(), &pretrained);
    let logits = pretrained.model.forward(&TokenBatch::single(&args.ids))?;
    let [_, len, vocab] = logits.dims();
    let values: Vec<f32> = logits
        .into_data()
        .convert::<f32>()
        .try_into_vec()
        .map_err(|e| anyhow::anyhow!("reading logits: {e:?}"))?;
    if let Some(i) = values.iter().position(|v| !v.is_finite()) {
        anyhow::bail!(
            "{}: the logits are not finite ({} at position {}, token {}): the weights hold NaN or \
             infinite values, or overflow (check them with `allam model info --model {} --check`)",
            args.model.display(),
            values[i],
            i / vocab,
            i % vocab,
            args.model.display()
        );
    }
    let rows: Vec<&[f32]> = values.chunks(vocab).take(len).collect();
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer(&mut out, &serde_json::json!({ "logits": rows }))?;
        writeln!(out)?;
    } else {
        for row in rows {
            let line: Vec<String> = row.iter().map(|v| v.to_string()).collect();
            writeln!(out, "{}", line.join(" "))?;
        }
    }
    Ok(())
}

/// Warns, as `transformers` does, when `tokens` positions reach past the context the model was
/// trained for (`max_position_embeddings`): the model runs, but its outputs there are untested.
fn warn_past_context(model: &std::path::Path, tokens: usize, pretrained: &PretrainedModel) {
    let context = pretrained.model.config.max_position_embeddings;
    if tokens > context {
        eprintln!(
            "warning: {tokens} positions are longer than the {context} (max_position_embeddings) that {} \
             was trained for; outputs past that length may be meaningless",
            model.display()
        );
    }
}

/// Arguments of `allam generate`.
#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Hugging Face model directory.
    #[arg(long)]
    model: PathBuf,
    /// The prompt text.
    #[arg(long)]
    prompt: String,
    /// Most tokens to generate.
    #[arg(long, default_value_t = 64)]
    max_new_tokens: usize,
    /// Sampling temperature (greedy when absent).
    #[arg(long)]
    temperature: Option<f32>,
    /// Sample among the k most likely tokens.
    #[arg(long)]
    top_k: Option<usize>,
    /// Nucleus sampling threshold.
    #[arg(long)]
    top_p: Option<f32>,
    /// Sampler seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Stop when the text contains this string (repeatable).
    #[arg(long = "stop")]
    stop: Vec<String>,
    /// Wrap the prompt in the model's chat template as a user turn.
    #[arg(long)]
    chat: bool,
    /// Tokenizer file (default: MODEL/tokenizer.json).
    #[arg(long)]
    tokenizer: Option<PathBuf>,
    /// Print `{"ids": [...], "text": "..."}` instead of streaming text.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    device: DeviceArgs,
}

/// Generates text, streaming it unless `--json`.
pub fn generate(args: GenerateArgs) -> Result<()> {
    let mut pretrained = load(&args.model, &args.device)?;
    if let Some(path) = &args.tokenizer {
        pretrained = pretrained.with_tokenizer(TextTokenizer::from_file(path)?);
    }
    let config = GenerationConfig {
        max_new_tokens: args.max_new_tokens,
        temperature: args.temperature,
        top_k: args.top_k,
        top_p: args.top_p,
        seed: args.seed,
        eos_token_ids: Vec::new(),
        stop_strings: args.stop.clone(),
    };
    let prompt = pretrained.encode_prompt(&args.prompt, args.chat)?;
    warn_past_context(&args.model, prompt.len() + args.max_new_tokens, &pretrained);
    if args.json {
        let output = pretrained.generate_streaming(&prompt, &config, |_| {})?;
        println!(
            "{}",
            serde_json::json!({ "ids": output.ids, "text": output.text, "finish_reason": output.finish_reason })
        );
    } else {
        let mut stdout = std::io::stdout();
        pretrained.generate_streaming(&prompt, &config, |piece| {
            let _ = stdout.write_all(piece.as_bytes());
            let _ = stdout.flush();
        })?;
        println!();
    }
    Ok(())
}

/// Arguments of `allam export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Source Hugging Face model directory.
    #[arg(long)]
    model: PathBuf,
    /// Output directory.
    #[arg(long)]
    out: PathBuf,
    /// Storage dtype: f32, bf16 or f16.
    #[arg(long, default_value = "f32")]
    dtype: StorageDtype,
    /// Largest shard, e.g. `2GB`, `500MB` (as `transformers`' `max_shard_size`).
    #[arg(long, default_value = "5GB")]
    max_shard_size: String,
}

/// Parses `2GB`, `500MB`, `10KB`, `123` (bytes), decimal units as `transformers` uses.
pub fn parse_size(text: &str) -> Result<u64> {
    let t = text.trim().to_ascii_uppercase();
    let units = [
        ("GIB", 1u64 << 30),
        ("MIB", 1 << 20),
        ("KIB", 1 << 10),
        ("GB", 1_000_000_000),
        ("MB", 1_000_000),
        ("KB", 1_000),
        ("B", 1),
    ];
    for (suffix, scale) in units {
        if let Some(number) = t.strip_suffix(suffix) {
            let n: f64 = number
                .trim()
                .parse()
                .with_context(|| format!("bad size `{text}`"))?;
            return Ok((n * scale as f64) as u64);
        }
    }
    t.parse()
        .with_context(|| format!("bad size `{text}` (expected e.g. 2GB or 500MB)"))
}

/// Re-writes a model directory.
pub fn export(args: ExportArgs) -> Result<()> {
    let pretrained = load(&args.model, &DeviceArgs { device: "cpu".into() })?;
    let options = SaveOptions {
        dtype: args.dtype,
        max_shard_bytes: Some(parse_size(&args.max_shard_size)?),
    };
    pretrained
        .save(&args.out, &options)
        .with_context(|| format!("writing {}", args.out.display()))?;
    eprintln!("wrote {}", args.out.display());
    Ok(())
}

/// `allam model ...` commands.
#[derive(Debug, Subcommand)]
pub enum ModelCommand {
    /// Print a model directory's architecture and parameter count.
    Info {
        /// Hugging Face model directory.
        #[arg(long)]
        model: PathBuf,
        /// Also load the weights and check every tensor for NaN or infinite values (exit 1 if any).
        #[arg(long)]
        check: bool,
    },
    /// Grow a model's vocabulary to an expanded tokenizer (new rows from the base rows of their
    /// pieces); old logits are kept exactly.
    Expand(ExpandArgs),
    /// Average the weights of several checkpoints (Hugging Face directories of one architecture).
    Average {
        /// The checkpoints.
        #[arg(required = true, num_args = 1..)]
        checkpoints: Vec<PathBuf>,
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
        /// Storage dtype: f32, bf16 or f16 (default: the first checkpoint's).
        #[arg(long)]
        dtype: Option<StorageDtype>,
    },
}

/// Arguments of `allam model expand`.
#[derive(Debug, Args)]
pub struct ExpandArgs {
    /// Hugging Face model directory (with the base `tokenizer.json`).
    #[arg(long)]
    model: PathBuf,
    /// The expanded `tokenizer.json` (its `tokenizer_config.json` is taken from beside it if there).
    #[arg(long)]
    tokenizer: PathBuf,
    /// Initialisation of new rows: mean (the paper's), noisy-mean or random.
    #[arg(long, default_value = "mean")]
    init: allam_model::RowInit,
    /// Output directory.
    #[arg(long)]
    out: PathBuf,
    /// Rows of the new matrices (default: the tokenizer's size).
    #[arg(long, conflicts_with = "pad_to_multiple")]
    vocab_size: Option<usize>,
    /// Pad the default size up to a multiple of this.
    #[arg(long)]
    pad_to_multiple: Option<usize>,
    /// Seed of the noise of noisy-mean and random.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Storage dtype: f32, bf16 or f16 (default: the source's).
    #[arg(long)]
    dtype: Option<StorageDtype>,
}

/// Expands, writes the directory and prints a JSON summary.
fn expand(args: ExpandArgs) -> Result<()> {
    use allam_model::expand::{VocabExpansion, expand_pretrained, save_expanded, tokenizer_size};
    let pretrained = load(&args.model, &DeviceArgs { device: "cpu".into() })?;
    let new = TextTokenizer::from_file(&args.tokenizer)?;
    let vocab_size = args.vocab_size.unwrap_or_else(|| {
        VocabExpansion::default_size(
            pretrained.model.config.vocab_size,
            tokenizer_size(new.inner()),
            args.pad_to_multiple,
        )
    });
    let plan = VocabExpansion {
        vocab_size,
        init: args.init,
        seed: args.seed,
    };
    let dtype = match args.dtype {
        Some(d) => d,
        None => pretrained.hf_config.storage_dtype()?.unwrap_or(StorageDtype::F32),
    };
    let (expanded, summary) = expand_pretrained(pretrained, new, &plan).with_context(|| {
        format!(
            "expanding {} to {}",
            args.model.display(),
            args.tokenizer.display()
        )
    })?;
    let options = SaveOptions {
        dtype,
        ..SaveOptions::default()
    };
    save_expanded(&expanded, &args.out, &options)
        .with_context(|| format!("writing {}", args.out.display()))?;
    // The old vocabulary size tells a later embeddings-only warm-up which rows are new.
    let summary_path = args.out.join("expansion.json");
    allam_data::report::write_atomic(&summary_path, serde_json::to_string_pretty(&summary)?.as_bytes())?;
    println!("{}", serde_json::to_value(&summary)?);
    eprintln!("wrote {}", args.out.display());
    Ok(())
}

/// Runs one `allam model` command.
pub fn run(command: ModelCommand) -> Result<()> {
    match command {
        ModelCommand::Info { model, check } => {
            let hf = allam_model::HfConfig::from_file(model.join("config.json"))?;
            let config = hf.to_llama_config()?;
            let mut info = serde_json::json!({
                "config": serde_json::to_value(&config)?,
                "parameters": config.num_parameters(),
                "storage_dtype": hf.storage_dtype()?.map(|d| d.hf_name()),
            });
            let bad = if check {
                let device = allam_model::device::select("cpu").map_err(anyhow::Error::msg)?;
                let (loaded, _) = allam_model::load_model(&model, &device)?;
                let bad = allam_model::checkpoint::non_finite_tensors(&loaded);
                info["non_finite_tensors"] = serde_json::json!(bad);
                bad
            } else {
                Vec::new()
            };
            println!("{info}");
            if !bad.is_empty() {
                anyhow::bail!(
                    "{}: {} tensor(s) hold NaN or infinite values: {}",
                    model.display(),
                    bad.len(),
                    bad.join(", ")
                );
            }
            Ok(())
        }
        ModelCommand::Expand(args) => expand(args),
        ModelCommand::Average {
            checkpoints,
            out,
            dtype,
        } => average(&checkpoints, &out, dtype),
    }
}

/// Writes the mean of `checkpoints` to `out` with the first checkpoint's tokenizer files.
fn average(checkpoints: &[PathBuf], out: &std::path::Path, dtype: Option<StorageDtype>) -> Result<()> {
    let device = allam_model::device::select("cpu").map_err(anyhow::Error::msg)?;
    let dirs: Vec<&std::path::Path> = checkpoints.iter().map(PathBuf::as_path).collect();
    let (model, hf_config) = allam_train::average_checkpoints(&dirs, &device)?;
    let dtype = match dtype {
        Some(d) => d,
        None => hf_config.storage_dtype()?.unwrap_or(StorageDtype::F32),
    };
    allam_train::checkpoint::save_hf(&model, &hf_config, out, Some(&checkpoints[0]), dtype)
        .with_context(|| format!("writing {}", out.display()))?;
    println!(
        "{}",
        serde_json::json!({"averaged": checkpoints.len(), "out": out.display().to_string()})
    );
    Ok(())
}
