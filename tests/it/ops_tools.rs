//! Operator tools on a stopped daemon's state: `state rewind` re-emits the
//! rewound files exactly once more, and `state export` / `state import`
//! move a deployment without re-reading anything.

use crate::support::*;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

type Tables = BTreeMap<String, BTreeMap<String, u32>>;

fn ok(out: &std::process::Output) -> String {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    text
}

/// `a` + `times` x `b`, per table and event id.
fn add(a: &Tables, b: &Tables, times: u32) -> Tables {
    let mut out = a.clone();
    for (t, ids) in b {
        let e = out.entry(t.clone()).or_default();
        for (id, n) in ids {
            *e.entry(id.clone()).or_default() += n * times;
        }
    }
    out
}

#[test]
fn rewind_re_emits_the_files_after_the_time_exactly_once() {
    let mut env = Env::new("");
    let now = SystemTime::now();
    let hours_ago = |m: u64| now - Duration::from_secs(m * 60);
    // Batch A, 90 minutes old: leaves the seen-set after the first run
    // (older than watermark - lookback), so the rewind must pin it.
    let a: Vec<PathBuf> = (0..3).map(|h| env.add_file(h, 700)).collect();
    // Batch B, 20 minutes old: rewound.
    let b: Vec<PathBuf> = (3..6).map(|h| env.add_file(h, 900)).collect();
    for p in &a {
        set_mtime(p, hours_ago(90));
    }
    for p in &b {
        set_mtime(p, hours_ago(20));
    }
    ok(&env.run_once());
    let cfg = env.config();
    let cfg = cfg.to_str().unwrap();

    // Refused while the daemon holds the state.
    let (mut daemon, rx) = spawn_with_log(env.cmd(&["run", "--config", cfg]));
    let mut log = String::new();
    wait_log(&rx, &mut log, 60, "rules loaded");
    let out = env
        .cmd(&["state", "rewind", "--config", cfg, "--to", "1h", "--yes"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("stop the daemon first"), "{err}");
    // SAFETY: signalling our own child.
    unsafe {
        libc::kill(daemon.id() as i32, libc::SIGTERM);
    }
    assert!(daemon.wait().unwrap().success());

    // Without --yes and without a terminal: refused, nothing changed.
    let out = env
        .cmd(&["state", "rewind", "--config", cfg, "--to", "1h"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("pass --yes"));
    let b_rows = 3 * 900;
    assert!(
        text.contains(&format!(
            "3 file(s) are forgotten and read again from the start: {b_rows} row(s) already committed"
        )),
        "{text}"
    );
    assert!(text.contains("3 older file(s)"), "{text}");

    let text = ok(&env
        .cmd(&["state", "rewind", "--config", cfg, "--to", "1h", "--yes"])
        .output()
        .unwrap());
    assert!(text.contains("rewound: 3 file(s)"), "{text}");
    ok(&env.run_once());

    // Independently: A once, B twice (once more than before the rewind).
    let only_a = expected_tables(&env.ods(), &b);
    let only_b = expected_tables(&env.ods(), &a);
    let want = add(&only_a, &only_b, 2);
    assert_eq!(actual_tables(&env.sink()), want);
    // A third run reads nothing more.
    ok(&env.run_once());
    assert_eq!(actual_tables(&env.sink()), want);
}

#[test]
fn export_then_import_moves_the_state_and_nothing_is_read_again() {
    let mut env = Env::new("");
    for h in 0..3 {
        env.add_file(h, 800);
    }
    ok(&env.run_once());
    let cfg = env.config();
    let cfg = cfg.to_str().unwrap();
    let show = |config: &str| {
        let text = ok(&env
            .cmd(&["state", "show", "--config", config])
            .output()
            .unwrap());
        // The first line names the state dir.
        text.lines().skip(1).collect::<Vec<_>>().join("\n")
    };
    let before = show(cfg);
    let dump = env.path().join("state.jsonl");
    ok(&env
        .cmd(&[
            "state",
            "export",
            "--config",
            cfg,
            "--out",
            dump.to_str().unwrap(),
        ])
        .output()
        .unwrap());

    // A second deployment of the same source and sink, with a fresh state dir.
    let cfg2 = env.path().join("moved.toml");
    std::fs::write(
        &cfg2,
        std::fs::read_to_string(env.config())
            .unwrap()
            .replace("dir = \"state\"", "dir = \"state2\""),
    )
    .unwrap();
    let cfg2 = cfg2.to_str().unwrap();
    let import = |extra: &[&str]| {
        let mut args = vec!["state", "import", "--config", cfg2, dump.to_str().unwrap()];
        args.extend_from_slice(extra);
        env.cmd(&args).output().unwrap()
    };
    ok(&import(&[]));
    assert_eq!(show(cfg2), before);

    // Not into a state that holds something, unless --force.
    let out = import(&[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not empty"));
    ok(&import(&["--force"]));
    assert_eq!(show(cfg2), before);

    // A dump from a newer sluice is refused.
    let newer = env.path().join("newer.jsonl");
    std::fs::write(
        &newer,
        std::fs::read_to_string(&dump)
            .unwrap()
            .replacen("\"version\":1", "\"version\":2", 1),
    )
    .unwrap();
    let out = env
        .cmd(&[
            "state",
            "import",
            "--config",
            cfg2,
            newer.to_str().unwrap(),
            "--force",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("upgrade sluice"));

    let tables = actual_tables(&env.sink());
    let run = env
        .cmd(&["run", "--config", cfg2, "--once"])
        .output()
        .unwrap();
    let log = ok(&run);
    assert!(log.contains("files_taken=0"), "{log}");
    assert_eq!(actual_tables(&env.sink()), tables);
    assert!(diff_tables(&expected_tables(&env.ods(), &[]), &tables).is_empty());
}
