//! Running rules over sample rows: every test file under
//! `<rules.dir>/tests/`, or one sample file shown table by table.

use super::compare::{self, DisplayRow};
use super::spec::{self, Expectation, TestFile};
use super::{RulesCliError, TESTS_DIR, find_rule, input, schema_without_input, shown};
use crate::config::Config;
use crate::route::RuleSet;
use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Schema, SchemaRef};
use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::runtime::Handle;

/// The outcome of `sluice rules test` over test files.
#[derive(Debug, Default)]
pub struct TestSummary {
    pub passed: usize,
    pub failed: usize,
    /// Test files that could not be run (exit 2).
    pub invalid: Vec<RulesCliError>,
    /// The report to print.
    pub text: String,
}

/// Test files in `<rules_dir>/tests/`, sorted; `_`- and `.`-prefixed files are not tests.
pub fn test_files(rules_dir: &Path) -> Result<Vec<PathBuf>, RulesCliError> {
    let dir = rules_dir.join(TESTS_DIR);
    if !dir.is_dir() {
        return Ok(vec![]);
    }
    let rd = std::fs::read_dir(&dir).map_err(|e| RulesCliError::Input {
        path: dir.clone(),
        message: e.to_string(),
    })?;
    let mut out = Vec::new();
    for e in rd {
        let p = e
            .map_err(|e| RulesCliError::Input {
                path: dir.clone(),
                message: e.to_string(),
            })?
            .path();
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if p.is_file()
            && name.ends_with(".toml")
            && !name.starts_with('_')
            && !name.starts_with('.')
        {
            out.push(p);
        }
    }
    out.sort();
    Ok(out)
}

/// Rules compile against this in tests: a column a test row leaves out is NULL.
fn nullable(schema: &SchemaRef) -> SchemaRef {
    Arc::new(Schema::new(
        schema
            .fields()
            .iter()
            .map(|f| f.as_ref().clone().with_nullable(true))
            .collect::<Vec<_>>(),
    ))
}

/// Runs every test file of the config's rules directory.
pub fn run_test_files(cfg: &Config, handle: &Handle) -> Result<TestSummary, RulesCliError> {
    let files = test_files(&cfg.rules_dir)?;
    let mut s = TestSummary::default();
    if files.is_empty() {
        let _ = writeln!(
            s.text,
            "no rule tests in {} (add *.toml files; see README, \"Testing rules\")",
            shown(&cfg.rules_dir.join(TESTS_DIR))
        );
        return Ok(s);
    }
    let resolved = schema_without_input(cfg, handle)?;
    for n in &resolved.notes {
        let _ = writeln!(s.text, "note: {n}");
    }
    let _ = writeln!(s.text, "source schema: {}", resolved.origin);
    let full = nullable(&resolved.schema.full);
    let rules =
        RuleSet::load(&cfg.rules_dir, &cfg.source.name, &full).map_err(RulesCliError::Rules)?;
    for path in files {
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) => {
                s.invalid.push(RulesCliError::Input {
                    path,
                    message: e.to_string(),
                });
                continue;
            }
        };
        let outcome =
            spec::parse_test(&path, &text).and_then(|t| run_one(&rules, &full, &t).map(|f| (t, f)));
        match outcome {
            Ok((t, None)) => {
                s.passed += 1;
                let _ = writeln!(s.text, "ok    {}: {}", shown(&path), t.name);
            }
            Ok((t, Some(failure))) => {
                s.failed += 1;
                let _ = writeln!(s.text, "FAIL  {}: {}", shown(&path), t.name);
                s.text.push_str(&failure);
            }
            Err(e) => s.invalid.push(e),
        }
    }
    let _ = writeln!(
        s.text,
        "rule tests: {} passed, {} failed, {} invalid",
        s.passed,
        s.failed,
        s.invalid.len()
    );
    Ok(s)
}

