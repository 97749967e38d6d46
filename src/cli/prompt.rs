//! What the operator commands on a stopped daemon's state share: opening
//! the state (with a "nothing has run" error), asking before a change, and
//! times as RFC 3339.

use anyhow::{Context, Result};
use sluice::checkpoint::StateStore;
use sluice::config::Config;
use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;
use std::sync::Arc;

pub(super) use sluice::clock::rfc3339_millis as rfc3339;

/// Opens the state of a stopped daemon; the lock error already says "stop
/// the daemon first".
pub(super) fn open_state(cfg: &Config) -> Result<StateStore> {
    if !cfg.state_dir.exists() {
        anyhow::bail!(
            "no state at {} (state.dir): nothing has run with this config",
            cfg.state_dir.display()
        );
    }
    Ok(StateStore::open(&cfg.state_dir)?)
}

/// What the tools over the source need: the stopped daemon's state, the
/// I/O runtime and the source store.
pub(super) fn open_with_source(
    cfg: &Config,
) -> Result<(
    StateStore,
    tokio::runtime::Runtime,
    Arc<dyn object_store::ObjectStore>,
)> {
    let state = open_state(cfg).context("opening the state")?;
    let rt = super::runtime()?;
    let source = sluice::pipeline::open_store(&cfg.source.root, &cfg.stores, false)
        .context("opening source.root")?;
    Ok((state, rt, source))
}

/// Asks on a terminal; `None` when there is no terminal to ask on.
fn confirm(question: &str) -> Option<bool> {
    if !std::io::stdin().is_terminal() {
        return None;
    }
    eprint!("{question} [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer).ok()?;
    Some(matches!(answer.trim(), "y" | "Y" | "yes" | "YES"))
}

/// Asks before an operator action that changes the state (`--yes` skips
/// this). `None`: go ahead. Otherwise the exit code to stop with: 1 when
/// the operator said no, 2 when there is no terminal to ask on (`what`
/// names the action in the refusal).
pub(super) fn ask_to_proceed(question: &str, what: &str) -> Option<ExitCode> {
    match confirm(question) {
        Some(true) => None,
        Some(false) => {
            println!("nothing changed");
            Some(ExitCode::from(1))
        }
        None => {
            eprintln!(
                "error: refusing to {what} without confirmation: stdin is not a terminal; pass --yes"
            );
            Some(ExitCode::from(2))
        }
    }
}
