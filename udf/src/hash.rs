//! Hash family: `hash_bucket(value, n)`.
//!
//! Assigns each value to one of `n` buckets, for sampling and sharding rules
//! such as `WHERE hash_bucket(user_id, 100) < 5` (a stable 5% of users).
//!
//! # The hash (a compatibility contract — do not change)
//!
//! ```text
//! bytes  = UTF-8 bytes of the value's text form
//! h      = FNV-1a 64 (offset basis 0xcbf29ce484222325, prime 0x100000001b3)
//! h      = fmix64(h)   (MurmurHash3's 64-bit finaliser:
//!                       h ^= h >> 33; h *= 0xff51afd7ed558ccd;
//!                       h ^= h >> 33; h *= 0xc4ceb9fe1a85ec53; h ^= h >> 33)
//! bucket = h mod n     (unsigned 64-bit arithmetic, wrapping multiplies)
//! ```
//!
//! The text form of a string is the string itself; of an integer of any
//! width or signedness it is its plain decimal spelling (`-42`, `7`, no
//! leading zeros or sign for positives). So `hash_bucket(7, n)`,
//! `hash_bucket(CAST(7 AS INT), n)` and `hash_bucket('7', n)` agree, and a
//! user id read as a string from JSON lands in the same bucket as the same
//! id read from an integer column. The finaliser spreads FNV's weak low bits
//! so small or power-of-two `n` still get an even spread.
//!
//! Nothing here depends on the platform, the process, a random seed or a
//! library's internal hasher, so buckets are identical across runs,
//! machines and versions; the tests pin exact outputs to keep it that way.
//! Buckets written into partition paths or shared with other systems must
//! keep meaning the same thing: changing any step above is a breaking change.
//!
//! `n` must be a constant integer in `1..=2147483647`; anything else (zero,
//! negative, NULL, a column) is a planning error when visible at planning
//! time, and an execution error otherwise. NULL value -> NULL bucket.
//! Accepted value types: strings (Utf8, LargeUtf8, Utf8View, dictionary) and
//! integers (Int8..Int64, UInt8..UInt64); cast anything else explicitly.

use std::num::NonZeroU32;
use std::sync::Arc;

use arrow::array::Int32Array;
use arrow::datatypes::{DataType, Field, FieldRef};
use datafusion_common::{DataFusionError, Result, ScalarValue, exec_err, plan_err};
use datafusion_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

use crate::args::{
    I64Arg, StrArg, check_arity, finish, is_native_string, is_small_integer, shape, take_args,
};

pub(crate) const NAME: &str = "hash_bucket";
pub(crate) const SIGNATURE: &str =
    "hash_bucket(value VARCHAR|INTEGER|BIGINT, n BIGINT constant > 0) -> INT";
pub(crate) const DESCRIPTION: &str = "Stable bucket in [0, n) of a string or integer: fmix64(FNV-1a 64 of its text form) mod n; same on every machine and version";

const FNV_OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a, 64-bit.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(FNV_OFFSET_BASIS, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(FNV_PRIME)
    })
}

/// MurmurHash3's 64-bit finaliser (`fmix64`).
pub fn fmix64(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^= h >> 33;
    h
}

/// The bucket of a value whose text form is `bytes` (see the module docs).
pub fn bucket_of_bytes(bytes: &[u8], n: NonZeroU32) -> u32 {
    // The remainder is < n <= u32::MAX, so the narrowing cannot truncate.
    (fmix64(fnv1a64(bytes)) % u64::from(n.get())) as u32
}

/// The bucket of a string: same as `hash_bucket(s, n)`.
pub fn bucket_of_str(s: &str, n: NonZeroU32) -> u32 {
    bucket_of_bytes(s.as_bytes(), n)
}

/// The bucket of an integer: hashes its decimal text, so it equals
/// `bucket_of_str(&v.to_string(), n)`.
pub fn bucket_of_i64(v: i64, n: NonZeroU32) -> u32 {
    let mut buf = [0u8; 20];
    bucket_of_bytes(decimal(v, &mut buf), n)
}

