//! Retrying failed partition commits: the capped exponential backoff of one
//! pending partition, and the rate limit on the log line each failed
//! attempt writes. Pure (the clock is an argument); no I/O.
//!
//! A partition whose commit failed (`_SUCCESS`, the command or the webhook)
//! stays pending: its commit is not recorded, so it is tried again, after
//! `retry_backoff`, then twice as long each time up to `retry_max_backoff`,
//! until it succeeds, across restarts too (the state still says its rows
//! are unannounced). Each partition waits on its own: the notifier thread
//! takes other partitions in the meantime, so a failing one never holds
//! back the others. Announcements are therefore not ordered by partition
//! time when one fails; receivers key on table + partition.

use std::time::Duration;

/// The wait before the attempt after `failures` failed ones (`failures >= 1`):
/// `first`, `2 x first`, ... capped at `max`.
pub fn backoff(first: Duration, max: Duration, failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(31);
    first.checked_mul(1u32 << doublings).unwrap_or(max).min(max)
}

/// Where one pending partition stands in this process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pending {
    /// The rows the failed attempts announced; a commit with more rows
    /// (late data meanwhile) starts over, command included.
    pub rows: u64,
    /// Failed attempts since the last recorded commit (from the state).
    pub failures: u32,
    /// Since when the partition has been waiting for its commit.
    pub since_ms: i64,
    /// Not before this.
    pub next_attempt_ms: i64,
    pub last_error: Option<String>,
    /// The command already succeeded for `rows`: only what failed after
    /// it is run again.
    pub command_done: bool,
    /// The first attempt for `rows` (the notification's `committed_at`).
    pub first_attempt_ms: Option<i64>,
}

impl Pending {
    /// A partition first seen due at `now_ms`; `failures`, `since_ms` and
    /// `last_error` carried over from its record (a previous run). It is
    /// tried at once.
    pub fn new(rows: u64, now_ms: i64, failures: u32, since_ms: Option<i64>) -> Pending {
        Pending {
            rows,
            failures,
            since_ms: since_ms.unwrap_or(now_ms),
            next_attempt_ms: now_ms,
            last_error: None,
            command_done: false,
            first_attempt_ms: since_ms,
        }
    }

    /// More rows landed while it waited: a new commit, command included.
    pub fn grew(&mut self, rows: u64) {
        if rows != self.rows {
            self.rows = rows;
            self.command_done = false;
            self.first_attempt_ms = None;
        }
    }

    /// An attempt starts at `now_ms`: its `committed_at`.
    pub fn attempt(&mut self, now_ms: i64) -> i64 {
        *self.first_attempt_ms.get_or_insert(now_ms)
    }

    /// Notes a failed attempt at `now_ms`; returns the wait before the next.
    pub fn failed(
        &mut self,
        now_ms: i64,
        error: String,
        command_done: bool,
        first: Duration,
        max: Duration,
    ) -> Duration {
        self.failures = self.failures.saturating_add(1);
        self.command_done = command_done;
        self.last_error = Some(error);
        let wait = backoff(first, max, self.failures);
        self.next_attempt_ms = now_ms.saturating_add(wait.as_millis() as i64);
        wait
    }

    pub fn due(&self, now_ms: i64) -> bool {
        now_ms >= self.next_attempt_ms
    }
}

/// At most `per_window` log lines per `window_ms`; the rest are counted and
/// the count is reported with the next line that goes out.
#[derive(Debug)]
pub struct LogLimit {
    per_window: u32,
    window_ms: i64,
    window_start_ms: i64,
    in_window: u32,
    suppressed: u64,
}

impl LogLimit {
    pub fn new(per_window: u32, window: Duration) -> LogLimit {
        LogLimit {
            per_window,
            window_ms: window.as_millis() as i64,
            window_start_ms: i64::MIN,
            in_window: 0,
            suppressed: 0,
        }
    }

    /// `Some(lines suppressed since the last one)`: log now; `None`: stay quiet.
    pub fn allow(&mut self, now_ms: i64) -> Option<u64> {
        if now_ms.saturating_sub(self.window_start_ms) >= self.window_ms {
            self.window_start_ms = now_ms;
            self.in_window = 0;
        }
        if self.in_window >= self.per_window {
            self.suppressed += 1;
            return None;
        }
        self.in_window += 1;
        Some(std::mem::take(&mut self.suppressed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let max = Duration::from_secs(300);
        let waits: Vec<u64> = (1..=12).map(|n| backoff(S, max, n).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]);
        // No overflow however long it has been failing.
        assert_eq!(backoff(S, max, u32::MAX), max);
        assert_eq!(backoff(Duration::from_secs(u64::MAX / 2), max, 3), max);
        assert_eq!(backoff(S, max, 0), S);
    }

    #[test]
    fn a_pending_partition_waits_longer_after_each_failure() {
        let mut p = Pending::new(7, 1_000, 0, None);
        assert!(p.due(1_000));
        assert_eq!(p.first_attempt_ms, None);
        let max = Duration::from_secs(4);
        assert_eq!(p.failed(1_000, "HTTP 500".into(), true, S, max), S);
        assert!(!p.due(1_999) && p.due(2_000));
        assert_eq!(p.failed(2_000, "HTTP 500".into(), true, S, max), 2 * S);
        assert_eq!(p.failed(4_000, "HTTP 500".into(), true, S, max), 4 * S);
        assert_eq!(p.failed(8_000, "HTTP 502".into(), true, S, max), 4 * S);
        assert_eq!(
            (p.failures, p.since_ms, p.next_attempt_ms),
            (4, 1_000, 12_000)
        );
        assert_eq!(p.last_error.as_deref(), Some("HTTP 502"));
        assert!(p.command_done);
        // Every attempt for the same rows carries the first one's time.
        assert_eq!(p.attempt(12_000), 12_000);
        assert_eq!(p.attempt(20_000), 12_000);
        p.grew(7);
        assert!(p.command_done);
        p.grew(9);
        assert!(!p.command_done);
        assert_eq!(p.attempt(30_000), 30_000);
        // Carried over from a previous run: the count and the age go on,
        // the first attempt after the restart is at once.
        let mut p = Pending::new(7, 50_000, 9, Some(1_000));
        assert_eq!((p.failures, p.since_ms), (9, 1_000));
        assert!(p.due(50_000));
        assert_eq!(p.attempt(50_000), 1_000);
    }

    #[test]
    fn log_lines_are_rate_limited_and_count_what_was_suppressed() {
        let mut l = LogLimit::new(2, Duration::from_secs(60));
        assert_eq!(l.allow(0), Some(0));
        assert_eq!(l.allow(1), Some(0));
        assert_eq!(l.allow(2), None);
        assert_eq!(l.allow(59_999), None);
        assert_eq!(l.allow(60_000), Some(2));
        assert_eq!(l.allow(60_001), Some(0));
        assert_eq!(l.allow(60_002), None);
    }
}
