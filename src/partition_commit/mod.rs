//! Partition commit: telling downstream jobs (Hive, Spark, Airflow) that an
//! output partition is complete. Owns the completeness rule ([`rule`], pure),
//! the commit policies ([`notify`]: `_SUCCESS`, command, webhook) and the
//! notifier thread that runs them. It reads and updates the `pcommit:`
//! records through [`StateStore`] and writes only `_SUCCESS` objects into
//! the sink; it never touches data files.
//!
//! ```text
//!  epoch E commits ─► tick (coordinator thread, also ~1/s while idle)
//!     records: rows per (table, partition), added in E's prepare transaction
//!     source view: every known source file, open (active/waiting) or done
//!     rule::decide ─► Job ──sync_channel(64)──► notifier thread
//!                                                 _SUCCESS, command, webhook (retries)
//!     record_partition_commit ◄── Completion ◄──────┘
//! ```
//!
//! # Guarantees
//!
//! - Rows are counted per partition in the same sled transaction that
//!   prepares the epoch staging them, and ticks run only once every
//!   prepared epoch is committed, so a commit never announces rows that
//!   are not in final files.
//! - A commit is recorded (`committed_rows`, `committed_at_ms`) only after
//!   `_SUCCESS` is written and the command and webhook ran. A crash in
//!   between leaves the partition unrecorded: after the restart it is
//!   committed again (`_SUCCESS` is rewritten, notifications are sent once
//!   more). Notifications are at-least-once: never lost, possibly repeated.
//!   The crash point `after_partition_notify` (just before the record) is
//!   how the tests prove it.
//!   The same holds for jobs interrupted by a shutdown.
//! - A webhook that still fails after its retries (or a command that fails)
//!   is logged and counted, and the commit is recorded anyway: it is not
//!   retried forever. A `_SUCCESS` that cannot be written is retried at the
//!   next tick.
//! - The pipeline never waits for a notification: the queue is bounded and
//!   a full queue leaves the partition pending for a later tick.

pub mod notify;
pub mod rule;

use crate::checkpoint::{StagedFile, StateError, StateStore};
use crate::config::PartitionCommitConfig;
use crate::telemetry::Metrics;
use notify::{Completion, Job, Outcome, Worker};
use object_store::ObjectStore;
use rule::{Decision, IdleClose, PeriodOf, SourceMode};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::Duration;
use tokio::runtime::Handle;

/// Jobs waiting for the notifier thread.
const QUEUE: usize = 64;
/// Fully announced partitions are forgotten this long after their last commit.
const KEEP_MS: i64 = 35 * 24 * 3_600_000;

#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error("webhook: {0}")]
    Io(#[from] std::io::Error),
    #[error("webhook: no answer within {}", humantime::format_duration(*.0))]
    Timeout(Duration),
    #[error("webhook answered HTTP {0}")]
    Status(u16),
    #[error("webhook: not an HTTP response: {0:?}")]
    BadResponse(String),
    #[error("after {attempts} attempts: {last}")]
    GaveUp {
        attempts: u32,
        last: Box<CommitError>,
    },
    #[error("interrupted by shutdown; sent again after the restart")]
    Interrupted,
    #[error("invalid object path {0}")]
    Path(String),
    #[error("cannot write {path}: {source}")]
    Store {
        path: String,
        source: object_store::Error,
    },
    #[error("command: {0}")]
    Command(String),
    #[error("cannot start the partition commit thread: {0}")]
    Thread(String),
}

/// The running partition commit: decisions on the coordinator's thread,
/// policies on its own thread.
pub struct PartitionCommitter {
    period_of: PeriodOf,
    mode: SourceMode,
    delay_ms: i64,
    /// `idle_close` in milliseconds; `None`: off.
    idle_close_ms: Option<i64>,
    jobs: Option<SyncSender<Job>>,
    done: Receiver<Completion>,
    in_flight: HashSet<(String, String)>,
    worker: Option<std::thread::JoinHandle<()>>,
    stop: Arc<AtomicBool>,
    metrics: Arc<Metrics>,
    warned_source: bool,
    last_prune_ms: i64,
}

impl PartitionCommitter {
    /// Starts the notifier thread.
    pub fn start(
        cfg: &PartitionCommitConfig,
        mode: SourceMode,
        sink: Arc<dyn ObjectStore>,
        handle: Handle,
        metrics: Arc<Metrics>,
    ) -> Result<PartitionCommitter, CommitError> {
        let (jobs, jobs_rx) = sync_channel(QUEUE);
        let (done_tx, done) = sync_channel(QUEUE);
        let stop = Arc::new(AtomicBool::new(false));
        let worker = Worker {
            cfg: cfg.clone(),
            sink,
            handle,
            metrics: metrics.clone(),
            stop: stop.clone(),
        };
        let t = std::thread::Builder::new()
            .name("sluice-pcommit".into())
            .spawn(move || worker.run(jobs_rx, done_tx))
            .map_err(|e| CommitError::Thread(e.to_string()))?;
        Ok(PartitionCommitter {
            period_of: PeriodOf {
                columns: cfg.time_columns.clone(),
                utc_offset_s: cfg.utc_offset_s,
            },
            mode,
            delay_ms: cfg.delay.as_millis() as i64,
            idle_close_ms: cfg.idle_close.map(|d| d.as_millis() as i64),
            jobs: Some(jobs),
            done,
            in_flight: HashSet::new(),
            worker: Some(t),
            stop,
            metrics,
            warned_source: false,
            last_prune_ms: 0,
        })
    }

