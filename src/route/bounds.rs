//! Bounds on what one expression may allocate. Most functions make values
//! no larger than their input; `repeat`, `lpad` and `rpad` make values
//! whose size an argument chooses: `repeat(x, 1000000000)` is a gigabyte
//! per row, and DataFusion reserves `lpad`'s length for every row of the
//! batch up front. This module owns the limits and their two guards:
//!
//! - At load, a call whose constant arguments alone make a value larger
//!   than [`MAX_VALUE_BYTES`] is refused with the file, line and column.
//! - At run time these functions are wrapped ([`wrap`]): before the call,
//!   the bytes each row would take are computed from the arguments. A row
//!   over [`MAX_VALUE_BYTES`] fails the rule for that row, which then goes
//!   where `rules.on_error` says (see `isolate`). A batch whose rows
//!   together pass [`MAX_CALL_BYTES`] fails as a whole and is evaluated
//!   again in halves, so its rows still land and no call allocates more.

use super::rule_file::{self, Pos};
use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, RecordBatchOptions};
use arrow::datatypes::{DataType, FieldRef, Int64Type, Schema};
use datafusion_common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion_common::{DFSchema, DataFusionError, Result, ScalarValue};
use datafusion_expr::execution_props::ExecutionProps;
use datafusion_expr::expr::ScalarFunction;
use datafusion_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion_expr::{
    ColumnarValue, Documentation, Expr, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF,
    ScalarUDFImpl, Signature,
};
use std::collections::HashMap;
use std::sync::Arc;

/// The largest value (bytes) `repeat`, `lpad` or `rpad` may make for one row.
pub const MAX_VALUE_BYTES: u64 = 1 << 20;
/// The most one call of them may make for one batch, all rows together.
pub const MAX_CALL_BYTES: u64 = 64 << 20;

/// The functions whose output size an argument chooses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Kind {
    /// `repeat(text, n)`: `len(text) * n` bytes.
    Repeat,
    /// `lpad(text, n [, fill])`, `rpad(...)`: `n` characters, reserved per row.
    Pad,
}

fn kind_of(name: &str) -> Option<Kind> {
    match name {
        "repeat" => Some(Kind::Repeat),
        "lpad" | "rpad" => Some(Kind::Pad),
        _ => None,
    }
}

/// Replaces the bounded functions of `scalars` (by name and alias) with
/// their guarded versions.
pub fn wrap(scalars: &mut HashMap<String, Arc<ScalarUDF>>) {
    let bounded: Vec<Arc<ScalarUDF>> = scalars
        .values()
        .filter(|f| kind_of(f.name()).is_some())
        .cloned()
        .collect();
    for f in bounded {
        let Some(kind) = kind_of(f.name()) else {
            continue;
        };
        let guarded = Arc::new(ScalarUDF::new_from_impl(Bounded {
            inner: f.as_ref().clone(),
            kind,
        }));
        for alias in f.aliases() {
            scalars.insert(alias.clone(), guarded.clone());
        }
        scalars.insert(f.name().to_string(), guarded);
    }
}

/// A bounded function: checks the sizes its arguments ask for, then calls
/// the real one.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Bounded {
    inner: ScalarUDF,
    kind: Kind,
}

impl ScalarUDFImpl for Bounded {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }
    fn signature(&self) -> &Signature {
        self.inner.signature()
    }
    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        self.inner.return_type(arg_types)
    }
    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        self.inner.return_field_from_args(args)
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        self.inner.coerce_types(arg_types)
    }
    fn documentation(&self) -> Option<&Documentation> {
        self.inner.documentation()
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        guard(self.name(), self.kind, &args.args, args.number_rows)?;
        self.inner.invoke_with_args(args)
    }
}

/// An argument, row by row (a scalar is the same for every row).
enum Arg {
    Scalar(ScalarValue),
    Array(ArrayRef),
}

impl Arg {
    fn of(v: &ColumnarValue) -> Arg {
        match v {
            ColumnarValue::Scalar(s) => Arg::Scalar(s.clone()),
            ColumnarValue::Array(a) => Arg::Array(a.clone()),
        }
    }

