//! Conversations: the unit of supervised fine-tuning data, validated once, loaded from JSONL in the
//! three shapes datasets come in.
//!
//! - `{"messages": [{"role": "user", "content": "…"}, …]}` (OpenAI / TRL "conversational");
//! - Alpaca: `{"instruction": "…", "input": "…" (optional), "output": "…"}`;
//! - ShareGPT: `{"conversations": [{"from": "human", "value": "…"}, …]}` with `from` one of
//!   `system`, `human`/`user`, `gpt`/`assistant`.
//!
//! The shape is detected per line, so files may mix them.
use std::path::Path;

use allam_model::ChatMessage;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{AlignError, Result};

/// Who speaks a turn.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Instructions before the conversation (at most one, first).
    System,
    /// The human.
    User,
    /// The model: the turns it is trained on.
    Assistant,
}

impl Role {
    /// `system`, `user` or `assistant`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }

    /// Parses `system` / `user` / `assistant`; anything else is an error naming the role.
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "system" => Ok(Role::System),
            "user" => Ok(Role::User),
            "assistant" => Ok(Role::Assistant),
            other => Err(AlignError::Conversation(format!(
                "unknown role `{other}` (expected system, user or assistant)"
            ))),
        }
    }

    /// Parses a ShareGPT `from`: `system`, `human`/`user`, `gpt`/`assistant`.
    pub fn parse_sharegpt(from: &str) -> Result<Self> {
        match from {
            "system" => Ok(Role::System),
            "human" | "user" => Ok(Role::User),
            "gpt" | "assistant" => Ok(Role::Assistant),
            other => Err(AlignError::Conversation(format!(
                "unknown ShareGPT speaker `{other}` (expected system, human, user, gpt or assistant)"
            ))),
        }
    }
}

/// One turn.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// Who speaks.
    pub role: Role,
    /// What is said.
    pub content: String,
}

impl Message {
    /// A turn of `role` saying `content`.
    pub fn new(role: Role, content: impl Into<String>) -> Self {
        Self {
            role,
            content: content.into(),
        }
    }

    /// The model crate's untyped message, as chat templates receive it.
    pub fn to_chat_message(&self) -> ChatMessage {
        ChatMessage::new(self.role.as_str(), self.content.clone())
    }
}

/// Where a list of turns must end: a training conversation on the assistant, a prompt on the user.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    /// Ends with an assistant turn (a training conversation).
    Assistant,
    /// Ends with a user turn (a prompt awaiting a response).
    User,
}

/// Checks the turn rules: an optional leading system turn, then user and assistant alternating
/// starting with the user, ending as `ending` says; no empty content.
pub fn check_turns(messages: &[Message], ending: Ending) -> Result<()> {
    let err = |m: String| Err(AlignError::Conversation(m));
    if messages.is_empty() {
        return err("no turns".into());
    }
    for (i, m) in messages.iter().enumerate() {
        if m.content.trim().is_empty() {
            return err(format!("turn {i} ({}) has empty content", m.role.as_str()));
        }
    }
    let start = usize::from(messages[0].role == Role::System);
    for (k, m) in messages[start..].iter().enumerate() {
        let expected = if k % 2 == 0 { Role::User } else { Role::Assistant };
        if m.role != expected {
            return err(format!(
                "turn {} is {}, expected {} (an optional system turn first, then user and assistant alternating)",
                start + k,
                m.role.as_str(),
                expected.as_str()
            ));
        }
    }
    let last = messages.last().expect("non-empty").role;
    match ending {
        Ending::Assistant if last != Role::Assistant => err(
            "no assistant turn at the end (a training conversation must end with an assistant turn)".into(),
        ),
        Ending::User if last != Role::User => err(format!(
            "a prompt must end with a user turn, found {}",
            last.as_str()
        )),
        _ => Ok(()),
    }
}

/// A validated conversation: an optional system turn, then user/assistant turns alternating,
/// ending with an assistant turn.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Conversation {
    messages: Vec<Message>,
}

