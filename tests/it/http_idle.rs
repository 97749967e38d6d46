//! The HTTP endpoints at their default limits (`max_connections = 64`):
//! `/healthz` keeps answering while 500 idle connections are open and a
//! client sends a 1 MB header, and the daemon never holds more than its
//! limit. (`http.rs` does the same at a small limit.)

use crate::http::{send_huge_header, sockets};
use crate::ops::get;
use crate::support::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// GET /healthz; panics without an answer within `within`.
fn healthz_within(addr: &str, within: Duration) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(within)).unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out)
        .unwrap_or_else(|e| panic!("no answer to /healthz within {within:?}: {e}"));
    out
}

#[test]
fn healthz_answers_through_500_idle_connections_and_a_1_mb_header_at_the_default_limit() {
    let mut env = Env::new("").with_http();
    env.add_file(0, 300);
    let (mut child, rx) =
        spawn_with_log(env.cmd(&["run", "--config", env.config().to_str().unwrap()]));
    let mut log = String::new();
    let addr = wait_http_addr(&rx, &mut log);
    let pid = child.id();
    let baseline = sockets(pid);

    // A 1 MB header, sent slowly enough to overlap the probes below.
    let a = addr.clone();
    let huge = std::thread::spawn(move || send_huge_header(&a));

    // 500 connections that never send a byte.
    let idle: Vec<TcpStream> = (0..500)
        .map(|_| TcpStream::connect(&addr).unwrap())
        .collect();
    for _ in 0..5 {
        // Within 5 s, half the 10 s after which an idle one is cut: a probe
        // never waits for them.
        let answer = healthz_within(&addr, Duration::from_secs(5));
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.ends_with("\r\n\r\nok\n"), "{answer}");
        let held = sockets(pid);
        assert!(
            held <= baseline + 64 + 1,
            "the daemon holds {held} sockets (baseline {baseline}, limit 64)"
        );
    }
    let (sent, answer) = huge.join().unwrap();
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 431"),
        "sent {sent} bytes; got {answer:?}"
    );
    drop(idle);
    assert_eq!(get(&addr, "/healthz"), (200, "ok\n".into()));

    assert!(child.try_wait().unwrap().is_none(), "the daemon exited");
    // SAFETY: signalling our own child.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    assert!(child.wait().unwrap().success());
}
