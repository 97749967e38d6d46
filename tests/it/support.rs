//! A fixture: a temporary deployment (ODS dir, rules, config, state, sink)
//! and independent ways to compute what each table must hold.

use arrow::array::{Array, AsArray, RecordBatch};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_sluice")
}

pub struct Env {
    pub dir: tempfile::TempDir,
    next_file: u64,
    /// Environment variables of every command (an S3 server's keys).
    pub vars: Vec<(&'static str, String)>,
}

/// Rules used by the crash and quarantine tests, with an independent Rust
/// version of each (over event_type, app_source, hour) to compute expectations.
pub const RULES: [(&str, &str); 5] = [
    (
        "t_click",
        "CREATE TABLE t_click PARTITIONED BY (dt, hour)\nAS SELECT event_id, mid, dt, hour FROM ods_events\nWHERE event_type = 'click';\n",
    ),
    (
        "t_android",
        "CREATE TABLE t_android PARTITIONED BY (dt)\nAS SELECT event_id, event_type, dt FROM ods_events\nWHERE app_source = 'android';\n",
    ),
    (
        "t_view_ios",
        "CREATE TABLE t_view_ios\nAS SELECT event_id, upper(platform) AS platform FROM ods_events\nWHERE event_type = 'view' AND app_source = 'ios';\n",
    ),
    (
        "t_all",
        "CREATE TABLE t_all PARTITIONED BY (hour)\nAS SELECT event_id, event_type, hour FROM ods_events;\n",
    ),
    (
        "t_dept",
        "CREATE TABLE t_dept PARTITIONED BY (dept)\nAS SELECT event_id, spmid, owner, dept FROM ods_events\nWHERE dept IS NOT NULL;\n",
    ),
];

/// The test dimension, written independently of the demo's: the department
/// of an spmid is its page, for pages starting with a letter up to `m`
/// (other pages have no row, so their events stay unmatched).
pub fn test_dept(spmid: &str) -> Option<String> {
    let page = spmid.split('.').next().unwrap_or("");
    (page.as_bytes().first().is_some_and(|c| *c <= b'm')).then(|| format!("d_{page}"))
}

/// `spmid,dept,owner` rows for every spmid the generator emits, with
/// departments from `dept`.
pub fn dimension_csv(dept: impl Fn(&str) -> Option<String>) -> String {
    let mut s = String::from("spmid,dept,owner\n");
    for spm in sluice::demo::all_spmids() {
        if let Some(d) = dept(&spm) {
            s.push_str(&format!("{spm},{d},owner-of-{d}\n"));
        }
    }
    s
}

const DIMENSION_CONFIG: &str = r#"
[[dimension]]
name = "dim_spmid"
path = "dim/spmid.csv"
key = "spmid"
source_key = "spmid"
columns = ["dept", "owner"]
poll_interval = "100ms"
"#;

/// Whether `table`'s rule takes a row (an independent Rust version of RULES).
pub fn rule_selects(table: &str, event_type: &str, app: &str, spmid: &str) -> bool {
    match table {
        "t_dept" => test_dept(spmid).is_some(),
        "t_click" => event_type == "click",
        "t_android" => app == "android",
        "t_view_ios" => event_type == "view" && app == "ios",
        "t_all" => true,
        _ => false,
    }
}

impl Env {
    pub fn new(extra_config: &str) -> Env {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("ods")).unwrap();
        std::fs::create_dir_all(dir.path().join("rules")).unwrap();
        for (name, sql) in RULES {
            std::fs::write(dir.path().join("rules").join(format!("{name}.sql")), sql).unwrap();
        }
        std::fs::create_dir_all(dir.path().join("dim")).unwrap();
        std::fs::write(dir.path().join("dim/spmid.csv"), dimension_csv(test_dept)).unwrap();
        let cfg = format!(
            r#"version = 1
[source]
name = "ods_events"
root = "ods"
visibility = "settled"
min_age = "0s"
scan_interval = "100ms"
[state]
dir = "state"
[sink]
root = "dwd"
checkpoint_interval = "300ms"
# Files stay open over about three checkpoints, then become visible.
max_file_age = "1s"
row_group_rows = 1000
[rules]
dir = "rules"
[read]
readers = 2
batch_rows = 256
split_size = "16KiB"
{DIMENSION_CONFIG}
[http]
enabled = false
{extra_config}"#
        );
        std::fs::write(dir.path().join("sluice.toml"), cfg).unwrap();
        Env {
            dir,
            next_file: 0,
            vars: Vec::new(),
        }
    }

