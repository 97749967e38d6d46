//! Named crash points for the crash tests. With `SLUICE_CRASH_AT=phase` (or
//! `phase:N`, the N-th time the phase is reached) the process sends itself
//! SIGKILL at that point: no destructor, no flush, exactly like a power cut
//! of the process. With `SLUICE_PANIC_AT=phase[:N]` the thread panics there
//! instead (tests of what a panic must not break). Unset, a crash point
//! costs two atomic loads.

use std::sync::OnceLock;
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

struct Target {
    phase: String,
    nth: u64,
    seen: AtomicU64,
}

fn target() -> &'static Option<Target> {
    static T: OnceLock<Option<Target>> = OnceLock::new();
    T.get_or_init(|| parse("SLUICE_CRASH_AT"))
}

fn panic_target() -> &'static Option<Target> {
    static T: OnceLock<Option<Target>> = OnceLock::new();
    T.get_or_init(|| parse("SLUICE_PANIC_AT"))
}

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

/// Kills the process (or panics) if the configured crash point is reached.
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
