//! Chat templates on real tokenizers (the repository's fixtures, grown with ChatML tokens in code):
//! masks cover exactly the assistant turns and their closing token, Jinja spans equal the built-in
//! templates' spans, and BOS is never doubled.
use std::path::{Path, PathBuf};

use allam_align::template::{encode_conversation, prompt_ids, tokenize};
use allam_align::{
    ChatTemplate, Conversation, MarkStyle, Message, Role, SftExample, SpecialTokens, inspect_tokens,
};
use allam_model::TextTokenizer;

/// HF-style ChatML template, as Qwen / OpenHermes ship it.
const CHATML_JINJA: &str = "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(name)
}

/// The Llama-2 fixture: BOS added by the post-processor, Llama-2 Jinja template.
fn llama_tokenizer() -> TextTokenizer {
    TextTokenizer::from_file(&fixture("tiny-gqa-untied").join("tokenizer.json")).unwrap()
}

/// A fixture tokenizer with `<|im_start|>` and `<|im_end|>` added as special tokens, saved to `dir`.
fn chatml_tokenizer(base: &str, dir: &Path) -> TextTokenizer {
    let mut inner = tokenizers::Tokenizer::from_file(fixture(base).join("tokenizer.json")).unwrap();
    inner.add_special_tokens(&[
        tokenizers::AddedToken::from("<|im_start|>", true),
        tokenizers::AddedToken::from("<|im_end|>", true),
    ]);
    let path = dir.join("tokenizer.json");
    inner.save(&path, false).unwrap();
    std::fs::write(
        dir.join("tokenizer_config.json"),
        r#"{"bos_token": "<s>", "eos_token": "</s>"}"#,
    )
    .unwrap();
    TextTokenizer::from_file(&path).unwrap()
}

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

/// The decoded text of every run of trainable tokens.
fn trained_runs(ids: &[u32], mask: &[bool], tokenizer: &TextTokenizer) -> Vec<String> {
    let mut runs = Vec::new();
    let mut i = 0;
    while i < ids.len() {
        if mask[i] {
            let end = (i..ids.len()).find(|&j| !mask[j]).unwrap_or(ids.len());
            runs.push(tokenizer.decode(&ids[i..end], false).unwrap());
            i = end;
        } else {
            i += 1;
        }
    }
    runs
}

#[test]
fn llama2_masks_cover_the_assistant_turns_and_eos() {
    let tokenizer = llama_tokenizer();
    let (ids, mask) = encode_conversation(&ChatTemplate::Llama2, &conversation(), &tokenizer).unwrap();
    // one BOS per round, from the template; the post-processor adds none on top
    assert_eq!(ids[0], 1);
    assert_eq!(ids.iter().filter(|&&i| i == 1).count(), 2, "{ids:?}");
    assert_eq!(
        trained_runs(&ids, &mask, &tokenizer),
        ["hello </s>", "yes, it is time. </s>"]
    );
    // each run ends on EOS, and nothing else is trained
    let eos_positions: Vec<usize> = (0..ids.len()).filter(|&i| ids[i] == 2).collect();
    assert_eq!(eos_positions.len(), 2);
    for &p in &eos_positions {
        assert!(mask[p] && mask.get(p + 1) != Some(&true));
    }
    // the same text as one encode with special tokens parsed: no segment-boundary artefacts
    let text = "<s>[INST] <<SYS>>\nbe brief\n<</SYS>>\n\nhi [/INST] hello </s><s>[INST] is it time to eat? [/INST] yes, it is time. </s>";
    assert_eq!(ids, tokenizer.encode(text, false).unwrap());

    let inspected = inspect_tokens(&ids, &mask, &tokenizer, MarkStyle::Brackets).unwrap();
    assert!(inspected.contains("[[ hello </s>]]<s>"), "{inspected}");
    assert!(inspected.ends_with("[[ yes, it is time. </s>]]"), "{inspected}");
}

#[test]
fn the_tokenizers_own_llama2_jinja_template_gives_the_builtin_spans() {
    let tokenizer = llama_tokenizer();
    let special = SpecialTokens::from_tokenizer(&tokenizer);
    let jinja = ChatTemplate::from_tokenizer(&tokenizer).unwrap();
    assert_eq!(
        jinja.render(&conversation(), &special).unwrap(),
        ChatTemplate::Llama2.render(&conversation(), &special).unwrap()
    );
}

