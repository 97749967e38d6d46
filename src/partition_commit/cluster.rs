//! Partition commit across replicas (`[cluster]`). Every replica computes
//! what it would decide alone ([`PartitionCommitter::local_view`]: its
//! source watermark, its rows per leaf partition in visible files, the
//! units it holds an output file open under) and publishes it
//! (`cluster::progress`). Replica 0 alone commits
//! ([`PartitionCommitter::tick_cluster`]), from every replica's published
//! progress:
//!
//! - the watermark is the lowest of the replicas' (a replica that has
//!   published nothing, or for another number of replicas, holds every
//!   commit back; one that is down keeps its last watermark, so the units
//!   after it wait: its shard may have rows there);
//! - a unit waits while any replica holds an output file open under it;
//! - rows and files are the sums over the replicas, and what was announced
//!   is kept in replica 0's `pcluster:` records (`checkpoint::cluster_book`).
//!
//! So a unit is announced only once every replica has committed (made
//! visible) its rows of it and passed it; the announcement carries the
//! totals of all replicas; a crash between the notification and its record
//! announces it again (at-least-once, as for one daemon). If replica 0 is
//! down, commits wait for it.
//!
//! A replica's own watermark counts the source files of the other shards
//! it listed as done (the caller passes them): it caps the watermark at the
//! newest source partition seen in the whole listing, not only in its own
//! shard, so a replica that got no file of the newest hour does not hold
//! the hour before back.

use super::unit::{self, Unit};
use super::{CommitError, KEEP_MS, PartitionCommitter};
use crate::checkpoint::{PartitionRecord, StateStore};
use crate::cluster::progress::{LeafRows, Progress};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// What a replica publishes for partition commit.
#[derive(Debug, Default)]
pub struct LocalView {
    pub watermark_ms: Option<i64>,
    pub leaves: Vec<LeafRows>,
    pub open: Vec<(String, String)>,
}

impl PartitionCommitter {
    /// Makes this committer record its commits in the cluster's book
    /// (replica 0 of a cluster).
    pub fn use_cluster_book(&mut self) {
        self.cluster_book = true;
    }

    /// This replica's view (see the module doc); `source` as for
    /// [`PartitionCommitter::tick`], plus the other shards' files as done.
    /// Its own records are never committed locally: they are forgotten
    /// once their period ended more than the keep time ago.
    pub fn local_view<'a>(
        &mut self,
        state: &StateStore,
        source: impl IntoIterator<Item = (&'a str, bool)>,
        open: &BTreeSet<(String, String)>,
        now_ms: i64,
    ) -> Result<LocalView, CommitError> {
        let watermark_ms = self.watermark(source, now_ms);
        let records = state.partitions()?;
        if now_ms - self.last_prune_ms > 3_600_000 && !self.cluster_book {
            self.last_prune_ms = now_ms;
            let old: Vec<(String, String)> = unit::group(records.clone(), &self.period_of)
                .iter()
                .filter(|u| u.period.end_ms < now_ms - KEEP_MS)
                .flat_map(|u| u.leaves.iter())
                .map(|l| (l.table.clone(), l.partition.clone()))
                .collect();
            state.forget_partitions(&old)?;
        }
        Ok(LocalView {
            watermark_ms,
            leaves: records
                .into_iter()
                .map(|r| LeafRows {
                    table: r.table,
                    partition: r.partition,
                    rows: r.rows,
                    files: r.files,
                })
                .collect(),
            open: unit::open_units(open, &self.period_of.columns)
                .into_iter()
                .collect(),
        })
    }

    /// Replica 0: records finished jobs, then commits every unit complete
    /// across `peers` (every replica's progress, `None` where missing).
    pub fn tick_cluster(
        &mut self,
        state: &StateStore,
        peers: &[Option<Progress>],
        now_ms: i64,
    ) -> Result<(), CommitError> {
        self.record_completions(state, now_ms)?;
        let book: HashMap<(String, String), PartitionRecord> = state
            .cluster_partitions()?
            .into_iter()
            .map(|r| ((r.table.clone(), r.partition.clone()), r))
            .collect();
        let (units, watermark, open) = merge(peers, &book, &self.period_of);
        self.schedule(&units, watermark, &open, now_ms)?;
        if now_ms - self.last_prune_ms > 3_600_000 {
            self.last_prune_ms = now_ms;
            state.forget_cluster_partitions(&unit::prunable(&units, now_ms - KEEP_MS))?;
        }
        Ok(())
    }
}

type Merged = (Vec<Unit>, Option<i64>, BTreeSet<(String, String)>);

