//! JSON family: `json_get_str(json, path)`.
//!
//! Reads one value out of a JSON object held in a string column, for rules
//! such as `WHERE json_get_str(body, 'event.type') = 'click'`.
//!
//! Semantics:
//! - `path` is a top-level key, or a dotted path `a.b.c` walking nested
//!   objects; a path segment that is a non-negative integer indexes into an
//!   array (`items.0.sku`). If the top-level object has a key equal to the
//!   whole path (dots included) that key wins over the dotted walk.
//! - Strings come back unquoted (escapes decoded); numbers, `true` and
//!   `false` come back as written in the document (so `1.50` stays `1.50` and
//!   a 20-digit id is not rounded through a float); objects and arrays come
//!   back as compact JSON with their original key order; JSON `null` is SQL
//!   NULL.
//! - NULL when the input or path is NULL, the input is not valid JSON, the
//!   top level is not an object, or the path does not exist. Bad input is
//!   never an error: one malformed row must not stop a batch.
//! - With duplicate keys in one object, the last one wins.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::StringBuilder;
use arrow::datatypes::DataType;
use datafusion_common::Result;
use datafusion_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility};
use serde_json::value::RawValue;

use crate::args::{StrArg, check_arity, coerce_string, finish, shape, take_args};

pub(crate) const NAME: &str = "json_get_str";
pub(crate) const SIGNATURE: &str = "json_get_str(json VARCHAR, path VARCHAR) -> VARCHAR";
pub(crate) const DESCRIPTION: &str = "Value at a top-level key or dotted path ('a.b', 'items.0') of a JSON object, as text; NULL if missing or not a JSON object";

/// `json_get_str(json, path) -> Utf8`; see the module docs.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct JsonGetStr {
    signature: Signature,
}

impl JsonGetStr {
    pub fn new() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl Default for JsonGetStr {
    fn default() -> Self {
        Self::new()
    }
}

impl ScalarUDFImpl for JsonGetStr {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        check_arity(NAME, SIGNATURE, arg_types.len(), 2, 2)?;
        Ok(vec![
            coerce_string(NAME, "json", SIGNATURE, &arg_types[0])?,
            coerce_string(NAME, "path", SIGNATURE, &arg_types[1])?,
        ])
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn is_strict(&self) -> bool {
        true
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [doc, path] = take_args::<2>(NAME, args.args)?;
        let shape = shape(&[&doc, &path]);
        let docs = StrArg::new(NAME, "json", &doc)?;
        let paths = StrArg::new(NAME, "path", &path)?;
        let mut out = StringBuilder::with_capacity(shape.rows, shape.rows * 8);
        for i in 0..shape.rows {
            match (docs.get(i), paths.get(i)) {
                (Some(d), Some(p)) => match get_path(d, p) {
                    Some(v) => out.append_value(v),
                    None => out.append_null(),
                },
                _ => out.append_null(),
            }
        }
        finish(Arc::new(out.finish()), shape)
    }
}

type Object<'a> = HashMap<String, &'a RawValue>;

/// The value at `path` in the JSON object `doc`, rendered as text.
pub(crate) fn get_path<'a>(doc: &'a str, path: &str) -> Option<Cow<'a, str>> {
    let top: Object<'a> = serde_json::from_str(doc).ok()?;
    let value = match top.get(path) {
        Some(v) => *v,
        None if path.contains('.') => {
            let mut segments = path.split('.');
            let mut cur: &'a RawValue = top.get(segments.next()?)?;
            for seg in segments {
                cur = child(cur, seg)?;
            }
            cur
        }
        None => return None,
    };
    render(value)
}

/// Member `seg` of an object, or element `seg` (a decimal index) of an array.
fn child<'a>(value: &'a RawValue, seg: &str) -> Option<&'a RawValue> {
    let text = value.get().trim_start();
    match text.as_bytes().first()? {
        b'{' => {
            let obj: Object<'a> = serde_json::from_str(text).ok()?;
            obj.get(seg).copied()
        }
        b'[' => {
            if !seg.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let idx: usize = seg.parse().ok()?;
            let items: Vec<&'a RawValue> = serde_json::from_str(text).ok()?;
            items.get(idx).copied()
        }
        _ => None,
    }
}

