//! The output is readable by another engine: Apache DataFusion (its Python
//! package, installed by .ci/run) registers a table as a Hive-partitioned
//! listing table and must see the same counts and partition values.

use crate::support::*;
use std::process::Command;

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
    let out = Command::new("python3")
        .arg("-c")
        .arg(&script)
        .output()
        .expect("python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "python datafusion failed (is `pip install datafusion pyarrow` done? .ci/run does it):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(&format!("TOTAL {want_click}")), "{stdout}");
    let parts: Vec<&str> = stdout.lines().filter(|l| l.starts_with("PART")).collect();
    assert_eq!(parts.len(), 3, "{stdout}");
    for (i, p) in parts.iter().enumerate() {
        assert!(p.starts_with(&format!("PART 2026-11-20 {i:02} ")), "{p}");
    }
}
