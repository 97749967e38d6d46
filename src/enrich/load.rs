//! Loading a dimension: finding what to load (a file, every data file of
//! a folder, or the newest complete `dt=YYYY-MM-DD/` folder), reading it
//! through `object_store`, and the atomic-load check: the files' (path,
//! size, mtime) fingerprint is taken before and after reading, and a load
//! whose files moved in between is discarded. Also the persisted copy of
//! the last good snapshot in the state directory.

use super::EnrichError;
use super::snapshot::{Fingerprint, Snapshot};
use crate::config::{DimFormat, DimLayout, DimensionSpec};
use crate::store::{Location, ObjectUrl};
use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Field, Schema};
use bytes::Bytes;
use futures::TryStreamExt;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjPath;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt, PutPayload};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use std::path::Path;
use std::sync::Arc;
use tokio::runtime::Handle;

/// One loadable version of a dimension: the files that make it up.
#[derive(Clone, Debug)]
pub struct Candidate {
    /// `file.parquet`, `dir/` or `dt=2026-11-20`.
    pub origin: String,
    store: Arc<dyn ObjectStore>,
    files: Vec<ObjectMeta>,
}

impl Candidate {
    pub fn fingerprint(&self) -> Fingerprint {
        fingerprint(&self.files)
    }
}

fn fingerprint(files: &[ObjectMeta]) -> Fingerprint {
    let mut v: Vec<(String, u64, i64)> = files
        .iter()
        .map(|m| {
            (
                m.location.to_string(),
                m.size,
                m.last_modified.timestamp_millis(),
            )
        })
        .collect();
    v.sort();
    Fingerprint(v)
}

fn store_at(dir: &Path) -> Result<Arc<dyn ObjectStore>, EnrichError> {
    LocalFileSystem::new_with_prefix(dir)
        .map(|s| Arc::new(s) as Arc<dyn ObjectStore>)
        .map_err(|e| EnrichError::Load(format!("cannot open {}: {e}", dir.display())))
}

fn open_store(loc: &Location, spec: &DimensionSpec) -> Result<Arc<dyn ObjectStore>, EnrichError> {
    crate::store::open_with(loc, &spec.stores, false, crate::store::Patience::Source)
        .map_err(|e| EnrichError::Load(e.to_string()))
}

async fn one_file(
    store: Arc<dyn ObjectStore>,
    name: String,
) -> Result<Vec<Candidate>, EnrichError> {
    let m = store.head(&ObjPath::from(name.as_str())).await?;
    Ok(vec![Candidate {
        origin: name,
        store,
        files: vec![m],
    }])
}

fn is_data_file(spec: &DimensionSpec, name: &str) -> bool {
    if name.starts_with('.') || name.starts_with('_') || name.ends_with(".inprogress") {
        return false;
    }
    match spec.format {
        DimFormat::Parquet => !name.ends_with(".crc"),
        DimFormat::Csv => !name.ends_with(".crc"),
        DimFormat::Auto => name.ends_with(".parquet") || name.ends_with(".csv"),
    }
}

