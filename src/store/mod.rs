//! Object stores: owns turning a configured [`Location`] into an
//! `object_store` client rooted at it, with the per-bucket overrides of
//! `[stores."s3://bucket"]` and, for everything else, the environment every
//! cloud tool reads (`AWS_*`, `GOOGLE_*`, `AZURE_*`: credentials, profiles
//! of web identity and instance metadata). Secrets never pass through the
//! config file: [`StoreSettings`] holds none unless code puts them there
//! (tests), and its `Debug` hides them.
//!
//! Also [`probe`], which `sluice check` uses to reach a store, and
//! [`counted`], the request counter of the source store.

pub mod counted;
pub mod location;
pub mod rooted;

pub use location::{Location, ObjectUrl, Scheme};

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey, AwsCredential};
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
use object_store::local::LocalFileSystem;
use object_store::multipart::MultipartStore;
use object_store::path::Path as ObjPath;
use object_store::{ClientConfigKey, ObjectStore, RetryConfig, StaticCredentialProvider};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create the folder {path}: {source}")]
    Create {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot open {location}: {message}")]
    Open { location: String, message: String },
    #[error("cannot reach {location}: {message}")]
    Unreachable { location: String, message: String },
}

/// `[stores."s3://bucket"]`: how to reach one S3 bucket when the
/// environment's `AWS_*` settings are not the right ones for it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct S3Override {
    /// `http://10.0.0.5:9000` for S3-compatible stores.
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub allow_http: Option<bool>,
    /// `bucket.host/key` rather than `host/bucket/key`.
    pub virtual_hosted_style: Option<bool>,
}

/// A static key pair given in code (tests, benchmarks); never from config.
#[derive(Clone, PartialEq, Eq)]
pub struct StaticKeys {
    pub key_id: String,
    pub secret: String,
}

impl std::fmt::Debug for StaticKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StaticKeys(<redacted>)")
    }
}

/// Everything needed to open any configured location.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoreSettings {
    /// By store key (`s3://bucket`).
    pub s3: BTreeMap<String, S3Override>,
    /// Credentials for every S3 store, instead of the environment's.
    pub keys: Option<StaticKeys>,
}

/// How persistently requests are retried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Patience {
    /// `object_store`'s own retries (10, up to 3 minutes per request).
    Normal,
    /// The source and dimensions, which sluice retries itself (every scan,
    /// `read.io_retry_*`), and the sink's uploads (`sink::health`): 3
    /// retries within 20 s, so a request to a store that is down fails in
    /// seconds and says so.
    Source,
    /// `sluice check`: one retry, short timeouts; fail fast and say why.
    Probe,
}

/// A store opened at a location: the client for the whole bucket and the
/// prefix inside it (empty for a local root, which is opened at the folder).
#[derive(Clone)]
pub struct Opened {
    pub bucket: Arc<dyn ObjectStore>,
    pub prefix: ObjPath,
    /// Multipart uploads by id (S3, GCS, Azure); `None` on a local disk.
    pub multipart: Option<Arc<dyn MultipartStore>>,
}

impl Opened {
    /// A store whose paths are relative to the location.
    pub fn rooted(&self) -> Arc<dyn ObjectStore> {
        if self.prefix.as_ref().is_empty() {
            self.bucket.clone()
        } else {
            Arc::new(rooted::Rooted::new(
                self.bucket.clone(),
                self.prefix.clone(),
            ))
        }
    }
}

/// Opens `loc`; a local folder is created first when `create`.
pub fn open_parts(
    loc: &Location,
    settings: &StoreSettings,
    create: bool,
    patience: Patience,
) -> Result<Opened, StoreError> {
    let open_err = |message: String| StoreError::Open {
        location: loc.to_string(),
        message,
    };
    match loc {
        Location::Local(root) => {
            if create {
                std::fs::create_dir_all(root).map_err(|source| StoreError::Create {
                    path: root.display().to_string(),
                    source,
                })?;
            }
            let fs = LocalFileSystem::new_with_prefix(root).map_err(|e| open_err(chain(&e)))?;
            Ok(Opened {
                bucket: Arc::new(fs),
                prefix: ObjPath::default(),
                multipart: None,
            })
        }
        Location::Url(url) => {
            let prefix = ObjPath::parse(&url.prefix).map_err(|e| open_err(chain(&e)))?;
            // Client options are set key by key: replacing them whole would
            // drop what the environment set (AWS_ALLOW_HTTP, proxies).
            let (retry, timeouts) = match patience {
                Patience::Normal => (RetryConfig::default(), None),
                Patience::Source => (
                    RetryConfig {
                        max_retries: 3,
                        retry_timeout: Duration::from_secs(20),
                        ..Default::default()
                    },
                    None,
                ),
                Patience::Probe => (
                    RetryConfig {
                        max_retries: 1,
                        retry_timeout: Duration::from_secs(10),
                        ..Default::default()
                    },
                    Some([
                        (ClientConfigKey::ConnectTimeout, "3s"),
                        (ClientConfigKey::Timeout, "10s"),
                    ]),
                ),
            };
            let bucket_url = url.store_key();
            let (bucket, multipart): (Arc<dyn ObjectStore>, Arc<dyn MultipartStore>) =
                match url.scheme {
                    Scheme::S3 => {
                        let mut b = s3_builder(&bucket_url, settings).with_retry(retry);
                        for (k, v) in timeouts.iter().flatten() {
                            b = b.with_config(AmazonS3ConfigKey::Client(*k), *v);
                        }
                        let s3 = Arc::new(b.build().map_err(|e| open_err(chain(&e)))?);
                        (s3.clone(), s3)
                    }
                    Scheme::Gcs => {
                        let mut b = GoogleCloudStorageBuilder::from_env()
                            .with_url(&bucket_url)
                            .with_retry(retry);
                        for (k, v) in timeouts.iter().flatten() {
                            b = b.with_config(GoogleConfigKey::Client(*k), *v);
                        }
                        let g = Arc::new(b.build().map_err(|e| open_err(chain(&e)))?);
                        (g.clone(), g)
                    }
                    Scheme::Azure => {
                        let mut b = MicrosoftAzureBuilder::from_env()
                            .with_url(&bucket_url)
                            .with_retry(retry);
                        for (k, v) in timeouts.iter().flatten() {
                            b = b.with_config(AzureConfigKey::Client(*k), *v);
                        }
                        let a = Arc::new(b.build().map_err(|e| open_err(chain(&e)))?);
                        (a.clone(), a)
                    }
                };
            Ok(Opened {
                bucket,
                prefix,
                multipart: Some(multipart),
            })
        }
    }
}

