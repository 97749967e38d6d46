//! Time family: `to_dt(ts [, tz])` and `to_hour(ts [, tz])`.
//!
//! Derive Hive partition values from an event timestamp as seen on the wall
//! clock of a time zone, e.g. `dt = to_dt(event_time, 'Asia/Shanghai')` and
//! `hour = to_hour(event_time, 'Asia/Shanghai')`.
//!
//! Semantics:
//! - `ts` is an instant: an Arrow Timestamp of any unit (its time zone, if
//!   any, is ignored — Arrow timestamps always count from the Unix epoch in
//!   UTC, the zone only says how to display them; a timestamp without zone is
//!   read as UTC), or an integer counted in epoch **milliseconds**. Strings
//!   are not accepted: `CAST(x AS TIMESTAMP)` first.
//! - `tz` is an IANA zone name literal (`'Asia/Shanghai'`, `'UTC'`,
//!   `'America/New_York'`), matched case-sensitively. Daylight saving time is
//!   applied: the hour comes from the zone's offset at that instant, so a
//!   spring-forward day has no `02` in New York and a fall-back day has two
//!   instants mapping to `01`. The one-argument form means UTC.
//! - `to_dt` returns `YYYY-MM-DD`, `to_hour` returns `HH` (`00`..`23`).
//! - NULL when `ts` or `tz` is NULL, or when `ts` is outside the range the
//!   calendar library represents (about ±262,000 years).
//! - An unknown zone is an error naming it (at planning time for a literal);
//!   a zone that is not a constant (a column) is an error.

use std::fmt::Write;
use std::sync::Arc;

use arrow::array::StringBuilder;
use arrow::datatypes::{DataType, Field, FieldRef, TimeUnit};
use chrono::{DateTime, Datelike, Timelike, Utc};
use chrono_tz::Tz;
use datafusion_common::{DataFusionError, Result, exec_err, plan_err};
use datafusion_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

use crate::args::{
    I64Arg, check_arity, coerce_string, finish, instant_unit, is_small_integer, shape,
};

/// Which partition value a [`TimePart`] returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Part {
    /// `to_dt`: `YYYY-MM-DD`.
    Date,
    /// `to_hour`: `HH`.
    Hour,
}

impl Part {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Part::Date => "to_dt",
            Part::Hour => "to_hour",
        }
    }

    pub(crate) fn signature(self) -> &'static str {
        match self {
            Part::Date => "to_dt(ts TIMESTAMP|BIGINT epoch-ms [, tz VARCHAR constant]) -> VARCHAR",
            Part::Hour => {
                "to_hour(ts TIMESTAMP|BIGINT epoch-ms [, tz VARCHAR constant]) -> VARCHAR"
            }
        }
    }

    pub(crate) fn description(self) -> &'static str {
        match self {
            Part::Date => {
                "Local date 'YYYY-MM-DD' of an instant in an IANA time zone (default UTC), DST-aware"
            }
            Part::Hour => {
                "Local hour '00'..'23' of an instant in an IANA time zone (default UTC), DST-aware"
            }
        }
    }
}

/// `to_dt` or `to_hour`, depending on `part`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct TimePart {
    part: Part,
    signature: Signature,
}

