//! Rule compilation and routing tests: refusals with their positions, the
//! equality index giving the same rows as plain evaluation, partitioning.

use super::*;
use crate::demo;
use crate::read::SourceSchema;
use arrow::array::AsArray;

fn schema() -> SchemaRef {
    SourceSchema::new(demo::event_schema(), vec!["dt".into(), "hour".into()]).full
}

fn batch(n: usize) -> RecordBatch {
    let b = demo::events(3, 0, n, demo::DAY_START_MS);
    let mut cols: Vec<ArrayRef> = b.columns().to_vec();
    cols.push(Arc::new(StringArray::from(vec![Some("2026-11-20"); n])));
    cols.push(Arc::new(StringArray::from(vec![Some("07"); n])));
    RecordBatch::try_new(schema(), cols).unwrap()
}

/// Rule files from (file name, SQL) pairs.
fn rule_files(pairs: &[(&str, &str)]) -> Vec<(PathBuf, String)> {
    pairs
        .iter()
        .map(|(name, sql)| (PathBuf::from(name), sql.to_string()))
        .collect()
}

fn compile_one(sql: &str) -> Result<RuleSet, Vec<RuleError>> {
    RuleSet::compile_all(rule_files(&[("r.sql", sql)]), "ods_events", &schema())
}

fn refused(sql: &str) -> String {
    compile_one(sql).expect_err("should be refused")[0].to_string()
}

#[test]
fn shipped_example_rules_compile() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/rules");
    let set = RuleSet::load(&dir, "ods_events", &schema()).unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(set.rules.len(), 10);
}

#[test]
fn refusals_name_the_construct_and_position() {
    let cases = [
        (
            "CREATE TABLE t AS DELETE FROM ods_events",
            "r.sql:1:19: only SELECT ... FROM ods_events [WHERE ...] is allowed after AS; DELETE statements are refused",
        ),
        (
            "CREATE TABLE t AS COPY ods_events TO 'x'",
            "is allowed after AS; COPY statements are refused",
        ),
        (
            "CREATE TABLE t AS DROP TABLE ods_events",
            "DROP statements are refused",
        ),
        (
            "CREATE TABLE t AS SELECT event_id FROM other_table",
            "r.sql:1:40: rules may only read the source table ods_events; other_table is not available",
        ),
        (
            "CREATE TABLE t AS SELECT * FROM read_parquet('/etc/passwd')",
            "table function read_parquet(...) is not allowed",
        ),
        (
            "CREATE TABLE t AS SELECT event_type, count(*) AS n FROM ods_events GROUP BY event_type",
            "unknown function count",
        ),
        (
            "CREATE TABLE t AS SELECT event_id FROM ods_events ORDER BY event_id",
            "r.sql:1:51: ORDER BY is not allowed in a rule",
        ),
        (
            "CREATE TABLE t AS SELECT event_id FROM ods_events LIMIT 3",
            "r.sql:1:51: LIMIT is not allowed in a rule",
        ),
        (
            "CREATE TABLE t AS SELECT DISTINCT event_id FROM ods_events",
            "DISTINCT is not allowed in a rule",
        ),
        (
            "CREATE TABLE t AS SELECT a.event_id FROM ods_events a JOIN ods_events b ON a.mid = b.mid",
            "a join is not allowed in a rule",
        ),
        (
            "CREATE TABLE t AS SELECT event_id FROM ods_events WHERE mid IN (SELECT mid FROM ods_events)",
            "subqueries are not allowed",
        ),
        (
            "CREATE TABLE t AS SELECT event_id FROM ods_events; CREATE TABLE u AS SELECT 1",
            "exactly one SELECT",
        ),
        (
            "CREATE TABLE t AS SELECT upper(mid) FROM ods_events",
            "needs a name: add `AS some_name`",
        ),
        (
            "CREATE TABLE t PARTITIONED BY (dt) AS SELECT dt FROM ods_events",
            "selects only partition columns",
        ),
    ];
    for (sql, want) in cases {
        let got = refused(sql);
        assert!(got.contains(want), "{sql}\n  got:  {got}\n  want: {want}");
    }
}

#[test]
fn unknown_column_is_located_on_its_line() {
    let e = refused("CREATE TABLE t\nAS SELECT event_id\nFROM ods_events\nWHERE  evnt_type = 'x'");
    assert!(e.starts_with("r.sql:4:8:"), "{e}");
    assert!(e.contains("evnt_type"), "{e}");
    // It says why: no file carried the column (the schema grows with files).
    assert!(
        e.contains("No field named evnt_type: no source file read so far has carried this column"),
        "{e}"
    );
    assert!(e.contains("Did you mean 'ods_events.event_type'?"), "{e}");
}

