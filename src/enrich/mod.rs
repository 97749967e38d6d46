//! Enrichment: owns the dimension tables joined onto every source batch
//! before routing (a left join on one key per dimension; unmatched rows
//! get nulls or a configured default and are never dropped).
//!
//! Each dimension has one current [`Snapshot`] behind an `ArcSwap`: a batch
//! loads it once, so it is joined against exactly one snapshot, and the
//! swap never waits for readers. A background thread per dimension checks
//! the files every `poll_interval`, loads a changed version off the hot
//! path, and swaps only a load that passed every check (fingerprint stable
//! across the read, schema unchanged, enough rows). A failed load keeps the
//! last good snapshot: logged, counted, and its age exported. At start
//! without a loadable newest version it falls back to the persisted copy
//! of the last good snapshot, then to older dated folders.
//!
//! This file owns the per-batch join and the enriched schema; the load,
//! reload and fallback lifecycle is `lifecycle.rs`'s.

mod lifecycle;
mod load;
mod snapshot;

pub use lifecycle::load_candidate;
use lifecycle::{initial_load, reload_loop};
pub use load::Candidate;
pub use snapshot::{Fingerprint, Snapshot};

use crate::config::DimensionSpec;
use crate::telemetry::{DimCounters, Metrics};
use arc_swap::ArcSwap;
use arrow::array::RecordBatch;
use arrow::datatypes::{Field, FieldRef, Schema, SchemaRef};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex};
use tokio::runtime::Handle;

