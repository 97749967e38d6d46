//! Per-row isolation of rule failures. A rule whose expression fails on a
//! batch (a CAST of a bad value, say) is evaluated again on halves of the
//! batch, recursively, until the failing rows stand alone: every other row
//! still lands in the table, and only the rows that fail are set aside.
//! Bisection costs about `2 x bad rows x log2(batch rows)` evaluations, and
//! only for batches that failed.
//!
//! With `rules.on_error = "error_table"` the set-aside rows become pieces of
//! the table's error output, `_errors/<table>/dt=<dt>/`: the source row's
//! columns plus `_error` (the message) and `_rule` (the rule file name).
//! They go through the same writer, staging and checkpoint as table rows,
//! so they are written exactly once too. `dt` is the source row's `dt`
//! column when the source has one, else the UTC date when it was routed.

use super::{CompiledRule, Output, Piece};
use crate::names::hive;
use arrow::array::{Array, ArrayRef, RecordBatch, StringArray, UInt32Array};
use arrow::compute::{cast, take_record_batch};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::error::ArrowError;
use std::sync::Arc;

/// What the rows of a failed batch came to.
#[derive(Debug)]
pub struct Isolated<T> {
    /// Rows the rule selected, among those it could evaluate.
    pub mask: Vec<bool>,
    /// Results of the parts that evaluated.
    pub ok: Vec<T>,
    /// Rows the rule fails on: (row of the input, message).
    pub bad: Vec<(usize, String)>,
}

/// A rule evaluated on part of a batch: (selected-row mask, result) or a message.
pub type Eval<'a, T> = dyn Fn(&RecordBatch) -> Result<(Vec<bool>, T), String> + 'a;

/// Splits `input` (on which `eval` failed with `first_error`) until each
/// failure is a single row.
pub fn bisect<T>(input: &RecordBatch, first_error: String, eval: &Eval<T>) -> Isolated<T> {
    let n = input.num_rows();
    let mut iso = Isolated {
        mask: vec![false; n],
        ok: Vec::new(),
        bad: Vec::new(),
    };
    if n == 1 {
        iso.bad.push((0, first_error));
    } else if n > 1 {
        let h = n / 2;
        split(input, 0, h, eval, &mut iso);
        split(input, h, n - h, eval, &mut iso);
    }
    iso
}

fn split<T>(input: &RecordBatch, offset: usize, len: usize, eval: &Eval<T>, iso: &mut Isolated<T>) {
    if len == 0 {
        return;
    }
    match eval(&input.slice(offset, len)) {
        Ok((mask, t)) => {
            for (dst, m) in iso.mask[offset..offset + len].iter_mut().zip(mask) {
                *dst = m;
            }
            iso.ok.push(t);
        }
        Err(e) if len == 1 => iso.bad.push((offset, e)),
        Err(_) => {
            let h = len / 2;
            split(input, offset, h, eval, iso);
            split(input, offset + h, len - h, eval, iso);
        }
    }
}

/// The error output's pieces for the `bad` rows of `input`, by `dt`.
pub fn error_pieces(
    rule: usize,
    r: &CompiledRule,
    input: &RecordBatch,
    bad: &[(usize, String)],
    today: &str,
) -> Result<Vec<Piece>, ArrowError> {
    let idx = UInt32Array::from(bad.iter().map(|(i, _)| *i as u32).collect::<Vec<_>>());
    let rows = take_record_batch(input, &idx)?;
    let n = rows.num_rows();
    let dt: Option<ArrayRef> = match rows.column_by_name("dt") {
        Some(c) => Some(cast(c, &DataType::Utf8)?),
        None => None,
    };
    let dt = dt
        .as_ref()
        .and_then(|c| c.as_any().downcast_ref::<StringArray>());
    let rule_name = r
        .file
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_else(|| r.table.clone());
    let mut fields: Vec<Field> = Vec::new();
    let mut cols: Vec<ArrayRef> = Vec::new();
    for (f, c) in rows.schema().fields().iter().zip(rows.columns()) {
        if f.name() != "dt" {
            fields.push(f.as_ref().clone());
            cols.push(c.clone());
        }
    }
    fields.push(Field::new("_error", DataType::Utf8, false));
    cols.push(Arc::new(StringArray::from(
        bad.iter().map(|(_, m)| m.as_str()).collect::<Vec<_>>(),
    )));
    fields.push(Field::new("_rule", DataType::Utf8, false));
    cols.push(Arc::new(StringArray::from(vec![rule_name.as_str(); n])));
    let data = RecordBatch::try_new(Arc::new(Schema::new(fields)), cols)?;

    super::group_pieces(rule, Output::Errors, &data, |i| {
        let v = match dt {
            Some(d) if d.is_valid(i) => Some(d.value(i)),
            Some(_) => None,
            None => Some(today),
        };
        hive::segment("dt", v)
    })
}

/// Today's date in UTC as `YYYY-MM-DD`.
pub fn utc_today() -> String {
    chrono::Utc::now().format("%Y-%m-%d").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn today_is_a_date() {
        let t = utc_today();
        assert!(
            chrono::NaiveDate::parse_from_str(&t, "%Y-%m-%d").is_ok(),
            "{t}"
        );
    }
}
