//! Chat templates with loss masks: a conversation becomes text [`Segment`]s, each marked trainable
//! (an assistant turn's content and the token that closes it) or not (everything else), and then
//! token ids with a trainable mask.
//!
//! Built in are the Llama-2 chat format of the paper, Llama-3's and ChatML (Qwen2, SmolLM); any
//! Hugging Face Jinja
//! `chat_template` works too ([`ChatTemplate::Jinja`]), with the assistant spans found from the
//! rendering itself: turn `i`'s span is what `messages[..=i]` renders beyond
//! `messages[..i]` + generation prompt.
use allam_model::TextTokenizer;
use allam_model::text::render_chat_template;

use crate::conversation::{Conversation, Ending, Message, Role, check_turns};
use crate::error::{AlignError, Result};

/// A piece of rendered text and whether the model is trained to produce it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    /// The text, special tokens written out (`<s>`, `</s>`, `<|im_end|>`).
    pub text: String,
    /// `true` for assistant content and its closing token.
    pub trainable: bool,
}

impl Segment {
    fn new(text: impl Into<String>, trainable: bool) -> Self {
        Self {
            text: text.into(),
            trainable,
        }
    }
}

/// The special token strings a template writes (from `tokenizer_config.json`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpecialTokens {
    /// Beginning of sequence, e.g. `<s>`.
    pub bos: Option<String>,
    /// End of sequence, e.g. `</s>`.
    pub eos: Option<String>,
}

impl SpecialTokens {
    /// Llama-2's `<s>` and `</s>`.
    pub fn llama() -> Self {
        Self {
            bos: Some("<s>".into()),
            eos: Some("</s>".into()),
        }
    }

    /// The BOS and EOS strings of `tokenizer_config.json`.
    /// Falls back to Llama's `<s>` / `</s>` when `tokenizer_config.json` names none but the
    /// vocabulary has them (a bare `tokenizer.json`).
    pub fn from_tokenizer(tokenizer: &TextTokenizer) -> Self {
        let known = |t: &str| tokenizer.token_to_id(t).map(|_| t.to_string());
        Self {
            bos: tokenizer.bos_token().map(str::to_string).or_else(|| known("<s>")),
            eos: tokenizer
                .eos_token()
                .map(str::to_string)
                .or_else(|| known("</s>")),
        }
    }
}

/// How a conversation is written out for the model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChatTemplate {
    /// Meta's Llama-2 chat format, as its Hugging Face template renders it (the paper's format):
    /// `<s>[INST] <<SYS>>\n{system}\n<</SYS>>\n\n{user} [/INST] {assistant} </s><s>[INST] {user2} [/INST] {assistant2} </s>`.
    /// Contents are stripped; the system turn is folded into the first user turn; there is no
    /// generation prompt. Trainable: ` {assistant} </s>`.
    Llama2,
    /// Meta's Llama-3 Instruct format, as the Meta-Llama-3-8B-Instruct template renders it:
    /// `{bos}<|start_header_id|>{role}<|end_header_id|>\n\n{content}<|eot_id|>` per turn (BOS
    /// before the first only), contents trimmed; generation prompt
    /// `<|start_header_id|>assistant<|end_header_id|>\n\n`. Trainable: `{assistant}<|eot_id|>`.
    /// (Llama-3.1 and later add a dated default system turn: use their tokenizer's own template.)
    Llama3,
    /// `<|im_start|>{role}\n{content}<|im_end|>\n` per turn; generation prompt
    /// `<|im_start|>assistant\n`. Trainable: `{assistant}<|im_end|>`.
    ChatMl,
    /// A Hugging Face Jinja chat template (`chat_template` of `tokenizer_config.json`).
    Jinja(String),
}

impl ChatTemplate {
    /// `llama2`, `llama3` or `chatml`.
    pub fn from_name(name: &str) -> Result<Self> {
        match name {
            "llama2" | "llama-2" => Ok(Self::Llama2),
            "llama3" | "llama-3" => Ok(Self::Llama3),
            "chatml" => Ok(Self::ChatMl),
            other => Err(AlignError::Input(format!(
                "unknown chat template `{other}` (expected llama2, llama3, chatml, or a tokenizer's own)"
            ))),
        }
    }

    /// The tokenizer's own Jinja template.
    pub fn from_tokenizer(tokenizer: &TextTokenizer) -> Result<Self> {
        tokenizer
            .chat_template()
            .map(|t| Self::Jinja(t.to_string()))
            .ok_or_else(|| {
                AlignError::Template(format!(
                    "{}: no `chat_template` in tokenizer_config.json",
                    tokenizer.path().display()
                ))
            })
    }

