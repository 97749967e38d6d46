//! The one-line diagnosis of a status (pure: [`diagnose`] from a
//! [`StatusSnapshot`] and the [`Thresholds`] of the config), and the disk
//! figures it weighs (free space of the sink and the state). Part of the
//! status: re-exported by `telemetry::status`; touches nothing else.

use super::status::{Diagnosis, DiagnosisKind, DiskInfo, Phase, StatusSnapshot, StatusSource};
use std::path::Path;
use std::time::Duration;

/// A disk with less free space than this is "full" for the diagnosis.
pub const DISK_LOW_BYTES: u64 = 256 << 20;

/// Bounds that decide "falling behind" and its cause.
#[derive(Clone, Debug, Default)]
pub struct Thresholds {
    /// Lag above this is falling behind: min_age + scan_interval + 2 x checkpoint_interval.
    pub lag_seconds: f64,
    pub checkpoint_interval_seconds: f64,
}

impl Thresholds {
    pub fn from_config(cfg: &crate::config::Config) -> Thresholds {
        let min_age = match &cfg.source.visibility {
            crate::config::Visibility::Settled { min_age } => *min_age,
            crate::config::Visibility::Marker { .. }
            | crate::config::Visibility::Manifest { .. } => Duration::ZERO,
        };
        let ci = cfg.sink.checkpoint_interval.as_secs_f64();
        Thresholds {
            lag_seconds: min_age.as_secs_f64() + cfg.source.scan_interval.as_secs_f64() + 2.0 * ci,
            checkpoint_interval_seconds: ci,
        }
    }
}

/// True when the recent checkpoints keep getting slower (each at least as
/// long as the one before, the last twice the first and over a second), or
/// the last one took more than half the checkpoint interval.
pub fn checkpoints_growing(recent_ms: &[u64], interval_seconds: f64) -> bool {
    let Some(last) = recent_ms.last() else {
        return false;
    };
    if interval_seconds > 0.0 && *last as f64 / 1e3 > interval_seconds / 2.0 {
        return true;
    }
    recent_ms.len() >= 4
        && recent_ms.windows(2).all(|w| w[1] >= w[0])
        && *last >= 2 * recent_ms[0]
        && *last > 1000
}

