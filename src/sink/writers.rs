//! The Parquet writers of one writer thread: one per (table, partition),
//! living as long as the process. A file stays open across checkpoints
//! and closes only when it reaches `target_file_size`, when it has been
//! open for its `max_file_age`, when its partition is about to be
//! committed, when the run stops, or (last resort) when memory runs
//! short; see [`ClosePolicy`]. At a checkpoint an open file's rows become
//! durable and recorded (see [`super::staged`] on a local disk,
//! [`super::resumable`] on an object store), not visible. One file while
//! it is open is [`super::open_file`]'s.

use super::open_file::{OpenFile, close_file, open_file, record_durable};
use super::resumable::Finishing;
use super::upload;
use super::{SinkError, SinkSettings};
use crate::checkpoint::StagedFile;
use crate::checkpoint::open_files::OpenFileUpdate;
use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use hashbrown::HashMap;
use object_store::ObjectStore;
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::runtime::Handle;

/// Whether a (table, partition) is complete and about to be committed.
pub type PartitionDue = Box<dyn Fn(&str, &str) -> bool + Send + Sync>;

/// Which open files a checkpoint closes.
pub struct ClosePolicy {
    /// Every file (the run stops).
    pub all: bool,
    /// Files open at least this long close (ms).
    pub max_age_ms: i64,
    /// Per-table ages that replace `max_age_ms` (from the rules).
    pub table_max_age_ms: std::collections::HashMap<String, i64>,
    /// Partitions about to be committed: `(table, partition)`.
    pub partition_due: Option<PartitionDue>,
    /// The checkpoint's time (ms since the Unix epoch).
    pub now_ms: i64,
}

impl ClosePolicy {
    /// Closes nothing but what is too old by the default age.
    pub fn ages(max_age_ms: i64, now_ms: i64) -> ClosePolicy {
        ClosePolicy {
            all: false,
            max_age_ms,
            table_max_age_ms: Default::default(),
            partition_due: None,
            now_ms,
        }
    }

    /// Closes every file.
    pub fn all(now_ms: i64) -> ClosePolicy {
        ClosePolicy {
            all: true,
            ..ClosePolicy::ages(i64::MAX, now_ms)
        }
    }

    pub fn closes(&self, table: &str, partition: &str, opened_ms: i64) -> bool {
        if self.all {
            return true;
        }
        let age = self
            .table_max_age_ms
            .get(table)
            .copied()
            .unwrap_or(self.max_age_ms);
        self.now_ms.saturating_sub(opened_ms) >= age
            || self
                .partition_due
                .as_ref()
                .is_some_and(|f| f(table, partition))
    }
}

/// What a checkpoint did to the files.
#[derive(Debug, Default)]
pub struct Checkpointed {
    /// Files closed since the last checkpoint (rolled, shed, or closed by
    /// the policy): they become visible when the epoch commits.
    pub files: Vec<StagedFile>,
    /// Open files whose durable prefix grew, or that were opened since.
    pub open: Vec<OpenFileUpdate>,
    /// Open-file records to drop: (staged path, chunks). Their files are
    /// in `files`.
    pub closed_records: Vec<(String, u32)>,
    /// Each table's oldest open file (ms it was opened): its rows are the
    /// oldest not yet visible.
    pub oldest_open_ms: BTreeMap<String, i64>,
    /// Files open after the checkpoint.
    pub open_files: usize,
    /// The (table, partition)s those files are in.
    pub open_partitions: std::collections::BTreeSet<(String, String)>,
}

pub(super) struct PartitionWriter {
    pub(super) table: String,
    pub(super) partition: String,
    pub(super) schema: SchemaRef,
    pub(super) writer_id: u32,
    pub(super) seq: u32,
    pub(super) open: Option<OpenFile>,
    /// Small pieces wait here and reach the encoder as one batch: with many
    /// tables a batch splits into many tiny pieces, and each encoder call
    /// has a per-column cost.
    pub(super) pending: Vec<RecordBatch>,
    pub(super) pending_rows: usize,
    pub(super) pending_bytes: u64,
    /// [`Writers::writes`] at its last write: the least recently written
    /// close first when too many files are open.
    pub(super) last_write: u64,
    /// The epoch `limit_open` last closed its file in: once an epoch.
    pub(super) limited_in: Option<u64>,
}