/// Decimal ASCII spelling of `v`, written to the end of `buf` (20 bytes fit
/// `i64::MIN`, the longest).
fn decimal(v: i64, buf: &mut [u8; 20]) -> &[u8] {
    let mut rest = v.unsigned_abs();
    let mut start = buf.len();
    loop {
        start -= 1;
        buf[start] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    if v < 0 {
        start -= 1;
        buf[start] = b'-';
    }
    &buf[start..]
}

/// Validates the bucket count; the error text is shared by plan and exec.
fn bucket_count(n: &ScalarValue) -> std::result::Result<NonZeroU32, String> {
    let expected = "n (the bucket count) must be a constant integer between 1 and 2147483647";
    let t = n.data_type();
    if !(is_small_integer(&t) || t == DataType::UInt64 || t == DataType::Null) {
        return Err(format!("{NAME}: {expected}, got a value of type {t}"));
    }
    let v = match n.cast_to(&DataType::Int64) {
        Ok(ScalarValue::Int64(v)) => v,
        _ => return Err(format!("{NAME}: {expected}, got {n}")),
    };
    match v {
        None => Err(format!("{NAME}: {expected}, got NULL")),
        Some(v) => u32::try_from(v)
            .ok()
            .filter(|&v| i32::try_from(v).is_ok())
            .and_then(NonZeroU32::new)
            .ok_or_else(|| format!("{NAME}: {expected}, got {v}")),
    }
}

/// `hash_bucket(value, n) -> Int32`; see the module docs.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct HashBucket {
    signature: Signature,
}

impl HashBucket {
    pub fn new() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl Default for HashBucket {
    fn default() -> Self {
        Self::new()
    }
}

impl ScalarUDFImpl for HashBucket {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        check_arity(NAME, SIGNATURE, arg_types.len(), 2, 2)?;
        let value = match &arg_types[0] {
            t if is_native_string(t) => t.clone(),
            t if is_small_integer(t) => DataType::Int64,
            // UInt64 does not fit Int64; its decimal text hashes identically.
            DataType::UInt64 | DataType::Null => DataType::Utf8,
            DataType::Dictionary(_, v) if is_native_string(v) => DataType::Utf8,
            t => {
                return plan_err!(
                    "{NAME}: argument `value` must be a string or an integer, got {t} (cast it explicitly); expected {SIGNATURE}"
                );
            }
        };
        let n = match &arg_types[1] {
            t if is_small_integer(t) || t == &DataType::UInt64 || t == &DataType::Null => {
                DataType::Int64
            }
            t => {
                return plan_err!(
                    "{NAME}: argument `n` (the bucket count) must be a constant integer, got {t}; expected {SIGNATURE}"
                );
            }
        };
        Ok(vec![value, n])
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int32)
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        check_arity(NAME, SIGNATURE, args.arg_fields.len(), 2, 2)?;
        // A literal n is checked here so a bad rule fails when it is planned;
        // anything else is checked when the function runs.
        if let Some(Some(n)) = args.scalar_arguments.get(1) {
            bucket_count(n).map_err(DataFusionError::Plan)?;
        }
        Ok(Arc::new(Field::new(NAME, DataType::Int32, true)))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [value, n] = take_args::<2>(NAME, args.args)?;
        let n = match &n {
            ColumnarValue::Scalar(n) => bucket_count(n).map_err(DataFusionError::Execution)?,
            ColumnarValue::Array(_) => {
                return exec_err!(
                    "{NAME}: n (the bucket count) must be a constant integer between 1 and 2147483647, got a column"
                );
            }
        };
        let shape = shape(&[&value]);
        let value = match value.data_type() {
            DataType::UInt64 => value.cast_to(&DataType::Utf8, None)?,
            _ => value,
        };
        let t = value.data_type();
        let bucket = |b: u32| i32::try_from(b).ok();
        let out: Int32Array = if is_small_integer(&t) {
            let ints = I64Arg::new(NAME, "value", &value)?;
            (0..shape.rows)
                .map(|i| ints.get(i).and_then(|v| bucket(bucket_of_i64(v, n))))
                .collect()
        } else if is_native_string(&t)
            || t == DataType::Null
            || matches!(t, DataType::Dictionary(..))
        {
            let strs = StrArg::new(NAME, "value", &value)?;
            (0..shape.rows)
                .map(|i| strs.get(i).and_then(|v| bucket(bucket_of_str(v, n))))
                .collect()
        } else {
            return exec_err!("{NAME}: argument `value` must be a string or an integer, got {t}");
        };
        finish(Arc::new(out), shape)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::testutil::*;
    use arrow::array::{Int64Array, StringViewArray, UInt64Array};
    use datafusion_expr::ScalarUDF;

