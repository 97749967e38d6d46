//! The `[partition_commit]` section: how output partition values map to
//! event time, the commit delay, when an idle source's newest partition
//! closes (`idle_close`), the commit policies (`_SUCCESS`, webhook,
//! command) and how a failed commit is retried (`retry_backoff`,
//! `retry_max_backoff`). Raw serde structs here, checked into
//! [`PartitionCommitConfig`] by [`validate`] (pure: no I/O).

use super::ConfigError;
use super::units::HumanDuration;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPartitionCommit {
    /// Partition column -> time format (`%Y-%m-%d` for a day, `%H` for an hour).
    #[serde(default = "default_time_columns")]
    time_columns: BTreeMap<String, String>,
    /// Offset of the partition values' time zone from UTC, `+08:00`.
    #[serde(default = "default_utc_offset")]
    utc_offset: String,
    /// Slack after a partition's end before it is committed.
    #[serde(default = "default_delay")]
    delay: HumanDuration,
    /// `settled` sources: how long after its end the newest source
    /// partition, with no file open, counts as closed; `"off"`: never.
    #[serde(default = "default_idle_close")]
    idle_close: String,
    /// Write an empty `_SUCCESS` into a committed partition's directory.
    #[serde(default = "default_true")]
    success_file: bool,
    webhook: Option<RawWebhook>,
    /// Program and arguments, run without a shell; `{table}`, `{partition}`, `{path}` substituted.
    command: Option<Vec<String>>,
    #[serde(default = "default_command_timeout")]
    command_timeout: HumanDuration,
    /// Wait after a partition's first failed commit (webhook, command or
    /// `_SUCCESS`); doubled after each further failure.
    #[serde(default = "default_retry_backoff")]
    retry_backoff: HumanDuration,
    /// The longest wait between two attempts: a failing partition is retried
    /// at least this often, until it succeeds.
    #[serde(default = "default_retry_max_backoff")]
    retry_max_backoff: HumanDuration,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebhook {
    /// `http://` or `https://` (system CA roots, plus `ca_file`).
    url: String,
    #[serde(default = "default_webhook_timeout")]
    timeout: HumanDuration,
    /// A PEM file of CA certificates trusted besides the system's roots
    /// (relative to the config file's folder).
    ca_file: Option<PathBuf>,
    /// Extra request headers: a literal value, or `"env:NAME"` for the
    /// value of environment variable `NAME` (read at start, never logged).
    #[serde(default)]
    headers: BTreeMap<String, String>,
    /// Deprecated and ignored: a failed webhook is retried until it
    /// succeeds (`retry_backoff`, `retry_max_backoff`). Accepted so that
    /// older configs still load; a warning says so at start.
    retries: Option<u32>,
    /// Deprecated and ignored, like `retries`.
    backoff: Option<HumanDuration>,
}

fn default_time_columns() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("dt".to_string(), "%Y-%m-%d".to_string()),
        ("hour".to_string(), "%H".to_string()),
    ])
}
fn default_utc_offset() -> String {
    "+00:00".into()
}
fn default_delay() -> HumanDuration {
    HumanDuration(Duration::from_secs(600))
}
/// One hour: in steady operation a newer source partition appears long
/// before, so this only closes the last partition of a source that went
/// idle; a producer that is more than an hour late costs a `late` re-commit.
fn default_idle_close() -> String {
    "1h".into()
}
fn default_true() -> bool {
    true
}
fn default_command_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(60))
}
fn default_webhook_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(10))
}
fn default_retry_backoff() -> HumanDuration {
    HumanDuration(Duration::from_secs(1))
}
/// Five minutes: a receiver that comes back is notified within that.
fn default_retry_max_backoff() -> HumanDuration {
    HumanDuration(Duration::from_secs(300))
}

/// One piece of a time format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeToken {
    /// `%Y`: four digits.
    Year,
    /// `%m`: two digits.
    Month,
    /// `%d`: two digits.
    Day,
    /// `%H`: two digits.
    Hour,
    /// Any other character, matched literally.
    Lit(char),
}

/// A parsed time format such as `%Y-%m-%d`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimeFormat {
    pub text: String,
    pub tokens: Vec<TimeToken>,
}

