//! Argument plumbing shared by every function family in this crate.
//!
//! DataFusion hands a scalar function one [`ColumnarValue`] per argument: an
//! `Array` (one value per row, e.g. a column) or a `Scalar` (one value for
//! every row, e.g. a literal such as a JSON key or a time zone name). The
//! helpers here turn either form into a per-row accessor, check types with
//! messages that name the calling function, and package the result back as a
//! scalar when every argument was a scalar (constant folding) or as an array
//! otherwise.

use arrow::array::{
    Array, ArrayRef, AsArray, Int64Array, LargeStringArray, StringArray, StringViewArray,
};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Int64Type, TimeUnit};
use datafusion_common::{Result, ScalarValue, exec_datafusion_err, exec_err, plan_err};
use datafusion_expr::ColumnarValue;

/// True for the string types the functions accept natively.
pub(crate) fn is_native_string(t: &DataType) -> bool {
    matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
}

/// True for a dictionary whose values are strings.
fn is_dictionary_string(t: &DataType) -> bool {
    matches!(t, DataType::Dictionary(_, v) if is_native_string(v))
}

/// True for integer types that widen losslessly to Int64.
pub(crate) fn is_small_integer(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
    )
}

/// Planning-time coercion of a string argument: native string types stay as
/// they are, dictionary-encoded strings and untyped NULL become Utf8, anything
/// else is a planning error naming the function, the argument and the
/// expected signature.
pub(crate) fn coerce_string(
    func: &str,
    arg: &str,
    signature: &str,
    t: &DataType,
) -> Result<DataType> {
    if is_native_string(t) {
        Ok(t.clone())
    } else if is_dictionary_string(t) || t == &DataType::Null {
        Ok(DataType::Utf8)
    } else {
        plan_err!("{func}: argument `{arg}` must be a string, got {t}; expected {signature}")
    }
}

/// Planning-time arity check for functions taking `min..=max` arguments.
pub(crate) fn check_arity(
    func: &str,
    signature: &str,
    got: usize,
    min: usize,
    max: usize,
) -> Result<()> {
    if got < min || got > max {
        let want = if min == max {
            format!("{min}")
        } else {
            format!("{min} or {max}")
        };
        return plan_err!("{func}: expected {want} arguments, got {got}; expected {signature}");
    }
    Ok(())
}

/// Execution-time arity check; returns the arguments as a fixed-size array.
pub(crate) fn take_args<const N: usize>(
    func: &str,
    args: Vec<ColumnarValue>,
) -> Result<[ColumnarValue; N]> {
    let got = args.len();
    args.try_into()
        .map_err(|_| exec_datafusion_err!("{func}: expected {N} arguments, got {got}"))
}

/// How many rows to produce and whether the answer is a scalar.
///
/// When every argument is a scalar the function is evaluated once and the
/// result is a scalar; otherwise the output has as many rows as the array
/// arguments (DataFusion gives them all `number_rows` rows; the accessors
/// below treat a row past the end of a shorter array as NULL rather than
/// panicking).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Shape {
    pub rows: usize,
    pub scalar: bool,
}

pub(crate) fn shape(args: &[&ColumnarValue]) -> Shape {
    let array_len = args.iter().find_map(|a| match a {
        ColumnarValue::Array(a) => Some(a.len()),
        ColumnarValue::Scalar(_) => None,
    });
    match array_len {
        Some(len) => Shape {
            rows: len,
            scalar: false,
        },
        None => Shape {
            rows: 1,
            scalar: true,
        },
    }
}

/// Returns `array` as the function result, as a scalar when `shape.scalar`.
pub(crate) fn finish(array: ArrayRef, shape: Shape) -> Result<ColumnarValue> {
    if shape.scalar {
        Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(
            &array, 0,
        )?))
    } else {
        Ok(ColumnarValue::Array(array))
    }
}

/// A string argument: one value for all rows, or one per row.
pub(crate) enum StrArg<'a> {
    Scalar(Option<&'a str>),
    Utf8(StringArray),
    Large(LargeStringArray),
    View(StringViewArray),
}

impl<'a> StrArg<'a> {
    /// Wraps argument `arg` of function `func`; errors if it is not a string.
    pub(crate) fn new(func: &str, arg: &str, value: &'a ColumnarValue) -> Result<Self> {
        match value {
            ColumnarValue::Scalar(s) => {
                if let Some(v) = s.try_as_str() {
                    Ok(StrArg::Scalar(v))
                } else if s.is_null() {
                    Ok(StrArg::Scalar(None))
                } else {
                    exec_err!(
                        "{func}: argument `{arg}` must be a string, got {}",
                        s.data_type()
                    )
                }
            }
            ColumnarValue::Array(a) => match a.data_type() {
                DataType::Utf8 => Ok(StrArg::Utf8(a.as_string::<i32>().clone())),
                DataType::LargeUtf8 => Ok(StrArg::Large(a.as_string::<i64>().clone())),
                DataType::Utf8View => Ok(StrArg::View(a.as_string_view().clone())),
                t if is_dictionary_string(t) || t == &DataType::Null => {
                    let a = cast(a, &DataType::Utf8)?;
                    Ok(StrArg::Utf8(a.as_string::<i32>().clone()))
                }
                t => exec_err!("{func}: argument `{arg}` must be a string, got {t}"),
            },
        }
    }

