//! Dimension enrichment with the real binary: a dimension replaced while
//! the daemon runs enriches the next rows without a restart, and a broken
//! replacement keeps the last good snapshot (counted, logged). The crash
//! test covers exactly-once with the dimension configured (see support.rs).

use crate::ops::{get, metric, wait_rows_of_file};
use crate::support::*;
use arrow::array::AsArray;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// The replacement dimension: every page gets a `v2_` department.
fn v2_dept(spmid: &str) -> Option<String> {
    Some(format!("v2_{}", spmid.split('.').next().unwrap_or("")))
}

/// Replaces the dimension file the way a producer should: write aside, rename.
fn replace_dimension(env: &Env, text: &str, bump_s: u64) {
    let f = env.path().join("dim/spmid.csv");
    let tmp = env.path().join("dim/.spmid.csv.tmp");
    std::fs::write(&tmp, text).unwrap();
    let t = std::time::SystemTime::now() + Duration::from_secs(bump_s);
    std::fs::File::options()
        .write(true)
        .open(&tmp)
        .unwrap()
        .set_modified(t)
        .unwrap();
    std::fs::rename(&tmp, &f).unwrap();
}

/// event_id -> (spmid, dept, owner) of every row in t_dept.
fn t_dept_rows(env: &Env) -> BTreeMap<String, (String, String, String)> {
    let mut out = BTreeMap::new();
    for (rel, batches) in visible_files(&env.sink().join("t_dept"), &[]) {
        let dept = rel
            .split('/')
            .next()
            .and_then(|p| p.strip_prefix("dept="))
            .unwrap()
            .to_string();
        for b in batches {
            let id = b.column_by_name("event_id").unwrap().as_string::<i32>();
            let spm = b.column_by_name("spmid").unwrap().as_string::<i32>();
            let owner = b.column_by_name("owner").unwrap().as_string::<i32>();
            for i in 0..b.num_rows() {
                let prev = out.insert(
                    id.value(i).to_string(),
                    (
                        spm.value(i).to_string(),
                        dept.clone(),
                        owner.value(i).to_string(),
                    ),
                );
                assert!(prev.is_none(), "{} landed twice", id.value(i));
            }
        }
    }
    out
}

#[test]
fn a_replaced_dimension_enriches_the_next_rows_and_a_broken_one_is_not_used() {
    let mut env = Env::new("").with_http();
    env.add_file(0, 1500);
    let (mut child, rx) =
        spawn_with_log(env.cmd(&["run", "--config", env.config().to_str().unwrap()]));
    let mut log = String::new();
    let addr = wait_http_addr(&rx, &mut log);
    // All of file 0 is committed before the dimension changes.
    wait_log(&rx, &mut log, 60, "files_done=1");

    // A new version of the dimension, while the daemon runs.
    replace_dimension(&env, &dimension_csv(v2_dept), 5);
    wait_log(&rx, &mut log, 60, "origin=spmid.csv rows=200");
    env.add_file(1, 1500);
    wait_rows_of_file(&env, "t_dept", "e000001");

    // A truncated replacement (no data rows), then a corrupt one: both
    // refused; v2 keeps enriching.
    let body = get(&addr, "/metrics").1;
    let fallbacks = metric(
        &body,
        "sluice_dimension_fallbacks_total{dimension=\"dim_spmid\"}",
    );
    replace_dimension(&env, "spmid,dept,owner\n", 10);
    wait_log(&rx, &mut log, 60, "dimension reload failed");
    replace_dimension(&env, "spmid;dept\n\"x", 15);
    let t0 = Instant::now();
    while metric(
        &get(&addr, "/metrics").1,
        "sluice_dimension_fallbacks_total{dimension=\"dim_spmid\"}",
    ) < fallbacks + 2
    {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "fallbacks not counted:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    env.add_file(2, 1500);
    wait_rows_of_file(&env, "t_dept", "e000002");
    let body = get(&addr, "/metrics").1;
    assert!(
        body.contains("sluice_dimension_rows{dimension=\"dim_spmid\"} 200"),
        "{body}"
    );
    // SAFETY: signalling our own child.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    assert!(child.wait().unwrap().success());

    // Independently: file 0 under the first dimension, files 1 and 2 under v2.
    let expected: BTreeMap<String, (String, String, String)> = {
        let mut m = BTreeMap::new();
        for (_, batches) in visible_files(&env.ods(), &[]) {
            for b in batches {
                let id = b.column_by_name("event_id").unwrap().as_string::<i32>();
                let spm = b.column_by_name("spmid").unwrap().as_string::<i32>();
                for i in 0..b.num_rows() {
                    let (id, spm) = (id.value(i), spm.value(i));
                    let dept = if id.starts_with("e000000") {
                        test_dept(spm)
                    } else {
                        v2_dept(spm)
                    };
                    if let Some(d) = dept {
                        m.insert(
                            id.to_string(),
                            (spm.to_string(), d.clone(), format!("owner-of-{d}")),
                        );
                    }
                }
            }
        }
        m
    };
    let actual = t_dept_rows(&env);
    assert_eq!(actual.len(), expected.len());
    let wrong: Vec<_> = expected
        .iter()
        .filter(|(k, v)| actual.get(*k) != Some(*v))
        .take(5)
        .collect();
    assert!(
        wrong.is_empty(),
        "rows enriched wrongly (first 5): {wrong:?}"
    );
}
