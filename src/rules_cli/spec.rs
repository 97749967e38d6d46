//! The rule test file format (`<rules.dir>/tests/*.toml`) and the declared
//! source schema (`tests/_source.toml`): parsing, with every error located
//! at a line and column of the file, and turning TOML values into Arrow
//! values of a column's type.
//!
//! ```toml
//! name = "android clicks land in dwd_click_android"
//!
//! [[input]]                 # one source row; columns left out are NULL
//! event_id = "e1"
//! event_type = "click"
//! app_source = "android"
//! event_time = 1795132800000  # timestamps: ms since 1970 (or a TOML datetime)
//! dt = "2026-11-20"          # Hive partition columns of the source are columns too
//! hour = "00"
//!
//! [[expect.dwd_click_android]]  # a row the table must receive
//! event_id = "e1"              # compared only on the columns given here
//! dt = "2026-11-20"
//!
//! [expect]
//! dwd_click_ios = []           # this table must receive nothing
//! ```
//!
//! Only the tables under `expect` are checked. For each, the rows the table
//! receives and the expected rows are compared as multisets (order does not
//! matter, a duplicate does) over the columns the expected rows name; a
//! column one expected row leaves out expects NULL in that row.

use super::RulesCliError;
use crate::read::SourceSchema;
use arrow::array::{
    Array, ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray,
    new_null_array,
};
use arrow::compute::{CastOptions, cast_with_options, concat};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::util::display::FormatOptions;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use toml::Spanned;

