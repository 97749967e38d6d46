//! At-least-once commit notifications across SIGKILL: the real binary dies
//! at the crash point `after_partition_notify` (the webhook was delivered,
//! the commit is not recorded yet); after the restart the same partition is
//! notified again, `_SUCCESS` is written again, and every table still holds
//! exactly the input rows.

use crate::crash::wait_or_kill;
use crate::receiver::*;
use crate::support::*;
use std::time::Duration;

const HOUR0: &str = "dt=2026-11-20/hour=00";

/// Stops the daemon with SIGTERM (a clean exit) and checks every table
/// against the input.
fn stop_and_check_exact(env: &Env, child: Daemon) {
    let mut child = child.into_child();
    // SAFETY: signalling our own child.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    assert!(child.wait().unwrap().success());
    let expected = expected_tables(&env.ods(), &[]);
    let diffs = diff_tables(&expected, &actual_tables(&env.sink()));
    assert!(
        diffs.is_empty(),
        "output differs from input after the crash:\n{}",
        diffs.join("\n")
    );
}

#[test]
fn a_commit_killed_after_its_webhook_is_notified_again_after_the_restart() {
    let (addr, got) = start_receiver(false);
    // idle_close off: hour 01 is the newest and stays open, so hour 00 of
    // t_click is the only partition ever committed.
    let mut env = Env::new(&format!(
        r#"
[partition_commit]
delay = "0s"
idle_close = "off"
webhook = {{ url = "http://{addr}/hook", timeout = "2s" }}
retry_backoff = "100ms"
"#
    ));
    env.add_file(0, 800);
    env.add_file(1, 800);
    let success = env.sink().join("t_click").join(HOUR0).join("_SUCCESS");

    let child = env.spawn_daemon(Some("after_partition_notify"));
    let (stderr, exited) = wait_or_kill(child, Duration::from_secs(60));
    assert!(
        exited && stderr.contains("crash point after_partition_notify reached"),
        "the daemon did not die at the crash point:\n{stderr}"
    );
    let first = delivered(&got);
    assert_eq!(first.len(), 1, "{first:#?}");
    assert_eq!(first[0]["partition"], HOUR0);
    assert!(success.exists(), "{stderr}");
    // Removed so that its presence at the end proves the commit ran again.
    std::fs::remove_file(&success).unwrap();

    let (child, rx) = spawn_with_log(env.cmd(&["run", "--config", env.config().to_str().unwrap()]));
    let mut log = String::new();
    wait_for(
        "the repeated notification of hour 00",
        &mut log,
        &rx,
        || delivered(&got).len() >= 2,
    );
    // A few more ticks: recorded this time, so not sent a third time.
    std::thread::sleep(Duration::from_millis(1500));
    let all = delivered(&got);
    assert_eq!(all.len(), 2, "{all:#?}\n{log}");
    // The same notification: same partition, rows and files, not late (the
    // first commit was never recorded); only committed_at may differ.
    let mut again = all[1].clone();
    again["committed_at"] = all[0]["committed_at"].clone();
    assert_eq!(again, all[0]);
    assert_eq!(
        all[1],
        expected_body(&env, "t_click", HOUR0, false, &all[1])
    );
    assert!(success.exists(), "_SUCCESS not written again:\n{log}");

    stop_and_check_exact(&env, child);
    let show = env.state_show();
    assert!(show.contains("1 committed (0 late re-commits)"), "{show}");
}

/// Killed while the checkpoint closes the files of a complete partition:
/// the files recorded open at the previous checkpoint are finished at the
/// restart, the partition is committed once, with the rows its files hold,
/// and every table is exact.
#[test]
fn a_kill_while_a_complete_partition_closes_its_files_loses_and_doubles_nothing() {
    let (addr, got) = start_receiver(false);
    let mut env = Env::new(&format!(
        r#"
[partition_commit]
delay = "0s"
idle_close = "off"
webhook = {{ url = "http://{addr}/hook", timeout = "2s" }}
retry_backoff = "100ms"
"#
    ));
    // Files close only when their partition is complete (or at the end).
    let cfg = std::fs::read_to_string(env.config()).unwrap();
    std::fs::write(
        env.config(),
        cfg.replace("max_file_age = \"1s\"", "max_file_age = \"1h\""),
    )
    .unwrap();
    env.add_file(0, 800);
    let success = env.sink().join("t_click").join(HOUR0).join("_SUCCESS");
    let child = env.spawn_daemon(Some("mid_partition_close"));
    // Hour 00 is the newest source partition and stays open; its output
    // files stay open over several checkpoints.
    std::thread::sleep(Duration::from_millis(1500));
    // Hour 01 lands: hour 00 is complete, and the checkpoint that closes
    // its files dies after the first.
    env.add_file(1, 800);
    let (stderr, exited) = wait_or_kill(child, Duration::from_secs(60));
    assert!(
        exited && stderr.contains("crash point mid_partition_close reached"),
        "the daemon did not die at the crash point:\n{stderr}"
    );
    assert!(!success.exists(), "committed before its files were visible");
    assert!(delivered(&got).is_empty());

    let (child, rx) = spawn_with_log(env.cmd(&["run", "--config", env.config().to_str().unwrap()]));
    let mut log = String::new();
    wait_for("the commit of hour 00", &mut log, &rx, || {
        !delivered(&got).is_empty()
    });
    std::thread::sleep(Duration::from_millis(1000));
    let all = delivered(&got);
    assert_eq!(all.len(), 1, "{all:#?}\n{log}");
    assert_eq!(
        all[0],
        expected_body(&env, "t_click", HOUR0, false, &all[0])
    );
    assert!(success.exists(), "{log}");
    stop_and_check_exact(&env, child);
}
