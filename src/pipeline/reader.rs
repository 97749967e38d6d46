//! A reader thread: pulls a split, fetches its column chunks on the I/O
//! runtime, decodes and routes on this thread, and hands routed pieces to
//! the writer through a bounded channel (a slow writer slows the readers).
//!
//! Nothing a file holds may kill a reader: a panic while reading a split is
//! caught, the split reported failed (its file quarantined) and the queue's
//! accounting kept, so a barrier never waits for a dead thread. A fetch that
//! fails with an I/O error puts the split back with a retry time instead.

use super::queue::{WorkItem, WorkQueue};
use super::writer::WriterPool;
use crate::crashpoint;
use crate::enrich::Enricher;
use crate::read::fault::{Backoff, Fault};
use crate::read::{self, OpenedFile, ReadError, SourceSchema, SplitRead};
use crate::route::RuleSet;
use crate::split::SplitId;
use crate::telemetry::Metrics;
use arc_swap::ArcSwap;
use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;
use tokio::runtime::Handle;

/// What a split needs from its file: the footer and the split's extent.
#[derive(Clone)]
pub struct SplitInfo {
    pub file: Arc<OpenedFile>,
    pub row_groups: (usize, usize),
    pub rows: u64,
}

pub struct ReaderCtx {
    pub queue: Arc<WorkQueue>,
    pub splits: Arc<RwLock<HashMap<SplitId, SplitInfo>>>,
    /// The source schema: it evolves only while every reader is parked at
    /// a barrier, so a split is read under one schema and one rule set.
    pub schema: Arc<ArcSwap<SourceSchema>>,
    pub enricher: Arc<Enricher>,
    pub rules: Arc<ArcSwap<RuleSet>>,
    pub store: Arc<dyn object_store::ObjectStore>,
    pub handle: Handle,
    pub writers: WriterPool,
    pub metrics: Arc<Metrics>,
    pub batch_rows: usize,
    /// The pace of retries after I/O errors.
    pub io_retry: Backoff,
    /// After this many I/O failures of a split, leave it for the next run
    /// (`run --once`); `None`: retry for as long as they last (the daemon).
    pub io_give_up: Option<u32>,
    /// I/O failures of each split since it last fetched.
    pub io_failures: Mutex<HashMap<SplitId, u32>>,
}

pub fn run(ctx: Arc<ReaderCtx>) {
    while let Some(item) = ctx.queue.pop() {
        let _span = tracing::debug_span!("read", file = %item.split.file, split = item.split.index)
            .entered();
        ctx.metrics.splits_in_flight.fetch_add(1, Ordering::Relaxed);
        let split = item.split.clone();
        if let Err(p) = std::panic::catch_unwind(AssertUnwindSafe(|| process(&ctx, item))) {
            let msg = read::footer::panic_message(p.as_ref());
            tracing::error!(file = %split.file, split = split.index, panic = %msg, "reader panicked on a split; its file is quarantined");
            ctx.writers
                .failed(split, ReadError::Panicked(msg).to_string());
        }
        ctx.metrics.splits_in_flight.fetch_sub(1, Ordering::Relaxed);
        ctx.queue.done();
    }
}

/// A fetch failed with an I/O error: the split goes back on the queue with
/// a retry time (never held by this thread, so a barrier passes), or, past
/// `io_give_up`, is left for the next run. Its file stays active either way.
fn retry_later(ctx: &ReaderCtx, item: WorkItem, e: &ReadError) {
    let failures = {
        let mut m = ctx.io_failures.lock().unwrap_or_else(|p| p.into_inner());
        let n = m.entry(item.split.clone()).or_insert(0);
        *n += 1;
        *n
    };
    ctx.metrics.read_io_retries.fetch_add(1, Ordering::Relaxed);
    if ctx.io_give_up.is_some_and(|g| failures >= g) {
        tracing::warn!(file = %item.split.file, split = item.split.index, failures, error = %e,
            "I/O errors keep failing this split; left for the next run (the file stays active, not quarantined)");
        return;
    }
    let wait = ctx.io_retry.delay(failures);
    tracing::warn!(file = %item.split.file, split = item.split.index, failures, retry_in_ms = wait.as_millis() as u64, error = %e,
        "I/O error reading a split; it is read again later (the file is not quarantined)");
    ctx.queue.push_at(item, Instant::now() + wait);
}

