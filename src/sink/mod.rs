//! The sink: the only module that writes output. Owns the Parquet writers
//! (one per table and partition), the staging area no reader of the output
//! sees, output file naming, and the commit step of the checkpoint protocol
//! (staged -> final by rename, idempotent, also used by recovery).
//!
//! ```text
//! <sink>/.sluice-staging/e<epoch>/part-<state>-<epoch>-<writer>-<seq>.zstd.parquet   (staged)
//! <sink>/<table>/<k=v>/.../part-<state>-<epoch>-<writer>-<seq>.zstd.parquet           (final)
//! ```
//! Final names are unique: `<state>` is the state's random id (16 hex
//! digits, see `checkpoint::identity`), so a wiped or replaced state that
//! counts epochs from 1 again never repeats a name; an epoch number is
//! recorded at prepare and never reused by a state; and (writer, seq) are
//! unique within the epoch. So staged names are too, and staging is flat:
//! on a local disk each directory level of a new partition costs a `mkdir`,
//! and one epoch may open thousands. The commit never replaces a file it
//! did not stage (see [`commit`]).

pub mod commit;
pub mod encoding;
mod upload;

use crate::checkpoint::StagedFile;
use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use hashbrown::HashMap;
use object_store::ObjectStore;
use object_store::path::{Path as ObjPath, PathPart};
use parquet::arrow::ArrowWriter;
use std::sync::Arc;
use tokio::runtime::Handle;

/// The hidden prefix under the sink root where files are staged.
pub const STAGING_DIR: &str = ".sluice-staging";

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("parquet encode for {table}: {source}")]
    Encode {
        table: String,
        source: parquet::errors::ParquetError,
    },
    #[error("object store {op} {path}: {source}")]
    Store {
        op: &'static str,
        path: String,
        source: object_store::Error,
    },
    #[error("invalid output path {0}")]
    Path(String),
    #[error("cannot make {path} durable: {source}")]
    Sync {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "staged file {staged} is gone and its final file {final_path} does not exist: epoch {epoch} cannot be committed"
    )]
    Lost {
        epoch: u64,
        staged: String,
        final_path: String,
    },
    #[error(
        "final name {final_path} is taken by a file this epoch did not stage ({final_bytes} bytes; ours, {staged}, has {bytes}): epoch {epoch} cannot be committed without overwriting it, and sluice never overwrites"
    )]
    Occupied {
        epoch: u64,
        staged: String,
        final_path: String,
        final_bytes: u64,
        bytes: u64,
    },
}

/// Writer settings.
#[derive(Clone, Debug)]
pub struct SinkSettings {
    /// The state's id, first in every file name (see the module doc).
    pub state_id: String,
    pub target_file_size: u64,
    pub row_group_rows: usize,
    pub zstd_level: i32,
    /// Bytes an upload buffers before sending a part: small on a local
    /// disk (memory held per open file), 5 MiB (the S3 minimum) elsewhere.
    pub part_size: usize,
}

/// [`SinkSettings::part_size`] for a local directory.
pub const LOCAL_PART_SIZE: usize = 1 << 20;

/// Builds an object path from segments taken literally: table names are
/// identifiers and partition segments are Hive-escaped (no `/`, no control
/// characters, never `.` or `..`), so the name on disk is exactly the
/// segment. A segment that is not valid is refused, never re-encoded.
pub fn path_of<'a>(segments: impl IntoIterator<Item = &'a str>) -> Result<ObjPath, SinkError> {
    let joined: Vec<&str> = segments.into_iter().filter(|s| !s.is_empty()).collect();
    let raw = joined.join("/");
    if joined.iter().any(|s| PathPart::parse(s).is_err()) {
        return Err(SinkError::Path(raw));
    }
    parse_path(&raw)
}

/// Parses a path string written by [`ObjPath::to_string`].
pub fn parse_path(raw: &str) -> Result<ObjPath, SinkError> {
    ObjPath::parse(raw).map_err(|_| SinkError::Path(raw.to_string()))
}

