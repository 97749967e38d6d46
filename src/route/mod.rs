//! Routing: owns the rule set (one SQL file per output table, compiled once)
//! and evaluating it on a batch: which rows each table receives and in which
//! Hive partition. No I/O here except reading the rule files at load.
//!
//! Most rules filter on `column = 'value'` (event type, app, department).
//! When several rules do, the set picks the column most of them test and
//! builds an index `value -> rules`; per batch it groups the rows by that
//! column once and evaluates each indexed rule only on the rows of its
//! values. The cost per batch then grows with the rows, not with rows x
//! rules. A rule whose WHERE is nothing but such pins, all satisfied by
//! every row it is given, skips its predicate (see `index::Pins`).

pub mod bounds;
pub mod compile;
mod index;
pub mod isolate;
mod narrow;
mod rule_errors;
pub use narrow::set_copy_all_columns;
pub mod rule_file;
pub mod schema_guard;

pub use crate::config::OnError;
pub use crate::names::ERRORS_DIR;
pub use compile::{CompiledRule, Functions, RuleError};
use index::{EqIndex, build_index, group_rows};
pub use isolate::Isolated;

use crate::names::hive;
use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, RecordBatch, StringArray, UInt32Array};
use arrow::compute::{cast, take_record_batch};
use arrow::datatypes::{DataType, SchemaRef, UInt32Type};
use hashbrown::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where a piece goes: the rule's table, or its error output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    Table,
    /// `_errors/<table>`: source rows the rule failed on (see [`isolate`]).
    Errors,
}

/// A piece of a batch bound for one table and partition.
#[derive(Debug)]
pub struct Piece {
    /// Index of the rule in the set.
    pub rule: usize,
    pub output: Output,
    /// Escaped Hive partition path, e.g. `dt=2026-11-20/hour=13` ("" when unpartitioned).
    pub partition: String,
    /// Data columns only (partition keys live in the path).
    pub batch: RecordBatch,
}

/// The result of routing one batch.
#[derive(Debug, Default)]
pub struct Routed {
    pub pieces: Vec<Piece>,
    /// Rows selected by at least one rule.
    pub matched_rows: u64,
    /// Rules that failed on some rows of this batch. Only those rows are
    /// set aside (to the error output or dropped, per `on_error`).
    pub errors: Vec<RuleFailure>,
}

/// A rule failed on `rows` rows of a batch; `message` is the first failure.
#[derive(Debug)]
pub struct RuleFailure {
    pub rule: usize,
    pub rows: u64,
    pub message: String,
}

/// Every rule of a rules directory, compiled.
#[derive(Debug)]
pub struct RuleSet {
    pub rules: Vec<CompiledRule>,
    /// Fingerprint of the rule files (names and contents), for reload checks.
    pub version: String,
    index: Option<EqIndex>,
    pins: index::Pins,
    /// What happens to rows a rule fails on.
    pub on_error: OnError,
}

/// Reads `*.sql` in `dir` (sorted by name): (path, text).
pub fn read_rule_files(dir: &Path) -> Result<Vec<(PathBuf, String)>, RuleError> {
    let io_err = |e: std::io::Error| RuleError {
        file: dir.to_path_buf(),
        pos: Default::default(),
        message: format!("cannot read rules directory: {e}"),
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_err)? {
        let p = entry.map_err(io_err)?.path();
        if p.extension().is_some_and(|e| e == "sql") && p.is_file() {
            files.push(p);
        }
    }
    files.sort();
    files
        .into_iter()
        .map(|p| {
            std::fs::read_to_string(&p)
                .map(|t| (p.clone(), t))
                .map_err(|e| RuleError {
                    file: p,
                    pos: Default::default(),
                    message: format!("cannot read: {e}"),
                })
        })
        .collect()
}

impl RuleSet {
    /// Compiles every rule file; any error refuses the whole set (all errors returned).
    pub fn load(
        dir: &Path,
        source_name: &str,
        schema: &SchemaRef,
    ) -> Result<RuleSet, Vec<RuleError>> {
        let files = read_rule_files(dir).map_err(|e| vec![e])?;
        Self::compile_all(files, source_name, schema)
    }

    /// The version a rules directory would have now (cheap: reads, no compile).
    pub fn version_of(dir: &Path) -> Result<String, RuleError> {
        Ok(fingerprint(&read_rule_files(dir)?))
    }

    /// The version rule files read by [`read_rule_files`] compile to.
    pub fn version_of_files(files: &[(PathBuf, String)]) -> String {
        fingerprint(files)
    }

