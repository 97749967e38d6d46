//! `sluice bench`: throughput of the full pipeline next to a plain
//! read-and-rewrite baseline on the same generated data. Each scenario runs
//! in a child process so its peak RSS (VmHWM) is its own.

use anyhow::{Context, Result};
use sluice::config::Config;
use sluice::pipeline::{self, RunMode};
use sluice::telemetry::Metrics;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

#[derive(clap::Args)]
pub struct BenchArgs {
    /// Rows to generate (spread over 5 hour partitions).
    #[arg(long, default_value_t = 2_000_000)]
    rows: usize,
    /// Working directory (data is generated once and reused).
    #[arg(long, default_value = "sluice-bench")]
    dir: PathBuf,
    /// Reader threads.
    #[arg(long, default_value_t = 2)]
    readers: usize,
    /// Writer threads (sink.writers).
    #[arg(long, default_value_t = 2)]
    writers: usize,
    /// read.batch_rows (rows per decoded batch; the config's default when unset).
    #[arg(long)]
    batch_rows: Option<usize>,
    /// sink.max_buffered (the memory bound of the writers).
    #[arg(long, default_value = "512MiB")]
    max_buffered: String,
    /// Run only these scenarios (comma-separated keys: read, rewrite,
    /// part100, part100_dim100k, part100_dim1m, overlap100, part10, part1000,
    /// uniform10, skew90, part1000_ckpt, trickle, trickle_each_checkpoint).
    #[arg(long)]
    only: Option<String>,
    /// Runs of each scenario; the fastest is reported (a shared machine's
    /// disk and CPU make single runs noisy).
    #[arg(long, default_value_t = 1)]
    repeat: usize,
    /// Run one scenario in this process (used by the parent run).
    #[arg(long, hide = true)]
    scenario: Option<String>,
}

const HOURS: u32 = 5;
/// Under `--dir`: the scenarios' working folders, deleted after the last.
const RUNS_DIR: &str = "runs";
const SCENARIOS: [(&str, &str); 14] = [
    ("read", "(a) read only"),
    ("rewrite", "(b) read + rewrite as one table (baseline)"),
    ("part100", "(c) 100 partitioning rules"),
    ("part100_dim100k", "(c) + join with a 100k-row dimension"),
    ("part100_dim1m", "(c) + join with a 1M-row dimension"),
    ("overlap100", "(d) 100 overlapping rules (x3 output)"),
    ("part10", "(e) 10 partitioning rules"),
    ("part1000", "(e) 1,000 partitioning rules"),
    ("uniform10", "(f) 10 tables by day, 10% of rows each"),
    ("skew90", "(f) one table-day takes 90% of rows"),
    ("part1000_ckpt", "(g) (e) with a checkpoint every 250 ms"),
    ("trickle", "(h) an hour arriving over 24 checkpoints"),
    (
        "trickle_each_checkpoint",
        "(h) the same, files closed every checkpoint",
    ),
    ("rewrite_same", "(b) again, to show run-to-run noise"),
];

/// All 200 spmid values the generator produces.
fn spmids() -> Vec<String> {
    let pages = [
        "home", "feed", "detail", "search", "live", "mall", "ads", "me", "msg", "video",
    ];
    let kinds = ["card", "banner", "list", "button"];
    let mut v = Vec::new();
    for p in pages {
        for k in kinds {
            for i in 0..5 {
                v.push(format!("{p}.{k}.{i}"));
            }
        }
    }
    v
}

