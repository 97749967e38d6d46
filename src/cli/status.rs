//! `sluice status`: backlog, lag, last checkpoint, quarantine and a
//! diagnosis, from the running daemon's `/status` (it holds the state's
//! lock), else from the state (`sluice::status`).

use anyhow::Result;
use sluice::checkpoint::StateError;
use sluice::config::Config;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

pub(super) fn run(cfg: &Config, json: bool, addr: Option<SocketAddr>) -> Result<ExitCode> {
    // The daemon first: while it runs, it holds the state's lock.
    let target = addr.or(cfg.http_listen).map(|mut a| {
        if a.ip().is_unspecified() {
            a.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        a
    });
    let mut snapshot = None;
    if let Some(a) = target.filter(|a| a.port() != 0) {
        snapshot = sluice::status::fetch(a, Duration::from_secs(3))?;
    }
    let snapshot = match snapshot {
        Some(s) => s,
        None => match sluice::status::from_state(cfg, sluice::clock::now_ms()) {
            Ok(s) => s,
            Err(sluice::status::StatusError::State(StateError::Locked { dir })) => {
                let asked = match target {
                    Some(a) if a.port() != 0 => format!("nothing answered on {a}"),
                    _ => "http is disabled or listens on port 0".to_string(),
                };
                anyhow::bail!(
                    "the state at {dir} is locked by a running daemon, but {asked}; pass --addr with the address it logged (\"serving /metrics ... address=\")"
                );
            }
            Err(e) => return Err(e.into()),
        },
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&snapshot)?);
    } else {
        print!("{}", sluice::status::render(&snapshot));
    }
    Ok(ExitCode::SUCCESS)
}
