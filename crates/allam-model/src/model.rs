//! The whole decoder: embeddings, layers, final norm and output head.
use burn::module::Module;
use burn::nn::{Embedding, EmbeddingConfig, Initializer, Linear, RmsNorm, RmsNormConfig};
use burn::tensor::{DType, Device, Int, Tensor, TensorData};

use crate::batch::{MASKED, TokenBatch};
use crate::cache::KvCache;
use crate::config::LlamaConfig;
use crate::cpu::{matmul_columns, project};
use crate::error::{ModelError, Result};
use crate::layer::DecoderLayer;
use crate::mlp::linear;
use crate::precision::{cast_to, product_dtype, rms_norm, to_f32};
use crate::rope::RotaryTables;

/// A Llama-family causal language model (`LlamaForCausalLM`, `MistralForCausalLM`,
/// `Qwen2ForCausalLM`).
///
/// # Shapes
/// - input: a [`TokenBatch`] of `[rows, len]` ids
/// - output: logits `[rows, len, vocab_size]`
#[derive(Module, Debug)]
pub struct Llama {
    /// `model.embed_tokens`: `[vocab_size, hidden_size]`.
    pub embed_tokens: Embedding,
    /// `model.layers`.
    pub layers: Vec<DecoderLayer>,
    /// `model.norm`.
    pub norm: RmsNorm,
    /// `lm_head`, absent when the head is tied to `embed_tokens`.
    pub lm_head: Option<Linear>,
    /// The architecture.
    #[module(skip)]
    pub config: LlamaConfig,
}

impl LlamaConfig {
    /// A randomly initialised model: weights `N(0, initializer_range)`, norms at one.
    pub fn init(&self, device: &Device) -> Llama {
        let init = Initializer::Normal {
            mean: 0.0,
            std: self.initializer_range,
        };
        Llama {
            embed_tokens: EmbeddingConfig::new(self.vocab_size, self.hidden_size)
                .with_initializer(init.clone())
                .init(device),
            layers: (0..self.num_hidden_layers)
                .map(|_| DecoderLayer::init(self, &init, device))
                .collect(),
            norm: RmsNormConfig::new(self.hidden_size)
                .with_epsilon(self.rms_norm_eps)
                .init(device),
            lm_head: (!self.tie_word_embeddings)
                .then(|| linear(self.hidden_size, self.vocab_size, false, &init, device)),
            config: self.clone(),
        }
    }
}

impl Llama {
    /// The device the weights live on.
    pub fn device(&self) -> Device {
        self.embed_tokens.weight.val().device()
    }

    /// Logits of every position.
    pub fn forward(&self, batch: &TokenBatch) -> Result<Tensor<3>> {
        Ok(self.logits(self.hidden_states(batch)?))
    }

    /// Final hidden states (after the last norm) of every position: `[rows, len, hidden]`.
    pub fn hidden_states(&self, batch: &TokenBatch) -> Result<Tensor<3>> {
        let (mut x, pass) = self.layer_pass(batch)?;
        for index in 0..self.layers.len() {
            x = self.layer(index, x, &pass);
        }
        Ok(self.final_norm(x))
    }

    /// The first step of a forward pass split at decoder layers (activation checkpointing in
    /// `allam-train` recomputes one layer at a time): the embedded tokens `[rows, len, hidden]`
    /// and what every layer shares. Then [`Llama::layer`] for each layer in order and
    /// [`Llama::final_norm`] give exactly [`Llama::hidden_states`].
    pub fn layer_pass(&self, batch: &TokenBatch) -> Result<(Tensor<3>, LayerPass)> {
        batch.validate(self.config.vocab_size)?;
        self.check_window(batch)?;
        let device = self.device();
        let bias = Tensor::<3>::from_data(
            TensorData::new(batch.attention_bias(), [batch.rows, batch.len, batch.len]),
            &device,
        )
        .reshape([batch.rows, 1, 1, batch.len, batch.len]);
        let rope = RotaryTables::new(
            &batch.position_ids,
            [batch.rows, batch.len],
            &self.config,
            &device,
        );
        let embedded =
            self.embed_tokens
                .forward(ids_tensor(&batch.input_ids, batch.rows, batch.len, &device));
        let products = product_dtype(&self.config);
        Ok((embedded, LayerPass { rope, bias, products }))
    }

    /// Decoder layer `index` on `x`, within `pass` (see [`Llama::layer_pass`]).
    pub fn layer(&self, index: usize, x: Tensor<3>, pass: &LayerPass) -> Tensor<3> {
        self.layers[index].forward(x, &pass.rope, pass.bias.clone(), None, pass.products)
    }

    /// The final RMSNorm: the last layer's output becomes the hidden states the head reads.
    pub fn final_norm(&self, x: Tensor<3>) -> Tensor<3> {
        rms_norm(&self.norm, x)
    }

