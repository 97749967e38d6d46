//! Operating the running daemon: readiness waits for the source schema,
//! `sluice status` answers from the daemon and then from the state, and
//! SIGHUP reloads the safe config keys and the rules.

use crate::ops::get;
use crate::support::*;
use sluice::telemetry::status::{DiagnosisKind, StatusSnapshot, StatusSource};
use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

fn status_json(env: &Env, addr: Option<&str>) -> StatusSnapshot {
    let cfg = env.config();
    let mut args = vec!["status", "--config", cfg.to_str().unwrap(), "--json"];
    if let Some(a) = addr {
        args.extend(["--addr", a]);
    }
    let out = env.cmd(&args).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn status_text(env: &Env, addr: Option<&str>) -> String {
    let cfg = env.config();
    let mut args = vec!["status", "--config", cfg.to_str().unwrap()];
    if let Some(a) = addr {
        args.extend(["--addr", a]);
    }
    let out = env.cmd(&args).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn wait_status(env: &Env, addr: &str, what: &str, pred: impl Fn(&StatusSnapshot) -> bool) {
    let t0 = Instant::now();
    loop {
        let s = status_json(env, Some(addr));
        if pred(&s) {
            return;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "never {what}: {s:#?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn ready_only_once_the_schema_is_known_and_status_answers_from_daemon_then_state() {
    let mut env = Env::new("").with_http();
    let sock_path = env.path().join("notify.sock");
    let notify = UnixDatagram::bind(&sock_path).unwrap();
    let mut cmd = env.cmd(&["run", "--config", env.config().to_str().unwrap()]);
    cmd.env("NOTIFY_SOCKET", &sock_path);
    let (mut child, rx) = spawn_with_log(cmd);
    let mut log = String::new();
    let addr = wait_http_addr(&rx, &mut log);
    wait_log(&rx, &mut log, 60, "waiting for the first source file");

    // Empty source: not ready, and systemd hears why (and a longer start timeout).
    let (code, body) = get(&addr, "/readyz");
    assert_eq!(code, 503);
    assert!(
        body.contains("waiting for the first readable source file"),
        "{body}"
    );
    notify
        .set_read_timeout(Some(Duration::from_millis(1500)))
        .unwrap();
    let mut buf = [0u8; 512];
    let n = notify.recv(&mut buf).unwrap();
    let msg = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(!msg.contains("READY=1"), "{msg}");
    assert!(msg.contains("EXTEND_TIMEOUT_USEC="), "{msg}");
    assert!(status_text(&env, Some(&addr)).contains("waiting for the first readable source file"));

    let rows = 2 * 1100;
    env.add_file(0, 1100);
    env.add_file(1, 1100);
    notify
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    loop {
        let n = notify.recv(&mut buf).unwrap();
        if String::from_utf8_lossy(&buf[..n]).contains("READY=1") {
            break;
        }
    }
    assert_eq!(get(&addr, "/readyz").0, 200);
    wait_status(&env, &addr, "committed every row", |s| {
        s.tables.get("t_all") == Some(&rows)
    });

    // A corrupt file is quarantined and listed with its reason.
    let bad = env.ods().join("dt=2026-11-20/hour=09/bad.parquet");
    std::fs::create_dir_all(bad.parent().unwrap()).unwrap();
    std::fs::write(&bad, b"not parquet at all").unwrap();
    wait_status(&env, &addr, "quarantined the corrupt file", |s| {
        s.quarantined.len() == 1
    });
    let s = status_json(&env, Some(&addr));
    assert_eq!(s.source, StatusSource::Daemon);
    assert_eq!(s.diagnosis.kind, DiagnosisKind::Healthy, "{s:#?}");
    assert_eq!(s.backlog.files, 0);
    assert_eq!(s.rules.as_ref().map(|r| r.count), Some(RULES.len()));
    assert!(s.last_checkpoint.is_some());
    let text = status_text(&env, Some(&addr));
    for want in [
        "source:          the running daemon",
        "healthy, keeping up",
        "dimension:       dim_spmid snapshot spmid.csv (",
        "quarantined files: 1",
        "dt=2026-11-20/hour=09/bad.parquet",
    ] {
        assert!(text.contains(want), "{want:?} in\n{text}");
    }

    // SAFETY: signalling our own child.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    assert!(child.wait().unwrap().success());

    // Stopped: the same figures from the state (listen port 0: no daemon asked).
    env.add_file(2, 300);
    let s = status_json(&env, None);
    assert_eq!(s.source, StatusSource::State);
    assert_eq!(s.tables.get("t_all"), Some(&rows));
    assert_eq!(s.quarantined.len(), 1);
    assert_eq!(s.diagnosis.kind, DiagnosisKind::NotRunning);
    assert_eq!(s.backlog.files, 1, "the new file is backlog: {s:#?}");
    let text = status_text(&env, None);
    assert!(text.contains("no daemon answered"), "{text}");
    assert!(text.contains("not running; 1 file(s)"), "{text}");
}

#[test]
fn sighup_applies_safe_keys_refuses_a_bad_config_and_reloads_the_rules_now() {
    let mut env = Env::new("");
    env.add_file(0, 500);
    let (mut child, rx, mut log) = daemon_past_first_file(&env);
    let hup = || {
        // SAFETY: signalling our own child.
        unsafe {
            libc::kill(child.id() as i32, libc::SIGHUP);
        }
    };

    // One safe key (applied) and one that needs a restart (ignored).
    let good = std::fs::read_to_string(env.config()).unwrap();
    let edited = good
        .replace(
            "checkpoint_interval = \"300ms\"",
            "checkpoint_interval = \"1h\"",
        )
        .replace("root = \"ods\"", "root = \"elsewhere\"");
    std::fs::write(env.config(), &edited).unwrap();
    log.clear();
    hup();
    wait_log(&rx, &mut log, 60, "SIGHUP: config reloaded");
    assert!(log.contains("key=sink.checkpoint_interval"), "{log}");
    assert!(log.contains("config change applied"), "{log}");
    assert!(
        log.lines()
            .any(|l| l.contains("key=source.root") && l.contains("needs a restart")),
        "{log}"
    );
    wait_log(&rx, &mut log, 60, "rules reloaded");

    // Checkpoints are an hour apart now: an edited rule waits for SIGHUP.
    log.clear();
    std::fs::write(
        env.path().join("rules/t_click.sql"),
        "CREATE TABLE t_click PARTITIONED BY (dt, hour)\nAS SELECT event_id, mid, dt, hour FROM ods_events\nWHERE event_type = 'view';\n",
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    while let Ok(l) = rx.try_recv() {
        log.push_str(&l);
        log.push('\n');
    }
    assert!(!log.contains("rules reloaded"), "{log}");
    hup();
    wait_log(&rx, &mut log, 30, "rules reloaded");

    // A config that does not load is refused whole; the daemon keeps running.
    std::fs::write(env.config(), "version = 1\n[bogus]\n").unwrap();
    log.clear();
    hup();
    wait_log(&rx, &mut log, 30, "config refused");
    assert!(child.try_wait().unwrap().is_none(), "the daemon stopped");
    std::fs::write(env.config(), &good).unwrap();

    // SAFETY: signalling our own child.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    assert!(child.wait().unwrap().success());
}

#[test]
fn sighup_applies_a_new_log_level() {
    let mut env = Env::new("");
    env.add_file(0, 300);
    let mut cmd = env.cmd(&["run", "--config", env.config().to_str().unwrap()]);
    cmd.env_remove("RUST_LOG");
    let (mut child, rx) = spawn_with_log(cmd);
    let mut log = String::new();
    wait_log(&rx, &mut log, 60, "files_done=1");
    let cfg = std::fs::read_to_string(env.config()).unwrap();
    std::fs::write(env.config(), format!("{cfg}\n[log]\nlevel = \"warn\"\n")).unwrap();
    log.clear();
    // SAFETY: signalling our own child.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGHUP);
    }
    wait_log(&rx, &mut log, 30, "key=log.level");
    // Give the reload a moment, then a new file lands with no info lines.
    std::thread::sleep(Duration::from_millis(300));
    while let Ok(l) = rx.try_recv() {
        log.push_str(&l);
        log.push('\n');
    }
    let before = log.len();
    env.add_file(1, 300);
    crate::ops::wait_rows_of_file(&env, "t_all", "e000001");
    std::thread::sleep(Duration::from_millis(500));
    while let Ok(l) = rx.try_recv() {
        log.push_str(&l);
        log.push('\n');
    }
    let after = &log[before..];
    assert!(
        !after.contains("checkpoint committed"),
        "info lines after log.level = warn:\n{after}"
    );
    // SAFETY: signalling our own child.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    assert!(child.wait().unwrap().success());
}

/// Transparent huge pages are off for the daemon unless the operator asks
/// for them: a 2 MiB page stays resident for a few live bytes, which cost
/// P100 about 90 MB of peak RSS.
#[test]
fn transparent_huge_pages_are_off_unless_asked_for() {
    let env = Env::new("");
    // The daemon's `THP_enabled` (`/proc/<pid>/status`), read once it has
    // logged its first wait: long after `main` set the flag.
    let flag = |allow: Option<&str>| {
        let mut cmd = env.cmd(&["run", "--config", env.config().to_str().unwrap()]);
        cmd.env_remove("MIMALLOC_ALLOW_THP");
        if let Some(v) = allow {
            cmd.env("MIMALLOC_ALLOW_THP", v);
        }
        let (mut daemon, rx) = spawn_with_log(cmd);
        wait_log(
            &rx,
            &mut String::new(),
            60,
            "waiting for the first source file",
        );
        let status = std::fs::read_to_string(format!("/proc/{}/status", daemon.id())).unwrap();
        daemon.kill().unwrap();
        daemon.wait().unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("THP_enabled:"))
            .map(|v| v.trim().to_string())
    };
    assert_eq!(
        flag(None).as_deref(),
        Some("0"),
        "THP_enabled of the daemon"
    );
    assert_eq!(
        flag(Some("1")).as_deref(),
        Some("1"),
        "THP_enabled with MIMALLOC_ALLOW_THP=1"
    );
}