/// What can be loaded now, best first: for `dated`, complete folders from
/// the newest down; else the one file or folder.
pub async fn candidates(spec: &DimensionSpec) -> Result<Vec<Candidate>, EnrichError> {
    let store = match &spec.path {
        Location::Local(path) => {
            let meta = tokio::fs::metadata(path).await.map_err(|e| {
                EnrichError::Load(format!("{} is not readable: {e}", path.display()))
            })?;
            if meta.is_file() {
                let parent = path.parent().unwrap_or(Path::new("/"));
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().to_string())
                    .unwrap_or_default();
                return one_file(store_at(parent)?, name).await;
            }
            store_at(path)?
        }
        Location::Url(url) => {
            // An object at exactly this key is a one-file dimension; else
            // the key is a prefix ("folder").
            if let Some((parent, name)) = url
                .prefix
                .rsplit_once('/')
                .or((!url.prefix.is_empty()).then_some(("", url.prefix.as_str())))
            {
                let parent = Location::Url(ObjectUrl {
                    prefix: parent.to_string(),
                    ..url.clone()
                });
                let store = open_store(&parent, spec)?;
                match store.head(&ObjPath::from(name)).await {
                    Ok(_) => return one_file(store, name.to_string()).await,
                    Err(object_store::Error::NotFound { .. }) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            open_store(&spec.path, spec)?
        }
    };
    let all: Vec<ObjectMeta> = store.list(None).try_collect().await?;
    match &spec.layout {
        DimLayout::Plain => {
            let files: Vec<ObjectMeta> = all
                .into_iter()
                .filter(|m| {
                    let p = m.location.to_string();
                    !p.split('/')
                        .any(|s| s.starts_with('.') || s.starts_with('_'))
                        && is_data_file(spec, m.location.filename().unwrap_or(""))
                })
                .collect();
            Ok(vec![Candidate {
                origin: format!("{}/", spec.path),
                store,
                files,
            }])
        }
        DimLayout::Dated { marker } => {
            let mut by_day: std::collections::BTreeMap<String, (bool, Vec<ObjectMeta>)> =
                Default::default();
            for m in all {
                let p = m.location.to_string();
                let Some((day, rest)) = p.split_once('/') else {
                    continue;
                };
                if !is_dated_folder(day) {
                    continue;
                }
                let e = by_day.entry(day.to_string()).or_default();
                if marker.as_deref() == Some(rest) {
                    e.0 = true;
                } else if !rest
                    .split('/')
                    .any(|s| s.starts_with('.') || s.starts_with('_'))
                    && is_data_file(spec, m.location.filename().unwrap_or(""))
                {
                    e.1.push(m);
                }
            }
            Ok(by_day
                .into_iter()
                .rev()
                .filter(|(_, (marked, files))| !files.is_empty() && (marker.is_none() || *marked))
                .map(|(day, (_, files))| Candidate {
                    origin: day,
                    store: store.clone(),
                    files,
                })
                .collect())
        }
    }
}

/// `dt=YYYY-MM-DD`.
fn is_dated_folder(s: &str) -> bool {
    let Some(d) = s.strip_prefix("dt=") else {
        return false;
    };
    let b = d.as_bytes();
    b.len() == 10
        && b.iter().enumerate().all(|(i, c)| {
            if i == 4 || i == 7 {
                *c == b'-'
            } else {
                c.is_ascii_digit()
            }
        })
}

/// Reads a candidate's rows (the key and the added columns only), then
/// lists its files again: if anything moved, the rows are discarded.
/// `between` runs after reading and before the second fingerprint (tests
/// use it to change a file mid-load).
pub fn read_candidate(
    handle: &Handle,
    spec: &DimensionSpec,
    c: &Candidate,
    between: &dyn Fn(),
) -> Result<(RecordBatch, Fingerprint), EnrichError> {
    if c.files.is_empty() {
        return Err(EnrichError::Load(format!(
            "{} holds no data file",
            c.origin
        )));
    }
    let before = c.fingerprint();
    let mut wanted: Vec<&str> = vec![spec.key.as_str()];
    wanted.extend(spec.columns.iter().map(|c| c.from.as_str()));
    let blobs = handle.block_on(async {
        let mut out = Vec::with_capacity(c.files.len());
        for m in &c.files {
            let get = async { c.store.get(&m.location).await?.bytes().await };
            let bytes = get
                .await
                .map_err(|e| EnrichError::Load(format!("{}: {e}", m.location)))?;
            out.push((m.location.to_string(), bytes));
        }
        Ok::<_, EnrichError>(out)
    })?;
    let mut batches = Vec::new();
    for (name, bytes) in blobs {
        let csv = match spec.format {
            DimFormat::Csv => true,
            DimFormat::Parquet => false,
            DimFormat::Auto => name.ends_with(".csv"),
        };
        let read = if csv {
            read_csv(bytes, &wanted)
        } else {
            read_parquet(bytes, &wanted)
        };
        batches.extend(read.map_err(|e| EnrichError::Load(format!("{name}: {e}")))?);
    }
    between();
    let now = handle.block_on(async {
        let mut now: Vec<ObjectMeta> = Vec::with_capacity(c.files.len());
        for m in &c.files {
            match c.store.head(&m.location).await {
                Ok(h) => now.push(h),
                Err(_) => {
                    return Err(EnrichError::Moved(format!(
                        "{} disappeared while it was read",
                        m.location
                    )));
                }
            }
        }
        Ok(now)
    })?;
    let after = fingerprint(&now);
    if after != before {
        return Err(EnrichError::Moved(format!(
            "{} changed while it was read",
            c.origin
        )));
    }
    let schema = batches
        .first()
        .map(|b| b.schema())
        .ok_or_else(|| EnrichError::Load(format!("{} holds no rows", c.origin)))?;
    for b in &batches {
        if b.schema() != schema {
            return Err(EnrichError::Load(format!(
                "the files of {} do not share one schema",
                c.origin
            )));
        }
    }
    let data = arrow::compute::concat_batches(&schema, &batches)?;
    Ok((data, before))
}

fn project(schema: &Schema, wanted: &[&str]) -> Result<Vec<usize>, String> {
    wanted
        .iter()
        .map(|w| {
            schema.index_of(w).map_err(|_| {
                format!(
                    "no column {w:?} (it has {})",
                    schema
                        .fields()
                        .iter()
                        .map(|f| f.name().as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })
        })
        .collect()
}

fn read_parquet(bytes: Bytes, wanted: &[&str]) -> Result<Vec<RecordBatch>, String> {
    let b = ParquetRecordBatchReaderBuilder::try_new(bytes).map_err(|e| e.to_string())?;
    let idx = project(b.schema(), wanted)?;
    // Root columns to leaf indices: the wanted columns are flat.
    let mask = ProjectionMask::roots(b.parquet_schema(), idx.iter().copied());
    let reader = b
        .with_projection(mask)
        .with_batch_size(64 * 1024)
        .build()
        .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| e.to_string())?;
        // Put the columns in `wanted` order.
        let s = batch.schema();
        let order = project(&s, wanted)?;
        out.push(batch.project(&order).map_err(|e| e.to_string())?);
    }
    Ok(out)
}

/// CSV with a header; every column is read as a string, so a column's
/// type does not depend on what today's values look like.
fn read_csv(bytes: Bytes, wanted: &[&str]) -> Result<Vec<RecordBatch>, String> {
    let mut first = bytes.split(|b| *b == b'\n').next().unwrap_or(&[]);
    if first.ends_with(b"\r") {
        first = &first[..first.len() - 1];
    }
    let header = std::str::from_utf8(first).map_err(|_| "the header is not UTF-8".to_string())?;
    let names: Vec<String> = header
        .split(',')
        .map(|s| s.trim().trim_matches('"').to_string())
        .collect();
    if names.iter().all(|n| n.is_empty()) {
        return Err("empty file (no header line)".into());
    }
    let schema = Arc::new(Schema::new(
        names
            .iter()
            .map(|n| Field::new(n, DataType::Utf8, true))
            .collect::<Vec<_>>(),
    ));
    let idx = project(&schema, wanted)?;
    let reader = arrow::csv::ReaderBuilder::new(schema)
        .with_header(true)
        .with_projection(idx)
        .with_batch_size(64 * 1024)
        .build(std::io::Cursor::new(bytes))
        .map_err(|e| e.to_string())?;
    reader
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())
}

