//! The analyst's workbench for rules, behind `sluice rules ...`: running the
//! rule set over sample rows without a daemon or a state dir (`rules test`,
//! ad hoc over a sample file or from test files under `<rules.dir>/tests/`),
//! and showing what one rule compiles to (`rules explain`).
//!
//! It owns the test file format ([`spec`]), reading sample files
//! ([`input`]), comparing rows ([`compare`]) and the explain report
//! ([`explain`]). It evaluates rules with [`RuleSet::evaluate`], the same
//! compiled expressions the daemon runs, and never writes anything: output
//! is text for the caller to print.
//!
//! Which source schema the rules are compiled against, first found wins:
//! the sample file (`--input`); the schema stored in the state (when the
//! state dir exists and no daemon holds its lock), else the copy of it the
//! daemon keeps beside the state (`source-schema.json`, evolved columns
//! included); the first source file; `<rules.dir>/tests/_source.toml`
//! (for CI, where no data is at hand).

pub mod compare;
pub mod explain;
pub mod input;
pub mod spec;
mod testrun;

pub use testrun::{TestSummary, run_adhoc, run_test_files};

use crate::checkpoint::StateStore;
use crate::config::Config;
use crate::read::SourceSchema;
use crate::route::{RuleError, RuleSet};
use std::path::{Path, PathBuf};
use tokio::runtime::Handle;

/// The folder under `rules.dir` that holds rule tests.
pub const TESTS_DIR: &str = "tests";
/// The declared source schema in [`TESTS_DIR`] (not a test itself).
pub const DECLARED_SCHEMA: &str = "_source.toml";

#[derive(Debug, thiserror::Error)]
pub enum RulesCliError {
    /// The rule set does not compile (every error, `file:line:col: message`).
    #[error("{}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n"))]
    Rules(Vec<RuleError>),
    /// A test file or the declared schema is malformed.
    #[error("{}:{line}:{column}: {message}", shown(file))]
    TestFile {
        file: PathBuf,
        line: u64,
        column: u64,
        message: String,
    },
    #[error("cannot read {}: {message}", path.display())]
    Input { path: PathBuf, message: String },
    #[error(
        "no source schema to compile the rules against: no readable state or source file, and no {}; declare the source columns there (`rules test` also takes --input FILE)",
        .0.display()
    )]
    NoSchema(PathBuf),
    #[error("no rule writes table {name}; tables: {tables}")]
    UnknownRule { name: String, tables: String },
}

impl RulesCliError {
    /// A located error in a TOML file, from a byte offset.
    pub fn at(file: &Path, text: &str, byte: usize, message: impl Into<String>) -> RulesCliError {
        let (line, column) = line_col(text, byte);
        RulesCliError::TestFile {
            file: file.to_path_buf(),
            line,
            column,
            message: message.into(),
        }
    }
}

/// 1-based line and column (in characters) of a byte offset.
pub fn line_col(text: &str, byte: usize) -> (u64, u64) {
    let byte = byte.min(text.len());
    let before = text.get(..byte).unwrap_or(text);
    let line = before.matches('\n').count() as u64 + 1;
    let column = before
        .rfind('\n')
        .map(|n| before[n + 1..].chars().count())
        .unwrap_or(before.chars().count()) as u64
        + 1;
    (line, column)
}

/// `path` relative to the current directory when it is below it (shorter messages).
pub fn shown(path: &Path) -> String {
    std::env::current_dir()
        .ok()
        .and_then(|cwd| path.strip_prefix(cwd).ok().map(Path::to_path_buf))
        .unwrap_or_else(|| path.to_path_buf())
        .display()
        .to_string()
}

/// A source schema and where it came from (printed, so a surprise is visible).
pub struct ResolvedSchema {
    pub schema: SourceSchema,
    pub origin: String,
    /// Why earlier candidates were skipped.
    pub notes: Vec<String>,
    /// It is `tests/_source.toml`'s, which may list dimension columns (see
    /// [`for_enrichment`]).
    pub declared: bool,
}

