//! Where an error in a rule points and what it says: positions from
//! sqlparser's messages and DataFusion's spans (else the first use of the
//! word at fault), DataFusion's messages made plain, and the refusal of
//! constructs a rule may not use. Pure text work for `compile`; touches
//! nothing else.

use super::compile::RuleError;
use super::rule_file::{self, Pos};
use datafusion_common::DataFusionError;
use datafusion_expr::LogicalPlan;

/// Line and column from a sqlparser message ("... at Line: 3, Column: 7").
pub(super) fn pos_in_message(msg: &str) -> Option<Pos> {
    let l = msg.rfind("Line: ")?;
    let rest = &msg[l + 6..];
    let line: u64 = rest
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()?;
    let c = rest.find("Column: ")?;
    let column: u64 = rest[c + 8..]
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()?;
    Some(Pos { line, column })
}

/// Position just after the last non-blank character.
pub(super) fn end_of(text: &str) -> Pos {
    let t = text.trim_end();
    rule_file::pos_at(t, t.len())
}

/// Position of the first case-insensitive occurrence of `word` as a word.
pub(super) fn find_word(text: &str, word: &str) -> Option<Pos> {
    word_at(text, word).map(|at| rule_file::pos_at(text, at))
}

/// Byte offset of the first case-insensitive occurrence of `word` as a word.
pub(super) fn word_at(text: &str, word: &str) -> Option<usize> {
    let lower = text.to_ascii_lowercase();
    let w = word.to_ascii_lowercase();
    let mut from = 0;
    while let Some(i) = lower.get(from..)?.find(&w) {
        let at = from + i;
        let before_ok = at == 0 || !lower.as_bytes()[at - 1].is_ascii_alphanumeric();
        let end = at + w.len();
        let after_ok = end >= lower.len() || !lower.as_bytes()[end].is_ascii_alphanumeric();
        if before_ok && after_ok {
            return Some(at);
        }
        from = end;
    }
    None
}

pub(super) fn strip_datafusion_prefix(msg: &str) -> String {
    let m = msg.trim();
    for p in [
        "Error during planning: ",
        "Schema error: ",
        "SQL error: ",
        "This feature is not implemented: ",
    ] {
        if let Some(rest) = m.strip_prefix(p) {
            return rest.to_string();
        }
    }
    m.to_string()
}

pub(super) fn second_select(sql: &str) -> Option<Pos> {
    let after = sql.to_ascii_lowercase().find("select")? + "select".len();
    let k = word_at(sql.get(after..)?, "select")?;
    Some(rule_file::pos_at(sql, after + k))
}

pub(super) fn refuse(
    plan: &LogicalPlan,
    sql: &str,
    start: Pos,
    err: &dyn Fn(Pos, String) -> RuleError,
) -> RuleError {
    let (what, word) = match plan {
        LogicalPlan::Aggregate(_) => ("aggregation (GROUP BY, COUNT, SUM, ...)", "group"),
        LogicalPlan::Join(_) => ("a join", "join"),
        LogicalPlan::Sort(_) => ("ORDER BY", "order"),
        LogicalPlan::Limit(_) => ("LIMIT", "limit"),
        LogicalPlan::Distinct(_) => ("DISTINCT", "distinct"),
        LogicalPlan::Window(_) => ("a window function", "over"),
        LogicalPlan::Union(_) => ("UNION", "union"),
        LogicalPlan::Values(_) => ("VALUES", "values"),
        LogicalPlan::EmptyRelation(_) => ("a SELECT without FROM", "select"),
        _ => ("this construct", "select"),
    };
    err(
        find_word(sql, word).unwrap_or(start),
        format!(
            "{what} is not allowed in a rule: a rule is SELECT <columns> FROM <source> [WHERE <condition>], evaluated row by row"
        ),
    )
}

pub(super) fn plan_error(
    e: DataFusionError,
    sql: &str,
    start: Pos,
    err: &dyn Fn(Pos, String) -> RuleError,
) -> RuleError {
    let span_pos = e.diagnostic().and_then(|d| d.span).map(|s| Pos {
        line: s.start.line,
        column: s.start.column,
    });
    let message = strip_datafusion_prefix(&e.strip_backtrace());
    // Name the column when DataFusion did not give a span.
    let pos = span_pos.filter(|p| p.line > 0).or_else(|| {
        let field = message.split("No field named ").nth(1)?;
        let name = field
            .split(|c: char| c == '.' || c.is_whitespace())
            .next()?
            .trim_matches('"');
        let name = name.rsplit('.').next().unwrap_or(name);
        find_word(sql, name)
    });
    let pos = pos.or_else(|| {
        let f = message
            .split("Invalid function '")
            .nth(1)?
            .split('\'')
            .next()?;
        find_word(sql, f)
    });
    let message = if message.starts_with("Invalid function") {
        let name = message.split('\'').nth(1).unwrap_or("?");
        format!(
            "unknown function {name}: rules may call scalar functions only (no aggregates or window functions); `sluice functions` lists them"
        )
    } else {
        unknown_column(message.lines().next().unwrap_or(""))
    };
    err(pos.unwrap_or(start), message)
}

/// DataFusion's `No field named x. Valid fields are ...`, saying why: the
/// source schema has every column some file carried, so none had `x`.
pub(super) fn unknown_column(message: &str) -> String {
    let Some(rest) = message.strip_prefix("No field named ") else {
        return message.to_string();
    };
    let (name, valid) = match rest.split_once(". ") {
        Some((n, v)) => (n, format!(" {v}")),
        None => (rest.trim_end_matches('.'), String::new()),
    };
    format!(
        "No field named {name}: no source file read so far has carried this column (a new column joins the source schema when the first file with it is read; `sluice state show` lists the schema's history).{valid}"
    )
}
