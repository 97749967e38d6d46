//! The object-store sink against a real S3 server (see `s3_support`):
//! output files as multipart uploads that stay open across checkpoints,
//! completed at commit, finished or aborted by recovery. Every test reads
//! the output back from the server and compares it row by row with the
//! input; none may leave a multipart upload behind.

use crate::crash::wait_or_kill;
use crate::ops::{get, metric};
use crate::s3_support::{S3, Weed, s3};
use crate::support::*;
use futures::TryStreamExt;
use sluice::demo::Rng;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Source and sink of `env` in `bucket` (the per-store section names the
/// endpoint; the keys come from the environment of every command).
pub(crate) fn configure_s3(env: &mut Env, s3: &S3, bucket: &str) {
    let cfg = std::fs::read_to_string(env.config()).unwrap();
    std::fs::write(
        env.config(),
        cfg.replace(
            "root = \"ods\"",
            &format!("root = \"s3://{bucket}/ods/events\""),
        ),
    )
    .unwrap();
    configure_s3_sink(env, s3, bucket, &s3.endpoint);
}

/// Only the sink of `env` in `bucket`, reached at `endpoint` (the server
/// itself, or a proxy in front of it); files span several 64 KiB parts.
fn configure_s3_sink(env: &mut Env, s3: &S3, bucket: &str, endpoint: &str) {
    let cfg = std::fs::read_to_string(env.config()).unwrap();
    let cfg = cfg.replace("root = \"dwd\"", &format!("root = \"s3://{bucket}/dwd\""))
        + &format!(
            "[stores.\"s3://{bucket}\"]\nendpoint = \"{endpoint}\"\nallow_http = true\nregion = \"us-east-1\"\n"
        );
    std::fs::write(env.config(), cfg).unwrap();
    env.vars = s3
        .env()
        .into_iter()
        .filter(|(k, _)| *k != "AWS_ENDPOINT_URL")
        .collect();
    env.vars.push(("SLUICE_TEST_PART_SIZE", "65536".into()));
}

/// Adds a file locally (the independent computation reads it there) and
/// uploads it to the source in `bucket`.
fn add(env: &mut Env, s3: &S3, bucket: &str, hour: u32, rows: usize) -> PathBuf {
    let p = env.add_file(hour, rows);
    s3.upload(&env.ods(), std::slice::from_ref(&p), bucket, "ods/events");
    p
}

/// Copies everything under `s3://bucket/dwd` into `dir` (same paths).
pub(crate) fn download(s3: &S3, bucket: &str, dir: &Path) {
    download_prefix(s3, bucket, "dwd", dir)
}

/// Copies everything under `s3://bucket/prefix` into `dir` (same paths).
pub(crate) fn download_prefix(s3: &S3, bucket: &str, prefix: &str, dir: &Path) {
    use object_store::ObjectStoreExt;
    let store = s3.store(bucket, prefix);
    let objs: Vec<object_store::ObjectMeta> =
        s3.rt.block_on(store.list(None).try_collect()).unwrap();
    let _ = std::fs::remove_dir_all(dir);
    for o in objs {
        let bytes = s3
            .rt
            .block_on(async { store.get(&o.location).await?.bytes().await })
            .unwrap();
        let p = dir.join(o.location.as_ref());
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }
}

/// The multipart uploads in progress in `bucket` (ListMultipartUploads).
pub(crate) fn uploads_in_progress(s3: &S3, bucket: &str) -> usize {
    let (status, body) = s3.request("GET", &format!("/{bucket}?uploads"), Vec::new());
    assert_eq!(status, 200, "{body}");
    body.matches("<UploadId>").count()
}

/// Reads the output back and compares it with the input; no staged file,
/// no upload left.
fn assert_exact(env: &Env, s3: &S3, bucket: &str, context: &str) -> usize {
    let got = env.path().join("downloaded");
    download(s3, bucket, &got);
    let expected = expected_tables(&env.ods(), &[]);
    let d = diff_tables(&expected, &actual_tables(&got));
    assert!(d.is_empty(), "{context}: {}", d.join("\n"));
    assert_eq!(staged_files(&got), 0, "{context}: staged files left");
    assert_eq!(
        uploads_in_progress(s3, bucket),
        0,
        "{context}: multipart uploads left behind"
    );
    expected.values().map(|t| t.len()).sum()
}

#[test]
fn source_and_sink_on_s3_are_exact_across_runs() {
    let Some(s3) = s3() else { return };
    let bucket = s3.bucket();
    let mut env = Env::new("");
    configure_s3(&mut env, s3, &bucket);
    for h in 0..3 {
        add(&mut env, s3, &bucket, h, 900);
    }
    let out = env.run_once();
    assert!(out.status.success(), "{}", output_text(&out));
    assert_exact(&env, s3, &bucket, "first run");
    add(&mut env, s3, &bucket, 1, 600);
    add(&mut env, s3, &bucket, 4, 700);
    let out = env.run_once();
    assert!(out.status.success(), "{}", output_text(&out));
    assert_exact(&env, s3, &bucket, "second run");
    // Partition commit's neighbours on S3: nothing hidden was left.
    let got = env.path().join("downloaded");
    assert!(
        visible_files(&got, &[])
            .iter()
            .all(|(p, _)| p.ends_with(".parquet"))
    );
}

/// Files that stay open over several checkpoints and span several parts
/// (64 KiB parts in this test build), in a daemon killed at every phase
/// of the checkpoint while files arrive.
#[test]
fn sigkill_at_every_phase_on_s3_loses_and_duplicates_nothing() {
    let Some(s3) = s3() else { return };
    let bucket = s3.bucket();
    let mut env = Env::new("");
    configure_s3(&mut env, s3, &bucket);
    let mut rng = Rng::new(7);
    for h in 0..3 {
        add(&mut env, s3, &bucket, h, 2500);
    }
    let plan: [Option<&str>; 10] = [
        Some("mid_read"),
        Some("after_prepare"),
        Some("during_recovery"),
        Some("mid_checkpoint_flush"),
        Some("after_prepare"),
        Some("mid_finish"),
        Some("before_prepare"),
        Some("mid_rename"),
        None,
        None,
    ];
    let mut hits: std::collections::BTreeMap<&str, u32> = Default::default();
    let mut finished_open = 0;
    let mut aborted = 0;
    for (i, phase) in plan.iter().enumerate() {
        add(
            &mut env,
            s3,
            &bucket,
            rng.below(4) as u32,
            800 + rng.below(2500) as usize,
        );
        let at = crate::crash::crash_at(*phase, &mut rng);
        let child = env.spawn_daemon(at.as_deref());
        std::thread::sleep(Duration::from_millis(50 + rng.below(200)));
        add(
            &mut env,
            s3,
            &bucket,
            rng.below(4) as u32,
            500 + rng.below(1500) as usize,
        );
        let limit = match phase {
            None => Duration::from_millis(300 + rng.below(2000)),
            Some(_) => Duration::from_secs(8),
        };
        let (stderr, _) = wait_or_kill(child, limit);
        if stderr.contains("finished the output files open at the last checkpoint") {
            finished_open += 1;
        }
        if stderr.contains("aborted uploads of files that never prepared") {
            aborted += 1;
        }
        if let Some(p) = phase
            && stderr.contains(&format!("crash point {p} reached"))
        {
            *hits.entry(p).or_default() += 1;
        }
        assert!(!stderr.contains("panicked"), "iteration {i}:\n{stderr}");
    }
    let out = env.run_once();
    assert!(out.status.success(), "final --once:\n{}", output_text(&out));
    crate::crash::assert_every_phase_hit(&hits);
    assert!(
        finished_open >= 2,
        "recovery finished open uploads {finished_open} times"
    );
    assert!(aborted >= 1, "no start aborted an upload the crash left");
    let rows = assert_exact(&env, s3, &bucket, "after the crashes");
    eprintln!(
        "S3 crash test: {hits:?}, {finished_open} recoveries finished open uploads, {aborted} aborted orphans, {rows} table rows verified"
    );
}

/// The sink's server stops while rows keep coming and comes back: the
/// daemon says "sink store unreachable" (`/healthz`, `status`, metrics),
/// retries, never commits a partial file, and ends exact.
#[test]
fn a_sink_store_that_stops_and_returns_loses_nothing() {
    let Some((s3, mut weed)) = Weed::private() else {
        return;
    };
    let bucket = s3.bucket();
    let mut env = Env::new("").with_http();
    // The source stays local: only the sink goes away.
    configure_s3_sink(&mut env, &s3, &bucket, &s3.endpoint);
    env.add_file(0, 2000);
    let cmd = env.cmd(&["run", "--config", env.config().to_str().unwrap()]);
    let (mut child, rx) = spawn_with_log(cmd);
    let mut log = String::new();
    let addr = wait_http_addr(&rx, &mut log);
    let a = addr.as_str();
    let wait = |what: &str, ok: &dyn Fn() -> bool| {
        let t0 = std::time::Instant::now();
        while !ok() {
            assert!(t0.elapsed() < Duration::from_secs(90), "never: {what}");
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    let done = |n: u64| move || metric(&get(a, "/metrics").1, "sluice_files_done_total") >= n;
    wait("file 0 done", &done(1));

    weed.kill();
    for h in 1..4 {
        env.add_file(h, 3000);
    }
    wait("/healthz fails", &|| get(a, "/healthz").0 == 503);
    let out = env
        .cmd(&[
            "status",
            "--config",
            env.config().to_str().unwrap(),
            "--addr",
            a,
        ])
        .output()
        .unwrap();
    let text = output_text(&out);
    assert!(text.contains("sink store unreachable"), "{text}");
    assert!(!text.contains(&s3.secret), "{text}");
    assert!(metric(&get(a, "/metrics").1, "sluice_sink_store_failures_total") >= 2);

    weed.restart(&s3);
    env.add_file(2, 1000);
    wait("every file done", &done(5));
    wait("/healthz passes", &|| get(a, "/healthz").0 == 200);
    // SAFETY: signalling our own child.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    assert!(child.wait().unwrap().success());
    assert_exact(&env, &s3, &bucket, "after the outage");
}

/// Another engine (pyarrow's dataset reader, talking S3 itself) reads the
/// committed output as a Hive-partitioned table straight from the server.
#[test]
fn pyarrow_reads_the_s3_output_as_a_hive_partitioned_table() {
    let Some(s3) = s3() else { return };
    let bucket = s3.bucket();
    let mut env = Env::new("");
    configure_s3(&mut env, s3, &bucket);
    for h in 0..3 {
        add(&mut env, s3, &bucket, h, 1200);
    }
    let out = env.run_once();
    assert!(out.status.success(), "{}", output_text(&out));
    let want = expected_tables(&env.ods(), &[])["t_click"].len();
    let endpoint = s3.endpoint.trim_start_matches("http://");
    let env_of = |k: &str| {
        s3.env()
            .into_iter()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| v)
            .unwrap_or_default()
    };
    let script = format!(
        r#"
import pyarrow.dataset as ds, pyarrow.fs as fs
s3 = fs.S3FileSystem(endpoint_override="{endpoint}", scheme="http", region="us-east-1",
                     access_key="{key}", secret_key="{secret}")
d = ds.dataset("{bucket}/dwd/t_click", filesystem=s3, format="parquet", partitioning="hive")
t = d.to_table()
print("TOTAL", t.num_rows)
for h in sorted(set(t.column("hour").to_pylist())): print("HOUR", h)
"#,
        key = env_of("AWS_ACCESS_KEY_ID"),
        secret = env_of("AWS_SECRET_ACCESS_KEY"),
    );
    let stdout = crate::engine::run_python(&script);
    assert!(stdout.contains(&format!("TOTAL {want}")), "{stdout}");
    assert_eq!(
        stdout.lines().filter(|l| l.starts_with("HOUR")).count(),
        3,
        "{stdout}"
    );
}

/// The network between sluice and the sink fails at random (503 Slow
/// Down, resets, connections cut mid-request, through a fault-injecting
/// proxy): requests are retried, completions that succeeded unseen are
/// recognised, and the tables end exact with no upload left.
#[test]
fn a_flaky_network_to_the_sink_loses_and_duplicates_nothing() {
    let Some(s3) = s3() else { return };
    let bucket = s3.bucket();
    let upstream = s3.endpoint.trim_start_matches("http://").to_string();
    let proxy = crate::fault_proxy::FaultProxy::start(upstream, 0.3);
    let mut env = Env::new("");
    configure_s3_sink(&mut env, s3, &bucket, &proxy.endpoint);
    let mut failed_runs = 0;
    for round in 0..3 {
        for h in 0..2 {
            env.add_file(round + h, 2500);
        }
        if !env.run_once().status.success() {
            // `--once` gives up after its retries; the next run goes on.
            failed_runs += 1;
        }
    }
    let mut last = env.run_once();
    for _ in 0..3 {
        if last.status.success() {
            break;
        }
        last = env.run_once();
    }
    assert!(last.status.success(), "{}", output_text(&last));
    let faults = proxy.faults.load(std::sync::atomic::Ordering::Relaxed);
    assert!(faults >= 5, "only {faults} faults injected");
    let rows = assert_exact(&env, s3, &bucket, "through the flaky network");
    eprintln!(
        "flaky network: {faults} connections failed, {failed_runs} runs gave up, {rows} rows exact"
    );
}
