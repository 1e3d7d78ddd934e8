//! Input readers: `.txt` (one document per line), `.jsonl` (a text field per line), both plain,
//! gzip (`.gz`) or zstd (`.zst`), and Parquet (`.parquet`, the Hugging Face datasets format,
//! read row by row through the record API with a one-column projection).
//!
//! A source is either monolingual (one text field) or parallel (two fields such as `en`/`ar`).
//! A parallel source is turned into training documents by [`ParallelSpec`]: in `pair` mode each
//! pair becomes one document written by the template in a direction drawn per document from the
//! seeded RNG; in `first`/`second` mode only one side is used, monolingually.
//!
//! Readers stream: memory is one line (or one Parquet row group) at a time. Every error names the
//! file and the 1-based line (row for Parquet).
use std::borrow::Cow;
use std::fs::File;
use std::io::{BufRead, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parquet::record::reader::RowIter;
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

use crate::error::{DataError, Result};
use allam_io::rng::SplitMix64;

mod parquet_rows;
use parquet_rows::{open_parquet, parquet_doc};

/// File format of an input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Plain text, one document per line.
    Txt,
    /// JSON Lines, one object per line.
    Jsonl,
    /// Apache Parquet.
    Parquet,
}

pub use allam_io::Compression;

/// Guesses format and compression from a file name (`a.jsonl.gz`, `b.txt.zst`, `c.parquet`).
pub fn detect(path: &Path) -> Option<(Format, Compression)> {
    let name = path.file_name()?.to_str()?.to_ascii_lowercase();
    let (stem, compression) = Compression::of_name(&name);
    let format = if stem.ends_with(".txt") || stem.ends_with(".text") {
        Format::Txt
    } else if stem.ends_with(".jsonl") || stem.ends_with(".ndjson") || stem.ends_with(".json") {
        Format::Jsonl
    } else if stem.ends_with(".parquet") && compression == Compression::None {
        Format::Parquet
    } else {
        return None;
    };
    Some((format, compression))
}

/// How a parallel pair becomes training text.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ParallelMode {
    /// Both sides through the template, direction chosen per document by the seeded RNG.
    #[default]
    Pair,
    /// Only the first field, as monolingual text.
    First,
    /// Only the second field, as monolingual text.
    Second,
}

/// A parallel source: two fields of one record (`{"en": ..., "ar": ...}` by default).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ParallelSpec {
    /// The two field names.
    pub fields: [String; 2],
    /// Human-readable names of the two sides used by the template's `{src_label}`/`{tgt_label}`
    /// (defaults to the field names).
    pub labels: Option<[String; 2]>,
    /// `pair`, `first` or `second`.
    pub mode: ParallelMode,
    /// Template with `{src}`, `{tgt}`, `{src_label}` and `{tgt_label}` placeholders.
    pub template: String,
}

impl Default for ParallelSpec {
    fn default() -> Self {
        ParallelSpec {
            fields: ["en".into(), "ar".into()],
            labels: None,
            mode: ParallelMode::Pair,
            template: "{src_label}: {src}\n{tgt_label}: {tgt}".into(),
        }
    }
}

#[derive(Clone, Debug)]
enum Piece {
    Lit(String),
    Src,
    Tgt,
    SrcLabel,
    TgtLabel,
}

/// A parsed template, rendered in one pass (placeholder text inside a value is never expanded).
#[derive(Clone, Debug)]
pub struct Template(Vec<Piece>);

impl Template {
    /// Parses `{src}`, `{tgt}`, `{src_label}`, `{tgt_label}`; anything else is literal.
    pub fn parse(template: &str) -> Self {
        let mut pieces = Vec::new();
        let mut rest = template;
        let mut lit = String::new();
        while !rest.is_empty() {
            let found = [
                ("{src}", Piece::Src),
                ("{tgt}", Piece::Tgt),
                ("{src_label}", Piece::SrcLabel),
                ("{tgt_label}", Piece::TgtLabel),
            ]
            .into_iter()
            .find(|(p, _)| rest.starts_with(p));
            if let Some((p, piece)) = found {
                if !lit.is_empty() {
                    pieces.push(Piece::Lit(std::mem::take(&mut lit)));
                }
                pieces.push(piece);
                rest = &rest[p.len()..];
            } else {
                let c = rest.chars().next().unwrap_or_default();
                lit.push(c);
                rest = &rest[c.len_utf8()..];
            }
        }
        if !lit.is_empty() {
            pieces.push(Piece::Lit(lit));
        }
        Template(pieces)
    }

