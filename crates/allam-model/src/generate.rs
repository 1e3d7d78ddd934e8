//! Batched generation with a KV cache: greedy, temperature, top-k and top-p sampling.
use burn::tensor::Tensor;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::batch::{PaddingSide, TokenBatch};
use crate::cache::KvCache;
use crate::device::is_cpu;
use crate::error::{ModelError, Result};
use crate::model::Llama;

/// How to pick new tokens and when to stop.
#[derive(Clone, Debug, PartialEq)]
pub struct GenerationConfig {
    /// Most tokens to add per sequence.
    pub max_new_tokens: usize,
    /// Sampling temperature; `None` (or 0) means greedy decoding.
    pub temperature: Option<f32>,
    /// Keep only the `k` most likely tokens before sampling.
    pub top_k: Option<usize>,
    /// Keep the smallest set of tokens whose probability reaches `p` (nucleus sampling).
    pub top_p: Option<f32>,
    /// Seed of the sampler.
    pub seed: u64,
    /// Token ids that end a sequence (the model's `eos_token_id` when empty).
    pub eos_token_ids: Vec<u32>,
    /// Strings that end a sequence once the generated text contains one.
    pub stop_strings: Vec<String>,
}

impl GenerationConfig {
    /// Greedy decoding of up to `max_new_tokens` tokens.
    pub fn greedy(max_new_tokens: usize) -> Self {
        Self {
            max_new_tokens,
            temperature: None,
            top_k: None,
            top_p: None,
            seed: 0,
            eos_token_ids: Vec::new(),
            stop_strings: Vec::new(),
        }
    }

    /// Checks the sampling settings.
    pub fn validate(&self) -> Result<()> {
        if let Some(t) = self.temperature
            && !(t >= 0.0 && t.is_finite())
        {
            return Err(ModelError::Input(format!("temperature must be ≥ 0, got {t}")));
        }
        if self.top_k == Some(0) {
            return Err(ModelError::Input("top_k must be ≥ 1".into()));
        }
        if let Some(p) = self.top_p
            && !(p > 0.0 && p <= 1.0)
        {
            return Err(ModelError::Input(format!("top_p must be in (0, 1], got {p}")));
        }
        Ok(())
    }

    fn is_greedy(&self) -> bool {
        self.temperature.is_none_or(|t| t == 0.0)
    }
}

/// Why a sequence stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// An end-of-sequence token was produced (it is included in the ids).
    Eos,
    /// A stop string appeared in the text.
    StopString,
    /// `max_new_tokens` were produced.
    Length,
}

/// What generation produced for one prompt.
#[derive(Clone, Debug, PartialEq)]
pub struct GenerationOutput {
    /// The new token ids.
    pub ids: Vec<u32>,
    /// The new text (filled by callers that have a tokenizer).
    pub text: String,
    /// Why it stopped.
    pub finish_reason: FinishReason,
}

/// Chooses the next token from one row of logits.
pub struct Sampler {
    config: GenerationConfig,
    rng: StdRng,
}

impl Sampler {
    /// A sampler seeded with `config.seed`.
    pub fn new(config: &GenerationConfig) -> Self {
        Self {
            config: config.clone(),
            rng: StdRng::seed_from_u64(config.seed),
        }
    }

    /// The next token for `logits` (one row over the vocabulary).
    pub fn sample(&mut self, logits: &[f32]) -> u32 {
        if self.config.is_greedy() {
            return argmax(logits);
        }
        let t = self.config.temperature.unwrap_or(1.0);
        // Candidates sorted by logit, most likely first (stable: ties keep id order).
        let mut order: Vec<u32> = (0..logits.len() as u32).collect();
        order.sort_by(|&a, &b| logits[b as usize].total_cmp(&logits[a as usize]));
        if let Some(k) = self.config.top_k {
            order.truncate(k.max(1));
        }
        let max = logits[order[0] as usize] / t;
        let mut probs: Vec<f32> = order
            .iter()
            .map(|&i| (logits[i as usize] / t - max).exp())
            .collect();
        let total: f32 = probs.iter().sum();
        probs.iter_mut().for_each(|p| *p /= total);
        if let Some(top_p) = self.config.top_p {
            let mut cumulative = 0.0;
            let keep = probs
                .iter()
                .position(|p| {
                    cumulative += p;
                    cumulative >= top_p
                })
                .map_or(probs.len(), |i| i + 1);
            probs.truncate(keep);
            order.truncate(keep);
        }
        let total: f32 = probs.iter().sum();
        let mut draw = self.rng.random::<f32>() * total;
        for (p, id) in probs.iter().zip(&order) {
            draw -= p;
            if draw <= 0.0 {
                return *id;
            }
        }
        *order.last().expect("at least one candidate")
    }
}

