//! `sluice status`: asks the running daemon for its `/status` JSON, or, when
//! no daemon answers, builds the same [`StatusSnapshot`] from the state and
//! a fresh listing of the source (backlog and lag computed from what the
//! state has not committed), and renders it for humans. Reads only: it
//! never writes the state or the sink.

use crate::checkpoint::{EpochState, FileStatus, StateError, StateStore, utc_day};
use crate::config::Config;
use crate::discover::{self, SelectParams};
use crate::route::RuleSet;
use crate::telemetry::discovery::DiscoveryStatus;
use crate::telemetry::status::{
    self, Backlog, LastCheckpoint, PartitionCommitStatus, Phase, Quarantined, RulesInfo,
    STATUS_FORMAT, StatusSnapshot, StatusSource, Thresholds, human_bytes,
};
use std::collections::HashSet;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error("cannot list the source {root}: {message}")]
    Source { root: String, message: String },
    #[error("the daemon at {addr} answered /status with {message}")]
    Daemon { addr: SocketAddr, message: String },
}

/// Asks a daemon at `addr`; `Ok(None)` when nothing listens there.
pub fn fetch(addr: SocketAddr, timeout: Duration) -> Result<Option<StatusSnapshot>, StatusError> {
    let daemon_err = |message: String| StatusError::Daemon { addr, message };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| daemon_err(format!("cannot start an I/O runtime: {e}")))?;
    let client = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .no_proxy()
        .build()
        .map_err(|e| daemon_err(e.to_string()))?;
    let url = format!("http://{addr}/status");
    rt.block_on(async {
        let resp = match client.get(&url).send().await {
            Ok(r) => r,
            Err(e) if e.is_connect() => return Ok(None),
            Err(e) => return Err(daemon_err(chain(&e.without_url()))),
        };
        let code = resp.status();
        if code != reqwest::StatusCode::OK {
            return Err(daemon_err(format!(
                "HTTP {} (is it a sluice older than /status?)",
                code.as_u16()
            )));
        }
        let body = resp
            .bytes()
            .await
            .map_err(|e| daemon_err(chain(&e.without_url())))?;
        serde_json::from_slice(&body)
            .map(Some)
            .map_err(|e| daemon_err(format!("JSON this sluice cannot read: {e}")))
    })
}

/// `e` and its sources, `outer: inner: root`.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push_str(": ");
        out.push_str(&s.to_string());
        cur = s.source();
    }
    out
}

