//! URL family: `url_host(url)`, `url_path(url)`, `url_param(url, name)`.
//!
//! Pulls parts out of absolute URLs (`scheme://host/path?query#fragment`),
//! parsed by the WHATWG-conformant `url` crate, for rules such as
//! `WHERE url_host(referer) = 'shop.example.com'`.
//!
//! Semantics:
//! - `url_host`: the host as the URL standard normalises it (lower-cased,
//!   IDNA/punycode for non-ASCII names, IPv6 in brackets), without port or
//!   user info. NULL for URLs without a host (`mailto:`, `file:///x`).
//! - `url_path`: the path, still percent-encoded, with `.`/`..` segments
//!   resolved; `/` for `http://h`. NULL for opaque URLs (`mailto:a@b`).
//! - `url_param`: the value of the first query parameter named `name`
//!   (names and values percent-decoded, `+` read as a space); `''` for a
//!   parameter present without a value (`?flag` or `?flag=`).
//! - NULL when any argument is NULL, the text is not an absolute URL (no
//!   scheme, e.g. `example.com/x` or `/x`), or the part is missing. Bad input
//!   is never an error.

use std::sync::Arc;

use ::url::Url;
use arrow::array::StringBuilder;
use arrow::datatypes::DataType;
use datafusion_common::Result;
use datafusion_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility};

use crate::args::{StrArg, check_arity, coerce_string, finish, shape, take_args};

/// Which part of the URL a [`UrlPart`] returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Part {
    Host,
    Path,
    Param,
}

impl Part {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Part::Host => "url_host",
            Part::Path => "url_path",
            Part::Param => "url_param",
        }
    }

    pub(crate) fn signature(self) -> &'static str {
        match self {
            Part::Host => "url_host(url VARCHAR) -> VARCHAR",
            Part::Path => "url_path(url VARCHAR) -> VARCHAR",
            Part::Param => "url_param(url VARCHAR, name VARCHAR) -> VARCHAR",
        }
    }

    pub(crate) fn description(self) -> &'static str {
        match self {
            Part::Host => {
                "Host of an absolute URL, lower-cased, without port; NULL if unparseable or hostless"
            }
            Part::Path => {
                "Path of an absolute URL, percent-encoded as written ('/' if empty); NULL if unparseable"
            }
            Part::Param => {
                "Decoded value of the first query parameter with that name ('' if it has no value); NULL if absent"
            }
        }
    }

    fn arity(self) -> usize {
        match self {
            Part::Host | Part::Path => 1,
            Part::Param => 2,
        }
    }
}

/// `url_host`, `url_path` or `url_param`, depending on `part`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct UrlPart {
    part: Part,
    signature: Signature,
}

