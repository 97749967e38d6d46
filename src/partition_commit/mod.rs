//! Partition commit: telling downstream jobs (Hive, Spark, Airflow) that an
//! output time partition is complete. Owns the completeness rule ([`rule`],
//! pure), the commit unit ([`unit`], pure: leaf partitions grouped under
//! their time partition), the commit policies ([`notify`]: `_SUCCESS`,
//! command, webhook) and the notifier thread that runs them. It reads and
//! updates the `pcommit:` records through [`StateStore`] and writes only
//! `_SUCCESS` objects into the sink; it never touches data files. Failed
//! commits wait and are retried ([`retry`]).
//!
//! The unit of a commit is the time partition (`dt=.../hour=...`, the level
//! a scheduler waits on), not each leaf partition: one `_SUCCESS` in its
//! directory and one notification listing its sub-partitions. The records
//! stay per leaf; a commit updates all of a unit's leaves.
//!
//! ```text
//!  epoch E commits ─► tick (coordinator thread, also ~1/s while idle)
//!     records: rows per (table, leaf partition), added in E's prepare transaction
//!     unit::group: leaves summed per (table, time partition)
//!     source view: every known source file, open (active/waiting) or done
//!     rule::decide ─► due, no open file under it, backoff passed? ─► Job ──sync_channel(64)──► notifier thread
//!                                                 _SUCCESS, command, webhook (one attempt)
//!     record_partition_commit (every leaf) ◄── Completion: done ◄──┤
//!     record_partition_failure, backoff ◄── failed ◄──┘
//! ```
//!
//! # Guarantees
//!
//! - Rows are counted per leaf partition in the same sled transaction that
//!   prepares the epoch staging them, and ticks run only once every
//!   prepared epoch is committed, so a commit never announces rows that
//!   are not in final files. A unit with an output file still open in any
//!   leaf waits for the checkpoint that closes it.
//! - A commit is recorded (`committed_rows`, `committed_at_ms`, on every
//!   leaf of the unit in one transaction) only after `_SUCCESS` is written
//!   and the command and webhook ran. A crash in
//!   between leaves the unit unrecorded: after the restart it is
//!   committed again (`_SUCCESS` is rewritten, notifications are sent once
//!   more). Notifications are at-least-once: never lost, possibly repeated.
//!   The crash point `after_partition_notify` (just before the record) is
//!   how the tests prove it.
//!   The same holds for jobs interrupted by a shutdown.
//! - A commit whose `_SUCCESS`, command or webhook fails is **not**
//!   recorded: the unit stays pending (its failed attempts, first
//!   failure and last error go into its leaves' records, for `sluice
//!   status`) and is
//!   tried again after a capped exponential backoff, until it succeeds,
//!   after a restart too. Every failed attempt is counted and logged (the
//!   log lines are rate-limited). A command that succeeded is not run again
//!   while only the webhook keeps failing (in this process, for the same
//!   rows).
//! - Units are independent: one that keeps failing waits on its own
//!   backoff while later ones are committed. No order between units
//!   is promised (none was: the notifier takes them in key order).
//! - The pipeline never waits for a notification: the queue is bounded and
//!   a full queue leaves the unit pending for a later tick.

pub mod cluster;
pub mod notify;
pub mod retry;
pub mod rule;
pub mod unit;
pub mod webhook;

use crate::checkpoint::{StagedFile, StateError, StateStore};
use crate::config::PartitionCommitConfig;
use crate::telemetry::Metrics;
use crate::telemetry::status::{PartitionCommitStatus, PendingCommit};
use notify::{Completion, Job, Leaf, Outcome, Worker};
use object_store::ObjectStore;
use retry::{LogLimit, Pending};
use rule::{Decision, IdleClose, PeriodOf, SourceMode};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::Duration;
use tokio::runtime::Handle;
use webhook::Webhook;

/// Jobs waiting for the notifier thread.
const QUEUE: usize = 64;
/// Fully announced partitions are forgotten this long after their last commit.
const KEEP_MS: i64 = 35 * 24 * 3_600_000;
/// Failing partitions listed on `/status` (oldest first).
const STATUS_LIST: usize = 20;

