//! # sluice-udf
//!
//! The scalar SQL functions that sluice routing rules may call, on top of
//! DataFusion's built-ins. This crate owns their names, signatures, exact
//! semantics (including NULL and bad-input behaviour) and their stability
//! guarantees; it knows nothing about sluice itself (it depends only on
//! Arrow, `datafusion-common` and `datafusion-expr`), and sluice registers
//! whatever [`all`] returns and lists [`docs`] in its CLI.
//!
//! | function | returns |
//! | --- | --- |
//! | `json_get_str(json, path)` | text at a key or dotted path of a JSON object |
//! | `url_host(url)`, `url_path(url)`, `url_param(url, name)` | parts of an absolute URL |
//! | `hash_bucket(value, n)` | stable bucket in `[0, n)` (FNV-1a 64 + fmix64, pinned) |
//! | `to_dt(ts [, tz])`, `to_hour(ts [, tz])` | Hive `dt`/`hour` partition values in an IANA zone |
//!
//! Conventions every function follows:
//! - Bad *data* (unparseable JSON or URL, a missing key) gives NULL, never an
//!   error, so one bad row cannot stop a batch; NULL in gives NULL out.
//! - Bad *rules* (wrong argument count or type, an unknown zone, a
//!   non-positive bucket count) are errors whose message names the function
//!   and says what was expected; literals are checked at planning time.
//! - Arguments may be columns (arrays) or constants (scalars); when every
//!   argument is a constant the result is a constant.
//! - All functions are `Immutable` (same input, same output), so DataFusion
//!   may fold them over literals.
//!
//! ## How to add a function
//!
//! 1. Pick the family file (`json.rs`, `url.rs`, `hash.rs`, `time.rs`) or
//!    create a new one with a header comment stating the exact semantics,
//!    including NULL and bad-input behaviour.
//! 2. Write a struct deriving `Debug, PartialEq, Eq, Hash` holding a
//!    `Signature::user_defined(Volatility::Immutable)`, and implement
//!    `datafusion_expr::ScalarUDFImpl` for it: `name`, `signature`,
//!    `coerce_types` (check arity and types with `args::check_arity` /
//!    `args::coerce_string`, returning plan errors naming the function),
//!    `return_type`, and `invoke_with_args`, which must handle both
//!    `ColumnarValue::Scalar` and `ColumnarValue::Array` arguments (use
//!    `args::StrArg` / `args::I64Arg`, `args::shape` and `args::finish`).
//!    Validate literal-only arguments in `return_field_from_args` too, so
//!    bad rules fail at planning. Never `unwrap`/`expect` on data.
//! 3. Add it to [`all`] and a `(name, signature, description)` row to
//!    [`docs`] (the test in this file checks they match).
//! 4. Unit-test in the same file: normal values, NULLs, bad input, scalar
//!    and array arguments, and planning errors (`args::testutil::invoke`
//!    plans and invokes a UDF the way DataFusion does). If the output must
//!    stay stable across versions (like `hash_bucket`), pin exact outputs.
//! 5. Run `cargo test -p sluice-udf`, `cargo clippy -p sluice-udf
//!    --all-targets -- -D warnings` and `cargo fmt -p sluice-udf`.

mod args;
pub mod hash;
pub mod json;
pub mod time;
pub mod url;

use datafusion_expr::ScalarUDF;

/// Every function in this crate, ready to register with DataFusion
/// (`SessionContext::register_udf` or a `FunctionRegistry`).
pub fn all() -> Vec<ScalarUDF> {
    vec![
        ScalarUDF::new_from_impl(json::JsonGetStr::new()),
        ScalarUDF::new_from_impl(url::UrlPart::new(url::Part::Host)),
        ScalarUDF::new_from_impl(url::UrlPart::new(url::Part::Path)),
        ScalarUDF::new_from_impl(url::UrlPart::new(url::Part::Param)),
        ScalarUDF::new_from_impl(hash::HashBucket::new()),
        ScalarUDF::new_from_impl(time::TimePart::new(time::Part::Date)),
        ScalarUDF::new_from_impl(time::TimePart::new(time::Part::Hour)),
    ]
}

/// `(name, SQL signature, one-line description)` for every function in
/// [`all`], in the same order, for the CLI to list.
pub fn docs() -> Vec<(&'static str, &'static str, &'static str)> {
    let url = |p: url::Part| (p.name(), p.signature(), p.description());
    let time = |p: time::Part| (p.name(), p.signature(), p.description());
    vec![
        (json::NAME, json::SIGNATURE, json::DESCRIPTION),
        url(url::Part::Host),
        url(url::Part::Path),
        url(url::Part::Param),
        (hash::NAME, hash::SIGNATURE, hash::DESCRIPTION),
        time(time::Part::Date),
        time(time::Part::Hour),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn docs_match_all() {
        let names: Vec<String> = all().iter().map(|f| f.name().to_string()).collect();
        let documented: Vec<String> = docs().iter().map(|d| d.0.to_string()).collect();
        assert_eq!(names, documented);
        assert_eq!(names.iter().collect::<HashSet<_>>().len(), names.len());
        for (name, signature, description) in docs() {
            assert!(signature.starts_with(&format!("{name}(")), "{signature}");
            assert!(signature.contains(") -> "), "{signature}");
            assert!(!description.is_empty() && !description.contains('\n'));
        }
    }

    #[test]
    fn all_functions_are_immutable() {
        for f in all() {
            assert_eq!(
                f.signature().volatility,
                datafusion_expr::Volatility::Immutable,
                "{}",
                f.name()
            );
        }
    }
}
