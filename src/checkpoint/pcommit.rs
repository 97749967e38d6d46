//! The `pcommit:` records of partition commit: one [`PartitionRecord`] per
//! leaf output partition (the full Hive path, e.g.
//! `dt=2026-11-20/hour=13/event_type=click`). Rows and files grow in the
//! prepare transaction (see [`StateStore::prepare`]); this file owns the
//! reads and the updates partition commit makes after a commit attempt.
//!
//! Partition commit commits a *unit* (the time partition, see
//! `partition_commit::unit`) made of one or more leaves: a commit or a
//! failed attempt updates every leaf record of the unit, the commit in one
//! transaction, so the leaves of a unit never disagree about whether it
//! was announced.

use super::{StateError, StateStore, decode, encode};
use serde::{Deserialize, Serialize};
use sled::transaction::{ConflictableTransactionError, TransactionError};

/// What partition commit knows of one output partition (`pcommit:` keys).
/// `rows`/`files` grow in the prepare transaction of every epoch that
/// stages files for it; `committed_rows` is `rows` as of the last commit
/// whose `_SUCCESS` and notifications went out. `rows > committed_rows`
/// means rows landed that no commit has announced yet.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionRecord {
    pub v: u32,
    pub table: String,
    pub partition: String,
    pub rows: u64,
    pub files: u64,
    #[serde(default)]
    pub committed_rows: u64,
    /// When it was last committed; `None`: never.
    #[serde(default)]
    pub committed_at_ms: Option<i64>,
    /// Commits after the first (late data re-committed the partition).
    #[serde(default)]
    pub late_count: u64,
    /// Failed commit attempts since the last recorded commit (the
    /// partition stays pending and is retried); cleared by a commit.
    #[serde(default)]
    pub failed_attempts: u32,
    /// When the first of those attempts failed.
    #[serde(default)]
    pub first_failed_ms: Option<i64>,
    /// Why the last one failed (no secrets: status codes and I/O errors).
    #[serde(default)]
    pub last_error: Option<String>,
}

impl PartitionRecord {
    /// Committed before: the next commit is a late one.
    pub fn committed_before(&self) -> bool {
        self.committed_at_ms.is_some()
    }
}

pub(super) const PCOMMIT_PREFIX: &str = "pcommit:";

pub(super) fn pcommit_key(table: &str, partition: &str) -> String {
    format!("{PCOMMIT_PREFIX}{table}\0{partition}")
}

impl StateStore {
    /// Every output partition partition commit tracks (leaves, in key order).
    pub fn partitions(&self) -> Result<Vec<PartitionRecord>, StateError> {
        let mut out = Vec::new();
        for kv in self.db.scan_prefix(PCOMMIT_PREFIX) {
            let (k, v) = kv?;
            out.push(decode(&k, &v)?);
        }
        Ok(out)
    }

    /// Records that a commit of a unit of `table` went out at `at_ms`,
    /// announcing `rows` rows for each of its leaf partitions `(partition,
    /// rows)`: after `_SUCCESS` and the notifications, so a crash before
    /// this re-sends them (at-least-once). Every leaf in one transaction,
    /// flushed. A leaf committed before counts a late re-commit.
    pub fn record_partition_commit(
        &self,
        table: &str,
        leaves: &[(String, u64)],
        at_ms: i64,
    ) -> Result<(), StateError> {
        let keys: Vec<(String, u64)> = leaves
            .iter()
            .map(|(p, rows)| (pcommit_key(table, p), *rows))
            .collect();
        let res: Result<(), TransactionError<()>> = self.db.transaction(|tx| {
            for (key, rows) in &keys {
                let Some(v) = tx.get(key.as_bytes())? else {
                    continue;
                };
                let Ok(mut r) = serde_json::from_slice::<PartitionRecord>(&v) else {
                    continue;
                };
                if r.committed_before() {
                    r.late_count += 1;
                }
                r.committed_rows = r.committed_rows.max(*rows);
                r.committed_at_ms = Some(at_ms);
                r.failed_attempts = 0;
                r.first_failed_ms = None;
                r.last_error = None;
                tx.insert(key.as_bytes(), encode(&r))?;
            }
            Ok::<(), ConflictableTransactionError<()>>(())
        });
        match res {
            Ok(()) => {}
            Err(TransactionError::Storage(e)) => return Err(e.into()),
            Err(TransactionError::Abort(())) => super::unreachable_abort(),
        }
        self.db.flush()?;
        Ok(())
    }

