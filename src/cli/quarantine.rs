//! `sluice state quarantine retry`: release quarantined files without
//! reading a committed row twice. Looks at each file in the source, prints
//! the plan (`checkpoint::retry::plan_retry`), and releases all of them or
//! none (`checkpoint::retry::release`); exit 2 when one would need
//! `--reread` and it was not given.

use super::prompt::open_with_source;
use anyhow::{Context, Result};
use sluice::checkpoint::FileStatus;
use sluice::checkpoint::retry::{self, Release, ReleaseError, RetryPlan, plan_retry};
use sluice::config::Config;
use std::process::ExitCode;

pub(super) fn retry(cfg: &Config, all: bool, files: &[String], reread: bool) -> Result<ExitCode> {
    if all != files.is_empty() {
        eprintln!("error: name the files to retry, or pass --all (not both)");
        return Ok(ExitCode::from(2));
    }
    let (state, rt, source) = open_with_source(cfg)?;
    let schema = state
        .schema()?
        .and_then(|j| sluice::read::SourceSchema::from_json(&j).ok());
    let recs = state.files()?;
    let targets: Vec<String> = if all {
        recs.iter()
            .filter(|(_, r)| matches!(r.status, FileStatus::Quarantined { .. }))
            .map(|(p, _)| p.clone())
            .collect()
    } else {
        files.to_vec()
    };
    // Every file is looked at before any is released: all or nothing.
    let mut plans = Vec::new();
    for path in &targets {
        let Some(rec) = recs.get(path) else {
            eprintln!("error: {path} is not in the state (see `sluice state show`)");
            return Ok(ExitCode::from(2));
        };
        if !matches!(rec.status, FileStatus::Quarantined { .. }) {
            eprintln!("error: {path} is not quarantined");
            return Ok(ExitCode::from(2));
        }
        let loc =
            object_store::path::Path::parse(path).with_context(|| format!("bad path {path}"))?;
        let head =
            rt.block_on(async { object_store::ObjectStoreExt::head(source.as_ref(), &loc).await });
        let meta = match head {
            Ok(m) => m,
            Err(e) => {
                eprintln!("error: {path}: {e}; nothing released");
                return Ok(ExitCode::from(1));
            }
        };
        let mtime = meta.last_modified.timestamp_millis();
        let groups = schema.as_ref().and_then(|s| {
            rt.block_on(sluice::read::open(&source, path, meta.size, s))
                .ok()
                .map(|o| o.row_groups())
        });
        let plan = plan_retry(rec, meta.size, mtime, groups.as_deref());
        plans.push((path, plan, meta.size, mtime));
    }
    for (path, plan, _, _) in &plans {
        match plan {
            RetryPlan::Resume { committed, left } => println!(
                "{path}: unchanged; resumes at its recorded offsets: {committed} row(s) already committed are not read again, {left} row(s) are left to read"
            ),
            RetryPlan::FromStart { why } => {
                println!(
                    "{path}: {why}; it will be read from the start (no row of it was committed)"
                )
            }
            RetryPlan::Reread { committed, why } if reread => println!(
                "{path}: {why}; it will be read from the start (--reread): the {committed} row(s) already committed from it land in the output a second time"
            ),
            RetryPlan::Reread { committed, why } => println!(
                "{path}: {why}; {committed} row(s) from it are already committed: reading it from the start would put them in the output a second time"
            ),
        }
    }
    let blocked = plans.iter().filter(|p| p.1.needs_reread()).count();
    if blocked > 0 && !reread {
        eprintln!(
            "error: {blocked} file(s) can only be read again from the start, and rows from them are already committed; nothing released. Put the files back as they were taken, or pass --reread to accept that those rows land twice (delete them from the output first if they must not)"
        );
        return Ok(ExitCode::from(2));
    }
    let releases: Vec<Release<'_>> = plans
        .iter()
        .map(|(path, plan, size_now, mtime_now)| Release {
            path,
            plan,
            size_now: *size_now,
            mtime_now: *mtime_now,
        })
        .collect();
    let n = match retry::release(&state, &releases) {
        Ok(n) => n,
        Err(e @ (ReleaseError::Unknown(_) | ReleaseError::NotQuarantined(_))) => {
            eprintln!("error: {e}; nothing released");
            return Ok(ExitCode::from(2));
        }
        Err(ReleaseError::State(e)) => return Err(e.into()),
    };
    println!("{n} file(s) released from quarantine; the next `sluice run` reads them");
    Ok(ExitCode::SUCCESS)
}
