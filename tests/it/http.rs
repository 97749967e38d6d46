//! The HTTP endpoints against clients that misbehave, over real sockets on
//! 127.0.0.1: a request split inside its request line, hundreds of idle
//! connections, a 1 MB header, and accept errors from a low open-file limit.
//! The daemon holds a bounded number of connections, keeps answering
//! `/healthz`, never spins and never exits.

use crate::ops::get;
use crate::support::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// Sockets the process `pid` holds.
pub(crate) fn sockets(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|rd| {
            rd.flatten()
                .filter(|e| {
                    std::fs::read_link(e.path())
                        .is_ok_and(|l| l.to_string_lossy().starts_with("socket:"))
                })
                .count()
        })
        .unwrap_or(0)
}

/// Sends a 1 MB header to `/healthz` in 64 KiB pieces, 50 ms apart (so it
/// overlaps what the test does meanwhile). Returns the bytes sent and the
/// answer, if any.
pub(crate) fn send_huge_header(addr: &str) -> (usize, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut sent = s.write(b"GET /healthz HTTP/1.1\r\nX-Big: ").unwrap();
    let chunk = vec![b'a'; 64 * 1024];
    for _ in 0..16 {
        match s.write(&chunk) {
            Ok(n) => sent += n,
            Err(_) => break,
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = s.write_all(b"\r\n\r\n");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    (sent, String::from_utf8_lossy(&out).into_owned())
}

/// CPU time (user + system) of `pid`, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which may hold spaces): state is 3rd.
    let rest = stat.rsplit_once(')').unwrap().1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

/// GET `path` with a deadline: (status, content type, body).
fn get_within(addr: &str, path: &str, within: Duration) -> (u16, String, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(within)).unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out)
        .unwrap_or_else(|e| panic!("no answer to {path} within {within:?}: {e}"));
    let (head, body) = out.split_once("\r\n\r\n").unwrap();
    let code = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let ctype = head
        .lines()
        .find_map(|l| l.strip_prefix("content-type: "))
        .unwrap_or("")
        .to_string();
    (code, ctype, body.to_string())
}

fn start(env: &Env) -> (Daemon, String, std::sync::mpsc::Receiver<String>) {
    let (child, rx) = spawn_with_log(env.cmd(&["run", "--config", env.config().to_str().unwrap()]));
    let mut log = String::new();
    let addr = wait_http_addr(&rx, &mut log);
    (child, addr, rx)
}

fn stop(mut child: Daemon) {
    assert!(child.try_wait().unwrap().is_none(), "the daemon exited");
    // SAFETY: signalling our own child.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    assert!(child.wait().unwrap().success());
}