    /// The value at row `i` (NULL for a null or an out-of-range row).
    pub(crate) fn get(&self, i: usize) -> Option<&str> {
        fn at<A: Array>(a: &A, i: usize) -> bool {
            i < a.len() && a.is_valid(i)
        }
        match self {
            StrArg::Scalar(v) => *v,
            StrArg::Utf8(a) => at(a, i).then(|| a.value(i)),
            StrArg::Large(a) => at(a, i).then(|| a.value(i)),
            StrArg::View(a) => at(a, i).then(|| a.value(i)),
        }
    }
}

/// An Int64 argument: one value for all rows, or one per row.
pub(crate) enum I64Arg {
    Scalar(Option<i64>),
    Array(Int64Array),
}

impl I64Arg {
    /// Converts an integer or timestamp argument to raw Int64 values (for a
    /// timestamp, the count of its unit since the Unix epoch).
    pub(crate) fn new(func: &str, arg: &str, value: &ColumnarValue) -> Result<Self> {
        let t = value.data_type();
        if !(is_small_integer(&t) || t == DataType::Null || matches!(t, DataType::Timestamp(..))) {
            return exec_err!("{func}: argument `{arg}` must be an integer or timestamp, got {t}");
        }
        match value {
            ColumnarValue::Scalar(s) => match s.cast_to(&DataType::Int64)? {
                ScalarValue::Int64(v) => Ok(I64Arg::Scalar(v)),
                other => exec_err!(
                    "{func}: argument `{arg}` could not be read as Int64 (got {})",
                    other.data_type()
                ),
            },
            ColumnarValue::Array(a) => {
                let a = cast(a, &DataType::Int64)?;
                Ok(I64Arg::Array(a.as_primitive::<Int64Type>().clone()))
            }
        }
    }

    /// The value at row `i` (NULL for a null or an out-of-range row).
    pub(crate) fn get(&self, i: usize) -> Option<i64> {
        match self {
            I64Arg::Scalar(v) => *v,
            I64Arg::Array(a) => (i < a.len() && a.is_valid(i)).then(|| a.value(i)),
        }
    }
}

/// The unit of an instant argument: an Arrow timestamp's own unit, or
/// milliseconds for a plain integer (epoch milliseconds).
pub(crate) fn instant_unit(t: &DataType) -> TimeUnit {
    match t {
        DataType::Timestamp(unit, _) => *unit,
        _ => TimeUnit::Millisecond,
    }
}

#[cfg(test)]
pub(crate) mod testutil {
    //! Helpers that call a UDF the way DataFusion's physical planner does.

    use std::sync::Arc;

    use arrow::array::{Array, ArrayRef, AsArray};
    use arrow::datatypes::{DataType, Field, FieldRef, Int32Type};
    use datafusion_common::config::ConfigOptions;
    use datafusion_common::{Result, ScalarValue};
    use datafusion_expr::{ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF};

    /// Plans (return field, with literal checks) and invokes `udf` on `args`.
    pub fn invoke(udf: &ScalarUDF, args: Vec<ColumnarValue>) -> Result<ColumnarValue> {
        let rows = args
            .iter()
            .find_map(|a| match a {
                ColumnarValue::Array(a) => Some(a.len()),
                ColumnarValue::Scalar(_) => None,
            })
            .unwrap_or(1);
        let arg_fields: Vec<FieldRef> = args
            .iter()
            .enumerate()
            .map(|(i, a)| Arc::new(Field::new(format!("a{i}"), a.data_type(), true)))
            .collect();
        let scalars: Vec<Option<&ScalarValue>> = args
            .iter()
            .map(|a| match a {
                ColumnarValue::Scalar(s) => Some(s),
                ColumnarValue::Array(_) => None,
            })
            .collect();
        let return_field = udf.return_field_from_args(ReturnFieldArgs {
            arg_fields: &arg_fields,
            scalar_arguments: &scalars,
        })?;
        udf.invoke_with_args(ScalarFunctionArgs {
            args,
            arg_fields,
            number_rows: rows,
            return_field,
            config_options: Arc::new(ConfigOptions::default()),
        })
    }

    pub fn s(v: &str) -> ColumnarValue {
        ColumnarValue::Scalar(ScalarValue::Utf8(Some(v.to_string())))
    }

    pub fn null_str() -> ColumnarValue {
        ColumnarValue::Scalar(ScalarValue::Utf8(None))
    }

    pub fn arr(a: ArrayRef) -> ColumnarValue {
        ColumnarValue::Array(a)
    }

    /// A Utf8 array column.
    pub fn strs(v: &[Option<&str>]) -> ColumnarValue {
        ColumnarValue::Array(Arc::new(arrow::array::StringArray::from(v.to_vec())))
    }

    /// The result of a call expected to return a scalar Utf8.
    pub fn scalar_str(v: ColumnarValue) -> Option<String> {
        match v {
            ColumnarValue::Scalar(ScalarValue::Utf8(s)) => s,
            other => panic!("expected a Utf8 scalar, got {other:?}"),
        }
    }

    /// The result of a call expected to return a Utf8 array.
    pub fn array_strs(v: ColumnarValue) -> Vec<Option<String>> {
        match v {
            ColumnarValue::Array(a) => {
                assert_eq!(a.data_type(), &DataType::Utf8);
                a.as_string::<i32>()
                    .iter()
                    .map(|x| x.map(str::to_string))
                    .collect()
            }
            other => panic!("expected an array, got {other:?}"),
        }
    }

    /// The result of a call expected to return an Int32 array.
    pub fn array_i32(v: ColumnarValue) -> Vec<Option<i32>> {
        match v {
            ColumnarValue::Array(a) => a.as_primitive::<Int32Type>().iter().collect(),
            other => panic!("expected an array, got {other:?}"),
        }
    }
}
