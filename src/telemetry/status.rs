//! Status: the answer to "is it keeping up, and if not, why". Owns the
//! [`StatusSnapshot`] JSON shape (served by the daemon on `/status`, and
//! built from a stopped daemon's state by `sluice status`), the
//! [`StatusBoard`] the coordinator updates as it runs, and the one-line
//! [`diagnose`] (pure).
//!
//! The board keeps what the atomics in [`Metrics`] do not: the run phase
//! (readiness), the last committed epoch, quarantined files, rows committed
//! per table today, the rule set in effect, the dimension snapshots in use,
//! and per-checkpoint-interval figures of reader saturation and writer
//! back-pressure from which the diagnosis is drawn.

use super::Metrics;
pub use super::commit_status::{PartitionCommitStatus, PendingCommit};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// The `/status` JSON format version.
pub const STATUS_FORMAT: u32 = 1;

/// Where a status came from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StatusSource {
    /// The running daemon answered on `/status`.
    #[default]
    Daemon,
    /// No daemon answered: read from the state and a fresh source listing.
    State,
}

/// What the daemon is doing; ready only in `Running`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Opening the state and rolling prepared epochs forward.
    #[default]
    Starting,
    /// No readable source file yet: the schema, hence the rules, are unknown.
    WaitingForSchema,
    /// Compiling the rules against the schema.
    LoadingRules,
    /// State open, recovery done, rules loaded: ready.
    Running,
    /// Taking the final checkpoint.
    Stopping,
    /// No daemon is running (status read from the state).
    Stopped,
}

