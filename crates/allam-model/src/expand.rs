//! Growing a model's vocabulary to an expanded tokenizer (ALLaM, arXiv 2407.15390, §3.2): new rows
//! of the embedding matrix (and of the output head when it is untied) are initialised from the
//! base model's own rows, and every old row is kept bit for bit, so that for any input of old ids
//! the logits over the old vocabulary are exactly the old logits.
//!
//! For a new id the row is chosen as follows:
//! - **new piece** (in the new tokenizer's model vocabulary): its surface form (the piece string,
//!   which already carries `▁` or the byte-level alphabet) is split by the *base* tokenizer's model
//!   — the normalizer and pre-tokenizer are bypassed, as the piece is already normalized — and the
//!   row comes from the base rows of those pieces (byte-fallback pieces `<0xNN>` are real rows);
//!   special tokens of the base (`<unk>`, `<s>`, ...) are left out of the mean;
//! - **fallback** (an added or special token, an id with no token, or a piece whose split is empty
//!   or only special tokens): the mean of all old rows stands in for the pieces' mean;
//! - **padding** (ids at or beyond the new tokenizer's size, when the matrix is padded to a
//!   multiple): the mean of all old rows, whatever the [`RowInit`].
use std::path::Path;
use std::str::FromStr;

use burn::module::Param;
use burn::tensor::{Tensor, TensorData};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use tokenizers::{Model, Tokenizer};

use crate::checkpoint::{SaveOptions, save_model};
use crate::error::{ModelError, Result};
use crate::model::Llama;
use crate::pretrained::{PretrainedModel, SUPPORT_FILES};
use crate::text::TextTokenizer;

/// The noise of [`RowInit::NoisyMean`] as a fraction of the old rows' standard deviation, when the
/// caller does not choose one (`--init noisy-mean`).
pub const DEFAULT_NOISE_FRACTION: f32 = 0.1;

/// How the rows of new tokens are initialised. Padding rows are always the mean of all old rows.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RowInit {
    /// The paper's: the mean of the base rows of the pieces the base tokenizer splits the new
    /// token's surface form into.
    Mean,
    /// [`RowInit::Mean`] plus Gaussian noise `N(0, (std_fraction · σ)²)` on every entry, where `σ`
    /// is the standard deviation of all entries of the old matrix.
    NoisyMean {
        /// The noise's standard deviation as a fraction of `σ`.
        std_fraction: f32,
    },
    /// Every entry `N(0, σ²)`, `σ` the standard deviation of all entries of the old matrix (the
    /// split of the token is not used).
    Random,
}

impl FromStr for RowInit {
    type Err = ModelError;

    /// `mean`, `noisy-mean` (with [`DEFAULT_NOISE_FRACTION`]) or `random`.
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "mean" => Ok(Self::Mean),
            "noisy-mean" => Ok(Self::NoisyMean {
                std_fraction: DEFAULT_NOISE_FRACTION,
            }),
            "random" => Ok(Self::Random),
            other => Err(ModelError::Input(format!(
                "unknown row initialisation `{other}` (expected mean, noisy-mean or random)"
            ))),
        }
    }
}

/// What to grow the vocabulary to and how.
#[derive(Clone, Debug)]
pub struct VocabExpansion {
    /// Rows of the expanded matrices: at least the old vocabulary and the new tokenizer's size.
    pub vocab_size: usize,
    /// How rows of new tokens are initialised.
    pub init: RowInit,
    /// Seed of the noise of `noisy-mean` and `random`.
    pub seed: u64,
}

impl VocabExpansion {
    /// The default target: the new tokenizer's size (never less than the old vocabulary), rounded
    /// up to a multiple of `pad_to_multiple` when given.
    pub fn default_size(old_vocab: usize, tokenizer_size: usize, pad_to_multiple: Option<usize>) -> usize {
        let size = old_vocab.max(tokenizer_size);
        match pad_to_multiple {
            Some(m) if m > 1 => size.div_ceil(m).saturating_mul(m),
            _ => size,
        }
    }
}

/// What an expansion did, row by row kind (for reports and the CLI).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ExpansionSummary {
    /// Rows before.
    pub old_vocab_size: usize,
    /// Rows after.
    pub new_vocab_size: usize,
    /// The new tokenizer's size (largest id + 1).
    pub tokenizer_size: usize,
    /// New rows initialised from the pieces of their token.
    pub from_pieces: usize,
    /// New rows of tokens without usable pieces (added tokens, empty splits): mean of all rows.
    pub fallback: usize,
    /// Padding rows beyond the tokenizer: mean of all rows.
    pub padding: usize,
    /// Whether an untied output head was grown too.
    pub untied_head: bool,
}

