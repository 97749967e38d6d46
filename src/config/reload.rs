//! What a config re-read (SIGHUP) may change in a running daemon. Pure: it
//! compares two validated configs key by key. Keys that only steer the
//! coordinator's timers or the health check apply at once; every other
//! change (paths, formats, partitioning, the HTTP address, thread counts...)
//! needs a restart and is reported, not applied.

use super::{Config, Visibility};
use std::fmt::Debug;
use std::time::Duration;

/// One changed key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub key: &'static str,
    pub from: String,
    pub to: String,
}

/// The outcome of comparing the running config with a re-read one.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Reload {
    /// Applied by [`apply`].
    pub applied: Vec<Change>,
    /// Ignored until a restart.
    pub needs_restart: Vec<Change>,
}

fn dur(d: &Duration) -> String {
    humantime::format_duration(*d).to_string()
}

fn min_age(v: &Visibility) -> Option<Duration> {
    match v {
        Visibility::Settled { min_age } => Some(*min_age),
        Visibility::Marker { .. } | Visibility::Manifest { .. } => None,
    }
}

/// Compares `old` (running) with `new` (re-read).
pub fn diff(old: &Config, new: &Config) -> Reload {
    let mut r = Reload::default();
    let mut safe = |key, a: &Duration, b: &Duration| {
        if a != b {
            r.applied.push(Change {
                key,
                from: dur(a),
                to: dur(b),
            });
        }
    };
    safe(
        "sink.checkpoint_interval",
        &old.sink.checkpoint_interval,
        &new.sink.checkpoint_interval,
    );
    safe(
        "sink.max_file_age",
        &old.sink.max_file_age,
        &new.sink.max_file_age,
    );
    safe(
        "source.scan_interval",
        &old.source.scan_interval,
        &new.source.scan_interval,
    );
    safe("http.stall_timeout", &old.stall_timeout, &new.stall_timeout);
    let mut visibility_changed = true;
    if let (Some(a), Some(b)) = (
        min_age(&old.source.visibility),
        min_age(&new.source.visibility),
    ) {
        visibility_changed = false;
        safe("source.min_age", &a, &b);
    }
    if old.log_level != new.log_level {
        r.applied.push(Change {
            key: "log.level",
            from: old.log_level.clone(),
            to: new.log_level.clone(),
        });
    }
    let mut unsafe_key = |key, a: String, b: String| {
        if a != b {
            r.needs_restart.push(Change {
                key,
                from: a,
                to: b,
            });
        }
    };
    fn s<T: Debug>(v: &T) -> String {
        format!("{v:?}")
    }
    if visibility_changed {
        unsafe_key(
            "source.visibility",
            s(&old.source.visibility),
            s(&new.source.visibility),
        );
    }
    unsafe_key("source.name", s(&old.source.name), s(&new.source.name));
    unsafe_key("cluster", s(&old.cluster), s(&new.cluster));
    unsafe_key(
        "source.root",
        old.source.root.to_string(),
        new.source.root.to_string(),
    );
    unsafe_key(
        "source.format",
        s(&old.source.format),
        s(&new.source.format),
    );
    unsafe_key(
        "source.pattern",
        s(&old.source.pattern),
        s(&new.source.pattern),
    );
    unsafe_key(
        "source.lookback",
        dur(&old.source.lookback),
        dur(&new.source.lookback),
    );
    unsafe_key(
        "source.older_than_lookback",
        s(&old.source.older_than_lookback),
        s(&new.source.older_than_lookback),
    );
    unsafe_key(
        "source.follow_symlinks",
        s(&old.source.follow_symlinks),
        s(&new.source.follow_symlinks),
    );
    unsafe_key(
        "source.partition_columns",
        s(&old.source.partition_columns),
        s(&new.source.partition_columns),
    );
    unsafe_key(
        "source.required_columns",
        s(&old.source.required_columns),
        s(&new.source.required_columns),
    );
    unsafe_key("state.dir", s(&old.state_dir), s(&new.state_dir));
    unsafe_key(
        "sink.root",
        old.sink.root.to_string(),
        new.sink.root.to_string(),
    );
    unsafe_key("stores", s(&old.stores), s(&new.stores));
    unsafe_key(
        "source.partition_pruning",
        s(&old.source.pruning),
        s(&new.source.pruning),
    );
    unsafe_key(
        "sink.target_file_size",
        s(&old.sink.target_file_size),
        s(&new.sink.target_file_size),
    );
    unsafe_key(
        "sink.max_buffered",
        s(&old.sink.max_buffered),
        s(&new.sink.max_buffered),
    );
    unsafe_key(
        "sink.max_open_files",
        s(&old.sink.max_open_files),
        s(&new.sink.max_open_files),
    );
    unsafe_key(
        "sink.row_group_rows",
        s(&old.sink.row_group_rows),
        s(&new.sink.row_group_rows),
    );
    unsafe_key(
        "sink.zstd_level",
        s(&old.sink.zstd_level),
        s(&new.sink.zstd_level),
    );
    unsafe_key(
        "sink.statistics",
        s(&old.sink.statistics),
        s(&new.sink.statistics),
    );
    unsafe_key("sink.writers", s(&old.sink.writers), s(&new.sink.writers));
    unsafe_key("dimension", s(&old.dimensions), s(&new.dimensions));
    unsafe_key(
        "partition_commit",
        s(&old.partition_commit),
        s(&new.partition_commit),
    );
    unsafe_key("rules.dir", s(&old.rules_dir), s(&new.rules_dir));
    unsafe_key("read.readers", s(&old.read.readers), s(&new.read.readers));
    unsafe_key(
        "read.batch_rows",
        s(&old.read.batch_rows),
        s(&new.read.batch_rows),
    );
    unsafe_key(
        "read.split_size",
        s(&old.read.split_size),
        s(&new.read.split_size),
    );
    unsafe_key(
        "read.io_retry",
        s(&old.read.io_retry),
        s(&new.read.io_retry),
    );
    unsafe_key("http.listen", s(&old.http_listen), s(&new.http_listen));
    unsafe_key(
        "http.max_connections",
        s(&old.http_max_connections),
        s(&new.http_max_connections),
    );
    unsafe_key("log.format", s(&old.log_format), s(&new.log_format));
    unsafe_key(
        "log.shutdown_grace",
        dur(&old.shutdown_grace),
        dur(&new.shutdown_grace),
    );
    r
}

