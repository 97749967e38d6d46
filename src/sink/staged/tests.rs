//! Files that stay open across checkpoints on a local sink: what a
//! checkpoint records is enough to finish the file after a crash with
//! exactly the checkpointed rows, and only the policy closes files.

use super::*;
use crate::checkpoint::open_files::OpenFileUpdate;
use crate::demo;
use crate::sink::{ClosePolicy, Writers};
use arrow::array::RecordBatch;
use object_store::ObjectStore;

struct Setup {
    dir: tempfile::TempDir,
    rt: tokio::runtime::Runtime,
    store: Arc<dyn ObjectStore>,
}

fn setup() -> Setup {
    let (dir, rt, store) = crate::sink::tests::setup();
    Setup { dir, rt, store }
}

fn writers(s: &Setup) -> Writers {
    let settings = crate::sink::tests::settings_at(Some(s.dir.path().to_path_buf()));
    Writers::new(s.store.clone(), s.rt.handle().clone(), settings, 1)
}

fn keep_open() -> ClosePolicy {
    ClosePolicy::ages(i64::MAX, 0)
}

fn read_all(path: &Path) -> Vec<RecordBatch> {
    let f = File::open(path).unwrap();
    parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f)
        .unwrap()
        .build()
        .unwrap()
        .map(|b| b.unwrap())
        .collect()
}

fn ids(batches: &[RecordBatch]) -> Vec<String> {
    let mut out = Vec::new();
    for b in batches {
        let col = b.column_by_name("event_id").unwrap();
        let col = arrow::compute::cast(col, &arrow::datatypes::DataType::Utf8).unwrap();
        let col = col
            .as_any()
            .downcast_ref::<arrow::array::StringArray>()
            .unwrap();
        out.extend(col.iter().map(|v| v.unwrap_or_default().to_string()));
    }
    out
}

fn single(updates: &[OpenFileUpdate]) -> &OpenFileUpdate {
    assert_eq!(updates.len(), 1, "{updates:?}");
    &updates[0]
}

#[test]
fn a_file_open_over_checkpoints_is_finished_with_exactly_its_checkpointed_rows() {
    let s = setup();
    let mut w = writers(&s);
    let a = demo::events(1, 0, 3000, demo::DAY_START_MS);
    let b = demo::events(2, 0, 5000, demo::DAY_START_MS);
    let c = demo::events(3, 0, 70_000, demo::DAY_START_MS);

    w.write("t", "dt=1", &a).unwrap();
    let c1 = w.checkpoint(&keep_open(), 2).unwrap();
    assert!(c1.files.is_empty(), "a checkpoint closes nothing by itself");
    assert_eq!(c1.open_files, 1);
    let u1 = single(&c1.open).clone();
    assert_eq!((u1.record.rows, u1.record.chunks), (3000, 1));
    assert_eq!(u1.record.partition, "dt=1");

    w.write("t", "dt=1", &b).unwrap();
    let c2 = w.checkpoint(&keep_open(), 3).unwrap();
    let u2 = single(&c2.open).clone();
    assert_eq!((u2.record.rows, u2.record.chunks), (8000, 2));
    assert_eq!(u2.record.staged, u1.record.staged, "the same file");
    assert!(u2.record.durable_len > u1.record.durable_len);

    // Nothing new: nothing recorded.
    let c3 = w.checkpoint(&keep_open(), 4).unwrap();
    assert!(c3.open.is_empty());
    assert_eq!(c3.open_files, 1);

    // Rows past the checkpoint reach the file (a large batch is encoded
    // and flushed at once), then the process dies.
    w.write("t", "dt=1", &c).unwrap();
    w.shed(0).unwrap();
    let path = s.dir.path().join(&u2.record.staged);
    assert!(std::fs::metadata(&path).unwrap().len() > u2.record.durable_len);
    drop(w);

    let chunks = vec![u1.chunk.clone().unwrap(), u2.chunk.clone().unwrap()];
    let footer = assemble_footer(&chunks).unwrap();
    let len = finish(&path, u2.record.durable_len, &footer).unwrap();
    assert_eq!(std::fs::metadata(&path).unwrap().len(), len);
    let got = read_all(&path);
    let mut want = ids(std::slice::from_ref(&a));
    want.extend(ids(std::slice::from_ref(&b)));
    assert_eq!(ids(&got), want, "exactly the checkpointed rows, in order");
    assert_eq!(got[0].schema(), a.schema(), "the Arrow schema is kept");

    // Finishing again (a crash during recovery) gives the same file.
    let first = std::fs::read(&path).unwrap();
    assert_eq!(finish(&path, u2.record.durable_len, &footer).unwrap(), len);
    assert_eq!(std::fs::read(&path).unwrap(), first);
}

#[test]
fn finishing_refuses_a_file_shorter_than_its_record() {
    let s = setup();
    let path = s.dir.path().join("short");
    std::fs::write(&path, b"PAR1").unwrap();
    let e = finish(&path, 100, b"footer").unwrap_err();
    assert!(e.to_string().contains("100 were recorded"), "{e}");
}

