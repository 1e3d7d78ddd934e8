//! The model against `transformers`: logits, log-probs and greedy continuations of the fixture
//! checkpoints (made by `transformers` 5.24: Llama-2 style GQA and MHA/bf16, Llama-3 rope scaling,
//! Qwen2 q/k/v biases, and classic-key copies of the last two), and the equivalences every other
//! stage relies on — on every device of [`test_devices`] (the CPU, and WGPU/CUDA where built in and
//! present), each against the same references and the same tolerances.
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use allam::model::device::test_devices;
use allam::model::generate::{GenerationConfig, generate};
use allam::model::score::{score_continuations, sequence_logprobs};
use allam::model::{KvCache, Llama, LlamaConfig, PaddingSide, PretrainedModel, TokenBatch};
use burn::tensor::Device;
use serde_json::Value;

/// Every fixture checkpoint: the four made by `transformers`, and the Llama-3 and Qwen2 ones with
/// their `config.json` rewritten in classic keys (`rope_theta` + `rope_scaling` with `type`,
/// `torch_dtype`), which must load to the same model.
const FIXTURES: [&str; 6] = [
    "tiny-gqa-untied",
    "tiny-mha-tied-bf16",
    "tiny-llama3-rope-scaling",
    "tiny-qwen2-bias",
    "classic/tiny-llama3-rope-scaling",
    "classic/tiny-qwen2-bias",
];

fn fixture(name: &str) -> PathBuf {
    match name.strip_prefix("classic/") {
        Some(name) => classic_copies().join(name),
        None => Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name),
    }
}

/// A directory holding classic-key copies of the transformers-5 fixtures, written once per run.
fn classic_copies() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        for name in ["tiny-llama3-rope-scaling", "tiny-qwen2-bias"] {
            let (from, to) = (fixture(name), dir.path().join(name));
            std::fs::create_dir_all(&to).unwrap();
            for file in ["model.safetensors", "reference.json", "generation_config.json"] {
                std::fs::copy(from.join(file), to.join(file)).unwrap();
            }
            let text = std::fs::read_to_string(from.join("config.json")).unwrap();
            let mut config: serde_json::Map<String, Value> = serde_json::from_str(&text).unwrap();
            let Some(Value::Object(mut rope)) = config.remove("rope_parameters") else {
                panic!("{name}: expected rope_parameters");
            };
            config.insert("rope_theta".into(), rope.remove("rope_theta").unwrap());
            let kind = rope.remove("rope_type").unwrap();
            if kind != "default" {
                rope.insert("type".into(), kind);
                config.insert("rope_scaling".into(), Value::Object(rope));
            }
            let dtype = config.remove("dtype").unwrap();
            config.insert("torch_dtype".into(), dtype);
            std::fs::write(
                to.join("config.json"),
                serde_json::to_string_pretty(&config).unwrap(),
            )
            .unwrap();
        }
        dir
    })
    .path()
}

fn reference(name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixture(name).join("reference.json")).unwrap()).unwrap()
}

