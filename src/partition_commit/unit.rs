//! Commit units: partition commit commits a table's *time partition*, the
//! level a scheduler waits on, not each leaf partition. Pure: groups the
//! leaf `pcommit:` records (read by the caller) into units; no I/O.
//!
//! # The unit
//!
//! A leaf partition path is truncated after its last time-column segment
//! (the day column, or the hour column when configured): a table
//! partitioned by `(dt, hour, event_type, product)` has the leaf
//! `dt=2026-11-20/hour=13/event_type=click/product=x` in the unit
//! `dt=2026-11-20/hour=13`. When the time columns are the whole partition
//! (`(dt, hour)`, `(dt)`), the unit is the leaf itself. A unit holds every
//! tracked leaf under it; its rows and files are the sums over them.
//!
//! - It is complete when its period is (see [`super::rule`]); the period
//!   is the same for every leaf, as only the time columns decide it.
//! - It has unannounced rows when any leaf has; it was committed before
//!   (the next commit is late) when any leaf was.
//! - It waits while any leaf under it has an output file open (see
//!   [`open_units`]), also a leaf that has no record yet.
//! - A commit announces, and records on every leaf, the rows each leaf
//!   had: late rows into any leaf re-commit the whole unit.

use super::rule::{Period, PeriodOf};
use crate::checkpoint::PartitionRecord;
use crate::config::TimeColumns;
use crate::telemetry::status::PendingCommit;
use std::collections::{BTreeMap, BTreeSet};

/// The unit of leaf partition path `partition`: the path up to and
/// including its last time-column segment; `None` without one.
pub fn unit_of<'a>(columns: &TimeColumns, partition: &'a str) -> Option<&'a str> {
    let is_time =
        |k: &str| k == columns.day.0 || columns.hour.as_ref().is_some_and(|(h, _)| h.as_str() == k);
    let mut end = None;
    let mut pos = 0;
    for seg in partition.split('/') {
        let seg_end = pos + seg.len();
        if seg.split_once('=').is_some_and(|(k, _)| is_time(k)) {
            end = Some(seg_end);
        }
        pos = seg_end + 1;
    }
    partition.get(..end?)
}

/// A leaf's path below its unit (`""`: the leaf is the unit).
pub fn sub_path<'a>(unit: &str, leaf: &'a str) -> &'a str {
    leaf.strip_prefix(unit)
        .and_then(|rest| rest.strip_prefix('/'))
        .unwrap_or("")
}

/// One table's time partition and its tracked leaves (in path order).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unit {
    pub table: String,
    /// The time partition, e.g. `dt=2026-11-20/hour=13`.
    pub partition: String,
    pub period: Period,
    pub leaves: Vec<PartitionRecord>,
}

impl Unit {
    pub fn key(&self) -> (String, String) {
        (self.table.clone(), self.partition.clone())
    }

    pub fn rows(&self) -> u64 {
        self.leaves.iter().map(|l| l.rows).sum()
    }

    pub fn files(&self) -> u64 {
        self.leaves.iter().map(|l| l.files).sum()
    }

    /// Rows the commits so far announced (never above `rows`).
    pub fn committed_rows(&self) -> u64 {
        self.leaves
            .iter()
            .map(|l| l.committed_rows.min(l.rows))
            .sum()
    }

    /// Some leaf has rows no commit announced.
    pub fn unannounced(&self) -> bool {
        self.leaves.iter().any(|l| l.rows > l.committed_rows)
    }

    /// Committed before: the next commit is a late one.
    pub fn committed_before(&self) -> bool {
        self.leaves.iter().any(|l| l.committed_before())
    }

    /// When it was last committed.
    pub fn committed_at_ms(&self) -> Option<i64> {
        self.leaves.iter().filter_map(|l| l.committed_at_ms).max()
    }

    /// Re-commits after the first (the leaf that was there from the first
    /// commit has seen them all).
    pub fn late_count(&self) -> u64 {
        self.leaves.iter().map(|l| l.late_count).max().unwrap_or(0)
    }

    /// Failed attempts since the last commit.
    pub fn failed_attempts(&self) -> u32 {
        self.leaves
            .iter()
            .map(|l| l.failed_attempts)
            .max()
            .unwrap_or(0)
    }

