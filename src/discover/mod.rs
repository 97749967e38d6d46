//! Discovery: owns listing the source root through `object_store`, the
//! visibility modes (settled, marker), the watermark + lookback seen-set
//! decision, and the notify watcher that triggers early scans.
//!
//! The decision ([`select`]) is pure: given a listing, the clock and what was
//! already taken, it returns the files to take now, the files that changed
//! after they were taken, and the files below the floor. In `skip` mode
//! (`source.older_than_lookback`) the floor is `watermark - lookback`, the
//! watermark never counted past the present; inside the window a file is
//! taken unless already known, so files sharing an mtime with one already
//! handled, or landing slightly out of order, are never lost. Below the
//! floor nothing is read, and [`skipped`] tells apart the files skipped
//! (reported once each) from those taken long ago. Records are never pruned
//! in `take` mode, so every file not in them is new, down to the horizon
//! below which an earlier `skip` run pruned records.

pub mod listing;
pub mod manifest;
pub mod prune;
pub mod skipped;

use crate::names::glob_match;
pub use listing::{LinkSkip, LinkSkipped, Listing, Scope, list, list_scoped};

use crate::config::{OlderThanLookback, Visibility};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum DiscoverError {
    #[error("cannot list the source root {path}: {source}")]
    Root {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot list the source root {location}: {message}")]
    Store { location: String, message: String },
    #[error("cannot list the source: the listing thread panicked")]
    ListingThread,
    #[error("cannot watch {path}: {source}")]
    Watch { path: String, source: notify::Error },
}

/// One object seen in a listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed {
    /// Path relative to the source root, `/`-separated.
    pub path: String,
    pub size: u64,
    pub mtime_ms: i64,
}

/// A file already taken: its size and mtime when it was taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Taken {
    pub size: u64,
    pub mtime_ms: i64,
}

/// The outcome of one discovery pass.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Selection {
    /// Files to take now, oldest first.
    pub new: Vec<Listed>,
    /// Files whose size or mtime changed after they were taken.
    pub changed: Vec<(Listed, Taken)>,
    /// Matching files not yet visible (too young, no marker): backlog to come.
    pub waiting: usize,
    /// The paths of those files (partition commit keeps their partitions open).
    pub waiting_paths: Vec<String>,
    /// Matching files not taken because their mtime is below `floor_ms`.
    pub too_old: Vec<Listed>,
    /// The floor this pass used (None: no floor yet).
    pub floor_ms: Option<i64>,
}

/// Suffixes producers use while a file is still being written.
const IN_PROGRESS_SUFFIXES: [&str; 3] = [".inprogress", ".tmp", "._COPYING_"];

/// True for paths no reader should see: a hidden segment (`.x`, `_x`) or an
/// in-progress suffix.
pub fn is_hidden_or_in_progress(path: &str) -> bool {
    path.split('/')
        .any(|seg| seg.starts_with('.') || seg.starts_with('_'))
        || IN_PROGRESS_SUFFIXES.iter().any(|s| path.ends_with(s))
}

pub(crate) fn dir_of(path: &str) -> &str {
    path.rfind('/').map(|i| &path[..i]).unwrap_or("")
}

fn file_name(path: &str) -> &str {
    path.rfind('/').map(|i| &path[i + 1..]).unwrap_or(path)
}

/// Inputs to [`select`] that come from state and config.
pub struct SelectParams<'a> {
    pub pattern: &'a str,
    pub visibility: &'a Visibility,
    pub now_ms: i64,
    pub watermark_ms: Option<i64>,
    pub lookback: Duration,
    /// `source.older_than_lookback`: whether the lookback floor applies.
    pub older_than_lookback: OlderThanLookback,
    /// Records of files below this mtime may have been pruned: such a file
    /// is never taken as new (see [`pruned_horizon`]).
    pub pruned_below_ms: Option<i64>,
    /// Every file taken (from state and from this run, not yet checkpointed).
    pub taken: &'a HashMap<String, Taken>,
    /// Files already reported as changed (report once).
    pub reported: &'a HashSet<String>,
    /// `[cluster]`: the replica's shard; files of other shards are ignored
    /// before any other decision (see `cluster::shard`).
    pub shard: crate::cluster::shard::Shard,
}

