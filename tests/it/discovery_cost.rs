//! What a discovery scan costs with a long history: one new file among N
//! old ones, a full listing against one pruned to recent day folders, on a
//! local disk and on the S3 test server. Figures, not assertions on time:
//!
//! ```sh
//! SLUICE_BENCH_LOCAL_FILES=100000 SLUICE_BENCH_S3_FILES=10000 \
//!   cargo test --release --test it discovery_cost -- --ignored --nocapture
//! ```

use crate::s3_support::s3;
use futures::StreamExt;
use object_store::ObjectStore;
use sluice::discover::{Scope, list_scoped};
use sluice::store::Location;
use sluice::store::counted::{Counted, Requests};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

const DAY_MS: i64 = 86_400_000;
/// 2026-11-20, the newest day of the history.
const LAST_DAY: i64 = 20_412;

fn day_name(day: i64) -> String {
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs((day * 86_400) as u64);
    format!(
        "dt={}",
        &humantime::format_rfc3339_seconds(at).to_string()[..10]
    )
}

/// `n` old files spread over days and hours ending at LAST_DAY, plus one
/// new file in the last hour: their relative paths.
fn history(n: usize) -> Vec<String> {
    let per_hour = 10;
    let mut out = Vec::with_capacity(n + 1);
    let mut i = 0;
    'outer: for back in 0.. {
        for hour in 0..24 {
            for f in 0..per_hour {
                if i == n {
                    break 'outer;
                }
                out.push(format!(
                    "{}/hour={hour:02}/part-{f:03}.parquet",
                    day_name(LAST_DAY - back)
                ));
                i += 1;
            }
        }
    }
    out.push(format!("{}/hour=23/new.parquet", day_name(LAST_DAY)));
    out
}

fn env_count(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Lists `root` through a counting store, full and pruned; prints a row each.
fn measure(what: &str, inner: Arc<dyn ObjectStore>, root: &Location, paged: bool, n: usize) {
    let floor = (LAST_DAY * DAY_MS) + 23 * 3_600_000 - 3_600_000;
    for prune in [None, Some(floor)] {
        let requests = Arc::new(Requests::default());
        let store = Counted::wrap(inner.clone(), requests.clone(), paged);
        let t0 = Instant::now();
        let (listing, scope) = list_scoped(&store, root, false, &|_| false, prune).unwrap();
        let took = t0.elapsed();
        assert!(
            listing
                .files
                .iter()
                .any(|f| f.path.ends_with("new.parquet"))
        );
        if prune.is_none() {
            assert_eq!(listing.files.len(), n + 1);
        }
        let kind = match scope {
            Scope::Full => "full".to_string(),
            Scope::Pruned { skipped } => format!("pruned ({skipped} day folders skipped)"),
        };
        println!(
            "{what:<6} {n:>8} old files  {kind:<34} {:>9.1} ms  {:>5} LIST requests  {:>7} entries",
            took.as_secs_f64() * 1000.0,
            requests.list.load(Ordering::Relaxed),
            listing.files.len()
        );
    }
}

#[test]
#[ignore = "a measurement: run with --ignored --nocapture"]
fn discovery_cost_of_one_new_file_among_many() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let _in = rt.enter();
    for n in [0, env_count("SLUICE_BENCH_LOCAL_FILES", 100_000)] {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("ods");
        for p in history(n) {
            let f = root.join(&p);
            std::fs::create_dir_all(f.parent().unwrap()).unwrap();
            std::fs::write(&f, b"").unwrap();
        }
        let loc = Location::Local(root.clone());
        let store: Arc<dyn ObjectStore> =
            Arc::new(object_store::local::LocalFileSystem::new_with_prefix(&root).unwrap());
        measure("local", store, &loc, false, n);
    }
    let Some(s3) = s3() else { return };
    for n in [0, env_count("SLUICE_BENCH_S3_FILES", 10_000)] {
        let bucket = s3.bucket();
        let store = s3.store(&bucket, "ods");
        let t0 = Instant::now();
        s3.rt.block_on(async {
            futures::stream::iter(history(n))
                .map(|p| {
                    let store = store.clone();
                    async move {
                        use object_store::ObjectStoreExt;
                        store
                            .put(
                                &object_store::path::Path::from(p.as_str()),
                                b"".to_vec().into(),
                            )
                            .await
                            .unwrap()
                    }
                })
                .buffer_unordered(32)
                .collect::<Vec<_>>()
                .await
        });
        eprintln!(
            "uploaded {} objects in {:.1}s",
            n + 1,
            t0.elapsed().as_secs_f64()
        );
        let loc = Location::parse(Path::new("/"), &format!("s3://{bucket}/ods")).unwrap();
        let _in = s3.rt.enter();
        measure("s3", store, &loc, true, n);
    }
}
