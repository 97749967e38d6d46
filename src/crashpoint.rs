//! Named crash points for the crash tests. With `SLUICE_CRASH_AT=phase` (or
//! `phase:N`, the N-th time the phase is reached) the process sends itself
//! SIGKILL at that point: no destructor, no flush, exactly like a power cut
//! of the process. With `SLUICE_PANIC_AT=phase[:N]` the thread panics there
//! instead (tests of what a panic must not break). Unset, a crash point
//! costs two atomic loads.
//!
//! Only builds with the `crash-points` cargo feature have them: test builds
//! turn it on (the dev-dependency of the package on itself, Cargo.toml), so
//! `cargo test` runs the crash tests against a binary that has them. In a
//! plain `cargo build` [`hit`] is an empty inline function and
//! `SLUICE_CRASH_AT` and `SLUICE_PANIC_AT` are ignored, with one warning
//! from [`init`].

/// Whether this build has crash points (the `crash-points` feature).
pub const ENABLED: bool = cfg!(feature = "crash-points");

#[cfg(feature = "crash-points")]
use std::sync::OnceLock;
#[cfg(feature = "crash-points")]
use std::sync::atomic::{AtomicU64, Ordering};

/// The phases a crash test can name.
pub const PHASES: [&str; 12] = [
    "mid_read",
    "before_prepare",
    "after_prepare",
    "mid_rename",
    "during_recovery",
    // Recovery finished one file that was open at the last checkpoint
    // (truncated, footer appended); the epoch naming them is not prepared.
    "mid_finish",
    // A writer made one open file's rows durable at a checkpoint; the
    // other files and the prepare are still to come.
    "mid_checkpoint_flush",
    // A checkpoint closed one file of a complete partition (footer
    // written); the others, the prepare and the commit are still to come.
    "mid_partition_close",
    // A partition's `_SUCCESS`, command and webhook ran; its commit is not
    // recorded yet.
    "after_partition_notify",
    // A file needs a source schema change; nothing is recorded yet.
    "schema_change_found",
    // The prepare that records a source schema change is durable.
    "schema_change_prepared",
    // Its epoch is committed; the readers still have the old schema.
    "schema_change_committed",
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
    T.get_or_init(|| parse("SLUICE_CRASH_AT"))
}

#[cfg(feature = "crash-points")]
fn panic_target() -> &'static Option<Target> {
    static T: OnceLock<Option<Target>> = OnceLock::new();
    T.get_or_init(|| parse("SLUICE_PANIC_AT"))
}

#[cfg(feature = "crash-points")]
fn parse(var: &str) -> Option<Target> {
    let v = std::env::var(var).ok()?;
    let (phase, nth) = match v.split_once(':') {
        Some((p, n)) => (p.to_string(), n.parse().unwrap_or(1)),
        None => (v, 1),
    };
    if !PHASES.contains(&phase.as_str()) {
        // A misspelled phase would never fire, and a crash test would
        // pass without crashing.
        eprintln!("sluice: {var}={phase} is not a crash point; known: {PHASES:?}");
        std::process::exit(70);
    }
    Some(Target {
        phase,
        nth,
        seen: AtomicU64::new(0),
    })
}

/// Checks `SLUICE_CRASH_AT` and `SLUICE_PANIC_AT` at start: with crash points, that it names
/// one (exit 70 otherwise, so a misspelled crash test cannot pass without
/// crashing); without, says it is ignored.
pub fn init() {
    #[cfg(feature = "crash-points")]
    {
        let _ = target();
        let _ = panic_target();
    }
    #[cfg(not(feature = "crash-points"))]
    for var in ["SLUICE_CRASH_AT", "SLUICE_PANIC_AT"] {
        if let Some(v) = std::env::var_os(var) {
            eprintln!(
                "sluice: {var}={} ignored: this build has no crash points (they need the crash-points cargo feature, which test builds turn on)",
                v.to_string_lossy()
            );
        }
    }
}

/// Without the `crash-points` feature: nothing, inlined away.
#[cfg(not(feature = "crash-points"))]
#[inline(always)]
pub fn hit(_phase: &str) {}

/// Kills the process (or panics) if the configured crash point is reached.
#[cfg(feature = "crash-points")]
pub fn hit(phase: &str) {
    if let Some(t) = panic_target()
        && t.phase == phase
        && t.seen.fetch_add(1, Ordering::SeqCst) + 1 == t.nth
    {
        panic!("injected panic at crash point {phase}");
    }
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
