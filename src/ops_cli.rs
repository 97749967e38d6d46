//! The operator commands of the CLI: `status`, `state rewind`, `state
//! export`, `state import`. Parsing, prompts, printing and exit codes live
//! here; the work is done by `sluice::status` and `sluice::checkpoint::tools`.

use anyhow::{Context, Result};
use sluice::checkpoint::tools::{self, ToolError};
use sluice::checkpoint::{StateError, StateStore};
use sluice::config::Config;
use sluice::pipeline;
use std::io::{BufRead, IsTerminal, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

pub(crate) fn rfc3339(ms: i64) -> String {
    let t = std::time::UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_millis(t).to_string()
}

/// Opens the state of a stopped daemon; the lock error already says "stop
/// the daemon first".
pub(crate) fn open_state(cfg: &Config) -> Result<StateStore> {
    if !cfg.state_dir.exists() {
        anyhow::bail!(
            "no state at {} (state.dir): nothing has run with this config",
            cfg.state_dir.display()
        );
    }
    Ok(StateStore::open(&cfg.state_dir)?)
}

// ---------------------------------------------------------------- status

pub fn cmd_status(cfg: &Config, json: bool, addr: Option<SocketAddr>) -> Result<ExitCode> {
    // The daemon first: while it runs, it holds the state's lock.
    let target = addr.or(cfg.http_listen).map(|mut a| {
        if a.ip().is_unspecified() {
            a.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        a
    });
    let mut snapshot = None;
    if let Some(a) = target.filter(|a| a.port() != 0) {
        snapshot = sluice::status::fetch(a, Duration::from_secs(3))?;
    }
    let snapshot = match snapshot {
        Some(s) => s,
        None => match sluice::status::from_state(cfg, now_ms()) {
            Ok(s) => s,
            Err(sluice::status::StatusError::State(StateError::Locked { dir })) => {
                let asked = match target {
                    Some(a) if a.port() != 0 => format!("nothing answered on {a}"),
                    _ => "http is disabled or listens on port 0".to_string(),
                };
                anyhow::bail!(
                    "the state at {dir} is locked by a running daemon, but {asked}; pass --addr with the address it logged (\"serving /metrics ... address=\")"
                );
            }
            Err(e) => return Err(e.into()),
        },
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&snapshot)?);
    } else {
        print!("{}", sluice::status::render(&snapshot));
    }
    Ok(ExitCode::SUCCESS)
}

// ---------------------------------------------------------------- rewind

/// `2026-11-20T13:00:00Z`, `2026-11-20T21:00:00+08:00`, `2026-11-20 13:00`,
/// `2026-11-20` (UTC midnight), or a duration ago: `2h`, `90m ago`.
pub fn parse_time(s: &str, now_ms: i64) -> Result<i64, String> {
    let s = s.trim();
    let rel = s.strip_suffix("ago").unwrap_or(s).trim();
    if let Ok(d) = humantime::parse_duration(rel) {
        return Ok(now_ms - d.as_millis() as i64);
    }
    let (base, offset_min) = split_offset(s);
    let base = if base.len() == 10 {
        format!("{base}T00:00:00")
    } else {
        base.to_string()
    };
    let t = humantime::parse_rfc3339_weak(&base).map_err(|e| {
        format!(
            "{s:?} is not a time ({e}); use RFC 3339 like 2026-11-20T13:00:00Z, or a duration ago like 2h"
        )
    })?;
    let ms = t
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .map_err(|_| format!("{s:?} is before 1970"))?;
    Ok(ms - offset_min * 60_000)
}

/// Splits a trailing `+HH:MM` / `-HH:MM` offset (minutes east of UTC).
fn split_offset(s: &str) -> (&str, i64) {
    if s.len() > 19 && s.is_char_boundary(s.len() - 6) {
        let (base, off) = s.split_at(s.len() - 6);
        let sign = match off.as_bytes()[0] {
            b'+' => Some(1),
            b'-' => Some(-1),
            _ => None,
        };
        if let (Some(sign), Some(":"), Some(Ok(h)), Some(Ok(m))) = (
            sign,
            off.get(3..4),
            off.get(1..3).map(str::parse::<i64>),
            off.get(4..6).map(str::parse::<i64>),
        ) {
            return (base, sign * (h * 60 + m));
        }
    }
    (s.strip_suffix('Z').unwrap_or(s), 0)
}