    /// Renders a training conversation (no generation prompt).
    pub fn render(&self, conversation: &Conversation, special: &SpecialTokens) -> Result<Vec<Segment>> {
        self.render_messages(conversation.messages(), false, special)
    }

    /// Renders a prompt ending with a user turn, followed by the generation prompt: what the model
    /// sees before it answers.
    pub fn render_prompt(&self, prompt: &[Message], special: &SpecialTokens) -> Result<Vec<Segment>> {
        check_turns(prompt, Ending::User)?;
        self.render_messages(prompt, true, special)
    }

    fn render_messages(
        &self,
        messages: &[Message],
        add_generation_prompt: bool,
        special: &SpecialTokens,
    ) -> Result<Vec<Segment>> {
        let segments = match self {
            Self::Llama2 => llama2(messages, special)?,
            Self::Llama3 => llama3(messages, add_generation_prompt, special),
            Self::ChatMl => chatml(messages, add_generation_prompt),
            Self::Jinja(template) => jinja(template, messages, add_generation_prompt, special)?,
        };
        Ok(merge(segments))
    }
}

/// Joins neighbouring segments of the same kind and drops empty ones.
fn merge(segments: Vec<Segment>) -> Vec<Segment> {
    let mut out: Vec<Segment> = Vec::with_capacity(segments.len());
    for s in segments.into_iter().filter(|s| !s.text.is_empty()) {
        match out.last_mut() {
            Some(last) if last.trainable == s.trainable => last.text.push_str(&s.text),
            _ => out.push(s),
        }
    }
    out
}

fn llama2(messages: &[Message], special: &SpecialTokens) -> Result<Vec<Segment>> {
    let eos = special.eos.as_deref().ok_or_else(|| {
        AlignError::Template(
            "the Llama-2 template closes assistant turns with EOS, but no eos_token is set".into(),
        )
    })?;
    let bos = special.bos.as_deref().unwrap_or("");
    let (system, turns) = match messages.first() {
        Some(m) if m.role == Role::System => (Some(m.content.as_str()), &messages[1..]),
        _ => (None, messages),
    };
    let mut out = Vec::new();
    for (k, m) in turns.iter().enumerate() {
        match m.role {
            Role::User => {
                let content = match system {
                    Some(sys) if k == 0 => format!("<<SYS>>\n{sys}\n<</SYS>>\n\n{}", m.content),
                    _ => m.content.clone(),
                };
                out.push(Segment::new(
                    format!("{bos}[INST] {} [/INST]", content.trim()),
                    false,
                ));
            }
            Role::Assistant => out.push(Segment::new(format!(" {} {eos}", m.content.trim()), true)),
            Role::System => {
                return Err(AlignError::Template(format!(
                    "turn {k}: a system turn may only come first"
                )));
            }
        }
    }
    Ok(out)
}

fn llama3(messages: &[Message], add_generation_prompt: bool, special: &SpecialTokens) -> Vec<Segment> {
    let header = |role: &str| format!("<|start_header_id|>{role}<|end_header_id|>\n\n");
    let mut out = vec![Segment::new(special.bos.as_deref().unwrap_or(""), false)];
    for m in messages {
        let content = m.content.trim();
        if m.role == Role::Assistant {
            out.push(Segment::new(header("assistant"), false));
            out.push(Segment::new(format!("{content}<|eot_id|>"), true));
        } else {
            out.push(Segment::new(
                format!("{}{content}<|eot_id|>", header(m.role.as_str())),
                false,
            ));
        }
    }
    if add_generation_prompt {
        out.push(Segment::new(header("assistant"), false));
    }
    out
}

fn chatml(messages: &[Message], add_generation_prompt: bool) -> Vec<Segment> {
    let mut out = Vec::new();
    for m in messages {
        if m.role == Role::Assistant {
            out.push(Segment::new("<|im_start|>assistant\n", false));
            out.push(Segment::new(format!("{}<|im_end|>", m.content), true));
            out.push(Segment::new("\n", false));
        } else {
            out.push(Segment::new(
                format!("<|im_start|>{}\n{}<|im_end|>\n", m.role.as_str(), m.content),
                false,
            ));
        }
    }
    if add_generation_prompt {
        out.push(Segment::new("<|im_start|>assistant\n", false));
    }
    out
}

