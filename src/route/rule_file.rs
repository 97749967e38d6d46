//! The rule file format: `CREATE TABLE <name> [PARTITIONED BY (a, b)] AS
//! SELECT ... FROM <source> [WHERE ...];` — the Hive CTAS idiom. This file
//! owns parsing that header; the SELECT is left in place with the header
//! blanked out (same length, newlines kept), so every line and column the
//! SQL parser reports is a line and column of the analyst's file.

use std::fmt;

/// A position in a rule file, 1-based.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pos {
    pub line: u64,
    pub column: u64,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// The parsed header and the SELECT text (header blanked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleHeader {
    pub table: String,
    pub table_pos: Pos,
    pub partition_by: Vec<(String, Pos)>,
    /// The whole file with the header replaced by spaces.
    pub select_sql: String,
    /// The file holds the line comment `-- sluice: allow_schema_change`:
    /// its table may change a column's type (see `schema_guard`).
    pub allow_schema_change: bool,
    /// `-- sluice: max_file_age = <duration>`: how long this table's output
    /// files may stay open (and their rows invisible) before they close.
    pub max_file_age: Option<std::time::Duration>,
}

/// The directive that lets a rule change the type of an existing column.
pub const ALLOW_SCHEMA_CHANGE: &str = "-- sluice: allow_schema_change";

/// Whether a line of `text` is the directive (spaces and case are free).
fn has_directive(text: &str) -> bool {
    text.lines().any(|l| {
        let l = l.trim();
        l.strip_prefix("--").is_some_and(|rest| {
            let words: Vec<String> = rest
                .split(|c: char| c.is_whitespace() || c == ':')
                .filter(|w| !w.is_empty())
                .map(|w| w.to_ascii_lowercase())
                .collect();
            words == ["sluice", "allow_schema_change"]
        })
    })
}

/// The value of a `-- sluice: <key> = <value>` line, with the position
/// of the value.
fn directive_value<'a>(text: &'a str, key: &str) -> Option<(&'a str, usize)> {
    let mut at = 0;
    for line in text.split_inclusive('\n') {
        let start = at;
        at += line.len();
        let Some(rest) = line.trim_start().strip_prefix("--") else {
            continue;
        };
        let rest = rest.trim_start();
        let Some(rest) = rest
            .get(..6)
            .filter(|w| w.eq_ignore_ascii_case("sluice"))
            .and_then(|_| rest.get(6..))
        else {
            continue;
        };
        let Some(rest) = rest.trim_start().strip_prefix(':') else {
            continue;
        };
        let rest = rest.trim_start();
        let Some(after) = rest
            .get(..key.len())
            .filter(|w| w.eq_ignore_ascii_case(key))
            .and_then(|_| rest.get(key.len()..))
        else {
            continue;
        };
        let Some(value) = after.trim_start().strip_prefix('=') else {
            continue;
        };
        let value = value.trim();
        let offset = line.len() - line.trim_start().len();
        let pos = line
            .find(value)
            .filter(|_| !value.is_empty())
            .unwrap_or(offset);
        return Some((value, start + pos));
    }
    None
}

/// `-- sluice: max_file_age = 5m`, checked.
fn max_file_age(text: &str) -> Result<Option<std::time::Duration>, HeaderError> {
    let Some((value, at)) = directive_value(text, "max_file_age") else {
        return Ok(None);
    };
    match crate::config::units::parse_duration(value) {
        Ok(d) if !d.is_zero() => Ok(Some(d)),
        Ok(_) => Err(HeaderError {
            pos: pos_at(text, at),
            message: "max_file_age must be above zero".into(),
        }),
        Err(e) => Err(HeaderError {
            pos: pos_at(text, at),
            message: format!("max_file_age: {e}"),
        }),
    }
}

/// A header error: where and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderError {
    pub pos: Pos,
    pub message: String,
}

struct Scanner<'a> {
    text: &'a str,
    i: usize,
}

/// The position of a byte offset of `text`, the column counted in
/// characters. An offset past the end is the end; one inside a character
/// is that character.
pub fn pos_at(text: &str, byte: usize) -> Pos {
    let mut byte = byte.min(text.len());
    while !text.is_char_boundary(byte) {
        byte -= 1;
    }
    let before = text.get(..byte).unwrap_or(text);
    let line_start = before.rfind('\n').map(|n| n + 1).unwrap_or(0);
    Pos {
        line: before.matches('\n').count() as u64 + 1,
        column: before.get(line_start..).unwrap_or("").chars().count() as u64 + 1,
    }
}

impl<'a> Scanner<'a> {
    fn pos_at(&self, byte: usize) -> Pos {
        pos_at(self.text, byte)
    }

    fn skip_ws_and_comments(&mut self) {
        loop {
            let rest = &self.text[self.i..];
            let trimmed = rest.trim_start();
            self.i += rest.len() - trimmed.len();
            if trimmed.starts_with("--") {
                self.i += trimmed.find('\n').unwrap_or(trimmed.len());
            } else if trimmed.starts_with("/*") {
                self.i += trimmed.find("*/").map(|e| e + 2).unwrap_or(trimmed.len());
            } else {
                return;
            }
        }
    }