#[test]
fn syntax_error_is_located() {
    let e = refused("CREATE TABLE t\nAS SELECT event_id,\nFROM ods_events WHERE");
    assert!(e.starts_with("r.sql:3:"), "{e}");
}

#[test]
fn positions_after_multi_byte_text_count_characters() {
    let e = refused(
        "CREATE TABLE t AS SELECT event_id FROM ods_events\nWHERE '中文中文' = mid AND mid IN (SELECT mid FROM ods_events)",
    );
    assert!(
        e.starts_with("r.sql:2:32: subqueries are not allowed"),
        "{e}"
    );
    let e = refused(
        "CREATE TABLE t\nAS SELECT '中文' AS c, event_id FROM ods_events ORDER BY event_id",
    );
    assert!(e.starts_with("r.sql:2:47: ORDER BY is not allowed"), "{e}");
}

#[test]
fn duplicate_tables_are_refused() {
    let files = rule_files(&[
        ("a.sql", "CREATE TABLE t AS SELECT event_id FROM ods_events"),
        ("b.sql", "CREATE TABLE t AS SELECT mid FROM ods_events"),
    ]);
    let e = RuleSet::compile_all(files, "ods_events", &schema()).unwrap_err();
    assert!(
        e[0].to_string()
            .contains("table t is already defined by a.sql"),
        "{}",
        e[0]
    );
}

fn route_counts(set: &RuleSet, b: &RecordBatch) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let r = set.route(b);
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    for p in r.pieces {
        let ids = p
            .batch
            .column_by_name("event_id")
            .unwrap()
            .as_string::<i32>();
        let e = out
            .entry(format!("{}|{}", set.rules[p.rule].table, p.partition))
            .or_default();
        e.extend((0..ids.len()).map(|i| ids.value(i).to_string()));
    }
    for v in out.values_mut() {
        v.sort();
    }
    out
}

use std::collections::BTreeMap;

#[test]
fn the_equality_index_routes_exactly_like_plain_evaluation() {
    let mut files = Vec::new();
    for (i, t) in demo::EVENT_TYPES.iter().enumerate() {
        for a in demo::APP_SOURCES {
            files.push((
                PathBuf::from(format!("{t}_{a}.sql")),
                format!("CREATE TABLE t_{t}_{a} PARTITIONED BY (dt, hour) AS SELECT event_id, dt, hour FROM ods_events WHERE event_type = '{t}' AND app_source = '{a}' AND {i} >= 0"),
            ));
        }
    }
    files.push((PathBuf::from("y.sql"), "CREATE TABLE y AS SELECT event_id FROM ods_events WHERE event_type IN ('click', 'view', 'click') AND platform = 'pad'".into()));
    files.push((PathBuf::from("z.sql"), "CREATE TABLE z PARTITIONED BY (platform) AS SELECT event_id, platform FROM ods_events WHERE mid LIKE 'm00%'".into()));
    let indexed = RuleSet::compile_all(files.clone(), "ods_events", &schema()).unwrap();
    assert!(indexed.index.is_some());
    let mut plain = RuleSet::compile_all(files, "ods_events", &schema()).unwrap();
    plain.index = None;
    plain.pins = super::index::build_pins(&[], &schema());
    let b = batch(5000);
    let a = route_counts(&indexed, &b);
    assert_eq!(a, route_counts(&plain, &b));
    let total: usize = a
        .iter()
        .filter(|(k, _)| k.starts_with("t_"))
        .map(|(_, v)| v.len())
        .sum();
    assert_eq!(total, 5000, "the 32 rules partition the input");
    let r = indexed.route(&b);
    assert_eq!(r.matched_rows, 5000);
    assert!(a.keys().any(|k| k == "z|platform=tv"));
    assert!(a.keys().any(|k| k == "y|"));
}

