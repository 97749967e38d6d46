//! `visibility = "manifest"` with the real binary: only the files an index
//! names are read, each once; a named file that is missing is reported by
//! path, and read once it appears.

use crate::support::*;

fn index_line(env: &Env, file: &std::path::Path) -> String {
    let rel = file.strip_prefix(env.ods()).unwrap().to_str().unwrap();
    let size = std::fs::metadata(file).unwrap().len();
    format!("{{\"path\": \"{rel}\", \"size\": {size}}}\n")
}

#[test]
fn only_files_named_by_an_index_are_read_and_a_missing_one_is_reported() {
    let mut env = Env::new("");
    let cfg = std::fs::read_to_string(env.config()).unwrap();
    std::fs::write(
        env.config(),
        cfg.replacen("visibility = \"settled\"", "visibility = \"manifest\"", 1),
    )
    .unwrap();
    let f0 = env.add_file(0, 400);
    let f1 = env.add_file(1, 500);
    // Written by a producer that has not committed it: no index names it.
    let unlisted = env.add_file(2, 300);
    let idx = env.ods().join("_manifests");
    std::fs::create_dir_all(&idx).unwrap();
    std::fs::write(idx.join("0001.json"), index_line(&env, &f0)).unwrap();
    let out = env.run_once();
    assert!(out.status.success(), "{}", output_text(&out));
    let d = diff_tables(
        &expected_tables(&env.ods(), &[f1.clone(), unlisted.clone()]),
        &actual_tables(&env.sink()),
    );
    assert!(d.is_empty(), "{d:?}");

    // An index naming file 1 and a file not there yet.
    let ghost = env.ods().join("dt=2026-11-20/hour=03/part-000009.parquet");
    let ghost_line = "{\"path\": \"dt=2026-11-20/hour=03/part-000009.parquet\", \"size\": 5}\n";
    std::fs::write(idx.join("0002.json"), index_line(&env, &f1) + ghost_line).unwrap();
    let out = env.run_once();
    let text = output_text(&out);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("dt=2026-11-20/hour=03/part-000009.parquet: listed in index _manifests/0002.json but missing"),
        "{text}"
    );
    let d = diff_tables(
        &expected_tables(&env.ods(), std::slice::from_ref(&unlisted)),
        &actual_tables(&env.sink()),
    );
    assert!(d.is_empty(), "{d:?}");

    // It lands (with the size the index says): read once, nothing twice.
    let real = env.add_file(3, 200);
    std::fs::rename(&real, &ghost).unwrap();
    std::fs::write(
        idx.join("0002.json"),
        index_line(&env, &f1) + &index_line(&env, &ghost),
    )
    .unwrap();
    let out = env.run_once();
    assert!(out.status.success(), "{}", output_text(&out));
    let d = diff_tables(
        &expected_tables(&env.ods(), &[unlisted]),
        &actual_tables(&env.sink()),
    );
    assert!(d.is_empty(), "{d:?}");
}