/// An epoch's folder under [`STAGING_DIR`].
fn epoch_dir(epoch: u64) -> String {
    format!("e{epoch:010}")
}

fn file_name(state_id: &str, epoch: u64, writer: u32, seq: u32) -> String {
    format!("part-{state_id}-{epoch:010}-{writer:05}-{seq:04}.zstd.parquet")
}

struct OpenFile {
    writer: ArrowWriter<upload::UploadWrite>,
    staged: ObjPath,
    final_path: ObjPath,
    rows: u64,
}

struct PartitionWriter {
    table: String,
    partition: String,
    schema: SchemaRef,
    writer_id: u32,
    seq: u32,
    open: Option<OpenFile>,
    /// Small pieces wait here and reach the encoder as one batch: with many
    /// tables a batch splits into many tiny pieces, and each encoder call
    /// has a per-column cost.
    pending: Vec<RecordBatch>,
    pending_rows: usize,
    pending_bytes: u64,
}

/// Pieces are coalesced until a writer holds this many rows...
const COALESCE_ROWS: usize = 65536;
/// ... or this many bytes. A file that never gets this many rows stays in
/// this compact Arrow form until it closes and is then encoded at once:
/// an open Parquet encoder holds about 2.5 times the bytes of its rows,
/// which with thousands of small tables is most of the memory. `shed`
/// bounds the total.
const COALESCE_BYTES: u64 = 1 << 20;

/// The bytes a batch's rows hold. Pieces are slices of one routed batch,
/// and Arrow's `get_array_memory_size` counts a slice's whole buffers.
pub fn slice_bytes(batch: &RecordBatch) -> u64 {
    batch
        .columns()
        .iter()
        .map(|c| {
            c.to_data()
                .get_slice_memory_size()
                .unwrap_or_else(|_| c.get_array_memory_size()) as u64
        })
        .sum()
}

/// All writers of one epoch. Lives on a blocking thread; uses the I/O
/// runtime's handle for uploads.
pub struct EpochWriters {
    store: Arc<dyn ObjectStore>,
    handle: Handle,
    settings: SinkSettings,
    epoch: u64,
    writers: HashMap<(String, String), PartitionWriter>,
    /// Closed files; their uploads may still be in flight until `finish`.
    closed: Vec<StagedFile>,
    uploads: upload::Uploads,
    next_writer: u32,
    writer_stride: u32,
    /// Bytes handed to the encoder since the epoch began.
    pub bytes_in: u64,
}

impl EpochWriters {
    pub fn new(
        store: Arc<dyn ObjectStore>,
        handle: Handle,
        settings: SinkSettings,
        epoch: u64,
    ) -> EpochWriters {
        EpochWriters {
            store,
            uploads: upload::Uploads::new(handle.clone()),
            handle,
            settings,
            epoch,
            writers: HashMap::new(),
            closed: Vec::new(),
            next_writer: 0,
            writer_stride: 1,
            bytes_in: 0,
        }
    }

    /// Writer ids `first, first + stride, ...`: writers of several
    /// `EpochWriters` of one epoch never share an id (or a file name).
    pub fn with_writer_ids(mut self, first: u32, stride: u32) -> EpochWriters {
        self.next_writer = first;
        self.writer_stride = stride.max(1);
        self
    }

    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Bytes held in memory by open writers and uploads in flight
    /// (encoded, not yet uploaded).
    pub fn buffered_bytes(&self) -> u64 {
        self.uploads.bytes()
            + self
                .writers
                .values()
                .map(|w| {
                    w.pending_bytes
                        + w.open.as_ref().map_or(0, |o| {
                            (o.writer.memory_size() + o.writer.inner().buffered()) as u64
                        })
                })
                .sum::<u64>()
    }

