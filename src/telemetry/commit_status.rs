//! What `/status` and `sluice status` show of partition commit: how many
//! complete partitions wait for their commit, since when, and the oldest
//! failing ones with their last error (status codes and I/O errors only:
//! no URL query, no header, no secret).

use serde::{Deserialize, Serialize};

/// Partition commit, when configured.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionCommitStatus {
    /// Complete partitions whose commit is not recorded yet (from the
    /// state: those with a failed attempt).
    pub pending: u64,
    /// Of those, how many failed at least once.
    pub failing: u64,
    /// When the oldest pending partition started waiting.
    pub oldest_pending_since_ms: Option<i64>,
    /// Failed attempts since the daemon started (unknown from the state: 0).
    pub failed_attempts_total: u64,
    /// The oldest failing partitions (at most 20), oldest first.
    pub oldest_failing: Vec<PendingCommit>,
}

/// One partition whose commit failed and is retried.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingCommit {
    pub table: String,
    pub partition: String,
    pub failed_attempts: u32,
    pub since_ms: i64,
    /// When it is tried next (unknown from the state).
    pub next_attempt_ms: Option<i64>,
    pub last_error: Option<String>,
}