#[test]
fn a_closed_file_reports_the_record_it_leaves_and_is_whole() {
    let s = setup();
    let mut w = writers(&s);
    let a = demo::events(1, 0, 2000, demo::DAY_START_MS);
    w.write("t", "dt=1", &a).unwrap();
    w.write("u", "dt=1", &a).unwrap();
    let c1 = w.checkpoint(&keep_open(), 2).unwrap();
    assert_eq!(c1.open.len(), 2);
    w.write("t", "dt=1", &a).unwrap();
    // Only table t's partition is due.
    let mut policy = keep_open();
    policy.partition_due = Some(Box::new(|t: &str, _p: &str| t == "t"));
    let c2 = w.checkpoint(&policy, 3).unwrap();
    assert_eq!(c2.files.len(), 1);
    let f = &c2.files[0];
    assert_eq!((f.table.as_str(), f.rows), ("t", 4000));
    let rec = c1.open.iter().find(|u| u.record.table == "t").unwrap();
    assert_eq!(c2.closed_records, vec![(rec.record.staged.clone(), 1)]);
    assert_eq!(c2.open_files, 1);
    let path = s.dir.path().join(&f.staged);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), f.bytes);
    assert_eq!(ids(&read_all(&path)).len(), 4000);

    // Age closes too, and `all` closes the rest.
    let c3 = w.checkpoint(&ClosePolicy::ages(1, i64::MAX), 4).unwrap();
    assert_eq!(c3.files.len(), 1);
    assert_eq!(c3.files[0].table, "u");
    assert_eq!(w.open_files(), 0);
}

#[test]
fn per_table_ages_replace_the_default() {
    let mut p = ClosePolicy::ages(10_000, 20_000);
    p.table_max_age_ms.insert("fast".into(), 1_000);
    assert!(p.closes("fast", "", 15_000));
    assert!(!p.closes("slow", "", 15_000));
    assert!(p.closes("slow", "", 10_000));
}

#[test]
fn shedding_a_local_sink_flushes_row_groups_and_closes_nothing() {
    let s = setup();
    let mut w = writers(&s);
    for b in 0..20 {
        let batch = demo::events(b, 0, 8000, demo::DAY_START_MS);
        for p in 0..100 {
            w.write("t", &format!("p={p:03}"), &batch.slice(p * 80, 80))
                .unwrap();
        }
    }
    w.shed(0).unwrap();
    assert_eq!(w.buffered_bytes(), 0);
    let c = w.checkpoint(&keep_open(), 2).unwrap();
    assert!(c.files.is_empty());
    assert_eq!(c.open_files, 100);
    assert_eq!(c.open.iter().map(|u| u.record.rows).sum::<u64>(), 160_000);
}

#[test]
fn a_table_whose_columns_change_closes_its_file_and_opens_one_with_the_new_schema() {
    let s = setup();
    let mut w = writers(&s);
    let a = demo::events(1, 0, 1000, demo::DAY_START_MS);
    w.write("t", "dt=1", &a).unwrap();
    w.checkpoint(&keep_open(), 2).unwrap();
    // The same rows with one column fewer (a rule edited at a barrier).
    let b = a.project(&[0, 1, 2]).unwrap();
    w.write("t", "dt=1", &b).unwrap();
    w.write("t", "dt=1", &b).unwrap();
    let c = w.checkpoint(&ClosePolicy::all(0), 3).unwrap();
    assert_eq!(c.files.len(), 2);
    let cols: Vec<usize> = c
        .files
        .iter()
        .map(|f| read_all(&s.dir.path().join(&f.staged))[0].num_columns())
        .collect();
    assert_eq!(cols, [a.num_columns(), 3]);
    assert_eq!(c.files.iter().map(|f| f.rows).sum::<u64>(), 3000);
}

#[test]
fn past_max_open_files_idle_files_close_least_recently_written_first_and_keep_every_row() {
    let s = setup();
    let mut w = writers(&s);
    // Ten partitions, written in order; a checkpoint that closes nothing
    // hands the pieces (small, still coalescing) to their files. Then
    // p=000 is written again: the only one active since the checkpoint.
    let mut total = write_parts(&mut w, 10);
    let c = w.checkpoint(&keep_open(), w.epoch() + 1).unwrap();
    assert_eq!((c.files.len(), w.open_files()), (0, 10));
    let again = demo::events(7, 0, 500, demo::DAY_START_MS);
    w.write("t", "p=000", &again).unwrap();
    total += 500;

    // A limit of 4 keeps 4 - 4/8 = 4: six close, oldest first.
    assert_eq!(w.limit_open(4).unwrap(), 6);
    assert_eq!(w.open_files(), 4);
    assert_eq!(
        w.limit_open(4).unwrap(),
        0,
        "within the limit: nothing more"
    );
    let c = w.checkpoint(&keep_open(), w.epoch() + 1).unwrap();
    assert_eq!(
        closed(&c.files),
        [
            "t/p=001", "t/p=002", "t/p=003", "t/p=004", "t/p=005", "t/p=006"
        ]
    );
    // Every partition active since the checkpoint: none closes, whatever
    // the limit (closing them would only make small files).
    total += write_parts(&mut w, 10);
    let c2 = w.checkpoint(&keep_open(), w.epoch() + 1).unwrap();
    assert_eq!((c2.files.len(), w.open_files()), (0, 10));
    total += write_parts(&mut w, 10);
    assert_eq!(w.limit_open(4).unwrap(), 0);
    assert_eq!(w.open_files(), 10);
    let files = w
        .checkpoint(&ClosePolicy::all(0), w.epoch() + 1)
        .unwrap()
        .files;
    assert_eq!(files.len(), 10);
    assert_eq!(
        c.files.iter().chain(&files).map(|f| f.rows).sum::<u64>(),
        total
    );
}

