//! Operator tools on the state of a stopped daemon: rewind (forget files so
//! they are read again), export and import (a versioned JSON-lines dump of
//! every key and value, to move a deployment). sled's file lock keeps them
//! from running beside the daemon ([`StateError::Locked`]).
//!
//! Rewind, with `to` the time to rewind to and `lookback` from the config:
//!
//! - every file record whose mtime (as recorded, or as listed now) is after
//!   `to` is removed, so discovery takes the file again and reads it from
//!   row 0: its committed rows are emitted a second time;
//! - the watermark is lowered to `min(watermark, to)`, so those files fall
//!   inside the discovery window again;
//! - lowering the watermark also lowers the window's floor. Listed files at
//!   or before `to` that the old floor kept out (committed long ago and
//!   dropped from the seen-set, or ignored as too late) and that the new
//!   floor would let in are recorded as done ("pinned"), so a rewind never
//!   re-reads anything at or before `to`.
//!
//! Prepared epochs are independent of file records (they name staged files,
//! and the offsets they cover are already in the records), so the caller
//! rolls them forward first, as the next start would.

use super::identity::K_STATE_ID;
use super::{
    FileRecord, FileStatus, K_PRUNED_BELOW, K_VERSION, K_WATERMARK, STATE_VERSION, StateError,
    StateStore, decode, encode, file_key,
};
use crate::discover::{self, Listed};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, Write};
use std::path::Path;
use std::time::Duration;

/// The dump format this build writes and reads.
pub const DUMP_VERSION: u32 = 1;
const DUMP_FORMAT: &str = "sluice-state-dump";

#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("line {line} of the dump: {message}")]
    Dump { line: usize, message: String },
    #[error(
        "the dump is in state dump format {found}; this binary reads up to {DUMP_VERSION}; upgrade sluice"
    )]
    DumpTooNew { found: u32 },
    #[error(
        "the dump holds sluice state format {found}; this binary supports up to {STATE_VERSION}; upgrade sluice"
    )]
    StateTooNew { found: u32 },
    #[error(
        "state at {dir} is not empty ({entries} entries); import into an empty state dir, or pass --force to replace it"
    )]
    NotEmpty { dir: String, entries: usize },
}

// ---------------------------------------------------------------- rewind

/// What a rewind will do; computed without touching the state.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct RewindPlan {
    pub to_ms: i64,
    /// File records to forget, with the rows already committed from each.
    pub forget: Vec<(String, u64)>,
    /// Listed files after `to` the state no longer holds although the old
    /// window kept them out: committed before the lookback window (or
    /// ignored as too late). They are read again too.
    pub untracked: Vec<Listed>,
    /// Listed files at or before `to` recorded as done so the lowered
    /// watermark does not expose them.
    pub pin: Vec<Listed>,
    pub watermark_before: Option<i64>,
    pub watermark_after: Option<i64>,
}

impl RewindPlan {
    /// Rows of forgotten records that were committed and will be emitted again.
    pub fn rows_committed(&self) -> u64 {
        self.forget.iter().map(|(_, r)| r).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.forget.is_empty() && self.untracked.is_empty() && self.pin.is_empty()
    }
}