/// Decides which listed files to take now. Pure.
pub fn select(listing: &[Listed], p: &SelectParams<'_>) -> Selection {
    let markers: HashSet<&str> = match p.visibility {
        Visibility::Marker { name } => listing
            .iter()
            .filter(|o| file_name(&o.path) == name)
            .map(|o| dir_of(&o.path))
            .collect(),
        Visibility::Settled { .. } | Visibility::Manifest { .. } => HashSet::new(),
    };
    // A watermark in the future (a file stamped ahead of the clock) must
    // not push the floor past files landing now.
    let window = p.watermark_ms.map(|w| {
        w.min(p.now_ms)
            .saturating_sub(p.lookback.as_millis() as i64)
    });
    let floor = match p.older_than_lookback {
        OlderThanLookback::Skip => window.max(p.pruned_below_ms),
        OlderThanLookback::Take => p.pruned_below_ms,
    };
    let mut out = Selection {
        floor_ms: floor,
        ..Selection::default()
    };
    for o in listing {
        if is_hidden_or_in_progress(&o.path)
            || !glob_match(p.pattern, file_name(&o.path))
            || !p.shard.owns(&o.path)
        {
            continue;
        }
        if let Some(t) = p.taken.get(&o.path) {
            if (t.size != o.size || t.mtime_ms != o.mtime_ms) && !p.reported.contains(&o.path) {
                out.changed.push((o.clone(), *t));
            }
            continue;
        }
        if floor.is_some_and(|f| o.mtime_ms < f) {
            out.too_old.push(o.clone());
            continue;
        }
        let visible = match p.visibility {
            Visibility::Settled { min_age } => p.now_ms - o.mtime_ms >= min_age.as_millis() as i64,
            Visibility::Marker { .. } => markers.contains(dir_of(&o.path)),
            Visibility::Manifest { .. } => true,
        };
        if visible {
            out.new.push(o.clone());
        } else {
            out.waiting += 1;
            out.waiting_paths.push(o.path.clone());
        }
    }
    out.new
        .sort_by(|a, b| (a.mtime_ms, &a.path).cmp(&(b.mtime_ms, &b.path)));
    out.too_old
        .sort_by(|a, b| (a.mtime_ms, &a.path).cmp(&(b.mtime_ms, &b.path)));
    out
}

/// The watermark a checkpoint records: the highest mtime taken, never past
/// `now_ms` (a file stamped in the future must not raise the floor above
/// the files landing now).
pub fn watermark(mtimes: impl Iterator<Item = i64>, now_ms: i64) -> Option<i64> {
    mtimes.max().map(|w| w.min(now_ms))
}

/// The mtime below which file records may have been pruned, as kept in the
/// state; a state written before it was kept pruned below its watermark
/// minus the lookback.
pub fn pruned_horizon(
    recorded: Option<i64>,
    watermark_ms: Option<i64>,
    lookback: Duration,
) -> Option<i64> {
    recorded.or_else(|| watermark_ms.map(|w| w.saturating_sub(lookback.as_millis() as i64)))
}

/// Watches the source root; every filesystem event sends a (lossy) wake-up.
/// Events only make a scan come earlier: the periodic scan still runs.
/// Watches a local source root; an object store has no notifications
/// (`None`: periodic scans only).
pub fn watch(
    root: &crate::store::Location,
    wake: std::sync::mpsc::SyncSender<()>,
) -> Result<Option<notify::RecommendedWatcher>, DiscoverError> {
    use notify::Watcher;
    let Some(root) = root.local_root() else {
        return Ok(None);
    };
    let mut w = notify::recommended_watcher(move |_res: notify::Result<notify::Event>| {
        // A full channel already holds a wake-up: dropping this one is fine.
        let _ = wake.try_send(());
    })
    .map_err(|source| DiscoverError::Watch {
        path: root.display().to_string(),
        source,
    })?;
    w.watch(root, notify::RecursiveMode::Recursive)
        .map_err(|source| DiscoverError::Watch {
            path: root.display().to_string(),
            source,
        })?;
    Ok(Some(w))
}