#[test]
fn past_max_open_files_partitions_a_run_moved_on_from_close_before_the_next_checkpoint() {
    let s = setup();
    let mut w = writers(&s);
    // A rare table's only partition, written once; then ten partitions of
    // `t` in rounds; then only the last four of them, as a backfill moves
    // on to the next hours within one epoch (no checkpoint).
    let piece = demo::events(7, 0, 200, demo::DAY_START_MS);
    w.write("rare", "p=000", &piece).unwrap();
    let mut total = 200;
    // Fed by every round: all ten stay, whatever the limit; so does the
    // rare table (no later partition of its own).
    for _ in 0..6 {
        total += write_parts(&mut w, 10);
    }
    assert_eq!(w.limit_open(4).unwrap(), 0);
    let last_four = |w: &mut Writers, n: usize| {
        for i in 0..n {
            w.write("t", &format!("p={:03}", 6 + i % 4), &piece)
                .unwrap();
        }
        200 * n as u64
    };
    // Four rounds of writes over the eleven busy partitions (44) after
    // the last write to p=000..p=005, those six are cold.
    total += last_four(&mut w, 30);
    assert_eq!(w.limit_open(4).unwrap(), 0, "30 writes on: not yet cold");
    total += last_four(&mut w, 10);
    assert_eq!(w.limit_open(4).unwrap(), 6);
    // A partition fed now and then (p=001 once more, then cold again)
    // does not close a second time this epoch: one file per checkpoint,
    // not one per write.
    w.write("t", "p=001", &piece).unwrap();
    total += 200 + last_four(&mut w, 50);
    assert_eq!(w.limit_open(4).unwrap(), 0);
    let c = w.checkpoint(&keep_open(), w.epoch() + 1).unwrap();
    assert_eq!(
        closed(&c.files),
        [
            "t/p=000", "t/p=001", "t/p=002", "t/p=003", "t/p=004", "t/p=005"
        ]
    );
    // In the next epoch, both it and the rare table have been idle since
    // the checkpoint: they close.
    total += last_four(&mut w, 4);
    assert_eq!(w.limit_open(4).unwrap(), 2);
    let files = w
        .checkpoint(&ClosePolicy::all(0), w.epoch() + 1)
        .unwrap()
        .files;
    assert_eq!(files.len(), 6);
    assert_eq!(
        c.files.iter().chain(&files).map(|f| f.rows).sum::<u64>(),
        total
    );
}

#[test]
fn the_next_hour_on_another_writer_thread_lets_the_last_one_close() {
    let s = setup();
    let latest = std::sync::Arc::new(crate::sink::LatestPartitions::default());
    let mut a = writers(&s)
        .with_writer_ids(0, 2)
        .with_latest(latest.clone());
    let mut b = writers(&s).with_writer_ids(1, 2).with_latest(latest);
    let piece = demo::events(7, 0, 200, demo::DAY_START_MS);
    for (t, p) in [("t", "h=00"), ("u", "h=00"), ("u", "h=01")] {
        a.write(t, p, &piece).unwrap();
    }
    // Four rounds over the three busy partitions: t's and u's first hour
    // are cold, but only u has a later one.
    for _ in 0..12 {
        a.write("u", "h=01", &piece).unwrap();
    }
    assert_eq!(a.limit_open(1).unwrap(), 1);
    // t's next hour comes to the other thread.
    b.write("t", "h=01", &piece).unwrap();
    assert_eq!(a.limit_open(1).unwrap(), 1);
    let files = a.checkpoint(&keep_open(), 2).unwrap().files;
    assert_eq!(closed(&files), ["t/h=00", "u/h=00"]);
}

/// The closed files' `table/partition`s, sorted.
fn closed(files: &[crate::checkpoint::StagedFile]) -> Vec<String> {
    let mut out: Vec<String> = files
        .iter()
        .map(|f| format!("{}/{}", f.table, f.partition))
        .collect();
    out.sort();
    out
}

/// One 1,000-row piece of demo events into each of `parts` partitions of
/// table `t`, in partition order.
fn write_parts(w: &mut Writers, parts: usize) -> u64 {
    let batch = demo::events(3, 0, 1000 * parts, demo::DAY_START_MS);
    for p in 0..parts {
        w.write("t", &format!("p={p:03}"), &batch.slice(p * 1000, 1000))
            .unwrap();
    }
    (1000 * parts) as u64
}
