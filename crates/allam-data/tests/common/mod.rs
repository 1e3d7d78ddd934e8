//! Helpers shared by the integration tests: every input is written by the test itself.
#![allow(dead_code)]
use std::io::Write;
use std::path::{Path, PathBuf};

use allam_data::Recipe;

/// Writes the byte-level test tokenizer (`</s>` = 0, one token per byte) to `dir/tok.json`.
pub fn tokenizer(dir: &Path) -> PathBuf {
    let path = dir.join("tok.json");
    allam_data::testing::byte_tokenizer().save(&path, false).unwrap();
    path
}

/// Writes `bytes` to `dir/rel`, creating folders.
pub fn write(dir: &Path, rel: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, bytes).unwrap();
    path
}

/// Gzip-compresses bytes.
pub fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// Zstd-compresses bytes.
pub fn zst(bytes: &[u8]) -> Vec<u8> {
    zstd::stream::encode_all(bytes, 3).unwrap()
}

/// Writes `dir/recipe.toml` and loads it.
pub fn recipe(dir: &Path, text: &str) -> Recipe {
    let path = write(dir, "recipe.toml", text.as_bytes());
    Recipe::load(&path).unwrap()
}

const EN: [&str; 24] = [
    "river", "garden", "market", "teacher", "window", "mountain", "letter", "winter", "kitchen", "bridge",
    "station", "forest", "harbour", "village", "library", "morning", "evening", "island", "painter",
    "doctor", "student", "farmer", "engine", "castle",
];
const AR: [&str; 24] = [
    "نهر",
    "حديقة",
    "سوق",
    "معلم",
    "نافذة",
    "جبل",
    "رسالة",
    "شتاء",
    "مطبخ",
    "جسر",
    "محطة",
    "غابة",
    "ميناء",
    "قرية",
    "مكتبة",
    "صباح",
    "مساء",
    "جزيرة",
    "رسام",
    "طبيب",
    "طالب",
    "مزارع",
    "محرك",
    "قلعة",
];

/// `n` distinct English documents (numbers make each one unique).
pub fn english(n: usize, tag: &str) -> Vec<String> {
    (0..n)
        .map(|i| {
            format!(
                "The {} near the {} was quiet on day {i} of the {tag} story, and the {} waited.",
                EN[i % 24],
                EN[(i / 24 + 5) % 24],
                EN[(i * 7 + 3) % 24]
            )
        })
        .collect()
}

/// `n` distinct Arabic documents.
pub fn arabic(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            format!(
                "كان {} قرب {} هادئا في اليوم {} وكان {} ينتظر",
                AR[i % 24],
                AR[(i / 24 + 5) % 24],
                arabic_number(i),
                AR[(i * 7 + 3) % 24]
            )
        })
        .collect()
}

fn arabic_number(mut i: usize) -> String {
    let digits = ['٠', '١', '٢', '٣', '٤', '٥', '٦', '٧', '٨', '٩'];
    let mut s = Vec::new();
    loop {
        s.push(digits[i % 10]);
        i /= 10;
        if i == 0 {
            break;
        }
    }
    s.iter().rev().collect()
}

/// `n` parallel pairs as JSON lines `{"en": ..., "ar": ...}`.
pub fn pairs_jsonl(n: usize) -> String {
    english(n, "pair")
        .iter()
        .zip(arabic(n))
        .map(|(e, a)| serde_json::json!({"id": 1, "en": e, "ar": a}).to_string() + "\n")
        .collect()
}

/// Lines joined with `\n`.
pub fn lines(docs: &[String]) -> String {
    docs.iter().map(|d| format!("{d}\n")).collect()
}

/// JSON lines with the text under `field`.
pub fn jsonl(docs: &[String], field: &str) -> String {
    docs.iter()
        .map(|d| serde_json::json!({ field: d, "meta": {"n": 1} }).to_string() + "\n")
        .collect()
}

/// A Parquet file with a string column `text` and an integer column `id`.
pub fn parquet(path: &Path, docs: &[String]) {
    use parquet::basic::Compression;
    use parquet::data_type::{ByteArray, ByteArrayType, Int64Type};
    use parquet::file::properties::WriterProperties;
    use parquet::file::writer::SerializedFileWriter;
    use parquet::schema::parser::parse_message_type;
    use std::sync::Arc;
    let schema = Arc::new(
        parse_message_type("message schema { REQUIRED BYTE_ARRAY text (UTF8); REQUIRED INT64 id; }").unwrap(),
    );
    let props = Arc::new(
        WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .build(),
    );
    let file = std::fs::File::create(path).unwrap();
    let mut w = SerializedFileWriter::new(file, schema, props).unwrap();
    for chunk in docs.chunks(7) {
        let mut rg = w.next_row_group().unwrap();
        let mut col = rg.next_column().unwrap().unwrap();
        let vals: Vec<ByteArray> = chunk.iter().map(|d| ByteArray::from(d.as_str())).collect();
        col.typed::<ByteArrayType>()
            .write_batch(&vals, None, None)
            .unwrap();
        col.close().unwrap();
        let mut col = rg.next_column().unwrap().unwrap();
        let ids: Vec<i64> = (0..chunk.len() as i64).collect();
        col.typed::<Int64Type>().write_batch(&ids, None, None).unwrap();
        col.close().unwrap();
        rg.close().unwrap();
    }
    w.close().unwrap();
}

/// `n` English documents of 12 pseudo-random words each: unlike [`english`], two of them share
/// few character 5-grams, so near-duplicate detection has nothing to find among them.
pub fn varied_english(n: usize) -> Vec<String> {
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    (0..n)
        .map(|i| {
            let words: Vec<&str> = (0..12)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    EN[(x % 24) as usize]
                })
                .collect();
            format!("{} {i}", words.join(" "))
        })
        .collect()
}
