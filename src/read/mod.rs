//! Reading: owns turning a split into Arrow `RecordBatch`es. It opens a
//! file's footer (once per file, at planning), checks the file's schema
//! against the source schema, fetches only the column chunks of the split's
//! row groups through `object_store`, and decodes them on the calling
//! (blocking) thread, resuming at the split's committed row offset. Hive
//! `key=value` segments of the file's path are appended as string columns.
//! A footer's numbers are checked before they are used (`footer`), a panic
//! while opening one is an error, and every error says whose fault it is
//! (`fault`: retry an I/O error, quarantine a bad file). How a file's
//! schema may differ from the source schema (new columns, missing ones,
//! widened types) is `evolve`'s.

pub mod evolve;
pub mod fault;
pub mod footer;
pub mod sparse;

use crate::names::hive;
use crate::split::RowGroupInfo;
use arrow::array::{ArrayRef, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use object_store::ObjectStore;
use object_store::path::Path as ObjPath;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder, RowSelection,
    RowSelector,
};
// ParquetObjectReader is deprecated in parquet 59 in favour of a hand-written
// AsyncFileReader; it still works and is the only footer reader used here.
use futures::FutureExt;
#[allow(deprecated)]
use parquet::arrow::async_reader::ParquetObjectReader;
use std::panic::AssertUnwindSafe;
use std::str::FromStr;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("cannot fetch {path}: {source}")]
    Fetch {
        path: String,
        source: object_store::Error,
    },
    #[error("not a readable parquet file: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    #[error("decode: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    #[error("schema mismatch: {0}")]
    Schema(String),
    #[error("bad schema description: {0}")]
    SchemaJson(String),
    #[error("bad footer: {0}")]
    BadFooter(String),
    #[error("reader panicked: {0}")]
    Panicked(String),
}

/// The source's columns: file columns, then Hive partition columns (strings).
#[derive(Clone, Debug)]
pub struct SourceSchema {
    /// Columns read from each file, in order.
    pub file: SchemaRef,
    /// Hive path keys appended as Utf8 columns.
    pub partition_columns: Vec<String>,
    /// `file` + partition columns: what rules see.
    pub full: SchemaRef,
}

impl SourceSchema {
    /// Every column is nullable whatever `file` declares: the first file's
    /// NOT NULL flags say nothing about later files, and a batch with a NULL
    /// in a non-nullable column would fail mid-file. (A state written by an
    /// older version may record `nullable: false`; it is read the same way.)
    pub fn new(file: SchemaRef, partition_columns: Vec<String>) -> SourceSchema {
        let mut fields: Vec<Field> = file
            .fields()
            .iter()
            .filter(|f| !partition_columns.contains(f.name()))
            .map(|f| f.as_ref().clone().with_nullable(true))
            .collect();
        let file = Arc::new(Schema::new(fields.clone()));
        fields.extend(
            partition_columns
                .iter()
                .map(|c| Field::new(c, DataType::Utf8, true)),
        );
        SourceSchema {
            file,
            partition_columns,
            full: Arc::new(Schema::new(fields)),
        }
    }

    /// A stable text form for state: `[{"name":..,"type":..,"nullable":..}]`
    /// plus the partition columns.
    pub fn to_json(&self) -> String {
        let cols: Vec<serde_json::Value> = self
            .file
            .fields()
            .iter()
            .map(|f| serde_json::json!({"name": f.name(), "type": f.data_type().to_string(), "nullable": f.is_nullable()}))
            .collect();
        serde_json::json!({"v": 1, "columns": cols, "partition_columns": self.partition_columns})
            .to_string()
    }

    pub fn from_json(s: &str) -> Result<SourceSchema, ReadError> {
        let bad = |m: &str| ReadError::SchemaJson(m.to_string());
        let v: serde_json::Value = serde_json::from_str(s).map_err(|e| bad(&e.to_string()))?;
        let mut fields = Vec::new();
        for c in v["columns"].as_array().ok_or_else(|| bad("no columns"))? {
            let name = c["name"]
                .as_str()
                .ok_or_else(|| bad("column without name"))?;
            let ty = c["type"]
                .as_str()
                .ok_or_else(|| bad("column without type"))?;
            let ty = DataType::from_str(ty).map_err(|e| bad(&e.to_string()))?;
            fields.push(Field::new(
                name,
                ty,
                c["nullable"].as_bool().unwrap_or(true),
            ));
        }
        let parts = v["partition_columns"]
            .as_array()
            .ok_or_else(|| bad("no partition_columns"))?
            .iter()
            .filter_map(|p| p.as_str().map(String::from))
            .collect();
        Ok(SourceSchema::new(Arc::new(Schema::new(fields)), parts))
    }
}

