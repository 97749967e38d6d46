//! Checkpoint state: the only module that touches sled. Owns the versioned
//! keys and values that make exactly-once work (see DESIGN.md):
//!
//! ```text
//! meta:version        state format version (refuse newer)
//! meta:state_id       random id of this state, in every output file name
//! meta:replica        (replica, replicas) the state was written for, when sharded
//! meta:next_epoch     the next epoch number to use
//! meta:watermark      discovery watermark (ms since epoch, highest mtime taken)
//! meta:schema         the committed source schema (changes: see [`schema_history`])
//! schema_history:<E>  the first schema (E = 0) and each change, with its epoch
//! meta:spread         hot partitions spread over several writers
//! file:<path>         FileRecord: size, mtime, status, per-split row offsets
//! epoch:<E>           EpochRecord: Prepared | Committed, staged -> final names
//! rows:<day>:<table>  rows committed to a table on a UTC day (for `sluice status`)
//! table_schema:<T>    output schema of table T's files (route::schema_guard's JSON)
//! open:<staged>       an output file open across checkpoints (see [`open_files`])
//! openrg:<staged>\0<k> its footer chunks
//! upload:<F>\0<id>    a multipart upload begun (see [`uploads`])
//! opentail:<staged>   an open file's bytes after its last part
//! pcommit:<T>\0<P>    PartitionRecord of table T's partition P: rows and files
//!                     committed so far (added in the prepare transaction), and
//!                     how many of them the last partition commit announced;
//!                     failed commit attempts since (count, first, last error)
//! pcluster:<T>\0<P>   replica 0 of a cluster: totals its commits announced
//! ```
//!
//! A prepare is one sled transaction (file offsets + staged file list +
//! watermark + next epoch) followed by a flush: after it returns, the epoch
//! can always be rolled forward. Values are JSON with a `v` field so the
//! format can evolve; the store sits behind this small interface so sled can
//! be swapped.
//!
//! [`tools`] holds the operator tools that work on a stopped daemon's state
//! (rewind, export, import); [`retry`] the plan for releasing quarantined
//! files; [`identity`] the state id and whether the state has ever
//! committed anything; [`pcommit`] the partition commit records.

pub mod cluster_book;
pub mod identity;
pub mod ledger;
pub mod open_files;
pub mod pcommit;
pub mod reshard;
pub mod retry;
pub mod schema_history;
pub mod tools;
pub mod uploads;

use serde::{Deserialize, Serialize};
use sled::transaction::{ConflictableTransactionError, TransactionError};
use std::collections::BTreeMap;
use std::path::Path;

pub use pcommit::PartitionRecord;
use pcommit::pcommit_key;

/// The state format this build writes and reads.
pub const STATE_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot open state in {dir}: {source}")]
    Open { dir: String, source: sled::Error },
    #[error(
        "state at {dir} is locked by another process (is the daemon running?); stop the daemon first"
    )]
    Locked { dir: String },
    #[error("state store: {0}")]
    Sled(#[from] sled::Error),
    #[error(
        "state at {dir} was written by sluice state format {found}; this binary supports up to {STATE_VERSION}; upgrade sluice"
    )]
    TooNew { dir: String, found: u32 },
    #[error("corrupt state value under {key}: {message}")]
    Corrupt { key: String, message: String },
    #[error("cannot make a random state id: {0}")]
    Random(String),
    /// The state belongs to another replica, or to another number of replicas.
    #[error("{0}")]
    Replica(String),
}

/// What happened to a source file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum FileStatus {
    /// Taken; some splits still have rows to read.
    Active,
    /// Every row of every split has been committed.
    Done,
    /// Could not be read; kept with its reason, never retried silently.
    Quarantined { reason: String, at_ms: i64 },
}

/// A split of a file and how far it has been committed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SplitRecord {
    /// Row groups `[start, end)` of the Parquet file.
    pub row_groups: (usize, usize),
    /// Rows in the split.
    pub rows: u64,
    /// Rows of the split already committed (resume here).
    pub offset: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRecord {
    pub v: u32,
    pub size: u64,
    pub mtime_ms: i64,
    #[serde(flatten)]
    pub status: FileStatus,
    pub splits: Vec<SplitRecord>,
    /// Set once a change of size or mtime after taking it has been reported.
    #[serde(default)]
    pub changed_reported: bool,
}

