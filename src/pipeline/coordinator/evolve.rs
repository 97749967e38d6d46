//! The coordinator's side of source schema evolution: admitting an opened
//! file (it fits the running schema, needs a change, or is refused), and
//! taking a change at a checkpoint.
//!
//! A file that needs a change (a new column, a wider type) is not read in
//! the epoch that takes it. The change is checked at once against what
//! depends on the schema (the dimensions' columns, the running rules and
//! the tables' recorded column types, see `route::schema_guard`); refused,
//! the file is quarantined with the reason. Accepted, the file waits, a
//! checkpoint is due, and that epoch's prepare records the new schema with
//! the file's record (`checkpoint::schema_history`). Once the epoch is
//! committed, with every reader parked, the readers, the enricher and the
//! rules switch to the new schema together and the file is queued. A crash
//! before the prepare leaves neither the schema nor the file's record (the
//! file is taken again and evolves the schema again); after it, both.

use super::*;
use crate::checkpoint::schema_history::{self, ColumnChange, SchemaEntry, SchemaUpdate};
use crate::read::evolve::{self, Change};

/// A schema change waiting for its checkpoint.
pub(super) struct Pending {
    schema: SourceSchema,
    rule_schema: arrow::datatypes::SchemaRef,
    /// The running rules compiled against `rule_schema`.
    rules: Arc<RuleSet>,
    /// Each change and the first file that carried it.
    changes: Vec<(Change, String)>,
    /// Files to queue once the change is committed.
    held: Vec<(String, Arc<read::OpenedFile>)>,
    /// The epoch whose prepare recorded it (then it is taken after commit).
    recorded_in: Option<u64>,
}

impl Coordinator {
    /// A file's footer opened: read it (queue its splits) if it fits the
    /// running schema, hold it for a schema change, or quarantine it.
    pub(super) fn admit(&mut self, path: &str, opened: read::OpenedFile, rec: &FileRecord) {
        if let Err(e) =
            evolve::missing_required(opened.meta.schema(), &self.cfg.source.required_columns)
        {
            return self.quarantine(path, e.to_string());
        }
        if opened.changes.is_empty() {
            return self.enqueue(path, Arc::new(opened), rec);
        }
        let (base, rules) = match &self.pending_schema {
            Some(p) => (p.schema.clone(), p.rules.clone()),
            None => (self.schema.clone(), self.rules.load_full()),
        };
        let changes = match evolve::compare(opened.meta.schema(), &base) {
            Ok(c) => c,
            Err(e) => {
                return self.quarantine(
                    path,
                    format!("{e} (the source schema changes at this checkpoint)"),
                );
            }
        };
        if changes.is_empty() {
            // Another file of this epoch brought the same change.
            match self.pending_schema.as_mut() {
                Some(p) => p.held.push((path.to_string(), Arc::new(opened))),
                None => return self.enqueue(path, Arc::new(opened), rec),
            }
            self.dirty.insert(path.to_string());
            return;
        }
        let what = describe(&changes);
        let candidate = base.evolve(&changes);
        let checked = self
            .enricher
            .enriched_schema(&candidate.full)
            .map_err(|e| e.to_string())
            .and_then(|rule_schema| {
                recompile(&self.cfg, &rules, &rule_schema, &self.table_schemas)
                    .map(|set| (rule_schema, set))
            });
        let (rule_schema, set) = match checked {
            Ok(x) => x,
            Err(e) => {
                return self.quarantine(
                    path,
                    format!("the source schema cannot take this file's change ({what}): {e}"),
                );
            }
        };
        crate::crashpoint::hit("schema_change_found");
        tracing::info!(file = %path, change = %what, epoch = self.epoch,
            "source schema change found; it takes effect at the checkpoint taken now, then the file is read");
        let (mut all, mut held) = self
            .pending_schema
            .take()
            .map(|p| (p.changes, p.held))
            .unwrap_or_default();
        all.extend(changes.into_iter().map(|c| (c, path.to_string())));
        held.push((path.to_string(), Arc::new(opened)));
        self.pending_schema = Some(Pending {
            schema: candidate,
            rule_schema,
            rules: Arc::new(set),
            changes: all,
            held,
            recorded_in: None,
        });
        // Recorded with the change, so the two are committed together.
        self.dirty.insert(path.to_string());
    }

    /// A change waits: a checkpoint is due now.
    pub(super) fn schema_change_waiting(&self) -> bool {
        self.pending_schema.is_some()
    }

