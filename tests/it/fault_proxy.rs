//! A fault-injecting TCP proxy on loopback, in front of the S3 server:
//! each new connection is, at random, answered `503 Slow Down` at once,
//! closed after part of its request, or passed through and cut at a random
//! moment. The protocol is untouched (requests are signed for the proxy's
//! host and port, which it passes on verbatim); only the network fails.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub struct FaultProxy {
    pub endpoint: String,
    /// Connections answered 503, reset, or cut.
    pub faults: Arc<AtomicU64>,
    _rt: tokio::runtime::Runtime,
}

impl FaultProxy {
    /// Proxies to `upstream` (`127.0.0.1:port`); a connection fails with
    /// probability `p`.
    pub fn start(upstream: String, p: f64) -> FaultProxy {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = rt.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
        let addr = listener.local_addr().unwrap();
        let faults = Arc::new(AtomicU64::new(0));
        let counted = faults.clone();
        rt.spawn(async move {
            let mut n: u64 = 0;
            while let Ok((conn, _)) = listener.accept().await {
                n += 1;
                let roll = sluice::demo::Rng::new(n * 7919).below(1000) as f64 / 1000.0;
                let kind = if roll < p / 3.0 {
                    Fault::SlowDown
                } else if roll < 2.0 * p / 3.0 {
                    Fault::Reset
                } else if roll < p {
                    Fault::Cut(200 + (n * 37 % 1500))
                } else {
                    Fault::None
                };
                if kind != Fault::None {
                    counted.fetch_add(1, Ordering::Relaxed);
                }
                tokio::spawn(serve(conn, upstream.clone(), kind));
            }
        });
        FaultProxy {
            endpoint: format!("http://{addr}"),
            faults,
            _rt: rt,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Fault {
    None,
    /// `503 Slow Down` before the request is read through.
    SlowDown,
    /// The connection is closed after the first bytes of the request.
    Reset,
    /// Passed through, then cut after this many milliseconds.
    Cut(u64),
}

async fn serve(mut conn: TcpStream, upstream: String, kind: Fault) {
    match kind {
        Fault::SlowDown => {
            let mut buf = [0u8; 1024];
            let _ = conn.read(&mut buf).await;
            let body = "<Error><Code>SlowDown</Code><Message>injected</Message></Error>";
            let resp = format!(
                "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = conn.write_all(resp.as_bytes()).await;
        }
        Fault::Reset => {
            let mut buf = [0u8; 64];
            let _ = conn.read(&mut buf).await;
            // Dropped: the client sees the connection end mid-request.
        }
        Fault::None | Fault::Cut(_) => {
            let Ok(mut up) = TcpStream::connect(&upstream).await else {
                return;
            };
            let pipe = tokio::io::copy_bidirectional(&mut conn, &mut up);
            match kind {
                Fault::Cut(ms) => {
                    let _ = tokio::time::timeout(std::time::Duration::from_millis(ms), pipe).await;
                }
                _ => {
                    let _ = pipe.await;
                }
            }
        }
    }
}