/// Runs one test; `Some(report)` when it fails.
pub fn run_one(
    rules: &RuleSet,
    schema: &SchemaRef,
    t: &TestFile,
) -> Result<Option<String>, RulesCliError> {
    let input = spec::rows_to_batch(t, &t.input, schema, "the source")?;
    let mut failure = String::new();
    for e in &t.expect {
        let rule = rules
            .rules
            .iter()
            .position(|r| r.table == e.table)
            .ok_or_else(|| {
                let tables: Vec<&str> = rules.rules.iter().map(|r| r.table.as_str()).collect();
                t.err(
                    e.at,
                    format!(
                        "no rule writes table {}; tables: {}",
                        e.table,
                        tables.join(", ")
                    ),
                )
            })?;
        let r = &rules.rules[rule];
        let iso = rules.evaluate_isolating(rule, &input);
        for (row, m) in &iso.bad {
            let line = t
                .input
                .get(*row)
                .map(|r| super::line_col(&t.text, r.at).0)
                .unwrap_or(0);
            let _ = writeln!(
                failure,
                "      {}: rule {} fails on the [[input]] at line {line}: {m}",
                e.table,
                shown(&r.file)
            );
        }
        let parts: Vec<RecordBatch> = iso.ok.into_iter().flatten().collect();
        let out = if parts.is_empty() {
            None
        } else {
            Some(
                arrow::compute::concat_batches(&r.output_schema, &parts)
                    .map_err(|x| t.err(0, x.to_string()))?,
            )
        };
        let (columns, expected) = expected_rows(t, e, &r.output_schema)?;
        let types: Vec<DataType> = columns
            .iter()
            .filter_map(|c| r.output_schema.field_with_name(c).ok())
            .map(|f| f.data_type().clone())
            .collect();
        let actual: Vec<DisplayRow> = out
            .as_ref()
            .map(|b| compare::rows_of(b, &columns))
            .unwrap_or_default();
        let d = compare::diff(&expected, &actual);
        if !d.is_empty() {
            let on = if columns.is_empty() {
                "row count only".to_string()
            } else {
                format!("compared on {}", columns.join(", "))
            };
            let _ = writeln!(
                failure,
                "      {} ({on}): expected {} row(s), received {}; - missing, + unexpected:",
                e.table,
                expected.len(),
                actual.len()
            );
            failure.push_str(&d.render(&columns, &types, "        "));
        }
    }
    Ok((!failure.is_empty()).then_some(failure))
}

/// The compared columns (every key the expected rows use, in order of
/// appearance) and the expected rows over them, as display strings.
fn expected_rows(
    t: &TestFile,
    e: &Expectation,
    out: &SchemaRef,
) -> Result<(Vec<String>, Vec<DisplayRow>), RulesCliError> {
    let mut columns: Vec<String> = Vec::new();
    for r in &e.rows {
        for (k, at, _) in &r.cells {
            if out.field_with_name(k).is_err() {
                let names: Vec<&str> = out.fields().iter().map(|f| f.name().as_str()).collect();
                return Err(t.err(
                    *at,
                    format!(
                        "table {} has no column {k}; its columns: {}",
                        e.table,
                        names.join(", ")
                    ),
                ));
            }
            if !columns.contains(k) {
                columns.push(k.clone());
            }
        }
    }
    let mut rows = Vec::with_capacity(e.rows.len());
    for r in &e.rows {
        let mut row = Vec::with_capacity(columns.len());
        for c in &columns {
            let ty = out
                .field_with_name(c)
                .map(|f| f.data_type().clone())
                .unwrap_or(DataType::Utf8);
            let cell = r.cells.iter().find(|(k, _, _)| k == c);
            let a = spec::value_to_array(cell.map(|(_, _, v)| &v.value), &ty).map_err(|m| {
                t.err(
                    cell.map(|(_, _, v)| v.at).unwrap_or(r.at),
                    format!("{c}: {m}"),
                )
            })?;
            row.push(compare::cell(a.as_ref(), 0));
        }
        rows.push(row);
    }
    Ok((columns, rows))
}

/// Runs the rules (or one) over a sample file and shows what each table
/// would receive, `limit` rows per table at most.
pub fn run_adhoc(
    cfg: &Config,
    path: &Path,
    only: Option<&str>,
    limit: usize,
    handle: &Handle,
) -> Result<String, RulesCliError> {
    let sample = input::read_sample(path, cfg.source.partition_columns.as_deref())?;
    let mut notes = Vec::new();
    let bad_sample = |m: String| RulesCliError::Input {
        path: path.to_path_buf(),
        message: m,
    };
    let sample = fill_known_columns(cfg, sample, handle, &mut notes).map_err(bad_sample)?;
    let sample = add_dimensions(cfg, sample, handle, &mut notes).map_err(bad_sample)?;
    let rules = RuleSet::load(&cfg.rules_dir, &cfg.source.name, &sample.schema.full)
        .map_err(RulesCliError::Rules)?;
    let selected: Vec<usize> = match only {
        Some(name) => vec![find_rule(&rules, name)?],
        None => (0..rules.rules.len()).collect(),
    };
    let batch = &sample.batch;
    let n = batch.num_rows();
    let mut matched = vec![false; n];
    let mut text = String::new();
    for note in &notes {
        let _ = writeln!(text, "note: {note}");
    }
    let _ = writeln!(
        text,
        "{}: {n} rows; source schema from the file ({} columns)\n",
        shown(path),
        sample.schema.full.fields().len()
    );
    for (i, r) in rules.rules.iter().enumerate() {
        let iso = rules.evaluate_isolating(i, batch);
        for (m, s) in matched.iter_mut().zip(&iso.mask) {
            *m |= *s;
        }
        if !selected.contains(&i) {
            continue;
        }
        let parts: Vec<RecordBatch> = iso.ok.into_iter().flatten().collect();
        let result = if parts.is_empty() {
            Ok(None)
        } else {
            arrow::compute::concat_batches(&r.output_schema, &parts)
                .map(Some)
                .map_err(|e| e.to_string())
        };
        if let Some((row, m)) = iso.bad.first() {
            let _ = writeln!(
                text,
                "!! {} ({}): the rule fails on {} row(s), which go to its error output (rules.on_error); first, row {}: {m}",
                r.table,
                shown(&r.file),
                iso.bad.len(),
                row + 1
            );
        }
        match result {
            Ok(None) => {
                let _ = writeln!(text, "== {} ({}): 0 rows\n", r.table, shown(&r.file));
            }
            Ok(Some(out)) => {
                let rows = out.num_rows();
                let more = if rows > limit {
                    format!(", showing {limit}")
                } else {
                    String::new()
                };
                let _ = writeln!(
                    text,
                    "== {} ({}): {rows} rows{more}",
                    r.table,
                    shown(&r.file)
                );
                let _ = writeln!(text, "{}\n", pretty(&out.slice(0, rows.min(limit))));
            }
            Err(m) => {
                let _ = writeln!(
                    text,
                    "== {} ({}): the rule failed on this input: {m}\n",
                    r.table,
                    shown(&r.file)
                );
            }
        }
    }
    let hit = matched.iter().filter(|m| **m).count();
    let _ = writeln!(
        text,
        "{n} input rows: {hit} matched by at least one rule, {} matched by no rule",
        n - hit
    );
    Ok(text)
}

