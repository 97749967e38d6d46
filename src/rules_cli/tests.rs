//! The workbench over the demo's rules: a passing and a failing test file,
//! located errors, sample files, explain.

use super::testrun::run_one;
use super::*;
use crate::demo;
use std::path::PathBuf;

/// The demo's source columns plus its dimension's (as `rules test` sees them).
fn schema() -> SourceSchema {
    let s = SourceSchema::new(demo::event_schema(), vec!["dt".into(), "hour".into()]);
    let mut fields: Vec<arrow::datatypes::Field> =
        s.full.fields().iter().map(|f| f.as_ref().clone()).collect();
    for c in ["dept", "business", "owner"] {
        fields.push(arrow::datatypes::Field::new(
            c,
            arrow::datatypes::DataType::Utf8,
            true,
        ));
    }
    SourceSchema {
        full: Arc::new(arrow::datatypes::Schema::new(fields)),
        ..s
    }
}

fn rules(schema: &SourceSchema) -> RuleSet {
    let files = demo::DEMO_RULES
        .iter()
        .map(|(n, sql)| (PathBuf::from(n), sql.to_string()))
        .collect();
    RuleSet::compile_all(files, "ods_events", &schema.full).unwrap()
}

const TEST: &str = r#"name = "android click"
[[input]]
event_id = "e1"
event_type = "click"
app_source = "android"
event_time = 1795132800000
dt = "2026-11-20"
hour = "00"
[[input]]
event_id = "e2"
event_type = "click"
app_source = "ios"
[[expect.dwd_click_android]]
event_id = "e1"
event_time = 1795132800000
hour = "00"
[expect]
dwd_view = []
"#;

fn run(text: &str) -> Result<Option<String>, RulesCliError> {
    let s = schema();
    // As `rules test` does: a column a row leaves out is NULL.
    let full = Arc::new(arrow::datatypes::Schema::new(
        s.full
            .fields()
            .iter()
            .map(|f| f.as_ref().clone().with_nullable(true))
            .collect::<Vec<_>>(),
    ));
    let rules = RuleSet::compile_all(
        demo::DEMO_RULES
            .iter()
            .map(|(n, sql)| (PathBuf::from(n), sql.to_string()))
            .collect(),
        "ods_events",
        &full,
    )
    .unwrap();
    let t = spec::parse_test(Path::new("t.toml"), text)?;
    run_one(&rules, &full, &t)
}

use std::sync::Arc;

#[test]
fn a_matching_expectation_passes() {
    assert_eq!(run(TEST).unwrap(), None);
}

#[test]
fn a_wrong_expectation_shows_a_diff() {
    let wrong = TEST.replace(
        "[[expect.dwd_click_android]]\nevent_id = \"e1\"",
        "[[expect.dwd_click_android]]\nevent_id = \"e2\"",
    );
    let report = run(&wrong).unwrap().expect("should fail");
    assert!(
        report.contains("dwd_click_android (compared on event_id, event_time, hour)"),
        "{report}"
    );
    assert!(
        report.contains("- {event_id = \"e2\", event_time = 1795132800000, hour = \"00\"}"),
        "{report}"
    );
    assert!(
        report.contains("+ {event_id = \"e1\", event_time = 1795132800000, hour = \"00\"}"),
        "{report}"
    );
    // An empty expectation fails when the table gets a row.
    let report = run(&TEST.replace("dwd_view = []", "dwd_click_ios = []"))
        .unwrap()
        .expect("should fail");
    assert!(report.contains("+ {}"), "{report}");
}

#[test]
fn bad_test_files_are_located() {
    let e = run(&TEST.replace("app_source = \"ios\"", "app_sauce = \"ios\""))
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("t.toml:12:1: the source has no column app_sauce"),
        "{e}"
    );
    let e = run(&TEST.replace("[[expect.dwd_click_android]]", "[[expect.dwd_nope]]"))
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("t.toml:13:10: no rule writes table dwd_nope"),
        "{e}"
    );
    let e = run(&TEST.replace(
        "event_time = 1795132800000\nhour",
        "event_time = \"soon\"\nhour",
    ))
    .unwrap_err()
    .to_string();
    assert!(
        e.starts_with("t.toml:15:14: event_time: \"soon\" is not a valid Int64"),
        "{e}"
    );
    let e = run(&TEST.replace("hour = \"00\"\n[expect]", "spm = \"00\"\n[expect]"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("table dwd_click_android has no column spm"),
        "{e}"
    );
}

#[test]
fn csv_and_ndjson_samples_get_partition_columns_from_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("dt=2026-11-20/hour=07");
    std::fs::create_dir_all(&sub).unwrap();
    let csv = sub.join("s.csv");
    std::fs::write(
        &csv,
        "event_id,event_type,app_source,event_time\ne1,click,android,1795132800000\ne2,view,ios,1795132800001\n",
    )
    .unwrap();
    let s = input::read_sample(&csv, None).unwrap();
    assert_eq!(s.schema.partition_columns, vec!["dt", "hour"]);
    let hour = s.batch.column_by_name("hour").unwrap();
    assert_eq!(compare::cell(hour.as_ref(), 1).as_deref(), Some("07"));
    let json = sub.join("s.ndjson");
    std::fs::write(
        &json,
        "{\"event_id\":\"e1\",\"event_type\":\"click\",\"hour\":\"03\"}\n",
    )
    .unwrap();
    let s = input::read_sample(&json, Some(&["hour".to_string()])).unwrap();
    let hour = s.batch.column_by_name("hour").unwrap();
    assert_eq!(compare::cell(hour.as_ref(), 0).as_deref(), Some("03"));
}