/// Where one new row comes from.
#[derive(Clone, Debug, PartialEq)]
enum Source {
    /// Base ids of the pieces of the token's surface form (non-empty).
    Pieces(Vec<u32>),
    /// A token without usable pieces.
    Fallback,
    /// Beyond the tokenizer.
    Padding,
}

/// The size of a tokenizer's id space: its largest id (added tokens included) plus one.
pub fn tokenizer_size(tokenizer: &Tokenizer) -> usize {
    tokenizer
        .get_vocab(true)
        .values()
        .max()
        .map_or(0, |&id| id as usize + 1)
}

/// Grows `model`'s embedding (and untied head) to `plan.vocab_size` rows for the tokenizer `new`,
/// which must extend `base` (the model's own tokenizer): ids both define name the same token.
///
/// The most rows an expansion adds beyond what the tokenizer needs (padding to a multiple).
pub const MAX_PADDING_ROWS: usize = 1 << 16;

/// Errors when the target is smaller than the old vocabulary or than `new`'s size, or pads more
/// than [`MAX_PADDING_ROWS`] beyond it, when `new`
/// renames a base id, or when `base` splits a piece into ids the model has no row for.
pub fn expand_vocab(
    model: Llama,
    base: &TextTokenizer,
    new: &TextTokenizer,
    plan: &VocabExpansion,
) -> Result<(Llama, ExpansionSummary)> {
    let old_vocab = model.config.vocab_size;
    let new_size = tokenizer_size(new.inner());
    if plan.vocab_size < old_vocab {
        return Err(ModelError::Input(format!(
            "cannot shrink the vocabulary: the model has {old_vocab} rows, {} were asked for",
            plan.vocab_size
        )));
    }
    if plan.vocab_size < new_size {
        return Err(ModelError::Tokenizer {
            path: new.path().to_path_buf(),
            message: format!(
                "the tokenizer has {new_size} ids but only {} rows were asked for",
                plan.vocab_size
            ),
        });
    }
    let padding = plan.vocab_size - old_vocab.max(new_size);
    if padding > MAX_PADDING_ROWS {
        return Err(ModelError::Input(format!(
            "{} rows asked for, {padding} beyond the {} the tokenizer and model need: at most \
             {MAX_PADDING_ROWS} padding rows (pad to a multiple such as 64 or 128)",
            plan.vocab_size,
            old_vocab.max(new_size)
        )));
    }
    check_extends(base, new, old_vocab)?;
    let sources = (old_vocab..plan.vocab_size)
        .map(|id| source(id, base, new, new_size, old_vocab))
        .collect::<Result<Vec<_>>>()?;
    let mut rng = StdRng::seed_from_u64(plan.seed);
    let mut model = model;
    let device = model.device();

    let [_, hidden] = model.embed_tokens.weight.dims();
    let embed = host(model.embed_tokens.weight.val(), "model.embed_tokens.weight")?;
    let embed = grow(&embed, old_vocab, hidden, &sources, plan.init, &mut rng);
    model.embed_tokens.weight = Param::from_tensor(Tensor::from_data(
        TensorData::new(embed, [plan.vocab_size, hidden]),
        &device,
    ));
    if let Some(head) = &mut model.lm_head {
        // Burn holds the head `[hidden, vocab]`; its rows per token are the columns.
        let rows = host(head.weight.val().transpose(), "lm_head.weight")?;
        let rows = grow(&rows, old_vocab, hidden, &sources, plan.init, &mut rng);
        let rows = Tensor::<2>::from_data(TensorData::new(rows, [plan.vocab_size, hidden]), &device);
        head.weight = Param::from_tensor(rows.transpose());
    }
    model.config.vocab_size = plan.vocab_size;

    let count = |f: fn(&Source) -> bool| sources.iter().filter(|s| f(s)).count();
    let summary = ExpansionSummary {
        old_vocab_size: old_vocab,
        new_vocab_size: plan.vocab_size,
        tokenizer_size: new_size,
        from_pieces: count(|s| matches!(s, Source::Pieces(_))),
        fallback: count(|s| matches!(s, Source::Fallback)),
        padding: count(|s| matches!(s, Source::Padding)),
        untied_head: model.lm_head.is_some(),
    };
    Ok((model, summary))
}

/// [`expand_vocab`] on a loaded directory: the base tokenizer is the directory's, and the result
/// carries `new` as its tokenizer (so [`save_expanded`] writes it).
pub fn expand_pretrained(
    pretrained: PretrainedModel,
    new: TextTokenizer,
    plan: &VocabExpansion,
) -> Result<(PretrainedModel, ExpansionSummary)> {
    let PretrainedModel {
        model,
        hf_config,
        tokenizer,
        dir,
    } = pretrained;
    let base = tokenizer.ok_or_else(|| ModelError::Tokenizer {
        path: dir.join("tokenizer.json"),
        message: "the model directory has no tokenizer.json: the base tokenizer is needed to \
                  split new tokens into base pieces"
            .into(),
    })?;
    let (model, summary) = expand_vocab(model, &base, &new, plan)?;
    let pretrained = PretrainedModel {
        model,
        hf_config,
        tokenizer: Some(new),
        dir,
    };
    Ok((pretrained, summary))
}

