//! Metrics an operator pages on, as plain atomics rendered in the
//! Prometheus text format. Labels are bounded (table and dimension names
//! from config, never file paths or data values).

use crate::names::output::errors_table as error_output;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Default)]
pub struct Metrics {
    pub files_discovered: AtomicU64,
    pub files_done: AtomicU64,
    pub files_quarantined: AtomicU64,
    pub files_changed_after_taken: AtomicU64,
    /// Source schema changes taken (a column added or widened each).
    pub source_schema_changes: AtomicU64,
    pub rows_read: AtomicU64,
    pub bytes_read: AtomicU64,
    pub rows_matched: AtomicU64,
    pub rows_unmatched: AtomicU64,
    pub rule_errors: AtomicU64,
    pub checkpoints: AtomicU64,
    /// Files closed before their time because `sink.max_open_files` was
    /// reached (the least recently written).
    pub files_closed_idle: AtomicU64,
    /// Row groups flushed before `sink.row_group_rows` to stay within
    /// `sink.max_buffered`, and files closed when that was not enough.
    pub row_groups_cut: AtomicU64,
    pub files_closed_memory: AtomicU64,
    /// Bytes the writer threads hold (rows waiting, row groups being
    /// encoded, parts being uploaded), against `sink.max_buffered`.
    pub writer_buffered_bytes: AtomicI64,
    pub rule_reloads_accepted: AtomicU64,
    pub rule_reloads_refused: AtomicU64,
    pub splits_queued: AtomicI64,
    pub splits_in_flight: AtomicI64,
    pub backlog_files: AtomicI64,
    pub backlog_bytes: AtomicI64,
    pub lag_ms: AtomicI64,
    pub last_checkpoint_ms: AtomicI64,
    pub checkpoint_duration_us: AtomicI64,
    pub ready: AtomicI64,
    /// Last time (ms) the coordinator's loop ran.
    pub loop_tick_ms: AtomicI64,
    /// Last time (ms) a row was read, or the pipeline had nothing to do.
    pub progress_ms: AtomicI64,
    /// `http.stall_timeout` in ms (0: never unhealthy).
    pub stall_timeout_ms: AtomicI64,
    /// Microseconds readers spent blocked on the full writer channel.
    pub reader_wait_us: AtomicU64,
    /// I/O errors opening or fetching a source file, each retried later.
    pub read_io_retries: AtomicU64,
    /// Files and splits waiting to retry after an I/O error.
    pub read_io_waiting: AtomicI64,
    /// Phase, last epoch, quarantine, tables today: what `/status` adds.
    pub status: super::status::StatusBoard,
    /// Files skipped, bad listing entries, failed listings.
    pub discovery: super::discovery::DiscoveryStats,
    /// The sink store's health (object-store sinks; see `sink::health`).
    pub sink_store: Arc<super::store_health::StoreHealth>,
    /// `[cluster]`: the replicas' published progress.
    pub cluster: super::cluster_status::ClusterBoard,
    pub rows_routed: Mutex<BTreeMap<String, u64>>,
    /// Rows a rule failed on, by table.
    pub rule_error_rows: Mutex<BTreeMap<String, u64>>,
    pub rows_committed: Mutex<BTreeMap<String, u64>>,
    pub files_committed: Mutex<BTreeMap<String, u64>>,
    pub dimensions: Mutex<BTreeMap<String, Arc<DimCounters>>>,
    /// Partition commits by (table, late).
    pub partitions_committed: Mutex<BTreeMap<(String, bool), u64>>,
    /// Webhook attempts that failed (the partition stays pending).
    pub partition_commit_webhook_failures: AtomicU64,
    /// Commit commands that failed (non-zero exit, spawn error, timeout).
    pub partition_commit_command_failures: AtomicU64,
    /// Failed commit attempts of any policy (`_SUCCESS`, command, webhook).
    pub partition_commit_failures: AtomicU64,
    /// Complete partitions whose commit is not recorded yet.
    pub partitions_pending: AtomicI64,
    /// Since when (ms) the oldest of them has waited; 0: none.
    pub partition_commit_oldest_pending_ms: AtomicI64,
}

