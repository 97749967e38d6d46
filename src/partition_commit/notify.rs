//! The commit policies, run for one unit (time partition) at a time on the notifier
//! thread: `_SUCCESS` through the sink's `object_store`, the command (no
//! shell, time-bounded), the webhook (one POST through [`Webhook`],
//! time-bounded). A job is one attempt; it ends with a
//! [`Completion`] sent back to the coordinator, which records a success in
//! state, or a failure and when to try again (see [`super::retry`]). The
//! thread never sleeps on a failing partition, so others go ahead.

use super::CommitError;
use super::webhook::Webhook;
use crate::clock::rfc3339_seconds as rfc3339;
use crate::config::PartitionCommitConfig;
use crate::telemetry::Metrics;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender};
use std::time::{Duration, Instant};
use tokio::runtime::Handle;

/// One unit (time partition, see [`super::unit`]) to commit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Job {
    pub table: String,
    /// The time partition, e.g. `dt=2026-11-20/hour=13`.
    pub partition: String,
    /// Rows and files of the unit as of this commit (totals over its leaves).
    pub rows: u64,
    pub files: u64,
    pub late: bool,
    /// Run the command (false: it already succeeded for these rows, only
    /// the webhook failed).
    pub run_command: bool,
    /// `committed_at`: the first attempt of this commit, so that a retried
    /// notification carries the same body.
    pub at_ms: i64,
    /// Every tracked leaf partition of the unit (full paths, in order), with
    /// its rows and files: recorded as announced when the commit succeeds.
    pub leaves: Vec<Leaf>,
}

/// One leaf partition of a [`Job`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Leaf {
    /// The full partition path, e.g. `dt=2026-11-20/hour=13/event_type=click`.
    pub partition: String,
    pub rows: u64,
    pub files: u64,
}

/// `SLUICE_SUB_PARTITIONS` holds at most this many bytes (whole lines): a
/// single environment string is limited to 128 KiB on Linux, and a spawn
/// that fails would fail on every retry.
const ENV_LIST_MAX: usize = 64 << 10;

impl Job {
    /// The unit's directory, relative to the sink root.
    pub fn path(&self) -> String {
        format!("{}/{}", self.table, self.partition)
    }

    /// The leaves below the unit: (path relative to the unit, leaf). Empty
    /// when the time columns are the whole partition.
    pub fn sub_partitions(&self) -> impl Iterator<Item = (&str, &Leaf)> {
        self.leaves
            .iter()
            .map(|l| (super::unit::sub_path(&self.partition, &l.partition), l))
            .filter(|(sub, _)| !sub.is_empty())
    }

    /// The webhook's JSON body.
    pub fn body(&self, committed_at_ms: i64) -> String {
        let subs: Vec<serde_json::Value> = self
            .sub_partitions()
            .map(|(sub, l)| serde_json::json!({"partition": sub, "rows": l.rows, "files": l.files}))
            .collect();
        serde_json::json!({
            "table": self.table,
            "partition": self.partition,
            "path": self.path(),
            "rows": self.rows,
            "files": self.files,
            "late": self.late,
            "committed_at": rfc3339(committed_at_ms),
            "sub_partitions": subs,
        })
        .to_string()
    }

    /// The command's environment: the unit and its totals, and its
    /// sub-partitions one per line (`<path>\t<rows>\t<files>`, at most
    /// [`ENV_LIST_MAX`] bytes of whole lines; `SLUICE_SUB_PARTITION_COUNT`
    /// says how many there are in all).
    pub fn command_env(&self) -> Vec<(&'static str, String)> {
        let mut list = String::new();
        let mut count = 0usize;
        for (sub, l) in self.sub_partitions() {
            count += 1;
            let line = format!("{sub}\t{}\t{}\n", l.rows, l.files);
            if list.len() + line.len() <= ENV_LIST_MAX {
                list.push_str(&line);
            }
        }
        vec![
            ("SLUICE_TABLE", self.table.clone()),
            ("SLUICE_PARTITION", self.partition.clone()),
            ("SLUICE_PATH", self.path()),
            ("SLUICE_ROWS", self.rows.to_string()),
            ("SLUICE_FILES", self.files.to_string()),
            ("SLUICE_LATE", self.late.to_string()),
            ("SLUICE_COMMITTED_AT", rfc3339(self.at_ms)),
            ("SLUICE_SUB_PARTITION_COUNT", count.to_string()),
            ("SLUICE_SUB_PARTITIONS", list),
        ]
    }
}

/// How a job ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// `_SUCCESS` written, the command and the webhook succeeded: record
    /// the commit.
    Done,
    /// A policy failed: left unrecorded (pending), tried again later.
    /// `command_done`: the command had succeeded (only the webhook failed).
    Failed { error: String, command_done: bool },
    /// Shutdown came first: left unrecorded, it runs after the restart.
    Interrupted,
}

#[derive(Debug)]
pub struct Completion {
    pub job: Job,
    pub at_ms: i64,
    pub outcome: Outcome,
}