fn in_list(vals: &[String]) -> String {
    vals.iter()
        .map(|v| format!("'{v}'"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn rules_for(scenario: &str) -> Vec<(String, String)> {
    let cols = "event_id, event_time, mid, user_id, event_type, app_source, spmid, platform, props, dt, hour";
    let rule = |name: String, cond: String| {
        let sql = format!(
            "CREATE TABLE {name} PARTITIONED BY (dt, hour)\nAS SELECT {cols}\nFROM ods_events\nWHERE {cond};\n"
        );
        (name, sql)
    };
    let by_day = |name: String, cond: String| {
        let sql = format!(
            "CREATE TABLE {name} PARTITIONED BY (dt)\nAS SELECT {cols}\nFROM ods_events\nWHERE {cond};\n"
        );
        (name, sql)
    };
    let s = spmids();
    match scenario {
        "uniform10" => s
            .chunks(20)
            .enumerate()
            .map(|(i, c)| by_day(format!("t{i:04}"), format!("spmid IN ({})", in_list(c))))
            .collect(),
        "skew90" => {
            let (hot, rest) = s.split_at(180);
            let mut v = vec![by_day(
                "t_hot".into(),
                format!("spmid IN ({})", in_list(hot)),
            )];
            v.extend(
                rest.chunks(2)
                    .enumerate()
                    .map(|(i, c)| by_day(format!("t{i:04}"), format!("spmid IN ({})", in_list(c)))),
            );
            v
        }
        "rewrite" | "rewrite_same" | "read" => {
            vec![(
                "t_all".into(),
                format!(
                    "CREATE TABLE t_all PARTITIONED BY (dt, hour)\nAS SELECT {cols}\nFROM ods_events;\n"
                ),
            )]
        }
        "part10" => s
            .chunks(20)
            .enumerate()
            .map(|(i, c)| rule(format!("t{i:04}"), format!("spmid IN ({})", in_list(c))))
            .collect(),
        "part100" | "part100_dim100k" | "part100_dim1m" => s
            .chunks(2)
            .enumerate()
            .map(|(i, c)| rule(format!("t{i:04}"), format!("spmid IN ({})", in_list(c))))
            .collect(),
        "part1000" | "part1000_ckpt" => {
            let mut v = Vec::new();
            for (i, sp) in s.iter().enumerate() {
                for h in 0..HOURS {
                    v.push(rule(
                        format!("t{:04}", i * HOURS as usize + h as usize),
                        format!("spmid = '{sp}' AND hour = '{h:02}'"),
                    ));
                }
            }
            v
        }
        "overlap100" => (0..100)
            .map(|i| {
                let vals: Vec<String> = (0..6).map(|k| s[(2 * i + k) % s.len()].clone()).collect();
                rule(format!("t{i:04}"), format!("spmid IN ({})", in_list(&vals)))
            })
            .collect(),
        _ => vec![],
    }
}

/// Rows of a scenario's dimension (0: none).
fn dimension_rows(scenario: &str) -> usize {
    match scenario {
        "part100_dim100k" => 100_000,
        "part100_dim1m" => 1_000_000,
        _ => 0,
    }
}

/// A dimension of `rows` rows keyed on spmid: the generator's 200 values
/// plus filler keys, with three string columns.
fn write_dimension(path: &Path, rows: usize) -> Result<()> {
    use arrow::array::{ArrayRef, RecordBatch, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    let mut keys = spmids();
    keys.extend((keys.len()..rows).map(|i| format!("filler.{i:08}")));
    let col = |f: &dyn Fn(usize) -> String| -> ArrayRef {
        Arc::new(StringArray::from_iter_values((0..rows).map(f)))
    };
    let schema = Arc::new(Schema::new(
        ["spmid", "dept", "business", "owner"]
            .map(|n| Field::new(n, DataType::Utf8, false))
            .to_vec(),
    ));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from(keys)),
            col(&|i| format!("dept_{}", i % 40)),
            col(&|i| format!("business_{}", i % 12)),
            col(&|i| format!("owner_{}@example.com", i % 5000)),
        ],
    )?;
    let tmp = path.with_extension("tmp");
    let mut w = parquet::arrow::ArrowWriter::try_new(std::fs::File::create(&tmp)?, schema, None)?;
    w.write(&batch)?;
    w.close()?;
    std::fs::rename(tmp, path)?;
    Ok(())
}

/// User plus system CPU time of this process so far.
fn cpu_secs() -> f64 {
    // SAFETY: getrusage only writes the struct it is given.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) } != 0 {
        return 0.0;
    }
    let t = |v: libc::timeval| v.tv_sec as f64 + v.tv_usec as f64 / 1e6;
    t(u.ru_utime) + t(u.ru_stime)
}

fn peak_rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(|l| l.to_string())
        })
        .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

/// Parquet files under `p` (committed output; staging is hidden).
fn output_files(p: &Path) -> u64 {
    let mut n = 0;
    let mut stack = vec![p.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                if !e.file_name().to_string_lossy().starts_with('.') {
                    stack.push(p);
                }
            } else if p.extension().is_some_and(|x| x == "parquet") {
                n += 1;
            }
        }
    }
    n
}

fn dir_bytes(p: &Path) -> u64 {
    let mut n = 0;
    let mut stack = vec![p.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                n += e.metadata().map(|m| m.len()).unwrap_or(0);
            }
        }
    }
    n
}

