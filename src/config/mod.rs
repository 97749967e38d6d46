//! Configuration: owns the TOML file format (raw serde structs with unknown
//! keys rejected), its validation, and the typed [`Config`] the rest of the
//! daemon uses. Loading does the only I/O here (reading the file, then
//! resolving the configured folders' symlinks in [`paths::check`]); the
//! checks in [`Config::from_raw`] are pure.
//!
//! Relative paths in a config file are resolved against the file's folder,
//! so `rules.dir = "rules"` means the `rules` folder next to `sluice.toml`.

pub mod cluster;
pub mod dimension;
pub mod partition_commit;
pub mod paths;
pub mod reload;
pub mod stores;
pub mod units;

use crate::store::{Location, StoreSettings};
pub use cluster::Cluster;
pub use dimension::{DimColumn, DimFormat, DimLayout, DimensionSpec, OnDuplicate};
pub use partition_commit::{
    HeaderValueSource, PartitionCommitConfig, TimeColumns, TimeFormat, TimeToken, WebhookConfig,
};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use units::{ByteSize, HumanDuration};

/// The config file format version this build reads.
pub const CONFIG_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}: {key}: {message}")]
    Invalid {
        path: PathBuf,
        key: String,
        message: String,
    },
}

// ---------------------------------------------------------------- raw file

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    version: u32,
    source: RawSource,
    state: RawState,
    sink: RawSink,
    rules: RawRules,
    #[serde(default)]
    read: RawRead,
    #[serde(default)]
    http: RawHttp,
    #[serde(default)]
    log: RawLog,
    #[serde(default)]
    dimension: Vec<dimension::RawDimension>,
    /// Absent: partitions are never marked complete.
    partition_commit: Option<partition_commit::RawPartitionCommit>,
    /// `[stores."s3://bucket"]`: per-bucket overrides of the environment.
    #[serde(default)]
    stores: std::collections::BTreeMap<String, stores::RawStore>,
    /// `[cluster]`: several replicas over one source and sink.
    cluster: Option<cluster::RawCluster>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSource {
    /// The table name rules select FROM.
    name: String,
    /// A local path, a `file://` URL, or an `s3://`, `gs://`, `az://` URL.
    root: String,
    #[serde(default = "default_format")]
    format: String,
    #[serde(default = "default_visibility")]
    visibility: String,
    /// settled: a file must be unmodified this long.
    #[serde(default = "default_min_age")]
    min_age: HumanDuration,
    /// marker: the file that marks a directory complete.
    #[serde(default = "default_marker")]
    marker: String,
    /// manifest: the folder (under the root) of the producer's index files.
    #[serde(default = "default_manifest_dir")]
    manifest_dir: String,
    /// Glob on the file name (`*` and `?`).
    #[serde(default = "default_pattern")]
    pattern: String,
    /// How often a full listing runs (notify events trigger earlier ones).
    #[serde(default = "default_scan_interval")]
    scan_interval: HumanDuration,
    /// Files this much older than the watermark are below the floor.
    #[serde(default = "default_lookback")]
    lookback: HumanDuration,
    /// "skip" files below the floor (reported), or "take" them (records kept forever).
    #[serde(default = "default_older_than_lookback")]
    older_than_lookback: String,
    /// Read files reached through symlinks (each file once).
    #[serde(default)]
    follow_symlinks: bool,
    /// Hive path keys that become string columns (inferred when absent).
    partition_columns: Option<Vec<String>>,
    /// Columns every source file must carry: a file without one is
    /// quarantined (any other missing column reads as NULL).
    #[serde(default)]
    required_columns: Vec<String>,
    /// "off", or "hive": scans list only the top-level day folders at or
    /// after `watermark - lookback` (see `discover::prune`).
    #[serde(default = "default_partition_pruning")]
    partition_pruning: String,
    /// With pruning: how often a full listing runs to find files that
    /// landed in older folders.
    #[serde(default = "default_reconcile_interval")]
    reconcile_interval: HumanDuration,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawState {
    dir: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSink {
    root: String,
    #[serde(default = "default_checkpoint_interval")]
    checkpoint_interval: HumanDuration,
    /// A writer rolls to a new file past this size.
    #[serde(default = "default_target_file_size")]
    target_file_size: ByteSize,
    /// An output file closes (and its rows become visible) once it has
    /// been open this long; rules may say otherwise for their table.
    #[serde(default = "default_max_file_age")]
    max_file_age: HumanDuration,
    /// Writers flush row groups (and, last, close files) to keep the
    /// bytes they hold under this.
    #[serde(default = "default_max_buffered")]
    max_buffered: ByteSize,
    /// Rows per Parquet row group.
    #[serde(default = "default_row_group_rows")]
    row_group_rows: usize,
    #[serde(default = "default_zstd_level")]
    zstd_level: i32,
    /// Writer threads (each encodes a disjoint share of the output files).
    #[serde(default = "default_writers")]
    writers: usize,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRules {
    dir: String,
    /// What happens to rows a rule fails on: "error_table" or "drop".
    #[serde(default = "default_on_error")]
    on_error: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRead {
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
struct RawHttp {
    /// `host:port`; loopback by default, port 0 picks a free port.
    #[serde(default = "default_listen")]
    listen: String,
    #[serde(default = "default_true")]
    enabled: bool,
    /// `/healthz` fails when work is pending and nothing moves for this long.
    #[serde(default = "default_stall_timeout")]
    stall_timeout: HumanDuration,
    /// Connections held at once; past it, the oldest one still waiting for
    /// its request is closed. Keep it well below the open-file limit.
    #[serde(default = "default_max_connections")]
    max_connections: usize,
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
struct RawLog {
    #[serde(default = "default_log_format")]
    format: String,
    #[serde(default = "default_shutdown_grace")]
    shutdown_grace: HumanDuration,
    /// A `tracing` filter ("info", "warn,sluice=debug"); `RUST_LOG` wins.
    #[serde(default = "default_log_level")]
    level: String,
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

fn default_format() -> String {
    "parquet".into()
}
fn default_visibility() -> String {
    "settled".into()
}
fn default_min_age() -> HumanDuration {
    HumanDuration(Duration::from_secs(30))
}
fn default_marker() -> String {
    "_SUCCESS".into()
}
fn default_manifest_dir() -> String {
    "_manifests".into()
}
fn default_pattern() -> String {
    "*.parquet".into()
}
fn default_scan_interval() -> HumanDuration {
    HumanDuration(Duration::from_secs(10))
}
fn default_lookback() -> HumanDuration {
    HumanDuration(Duration::from_secs(3600))
}
fn default_partition_pruning() -> String {
    "off".into()
}
fn default_reconcile_interval() -> HumanDuration {
    HumanDuration(Duration::from_secs(3600))
}
fn default_older_than_lookback() -> String {
    "skip".into()
}
fn default_checkpoint_interval() -> HumanDuration {
    HumanDuration(Duration::from_secs(30))
}
fn default_max_file_age() -> HumanDuration {
    HumanDuration(Duration::from_secs(15 * 60))
}
fn default_target_file_size() -> ByteSize {
    ByteSize(128 << 20)
}
fn default_max_buffered() -> ByteSize {
    ByteSize(512 << 20)
}
fn default_row_group_rows() -> usize {
    128 * 1024
}
fn default_zstd_level() -> i32 {
    // Level 1: on P100 it wrote smaller output than Polars' (with per-column
    // encoding) for a quarter less wall time than level 3.
    1
}
fn default_writers() -> usize {
    2
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

// ---------------------------------------------------------------- typed config

/// When a source file counts as visible (see DESIGN.md, discover).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Visibility {
    /// Not hidden, not in progress, unmodified for `min_age`.
    Settled { min_age: Duration },
    /// Its directory holds the named marker file.
    Marker { name: String },
    /// An index file under `dir` (relative to the root) names it; data
    /// files are never listed (see `discover::manifest`).
    Manifest { dir: String },
}

/// What discovery does with a file whose mtime is more than `lookback`
/// below the watermark (see `configs/sluice.toml` for the trade-off).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OlderThanLookback {
    /// Not read; logged, counted and shown by `sluice status`. Records of
    /// finished files are pruned below the floor: the state stays small.
    #[default]
    Skip,
    /// Read: records are never pruned, so every file not in them is new.
    Take,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceFormat {
    Parquet,
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
pub struct SourceConfig {
    pub name: String,
    pub root: Location,
    pub format: SourceFormat,
    pub visibility: Visibility,
    pub pattern: String,
    pub scan_interval: Duration,
    pub lookback: Duration,
    pub older_than_lookback: OlderThanLookback,
    /// Follow symlinks (also out of the root), each file read once; when
    /// false, a path reached through a symlink is not read (reported).
    pub follow_symlinks: bool,
    pub partition_columns: Option<Vec<String>>,
    /// Columns every source file must carry (`[source] required_columns`):
    /// a file without one is quarantined. Any other column of the source
    /// schema a file lacks is read as NULL.
    pub required_columns: Vec<String>,
    /// `partition_pruning = "hive"`: the interval of full (reconcile)
    /// listings; `None`: every scan lists everything.
    pub pruning: Option<Duration>,
}

#[derive(Clone, Debug)]
pub struct SinkConfig {
    pub root: Location,
    pub checkpoint_interval: Duration,
    /// How long an output file may stay open (see `sink::writers`).
    pub max_file_age: Duration,
    pub target_file_size: u64,
    pub max_buffered: u64,
    pub row_group_rows: usize,
    pub zstd_level: i32,
    pub writers: usize,
}

#[derive(Clone, Debug)]
pub struct ReadConfig {
    pub readers: usize,
    pub batch_rows: usize,
    pub split_size: u64,
    /// `io_retry_min` .. `io_retry_max`: the pace of retries after I/O errors.
    pub io_retry: crate::read::fault::Backoff,
}

/// The validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// The file it was loaded from (for messages).
    pub path: PathBuf,
    pub source: SourceConfig,
    pub state_dir: PathBuf,
    pub sink: SinkConfig,
    pub rules_dir: PathBuf,
    pub rules_on_error: OnError,
    pub read: ReadConfig,
    pub http_listen: Option<SocketAddr>,
    /// `[http] max_connections`: connections the HTTP server holds at once.
    pub http_max_connections: usize,
    pub stall_timeout: Duration,
    pub log_format: LogFormat,
    pub shutdown_grace: Duration,
    /// `[log] level`: a `tracing` filter directive, reloadable with SIGHUP.
    pub log_level: String,
    /// `[[dimension]]` tables joined onto every batch before routing.
    pub dimensions: Vec<DimensionSpec>,
    /// `[partition_commit]`: `_SUCCESS` and notifications for complete partitions.
    pub partition_commit: Option<PartitionCommitConfig>,
    /// How to open the object stores the locations above name.
    pub stores: StoreSettings,
    /// `[cluster]`: this replica and how many there are (one without it).
    pub cluster: Cluster,
}

impl Config {
    /// Reads, parses and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let cfg = Self::parse(&text, path)?;
        paths::check(&cfg)?;
        Ok(cfg)
    }

    /// Parses and validates config text; `path` names it in errors and anchors
    /// relative paths.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        Self::parse_with_env(text, path, &|name| std::env::var(name).ok())
    }

    /// [`Self::parse`] with the environment given as a lookup (`cluster.replica`).
    pub fn parse_with_env(
        text: &str,
        path: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string().trim_end().to_string(),
        })?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Self::from_raw(raw, path, &base, env)
    }

    fn from_raw(
        raw: RawConfig,
        path: &Path,
        base: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let invalid = |key: &str, message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            key: key.to_string(),
            message,
        };
        if raw.version != CONFIG_VERSION {
            return Err(invalid(
                "version",
                format!(
                    "this sluice reads config version {CONFIG_VERSION}, the file says {}",
                    raw.version
                ),
            ));
        }
        let s = raw.source;
        if !is_identifier(&s.name) {
            return Err(invalid(
                "source.name",
                format!(
                    "{:?} is not a table name rules can select from (letters, digits, _; not starting with a digit)",
                    s.name
                ),
            ));
        }
        let format = match s.format.as_str() {
            "parquet" => SourceFormat::Parquet,
            other => {
                return Err(invalid(
                    "source.format",
                    format!("unsupported format {other:?}; supported: parquet"),
                ));
            }
        };
        let visibility = match s.visibility.as_str() {
            "settled" => Visibility::Settled {
                min_age: s.min_age.0,
            },
            "marker" => {
                if s.marker.is_empty() || s.marker.contains('/') {
                    return Err(invalid(
                        "source.marker",
                        "must be a plain file name such as \"_SUCCESS\"".into(),
                    ));
                }
                Visibility::Marker { name: s.marker }
            }
            "manifest" => {
                let dir = s.manifest_dir.trim_matches('/');
                if dir.is_empty()
                    || dir
                        .split('/')
                        .any(|seg| seg == ".." || seg == "." || seg.is_empty())
                {
                    return Err(invalid(
                        "source.manifest_dir",
                        "must be a folder under source.root such as \"_manifests\"".into(),
                    ));
                }
                Visibility::Manifest {
                    dir: dir.to_string(),
                }
            }
            other => {
                return Err(invalid(
                    "source.visibility",
                    format!(
                        "unknown mode {other:?}; expected \"settled\", \"marker\" or \"manifest\""
                    ),
                ));
            }
        };
        if s.pattern.is_empty() || s.pattern.contains('/') {
            return Err(invalid(
                "source.pattern",
                "must be a file-name glob such as \"*.parquet\"".into(),
            ));
        }
        let older_than_lookback = match s.older_than_lookback.as_str() {
            "skip" => OlderThanLookback::Skip,
            "take" => OlderThanLookback::Take,
            other => {
                return Err(invalid(
                    "source.older_than_lookback",
                    format!("unknown value {other:?}; expected \"skip\" or \"take\""),
                ));
            }
        };
        let pruning = match s.partition_pruning.as_str() {
            "off" => None,
            "hive" if s.reconcile_interval.0 >= s.scan_interval.0 => Some(s.reconcile_interval.0),
            "hive" => {
                return Err(invalid(
                    "source.reconcile_interval",
                    "must be at least source.scan_interval".into(),
                ));
            }
            other => {
                return Err(invalid(
                    "source.partition_pruning",
                    format!("unknown value {other:?}; expected \"off\" or \"hive\""),
                ));
            }
        };
        if s.scan_interval.0.is_zero() {
            return Err(invalid(
                "source.scan_interval",
                "must be greater than 0".into(),
            ));
        }
        if let Some(cols) = &s.partition_columns
            && let Some(bad) = cols.iter().find(|c| !is_identifier(c))
        {
            return Err(invalid(
                "source.partition_columns",
                format!("{bad:?} is not a column name"),
            ));
        }
        if let Some(bad) = s.required_columns.iter().find(|c| c.trim().is_empty()) {
            return Err(invalid(
                "source.required_columns",
                format!("{bad:?} is not a column name"),
            ));
        }
        let sink = raw.sink;
        if sink.checkpoint_interval.0.is_zero() {
            return Err(invalid(
                "sink.checkpoint_interval",
                "must be greater than 0".into(),
            ));
        }
        if sink.max_file_age.0.is_zero() {
            return Err(invalid(
                "sink.max_file_age",
                "must be greater than 0".into(),
            ));
        }
        if sink.target_file_size.0 < 1 << 16 {
            return Err(invalid(
                "sink.target_file_size",
                "must be at least 64KiB".into(),
            ));
        }
        if sink.row_group_rows == 0 {
            return Err(invalid(
                "sink.row_group_rows",
                "must be greater than 0".into(),
            ));
        }
        if !(1..=22).contains(&sink.zstd_level) {
            return Err(invalid(
                "sink.zstd_level",
                "must be between 1 and 22".into(),
            ));
        }
        if sink.writers == 0 || sink.writers > 64 {
            return Err(invalid("sink.writers", "must be between 1 and 64".into()));
        }
        if raw.read.readers == 0 || raw.read.readers > 256 {
            return Err(invalid("read.readers", "must be between 1 and 256".into()));
        }
        if raw.read.batch_rows == 0 {
            return Err(invalid("read.batch_rows", "must be greater than 0".into()));
        }
        if raw.read.io_retry_min.0.is_zero() || raw.read.io_retry_max.0 < raw.read.io_retry_min.0 {
            return Err(invalid(
                "read.io_retry_min",
                "must be greater than 0 and at most read.io_retry_max".into(),
            ));
        }
        let http_listen = if raw.http.enabled {
            Some(raw.http.listen.parse::<SocketAddr>().map_err(|e| {
                invalid(
                    "http.listen",
                    format!(
                        "{:?} is not host:port ({e}); e.g. \"127.0.0.1:9108\"",
                        raw.http.listen
                    ),
                )
            })?)
        } else {
            None
        };
        if !(1..=65_536).contains(&raw.http.max_connections) {
            return Err(invalid(
                "http.max_connections",
                "must be between 1 and 65536".into(),
            ));
        }
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&raw.log.level) {
            return Err(invalid(
                "log.level",
                format!(
                    "{:?} is not a log filter ({e}); e.g. \"info\" or \"warn,sluice=debug\"",
                    raw.log.level
                ),
            ));
        }
        let log_format = match raw.log.format.as_str() {
            "human" => LogFormat::Human,
            "json" => LogFormat::Json,
            other => {
                return Err(invalid(
                    "log.format",
                    format!("unknown format {other:?}; expected \"human\" or \"json\""),
                ));
            }
        };
        let rules_on_error = match raw.rules.on_error.as_str() {
            "error_table" => OnError::ErrorTable,
            "drop" => OnError::Drop,
            other => {
                return Err(invalid(
                    "rules.on_error",
                    format!("unknown value {other:?}; expected \"error_table\" or \"drop\""),
                ));
            }
        };
        let source_root = Location::parse(base, &s.root).map_err(|m| invalid("source.root", m))?;
        let sink_root = Location::parse(base, &sink.root).map_err(|m| invalid("sink.root", m))?;
        let state_dir = resolve(base, &raw.state.dir).map_err(|m| invalid("state.dir", m))?;
        let rules_dir = resolve(base, &raw.rules.dir).map_err(|m| invalid("rules.dir", m))?;
        if source_root.contains(&sink_root) || sink_root.contains(&source_root) {
            return Err(invalid(
                "sink.root",
                "must not be inside source.root (or contain it)".into(),
            ));
        }
        let mut dimensions = dimension::validate(raw.dimension, path, base)?;
        let stores = stores::validate(raw.stores, path)?;
        for d in &mut dimensions {
            d.stores = stores.clone();
        }
        let partition_commit = raw
            .partition_commit
            .map(|p| partition_commit::validate(p, path, base))
            .transpose()?;
        let cluster = cluster::validate(raw.cluster, path, sink.checkpoint_interval.0, env)?;
        Ok(Config {
            path: path.to_path_buf(),
            cluster,
            dimensions,
            partition_commit,
            stores,
            source: SourceConfig {
                name: s.name,
                root: source_root,
                format,
                visibility,
                pattern: s.pattern,
                scan_interval: s.scan_interval.0,
                lookback: s.lookback.0,
                older_than_lookback,
                follow_symlinks: s.follow_symlinks,
                partition_columns: s.partition_columns,
                required_columns: s.required_columns,
                pruning,
            },
            state_dir,
            sink: SinkConfig {
                root: sink_root,
                checkpoint_interval: sink.checkpoint_interval.0,
                max_file_age: sink.max_file_age.0,
                target_file_size: sink.target_file_size.0,
                max_buffered: sink.max_buffered.0,
                row_group_rows: sink.row_group_rows,
                zstd_level: sink.zstd_level,
                writers: sink.writers,
            },
            rules_dir,
            rules_on_error,
            read: ReadConfig {
                readers: raw.read.readers,
                batch_rows: raw.read.batch_rows,
                split_size: raw.read.split_size.0.max(1),
                io_retry: crate::read::fault::Backoff {
                    min: raw.read.io_retry_min.0,
                    max: raw.read.io_retry_max.0,
                },
            },
            http_listen,
            http_max_connections: raw.http.max_connections,
            stall_timeout: raw.http.stall_timeout.0,
            log_format,
            shutdown_grace: raw.log.shutdown_grace.0,
            log_level: raw.log.level,
        })
    }
}

/// A local folder (the state, the rules): a path or a `file://` URL;
/// relative paths are taken from the config's folder.
fn resolve(base: &Path, value: &str) -> Result<PathBuf, String> {
    match Location::parse(base, value)? {
        Location::Local(p) => Ok(p),
        Location::Url(_) => Err(format!(
            "{value:?}: must be a local folder (a path or a file:// URL)"
        )),
    }
}

/// Letters, digits and `_`, not starting with a digit.
pub fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
version = 1
[source]
name = "ods_events"
root = "/data/ods/events"
format = "parquet"
visibility = "settled"
min_age = "30s"
[state]
dir = "/var/lib/sluice"
[sink]
root = "/data/dwd"
checkpoint_interval = "30s"
[rules]
dir = "rules"
"#;

    #[test]
    fn issue_example_loads() {
        let c = Config::parse(GOOD, Path::new("/etc/sluice/sluice.toml")).unwrap();
        assert_eq!(c.source.name, "ods_events");
        assert_eq!(
            c.source.visibility,
            Visibility::Settled {
                min_age: Duration::from_secs(30)
            }
        );
        assert_eq!(c.rules_dir, PathBuf::from("/etc/sluice/rules"));
        assert_eq!(c.http_listen.unwrap().to_string(), "127.0.0.1:9108");
        assert_eq!(c.http_max_connections, 64);
        assert_eq!(c.rules_on_error, OnError::ErrorTable);
        let c = Config::parse(
            &GOOD.replace("dir = \"rules\"", "dir = \"rules\"\non_error = \"drop\""),
            Path::new("/etc/sluice/sluice.toml"),
        )
        .unwrap();
        assert_eq!(c.rules_on_error, OnError::Drop);
    }

    #[test]
    fn unknown_key_names_line_and_column() {
        let text = GOOD.replace("min_age = \"30s\"", "min_age = \"30s\"\nmin_agee = 3");
        let e = Config::parse(&text, Path::new("x.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("x.toml"), "{e}");
        assert!(e.contains("line 9"), "{e}");
        assert!(e.contains("min_agee"), "{e}");
    }

    #[test]
    fn bad_duration_is_located() {
        let text = GOOD.replace("\"30s\"\n[state]", "\"thirty\"\n[state]");
        let e = Config::parse(&text, Path::new("x.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("invalid duration \"thirty\""), "{e}");
        assert!(e.contains("line 8"), "{e}");
    }

    #[test]
    fn shipped_reference_config_loads() {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/sluice.toml");
        let c = Config::load(&p).unwrap();
        let d = &c.dimensions[0];
        assert_eq!(
            d.layout,
            DimLayout::Dated {
                marker: Some("_SUCCESS".into())
            }
        );
        let names: Vec<_> = d.columns.iter().map(|c| c.to.as_str()).collect();
        assert_eq!(names, ["dept", "business", "spm_owner"]);
        assert_eq!(d.columns[0].default.as_deref(), Some("unknown"));
    }

    #[test]
    fn issue_dimension_example_loads_and_bad_dimensions_are_refused() {
        let dim = r#"
[[dimension]]
name = "dim_spmid"
path = "/data/dim/spmid"
key = "spmid"
source_key = "spmid"
columns = ["dept", "business", "owner"]
reload_interval = "5m"
min_rows = 1000
"#;
        let c = Config::parse(&format!("{GOOD}{dim}"), Path::new("x.toml")).unwrap();
        let d = &c.dimensions[0];
        assert_eq!(d.path, Location::Local(PathBuf::from("/data/dim/spmid")));
        assert_eq!(d.reload_interval, Duration::from_secs(300));
        assert_eq!(d.min_rows, 1000);
        assert_eq!(d.on_duplicate, OnDuplicate::Error);
        let cases = [
            (
                "columns = [\"dept\", \"business\", \"owner\"]",
                "columns = []",
                "dimension[0].columns",
            ),
            (
                "reload_interval = \"5m\"",
                "reload_interval = \"5m\"\nlayout = \"daily\"",
                "unknown layout",
            ),
            ("min_rows = 1000", "min_ratio = 2.0", "between 0 and 1"),
            (
                "min_rows = 1000",
                "rename = { nope = \"x\" }",
                "\"nope\" is not in `columns`",
            ),
            (
                "min_rows = 1000",
                "default = { owner2 = \"x\" }",
                "not an added column",
            ),
            ("min_rows = 1000", "on_duplicate = \"first\"", "last_wins"),
        ];
        for (from, to, want) in cases {
            let text = format!("{GOOD}{}", dim.replace(from, to));
            let e = Config::parse(&text, Path::new("x.toml"))
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{to}: {e}");
        }
        let twice = format!("{GOOD}{dim}{dim}");
        let e = Config::parse(&twice, Path::new("x.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("used by two dimensions"), "{e}");
        let typo = format!("{GOOD}{}", dim.replace("min_rows", "min_row"));
        let e = Config::parse(&typo, Path::new("x.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("min_row") && e.contains("line"), "{e}");
    }

    #[test]
    fn partition_commit_section() {
        let c = Config::parse(GOOD, Path::new("x.toml")).unwrap();
        assert!(c.partition_commit.is_none(), "absent: off");
        let on = format!("{GOOD}[partition_commit]\n");
        let p = Config::parse(&on, Path::new("x.toml"))
            .unwrap()
            .partition_commit
            .unwrap();
        assert_eq!(p.time_columns.day.0, "dt");
        assert_eq!(p.time_columns.hour.as_ref().unwrap().0, "hour");
        assert_eq!(p.delay, Duration::from_secs(600));
        assert_eq!(p.idle_close, Some(Duration::from_secs(3600)));
        assert!(p.success_file && p.webhook.is_none() && p.command.is_none());
        let full = format!(
            "{GOOD}[partition_commit]\ntime_columns = {{ day = \"%Y%m%d\" }}\nutc_offset = \"+08:00\"\ndelay = \"0s\"\nidle_close = \"off\"\ncommand = [\"/bin/true\", \"{{table}}\"]\nwebhook = {{ url = \"http://127.0.0.1:8080/hook\", retries = 2 }}\n"
        );
        let p = Config::parse(&full, Path::new("x.toml"))
            .unwrap()
            .partition_commit
            .unwrap();
        assert_eq!(p.time_columns.day.0, "day");
        assert!(p.time_columns.hour.is_none());
        assert_eq!(p.utc_offset_s, 8 * 3600);
        assert_eq!(p.idle_close, None);
        let w = p.webhook.unwrap();
        assert_eq!(w.url, "http://127.0.0.1:8080/hook");
        // `retries` is deprecated: accepted, ignored, named for a warning.
        assert_eq!(w.ignored_keys, ["retries"]);
        assert_eq!(w.timeout, Duration::from_secs(10));
        assert_eq!(p.retry_backoff, Duration::from_secs(1));
        assert_eq!(p.retry_max_backoff, Duration::from_secs(300));
        let cases = [
            (
                "webhook = { url = \"ftp://h/x\" }",
                "expected an http:// or https:// URL",
            ),
            (
                "webhook = { url = \"https://h/x\", headers = { \"A B\" = \"x\" } }",
                "partition_commit.webhook.headers.A B",
            ),
            ("time_columns = { hour = \"%H\" }", "needs a day column"),
            ("time_columns = { dt = \"%Y-%m\" }", "must be a day"),
            (
                "time_columns = { dt = \"%Y-%m-%d\", d2 = \"%Y%m%d\" }",
                "only one day column",
            ),
            ("command = []", "must start with a program"),
            ("utc_offset = \"CST\"", "partition_commit.utc_offset"),
            ("idle_close = \"soon\"", "partition_commit.idle_close"),
            ("idle_close = \"never\"", "or \"off\""),
            ("dealy = \"1m\"", "dealy"),
            ("retry_backoff = \"0s\"", "partition_commit.retry_backoff"),
            (
                "retry_backoff = \"1m\"\nretry_max_backoff = \"10s\"",
                "at least retry_backoff",
            ),
        ];
        for (line, want) in cases {
            let e = Config::parse(
                &format!("{GOOD}[partition_commit]\n{line}\n"),
                Path::new("x.toml"),
            )
            .unwrap_err()
            .to_string();
            assert!(e.contains(want), "{line}: {e}");
        }
    }

    #[test]
    fn object_store_urls_and_store_sections() {
        let text = GOOD
            .replace("/data/ods/events", "s3://ods-bucket/ods/events/")
            .replace("/data/dwd", "s3://dwd-bucket/dwd")
            + "[stores.\"s3://ods-bucket\"]\nendpoint = \"http://127.0.0.1:9000\"\nallow_http = true\nregion = \"us-east-1\"\nvirtual_hosted_style = false\n";
        let c = Config::parse(&text, Path::new("x.toml")).unwrap();
        assert_eq!(c.source.root.to_string(), "s3://ods-bucket/ods/events");
        assert_eq!(c.sink.root.to_string(), "s3://dwd-bucket/dwd");
        let o = &c.stores.s3["s3://ods-bucket"];
        assert_eq!(o.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
        assert_eq!(o.allow_http, Some(true));
        let cases = [
            (
                "s3://dwd-bucket/dwd",
                "s3://ods-bucket/ods/events/out",
                "must not be inside source.root",
            ),
            (
                "s3://dwd-bucket/dwd",
                "s3://ods-bucket",
                "must not be inside source.root",
            ),
            (
                "allow_http = true",
                "allow_http = true\nsecret_access_key = \"x\"",
                "secret_access_key",
            ),
            (
                "[stores.\"s3://ods-bucket\"]",
                "[stores.\"s3://ods-bucket/x\"]",
                "name the bucket alone",
            ),
            (
                "[stores.\"s3://ods-bucket\"]",
                "[stores.\"gs://ods-bucket\"]",
                "for s3:// buckets",
            ),
            (
                "[stores.\"s3://ods-bucket\"]",
                "[stores.\"/data\"]",
                "bucket URL",
            ),
            (
                "\"http://127.0.0.1:9000\"",
                "\"127.0.0.1:9000\"",
                "must start with http",
            ),
            ("s3://dwd-bucket/dwd", "hdfs://nn/dwd", "unsupported scheme"),
        ];
        for (from, to, want) in cases {
            let e = Config::parse(&text.replace(from, to), Path::new("x.toml"))
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{to}: {e}");
        }
        // Distinct prefixes of one bucket do not overlap.
        let same_bucket = text.replace("s3://dwd-bucket/dwd", "s3://ods-bucket/dwd");
        assert!(Config::parse(&same_bucket, Path::new("x.toml")).is_ok());
    }

    #[test]
    fn bad_values_refused() {
        let cases = [
            (
                "visibility = \"settled\"",
                "visibility = \"sometimes\"",
                "unknown mode",
            ),
            ("version = 1", "version = 2", "config version 1"),
            (
                "visibility = \"settled\"",
                "visibility = \"settled\"\nolder_than_lookback = \"keep\"",
                "source.older_than_lookback: unknown value \"keep\"",
            ),
            (
                "name = \"ods_events\"",
                "name = \"ods-events\"",
                "not a table name",
            ),
            (
                "root = \"/data/dwd\"",
                "root = \"/data/ods/events/out\"",
                "inside source.root",
            ),
            (
                "dir = \"/var/lib/sluice\"",
                "dir = \"s3://bucket/state\"",
                "state.dir: \"s3://bucket/state\": must be a local folder",
            ),
            (
                "dir = \"rules\"",
                "dir = \"rules\"\non_error = \"ignore\"",
                "rules.on_error: unknown value \"ignore\"",
            ),
        ];
        for (from, to, want) in cases {
            let e = Config::parse(&GOOD.replace(from, to), Path::new("x.toml"))
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{to}: {e}");
        }
    }
}
