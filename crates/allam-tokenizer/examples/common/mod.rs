//! What the tokenizer examples share: their `--key value...` argument parsing.
use std::collections::HashMap;

/// `--key value...` flags; a flag without values is stored with no values.
pub fn flags(args: &[String]) -> HashMap<String, Vec<String>> {
    let mut out: HashMap<String, Vec<String>> = HashMap::new();
    let mut key = String::new();
    for a in args {
        if let Some(k) = a.strip_prefix("--") {
            key = k.to_string();
            out.entry(key.clone()).or_default();
        } else {
            out.entry(key.clone()).or_default().push(a.clone());
        }
    }
    out
}