fn process(ctx: &ReaderCtx, item: WorkItem) {
    let info = ctx
        .splits
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .get(&item.split)
        .cloned();
    let Some(info) = info else {
        tracing::error!(file = %item.split.file, "split without plan; skipped (this is a bug)");
        return;
    };
    let fail = |reason: String| ctx.writers.failed(item.split.clone(), reason);
    let schema = ctx.schema.load_full();
    let plan = match read::evolve::plan(info.file.meta.schema(), &schema.file) {
        Ok(p) => p,
        Err(e) => return fail(e.to_string()),
    };
    let r = SplitRead {
        file: &info.file,
        plan: &plan,
        row_groups: info.row_groups,
        rows: info.rows,
        offset: item.offset,
        batch_rows: ctx.batch_rows,
    };
    let data = match ctx.handle.block_on(read::fetch(&ctx.store, &r)) {
        Ok(d) => d,
        Err(e) => {
            return match e.fault() {
                Fault::Io => retry_later(ctx, item.clone(), &e),
                Fault::Vanished => fail(format!("vanished after it was listed: {e}")),
                Fault::File => fail(e.to_string()),
            };
        }
    };
    ctx.io_failures
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&item.split);
    ctx.metrics
        .bytes_read
        .fetch_add(data_len(&data), Ordering::Relaxed);
    let rules = ctx.rules.load_full();
    let mut stopped_at = None;
    let mut enrich_failed = None;
    let res = read::decode(data, &r, &schema, |first, batch| {
        crashpoint::hit("mid_read");
        let rows = batch.num_rows() as u64;
        let batch = {
            let _s = tracing::trace_span!("enrich", rows).entered();
            match ctx.enricher.enrich(batch) {
                Ok(b) => b,
                Err(e) => {
                    enrich_failed = Some(e.to_string());
                    return false;
                }
            }
        };
        let routed = {
            let _s = tracing::trace_span!("route", rows).entered();
            rules.route(&batch)
        };
        ctx.metrics.rows_read.fetch_add(rows, Ordering::Relaxed);
        ctx.metrics
            .rows_matched
            .fetch_add(routed.matched_rows, Ordering::Relaxed);
        ctx.metrics
            .rows_unmatched
            .fetch_add(rows - routed.matched_rows, Ordering::Relaxed);
        for f in &routed.errors {
            let table = &rules.rules[f.rule].table;
            ctx.metrics.add_rule_errors(table, f.rows);
            let fate = match rules.on_error {
                crate::route::OnError::ErrorTable => "written to the table's error output",
                crate::route::OnError::Drop => "dropped",
            };
            tracing::warn!(table = %table, rows = f.rows, error = %f.message, "rule failed on rows of a batch; its other rows land, these are {fate}");
        }
        // Time blocked here is writer back-pressure (`sluice status` diagnosis).
        let t0 = std::time::Instant::now();
        if !ctx
            .writers
            .data(&item.split, first + rows, &rules, routed.pieces)
        {
            return false;
        }
        ctx.metrics
            .reader_wait_us
            .fetch_add(t0.elapsed().as_micros() as u64, Ordering::Relaxed);
        if ctx.queue.stop_requested() && first + rows < r.rows {
            stopped_at = Some(first + rows);
            return false;
        }
        true
    });
    if let Some(e) = enrich_failed {
        return fail(format!("enrichment: {e}"));
    }
    match (res, stopped_at) {
        (Err(e), _) => fail(e.to_string()),
        (Ok(()), Some(offset)) => ctx.queue.push_front(WorkItem {
            split: item.split.clone(),
            offset,
        }),
        (Ok(()), None) => ctx.writers.split_done(item.split.clone()),
    }
}

fn data_len(d: &read::sparse::SparseFile) -> u64 {
    d.fetched_bytes()
}
