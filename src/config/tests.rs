use super::*;

const GOOD: &str = r#"
version = 1
[source]
name = "ods_events"
root = "/data/ods/events"
format = "parquet"
visibility = "settled"
min_age = "30s"
[state]
dir = "/var/lib/sluice"
[sink]
root = "/data/dwd"
checkpoint_interval = "30s"
[rules]
dir = "rules"
"#;

#[test]
fn issue_example_loads() {
    let c = Config::parse(GOOD, Path::new("/etc/sluice/sluice.toml")).unwrap();
    assert_eq!(c.source.name, "ods_events");
    assert_eq!(
        c.source.visibility,
        Visibility::Settled {
            min_age: Duration::from_secs(30)
        }
    );
    assert_eq!(c.rules_dir, PathBuf::from("/etc/sluice/rules"));
    assert_eq!(c.http_listen.unwrap().to_string(), "127.0.0.1:9108");
    assert_eq!(c.http_max_connections, 64);
    assert_eq!(c.rules_on_error, OnError::ErrorTable);
    let c = Config::parse(
        &GOOD.replace("dir = \"rules\"", "dir = \"rules\"\non_error = \"drop\""),
        Path::new("/etc/sluice/sluice.toml"),
    )
    .unwrap();
    assert_eq!(c.rules_on_error, OnError::Drop);
}

