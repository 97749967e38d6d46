//! The progress a replica publishes into the sink store, and reading every
//! replica's: `<sink>/_sluice/replicas/<i>.json`, one small JSON object per
//! replica, replaced whole by one put (atomic on an object store; on a
//! local sink `object_store` writes a temporary file and renames it), so a
//! reader sees the old object or the new one, never a mix.
//!
//! A replica publishes after the checkpoints that commit (only then are the
//! rows it counts visible) and at least every `stall_after / 3` while idle
//! (its heartbeat). What it says holds at the moment it says it: every
//! source file of its shard in a partition that ends before `watermark_ms`
//! is done, and its rows are in `leaves` (visible files), unless the unit
//! is listed in `open` (an output file still open under it).

use crate::config::Cluster;
use crate::telemetry::cluster_status::{ClusterStatus, ReplicaStatus};
use futures::StreamExt;
use object_store::path::Path as ObjPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::runtime::Handle;

/// The folder (under the sink root) of the progress objects.
pub const PROGRESS_DIR: &str = "_sluice/replicas";
/// The format of a progress object.
pub const PROGRESS_FORMAT: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum ProgressError {
    #[error("cannot {op} {path}: {source}")]
    Store {
        op: &'static str,
        path: String,
        source: object_store::Error,
    },
    #[error("{path}: not a progress object: {message}")]
    Format { path: String, message: String },
}

/// Rows a replica has committed into one leaf partition.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeafRows {
    pub table: String,
    pub partition: String,
    pub rows: u64,
    pub files: u64,
}

/// One replica's published progress.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    pub format: u32,
    pub replica: u32,
    pub replicas: u32,
    /// The replica's state id (its output file names carry it).
    pub state_id: String,
    /// When it was published (the replica's clock).
    pub published_ms: i64,
    /// The replica's source watermark for partition commit (`None`: none
    /// yet, or partition commit is off).
    pub watermark_ms: Option<i64>,
    /// Rows and files per leaf partition, in visible files.
    pub leaves: Vec<LeafRows>,
    /// (table, unit) with an output file open under them.
    pub open: Vec<(String, String)>,
}

/// The object of replica `i`.
pub fn path_of(replica: u32) -> ObjPath {
    ObjPath::from(format!("{PROGRESS_DIR}/{replica}.json"))
}

/// Writes `p` as replica `p.replica`'s progress.
pub async fn publish(store: &Arc<dyn ObjectStore>, p: &Progress) -> Result<(), ProgressError> {
    let path = path_of(p.replica);
    let body = serde_json::to_vec(p).map_err(|e| ProgressError::Format {
        path: path.to_string(),
        message: e.to_string(),
    })?;
    store
        .put(&path, PutPayload::from(body))
        .await
        .map_err(|source| ProgressError::Store {
            op: "write",
            path: path.to_string(),
            source,
        })?;
    Ok(())
}

/// Reads replica `i`'s progress; `None` when it has published none.
pub async fn read(
    store: &Arc<dyn ObjectStore>,
    replica: u32,
) -> Result<Option<Progress>, ProgressError> {
    let path = path_of(replica);
    let bytes = match store.get(&path).await {
        Ok(r) => r.bytes().await,
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(e) => Err(e),
    }
    .map_err(|source| ProgressError::Store {
        op: "read",
        path: path.to_string(),
        source,
    })?;
    let p: Progress = serde_json::from_slice(&bytes).map_err(|e| ProgressError::Format {
        path: path.to_string(),
        message: e.to_string(),
    })?;
    Ok(Some(p))
}

/// Every replica's progress, in index order: `None` for one that has
/// published nothing, or an object written for another number of replicas
/// (before a reshard) or a newer format.
pub async fn read_all(
    store: &Arc<dyn ObjectStore>,
    replicas: u32,
) -> Result<Vec<Option<Progress>>, ProgressError> {
    let reads = futures::stream::iter((0..replicas).map(|i| read(store, i)))
        .buffered(8)
        .collect::<Vec<_>>()
        .await;
    let mut out = Vec::with_capacity(reads.len());
    for r in reads {
        let p = match r {
            Ok(p) => p,
            // An object that does not parse counts as missing (it holds
            // commits back, and shows as down): never as progress.
            Err(e @ ProgressError::Format { .. }) => {
                tracing::warn!(error = %e, "unreadable replica progress; treated as missing");
                None
            }
            Err(e) => return Err(e),
        };
        out.push(p.filter(|p| p.replicas == replicas && p.format <= PROGRESS_FORMAT));
    }
    Ok(out)
}