    pub fn compile_all(
        files: Vec<(PathBuf, String)>,
        source_name: &str,
        schema: &SchemaRef,
    ) -> Result<RuleSet, Vec<RuleError>> {
        let functions = Functions::default();
        let mut rules: Vec<CompiledRule> = Vec::new();
        let mut errors = Vec::new();
        for (path, text) in &files {
            match compile::compile(path, text, source_name, schema, &functions) {
                Ok(r) => {
                    if let Some(prev) = rules.iter().find(|p| p.table == r.table) {
                        errors.push(RuleError {
                            file: path.clone(),
                            pos: rule_file::Pos { line: 1, column: 1 },
                            message: format!(
                                "table {} is already defined by {}",
                                r.table,
                                prev.file.display()
                            ),
                        });
                    } else {
                        rules.push(r);
                    }
                }
                Err(e) => errors.push(e),
            }
        }
        if files.is_empty() {
            errors.push(RuleError {
                file: PathBuf::new(),
                pos: Default::default(),
                message: "no rule files (*.sql) found: add one file per output table".into(),
            });
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let index = build_index(&rules, schema);
        let pins = index::build_pins(&rules, schema);
        Ok(RuleSet {
            rules,
            version: fingerprint(&files),
            index,
            pins,
            on_error: OnError::default(),
        })
    }

    /// The source column the equality index groups rows by, if any, and
    /// whether rule `rule` is evaluated only on its pinned values.
    pub fn index_for(&self, rule: usize) -> Option<(&str, bool)> {
        self.index
            .as_ref()
            .map(|ix| (ix.column_name.as_str(), !ix.unindexed.contains(&rule)))
    }

    /// The same set with another `on_error`.
    pub fn with_on_error(mut self, on_error: OnError) -> RuleSet {
        self.on_error = on_error;
        self
    }

    /// Routes one (enriched) source batch.
    pub fn route(&self, batch: &RecordBatch) -> Routed {
        let n = batch.num_rows();
        let mut out = Routed::default();
        let mut matched = vec![false; n];
        let mut today: Option<String> = None;
        let pins = self
            .pins
            .check(batch, self.rules.len(), self.index.as_ref());
        // `rows`: the rows of `batch` the rule is evaluated on (an indexed
        // rule's values), `None` for all of them.
        let mut run = |rule: usize, rows: Option<&UInt32Array>, out: &mut Routed| {
            if !pins.possible[rule] {
                return;
            }
            let (mask, pieces, bad) = match self.eval_rule(rule, batch, rows, pins.certain[rule]) {
                Ok((mask, pieces)) => (mask, pieces, vec![]),
                Err(e) => {
                    // Rare: the rows it is given, with every column it
                    // reads, are cut in halves until the failing rows stand
                    // alone.
                    let input = match rows {
                        Some(idx) => {
                            match narrow::take_read(
                                batch,
                                idx,
                                narrow::read_mask(batch, &self.rules[rule]).as_deref(),
                            ) {
                                Ok(b) => b,
                                Err(e) => {
                                    out.errors.push(RuleFailure {
                                        rule,
                                        rows: idx.len() as u64,
                                        message: e.to_string(),
                                    });
                                    return;
                                }
                            }
                        }
                        None => batch.clone(),
                    };
                    let iso =
                        isolate::bisect(&input, e, &|part| self.eval_rule(rule, part, None, false));
                    (iso.mask, iso.ok.into_iter().flatten().collect(), iso.bad)
                }
            };
            for (i, m) in mask.iter().enumerate() {
                if *m {
                    let orig = rows.map(|r| r.value(i) as usize).unwrap_or(i);
                    matched[orig] = true;
                }
            }
            out.pieces.extend(pieces);
            if bad.is_empty() {
                return;
            }
            out.errors.push(RuleFailure {
                rule,
                rows: bad.len() as u64,
                message: bad[0].1.clone(),
            });
            if self.on_error == OnError::ErrorTable {
                let day = today.get_or_insert_with(isolate::utc_today);
                // Error rows keep every source column.
                let full = match rows {
                    Some(idx) => take_record_batch(batch, idx),
                    None => Ok(batch.clone()),
                };
                match full.and_then(|full| {
                    isolate::error_pieces(rule, &self.rules[rule], &full, &bad, day)
                }) {
                    Ok(p) => out.pieces.extend(p),
                    Err(e) => out.errors.push(RuleFailure {
                        rule,
                        rows: 0,
                        message: format!("cannot build the error rows: {e}"),
                    }),
                }
            }
        };
        match &self.index {
            None => {
                for r in 0..self.rules.len() {
                    run(r, None, &mut out);
                }
            }
            Some(ix) => {
                for &r in &ix.unindexed {
                    run(r, None, &mut out);
                }
                // Each indexed rule sees exactly the rows of the values it
                // is listed under, gathered with one `take`: one piece per
                // rule and partition, however many values it lists.
                let mut groups: Vec<UInt32Array> = Vec::new();
                let mut lists: Vec<Vec<usize>> = vec![Vec::new(); self.rules.len()];
                let mut active: Vec<usize> = Vec::new();
                for (value, rows) in group_rows(batch.column(ix.column)) {
                    let Some(rules) = ix.by_value.get(value) else {
                        continue;
                    };
                    let g = groups.len();
                    groups.push(UInt32Array::from(rows));
                    for &r in rules.iter().filter(|r| pins.possible[**r]) {
                        if lists[r].is_empty() {
                            active.push(r);
                        }
                        lists[r].push(g);
                    }
                }
                active.sort_unstable();
                for r in active {
                    let idx = match lists[r].as_slice() {
                        [g] => groups[*g].clone(),
                        gs => {
                            let mut rows: Vec<u32> = gs
                                .iter()
                                .flat_map(|g| groups[*g].values().iter().copied())
                                .collect();
                            rows.sort_unstable();
                            UInt32Array::from(rows)
                        }
                    };
                    run(r, Some(&idx), &mut out);
                }
            }
        }
        out.matched_rows = matched.iter().filter(|m| **m).count() as u64;
        out
    }

    /// Evaluates one rule on the `rows` of `batch` (all when `None`):
    /// (selected-row mask over those rows, pieces). With `certain` the rule
    /// is known to select every row, and its predicate does not run.
    fn eval_rule(
        &self,
        rule: usize,
        batch: &RecordBatch,
        rows: Option<&UInt32Array>,
        certain: bool,
    ) -> Result<(Vec<bool>, Vec<Piece>), String> {
        let (mask, out) = self.evaluate_with(rule, batch, rows, !certain)?;
        let pieces = match out {
            Some(out) => {
                split_partitions(rule, &self.rules[rule], &out).map_err(|e| e.to_string())?
            }
            None => vec![],
        };
        Ok((mask, pieces))
    }

    /// [`RuleSet::evaluate`], isolating the rows the rule fails on.
    pub fn evaluate_isolating(
        &self,
        rule: usize,
        input: &RecordBatch,
    ) -> Isolated<Option<RecordBatch>> {
        match self.evaluate(rule, input) {
            Ok((mask, out)) => Isolated {
                mask,
                ok: vec![out],
                bad: vec![],
            },
            Err(e) => isolate::bisect(input, e, &|part| self.evaluate(rule, part)),
        }
    }

    /// Evaluates one rule on `input`: which rows it selects, and its whole
    /// output for them (partition columns included; `None` when it selects
    /// no row). Pure: `sluice rules test` uses it to show what a table gets.
    pub fn evaluate(
        &self,
        rule: usize,
        input: &RecordBatch,
    ) -> Result<(Vec<bool>, Option<RecordBatch>), String> {
        self.evaluate_with(rule, input, None, true)
    }

    /// The rows of `batch` the rule selects among `rows` (all when `None`)
    /// and its output for them. The rows are copied at most once, with
    /// only the columns the SELECT reads, and not at all when every row of
    /// the whole batch passes; an indexed rule's WHERE runs on a copy of
    /// only the columns it tests.
    fn evaluate_with(
        &self,
        rule: usize,
        batch: &RecordBatch,
        rows: Option<&UInt32Array>,
        filter: bool,
    ) -> Result<(Vec<bool>, Option<RecordBatch>), String> {
        let r = &self.rules[rule];
        let n = rows.map_or(batch.num_rows(), |idx| idx.len());
        let predicate = r.predicate.as_ref().filter(|_| filter);
        // `keep`: which of the rows pass, `None` when all do.
        let (mask, keep) = match predicate {
            None => (vec![true; n], None),
            Some(p) => {
                let tested = match rows {
                    None => batch.clone(),
                    Some(idx) => narrow::take_read(
                        batch,
                        idx,
                        narrow::columns_mask(batch, &r.predicate_reads).as_deref(),
                    )
                    .map_err(|e| e.to_string())?,
                };
                let v = p
                    .evaluate(&tested)
                    .and_then(|v| v.into_array(n))
                    .map_err(|e| e.to_string())?;
                let b = v
                    .as_any()
                    .downcast_ref::<BooleanArray>()
                    .ok_or_else(|| format!("WHERE of {} is not a boolean", r.table))?;
                let mask: Vec<bool> = (0..n).map(|i| b.is_valid(i) && b.value(i)).collect();
                if !mask.iter().any(|m| *m) {
                    return Ok((mask, None));
                }
                let keep = (!mask.iter().all(|m| *m)).then(|| BooleanArray::from(mask.clone()));
                (mask, keep)
            }
        };
        let read = narrow::columns_mask(batch, &r.projection_reads);
        let read = read.as_deref();
        let selected = match (rows, &keep) {
            (None, None) => Ok(batch.clone()),
            (None, Some(k)) => narrow::filter_read(batch, k, read),
            (Some(idx), None) => narrow::take_read(batch, idx, read),
            (Some(idx), Some(k)) => arrow::compute::filter(idx, k)
                .and_then(|kept| narrow::take_read(batch, kept.as_primitive::<UInt32Type>(), read)),
        }
        .map_err(|e| e.to_string())?;
        let m = selected.num_rows();
        if m == 0 {
            return Ok((mask, None));
        }
        let cols = r
            .projections
            .iter()
            .map(|p| p.evaluate(&selected).and_then(|v| v.into_array(m)))
            .collect::<Result<Vec<ArrayRef>, _>>()
            .map_err(|e| e.to_string())?;
        let out = RecordBatch::try_new(r.output_schema.clone(), cols).map_err(|e| e.to_string())?;
        Ok((mask, Some(out)))
    }
}

/// Splits a rule's output by its partition columns.
fn split_partitions(
    rule: usize,
    r: &CompiledRule,
    out: &RecordBatch,
) -> Result<Vec<Piece>, arrow::error::ArrowError> {
    let data = out.project(&r.data_idx)?;
    if r.partition_idx.is_empty() {
        return Ok(vec![Piece {
            rule,
            output: Output::Table,
            partition: String::new(),
            batch: data,
        }]);
    }
    let keys: Vec<ArrayRef> = r
        .partition_idx
        .iter()
        .map(|&i| cast(out.column(i), &DataType::Utf8))
        .collect::<Result<_, _>>()?;
    let keys: Vec<&StringArray> = keys
        .iter()
        .filter_map(|k| k.as_any().downcast_ref::<StringArray>())
        .collect();
    let path_of = |row: usize| -> String {
        r.partition_columns
            .iter()
            .zip(&keys)
            .map(|(name, k)| {
                let v = if k.is_null(row) {
                    None
                } else {
                    Some(k.value(row))
                };
                hive::segment(name, v)
            })
            .collect::<Vec<_>>()
            .join("/")
    };
    let n = out.num_rows();
    let constant = keys.iter().all(|k| {
        let first = if k.is_null(0) { None } else { Some(k.value(0)) };
        (1..n).all(|i| (if k.is_null(i) { None } else { Some(k.value(i)) }) == first)
    });
    if constant {
        return Ok(vec![Piece {
            rule,
            output: Output::Table,
            partition: path_of(0),
            batch: data,
        }]);
    }
    group_pieces(rule, Output::Table, &data, path_of)
}

/// Cuts `data` into one piece per partition path (`path_of(row)`), in
/// order of first appearance, with one `take` per partition.
pub(crate) fn group_pieces(
    rule: usize,
    output: Output,
    data: &RecordBatch,
    path_of: impl Fn(usize) -> String,
) -> Result<Vec<Piece>, arrow::error::ArrowError> {
    let mut groups: HashMap<String, Vec<u32>> = HashMap::new();
    let mut order = Vec::new();
    for i in 0..data.num_rows() {
        groups
            .entry(path_of(i))
            .or_insert_with_key(|k| {
                order.push(k.clone());
                Vec::new()
            })
            .push(i as u32);
    }
    order
        .into_iter()
        .map(|p| {
            let idx = UInt32Array::from(groups.remove(&p).unwrap_or_default());
            Ok(Piece {
                rule,
                output,
                partition: p,
                batch: take_record_batch(data, &idx)?,
            })
        })
        .collect()
}

/// Names and contents of the rule files, hashed.
fn fingerprint(files: &[(PathBuf, String)]) -> String {
    let mut fp = String::new();
    for (path, text) in files {
        fp.push_str(&format!(
            "{}:{:016x};",
            path.display(),
            fnv64(text.as_bytes())
        ));
    }
    format!("{:016x}", fnv64(fp.as_bytes()))
}

/// FNV-1a 64, for fingerprints that must be stable across runs: the one
/// `hash_bucket` uses (one implementation, pinned by its test vectors).
pub use sluice_udf::hash::fnv1a64 as fnv64;

/// A shared, swappable rule set.
pub type SharedRules = Arc<RuleSet>;

#[cfg(test)]
mod tests;
