//! Throughput benchmark: build a recipe (read → clean → dedup → tokenise → shard), then pack the
//! whole stream once; prints MB/s of input text (wall and per CPU-second) and resident memory.
//! Run through `scripts/bench-data.sh`, which makes the inputs (1× and 10×) in /tmp and measures
//! peak RSS with `/usr/bin/time -v`.
//!
//! ```sh
//! RAYON_NUM_THREADS=1 cargo run --release -p allam-data --example bench_mixture -- RECIPE OUT [all|build|pack]
//! ```
use std::time::Instant;

use allam_data::{BuildOptions, Mixture, NoProgress, Recipe, build};

/// CPU seconds (user + system, all threads) used by this process so far, from `/proc/self/stat`
/// (Linux; clock ticks of 10 ms). Wall time is misleading on a shared machine; CPU time is not.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<f64> = after
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0.0))
        .collect();
    // Fields 14 and 15 of the file (utime, stime) are 11 and 12 after the command name.
    (f.get(11).unwrap_or(&0.0) + f.get(12).unwrap_or(&0.0)) / 100.0
}

/// `RssAnon` and `RssFile` of this process in KiB, from `/proc/self/status` (Linux).
fn rss_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("RssAnon:"), field("RssFile:"))
}

/// Samples `RssAnon` every 10 ms on a background thread and keeps the largest value (KiB): the
/// memory this process owns, unlike the peak RSS, which also counts memory-mapped shard pages
/// (page cache, shared and reclaimable; a fault can map a whole large folio of a fresh file).
fn peak_anon_sampler() -> std::sync::Arc<std::sync::atomic::AtomicU64> {
    use std::sync::atomic::{AtomicU64, Ordering};
    let peak = std::sync::Arc::new(AtomicU64::new(0));
    let p = peak.clone();
    std::thread::spawn(move || {
        loop {
            p.fetch_max(rss_kib().0, Ordering::Relaxed);
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    });
    peak
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let peak_anon = peak_anon_sampler();
    let usage = "usage: bench_mixture RECIPE OUT [all|build|pack]";
    let mut args = std::env::args().skip(1);
    let recipe_path = args.next().ok_or(usage)?;
    let out = args.next().ok_or(usage)?;
    let mode = args.next().unwrap_or_else(|| "all".into());
    let recipe = Recipe::load(recipe_path.as_ref())?;
    let mut text_bytes = 0u64;
    for s in &recipe.sources {
        for f in s.files()? {
            text_bytes += std::fs::metadata(&f)?.len();
        }
    }
    let mb = text_bytes as f64 / 1e6;
    let threads = rayon::current_num_threads();
    if mode != "pack" {
        let c = cpu_seconds();
        allam_data::load_tokenizer(&recipe.tokenizer, recipe.eos_token.as_deref())?;
        println!(
            "tokenizer load (also inside build): CPU {:.2} s",
            cpu_seconds() - c
        );
        let c0 = cpu_seconds();
        let t0 = Instant::now();
        let report = build(
            &recipe,
            out.as_ref(),
            &BuildOptions {
                sequences: Some(1),
                ..BuildOptions::default()
            },
            &NoProgress,
        )?;
        let wall = t0.elapsed().as_secs_f64();
        let cpu = cpu_seconds() - c0;
        let tokens: u64 = report.sources.values().map(|s| s.tokens).sum();
        let docs: u64 = report.sources.values().map(|s| s.documents).sum();
        let (anon, file) = rss_kib();
        println!(
            "build: input {mb:.2} MB, {docs} documents, {tokens} tokens, {threads} thread(s): \
             wall {wall:.2} s ({:.2} MB/s), CPU {cpu:.2} s ({:.2} MB per CPU-second); \
             RssAnon {anon} KiB (peak {} KiB, sampled), RssFile {file} KiB",
            mb / wall,
            mb / cpu,
            peak_anon.load(std::sync::atomic::Ordering::Relaxed).max(anon)
        );
    }
    if mode != "build" {
        let mixture = Mixture::open(out.as_ref())?;
        let tokens: u64 = mixture.manifest().sources.iter().map(|s| s.tokens).sum();
        let sequences = tokens.div_ceil(recipe.seq_len as u64);
        let c0 = cpu_seconds();
        let t0 = Instant::now();
        let mut stream = mixture.stream();
        let mut checksum = 0u64;
        for _ in 0..sequences {
            let s = stream.next_sequence();
            checksum = checksum.wrapping_add(s.input_ids[0] as u64);
        }
        let wall = t0.elapsed().as_secs_f64();
        let cpu = cpu_seconds() - c0;
        let (anon, file) = rss_kib();
        println!(
            "pack: {sequences} x {} tokens: wall {wall:.3} s ({:.1} M tokens/s), CPU {cpu:.2} s; \
             RssAnon {anon} KiB, RssFile {file} KiB (mapped shard pages) [checksum {checksum}]",
            recipe.seq_len,
            (sequences * recipe.seq_len as u64) as f64 / wall / 1e6
        );
    }
    Ok(())
}