impl FileRecord {
    pub fn rows_committed(&self) -> u64 {
        self.splits.iter().map(|s| s.offset).sum()
    }
}

/// A staged output file and the final name it gets at commit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StagedFile {
    pub table: String,
    /// Hive partition path, e.g. `dt=2026-11-20/hour=13` (may be empty).
    pub partition: String,
    /// Object path of the staged file, relative to the sink root.
    pub staged: String,
    /// Object path of the final file, relative to the sink root.
    pub final_path: String,
    pub rows: u64,
    pub bytes: u64,
    /// On an object-store sink: the multipart upload that becomes the
    /// file when completed (then `staged` is `final_path`: nothing moves).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload: Option<uploads::UploadParts>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EpochState {
    Prepared,
    Committed,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpochRecord {
    pub v: u32,
    pub epoch: u64,
    pub state: EpochState,
    pub created_ms: i64,
    pub files: Vec<StagedFile>,
}

/// Everything one prepare records atomically.
#[derive(Debug, Default)]
pub struct Prepare {
    pub epoch: u64,
    pub files: Vec<StagedFile>,
    /// New or updated file records (offsets, status).
    pub file_updates: Vec<(String, FileRecord)>,
    /// File records to drop (done and older than the lookback window).
    pub file_removals: Vec<String>,
    pub watermark_ms: Option<i64>,
    /// Records below this mtime are pruned, now or before (see
    /// [`StateStore::pruned_below_ms`]).
    pub pruned_below_ms: Option<i64>,
    pub now_ms: i64,
    /// Tables whose output schema is new or changed with this epoch's
    /// files: (table, schema JSON). Recorded with the files that have it.
    pub table_schemas: Vec<(String, String)>,
    /// (table, partition)s whose [`PartitionRecord`] gets the epoch's rows
    /// and files (the committable ones, when partition commit is configured).
    pub track_partitions: std::collections::BTreeSet<(String, String)>,
    /// Files still open after this checkpoint whose durable prefix grew
    /// (or that were opened since the last one): their new records.
    pub open_files: Vec<open_files::OpenFileUpdate>,
    /// Open-file records that go: (staged path, chunks). The file closed in
    /// this epoch (it is in `files`) or recovery finished it.
    pub open_removals: Vec<(String, u32)>,
    /// The source schema changed with a file this epoch takes: recorded
    /// with it (see [`schema_history`]).
    pub source_schema: Option<schema_history::SchemaUpdate>,
    /// Hot partitions' spread over writers, when it changed (JSON).
    pub spread: Option<String>,
}

/// The sled-backed state store.
pub struct StateStore {
    db: sled::Db,
}

const K_VERSION: &str = "meta:version";
const K_NEXT_EPOCH: &str = "meta:next_epoch";
const K_WATERMARK: &str = "meta:watermark";
/// Records of finished files with an mtime below this were pruned (i64::MIN:
/// none yet; absent: a state from before it was kept, see
/// `discover::pruned_horizon`).
const K_PRUNED_BELOW: &str = "meta:pruned_below";
const K_SCHEMA: &str = "meta:schema";
/// Hot partitions spread over several writers (`pipeline::spread`, JSON).
const K_SPREAD: &str = "meta:spread";

fn file_key(path: &str) -> String {
    format!("file:{path}")
}

fn table_schema_key(table: &str) -> String {
    format!("table_schema:{table}")
}

fn epoch_key(epoch: u64) -> String {
    format!("epoch:{epoch:020}")
}

const ROWS_PREFIX: &str = "rows:";

fn rows_key(day: &str, table: &str) -> String {
    format!("{ROWS_PREFIX}{day}:{table}")
}

/// Days of per-table row counts kept in state.
const ROWS_KEEP_DAYS: i64 = 8;

