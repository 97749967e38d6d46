//! `[cluster]`: owns the format and validation of the replica settings
//! (how many replicas share the source and the sink, and which one this
//! process is). The replica index may come from the environment, which the
//! caller passes in as a lookup function, so validation stays pure.
//!
//! ```toml
//! [cluster]
//! replicas = 3                 # N, the same in every replica's config
//! replica = "env:SLUICE_REPLICA"   # the default; or 0, 1, ...; or "hostname"
//! stall_after = "90s"          # a replica with no progress this long is reported (default 3 x checkpoint_interval)
//! ```

use super::ConfigError;
use super::units::HumanDuration;
use serde::Deserialize;
use std::path::Path;
use std::time::Duration;

/// The environment variable `replica` is read from by default.
pub const DEFAULT_REPLICA_ENV: &str = "SLUICE_REPLICA";

/// Replicas beyond this are refused (file names carry 3 digits).
pub const MAX_REPLICAS: u32 = 1000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCluster {
    replicas: u32,
    /// An index, `"env:NAME"` or `"hostname"`; absent: `env:SLUICE_REPLICA`.
    replica: Option<RawReplica>,
    stall_after: Option<HumanDuration>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawReplica {
    Index(i64),
    Text(String),
}

/// This process's place in the cluster. Without `[cluster]`: replica 0 of 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cluster {
    /// N: how many replicas share the source (each owns a shard of its files).
    pub replicas: u32,
    /// i, 0-based: the shard this process owns.
    pub replica: u32,
    /// A replica whose published progress is older than this is reported
    /// as down or stalled.
    pub stall_after: Duration,
}

impl Cluster {
    /// One replica: no sharding, no published progress.
    pub fn single() -> Cluster {
        Cluster {
            replicas: 1,
            replica: 0,
            stall_after: Duration::from_secs(90),
        }
    }

    /// More than one replica: shards, replica ids in names, published progress.
    pub fn is_sharded(&self) -> bool {
        self.replicas > 1
    }
}

