//! Starting a run: opening stores, the refusal to start an empty state over
//! existing output, recovery (step 4 of the checkpoint protocol), finding
//! the source schema, compiling the rules against what they will see, and
//! the discovery view of the files in state. Used by the coordinator and by
//! the commands that read state (`check`, `status`).

use super::PipelineError;
use crate::checkpoint::{EpochState, FileRecord, StateStore};
use crate::config::Config;
use crate::discover::{self, Listed, Taken};
use crate::read::{self, SourceSchema};
use crate::route::RuleSet;
use crate::sink;
use object_store::ObjectStore;
use object_store::local::LocalFileSystem;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use tokio::runtime::Handle;

/// Opens a local directory as an object store.
pub fn local_store(
    root: &std::path::Path,
    create: bool,
) -> Result<Arc<dyn ObjectStore>, PipelineError> {
    let err = |m: String| PipelineError::Store {
        root: root.display().to_string(),
        message: m,
    };
    if create {
        std::fs::create_dir_all(root).map_err(|e| err(e.to_string()))?;
    }
    let fs = LocalFileSystem::new_with_prefix(root).map_err(|e| err(e.to_string()))?;
    Ok(Arc::new(fs))
}

pub(super) use crate::clock::now_ms;

/// Opens a configured location (a local folder, created when `create`, or
/// an object store) as a store rooted at it.
pub fn open_store(
    loc: &crate::store::Location,
    settings: &crate::store::StoreSettings,
    create: bool,
) -> Result<Arc<dyn ObjectStore>, PipelineError> {
    Ok(crate::store::open(loc, settings, create)?)
}

/// Opens the sink as the commit step needs it: the store, the local
/// directory when it is one, and multipart uploads recorded in `state`'s
/// upload log when the store has them.
///
/// `health` hears of failed requests; a daemon (`patient`) retries them
/// until the store answers, anything else a few times.
pub fn open_sink(
    cfg: &Config,
    state: &StateStore,
    create: bool,
    health: Arc<crate::telemetry::store_health::StoreHealth>,
    patient: bool,
) -> Result<sink::Target, PipelineError> {
    let opened = crate::store::open_parts(
        &cfg.sink.root,
        &cfg.stores,
        create,
        // The uploads retry on their own, and report it (`sink::health`).
        crate::store::Patience::Source,
    )?;
    // Test builds may use parts below S3's minimum (the test server takes
    // them), so that small test files span several parts.
    let part_size = crate::crashpoint::ENABLED
        .then(|| std::env::var("SLUICE_TEST_PART_SIZE").ok()?.parse().ok())
        .flatten()
        .unwrap_or(sink::resumable::MIN_PART_SIZE);
    let remote = opened.multipart.clone().map(|mp| {
        Arc::new(sink::resumable::Uploader::new(
            mp,
            opened.prefix.clone(),
            state.upload_log(),
            part_size,
            health.clone(),
            if patient {
                sink::health::Patience::Forever
            } else {
                sink::health::Patience::Attempts(3)
            },
        ))
    });
    Ok(sink::Target {
        store: opened.rooted(),
        local_root: cfg.sink.root.local_root().map(std::path::Path::to_path_buf),
        remote,
    })
}

/// Step 4 of the protocol: roll every prepared epoch forward, finish the
/// files that were open at the last checkpoint (their recorded rows, no
/// more: see `sink::staged` and `sink::resumable`) and commit them as one
/// epoch, then delete what is left in staging and abort the uploads no
/// epoch completes. Returns the number of epochs rolled forward.
pub fn recover(
    state: &StateStore,
    sink: &sink::Target,
    handle: &Handle,
) -> Result<u64, PipelineError> {
    let mut n = 0;
    for e in state.epochs()? {
        if e.state == EpochState::Prepared {
            tracing::info!(
                epoch = e.epoch,
                files = e.files.len(),
                "rolling forward a prepared epoch"
            );
            super::epoch::roll_forward(state, sink, handle, &e)?;
            n += 1;
        }
    }
    finish_open_files(state, sink, handle)?;
    // In a sink shared by replicas, only this replica's staged files.
    let only = match state.replica_claim()? {
        Some(c) if c.replicas > 1 => Some(format!(
            "part-{}-",
            sink::name_id(&state.state_id()?, Some(c.replica))
        )),
        _ => None,
    };
    let removed = handle.block_on(sink::commit::clean_staging(
        &sink.store,
        sink.local_root(),
        only.as_deref(),
    ))?;
    if removed > 0 {
        tracing::info!(
            files = removed,
            "deleted staged files of epochs that never prepared"
        );
    }
    abort_orphan_uploads(state, sink, handle)?;
    Ok(n)
}

