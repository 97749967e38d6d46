//! Sample input for `sluice rules test --input FILE`: a Parquet, CSV (with
//! a header) or NDJSON file, by extension. The source schema is the file's
//! own (CSV/NDJSON: inferred), with the Hive partition columns appended as
//! strings like the daemon does: their values come from `key=value`
//! segments of the file's path, else NULL. A partition column the file
//! itself holds is read as a string (CSV would infer `hour = 07` as 7).

use super::RulesCliError;
use crate::names::hive;
use crate::read::SourceSchema;
use arrow::array::{ArrayRef, RecordBatch, StringArray};
use arrow::compute::{cast, concat_batches};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use std::io::{BufReader, Seek};
use std::path::Path;
use std::sync::Arc;

/// Rows read to infer a CSV/NDJSON schema.
const INFER_ROWS: usize = 10_000;

/// A sample file's rows in the source schema they imply.
pub struct Sample {
    pub schema: SourceSchema,
    pub batch: RecordBatch,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Parquet,
    Csv,
    Ndjson,
}

fn kind_of(path: &Path) -> Option<Kind> {
    let name = path.file_name()?.to_str()?.to_ascii_lowercase();
    if name.ends_with(".parquet") || name.ends_with(".parq") {
        Some(Kind::Parquet)
    } else if name.ends_with(".csv") {
        Some(Kind::Csv)
    } else if name.ends_with(".ndjson") || name.ends_with(".jsonl") || name.ends_with(".json") {
        Some(Kind::Ndjson)
    } else {
        None
    }
}

/// Reads `path` whole. `partition_columns`: the config's, or `None` to take
/// them from the path's `key=value` segments.
pub fn read_sample(
    path: &Path,
    partition_columns: Option<&[String]>,
) -> Result<Sample, RulesCliError> {
    let err = |m: String| RulesCliError::Input {
        path: path.to_path_buf(),
        message: m,
    };
    let kind = kind_of(path).ok_or_else(|| {
        err("unknown file type; use .parquet, .csv (with a header row) or .ndjson/.jsonl".into())
    })?;
    let path_kv = hive::parse_path(&path.to_string_lossy());
    let parts: Vec<String> = match partition_columns {
        Some(p) => p.to_vec(),
        None => path_kv.iter().map(|(k, _)| k.clone()).collect(),
    };
    let file = std::fs::File::open(path).map_err(|e| err(e.to_string()))?;
    let (schema, batches) = match kind {
        Kind::Parquet => {
            let b =
                ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| err(e.to_string()))?;
            let schema = b.schema().clone();
            let batches = b
                .build()
                .map_err(|e| err(e.to_string()))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| err(e.to_string()))?;
            (schema, batches)
        }
        Kind::Csv => {
            let mut r = BufReader::new(file);
            let format = arrow::csv::reader::Format::default().with_header(true);
            let (inferred, _) = format
                .infer_schema(&mut r, Some(INFER_ROWS))
                .map_err(|e| err(e.to_string()))?;
            r.rewind().map_err(|e| err(e.to_string()))?;
            let schema = strings_for(&inferred, &parts);
            let batches = arrow::csv::ReaderBuilder::new(schema.clone())
                .with_header(true)
                .build(r)
                .map_err(|e| err(e.to_string()))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| err(e.to_string()))?;
            (schema, batches)
        }
        Kind::Ndjson => {
            let mut r = BufReader::new(file);
            let (inferred, _) =
                arrow::json::reader::infer_json_schema_from_seekable(&mut r, Some(INFER_ROWS))
                    .map_err(|e| err(e.to_string()))?;
            let schema = strings_for(&inferred, &parts);
            let batches = arrow::json::ReaderBuilder::new(schema.clone())
                .build(r)
                .map_err(|e| err(e.to_string()))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| err(e.to_string()))?;
            (schema, batches)
        }
    };
    let whole = concat_batches(&schema, &batches).map_err(|e| err(e.to_string()))?;
    let source = SourceSchema::new(schema.clone(), parts.clone());
    // Source order: file columns (partition columns taken out), then partition columns as strings.
    let n = whole.num_rows();
    let mut cols: Vec<ArrayRef> = Vec::with_capacity(source.full.fields().len());
    for f in source.full.fields() {
        let col = match whole.column_by_name(f.name()) {
            Some(c) if c.data_type() == f.data_type() => c.clone(),
            Some(c) => cast(c, f.data_type()).map_err(|e| err(format!("{}: {e}", f.name())))?,
            None => {
                let v = path_kv
                    .iter()
                    .find(|(k, _)| k == f.name())
                    .map(|(_, v)| v.as_str());
                Arc::new(StringArray::from(vec![v; n]))
            }
        };
        cols.push(col);
    }
    let batch = RecordBatch::try_new(source.full.clone(), cols).map_err(|e| err(e.to_string()))?;
    Ok(Sample {
        schema: source,
        batch,
    })
}

/// `inferred` with the partition columns as nullable strings.
fn strings_for(inferred: &Schema, parts: &[String]) -> SchemaRef {
    Arc::new(Schema::new(
        inferred
            .fields()
            .iter()
            .map(|f| {
                if parts.contains(f.name()) {
                    Field::new(f.name(), DataType::Utf8, true)
                } else {
                    f.as_ref().clone()
                }
            })
            .collect::<Vec<_>>(),
    ))
}