/// Builds the status of a stopped daemon from its state and a listing.
pub fn from_state(cfg: &Config, now_ms: i64) -> Result<StatusSnapshot, StatusError> {
    let day = utc_day(now_ms);
    let mut s = StatusSnapshot {
        format: STATUS_FORMAT,
        source: StatusSource::State,
        generated_at_ms: now_ms,
        phase: Phase::Stopped,
        day: day.clone(),
        ..Default::default()
    };
    // No state dir yet: nothing was ever committed (do not create one).
    let state = if cfg.state_dir.exists() {
        Some(StateStore::open(&cfg.state_dir)?)
    } else {
        None
    };
    let (files, watermark, pruned_below) = match &state {
        Some(st) => (st.files()?, st.watermark_ms()?, st.pruned_below_ms()?),
        None => (Default::default(), None, None),
    };
    if let Some(st) = &state {
        let epochs = st.epochs()?;
        s.prepared_epochs = epochs
            .iter()
            .filter(|e| e.state == EpochState::Prepared)
            .map(|e| e.epoch)
            .collect();
        s.last_checkpoint = epochs
            .iter()
            .rfind(|e| e.state == EpochState::Committed)
            .map(|e| LastCheckpoint {
                epoch: e.epoch,
                at_ms: e.created_ms,
                age_seconds: (now_ms - e.created_ms).max(0) as f64 / 1e3,
                duration_ms: None,
            });
        s.tables = st.table_rows(&day)?;
        s.schema_change = st.last_schema_change()?.map(|e| status::SchemaChange {
            epoch: e.epoch,
            at_ms: e.at_ms,
            what: e.describe(),
        });
        if let Some(pc) = &cfg.partition_commit {
            s.partition_commit = Some(failing_commits(st, pc)?);
        }
    }
    s.quarantined = files
        .iter()
        .filter_map(|(p, r)| match &r.status {
            FileStatus::Quarantined { reason, at_ms } => Some(Quarantined {
                path: p.clone(),
                reason: reason.clone(),
                at_ms: *at_ms,
            }),
            _ => None,
        })
        .collect();

    // Backlog: what the state has not finished, plus what a run would take now.
    let source_err = |message: String| StatusError::Source {
        root: cfg.source.root.to_string(),
        message,
    };
    let store = crate::pipeline::open_store(&cfg.source.root, &cfg.stores, false)
        .map_err(|e| source_err(e.to_string()))?;
    let taken = crate::pipeline::taken_of(&files);
    let listing = discover::list(&store, &cfg.source.root, cfg.source.follow_symlinks, &|p| {
        taken.contains_key(p)
    })
    .map_err(|e| source_err(e.to_string()))?;
    let pruned_below = discover::pruned_horizon(pruned_below, watermark, cfg.source.lookback);
    let sel = discover::select(
        &listing.files,
        &SelectParams {
            pattern: &cfg.source.pattern,
            visibility: &cfg.source.visibility,
            now_ms,
            watermark_ms: watermark,
            lookback: cfg.source.lookback,
            older_than_lookback: cfg.source.older_than_lookback,
            pruned_below_ms: pruned_below,
            taken: &taken,
            reported: &HashSet::new(),
            shard: crate::cluster::shard::Shard::of(&cfg.cluster),
        },
    );
    // What a run would skip now (files an earlier run took and pruned are
    // not counted).
    let skipped = discover::skipped::OldFiles::default().scan(&sel.too_old, pruned_below);
    let last = |mut v: Vec<String>| v.split_off(v.len().saturating_sub(5));
    s.discovery = DiscoveryStatus {
        skipped_too_old: skipped.len() as u64,
        recent_too_old: last(skipped.into_iter().map(|f| f.path).collect()),
        skipped_symlinks: listing.links.len() as u64,
        recent_symlinks: last(listing.links.into_iter().map(|l| l.path).collect()),
        bad_entries: listing.bad.len() as u64,
        recent_bad_entries: last(listing.bad),
        ..Default::default()
    };
    let pending: Vec<(u64, i64)> = files
        .values()
        .filter(|r| r.status == FileStatus::Active)
        .map(|r| (r.size, r.mtime_ms))
        .chain(sel.new.iter().map(|l| (l.size, l.mtime_ms)))
        .collect();
    s.backlog = Backlog {
        files: pending.len() as u64,
        bytes: pending.iter().map(|(b, _)| b).sum(),
        waiting_files: sel.waiting as u64,
        lag_seconds: pending
            .iter()
            .map(|(_, m)| *m)
            .min()
            .map(|m| (now_ms - m).max(0) as f64 / 1e3)
            .unwrap_or(0.0),
    };
    s.rules = match (
        RuleSet::version_of(&cfg.rules_dir),
        crate::route::read_rule_files(&cfg.rules_dir),
    ) {
        (Ok(version), Ok(files)) => Some(RulesInfo {
            version,
            count: files.len(),
        }),
        _ => None,
    };
    s.disk = status::disks(cfg.sink.root.local_root(), &cfg.state_dir);
    if cfg.cluster.is_sharded() {
        s.cluster = cluster_from_sink(cfg, now_ms);
    }
    s.diagnosis = status::diagnose(&s, &Thresholds::from_config(cfg));
    Ok(s)
}

/// `[cluster]`: every replica's progress as published in the sink (`None`
/// when the sink cannot be read: the status goes on without it).
fn cluster_from_sink(
    cfg: &Config,
    now_ms: i64,
) -> Option<crate::telemetry::cluster_status::ClusterStatus> {
    let store = crate::pipeline::open_store(&cfg.sink.root, &cfg.stores, false).ok()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .ok()?;
    let all = rt
        .block_on(crate::cluster::progress::read_all(
            &store,
            cfg.cluster.replicas,
        ))
        .ok()?;
    Some(crate::cluster::progress::status_of(
        &cfg.cluster,
        &all,
        now_ms,
    ))
}

/// Units (time partitions) whose last commit attempt failed, from their
/// leaves' records: a stopped daemon cannot say which others are complete.
fn failing_commits(
    st: &StateStore,
    pc: &crate::config::PartitionCommitConfig,
) -> Result<PartitionCommitStatus, StateError> {
    let period_of = crate::partition_commit::rule::PeriodOf {
        columns: pc.time_columns.clone(),
        utc_offset_s: pc.utc_offset_s,
    };
    let mut failing = crate::partition_commit::unit::failing(st.partitions()?, &period_of);
    let n = failing.len() as u64;
    let oldest = failing.first().map(|p| p.since_ms);
    failing.truncate(20);
    Ok(PartitionCommitStatus {
        pending: n,
        failing: n,
        oldest_pending_since_ms: oldest,
        failed_attempts_total: 0,
        oldest_failing: failing,
    })
}

