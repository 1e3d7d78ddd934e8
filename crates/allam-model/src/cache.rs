//! A preallocated key/value cache for incremental decoding.
use burn::tensor::{DType, Device, Tensor};

use crate::config::LlamaConfig;
use crate::precision::{cast_to, product_dtype};

/// One layer's keys and values, `[batch, kv_heads, capacity, head_dim]`, filled up to `len`.
#[derive(Debug)]
pub struct LayerCache {
    keys: Option<Tensor<4>>,
    values: Option<Tensor<4>>,
    len: usize,
}

impl LayerCache {
    fn new(shape: [usize; 4], dtype: DType, device: &Device) -> Self {
        let zeros = || Some(cast_to(Tensor::zeros(shape, device), dtype));
        Self {
            keys: zeros(),
            values: zeros(),
            len: 0,
        }
    }

    /// Writes the new keys/values (`[batch, kv_heads, new, head_dim]`) after the cached ones and
    /// returns every key and value so far. The buffers are written in place (no reallocation).
    pub(crate) fn append(&mut self, k: Tensor<4>, v: Tensor<4>) -> (Tensor<4>, Tensor<4>) {
        let [batch, heads, new, dim] = k.dims();
        let (start, end) = (self.len, self.len + new);
        let write = |buffer: &mut Option<Tensor<4>>, update: Tensor<4>| {
            // Taking the buffer out keeps its reference count at one, so Burn updates it in place.
            let full = buffer
                .take()
                .expect("cache buffer present")
                .slice_assign([0..batch, 0..heads, start..end, 0..dim], update);
            let visible = full.clone().slice([0..batch, 0..heads, 0..end, 0..dim]);
            *buffer = Some(full);
            visible
        };
        let keys = write(&mut self.keys, k);
        let values = write(&mut self.values, v);
        self.len = end;
        (keys, values)
    }
}

/// Keys and values of every layer for a batch of sequences being decoded, plus which cached slots
/// hold real tokens (left padding in batched generation does not).
#[derive(Debug)]
pub struct KvCache {
    pub(crate) layers: Vec<LayerCache>,
    /// `[batch, capacity]`, row-major: whether each slot is a real token.
    pub(crate) real: Vec<bool>,
    batch: usize,
    capacity: usize,
    len: usize,
}

impl KvCache {
    /// Allocates a cache for `batch` sequences of up to `capacity` tokens (in the type the
    /// attention products read: f32, or the half type of mixed precision).
    pub fn new(config: &LlamaConfig, batch: usize, capacity: usize, device: &Device) -> Self {
        let shape = [batch, config.num_key_value_heads, capacity, config.head_dim];
        Self {
            layers: (0..config.num_hidden_layers)
                .map(|_| LayerCache::new(shape, product_dtype(config), device))
                .collect(),
            real: vec![false; batch * capacity],
            batch,
            capacity,
            len: 0,
        }
    }

    /// Tokens cached so far (per row, padding included).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing has been cached yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Most tokens the cache can hold.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Rows in the batch.
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// Records which of the next `new` slots of every row are real tokens (`mask`: `[batch, new]`).
    pub(crate) fn reserve(&mut self, mask: &[bool], new: usize) {
        for row in 0..self.batch {
            let dst = row * self.capacity + self.len;
            self.real[dst..dst + new].copy_from_slice(&mask[row * new..(row + 1) * new]);
        }
        self.len += new;
    }
}
