//! The classic scenarios of `sluice bench`: their rules and dimensions
//! over the demo generator's events. Writes only the dimension files it is
//! asked for.

use anyhow::Result;
use std::path::Path;
use std::sync::Arc;

/// Hour partitions of the demo data.
pub const HOURS: u32 = 5;

/// All 200 spmid values the generator produces.
fn spmids() -> Vec<String> {
    let pages = [
        "home", "feed", "detail", "search", "live", "mall", "ads", "me", "msg", "video",
    ];
    let kinds = ["card", "banner", "list", "button"];
    let mut v = Vec::new();
    for p in pages {
        for k in kinds {
            for i in 0..5 {
                v.push(format!("{p}.{k}.{i}"));
            }
        }
    }
    v
}

fn in_list(vals: &[String]) -> String {
    vals.iter()
        .map(|v| format!("'{v}'"))
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn rules_for(scenario: &str) -> Vec<(String, String)> {
    let cols = "event_id, event_time, mid, user_id, event_type, app_source, spmid, platform, props, dt, hour";
    let rule = |name: String, cond: String| {
        let sql = format!(
            "CREATE TABLE {name} PARTITIONED BY (dt, hour)\nAS SELECT {cols}\nFROM ods_events\nWHERE {cond};\n"
        );
        (name, sql)
    };
    let by_day = |name: String, cond: String| {
        let sql = format!(
            "CREATE TABLE {name} PARTITIONED BY (dt)\nAS SELECT {cols}\nFROM ods_events\nWHERE {cond};\n"
        );
        (name, sql)
    };
    let s = spmids();
    match scenario {
        "uniform10" => s
            .chunks(20)
            .enumerate()
            .map(|(i, c)| by_day(format!("t{i:04}"), format!("spmid IN ({})", in_list(c))))
            .collect(),
        "skew90" => {
            let (hot, rest) = s.split_at(180);
            let mut v = vec![by_day(
                "t_hot".into(),
                format!("spmid IN ({})", in_list(hot)),
            )];
            v.extend(
                rest.chunks(2)
                    .enumerate()
                    .map(|(i, c)| by_day(format!("t{i:04}"), format!("spmid IN ({})", in_list(c)))),
            );
            v
        }
        "rewrite" | "rewrite_same" | "read" => {
            vec![(
                "t_all".into(),
                format!(
                    "CREATE TABLE t_all PARTITIONED BY (dt, hour)\nAS SELECT {cols}\nFROM ods_events;\n"
                ),
            )]
        }
        "part10" => s
            .chunks(20)
            .enumerate()
            .map(|(i, c)| rule(format!("t{i:04}"), format!("spmid IN ({})", in_list(c))))
            .collect(),
        "part100" | "part100_dim100k" | "part100_dim1m" => s
            .chunks(2)
            .enumerate()
            .map(|(i, c)| rule(format!("t{i:04}"), format!("spmid IN ({})", in_list(c))))
            .collect(),
        "part1000" | "part1000_ckpt" => {
            let mut v = Vec::new();
            for (i, sp) in s.iter().enumerate() {
                for h in 0..HOURS {
                    v.push(rule(
                        format!("t{:04}", i * HOURS as usize + h as usize),
                        format!("spmid = '{sp}' AND hour = '{h:02}'"),
                    ));
                }
            }
            v
        }
        "overlap100" => (0..100)
            .map(|i| {
                let vals: Vec<String> = (0..6).map(|k| s[(2 * i + k) % s.len()].clone()).collect();
                rule(format!("t{i:04}"), format!("spmid IN ({})", in_list(&vals)))
            })
            .collect(),
        _ => vec![],
    }
}

/// Rows of a scenario's dimension (0: none).
pub fn dimension_rows(scenario: &str) -> usize {
    match scenario {
        "part100_dim100k" => 100_000,
        "part100_dim1m" => 1_000_000,
        _ => 0,
    }
}

/// A dimension of `rows` rows keyed on spmid: the generator's 200 values
/// plus filler keys, with three string columns.
pub fn write_dimension(path: &Path, rows: usize) -> Result<()> {
    use arrow::array::{ArrayRef, RecordBatch, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    let mut keys = spmids();
    keys.extend((keys.len()..rows).map(|i| format!("filler.{i:08}")));
    let col = |f: &dyn Fn(usize) -> String| -> ArrayRef {
        Arc::new(StringArray::from_iter_values((0..rows).map(f)))
    };
    let schema = Arc::new(Schema::new(
        ["spmid", "dept", "business", "owner"]
            .map(|n| Field::new(n, DataType::Utf8, false))
            .to_vec(),
    ));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from(keys)),
            col(&|i| format!("dept_{}", i % 40)),
            col(&|i| format!("business_{}", i % 12)),
            col(&|i| format!("owner_{}@example.com", i % 5000)),
        ],
    )?;
    let tmp = path.with_extension("tmp");
    let mut w = parquet::arrow::ArrowWriter::try_new(std::fs::File::create(&tmp)?, schema, None)?;
    w.write(&batch)?;
    w.close()?;
    std::fs::rename(tmp, path)?;
    Ok(())
}
