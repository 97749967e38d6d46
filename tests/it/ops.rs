//! Operating the daemon: `/metrics` reconciles with the rows fed in,
//! `/healthz` and `/readyz` answer, and systemd hears READY and STOPPING.

use crate::support::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

pub(crate) fn get(addr: &str, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let code = out.split_whitespace().nth(1).unwrap().parse().unwrap();
    (code, out.split("\r\n\r\n").nth(1).unwrap_or("").to_string())
}

pub(crate) fn metric(body: &str, name: &str) -> u64 {
    body.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse::<f64>().ok())
        .map(|v| v as u64)
        .unwrap_or_else(|| panic!("no metric {name} in:\n{body}"))
}

/// Waits until the metric `name` reaches `want`; returns the metrics then.
pub(crate) fn wait_metric(addr: &str, name: &str, want: u64) -> String {
    let t0 = Instant::now();
    loop {
        let (_, body) = get(addr, "/metrics");
        if metric(&body, name) >= want {
            return body;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "{name} never reached {want}:\n{body}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until no output file is open (every routed row is visible) and
/// returns the metrics then.
pub(crate) fn wait_all_visible(addr: &str) -> String {
    let t0 = Instant::now();
    loop {
        let (_, body) = get(addr, "/metrics");
        if body.contains("\nsluice_open_output_files 0\n") {
            return body;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "output files never closed:\n{body}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn metrics_reconcile_with_the_rows_fed_in_and_systemd_is_notified() {
    let mut env = Env::new("").with_http();
    let mut rows = 0;
    for h in 0..3 {
        env.add_file(h, 1200 + 100 * h as usize);
        rows += 1200 + 100 * h as u64;
    }
    let sock_path = env.path().join("notify.sock");
    let notify = UnixDatagram::bind(&sock_path).unwrap();
    notify
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut cmd = env.cmd(&["run", "--config", env.config().to_str().unwrap()]);
    cmd.env("NOTIFY_SOCKET", &sock_path);
    let (mut child, rx) = spawn_with_log(cmd);
    let addr = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("no HTTP address logged");
        if let Some(rest) = line.split("address=").nth(1) {
            break rest.split_whitespace().next().unwrap().to_string();
        }
    };
    let mut buf = [0u8; 256];
    let n = notify.recv(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).contains("READY=1"));

    assert_eq!(get(&addr, "/healthz").0, 200);
    assert_eq!(get(&addr, "/readyz").0, 200);
    assert_eq!(get(&addr, "/nope").0, 404);
    let t0 = Instant::now();
    let body = loop {
        let (_, body) = get(&addr, "/metrics");
        if metric(&body, "sluice_files_done_total") == 3 {
            break wait_all_visible(&addr);
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "files never finished:\n{body}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let read = metric(&body, "sluice_rows_read_total");
    let matched = metric(&body, "sluice_rows_matched_total");
    let unmatched = metric(&body, "sluice_rows_unmatched_total");
    assert_eq!(read, rows);
    assert_eq!(read, matched + unmatched, "reconciliation");
    assert_eq!(unmatched, 0, "t_all takes every row");
    let committed = body
        .lines()
        .find(|l| l.starts_with("sluice_rows_committed_total{table=\"t_all\"}"))
        .and_then(|l| l.split_whitespace().last())
        .unwrap();
    assert_eq!(committed, rows.to_string());
    assert!(
        !body.contains("part-") && !body.contains(".parquet"),
        "file paths in metrics"
    );

    // SAFETY: signalling our own child.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let status = child.wait().unwrap();
    assert!(status.success());
    let n = notify.recv(&mut buf).unwrap();
    // sd-notify ends each state with a newline, as sd_notify(3) allows.
    assert_eq!(&buf[..n], b"STOPPING=1\n");
}

/// Waits until `table` holds rows whose event_id starts with `prefix` (one source file).
pub(crate) fn wait_rows_of_file(env: &Env, table: &str, prefix: &str) {
    let t0 = Instant::now();
    while !actual_tables(&env.sink())
        .get(table)
        .is_some_and(|t| t.keys().any(|k| k.starts_with(prefix)))
    {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "rows of {prefix} never landed in {table}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn rule_files_copied_one_after_another_reload_as_one_set() {
    let mut env = Env::new("");
    env.add_file(0, 500);
    let (mut child, rx, mut log) = daemon_past_first_file(&env);

    // Two files, with checkpoints (every 300 ms) in between: the half-done
    // directory is never loaded.
    let rules = env.path().join("rules");
    std::fs::write(rules.join("t_click.sql"), "CREATE TABLE t_click PARTITIONED BY (dt, hour)\nAS SELECT event_id, mid, dt, hour FROM ods_events\nWHERE event_type IN ('click', 'view');\n").unwrap();
    std::thread::sleep(Duration::from_millis(900));
    std::fs::write(rules.join("t_share.sql"), "CREATE TABLE t_share PARTITIONED BY (dt)\nAS SELECT event_id, dt FROM ods_events\nWHERE event_type = 'share';\n").unwrap();
    wait_log(&rx, &mut log, 60, "rules reloaded");
    let n = std::fs::read_dir(&rules)
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "sql"))
        .count();
    let reloads: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("rules reloaded"))
        .collect();
    assert_eq!(reloads.len(), 1, "{log}");
    assert!(reloads[0].contains(&format!("rules={n}")), "{log}");
    // SAFETY: signalling our own child.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    assert!(child.wait().unwrap().success());
}

#[test]
fn rules_reload_at_a_checkpoint_and_a_bad_edit_keeps_the_running_set() {
    let mut env = Env::new("");
    let first = env.add_file(0, 1500);
    let (mut child, rx, mut log) = daemon_past_first_file(&env);

    // t_click now takes views.
    let rule = env.path().join("rules/t_click.sql");
    std::fs::write(&rule, "CREATE TABLE t_click PARTITIONED BY (dt, hour)\nAS SELECT event_id, mid, dt, hour FROM ods_events\nWHERE event_type = 'view';\n").unwrap();
    wait_log(&rx, &mut log, 60, "rules reloaded");
    let second = env.add_file(1, 1500);
    log.clear();
    wait_rows_of_file(&env, "t_click", "e000001");

    // A broken edit is refused; the view rule keeps running.
    std::fs::write(
        &rule,
        "CREATE TABLE t_click AS SELECT event_id FROM ods_events WHERE nope = 1;\n",
    )
    .unwrap();
    // Refused with its position once the directory has settled.
    wait_log(&rx, &mut log, 60, "t_click.sql:1:63");
    wait_log(&rx, &mut log, 60, "new rule set refused");
    let third = env.add_file(2, 1500);
    wait_rows_of_file(&env, "t_click", "e000002");
    // SAFETY: signalling our own child.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    assert!(child.wait().unwrap().success());

    // Independently: file 0 routed by event_type = 'click', files 1 and 2 by 'view'.
    let want = |f: &std::path::Path, ty: &str| -> Vec<String> {
        let mut ids = Vec::new();
        for (_, batches) in visible_files(f.parent().unwrap(), &[]) {
            for b in batches {
                use arrow::array::AsArray;
                let id = b.column_by_name("event_id").unwrap().as_string::<i32>();
                let t = b.column_by_name("event_type").unwrap().as_string::<i32>();
                for i in 0..b.num_rows() {
                    if t.value(i) == ty {
                        ids.push(id.value(i).to_string());
                    }
                }
            }
        }
        ids
    };
    let mut expected: Vec<String> = want(&first, "click");
    expected.extend(want(&second, "view"));
    expected.extend(want(&third, "view"));
    expected.sort();
    let got = actual_tables(&env.sink());
    let mut got: Vec<String> = got["t_click"]
        .iter()
        .flat_map(|(k, n)| std::iter::repeat_n(k.clone(), *n as usize))
        .collect();
    got.sort();
    assert_eq!(got.len(), expected.len());
    assert_eq!(got, expected);
}

#[test]
fn a_column_type_change_is_refused_and_the_running_rule_stays() {
    let mut env = Env::new("");
    env.add_file(0, 800);
    let cfg = env.config();
    let cfg = cfg.to_str().unwrap();
    let (mut child, rx) = spawn_with_log(env.cmd(&["run", "--config", cfg]));
    let mut log = String::new();
    wait_log(&rx, &mut log, 60, "files_done=1");

    // While the daemon holds the state, `check` says it cannot compare.
    let out = env.cmd(&["check", "--config", cfg]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("is the daemon running?; column type changes are not checked"),
        "{stdout}"
    );

    // t_android's event_type becomes a number: refused, the string rule keeps running.
    let rule = env.path().join("rules/t_android.sql");
    let changed = "CREATE TABLE t_android PARTITIONED BY (dt)\nAS SELECT event_id, length(event_type) AS event_type, dt FROM ods_events\nWHERE app_source = 'android';\n";
    std::fs::write(&rule, changed).unwrap();
    wait_log(&rx, &mut log, 60, "new rule set refused");
    assert!(
        log.contains("t_android.sql:2:43: column event_type of table t_android would change type from Utf8 to Int32"),
        "{log}"
    );
    env.add_file(1, 800);
    wait_rows_of_file(&env, "t_android", "e000001");
    // SAFETY: signalling our own child.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    assert!(child.wait().unwrap().success());
    for (rel, batches) in visible_files(&env.sink().join("t_android"), &[]) {
        for b in batches {
            let t = b
                .schema()
                .field_with_name("event_type")
                .unwrap()
                .data_type()
                .clone();
            assert_eq!(t, arrow::datatypes::DataType::Utf8, "{rel}");
        }
    }

    // Stopped: `check` and a restart refuse the change too.
    let out = env.cmd(&["check", "--config", cfg]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("would change type from Utf8 to Int32"),
        "{err}"
    );
    assert_eq!(env.run_once().status.code(), Some(2));

    // The directive lets it through; the new type is recorded with the next rows.
    std::fs::write(&rule, format!("-- sluice: allow_schema_change\n{changed}")).unwrap();
    env.add_file(2, 800);
    let out = env.run_once();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(&rule, changed).unwrap();
    let out = env.cmd(&["check", "--config", cfg]).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