#[test]
fn rules_pinned_to_values_absent_from_a_batch_are_not_evaluated() {
    // Evaluating `watch` would fail (props is not a number); pruning sees
    // no 'watch' platform in the batch and never runs it.
    let files = rule_files(&[
        (
            "w.sql",
            "CREATE TABLE w AS SELECT event_id FROM ods_events WHERE CAST(props AS BIGINT) > 0 AND event_type = 'click' AND platform = 'watch'",
        ),
        (
            "p.sql",
            "CREATE TABLE p AS SELECT event_id FROM ods_events WHERE event_type = 'click' AND platform IN ('watch', 'pad')",
        ),
        (
            "v.sql",
            "CREATE TABLE v AS SELECT event_id FROM ods_events WHERE event_type = 'view' AND platform = 'watch'",
        ),
    ]);
    let set = RuleSet::compile_all(files.clone(), "ods_events", &schema()).unwrap();
    let b = batch(3000);
    let r = set.route(&b);
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    let col = |n: &str, i: usize| {
        b.column_by_name(n)
            .unwrap()
            .as_string::<i32>()
            .value(i)
            .to_string()
    };
    let pads = (0..b.num_rows())
        .filter(|i| col("platform", *i) == "pad" && col("event_type", *i) == "click")
        .count();
    assert!(pads > 0);
    assert_eq!(r.matched_rows as usize, pads);
    // Without pruning the failing rule runs and reports its rows.
    let mut unpruned = RuleSet::compile_all(files, "ods_events", &schema()).unwrap();
    unpruned.pins = super::index::build_pins(&[], &schema());
    assert!(!unpruned.route(&b).errors.is_empty());
}

#[test]
fn rows_matched_by_no_rule_are_counted() {
    let set =
        compile_one("CREATE TABLE t AS SELECT event_id FROM ods_events WHERE event_type = 'click'")
            .unwrap();
    let b = batch(2000);
    let r = set.route(&b);
    let clicks = r.pieces.iter().map(|p| p.batch.num_rows()).sum::<usize>() as u64;
    assert_eq!(r.matched_rows, clicks);
    assert!(clicks > 0 && clicks < 2000);
}

#[test]
fn every_udf_plans_and_evaluates_through_sql() {
    let set = compile_one(
        "CREATE TABLE t AS SELECT event_id,
            json_get_str(props, 'page') AS page,
            url_host(json_get_str(props, 'url')) AS host,
            url_path(json_get_str(props, 'url')) AS path,
            url_param(json_get_str(props, 'url'), 'from') AS came_from,
            hash_bucket(mid, 16) AS bucket,
            to_dt(event_time, 'Asia/Shanghai') AS local_dt,
            to_hour(event_time, 'Asia/Shanghai') AS local_hour
         FROM ods_events WHERE props IS NOT NULL",
    )
    .unwrap_or_else(|e| panic!("{e:?}"));
    let r = set.route(&batch(500));
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    let b = &r.pieces[0].batch;
    let col = |n: &str| b.column_by_name(n).unwrap().as_string::<i32>().clone();
    let (page, host, path, from) = (col("page"), col("host"), col("path"), col("came_from"));
    let (dt, hour) = (col("local_dt"), col("local_hour"));
    let bucket = b
        .column_by_name("bucket")
        .unwrap()
        .as_primitive::<arrow::datatypes::Int32Type>()
        .clone();
    for i in 0..b.num_rows() {
        assert_eq!(host.value(i), "m.example.com");
        assert_eq!(path.value(i), format!("/{}", page.value(i)));
        assert!(
            demo::APP_SOURCES.contains(&from.value(i)),
            "{}",
            from.value(i)
        );
        assert!((0..16).contains(&bucket.value(i)));
        // Events of 2026-11-20 00:00-01:00 UTC are 08:00-09:00 in Shanghai.
        assert_eq!(dt.value(i), "2026-11-20");
        assert_eq!(hour.value(i), "08");
    }
}

/// Fails on clicks only: their `n` is CAST('x' AS BIGINT).
const FAILS_ON_CLICKS: &str = "CREATE TABLE t_cast PARTITIONED BY (dt)\nAS SELECT event_id, CAST(CASE WHEN event_type = 'click' THEN 'x' ELSE '1' END AS BIGINT) AS n, dt\nFROM ods_events WHERE event_type IN ('click', 'view');\n";

fn count(b: &RecordBatch, f: impl Fn(&str) -> bool) -> usize {
    let t = b.column_by_name("event_type").unwrap().as_string::<i32>();
    (0..b.num_rows()).filter(|&i| f(t.value(i))).count()
}

fn rows_of(r: &Routed, output: Output) -> usize {
    r.pieces
        .iter()
        .filter(|p| p.output == output)
        .map(|p| p.batch.num_rows())
        .sum()
}