pub fn run(a: BenchArgs) -> Result<ExitCode> {
    let ods = a.dir.join("ods");
    if let Some(s) = &a.scenario {
        return run_scenario(&a, s, &ods);
    }
    let marker = a.dir.join(format!(".rows-{}", a.rows));
    if !marker.exists() {
        let _ = std::fs::remove_dir_all(&a.dir);
        println!("generating {} rows in {} ...", a.rows, ods.display());
        let files_per_hour = 4;
        let per_file = a.rows / (HOURS * files_per_hour) as usize;
        sluice::demo::generate_ods(&ods, HOURS, files_per_hour, per_file, 65_536)?;
        std::fs::write(&marker, "")?;
    }
    for (key, _) in SCENARIOS {
        let n = dimension_rows(key);
        let p = a.dir.join(format!("dim-{n}.parquet"));
        if n > 0 && !p.exists() {
            write_dimension(&p, n)?;
        }
    }
    let input_bytes = dir_bytes(&ods);
    println!(
        "input: {} rows, {} of zstd Parquet, {} reader and {} writer threads\n",
        a.rows,
        sluice::config::units::format_bytes(input_bytes),
        a.readers,
        a.writers
    );
    println!(
        "{:<46} {:>8} {:>8} {:>12} {:>9} {:>12} {:>10} {:>7} {:>6}",
        "scenario",
        "secs",
        "CPU s",
        "in rows/s",
        "MB/s",
        "out rows/s",
        "peak RSS",
        "files",
        "ckpts"
    );
    let _ = std::fs::remove_dir_all(a.dir.join(RUNS_DIR));
    let exe = std::env::current_exe()?;
    let wanted: Option<Vec<&str>> = a.only.as_deref().map(|o| o.split(',').collect());
    let chosen: Vec<(&str, &str)> = SCENARIOS
        .into_iter()
        .filter(|(key, _)| wanted.as_ref().is_none_or(|w| w.contains(key)))
        .collect();
    // Rounds go through every scenario in turn, so a slow spell of a
    // shared machine does not land on one scenario's every run.
    type Run = (Vec<f64>, String);
    let mut best: Vec<Option<Run>> = vec![None; chosen.len()];
    let mut failed: Vec<Option<String>> = vec![None; chosen.len()];
    for round in 0..a.repeat.max(1) {
        for (i, (key, _)) in chosen.iter().enumerate() {
            eprint!("\rround {}/{}: {key:<20}", round + 1, a.repeat.max(1));
            match run_child(&a, &exe, key)? {
                Ok(f) => {
                    if best[i].as_ref().is_none_or(|(b, _)| f.0[0] < b[0]) {
                        best[i] = Some(f);
                    }
                }
                Err(e) => failed[i] = Some(e),
            }
        }
    }
    eprintln!();
    for (i, (_, label)) in chosen.iter().enumerate() {
        let Some((f, stdout)) = best[i].take() else {
            println!(
                "{label:<46} failed: {}",
                failed[i].take().unwrap_or_default()
            );
            continue;
        };
        let (secs, rows_out, rss_kb, cpu) = (f[0], f[1], f[2], f[3]);
        let opt = |i: usize| f.get(i).map(|v| format!("{v:.0}")).unwrap_or_default();
        println!(
            "{label:<46} {secs:>8.2} {cpu:>8.2} {:>12.0} {:>9.1} {:>12.0} {:>7.0} MB {:>7} {:>6}",
            a.rows as f64 / secs,
            input_bytes as f64 / 1e6 / secs,
            rows_out / secs,
            rss_kb / 1024.0,
            opt(4),
            opt(5)
        );
        if let Some(d) = stdout.lines().find(|l| l.starts_with("TRICKLE ")) {
            let f: Vec<f64> = d
                .split_whitespace()
                .skip(1)
                .filter_map(|v| v.parse().ok())
                .collect();
            if f.len() == 5 {
                println!(
                    "{:<46} files per table-hour: max {:.0}, mean {:.1}; last source file to _SUCCESS {:.2}s; {:.0} checkpoints; largest table-hour {:.1} MB",
                    "",
                    f[0],
                    f[1],
                    f[2],
                    f[3],
                    f[4] / 1e6
                );
            }
        }
        if let Some(d) = stdout.lines().find(|l| l.starts_with("DIMENSION ")) {
            let f: Vec<f64> = d
                .split_whitespace()
                .skip(1)
                .filter_map(|v| v.parse().ok())
                .collect();
            println!(
                "{:<46} load {:.2}s, snapshot {:.0} MB (Arrow {:.0} MB), RSS +{:.0} MB",
                "",
                f[0],
                f[1] / 1e6,
                f[2] / 1e6,
                f[3] / 1024.0
            );
        }
    }
    let _ = std::fs::remove_dir_all(a.dir.join(RUNS_DIR));
    Ok(ExitCode::SUCCESS)
}

