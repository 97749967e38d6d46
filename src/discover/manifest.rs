//! `visibility = "manifest"`: the producer writes index files under
//! `source.manifest_dir` listing the data files it committed, one JSON
//! object per line (`{"path": "dt=2026-11-20/hour=13/part-0.parquet",
//! "size": 123456}`, paths relative to the source root). A scan lists the
//! index folder, reads the index files it has not read yet and checks each
//! data file they name with one HEAD request; data files are never listed.
//!
//! A data file an index names that is missing, or whose size is not the
//! one listed, is reported per file (a bad entry), and its index is read
//! again at the next scan until every file it names is there. Index files
//! read in full are remembered in memory: after a restart they are read
//! once more, and the file records keep what they list from being taken
//! twice.

use super::{DiscoverError, Listed, Listing};
use crate::store::Location;
use futures::TryStreamExt;
use object_store::path::Path as ObjPath;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt};
use serde::Deserialize;
use std::collections::HashSet;
use std::sync::Arc;

/// Index files read in full.
#[derive(Debug, Default)]
pub struct ManifestBook {
    read: HashSet<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    path: String,
    size: u64,
}

/// One scan: the data files of the index files not read yet.
pub fn scan(
    store: &Arc<dyn ObjectStore>,
    root: &Location,
    dir: &str,
    book: &mut ManifestBook,
    is_taken: &(dyn Fn(&str) -> bool + Sync),
) -> Result<Listing, DiscoverError> {
    let handle = tokio::runtime::Handle::try_current().ok();
    let result = std::thread::scope(|s| {
        s.spawn(|| {
            let fut = scan_async(store, dir, book, is_taken);
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
    .map_err(|_| DiscoverError::ListingThread)?;
    result.map_err(|e| DiscoverError::Store {
        location: root.join_display(dir),
        message: crate::store::chain(&e),
    })
}

async fn scan_async(
    store: &Arc<dyn ObjectStore>,
    dir: &str,
    book: &mut ManifestBook,
    is_taken: &(dyn Fn(&str) -> bool + Sync),
) -> object_store::Result<Listing> {
    let mut indexes: Vec<ObjectMeta> = store.list(Some(&ObjPath::from(dir))).try_collect().await?;
    indexes.sort_by(|a, b| a.location.cmp(&b.location));
    let mut out = Listing::default();
    for idx in indexes {
        let name = idx.location.to_string();
        if book.read.contains(&name)
            || super::is_hidden_or_in_progress(idx.location.filename().unwrap_or(""))
        {
            continue;
        }
        let text = match store.get(&idx.location).await {
            Ok(r) => r.bytes().await?,
            Err(object_store::Error::NotFound { .. }) => continue,
            Err(e) => return Err(e),
        };
        let mut complete = true;
        for (i, line) in String::from_utf8_lossy(&text).lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let entry: Entry = match serde_json::from_str(line) {
                Ok(e) => e,
                Err(e) => {
                    out.bad.push(format!("index {name} line {}: {e}", i + 1));
                    continue;
                }
            };
            if entry.path.starts_with('/')
                || entry.path.split('/').any(|s| s == ".." || s.is_empty())
            {
                out.bad.push(format!(
                    "index {name} line {}: {:?} is not a path under the source root",
                    i + 1,
                    entry.path
                ));
                continue;
            }
            if is_taken(&entry.path) {
                continue;
            }
            match store.head(&ObjPath::from(entry.path.as_str())).await {
                Ok(m) if m.size == entry.size => out.files.push(Listed {
                    path: entry.path,
                    size: m.size,
                    mtime_ms: m.last_modified.timestamp_millis(),
                }),
                Ok(m) => {
                    complete = false;
                    out.bad.push(format!(
                        "{}: index {name} lists it with {} bytes, it has {}",
                        entry.path, entry.size, m.size
                    ));
                }
                Err(object_store::Error::NotFound { .. }) => {
                    complete = false;
                    out.bad.push(format!(
                        "{}: listed in index {name} but missing",
                        entry.path
                    ));
                }
                Err(e) => return Err(e),
            }
        }
        if complete {
            book.read.insert(name);
        }
    }
    Ok(out)
}