impl UrlPart {
    pub fn new(part: Part) -> Self {
        Self {
            part,
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for UrlPart {
    fn name(&self) -> &str {
        self.part.name()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let (name, sig, n) = (self.part.name(), self.part.signature(), self.part.arity());
        check_arity(name, sig, arg_types.len(), n, n)?;
        let labels = ["url", "name"];
        arg_types
            .iter()
            .zip(labels)
            .map(|(t, label)| coerce_string(name, label, sig, t))
            .collect()
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn is_strict(&self) -> bool {
        true
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let name = self.part.name();
        match self.part {
            Part::Host | Part::Path => {
                let [url] = take_args::<1>(name, args.args)?;
                let shape = shape(&[&url]);
                let urls = StrArg::new(name, "url", &url)?;
                let mut out = StringBuilder::with_capacity(shape.rows, shape.rows * 16);
                for i in 0..shape.rows {
                    let parsed = urls.get(i).and_then(parse);
                    let value = parsed.as_ref().and_then(|u| match self.part {
                        Part::Host => host(u),
                        _ => path(u),
                    });
                    out.append_option(value);
                }
                finish(Arc::new(out.finish()), shape)
            }
            Part::Param => {
                let [url, param] = take_args::<2>(name, args.args)?;
                let shape = shape(&[&url, &param]);
                let urls = StrArg::new(name, "url", &url)?;
                let params = StrArg::new(name, "name", &param)?;
                let mut out = StringBuilder::with_capacity(shape.rows, shape.rows * 8);
                for i in 0..shape.rows {
                    let value = match (urls.get(i), params.get(i)) {
                        (Some(u), Some(p)) => parse(u).and_then(|u| query_param(&u, p)),
                        _ => None,
                    };
                    out.append_option(value);
                }
                finish(Arc::new(out.finish()), shape)
            }
        }
    }
}

fn parse(text: &str) -> Option<Url> {
    Url::parse(text).ok()
}

fn host(url: &Url) -> Option<&str> {
    url.host_str().filter(|h| !h.is_empty())
}

fn path(url: &Url) -> Option<&str> {
    if url.cannot_be_a_base() {
        None
    } else {
        Some(url.path())
    }
}

fn query_param(url: &Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::testutil::*;
    use arrow::array::StringViewArray;
    use datafusion_common::ScalarValue;
    use datafusion_expr::ScalarUDF;

    fn udf(part: Part) -> ScalarUDF {
        ScalarUDF::new_from_impl(UrlPart::new(part))
    }

    fn one(part: Part, url: &str) -> Option<String> {
        scalar_str(invoke(&udf(part), vec![s(url)]).unwrap())
    }

    fn param(url: &str, name: &str) -> Option<String> {
        scalar_str(invoke(&udf(Part::Param), vec![s(url), s(name)]).unwrap())
    }

    #[test]
    fn host_normal_values() {
        let h = |u| one(Part::Host, u);
        assert_eq!(
            h("https://Shop.Example.COM:8443/a?b=1").as_deref(),
            Some("shop.example.com")
        );
        assert_eq!(
            h("http://user:pw@example.com/").as_deref(),
            Some("example.com")
        );
        assert_eq!(h("http://[::1]:8080/x").as_deref(), Some("[::1]"));
        assert_eq!(h("http://10.0.0.1/x").as_deref(), Some("10.0.0.1"));
        assert_eq!(
            h("http://bücher.example/").as_deref(),
            Some("xn--bcher-kva.example")
        );
        assert_eq!(
            h("  https://padded.example/  ").as_deref(),
            Some("padded.example")
        );
    }

    #[test]
    fn path_normal_values() {
        let p = |u| one(Part::Path, u);
        assert_eq!(
            p("https://h/a/b.html?x=1#frag").as_deref(),
            Some("/a/b.html")
        );
        assert_eq!(p("https://h").as_deref(), Some("/"));
        assert_eq!(p("https://h/a/../b/./c").as_deref(), Some("/b/c"));
        assert_eq!(
            p("https://h/caf%C3%A9 x").as_deref(),
            Some("/caf%C3%A9%20x")
        );
    }

    #[test]
    fn param_normal_values() {
        let u = "https://h/p?utm_source=news%20letter&q=a+b&flag&empty=&dup=1&dup=2#q=frag";
        assert_eq!(param(u, "utm_source").as_deref(), Some("news letter"));
        assert_eq!(param(u, "q").as_deref(), Some("a b"));
        assert_eq!(param(u, "flag").as_deref(), Some(""));
        assert_eq!(param(u, "empty").as_deref(), Some(""));
        assert_eq!(param(u, "dup").as_deref(), Some("1"));
        assert_eq!(param(u, "missing"), None);
        assert_eq!(param("https://h/p", "q"), None);
        assert_eq!(param("https://h/p?%71=enc", "q").as_deref(), Some("enc"));
    }

    #[test]
    fn bad_input_and_missing_parts_give_null() {
        for bad in [
            "",
            "not a url",
            "example.com/path",
            "/relative/path",
            "http://",
            "https://exa mple.com/",
        ] {
            assert_eq!(one(Part::Host, bad), None, "{bad}");
            assert_eq!(one(Part::Path, bad), None, "{bad}");
            assert_eq!(param(bad, "a"), None, "{bad}");
        }
        assert_eq!(one(Part::Host, "mailto:someone@example.com"), None);
        assert_eq!(one(Part::Path, "mailto:someone@example.com"), None);
        assert_eq!(one(Part::Host, "file:///etc/hosts"), None);
        assert_eq!(
            one(Part::Path, "file:///etc/hosts").as_deref(),
            Some("/etc/hosts")
        );
    }

    #[test]
    fn nulls_give_null() {
        assert_eq!(
            scalar_str(invoke(&udf(Part::Host), vec![null_str()]).unwrap()),
            None
        );
        assert_eq!(
            scalar_str(invoke(&udf(Part::Path), vec![null_str()]).unwrap()),
            None
        );
        let null = || ColumnarValue::Scalar(ScalarValue::Null);
        assert_eq!(
            scalar_str(invoke(&udf(Part::Param), vec![null(), s("a")]).unwrap()),
            None
        );
        assert_eq!(
            scalar_str(invoke(&udf(Part::Param), vec![s("http://h/?a=1"), null_str()]).unwrap()),
            None
        );
    }

    #[test]
    fn array_arguments() {
        let urls = || {
            strs(&[
                Some("https://a.example/x?id=1"),
                None,
                Some("garbage"),
                Some("http://b.example"),
            ])
        };
        assert_eq!(
            array_strs(invoke(&udf(Part::Host), vec![urls()]).unwrap()),
            vec![
                Some("a.example".into()),
                None,
                None,
                Some("b.example".into())
            ]
        );
        assert_eq!(
            array_strs(invoke(&udf(Part::Path), vec![urls()]).unwrap()),
            vec![Some("/x".into()), None, None, Some("/".into())]
        );
        assert_eq!(
            array_strs(invoke(&udf(Part::Param), vec![urls(), s("id")]).unwrap()),
            vec![Some("1".into()), None, None, None]
        );
        // scalar URL, array of parameter names
        let names = strs(&[Some("a"), Some("b"), None]);
        assert_eq!(
            array_strs(invoke(&udf(Part::Param), vec![s("http://h/?a=x&b=y"), names]).unwrap()),
            vec![Some("x".into()), Some("y".into()), None]
        );
        let view = arr(Arc::new(StringViewArray::from(vec![Some(
            "http://v.example/p",
        )])));
        assert_eq!(
            array_strs(invoke(&udf(Part::Host), vec![view]).unwrap()),
            vec![Some("v.example".into())]
        );
    }

    #[test]
    fn planning_checks_types_and_arity() {
        let err = udf(Part::Host)
            .coerce_types(&[DataType::Int32])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("url_host: argument `url` must be a string"),
            "{err}"
        );
        let err = udf(Part::Param)
            .coerce_types(&[DataType::Utf8])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("url_param: expected 2 arguments, got 1"),
            "{err}"
        );
        assert_eq!(
            udf(Part::Param)
                .coerce_types(&[DataType::LargeUtf8, DataType::Null])
                .unwrap(),
            vec![DataType::LargeUtf8, DataType::Utf8]
        );
    }
}
