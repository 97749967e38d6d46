//! Committed output is never overwritten or doubled by operator actions, odd
//! partition values or a commit that cannot succeed: a wiped state is
//! refused over existing output, a partly committed quarantined file
//! resumes where it stopped, long partition values get bounded directory
//! names, and an epoch that can never commit is resolved explicitly.

use crate::support::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Every file under the sink outside its staging folder: path -> bytes.
fn sink_snapshot(sink: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![sink.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.file_name().unwrap() == ".sluice-staging" {
                continue;
            }
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(p.clone(), std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

fn run_args(env: &Env, extra: &[&str]) -> std::process::Output {
    let cfg = env.config();
    let mut args = vec!["run", "--config", cfg.to_str().unwrap(), "--once"];
    args.extend_from_slice(extra);
    env.cmd(&args).output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn a_wiped_state_over_existing_output_is_refused_and_nothing_is_overwritten() {
    let mut env = Env::new("");
    for h in 0..3 {
        env.add_file(h, 1500);
    }
    let first = env.run_once();
    assert!(first.status.success(), "{}", text(&first.stderr));
    let before = sink_snapshot(&env.sink());
    assert!(before.len() > 5, "{}", before.len());
    let want = expected_tables(&env.ods(), &[]);

    // The state is lost; the sink is not.
    std::fs::remove_dir_all(env.path().join("state")).unwrap();
    let out = env.run_once();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let tables = std::fs::read_dir(env.sink()).unwrap().count() - 1; // and staging
    for what in [
        "has never committed anything",
        &format!(
            "already holds {} output file(s) in {tables} table(s)",
            before.len()
        ),
        "t_click",
        "read every visible source file again",
        "nothing existing is overwritten",
        "sluice state import",
        "point sink.root elsewhere",
        "--allow-existing-output",
    ] {
        assert!(stderr.contains(what), "{what:?} not in:\n{stderr}");
    }
    assert_eq!(sink_snapshot(&env.sink()), before, "the refused run wrote");
    // Refused again: nothing about the state changed that.
    assert_eq!(env.run_once().status.code(), Some(2));

    // The operator decides to write beside the existing files.
    let out = run_args(&env, &["--allow-existing-output"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let after = sink_snapshot(&env.sink());
    for (p, bytes) in &before {
        assert_eq!(after.get(p), Some(bytes), "{} changed", p.display());
    }
    assert!(after.len() > before.len());
    // Every row is there twice now, as the refusal said.
    let actual = actual_tables(&env.sink());
    for (table, ids) in &want {
        for id in ids.keys() {
            assert_eq!(actual[table].get(id), Some(&2), "{table} {id}");
        }
    }
}

/// Overwrites the column chunks of the file's last row group in place
/// (same size, footer intact): reading that row group fails.
fn corrupt_last_row_group(f: &Path) -> Vec<u8> {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let good = std::fs::read(f).unwrap();
    let r = SerializedFileReader::new(std::fs::File::open(f).unwrap()).unwrap();
    let meta = r.metadata();
    assert!(meta.num_row_groups() >= 4, "{}", meta.num_row_groups());
    let last = meta.row_group(meta.num_row_groups() - 1);
    let mut bad = good.clone();
    for c in last.columns() {
        let (start, len) = c.byte_range();
        for b in &mut bad[start as usize..(start + len) as usize] {
            *b = 0;
        }
    }
    std::fs::write(f, &bad).unwrap();
    good
}

/// A file whose last row group cannot be read: its other splits commit,
/// then it is quarantined. Returns (file, its good bytes, its mtime as taken).
fn partly_committed_quarantine(env: &mut Env) -> (PathBuf, Vec<u8>, std::time::SystemTime) {
    env.add_file(0, 1000);
    let f = env.add_file(1, 4000);
    let good = corrupt_last_row_group(&f);
    let taken = std::fs::metadata(&f).unwrap().modified().unwrap();
    let out = env.run_once();
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("files_quarantined=1"), "{stderr}");
    assert!(env.state_show().contains("quarantined dt="));
    // Some of its rows are committed already.
    let actual = actual_tables(&env.sink());
    let all_rows: usize = actual["t_all"].len();
    assert!(all_rows > 1000 && all_rows < 5000, "{all_rows}");
    (f, good, taken)
}

fn retry(env: &Env, extra: &[&str]) -> std::process::Output {
    let cfg = env.config();
    let mut args = vec![
        "state",
        "quarantine",
        "retry",
        "--config",
        cfg.to_str().unwrap(),
        "--all",
    ];
    args.extend_from_slice(extra);
    env.cmd(&args).output().unwrap()
}

#[test]
fn a_partly_committed_quarantined_file_resumes_and_every_row_lands_once() {
    let mut env = Env::new("");
    let (f, good, taken) = partly_committed_quarantine(&mut env);
    // The read error was transient: the file is back as it was taken.
    std::fs::write(&f, &good).unwrap();
    set_mtime(&f, taken);
    let out = retry(&env, &[]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains("unchanged; resumes at its recorded offsets"),
        "{stdout}"
    );
    assert!(!stdout.contains(": 0 row(s) already committed"), "{stdout}");
    assert!(stdout.contains("1 file(s) released"), "{stdout}");
    let out = env.run_once();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let diffs = diff_tables(
        &expected_tables(&env.ods(), &[]),
        &actual_tables(&env.sink()),
    );
    assert!(diffs.is_empty(), "{}", diffs.join("\n"));
}

/// The number just before `marker` in `s`.
fn number_before(s: &str, marker: &str) -> u64 {
    let head = &s[..s
        .find(marker)
        .unwrap_or_else(|| panic!("{marker:?} not in {s}"))];
    let digits: String = head
        .chars()
        .rev()
        .skip_while(|c| c.is_whitespace())
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.chars().rev().collect::<String>().parse().unwrap()
}

#[test]
fn a_changed_partly_committed_file_is_reread_only_when_asked() {
    let mut env = Env::new("");
    let (f, good, _) = partly_committed_quarantine(&mut env);
    // The producer rewrote it: same rows, a new mtime.
    std::fs::write(&f, &good).unwrap();
    set_mtime(&f, std::time::SystemTime::now());
    let out = retry(&env, &[]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(2), "{stdout}{stderr}");
    assert!(
        stdout.contains("changed since it was quarantined"),
        "{stdout}"
    );
    let committed = number_before(&stdout, "row(s) from it are already committed");
    assert!(committed > 0, "{stdout}");
    assert!(stderr.contains("nothing released") && stderr.contains("--reread"));
    assert!(
        env.state_show().contains("quarantined dt="),
        "released anyway"
    );

    let out = retry(&env, &["--reread"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains(&format!(
            "the {committed} row(s) already committed from it land in the output a second time"
        )),
        "{stdout}"
    );
    assert!(env.run_once().status.success());
    // Exactly the rows it said are doubled; every other row is there once.
    let all = &actual_tables(&env.sink())["t_all"];
    assert_eq!(all.values().filter(|n| **n == 2).count() as u64, committed);
    assert!(all.values().all(|n| *n <= 2));
    assert_eq!(all.len(), 5000);
}

#[test]
fn long_partition_values_land_in_bounded_directories_with_every_row() {
    let mut env = Env::new("");
    std::fs::write(
        env.path().join("rules/t_long.sql"),
        "CREATE TABLE t_long PARTITIONED BY (k)\nAS SELECT event_id, concat(repeat('x', 300), event_type) AS k FROM ods_events\nWHERE event_type = 'click';\n",
    )
    .unwrap();
    std::fs::write(
        env.path().join("rules/t_cjk.sql"),
        "CREATE TABLE t_cjk PARTITIONED BY (k)\nAS SELECT event_id, concat(repeat('分区', 60), event_type) AS k FROM ods_events\nWHERE event_type = 'click';\n",
    )
    .unwrap();
    env.add_file(0, 1500);
    env.add_file(1, 1500);
    let out = env.run_once();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let actual = actual_tables(&env.sink());
    let want = expected_tables(&env.ods(), &[]);
    for table in ["t_long", "t_cjk"] {
        let dirs: Vec<String> = std::fs::read_dir(env.sink().join(table))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(dirs.len(), 1, "{table}: {dirs:?}");
        for d in &dirs {
            assert!(d.len() <= 128, "{table}: {} bytes: {d}", d.len());
            assert!(d.starts_with("k="), "{d}");
        }
        // Every click, once.
        assert_eq!(actual[table], want["t_click"], "{table}");
    }
}

#[test]
fn an_epoch_whose_staged_file_is_missing_is_resolved_and_the_pipeline_goes_on() {
    let mut env = Env::new("");
    env.add_file(0, 1500);
    env.add_file(1, 1500);
    // One checkpoint, when everything is read: its epoch has files.
    let text_cfg = std::fs::read_to_string(env.config()).unwrap();
    std::fs::write(
        env.config(),
        text_cfg.replace(
            "checkpoint_interval = \"300ms\"",
            "checkpoint_interval = \"1h\"",
        ),
    )
    .unwrap();
    let cfg = env.config();
    let cfg = cfg.to_str().unwrap();
    // Dies after the first epoch is prepared, before any file is moved.
    let out = env
        .cmd(&["run", "--config", cfg, "--once"])
        .env("SLUICE_CRASH_AT", "after_prepare")
        .output()
        .unwrap();
    assert!(
        text(&out.stderr).contains("crash point after_prepare reached"),
        "{}",
        text(&out.stderr)
    );
    // One staged file goes missing.
    let staging = env.sink().join(".sluice-staging");
    let mut staged: Vec<PathBuf> = std::fs::read_dir(&staging)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    staged.sort();
    let lost = staged.first().unwrap().clone();
    let lost_rows = {
        use parquet::file::reader::{FileReader, SerializedFileReader};
        let r = SerializedFileReader::new(std::fs::File::open(&lost).unwrap()).unwrap();
        r.metadata().file_metadata().num_rows() as u64
    };
    std::fs::remove_file(&lost).unwrap();

    // Every start fails on it, and says what to do.
    for _ in 0..2 {
        let out = env.run_once();
        let stderr = text(&out.stderr);
        assert!(!out.status.success(), "{stderr}");
        assert!(
            stderr.contains("cannot be committed") && stderr.contains("sluice state resolve-epoch"),
            "{stderr}"
        );
    }

    // Without a terminal and without --yes it only shows.
    let out = env
        .cmd(&["state", "resolve-epoch", "--config", cfg])
        .output()
        .unwrap();
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("LEFT OUT"), "{stdout}");
    assert!(
        stdout.contains("staged file missing, final file absent"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("{lost_rows} row(s): its staged file is missing")),
        "{stdout}"
    );
    assert!(stdout.contains("NOT read again"), "{stdout}");
    // The failed starts moved the other files already, or this will.
    assert!(
        stdout.contains("  commit   ") || stdout.contains("  done     "),
        "{stdout}"
    );

    let out = env
        .cmd(&["state", "resolve-epoch", "--config", cfg, "--yes"])
        .output()
        .unwrap();
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains("committed:") && stdout.contains("1 left out"),
        "{stdout}"
    );

    // The pipeline makes progress again: the rest of the input, and new files.
    let out = env.run_once();
    assert!(out.status.success(), "{}", text(&out.stderr));
    env.add_file(2, 1000);
    let out = env.run_once();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let expected = expected_tables(&env.ods(), &[]);
    let actual = actual_tables(&env.sink());
    let mut missing = 0u64;
    for (table, want) in &expected {
        let got = actual.get(table).cloned().unwrap_or_default();
        assert!(got.values().all(|n| *n == 1), "{table} has duplicates");
        assert!(
            got.keys().all(|k| want.contains_key(k)),
            "{table} has extra rows"
        );
        missing += want.keys().filter(|k| !got.contains_key(*k)).count() as u64;
    }
    assert_eq!(missing, lost_rows, "only the lost file's rows are missing");
}
