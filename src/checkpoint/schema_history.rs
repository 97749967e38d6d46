//! The source schema's history: owns the `schema_history:<E>` records and
//! the committed source schema (`meta:schema`) as they change.
//!
//! The first schema is stored when it is inferred (entry `0`, before any
//! epoch). A change (a new column, a widened type) is stored in the prepare
//! transaction of the epoch that takes the first file needing it, together
//! with that file's record, and takes effect for reading after that epoch
//! commits: a crash before the prepare leaves the old schema and no record
//! of the file (it is taken again and evolves the schema again); after it,
//! both are there and the prepared epoch rolls forward. So the schema a
//! restart reads with is always the committed one.
//!
//! A copy of the committed schema is kept beside the store as a plain file
//! ([`MIRROR_FILE`]) for `sluice check` and `sluice rules test` while a
//! daemon holds the store's lock. It is written after the commit, so it is
//! never ahead of the state.

use super::{StateError, StateStore, decode, encode};
use serde::{Deserialize, Serialize};
use sled::transaction::{ConflictableTransactionError, TransactionalTree};
use std::path::Path;

/// The committed source schema as JSON, beside the state store.
pub const MIRROR_FILE: &str = "source-schema.json";

const PREFIX: &str = "schema_history:";

fn key(epoch: u64) -> String {
    format!("{PREFIX}{epoch:020}")
}

/// One column's change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnChange {
    pub column: String,
    /// `added` or `widened`.
    pub change: String,
    /// The type before (widened only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    pub to: String,
    /// The first file that carried it.
    pub file: String,
}

/// One step of the history: the first schema, or the changes one epoch made.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaEntry {
    pub v: u32,
    /// The epoch that recorded it (0: the first schema, inferred at start).
    pub epoch: u64,
    pub at_ms: i64,
    /// Columns of the source schema after it (partition columns included).
    pub columns: usize,
    /// The first schema: the file it was inferred from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inferred_from: Option<String>,
    #[serde(default)]
    pub changes: Vec<ColumnChange>,
}

impl SchemaEntry {
    /// One line for humans: `epoch 7: gained column x (Utf8) from file f; ...`.
    pub fn describe(&self) -> String {
        if let Some(f) = &self.inferred_from {
            return format!("first schema, {} columns, from file {f}", self.columns);
        }
        let parts: Vec<String> = self
            .changes
            .iter()
            .map(|c| match &c.from {
                Some(from) => format!(
                    "widened column {} from {from} to {} (file {})",
                    c.column, c.to, c.file
                ),
                None => format!("gained column {} ({}) from file {}", c.column, c.to, c.file),
            })
            .collect();
        format!("epoch {}: {}", self.epoch, parts.join("; "))
    }
}

/// A schema change to record in a prepare: the new schema and its entry.
#[derive(Clone, Debug)]
pub struct SchemaUpdate {
    /// `read::SourceSchema::to_json` of the new schema.
    pub schema_json: String,
    pub entry: SchemaEntry,
}

/// Inside the prepare transaction: the new schema and its history entry.
pub(super) fn write(
    tx: &TransactionalTree,
    u: &SchemaUpdate,
) -> Result<(), ConflictableTransactionError<()>> {
    tx.insert(super::K_SCHEMA, u.schema_json.as_bytes())?;
    tx.insert(key(u.entry.epoch).as_bytes(), encode(&u.entry))?;
    Ok(())
}

impl StateStore {
    /// Every recorded step, oldest first (a state from before the history
    /// was kept has none for its first schema).
    pub fn schema_history(&self) -> Result<Vec<SchemaEntry>, StateError> {
        let mut out = Vec::new();
        for kv in self.db.scan_prefix(PREFIX) {
            let (k, v) = kv?;
            out.push(decode(&k, &v)?);
        }
        Ok(out)
    }

    /// The last change (not the first schema), if any.
    pub fn last_schema_change(&self) -> Result<Option<SchemaEntry>, StateError> {
        Ok(self
            .schema_history()?
            .into_iter()
            .rfind(|e| !e.changes.is_empty()))
    }

    /// Stores the first schema, inferred from `file`, with its entry.
    pub fn put_initial_schema(
        &self,
        json: &str,
        columns: usize,
        file: &str,
        at_ms: i64,
    ) -> Result<(), StateError> {
        let entry = SchemaEntry {
            v: super::STATE_VERSION,
            epoch: 0,
            at_ms,
            columns,
            inferred_from: Some(file.to_string()),
            changes: Vec::new(),
        };
        let mut b = sled::Batch::default();
        b.insert(super::K_SCHEMA, json.as_bytes());
        b.insert(key(0).as_bytes(), encode(&entry));
        self.db.apply_batch(b)?;
        self.db.flush()?;
        Ok(())
    }
}

/// Writes the committed schema's copy beside the store (temp file, then
/// rename: a reader never sees half of it).
pub fn write_mirror(state_dir: &Path, json: &str) -> std::io::Result<()> {
    let tmp = state_dir.join(format!(".{MIRROR_FILE}.tmp"));
    std::fs::write(&tmp, json)?;
    std::fs::rename(&tmp, state_dir.join(MIRROR_FILE))
}

/// The committed schema's copy, when there is one.
pub fn read_mirror(state_dir: &Path) -> Option<String> {
    std::fs::read_to_string(state_dir.join(MIRROR_FILE)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::Prepare;

    fn change(epoch: u64) -> SchemaUpdate {
        SchemaUpdate {
            schema_json: format!("{{\"v\":1,\"epoch\":{epoch}}}"),
            entry: SchemaEntry {
                v: 1,
                epoch,
                at_ms: 5,
                columns: 3,
                inferred_from: None,
                changes: vec![ColumnChange {
                    column: "new_col".into(),
                    change: "added".into(),
                    from: None,
                    to: "Utf8".into(),
                    file: "a/b.parquet".into(),
                }],
            },
        }
    }

    #[test]
    fn the_first_schema_and_each_change_are_kept_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let s = StateStore::open(dir.path()).unwrap();
        s.put_initial_schema("{\"first\":1}", 2, "x.parquet", 1)
            .unwrap();
        assert_eq!(s.schema().unwrap().as_deref(), Some("{\"first\":1}"));
        assert!(s.last_schema_change().unwrap().is_none());
        s.prepare(&Prepare {
            epoch: 3,
            source_schema: Some(change(3)),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(s.schema().unwrap(), Some(change(3).schema_json));
        let h = s.schema_history().unwrap();
        assert_eq!(h.len(), 2);
        assert_eq!(
            h[0].describe(),
            "first schema, 2 columns, from file x.parquet"
        );
        assert_eq!(
            h[1].describe(),
            "epoch 3: gained column new_col (Utf8) from file a/b.parquet"
        );
        assert_eq!(s.last_schema_change().unwrap().unwrap().epoch, 3);
        // A prepare without a change leaves the schema alone.
        s.prepare(&Prepare {
            epoch: 4,
            ..Default::default()
        })
        .unwrap();
        assert_eq!(s.schema().unwrap(), Some(change(3).schema_json));
    }

    #[test]
    fn the_mirror_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read_mirror(dir.path()).is_none());
        write_mirror(dir.path(), "{}").unwrap();
        assert_eq!(read_mirror(dir.path()).as_deref(), Some("{}"));
    }
}
