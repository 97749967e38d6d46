//! The bookkeeping of one epoch, pure: how the file records move when the
//! writers report a checkpoint (offsets advance, files finish), and which
//! records the epoch prunes. The coordinator applies these to its copy of
//! the records and puts the result in a [`super::Prepare`]; nothing here
//! touches the store, so every rule is tested below without one.

use super::{FileRecord, FileStatus};
use std::collections::{BTreeMap, BTreeSet};

/// Moves each split's offset to the end row the writers report (never
/// back) and marks its file dirty. `reports`: (file, split index, end row).
pub fn advance<'a>(
    files: &mut BTreeMap<String, FileRecord>,
    dirty: &mut BTreeSet<String>,
    reports: impl IntoIterator<Item = (&'a str, usize, u64)>,
) {
    for (file, index, end) in reports {
        if let Some(s) = files.get_mut(file).and_then(|r| r.splits.get_mut(index)) {
            s.offset = end.max(s.offset);
            dirty.insert(file.to_string());
        }
    }
}

/// Marks dirty active files whose every split is fully committed as done
/// (except those `hold` names: a file waiting to be re-opened). Returns
/// them.
pub fn finish(
    files: &mut BTreeMap<String, FileRecord>,
    dirty: &BTreeSet<String>,
    hold: impl Fn(&str) -> bool,
) -> Vec<String> {
    let mut done = Vec::new();
    for path in dirty {
        if hold(path) {
            continue;
        }
        if let Some(r) = files.get_mut(path)
            && r.status == FileStatus::Active
            && r.splits.iter().all(|s| s.offset >= s.rows)
        {
            r.status = FileStatus::Done;
            done.push(path.clone());
        }
    }
    done
}

/// What an epoch records about discovery's horizon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pruning {
    /// The highest mtime taken, never past `now`.
    pub watermark_ms: Option<i64>,
    /// Done records older than `watermark - lookback`, dropped.
    pub removals: Vec<String>,
    /// The mtime below which records are pruned, now or before;
    /// `i64::MIN` when nothing was pruned yet (always recorded, so a state
    /// written from now on is never taken for one that pruned unrecorded).
    pub pruned_below_ms: Option<i64>,
}

/// Which records to prune. `keep_all` (`older_than_lookback = "take"`)
/// keeps every record: a file not in them is then always new.
pub fn prune(
    files: &BTreeMap<String, FileRecord>,
    keep_all: bool,
    lookback_ms: i64,
    now_ms: i64,
    pruned_before: Option<i64>,
) -> Pruning {
    // Never past the present: a file stamped in the future must not push
    // the floor above the files landing now.
    let watermark = files
        .values()
        .map(|r| r.mtime_ms)
        .max()
        .map(|w| w.min(now_ms));
    let floor = watermark.map(|w| w - lookback_ms);
    let removals: Vec<String> = if keep_all {
        Vec::new()
    } else {
        files
            .iter()
            .filter(|(_, r)| r.status == FileStatus::Done && floor.is_some_and(|f| r.mtime_ms < f))
            .map(|(p, _)| p.clone())
            .collect()
    };
    let pruned_below = removals
        .iter()
        .filter_map(|p| files.get(p))
        .map(|r| r.mtime_ms + 1)
        .max()
        .max(pruned_before)
        .or(Some(i64::MIN));
    Pruning {
        watermark_ms: watermark,
        removals,
        pruned_below_ms: pruned_below,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::{STATE_VERSION, SplitRecord};

    fn rec(mtime: i64, splits: &[(u64, u64)], status: FileStatus) -> FileRecord {
        FileRecord {
            v: STATE_VERSION,
            size: 1,
            mtime_ms: mtime,
            status,
            splits: splits
                .iter()
                .map(|&(rows, offset)| SplitRecord {
                    row_groups: (0, 1),
                    rows,
                    offset,
                })
                .collect(),
            changed_reported: false,
        }
    }

    #[test]
    fn offsets_only_move_forward_and_finish_whole_files() {
        let mut files = BTreeMap::new();
        files.insert(
            "a".to_string(),
            rec(10, &[(100, 0), (50, 0)], FileStatus::Active),
        );
        files.insert("b".to_string(), rec(20, &[(10, 5)], FileStatus::Active));
        let mut dirty = BTreeSet::new();
        advance(
            &mut files,
            &mut dirty,
            [
                ("a", 0, 100),
                ("a", 1, 20),
                ("b", 0, 3),
                ("gone", 0, 9),
                ("a", 7, 1),
            ],
        );
        assert_eq!(files["a"].splits[0].offset, 100);
        assert_eq!(files["a"].splits[1].offset, 20);
        assert_eq!(files["b"].splits[0].offset, 5, "never back");
        assert_eq!(dirty.iter().collect::<Vec<_>>(), ["a", "b"]);
        assert!(finish(&mut files, &dirty, |_| false).is_empty());

        advance(&mut files, &mut dirty, [("a", 1, 50), ("b", 0, 10)]);
        assert_eq!(finish(&mut files, &dirty, |p| p == "b"), ["a"]);
        assert_eq!(files["a"].status, FileStatus::Done);
        assert_eq!(files["b"].status, FileStatus::Active, "held");
    }

    #[test]
    fn pruning_drops_done_records_below_the_floor_and_remembers_it() {
        let mut files = BTreeMap::new();
        files.insert("old".to_string(), rec(100, &[(1, 1)], FileStatus::Done));
        files.insert(
            "old-active".to_string(),
            rec(100, &[(1, 0)], FileStatus::Active),
        );
        files.insert("new".to_string(), rec(1_000, &[(1, 1)], FileStatus::Done));
        let p = prune(&files, false, 500, 10_000, None);
        assert_eq!(p.watermark_ms, Some(1_000));
        assert_eq!(p.removals, ["old"]);
        assert_eq!(p.pruned_below_ms, Some(101));

        // `take` keeps everything, and the horizon stays what it was.
        let p = prune(&files, true, 500, 10_000, Some(50));
        assert!(p.removals.is_empty());
        assert_eq!(p.pruned_below_ms, Some(50));
        let p = prune(&files, true, 500, 10_000, None);
        assert_eq!(p.pruned_below_ms, Some(i64::MIN));
    }

    #[test]
    fn the_watermark_never_passes_the_present() {
        let mut files = BTreeMap::new();
        files.insert(
            "future".to_string(),
            rec(99_999, &[(1, 1)], FileStatus::Done),
        );
        files.insert("now".to_string(), rec(900, &[(1, 1)], FileStatus::Done));
        let p = prune(&files, false, 500, 1_000, None);
        assert_eq!(p.watermark_ms, Some(1_000));
        assert!(p.removals.is_empty(), "floor 500 is below both");
    }
}