    /// The next word (identifier-like or a single punctuation char), with its start.
    fn word(&mut self) -> Option<(usize, &'a str)> {
        self.skip_ws_and_comments();
        let rest = &self.text[self.i..];
        let c = rest.chars().next()?;
        let start = self.i;
        let len = if c.is_alphanumeric() || c == '_' {
            rest.find(|ch: char| !(ch.is_alphanumeric() || ch == '_'))
                .unwrap_or(rest.len())
        } else if c == '`' || c == '"' {
            rest[1..].find(c).map(|e| e + 2).unwrap_or(rest.len())
        } else {
            c.len_utf8()
        };
        self.i += len;
        Some((start, &rest[..len]))
    }

    fn expect_kw(&mut self, kw: &str, what: &str) -> Result<(), HeaderError> {
        match self.word() {
            Some((_, w)) if w.eq_ignore_ascii_case(kw) => Ok(()),
            Some((at, w)) => Err(HeaderError {
                pos: self.pos_at(at),
                message: format!("expected {what}, found {w:?}"),
            }),
            None => Err(HeaderError {
                pos: self.pos_at(self.i),
                message: format!("expected {what}, found the end of the file"),
            }),
        }
    }

    fn ident(&mut self, what: &str) -> Result<(String, Pos), HeaderError> {
        match self.word() {
            Some((at, w)) => {
                let name = w.trim_matches(|c| c == '`' || c == '"');
                if crate::config::is_identifier(name) {
                    Ok((name.to_string(), self.pos_at(at)))
                } else {
                    Err(HeaderError {
                        pos: self.pos_at(at),
                        message: format!("expected {what}, found {w:?}"),
                    })
                }
            }
            None => Err(HeaderError {
                pos: self.pos_at(self.i),
                message: format!("expected {what}, found the end of the file"),
            }),
        }
    }
}

