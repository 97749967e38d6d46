//! Step 3 of the checkpoint protocol, and recovery. Moving a staged file to
//! its final name is create-only and idempotent: it never replaces a file
//! it did not stage, and a final file already there that is the staged
//! file (or has its recorded size, the staged file gone) means the move
//! happened before a crash. Recovery rolls every prepared epoch forward
//! with the same code, then deletes whatever is left in staging (files no
//! prepared epoch names). [`inspect`] tells where one file stands, for the
//! operator's `sluice state resolve-epoch`.

use super::{STAGING_DIR, SinkError, parse_path, path_of};
use crate::checkpoint::StagedFile;
use crate::crashpoint;
use futures::TryStreamExt;
use object_store::{ObjectStore, ObjectStoreExt};
use std::sync::Arc;

/// Flushes the filesystem holding a local sink (one `syncfs`): staged
/// files must be on disk before prepare names them, and renames before an
/// epoch is marked committed, because recovery deletes staged files no
/// prepared epoch names. A SIGKILL keeps the page cache; a power cut does
/// not, so without this a prepared epoch could name empty files. `None`
/// (a store that is not a local directory) does nothing: object stores
/// make a completed upload durable themselves.
pub fn sync_local(root: Option<&std::path::Path>) -> Result<(), SinkError> {
    let Some(root) = root else {
        return Ok(());
    };
    let err = |source: std::io::Error| SinkError::Sync {
        path: root.display().to_string(),
        source,
    };
    let dir = std::fs::File::open(root).map_err(err)?;
    use std::os::fd::AsRawFd;
    // SAFETY: `dir` is an open descriptor for the duration of the call.
    let rc = unsafe { libc::syncfs(dir.as_raw_fd()) };
    if rc != 0 {
        return Err(err(std::io::Error::last_os_error()));
    }
    Ok(())
}

/// Renames in flight at once when committing an epoch: on a local disk a
/// rename into a new partition also creates its folders, and one epoch may
/// move thousands of files.
const COMMIT_CONCURRENCY: usize = 16;

/// Completions in flight at once on an object store: each is one round
/// trip, and a checkpoint of thousands of small files waits for them all.
const COMPLETE_CONCURRENCY: usize = 64;

/// Moves every staged file of `epoch` to its final name, several at once:
/// each move is idempotent and independent of the others, and recovery
/// finishes whichever subset a crash leaves.
///
/// A file that is an object-store upload is committed by completing the
/// upload (see [`super::resumable::Uploader::complete`]): `remote` must
/// then be given.
pub async fn commit_files(
    store: &Arc<dyn ObjectStore>,
    remote: Option<&super::resumable::Uploader>,
    epoch: u64,
    files: &[StagedFile],
) -> Result<(), SinkError> {
    use futures::StreamExt;
    let mut moves = futures::stream::iter(files)
        .map(|f| async move {
            match (&f.upload, remote) {
                (Some(u), Some(up)) => up.complete(store, epoch, f, u).await,
                (Some(u), None) => Err(SinkError::Store {
                    op: "complete upload",
                    path: f.final_path.clone(),
                    source: object_store::Error::NotSupported {
                        source: format!(
                            "upload {} needs the sink's multipart uploads, and this sink has none",
                            u.id
                        )
                        .into(),
                    },
                }),
                (None, _) => commit_one(store, epoch, f).await,
            }
        })
        .buffer_unordered(if remote.is_some() {
            COMPLETE_CONCURRENCY
        } else {
            COMMIT_CONCURRENCY
        });
    let mut done = 0;
    while let Some(r) = moves.next().await {
        r?;
        done += 1;
        if done == 1 && files.len() > 1 {
            crashpoint::hit("mid_rename");
        }
    }
    Ok(())
}

/// Where one staged file of a prepared epoch stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FileState {
    /// Staged, its final name free: the move is still to do.
    Staged,
    /// The final name is a link to the staged file, whose own name is still
    /// there (a crash between link and unlink): only the unlink is left.
    Linked,
    /// Moved: the final file has the recorded size, the staged one is gone.
    Committed,
    /// The final name holds a file this epoch did not stage (another size,
    /// or another file of the same size). Never overwritten.
    Occupied {
        staged_present: bool,
        final_bytes: u64,
    },
    /// Neither the staged file nor the final file exists.
    Lost,
}

/// An object's metadata, `None` when it does not exist.
pub async fn head_of(
    store: &Arc<dyn ObjectStore>,
    raw: &str,
) -> Result<Option<object_store::ObjectMeta>, SinkError> {
    match store.head(&parse_path(raw)?).await {
        Ok(m) => Ok(Some(m)),
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(source) => Err(SinkError::Store {
            op: "head",
            path: raw.to_string(),
            source,
        }),
    }
}