/// The UTC day (`YYYY-MM-DD`) of a time in ms since the Unix epoch.
pub fn utc_day(ms: i64) -> String {
    match chrono::DateTime::from_timestamp_millis(ms) {
        Some(t) => t.format("%Y-%m-%d").to_string(),
        // Beyond chrono's ±262,000 years: no real clock reads that.
        None => "out-of-range".into(),
    }
}

fn decode<T: for<'de> Deserialize<'de>>(key: &[u8], v: &[u8]) -> Result<T, StateError> {
    serde_json::from_slice(v).map_err(|e| StateError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        message: e.to_string(),
    })
}

fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    // Serializing these plain structs cannot fail.
    serde_json::to_vec(v).unwrap_or_default()
}

impl StateStore {
    /// Opens (or creates) the state in `dir`, refusing state from a newer build.
    pub fn open(dir: &Path) -> Result<StateStore, StateError> {
        let db = sled::Config::new()
            .path(dir)
            .mode(sled::Mode::LowSpace)
            .open()
            .map_err(|source| match &source {
                // sled takes an exclusive file lock; a running daemon holds it.
                sled::Error::Io(e) if e.to_string().contains("could not acquire lock") => {
                    StateError::Locked {
                        dir: dir.display().to_string(),
                    }
                }
                _ => StateError::Open {
                    dir: dir.display().to_string(),
                    source,
                },
            })?;
        let store = StateStore { db };
        match store.db.get(K_VERSION)? {
            Some(v) => {
                let found: u32 = decode(K_VERSION.as_bytes(), &v)?;
                if found > STATE_VERSION {
                    return Err(StateError::TooNew {
                        dir: dir.display().to_string(),
                        found,
                    });
                }
            }
            None => {
                store.db.insert(K_VERSION, encode(&STATE_VERSION))?;
                store.db.flush()?;
            }
        }
        store.ensure_state_id()?;
        Ok(store)
    }

    pub fn next_epoch(&self) -> Result<u64, StateError> {
        Ok(match self.db.get(K_NEXT_EPOCH)? {
            Some(v) => decode(K_NEXT_EPOCH.as_bytes(), &v)?,
            None => 1,
        })
    }

    pub fn watermark_ms(&self) -> Result<Option<i64>, StateError> {
        match self.db.get(K_WATERMARK)? {
            Some(v) => Ok(Some(decode(K_WATERMARK.as_bytes(), &v)?)),
            None => Ok(None),
        }
    }

    /// The mtime below which file records were pruned, when recorded.
    pub fn pruned_below_ms(&self) -> Result<Option<i64>, StateError> {
        match self.db.get(K_PRUNED_BELOW)? {
            Some(v) => Ok(Some(decode(K_PRUNED_BELOW.as_bytes(), &v)?)),
            None => Ok(None),
        }
    }

