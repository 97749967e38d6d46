//! Configuration: owns the TOML file format (raw serde structs with unknown
//! keys rejected), its validation, and the typed [`Config`] the rest of the
//! daemon uses. Loading does the only I/O here (reading the file, then
//! resolving the configured folders' symlinks in [`paths::check`]); the
//! checks in [`Config::from_raw`] are pure.
//!
//! One file a section: `source.rs` `[source]`, `sink.rs` `[sink]`, `run.rs`
//! `[read]`, `[http]`, `[log]`, `[rules]`; [`dimension`], [`stores`] and
//! [`partition_commit`] theirs. This file holds the file as a whole, the
//! checks across sections and the assembled [`Config`]; [`units`] the human
//! units, [`reload`] what SIGHUP may change.
//!
//! Relative paths in a config file are resolved against the file's folder,
//! so `rules.dir = "rules"` means the `rules` folder next to `sluice.toml`.

pub mod cluster;
pub mod dimension;
pub mod partition_commit;
pub mod paths;
pub mod reload;
mod run;
mod sink;
mod source;
pub mod stores;
pub mod units;

use crate::store::{Location, StoreSettings};
pub use cluster::Cluster;
pub use dimension::{DimColumn, DimFormat, DimLayout, DimensionSpec, OnDuplicate};
pub use partition_commit::{
    HeaderValueSource, PartitionCommitConfig, TimeColumns, TimeFormat, TimeToken, WebhookConfig,
};
pub use run::{LogFormat, OnError, ReadConfig};
use serde::Deserialize;
pub use sink::{SinkConfig, Statistics};
pub use source::{OlderThanLookback, SourceConfig, SourceFormat, Visibility};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

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
    source: source::RawSource,
    state: RawState,
    sink: sink::RawSink,
    rules: run::RawRules,
    #[serde(default)]
    read: run::RawRead,
    #[serde(default)]
    http: run::RawHttp,
    #[serde(default)]
    log: run::RawLog,
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
struct RawState {
    dir: String,
}

// ---------------------------------------------------------------- typed config

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
        let invalid = |key: &str, message: String| invalid(path, key, message);
        if raw.version != CONFIG_VERSION {
            return Err(invalid(
                "version",
                format!(
                    "this sluice reads config version {CONFIG_VERSION}, the file says {}",
                    raw.version
                ),
            ));
        }
        let source = source::validate(raw.source, path, base)?;
        let sink = sink::validate(raw.sink, path, base)?;
        let read = run::read(&raw.read, path)?;
        let http_listen = run::http(&raw.http, path)?;
        let log_format = run::log(&raw.log, path)?;
        let rules_on_error = run::on_error(&raw.rules, path)?;
        let state_dir = resolve(base, &raw.state.dir).map_err(|m| invalid("state.dir", m))?;
        let rules_dir = resolve(base, &raw.rules.dir).map_err(|m| invalid("rules.dir", m))?;
        if source.root.contains(&sink.root) || sink.root.contains(&source.root) {
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
        let cluster = cluster::validate(raw.cluster, path, sink.checkpoint_interval, env)?;
        Ok(Config {
            path: path.to_path_buf(),
            cluster,
            dimensions,
            partition_commit,
            stores,
            source,
            state_dir,
            sink,
            rules_dir,
            rules_on_error,
            read,
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

/// A validation error: `key` in the config at `path`.
fn invalid(path: &Path, key: &str, message: String) -> ConfigError {
    ConfigError::Invalid {
        path: path.to_path_buf(),
        key: key.to_string(),
        message,
    }
}

#[cfg(test)]
mod tests;
