//! The coordinator: recovery at start, then the loop of discovery, split
//! planning and checkpoints. It is the only owner of the file records and
//! the state store while the pipeline runs.

use super::PipelineError;
use super::queue::WorkQueue;
use super::reader::{self, ReaderCtx, SplitInfo};
use super::startup::{
    RunOptions, compile_checked, load_checked, now_ms, recover, refuse_existing_output,
    source_schema, taken_of,
};
use super::writer::{WriterCtx, WriterPool};
use crate::checkpoint::{EpochState, FileRecord, FileStatus, STATE_VERSION, StateStore};
use crate::config::Config;
use crate::discover::{self, Listed, SelectParams};
use crate::enrich::{EnrichOptions, Enricher};
use crate::partition_commit::PartitionCommitter;
use crate::partition_commit::rule::SourceMode;
use crate::read::{self, SourceSchema};
use crate::route::RuleSet;
use crate::sink::{self, SinkSettings};
use crate::split::{self, SplitId};
use crate::telemetry::Metrics;
use crate::telemetry::status::{self, Phase};
use arc_swap::ArcSwap;
use object_store::ObjectStore;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tokio::runtime::Handle;

mod checkpointing;
mod discovery;
mod evolve;
mod intake;
mod replicas;
mod retry;
mod upkeep;

/// How long the pipeline runs.
#[derive(Clone)]
pub enum RunMode {
    /// Take every file visible now, commit, return.
    Once,
    /// Run until `shutdown` is set, then take a final checkpoint and return.
    /// `reload` (SIGHUP) re-reads the config's safe keys and the rules.
    Daemon {
        shutdown: Arc<AtomicBool>,
        reload: Arc<AtomicBool>,
    },
}

/// What a run did.
#[derive(Debug, Default, Clone)]
pub struct RunSummary {
    pub epochs: u64,
    pub files_taken: u64,
    pub files_done: u64,
    pub files_quarantined: u64,
    pub rows_committed: BTreeMap<String, u64>,
    pub recovered_epochs: u64,
}

struct Coordinator {
    /// The running config: safe keys change on SIGHUP (see `config::reload`).
    cfg: Config,
    handle: Handle,
    state: StateStore,
    source: Arc<dyn ObjectStore>,
    sink: sink::Target,
    schema: SourceSchema,
    /// The readers' copy of `schema` (swapped at a barrier, see `evolve`).
    reader_schema: Arc<ArcSwap<SourceSchema>>,
    /// A source schema change waiting for its checkpoint.
    pending_schema: Option<evolve::Pending>,
    /// What rules see: the source columns plus the dimensions' columns.
    rule_schema: arrow::datatypes::SchemaRef,
    enricher: Arc<Enricher>,
    metrics: Arc<Metrics>,
    queue: Arc<WorkQueue>,
    splits: Arc<RwLock<HashMap<SplitId, SplitInfo>>>,
    files: BTreeMap<String, FileRecord>,
    dirty: BTreeSet<String>,
    reported: HashSet<String>,
    epoch: u64,
    writers: WriterPool,
    epoch_bytes: Arc<AtomicU64>,
    rules: Arc<ArcSwap<RuleSet>>,
    /// Each table's recorded output schema (JSON), as in the state.
    table_schemas: BTreeMap<String, String>,
    /// The version of the rules directory last tried (accepted or refused).
    rules_tried: String,
    /// The rules directory's version last seen, and since when (see
    /// `upkeep::RULES_SETTLE`).
    rules_seen: Option<(String, Instant)>,
    /// SIGHUP: the next checkpoint reloads the rules without waiting for
    /// the directory to settle.
    rules_now: bool,
    last_rows_read: u64,
    summary: RunSummary,
    waiting: usize,
    /// Listed source files not visible yet (from the last scan).
    waiting_paths: Vec<String>,
    /// `[partition_commit]`, when configured.
    pcommit: Option<PartitionCommitter>,
    /// Discovery's memory between scans (reports, pruning horizon).
    discovery: discovery::DiscoveryBook,
    /// Files whose footer failed to open with an I/O error (see `retry`).
    pending_opens: BTreeMap<String, retry::PendingOpen>,
    /// `run --once`: I/O failures after which a file is left for the next run.
    io_give_up: Option<u32>,
    /// (table, partition)s with an output file open at the last checkpoint:
    /// partition commit waits for them.
    open_partitions: BTreeSet<(String, String)>,
    /// Each table's oldest open output file (opened, ms): its oldest rows
    /// not yet visible.
    oldest_open_ms: BTreeMap<String, i64>,
    /// Output files open after the last checkpoint.
    open_files: usize,
    /// When the last barrier was taken (writers' busy time is per epoch).
    last_barrier: Instant,
    /// `[cluster]`: the link to the other replicas (see `replicas`).
    cluster: Option<crate::cluster::progress::Link>,
    /// `[cluster]`: folders holding other shards' source files.
    other_shards: BTreeSet<String>,
}

