//! A reader thread: pulls a split, fetches its column chunks on the I/O
//! runtime, decodes and routes on this thread, and hands routed pieces to
//! the writer through a bounded channel (a slow writer slows the readers).
//!
//! Nothing a file holds may kill a reader: a panic while reading a split is
//! caught, the split reported failed (its file quarantined) and the queue's
//! accounting kept, so a barrier never waits for a dead thread.

use super::queue::{WorkItem, WorkQueue};
use super::writer::WriterPool;
use crate::crashpoint;
use crate::enrich::Enricher;
use crate::read::{self, OpenedFile, ReadError, SourceSchema, SplitRead};
use crate::route::RuleSet;
use crate::split::SplitId;
use crate::telemetry::Metrics;
use arc_swap::ArcSwap;
use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};
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
    pub schema: SourceSchema,
    pub enricher: Arc<Enricher>,
    pub rules: Arc<ArcSwap<RuleSet>>,
    pub store: Arc<dyn object_store::ObjectStore>,
    pub handle: Handle,
    pub writers: WriterPool,
    pub metrics: Arc<Metrics>,
    pub batch_rows: usize,
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
    let r = SplitRead {
        file: &info.file,
        row_groups: info.row_groups,
        rows: info.rows,
        offset: item.offset,
        batch_rows: ctx.batch_rows,
    };
    let fail = |reason: String| ctx.writers.failed(item.split.clone(), reason);
    let data = match ctx.handle.block_on(read::fetch(&ctx.store, &r)) {
        Ok(d) => d,
        Err(e) => return fail(e.to_string()),
    };
    ctx.metrics
        .bytes_read
        .fetch_add(data_len(&data), Ordering::Relaxed);
    let rules = ctx.rules.load_full();
    let mut stopped_at = None;
    let mut enrich_failed = None;
    let res = read::decode(data, &r, &ctx.schema, |first, batch| {
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
