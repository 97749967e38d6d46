//! A minimal HTTP/1.1 server for `/metrics`, `/healthz`, `/readyz` and
//! `/status` (JSON, what `sluice status` shows). It
//! reads one request line per connection and answers with the body; it
//! binds where the config says (loopback by default).

use super::Metrics;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Binds and serves in the background; returns the bound address.
pub async fn serve(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                continue;
            };
            let metrics = metrics.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let n = match tokio::time::timeout(
                    std::time::Duration::from_secs(5),
                    sock.read(&mut buf),
                )
                .await
                {
                    Ok(Ok(n)) => n,
                    _ => return,
                };
                let req = String::from_utf8_lossy(&buf[..n]);
                let path = req.split_whitespace().nth(1).unwrap_or("/");
                let mut content_type = "text/plain; version=0.0.4";
                let (status, body) = match path {
                    "/metrics" => ("200 OK", metrics.render()),
                    "/status" => {
                        content_type = "application/json";
                        let snap = metrics.status.snapshot(&metrics, now_ms());
                        let mut json = serde_json::to_string_pretty(&snap).unwrap_or_default();
                        json.push('\n');
                        ("200 OK", json)
                    }
                    "/healthz" => match metrics.stalled(now_ms()) {
                        None => ("200 OK", "ok\n".to_string()),
                        Some(why) => ("503 Service Unavailable", format!("stalled: {why}\n")),
                    },
                    "/readyz" if metrics.ready.load(Ordering::Relaxed) == 1 => {
                        ("200 OK", "ready\n".to_string())
                    }
                    "/readyz" => (
                        "503 Service Unavailable",
                        format!("not ready: {}\n", metrics.status.phase().describe()),
                    ),
                    _ => ("404 Not Found", "not found\n".to_string()),
                };
                let resp = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = sock.write_all(resp.as_bytes()).await;
            });
        }
    });
    Ok((bound, task))
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
