//! `[stores."s3://bucket"]`: per-bucket overrides of the environment's S3
//! settings (an S3-compatible endpoint, region, plain HTTP, addressing
//! style). Credentials are not accepted here: they come from the
//! environment the way every AWS tool finds them.

use super::ConfigError;
use crate::store::{Location, S3Override, StoreSettings};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStore {
    endpoint: Option<String>,
    region: Option<String>,
    allow_http: Option<bool>,
    virtual_hosted_style: Option<bool>,
}

pub(super) fn validate(
    raw: BTreeMap<String, RawStore>,
    path: &Path,
) -> Result<StoreSettings, ConfigError> {
    let mut out = StoreSettings::default();
    for (key, r) in raw {
        let invalid = |message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            key: format!("stores.{key:?}"),
            message,
        };
        let url = match Location::parse(Path::new("/"), &key) {
            Ok(Location::Url(u)) => u,
            _ => {
                return Err(invalid(
                    "the section name must be a bucket URL such as \"s3://ods-bucket\"".into(),
                ));
            }
        };
        if url.scheme != crate::store::Scheme::S3 {
            return Err(invalid(
                "per-store settings are for s3:// buckets; gs:// and az:// take the standard GOOGLE_* and AZURE_* environment".into(),
            ));
        }
        if !url.prefix.is_empty() {
            return Err(invalid(format!(
                "name the bucket alone: \"{}\"",
                url.store_key()
            )));
        }
        if let Some(e) = &r.endpoint
            && !(e.starts_with("http://") || e.starts_with("https://"))
        {
            return Err(invalid(format!(
                "endpoint {e:?} must start with http:// or https://"
            )));
        }
        if r.endpoint.as_deref().is_some_and(|e| e.contains('@')) {
            return Err(invalid(
                "endpoint must not hold credentials; use the AWS_* environment".into(),
            ));
        }
        out.s3.insert(
            url.store_key(),
            S3Override {
                endpoint: r.endpoint,
                region: r.region,
                allow_http: r.allow_http,
                virtual_hosted_style: r.virtual_hosted_style,
            },
        );
    }
    Ok(out)
}