/// The source schema the dimensions are joined onto. A declared schema
/// may list the dimensions' columns (rule tests set them as input
/// columns); the daemon's rows get them from the join, so they go.
pub fn for_enrichment(cfg: &Config, resolved: ResolvedSchema) -> SourceSchema {
    let schema = resolved.schema;
    if !resolved.declared {
        return schema;
    }
    let added: Vec<&str> = cfg
        .dimensions
        .iter()
        .flat_map(|d| d.columns.iter().map(|c| c.to.as_str()))
        .collect();
    let file: Vec<arrow::datatypes::FieldRef> = schema
        .file
        .fields()
        .iter()
        .filter(|f| !added.contains(&f.name().as_str()))
        .cloned()
        .collect();
    SourceSchema::new(
        std::sync::Arc::new(arrow::datatypes::Schema::new(file)),
        schema.partition_columns,
    )
}

/// Opens the state read-only-in-spirit when it exists and no daemon holds
/// it. `Err` carries a note saying why it was skipped.
pub fn open_state_if_free(cfg: &Config) -> Result<Option<StateStore>, String> {
    if !cfg.state_dir.exists() {
        return Ok(None);
    }
    StateStore::open(&cfg.state_dir).map(Some).map_err(|e| {
        format!(
            "state {} not used ({e}); is the daemon running?",
            cfg.state_dir.display()
        )
    })
}

/// The schema rule tests without `--input` compile against: the source
/// schema (see the module doc) plus the dimensions' columns.
pub fn schema_without_input(
    cfg: &Config,
    handle: &Handle,
) -> Result<ResolvedSchema, RulesCliError> {
    let mut r = source_schema_without_input(cfg, handle)?;
    let (schema, _) = with_dimension_columns(cfg, r.schema, handle, &mut r.notes);
    r.schema = schema;
    Ok(r)
}

/// Adds each `[[dimension]]`'s columns to what rules see. In rule tests
/// they are input columns like any other (a test row sets `dept`
/// directly), so a test checks the rule, not today's dimension data. Their
/// types come from the dimension when it loads here (the enricher is
/// returned, to join a sample file that lacks them), else they are strings.
pub fn with_dimension_columns(
    cfg: &Config,
    schema: SourceSchema,
    handle: &Handle,
    notes: &mut Vec<String>,
) -> (SourceSchema, Option<crate::enrich::Enricher>) {
    if cfg.dimensions.is_empty() {
        return (schema, None);
    }
    let added: Vec<&str> = cfg
        .dimensions
        .iter()
        .flat_map(|d| d.columns.iter().map(|c| c.to.as_str()))
        .collect();
    let base: Vec<arrow::datatypes::FieldRef> = schema
        .full
        .fields()
        .iter()
        .filter(|f| !added.contains(&f.name().as_str()))
        .cloned()
        .collect();
    let base = std::sync::Arc::new(arrow::datatypes::Schema::new(base));
    let metrics = crate::telemetry::Metrics::default();
    let opts = crate::enrich::EnrichOptions {
        state_dir: None,
        background: false,
    };
    let (dim_fields, enricher): (Vec<arrow::datatypes::FieldRef>, _) =
        match crate::enrich::Enricher::start(&cfg.dimensions, &base, opts, &metrics, handle) {
            Ok(e) => (e.schema().fields()[base.fields().len()..].to_vec(), Some(e)),
            Err(e) => {
                notes.push(format!(
                    "dimension columns are typed as strings: {}",
                    e.to_string().lines().next().unwrap_or("")
                ));
                let f = added
                    .iter()
                    .map(|n| {
                        std::sync::Arc::new(arrow::datatypes::Field::new(
                            *n,
                            arrow::datatypes::DataType::Utf8,
                            true,
                        ))
                    })
                    .collect();
                (f, None)
            }
        };
    let mut fields: Vec<arrow::datatypes::FieldRef> =
        schema.full.fields().iter().cloned().collect();
    for f in dim_fields {
        match fields.iter().position(|o| o.name() == f.name()) {
            Some(i) => fields[i] = f,
            None => fields.push(f),
        }
    }
    let full = std::sync::Arc::new(arrow::datatypes::Schema::new(fields));
    (
        SourceSchema {
            file: schema.file,
            partition_columns: schema.partition_columns,
            full,
        },
        enricher,
    )
}