/// One dimension's load and join figures.
#[derive(Default)]
pub struct DimCounters {
    pub rows: AtomicU64,
    pub memory_bytes: AtomicU64,
    /// When the snapshot in use was loaded.
    pub loaded_at_ms: AtomicI64,
    /// Last time the snapshot in use was known to match the files.
    pub verified_at_ms: AtomicI64,
    pub loads_ok: AtomicU64,
    pub loads_failed: AtomicU64,
    /// Loads discarded because a file moved while it was read.
    pub loads_moved: AtomicU64,
    /// Times a load failed and an older snapshot kept (or started) serving.
    pub fallbacks: AtomicU64,
    /// Source rows whose key had no match.
    pub unmatched: AtomicU64,
    pub origin: Mutex<String>,
    pub last_error: Mutex<String>,
}

fn add_map(m: &Mutex<BTreeMap<String, u64>>, key: &str, n: u64) {
    let mut g = m.lock().unwrap_or_else(|p| p.into_inner());
    match g.get_mut(key) {
        Some(v) => *v += n,
        None => {
            g.insert(key.to_string(), n);
        }
    }
}

impl Metrics {
    /// The counters of dimension `name` (created on first use).
    pub fn dimension(&self, name: &str) -> Arc<DimCounters> {
        self.dimensions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(name.to_string())
            .or_default()
            .clone()
    }

    pub fn add_idle_closed(&self, n: u64) {
        self.files_closed_idle.fetch_add(n, Ordering::Relaxed);
    }

    pub fn add_routed(&self, table: &str, n: u64) {
        add_map(&self.rows_routed, table, n);
    }

    /// Rows `table`'s rule failed on (also counted in `rule_errors`).
    pub fn add_rule_errors(&self, table: &str, rows: u64) {
        self.rule_errors.fetch_add(rows, Ordering::Relaxed);
        add_map(&self.rule_error_rows, table, rows);
    }

    pub fn add_committed(&self, table: &str, rows: u64) {
        add_map(&self.rows_committed, table, rows);
        add_map(&self.files_committed, table, 1);
    }

    /// One partition commit of `table` (`late`: committed before).
    pub fn add_partition_committed(&self, table: &str, late: bool) {
        *self
            .partitions_committed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry((table.to_string(), late))
            .or_default() += 1;
    }

