//! `sluice bench`: throughput of the full pipeline next to a plain
//! read-and-rewrite baseline on the same generated data, and the P100
//! workload of the peers comparison (`p100`: the whole pipeline;
//! `p100_encode`: the encoder alone). Each scenario runs in a child process
//! so its peak RSS (VmHWM) is its own. Owns the folder given by `--dir`.

mod encode;
mod measure;
mod p100;
mod report;
mod scenarios;

use measure::{cpu_secs, current_rss_kb, dir_bytes, output_files, parquet_rows, peak_rss_kb};
use scenarios::{HOURS, dimension_rows, rules_for, write_dimension};

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
    /// part100, part100_dim100k, part100_dim1m, overlap100, part10,
    /// part1000, uniform10, skew90, part1000_ckpt, trickle,
    /// trickle_each_checkpoint, rewrite_same; and p100, p100_encode, which
    /// run only when named here).
    #[arg(long)]
    only: Option<String>,
    /// P100 data to use instead of generating it: a folder with `ods/`,
    /// `dim_spmid.parquet` and `rules.json`, as the shared peers generator
    /// (`gen_ods.py`) writes it. `--rows` is then ignored for P100.
    #[arg(long)]
    p100_data: Option<PathBuf>,
    /// Input rows per hour of generated P100 data (the peers' generator
    /// writes 1,000,000). Fewer spread `--rows` over more hours: with
    /// `--rows 2000000 --p100-rows-per-hour 100000`, 20 hours and 1,940
    /// table-hours, more than `sink.max_open_files` holds open at once.
    #[arg(long, default_value_t = p100::ROWS_PER_HOUR)]
    p100_rows_per_hour: usize,
    /// Write every output column with a dictionary, as sluice did before
    /// choosing per column (to compare both with one build).
    #[arg(long)]
    dictionary_everywhere: bool,
    /// Route with copies of every source column, as sluice did before it
    /// copied only the columns a rule reads (to compare with one build).
    #[arg(long)]
    copy_all_columns: bool,
    /// Runs of each scenario; the fastest is reported (a shared machine's
    /// disk and CPU make single runs noisy).
    #[arg(long, default_value_t = 1)]
    repeat: usize,
    /// Write the output to an object store instead of under `--dir`: a
    /// URL such as `s3://bench/out`, each run under its own prefix; the
    /// endpoint and keys come from the `AWS_*` environment. The trickle
    /// and p100_encode scenarios ignore it.
    #[arg(long)]
    store: Option<String>,
    /// Run one scenario in this process (used by the parent run).
    #[arg(long, hide = true)]
    scenario: Option<String>,
}

/// Under `--dir`: the scenarios' working folders, deleted after the last.
const RUNS_DIR: &str = "runs";
const SCENARIOS: [(&str, &str); 16] = [
    ("read", "(a) read only"),
    ("rewrite", "(b) read + rewrite as one table (baseline)"),
    ("part100", "(c) 100 partitioning rules"),
    ("part100_dim100k", "(c) + join with a 100k-row dimension"),
    ("part100_dim1m", "(c) + join with a 1M-row dimension"),
    ("overlap100", "(d) 100 overlapping rules (x3 output)"),
    ("part10", "(e) 10 partitioning rules"),
    ("part1000", "(e) 1,000 partitioning rules"),
    ("uniform10", "(g) 10 tables by day, 10% of rows each"),
    ("skew90", "(g) one table-day takes 90% of rows"),
    ("part1000_ckpt", "(h) (e) with a checkpoint every 250 ms"),
    ("trickle", "(i) an hour arriving over 24 checkpoints"),
    (
        "trickle_each_checkpoint",
        "(i) the same, files closed every checkpoint",
    ),
    ("rewrite_same", "(b) again, to show run-to-run noise"),
    ("p100", "(f) P100: 100 overlapping rules, dim join"),
    ("p100_encode", "(f) P100 routed rows, encoder only"),
];

/// The P100 scenarios read their own data and run only when named.
fn is_p100(key: &str) -> bool {
    key.starts_with("p100")
}

/// Where the P100 data is: `--p100-data`, or generated under `--dir`.
fn p100_dir(a: &BenchArgs) -> PathBuf {
    a.p100_data.clone().unwrap_or_else(|| {
        let hours = if a.p100_rows_per_hour == p100::ROWS_PER_HOUR {
            String::new()
        } else {
            format!("-{}-an-hour", a.p100_rows_per_hour)
        };
        a.dir.join(format!("p100-{}{hours}", a.rows))
    })
}