    /// When the first of them failed.
    pub fn first_failed_ms(&self) -> Option<i64> {
        self.leaves.iter().filter_map(|l| l.first_failed_ms).min()
    }

    /// Why the last one failed.
    pub fn last_error(&self) -> Option<String> {
        self.leaves
            .iter()
            .filter(|l| l.last_error.is_some())
            .max_by_key(|l| l.failed_attempts)
            .and_then(|l| l.last_error.clone())
    }
}

/// The units of leaf records; leaves without a period (never committed)
/// are left out. Ordered by (table, unit).
pub fn group(records: Vec<PartitionRecord>, period_of: &PeriodOf) -> Vec<Unit> {
    let mut units: BTreeMap<(String, String), Unit> = BTreeMap::new();
    for r in records {
        let Some(period) = period_of.period_of_partition(&r.partition) else {
            continue;
        };
        let Some(unit) = unit_of(&period_of.columns, &r.partition) else {
            continue;
        };
        let key = (r.table.clone(), unit.to_string());
        units
            .entry(key)
            .or_insert_with(|| Unit {
                table: r.table.clone(),
                partition: unit.to_string(),
                period,
                leaves: Vec::new(),
            })
            .leaves
            .push(r);
    }
    let mut out: Vec<Unit> = units.into_values().collect();
    for u in &mut out {
        u.leaves.sort_by(|a, b| a.partition.cmp(&b.partition));
    }
    out
}

/// The (table, unit)s with an output file open under them.
pub fn open_units(
    open: &BTreeSet<(String, String)>,
    columns: &TimeColumns,
) -> BTreeSet<(String, String)> {
    open.iter()
        .filter_map(|(t, p)| unit_of(columns, p).map(|u| (t.clone(), u.to_string())))
        .collect()
}

/// The leaf records to forget: those of units fully announced and last
/// committed before `before_ms` (a unit goes as a whole, so a later late
/// commit never announces a unit with some leaves missing).
pub fn prunable(units: &[Unit], before_ms: i64) -> Vec<(String, String)> {
    units
        .iter()
        .filter(|u| !u.unannounced() && u.committed_at_ms().is_some_and(|t| t < before_ms))
        .flat_map(|u| {
            u.leaves
                .iter()
                .map(|l| (l.table.clone(), l.partition.clone()))
        })
        .collect()
}

