//! Hive partition pruning with the real binary: after the first (full)
//! listing, scans list only recent day folders; a file landing in an old
//! folder is found by the reconcile listing, taken once and counted late.

use crate::ops::{get, metric, wait_metric};
use crate::support::*;
use std::time::Duration;

#[test]
fn pruned_scans_skip_old_day_folders_and_the_reconcile_takes_a_late_file() {
    let mut env = Env::new("").with_http();
    let cfg = std::fs::read_to_string(env.config()).unwrap();
    std::fs::write(
        env.config(),
        cfg.replacen(
            "scan_interval = \"100ms\"",
            "scan_interval = \"100ms\"\npartition_pruning = \"hive\"\nreconcile_interval = \"4s\"",
            1,
        ),
    )
    .unwrap();
    let (recent, recent_ms) = yesterday();
    const DAY_MS: i64 = 86_400_000;
    let old_ms = recent_ms - 10 * DAY_MS;
    let at = std::time::UNIX_EPOCH + Duration::from_millis(old_ms as u64);
    let old = humantime::format_rfc3339_seconds(at).to_string()[..10].to_string();
    env.add_file_on((&recent, recent_ms), 0, 400);
    env.add_file_on((&old, old_ms), 0, 400);

    let (_daemon, rx) =
        spawn_with_log(env.cmd(&["run", "--config", env.config().to_str().unwrap()]));
    let mut log = String::new();
    let addr = wait_http_addr(&rx, &mut log);
    wait_metric(&addr, "sluice_files_done_total", 2);
    wait_metric(&addr, "sluice_source_scans_total{kind=\"pruned\"}", 3);

    // A late file in the old folder and a new one in the recent folder.
    env.add_file_on((&old, old_ms), 1, 300);
    env.add_file_on((&recent, recent_ms), 1, 300);
    let body = wait_metric(&addr, "sluice_files_late_total", 1);
    assert!(
        metric(&body, "sluice_source_scans_total{kind=\"full\"}") >= 2,
        "{body}"
    );
    assert!(
        metric(&body, "sluice_source_requests_total{op=\"list\"}") > 0,
        "{body}"
    );
    wait_metric(&addr, "sluice_files_done_total", 4);
    wait_log(&rx, &mut log, 30, "late file");
    assert!(log.contains(&format!("dt={old}/hour=01/")), "{log}");
    crate::ops::wait_all_visible(&addr);
    let d = diff_tables(
        &expected_tables(&env.ods(), &[]),
        &actual_tables(&env.sink()),
    );
    assert!(d.is_empty(), "{d:#?}");
    // Counted once, whatever the scans after.
    std::thread::sleep(Duration::from_secs(5));
    let body = get(&addr, "/metrics").1;
    assert_eq!(metric(&body, "sluice_files_late_total"), 1, "{body}");
}
