//! The `sluice` command line: parse arguments, load the validated config,
//! run, and map errors to exit codes (0 ok, 1 runtime failure, 2 bad config
//! or rules).

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use sluice::config::Config;
use sluice::pipeline::{self, RunMode};
use sluice::rules_cli::{self, RulesCliError};
use sluice::telemetry::{self, Metrics};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

mod bench;
mod bench_trickle;
mod ops_cli;
mod repair_cli;

#[derive(Parser)]
#[command(
    name = "sluice",
    version,
    about = "Incremental file-source ETL: visible files in, routed Hive-partitioned Parquet out, exactly once"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the daemon (until SIGTERM), or one pass with --once.
    Run {
        #[arg(long, short)]
        config: PathBuf,
        /// Process every file visible now, commit, and exit.
        #[arg(long)]
        once: bool,
        /// Start even though the state has never committed anything and
        /// the sink already holds output: every visible source file is
        /// read again and its rows are added beside the existing ones.
        #[arg(long)]
        allow_existing_output: bool,
    },
    /// Validate the config and every rule; exit 2 on any error.
    Check {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Generate a sample ODS with rules, run over it once, show what landed.
    Demo {
        /// Where to put the demo (created; an old demo there is replaced).
        #[arg(long, default_value = "sluice-demo")]
        dir: PathBuf,
        /// Hour partitions to generate.
        #[arg(long, default_value_t = 6)]
        hours: u32,
        /// Files per hour partition.
        #[arg(long, default_value_t = 4)]
        files_per_hour: u32,
        /// Rows per file.
        #[arg(long, default_value_t = 12_500)]
        rows_per_file: usize,
    },
    /// Backlog, lag, last checkpoint, quarantine, rows today, and a diagnosis;
    /// from the running daemon (HTTP /status), else from the state.
    Status {
        #[arg(long, short)]
        config: PathBuf,
        /// Print the JSON instead of the summary.
        #[arg(long)]
        json: bool,
        /// The daemon's HTTP address (default: [http] listen from the config).
        #[arg(long)]
        addr: Option<std::net::SocketAddr>,
    },
    /// Work on rules without a daemon: test them on sample rows, explain one.
    Rules {
        #[command(subcommand)]
        cmd: RulesCmd,
    },
    /// Inspect and manage the checkpoint state (stop the daemon first: it
    /// holds the state's lock).
    State {
        #[command(subcommand)]
        cmd: StateCmd,
    },
    /// Measure rows/s and MB/s of the pipeline against a read-and-rewrite baseline.
    Bench(bench::BenchArgs),
    /// List the functions rules may call.
    Functions,
}