    /// Hot partitions' spread over writers as last recorded (JSON).
    pub fn spread(&self) -> Result<Option<String>, StateError> {
        Ok(self
            .db
            .get(K_SPREAD)?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    /// The stored source schema description (see `read::schema_to_json`).
    pub fn schema(&self) -> Result<Option<String>, StateError> {
        Ok(self
            .db
            .get(K_SCHEMA)?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    pub fn put_schema(&self, json: &str) -> Result<(), StateError> {
        self.db.insert(K_SCHEMA, json.as_bytes())?;
        self.db.flush()?;
        Ok(())
    }

    /// Every file record, by path.
    pub fn files(&self) -> Result<BTreeMap<String, FileRecord>, StateError> {
        let mut out = BTreeMap::new();
        for kv in self.db.scan_prefix("file:") {
            let (k, v) = kv?;
            let rec: FileRecord = decode(&k, &v)?;
            let path = String::from_utf8_lossy(&k["file:".len()..]).into_owned();
            out.insert(path, rec);
        }
        Ok(out)
    }

    /// The recorded output schema of every table that has files: table -> JSON.
    pub fn table_schemas(&self) -> Result<BTreeMap<String, String>, StateError> {
        let mut out = BTreeMap::new();
        for kv in self.db.scan_prefix("table_schema:") {
            let (k, v) = kv?;
            let table = String::from_utf8_lossy(&k["table_schema:".len()..]).into_owned();
            out.insert(table, String::from_utf8_lossy(&v).into_owned());
        }
        Ok(out)
    }

    pub fn epochs(&self) -> Result<Vec<EpochRecord>, StateError> {
        let mut out = Vec::new();
        for kv in self.db.scan_prefix("epoch:") {
            let (k, v) = kv?;
            out.push(decode(&k, &v)?);
        }
        Ok(out)
    }

    /// Step 2 of the protocol: records epoch `p.epoch` as prepared together
    /// with the offsets it covers, in one transaction, and flushes.
    pub fn prepare(&self, p: &Prepare) -> Result<(), StateError> {
        let rec = EpochRecord {
            v: STATE_VERSION,
            epoch: p.epoch,
            state: EpochState::Prepared,
            created_ms: p.now_ms,
            files: p.files.clone(),
        };
        let rec_bytes = encode(&rec);
        let updates: Vec<(String, Vec<u8>)> = p
            .file_updates
            .iter()
            .map(|(k, r)| (file_key(k), encode(r)))
            .collect();
        let removals: Vec<String> = p.file_removals.iter().map(|k| file_key(k)).collect();
        let day = utc_day(p.now_ms);
        let mut table_rows: BTreeMap<String, u64> = BTreeMap::new();
        for f in &p.files {
            *table_rows.entry(rows_key(&day, &f.table)).or_default() += f.rows;
        }
        self.prune_table_rows(p.now_ms)?;
        let mut partitions: BTreeMap<String, PartitionRecord> = BTreeMap::new();
        {
            let tracked = |f: &&StagedFile| {
                p.track_partitions
                    .contains(&(f.table.clone(), f.partition.clone()))
            };
            for f in p.files.iter().filter(tracked) {
                let r = partitions
                    .entry(pcommit_key(&f.table, &f.partition))
                    .or_insert_with(|| PartitionRecord {
                        v: STATE_VERSION,
                        table: f.table.clone(),
                        partition: f.partition.clone(),
                        ..Default::default()
                    });
                r.rows += f.rows;
                r.files += 1;
            }
        }
        let schemas: Vec<(String, &str)> = p
            .table_schemas
            .iter()
            .map(|(t, json)| (table_schema_key(t), json.as_str()))
            .collect();
        let open = open_files::OpenFileWrites::plan(&p.open_files, &p.open_removals);
        // The epoch now names these uploads: it completes them.
        let begun_named: Vec<String> = p
            .files
            .iter()
            .filter_map(|f| {
                f.upload
                    .as_ref()
                    .map(|u| uploads::begun_key(&f.final_path, &u.id))
            })
            .collect();
        let res: Result<(), TransactionError<()>> = self.db.transaction(|tx| {
            tx.insert(epoch_key(p.epoch).as_bytes(), rec_bytes.as_slice())?;
            for k in &open.removals {
                tx.remove(k.as_bytes())?;
            }
            for k in &begun_named {
                tx.remove(k.as_bytes())?;
            }
            if let Some(json) = &p.spread {
                tx.insert(K_SPREAD, json.as_bytes())?;
            }
            for (k, v) in &open.inserts {
                tx.insert(k.as_bytes(), v.as_slice())?;
            }
            tx.insert(K_NEXT_EPOCH, encode(&(p.epoch + 1)))?;
            if let Some(w) = p.watermark_ms {
                tx.insert(K_WATERMARK, encode(&w))?;
            }
            if let Some(w) = p.pruned_below_ms {
                tx.insert(K_PRUNED_BELOW, encode(&w))?;
            }
            for (k, v) in &updates {
                tx.insert(k.as_bytes(), v.as_slice())?;
            }
            for k in &removals {
                tx.remove(k.as_bytes())?;
            }
            for (k, n) in &table_rows {
                let before: u64 = tx
                    .get(k.as_bytes())?
                    .and_then(|v| serde_json::from_slice(&v).ok())
                    .unwrap_or(0);
                tx.insert(k.as_bytes(), encode(&(before + n)))?;
            }
            for (k, json) in &schemas {
                tx.insert(k.as_bytes(), json.as_bytes())?;
            }
            if let Some(u) = &p.source_schema {
                schema_history::write(tx, u)?;
            }
            for (k, add) in &partitions {
                let mut r: PartitionRecord = tx
                    .get(k.as_bytes())?
                    .and_then(|v| serde_json::from_slice(&v).ok())
                    .unwrap_or_else(|| PartitionRecord {
                        rows: 0,
                        files: 0,
                        ..add.clone()
                    });
                r.rows += add.rows;
                r.files += add.files;
                tx.insert(k.as_bytes(), encode(&r))?;
            }
            Ok::<(), ConflictableTransactionError<()>>(())
        });
        match res {
            Ok(()) => {}
            Err(TransactionError::Storage(e)) => return Err(e.into()),
            Err(TransactionError::Abort(())) => unreachable_abort(),
        }
        self.db.flush()?;
        Ok(())
    }

    /// Step 3 done: the epoch's files are final. Old committed epochs are
    /// dropped, keeping the last `keep` for inspection.
    pub fn mark_committed(&self, epoch: u64, keep: usize) -> Result<(), StateError> {
        let key = epoch_key(epoch);
        if let Some(v) = self.db.get(&key)? {
            let mut rec: EpochRecord = decode(key.as_bytes(), &v)?;
            rec.state = EpochState::Committed;
            self.db.insert(key.as_bytes(), encode(&rec))?;
        }
        let committed: Vec<u64> = self
            .epochs()?
            .into_iter()
            .filter(|e| e.state == EpochState::Committed)
            .map(|e| e.epoch)
            .collect();
        if committed.len() > keep {
            for e in &committed[..committed.len() - keep] {
                self.db.remove(epoch_key(*e))?;
            }
        }
        self.db.flush()?;
        Ok(())
    }

    /// Rows committed per table on the UTC day `day` (`YYYY-MM-DD`).
    pub fn table_rows(&self, day: &str) -> Result<BTreeMap<String, u64>, StateError> {
        let prefix = format!("{ROWS_PREFIX}{day}:");
        let mut out = BTreeMap::new();
        for kv in self.db.scan_prefix(prefix.as_bytes()) {
            let (k, v) = kv?;
            let table = String::from_utf8_lossy(&k[prefix.len()..]).into_owned();
            out.insert(table, decode(&k, &v)?);
        }
        Ok(out)
    }

    /// Drops per-table row counts older than [`ROWS_KEEP_DAYS`]. Keys sort by
    /// day, so this stops at the first key that is recent enough.
    fn prune_table_rows(&self, now_ms: i64) -> Result<(), StateError> {
        let cutoff = rows_key(&utc_day(now_ms - ROWS_KEEP_DAYS * 86_400_000), "");
        for kv in self.db.scan_prefix(ROWS_PREFIX) {
            let (k, _) = kv?;
            if k.as_ref() >= cutoff.as_bytes() {
                break;
            }
            self.db.remove(k)?;
        }
        Ok(())
    }

    /// Writes one file record outside an epoch (operator tools).
    pub fn put_file(&self, path: &str, rec: &FileRecord) -> Result<(), StateError> {
        self.db.insert(file_key(path), encode(rec))?;
        self.db.flush()?;
        Ok(())
    }
}

fn unreachable_abort() {
    // The transaction closure never aborts; sled's type demands the arm.
}

#[cfg(test)]
pub(crate) mod tests_support {
    use super::*;

    /// sled releases its file lock from a background thread after a drop.
    pub fn reopen(dir: &Path) -> StateStore {
        for _ in 0..100 {
            match StateStore::open(dir) {
                Ok(s) => return s,
                Err(StateError::Open { .. } | StateError::Locked { .. }) => {
                    std::thread::sleep(std::time::Duration::from_millis(20))
                }
                Err(e) => panic!("{e}"),
            }
        }
        panic!("state lock never released")
    }
}

#[cfg(test)]
mod tests;