/// Aborts every upload begun whose file no epoch names (the process died
/// before the prepare that would have): its rows are read again.
fn abort_orphan_uploads(
    state: &StateStore,
    sink: &sink::Target,
    handle: &Handle,
) -> Result<(), PipelineError> {
    let begun = state.begun_uploads()?;
    if begun.is_empty() {
        return Ok(());
    }
    let Some(up) = &sink.remote else {
        return Err(PipelineError::Store {
            root: "sink".into(),
            message: format!(
                "{} multipart upload(s) were begun by this state, but the sink has no multipart uploads: was sink.root changed?",
                begun.len()
            ),
        });
    };
    for b in &begun {
        handle.block_on(up.abort(&b.path, &b.id))?;
    }
    tracing::info!(
        uploads = begun.len(),
        "aborted uploads of files that never prepared"
    );
    Ok(())
}

/// Finishes every file recorded open and commits them in a new epoch.
fn finish_open_files(
    state: &StateStore,
    sink: &sink::Target,
    handle: &Handle,
) -> Result<(), PipelineError> {
    let open = state.open_files()?;
    if open.is_empty() {
        return Ok(());
    }
    let mut prepare = crate::checkpoint::Prepare {
        epoch: state.next_epoch()?,
        now_ms: now_ms(),
        ..Default::default()
    };
    for rec in open {
        let chunks = state.open_file_chunks(&rec)?;
        let footer = sink::staged::assemble_footer(&chunks).map_err(|e| PipelineError::Store {
            root: rec.staged.clone(),
            message: format!("cannot rebuild the footer of an open file: {e}"),
        })?;
        let (bytes, upload) = match (sink.local_root(), &sink.remote) {
            (Some(root), _) => (
                sink::staged::finish(&root.join(&rec.staged), rec.durable_len, &footer)?,
                None,
            ),
            (None, Some(up)) => {
                let tail = state.open_file_tail(&rec.staged)?;
                let (parts, bytes) = handle.block_on(up.finish_recorded(&rec, tail, &footer))?;
                (bytes, Some(parts))
            }
            (None, None) => {
                return Err(PipelineError::Store {
                    root: "sink".into(),
                    message: format!(
                        "output file {} was open at the last checkpoint, but the sink is neither a local directory nor a store with multipart uploads: was sink.root changed?",
                        rec.final_path
                    ),
                });
            }
        };
        crate::crashpoint::hit("mid_finish");
        if rec.tracked {
            prepare
                .track_partitions
                .insert((rec.table.clone(), rec.partition.clone()));
        }
        prepare.open_removals.push((rec.staged.clone(), rec.chunks));
        prepare.files.push(crate::checkpoint::StagedFile {
            table: rec.table,
            partition: rec.partition,
            staged: rec.staged,
            final_path: rec.final_path,
            rows: rec.rows,
            bytes,
            upload,
        });
    }
    tracing::info!(
        epoch = prepare.epoch,
        files = prepare.files.len(),
        rows = prepare.files.iter().map(|f| f.rows).sum::<u64>(),
        "finished the output files open at the last checkpoint"
    );
    super::epoch::commit_epoch(state, sink, handle, &prepare)
}

/// Operator decisions for one run (command-line flags, not config).
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Start a state that has never committed anything even though the
    /// sink already holds output (`sluice run --allow-existing-output`).
    pub allow_existing_output: bool,
}

/// What a sink holds outside its staging folder: output files, and the
/// tables (first path segment; `_errors/<table>` for error outputs) they
/// are in.
#[derive(Debug, Default)]
pub struct ExistingOutput {
    pub files: u64,
    pub tables: std::collections::BTreeSet<String>,
}

/// Lists the sink's output files (everything outside the staging folder
/// and `_sluice/`); with `replica`, only the files that replica wrote.
pub fn existing_output(
    sink: &Arc<dyn ObjectStore>,
    handle: &Handle,
    replica: Option<u32>,
) -> Result<ExistingOutput, PipelineError> {
    use futures::TryStreamExt;
    let listing: Vec<object_store::ObjectMeta> = handle
        .block_on(sink.list(None).try_collect())
        .map_err(|e| PipelineError::Store {
            root: "sink".to_string(),
            message: e.to_string(),
        })?;
    let mut out = ExistingOutput::default();
    for o in &listing {
        let path = o.location.to_string();
        let mut segs = path.split('/');
        let first = segs.next().unwrap_or_default();
        if first == sink::STAGING_DIR || first == "_sluice" {
            continue;
        }
        if let Some(r) = replica
            && !o
                .location
                .filename()
                .is_some_and(|n| n.starts_with(&format!("part-{}-", sink::replica_tag(r))))
        {
            continue;
        }
        out.files += 1;
        let table = match (first, segs.next()) {
            (crate::route::ERRORS_DIR, Some(t)) => format!("{first}/{t}"),
            _ => first.to_string(),
        };
        out.tables.insert(table);
    }
    Ok(out)
}