    fn text(&self, row: usize) -> Option<&str> {
        match self {
            Arg::Scalar(
                ScalarValue::Utf8(s) | ScalarValue::LargeUtf8(s) | ScalarValue::Utf8View(s),
            ) => s.as_deref(),
            Arg::Scalar(_) => None,
            Arg::Array(a) if a.is_null(row) => None,
            Arg::Array(a) => match a.data_type() {
                DataType::Utf8 => Some(a.as_string::<i32>().value(row)),
                DataType::LargeUtf8 => Some(a.as_string::<i64>().value(row)),
                DataType::Utf8View => Some(a.as_string_view().value(row)),
                _ => None,
            },
        }
    }
}

/// The count argument as Int64 (its declared type; cast when it is not).
fn counts(v: &ColumnarValue) -> Result<Arg> {
    Ok(match v {
        ColumnarValue::Scalar(s) => Arg::Scalar(s.cast_to(&DataType::Int64)?),
        ColumnarValue::Array(a) => Arg::Array(arrow::compute::cast(a, &DataType::Int64)?),
    })
}

fn count_at(a: &Arg, row: usize) -> Option<i64> {
    match a {
        Arg::Scalar(ScalarValue::Int64(n)) => *n,
        Arg::Scalar(_) => None,
        Arg::Array(a) if a.is_null(row) => None,
        Arg::Array(a) => Some(a.as_primitive::<Int64Type>().value(row)),
    }
}

/// Widest UTF-8 character of `s`, in bytes (0 for "").
fn widest(s: &str) -> u64 {
    s.chars().map(|c| c.len_utf8() as u64).max().unwrap_or(0)
}

/// Bytes one row takes: `text` the first argument, `n` the count, `fill`
/// the pad text (`None`: a space). An upper bound, also counting what
/// DataFusion reserves for a row before looking at it.
fn row_bytes(kind: Kind, text: Option<&str>, n: i64, fill: Option<&str>) -> u64 {
    let n = n.max(0) as u64;
    match kind {
        Kind::Repeat => text.map_or(0, |t| (t.len() as u64).saturating_mul(n)),
        Kind::Pad => {
            let w = fill.map_or(1, widest);
            let value = text.map_or(0, |t| {
                (t.len() as u64)
                    .saturating_add(n.saturating_mul(w))
                    .min(n.saturating_mul(4))
            });
            value.max(n)
        }
    }
}

fn too_large(name: &str, kind: Kind, n: i64, bytes: u64) -> String {
    let what = match kind {
        Kind::Repeat => "times",
        Kind::Pad => "characters",
    };
    format!(
        "{name}(..., {n}) would make a value of {bytes} bytes ({n} {what}); one value may take at most {MAX_VALUE_BYTES} bytes"
    )
}

/// The run-time guard: an error when a row, or the batch, would pass the limits.
fn guard(name: &str, kind: Kind, args: &[ColumnarValue], rows: usize) -> Result<()> {
    let (Some(text), Some(n)) = (args.first(), args.get(1)) else {
        return Ok(());
    };
    let text = Arg::of(text);
    let n = counts(n)?;
    let fill = args.get(2).map(Arg::of);
    // `repeat` of a scalar text and count makes one value, whatever the
    // row count; a pad reserves its length for every row.
    let rows = match (kind, &text, &n) {
        (Kind::Repeat, Arg::Scalar(_), Arg::Scalar(_)) => 1,
        _ => rows,
    };
    let mut total: u64 = 0;
    for row in 0..rows {
        let Some(count) = count_at(&n, row) else {
            continue;
        };
        let fill = fill.as_ref().map(|f| f.text(row).unwrap_or(""));
        let bytes = row_bytes(kind, text.text(row), count, fill);
        if bytes > MAX_VALUE_BYTES {
            return Err(DataFusionError::Execution(too_large(
                name, kind, count, bytes,
            )));
        }
        total = total.saturating_add(bytes);
    }
    if total > MAX_CALL_BYTES {
        return Err(DataFusionError::Execution(format!(
            "{name} would make {total} bytes for {rows} rows at once, more than {MAX_CALL_BYTES}; evaluated again on fewer rows"
        )));
    }
    Ok(())
}