/// Runs the pipeline until `mode` says stop, with default [`RunOptions`].
pub fn run(
    cfg: &Config,
    mode: RunMode,
    metrics: Arc<Metrics>,
    handle: Handle,
) -> Result<RunSummary, PipelineError> {
    run_with(cfg, mode, &RunOptions::default(), metrics, handle)
}

/// Runs the pipeline until `mode` says stop.
pub fn run_with(
    cfg: &Config,
    mode: RunMode,
    opts: &RunOptions,
    metrics: Arc<Metrics>,
    handle: Handle,
) -> Result<RunSummary, PipelineError> {
    let source = crate::store::counted::Counted::wrap(
        crate::store::open_with(
            &cfg.source.root,
            &cfg.stores,
            false,
            crate::store::Patience::Source,
        )?,
        metrics.discovery.requests.clone(),
        cfg.source.root.url().is_some(),
    );
    run_with_source(cfg, mode, opts, metrics, handle, source)
}

/// [`run`] over a given source store (tests inject faults through it).
pub(crate) fn run_with_source(
    cfg: &Config,
    mode: RunMode,
    opts: &RunOptions,
    metrics: Arc<Metrics>,
    handle: Handle,
    source: Arc<dyn ObjectStore>,
) -> Result<RunSummary, PipelineError> {
    std::fs::create_dir_all(&cfg.state_dir).map_err(|e| PipelineError::Store {
        root: cfg.state_dir.display().to_string(),
        message: e.to_string(),
    })?;
    metrics.status.set_facts(status::RunFacts {
        readers: cfg.read.readers as u64,
        thresholds: status::Thresholds::from_config(cfg),
        sink_root: cfg.sink.root.local_root(),
        state_dir: &cfg.state_dir,
    });
    let notifier = crate::telemetry::sdnotify::Notifier::from_env();
    let state = StateStore::open(&cfg.state_dir)?;
    state.claim_replica(cfg.cluster.replica, cfg.cluster.replicas)?;
    let target = super::startup::open_sink(
        cfg,
        &state,
        true,
        metrics.sink_store.clone(),
        matches!(mode, RunMode::Daemon { .. }),
    )?;
    let sink = target.store.clone();
    // Before recovery, which empties the staging folder: a state restored
    // afterwards may still need what is staged there.
    if !opts.allow_existing_output {
        refuse_existing_output(cfg, &state, &sink, &handle)?;
    }
    let recovered = recover(&state, &target, &handle)?;
    if let Some(e) = state
        .epochs()?
        .iter()
        .rfind(|e| e.state == EpochState::Committed)
    {
        metrics.status.committed(e.epoch, e.created_ms, None);
    }

    let shutdown = match &mode {
        RunMode::Daemon { shutdown, .. } => Some(shutdown.clone()),
        RunMode::Once => None,
    };
    let schema = loop {
        match source_schema(cfg, Some(&state), true, &source, &handle) {
            Ok(Some(s)) => break s,
            Ok(None) => {}
            // A daemon whose source store cannot be listed yet waits for
            // it, as it would once running (the error is in the log and
            // in the discovery counters).
            Err(PipelineError::Discover(e)) if shutdown.is_some() => {
                metrics.discovery.listing_failed(&e.to_string());
                tracing::warn!(root = %cfg.source.root, error = %e, "cannot list the source to learn its schema; retrying");
            }
            Err(e) => return Err(e),
        }
        // Not ready until the schema is known: the rules cannot be checked
        // before. Keep systemd's start timeout from expiring meanwhile.
        if metrics.status.phase() != Phase::WaitingForSchema {
            metrics.status.set_phase(Phase::WaitingForSchema);
            tracing::info!(root = %cfg.source.root, "waiting for the first source file to learn the schema; not ready until then");
        }
        notifier.notify(&format!(
            "STATUS={}\nEXTEND_TIMEOUT_USEC={}",
            Phase::WaitingForSchema.describe(),
            (cfg.source.scan_interval.min(Duration::from_secs(1)) + Duration::from_secs(30))
                .as_micros()
        ));
        match &shutdown {
            None => {
                tracing::info!(root = %cfg.source.root, "no source file yet: nothing to do");
                return Ok(RunSummary {
                    recovered_epochs: recovered,
                    ..Default::default()
                });
            }
            Some(flag) => {
                if flag.load(Ordering::SeqCst) {
                    return Ok(RunSummary {
                        recovered_epochs: recovered,
                        ..Default::default()
                    });
                }
                std::thread::sleep(cfg.source.scan_interval.min(Duration::from_secs(1)));
            }
        }
    };
    metrics.status.set_phase(Phase::LoadingRules);
    let enricher = Arc::new(Enricher::start(
        &cfg.dimensions,
        &schema.full,
        EnrichOptions {
            state_dir: Some(cfg.state_dir.clone()),
            background: shutdown.is_some(),
        },
        &metrics,
        &handle,
    )?);
    let rule_schema = enricher.schema();
    evolve::at_start(cfg, &state, &schema, &metrics)?;
    let reader_schema = Arc::new(ArcSwap::from_pointee(schema.clone()));
    let table_schemas = state.table_schemas()?;
    let rules = load_checked(cfg, &rule_schema, &table_schemas).map_err(|errs| {
        PipelineError::Rules(
            errs.iter()
                .map(|e| format!("  {e}"))
                .collect::<Vec<_>>()
                .join("\n"),
        )
    })?;
    tracing::info!(rules = rules.rules.len(), version = %rules.version, "rules loaded");
    let rules = Arc::new(ArcSwap::from_pointee(rules));

    let epoch = state.next_epoch()?;
    let epoch_bytes = Arc::new(AtomicU64::new(0));
    let writer_ctx = WriterCtx {
        store: sink.clone(),
        handle: handle.clone(),
        settings: SinkSettings {
            state_id: sink::name_id(
                &state.state_id()?,
                cfg.cluster.is_sharded().then_some(cfg.cluster.replica),
            ),
            target_file_size: cfg.sink.target_file_size,
            row_group_rows: cfg.sink.row_group_rows,
            zstd_level: cfg.sink.zstd_level,
            all_statistics: cfg.sink.statistics == crate::config::Statistics::All,
            part_size: sink::LOCAL_PART_SIZE,
            local_root: target.local_root.clone(),
            remote: target.remote.clone(),
        },
        max_buffered: cfg.sink.max_buffered,
        max_open_files: cfg.sink.max_open_files,
        metrics: metrics.clone(),
        epoch_bytes: epoch_bytes.clone(),
    };
    let (writers, writer_threads) = WriterPool::start(&writer_ctx, cfg.sink.writers, epoch)
        .map_err(|e| PipelineError::Thread(e.to_string()))?;
    // The hot partitions as the last run left them.
    if let Some(json) = state.spread()?
        && let Ok(stored) = serde_json::from_str::<super::spread::Stored>(&json)
    {
        writers.set_spread(stored.into_factors());
    }
    drop(writer_ctx);

    let queue = Arc::new(WorkQueue::default());
    let splits = Arc::new(RwLock::new(HashMap::new()));
    let io_give_up = shutdown.is_none().then_some(retry::ONCE_IO_ATTEMPTS);
    let reader_ctx = Arc::new(ReaderCtx {
        queue: queue.clone(),
        splits: splits.clone(),
        schema: reader_schema.clone(),
        enricher: enricher.clone(),
        rules: rules.clone(),
        store: source.clone(),
        handle: handle.clone(),
        writers: writers.clone(),
        metrics: metrics.clone(),
        batch_rows: cfg.read.batch_rows,
        io_retry: cfg.read.io_retry,
        io_give_up,
        io_failures: Default::default(),
    });
    let mut readers = Vec::new();
    for i in 0..cfg.read.readers {
        let ctx = reader_ctx.clone();
        readers.push(spawn(&format!("sluice-reader-{i}"), move || {
            reader::run(ctx)
        })?);
    }
    drop(reader_ctx);

    let pcommit = match &cfg.partition_commit {
        Some(pc) => {
            let mode = match cfg.source.visibility {
                crate::config::Visibility::Marker { .. } => SourceMode::Marker,
                crate::config::Visibility::Settled { .. }
                | crate::config::Visibility::Manifest { .. } => SourceMode::Settled,
            };
            let p =
                PartitionCommitter::start(pc, mode, sink.clone(), handle.clone(), metrics.clone())?;
            let set = rules.load();
            p.log_committable(
                set.rules
                    .iter()
                    .map(|r| (r.table.as_str(), r.partition_columns.as_slice())),
            );
            Some(p)
        }
        None => None,
    };
    let book = discovery::DiscoveryBook::start(&state, cfg)?;
    let mut c = Coordinator {
        discovery: book,
        cfg: cfg.clone(),
        handle: handle.clone(),
        files: state.files()?,
        state,
        source,
        sink: target,
        schema,
        reader_schema,
        pending_schema: None,
        rule_schema,
        enricher: enricher.clone(),
        metrics: metrics.clone(),
        queue: queue.clone(),
        splits,
        dirty: BTreeSet::new(),
        reported: HashSet::new(),
        epoch,
        writers,
        epoch_bytes,
        rules_tried: rules.load().version.clone(),
        rules_seen: None,
        rules_now: false,
        table_schemas,
        last_rows_read: 0,
        rules,
        summary: RunSummary {
            recovered_epochs: recovered,
            ..Default::default()
        },
        waiting: 0,
        waiting_paths: Vec::new(),
        pcommit,
        pending_opens: BTreeMap::new(),
        io_give_up,
        open_partitions: BTreeSet::new(),
        oldest_open_ms: BTreeMap::new(),
        open_files: 0,
        last_barrier: Instant::now(),
        cluster: None,
        other_shards: BTreeSet::new(),
    };
    c.join_cluster()?;
    c.reported = c
        .files
        .iter()
        .filter(|(_, r)| r.changed_reported)
        .map(|(p, _)| p.clone())
        .collect();
    metrics
        .stall_timeout_ms
        .store(cfg.stall_timeout.as_millis() as i64, Ordering::Relaxed);
    c.report_status();
    metrics.status.set_phase(Phase::Running);
    metrics.ready.store(1, Ordering::Relaxed);
    notifier.notify("READY=1\nSTATUS=running");
    let mut result = c.main_loop(&mode, &notifier);
    if let Some(p) = c.pcommit.take()
        && let Err(e) = p.finish(&c.state, matches!(mode, RunMode::Once))
    {
        tracing::error!(error = %e, "partition commit: stopping the notifier failed");
        result = result.and(Err(e.into()));
    }
    metrics.ready.store(0, Ordering::Relaxed);
    metrics.status.set_phase(Phase::Stopping);
    notifier.notify("STOPPING=1");

    queue.close();
    let summary = c.summary.clone();
    drop(c);
    for r in readers {
        let _ = r.join();
    }
    for w in writer_threads {
        let _ = w.join();
    }
    drop(enricher);
    result.map(|()| summary)
}