/// Text form of one (already validated) JSON value; None for `null`.
fn render(value: &RawValue) -> Option<Cow<'_, str>> {
    let text = value.get().trim();
    match text.as_bytes().first()? {
        b'"' => {
            let inner = text.get(1..text.len().saturating_sub(1))?;
            if inner.contains('\\') {
                serde_json::from_str::<String>(text).ok().map(Cow::Owned)
            } else {
                Some(Cow::Borrowed(inner))
            }
        }
        b'n' => None,
        b'{' | b'[' => Some(compact(text)),
        _ => Some(Cow::Borrowed(text)),
    }
}

/// Removes insignificant whitespace from valid JSON text, keeping key order
/// and the exact spelling of every scalar.
fn compact(text: &str) -> Cow<'_, str> {
    fn is_ws(c: char) -> bool {
        matches!(c, ' ' | '\t' | '\n' | '\r')
    }
    let mut out = String::with_capacity(text.len());
    let mut in_string = false;
    let mut escaped = false;
    let mut changed = false;
    for c in text.chars() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if is_ws(c) {
            changed = true;
        } else {
            if c == '"' {
                in_string = true;
            }
            out.push(c);
        }
    }
    if changed {
        Cow::Owned(out)
    } else {
        Cow::Borrowed(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::testutil::*;
    use arrow::array::{LargeStringArray, StringViewArray};
    use datafusion_common::ScalarValue;
    use datafusion_expr::ScalarUDF;

    fn udf() -> ScalarUDF {
        ScalarUDF::new_from_impl(JsonGetStr::new())
    }

    fn get(doc: &str, path: &str) -> Option<String> {
        scalar_str(invoke(&udf(), vec![s(doc), s(path)]).unwrap())
    }

    #[test]
    fn scalar_values_render_as_text() {
        let doc = r#"{"s":"hi","n":42,"f":1.50,"big":12345678901234567890,"t":true,"f2":false,"e":"a\"b\u00e9"}"#;
        assert_eq!(get(doc, "s").as_deref(), Some("hi"));
        assert_eq!(get(doc, "n").as_deref(), Some("42"));
        assert_eq!(get(doc, "f").as_deref(), Some("1.50"));
        assert_eq!(get(doc, "big").as_deref(), Some("12345678901234567890"));
        assert_eq!(get(doc, "t").as_deref(), Some("true"));
        assert_eq!(get(doc, "f2").as_deref(), Some("false"));
        assert_eq!(get(doc, "e").as_deref(), Some("a\"bé"));
    }

    #[test]
    fn objects_and_arrays_render_as_compact_json_in_original_order() {
        let doc = r#"{ "o" : { "z" : 1 , "a" : [ 1, "x y" , {"k": null} ] }, "arr": [ ] }"#;
        assert_eq!(
            get(doc, "o").as_deref(),
            Some(r#"{"z":1,"a":[1,"x y",{"k":null}]}"#)
        );
        assert_eq!(get(doc, "arr").as_deref(), Some("[]"));
    }

    #[test]
    fn dotted_paths_walk_objects_and_arrays() {
        let doc = r#"{"a":{"b":{"c":"deep"}},"items":[{"sku":"X1"},{"sku":"X2"}],"a.b":"literal"}"#;
        assert_eq!(get(doc, "a.b.c").as_deref(), Some("deep"));
        assert_eq!(get(doc, "items.1.sku").as_deref(), Some("X2"));
        assert_eq!(get(doc, "items.0").as_deref(), Some(r#"{"sku":"X1"}"#));
        // an exact top-level key containing dots wins
        assert_eq!(get(doc, "a.b").as_deref(), Some("literal"));
        assert_eq!(get(doc, "items.2.sku"), None);
        assert_eq!(get(doc, "items.x"), None);
        assert_eq!(get(doc, "items.+1.sku"), None);
        assert_eq!(get(doc, "a.b.c.d"), None);
        assert_eq!(get(doc, "a..b"), None);
    }

    #[test]
    fn missing_null_and_bad_input_give_null() {
        assert_eq!(get(r#"{"a":1}"#, "b"), None);
        assert_eq!(get(r#"{"a":null}"#, "a"), None);
        assert_eq!(get(r#"{"a":1"#, "a"), None); // truncated
        assert_eq!(get(r#"{"a":1} trailing"#, "a"), None);
        assert_eq!(get("not json", "a"), None);
        assert_eq!(get("", "a"), None);
        assert_eq!(get("[1,2]", "0"), None); // top level must be an object
        assert_eq!(get(r#""str""#, "a"), None);
        assert_eq!(get("42", "a"), None);
        assert_eq!(
            scalar_str(invoke(&udf(), vec![null_str(), s("a")]).unwrap()),
            None
        );
        assert_eq!(
            scalar_str(invoke(&udf(), vec![s(r#"{"a":1}"#), null_str()]).unwrap()),
            None
        );
        let untyped_null = ColumnarValue::Scalar(ScalarValue::Null);
        assert_eq!(
            scalar_str(invoke(&udf(), vec![untyped_null, s("a")]).unwrap()),
            None
        );
    }

    #[test]
    fn duplicate_keys_last_wins() {
        assert_eq!(get(r#"{"a":1,"a":2}"#, "a").as_deref(), Some("2"));
    }

    #[test]
    fn array_column_with_scalar_key() {
        let docs = strs(&[
            Some(r#"{"k":"v1"}"#),
            None,
            Some("garbage"),
            Some(r#"{"k":7}"#),
            Some(r#"{"other":1}"#),
        ]);
        let out = array_strs(invoke(&udf(), vec![docs, s("k")]).unwrap());
        assert_eq!(
            out,
            vec![Some("v1".into()), None, None, Some("7".into()), None]
        );
    }

    #[test]
    fn array_keys_and_scalar_document() {
        let keys = strs(&[Some("a"), Some("b"), None]);
        let out = array_strs(invoke(&udf(), vec![s(r#"{"a":1,"b":"two"}"#), keys]).unwrap());
        assert_eq!(out, vec![Some("1".into()), Some("two".into()), None]);
    }

    #[test]
    fn large_and_view_string_columns() {
        let large = arr(Arc::new(LargeStringArray::from(vec![
            Some(r#"{"k":"L"}"#),
            None,
        ])));
        assert_eq!(
            array_strs(invoke(&udf(), vec![large, s("k")]).unwrap()),
            vec![Some("L".into()), None]
        );
        let view = arr(Arc::new(StringViewArray::from(vec![
            Some(r#"{"k":"V"}"#),
            Some("{}"),
        ])));
        assert_eq!(
            array_strs(invoke(&udf(), vec![view, s("k")]).unwrap()),
            vec![Some("V".into()), None]
        );
    }

    #[test]
    fn planning_checks_types_and_arity() {
        let u = udf();
        assert_eq!(
            u.coerce_types(&[DataType::Utf8View, DataType::Utf8])
                .unwrap(),
            vec![DataType::Utf8View, DataType::Utf8]
        );
        assert_eq!(
            u.coerce_types(&[DataType::Null, DataType::Utf8]).unwrap(),
            vec![DataType::Utf8, DataType::Utf8]
        );
        let err = u
            .coerce_types(&[DataType::Int64, DataType::Utf8])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("json_get_str") && err.contains("must be a string"),
            "{err}"
        );
        let err = u.coerce_types(&[DataType::Utf8]).unwrap_err().to_string();
        assert!(err.contains("expected 2 arguments, got 1"), "{err}");
        let err = invoke(
            &u,
            vec![ColumnarValue::Scalar(ScalarValue::Int64(Some(1))), s("a")],
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("json_get_str: argument `json` must be a string"),
            "{err}"
        );
    }

    #[test]
    fn compact_keeps_strings_intact() {
        assert_eq!(compact(r#"[ "a b\" c" , 1 ]"#), r#"["a b\" c",1]"#);
        assert!(matches!(compact(r#"{"a":1}"#), Cow::Borrowed(_)));
    }
}
