//! An `https://` webhook with the real binary: the receiver on 127.0.0.1
//! serves a certificate made here, trusted through `ca_file`; a header
//! whose value comes from an environment variable reaches it, and the
//! value appears neither in the daemon's log nor on `/status`.

use crate::ops::get;
use crate::receiver::*;
use crate::support::*;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const HOUR0: &str = "dt=2026-11-20/hour=00";
const TOKEN: &str = "Bearer tls-s3cret-7f3a";

/// (request head, JSON body) of every request, in order.
type Heads = Arc<Mutex<Vec<(String, serde_json::Value)>>>;

/// A TLS receiver on a free loopback port with a fresh self-signed
/// certificate for 127.0.0.1; writes the certificate (PEM) to `ca`.
/// Answers 500 to the first request, then 200.
fn start_tls_receiver(ca: &std::path::Path) -> (String, Heads) {
    let key = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    std::fs::write(ca, key.cert.pem()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![key.cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.signing_key.serialize_der().into()),
        )
        .unwrap();
    let cfg = Arc::new(cfg);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let heads: Heads = Arc::default();
    let h = heads.clone();
    std::thread::spawn(move || {
        for tcp in listener.incoming().flatten() {
            tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let conn = rustls::ServerConnection::new(cfg.clone()).unwrap();
            let mut tls = rustls::StreamOwned::new(conn, tcp);
            if let Some((head, body)) = read_request(&mut tls) {
                let first = {
                    let mut g = h.lock().unwrap();
                    g.push((head, body));
                    g.len() == 1
                };
                answer(&mut tls, if first { 500 } else { 200 });
                tls.conn.send_close_notify();
                let _ = std::io::Write::flush(&mut tls);
            }
        }
    });
    (addr, heads)
}

#[test]
fn an_https_webhook_trusts_its_ca_file_and_sends_a_header_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    let (addr, heads) = start_tls_receiver(&ca);
    let mut env = Env::new(&format!(
        r#"
[partition_commit]
time_columns = {{ dt = "%Y-%m-%d", hour = "%H" }}
delay = "0s"
idle_close = "off"
retry_backoff = "100ms"
webhook = {{ url = "https://{addr}/hook?key=q", timeout = "5s", ca_file = "{}", headers = {{ Authorization = "env:SLUICE_TEST_TOKEN", X-Source = "sluice-test" }} }}
"#,
        ca.display()
    ))
    .with_http();
    env.add_file(0, 400);
    env.add_file(1, 400);
    let mut cmd = env.cmd(&["run", "--config", env.config().to_str().unwrap()]);
    cmd.env("SLUICE_TEST_TOKEN", TOKEN).env("RUST_LOG", "debug");
    let (mut child, rx) = spawn_with_log(cmd);
    let mut log = String::new();
    let http = wait_http_addr(&rx, &mut log);

    // The first attempt is answered 500 (its error goes to the log and to
    // /status), the retry 200.
    wait_for("two deliveries of hour 00", &mut log, &rx, || {
        let g = heads.lock().unwrap();
        g.iter().filter(|(_, b)| b["partition"] == HOUR0).count() >= 2
    });
    let status = get(&http, "/status").1;
    {
        let g = heads.lock().unwrap();
        let (head, body) = &g[1];
        assert!(head.starts_with("POST /hook?key=q HTTP/1.1\r\n"), "{head}");
        let lower = head.to_ascii_lowercase();
        assert!(
            lower.contains(&format!(
                "authorization: {}\r\n",
                TOKEN.to_ascii_lowercase()
            )),
            "{head}"
        );
        assert!(lower.contains("x-source: sluice-test\r\n"), "{head}");
        assert!(
            lower.contains("content-type: application/json\r\n"),
            "{head}"
        );
        assert_eq!(body["table"], "t_click");
        assert_eq!(g[0].1, g[1].1, "the retry carries the same body");
    }

    // SAFETY: signalling our own child.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    assert!(child.wait().unwrap().success());
    while let Ok(l) = rx.recv_timeout(Duration::from_millis(500)) {
        log.push_str(&l);
        log.push('\n');
    }
    assert!(log.contains("webhook answered HTTP 500"), "{log}");
    let secret = TOKEN.split(' ').nth(1).unwrap();
    assert!(!log.contains(secret), "the token is in the log:\n{log}");
    assert!(
        !status.contains(secret),
        "the token is on /status:\n{status}"
    );
    assert!(
        !log.contains("key=q"),
        "the URL's query is in the log:\n{log}"
    );
}
