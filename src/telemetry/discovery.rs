//! What discovery does not read, and listings that fail: one method per
//! event emits the log line and the counter together, so they cannot drift.
//! Files skipped as older than the lookback window, listing entries that
//! cannot be listed, paths reached through a symlink that are not read, and
//! failed listings; after [`FAILED_SCANS_UNHEALTHY`] failed listings in a
//! row `/healthz` fails. Paths go to logs and `/status`, never to labels.

use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Failed listings in a row after which `/healthz` answers 503.
pub const FAILED_SCANS_UNHEALTHY: u64 = 3;

/// Recent paths kept per kind for `/status`.
const RECENT: usize = 5;

#[derive(Default)]
pub struct DiscoveryStats {
    skipped_too_old: AtomicU64,
    skipped_symlinks: AtomicU64,
    bad_entries: AtomicU64,
    listing_failures: AtomicU64,
    failed_in_a_row: AtomicU64,
    recent: Mutex<Recent>,
    /// Requests to the source store (the store is wrapped in a counter).
    pub requests: std::sync::Arc<crate::store::counted::Requests>,
    scans_full: AtomicU64,
    scans_pruned: AtomicU64,
    last_scan_us: AtomicU64,
    late_files: AtomicU64,
}

#[derive(Default)]
struct Recent {
    too_old: VecDeque<String>,
    symlinks: VecDeque<String>,
    bad: VecDeque<String>,
    last_error: Option<String>,
}

fn push(q: &mut VecDeque<String>, v: String) {
    if q.len() == RECENT {
        q.pop_front();
    }
    q.push_back(v);
}

/// What `/status` and `sluice status` show of discovery.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiscoveryStatus {
    /// Files not read because their mtime is below `watermark - lookback`.
    pub skipped_too_old: u64,
    pub recent_too_old: Vec<String>,
    /// Paths reached through a symlink that are not read.
    pub skipped_symlinks: u64,
    pub recent_symlinks: Vec<String>,
    /// Listing entries that could not be listed (each error names its path).
    pub bad_entries: u64,
    pub recent_bad_entries: Vec<String>,
    /// Scans whose listing of the source root failed.
    pub listing_failures: u64,
    pub failed_scans_in_a_row: u64,
    pub last_listing_error: Option<String>,
}

impl DiscoveryStats {
    fn recent(&self) -> std::sync::MutexGuard<'_, Recent> {
        self.recent.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A file below the floor that was never taken (once per file).
    pub fn too_old(
        &self,
        path: &str,
        mtime_ms: i64,
        floor_ms: Option<i64>,
        watermark_ms: Option<i64>,
    ) {
        tracing::warn!(file = %path, mtime_ms, floor_ms = ?floor_ms, watermark_ms = ?watermark_ms,
            "file skipped: older than watermark - lookback (source.older_than_lookback = \"skip\"); touch it to have it read");
        self.skipped_too_old.fetch_add(1, Ordering::Relaxed);
        push(&mut self.recent().too_old, path.to_string());
    }

    /// A path reached through a symlink that is not read (once per path).
    pub fn symlink_not_read(
        &self,
        path: &str,
        target: &std::path::Path,
        why: &dyn std::fmt::Display,
    ) {
        tracing::warn!(file = %path, target = %target.display(), reason = %why, "file not read");
        self.skipped_symlinks.fetch_add(1, Ordering::Relaxed);
        push(&mut self.recent().symlinks, path.to_string());
    }

    /// A listing entry that could not be listed (once per entry).
    pub fn bad_entry(&self, error: &str) {
        tracing::warn!(error = %error, "source entry skipped: it cannot be listed");
        self.bad_entries.fetch_add(1, Ordering::Relaxed);
        push(&mut self.recent().bad, error.to_string());
    }

    /// The listing of the source root failed.
    pub fn listing_failed(&self, error: &str) {
        let n = self.failed_in_a_row.fetch_add(1, Ordering::Relaxed) + 1;
        self.listing_failures.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(error = %error, failed_in_a_row = n, "listing the source failed; will retry at the next scan");
        self.recent().last_error = Some(error.to_string());
    }

    pub fn listing_ok(&self) {
        self.failed_in_a_row.store(0, Ordering::Relaxed);
    }

    /// A scan's listing took `took`; `full`: everything was listed.
    pub fn scanned(&self, full: bool, took: std::time::Duration) {
        let c = if full {
            &self.scans_full
        } else {
            &self.scans_pruned
        };
        c.fetch_add(1, Ordering::Relaxed);
        self.last_scan_us
            .store(took.as_micros() as u64, Ordering::Relaxed);
    }

    /// A new file found by a full listing in a folder pruned scans skip.
    pub fn late(&self, path: &str, mtime_ms: i64) {
        tracing::info!(file = %path, mtime_ms, "late file: it landed in a partition older than watermark - lookback; found by the reconcile listing and taken");
        self.late_files.fetch_add(1, Ordering::Relaxed);
    }