#[test]
fn only_the_rows_a_rule_fails_on_are_set_aside() {
    let b = batch(700);
    let clicks = count(&b, |t| t == "click");
    let views = count(&b, |t| t == "view");
    assert!(clicks > 10 && views > 10);
    // Alone (no index), and beside a rule that makes the set index event_type.
    let other =
        "CREATE TABLE t_view AS SELECT event_id FROM ods_events WHERE event_type = 'view';\n";
    for files in [vec![FAILS_ON_CLICKS], vec![FAILS_ON_CLICKS, other]] {
        let set = RuleSet::compile_all(
            files
                .iter()
                .enumerate()
                .map(|(i, sql)| (PathBuf::from(format!("r{i}.sql")), sql.to_string()))
                .collect(),
            "ods_events",
            &schema(),
        )
        .unwrap();
        assert_eq!(set.index_for(0).is_some(), files.len() == 2);
        let r = set.route(&b);
        let good: usize = r
            .pieces
            .iter()
            .filter(|p| p.rule == 0 && p.output == Output::Table)
            .map(|p| p.batch.num_rows())
            .sum();
        assert_eq!(good, views, "every view lands");
        assert_eq!(r.errors.len(), 1, "{:?}", r.errors);
        assert_eq!(r.errors[0].rows as usize, clicks);
        assert!(
            r.errors[0].message.contains("Cannot cast string 'x'"),
            "{:?}",
            r.errors
        );
        assert_eq!(rows_of(&r, Output::Errors), clicks);
        let e = r
            .pieces
            .iter()
            .find(|p| p.output == Output::Errors)
            .unwrap();
        assert_eq!(e.partition, "dt=2026-11-20");
        assert_eq!(count(&e.batch, |t| t == "click"), e.batch.num_rows());
        let msg = e.batch.column_by_name("_error").unwrap().as_string::<i32>();
        assert!(msg.value(0).contains("Cannot cast"), "{}", msg.value(0));
        let rule = e.batch.column_by_name("_rule").unwrap().as_string::<i32>();
        assert_eq!(rule.value(0), "r0.sql");
        assert!(e.batch.column_by_name("dt").is_none(), "dt is in the path");
        // Error rows keep every source column, also those the rule does
        // not read (an indexed rule evaluates a copy without them).
        let click_rows: Vec<u32> = (0..b.num_rows() as u32)
            .filter(|&i| {
                b.column_by_name("event_type")
                    .unwrap()
                    .as_string::<i32>()
                    .value(i as usize)
                    == "click"
            })
            .collect();
        let src = take_record_batch(&b, &UInt32Array::from(click_rows)).unwrap();
        for f in b.schema().fields().iter().filter(|f| f.name() != "dt") {
            assert_eq!(
                e.batch.column_by_name(f.name()).unwrap(),
                src.column_by_name(f.name()).unwrap(),
                "{}",
                f.name()
            );
        }
        assert!(e.batch.column_by_name("hour").is_some());
        // Clicks the failing rule could not evaluate are not "matched" by it.
        assert_eq!(r.matched_rows as usize, views);

        let dropped = RuleSet::compile_all(
            files
                .iter()
                .enumerate()
                .map(|(i, sql)| (PathBuf::from(format!("r{i}.sql")), sql.to_string()))
                .collect(),
            "ods_events",
            &schema(),
        )
        .unwrap()
        .with_on_error(OnError::Drop)
        .route(&b);
        assert_eq!(rows_of(&dropped, Output::Errors), 0);
        assert_eq!(dropped.errors[0].rows as usize, clicks);
    }
}

#[test]
fn error_rows_without_a_dt_column_go_to_today() {
    let s = SourceSchema::new(demo::event_schema(), vec![]).full;
    let set = RuleSet::compile_all(
        rule_files(&[(
            "r.sql",
            "CREATE TABLE t AS SELECT event_id, CAST(event_type AS BIGINT) AS n FROM ods_events;\n",
        )]),
        "ods_events",
        &s,
    )
    .unwrap();
    let r = set.route(&demo::events(1, 0, 5, demo::DAY_START_MS));
    assert_eq!(rows_of(&r, Output::Errors), 5);
    assert_eq!(rows_of(&r, Output::Table), 0);
    let p = &r.pieces[0].partition;
    assert_eq!(p, &format!("dt={}", isolate::utc_today()));
}

