//! A model directory as downloaded from the Hub: tokenizer with and without BOS in its
//! post-processor, chat template, generation config, and text generation through them.
use std::path::{Path, PathBuf};

use allam::model::generate::{FinishReason, generate};
use allam::model::{ChatMessage, GenerationConfig, PretrainedModel};
use burn::tensor::Device;

fn load(name: &str) -> PretrainedModel {
    let dir: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    PretrainedModel::load(&dir, &Device::flex()).unwrap()
}

#[test]
fn special_tokens_follow_the_post_processor() {
    let with_bos = load("tiny-gqa-untied");
    let ids = with_bos.encode_prompt("the cat sat", false).unwrap();
    assert_eq!(ids[0], 1, "{ids:?}");
    let without_bos = load("tiny-mha-tied-bf16");
    let ids = without_bos.encode_prompt("the cat sat", false).unwrap();
    assert_ne!(ids[0], 1, "{ids:?}");
    let text = without_bos.tokenizer().unwrap().decode(&ids, true).unwrap();
    assert_eq!(text, "the cat sat");
}

#[test]
fn chat_templates_render_as_transformers_does() {
    let llama2 = load("tiny-gqa-untied");
    let tokenizer = llama2.tokenizer().unwrap();
    let messages = [
        ChatMessage::new("system", "be brief"),
        ChatMessage::new("user", "hi"),
        ChatMessage::new("assistant", "hello"),
        ChatMessage::new("user", "bye"),
    ];
    assert_eq!(
        tokenizer.apply_chat_template(&messages, true).unwrap(),
        "<s>[INST] <<SYS>>\nbe brief\n<</SYS>>\n\nhi [/INST] hello </s><s>[INST] bye [/INST]"
    );
    let err = tokenizer
        .apply_chat_template(&[ChatMessage::new("assistant", "x")], true)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("tokenizer_config.json") && err.contains("alternate"),
        "{err}"
    );
    // a chat prompt is encoded without a second BOS: the template placed it
    let ids = llama2.encode_prompt("hi", true).unwrap();
    assert_eq!(ids.iter().filter(|i| **i == 1).count(), 1, "{ids:?}");

    let chatml = load("tiny-mha-tied-bf16");
    assert_eq!(
        chatml
            .tokenizer()
            .unwrap()
            .apply_chat_template(&messages[1..2], true)
            .unwrap(),
        "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    );
}

#[test]
fn text_generation_equals_id_generation_and_stops_on_strings() {
    let model = load("tiny-gqa-untied");
    let mut config = GenerationConfig::greedy(8);
    config.eos_token_ids = vec![95]; // an id the greedy path does not produce
    let prompt = model.encode_prompt("the cat sat", false).unwrap();
    let by_ids = generate(&model.model, std::slice::from_ref(&prompt), &config, |_, _| false).unwrap();
    let by_text = model.generate_streaming(&prompt, &config, |_| {}).unwrap();
    assert_eq!(by_text.ids, by_ids[0].ids);
    let tokenizer = model.tokenizer().unwrap();
    assert_eq!(by_text.text, tokenizer.decode(&by_ids[0].ids, true).unwrap());

    // Stop as soon as the text contains what the first three tokens spell.
    let stop = tokenizer.decode(&by_ids[0].ids[..3], true).unwrap();
    let stop = stop.trim().to_string();
    assert!(!stop.is_empty());
    config.stop_strings = vec![stop.clone()];
    let stopped = model.generate_streaming(&prompt, &config, |_| {}).unwrap();
    assert_eq!(stopped.finish_reason, FinishReason::StopString);
    assert!(
        stopped.ids.len() <= 3 && stopped.text.contains(&stop),
        "{stopped:?}"
    );
}

#[test]
fn eos_ends_generation_and_comes_from_generation_config() {
    let model = load("tiny-gqa-untied");
    assert_eq!(model.eos_token_ids(), vec![2]);
    let prompt = model.encode_prompt("the cat sat", false).unwrap();
    let mut config = GenerationConfig::greedy(8);
    config.eos_token_ids = vec![95];
    let free = generate(&model.model, std::slice::from_ref(&prompt), &config, |_, _| false).unwrap();
    // Declare the third generated token an end-of-sequence token: generation stops right there.
    config.eos_token_ids = vec![free[0].ids[2]];
    let first = free[0].ids.iter().position(|i| *i == free[0].ids[2]).unwrap();
    let stopped = generate(&model.model, &[prompt], &config, |_, _| false).unwrap();
    assert_eq!(stopped[0].finish_reason, FinishReason::Eos);
    assert_eq!(stopped[0].ids, free[0].ids[..=first]);
}
