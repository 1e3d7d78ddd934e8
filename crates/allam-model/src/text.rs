//! Text in and out: the `tokenizer.json` of a model directory (through the `tokenizers` crate) and
//! the chat template of its `tokenizer_config.json` (rendered by a real Jinja engine, minijinja).
use std::path::{Path, PathBuf};

use minijinja::{Environment, context};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokenizers::Tokenizer;

use crate::error::{ModelError, Result};

/// One turn of a conversation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// `system`, `user` or `assistant`.
    pub role: String,
    /// The text of the turn.
    pub content: String,
}

impl ChatMessage {
    /// A turn with `role` and `content`.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            role: role.into(),
            content: content.into(),
        }
    }
}

/// A model's tokenizer plus what `tokenizer_config.json` adds: the chat template and the special
/// token strings it refers to.
#[derive(Clone)]
pub struct TextTokenizer {
    tokenizer: Tokenizer,
    path: PathBuf,
    chat_template: Option<String>,
    bos_token: Option<String>,
    eos_token: Option<String>,
}

impl std::fmt::Debug for TextTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextTokenizer")
            .field("path", &self.path)
            .field("vocab_size", &self.vocab_size())
            .field("chat_template", &self.chat_template.is_some())
            .finish()
    }
}

fn token_string(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => o.get("content").and_then(Value::as_str).map(str::to_string),
        _ => None,
    }
}

impl TextTokenizer {
    /// Loads `tokenizer.json`, and `tokenizer_config.json` from the same directory if present.
    pub fn from_file(path: &Path) -> Result<Self> {
        let tokenizer = Tokenizer::from_file(path).map_err(|e| ModelError::Tokenizer {
            path: path.to_path_buf(),
            message: format!("cannot load tokenizer: {e}"),
        })?;
        let mut text = Self {
            tokenizer,
            path: path.to_path_buf(),
            chat_template: None,
            bos_token: None,
            eos_token: None,
        };
        let config_path = path.with_file_name("tokenizer_config.json");
        if config_path.exists() {
            text.read_config(&config_path)?;
        }
        Ok(text)
    }

