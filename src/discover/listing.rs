//! Listing the source root through `object_store`. An object-store root
//! is listed as it is (no symlinks there; a failed page fails the listing).
//! A local root is listed one entry at a time:
//! a bad entry (a symlink loop, a name that is not UTF-8 or holds a control
//! character, a folder that cannot be read) is reported on its own and never
//! fails the listing; only a root that cannot be read does. Entries reached
//! through a symlink are resolved against the root here (the only `std::fs`
//! calls of discovery): not followed unless `source.follow_symlinks`, and,
//! when followed, a file reachable by several paths is listed once.

use super::{DiscoverError, Listed};
use crate::store::Location;
use futures::StreamExt;
use object_store::{ObjectMeta, ObjectStore};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// One listing of the source root.
#[derive(Debug, Default)]
pub struct Listing {
    /// The files discovery decides on.
    pub files: Vec<Listed>,
    /// Entries that could not be listed; each error names its path.
    pub bad: Vec<String>,
    /// Paths reached through a symlink that are not read.
    pub links: Vec<LinkSkipped>,
}

/// A listed path that is not read because a symlink leads to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkSkipped {
    /// Path relative to the source root, as listed.
    pub path: String,
    /// Where it resolves to.
    pub target: PathBuf,
    /// Why it is not read.
    pub why: LinkSkip,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkSkip {
    /// `source.follow_symlinks = false`; `outside`: it leads out of the root.
    NotFollowed { outside: bool },
    /// The same file is read through this other path.
    Duplicate { of: String },
}

impl std::fmt::Display for LinkSkip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LinkSkip::NotFollowed { outside: true } => {
                f.write_str("a symlink leads out of the source root (source.follow_symlinks = false)")
            }
            LinkSkip::NotFollowed { outside: false } => f.write_str(
                "reached through a symlink (source.follow_symlinks = false); the file is read by its own path",
            ),
            LinkSkip::Duplicate { of } => write!(f, "the same file is read as {of}"),
        }
    }
}

/// Lists every object under `root` (which `store` serves).
pub fn list(
    store: &Arc<dyn ObjectStore>,
    root: &Location,
    follow_symlinks: bool,
    is_taken: &dyn Fn(&str) -> bool,
) -> Result<Listing, DiscoverError> {
    list_scoped(store, root, follow_symlinks, is_taken, None).map(|(l, _)| l)
}

/// What a listing covered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Everything under the root.
    Full,
    /// Pruned at a floor (see [`super::prune`]): `skipped` top-level day
    /// folders were not listed.
    Pruned { skipped: usize },
}

/// [`list`], pruned to the day folders at or after `prune_floor` when it
/// is given and the root is partitioned by day (else a full listing).
pub fn list_scoped(
    store: &Arc<dyn ObjectStore>,
    root: &Location,
    follow_symlinks: bool,
    is_taken: &dyn Fn(&str) -> bool,
    prune_floor: Option<i64>,
) -> Result<(Listing, Scope), DiscoverError> {
    match root.local_root() {
        Some(dir) => list_local(store, dir, follow_symlinks, is_taken, prune_floor),
        None => list_store(store, root, prune_floor),
    }
}

type Entries = Vec<object_store::Result<ObjectMeta>>;

/// The listing requests: the whole root, or the root's top level and then
/// each day folder kept.
async fn collect(
    store: &Arc<dyn ObjectStore>,
    prune_floor: Option<i64>,
) -> object_store::Result<(Entries, Scope)> {
    let Some(floor) = prune_floor else {
        return Ok((store.list(None).collect().await, Scope::Full));
    };
    let top = store.list_with_delimiter(None).await?;
    let names: Vec<String> = top.common_prefixes.iter().map(|p| p.to_string()).collect();
    if super::prune::kept(&names, floor).is_none() {
        return Ok((store.list(None).collect().await, Scope::Full));
    }
    let mut out: Entries = top.objects.into_iter().map(Ok).collect();
    let mut skipped = 0;
    for p in &top.common_prefixes {
        if super::prune::skips(p.as_ref(), floor) {
            skipped += 1;
            continue;
        }
        out.extend(store.list(Some(p)).collect::<Vec<_>>().await);
    }
    Ok((out, Scope::Pruned { skipped }))
}

/// An object-store listing. The client needs a tokio runtime: the one the
/// caller entered, else one made for the call; either way it is driven from
/// a thread of its own, so a caller inside the runtime does not block it.
fn list_store(
    store: &Arc<dyn ObjectStore>,
    root: &Location,
    prune_floor: Option<i64>,
) -> Result<(Listing, Scope), DiscoverError> {
    let handle = tokio::runtime::Handle::try_current().ok();
    let store_err = |e: object_store::Error| DiscoverError::Store {
        location: root.to_string(),
        message: crate::store::chain(&e),
    };
    let (entries, scope) = std::thread::scope(|s| {
        s.spawn(|| {
            let fut = collect(store, prune_floor);
            match &handle {
                Some(h) => h.block_on(fut),
                None => tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| object_store::Error::Generic {
                        store: "runtime",
                        source: Box::new(e),
                    })?
                    .block_on(fut),
            }
        })
        .join()
    })
    .map_err(|_| DiscoverError::ListingThread)?
    .map_err(store_err)?;
    let mut files = Vec::with_capacity(entries.len());
    for e in entries {
        let meta = e.map_err(store_err)?;
        files.push(Listed {
            path: meta.location.to_string(),
            size: meta.size,
            mtime_ms: meta.last_modified.timestamp_millis(),
        });
    }
    Ok((
        Listing {
            files,
            ..Default::default()
        },
        scope,
    ))
}