    fn udf() -> ScalarUDF {
        ScalarUDF::new_from_impl(HashBucket::new())
    }

    fn n(v: i64) -> ColumnarValue {
        ColumnarValue::Scalar(ScalarValue::Int64(Some(v)))
    }

    fn nz(v: u32) -> NonZeroU32 {
        NonZeroU32::new(v).unwrap()
    }

    fn scalar_i32(v: ColumnarValue) -> Option<i32> {
        match v {
            ColumnarValue::Scalar(ScalarValue::Int32(b)) => b,
            other => panic!("expected an Int32 scalar, got {other:?}"),
        }
    }

    #[test]
    fn fnv_matches_published_test_vectors() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    /// Pinned outputs: if this test fails, the hash changed and every bucket
    /// already written out would move. Do not update the numbers; fix the code.
    #[test]
    fn pinned_outputs() {
        assert_eq!(fmix64(fnv1a64(b"user-42")), 0xa395_32c7_ab05_1e8d);
        let cases: &[(&str, u32, u32)] = &[
            ("", 16, 6),
            ("a", 16, 11),
            ("user-42", 100, 53),
            ("北京", 7, 0),
            ("12345", 1024, 1011),
            ("-1", 2147483647, 1691235979),
        ];
        for &(s, n, want) in cases {
            assert_eq!(bucket_of_str(s, nz(n)), want, "{s:?} mod {n}");
        }
        // Through the SQL function, for integer and string columns.
        for (v, n_buckets, want) in [(42i64, 10, 6), (-7, 3, 0), (i64::MAX, 1000, 260)] {
            let col = arr(Arc::new(Int64Array::from(vec![v])));
            let out = array_i32(invoke(&udf(), vec![col, n(n_buckets)]).unwrap());
            assert_eq!(out, vec![Some(want)], "{v} mod {n_buckets}");
        }
        let users = strs(&[Some("user-1"), Some("user-2"), None]);
        assert_eq!(
            array_i32(invoke(&udf(), vec![users, n(100)]).unwrap()),
            vec![Some(77), Some(35), None]
        );
    }

    #[test]
    fn integers_hash_like_their_decimal_text() {
        for v in [0, 7, -7, 42, 12345, i64::MAX, i64::MIN, -1_000_000_007] {
            assert_eq!(
                bucket_of_i64(v, nz(97)),
                bucket_of_str(&v.to_string(), nz(97)),
                "{v}"
            );
        }
        let via_int = scalar_i32(invoke(&udf(), vec![n(12345), n(1024)]).unwrap());
        let via_str = scalar_i32(invoke(&udf(), vec![s("12345"), n(1024)]).unwrap());
        let via_i32 = scalar_i32(
            invoke(
                &udf(),
                vec![
                    ColumnarValue::Scalar(ScalarValue::Int32(Some(12345))),
                    n(1024),
                ],
            )
            .unwrap(),
        );
        assert_eq!(via_int, via_str);
        assert_eq!(via_i32, via_str);
        assert_eq!(via_str, Some(bucket_of_str("12345", nz(1024)) as i32));
    }

    #[test]
    fn results_are_in_range_and_spread() {
        let n_buckets = 16u32;
        let mut counts = [0u32; 16];
        for i in 0..16_000 {
            let b = bucket_of_str(&format!("user-{i}"), nz(n_buckets));
            counts[b as usize] += 1;
        }
        // 1000 expected per bucket; allow generous slack.
        assert!(
            counts.iter().all(|&c| (800..1200).contains(&c)),
            "{counts:?}"
        );
        assert_eq!(bucket_of_str("anything", nz(1)), 0);
        assert!(bucket_of_i64(i64::MIN, nz(i32::MAX as u32)) < i32::MAX as u32);
    }

    #[test]
    fn array_values() {
        let ints = arr(Arc::new(Int64Array::from(vec![Some(1), None, Some(-5)])));
        let out = array_i32(invoke(&udf(), vec![ints, n(10)]).unwrap());
        assert_eq!(
            out,
            vec![
                Some(bucket_of_i64(1, nz(10)) as i32),
                None,
                Some(bucket_of_i64(-5, nz(10)) as i32)
            ]
        );
        let texts = strs(&[Some("a"), None, Some("")]);
        let out = array_i32(invoke(&udf(), vec![texts, n(10)]).unwrap());
        assert_eq!(
            out,
            vec![
                Some(bucket_of_str("a", nz(10)) as i32),
                None,
                Some(bucket_of_str("", nz(10)) as i32)
            ]
        );
        let view = arr(Arc::new(StringViewArray::from(vec![Some("a")])));
        assert_eq!(
            array_i32(invoke(&udf(), vec![view, n(10)]).unwrap()),
            vec![Some(bucket_of_str("a", nz(10)) as i32)]
        );
        let big = arr(Arc::new(UInt64Array::from(vec![Some(u64::MAX)])));
        assert_eq!(
            array_i32(invoke(&udf(), vec![big, n(1000)]).unwrap()),
            vec![Some(bucket_of_str("18446744073709551615", nz(1000)) as i32)]
        );
    }

