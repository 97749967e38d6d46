//! The sample ODS: a realistic user-behaviour log generator shared by
//! `sluice demo`, the integration tests and the benchmark, plus the demo's
//! example rules and config. It plays the upstream producer, so it writes
//! files the way producers do: to an `.inprogress` name, then a rename.

pub mod report;

use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub const EVENT_TYPES: [&str; 8] = [
    "click", "view", "expose", "play", "share", "like", "purchase", "search",
];
pub const APP_SOURCES: [&str; 4] = ["android", "ios", "web", "h5"];
pub const PLATFORMS: [&str; 3] = ["phone", "pad", "tv"];
const PAGES: [&str; 10] = [
    "home", "feed", "detail", "search", "live", "mall", "ads", "me", "msg", "video",
];

/// Every spmid the generator emits: `<page>.<slot>.<position>`.
pub fn all_spmids() -> Vec<String> {
    let mut out = Vec::new();
    for page in PAGES {
        for slot in ["card", "banner", "list", "button"] {
            for pos in 0..5 {
                out.push(format!("{page}.{slot}.{pos}"));
            }
        }
    }
    out
}

/// The demo dimension's (department, business line) of a page; `msg`
/// and `me` pages have no entry, so their rows stay unmatched.
pub fn page_dept(page: &str) -> Option<(&'static str, &'static str)> {
    Some(match page {
        "home" | "feed" => ("growth", "community"),
        "detail" | "video" | "live" => ("content", "video"),
        "search" => ("search", "search"),
        "mall" => ("commerce", "mall"),
        "ads" => ("ads", "advertising"),
        _ => return None,
    })
}

/// The demo dimension as CSV (`spmid,dept,business,owner`), one row per
/// spmid whose page has a department.
pub fn spmid_dimension_csv() -> String {
    let mut s = String::from("spmid,dept,business,owner\n");
    for spm in all_spmids() {
        let page = spm.split('.').next().unwrap_or("");
        if let Some((dept, business)) = page_dept(page) {
            s.push_str(&format!(
                "{spm},{dept},{business},{dept}-oncall@example.com\n"
            ));
        }
    }
    s
}

/// Deterministic PRNG (splitmix64): the same seed gives the same data everywhere.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// The columns of an ODS event file (partition keys `dt`/`hour` live in the path).
pub fn event_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("event_id", DataType::Utf8, false),
        Field::new("event_time", DataType::Int64, false),
        Field::new("mid", DataType::Utf8, false),
        Field::new("user_id", DataType::Int64, true),
        Field::new("event_type", DataType::Utf8, false),
        Field::new("app_source", DataType::Utf8, false),
        Field::new("spmid", DataType::Utf8, false),
        Field::new("platform", DataType::Utf8, false),
        Field::new("props", DataType::Utf8, true),
    ]))
}

/// `n` events of file `file_id`, with event times inside the hour starting at `hour_start_ms`.
pub fn events(file_id: u64, first_row: u64, n: usize, hour_start_ms: i64) -> RecordBatch {
    let mut rng = Rng::new(file_id.wrapping_mul(1_000_003).wrapping_add(first_row));
    let mut ids = Vec::with_capacity(n);
    let mut times = Vec::with_capacity(n);
    let mut mids = Vec::with_capacity(n);
    let mut users = Vec::with_capacity(n);
    let mut types = Vec::with_capacity(n);
    let mut apps = Vec::with_capacity(n);
    let mut spms = Vec::with_capacity(n);
    let mut plats = Vec::with_capacity(n);
    let mut props = Vec::with_capacity(n);
    for i in 0..n {
        let row = first_row + i as u64;
        ids.push(format!("e{file_id:06}-{row:08}"));
        times.push(hour_start_ms + rng.below(3_600_000) as i64);
        mids.push(format!("m{:07}", rng.below(200_000)));
        users.push(if rng.below(10) < 3 {
            None
        } else {
            Some(rng.below(5_000_000) as i64)
        });
        // Skewed like real logs: views and exposes dominate.
        let t = match rng.below(100) {
            0..=29 => 1,
            30..=54 => 2,
            55..=74 => 0,
            75..=84 => 3,
            85..=89 => 4,
            90..=94 => 5,
            95..=96 => 6,
            _ => 7,
        };
        types.push(EVENT_TYPES[t]);
        apps.push(APP_SOURCES[rng.below(4) as usize]);
        let page = PAGES[rng.below(PAGES.len() as u64) as usize];
        spms.push(format!(
            "{page}.{}.{}",
            ["card", "banner", "list", "button"][rng.below(4) as usize],
            rng.below(5)
        ));
        plats.push(PLATFORMS[rng.below(3) as usize]);
        props.push(if rng.below(20) == 0 {
            None
        } else {
            Some(format!(
                "{{\"duration_ms\":{},\"page\":\"{page}\",\"url\":\"https://m.example.com/{page}?from={}&pos={}\"}}",
                rng.below(60_000),
                APP_SOURCES[rng.below(4) as usize],
                rng.below(50)
            ))
        });
    }
    let cols: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(ids)),
        Arc::new(Int64Array::from(times)),
        Arc::new(StringArray::from(mids)),
        Arc::new(Int64Array::from(users)),
        Arc::new(StringArray::from(types)),
        Arc::new(StringArray::from(apps)),
        Arc::new(StringArray::from(spms)),
        Arc::new(StringArray::from(plats)),
        Arc::new(StringArray::from(props)),
    ];
    // The columns match the schema by construction.
    RecordBatch::try_new(event_schema(), cols)
        .unwrap_or_else(|_| RecordBatch::new_empty(event_schema()))
}

