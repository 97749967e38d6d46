//! The sink store's health as the sink's retries see it (see
//! `sink::health`): failures in a row, since when, the last error. Read
//! by `/healthz`, `sluice status` and the metrics. Owns only its counters.

use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// Failures in a row after which the sink counts as unreachable.
pub const FAILURES_UNHEALTHY: u64 = 2;

#[derive(Debug, Default)]
pub struct StoreHealth {
    failures_total: AtomicU64,
    in_a_row: AtomicU64,
    /// When the current run of failures began (ms; 0: none).
    failing_since_ms: AtomicI64,
    last_error: Mutex<Option<String>>,
    /// Requests sent, by operation (`start`, `part`, `head`, `complete`,
    /// `abort`).
    requests: Mutex<std::collections::BTreeMap<&'static str, u64>>,
}

impl StoreHealth {
    /// One request of `op` was sent.
    pub fn count(&self, op: &'static str) {
        *self
            .requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(op)
            .or_default() += 1;
    }

    /// Requests sent so far, by operation.
    pub fn requests(&self) -> std::collections::BTreeMap<&'static str, u64> {
        self.requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn failures_total(&self) -> u64 {
        self.failures_total.load(Ordering::Relaxed)
    }

    pub fn failures_in_a_row(&self) -> u64 {
        self.in_a_row.load(Ordering::Relaxed)
    }

    /// Why the sink counts as unreachable, when it does.
    pub fn unreachable(&self) -> Option<String> {
        let n = self.failures_in_a_row();
        if n < FAILURES_UNHEALTHY {
            return None;
        }
        let since = self.failing_since_ms.load(Ordering::Relaxed);
        let secs = (crate::clock::now_ms() - since).max(0) / 1000;
        let err = self
            .last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .unwrap_or_default();
        Some(format!(
            "sink store unreachable for {secs} s ({n} requests failed in a row; last: {err}); retrying, nothing is committed or lost meanwhile"
        ))
    }

    /// A request failed with `e` (after the client's own retries).
    pub fn failed(&self, e: &dyn std::fmt::Display) {
        self.failures_total.fetch_add(1, Ordering::Relaxed);
        if self.in_a_row.fetch_add(1, Ordering::Relaxed) == 0 {
            self.failing_since_ms
                .store(crate::clock::now_ms(), Ordering::Relaxed);
        }
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.to_string());
    }

    /// A request succeeded.
    pub fn ok(&self) {
        if self.in_a_row.swap(0, Ordering::Relaxed) > 0 {
            tracing::info!("the sink store answers again");
        }
    }

    /// The Prometheus series.
    pub fn render(&self, out: &mut String) {
        use std::fmt::Write;
        let _ = writeln!(
            out,
            "# HELP sluice_sink_store_failures_total Sink store requests that failed after the client's own retries (each is retried).\n# TYPE sluice_sink_store_failures_total counter\nsluice_sink_store_failures_total {}",
            self.failures_total()
        );
        let _ = writeln!(
            out,
            "# HELP sluice_sink_store_failures_in_a_row Sink store requests failed since the last one that succeeded.\n# TYPE sluice_sink_store_failures_in_a_row gauge\nsluice_sink_store_failures_in_a_row {}",
            self.failures_in_a_row()
        );
        let requests = self.requests();
        if !requests.is_empty() {
            let _ = writeln!(
                out,
                "# HELP sluice_sink_requests_total Requests of the sink's multipart uploads, by operation.\n# TYPE sluice_sink_requests_total counter"
            );
            for (op, n) in requests {
                let _ = writeln!(out, "sluice_sink_requests_total{{op=\"{op}\"}} {n}");
            }
        }
    }
}