/// `batch(n)` with its hour column replaced.
fn with_hours(b: &RecordBatch, hour: impl Fn(usize) -> Option<&'static str>) -> RecordBatch {
    let mut cols = b.columns().to_vec();
    let i = b.schema().index_of("hour").unwrap();
    cols[i] = Arc::new(StringArray::from(
        (0..b.num_rows()).map(hour).collect::<Vec<_>>(),
    ));
    RecordBatch::try_new(b.schema(), cols).unwrap()
}

#[test]
fn rules_pinning_two_columns_index_the_more_selective_and_skip_sure_predicates() {
    // Like `bench`'s 1,000 rules: spmid x hour. Indexing `hour` would leave
    // 40 rules per row to evaluate; `spmid` leaves 2.
    let spmids: Vec<String> = demo::all_spmids().into_iter().take(40).collect();
    let mut files = Vec::new();
    for (i, sp) in spmids.iter().enumerate() {
        for h in ["07", "08"] {
            files.push((
                PathBuf::from(format!("t{i:03}_{h}.sql")),
                format!("CREATE TABLE t{i:03}_{h} PARTITIONED BY (hour) AS SELECT event_id, hour FROM ods_events WHERE spmid = '{sp}' AND hour = '{h}'"),
            ));
        }
    }
    // One rule that pins hour twice and one with a residual predicate: both
    // must still run their predicates.
    files.push((PathBuf::from("u1.sql"), format!("CREATE TABLE u1 AS SELECT event_id FROM ods_events WHERE spmid = '{}' AND hour = '07' AND hour IN ('07', '08')", spmids[0])));
    files.push((PathBuf::from("u2.sql"), format!("CREATE TABLE u2 AS SELECT event_id FROM ods_events WHERE spmid = '{}' AND hour = '07' AND event_type LIKE 'cl%'", spmids[1])));
    let indexed = RuleSet::compile_all(files.clone(), "ods_events", &schema()).unwrap();
    assert_eq!(indexed.index.as_ref().unwrap().column_name, "spmid");
    assert!(indexed.rules[0].pins_only && !indexed.rules[81].pins_only);
    let mut plain = RuleSet::compile_all(files, "ods_events", &schema()).unwrap();
    plain.index = None;
    plain.pins = super::index::build_pins(&[], &schema());
    let base = batch(6000);
    let variants = [
        ("one hour", with_hours(&base, |_| Some("07"))),
        (
            "two hours",
            with_hours(&base, |i| Some(["07", "08"][i % 2])),
        ),
        ("nulls", with_hours(&base, |i| (i % 3 != 0).then_some("08"))),
        ("another hour", with_hours(&base, |_| Some("09"))),
    ];
    for (what, b) in variants {
        let a = route_counts(&indexed, &b);
        assert_eq!(a, route_counts(&plain, &b), "{what}");
        let rows: usize = a.values().map(Vec::len).sum();
        assert_eq!(rows > 0, what != "another hour", "{what}");
    }
    // The sure predicates really are skipped: on an all-07 batch, every
    // pins-only rule of hour 07 is certain and no hour-08 rule is possible.
    let b = with_hours(&base, |_| Some("07"));
    let p = indexed
        .pins
        .check(&b, indexed.rules.len(), indexed.index.as_ref());
    assert!(p.certain[0] && !p.possible[1]);
    assert!(!p.certain[80] && !p.certain[81]);
    let b = with_hours(&base, |i| (i % 3 != 0).then_some("07"));
    let p = indexed
        .pins
        .check(&b, indexed.rules.len(), indexed.index.as_ref());
    assert!(!p.certain[0], "a NULL hour fails `hour = '07'`");
}

