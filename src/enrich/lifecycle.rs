//! The lifecycle of a dimension's snapshot, off the hot path: the first
//! load at start (newest complete version, else the persisted copy of the
//! last good snapshot, else older dated folders), the reload thread that
//! polls every `poll_interval` and swaps in only a load that passed every
//! check (fingerprint stable across the read, schema unchanged, enough
//! rows), persisting good snapshots, and the per-dimension gauges. Touches
//! the dimension's `ArcSwap` (swap only) and its counters; the per-batch
//! join is `mod.rs`'s.

use super::load::{self, Candidate};
use super::snapshot::{Fingerprint, Snapshot};
use super::{Dim, EnrichError, Stop};
use crate::clock::now_ms;
use crate::config::DimensionSpec;
use crate::telemetry::DimCounters;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::runtime::Handle;

/// Loads one candidate, retrying while its files move under the read,
/// and applies the row-count checks against `prev_rows`.
pub fn load_candidate(
    spec: &DimensionSpec,
    c: &Candidate,
    prev_rows: Option<usize>,
    handle: &Handle,
    between: &dyn Fn(),
    counters: &DimCounters,
) -> Result<Snapshot, EnrichError> {
    let started = Instant::now();
    let mut attempt = 0;
    let (data, fp) = loop {
        attempt += 1;
        match load::read_candidate(handle, spec, c, between) {
            Err(EnrichError::Moved(m)) => {
                counters.loads_moved.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(dimension = %spec.name, attempt, "{m}; the load was discarded");
                if attempt >= 3 {
                    return Err(EnrichError::Moved(format!(
                        "{m} on {attempt} attempts in a row"
                    )));
                }
                std::thread::sleep(Duration::from_millis(200 * attempt));
            }
            other => break other?,
        }
    };
    let snap = Snapshot::build(
        data,
        &spec.key,
        &spec.columns,
        spec.on_duplicate,
        c.origin.clone(),
        fp,
        now_ms(),
    )?;
    check_rows(spec, snap.rows, prev_rows)?;
    tracing::info!(
        dimension = %spec.name,
        origin = %snap.origin,
        rows = snap.rows,
        bytes = snap.memory_size(),
        ms = started.elapsed().as_millis() as u64,
        "dimension snapshot loaded"
    );
    Ok(snap)
}

fn check_rows(spec: &DimensionSpec, rows: usize, prev: Option<usize>) -> Result<(), EnrichError> {
    if rows == 0 {
        return Err(EnrichError::Rejected("it is empty".into()));
    }
    if (rows as u64) < spec.min_rows {
        return Err(EnrichError::Rejected(format!(
            "it has {rows} rows, fewer than min_rows = {}",
            spec.min_rows
        )));
    }
    if let Some(p) = prev
        && spec.min_ratio > 0.0
        && (rows as f64) < spec.min_ratio * p as f64
    {
        return Err(EnrichError::Rejected(format!(
            "it has {rows} rows, less than min_ratio = {} of the last good snapshot's {p}",
            spec.min_ratio
        )));
    }
    Ok(())
}

fn publish(counters: &DimCounters, snap: &Snapshot) {
    counters.rows.store(snap.rows as u64, Ordering::Relaxed);
    counters
        .memory_bytes
        .store(snap.memory_size() as u64, Ordering::Relaxed);
    counters
        .loaded_at_ms
        .store(snap.loaded_at_ms, Ordering::Relaxed);
    counters.verified_at_ms.store(now_ms(), Ordering::Relaxed);
    *counters.origin.lock().unwrap_or_else(|p| p.into_inner()) = snap.origin.clone();
}

fn persist(
    handle: &Handle,
    state_dir: Option<&std::path::Path>,
    spec: &DimensionSpec,
    s: &Snapshot,
) {
    if let Some(dir) = state_dir.filter(|_| spec.persist)
        && let Err(e) = load::persist(handle, dir, &spec.name, s)
    {
        tracing::warn!(dimension = %spec.name, error = %e, "cannot persist the dimension snapshot; enrichment goes on");
    }
}