    /// Renders one document.
    pub fn render(&self, src: &str, tgt: &str, src_label: &str, tgt_label: &str) -> String {
        let mut out = String::with_capacity(src.len() + tgt.len() + 32);
        for p in &self.0 {
            out.push_str(match p {
                Piece::Lit(s) => s,
                Piece::Src => src,
                Piece::Tgt => tgt,
                Piece::SrcLabel => src_label,
                Piece::TgtLabel => tgt_label,
            });
        }
        out
    }
}

/// What to take from each record.
#[derive(Clone, Debug)]
pub enum Extract {
    /// One string field (ignored for `.txt`).
    Field(String),
    /// A parallel pair.
    Parallel {
        /// The spec from the recipe.
        spec: ParallelSpec,
        /// The parsed template.
        template: Template,
        /// Direction coin for `pair` mode, seeded from `(seed, source)`.
        rng: SplitMix64,
    },
}

impl Extract {
    /// The record fields this extractor reads.
    pub fn fields(&self) -> Vec<&str> {
        match self {
            Extract::Field(f) => vec![f.as_str()],
            Extract::Parallel { spec, .. } => match spec.mode {
                ParallelMode::Pair => vec![spec.fields[0].as_str(), spec.fields[1].as_str()],
                ParallelMode::First => vec![spec.fields[0].as_str()],
                ParallelMode::Second => vec![spec.fields[1].as_str()],
            },
        }
    }

    /// Builds the document from the field values (in [`Extract::fields`] order).
    fn build(&mut self, values: &[&str]) -> String {
        match self {
            Extract::Field(_) => values[0].to_string(),
            Extract::Parallel { spec, template, rng } => match spec.mode {
                ParallelMode::First | ParallelMode::Second => values[0].to_string(),
                ParallelMode::Pair => {
                    let labels = spec.labels.as_ref().unwrap_or(&spec.fields);
                    if rng.coin() {
                        template.render(values[0], values[1], &labels[0], &labels[1])
                    } else {
                        template.render(values[1], values[0], &labels[1], &labels[0])
                    }
                }
            },
        }
    }
}

/// One raw document and where it came from.
#[derive(Clone, Debug, PartialEq)]
pub struct RawDoc {
    /// The document text (not yet cleaned).
    pub text: String,
    /// Index of the file in the reader's file list.
    pub file: usize,
    /// 1-based line (row for Parquet).
    pub line: u64,
}

/// A reader that counts the compressed bytes it delivers (for progress bars).
struct Counting<R> {
    inner: R,
    counter: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.counter.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

enum Current {
    Lines {
        reader: Box<dyn BufRead + Send>,
        format: Format,
        line: u64,
        buf: Vec<u8>,
    },
    Parquet {
        rows: Box<RowIter<'static>>,
        row: u64,
    },
}

/// Streams the documents of a list of files, in order.
pub struct DocReader {
    files: Vec<PathBuf>,
    next_file: usize,
    current: Option<Current>,
    extract: Extract,
    bytes: Arc<AtomicU64>,
}

impl DocReader {
    /// A reader over `files` (each must have a recognised extension, see [`detect`]).
    pub fn new(files: Vec<PathBuf>, extract: Extract) -> Self {
        DocReader {
            files,
            next_file: 0,
            current: None,
            extract,
            bytes: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Input bytes read so far (compressed size for compressed inputs; whole files for Parquet).
    pub fn bytes_read(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// The files, in reading order.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    fn path(&self) -> &Path {
        &self.files[self.next_file - 1]
    }

    fn open_next(&mut self) -> Result<bool> {
        if self.next_file >= self.files.len() {
            return Ok(false);
        }
        let path = self.files[self.next_file].clone();
        self.next_file += 1;
        let (format, compression) =
            detect(&path).ok_or_else(|| DataError::UnknownFormat { path: path.clone() })?;
        let file = File::open(&path).map_err(|e| DataError::io(&path, e))?;
        if format == Format::Parquet {
            let size = file.metadata().map(|m| m.len()).unwrap_or(0);
            let rows = open_parquet(&path, file, &self.extract.fields())?;
            self.bytes.fetch_add(size, Ordering::Relaxed);
            self.current = Some(Current::Parquet {
                rows: Box::new(rows),
                row: 0,
            });
            return Ok(true);
        }
        let counted = Counting {
            inner: file,
            counter: self.bytes.clone(),
        };
        // Decoded by content (as everywhere in allam); a name that promises a compression its
        // bytes do not have is a mistake worth naming.
        let (actual, reader) = allam_io::decoded_reader(counted).map_err(|e| DataError::io(&path, e))?;
        if compression != Compression::None && actual != compression {
            let error = std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "the name says {compression:?} but the first bytes are not {compression:?}'s magic number"
                ),
            );
            return Err(DataError::io(&path, error));
        }
        self.current = Some(Current::Lines {
            reader,
            format,
            line: 0,
            buf: Vec::new(),
        });
        Ok(true)
    }