/// Units whose last commit attempt failed, from their records (`sluice
/// status` of a stopped daemon), oldest failure first.
pub fn failing(records: Vec<PartitionRecord>, period_of: &PeriodOf) -> Vec<PendingCommit> {
    let mut out: Vec<PendingCommit> = group(records, period_of)
        .into_iter()
        .filter(|u| u.failed_attempts() > 0 && u.unannounced())
        .map(|u| PendingCommit {
            since_ms: u.first_failed_ms().unwrap_or(0),
            failed_attempts: u.failed_attempts(),
            next_attempt_ms: None,
            last_error: u.last_error(),
            table: u.table,
            partition: u.partition,
        })
        .collect();
    out.sort_by_key(|p| p.since_ms);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TimeFormat;

    fn period_of(hour: bool) -> PeriodOf {
        PeriodOf {
            columns: TimeColumns {
                day: ("dt".into(), TimeFormat::parse("%Y-%m-%d").unwrap()),
                hour: hour.then(|| ("hour".into(), TimeFormat::parse("%H").unwrap())),
            },
            utc_offset_s: 0,
        }
    }

    fn rec(table: &str, partition: &str, rows: u64, committed_rows: u64) -> PartitionRecord {
        PartitionRecord {
            v: 1,
            table: table.into(),
            partition: partition.into(),
            rows,
            files: 1,
            committed_rows,
            committed_at_ms: (committed_rows > 0).then_some(1_000),
            ..Default::default()
        }
    }

    const H13: &str = "dt=2026-11-20/hour=13";

    #[test]
    fn a_leaf_belongs_to_its_time_partition() {
        let c = period_of(true).columns;
        let leaf = "dt=2026-11-20/hour=13/event_type=click/product=x";
        assert_eq!(unit_of(&c, leaf), Some(H13));
        assert_eq!(unit_of(&c, H13), Some(H13));
        assert_eq!(unit_of(&c, "dt=2026-11-20"), Some("dt=2026-11-20"));
        assert_eq!(
            unit_of(&c, "dt=2026-11-20/event_type=click"),
            Some("dt=2026-11-20")
        );
        // Only the last time segment counts: columns before it stay.
        assert_eq!(
            unit_of(&c, "dept=ads/dt=2026-11-20/hour=02/x=1"),
            Some("dept=ads/dt=2026-11-20/hour=02")
        );
        // A column that merely starts like a time column is not one.
        assert_eq!(
            unit_of(&c, "dt=2026-11-20/hours=3/x=1"),
            Some("dt=2026-11-20")
        );
        assert_eq!(unit_of(&c, "event_type=click"), None);
        assert_eq!(unit_of(&c, ""), None);
        // Without an hour column the day is the unit.
        let day = period_of(false).columns;
        assert_eq!(
            unit_of(&day, "dt=2026-11-20/hour=13/event_type=click"),
            Some("dt=2026-11-20")
        );
        assert_eq!(
            sub_path(H13, &format!("{H13}/event_type=click")),
            "event_type=click"
        );
        assert_eq!(sub_path(H13, H13), "");
    }

    #[test]
    fn leaves_are_summed_into_their_unit() {
        let p = period_of(true);
        let records = vec![
            rec("t", &format!("{H13}/event_type=click"), 10, 10),
            rec("t", &format!("{H13}/event_type=view"), 5, 0),
            rec("t", "dt=2026-11-20/hour=14/event_type=view", 3, 0),
            rec("u", H13, 7, 0),
            // No period: never committed, left out.
            rec("t", "event_type=click", 9, 0),
        ];
        let units = group(records, &p);
        let got: Vec<_> = units
            .iter()
            .map(|u| {
                (
                    u.table.as_str(),
                    u.partition.as_str(),
                    u.leaves.len(),
                    u.rows(),
                    u.files(),
                    u.committed_rows(),
                    u.unannounced(),
                    u.committed_before(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("t", H13, 2, 15, 2, 10, true, true),
                ("t", "dt=2026-11-20/hour=14", 1, 3, 1, 0, true, false),
                ("u", H13, 1, 7, 1, 0, true, false),
            ]
        );
        assert_eq!(units[0].period, p.period_of_partition(H13).unwrap());
    }

    #[test]
    fn any_open_leaf_holds_its_unit() {
        let c = period_of(true).columns;
        let open: BTreeSet<(String, String)> = [
            ("t".to_string(), format!("{H13}/event_type=view")),
            ("t".to_string(), "event_type=x".to_string()),
            ("u".to_string(), "dt=2026-11-20/hour=14".to_string()),
        ]
        .into();
        let units = open_units(&open, &c);
        assert_eq!(
            units,
            [
                ("t".to_string(), H13.to_string()),
                ("u".to_string(), "dt=2026-11-20/hour=14".to_string()),
            ]
            .into()
        );
    }

    #[test]
    fn failures_and_pruning_go_by_unit() {
        let p = period_of(true);
        let mut a = rec("t", &format!("{H13}/event_type=click"), 10, 0);
        a.failed_attempts = 3;
        a.first_failed_ms = Some(50);
        a.last_error = Some("HTTP 500".into());
        let mut b = rec("t", &format!("{H13}/event_type=view"), 5, 0);
        b.failed_attempts = 2;
        b.first_failed_ms = Some(70);
        b.last_error = Some("HTTP 503".into());
        let done = rec("t", "dt=2026-11-20/hour=12/event_type=view", 5, 5);
        let f = failing(vec![a.clone(), b.clone(), done.clone()], &p);
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(
            (
                f[0].partition.as_str(),
                f[0].failed_attempts,
                f[0].since_ms,
                f[0].last_error.as_deref()
            ),
            (H13, 3, 50, Some("HTTP 500"))
        );
        // Hour 12 is fully announced; hour 13 is not, so none of its leaves go.
        let mut announced = rec("t", &format!("{H13}/event_type=click"), 10, 10);
        announced.committed_at_ms = Some(10);
        let units = group(vec![announced, b, done], &p);
        assert_eq!(
            prunable(&units, 2_000),
            [(
                "t".to_string(),
                "dt=2026-11-20/hour=12/event_type=view".to_string()
            )]
        );
        assert!(prunable(&units, 1_000).is_empty());
    }
}