#[derive(Subcommand)]
enum RulesCmd {
    /// Run the test files under <rules.dir>/tests/ (exit 1 when one fails),
    /// or show what each table would receive from a sample --input file.
    Test {
        #[arg(long, short)]
        config: PathBuf,
        /// A sample of source rows: .parquet, .csv (with a header) or .ndjson.
        #[arg(long)]
        input: Option<PathBuf>,
        /// Only this rule (table name or rule file name); with --input.
        #[arg(long, requires = "input")]
        rule: Option<String>,
        /// Rows shown per table; with --input.
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Show what one rule compiles to: normalized SQL, plan, columns read,
    /// index conjuncts, output schema.
    Explain {
        /// Table name or rule file name.
        name: String,
        #[arg(long, short)]
        config: PathBuf,
    },
}

#[derive(Subcommand)]
enum QuarantineCmd {
    /// Release quarantined files: the next run reads them again (run it
    /// while the daemon is stopped; the state is locked while it runs).
    Retry {
        #[arg(long, short)]
        config: PathBuf,
        /// Every quarantined file.
        #[arg(long)]
        all: bool,
        /// Read a file from its first row even though rows from it are
        /// already committed (it changed since): those rows land twice.
        #[arg(long)]
        reread: bool,
        /// Paths as `sluice state show` prints them.
        files: Vec<String>,
    },
}

#[derive(Subcommand)]
enum StateCmd {
    /// Quarantined files.
    Quarantine {
        #[command(subcommand)]
        cmd: QuarantineCmd,
    },
    /// Watermark, epochs, files by status, quarantined files with reasons.
    Show {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Forget every source file modified after a time, so the next run reads
    /// it again from the start (replays after an upstream fix). Prints what
    /// it will re-emit and asks, unless --yes.
    Rewind {
        #[arg(long, short)]
        config: PathBuf,
        /// RFC 3339 (2026-11-20T13:00:00Z, +08:00 offsets) or a duration ago (2h).
        #[arg(long)]
        to: String,
        /// Do not ask (required when stdin is not a terminal).
        #[arg(long)]
        yes: bool,
    },
    /// Write every key and value of the state as versioned JSON lines.
    Export {
        #[arg(long, short)]
        config: PathBuf,
        /// Write here instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// An epoch that cannot commit (recovery fails on it at every start):
    /// list its files and what is wrong with each, commit what can be, say
    /// which rows are left out, ask, and mark it committed.
    ResolveEpoch {
        #[arg(long, short)]
        config: PathBuf,
        /// Do not ask (required when stdin is not a terminal).
        #[arg(long)]
        yes: bool,
    },
    /// Re-split the exported states of every replica (all stopped) into
    /// states for a new number of replicas: writes `<out>/replica-<i>.jsonl`,
    /// one per new replica, to load with `state import --force`.
    Reshard {
        /// The `state export` dumps of every current replica, in any order.
        #[arg(long, value_delimiter = ',', required = true)]
        from: Vec<PathBuf>,
        /// The new number of replicas.
        #[arg(long)]
        replicas: u32,
        /// The folder for the new dumps.
        #[arg(long)]
        out: PathBuf,
    },
    /// Load a dump written by `state export` into state.dir (must be empty).
    Import {
        #[arg(long, short)]
        config: PathBuf,
        file: PathBuf,
        /// Replace a non-empty state.
        #[arg(long)]
        force: bool,
    },
}

unsafe extern "C" {
    fn mi_option_set(option: std::ffi::c_int, value: std::ffi::c_long);
}

/// `mi_option_purge_delay` in mimalloc.h (v2): how long freed memory is
/// kept before it goes back to the OS.
const MI_OPTION_PURGE_DELAY: std::ffi::c_int = 15;

/// mimalloc returns freed memory to the OS after 10 ms by default; the
/// writers free and reallocate encoder buffers all the time, and the page
/// faults that follow cost 10-15% of CPU. One second keeps the peak about
/// 60 MB higher. `MIMALLOC_PURGE_DELAY` still overrides it.
///
/// zstd (C) allocates with the C library's malloc: each Parquet column
/// writer creates a compression context whose workspace, above glibc's
/// mmap threshold, is a fresh mapping zeroed page by page and unmapped when
/// the writer closes. With a thousand small files per checkpoint that was
/// 200,000 page faults; kept in the heap, freed workspaces are reused.
/// `GLIBC_TUNABLES` still overrides it.
fn tune_allocator() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: sets a plain integer option; mimalloc reads it on its
        // next purge decision.
        unsafe { mi_option_set(MI_OPTION_PURGE_DELAY, 1000) };
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("GLIBC_TUNABLES").is_none() {
        // SAFETY: called before any other thread exists; mallopt only
        // changes thresholds of later allocations.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 64 << 20);
            libc::mallopt(libc::M_TRIM_THRESHOLD, 128 << 20);
        }
    }
}

fn main() -> ExitCode {
    tune_allocator();
    sluice::crashpoint::init();
    let cli = Cli::parse();
    let res = match cli.cmd {
        Cmd::Run {
            config,
            once,
            allow_existing_output,
        } => cmd_run(
            &config,
            once,
            &pipeline::RunOptions {
                allow_existing_output,
            },
        ),
        Cmd::Check { config } => cmd_check(&config),
        Cmd::Demo {
            dir,
            hours,
            files_per_hour,
            rows_per_file,
        } => cmd_demo(&dir, hours, files_per_hour, rows_per_file),
        Cmd::Rules {
            cmd:
                RulesCmd::Test {
                    config,
                    input,
                    rule,
                    limit,
                },
        } => cmd_rules_test(&config, input.as_deref(), rule.as_deref(), limit),
        Cmd::Rules {
            cmd: RulesCmd::Explain { name, config },
        } => cmd_rules_explain(&config, &name),
        Cmd::State {
            cmd: StateCmd::Show { config },
        } => cmd_state_show(&config),
        Cmd::Status { config, json, addr } => {
            with_config(&config, |cfg| ops_cli::cmd_status(cfg, json, addr))
        }
        Cmd::State {
            cmd: StateCmd::Rewind { config, to, yes },
        } => with_config(&config, |cfg| ops_cli::cmd_rewind(cfg, &to, yes)),
        Cmd::State {
            cmd: StateCmd::Export { config, out },
        } => with_config(&config, |cfg| ops_cli::cmd_export(cfg, out.as_deref())),
        Cmd::State {
            cmd:
                StateCmd::Reshard {
                    from,
                    replicas,
                    out,
                },
        } => ops_cli::cmd_reshard(&from, replicas, &out),
        Cmd::State {
            cmd:
                StateCmd::Import {
                    config,
                    file,
                    force,
                },
        } => with_config(&config, |cfg| ops_cli::cmd_import(cfg, &file, force)),
        Cmd::State {
            cmd:
                StateCmd::Quarantine {
                    cmd:
                        QuarantineCmd::Retry {
                            config,
                            all,
                            reread,
                            files,
                        },
                },
        } => with_config(&config, |cfg| {
            repair_cli::cmd_quarantine_retry(cfg, all, &files, reread)
        }),
        Cmd::State {
            cmd: StateCmd::ResolveEpoch { config, yes },
        } => with_config(&config, |cfg| repair_cli::cmd_resolve_epoch(cfg, yes)),
        Cmd::Bench(args) => bench::run(args),
        Cmd::Functions => {
            for (name, sig, doc) in sluice_udf::docs() {
                println!("{name:<14} {sig:<40} {doc}");
            }
            println!(
                "\nand DataFusion's scalar functions (lower, upper, concat, substr, regexp_like, date_part, ...)"
            );
            Ok(ExitCode::SUCCESS)
        }
    };
    match res {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn load_config(path: &Path) -> Result<Config, ExitCode> {
    Config::load(path).map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::from(2)
    })
}

/// Loads the config (exit 2 when invalid) and runs `f` with it.
fn with_config(path: &Path, f: impl FnOnce(&Config) -> Result<ExitCode>) -> Result<ExitCode> {
    match load_config(path) {
        Ok(cfg) => f(&cfg),
        Err(code) => Ok(code),
    }
}

pub(crate) fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("sluice-io")
        .enable_all()
        .build()
        .context("starting the I/O runtime")
}

