//! `config.json` reading and writing against what transformers does.
use super::*;
use crate::config::RopeScaling;

fn parse(text: &str) -> Result<LlamaConfig> {
    HfConfig::from_json_str(text, Path::new("config.json"))?.to_llama_config()
}

const BASE: &str = r#""vocab_size": 32, "hidden_size": 16, "intermediate_size": 24,
    "num_hidden_layers": 1, "num_attention_heads": 4"#;

#[test]
fn defaults_follow_transformers() {
    let c = parse(&format!("{{{BASE}}}")).unwrap();
    assert_eq!(c.num_key_value_heads, 4);
    assert_eq!(c.head_dim, 4);
    assert_eq!(c.rope_theta, 10000.0);
    assert!(!c.tie_word_embeddings);
}

#[test]
fn rope_parameters_win_over_classic_key() {
    let c = parse(&format!(
        r#"{{{BASE}, "rope_theta": 5.0, "rope_parameters": {{"rope_theta": 7.0, "rope_type": "default"}}}}"#
    ))
    .unwrap();
    assert_eq!(c.rope_theta, 7.0);
}

#[test]
fn eos_list_is_kept() {
    let c = parse(&format!(r#"{{{BASE}, "eos_token_id": [2, 7]}}"#)).unwrap();
    assert_eq!(c.eos_token_ids, vec![2, 7]);
}

#[test]
fn unsupported_keys_are_refused_by_name() {
    for (extra, key) in [
        (
            r#""rope_scaling": {"rope_type": "longrope", "factor": 8.0}"#,
            "rope_scaling",
        ),
        (
            r#""rope_parameters": {"rope_theta": 1.0, "rope_type": "llama3", "factor": 8.0}"#,
            "rope_parameters.low_freq_factor",
        ),
        (
            r#""rope_scaling": {"type": "linear", "factor": -2.0}"#,
            "rope_scaling.factor",
        ),
        (r#""partial_rotary_factor": 0.5"#, "partial_rotary_factor"),
        (r#""model_type": "gpt2""#, "model_type"),
        (r#""model_type": "qwen3""#, "model_type"),
        (
            r#""model_type": "qwen2", "architectures": ["LlamaForCausalLM"]"#,
            "architectures",
        ),
        (r#""attention_bias": 1"#, "attention_bias"),
        (r#""hidden_act": "gelu""#, "hidden_act"),
        (r#""num_key_value_heads": 3"#, "num_key_value_heads"),
        (r#""sliding_window": 4096"#, "sliding_window"),
        (
            r#""model_type": "mistral", "sliding_window": 0"#,
            "sliding_window",
        ),
    ] {
        let err = parse(&format!("{{{BASE}, {extra}}}")).unwrap_err().to_string();
        assert!(err.contains(&format!("`{key}`")), "{extra}: {err}");
    }
    let err = parse(r#"{"hidden_size": 16, "num_attention_heads": 4}"#)
        .unwrap_err()
        .to_string();
    assert!(err.contains("`vocab_size`") && err.contains("missing"), "{err}");
}

#[test]
fn rope_scaling_reads_both_key_styles() {
    let llama3 = RopeScaling::Llama3 {
        factor: 8.0,
        low_freq_factor: 1.0,
        high_freq_factor: 4.0,
        original_max_position_embeddings: 8192.0,
    };
    let params = r#""factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
        "original_max_position_embeddings": 8192"#;
    let v5 = parse(&format!(
        r#"{{{BASE}, "rope_parameters": {{"rope_type": "llama3", "rope_theta": 500000.0, {params}}}}}"#
    ))
    .unwrap();
    let classic = parse(&format!(
        r#"{{{BASE}, "rope_theta": 500000.0, "rope_scaling": {{"type": "llama3", {params}}}}}"#
    ))
    .unwrap();
    assert_eq!(v5.rope_scaling, Some(llama3));
    assert_eq!(v5, classic);
    assert_eq!(v5.rope_theta, 500000.0);
    let yarn = parse(&format!(
        r#"{{{BASE}, "rope_scaling": {{"rope_type": "yarn", "factor": 4.0}}}}"#
    ))
    .unwrap();
    assert_eq!(
        yarn.rope_scaling,
        Some(RopeScaling::Yarn {
            factor: 4.0,
            original_max_position_embeddings: None,
            attention_factor: None,
            beta_fast: 32.0,
            beta_slow: 1.0,
            mscale: None,
            mscale_all_dim: None,
            truncate: true,
        })
    );
    let plain = parse(&format!(
        r#"{{{BASE}, "rope_scaling": {{"rope_type": "default"}}}}"#
    ))
    .unwrap();
    assert_eq!(plain.rope_scaling, None);
}

#[test]
fn families_set_biases_and_windows_as_transformers_does() {
    let llama = parse(&format!(
        r#"{{{BASE}, "attention_bias": true, "mlp_bias": true}}"#
    ))
    .unwrap();
    assert!(llama.qkv_bias && llama.o_proj_bias && llama.mlp_bias);
    let qwen = parse(&format!(
        r#"{{{BASE}, "model_type": "qwen2", "sliding_window": 32, "use_sliding_window": false}}"#
    ))
    .unwrap();
    assert!(qwen.qkv_bias && !qwen.o_proj_bias && !qwen.mlp_bias);
    assert_eq!(qwen.sliding_window, None);
    let sliding = parse(&format!(
        r#"{{{BASE}, "model_type": "qwen2", "sliding_window": 32, "use_sliding_window": true, "max_window_layers": 0}}"#
    ))
    .unwrap();
    assert_eq!(sliding.sliding_window, Some(32));
    let typed = parse(&format!(
        r#"{{{BASE}, "model_type": "qwen2", "sliding_window": 16, "layer_types": ["sliding_attention"]}}"#
    ))
    .unwrap();
    assert_eq!(typed.sliding_window, Some(16));
    let mistral = parse(&format!(
        r#"{{{BASE}, "model_type": "mistral", "architectures": ["MistralForCausalLM"], "sliding_window": 4096}}"#
    ))
    .unwrap();
    assert_eq!(mistral.sliding_window, Some(4096));
    assert!(!mistral.qkv_bias);
    assert_eq!(
        mistral.num_parameters() + 3 * 16,
        parse(&format!(r#"{{{BASE}, "model_type": "qwen2"}}"#))
            .unwrap()
            .num_parameters()
    );
}

/// The published shapes of two bases (the keys of their `config.json`) give their published
/// parameter counts: Llama-3.2-1B 1,235,814,400 and Qwen2.5-0.5B 494,032,768.
#[test]
fn modern_base_configs_parse_with_their_published_sizes() {
    let llama = parse(
        r#"{"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 128256,
        "hidden_size": 2048, "intermediate_size": 8192, "num_hidden_layers": 16,
        "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 64, "hidden_act": "silu",
        "attention_bias": false, "mlp_bias": false, "rms_norm_eps": 1e-05, "rope_theta": 500000.0,
        "rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
        "original_max_position_embeddings": 8192, "rope_type": "llama3"},
        "max_position_embeddings": 131072, "tie_word_embeddings": true, "bos_token_id": 128000,
        "eos_token_id": 128001, "torch_dtype": "bfloat16"}"#,
    )
    .unwrap();
    assert_eq!(llama.num_parameters(), 1_235_814_400);
    assert!(matches!(llama.rope_scaling, Some(RopeScaling::Llama3 { factor, .. }) if factor == 32.0));
    let qwen = parse(
        r#"{"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "vocab_size": 151936,
        "hidden_size": 896, "intermediate_size": 4864, "num_hidden_layers": 24,
        "num_attention_heads": 14, "num_key_value_heads": 2, "hidden_act": "silu",
        "max_position_embeddings": 32768, "max_window_layers": 21, "rms_norm_eps": 1e-06,
        "rope_theta": 1000000.0, "rope_scaling": null, "sliding_window": 32768,
        "use_sliding_window": false, "tie_word_embeddings": true, "torch_dtype": "bfloat16"}"#,
    )
    .unwrap();
    assert_eq!(qwen.num_parameters(), 494_032_768);
    assert_eq!((qwen.head_dim, qwen.sliding_window), (64, None));
}

/// Sizes whose parameter count overflows (or exceeds any machine) are refused, not wrapped.
#[test]
fn absurd_sizes_are_refused_not_wrapped() {
    let huge = "18446744073709551615";
    for key in [
        "hidden_size",
        "vocab_size",
        "intermediate_size",
        "num_hidden_layers",
    ] {
        let text = format!("{{{BASE}}}").replacen(
            &format!("\"{key}\": "),
            &format!("\"{key}\": {huge}, \"x_{key}\": "),
            1,
        );
        let err = parse(&text).unwrap_err().to_string();
        assert!(
            err.contains("parameters") || err.contains("multiple"),
            "{key}: {err}"
        );
    }
    let big = parse(&format!("{{{BASE}}}").replace("\"vocab_size\": 32", "\"vocab_size\": 30000000000000"));
    assert!(big.unwrap_err().to_string().contains("more than"), "vocab 3e13");
}

#[test]
fn a_fresh_config_reads_back_as_the_same_model() {
    let base = || LlamaConfig::new(32, 16, 24, 2, 4, 2, 4);
    let llama3 = RopeScaling::Llama3 {
        factor: 8.0,
        low_freq_factor: 1.0,
        high_freq_factor: 4.0,
        original_max_position_embeddings: 16.0,
    };
    for (config, family) in [
        (base(), ModelFamily::Llama),
        (
            base()
                .with_qkv_bias(true)
                .with_o_proj_bias(true)
                .with_mlp_bias(true),
            ModelFamily::Llama,
        ),
        (base().with_rope_scaling(Some(llama3)), ModelFamily::Llama),
        (base().with_qkv_bias(true), ModelFamily::Qwen2),
        (
            base().with_qkv_bias(true).with_sliding_window(Some(8)),
            ModelFamily::Qwen2,
        ),
        (base().with_sliding_window(Some(8)), ModelFamily::Mistral),
    ] {
        let hf = HfConfig::new(&config);
        let again = HfConfig::from_json_str(&hf.to_json_string(), Path::new("c.json")).unwrap();
        assert_eq!(again.family().unwrap(), family, "{config:?}");
        assert_eq!(again.to_llama_config().unwrap(), config);
    }
}

#[test]
fn update_round_trips_and_keeps_style() {
    let text = format!(
        r#"{{{BASE}, "rope_parameters": {{"rope_theta": 7.0, "rope_type": "default"}}, "custom": 1}}"#
    );
    let mut hf = HfConfig::from_json_str(&text, Path::new("c.json")).unwrap();
    let mut c = hf.to_llama_config().unwrap();
    c.vocab_size = 64;
    hf.update(&c);
    assert!(!hf.raw.contains_key("rope_theta"));
    assert_eq!(hf.raw["custom"], json!(1));
    let again = HfConfig::from_json_str(&hf.to_json_string(), Path::new("c.json")).unwrap();
    assert_eq!(again.to_llama_config().unwrap(), c);
}
