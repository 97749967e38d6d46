//! How the daemon runs, beside what it reads and writes: `[read]`
//! (readers, batches, splits, I/O retries), `[http]` (the endpoints),
//! `[log]` (format, level, shutdown grace) and `[rules]`. Owns these
//! sections' raw forms, defaults and pure validation, one function a
//! section (the folder `rules.dir` is resolved by the caller); touches
//! nothing else.

use super::ConfigError;
use super::units::{ByteSize, HumanDuration};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRules {
    pub(super) dir: String,
    /// What happens to rows a rule fails on: "error_table" or "drop".
    #[serde(default = "default_on_error")]
    on_error: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRead {
    #[serde(default = "default_readers")]
    readers: usize,
    #[serde(default = "default_batch_rows")]
    batch_rows: usize,
    /// Parquet files are cut into splits of about this many bytes of row groups.
    #[serde(default = "default_split_size")]
    split_size: ByteSize,
    /// First wait before reading a file again after an I/O error (EMFILE,
    /// EIO, timeouts, HTTP 5xx/429); it doubles per failure.
    #[serde(default = "default_io_retry_min")]
    io_retry_min: HumanDuration,
    /// The longest wait between such attempts. A file is never quarantined
    /// for I/O errors: it is retried at this pace for as long as they last.
    #[serde(default = "default_io_retry_max")]
    io_retry_max: HumanDuration,
}

impl Default for RawRead {
    fn default() -> Self {
        RawRead {
            readers: default_readers(),
            batch_rows: default_batch_rows(),
            split_size: default_split_size(),
            io_retry_min: default_io_retry_min(),
            io_retry_max: default_io_retry_max(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHttp {
    /// `host:port`; loopback by default, port 0 picks a free port.
    #[serde(default = "default_listen")]
    pub(super) listen: String,
    #[serde(default = "default_true")]
    pub(super) enabled: bool,
    /// `/healthz` fails when work is pending and nothing moves for this long.
    #[serde(default = "default_stall_timeout")]
    pub(super) stall_timeout: HumanDuration,
    /// Connections held at once; past it, the oldest one still waiting for
    /// its request is closed. Keep it well below the open-file limit.
    #[serde(default = "default_max_connections")]
    pub(super) max_connections: usize,
}

impl Default for RawHttp {
    fn default() -> Self {
        RawHttp {
            listen: default_listen(),
            enabled: true,
            stall_timeout: default_stall_timeout(),
            max_connections: default_max_connections(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLog {
    #[serde(default = "default_log_format")]
    pub(super) format: String,
    #[serde(default = "default_shutdown_grace")]
    pub(super) shutdown_grace: HumanDuration,
    /// A `tracing` filter ("info", "warn,sluice=debug"); `RUST_LOG` wins.
    #[serde(default = "default_log_level")]
    pub(super) level: String,
}

impl Default for RawLog {
    fn default() -> Self {
        RawLog {
            format: default_log_format(),
            shutdown_grace: default_shutdown_grace(),
            level: default_log_level(),
        }
    }
}

fn default_on_error() -> String {
    "error_table".into()
}
fn default_readers() -> usize {
    2
}
fn default_batch_rows() -> usize {
    8192
}
fn default_split_size() -> ByteSize {
    ByteSize(128 << 20)
}
fn default_io_retry_min() -> HumanDuration {
    HumanDuration(Duration::from_millis(500))
}
fn default_io_retry_max() -> HumanDuration {
    HumanDuration(Duration::from_secs(60))
}
fn default_listen() -> String {
    "127.0.0.1:9108".into()
}
fn default_true() -> bool {
    true
}
fn default_stall_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(300))
}
/// Plenty for Prometheus, probes and `sluice status`; a small share of a
/// 1024-file limit.
fn default_max_connections() -> usize {
    64
}
fn default_log_format() -> String {
    "human".into()
}
fn default_log_level() -> String {
    "info".into()
}
fn default_shutdown_grace() -> HumanDuration {
    HumanDuration(Duration::from_secs(30))
}

/// What happens to the rows a rule's expression fails on (the rule's
/// other rows land in its table either way).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OnError {
    /// Written to `<sink.root>/_errors/<table>/dt=.../` with `_error` and `_rule` columns.
    #[default]
    ErrorTable,
    /// Counted and logged, not written.
    Drop,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Clone, Debug)]
pub struct ReadConfig {
    pub readers: usize,
    pub batch_rows: usize,
    pub split_size: u64,
    /// `io_retry_min` .. `io_retry_max`: the pace of retries after I/O errors.
    pub io_retry: crate::read::fault::Backoff,
}

/// Validates `[read]`; `path` names the config in errors.
pub(super) fn read(raw: &RawRead, path: &Path) -> Result<ReadConfig, ConfigError> {
    let invalid = |key: &str, message: String| super::invalid(path, key, message);
    if raw.readers == 0 || raw.readers > 256 {
        return Err(invalid("read.readers", "must be between 1 and 256".into()));
    }
    if raw.batch_rows == 0 {
        return Err(invalid("read.batch_rows", "must be greater than 0".into()));
    }
    if raw.io_retry_min.0.is_zero() || raw.io_retry_max.0 < raw.io_retry_min.0 {
        return Err(invalid(
            "read.io_retry_min",
            "must be greater than 0 and at most read.io_retry_max".into(),
        ));
    }
    Ok(ReadConfig {
        readers: raw.readers,
        batch_rows: raw.batch_rows,
        split_size: raw.split_size.0.max(1),
        io_retry: crate::read::fault::Backoff {
            min: raw.io_retry_min.0,
            max: raw.io_retry_max.0,
        },
    })
}

/// Validates `[http]`: the address to listen on (`None`: disabled).
pub(super) fn http(raw: &RawHttp, path: &Path) -> Result<Option<SocketAddr>, ConfigError> {
    let invalid = |key: &str, message: String| super::invalid(path, key, message);
    let listen = if raw.enabled {
        Some(raw.listen.parse::<SocketAddr>().map_err(|e| {
            invalid(
                "http.listen",
                format!(
                    "{:?} is not host:port ({e}); e.g. \"127.0.0.1:9108\"",
                    raw.listen
                ),
            )
        })?)
    } else {
        None
    };
    if !(1..=65_536).contains(&raw.max_connections) {
        return Err(invalid(
            "http.max_connections",
            "must be between 1 and 65536".into(),
        ));
    }
    Ok(listen)
}

/// Validates `[log]`: its format (the level is checked as a filter).
pub(super) fn log(raw: &RawLog, path: &Path) -> Result<LogFormat, ConfigError> {
    let invalid = |key: &str, message: String| super::invalid(path, key, message);
    if let Err(e) = tracing_subscriber::EnvFilter::try_new(&raw.level) {
        return Err(invalid(
            "log.level",
            format!(
                "{:?} is not a log filter ({e}); e.g. \"info\" or \"warn,sluice=debug\"",
                raw.level
            ),
        ));
    }
    match raw.format.as_str() {
        "human" => Ok(LogFormat::Human),
        "json" => Ok(LogFormat::Json),
        other => Err(invalid(
            "log.format",
            format!("unknown format {other:?}; expected \"human\" or \"json\""),
        )),
    }
}

/// Validates `[rules] on_error`.
pub(super) fn on_error(raw: &RawRules, path: &Path) -> Result<OnError, ConfigError> {
    match raw.on_error.as_str() {
        "error_table" => Ok(OnError::ErrorTable),
        "drop" => Ok(OnError::Drop),
        other => Err(super::invalid(
            path,
            "rules.on_error",
            format!("unknown value {other:?}; expected \"error_table\" or \"drop\""),
        )),
    }
}