/// Decides a rewind to `to_ms` (pure). `listing` is a fresh listing of the
/// source; only names matching `pattern` that are not hidden count.
pub fn plan_rewind(
    files: &BTreeMap<String, FileRecord>,
    watermark_ms: Option<i64>,
    listing: &[Listed],
    pattern: &str,
    lookback: Duration,
    to_ms: i64,
) -> RewindPlan {
    let lookback_ms = lookback.as_millis() as i64;
    let listed: HashMap<&str, &Listed> = listing
        .iter()
        .filter(|o| {
            !discover::is_hidden_or_in_progress(&o.path)
                && crate::names::glob_match(pattern, o.path.rsplit('/').next().unwrap_or(""))
        })
        .map(|o| (o.path.as_str(), o))
        .collect();
    let mut plan = RewindPlan {
        to_ms,
        watermark_before: watermark_ms,
        watermark_after: watermark_ms.map(|w| w.min(to_ms)),
        ..Default::default()
    };
    for (path, rec) in files {
        let now = listed.get(path.as_str()).map(|o| o.mtime_ms);
        if rec.mtime_ms > to_ms || now.is_some_and(|m| m > to_ms) {
            plan.forget.push((path.clone(), rec.rows_committed()));
        }
    }
    let old_floor = watermark_ms.map(|w| w.saturating_sub(lookback_ms));
    let new_floor = plan.watermark_after.map(|w| w.saturating_sub(lookback_ms));
    let mut sorted: Vec<&&Listed> = listed.values().collect();
    sorted.sort_by(|a, b| a.path.cmp(&b.path));
    for o in sorted {
        if files.contains_key(&o.path) {
            continue;
        }
        // Only files the old window kept out matter: the others are new and
        // would be taken by the next run with or without a rewind.
        let kept_out = old_floor.is_some_and(|f| o.mtime_ms < f);
        if !kept_out {
            continue;
        }
        if o.mtime_ms > to_ms {
            plan.untracked.push((*o).clone());
        } else if new_floor.is_some_and(|f| o.mtime_ms >= f) {
            plan.pin.push((*o).clone());
        }
    }
    plan
}

impl StateStore {
    /// Applies a rewind plan in one atomic batch and flushes.
    pub fn apply_rewind(&self, plan: &RewindPlan) -> Result<(), StateError> {
        let mut batch = sled::Batch::default();
        for (path, _) in &plan.forget {
            batch.remove(file_key(path).as_bytes());
        }
        for o in &plan.pin {
            let rec = FileRecord {
                v: STATE_VERSION,
                size: o.size,
                mtime_ms: o.mtime_ms,
                status: FileStatus::Done,
                splits: vec![],
                changed_reported: false,
            };
            batch.insert(file_key(&o.path).as_bytes(), encode(&rec));
        }
        if let Some(w) = plan.watermark_after {
            batch.insert(K_WATERMARK, encode(&w));
        }
        // The files the lower floor exposes are pinned above: the pruning
        // horizon falls back to the new floor (`discover::pruned_horizon`).
        batch.remove(K_PRUNED_BELOW);
        self.db.apply_batch(batch)?;
        self.db.flush()?;
        Ok(())
    }
}

// ---------------------------------------------------------------- export / import

#[derive(Debug, Serialize, Deserialize)]
struct DumpHeader {
    format: String,
    version: u32,
    state_version: u32,
    exported_at_ms: i64,
    entries: u64,
}

/// Bytes as text when they are UTF-8 (every key and value sluice writes),
/// else as hex.
#[derive(Debug, Serialize, Deserialize)]
#[serde(untagged)]
enum Bytes {
    Text(String),
    Hex { hex: String },
}

impl Bytes {
    fn from_slice(b: &[u8]) -> Bytes {
        match std::str::from_utf8(b) {
            Ok(s) => Bytes::Text(s.to_string()),
            Err(_) => Bytes::Hex {
                hex: b.iter().map(|x| format!("{x:02x}")).collect(),
            },
        }
    }

