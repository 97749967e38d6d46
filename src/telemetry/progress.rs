//! The progress line of `sluice run --once` on a terminal: files done of
//! those taken (a bar), rows and bytes read, the read rate and a rough
//! time left, drawn by `indicatif` on stderr from the [`Metrics`] counters
//! (it reads them, never writes). Log lines keep going to stderr above the
//! bar ([`LogWriter`] draws them through it). Not a terminal, or JSON logs:
//! no bar, the log lines alone.
//!
//! Time left is the bytes of the files not done yet over the read rate of
//! the last seconds: an upper bound while a file is half read.

use super::Metrics;
use indicatif::{HumanBytes, HumanCount, HumanDuration, ProgressBar, ProgressStyle};
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The bar being drawn, if any: log lines go through it.
static ACTIVE: Mutex<Option<ProgressBar>> = Mutex::new(None);

/// How often the line is refreshed from the counters.
const TICK: Duration = Duration::from_millis(250);
/// The read rate is measured over this window.
const RATE_WINDOW: Duration = Duration::from_secs(5);

/// A running progress line; dropping it clears the line.
pub struct Progress {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    bar: ProgressBar,
}

impl Progress {
    /// Starts the line when stderr is a terminal; `None` otherwise.
    pub fn start(metrics: Arc<Metrics>) -> Option<Progress> {
        use std::io::IsTerminal;
        if !std::io::stderr().is_terminal() {
            return None;
        }
        Progress::start_on(metrics, ProgressBar::new(0))
    }

    fn start_on(metrics: Arc<Metrics>, bar: ProgressBar) -> Option<Progress> {
        let style = ProgressStyle::with_template(
            "{spinner} {elapsed:>4} [{bar:24}] {pos}/{len} files  {msg}",
        )
        .ok()?
        .progress_chars("=> ");
        bar.set_style(style);
        *active() = Some(bar.clone());
        let stop = Arc::new(AtomicBool::new(false));
        let (s, b) = (stop.clone(), bar.clone());
        let thread = std::thread::Builder::new()
            .name("sluice-progress".into())
            .spawn(move || {
                let mut rate = Rate::default();
                while !s.load(Ordering::Relaxed) {
                    draw(&b, &metrics, &mut rate);
                    std::thread::sleep(TICK);
                }
            })
            .ok();
        Some(Progress { stop, thread, bar })
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        *active() = None;
        self.bar.finish_and_clear();
    }
}

fn active() -> std::sync::MutexGuard<'static, Option<ProgressBar>> {
    ACTIVE.lock().unwrap_or_else(|p| p.into_inner())
}

/// Bytes read at recent instants, for the rate.
#[derive(Default)]
struct Rate(std::collections::VecDeque<(Instant, u64)>);

impl Rate {
    /// Bytes per second over the window ending now.
    fn push(&mut self, now: Instant, bytes: u64) -> f64 {
        self.0.push_back((now, bytes));
        while self
            .0
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) > RATE_WINDOW)
        {
            self.0.pop_front();
        }
        match self.0.front() {
            Some((t, b)) if now > *t => {
                bytes.saturating_sub(*b) as f64 / now.duration_since(*t).as_secs_f64()
            }
            _ => 0.0,
        }
    }
}

/// One refresh of the line from the counters.
fn draw(bar: &ProgressBar, m: &Metrics, rate: &mut Rate) {
    let done = m.files_done.load(Ordering::Relaxed) + m.files_quarantined.load(Ordering::Relaxed);
    let left = m.backlog_files.load(Ordering::Relaxed).max(0) as u64;
    let rows = m.rows_read.load(Ordering::Relaxed);
    let bytes = m.bytes_read.load(Ordering::Relaxed);
    let left_bytes = m.backlog_bytes.load(Ordering::Relaxed).max(0) as u64;
    bar.set_length(done + left);
    bar.set_position(done);
    let per_s = rate.push(Instant::now(), bytes);
    bar.set_message(line(rows, bytes, per_s, left_bytes));
}

/// `1,234 rows, 12.5 MiB read, 3.1 MiB/s, ~4m left`.
fn line(rows: u64, bytes: u64, per_s: f64, left_bytes: u64) -> String {
    let mut s = format!("{} rows, {} read", HumanCount(rows), HumanBytes(bytes));
    if per_s >= 1.0 {
        s.push_str(&format!(", {}/s", HumanBytes(per_s as u64)));
        if left_bytes > 0 {
            let secs = (left_bytes as f64 / per_s).min(1e7);
            s.push_str(&format!(
                ", ~{} left",
                HumanDuration(Duration::from_secs_f64(secs))
            ));
        }
    }
    s
}

/// The log's writer: stderr, with the progress line (if any) cleared while
/// a log line is written and redrawn below it.
#[derive(Clone, Copy, Default)]
pub struct LogWriter;

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = LogWriter;
    fn make_writer(&'a self) -> LogWriter {
        LogWriter
    }
}

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        // The guard is held while writing: a line never lands mid-redraw.
        match active().as_ref() {
            Some(bar) => bar.suspend(|| std::io::stderr().write(buf)),
            None => std::io::stderr().write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_names_rows_bytes_rate_and_time_left() {
        assert_eq!(line(0, 0, 0.0, 0), "0 rows, 0 B read");
        assert_eq!(
            line(1_234_567, 10 << 20, 2.0 * 1024.0 * 1024.0, 120 << 20),
            "1,234,567 rows, 10.00 MiB read, 2.00 MiB/s, ~60 seconds left"
        );
    }

    #[test]
    fn the_rate_is_over_the_recent_window() {
        let mut r = Rate::default();
        let t0 = Instant::now();
        assert_eq!(r.push(t0, 0), 0.0);
        assert_eq!(r.push(t0 + Duration::from_secs(2), 2000), 1000.0);
        // The first sample leaves the window: the rate is of the last 5 s.
        let v = r.push(t0 + Duration::from_secs(7), 12_000);
        assert_eq!(v, 2000.0);
    }

    #[test]
    fn the_bar_follows_the_counters_and_logs_pass_through() {
        let m = Arc::new(Metrics::default());
        m.files_done.store(3, Ordering::Relaxed);
        m.files_quarantined.store(1, Ordering::Relaxed);
        m.backlog_files.store(6, Ordering::Relaxed);
        m.rows_read.store(500, Ordering::Relaxed);
        let bar = ProgressBar::hidden();
        let p = Progress::start_on(m.clone(), bar.clone()).unwrap();
        let t0 = Instant::now();
        while bar.position() != 4 {
            assert!(t0.elapsed() < Duration::from_secs(10), "never drawn");
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(bar.length(), Some(10));
        assert!(bar.message().starts_with("500 rows"), "{}", bar.message());
        assert!(active().is_some());
        LogWriter.write_all(b"").unwrap();
        drop(p);
        assert!(active().is_none() && bar.is_finished());
    }
}