/// The load-time check: every bounded call in `exprs` whose constant
/// arguments already make one value too large, refused at its position in
/// `sql` (the n-th call of that name in the text, in expression order).
pub fn check_constants<'a>(
    exprs: impl IntoIterator<Item = &'a Expr>,
    sql: &str,
) -> std::result::Result<(), (Pos, String)> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut found = None;
    for e in exprs {
        let _ = e.apply(|x| {
            if let Expr::ScalarFunction(ScalarFunction { func, args }) = x
                && let Some(kind) = kind_of(func.name())
            {
                let nth = seen.entry(func.name().to_string()).or_default();
                *nth += 1;
                if let Some(message) = constant_too_large(func.name(), kind, args) {
                    let pos =
                        call_pos(sql, func, *nth).unwrap_or_else(|| rule_file::pos_at(sql, 0));
                    found = Some((pos, message));
                    return Ok(TreeNodeRecursion::Stop);
                }
            }
            Ok(TreeNodeRecursion::Continue)
        });
        if let Some(f) = found {
            return Err(f);
        }
    }
    Ok(())
}

/// The message when `args`' constant parts make every value too large.
fn constant_too_large(name: &str, kind: Kind, args: &[Expr]) -> Option<String> {
    let n = match constant(args.get(1)?)?.cast_to(&DataType::Int64).ok()? {
        ScalarValue::Int64(Some(n)) => n,
        _ => return None,
    };
    let text = args.first().and_then(constant);
    let text = text.as_ref().map(|t| match t {
        ScalarValue::Utf8(s) | ScalarValue::LargeUtf8(s) | ScalarValue::Utf8View(s) => s.as_deref(),
        _ => None,
    });
    let fill = args.get(2).and_then(constant);
    let fill = match &fill {
        Some(ScalarValue::Utf8(s) | ScalarValue::LargeUtf8(s) | ScalarValue::Utf8View(s)) => {
            s.as_deref()
        }
        _ => None,
    };
    // Text not known at load: the smallest text that repeats to anything
    // is one byte; a pad of "" is all fill.
    let bytes = match (kind, text) {
        (_, Some(t)) => row_bytes(kind, t, n, fill),
        (Kind::Repeat, None) => row_bytes(kind, Some("x"), n, None),
        (Kind::Pad, None) => row_bytes(kind, Some(""), n, fill),
    };
    (bytes > MAX_VALUE_BYTES).then(|| {
        format!(
            "{}; write a smaller count, or build the value elsewhere",
            too_large(name, kind, n, bytes)
        )
    })
}

/// The value of an expression that reads no column, evaluated once.
fn constant(e: &Expr) -> Option<ScalarValue> {
    if let Expr::Literal(v, _) = e {
        return Some(v.clone());
    }
    if !e.column_refs().is_empty() || e.is_volatile() {
        return None;
    }
    let phys = datafusion_physical_expr::create_physical_expr(
        e,
        &DFSchema::empty(),
        &ExecutionProps::new(),
        &PhysicalPlanningContext::default(),
    )
    .ok()?;
    let one_row = RecordBatch::try_new_with_options(
        Arc::new(Schema::empty()),
        vec![],
        &RecordBatchOptions::new().with_row_count(Some(1)),
    )
    .ok()?;
    match phys.evaluate(&one_row).ok()? {
        ColumnarValue::Scalar(s) => Some(s),
        ColumnarValue::Array(a) => ScalarValue::try_from_array(&a, 0).ok(),
    }
}

/// Where the `nth` call (1-based) of `func`, by any of its names, starts.
fn call_pos(sql: &str, func: &ScalarUDF, nth: usize) -> Option<Pos> {
    let lower = sql.to_ascii_lowercase();
    let names: Vec<String> = std::iter::once(func.name())
        .chain(func.aliases().iter().map(String::as_str))
        .map(str::to_ascii_lowercase)
        .collect();
    let is_word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let bytes = lower.as_bytes();
    let mut calls: Vec<usize> = Vec::new();
    for name in &names {
        let mut from = 0;
        while let Some(k) = lower.get(from..).and_then(|r| r.find(name.as_str())) {
            let at = from + k;
            let end = at + name.len();
            let before_ok = at == 0 || !is_word(bytes[at - 1]);
            let paren = lower
                .get(end..)
                .map(str::trim_start)
                .is_some_and(|r| r.starts_with('('));
            if before_ok && paren {
                calls.push(at);
            }
            from = end;
        }
    }
    calls.sort_unstable();
    calls
        .get(nth.checked_sub(1)?)
        .map(|&at| rule_file::pos_at(sql, at))
}

#[cfg(test)]
mod tests;
