//! The analyst workflow through the real binary: `sluice rules test` over
//! the shipped `configs/` (what CI runs), a wrong expectation failing with a
//! readable diff, a bad test file located, a sample file shown table by
//! table, and `sluice rules explain`.

use crate::support::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn configs() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("configs")
}

fn sluice(args: &[&str], cwd: &Path) -> Output {
    Command::new(bin())
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap()
}

/// A copy of `configs/` (config, rules, rule tests) in a temporary directory.
fn copy_configs() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mut stack = vec![configs()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(configs()).unwrap();
            if p.is_dir() {
                std::fs::create_dir_all(dir.path().join(rel)).unwrap();
                stack.push(p);
            } else {
                std::fs::copy(&p, dir.path().join(rel)).unwrap();
            }
        }
    }
    dir
}

#[test]
fn rules_test_passes_on_the_shipped_configs() {
    let out = sluice(
        &["rules", "test", "--config", "configs/sluice.toml"],
        Path::new(env!("CARGO_MANIFEST_DIR")),
    );
    let t = output_text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(t.contains("ok    configs/rules/tests/clicks.toml: "), "{t}");
    assert!(
        t.contains("rule tests: 3 passed, 0 failed, 0 invalid"),
        "{t}"
    );
}

#[test]
fn rules_test_fails_with_a_readable_diff_on_a_wrong_expectation() {
    let dir = copy_configs();
    let test = dir.path().join("rules/tests/clicks.toml");
    let body = std::fs::read_to_string(&test).unwrap();
    // The analyst thinks iOS clicks keep their hour "00"; they were in hour "01".
    let wrong = body.replace(
        "[[expect.dwd_click_ios]]\nevent_id = \"e2\"\nhour = \"01\"",
        "[[expect.dwd_click_ios]]\nevent_id = \"e2\"\nhour = \"00\"",
    );
    assert_ne!(wrong, body);
    std::fs::write(&test, wrong).unwrap();
    let out = sluice(&["rules", "test", "--config", "sluice.toml"], dir.path());
    let t = output_text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let want = "FAIL  rules/tests/clicks.toml: clicks go to the table of their app, and every event to dwd_events_by_app\n      dwd_click_ios (compared on event_id, hour): expected 1 row(s), received 1; - missing, + unexpected:\n        - {event_id = \"e2\", hour = \"00\"}\n        + {event_id = \"e2\", hour = \"01\"}\n";
    assert!(stdout.contains(want), "{t}");
    assert!(
        stdout.contains("rule tests: 2 passed, 1 failed, 0 invalid"),
        "{t}"
    );
}

#[test]
fn a_bad_test_file_exits_2_with_its_position() {
    let dir = copy_configs();
    std::fs::write(
        dir.path().join("rules/tests/typo.toml"),
        "name = \"typo\"\n[[input]]\nevent_id = \"e1\"\nevnt_type = \"click\"\n[[expect.dwd_view]]\nevent_id = \"e1\"\n",
    )
    .unwrap();
    let out = sluice(&["rules", "test", "--config", "sluice.toml"], dir.path());
    let t = output_text(&out);
    assert_eq!(out.status.code(), Some(2), "{t}");
    assert!(
        t.contains("error: rules/tests/typo.toml:4:1: the source has no column evnt_type"),
        "{t}"
    );
    // A broken rule refuses the run as `sluice check` does.
    std::fs::remove_file(dir.path().join("rules/tests/typo.toml")).unwrap();
    std::fs::write(
        dir.path().join("rules/dwd_bad.sql"),
        "CREATE TABLE dwd_bad AS SELECT nope FROM ods_events;\n",
    )
    .unwrap();
    let out = sluice(&["rules", "test", "--config", "sluice.toml"], dir.path());
    let t = output_text(&out);
    assert_eq!(out.status.code(), Some(2), "{t}");
    assert!(
        t.contains("rules/dwd_bad.sql:1:32: No field named nope"),
        "{t}"
    );
}

#[test]
fn rules_test_shows_what_each_table_gets_from_a_sample_file() {
    let mut env = Env::new("");
    let sample = env.add_file(7, 300);
    let out = env
        .cmd(&[
            "rules",
            "test",
            "--config",
            env.config().to_str().unwrap(),
            "--input",
            sample.to_str().unwrap(),
            "--rule",
            "t_click",
            "--limit",
            "3",
        ])
        .output()
        .unwrap();
    let t = output_text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(t.contains("300 rows; source schema from the file"), "{t}");
    assert!(t.contains("== t_click (rules/t_click.sql): "), "{t}");
    assert!(t.contains(", showing 3"), "{t}");
    assert!(t.contains("| event_id "), "{t}");
    // The hour comes from the sample's path, like the daemon does.
    assert!(t.contains("| 07 "), "{t}");
    assert!(!t.contains("== t_all"), "{t}");
    assert!(
        t.contains("300 input rows: 300 matched by at least one rule, 0 matched by no rule"),
        "{t}"
    );
    // Nothing was written: no state, no sink.
    assert!(!env.path().join("state").exists());
    assert!(!env.sink().exists());
}

#[test]
fn rules_explain_prints_the_normalized_rule() {
    let out = sluice(
        &[
            "rules",
            "explain",
            "dwd_purchase",
            "--config",
            "configs/sluice.toml",
        ],
        Path::new(env!("CARGO_MANIFEST_DIR")),
    );
    let t = output_text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    for want in [
        "rule dwd_purchase (configs/rules/dwd_purchase.sql)",
        "WHERE ((ods_events.event_type = 'purchase') AND ods_events.user_id IS NOT NULL)",
        "partitioned by: dt",
        "  user_id: Int64\n",
        "  event_type = 'purchase'\n",
        "  user_id: Int64 nullable\n",
        "source schema: configs/rules/tests/_source.toml",
    ] {
        assert!(t.contains(want), "missing {want:?}:\n{t}");
    }
    let out = sluice(
        &[
            "rules",
            "explain",
            "nope",
            "--config",
            "configs/sluice.toml",
        ],
        Path::new(env!("CARGO_MANIFEST_DIR")),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(output_text(&out).contains("no rule writes table nope"));
}
