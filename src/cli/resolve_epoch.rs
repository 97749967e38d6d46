//! `sluice state resolve-epoch`: an epoch that can never commit (recovery
//! fails on it at every start). Lists its files and what is wrong with
//! each, asks before leaving rows out, then commits what can be and marks
//! the epoch committed (`pipeline::resolve`).

use super::prompt::{ask_to_proceed, open_state, rfc3339};
use anyhow::{Context, Result};
use sluice::config::Config;
use sluice::pipeline::{self, resolve};
use sluice::sink::commit::FileState;
use std::process::ExitCode;

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

pub(super) fn run(cfg: &Config, yes: bool) -> Result<ExitCode> {
    let state = open_state(cfg).context("opening the state")?;
    let rt = super::runtime()?;
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