impl Phase {
    pub fn describe(self) -> &'static str {
        match self {
            Phase::Starting => "starting: opening the state and recovering",
            Phase::WaitingForSchema => {
                "starting: waiting for the first readable source file to learn the schema"
            }
            Phase::LoadingRules => "starting: loading the rules",
            Phase::Running => "running",
            Phase::Stopping => "stopping: taking the final checkpoint",
            Phase::Stopped => "not running",
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Backlog {
    /// Visible files not fully committed.
    pub files: u64,
    /// Their size.
    pub bytes: u64,
    /// Matching files not visible yet (too young, no marker).
    pub waiting_files: u64,
    /// Age of the oldest visible uncommitted file (0 when none).
    pub lag_seconds: f64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LastCheckpoint {
    pub epoch: u64,
    pub at_ms: i64,
    pub age_seconds: f64,
    /// Duration of the checkpoint (unknown when read from state).
    pub duration_ms: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quarantined {
    pub path: String,
    pub reason: String,
    pub at_ms: i64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RulesInfo {
    pub version: String,
    pub count: usize,
}

/// SLOT for the dimension table (being added on main): what the daemon
/// reports about each dimension snapshot in use. Dimension code calls
/// [`StatusBoard::set_dimensions`]; an empty list reads "none configured".
/// `last_error` set means the last reload failed and an older snapshot is
/// in use (the diagnosis says so).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DimensionStatus {
    pub name: String,
    /// What is loaded, e.g. the dated partition or the files' fingerprint.
    pub snapshot: String,
    pub rows: u64,
    pub loaded_at_ms: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PipelineInfo {
    pub readers: u64,
    pub splits_queued: u64,
    pub splits_in_flight: u64,
    /// Share of the last checkpoint interval during which every reader was
    /// busy and splits were waiting (0..1).
    pub reader_saturation: f64,
    /// Share of the readers' time in the last interval spent blocked on the
    /// full writer channel (0..1).
    pub writer_wait: f64,
    pub checkpoint_interval_seconds: f64,
    /// Durations of the recent checkpoints, oldest first.
    pub recent_checkpoint_ms: Vec<u64>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskInfo {
    /// `sink` or `state`.
    pub what: String,
    pub path: String,
    pub free_bytes: u64,
    pub total_bytes: u64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DiagnosisKind {
    #[default]
    Healthy,
    Starting,
    NotRunning,
    /// The source cannot be listed, scan after scan.
    SourceUnreachable,
    Stalled,
    DiskFull,
    SinkErrors,
    DimensionReloadFailing,
    WriterBound,
    ReaderBound,
    FallingBehind,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diagnosis {
    pub kind: DiagnosisKind,
    pub message: String,
}

/// Everything `sluice status` shows.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StatusSnapshot {
    pub format: u32,
    pub source: StatusSource,
    pub generated_at_ms: i64,
    pub phase: Phase,
    pub backlog: Backlog,
    pub last_checkpoint: Option<LastCheckpoint>,
    /// Epochs prepared but not committed (rolled forward at the next start).
    pub prepared_epochs: Vec<u64>,
    pub quarantined: Vec<Quarantined>,
    /// The UTC day `tables` counts.
    pub day: String,
    /// Rows committed per table on `day`.
    pub tables: BTreeMap<String, u64>,
    pub rules: Option<RulesInfo>,
    pub dimensions: Vec<DimensionStatus>,
    pub pipeline: Option<PipelineInfo>,
    pub disk: Vec<DiskInfo>,
    /// `/healthz`'s reason, when unhealthy.
    pub stalled: Option<String>,
    /// What discovery did not read, and failed listings.
    #[serde(default)]
    pub discovery: super::discovery::DiscoveryStatus,
    pub diagnosis: Diagnosis,
    /// Pending and failing partition commits (`[partition_commit]` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition_commit: Option<PartitionCommitStatus>,
    /// Output files open across checkpoints: rows durable, not yet visible.
    #[serde(default)]
    pub open_output: OpenOutput,
    /// The source schema's last change (columns added or widened).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_change: Option<SchemaChange>,
    /// `[cluster]`: every replica's last progress, and which are down.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<super::cluster_status::ClusterStatus>,
}

/// Output files kept open across checkpoints (see `sink::writers`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct OpenOutput {
    /// Files open at the last checkpoint.
    pub files: u64,
    /// Per table: how long ago the oldest rows not yet visible were
    /// written (seconds; the age of its oldest open file).
    pub oldest_invisible_seconds: BTreeMap<String, f64>,
}

/// The source schema's last change, for `sluice status`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SchemaChange {
    pub epoch: u64,
    pub at_ms: i64,
    /// `gained column x (Utf8) from file f; ...`.
    pub what: String,
}

// ---------------------------------------------------------------- diagnosis

/// A disk with less free space than this is "full" for the diagnosis.
pub const DISK_LOW_BYTES: u64 = 256 << 20;

/// Bounds that decide "falling behind" and its cause.
#[derive(Clone, Debug, Default)]
pub struct Thresholds {
    /// Lag above this is falling behind: min_age + scan_interval + 2 x checkpoint_interval.
    pub lag_seconds: f64,
    pub checkpoint_interval_seconds: f64,
}

impl Thresholds {
    pub fn from_config(cfg: &crate::config::Config) -> Thresholds {
        let min_age = match &cfg.source.visibility {
            crate::config::Visibility::Settled { min_age } => *min_age,
            crate::config::Visibility::Marker { .. }
            | crate::config::Visibility::Manifest { .. } => Duration::ZERO,
        };
        let ci = cfg.sink.checkpoint_interval.as_secs_f64();
        Thresholds {
            lag_seconds: min_age.as_secs_f64() + cfg.source.scan_interval.as_secs_f64() + 2.0 * ci,
            checkpoint_interval_seconds: ci,
        }
    }
}

/// True when the recent checkpoints keep getting slower (each at least as
/// long as the one before, the last twice the first and over a second), or
/// the last one took more than half the checkpoint interval.
pub fn checkpoints_growing(recent_ms: &[u64], interval_seconds: f64) -> bool {
    let Some(last) = recent_ms.last() else {
        return false;
    };
    if interval_seconds > 0.0 && *last as f64 / 1e3 > interval_seconds / 2.0 {
        return true;
    }
    recent_ms.len() >= 4
        && recent_ms.windows(2).all(|w| w[1] >= w[0])
        && *last >= 2 * recent_ms[0]
        && *last > 1000
}

/// The one-line diagnosis, most urgent cause first (pure).
pub fn diagnose(s: &StatusSnapshot, t: &Thresholds) -> Diagnosis {
    let d = |kind, message: String| Diagnosis { kind, message };
    let low_disk = s
        .disk
        .iter()
        .find(|d| d.total_bytes > 0 && d.free_bytes < DISK_LOW_BYTES);
    let disk_msg = |x: &DiskInfo| {
        format!(
            "disk full: {} has {} free on {} (writes and checkpoints will fail)",
            x.what,
            human_bytes(x.free_bytes),
            x.path
        )
    };
    let b = &s.backlog;
    let waiting = if b.files == 0 {
        "nothing waiting to be read".to_string()
    } else {
        format!(
            "{} file(s), {} waiting to be read",
            b.files,
            human_bytes(b.bytes)
        )
    };
    if s.source == StatusSource::State {
        if let Some(e) = s.prepared_epochs.first() {
            return d(
                DiagnosisKind::SinkErrors,
                format!(
                    "not running; epoch {e} is prepared but not committed (the last run stopped mid-checkpoint, e.g. on a sink error); the next start rolls it forward (if that keeps failing, `sluice state resolve-epoch` shows why and the way out)"
                ),
            );
        }
        if let Some(x) = low_disk {
            return d(DiagnosisKind::DiskFull, disk_msg(x));
        }
        return d(DiagnosisKind::NotRunning, format!("not running; {waiting}"));
    }
    if s.phase != Phase::Running {
        return d(DiagnosisKind::Starting, s.phase.describe().to_string());
    }
    if s.discovery.failed_scans_in_a_row >= super::discovery::FAILED_SCANS_UNHEALTHY {
        return d(
            DiagnosisKind::SourceUnreachable,
            format!(
                "source store unreachable: the last {} listings failed ({}); retried every scan, nothing is lost meanwhile",
                s.discovery.failed_scans_in_a_row,
                s.discovery
                    .last_listing_error
                    .as_deref()
                    .unwrap_or("no error recorded")
            ),
        );
    }
    if let Some(why) = &s.stalled {
        return d(DiagnosisKind::Stalled, format!("stalled: {why}"));
    }
    if let Some(x) = low_disk {
        return d(DiagnosisKind::DiskFull, disk_msg(x));
    }
    if let Some(dim) = s.dimensions.iter().find(|x| x.last_error.is_some()) {
        return d(
            DiagnosisKind::DimensionReloadFailing,
            format!(
                "dimension reload failing: {}: {}; joining against the older snapshot {}",
                dim.name,
                dim.last_error.as_deref().unwrap_or(""),
                dim.snapshot
            ),
        );
    }
    let behind = b.lag_seconds > t.lag_seconds;
    if !behind {
        return d(
            DiagnosisKind::Healthy,
            if b.files == 0 {
                "healthy, keeping up (idle)".to_string()
            } else {
                format!("healthy, keeping up; {waiting}")
            },
        );
    }
    let lag = format!(
        "lag {:.0}s (keeping up means under {:.0}s)",
        b.lag_seconds, t.lag_seconds
    );
    let p = s.pipeline.clone().unwrap_or_default();
    if p.writer_wait > 0.5
        || checkpoints_growing(&p.recent_checkpoint_ms, t.checkpoint_interval_seconds)
    {
        return d(
            DiagnosisKind::WriterBound,
            format!(
                "falling behind, writer-bound: readers spent {:.0}% of their time waiting on the writer, last checkpoints took {:?} ms; {lag}",
                p.writer_wait * 100.0,
                p.recent_checkpoint_ms
            ),
        );
    }
    if p.reader_saturation > 0.8 {
        return d(
            DiagnosisKind::ReaderBound,
            format!(
                "falling behind, reader-bound: all {} readers busy {:.0}% of the time with {} split(s) queued; add readers (read.readers) or cores; {lag}",
                p.readers,
                p.reader_saturation * 100.0,
                p.splits_queued
            ),
        );
    }
    d(
        DiagnosisKind::FallingBehind,
        format!(
            "falling behind without a saturated stage ({lag}); {waiting}; check the source listing and the host"
        ),
    )
}

pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// Free and total bytes of the file system holding `path` (None when it
/// cannot be asked, e.g. the path does not exist).
// The statvfs fields are c_ulong / fsblkcnt_t: u64 here, narrower elsewhere.
#[allow(clippy::useless_conversion)]
pub fn disk_space(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c` is a NUL-terminated path and `st` points to writable
    // memory of the right type; statvfs only writes it.
    let rc = unsafe { libc::statvfs(c.as_ptr(), st.as_mut_ptr()) };
    if rc != 0 {
        return None;
    }
    // SAFETY: statvfs returned 0, so it filled the struct.
    let st = unsafe { st.assume_init() };
    let frsize = u64::from(st.f_frsize);
    Some((
        u64::from(st.f_bavail).saturating_mul(frsize),
        u64::from(st.f_blocks).saturating_mul(frsize),
    ))
}

/// Disk figures for the sink root (when local) and the state dir.
pub fn disks(sink: Option<&Path>, state: &Path) -> Vec<DiskInfo> {
    [("sink", sink), ("state", Some(state))]
        .into_iter()
        .filter_map(|(what, p)| {
            let p = p?;
            disk_space(p).map(|(free, total)| DiskInfo {
                what: what.into(),
                path: p.display().to_string(),
                free_bytes: free,
                total_bytes: total,
            })
        })
        .collect()
}

// ---------------------------------------------------------------- the board

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
                .filter(|(t, _)| !t.starts_with('_'))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn running(lag: f64) -> StatusSnapshot {
        StatusSnapshot {
            phase: Phase::Running,
            backlog: Backlog {
                files: 3,
                bytes: 3 << 20,
                waiting_files: 0,
                lag_seconds: lag,
            },
            pipeline: Some(PipelineInfo {
                readers: 2,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn t() -> Thresholds {
        Thresholds {
            lag_seconds: 100.0,
            checkpoint_interval_seconds: 30.0,
        }
    }

    fn kind(s: &StatusSnapshot) -> DiagnosisKind {
        diagnose(s, &t()).kind
    }

    #[test]
    fn diagnosis_names_the_bottleneck_only_when_behind() {
        let mut s = running(10.0);
        s.pipeline.as_mut().unwrap().reader_saturation = 1.0;
        assert_eq!(kind(&s), DiagnosisKind::Healthy);
        assert!(
            diagnose(&s, &t())
                .message
                .starts_with("healthy, keeping up")
        );

        let mut s = running(500.0);
        s.pipeline.as_mut().unwrap().reader_saturation = 0.95;
        assert_eq!(kind(&s), DiagnosisKind::ReaderBound);
        s.pipeline.as_mut().unwrap().writer_wait = 0.7;
        assert_eq!(kind(&s), DiagnosisKind::WriterBound);

        let mut s = running(500.0);
        s.pipeline.as_mut().unwrap().recent_checkpoint_ms = vec![400, 900, 1500, 2600];
        assert_eq!(kind(&s), DiagnosisKind::WriterBound);

        let s = running(500.0);
        assert_eq!(kind(&s), DiagnosisKind::FallingBehind);
    }

    #[test]
    fn urgent_causes_come_first() {
        let mut s = running(500.0);
        s.pipeline.as_mut().unwrap().reader_saturation = 1.0;
        s.dimensions.push(DimensionStatus {
            name: "dim_user".into(),
            last_error: Some("file vanished".into()),
            ..Default::default()
        });
        assert_eq!(kind(&s), DiagnosisKind::DimensionReloadFailing);
        s.disk.push(DiskInfo {
            what: "sink".into(),
            path: "/data".into(),
            free_bytes: 1 << 20,
            total_bytes: 1 << 40,
        });
        assert_eq!(kind(&s), DiagnosisKind::DiskFull);
        s.stalled = Some("main loop has not run for 400 s".into());
        assert_eq!(kind(&s), DiagnosisKind::Stalled);
        s.discovery.failed_scans_in_a_row = 3;
        s.discovery.last_listing_error =
            Some("cannot list the source root s3://b/ods: refused".into());
        let dg = diagnose(&s, &t());
        assert_eq!(dg.kind, DiagnosisKind::SourceUnreachable);
        assert!(
            dg.message.starts_with("source store unreachable") && dg.message.contains("s3://b/ods"),
            "{}",
            dg.message
        );
        s.discovery.failed_scans_in_a_row = 0;
        s.phase = Phase::WaitingForSchema;
        assert_eq!(kind(&s), DiagnosisKind::Starting);

        let mut s = running(0.0);
        s.source = StatusSource::State;
        assert_eq!(kind(&s), DiagnosisKind::NotRunning);
        s.prepared_epochs = vec![7];
        let d = diagnose(&s, &t());
        assert_eq!(d.kind, DiagnosisKind::SinkErrors);
        assert!(d.message.contains("epoch 7"), "{}", d.message);
    }

    #[test]
    fn checkpoint_growth() {
        assert!(!checkpoints_growing(&[], 30.0));
        assert!(!checkpoints_growing(&[100, 120, 110, 130], 30.0));
        assert!(checkpoints_growing(&[500, 800, 1200, 2000], 30.0));
        assert!(checkpoints_growing(&[100, 16_000], 30.0));
    }

    #[test]
    fn board_measures_saturation_and_writer_wait_per_interval() {
        let b = StatusBoard::default();
        b.set_facts(RunFacts {
            readers: 2,
            thresholds: t(),
            sink_root: Some(Path::new("/")),
            state_dir: Path::new("/"),
        });
        let facts = || CheckpointFacts {
            quarantined: vec![],
            day: "2026-11-20".into(),
            tables: BTreeMap::new(),
            rules: RulesInfo::default(),
            open_files: 2,
            oldest_open_ms: [("t".to_string(), 500), ("_errors/t".to_string(), 100)].into(),
        };
        b.checkpoint(facts(), 0, 1_000);
        let open = b.open_output(2_000);
        assert_eq!(open.files, 2);
        assert_eq!(
            open.oldest_invisible_seconds,
            [("t".to_string(), 1.5)].into(),
            "error outputs are left out"
        );
        for i in 0..10 {
            b.sample(Backlog::default(), 4, if i < 9 { 2 } else { 1 });
        }
        // 2 readers x 10 s, 15 s of it waiting on the writer.
        b.checkpoint(facts(), 15_000_000, 11_000);
        let s = b.snapshot(&Metrics::default(), 11_000);
        let p = s.pipeline.unwrap();
        assert!((p.reader_saturation - 0.9).abs() < 1e-9);
        assert!((p.writer_wait - 0.75).abs() < 1e-9);
        assert_eq!(s.day, "2026-11-20");
        assert!(!s.disk.is_empty());
    }

    #[test]
    fn snapshot_is_json_roundtrippable() {
        let s = running(3.0);
        let j = serde_json::to_string(&s).unwrap();
        let back: StatusSnapshot = serde_json::from_str(&j).unwrap();
        assert_eq!(back, s);
        assert!(j.contains("\"dimensions\":[]"), "{j}");
    }
}
