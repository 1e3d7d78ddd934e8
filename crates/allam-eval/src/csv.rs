//! Reading comma-separated files (RFC 4180: quoted fields, doubled quotes, line breaks inside
//! quotes), enough for the CSV exports of MMLU and Arabic MMLU without a dependency.
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

/// Parses CSV text into its non-blank rows; `path` only names the source in errors.
pub fn parse_csv(text: &str, path: &Path) -> Result<Vec<CsvRow>> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut rows = Vec::new();
    let mut fields = Vec::new();
    let mut field = String::new();
    let (mut line, mut start) = (1, 1);
    let (mut quoted, mut was_quoted) = (false, false);
    let mut chars = text.chars().peekable();
    let mut end_row = |fields: &mut Vec<String>, field: &mut String, was_quoted: bool, start: usize| {
        let blank = fields.is_empty() && field.trim().is_empty() && !was_quoted;
        fields.push(std::mem::take(field));
        let fields = std::mem::take(fields);
        if !blank {
            rows.push(CsvRow { line: start, fields });
        }
    };
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => quoted = false,
                '\n' => {
                    line += 1;
                    field.push(c);
                }
                _ => field.push(c),
            }
            continue;
        }
        match c {
            '"' if field.is_empty() && !was_quoted => {
                quoted = true;
                was_quoted = true;
            }
            '"' => {
                return Err(EvalError::format(
                    path,
                    line,
                    "a quote inside an unquoted field (quote the whole field and double the quote)",
                ));
            }
            ',' => {
                fields.push(std::mem::take(&mut field));
                was_quoted = false;
            }
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' => {
                end_row(&mut fields, &mut field, was_quoted, start);
                was_quoted = false;
                line += 1;
                start = line;
            }
            _ => field.push(c),
        }
    }
    if quoted {
        return Err(EvalError::format(path, start, "a quoted field is never closed"));
    }
    end_row(&mut fields, &mut field, was_quoted, start);
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
        let err = parse_csv("a,b\n\"open,c\n", Path::new("t.csv")).unwrap_err();
        assert!(err.to_string().starts_with("t.csv:2:"), "{err}");
    }
}