/// The partition commit lines of the human rendering.
fn render_partition_commit(o: &mut String, p: &PartitionCommitStatus, now_ms: i64) {
    let oldest = p
        .oldest_pending_since_ms
        .map(|t| {
            format!(
                ", oldest waiting since {} ({} ago)",
                time(t),
                age((now_ms - t) as f64 / 1e3)
            )
        })
        .unwrap_or_default();
    let _ = writeln!(
        o,
        "partition commit: {} pending, {} failing{oldest}",
        p.pending, p.failing
    );
    for f in &p.oldest_failing {
        let next = f
            .next_attempt_ms
            .map(|t| format!(", next attempt in {}", age((t - now_ms) as f64 / 1e3)))
            .unwrap_or_default();
        let _ = writeln!(
            o,
            "  {}/{}: {} failed attempt(s) since {}{next}; last error: {}",
            f.table,
            f.partition,
            f.failed_attempts,
            time(f.since_ms),
            f.last_error.as_deref().unwrap_or("unknown")
        );
    }
}

fn age(seconds: f64) -> String {
    humantime::format_duration(Duration::from_secs(seconds.max(0.0) as u64)).to_string()
}

fn time(ms: i64) -> String {
    let t = std::time::UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}

/// The human rendering.
pub fn render(s: &StatusSnapshot) -> String {
    let mut o = String::new();
    let source = match s.source {
        StatusSource::Daemon => "the running daemon (/status)",
        StatusSource::State => "the state and a fresh listing of the source (no daemon answered)",
    };
    let _ = writeln!(o, "source:          {source}");
    let _ = writeln!(o, "phase:           {}", s.phase.describe());
    let _ = writeln!(o, "diagnosis:       {}", s.diagnosis.message);
    let b = &s.backlog;
    let _ = writeln!(
        o,
        "backlog:         {} file(s), {} visible and not committed; {} not visible yet",
        b.files,
        human_bytes(b.bytes),
        b.waiting_files
    );
    let _ = writeln!(
        o,
        "lag:             {}",
        if b.files == 0 {
            "none".to_string()
        } else {
            format!("{} (oldest uncommitted visible file)", age(b.lag_seconds))
        }
    );
    match &s.last_checkpoint {
        Some(c) => {
            let took = c
                .duration_ms
                .map(|d| format!(", took {d} ms"))
                .unwrap_or_default();
            let _ = writeln!(
                o,
                "last checkpoint: epoch {} at {} ({} ago{took})",
                c.epoch,
                time(c.at_ms),
                age(c.age_seconds)
            );
        }
        None => {
            let _ = writeln!(o, "last checkpoint: none yet");
        }
    }
    for e in &s.prepared_epochs {
        let _ = writeln!(
            o,
            "prepared epoch:  {e} (not committed; rolled forward at the next start; if that keeps failing, `sluice state resolve-epoch` shows why)"
        );
    }
    if let Some(c) = &s.schema_change {
        let _ = writeln!(
            o,
            "schema change:   {} (at {}; `sluice state show` has the history)",
            c.what,
            time(c.at_ms)
        );
    }
    match &s.rules {
        Some(r) => {
            let on_disk = if s.source == StatusSource::State {
                " (on disk)"
            } else {
                ""
            };
            let _ = writeln!(
                o,
                "rules:           {} rule(s), version {}{on_disk}",
                r.count, r.version
            );
        }
        None => {
            let _ = writeln!(o, "rules:           not loaded");
        }
    }
    if s.dimensions.is_empty() {
        let _ = writeln!(o, "dimensions:      none configured");
    } else {
        for d in &s.dimensions {
            let err = d
                .last_error
                .as_deref()
                .map(|e| format!("; last reload failed: {e}"))
                .unwrap_or_default();
            let _ = writeln!(
                o,
                "dimension:       {} snapshot {} ({} rows, loaded {}){err}",
                d.name,
                d.snapshot,
                d.rows,
                time(d.loaded_at_ms)
            );
        }
    }
    if let Some(p) = &s.pipeline {
        let _ = writeln!(
            o,
            "pipeline:        {} split(s) queued, {} in flight on {} reader(s); readers saturated {:.0}%, waiting on the writer {:.0}% (last interval)",
            p.splits_queued,
            p.splits_in_flight,
            p.readers,
            p.reader_saturation * 100.0,
            p.writer_wait * 100.0
        );
    }
    for d in &s.disk {
        let _ = writeln!(
            o,
            "disk ({}):{}{} free of {} at {}",
            d.what,
            " ".repeat(9usize.saturating_sub(d.what.len())),
            human_bytes(d.free_bytes),
            human_bytes(d.total_bytes),
            d.path
        );
    }
    let _ = writeln!(o, "discovery:       {}", render_discovery(&s.discovery));
    if let Some(c) = &s.cluster {
        let _ = writeln!(
            o,
            "replicas:        {}",
            crate::telemetry::cluster_status::render_line(c, s.generated_at_ms)
        );
    }
    if let Some(p) = &s.partition_commit {
        render_partition_commit(&mut o, p, s.generated_at_ms);
    }
    let _ = writeln!(
        o,
        "open output files: {} (rows durable, visible when they close)",
        s.open_output.files
    );
    for (t, age) in &s.open_output.oldest_invisible_seconds {
        let _ = writeln!(o, "  {t:<32} oldest rows not yet visible: {age:.0}s ago");
    }
    let _ = writeln!(o, "\nrows committed today ({} UTC):", s.day);
    if s.tables.is_empty() {
        let _ = writeln!(o, "  none");
    }
    for (t, n) in &s.tables {
        let _ = writeln!(o, "  {t:<32} {n:>12}");
    }
    let _ = writeln!(o, "\nquarantined files: {}", s.quarantined.len());
    for q in &s.quarantined {
        let _ = writeln!(o, "  {} ({}): {}", q.path, time(q.at_ms), q.reason);
    }
    o
}

