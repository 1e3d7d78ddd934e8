//! Parquet input: a projection on the text columns, read row by row (one row group in memory).
use std::fs::File;
use std::path::Path;

use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::reader::RowIter;
use parquet::record::{Field, Row};
use parquet::schema::types::Type;

use super::Extract;
use crate::error::{DataError, Result};

/// Opens `path` and iterates its rows, keeping only the `fields` columns.
pub(super) fn open_parquet(path: &Path, file: File, fields: &[&str]) -> Result<RowIter<'static>> {
    let perr = |message: String| DataError::Parquet {
        path: path.to_path_buf(),
        message,
    };
    let reader = SerializedFileReader::new(file).map_err(|e| perr(e.to_string()))?;
    let schema = reader.metadata().file_metadata().schema();
    let mut selected = Vec::new();
    for f in fields {
        let col = schema
            .get_fields()
            .iter()
            .find(|t| t.name() == *f)
            .ok_or_else(|| perr(format!("no column `{f}` (expected a string column)")))?;
        selected.push(col.clone());
    }
    let projection = Type::group_type_builder(schema.name())
        .with_fields(selected)
        .build()
        .map_err(|e| perr(e.to_string()))?;
    RowIter::from_file_into(Box::new(reader))
        .project(Some(projection))
        .map_err(|e| perr(e.to_string()))
}

/// The document text of one row, built from the extracted string columns.
pub(super) fn parquet_doc(row: &Row, extract: &mut Extract, path: &Path, line: u64) -> Result<String> {
    let fields = extract.fields();
    let mut values: Vec<&str> = Vec::with_capacity(fields.len());
    for f in &fields {
        let v = row
            .get_column_iter()
            .find(|(name, _)| name.as_str() == *f)
            .map(|(_, v)| v);
        match v {
            Some(Field::Str(s)) => values.push(s.as_str()),
            Some(other) => {
                return Err(DataError::Parquet {
                    path: path.to_path_buf(),
                    message: format!("row {line}: column `{f}` must be a string, found {other}"),
                });
            }
            None => {
                return Err(DataError::Parquet {
                    path: path.to_path_buf(),
                    message: format!("row {line}: missing column `{f}`"),
                });
            }
        }
    }
    Ok(extract.build(&values))
}
