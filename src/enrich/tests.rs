//! Loading, fallback and join tests over real files in a temp directory.

use super::*;
use crate::config::{DimColumn, DimFormat, DimLayout, OnDuplicate};
use arrow::array::{Array, AsArray, Int64Array, StringArray};
use arrow::datatypes::{DataType, Field};
use std::path::Path;
use std::time::{Duration, Instant};

fn spec(path: &Path, layout: DimLayout) -> DimensionSpec {
    DimensionSpec {
        stores: Default::default(),
        name: "dim_spmid".into(),
        path: crate::store::Location::Local(path.to_path_buf()),
        format: DimFormat::Auto,
        layout,
        key: "spmid".into(),
        source_key: "spmid".into(),
        columns: vec![
            DimColumn {
                from: "dept".into(),
                to: "dept".into(),
                default: None,
            },
            DimColumn {
                from: "owner".into(),
                to: "dim_owner".into(),
                default: Some("nobody".into()),
            },
        ],
        on_duplicate: OnDuplicate::Error,
        reload_interval: Duration::from_secs(60),
        poll_interval: Duration::from_millis(50),
        min_rows: 0,
        min_ratio: 0.0,
        persist: true,
    }
}

fn write_csv(path: &Path, rows: &[(&str, &str, &str)]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut s = String::from("spmid,dept,owner,extra\n");
    for (k, d, o) in rows {
        s.push_str(&format!("{k},{d},{o},x\n"));
    }
    std::fs::write(path, s).unwrap();
}

fn write_parquet(path: &Path, keys: &[&str], depts: &[&str]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let schema = Arc::new(Schema::new(vec![
        Field::new("spmid", DataType::Utf8, false),
        Field::new("dept", DataType::Utf8, true),
        Field::new("owner", DataType::Utf8, true),
    ]));
    let b = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from(keys.to_vec())),
            Arc::new(StringArray::from(depts.to_vec())),
            Arc::new(StringArray::from(vec!["o"; keys.len()])),
        ],
    )
    .unwrap();
    let f = std::fs::File::create(path).unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(f, schema, None).unwrap();
    w.write(&b).unwrap();
    w.close().unwrap();
}

fn source_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("event_id", DataType::Int64, false),
        Field::new("spmid", DataType::Utf8, true),
    ]))
}

fn batch(spmids: &[Option<&str>]) -> RecordBatch {
    RecordBatch::try_new(
        source_schema(),
        vec![
            Arc::new(Int64Array::from_iter_values(0..spmids.len() as i64)),
            Arc::new(StringArray::from(spmids.to_vec())),
        ],
    )
    .unwrap()
}

