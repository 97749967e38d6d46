//! Bad input: corrupt, truncated and wrong-schema files are quarantined with
//! their reason while good files still land; a file changed after it was
//! taken is reported, not re-read.

use crate::support::*;

#[test]
fn bad_files_are_quarantined_and_good_files_land() {
    let mut env = Env::new("");
    env.add_file(0, 2000);
    env.add_file(1, 2000);
    let ods = env.ods();
    let dir = ods.join("dt=2026-11-20/hour=02");
    std::fs::create_dir_all(&dir).unwrap();
    // Not parquet at all.
    let corrupt = dir.join("corrupt.parquet");
    std::fs::write(&corrupt, b"this is not a parquet file").unwrap();
    // A real file cut in half.
    let good = env.add_file(2, 2000);
    let truncated = dir.join("truncated.parquet");
    let bytes = std::fs::read(&good).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    // A parquet file with another schema.
    let wrong = dir.join("wrong_schema.parquet");
    {
        use arrow::array::{Int32Array, RecordBatch};
        use arrow::datatypes::{DataType, Field, Schema};
        use std::sync::Arc;
        let schema = Arc::new(Schema::new(vec![Field::new(
            "event_id",
            DataType::Int32,
            false,
        )]));
        let b = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(Int32Array::from(vec![1, 2, 3]))],
        )
        .unwrap();
        let mut w = parquet::arrow::ArrowWriter::try_new(
            std::fs::File::create(&wrong).unwrap(),
            schema,
            None,
        )
        .unwrap();
        w.write(&b).unwrap();
        w.close().unwrap();
    }
    let out = env.run_once();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("files_quarantined=3"), "{stderr}");

    let expected = expected_tables(
        &env.ods(),
        &[corrupt.clone(), truncated.clone(), wrong.clone()],
    );
    let diffs = diff_tables(&expected, &actual_tables(&env.sink()));
    assert!(diffs.is_empty(), "{}", diffs.join("\n"));

    let show = env.state_show();
    assert!(
        show.contains("quarantined dt=2026-11-20/hour=02/corrupt.parquet"),
        "{show}"
    );
    assert!(
        show.contains(
            "wrong_schema.parquet: schema mismatch: column event_id has type Int32 in this file where the source schema has Utf8"
        ),
        "{show}"
    );
    assert!(show.contains("truncated.parquet"), "{show}");
    assert!(show.contains("table schemas: "), "{show}");
    assert!(show.contains("  t_all: event_id Utf8,"), "{show}");
}

#[test]
fn a_file_changed_after_it_was_taken_is_reported_not_reread() {
    let mut env = Env::new("");
    let f = env.add_file(0, 1000);
    assert!(env.run_once().status.success());
    let before = actual_tables(&env.sink());
    // The producer rewrites the file in place.
    sluice::demo::write_event_file(&f, 77, 1500, 500, sluice::demo::DAY_START_MS).unwrap();
    let out = env.run_once();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("file changed after it was taken"),
        "{stderr}"
    );
    assert_eq!(
        actual_tables(&env.sink()),
        before,
        "the changed file was re-read"
    );
    // Reported once, not at every scan.
    let again = env.run_once();
    assert!(!String::from_utf8_lossy(&again.stderr).contains("file changed after it was taken"));
}

#[test]
fn a_fixed_file_is_read_after_quarantine_retry() {
    let mut env = Env::new("");
    env.add_file(0, 800);
    let bad = env.ods().join("dt=2026-11-20/hour=01/late.parquet");
    std::fs::create_dir_all(bad.parent().unwrap()).unwrap();
    std::fs::write(&bad, b"garbage").unwrap();
    assert!(env.run_once().status.success());
    let cfg = env.config();
    // The producer repairs the file; retry releases it.
    sluice::demo::write_event_file(&bad, 99, 700, 500, sluice::demo::DAY_START_MS + 3_600_000)
        .unwrap();
    let out = env
        .cmd(&[
            "state",
            "quarantine",
            "retry",
            "--config",
            cfg.to_str().unwrap(),
            "--all",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("changed since it was quarantined"),
        "{stdout}"
    );
    assert!(stdout.contains("1 file(s) released"), "{stdout}");
    assert!(env.run_once().status.success());
    let diffs = diff_tables(
        &expected_tables(&env.ods(), &[]),
        &actual_tables(&env.sink()),
    );
    assert!(diffs.is_empty(), "{}", diffs.join("\n"));
    let show = env
        .cmd(&["state", "show", "--config", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&show.stdout).contains("quarantined dt="));
    // Naming a file that is not quarantined is refused.
    let again = env
        .cmd(&[
            "state",
            "quarantine",
            "retry",
            "--config",
            cfg.to_str().unwrap(),
            "dt=2026-11-20/hour=01/late.parquet",
        ])
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(2));
}
