//! `sluice bench`: placeholder filled in below.
use anyhow::Result;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct BenchArgs {}

pub fn run(_a: BenchArgs) -> Result<ExitCode> {
    Ok(ExitCode::SUCCESS)
}
