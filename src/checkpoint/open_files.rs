//! Output files that stay open across checkpoints: what a checkpoint
//! records of each, so that after a crash the file can be finished with
//! exactly its checkpointed rows (see `sink::staged`).
//!
//! ```text
//! open:<staged>             OpenFileRecord: names, durable length, rows
//! openrg:<staged>\0<k>      footer chunk k: Parquet metadata of the row
//!                           groups that became durable at one checkpoint
//! ```
//!
//! Both are written in the prepare transaction of the epoch whose offsets
//! cover the rows (see [`super::Prepare::open_files`]), and removed in the
//! prepare of the epoch that closes the file (its final name is then in
//! that epoch's file list) or by recovery, which finishes the file.
//! Chunks are incremental: a checkpoint adds only the row groups flushed
//! since the last one, so a file open for hours costs each checkpoint a
//! few kilobytes, not its whole footer again.

use super::{STATE_VERSION, StateError, StateStore, decode, encode};
use serde::{Deserialize, Serialize};

/// An open output file as of the last checkpoint that covered its rows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenFileRecord {
    pub v: u32,
    pub table: String,
    pub partition: String,
    /// Object path of the staged file, relative to the sink root.
    pub staged: String,
    /// Object path it gets when it closes.
    pub final_path: String,
    /// When the file was opened (ms since the Unix epoch).
    pub opened_ms: i64,
    /// Bytes of the staged file that are durable and hold whole row groups
    /// (a Parquet file without its footer).
    pub durable_len: u64,
    /// Rows in those row groups.
    pub rows: u64,
    /// Footer chunks recorded (`openrg:` keys 0..chunks).
    pub chunks: u32,
    /// Its partition gets a `pcommit:` record (partition commit counts its
    /// rows when the file closes, also when recovery finishes it).
    #[serde(default)]
    pub tracked: bool,
    /// On an object-store sink: the upload holding the file's first
    /// bytes, and its parts; the rest of the durable bytes are the
    /// recorded tail (`opentail:`). `None` with a tail: no part sent yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload: Option<super::uploads::UploadParts>,
}

/// One open file's update in a prepare: its record, and the footer chunk
/// of the row groups that became durable with this checkpoint (the chunk
/// number is `record.chunks - 1`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenFileUpdate {
    pub record: OpenFileRecord,
    pub chunk: Option<Vec<u8>>,
    /// On an object-store sink: the durable bytes not in a part (replaces
    /// the recorded tail; empty removes it).
    pub tail: Option<Vec<u8>>,
}

impl OpenFileRecord {
    pub fn new(
        table: &str,
        partition: &str,
        staged: &str,
        final_path: &str,
        opened_ms: i64,
    ) -> Self {
        OpenFileRecord {
            v: STATE_VERSION,
            table: table.to_string(),
            partition: partition.to_string(),
            staged: staged.to_string(),
            final_path: final_path.to_string(),
            opened_ms,
            durable_len: 0,
            rows: 0,
            chunks: 0,
            tracked: false,
            upload: None,
        }
    }
}

pub(super) const OPEN_PREFIX: &str = "open:";
pub(super) const CHUNK_PREFIX: &str = "openrg:";

pub(super) fn open_key(staged: &str) -> String {
    format!("{OPEN_PREFIX}{staged}")
}

pub(super) fn chunk_key(staged: &str, k: u32) -> String {
    format!("{CHUNK_PREFIX}{staged}\0{k:06}")
}

/// The keys and values one prepare writes and removes for open files.
pub(super) struct OpenFileWrites {
    pub inserts: Vec<(String, Vec<u8>)>,
    pub removals: Vec<String>,
}

impl OpenFileWrites {
    /// `closed`: staged paths whose records go (the file closed, or was
    /// finished by recovery), with the chunk counts their records hold.
    pub fn plan(updates: &[OpenFileUpdate], closed: &[(String, u32)]) -> OpenFileWrites {
        let mut inserts = Vec::new();
        let mut removals = Vec::new();
        for u in updates {
            inserts.push((open_key(&u.record.staged), encode(&u.record)));
            if let Some(c) = &u.chunk {
                let k = u.record.chunks.saturating_sub(1);
                inserts.push((chunk_key(&u.record.staged, k), c.clone()));
            }
            match &u.tail {
                Some(t) if !t.is_empty() => {
                    inserts.push((super::uploads::tail_key(&u.record.staged), t.clone()))
                }
                Some(_) => removals.push(super::uploads::tail_key(&u.record.staged)),
                None => {}
            }
        }
        for (staged, chunks) in closed {
            removals.push(open_key(staged));
            removals.push(super::uploads::tail_key(staged));
            removals.extend((0..*chunks).map(|k| chunk_key(staged, k)));
        }
        OpenFileWrites { inserts, removals }
    }
}

impl StateStore {
    /// Every open file recorded, by staged path.
    pub fn open_files(&self) -> Result<Vec<OpenFileRecord>, StateError> {
        let mut out = Vec::new();
        for kv in self.db.scan_prefix(OPEN_PREFIX.as_bytes()) {
            let (k, v) = kv?;
            out.push(decode(&k, &v)?);
        }
        Ok(out)
    }

    /// The footer chunks of an open file, in order. A missing chunk is a
    /// corrupt state: the file could not be finished.
    pub fn open_file_chunks(&self, rec: &OpenFileRecord) -> Result<Vec<Vec<u8>>, StateError> {
        let mut out = Vec::with_capacity(rec.chunks as usize);
        for k in 0..rec.chunks {
            let key = chunk_key(&rec.staged, k);
            match self.db.get(key.as_bytes())? {
                Some(v) => out.push(v.to_vec()),
                None => {
                    return Err(StateError::Corrupt {
                        key,
                        message: "footer chunk of an open file is missing".into(),
                    });
                }
            }
        }
        Ok(out)
    }
}
