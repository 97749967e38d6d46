//! `sluice state export` and `sluice state import`: the state as versioned
//! JSON lines and back (`StateStore::export`, `checkpoint::tools::import`),
//! with warnings for what a dump does not carry (staged and open files);
//! and `sluice state reshard`, which re-splits the dumps of every replica
//! for a new number of replicas (`checkpoint::reshard`).

use super::prompt::open_state;
use anyhow::{Context, Result};
use sluice::checkpoint::tools::{self, ToolError};
use sluice::clock::now_ms;
use sluice::config::Config;
use std::path::Path;
use std::process::ExitCode;

/// `sluice state reshard`: exit 0 with the new dumps written, 2 when the
/// dumps cannot be re-split (incomplete set, a replica not stopped cleanly).
pub(super) fn reshard(from: &[std::path::PathBuf], replicas: u32, out: &Path) -> Result<ExitCode> {
    use sluice::checkpoint::reshard::{ReshardError, reshard_dumps};
    match reshard_dumps(from, replicas, out, now_ms()) {
        Ok(files) => {
            for (i, (path, n)) in files.iter().enumerate() {
                println!(
                    "replica {i}: {} ({n} file record(s)); load it with SLUICE_REPLICA={i} sluice state import --config <config with cluster.replicas = {replicas}> {} --force",
                    path.display(),
                    path.display()
                );
            }
            println!(
                "then set cluster.replicas = {replicas} in the config (and the StatefulSet's replicas) and start every replica"
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e @ ReshardError::Refused(_)) => {
            eprintln!("error: {e}");
            Ok(ExitCode::from(2))
        }
        Err(e) => Err(e.into()),
    }
}

pub(super) fn export(cfg: &Config, out: Option<&Path>) -> Result<ExitCode> {
    let state = open_state(cfg).context("opening the state")?;
    let prepared = state
        .epochs()?
        .iter()
        .filter(|e| e.state == sluice::checkpoint::EpochState::Prepared)
        .count();
    if prepared > 0 {
        eprintln!(
            "warning: {prepared} epoch(s) are prepared but not committed; their staged files are under {}: move the sink with the state, or run `sluice run --once` first",
            cfg.sink.root.join_display(".sluice-staging")
        );
    }
    let open = state.open_files()?.len();
    if open > 0 {
        eprintln!(
            "warning: {open} output file(s) were open at the last checkpoint (a daemon that did not stop cleanly); their rows are under {}/.sluice-staging: move the sink with the state, or run `sluice run --once` first",
            cfg.sink.root
        );
    }
    let n = match out {
        Some(p) => {
            let tmp = p.with_extension("partial");
            let mut f = std::io::BufWriter::new(
                std::fs::File::create(&tmp)
                    .with_context(|| format!("creating {}", tmp.display()))?,
            );
            let n = state.export(&mut f, now_ms())?;
            f.into_inner()
                .map_err(|e| e.into_error())?
                .sync_all()
                .with_context(|| format!("writing {}", tmp.display()))?;
            std::fs::rename(&tmp, p).with_context(|| format!("writing {}", p.display()))?;
            n
        }
        None => {
            let stdout = std::io::stdout();
            let mut lock = stdout.lock();
            state.export(&mut lock, now_ms())?
        }
    };
    eprintln!(
        "exported {n} entries from {}{}",
        cfg.state_dir.display(),
        out.map(|p| format!(" to {}", p.display()))
            .unwrap_or_default()
    );
    Ok(ExitCode::SUCCESS)
}

pub(super) fn import(cfg: &Config, file: &Path, force: bool) -> Result<ExitCode> {
    let f = std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?;
    let mut input = std::io::BufReader::new(f);
    match tools::import(&cfg.state_dir, &mut input, force) {
        Ok(n) => {
            println!(
                "imported {n} entries into {}; `sluice state show` shows them",
                cfg.state_dir.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(
            e @ (ToolError::NotEmpty { .. }
            | ToolError::DumpTooNew { .. }
            | ToolError::StateTooNew { .. }
            | ToolError::Dump { .. }),
        ) => {
            eprintln!("error: {}: {e}", file.display());
            Ok(ExitCode::from(2))
        }
        Err(e) => Err(e).context("importing the state"),
    }
}