impl Conversation {
    /// Validates `messages` (see [`check_turns`] with [`Ending::Assistant`]).
    pub fn new(messages: Vec<Message>) -> Result<Self> {
        check_turns(&messages, Ending::Assistant)?;
        Ok(Self { messages })
    }

    /// The turns.
    pub fn messages(&self) -> &[Message] {
        &self.messages
    }

    /// Number of assistant turns.
    pub fn assistant_turns(&self) -> usize {
        self.messages.iter().filter(|m| m.role == Role::Assistant).count()
    }

    /// Builds a conversation from one JSON record in any supported shape (see the module docs).
    pub fn from_json(value: &Value) -> Result<Self> {
        let obj = value
            .as_object()
            .ok_or_else(|| AlignError::Conversation("expected a JSON object".into()))?;
        let messages = if let Some(list) = obj.get("messages") {
            parse_messages(list)?
        } else if let Some(list) = obj.get("conversations") {
            parse_sharegpt(list)?
        } else if obj.contains_key("instruction") {
            parse_alpaca(obj)?
        } else {
            return Err(AlignError::Conversation(
                "unknown record shape: expected a `messages` list, a ShareGPT `conversations` list, or Alpaca `instruction`/`output`"
                    .into(),
            ));
        };
        Self::new(messages)
    }
}

fn string_field<'a>(obj: &'a serde_json::Map<String, Value>, key: &str, what: &str) -> Result<&'a str> {
    match obj.get(key) {
        Some(Value::String(s)) => Ok(s),
        Some(other) => Err(AlignError::Conversation(format!(
            "{what}: `{key}` must be a string, found {other}"
        ))),
        None => Err(AlignError::Conversation(format!("{what}: missing `{key}`"))),
    }
}

/// Parses a `[{"role", "content"}, …]` list (no turn-order checks).
pub fn parse_messages(list: &Value) -> Result<Vec<Message>> {
    let items = list
        .as_array()
        .ok_or_else(|| AlignError::Conversation("`messages` must be a list".into()))?;
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let what = format!("message {i}");
            let obj = item
                .as_object()
                .ok_or_else(|| AlignError::Conversation(format!("{what} must be an object")))?;
            let role = Role::parse(string_field(obj, "role", &what)?)
                .map_err(|e| AlignError::Conversation(format!("{what}: {}", strip(e))))?;
            Ok(Message::new(role, string_field(obj, "content", &what)?))
        })
        .collect()
}

fn parse_sharegpt(list: &Value) -> Result<Vec<Message>> {
    let items = list
        .as_array()
        .ok_or_else(|| AlignError::Conversation("`conversations` must be a list".into()))?;
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let what = format!("conversations[{i}]");
            let obj = item
                .as_object()
                .ok_or_else(|| AlignError::Conversation(format!("{what} must be an object")))?;
            let role = Role::parse_sharegpt(string_field(obj, "from", &what)?)
                .map_err(|e| AlignError::Conversation(format!("{what}: {}", strip(e))))?;
            Ok(Message::new(role, string_field(obj, "value", &what)?))
        })
        .collect()
}

fn parse_alpaca(obj: &serde_json::Map<String, Value>) -> Result<Vec<Message>> {
    let instruction = string_field(obj, "instruction", "alpaca record")?;
    let output = string_field(obj, "output", "alpaca record")?;
    let input = match obj.get("input") {
        None | Some(Value::Null) => "",
        Some(_) => string_field(obj, "input", "alpaca record")?,
    };
    let user = if input.trim().is_empty() {
        instruction.to_string()
    } else {
        format!("{instruction}\n\n{input}")
    };
    Ok(vec![
        Message::new(Role::User, user),
        Message::new(Role::Assistant, output),
    ])
}

/// The message of a [`AlignError::Conversation`] without its prefix, to re-wrap with a location.
pub(crate) fn strip(e: AlignError) -> String {
    match e {
        AlignError::Conversation(m) => m,
        other => other.to_string(),
    }
}

