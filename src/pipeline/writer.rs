//! The writer threads: each owns the epoch's Parquet writers of a disjoint
//! shard of (table, partition) pairs (a stable hash), so encoding spreads
//! over threads while one output file is written by exactly one thread.
//! A shard applies its pieces in the order readers sent them, tracks how
//! far each split got, and at a barrier makes its files' rows durable
//! (closing those the [`ClosePolicy`] names) and reports them with the
//! split offsets they cover. [`WriterPool`] is the readers' and
//! the coordinator's side: it cuts a batch's pieces by shard and merges
//! the shards' reports at a barrier.
//!
//! Offsets merge by maximum: a barrier is sent only once every reader is
//! parked, and channels are FIFO, so when the shards answer they hold every
//! piece of every batch any reader sent, whichever shard got the progress.

use super::budget::SharedBudget;
use crate::checkpoint::StagedFile;
use crate::checkpoint::open_files::OpenFileUpdate;
use crate::names::OutputName;
use crate::route::{Output, Piece, RuleSet};
use crate::sink::{ClosePolicy, SinkError, SinkSettings, Writers};
use crate::split::SplitId;
use crate::telemetry::Metrics;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use tokio::runtime::Handle;

pub enum WriterMsg {
    /// Routed rows of a split, up to row `end_row` of the split.
    Data {
        split: SplitId,
        end_row: u64,
        rules: Arc<RuleSet>,
        pieces: Vec<Piece>,
    },
    /// The split has no rows left.
    SplitDone { split: SplitId },
    /// The split cannot be read; its file is quarantined.
    Failed { split: SplitId, reason: String },
    /// Checkpoint the files (closing what `policy` names), report, and
    /// name new files after epoch `next`.
    Barrier {
        next: u64,
        policy: Arc<ClosePolicy>,
        reply: SyncSender<Result<EpochReport, SinkError>>,
    },
}

/// What one epoch produced.
#[derive(Debug, Default)]
pub struct EpochReport {
    /// Files closed in the epoch: visible when it commits.
    pub files: Vec<StagedFile>,
    /// Files still open whose durable prefix grew (see `checkpoint::open_files`).
    pub open: Vec<OpenFileUpdate>,
    /// Open-file records of files that closed: (staged path, chunks).
    pub closed_records: Vec<(String, u32)>,
    /// Each table's oldest open file (opened, ms): its oldest invisible rows.
    pub oldest_open_ms: BTreeMap<String, i64>,
    /// Files open after the checkpoint.
    pub open_files: usize,
    /// The (table, partition)s those files are in.
    pub open_partitions: std::collections::BTreeSet<(String, String)>,
    /// Bytes each (table, partition) took in the epoch (see `spread`).
    pub key_bytes: HashMap<(String, String), u64>,
    /// Per writer thread: microseconds spent encoding in the epoch.
    pub busy_us: Vec<u64>,
    /// Rows of each split now in staged files (end row within the split).
    pub offsets: HashMap<SplitId, u64>,
    pub done: HashSet<SplitId>,
    pub failed: Vec<(SplitId, String)>,
    pub rows_per_table: BTreeMap<String, u64>,
    /// Output schema of each table that got rows (for the schema guard).
    pub schemas: BTreeMap<String, arrow::datatypes::SchemaRef>,
}

pub struct WriterCtx {
    pub store: Arc<dyn object_store::ObjectStore>,
    pub handle: Handle,
    pub settings: SinkSettings,
    /// Bytes all shards together hold in memory (`sink.max_buffered`).
    pub max_buffered: u64,
    /// Partitions all shards together write at once
    /// (`sink.max_open_files`); past it the least recently written close.
    pub max_open_files: usize,
    pub metrics: Arc<Metrics>,
    /// Bytes written since the epoch began, over all shards (the
    /// coordinator checkpoints early past a bound and resets it).
    pub epoch_bytes: Arc<AtomicU64>,
}

/// Messages a shard's channel holds before a sender waits. Each holds the
/// routed rows of one batch (on P100 about 18 MB: 8,192 input rows become
/// ~62,000 output rows); 2 instead of 4 took 50 MB off P100's peak RSS at
/// the same speed.
const SHARD_QUEUE: usize = 2;

