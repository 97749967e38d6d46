//! The operator commands that take a stuck file or epoch out of the way, on
//! a stopped daemon's state: `state quarantine retry` (release quarantined
//! files without reading a committed row twice) and `state resolve-epoch`
//! (an epoch that can never commit). Printing, prompts and exit codes live
//! here; `sluice::checkpoint::retry` and `sluice::pipeline::resolve` decide.

use crate::ops_cli::{ask_to_proceed, open_state, rfc3339};
use anyhow::{Context, Result};
use sluice::checkpoint::FileStatus;
use sluice::checkpoint::retry::{RetryPlan, plan_retry, released};
use sluice::config::Config;
use sluice::pipeline::{self, resolve};
use sluice::sink::commit::FileState;
use std::process::ExitCode;

// ---------------------------------------------------------------- quarantine retry

pub fn cmd_quarantine_retry(
    cfg: &Config,
    all: bool,
    files: &[String],
    reread: bool,
) -> Result<ExitCode> {
    if all != files.is_empty() {
        eprintln!("error: name the files to retry, or pass --all (not both)");
        return Ok(ExitCode::from(2));
    }
    let state = open_state(cfg).context("opening the state")?;
    let rt = crate::runtime()?;
    let source = pipeline::open_store(&cfg.source.root, &cfg.stores, false)
        .context("opening source.root")?;
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
        plans.push((path, rec, plan, meta.size, mtime));
    }
    for (path, _, plan, _, _) in &plans {
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
    let blocked = plans.iter().filter(|p| p.2.needs_reread()).count();
    if blocked > 0 && !reread {
        eprintln!(
            "error: {blocked} file(s) can only be read again from the start, and rows from them are already committed; nothing released. Put the files back as they were taken, or pass --reread to accept that those rows land twice (delete them from the output first if they must not)"
        );
        return Ok(ExitCode::from(2));
    }
    for (path, rec, plan, size, mtime) in &plans {
        state.put_file(path, &released(rec, plan, *size, *mtime))?;
    }
    println!(
        "{} file(s) released from quarantine; the next `sluice run` reads them",
        plans.len()
    );
    Ok(ExitCode::SUCCESS)
}

// ---------------------------------------------------------------- resolve-epoch

fn describe(s: &FileState) -> &'static str {
    match s {
        FileState::Staged => "staged, final name free",
        FileState::Linked => "at its final name, staged link left over",
        FileState::Committed => "at its final name",
        FileState::Occupied {
            staged_present: true,
            ..
        } => "staged; final name taken by another file",
        FileState::Occupied {
            staged_present: false,
            ..
        } => "staged file missing; final name taken by another file",
        FileState::Lost => "staged file missing, final file absent",
    }
}

pub fn cmd_resolve_epoch(cfg: &Config, yes: bool) -> Result<ExitCode> {
    let state = open_state(cfg).context("opening the state")?;
    let rt = crate::runtime()?;
    let sink =
        pipeline::open_store(&cfg.sink.root, &cfg.stores, true).context("opening sink.root")?;
    let root = cfg.sink.root.local_root();
    let epochs = resolve::check(&state, &sink, root, rt.handle())?;
    if epochs.is_empty() {
        println!("no epoch is prepared and uncommitted: nothing to resolve");
        return Ok(ExitCode::SUCCESS);
    }
    for e in &epochs {
        println!(
            "epoch {} (prepared {}): {} file(s), {} row(s)",
            e.epoch,
            rfc3339(e.created_ms),
            e.files.len(),
            e.files.iter().map(|f| f.file.rows).sum::<u64>()
        );
        for f in &e.files {
            let action = match &f.verdict {
                resolve::Verdict::Commit => "commit",
                resolve::Verdict::Done => "done",
                resolve::Verdict::LeftOut(_) => "LEFT OUT",
            };
            println!(
                "  {action:<8} {}  [{}]",
                f.file.final_path,
                describe(&f.state)
            );
            if let resolve::Verdict::LeftOut(why) = &f.verdict {
                let partition = if f.file.partition.is_empty() {
                    "(none)"
                } else {
                    f.file.partition.as_str()
                };
                println!(
                    "           table {}, partition {partition}, {} row(s): {why}",
                    f.file.table, f.file.rows
                );
                if matches!(
                    f.state,
                    FileState::Staged
                        | FileState::Occupied {
                            staged_present: true,
                            ..
                        }
                ) {
                    println!(
                        "           its staged file {} is deleted by the next start: copy it out first to keep its rows",
                        cfg.sink.root.join_display(&f.file.staged)
                    );
                }
            }
        }
    }
    let left: Vec<&resolve::FileCheck> = epochs.iter().flat_map(|e| e.left_out()).collect();
    if !left.is_empty() {
        println!(
            "resolving leaves {} file(s) out: their {} row(s) are dropped from the output and NOT read again (their source offsets are recorded as committed) unless you then rewind with `sluice state rewind`",
            left.len(),
            left.iter().map(|f| f.file.rows).sum::<u64>()
        );
        if !yes
            && let Some(code) = ask_to_proceed(
                "commit the other files and mark the epoch(s) committed?",
                "leave rows out",
            )
        {
            return Ok(code);
        }
    }
    for e in &epochs {
        resolve::resolve(e, &state, &sink, root, rt.handle())?;
        let out: Vec<&resolve::FileCheck> = e.left_out().collect();
        println!(
            "epoch {} committed: {} file(s) at their final names, {} left out ({} row(s))",
            e.epoch,
            e.files.len() - out.len(),
            out.len(),
            out.iter().map(|f| f.file.rows).sum::<u64>()
        );
    }
    println!("the next `sluice run` starts from here");
    Ok(ExitCode::SUCCESS)
}