    /// Appends rows for `table` in `partition`.
    pub fn write(
        &mut self,
        table: &str,
        partition: &str,
        batch: &RecordBatch,
    ) -> Result<(), SinkError> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let bytes = slice_bytes(batch);
        self.bytes_in += bytes;
        let key = (table.to_string(), partition.to_string());
        if !self.writers.contains_key(&key) {
            let id = self.next_writer;
            self.next_writer += self.writer_stride;
            self.writers.insert(
                key.clone(),
                PartitionWriter {
                    table: table.to_string(),
                    partition: partition.to_string(),
                    schema: batch.schema(),
                    writer_id: id,
                    seq: 0,
                    open: None,
                    pending: Vec::new(),
                    pending_rows: 0,
                    pending_bytes: 0,
                },
            );
        }
        let Some(w) = self.writers.get_mut(&key) else {
            return Ok(());
        };
        if w.pending.is_empty() && (batch.num_rows() >= COALESCE_ROWS || bytes >= COALESCE_BYTES) {
            return self.encode(&key, batch.clone());
        }
        // A small slice of a routed batch keeps that batch's whole buffers
        // alive; holding a compact copy instead bounds pending memory by
        // the rows actually pending.
        let held = if batch.get_array_memory_size() as u64 > 2 * bytes {
            let all = arrow::array::UInt32Array::from_iter_values(0..batch.num_rows() as u32);
            arrow::compute::take_record_batch(batch, &all).map_err(|e| SinkError::Encode {
                table: w.table.clone(),
                source: e.into(),
            })?
        } else {
            batch.clone()
        };
        w.pending.push(held);
        w.pending_rows += batch.num_rows();
        w.pending_bytes += bytes;
        if w.pending_rows >= COALESCE_ROWS || w.pending_bytes >= COALESCE_BYTES {
            self.drain(&key)?;
        }
        Ok(())
    }

    /// Hands a writer's pending pieces to its encoder as one batch.
    fn drain(&mut self, key: &(String, String)) -> Result<(), SinkError> {
        let Some(w) = self.writers.get_mut(key) else {
            return Ok(());
        };
        if w.pending.is_empty() {
            return Ok(());
        }
        let pending = std::mem::take(&mut w.pending);
        w.pending_rows = 0;
        w.pending_bytes = 0;
        let batch =
            arrow::compute::concat_batches(&w.schema, &pending).map_err(|e| SinkError::Encode {
                table: w.table.clone(),
                source: e.into(),
            })?;
        self.encode(key, batch)
    }

    /// Encodes rows into the writer's open file, rolling past the target size.
    fn encode(&mut self, key: &(String, String), batch: RecordBatch) -> Result<(), SinkError> {
        let Some(w) = self.writers.get_mut(key) else {
            return Ok(());
        };
        if w.open.is_none() {
            w.open = Some(open_file(
                &self.store,
                &self.handle,
                &self.settings,
                self.epoch,
                w,
                &batch,
            )?);
        }
        let roll = {
            let Some(o) = w.open.as_mut() else {
                return Ok(());
            };
            o.writer.write(&batch).map_err(|source| SinkError::Encode {
                table: w.table.clone(),
                source,
            })?;
            o.rows += batch.num_rows() as u64;
            o.writer.bytes_written() as u64 + o.writer.in_progress_size() as u64
                >= self.settings.target_file_size
        };
        if roll {
            let f = close_file(&mut self.uploads, w)?;
            self.closed.extend(f);
        }
        Ok(())
    }

    /// Brings the bytes held in memory under `limit`: first the row groups
    /// of the largest encoders are flushed (encoded pages move to their
    /// uploads, which send full parts); if that is not enough, because many
    /// files each hold a part not yet full, the files holding the most are
    /// closed early (a roll: the next rows open a new file).
    pub fn shed(&mut self, limit: u64) -> Result<(), SinkError> {
        let mut sizes: Vec<((String, String), usize)> = self
            .writers
            .iter()
            .map(|(k, w)| {
                let open = w.open.as_ref().map_or(0, |o| o.writer.memory_size());
                (k.clone(), open + w.pending_bytes as usize)
            })
            .collect();
        sizes.sort_by_key(|(_, s)| std::cmp::Reverse(*s));
        let mut encoding: u64 = sizes.iter().map(|(_, s)| *s as u64).sum();
        for (k, s) in sizes {
            if encoding <= limit / 2 || s == 0 {
                break;
            }
            self.drain(&k)?;
            if let Some(o) = self.writers.get_mut(&k).and_then(|w| w.open.as_mut()) {
                o.writer.flush().map_err(|source| SinkError::Encode {
                    table: k.0.clone(),
                    source,
                })?;
            }
            encoding = encoding.saturating_sub(s as u64);
        }
        if self.buffered_bytes() > limit {
            // Files already closed free their bytes once their puts end.
            self.uploads.wait_all()?;
        }
        let mut total = self.buffered_bytes();
        if total <= limit {
            return Ok(());
        }
        let mut held: Vec<((String, String), u64)> = self
            .writers
            .iter()
            .filter_map(|(k, w)| {
                w.open.as_ref().map(|o| {
                    let n = (o.writer.memory_size() + o.writer.inner().buffered()) as u64;
                    (k.clone(), n)
                })
            })
            .collect();
        held.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
        for (k, n) in held {
            if total <= limit {
                break;
            }
            if let Some(w) = self.writers.get_mut(&k) {
                let f = close_file(&mut self.uploads, w)?;
                self.closed.extend(f);
                total = total.saturating_sub(n);
            }
        }
        self.uploads.wait_all()
    }

    /// Closes every writer; returns the epoch's staged files.
    pub fn finish(mut self) -> Result<Vec<StagedFile>, SinkError> {
        let mut keys: Vec<(String, String)> = self.writers.keys().cloned().collect();
        keys.sort();
        for k in keys {
            self.drain(&k)?;
            if let Some(w) = self.writers.get_mut(&k) {
                let f = close_file(&mut self.uploads, w)?;
                self.closed.extend(f);
            }
        }
        self.uploads.wait_all()?;
        Ok(std::mem::take(&mut self.closed))
    }
}

