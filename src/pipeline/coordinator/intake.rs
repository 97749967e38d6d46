//! Taking files in: re-planning the files a stopped run left active,
//! splitting a newly visible file and queueing its splits, and
//! quarantining a file that cannot be read. Touches the coordinator's file
//! records and work queue only.

use super::Coordinator;
use crate::checkpoint::{FileRecord, FileStatus, STATE_VERSION};
use crate::discover::Listed;
use crate::pipeline::PipelineError;
use crate::pipeline::queue::WorkItem;
use crate::pipeline::reader::SplitInfo;
use crate::pipeline::startup::now_ms;
use crate::read;
use crate::split::{self, SplitId};
use std::sync::Arc;
use std::sync::atomic::Ordering;

impl Coordinator {
    /// Re-plans files that were active when the last run stopped.
    pub(super) fn resume_active_files(&mut self) -> Result<(), PipelineError> {
        let active: Vec<(String, FileRecord)> = self
            .files
            .iter()
            .filter(|(_, r)| r.status == FileStatus::Active)
            .map(|(p, r)| (p.clone(), r.clone()))
            .collect();
        for (path, mut rec) in active {
            match self
                .handle
                .block_on(read::open(&self.source, &path, rec.size, &self.schema))
            {
                Ok(opened) => {
                    // A file released from quarantine before it was ever split.
                    if rec.splits.is_empty() {
                        rec.splits = split::plan(&opened.row_groups(), self.cfg.read.split_size);
                        self.files.insert(path.clone(), rec.clone());
                        self.dirty.insert(path.clone());
                    }
                    self.admit(&path, opened, &rec)
                }
                Err(e) => self.open_failed(&path, e, "cannot reopen to resume: "),
            }
        }
        Ok(())
    }

    pub(super) fn enqueue(&mut self, path: &str, opened: Arc<read::OpenedFile>, rec: &FileRecord) {
        let mut map = self.splits.write().unwrap_or_else(|p| p.into_inner());
        for (i, s) in rec.splits.iter().enumerate() {
            if s.offset < s.rows {
                let id = SplitId {
                    file: path.to_string(),
                    index: i,
                };
                map.insert(
                    id.clone(),
                    SplitInfo {
                        file: opened.clone(),
                        row_groups: s.row_groups,
                        rows: s.rows,
                    },
                );
                self.queue.push(WorkItem {
                    split: id,
                    offset: s.offset,
                });
            }
        }
    }

    /// Quarantines a file with its reason. Several splits of one file can
    /// fail in the same epoch: the file is counted once and keeps the
    /// first reason.
    pub(super) fn quarantine(&mut self, path: &str, reason: String) {
        self.queue.remove_file(path);
        if let Some(r) = self.files.get(path)
            && matches!(r.status, FileStatus::Quarantined { .. })
        {
            tracing::debug!(file = %path, reason = %reason, "another split of a quarantined file failed");
            return;
        }
        tracing::warn!(file = %path, reason = %reason, "quarantined file");
        self.metrics
            .files_quarantined
            .fetch_add(1, Ordering::Relaxed);
        self.summary.files_quarantined += 1;
        if let Some(r) = self.files.get_mut(path) {
            r.status = FileStatus::Quarantined {
                reason,
                at_ms: now_ms(),
            };
        }
        self.dirty.insert(path.to_string());
    }

    pub(super) fn take(&mut self, f: Listed) {
        self.metrics
            .files_discovered
            .fetch_add(1, Ordering::Relaxed);
        self.summary.files_taken += 1;
        let mut rec = FileRecord {
            v: STATE_VERSION,
            size: f.size,
            mtime_ms: f.mtime_ms,
            status: FileStatus::Active,
            splits: vec![],
            changed_reported: false,
        };
        match self
            .handle
            .block_on(read::open(&self.source, &f.path, f.size, &self.schema))
        {
            Ok(opened) => {
                rec.splits = split::plan(&opened.row_groups(), self.cfg.read.split_size);
                if rec.splits.is_empty() {
                    rec.status = FileStatus::Done;
                }
                self.files.insert(f.path.clone(), rec.clone());
                self.admit(&f.path, opened, &rec);
            }
            Err(e) => {
                self.files.insert(f.path.clone(), rec);
                self.open_failed(&f.path, e, "");
            }
        }
        self.dirty.insert(f.path);
    }
}
