//! A Hugging Face model directory as one object: weights, config, tokenizer, chat template and
//! generation defaults.
use std::path::{Path, PathBuf};

use burn::tensor::Device;
use serde_json::Value;

use crate::checkpoint::{SaveOptions, load_model, save_model};
use crate::error::{ModelError, Result};
use crate::generate::{GenerationConfig, GenerationOutput, generate};
use crate::hf_config::HfConfig;
use crate::model::Llama;
use crate::text::{ChatMessage, TextTokenizer};

/// Files besides the weights that travel with a model directory.
pub const SUPPORT_FILES: &[&str] = &[
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "generation_config.json",
    "tokenizer.model",
    "chat_template.jinja",
];

/// A model loaded from a Hugging Face directory, with its tokenizer when the directory has one.
#[derive(Debug)]
pub struct PretrainedModel {
    /// The network.
    pub model: Llama,
    /// `config.json` as read (written back, updated, on save).
    pub hf_config: HfConfig,
    /// `tokenizer.json` (+ `tokenizer_config.json`), if present.
    pub tokenizer: Option<TextTokenizer>,
    /// The directory it came from.
    pub dir: PathBuf,
}

impl PretrainedModel {
    /// Loads `dir/config.json`, the safetensors weights and, if present, `dir/tokenizer.json`.
    pub fn load(dir: &Path, device: &Device) -> Result<Self> {
        let (model, hf_config) = load_model(dir, device)?;
        let tokenizer_path = dir.join("tokenizer.json");
        let tokenizer = if tokenizer_path.exists() {
            Some(TextTokenizer::from_file(&tokenizer_path)?)
        } else {
            None
        };
        Ok(Self {
            model,
            hf_config,
            tokenizer,
            dir: dir.to_path_buf(),
        })
    }

    /// Uses another `tokenizer.json` than the directory's.
    pub fn with_tokenizer(mut self, tokenizer: TextTokenizer) -> Self {
        self.tokenizer = Some(tokenizer);
        self
    }

    /// The tokenizer, or an error saying the directory has none.
    pub fn tokenizer(&self) -> Result<&TextTokenizer> {
        self.tokenizer.as_ref().ok_or_else(|| ModelError::Tokenizer {
            path: self.dir.join("tokenizer.json"),
            message: "the model directory has no tokenizer.json (pass one explicitly)".into(),
        })
    }

    /// EOS ids from `generation_config.json` if it has them, else from `config.json`.
    pub fn eos_token_ids(&self) -> Vec<u32> {
        let path = self.dir.join("generation_config.json");
        let from_generation = std::fs::read_to_string(path)
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
            .and_then(|v| match v.get("eos_token_id")? {
                Value::Number(n) => n.as_u64().map(|n| vec![n as u32]),
                Value::Array(a) => a.iter().map(|n| n.as_u64().map(|n| n as u32)).collect(),
                _ => None,
            });
        from_generation.unwrap_or_else(|| self.model.config.eos_token_ids.clone())
    }

    /// Encodes a prompt as `transformers` would: with the post-processor's special tokens, or, for
    /// a chat, rendered by the chat template (which places its own BOS).
    pub fn encode_prompt(&self, prompt: &str, chat: bool) -> Result<Vec<u32>> {
        let tokenizer = self.tokenizer()?;
        if chat {
            let text = tokenizer.apply_chat_template(&[ChatMessage::new("user", prompt)], true)?;
            tokenizer.encode(&text, false)
        } else {
            tokenizer.encode(prompt, true)
        }
    }

    /// Generates from one text prompt; `on_text` receives the text as it grows (for streaming).
    pub fn generate_streaming(
        &self,
        prompt_ids: &[u32],
        config: &GenerationConfig,
        mut on_text: impl FnMut(&str),
    ) -> Result<GenerationOutput> {
        let tokenizer = self.tokenizer()?;
        let mut config = config.clone();
        if config.eos_token_ids.is_empty() {
            config.eos_token_ids = self.eos_token_ids();
        }
        let mut ids = Vec::new();
        let mut shown = 0;
        let mut failure = None;
        let mut outputs = generate(&self.model, &[prompt_ids.to_vec()], &config, |_, id| {
            ids.push(id);
            match tokenizer.decode(&ids, true) {
                Ok(text) => {
                    // Hold back a trailing replacement char: a multi-byte character may be incomplete.
                    let ready = text.trim_end_matches('\u{FFFD}');
                    if ready.len() > shown && ready.is_char_boundary(shown) {
                        on_text(&ready[shown..]);
                        shown = ready.len();
                    }
                    config.stop_strings.iter().any(|s| text.contains(s.as_str()))
                }
                Err(e) => {
                    failure = Some(e);
                    true
                }
            }
        })?;
        if let Some(e) = failure {
            return Err(e);
        }
        let mut output = outputs.remove(0);
        output.text = tokenizer.decode(&output.ids, true)?;
        if output.text.len() > shown && output.text.is_char_boundary(shown) {
            on_text(&output.text[shown..]);
        }
        Ok(output)
    }

    /// Generates from a text prompt (special tokens added as the tokenizer's post-processor says).
    pub fn generate_text(&self, prompt: &str, config: &GenerationConfig) -> Result<GenerationOutput> {
        let ids = self.encode_prompt(prompt, false)?;
        self.generate_streaming(&ids, config, |_| {})
    }

    /// Writes the model as a Hugging Face directory and copies the tokenizer and other support
    /// files of the source directory next to it.
    pub fn save(&self, out: &Path, options: &SaveOptions) -> Result<()> {
        save_model(&self.model, &self.hf_config, out, options)?;
        copy_support_files(&self.dir, out)
    }
}

/// Copies tokenizer and generation files from one model directory to another (atomically each).
pub fn copy_support_files(from: &Path, to: &Path) -> Result<()> {
    if same_dir(from, to) {
        return Ok(());
    }
    for name in SUPPORT_FILES {
        let src = from.join(name);
        if src.exists() {
            let dst = to.join(name);
            allam_io::copy_atomic(&src, &dst).map_err(|e| ModelError::io(&dst, e))?;
        }
    }
    Ok(())
}

fn same_dir(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}