    /// `/healthz`'s reason after repeated failed listings.
    pub fn unhealthy(&self) -> Option<String> {
        let n = self.failed_in_a_row.load(Ordering::Relaxed);
        (n >= FAILED_SCANS_UNHEALTHY).then(|| {
            format!(
                "listing the source failed {n} times in a row: {}",
                self.recent().last_error.as_deref().unwrap_or("")
            )
        })
    }

    pub fn status(&self) -> DiscoveryStatus {
        let r = self.recent();
        DiscoveryStatus {
            skipped_too_old: self.skipped_too_old.load(Ordering::Relaxed),
            recent_too_old: r.too_old.iter().cloned().collect(),
            skipped_symlinks: self.skipped_symlinks.load(Ordering::Relaxed),
            recent_symlinks: r.symlinks.iter().cloned().collect(),
            bad_entries: self.bad_entries.load(Ordering::Relaxed),
            recent_bad_entries: r.bad.iter().cloned().collect(),
            listing_failures: self.listing_failures.load(Ordering::Relaxed),
            failed_scans_in_a_row: self.failed_in_a_row.load(Ordering::Relaxed),
            last_listing_error: r.last_error.clone(),
        }
    }

    /// The Prometheus series.
    pub fn render(&self, out: &mut String) {
        for (name, help, v) in [
            (
                "sluice_files_skipped_too_old_total",
                "Source files not read because their mtime is below watermark - lookback.",
                &self.skipped_too_old,
            ),
            (
                "sluice_files_skipped_symlink_total",
                "Source paths reached through a symlink that are not read.",
                &self.skipped_symlinks,
            ),
            (
                "sluice_listing_bad_entries_total",
                "Source entries that could not be listed (symlink loops, bad names, unreadable folders).",
                &self.bad_entries,
            ),
            (
                "sluice_listing_failures_total",
                "Scans whose listing of the source root failed.",
                &self.listing_failures,
            ),
            (
                "sluice_files_late_total",
                "New files found by a full (reconcile) listing in partitions pruned scans skip.",
                &self.late_files,
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                v.load(Ordering::Relaxed)
            );
        }
        let name = "sluice_listing_failed_scans_in_a_row";
        let _ = writeln!(
            out,
            "# HELP {name} Consecutive scans whose listing failed (/healthz fails at {FAILED_SCANS_UNHEALTHY}).\n# TYPE {name} gauge\n{name} {}",
            self.failed_in_a_row.load(Ordering::Relaxed)
        );
        let name = "sluice_source_requests_total";
        let _ = writeln!(
            out,
            "# HELP {name} Requests to the source store by operation (a LIST page of 1000 keys is one request).\n# TYPE {name} counter"
        );
        for (op, n) in self.requests.snapshot() {
            let _ = writeln!(out, "{name}{{op=\"{op}\"}} {n}");
        }
        let name = "sluice_source_scans_total";
        let _ = writeln!(
            out,
            "# HELP {name} Discovery scans by kind (full listing, or pruned to recent partitions).\n# TYPE {name} counter\n{name}{{kind=\"full\"}} {}\n{name}{{kind=\"pruned\"}} {}",
            self.scans_full.load(Ordering::Relaxed),
            self.scans_pruned.load(Ordering::Relaxed)
        );
        let name = "sluice_source_scan_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} How long the last scan's listing took.\n# TYPE {name} gauge\n{name} {:.6}",
            self.last_scan_us.load(Ordering::Relaxed) as f64 / 1e6
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_failed_listings_are_unhealthy_until_one_succeeds() {
        let d = DiscoveryStats::default();
        d.listing_failed("cannot list the source root /x: gone");
        d.listing_failed("cannot list the source root /x: gone");
        assert_eq!(d.unhealthy(), None);
        d.listing_failed("cannot list the source root /x: gone");
        let why = d.unhealthy().unwrap();
        assert!(
            why.contains("3 times in a row") && why.contains("/x: gone"),
            "{why}"
        );
        d.listing_ok();
        assert_eq!(d.unhealthy(), None);
        d.scanned(false, std::time::Duration::from_millis(1500));
        d.requests.list.fetch_add(4, Ordering::Relaxed);
        let mut text = String::new();
        d.render(&mut text);
        assert!(
            text.contains("sluice_source_requests_total{op=\"list\"} 4"),
            "{text}"
        );
        assert!(
            text.contains("sluice_source_scans_total{kind=\"pruned\"} 1"),
            "{text}"
        );
        assert!(text.contains("sluice_source_scan_seconds 1.5"), "{text}");
        assert!(text.contains("sluice_listing_failures_total 3"), "{text}");
        assert!(
            text.contains("sluice_listing_failed_scans_in_a_row 0"),
            "{text}"
        );
        assert_eq!(
            d.status().last_listing_error.as_deref(),
            Some("cannot list the source root /x: gone")
        );
    }
}