/// Runs one scenario in a child process: its RESULT figures and stdout, or
/// the last line of its error output.
fn run_child(a: &BenchArgs, exe: &Path, key: &str) -> Result<Result<(Vec<f64>, String), String>> {
    let out = std::process::Command::new(exe)
        .args([
            "bench",
            "--rows",
            &a.rows.to_string(),
            "--readers",
            &a.readers.to_string(),
            "--writers",
            &a.writers.to_string(),
            "--max-buffered",
            &a.max_buffered,
            "--repeat",
            "1",
            "--scenario",
            key,
            "--dir",
        ])
        .arg(&a.dir)
        .args(
            a.batch_rows
                .map(|n| vec!["--batch-rows".to_string(), n.to_string()])
                .unwrap_or_default(),
        )
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let f: Option<Vec<f64>> = stdout.lines().find(|l| l.starts_with("RESULT ")).map(|l| {
        l.split_whitespace()
            .skip(1)
            .filter_map(|v| v.parse().ok())
            .collect()
    });
    Ok(match f {
        Some(f) if f.len() >= 4 => Ok((f, stdout)),
        _ => Err(String::from_utf8_lossy(&out.stderr)
            .lines()
            .last()
            .unwrap_or("")
            .to_string()),
    })
}

fn run_scenario(a: &BenchArgs, scenario: &str, ods: &Path) -> Result<ExitCode> {
    // Each run writes a fresh folder; the parent deletes them all at the
    // end. Deleting thousands of files just before a run slows the run's
    // own file creation: ext4 skips recently freed inodes for minutes.
    let work = a
        .dir
        .join(RUNS_DIR)
        .join(format!("{scenario}-{}", std::process::id()));
    std::fs::create_dir_all(work.join("rules"))?;
    let rt = crate::runtime()?;
    if scenario == "read" {
        return read_only(a, ods, &rt);
    }
    if let Some(rest) = scenario.strip_prefix("trickle") {
        drop(rt);
        let cpu0 = cpu_secs();
        let t0 = Instant::now();
        let rows = a.rows.min(1_000_000);
        crate::bench_trickle::run(
            &work,
            &rules_for("part10"),
            rows,
            a.writers,
            !rest.is_empty(),
        )?;
        println!(
            "RESULT {} {rows} {} {} {}",
            t0.elapsed().as_secs_f64(),
            peak_rss_kb(),
            cpu_secs() - cpu0,
            output_files(&work.join("dwd"))
        );
        return Ok(ExitCode::SUCCESS);
    }
    for (name, sql) in rules_for(scenario) {
        std::fs::write(work.join("rules").join(format!("{name}.sql")), sql)?;
    }
    let checkpoint = if scenario == "part1000_ckpt" {
        "250ms"
    } else {
        "10m"
    };
    let mut cfg_text = format!(
        "version = 1\n[source]\nname = \"ods_events\"\nroot = \"{}\"\nmin_age = \"0s\"\n[state]\ndir = \"state\"\n[sink]\nroot = \"dwd\"\ncheckpoint_interval = \"{checkpoint}\"\nwriters = {}\nmax_buffered = \"{}\"\n[rules]\ndir = \"rules\"\n[read]\nreaders = {}\n{}[http]\nenabled = false\n",
        std::fs::canonicalize(ods)?.display(),
        a.writers,
        a.max_buffered,
        a.readers,
        a.batch_rows
            .map(|n| format!("batch_rows = {n}\n"))
            .unwrap_or_default()
    );
    let dim_rows = dimension_rows(scenario);
    if dim_rows > 0 {
        let p = std::fs::canonicalize(a.dir.join(format!("dim-{dim_rows}.parquet")))?;
        cfg_text.push_str(&format!(
            "[[dimension]]\nname = \"dim_spmid\"\npath = \"{}\"\nkey = \"spmid\"\nsource_key = \"spmid\"\ncolumns = [\"dept\", \"business\", \"owner\"]\npersist = false\n",
            p.display()
        ));
    }
    let cfg = Config::parse(&cfg_text, &work.join("sluice.toml")).context("bench config")?;
    if dim_rows > 0 {
        dimension_load(&cfg, &rt)?;
    }
    // The previous scenario's deleted tree is still being written back;
    // flush it now so this run's checkpoints do not pay for it.
    sluice::sink::commit::sync_local(Some(&work))?;
    let cpu0 = cpu_secs();
    let t0 = Instant::now();
    let s = pipeline::run(
        &cfg,
        RunMode::Once,
        Arc::new(Metrics::default()),
        rt.handle().clone(),
    )?;
    let secs = t0.elapsed().as_secs_f64();
    let rows_out: u64 = s.rows_committed.values().sum();
    println!(
        "RESULT {secs} {rows_out} {} {} {} {}",
        peak_rss_kb(),
        cpu_secs() - cpu0,
        output_files(&work.join("dwd")),
        s.epochs
    );
    Ok(ExitCode::SUCCESS)
}