type RawRow = Spanned<BTreeMap<Spanned<String>, Spanned<toml::Value>>>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTest {
    name: Option<String>,
    #[serde(default)]
    input: Vec<RawRow>,
    #[serde(default)]
    expect: BTreeMap<Spanned<String>, Spanned<Vec<RawRow>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDeclared {
    #[serde(default)]
    partition_columns: Vec<String>,
    columns: BTreeMap<Spanned<String>, Spanned<String>>,
}

/// A cell of a test row: its TOML value and where it is.
#[derive(Clone, Debug)]
pub struct Cell {
    pub value: toml::Value,
    pub at: usize,
}

/// A row as written: (column, cell) in file order.
#[derive(Clone, Debug)]
pub struct Row {
    pub at: usize,
    pub cells: Vec<(String, usize, Cell)>,
}

/// What one table must receive.
#[derive(Clone, Debug)]
pub struct Expectation {
    pub table: String,
    pub at: usize,
    pub rows: Vec<Row>,
}

/// A parsed test file (values not yet typed: that needs the rules).
#[derive(Clone, Debug)]
pub struct TestFile {
    pub path: PathBuf,
    pub text: String,
    pub name: String,
    pub input: Vec<Row>,
    pub expect: Vec<Expectation>,
}

impl TestFile {
    /// A located error in this file.
    pub fn err(&self, at: usize, message: impl Into<String>) -> RulesCliError {
        RulesCliError::at(&self.path, &self.text, at, message)
    }
}

fn toml_error(path: &Path, text: &str, e: toml::de::Error) -> RulesCliError {
    let at = e.span().map(|s| s.start).unwrap_or(0);
    RulesCliError::at(path, text, at, e.message().trim_end().to_string())
}

fn row(r: RawRow) -> Row {
    let at = r.span().start;
    let mut cells: Vec<(String, usize, Cell)> = r
        .into_inner()
        .into_iter()
        .map(|(k, v)| {
            let key_at = k.span().start;
            let cell = Cell {
                at: v.span().start,
                value: v.into_inner(),
            };
            (k.into_inner(), key_at, cell)
        })
        .collect();
    cells.sort_by_key(|(_, at, _)| *at);
    Row { at, cells }
}

/// Parses a test file's text.
pub fn parse_test(path: &Path, text: &str) -> Result<TestFile, RulesCliError> {
    let raw: RawTest = toml::from_str(text).map_err(|e| toml_error(path, text, e))?;
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut expect: Vec<Expectation> = raw
        .expect
        .into_iter()
        .map(|(t, rows)| Expectation {
            at: t.span().start,
            table: t.into_inner(),
            rows: rows.into_inner().into_iter().map(row).collect(),
        })
        .collect();
    expect.sort_by_key(|e| e.at);
    let test = TestFile {
        path: path.to_path_buf(),
        text: text.to_string(),
        name: raw.name.unwrap_or(file_name),
        input: raw.input.into_iter().map(row).collect(),
        expect,
    };
    if test.input.is_empty() {
        return Err(test.err(0, "no [[input]] rows: a test needs at least one source row"));
    }
    if test.expect.is_empty() {
        return Err(test.err(
            text.len(),
            "nothing to check: add [[expect.<table>]] rows, or `<table> = []` under [expect]",
        ));
    }
    Ok(test)
}

/// A column type as analysts write it (`string`, `bigint`, ...), or an
/// Arrow type name (`Timestamp(Millisecond, None)`).
pub fn parse_type(name: &str) -> Result<DataType, String> {
    Ok(match name.trim().to_ascii_lowercase().as_str() {
        "string" | "varchar" | "text" | "utf8" => DataType::Utf8,
        "bigint" | "long" | "int64" => DataType::Int64,
        "int" | "integer" | "int32" => DataType::Int32,
        "smallint" | "int16" => DataType::Int16,
        "tinyint" | "int8" => DataType::Int8,
        "double" | "float64" => DataType::Float64,
        "float" | "real" | "float32" => DataType::Float32,
        "boolean" | "bool" => DataType::Boolean,
        "timestamp" => DataType::Timestamp(TimeUnit::Millisecond, None),
        "date" => DataType::Date32,
        _ => DataType::from_str(name.trim()).map_err(|_| {
            format!(
                "unknown type {name:?}; use string, bigint, int, double, boolean, timestamp, date, or an Arrow type name"
            )
        })?,
    })
}

/// Parses `tests/_source.toml`: the source columns in file order.
pub fn parse_declared_schema(path: &Path, text: &str) -> Result<SourceSchema, RulesCliError> {
    let raw: RawDeclared = toml::from_str(text).map_err(|e| toml_error(path, text, e))?;
    let mut cols: Vec<(usize, String, Spanned<String>)> = raw
        .columns
        .into_iter()
        .map(|(k, v)| (k.span().start, k.into_inner(), v))
        .collect();
    cols.sort_by_key(|(at, _, _)| *at);
    let mut fields = Vec::new();
    for (_, name, ty) in cols {
        let t = parse_type(ty.get_ref())
            .map_err(|m| RulesCliError::at(path, text, ty.span().start, m))?;
        fields.push(Field::new(name, t, true));
    }
    for p in &raw.partition_columns {
        if fields.iter().any(|f| f.name() == p) {
            let at = text.find(&format!("{p} =")).unwrap_or(0);
            return Err(RulesCliError::at(
                path,
                text,
                at,
                format!(
                    "{p} is a partition column (always a string); do not list it under [columns]"
                ),
            ));
        }
    }
    Ok(SourceSchema::new(
        Arc::new(Schema::new(fields)),
        raw.partition_columns,
    ))
}

fn cast_options() -> CastOptions<'static> {
    CastOptions {
        safe: false,
        format_options: FormatOptions::default(),
    }
}

/// One TOML value as a one-element array of type `ty`.
pub fn value_to_array(v: Option<&toml::Value>, ty: &DataType) -> Result<ArrayRef, String> {
    use toml::Value as V;
    let Some(v) = v else {
        return Ok(new_null_array(ty, 1));
    };
    let src: ArrayRef = match (v, ty) {
        (V::Integer(ms), DataType::Timestamp(unit, _)) => {
            let raw = match unit {
                TimeUnit::Second => ms.div_euclid(1000),
                TimeUnit::Millisecond => *ms,
                TimeUnit::Microsecond => ms.saturating_mul(1000),
                TimeUnit::Nanosecond => ms.saturating_mul(1_000_000),
            };
            Arc::new(Int64Array::from(vec![raw]))
        }
        (V::String(s), _) => Arc::new(StringArray::from(vec![s.as_str()])),
        (V::Integer(i), _) => Arc::new(Int64Array::from(vec![*i])),
        (V::Float(f), _) => Arc::new(Float64Array::from(vec![*f])),
        (V::Boolean(b), _) => Arc::new(BooleanArray::from(vec![*b])),
        (V::Datetime(d), _) => Arc::new(StringArray::from(vec![d.to_string()])),
        (V::Array(_) | V::Table(_), _) => {
            return Err("lists and tables are not supported as values".into());
        }
    };
    if src.data_type() == ty {
        return Ok(src);
    }
    cast_with_options(&src, ty, &cast_options()).map_err(|e| {
        let e = e.to_string();
        let e = e.strip_prefix("Cast error: ").unwrap_or(&e).to_string();
        format!("{v} is not a valid {ty}: {e}")
    })
}

