//! `sluice bench` scenarios `trickle` and `trickle_each_checkpoint`: one
//! hour of source data that arrives file by file over about 24
//! checkpoints, routed into 10 tables partitioned by (dt, hour), with
//! partition commit on. Reports the files each table-hour ends up with and
//! the time from the hour's last source file to its `_SUCCESS`.
//! `trickle_each_checkpoint` closes files at every checkpoint (the
//! behaviour before files stayed open), for comparison.
//!
//! The source is in `marker` mode and every data file sits in its own
//! folder, all written up front: a file becomes visible when its folder's
//! `_SUCCESS` lands, and until then it is listed but waiting, which keeps
//! the hour open, as a producer still writing it would.

use anyhow::{Context, Result, bail};
use sluice::config::Config;
use sluice::pipeline::{self, RunMode};
use sluice::telemetry::Metrics;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Source files of the hour, one made visible per checkpoint interval.
const FILES: u64 = 24;
const INTERVAL: Duration = Duration::from_millis(250);

/// Runs one trickle scenario in `work`; prints its `TRICKLE` line.
pub fn run(
    work: &Path,
    rules: &[(String, String)],
    rows: usize,
    writers: usize,
    each_checkpoint: bool,
) -> Result<()> {
    let ods = work.join("ods");
    let hour = ods.join("dt=2026-11-20").join("hour=00");
    let per_file = (rows / FILES as usize).max(1);
    for i in 0..FILES {
        let p = hour
            .join(format!("batch={i:02}"))
            .join(format!("part-{i:06}.parquet"));
        std::fs::create_dir_all(p.parent().context("file has a folder")?)?;
        sluice::demo::write_event_file(&p, i + 1, per_file, 65_536, sluice::demo::DAY_START_MS)?;
    }
    std::fs::create_dir_all(work.join("rules"))?;
    for (name, sql) in rules {
        std::fs::write(work.join("rules").join(format!("{name}.sql")), sql)?;
    }
    let max_file_age = if each_checkpoint { "1ms" } else { "15m" };
    let text = format!(
        "version = 1\n[source]\nname = \"ods_events\"\nroot = \"ods\"\nvisibility = \"marker\"\nscan_interval = \"50ms\"\n[state]\ndir = \"state\"\n[sink]\nroot = \"dwd\"\ncheckpoint_interval = \"{}ms\"\nmax_file_age = \"{max_file_age}\"\nwriters = {writers}\n[rules]\ndir = \"rules\"\n[partition_commit]\ndelay = \"0s\"\n[http]\nenabled = false\n",
        INTERVAL.as_millis()
    );
    let cfg = Config::parse(&text, &work.join("sluice.toml")).context("trickle config")?;
    let rt = crate::runtime()?;
    let shutdown = Arc::new(AtomicBool::new(false));
    let metrics = Arc::new(Metrics::default());
    let daemon = {
        let (cfg, shutdown, metrics, handle) = (
            cfg.clone(),
            shutdown.clone(),
            metrics.clone(),
            rt.handle().clone(),
        );
        std::thread::spawn(move || {
            let mode = RunMode::Daemon {
                shutdown,
                reload: Arc::new(AtomicBool::new(false)),
            };
            pipeline::run(&cfg, mode, metrics, handle)
        })
    };
    for i in 0..FILES {
        std::thread::sleep(INTERVAL);
        std::fs::write(hour.join(format!("batch={i:02}")).join("_SUCCESS"), "")?;
    }
    let last = Instant::now();
    let tables: Vec<&String> = rules.iter().map(|(t, _)| t).collect();
    let marker = |t: &str| {
        work.join("dwd")
            .join(t)
            .join("dt=2026-11-20")
            .join("hour=00")
            .join("_SUCCESS")
    };
    let committed = loop {
        if tables.iter().all(|t| marker(t).exists()) {
            break last.elapsed();
        }
        if last.elapsed() > Duration::from_secs(120) || daemon.is_finished() {
            shutdown.store(true, Ordering::SeqCst);
            bail!("the hour was not committed within 120 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    shutdown.store(true, Ordering::SeqCst);
    match daemon.join() {
        Ok(r) => {
            r?;
        }
        Err(_) => bail!("the pipeline thread panicked"),
    }
    let mut counts = Vec::new();
    let mut bytes = Vec::new();
    for t in &tables {
        let dir = marker(t)
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let mut n = 0u64;
        let mut b = 0u64;
        for e in std::fs::read_dir(&dir)?.flatten() {
            if e.file_name().to_string_lossy().ends_with(".parquet") {
                n += 1;
                b += e.metadata()?.len();
            }
        }
        counts.push(n);
        bytes.push(b);
    }
    let checkpoints = metrics.checkpoints.load(Ordering::Relaxed);
    println!(
        "TRICKLE {} {:.2} {:.3} {checkpoints} {}",
        counts.iter().max().copied().unwrap_or(0),
        counts.iter().sum::<u64>() as f64 / counts.len().max(1) as f64,
        committed.as_secs_f64(),
        bytes.iter().max().copied().unwrap_or(0),
    );
    Ok(())
}
