//! Exactly once across a rule change. The daemon is SIGKILLed at checkpoint
//! phases and at random moments while files keep arriving; in the middle of
//! one run, t_click is widened from clicks to clicks and views, and a new
//! table t_share (shares) is added.
//!
//! The moment of the switch is not visible from outside (it is the first
//! epoch committed after the reload), so the check is a per-row oracle
//! that still fails on any loss, duplicate or mixing:
//! - unchanged tables (t_android, t_view_ios, t_all) equal the rows computed
//!   from the input: the switch loses and duplicates nothing there;
//! - no event_id appears twice in t_click or t_share;
//! - rows both t_click versions select (clicks) are in t_click exactly once,
//!   and t_click holds nothing but clicks and views, t_share only shares;
//! - every view and every share tells which version routed it: a view in
//!   t_click or a share in t_share was routed by the new set, one missing
//!   from it by the old set. One epoch runs one rule set and a split's rows
//!   are committed in order, so within each row group (which lies inside one
//!   split) the old-routed rows must all come before the new-routed ones.
//!   A row re-routed by the new set after being committed under the old one
//!   shows up as a duplicate in t_all; a reader that kept the old set past
//!   the switch breaks the order;
//! - files that arrive after the daemon logged the reload are routed by the
//!   new set entirely (a reader that kept the old set would fail this), and
//!   so are files that arrive after a restart (it loads the rules on disk);
//! - both versions were seen, so the test exercised the switch.
//!
//! (Checked by breaking it: readers that keep the rule set they started
//! with, until a restart, fail the "after the reload" check.)

use crate::crash::wait_or_kill;
use crate::support::*;
use arrow::array::AsArray;
use sluice::demo::Rng;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

const NEW_CLICK: &str = "CREATE TABLE t_click PARTITIONED BY (dt, hour)\nAS SELECT event_id, mid, dt, hour FROM ods_events\nWHERE event_type IN ('click', 'view');\n";
const T_SHARE: &str = "CREATE TABLE t_share PARTITIONED BY (dt)\nAS SELECT event_id, dt FROM ods_events\nWHERE event_type = 'share';\n";

/// Rows per row group of the generated files (see `Env::add_file`).
const ROW_GROUP: u64 = 500;

/// (file id, row) from an event id `e<file:06>-<row:08>`.
fn file_and_row(id: &str) -> (u64, u64) {
    let (f, r) = id[1..].split_once('-').unwrap();
    (f.parse().unwrap(), r.parse().unwrap())
}

