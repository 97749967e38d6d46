//! Reading trust: a later file with NULLs in a column the first file
//! declared NOT NULL lands whole.

use crate::support::*;
use arrow::array::{Array, ArrayRef, RecordBatch, StringArray};
use arrow::datatypes::{Field, Schema};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// `run --once`, killed (and the test failed) if it takes longer than `secs`.
fn run_once_within(env: &Env, secs: u64) -> std::process::Output {
    run_once_with(env, secs, &[])
}

/// The same, with extra environment variables.
fn run_once_with(env: &Env, secs: u64, vars: &[(&str, &str)]) -> std::process::Output {
    let child = env
        .cmd(&["run", "--config", env.config().to_str().unwrap(), "--once"])
        .envs(vars.iter().copied())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut d = Daemon::new(child);
    let t0 = Instant::now();
    while d.try_wait().unwrap().is_none() {
        assert!(
            t0.elapsed() < Duration::from_secs(secs),
            "run --once did not finish in {secs} s (hung)"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    d.into_child().wait_with_output().unwrap()
}

/// A file of the event schema whose `mid` and `platform` columns are
/// nullable and hold NULLs in every third row.
fn write_file_with_nulls(path: &Path, file_id: u64, rows: usize) {
    let b = sluice::demo::events(file_id, 0, rows, sluice::demo::DAY_START_MS + 3_600_000);
    let schema = b.schema();
    let mut fields = Vec::new();
    let mut cols: Vec<ArrayRef> = Vec::new();
    for (f, c) in schema.fields().iter().zip(b.columns()) {
        if f.name() == "mid" || f.name() == "platform" {
            let s = c.as_any().downcast_ref::<StringArray>().unwrap();
            let v: StringArray = (0..s.len())
                .map(|i| (i % 3 != 2).then(|| s.value(i)))
                .collect();
            fields.push(Field::new(f.name(), f.data_type().clone(), true));
            cols.push(Arc::new(v));
        } else {
            fields.push(f.as_ref().clone());
            cols.push(c.clone());
        }
    }
    let schema = Arc::new(Schema::new(fields));
    let batch = RecordBatch::try_new(schema.clone(), cols).unwrap();
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let props = parquet::file::properties::WriterProperties::builder()
        .set_max_row_group_row_count(Some(500))
        .build();
    let mut w = parquet::arrow::ArrowWriter::try_new(
        std::fs::File::create(path).unwrap(),
        schema,
        Some(props),
    )
    .unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
}

#[test]
fn nulls_in_a_column_the_first_file_declared_not_null_land() {
    let mut env = Env::new("");
    // The demo's files declare mid and platform NOT NULL.
    env.add_file(0, 1500);
    assert!(run_once_within(&env, 60).status.success());
    let late = sluice::demo::file_path(&env.ods(), "2026-11-20", 1, 900);
    write_file_with_nulls(&late, 900, 1500);
    let out = run_once_within(&env, 60);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("quarantined file"), "{stderr}");
    let diffs = diff_tables(
        &expected_tables(&env.ods(), &[]),
        &actual_tables(&env.sink()),
    );
    assert!(diffs.is_empty(), "{}", diffs.join("\n"));
}
