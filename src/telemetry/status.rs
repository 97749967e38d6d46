//! Status: the answer to "is it keeping up, and if not, why". Owns the
//! [`StatusSnapshot`] JSON shape (served by the daemon on `/status`, and
//! built from a stopped daemon's state by `sluice status`). Re-exported
//! here, each in its own file: the [`StatusBoard`] the coordinator updates
//! as it runs (`board.rs`), and the one-line [`diagnose`] (pure,
//! `diagnosis.rs`).
//!
//! The board keeps what the atomics in [`Metrics`] do not: the run phase
//! (readiness), the last committed epoch, quarantined files, rows committed
//! per table today, the rule set in effect, the dimension snapshots in use,
//! and per-checkpoint-interval figures of reader saturation and writer
//! back-pressure from which the diagnosis is drawn.

pub use super::board::{CheckpointFacts, RunFacts, StatusBoard};
pub use super::commit_status::{PartitionCommitStatus, PendingCommit};
pub use super::diagnosis::{
    DISK_LOW_BYTES, Thresholds, checkpoints_growing, diagnose, disk_space, disks, human_bytes,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

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
    /// Requests to an object-store sink fail; they are being retried.
    SinkUnreachable,
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
    /// Why the sink store counts as unreachable, when it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sink_unreachable: Option<String>,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::Metrics;
    use std::path::Path;

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