    /// Serves HTTP on a free loopback port instead of disabling it.
    pub fn with_http(self) -> Env {
        let cfg = std::fs::read_to_string(self.config()).unwrap();
        std::fs::write(
            self.config(),
            cfg.replace(
                "[http]\nenabled = false",
                "[http]\nlisten = \"127.0.0.1:0\"",
            ),
        )
        .unwrap();
        self
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
    pub fn config(&self) -> PathBuf {
        self.path().join("sluice.toml")
    }
    pub fn ods(&self) -> PathBuf {
        self.path().join("ods")
    }
    pub fn sink(&self) -> PathBuf {
        self.path().join("dwd")
    }

    /// Adds a good event file in hour partition `hour` of 2026-11-20
    /// (producer-style rename).
    pub fn add_file(&mut self, hour: u32, rows: usize) -> PathBuf {
        self.add_file_on(("2026-11-20", sluice::demo::DAY_START_MS), hour, rows)
    }

    /// Adds a good event file in partition `dt=<day.0>/hour=<hour>`; `day.1`
    /// is the day's start in UTC ms (for the event times).
    pub fn add_file_on(&mut self, day: (&str, i64), hour: u32, rows: usize) -> PathBuf {
        let id = self.next_file;
        self.next_file += 1;
        let p = sluice::demo::file_path(&self.ods(), day.0, hour, id);
        sluice::demo::write_event_file(&p, id, rows, 500, day.1 + hour as i64 * 3_600_000).unwrap();
        p
    }

    /// Adds an event file in hour partition `hour` of 2026-11-20 whose
    /// columns `change` rewrites (a producer whose schema changed).
    pub fn add_file_with(
        &mut self,
        hour: u32,
        rows: usize,
        change: impl Fn(RecordBatch) -> RecordBatch,
    ) -> PathBuf {
        let id = self.next_file;
        self.next_file += 1;
        let p = sluice::demo::file_path(&self.ods(), "2026-11-20", hour, id);
        let start = sluice::demo::DAY_START_MS + hour as i64 * 3_600_000;
        let batch = change(sluice::demo::events(id, 0, rows, start));
        write_parquet(&p, &batch);
        p
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(bin());
        c.args(args)
            .current_dir(self.path())
            .env("RUST_LOG", "info")
            .env_remove("SLUICE_CRASH_AT");
        for (k, v) in &self.vars {
            c.env(k, v);
        }
        c
    }

    /// Starts the daemon with stderr captured.
    pub fn spawn_daemon(&self, crash_at: Option<&str>) -> Daemon {
        let mut c = self.cmd(&["run", "--config", self.config().to_str().unwrap()]);
        if let Some(at) = crash_at {
            c.env("SLUICE_CRASH_AT", at);
        }
        Daemon::new(
            c.stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
        )
    }

    /// What `sluice state show` prints for this environment's config.
    pub fn state_show(&self) -> String {
        let out = self
            .cmd(&["state", "show", "--config", self.config().to_str().unwrap()])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn run_once(&self) -> std::process::Output {
        self.cmd(&["run", "--config", self.config().to_str().unwrap(), "--once"])
            .output()
            .unwrap()
    }
}

/// Reads every Parquet file under `dir` (recursively) that a reader of the
/// output would see (no hidden segment). Returns (relative path, batches).
pub fn visible_files(dir: &Path, skip: &[PathBuf]) -> Vec<(String, Vec<RecordBatch>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd {
            let p = e.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            if name.starts_with('.') || name.starts_with('_') {
                continue;
            }
            if p.is_dir() {
                stack.push(p);
            } else if !skip.contains(&p) {
                let rel = p.strip_prefix(dir).unwrap().to_string_lossy().to_string();
                let f = std::fs::File::open(&p).unwrap();
                let reader = ParquetRecordBatchReaderBuilder::try_new(f)
                    .unwrap_or_else(|e| panic!("{rel} is not a complete parquet file: {e}"))
                    .build()
                    .unwrap();
                let batches: Vec<RecordBatch> = reader.map(|b| b.unwrap()).collect();
                out.push((rel, batches));
            }
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// event_id -> count, per table, from the sink.
pub fn actual_tables(sink: &Path) -> BTreeMap<String, BTreeMap<String, u32>> {
    let mut out: BTreeMap<String, BTreeMap<String, u32>> = BTreeMap::new();
    for (rel, batches) in visible_files(sink, &[]) {
        let table = rel.split('/').next().unwrap().to_string();
        let t = out.entry(table).or_default();
        for b in batches {
            let ids = b.column_by_name("event_id").unwrap().as_string::<i32>();
            for i in 0..ids.len() {
                *t.entry(ids.value(i).to_string()).or_default() += 1;
            }
        }
    }
    out
}

/// event_id -> 1, per table, computed from the input files without sluice's rule engine.
pub fn expected_tables(ods: &Path, skip: &[PathBuf]) -> BTreeMap<String, BTreeMap<String, u32>> {
    let mut out: BTreeMap<String, BTreeMap<String, u32>> = BTreeMap::new();
    for (_, batches) in visible_files(ods, skip) {
        for b in batches {
            let ids = b.column_by_name("event_id").unwrap().as_string::<i32>();
            let types = b.column_by_name("event_type").unwrap().as_string::<i32>();
            let apps = b.column_by_name("app_source").unwrap().as_string::<i32>();
            let spms = b.column_by_name("spmid").unwrap().as_string::<i32>();
            for i in 0..ids.len() {
                for (table, _) in RULES {
                    if rule_selects(table, types.value(i), apps.value(i), spms.value(i)) {
                        *out.entry(table.to_string())
                            .or_default()
                            .entry(ids.value(i).to_string())
                            .or_default() += 1;
                    }
                }
            }
        }
    }
    out
}

/// Compares per table; returns a readable list of differences.
pub fn diff_tables(
    expected: &BTreeMap<String, BTreeMap<String, u32>>,
    actual: &BTreeMap<String, BTreeMap<String, u32>>,
) -> Vec<String> {
    let mut d = Vec::new();
    let empty = BTreeMap::new();
    for (table, want) in expected {
        let got = actual.get(table).unwrap_or(&empty);
        let missing = want.keys().filter(|k| !got.contains_key(*k)).count();
        let dup = got.values().filter(|c| **c > 1).count();
        let extra = got.keys().filter(|k| !want.contains_key(*k)).count();
        if missing + dup + extra > 0 {
            d.push(format!(
                "{table}: {missing} missing, {dup} duplicated, {extra} unexpected (of {} expected)",
                want.len()
            ));
        }
    }
    for t in actual.keys() {
        if !expected.contains_key(t) {
            d.push(format!("unexpected table {t}"));
        }
    }
    d
}

/// Files and folders left under the sink's staging folder: none once an
/// epoch has committed (its folder goes with it).
pub fn staged_files(sink: &Path) -> usize {
    let staging = sink.join(".sluice-staging");
    let mut n = 0;
    let mut stack = vec![staging];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd {
            let p = e.unwrap().path();
            n += 1;
            if p.is_dir() {
                stack.push(p)
            }
        }
    }
    n
}

/// A spawned `sluice` process, SIGKILLed and reaped when dropped while it
/// still runs: a test that fails mid-way leaves no daemon behind.
pub struct Daemon(Option<Child>);

impl Daemon {
    pub fn new(child: Child) -> Daemon {
        Daemon(Some(child))
    }

    /// The process, no longer killed on drop.
    pub fn into_child(mut self) -> Child {
        self.0
            .take()
            .expect("a daemon holds its child until this call")
    }
}

impl std::ops::Deref for Daemon {
    type Target = Child;
    fn deref(&self) -> &Child {
        self.0
            .as_ref()
            .expect("a daemon holds its child until into_child")
    }
}

impl std::ops::DerefMut for Daemon {
    fn deref_mut(&mut self) -> &mut Child {
        self.0
            .as_mut()
            .expect("a daemon holds its child until into_child")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(c) = &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Starts `cmd` with its stderr delivered line by line on a channel.
pub fn spawn_with_log(
    mut cmd: std::process::Command,
) -> (Daemon, std::sync::mpsc::Receiver<String>) {
    let mut child = cmd.stderr(std::process::Stdio::piped()).spawn().unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    (Daemon::new(child), rx)
}

/// Starts the daemon on `env` and waits until it has finished its first
/// source file; returns it, its log lines and the log read so far.
pub fn daemon_past_first_file(env: &Env) -> (Daemon, std::sync::mpsc::Receiver<String>, String) {
    let (child, rx) = spawn_with_log(env.cmd(&["run", "--config", env.config().to_str().unwrap()]));
    let mut log = String::new();
    wait_log(&rx, &mut log, 60, "files_done=1");
    (child, rx, log)
}

/// Reads log lines into `log` until it contains `what`; panics after `secs`.
pub fn wait_log(rx: &std::sync::mpsc::Receiver<String>, log: &mut String, secs: u64, what: &str) {
    let t0 = Instant::now();
    while !log.contains(what) {
        assert!(
            t0.elapsed() < Duration::from_secs(secs),
            "never logged {what:?}:\n{log}"
        );
        if let Ok(l) = rx.recv_timeout(Duration::from_millis(100)) {
            log.push_str(&l);
            log.push('\n');
        }
    }
}

/// Waits for the daemon's "HTTP ... address=HOST:PORT" log line; returns the address.
pub fn wait_http_addr(rx: &std::sync::mpsc::Receiver<String>, log: &mut String) -> String {
    wait_log(rx, log, 60, "address=");
    log.split("address=")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap()
        .to_string()
}

/// Yesterday (UTC) by the wall clock: (`YYYY-MM-DD`, its start in ms).
pub fn yesterday() -> (String, i64) {
    const DAY_MS: i64 = 86_400_000;
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let start_ms = (now_ms.div_euclid(DAY_MS) - 1) * DAY_MS;
    let at = std::time::UNIX_EPOCH + Duration::from_millis(start_ms as u64);
    let day = humantime::format_rfc3339_seconds(at).to_string()[..10].to_string();
    (day, start_ms)
}

/// Sets a file's modification time (discovery decides on mtimes).
pub fn set_mtime(p: &Path, t: std::time::SystemTime) {
    std::fs::File::options()
        .write(true)
        .open(p)
        .unwrap()
        .set_modified(t)
        .unwrap();
}

/// A command's exit code, stdout and stderr, for assertion messages.
pub fn output_text(o: &std::process::Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}--- stderr\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Writes `batch` as a Parquet file like a producer (`.inprogress`, then
/// rename), in row groups of 500 rows.
pub fn write_parquet(path: &Path, batch: &RecordBatch) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let tmp = PathBuf::from(format!("{}.inprogress", path.display()));
    let props = parquet::file::properties::WriterProperties::builder()
        .set_max_row_group_row_count(Some(500))
        .build();
    let f = std::fs::File::create(&tmp).unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(f, batch.schema(), Some(props)).unwrap();
    w.write(batch).unwrap();
    w.close().unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// `batch` without the columns `drop` and with `add` appended.
pub fn reshape(
    batch: &RecordBatch,
    drop: &[&str],
    add: Vec<(&str, arrow::array::ArrayRef)>,
) -> RecordBatch {
    let schema = batch.schema();
    let mut fields = Vec::new();
    let mut cols = Vec::new();
    for (f, c) in schema.fields().iter().zip(batch.columns()) {
        if !drop.contains(&f.name().as_str()) {
            fields.push(f.as_ref().clone());
            cols.push(c.clone());
        }
    }
    for (name, c) in add {
        fields.push(arrow::datatypes::Field::new(
            name,
            c.data_type().clone(),
            true,
        ));
        cols.push(c);
    }
    RecordBatch::try_new(
        std::sync::Arc::new(arrow::datatypes::Schema::new(fields)),
        cols,
    )
    .unwrap()
}

/// `nc-<event_id>` for each row: the value the evolved files carry in `new_col`.
pub fn new_col_of(batch: &RecordBatch) -> arrow::array::ArrayRef {
    let ids = batch.column_by_name("event_id").unwrap().as_string::<i32>();
    std::sync::Arc::new(arrow::array::StringArray::from_iter_values(
        ids.iter().map(|i| format!("nc-{}", i.unwrap_or_default())),
    ))
}