/// The senders to every writer shard; cheap to clone.
#[derive(Clone)]
pub struct WriterPool {
    shards: Arc<[SyncSender<WriterMsg>]>,
    /// Hot (table, partition)s spread over several shards (see `spread`).
    spread: Arc<arc_swap::ArcSwap<super::spread::Factors>>,
}

impl WriterPool {
    /// Starts `n` writer threads for epoch `first_epoch` on.
    pub fn start(
        ctx: &WriterCtx,
        n: usize,
        first_epoch: u64,
    ) -> std::io::Result<(WriterPool, Vec<std::thread::JoinHandle<()>>)> {
        let n = n.max(1);
        let latest = Arc::new(crate::sink::LatestPartitions::default());
        // Row groups are cut past half of `max_buffered` (down to a
        // quarter), leaving room for what encoding and uploads hold.
        let bounds = Bounds {
            bytes: Arc::new(SharedBudget::new(ctx.max_buffered / 2, n)),
            files: Arc::new(SharedBudget::new(ctx.max_open_files as u64, n)),
        };
        let mut shards = Vec::with_capacity(n);
        let mut threads = Vec::with_capacity(n);
        for i in 0..n {
            let (tx, rx) = sync_channel::<WriterMsg>(SHARD_QUEUE);
            let c = WriterCtx {
                store: ctx.store.clone(),
                handle: ctx.handle.clone(),
                settings: ctx.settings.clone(),
                max_buffered: ctx.max_buffered,
                max_open_files: ctx.max_open_files,
                metrics: ctx.metrics.clone(),
                epoch_bytes: ctx.epoch_bytes.clone(),
            };
            let ids = (i as u32, n as u32);
            let latest = latest.clone();
            let bounds = bounds.clone();
            threads.push(
                std::thread::Builder::new()
                    .name(format!("sluice-writer-{i}"))
                    .spawn(move || run(c, first_epoch, ids, latest, bounds, rx))?,
            );
            shards.push(tx);
        }
        Ok((
            WriterPool {
                shards: shards.into(),
                spread: Default::default(),
            },
            threads,
        ))
    }

    /// The hot partitions' spread from now on.
    pub fn set_spread(&self, factors: super::spread::Factors) {
        self.spread.store(Arc::new(factors));
    }

    pub fn spread(&self) -> Arc<super::spread::Factors> {
        self.spread.load_full()
    }

    fn shard_of(&self, table: &str, partition: &str) -> usize {
        let mut key = Vec::with_capacity(table.len() + partition.len() + 1);
        key.extend_from_slice(table.as_bytes());
        key.push(0);
        key.extend_from_slice(partition.as_bytes());
        (crate::route::fnv64(&key) % self.shards.len() as u64) as usize
    }

    fn shard_of_split(&self, split: &SplitId) -> usize {
        (crate::route::fnv64(split.file.as_bytes()).wrapping_add(split.index as u64)
            % self.shards.len() as u64) as usize
    }

    /// Sends a batch's pieces (rows of `split` up to `end_row`) to their
    /// shards. False when the writers are gone.
    pub fn data(
        &self,
        split: &SplitId,
        end_row: u64,
        rules: &Arc<RuleSet>,
        pieces: Vec<Piece>,
    ) -> bool {
        let n = self.shards.len();
        let mut by_shard: Vec<Vec<Piece>> = (0..n).map(|_| Vec::new()).collect();
        let spread = self.spread.load();
        for p in pieces {
            let table = &rules.rules[p.rule].table;
            let mut s = self.shard_of(table, &p.partition);
            if !spread.is_empty()
                && let Some(&f) = spread.get(&(table.clone(), p.partition.clone()))
            {
                // Batches of a hot partition take turns over `f` shards.
                let turn = crate::route::fnv64(split.file.as_bytes())
                    .wrapping_add(split.index as u64)
                    .wrapping_add(end_row);
                s = (s + (turn % u64::from(f.max(1))) as usize) % n;
            }
            by_shard[s].push(p);
        }
        // Progress must reach some shard even when no rule took a row.
        let home = self.shard_of_split(split);
        for (i, pieces) in by_shard.into_iter().enumerate() {
            if pieces.is_empty() && i != home {
                continue;
            }
            let msg = WriterMsg::Data {
                split: split.clone(),
                end_row,
                rules: rules.clone(),
                pieces,
            };
            if self.shards[i].send(msg).is_err() {
                return false;
            }
        }
        true
    }