pub(super) fn initial_load(
    spec: &DimensionSpec,
    state_dir: Option<&std::path::Path>,
    counters: &DimCounters,
    handle: &Handle,
) -> Result<Snapshot, EnrichError> {
    let mut tried: Vec<String> = Vec::new();
    let cands = match handle.block_on(load::candidates(spec)) {
        Ok(c) if c.is_empty() => {
            tried.push(format!("{}: no complete version", spec.path));
            c
        }
        Ok(c) => c,
        Err(e) => {
            tried.push(e.to_string());
            Vec::new()
        }
    };
    let fallback = |counters: &DimCounters, snap: &Snapshot, tried: &[String]| {
        counters.fallbacks.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            dimension = %spec.name,
            using = %snap.origin,
            age_s = (now_ms() - snap.loaded_at_ms) / 1000,
            failed = %tried.join("; "),
            "the newest dimension version is not usable; falling back"
        );
    };
    let mut rest = cands.iter();
    if let Some(first) = rest.next() {
        match load_candidate(spec, first, None, handle, &|| {}, counters) {
            Ok(s) => {
                counters.loads_ok.fetch_add(1, Ordering::Relaxed);
                persist(handle, state_dir, spec, &s);
                publish(counters, &s);
                return Ok(s);
            }
            Err(e) => {
                counters.loads_failed.fetch_add(1, Ordering::Relaxed);
                tried.push(format!("{}: {e}", first.origin));
            }
        }
    }
    if let Some(dir) = state_dir.filter(|_| spec.persist) {
        let mut wanted: Vec<&str> = vec![spec.key.as_str()];
        wanted.extend(spec.columns.iter().map(|c| c.from.as_str()));
        let built = load::load_persisted(handle, dir, &spec.name, &wanted).and_then(|p| {
            p.map(|(data, origin, fp, at)| {
                Snapshot::build(
                    data,
                    &spec.key,
                    &spec.columns,
                    spec.on_duplicate,
                    origin,
                    fp,
                    at,
                )
            })
            .transpose()
        });
        match built {
            Ok(Some(s)) => {
                fallback(counters, &s, &tried);
                publish(counters, &s);
                return Ok(s);
            }
            Ok(None) => {}
            Err(e) => tried.push(format!("persisted copy: {e}")),
        }
    }
    for c in rest {
        match load_candidate(spec, c, None, handle, &|| {}, counters) {
            Ok(s) => {
                counters.loads_ok.fetch_add(1, Ordering::Relaxed);
                fallback(counters, &s, &tried);
                persist(handle, state_dir, spec, &s);
                publish(counters, &s);
                return Ok(s);
            }
            Err(e) => {
                counters.loads_failed.fetch_add(1, Ordering::Relaxed);
                tried.push(format!("{}: {e}", c.origin));
            }
        }
    }
    Err(EnrichError::NoSnapshot {
        name: spec.name.clone(),
        tried: tried
            .iter()
            .map(|t| format!("  - {t}"))
            .collect::<Vec<_>>()
            .join("\n"),
    })
}

/// The reload thread: every `poll_interval`, compare the best candidate's
/// fingerprint with the snapshot in use; load and swap a changed one. A
/// version that failed is tried again after `reload_interval` (or as soon
/// as its files change).
pub(super) fn reload_loop(
    d: &Dim,
    stop: &Stop,
    handle: &Handle,
    state_dir: Option<&std::path::Path>,
) {
    let spec = &d.spec;
    let mut failed: Option<(String, Fingerprint, Instant)> = None;
    loop {
        {
            let (m, cv) = &**stop;
            let g = m.lock().unwrap_or_else(|p| p.into_inner());
            let (g, _) = cv
                .wait_timeout_while(g, spec.poll_interval, |s| !*s)
                .unwrap_or_else(|p| p.into_inner());
            if *g {
                return;
            }
        }
        let _span = tracing::debug_span!("dimension_reload", dimension = %spec.name).entered();
        let current = d.current.load_full();
        let best = handle.block_on(load::candidates(spec)).and_then(|c| {
            c.into_iter()
                .next()
                .ok_or_else(|| EnrichError::Load(format!("{}: no complete version", spec.path)))
        });
        let outcome = match best {
            Err(e) => Err(("listing".to_string(), Fingerprint::default(), e)),
            Ok(c) => {
                let fp = c.fingerprint();
                if fp == current.fingerprint && c.origin == current.origin {
                    d.counters.verified_at_ms.store(now_ms(), Ordering::Relaxed);
                    failed = None;
                    continue;
                }
                if let Some((o, f, at)) = &failed
                    && *o == c.origin
                    && *f == fp
                    && at.elapsed() < spec.reload_interval
                {
                    continue;
                }
                load_candidate(spec, &c, Some(current.rows), handle, &|| {}, &d.counters)
                    .and_then(|s| same_schema(d, s))
                    .map_err(|e| (c.origin.clone(), fp, e))
            }
        };
        match outcome {
            Ok(snap) => {
                d.counters.loads_ok.fetch_add(1, Ordering::Relaxed);
                d.counters
                    .last_error
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clear();
                persist(handle, state_dir, spec, &snap);
                publish(&d.counters, &snap);
                d.current.store(Arc::new(snap));
                failed = None;
            }
            Err((origin, fp, e)) => {
                let again = failed.as_ref().is_some_and(|(o, f, at)| {
                    *o == origin && *f == fp && at.elapsed() < spec.reload_interval
                });
                if again {
                    continue;
                }
                d.counters.loads_failed.fetch_add(1, Ordering::Relaxed);
                d.counters.fallbacks.fetch_add(1, Ordering::Relaxed);
                *d.counters
                    .last_error
                    .lock()
                    .unwrap_or_else(|p| p.into_inner()) = e.to_string();
                tracing::warn!(
                    dimension = %spec.name,
                    version = %origin,
                    error = %e,
                    using = %current.origin,
                    age_s = (now_ms() - current.loaded_at_ms) / 1000,
                    "dimension reload failed; the last good snapshot keeps enriching"
                );
                failed = Some((origin, fp, Instant::now()));
            }
        }
    }
}

fn same_schema(d: &Dim, s: Snapshot) -> Result<Snapshot, EnrichError> {
    for (old, new) in d.fields.iter().zip(&s.fields) {
        if old.data_type() != new.data_type() {
            return Err(EnrichError::Rejected(format!(
                "its column {:?} changed type from {} to {}; rules were checked against the old type (restart to accept it)",
                old.name(),
                old.data_type(),
                new.data_type()
            )));
        }
    }
    Ok(s)
}