#[test]
fn endpoints_answer_as_before_and_a_request_in_two_segments_is_served() {
    let mut env = Env::new("").with_http();
    env.add_file(0, 300);
    let (child, addr, _rx) = start(&env);
    let t0 = Instant::now();
    while get(&addr, "/readyz").0 != 200 {
        assert!(t0.elapsed() < Duration::from_secs(30), "never ready");
        std::thread::sleep(Duration::from_millis(100));
    }
    let w = Duration::from_secs(5);
    assert_eq!(
        get_within(&addr, "/healthz", w),
        (200, "text/plain; version=0.0.4".into(), "ok\n".into())
    );
    assert_eq!(
        get_within(&addr, "/readyz", w),
        (200, "text/plain; version=0.0.4".into(), "ready\n".into())
    );
    assert_eq!(
        get_within(&addr, "/nope", w),
        (
            404,
            "text/plain; version=0.0.4".into(),
            "not found\n".into()
        )
    );
    let (code, ctype, body) = get_within(&addr, "/metrics", w);
    assert_eq!((code, ctype.as_str()), (200, "text/plain; version=0.0.4"));
    assert!(
        body.contains("# TYPE sluice_rows_read_total counter"),
        "{body}"
    );
    let (code, ctype, body) = get_within(&addr, "/status", w);
    assert_eq!((code, ctype.as_str()), (200, "application/json"));
    assert!(body.ends_with("}\n"), "{body}");
    serde_json::from_str::<serde_json::Value>(&body).unwrap();

    // The request line cut in two segments, with a pause between.
    let mut s = TcpStream::connect(&addr).unwrap();
    s.set_nodelay(true).unwrap();
    s.set_read_timeout(Some(w)).unwrap();
    s.write_all(b"GET /hea").unwrap();
    std::thread::sleep(Duration::from_millis(300));
    s.write_all(b"lthz HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(out.ends_with("\r\n\r\nok\n"), "{out}");
    stop(child);
}

#[test]
fn idle_connections_and_a_huge_header_neither_starve_healthz_nor_pile_up() {
    let mut env = Env::new("").with_http();
    let cfg = std::fs::read_to_string(env.config()).unwrap();
    std::fs::write(
        env.config(),
        cfg.replace("[http]\n", "[http]\nmax_connections = 16\n"),
    )
    .unwrap();
    env.add_file(0, 300);
    let (child, addr, _rx) = start(&env);
    let pid = child.id();
    let baseline = sockets(pid);

    // A client that sends a 1 MB header, slowly enough to overlap the rest.
    let a = addr.clone();
    let huge = std::thread::spawn(move || send_huge_header(&a));

    // 300 connections that never send a byte.
    let idle: Vec<TcpStream> = (0..300)
        .map(|_| TcpStream::connect(&addr).unwrap())
        .collect();
    for _ in 0..5 {
        // Within 5 s, well under the 10 s the idle ones would take to time
        // out: a probe is never queued behind them.
        let (code, _, body) = get_within(&addr, "/healthz", Duration::from_secs(5));
        assert_eq!((code, body.as_str()), (200, "ok\n"));
        let held = sockets(pid);
        assert!(
            held <= baseline + 16 + 1,
            "the daemon holds {held} sockets (baseline {baseline}, bound 16)"
        );
    }
    let (sent, answer) = huge.join().unwrap();
    // Refused (431) or cut: never served as a request, nor buffered whole.
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 431"),
        "sent {sent} bytes; got {answer:?}"
    );
    drop(idle);
    assert_eq!(get(&addr, "/healthz"), (200, "ok\n".into()));
    stop(child);
}

#[test]
fn accept_errors_from_a_low_file_limit_neither_spin_nor_kill_the_daemon() {
    let mut env = Env::new("").with_http();
    let cfg = std::fs::read_to_string(env.config()).unwrap();
    // A bound above the file limit, so that accept itself fails (EMFILE).
    std::fs::write(
        env.config(),
        cfg.replace("[http]\n", "[http]\nmax_connections = 5000\n"),
    )
    .unwrap();
    env.add_file(0, 300);
    let (child, addr, rx) = start(&env);
    let pid = child.id();
    let t0 = Instant::now();
    // The file is done and committed: the pipeline is idle, so only the
    // listing (which retries) needs descriptors from here on.
    while !get(&addr, "/metrics")
        .1
        .contains("\nsluice_files_done_total 1\n")
    {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "the file was never done"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(1000));
    let open = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count() as u64;
    let limit = libc::rlimit {
        rlim_cur: open + 24,
        rlim_max: open + 24,
    };
    // SAFETY: prlimit on our own child with a valid rlimit.
    let r = unsafe {
        libc::prlimit(
            pid as i32,
            libc::RLIMIT_NOFILE,
            &limit,
            std::ptr::null_mut(),
        )
    };
    assert_eq!(r, 0, "prlimit: {}", std::io::Error::last_os_error());

    // More connections than the limit allows; held for two seconds.
    let log = || rx.try_iter().collect::<Vec<_>>().join("\n");
    let conns: Vec<TcpStream> = (0..200)
        .map(|_| {
            TcpStream::connect(&addr)
                .unwrap_or_else(|e| panic!("{e}; the daemon's log:\n{}", log()))
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let (c0, w0) = (cpu_ticks(pid), Instant::now());
    std::thread::sleep(Duration::from_secs(2));
    let used = (cpu_ticks(pid) - c0) as f64 / 100.0;
    let share = used / w0.elapsed().as_secs_f64();
    assert!(
        share < 0.5,
        "the daemon used {share:.2} of a core while accept failed"
    );
    drop(conns);

    // It keeps running and answers once the clients are gone.
    let t0 = Instant::now();
    loop {
        let mut s = TcpStream::connect(&addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        let _ = s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        if out.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "no /healthz: {out:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    stop(child);
}
