//! `[source]`: where the ODS files are, which of them count as visible
//! (settled, marker, manifest), how often to list and how far back to look.
//! Owns the section's raw form, its defaults and its pure validation into
//! [`SourceConfig`]; touches nothing else.

use super::units::HumanDuration;
use super::{ConfigError, is_identifier};
use crate::store::Location;
use serde::Deserialize;
use std::path::Path;
use std::time::Duration;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSource {
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

/// Validates `[source]`; `path` names the config in errors, `base` anchors
/// a relative root.
pub(super) fn validate(
    s: RawSource,
    path: &Path,
    base: &Path,
) -> Result<SourceConfig, ConfigError> {
    let invalid = |key: &str, message: String| super::invalid(path, key, message);
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
                format!("unknown mode {other:?}; expected \"settled\", \"marker\" or \"manifest\""),
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
    let root = Location::parse(base, &s.root).map_err(|m| invalid("source.root", m))?;
    Ok(SourceConfig {
        name: s.name,
        root,
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
    })
}
