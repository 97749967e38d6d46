//! The `pcluster:` records: what replica 0, the cluster's committer, has
//! announced for each leaf partition with the totals of every replica
//! (`[cluster]`, see `partition_commit::cluster`). Same record as
//! `pcommit:` ([`PartitionRecord`]), but `rows`/`files` hold the totals
//! the last commit announced (the replicas' own rows stay in their own
//! `pcommit:` records and are published). Written only after `_SUCCESS`
//! and the notifications, so a crash re-announces (at-least-once).

use super::{PartitionRecord, StateError, StateStore, decode, encode};

pub(super) const CLUSTER_PREFIX: &str = "pcluster:";

fn key(table: &str, partition: &str) -> String {
    format!("{CLUSTER_PREFIX}{table}\0{partition}")
}

impl StateStore {
    /// Every leaf the cluster's commits announced or failed to.
    pub fn cluster_partitions(&self) -> Result<Vec<PartitionRecord>, StateError> {
        let mut out = Vec::new();
        for kv in self.db.scan_prefix(CLUSTER_PREFIX) {
            let (k, v) = kv?;
            out.push(decode(&k, &v)?);
        }
        Ok(out)
    }

    fn cluster_record(&self, table: &str, partition: &str) -> Result<PartitionRecord, StateError> {
        let k = key(table, partition);
        Ok(match self.db.get(&k)? {
            Some(v) => decode(k.as_bytes(), &v)?,
            None => PartitionRecord {
                v: 1,
                table: table.into(),
                partition: partition.into(),
                ..Default::default()
            },
        })
    }

    /// A commit of a unit of `table` went out at `at_ms` announcing, per
    /// leaf, `(partition, rows, files)`. One batch, flushed.
    pub fn record_cluster_commit(
        &self,
        table: &str,
        leaves: &[(String, u64, u64)],
        at_ms: i64,
    ) -> Result<(), StateError> {
        let mut batch = sled::Batch::default();
        for (partition, rows, files) in leaves {
            let mut r = self.cluster_record(table, partition)?;
            if r.committed_before() {
                r.late_count += 1;
            }
            r.rows = r.rows.max(*rows);
            r.files = r.files.max(*files);
            r.committed_rows = r.committed_rows.max(*rows);
            r.committed_at_ms = Some(at_ms);
            r.failed_attempts = 0;
            r.first_failed_ms = None;
            r.last_error = None;
            batch.insert(key(table, partition).as_bytes(), encode(&r));
        }
        self.db.apply_batch(batch)?;
        self.db.flush()?;
        Ok(())
    }

    /// A failed commit attempt of a unit of `table` (not flushed).
    pub fn record_cluster_failure(
        &self,
        table: &str,
        partitions: &[String],
        at_ms: i64,
        error: &str,
    ) -> Result<(), StateError> {
        for partition in partitions {
            let mut r = self.cluster_record(table, partition)?;
            r.failed_attempts = r.failed_attempts.saturating_add(1);
            r.first_failed_ms.get_or_insert(at_ms);
            r.last_error = Some(error.to_string());
            self.db
                .insert(key(table, partition).as_bytes(), encode(&r))?;
        }
        Ok(())
    }

    /// Forgets the records of `(table, partition)`s.
    pub fn forget_cluster_partitions(
        &self,
        leaves: &[(String, String)],
    ) -> Result<usize, StateError> {
        let mut n = 0;
        for (table, partition) in leaves {
            if self.db.remove(key(table, partition))?.is_some() {
                n += 1;
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_commits_record_totals_and_count_late_ones() {
        let dir = tempfile::tempdir().unwrap();
        let s = StateStore::open(dir.path()).unwrap();
        let h = "dt=2026-11-20/hour=01";
        s.record_cluster_failure("t", &[h.into()], 5, "HTTP 500")
            .unwrap();
        let r = &s.cluster_partitions().unwrap()[0];
        assert_eq!((r.failed_attempts, r.committed_before()), (1, false));
        s.record_cluster_commit("t", &[(h.into(), 30, 3)], 10)
            .unwrap();
        s.record_cluster_commit("t", &[(h.into(), 35, 4)], 20)
            .unwrap();
        let r = &s.cluster_partitions().unwrap()[0];
        assert_eq!(
            (
                r.rows,
                r.files,
                r.committed_rows,
                r.late_count,
                r.failed_attempts
            ),
            (35, 4, 35, 1, 0)
        );
        assert!(s.partitions().unwrap().is_empty(), "apart from pcommit:");
        s.forget_cluster_partitions(&[("t".into(), h.into())])
            .unwrap();
        assert!(s.cluster_partitions().unwrap().is_empty());
    }
}
