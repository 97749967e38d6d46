//! A fixture for `[cluster]` tests: N replicas as N real processes over one
//! source folder and one sink, each with its own state folder
//! (`state-<i>`) and config (`sluice-<i>.toml`, the same but for the state
//! folder; the replica index comes from `SLUICE_REPLICA`, as on Kubernetes).
//! The sink root is a parameter, so the same tests can run over an object
//! store sink.

use crate::support::*;
use std::path::PathBuf;
use std::process::{Command, Stdio};

pub struct Replicas {
    pub env: Env,
    pub n: u32,
    base: String,
    /// Environment for every replica's process (e.g. S3 credentials).
    pub vars: Vec<(String, String)>,
}

impl Replicas {
    /// `extra`: config appended to every replica's (e.g. `[partition_commit]`);
    /// `sink_root`: `sink.root` as written in the config ("dwd": the local
    /// folder `Env::sink`, or an `s3://` URL).
    pub fn new(n: u32, extra: &str, sink_root: &str, http: bool) -> Replicas {
        let env = Env::new(extra);
        let env = if http { env.with_http() } else { env };
        let base = std::fs::read_to_string(env.config()).unwrap().replace(
            "[sink]\nroot = \"dwd\"",
            &format!("[sink]\nroot = {sink_root:?}"),
        );
        let r = Replicas {
            env,
            n,
            base,
            vars: Vec::new(),
        };
        r.write_configs();
        r
    }

    fn write_configs(&self) {
        for i in 0..self.n {
            let text = self.base.replace(
                "[state]\ndir = \"state\"",
                &format!("[state]\ndir = \"state-{i}\""),
            );
            std::fs::write(
                self.config(i),
                format!(
                    "{text}\n[cluster]\nreplicas = {}\nstall_after = \"2s\"\n",
                    self.n
                ),
            )
            .unwrap();
        }
    }

    /// Appends `extra` to every replica's config.
    pub fn append(&mut self, extra: &str) {
        self.base.push_str(extra);
        self.write_configs();
    }

    /// Rewrites every replica's config with `f`.
    pub fn edit(&mut self, f: impl Fn(&str) -> String) {
        self.base = f(&self.base);
        self.write_configs();
    }

    /// Rewrites every config for `n` replicas (after a reshard).
    pub fn set_replicas(&mut self, n: u32) {
        self.n = n;
        self.write_configs();
    }

    pub fn config(&self, i: u32) -> PathBuf {
        self.env.path().join(format!("sluice-{i}.toml"))
    }

    /// `sluice <args>` as replica `i` (`SLUICE_REPLICA=i`).
    pub fn cmd(&self, i: u32, args: &[&str]) -> Command {
        let mut c = self.env.cmd(args);
        c.env("SLUICE_REPLICA", i.to_string());
        for (k, v) in &self.vars {
            c.env(k, v);
        }
        c
    }

    /// `sluice run` as replica `i`, stderr delivered line by line.
    pub fn spawn(&self, i: u32) -> (Daemon, std::sync::mpsc::Receiver<String>) {
        let mut c = self.cmd(i, &["run", "--config", self.config(i).to_str().unwrap()]);
        c.stdout(Stdio::null());
        spawn_with_log(c)
    }

    /// `sluice run --once` as replica `i`.
    pub fn run_once(&self, i: u32) -> std::process::Output {
        self.cmd(
            i,
            &[
                "run",
                "--config",
                self.config(i).to_str().unwrap(),
                "--once",
            ],
        )
        .output()
        .unwrap()
    }

    /// The input files replica `i` of `n` owns.
    pub fn owned(&self, i: u32, n: u32) -> Vec<PathBuf> {
        let ods = self.env.ods();
        visible_files(&ods, &[])
            .into_iter()
            .map(|(rel, _)| rel)
            .filter(|rel| sluice::cluster::shard::shard_of(rel, n) == i)
            .map(|rel| ods.join(rel))
            .collect()
    }
}

/// Stops a daemon with SIGTERM; true when it exited 0.
pub fn stop(d: Daemon) -> bool {
    let mut child = d.into_child();
    // SAFETY: signalling our own child.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    child.wait().unwrap().success()
}
