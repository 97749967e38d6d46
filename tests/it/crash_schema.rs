//! Exactly once across source schema changes. Every run brings files with
//! columns no file had before (and one widening, `w` from Int32 to Int64)
//! beside files of the first shape, and the real binary is SIGKILLed at
//! each phase of the change: when a file needing it is found (nothing
//! recorded), after the prepare that records it, during the recovery that
//! rolls that prepare forward, after its epoch committed (readers not yet
//! switched), and at the ordinary checkpoint phases and random moments.
//!
//! Afterwards every table equals the rows computed from the input, no file
//! is quarantined, the committed schema has every column, each change is in
//! the history exactly once (a change lost with a crash before its prepare
//! is found again, never recorded twice), and a rule over an evolved column
//! gets the values of the files read after it was added.

use crate::crash::wait_or_kill;
use crate::support::*;
use arrow::array::{Array, ArrayRef, AsArray, Int32Array, Int64Array, RecordBatch, StringArray};
use sluice::demo::Rng;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// The `i`th run's new shape: columns `x0..=x{i}` (`xK-<event_id>`), `w`
/// (Int32 before run 5, Int64 from it), and, every other run, no `props`.
fn evolved(i: usize) -> impl Fn(RecordBatch) -> RecordBatch {
    move |b: RecordBatch| {
        let ids = b.column_by_name("event_id").unwrap().as_string::<i32>();
        let mut add: Vec<(String, ArrayRef)> = (0..=i)
            .map(|k| {
                let v = StringArray::from_iter_values(
                    ids.iter()
                        .map(|id| format!("x{k}-{}", id.unwrap_or_default())),
                );
                (format!("x{k}"), Arc::new(v) as ArrayRef)
            })
            .collect();
        let n = b.num_rows();
        let w: ArrayRef = if i < 5 {
            Arc::new(Int32Array::from_iter_values(0..n as i32))
        } else {
            Arc::new(Int64Array::from_iter_values(0..n as i64))
        };
        add.push(("w".into(), w));
        let drop: &[&str] = if i.is_multiple_of(2) { &["props"] } else { &[] };
        reshape(
            &b,
            drop,
            add.iter().map(|(n, a)| (n.as_str(), a.clone())).collect(),
        )
    }
}

#[test]
fn sigkill_around_source_schema_changes_loses_and_duplicates_nothing() {
    let mut env = Env::new("");
    let mut rng = Rng::new(16);
    for h in 0..2 {
        env.add_file(h, 2000);
    }
    // schema_change_prepared leaves a prepared epoch recording a change:
    // during_recovery follows it and rolls it forward.
    let plan: [Option<&str>; 8] = [
        Some("schema_change_found"),
        Some("schema_change_prepared"),
        Some("during_recovery"),
        Some("schema_change_committed"),
        Some("mid_read"),
        Some("before_prepare"),
        None,
        Some("after_prepare"),
    ];
    let mut hits: BTreeMap<&str, u32> = Default::default();
    let iterations = 12;
    for i in 0..iterations {
        let phase = plan[i % plan.len()];
        env.add_file(rng.below(4) as u32, 500 + rng.below(1500) as usize);
        env.add_file_with(
            rng.below(4) as u32,
            400 + rng.below(1200) as usize,
            evolved(i),
        );
        let at = phase.map(|p| match p {
            // A run reads a few thousand rows in batches of 256.
            "mid_read" => format!("{p}:{}", 1 + rng.below(10)),
            _ => p.to_string(),
        });
        let child = env.spawn_daemon(at.as_deref());
        let limit = match phase {
            None => Duration::from_millis(200 + rng.below(1500)),
            Some(_) => Duration::from_secs(6),
        };
        let (stderr, _) = wait_or_kill(child, limit);
        if let Some(p) = phase
            && stderr.contains(&format!("crash point {p} reached"))
        {
            *hits.entry(p).or_default() += 1;
        }
        assert!(
            !stderr.contains("panicked"),
            "iteration {i} panicked:\n{stderr}"
        );
    }
    for p in [
        "mid_read",
        "schema_change_found",
        "schema_change_prepared",
        "during_recovery",
        "schema_change_committed",
    ] {
        assert!(
            hits.get(p).copied().unwrap_or(0) >= 1,
            "crash point {p} was never reached: {hits:?}"
        );
    }

    // A rule over an evolved column, and one more file that carries it.
    std::fs::write(
        env.path().join("rules/t_x.sql"),
        "CREATE TABLE t_x\nAS SELECT event_id, x0 FROM ods_events WHERE x0 IS NOT NULL;\n",
    )
    .unwrap();
    let last = env.add_file_with(1, 700, evolved(iterations));
    let out = env.run_once();
    let log = output_text(&out);
    assert!(out.status.success(), "final --once failed:\n{log}");

    let mut actual = actual_tables(&env.sink());
    let t_x = actual.remove("t_x").unwrap_or_default();
    let expected = expected_tables(&env.ods(), &[]);
    let diffs = diff_tables(&expected, &actual);
    assert!(
        diffs.is_empty(),
        "output differs from input after {iterations} crashes around schema changes:\n{}",
        diffs.join("\n")
    );
    assert_eq!(staged_files(&env.sink()), 0, "staged files left behind");

    let show = env.state_show();
    assert!(!show.contains("quarantined "), "{show}");
    let schema = show
        .lines()
        .find(|l| l.starts_with("source schema: "))
        .unwrap_or_default();
    for k in 0..=iterations {
        assert!(schema.contains(&format!("x{k} Utf8")), "x{k}: {schema}");
        let recorded = show
            .lines()
            .filter(|l| l.contains(&format!("gained column x{k} (Utf8)")))
            .count();
        assert_eq!(recorded, 1, "x{k} recorded {recorded} times:\n{show}");
    }
    assert!(schema.contains("w Int64"), "{schema}");
    assert!(
        show.contains("widened column w from Int32 to Int64"),
        "{show}"
    );

    // t_x: the last file's rows with their x0, nothing twice.
    let f = std::fs::File::open(&last).unwrap();
    let want: Vec<String> =
        parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f)
            .unwrap()
            .build()
            .unwrap()
            .flat_map(|b| {
                let b = b.unwrap();
                let ids = b
                    .column_by_name("event_id")
                    .unwrap()
                    .as_string::<i32>()
                    .clone();
                (0..ids.len()).map(move |i| ids.value(i).to_string())
            })
            .collect();
    for id in &want {
        assert_eq!(t_x.get(id), Some(&1), "{id} not once in t_x");
    }
    assert!(t_x.values().all(|n| *n == 1), "a row twice in t_x");
    for (rel, batches) in visible_files(&env.sink(), &[]) {
        if !rel.starts_with("t_x/") {
            continue;
        }
        for b in batches {
            let ids = b.column_by_name("event_id").unwrap().as_string::<i32>();
            let x0 = b.column_by_name("x0").unwrap().as_string::<i32>();
            for i in 0..b.num_rows() {
                assert!(x0.is_valid(i));
                assert_eq!(x0.value(i), format!("x0-{}", ids.value(i)));
            }
        }
    }
    eprintln!(
        "schema crash test: {iterations} runs ({hits:?}), {} table rows verified",
        expected.values().map(|t| t.len()).sum::<usize>()
    );
}
