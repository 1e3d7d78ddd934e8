//! Checks that the fast encoder gives exactly the full pipeline's ids on every line of a real
//! text, and times both (see `allam_data::encode`).
//!
//! ```sh
//! cargo run --release -p allam-data --example bench_encode -- TOKENIZER.json TEXT.txt
//! ```
use std::time::Instant;

use allam_data::Encoder;

fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: bench_encode TOKENIZER.json TEXT.txt";
    let tok = tokenizers::Tokenizer::from_file(args.next().ok_or(usage)?)?;
    let text = std::fs::read_to_string(args.next().ok_or(usage)?)?;
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let mb = lines.iter().map(|l| l.len()).sum::<usize>() as f64 / 1e6;
    let t = Instant::now();
    let enc = Encoder::new(tok.clone(), false);
    let setup_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let full: Vec<Vec<u32>> = lines
        .iter()
        .map(|l| tok.encode_fast(*l, false).map(|e| e.get_ids().to_vec()))
        .collect::<Result<_, _>>()?;
    let full_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let fast: Vec<Vec<u32>> = lines.iter().map(|l| enc.encode(l)).collect::<Result<_, _>>()?;
    let fast_s = t.elapsed().as_secs_f64();
    let mismatches = full.iter().zip(&fast).filter(|(a, b)| a != b).count();
    let tokens: usize = fast.iter().map(Vec::len).sum();
    println!(
        "{} lines, {mb:.2} MB, {tokens} tokens; fast path: {} (set-up {setup_s:.3} s); \
         full pipeline {:.2} MB/s, fast {:.2} MB/s; mismatching lines: {mismatches}",
        lines.len(),
        enc.is_fast(),
        mb / full_s,
        mb / fast_s
    );
    if mismatches > 0 {
        return Err("fast encoder differs from the full pipeline".into());
    }
    Ok(())
}
