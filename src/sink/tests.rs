//! Writers over a real local store, through uploads (the path of stores
//! other than a local directory): coalescing keeps every row, and
//! shedding keeps memory under its limit with many open files. Files kept
//! open across checkpoints on a local sink are tested in `staged/tests.rs`.

use super::*;
use crate::demo;
use object_store::ObjectStore;
use std::sync::Arc;

/// A temporary folder, a one-thread I/O runtime, and a local store over
/// the folder (shared with the other writer tests).
pub(crate) fn setup() -> (
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
    settings_at(None)
}

/// Test settings; `local_root`: the folder of a local sink (files staged
/// in place), `None` to write through uploads.
pub(crate) fn settings_at(local_root: Option<std::path::PathBuf>) -> SinkSettings {
    SinkSettings {
        state_id: "0123456789abcdef".into(),
        target_file_size: 128 << 20,
        row_group_rows: 1 << 20,
        zstd_level: 3,
        all_statistics: false,
        part_size: LOCAL_PART_SIZE,
        local_root,
        remote: None,
    }
}

/// Closes every file (as the last checkpoint of a run does).
fn finish(w: &mut Writers) -> Vec<crate::checkpoint::StagedFile> {
    w.checkpoint(&ClosePolicy::all(0), w.epoch() + 1)
        .unwrap()
        .files
}

/// Writes `batches` of `rows` demo events, each cut into `parts` pieces
/// spread over `parts` partitions of one table.
fn write_many(w: &mut Writers, batches: u64, rows: usize, parts: usize) -> u64 {
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
    let mut w = Writers::new(store, rt.handle().clone(), settings(), 1);
    let total = write_many(&mut w, 20, 4000, 100);
    let files = finish(&mut w);
    assert_eq!(files.len(), 100);
    assert_eq!(files.iter().map(|f| f.rows).sum::<u64>(), total);
}

#[test]
fn shedding_keeps_memory_under_the_limit_by_flushing_then_closing_files() {
    let (_d, rt, store) = setup();
    let mut w = Writers::new(store, rt.handle().clone(), settings(), 1);
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
    let files = finish(&mut w);
    assert!(
        files.len() > 200,
        "some files were rolled early: {}",
        files.len()
    );
    assert_eq!(files.iter().map(|f| f.rows).sum::<u64>(), total + more);
}

/// Rows of a staged Parquet file, read back through the store.
fn rows_in(rt: &tokio::runtime::Runtime, store: &Arc<dyn ObjectStore>, path: &str) -> u64 {
    use object_store::ObjectStoreExt;
    let bytes = rt
        .block_on(async { store.get(&parse_path(path).unwrap()).await?.bytes().await })
        .unwrap();
    let r = parquet::file::reader::SerializedFileReader::new(bytes).unwrap();
    use parquet::file::reader::FileReader;
    r.metadata().file_metadata().num_rows() as u64
}

#[test]
fn small_files_go_out_in_one_put_large_ones_in_parts_and_all_are_whole_after_finish() {
    let (d, rt, store) = setup();
    let s = SinkSettings {
        part_size: 64 << 10,
        ..settings()
    };
    let mut w = Writers::new(store.clone(), rt.handle().clone(), s, 7);
    // 40 small files (one piece each) and one large one.
    let total = write_many(&mut w, 1, 4000, 40);
    let big = demo::events(9, 0, 60_000, demo::DAY_START_MS);
    w.write("big", "", &big).unwrap();
    let files = finish(&mut w);
    assert_eq!(files.len(), 41);
    for f in &files {
        assert_eq!(rows_in(&rt, &store, &f.staged), f.rows, "{}", f.staged);
        let size = std::fs::metadata(d.path().join(&f.staged)).unwrap().len();
        assert_eq!(size, f.bytes, "{}", f.staged);
    }
    let big_file = files.iter().find(|f| f.table == "big").unwrap();
    assert!(
        big_file.bytes > 4 * (64 << 10),
        "the large file spans parts"
    );
    assert_eq!(files.iter().map(|f| f.rows).sum::<u64>(), total + 60_000);
    // Staging is flat: every file sits directly in the staging folder.
    let staging = d.path().join(STAGING_DIR);
    assert_eq!(std::fs::read_dir(&staging).unwrap().count(), 41);
}