fn col(b: &RecordBatch, name: &str) -> Vec<Option<String>> {
    let a = b.column_by_name(name).unwrap().as_string::<i32>();
    (0..a.len())
        .map(|i| a.is_valid(i).then(|| a.value(i).to_string()))
        .collect()
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

fn opts(state: Option<&Path>, background: bool) -> EnrichOptions {
    EnrichOptions {
        state_dir: state.map(Path::to_path_buf),
        background,
    }
}

/// A foreground enricher over the test source schema, without state.
fn start(
    spec: DimensionSpec,
    m: &Metrics,
    rt: &tokio::runtime::Runtime,
) -> Result<Enricher, EnrichError> {
    Enricher::start(&[spec], &source_schema(), opts(None, false), m, rt.handle())
}

fn wait_until(what: &str, f: impl Fn() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < Duration::from_secs(10), "timed out: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn left_join_keeps_every_row_with_defaults_and_renames() {
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("spmid.csv");
    write_csv(&f, &[("a", "ads", "ann"), ("b", "search", "bob")]);
    let rt = rt();
    let m = Metrics::default();
    let e = start(spec(&f, DimLayout::Plain), &m, &rt).unwrap();
    let names: Vec<_> = e
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(names, ["event_id", "spmid", "dept", "dim_owner"]);
    let out = e
        .enrich(batch(&[Some("b"), Some("zz"), None, Some("a")]))
        .unwrap();
    assert_eq!(out.num_rows(), 4);
    let s = |v: &str| Some(v.to_string());
    assert_eq!(col(&out, "dept"), [s("search"), None, None, s("ads")]);
    assert_eq!(
        col(&out, "dim_owner"),
        [s("bob"), s("nobody"), s("nobody"), s("ann")]
    );
    assert_eq!(
        m.dimension("dim_spmid").unmatched.load(Ordering::Relaxed),
        2
    );
}

#[test]
fn an_evolved_source_keeps_the_join_and_refuses_a_clash_or_a_key_change() {
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("spmid.csv");
    write_csv(&f, &[("a", "ads", "ann")]);
    let rt = rt();
    let m = Metrics::default();
    let e = start(spec(&f, DimLayout::Plain), &m, &rt).unwrap();
    // A new column before the key's old place: the key is found by name.
    let evolved = Arc::new(Schema::new(vec![
        Field::new("event_id", DataType::Int64, false),
        Field::new("new_col", DataType::Utf8, true),
        Field::new("spmid", DataType::Utf8, true),
    ]));
    let enriched = e.enriched_schema(&evolved).unwrap();
    e.set_schema(enriched.clone());
    assert_eq!(e.schema(), enriched);
    let b = RecordBatch::try_new(
        evolved.clone(),
        vec![
            Arc::new(Int64Array::from(vec![1])),
            Arc::new(StringArray::from(vec![Some("n")])),
            Arc::new(StringArray::from(vec![Some("a")])),
        ],
    )
    .unwrap();
    let out = e.enrich(b).unwrap();
    assert_eq!(col(&out, "dept"), [Some("ads".to_string())]);
    // A new source column named like an added one, or the key changing type.
    let clash = Arc::new(Schema::new(vec![
        Field::new("spmid", DataType::Utf8, true),
        Field::new("dept", DataType::Utf8, true),
    ]));
    let err = e.enriched_schema(&clash).unwrap_err().to_string();
    assert!(err.contains("the new source column \"dept\""), "{err}");
    let key = Arc::new(Schema::new(vec![Field::new(
        "spmid",
        DataType::LargeUtf8,
        true,
    )]));
    let err = e.enriched_schema(&key).unwrap_err().to_string();
    assert!(
        err.contains("would change type from Utf8 to LargeUtf8"),
        "{err}"
    );
}

#[test]
fn duplicate_keys_fail_the_load_unless_last_wins() {
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("spmid.csv");
    write_csv(&f, &[("a", "ads", "x"), ("a", "search", "y")]);
    let rt = rt();
    let m = Metrics::default();
    let err = start(spec(&f, DimLayout::Plain), &m, &rt)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("duplicate key \"a\""), "{err}");
    assert!(err.contains("last_wins"), "{err}");
    let mut sp = spec(&f, DimLayout::Plain);
    sp.on_duplicate = OnDuplicate::LastWins;
    let e = start(sp, &m, &rt).unwrap();
    let out = e.enrich(batch(&[Some("a")])).unwrap();
    assert_eq!(col(&out, "dept"), [Some("search".to_string())]);
}

#[test]
fn integer_keys_join_string_source_keys() {
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("dim.parquet");
    let schema = Arc::new(Schema::new(vec![
        Field::new("spmid", DataType::Int32, false),
        Field::new("dept", DataType::Utf8, true),
        Field::new("owner", DataType::Utf8, true),
    ]));
    let b = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(arrow::array::Int32Array::from(vec![7, 8])),
            Arc::new(StringArray::from(vec!["ads", "search"])),
            Arc::new(StringArray::from(vec!["o", "p"])),
        ],
    )
    .unwrap();
    let mut w =
        parquet::arrow::ArrowWriter::try_new(std::fs::File::create(&f).unwrap(), schema, None)
            .unwrap();
    w.write(&b).unwrap();
    w.close().unwrap();
    let rt = rt();
    let m = Metrics::default();
    let e = start(spec(&f, DimLayout::Plain), &m, &rt).unwrap();
    let out = e.enrich(batch(&[Some("8"), Some("x"), Some("7")])).unwrap();
    let s = |v: &str| Some(v.to_string());
    assert_eq!(col(&out, "dept"), [s("search"), None, s("ads")]);
}