/// Loads the scenario's dimension on its own: load time, snapshot size,
/// the Arrow size of its columns, and the RSS it added.
fn dimension_load(cfg: &Config, rt: &tokio::runtime::Runtime) -> Result<()> {
    let schema = Arc::new(arrow::datatypes::Schema::new(vec![
        arrow::datatypes::Field::new("spmid", arrow::datatypes::DataType::Utf8, true),
    ]));
    let rss0 = current_rss_kb();
    let t0 = Instant::now();
    let metrics = Metrics::default();
    let e = sluice::enrich::Enricher::start(
        &cfg.dimensions,
        &schema,
        sluice::enrich::EnrichOptions {
            state_dir: None,
            background: false,
        },
        &metrics,
        rt.handle(),
    )?;
    let secs = t0.elapsed().as_secs_f64();
    let d = metrics.dimension("dim_spmid");
    let mem = d.memory_bytes.load(std::sync::atomic::Ordering::Relaxed);
    let arrow_bytes = e.arrow_bytes();
    println!(
        "DIMENSION {secs} {mem} {arrow_bytes} {}",
        current_rss_kb().saturating_sub(rss0)
    );
    Ok(())
}

fn current_rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

/// Reads every split through the same fetch + decode path, routing nothing.
fn read_only(a: &BenchArgs, ods: &Path, rt: &tokio::runtime::Runtime) -> Result<ExitCode> {
    let store = pipeline::local_store(ods, false)?;
    let ods_root = sluice::store::Location::Local(ods.to_path_buf());
    let listing = sluice::discover::list(&store, &ods_root, false, &|_| false)?;
    let files: Vec<_> = listing
        .files
        .into_iter()
        .filter(|f| f.path.ends_with(".parquet"))
        .collect();
    let schema = sluice::read::SourceSchema::new(
        sluice::demo::event_schema(),
        vec!["dt".into(), "hour".into()],
    );
    let next = std::sync::atomic::AtomicUsize::new(0);
    let cpu0 = cpu_secs();
    let t0 = Instant::now();
    let rows = std::sync::atomic::AtomicU64::new(0);
    std::thread::scope(|sc| {
        for _ in 0..a.readers {
            sc.spawn(|| -> Result<()> {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let Some(f) = files.get(i) else { return Ok(()) };
                    let opened =
                        rt.block_on(sluice::read::open(&store, &f.path, f.size, &schema))?;
                    let rg = opened.row_groups();
                    let plan = sluice::read::evolve::plan(opened.meta.schema(), &schema.file)?;
                    let r = sluice::read::SplitRead {
                        file: &opened,
                        plan: &plan,
                        row_groups: (0, rg.len()),
                        rows: rg.iter().map(|g| g.rows).sum(),
                        offset: 0,
                        batch_rows: 8192,
                    };
                    let data = rt.block_on(sluice::read::fetch(&store, &r))?;
                    sluice::read::decode(data, &r, &schema, |_, b| {
                        rows.fetch_add(b.num_rows() as u64, std::sync::atomic::Ordering::Relaxed);
                        true
                    })?;
                }
            });
        }
    });
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "RESULT {secs} {} {} {}",
        rows.into_inner(),
        peak_rss_kb(),
        cpu_secs() - cpu0
    );
    Ok(ExitCode::SUCCESS)
}