pub(super) struct Worker {
    pub cfg: PartitionCommitConfig,
    /// Built at start from `cfg.webhook`.
    pub webhook: Option<Webhook>,
    pub sink: Arc<dyn ObjectStore>,
    pub handle: Handle,
    pub metrics: Arc<Metrics>,
    pub stop: Arc<AtomicBool>,
}

impl Worker {
    /// Runs jobs until the sender is dropped (or `stop` is set).
    pub fn run(self, jobs: Receiver<Job>, done: SyncSender<Completion>) {
        loop {
            let job = match jobs.recv_timeout(Duration::from_millis(200)) {
                Ok(j) => j,
                Err(RecvTimeoutError::Timeout) => {
                    if self.stop.load(Ordering::SeqCst) {
                        return;
                    }
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => return,
            };
            if self.stop.load(Ordering::SeqCst) {
                return;
            }
            let at_ms = job.at_ms;
            let outcome = self.commit(&job, at_ms);
            if done
                .send(Completion {
                    job,
                    at_ms,
                    outcome,
                })
                .is_err()
            {
                return;
            }
        }
    }

    /// One attempt: `_SUCCESS`, the command (unless done already), the
    /// webhook; the first failure ends it.
    fn commit(&self, job: &Job, at_ms: i64) -> Outcome {
        let failed = |e: CommitError, command_done| Outcome::Failed {
            error: e.to_string(),
            command_done,
        };
        if self.cfg.success_file
            && let Err(e) = self.handle.block_on(write_success(&self.sink, job))
        {
            // A command that succeeded before still counts as done.
            return failed(e, !job.run_command);
        }
        if let Some(cmd) = self.cfg.command.as_ref().filter(|_| job.run_command)
            && let Err(e) = run_command(cmd, job, self.cfg.command_timeout)
        {
            self.metrics
                .partition_commit_command_failures
                .fetch_add(1, Ordering::Relaxed);
            return failed(e, false);
        }
        if self.stop.load(Ordering::SeqCst) {
            return Outcome::Interrupted;
        }
        if let Some(hook) = &self.webhook {
            let r = match self.handle.block_on(hook.post(job.body(at_ms))) {
                Ok(status) if (200..300).contains(&status) => Ok(()),
                Ok(status) => Err(CommitError::Status(status)),
                Err(e) => Err(e),
            };
            if let Err(e) = r {
                self.metrics
                    .partition_commit_webhook_failures
                    .fetch_add(1, Ordering::Relaxed);
                return failed(e, true);
            }
        }
        Outcome::Done
    }
}

/// Writes an empty `<table>/<partition>/_SUCCESS` (overwriting is fine).
async fn write_success(store: &Arc<dyn ObjectStore>, job: &Job) -> Result<(), CommitError> {
    let raw = format!("{}/_SUCCESS", job.path());
    let path = crate::sink::parse_path(&raw).map_err(|_| CommitError::Path(raw.clone()))?;
    store
        .put(&path, PutPayload::new())
        .await
        .map(|_| ())
        .map_err(|source| CommitError::Store { path: raw, source })
}

/// Runs the command with placeholders substituted and the unit in its
/// environment (see [`Job::command_env`]); fails on a non-zero
/// exit, a spawn error or the timeout (the child is then killed).
fn run_command(cmd: &[String], job: &Job, timeout: Duration) -> Result<(), CommitError> {
    let subst = |a: &String| {
        a.replace("{table}", &job.table)
            .replace("{partition}", &job.partition)
            .replace("{path}", &job.path())
            .replace("{rows}", &job.rows.to_string())
            .replace("{files}", &job.files.to_string())
            .replace("{late}", &job.late.to_string())
    };
    let Some((prog, args)) = cmd.split_first() else {
        return Ok(());
    };
    let mut child = std::process::Command::new(subst(prog))
        .args(args.iter().map(subst))
        .envs(job.command_env())
        .stdin(std::process::Stdio::null())
        .spawn()
        .map_err(|e| CommitError::Command(format!("cannot start {prog}: {e}")))?;
    let t0 = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(st)) if st.success() => return Ok(()),
            Ok(Some(st)) => return Err(CommitError::Command(format!("{prog} exited with {st}"))),
            Ok(None) if t0.elapsed() >= timeout => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(CommitError::Command(format!(
                    "{prog} did not finish within {}; killed",
                    humantime::format_duration(timeout)
                )));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(CommitError::Command(format!("waiting for {prog}: {e}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job() -> Job {
        Job {
            table: "t".into(),
            partition: "dt=2026-11-20/hour=00".into(),
            rows: 7,
            files: 2,
            late: false,
            run_command: true,
            at_ms: 0,
            leaves: vec![Leaf {
                partition: "dt=2026-11-20/hour=00".into(),
                rows: 7,
                files: 2,
            }],
        }
    }

    /// The unit `dt=2026-11-20/hour=13` with two event types below it.
    fn deep_job() -> Job {
        let leaf = |t: &str, rows, files| Leaf {
            partition: format!("dt=2026-11-20/hour=13/event_type={t}"),
            rows,
            files,
        };
        Job {
            table: "t".into(),
            partition: "dt=2026-11-20/hour=13".into(),
            rows: 12,
            files: 3,
            late: true,
            run_command: true,
            at_ms: 1_795_132_800_000,
            leaves: vec![leaf("click", 10, 2), leaf("view", 2, 1)],
        }
    }

    #[test]
    fn a_unit_body_lists_its_sub_partitions() {
        let v: serde_json::Value =
            serde_json::from_str(&deep_job().body(1_795_132_800_000)).unwrap();
        assert_eq!(v["partition"], "dt=2026-11-20/hour=13");
        assert_eq!(v["path"], "t/dt=2026-11-20/hour=13");
        assert_eq!(
            (v["rows"].as_u64(), v["files"].as_u64()),
            (Some(12), Some(3))
        );
        assert_eq!(v["late"], true);
        assert_eq!(
            v["sub_partitions"],
            serde_json::json!([
                {"partition": "event_type=click", "rows": 10, "files": 2},
                {"partition": "event_type=view", "rows": 2, "files": 1},
            ])
        );
    }

    #[test]
    fn the_command_gets_the_unit_in_its_environment() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let cmd = vec![
            "/bin/sh".to_string(),
            "-c".to_string(),
            format!(
                "printf '%s|%s|%s|%s|%s|%s\\n%s' \"$SLUICE_PATH\" \"$SLUICE_ROWS\" \"$SLUICE_FILES\" \"$SLUICE_LATE\" \"$SLUICE_SUB_PARTITION_COUNT\" \"$0\" \"$SLUICE_SUB_PARTITIONS\" > {}",
                out.display()
            ),
            "{rows}/{files}/{late}".to_string(),
        ];
        run_command(&cmd, &deep_job(), Duration::from_secs(10)).unwrap();
        assert_eq!(
            std::fs::read_to_string(&out).unwrap(),
            "t/dt=2026-11-20/hour=13|12|3|true|2|12/3/true\nevent_type=click\t10\t2\nevent_type=view\t2\t1\n"
        );
        let env = deep_job().command_env();
        let get = |k: &str| env.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone());
        assert_eq!(
            get("SLUICE_COMMITTED_AT").as_deref(),
            Some("2026-11-20T00:00:00Z")
        );
        // No sub-partitions when the leaf is the unit.
        let env = job().command_env();
        let get = |k: &str| env.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone());
        assert_eq!(get("SLUICE_SUB_PARTITION_COUNT").as_deref(), Some("0"));
        assert_eq!(get("SLUICE_SUB_PARTITIONS").as_deref(), Some(""));
        // A huge list is cut at whole lines; the count stays exact.
        let mut big = deep_job();
        big.leaves = (0..5_000)
            .map(|i| Leaf {
                partition: format!("dt=2026-11-20/hour=13/product=p{i:05}"),
                rows: 1,
                files: 1,
            })
            .collect();
        let env = big.command_env();
        let get = |k: &str| env.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone());
        let list = get("SLUICE_SUB_PARTITIONS").unwrap();
        assert!(
            list.len() <= ENV_LIST_MAX && list.ends_with('\n'),
            "{}",
            list.len()
        );
        assert!(list.lines().count() < 5_000);
        assert_eq!(get("SLUICE_SUB_PARTITION_COUNT").as_deref(), Some("5000"));
    }

    #[test]
    fn body_has_every_field() {
        let v: serde_json::Value = serde_json::from_str(&job().body(1_795_132_800_000)).unwrap();
        assert_eq!(v["table"], "t");
        assert_eq!(v["partition"], "dt=2026-11-20/hour=00");
        assert_eq!(v["path"], "t/dt=2026-11-20/hour=00");
        assert_eq!(v["rows"], 7);
        assert_eq!(v["files"], 2);
        assert_eq!(v["late"], false);
        assert_eq!(v["committed_at"], "2026-11-20T00:00:00Z");
        // The leaf is the unit: no sub-partitions.
        assert_eq!(v["sub_partitions"], serde_json::json!([]));
    }

    #[test]
    fn commands_substitute_and_report_failure() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let cmd = vec![
            "/bin/sh".to_string(),
            "-c".to_string(),
            format!("echo \"$0 $1\" > {}", out.display()),
            "{table}".to_string(),
            "{path}".to_string(),
        ];
        run_command(&cmd, &job(), Duration::from_secs(10)).unwrap();
        assert_eq!(
            std::fs::read_to_string(&out).unwrap(),
            "t t/dt=2026-11-20/hour=00\n"
        );
        let fail = vec![
            "/bin/sh".to_string(),
            "-c".to_string(),
            "exit 3".to_string(),
        ];
        let e = run_command(&fail, &job(), Duration::from_secs(10)).unwrap_err();
        assert!(e.to_string().contains("exit"), "{e}");
        let slow = vec![
            "/bin/sh".to_string(),
            "-c".to_string(),
            "sleep 5".to_string(),
        ];
        let e = run_command(&slow, &job(), Duration::from_millis(100)).unwrap_err();
        assert!(e.to_string().contains("killed"), "{e}");
        let missing = vec!["/nonexistent/prog".to_string()];
        assert!(run_command(&missing, &job(), Duration::from_secs(1)).is_err());
    }
}
