//! sluice: incremental file-source ETL. Visible ODS files are read once,
//! routed by analysts' SQL rules into many Hive-partitioned Parquet tables,
//! and committed exactly once.
//!
//! # Layout, in data-flow order
//!
//! - [`names`]: shared vocabulary: Hive path segments, file-name globs, output names.
//! - [`config`]: the TOML file, validated once into a typed `Config`.
//! - [`cluster`]: `[cluster]` replicas: which source files a replica owns, the progress they publish.
//! - [`store`]: a configured location (local folder, `s3://`, `gs://`, `az://`) opened as an object store.
//! - [`discover`]: listing the source, visibility modes, the watermark + lookback seen-set.
//! - [`split`]: a file's row groups cut into splits (pure).
//! - [`read`]: a split fetched through `object_store` and decoded into tagged batches.
//! - [`enrich`]: dimension snapshots (loaded, reloaded, fallen back on) joined onto each batch.
//! - [`route`]: rules compiled once from SQL; a batch routed to (table, partition) pieces.
//! - [`sink`]: Parquet writers, staging, final names, the idempotent commit.
//! - [`partition_commit`]: when an output partition is complete; `_SUCCESS`, webhook, command.
//! - [`checkpoint`]: the sled state (the only module that touches it).
//! - [`pipeline`]: threads and bounded channels, the epoch loop and its barrier.
//! - [`telemetry`]: logs, metrics, HTTP endpoints, the status board.
//! - [`status`]: `sluice status`, from the running daemon or from the state.
//! - [`rules_cli`]: the analyst's workbench: `rules test` over sample rows, `rules explain`.
//! - [`demo`]: the sample ODS generator shared by `sluice demo`, tests and the benchmark.
//! - [`crashpoint`]: named points where crash tests kill the process.

pub mod checkpoint;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod crashpoint;
pub mod demo;
pub mod discover;
pub mod enrich;
pub mod names;
pub mod partition_commit;
pub mod pipeline;
pub mod read;
pub mod route;
pub mod rules_cli;
pub mod sink;
pub mod split;
pub mod status;
pub mod store;
pub mod telemetry;