#[test]
fn unknown_key_names_line_and_column() {
    let text = GOOD.replace("min_age = \"30s\"", "min_age = \"30s\"\nmin_agee = 3");
    let e = Config::parse(&text, Path::new("x.toml"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("x.toml"), "{e}");
    assert!(e.contains("line 9"), "{e}");
    assert!(e.contains("min_agee"), "{e}");
}

#[test]
fn bad_duration_is_located() {
    let text = GOOD.replace("\"30s\"\n[state]", "\"thirty\"\n[state]");
    let e = Config::parse(&text, Path::new("x.toml"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("invalid duration \"thirty\""), "{e}");
    assert!(e.contains("line 8"), "{e}");
}

#[test]
fn shipped_reference_config_loads() {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/sluice.toml");
    let c = Config::load(&p).unwrap();
    let d = &c.dimensions[0];
    assert_eq!(
        d.layout,
        DimLayout::Dated {
            marker: Some("_SUCCESS".into())
        }
    );
    let names: Vec<_> = d.columns.iter().map(|c| c.to.as_str()).collect();
    assert_eq!(names, ["dept", "business", "spm_owner"]);
    assert_eq!(d.columns[0].default.as_deref(), Some("unknown"));
}

#[test]
fn issue_dimension_example_loads_and_bad_dimensions_are_refused() {
    let dim = r#"
[[dimension]]
name = "dim_spmid"
path = "/data/dim/spmid"
key = "spmid"
source_key = "spmid"
columns = ["dept", "business", "owner"]
reload_interval = "5m"
min_rows = 1000
"#;
    let c = Config::parse(&format!("{GOOD}{dim}"), Path::new("x.toml")).unwrap();
    let d = &c.dimensions[0];
    assert_eq!(d.path, Location::Local(PathBuf::from("/data/dim/spmid")));
    assert_eq!(d.reload_interval, Duration::from_secs(300));
    assert_eq!(d.min_rows, 1000);
    assert_eq!(d.on_duplicate, OnDuplicate::Error);
    let cases = [
        (
            "columns = [\"dept\", \"business\", \"owner\"]",
            "columns = []",
            "dimension[0].columns",
        ),
        (
            "reload_interval = \"5m\"",
            "reload_interval = \"5m\"\nlayout = \"daily\"",
            "unknown layout",
        ),
        ("min_rows = 1000", "min_ratio = 2.0", "between 0 and 1"),
        (
            "min_rows = 1000",
            "rename = { nope = \"x\" }",
            "\"nope\" is not in `columns`",
        ),
        (
            "min_rows = 1000",
            "default = { owner2 = \"x\" }",
            "not an added column",
        ),
        ("min_rows = 1000", "on_duplicate = \"first\"", "last_wins"),
    ];
    for (from, to, want) in cases {
        let text = format!("{GOOD}{}", dim.replace(from, to));
        let e = Config::parse(&text, Path::new("x.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains(want), "{to}: {e}");
    }
    let twice = format!("{GOOD}{dim}{dim}");
    let e = Config::parse(&twice, Path::new("x.toml"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("used by two dimensions"), "{e}");
    let typo = format!("{GOOD}{}", dim.replace("min_rows", "min_row"));
    let e = Config::parse(&typo, Path::new("x.toml"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("min_row") && e.contains("line"), "{e}");
}

#[test]
fn partition_commit_section() {
    let c = Config::parse(GOOD, Path::new("x.toml")).unwrap();
    assert!(c.partition_commit.is_none(), "absent: off");
    let on = format!("{GOOD}[partition_commit]\n");
    let p = Config::parse(&on, Path::new("x.toml"))
        .unwrap()
        .partition_commit
        .unwrap();
    assert_eq!(p.time_columns.day.0, "dt");
    assert_eq!(p.time_columns.hour.as_ref().unwrap().0, "hour");
    assert_eq!(p.delay, Duration::from_secs(600));
    assert_eq!(p.idle_close, Some(Duration::from_secs(3600)));
    assert!(p.success_file && p.webhook.is_none() && p.command.is_none());
    let full = format!(
        "{GOOD}[partition_commit]\ntime_columns = {{ day = \"%Y%m%d\" }}\nutc_offset = \"+08:00\"\ndelay = \"0s\"\nidle_close = \"off\"\ncommand = [\"/bin/true\", \"{{table}}\"]\nwebhook = {{ url = \"http://127.0.0.1:8080/hook\", retries = 2 }}\n"
    );
    let p = Config::parse(&full, Path::new("x.toml"))
        .unwrap()
        .partition_commit
        .unwrap();
    assert_eq!(p.time_columns.day.0, "day");
    assert!(p.time_columns.hour.is_none());
    assert_eq!(p.utc_offset_s, 8 * 3600);
    assert_eq!(p.idle_close, None);
    let w = p.webhook.unwrap();
    assert_eq!(w.url, "http://127.0.0.1:8080/hook");
    // `retries` is deprecated: accepted, ignored, named for a warning.
    assert_eq!(w.ignored_keys, ["retries"]);
    assert_eq!(w.timeout, Duration::from_secs(10));
    assert_eq!(p.retry_backoff, Duration::from_secs(1));
    assert_eq!(p.retry_max_backoff, Duration::from_secs(300));
    let cases = [
        (
            "webhook = { url = \"ftp://h/x\" }",
            "expected an http:// or https:// URL",
        ),
        (
            "webhook = { url = \"https://h/x\", headers = { \"A B\" = \"x\" } }",
            "partition_commit.webhook.headers.A B",
        ),
        ("time_columns = { hour = \"%H\" }", "needs a day column"),
        ("time_columns = { dt = \"%Y-%m\" }", "must be a day"),
        (
            "time_columns = { dt = \"%Y-%m-%d\", d2 = \"%Y%m%d\" }",
            "only one day column",
        ),
        ("command = []", "must start with a program"),
        ("utc_offset = \"CST\"", "partition_commit.utc_offset"),
        ("idle_close = \"soon\"", "partition_commit.idle_close"),
        ("idle_close = \"never\"", "or \"off\""),
        ("dealy = \"1m\"", "dealy"),
        ("retry_backoff = \"0s\"", "partition_commit.retry_backoff"),
        (
            "retry_backoff = \"1m\"\nretry_max_backoff = \"10s\"",
            "at least retry_backoff",
        ),
    ];
    for (line, want) in cases {
        let e = Config::parse(
            &format!("{GOOD}[partition_commit]\n{line}\n"),
            Path::new("x.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains(want), "{line}: {e}");
    }
}

#[test]
fn object_store_urls_and_store_sections() {
    let text = GOOD
        .replace("/data/ods/events", "s3://ods-bucket/ods/events/")
        .replace("/data/dwd", "s3://dwd-bucket/dwd")
        + "[stores.\"s3://ods-bucket\"]\nendpoint = \"http://127.0.0.1:9000\"\nallow_http = true\nregion = \"us-east-1\"\nvirtual_hosted_style = false\n";
    let c = Config::parse(&text, Path::new("x.toml")).unwrap();
    assert_eq!(c.source.root.to_string(), "s3://ods-bucket/ods/events");
    assert_eq!(c.sink.root.to_string(), "s3://dwd-bucket/dwd");
    let o = &c.stores.s3["s3://ods-bucket"];
    assert_eq!(o.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
    assert_eq!(o.allow_http, Some(true));
    let cases = [
        (
            "s3://dwd-bucket/dwd",
            "s3://ods-bucket/ods/events/out",
            "must not be inside source.root",
        ),
        (
            "s3://dwd-bucket/dwd",
            "s3://ods-bucket",
            "must not be inside source.root",
        ),
        (
            "allow_http = true",
            "allow_http = true\nsecret_access_key = \"x\"",
            "secret_access_key",
        ),
        (
            "[stores.\"s3://ods-bucket\"]",
            "[stores.\"s3://ods-bucket/x\"]",
            "name the bucket alone",
        ),
        (
            "[stores.\"s3://ods-bucket\"]",
            "[stores.\"gs://ods-bucket\"]",
            "for s3:// buckets",
        ),
        (
            "[stores.\"s3://ods-bucket\"]",
            "[stores.\"/data\"]",
            "bucket URL",
        ),
        (
            "\"http://127.0.0.1:9000\"",
            "\"127.0.0.1:9000\"",
            "must start with http",
        ),
        ("s3://dwd-bucket/dwd", "hdfs://nn/dwd", "unsupported scheme"),
    ];
    for (from, to, want) in cases {
        let e = Config::parse(&text.replace(from, to), Path::new("x.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains(want), "{to}: {e}");
    }
    // Distinct prefixes of one bucket do not overlap.
    let same_bucket = text.replace("s3://dwd-bucket/dwd", "s3://ods-bucket/dwd");
    assert!(Config::parse(&same_bucket, Path::new("x.toml")).is_ok());
}

#[test]
fn statistics_are_auto_unless_all_and_a_bad_value_is_located() {
    let c = Config::parse(GOOD, Path::new("x.toml")).unwrap();
    assert_eq!(c.sink.statistics, Statistics::Auto);
    let all = GOOD.replace("checkpoint_interval = \"30s\"", "statistics = \"all\"");
    let c = Config::parse(&all, Path::new("x.toml")).unwrap();
    assert_eq!(c.sink.statistics, Statistics::All);
    let bad = GOOD.replace("checkpoint_interval = \"30s\"", "statistics = \"some\"");
    let e = Config::parse(&bad, Path::new("x.toml"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("x.toml") && e.contains("line 13"), "{e}");
    assert!(
        e.contains("some") && e.contains("auto") && e.contains("all"),
        "{e}"
    );
}

#[test]
fn bad_values_refused() {
    let cases = [
        (
            "visibility = \"settled\"",
            "visibility = \"sometimes\"",
            "unknown mode",
        ),
        ("version = 1", "version = 2", "config version 1"),
        (
            "visibility = \"settled\"",
            "visibility = \"settled\"\nolder_than_lookback = \"keep\"",
            "source.older_than_lookback: unknown value \"keep\"",
        ),
        (
            "name = \"ods_events\"",
            "name = \"ods-events\"",
            "not a table name",
        ),
        (
            "root = \"/data/dwd\"",
            "root = \"/data/ods/events/out\"",
            "inside source.root",
        ),
        (
            "dir = \"/var/lib/sluice\"",
            "dir = \"s3://bucket/state\"",
            "state.dir: \"s3://bucket/state\": must be a local folder",
        ),
        (
            "dir = \"rules\"",
            "dir = \"rules\"\non_error = \"ignore\"",
            "rules.on_error: unknown value \"ignore\"",
        ),
        (
            "root = \"/data/dwd\"",
            "root = \"/data/dwd\"\nwriters = 4\nmax_open_files = 3",
            "sink.max_open_files: must be at least sink.writers (4)",
        ),
    ];
    for (from, to, want) in cases {
        let e = Config::parse(&GOOD.replace(from, to), Path::new("x.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains(want), "{to}: {e}");
    }
}