/// What [`Writers::shed`] did to stay within its bound.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Shed {
    /// Row groups flushed before they were full.
    pub row_groups: usize,
    /// Files closed because flushing did not free enough.
    pub files: usize,
}

impl PartitionWriter {
    /// An open file, or rows waiting to open one.
    fn busy(&self) -> bool {
        self.open.is_some() || !self.pending.is_empty()
    }
}

/// Pieces are coalesced until a writer holds this many rows...
const COALESCE_ROWS: usize = 65536;
/// ... or this many bytes. `shed` bounds the total.
const COALESCE_BYTES: u64 = 1 << 20;

/// A busy partition with no write in this many rounds of writes over all
/// busy partitions is cold (see [`Writers::limit_open`]).
const COLD_ROUNDS: u64 = 4;

/// All writers of one writer thread. Lives on a blocking thread; uses the
/// I/O runtime's handle for uploads.
pub struct Writers {
    store: Arc<dyn ObjectStore>,
    handle: Handle,
    settings: SinkSettings,
    /// The epoch new files are named after (the one being written).
    epoch: u64,
    writers: HashMap<(String, String), PartitionWriter>,
    /// Files closed since the last checkpoint, and the open-file records
    /// they leave behind; uploads may be in flight until the checkpoint.
    closed: Vec<StagedFile>,
    closed_records: Vec<(String, u32)>,
    uploads: upload::Uploads,
    /// Closed object-store files whose last parts are in flight.
    finishing: Finishing,
    next_writer: u32,
    writer_stride: u32,
    /// Bytes handed to the encoder since the process started.
    pub bytes_in: u64,
    /// Writes so far: the clock of [`PartitionWriter::last_write`].
    writes: u64,
    /// `writes` at the last checkpoint: a writer with no write since is idle.
    writes_at_checkpoint: u64,
    /// Each table's latest partition, shared by the writer threads.
    latest: Arc<LatestPartitions>,
}

/// The latest partition (in sort order: the latest hour of `dt=/hour=`)
/// each table has had rows for, over all writer threads: a partition of
/// a table and the one after it are usually on different threads.
#[derive(Debug, Default)]
pub struct LatestPartitions(std::sync::RwLock<HashMap<String, String>>);

impl LatestPartitions {
    pub fn saw(&self, table: &str, partition: &str) {
        let later =
            |m: &HashMap<String, String>| m.get(table).is_some_and(|p| p.as_str() >= partition);
        // A poisoned lock (a writer thread panicked) only loses the hint.
        if self.0.read().map_or(true, |m| later(&m)) {
            return;
        }
        if let Ok(mut m) = self.0.write()
            && !later(&m)
        {
            m.insert(table.to_string(), partition.to_string());
        }
    }

    /// Whether `table` has had rows for a partition after `partition`.
    pub fn has_later(&self, table: &str, partition: &str) -> bool {
        self.0
            .read()
            .is_ok_and(|m| m.get(table).is_some_and(|p| p.as_str() > partition))
    }
}

impl Writers {
    pub fn new(
        store: Arc<dyn ObjectStore>,
        handle: Handle,
        settings: SinkSettings,
        epoch: u64,
    ) -> Writers {
        Writers {
            store,
            uploads: upload::Uploads::new(handle.clone()),
            finishing: Finishing::new(handle.clone()),
            handle,
            settings,
            epoch,
            writers: HashMap::new(),
            closed: Vec::new(),
            closed_records: Vec::new(),
            next_writer: 0,
            writer_stride: 1,
            bytes_in: 0,
            writes: 0,
            writes_at_checkpoint: 0,
            latest: Arc::default(),
        }
    }

    /// Writer ids `first, first + stride, ...`: writers of several
    /// threads never share an id (or a file name).
    pub fn with_writer_ids(mut self, first: u32, stride: u32) -> Writers {
        self.next_writer = first;
        self.writer_stride = stride.max(1);
        self
    }

    /// Shares each table's latest partition with the other writer threads.
    pub fn with_latest(mut self, latest: Arc<LatestPartitions>) -> Writers {
        self.latest = latest;
        self
    }

    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Files open now.
    pub fn open_files(&self) -> usize {
        self.writers.values().filter(|w| w.open.is_some()).count()
    }

