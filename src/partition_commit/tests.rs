//! The committer end to end on a real state and an in-memory sink: a unit
//! waits while any of its leaves has an open file, then gets one
//! `_SUCCESS` in the time partition's directory, and every leaf record
//! notes what was announced for it; late rows into one leaf re-commit the
//! whole unit once.

use super::*;
use crate::checkpoint::{Prepare, StagedFile};
use crate::config::{TimeColumns, TimeFormat};
use futures::TryStreamExt;
use object_store::memory::InMemory;

const H13: &str = "dt=2026-11-20/hour=13";
const CLICK: &str = "dt=2026-11-20/hour=13/event_type=click";
const VIEW: &str = "dt=2026-11-20/hour=13/event_type=view";
const H14_CLICK: &str = "dt=2026-11-20/hour=14/event_type=click";
/// Long after the day.
const NOW: i64 = 1_795_132_800_000 + 3 * 24 * 3_600_000;

fn cfg() -> PartitionCommitConfig {
    PartitionCommitConfig {
        time_columns: TimeColumns {
            day: ("dt".into(), TimeFormat::parse("%Y-%m-%d").unwrap()),
            hour: Some(("hour".into(), TimeFormat::parse("%H").unwrap())),
        },
        utc_offset_s: 0,
        delay: Duration::ZERO,
        idle_close: None,
        success_file: true,
        webhook: None,
        command: None,
        command_timeout: Duration::from_secs(10),
        retry_backoff: Duration::from_millis(10),
        retry_max_backoff: Duration::from_millis(100),
    }
}

fn staged(partition: &str, rows: u64) -> StagedFile {
    StagedFile {
        table: "t".into(),
        partition: partition.into(),
        staged: "s".into(),
        final_path: "f".into(),
        rows,
        bytes: 1,
        upload: None,
    }
}

fn add(state: &StateStore, epoch: u64, files: Vec<StagedFile>) {
    let track = files
        .iter()
        .map(|f| (f.table.clone(), f.partition.clone()))
        .collect();
    state
        .prepare(&Prepare {
            epoch,
            files,
            track_partitions: track,
            ..Default::default()
        })
        .unwrap();
}

/// Every object in the sink.
fn objects(rt: &tokio::runtime::Runtime, store: &Arc<InMemory>) -> Vec<String> {
    let metas: Vec<object_store::ObjectMeta> = rt.block_on(store.list(None).try_collect()).unwrap();
    let mut out: Vec<String> = metas.into_iter().map(|m| m.location.to_string()).collect();
    out.sort();
    out
}

/// (leaf, committed_rows, late_count) of every record.
fn announced(state: &StateStore) -> Vec<(String, u64, u64)> {
    state
        .partitions()
        .unwrap()
        .into_iter()
        .map(|r| (r.partition, r.committed_rows, r.late_count))
        .collect()
}

#[test]
fn a_unit_waits_for_its_open_leaves_then_commits_once_for_all_of_them() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let state = StateStore::open(dir.path()).unwrap();
    add(
        &state,
        1,
        vec![staged(CLICK, 3), staged(VIEW, 4), staged(H14_CLICK, 2)],
    );
    let store = Arc::new(InMemory::new());
    let mut pc = PartitionCommitter::start(
        &cfg(),
        SourceMode::Marker,
        store.clone(),
        rt.handle().clone(),
        Arc::new(Metrics::default()),
    )
    .unwrap();
    // Hour 13 of the source is marked and done; hour 14 is still read.
    let source = [
        ("dt=2026-11-20/hour=13/a.parquet", false),
        ("dt=2026-11-20/hour=14/b.parquet", true),
    ];
    let tick = |pc: &mut PartitionCommitter, open: &BTreeSet<(String, String)>| {
        pc.tick(&state, source, open, NOW).unwrap();
    };

    // The view leaf still has an open file: the whole hour waits.
    let open: BTreeSet<(String, String)> = [("t".to_string(), VIEW.to_string())].into();
    for _ in 0..5 {
        tick(&mut pc, &open);
        std::thread::sleep(Duration::from_millis(40));
    }
    assert!(objects(&rt, &store).is_empty());
    assert!(announced(&state).iter().all(|(_, c, _)| *c == 0));

    // Closed: one commit for the hour, recorded on both leaves.
    let none = BTreeSet::new();
    let t0 = std::time::Instant::now();
    while announced(&state)[0].1 == 0 {
        assert!(t0.elapsed() < Duration::from_secs(10), "never committed");
        tick(&mut pc, &none);
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(objects(&rt, &store), [format!("t/{H13}/_SUCCESS")]);
    assert_eq!(
        announced(&state),
        [
            (CLICK.to_string(), 3, 0),
            (VIEW.to_string(), 4, 0),
            (H14_CLICK.to_string(), 0, 0),
        ]
    );

    // Late rows into the click leaf: the hour again, as one unit.
    add(&state, 2, vec![staged(CLICK, 2)]);
    let t0 = std::time::Instant::now();
    while announced(&state)[0].1 == 3 {
        assert!(t0.elapsed() < Duration::from_secs(10), "never re-committed");
        tick(&mut pc, &none);
        std::thread::sleep(Duration::from_millis(20));
    }
    for _ in 0..5 {
        tick(&mut pc, &none);
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        announced(&state),
        [
            (CLICK.to_string(), 5, 1),
            (VIEW.to_string(), 4, 1),
            (H14_CLICK.to_string(), 0, 0),
        ]
    );
    assert_eq!(objects(&rt, &store), [format!("t/{H13}/_SUCCESS")]);
    pc.finish(&state, true).unwrap();
}