/// Makes sure the P100 data exists: generated once per row count.
fn p100_data(a: &BenchArgs) -> Result<PathBuf> {
    let dir = p100_dir(a);
    if a.p100_data.is_none() && !dir.join(".done").exists() {
        let _ = std::fs::remove_dir_all(&dir);
        println!("generating P100: {} rows in {} ...", a.rows, dir.display());
        anyhow::ensure!(
            a.p100_rows_per_hour > 0,
            "--p100-rows-per-hour must be greater than 0"
        );
        p100::generate(&dir, a.rows, a.p100_rows_per_hour, 2)?;
        std::fs::write(dir.join(".done"), "")?;
    }
    for f in ["ods", "dim_spmid.parquet", "rules.json"] {
        anyhow::ensure!(dir.join(f).exists(), "no {f} in {}", dir.display());
    }
    Ok(dir)
}

/// Figures of one run, from its `RESULT` line: wall seconds, output rows,
/// peak RSS (KiB), CPU seconds, output files, output bytes, epochs.
const RESULT_FIELDS: usize = 7;

pub fn run(a: BenchArgs) -> Result<ExitCode> {
    let ods = a.dir.join("ods");
    sluice::sink::encoding::set_dictionary_everywhere(a.dictionary_everywhere);
    sluice::route::set_copy_all_columns(a.copy_all_columns);
    if let Some(s) = &a.scenario {
        return run_scenario(&a, s, &ods);
    }
    let wanted: Option<Vec<&str>> = a.only.as_deref().map(|o| o.split(',').collect());
    let chosen: Vec<(&str, &str)> = SCENARIOS
        .into_iter()
        .filter(|(key, _)| match &wanted {
            Some(w) => w.contains(key),
            None => !is_p100(key),
        })
        .collect();
    std::fs::create_dir_all(&a.dir)?;
    let mut input = (a.rows as u64, 0);
    if chosen.iter().any(|(k, _)| !is_p100(k)) {
        let marker = a.dir.join(format!(".rows-{}", a.rows));
        if !marker.exists() {
            let _ = std::fs::remove_dir_all(&ods);
            println!("generating {} rows in {} ...", a.rows, ods.display());
            let files_per_hour = 4;
            let per_file = a.rows / (HOURS * files_per_hour) as usize;
            sluice::demo::generate_ods(&ods, HOURS, files_per_hour, per_file, 65_536)?;
            std::fs::write(&marker, "")?;
        }
        for (key, _) in &chosen {
            let n = dimension_rows(key);
            let p = a.dir.join(format!("dim-{n}.parquet"));
            if n > 0 && !p.exists() {
                write_dimension(&p, n)?;
            }
        }
        input.1 = dir_bytes(&ods);
        println!(
            "input: {} rows, {} of zstd Parquet",
            a.rows,
            sluice::config::units::format_bytes(input.1),
        );
    }
    let mut p100_input = (0, 0);
    if chosen.iter().any(|(k, _)| is_p100(k)) {
        let d = p100_data(&a)?;
        p100_input = (parquet_rows(&d.join("ods"))?, dir_bytes(&d.join("ods")));
        println!(
            "P100 input: {} rows, {} of zstd Parquet in {}",
            p100_input.0,
            sluice::config::units::format_bytes(p100_input.1),
            d.display()
        );
    }
    println!(
        "{} reader and {} writer threads, sink.max_buffered {}, {}, {}\n",
        a.readers,
        a.writers,
        a.max_buffered,
        if a.dictionary_everywhere {
            "a dictionary on every column"
        } else {
            "encoding chosen per column"
        },
        if a.copy_all_columns {
            "routing copies every column"
        } else {
            "routing copies the columns a rule reads"
        }
    );
    println!(
        "{:<46} {:>8} {:>8} {:>12} {:>9} {:>12} {:>10} {:>7} {:>9} {:>6}",
        "scenario",
        "secs",
        "CPU s",
        "in rows/s",
        "MB/s",
        "out rows/s",
        "peak RSS",
        "files",
        "out MB",
        "epochs"
    );
    let _ = std::fs::remove_dir_all(a.dir.join(RUNS_DIR));
    let exe = std::env::current_exe()?;
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
    for (i, (key, label)) in chosen.iter().enumerate() {
        let Some((f, stdout)) = best[i].take() else {
            println!(
                "{label:<46} failed: {}",
                failed[i].take().unwrap_or_default()
            );
            continue;
        };
        let (secs, rows_out, rss_kb, cpu) = (f[0], f[1], f[2], f[3]);
        let (files, out_bytes, epochs) = (f[4], f[5], f[6]);
        let (rows_in, bytes_in) = if is_p100(key) { p100_input } else { input };
        println!(
            "{label:<46} {secs:>8.2} {cpu:>8.2} {:>12.0} {:>9.1} {:>12.0} {:>7.0} MB {files:>7.0} {:>9.0} {epochs:>6.0}",
            rows_in as f64 / secs,
            bytes_in as f64 / 1e6 / secs,
            rows_out / secs,
            rss_kb / 1024.0,
            out_bytes / 1e6,
        );
        report::details(&stdout, files);
    }
    let _ = std::fs::remove_dir_all(a.dir.join(RUNS_DIR));
    Ok(ExitCode::SUCCESS)
}