    /// Why the process is unhealthy, if it is: the source could not be
    /// listed several scans in a row, or the main loop stopped ticking, or
    /// work is pending and no row was read, for longer than the stall
    /// timeout.
    pub fn stalled(&self, now_ms: i64) -> Option<String> {
        if let Some(why) = self.discovery.unhealthy() {
            return Some(why);
        }
        if let Some(why) = self.sink_store.unreachable() {
            return Some(why);
        }
        stall_reason(
            now_ms,
            self.loop_tick_ms.load(Ordering::Relaxed),
            self.progress_ms.load(Ordering::Relaxed),
            self.stall_timeout_ms.load(Ordering::Relaxed),
        )
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let c = |out: &mut String, name: &str, help: &str, v: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
            );
        };
        let g = |out: &mut String, name: &str, help: &str, v: f64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        };
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let i = |a: &AtomicI64| a.load(Ordering::Relaxed);
        c(
            &mut out,
            "sluice_files_discovered_total",
            "Source files taken.",
            l(&self.files_discovered),
        );
        c(
            &mut out,
            "sluice_files_done_total",
            "Source files fully committed.",
            l(&self.files_done),
        );
        c(
            &mut out,
            "sluice_files_quarantined_total",
            "Source files quarantined.",
            l(&self.files_quarantined),
        );
        c(
            &mut out,
            "sluice_source_schema_changes_total",
            "Source schema changes taken: columns added or widened by new files.",
            l(&self.source_schema_changes),
        );
        c(
            &mut out,
            "sluice_files_changed_after_taken_total",
            "Files whose size or mtime changed after they were taken.",
            l(&self.files_changed_after_taken),
        );
        c(
            &mut out,
            "sluice_rows_read_total",
            "Source rows read.",
            l(&self.rows_read),
        );
        c(
            &mut out,
            "sluice_bytes_read_total",
            "Source bytes fetched.",
            l(&self.bytes_read),
        );
        c(
            &mut out,
            "sluice_rows_matched_total",
            "Rows routed to at least one table.",
            l(&self.rows_matched),
        );
        c(
            &mut out,
            "sluice_rows_unmatched_total",
            "Rows matched by no rule.",
            l(&self.rows_unmatched),
        );
        c(
            &mut out,
            "sluice_rule_errors_total",
            "Rows a rule failed on (to the error output or dropped, per rules.on_error).",
            l(&self.rule_errors),
        );
        let _ = writeln!(
            out,
            "# HELP sluice_reader_wait_seconds_total Time readers spent blocked on the full writer channel.\n# TYPE sluice_reader_wait_seconds_total counter\nsluice_reader_wait_seconds_total {}",
            l(&self.reader_wait_us) as f64 / 1e6
        );
        c(
            &mut out,
            "sluice_checkpoints_total",
            "Checkpoints committed.",
            l(&self.checkpoints),
        );
        c(
            &mut out,
            "sluice_files_closed_idle_total",
            "Files closed early, least recently written first, to stay within sink.max_open_files.",
            l(&self.files_closed_idle),
        );
        c(
            &mut out,
            "sluice_row_groups_cut_total",
            "Row groups flushed before sink.row_group_rows to stay within sink.max_buffered (each repeats its dictionaries; a steady climb asks for more memory).",
            l(&self.row_groups_cut),
        );
        c(
            &mut out,
            "sluice_files_closed_memory_total",
            "Files closed early because flushing row groups did not bring the writers within sink.max_buffered.",
            l(&self.files_closed_memory),
        );
        g(
            &mut out,
            "sluice_writer_buffered_bytes",
            "Bytes the writer threads hold in memory (rows waiting, row groups being encoded, parts being uploaded).",
            i(&self.writer_buffered_bytes) as f64,
        );
        g(
            &mut out,
            "sluice_splits_queued",
            "Splits waiting for a reader.",
            i(&self.splits_queued) as f64,
        );
        g(
            &mut out,
            "sluice_splits_in_flight",
            "Splits being read.",
            i(&self.splits_in_flight) as f64,
        );
        c(
            &mut out,
            "sluice_read_io_retries_total",
            "I/O errors opening or reading a source file (EMFILE, EIO, timeouts, HTTP 5xx/429), each retried with backoff; never a quarantine.",
            l(&self.read_io_retries),
        );
        g(
            &mut out,
            "sluice_read_io_waiting",
            "Source files and splits waiting to retry after an I/O error.",
            i(&self.read_io_waiting) as f64,
        );
        g(
            &mut out,
            "sluice_backlog_files",
            "Visible files not yet committed.",
            i(&self.backlog_files) as f64,
        );
        g(
            &mut out,
            "sluice_backlog_bytes",
            "Bytes of visible files not yet committed.",
            i(&self.backlog_bytes) as f64,
        );
        g(
            &mut out,
            "sluice_lag_seconds",
            "Age of the oldest visible uncommitted file.",
            i(&self.lag_ms) as f64 / 1e3,
        );
        g(
            &mut out,
            "sluice_last_checkpoint_timestamp_seconds",
            "Unix time of the last committed checkpoint.",
            i(&self.last_checkpoint_ms) as f64 / 1e3,
        );
        g(
            &mut out,
            "sluice_checkpoint_duration_seconds",
            "Duration of the last checkpoint.",
            i(&self.checkpoint_duration_us) as f64 / 1e6,
        );
        g(
            &mut out,
            "sluice_ready",
            "1 when state is open, recovery done and rules loaded.",
            i(&self.ready) as f64,
        );
        let _ = writeln!(
            out,
            "# HELP sluice_rule_reloads_total Rule set reloads by result.\n# TYPE sluice_rule_reloads_total counter\nsluice_rule_reloads_total{{result=\"accepted\"}} {}\nsluice_rule_reloads_total{{result=\"refused\"}} {}",
            l(&self.rule_reloads_accepted),
            l(&self.rule_reloads_refused)
        );
        for (name, help, m) in [
            (
                "sluice_rows_routed_total",
                "Rows routed per table.",
                &self.rows_routed,
            ),
            (
                "sluice_rows_committed_total",
                "Rows committed per table.",
                &self.rows_committed,
            ),
            (
                "sluice_files_committed_total",
                "Files committed per table.",
                &self.files_committed,
            ),
            (
                "sluice_rule_error_rows_total",
                "Rows the table's rule failed on, per table.",
                &self.rule_error_rows,
            ),
        ] {
            let m = m.lock().unwrap_or_else(|p| p.into_inner());
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for (t, v) in m.iter().filter(|(t, _)| error_output(t).is_none()) {
                let _ = writeln!(out, "{name}{{table=\"{t}\"}} {v}");
            }
            // Rows set aside in `_errors/<t>` are counted apart, so a sum
            // over tables counts each good row once.
            if let Some(err_name) = name.strip_prefix("sluice_").filter(|_| {
                name != "sluice_rule_error_rows_total"
                    && m.keys().any(|t| error_output(t).is_some())
            }) {
                let err_name = format!("sluice_error_output_{err_name}");
                let _ = writeln!(
                    out,
                    "# HELP {err_name} The same, for the error output of a table's rule (_errors/<table>).\n# TYPE {err_name} counter"
                );
                for (t, v) in m
                    .iter()
                    .filter_map(|(t, v)| error_output(t).map(|t| (t, v)))
                {
                    let _ = writeln!(out, "{err_name}{{table=\"{t}\"}} {v}");
                }
            }
        }
        self.render_dimensions(&mut out);
        self.render_partition_commit(&mut out);
        self.render_open_output(&mut out);
        self.discovery.render(&mut out);
        self.sink_store.render(&mut out);
        self.cluster.render(&mut out);
        out
    }

    /// Output files open across checkpoints and the age of each table's
    /// oldest rows not yet visible.
    fn render_open_output(&self, out: &mut String) {
        let open = self.status.open_output(crate::clock::now_ms());
        let _ = writeln!(
            out,
            "# HELP sluice_open_output_files Output files open across checkpoints (rows durable, not yet visible).\n# TYPE sluice_open_output_files gauge\nsluice_open_output_files {}",
            open.files
        );
        let name = "sluice_oldest_invisible_row_age_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Per table: age of the oldest rows in an output file not yet closed (visible at most sink.max_file_age after they were written).\n# TYPE {name} gauge"
        );
        for (t, age) in &open.oldest_invisible_seconds {
            let _ = writeln!(out, "{name}{{table=\"{t}\"}} {age}");
        }
    }

    fn render_partition_commit(&self, out: &mut String) {
        let name = "sluice_partitions_committed_total";
        let _ = writeln!(
            out,
            "# HELP {name} Output partitions committed (_SUCCESS and notifications), late: committed again after late rows.\n# TYPE {name} counter"
        );
        for ((t, late), v) in self
            .partitions_committed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            let _ = writeln!(out, "{name}{{table=\"{t}\",late=\"{late}\"}} {v}");
        }
        for (name, help, v) in [
            (
                "sluice_partition_commit_failures_total",
                "Failed partition commit attempts (_SUCCESS, command or webhook); the partition stays pending and is retried.",
                &self.partition_commit_failures,
            ),
            (
                "sluice_partition_commit_webhook_failures_total",
                "Partition commit webhook attempts that failed.",
                &self.partition_commit_webhook_failures,
            ),
            (
                "sluice_partition_commit_command_failures_total",
                "Partition commit command runs that failed.",
                &self.partition_commit_command_failures,
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                v.load(Ordering::Relaxed)
            );
        }
        let name = "sluice_partitions_pending";
        let _ = writeln!(
            out,
            "# HELP {name} Complete output partitions whose commit is not recorded yet.\n# TYPE {name} gauge\n{name} {}",
            self.partitions_pending.load(Ordering::Relaxed)
        );
        let since = self
            .partition_commit_oldest_pending_ms
            .load(Ordering::Relaxed);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        let age = if since > 0 {
            (now - since).max(0) as f64 / 1e3
        } else {
            0.0
        };
        let name = "sluice_partition_commit_oldest_pending_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} How long the oldest pending partition has waited for its commit (0: none).\n# TYPE {name} gauge\n{name} {age:.3}"
        );
    }

    fn render_dimensions(&self, out: &mut String) {
        let dims = self.dimensions.lock().unwrap_or_else(|p| p.into_inner());
        if dims.is_empty() {
            return;
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        type Get = fn(&DimCounters, i64) -> String;
        let series: [(&str, &str, &str, Get); 7] = [
            (
                "sluice_dimension_rows",
                "gauge",
                "Rows in the dimension snapshot in use.",
                |d, _| d.rows.load(Ordering::Relaxed).to_string(),
            ),
            (
                "sluice_dimension_memory_bytes",
                "gauge",
                "Memory held by the snapshot in use (arrays and index).",
                |d, _| d.memory_bytes.load(Ordering::Relaxed).to_string(),
            ),
            (
                "sluice_dimension_snapshot_age_seconds",
                "gauge",
                "Seconds since the snapshot in use was last known to match the dimension's files.",
                |d, now| {
                    let v = d.verified_at_ms.load(Ordering::Relaxed);
                    format!("{:.3}", (now - v).max(0) as f64 / 1000.0)
                },
            ),
            (
                "sluice_dimension_loaded_timestamp_seconds",
                "gauge",
                "When the snapshot in use was loaded.",
                |d, _| {
                    format!(
                        "{:.3}",
                        d.loaded_at_ms.load(Ordering::Relaxed) as f64 / 1000.0
                    )
                },
            ),
            (
                "sluice_dimension_fallbacks_total",
                "counter",
                "Loads that failed while an older snapshot kept (or started) serving.",
                |d, _| d.fallbacks.load(Ordering::Relaxed).to_string(),
            ),
            (
                "sluice_dimension_loads_discarded_total",
                "counter",
                "Loads discarded because a file changed while it was read.",
                |d, _| d.loads_moved.load(Ordering::Relaxed).to_string(),
            ),
            (
                "sluice_dimension_rows_unmatched_total",
                "counter",
                "Source rows whose key is not in the dimension.",
                |d, _| d.unmatched.load(Ordering::Relaxed).to_string(),
            ),
        ];
        for (name, kind, help, get) in series {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (n, d) in dims.iter() {
                let _ = writeln!(out, "{name}{{dimension=\"{n}\"}} {}", get(d, now));
            }
        }
        let name = "sluice_dimension_loads_total";
        let _ = writeln!(
            out,
            "# HELP {name} Dimension loads by result.\n# TYPE {name} counter"
        );
        for (n, d) in dims.iter() {
            let _ = writeln!(
                out,
                "{name}{{dimension=\"{n}\",result=\"ok\"}} {}\n{name}{{dimension=\"{n}\",result=\"failed\"}} {}",
                d.loads_ok.load(Ordering::Relaxed),
                d.loads_failed.load(Ordering::Relaxed)
            );
        }
    }
}

