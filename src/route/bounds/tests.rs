//! The limits on `repeat`, `lpad` and `rpad`: refused at load when the
//! constants alone are too large, a failing row (not the batch) at run
//! time otherwise.

use super::*;
use crate::demo;
use crate::read::SourceSchema;
use crate::route::{OnError, Output, RuleError, RuleSet};
use arrow::array::StringArray;
use arrow::datatypes::SchemaRef;
use std::path::PathBuf;

fn schema() -> SchemaRef {
    SourceSchema::new(demo::event_schema(), vec!["dt".into()]).full
}

fn compile(sql: &str) -> Result<RuleSet, Vec<RuleError>> {
    RuleSet::compile_all(
        vec![(PathBuf::from("r.sql"), sql.to_string())],
        "ods_events",
        &schema(),
    )
}

fn refused(sql: &str) -> String {
    compile(sql).expect_err("should be refused")[0].to_string()
}

#[test]
fn constant_sizes_over_the_limit_are_refused_at_load_with_their_position() {
    let cases = [
        (
            "CREATE TABLE t AS SELECT event_id,\n  repeat(mid, 1000000000) AS r FROM ods_events",
            "r.sql:2:3: repeat(..., 1000000000) would make a value of 1000000000 bytes",
        ),
        (
            "CREATE TABLE t AS SELECT repeat('ab', 600000) AS r FROM ods_events",
            "r.sql:1:26: repeat(..., 600000) would make a value of 1200000 bytes",
        ),
        (
            "CREATE TABLE t AS SELECT repeat(mid, 1000 * 1000 * 1000) AS r FROM ods_events",
            "would make a value of 1000000000 bytes",
        ),
        (
            "CREATE TABLE t AS SELECT lpad(mid, 2000000) AS p FROM ods_events",
            "r.sql:1:26: lpad(..., 2000000) would make a value of 2000000 bytes (2000000 characters)",
        ),
        (
            "CREATE TABLE t AS SELECT rpad(mid, 400000, '中') AS p FROM ods_events",
            "rpad(..., 400000) would make a value of 1200000 bytes",
        ),
        (
            // The second call, in the WHERE, upper case, after Chinese text.
            "CREATE TABLE t AS SELECT '中文' AS c, repeat(mid, 2) AS r FROM ods_events\nWHERE  REPEAT (mid, 5000000) = 'x'",
            "r.sql:2:8: repeat(..., 5000000)",
        ),
        (
            "CREATE TABLE t AS SELECT upper(repeat(repeat('a', 2000000), 1)) AS r FROM ods_events",
            "r.sql:1:39: repeat(..., 2000000)",
        ),
    ];
    for (sql, want) in cases {
        let got = refused(sql);
        assert!(got.contains(want), "{sql}\n  got:  {got}\n  want: {want}");
        assert!(
            got.contains("one value may take at most 1048576 bytes"),
            "{got}"
        );
    }
    for ok in [
        "CREATE TABLE t AS SELECT repeat(mid, 3) AS r, lpad(mid, 40) AS l, rpad(mid, 40, '中') AS p FROM ods_events",
        "CREATE TABLE t AS SELECT repeat('ab', 500000) AS r FROM ods_events",
        "CREATE TABLE t AS SELECT repeat(mid, user_id) AS r FROM ods_events",
        "CREATE TABLE t AS SELECT repeat(CAST(NULL AS VARCHAR), 5000000) AS r FROM ods_events",
    ] {
        assert!(compile(ok).is_ok(), "{ok}: {:?}", compile(ok).err());
    }
}

/// Rows whose count comes from the data: clicks ask for a huge value.
const HUGE_FOR_CLICKS: [&str; 2] = [
    "CREATE TABLE t PARTITIONED BY (dt)\nAS SELECT event_id, repeat(event_id, CASE WHEN event_type = 'click' THEN 5000000 ELSE 2 END) AS r, dt FROM ods_events;\n",
    "CREATE TABLE t PARTITIONED BY (dt)\nAS SELECT event_id, lpad(event_id, CASE WHEN event_type = 'click' THEN 3000000 ELSE 40 END) AS r, dt FROM ods_events;\n",
];