/// Index of the largest value (the first one on ties, like `torch.argmax`).
pub fn argmax(values: &[f32]) -> u32 {
    let mut best = 0;
    for (i, v) in values.iter().enumerate() {
        if *v > values[best] {
            best = i;
        }
    }
    best as u32
}

/// Generates continuations of several prompts at once (left-padded, one KV cache).
///
/// `on_token(row, id)` sees every new token as it is chosen and returns `true` to stop that row
/// (used for stop strings and streaming).
pub fn generate(
    model: &Llama,
    prompts: &[Vec<u32>],
    config: &GenerationConfig,
    mut on_token: impl FnMut(usize, u32) -> bool,
) -> Result<Vec<GenerationOutput>> {
    config.validate()?;
    if prompts.is_empty() || prompts.iter().any(Vec::is_empty) {
        return Err(ModelError::Input("every prompt needs at least one token".into()));
    }
    let eos = if config.eos_token_ids.is_empty() {
        model.config.eos_token_ids.clone()
    } else {
        config.eos_token_ids.clone()
    };
    // Padding is never attended to; any in-vocabulary id will do.
    let vocab = model.config.vocab_size as u32;
    let pad = [
        model.config.pad_token_id,
        model.config.eos_token_ids.first().copied(),
    ]
    .into_iter()
    .flatten()
    .find(|id| *id < vocab)
    .unwrap_or(0);
    let rows = prompts.len();
    let prompt_len = prompts.iter().map(Vec::len).max().unwrap_or(0);
    let mut cache = KvCache::new(
        &model.config,
        rows,
        prompt_len + config.max_new_tokens,
        &model.device(),
    );
    let mut outputs: Vec<GenerationOutput> = (0..rows)
        .map(|_| GenerationOutput {
            ids: Vec::new(),
            text: String::new(),
            finish_reason: FinishReason::Length,
        })
        .collect();
    if config.max_new_tokens == 0 {
        return Ok(outputs);
    }
    let mut samplers: Vec<Sampler> = (0..rows)
        .map(|r| {
            let mut c = config.clone();
            c.seed = config.seed.wrapping_add(r as u64);
            Sampler::new(&c)
        })
        .collect();
    let mut done = vec![false; rows];
    let mut batch = TokenBatch::padded(prompts, pad, PaddingSide::Left);
    let mut positions: Vec<u32> = prompts.iter().map(|p| p.len() as u32).collect();
    for step in 0..config.max_new_tokens {
        let logits = model.forward_cached(&batch, &mut cache)?;
        let [_, len, vocab] = logits.dims();
        let last = logits.narrow(1, len - 1, 1).reshape([rows, vocab]);
        let chosen = choose_next(last, config, &mut samplers, &done)?;
        let mut next = vec![pad; rows];
        for row in 0..rows {
            if done[row] {
                continue;
            }
            let id = chosen[row];
            next[row] = id;
            outputs[row].ids.push(id);
            if eos.contains(&id) {
                done[row] = true;
                outputs[row].finish_reason = FinishReason::Eos;
            } else if on_token(row, id) {
                done[row] = true;
                outputs[row].finish_reason = FinishReason::StopString;
            }
        }
        if done.iter().all(|d| *d) || step + 1 == config.max_new_tokens {
            break;
        }
        batch = TokenBatch {
            rows,
            len: 1,
            input_ids: next,
            position_ids: positions.clone(),
            document_ids: None,
            attention_mask: Some(done.iter().map(|d| !d).collect()),
        };
        positions.iter_mut().for_each(|p| *p += 1);
    }
    Ok(outputs)
}