/// Pure part of [`Metrics::stalled`]; times of 0 mean "not started yet".
pub fn stall_reason(
    now_ms: i64,
    tick_ms: i64,
    progress_ms: i64,
    timeout_ms: i64,
) -> Option<String> {
    if timeout_ms <= 0 {
        return None;
    }
    if tick_ms > 0 && now_ms - tick_ms > timeout_ms {
        return Some(format!(
            "main loop has not run for {} s",
            (now_ms - tick_ms) / 1000
        ));
    }
    if progress_ms > 0 && now_ms - progress_ms > timeout_ms {
        return Some(format!(
            "work is pending and no row was read for {} s",
            (now_ms - progress_ms) / 1000
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stall_rules() {
        assert_eq!(stall_reason(100_000, 99_000, 99_000, 60_000), None);
        assert!(
            stall_reason(200_000, 100_000, 199_000, 60_000)
                .unwrap()
                .contains("main loop")
        );
        assert!(
            stall_reason(200_000, 199_000, 100_000, 60_000)
                .unwrap()
                .contains("no row was read")
        );
        assert_eq!(stall_reason(200_000, 0, 0, 60_000), None);
        assert_eq!(stall_reason(900_000, 1, 1, 0), None);
    }

    #[test]
    fn error_outputs_are_counted_apart_from_tables() {
        let m = Metrics::default();
        m.add_committed("t_a", 5);
        m.add_committed("_errors/t_a", 2);
        let text = m.render();
        assert!(text.contains("sluice_rows_committed_total{table=\"t_a\"} 5"));
        assert!(!text.contains("table=\"_errors"), "{text}");
        assert!(text.contains("sluice_error_output_rows_committed_total{table=\"t_a\"} 2"));
        assert!(text.contains("sluice_error_output_files_committed_total{table=\"t_a\"} 1"));
    }

    #[test]
    fn renders_labels_without_paths() {
        let m = Metrics::default();
        m.add_committed("t_a", 5);
        m.add_partition_committed("t_a", true);
        let text = m.render();
        assert!(text.contains("sluice_partitions_committed_total{table=\"t_a\",late=\"true\"} 1"));
        assert!(text.contains("sluice_partitions_pending 0"));
        assert!(text.contains("sluice_rows_committed_total{table=\"t_a\"} 5"));
        assert!(text.contains("sluice_rule_reloads_total{result=\"refused\"} 0"));
    }
}
