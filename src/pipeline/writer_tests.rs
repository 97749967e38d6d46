//! The writer threads share `sink.max_open_files` and `sink.max_buffered`:
//! a thread whose tables hash to it may use what the other leaves unused,
//! and never less than its fair share, and every row still reaches a file.

use super::*;
use crate::demo;
use crate::read::SourceSchema;
use crate::sink::ClosePolicy;

struct Setup {
    dir: tempfile::TempDir,
    rt: tokio::runtime::Runtime,
    pool: WriterPool,
    threads: Vec<std::thread::JoinHandle<()>>,
    rules: Arc<RuleSet>,
    metrics: Arc<Metrics>,
}

fn setup(max_open_files: usize, max_buffered: u64) -> Setup {
    let (dir, rt, store) = crate::sink::tests::setup();
    let metrics = Arc::new(Metrics::default());
    let ctx = WriterCtx {
        store,
        handle: rt.handle().clone(),
        settings: crate::sink::tests::settings_at(Some(dir.path().to_path_buf())),
        max_buffered,
        max_open_files,
        metrics: metrics.clone(),
        epoch_bytes: Default::default(),
    };
    let (pool, threads) = WriterPool::start(&ctx, 2, 1).unwrap();
    let schema = SourceSchema::new(demo::event_schema(), vec!["dt".into(), "hour".into()]).full;
    let sql = "CREATE TABLE t AS SELECT event_id FROM ods_events;\n";
    let rules = RuleSet::compile_all(vec![("t.sql".into(), sql.into())], "ods_events", &schema)
        .unwrap_or_else(|e| panic!("{e:?}"));
    Setup {
        dir,
        rt,
        pool,
        threads,
        rules: Arc::new(rules),
        metrics,
    }
}

/// `n` partitions of table `t` that all hash to `shard`, after `skip`.
fn partitions_of(pool: &WriterPool, shard: usize, skip: usize, n: usize) -> Vec<String> {
    (0..)
        .map(|i| format!("p={i:04}"))
        .filter(|p| pool.shard_of("t", p) == shard)
        .skip(skip)
        .take(n)
        .collect()
}

/// Sends 10 rows to each of `partitions`, as one batch of split `file`.
fn send(s: &Setup, file: &str, partitions: &[String]) -> u64 {
    let b = demo::events(1, 0, 10, demo::DAY_START_MS);
    let batch = b.project(&[0]).unwrap();
    let pieces = partitions
        .iter()
        .map(|p| Piece {
            rule: 0,
            output: Output::Table,
            partition: p.clone(),
            batch: batch.clone(),
        })
        .collect();
    let split = SplitId {
        file: file.into(),
        index: 0,
    };
    assert!(s.pool.data(&split, 10, &s.rules, pieces));
    10 * partitions.len() as u64
}

fn keep_open(s: &Setup, next: u64) -> EpochReport {
    s.pool
        .barrier(next, ClosePolicy::ages(i64::MAX, 0))
        .unwrap()
}

