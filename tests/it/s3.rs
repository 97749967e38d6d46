//! Object storage against a real S3 server (see `s3_support`): what the
//! server offers the sink, the source and a dimension on S3 read exactly
//! once by the real binary, `sluice check` reaching each store, and a
//! daemon whose source store stops and comes back.

use crate::ops::{get, metric};
use crate::s3_support::{S3, Weed, s3};
use crate::support::*;
use object_store::path::Path as ObjPath;
use object_store::{ObjectStoreExt, PutMode, PutOptions, PutPayload};
use sluice::store::{Location, Patience};
use std::path::Path;

fn loc(url: &str) -> Location {
    Location::parse(Path::new("/"), url).unwrap()
}

/// The S3 features the object-store sink builds on: multipart uploads
/// completed and aborted by id, ListMultipartUploads (recovery finds the
/// uploads it began), and conditional put (`If-None-Match: *`).
#[test]
fn the_server_offers_multipart_listing_uploads_and_conditional_put() {
    let Some(s3) = s3() else { return };
    let bucket = s3.bucket();
    let opened = sluice::store::open_parts(
        &loc(&format!("s3://{bucket}/dwd")),
        &s3.settings(&bucket),
        false,
        Patience::Normal,
    )
    .unwrap();
    let mp = opened.multipart.clone().expect("S3 has multipart uploads");
    let key = ObjPath::from("dwd/t/part-0.parquet");
    let part = vec![7u8; 5 << 20];
    let rt = &s3.rt;
    let id = rt.block_on(mp.create_multipart(&key)).unwrap();
    let p0 = rt
        .block_on(mp.put_part(&key, &id, 0, PutPayload::from(part)))
        .unwrap();
    let p1 = rt
        .block_on(mp.put_part(&key, &id, 1, PutPayload::from(vec![1u8; 10])))
        .unwrap();
    // Not visible before completion.
    assert!(rt.block_on(opened.bucket.head(&key)).is_err());
    let (status, body) = s3.request("GET", &format!("/{bucket}?uploads"), Vec::new());
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains(&id),
        "ListMultipartUploads lacks {id}: {body}"
    );
    rt.block_on(mp.complete_multipart(&key, &id, vec![p0, p1]))
        .unwrap();
    let m = rt.block_on(opened.bucket.head(&key)).unwrap();
    assert_eq!(m.size, (5 << 20) + 10);

    // An aborted upload is gone from the listing.
    let other = ObjPath::from("dwd/t/part-1.parquet");
    let id2 = rt.block_on(mp.create_multipart(&other)).unwrap();
    rt.block_on(mp.put_part(&other, &id2, 0, PutPayload::from(vec![2u8; 10])))
        .unwrap();
    rt.block_on(mp.abort_multipart(&other, &id2)).unwrap();
    let (_, body) = s3.request("GET", &format!("/{bucket}?uploads"), Vec::new());
    assert!(!body.contains(&id2), "aborted upload still listed: {body}");
    assert!(rt.block_on(opened.bucket.head(&other)).is_err());

    // Conditional put: the second create of a key is refused.
    let marker = ObjPath::from("dwd/_SUCCESS");
    let create = || PutOptions::from(PutMode::Create);
    rt.block_on(
        opened
            .bucket
            .put_opts(&marker, PutPayload::from_static(b"a"), create()),
    )
    .unwrap();
    let again = rt.block_on(opened.bucket.put_opts(
        &marker,
        PutPayload::from_static(b"b"),
        create(),
    ));
    assert!(
        matches!(again, Err(object_store::Error::AlreadyExists { .. })),
        "{again:?}"
    );
}

/// Points the environment's source and dimension at `bucket` (the
/// per-store section names the endpoint; credentials come from the
/// environment of the process).
fn configure(env: &Env, s3: &S3, bucket: &str) {
    let cfg = std::fs::read_to_string(env.config()).unwrap();
    let cfg = cfg
        .replace(
            "root = \"ods\"",
            &format!("root = \"s3://{bucket}/ods/events\""),
        )
        .replace(
            "path = \"dim/spmid.csv\"",
            &format!("path = \"s3://{bucket}/dim/spmid.csv\""),
        )
        + &format!(
            "[stores.\"s3://{bucket}\"]\nendpoint = \"{}\"\nallow_http = true\nregion = \"us-east-1\"\n",
            s3.endpoint
        );
    std::fs::write(env.config(), cfg).unwrap();
}

