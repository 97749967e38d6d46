//! Discovery under odd conditions, with the real binary: files stamped in
//! the future or older than the lookback window, listing entries that
//! cannot be listed, a source root that cannot be listed, names with any
//! character, and symlinks.

use crate::ops::{get, metric, wait_metric};
use crate::support::*;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

/// Writes an event file at `rel` under the source root (ids from `id`).
fn write_at(env: &Env, rel: &str, id: u64, rows: usize) -> PathBuf {
    let p = env.ods().join(rel);
    sluice::demo::write_event_file(&p, id, rows, 500, sluice::demo::DAY_START_MS).unwrap();
    p
}

fn edit_config(env: &Env, from: &str, to: &str) {
    let cfg = std::fs::read_to_string(env.config()).unwrap();
    assert!(cfg.contains(from), "{from:?} not in the config");
    std::fs::write(env.config(), cfg.replacen(from, to, 1)).unwrap();
}

fn assert_exact(
    env: &Env,
    expected: &std::collections::BTreeMap<String, std::collections::BTreeMap<String, u32>>,
) {
    let d = diff_tables(expected, &actual_tables(&env.sink()));
    assert!(d.is_empty(), "{d:#?}");
}

#[test]
fn a_future_mtime_hides_no_file_and_a_too_old_file_is_counted() {
    // Marker mode takes a file however it is stamped.
    let env = Env::new("").with_http();
    edit_config(&env, "visibility = \"settled\"", "visibility = \"marker\"");
    let day = Duration::from_secs(86_400);
    let future = write_at(&env, "dt=2026-11-20/hour=01/future.parquet", 100, 300);
    set_mtime(&future, SystemTime::now() + day);
    std::fs::write(env.ods().join("dt=2026-11-20/hour=01/_SUCCESS"), "").unwrap();
    let expected = expected_tables(&env.ods(), &[]);

    let (daemon, rx) =
        spawn_with_log(env.cmd(&["run", "--config", env.config().to_str().unwrap()]));
    let mut log = String::new();
    let addr = wait_http_addr(&rx, &mut log);
    wait_metric(&addr, "sluice_files_done_total", 1);

    // An ordinary file after the future one is read...
    write_at(&env, "dt=2026-11-20/hour=02/next.parquet", 101, 300);
    std::fs::write(env.ods().join("dt=2026-11-20/hour=02/_SUCCESS"), "").unwrap();
    let expected_now = expected_tables(&env.ods(), &[]);
    // ...a file three hours old (lookback 1h) is skipped, and says so.
    let old = write_at(&env, "dt=2026-11-20/hour=03/old.parquet", 102, 300);
    set_mtime(&old, SystemTime::now() - Duration::from_secs(3 * 3600));
    std::fs::write(env.ods().join("dt=2026-11-20/hour=03/_SUCCESS"), "").unwrap();

    let body = wait_metric(&addr, "sluice_files_skipped_too_old_total", 1);
    assert_eq!(metric(&body, "sluice_files_skipped_too_old_total"), 1);
    wait_metric(&addr, "sluice_files_done_total", 2);
    wait_log(
        &rx,
        &mut log,
        30,
        "file skipped: older than watermark - lookback",
    );
    assert!(log.contains("hour=03/old.parquet"), "{log}");
    let cfg = env.config();
    let out = env
        .cmd(&["status", "--config", cfg.to_str().unwrap(), "--addr", &addr])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("1 file(s) skipped as older than watermark - lookback (recent: dt=2026-11-20/hour=03/old.parquet)"),
        "{text}"
    );
    // Ten scans later it is still counted once.
    std::thread::sleep(Duration::from_secs(1));
    let body = get(&addr, "/metrics").1;
    assert_eq!(metric(&body, "sluice_files_skipped_too_old_total"), 1);
    assert_ne!(expected, expected_now);
    super::ops::wait_all_visible(&addr);
    assert_exact(&env, &expected_now);

    // Stopped: `sluice status` lists the source and says the same.
    drop(daemon);
    let out = env
        .cmd(&["status", "--config", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("no daemon answered"), "{text}");
    assert!(
        text.contains("1 file(s) skipped as older than watermark - lookback (recent: dt=2026-11-20/hour=03/old.parquet)"),
        "{text}"
    );
}

#[test]
fn bad_entries_are_skipped_one_by_one_and_an_unlistable_root_fails_the_run() {
    use std::os::unix::ffi::OsStrExt;
    let mut env = Env::new("");
    for h in 0..4 {
        env.add_file(h, 400);
    }
    let expected = expected_tables(&env.ods(), &[]);
    let ods = env.ods();
    std::fs::create_dir_all(ods.join("loop")).unwrap();
    std::os::unix::fs::symlink(ods.join("loop"), ods.join("loop/self")).unwrap();
    std::fs::write(ods.join("dt=2026-11-20/bad\nname.parquet"), "x").unwrap();
    std::fs::write(
        ods.join("dt=2026-11-20")
            .join(std::ffi::OsStr::from_bytes(b"bad\xffname.parquet")),
        "x",
    )
    .unwrap();

    let out = env.run_once();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    assert_eq!(
        log.matches("source entry skipped: it cannot be listed")
            .count(),
        3,
        "{log}"
    );
    assert_exact(&env, &expected);

    // A root that cannot be listed is a failed run, not an empty source.
    std::fs::rename(&ods, env.path().join("ods.away")).unwrap();
    std::fs::write(&ods, "not a folder").unwrap();
    let out = env.run_once();
    let log = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{log}");
    assert!(log.contains("cannot list the source root"), "{log}");
}