/// Paths grouped by directory, for reports.
pub fn by_dir(files: &[Listed]) -> BTreeMap<&str, usize> {
    let mut m = BTreeMap::new();
    for f in files {
        *m.entry(dir_of(&f.path)).or_insert(0) += 1;
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(path: &str, size: u64, mtime_ms: i64) -> Listed {
        Listed {
            path: path.into(),
            size,
            mtime_ms,
        }
    }

    fn run(
        listing: &[Listed],
        vis: &Visibility,
        wm: Option<i64>,
        taken: &HashMap<String, Taken>,
    ) -> Selection {
        run_mode(listing, wm, OlderThanLookback::Skip, None, vis, taken)
    }

    fn run_mode(
        listing: &[Listed],
        wm: Option<i64>,
        mode: OlderThanLookback,
        pruned_below_ms: Option<i64>,
        vis: &Visibility,
        taken: &HashMap<String, Taken>,
    ) -> Selection {
        select(
            listing,
            &SelectParams {
                pattern: "*.parquet",
                visibility: vis,
                now_ms: 100_000,
                watermark_ms: wm,
                lookback: Duration::from_secs(10),
                older_than_lookback: mode,
                pruned_below_ms,
                taken,
                reported: &HashSet::new(),
                shard: crate::cluster::shard::Shard::ALL,
            },
        )
    }

    #[test]
    fn a_future_mtime_does_not_hide_the_next_file() {
        // A file stamped a day ahead was taken: the watermark a checkpoint
        // records stays at the present, and so does the floor of a state
        // that recorded a future watermark before.
        assert_eq!(
            watermark([99_000, 86_500_000].into_iter(), 100_000),
            Some(100_000)
        );
        assert_eq!(watermark(std::iter::empty(), 100_000), None);
        let listing = [l("next.parquet", 1, 99_000)];
        for wm in [Some(100_000), Some(86_500_000)] {
            let s = run(&listing, &settled(), wm, &HashMap::new());
            assert_eq!(paths(&s), vec!["next.parquet"], "watermark {wm:?}");
            assert!(s.too_old.is_empty());
        }
    }

    #[test]
    fn too_old_files_are_reported_under_skip_and_taken_under_take() {
        let listing = [
            l("late.parquet", 1, 50_000 - 9_000),
            l("ancient.parquet", 1, 50_000 - 11_000),
            l("_hidden.parquet", 1, 1),
        ];
        let none = HashMap::new();
        let s = run_mode(
            &listing,
            Some(50_000),
            OlderThanLookback::Skip,
            None,
            &settled(),
            &none,
        );
        assert_eq!(paths(&s), vec!["late.parquet"]);
        assert_eq!(s.too_old, vec![l("ancient.parquet", 1, 39_000)]);
        assert_eq!(s.floor_ms, Some(40_000));
        // take: records are never pruned, so a file not in them is new.
        let s = run_mode(
            &listing,
            Some(50_000),
            OlderThanLookback::Take,
            None,
            &settled(),
            &none,
        );
        assert_eq!(paths(&s), vec!["ancient.parquet", "late.parquet"]);
        assert!(s.too_old.is_empty() && s.floor_ms.is_none());
        // ...down to where an earlier skip run pruned records.
        let s = run_mode(
            &listing,
            Some(50_000),
            OlderThanLookback::Take,
            Some(39_500),
            &settled(),
            &none,
        );
        assert_eq!(paths(&s), vec!["late.parquet"]);
        assert_eq!(s.too_old, vec![l("ancient.parquet", 1, 39_000)]);
    }

    #[test]
    fn pruned_records_are_never_taken_again() {
        // A state that recorded a future watermark pruned records up to
        // 95_000; the clamped window reaches lower, the horizon holds.
        let listing = [l("pruned.parquet", 1, 94_000), l("new.parquet", 1, 96_000)];
        let s = run_mode(
            &listing,
            Some(10_000_000),
            OlderThanLookback::Skip,
            Some(95_000),
            &settled(),
            &HashMap::new(),
        );
        assert_eq!(paths(&s), vec!["new.parquet"]);
        assert_eq!(s.too_old.len(), 1);
        assert_eq!(
            pruned_horizon(None, Some(50_000), Duration::from_secs(10)),
            Some(40_000)
        );
        assert_eq!(
            pruned_horizon(Some(7), Some(50_000), Duration::from_secs(10)),
            Some(7)
        );
        assert_eq!(pruned_horizon(None, None, Duration::from_secs(10)), None);
    }

    fn settled() -> Visibility {
        Visibility::Settled {
            min_age: Duration::from_secs(1),
        }
    }

    fn paths(s: &Selection) -> Vec<&str> {
        s.new.iter().map(|f| f.path.as_str()).collect()
    }

    #[test]
    fn hidden_in_progress_and_young_files_are_not_visible() {
        let listing = [
            l("dt=1/a.parquet", 1, 1000),
            l("dt=1/.b.parquet", 1, 1000),
            l("dt=1/_c.parquet", 1, 1000),
            l("_tmp/d.parquet", 1, 1000),
            l("dt=1/e.parquet.inprogress", 1, 1000),
            l("dt=1/f.parquet._COPYING_", 1, 1000),
            l("dt=1/g.parquet.tmp", 1, 1000),
            l("dt=1/h.json", 1, 1000),
            l("dt=1/young.parquet", 1, 99_500),
        ];
        let s = run(&listing, &settled(), None, &HashMap::new());
        assert_eq!(paths(&s), vec!["dt=1/a.parquet"]);
        assert_eq!(s.waiting, 1);
    }

    #[test]
    fn equal_mtimes_are_all_taken() {
        let mut taken = HashMap::new();
        taken.insert(
            "a.parquet".to_string(),
            Taken {
                size: 1,
                mtime_ms: 5000,
            },
        );
        let listing = [
            l("a.parquet", 1, 5000),
            l("b.parquet", 1, 5000),
            l("c.parquet", 1, 5000),
        ];
        let s = run(&listing, &settled(), Some(5000), &taken);
        assert_eq!(paths(&s), vec!["b.parquet", "c.parquet"]);
    }

    #[test]
    fn out_of_order_inside_lookback_is_taken_older_is_ignored() {
        let listing = [
            l("late.parquet", 1, 50_000 - 9_000),
            l("ancient.parquet", 1, 50_000 - 11_000),
        ];
        let s = run(&listing, &settled(), Some(50_000), &HashMap::new());
        assert_eq!(paths(&s), vec!["late.parquet"]);
    }

    #[test]
    fn rename_from_in_progress_makes_it_visible() {
        let before = [l("x.parquet.inprogress", 7, 1000)];
        assert!(
            run(&before, &settled(), None, &HashMap::new())
                .new
                .is_empty()
        );
        let after = [l("x.parquet", 7, 1000)];
        assert_eq!(
            paths(&run(&after, &settled(), None, &HashMap::new())),
            vec!["x.parquet"]
        );
    }

    #[test]
    fn modified_after_taken_is_reported_not_retaken() {
        let mut taken = HashMap::new();
        taken.insert(
            "a.parquet".to_string(),
            Taken {
                size: 1,
                mtime_ms: 1000,
            },
        );
        let s = run(&[l("a.parquet", 2, 2000)], &settled(), Some(1000), &taken);
        assert!(s.new.is_empty());
        assert_eq!(s.changed.len(), 1);
        assert_eq!(
            s.changed[0].1,
            Taken {
                size: 1,
                mtime_ms: 1000
            }
        );
    }

    #[test]
    fn marker_mode_needs_the_marker_in_the_same_directory() {
        let vis = Visibility::Marker {
            name: "_SUCCESS".into(),
        };
        let listing = [
            l("dt=1/a.parquet", 1, 99_999),
            l("dt=1/_SUCCESS", 0, 99_999),
            l("dt=2/b.parquet", 1, 1000),
        ];
        let s = run(&listing, &vis, None, &HashMap::new());
        assert_eq!(paths(&s), vec!["dt=1/a.parquet"]);
        assert_eq!(s.waiting, 1);
    }

    #[test]
    fn a_replica_selects_only_its_shard_and_markers_still_count() {
        use crate::cluster::shard::Shard;
        let vis = Visibility::Marker {
            name: "_SUCCESS".into(),
        };
        let listing: Vec<Listed> = (0..12)
            .map(|i| l(&format!("dt=1/p-{i}.parquet"), 1, 1000))
            .chain([l("dt=1/_SUCCESS", 0, 1000)])
            .collect();
        let mut seen = Vec::new();
        for replica in 0..3 {
            let s = select(
                &listing,
                &SelectParams {
                    pattern: "*.parquet",
                    visibility: &vis,
                    now_ms: 100_000,
                    watermark_ms: None,
                    lookback: Duration::from_secs(10),
                    older_than_lookback: OlderThanLookback::Skip,
                    pruned_below_ms: None,
                    taken: &HashMap::new(),
                    reported: &HashSet::new(),
                    shard: Shard {
                        replica,
                        replicas: 3,
                    },
                },
            );
            assert_eq!(s.waiting, 0);
            assert!(!s.new.is_empty(), "replica {replica} got nothing");
            seen.extend(s.new.into_iter().map(|f| f.path));
        }
        seen.sort();
        let mut all: Vec<String> = listing[..12].iter().map(|f| f.path.clone()).collect();
        all.sort();
        assert_eq!(seen, all, "each file selected by exactly one replica");
    }
}