/// Opens `loc` as a store whose paths are relative to it.
pub fn open(
    loc: &Location,
    settings: &StoreSettings,
    create: bool,
) -> Result<Arc<dyn ObjectStore>, StoreError> {
    open_with(loc, settings, create, Patience::Normal)
}

/// [`open`] with the given retry policy.
pub fn open_with(
    loc: &Location,
    settings: &StoreSettings,
    create: bool,
    patience: Patience,
) -> Result<Arc<dyn ObjectStore>, StoreError> {
    Ok(open_parts(loc, settings, create, patience)?.rooted())
}

/// The environment's S3 settings, then the bucket's overrides.
fn s3_builder(bucket_url: &str, settings: &StoreSettings) -> AmazonS3Builder {
    let mut b = AmazonS3Builder::from_env().with_url(bucket_url);
    if let Some(o) = settings.s3.get(bucket_url) {
        if let Some(e) = &o.endpoint {
            b = b.with_endpoint(e);
        }
        if let Some(r) = &o.region {
            b = b.with_region(r);
        }
        if let Some(h) = o.allow_http {
            b = b.with_allow_http(h);
        }
        if let Some(v) = o.virtual_hosted_style {
            b = b.with_virtual_hosted_style_request(v);
        }
    }
    if let Some(k) = &settings.keys {
        b = b.with_credentials(Arc::new(StaticCredentialProvider::new(AwsCredential {
            key_id: k.key_id.clone(),
            secret_key: k.secret.clone(),
            token: None,
        })));
    }
    b
}

/// Reaches `loc` with one listing request: a missing bucket or folder,
/// denied credentials and an unreachable endpoint fail with the store's
/// own error.
pub async fn probe(loc: &Location, settings: &StoreSettings) -> Result<(), StoreError> {
    let unreachable = |message: String| StoreError::Unreachable {
        location: loc.to_string(),
        message,
    };
    if let Location::Local(root) = loc {
        return std::fs::read_dir(root)
            .map(drop)
            .map_err(|e| unreachable(e.to_string()));
    }
    let opened = open_parts(loc, settings, false, Patience::Probe)?;
    let prefix = (!opened.prefix.as_ref().is_empty()).then_some(&opened.prefix);
    opened
        .bucket
        .list_with_delimiter(prefix)
        .await
        .map(drop)
        .map_err(|e| unreachable(chain(&e)))
}

/// An error and its sources, `: `-separated (object_store puts the HTTP
/// status and the server's message in the sources).
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s
}

/// One configured location and whether it was reached.
#[derive(Debug)]
pub struct Reach {
    /// The config key (`source.root`, `dimension[0].path`).
    pub key: String,
    pub location: Location,
    pub result: Result<(), StoreError>,
}

/// Probes every object-store location of `cfg` at once (local folders are
/// checked where they are used).
pub async fn probe_config(cfg: &crate::config::Config) -> Vec<Reach> {
    let mut wanted = vec![
        ("source.root".to_string(), cfg.source.root.clone()),
        ("sink.root".to_string(), cfg.sink.root.clone()),
    ];
    for (i, d) in cfg.dimensions.iter().enumerate() {
        wanted.push((format!("dimension[{i}].path"), d.path.clone()));
    }
    wanted.retain(|(_, l)| l.url().is_some());
    let results =
        futures::future::join_all(wanted.iter().map(|(_, l)| probe(l, &cfg.stores))).await;
    wanted
        .into_iter()
        .zip(results)
        .map(|((key, location), result)| Reach {
            key,
            location,
            result,
        })
        .collect()
}