/// A source file's footer, opened once at planning.
#[derive(Clone, Debug)]
pub struct OpenedFile {
    pub path: String,
    pub size: u64,
    pub meta: ArrowReaderMetadata,
    /// How the source schema it was opened against must change to read it
    /// (empty: it fits as it is).
    pub changes: Vec<evolve::Change>,
}

impl OpenedFile {
    pub fn row_groups(&self) -> Vec<RowGroupInfo> {
        self.meta
            .metadata()
            .row_groups()
            .iter()
            .map(|rg| RowGroupInfo {
                rows: rg.num_rows().max(0) as u64,
                bytes: rg.compressed_size().max(0) as u64,
            })
            .collect()
    }
}

/// Reads the footer of `path` and checks its numbers against the file's
/// size and its schema against `schema`: an incompatible column type is an
/// error, new columns and wider types are [`OpenedFile::changes`].
pub async fn open(
    store: &Arc<dyn ObjectStore>,
    path: &str,
    size: u64,
    schema: &SourceSchema,
) -> Result<OpenedFile, ReadError> {
    let meta = load_footer(store, path, size).await?;
    footer::validate(meta.metadata(), size)?;
    let changes = evolve::compare(meta.schema(), schema)?;
    Ok(OpenedFile {
        path: path.to_string(),
        size,
        meta,
        changes,
    })
}

/// Reads only the schema of a file (to infer the source schema).
pub async fn file_schema(
    store: &Arc<dyn ObjectStore>,
    path: &str,
    size: u64,
) -> Result<SchemaRef, ReadError> {
    let meta = load_footer(store, path, size).await?;
    footer::validate(meta.metadata(), size)?;
    Ok(meta.schema().clone())
}

/// Loads and decodes a footer; a panic of the decoder is an error.
async fn load_footer(
    store: &Arc<dyn ObjectStore>,
    path: &str,
    size: u64,
) -> Result<ArrowReaderMetadata, ReadError> {
    let location = location(path)?;
    let load = async {
        #[allow(deprecated)]
        let mut reader = ParquetObjectReader::new(store.clone(), location).with_file_size(size);
        ArrowReaderMetadata::load_async(&mut reader, ArrowReaderOptions::new()).await
    };
    match AssertUnwindSafe(load).catch_unwind().await {
        Ok(r) => Ok(r?),
        Err(p) => Err(ReadError::Panicked(footer::panic_message(p.as_ref()))),
    }
}

/// The object a listed path names. Listed paths are already in
/// `object_store`'s form: parsed as they are, never encoded again (which
/// would turn `%`, `#`, non-ASCII names into other names).
fn location(path: &str) -> Result<ObjPath, ReadError> {
    ObjPath::parse(path).map_err(|e| ReadError::Fetch {
        path: path.to_string(),
        source: e.into(),
    })
}

/// Where to read and from which row.
pub struct SplitRead<'a> {
    pub file: &'a OpenedFile,
    /// How the file's columns become the source schema's (see `evolve::plan`).
    pub plan: &'a evolve::FilePlan,
    pub row_groups: (usize, usize),
    pub rows: u64,
    /// Rows of the split already committed: skipped.
    pub offset: u64,
    pub batch_rows: usize,
}

