//! The HTTP endpoints: `/metrics` (Prometheus text), `/healthz`, `/readyz`
//! and `/status` (JSON, what `sluice status` shows), routed by `axum` and
//! served by hyper's HTTP/1.1 connection from an accept loop of our own. It
//! binds where the config says (loopback by default).
//!
//! The accept loop is what keeps a misbehaving client from hurting the
//! daemon (every file descriptor it holds is one that listing, rule and
//! dimension reloads cannot open):
//! - At most [`Limits::max_connections`] connections are held (capped at a
//!   quarter of the open-file limit at start). When all
//!   are taken, a new connection closes the oldest one still waiting for
//!   its request (an idle client cannot starve a probe); when none is
//!   waiting, the loop waits for one to end before it accepts more (the
//!   rest wait in the kernel's backlog, costing the process nothing).
//! - A request head must arrive within [`Limits::header_timeout`] and fit
//!   in [`MAX_HEAD`] bytes (else 431, and the connection closes): a huge
//!   header costs at most that much memory per connection.
//! - A connection lives at most [`Limits::connection_timeout`], response
//!   included (a client that never reads is cut), and serves one request
//!   (`connection: close`).
//! - An accept error (EMFILE, ENFILE, ...) is logged (at most once per
//!   [`ACCEPT_LOG_EVERY`], with a count) and followed by a pause that
//!   doubles from 10 ms up to 1 s: the loop never spins and never exits.

use super::Metrics;
use crate::clock::now_ms;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tower_service::Service;

/// The largest request head read (hyper's buffer limit).
pub const MAX_HEAD: usize = 16 * 1024;
/// At most one accept error log line this often.
pub const ACCEPT_LOG_EVERY: Duration = Duration::from_secs(10);
const ACCEPT_BACKOFF_FIRST: Duration = Duration::from_millis(10);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// How much a client may take.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_connections: usize,
    /// From accept to the end of the request head.
    pub header_timeout: Duration,
    /// From accept to the last byte of the response.
    pub connection_timeout: Duration,
}

impl Limits {
    /// The daemon's limits with `[http] max_connections`.
    pub fn with_max_connections(max_connections: usize) -> Limits {
        Limits {
            max_connections: max_connections.max(1),
            header_timeout: Duration::from_secs(10),
            connection_timeout: Duration::from_secs(30),
        }
    }
}

/// Binds and serves in the background; returns the bound address.
pub async fn serve(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    limits: Limits,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let mut limits = limits;
    if let Some(files) = open_file_limit() {
        let cap = (files / 4).max(1);
        if limits.max_connections > cap {
            tracing::warn!(
                max_connections = limits.max_connections,
                open_file_limit = files,
                using = cap,
                "http.max_connections capped at a quarter of the open-file limit"
            );
            limits.max_connections = cap;
        }
    }
    let task = tokio::spawn(accept_loop(listener, router(metrics), limits));
    Ok((bound, task))
}

/// The endpoints; bodies and content types as they have always been.
fn router(metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route("/metrics", get(metrics_page))
        .route("/status", get(status_page))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .fallback(|| async { text(StatusCode::NOT_FOUND, "not found\n".into()) })
        .with_state(metrics)
}

fn text(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        body,
    )
        .into_response()
}

async fn metrics_page(State(m): State<Arc<Metrics>>) -> Response {
    text(StatusCode::OK, m.render())
}

async fn status_page(State(m): State<Arc<Metrics>>) -> Response {
    let snap = m.status.snapshot(&m, now_ms());
    let mut json = serde_json::to_string_pretty(&snap).unwrap_or_default();
    json.push('\n');
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        json,
    )
        .into_response()
}

async fn healthz(State(m): State<Arc<Metrics>>) -> Response {
    match m.stalled(now_ms()) {
        None => text(StatusCode::OK, "ok\n".into()),
        Some(why) => text(StatusCode::SERVICE_UNAVAILABLE, format!("stalled: {why}\n")),
    }
}

async fn readyz(State(m): State<Arc<Metrics>>) -> Response {
    if m.ready.load(Ordering::Relaxed) == 1 {
        text(StatusCode::OK, "ready\n".into())
    } else {
        text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {}\n", m.status.phase().describe()),
        )
    }
}