/// Lists every object under the local directory `root` (which `store`
/// serves). `is_taken` says which paths discovery already took: when a
/// followed symlink makes a file reachable by several paths, the one already
/// taken stays the one read.
///
/// `object_store` lists a local directory with a blocking walk that yields
/// an error per bad entry and goes on, unless it runs inside a tokio
/// runtime, where it stops at the first error; the walk therefore runs on a
/// thread of its own, outside any runtime.
fn list_local(
    store: &Arc<dyn ObjectStore>,
    root: &Path,
    follow_symlinks: bool,
    is_taken: &dyn Fn(&str) -> bool,
    prune_floor: Option<i64>,
) -> Result<(Listing, Scope), DiscoverError> {
    let root_err = |source: std::io::Error| DiscoverError::Root {
        path: root.display().to_string(),
        source,
    };
    let real_root = std::fs::canonicalize(root).map_err(root_err)?;
    // A root that is gone, not a folder or not readable lists as empty in
    // object_store: that is a failed listing, not an empty source.
    std::fs::read_dir(&real_root).map_err(root_err)?;
    let (entries, scope) = std::thread::scope(|s| {
        s.spawn(|| futures::executor::block_on(collect(store, prune_floor)))
            .join()
    })
    .map_err(|_| DiscoverError::ListingThread)?
    .map_err(|e| DiscoverError::Store {
        location: root.display().to_string(),
        message: crate::store::chain(&e),
    })?;
    let mut out = Listing::default();
    let mut dirs: HashMap<String, bool> = HashMap::new();
    // Files reached through a symlink, by what they resolve to.
    let mut aliases: BTreeMap<PathBuf, Vec<Listed>> = BTreeMap::new();
    for entry in entries {
        let meta = match entry {
            Ok(m) => m,
            Err(e) => {
                out.bad.push(e.to_string());
                continue;
            }
        };
        let f = Listed {
            path: meta.location.to_string(),
            size: meta.size,
            mtime_ms: meta.last_modified.timestamp_millis(),
        };
        let lexical = real_root.join(&f.path);
        let dir = super::dir_of(&f.path);
        let dir_is_real = *dirs.entry(dir.to_string()).or_insert_with(|| {
            let d = real_root.join(dir);
            std::fs::canonicalize(&d).is_ok_and(|c| c == d)
        });
        let file_is_link =
            std::fs::symlink_metadata(&lexical).is_ok_and(|m| m.file_type().is_symlink());
        if dir_is_real && !file_is_link {
            out.files.push(f);
            continue;
        }
        let target = match std::fs::canonicalize(&lexical) {
            Ok(t) => t,
            // Gone since it was listed, or a link broken meanwhile.
            Err(e) => {
                out.bad.push(format!("{}: {e}", f.path));
                continue;
            }
        };
        if !follow_symlinks {
            out.links.push(LinkSkipped {
                path: f.path,
                why: LinkSkip::NotFollowed {
                    outside: !target.starts_with(&real_root),
                },
                target,
            });
            continue;
        }
        aliases.entry(target).or_default().push(f);
    }
    let real: HashSet<&str> = out.files.iter().map(|f| f.path.as_str()).collect();
    let mut kept = Vec::new();
    for (target, mut paths) in aliases {
        // The file's own path inside the root, else the path already taken,
        // else the first by name.
        let own = target
            .strip_prefix(&real_root)
            .ok()
            .and_then(|p| p.to_str())
            .filter(|p| real.contains(p))
            .map(str::to_string);
        paths.sort_by(|a, b| a.path.cmp(&b.path));
        let chosen = match own {
            Some(p) => p,
            None => {
                let i = paths.iter().position(|f| is_taken(&f.path)).unwrap_or(0);
                let f = paths.remove(i);
                let p = f.path.clone();
                kept.push(f);
                p
            }
        };
        for f in paths {
            out.links.push(LinkSkipped {
                path: f.path,
                target: target.clone(),
                why: LinkSkip::Duplicate { of: chosen.clone() },
            });
        }
    }
    out.files.extend(kept);
    Ok((out, scope))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::symlink;

    fn touch(p: &Path) {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, b"x").unwrap();
    }

    fn run(root: &Path, follow: bool, taken: &[&str]) -> Listing {
        let store: Arc<dyn ObjectStore> =
            Arc::new(object_store::local::LocalFileSystem::new_with_prefix(root).unwrap());
        // As in the daemon: called with a tokio runtime entered.
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let _in_runtime = rt.enter();
        list_local(&store, root, follow, &|p| taken.contains(&p), None)
            .unwrap()
            .0
    }

    fn paths(l: &Listing) -> Vec<&str> {
        let mut v: Vec<&str> = l.files.iter().map(|f| f.path.as_str()).collect();
        v.sort();
        v
    }

    #[test]
    fn bad_entries_are_reported_one_by_one_and_the_good_ones_kept() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("ods");
        for i in 0..24 {
            touch(&root.join(format!("d{}/f{i:02}.parquet", i % 4)));
        }
        symlink(root.join("d1"), root.join("d1/loop")).unwrap();
        touch(&root.join("d2/bad\nname.parquet"));
        touch(
            &root
                .join("d3")
                .join(std::ffi::OsStr::from_bytes(b"bad\xffname.parquet")),
        );
        let l = run(&root, false, &[]);
        assert_eq!(l.files.len(), 24, "{:?}", l.bad);
        assert_eq!(l.bad.len(), 3, "{:?}", l.bad);
        let all = l.bad.join("\n");
        assert!(all.contains("loop"), "{all}");
        assert!(
            all.contains("bad\nname") || all.contains("bad\\nname"),
            "{all}"
        );
    }

    #[test]
    fn a_pruned_listing_lists_only_the_day_folders_at_or_after_the_floor() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("ods");
        for day in ["2026-11-17", "2026-11-18", "2026-11-19", "2026-11-20"] {
            touch(&root.join(format!("dt={day}/hour=01/a.parquet")));
        }
        touch(&root.join("top.parquet"));
        let store: Arc<dyn ObjectStore> =
            Arc::new(object_store::local::LocalFileSystem::new_with_prefix(&root).unwrap());
        let floor = super::super::prune::day_of_segment("dt=2026-11-20").unwrap() + 3_600_000;
        let (l, scope) = list_local(&store, &root, false, &|_| false, Some(floor)).unwrap();
        assert_eq!(scope, Scope::Pruned { skipped: 2 });
        assert_eq!(
            paths(&l),
            [
                "dt=2026-11-19/hour=01/a.parquet",
                "dt=2026-11-20/hour=01/a.parquet",
                "top.parquet"
            ]
        );
        let (l, scope) = list_local(&store, &root, false, &|_| false, None).unwrap();
        assert_eq!((scope, l.files.len()), (Scope::Full, 5));
    }

    #[test]
    fn a_root_that_cannot_be_listed_fails_the_listing() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("ods");
        std::fs::create_dir_all(&root).unwrap();
        let store: Arc<dyn ObjectStore> =
            Arc::new(object_store::local::LocalFileSystem::new_with_prefix(&root).unwrap());
        std::fs::remove_dir(&root).unwrap();
        let e = list_local(&store, &root, false, &|_| false, None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("cannot list the source root"), "{e}");
        std::fs::write(&root, b"not a folder").unwrap();
        assert!(list_local(&store, &root, false, &|_| false, None).is_err());
    }

    #[test]
    fn symlinks_are_not_followed_unless_configured_and_a_file_is_listed_once() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("ods");
        touch(&root.join("dt=1/a.parquet"));
        touch(&d.path().join("outside/x.parquet"));
        symlink(d.path().join("outside"), root.join("ext")).unwrap();
        symlink(d.path().join("outside"), root.join("ext2")).unwrap();
        symlink(root.join("dt=1"), root.join("alias")).unwrap();
        symlink(root.join("dt=1/a.parquet"), root.join("dt=1/b.parquet")).unwrap();

        let l = run(&root, false, &[]);
        assert_eq!(paths(&l), vec!["dt=1/a.parquet"]);
        let mut links: Vec<(&str, &LinkSkip)> =
            l.links.iter().map(|s| (s.path.as_str(), &s.why)).collect();
        links.sort_by_key(|(p, _)| *p);
        let inside = LinkSkip::NotFollowed { outside: false };
        let outside = LinkSkip::NotFollowed { outside: true };
        assert_eq!(
            links,
            vec![
                ("alias/a.parquet", &inside),
                ("alias/b.parquet", &inside),
                ("dt=1/b.parquet", &inside),
                ("ext/x.parquet", &outside),
                ("ext2/x.parquet", &outside),
            ]
        );

        // Followed: each file once, by its own path inside the root, else
        // by the path already taken, else the first by name.
        let l = run(&root, true, &[]);
        assert_eq!(paths(&l), vec!["dt=1/a.parquet", "ext/x.parquet"]);
        assert_eq!(l.links.len(), 4);
        assert!(
            l.links
                .iter()
                .all(|s| matches!(s.why, LinkSkip::Duplicate { .. }))
        );
        let l = run(&root, true, &["ext2/x.parquet"]);
        assert_eq!(paths(&l), vec!["dt=1/a.parquet", "ext2/x.parquet"]);
    }
}
