//! `sluice rules test`, `sluice rules explain` and `sluice functions`: the
//! analyst's workbench (`sluice::rules_cli`) printed, with its exit codes
//! (2 for a rule set or test file that does not compile, 1 for a failed
//! test).

use anyhow::Result;
use sluice::config::Config;
use sluice::rules_cli::{self, RulesCliError};
use std::path::Path;
use std::process::ExitCode;

/// Prints a rules workbench error; every one of them exits 2.
pub(super) fn rules_cli_error(e: &RulesCliError) -> ExitCode {
    for line in e.to_string().lines() {
        eprintln!("error: {line}");
    }
    if let RulesCliError::Rules(errors) = e {
        eprintln!("{} error(s); the rule set is refused", errors.len());
    }
    ExitCode::from(2)
}

pub(super) fn test(
    cfg: &Config,
    input: Option<&Path>,
    rule: Option<&str>,
    limit: usize,
) -> Result<ExitCode> {
    if let Some(input) = input {
        let rt = super::runtime()?;
        return Ok(
            match rules_cli::run_adhoc(cfg, input, rule, limit, rt.handle()) {
                Ok(text) => {
                    print!("{text}");
                    ExitCode::SUCCESS
                }
                Err(e) => rules_cli_error(&e),
            },
        );
    }
    let rt = super::runtime()?;
    let summary = match rules_cli::run_test_files(cfg, rt.handle()) {
        Ok(s) => s,
        Err(e) => return Ok(rules_cli_error(&e)),
    };
    print!("{}", summary.text);
    for e in &summary.invalid {
        rules_cli_error(e);
    }
    Ok(if !summary.invalid.is_empty() {
        ExitCode::from(2)
    } else if summary.failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

pub(super) fn explain(cfg: &Config, name: &str) -> Result<ExitCode> {
    let rt = super::runtime()?;
    let report = rules_cli::schema_without_input(cfg, rt.handle()).and_then(|resolved| {
        let rules = rules_cli::load_rules(cfg, &resolved.schema)?;
        let i = rules_cli::find_rule(&rules, name)?;
        let dims: Vec<(String, String)> = cfg
            .dimensions
            .iter()
            .flat_map(|d| d.columns.iter().map(|c| (c.to.clone(), d.name.clone())))
            .collect();
        Ok(format!(
            "{}\nsource schema: {}\n",
            rules_cli::explain::explain(&rules, i, &resolved.schema, &dims),
            resolved.origin
        ))
    });
    Ok(match report {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => rules_cli_error(&e),
    })
}

/// `sluice functions`: what rules may call.
pub(super) fn functions() -> Result<ExitCode> {
    for (name, sig, doc) in sluice_udf::docs() {
        println!("{name:<14} {sig:<40} {doc}");
    }
    println!(
        "\nand DataFusion's scalar functions (lower, upper, concat, substr, regexp_like, date_part, ...)"
    );
    Ok(ExitCode::SUCCESS)
}
