//! Reading and writing Hugging Face checkpoints: round trips, shards, dtypes, and the errors that
//! malformed directories give.
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use allam::model::{HfConfig, PretrainedModel, SaveOptions, StorageDtype, TokenBatch};
use burn::tensor::Device;
use safetensors::SafeTensors;
use safetensors::tensor::TensorView;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn logits(model: &PretrainedModel) -> Vec<f32> {
    let batch = TokenBatch::single(&[1, 5, 9, 33, 2, 17, 60, 44]);
    model
        .model
        .forward(&batch)
        .unwrap()
        .into_data()
        .convert::<f32>()
        .try_into_vec()
        .unwrap()
}

fn load(dir: &Path) -> Result<PretrainedModel, allam::model::ModelError> {
    PretrainedModel::load(dir, &Device::flex())
}

#[test]
fn save_then_load_gives_identical_logits() {
    for (name, dtype) in [
        ("tiny-gqa-untied", StorageDtype::F32),
        ("tiny-mha-tied-bf16", StorageDtype::Bf16),
        ("tiny-llama3-rope-scaling", StorageDtype::F32),
        ("tiny-qwen2-bias", StorageDtype::F32),
    ] {
        let original = load(&fixture(name)).unwrap();
        let out = tempfile::tempdir().unwrap();
        original
            .save(
                out.path(),
                &SaveOptions {
                    dtype,
                    max_shard_bytes: None,
                },
            )
            .unwrap();
        let again = load(out.path()).unwrap();
        assert_eq!(logits(&original), logits(&again), "{name}");
        // the tokenizer and generation config travel with the weights
        for file in [
            "tokenizer.json",
            "tokenizer_config.json",
            "generation_config.json",
        ] {
            assert!(out.path().join(file).exists(), "{name}: {file}");
        }
        let config = HfConfig::from_file(out.path().join("config.json")).unwrap();
        assert_eq!(config.to_llama_config().unwrap(), original.model.config);
        // the family, rotary scaling and every tensor (biases included) are written back as read
        for key in ["model_type", "architectures", "rope_parameters"] {
            assert_eq!(
                config.raw.get(key),
                original.hf_config.raw.get(key),
                "{name}: {key}"
            );
        }
        let names = |dir: &Path| {
            let bytes = std::fs::read(dir.join("model.safetensors")).unwrap();
            let mut names: Vec<String> = SafeTensors::deserialize(&bytes)
                .unwrap()
                .names()
                .into_iter()
                .map(str::to_string)
                .collect();
            names.sort();
            names
        };
        assert_eq!(names(out.path()), names(&fixture(name)), "{name}");
    }
}

#[test]
fn a_sharded_save_loads_back() {
    let original = load(&fixture("tiny-gqa-untied")).unwrap();
    let out = tempfile::tempdir().unwrap();
    let options = SaveOptions {
        dtype: StorageDtype::F32,
        max_shard_bytes: Some(60_000),
    };
    original.save(out.path(), &options).unwrap();
    let index: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.path().join("model.safetensors.index.json")).unwrap(),
    )
    .unwrap();
    let shards: std::collections::BTreeSet<&str> = index["weight_map"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(shards.len() > 3, "{shards:?}");
    assert!(!out.path().join("model.safetensors").exists());
    for shard in &shards {
        assert!(std::fs::metadata(out.path().join(shard)).unwrap().len() < 60_000 + 4096);
    }
    assert_eq!(logits(&original), logits(&load(out.path()).unwrap()));
    // saving again unsharded into the same directory removes the shards
    original
        .save(
            out.path(),
            &SaveOptions {
                dtype: StorageDtype::F32,
                max_shard_bytes: None,
            },
        )
        .unwrap();
    assert!(!out.path().join("model.safetensors.index.json").exists());
    assert_eq!(logits(&original), logits(&load(out.path()).unwrap()));
}

