//! The state store's own tests: prepare, commit, pruning, versions.

use super::tests_support::reopen;
use super::*;

fn rec(offset: u64, status: FileStatus) -> FileRecord {
    FileRecord {
        v: 1,
        size: 10,
        mtime_ms: 5,
        status,
        splits: vec![SplitRecord {
            row_groups: (0, 1),
            rows: 100,
            offset,
        }],
        changed_reported: false,
    }
}

#[test]
fn prepare_commit_roundtrip() {
    let dir = tempfile::tempdir().unwrap();
    let s = StateStore::open(dir.path()).unwrap();
    assert_eq!(s.next_epoch().unwrap(), 1);
    let staged = StagedFile {
        table: "t".into(),
        partition: "dt=1".into(),
        staged: "a".into(),
        final_path: "b".into(),
        rows: 3,
        bytes: 4,
        upload: None,
    };
    s.prepare(&Prepare {
        epoch: 1,
        files: vec![staged.clone()],
        file_updates: vec![("x.parquet".into(), rec(40, FileStatus::Active))],
        watermark_ms: Some(5),
        now_ms: 9,
        table_schemas: vec![("t".into(), "{\"v\":1}".into())],
        ..Default::default()
    })
    .unwrap();
    drop(s);
    let s = reopen(dir.path());
    assert_eq!(
        s.table_schemas().unwrap(),
        BTreeMap::from([("t".to_string(), "{\"v\":1}".to_string())])
    );
    assert_eq!(s.next_epoch().unwrap(), 2);
    assert_eq!(s.watermark_ms().unwrap(), Some(5));
    assert_eq!(s.files().unwrap()["x.parquet"].splits[0].offset, 40);
    let e = s.epochs().unwrap();
    assert_eq!(e[0].state, EpochState::Prepared);
    assert_eq!(e[0].files, vec![staged]);
    s.mark_committed(1, 10).unwrap();
    assert_eq!(s.epochs().unwrap()[0].state, EpochState::Committed);
}

#[test]
fn newer_state_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = StateStore::open(dir.path()).unwrap();
        s.db.insert(K_VERSION, encode(&(STATE_VERSION + 1)))
            .unwrap();
        s.db.flush().unwrap();
    }
    let e = loop {
        match StateStore::open(dir.path()) {
            Err(StateError::Open { .. } | StateError::Locked { .. }) => {
                std::thread::sleep(std::time::Duration::from_millis(20))
            }
            Err(e) => break e.to_string(),
            Ok(_) => panic!("newer state was accepted"),
        }
    };
    assert!(
        e.contains(&format!(
            "was written by sluice state format {}; this binary supports up to {STATE_VERSION}; upgrade sluice",
            STATE_VERSION + 1
        )),
        "{e}"
    );
    assert!(e.contains(&dir.path().display().to_string()), "{e}");
}

#[test]
fn quarantine_reason_survives() {
    let dir = tempfile::tempdir().unwrap();
    let s = StateStore::open(dir.path()).unwrap();
    let r = rec(
        0,
        FileStatus::Quarantined {
            reason: "bad magic".into(),
            at_ms: 1,
        },
    );
    s.put_file("bad.parquet", &r).unwrap();
    assert_eq!(s.files().unwrap()["bad.parquet"], r);
}

#[test]
fn utc_days() {
    assert_eq!(utc_day(0), "1970-01-01");
    assert_eq!(utc_day(-1), "1969-12-31");
    // 2026-11-20T13:00:00Z
    assert_eq!(utc_day(1_795_179_600_000), "2026-11-20");
    // 2024-02-29T23:59:59.999Z, then the next day
    assert_eq!(utc_day(1_709_251_199_999), "2024-02-29");
    assert_eq!(utc_day(1_709_251_200_000), "2024-03-01");
}

#[test]
fn rows_per_table_and_day_are_counted_at_prepare_and_pruned() {
    let dir = tempfile::tempdir().unwrap();
    let s = StateStore::open(dir.path()).unwrap();
    let f = |table: &str, rows: u64| StagedFile {
        table: table.into(),
        partition: String::new(),
        staged: "s".into(),
        final_path: "f".into(),
        rows,
        bytes: 1,
        upload: None,
    };
    let day1 = 1_795_179_600_000;
    for (epoch, now) in [(1, day1), (2, day1 + 1000)] {
        s.prepare(&Prepare {
            epoch,
            files: vec![f("a", 3), f("a", 4), f("b", 1)],
            now_ms: now,
            ..Default::default()
        })
        .unwrap();
    }
    let rows = s.table_rows("2026-11-20").unwrap();
    assert_eq!(rows.get("a"), Some(&14));
    assert_eq!(rows.get("b"), Some(&2));
    // Ten days later the old day is dropped.
    s.prepare(&Prepare {
        epoch: 3,
        files: vec![f("a", 5)],
        now_ms: day1 + 10 * 86_400_000,
        ..Default::default()
    })
    .unwrap();
    assert!(s.table_rows("2026-11-20").unwrap().is_empty());
    assert_eq!(s.table_rows("2026-11-30").unwrap().get("a"), Some(&5));
}

#[test]
fn a_locked_state_says_stop_the_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let _held = StateStore::open(dir.path()).unwrap();
    let e = StateStore::open(dir.path()).err().unwrap().to_string();
    assert!(e.contains("stop the daemon first"), "{e}");
}
