//! A hot partition spread over the writers: its rows go to one file per
//! writer, every row lands exactly once, and the spread is taken from the
//! state at start (the decision itself is tested in `spread`).

use super::coordinator::{RunMode, run};
use crate::checkpoint::{Prepare, StateStore};
use crate::config::Config;
use crate::telemetry::Metrics;
use arrow::array::{Array, AsArray};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

fn config(dir: &Path) -> Config {
    let ods = dir.join("ods");
    for (hour, id) in [(0, 1), (1, 2), (2, 3)] {
        let p = crate::demo::file_path(&ods, "2026-11-20", hour, id);
        crate::demo::write_event_file(&p, id, 4000, 500, crate::demo::DAY_START_MS).unwrap();
    }
    std::fs::create_dir_all(dir.join("rules")).unwrap();
    // One partition takes every row.
    std::fs::write(
        dir.join("rules/t_all.sql"),
        "CREATE TABLE t_all PARTITIONED BY (dt)\nAS SELECT event_id, dt FROM ods_events;\n",
    )
    .unwrap();
    let text = "version = 1\n[source]\nname = \"ods_events\"\nroot = \"ods\"\nmin_age = \"0s\"\n[state]\ndir = \"state\"\n[sink]\nroot = \"dwd\"\nwriters = 2\n[rules]\ndir = \"rules\"\n[read]\nreaders = 2\nbatch_rows = 256\nsplit_size = \"16KiB\"\n[http]\nenabled = false\n";
    Config::parse(text, &dir.join("sluice.toml")).unwrap()
}

/// event_id -> times it is in the output, and the files holding them.
fn output(dir: &Path) -> (BTreeMap<String, u32>, usize) {
    let mut out = BTreeMap::new();
    let part = dir.join("dwd/t_all/dt=2026-11-20");
    let mut files = 0;
    for e in std::fs::read_dir(&part).unwrap() {
        let p = e.unwrap().path();
        files += 1;
        let f = std::fs::File::open(&p).unwrap();
        let r = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f)
            .unwrap()
            .build()
            .unwrap();
        for b in r {
            let b = b.unwrap();
            let ids = b.column_by_name("event_id").unwrap().as_string::<i32>();
            for i in 0..ids.len() {
                *out.entry(ids.value(i).to_string()).or_default() += 1;
            }
        }
    }
    (out, files)
}

#[test]
fn a_spread_partition_gets_a_file_per_writer_and_every_row_once() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    {
        // The last run measured t_all's partition as hot.
        let state = StateStore::open(&dir.path().join("state")).unwrap();
        let factors: super::spread::Factors =
            [(("t_all".to_string(), "dt=2026-11-20".to_string()), 2)].into();
        let json = serde_json::to_string(&super::spread::Stored::from_factors(&factors)).unwrap();
        state
            .prepare(&Prepare {
                epoch: 1,
                now_ms: 1,
                spread: Some(json),
                ..Default::default()
            })
            .unwrap();
        state.mark_committed(1, 20).unwrap();
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    run(
        &cfg,
        RunMode::Once,
        Arc::new(Metrics::default()),
        rt.handle().clone(),
    )
    .unwrap();
    let (rows, files) = output(dir.path());
    assert_eq!(rows.len(), 12_000);
    assert!(rows.values().all(|n| *n == 1), "a row landed twice");
    assert_eq!(files, 2, "one file per writer");
}