// ------------------------------------------------------------ persisted copy

#[derive(serde::Serialize, serde::Deserialize)]
struct PersistedMeta {
    origin: String,
    fingerprint: Fingerprint,
    loaded_at_ms: i64,
}

/// Writes the snapshot's rows under `<state>/dimensions/<name>.parquet`
/// (and its origin next to it), replacing the previous copy atomically.
pub fn persist(
    handle: &Handle,
    state_dir: &Path,
    name: &str,
    snap: &Snapshot,
) -> Result<(), EnrichError> {
    let dir = state_dir.join("dimensions");
    std::fs::create_dir_all(&dir)
        .map_err(|e| EnrichError::Load(format!("cannot create {}: {e}", dir.display())))?;
    let store = store_at(&dir)?;
    let mut buf = Vec::new();
    {
        let props = parquet::file::properties::WriterProperties::builder()
            .set_compression(parquet::basic::Compression::ZSTD(Default::default()))
            .build();
        let mut w =
            parquet::arrow::ArrowWriter::try_new(&mut buf, snap.data.schema(), Some(props))?;
        w.write(&snap.data)?;
        w.close()?;
    }
    let meta = PersistedMeta {
        origin: snap.origin.clone(),
        fingerprint: snap.fingerprint.clone(),
        loaded_at_ms: snap.loaded_at_ms,
    };
    let meta = serde_json::to_vec(&meta).map_err(|e| EnrichError::Load(e.to_string()))?;
    handle.block_on(async {
        // Data first, then the meta that names it: a crash in between
        // leaves a copy whose meta is one load older, still consistent
        // enough to enrich with (the meta only names the origin).
        store
            .put(
                &ObjPath::from(format!("{name}.parquet")),
                PutPayload::from(buf),
            )
            .await?;
        store
            .put(
                &ObjPath::from(format!("{name}.json")),
                PutPayload::from(meta),
            )
            .await?;
        Ok::<_, object_store::Error>(())
    })?;
    Ok(())
}

/// The persisted copy, if any: its rows, and (origin, fingerprint, time).
pub fn load_persisted(
    handle: &Handle,
    state_dir: &Path,
    name: &str,
    wanted: &[&str],
) -> Result<Option<(RecordBatch, String, Fingerprint, i64)>, EnrichError> {
    let dir = state_dir.join("dimensions");
    if !dir.join(format!("{name}.json")).exists() {
        return Ok(None);
    }
    let store = store_at(&dir)?;
    let (data, meta) = handle.block_on(async {
        let d = store
            .get(&ObjPath::from(format!("{name}.parquet")))
            .await?
            .bytes()
            .await?;
        let m = store
            .get(&ObjPath::from(format!("{name}.json")))
            .await?
            .bytes()
            .await?;
        Ok::<_, object_store::Error>((d, m))
    })?;
    let meta: PersistedMeta = serde_json::from_slice(&meta)
        .map_err(|e| EnrichError::Load(format!("persisted copy of {name}: {e}")))?;
    let batches = read_parquet(data, wanted)
        .map_err(|e| EnrichError::Load(format!("persisted copy of {name}: {e}")))?;
    let schema = batches
        .first()
        .map(|b| b.schema())
        .ok_or_else(|| EnrichError::Load(format!("persisted copy of {name} is empty")))?;
    let data = arrow::compute::concat_batches(&schema, &batches)?;
    Ok(Some((
        data,
        format!("persisted copy of {}", meta.origin),
        meta.fingerprint,
        meta.loaded_at_ms,
    )))
}
