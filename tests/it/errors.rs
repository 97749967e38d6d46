//! `rules.on_error`: a rule that fails on some rows still writes the others,
//! and the failing rows go, exactly once, to `_errors/<table>/dt=.../` with
//! the message and the rule (or are only counted, with "drop").

use crate::support::*;
use arrow::array::AsArray;
use std::collections::BTreeMap;

/// Fails on clicks: their `n` is CAST('x' AS BIGINT).
const T_CAST: &str = "CREATE TABLE t_cast PARTITIONED BY (dt)\nAS SELECT event_id, CAST(CASE WHEN event_type = 'click' THEN 'x' ELSE '1' END AS BIGINT) AS n, dt\nFROM ods_events\nWHERE event_type IN ('click', 'view');\n";

/// event_id -> event_type of every input row.
fn input_types(env: &Env) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (_, batches) in visible_files(&env.ods(), &[]) {
        for b in batches {
            let id = b.column_by_name("event_id").unwrap().as_string::<i32>();
            let t = b.column_by_name("event_type").unwrap().as_string::<i32>();
            for i in 0..b.num_rows() {
                out.insert(id.value(i).to_string(), t.value(i).to_string());
            }
        }
    }
    out
}

fn ids_of(t: &str, types: &BTreeMap<String, String>) -> Vec<String> {
    types
        .iter()
        .filter(|(_, ty)| *ty == t)
        .map(|(id, _)| id.clone())
        .collect()
}

#[test]
fn failing_rows_go_to_the_error_output_and_the_rest_lands() {
    let mut env = Env::new("");
    std::fs::write(env.path().join("rules/t_cast.sql"), T_CAST).unwrap();
    env.add_file(0, 1500);
    env.add_file(1, 1500);
    let out = env.run_once();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("rule failed on rows of a batch; its other rows land, these are written to the table's error output"),
        "{stderr}"
    );
    let types = input_types(&env);
    let actual = actual_tables(&env.sink());
    let got: Vec<String> = actual["t_cast"].keys().cloned().collect();
    assert_eq!(got, ids_of("view", &types), "every view lands in t_cast");
    assert!(actual["t_cast"].values().all(|n| *n == 1));

    // The clicks are in the error output, once each, with message and rule.
    let errors = env.sink().join("_errors/t_cast");
    let files = visible_files(&errors, &[]);
    assert!(!files.is_empty());
    let mut ids = Vec::new();
    for (rel, batches) in files {
        assert!(rel.starts_with("dt=2026-11-20/part-"), "{rel}");
        for b in batches {
            let id = b.column_by_name("event_id").unwrap().as_string::<i32>();
            let err = b.column_by_name("_error").unwrap().as_string::<i32>();
            let rule = b.column_by_name("_rule").unwrap().as_string::<i32>();
            assert!(b.column_by_name("hour").is_some(), "source columns kept");
            for i in 0..b.num_rows() {
                ids.push(id.value(i).to_string());
                assert!(
                    err.value(i).contains("Cannot cast string 'x'"),
                    "{}",
                    err.value(i)
                );
                assert_eq!(rule.value(i), "t_cast.sql");
            }
        }
    }
    ids.sort();
    assert_eq!(ids, ids_of("click", &types));
    // The other tables are untouched by t_cast's failures.
    let expected = expected_tables(&env.ods(), &[]);
    for (t, want) in &expected {
        assert_eq!(&actual[t], want, "{t}");
    }
}

#[test]
fn on_error_drop_counts_and_writes_nothing() {
    let mut env = Env::new("");
    let cfg = std::fs::read_to_string(env.config()).unwrap();
    std::fs::write(
        env.config(),
        cfg.replace("dir = \"rules\"", "dir = \"rules\"\non_error = \"drop\""),
    )
    .unwrap();
    std::fs::write(env.path().join("rules/t_cast.sql"), T_CAST).unwrap();
    env.add_file(0, 1000);
    let out = env.run_once();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("these are dropped"), "{stderr}");
    assert!(!env.sink().join("_errors").exists());
    let types = input_types(&env);
    let got: Vec<String> = actual_tables(&env.sink())["t_cast"]
        .keys()
        .cloned()
        .collect();
    assert_eq!(got, ids_of("view", &types));
}