    fn next_doc(&mut self) -> Result<Option<RawDoc>> {
        loop {
            if self.current.is_none() && !self.open_next()? {
                return Ok(None);
            }
            let file = self.next_file - 1;
            let path = self.path().to_path_buf();
            let current = self.current.as_mut().expect("opened above");
            match current {
                Current::Lines {
                    reader,
                    format,
                    line,
                    buf,
                } => {
                    buf.clear();
                    let n = reader
                        .read_until(b'\n', buf)
                        .map_err(|e| DataError::io(&path, e))?;
                    if n == 0 {
                        self.current = None;
                        continue;
                    }
                    *line += 1;
                    while matches!(buf.last(), Some(b'\n' | b'\r')) {
                        buf.pop();
                    }
                    let text = std::str::from_utf8(buf).map_err(|e| DataError::InvalidUtf8 {
                        path: path.clone(),
                        line: *line,
                        detail: format!("at byte {} of the line", e.valid_up_to()),
                    })?;
                    let line = *line;
                    let text = match format {
                        Format::Txt => text.to_string(),
                        _ => {
                            if text.trim().is_empty() {
                                continue;
                            }
                            json_doc(text, &mut self.extract, &path, line)?
                        }
                    };
                    return Ok(Some(RawDoc { text, file, line }));
                }
                // The parquet crate's row reader can panic on a corrupt row group instead of
                // returning an error; turn that into an error naming the file and row.
                Current::Parquet { rows, row } => match std::panic::catch_unwind(
                    std::panic::AssertUnwindSafe(|| rows.next()),
                )
                .map_err(|_| DataError::Parquet {
                    path: path.clone(),
                    message: format!("row {}: the Parquet reader failed (corrupt row group?)", *row + 1),
                })? {
                    None => {
                        self.current = None;
                        continue;
                    }
                    Some(r) => {
                        *row += 1;
                        let line = *row;
                        let r = r.map_err(|e| DataError::Parquet {
                            path: path.clone(),
                            message: format!("row {line}: {e}"),
                        })?;
                        let text = parquet_doc(&r, &mut self.extract, &path, line)?;
                        return Ok(Some(RawDoc { text, file, line }));
                    }
                },
            }
        }
    }
}

impl Iterator for DocReader {
    type Item = Result<RawDoc>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.next_doc() {
            Ok(Some(d)) => Some(Ok(d)),
            Ok(None) => None,
            Err(e) => {
                // Stop after an error: the caller reports it and the reader is done.
                self.next_file = self.files.len();
                self.current = None;
                Some(Err(e))
            }
        }
    }
}

