//! The coordinator's side of read failures: deciding, from whose fault an
//! error is (`read::fault`), whether a file whose footer did not open is
//! quarantined or opened again later, and opening those files again with
//! capped backoff. A file waiting here stays active in state (so a restart
//! resumes it) and is never marked done.
//!
//! `run --once` gives up on a file (or split) after [`ONCE_IO_ATTEMPTS`]
//! I/O failures and exits; the file stays active for the next run. The
//! daemon retries for as long as the errors last, at `read.io_retry_max`.

use super::*;
use crate::read::ReadError;
use crate::read::fault::Fault;

/// I/O failures of one file or split after which `run --once` leaves it
/// for the next run.
pub(super) const ONCE_IO_ATTEMPTS: u32 = 5;

/// A file whose footer failed to open with an I/O error.
pub(super) struct PendingOpen {
    failures: u32,
    not_before: Instant,
}

impl Coordinator {
    /// `path`'s footer did not open: quarantine the file, or (an I/O
    /// error) open it again later. `context` prefixes a quarantine reason.
    pub(super) fn open_failed(&mut self, path: &str, e: ReadError, context: &str) {
        match e.fault() {
            Fault::File => {
                self.pending_opens.remove(path);
                self.quarantine(path, format!("{context}{e}"))
            }
            Fault::Vanished => {
                self.pending_opens.remove(path);
                self.quarantine(path, format!("{context}vanished after it was listed: {e}"))
            }
            Fault::Io => {
                let failures = self.pending_opens.get(path).map_or(0, |p| p.failures) + 1;
                self.metrics.read_io_retries.fetch_add(1, Ordering::Relaxed);
                let wait = self.cfg.read.io_retry.delay(failures);
                if self.io_give_up.is_some_and(|g| failures >= g) {
                    tracing::warn!(file = %path, failures, error = %e,
                        "I/O errors keep failing this file's footer; left for the next run (the file stays active, not quarantined)");
                } else {
                    tracing::warn!(file = %path, failures, retry_in_ms = wait.as_millis() as u64, error = %e,
                        "I/O error opening a file; it is opened again later (the file is not quarantined)");
                }
                self.pending_opens.insert(
                    path.to_string(),
                    PendingOpen {
                        failures,
                        not_before: Instant::now() + wait,
                    },
                );
            }
        }
    }

    /// Opens again the files whose time has come (from the main loop).
    pub(super) fn retry_opens(&mut self) {
        let now = Instant::now();
        let due: Vec<String> = self
            .pending_opens
            .iter()
            .filter(|(_, p)| p.not_before <= now && !self.gave_up(p))
            .map(|(path, _)| path.clone())
            .collect();
        for path in due {
            let Some(mut rec) = self
                .files
                .get(&path)
                .filter(|r| r.status == FileStatus::Active)
                .cloned()
            else {
                self.pending_opens.remove(&path);
                continue;
            };
            let opened =
                self.handle
                    .block_on(read::open(&self.source, &path, rec.size, &self.schema));
            match opened {
                Ok(opened) => {
                    self.pending_opens.remove(&path);
                    tracing::info!(file = %path, "opened after I/O errors");
                    if rec.splits.is_empty() {
                        rec.splits = split::plan(&opened.row_groups(), self.cfg.read.split_size);
                        if rec.splits.is_empty() {
                            rec.status = FileStatus::Done;
                        }
                        self.files.insert(path.clone(), rec.clone());
                        self.dirty.insert(path.clone());
                    }
                    self.admit(&path, opened, &rec);
                }
                Err(e) => self.open_failed(&path, e, ""),
            }
        }
        let waiting = self.pending_opens.len() + self.queue.retrying();
        self.metrics
            .read_io_waiting
            .store(waiting as i64, Ordering::Relaxed);
    }

    /// Whether `run --once` has stopped trying this file.
    fn gave_up(&self, p: &PendingOpen) -> bool {
        self.io_give_up.is_some_and(|g| p.failures >= g)
    }

    /// No open is left to retry in this run (all given up, or none).
    pub(super) fn opens_settled(&self) -> bool {
        self.pending_opens.values().all(|p| self.gave_up(p))
    }

    /// At the end of `run --once`: says which files I/O errors left behind.
    pub(super) fn report_left_behind(&self) {
        if !self.pending_opens.is_empty() {
            tracing::warn!(
                files = self.pending_opens.len(),
                "files left active after I/O errors; the next run reads them"
            );
        }
    }
}
