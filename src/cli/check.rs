//! `sluice check`: validates the config, reaches every store, loads the
//! dimensions and compiles every rule against the source schema, as a start
//! would (the same rule loading: `pipeline::load_checked`; the same
//! webhook client: `partition_commit::webhook::Webhook::new`), without
//! writing anything. Exit 2 on any error.

use super::rules::rules_cli_error;
use anyhow::{Context, Result};
use sluice::config::Config;
use sluice::rules_cli;
use std::path::Path;
use std::process::ExitCode;

pub(super) fn run(config: &Path, cfg: &Config) -> Result<ExitCode> {
    // The webhook as the start builds it: its ca_file read and parsed, its
    // `env:` headers set.
    if let Some(w) = cfg
        .partition_commit
        .as_ref()
        .and_then(|p| p.webhook.as_ref())
        && let Err(e) = sluice::partition_commit::webhook::Webhook::new(w)
    {
        eprintln!("error: {}: {e}", config.display());
        return Ok(ExitCode::from(2));
    }
    let rt = super::runtime()?;
    // Every object store first: a missing bucket, denied credentials or an
    // unreachable endpoint, with the store's own error.
    let reached = rt.block_on(sluice::store::probe_config(cfg));
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
    let state = match rules_cli::open_state_if_free(cfg) {
        Ok(s) => s,
        Err(note) => {
            println!("note: {note}; column type changes are not checked");
            None
        }
    };
    // The state's schema, else the first source file's, else the declared
    // `<rules.dir>/tests/_source.toml` (CI, before the first data arrives).
    let resolved =
        match rules_cli::resolve_source_schema(cfg, state.as_ref(), Vec::new(), rt.handle()) {
            Ok(r) => r,
            Err(e) => return Ok(rules_cli_error(&e)),
        };
    for n in &resolved.notes {
        println!("note: {n}");
    }
    println!("source schema: {}", resolved.origin);
    let schema = rules_cli::for_enrichment(cfg, resolved);
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
    let loaded = sluice::pipeline::load_checked(cfg, &enricher.schema(), &table_schemas);
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
