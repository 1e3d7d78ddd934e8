//! `allam tokenizer ...`: learn an Arabic vocabulary, merge it, and measure tokenizers.
use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};

use allam_tokenizer::{
    ArabicNormalization, Corpus, ExpansionConfig, MergePriority, expand_files, load_tokenizer, measure,
    render_table,
};

/// Tokenizer-expansion commands.
#[derive(Debug, Subcommand)]
pub enum TokenizerCommand {
    /// Learn an Arabic BPE vocabulary from a corpus and merge it into a base tokenizer.json, keeping every
    /// base id; writes OUT/tokenizer.json, OUT/tokenizer_config.json (if the base has one) and
    /// OUT/expansion-report.json.
    Expand(ExpandArgs),
    /// Tokens per word, tokens per byte and byte-fallback rate, by script, for tokenizers on texts.
    Stats(StatsArgs),
}

/// Arguments of `allam tokenizer expand`.
#[derive(Debug, Args)]
pub struct ExpandArgs {
    /// The base tokenizer.json: a byte-fallback BPE (Llama-2/Mistral kind) or a byte-level BPE
    /// (GPT-2/Llama-3/Qwen2/SmolLM2 kind).
    #[arg(long)]
    pub base: PathBuf,
    /// Corpus files: .txt (one document per line) or .jsonl, optionally .gz / .zst.
    #[arg(long, num_args = 1.., required = true)]
    pub corpus: Vec<PathBuf>,
    /// JSON field holding the text in .jsonl files.
    #[arg(long, default_value = "text")]
    pub field: String,
    /// Vocabulary size to end at (base + new Arabic pieces).
    #[arg(long)]
    pub vocab_size: u32,
    /// Pad the vocabulary up to a multiple of this with reserved entries.
    #[arg(long)]
    pub pad_to_multiple: Option<u32>,
    /// Output directory.
    #[arg(long)]
    pub out: PathBuf,
    /// Every Arabic normalisation below.
    #[arg(long)]
    pub normalize_arabic: bool,
    /// Remove tatweel (U+0640).
    #[arg(long)]
    pub remove_tatweel: bool,
    /// Remove harakat and Quranic marks.
    #[arg(long)]
    pub strip_diacritics: bool,
    /// Write أ إ آ ٱ as ا.
    #[arg(long)]
    pub unify_alef: bool,
    /// Write ى as ي.
    #[arg(long)]
    pub unify_ya: bool,
    /// Keep a byte-level base's pre-tokenizer as it is. By default its regexes are rewritten so that
    /// Arabic combining marks (harakat, Quranic marks) stay with the letters they follow, for training and
    /// in the output; text without those marks is split exactly as by the base. Byte-fallback bases are
    /// never changed.
    #[arg(long)]
    pub keep_base_pre_tokenizer: bool,
    /// Where the learned merges go relative to the base merges.
    #[arg(long, value_enum, default_value_t = Priority::ArabicFirst)]
    pub priority: Priority,
    /// Minimum pair frequency for the BPE trainer.
    #[arg(long, default_value_t = 2)]
    pub min_frequency: u64,
    /// Held-out texts to measure fertility on (same --field); default: the leading corpus documents.
    #[arg(long, num_args = 1..)]
    pub eval: Vec<PathBuf>,
    /// Documents to measure fertility on.
    #[arg(long, default_value_t = 2000)]
    pub eval_documents: usize,
}

/// Merge priority (see `allam_tokenizer::MergePriority`).
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Priority {
    /// Learned merges first; base merges after them.
    ArabicFirst,
    /// Base merges first; learned merges appended.
    AfterBase,
}

/// Arguments of `allam tokenizer stats`.
#[derive(Debug, Args)]
pub struct StatsArgs {
    /// A tokenizer.json (repeat for several).
    #[arg(long, required = true)]
    pub tokenizer: Vec<PathBuf>,
    /// Text files: .txt or .jsonl, optionally .gz / .zst.
    #[arg(long, num_args = 1.., required = true)]
    pub text: Vec<PathBuf>,
    /// JSON field holding the text in .jsonl files.
    #[arg(long, default_value = "text")]
    pub field: String,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Runs one `allam tokenizer` command.
pub fn run(command: TokenizerCommand) -> anyhow::Result<()> {
    match command {
        TokenizerCommand::Expand(args) => expand(args),
        TokenizerCommand::Stats(args) => stats(args),
    }
}

fn expand(args: ExpandArgs) -> anyhow::Result<()> {
    let normalization = if args.normalize_arabic {
        ArabicNormalization::all()
    } else {
        ArabicNormalization {
            remove_tatweel: args.remove_tatweel,
            strip_diacritics: args.strip_diacritics,
            unify_alef: args.unify_alef,
            unify_ya: args.unify_ya,
        }
    };
    let mut config = ExpansionConfig::new(args.vocab_size);
    config.pad_to_multiple = args.pad_to_multiple;
    config.normalization = normalization;
    config.arabic_marks_pre_tokenizer = !args.keep_base_pre_tokenizer;
    config.priority = match args.priority {
        Priority::ArabicFirst => MergePriority::ArabicFirst,
        Priority::AfterBase => MergePriority::AfterBase,
    };
    config.min_frequency = args.min_frequency;
    config.eval_documents = args.eval_documents;
    if !args.eval.is_empty() {
        config.eval_corpus = Some(Corpus::new(&args.eval, &args.field));
    }
    let corpus = Corpus::new(&args.corpus, &args.field);
    let expansion = expand_files(&args.base, &corpus, &config, &args.out).with_context(|| {
        format!(
            "expanding {} to {} pieces into {}",
            args.base.display(),
            args.vocab_size,
            args.out.display()
        )
    })?;
    let r = &expansion.report;
    let f = r.fertility.arabic_tokens_per_word;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "vocabulary {} -> {} ({} new Arabic pieces, {} reserved), {:.1} s",
        r.base_vocab_size, r.vocab_size, r.new_pieces, r.padding, r.seconds
    )?;
    writeln!(
        out,
        "Arabic tokens/word: base {:.3}, Arabic-only {:.3}, expanded {:.3} (x{:.3} of Arabic-only)",
        f.base, f.arabic_only, f.expanded, f.expanded_over_arabic_only
    )?;
    writeln!(out, "pre-tokenizer: {}", r.pre_tokenizer.note)?;
    write!(out, "{}", r.fertility_table())?;
    writeln!(out, "wrote {}", args.out.display())?;
    Ok(())
}

fn stats(args: StatsArgs) -> anyhow::Result<()> {
    let corpus = Corpus::new(&args.text, &args.field);
    let mut all = Vec::new();
    for path in &args.tokenizer {
        let tokenizer =
            load_tokenizer(path).with_context(|| format!("loading tokenizer {}", path.display()))?;
        let stats = measure(&path.display().to_string(), &tokenizer, corpus.documents())
            .with_context(|| format!("measuring {}", path.display()))?;
        all.push(stats);
    }
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&all)?)?;
    } else {
        write!(out, "{}", render_table(&all))?;
    }
    Ok(())
}