/// Runs one scenario in a child process: its RESULT figures and stdout, or
/// the last line of its error output.
fn run_child(a: &BenchArgs, exe: &Path, key: &str) -> Result<Result<(Vec<f64>, String), String>> {
    let mut cmd = std::process::Command::new(exe);
    cmd.args([
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
    .arg(&a.dir);
    if let Some(n) = a.batch_rows {
        cmd.args(["--batch-rows", &n.to_string()]);
    }
    if let Some(d) = &a.p100_data {
        cmd.arg("--p100-data").arg(d);
    }
    cmd.args(["--p100-rows-per-hour", &a.p100_rows_per_hour.to_string()]);
    if a.dictionary_everywhere {
        cmd.arg("--dictionary-everywhere");
    }
    if a.copy_all_columns {
        cmd.arg("--copy-all-columns");
    }
    if let Some(s) = &a.store {
        cmd.args(["--store", s]);
    }
    let out = cmd.output()?;
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let f: Option<Vec<f64>> = stdout.lines().find(|l| l.starts_with("RESULT ")).map(|l| {
        l.split_whitespace()
            .skip(1)
            .filter_map(|v| v.parse().ok())
            .collect()
    });
    Ok(match f {
        Some(f) if f.len() == RESULT_FIELDS => Ok((f, stdout)),
        _ => Err(String::from_utf8_lossy(&out.stderr)
            .lines()
            .last()
            .unwrap_or("")
            .to_string()),
    })
}

/// The pipeline config of a scenario run in `work`, writing to `sink`.
fn scenario_config(
    a: &BenchArgs,
    scenario: &str,
    ods: &Path,
    work: &Path,
    sink: &str,
) -> Result<Config> {
    // Thousands of files open over many checkpoints: memory and the cost
    // of a checkpoint that cuts a row group in each.
    let checkpoint = if scenario == "part1000_ckpt" {
        "250ms"
    } else {
        "10m"
    };
    let mut cfg_text = format!(
        "version = 1\n[source]\nname = \"ods_events\"\nroot = \"{}\"\nmin_age = \"0s\"\n[state]\ndir = \"state\"\n[sink]\nroot = \"{}\"\ncheckpoint_interval = \"{checkpoint}\"\nwriters = {}\nmax_buffered = \"{}\"\n[rules]\ndir = \"rules\"\n[read]\nreaders = {}\n{}[http]\nenabled = false\n",
        std::fs::canonicalize(ods)?.display(),
        sink,
        a.writers,
        a.max_buffered,
        a.readers,
        a.batch_rows
            .map(|n| format!("batch_rows = {n}\n"))
            .unwrap_or_default()
    );
    let dim = if is_p100(scenario) {
        Some(p100_dir(a).join("dim_spmid.parquet"))
    } else {
        let n = dimension_rows(scenario);
        (n > 0).then(|| a.dir.join(format!("dim-{n}.parquet")))
    };
    if let Some(p) = dim {
        cfg_text.push_str(&format!(
            "[[dimension]]\nname = \"dim_spmid\"\npath = \"{}\"\nkey = \"spmid\"\nsource_key = \"spmid\"\ncolumns = [\"dept\", \"business\", \"owner\"]\npersist = false\n",
            std::fs::canonicalize(p)?.display()
        ));
    }
    Config::parse(&cfg_text, &work.join("sluice.toml")).context("bench config")
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
        let (files, bytes) = output_files(&work.join("dwd"));
        println!(
            "RESULT {} {rows} {} {} {files} {bytes} 0",
            t0.elapsed().as_secs_f64(),
            peak_rss_kb(),
            cpu_secs() - cpu0,
        );
        return Ok(ExitCode::SUCCESS);
    }
    let (ods, rules) = if is_p100(scenario) {
        let d = p100_dir(a);
        (
            d.join("ods"),
            p100::rule_files(&std::fs::read_to_string(d.join("rules.json"))?)?,
        )
    } else {
        (ods.to_path_buf(), rules_for(scenario))
    };
    for (name, sql) in rules {
        std::fs::write(work.join("rules").join(format!("{name}.sql")), sql)?;
    }
    if scenario == "p100_encode" {
        return encode_only(a, &ods, &work, &rt);
    }
    let sink = match &a.store {
        Some(url) => format!(
            "{}/{scenario}-{}",
            url.trim_end_matches('/'),
            std::process::id()
        ),
        None => work.join("dwd").display().to_string(),
    };
    let cfg = scenario_config(a, scenario, &ods, &work, &sink)?;
    if dimension_rows(scenario) > 0 {
        dimension_load(&cfg, &rt)?;
    }
    // The previous scenario's deleted tree is still being written back;
    // flush it now so this run's checkpoints do not pay for it.
    sluice::sink::commit::sync_local(Some(&work))?;
    let cpu0 = cpu_secs();
    let t0 = Instant::now();
    let metrics = Arc::new(Metrics::default());
    let s = pipeline::run(&cfg, RunMode::Once, metrics.clone(), rt.handle().clone())?;
    let secs = t0.elapsed().as_secs_f64();
    let cpu = cpu_secs() - cpu0;
    let rows_out: u64 = s.rows_committed.values().sum();
    let (files, bytes) = match &a.store {
        Some(_) => measure::output_objects(&cfg.sink.root, &rt)?,
        None => output_files(Path::new(&sink)),
    };
    let requests = metrics.sink_store.requests();
    if !requests.is_empty() {
        let all: u64 = requests.values().sum();
        let each: Vec<String> = requests.iter().map(|(k, v)| format!("{k}={v}")).collect();
        println!("REQUESTS {all} {}", each.join(" "));
    }
    println!(
        "RESULT {secs} {rows_out} {} {cpu} {files} {bytes} {}",
        peak_rss_kb(),
        s.epochs
    );
    Ok(ExitCode::SUCCESS)
}

/// P100's routed output, made once per data folder by a pipeline run
/// (untimed) into `<dir>/p100-routed`, then encoded again from memory by
/// `encode::measure`.
fn encode_only(
    a: &BenchArgs,
    ods: &Path,
    work: &Path,
    rt: &tokio::runtime::Runtime,
) -> Result<ExitCode> {
    // Under `--dir`, never in a shared `--p100-data` folder; the marker
    // names the data it was routed from.
    let routed = a.dir.join("p100-routed");
    let from = p100_dir(a).display().to_string();
    if std::fs::read_to_string(routed.join(".done"))
        .ok()
        .as_deref()
        != Some(from.as_str())
    {
        eprintln!("routing P100 once into {} ...", routed.display());
        let _ = std::fs::remove_dir_all(&routed);
        let cfg = scenario_config(a, "p100", ods, work, &routed.display().to_string())?;
        pipeline::run(
            &cfg,
            RunMode::Once,
            Arc::new(Metrics::default()),
            rt.handle().clone(),
        )?;
        std::fs::write(routed.join(".done"), &from)?;
    }
    let row_group_rows = scenario_config(a, "p100", ods, work, &routed.display().to_string())?
        .sink
        .row_group_rows;
    let t0 = Instant::now();
    let (cpu, rows) = encode::measure(&routed, &[1, 3], row_group_rows)?;
    let secs = t0.elapsed().as_secs_f64();
    let (files, bytes) = output_files(&routed);
    println!(
        "RESULT {secs} {rows} {} {cpu} {files} {bytes} 0",
        peak_rss_kb()
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
        "RESULT {secs} {} {} {} 0 0 0",
        rows.into_inner(),
        peak_rss_kb(),
        cpu_secs() - cpu0
    );
    Ok(ExitCode::SUCCESS)
}