#[test]
fn a_file_changed_between_fingerprints_is_not_used() {
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("spmid.csv");
    write_csv(&f, &[("a", "ads", "x")]);
    let rt = rt();
    let sp = spec(&f, DimLayout::Plain);
    let c = rt.block_on(load::candidates(&sp)).unwrap().remove(0);
    let counters = DimCounters::default();
    // Every attempt sees the file rewritten between its read and the check.
    let n = std::sync::atomic::AtomicU32::new(0);
    let rewrite = || {
        let i = n.fetch_add(1, Ordering::SeqCst);
        write_csv(
            &f,
            &[("a", "half-written", "x"), ("b", &format!("v{i}"), "y")],
        );
        let t = std::time::SystemTime::now() + Duration::from_secs(u64::from(i) + 1);
        std::fs::File::options()
            .write(true)
            .open(&f)
            .unwrap()
            .set_modified(t)
            .unwrap();
    };
    let err = load_candidate(&sp, &c, None, rt.handle(), &rewrite, &counters)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("changed while it was read"), "{err}");
    assert_eq!(counters.loads_moved.load(Ordering::Relaxed), 3);
    // Without interference the (new) candidate loads.
    let c = rt.block_on(load::candidates(&sp)).unwrap().remove(0);
    let s = load_candidate(&sp, &c, None, rt.handle(), &|| {}, &counters).unwrap();
    assert_eq!(s.rows, 2);
}

#[test]
fn reload_swaps_a_new_version_and_keeps_the_old_on_failure() {
    let d = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let f = d.path().join("spmid.csv");
    write_csv(&f, &[("a", "ads", "x"), ("b", "search", "y")]);
    let rt = rt();
    let m = Metrics::default();
    let mut sp = spec(&f, DimLayout::Plain);
    sp.min_ratio = 0.6;
    let e = Enricher::start(
        &[sp],
        &source_schema(),
        opts(Some(state.path()), true),
        &m,
        rt.handle(),
    )
    .unwrap();
    let dept = |e: &Enricher| col(&e.enrich(batch(&[Some("a")])).unwrap(), "dept")[0].clone();
    assert_eq!(dept(&e).as_deref(), Some("ads"));
    let bump = |secs: u64| {
        let t = std::time::SystemTime::now() + Duration::from_secs(secs);
        std::fs::File::options()
            .write(true)
            .open(&f)
            .unwrap()
            .set_modified(t)
            .unwrap();
    };
    // A new version is picked up without a restart.
    write_csv(&f, &[("a", "growth", "x"), ("b", "search", "y")]);
    bump(5);
    wait_until("new version swapped in", || {
        dept(&e).as_deref() == Some("growth")
    });
    let c = m.dimension("dim_spmid");
    // Corrupt, empty, too small and missing versions are all refused; the
    // last good snapshot keeps enriching and each failure is counted.
    let mut failures = 0;
    for (i, bad) in [
        "spmid,dept\n\"unterminated,x\n",
        "",
        "spmid,dept,owner\n",
        "spmid,dept,owner\nq,r,s\n",
    ]
    .iter()
    .enumerate()
    {
        std::fs::write(&f, bad).unwrap();
        bump(10 + i as u64);
        failures += 1;
        wait_until(
            &format!(
                "failure counted for {bad:?} ({})",
                c.last_error.lock().unwrap()
            ),
            || c.fallbacks.load(Ordering::Relaxed) >= failures,
        );
        assert_eq!(dept(&e).as_deref(), Some("growth"), "after {bad:?}");
    }
    std::fs::remove_file(&f).unwrap();
    failures += 1;
    wait_until("missing counted", || {
        c.fallbacks.load(Ordering::Relaxed) >= failures
    });
    assert_eq!(dept(&e).as_deref(), Some("growth"));
    assert!(
        c.last_error.lock().unwrap().contains("not readable"),
        "{}",
        c.last_error.lock().unwrap()
    );
    let text = m.render();
    assert!(
        text.contains("sluice_dimension_fallbacks_total{dimension=\"dim_spmid\"} 5"),
        "{text}"
    );
    drop(e);

    // A restart during the outage enriches from the persisted copy.
    let m2 = Metrics::default();
    let e = Enricher::start(
        &[spec(&f, DimLayout::Plain)],
        &source_schema(),
        opts(Some(state.path()), false),
        &m2,
        rt.handle(),
    )
    .unwrap();
    assert_eq!(dept(&e).as_deref(), Some("growth"));
    assert_eq!(
        m2.dimension("dim_spmid").fallbacks.load(Ordering::Relaxed),
        1
    );
    assert!(
        e.in_use()[0].1.starts_with("persisted copy of"),
        "{:?}",
        e.in_use()
    );
    // Without state, nothing is usable: a clear error.
    let err = start(spec(&f, DimLayout::Plain), &m2, &rt)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("no usable snapshot"), "{err}");
}