/// The one-line diagnosis, most urgent cause first (pure).
pub fn diagnose(s: &StatusSnapshot, t: &Thresholds) -> Diagnosis {
    let d = |kind, message: String| Diagnosis { kind, message };
    let low_disk = s
        .disk
        .iter()
        .find(|d| d.total_bytes > 0 && d.free_bytes < DISK_LOW_BYTES);
    let disk_msg = |x: &DiskInfo| {
        format!(
            "disk full: {} has {} free on {} (writes and checkpoints will fail)",
            x.what,
            human_bytes(x.free_bytes),
            x.path
        )
    };
    let b = &s.backlog;
    let waiting = if b.files == 0 {
        "nothing waiting to be read".to_string()
    } else {
        format!(
            "{} file(s), {} waiting to be read",
            b.files,
            human_bytes(b.bytes)
        )
    };
    if s.source == StatusSource::State {
        if let Some(e) = s.prepared_epochs.first() {
            return d(
                DiagnosisKind::SinkErrors,
                format!(
                    "not running; epoch {e} is prepared but not committed (the last run stopped mid-checkpoint, e.g. on a sink error); the next start rolls it forward (if that keeps failing, `sluice state resolve-epoch` shows why and the way out)"
                ),
            );
        }
        if let Some(x) = low_disk {
            return d(DiagnosisKind::DiskFull, disk_msg(x));
        }
        return d(DiagnosisKind::NotRunning, format!("not running; {waiting}"));
    }
    if s.phase != Phase::Running {
        return d(DiagnosisKind::Starting, s.phase.describe().to_string());
    }
    if s.discovery.failed_scans_in_a_row >= super::discovery::FAILED_SCANS_UNHEALTHY {
        return d(
            DiagnosisKind::SourceUnreachable,
            format!(
                "source store unreachable: the last {} listings failed ({}); retried every scan, nothing is lost meanwhile",
                s.discovery.failed_scans_in_a_row,
                s.discovery
                    .last_listing_error
                    .as_deref()
                    .unwrap_or("no error recorded")
            ),
        );
    }
    if let Some(why) = &s.sink_unreachable {
        return d(DiagnosisKind::SinkUnreachable, why.clone());
    }
    if let Some(why) = &s.stalled {
        return d(DiagnosisKind::Stalled, format!("stalled: {why}"));
    }
    if let Some(x) = low_disk {
        return d(DiagnosisKind::DiskFull, disk_msg(x));
    }
    if let Some(dim) = s.dimensions.iter().find(|x| x.last_error.is_some()) {
        return d(
            DiagnosisKind::DimensionReloadFailing,
            format!(
                "dimension reload failing: {}: {}; joining against the older snapshot {}",
                dim.name,
                dim.last_error.as_deref().unwrap_or(""),
                dim.snapshot
            ),
        );
    }
    let behind = b.lag_seconds > t.lag_seconds;
    if !behind {
        return d(
            DiagnosisKind::Healthy,
            if b.files == 0 {
                "healthy, keeping up (idle)".to_string()
            } else {
                format!("healthy, keeping up; {waiting}")
            },
        );
    }
    let lag = format!(
        "lag {:.0}s (keeping up means under {:.0}s)",
        b.lag_seconds, t.lag_seconds
    );
    let p = s.pipeline.clone().unwrap_or_default();
    if p.writer_wait > 0.5
        || checkpoints_growing(&p.recent_checkpoint_ms, t.checkpoint_interval_seconds)
    {
        return d(
            DiagnosisKind::WriterBound,
            format!(
                "falling behind, writer-bound: readers spent {:.0}% of their time waiting on the writer, last checkpoints took {:?} ms; {lag}",
                p.writer_wait * 100.0,
                p.recent_checkpoint_ms
            ),
        );
    }
    if p.reader_saturation > 0.8 {
        return d(
            DiagnosisKind::ReaderBound,
            format!(
                "falling behind, reader-bound: all {} readers busy {:.0}% of the time with {} split(s) queued; add readers (read.readers) or cores; {lag}",
                p.readers,
                p.reader_saturation * 100.0,
                p.splits_queued
            ),
        );
    }
    d(
        DiagnosisKind::FallingBehind,
        format!(
            "falling behind without a saturated stage ({lag}); {waiting}; check the source listing and the host"
        ),
    )
}

pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// Free and total bytes of the file system holding `path` (None when it
/// cannot be asked, e.g. the path does not exist).
// The statvfs fields are c_ulong / fsblkcnt_t: u64 here, narrower elsewhere.
#[allow(clippy::useless_conversion)]
pub fn disk_space(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c` is a NUL-terminated path and `st` points to writable
    // memory of the right type; statvfs only writes it.
    let rc = unsafe { libc::statvfs(c.as_ptr(), st.as_mut_ptr()) };
    if rc != 0 {
        return None;
    }
    // SAFETY: statvfs returned 0, so it filled the struct.
    let st = unsafe { st.assume_init() };
    let frsize = u64::from(st.f_frsize);
    Some((
        u64::from(st.f_bavail).saturating_mul(frsize),
        u64::from(st.f_blocks).saturating_mul(frsize),
    ))
}

/// Disk figures for the sink root (when local) and the state dir.
pub fn disks(sink: Option<&Path>, state: &Path) -> Vec<DiskInfo> {
    [("sink", sink), ("state", Some(state))]
        .into_iter()
        .filter_map(|(what, p)| {
            let p = p?;
            disk_space(p).map(|(free, total)| DiskInfo {
                what: what.into(),
                path: p.display().to_string(),
                free_bytes: free,
                total_bytes: total,
            })
        })
        .collect()
}