fn run_once_on(env: &Env, s3: &S3) -> std::process::Output {
    let mut c = env.cmd(&["run", "--config", env.config().to_str().unwrap(), "--once"]);
    for (k, v) in s3.env() {
        c.env(k, v);
    }
    // The endpoint comes from the config's section, not the environment.
    c.env_remove("AWS_ENDPOINT_URL").output().unwrap()
}

#[test]
fn source_and_dimension_on_s3_are_read_exactly_once() {
    let Some(s3) = s3() else { return };
    let bucket = s3.bucket();
    let mut env = Env::new("");
    configure(&env, s3, &bucket);
    let dim = s3.store(&bucket, "dim");
    s3.put(
        &dim,
        "spmid.csv",
        std::fs::read(env.path().join("dim/spmid.csv")).unwrap(),
    );
    // First files, one run; more files (one in an old partition), a second run.
    let files: Vec<_> = (0..3).map(|h| env.add_file(h, 700)).collect();
    s3.upload(&env.ods(), &files, &bucket, "ods/events");
    let out = run_once_on(&env, s3);
    assert!(out.status.success(), "{}", output_text(&out));
    let first = actual_tables(&env.sink());
    assert!(!first.is_empty());
    let files = [env.add_file(0, 500), env.add_file(5, 900)];
    s3.upload(&env.ods(), &files, &bucket, "ods/events");
    let out = run_once_on(&env, s3);
    assert!(out.status.success(), "{}", output_text(&out));
    let d = diff_tables(
        &expected_tables(&env.ods(), &[]),
        &actual_tables(&env.sink()),
    );
    assert!(d.is_empty(), "{d:?}\n{}", output_text(&out));
    // t_dept takes the rows the S3 dimension enriched.
    assert!(actual_tables(&env.sink()).contains_key("t_dept"));
}

#[test]
fn check_reaches_every_store_and_names_what_fails() {
    let Some(s3) = s3() else { return };
    let bucket = s3.bucket();
    let env = Env::new("");
    configure(&env, s3, &bucket);
    s3.put(
        &s3.store(&bucket, "dim"),
        "spmid.csv",
        std::fs::read(env.path().join("dim/spmid.csv")).unwrap(),
    );
    let check = |env: &Env, secret: &str| {
        let mut c = env.cmd(&["check", "--config", env.config().to_str().unwrap()]);
        for (k, v) in s3.env() {
            c.env(k, v);
        }
        c.env("AWS_SECRET_ACCESS_KEY", secret).output().unwrap()
    };
    // Reachable: both object-store locations are named ok.
    let out = check(&env, &s3.secret);
    let text = output_text(&out);
    assert!(
        text.contains(&format!("ok  s3://{bucket}/ods/events")),
        "{text}"
    );
    assert!(
        text.contains(&format!("ok  s3://{bucket}/dim/spmid.csv")),
        "{text}"
    );

    // Denied credentials.
    let out = check(&env, "not-the-secret");
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(
        text.contains(&format!(
            "error: source.root: cannot reach s3://{bucket}/ods/events"
        )),
        "{text}"
    );
    assert!(
        text.contains("SignatureDoesNotMatch") || text.contains("AccessDenied"),
        "the store's own error: {text}"
    );
    assert!(
        !text.contains("not-the-secret") && !text.contains(&s3.secret),
        "{text}"
    );

    // A missing bucket.
    let cfg = std::fs::read_to_string(env.config()).unwrap();
    std::fs::write(
        env.config(),
        cfg.replace(
            &format!("s3://{bucket}/dim"),
            &format!("s3://{bucket}-gone/dim"),
        ) + &format!(
            "[stores.\"s3://{bucket}-gone\"]\nendpoint = \"{}\"\nallow_http = true\n",
            s3.endpoint
        ),
    )
    .unwrap();
    let out = check(&env, &s3.secret);
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(
        text.contains(&format!(
            "error: dimension[0].path: cannot reach s3://{bucket}-gone/dim"
        )),
        "{text}"
    );
    assert!(text.contains("NoSuchBucket"), "{text}");
    assert!(
        text.contains(&format!("ok  s3://{bucket}/ods/events")),
        "{text}"
    );

    // An endpoint nobody listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    std::fs::write(
        env.config(),
        cfg.replace(&s3.endpoint, &format!("http://127.0.0.1:{port}")),
    )
    .unwrap();
    let out = check(&env, &s3.secret);
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(
        text.contains(&format!(
            "error: source.root: cannot reach s3://{bucket}/ods/events"
        )),
        "{text}"
    );
    assert!(
        text.to_lowercase().contains("connect") || text.contains("refused"),
        "{text}"
    );
}