/// One held connection, as the accept loop sees it.
struct Slot {
    /// No request head yet: may be closed to make room.
    waiting: AtomicBool,
    evict: Notify,
}

/// The connections still waiting for their request, oldest first (weak:
/// a finished connection just drops out).
#[derive(Default)]
struct Waiting(Mutex<VecDeque<Weak<Slot>>>);

impl Waiting {
    fn push(&self, slot: &Arc<Slot>, max: usize) {
        let mut q = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if q.len() >= 2 * max {
            q.retain(|w| {
                w.upgrade()
                    .is_some_and(|s| s.waiting.load(Ordering::Relaxed))
            });
        }
        q.push_back(Arc::downgrade(slot));
    }

    /// Asks the oldest connection still waiting for its request to close;
    /// false when there is none.
    fn evict_oldest(&self) -> bool {
        let mut q = self.0.lock().unwrap_or_else(|p| p.into_inner());
        while let Some(w) = q.pop_front() {
            if let Some(s) = w.upgrade().filter(|s| s.waiting.load(Ordering::Relaxed)) {
                s.evict.notify_one();
                return true;
            }
        }
        false
    }
}

async fn accept_loop(listener: TcpListener, router: Router, limits: Limits) {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let waiting = Arc::new(Waiting::default());
    let mut backoff = ACCEPT_BACKOFF_FIRST;
    let mut errors = 0u64;
    let mut last_log: Option<Instant> = None;
    loop {
        let sock = match listener.accept().await {
            Ok((sock, _)) => {
                backoff = ACCEPT_BACKOFF_FIRST;
                sock
            }
            Err(e) => {
                errors += 1;
                if last_log.is_none_or(|t| t.elapsed() >= ACCEPT_LOG_EVERY) {
                    last_log = Some(Instant::now());
                    tracing::warn!(error = %e, errors, pause_ms = backoff.as_millis() as u64,
                        "HTTP: cannot accept a connection; pausing (is the open-file limit too low?)");
                    errors = 0;
                }
                // A connection waiting for its request gives its descriptor back.
                waiting.evict_oldest();
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
                continue;
            }
        };
        let permit = match permits.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                waiting.evict_oldest();
                match permits.clone().acquire_owned().await {
                    Ok(p) => p,
                    // Never closed; were it, stop serving rather than spin.
                    Err(_) => return,
                }
            }
        };
        let slot = Arc::new(Slot {
            waiting: AtomicBool::new(true),
            evict: Notify::new(),
        });
        waiting.push(&slot, limits.max_connections);
        tokio::spawn(connection(sock, slot, permit, router.clone(), limits));
    }
}

/// Serves one request on `sock`, within the limits; the permit is given
/// back when it ends.
async fn connection(
    sock: TcpStream,
    slot: Arc<Slot>,
    _permit: OwnedSemaphorePermit,
    router: Router,
    limits: Limits,
) {
    let _ = sock.set_nodelay(true);
    let seen = slot.clone();
    let svc = hyper::service::service_fn(move |req| {
        seen.waiting.store(false, Ordering::Relaxed);
        let mut r = router.clone();
        async move { r.call(req).await }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(MAX_HEAD)
        .keep_alive(false);
    let conn = builder.serve_connection(TokioIo::new(sock), svc);
    let conn = tokio::time::timeout(limits.connection_timeout, conn);
    tokio::pin!(conn);
    let head_deadline = tokio::time::sleep(limits.header_timeout);
    tokio::pin!(head_deadline);
    loop {
        tokio::select! {
            _ = &mut conn => return,
            _ = slot.evict.notified() => {
                if slot.waiting.load(Ordering::Relaxed) {
                    return;
                }
            }
            // hyper's own header timeout starts with the first byte; an
            // idle connection is cut here.
            _ = &mut head_deadline, if slot.waiting.load(Ordering::Relaxed) => return,
        }
    }
}

/// The soft `RLIMIT_NOFILE`, when finite.
fn open_file_limit() -> Option<usize> {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass.
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) } == 0;
    (ok && r.rlim_cur != libc::RLIM_INFINITY)
        .then(|| usize::try_from(r.rlim_cur).unwrap_or(usize::MAX))
}
