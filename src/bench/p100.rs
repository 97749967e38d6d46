//! The P100 workload of `sluice bench`: a Rust equivalent of the shared
//! peers generator (`gen_ods.py`), with the same column shapes,
//! cardinalities and distributions, and its 100 rules verbatim
//! (`p100_rules.json`, the generator's `rules.json` for seed 7). Owns the
//! data folder it is given; writes nothing else.
//!
//! ```text
//! <dir>/ods/dt=YYYY-MM-DD/hour=HH/part-NNNNN.parquet   250k rows a file, 4 files an hour, zstd
//!                                                      (fewer, smaller files with fewer rows an hour)
//! <dir>/dim_spmid.parquet                              spmid -> dept, business, owner (~95% of spmids)
//! <dir>/rules.json                                     100 tables: name, where, columns
//! ```
//!
//! The values are not byte-identical to the Python generator's (another
//! random generator), but every column draws from the same value sets with
//! the same weights, so the rules select the same shares of rows.

use anyhow::{Context, Result};
use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringBuilder, TimestampMillisecondArray};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;

/// The 100 rules of the shared `rules.json`.
pub const RULES_JSON: &str = include_str!("p100_rules.json");

const EVENT_TYPES: [&str; 8] = [
    "show",
    "pv",
    "exposure_end",
    "click",
    "play",
    "like",
    "share",
    "comment",
];
const EVENT_P: [f64; 8] = [0.34, 0.20, 0.18, 0.13, 0.08, 0.04, 0.02, 0.01];
/// App sources and their platform.
const APP_SOURCES: [(&str, &str); 20] = [
    ("android", "android"),
    ("iphone", "ios"),
    ("web", "web"),
    ("ipad", "ios"),
    ("android_hd", "android"),
    ("h5", "web"),
    ("harmony", "harmony"),
    ("pc_client", "pc"),
    ("mini_program", "web"),
    ("tv", "tv"),
    ("android_i", "android"),
    ("iphone_i", "ios"),
    ("car", "other"),
    ("android_b", "android"),
    ("iphone_b", "ios"),
    ("watch", "ios"),
    ("vr", "other"),
    ("ott", "tv"),
    ("partner_sdk", "other"),
    ("unknown", "other"),
];
const DEPTS: [&str; 12] = [
    "main_site",
    "live",
    "ogv",
    "game",
    "ecommerce",
    "ads",
    "search",
    "community",
    "music",
    "education",
    "overseas",
    "infra",
];
const N_SPMID: usize = 2000;
const N_MID: usize = 300_000;
const N_UA: usize = 3000;
const ROWS_PER_FILE: usize = 250_000;
const FILES_PER_HOUR: usize = 4;
/// The peers' generator: four 250k-row files an hour.
pub const ROWS_PER_HOUR: usize = ROWS_PER_FILE * FILES_PER_HOUR;
/// 2026-11-20 00:00 UTC, in days since the epoch.
const START_DAY: i64 = 20_777;
const SEED: u64 = 7;

/// splitmix64: small, fast, and deterministic for a seed.
struct Rng(u64);