/// Parses the `CREATE TABLE ... AS` header of a rule file.
pub fn parse_header(text: &str) -> Result<RuleHeader, HeaderError> {
    let mut s = Scanner { text, i: 0 };
    s.expect_kw(
        "CREATE",
        "CREATE TABLE <name> [PARTITIONED BY (...)] AS SELECT ...",
    )?;
    s.expect_kw("TABLE", "TABLE after CREATE")?;
    let (table, table_pos) = s.ident("a table name")?;
    if table.starts_with('_') {
        return Err(HeaderError {
            pos: table_pos,
            message: format!(
                "table name {table} starts with `_`: readers of the output (Hive, Spark, Trino, DataFusion) skip paths starting with `_` or `.`, so its files would be invisible, and `_errors` holds the rules' error rows; start the name with a letter"
            ),
        });
    }
    let mut partition_by = Vec::new();
    let save = s.i;
    match s.word() {
        Some((_, w)) if w.eq_ignore_ascii_case("PARTITIONED") => {
            s.expect_kw("BY", "BY after PARTITIONED")?;
            s.expect_kw("(", "( after PARTITIONED BY")?;
            loop {
                let (col, pos) = s.ident("a partition column name")?;
                if col.starts_with('_') {
                    return Err(HeaderError {
                        pos,
                        message: format!(
                            "partition column {col} starts with `_`: its directories `{col}=...` would be hidden from readers of the output, which skip paths starting with `_` or `.`; name it without the `_` in the select list and here (`... AS {}`)",
                            col.trim_start_matches('_')
                        ),
                    });
                }
                partition_by.push((col, pos));
                match s.word() {
                    Some((_, ",")) => continue,
                    Some((_, ")")) => break,
                    Some((at, w)) => {
                        return Err(HeaderError {
                            pos: s.pos_at(at),
                            message: format!(
                                "expected , or ) in PARTITIONED BY, found {w:?} (list column names only; their types come from the SELECT)"
                            ),
                        });
                    }
                    None => {
                        return Err(HeaderError {
                            pos: s.pos_at(s.i),
                            message: "unclosed PARTITIONED BY (".into(),
                        });
                    }
                }
            }
        }
        _ => s.i = save,
    }
    s.expect_kw("AS", "AS SELECT ... after the table name")?;
    let body_start = s.i;
    let mut select_sql: String = text[..body_start]
        .chars()
        .map(|c| if c == '\n' { '\n' } else { ' ' })
        .collect();
    select_sql.push_str(&text[body_start..]);
    Ok(RuleHeader {
        table,
        table_pos,
        partition_by,
        select_sql,
        allow_schema_change: has_directive(text),
        max_file_age: max_file_age(text)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULE: &str = "-- clicks on android\nCREATE TABLE dwd_click_android\nPARTITIONED BY (dt, hour)\nAS SELECT event_id, dt, hour\nFROM ods_events\nWHERE event_type = 'click';\n";

    #[test]
    fn parses_the_issue_example() {
        let h = parse_header(RULE).unwrap();
        assert_eq!(h.table, "dwd_click_android");
        assert_eq!(
            h.table_pos,
            Pos {
                line: 2,
                column: 14
            }
        );
        let cols: Vec<_> = h.partition_by.iter().map(|(c, _)| c.as_str()).collect();
        assert_eq!(cols, vec!["dt", "hour"]);
        assert_eq!(h.select_sql.len(), RULE.len());
        assert_eq!(h.select_sql.lines().count(), RULE.lines().count());
        assert!(
            h.select_sql
                .lines()
                .nth(3)
                .unwrap()
                .trim_start()
                .starts_with("SELECT")
        );
    }

    #[test]
    fn the_schema_change_directive_is_a_line_comment() {
        assert!(!parse_header(RULE).unwrap().allow_schema_change);
        let with = format!("{ALLOW_SCHEMA_CHANGE}\n{RULE}");
        assert!(parse_header(&with).unwrap().allow_schema_change);
        let spaced = RULE.replace(";\n", ";\n  --  Sluice:   allow_schema_change\n");
        assert!(parse_header(&spaced).unwrap().allow_schema_change);
        let prose = format!("-- do not use sluice: allow_schema_change lightly\n{RULE}");
        assert!(!parse_header(&prose).unwrap().allow_schema_change);
    }

    #[test]
    fn max_file_age_directive() {
        assert_eq!(parse_header(RULE).unwrap().max_file_age, None);
        let with = format!("-- sluice: max_file_age = 5m\n{RULE}");
        assert_eq!(
            parse_header(&with).unwrap().max_file_age,
            Some(std::time::Duration::from_secs(300))
        );
        let spaced = format!("{RULE}\n  --  Sluice :  MAX_FILE_AGE=90s\n");
        assert_eq!(
            parse_header(&spaced).unwrap().max_file_age,
            Some(std::time::Duration::from_secs(90))
        );
        let bad = format!("-- sluice: max_file_age = soon\n{RULE}");
        let e = parse_header(&bad).unwrap_err();
        assert_eq!(
            e.pos,
            Pos {
                line: 1,
                column: 27
            }
        );
        assert!(e.message.starts_with("max_file_age:"), "{}", e.message);
        let zero = format!("-- sluice: max_file_age = 0s\n{RULE}");
        assert!(parse_header(&zero).is_err());
    }

    #[test]
    fn no_partitions_is_fine() {
        let h = parse_header("create table t as select 1 from s").unwrap();
        assert!(h.partition_by.is_empty());
    }

    #[test]
    fn header_errors_are_located() {
        let e =
            parse_header("CREATE TABLE t\nPARTITIONED BY (dt string)\nAS SELECT 1").unwrap_err();
        assert_eq!(
            e.pos,
            Pos {
                line: 2,
                column: 20
            }
        );
        assert!(
            e.message.contains("list column names only"),
            "{}",
            e.message
        );
        let e = parse_header("SELECT * FROM s").unwrap_err();
        assert_eq!(e.pos, Pos { line: 1, column: 1 });
        let e = parse_header("CREATE TABLE t SELECT 1").unwrap_err();
        assert!(e.message.contains("expected AS"), "{}", e.message);
    }

    #[test]
    fn names_that_readers_would_hide_are_refused() {
        for (text, pos, what) in [
            (
                "CREATE TABLE _errors AS SELECT 1",
                (1, 14),
                "table name _errors starts with `_`",
            ),
            (
                "-- 错误\nCREATE TABLE\n  `_x` AS SELECT 1",
                (3, 3),
                "table name _x starts with `_`",
            ),
            (
                "CREATE TABLE t PARTITIONED BY (dt, _h) AS SELECT 1",
                (1, 36),
                "partition column _h starts with `_`",
            ),
        ] {
            let e = parse_header(text).unwrap_err();
            assert_eq!((e.pos.line, e.pos.column), pos, "{text}: {}", e.message);
            assert!(e.message.contains(what), "{text}: {}", e.message);
            assert!(
                e.message.contains("skip paths starting with `_` or `.`"),
                "{}",
                e.message
            );
        }
        assert!(parse_header("CREATE TABLE t_1 PARTITIONED BY (d_t) AS SELECT 1").is_ok());
    }

    #[test]
    fn positions_count_characters() {
        let text = "-- 中文\nCREATE TABLE 表 AS SELECT 1";
        let e = parse_header(text).unwrap_err();
        assert_eq!(
            e.pos,
            Pos {
                line: 2,
                column: 14
            },
            "{}",
            e.message
        );
        assert_eq!(pos_at("中é\nab", 5), Pos { line: 1, column: 3 });
        assert_eq!(pos_at("中é\nab", 1), Pos { line: 1, column: 1 });
        assert_eq!(pos_at("中é\nab", 99), Pos { line: 2, column: 3 });
    }
}