fn cmd_run(config: &Path, once: bool, opts: &pipeline::RunOptions) -> Result<ExitCode> {
    let cfg = match load_config(config) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    telemetry::init_logging(cfg.log_format, &cfg.log_level);
    if let Some(n) = sluice::sink::staged::raise_open_file_limit() {
        tracing::debug!(limit = n, "open file limit");
    }
    let rt = runtime()?;
    let metrics = Arc::new(Metrics::default());
    if let Some(addr) = cfg.http_listen {
        let (bound, _task) = rt
            .block_on(telemetry::http::serve(
                addr,
                metrics.clone(),
                telemetry::http::Limits::with_max_connections(cfg.http_max_connections),
            ))
            .with_context(|| format!("binding the HTTP endpoint on {addr}"))?;
        tracing::info!(address = %bound, "serving /metrics, /healthz, /readyz");
    }
    // On a terminal, `--once` (a backfill) shows a progress line; logs stay.
    let _progress = (once && cfg.log_format == sluice::config::LogFormat::Human)
        .then(|| telemetry::progress::Progress::start(metrics.clone()))
        .flatten();
    let mode = if once {
        RunMode::Once
    } else {
        let shutdown = Arc::new(AtomicBool::new(false));
        let flag = shutdown.clone();
        let grace = cfg.shutdown_grace;
        rt.spawn(async move {
            use tokio::signal::unix::{SignalKind, signal};
            let (Ok(mut term), Ok(mut int)) = (
                signal(SignalKind::terminate()),
                signal(SignalKind::interrupt()),
            ) else {
                tracing::error!("cannot install signal handlers");
                return;
            };
            tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM: taking a final checkpoint"),
                _ = int.recv() => tracing::info!("SIGINT: taking a final checkpoint"),
            }
            flag.store(true, Ordering::SeqCst);
            // A final checkpoint that overruns the grace period is abandoned:
            // exiting mid-checkpoint is safe (recovery rolls it forward or
            // discards it), hanging past the supervisor's kill timeout is not.
            tokio::time::sleep(grace).await;
            tracing::error!(grace = %humantime::format_duration(grace), "final checkpoint did not finish within the shutdown grace period; exiting");
            std::process::exit(1);
        });
        // SIGHUP: the coordinator re-reads the config's safe keys and the rules.
        let reload = Arc::new(AtomicBool::new(false));
        let hup = reload.clone();
        rt.spawn(async move {
            use tokio::signal::unix::{SignalKind, signal};
            let Ok(mut sig) = signal(SignalKind::hangup()) else {
                tracing::error!("cannot install the SIGHUP handler");
                return;
            };
            while sig.recv().await.is_some() {
                tracing::info!("SIGHUP: reloading the config and the rules");
                hup.store(true, Ordering::SeqCst);
            }
        });
        RunMode::Daemon { shutdown, reload }
    };
    match pipeline::run_with(&cfg, mode, opts, metrics, rt.handle().clone()) {
        Ok(s) => {
            tracing::info!(
                epochs = s.epochs,
                files_taken = s.files_taken,
                files_done = s.files_done,
                files_quarantined = s.files_quarantined,
                rows = s.rows_committed.values().sum::<u64>(),
                "stopped cleanly"
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(pipeline::PipelineError::Rules(msg)) => {
            eprintln!("error: rules refused:\n{msg}");
            Ok(ExitCode::from(2))
        }
        Err(e @ pipeline::PipelineError::ExistingOutput { .. }) => {
            eprintln!("error: {e}");
            Ok(ExitCode::from(2))
        }
        Err(e) => Err(e).context("pipeline failed"),
    }
}

fn cmd_check(config: &Path) -> Result<ExitCode> {
    let cfg = match load_config(config) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let rt = runtime()?;
    // Every object store first: a missing bucket, denied credentials or an
    // unreachable endpoint, with the store's own error.
    let reached = rt.block_on(sluice::store::probe_config(&cfg));
    let mut unreachable = 0;
    for r in &reached {
        match &r.result {
            Ok(()) => println!("store {:<22} ok  {}", r.key, r.location),
            Err(e) => {
                eprintln!("error: {}: {e}", r.key);
                unreachable += 1;
            }
        }
    }
    if unreachable > 0 {
        eprintln!("{unreachable} store(s) cannot be reached");
        return Ok(ExitCode::from(2));
    }
    // Read-only: use the stored schemas when the state exists and no daemon
    // holds it (sled locks it while the daemon runs).
    let state = match rules_cli::open_state_if_free(&cfg) {
        Ok(s) => s,
        Err(note) => {
            println!("note: {note}; column type changes are not checked");
            None
        }
    };
    // The state's schema, else the first source file's, else the declared
    // `<rules.dir>/tests/_source.toml` (CI, before the first data arrives).
    let resolved =
        match rules_cli::resolve_source_schema(&cfg, state.as_ref(), Vec::new(), rt.handle()) {
            Ok(r) => r,
            Err(e) => return Ok(rules_cli_error(&e)),
        };
    for n in &resolved.notes {
        println!("note: {n}");
    }
    println!("source schema: {}", resolved.origin);
    let schema = rules_cli::for_enrichment(&cfg, resolved);
    // Rules are checked against the enriched rows: load each dimension once.
    let metrics = sluice::telemetry::Metrics::default();
    let enricher = match sluice::enrich::Enricher::start(
        &cfg.dimensions,
        &schema.full,
        sluice::enrich::EnrichOptions {
            state_dir: None,
            background: false,
        },
        &metrics,
        rt.handle(),
    ) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    for (name, origin, rows, _) in enricher.in_use() {
        println!("dimension {name:<23} ok  {rows} rows from {origin}");
    }
    let table_schemas = match &state {
        Some(st) => st
            .table_schemas()
            .context("reading table schemas from the state")?,
        None => Default::default(),
    };
    drop(state);
    let loaded = sluice::route::RuleSet::load(&cfg.rules_dir, &cfg.source.name, &enricher.schema())
        .and_then(|rules| {
            let changes = sluice::route::schema_guard::check(&rules, &table_schemas);
            if changes.is_empty() {
                Ok(rules)
            } else {
                Err(changes)
            }
        });
    match loaded {
        Ok(rules) => {
            println!("config {}: ok", config.display());
            for r in &rules.rules {
                let parts = if r.partition_columns.is_empty() {
                    "-".into()
                } else {
                    r.partition_columns.join(", ")
                };
                println!("rule {:<28} ok  partitioned by {parts}", r.table);
            }
            println!("{} rules, version {}", rules.rules.len(), rules.version);
            Ok(ExitCode::SUCCESS)
        }
        Err(errors) => {
            for e in &errors {
                eprintln!("error: {e}");
            }
            eprintln!("{} error(s); the rule set is refused", errors.len());
            Ok(ExitCode::from(2))
        }
    }
}

/// Prints a rules workbench error; every one of them exits 2.
fn rules_cli_error(e: &RulesCliError) -> ExitCode {
    for line in e.to_string().lines() {
        eprintln!("error: {line}");
    }
    if let RulesCliError::Rules(errors) = e {
        eprintln!("{} error(s); the rule set is refused", errors.len());
    }
    ExitCode::from(2)
}

fn cmd_rules_test(
    config: &Path,
    input: Option<&Path>,
    rule: Option<&str>,
    limit: usize,
) -> Result<ExitCode> {
    let cfg = match load_config(config) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    if let Some(input) = input {
        let rt = runtime()?;
        return Ok(
            match rules_cli::run_adhoc(&cfg, input, rule, limit, rt.handle()) {
                Ok(text) => {
                    print!("{text}");
                    ExitCode::SUCCESS
                }
                Err(e) => rules_cli_error(&e),
            },
        );
    }
    let rt = runtime()?;
    let summary = match rules_cli::run_test_files(&cfg, rt.handle()) {
        Ok(s) => s,
        Err(e) => return Ok(rules_cli_error(&e)),
    };
    print!("{}", summary.text);
    for e in &summary.invalid {
        rules_cli_error(e);
    }
    Ok(if !summary.invalid.is_empty() {
        ExitCode::from(2)
    } else if summary.failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn cmd_rules_explain(config: &Path, name: &str) -> Result<ExitCode> {
    let cfg = match load_config(config) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let rt = runtime()?;
    let report = rules_cli::schema_without_input(&cfg, rt.handle()).and_then(|resolved| {
        let rules = rules_cli::load_rules(&cfg, &resolved.schema)?;
        let i = rules_cli::find_rule(&rules, name)?;
        let dims: Vec<(String, String)> = cfg
            .dimensions
            .iter()
            .flat_map(|d| d.columns.iter().map(|c| (c.to.clone(), d.name.clone())))
            .collect();
        Ok(format!(
            "{}\nsource schema: {}\n",
            rules_cli::explain::explain(&rules, i, &resolved.schema, &dims),
            resolved.origin
        ))
    });
    Ok(match report {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => rules_cli_error(&e),
    })
}

fn cmd_demo(dir: &Path, hours: u32, files_per_hour: u32, rows_per_file: usize) -> Result<ExitCode> {
    let marker = dir.join(".sluice-demo");
    if dir.exists() {
        let empty = std::fs::read_dir(dir)
            .map(|mut d| d.next().is_none())
            .unwrap_or(false);
        if !empty && !marker.exists() {
            anyhow::bail!(
                "{} exists and is not a sluice demo directory; choose another with --dir",
                dir.display()
            );
        }
        std::fs::remove_dir_all(dir)
            .with_context(|| format!("removing the old demo in {}", dir.display()))?;
    }
    std::fs::create_dir_all(dir)?;
    std::fs::write(&marker, "created by `sluice demo`; safe to delete\n")?;
    let ods = dir.join("ods");
    println!(
        "generating {hours} hour partitions x {files_per_hour} files x {rows_per_file} rows under {}",
        ods.display()
    );
    let files = sluice::demo::generate_ods(&ods, hours, files_per_hour, rows_per_file, 4096)?;
    let cfg_path = sluice::demo::write_demo_setup(dir)?;
    let cfg = Config::load(&cfg_path)?;
    telemetry::init_logging(cfg.log_format, &cfg.log_level);
    println!(
        "wrote {} rules and their tests to {} and the config {}",
        sluice::demo::DEMO_RULES.len(),
        cfg.rules_dir.display(),
        cfg_path.display()
    );
    println!(
        "running: sluice run --config {} --once\n",
        cfg_path.display()
    );
    let rt = runtime()?;
    let t0 = std::time::Instant::now();
    let summary = pipeline::run(
        &cfg,
        RunMode::Once,
        Arc::new(Metrics::default()),
        rt.handle().clone(),
    )?;
    let secs = t0.elapsed().as_secs_f64();
    let rows_in = files.iter().map(|(_, r)| *r as u64).sum::<u64>();
    let sink = pipeline::open_store(&cfg.sink.root, &cfg.stores, false)?;
    let tables = rt
        .block_on(sluice::demo::report::summarize(&sink))
        .map_err(anyhow::Error::msg)?;
    println!(
        "\nread {} files ({rows_in} rows) in {secs:.1}s, {} checkpoint(s); what landed in {}:\n",
        summary.files_done, summary.epochs, cfg.sink.root
    );
    print!("{}", sluice::demo::report::render(&tables, &cfg.sink.root));
    println!(
        "\nnext: edit {}/*.sql and run `sluice rules test --config {}` (tests in rules/tests/)",
        cfg.rules_dir.display(),
        cfg_path.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// `state show`: the committed source schema and how it got there.
fn print_source_schema(state: &sluice::checkpoint::StateStore) -> Result<()> {
    let Some(json) = state.schema()? else {
        println!("source schema: none yet (no file read)");
        return Ok(());
    };
    match sluice::read::SourceSchema::from_json(&json) {
        Ok(s) => {
            let cols: Vec<String> = s
                .full
                .fields()
                .iter()
                .map(|f| format!("{} {}", f.name(), f.data_type()))
                .collect();
            println!("source schema: {}", cols.join(", "));
        }
        Err(e) => println!("source schema: unreadable ({e})"),
    }
    let history = state.schema_history()?;
    println!("source schema history: {} step(s)", history.len());
    if history.first().is_none_or(|e| e.inferred_from.is_none()) {
        println!("  first schema: recorded before the history was kept");
    }
    for e in &history {
        println!("  {} (at {})", e.describe(), ops_cli::rfc3339(e.at_ms));
    }
    Ok(())
}

fn cmd_state_show(config: &Path) -> Result<ExitCode> {
    let cfg = match load_config(config) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let state = sluice::checkpoint::StateStore::open(&cfg.state_dir).context("opening state")?;
    let files = state.files()?;
    let wm = state.watermark_ms()?;
    println!("state: {}", cfg.state_dir.display());
    println!(
        "watermark: {}",
        wm.map(|w| w.to_string()).unwrap_or_else(|| "none".into())
    );
    println!("next epoch: {}", state.next_epoch()?);
    println!("state id: {} (in output file names)", state.state_id()?);
    if let Some(c) = state.replica_claim()? {
        println!(
            "replica: {} of {} (this state holds only that shard's files)",
            c.replica, c.replicas
        );
    }
    let mut by_status = std::collections::BTreeMap::new();
    for r in files.values() {
        let k = match &r.status {
            sluice::checkpoint::FileStatus::Active => "active",
            sluice::checkpoint::FileStatus::Done => "done",
            sluice::checkpoint::FileStatus::Quarantined { .. } => "quarantined",
        };
        *by_status.entry(k).or_insert(0) += 1;
    }
    println!("files in the seen-set: {} {:?}", files.len(), by_status);
    let parts = state.partitions()?;
    if let Some(pc) = &cfg.partition_commit {
        // Counted per commit unit (time partition), as they are committed.
        let period_of = sluice::partition_commit::rule::PeriodOf {
            columns: pc.time_columns.clone(),
            utc_offset_s: pc.utc_offset_s,
        };
        let leaves = parts.len();
        let units = sluice::partition_commit::unit::group(parts, &period_of);
        let committed = units.iter().filter(|u| u.committed_before()).count();
        let unannounced = units.iter().filter(|u| u.unannounced()).count();
        let late: u64 = units.iter().map(|u| u.late_count()).sum();
        let failing = units
            .iter()
            .filter(|u| u.unannounced() && u.failed_attempts() > 0)
            .count();
        println!(
            "partition commit: {} partitions tracked, {committed} committed ({late} late re-commits), {unannounced} with rows not announced yet, {failing} of them failing (see sluice status); {leaves} leaf partitions",
            units.len()
        );
    } else if !parts.is_empty() {
        println!(
            "partition commit: off; {} leaf partitions tracked from before",
            parts.len()
        );
    }
    for e in state.epochs()? {
        println!("epoch {}: {:?}, {} files", e.epoch, e.state, e.files.len());
    }
    let open = state.open_files()?;
    println!(
        "open output files: {} ({} rows durable, finished and committed at the next start)",
        open.len(),
        open.iter().map(|f| f.rows).sum::<u64>()
    );
    print_source_schema(&state)?;
    // The schema each table was first written with: a rule that changes a
    // column's type is refused against these.
    let schemas = state.table_schemas()?;
    println!("table schemas: {}", schemas.len());
    for (table, json) in &schemas {
        match sluice::route::schema_guard::from_json(json) {
            Ok(schema) => {
                let cols: Vec<String> = schema
                    .fields()
                    .iter()
                    .map(|f| format!("{} {}", f.name(), f.data_type()))
                    .collect();
                println!("  {table}: {}", cols.join(", "));
            }
            Err(e) => println!("  {table}: unreadable schema ({e})"),
        }
    }
    for (p, r) in &files {
        if let sluice::checkpoint::FileStatus::Quarantined { reason, .. } = &r.status {
            println!("quarantined {p}: {reason}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