fn render_jinja(
    template: &str,
    messages: &[Message],
    add_generation_prompt: bool,
    special: &SpecialTokens,
) -> Result<String> {
    let chat: Vec<_> = messages.iter().map(Message::to_chat_message).collect();
    render_chat_template(
        template,
        &chat,
        add_generation_prompt,
        special.bos.as_deref(),
        special.eos.as_deref(),
    )
    .map_err(AlignError::Template)
}

/// Whether `text` ends with a turn-closing marker: the EOS string, or a `<|…|>` / `</…>` token.
fn ends_with_marker(text: &str, special: &SpecialTokens) -> bool {
    special
        .eos
        .as_deref()
        .is_some_and(|e| !e.is_empty() && text.ends_with(e))
        || (text.ends_with("|>") && text.contains("<|"))
        || (text.ends_with('>') && text.contains("</"))
}

fn jinja(
    template: &str,
    messages: &[Message],
    add_generation_prompt: bool,
    special: &SpecialTokens,
) -> Result<Vec<Segment>> {
    let full = render_jinja(template, messages, add_generation_prompt, special)?;
    let mut out = Vec::new();
    let mut cursor = 0;
    for (i, m) in messages.iter().enumerate() {
        if m.role != Role::Assistant {
            continue;
        }
        let before = render_jinja(template, &messages[..i], true, special)?;
        let through = render_jinja(template, &messages[..=i], false, special)?;
        if !through.starts_with(&before) || !full.starts_with(&through) {
            return Err(AlignError::Template(format!(
                "turn {i}: the rendering of the first {} turns (with the generation prompt) is not a prefix of \
                 the rendering through turn {i}, or that is not a prefix of the whole conversation; the \
                 assistant span cannot be located",
                i
            )));
        }
        if before.len() < cursor {
            return Err(AlignError::Template(format!(
                "turn {i}: its span starts at byte {} inside the previous assistant span ending at {cursor}",
                before.len()
            )));
        }
        // What the turn renders: its content and closing, maybe whitespace after the closing token
        // (ChatML's `\n`), which belongs to the template, not to what the model must say.
        let span = &through[before.len()..];
        let trimmed = span.trim_end();
        let end = if trimmed.len() < span.len() && ends_with_marker(trimmed, special) {
            before.len() + trimmed.len()
        } else {
            through.len()
        };
        out.push(Segment::new(&full[cursor..before.len()], false));
        out.push(Segment::new(&full[before.len()..end], true));
        cursor = end;
    }
    out.push(Segment::new(&full[cursor..], false));
    Ok(out)
}

/// The ids the tokenizer's post-processor puts before a text (e.g. `[BOS]` for Llama), found by
/// encoding a probe with and without special tokens.
fn leading_special_ids(tokenizer: &TextTokenizer) -> Result<Vec<u32>> {
    let with = tokenizer.encode("a", true)?;
    let without = tokenizer.encode("a", false)?;
    Ok(with
        .windows(without.len().max(1))
        .position(|w| w == without.as_slice())
        .map(|p| with[..p].to_vec())
        .unwrap_or_default())
}

/// Tokenizes rendered segments into `(ids, trainable)`.
///
/// The text is encoded in one piece with special tokens parsed (so `<s>`, `</s>`, `<|im_end|>` in
/// the text become their ids, and no normaliser artefacts appear at segment boundaries — e.g. a
/// SentencePiece `▁` prepended to every separately encoded segment), and a token is trainable when
/// its bytes overlap a trainable segment. The post-processor's leading tokens (BOS) are added in
/// front only when the text does not already start with them, so BOS is never doubled. Every
/// trainable run must end with an added (special) token, the one that closes the turn, so the model
/// learns to stop.
pub fn tokenize(segments: &[Segment], tokenizer: &TextTokenizer) -> Result<(Vec<u32>, Vec<bool>)> {
    let mut text = String::new();
    let mut ranges = Vec::new();
    for s in segments {
        let start = text.len();
        text.push_str(&s.text);
        if s.trainable {
            ranges.push(start..text.len());
        }
    }
    let encoding = tokenizer
        .inner()
        .encode(text.as_str(), false)
        .map_err(|e| AlignError::Tokenize(format!("{}: cannot encode: {e}", tokenizer.path().display())))?;
    let mut ids = encoding.get_ids().to_vec();
    let mut trainable: Vec<bool> = encoding
        .get_offsets()
        .iter()
        .map(|&(a, b)| {
            ranges
                .iter()
                .any(|r| (a < r.end && b > r.start) || (a == b && r.contains(&a)))
        })
        .collect();
    // Every turn must close on a special token written in the text (not e.g. `<unk>` standing in
    // for pieces the tokenizer lacks).
    let added = tokenizer.inner().get_added_tokens_decoder();
    let offsets = encoding.get_offsets();
    let mut turn = 0;
    for i in 0..ids.len() {
        if trainable[i] && trainable.get(i + 1) != Some(&true) {
            let (a, b) = offsets[i];
            if added
                .get(&ids[i])
                .is_none_or(|t| text.get(a..b) != Some(t.content.as_str()))
            {
                return Err(AlignError::Tokenize(format!(
                    "assistant turn {turn} ends with {:?} (token {}), not a special token: the turn's closing \
                     (EOS or end-of-turn marker) must be a special token of {}",
                    text.get(a..b).unwrap_or(""),
                    ids[i],
                    tokenizer.path().display()
                )));
            }
            turn += 1;
        }
    }
    let lead = leading_special_ids(tokenizer)?;
    if !lead.is_empty() && !ids.starts_with(&lead) {
        ids.splice(0..0, lead.iter().copied());
        trainable.splice(0..0, std::iter::repeat_n(false, lead.len()));
    }
    Ok((ids, trainable))
}