#[test]
fn copying_only_read_columns_routes_exactly_like_copying_all() {
    let files = rule_files(&[
        (
            "a.sql",
            "CREATE TABLE a PARTITIONED BY (dt) AS SELECT event_id, props, dt FROM ods_events WHERE event_type = 'click' AND mid LIKE 'm0%'",
        ),
        (
            "b.sql",
            "CREATE TABLE b PARTITIONED BY (hour) AS SELECT mid, upper(spmid) AS s, hour FROM ods_events WHERE event_type IN ('view', 'click')",
        ),
        (
            "c.sql",
            "CREATE TABLE c AS SELECT event_id, event_time FROM ods_events WHERE platform = 'tv' OR user_id IS NULL",
        ),
        (
            "d.sql",
            "CREATE TABLE d AS SELECT * FROM ods_events WHERE event_type = 'view' AND app_source <> 'web'",
        ),
    ]);
    let set = RuleSet::compile_all(files, "ods_events", &schema()).unwrap();
    assert!(set.index.is_some());
    let b = batch(3000);
    let _mode = COPY_MODE.lock().unwrap_or_else(|p| p.into_inner());
    let narrow = set.route(&b);
    super::set_copy_all_columns(true);
    let full = set.route(&b);
    super::set_copy_all_columns(false);
    let key = |r: &Routed| -> Vec<(usize, String, RecordBatch)> {
        let mut v: Vec<_> = r
            .pieces
            .iter()
            .map(|p| (p.rule, p.partition.clone(), p.batch.clone()))
            .collect();
        v.sort_by(|x, y| (x.0, &x.1).cmp(&(y.0, &y.1)));
        v
    };
    assert_eq!(narrow.pieces.len(), full.pieces.len());
    assert!(narrow.pieces.len() >= 4);
    assert_eq!(key(&narrow), key(&full));
    assert_eq!(narrow.matched_rows, full.matched_rows);
}

#[test]
fn a_rule_every_row_of_a_batch_passes_shares_the_source_columns() {
    let files = rule_files(&[
        (
            "all.sql",
            "CREATE TABLE all_rows PARTITIONED BY (dt) AS SELECT event_id, props, dt FROM ods_events WHERE 1 = 1 AND (mid IS NULL OR mid IS NOT NULL)",
        ),
        (
            "some.sql",
            "CREATE TABLE some_rows AS SELECT event_id, props FROM ods_events WHERE event_type = 'click'",
        ),
    ]);
    let set = RuleSet::compile_all(files, "ods_events", &schema()).unwrap();
    let b = batch(2000);
    let _mode = COPY_MODE.lock().unwrap_or_else(|p| p.into_inner());
    let routed = set.route(&b);
    let values = |a: &ArrayRef| a.to_data().buffers()[1].as_ptr();
    let props = b.column_by_name("props").unwrap();
    let all = routed.pieces.iter().find(|p| p.rule == 0).unwrap();
    assert_eq!(all.batch.num_rows(), 2000);
    assert_eq!(
        values(all.batch.column_by_name("props").unwrap()),
        values(props),
        "every row passed: the piece holds the source's own buffers, not a copy"
    );
    let some = routed.pieces.iter().find(|p| p.rule == 1).unwrap();
    assert!(some.batch.num_rows() < 2000);
    assert_ne!(
        values(some.batch.column_by_name("props").unwrap()),
        values(props)
    );
    same_as_each_rule_alone(&set, &b, &routed);
}

/// Held by the tests that flip or depend on the process-wide copy mode
/// (`set_copy_all_columns`, a bench switch).
static COPY_MODE: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn same_as_each_rule_alone(set: &RuleSet, b: &RecordBatch, routed: &Routed) {
    for p in &routed.pieces {
        let (_, whole) = set.evaluate(p.rule, b).unwrap();
        let whole = whole.unwrap();
        let data = whole.project(&set.rules[p.rule].data_idx).unwrap();
        assert_eq!(p.batch, data);
    }
}

#[test]
fn an_indexed_rule_copies_its_selected_columns_once_and_only_for_rows_that_pass() {
    let files = rule_files(&[
        (
            "a.sql",
            "CREATE TABLE a AS SELECT event_id, props FROM ods_events WHERE event_type = 'click' AND mid LIKE 'm0%'",
        ),
        (
            "b.sql",
            "CREATE TABLE b AS SELECT event_id FROM ods_events WHERE event_type IN ('view', 'click')",
        ),
    ]);
    let set = RuleSet::compile_all(files, "ods_events", &schema()).unwrap();
    assert!(set.index.is_some());
    let b = batch(3000);
    // The copy mode is process-wide: not while another test flips it.
    let _mode = COPY_MODE.lock().unwrap_or_else(|p| p.into_inner());
    super::narrow::copies::take();
    let routed = set.route(&b);
    let copied = super::narrow::copies::take();
    let a_rows: usize = routed
        .pieces
        .iter()
        .filter(|p| p.rule == 0)
        .map(|p| p.batch.num_rows())
        .sum();
    assert!(a_rows > 0);
    assert_eq!(
        copied.get("props").copied(),
        Some(a_rows),
        "props is copied once, for the rows that pass: {copied:?}"
    );
    same_as_each_rule_alone(&set, &b, &routed);
}
