//! The name of an output the sink writes: a rule's table, or that table's
//! error output (`_errors/<table>`, the rows its rule failed on; see
//! `route::isolate`). The sink and the state carry it in its string form
//! ([`OutputName`]'s `Display`: the folder under the sink root); everything
//! that must tell the two apart asks here instead of parsing that string.

use std::fmt;

/// The folder under the sink root that holds the error outputs.
pub const ERRORS_DIR: &str = "_errors";

/// A rule's table, or its error output.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OutputName {
    Table(String),
    /// `_errors/<table>`.
    Errors(String),
}

impl OutputName {
    /// Reads the string form back (`_errors/<t>` is `t`'s error output;
    /// table names never start with `_`, the rules refuse them).
    pub fn parse(name: &str) -> OutputName {
        match errors_table(name) {
            Some(t) => OutputName::Errors(t.to_string()),
            None => OutputName::Table(name.to_string()),
        }
    }

    /// The rule's table, for both.
    pub fn table(&self) -> &str {
        match self {
            OutputName::Table(t) | OutputName::Errors(t) => t,
        }
    }

    pub fn is_errors(&self) -> bool {
        matches!(self, OutputName::Errors(_))
    }

    /// The folders under the sink root, outermost first.
    pub fn segments(&self) -> Vec<&str> {
        match self {
            OutputName::Table(t) => vec![t.as_str()],
            OutputName::Errors(t) => vec![ERRORS_DIR, t.as_str()],
        }
    }
}

impl fmt::Display for OutputName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OutputName::Table(t) => f.write_str(t),
            OutputName::Errors(t) => write!(f, "{ERRORS_DIR}/{t}"),
        }
    }
}

/// The table whose error output `name` is (`_errors/<t>` -> `t`); `None`
/// for a table. [`OutputName::parse`] without the allocation.
pub fn errors_table(name: &str) -> Option<&str> {
    name.strip_prefix(ERRORS_DIR)
        .and_then(|t| t.strip_prefix('/'))
        .filter(|t| !t.is_empty())
}

/// Whether `name` is an error output (`_errors/<t>`).
pub fn is_errors(name: &str) -> bool {
    errors_table(name).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_output_name_reads_back_what_it_writes() {
        for o in [
            OutputName::Table("t_a".into()),
            OutputName::Errors("t_a".into()),
        ] {
            assert_eq!(OutputName::parse(&o.to_string()), o);
            assert_eq!(o.table(), "t_a");
            assert_eq!(o.segments().join("/"), o.to_string());
        }
        assert_eq!(OutputName::Errors("t".into()).to_string(), "_errors/t");
        assert_eq!(errors_table("_errors/t"), Some("t"));
        assert_eq!(errors_table("t"), None);
        assert_eq!(errors_table("_errors"), None);
        assert_eq!(errors_table("_errors/"), None);
        assert_eq!(errors_table("_errorsx/t"), None);
        assert!(is_errors("_errors/t") && !is_errors("t_errors"));
    }
}
