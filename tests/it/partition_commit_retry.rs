//! A failed partition commit stays pending and is retried until it
//! succeeds, across a restart too: the webhook receiver answers 500 for
//! longer than any retry budget, the partition is never recorded as
//! committed meanwhile (`/status`, `sluice status`, `state show` say it
//! is pending and why, without the URL's token), and it is announced
//! exactly once when the receiver answers 200. A failing command keeps its
//! partition pending the same way.

use crate::ops::{get, metric};
use crate::receiver::*;
use crate::support::*;
use std::sync::atomic::Ordering;
use std::time::Duration;

const HOUR0: &str = "dt=2026-11-20/hour=00";

fn sigterm(child: &mut Daemon) {
    // SAFETY: signalling our own child.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    assert!(child.wait().unwrap().success());
}

fn attempts_for(got: &Got, status: u16) -> usize {
    got.lock()
        .unwrap()
        .iter()
        .filter(|(st, _, b)| *st == status && b["partition"] == HOUR0)
        .count()
}

#[test]
fn a_failing_webhook_stays_pending_until_it_succeeds_even_across_a_restart() {
    let (addr, got, answer) = start_switchable_receiver(500);
    // idle_close off: hour 01 is the newest and stays open, so hour 00 of
    // t_click is the only partition due. `retries` is the old budget (3
    // attempts): deprecated, ignored.
    let mut env = Env::new(&format!(
        r#"
[partition_commit]
delay = "0s"
idle_close = "off"
retry_backoff = "100ms"
retry_max_backoff = "400ms"
webhook = {{ url = "http://{addr}/hook?token=s3cret", timeout = "2s", retries = 2 }}
"#
    ))
    .with_http();
    env.add_file(0, 800);
    env.add_file(1, 800);
    let (mut child, rx) =
        spawn_with_log(env.cmd(&["run", "--config", env.config().to_str().unwrap()]));
    let mut log = String::new();
    let http = wait_http_addr(&rx, &mut log);

    // Far more attempts than the old budget, all refused, none recorded.
    wait_for("6 failed attempts", &mut log, &rx, || {
        attempts_for(&got, 500) >= 6
    });
    let (code, body) = get(&http, "/status");
    assert_eq!(code, 200);
    assert!(!body.contains("s3cret"), "{body}");
    let status: serde_json::Value = serde_json::from_str(&body).unwrap();
    let pc = &status["partition_commit"];
    assert_eq!(pc["pending"], 1, "{body}");
    assert_eq!(pc["failing"], 1, "{body}");
    let f = &pc["oldest_failing"][0];
    assert_eq!(
        (&f["table"], &f["partition"]),
        (&"t_click".into(), &HOUR0.into())
    );
    assert!(f["failed_attempts"].as_u64().unwrap() >= 5, "{body}");
    assert_eq!(f["last_error"], "webhook answered HTTP 500", "{body}");
    let (_, metrics) = get(&http, "/metrics");
    assert_eq!(metric(&metrics, "sluice_partitions_pending"), 1);
    assert!(metric(&metrics, "sluice_partition_commit_failures_total") >= 5);
    assert!(metric(&metrics, "sluice_partition_commit_webhook_failures_total") >= 5);
    assert!(metrics.contains("sluice_partition_commit_oldest_pending_seconds "));
    sigterm(&mut child);
    while let Ok(l) = rx.recv_timeout(Duration::from_millis(200)) {
        log.push_str(&l);
        log.push('\n');
    }
    assert!(
        log.contains("partition commit failed; it stays pending and is retried")
            && log.contains("retry_in="),
        "{log}"
    );
    assert!(log.contains("deprecated keys ignored"), "{log}");
    assert!(!log.contains("s3cret"), "{log}");
    assert!(attempts_for(&got, 200) == 0);

    // Stopped while pending: not recorded, and the state says why.
    let show = env.state_show();
    assert!(
        show.contains(
            "0 committed (0 late re-commits), 3 with rows not announced yet, 1 of them failing"
        ),
        "{show}"
    );
    let out = env
        .cmd(&["status", "--config", env.config().to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("partition commit: 1 pending, 1 failing")
            && text.contains("t_click/dt=2026-11-20/hour=00: ")
            && text.contains("last error: webhook answered HTTP 500")
            && !text.contains("s3cret"),
        "{text}"
    );

    // After the restart it is tried again; announced once it succeeds.
    let before = attempts_for(&got, 500);
    let (mut child, rx) =
        spawn_with_log(env.cmd(&["run", "--config", env.config().to_str().unwrap()]));
    let mut log = String::new();
    wait_for("attempts after the restart", &mut log, &rx, || {
        attempts_for(&got, 500) >= before + 2
    });
    answer.store(200, Ordering::SeqCst);
    wait_for("the announcement", &mut log, &rx, || {
        attempts_for(&got, 200) == 1
    });
    std::thread::sleep(Duration::from_millis(1500));
    let all = got.lock().unwrap().clone();
    assert_eq!(attempts_for(&got, 200), 1, "{all:#?}");
    assert_eq!(
        all.last().map(|(st, _, _)| *st),
        Some(200),
        "nothing is sent after the success: {all:#?}"
    );
    let ok = delivered_for(&got, "t_click", HOUR0).remove(0);
    assert_eq!(ok, expected_body(&env, "t_click", HOUR0, false, &ok));
    sigterm(&mut child);
    let show = env.state_show();
    assert!(
        show.contains(
            "1 committed (0 late re-commits), 2 with rows not announced yet, 0 of them failing"
        ),
        "{show}"
    );
}

#[test]
fn a_failing_command_keeps_its_partition_pending_until_it_succeeds() {
    // The command fails until the file `ok` exists; every run is noted.
    let mut env = Env::new(
        r#"
[partition_commit]
delay = "0s"
idle_close = "off"
retry_backoff = "100ms"
retry_max_backoff = "200ms"
command = ["/bin/sh", "-c", "echo {table}/{partition} >> runs; test -f ok"]
"#,
    );
    env.add_file(0, 800);
    env.add_file(1, 800);
    let runs = env.path().join("runs");
    let count = |p: &std::path::Path| {
        std::fs::read_to_string(p)
            .unwrap_or_default()
            .lines()
            .filter(|l| *l == format!("t_click/{HOUR0}"))
            .count()
    };
    let (mut child, rx) =
        spawn_with_log(env.cmd(&["run", "--config", env.config().to_str().unwrap()]));
    let mut log = String::new();
    wait_for("3 failed runs", &mut log, &rx, || count(&runs) >= 3);
    assert!(!log.contains("partition committed"), "{log}");
    std::fs::write(env.path().join("ok"), "").unwrap();
    wait_log(&rx, &mut log, 30, "partition committed");
    let n = count(&runs);
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(count(&runs), n, "run again after it succeeded");
    sigterm(&mut child);
    let show = env.state_show();
    assert!(show.contains("1 committed (0 late re-commits)"), "{show}");
}
