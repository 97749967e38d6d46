//! The checkpoint, seen from the coordinator: the barrier, which open
//! files it closes, the hot-partition spread, and the epoch's bookkeeping
//! (`checkpoint::ledger`) into one prepare, committed by `pipeline::epoch`.

use super::super::PipelineError;
use super::super::epoch;
use super::super::startup::now_ms;
use super::super::writer::EpochReport;
use super::Coordinator;
use crate::checkpoint::{FileRecord, Prepare, ledger};
use crate::config::OlderThanLookback;
use crate::sink;
use std::sync::atomic::Ordering;
use std::time::Instant;

impl Coordinator {
    /// A checkpoint. `last`: the run stops after it, so every file closes.
    pub(super) fn checkpoint(&mut self, last: bool) -> Result<(), PipelineError> {
        let t0 = Instant::now();
        let _span = tracing::info_span!("checkpoint", epoch = self.epoch).entered();
        self.queue.barrier();
        let policy = self.close_policy(last);
        let report = match self.writers.barrier(self.epoch + 1, policy) {
            Ok(r) => r,
            Err(super::super::writer::BarrierError::Sink(e)) => return Err(e.into()),
            Err(e) => return Err(PipelineError::Thread(e.to_string())),
        };
        self.epoch_bytes.store(0, Ordering::Relaxed);
        let epoch = self.epoch;
        self.epoch += 1;
        let spread = self.respread(&report);
        let result = self.prepare_and_commit(epoch, report, spread, t0);
        if result.is_ok() {
            // Readers are parked: the source schema a file needed changes
            // with this epoch committed (see `evolve`).
            self.take_schema_change(epoch);
        }
        // Readers are parked: a new rule set takes effect for the next epoch as a whole.
        self.reload_rules();
        self.queue.resume();
        self.report_status();
        result
    }

    /// Which open files this checkpoint closes: all at the end of a run;
    /// otherwise those open for their table's `max_file_age`, and those
    /// whose partition is complete (partition commit waits for them).
    fn close_policy(&mut self, last: bool) -> sink::ClosePolicy {
        let now = now_ms();
        if last {
            return sink::ClosePolicy::all(now);
        }
        let mut policy =
            sink::ClosePolicy::ages(self.cfg.sink.max_file_age.as_millis() as i64, now);
        policy.table_max_age_ms = self
            .rules
            .load()
            .rules
            .iter()
            .filter_map(|r| {
                r.max_file_age
                    .map(|d| (r.table.clone(), d.as_millis() as i64))
            })
            .collect();
        // `[cluster]`: the other shards' folders count as done source files.
        let others = self.other_shard_paths();
        if let Some(pc) = self.pcommit.as_mut() {
            let source = super::upkeep::source_progress(&self.files, &self.waiting_paths, &others);
            policy.partition_due = Some(pc.closing(source, now));
        }
        policy
    }

    /// Spreads hot partitions over more writers, or back (see `spread`).
    /// Returns the new factors, to record, when they changed.
    fn respread(&mut self, report: &EpochReport) -> Option<String> {
        let wall_us = self.last_barrier.elapsed().as_micros().max(1) as f64;
        self.last_barrier = Instant::now();
        let load = super::super::spread::Load {
            bytes: report.key_bytes.clone(),
            busy: report
                .busy_us
                .iter()
                .map(|&b| (b as f64 / wall_us).min(1.0))
                .collect(),
        };
        let prev = self.writers.spread();
        let next = super::super::spread::decide(&prev, &load);
        if next == *prev {
            return None;
        }
        for (k, f) in &next {
            if prev.get(k) != Some(f) {
                tracing::info!(table = %k.0, partition = %k.1, writers = f, "hot partition spread over writers");
            }
        }
        let json = serde_json::to_string(&super::super::spread::Stored::from_factors(&next)).ok();
        self.writers.set_spread(next);
        json
    }