impl TimePart {
    pub fn new(part: Part) -> Self {
        Self {
            part,
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

/// Parses an IANA zone name; the error names the function and the zone.
fn parse_zone(func: &str, name: &str) -> std::result::Result<Tz, String> {
    name.parse::<Tz>().map_err(|_| {
        format!(
            "{func}: unknown time zone '{name}'; expected an IANA zone name such as 'Asia/Shanghai', 'America/New_York' or 'UTC' (case-sensitive)"
        )
    })
}

/// The instant `v` (in `unit` since the Unix epoch) on the wall clock of `tz`.
fn local(v: i64, unit: TimeUnit, tz: &Tz) -> Option<DateTime<Tz>> {
    let utc: DateTime<Utc> = match unit {
        TimeUnit::Second => DateTime::from_timestamp(v, 0)?,
        TimeUnit::Millisecond => DateTime::from_timestamp_millis(v)?,
        TimeUnit::Microsecond => DateTime::from_timestamp_micros(v)?,
        TimeUnit::Nanosecond => DateTime::from_timestamp_nanos(v),
    };
    Some(utc.with_timezone(tz))
}

impl ScalarUDFImpl for TimePart {
    fn name(&self) -> &str {
        self.part.name()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let (name, sig) = (self.part.name(), self.part.signature());
        check_arity(name, sig, arg_types.len(), 1, 2)?;
        let ts = match &arg_types[0] {
            t @ DataType::Timestamp(..) => t.clone(),
            t if is_small_integer(t) || t == &DataType::Null => DataType::Int64,
            t => {
                return plan_err!(
                    "{name}: argument `ts` must be a timestamp or an integer of epoch milliseconds, got {t} (for text use CAST(x AS TIMESTAMP)); expected {sig}"
                );
            }
        };
        let mut out = vec![ts];
        if let Some(tz) = arg_types.get(1) {
            out.push(coerce_string(name, "tz", sig, tz)?);
        }
        Ok(out)
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        let (name, sig) = (self.part.name(), self.part.signature());
        check_arity(name, sig, args.arg_fields.len(), 1, 2)?;
        // A literal zone is checked here so a typo fails when the rule is
        // planned rather than on the first batch.
        if let Some(Some(tz)) = args.scalar_arguments.get(1)
            && let Some(Some(zone)) = tz.try_as_str()
        {
            parse_zone(name, zone).map_err(DataFusionError::Plan)?;
        }
        Ok(Arc::new(Field::new(name, DataType::Utf8, true)))
    }

    fn is_strict(&self) -> bool {
        true
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let name = self.part.name();
        let mut args = args.args.into_iter();
        let (Some(ts), tz, None) = (args.next(), args.next(), args.next()) else {
            return exec_err!(
                "{name}: expected 1 or 2 arguments; expected {}",
                self.part.signature()
            );
        };
        let zone: Option<Tz> = match &tz {
            None => Some(Tz::UTC),
            Some(ColumnarValue::Scalar(s)) => match s.try_as_str() {
                Some(Some(z)) => Some(parse_zone(name, z).map_err(DataFusionError::Execution)?),
                Some(None) => None,
                None if s.is_null() => None,
                None => {
                    return exec_err!(
                        "{name}: argument `tz` must be a string, got {}",
                        s.data_type()
                    );
                }
            },
            Some(ColumnarValue::Array(_)) => {
                return exec_err!(
                    "{name}: argument `tz` must be a constant IANA zone name such as 'Asia/Shanghai', got a column"
                );
            }
        };
        let shape = shape(&[&ts]);
        let unit = instant_unit(&ts.data_type());
        let values = I64Arg::new(name, "ts", &ts)?;
        let width = match self.part {
            Part::Date => 10,
            Part::Hour => 2,
        };
        let mut out = StringBuilder::with_capacity(shape.rows, shape.rows * width);
        for i in 0..shape.rows {
            let Some(dt) = zone
                .as_ref()
                .and_then(|tz| values.get(i).and_then(|v| local(v, unit, tz)))
            else {
                out.append_null();
                continue;
            };
            let written = match self.part {
                Part::Date => write!(out, "{:04}-{:02}-{:02}", dt.year(), dt.month(), dt.day()),
                Part::Hour => write!(out, "{:02}", dt.hour()),
            };
            written.map_err(|e| DataFusionError::Execution(format!("{name}: {e}")))?;
            out.append_value("");
        }
        finish(Arc::new(out.finish()), shape)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::testutil::*;
    use arrow::array::{Int64Array, TimestampMicrosecondArray, TimestampNanosecondArray};
    use datafusion_common::ScalarValue;
    use datafusion_expr::ScalarUDF;

    const SHANGHAI: &str = "Asia/Shanghai";
    const NEW_YORK: &str = "America/New_York";

    fn udf(part: Part) -> ScalarUDF {
        ScalarUDF::new_from_impl(TimePart::new(part))
    }

    fn ms(v: i64) -> ColumnarValue {
        ColumnarValue::Scalar(ScalarValue::Int64(Some(v)))
    }

    fn dt(ts: ColumnarValue, tz: &str) -> Option<String> {
        scalar_str(invoke(&udf(Part::Date), vec![ts, s(tz)]).unwrap())
    }

    fn hour(ts: ColumnarValue, tz: &str) -> Option<String> {
        scalar_str(invoke(&udf(Part::Hour), vec![ts, s(tz)]).unwrap())
    }

    fn both(epoch_ms: i64, tz: &str) -> (String, String) {
        (
            dt(ms(epoch_ms), tz).unwrap(),
            hour(ms(epoch_ms), tz).unwrap(),
        )
    }

    fn pair(d: &str, h: &str) -> (String, String) {
        (d.to_string(), h.to_string())
    }

    #[test]
    fn day_boundary_in_shanghai() {
        // 2024-01-01T15:59:59.999Z is 23:59:59.999 in Shanghai (UTC+8) ...
        assert_eq!(both(1_704_124_799_999, SHANGHAI), pair("2024-01-01", "23"));
        // ... and one millisecond later it is midnight of the next day.
        assert_eq!(both(1_704_124_800_000, SHANGHAI), pair("2024-01-02", "00"));
        // The same instants in UTC.
        assert_eq!(both(1_704_124_799_999, "UTC"), pair("2024-01-01", "15"));
        assert_eq!(both(1_704_124_800_000, "UTC"), pair("2024-01-01", "16"));
    }

    #[test]
    fn dst_transitions_in_new_york() {
        // Spring forward, 2024-03-10: 01:59:59 EST is followed by 03:00 EDT.
        assert_eq!(both(1_710_053_999_000, NEW_YORK), pair("2024-03-10", "01"));
        assert_eq!(both(1_710_054_000_000, NEW_YORK), pair("2024-03-10", "03"));
        // Fall back, 2024-11-03: 05:30Z is 01:30 EDT, 06:30Z is 01:30 EST.
        assert_eq!(both(1_730_611_800_000, NEW_YORK), pair("2024-11-03", "01"));
        assert_eq!(both(1_730_615_400_000, NEW_YORK), pair("2024-11-03", "01"));
        // Day boundary on the fall-back day (still UTC-4 at midnight).
        assert_eq!(both(1_730_606_399_000, NEW_YORK), pair("2024-11-02", "23"));
        assert_eq!(both(1_730_606_400_000, NEW_YORK), pair("2024-11-03", "00"));
        // Europe too: Berlin springs forward at 01:00Z on 2024-03-31.
        assert_eq!(
            both(1_711_846_799_000, "Europe/Berlin"),
            pair("2024-03-31", "01")
        );
        assert_eq!(
            both(1_711_846_800_000, "Europe/Berlin"),
            pair("2024-03-31", "03")
        );
    }

    #[test]
    fn every_timestamp_unit_and_zone_metadata() {
        let secs = 1_704_124_800i64;
        let cases = [
            ScalarValue::TimestampSecond(Some(secs), None),
            ScalarValue::TimestampMillisecond(Some(secs * 1_000), None),
            ScalarValue::TimestampMicrosecond(Some(secs * 1_000_000), Some("UTC".into())),
            ScalarValue::TimestampNanosecond(Some(secs * 1_000_000_000), Some("+08:00".into())),
            ScalarValue::Int64(Some(secs * 1_000)),
        ];
        for v in cases {
            let label = format!("{v:?}");
            let c = || ColumnarValue::Scalar(v.clone());
            assert_eq!(dt(c(), SHANGHAI).as_deref(), Some("2024-01-02"), "{label}");
            assert_eq!(hour(c(), SHANGHAI).as_deref(), Some("00"), "{label}");
            assert_eq!(hour(c(), "UTC").as_deref(), Some("16"), "{label}");
        }
    }

    #[test]
    fn one_argument_form_is_utc() {
        let out = invoke(&udf(Part::Hour), vec![ms(1_704_124_800_000)]).unwrap();
        assert_eq!(scalar_str(out).as_deref(), Some("16"));
        let out = invoke(&udf(Part::Date), vec![ms(-1)]).unwrap();
        assert_eq!(scalar_str(out).as_deref(), Some("1969-12-31"));
    }

    #[test]
    fn array_timestamps_with_scalar_zone() {
        let ts = arr(Arc::new(Int64Array::from(vec![
            Some(1_704_124_799_999),
            None,
            Some(1_704_124_800_000),
            Some(i64::MAX),
        ])));
        let out = array_strs(invoke(&udf(Part::Date), vec![ts, s(SHANGHAI)]).unwrap());
        assert_eq!(
            out,
            vec![
                Some("2024-01-01".into()),
                None,
                Some("2024-01-02".into()),
                None
            ]
        );
        let micros = arr(Arc::new(
            TimestampMicrosecondArray::from(vec![Some(1_704_124_800_000_000), None])
                .with_timezone("Asia/Tokyo"),
        ));
        let out = array_strs(invoke(&udf(Part::Hour), vec![micros, s(SHANGHAI)]).unwrap());
        assert_eq!(out, vec![Some("00".into()), None]);
        let nanos = arr(Arc::new(TimestampNanosecondArray::from(vec![0, -1])));
        let out = array_strs(invoke(&udf(Part::Hour), vec![nanos]).unwrap());
        assert_eq!(out, vec![Some("00".into()), Some("23".into())]);
    }

    #[test]
    fn nulls_and_out_of_range_give_null() {
        let null_ts = ColumnarValue::Scalar(ScalarValue::Int64(None));
        assert_eq!(dt(null_ts, SHANGHAI), None);
        assert_eq!(dt(ColumnarValue::Scalar(ScalarValue::Null), SHANGHAI), None);
        let out = invoke(&udf(Part::Hour), vec![ms(0), null_str()]).unwrap();
        assert_eq!(scalar_str(out), None);
        assert_eq!(dt(ms(i64::MIN), "UTC"), None);
        let far = ColumnarValue::Scalar(ScalarValue::TimestampSecond(Some(i64::MAX), None));
        assert_eq!(hour(far, "UTC"), None);
    }

    #[test]
    fn unknown_zone_is_an_error_naming_it() {
        let err = invoke(&udf(Part::Date), vec![ms(0), s("Asia/Shangai")]).unwrap_err();
        assert!(matches!(err, DataFusionError::Plan(_)), "{err:?}");
        let msg = err.to_string();
        assert!(
            msg.contains("to_dt: unknown time zone 'Asia/Shangai'"),
            "{msg}"
        );
        // Not seen at planning time: reported when the function runs.
        let err = udf(Part::Hour)
            .invoke_with_args(ScalarFunctionArgs {
                args: vec![ms(0), s("Mars/Olympus")],
                arg_fields: vec![],
                number_rows: 1,
                return_field: Arc::new(Field::new("to_hour", DataType::Utf8, true)),
                config_options: Default::default(),
            })
            .unwrap_err();
        assert!(matches!(err, DataFusionError::Execution(_)), "{err:?}");
        assert!(
            err.to_string()
                .contains("to_hour: unknown time zone 'Mars/Olympus'")
        );
    }

    #[test]
    fn zone_column_is_an_error() {
        let zones = strs(&[Some(SHANGHAI)]);
        let ts = arr(Arc::new(Int64Array::from(vec![0])));
        let msg = invoke(&udf(Part::Date), vec![ts, zones])
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("to_dt: argument `tz` must be a constant"),
            "{msg}"
        );
    }

    #[test]
    fn planning_checks_types_and_arity() {
        let u = udf(Part::Date);
        let ts_tz = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
        assert_eq!(
            u.coerce_types(&[ts_tz.clone(), DataType::Utf8]).unwrap(),
            vec![ts_tz, DataType::Utf8]
        );
        assert_eq!(
            u.coerce_types(&[DataType::Int32]).unwrap(),
            vec![DataType::Int64]
        );
        let err = u
            .coerce_types(&[DataType::Utf8, DataType::Utf8])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("to_dt: argument `ts` must be a timestamp"),
            "{err}"
        );
        let err = u
            .coerce_types(&[DataType::Int64, DataType::Int64])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("to_dt: argument `tz` must be a string"),
            "{err}"
        );
        let err = u.coerce_types(&[]).unwrap_err().to_string();
        assert!(err.contains("expected 1 or 2 arguments, got 0"), "{err}");
        let msg = invoke(&u, vec![s("2024-01-01"), s("UTC")])
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("to_dt: argument `ts` must be an integer or timestamp"),
            "{msg}"
        );
    }
}