/// Reads a JSONL file line by line, calling `f` on each non-blank line's JSON; errors name
/// `path:line`.
pub(crate) fn for_each_json_line(path: &Path, mut f: impl FnMut(&Value) -> Result<()>) -> Result<()> {
    let text = std::fs::read_to_string(path).map_err(|source| AlignError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let value: Value = serde_json::from_str(line)
            .map_err(|e| AlignError::data(path, i + 1, format!("invalid JSON: {e}")))?;
        f(&value).map_err(|e| match e {
            AlignError::Data { .. } | AlignError::Io { .. } => e,
            other => AlignError::data(path, i + 1, strip(other)),
        })?;
    }
    Ok(())
}

/// Loads every conversation of a JSONL file, detecting each line's shape. Blank lines are skipped;
/// any invalid line is an error naming `path:line`.
pub fn load_conversations(path: &Path) -> Result<Vec<Conversation>> {
    let mut out = Vec::new();
    for_each_json_line(path, |value| {
        out.push(Conversation::from_json(value)?);
        Ok(())
    })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_three_shapes_give_the_same_turns() {
        let messages = json!({"messages": [
            {"role": "user", "content": "add 2 and 3\n\nplease"},
            {"role": "assistant", "content": "5"}]});
        let alpaca = json!({"instruction": "add 2 and 3", "input": "please", "output": "5"});
        let sharegpt = json!({"conversations": [
            {"from": "human", "value": "add 2 and 3\n\nplease"}, {"from": "gpt", "value": "5"}]});
        let a = Conversation::from_json(&messages).unwrap();
        assert_eq!(a, Conversation::from_json(&alpaca).unwrap());
        assert_eq!(a, Conversation::from_json(&sharegpt).unwrap());
        let no_input = json!({"instruction": "hi", "input": "", "output": "hello"});
        assert_eq!(
            Conversation::from_json(&no_input).unwrap().messages()[0].content,
            "hi"
        );
    }

    #[test]
    fn turn_rules_are_enforced() {
        let m = |r, c: &str| Message::new(r, c);
        let no_assistant = Conversation::new(vec![m(Role::System, "s"), m(Role::User, "hi")]);
        assert!(
            no_assistant
                .unwrap_err()
                .to_string()
                .contains("no assistant turn")
        );
        let twice = Conversation::new(vec![
            m(Role::User, "a"),
            m(Role::User, "b"),
            m(Role::Assistant, "c"),
        ]);
        assert!(
            twice
                .unwrap_err()
                .to_string()
                .contains("turn 1 is user, expected assistant")
        );
        let empty = Conversation::new(vec![m(Role::User, " "), m(Role::Assistant, "c")]);
        assert!(empty.unwrap_err().to_string().contains("empty content"));
        let late_system = Conversation::new(vec![m(Role::User, "a"), m(Role::System, "b")]);
        assert!(late_system.is_err());
        let ok = Conversation::new(vec![
            m(Role::System, "s"),
            m(Role::User, "a"),
            m(Role::Assistant, "b"),
        ])
        .unwrap();
        assert_eq!(ok.assistant_turns(), 1);
    }

    #[test]
    fn file_errors_name_path_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sft.jsonl");
        std::fs::write(
            &path,
            "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"},{\"role\":\"assistant\",\"content\":\"yo\"}]}\n\n\
             {\"messages\":[{\"role\":\"tool\",\"content\":\"x\"}]}\n",
        )
        .unwrap();
        let err = load_conversations(&path).unwrap_err().to_string();
        assert!(
            err.contains("sft.jsonl:3") && err.contains("unknown role `tool`"),
            "{err}"
        );
        std::fs::write(
            &path,
            "{\"conversations\":[{\"from\":\"human\",\"value\":\"hi\"}]}\n",
        )
        .unwrap();
        let err = load_conversations(&path).unwrap_err().to_string();
        assert!(
            err.contains("sft.jsonl:1") && err.contains("no assistant turn"),
            "{err}"
        );
    }
}