#[test]
fn a_thread_keeps_open_what_the_other_leaves_and_every_row_reaches_a_file() {
    let s = setup(8, 512 << 20);
    let mut rows = 0;
    let mut closed_rows = 0;
    let first = partitions_of(&s.pool, 0, 0, 6);
    rows += send(&s, "a", &first);
    let r = keep_open(&s, 2);
    assert_eq!(r.open_files, 6);
    // Seven partitions on one thread, over its half of 8 but within the
    // bound: the six idle since the checkpoint stay open.
    rows += send(&s, "b", &partitions_of(&s.pool, 0, 6, 1));
    let r = keep_open(&s, 3);
    assert_eq!(
        r.open_files, 7,
        "closed files the other thread left room for"
    );
    closed_rows += r.files.iter().map(|f| f.rows).sum::<u64>();
    // The other thread still gets its fair share (4), and the first then
    // closes its coldest files to fit what is left.
    let second = partitions_of(&s.pool, 1, 0, 4);
    rows += send(&s, "c", &second);
    let r = keep_open(&s, 4);
    // The first thread sheds at its next message: "d", or this batch's
    // progress if it went there after the second thread had published.
    assert!(
        [8, 11].contains(&r.open_files),
        "{} files open",
        r.open_files
    );
    closed_rows += r.files.iter().map(|f| f.rows).sum::<u64>();
    rows += send(&s, "d", &partitions_of(&s.pool, 0, 7, 1));
    let r = keep_open(&s, 5);
    assert!(
        r.open_files <= 8,
        "{} files open over a bound of 8",
        r.open_files
    );
    for p in &second {
        assert!(
            r.open_partitions.contains(&("t".to_string(), p.clone())),
            "{p} closed: the second thread lost its share"
        );
    }
    for p in &first[..2] {
        assert!(
            !r.open_partitions.contains(&("t".to_string(), p.clone())),
            "{p}, the coldest, is still open"
        );
    }
    closed_rows += r.files.iter().map(|f| f.rows).sum::<u64>();
    let r = s.pool.barrier(6, ClosePolicy::all(0)).unwrap();
    closed_rows += r.files.iter().map(|f| f.rows).sum::<u64>();
    assert_eq!(closed_rows, rows, "rows lost or doubled");
    drop(s.pool);
    for t in s.threads {
        t.join().unwrap();
    }
    drop(s.rt);
    drop(s.dir);
}

/// `rows` random 256-byte values (incompressible) in a column `blob`.
fn blobs(rows: usize, seed: u64) -> arrow::array::RecordBatch {
    let mut x = seed | 1;
    let values: Vec<Vec<u8>> = (0..rows)
        .map(|_| {
            (0..256)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect()
        })
        .collect();
    let col = arrow::array::BinaryArray::from_iter_values(values.iter());
    arrow::array::RecordBatch::try_from_iter([("blob", Arc::new(col) as _)]).unwrap()
}

/// Sends three 1 MiB batches of blobs to one partition of shard 0 and
/// closes it: (row groups in the file, row groups the metrics say were cut).
fn three_mib_in_one_partition(max_buffered: u64) -> (usize, u64) {
    let s = setup(8, max_buffered);
    let part = partitions_of(&s.pool, 0, 0, 1);
    let split = SplitId {
        file: "a".into(),
        index: 0,
    };
    for i in 0..3 {
        let piece = Piece {
            rule: 0,
            output: Output::Table,
            partition: part[0].clone(),
            batch: blobs(4096, i + 1),
        };
        assert!(s.pool.data(&split, (i + 1) * 4096, &s.rules, vec![piece]));
    }
    let r = s.pool.barrier(2, ClosePolicy::all(0)).unwrap();
    assert_eq!(r.files.len(), 1);
    assert_eq!(r.files[0].rows, 3 * 4096, "rows lost or doubled");
    let f = std::fs::File::open(s.dir.path().join(&r.files[0].staged)).unwrap();
    use parquet::file::reader::FileReader;
    let groups = parquet::file::reader::SerializedFileReader::new(f)
        .unwrap()
        .metadata()
        .num_row_groups();
    let held = s.metrics.writer_buffered_bytes.load(Ordering::Relaxed);
    assert_eq!(
        held, 0,
        "every file closed, yet the gauge says {held} bytes"
    );
    let cut = s.metrics.row_groups_cut.load(Ordering::Relaxed);
    assert!(
        s.metrics
            .render()
            .contains(&format!("sluice_row_groups_cut_total {cut}"))
    );
    (groups, cut)
}

#[test]
fn a_thread_holds_what_the_other_leaves_of_max_buffered_before_cutting_a_row_group() {
    // 8 MiB: row groups are cut past 4 MiB over both threads, 2 MiB each
    // if split evenly. One thread gets 3 MiB while the other holds nothing.
    assert_eq!(
        three_mib_in_one_partition(8 << 20),
        (1, 0),
        "a row group was cut while the other thread left room"
    );
    // 2 MiB: cut past 1 MiB; every cut is counted.
    let (groups, cut) = three_mib_in_one_partition(2 << 20);
    assert!(groups > 1, "no row group was cut");
    // Every row group was cut, but for the one the close may have ended.
    assert!(
        cut == groups as u64 || cut == groups as u64 - 1,
        "{cut} cut, {groups} row groups"
    );
}
