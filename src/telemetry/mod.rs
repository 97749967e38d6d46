//! Telemetry: owns logging setup (human or JSON `tracing` output), the
//! metrics registry, the HTTP endpoints (`/metrics`, `/healthz`,
//! `/readyz`, `/status`), the status board behind `sluice status`, and
//! systemd notifications.

pub mod http;
pub mod metrics;
pub mod sdnotify;
pub mod status;

pub use metrics::{DimCounters, Metrics};

use crate::config::LogFormat;
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber; `RUST_LOG` overrides the level (default info).
pub fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Human => builder.try_init(),
    };
}