/// The next token of every row from its last logits `[rows, vocab]` (rows that are `done` get
/// a placeholder). Greedy decoding on a GPU takes the arg-max there and reads back only `rows`
/// ids; on the CPU, and when sampling, the logits are read and [`Sampler`] chooses.
fn choose_next(
    last: Tensor<2>,
    config: &GenerationConfig,
    samplers: &mut [Sampler],
    done: &[bool],
) -> Result<Vec<u32>> {
    let read_error = |e| ModelError::Input(format!("cannot read logits: {e:?}"));
    let not_finite = || {
        ModelError::Input(
            "the logits are not finite (NaN or infinite): the weights hold such values, or \
             overflow (check them with `allam model info --model DIR --check`)"
                .into(),
        )
    };
    if config.is_greedy() && !is_cpu(&last.device()) {
        // The arg-max and a flag for non-finite logits, read back together.
        let bad = last.clone().is_nan().bool_or(last.clone().is_inf()).any().int();
        let ids = Tensor::cat(vec![last.argmax(1).reshape([-1]), bad], 0)
            .into_data()
            .convert::<i64>()
            .try_into_vec::<i64>()
            .map_err(read_error)?;
        let (flag, ids) = ids.split_last().expect("rows + 1 values");
        if *flag != 0 {
            return Err(not_finite());
        }
        return Ok(ids.iter().map(|&i| i as u32).collect());
    }
    let [rows, vocab] = last.dims();
    let host = last
        .into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .map_err(read_error)?;
    let mut next = Vec::with_capacity(rows);
    for row in 0..rows {
        let logits = &host[row * vocab..(row + 1) * vocab];
        next.push(match done[row] {
            true => 0,
            false if logits.iter().any(|v| !v.is_finite()) => return Err(not_finite()),
            false => samplers[row].sample(logits),
        });
    }
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(t: Option<f32>, k: Option<usize>, p: Option<f32>) -> GenerationConfig {
        GenerationConfig {
            temperature: t,
            top_k: k,
            top_p: p,
            ..GenerationConfig::greedy(1)
        }
    }

    #[test]
    fn greedy_takes_the_first_maximum() {
        assert_eq!(argmax(&[0.1, 3.0, 3.0, -1.0]), 1);
        assert_eq!(
            Sampler::new(&config(None, None, None)).sample(&[0.0, 2.0, 1.0]),
            1
        );
    }

    #[test]
    fn top_k_one_is_greedy_and_top_p_restricts_the_support() {
        let logits = [1.0, 3.0, 2.9, -5.0];
        let mut s = Sampler::new(&config(Some(1.0), Some(1), None));
        assert!((0..50).all(|_| s.sample(&logits) == 1));
        // p(1) ≈ 0.51, p(2) ≈ 0.46: top_p 0.9 keeps exactly {1, 2}.
        let mut s = Sampler::new(&config(Some(1.0), None, Some(0.9)));
        let draws: Vec<u32> = (0..400).map(|_| s.sample(&logits)).collect();
        assert!(draws.iter().all(|d| *d == 1 || *d == 2));
        assert!(draws.contains(&1) && draws.contains(&2));
    }

    #[test]
    fn sampling_is_reproducible_for_a_seed() {
        let logits: Vec<f32> = (0..50).map(|i| (i as f32 * 0.37).sin()).collect();
        let run = |seed| {
            let mut c = config(Some(0.8), Some(20), Some(0.95));
            c.seed = seed;
            let mut s = Sampler::new(&c);
            (0..20).map(|_| s.sample(&logits)).collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
    }

    #[test]
    fn bad_settings_are_refused() {
        assert!(config(Some(-1.0), None, None).validate().is_err());
        assert!(config(None, Some(0), None).validate().is_err());
        assert!(config(None, None, Some(1.5)).validate().is_err());
    }
}