    /// Records a failed commit attempt of a unit of `table` (its leaf
    /// `partitions`) at `at_ms`: nothing is announced, the unit stays
    /// pending. Returns the most failed attempts any leaf counts since its
    /// last commit. Not flushed: losing it in a crash only loses the count
    /// (the unit is retried anyway).
    pub fn record_partition_failure(
        &self,
        table: &str,
        partitions: &[String],
        at_ms: i64,
        error: &str,
    ) -> Result<u32, StateError> {
        let mut most = 0;
        for partition in partitions {
            let key = pcommit_key(table, partition);
            let Some(v) = self.db.get(&key)? else {
                continue;
            };
            let mut r: PartitionRecord = decode(key.as_bytes(), &v)?;
            r.failed_attempts = r.failed_attempts.saturating_add(1);
            r.first_failed_ms.get_or_insert(at_ms);
            r.last_error = Some(error.to_string());
            self.db.insert(key.as_bytes(), encode(&r))?;
            most = most.max(r.failed_attempts);
        }
        Ok(most)
    }

    /// Forgets the records of `(table, partition)`s (fully announced units
    /// past their keep time, see `partition_commit::unit::prunable`).
    pub fn forget_partitions(&self, leaves: &[(String, String)]) -> Result<usize, StateError> {
        let mut n = 0;
        for (table, partition) in leaves {
            if self.db.remove(pcommit_key(table, partition))?.is_some() {
                n += 1;
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests_support::reopen;
    use super::super::{Prepare, StagedFile};
    use super::*;

    fn f(table: &str, partition: &str, rows: u64) -> StagedFile {
        StagedFile {
            table: table.into(),
            partition: partition.into(),
            staged: "s".into(),
            final_path: "f".into(),
            rows,
            bytes: 1,
            upload: None,
        }
    }

    fn track(leaves: &[&str]) -> std::collections::BTreeSet<(String, String)> {
        leaves
            .iter()
            .map(|p| ("t".to_string(), p.to_string()))
            .collect()
    }

    #[test]
    fn partition_rows_are_counted_at_prepare_and_commits_recorded_after() {
        let dir = tempfile::tempdir().unwrap();
        let s = StateStore::open(dir.path()).unwrap();
        let h0 = "dt=2026-11-20/hour=00";
        s.prepare(&Prepare {
            epoch: 1,
            files: vec![f("t", h0, 3), f("t", h0, 4), f("u", "dept=x", 9)],
            track_partitions: track(&[h0]),
            ..Default::default()
        })
        .unwrap();
        // Not tracked when partition commit is off.
        s.prepare(&Prepare {
            epoch: 2,
            files: vec![f("t", h0, 100)],
            ..Default::default()
        })
        .unwrap();
        let p = s.partitions().unwrap();
        assert_eq!(p.len(), 1, "only the tracked partitions: {p:?}");
        assert_eq!((p[0].rows, p[0].files, p[0].committed_rows), (7, 2, 0));
        assert!(!p[0].committed_before());
        // Failed attempts: still unannounced, counted, and kept across a reopen.
        let leaf = [h0.to_string()];
        assert_eq!(
            s.record_partition_failure("t", &leaf, 500, "HTTP 500")
                .unwrap(),
            1
        );
        assert_eq!(
            s.record_partition_failure("t", &leaf, 900, "HTTP 503")
                .unwrap(),
            2
        );
        // A crash before the commit is recorded: still unannounced after a reopen.
        drop(s);
        let s = reopen(dir.path());
        let p = &s.partitions().unwrap()[0];
        assert_eq!(p.committed_rows, 0);
        assert_eq!(
            (
                p.failed_attempts,
                p.first_failed_ms,
                p.last_error.as_deref()
            ),
            (2, Some(500), Some("HTTP 503"))
        );
        s.record_partition_commit("t", &[(h0.to_string(), 7)], 1000)
            .unwrap();
        let p = &s.partitions().unwrap()[0];
        assert_eq!((p.failed_attempts, p.first_failed_ms), (0, None));
        // Late rows, then the late commit.
        s.prepare(&Prepare {
            epoch: 3,
            files: vec![f("t", h0, 2)],
            track_partitions: track(&[h0]),
            ..Default::default()
        })
        .unwrap();
        let p = &s.partitions().unwrap()[0];
        assert_eq!((p.rows, p.files, p.committed_rows), (9, 3, 7));
        assert!(p.committed_before());
        s.record_partition_commit("t", &[(h0.to_string(), 9)], 2000)
            .unwrap();
        let p = &s.partitions().unwrap()[0];
        assert_eq!(
            (p.committed_rows, p.committed_at_ms, p.late_count),
            (9, Some(2000), 1)
        );
        let key = [("t".to_string(), h0.to_string())];
        assert_eq!(s.forget_partitions(&key).unwrap(), 1);
        assert_eq!(s.forget_partitions(&key).unwrap(), 0);
        assert!(s.partitions().unwrap().is_empty());
    }

    #[test]
    fn a_unit_commit_updates_every_leaf_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let s = StateStore::open(dir.path()).unwrap();
        let (click, view) = (
            "dt=2026-11-20/hour=13/event_type=click",
            "dt=2026-11-20/hour=13/event_type=view",
        );
        s.prepare(&Prepare {
            epoch: 1,
            files: vec![f("t", click, 3), f("t", view, 4), f("t", view, 1)],
            track_partitions: track(&[click, view]),
            ..Default::default()
        })
        .unwrap();
        let leaves = [click.to_string(), view.to_string()];
        assert_eq!(
            s.record_partition_failure("t", &leaves, 10, "HTTP 500")
                .unwrap(),
            1
        );
        assert!(
            s.partitions()
                .unwrap()
                .iter()
                .all(|r| r.failed_attempts == 1 && r.first_failed_ms == Some(10))
        );
        // A leaf with no record (never tracked) is skipped, not created.
        let announced = [
            (click.to_string(), 3),
            (view.to_string(), 5),
            ("dt=2026-11-20/hour=13/event_type=x".to_string(), 1),
        ];
        s.record_partition_commit("t", &announced, 100).unwrap();
        drop(s);
        let s = reopen(dir.path());
        let got: Vec<_> = s
            .partitions()
            .unwrap()
            .into_iter()
            .map(|r| {
                (
                    r.partition,
                    r.committed_rows,
                    r.committed_at_ms,
                    r.failed_attempts,
                    r.late_count,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (click.to_string(), 3, Some(100), 0, 0),
                (view.to_string(), 5, Some(100), 0, 0),
            ]
        );
        // Late rows into one leaf; the re-commit updates both (late for both).
        s.prepare(&Prepare {
            epoch: 2,
            files: vec![f("t", click, 2)],
            track_partitions: track(&[click]),
            ..Default::default()
        })
        .unwrap();
        let announced = [(click.to_string(), 5), (view.to_string(), 5)];
        s.record_partition_commit("t", &announced, 200).unwrap();
        let p = s.partitions().unwrap();
        assert!(
            p.iter()
                .all(|r| r.committed_rows == r.rows && r.committed_at_ms == Some(200)),
            "{p:?}"
        );
        assert_eq!(p.iter().map(|r| r.late_count).collect::<Vec<_>>(), [1, 1]);
    }
}
