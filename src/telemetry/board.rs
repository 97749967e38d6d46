//! The [`StatusBoard`]: what the coordinator reports between requests
//! (phase, last checkpoint, quarantine, rows today, rules, dimensions,
//! saturation and back-pressure per checkpoint interval), turned into a
//! [`StatusSnapshot`] on `/status`. Part of the status: re-exported by
//! `telemetry::status`; touches the [`Metrics`] atomics (read only).

use super::Metrics;
use super::status::*;
use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::Ordering;

/// What the coordinator reports between requests (see the module doc).
#[derive(Default)]
pub struct StatusBoard {
    inner: Mutex<Board>,
}

#[derive(Default)]
struct Board {
    phase: Phase,
    readers: u64,
    thresholds: Thresholds,
    sink_root: Option<PathBuf>,
    state_dir: PathBuf,
    last: Option<LastCheckpoint>,
    quarantined: Vec<Quarantined>,
    day: String,
    tables: BTreeMap<String, u64>,
    rules: Option<RulesInfo>,
    dimensions: Vec<DimensionStatus>,
    backlog: Backlog,
    recent_checkpoint_ms: VecDeque<u64>,
    /// Samples of the pipeline since the last checkpoint: (total, saturated).
    samples: (u64, u64),
    reader_saturation: f64,
    writer_wait: f64,
    /// Reader wait counter and time at the last checkpoint.
    wait_mark: (u64, i64),
    partition_commit: Option<PartitionCommitStatus>,
    open_files: u64,
    oldest_open_ms: BTreeMap<String, i64>,
    schema_change: Option<SchemaChange>,
}

impl Board {
    fn open_output(&self, now_ms: i64) -> OpenOutput {
        OpenOutput {
            files: self.open_files,
            oldest_invisible_seconds: self
                .oldest_open_ms
                .iter()
                .filter(|(t, _)| !crate::names::output::is_errors(t))
                .map(|(t, ms)| (t.clone(), (now_ms - ms).max(0) as f64 / 1e3))
                .collect(),
        }
    }
}

/// Static facts of a run, set once at start.
pub struct RunFacts<'a> {
    pub readers: u64,
    pub thresholds: Thresholds,
    /// `None` when the sink is an object store (no disk to report).
    pub sink_root: Option<&'a Path>,
    pub state_dir: &'a Path,
}

/// Figures refreshed at each checkpoint.
pub struct CheckpointFacts {
    pub quarantined: Vec<Quarantined>,
    pub day: String,
    pub tables: BTreeMap<String, u64>,
    pub rules: RulesInfo,
    /// Output files open after the checkpoint, and each table's oldest.
    pub open_files: u64,
    pub oldest_open_ms: BTreeMap<String, i64>,
}

const RECENT_CHECKPOINTS: usize = 8;