/// The status of every replica from their progress.
pub fn status_of(cluster: &Cluster, all: &[Option<Progress>], now_ms: i64) -> ClusterStatus {
    let stall_ms = cluster.stall_after.as_millis() as i64;
    ClusterStatus {
        replica: cluster.replica,
        replicas: cluster.replicas,
        stall_after_seconds: cluster.stall_after.as_secs(),
        members: (0..cluster.replicas)
            .map(|i| {
                let p = all.get(i as usize).and_then(Option::as_ref);
                ReplicaStatus {
                    replica: i,
                    last_progress_ms: p.map(|p| p.published_ms),
                    watermark_ms: p.and_then(|p| p.watermark_ms),
                    up: p.is_some_and(|p| now_ms - p.published_ms <= stall_ms),
                }
            })
            .collect(),
    }
}

/// A replica's link to the others: publishes its progress (throttled,
/// skipping unchanged content between heartbeats) and reads theirs.
pub struct Link {
    pub cluster: Cluster,
    store: Arc<dyn ObjectStore>,
    handle: Handle,
    state_id: String,
    /// What was last published (without its time) and when.
    last: Option<(Progress, Instant)>,
    last_read: Option<Instant>,
    /// The others' progress as last read.
    pub peers: Vec<Option<Progress>>,
    warned: bool,
}

impl Link {
    pub fn new(
        cluster: Cluster,
        store: Arc<dyn ObjectStore>,
        handle: Handle,
        state_id: String,
    ) -> Link {
        Link {
            cluster,
            store,
            handle,
            state_id,
            last: None,
            last_read: None,
            peers: Vec::new(),
            warned: false,
        }
    }

    fn heartbeat(&self) -> Duration {
        (self.cluster.stall_after / 3).max(Duration::from_millis(200))
    }

    /// Publishes this replica's progress when it changed, or when the
    /// heartbeat is due. Errors are logged (the next call tries again).
    pub fn publish(
        &mut self,
        watermark_ms: Option<i64>,
        leaves: Vec<LeafRows>,
        open: Vec<(String, String)>,
        now_ms: i64,
    ) {
        let mut p = Progress {
            format: PROGRESS_FORMAT,
            replica: self.cluster.replica,
            replicas: self.cluster.replicas,
            state_id: self.state_id.clone(),
            published_ms: 0,
            watermark_ms,
            leaves,
            open,
        };
        if let Some((last, at)) = &self.last
            && *last == p
            && at.elapsed() < self.heartbeat()
        {
            return;
        }
        let stripped = p.clone();
        p.published_ms = now_ms;
        match self.handle.block_on(publish(&self.store, &p)) {
            Ok(()) => {
                self.last = Some((stripped, Instant::now()));
                self.warned = false;
            }
            Err(e) => {
                if !self.warned {
                    tracing::warn!(error = %e, "cannot publish this replica's progress; retried");
                    self.warned = true;
                }
            }
        }
    }

    /// Reads every replica's progress and returns the status (`None` when
    /// reading failed, or not due). Replica 0, the committer, reads at most
    /// once a second; the others, which only show it, once a heartbeat, so
    /// the cluster makes about N reads a second rather than N x N.
    pub fn refresh(&mut self, now_ms: i64, force: bool) -> Option<ClusterStatus> {
        let every = if self.cluster.replica == 0 {
            Duration::from_secs(1)
        } else {
            self.heartbeat().max(Duration::from_secs(1))
        };
        if !force && self.last_read.is_some_and(|t| t.elapsed() < every) {
            return None;
        }
        self.last_read = Some(Instant::now());
        match self
            .handle
            .block_on(read_all(&self.store, self.cluster.replicas))
        {
            Ok(all) => {
                self.peers = all;
                Some(status_of(&self.cluster, &self.peers, now_ms))
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the replicas' progress; retried");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_round_trips_and_other_replica_counts_are_ignored() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn ObjectStore> =
            Arc::new(object_store::local::LocalFileSystem::new_with_prefix(dir.path()).unwrap());
        let p = Progress {
            format: 1,
            replica: 1,
            replicas: 3,
            state_id: "x".into(),
            published_ms: 10,
            watermark_ms: Some(5),
            leaves: vec![LeafRows {
                table: "t".into(),
                partition: "dt=2026-11-20/hour=01".into(),
                rows: 3,
                files: 1,
            }],
            open: vec![],
        };
        rt.block_on(publish(&store, &p)).unwrap();
        assert!(dir.path().join("_sluice/replicas/1.json").is_file());
        let all = rt.block_on(read_all(&store, 3)).unwrap();
        assert_eq!(all, vec![None, Some(p.clone()), None]);
        // After a reshard to 2, the object written for 3 does not count.
        assert_eq!(rt.block_on(read_all(&store, 2)).unwrap(), vec![None, None]);
        let cluster = Cluster {
            replicas: 3,
            replica: 0,
            stall_after: Duration::from_secs(1),
        };
        let s = status_of(&cluster, &all, 900);
        assert_eq!(s.missing(), vec![0, 2]);
        let s = status_of(&cluster, &all, 2000);
        assert_eq!(s.missing(), vec![0, 1, 2], "stale progress is down");
    }
}