    #[test]
    fn nulls_give_null() {
        assert_eq!(
            scalar_i32(invoke(&udf(), vec![null_str(), n(8)]).unwrap()),
            None
        );
        assert_eq!(
            scalar_i32(
                invoke(
                    &udf(),
                    vec![ColumnarValue::Scalar(ScalarValue::Int64(None)), n(8)]
                )
                .unwrap()
            ),
            None
        );
        assert_eq!(
            scalar_i32(
                invoke(&udf(), vec![ColumnarValue::Scalar(ScalarValue::Null), n(8)]).unwrap()
            ),
            None
        );
    }

    #[test]
    fn bad_bucket_counts_are_errors() {
        for bad in [0, -3, i64::from(i32::MAX) + 1] {
            let err = invoke(&udf(), vec![s("x"), n(bad)]).unwrap_err();
            assert!(matches!(err, DataFusionError::Plan(_)), "{err:?}");
            let msg = err.to_string();
            assert!(
                msg.contains("hash_bucket: n (the bucket count) must be a constant integer between 1 and 2147483647")
                    && msg.contains(&bad.to_string()),
                "{msg}"
            );
        }
        let null_n = ColumnarValue::Scalar(ScalarValue::Int64(None));
        let msg = invoke(&udf(), vec![s("x"), null_n])
            .unwrap_err()
            .to_string();
        assert!(msg.contains("got NULL"), "{msg}");
        // n as a column: rejected when the function runs
        let col_n = arr(Arc::new(Int64Array::from(vec![4, 4])));
        let msg = invoke(&udf(), vec![strs(&[Some("a"), Some("b")]), col_n])
            .unwrap_err()
            .to_string();
        assert!(msg.contains("got a column"), "{msg}");
        // exec-time check when planning did not see the literal
        let err = udf()
            .invoke_with_args(ScalarFunctionArgs {
                args: vec![s("x"), n(0)],
                arg_fields: vec![],
                number_rows: 1,
                return_field: Arc::new(Field::new(NAME, DataType::Int32, true)),
                config_options: Default::default(),
            })
            .unwrap_err();
        assert!(matches!(err, DataFusionError::Execution(_)), "{err:?}");
    }

    #[test]
    fn planning_checks_types_and_arity() {
        let u = udf();
        assert_eq!(
            u.coerce_types(&[DataType::Int32, DataType::Int32]).unwrap(),
            vec![DataType::Int64, DataType::Int64]
        );
        assert_eq!(
            u.coerce_types(&[DataType::Utf8View, DataType::Int64])
                .unwrap(),
            vec![DataType::Utf8View, DataType::Int64]
        );
        assert_eq!(
            u.coerce_types(&[DataType::UInt64, DataType::Int64])
                .unwrap(),
            vec![DataType::Utf8, DataType::Int64]
        );
        let err = u
            .coerce_types(&[DataType::Float64, DataType::Int64])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("hash_bucket: argument `value` must be a string or an integer"),
            "{err}"
        );
        let err = u
            .coerce_types(&[DataType::Utf8, DataType::Float64])
            .unwrap_err()
            .to_string();
        assert!(err.contains("argument `n`"), "{err}");
        let err = u.coerce_types(&[DataType::Utf8]).unwrap_err().to_string();
        assert!(err.contains("expected 2 arguments, got 1"), "{err}");
    }

    #[test]
    fn decimal_spelling() {
        let mut buf = [0u8; 20];
        assert_eq!(decimal(0, &mut buf), b"0");
        assert_eq!(decimal(-9, &mut buf), b"-9");
        assert_eq!(decimal(i64::MIN, &mut buf), b"-9223372036854775808");
        assert_eq!(decimal(i64::MAX, &mut buf), b"9223372036854775807");
    }
}
