//! systemd's watchdog with the real binary: with `WATCHDOG_USEC` set for
//! it, the daemon sends `WATCHDOG=1`; with a `WATCHDOG_PID` of another
//! process (a variable inherited from a parent service), it does not.

use crate::support::*;
use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

/// The datagrams the daemon sends within `window` after its `READY=1`.
fn messages_after_ready(watchdog_pid: Option<&str>, window: Duration) -> Vec<String> {
    let mut env = Env::new("");
    env.add_file(0, 100);
    let sock_path = env.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut cmd = env.cmd(&["run", "--config", env.config().to_str().unwrap()]);
    cmd.env("NOTIFY_SOCKET", &sock_path)
        .env("WATCHDOG_USEC", "200000")
        .env_remove("WATCHDOG_PID");
    if let Some(pid) = watchdog_pid {
        cmd.env("WATCHDOG_PID", pid);
    }
    let (mut child, _rx) = spawn_with_log(cmd);
    let mut buf = [0u8; 256];
    let mut got = Vec::new();
    let t0 = Instant::now();
    let mut ready_at = None;
    while ready_at.is_none_or(|r: Instant| r.elapsed() < window) {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "no READY=1: {got:?}"
        );
        if let Ok(n) = sock.recv(&mut buf) {
            let m = String::from_utf8_lossy(&buf[..n]).into_owned();
            if ready_at.is_none() && m.contains("READY=1") {
                ready_at = Some(Instant::now());
            }
            got.push(m);
        }
    }
    // SAFETY: signalling our own child.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    assert!(child.wait().unwrap().success());
    got
}

#[test]
fn the_watchdog_is_fed_only_when_it_is_meant_for_this_process() {
    let ours = messages_after_ready(None, Duration::from_secs(2));
    assert!(
        ours.iter().any(|m| m.trim_end() == "WATCHDOG=1"),
        "{ours:?}"
    );
    // PID 1 is never the daemon.
    let inherited = messages_after_ready(Some("1"), Duration::from_secs(2));
    assert!(
        !inherited.iter().any(|m| m.contains("WATCHDOG")),
        "{inherited:?}"
    );
}