/// One line: what discovery did not read, and failed listings.
fn render_discovery(d: &DiscoveryStatus) -> String {
    let recent = |v: &[String]| {
        if v.is_empty() {
            String::new()
        } else {
            format!(" (recent: {})", v.join(", "))
        }
    };
    let mut parts = Vec::new();
    if d.skipped_too_old > 0 {
        parts.push(format!(
            "{} file(s) skipped as older than watermark - lookback{}",
            d.skipped_too_old,
            recent(&d.recent_too_old)
        ));
    }
    if d.skipped_symlinks > 0 {
        parts.push(format!(
            "{} path(s) reached through a symlink not read{}",
            d.skipped_symlinks,
            recent(&d.recent_symlinks)
        ));
    }
    if d.bad_entries > 0 {
        parts.push(format!(
            "{} listing entr{} that cannot be listed{}",
            d.bad_entries,
            if d.bad_entries == 1 { "y" } else { "ies" },
            recent(&d.recent_bad_entries)
        ));
    }
    if d.listing_failures > 0 {
        parts.push(format!(
            "listing failed {} time(s), {} in a row{}",
            d.listing_failures,
            d.failed_scans_in_a_row,
            d.last_listing_error
                .as_deref()
                .map(|e| format!(" (last: {e})"))
                .unwrap_or_default()
        ));
    }
    if parts.is_empty() {
        "every listed file accounted for".to_string()
    } else {
        parts.join("; ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::status::PendingCommit;

    #[test]
    fn renders_every_section() {
        let mut s = StatusSnapshot {
            source: StatusSource::State,
            phase: Phase::Stopped,
            day: "2026-11-20".into(),
            ..Default::default()
        };
        s.tables.insert("t_all".into(), 1234);
        s.quarantined.push(Quarantined {
            path: "dt=1/bad.parquet".into(),
            reason: "bad magic".into(),
            at_ms: 0,
        });
        s.generated_at_ms = 120_000;
        s.partition_commit = Some(PartitionCommitStatus {
            pending: 2,
            failing: 1,
            oldest_pending_since_ms: Some(60_000),
            failed_attempts_total: 4,
            oldest_failing: vec![PendingCommit {
                table: "t_click".into(),
                partition: "dt=2026-11-20/hour=00".into(),
                failed_attempts: 4,
                since_ms: 60_000,
                next_attempt_ms: Some(150_000),
                last_error: Some("webhook answered HTTP 500".into()),
            }],
        });
        s.schema_change = Some(status::SchemaChange {
            epoch: 7,
            at_ms: 60_000,
            what: "epoch 7: gained column new_col (Utf8) from file dt=1/a.parquet".into(),
        });
        let text = render(&s);
        for want in [
            "schema change:   epoch 7: gained column new_col (Utf8) from file dt=1/a.parquet (at 1970-01-01T00:01:00Z;",
            "no daemon answered",
            "dimensions:      none configured",
            "t_all",
            "1234",
            "dt=1/bad.parquet (1970-01-01T00:00:00Z): bad magic",
            "last checkpoint: none yet",
            "discovery:       every listed file accounted for",
            "partition commit: 2 pending, 1 failing, oldest waiting since 1970-01-01T00:01:00Z (1m ago)",
            "  t_click/dt=2026-11-20/hour=00: 4 failed attempt(s) since 1970-01-01T00:01:00Z, next attempt in 30s; last error: webhook answered HTTP 500",
        ] {
            assert!(text.contains(want), "{want:?} in\n{text}");
        }
    }

    #[test]
    fn nothing_listening_is_none() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        drop(l);
        assert!(fetch(addr, Duration::from_millis(500)).unwrap().is_none());
    }
}
