//! `[cluster]`: replicas as real processes sharing one source folder and
//! one sink. Three replicas SIGKILLed and restarted at random while files
//! arrive: every table exact, and every hour announced once all three have
//! committed its rows, with their totals; one replica stopped for good: the
//! others keep working, nothing is announced, `status` names it; a reshard
//! from 2 to 3 replicas with files arriving afterwards: exact.

use crate::receiver::{answer, partition_contents, read_request};
use crate::replicas_support::*;
use crate::support::*;
use sluice::demo::Rng;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const DAY: &str = "dt=2026-11-20";

fn hour(h: u32) -> String {
    format!("{DAY}/hour={h:02}")
}

/// A notification and what the sink held when it arrived: (body, rows
/// and files in the unit's folder, `_SUCCESS` there).
type Seen = Arc<Mutex<Vec<(serde_json::Value, u64, bool)>>>;

/// A webhook receiver that looks at the sink when a notification arrives.
fn start_checking_receiver(sink: PathBuf) -> (String, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let seen: Seen = Arc::default();
    let s = seen.clone();
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            if let Some((_, body)) = read_request(&mut conn) {
                let unit = sink
                    .join(body["table"].as_str().unwrap_or("?"))
                    .join(body["partition"].as_str().unwrap_or("?"));
                let (rows, _) = partition_contents(&unit);
                let success = unit.join("_SUCCESS").exists();
                s.lock().unwrap().push((body, rows, success));
                answer(&mut conn, 200);
            }
        }
    });
    (addr, seen)
}

/// Click events of hour `h` in the input: what `t_click`'s unit must hold.
fn clicks(ods: &Path, h: u32) -> u64 {
    use arrow::array::AsArray;
    visible_files(&ods.join(hour(h)), &[])
        .iter()
        .flat_map(|(_, bs)| bs.iter())
        .map(|b| {
            let t = b.column_by_name("event_type").unwrap().as_string::<i32>();
            t.iter().filter(|v| *v == Some("click")).count() as u64
        })
        .sum()
}

fn pc_config(addr: &str) -> String {
    // idle_close off: an hour closes when a newer one appears, so an hour
    // is never complete before all its files landed.
    format!(
        r#"
[partition_commit]
delay = "0s"
idle_close = "off"
webhook = {{ url = "http://{addr}/hook", timeout = "2s" }}
retry_backoff = "100ms"
"#
    )
}

fn assert_exact(env: &Env) {
    let expected = expected_tables(&env.ods(), &[]);
    let diffs = diff_tables(&expected, &actual_tables(&env.sink()));
    assert!(diffs.is_empty(), "output differs:\n{}", diffs.join("\n"));
}

fn drain(rx: &std::sync::mpsc::Receiver<String>, log: &mut String) {
    while let Ok(l) = rx.try_recv() {
        log.push_str(&l);
        log.push('\n');
    }
}

