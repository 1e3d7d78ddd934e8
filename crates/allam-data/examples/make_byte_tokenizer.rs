//! Writes the tiny byte-level test tokenizer (see `allam_data::testing::byte_tokenizer`) to a
//! file, e.g. `data/sample/tokenizer.json` used by `examples/recipes/data-tiny.toml`:
//!
//! ```sh
//! cargo run -p allam-data --example make_byte_tokenizer -- data/sample/tokenizer.json
//! ```
fn main() {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "data/sample/tokenizer.json".into());
    allam_data::testing::byte_tokenizer()
        .save(&path, true)
        .unwrap_or_else(|e| panic!("writing {path}: {e}"));
    println!("wrote {path}");
}
