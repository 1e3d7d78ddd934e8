//! Streaming corpus reader: `.txt` (one document per line) and `.jsonl` (one JSON object per line, text in a
//! chosen field), each plain, gzip- or zstd-compressed.
//!
//! Files are read line by line through a [`BufRead`]; nothing is loaded whole, so a corpus of several GB
//! costs one line of memory. Compression is detected from the file's first bytes (gzip `1f 8b`, zstd
//! `28 b5 2f fd`), the format from its name once `.gz` / `.zst` / `.zstd` is removed (`.jsonl`, `.json`,
//! `.ndjson` are JSON lines; anything else is text).
use std::io::BufRead;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// How the documents of one file are laid out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CorpusFormat {
    /// One document per line.
    Text,
    /// One JSON object per line; the document is the string in `field`.
    JsonLines {
        /// The key holding the text; a dotted path (`question.stem`) reaches into nested objects.
        field: String,
    },
}

impl CorpusFormat {
    /// The format implied by a file name: JSON lines for `.jsonl`/`.json`/`.ndjson` (after removing a
    /// compression suffix), text otherwise.
    pub fn from_path(path: &Path, field: &str) -> CorpusFormat {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_lowercase())
            .unwrap_or_default();
        let (name, _) = allam_io::Compression::of_name(&name);
        if [".jsonl", ".json", ".ndjson"]
            .iter()
            .any(|ext| name.ends_with(ext))
        {
            CorpusFormat::JsonLines {
                field: field.to_string(),
            }
        } else {
            CorpusFormat::Text
        }
    }
}

/// A set of corpus files read in order.
#[derive(Debug, Clone)]
pub struct Corpus {
    files: Vec<(PathBuf, CorpusFormat)>,
}

impl Corpus {
    /// Files whose format follows from their names; `field` is the JSON key for `.jsonl` files
    /// (`"text"` is the usual one).
    pub fn new(paths: impl IntoIterator<Item = impl Into<PathBuf>>, field: &str) -> Corpus {
        let files = paths
            .into_iter()
            .map(|p| {
                let p = p.into();
                let format = CorpusFormat::from_path(&p, field);
                (p, format)
            })
            .collect();
        Corpus { files }
    }

    /// The files and their formats.
    pub fn files(&self) -> &[(PathBuf, CorpusFormat)] {
        &self.files
    }

    /// All documents of all files, streamed. Blank lines are skipped. The iterator yields an error (and
    /// then ends) at the first unreadable file or malformed line.
    pub fn documents(&self) -> Documents {
        Documents {
            files: self.files.clone().into_iter(),
            current: None,
            failed: false,
        }
    }

    /// Opens every file once to check it exists and is readable (cheap; reads a few bytes).
    pub fn check_readable(&self) -> Result<()> {
        for (path, _) in &self.files {
            open_decoded(path)?;
        }
        Ok(())
    }
}

/// Opens `path`, transparently decompressing gzip or zstd (told apart by content).
pub fn open_decoded(path: &Path) -> Result<Box<dyn BufRead + Send>> {
    allam_io::open_decoded(path).map_err(|e| Error::io(path, e))
}

/// One open file.
struct OpenFile {
    path: PathBuf,
    format: CorpusFormat,
    reader: Box<dyn BufRead + Send>,
    line: u64,
    buf: Vec<u8>,
}

impl OpenFile {
    /// The next non-blank document of this file, `None` at its end.
    fn next_document(&mut self) -> Result<Option<String>> {
        loop {
            self.buf.clear();
            let n = self
                .reader
                .read_until(b'\n', &mut self.buf)
                .map_err(|e| Error::io(&self.path, e))?;
            if n == 0 {
                return Ok(None);
            }
            self.line += 1;
            let raw = std::mem::take(&mut self.buf);
            let mut text = String::from_utf8(raw).map_err(|_| Error::Corpus {
                path: self.path.clone(),
                line: self.line,
                message: "expected UTF-8 text, found invalid bytes".into(),
            })?;
            while text.ends_with('\n') || text.ends_with('\r') {
                text.pop();
            }
            if text.trim().is_empty() {
                continue;
            }
            match &self.format {
                CorpusFormat::Text => return Ok(Some(text)),
                CorpusFormat::JsonLines { field } => {
                    let value: serde_json::Value =
                        serde_json::from_str(&text).map_err(|e| Error::Corpus {
                            path: self.path.clone(),
                            line: self.line,
                            message: format!("expected a JSON object per line: {e}"),
                        })?;
                    match lookup(&value, field) {
                        Some(serde_json::Value::String(s)) => return Ok(Some(s.clone())),
                        Some(serde_json::Value::Null) => continue,
                        Some(other) => {
                            return Err(Error::Corpus {
                                path: self.path.clone(),
                                line: self.line,
                                message: format!(
                                    "expected field \"{field}\" to be a string, found {}",
                                    json_kind(other)
                                ),
                            });
                        }
                        None => {
                            return Err(Error::Corpus {
                                path: self.path.clone(),
                                line: self.line,
                                message: format!("expected a string field \"{field}\", found none"),
                            });
                        }
                    }
                }
            }
        }
    }
}

