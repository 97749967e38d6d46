//! Integration tests: one binary (see STYLE.md). Each module drives the real
//! `sluice` binary or the library over real files on a temporary directory.

mod cli;
mod commit_trust;
mod crash;
mod crash_rules;
mod crash_schema;
mod dimension;
mod discovery;
mod discovery_cost;
mod engine;
mod errors;
mod http;
mod http_idle;
mod manifest;
mod ops;
mod ops_daemon;
mod ops_tools;
mod partition_commit;
mod partition_commit_crash;
mod partition_commit_retry;
mod partition_commit_units;
mod pruning;
mod quarantine;
mod reading;
mod receiver;
mod replicas;
mod replicas_figures;
mod replicas_support;
mod rules;
mod rules_input;
mod s3;
mod s3_support;
mod schema_evolution;
mod sdnotify;
mod support;
mod webhook_tls;