/// Waits up to `secs` for `cond`, gathering the replicas' logs.
fn wait_until(
    what: &str,
    secs: u64,
    daemons: &[(Daemon, std::sync::mpsc::Receiver<String>)],
    logs: &mut [String],
    cond: impl Fn() -> bool,
) {
    let t0 = Instant::now();
    while !cond() {
        for ((_, rx), log) in daemons.iter().zip(logs.iter_mut()) {
            drain(rx, log);
        }
        assert!(
            t0.elapsed() < Duration::from_secs(secs),
            "timed out waiting for {what}:\n{}",
            logs.iter()
                .enumerate()
                .map(|(i, l)| format!("--- replica {i}\n{l}"))
                .collect::<String>()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Every notification carried its hour's click events as `rows`, and the
/// sink held exactly those rows when it arrived.
fn assert_notified_totals(seen: &Seen, ods: &Path) {
    for (body, rows_at_arrival, _) in seen.lock().unwrap().iter() {
        let h: u32 = body["partition"]
            .as_str()
            .unwrap()
            .rsplit('=')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(body["rows"], clicks(ods, h), "{body}");
        assert_eq!(*rows_at_arrival, clicks(ods, h), "{body}");
    }
}

/// The hours of `t_click` notified so far.
fn notified_hours(seen: &Seen) -> std::collections::BTreeSet<String> {
    seen.lock()
        .unwrap()
        .iter()
        .filter(|(b, _, _)| b["table"] == "t_click")
        .map(|(b, _, _)| b["partition"].as_str().unwrap_or("").to_string())
        .collect()
}

#[test]
fn three_replicas_killed_at_random_lose_nothing_and_announce_only_complete_hours() {
    let mut r = Replicas::new(3, "", "dwd", false);
    let (addr, seen) = start_checking_receiver(r.env.sink());
    r.append(&pc_config(&addr));
    let mut rng = Rng::new(14);
    let mut logs = vec![String::new(); 3];
    let mut daemons: Vec<_> = (0..3).map(|i| r.spawn(i)).collect();
    let mut kills = [0u32; 3];
    let offset = rng.below(3);
    for h in 0..6 {
        // SIGKILL one replica at a random moment (each twice, in a random
        // rotation); the hour's files land while it is down, and the other
        // replicas move past the hour before.
        std::thread::sleep(Duration::from_millis(rng.below(500)));
        let victim = ((h as u64 + offset) % 3) as usize;
        let (d, rx) = daemons.remove(victim);
        drop(d); // SIGKILL, reaped
        drain(&rx, &mut logs[victim]);
        logs[victim].push_str("=== SIGKILL\n");
        kills[victim] += 1;
        for _ in 0..4 {
            r.env.add_file(h, 300);
            std::thread::sleep(Duration::from_millis(rng.below(150)));
        }
        std::thread::sleep(Duration::from_millis(300 + rng.below(900)));
        daemons.insert(victim, r.spawn(victim as u32));
    }
    // Hour 06 lands: hour 05 is complete once every replica has seen it.
    r.env.add_file(6, 300);
    let want: std::collections::BTreeSet<String> = (0..6).map(hour).collect();
    wait_until(
        "every hour 00..05 notified",
        90,
        &daemons,
        &mut logs,
        || notified_hours(&seen) == want,
    );
    // A few more ticks: nothing else is announced.
    std::thread::sleep(Duration::from_millis(1500));
    for (i, (d, rx)) in daemons.into_iter().enumerate() {
        drain(&rx, &mut logs[i]);
        assert!(stop(d), "replica {i} did not stop cleanly:\n{}", logs[i]);
    }
    assert_exact(&r.env);
    let all = seen.lock().unwrap().clone();
    assert_eq!(notified_hours(&seen), want, "{all:#?}");
    for (body, rows_at_arrival, success) in &all {
        let h: u32 = body["partition"]
            .as_str()
            .unwrap()
            .rsplit('=')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let want_rows = clicks(&r.env.ods(), h);
        // Announced with every replica's rows, all visible, marker first.
        assert_eq!(body["rows"], want_rows, "{body}");
        assert_eq!(
            *rows_at_arrival, want_rows,
            "rows visible when {body} arrived"
        );
        assert!(success, "_SUCCESS missing when {body} arrived");
        assert_eq!(body["late"], false, "{body}");
    }
    for h in 0..6 {
        assert!(
            r.env
                .sink()
                .join("t_click")
                .join(hour(h))
                .join("_SUCCESS")
                .exists()
        );
    }
    assert!(
        !r.env
            .sink()
            .join("t_click")
            .join(hour(6))
            .join("_SUCCESS")
            .exists()
    );
    // Each replica read its own shard: names carry the replica.
    for i in 0..3 {
        assert!(!r.owned(i, 3).is_empty(), "replica {i} owned no file");
    }
    eprintln!(
        "replicas test: kills per replica {kills:?}, {} notifications",
        all.len()
    );
}

#[test]
fn a_replica_stopped_for_good_holds_commits_back_and_status_names_it() {
    let mut r = Replicas::new(3, "", "dwd", true);
    let (addr, seen) = start_checking_receiver(r.env.sink());
    r.append(&pc_config(&addr));
    r.env.add_file(0, 300);
    let mut logs = vec![String::new(); 3];
    let mut daemons: Vec<_> = (0..3).map(|i| r.spawn(i)).collect();
    let progress = r.env.sink().join("_sluice/replicas/2.json");
    wait_until("replica 2's progress", 60, &daemons, &mut logs, || {
        progress.exists()
    });
    let (d, _) = daemons.remove(2);
    drop(d); // SIGKILL; not restarted
    logs.truncate(2);
    for h in 0..4 {
        for _ in 0..3 {
            r.env.add_file(h, 300);
        }
    }
    // The others read their shards: their rows are there, replica 2's not.
    let theirs: Vec<PathBuf> = r.owned(2, 3);
    let expected = expected_tables(&r.env.ods(), &theirs);
    wait_until(
        "replicas 0 and 1 to commit their shards",
        60,
        &daemons,
        &mut logs,
        || diff_tables(&expected, &actual_tables(&r.env.sink())).is_empty(),
    );
    std::thread::sleep(Duration::from_millis(2500)); // past stall_after
    assert!(
        seen.lock().unwrap().is_empty(),
        "announced without replica 2"
    );
    assert!(
        !r.env
            .sink()
            .join("t_click")
            .join(hour(0))
            .join("_SUCCESS")
            .exists()
    );
    // `sluice status` through replica 0 names replica 2.
    drain(&daemons[0].1, &mut logs[0]);
    let http = {
        let mut log = logs[0].clone();
        wait_http_addr(&daemons[0].1, &mut log)
    };
    let out = r
        .cmd(
            0,
            &[
                "status",
                "--config",
                r.config(0).to_str().unwrap(),
                "--addr",
                &http,
            ],
        )
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        text.contains("replica(s) 2 down or stalled"),
        "{}",
        output_text(&out)
    );
    // Back up: the hours its shard held back are announced, complete.
    daemons.push(r.spawn(2));
    logs.push(String::new());
    let want: std::collections::BTreeSet<String> = (0..3).map(hour).collect();
    wait_until("hours 00..02 notified", 60, &daemons, &mut logs, || {
        notified_hours(&seen) == want
    });
    assert_notified_totals(&seen, &r.env.ods());
    for (i, (d, _)) in daemons.into_iter().enumerate() {
        assert!(stop(d), "replica {i}");
    }
    assert_exact(&r.env);
}

/// The source (and the dimension) on the S3 test server, the sink a local
/// folder: three replicas, one SIGKILLed and restarted, files arriving.
#[test]
fn three_replicas_over_an_s3_source_are_exact_and_commit_complete_hours() {
    three_replicas_over_s3(false);
}

/// Source and sink both on the S3 test server: three replicas writing
/// multipart uploads into one bucket, one SIGKILLed and restarted while
/// files arrive. Every table exact, every hour announced only when the
/// bucket holds all of its rows, and no upload left behind.
#[test]
fn three_replicas_over_an_s3_source_and_sink_are_exact() {
    three_replicas_over_s3(true);
}

fn three_replicas_over_s3(sink_on_s3: bool) {
    let Some(s3) = crate::s3_support::s3() else {
        return;
    };
    let bucket = s3.bucket();
    let mut r = Replicas::new(3, "", "dwd", false);
    let (addr, seen) = if sink_on_s3 {
        start_s3_checking_receiver(s3, bucket.clone())
    } else {
        start_checking_receiver(r.env.sink())
    };
    r.append(&pc_config(&addr));
    let endpoint = s3.endpoint.clone();
    let b = bucket.clone();
    r.edit(move |cfg| {
        let cfg = cfg
            .replace("root = \"ods\"", &format!("root = \"s3://{b}/ods/events\""))
            .replace(
                "path = \"dim/spmid.csv\"",
                &format!("path = \"s3://{b}/dim/spmid.csv\""),
            );
        let cfg = if sink_on_s3 {
            cfg.replace("root = \"dwd\"", &format!("root = \"s3://{b}/dwd\""))
        } else {
            cfg
        };
        cfg + &format!(
            "[stores.\"s3://{b}\"]\nendpoint = \"{endpoint}\"\nallow_http = true\nregion = \"us-east-1\"\n"
        )
    });
    r.vars = s3
        .env()
        .into_iter()
        .filter(|(k, _)| *k != "AWS_ENDPOINT_URL")
        .map(|(k, v)| (k.to_string(), v))
        // Files span several parts on the S3 sink.
        .chain([("SLUICE_TEST_PART_SIZE".to_string(), "65536".to_string())])
        .collect();
    let dim = s3.store(&bucket, "dim");
    s3.put(
        &dim,
        "spmid.csv",
        std::fs::read(r.env.path().join("dim/spmid.csv")).unwrap(),
    );
    let upload = |r: &mut Replicas, h: u32| {
        let files: Vec<PathBuf> = (0..4).map(|_| r.env.add_file(h, 500)).collect();
        s3.upload(&r.env.ods(), &files, &bucket, "ods/events");
    };
    upload(&mut r, 0);
    let mut logs = vec![String::new(); 3];
    let mut daemons: Vec<_> = (0..3).map(|i| r.spawn(i)).collect();
    let killed = if sink_on_s3 { 2 } else { 1 };
    for h in 1..4 {
        if h == 2 {
            let (d, _) = daemons.remove(killed);
            drop(d); // SIGKILL
            upload(&mut r, h);
            std::thread::sleep(Duration::from_millis(700));
            daemons.insert(killed, r.spawn(killed as u32));
        } else {
            upload(&mut r, h);
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    let want: std::collections::BTreeSet<String> = (0..3).map(hour).collect();
    wait_until("hours 00..02 notified", 120, &daemons, &mut logs, || {
        notified_hours(&seen) == want
    });
    for (i, (d, _)) in daemons.into_iter().enumerate() {
        assert!(stop(d), "replica {i}");
    }
    if sink_on_s3 {
        let got = r.env.path().join("downloaded");
        crate::s3_sink::download(s3, &bucket, &got);
        let diffs = diff_tables(&expected_tables(&r.env.ods(), &[]), &actual_tables(&got));
        assert!(diffs.is_empty(), "output differs:\n{}", diffs.join("\n"));
        assert_eq!(crate::s3_sink::uploads_in_progress(s3, &bucket), 0);
    } else {
        assert_exact(&r.env);
    }
    assert_notified_totals(&seen, &r.env.ods());
}

/// A webhook receiver that reads the unit's folder from the S3 sink when a
/// notification arrives.
fn start_s3_checking_receiver(
    s3: &'static crate::s3_support::S3,
    bucket: String,
) -> (String, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let seen: Seen = Arc::default();
    let s = seen.clone();
    std::thread::spawn(move || {
        let tmp = tempfile::tempdir().unwrap();
        for mut conn in listener.incoming().flatten() {
            conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            if let Some((_, body)) = read_request(&mut conn) {
                let prefix = format!(
                    "dwd/{}/{}",
                    body["table"].as_str().unwrap_or("?"),
                    body["partition"].as_str().unwrap_or("?")
                );
                let dir = tmp.path().join("unit");
                crate::s3_sink::download_prefix(s3, &bucket, &prefix, &dir);
                let (rows, _) = partition_contents(&dir);
                let success = dir.join("_SUCCESS").exists();
                s.lock().unwrap().push((body, rows, success));
                answer(&mut conn, 200);
            }
        }
    });
    (addr, seen)
}

#[test]
fn resharding_two_replicas_into_three_reads_every_file_once() {
    let mut r = Replicas::new(2, "", "dwd", false);
    for h in 0..2 {
        for _ in 0..4 {
            r.env.add_file(h, 400);
        }
    }
    for i in 0..2 {
        let o = r.run_once(i);
        assert!(o.status.success(), "{}", output_text(&o));
    }
    // More files; only replica 0 runs again, so replica 1's share of them
    // is not taken before the reshard.
    for _ in 0..4 {
        r.env.add_file(2, 400);
    }
    let o = r.run_once(0);
    assert!(o.status.success(), "{}", output_text(&o));
    let dumps: Vec<PathBuf> = (0..2)
        .map(|i| r.env.path().join(format!("old-{i}.jsonl")))
        .collect();
    for (i, d) in dumps.iter().enumerate() {
        let c = r.config(i as u32);
        let o = r
            .cmd(
                i as u32,
                &[
                    "state",
                    "export",
                    "--config",
                    c.to_str().unwrap(),
                    "--out",
                    d.to_str().unwrap(),
                ],
            )
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", output_text(&o));
    }
    r.set_replicas(3);
    // A state written for replica 1 of 2 refuses to run as 1 of 3.
    let o = r.run_once(1);
    let text = output_text(&o);
    assert!(
        !o.status.success()
            && text.contains("replica 1 of 2")
            && text.contains("sluice state reshard"),
        "{text}"
    );
    let from = format!("{},{}", dumps[1].display(), dumps[0].display());
    let new = r.env.path().join("new");
    let o = r
        .env
        .cmd(&[
            "state",
            "reshard",
            "--from",
            &from,
            "--replicas",
            "3",
            "--out",
            new.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", output_text(&o));
    for j in 0..3u32 {
        let dump = new.join(format!("replica-{j}.jsonl"));
        let c = r.config(j);
        let o = r
            .cmd(
                j,
                &[
                    "state",
                    "import",
                    "--config",
                    c.to_str().unwrap(),
                    dump.to_str().unwrap(),
                    "--force",
                ],
            )
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", output_text(&o));
    }
    // Files keep arriving, in old hours and new ones.
    for h in 2..5 {
        for _ in 0..3 {
            r.env.add_file(h, 400);
        }
    }
    for j in 0..3 {
        let o = r.run_once(j);
        assert!(o.status.success(), "{}", output_text(&o));
    }
    assert_exact(&r.env);
    // Output names carry the replica.
    let names: Vec<String> = visible_files(&r.env.sink(), &[])
        .into_iter()
        .map(|(p, _)| p)
        .collect();
    for j in 0..3 {
        assert!(
            names.iter().any(|p| p.contains(&format!("/part-r00{j}-"))),
            "{names:?}"
        );
    }
}

/// `visibility = "manifest"`: each replica takes only its shard's entries
/// of the shared index files, so every file is read once.
#[test]
fn manifest_mode_replicas_read_every_indexed_file_once() {
    let mut r = Replicas::new(3, "", "dwd", false);
    r.edit(|cfg| cfg.replacen("visibility = \"settled\"", "visibility = \"manifest\"", 1));
    let idx = r.env.ods().join("_manifests");
    std::fs::create_dir_all(&idx).unwrap();
    let mut lines = String::new();
    for h in 0..3 {
        for _ in 0..4 {
            let f = r.env.add_file(h, 300);
            let rel = f
                .strip_prefix(r.env.ods())
                .unwrap()
                .to_str()
                .unwrap()
                .to_string();
            let size = std::fs::metadata(&f).unwrap().len();
            lines.push_str(&format!("{{\"path\": \"{rel}\", \"size\": {size}}}\n"));
        }
    }
    std::fs::write(idx.join("0001.json"), lines).unwrap();
    for i in 0..3 {
        let o = r.run_once(i);
        assert!(o.status.success(), "{}", output_text(&o));
        // Replica i's rows: exactly its shard's files so far.
        let later: Vec<PathBuf> = (i + 1..3).flat_map(|j| r.owned(j, 3)).collect();
        let diffs = diff_tables(
            &expected_tables(&r.env.ods(), &later),
            &actual_tables(&r.env.sink()),
        );
        assert!(diffs.is_empty(), "after replica {i}: {diffs:?}");
    }
}

/// At-least-once across a crash of the committer: replica 0 dies after the
/// webhook of an hour went out and before it recorded it; restarted, it
/// announces the hour again with the same totals of all three replicas.
#[test]
fn the_committer_killed_after_a_notification_sends_it_again_with_the_same_totals() {
    let mut r = Replicas::new(3, "", "dwd", false);
    let (addr, seen) = start_checking_receiver(r.env.sink());
    r.append(&pc_config(&addr));
    for _ in 0..4 {
        r.env.add_file(0, 300);
    }
    r.env.add_file(1, 300);
    let mut c0 = r.cmd(0, &["run", "--config", r.config(0).to_str().unwrap()]);
    c0.env("SLUICE_CRASH_AT", "after_partition_notify")
        .stdout(std::process::Stdio::null());
    let mut daemons = vec![spawn_with_log(c0), r.spawn(1), r.spawn(2)];
    let mut logs = vec![String::new(); 3];
    let (d0, _) = &mut daemons[0];
    let t = Instant::now();
    while d0.try_wait().unwrap().is_none() {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "replica 0 never reached the crash point"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(notified_hours(&seen).len(), 1);
    daemons[0] = r.spawn(0);
    wait_until("the notification again", 60, &daemons, &mut logs, || {
        seen.lock().unwrap().len() >= 2
    });
    std::thread::sleep(Duration::from_millis(1500));
    let all = seen.lock().unwrap().clone();
    assert_eq!(all.len(), 2, "{all:#?}");
    let mut again = all[1].0.clone();
    again["committed_at"] = all[0].0["committed_at"].clone();
    assert_eq!(again, all[0].0, "the same notification");
    assert_eq!(all[1].0["rows"], clicks(&r.env.ods(), 0));
    for (i, (d, _)) in daemons.into_iter().enumerate() {
        assert!(stop(d), "replica {i}");
    }
    assert_exact(&r.env);
}
