//! `sluice demo`: generates a sample ODS, rules and a config in `--dir`
//! (replacing only an earlier demo there), runs once over it and shows what
//! landed. The generator and the report are `sluice::demo`.

use anyhow::{Context, Result};
use sluice::config::Config;
use sluice::pipeline::{self, RunMode};
use sluice::telemetry::{self, Metrics};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

pub(super) fn run(
    dir: &Path,
    hours: u32,
    files_per_hour: u32,
    rows_per_file: usize,
) -> Result<ExitCode> {
    let marker = dir.join(".sluice-demo");
    if dir.exists() {
        let empty = std::fs::read_dir(dir)
            .map(|mut d| d.next().is_none())
            .unwrap_or(false);
        if !empty && !marker.exists() {
            anyhow::bail!(
                "{} exists and is not a sluice demo directory; choose another with --dir",
                dir.display()
            );
        }
        std::fs::remove_dir_all(dir)
            .with_context(|| format!("removing the old demo in {}", dir.display()))?;
    }
    std::fs::create_dir_all(dir)?;
    std::fs::write(&marker, "created by `sluice demo`; safe to delete\n")?;
    let ods = dir.join("ods");
    println!(
        "generating {hours} hour partitions x {files_per_hour} files x {rows_per_file} rows under {}",
        ods.display()
    );
    let files = sluice::demo::generate_ods(&ods, hours, files_per_hour, rows_per_file, 4096)?;
    let cfg_path = sluice::demo::write_demo_setup(dir)?;
    let cfg = Config::load(&cfg_path)?;
    telemetry::init_logging(cfg.log_format, &cfg.log_level);
    println!(
        "wrote {} rules and their tests to {} and the config {}",
        sluice::demo::DEMO_RULES.len(),
        cfg.rules_dir.display(),
        cfg_path.display()
    );
    println!(
        "running: sluice run --config {} --once\n",
        cfg_path.display()
    );
    let rt = super::runtime()?;
    let t0 = std::time::Instant::now();
    let summary = pipeline::run(
        &cfg,
        RunMode::Once,
        Arc::new(Metrics::default()),
        rt.handle().clone(),
    )?;
    let secs = t0.elapsed().as_secs_f64();
    let rows_in = files.iter().map(|(_, r)| *r as u64).sum::<u64>();
    let sink = pipeline::open_store(&cfg.sink.root, &cfg.stores, false)?;
    let tables = rt
        .block_on(sluice::demo::report::summarize(&sink))
        .map_err(anyhow::Error::msg)?;
    println!(
        "\nread {} files ({rows_in} rows) in {secs:.1}s, {} checkpoint(s); what landed in {}:\n",
        summary.files_done, summary.epochs, cfg.sink.root
    );
    print!("{}", sluice::demo::report::render(&tables, &cfg.sink.root));
    println!(
        "\nnext: edit {}/*.sql and run `sluice rules test --config {}` (tests in rules/tests/)",
        cfg.rules_dir.display(),
        cfg_path.display()
    );
    Ok(ExitCode::SUCCESS)
}
