//! `--chat`: an item's prompt through the model's chat template, as lm-evaluation-harness 0.4.13
//! scores a `multiple_choice` task with `apply_chat_template` on and `fewshot_as_multiturn` off
//! (lighteval 0.10 for the `-oall` formats):
//!
//! - the turns are the format's [`Prompt::messages`]: the harness' description as the system
//!   turn and the examples and question as one user turn, each example's answer after its
//!   `" "` (`ConfigurableTask.fewshot_context`, `build_qa_turn`, `multiturn_to_singleturn` in
//!   `lm_eval/api/task.py` and `lm_eval/api/utils.py`); nothing is stripped but what the template
//!   itself strips;
//! - the template is rendered with the generation prompt; when it fails with a system turn
//!   (templates that raise on one), it is rendered again without it, the description dropped,
//!   as `HFLM.apply_chat_template` (`lm_eval/models/huggingface.py`) retries;
//! - each choice follows the generation prompt directly: `construct_requests` sets the target
//!   delimiter to `""` under a chat template unless a `gen_prefix` is configured, which no task
//!   here has (`lm_eval/api/task.py`: `target_delimiter = (self.config.target_delimiter if
//!   self.config.gen_prefix and not ends_with_whitespace(self.config.gen_prefix) else "")`);
//!   lighteval scores the bare choices in both modes.
//!
//! The scored text then starts with the tokenizer's special tokens unless it already starts with
//! the BOS token (the harness' `has_bos_prefix` in `HFLM.tok_encode`): see
//! [`crate::multiple_choice::adds_special_tokens`].
use allam_model::{ChatMessage, TextTokenizer};

use crate::error::Result;
use crate::formats::{Prompt, RenderedItem};

/// `prompt` rendered by `tokenizer`'s chat template with the generation prompt, each choice
/// continuing it without a delimiter.
pub fn chat_item(prompt: &Prompt, tokenizer: &TextTokenizer) -> Result<RenderedItem> {
    let context = match tokenizer.apply_chat_template(&prompt.messages, true) {
        Ok(context) => context,
        Err(first) if prompt.messages.iter().any(|m| m.role == "system") => {
            let turns: Vec<ChatMessage> = prompt
                .messages
                .iter()
                .filter(|m| m.role != "system")
                .cloned()
                .collect();
            // The harness' retry; when it fails too, both reasons are told.
            tokenizer.apply_chat_template(&turns, true).map_err(|second| {
                crate::error::EvalError::Input(format!(
                    "the chat template failed with the system turn ({first}) and without it ({second})"
                ))
            })?
        }
        Err(e) => return Err(e.into()),
    };
    Ok(RenderedItem {
        context,
        continuations: prompt.choices.clone(),
        choices: prompt.choices.clone(),
    })
}
