//! Partition commit at the time level: a table partitioned by (dt, hour,
//! event_type) gets exactly one `_SUCCESS` per hour directory and none in
//! its event-type leaves, one webhook per hour naming the hour with its
//! totals and the list of its sub-partitions (equal to what the sink
//! holds), and one command run per hour with the unit in its environment.
//! A late file re-commits the hour once, with `late: true`.

use crate::receiver::*;
use crate::support::*;
use std::path::{Path, PathBuf};
use std::time::Duration;

const HOUR0: &str = "dt=2026-11-20/hour=00";
const HOUR1: &str = "dt=2026-11-20/hour=01";

/// Every `_SUCCESS` under `dir`, relative to it.
fn markers(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack: Vec<PathBuf> = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.file_name().is_some_and(|n| n == "_SUCCESS") {
                let rel = p.strip_prefix(dir).unwrap().to_string_lossy().to_string();
                out.push(rel);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn an_hour_with_sub_partitions_is_committed_once_at_the_hour_level() {
    let (addr, got) = start_receiver(false);
    // idle_close off: the newest source hour stays open, so only hours
    // followed by a newer one are committed.
    let mut env = Env::new(&format!(
        r#"
[partition_commit]
time_columns = {{ dt = "%Y-%m-%d", hour = "%H" }}
delay = "0s"
idle_close = "off"
success_file = true
webhook = {{ url = "http://{addr}/hook", timeout = "2s" }}
command = ["/bin/sh", "-c", "printf '%s %s %s %s %s\n' \"$SLUICE_TABLE\" \"$SLUICE_PARTITION\" \"$SLUICE_ROWS\" \"$SLUICE_LATE\" \"$SLUICE_SUB_PARTITION_COUNT\" >> runs"]
retry_backoff = "100ms"
"#
    ));
    std::fs::write(
        env.path().join("rules/t_types.sql"),
        "CREATE TABLE t_types PARTITIONED BY (dt, hour, event_type)\nAS SELECT event_id, dt, hour, event_type FROM ods_events;\n",
    )
    .unwrap();
    env.add_file(0, 800);
    env.add_file(1, 800);
    let (mut child, rx) =
        spawn_with_log(env.cmd(&["run", "--config", env.config().to_str().unwrap()]));
    let mut log = String::new();
    let types = env.sink().join("t_types");
    let for_hour = |h: &str| delivered_for(&got, "t_types", h);

    wait_for("the commit of hour 00", &mut log, &rx, || {
        !for_hour(HOUR0).is_empty()
    });
    env.add_file(2, 800);
    wait_for("the commit of hour 01", &mut log, &rx, || {
        !for_hour(HOUR1).is_empty()
    });
    // A few more ticks: nothing is announced twice, hour 02 never.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        markers(&types),
        [format!("{HOUR0}/_SUCCESS"), format!("{HOUR1}/_SUCCESS")],
        "one marker per closed hour, none in the event_type leaves\n{log}"
    );
    let mut first = Vec::new();
    for h in [HOUR0, HOUR1] {
        let bodies = for_hour(h);
        assert_eq!(bodies.len(), 1, "one webhook per hour: {bodies:#?}");
        let b = &bodies[0];
        assert_eq!(b, &expected_body(&env, "t_types", h, false, b));
        let subs = b["sub_partitions"].as_array().unwrap();
        assert!(subs.len() > 1, "several event types in the hour: {b:#}");
        assert!(
            subs.iter()
                .all(|s| s["partition"].as_str().unwrap().starts_with("event_type=")),
            "{b:#}"
        );
        let sum: u64 = subs.iter().map(|s| s["rows"].as_u64().unwrap()).sum();
        assert_eq!(Some(sum), b["rows"].as_u64());
        first.push(b.clone());
    }
    assert!(
        delivered(&got)
            .iter()
            .all(|b| !b["partition"].as_str().unwrap().contains("event_type")),
        "no leaf is notified on its own"
    );

    // A late file of hour 00: the hour is committed again, once, as late.
    env.add_file(0, 800);
    wait_for("the late commit of hour 00", &mut log, &rx, || {
        for_hour(HOUR0).len() >= 2
    });
    std::thread::sleep(Duration::from_millis(1500));
    let bodies = for_hour(HOUR0);
    assert_eq!(bodies.len(), 2, "{bodies:#?}");
    let late = &bodies[1];
    assert_eq!(late, &expected_body(&env, "t_types", HOUR0, true, late));
    assert!(late["rows"].as_u64() > first[0]["rows"].as_u64());
    assert_eq!(for_hour(HOUR1).len(), 1);
    assert_eq!(markers(&types).len(), 2);

    // SAFETY: signalling our own child.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    assert!(child.wait().unwrap().success());

    // `state show` counts units: t_click's and t_types' three hours, and
    // t_android's day; hours 00 and 01 of both hourly tables committed,
    // hour 00 of both once more as late.
    let show = env.state_show();
    assert!(
        show.contains(
            "partition commit: 7 partitions tracked, 4 committed (2 late re-commits), 3 with rows not announced yet, 0 of them failing"
        ),
        "{show}"
    );

    // One command run per commit, with the hour and its totals.
    let runs = std::fs::read_to_string(env.path().join("runs")).unwrap();
    let runs: Vec<&str> = runs.lines().filter(|l| l.starts_with("t_types ")).collect();
    let line = |b: &serde_json::Value, late: bool| {
        format!(
            "t_types {} {} {late} {}",
            b["partition"].as_str().unwrap(),
            b["rows"],
            b["sub_partitions"].as_array().unwrap().len()
        )
    };
    assert_eq!(
        runs,
        [
            line(&first[0], false),
            line(&first[1], false),
            line(late, true)
        ],
        "{log}"
    );
    // The leaves were not committed behind the hour's back either.
    let actual = actual_tables(&env.sink());
    let mut expected = expected_tables(&env.ods(), &[]);
    expected.insert("t_types".into(), expected["t_all"].clone());
    let diffs = diff_tables(&expected, &actual);
    assert!(diffs.is_empty(), "{}", diffs.join("\n"));
}