/// SIGSTOPs `pid` and waits until every one of its threads is stopped.
fn stop_all_threads(pid: i32) {
    // SAFETY: kill only sends a signal to our own child.
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    let t0 = std::time::Instant::now();
    loop {
        let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).unwrap();
        let running = tasks.flatten().any(|t| {
            let stat = std::fs::read_to_string(t.path().join("stat")).unwrap_or_default();
            // The state follows the parenthesised command name.
            let state = stat
                .rsplit(')')
                .next()
                .and_then(|r| r.split_whitespace().next());
            !matches!(state, Some("T" | "t") | None)
        });
        if !running {
            return;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "daemon {pid} did not stop"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn a_rule_change_mid_run_with_crashes_keeps_every_row_exactly_once() {
    let mut env = Env::new("");
    let mut rng = Rng::new(7);
    for h in 0..2 {
        env.add_file(h, 2000);
    }
    let plan: [Option<&str>; 6] = [
        Some("mid_read"),
        Some("after_prepare"),
        Some("during_recovery"),
        None,
        Some("before_prepare"),
        Some("mid_rename"),
    ];
    let change_at = 5;
    let iterations = 12;
    let mut new_only: Vec<PathBuf> = Vec::new();
    for i in 0..iterations {
        let mut added = vec![env.add_file(rng.below(4) as u32, 800 + rng.below(2000) as usize)];
        if i == change_at {
            // Mid-run: change the rules, wait until the daemon swaps them in,
            // then give it a file it must route with the new set, and kill it.
            let (mut child, rx) =
                spawn_with_log(env.cmd(&["run", "--config", env.config().to_str().unwrap()]));
            let mut log = String::new();
            wait_log(&rx, &mut log, 60, "checkpoint committed");
            // Both files reach the daemon as one change: a checkpoint between
            // the two writes would run a half-changed set (the new t_click,
            // no t_share) for an epoch, which this oracle cannot tell from a
            // reader that kept the old set. The daemon is stopped meanwhile.
            let pid = child.id() as i32;
            stop_all_threads(pid);
            std::fs::write(env.path().join("rules/t_click.sql"), NEW_CLICK).unwrap();
            std::fs::write(env.path().join("rules/t_share.sql"), T_SHARE).unwrap();
            // SAFETY: kill only sends a signal to our own child.
            unsafe { libc::kill(pid, libc::SIGCONT) };
            wait_log(&rx, &mut log, 60, "rules reloaded");
            new_only.push(env.add_file(rng.below(4) as u32, 1500));
            std::thread::sleep(Duration::from_millis(400 + rng.below(800)));
            child.kill().unwrap();
            child.wait().unwrap();
            continue;
        }
        let phase = plan[i % plan.len()];
        let at = phase.map(|p| match p {
            "mid_read" => format!("{p}:{}", 1 + rng.below(30)),
            "during_recovery" => p.to_string(),
            _ => format!("{p}:{}", 1 + rng.below(2)),
        });
        let child = env.spawn_daemon(at.as_deref());
        std::thread::sleep(Duration::from_millis(50 + rng.below(200)));
        added.push(env.add_file(rng.below(4) as u32, 500 + rng.below(1500) as usize));
        let limit = match phase {
            None => Duration::from_millis(100 + rng.below(1500)),
            Some(_) => Duration::from_secs(6),
        };
        let (stderr, _) = wait_or_kill(child, limit);
        assert!(!stderr.contains("panicked"), "iteration {i}:\n{stderr}");
        if i > change_at {
            new_only.extend(added);
        }
    }
    let out = env.run_once();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let actual = actual_tables(&env.sink());
    let expected = expected_tables(&env.ods(), &[]);
    for t in ["t_android", "t_view_ios", "t_all"] {
        let one = |m: &BTreeMap<String, BTreeMap<String, u32>>| {
            BTreeMap::from([(t.to_string(), m.get(t).cloned().unwrap_or_default())])
        };
        let d = diff_tables(&one(&expected), &one(&actual));
        assert!(d.is_empty(), "{}", d.join("\n"));
    }
    let empty = BTreeMap::new();
    let click = actual.get("t_click").unwrap_or(&empty);
    let share = actual.get("t_share").unwrap_or(&empty);
    for (t, rows) in [("t_click", click), ("t_share", share)] {
        let dups: Vec<&String> = rows
            .iter()
            .filter(|(_, n)| **n > 1)
            .map(|(k, _)| k)
            .collect();
        assert!(dups.is_empty(), "{t} has duplicates: {dups:?}");
    }

    // Every input row: its type, and for views and shares which set routed it.
    let new_files: BTreeSet<u64> = new_only
        .iter()
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name["part-".len()..name.len() - ".parquet".len()]
                .parse()
                .unwrap()
        })
        .collect();
    let mut types: BTreeMap<String, String> = BTreeMap::new();
    for (_, batches) in visible_files(&env.ods(), &[]) {
        for b in batches {
            let id = b.column_by_name("event_id").unwrap().as_string::<i32>();
            let ty = b.column_by_name("event_type").unwrap().as_string::<i32>();
            for i in 0..b.num_rows() {
                types.insert(id.value(i).to_string(), ty.value(i).to_string());
            }
        }
    }
    for (id, _) in click.iter() {
        let ty = types.get(id).map(String::as_str);
        assert!(
            matches!(ty, Some("click" | "view")),
            "t_click holds {id} ({ty:?})"
        );
    }
    for (id, _) in share.iter() {
        assert_eq!(
            types.get(id).map(String::as_str),
            Some("share"),
            "t_share holds {id}"
        );
    }
    // (file, row group) -> [(row, routed by the new set)]
    let mut groups: BTreeMap<(u64, u64), Vec<(u64, bool)>> = BTreeMap::new();
    let (mut old, mut new) = (0, 0);
    for (id, ty) in &types {
        let routed_new = match ty.as_str() {
            "click" => {
                assert!(click.contains_key(id), "click {id} lost from t_click");
                continue;
            }
            "view" => click.contains_key(id),
            "share" => share.contains_key(id),
            _ => continue,
        };
        let (file, row) = file_and_row(id);
        if new_files.contains(&file) {
            assert!(
                routed_new,
                "{id} ({ty}) arrived after the change but was routed by the old rules"
            );
        }
        if routed_new {
            new += 1
        } else {
            old += 1
        }
        groups
            .entry((file, row / ROW_GROUP))
            .or_default()
            .push((row, routed_new));
    }
    for ((file, rg), mut rows) in groups {
        rows.sort();
        let first_new = rows.iter().position(|(_, n)| *n).unwrap_or(rows.len());
        if let Some((row, _)) = rows[first_new..].iter().find(|(_, n)| !*n) {
            panic!(
                "file {file} row group {rg}: row {row} was routed by the old rules after row {} was routed by the new ones",
                rows[first_new].0
            );
        }
    }
    assert!(
        old > 100 && new > 100,
        "the switch was not exercised: {old} old, {new} new"
    );
    assert_eq!(staged_files(&env.sink()), 0, "staged files left behind");
    eprintln!("rule switch under crashes: {old} rows routed by the old rules, {new} by the new");
}