#[test]
fn healthz_fails_after_repeated_failed_listings_and_recovers() {
    let mut env = Env::new("").with_http();
    env.add_file(0, 200);
    let (_d, rx) = spawn_with_log(env.cmd(&["run", "--config", env.config().to_str().unwrap()]));
    let mut log = String::new();
    let addr = wait_http_addr(&rx, &mut log);
    wait_metric(&addr, "sluice_files_done_total", 1);
    assert_eq!(get(&addr, "/healthz").0, 200);
    let away = env.path().join("ods.away");
    std::fs::rename(env.ods(), &away).unwrap();
    let t0 = Instant::now();
    let body = loop {
        let (code, body) = get(&addr, "/healthz");
        if code == 503 {
            break body;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "healthz stayed {code}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        body.contains("listing the source failed") && body.contains("in a row"),
        "{body}"
    );
    assert!(metric(&get(&addr, "/metrics").1, "sluice_listing_failures_total") >= 3);
    std::fs::rename(&away, env.ods()).unwrap();
    let t0 = Instant::now();
    while get(&addr, "/healthz").0 != 200 {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "healthz never recovered"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn names_with_any_character_and_hive_escaped_folders_are_read() {
    let env = Env::new("");
    let mut names = vec!["日志-中文.parquet".to_string()];
    for c in "%#[]{}~^|<>\"*?".chars() {
        names.push(format!("a{c}b.parquet"));
    }
    for (i, n) in names.iter().enumerate() {
        write_at(
            &env,
            &format!("dt=2026-11-20/hour=05/{n}"),
            200 + i as u64,
            120,
        );
    }
    write_at(&env, "dt=2026-11-20/hour=07%3A00/part.parquet", 300, 120);
    write_at(&env, "dt=2026-11-20/小时=1/part.parquet", 301, 120);
    let expected = expected_tables(&env.ods(), &[]);

    let out = env.run_once();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    assert!(
        log.contains("files_taken=17 files_done=17 files_quarantined=0"),
        "{log}"
    );
    assert_exact(&env, &expected);
    // The escaped value reads 07:00 and is escaped again in the output.
    assert!(env.sink().join("t_all/hour=07%3A00").is_dir());
    assert!(env.sink().join("t_all/hour=05").is_dir());
    let show = env.state_show();
    let done = format!("{{\"done\": {}}}", names.len() + 2);
    assert!(show.contains(&done), "{show}");
}

#[test]
fn symlinks_leave_no_file_read_twice_and_none_read_from_outside() {
    let mut env = Env::new("");
    env.add_file(0, 300);
    env.add_file(1, 300);
    let expected = expected_tables(&env.ods(), &[]);
    let outside = env.path().join("outside");
    sluice::demo::write_event_file(
        &outside.join("hour=09/x.parquet"),
        400,
        300,
        500,
        sluice::demo::DAY_START_MS,
    )
    .unwrap();
    let ods = env.ods();
    std::os::unix::fs::symlink(outside.join("hour=09"), ods.join("dt=2026-11-20/hour=09")).unwrap();
    std::os::unix::fs::symlink(ods.join("dt=2026-11-20"), ods.join("dt=2026-11-21")).unwrap();

    let out = env.run_once();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    assert!(
        log.contains("a symlink leads out of the source root"),
        "{log}"
    );
    assert!(log.contains("dt=2026-11-21/hour=00/"), "{log}");
    assert_exact(&env, &expected);

    // Followed: the outside file is read, and each file once.
    edit_config(
        &env,
        "scan_interval",
        "follow_symlinks = true\nscan_interval",
    );
    let mut with_outside = expected.clone();
    for (t, ids) in expected_tables(&outside, &[]) {
        with_outside.entry(t).or_default().extend(ids);
    }
    let out = env.run_once();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    assert_exact(&env, &with_outside);
}

#[test]
fn a_sink_reached_through_a_symlink_inside_the_source_is_refused() {
    let mut env = Env::new("");
    env.add_file(0, 100);
    std::fs::create_dir_all(env.ods().join("out")).unwrap();
    std::os::unix::fs::symlink(env.ods().join("out"), env.sink()).unwrap();
    let out = env.run_once();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("sink.root") && err.contains("read its own output"),
        "{err}"
    );
    assert!(
        std::fs::read_dir(env.ods().join("out"))
            .unwrap()
            .next()
            .is_none()
    );
}
