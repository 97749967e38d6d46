//! Files below the discovery floor: which of them were skipped (to be
//! reported once each) and which were taken and have had their records
//! pruned (silent). Pure bookkeeping, in memory; a restart starts afresh.
//!
//! A file found below the floor is skipped unless it was taken before. The
//! records of taken files are pruned below the floor, so the coordinator
//! tells this book which paths it pruned. At the first scan of a process a
//! file below the pruning horizon may have been taken by an earlier run:
//! it is not reported (one above the horizon cannot have been).

use super::Listed;
use std::collections::HashSet;

#[derive(Debug, Default)]
pub struct OldFiles {
    /// Paths below the floor already accounted for (reported, or pruned).
    known: HashSet<String>,
    scanned: bool,
}

impl OldFiles {
    /// Paths whose records were just pruned: taken, never "skipped".
    pub fn pruned<'a>(&mut self, paths: impl IntoIterator<Item = &'a String>) {
        self.known.extend(paths.into_iter().cloned());
    }

    /// The files of one scan below the floor (`Selection::too_old`); returns
    /// those skipped that were not reported before.
    pub fn scan(&mut self, too_old: &[Listed], pruned_below_ms: Option<i64>) -> Vec<Listed> {
        let first = !std::mem::replace(&mut self.scanned, true);
        let mut now = HashSet::with_capacity(too_old.len());
        let mut skipped = Vec::new();
        for f in too_old {
            now.insert(f.path.clone());
            if self.known.contains(&f.path)
                || (first && pruned_below_ms.is_some_and(|p| f.mtime_ms < p))
            {
                continue;
            }
            skipped.push(f.clone());
        }
        // What left the listing is forgotten (a pruned record's file is
        // below the floor from the scan after its checkpoint on).
        self.known = now;
        skipped
    }

    /// [`Self::scan`] for a listing pruned to recent partitions: what it
    /// did not list is not forgotten (the next full listing decides).
    pub fn scan_partial(
        &mut self,
        too_old: &[Listed],
        pruned_below_ms: Option<i64>,
    ) -> Vec<Listed> {
        let first = !std::mem::replace(&mut self.scanned, true);
        let mut skipped = Vec::new();
        for f in too_old {
            if self.known.insert(f.path.clone())
                && !(first && pruned_below_ms.is_some_and(|p| f.mtime_ms < p))
            {
                skipped.push(f.clone());
            }
        }
        skipped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(path: &str, mtime_ms: i64) -> Listed {
        Listed {
            path: path.into(),
            size: 1,
            mtime_ms,
        }
    }

    #[test]
    fn each_skipped_file_is_reported_once_and_pruned_ones_never() {
        let mut b = OldFiles::default();
        // First scan: below the horizon it may have been taken by an earlier run.
        let first = [l("maybe_taken", 10), l("skipped_while_down", 60)];
        assert_eq!(b.scan(&first, Some(50)), vec![l("skipped_while_down", 60)]);
        assert!(b.scan(&first, Some(50)).is_empty(), "once per file");
        // This run pruned a record: silent when it shows up below the floor.
        b.pruned([&"done".to_string()]);
        let next = [l("maybe_taken", 10), l("done", 70), l("late", 5)];
        assert_eq!(b.scan(&next, Some(80)), vec![l("late", 5)]);
        // A path that left and came back is reported again.
        assert!(b.scan(&[], Some(80)).is_empty());
        assert_eq!(b.scan(&[l("late", 5)], Some(80)), vec![l("late", 5)]);
    }
}
