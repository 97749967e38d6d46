//! Partition commit with the real binary and a real webhook receiver: hour
//! partitions of t_click (dt, hour) get `_SUCCESS` and one notification once
//! the source has moved past them, the newest (still open) hour gets
//! neither while `idle_close` is off, a failing webhook is retried, and a
//! late file re-commits its partition with `late: true`. With `idle_close`,
//! the last hour of a source that went idle is committed too.

use crate::receiver::*;
use crate::support::*;
use std::collections::BTreeSet;
use std::time::Duration;

const HOUR0: &str = "dt=2026-11-20/hour=00";
const HOUR1: &str = "dt=2026-11-20/hour=01";
const HOUR2: &str = "dt=2026-11-20/hour=02";

#[test]
fn closed_hours_are_committed_once_with_retries_and_late_data_recommits() {
    let (addr, got) = start_receiver(true);
    // idle_close off: the hours are in the past, so an idle newest hour
    // would close at once; here it must wait for a newer one.
    let mut env = Env::new(&format!(
        r#"
[partition_commit]
time_columns = {{ dt = "%Y-%m-%d", hour = "%H" }}
delay = "0s"
idle_close = "off"
success_file = true
webhook = {{ url = "http://{addr}/hook", timeout = "2s" }}
retry_backoff = "100ms"
"#
    ));
    // Files stay open across checkpoints until they are due: hour 02 (never
    // committed here) becomes visible after the test config's max_file_age.
    env.add_file(0, 800);
    env.add_file(1, 800);
    let (mut child, rx) =
        spawn_with_log(env.cmd(&["run", "--config", env.config().to_str().unwrap()]));
    let mut log = String::new();
    let click = env.sink().join("t_click");

    // Hour 00 closes (the source has hour 01); hour 01 is the newest, open.
    wait_for("the commit of hour 00", &mut log, &rx, || {
        delivered(&got).iter().any(|b| b["partition"] == HOUR0)
    });
    assert!(click.join(HOUR0).join("_SUCCESS").exists());
    assert!(!click.join(HOUR1).join("_SUCCESS").exists(), "{log}");

    // A file of hour 02 closes hour 01; hour 02 stays open.
    env.add_file(2, 800);
    wait_for("the commit of hour 01", &mut log, &rx, || {
        delivered(&got).iter().any(|b| b["partition"] == HOUR1)
    });
    wait_for("hour 02 rows", &mut log, &rx, || click.join(HOUR2).exists());
    // A few more ticks: hour 02 must stay uncommitted.
    std::thread::sleep(Duration::from_millis(1500));
    assert!(click.join(HOUR0).join("_SUCCESS").exists());
    assert!(click.join(HOUR1).join("_SUCCESS").exists());
    assert!(!click.join(HOUR2).join("_SUCCESS").exists(), "{log}");
    // Tables without an hour or day partition are never committed, and the
    // day of t_android (dt) is not over for the source.
    assert!(!env.sink().join("t_all/hour=00/_SUCCESS").exists());
    assert!(!env.sink().join("t_android/dt=2026-11-20/_SUCCESS").exists());

    {
        let all = got.lock().unwrap();
        // The first attempt got a 500 and was retried with the same body.
        assert_eq!(all[0].0, 500);
        assert_eq!(all[1].0, 200);
        assert_eq!(all[0].2, all[1].2);
        assert!(
            all.iter().all(|(_, line, _)| line == "POST /hook HTTP/1.1"),
            "{all:?}"
        );
    }
    let bodies = delivered(&got);
    assert_eq!(
        bodies.len(),
        2,
        "one notification per closed hour: {bodies:#?}"
    );
    for (b, part) in bodies.iter().zip([HOUR0, HOUR1]) {
        assert_eq!(b, &expected_body(&env, "t_click", part, false, b));
        let at = b["committed_at"].as_str().unwrap();
        assert!(
            at.len() == 20 && at.ends_with('Z') && at.as_bytes()[10] == b'T',
            "{at}"
        );
    }
    let rows0 = bodies[0]["rows"].as_u64().unwrap();
    assert!(rows0 > 0);

    // A late file of hour 00: processed, then hour 00 is committed again.
    env.add_file(0, 800);
    wait_for("the late commit of hour 00", &mut log, &rx, || {
        delivered(&got).iter().any(|b| b["late"] == true)
    });
    std::thread::sleep(Duration::from_millis(1000));
    let bodies = delivered(&got);
    assert_eq!(bodies.len(), 3, "{bodies:#?}");
    let late = &bodies[2];
    assert_eq!(late, &expected_body(&env, "t_click", HOUR0, true, late));
    assert!(late["rows"].as_u64().unwrap() > rows0);
    // More files than the first commit (the late file's rows may span epochs).
    assert!(late["files"].as_u64().unwrap() > bodies[0]["files"].as_u64().unwrap());
    let parts: BTreeSet<String> = bodies
        .iter()
        .map(|b| b["partition"].as_str().unwrap().to_string())
        .collect();
    assert!(!parts.contains(HOUR2), "{parts:?}");

    // SAFETY: signalling our own child.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    assert!(child.wait().unwrap().success());
    wait_for("the log", &mut log, &rx, || true);
    while let Ok(l) = rx.recv_timeout(Duration::from_millis(200)) {
        log.push_str(&l);
        log.push('\n');
    }
    assert!(
        log.contains("late data: partition committed again"),
        "{log}"
    );
    let listed = log
        .lines()
        .find(|l| l.contains("committable="))
        .unwrap_or_default();
    assert!(
        listed.contains("t_click (hour)") && listed.contains("t_android (day)"),
        "{listed}"
    );
    let never = listed.split("never_committed=").nth(1).unwrap_or_default();
    assert!(
        never.contains("t_all") && never.contains("t_dept"),
        "{listed}"
    );

    // Tracked: t_click's three hours and t_android's day; t_all (hour only)
    // and t_dept (dept) have no period and are not tracked.
    let show = env.state_show();
    assert!(
        show.contains("partition commit: 4 partitions tracked, 2 committed (1 late re-commits), 2 with rows not announced yet"),
        "{show}"
    );
}