/// Looks at a staged file and its final name (two `head`s).
pub async fn inspect(store: &Arc<dyn ObjectStore>, f: &StagedFile) -> Result<FileState, SinkError> {
    let staged = head_of(store, &f.staged).await?;
    let fin = head_of(store, &f.final_path).await?;
    Ok(match (staged, fin) {
        (Some(_), None) => FileState::Staged,
        (None, None) => FileState::Lost,
        // A hard link shares the inode: same size, same e-tag (which a
        // local store derives from inode, mtime and size).
        (Some(s), Some(t)) if s.size == t.size && s.e_tag == t.e_tag => FileState::Linked,
        (None, Some(t)) if t.size == f.bytes => FileState::Committed,
        (s, Some(t)) => FileState::Occupied {
            staged_present: s.is_some(),
            final_bytes: t.size,
        },
    })
}

/// Moves one staged file to its final name, never replacing a file: a
/// create-only move (on a local disk a hard link to the final name, then
/// an unlink of the staged name; atomic, no bytes copied). After a crash
/// at any point, running it again finishes the move: see [`FileState`].
async fn commit_one(
    store: &Arc<dyn ObjectStore>,
    epoch: u64,
    f: &StagedFile,
) -> Result<(), SinkError> {
    let staged = parse_path(&f.staged)?;
    let final_path = parse_path(&f.final_path)?;
    match store.rename_if_not_exists(&staged, &final_path).await {
        Ok(()) => return Ok(()),
        // The final name is taken, or the staged file is gone: find out why.
        Err(object_store::Error::AlreadyExists { .. } | object_store::Error::NotFound { .. }) => {}
        Err(source) => {
            return Err(SinkError::Store {
                op: "rename",
                path: f.staged.clone(),
                source,
            });
        }
    }
    match inspect(store, f).await? {
        FileState::Committed => Ok(()),
        FileState::Linked => match store.delete(&staged).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(source) => Err(SinkError::Store {
                op: "delete",
                path: f.staged.clone(),
                source,
            }),
        },
        FileState::Occupied { final_bytes, .. } => Err(SinkError::Occupied {
            epoch,
            staged: f.staged.clone(),
            final_path: f.final_path.clone(),
            final_bytes,
            bytes: f.bytes,
        }),
        FileState::Lost => Err(SinkError::Lost {
            epoch,
            staged: f.staged.clone(),
            final_path: f.final_path.clone(),
        }),
        // The final name was taken a moment ago and is free now: a file
        // that is not ours came and went. Leave it to the next attempt.
        FileState::Staged => Err(SinkError::Store {
            op: "rename",
            path: f.staged.clone(),
            source: object_store::Error::Generic {
                store: "sink",
                source: format!("{} appeared and vanished during the move", f.final_path).into(),
            },
        }),
    }
}

/// Deletes everything under the staging prefix. Call only when no prepared
/// epoch is left uncommitted. Returns how many objects were removed.
///
/// On a local sink (`local_root`), interrupted uploads leave temporary
/// `name#N` files that `object_store` does not list; the staging folder is
/// then removed as a whole. (On S3, a bucket lifecycle rule aborts
/// incomplete multipart uploads.)
///
/// `only`: delete only the staged files whose name starts with it (one
/// replica's, in a sink that several replicas share: see `sluice::cluster`).
pub async fn clean_staging(
    store: &Arc<dyn ObjectStore>,
    local_root: Option<&std::path::Path>,
    only: Option<&str>,
) -> Result<usize, SinkError> {
    let prefix = path_of([STAGING_DIR])?;
    let objs: Vec<object_store::ObjectMeta> = store
        .list(Some(&prefix))
        .try_collect()
        .await
        .map_err(|source| SinkError::Store {
            op: "list",
            path: STAGING_DIR.into(),
            source,
        })?;
    let ours = |name: &str| only.is_none_or(|p| name.starts_with(p));
    let objs: Vec<&object_store::ObjectMeta> = objs
        .iter()
        .filter(|o| ours(o.location.filename().unwrap_or("")))
        .collect();
    for o in &objs {
        match store.delete(&o.location).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(source) => {
                return Err(SinkError::Store {
                    op: "delete",
                    path: o.location.to_string(),
                    source,
                });
            }
        }
    }
    if let (Some(root), Some(prefix)) = (local_root, only) {
        // Interrupted uploads' `name#N` files start with the name too.
        let dir = root.join(STAGING_DIR);
        let entries = std::fs::read_dir(&dir).into_iter().flatten().flatten();
        for e in entries.filter(|e| e.file_name().to_string_lossy().starts_with(prefix)) {
            let _ = std::fs::remove_file(e.path());
        }
    } else if let Some(root) = local_root {
        let dir = root.join(STAGING_DIR);
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(SinkError::Store {
                    op: "remove staging folder",
                    path: dir.display().to_string(),
                    source: object_store::Error::Generic {
                        store: "local",
                        source: Box::new(e),
                    },
                });
            }
        }
    }
    Ok(objs.len())
}
#[cfg(test)]
mod tests;