fn load(name: &str, device: &Device) -> PretrainedModel {
    PretrainedModel::load(&fixture(name), device).unwrap()
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

fn floats(v: &Value) -> Vec<f32> {
    let mut out = Vec::new();
    fn walk(v: &Value, out: &mut Vec<f32>) {
        match v {
            Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            x => out.push(x.as_f64().unwrap() as f32),
        }
    }
    walk(v, &mut out);
    out
}

fn host(t: burn::tensor::Tensor<3>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_into_vec().unwrap()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

#[test]
fn logits_of_every_position_match_transformers() {
    for (dev, device) in test_devices() {
        for name in FIXTURES {
            let model = load(name, &device).model;
            let r = reference(name);
            let rows: Vec<Vec<u32>> = r["input_ids"].as_array().unwrap().iter().map(ids).collect();
            let batch = TokenBatch::padded(&rows, 0, PaddingSide::Right);
            let got = host(model.forward(&batch).unwrap());
            let diff = max_abs_diff(&got, &floats(&r["logits"]));
            assert!(diff < 1e-4, "{dev} {name}: max |Δlogit| = {diff}");
        }
    }
}

#[test]
fn token_logprobs_match_transformers() {
    for (dev, device) in test_devices() {
        for name in FIXTURES {
            let model = load(name, &device).model;
            let r = reference(name);
            for (row, (input, expected)) in r["input_ids"]
                .as_array()
                .unwrap()
                .iter()
                .zip(r["next_token_logprobs"].as_array().unwrap())
                .enumerate()
            {
                let got = sequence_logprobs(&model, &ids(input)).unwrap();
                let diff = max_abs_diff(&got, &floats(expected));
                assert!(diff < 1e-4, "{dev} {name} row {row}: max |Δlogprob| = {diff}");
                if let Some(expected_sum) = r["sum_logprob"][row].as_f64() {
                    let sum: f32 = got.iter().sum();
                    let expected_sum = expected_sum as f32;
                    assert!(
                        (sum - expected_sum).abs() < 1e-3,
                        "{dev} {name} row {row}: {sum} vs {expected_sum}"
                    );
                }
            }
        }
    }
}

#[test]
fn greedy_continuation_matches_transformers() {
    for (dev, device) in test_devices() {
        for name in FIXTURES {
            let model = load(name, &device).model;
            let r = reference(name);
            let expected = ids(&r["greedy_continuation"]);
            let mut config = GenerationConfig::greedy(expected.len());
            config.eos_token_ids = vec![u32::MAX]; // the reference ran to max_new_tokens
            let out = generate(&model, &[ids(&r["greedy_prompt"])], &config, |_, _| false).unwrap();
            assert_eq!(out[0].ids, expected, "{dev} {name}");
        }
    }
}

/// Logits of every position of `seq` decoded with the KV cache: a `prefill`-token prompt, then one
/// token at a time.
fn cached_decoding(model: &Llama, seq: &[u32], prefill: usize) -> Vec<f32> {
    let mut cache = KvCache::new(&model.config, 1, seq.len(), &model.device());
    let mut got = host(
        model
            .forward_cached(&TokenBatch::single(&seq[..prefill]), &mut cache)
            .unwrap(),
    );
    for (i, id) in seq.iter().enumerate().skip(prefill) {
        let mut step = TokenBatch::single(&[*id]);
        step.position_ids = vec![i as u32];
        got.extend(host(model.forward_cached(&step, &mut cache).unwrap()));
    }
    got
}

#[test]
fn kv_cache_decoding_equals_the_full_forward() {
    for (dev, device) in test_devices() {
        for name in FIXTURES {
            let model = load(name, &device).model;
            // Longer than the Llama-3 fixture's original context (16), so its scaling matters.
            let seq: Vec<u32> = (0..24).map(|i| (i * 37 + 5) % 80).collect();
            let full = host(model.forward(&TokenBatch::single(&seq)).unwrap());
            let got = cached_decoding(&model, &seq, 4);
            assert_eq!(got.len(), seq.len() * model.config.vocab_size);
            let diff = max_abs_diff(&got, &full);
            assert!(diff < 1e-4, "{dev} {name}: max |Δ| = {diff}");
        }
    }
}

/// A model wide enough that decode-sized projections are split over threads on the CPU
/// (`allam_model::split`; one product on a GPU), tied and untied: cached decoding must still
/// equal the full forward.
#[test]
fn kv_cache_decoding_with_split_projections_equals_the_full_forward() {
    for (dev, device) in test_devices() {
        for tied in [false, true] {
            let config = LlamaConfig::new(700, 256, 512, 2, 4, 2, 64)
                .with_tie_word_embeddings(tied)
                .with_initializer_range(0.05);
            let model: Llama = config.init(&device);
            // More than 8 tokens, so the full forward takes the unsplit path.
            let seq: Vec<u32> = vec![5, 17, 642, 8, 91, 333, 60, 2, 699, 40, 1, 250];
            let full = host(model.forward(&TokenBatch::single(&seq)).unwrap());
            let diff = max_abs_diff(&cached_decoding(&model, &seq, 3), &full);
            assert!(diff < 1e-4, "{dev} tied = {tied}: max |Δ| = {diff}");
        }
    }
}

/// Inference runs the CPU backend's fused attention kernel (other backends compose the same ops
/// as training); training composes differentiable ops. Both must give the same logits, with
/// padding (and so a non-trivial bias) in the batch.
#[test]
fn inference_attention_equals_the_differentiable_path() {
    use burn::module::Module;
    for (dev, device) in test_devices() {
        for name in FIXTURES {
            let model = load(name, &device).model;
            let tracked = model.clone().fork(&device.clone().autodiff()).train();
            let rows = vec![
                vec![3, 9, 27, 41, 5, 6, 70, 1],
                vec![11, 12, 13],
                vec![70, 1, 4, 8, 2],
            ];
            for side in [PaddingSide::Right, PaddingSide::Left] {
                let batch = TokenBatch::padded(&rows, 0, side);
                let inference = model.forward(&batch).unwrap();
                let composed = tracked.forward(&batch).unwrap();
                assert!(!inference.is_autodiff(), "inference");
                assert!(composed.is_autodiff(), "composed");
                let diff = max_abs_diff(&host(inference), &host(composed));
                assert!(diff < 1e-4, "{dev} {name} {side:?}: max |Δ| = {diff}");
            }
        }
    }
}

#[test]
fn a_padded_batch_equals_its_rows_run_alone() {
    for (dev, device) in test_devices() {
        for name in FIXTURES {
            let model = load(name, &device).model;
            let rows = vec![vec![3, 9, 27, 41, 5, 6], vec![11, 12], vec![70, 1, 4, 8]];
            let vocab = model.config.vocab_size;
            for side in [PaddingSide::Right, PaddingSide::Left] {
                let batch = TokenBatch::padded(&rows, 0, side);
                let got = host(model.forward(&batch).unwrap());
                for (r, row) in rows.iter().enumerate() {
                    let alone = host(model.forward(&TokenBatch::single(row)).unwrap());
                    let offset = match side {
                        PaddingSide::Right => 0,
                        PaddingSide::Left => batch.len - row.len(),
                    };
                    let start = (r * batch.len + offset) * vocab;
                    let diff = max_abs_diff(&got[start..start + row.len() * vocab], &alone);
                    assert!(diff < 1e-4, "{dev} {name} {side:?} row {r}: max |Δ| = {diff}");
                }
            }
        }
    }
}

#[test]
fn a_packed_row_equals_its_documents_run_separately() {
    for (dev, device) in test_devices() {
        for name in FIXTURES {
            let model = load(name, &device).model;
            let (a, b) = (vec![4u32, 8, 15, 16, 23], vec![42u32, 7, 9]);
            let packed = TokenBatch::packed(
                1,
                8,
                [a.clone(), b.clone()].concat(),
                vec![0, 0, 0, 0, 0, 1, 1, 1],
            )
            .unwrap();
            let got = host(model.forward(&packed).unwrap());
            let expected = [
                host(model.forward(&TokenBatch::single(&a)).unwrap()),
                host(model.forward(&TokenBatch::single(&b)).unwrap()),
            ]
            .concat();
            let diff = max_abs_diff(&got, &expected);
            assert!(diff < 1e-4, "{dev} {name}: max |Δ| = {diff}");
            // and without document ids the second document does see the first
            let unpacked = host(model.forward(&TokenBatch::single(&packed.input_ids)).unwrap());
            assert!(max_abs_diff(&unpacked, &expected) > 1e-3, "{dev} {name}");
        }
    }
}

#[test]
fn batched_generation_equals_one_prompt_at_a_time() {
    for (dev, device) in test_devices() {
        for name in ["tiny-gqa-untied", "tiny-llama3-rope-scaling", "tiny-qwen2-bias"] {
            let model = load(name, &device).model;
            let prompts = vec![vec![1, 39, 13, 16, 8, 49], vec![1, 34, 80], vec![1, 5]];
            let config = GenerationConfig {
                eos_token_ids: vec![u32::MAX],
                ..GenerationConfig::greedy(6)
            };
            let together = generate(&model, &prompts, &config, |_, _| false).unwrap();
            for (p, out) in prompts.iter().zip(&together) {
                let alone = generate(&model, std::slice::from_ref(p), &config, |_, _| false).unwrap();
                assert_eq!(out.ids, alone[0].ids, "{dev} {name}");
            }
        }
    }
}

#[test]
fn scores_do_not_depend_on_batch_size() {
    for (dev, device) in test_devices() {
        let model = load("tiny-mha-tied-bf16", &device).model;
        let requests: Vec<(Vec<u32>, Vec<u32>)> = (0..5u32)
            .map(|i| ((1..4 + i).collect(), (10 + i..13 + 2 * i).collect()))
            .collect();
        let one = score_continuations(&model, &requests, 1).unwrap();
        let all = score_continuations(&model, &requests, 5).unwrap();
        for (a, b) in one.iter().zip(&all) {
            assert!(
                (a.logprob - b.logprob).abs() < 1e-4,
                "{dev}: {} vs {}",
                a.logprob,
                b.logprob
            );
            assert_eq!(a.is_greedy, b.is_greedy, "{dev}");
        }
    }
}

#[test]
fn random_init_follows_the_config() {
    let config = LlamaConfig::new(50, 16, 24, 2, 4, 2, 8).with_initializer_range(0.01);
    let model: Llama = config.init(&Device::flex());
    let w: Vec<f32> = model
        .embed_tokens
        .weight
        .val()
        .into_data()
        .convert::<f32>()
        .try_into_vec()
        .unwrap();
    let std = (w.iter().map(|v| v * v).sum::<f32>() / w.len() as f32).sqrt();
    assert!((std - 0.01).abs() < 0.002, "std {std}");
    let logits = model.forward(&TokenBatch::single(&[1, 2, 3])).unwrap();
    assert_eq!(logits.dims(), [1, 3, 50]);
}

/// Within its window, sliding-window attention is full attention; longer inputs are refused
/// with the window named, in the full forward and in cached decoding.
#[test]
fn inputs_past_the_sliding_window_are_refused() {
    let config = LlamaConfig::new(50, 16, 24, 1, 4, 2, 4).with_sliding_window(Some(4));
    let model: Llama = config.init(&Device::flex());
    let windowless: Llama = LlamaConfig::new(50, 16, 24, 1, 4, 2, 4).init(&Device::flex());
    let model = Llama {
        config: model.config,
        ..windowless.clone()
    };
    let inside = host(model.forward(&TokenBatch::single(&[1, 2, 3, 4])).unwrap());
    let plain = host(windowless.forward(&TokenBatch::single(&[1, 2, 3, 4])).unwrap());
    assert_eq!(inside, plain);
    let err = model.forward(&TokenBatch::single(&[1, 2, 3, 4, 5])).unwrap_err();
    assert!(err.to_string().contains("sliding window of 4"), "{err}");
    let mut cache = KvCache::new(&model.config, 1, 8, &model.device());
    model
        .forward_cached(&TokenBatch::single(&[1, 2, 3]), &mut cache)
        .unwrap();
    let mut step = TokenBatch::single(&[4, 5]);
    step.position_ids = vec![3, 4];
    let err = model.forward_cached(&step, &mut cache).unwrap_err();
    assert!(err.to_string().contains("sliding window of 4"), "{err}");
}