#[test]
fn bf16_export_matches_bf16_rounding_and_records_the_dtype() {
    let original = load(&fixture("tiny-gqa-untied")).unwrap();
    let out = tempfile::tempdir().unwrap();
    original
        .save(
            out.path(),
            &SaveOptions {
                dtype: StorageDtype::Bf16,
                max_shard_bytes: None,
            },
        )
        .unwrap();
    let config = HfConfig::from_file(out.path().join("config.json")).unwrap();
    assert_eq!(config.storage_dtype().unwrap(), Some(StorageDtype::Bf16));
    assert_eq!(config.raw["torch_dtype"], "bfloat16");
    let bytes = std::fs::read(out.path().join("model.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let view = st.tensor("model.layers.0.self_attn.q_proj.weight").unwrap();
    assert_eq!(view.dtype(), safetensors::Dtype::BF16);
    // Every stored value is the f32 weight rounded to bf16.
    let src = std::fs::read(fixture("tiny-gqa-untied").join("model.safetensors")).unwrap();
    let src = SafeTensors::deserialize(&src).unwrap();
    let f32s: Vec<f32> = src
        .tensor("model.layers.0.self_attn.q_proj.weight")
        .unwrap()
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    let stored: Vec<u16> = view
        .data()
        .chunks_exact(2)
        .map(|b| u16::from_le_bytes(b.try_into().unwrap()))
        .collect();
    for (f, s) in f32s.iter().zip(&stored) {
        assert_eq!(half::bf16::from_f32(*f).to_bits(), *s);
    }
    // The transformers-5 fixture keeps its `dtype` key style.
    let tied = load(&fixture("tiny-mha-tied-bf16")).unwrap();
    tied.save(
        out.path(),
        &SaveOptions {
            dtype: StorageDtype::F16,
            max_shard_bytes: None,
        },
    )
    .unwrap();
    let config = HfConfig::from_file(out.path().join("config.json")).unwrap();
    assert_eq!(config.raw["dtype"], "float16");
    assert!(config.raw.contains_key("rope_parameters") && !config.raw.contains_key("rope_theta"));
}

/// Copies the f32 fixture into a temp dir with its weights rewritten by `edit`.
fn broken_checkpoint(
    edit: impl FnOnce(&mut Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)>),
) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let src = fixture("tiny-gqa-untied");
    std::fs::copy(src.join("config.json"), dir.path().join("config.json")).unwrap();
    let bytes = std::fs::read(src.join("model.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut tensors: Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)> = st
        .tensors()
        .into_iter()
        .map(|(n, v)| (n, v.dtype(), v.shape().to_vec(), v.data().to_vec()))
        .collect();
    edit(&mut tensors);
    let views: Vec<(String, TensorView)> = tensors
        .iter()
        .map(|(n, d, s, b)| (n.clone(), TensorView::new(*d, s.clone(), b).unwrap()))
        .collect();
    safetensors::serialize_to_file(
        views,
        None::<HashMap<String, String>>,
        &dir.path().join("model.safetensors"),
    )
    .unwrap();
    dir
}

fn error_of(dir: &Path) -> String {
    load(dir).unwrap_err().to_string()
}

#[test]
fn a_missing_tensor_is_named() {
    let dir = broken_checkpoint(|t| t.retain(|(n, ..)| n != "model.layers.1.mlp.up_proj.weight"));
    let err = error_of(dir.path());
    assert!(
        err.contains("model.layers.1.mlp.up_proj.weight") && err.contains("missing"),
        "{err}"
    );
}

#[test]
fn an_unexpected_tensor_is_named() {
    let dir = broken_checkpoint(|t| {
        let extra = t[0].clone();
        t.push((
            "model.layers.0.self_attn.q_proj.bias".into(),
            extra.1,
            extra.2,
            extra.3,
        ));
    });
    let err = error_of(dir.path());
    assert!(
        err.contains("model.layers.0.self_attn.q_proj.bias") && err.contains("unexpected"),
        "{err}"
    );
}

#[test]
fn a_misshaped_tensor_is_named_with_both_shapes() {
    let dir = broken_checkpoint(|t| {
        let e = t.iter_mut().find(|(n, ..)| n == "model.norm.weight").unwrap();
        e.2 = vec![e.2[0] / 2, 2];
    });
    let err = error_of(dir.path());
    assert!(
        err.contains("model.norm.weight") && err.contains("[32, 2]") && err.contains("[64]"),
        "{err}"
    );
}

#[test]
fn corrupt_files_and_configs_give_errors_naming_them() {
    let dir = broken_checkpoint(|_| {});
    std::fs::write(dir.path().join("model.safetensors"), b"not a safetensors file").unwrap();
    let err = error_of(dir.path());
    assert!(
        err.contains("model.safetensors") && err.contains("not a valid safetensors"),
        "{err}"
    );

    let dir = broken_checkpoint(|_| {});
    std::fs::remove_file(dir.path().join("model.safetensors")).unwrap();
    assert!(error_of(dir.path()).contains("model.safetensors"));

    let dir = broken_checkpoint(|_| {});
    let config = std::fs::read_to_string(dir.path().join("config.json")).unwrap();
    std::fs::write(
        dir.path().join("config.json"),
        config.replace("\"mlp_bias\": false", "\"mlp_bias\": true"),
    )
    .unwrap();
    let err = error_of(dir.path());
    assert!(
        err.contains("model.safetensors") && err.contains("`model.layers.0.mlp.gate_proj.bias`: missing"),
        "{err}"
    );
    std::fs::write(
        dir.path().join("config.json"),
        config.replace("\"silu\"", "\"gelu\""),
    )
    .unwrap();
    let err = error_of(dir.path());
    assert!(
        err.contains("config.json") && err.contains("`hidden_act`"),
        "{err}"
    );

    std::fs::write(dir.path().join("config.json"), "{ not json").unwrap();
    let err = error_of(dir.path());
    assert!(
        err.contains("config.json") && err.contains("invalid JSON"),
        "{err}"
    );
}

#[test]
fn an_index_naming_a_missing_shard_is_an_error() {
    let original = load(&fixture("tiny-gqa-untied")).unwrap();
    let out = tempfile::tempdir().unwrap();
    original
        .save(
            out.path(),
            &SaveOptions {
                dtype: StorageDtype::F32,
                max_shard_bytes: Some(100_000),
            },
        )
        .unwrap();
    let index_path = out.path().join("model.safetensors.index.json");
    let mut index: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&index_path).unwrap()).unwrap();
    index["weight_map"]["model.norm.weight"] = "model-00009-of-00009.safetensors".into();
    std::fs::write(&index_path, index.to_string()).unwrap();
    let err = error_of(out.path());
    assert!(err.contains("model-00009-of-00009.safetensors"), "{err}");
}

/// NaN or infinite weights are found by name, and generation stops with an error instead of
/// sampling from non-finite logits.
#[test]
fn non_finite_weights_are_named_and_stop_generation() {
    let dir = broken_checkpoint(|tensors| {
        let (_, _, _, bytes) = tensors
            .iter_mut()
            .find(|(name, ..)| name == "model.layers.1.mlp.up_proj.weight")
            .unwrap();
        bytes[8..12].copy_from_slice(&f32::NAN.to_le_bytes());
    });
    let model = load(dir.path()).unwrap().model;
    assert_eq!(
        allam::model::checkpoint::non_finite_tensors(&model),
        ["model.layers.1.mlp.up_proj.weight"]
    );
    let clean = load(&fixture("tiny-gqa-untied")).unwrap().model;
    assert!(allam::model::checkpoint::non_finite_tensors(&clean).is_empty());
    let config = allam::model::GenerationConfig::greedy(3);
    let err = allam::model::generate::generate(&model, &[vec![1, 5, 9]], &config, |_, _| false)
        .unwrap_err()
        .to_string();
    assert!(err.contains("not finite"), "{err}");
}