/// Writes one Parquet file of `rows` events like a producer: `<path>.inprogress`, then rename.
pub fn write_event_file(
    path: &Path,
    file_id: u64,
    rows: usize,
    row_group_rows: usize,
    hour_start_ms: i64,
) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = PathBuf::from(format!("{}.inprogress", path.display()));
    let f = std::fs::File::create(&tmp)?;
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .set_max_row_group_row_count(Some(row_group_rows.max(1)))
        .build();
    let mut w =
        ArrowWriter::try_new(f, event_schema(), Some(props)).map_err(std::io::Error::other)?;
    let mut done = 0;
    while done < rows {
        let n = (rows - done).min(8192);
        w.write(&events(file_id, done as u64, n, hour_start_ms))
            .map_err(std::io::Error::other)?;
        done += n;
    }
    w.close().map_err(std::io::Error::other)?;
    std::fs::rename(&tmp, path)
}

/// Where a generated file goes: `dt=YYYY-MM-DD/hour=HH/part-<id>.parquet`.
pub fn file_path(root: &Path, dt: &str, hour: u32, file_id: u64) -> PathBuf {
    root.join(format!("dt={dt}"))
        .join(format!("hour={hour:02}"))
        .join(format!("part-{file_id:06}.parquet"))
}

/// 2026-11-20T00:00:00Z in ms.
pub const DAY_START_MS: i64 = 1_795_132_800_000;

/// Generates `hours` hour partitions of `files_per_hour` files of `rows_per_file` rows.
/// Returns (path, rows) of every file.
pub fn generate_ods(
    root: &Path,
    hours: u32,
    files_per_hour: u32,
    rows_per_file: usize,
    row_group_rows: usize,
) -> std::io::Result<Vec<(PathBuf, usize)>> {
    let mut out = Vec::new();
    for h in 0..hours {
        for f in 0..files_per_hour {
            let id = (h * files_per_hour + f) as u64;
            let p = file_path(root, "2026-11-20", h, id);
            write_event_file(
                &p,
                id,
                rows_per_file,
                row_group_rows,
                DAY_START_MS + h as i64 * 3_600_000,
            )?;
            out.push((p, rows_per_file));
        }
    }
    Ok(out)
}

/// The demo's rules: (file name, SQL).
pub const DEMO_RULES: [(&str, &str); 11] = [
    (
        "dwd_click_android.sql",
        "-- Clicks from the Android app, by day and hour.\nCREATE TABLE dwd_click_android\nPARTITIONED BY (dt, hour)\nAS SELECT event_id, mid, event_time, spmid, dt, hour\nFROM ods_events\nWHERE event_type = 'click' AND app_source = 'android';\n",
    ),
    (
        "dwd_click_ios.sql",
        "-- Clicks from the iOS app.\nCREATE TABLE dwd_click_ios\nPARTITIONED BY (dt, hour)\nAS SELECT event_id, mid, event_time, spmid, dt, hour\nFROM ods_events\nWHERE event_type = 'click' AND app_source = 'ios';\n",
    ),
    (
        "dwd_view.sql",
        "-- Every page view, by day.\nCREATE TABLE dwd_view\nPARTITIONED BY (dt)\nAS SELECT event_id, mid, user_id, spmid, platform, dt\nFROM ods_events\nWHERE event_type = 'view';\n",
    ),
    (
        "dwd_play_web.sql",
        "-- Video plays on the web, with the play duration taken from props.\nCREATE TABLE dwd_play_web\nPARTITIONED BY (dt, hour)\nAS SELECT event_id, mid, json_get_str(props, 'duration_ms') AS duration_ms, dt, hour\nFROM ods_events\nWHERE event_type = 'play' AND app_source IN ('web', 'h5');\n",
    ),
    (
        "dwd_purchase.sql",
        "-- Purchases of logged-in users.\nCREATE TABLE dwd_purchase\nPARTITIONED BY (dt)\nAS SELECT event_id, user_id, app_source, spmid, event_time, dt\nFROM ods_events\nWHERE event_type = 'purchase' AND user_id IS NOT NULL;\n",
    ),
    (
        "dwd_search.sql",
        "-- Searches, with the page the user came from.\nCREATE TABLE dwd_search\nPARTITIONED BY (dt, hour)\nAS SELECT event_id, mid, url_param(json_get_str(props, 'url'), 'from') AS came_from, dt, hour\nFROM ods_events\nWHERE event_type = 'search';\n",
    ),
    (
        "dwd_social.sql",
        "-- Shares and likes, partitioned by type.\nCREATE TABLE dwd_social\nPARTITIONED BY (dt, event_type)\nAS SELECT event_id, mid, user_id, spmid, dt, event_type\nFROM ods_events\nWHERE event_type IN ('share', 'like');\n",
    ),
    (
        "dwd_ads_expose.sql",
        "-- Ad impressions (spm starts with ads.).\nCREATE TABLE dwd_ads_expose\nPARTITIONED BY (dt, hour)\nAS SELECT event_id, mid, spmid, hash_bucket(mid, 16) AS mid_bucket, dt, hour\nFROM ods_events\nWHERE event_type = 'expose' AND spmid LIKE 'ads.%';\n",
    ),
    (
        "dwd_tv.sql",
        "-- Everything that happens on TVs.\nCREATE TABLE dwd_tv\nPARTITIONED BY (dt)\nAS SELECT event_id, event_type, app_source, spmid, dt\nFROM ods_events\nWHERE platform = 'tv';\n",
    ),
    (
        "dwd_events_by_app.sql",
        "-- All events, one partition per day and app.\nCREATE TABLE dwd_events_by_app\nPARTITIONED BY (dt, app_source)\nAS SELECT event_id, event_type, mid, upper(platform) AS platform, dt, app_source\nFROM ods_events;\n",
    ),
    (
        "dwd_dept_events.sql",
        "-- Every event of a page owned by a department (from the dim_spmid dimension).\nCREATE TABLE dwd_dept_events\nPARTITIONED BY (dt, dept)\nAS SELECT event_id, event_type, spmid, business, owner, dt, dept\nFROM ods_events\nWHERE dept IS NOT NULL;\n",
    ),
];