    pub fn split_done(&self, split: SplitId) {
        let _ = self.shards[self.shard_of_split(&split)].send(WriterMsg::SplitDone { split });
    }

    pub fn failed(&self, split: SplitId, reason: String) {
        let _ = self.shards[self.shard_of_split(&split)].send(WriterMsg::Failed { split, reason });
    }

    /// Checkpoints every shard and merges their reports. Call only while
    /// every reader is parked.
    pub fn barrier(&self, next: u64, policy: ClosePolicy) -> Result<EpochReport, BarrierError> {
        let policy = Arc::new(policy);
        let mut replies = Vec::with_capacity(self.shards.len());
        for tx in self.shards.iter() {
            let (rtx, rrx) = sync_channel(1);
            tx.send(WriterMsg::Barrier {
                next,
                policy: policy.clone(),
                reply: rtx,
            })
            .map_err(|_| BarrierError::Gone)?;
            replies.push(rrx);
        }
        let mut out = EpochReport::default();
        let mut first_err = None;
        for r in replies {
            match r.recv().map_err(|_| BarrierError::Gone)? {
                Ok(rep) => merge(&mut out, rep),
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        match first_err {
            Some(e) => Err(BarrierError::Sink(e)),
            None => Ok(out),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BarrierError {
    #[error("a writer thread stopped")]
    Gone,
    #[error(transparent)]
    Sink(#[from] SinkError),
}

fn merge(into: &mut EpochReport, r: EpochReport) {
    into.files.extend(r.files);
    into.open.extend(r.open);
    into.closed_records.extend(r.closed_records);
    for (t, ms) in r.oldest_open_ms {
        let e = into.oldest_open_ms.entry(t).or_insert(ms);
        *e = (*e).min(ms);
    }
    into.open_files += r.open_files;
    into.open_partitions.extend(r.open_partitions);
    for (k, b) in r.key_bytes {
        *into.key_bytes.entry(k).or_default() += b;
    }
    into.busy_us.extend(r.busy_us);
    for (split, end) in r.offsets {
        let e = into.offsets.entry(split).or_insert(0);
        *e = (*e).max(end);
    }
    into.done.extend(r.done);
    into.failed.extend(r.failed);
    for (t, n) in r.rows_per_table {
        *into.rows_per_table.entry(t).or_default() += n;
    }
    into.schemas.extend(r.schemas);
}

/// The bounds the shards share (see [`SharedBudget`]).
#[derive(Clone)]
struct Bounds {
    /// Bytes held past which a shard cuts row groups.
    bytes: Arc<SharedBudget>,
    /// Partitions being written.
    files: Arc<SharedBudget>,
}

impl Bounds {
    /// Cuts row groups, then closes cold files, to keep `shard` within its
    /// allowances, and publishes what it then holds.
    fn keep(&self, shard: usize, writers: &mut Writers, m: &Metrics) -> Result<(), SinkError> {
        let bytes = self.bytes.allowance(shard);
        let mut held = writers.buffered_bytes();
        if held > bytes {
            let shed = writers.shed(bytes / 2)?;
            m.row_groups_cut
                .fetch_add(shed.row_groups as u64, Ordering::Relaxed);
            m.files_closed_memory
                .fetch_add(shed.files as u64, Ordering::Relaxed);
            held = writers.buffered_bytes();
        }
        let files = usize::try_from(self.files.allowance(shard)).unwrap_or(usize::MAX);
        let closed = writers.limit_open(files)?;
        if closed > 0 {
            m.add_idle_closed(closed as u64);
            held = writers.buffered_bytes();
        }
        self.publish_held(shard, held, writers, m);
        Ok(())
    }

    fn publish(&self, shard: usize, writers: &Writers, m: &Metrics) {
        self.publish_held(shard, writers.buffered_bytes(), writers, m);
    }

    /// Publishes `now` (what `writers` hold) and the partitions they write.
    fn publish_held(&self, shard: usize, now: u64, writers: &Writers, m: &Metrics) {
        let before = self.bytes.publish(shard, now);
        // By difference, so the gauge is the threads' sum at every moment.
        let change =
            i64::try_from(now).unwrap_or(i64::MAX) - i64::try_from(before).unwrap_or(i64::MAX);
        m.writer_buffered_bytes.fetch_add(change, Ordering::Relaxed);
        self.files.publish(shard, writers.busy_partitions() as u64);
    }
}

/// One shard. `ids`: (first writer id, stride), so writer ids stay unique
/// across shards; the first is the shard's index.
fn run(
    ctx: WriterCtx,
    first_epoch: u64,
    ids: (u32, u32),
    latest: Arc<crate::sink::LatestPartitions>,
    bounds: Bounds,
    rx: Receiver<WriterMsg>,
) {
    let shard = ids.0 as usize;
    let mut writers = Writers::new(
        ctx.store.clone(),
        ctx.handle.clone(),
        ctx.settings.clone(),
        first_epoch,
    )
    .with_writer_ids(ids.0, ids.1)
    .with_latest(latest);
    let mut report = EpochReport::default();
    let mut failure: Option<SinkError> = None;
    // Time spent encoding since the last barrier.
    let mut busy_us = 0u64;
    while let Ok(msg) = rx.recv() {
        match msg {
            WriterMsg::Data {
                split,
                end_row,
                rules,
                pieces,
            } => {
                if failure.is_none() {
                    let started = std::time::Instant::now();
                    let before = writers.bytes_in;
                    for p in &pieces {
                        let rule = &rules.rules[p.rule];
                        let n = p.batch.num_rows() as u64;
                        let piece_start = writers.bytes_in;
                        if p.output == Output::Errors {
                            // A folder the sink nests like a table.
                            let out = OutputName::Errors(rule.table.clone()).to_string();
                            if let Err(e) = writers.write(&out, &p.partition, &p.batch) {
                                failure = Some(e);
                                break;
                            }
                            continue;
                        }
                        let table = &rule.table;
                        if let Err(e) = writers.write(table, &p.partition, &p.batch) {
                            failure = Some(e);
                            break;
                        }
                        let took = writers.bytes_in - piece_start;
                        *report
                            .key_bytes
                            .entry((table.clone(), p.partition.clone()))
                            .or_default() += took;
                        *report.rows_per_table.entry(table.clone()).or_default() += n;
                        if !report.schemas.contains_key(table) {
                            report
                                .schemas
                                .insert(table.clone(), rule.output_schema.clone());
                        }
                        ctx.metrics.add_routed(table, n);
                    }
                    if failure.is_none()
                        && let Err(e) = bounds.keep(shard, &mut writers, &ctx.metrics)
                    {
                        failure = Some(e);
                    }
                    ctx.epoch_bytes
                        .fetch_add(writers.bytes_in - before, Ordering::Relaxed);
                    busy_us += started.elapsed().as_micros() as u64;
                }
                let e = report.offsets.entry(split).or_insert(0);
                *e = (*e).max(end_row);
            }
            WriterMsg::SplitDone { split } => {
                report.done.insert(split);
            }
            WriterMsg::Failed { split, reason } => report.failed.push((split, reason)),
            WriterMsg::Barrier {
                next,
                policy,
                reply,
            } => {
                let mut out = std::mem::take(&mut report);
                out.busy_us = vec![std::mem::take(&mut busy_us)];
                let res = match failure.take() {
                    Some(e) => Err(e),
                    None => writers.checkpoint(&policy, next).map(|c| {
                        out.files = c.files;
                        out.open = c.open;
                        out.closed_records = c.closed_records;
                        out.oldest_open_ms = c.oldest_open_ms;
                        out.open_files = c.open_files;
                        out.open_partitions = c.open_partitions;
                        out
                    }),
                };
                bounds.publish(shard, &writers, &ctx.metrics);
                if reply.send(res).is_err() {
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
#[path = "writer_tests.rs"]
mod tests;