#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error("webhook: {0}")]
    Http(String),
    /// The webhook cannot be set up (`ca_file`, an `env:` header).
    #[error("partition_commit.webhook: {0}")]
    Setup(String),
    #[error("webhook: no answer within {}", humantime::format_duration(*.0))]
    Timeout(Duration),
    #[error("webhook answered HTTP {0}")]
    Status(u16),
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
    /// Due partitions seen by this process: backoff after failures.
    pending: HashMap<(String, String), Pending>,
    retry_backoff: Duration,
    retry_max_backoff: Duration,
    log_limit: LogLimit,
    /// `[cluster]`: commits are recorded in the cluster's book (totals of
    /// every replica, see [`cluster`]) instead of the `pcommit:` records.
    cluster_book: bool,
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
        let webhook = cfg.webhook.as_ref().map(Webhook::new).transpose()?;
        let worker = Worker {
            cfg: cfg.clone(),
            webhook,
            sink,
            handle,
            metrics: metrics.clone(),
            stop: stop.clone(),
        };
        let t = std::thread::Builder::new()
            .name("sluice-pcommit".into())
            .spawn(move || worker.run(jobs_rx, done_tx))
            .map_err(|e| CommitError::Thread(e.to_string()))?;
        if let Some(w) = cfg.webhook.as_ref().filter(|w| !w.ignored_keys.is_empty()) {
            tracing::warn!(
                keys = %w.ignored_keys.join(", "),
                "partition_commit.webhook: deprecated keys ignored; a failed commit is retried until it succeeds, see retry_backoff and retry_max_backoff"
            );
        }
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
            pending: HashMap::new(),
            retry_backoff: cfg.retry_backoff,
            retry_max_backoff: cfg.retry_max_backoff,
            log_limit: LogLimit::new(10, Duration::from_secs(60)),
            cluster_book: false,
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
            .filter(|f| self.tracks(&f.table, &f.partition))
            .map(|f| (f.table.clone(), f.partition.clone()))
            .collect()
    }

    /// Whether a table's partition can ever be committed (see [`Self::tracked`]).
    pub fn tracks(&self, table: &str, partition: &str) -> bool {
        !crate::names::output::is_errors(table)
            && self.period_of.period_of_partition(partition).is_some()
    }

    /// Records finished jobs, then commits every complete unit (time
    /// partition, see [`unit`]) with unannounced rows in any of its leaves.
    /// `source` is every known source file (path relative to the source
    /// root) and whether it is still open (active or waiting).
    ///
    /// A unit with an output file still open in any leaf (`open`: leaf
    /// partitions, files kept across checkpoints, see `sink::writers`)
    /// waits: the checkpoint that closes them (see [`Self::closing`]; every
    /// leaf of a unit has the unit's period, so they close together) comes
    /// first, so `_SUCCESS` follows every file of every sub-partition.
    pub fn tick<'a>(
        &mut self,
        state: &StateStore,
        source: impl IntoIterator<Item = (&'a str, bool)>,
        open: &BTreeSet<(String, String)>,
        now_ms: i64,
    ) -> Result<(), CommitError> {
        self.record_completions(state, now_ms)?;
        let watermark = self.watermark(source, now_ms);
        let open_units = unit::open_units(open, &self.period_of.columns);
        let units = unit::group(state.partitions()?, &self.period_of);
        self.schedule(&units, watermark, &open_units, now_ms)?;
        if now_ms - self.last_prune_ms > 3_600_000 {
            self.last_prune_ms = now_ms;
            state.forget_partitions(&unit::prunable(&units, now_ms - KEEP_MS))?;
        }
        Ok(())
    }

    /// Sends a job for every complete unit with unannounced rows that is
    /// not waiting on an open file, a job in flight or its backoff.
    fn schedule(
        &mut self,
        units: &[unit::Unit],
        watermark: Option<i64>,
        open_units: &BTreeSet<(String, String)>,
        now_ms: i64,
    ) -> Result<(), CommitError> {
        let mut due = HashSet::new();
        let mut full = false;
        for u in units {
            let d = rule::decide(
                Some(u.period),
                u.rows(),
                u.committed_rows(),
                u.committed_before(),
                watermark,
                now_ms,
                self.delay_ms,
            );
            if !u.unannounced() {
                continue;
            }
            let Decision::Commit { late } = d else {
                continue;
            };
            let key = u.key();
            if open_units.contains(&key) {
                continue;
            }
            let rows = u.rows();
            let p = self.pending.entry(key.clone()).or_insert_with(|| {
                let mut p = Pending::new(rows, now_ms, u.failed_attempts(), u.first_failed_ms());
                p.last_error = u.last_error();
                p
            });
            p.grew(rows);
            due.insert(key.clone());
            if full || self.in_flight.contains(&key) || !p.due(now_ms) {
                continue;
            }
            let Some(jobs) = &self.jobs else { continue };
            let job = Job {
                table: u.table.clone(),
                partition: u.partition.clone(),
                rows,
                files: u.files(),
                late,
                run_command: !p.command_done,
                at_ms: p.attempt(now_ms),
                leaves: u
                    .leaves
                    .iter()
                    .map(|l| Leaf {
                        partition: l.partition.clone(),
                        rows: l.rows,
                        files: l.files,
                    })
                    .collect(),
            };
            match jobs.try_send(job) {
                Ok(()) => {
                    self.in_flight.insert(key);
                }
                Err(TrySendError::Full(_)) => full = true,
                Err(TrySendError::Disconnected(_)) => {
                    return Err(CommitError::Thread("the notifier thread stopped".into()));
                }
            }
        }
        self.pending.retain(|k, _| due.contains(k));
        self.report(now_ms);
        Ok(())
    }

    /// Which output partitions are complete now (by the source view, as in
    /// [`Self::tick`]): a checkpoint closes their open files so that the
    /// next tick can commit them.
    pub fn closing<'a>(
        &mut self,
        source: impl IntoIterator<Item = (&'a str, bool)>,
        now_ms: i64,
    ) -> crate::sink::PartitionDue {
        let watermark = self.watermark(source, now_ms);
        let period_of = self.period_of.clone();
        let delay_ms = self.delay_ms;
        Box::new(move |table: &str, partition: &str| {
            if crate::names::output::is_errors(table) {
                return false;
            }
            let Some(p) = period_of.period_of_partition(partition) else {
                return false;
            };
            watermark.is_some_and(|w| w >= p.end_ms) && now_ms >= p.end_ms.saturating_add(delay_ms)
        })
    }

    /// The source watermark from every known source file (path relative to
    /// the source root) and whether it is still open.
    fn watermark<'a>(
        &mut self,
        source: impl IntoIterator<Item = (&'a str, bool)>,
        now_ms: i64,
    ) -> Option<i64> {
        let mut parts: BTreeMap<rule::Period, bool> = BTreeMap::new();
        let mut unknown = 0;
        for (path, open) in source {
            match self.period_of.period(&crate::names::hive::parse_path(path)) {
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
        watermark
    }

    /// Pending partitions into the metrics and the status board.
    fn report(&self, now_ms: i64) {
        let m = &self.metrics;
        m.partitions_pending
            .store(self.pending.len() as i64, Ordering::Relaxed);
        let oldest = self.pending.values().map(|p| p.since_ms).min();
        m.partition_commit_oldest_pending_ms
            .store(oldest.unwrap_or(0), Ordering::Relaxed);
        let mut failing: Vec<PendingCommit> = self
            .pending
            .iter()
            .filter(|(_, p)| p.failures > 0)
            .map(|((table, partition), p)| PendingCommit {
                table: table.clone(),
                partition: partition.clone(),
                failed_attempts: p.failures,
                since_ms: p.since_ms,
                next_attempt_ms: Some(p.next_attempt_ms.max(now_ms)),
                last_error: p.last_error.clone(),
            })
            .collect();
        failing.sort_by(|a, b| {
            (a.since_ms, &a.table, &a.partition).cmp(&(b.since_ms, &b.table, &b.partition))
        });
        let failing_count = failing.len() as u64;
        failing.truncate(STATUS_LIST);
        m.status.set_partition_commit(PartitionCommitStatus {
            pending: self.pending.len() as u64,
            failing: failing_count,
            oldest_pending_since_ms: oldest,
            failed_attempts_total: m.partition_commit_failures.load(Ordering::Relaxed),
            oldest_failing: failing,
        });
    }

    fn record_completions(&mut self, state: &StateStore, now_ms: i64) -> Result<(), CommitError> {
        while let Ok(c) = self.done.try_recv() {
            let j = &c.job;
            let key = (j.table.clone(), j.partition.clone());
            self.in_flight.remove(&key);
            let (error, command_done) = match c.outcome {
                Outcome::Done => (None, true),
                Outcome::Interrupted => continue,
                Outcome::Failed {
                    error,
                    command_done,
                } => (Some(error), command_done),
            };
            if let Some(error) = error {
                self.failed(state, j, error, command_done, now_ms)?;
                continue;
            }
            let failures = self.pending.remove(&key).map_or(0, |p| p.failures);
            // `_SUCCESS`, the command and the webhook ran; the commit is not
            // recorded yet. A crash here repeats them after the restart.
            crate::crashpoint::hit("after_partition_notify");
            if self.cluster_book {
                let announced: Vec<(String, u64, u64)> = j
                    .leaves
                    .iter()
                    .map(|l| (l.partition.clone(), l.rows, l.files))
                    .collect();
                state.record_cluster_commit(&j.table, &announced, c.at_ms)?;
            } else {
                let announced: Vec<(String, u64)> = j
                    .leaves
                    .iter()
                    .map(|l| (l.partition.clone(), l.rows))
                    .collect();
                state.record_partition_commit(&j.table, &announced, c.at_ms)?;
            }
            self.metrics.add_partition_committed(&j.table, j.late);
            let sub_partitions = j.sub_partitions().count();
            if j.late {
                tracing::warn!(table = %j.table, partition = %j.partition, rows = j.rows, files = j.files, sub_partitions,
                    "late data: partition committed again");
            } else {
                tracing::info!(table = %j.table, partition = %j.partition, rows = j.rows, files = j.files, sub_partitions,
                    failed_attempts = failures, "partition committed");
            }
        }
        Ok(())
    }

    /// A failed attempt: counted, recorded in the partition's record, its
    /// next attempt put off, and logged (rate-limited).
    fn failed(
        &mut self,
        state: &StateStore,
        j: &Job,
        error: String,
        command_done: bool,
        now_ms: i64,
    ) -> Result<(), CommitError> {
        self.metrics
            .partition_commit_failures
            .fetch_add(1, Ordering::Relaxed);
        let p = self
            .pending
            .entry((j.table.clone(), j.partition.clone()))
            .or_insert_with(|| Pending::new(j.rows, now_ms, 0, None));
        let command_done = command_done && p.rows == j.rows;
        let wait = p.failed(
            now_ms,
            error.clone(),
            command_done,
            self.retry_backoff,
            self.retry_max_backoff,
        );
        let attempt = p.failures;
        let leaves: Vec<String> = j.leaves.iter().map(|l| l.partition.clone()).collect();
        if self.cluster_book {
            state.record_cluster_failure(&j.table, &leaves, now_ms, &error)?;
        } else {
            state.record_partition_failure(&j.table, &leaves, now_ms, &error)?;
        }
        if let Some(suppressed) = self.log_limit.allow(now_ms) {
            tracing::warn!(table = %j.table, partition = %j.partition, attempt, error = %error,
                retry_in = %humantime::format_duration(wait), suppressed,
                "partition commit failed; it stays pending and is retried");
        }
        Ok(())
    }

    /// Stops the notifier thread. `drain`: let it finish every queued job
    /// (`run --once`); else it stops after the current attempt. What is left
    /// unrecorded (interrupted, or failed and waiting) is committed again
    /// after the restart.
    pub fn finish(mut self, state: &StateStore, drain: bool) -> Result<(), CommitError> {
        if !drain {
            self.stop.store(true, Ordering::SeqCst);
        }
        self.jobs = None;
        if let Some(t) = self.worker.take() {
            // Keep taking completions so the thread never blocks on sending one.
            while !t.is_finished() {
                self.record_completions(state, crate::clock::now_ms())?;
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = t.join();
        }
        self.record_completions(state, crate::clock::now_ms())
    }
}

impl Drop for PartitionCommitter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests;
