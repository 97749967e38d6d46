//! `sluice state show`: what the checkpoint state holds (watermark, epochs,
//! files by status, partition commit, open output files, the source and
//! table schemas, quarantined files with reasons). Read-only.

use super::prompt::rfc3339;
use anyhow::{Context, Result};
use sluice::checkpoint::{FileStatus, StateStore};
use sluice::config::Config;
use std::process::ExitCode;

/// `name type, name type, ...`
fn columns(schema: &arrow::datatypes::Schema) -> String {
    let cols: Vec<String> = schema
        .fields()
        .iter()
        .map(|f| format!("{} {}", f.name(), f.data_type()))
        .collect();
    cols.join(", ")
}

/// `state show`: the committed source schema and how it got there.
fn print_source_schema(state: &StateStore) -> Result<()> {
    let Some(json) = state.schema()? else {
        println!("source schema: none yet (no file read)");
        return Ok(());
    };
    match sluice::read::SourceSchema::from_json(&json) {
        Ok(s) => {
            println!("source schema: {}", columns(&s.full));
        }
        Err(e) => println!("source schema: unreadable ({e})"),
    }
    let history = state.schema_history()?;
    println!("source schema history: {} step(s)", history.len());
    if history.first().is_none_or(|e| e.inferred_from.is_none()) {
        println!("  first schema: recorded before the history was kept");
    }
    for e in &history {
        println!("  {} (at {})", e.describe(), rfc3339(e.at_ms));
    }
    Ok(())
}

pub(super) fn run(cfg: &Config) -> Result<ExitCode> {
    let state = StateStore::open(&cfg.state_dir).context("opening state")?;
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
            FileStatus::Active => "active",
            FileStatus::Done => "done",
            FileStatus::Quarantined { .. } => "quarantined",
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
                println!("  {table}: {}", columns(&schema));
            }
            Err(e) => println!("  {table}: unreadable schema ({e})"),
        }
    }
    for (p, r) in &files {
        if let FileStatus::Quarantined { reason, .. } = &r.status {
            println!("quarantined {p}: {reason}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
