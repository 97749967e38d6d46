//! The source schema evolves without stopping: a new column joins it (state,
//! log, `state show`, `status`), files without a column read NULL in it,
//! rules may use a column once a file carried it (and are told why not
//! before), types widen, and what cannot be read is quarantined with a
//! reason naming the column and both types.

use crate::support::*;
use arrow::array::{Array, ArrayRef, AsArray, Float32Array, Float64Array, Int32Array, Int64Array};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

const T_NEW: &str = "CREATE TABLE t_new\nAS SELECT event_id, new_col, props FROM ods_events;\n";

fn check(env: &Env) -> std::process::Output {
    env.cmd(&["check", "--config", env.config().to_str().unwrap()])
        .output()
        .unwrap()
}

fn status(env: &Env) -> String {
    let out = env
        .cmd(&["status", "--config", env.config().to_str().unwrap()])
        .output()
        .unwrap();
    output_text(&out)
}

fn run_ok(env: &Env) -> String {
    let out = env.run_once();
    let t = output_text(&out);
    assert!(out.status.success(), "{t}");
    t
}

/// event_id -> (new_col, props) of every row of table `t_new`.
fn t_new_rows(sink: &Path) -> BTreeMap<String, (Option<String>, Option<String>)> {
    let mut out = BTreeMap::new();
    for (rel, batches) in visible_files(sink, &[]) {
        if !rel.starts_with("t_new/") {
            continue;
        }
        for b in batches {
            let ids = b.column_by_name("event_id").unwrap().as_string::<i32>();
            let nc = b.column_by_name("new_col").unwrap().as_string::<i32>();
            let props = b.column_by_name("props").unwrap().as_string::<i32>();
            for i in 0..b.num_rows() {
                let v =
                    |a: &arrow::array::StringArray| a.is_valid(i).then(|| a.value(i).to_string());
                let prev = out.insert(ids.value(i).to_string(), (v(nc), v(props)));
                assert!(prev.is_none(), "{} twice in t_new", ids.value(i));
            }
        }
    }
    out
}

/// The file's rows with `new_col` added and `props` gone.
fn with_new_col(b: arrow::array::RecordBatch) -> arrow::array::RecordBatch {
    let nc = new_col_of(&b);
    reshape(&b, &["props"], vec![("new_col", nc)])
}

#[test]
fn a_new_column_joins_the_schema_missing_ones_read_null_and_rules_may_use_it() {
    let mut env = Env::new("");
    env.add_file(0, 600);
    run_ok(&env);

    // Before any file carried it, a rule naming it is refused, and says why.
    let rule = env.path().join("rules/t_new.sql");
    std::fs::write(&rule, T_NEW).unwrap();
    let out = check(&env);
    let t = output_text(&out);
    assert_eq!(out.status.code(), Some(2), "{t}");
    assert!(
        t.contains("No field named new_col: no source file read so far has carried this column"),
        "{t}"
    );
    std::fs::remove_file(&rule).unwrap();

    // A file with a new column and without `props`: read, not quarantined.
    let evolved = env.add_file_with(1, 700, with_new_col);
    let log = run_ok(&env);
    assert!(
        log.contains("source schema gained column new_col (Utf8) from file"),
        "{log}"
    );
    let diffs = diff_tables(
        &expected_tables(&env.ods(), &[]),
        &actual_tables(&env.sink()),
    );
    assert!(diffs.is_empty(), "{}", diffs.join("\n"));
    let show = env.state_show();
    assert!(show.contains("new_col Utf8"), "{show}");
    assert!(
        show.contains("first schema, 11 columns, from file"),
        "{show}"
    );
    let name = evolved.file_name().unwrap().to_string_lossy().to_string();
    assert!(
        show.lines()
            .any(|l| l.contains("gained column new_col (Utf8) from file") && l.contains(&name)),
        "{show}"
    );
    assert!(!show.contains("quarantined "), "{show}");
    let st = status(&env);
    assert!(st.contains("schema change:   epoch"), "{st}");
    assert!(st.contains("gained column new_col (Utf8)"), "{st}");

    // Now the rule is accepted, and sees NULL where a file lacks a column.
    std::fs::write(&rule, T_NEW).unwrap();
    let out = check(&env);
    assert!(out.status.success(), "{}", output_text(&out));
    let old = env.add_file(2, 300);
    let new = env.add_file_with(3, 400, with_new_col);
    run_ok(&env);
    let rows = t_new_rows(&env.sink());
    let ids_of = |p: &Path| -> Vec<String> {
        let f = std::fs::File::open(p).unwrap();
        let r = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f)
            .unwrap()
            .build()
            .unwrap();
        r.flat_map(|b| {
            let b = b.unwrap();
            let ids = b
                .column_by_name("event_id")
                .unwrap()
                .as_string::<i32>()
                .clone();
            (0..ids.len()).map(move |i| ids.value(i).to_string())
        })
        .collect()
    };
    let (old_ids, new_ids) = (ids_of(&old), ids_of(&new));
    assert_eq!(rows.len(), old_ids.len() + new_ids.len());
    for id in &old_ids {
        assert_eq!(rows[id].0, None, "{id}: an old file has no new_col");
    }
    for id in &new_ids {
        assert_eq!(rows[id].0.as_deref(), Some(format!("nc-{id}").as_str()));
        assert_eq!(rows[id].1, None, "{id}: the new files have no props");
    }
    assert!(old_ids.iter().any(|id| rows[id].1.is_some()));
}

