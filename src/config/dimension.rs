//! The `[[dimension]]` sections: raw serde form and the validated
//! [`DimensionSpec`] the enrichment stage runs from. Only shape is checked
//! here; whether the columns exist is known when a snapshot is loaded.

use super::units::HumanDuration;
use super::{ConfigError, is_identifier};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDimension {
    name: String,
    /// A file, or a directory of files (or of `dt=YYYY-MM-DD/` folders).
    path: String,
    /// `auto` (by extension), `parquet` or `csv`.
    #[serde(default = "default_format")]
    format: String,
    /// `plain`: every data file under `path`; `dated`: the newest complete
    /// `dt=YYYY-MM-DD/` folder under `path`.
    #[serde(default = "default_layout")]
    layout: String,
    /// dated: the file that marks a folder complete; `""` takes any folder
    /// that holds a data file.
    #[serde(default = "default_marker")]
    marker: String,
    key: String,
    source_key: String,
    columns: Vec<String>,
    /// Prepended to every added column's name (after `rename`).
    #[serde(default)]
    prefix: String,
    /// Dimension column -> name in the enriched rows.
    #[serde(default)]
    rename: BTreeMap<String, String>,
    /// Enriched column -> value for rows whose key is not in the dimension.
    #[serde(default)]
    default: BTreeMap<String, String>,
    /// `error` (a duplicate key fails the load) or `last_wins`.
    #[serde(default = "default_on_duplicate")]
    on_duplicate: String,
    #[serde(default = "default_reload_interval")]
    reload_interval: HumanDuration,
    /// How often the files are checked for changes between reloads.
    #[serde(default = "default_poll_interval")]
    poll_interval: HumanDuration,
    #[serde(default)]
    min_rows: u64,
    /// A load with fewer rows than this fraction of the last good snapshot
    /// is refused (0 disables the check).
    #[serde(default)]
    min_ratio: f64,
    /// Keep a copy of the last good snapshot in the state directory, so a
    /// restart during an outage of the dimension still enriches.
    #[serde(default = "default_true")]
    persist: bool,
}