#[test]
fn explain_names_everything_an_analyst_asks_about() {
    let s = schema();
    let set = rules(&s);
    let i = find_rule(&set, "dwd_click_android.sql").unwrap();
    let text = explain::explain(&set, i, &s, &[]);
    for want in [
        "rule dwd_click_android (dwd_click_android.sql)",
        "normalized:\n  SELECT ",
        "WHERE ((ods_events.event_type = 'click') AND (ods_events.app_source = 'android'))",
        "plan:\n  Projection: ",
        "partitioned by: dt, hour",
        "  event_type: Utf8\n",
        "  dt: Utf8  (Hive partition of the source path)",
        "  event_type = 'click'\n  app_source = 'android'",
        "the rule set indexes event_type: this rule only sees rows whose event_type it pins",
        "  event_time: Int64 nullable\n",
        "  hour: Utf8 nullable  (partition: in the path, not in the files)",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
    let e = find_rule(&set, "nope").unwrap_err().to_string();
    assert!(
        e.contains("no rule writes table nope; tables: dwd_click_android"),
        "{e}"
    );
}

#[test]
fn the_demo_setup_ships_passing_rule_tests() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = demo::write_demo_setup(dir.path()).unwrap();
    let cfg = crate::config::Config::load(&cfg).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let s = run_test_files(&cfg, rt.handle()).unwrap();
    assert!(s.invalid.is_empty(), "{:?}", s.invalid);
    assert_eq!((s.passed, s.failed), (4, 0), "{}", s.text);
    assert!(s.text.contains("_source.toml"), "{}", s.text);
}

#[test]
fn a_rule_failing_on_an_input_row_names_the_row() {
    let s = schema();
    let full = Arc::new(arrow::datatypes::Schema::new(
        s.full
            .fields()
            .iter()
            .map(|f| f.as_ref().clone().with_nullable(true))
            .collect::<Vec<_>>(),
    ));
    let rules = RuleSet::compile_all(
        vec![(
            PathBuf::from("t_n.sql"),
            "CREATE TABLE t_n AS SELECT event_id, CAST(props AS BIGINT) AS n FROM ods_events;\n"
                .into(),
        )],
        "ods_events",
        &full,
    )
    .unwrap();
    let text = "[[input]]\nevent_id = \"e1\"\nprops = \"12\"\n\n[[input]]\nevent_id = \"e2\"\nprops = \"twelve\"\n\n[[expect.t_n]]\nevent_id = \"e1\"\nn = 12\n";
    let t = spec::parse_test(Path::new("t.toml"), text).unwrap();
    let report = run_one(&rules, &full, &t).unwrap().expect("should fail");
    assert!(
        report.contains("t_n: rule t_n.sql fails on the [[input]] at line 5: Arrow error: Cast error: Cannot cast string 'twelve'"),
        "{report}"
    );
    // The good row still reached the table: no diff lines.
    assert!(
        !report.contains("- {") && !report.contains("+ {"),
        "{report}"
    );
}

#[test]
fn explain_marks_dimension_columns() {
    let s = schema();
    let set = rules(&s);
    let i = find_rule(&set, "dwd_dept_events").unwrap();
    let dims: Vec<(String, String)> = ["dept", "business", "owner"]
        .iter()
        .map(|c| (c.to_string(), "dim_spmid".to_string()))
        .collect();
    let text = explain::explain(&set, i, &s, &dims);
    assert!(
        text.contains("  dept: Utf8  (from dimension dim_spmid)"),
        "{text}"
    );
    assert!(
        text.contains("  dt: Utf8  (Hive partition of the source path)"),
        "{text}"
    );
    assert!(text.contains("partitioned by: dt, dept"), "{text}");
}

#[test]
fn a_sample_with_some_columns_gets_the_others_as_null() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = demo::write_demo_setup(dir.path()).unwrap();
    let cfg = crate::config::Config::load(&cfg).unwrap();
    let sample = dir.path().join("dt=2026-11-20/hour=03/sample.csv");
    std::fs::create_dir_all(sample.parent().unwrap()).unwrap();
    std::fs::write(
        &sample,
        "event_id,event_type,app_source\ne1,click,android\ne2,view,ios\n",
    )
    .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let out = super::testrun::run_adhoc(&cfg, &sample, Some("dwd_click_android"), 20, rt.handle())
        .unwrap();
    assert!(out.contains("not in the sample, so NULL"), "{out}");
    assert!(out.contains("mid"), "{out}");
    assert!(out.contains("| e1 "), "{out}");
    assert!(!out.contains("| e2 "), "{out}");
}