    fn prepare_and_commit(
        &mut self,
        epoch: u64,
        mut report: EpochReport,
        spread: Option<String>,
        t0: Instant,
    ) -> Result<(), PipelineError> {
        ledger::advance(
            &mut self.files,
            &mut self.dirty,
            report
                .offsets
                .iter()
                .map(|(s, end)| (s.file.as_str(), s.index, *end)),
        );
        for (split, reason) in &report.failed {
            let at = self
                .files
                .get(&split.file)
                .map(|r| r.splits.get(split.index).map(|s| s.offset).unwrap_or(0));
            self.quarantine(
                &split.file,
                format!(
                    "split {} failed at row {}: {reason}",
                    split.index,
                    at.unwrap_or(0)
                ),
            );
        }
        let newly_done = ledger::finish(&mut self.files, &self.dirty, |p| {
            self.pending_opens.contains_key(p)
        });
        self.open_partitions = report.open_partitions.clone();
        self.oldest_open_ms = report.oldest_open_ms.clone();
        self.open_files = report.open_files;
        if report.files.is_empty()
            && self.dirty.is_empty()
            && report.open.is_empty()
            && report.closed_records.is_empty()
            && spread.is_none()
        {
            return Ok(());
        }
        let pruning = ledger::prune(
            &self.files,
            self.cfg.source.older_than_lookback == OlderThanLookback::Take,
            self.cfg.source.lookback.as_millis() as i64,
            now_ms(),
            self.discovery.pruned_below,
        );
        let removals = pruning.removals.clone();
        let pruned_below = pruning.pruned_below_ms;
        let updates: Vec<(String, FileRecord)> = self
            .dirty
            .iter()
            .filter(|p| !removals.contains(p))
            .filter_map(|p| self.files.get(p).map(|r| (p.clone(), r.clone())))
            .collect();
        // A table's schema is recorded with the first files that have it.
        let table_schemas: Vec<(String, String)> = report
            .schemas
            .iter()
            .map(|(t, s)| (t.clone(), crate::route::schema_guard::to_json(s)))
            .filter(|(t, json)| self.table_schemas.get(t) != Some(json))
            .collect();
        if let Some(pc) = &self.pcommit {
            for u in &mut report.open {
                u.record.tracked = pc.tracks(&u.record.table, &u.record.partition);
            }
        }
        let prepare = Prepare {
            epoch,
            files: report.files.clone(),
            file_updates: updates,
            file_removals: removals.clone(),
            watermark_ms: pruning.watermark_ms,
            pruned_below_ms: pruned_below,
            now_ms: now_ms(),
            table_schemas: table_schemas.clone(),
            source_schema: self.schema_update(epoch, now_ms()),
            track_partitions: self
                .pcommit
                .as_ref()
                .map(|pc| pc.tracked(&report.files))
                .unwrap_or_default(),
            open_files: std::mem::take(&mut report.open),
            open_removals: std::mem::take(&mut report.closed_records),
            spread,
        };
        epoch::commit_epoch(&self.state, &self.sink, &self.handle, &prepare)?;
        self.table_schemas.extend(table_schemas);

        for r in &removals {
            self.files.remove(r);
        }
        self.discovery.pruned(&removals, pruned_below);
        {
            let mut map = self.splits.write().unwrap_or_else(|p| p.into_inner());
            for p in &newly_done {
                map.retain(|k, _| &k.file != p);
            }
        }
        self.dirty.clear();
        self.metrics
            .files_done
            .fetch_add(newly_done.len() as u64, Ordering::Relaxed);
        self.summary.files_done += newly_done.len() as u64;
        self.summary.epochs += 1;
        for f in &report.files {
            self.metrics.add_committed(&f.table, f.rows);
            *self
                .summary
                .rows_committed
                .entry(f.table.clone())
                .or_default() += f.rows;
        }
        self.metrics.checkpoints.fetch_add(1, Ordering::Relaxed);
        self.metrics
            .last_checkpoint_ms
            .store(now_ms(), Ordering::Relaxed);
        self.metrics
            .checkpoint_duration_us
            .store(t0.elapsed().as_micros() as i64, Ordering::Relaxed);
        self.metrics
            .status
            .committed(epoch, now_ms(), Some(t0.elapsed().as_millis() as u64));
        tracing::info!(
            epoch,
            files = report.files.len(),
            rows = report.files.iter().map(|f| f.rows).sum::<u64>(),
            open_files = report.open_files,
            files_done = newly_done.len(),
            ms = t0.elapsed().as_millis() as u64,
            "checkpoint committed"
        );
        Ok(())
    }
}