#[test]
fn an_idle_sources_last_hour_is_committed_after_idle_close() {
    let (addr, got) = start_receiver(false);
    let mut env = Env::new(&format!(
        r#"
[partition_commit]
delay = "0s"
idle_close = "1s"
webhook = {{ url = "http://{addr}/hook", timeout = "2s" }}
retry_backoff = "100ms"
"#
    ));
    // The source's only hour is yesterday's last: it ended long ago, and no
    // newer source partition will ever come.
    let (dt, day_ms) = yesterday();
    let hour = format!("dt={dt}/hour=23");
    let day = format!("dt={dt}");
    env.add_file_on((&dt, day_ms), 23, 800);
    let (mut child, rx) =
        spawn_with_log(env.cmd(&["run", "--config", env.config().to_str().unwrap()]));
    let mut log = String::new();
    let click = env.sink().join("t_click");
    let android = env.sink().join("t_android");

    wait_for("the idle commit of the last hour", &mut log, &rx, || {
        !delivered_for(&got, "t_click", &hour).is_empty()
            && !delivered_for(&got, "t_android", &day).is_empty()
    });
    assert!(click.join(&hour).join("_SUCCESS").exists(), "{log}");
    // The hour was the day's last, so the day is complete too.
    assert!(android.join(&day).join("_SUCCESS").exists(), "{log}");
    // A few more ticks: each is announced once.
    std::thread::sleep(Duration::from_millis(1500));
    let bodies = delivered(&got);
    assert_eq!(bodies.len(), 2, "{bodies:#?}");
    let first_click = delivered_for(&got, "t_click", &hour).remove(0);
    assert_eq!(
        first_click,
        expected_body(&env, "t_click", &hour, false, &first_click)
    );
    let first_day = delivered_for(&got, "t_android", &day).remove(0);
    assert_eq!(
        first_day,
        expected_body(&env, "t_android", &day, false, &first_day)
    );
    assert!(first_click["rows"].as_u64().unwrap() > 0);

    // A file that lands in the idle-closed hour later: processed, and the
    // hour (and its day) committed again as late.
    env.add_file_on((&dt, day_ms), 23, 800);
    wait_for("the late re-commit", &mut log, &rx, || {
        delivered_for(&got, "t_click", &hour).len() == 2
            && delivered_for(&got, "t_android", &day).len() == 2
    });
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(delivered(&got).len(), 4, "{:#?}", delivered(&got));
    let late = delivered_for(&got, "t_click", &hour).remove(1);
    assert_eq!(late, expected_body(&env, "t_click", &hour, true, &late));
    assert!(late["rows"].as_u64().unwrap() > first_click["rows"].as_u64().unwrap());
    let late_day = delivered_for(&got, "t_android", &day).remove(1);
    assert_eq!(
        late_day,
        expected_body(&env, "t_android", &day, true, &late_day)
    );

    // SAFETY: signalling our own child.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    assert!(child.wait().unwrap().success());
    let expected = expected_tables(&env.ods(), &[]);
    let diffs = diff_tables(&expected, &actual_tables(&env.sink()));
    assert!(diffs.is_empty(), "{}", diffs.join("\n"));
}
