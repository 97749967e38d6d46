//! Reading: owns turning a split into Arrow `RecordBatch`es. It opens a
//! file's footer (once per file, at planning), checks the file's schema
//! against the source schema, fetches only the column chunks of the split's
//! row groups through `object_store`, and decodes them on the calling
//! (blocking) thread, resuming at the split's committed row offset. Hive
//! `key=value` segments of the file's path are appended as string columns.
//! A footer's numbers are checked before they are used (`footer`), a panic
//! while opening one is an error, and every error says whose fault it is
//! (`fault`: retry an I/O error, quarantine a bad file).

pub mod fault;
pub mod footer;
pub mod sparse;

use crate::discover::hive;
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
    /// Root column index in the file for each column of the source schema.
    pub projection: Vec<usize>,
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
/// size and its schema against `schema`.
pub async fn open(
    store: &Arc<dyn ObjectStore>,
    path: &str,
    size: u64,
    schema: &SourceSchema,
) -> Result<OpenedFile, ReadError> {
    let meta = load_footer(store, path, size).await?;
    footer::validate(meta.metadata(), size)?;
    let projection = match_schema(meta.schema(), &schema.file)?;
    Ok(OpenedFile {
        path: path.to_string(),
        size,
        meta,
        projection,
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

/// For each expected column, its index among the file's root columns. Extra
/// file columns are ignored; a missing column or another type is an error.
pub fn match_schema(file: &Schema, expected: &Schema) -> Result<Vec<usize>, ReadError> {
    expected
        .fields()
        .iter()
        .map(|want| match file.index_of(want.name()) {
            Err(_) => Err(ReadError::Schema(format!(
                "column {} is missing",
                want.name()
            ))),
            Ok(i) if file.field(i).data_type() != want.data_type() => {
                Err(ReadError::Schema(format!(
                    "column {} has type {}, expected {}",
                    want.name(),
                    file.field(i).data_type(),
                    want.data_type()
                )))
            }
            Ok(i) => Ok(i),
        })
        .collect()
}

/// Where to read and from which row.
pub struct SplitRead<'a> {
    pub file: &'a OpenedFile,
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
        for &c in &r.file.projection {
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
        r.file.projection.iter().copied(),
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
    // The reader yields projected columns in file order; put them in source order.
    let mut sorted: Vec<usize> = r.file.projection.clone();
    sorted.sort_unstable();
    let order: Vec<usize> = r
        .file
        .projection
        .iter()
        .map(|c| sorted.iter().position(|s| s == c).unwrap_or(0))
        .collect();
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
        let mut cols: Vec<ArrayRef> = order.iter().map(|&i| batch.column(i).clone()).collect();
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

    #[test]
    fn schema_mismatch_is_explained() {
        let want = Schema::new(vec![
            Field::new("a", DataType::Int64, true),
            Field::new("b", DataType::Utf8, true),
        ]);
        let wrong_type = Schema::new(vec![
            Field::new("a", DataType::Utf8, true),
            Field::new("b", DataType::Utf8, true),
        ]);
        let missing = Schema::new(vec![Field::new("b", DataType::Utf8, true)]);
        let extra = Schema::new(vec![
            Field::new("z", DataType::Utf8, true),
            Field::new("b", DataType::Utf8, true),
            Field::new("a", DataType::Int64, true),
        ]);
        assert!(
            match_schema(&wrong_type, &want)
                .unwrap_err()
                .to_string()
                .contains("column a has type Utf8, expected Int64")
        );
        assert!(
            match_schema(&missing, &want)
                .unwrap_err()
                .to_string()
                .contains("column a is missing")
        );
        assert_eq!(match_schema(&extra, &want).unwrap(), vec![2, 1]);
    }
}
