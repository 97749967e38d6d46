//! The writer thread: owns the epoch's Parquet writers. It applies routed
//! pieces in the order readers sent them, tracks how far each split got,
//! and at a barrier closes every file and reports the staged files together
//! with the split offsets they cover.

use crate::checkpoint::StagedFile;
use crate::route::{ERRORS_DIR, Output, Piece, RuleSet};
use crate::sink::{EpochWriters, SinkError, SinkSettings};
use crate::split::SplitId;
use crate::telemetry::Metrics;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender};
use tokio::runtime::Handle;

pub enum WriterMsg {
    /// Routed rows of a split, up to row `end_row` of the split.
    Data {
        split: SplitId,
        end_row: u64,
        rules: Arc<RuleSet>,
        pieces: Vec<Piece>,
    },
    /// The split has no rows left.
    SplitDone { split: SplitId },
    /// The split cannot be read; its file is quarantined.
    Failed { split: SplitId, reason: String },
    /// Close the epoch's files, report, and start epoch `next`.
    Barrier {
        next: u64,
        reply: SyncSender<Result<EpochReport, SinkError>>,
    },
}

/// What one epoch produced.
#[derive(Debug, Default)]
pub struct EpochReport {
    pub files: Vec<StagedFile>,
    /// Rows of each split now in staged files (end row within the split).
    pub offsets: HashMap<SplitId, u64>,
    pub done: HashSet<SplitId>,
    pub failed: Vec<(SplitId, String)>,
    pub rows_per_table: BTreeMap<String, u64>,
    /// Output schema of each table that got rows (for the schema guard).
    pub schemas: BTreeMap<String, arrow::datatypes::SchemaRef>,
}

pub struct WriterCtx {
    pub store: Arc<dyn object_store::ObjectStore>,
    pub handle: Handle,
    pub settings: SinkSettings,
    pub max_buffered: u64,
    pub metrics: Arc<Metrics>,
    /// Bytes written since the epoch began (the coordinator checkpoints early past a bound).
    pub epoch_bytes: Arc<AtomicU64>,
}

pub fn run(ctx: WriterCtx, first_epoch: u64, rx: Receiver<WriterMsg>) {
    let mut writers = EpochWriters::new(
        ctx.store.clone(),
        ctx.handle.clone(),
        ctx.settings.clone(),
        first_epoch,
    );
    let mut report = EpochReport::default();
    let mut failure: Option<SinkError> = None;
    while let Ok(msg) = rx.recv() {
        match msg {
            WriterMsg::Data {
                split,
                end_row,
                rules,
                pieces,
            } => {
                if failure.is_none() {
                    for p in &pieces {
                        let rule = &rules.rules[p.rule];
                        let n = p.batch.num_rows() as u64;
                        if p.output == Output::Errors {
                            // `_errors/<table>`: a folder the sink nests like a table.
                            let out = format!("{ERRORS_DIR}/{}", rule.table);
                            if let Err(e) = writers.write(&out, &p.partition, &p.batch) {
                                failure = Some(e);
                                break;
                            }
                            continue;
                        }
                        let table = &rule.table;
                        if let Err(e) = writers.write(table, &p.partition, &p.batch) {
                            failure = Some(e);
                            break;
                        }
                        *report.rows_per_table.entry(table.clone()).or_default() += n;
                        if !report.schemas.contains_key(table) {
                            report
                                .schemas
                                .insert(table.clone(), rule.output_schema.clone());
                        }
                        ctx.metrics.add_routed(table, n);
                    }
                    if writers.buffered_bytes() > ctx.max_buffered / 2
                        && let Err(e) = writers.shed(ctx.max_buffered / 4)
                    {
                        failure = Some(e);
                    }
                    ctx.epoch_bytes.store(writers.bytes_in, Ordering::Relaxed);
                }
                report.offsets.insert(split, end_row);
            }
            WriterMsg::SplitDone { split } => {
                report.done.insert(split);
            }
            WriterMsg::Failed { split, reason } => report.failed.push((split, reason)),
            WriterMsg::Barrier { next, reply } => {
                let finished = std::mem::replace(
                    &mut writers,
                    EpochWriters::new(
                        ctx.store.clone(),
                        ctx.handle.clone(),
                        ctx.settings.clone(),
                        next,
                    ),
                );
                let mut out = std::mem::take(&mut report);
                ctx.epoch_bytes.store(0, Ordering::Relaxed);
                let res = match failure.take() {
                    Some(e) => Err(e),
                    None => finished.finish().map(|files| {
                        out.files = files;
                        out
                    }),
                };
                if reply.send(res).is_err() {
                    return;
                }
            }
        }
    }
}
