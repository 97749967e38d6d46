//! The exactly-once proof: the real binary is killed with SIGKILL at every
//! named phase of the checkpoint and at random moments, over one dataset
//! while new files keep arriving. After the last restart (`--once`), every
//! table must equal the rows computed independently from the input: none
//! lost, none duplicated, and no staged or partial file visible.

use crate::support::*;
use sluice::demo::Rng;
use std::time::{Duration, Instant};

/// Waits for the child to exit by itself up to `limit`, else SIGKILLs it.
/// Returns the child's stderr and whether it died by itself.
pub(crate) fn wait_or_kill(mut child: Daemon, limit: Duration) -> (String, bool) {
    let t0 = Instant::now();
    let mut exited = false;
    while t0.elapsed() < limit {
        if child.try_wait().unwrap().is_some() {
            exited = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    if !exited {
        child.kill().unwrap(); // SIGKILL on unix
    }
    let out = child.into_child().wait_with_output().unwrap();
    (String::from_utf8_lossy(&out.stderr).into_owned(), exited)
}

/// `SLUICE_CRASH_AT` for `phase`: which hit of the point to die at, drawn
/// from `rng` (None: no crash point, a kill at a random time).
pub(crate) fn crash_at(phase: Option<&str>, rng: &mut Rng) -> Option<String> {
    phase.map(|p| match p {
        "mid_read" => format!("{p}:{}", 1 + rng.below(40)),
        "during_recovery" | "mid_finish" => p.to_string(),
        "mid_checkpoint_flush" => format!("{p}:{}", 2 + rng.below(10)),
        _ => format!("{p}:{}", 1 + rng.below(2)),
    })
}

/// Every phase of the checkpoint was reached by a kill at least once.
pub(crate) fn assert_every_phase_hit(hits: &std::collections::BTreeMap<&str, u32>) {
    for p in [
        "mid_read",
        "before_prepare",
        "after_prepare",
        "mid_checkpoint_flush",
        "mid_finish",
        "mid_rename",
        "during_recovery",
    ] {
        assert!(
            hits.get(p).copied().unwrap_or(0) >= 1,
            "crash point {p} was never reached: {hits:?}"
        );
    }
}

#[test]
fn sigkill_at_every_checkpoint_phase_loses_and_duplicates_nothing() {
    let mut env = Env::new("");
    let mut rng = Rng::new(42);
    for h in 0..3 {
        env.add_file(h, 2500);
    }
    // (crash point, or None for a random-time SIGKILL). during_recovery follows
    // after_prepare, which leaves a prepared epoch for recovery to roll forward.
    // Output files stay open across checkpoints (300 ms apart here, files
    // close after 1 s), so kills land with files open over several
    // checkpoints; mid_checkpoint_flush dies between two files' flushes.
    // Any prepare records the files open at that checkpoint, so a start
    // after an after_prepare kill has open files to finish: mid_finish
    // dies there, and the start after it finishes them again.
    let plan: [Option<&str>; 12] = [
        Some("mid_read"),
        Some("after_prepare"),
        Some("during_recovery"),
        Some("before_prepare"),
        Some("mid_checkpoint_flush"),
        Some("after_prepare"),
        Some("mid_finish"),
        Some("mid_rename"),
        None,
        Some("mid_finish"),
        Some("after_prepare"),
        Some("during_recovery"),
    ];
    let mut hits: std::collections::BTreeMap<&str, u32> = Default::default();
    let mut random_kills = 0;
    // Starts that finished files left open by the kill before.
    let mut finished_open = 0;
    let iterations = 24;
    for i in 0..iterations {
        let phase = plan[i % plan.len()];
        env.add_file(rng.below(4) as u32, 800 + rng.below(2500) as usize);
        let at = crash_at(phase, &mut rng);
        let child = env.spawn_daemon(at.as_deref());
        // New files land while it runs.
        std::thread::sleep(Duration::from_millis(50 + rng.below(200)));
        env.add_file(rng.below(4) as u32, 500 + rng.below(1500) as usize);
        let limit = match phase {
            None => Duration::from_millis(100 + rng.below(1500)),
            Some(_) => Duration::from_secs(6),
        };
        let (stderr, exited) = wait_or_kill(child, limit);
        if stderr.contains("finished the output files open at the last checkpoint") {
            finished_open += 1;
        }
        if let Some(p) = phase {
            if stderr.contains(&format!("crash point {p} reached")) {
                *hits.entry(p).or_default() += 1;
            }
        } else if !exited {
            random_kills += 1;
        }
        assert!(
            !stderr.contains("panicked"),
            "iteration {i} panicked:\n{stderr}"
        );
    }
    let out = env.run_once();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "final --once failed:\n{stderr}");

    // The test must have exercised every phase (a crash point never reached proves nothing).
    assert_every_phase_hit(&hits);
    assert!(
        random_kills >= 1,
        "no random-time kill landed while running"
    );
    assert!(
        finished_open >= 3,
        "kills must leave files open across checkpoints for recovery to finish: {finished_open}"
    );

    let expected = expected_tables(&env.ods(), &[]);
    let actual = actual_tables(&env.sink());
    let diffs = diff_tables(&expected, &actual);
    assert!(
        diffs.is_empty(),
        "output differs from input after {iterations} crashes:\n{}",
        diffs.join("\n")
    );
    assert_eq!(staged_files(&env.sink()), 0, "staged files left behind");
    let total: usize = expected.values().map(|t| t.len()).sum();
    assert!(
        total > 10_000,
        "dataset too small to mean anything: {total}"
    );
    eprintln!(
        "crash test: {iterations} kills ({hits:?}, {random_kills} random, {finished_open} recoveries finished open files), {total} table rows verified"
    );
}

/// `sink.max_open_files = 2` (one file per writer): once newer partitions
/// arrive, cold files (idle since the last checkpoint, or while later
/// partitions took four rounds of writes) close mid-epoch. Killed at
/// random and at a checkpoint, restarted, the output is still exact.
#[test]
fn closing_files_past_max_open_files_under_sigkill_loses_and_duplicates_nothing() {
    let mut env = Env::new("");
    let cfg = std::fs::read_to_string(env.config()).unwrap();
    // Files would otherwise close by age after 1 s, idle or not.
    let cfg = cfg
        .replace(
            "row_group_rows = 1000",
            "row_group_rows = 1000\nmax_open_files = 2",
        )
        .replace("max_file_age = \"1s\"", "max_file_age = \"1h\"");
    std::fs::write(env.config(), cfg).unwrap();

    // A clean daemon run first. Hour 0, then hour 1 once hour 0's files
    // are idle, then more rows for hour 0: its files closed when hour 1
    // came, so the new rows go to new files. Without the bound every
    // table-hour would hold one file until the stop.
    let child = env.spawn_daemon(None);
    for h in [0, 1, 0] {
        env.add_file(h, 2000);
        std::thread::sleep(Duration::from_millis(1200));
    }
    // SAFETY: sending a signal to our own child.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let (stderr, exited) = wait_or_kill(child, Duration::from_secs(20));
    assert!(exited, "did not exit after SIGTERM:\n{stderr}");
    let files = visible_files(&env.sink(), &[]);
    let mut hours: Vec<String> = files
        .iter()
        .filter_map(|(rel, _)| rel.rsplit_once('/').map(|(dir, _)| dir.to_string()))
        .collect();
    hours.sort();
    hours.dedup();
    assert!(
        files.len() > hours.len(),
        "max_open_files closed nothing early: {} files in {} table-hours",
        files.len(),
        hours.len()
    );

    let mut rng = Rng::new(7);
    let plan = [
        None,
        Some("mid_checkpoint_flush"),
        None,
        Some("after_prepare"),
    ];
    for (i, phase) in plan.into_iter().enumerate() {
        env.add_file(rng.below(4) as u32, 800 + rng.below(1500) as usize);
        let child = env.spawn_daemon(crash_at(phase, &mut rng).as_deref());
        std::thread::sleep(Duration::from_millis(300));
        env.add_file(rng.below(4) as u32, 800 + rng.below(1500) as usize);
        let limit = match phase {
            None => Duration::from_millis(300 + rng.below(1200)),
            Some(_) => Duration::from_secs(6),
        };
        let (stderr, _) = wait_or_kill(child, limit);
        assert!(!stderr.contains("panicked"), "run {i} panicked:\n{stderr}");
    }
    let out = env.run_once();
    assert!(
        out.status.success(),
        "final --once failed:\n{}",
        output_text(&out)
    );

    let expected = expected_tables(&env.ods(), &[]);
    let diffs = diff_tables(&expected, &actual_tables(&env.sink()));
    assert!(diffs.is_empty(), "output differs:\n{}", diffs.join("\n"));
    assert_eq!(staged_files(&env.sink()), 0, "staged files left behind");
}

#[test]
fn sigterm_takes_a_final_checkpoint_and_exits_zero() {
    let mut env = Env::new("");
    for h in 0..2 {
        env.add_file(h, 3000);
    }
    let child = env.spawn_daemon(None);
    std::thread::sleep(Duration::from_millis(1500));
    // SAFETY: sending a signal to our own child.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let (stderr, exited) = wait_or_kill(child, Duration::from_secs(20));
    assert!(exited, "did not exit after SIGTERM:\n{stderr}");
    assert!(stderr.contains("stopped cleanly"), "{stderr}");
    let expected = expected_tables(&env.ods(), &[]);
    assert!(diff_tables(&expected, &actual_tables(&env.sink())).is_empty());
    // Nothing is re-read on the next start.
    let out = env.run_once();
    assert!(String::from_utf8_lossy(&out.stderr).contains("files_taken=0"));
}

/// The binary these tests kill has crash points (the `crash-points`
/// feature, turned on for test builds): a phase it does not know is refused
/// with exit 70 before anything runs. Without the feature the variable
/// would be ignored and every crash test above would pass without crashing.
#[test]
fn the_spawned_binary_has_crash_points() {
    let out = std::process::Command::new(bin())
        .arg("functions")
        .env("SLUICE_CRASH_AT", "no_such_phase")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(70), "{err}");
    assert!(err.contains("no_such_phase is not a crash point"), "{err}");
}

/// `cargo build` (no dev-dependencies) resolves sluice without the
/// `crash-points` feature, and `cargo test` with it: `cargo tree` shows the
/// features each resolution turns on.
#[test]
fn only_test_builds_turn_on_crash_points() {
    let features = |edges: &str| {
        let out = std::process::Command::new(option_env!("CARGO").unwrap_or("cargo"))
            .args([
                "tree",
                "--offline",
                "--locked",
                "-p",
                "sluice",
                "--depth",
                "0",
            ])
            .args(["-e", edges, "-f", "{p} [{f}]"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success() && text.starts_with("sluice v"),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        text
    };
    let plain = features("normal,build");
    assert!(!plain.contains("crash-points"), "{plain}");
    let test = features("normal,build,dev");
    assert!(test.contains("crash-points"), "{test}");
}