/// Fetches the split's column chunks (async; run it on the I/O runtime).
pub async fn fetch(
    store: &Arc<dyn ObjectStore>,
    r: &SplitRead<'_>,
) -> Result<sparse::SparseFile, ReadError> {
    let md = r.file.meta.metadata();
    let mut ranges = Vec::new();
    for rg in r.row_groups.0..r.row_groups.1 {
        let Some(rgm) = md.row_groups().get(rg) else {
            return Err(ReadError::BadFooter(format!(
                "the split names row group {rg} but the file has {}",
                md.num_row_groups()
            )));
        };
        for &c in &r.plan.projection {
            for leaf in leaves_of_root(r.file.meta.parquet_schema(), c) {
                let range = rgm
                    .columns()
                    .get(leaf)
                    .ok_or_else(|| format!("no column chunk {leaf}"))
                    .and_then(|chunk| footer::chunk_range(chunk, r.file.size))
                    .map_err(|m| {
                        ReadError::BadFooter(format!("row group {rg} column {leaf}: {m}"))
                    })?;
                ranges.push(range);
            }
        }
    }
    let path = location(&r.file.path)?;
    let ranges = sparse::merge(ranges);
    let chunks = store
        .get_ranges(&path, &ranges)
        .await
        .map_err(|source| ReadError::Fetch {
            path: r.file.path.clone(),
            source,
        })?;
    Ok(sparse::SparseFile::new(
        r.file.size,
        ranges.into_iter().zip(chunks).collect(),
    ))
}

fn leaves_of_root(schema: &parquet::schema::types::SchemaDescriptor, root: usize) -> Vec<usize> {
    (0..schema.num_columns())
        .filter(|&i| schema.get_column_root_idx(i) == root)
        .collect()
}

/// Decodes a fetched split (CPU: call from a blocking thread). Each batch is
/// passed to `emit` with its first row within the split.
pub fn decode(
    data: sparse::SparseFile,
    r: &SplitRead<'_>,
    schema: &SourceSchema,
    mut emit: impl FnMut(u64, RecordBatch) -> bool,
) -> Result<(), ReadError> {
    if r.offset >= r.rows {
        return Ok(());
    }
    let mask = ProjectionMask::roots(
        r.file.meta.parquet_schema(),
        r.plan.projection.iter().copied(),
    );
    let selection = RowSelection::from(vec![
        RowSelector::skip(r.offset as usize),
        RowSelector::select((r.rows - r.offset) as usize),
    ]);
    let reader = ParquetRecordBatchReaderBuilder::new_with_metadata(data, r.file.meta.clone())
        .with_row_groups((r.row_groups.0..r.row_groups.1).collect())
        .with_projection(mask)
        .with_row_selection(selection)
        .with_batch_size(r.batch_rows)
        .build()?;
    let parts: Vec<Option<String>> = {
        let kv = hive::parse_path(&r.file.path);
        schema
            .partition_columns
            .iter()
            .map(|c| kv.iter().find(|(k, _)| k == c).map(|(_, v)| v.clone()))
            .collect()
    };
    let mut first = r.offset;
    for batch in reader {
        let batch = batch?;
        let n = batch.num_rows();
        // In source order: widened columns cast, missing ones NULL.
        let mut cols: Vec<ArrayRef> = r.plan.conform(batch.columns(), n)?;
        for v in &parts {
            cols.push(Arc::new(StringArray::from(vec![v.as_deref(); n])));
        }
        let out = RecordBatch::try_new(schema.full.clone(), cols)?;
        if !emit(first, out) {
            return Ok(());
        }
        first += n as u64;
    }
    if first < r.rows {
        return Err(ReadError::BadFooter(format!(
            "the split's row groups hold {first} rows where the footer says {}",
            r.rows
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_round_trips_through_json() {
        let file = Arc::new(Schema::new(vec![
            Field::new("a", DataType::Int64, false),
            Field::new("b", DataType::Utf8, true),
            Field::new(
                "t",
                DataType::Timestamp(arrow::datatypes::TimeUnit::Millisecond, None),
                true,
            ),
        ]));
        let s = SourceSchema::new(file, vec!["dt".into()]);
        let back = SourceSchema::from_json(&s.to_json()).unwrap();
        assert_eq!(back.full, s.full);
        assert_eq!(back.partition_columns, vec!["dt".to_string()]);
    }

    #[test]
    fn every_source_column_is_nullable() {
        let file = Arc::new(Schema::new(vec![Field::new("a", DataType::Int64, false)]));
        let s = SourceSchema::new(file, vec![]);
        assert!(s.full.field(0).is_nullable());
        // A state written by an older version recorded the first file's flag.
        let old = r#"{"v":1,"columns":[{"name":"a","type":"Int64","nullable":false}],"partition_columns":["dt"]}"#;
        let back = SourceSchema::from_json(old).unwrap();
        assert!(back.file.field(0).is_nullable());
        assert!(back.full.fields().iter().all(|f| f.is_nullable()));
    }
}