/// Validates `[cluster]`. `env` looks up an environment variable;
/// `checkpoint_interval` gives the default `stall_after`.
pub(super) fn validate(
    raw: Option<RawCluster>,
    path: &Path,
    checkpoint_interval: Duration,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Cluster, ConfigError> {
    let Some(raw) = raw else {
        return Ok(Cluster::single());
    };
    let invalid = |key: &str, message: String| ConfigError::Invalid {
        path: path.to_path_buf(),
        key: key.to_string(),
        message,
    };
    if raw.replicas == 0 || raw.replicas > MAX_REPLICAS {
        return Err(invalid(
            "cluster.replicas",
            format!("must be between 1 and {MAX_REPLICAS}"),
        ));
    }
    let index = match raw.replica {
        Some(RawReplica::Index(i)) => i,
        Some(RawReplica::Text(t)) if t == "hostname" => {
            let host = env("HOSTNAME").unwrap_or_default();
            parse_ordinal(&host).ok_or_else(|| {
                invalid(
                    "cluster.replica",
                    format!(
                        "\"hostname\": HOSTNAME={host:?} does not end in -<ordinal> (a StatefulSet pod is named <name>-<i>)"
                    ),
                )
            })?
        }
        Some(RawReplica::Text(t)) => {
            let Some(var) = t.strip_prefix("env:").filter(|v| !v.is_empty()) else {
                return Err(invalid(
                    "cluster.replica",
                    format!("{t:?}: expected an index, \"env:NAME\" or \"hostname\""),
                ));
            };
            from_env(var, env).map_err(|m| invalid("cluster.replica", m))?
        }
        None => from_env(DEFAULT_REPLICA_ENV, env).map_err(|m| invalid("cluster.replica", m))?,
    };
    if index < 0 || index >= i64::from(raw.replicas) {
        return Err(invalid(
            "cluster.replica",
            format!(
                "replica {index} is not one of 0..{} (cluster.replicas = {})",
                raw.replicas, raw.replicas
            ),
        ));
    }
    let stall_after = raw
        .stall_after
        .map(|d| d.0)
        .unwrap_or(checkpoint_interval * 3);
    if stall_after.is_zero() {
        return Err(invalid(
            "cluster.stall_after",
            "must be greater than 0".into(),
        ));
    }
    Ok(Cluster {
        replicas: raw.replicas,
        replica: index as u32,
        stall_after,
    })
}

fn from_env(var: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<i64, String> {
    let Some(v) = env(var) else {
        return Err(format!(
            "the environment variable {var} is not set (it gives this replica's index, 0-based)"
        ));
    };
    v.trim()
        .parse::<i64>()
        .ok()
        .or_else(|| parse_ordinal(&v))
        .ok_or_else(|| format!("{var}={v:?} is not an index nor a name ending in -<ordinal>"))
}

/// The ordinal of a StatefulSet pod name `<name>-<i>`.
pub fn parse_ordinal(host: &str) -> Option<i64> {
    let (_, tail) = host.trim().rsplit_once('-')?;
    if tail.is_empty() || !tail.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    tail.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(text: &str) -> RawCluster {
        toml::from_str(text).unwrap()
    }

    fn run(text: &str, env: &[(&str, &str)]) -> Result<Cluster, String> {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        validate(
            Some(raw(text)),
            Path::new("x.toml"),
            Duration::from_secs(30),
            &|k| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()),
        )
        .map_err(|e| e.to_string())
    }

    #[test]
    fn the_replica_comes_from_the_config_the_environment_or_the_hostname() {
        let c = run("replicas = 3\nreplica = 2", &[]).unwrap();
        assert_eq!((c.replica, c.replicas), (2, 3));
        assert_eq!(c.stall_after, Duration::from_secs(90));
        let c = run("replicas = 3", &[("SLUICE_REPLICA", "1")]).unwrap();
        assert_eq!(c.replica, 1);
        let c = run(
            "replicas = 3\nreplica = \"env:POD\"",
            &[("POD", "sluice-2")],
        )
        .unwrap();
        assert_eq!(c.replica, 2);
        let c = run(
            "replicas = 3\nreplica = \"hostname\"\nstall_after = \"5s\"",
            &[("HOSTNAME", "sluice-0")],
        )
        .unwrap();
        assert_eq!((c.replica, c.stall_after), (0, Duration::from_secs(5)));
    }

    #[test]
    fn a_missing_or_out_of_range_replica_is_refused_with_what_to_do() {
        let e = run("replicas = 3", &[]).unwrap_err();
        assert!(e.contains("SLUICE_REPLICA is not set"), "{e}");
        let e = run("replicas = 3\nreplica = 3", &[]).unwrap_err();
        assert!(e.contains("not one of 0..3"), "{e}");
        let e = run(
            "replicas = 3\nreplica = \"hostname\"",
            &[("HOSTNAME", "box")],
        )
        .unwrap_err();
        assert!(e.contains("-<ordinal>"), "{e}");
        let e = run("replicas = 0\nreplica = 0", &[]).unwrap_err();
        assert!(e.contains("between 1"), "{e}");
        let e = run("replicas = 2\nreplica = \"zero\"", &[]).unwrap_err();
        assert!(e.contains("expected an index"), "{e}");
        assert!(toml::from_str::<RawCluster>("replicas = 2\nreplika = 0").is_err());
    }

    #[test]
    fn ordinals() {
        assert_eq!(parse_ordinal("sluice-12"), Some(12));
        assert_eq!(parse_ordinal("my-app-sluice-0"), Some(0));
        assert_eq!(parse_ordinal("sluice-"), None);
        assert_eq!(parse_ordinal("sluice"), None);
        assert_eq!(parse_ordinal("sluice-1a"), None);
    }
}