    /// Logs which tables can be committed (partitioned by the day column).
    pub fn log_committable<'a>(&self, tables: impl IntoIterator<Item = (&'a str, &'a [String])>) {
        let (mut yes, mut no) = (Vec::new(), Vec::new());
        for (t, cols) in tables {
            match self.period_of.granularity(cols) {
                Some(g) => yes.push(format!("{t} ({g})")),
                None => no.push(t.to_string()),
            }
        }
        tracing::info!(
            committable = %yes.join(", "),
            never_committed = %no.join(", "),
            day_column = %self.period_of.columns.day.0,
            "partition commit: tables partitioned by the day column are committed when complete"
        );
    }

    /// The (table, partition)s of `files` that can ever be committed: a
    /// table of the rules (not an `_errors/` output) and a partition with a
    /// period. Only these get a `pcommit:` record.
    pub fn tracked(&self, files: &[StagedFile]) -> BTreeSet<(String, String)> {
        files
            .iter()
            .filter(|f| !f.table.starts_with('_'))
            .filter(|f| self.period_of.period_of_partition(&f.partition).is_some())
            .map(|f| (f.table.clone(), f.partition.clone()))
            .collect()
    }

    /// Records finished jobs, then commits every complete partition with
    /// unannounced rows. `source` is every known source file (path relative
    /// to the source root) and whether it is still open (active or waiting).
    pub fn tick<'a>(
        &mut self,
        state: &StateStore,
        source: impl IntoIterator<Item = (&'a str, bool)>,
        now_ms: i64,
    ) -> Result<(), CommitError> {
        self.record_completions(state)?;
        let mut parts: BTreeMap<rule::Period, bool> = BTreeMap::new();
        let mut unknown = 0;
        for (path, open) in source {
            match self
                .period_of
                .period(&crate::discover::hive::parse_path(path))
            {
                Some(p) => *parts.entry(p).or_default() |= open,
                None => unknown += 1,
            }
        }
        if parts.is_empty() && unknown > 0 && !self.warned_source {
            self.warned_source = true;
            tracing::warn!(
                day_column = %self.period_of.columns.day.0,
                "partition commit: source paths have no time partition (e.g. dt=YYYY-MM-DD/); no partition can be committed"
            );
        }
        let source_partitions = parts.len();
        let idle = IdleClose {
            after_ms: self.idle_close_ms,
            now_ms,
        };
        let watermark = rule::source_watermark(parts, self.mode, idle);
        tracing::debug!(
            source_partitions,
            watermark_ms = watermark.unwrap_or(-1),
            "partition commit tick"
        );
        let mut pending = 0;
        for r in state.partitions()? {
            let period = self.period_of.period_of_partition(&r.partition);
            let d = rule::decide(
                period,
                r.rows,
                r.committed_rows,
                r.committed_before(),
                watermark,
                now_ms,
                self.delay_ms,
            );
            let Decision::Commit { late } = d else {
                continue;
            };
            pending += 1;
            let key = (r.table.clone(), r.partition.clone());
            if self.in_flight.contains(&key) {
                continue;
            }
            let Some(jobs) = &self.jobs else { continue };
            let job = Job {
                table: r.table,
                partition: r.partition,
                rows: r.rows,
                files: r.files,
                late,
            };
            match jobs.try_send(job) {
                Ok(()) => {
                    self.in_flight.insert(key);
                }
                Err(TrySendError::Full(_)) => break,
                Err(TrySendError::Disconnected(_)) => {
                    return Err(CommitError::Thread("the notifier thread stopped".into()));
                }
            }
        }
        self.metrics
            .partitions_pending
            .store(pending, Ordering::Relaxed);
        if now_ms - self.last_prune_ms > 3_600_000 {
            self.last_prune_ms = now_ms;
            state.prune_partitions(now_ms - KEEP_MS)?;
        }
        Ok(())
    }

    fn record_completions(&mut self, state: &StateStore) -> Result<(), CommitError> {
        while let Ok(c) = self.done.try_recv() {
            let j = &c.job;
            self.in_flight
                .remove(&(j.table.clone(), j.partition.clone()));
            if c.outcome != Outcome::Done {
                continue;
            }
            // `_SUCCESS`, the command and the webhook ran; the commit is not
            // recorded yet. A crash here repeats them after the restart.
            crate::crashpoint::hit("after_partition_notify");
            state.record_partition_commit(&j.table, &j.partition, j.rows, c.at_ms)?;
            self.metrics.add_partition_committed(&j.table, j.late);
            if j.late {
                tracing::warn!(table = %j.table, partition = %j.partition, rows = j.rows, files = j.files,
                    "late data: partition committed again");
            } else {
                tracing::info!(table = %j.table, partition = %j.partition, rows = j.rows, files = j.files,
                    "partition committed");
            }
        }
        Ok(())
    }

    /// Stops the notifier thread. `drain`: let it finish every queued job
    /// (`run --once`); else it stops after the current attempt, and what is
    /// left unrecorded is committed again after the restart.
    pub fn finish(mut self, state: &StateStore, drain: bool) -> Result<(), CommitError> {
        if !drain {
            self.stop.store(true, Ordering::SeqCst);
        }
        self.jobs = None;
        if let Some(t) = self.worker.take() {
            // Keep taking completions so the thread never blocks on sending one.
            while !t.is_finished() {
                self.record_completions(state)?;
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = t.join();
        }
        self.record_completions(state)
    }
}

impl Drop for PartitionCommitter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}
