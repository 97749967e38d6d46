//! Discovery: owns listing the source root through `object_store`, the
//! visibility modes (settled, marker), the watermark + lookback seen-set
//! decision, and the notify watcher that triggers early scans.
//!
//! The decision ([`select`]) is pure: given a listing, the clock and what was
//! already taken, it returns the files to take now and the files that changed
//! after they were taken. A file older than `watermark - lookback` is ignored;
//! inside the window it is taken unless already known, so files sharing an
//! mtime with one already handled, or landing slightly out of order, are
//! never lost.

pub mod hive;

use crate::config::Visibility;
use futures::TryStreamExt;
use object_store::ObjectStore;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum DiscoverError {
    #[error("cannot list source: {0}")]
    List(#[from] object_store::Error),
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

/// Glob on a file name: `*` any run, `?` one character.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    fn rec(p: &[char], n: &[char]) -> bool {
        match (p.first(), n.first()) {
            (None, None) => true,
            (Some('*'), _) => rec(&p[1..], n) || (!n.is_empty() && rec(p, &n[1..])),
            (Some('?'), Some(_)) => rec(&p[1..], &n[1..]),
            (Some(a), Some(b)) if a == b => rec(&p[1..], &n[1..]),
            _ => false,
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    rec(&p, &n)
}

fn dir_of(path: &str) -> &str {
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
    /// Every file taken (from state and from this run, not yet checkpointed).
    pub taken: &'a HashMap<String, Taken>,
    /// Files already reported as changed (report once).
    pub reported: &'a HashSet<String>,
}

/// Decides which listed files to take now. Pure.
pub fn select(listing: &[Listed], p: &SelectParams<'_>) -> Selection {
    let markers: HashSet<&str> = match p.visibility {
        Visibility::Marker { name } => listing
            .iter()
            .filter(|o| file_name(&o.path) == name)
            .map(|o| dir_of(&o.path))
            .collect(),
        Visibility::Settled { .. } => HashSet::new(),
    };
    let floor = p
        .watermark_ms
        .map(|w| w.saturating_sub(p.lookback.as_millis() as i64));
    let mut out = Selection::default();
    for o in listing {
        if is_hidden_or_in_progress(&o.path) || !glob_match(p.pattern, file_name(&o.path)) {
            continue;
        }
        if let Some(t) = p.taken.get(&o.path) {
            if (t.size != o.size || t.mtime_ms != o.mtime_ms) && !p.reported.contains(&o.path) {
                out.changed.push((o.clone(), *t));
            }
            continue;
        }
        if floor.is_some_and(|f| o.mtime_ms < f) {
            continue;
        }
        let visible = match p.visibility {
            Visibility::Settled { min_age } => p.now_ms - o.mtime_ms >= min_age.as_millis() as i64,
            Visibility::Marker { .. } => markers.contains(dir_of(&o.path)),
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
    out
}

/// Lists every object under the store's root.
pub async fn list(store: &Arc<dyn ObjectStore>) -> Result<Vec<Listed>, DiscoverError> {
    let metas: Vec<object_store::ObjectMeta> = store.list(None).try_collect().await?;
    Ok(metas
        .into_iter()
        .map(|m| Listed {
            path: m.location.to_string(),
            size: m.size,
            mtime_ms: m.last_modified.timestamp_millis(),
        })
        .collect())
}

/// Watches the source root; every filesystem event sends a (lossy) wake-up.
/// Events only make a scan come earlier: the periodic scan still runs.
pub fn watch(
    root: &Path,
    wake: std::sync::mpsc::SyncSender<()>,
) -> Result<notify::RecommendedWatcher, DiscoverError> {
    use notify::Watcher;
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
    Ok(w)
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
        select(
            listing,
            &SelectParams {
                pattern: "*.parquet",
                visibility: vis,
                now_ms: 100_000,
                watermark_ms: wm,
                lookback: Duration::from_secs(10),
                taken,
                reported: &HashSet::new(),
            },
        )
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
    fn globs() {
        assert!(glob_match("*.parquet", "a.parquet"));
        assert!(glob_match("part-?.parquet", "part-1.parquet"));
        assert!(!glob_match("*.parquet", "a.parquet.tmp"));
        assert!(glob_match("*", ""));
    }
}
