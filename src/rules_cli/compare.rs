//! Comparing the rows a table received with the rows a test expects: both
//! become rows of display strings over the same columns (the expected
//! values first cast to the output column's type, so `"42"` and `42` agree
//! for a BIGINT column), then are compared as multisets. The diff reads like
//! the test file: `- {event_id = "e1", dt = "2026-11-20"}` is expected but
//! missing, `+ {...}` arrived but was not expected.

use arrow::array::{Array, ArrayRef, RecordBatch};
use arrow::datatypes::DataType;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use std::collections::BTreeMap;

/// A row as display strings (`None` is NULL).
pub type DisplayRow = Vec<Option<String>>;

/// Value `i` of `a` as text, `None` for NULL.
pub fn cell(a: &dyn Array, i: usize) -> Option<String> {
    if a.is_null(i) {
        return None;
    }
    let opts = FormatOptions::default();
    ArrayFormatter::try_new(a, &opts)
        .map(|f| f.value(i).to_string())
        .ok()
}

/// Rows of `batch` over `columns` (each must exist).
pub fn rows_of(batch: &RecordBatch, columns: &[String]) -> Vec<DisplayRow> {
    let cols: Vec<Option<&ArrayRef>> = columns.iter().map(|c| batch.column_by_name(c)).collect();
    (0..batch.num_rows())
        .map(|i| {
            cols.iter()
                .map(|c| c.and_then(|a| cell(a.as_ref(), i)))
                .collect()
        })
        .collect()
}

/// Formats a row like a TOML inline table: `{a = "x", b = 3, c = NULL}`.
pub fn render_row(columns: &[String], types: &[DataType], row: &DisplayRow) -> String {
    let cells: Vec<String> = columns
        .iter()
        .zip(types)
        .zip(row)
        .map(|((c, t), v)| match v {
            None => format!("{c} = NULL"),
            Some(s) if quoted(t) => format!("{c} = {s:?}"),
            Some(s) => format!("{c} = {s}"),
        })
        .collect();
    format!("{{{}}}", cells.join(", "))
}

fn quoted(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Utf8
            | DataType::LargeUtf8
            | DataType::Utf8View
            | DataType::Date32
            | DataType::Date64
            | DataType::Timestamp(_, _)
    )
}

/// The difference of two multisets of rows.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct RowDiff {
    /// Expected, not received: (row, how many times).
    pub missing: Vec<(DisplayRow, usize)>,
    /// Received, not expected.
    pub unexpected: Vec<(DisplayRow, usize)>,
}

impl RowDiff {
    pub fn is_empty(&self) -> bool {
        self.missing.is_empty() && self.unexpected.is_empty()
    }

    /// `- row` / `+ row` lines, indented by `indent`.
    pub fn render(&self, columns: &[String], types: &[DataType], indent: &str) -> String {
        let mut out = String::new();
        for (sign, rows) in [("-", &self.missing), ("+", &self.unexpected)] {
            for (r, n) in rows {
                let times = if *n > 1 {
                    format!("  ({n} times)")
                } else {
                    String::new()
                };
                out.push_str(&format!(
                    "{indent}{sign} {}{times}\n",
                    render_row(columns, types, r)
                ));
            }
        }
        out
    }
}

/// Compares two multisets of rows.
pub fn diff(expected: &[DisplayRow], actual: &[DisplayRow]) -> RowDiff {
    let mut counts: BTreeMap<&DisplayRow, i64> = BTreeMap::new();
    for r in expected {
        *counts.entry(r).or_default() += 1;
    }
    for r in actual {
        *counts.entry(r).or_default() -= 1;
    }
    let mut d = RowDiff::default();
    for (r, n) in counts {
        if n > 0 {
            d.missing.push((r.clone(), n as usize));
        } else if n < 0 {
            d.unexpected.push((r.clone(), (-n) as usize));
        }
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(v: &[&str]) -> DisplayRow {
        v.iter().map(|s| Some(s.to_string())).collect()
    }

    #[test]
    fn multisets_ignore_order_but_count_duplicates() {
        assert!(diff(&[r(&["a"]), r(&["b"])], &[r(&["b"]), r(&["a"])]).is_empty());
        let d = diff(&[r(&["a"])], &[r(&["a"]), r(&["a"]), r(&["c"])]);
        assert_eq!(d.missing, vec![]);
        assert_eq!(d.unexpected, vec![(r(&["a"]), 1), (r(&["c"]), 1)]);
        let cols = vec!["event_id".to_string(), "n".to_string()];
        let types = vec![DataType::Utf8, DataType::Int64];
        let d = diff(
            &[vec![Some("e1".into()), None]],
            &[vec![Some("e2".into()), Some("3".into())]],
        );
        assert_eq!(
            d.render(&cols, &types, "  "),
            "  - {event_id = \"e1\", n = NULL}\n  + {event_id = \"e2\", n = 3}\n"
        );
    }
}