/// Files that describe the tokenizer: taken from the new tokenizer's directory. `tokenizer.model`
/// (a SentencePiece model) is never taken from the old model, as it would not match.
const TOKENIZER_FILES: &[&str] = &[
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "tokenizer.model",
];

/// Writes an expanded model as a Hugging Face directory (`config.json` with the new `vocab_size`)
/// with its new `tokenizer.json`, and `tokenizer_config.json` / `special_tokens_map.json` from
/// beside it (else the model directory's); the other support files come from the model directory.
pub fn save_expanded(pretrained: &PretrainedModel, out: &Path, options: &SaveOptions) -> Result<()> {
    let tokenizer = pretrained.tokenizer()?;
    save_model(&pretrained.model, &pretrained.hf_config, out, options)?;
    let tokenizer_dir = tokenizer.path().parent().unwrap_or(Path::new("."));
    for &name in SUPPORT_FILES {
        let src = if name == "tokenizer.json" {
            tokenizer.path().to_path_buf()
        } else if !TOKENIZER_FILES.contains(&name) {
            pretrained.dir.join(name)
        } else if tokenizer_dir.join(name).exists() {
            tokenizer_dir.join(name)
        } else if name == "tokenizer.model" {
            continue;
        } else {
            pretrained.dir.join(name)
        };
        copy_file(&src, &out.join(name))?;
    }
    Ok(())
}

/// Copies `src` to `dst` atomically, if `src` exists and is not `dst`.
fn copy_file(src: &Path, dst: &Path) -> Result<()> {
    if !src.exists() {
        return Ok(());
    }
    if let (Ok(a), Ok(b)) = (src.canonicalize(), dst.canonicalize())
        && a == b
    {
        return Ok(());
    }
    allam_io::copy_atomic(src, dst).map_err(|e| ModelError::io(dst, e))
}

/// Refuses a `new` tokenizer that gives a base id (one the model has a row for) another token.
fn check_extends(base: &TextTokenizer, new: &TextTokenizer, old_vocab: usize) -> Result<()> {
    let shared = tokenizer_size(base.inner()).min(old_vocab);
    for id in 0..shared as u32 {
        let (was, now) = (base.inner().id_to_token(id), new.inner().id_to_token(id));
        if let Some(was) = was
            && now.as_deref() != Some(was.as_str())
        {
            return Err(ModelError::Tokenizer {
                path: new.path().to_path_buf(),
                message: format!(
                    "id {id} is {now:?} here but {was:?} in the base tokenizer {}: an expanded \
                     tokenizer must keep every base id",
                    base.path().display()
                ),
            });
        }
    }
    Ok(())
}

/// Where the row of new `id` comes from.
fn source(
    id: usize,
    base: &TextTokenizer,
    new: &TextTokenizer,
    new_size: usize,
    old_vocab: usize,
) -> Result<Source> {
    if id >= new_size {
        return Ok(Source::Padding);
    }
    let id = id as u32;
    if new.inner().get_added_tokens_decoder().contains_key(&id) {
        return Ok(Source::Fallback);
    }
    let Some(piece) = new.inner().id_to_token(id) else {
        return Ok(Source::Fallback);
    };
    let base_special = base.inner().get_added_tokens_decoder();
    let tokens = base
        .inner()
        .get_model()
        .tokenize(&piece)
        .map_err(|e| ModelError::Tokenizer {
            path: base.path().to_path_buf(),
            message: format!("cannot split new token {id} ({piece:?}) into base pieces: {e}"),
        })?;
    let mut ids = Vec::with_capacity(tokens.len());
    for token in tokens {
        if base_special.get(&token.id).is_some_and(|t| t.special) {
            continue;
        }
        if token.id as usize >= old_vocab {
            return Err(ModelError::Tokenizer {
                path: base.path().to_path_buf(),
                message: format!(
                    "splits new token {id} ({piece:?}) into base id {} ({:?}), but the model has \
                     only {old_vocab} rows",
                    token.id, token.value
                ),
            });
        }
        ids.push(token.id);
    }
    Ok(if ids.is_empty() {
        Source::Fallback
    } else {
        Source::Pieces(ids)
    })
}

/// A matrix's values, row-major, as f32 on the host.
fn host(tensor: Tensor<2>, name: &str) -> Result<Vec<f32>> {
    tensor
        .into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .map_err(|e| ModelError::Input(format!("cannot read `{name}` as f32: {e:?}")))
}