fn spawn(
    name: &str,
    f: impl FnOnce() + Send + 'static,
) -> Result<std::thread::JoinHandle<()>, PipelineError> {
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn(f)
        .map_err(|e| PipelineError::Thread(e.to_string()))
}

impl Coordinator {
    fn main_loop(
        &mut self,
        mode: &RunMode,
        notifier: &crate::telemetry::sdnotify::Notifier,
    ) -> Result<(), PipelineError> {
        self.resume_active_files()?;
        let (wake_tx, wake_rx): (SyncSender<()>, Receiver<()>) = sync_channel(1);
        let _watcher = match mode {
            RunMode::Daemon { .. } => match discover::watch(&self.cfg.source.root, wake_tx) {
                Ok(w) => w,
                Err(e) => {
                    tracing::warn!(error = %e, "file notifications unavailable; relying on periodic scans");
                    None
                }
            },
            RunMode::Once => None,
        };
        // `run --once` that cannot list the source has not done its job.
        self.discover(matches!(mode, RunMode::Once))?;
        let mut last_scan = Instant::now();
        let mut last_checkpoint = Instant::now();
        let mut last_ping = Instant::now();
        let mut last_pcommit = Instant::now();
        loop {
            // The watchdog is fed by this loop: if it wedges, systemd restarts us.
            if let Some(every) = notifier.watchdog_every
                && last_ping.elapsed() >= every
            {
                notifier.notify("WATCHDOG=1");
                last_ping = Instant::now();
            }
            self.note_progress();
            self.retry_opens();
            let stop = match mode {
                RunMode::Once => {
                    self.queue.is_idle() && self.opens_settled() && !self.schema_change_waiting()
                }
                RunMode::Daemon { shutdown, .. } => shutdown.load(Ordering::SeqCst),
            };
            // SIGHUP: new safe config keys now, the rules at a checkpoint taken now.
            let hup = matches!(mode, RunMode::Daemon { reload, .. } if reload.swap(false, Ordering::SeqCst));
            if hup {
                self.reload_config();
                self.rules_tried.clear();
                self.rules_now = true;
            }
            // Memory pressure does not checkpoint: the writers flush row
            // groups to stay under `sink.max_buffered` (see `sink::writers`).
            let due = hup
                || self.schema_change_waiting()
                || last_checkpoint.elapsed() >= self.cfg.sink.checkpoint_interval;
            if stop || due {
                self.checkpoint(stop)?;
                last_checkpoint = Instant::now();
            }
            if stop || due || last_pcommit.elapsed() >= Duration::from_secs(1) {
                self.partition_commit_tick();
                self.watch_rules();
                last_pcommit = Instant::now();
            }
            if stop {
                self.report_left_behind();
                return Ok(());
            }
            self.update_gauges();
            if let RunMode::Daemon { .. } = mode {
                let woken = wake_rx.recv_timeout(Duration::from_millis(50)).is_ok();
                if last_scan.elapsed() >= self.cfg.source.scan_interval || woken {
                    // Let a burst of events settle into one scan.
                    if woken {
                        std::thread::sleep(Duration::from_millis(20));
                        while wake_rx.try_recv().is_ok() {}
                    }
                    self.discover(false)?;
                    last_scan = Instant::now();
                }
            } else {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}
