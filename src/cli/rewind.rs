//! `sluice state rewind`: forget every source file modified after a time so
//! the next run reads it again. Parses `--to`, prints the plan
//! (`checkpoint::tools::plan_rewind`), asks, rolls prepared epochs forward
//! and applies it (`StateStore::apply_rewind`).

use super::prompt::{ask_to_proceed, open_with_source, rfc3339};
use anyhow::{Context, Result};
use sluice::checkpoint::tools;
use sluice::clock::now_ms;
use sluice::config::Config;
use sluice::pipeline;
use std::process::ExitCode;

/// `2026-11-20T13:00:00Z`, `2026-11-20T21:00:00+08:00`, `2026-11-20 13:00`,
/// `2026-11-20` (UTC midnight), or a duration ago: `2h`, `90m ago`.
pub(super) fn parse_time(s: &str, now_ms: i64) -> Result<i64, String> {
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

pub(super) fn run(cfg: &Config, to: &str, yes: bool) -> Result<ExitCode> {
    let to_ms = match parse_time(to, now_ms()) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: --to: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let (state, rt, source) = open_with_source(cfg)?;
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
    let sink = pipeline::open_sink(cfg, &state, true, Default::default(), false)
        .context("opening sink.root")?;
    let rolled = pipeline::recover(&state, &sink, rt.handle())?;
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
