//! I/O errors while opening or fetching a source file: the whole pipeline
//! over a `LocalFileSystem` wrapped in a store that fails the first calls
//! for one file with EMFILE/EIO. The file must be read fully, exactly once,
//! never quarantined, and the retries counted.

use super::coordinator::{RunMode, run_with_source};
use crate::config::Config;
use crate::telemetry::Metrics;
use arrow::array::{Array, AsArray};
use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult,
};
use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

/// Fails the first `opens` footer reads (`get_opts`) and the first
/// `fetches` ranged reads (`get_ranges`) of paths ending in `target`.
#[derive(Debug)]
struct Faulty {
    inner: Arc<dyn ObjectStore>,
    target: String,
    opens: AtomicU32,
    fetches: AtomicU32,
    /// Every ranged read of the target says the file is gone.
    vanished: bool,
}

impl std::fmt::Display for Faulty {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Faulty({})", self.inner)
    }
}

impl Faulty {
    fn fault(&self, location: &Path, left: &AtomicU32, errno: i32) -> object_store::Result<()> {
        if !location.as_ref().ends_with(&self.target) {
            return Ok(());
        }
        match left.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)) {
            Ok(_) => Err(object_store::Error::Generic {
                store: "LocalFileSystem",
                source: Box::new(std::io::Error::from_raw_os_error(errno)),
            }),
            Err(_) => Ok(()),
        }
    }
}

#[async_trait]
impl ObjectStore for Faulty {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.fault(location, &self.opens, libc::EMFILE)?;
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[Range<u64>],
    ) -> object_store::Result<Vec<Bytes>> {
        self.fault(location, &self.fetches, libc::EIO)?;
        if self.vanished && location.as_ref().ends_with(&self.target) {
            return Err(object_store::Error::NotFound {
                path: location.to_string(),
                source: "vanished".into(),
            });
        }
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}

struct Setup {
    dir: tempfile::TempDir,
    cfg: Config,
    rt: tokio::runtime::Runtime,
    rows: usize,
}

/// Two files of 3000 rows in small splits; the second is the faulty one.
fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let ods = dir.path().join("ods");
    for (hour, id) in [(0, 1), (1, 2)] {
        let p = crate::demo::file_path(&ods, "2026-11-20", hour, id);
        crate::demo::write_event_file(&p, id, 3000, 500, crate::demo::DAY_START_MS).unwrap();
    }
    std::fs::create_dir_all(dir.path().join("rules")).unwrap();
    std::fs::write(
        dir.path().join("rules/t_all.sql"),
        "CREATE TABLE t_all PARTITIONED BY (hour)\nAS SELECT event_id, hour FROM ods_events;\n",
    )
    .unwrap();
    let text = "version = 1\n[source]\nname = \"ods_events\"\nroot = \"ods\"\nmin_age = \"0s\"\n[state]\ndir = \"state\"\n[sink]\nroot = \"dwd\"\ncheckpoint_interval = \"200ms\"\n[rules]\ndir = \"rules\"\n[read]\nreaders = 2\nsplit_size = \"16KiB\"\nio_retry_min = \"20ms\"\nio_retry_max = \"80ms\"\n[http]\nenabled = false\n";
    let cfg = Config::parse(text, &dir.path().join("sluice.toml")).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    Setup {
        dir,
        cfg,
        rt,
        rows: 6000,
    }
}

impl Setup {
    fn run(&self, opens: u32, fetches: u32) -> (super::RunSummary, Arc<Metrics>) {
        self.run_with(opens, fetches, false)
    }

    fn run_with(
        &self,
        opens: u32,
        fetches: u32,
        vanished: bool,
    ) -> (super::RunSummary, Arc<Metrics>) {
        let inner = super::open_store(&self.cfg.source.root, &self.cfg.stores, false).unwrap();
        let store = Arc::new(Faulty {
            inner,
            target: "hour=01/part-000002.parquet".into(),
            opens: AtomicU32::new(opens),
            fetches: AtomicU32::new(fetches),
            vanished,
        });
        let metrics = Arc::new(Metrics::default());
        let s = run_with_source(
            &self.cfg,
            RunMode::Once,
            &super::RunOptions::default(),
            metrics.clone(),
            self.rt.handle().clone(),
            store,
        )
        .unwrap();
        (s, metrics)
    }

    /// event_id -> times it is in the output.
    fn output(&self) -> BTreeMap<String, u32> {
        let mut out = BTreeMap::new();
        let mut stack = vec![self.dir.path().join("dwd/t_all")];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).into_iter().flatten() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                    continue;
                }
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
        }
        out
    }
}

#[test]
fn transient_io_errors_are_retried_not_quarantined() {
    let s = setup();
    let (summary, metrics) = s.run(2, 2);
    assert_eq!(summary.files_quarantined, 0, "{summary:?}");
    assert_eq!(summary.files_done, 2, "{summary:?}");
    assert_eq!(metrics.read_io_retries.load(Ordering::Relaxed), 4);
    let out = s.output();
    assert_eq!(out.len(), s.rows);
    assert!(out.values().all(|n| *n == 1), "a row landed twice");
}

#[test]
fn a_once_run_leaves_a_file_that_keeps_failing_for_the_next_run() {
    let s = setup();
    let (summary, metrics) = s.run(0, u32::MAX);
    assert_eq!(summary.files_quarantined, 0, "{summary:?}");
    assert_eq!(summary.files_done, 1, "{summary:?}");
    assert!(metrics.read_io_retries.load(Ordering::Relaxed) >= 5);
    assert_eq!(s.output().len(), 3000);
    // The errors are gone: the next run reads the rest, nothing twice.
    let (summary, _) = s.run(0, 0);
    assert_eq!(summary.files_quarantined, 0, "{summary:?}");
    let out = s.output();
    assert_eq!(out.len(), s.rows);
    assert!(out.values().all(|n| *n == 1), "a row landed twice");
}

#[test]
fn a_file_whose_splits_all_fail_is_quarantined_once() {
    let s = setup();
    let (summary, metrics) = s.run_with(0, 0, true);
    // Six splits failed, one file was quarantined.
    assert_eq!(summary.files_quarantined, 1, "{summary:?}");
    assert_eq!(metrics.files_quarantined.load(Ordering::Relaxed), 1);
    assert_eq!(summary.files_done, 1, "{summary:?}");
    assert_eq!(s.output().len(), 3000);
}