fn pretty(b: &RecordBatch) -> String {
    arrow::util::pretty::pretty_format_batches(std::slice::from_ref(b))
        .map(|t| t.to_string())
        .unwrap_or_else(|e| format!("(cannot display: {e})"))
}

/// A sample file and the dimensions: a sample without the dimensions'
/// columns is joined with them like the daemon does (when they load here);
/// columns the sample has are kept; any still missing are NULL.
fn add_dimensions(
    cfg: &Config,
    sample: input::Sample,
    handle: &Handle,
    notes: &mut Vec<String>,
) -> Result<input::Sample, String> {
    if cfg.dimensions.is_empty() {
        return Ok(sample);
    }
    let has_any = cfg
        .dimensions
        .iter()
        .flat_map(|d| &d.columns)
        .any(|c| sample.schema.full.field_with_name(&c.to).is_ok());
    let (schema, enricher) =
        super::with_dimension_columns(cfg, sample.schema.clone(), handle, notes);
    if let (Some(e), false) = (enricher, has_any) {
        notes.push("dimension columns joined from the configured dimensions".into());
        let batch = e.enrich(sample.batch).map_err(|e| e.to_string())?;
        return Ok(input::Sample { schema, batch });
    }
    let n = sample.batch.num_rows();
    let cols = schema
        .full
        .fields()
        .iter()
        .map(|f| match sample.batch.column_by_name(f.name()) {
            Some(c) => c.clone(),
            None => arrow::array::new_null_array(f.data_type(), n),
        })
        .collect();
    let batch = RecordBatch::try_new(schema.full.clone(), cols).map_err(|e| e.to_string())?;
    Ok(input::Sample { schema, batch })
}

/// A sample file need not hold every source column: when the source schema
/// is known (state, first source file, or `tests/_source.toml`), columns the
/// sample lacks are NULL and the ones it has are cast to the source's types
/// (CSV infers `007` as a number). Unknown schema: the sample's own.
fn fill_known_columns(
    cfg: &Config,
    sample: input::Sample,
    handle: &Handle,
    notes: &mut Vec<String>,
) -> Result<input::Sample, String> {
    let Ok(known) = super::source_schema_without_input(cfg, handle) else {
        return Ok(sample);
    };
    let n = sample.batch.num_rows();
    let mut fields: Vec<arrow::datatypes::FieldRef> =
        sample.schema.full.fields().iter().cloned().collect();
    let mut cols = sample.batch.columns().to_vec();
    let mut missing = Vec::new();
    for f in known.schema.full.fields() {
        match sample.schema.full.index_of(f.name()) {
            Ok(i) if cols[i].data_type() != f.data_type() => {
                if let Ok(c) = arrow::compute::cast(&cols[i], f.data_type()) {
                    cols[i] = c;
                    fields[i] = f.clone();
                }
            }
            Ok(_) => {}
            Err(_) => {
                missing.push(f.name().clone());
                fields.push(f.clone());
                cols.push(arrow::array::new_null_array(f.data_type(), n));
            }
        }
    }
    if missing.is_empty() {
        return Ok(sample);
    }
    notes.push(format!(
        "not in the sample, so NULL (schema from {}): {}",
        known.origin,
        missing.join(", ")
    ));
    let fields: Vec<arrow::datatypes::Field> = fields
        .iter()
        .map(|f| f.as_ref().clone().with_nullable(true))
        .collect();
    let full = Arc::new(Schema::new(fields));
    let batch = RecordBatch::try_new(full.clone(), cols).map_err(|e| e.to_string())?;
    Ok(input::Sample {
        schema: crate::read::SourceSchema {
            file: sample.schema.file,
            partition_columns: sample.schema.partition_columns,
            full,
        },
        batch,
    })
}
