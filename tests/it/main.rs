//! Integration tests: one binary (see STYLE.md). Each module drives the real
//! `sluice` binary or the library over real files on a temporary directory.

mod cli;
mod crash;
mod dimension;
mod engine;
mod ops;
mod ops_daemon;
mod ops_tools;
mod quarantine;
mod support;
