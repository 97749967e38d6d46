//! Writers over a real local store: coalescing keeps every row, and
//! shedding keeps memory under its limit with many open files.

use super::*;
use crate::demo;

fn setup() -> (
    tempfile::TempDir,
    tokio::runtime::Runtime,
    Arc<dyn ObjectStore>,
) {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let store: Arc<dyn ObjectStore> =
        Arc::new(object_store::local::LocalFileSystem::new_with_prefix(dir.path()).unwrap());
    (dir, rt, store)
}

fn settings() -> SinkSettings {
    SinkSettings {
        target_file_size: 128 << 20,
        row_group_rows: 1 << 20,
        zstd_level: 3,
        part_size: LOCAL_PART_SIZE,
    }
}

/// Writes `batches` of `rows` demo events, each cut into `parts` pieces
/// spread over `parts` partitions of one table.
fn write_many(w: &mut EpochWriters, batches: u64, rows: usize, parts: usize) -> u64 {
    let mut total = 0;
    for b in 0..batches {
        let batch = demo::events(b, 0, rows, demo::DAY_START_MS);
        let per = rows / parts;
        for p in 0..parts {
            let piece = batch.slice(p * per, per);
            w.write("t", &format!("p={p:03}"), &piece).unwrap();
            total += per as u64;
        }
    }
    total
}

#[test]
fn small_pieces_are_coalesced_and_every_row_lands() {
    let (_d, rt, store) = setup();
    let mut w = EpochWriters::new(store, rt.handle().clone(), settings(), 1);
    let total = write_many(&mut w, 20, 4000, 100);
    let files = w.finish().unwrap();
    assert_eq!(files.len(), 100);
    assert_eq!(files.iter().map(|f| f.rows).sum::<u64>(), total);
}

#[test]
fn shedding_keeps_memory_under_the_limit_by_flushing_then_closing_files() {
    let (_d, rt, store) = setup();
    let mut w = EpochWriters::new(store, rt.handle().clone(), settings(), 1);
    let total = write_many(&mut w, 30, 8000, 200);
    let before = w.buffered_bytes();
    let limit = 2 << 20;
    assert!(
        before > 4 * limit,
        "the test must start above the limit: {before}"
    );
    w.shed(limit).unwrap();
    assert!(
        w.buffered_bytes() <= limit,
        "{} > {limit}",
        w.buffered_bytes()
    );
    // Writing goes on after a shed; nothing is lost.
    let more = write_many(&mut w, 2, 8000, 200);
    let files = w.finish().unwrap();
    assert!(
        files.len() > 200,
        "some files were rolled early: {}",
        files.len()
    );
    assert_eq!(files.iter().map(|f| f.rows).sum::<u64>(), total + more);
}