/// Tests of the demo's rules (`sluice rules test`), the same as the shipped
/// `configs/rules/tests/`: (file name under `rules/tests/`, TOML).
pub const DEMO_RULE_TESTS: [(&str, &str); 5] = [
    (
        "dept_events.toml",
        r#"name = "events of pages a department owns land in dwd_dept_events"
# Dimension columns (dept, business, owner) are input columns in rule
# tests: set them the way the dim_spmid dimension would.

[[input]]
event_id = "e1"
event_type = "expose"
spmid = "ads.banner.2"
dt = "2026-11-20"
dept = "ads"
business = "advertising"
owner = "ads-oncall@example.com"

[[input]]
event_id = "e2"
event_type = "view"
spmid = "msg.list.0"       # no department: the join leaves dept NULL
dt = "2026-11-20"

[[expect.dwd_dept_events]]
event_id = "e1"
dept = "ads"
business = "advertising"
"#,
    ),
    (
        "_source.toml",
        include_str!("../../configs/rules/tests/_source.toml"),
    ),
    (
        "clicks.toml",
        include_str!("../../configs/rules/tests/clicks.toml"),
    ),
    (
        "plays_and_searches.toml",
        include_str!("../../configs/rules/tests/plays_and_searches.toml"),
    ),
    (
        "purchases_social_tv.toml",
        include_str!("../../configs/rules/tests/purchases_social_tv.toml"),
    ),
];

/// The demo config; paths are relative to the demo directory.
pub const DEMO_CONFIG: &str = r#"# sluice demo config: see configs/sluice.toml for every key.
version = 1

[source]
name = "ods_events"
root = "ods"
format = "parquet"
visibility = "settled"
min_age = "0s"

[state]
dir = "state"

[sink]
root = "dwd"
checkpoint_interval = "5s"

[rules]
dir = "rules"

[http]
enabled = false

# spmid -> department, business line, owner; reloaded when the file changes.
[[dimension]]
name = "dim_spmid"
path = "dim/spmid.csv"
key = "spmid"
source_key = "spmid"
columns = ["dept", "business", "owner"]
reload_interval = "5m"
min_rows = 10
"#;

/// Writes the demo's rules, their tests and the config into `dir`.
pub fn write_demo_setup(dir: &Path) -> std::io::Result<PathBuf> {
    let rules = dir.join("rules");
    std::fs::create_dir_all(&rules)?;
    for (name, sql) in DEMO_RULES {
        std::fs::write(rules.join(name), sql)?;
    }
    std::fs::create_dir_all(dir.join("dim"))?;
    std::fs::write(dir.join("dim/spmid.csv"), spmid_dimension_csv())?;
    let tests = rules.join("tests");
    std::fs::create_dir_all(&tests)?;
    for (name, toml) in DEMO_RULE_TESTS {
        std::fs::write(tests.join(name), toml)?;
    }
    let cfg = dir.join("sluice.toml");
    std::fs::write(&cfg, DEMO_CONFIG)?;
    Ok(cfg)
}
