//! The output is readable by another engine: Apache DataFusion (its Python
//! package) registers a table as a Hive-partitioned listing table and must
//! see the same counts and partition values. The test brings its own
//! Python environment (see [`python_with_datafusion`]), so `cargo test`
//! needs nothing but `python3` and a way to PyPI the first time.

use crate::support::*;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Whether `python` imports DataFusion's and Arrow's packages.
fn has_datafusion(python: &Path) -> bool {
    Command::new(python)
        .args(["-c", "import datafusion, pyarrow"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Runs `cmd`; its output when it fails.
fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    Err(format!(
        "{cmd:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    ))
}

/// A Python with `datafusion` and `pyarrow`: a virtual environment of the
/// tests' own, `<target dir>/python-datafusion`, made with `python3 -m
/// venv` and filled with `pip install datafusion pyarrow` the first time,
/// reused after. A lock file keeps two test processes from building it at
/// once. Falls back to `python3` itself when that has both packages and
/// the environment cannot be built (offline).
fn python_with_datafusion() -> PathBuf {
    // <target>/debug/sluice -> <target>
    let bin = Path::new(bin());
    let target = bin
        .parent()
        .and_then(Path::parent)
        .unwrap_or_else(|| panic!("no target dir above {}", bin.display()));
    let venv = target.join("python-datafusion");
    let python = venv.join("bin").join("python");
    let lock = std::fs::File::create(target.join("python-datafusion.lock")).unwrap();
    lock.lock().unwrap();
    if has_datafusion(&python) {
        return python;
    }
    let built = (|| {
        let _ = std::fs::remove_dir_all(&venv);
        run(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
        run(Command::new(&python).args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "datafusion",
            "pyarrow",
        ]))
    })();
    match built {
        Ok(()) if has_datafusion(&python) => python,
        _ if has_datafusion(Path::new("python3")) => PathBuf::from("python3"),
        Ok(()) => panic!(
            "pip installed datafusion and pyarrow into {}, but they do not import",
            venv.display()
        ),
        Err(e) => panic!(
            "cannot build the Python environment of this test in {}: {e}",
            venv.display()
        ),
    }
}

/// Runs `script` with [`python_with_datafusion`]; its stdout (it must
/// succeed).
pub(crate) fn run_python(script: &str) -> String {
    let out = Command::new(python_with_datafusion())
        .arg("-c")
        .arg(script)
        .output()
        .expect("python");
    assert!(
        out.status.success(),
        "python failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn datafusion_reads_a_table_as_a_hive_partitioned_listing_table() {
    let mut env = Env::new("");
    for h in 0..3 {
        env.add_file(h, 1500);
    }
    assert!(env.run_once().status.success());
    let expected = expected_tables(&env.ods(), &[]);
    let want_click = expected["t_click"].len();
    let script = format!(
        r#"
import datafusion, pyarrow as pa
ctx = datafusion.SessionContext()
ctx.register_parquet("t", "{}", table_partition_cols=[("dt", pa.string()), ("hour", pa.string())])
total = ctx.sql("select count(*) as n from t").to_pylist()[0]["n"]
parts = ctx.sql("select dt, hour, count(*) as n from t group by dt, hour order by hour").to_pylist()
print("TOTAL", total)
for p in parts: print("PART", p["dt"], p["hour"], p["n"])
"#,
        env.sink().join("t_click").display()
    );
    let stdout = run_python(&script);
    assert!(stdout.contains(&format!("TOTAL {want_click}")), "{stdout}");
    let parts: Vec<&str> = stdout.lines().filter(|l| l.starts_with("PART")).collect();
    assert_eq!(parts.len(), 3, "{stdout}");
    for (i, p) in parts.iter().enumerate() {
        assert!(p.starts_with(&format!("PART 2026-11-20 {i:02} ")), "{p}");
    }
}