/// Builds a batch of `schema` from rows; a column a row leaves out is NULL.
/// A key that is not a column is an error (in `file`).
pub fn rows_to_batch(
    file: &TestFile,
    rows: &[Row],
    schema: &SchemaRef,
    what: &str,
) -> Result<RecordBatch, RulesCliError> {
    for r in rows {
        for (k, at, _) in &r.cells {
            if schema.field_with_name(k).is_err() {
                let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
                return Err(file.err(
                    *at,
                    format!("{what} has no column {k}; columns: {}", names.join(", ")),
                ));
            }
        }
    }
    let mut cols = Vec::with_capacity(schema.fields().len());
    for f in schema.fields() {
        let mut parts = Vec::with_capacity(rows.len());
        for r in rows {
            let cell = r.cells.iter().find(|(k, _, _)| k == f.name());
            let a = value_to_array(cell.map(|(_, _, c)| &c.value), f.data_type()).map_err(|m| {
                file.err(
                    cell.map(|(_, _, c)| c.at).unwrap_or(r.at),
                    format!("{}: {m}", f.name()),
                )
            })?;
            parts.push(a);
        }
        let refs: Vec<&dyn Array> = parts.iter().map(|a| a.as_ref()).collect();
        let col = if refs.is_empty() {
            new_null_array(f.data_type(), 0)
        } else {
            concat(&refs).map_err(|e| file.err(0, e.to_string()))?
        };
        cols.push(col);
    }
    // Source columns are nullable for tests: a column left out is NULL.
    let relaxed = Arc::new(Schema::new(
        schema
            .fields()
            .iter()
            .map(|f| f.as_ref().clone().with_nullable(true))
            .collect::<Vec<_>>(),
    ));
    RecordBatch::try_new(relaxed, cols).map_err(|e| file.err(0, e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_convert_to_the_column_type() {
        let ts = DataType::Timestamp(TimeUnit::Millisecond, None);
        let a = value_to_array(Some(&toml::Value::Integer(1_795_132_800_000)), &ts).unwrap();
        assert_eq!(a.data_type(), &ts);
        let a = value_to_array(Some(&toml::Value::String("42".into())), &DataType::Int64).unwrap();
        assert_eq!(
            a.as_any().downcast_ref::<Int64Array>().unwrap().value(0),
            42
        );
        let e =
            value_to_array(Some(&toml::Value::String("x".into())), &DataType::Int64).unwrap_err();
        assert!(e.contains("is not a valid Int64"), "{e}");
        assert!(value_to_array(None, &DataType::Utf8).unwrap().is_null(0));
    }

    #[test]
    fn test_file_errors_are_located() {
        let p = Path::new("t.toml");
        let e = parse_test(p, "name = \"x\"\nbogus = 1\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("t.toml:2:1:"), "{e}");
        assert!(e.contains("bogus"), "{e}");
        let e = parse_test(p, "[[input]]\na = 1\n").unwrap_err().to_string();
        assert!(e.contains("nothing to check"), "{e}");
        let e = parse_test(p, "[expect]\nt = []\n").unwrap_err().to_string();
        assert!(e.contains("t.toml:1:1: no [[input]] rows"), "{e}");
    }

    #[test]
    fn declared_schema_keeps_file_order() {
        let s = parse_declared_schema(
            Path::new("_source.toml"),
            "partition_columns = [\"dt\"]\n[columns]\nz = \"string\"\na = \"bigint\"\n",
        )
        .unwrap();
        let names: Vec<&str> = s.full.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names, vec!["z", "a", "dt"]);
        let e = parse_declared_schema(Path::new("s.toml"), "[columns]\na = \"nope\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("s.toml:2:5: unknown type"), "{e}");
    }
}
