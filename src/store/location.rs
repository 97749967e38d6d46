//! Where a configured root is: a local directory or an object-store URL
//! (`s3://bucket/prefix`, `gs://...`, `az://...`). Parsing and comparing
//! locations is pure; opening one is [`super::open`]'s job.

use std::fmt;
use std::path::{Path, PathBuf};

/// The object stores a URL may name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scheme {
    S3,
    Gcs,
    Azure,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::S3 => "s3",
            Scheme::Gcs => "gs",
            Scheme::Azure => "az",
        }
    }

    fn parse(s: &str) -> Option<Scheme> {
        match s {
            "s3" => Some(Scheme::S3),
            "gs" => Some(Scheme::Gcs),
            "az" => Some(Scheme::Azure),
            _ => None,
        }
    }
}

/// A bucket (container) and a prefix in it, normalized: no empty, `.` or
/// `..` segments, no leading or trailing `/`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ObjectUrl {
    pub scheme: Scheme,
    pub bucket: String,
    /// `/`-separated, possibly empty (the whole bucket).
    pub prefix: String,
}

impl ObjectUrl {
    /// `s3://bucket`: the key of a `[stores."..."]` section.
    pub fn store_key(&self) -> String {
        format!("{}://{}", self.scheme.as_str(), self.bucket)
    }

    /// True when `other` is this prefix or under it (same bucket).
    fn contains(&self, other: &ObjectUrl) -> bool {
        self.scheme == other.scheme
            && self.bucket == other.bucket
            && (self.prefix.is_empty()
                || other.prefix == self.prefix
                || other
                    .prefix
                    .strip_prefix(&self.prefix)
                    .is_some_and(|rest| rest.starts_with('/')))
    }
}

impl fmt::Display for ObjectUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.prefix.is_empty() {
            write!(f, "{}", self.store_key())
        } else {
            write!(f, "{}/{}", self.store_key(), self.prefix)
        }
    }
}

/// A configured root: a local directory or a place in an object store.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Location {
    /// Absolute and lexically normalized.
    Local(PathBuf),
    Url(ObjectUrl),
}

impl Location {
    /// A config value: a local path (relative ones taken from `base`), a
    /// `file://` URL, or an `s3://`, `gs://` or `az://` URL.
    pub fn parse(base: &Path, value: &str) -> Result<Location, String> {
        if value.is_empty() {
            return Err("must not be empty".into());
        }
        if let Some(rest) = value.strip_prefix("file://") {
            if !rest.starts_with('/') {
                return Err(format!(
                    "{value:?}: a file:// URL needs an absolute path (file:///data/ods)"
                ));
            }
            return Ok(Location::Local(normalize(Path::new(rest))));
        }
        let Some((scheme, rest)) = value.split_once("://") else {
            let p = Path::new(value);
            let joined = if p.is_absolute() {
                p.to_path_buf()
            } else {
                base.join(p)
            };
            return Ok(Location::Local(normalize(&joined)));
        };
        let scheme = Scheme::parse(scheme).ok_or_else(|| {
            format!("{value:?}: unsupported scheme {scheme:?}; expected a local path or a file://, s3://, gs:// or az:// URL")
        })?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() || bucket.contains(['?', '#', '@', ' ']) {
            return Err(format!(
                "{value:?}: no bucket name after {}://",
                scheme.as_str()
            ));
        }
        let mut segs = Vec::new();
        for seg in prefix.split('/') {
            match seg {
                "" => {}
                "." | ".." => {
                    return Err(format!(
                        "{value:?}: `.` and `..` are not allowed in an object-store path"
                    ));
                }
                s if s.chars().any(char::is_control) || s.contains(['?', '#']) => {
                    return Err(format!("{value:?}: {s:?} is not a valid path segment"));
                }
                s => segs.push(s),
            }
        }
        Ok(Location::Url(ObjectUrl {
            scheme,
            bucket: bucket.to_string(),
            prefix: segs.join("/"),
        }))
    }

    /// The local directory, for what only a local root has (fsync of the
    /// file system, staging folder cleanup, symlink checks, disk space).
    pub fn local_root(&self) -> Option<&Path> {
        match self {
            Location::Local(p) => Some(p),
            Location::Url(_) => None,
        }
    }

    pub fn url(&self) -> Option<&ObjectUrl> {
        match self {
            Location::Local(_) => None,
            Location::Url(u) => Some(u),
        }
    }

    /// True when `other` is this location or inside it. Local paths are
    /// compared as given (see `config::paths` for symlinks); a local path
    /// never overlaps a URL.
    pub fn contains(&self, other: &Location) -> bool {
        match (self, other) {
            (Location::Local(a), Location::Local(b)) => b.starts_with(a),
            (Location::Url(a), Location::Url(b)) => a.contains(b),
            _ => false,
        }
    }

    /// `rel` (a `/`-separated path under this root) for messages.
    pub fn join_display(&self, rel: &str) -> String {
        match self {
            Location::Local(p) => p.join(rel).display().to_string(),
            Location::Url(u) => format!("{}/{rel}", u.to_string().trim_end_matches('/')),
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Local(p) => write!(f, "{}", p.display()),
            Location::Url(u) => u.fmt(f),
        }
    }
}

/// Lexical normalization (`a/./b/../c` -> `a/c`), then absolute.
pub fn normalize(p: &Path) -> PathBuf {
    use std::path::Component;
    let abs = if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir().unwrap_or_default().join(p)
    };
    let mut out = PathBuf::new();
    for c in abs.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(v: &str) -> Result<Location, String> {
        Location::parse(Path::new("/etc/sluice"), v)
    }

    #[test]
    fn paths_and_urls_parse_and_normalize() {
        assert_eq!(
            p("ods/./x/../events").unwrap(),
            Location::Local("/etc/sluice/ods/events".into())
        );
        assert_eq!(
            p("file:///data/ods").unwrap(),
            Location::Local("/data/ods".into())
        );
        let u = p("s3://ods-bucket//ods/events/").unwrap();
        assert_eq!(u.to_string(), "s3://ods-bucket/ods/events");
        assert_eq!(u.url().unwrap().store_key(), "s3://ods-bucket");
        assert_eq!(u.local_root(), None);
        assert_eq!(p("gs://b").unwrap().to_string(), "gs://b");
        assert_eq!(p("az://c/x").unwrap().to_string(), "az://c/x");
        for (bad, want) in [
            ("hdfs://nn/x", "unsupported scheme"),
            ("s3:///x", "no bucket"),
            ("s3://b/../x", "not allowed"),
            ("file://rel", "absolute"),
            ("", "empty"),
        ] {
            let e = p(bad).unwrap_err();
            assert!(e.contains(want), "{bad}: {e}");
        }
    }

    #[test]
    fn containment_compares_bucket_and_whole_segments() {
        let c = |a: &str, b: &str| p(a).unwrap().contains(&p(b).unwrap());
        assert!(c("s3://b/ods", "s3://b/ods/x"));
        assert!(c("s3://b/ods", "s3://b/ods"));
        assert!(c("s3://b", "s3://b/anything"));
        assert!(!c("s3://b/ods", "s3://b/ods2"));
        assert!(!c("s3://b/ods", "s3://c/ods/x"));
        assert!(!c("s3://b/ods", "gs://b/ods/x"));
        assert!(!c("/data/ods", "s3://b/data/ods"));
        assert!(c("/data/ods", "/data/ods/x"));
        assert!(!c("/data/ods", "/data/ods2"));
    }
}