/// Refuses to start a state that has never committed anything over a sink
/// that already holds output: every visible source file would be read
/// again and its rows added a second time beside the existing ones.
pub(super) fn refuse_existing_output(
    cfg: &Config,
    state: &StateStore,
    sink: &Arc<dyn ObjectStore>,
    handle: &Handle,
) -> Result<(), PipelineError> {
    if !state.never_committed()? {
        return Ok(());
    }
    let replica = cfg.cluster.is_sharded().then_some(cfg.cluster.replica);
    let found = existing_output(sink, handle, replica)?;
    if found.files == 0 {
        return Ok(());
    }
    const SHOWN: usize = 8;
    let mut tables: Vec<&str> = found
        .tables
        .iter()
        .map(String::as_str)
        .take(SHOWN)
        .collect();
    if found.tables.len() > SHOWN {
        tables.push("...");
    }
    Err(PipelineError::ExistingOutput {
        state_dir: cfg.state_dir.display().to_string(),
        sink_root: cfg.sink.root.to_string(),
        files: found.files,
        table_count: found.tables.len(),
        tables: tables.join(", "),
    })
}

/// Finds the source schema: from state, else from the first visible file
/// (stored in state when `persist`; `sluice check` does not persist).
pub fn source_schema(
    cfg: &Config,
    state: Option<&StateStore>,
    persist: bool,
    store: &Arc<dyn ObjectStore>,
    handle: &Handle,
) -> Result<Option<SourceSchema>, PipelineError> {
    if let Some(s) = state.map(|s| s.schema()).transpose()?.flatten() {
        return Ok(Some(SourceSchema::from_json(&s)?));
    }
    let listing = discover::list(store, &cfg.source.root, cfg.source.follow_symlinks, &|_| {
        false
    })?;
    let mut candidates: Vec<&Listed> = listing
        .files
        .iter()
        .filter(|o| {
            !discover::is_hidden_or_in_progress(&o.path)
                && crate::names::glob_match(
                    &cfg.source.pattern,
                    o.path.rsplit('/').next().unwrap_or(""),
                )
        })
        .collect();
    candidates.sort_by(|a, b| a.path.cmp(&b.path));
    for c in candidates {
        match handle.block_on(read::file_schema(store, &c.path, c.size)) {
            Ok(file_schema) => {
                let parts = match &cfg.source.partition_columns {
                    Some(p) => p.clone(),
                    None => crate::names::hive::parse_path(&c.path)
                        .into_iter()
                        .map(|(k, _)| k)
                        .collect(),
                };
                let schema = SourceSchema::new(file_schema, parts);
                tracing::info!(file = %c.path, columns = schema.full.fields().len(), "inferred the source schema");
                if let Some(st) = state.filter(|_| persist) {
                    let json = schema.to_json();
                    st.put_initial_schema(&json, schema.full.fields().len(), &c.path, now_ms())?;
                }
                return Ok(Some(schema));
            }
            Err(e) => {
                tracing::warn!(file = %c.path, error = %e, "cannot infer the schema from this file; trying the next")
            }
        }
    }
    Ok(None)
}

/// Compiles the rules directory and refuses column type changes of tables
/// that already have files (see `route::schema_guard`).
pub fn load_checked(
    cfg: &Config,
    rule_schema: &arrow::datatypes::SchemaRef,
    table_schemas: &BTreeMap<String, String>,
) -> Result<RuleSet, Vec<crate::route::RuleError>> {
    let files = crate::route::read_rule_files(&cfg.rules_dir).map_err(|e| vec![e])?;
    compile_checked(cfg, files, rule_schema, table_schemas)
}

/// [`load_checked`] on rule files already read.
pub fn compile_checked(
    cfg: &Config,
    files: Vec<(std::path::PathBuf, String)>,
    rule_schema: &arrow::datatypes::SchemaRef,
    table_schemas: &BTreeMap<String, String>,
) -> Result<RuleSet, Vec<crate::route::RuleError>> {
    let set = RuleSet::compile_all(files, &cfg.source.name, rule_schema)?
        .with_on_error(cfg.rules_on_error);
    let changes = crate::route::schema_guard::check(&set, table_schemas);
    if changes.is_empty() {
        Ok(set)
    } else {
        Err(changes)
    }
}

/// What discovery needs of the files in state: size and mtime when taken.
pub fn taken_of(files: &BTreeMap<String, FileRecord>) -> HashMap<String, Taken> {
    files
        .iter()
        .map(|(p, r)| {
            (
                p.clone(),
                Taken {
                    size: r.size,
                    mtime_ms: r.mtime_ms,
                },
            )
        })
        .collect()
}