/// Applies the safe keys of `new` to the running `cfg` (what [`diff`] lists
/// as applied); nothing else changes.
pub fn apply(cfg: &mut Config, new: &Config) {
    cfg.log_level = new.log_level.clone();
    cfg.sink.checkpoint_interval = new.sink.checkpoint_interval;
    cfg.sink.max_file_age = new.sink.max_file_age;
    cfg.source.scan_interval = new.source.scan_interval;
    cfg.stall_timeout = new.stall_timeout;
    if let (Visibility::Settled { min_age }, Some(m)) =
        (&mut cfg.source.visibility, min_age(&new.source.visibility))
    {
        *min_age = m;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const BASE: &str = r#"
version = 1
[source]
name = "ods_events"
root = "/data/ods"
min_age = "30s"
[state]
dir = "/var/lib/sluice"
[sink]
root = "/data/dwd"
checkpoint_interval = "30s"
[rules]
dir = "rules"
"#;

    fn cfg(text: &str) -> Config {
        Config::parse(text, Path::new("/etc/sluice/sluice.toml")).unwrap()
    }

    #[test]
    fn safe_keys_apply_and_the_rest_needs_a_restart() {
        let old = cfg(BASE);
        let new = cfg(&BASE
            .replace(
                "checkpoint_interval = \"30s\"",
                "checkpoint_interval = \"5s\"",
            )
            .replace("min_age = \"30s\"", "min_age = \"1m\"")
            .replace("root = \"/data/ods\"", "root = \"/data/ods2\"")
            .replace("[rules]", "[read]\nreaders = 8\n[rules]"));
        let r = diff(&old, &new);
        let keys = |v: &[Change]| v.iter().map(|c| c.key).collect::<Vec<_>>();
        assert_eq!(
            keys(&r.applied),
            ["sink.checkpoint_interval", "source.min_age"]
        );
        assert_eq!(r.applied[0].from, "30s");
        assert_eq!(r.applied[0].to, "5s");
        assert_eq!(keys(&r.needs_restart), ["source.root", "read.readers"]);

        let mut running = old.clone();
        apply(&mut running, &new);
        assert_eq!(running.sink.checkpoint_interval, Duration::from_secs(5));
        assert_eq!(
            running.source.visibility,
            Visibility::Settled {
                min_age: Duration::from_secs(60)
            }
        );
        assert_eq!(running.source.root, old.source.root);
        assert_eq!(running.read.readers, old.read.readers);
        assert_eq!(diff(&old, &old), Reload::default());
    }

    #[test]
    fn a_visibility_mode_change_needs_a_restart() {
        let old = cfg(BASE);
        let new = cfg(&BASE.replace("min_age = \"30s\"", "visibility = \"marker\""));
        let r = diff(&old, &new);
        assert!(r.applied.is_empty());
        assert_eq!(r.needs_restart[0].key, "source.visibility");
    }
}
