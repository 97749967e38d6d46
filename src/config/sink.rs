//! `[sink]`: where the Parquet output goes and how it is written (file
//! size and age, buffered bytes, row groups, compression, writer threads).
//! Owns the section's raw form, its defaults and its pure validation into
//! [`SinkConfig`]; touches nothing else.

use super::ConfigError;
use super::units::{ByteSize, HumanDuration};
use crate::store::Location;
use serde::Deserialize;
use std::path::Path;
use std::time::Duration;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSink {
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
    /// Partitions written at once; past it, the least recently written
    /// cold files close (a backfill over many partitions keeps memory flat).
    #[serde(default = "default_max_open_files")]
    max_open_files: usize,
    /// Rows per Parquet row group.
    #[serde(default = "default_row_group_rows")]
    row_group_rows: usize,
    #[serde(default = "default_zstd_level")]
    zstd_level: i32,
    /// Which columns get min/max statistics: `auto` (all but long text)
    /// or `all`.
    #[serde(default)]
    statistics: Statistics,
    /// Writer threads (each encodes a disjoint share of the output files).
    #[serde(default = "default_writers")]
    writers: usize,
}

/// `sink.statistics`.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Statistics {
    /// Every column but long text (see `sink::encoding`).
    #[default]
    Auto,
    /// Every column.
    All,
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
fn default_max_open_files() -> usize {
    // P100 (97 tables) holds five hours' files within about 1 GiB; an idle
    // open file keeps its row groups' metadata and page indexes in memory.
    512
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

#[derive(Clone, Debug)]
pub struct SinkConfig {
    pub root: Location,
    pub checkpoint_interval: Duration,
    /// How long an output file may stay open (see `sink::writers`).
    pub max_file_age: Duration,
    pub target_file_size: u64,
    pub max_buffered: u64,
    pub max_open_files: usize,
    pub row_group_rows: usize,
    pub zstd_level: i32,
    pub statistics: Statistics,
    pub writers: usize,
}

/// Validates `[sink]`; `path` names the config in errors, `base` anchors
/// a relative root.
pub(super) fn validate(sink: RawSink, path: &Path, base: &Path) -> Result<SinkConfig, ConfigError> {
    let invalid = |key: &str, message: String| super::invalid(path, key, message);
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
    if sink.max_open_files < sink.writers {
        return Err(invalid(
            "sink.max_open_files",
            format!(
                "must be at least sink.writers ({}): each writer keeps a share",
                sink.writers
            ),
        ));
    }
    let root = Location::parse(base, &sink.root).map_err(|m| invalid("sink.root", m))?;
    Ok(SinkConfig {
        root,
        checkpoint_interval: sink.checkpoint_interval.0,
        max_file_age: sink.max_file_age.0,
        target_file_size: sink.target_file_size.0,
        max_buffered: sink.max_buffered.0,
        max_open_files: sink.max_open_files,
        row_group_rows: sink.row_group_rows,
        zstd_level: sink.zstd_level,
        statistics: sink.statistics,
        writers: sink.writers,
    })
}
