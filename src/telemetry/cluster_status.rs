//! What `/status`, `sluice status` and `/metrics` show of the other
//! replicas (`[cluster]`): each replica's last published progress, and
//! which are down or stalled (no progress for `cluster.stall_after`), so an
//! operator sees why a partition is not committed. Filled by
//! `cluster::Link`; read by the status snapshot and the metrics.

use serde::{Deserialize, Serialize};
use std::fmt::Write;
use std::sync::Mutex;

/// The replicas as this one sees them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterStatus {
    /// This process's replica index.
    pub replica: u32,
    pub replicas: u32,
    /// `cluster.stall_after` in seconds.
    pub stall_after_seconds: u64,
    /// Every replica, in index order (this one included).
    pub members: Vec<ReplicaStatus>,
}

impl ClusterStatus {
    /// The replicas that are down or stalled (or never published).
    pub fn missing(&self) -> Vec<u32> {
        self.members
            .iter()
            .filter(|m| !m.up)
            .map(|m| m.replica)
            .collect()
    }
}

/// One replica's published progress.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaStatus {
    pub replica: u32,
    /// When its main loop last published progress (`None`: never, or for
    /// another number of replicas).
    pub last_progress_ms: Option<i64>,
    /// Its source watermark for partition commit (start of its oldest open
    /// source partition), when it has one.
    pub watermark_ms: Option<i64>,
    /// Published within `stall_after`.
    pub up: bool,
}

/// Shared between the coordinator (writer) and HTTP (readers).
#[derive(Default)]
pub struct ClusterBoard {
    inner: Mutex<Option<ClusterStatus>>,
}

impl ClusterBoard {
    pub fn set(&self, s: ClusterStatus) {
        *self.inner.lock().unwrap_or_else(|p| p.into_inner()) = Some(s);
    }

    pub fn get(&self) -> Option<ClusterStatus> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// `sluice_replica_last_progress_seconds{replica}` (Unix time; 0:
    /// never) and `sluice_replicas_down`.
    pub fn render(&self, out: &mut String) {
        let Some(s) = self.get() else { return };
        let name = "sluice_replica_last_progress_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} When each replica last published its progress (Unix seconds; 0: never). Alert on time() - this.\n# TYPE {name} gauge"
        );
        for m in &s.members {
            let v = m.last_progress_ms.map_or(0.0, |t| t as f64 / 1e3);
            let _ = writeln!(out, "{name}{{replica=\"{}\"}} {v}", m.replica);
        }
        let name = "sluice_replicas_down";
        let _ = writeln!(
            out,
            "# HELP {name} Replicas with no progress for cluster.stall_after (partition commits wait for them).\n# TYPE {name} gauge\n{name} {}",
            s.missing().len()
        );
    }
}

/// The `replicas:` line of `sluice status`.
pub fn render_line(s: &ClusterStatus, now_ms: i64) -> String {
    let mut parts = Vec::new();
    for m in &s.members {
        let me = if m.replica == s.replica {
            " (this one)"
        } else {
            ""
        };
        let what = match m.last_progress_ms {
            None => "DOWN: never published progress".to_string(),
            Some(t) if !m.up => format!(
                "DOWN or stalled: no progress for {}s",
                ((now_ms - t).max(0) / 1000)
            ),
            Some(t) => format!("up, progress {}s ago", ((now_ms - t).max(0) / 1000)),
        };
        parts.push(format!("{}{me} {what}", m.replica));
    }
    let missing = s.missing();
    let head = if missing.is_empty() {
        format!("{} of {} up", s.replicas, s.replicas)
    } else {
        format!(
            "replica(s) {} down or stalled; partition commits wait for them",
            missing
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    format!("{head} [{}]", parts.join("; "))
}