impl TimeFormat {
    /// Parses `%Y`, `%m`, `%d`, `%H`, `%%` and literal characters.
    pub fn parse(text: &str) -> Result<TimeFormat, String> {
        let mut tokens = Vec::new();
        let mut chars = text.chars();
        while let Some(c) = chars.next() {
            if c != '%' {
                tokens.push(TimeToken::Lit(c));
                continue;
            }
            tokens.push(match chars.next() {
                Some('Y') => TimeToken::Year,
                Some('m') => TimeToken::Month,
                Some('d') => TimeToken::Day,
                Some('H') => TimeToken::Hour,
                Some('%') => TimeToken::Lit('%'),
                Some(o) => {
                    return Err(format!(
                        "{text:?}: %{o} is not supported; use %Y, %m, %d, %H"
                    ));
                }
                None => return Err(format!("{text:?} ends with a lone %")),
            });
        }
        Ok(TimeFormat {
            text: text.to_string(),
            tokens,
        })
    }

    fn has(&self, t: TimeToken) -> bool {
        self.tokens.contains(&t)
    }
}

/// Which partition columns carry event time: a day column (required) and
/// an optional hour column.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimeColumns {
    pub day: (String, TimeFormat),
    pub hour: Option<(String, TimeFormat)>,
}

/// Where a webhook POSTs, and how.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookConfig {
    /// `http://` or `https://`, checked by [`validate`].
    pub url: String,
    pub timeout: Duration,
    /// CA certificates (PEM) trusted besides the system's roots.
    pub ca_file: Option<PathBuf>,
    /// Extra request headers, in the file's order of names.
    pub headers: Vec<(String, HeaderValueSource)>,
    /// The deprecated keys the file set (`retries`, `backoff`), warned
    /// about at start.
    pub ignored_keys: Vec<&'static str>,
}

/// Where a header's value comes from. Its `Debug` never shows a value.
#[derive(Clone, PartialEq, Eq)]
pub enum HeaderValueSource {
    /// Written in the config file.
    Literal(String),
    /// `"env:NAME"`: the environment variable `NAME`, read at start.
    Env(String),
}

impl std::fmt::Debug for HeaderValueSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HeaderValueSource::Literal(_) => f.write_str("Literal(..)"),
            HeaderValueSource::Env(name) => write!(f, "Env({name})"),
        }
    }
}

impl WebhookConfig {
    /// The URL for logs and `sluice status`: without its query, which may
    /// carry a token.
    pub fn redacted(&self) -> String {
        match self.url.split_once('?') {
            Some((u, _)) => format!("{u}?..."),
            None => self.url.clone(),
        }
    }
}

/// The validated `[partition_commit]` section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionCommitConfig {
    pub time_columns: TimeColumns,
    /// Seconds east of UTC of the partition values' time zone.
    pub utc_offset_s: i64,
    pub delay: Duration,
    /// `settled` sources: an idle newest source partition closes this long
    /// after its end (`None`: `"off"`, only a newer partition closes it).
    pub idle_close: Option<Duration>,
    pub success_file: bool,
    pub webhook: Option<WebhookConfig>,
    pub command: Option<Vec<String>>,
    pub command_timeout: Duration,
    /// First wait after a failed commit; doubles up to `retry_max_backoff`.
    pub retry_backoff: Duration,
    pub retry_max_backoff: Duration,
}

