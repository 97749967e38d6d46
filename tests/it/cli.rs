//! `sluice check`: exit 0 on a good setup, 2 with file:line:col on a bad rule
//! or config.

use crate::support::*;

#[test]
fn check_accepts_the_fixture_and_refuses_a_bad_rule_with_its_position() {
    let mut env = Env::new("");
    env.add_file(0, 100);
    let cfg = env.config();
    let ok = env
        .cmd(&["check", "--config", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let stdout = String::from_utf8_lossy(&ok.stdout);
    assert!(stdout.contains("5 rules"), "{stdout}");
    assert!(
        stdout.contains("dimension dim_spmid") && stdout.contains("rows from spmid.csv"),
        "{stdout}"
    );

    let bad = env.path().join("rules/t_bad.sql");
    std::fs::write(&bad, "CREATE TABLE t_bad PARTITIONED BY (dt)\nAS SELECT event_id, dt\nFROM ods_events\nWHERE evnt_type = 'click';\n").unwrap();
    let out = env
        .cmd(&["check", "--config", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("t_bad.sql:4:7:"), "{err}");
    assert!(err.contains("evnt_type"), "{err}");

    std::fs::write(&bad, "CREATE TABLE t_bad\nAS SELECT a.event_id FROM ods_events a JOIN other b ON a.mid = b.mid;\n").unwrap();
    let out = env
        .cmd(&["check", "--config", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        err.contains("rules may only read the source table ods_events"),
        "{err}"
    );

    std::fs::write(
        &bad,
        "CREATE TABLE t_bad PARTITIONED BY (hour)\nAS SELECT event_id FROM ods_events;\n",
    )
    .unwrap();
    let out = env
        .cmd(&["check", "--config", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("t_bad.sql:1:36: partition column hour is not in the select list"),
        "{err}"
    );

    // A daemon refuses to start on the bad set too.
    let run = env.run_once();
    assert_eq!(run.status.code(), Some(2));
}

#[test]
fn check_refuses_a_bad_config_with_line_and_column() {
    let env = Env::new("[bogus]\nkey = 1\n");
    let out = env
        .cmd(&["check", "--config", env.config().to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("sluice.toml"), "{err}");
    let text = std::fs::read_to_string(env.config()).unwrap();
    let line = 1 + text.lines().position(|l| l == "[bogus]").unwrap();
    assert!(
        err.contains(&format!("line {line}")) && err.contains("bogus"),
        "{err}"
    );
}

#[test]
fn partition_values_cannot_leave_the_table_directory() {
    let mut env = Env::new("");
    env.add_file(0, 300);
    std::fs::write(
        env.path().join("rules/t_evil.sql"),
        "CREATE TABLE t_evil PARTITIONED BY (p)\nAS SELECT event_id, CASE WHEN event_type = 'click' THEN '../../escape' WHEN event_type = 'view' THEN 'a/b' WHEN event_type = 'play' THEN '' WHEN event_type = 'like' THEN '..' ELSE NULL END AS p FROM ods_events;\n",
    )
    .unwrap();
    let out = env.run_once();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut dirs: Vec<String> = std::fs::read_dir(env.sink().join("t_evil"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    dirs.sort();
    assert_eq!(
        dirs,
        vec![
            "p=%2E%2E",
            "p=..%2F..%2Fescape",
            "p=__HIVE_DEFAULT_PARTITION__",
            "p=a%2Fb"
        ]
    );
    // Nothing was written outside the sink's tables.
    let top: Vec<String> = std::fs::read_dir(env.sink())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    assert!(
        top.iter()
            .all(|t| t.starts_with("t_") || t == ".sluice-staging"),
        "{top:?}"
    );
    assert!(!env.path().join("escape").exists());
}

#[test]
fn output_files_roll_at_the_target_size() {
    let mut env = Env::new("");
    let cfg = std::fs::read_to_string(env.config()).unwrap();
    // One checkpoint for the whole run: rolling must come from the size,
    // not from checkpoints, however slow the machine is.
    std::fs::write(
        env.config(),
        cfg.replace(
            "row_group_rows = 1000",
            "row_group_rows = 1000\ntarget_file_size = \"64KiB\"",
        )
        .replace(
            "checkpoint_interval = \"300ms\"",
            "checkpoint_interval = \"1h\"",
        ),
    )
    .unwrap();
    // 200k rows: with each column's encoding chosen from the data, 100k
    // demo rows take under three 64 KiB files.
    env.add_file(0, 200_000);
    assert!(env.run_once().status.success());
    let files: Vec<String> = visible_files(&env.sink().join("t_all"), &[])
        .into_iter()
        .map(|(p, _)| p)
        .collect();
    assert!(
        files.len() >= 3,
        "expected t_all to roll into several files: {files:?}"
    );
    // A writer that rolls continues with the next sequence number.
    assert!(
        files.iter().any(|f| f.ends_with("-0001.zstd.parquet")),
        "no rolled file: {files:?}"
    );
    assert!(
        files.iter().all(|f| f.starts_with("hour=00/part-")),
        "{files:?}"
    );
    let diffs = diff_tables(
        &expected_tables(&env.ods(), &[]),
        &actual_tables(&env.sink()),
    );
    assert!(diffs.is_empty(), "{}", diffs.join("\n"));
}

#[test]
fn check_refuses_a_webhook_whose_ca_file_or_env_header_cannot_be_used() {
    let with_webhook = |webhook: &str| {
        let mut env = Env::new(&format!(
            "\n[partition_commit]\ntime_columns = {{ dt = \"%Y-%m-%d\", hour = \"%H\" }}\nwebhook = {{ {webhook} }}\n"
        ));
        env.add_file(0, 100);
        env
    };
    let check = |env: &Env, var: Option<&str>| {
        let mut cmd = env.cmd(&["check", "--config", env.config().to_str().unwrap()]);
        cmd.env_remove("SLUICE_CHECK_TOKEN");
        if let Some(v) = var {
            cmd.env("SLUICE_CHECK_TOKEN", v);
        }
        let out = cmd.output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let dir = tempfile::tempdir().unwrap();

    let missing = dir.path().join("missing.pem");
    let env = with_webhook(&format!(
        "url = \"https://127.0.0.1:9/hook\", ca_file = \"{}\"",
        missing.display()
    ));
    let (code, err) = check(&env, None);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("sluice.toml")
            && err.contains("partition_commit.webhook: ca_file")
            && err.contains("missing.pem"),
        "{err}"
    );

    let not_pem = dir.path().join("not.pem");
    std::fs::write(&not_pem, "just text, no certificate\n").unwrap();
    let env = with_webhook(&format!(
        "url = \"https://127.0.0.1:9/hook\", ca_file = \"{}\"",
        not_pem.display()
    ));
    let (code, err) = check(&env, None);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("sluice.toml") && err.contains("ca_file") && err.contains("not.pem"),
        "{err}"
    );

    let env = with_webhook(
        "url = \"http://127.0.0.1:9/hook\", headers = { Authorization = \"env:SLUICE_CHECK_TOKEN\" }",
    );
    let (code, err) = check(&env, None);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("sluice.toml")
            && err.contains("headers.Authorization")
            && err.contains("SLUICE_CHECK_TOKEN is not set"),
        "{err}"
    );
    // Set, the same config passes (and its value is not printed).
    let (code, err) = check(&env, Some("Bearer check-s3cret"));
    assert_eq!(code, Some(0), "{err}");
    assert!(!err.contains("check-s3cret"), "{err}");
}