pub(crate) fn source_schema_without_input(
    cfg: &Config,
    handle: &Handle,
) -> Result<ResolvedSchema, RulesCliError> {
    let mut notes = Vec::new();
    let state = match open_state_if_free(cfg) {
        Ok(s) => s,
        Err(note) => {
            notes.push(note);
            None
        }
    };
    resolve_source_schema(cfg, state.as_ref(), notes, handle)
}

/// The source schema without a sample file, first found wins (see the
/// module doc), given the state the caller opened (`sluice check` keeps it
/// open to read the table schemas too). `notes` says why candidates before
/// the one used were skipped.
pub fn resolve_source_schema(
    cfg: &Config,
    state: Option<&StateStore>,
    mut notes: Vec<String>,
    handle: &Handle,
) -> Result<ResolvedSchema, RulesCliError> {
    if let Some(st) = state {
        match st.schema() {
            Ok(Some(json)) => match SourceSchema::from_json(&json) {
                Ok(schema) => {
                    return Ok(ResolvedSchema {
                        schema,
                        origin: format!("the state in {}", shown(&cfg.state_dir)),
                        notes,
                        declared: false,
                    });
                }
                Err(e) => notes.push(format!("stored schema not used: {e}")),
            },
            Ok(None) => {}
            Err(e) => notes.push(format!("stored schema not used: {e}")),
        }
    } else if let Some(json) = crate::checkpoint::schema_history::read_mirror(&cfg.state_dir) {
        // A daemon holds the state: its committed schema's copy, evolved
        // columns included.
        match SourceSchema::from_json(&json) {
            Ok(schema) => {
                return Ok(ResolvedSchema {
                    schema,
                    origin: format!(
                        "the copy of the state's schema in {}",
                        shown(
                            &cfg.state_dir
                                .join(crate::checkpoint::schema_history::MIRROR_FILE)
                        )
                    ),
                    notes,
                    declared: false,
                });
            }
            Err(e) => notes.push(format!("copy of the stored schema not used: {e}")),
        }
    }
    if cfg.source.root.local_root().is_none_or(Path::is_dir) {
        let found = crate::pipeline::open_store(&cfg.source.root, &cfg.stores, false)
            .and_then(|store| crate::pipeline::source_schema(cfg, None, false, &store, handle));
        match found {
            Ok(Some(schema)) => {
                return Ok(ResolvedSchema {
                    schema,
                    origin: format!(
                        "the first source file under {}",
                        match cfg.source.root.local_root() {
                            Some(p) => shown(p),
                            None => cfg.source.root.to_string(),
                        }
                    ),
                    notes,
                    declared: false,
                });
            }
            Ok(None) => notes.push(format!("no readable source file under {}", cfg.source.root)),
            Err(e) => notes.push(format!("source not used: {e}")),
        }
    } else {
        notes.push(format!("no source folder {}", cfg.source.root));
    }
    let declared = cfg.rules_dir.join(TESTS_DIR).join(DECLARED_SCHEMA);
    if declared.is_file() {
        let text = std::fs::read_to_string(&declared).map_err(|e| RulesCliError::Input {
            path: declared.clone(),
            message: e.to_string(),
        })?;
        let schema = spec::parse_declared_schema(&declared, &text)?;
        return Ok(ResolvedSchema {
            schema,
            origin: shown(&declared),
            notes,
            declared: true,
        });
    }
    Err(RulesCliError::NoSchema(declared))
}

/// Compiles the config's rule set against `schema`.
pub fn load_rules(cfg: &Config, schema: &SourceSchema) -> Result<RuleSet, RulesCliError> {
    RuleSet::load(&cfg.rules_dir, &cfg.source.name, &schema.full).map_err(RulesCliError::Rules)
}

/// The index of the rule for `name` (a table name, or a rule file name with
/// or without `.sql`).
pub fn find_rule(rules: &RuleSet, name: &str) -> Result<usize, RulesCliError> {
    let stem = name.strip_suffix(".sql").unwrap_or(name);
    rules
        .rules
        .iter()
        .position(|r| {
            r.table == stem
                || r.file.file_stem().and_then(|s| s.to_str()) == Some(stem)
                || r.file == Path::new(name)
        })
        .ok_or_else(|| RulesCliError::UnknownRule {
            name: name.to_string(),
            tables: rules
                .rules
                .iter()
                .map(|r| r.table.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        })
}

#[cfg(test)]
mod tests;