pub(super) fn validate(
    raw: RawPartitionCommit,
    path: &Path,
    base: &Path,
) -> Result<PartitionCommitConfig, ConfigError> {
    let invalid = |key: &str, message: String| ConfigError::Invalid {
        path: path.to_path_buf(),
        key: format!("partition_commit.{key}"),
        message,
    };
    let mut day = None;
    let mut hour = None;
    for (col, text) in &raw.time_columns {
        if !super::is_identifier(col) {
            return Err(invalid(
                "time_columns",
                format!("{col:?} is not a column name"),
            ));
        }
        let f = TimeFormat::parse(text).map_err(|m| invalid("time_columns", m))?;
        let is_day = f.has(TimeToken::Year) && f.has(TimeToken::Month) && f.has(TimeToken::Day);
        let is_hour = f.has(TimeToken::Hour)
            && !f.has(TimeToken::Year)
            && !f.has(TimeToken::Month)
            && !f.has(TimeToken::Day);
        let slot = if is_day && !f.has(TimeToken::Hour) {
            &mut day
        } else if is_hour {
            &mut hour
        } else {
            return Err(invalid(
                "time_columns",
                format!(
                    "{col} = {text:?}: a format must be a day (%Y, %m and %d, e.g. \"%Y-%m-%d\") or an hour (%H)"
                ),
            ));
        };
        if slot.is_some() {
            return Err(invalid(
                "time_columns",
                format!("{col}: only one day column and one hour column are allowed"),
            ));
        }
        *slot = Some((col.clone(), f));
    }
    let Some(day) = day else {
        return Err(invalid(
            "time_columns",
            "needs a day column, e.g. { dt = \"%Y-%m-%d\", hour = \"%H\" }".into(),
        ));
    };
    let utc_offset_s = parse_offset(&raw.utc_offset).map_err(|m| invalid("utc_offset", m))?;
    let idle_close = parse_idle_close(&raw.idle_close).map_err(|m| invalid("idle_close", m))?;
    let webhook = match raw.webhook {
        None => None,
        Some(w) => {
            check_url(&w.url).map_err(|m| invalid("webhook.url", m))?;
            let headers = w
                .headers
                .into_iter()
                .map(|(name, value)| {
                    let source = parse_header(&name, &value)
                        .map_err(|m| invalid(&format!("webhook.headers.{name}"), m))?;
                    Ok((name, source))
                })
                .collect::<Result<Vec<_>, ConfigError>>()?;
            if w.timeout.0.is_zero() {
                return Err(invalid("webhook.timeout", "must be greater than 0".into()));
            }
            let mut ignored_keys = Vec::new();
            if w.retries.is_some() {
                ignored_keys.push("retries");
            }
            if w.backoff.is_some() {
                ignored_keys.push("backoff");
            }
            Some(WebhookConfig {
                url: w.url,
                timeout: w.timeout.0,
                // Relative to the config file's folder, like every path.
                ca_file: w.ca_file.map(|f| base.join(f)),
                headers,
                ignored_keys,
            })
        }
    };
    if let Some(c) = &raw.command
        && c.first().is_none_or(|p| p.is_empty())
    {
        return Err(invalid(
            "command",
            "must start with a program, e.g. [\"/usr/local/bin/on-commit\", \"{table}\", \"{partition}\"]"
                .into(),
        ));
    }
    if raw.command_timeout.0.is_zero() {
        return Err(invalid("command_timeout", "must be greater than 0".into()));
    }
    if raw.retry_backoff.0.is_zero() {
        return Err(invalid("retry_backoff", "must be greater than 0".into()));
    }
    if raw.retry_max_backoff.0 < raw.retry_backoff.0 {
        return Err(invalid(
            "retry_max_backoff",
            "must be at least retry_backoff".into(),
        ));
    }
    Ok(PartitionCommitConfig {
        time_columns: TimeColumns { day, hour },
        utc_offset_s,
        delay: raw.delay.0,
        idle_close,
        success_file: raw.success_file,
        webhook,
        command: raw.command,
        command_timeout: raw.command_timeout.0,
        retry_backoff: raw.retry_backoff.0,
        retry_max_backoff: raw.retry_max_backoff.0,
    })
}

/// `"off"` -> `None`; a duration (`"1h"`, `"30m"`, `"0s"`) -> `Some`.
fn parse_idle_close(s: &str) -> Result<Option<Duration>, String> {
    if s.trim() == "off" {
        return Ok(None);
    }
    let d = super::units::parse_duration(s).map_err(|e| {
        format!(
            "{e}; or \"off\" to close the newest source partition only when a newer one appears"
        )
    })?;
    // Far beyond any real producer delay, and keeps `end + idle_close` in range.
    if d > MAX_IDLE_CLOSE {
        return Err(format!(
            "{s:?} is longer than {}; use \"off\" to never close the newest source partition by idleness",
            humantime::format_duration(MAX_IDLE_CLOSE)
        ));
    }
    Ok(Some(d))
}

/// The longest `idle_close` accepted.
const MAX_IDLE_CLOSE: Duration = Duration::from_secs(366 * 24 * 3600);

/// `+08:00`, `-05:30`, `Z`, `+00:00` -> seconds east of UTC.
fn parse_offset(s: &str) -> Result<i64, String> {
    if s == "Z" {
        return Ok(0);
    }
    let bad = || format!("{s:?} is not an offset such as \"+08:00\" or \"-05:30\"");
    let (sign, rest) = match s.as_bytes().first() {
        Some(b'+') => (1, &s[1..]),
        Some(b'-') => (-1, &s[1..]),
        _ => return Err(bad()),
    };
    let (h, m) = rest.split_once(':').ok_or_else(bad)?;
    if h.len() != 2 || m.len() != 2 {
        return Err(bad());
    }
    let h: i64 = h.parse().map_err(|_| bad())?;
    let m: i64 = m.parse().map_err(|_| bad())?;
    if h > 14 || m > 59 {
        return Err(bad());
    }
    Ok(sign * (h * 3600 + m * 60))
}