#[test]
fn chatml_jinja_spans_equal_the_builtin_spans() {
    let dir = tempfile::tempdir().unwrap();
    let tokenizer = chatml_tokenizer("tiny-mha-tied-bf16", dir.path());
    let special = SpecialTokens::from_tokenizer(&tokenizer);
    let jinja = ChatTemplate::Jinja(CHATML_JINJA.into());
    let builtin = jinja.render(&conversation(), &special).unwrap();
    assert_eq!(
        builtin,
        ChatTemplate::ChatMl.render(&conversation(), &special).unwrap()
    );
    let (ids, mask) = tokenize(&builtin, &tokenizer).unwrap();
    assert_eq!(
        (ids.clone(), mask.clone()),
        encode_conversation(&ChatTemplate::ChatMl, &conversation(), &tokenizer).unwrap()
    );
    assert_eq!(
        trained_runs(&ids, &mask, &tokenizer),
        ["hello<|im_end|>", "yes, it is time.<|im_end|>"]
    );
    // no post-processor BOS in this tokenizer, and none in ChatML
    assert!(!ids.contains(&1));
    let im_end = tokenizer.token_to_id("<|im_end|>").unwrap();
    assert_eq!(
        mask.iter()
            .zip(&ids)
            .filter(|(m, i)| **m && **i == im_end)
            .count(),
        2
    );
    assert_eq!(ids.iter().filter(|&&i| i == im_end).count(), 5);

    // the prompt is a prefix of the training ids, ending right before the first trained token
    let prompt = prompt_ids(&jinja, &conversation().messages()[..2], &tokenizer).unwrap();
    let first_trained = mask.iter().position(|&m| m).unwrap();
    assert_eq!(prompt, ids[..first_trained]);

    // shifted labels: the last prompt token predicts the first response token
    let example = SftExample::from_mask(ids.clone(), &mask).unwrap();
    assert_eq!(example.labels[first_trained - 1], ids[first_trained] as i32);
    assert_eq!(example.trained_tokens(), mask.iter().filter(|&&m| m).count());
}

#[test]
fn bos_from_the_post_processor_is_added_once() {
    let dir = tempfile::tempdir().unwrap();
    // Llama-2's tokenizer (post-processor adds <s>) with ChatML tokens: ChatML has no BOS, so the
    // post-processor's is put in front, once.
    let tokenizer = chatml_tokenizer("tiny-gqa-untied", dir.path());
    let (ids, mask) = encode_conversation(&ChatTemplate::ChatMl, &conversation(), &tokenizer).unwrap();
    assert_eq!(ids[0], 1);
    assert!(!mask[0]);
    assert_eq!(ids.iter().filter(|&&i| i == 1).count(), 1);
    // Llama-2 writes <s> itself: still one per round
    let (ids, _) = encode_conversation(&ChatTemplate::Llama2, &conversation(), &tokenizer).unwrap();
    assert_eq!(ids.iter().filter(|&&i| i == 1).count(), 2);
}

#[test]
fn a_turn_not_closed_by_a_special_token_is_refused() {
    // the Llama fixture has no <|im_end|> token: the closing would be ordinary pieces
    let err = encode_conversation(&ChatTemplate::ChatMl, &conversation(), &llama_tokenizer()).unwrap_err();
    assert!(err.to_string().contains("not a special token"), "{err}");
}

/// Meta-Llama-3-8B-Instruct's `chat_template`, as its `tokenizer_config.json` ships it.
const LLAMA3_JINJA: &str = "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}";

fn llama3_special() -> SpecialTokens {
    SpecialTokens {
        bos: Some("<|begin_of_text|>".into()),
        eos: Some("<|eot_id|>".into()),
    }
}

#[test]
fn llama3_renders_what_apply_chat_template_renders() {
    let special = llama3_special();
    let segments = ChatTemplate::Llama3.render(&conversation(), &special).unwrap();
    let text: String = segments.iter().map(|s| s.text.as_str()).collect();
    // apply_chat_template(messages, tokenize=False) with the template above, written out by hand
    let expected = "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nbe brief<|eot_id|>\
        <|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>\
        <|start_header_id|>assistant<|end_header_id|>\n\nhello<|eot_id|>\
        <|start_header_id|>user<|end_header_id|>\n\nis it time to eat?<|eot_id|>\
        <|start_header_id|>assistant<|end_header_id|>\n\nyes, it is time.<|eot_id|>";
    assert_eq!(text, expected);
    let trained: Vec<&str> = segments
        .iter()
        .filter(|s| s.trainable)
        .map(|s| s.text.as_str())
        .collect();
    assert_eq!(trained, ["hello<|eot_id|>", "yes, it is time.<|eot_id|>"]);
    // the same template through the Jinja engine: same text, same trained spans
    let jinja = ChatTemplate::Jinja(LLAMA3_JINJA.into());
    assert_eq!(jinja.render(&conversation(), &special).unwrap(), segments);
    // a prompt ends with the generation prompt
    let prompt = [Message::new(Role::User, " hi ")];
    let rendered: String = ChatTemplate::Llama3
        .render_prompt(&prompt, &special)
        .unwrap()
        .iter()
        .map(|s| s.text.as_str())
        .collect();
    assert_eq!(
        rendered,
        "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>\
         <|start_header_id|>assistant<|end_header_id|>\n\n"
    );
    assert_eq!(ChatTemplate::from_name("llama3").unwrap(), ChatTemplate::Llama3);
}

#[test]
fn chatml_renders_what_apply_chat_template_renders() {
    let segments = ChatTemplate::ChatMl
        .render(&conversation(), &SpecialTokens::llama())
        .unwrap();
    let text: String = segments.iter().map(|s| s.text.as_str()).collect();
    assert_eq!(
        text,
        "<|im_start|>system\nbe brief<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n\
         <|im_start|>assistant\nhello<|im_end|>\n<|im_start|>user\nis it time to eat?<|im_end|>\n\
         <|im_start|>assistant\nyes, it is time.<|im_end|>\n"
    );
}