#[test]
fn dated_layout_takes_the_newest_complete_folder_and_falls_back_to_the_previous() {
    let d = tempfile::tempdir().unwrap();
    let day = |dt: &str| d.path().join(format!("dt={dt}"));
    write_parquet(&day("2026-11-18").join("part-0.parquet"), &["a"], &["d18"]);
    std::fs::write(day("2026-11-18").join("_SUCCESS"), "").unwrap();
    write_parquet(&day("2026-11-19").join("part-0.parquet"), &["a"], &["d19"]);
    std::fs::write(day("2026-11-19").join("_SUCCESS"), "").unwrap();
    // Newest, but not complete: ignored.
    write_parquet(&day("2026-11-21").join("part-0.parquet"), &["a"], &["d21"]);
    let rt = rt();
    let m = Metrics::default();
    let layout = DimLayout::Dated {
        marker: Some("_SUCCESS".into()),
    };
    let start = |m: &Metrics| {
        Enricher::start(
            &[spec(d.path(), layout.clone())],
            &source_schema(),
            opts(None, false),
            m,
            rt.handle(),
        )
    };
    let e = start(&m).unwrap();
    assert_eq!(e.in_use()[0].1, "dt=2026-11-19");
    // The newest complete folder is corrupt: the previous one is used.
    std::fs::create_dir_all(day("2026-11-20")).unwrap();
    std::fs::write(
        day("2026-11-20").join("part-0.parquet"),
        b"PAR1 not parquet",
    )
    .unwrap();
    std::fs::write(day("2026-11-20").join("_SUCCESS"), "").unwrap();
    let e = start(&m).unwrap();
    assert_eq!(e.in_use()[0].1, "dt=2026-11-19");
    let out = e.enrich(batch(&[Some("a")])).unwrap();
    assert_eq!(col(&out, "dept"), [Some("d19".to_string())]);
    assert_eq!(
        m.dimension("dim_spmid").fallbacks.load(Ordering::Relaxed),
        1
    );
}

#[test]
fn a_column_clash_or_unknown_source_key_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("spmid.csv");
    write_csv(&f, &[("a", "ads", "x")]);
    let rt = rt();
    let m = Metrics::default();
    let mut sp = spec(&f, DimLayout::Plain);
    sp.columns[0].to = "event_id".into();
    let err = start(sp, &m, &rt).err().unwrap().to_string();
    assert!(err.contains("\"event_id\" is already a column"), "{err}");
    let mut sp = spec(&f, DimLayout::Plain);
    sp.source_key = "nope".into();
    let err = start(sp, &m, &rt).err().unwrap().to_string();
    assert!(err.contains("source_key \"nope\""), "{err}");
}

#[test]
fn a_million_row_snapshot_costs_a_small_multiple_of_its_arrow_size() {
    let n = 1_000_000;
    let keys = StringArray::from_iter_values((0..n).map(|i| format!("spm_{i:07}")));
    let depts = StringArray::from_iter_values((0..n).map(|i| format!("dept_{}", i % 50)));
    let owners = StringArray::from_iter_values((0..n).map(|i| format!("owner_{}", i % 1000)));
    let schema = Arc::new(Schema::new(vec![
        Field::new("spmid", DataType::Utf8, false),
        Field::new("dept", DataType::Utf8, true),
        Field::new("owner", DataType::Utf8, true),
    ]));
    let data = RecordBatch::try_new(
        schema,
        vec![Arc::new(keys), Arc::new(depts), Arc::new(owners)],
    )
    .unwrap();
    let arrow_size = data.get_array_memory_size();
    let sp = spec(Path::new("/x"), DimLayout::Plain);
    let s = Snapshot::build(
        data,
        "spmid",
        &sp.columns,
        OnDuplicate::Error,
        "mem".into(),
        Fingerprint::default(),
        0,
    )
    .unwrap();
    assert_eq!(s.keys(), n);
    let ratio = s.memory_size() as f64 / arrow_size as f64;
    assert!(
        ratio < 1.5,
        "snapshot {} bytes vs arrow {arrow_size}: {ratio:.2}x",
        s.memory_size()
    );
}