/// Asks on a terminal; `None` when there is no terminal to ask on.
fn confirm(question: &str) -> Option<bool> {
    if !std::io::stdin().is_terminal() {
        return None;
    }
    eprint!("{question} [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer).ok()?;
    Some(matches!(answer.trim(), "y" | "Y" | "yes" | "YES"))
}

/// Asks before an operator action that changes the state (`--yes` skips
/// this). `None`: go ahead. Otherwise the exit code to stop with: 1 when
/// the operator said no, 2 when there is no terminal to ask on (`what`
/// names the action in the refusal).
pub(crate) fn ask_to_proceed(question: &str, what: &str) -> Option<ExitCode> {
    match confirm(question) {
        Some(true) => None,
        Some(false) => {
            println!("nothing changed");
            Some(ExitCode::from(1))
        }
        None => {
            eprintln!(
                "error: refusing to {what} without confirmation: stdin is not a terminal; pass --yes"
            );
            Some(ExitCode::from(2))
        }
    }
}

pub fn cmd_rewind(cfg: &Config, to: &str, yes: bool) -> Result<ExitCode> {
    let to_ms = match parse_time(to, now_ms()) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: --to: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let state = open_state(cfg).context("opening the state")?;
    let rt = crate::runtime()?;
    let source = pipeline::open_store(&cfg.source.root, &cfg.stores, false)
        .context("opening source.root")?;
    let files = state.files()?;
    let listing = sluice::discover::list(
        &source,
        &cfg.source.root,
        cfg.source.follow_symlinks,
        &|p| files.contains_key(p),
    )
    .context("listing the source")?;
    let plan = tools::plan_rewind(
        &files,
        state.watermark_ms()?,
        &listing.files,
        &cfg.source.pattern,
        cfg.source.lookback,
        to_ms,
    );
    println!(
        "rewind to {} (state at {}):",
        rfc3339(to_ms),
        cfg.state_dir.display()
    );
    if plan.is_empty() {
        println!("  nothing was taken after that time; nothing to do");
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "  {} file(s) are forgotten and read again from the start: {} row(s) already committed from them will be emitted again",
        plan.forget.len(),
        plan.rows_committed()
    );
    if !plan.untracked.is_empty() {
        // Dropped from the seen-set: their row counts come from their footers.
        let schema = state
            .schema()?
            .and_then(|j| sluice::read::SourceSchema::from_json(&j).ok());
        let mut rows = Some(0u64);
        for f in &plan.untracked {
            let n = schema.as_ref().and_then(|s| {
                rt.block_on(sluice::read::open(&source, &f.path, f.size, s))
                    .ok()
                    .map(|o| o.row_groups().iter().map(|g| g.rows).sum::<u64>())
            });
            rows = rows.zip(n).map(|(a, b)| a + b);
        }
        println!(
            "  {} more file(s) after that time left the state (committed before the lookback window, or ignored as late): read again too, {} row(s)",
            plan.untracked.len(),
            rows.map(|r| r.to_string())
                .unwrap_or_else(|| "unknown".into())
        );
    }
    if !plan.pin.is_empty() {
        println!(
            "  {} older file(s) the lowered watermark would expose are recorded as done (not re-read)",
            plan.pin.len()
        );
    }
    println!(
        "  watermark: {} -> {}",
        plan.watermark_before
            .map(rfc3339)
            .unwrap_or_else(|| "none".into()),
        plan.watermark_after
            .map(rfc3339)
            .unwrap_or_else(|| "none".into())
    );
    println!(
        "  committed output is not deleted: rows already in the tables will be there twice unless you remove them first"
    );
    if !yes && let Some(code) = ask_to_proceed("rewind?", "rewind") {
        return Ok(code);
    }
    // Prepared epochs do not depend on file records; roll them forward
    // first, as the next start would, so the state is clean.
    let sink =
        pipeline::open_store(&cfg.sink.root, &cfg.stores, true).context("opening sink.root")?;
    let rolled = pipeline::recover(&state, &sink, cfg.sink.root.local_root(), rt.handle())?;
    if rolled > 0 {
        println!("rolled {rolled} prepared epoch(s) forward first");
    }
    state.apply_rewind(&plan)?;
    println!(
        "rewound: {} file(s) will be read again by the next `sluice run`",
        plan.forget.len() + plan.untracked.len()
    );
    Ok(ExitCode::SUCCESS)
}

// ---------------------------------------------------------------- export / import

/// `sluice state reshard`: exit 0 with the new dumps written, 2 when the
/// dumps cannot be re-split (incomplete set, a replica not stopped cleanly).
pub fn cmd_reshard(from: &[std::path::PathBuf], replicas: u32, out: &Path) -> Result<ExitCode> {
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

pub fn cmd_export(cfg: &Config, out: Option<&Path>) -> Result<ExitCode> {
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

pub fn cmd_import(cfg: &Config, file: &Path, force: bool) -> Result<ExitCode> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        let now = 1_795_179_600_000; // 2026-11-20T13:00:00Z
        assert_eq!(parse_time("2026-11-20T13:00:00Z", 0), Ok(now));
        assert_eq!(parse_time("2026-11-20T21:00:00+08:00", 0), Ok(now));
        assert_eq!(parse_time("2026-11-20T12:30:00-00:30", 0), Ok(now));
        assert_eq!(parse_time("2026-11-20 13:00:00", 0), Ok(now));
        assert_eq!(parse_time("2026-11-20", 0), Ok(now - 13 * 3_600_000));
        assert_eq!(parse_time("2h", now), Ok(now - 7_200_000));
        assert_eq!(parse_time("90m ago", now), Ok(now - 5_400_000));
        assert!(
            parse_time("yesterday", now)
                .unwrap_err()
                .contains("RFC 3339")
        );
    }
}