    /// Runs the new tokens of `batch` through the model, reading and extending `cache`, and
    /// returns their logits. Padding (`attention_mask`) is remembered so later tokens ignore it.
    pub fn forward_cached(&self, batch: &TokenBatch, cache: &mut KvCache) -> Result<Tensor<3>> {
        batch.validate(self.config.vocab_size)?;
        if batch.document_ids.is_some() {
            return Err(ModelError::Input(
                "packed rows cannot be decoded incrementally".into(),
            ));
        }
        if batch.rows != cache.batch() || cache.len() + batch.len > cache.capacity() {
            return Err(ModelError::Input(format!(
                "{} rows of {} new tokens do not fit a cache of {} rows holding {} of {} tokens",
                batch.rows,
                batch.len,
                cache.batch(),
                cache.len(),
                cache.capacity()
            )));
        }
        self.check_window(batch)?;
        let (start, new) = (cache.len(), batch.len);
        let mask: Vec<bool> = (0..batch.rows * new)
            .map(|i| batch.is_real(i / new, i % new))
            .collect();
        cache.reserve(&mask, new);
        let keys = start + new;
        let mut bias = vec![MASKED; batch.rows * new * keys];
        for row in 0..batch.rows {
            let real = &cache.real[row * cache.capacity()..row * cache.capacity() + keys];
            for i in 0..new {
                let query = start + i;
                let out = &mut bias[(row * new + i) * keys..(row * new + i + 1) * keys];
                for (j, slot) in out.iter_mut().enumerate().take(query + 1) {
                    if j == query || real[j] {
                        *slot = 0.0;
                    }
                }
            }
        }
        let bias = Tensor::<3>::from_data(TensorData::new(bias, [batch.rows, new, keys]), &self.device())
            .reshape([batch.rows, 1, 1, new, keys]);
        Ok(self.logits(self.run_layers(batch, bias, Some(cache))))
    }

    /// Refuses inputs that reach past the sliding window: within it, windowed attention is full
    /// attention (tokens attend at most `position + 1` back), so only longer inputs would differ.
    fn check_window(&self, batch: &TokenBatch) -> Result<()> {
        let Some(window) = self.config.sliding_window else {
            return Ok(());
        };
        let span = batch.position_ids.iter().max().map_or(0, |&p| p as usize + 1);
        if span > window {
            return Err(ModelError::Input(format!(
                "{span} positions exceed the model's sliding window of {window} tokens \
                 (sliding-window attention beyond the window is not implemented)"
            )));
        }
        Ok(())
    }

    fn run_layers(&self, batch: &TokenBatch, bias: Tensor<5>, mut cache: Option<&mut KvCache>) -> Tensor<3> {
        let device = self.device();
        let rope = RotaryTables::new(
            &batch.position_ids,
            [batch.rows, batch.len],
            &self.config,
            &device,
        );
        let products = product_dtype(&self.config);
        let mut x = self
            .embed_tokens
            .forward(ids_tensor(&batch.input_ids, batch.rows, batch.len, &device));
        for (i, layer) in self.layers.iter().enumerate() {
            let layer_cache = cache.as_deref_mut().map(|c| &mut c.layers[i]);
            x = layer.forward(x, &rope, bias.clone(), layer_cache, products);
        }
        self.final_norm(x)
    }

    /// The output projection as `[hidden, vocab]`: `lm_head`'s weight, or the embedding table
    /// transposed when the head is tied (a view: gradients reach the table).
    pub fn output_weight(&self) -> Tensor<2> {
        match &self.lm_head {
            Some(head) => head.weight.val(),
            None => self.embed_tokens.weight.val().transpose(),
        }
    }

    /// Projects hidden states onto the vocabulary; the logits are f32 (in mixed precision the
    /// product runs in the compute type and its result is cast up, as `transformers` does).
    pub fn logits(&self, hidden: Tensor<3>) -> Tensor<3> {
        to_f32(self.project_head(self.head_input(hidden)))
    }

    /// The hidden states as the output head multiplies them: in the compute type under mixed
    /// precision (autocast casts a product's inputs), else unchanged. A head computed outside
    /// [`Llama::logits`] (the chunked head of training) starts from this.
    pub fn head_input(&self, hidden: Tensor<3>) -> Tensor<3> {
        cast_to(hidden, product_dtype(&self.config))
    }

    fn project_head(&self, hidden: Tensor<3>) -> Tensor<3> {
        match &self.lm_head {
            Some(head) => project(head, hidden),
            None => {
                // A 2-D product against the transposed view of the embedding table: going
                // through `linear` would reshape that view and copy the whole [vocab, hidden]
                // table on every call (the Flex backend materialises a reshaped transpose).
                let [rows, len, hidden_size] = hidden.dims();
                let table = cast_to(self.embed_tokens.weight.val(), hidden.dtype());
                let vocab = table.dims()[0];
                matmul_columns(hidden.reshape([rows * len, hidden_size]), table.transpose())
                    .reshape([rows, len, vocab])
            }
        }
    }
}

/// What every decoder layer of one forward pass shares: the rotary tables of the batch's
/// positions and its attention bias (causal, padding and packing masks).
pub struct LayerPass {
    rope: RotaryTables,
    bias: Tensor<5>,
    products: DType,
}

/// Token ids as an integer tensor `[rows, len]`.
pub fn ids_tensor(ids: &[u32], rows: usize, len: usize, device: &Device) -> Tensor<2, Int> {
    let ids: Vec<i64> = ids.iter().map(|&i| i as i64).collect();
    Tensor::from_data(TensorData::new(ids, [rows, len]), device)
}
