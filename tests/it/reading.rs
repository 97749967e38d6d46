//! Reading trust: a crafted footer that used to panic a reader is
//! quarantined with its reason and never hangs a run or a restart; a later
//! file with NULLs in a column the first file declared NOT NULL lands whole.

use crate::support::*;
use arrow::array::{Array, ArrayRef, RecordBatch, StringArray};
use arrow::datatypes::{Field, Schema};
use bytes::Bytes;
use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader, ParquetMetaDataWriter};
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

/// Writes `good` to `out` with its footer rewritten by `craft`.
fn rewrite_footer(good: &Path, out: &Path, craft: impl Fn(ParquetMetaData) -> ParquetMetaData) {
    let bytes = Bytes::from(std::fs::read(good).unwrap());
    let n = bytes.len();
    let meta_len = u32::from_le_bytes(bytes[n - 8..n - 4].try_into().unwrap()) as usize;
    let md = ParquetMetaDataReader::new()
        .parse_and_finish(&bytes)
        .unwrap();
    let crafted = craft(md);
    let mut buf = bytes[..n - 8 - meta_len].to_vec();
    ParquetMetaDataWriter::new(&mut buf, &crafted)
        .finish()
        .unwrap();
    std::fs::write(out, buf).unwrap();
}

/// The first column chunk of the first row group starts at a negative
/// offset (data and dictionary page): `byte_range()` asserts on it.
fn negative_offset(md: ParquetMetaData) -> ParquetMetaData {
    let mut row_groups: Vec<_> = md.row_groups().to_vec();
    let rg = row_groups[0].clone();
    let mut cols: Vec<_> = rg.columns().to_vec();
    cols[0] = cols[0]
        .clone()
        .into_builder()
        .set_data_page_offset(-4096)
        .set_dictionary_page_offset(Some(-4096))
        .build()
        .unwrap();
    row_groups[0] = rg.into_builder().set_column_metadata(cols).build().unwrap();
    md.into_builder().set_row_groups(row_groups).build()
}

/// The first row group claims 300 more rows than its pages hold, and the
/// file's row count agrees with that claim.
fn inflated_rows(md: ParquetMetaData) -> ParquetMetaData {
    let mut row_groups: Vec<_> = md.row_groups().to_vec();
    let n = row_groups[0].num_rows();
    row_groups[0] = row_groups[0]
        .clone()
        .into_builder()
        .set_num_rows(n + 300)
        .build()
        .unwrap();
    let fm = md.file_metadata().clone();
    let fm = parquet::file::metadata::FileMetaData::new(
        fm.version(),
        fm.num_rows() + 300,
        fm.created_by().map(str::to_string),
        fm.key_value_metadata().cloned(),
        fm.schema_descr_ptr(),
        fm.column_orders().cloned(),
    );
    parquet::file::metadata::ParquetMetaDataBuilder::new(fm)
        .set_row_groups(row_groups)
        .build()
}

#[test]
fn a_crafted_footer_is_quarantined_and_never_hangs() {
    let mut env = Env::new("");
    env.add_file(0, 2000);
    let source = env.add_file(1, 2000);
    env.add_file(2, 2000);
    let dir = env.ods().join("dt=2026-11-20/hour=03");
    std::fs::create_dir_all(&dir).unwrap();
    let crafted = dir.join("crafted.parquet");
    rewrite_footer(&source, &crafted, negative_offset);
    let inflated = dir.join("inflated.parquet");
    rewrite_footer(&source, &inflated, inflated_rows);

    let out = run_once_within(&env, 90);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("files_quarantined=2"), "{stderr}");
    let diffs = diff_tables(
        &expected_tables(&env.ods(), &[crafted.clone(), inflated.clone()]),
        &actual_tables(&env.sink()),
    );
    assert!(diffs.is_empty(), "{}", diffs.join("\n"));
    let show = env.state_show();
    assert!(
        show.contains("quarantined dt=2026-11-20/hour=03/crafted.parquet"),
        "{show}"
    );
    assert!(
        show.contains("crafted.parquet: bad footer: row group 0 column 0: negative offset"),
        "{show}"
    );
    assert!(
        show.contains("inflated.parquet: bad footer: row group 0 column 0 holds 500 values where the row group says 800 rows"),
        "{show}"
    );

    // A restart neither hangs nor reads anything twice.
    let before = actual_tables(&env.sink());
    let again = run_once_within(&env, 60);
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert_eq!(actual_tables(&env.sink()), before);
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

#[test]
fn a_panicking_reader_quarantines_its_file_and_hangs_nothing() {
    let mut env = Env::new("");
    let cfg = std::fs::read_to_string(env.config()).unwrap();
    // One reader: the panic hits the first split of the first file.
    std::fs::write(env.config(), cfg.replace("readers = 2", "readers = 1")).unwrap();
    let first = env.add_file(0, 2000);
    env.add_file(1, 2000);
    env.add_file(2, 2000);
    let out = run_once_with(&env, 90, &[("SLUICE_PANIC_AT", "mid_read")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("files_quarantined=1"), "{stderr}");
    let show = env.state_show();
    assert!(
        show.contains("hour=00/part-000000.parquet: split 0 failed at row 0: reader panicked: injected panic at crash point mid_read"),
        "{show}"
    );
    // Every row of the other files once; of the quarantined one, what its
    // other splits read before the quarantine, once.
    let actual = actual_tables(&env.sink());
    let good = diff_tables(
        &expected_tables(&env.ods(), std::slice::from_ref(&first)),
        &actual,
    );
    assert!(
        good.iter().all(|d| d.contains(" 0 missing, 0 duplicated,")),
        "{}",
        good.join("\n")
    );
    let all = diff_tables(&expected_tables(&env.ods(), &[]), &actual);
    assert!(
        all.iter()
            .all(|d| d.contains(" 0 duplicated, 0 unexpected")),
        "{}",
        all.join("\n")
    );
    // A restart (without the injected panic) neither hangs nor adds rows.
    let again = run_once_within(&env, 60);
    assert!(again.status.success());
    assert_eq!(actual_tables(&env.sink()), actual);
}
