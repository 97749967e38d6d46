//! Telemetry: owns logging setup (human or JSON `tracing` output), the
//! metrics registry, the HTTP endpoints (`/metrics`, `/healthz`,
//! `/readyz`, `/status`), the status board behind `sluice status`,
//! discovery's reports of what it does not read, systemd notifications and
//! the progress line of `run --once` on a terminal.

pub mod board;
pub mod cluster_status;
pub mod commit_status;
pub mod diagnosis;
pub mod discovery;
pub mod http;
pub mod metrics;
pub mod progress;
pub mod sdnotify;
pub mod status;
pub mod store_health;

pub use metrics::{DimCounters, Metrics};

use crate::config::LogFormat;
use tracing_subscriber::EnvFilter;

type FilterHandle = tracing_subscriber::reload::Handle<EnvFilter, tracing_subscriber::Registry>;

/// The installed filter, for [`set_log_level`] (SIGHUP).
static FILTER: std::sync::OnceLock<FilterHandle> = std::sync::OnceLock::new();

fn rust_log_set() -> bool {
    std::env::var_os("RUST_LOG").is_some_and(|v| !v.is_empty())
}

/// Installs the global subscriber with `level` (`[log] level`); `RUST_LOG`
/// overrides it.
pub fn init_logging(format: LogFormat, level: &str) {
    use std::io::IsTerminal;
    use tracing_subscriber::prelude::*;
    let filter = if rust_log_set() {
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"))
    } else {
        EnvFilter::try_new(level).unwrap_or_else(|_| EnvFilter::new("info"))
    };
    let (filter, handle) = tracing_subscriber::reload::Layer::new(filter);
    let fmt = tracing_subscriber::fmt::layer()
        .with_ansi(std::io::stderr().is_terminal())
        // stderr, around `run --once`'s progress line when there is one.
        .with_writer(progress::LogWriter);
    let registry = tracing_subscriber::registry().with(filter);
    let installed = match format {
        LogFormat::Json => registry.with(fmt.json()).try_init(),
        LogFormat::Human => registry.with(fmt).try_init(),
    };
    if installed.is_ok() {
        let _ = FILTER.set(handle);
    }
}

/// Replaces the log filter of the running process (SIGHUP). With `RUST_LOG`
/// set, the environment keeps winning and this says so.
pub fn set_log_level(level: &str) -> Result<(), String> {
    if rust_log_set() {
        return Err("RUST_LOG is set and takes precedence over log.level".into());
    }
    let filter = EnvFilter::try_new(level).map_err(|e| e.to_string())?;
    FILTER
        .get()
        .ok_or_else(|| "logging is not initialised".to_string())?
        .reload(filter)
        .map_err(|e| e.to_string())
}