    /// For the prepare of `epoch`: the change to record with it, if any.
    pub(super) fn schema_update(&mut self, epoch: u64, now: i64) -> Option<SchemaUpdate> {
        let p = self.pending_schema.as_mut()?;
        p.recorded_in = Some(epoch);
        let changes = p
            .changes
            .iter()
            .map(|(c, file)| match c {
                Change::Added { column, ty } => ColumnChange {
                    column: column.clone(),
                    change: "added".into(),
                    from: None,
                    to: ty.to_string(),
                    file: file.clone(),
                },
                Change::Widened { column, from, to } => ColumnChange {
                    column: column.clone(),
                    change: "widened".into(),
                    from: Some(from.to_string()),
                    to: to.to_string(),
                    file: file.clone(),
                },
            })
            .collect();
        Some(SchemaUpdate {
            schema_json: p.schema.to_json(),
            entry: SchemaEntry {
                v: STATE_VERSION,
                epoch,
                at_ms: now,
                columns: p.schema.full.fields().len(),
                inferred_from: None,
                changes,
            },
        })
    }

    /// After a commit, readers parked: takes a change its prepare recorded.
    pub(super) fn take_schema_change(&mut self, committed: u64) {
        if self
            .pending_schema
            .as_ref()
            .is_none_or(|p| p.recorded_in != Some(committed))
        {
            return;
        }
        let Some(p) = self.pending_schema.take() else {
            return;
        };
        crate::crashpoint::hit("schema_change_committed");
        self.enricher.set_schema(p.rule_schema.clone());
        self.reader_schema.store(Arc::new(p.schema.clone()));
        self.rules.store(p.rules);
        self.schema = p.schema;
        self.rule_schema = p.rule_schema;
        // A rule set refused (maybe for naming a column unknown until now)
        // is tried again.
        if self.rules_tried != self.rules.load().version {
            self.rules_tried.clear();
        }
        for (c, file) in &p.changes {
            self.metrics
                .source_schema_changes
                .fetch_add(1, Ordering::Relaxed);
            tracing::info!(epoch = committed, file = %file, "source schema {c} from file {file}");
        }
        let what = p
            .changes
            .iter()
            .map(|(c, f)| format!("{c} from file {f}"))
            .collect::<Vec<_>>()
            .join("; ");
        self.metrics
            .status
            .set_schema_change(Some(crate::telemetry::status::SchemaChange {
                epoch: committed,
                at_ms: now_ms(),
                what: format!("epoch {committed}: {what}"),
            }));
        if let Err(e) = schema_history::write_mirror(&self.cfg.state_dir, &self.schema.to_json()) {
            tracing::warn!(error = %e, "cannot write the source schema's copy for `sluice check`");
        }
        for (path, opened) in p.held {
            if let Some(rec) = self
                .files
                .get(&path)
                .filter(|r| r.status == FileStatus::Active)
                .cloned()
            {
                self.enqueue(&path, opened, &rec);
            }
        }
    }
}

/// At start: the committed schema's copy for `sluice check` (a state from
/// an older version has none) and the last change for `/status`.
pub(super) fn at_start(
    cfg: &Config,
    state: &StateStore,
    schema: &SourceSchema,
    metrics: &Metrics,
) -> Result<(), PipelineError> {
    if let Err(e) = schema_history::write_mirror(&cfg.state_dir, &schema.to_json()) {
        tracing::warn!(error = %e, "cannot write the source schema's copy for `sluice check`");
    }
    let last = state.last_schema_change()?;
    metrics
        .status
        .set_schema_change(last.map(|e| crate::telemetry::status::SchemaChange {
            epoch: e.epoch,
            at_ms: e.at_ms,
            what: e.describe(),
        }));
    Ok(())
}

fn describe(changes: &[Change]) -> String {
    changes
        .iter()
        .map(Change::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The running rules compiled against `rule_schema`, checked by the
/// tables' column-type guard: one message naming every refusal.
fn recompile(
    cfg: &Config,
    running: &RuleSet,
    rule_schema: &arrow::datatypes::SchemaRef,
    table_schemas: &BTreeMap<String, String>,
) -> Result<RuleSet, String> {
    let files = running
        .rules
        .iter()
        .map(|r| (r.file.clone(), r.sql.clone()))
        .collect();
    let joined = |errs: Vec<crate::route::RuleError>| {
        errs.iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("; ")
    };
    let set = RuleSet::compile_all(files, &cfg.source.name, rule_schema)
        .map_err(joined)?
        .with_on_error(cfg.rules_on_error);
    let refused = crate::route::schema_guard::check(&set, table_schemas);
    if refused.is_empty() {
        Ok(set)
    } else {
        Err(joined(refused))
    }
}