/// The source store stops under a running daemon: scans fail fast and
/// say so (`/healthz`, the status diagnosis, the failure counter); when it
/// is back, the daemon goes on and every row lands exactly once.
#[test]
fn a_daemon_whose_source_store_goes_down_says_so_and_resumes_exactly_once() {
    if s3().is_none() {
        return;
    }
    let Some((s3, mut weed)) = Weed::private() else {
        return;
    };
    let bucket = s3.bucket();
    let mut env = Env::new("").with_http();
    configure(&env, &s3, &bucket);
    s3.put(
        &s3.store(&bucket, "dim"),
        "spmid.csv",
        std::fs::read(env.path().join("dim/spmid.csv")).unwrap(),
    );
    let first = [env.add_file(0, 600)];
    s3.upload(&env.ods(), &first, &bucket, "ods/events");

    let mut cmd = env.cmd(&["run", "--config", env.config().to_str().unwrap()]);
    for (k, v) in s3.env() {
        cmd.env(k, v);
    }
    cmd.env_remove("AWS_ENDPOINT_URL");
    let (child, rx) = spawn_with_log(cmd);
    let mut log = String::new();
    let addr = wait_http_addr(&rx, &mut log);
    let wait = |what: &str, ok: &dyn Fn() -> bool| {
        let t0 = std::time::Instant::now();
        while !ok() {
            assert!(
                t0.elapsed() < std::time::Duration::from_secs(90),
                "never: {what}"
            );
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    };
    let a = addr.as_str();
    let done = |n: u64| move || metric(&get(a, "/metrics").1, "sluice_files_done_total") >= n;
    wait("file 0 done", &done(1));

    weed.kill();
    wait("/healthz fails", &|| get(&addr, "/healthz").0 == 503);
    let out = env
        .cmd(&[
            "status",
            "--config",
            env.config().to_str().unwrap(),
            "--addr",
            &addr,
        ])
        .output()
        .unwrap();
    let text = output_text(&out);
    assert!(text.contains("source store unreachable"), "{text}");
    assert!(
        text.contains(&format!("s3://{bucket}/ods/events")),
        "{text}"
    );
    assert!(!text.contains(&s3.secret), "{text}");
    assert!(metric(&get(&addr, "/metrics").1, "sluice_listing_failures_total") >= 3);

    weed.restart(&s3);
    let second = [env.add_file(1, 700)];
    s3.upload(&env.ods(), &second, &bucket, "ods/events");
    wait("file 1 done", &done(2));
    wait("/healthz passes", &|| get(&addr, "/healthz").0 == 200);
    stop_and_check(child, &env);
}

/// A daemon started while its source store is down waits for it (it cannot
/// learn the schema before) instead of exiting, and reads exactly once
/// when the store is back.
#[test]
fn a_daemon_started_while_the_source_store_is_down_waits_for_it() {
    let Some((s3, mut weed)) = Weed::private() else {
        return;
    };
    let bucket = s3.bucket();
    let env = Env::new("").with_http();
    configure(&env, &s3, &bucket);
    s3.put(
        &s3.store(&bucket, "dim"),
        "spmid.csv",
        std::fs::read(env.path().join("dim/spmid.csv")).unwrap(),
    );
    weed.kill();
    let mut cmd = env.cmd(&["run", "--config", env.config().to_str().unwrap()]);
    for (k, v) in s3.env() {
        cmd.env(k, v);
    }
    cmd.env_remove("AWS_ENDPOINT_URL");
    let (mut child, rx) = spawn_with_log(cmd);
    let mut log = String::new();
    let addr = wait_http_addr(&rx, &mut log);
    std::thread::sleep(std::time::Duration::from_secs(3));
    assert!(child.try_wait().unwrap().is_none(), "the daemon exited");
    assert_eq!(get(&addr, "/readyz").0, 503);
    weed.restart(&s3);
    let mut env = env;
    let files = [env.add_file(0, 600), env.add_file(1, 700)];
    s3.upload(&env.ods(), &files, &bucket, "ods/events");
    let t0 = std::time::Instant::now();
    while metric(&get(&addr, "/metrics").1, "sluice_files_done_total") < 2 {
        assert!(t0.elapsed().as_secs() < 90, "files never done");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    stop_and_check(child, &env);
}

/// SIGTERM: the daemon must stop cleanly, and every table be exact.
fn stop_and_check(mut child: Daemon, env: &Env) {
    // SAFETY: signalling our own child.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    assert!(child.wait().unwrap().success());
    let d = diff_tables(
        &expected_tables(&env.ods(), &[]),
        &actual_tables(&env.sink()),
    );
    assert!(d.is_empty(), "{d:?}");
}
