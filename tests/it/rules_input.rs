//! Rules meeting what analysts really write and when: `sluice check` before
//! any source file exists (the declared schema rule tests use), multi-byte
//! text in a rule through `check`, `run` and a live reload, and table names
//! that readers of the output would hide.

use crate::support::*;
use std::path::Path;
use std::process::Output;

fn check(env: &Env) -> Output {
    env.cmd(&["check", "--config", env.config().to_str().unwrap()])
        .output()
        .unwrap()
}

#[test]
fn check_needs_no_source_file_when_the_schema_is_declared() {
    let env = Env::new("");
    // No state, no source file, no declaration: refused, saying what to add.
    let out = check(&env);
    let t = output_text(&out);
    assert_eq!(out.status.code(), Some(2), "{t}");
    assert!(
        t.contains("_source.toml; declare the source columns there"),
        "{t}"
    );

    // The declaration rule tests use, listing a dimension column as they may.
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/rules/tests/_source.toml");
    let declared = std::fs::read_to_string(shipped).unwrap() + "dept = \"string\"\n";
    std::fs::create_dir_all(env.path().join("rules/tests")).unwrap();
    std::fs::write(env.path().join("rules/tests/_source.toml"), declared).unwrap();
    let out = check(&env);
    let t = output_text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(t.contains("source schema: rules/tests/_source.toml"), "{t}");
    assert!(t.contains("note: no readable source file under"), "{t}");
    assert!(t.contains("5 rules"), "{t}");

    // A rule naming an unknown column is still refused, located.
    std::fs::write(
        env.path().join("rules/t_bad.sql"),
        "CREATE TABLE t_bad PARTITIONED BY (dt)\nAS SELECT event_id, dt\nFROM ods_events\nWHERE evnt_type = 'click';\n",
    )
    .unwrap();
    let out = check(&env);
    let t = output_text(&out);
    assert_eq!(out.status.code(), Some(2), "{t}");
    assert!(t.contains("rules/t_bad.sql:4:7: "), "{t}");
    assert!(t.contains("evnt_type"), "{t}");

    // So is a table readers of the output would never see.
    std::fs::write(
        env.path().join("rules/t_bad.sql"),
        "-- 错误表\nCREATE TABLE _errors AS SELECT event_id FROM ods_events;\n",
    )
    .unwrap();
    let out = check(&env);
    let t = output_text(&out);
    assert_eq!(out.status.code(), Some(2), "{t}");
    assert!(
        t.contains("rules/t_bad.sql:2:14: table name _errors starts with `_`"),
        "{t}"
    );
}

/// The table's user_id was first written as a string; the new rule, with a
/// Chinese comment right before the column, would make it a BIGINT.
const RECORDED: &str = "CREATE TABLE t_user\nAS SELECT event_id, CAST(user_id AS VARCHAR) AS user_id FROM ods_events;\n";
const CHANGED: &str =
    "CREATE TABLE t_user\nAS SELECT event_id, -- 用户编号\n  user_id FROM ods_events;\n";
const REFUSAL: &str =
    "t_user.sql:3:3: column user_id of table t_user would change type from Utf8View to Int64";

#[test]
fn multi_byte_text_before_a_changed_column_is_refused_not_a_crash() {
    let mut env = Env::new("");
    env.add_file(0, 200);
    let rule = env.path().join("rules/t_user.sql");
    std::fs::write(&rule, RECORDED).unwrap();
    let run = env.run_once();
    assert!(run.status.success(), "{}", output_text(&run));

    std::fs::write(&rule, CHANGED).unwrap();
    let out = check(&env);
    let t = output_text(&out);
    assert_eq!(out.status.code(), Some(2), "{t}");
    assert!(t.contains(REFUSAL), "{t}");
    let out = env.run_once();
    let t = output_text(&out);
    assert_eq!(out.status.code(), Some(2), "{t}");
    assert!(t.contains(REFUSAL), "{t}");
}

#[test]
fn a_reload_with_multi_byte_text_is_refused_and_the_daemon_keeps_running() {
    let mut env = Env::new("");
    env.add_file(0, 200);
    let rule = env.path().join("rules/t_user.sql");
    std::fs::write(&rule, RECORDED).unwrap();
    let (mut child, rx, mut log) = daemon_past_first_file(&env);
    // Renamed into place: the daemon never reads a half-written rule.
    let new = env.path().join("t_user.sql.new");
    std::fs::write(&new, CHANGED).unwrap();
    std::fs::rename(&new, &rule).unwrap();
    // SAFETY: signalling our own child.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGHUP);
    }
    wait_log(&rx, &mut log, 30, REFUSAL);
    wait_log(&rx, &mut log, 30, "new rule set refused");
    assert!(
        child.try_wait().unwrap().is_none(),
        "the daemon stopped:\n{log}"
    );
    // SAFETY: signalling our own child.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    assert!(child.wait().unwrap().success(), "{log}");
}