/// The units of every replica's leaves (rows and files summed, what was
/// announced from `book`), the lowest watermark (`None` while any replica
/// is missing or has none), and every unit some replica holds open. Pure.
pub fn merge(
    peers: &[Option<Progress>],
    book: &HashMap<(String, String), PartitionRecord>,
    period_of: &super::rule::PeriodOf,
) -> Merged {
    let mut watermark = Some(i64::MAX);
    let mut open = BTreeSet::new();
    let mut sums: BTreeMap<(String, String), (u64, u64)> = BTreeMap::new();
    for p in peers {
        let Some(p) = p else {
            watermark = None;
            continue;
        };
        watermark = match (watermark, p.watermark_ms) {
            (Some(a), Some(b)) => Some(a.min(b)),
            _ => None,
        };
        open.extend(p.open.iter().cloned());
        for l in &p.leaves {
            let e = sums
                .entry((l.table.clone(), l.partition.clone()))
                .or_default();
            e.0 += l.rows;
            e.1 += l.files;
        }
    }
    if peers.is_empty() {
        watermark = None;
    }
    let records: Vec<PartitionRecord> = sums
        .into_iter()
        .map(|((table, partition), (rows, files))| {
            let b = book.get(&(table.clone(), partition.clone()));
            PartitionRecord {
                v: 1,
                rows,
                files,
                committed_rows: b.map_or(0, |b| b.committed_rows),
                committed_at_ms: b.and_then(|b| b.committed_at_ms),
                late_count: b.map_or(0, |b| b.late_count),
                failed_attempts: b.map_or(0, |b| b.failed_attempts),
                first_failed_ms: b.and_then(|b| b.first_failed_ms),
                last_error: b.and_then(|b| b.last_error.clone()),
                table,
                partition,
            }
        })
        .collect();
    (unit::group(records, period_of), watermark, open)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{TimeColumns, TimeFormat};

    fn period_of() -> super::super::rule::PeriodOf {
        super::super::rule::PeriodOf {
            columns: TimeColumns {
                day: ("dt".into(), TimeFormat::parse("%Y-%m-%d").unwrap()),
                hour: Some(("hour".into(), TimeFormat::parse("%H").unwrap())),
            },
            utc_offset_s: 0,
        }
    }

    fn progress(replica: u32, wm: Option<i64>, rows: u64, open: bool) -> Option<Progress> {
        Some(Progress {
            format: 1,
            replica,
            replicas: 3,
            watermark_ms: wm,
            leaves: vec![LeafRows {
                table: "t".into(),
                partition: "dt=2026-11-20/hour=01/app=a".into(),
                rows,
                files: 1,
            }],
            open: if open {
                vec![("t".into(), "dt=2026-11-20/hour=01".into())]
            } else {
                vec![]
            },
            ..Default::default()
        })
    }

    #[test]
    fn units_sum_every_replica_and_wait_for_the_lowest_watermark() {
        let book = HashMap::new();
        let (units, wm, open) = merge(
            &[
                progress(0, Some(9), 10, false),
                progress(1, Some(5), 20, true),
                progress(2, Some(7), 30, false),
            ],
            &book,
            &period_of(),
        );
        assert_eq!(wm, Some(5));
        assert_eq!(units.len(), 1);
        assert_eq!((units[0].rows(), units[0].files()), (60, 3));
        assert_eq!(units[0].partition, "dt=2026-11-20/hour=01");
        assert!(open.contains(&("t".to_string(), "dt=2026-11-20/hour=01".to_string())));
        // A replica missing, or without a watermark: nothing is complete.
        let (_, wm, _) = merge(
            &[
                progress(0, Some(9), 10, false),
                None,
                progress(2, Some(7), 1, false),
            ],
            &book,
            &period_of(),
        );
        assert_eq!(wm, None);
        let (_, wm, _) = merge(
            &[progress(0, Some(9), 10, false), progress(1, None, 1, false)],
            &book,
            &period_of(),
        );
        assert_eq!(wm, None);
        // What the book says was announced.
        let mut book = HashMap::new();
        book.insert(
            ("t".to_string(), "dt=2026-11-20/hour=01/app=a".to_string()),
            PartitionRecord {
                committed_rows: 60,
                committed_at_ms: Some(1),
                ..Default::default()
            },
        );
        let (units, _, _) = merge(
            &[
                progress(0, Some(9), 10, false),
                progress(1, Some(9), 50, false),
            ],
            &book,
            &period_of(),
        );
        assert!(!units[0].unannounced());
        let (units, _, _) = merge(
            &[
                progress(0, Some(9), 11, false),
                progress(1, Some(9), 50, false),
            ],
            &book,
            &period_of(),
        );
        assert!(units[0].unannounced() && units[0].committed_before());
    }
}
