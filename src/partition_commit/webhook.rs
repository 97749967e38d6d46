//! The webhook's HTTP client: one `reqwest` client per daemon, built at
//! start from `[partition_commit.webhook]` (the system's CA roots plus
//! `ca_file`, the configured headers with `env:` values read from the
//! environment). It owns nothing else: one POST per call, bounded by the
//! timeout; what a failure means is decided by [`super::notify`].
//!
//! Header values are marked sensitive (hyper leaves them out of its debug
//! output) and never appear in an error: errors carry neither the URL's
//! query nor a header.

use super::CommitError;
use crate::config::{HeaderValueSource, WebhookConfig};
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use std::time::Duration;

/// A ready-to-post webhook.
#[derive(Clone, Debug)]
pub struct Webhook {
    client: reqwest::Client,
    url: reqwest::Url,
    timeout: Duration,
}

impl Webhook {
    /// Reads `ca_file` and the `env:` header values; an unreadable file or
    /// an unset variable fails the start.
    pub fn new(cfg: &WebhookConfig) -> Result<Webhook, CommitError> {
        Webhook::with_env(cfg, |name| std::env::var(name).ok())
    }

    /// [`Webhook::new`] with the environment given (for tests).
    pub fn with_env(
        cfg: &WebhookConfig,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Webhook, CommitError> {
        let setup = |m: String| CommitError::Setup(m);
        let url = reqwest::Url::parse(&cfg.url)
            .map_err(|e| setup(format!("url {}: {e}", cfg.redacted())))?;
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        for (name, source) in &cfg.headers {
            let key = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| setup(format!("headers.{name}: not a header name")))?;
            let text = match source {
                HeaderValueSource::Literal(v) => v.clone(),
                HeaderValueSource::Env(var) => env(var).ok_or_else(|| {
                    setup(format!(
                        "headers.{name}: environment variable {var} is not set"
                    ))
                })?,
            };
            let mut value = HeaderValue::from_str(&text).map_err(|_| {
                setup(format!(
                    "headers.{name}: the value has characters a header cannot carry"
                ))
            })?;
            value.set_sensitive(true);
            headers.insert(key, value);
        }
        let mut b = reqwest::Client::builder()
            .user_agent(concat!("sluice/", env!("CARGO_PKG_VERSION")))
            .default_headers(headers)
            .timeout(cfg.timeout)
            .connect_timeout(cfg.timeout)
            // As before: straight to the receiver, never through a proxy
            // from the environment.
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none());
        if let Some(path) = &cfg.ca_file {
            let pem = std::fs::read(path)
                .map_err(|e| setup(format!("ca_file {}: {e}", path.display())))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| setup(format!("ca_file {}: {e}", path.display())))?;
            if certs.is_empty() {
                return Err(setup(format!(
                    "ca_file {}: no PEM certificate in it",
                    path.display()
                )));
            }
            for c in certs {
                b = b.add_root_certificate(c);
            }
        }
        let client = b
            .build()
            .map_err(|e| setup(format!("cannot build the HTTP client: {}", chain(&e))))?;
        Ok(Webhook {
            client,
            url,
            timeout: cfg.timeout,
        })
    }

    /// One POST of `body`; returns the response's status code.
    pub async fn post(&self, body: String) -> Result<u16, CommitError> {
        let r = self.client.post(self.url.clone()).body(body).send().await;
        match r {
            Ok(resp) => Ok(resp.status().as_u16()),
            Err(e) if e.is_timeout() => Err(CommitError::Timeout(self.timeout)),
            Err(e) => Err(CommitError::Http(chain(&e.without_url()))),
        }
    }
}

/// `e` and its sources, `outer: inner: root` (reqwest's own message is
/// only the outermost), without the URL.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let m = s.to_string();
        if !out.ends_with(&m) {
            out.push_str(": ");
            out.push_str(&m);
        }
        cur = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::sync::Arc;

    fn cfg(url: String) -> WebhookConfig {
        WebhookConfig {
            url,
            timeout: Duration::from_secs(5),
            ca_file: None,
            headers: vec![(
                "Authorization".into(),
                HeaderValueSource::Env("HOOK_TOKEN".into()),
            )],
            ignored_keys: vec![],
        }
    }

    /// A one-connection TLS server on 127.0.0.1 with a fresh certificate;
    /// returns its port and the certificate (PEM). Answers 204.
    fn tls_server() -> (u16, String) {
        let key = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![key.cert.der().clone()],
                rustls::pki_types::PrivateKeyDer::Pkcs8(key.signing_key.serialize_der().into()),
            )
            .unwrap();
        let tls = Arc::new(tls);
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for tcp in l.incoming().flatten() {
                let conn = rustls::ServerConnection::new(tls.clone()).unwrap();
                let mut s = rustls::StreamOwned::new(conn, tcp);
                let mut buf = [0u8; 4096];
                if s.read(&mut buf).is_ok_and(|n| n > 0) {
                    let _ = s.write_all(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n");
                    s.conn.send_close_notify();
                    let _ = s.flush();
                }
            }
        });
        (port, key.cert.pem())
    }

    fn post(hook: &Webhook) -> Result<u16, CommitError> {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(hook.post("{}".into()))
    }

    #[test]
    fn https_is_trusted_through_the_ca_file_only() {
        let (port, pem) = tls_server();
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, pem).unwrap();
        let env = |_: &str| Some("Bearer s3cret".to_string());
        let mut c = cfg(format!("https://127.0.0.1:{port}/hook?token=q"));

        // Not in the system's roots: refused, and the error names neither
        // the query nor the header.
        let e = post(&Webhook::with_env(&c, env).unwrap()).unwrap_err();
        let text = e.to_string();
        assert!(text.contains("certificate"), "{text}");
        assert!(
            !text.contains("token=q") && !text.contains("s3cret"),
            "{text}"
        );

        c.ca_file = Some(ca);
        assert_eq!(post(&Webhook::with_env(&c, env).unwrap()).unwrap(), 204);
    }

    #[test]
    fn setup_errors_name_the_key() {
        let mut c = cfg("https://127.0.0.1:9/hook".into());
        let e = Webhook::with_env(&c, |_| None).unwrap_err().to_string();
        assert!(
            e.contains("headers.Authorization") && e.contains("HOOK_TOKEN is not set"),
            "{e}"
        );
        let dir = tempfile::tempdir().unwrap();
        c.headers.clear();
        c.ca_file = Some(dir.path().join("missing.pem"));
        let e = Webhook::with_env(&c, |_| None).unwrap_err().to_string();
        assert!(e.contains("ca_file") && e.contains("missing.pem"), "{e}");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        c.ca_file = Some(empty);
        let e = Webhook::with_env(&c, |_| None).unwrap_err().to_string();
        assert!(e.contains("no PEM certificate"), "{e}");
        // A value that cannot be a header (a newline from the environment).
        c.ca_file = None;
        c.headers = vec![("X-A".into(), HeaderValueSource::Env("V".into()))];
        let e = Webhook::with_env(&c, |_| Some("a\nb".into()))
            .unwrap_err()
            .to_string();
        assert!(e.contains("headers.X-A"), "{e}");
        assert!(!e.contains("a\nb"), "{e}");
    }
}
