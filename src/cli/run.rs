//! `sluice run`: the daemon until SIGTERM/SIGINT (a final checkpoint within
//! the shutdown grace), or one pass with `--once`. Owns the signal handlers,
//! the HTTP endpoint's start and the progress line; the pipeline does the
//! work. Exit 2 when the rules are refused or the sink holds unexpected
//! output.

use anyhow::{Context, Result};
use sluice::config::Config;
use sluice::pipeline::{self, RunMode};
use sluice::telemetry::{self, Metrics};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

pub(super) fn run(cfg: &Config, once: bool, opts: &pipeline::RunOptions) -> Result<ExitCode> {
    telemetry::init_logging(cfg.log_format, &cfg.log_level);
    if let Some(n) = sluice::sink::staged::raise_open_file_limit() {
        tracing::debug!(limit = n, "open file limit");
    }
    let rt = super::runtime()?;
    let metrics = Arc::new(Metrics::default());
    if let Some(addr) = cfg.http_listen {
        let (bound, _task) = rt
            .block_on(telemetry::http::serve(
                addr,
                metrics.clone(),
                telemetry::http::Limits::with_max_connections(cfg.http_max_connections),
            ))
            .with_context(|| format!("binding the HTTP endpoint on {addr}"))?;
        tracing::info!(address = %bound, "serving /metrics, /healthz, /readyz");
    }
    // On a terminal, `--once` (a backfill) shows a progress line; logs stay.
    let _progress = (once && cfg.log_format == sluice::config::LogFormat::Human)
        .then(|| telemetry::progress::Progress::start(metrics.clone()))
        .flatten();
    let mode = if once {
        RunMode::Once
    } else {
        let shutdown = Arc::new(AtomicBool::new(false));
        let flag = shutdown.clone();
        let grace = cfg.shutdown_grace;
        rt.spawn(async move {
            use tokio::signal::unix::{SignalKind, signal};
            let (Ok(mut term), Ok(mut int)) = (
                signal(SignalKind::terminate()),
                signal(SignalKind::interrupt()),
            ) else {
                tracing::error!("cannot install signal handlers");
                return;
            };
            tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM: taking a final checkpoint"),
                _ = int.recv() => tracing::info!("SIGINT: taking a final checkpoint"),
            }
            flag.store(true, Ordering::SeqCst);
            // A final checkpoint that overruns the grace period is abandoned:
            // exiting mid-checkpoint is safe (recovery rolls it forward or
            // discards it), hanging past the supervisor's kill timeout is not.
            tokio::time::sleep(grace).await;
            tracing::error!(grace = %humantime::format_duration(grace), "final checkpoint did not finish within the shutdown grace period; exiting");
            std::process::exit(1);
        });
        // SIGHUP: the coordinator re-reads the config's safe keys and the rules.
        let reload = Arc::new(AtomicBool::new(false));
        let hup = reload.clone();
        rt.spawn(async move {
            use tokio::signal::unix::{SignalKind, signal};
            let Ok(mut sig) = signal(SignalKind::hangup()) else {
                tracing::error!("cannot install the SIGHUP handler");
                return;
            };
            while sig.recv().await.is_some() {
                tracing::info!("SIGHUP: reloading the config and the rules");
                hup.store(true, Ordering::SeqCst);
            }
        });
        RunMode::Daemon { shutdown, reload }
    };
    match pipeline::run_with(cfg, mode, opts, metrics, rt.handle().clone()) {
        Ok(s) => {
            tracing::info!(
                epochs = s.epochs,
                files_taken = s.files_taken,
                files_done = s.files_done,
                files_quarantined = s.files_quarantined,
                rows = s.rows_committed.values().sum::<u64>(),
                "stopped cleanly"
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(pipeline::PipelineError::Rules(msg)) => {
            eprintln!("error: rules refused:\n{msg}");
            Ok(ExitCode::from(2))
        }
        Err(e @ pipeline::PipelineError::ExistingOutput { .. }) => {
            eprintln!("error: {e}");
            Ok(ExitCode::from(2))
        }
        Err(e) => Err(e).context("pipeline failed"),
    }
}