#[test]
fn rows_asking_for_too_much_fail_alone_and_go_to_the_error_output() {
    let b = demo::events(3, 0, 300, demo::DAY_START_MS);
    let mut cols = b.columns().to_vec();
    cols.push(Arc::new(StringArray::from(vec![Some("2026-11-20"); 300])));
    let b = RecordBatch::try_new(schema(), cols).unwrap();
    let types = b.column_by_name("event_type").unwrap().as_string::<i32>();
    let clicks = (0..300).filter(|i| types.value(*i) == "click").count();
    assert!(clicks > 5 && clicks < 300);
    for sql in HUGE_FOR_CLICKS {
        let set = compile(sql).unwrap().with_on_error(OnError::ErrorTable);
        let r = set.route(&b);
        let rows = |o: Output| -> usize {
            r.pieces
                .iter()
                .filter(|p| p.output == o)
                .map(|p| p.batch.num_rows())
                .sum()
        };
        assert_eq!(rows(Output::Table), 300 - clicks, "{sql}");
        assert_eq!(rows(Output::Errors), clicks, "{sql}");
        assert_eq!(r.errors.len(), 1, "{:?}", r.errors);
        assert!(
            r.errors[0]
                .message
                .contains("one value may take at most 1048576 bytes"),
            "{:?}",
            r.errors
        );
    }
}

fn text_array(v: &str, rows: usize) -> ColumnarValue {
    ColumnarValue::Array(Arc::new(StringArray::from(vec![Some(v); rows])))
}

fn count(n: i64) -> ColumnarValue {
    ColumnarValue::Scalar(ScalarValue::Int64(Some(n)))
}

#[test]
fn a_batch_over_the_call_limit_fails_so_it_is_evaluated_in_halves() {
    // lpad reserves its length for every row: 8192 x 10000 is over 64 MiB,
    // half of it is not.
    let args = [text_array("a", 8192), count(10_000)];
    let e = guard("lpad", Kind::Pad, &args, 8192)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("lpad would make 81928192 bytes for 8192 rows at once"),
        "{e}"
    );
    let args = [text_array("a", 4096), count(10_000)];
    guard("lpad", Kind::Pad, &args, 4096).unwrap();
    // Even NULL text reserves it; a NULL count reserves nothing.
    let null_text = ColumnarValue::Scalar(ScalarValue::Utf8(None));
    assert!(guard("lpad", Kind::Pad, &[null_text.clone(), count(2_000_000)], 1).is_err());
    let null_count = ColumnarValue::Scalar(ScalarValue::Int64(None));
    guard("lpad", Kind::Pad, &[null_text, null_count], 8192).unwrap();
    // repeat of a scalar makes one value, however many rows.
    let one = ColumnarValue::Scalar(ScalarValue::Utf8(Some("abc".into())));
    guard("repeat", Kind::Repeat, &[one.clone(), count(300_000)], 8192).unwrap();
    assert!(guard("repeat", Kind::Repeat, &[one, count(400_000)], 1).is_err());
    // Negative counts make empty values.
    guard(
        "repeat",
        Kind::Repeat,
        &[text_array("abc", 10), count(-5)],
        10,
    )
    .unwrap();
}

#[test]
fn the_guarded_functions_keep_their_names_and_types() {
    let f = crate::route::Functions::default();
    for name in ["repeat", "lpad", "rpad"] {
        assert!(f.names().contains(&name.to_string()), "{name}");
    }
    let set = compile(
        "CREATE TABLE t AS SELECT repeat(mid, 2) AS r, lpad(mid, 3, '*') AS l FROM ods_events",
    )
    .unwrap();
    let b = demo::events(1, 0, 4, demo::DAY_START_MS);
    let mut cols = b.columns().to_vec();
    cols.push(Arc::new(StringArray::from(vec![Some("2026-11-20"); 4])));
    let b = RecordBatch::try_new(schema(), cols).unwrap();
    let (_, out) = set.evaluate(0, &b).unwrap();
    let out = out.unwrap();
    let mids = b.column_by_name("mid").unwrap();
    let mid = arrow::compute::cast(mids, &DataType::Utf8).unwrap();
    let mid = mid.as_string::<i32>().value(0).to_string();
    let r = arrow::compute::cast(out.column(0), &DataType::Utf8).unwrap();
    assert_eq!(r.as_string::<i32>().value(0), format!("{mid}{mid}"));
}