fn open_file(
    store: &Arc<dyn ObjectStore>,
    handle: &Handle,
    s: &SinkSettings,
    epoch: u64,
    w: &mut PartitionWriter,
    sample: &RecordBatch,
) -> Result<OpenFile, SinkError> {
    let name = file_name(&s.state_id, epoch, w.writer_id, w.seq);
    w.seq += 1;
    let epoch_dir = epoch_dir(epoch);
    let parts: Vec<&str> = w.partition.split('/').collect();
    // A table is an identifier, or `_errors/<table>` for an error output.
    let table: Vec<&str> = w.table.split('/').collect();
    let staged = path_of([STAGING_DIR, epoch_dir.as_str(), name.as_str()])?;
    let final_path = path_of(
        table
            .iter()
            .copied()
            .chain(parts.iter().copied())
            .chain([name.as_str()]),
    )?;
    let sink =
        upload::UploadWrite::start(store.clone(), handle.clone(), staged.clone(), s.part_size);
    let props = encoding::writer_properties(
        &w.schema,
        sample,
        &encoding::EncodingSettings {
            zstd_level: s.zstd_level,
            row_group_rows: s.row_group_rows,
        },
    );
    let writer = ArrowWriter::try_new(sink, w.schema.clone(), Some(props)).map_err(|source| {
        SinkError::Encode {
            table: w.table.clone(),
            source,
        }
    })?;
    Ok(OpenFile {
        writer,
        staged,
        final_path,
        rows: 0,
    })
}

fn close_file(
    uploads: &mut upload::Uploads,
    w: &mut PartitionWriter,
) -> Result<Option<StagedFile>, SinkError> {
    let Some(o) = w.open.take() else {
        return Ok(None);
    };
    let sink = o.writer.into_inner().map_err(|source| SinkError::Encode {
        table: w.table.clone(),
        source,
    })?;
    let bytes = sink.finish(uploads)?;
    Ok(Some(StagedFile {
        table: w.table.clone(),
        partition: w.partition.clone(),
        staged: o.staged.to_string(),
        final_path: o.final_path.to_string(),
        rows: o.rows,
        bytes,
    }))
}

#[cfg(test)]
mod tests;