fn json_doc(text: &str, extract: &mut Extract, path: &Path, line: u64) -> Result<String> {
    let err = |message: String| DataError::Json {
        path: path.to_path_buf(),
        line,
        message,
    };
    let fields = extract.fields();
    let mut de = serde_json::Deserializer::from_str(text);
    let values = serde::de::DeserializeSeed::deserialize(Fields(&fields), &mut de)
        .and_then(|v| de.end().map(|_| v))
        .map_err(|e| err(format!("invalid JSON: {e}")))?;
    let mut strs = Vec::with_capacity(fields.len());
    for (f, v) in fields.iter().zip(&values) {
        match v {
            JsonField::Str(s) => strs.push(s.as_ref()),
            JsonField::Other(kind) => {
                return Err(err(format!("field `{f}` must be a string, found {kind}")));
            }
            JsonField::Missing => return Err(err(format!("missing string field `{f}`"))),
        }
    }
    Ok(extract.build(&strs))
}

/// A wanted field of a JSON object: absent, a string (borrowed when unescaped), or another kind.
#[derive(Clone, Debug)]
enum JsonField<'de> {
    Missing,
    Str(Cow<'de, str>),
    Other(&'static str),
}

/// Deserialises only the named fields of a JSON object, skipping the rest without allocating.
struct Fields<'f>(&'f [&'f str]);

impl<'de> DeserializeSeed<'de> for Fields<'_> {
    type Value = Vec<JsonField<'de>>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Fields<'_> {
    type Value = Vec<JsonField<'de>>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Self::Value, A::Error> {
        let mut out = vec![JsonField::Missing; self.0.len()];
        while let Some(key) = map.next_key_seed(Key(self.0))? {
            match key {
                Some(i) => out[i] = map.next_value_seed(Value)?,
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(out)
    }
}

/// Matches an object key against the wanted fields.
struct Key<'f>(&'f [&'f str]);

impl<'de> DeserializeSeed<'de> for Key<'_> {
    type Value = Option<usize>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key<'_> {
    type Value = Option<usize>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a string key")
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> std::result::Result<Self::Value, E> {
        Ok(self.0.iter().position(|f| *f == v))
    }
}

/// A wanted field's value.
struct Value;

impl<'de> DeserializeSeed<'de> for Value {
    type Value = JsonField<'de>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Value {
    type Value = JsonField<'de>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> std::result::Result<Self::Value, E> {
        Ok(JsonField::Str(Cow::Borrowed(v)))
    }

    fn visit_str<E>(self, v: &str) -> std::result::Result<Self::Value, E> {
        Ok(JsonField::Str(Cow::Owned(v.to_string())))
    }

    fn visit_string<E>(self, v: String) -> std::result::Result<Self::Value, E> {
        Ok(JsonField::Str(Cow::Owned(v)))
    }

    fn visit_bool<E>(self, _: bool) -> std::result::Result<Self::Value, E> {
        Ok(JsonField::Other("a boolean"))
    }

    fn visit_i64<E>(self, _: i64) -> std::result::Result<Self::Value, E> {
        Ok(JsonField::Other("a number"))
    }

    fn visit_u64<E>(self, _: u64) -> std::result::Result<Self::Value, E> {
        Ok(JsonField::Other("a number"))
    }

    fn visit_f64<E>(self, _: f64) -> std::result::Result<Self::Value, E> {
        Ok(JsonField::Other("a number"))
    }

    fn visit_unit<E>(self) -> std::result::Result<Self::Value, E> {
        Ok(JsonField::Other("null"))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(JsonField::Other("an array"))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(JsonField::Other("an object"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_formats() {
        let d = |s: &str| detect(Path::new(s));
        assert_eq!(d("a.txt"), Some((Format::Txt, Compression::None)));
        assert_eq!(d("a.jsonl.gz"), Some((Format::Jsonl, Compression::Gzip)));
        assert_eq!(d("dir/a.TXT.zst"), Some((Format::Txt, Compression::Zstd)));
        assert_eq!(d("a.parquet"), Some((Format::Parquet, Compression::None)));
        assert_eq!(d("a.csv"), None);
    }

    #[test]
    fn template_renders_in_one_pass() {
        let t = Template::parse("{src_label}: {src}\n{tgt_label}: {tgt} {unknown}");
        assert_eq!(
            t.render("x {tgt}", "y", "English", "Arabic"),
            "English: x {tgt}\nArabic: y {unknown}"
        );
    }
}