/// `value[field]`, where a dotted `field` ("question.stem") walks into nested objects.
fn lookup<'v>(value: &'v serde_json::Value, field: &str) -> Option<&'v serde_json::Value> {
    value
        .get(field)
        .or_else(|| field.split('.').try_fold(value, |v, key| v.get(key)))
}

fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// Streaming iterator over a [`Corpus`]'s documents (see [`Corpus::documents`]).
pub struct Documents {
    files: std::vec::IntoIter<(PathBuf, CorpusFormat)>,
    current: Option<OpenFile>,
    failed: bool,
}

impl Iterator for Documents {
    type Item = Result<String>;

    fn next(&mut self) -> Option<Result<String>> {
        if self.failed {
            return None;
        }
        loop {
            if self.current.is_none() {
                let (path, format) = self.files.next()?;
                match open_decoded(&path) {
                    Ok(reader) => {
                        self.current = Some(OpenFile {
                            path,
                            format,
                            reader,
                            line: 0,
                            buf: Vec::new(),
                        })
                    }
                    Err(e) => {
                        self.failed = true;
                        return Some(Err(e));
                    }
                }
            }
            let file = self.current.as_mut()?;
            match file.next_document() {
                Ok(Some(doc)) => return Some(Ok(doc)),
                Ok(None) => self.current = None,
                Err(e) => {
                    self.failed = true;
                    return Some(Err(e));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }

    #[test]
    fn reads_text_jsonl_gzip_and_zstd() {
        let dir = tempfile::tempdir().unwrap();
        let txt = write(dir.path(), "a.txt", "one\n\ntwo\r\n".as_bytes());
        let jsonl = write(
            dir.path(),
            "b.jsonl",
            "{\"ar\": \"كتاب\", \"en\": \"book\"}\n{\"ar\": null}\n".as_bytes(),
        );
        let nested = write(dir.path(), "n.jsonl", b"{\"q\": {\"ar\": \"nested\"}}\n");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(b"{\"ar\": \"gz line\"}\n").unwrap();
        let gz = write(dir.path(), "c.jsonl.gz", &gz.finish().unwrap());
        let zst = zstd::stream::encode_all(&b"zst one\nzst two\n"[..], 1).unwrap();
        let zst = write(dir.path(), "d.txt.zst", &zst);
        let corpus = Corpus::new([txt, jsonl, gz, zst], "ar");
        let docs: Vec<String> = corpus.documents().collect::<Result<_>>().unwrap();
        assert_eq!(docs, ["one", "two", "كتاب", "gz line", "zst one", "zst two"]);
        let nested: Vec<String> = Corpus::new([nested], "q.ar")
            .documents()
            .collect::<Result<_>>()
            .unwrap();
        assert_eq!(nested, ["nested"]);
    }

    #[test]
    fn errors_name_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let bad = write(dir.path(), "bad.jsonl", b"{\"text\": \"ok\"}\n{\"text\": 3}\n");
        let corpus = Corpus::new([&bad], "text");
        let out: Vec<_> = corpus.documents().collect();
        assert_eq!(out.len(), 2);
        let msg = out[1].as_ref().unwrap_err().to_string();
        assert!(msg.contains("bad.jsonl:2"), "{msg}");
        assert!(msg.contains("\"text\""), "{msg}");

        let missing = Corpus::new([dir.path().join("nope.txt")], "text");
        assert!(missing.check_readable().is_err());
        let bad_utf8 = write(dir.path(), "x.txt", b"ok\n\xff\xfe\n");
        let err = Corpus::new([&bad_utf8], "text")
            .documents()
            .find_map(|d| d.err())
            .unwrap();
        assert!(err.to_string().contains("x.txt:2"), "{err}");
    }
}
