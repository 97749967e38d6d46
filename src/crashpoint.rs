//! Named crash points for the crash tests. With `SLUICE_CRASH_AT=phase` (or
//! `phase:N`, the N-th time the phase is reached) the process sends itself
//! SIGKILL at that point: no destructor, no flush, exactly like a power cut
//! of the process. Unset, a crash point costs one atomic load.
//!
//! Only builds with the `crash-points` cargo feature have them: test builds
//! turn it on (the dev-dependency of the package on itself, Cargo.toml), so
//! `cargo test` runs the crash tests against a binary that has them. In a
//! plain `cargo build` [`hit`] is an empty inline function and
//! `SLUICE_CRASH_AT` is ignored, with one warning from [`init`].

/// Whether this build has crash points (the `crash-points` feature).
pub const ENABLED: bool = cfg!(feature = "crash-points");

#[cfg(feature = "crash-points")]
use std::sync::OnceLock;
#[cfg(feature = "crash-points")]
use std::sync::atomic::{AtomicU64, Ordering};

/// The phases a crash test can name.
pub const PHASES: [&str; 6] = [
    "mid_read",
    "before_prepare",
    "after_prepare",
    "mid_rename",
    "during_recovery",
    // A partition's `_SUCCESS`, command and webhook ran; its commit is not
    // recorded yet.
    "after_partition_notify",
];

#[cfg(feature = "crash-points")]
struct Target {
    phase: String,
    nth: u64,
    seen: AtomicU64,
}

#[cfg(feature = "crash-points")]
fn target() -> &'static Option<Target> {
    static T: OnceLock<Option<Target>> = OnceLock::new();
    T.get_or_init(|| {
        let v = std::env::var("SLUICE_CRASH_AT").ok()?;
        let (phase, nth) = match v.split_once(':') {
            Some((p, n)) => (p.to_string(), n.parse().unwrap_or(1)),
            None => (v, 1),
        };
        if !PHASES.contains(&phase.as_str()) {
            // A misspelled phase would never fire, and a crash test would
            // pass without crashing.
            eprintln!("sluice: SLUICE_CRASH_AT={phase} is not a crash point; known: {PHASES:?}");
            std::process::exit(70);
        }
        Some(Target {
            phase,
            nth,
            seen: AtomicU64::new(0),
        })
    })
}

/// Checks `SLUICE_CRASH_AT` at start: with crash points, that it names
/// one (exit 70 otherwise, so a misspelled crash test cannot pass without
/// crashing); without, says it is ignored.
pub fn init() {
    #[cfg(feature = "crash-points")]
    let _ = target();
    #[cfg(not(feature = "crash-points"))]
    if let Some(v) = std::env::var_os("SLUICE_CRASH_AT") {
        eprintln!(
            "sluice: SLUICE_CRASH_AT={} ignored: this build has no crash points (they need the crash-points cargo feature, which test builds turn on)",
            v.to_string_lossy()
        );
    }
}

/// Without the `crash-points` feature: nothing, inlined away.
#[cfg(not(feature = "crash-points"))]
#[inline(always)]
pub fn hit(_phase: &str) {}

/// Kills the process if the configured crash point is reached.
#[cfg(feature = "crash-points")]
pub fn hit(phase: &str) {
    if let Some(t) = target()
        && t.phase == phase
        && t.seen.fetch_add(1, Ordering::SeqCst) + 1 == t.nth
    {
        eprintln!("sluice: crash point {phase} reached, sending SIGKILL to self");
        // SAFETY: getpid and kill have no memory-safety preconditions.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
    }
}

#[cfg(test)]
mod tests {
    /// Test builds have crash points: the dev-dependency on this package
    /// with the feature is what turns them on (see Cargo.toml).
    #[test]
    fn test_builds_have_crash_points() {
        assert!(
            std::hint::black_box(super::ENABLED),
            "built without crash-points"
        );
    }
}