/// `old` (`[old_rows, hidden]`, row-major) followed by one new row per source.
fn grow(
    old: &[f32],
    old_rows: usize,
    hidden: usize,
    sources: &[Source],
    init: RowInit,
    rng: &mut StdRng,
) -> Vec<f32> {
    let all_mean = mean_of_rows(old, hidden, 0..old_rows as u32);
    let sigma = std_of(old);
    let mut out = Vec::with_capacity((old_rows + sources.len()) * hidden);
    out.extend_from_slice(old);
    for source in sources {
        let row: Vec<f32> = match (source, init) {
            (Source::Padding, _) => all_mean.clone(),
            (_, RowInit::Random) => (0..hidden).map(|_| gaussian(rng, sigma)).collect(),
            (source, init) => {
                let mean = match source {
                    Source::Pieces(ids) => mean_of_rows(old, hidden, ids.iter().copied()),
                    _ => all_mean.clone(),
                };
                match init {
                    RowInit::NoisyMean { std_fraction } => {
                        let s = sigma * f64::from(std_fraction);
                        mean.iter().map(|&m| m + gaussian(rng, s)).collect()
                    }
                    _ => mean,
                }
            }
        };
        out.extend_from_slice(&row);
    }
    out
}

/// The mean of the given rows of a row-major `[_, hidden]` matrix (accumulated in f64).
fn mean_of_rows(matrix: &[f32], hidden: usize, rows: impl IntoIterator<Item = u32>) -> Vec<f32> {
    let mut sum = vec![0f64; hidden];
    let mut n = 0usize;
    for r in rows {
        let row = &matrix[r as usize * hidden..(r as usize + 1) * hidden];
        sum.iter_mut().zip(row).for_each(|(s, &v)| *s += f64::from(v));
        n += 1;
    }
    sum.iter().map(|s| (s / n.max(1) as f64) as f32).collect()
}

/// The population standard deviation of all values.
fn std_of(values: &[f32]) -> f64 {
    let n = values.len().max(1) as f64;
    let mean = values.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
    let var = values.iter().map(|&v| (f64::from(v) - mean).powi(2)).sum::<f64>() / n;
    var.sqrt()
}

/// One draw of `N(0, std²)` (Box–Muller).
fn gaussian(rng: &mut StdRng, std: f64) -> f32 {
    let u1 = 1.0 - rng.random::<f64>(); // (0, 1]: the log is finite
    let u2 = rng.random::<f64>();
    ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos() * std) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_names_parse_and_unknown_ones_are_refused() {
        assert_eq!("mean".parse::<RowInit>().unwrap(), RowInit::Mean);
        assert_eq!("random".parse::<RowInit>().unwrap(), RowInit::Random);
        assert!(matches!(
            "noisy-mean".parse::<RowInit>().unwrap(),
            RowInit::NoisyMean { .. }
        ));
        let err = "avg".parse::<RowInit>().unwrap_err().to_string();
        assert!(err.contains("avg") && err.contains("noisy-mean"), "{err}");
    }

    #[test]
    fn default_size_pads_and_never_shrinks() {
        assert_eq!(VocabExpansion::default_size(96, 110, None), 110);
        assert_eq!(VocabExpansion::default_size(96, 110, Some(64)), 128);
        assert_eq!(VocabExpansion::default_size(96, 90, None), 96);
        assert_eq!(VocabExpansion::default_size(96, 96, Some(1)), 96);
    }

    #[test]
    fn grow_keeps_old_rows_and_fills_new_ones() {
        // 3 rows of width 2
        let old = [1.0, 2.0, 3.0, 4.0, 5.0, 9.0];
        let sources = [Source::Pieces(vec![0, 2]), Source::Fallback, Source::Padding];
        let mut rng = StdRng::seed_from_u64(0);
        let out = grow(&old, 3, 2, &sources, RowInit::Mean, &mut rng);
        assert_eq!(&out[..6], &old);
        assert_eq!(&out[6..8], &[3.0, 5.5]);
        assert_eq!(&out[8..10], &[3.0, 5.0]);
        assert_eq!(&out[10..12], &[3.0, 5.0]);

        let random = grow(&old, 3, 2, &sources, RowInit::Random, &mut rng);
        assert_eq!(&random[..6], &old);
        assert_ne!(&random[6..8], &[3.0, 5.5]);
        assert_eq!(&random[10..12], &[3.0, 5.0], "padding stays the mean");
    }

    #[test]
    fn gaussian_has_the_asked_spread() {
        let mut rng = StdRng::seed_from_u64(7);
        let draws: Vec<f32> = (0..20_000).map(|_| gaussian(&mut rng, 2.0)).collect();
        let mean = draws.iter().map(|&v| f64::from(v)).sum::<f64>() / draws.len() as f64;
        assert!(mean.abs() < 0.05, "{mean}");
        assert!((std_of(&draws) - 2.0).abs() < 0.05);
    }
}