impl StatusBoard {
    fn lock(&self) -> std::sync::MutexGuard<'_, Board> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn phase(&self) -> Phase {
        self.lock().phase
    }

    pub fn set_phase(&self, phase: Phase) {
        self.lock().phase = phase;
    }

    pub fn set_facts(&self, f: RunFacts<'_>) {
        let mut b = self.lock();
        b.readers = f.readers;
        b.thresholds = f.thresholds;
        b.sink_root = f.sink_root.map(Path::to_path_buf);
        b.state_dir = f.state_dir.to_path_buf();
    }

    /// SLOT: the dimension code reports its snapshots here.
    pub fn set_dimensions(&self, dims: Vec<DimensionStatus>) {
        self.lock().dimensions = dims;
    }

    /// The source schema's last change (at start: the state's).
    pub fn set_schema_change(&self, c: Option<SchemaChange>) {
        self.lock().schema_change = c;
    }

    /// Partition commit's pending partitions, from its tick.
    pub fn set_partition_commit(&self, p: PartitionCommitStatus) {
        self.lock().partition_commit = Some(p);
    }

    /// A sample of the pipeline, from the coordinator's loop.
    pub fn sample(&self, backlog: Backlog, splits_queued: usize, readers_busy: usize) {
        let mut b = self.lock();
        b.backlog = backlog;
        b.samples.0 += 1;
        if splits_queued > 0 && readers_busy as u64 >= b.readers {
            b.samples.1 += 1;
        }
    }

    /// An epoch was committed (or, at start, the last one found in state).
    pub fn committed(&self, epoch: u64, at_ms: i64, duration_ms: Option<u64>) {
        let mut b = self.lock();
        b.last = Some(LastCheckpoint {
            epoch,
            at_ms,
            age_seconds: 0.0,
            duration_ms,
        });
        if let Some(ms) = duration_ms {
            b.recent_checkpoint_ms.push_back(ms);
            while b.recent_checkpoint_ms.len() > RECENT_CHECKPOINTS {
                b.recent_checkpoint_ms.pop_front();
            }
        }
    }

    /// A checkpoint finished (committed or empty): closes the interval.
    pub fn checkpoint(&self, facts: CheckpointFacts, reader_wait_us: u64, now_ms: i64) {
        let mut b = self.lock();
        b.quarantined = facts.quarantined;
        b.day = facts.day;
        b.tables = facts.tables;
        b.rules = Some(facts.rules);
        b.open_files = facts.open_files;
        b.oldest_open_ms = facts.oldest_open_ms;
        let (total, saturated) = std::mem::take(&mut b.samples);
        if total > 0 {
            b.reader_saturation = saturated as f64 / total as f64;
        }
        let (mark_us, mark_ms) = b.wait_mark;
        let elapsed_us = (now_ms - mark_ms).max(1) as f64 * 1e3;
        if mark_ms > 0 && b.readers > 0 {
            b.writer_wait = ((reader_wait_us.saturating_sub(mark_us)) as f64
                / (elapsed_us * b.readers as f64))
                .min(1.0);
        }
        b.wait_mark = (reader_wait_us, now_ms);
    }

    /// Open output files, with ages as of `now_ms` (error outputs left out).
    pub fn open_output(&self, now_ms: i64) -> OpenOutput {
        self.lock().open_output(now_ms)
    }

    /// The daemon's `/status` answer.
    pub fn snapshot(&self, m: &Metrics, now_ms: i64) -> StatusSnapshot {
        let b = self.lock();
        let mut s = StatusSnapshot {
            format: STATUS_FORMAT,
            source: StatusSource::Daemon,
            generated_at_ms: now_ms,
            phase: b.phase,
            backlog: b.backlog.clone(),
            last_checkpoint: b.last.clone().map(|mut l| {
                l.age_seconds = (now_ms - l.at_ms).max(0) as f64 / 1e3;
                l
            }),
            prepared_epochs: vec![],
            quarantined: b.quarantined.clone(),
            day: b.day.clone(),
            tables: b.tables.clone(),
            rules: b.rules.clone(),
            dimensions: b.dimensions.clone(),
            pipeline: Some(PipelineInfo {
                readers: b.readers,
                splits_queued: m.splits_queued.load(Ordering::Relaxed).max(0) as u64,
                splits_in_flight: m.splits_in_flight.load(Ordering::Relaxed).max(0) as u64,
                reader_saturation: b.reader_saturation,
                writer_wait: b.writer_wait,
                checkpoint_interval_seconds: b.thresholds.checkpoint_interval_seconds,
                recent_checkpoint_ms: b.recent_checkpoint_ms.iter().copied().collect(),
            }),
            disk: disks(b.sink_root.as_deref(), &b.state_dir),
            stalled: m.stalled(now_ms),
            discovery: m.discovery.status(),
            sink_unreachable: m.sink_store.unreachable(),
            diagnosis: Diagnosis::default(),
            partition_commit: b.partition_commit.clone(),
            open_output: b.open_output(now_ms),
            schema_change: b.schema_change.clone(),
            cluster: m.cluster.get(),
        };
        s.diagnosis = diagnose(&s, &b.thresholds);
        s
    }
}