#[derive(Debug, thiserror::Error)]
pub enum EnrichError {
    #[error("{0}")]
    Load(String),
    #[error("{0} (the load was discarded)")]
    Moved(String),
    #[error("{0}")]
    Rejected(String),
    #[error("dimension {name}: no usable snapshot; tried:\n{tried}")]
    NoSnapshot { name: String, tried: String },
    #[error("dimension {name}: {message}")]
    Config { name: String, message: String },
    #[error(transparent)]
    Arrow(#[from] arrow::error::ArrowError),
    #[error(transparent)]
    Parquet(#[from] parquet::errors::ParquetError),
    #[error(transparent)]
    Store(#[from] object_store::Error),
}

struct Dim {
    spec: DimensionSpec,
    /// The added fields, fixed at start: a reload that changes them is refused.
    fields: Vec<FieldRef>,
    current: ArcSwap<Snapshot>,
    counters: Arc<DimCounters>,
}

type Stop = Arc<(Mutex<bool>, Condvar)>;

/// The dimensions of a run, their reload threads, and the enriched schema.
pub struct Enricher {
    dims: Vec<Arc<Dim>>,
    /// Source columns then the dimensions' columns; the source part changes
    /// when the source schema evolves ([`Enricher::set_base`]).
    schema: ArcSwap<Schema>,
    stop: Stop,
    threads: Vec<std::thread::JoinHandle<()>>,
}

/// How an enricher is started.
pub struct EnrichOptions {
    /// Where persisted snapshots live (`None`: neither read nor written).
    pub state_dir: Option<PathBuf>,
    /// Start the reload threads (the daemon); `sluice check` does not.
    pub background: bool,
}

impl Enricher {
    /// No dimensions: batches pass through unchanged.
    pub fn none(schema: SchemaRef) -> Enricher {
        Enricher {
            dims: Vec::new(),
            schema: ArcSwap::new(schema),
            stop: Arc::new((Mutex::new(false), Condvar::new())),
            threads: Vec::new(),
        }
    }

    /// Loads every dimension (falling back as described above) and starts
    /// the reload threads. Fails when a dimension has no usable snapshot
    /// at all, or its columns clash with the source's.
    pub fn start(
        specs: &[DimensionSpec],
        base: &SchemaRef,
        opts: EnrichOptions,
        metrics: &Metrics,
        handle: &Handle,
    ) -> Result<Enricher, EnrichError> {
        let mut fields: Vec<FieldRef> = base.fields().iter().cloned().collect();
        let mut dims = Vec::new();
        for spec in specs {
            let cfg_err = |message: String| EnrichError::Config {
                name: spec.name.clone(),
                message,
            };
            if !fields.iter().any(|f| f.name() == &spec.source_key) {
                return Err(cfg_err(format!(
                    "source_key {:?} is not a source column",
                    spec.source_key
                )));
            }
            let counters = metrics.dimension(&spec.name);
            let snap = initial_load(spec, opts.state_dir.as_deref(), &counters, handle)?;
            for f in &snap.fields {
                if fields.iter().any(|o| o.name() == f.name()) {
                    return Err(cfg_err(format!(
                        "the added column {:?} is already a column; use `prefix` or `rename`",
                        f.name()
                    )));
                }
            }
            fields.extend(snap.fields.iter().cloned());
            dims.push(Arc::new(Dim {
                fields: snap.fields.clone(),
                current: ArcSwap::from_pointee(snap),
                counters,
                spec: spec.clone(),
            }));
        }
        let schema = Arc::new(Schema::new_with_metadata(
            fields.iter().map(|f| Field::clone(f)).collect::<Vec<_>>(),
            base.metadata().clone(),
        ));
        let stop: Stop = Arc::new((Mutex::new(false), Condvar::new()));
        let mut threads = Vec::new();
        if opts.background {
            for d in &dims {
                let (d, stop, handle, state_dir) = (
                    d.clone(),
                    stop.clone(),
                    handle.clone(),
                    opts.state_dir.clone(),
                );
                let t = std::thread::Builder::new()
                    .name(format!("sluice-dim-{}", d.spec.name))
                    .spawn(move || reload_loop(&d, &stop, &handle, state_dir.as_deref()))
                    .map_err(|e| EnrichError::Load(format!("cannot start a thread: {e}")))?;
                threads.push(t);
            }
        }
        Ok(Enricher {
            dims,
            schema: ArcSwap::new(schema),
            stop,
            threads,
        })
    }

    /// The rows rules see: source columns, then each dimension's columns.
    pub fn schema(&self) -> SchemaRef {
        self.schema.load_full()
    }

    /// What rules would see over the source columns `base` (an evolved
    /// source schema): refused when a dimension's key column is gone or
    /// changed type, or a new source column has a dimension column's name.
    pub fn enriched_schema(&self, base: &SchemaRef) -> Result<SchemaRef, EnrichError> {
        let current = self.schema.load();
        let mut fields: Vec<FieldRef> = base.fields().iter().cloned().collect();
        for d in &self.dims {
            let err = |message: String| EnrichError::Config {
                name: d.spec.name.clone(),
                message,
            };
            let key = &d.spec.source_key;
            let now = base.field_with_name(key).map(|f| f.data_type());
            let before = current.field_with_name(key).map(|f| f.data_type());
            match (now, before) {
                (Ok(a), Ok(b)) if a == b => {}
                (Ok(a), Ok(b)) => {
                    return Err(err(format!(
                        "source_key {key:?} would change type from {b} to {a}; the dimension joins on {b}"
                    )));
                }
                _ => return Err(err(format!("source_key {key:?} is not a source column"))),
            }
            for f in &d.fields {
                if base.field_with_name(f.name()).is_ok() {
                    return Err(err(format!(
                        "the new source column {:?} has the name of a column this dimension adds; use `prefix` or `rename` (restart needed)",
                        f.name()
                    )));
                }
            }
            fields.extend(d.fields.iter().cloned());
        }
        Ok(Arc::new(Schema::new_with_metadata(
            fields.iter().map(|f| Field::clone(f)).collect::<Vec<_>>(),
            base.metadata().clone(),
        )))
    }

    /// Takes `enriched` (from [`Enricher::enriched_schema`]) as what batches
    /// become. Call only while no batch is being enriched (at a barrier).
    pub fn set_schema(&self, enriched: SchemaRef) {
        self.schema.store(enriched);
    }

    pub fn is_empty(&self) -> bool {
        self.dims.is_empty()
    }

    /// Left-joins every dimension onto `batch` (one snapshot each).
    pub fn enrich(&self, batch: RecordBatch) -> Result<RecordBatch, EnrichError> {
        if self.dims.is_empty() {
            return Ok(batch);
        }
        let mut cols = batch.columns().to_vec();
        for d in &self.dims {
            let snap = d.current.load();
            // By name: new source columns move the partition columns.
            let key = batch
                .column_by_name(&d.spec.source_key)
                .ok_or_else(|| {
                    EnrichError::Load(format!(
                        "dimension {}: the batch has no key column {}",
                        d.spec.name, d.spec.source_key
                    ))
                })?
                .clone();
            let (added, unmatched) = snap.join(&key)?;
            d.counters.unmatched.fetch_add(unmatched, Ordering::Relaxed);
            cols.extend(added);
        }
        let opts = arrow::array::RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
        Ok(RecordBatch::try_new_with_options(
            self.schema.load_full(),
            cols,
            &opts,
        )?)
    }

    /// The Arrow size of the loaded dimension rows (all dimensions).
    pub fn arrow_bytes(&self) -> usize {
        self.dims
            .iter()
            .map(|d| d.current.load().data.get_array_memory_size())
            .sum()
    }

    /// Each dimension's snapshot in use and last failure, for `sluice status`.
    pub fn status(&self) -> Vec<crate::telemetry::status::DimensionStatus> {
        self.dims
            .iter()
            .map(|d| {
                let s = d.current.load();
                let err = d
                    .counters
                    .last_error
                    .lock()
                    .unwrap_or_else(|p| p.into_inner());
                crate::telemetry::status::DimensionStatus {
                    name: d.spec.name.clone(),
                    snapshot: s.origin.clone(),
                    rows: s.rows as u64,
                    loaded_at_ms: s.loaded_at_ms,
                    last_error: Some(err.clone()).filter(|e| !e.is_empty()),
                }
            })
            .collect()
    }

    /// The snapshot each dimension uses now: (name, origin, rows, loaded at).
    pub fn in_use(&self) -> Vec<(String, String, usize, i64)> {
        self.dims
            .iter()
            .map(|d| {
                let s = d.current.load();
                (
                    d.spec.name.clone(),
                    s.origin.clone(),
                    s.rows,
                    s.loaded_at_ms,
                )
            })
            .collect()
    }
}

impl Drop for Enricher {
    fn drop(&mut self) {
        let (m, cv) = &*self.stop;
        *m.lock().unwrap_or_else(|p| p.into_inner()) = true;
        cv.notify_all();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests;
