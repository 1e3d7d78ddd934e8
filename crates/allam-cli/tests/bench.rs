//! `allam bench`: one JSON object with the throughput, peak memory, shape and settings.
use std::process::Command;

fn bench(args: &[&str]) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_allam"))
        .arg("bench")
        .args(args)
        .output()
        .expect("runs allam");
    assert!(
        out.status.success(),
        "allam bench {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.trim().lines().count(), 1, "one JSON line: {stdout}");
    serde_json::from_str(stdout.trim()).expect("one JSON object")
}

const TINY: &[&str] = &[
    "--hidden",
    "32",
    "--layers",
    "1",
    "--heads",
    "2",
    "--kv-heads",
    "1",
    "--ffn",
    "64",
    "--vocab",
    "64",
];

#[test]
fn bench_train_reports_throughput_memory_and_shape() {
    let mut args = vec!["train"];
    args.extend_from_slice(TINY);
    args.extend_from_slice(&["--seq", "16", "--batch", "2", "--steps", "1", "--json"]);
    let v = bench(&args);
    assert_eq!(v["bench"], "train");
    assert!(v["tokens_per_s"].as_f64().unwrap() > 0.0, "{v}");
    assert_eq!(v["tokens"], 32);
    assert_eq!(v["seq"], 16);
    assert_eq!(v["batch"], 2);
    assert_eq!(v["steps"], 1);
    assert_eq!(v["dtype"], "f32");
    assert_eq!(v["shape"]["hidden"], 32);
    assert_eq!(v["shape"]["layers"], 1);
    assert_eq!(v["shape"]["heads"], 2);
    assert_eq!(v["shape"]["kv_heads"], 1);
    assert_eq!(v["shape"]["ffn"], 64);
    assert_eq!(v["shape"]["vocab"], 64);
    assert_eq!(v["shape"]["tied"], false);
    assert!(v["shape"]["params"].as_u64().unwrap() > 0);
    assert!(v["loss"][0].as_f64().unwrap().is_finite());
    let rss = &v["peak_rss_mb"];
    if cfg!(target_os = "linux") {
        assert!(rss.as_f64().unwrap() > 0.0, "{v}");
    } else {
        assert!(rss.is_null());
    }
}

#[test]
fn bench_decode_and_prefill_on_a_tiny_shape() {
    let mut args = vec!["decode"];
    args.extend_from_slice(TINY);
    args.extend_from_slice(&["--tied", "--prompt-len", "4", "--new-tokens", "5", "--json"]);
    let v = bench(&args);
    assert_eq!(v["bench"], "decode");
    assert_eq!(v["tokens"], 5);
    assert_eq!(v["shape"]["tied"], true);
    assert!(v["tokens_per_s"].as_f64().unwrap() > 0.0, "{v}");

    let mut args = vec!["prefill"];
    args.extend_from_slice(TINY);
    args.extend_from_slice(&["--seq", "8", "--steps", "2", "--json"]);
    let v = bench(&args);
    assert_eq!(v["bench"], "prefill");
    assert_eq!(v["tokens"], 16);
    assert!(v["tokens_per_s"].as_f64().unwrap() > 0.0, "{v}");
    assert!(v["peak_rss_mb"].is_number() || v["peak_rss_mb"].is_null());
}
