//! Multipart uploads on an object-store sink: which ones this state began,
//! and the parts and unsent bytes ("tail") of the files open across
//! checkpoints. On S3 an output file is one multipart upload to its final
//! name; completing it is the atomic moment the file appears (see
//! `sink::resumable`).
//!
//! ```text
//! upload:<final>\0<id>   BegunUpload: written (and flushed) as soon as the
//!                        store hands out the upload id, before any part
//! opentail:<staged>      the bytes of an open file after its last part
//! ```
//!
//! A begun record goes in the prepare that names its upload in the epoch's
//! file list (the epoch then completes it, also when rolled forward). The
//! records left after recovery name uploads no epoch will complete: they
//! are aborted, so a crash leaves no invisible, billed upload behind.
//! Tails are written in the prepare with the open file's record and
//! removed with it; a tail is below the store's minimum part size, so the
//! state holds at most that much per open file.

use super::{STATE_VERSION, StateError, StateStore, decode, encode};
use serde::{Deserialize, Serialize};

/// An upload's id and the e-tags of its parts, in part order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadParts {
    pub id: String,
    pub parts: Vec<String>,
}

/// An upload this state began.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BegunUpload {
    pub v: u32,
    /// Object path (relative to the sink root) the upload completes to.
    pub path: String,
    pub id: String,
    pub started_ms: i64,
}

pub(super) const BEGUN_PREFIX: &str = "upload:";
pub(super) const TAIL_PREFIX: &str = "opentail:";

pub(super) fn begun_key(path: &str, id: &str) -> String {
    format!("{BEGUN_PREFIX}{path}\0{id}")
}

pub(super) fn tail_key(staged: &str) -> String {
    format!("{TAIL_PREFIX}{staged}")
}

/// Records uploads as they begin, from the writer threads (sled is
/// thread-safe; each record is flushed before its first part is sent).
/// Flushes are shared: records that arrive while one flush runs wait for
/// the next, which covers them all (a checkpoint closing a thousand small
/// files pays a few flushes, not a thousand).
#[derive(Clone)]
pub struct UploadLog {
    db: sled::Db,
    group: std::sync::Arc<GroupFlush>,
}

/// Group commit over `sled::Db::flush`.
#[derive(Default)]
struct GroupFlush {
    /// (records inserted, records known flushed, a flush is running)
    state: std::sync::Mutex<(u64, u64, bool)>,
    done: std::sync::Condvar,
}

impl GroupFlush {
    /// Makes every record inserted before the call durable.
    fn flush(&self, db: &sled::Db) -> Result<(), StateError> {
        let lock = || self.state.lock().unwrap_or_else(|p| p.into_inner());
        let mut s = lock();
        s.0 += 1;
        let mine = s.0;
        loop {
            if s.1 >= mine {
                return Ok(());
            }
            if !s.2 {
                s.2 = true;
                let target = s.0;
                drop(s);
                let r = db.flush();
                s = lock();
                s.2 = false;
                if r.is_ok() {
                    s.1 = s.1.max(target);
                }
                self.done.notify_all();
                r?;
                continue;
            }
            s = self.done.wait(s).unwrap_or_else(|p| p.into_inner());
        }
    }
}

impl std::fmt::Debug for UploadLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UploadLog")
    }
}

impl UploadLog {
    /// Records that upload `id` to `path` began, durably.
    pub fn begin(&self, path: &str, id: &str) -> Result<(), StateError> {
        let rec = BegunUpload {
            v: STATE_VERSION,
            path: path.to_string(),
            id: id.to_string(),
            started_ms: crate::clock::now_ms(),
        };
        self.db.insert(begun_key(path, id), encode(&rec))?;
        self.group.flush(&self.db)
    }

    /// Forgets an upload that was aborted.
    pub fn forget(&self, path: &str, id: &str) -> Result<(), StateError> {
        self.db.remove(begun_key(path, id))?;
        self.group.flush(&self.db)
    }
}

impl StateStore {
    /// The log writer threads record begun uploads in.
    pub fn upload_log(&self) -> UploadLog {
        UploadLog {
            db: self.db.clone(),
            group: Default::default(),
        }
    }

    /// Every upload begun and not yet named by a prepared epoch.
    pub fn begun_uploads(&self) -> Result<Vec<BegunUpload>, StateError> {
        let mut out = Vec::new();
        for kv in self.db.scan_prefix(BEGUN_PREFIX.as_bytes()) {
            let (k, v) = kv?;
            out.push(decode(&k, &v)?);
        }
        Ok(out)
    }

    /// The bytes of an open file after its last uploaded part (empty when
    /// none were recorded).
    pub fn open_file_tail(&self, staged: &str) -> Result<Vec<u8>, StateError> {
        Ok(self
            .db
            .get(tail_key(staged))?
            .map(|v| v.to_vec())
            .unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_begun_from_many_threads_are_all_durable_after_their_call() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateStore::open(dir.path()).unwrap();
        let log = state.upload_log();
        let threads: Vec<_> = (0..16)
            .map(|t| {
                let log = log.clone();
                std::thread::spawn(move || {
                    for i in 0..20 {
                        log.begin(&format!("t/p-{t}-{i}"), &format!("id{i}"))
                            .unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        drop(log);
        drop(state);
        let state = crate::checkpoint::tests_support::reopen(dir.path());
        assert_eq!(state.begun_uploads().unwrap().len(), 320);
    }
}