    fn read_config(&mut self, path: &Path) -> Result<()> {
        let raw = std::fs::read_to_string(path).map_err(|e| ModelError::io(path, e))?;
        let json: Value = serde_json::from_str(&raw).map_err(|e| ModelError::Json {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        self.bos_token = token_string(json.get("bos_token"));
        self.eos_token = token_string(json.get("eos_token"));
        self.chat_template = match json.get("chat_template") {
            None | Some(Value::Null) => None,
            Some(Value::String(t)) => Some(t.clone()),
            // Several named templates: use the default one, as `transformers` does.
            Some(Value::Array(list)) => list
                .iter()
                .find(|t| t.get("name").and_then(Value::as_str) == Some("default"))
                .and_then(|t| t.get("template"))
                .and_then(Value::as_str)
                .map(str::to_string),
            Some(other) => {
                return Err(ModelError::Tokenizer {
                    path: path.to_path_buf(),
                    message: format!(
                        "`chat_template` must be a string or a list of named templates, found {other}"
                    ),
                });
            }
        };
        Ok(())
    }

    /// Replaces the chat template (e.g. with one of the built-in templates of the alignment stage).
    pub fn with_chat_template(mut self, template: impl Into<String>) -> Self {
        self.chat_template = Some(template.into());
        self
    }

    /// The wrapped `tokenizers` tokenizer.
    pub fn inner(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// Where it was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Number of ids, added tokens included.
    pub fn vocab_size(&self) -> usize {
        self.tokenizer.get_vocab_size(true)
    }

    /// Encodes `text`; `add_special_tokens` applies the post-processor (e.g. a leading BOS) as
    /// `transformers` does by default.
    pub fn encode(&self, text: &str, add_special_tokens: bool) -> Result<Vec<u32>> {
        self.tokenizer
            .encode(text, add_special_tokens)
            .map(|e| e.get_ids().to_vec())
            .map_err(|e| ModelError::Tokenizer {
                path: self.path.clone(),
                message: format!("cannot encode text: {e}"),
            })
    }

    /// Decodes ids, dropping special tokens when `skip_special_tokens`.
    pub fn decode(&self, ids: &[u32], skip_special_tokens: bool) -> Result<String> {
        self.tokenizer
            .decode(ids, skip_special_tokens)
            .map_err(|e| ModelError::Tokenizer {
                path: self.path.clone(),
                message: format!("cannot decode ids: {e}"),
            })
    }

    /// The id of a token string, if it is in the vocabulary.
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.tokenizer.token_to_id(token)
    }

    /// The EOS token string from `tokenizer_config.json`.
    pub fn eos_token(&self) -> Option<&str> {
        self.eos_token.as_deref()
    }

    /// The BOS token string from `tokenizer_config.json`.
    pub fn bos_token(&self) -> Option<&str> {
        self.bos_token.as_deref()
    }

    /// The Jinja chat template from `tokenizer_config.json` (or [`Self::with_chat_template`]).
    pub fn chat_template(&self) -> Option<&str> {
        self.chat_template.as_deref()
    }

    /// Whether a chat template is available.
    pub fn has_chat_template(&self) -> bool {
        self.chat_template.is_some()
    }

    /// Renders `messages` with the chat template, as `transformers`' `apply_chat_template` with
    /// `tokenize=False`.
    pub fn apply_chat_template(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
    ) -> Result<String> {
        let template = self
            .chat_template
            .as_deref()
            .ok_or_else(|| ModelError::Tokenizer {
                path: self.path.with_file_name("tokenizer_config.json"),
                message: "no `chat_template` (the model directory has no chat template)".into(),
            })?;
        render_chat_template(
            template,
            messages,
            add_generation_prompt,
            self.bos_token.as_deref(),
            self.eos_token.as_deref(),
        )
        .map_err(|message| ModelError::Tokenizer {
            path: self.path.with_file_name("tokenizer_config.json"),
            message,
        })
    }
}

/// Renders a Hugging Face Jinja chat template. Python string methods (`.strip()`, `.items()`, …)
/// and `raise_exception` work as they do in `transformers`.
pub fn render_chat_template(
    template: &str,
    messages: &[ChatMessage],
    add_generation_prompt: bool,
    bos_token: Option<&str>,
    eos_token: Option<&str>,
) -> std::result::Result<String, String> {
    let mut env = Environment::new();
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    env.add_function(
        "raise_exception",
        |message: String| -> std::result::Result<String, minijinja::Error> {
            Err(minijinja::Error::new(
                minijinja::ErrorKind::InvalidOperation,
                message,
            ))
        },
    );
    env.add_template("chat", template)
        .map_err(|e| format!("chat template does not parse: {e}"))?;
    let tmpl = env.get_template("chat").map_err(|e| e.to_string())?;
    tmpl.render(context! {
        messages => messages,
        add_generation_prompt => add_generation_prompt,
        bos_token => bos_token.unwrap_or(""),
        eos_token => eos_token.unwrap_or(""),
    })
    .map_err(|e| format!("chat template failed: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_a_llama2_style_template() {
        let template = "{{ bos_token }}{% for m in messages %}{% if m['role'] == 'user' %}[INST] {{ m['content'].strip() }} [/INST]{% elif m['role'] == 'assistant' %} {{ m['content'] }}{{ eos_token }}{% else %}{{ raise_exception('bad role ' + m['role']) }}{% endif %}{% endfor %}";
        let msgs = [
            ChatMessage::new("user", " hi "),
            ChatMessage::new("assistant", "hello"),
        ];
        let out = render_chat_template(template, &msgs, false, Some("<s>"), Some("</s>")).unwrap();
        assert_eq!(out, "<s>[INST] hi [/INST] hello</s>");
        let err =
            render_chat_template(template, &[ChatMessage::new("tool", "x")], false, None, None).unwrap_err();
        assert!(err.contains("bad role tool"), "{err}");
    }
}
