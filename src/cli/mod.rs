//! The `sluice` command line: the arguments (clap), which command runs, the
//! validated config every command starts from, and the exit codes (0 ok, 1
//! runtime failure, 2 bad config, rules or arguments).
//!
//! One file per command; each parses nothing, prints its report and picks
//! its exit code, and leaves the work to the library (`sluice::*`). Shared
//! here: loading the config ([`with_config`]) and the I/O runtime
//! ([`runtime`]); in [`prompt`]: opening a stopped daemon's state, asking
//! before a change, times as RFC 3339.

mod check;
mod demo;
mod prompt;
mod quarantine;
mod resolve_epoch;
mod rewind;
mod rules;
mod run;
mod state_show;
mod status;
mod transfer;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use sluice::config::Config;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

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
    Bench(crate::bench::BenchArgs),
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

/// Parses the arguments, runs the command and maps an error to exit 1.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let res = match cli.cmd {
        Cmd::Run {
            config,
            once,
            allow_existing_output,
        } => with_config(&config, |cfg| {
            run::run(
                cfg,
                once,
                &sluice::pipeline::RunOptions {
                    allow_existing_output,
                },
            )
        }),
        Cmd::Check { config } => with_config(&config, |cfg| check::run(&config, cfg)),
        Cmd::Demo {
            dir,
            hours,
            files_per_hour,
            rows_per_file,
        } => demo::run(&dir, hours, files_per_hour, rows_per_file),
        Cmd::Rules {
            cmd:
                RulesCmd::Test {
                    config,
                    input,
                    rule,
                    limit,
                },
        } => with_config(&config, |cfg| {
            rules::test(cfg, input.as_deref(), rule.as_deref(), limit)
        }),
        Cmd::Rules {
            cmd: RulesCmd::Explain { name, config },
        } => with_config(&config, |cfg| rules::explain(cfg, &name)),
        Cmd::Status { config, json, addr } => {
            with_config(&config, |cfg| status::run(cfg, json, addr))
        }
        Cmd::State { cmd } => state(cmd),
        Cmd::Bench(args) => crate::bench::run(args),
        Cmd::Functions => rules::functions(),
    };
    match res {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn state(cmd: StateCmd) -> Result<ExitCode> {
    match cmd {
        StateCmd::Show { config } => with_config(&config, state_show::run),
        StateCmd::Rewind { config, to, yes } => {
            with_config(&config, |cfg| rewind::run(cfg, &to, yes))
        }
        StateCmd::Export { config, out } => {
            with_config(&config, |cfg| transfer::export(cfg, out.as_deref()))
        }
        StateCmd::Reshard {
            from,
            replicas,
            out,
        } => transfer::reshard(&from, replicas, &out),
        StateCmd::Import {
            config,
            file,
            force,
        } => with_config(&config, |cfg| transfer::import(cfg, &file, force)),
        StateCmd::Quarantine {
            cmd:
                QuarantineCmd::Retry {
                    config,
                    all,
                    reread,
                    files,
                },
        } => with_config(&config, |cfg| quarantine::retry(cfg, all, &files, reread)),
        StateCmd::ResolveEpoch { config, yes } => {
            with_config(&config, |cfg| resolve_epoch::run(cfg, yes))
        }
    }
}

/// Loads the config (exit 2 when invalid) and runs `f` with it.
fn with_config(path: &Path, f: impl FnOnce(&Config) -> Result<ExitCode>) -> Result<ExitCode> {
    match Config::load(path) {
        Ok(cfg) => f(&cfg),
        Err(e) => {
            eprintln!("error: {e}");
            Ok(ExitCode::from(2))
        }
    }
}

/// The I/O runtime every command that touches a store runs on.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("sluice-io")
        .enable_all()
        .build()
        .context("starting the I/O runtime")
}
