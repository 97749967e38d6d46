//! Figures for the README's "More than one machine", printed, never
//! asserted (`cargo test --test it replicas_figures -- --ignored
//! --nocapture`): rows/s and CPU seconds per replica of 1, 2 and 3
//! replicas over one dataset; store requests per scan per replica over an
//! S3 source; the time from a partition's last source file to its
//! notification with 3 replicas.

use crate::ops::get;
use crate::replicas_support::*;
use crate::support::*;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// CPU seconds (user + system) of a finished child, reaped with wait4.
fn wait_cpu(pid: u32) -> (bool, f64) {
    let mut status = 0;
    // SAFETY: an all-zero rusage is valid; wait4 on our own child.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::wait4(pid as i32, &mut status, 0, &mut ru) };
    assert_eq!(rc, pid as i32);
    let s = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    (
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        s(ru.ru_utime) + s(ru.ru_stime),
    )
}

#[test]
#[ignore = "a measurement: run with --ignored --nocapture"]
fn replicas_figures_throughput() {
    let mut data = Env::new("");
    let files = 48;
    let rows_per_file = 20_000;
    for f in 0..files {
        data.add_file(f % 6, rows_per_file);
    }
    let ods = data.ods();
    let rows = (files * rows_per_file as u32) as f64;
    for n in 1..=3u32 {
        let mut r = Replicas::new(n, "", "dwd", false);
        let o = ods.display().to_string();
        r.edit(move |cfg| cfg.replace("root = \"ods\"", &format!("root = {o:?}")));
        let t0 = Instant::now();
        let pids: Vec<u32> = (0..n)
            .map(|i| {
                let c = r
                    .cmd(
                        i,
                        &["run", "--config", r.config(i).to_str().unwrap(), "--once"],
                    )
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .spawn()
                    .unwrap();
                let pid = c.id();
                std::mem::forget(c); // reaped by wait_cpu
                pid
            })
            .collect();
        let cpu: Vec<f64> = pids
            .iter()
            .map(|p| {
                let (ok, cpu) = wait_cpu(*p);
                assert!(ok);
                cpu
            })
            .collect();
        let wall = t0.elapsed().as_secs_f64();
        let diffs = diff_tables(&expected_tables(&ods, &[]), &actual_tables(&r.env.sink()));
        assert!(diffs.is_empty(), "{diffs:?}");
        eprintln!(
            "FIGURE throughput: {n} replica(s): {rows} rows in {wall:.1} s = {:.0} rows/s; CPU s per replica {:?} (total {:.1})",
            rows / wall,
            cpu.iter()
                .map(|c| (c * 10.0).round() / 10.0)
                .collect::<Vec<_>>(),
            cpu.iter().sum::<f64>()
        );
    }
}

#[test]
#[ignore = "a measurement: run with --ignored --nocapture"]
fn replicas_figures_requests_and_commit_latency() {
    // Commit latency: local source, 3 replicas, the test's timings
    // (scan 100 ms, checkpoint 300 ms, max_file_age 1 s).
    {
        let mut r = Replicas::new(3, "", "dwd", false);
        let (addr, got) = crate::receiver::start_receiver(false);
        r.append(&format!(
            "\n[partition_commit]\ndelay = \"0s\"\nidle_close = \"off\"\nwebhook = {{ url = \"http://{addr}/hook\", timeout = \"2s\" }}\n"
        ));
        let daemons: Vec<_> = (0..3).map(|i| r.spawn(i)).collect();
        for h in 1..5u32 {
            for _ in 0..5 {
                r.env.add_file(h - 1, 2000);
            }
            std::thread::sleep(Duration::from_secs(3));
            // The hour's last file and the next hour's first land together:
            // from then on the hour is complete.
            let t = Instant::now();
            r.env.add_file(h - 1, 2000);
            r.env.add_file(h, 2000);
            let partition = format!("dt=2026-11-20/hour={:02}", h - 1);
            while crate::receiver::delivered_for(&got, "t_click", &partition).is_empty() {
                assert!(t.elapsed() < Duration::from_secs(60), "never committed");
                std::thread::sleep(Duration::from_millis(10));
            }
            eprintln!(
                "FIGURE commit latency, 3 replicas: hour {:02} notified {:.2} s after its last file landed",
                h - 1,
                t.elapsed().as_secs_f64()
            );
        }
        for (d, _) in daemons {
            stop(d);
        }
    }
    // Requests per scan: the source on S3.
    let Some(s3) = crate::s3_support::s3() else {
        return;
    };
    let bucket = s3.bucket();
    let mut r = Replicas::new(3, "", "dwd", true);
    let endpoint = s3.endpoint.clone();
    let b = bucket.clone();
    r.edit(move |cfg| {
        cfg.replace("root = \"ods\"", &format!("root = \"s3://{b}/ods/events\""))
            .replace("scan_interval = \"100ms\"", "scan_interval = \"1s\"")
            + &format!(
                "[stores.\"s3://{b}\"]\nendpoint = \"{endpoint}\"\nallow_http = true\nregion = \"us-east-1\"\n"
            )
    });
    r.vars = s3
        .env()
        .into_iter()
        .filter(|(k, _)| *k != "AWS_ENDPOINT_URL")
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    let files: Vec<PathBuf> = (0..300).map(|f| r.env.add_file(f % 6, 50)).collect();
    s3.upload(&r.env.ods(), &files, &bucket, "ods/events");
    let mut daemons: Vec<_> = (0..3).map(|i| r.spawn(i)).collect();
    let mut addrs = Vec::new();
    for (_, rx) in &mut daemons {
        let mut log = String::new();
        addrs.push(wait_http_addr(rx, &mut log));
    }
    let expected = expected_tables(&r.env.ods(), &[]);
    let t = Instant::now();
    while !diff_tables(&expected, &actual_tables(&r.env.sink())).is_empty() {
        assert!(t.elapsed() < Duration::from_secs(120));
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(5));
    for (i, a) in addrs.iter().enumerate() {
        let (_, body) = get(a, "/metrics");
        let pick = |name: &str| -> f64 {
            body.lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.rsplit(' ').next())
                .and_then(|v| v.parse().ok())
                .unwrap_or(0.0)
        };
        let scans = pick("sluice_source_scans_total{kind=\"full\"}");
        eprintln!(
            "FIGURE requests, replica {i} of 3, 300 objects: {scans} scans, LIST {:.1}/scan, GET {} and HEAD {} in all, {} files done",
            pick("sluice_source_requests_total{op=\"list\"}") / scans.max(1.0),
            pick("sluice_source_requests_total{op=\"get\"}"),
            pick("sluice_source_requests_total{op=\"head\"}"),
            pick("sluice_files_done_total"),
        );
    }
    for (d, _) in daemons {
        stop(d);
    }
}