impl Rng {
    fn new(seed: u64, stream: u64) -> Rng {
        let mut r = Rng(seed ^ stream.wrapping_mul(0xD6E8_FEB8_6659_FD93));
        r.next();
        r
    }
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Uniform in `lo..hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo).max(1)
    }
}

/// Weighted choice by inverse CDF.
struct Weights(Vec<f64>);

impl Weights {
    fn new(w: impl IntoIterator<Item = f64>) -> Weights {
        let mut acc = 0.0;
        let mut c: Vec<f64> = w
            .into_iter()
            .map(|x| {
                acc += x;
                acc
            })
            .collect();
        for v in &mut c {
            *v /= acc;
        }
        Weights(c)
    }
    fn zipf(n: usize, s: f64) -> Weights {
        Weights::new((1..=n).map(|k| 1.0 / (k as f64).powf(s)))
    }
    fn pick(&self, rng: &mut Rng) -> usize {
        let u = rng.unit();
        self.0
            .partition_point(|&c| c < u)
            .min(self.0.len().saturating_sub(1))
    }
}

/// Values shared by every file.
struct Pools {
    /// By popularity rank (rank 0 most frequent).
    spmids: Vec<String>,
    mids: Vec<String>,
    buvids: Vec<String>,
    uas: Vec<String>,
}

fn pools(rng: &mut Rng) -> Pools {
    let apps = [
        "main", "live", "ogv", "game", "mall", "search", "dynamic", "music", "cheese", "intl",
    ];
    let pages = [
        "homepage",
        "ugc-video-detail",
        "space",
        "search-result",
        "channel",
        "story",
        "pgc-video-detail",
        "live-room",
        "mall-detail",
        "dynamic",
        "playlist",
        "comment",
        "history",
        "my",
        "hot",
        "rank",
    ];
    let mut names = Vec::new();
    for a in apps {
        for p in pages {
            for m in 0..4 {
                for k in 0..4 {
                    names.push(format!("{a}.{p}.{m}.{k}"));
                }
            }
        }
    }
    // names[0] plus N_SPMID - 1 others, then shuffled into popularity order.
    let mut rest: Vec<String> = names.split_off(1);
    shuffle(&mut rest, rng);
    rest.truncate(N_SPMID - 1);
    let mut spmids = names;
    spmids.append(&mut rest);
    shuffle(&mut spmids, rng);
    let mids = (0..N_MID)
        .map(|_| format!("{:016x}", rng.next() >> 1))
        .collect();
    let buvids = (0..N_MID)
        .map(|_| format!("XY{:016X}{:016X}", rng.next() >> 1, rng.next() >> 1))
        .collect();
    let models = [
        "M2012K11AC",
        "SM-G9910",
        "V2134A",
        "PGT-AN10",
        "22081212C",
        "LIO-AN00",
    ];
    let builds = ["TP1A.220624.014", "SKQ1.211006.001", "UKQ1.230804.001"];
    let channels = ["master", "huawei", "xiaomi", "oppo", "vivo", "yingyongbao"];
    let uas = (0..N_UA)
        .map(|_| {
            let m = models[rng.range(0, 6) as usize];
            let b = builds[rng.range(0, 3) as usize];
            let c = channels[rng.range(0, 6) as usize];
            format!(
                "Mozilla/5.0 (Linux; Android {}; {m} Build/{b}) AppleWebKit/537.36 (KHTML, like Gecko) \
                 Version/4.0 Chrome/{}.0.{}.{} Mobile Safari/537.36 os/android model/{m} mobi_app/android \
                 build/{} channel/{c} innerVer/{} osVer/{} network/2",
                rng.range(8, 15),
                rng.range(90, 130),
                rng.range(1000, 9999),
                rng.range(10, 199),
                rng.range(7_000_000, 8_200_000),
                rng.range(7_000_000, 8_200_000),
                rng.range(8, 15),
            )
        })
        .collect();
    Pools {
        spmids,
        mids,
        buvids,
        uas,
    }
}

fn shuffle<T>(v: &mut [T], rng: &mut Rng) {
    for i in (1..v.len()).rev() {
        let j = rng.range(0, i as u64 + 1) as usize;
        v.swap(i, j);
    }
}

/// `YYYY-MM-DD` of a day number (days since 1970-01-01).
fn civil(days: i64) -> String {
    // Howard Hinnant's days_from_civil, inverted.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

pub fn event_schema() -> Arc<Schema> {
    let s = |n: &str| Field::new(n, DataType::Utf8, true);
    Arc::new(Schema::new(vec![
        Field::new("event_id", DataType::Int64, true),
        Field::new(
            "event_time",
            DataType::Timestamp(TimeUnit::Millisecond, None),
            true,
        ),
        s("mid"),
        s("buvid"),
        s("event_type"),
        s("app_source"),
        s("spmid"),
        s("platform"),
        s("ip"),
        s("ua"),
        s("props"),
    ]))
}

/// One file's rows, starting at hour `hour_ms`.
fn file_batch(
    p: &Pools,
    fidx: usize,
    rows: usize,
    first_id: i64,
    hour_ms: i64,
) -> Result<RecordBatch> {
    let mut rng = Rng::new(SEED, fidx as u64 + 1);
    let ev_w = Weights::new(EVENT_P);
    let app_w = Weights::zipf(APP_SOURCES.len(), 1.3);
    let sp_w = Weights::zipf(N_SPMID, 1.05);
    let mid_w = Weights::zipf(N_MID, 0.8);
    let networks = Weights::new([0.6, 0.2, 0.15, 0.05]);
    let net = ["wifi", "4g", "5g", "ethernet"];
    let mut times: Vec<i64> = (0..rows)
        .map(|_| hour_ms + rng.range(0, 3_600_000) as i64)
        .collect();
    times.sort_unstable();
    let cap = |b: usize| StringBuilder::with_capacity(rows, rows * b);
    let (mut mid, mut buvid, mut et, mut app) = (cap(16), cap(34), cap(8), cap(8));
    let (mut sp, mut plat, mut ip, mut ua, mut props) =
        (cap(24), cap(7), cap(15), cap(270), cap(190));
    let mut s = String::new();
    for _ in 0..rows {
        et.append_value(EVENT_TYPES[ev_w.pick(&mut rng)]);
        let (a, pl) = APP_SOURCES[app_w.pick(&mut rng)];
        app.append_value(a);
        plat.append_value(pl);
        sp.append_value(&p.spmids[sp_w.pick(&mut rng)]);
        let m = mid_w.pick(&mut rng);
        mid.append_value(&p.mids[m]);
        buvid.append_value(&p.buvids[m]);
        s.clear();
        let o: Vec<u64> = (0..4).map(|_| rng.range(1, 255)).collect();
        write!(s, "{}.{}.{}.{}", o[0], o[1], o[2], o[3])?;
        ip.append_value(&s);
        ua.append_value(&p.uas[rng.range(0, N_UA as u64) as usize]);
        s.clear();
        write!(
            s,
            "{{\"aid\":{},\"cid\":{},\"progress_ms\":{},\"from_spmid\":\"{}\",\"track_id\":\"{}\",\"network\":\"{}\",\"abtest\":\"{}\",\"session_id\":\"{}\"}}",
            rng.range(1, 1_000_000_000),
            rng.range(1, 10_000_000_000),
            rng.range(0, 3_600_000),
            p.spmids[sp_w.pick(&mut rng)],
            rng.range(100_000_000_000_000_000, 1_000_000_000_000_000_000),
            net[networks.pick(&mut rng)],
            rng.range(1000, 9999),
            rng.range(1_000_000_000_000_000, 10_000_000_000_000_000),
        )?;
        props.append_value(&s);
    }
    let cols: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(
            (0..rows as i64).map(|i| first_id + i),
        )),
        Arc::new(TimestampMillisecondArray::from(times)),
        Arc::new(mid.finish()),
        Arc::new(buvid.finish()),
        Arc::new(et.finish()),
        Arc::new(app.finish()),
        Arc::new(sp.finish()),
        Arc::new(plat.finish()),
        Arc::new(ip.finish()),
        Arc::new(ua.finish()),
        Arc::new(props.finish()),
    ];
    Ok(RecordBatch::try_new(event_schema(), cols)?)
}

fn write_parquet(path: &Path, batch: &RecordBatch) -> Result<()> {
    // As pyarrow writes them: zstd level 1, one row group, dictionaries.
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(1)?))
        .set_max_row_group_row_count(Some(1 << 20))
        .build();
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d)?;
    }
    let tmp = path.with_extension("tmp");
    let mut w = ArrowWriter::try_new(std::fs::File::create(&tmp)?, batch.schema(), Some(props))?;
    w.write(batch)?;
    w.close()?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming {}", tmp.display()))?;
    Ok(())
}

/// The dimension: ~95% of the spmids (never the 20 most popular), each
/// with a department, a business line and an owner.
fn dimension(p: &Pools, rng: &mut Rng) -> Result<RecordBatch> {
    let mut dropped = vec![false; N_SPMID];
    let mut candidates: Vec<usize> = (20..N_SPMID).collect();
    shuffle(&mut candidates, rng);
    for &i in candidates.iter().take(N_SPMID / 20) {
        dropped[i] = true;
    }
    let (mut sp, mut dept, mut bl, mut owner) = (
        StringBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
    );
    for (i, name) in p.spmids.iter().enumerate() {
        let d = rng.range(0, DEPTS.len() as u64) as usize;
        let o = rng.range(1, 300);
        if dropped[i] {
            continue;
        }
        sp.append_value(name);
        dept.append_value(DEPTS[d]);
        bl.append_value(format!("{}_bl{}", DEPTS[d], (d * 7 + i) % 5));
        owner.append_value(format!("owner_{o:03}"));
    }
    let schema = Arc::new(Schema::new(
        ["spmid", "dept", "business", "owner"]
            .map(|n| Field::new(n, DataType::Utf8, true))
            .to_vec(),
    ));
    Ok(RecordBatch::try_new(
        schema,
        vec![
            Arc::new(sp.finish()),
            Arc::new(dept.finish()),
            Arc::new(bl.finish()),
            Arc::new(owner.finish()),
        ],
    )?)
}

/// Writes `rows` input rows, `rows_per_hour` an hour (the peers write
/// [`ROWS_PER_HOUR`]; fewer spread the same rows over more hours, so more
/// table-hours and files), the dimension and the rules under `dir`, on
/// `threads` threads.
pub fn generate(dir: &Path, rows: usize, rows_per_hour: usize, threads: usize) -> Result<()> {
    let mut rng = Rng::new(SEED, 0);
    let p = pools(&mut rng);
    write_parquet(&dir.join("dim_spmid.parquet"), &dimension(&p, &mut rng)?)?;
    std::fs::write(dir.join("rules.json"), RULES_JSON)?;
    let rows_per_file = ROWS_PER_FILE.min(rows_per_hour.max(1));
    let files_per_hour = (rows_per_hour / rows_per_file).max(1);
    let files = rows.div_ceil(rows_per_file).max(1);
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|sc| -> Result<()> {
        let workers: Vec<_> = (0..threads.max(1))
            .map(|_| {
                sc.spawn(|| -> Result<()> {
                    loop {
                        let f = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        if f >= files {
                            return Ok(());
                        }
                        let first = f * rows_per_file;
                        let n = rows_per_file.min(rows - first);
                        let hour = (f / files_per_hour) as i64;
                        let day = START_DAY + hour / 24;
                        let hour_ms = (START_DAY * 24 + hour) * 3_600_000;
                        let path = dir
                            .join("ods")
                            .join(format!("dt={}", civil(day)))
                            .join(format!("hour={:02}", hour % 24))
                            .join(format!("part-{f:05}.parquet"));
                        let batch = file_batch(&p, f, n, first as i64, hour_ms)?;
                        write_parquet(&path, &batch)?;
                    }
                })
            })
            .collect();
        for w in workers {
            w.join()
                .map_err(|_| anyhow::anyhow!("generator thread panicked"))??;
        }
        Ok(())
    })
}

/// One rule of `rules.json`.
#[derive(serde::Deserialize)]
struct RuleSpec {
    name: String,
    #[serde(rename = "where")]
    cond: String,
    columns: Vec<String>,
}

/// The rule files of `rules.json`: (name, SQL), partitioned by dt, hour.
pub fn rule_files(rules_json: &str) -> Result<Vec<(String, String)>> {
    let specs: Vec<RuleSpec> = serde_json::from_str(rules_json).context("rules.json")?;
    Ok(specs
        .into_iter()
        .map(|r| {
            let sql = format!(
                "CREATE TABLE {} PARTITIONED BY (dt, hour) AS SELECT {}, dt, hour FROM ods_events WHERE {};\n",
                r.name,
                r.columns.join(", "),
                r.cond
            );
            (r.name, sql)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fewer_rows_an_hour_spread_the_rows_over_more_hours() {
        let dir = tempfile::tempdir().unwrap();
        generate(dir.path(), 2_500, 1_000, 2).unwrap();
        let day = dir.path().join("ods").join("dt=2026-11-20");
        let mut hours: Vec<(String, usize)> = std::fs::read_dir(&day)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let files = std::fs::read_dir(e.path()).unwrap().count();
                (e.file_name().to_string_lossy().into_owned(), files)
            })
            .collect();
        hours.sort();
        let want = [("hour=00", 1), ("hour=01", 1), ("hour=02", 1)];
        let want: Vec<(String, usize)> = want.iter().map(|(h, n)| (h.to_string(), *n)).collect();
        assert_eq!(hours, want);
    }

    #[test]
    fn days_print_as_dates() {
        assert_eq!(civil(START_DAY), "2026-11-20");
        assert_eq!(civil(START_DAY + 11), "2026-12-01");
        assert_eq!(civil(0), "1970-01-01");
    }

    #[test]
    fn the_rules_are_the_shared_hundred() {
        let r = rule_files(RULES_JSON).unwrap();
        assert_eq!(r.len(), 100);
        assert!(
            r[0].1
                .starts_with("CREATE TABLE t000 PARTITIONED BY (dt, hour) AS SELECT event_id,")
        );
        assert!(r[0].1.ends_with("FROM ods_events WHERE 1 = 1;\n"));
    }

    #[test]
    fn files_have_the_shapes_of_the_shared_generator() {
        let mut rng = Rng::new(SEED, 0);
        let p = pools(&mut rng);
        assert_eq!(p.spmids.len(), N_SPMID);
        let uniq: std::collections::HashSet<&String> = p.spmids.iter().collect();
        assert_eq!(uniq.len(), N_SPMID);
        let d = dimension(&p, &mut rng).unwrap();
        assert_eq!(d.num_rows(), N_SPMID - N_SPMID / 20);
        let b = file_batch(&p, 0, 20_000, 0, 0).unwrap();
        assert_eq!(b.schema(), event_schema());
        let types = arrow::array::AsArray::as_string::<i32>(b.column(4));
        let shows = types.iter().filter(|v| *v == Some("show")).count() as f64;
        assert!((shows / 20_000.0 - 0.34).abs() < 0.02, "{shows}");
        let ua = arrow::array::AsArray::as_string::<i32>(b.column(9));
        let len = ua.value_data().len() as f64 / 20_000.0;
        assert!((240.0..290.0).contains(&len), "{len}");
    }
}