    fn into_vec(self) -> Result<Vec<u8>, String> {
        match self {
            Bytes::Text(s) => Ok(s.into_bytes()),
            Bytes::Hex { hex } => {
                if hex.len() % 2 != 0 {
                    return Err("odd number of hex digits".into());
                }
                (0..hex.len())
                    .step_by(2)
                    .map(|i| {
                        hex.get(i..i + 2)
                            .and_then(|d| u8::from_str_radix(d, 16).ok())
                            .ok_or_else(|| format!("bad hex at {i}"))
                    })
                    .collect()
            }
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct DumpEntry {
    k: Bytes,
    v: Bytes,
}

impl StateStore {
    /// Writes every key and value as JSON lines: a header line
    /// (`format`, `version`, `state_version`, `entries`), then one
    /// `{"k": ..., "v": ...}` per key in key order. Returns the entry count.
    pub fn export(&self, out: &mut dyn Write, now_ms: i64) -> Result<u64, ToolError> {
        // The count in the header is checked on import; take it from the
        // same pass that reads the entries.
        let mut lines = Vec::new();
        for kv in self.db.iter() {
            let (k, v) = kv.map_err(StateError::from)?;
            lines.push(encode(&DumpEntry {
                k: Bytes::from_slice(&k),
                v: Bytes::from_slice(&v),
            }));
        }
        let header = DumpHeader {
            format: DUMP_FORMAT.into(),
            version: DUMP_VERSION,
            state_version: self.state_version()?,
            exported_at_ms: now_ms,
            entries: lines.len() as u64,
        };
        out.write_all(&encode(&header))?;
        out.write_all(b"\n")?;
        for l in &lines {
            out.write_all(l)?;
            out.write_all(b"\n")?;
        }
        out.flush()?;
        Ok(lines.len() as u64)
    }

    fn state_version(&self) -> Result<u32, StateError> {
        match self.db.get(K_VERSION)? {
            Some(v) => decode(K_VERSION.as_bytes(), &v),
            None => Ok(STATE_VERSION),
        }
    }

    /// Keys other than the format version and the state id (a fresh state
    /// has none).
    pub fn entries_besides_version(&self) -> usize {
        self.db
            .iter()
            .keys()
            .filter(|k| {
                k.as_ref().is_ok_and(|k| {
                    k.as_ref() != K_VERSION.as_bytes() && k.as_ref() != K_STATE_ID.as_bytes()
                })
            })
            .count()
    }
}

pub(super) type KeyValue = (Vec<u8>, Vec<u8>);

/// Writes `entries` (in key order) as a dump, as [`StateStore::export`] does.
pub(super) fn write_dump(
    out: &mut dyn Write,
    entries: &[KeyValue],
    now_ms: i64,
) -> Result<(), ToolError> {
    let header = DumpHeader {
        format: DUMP_FORMAT.into(),
        version: DUMP_VERSION,
        state_version: STATE_VERSION,
        exported_at_ms: now_ms,
        entries: entries.len() as u64,
    };
    out.write_all(&encode(&header))?;
    out.write_all(b"\n")?;
    for (k, v) in entries {
        out.write_all(&encode(&DumpEntry {
            k: Bytes::from_slice(k),
            v: Bytes::from_slice(v),
        }))?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(())
}

/// Reads and checks a whole dump before anything is written.
pub(super) fn read_dump(input: &mut dyn BufRead) -> Result<Vec<KeyValue>, ToolError> {
    let mut lines = input.lines();
    let bad = |line: usize, message: String| ToolError::Dump { line, message };
    let first = lines
        .next()
        .ok_or_else(|| bad(1, "empty file; not a sluice state dump".into()))??;
    let header: DumpHeader = serde_json::from_str(&first)
        .map_err(|e| bad(1, format!("not a sluice state dump header: {e}")))?;
    if header.format != DUMP_FORMAT {
        return Err(bad(
            1,
            format!(
                "format is {:?}, expected {DUMP_FORMAT:?}; not a sluice state dump",
                header.format
            ),
        ));
    }
    if header.version > DUMP_VERSION {
        return Err(ToolError::DumpTooNew {
            found: header.version,
        });
    }
    if header.state_version > STATE_VERSION {
        return Err(ToolError::StateTooNew {
            found: header.state_version,
        });
    }
    let mut out = Vec::new();
    for (i, l) in lines.enumerate() {
        let l = l?;
        if l.trim().is_empty() {
            continue;
        }
        let e: DumpEntry =
            serde_json::from_str(&l).map_err(|e| bad(i + 2, format!("bad entry: {e}")))?;
        let k = e.k.into_vec().map_err(|m| bad(i + 2, m))?;
        let v = e.v.into_vec().map_err(|m| bad(i + 2, m))?;
        out.push((k, v));
    }
    if out.len() as u64 != header.entries {
        return Err(bad(
            out.len() + 1,
            format!(
                "the header announces {} entries, the file holds {}; the dump is truncated or edited",
                header.entries,
                out.len()
            ),
        ));
    }
    Ok(out)
}

/// Loads a dump into the state at `dir`, which must be empty unless `force`
/// (then its contents are replaced). Returns the entry count.
pub fn import(dir: &Path, input: &mut dyn BufRead, force: bool) -> Result<u64, ToolError> {
    let entries = read_dump(input)?;
    std::fs::create_dir_all(dir)?;
    let store = StateStore::open(dir)?;
    let existing = store.entries_besides_version();
    if existing > 0 && !force {
        return Err(ToolError::NotEmpty {
            dir: dir.display().to_string(),
            entries: existing,
        });
    }
    let mut batch = sled::Batch::default();
    for k in store.db.iter().keys() {
        batch.remove(k.map_err(StateError::from)?);
    }
    for (k, v) in &entries {
        batch.insert(k.as_slice(), v.as_slice());
    }
    store.db.apply_batch(batch).map_err(StateError::from)?;
    store.db.flush().map_err(StateError::from)?;
    Ok(entries.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::super::{Prepare, SplitRecord, StagedFile};
    use super::*;

    fn rec(mtime_ms: i64, offset: u64, status: FileStatus) -> FileRecord {
        FileRecord {
            v: 1,
            size: 10,
            mtime_ms,
            status,
            splits: vec![SplitRecord {
                row_groups: (0, 1),
                rows: 100,
                offset,
            }],
            changed_reported: false,
        }
    }

    fn l(path: &str, mtime_ms: i64) -> Listed {
        Listed {
            path: path.into(),
            size: 10,
            mtime_ms,
        }
    }

    #[test]
    fn rewind_forgets_newer_files_and_pins_what_the_lower_floor_exposes() {
        let lookback = Duration::from_millis(100);
        let mut files = BTreeMap::new();
        // Kept: at or before `to` (500).
        files.insert("a.parquet".to_string(), rec(450, 100, FileStatus::Done));
        // Forgotten: after `to`, done, partly read, and rewritten since.
        files.insert("b.parquet".to_string(), rec(900, 100, FileStatus::Done));
        files.insert("c.parquet".to_string(), rec(950, 40, FileStatus::Active));
        files.insert("d.parquet".to_string(), rec(480, 100, FileStatus::Done));
        let listing = vec![
            l("a.parquet", 450),
            l("b.parquet", 900),
            l("c.parquet", 950),
            l("d.parquet", 700),
            // Dropped from the seen-set long ago (old floor is 850).
            l("old.parquet", 420),
            l("mid.parquet", 600),
            l("ancient.parquet", 100),
            // New since the last run: taken anyway.
            l("new.parquet", 990),
            l("_hidden.parquet", 600),
            l("x.json", 600),
        ];
        let p = plan_rewind(&files, Some(950), &listing, "*.parquet", lookback, 500);
        let forgot: Vec<&str> = p.forget.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(forgot, ["b.parquet", "c.parquet", "d.parquet"]);
        assert_eq!(p.rows_committed(), 240);
        assert_eq!(p.untracked, vec![l("mid.parquet", 600)]);
        assert_eq!(p.pin, vec![l("old.parquet", 420)]);
        assert_eq!(p.watermark_after, Some(500));

        // Rewinding to after the watermark changes nothing.
        let p = plan_rewind(&files, Some(950), &listing, "*.parquet", lookback, 2000);
        assert!(p.is_empty());
        assert_eq!(p.watermark_after, Some(950));
    }

    #[test]
    fn apply_rewind_is_what_the_plan_says() {
        let dir = tempfile::tempdir().unwrap();
        let s = StateStore::open(dir.path()).unwrap();
        s.put_file("a.parquet", &rec(450, 100, FileStatus::Done))
            .unwrap();
        s.put_file("b.parquet", &rec(900, 100, FileStatus::Done))
            .unwrap();
        let plan = RewindPlan {
            to_ms: 500,
            forget: vec![("b.parquet".into(), 100)],
            pin: vec![l("old.parquet", 420)],
            watermark_before: Some(900),
            watermark_after: Some(500),
            ..Default::default()
        };
        s.apply_rewind(&plan).unwrap();
        let files = s.files().unwrap();
        assert!(!files.contains_key("b.parquet"));
        assert_eq!(files["old.parquet"].status, FileStatus::Done);
        assert_eq!(files["old.parquet"].rows_committed(), 0);
        assert_eq!(s.watermark_ms().unwrap(), Some(500));
    }

    fn filled(dir: &Path) -> StateStore {
        let s = StateStore::open(dir).unwrap();
        s.prepare(&Prepare {
            epoch: 1,
            files: vec![StagedFile {
                table: "t".into(),
                partition: "dt=1".into(),
                staged: "s".into(),
                final_path: "f".into(),
                rows: 3,
                bytes: 4,
                upload: None,
            }],
            file_updates: vec![("x.parquet".into(), rec(5, 40, FileStatus::Active))],
            watermark_ms: Some(5),
            now_ms: 9,
            ..Default::default()
        })
        .unwrap();
        s.put_schema("{\"fields\":[]}").unwrap();
        s
    }

    #[test]
    fn export_import_roundtrip_is_exact() {
        let a = tempfile::tempdir().unwrap();
        let s = filled(a.path());
        let mut dump = Vec::new();
        let n = s.export(&mut dump, 1).unwrap();
        assert!(n >= 6, "{n}");
        let b = tempfile::tempdir().unwrap();
        assert_eq!(import(b.path(), &mut dump.as_slice(), false).unwrap(), n);
        let mut again = Vec::new();
        let t = super::super::tests_support::reopen(b.path());
        t.export(&mut again, 1).unwrap();
        assert_eq!(
            String::from_utf8(dump).unwrap(),
            String::from_utf8(again).unwrap()
        );
    }

    #[test]
    fn import_refuses_a_non_empty_state_a_newer_dump_and_a_truncated_one() {
        let a = tempfile::tempdir().unwrap();
        let s = filled(a.path());
        let mut dump = Vec::new();
        s.export(&mut dump, 1).unwrap();
        drop(s);
        let e = import(a.path(), &mut dump.as_slice(), false);
        // The first store may still hold its lock for a moment.
        let e = match e {
            Err(ToolError::State(StateError::Locked { .. })) => {
                drop(super::super::tests_support::reopen(a.path()));
                import(a.path(), &mut dump.as_slice(), false)
            }
            other => other,
        };
        assert!(matches!(e, Err(ToolError::NotEmpty { .. })), "{e:?}");

        let text = String::from_utf8(dump.clone()).unwrap();
        let newer = text.replacen("\"version\":1", "\"version\":99", 1);
        let b = tempfile::tempdir().unwrap();
        let e = import(b.path(), &mut newer.as_bytes(), false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("state dump format 99"), "{e}");

        let cut: String = text.lines().take(3).map(|l| format!("{l}\n")).collect();
        let e = import(b.path(), &mut cut.as_bytes(), false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("truncated"), "{e}");

        let e = import(b.path(), &mut "{}\n".as_bytes(), false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a sluice state dump"), "{e}");
    }

    #[test]
    fn bytes_roundtrip_as_hex_when_not_utf8() {
        let raw = vec![0xff, 0x00, b'a'];
        let j = serde_json::to_string(&Bytes::from_slice(&raw)).unwrap();
        assert_eq!(j, "{\"hex\":\"ff0061\"}");
        let back: Bytes = serde_json::from_str(&j).unwrap();
        assert_eq!(back.into_vec().unwrap(), raw);
    }
}