#[test]
fn types_widen_and_what_cannot_be_read_is_quarantined_with_its_reason() {
    let mut env = Env::new("");
    let cfg = std::fs::read_to_string(env.config()).unwrap();
    let cfg = cfg.replace(
        "scan_interval = \"100ms\"\n",
        "scan_interval = \"100ms\"\nrequired_columns = [\"app_source\"]\n",
    );
    std::fs::write(env.config(), cfg).unwrap();
    let score32 = |b: arrow::array::RecordBatch| {
        let n = b.num_rows();
        let level: ArrayRef = Arc::new(Int32Array::from_iter_values(0..n as i32));
        let score: ArrayRef = Arc::new(Float32Array::from_iter_values((0..n).map(|i| i as f32)));
        reshape(&b, &[], vec![("level", level), ("score", score)])
    };
    env.add_file_with(0, 300, score32);
    run_ok(&env);
    // A rule records `level` as Int32 in its table.
    std::fs::write(
        env.path().join("rules/t_level.sql"),
        "CREATE TABLE t_level\nAS SELECT event_id, level FROM ods_events;\n",
    )
    .unwrap();
    env.add_file_with(1, 200, score32);
    run_ok(&env);

    // score: float -> double is a widening no table depends on: taken.
    let wide = env.add_file_with(2, 200, |b| {
        let n = b.num_rows();
        let score: ArrayRef = Arc::new(Float64Array::from_iter_values((0..n).map(|i| i as f64)));
        reshape(&b, &[], vec![("score", score)])
    });
    // level: int32 -> int64 would change t_level's column type: refused.
    let guarded = env.add_file_with(3, 200, |b| {
        let n = b.num_rows();
        let level: ArrayRef = Arc::new(Int64Array::from_iter_values(0..n as i64));
        reshape(&b, &[], vec![("level", level)])
    });
    // mid: utf8 -> int64 is no widening.
    let incompatible = env.add_file_with(0, 100, |b| {
        let n = b.num_rows();
        let mid: ArrayRef = Arc::new(Int64Array::from_iter_values(0..n as i64));
        reshape(&b, &["mid"], vec![("mid", mid)])
    });
    // app_source is required.
    let unrequired = env.add_file_with(1, 100, |b| reshape(&b, &["app_source"], vec![]));
    run_ok(&env);

    let show = env.state_show();
    assert!(
        show.contains("widened column score from Float32 to Float64"),
        "{show}"
    );
    assert!(show.contains("score Float64"), "{show}");
    assert!(show.contains("level Int32"), "{show}");
    let reason = |p: &Path| -> String {
        let rel = p
            .strip_prefix(env.ods())
            .unwrap()
            .to_string_lossy()
            .to_string();
        show.lines()
            .filter(|l| l.starts_with("quarantined ") && l.contains(&rel))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let r = reason(&guarded);
    assert!(
        r.contains("widened column level from Int32 to Int64")
            && r.contains("column level of table t_level would change type from Int32 to Int64"),
        "{r}\n{show}"
    );
    let r = reason(&incompatible);
    assert!(
        r.contains("column mid has type Int64 in this file where the source schema has Utf8"),
        "{r}\n{show}"
    );
    let r = reason(&unrequired);
    assert!(
        r.contains("column app_source is missing; [source] required_columns lists it"),
        "{r}\n{show}"
    );
    assert!(reason(&wide).is_empty(), "{show}");
    // Every table holds exactly the rows of the files that were read.
    let skip = [guarded, incompatible, unrequired];
    let mut expected = expected_tables(&env.ods(), &skip);
    let mut actual = actual_tables(&env.sink());
    actual.remove("t_level");
    expected.remove("t_level");
    let diffs = diff_tables(&expected, &actual);
    assert!(diffs.is_empty(), "{}", diffs.join("\n"));
}

#[test]
fn a_running_daemon_takes_the_new_column_and_a_rule_reloaded_over_it() {
    let mut env = Env::new("");
    env.add_file(0, 400);
    let (mut child, rx) =
        spawn_with_log(env.cmd(&["run", "--config", env.config().to_str().unwrap()]));
    let mut log = String::new();
    wait_log(&rx, &mut log, 30, "checkpoint committed");
    env.add_file_with(1, 500, with_new_col);
    wait_log(
        &rx,
        &mut log,
        30,
        "source schema gained column new_col (Utf8)",
    );
    // Both files committed before the rule exists.
    let t0 = std::time::Instant::now();
    while actual_tables(&env.sink())
        .get("t_all")
        .map_or(0, |t| t.len())
        < 900
    {
        assert!(t0.elapsed() < std::time::Duration::from_secs(30), "{log}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }

    // `check` while the daemon holds the state: the copy of its schema.
    std::fs::write(env.path().join("rules/t_new.sql"), T_NEW).unwrap();
    let out = check(&env);
    let t = output_text(&out);
    assert!(out.status.success(), "{t}");
    assert!(
        t.contains("source schema: the copy of the state's schema"),
        "{t}"
    );

    // The rules directory reloads at a checkpoint, over the evolved schema.
    wait_log(
        &rx,
        &mut log,
        30,
        "rules reloaded; in effect from this epoch",
    );
    let after = env.add_file_with(2, 300, with_new_col);
    let old = env.add_file(3, 200);
    let t0 = std::time::Instant::now();
    let want = 500; // rows of the two files just added
    while t_new_rows(&env.sink()).len() < want {
        assert!(
            t0.elapsed() < std::time::Duration::from_secs(30),
            "t_new never got the new rows:\n{log}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // SAFETY: kill has no memory-safety preconditions.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    assert!(child.wait().unwrap().success());
    let rows = t_new_rows(&env.sink());
    assert_eq!(rows.len(), want, "only files read after the reload");
    let named = |p: &Path, id: &str| {
        id.starts_with(&format!(
            "e{:06}-",
            p.file_stem().unwrap().to_string_lossy()["part-".len()..]
                .parse::<u64>()
                .unwrap()
        ))
    };
    for (id, (nc, _)) in &rows {
        if named(&after, id) {
            assert_eq!(nc.as_deref(), Some(format!("nc-{id}").as_str()));
        } else {
            assert!(named(&old, id), "{id}");
            assert_eq!(nc, &None);
        }
    }
    let diffs = diff_tables(&expected_tables(&env.ods(), &[]), &{
        let mut a = actual_tables(&env.sink());
        a.remove("t_new");
        a
    });
    assert!(diffs.is_empty(), "{}", diffs.join("\n"));
}