    /// Partitions being written: an open file, or rows waiting to open one.
    pub fn busy_partitions(&self) -> usize {
        self.writers.values().filter(|w| w.busy()).count()
    }

    /// Bytes held in memory by open writers and uploads in flight.
    pub fn buffered_bytes(&self) -> u64 {
        self.uploads.bytes()
            + self.finishing.bytes()
            + self
                .writers
                .values()
                .map(|w| w.pending_bytes + w.open.as_ref().map_or(0, OpenFile::held))
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
        let bytes = super::slice_bytes(batch);
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
                    last_write: 0,
                    limited_in: None,
                },
            );
        }
        self.writes += 1;
        self.latest.saw(table, partition);
        let now = self.writes;
        if let Some(w) = self.writers.get_mut(&key) {
            w.last_write = now;
        }
        let Some(w) = self.writers.get_mut(&key) else {
            return Ok(());
        };
        // A reloaded rule (or an evolved source) may change a table's
        // columns while its file is open: the file closes with the rows it
        // has, and the next rows open one with the new schema.
        if !Arc::ptr_eq(&w.schema, &batch.schema()) {
            if *w.schema != *batch.schema() {
                self.drain(&key)?;
                self.close(&key)?;
            }
            if let Some(w) = self.writers.get_mut(&key) {
                w.schema = batch.schema();
            }
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
            self.close(key)?;
        }
        Ok(())
    }

    /// Closes one writer's open file into the closed list.
    fn close(&mut self, key: &(String, String)) -> Result<(), SinkError> {
        let Some(w) = self.writers.get_mut(key) else {
            return Ok(());
        };
        if let Some(rec) = close_file(&mut self.uploads, &mut self.finishing, &mut self.closed, w)?
        {
            self.closed_records.push(rec);
        }
        Ok(())
    }

    /// Keeps at most `limit` partitions being written (an open file, or
    /// rows waiting to open one) when it can: past it, cold files close,
    /// least recently written first, down to seven eighths of `limit` so
    /// that a backfill opening one partition after another does not close
    /// a file per write. An idle open file keeps its row groups' metadata
    /// and page indexes in memory (and, until its row group is flushed,
    /// that row group), so without a bound memory grows with the
    /// partitions a run touches. A file is cold when it has had no rows
    /// since the last checkpoint, or when the run has moved on from it: no
    /// rows in the last [`COLD_ROUNDS`] writes per busy partition while its
    /// table has had rows for a partition that sorts after it, on any
    /// writer thread (the next hour: a backfill leaves an hour long before
    /// the next checkpoint, a 30 s epoch spans hours of P100). It takes
    /// one read of the shared map per candidate, and only past `limit`.
    /// Partitions fed by every batch are never cold, however many there
    /// are: with more of them active than `limit` (1,000 tables each fed
    /// by every batch) closing them would only trade memory for small
    /// files; `shed` bounds their memory instead. Nor is a rare table's
    /// only partition. And a partition written since the last checkpoint
    /// closes here at most once an epoch: one fed now and then makes one
    /// more file a checkpoint, not one a write. Returns how many files
    /// closed.
    pub fn limit_open(&mut self, limit: usize) -> Result<usize, SinkError> {
        let count = self.busy_partitions();
        if count <= limit.max(1) {
            return Ok(0);
        }
        let keep = (limit - limit / 8).max(1);
        let cold_since = self.writes.saturating_sub(COLD_ROUNDS * count as u64);
        let epoch = self.epoch;
        let cold = |w: &PartitionWriter| {
            w.last_write <= self.writes_at_checkpoint
                || (w.last_write <= cold_since
                    && w.limited_in != Some(epoch)
                    && self.latest.has_later(&w.table, &w.partition))
        };
        let mut by_age: Vec<(u64, (String, String))> = self
            .writers
            .iter()
            .filter(|(_, w)| w.busy() && cold(w))
            .map(|(k, w)| (w.last_write, k.clone()))
            .collect();
        by_age.sort();
        let mut closed = 0;
        for (_, k) in by_age.into_iter().take(count - keep) {
            self.drain(&k)?;
            self.close(&k)?;
            if let Some(w) = self.writers.get_mut(&k) {
                w.limited_in = Some(epoch);
            }
            closed += 1;
        }
        Ok(closed)
    }

    /// Brings the bytes held in memory under `limit`: first the row groups
    /// of the largest encoders are flushed (a smaller row group, not a new
    /// file); only if that is not enough (uploads each holding a part not
    /// yet full) are the files holding the most closed early.
    pub fn shed(&mut self, limit: u64) -> Result<Shed, SinkError> {
        let mut shed = Shed::default();
        let mut sizes: Vec<((String, String), u64)> = self
            .writers
            .iter()
            .map(|(k, w)| {
                let open = w.open.as_ref().map_or(0, |o| o.writer.memory_size() as u64);
                (k.clone(), open + w.pending_bytes)
            })
            .collect();
        sizes.sort_by_key(|(_, s)| std::cmp::Reverse(*s));
        let mut encoding: u64 = sizes.iter().map(|(_, s)| *s).sum();
        for (k, s) in sizes {
            if encoding <= limit / 2 || s == 0 {
                break;
            }
            self.drain(&k)?;
            if let Some(o) = self.writers.get_mut(&k).and_then(|w| w.open.as_mut()) {
                if o.writer.in_progress_rows() > 0 {
                    shed.row_groups += 1;
                }
                o.writer.flush().map_err(|source| SinkError::Encode {
                    table: k.0.clone(),
                    source,
                })?;
            }
            encoding = encoding.saturating_sub(s);
        }
        if self.buffered_bytes() > limit {
            // Files already closed free their bytes once their puts end.
            self.uploads.wait_all()?;
            let done = self.finishing.wait_all()?;
            self.closed.extend(done);
        }
        let mut total = self.buffered_bytes();
        if total <= limit {
            return Ok(shed);
        }
        let mut held: Vec<((String, String), u64)> = self
            .writers
            .iter()
            .filter_map(|(k, w)| w.open.as_ref().map(|o| (k.clone(), o.held())))
            .collect();
        held.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
        for (k, n) in held {
            if total <= limit {
                break;
            }
            self.close(&k)?;
            shed.files += 1;
            total = total.saturating_sub(n);
        }
        self.uploads.wait_all()?;
        let done = self.finishing.wait_all()?;
        self.closed.extend(done);
        Ok(shed)
    }

    /// A checkpoint: closes what `policy` says, makes every other open
    /// file's rows whole row groups in its staged file and records them.
    /// New files are then named after epoch `next`.
    pub fn checkpoint(
        &mut self,
        policy: &ClosePolicy,
        next: u64,
    ) -> Result<Checkpointed, SinkError> {
        let mut keys: Vec<(String, String)> = self.writers.keys().cloned().collect();
        keys.sort();
        let mut out = Checkpointed::default();
        for k in &keys {
            self.drain(k)?;
            let Some(w) = self.writers.get_mut(k) else {
                continue;
            };
            let Some(o) = w.open.as_mut() else {
                continue;
            };
            let keep = o.writer.inner().resumable();
            if !keep || policy.closes(&w.table, &w.partition, o.opened_ms) {
                let complete = policy
                    .partition_due
                    .as_ref()
                    .is_some_and(|f| f(&w.table, &w.partition));
                self.close(k)?;
                if complete {
                    crate::crashpoint::hit("mid_partition_close");
                }
                continue;
            }
            if let Some(u) = record_durable(o, &w.table, &w.partition)? {
                out.open.push(u);
                crate::crashpoint::hit("mid_checkpoint_flush");
            }
            let e = out
                .oldest_open_ms
                .entry(w.table.clone())
                .or_insert(o.opened_ms);
            *e = (*e).min(o.opened_ms);
            out.open_files += 1;
            out.open_partitions
                .insert((w.table.clone(), w.partition.clone()));
        }
        // Idle writers cost a map entry each; forget those without a file.
        self.writers.retain(|_, w| w.busy());
        self.uploads.wait_all()?;
        let done = self.finishing.wait_all()?;
        self.closed.extend(done);
        out.files = std::mem::take(&mut self.closed);
        out.closed_records = std::mem::take(&mut self.closed_records);
        self.epoch = next;
        self.writes_at_checkpoint = self.writes;
        Ok(out)
    }
}