/// Renders and tokenizes a training conversation with the tokenizer's BOS/EOS strings.
pub fn encode_conversation(
    template: &ChatTemplate,
    conversation: &Conversation,
    tokenizer: &TextTokenizer,
) -> Result<(Vec<u32>, Vec<bool>)> {
    let segments = template.render(conversation, &SpecialTokens::from_tokenizer(tokenizer))?;
    tokenize(&segments, tokenizer)
}

/// The ids of a prompt (ending with a user turn) up to and including the generation prompt: what
/// DPO scores responses after, and what generation starts from.
pub fn prompt_ids(
    template: &ChatTemplate,
    prompt: &[Message],
    tokenizer: &TextTokenizer,
) -> Result<Vec<u32>> {
    let segments = template.render_prompt(prompt, &SpecialTokens::from_tokenizer(tokenizer))?;
    Ok(tokenize(&segments, tokenizer)?.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conversation::Message;

    fn conversation() -> Conversation {
        Conversation::new(vec![
            Message::new(Role::System, "be brief"),
            Message::new(Role::User, "hi"),
            Message::new(Role::Assistant, "hello"),
            Message::new(Role::User, "is it time to eat?"),
            Message::new(Role::Assistant, "yes, it is time."),
        ])
        .unwrap()
    }

    fn joined(segments: &[Segment]) -> String {
        segments.iter().map(|s| s.text.as_str()).collect()
    }

    fn trained(segments: &[Segment]) -> Vec<&str> {
        segments
            .iter()
            .filter(|s| s.trainable)
            .map(|s| s.text.as_str())
            .collect()
    }

    #[test]
    fn llama2_renders_the_papers_format() {
        let segments = ChatTemplate::Llama2
            .render(&conversation(), &SpecialTokens::llama())
            .unwrap();
        assert_eq!(
            joined(&segments),
            "<s>[INST] <<SYS>>\nbe brief\n<</SYS>>\n\nhi [/INST] hello </s><s>[INST] is it time to eat? [/INST] yes, it is time. </s>"
        );
        assert_eq!(trained(&segments), [" hello </s>", " yes, it is time. </s>"]);
    }

    #[test]
    fn chatml_renders_im_start_blocks() {
        let segments = ChatTemplate::ChatMl
            .render(&conversation(), &SpecialTokens::llama())
            .unwrap();
        assert_eq!(
            joined(&segments),
            "<|im_start|>system\nbe brief<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\nhello<|im_end|>\n\
             <|im_start|>user\nis it time to eat?<|im_end|>\n<|im_start|>assistant\nyes, it is time.<|im_end|>\n"
        );
        assert_eq!(
            trained(&segments),
            ["hello<|im_end|>", "yes, it is time.<|im_end|>"]
        );
        let prompt = ChatTemplate::ChatMl
            .render_prompt(&conversation().messages()[..2], &SpecialTokens::llama())
            .unwrap();
        assert!(joined(&prompt).ends_with("<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"));
        assert!(prompt.iter().all(|s| !s.trainable));
    }

    #[test]
    fn a_template_that_rewrites_earlier_turns_is_refused() {
        // renders only the last message: turn prefixes are not prefixes of the whole
        let template = ChatTemplate::Jinja("{{ messages[-1]['content'] }}".into());
        let err = template
            .render(&conversation(), &SpecialTokens::llama())
            .unwrap_err();
        assert!(err.to_string().contains("turn 2"), "{err}");
    }
}