fn default_format() -> String {
    "auto".into()
}
fn default_layout() -> String {
    "plain".into()
}
fn default_marker() -> String {
    "_SUCCESS".into()
}
fn default_on_duplicate() -> String {
    "error".into()
}
fn default_reload_interval() -> HumanDuration {
    HumanDuration(Duration::from_secs(300))
}
fn default_poll_interval() -> HumanDuration {
    HumanDuration(Duration::from_secs(10))
}
fn default_true() -> bool {
    true
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DimFormat {
    Auto,
    Parquet,
    Csv,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DimLayout {
    Plain,
    /// `marker`: `None` takes any folder with a data file.
    Dated {
        marker: Option<String>,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnDuplicate {
    Error,
    LastWins,
}

/// One added column: its name in the dimension and in the enriched rows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DimColumn {
    pub from: String,
    pub to: String,
    pub default: Option<String>,
}

/// A validated `[[dimension]]`.
#[derive(Clone, Debug)]
pub struct DimensionSpec {
    pub name: String,
    /// A file, a folder, or a prefix in an object store.
    pub path: crate::store::Location,
    pub format: DimFormat,
    pub layout: DimLayout,
    pub key: String,
    pub source_key: String,
    pub columns: Vec<DimColumn>,
    pub on_duplicate: OnDuplicate,
    pub reload_interval: Duration,
    pub poll_interval: Duration,
    pub min_rows: u64,
    pub min_ratio: f64,
    pub persist: bool,
    /// How to open `path` when it is an object store (`Config::stores`).
    pub stores: crate::store::StoreSettings,
}

pub(super) fn validate(
    raw: Vec<RawDimension>,
    path: &Path,
    base: &Path,
) -> Result<Vec<DimensionSpec>, ConfigError> {
    let mut out: Vec<DimensionSpec> = Vec::new();
    for (i, d) in raw.into_iter().enumerate() {
        let invalid = |key: &str, message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            key: format!("dimension[{i}].{key}"),
            message,
        };
        if !is_identifier(&d.name) {
            return Err(invalid(
                "name",
                format!("{:?} is not a name (letters, digits, _)", d.name),
            ));
        }
        if out.iter().any(|o| o.name == d.name) {
            return Err(invalid(
                "name",
                format!("{:?} is used by two dimensions", d.name),
            ));
        }
        let format = match d.format.as_str() {
            "auto" => DimFormat::Auto,
            "parquet" => DimFormat::Parquet,
            "csv" => DimFormat::Csv,
            other => {
                return Err(invalid(
                    "format",
                    format!("unknown format {other:?}; expected \"auto\", \"parquet\" or \"csv\""),
                ));
            }
        };
        let layout = match d.layout.as_str() {
            "plain" => DimLayout::Plain,
            "dated" => {
                if d.marker.contains('/') {
                    return Err(invalid(
                        "marker",
                        "must be a plain file name such as \"_SUCCESS\", or \"\"".into(),
                    ));
                }
                DimLayout::Dated {
                    marker: Some(d.marker).filter(|m| !m.is_empty()),
                }
            }
            other => {
                return Err(invalid(
                    "layout",
                    format!("unknown layout {other:?}; expected \"plain\" or \"dated\""),
                ));
            }
        };
        let on_duplicate = match d.on_duplicate.as_str() {
            "error" => OnDuplicate::Error,
            "last_wins" => OnDuplicate::LastWins,
            other => {
                return Err(invalid(
                    "on_duplicate",
                    format!("unknown policy {other:?}; expected \"error\" or \"last_wins\""),
                ));
            }
        };
        if d.key.is_empty() || d.source_key.is_empty() {
            return Err(invalid(
                "key",
                "`key` and `source_key` name the joined columns and must not be empty".into(),
            ));
        }
        if d.columns.is_empty() {
            return Err(invalid(
                "columns",
                "list the dimension columns to add, e.g. [\"dept\", \"owner\"]".into(),
            ));
        }
        if let Some(k) = d.rename.keys().find(|k| !d.columns.contains(k)) {
            return Err(invalid("rename", format!("{k:?} is not in `columns`")));
        }
        let mut columns: Vec<DimColumn> = Vec::new();
        for c in &d.columns {
            let to = format!("{}{}", d.prefix, d.rename.get(c).unwrap_or(c));
            if !is_identifier(&to) {
                return Err(invalid(
                    "columns",
                    format!("{to:?} is not a column name rules can use"),
                ));
            }
            if columns.iter().any(|o| o.to == to) {
                return Err(invalid("columns", format!("{to:?} is added twice")));
            }
            columns.push(DimColumn {
                from: c.clone(),
                to: to.clone(),
                default: d.default.get(&to).cloned(),
            });
        }
        if let Some(k) = d
            .default
            .keys()
            .find(|k| !columns.iter().any(|c| &c.to == *k))
        {
            return Err(invalid(
                "default",
                format!("{k:?} is not an added column (use the name after rename/prefix)"),
            ));
        }
        if d.poll_interval.0.is_zero() || d.reload_interval.0.is_zero() {
            return Err(invalid(
                "reload_interval",
                "`reload_interval` and `poll_interval` must be greater than 0".into(),
            ));
        }
        if !(0.0..=1.0).contains(&d.min_ratio) {
            return Err(invalid(
                "min_ratio",
                "must be between 0 and 1 (e.g. 0.5: refuse a load with less than half the rows of the last one)".into(),
            ));
        }
        let dim_path =
            crate::store::Location::parse(base, &d.path).map_err(|m| invalid("path", m))?;
        out.push(DimensionSpec {
            name: d.name,
            path: dim_path,
            format,
            layout,
            key: d.key,
            source_key: d.source_key,
            columns,
            on_duplicate,
            reload_interval: d.reload_interval.0,
            poll_interval: d.poll_interval.0.min(d.reload_interval.0),
            min_rows: d.min_rows,
            min_ratio: d.min_ratio,
            persist: d.persist,
            stores: Default::default(),
        });
    }
    Ok(out)
}
