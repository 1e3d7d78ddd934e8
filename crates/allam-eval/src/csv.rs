//! Reading comma-separated files (the CSV exports of MMLU and Arabic MMLU) with the `csv` crate,
//! keeping the line each row starts on for error messages.
use std::path::Path;

use serde_json::{Map, Value};

use crate::error::{EvalError, Result};
use crate::jsonl::JsonlRecord;

/// One row of a CSV file and where it starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CsvRow {
    /// The 1-based line number of the row's first character.
    pub line: usize,
    /// The fields, unquoted.
    pub fields: Vec<String>,
}

/// Parses CSV text into its non-blank rows (rows may differ in length); `path` only names the
/// source in errors.
pub fn parse_csv(text: &str, path: &Path) -> Result<Vec<CsvRow>> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut reader = ::csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes());
    let bytes = text.as_bytes();
    // The line a row starts on: skip the line breaks before its first byte, count the rest.
    let line_at = |mut byte: usize| {
        while byte < bytes.len() && matches!(bytes[byte], b'\r' | b'\n') {
            byte += 1;
        }
        1 + bytes[..byte.min(bytes.len())]
            .iter()
            .filter(|b| **b == b'\n')
            .count()
    };
    let mut rows = Vec::new();
    let mut record = ::csv::StringRecord::new();
    loop {
        let start = reader.position().byte() as usize;
        let more = reader
            .read_record(&mut record)
            .map_err(|e| EvalError::format(path, line_at(start), format!("not valid CSV: {e}")))?;
        if !more {
            break;
        }
        let fields: Vec<String> = record.iter().map(str::to_string).collect();
        if fields.iter().all(|f| f.trim().is_empty()) {
            continue;
        }
        rows.push(CsvRow {
            line: line_at(start),
            fields,
        });
    }
    Ok(rows)
}

/// Reads a CSV file whose first row names the columns into one record per later row, the
/// values as JSON strings keyed by column name (so the JSON Lines parsers read it too).
pub fn csv_records_with_header(text: &str, path: &Path) -> Result<Vec<JsonlRecord>> {
    let mut rows = parse_csv(text, path)?.into_iter();
    let Some(header) = rows.next() else {
        return Ok(Vec::new());
    };
    let names: Vec<String> = header.fields.iter().map(|n| n.trim().to_string()).collect();
    rows.map(|row| {
        if row.fields.len() != names.len() {
            return Err(EvalError::format(
                path,
                row.line,
                format!(
                    "{} field(s) where the header names {}",
                    row.fields.len(),
                    names.len()
                ),
            ));
        }
        Ok(named_record(row.line, names.iter().cloned().zip(row.fields)))
    })
    .collect()
}

/// A record from `(name, value)` pairs.
pub(crate) fn named_record(line: usize, pairs: impl IntoIterator<Item = (String, String)>) -> JsonlRecord {
    let object: Map<String, Value> = pairs.into_iter().map(|(k, v)| (k, Value::String(v))).collect();
    JsonlRecord { line, object }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_commas_and_line_breaks() {
        let text = "\u{feff}a,\"b, c\",\"say \"\"hi\"\"\"\r\n\n\"two\nlines\",,x\n";
        let rows = parse_csv(text, Path::new("t.csv")).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].fields, ["a", "b, c", "say \"hi\""]);
        assert_eq!(rows[1].line, 3);
        assert_eq!(rows[1].fields, ["two\nlines", "", "x"]);
        let err = csv_records_with_header("q,a\nx,y,z\n", Path::new("t.csv")).unwrap_err();
        assert!(err.to_string().starts_with("t.csv:2:"), "{err}");
    }
}