/// An `http://` or `https://` URL with a host and no credentials.
fn check_url(url: &str) -> Result<(), String> {
    let u = reqwest::Url::parse(url)
        .map_err(|e| format!("{url:?}: {e}; expected e.g. \"https://scheduler.example/hook\""))?;
    if !matches!(u.scheme(), "http" | "https") {
        return Err(format!(
            "{url:?}: expected an http:// or https:// URL, e.g. \"https://scheduler.example/hook\""
        ));
    }
    if u.host_str().is_none_or(str::is_empty) || !u.username().is_empty() || u.password().is_some()
    {
        return Err(format!(
            "{url:?}: expected http(s)://host[:port]/path (no credentials in the URL; use headers)"
        ));
    }
    Ok(())
}

/// A header name and its value: `"env:NAME"` or a literal.
fn parse_header(name: &str, value: &str) -> Result<HeaderValueSource, String> {
    if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
        return Err(format!("{name:?} is not an HTTP header name"));
    }
    if let Some(var) = value.strip_prefix("env:") {
        let ok = !var.is_empty() && !var.contains('=') && !var.contains('\0');
        return if ok {
            Ok(HeaderValueSource::Env(var.to_string()))
        } else {
            Err("\"env:\" must be followed by an environment variable name, e.g. \"env:SCHED_TOKEN\"".into())
        };
    }
    if reqwest::header::HeaderValue::from_str(value).is_err() {
        return Err(
            "the value has characters a header cannot carry (control characters, newlines)".into(),
        );
    }
    Ok(HeaderValueSource::Literal(value.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        for ok in [
            "http://127.0.0.1:8080/hook?x=1",
            "http://example.com",
            "http://[::1]:9000/h",
            "https://x/h",
        ] {
            check_url(ok).unwrap();
        }
        assert!(check_url("ftp://x/h").unwrap_err().contains("http://"));
        assert!(check_url("http://h:port/").is_err());
        assert!(
            check_url("https://u:p@h/")
                .unwrap_err()
                .contains("credentials")
        );
        assert!(check_url("hook").is_err());
    }

    #[test]
    fn headers() {
        assert_eq!(
            parse_header("Authorization", "env:SCHED_TOKEN").unwrap(),
            HeaderValueSource::Env("SCHED_TOKEN".into())
        );
        assert_eq!(
            parse_header("X-Source", "sluice").unwrap(),
            HeaderValueSource::Literal("sluice".into())
        );
        assert!(
            parse_header("Bad Name", "x")
                .unwrap_err()
                .contains("header name")
        );
        assert!(
            parse_header("A", "env:")
                .unwrap_err()
                .contains("env:SCHED_TOKEN")
        );
        assert!(parse_header("A", "a\nb").is_err());
        // A value never shows in a debug print.
        let d = format!("{:?}", HeaderValueSource::Literal("s3cret".into()));
        assert!(!d.contains("s3cret"), "{d}");
    }

    #[test]
    fn idle_close_values() {
        assert_eq!(parse_idle_close("off").unwrap(), None);
        assert_eq!(
            parse_idle_close("1h").unwrap(),
            Some(Duration::from_secs(3600))
        );
        assert_eq!(parse_idle_close("0s").unwrap(), Some(Duration::ZERO));
        let e = parse_idle_close("soon").unwrap_err();
        assert!(e.contains("\"soon\"") && e.contains("\"off\""), "{e}");
        let e = parse_idle_close("2years").unwrap_err();
        assert!(e.contains("longer than") && e.contains("\"off\""), "{e}");
        assert_eq!(
            parse_idle_close(&default_idle_close()).unwrap(),
            Some(Duration::from_secs(3600))
        );
    }

    #[test]
    fn offsets() {
        assert_eq!(parse_offset("+08:00").unwrap(), 8 * 3600);
        assert_eq!(parse_offset("-05:30").unwrap(), -(5 * 3600 + 1800));
        assert_eq!(parse_offset("Z").unwrap(), 0);
        assert!(parse_offset("8").is_err());
        assert!(parse_offset("+8:00").is_err());
    }

    #[test]
    fn formats() {
        let f = TimeFormat::parse("%Y-%m-%d").unwrap();
        assert_eq!(f.tokens.len(), 5);
        assert!(TimeFormat::parse("%j").unwrap_err().contains("%j"));
        assert!(TimeFormat::parse("%").is_err());
    }
}
