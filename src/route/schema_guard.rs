//! The schema guard: a rule may not change the type of a column its table
//! already has files for, because every reader of the table (Hive, Spark,
//! Trino) would then fail on either the old or the new files. Adding and
//! dropping columns is fine: Parquet readers match columns by name.
//!
//! A table's schema is recorded in the checkpoint state (`table_schema:<t>`)
//! in the prepare of the first epoch that gives it rows under that schema;
//! this module owns the stored form and the check. A rule file holding the
//! line `-- sluice: allow_schema_change` may change types anyway (the
//! analyst has rewritten or dropped the old files); the new schema is then
//! recorded with the table's next rows, and the directive can go.

use super::rule_file::ALLOW_SCHEMA_CHANGE;
use super::{RuleError, RuleSet, rule_file::Pos};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::Arc;

/// A table schema's stored form: `{"v":1,"columns":[{"name","type","nullable"}]}`.
pub fn to_json(schema: &Schema) -> String {
    let cols: Vec<serde_json::Value> = schema
        .fields()
        .iter()
        .map(|f| {
            serde_json::json!({"name": f.name(), "type": f.data_type().to_string(), "nullable": f.is_nullable()})
        })
        .collect();
    serde_json::json!({"v": 1, "columns": cols}).to_string()
}

/// Parses [`to_json`]'s form.
pub fn from_json(s: &str) -> Result<SchemaRef, String> {
    let v: serde_json::Value = serde_json::from_str(s).map_err(|e| e.to_string())?;
    let mut fields = Vec::new();
    for c in v["columns"].as_array().ok_or("no columns")? {
        let name = c["name"].as_str().ok_or("column without name")?;
        let ty = c["type"].as_str().ok_or("column without type")?;
        let ty = DataType::from_str(ty).map_err(|e| e.to_string())?;
        fields.push(Field::new(
            name,
            ty,
            c["nullable"].as_bool().unwrap_or(true),
        ));
    }
    Ok(Arc::new(Schema::new(fields)))
}

/// Every column of `rules` whose type differs from its table's recorded
/// schema, as an error naming the rule file, the column and both types.
/// Rules with the directive are let through. `existing`: table -> stored
/// JSON; an entry that does not parse is skipped (it is rewritten with the
/// table's next rows).
pub fn check(rules: &RuleSet, existing: &BTreeMap<String, String>) -> Vec<RuleError> {
    let mut errors = Vec::new();
    for r in &rules.rules {
        if r.allow_schema_change {
            continue;
        }
        let Some(old) = existing.get(&r.table).and_then(|j| from_json(j).ok()) else {
            continue;
        };
        for f in r.output_schema.fields() {
            let Ok(was) = old.field_with_name(f.name()) else {
                continue;
            };
            if was.data_type() == f.data_type() {
                continue;
            }
            let pos = column_pos(&r.sql, f.name());
            errors.push(RuleError {
                file: r.file.clone(),
                pos,
                message: format!(
                    "column {} of table {} would change type from {} to {}; the table's files have {}, and its readers would fail on old or new files. Keep the type (CAST(... AS ...)), write a new table, or, once the old files are rewritten, add the line `{ALLOW_SCHEMA_CHANGE}` to this file",
                    f.name(),
                    r.table,
                    was.data_type(),
                    f.data_type(),
                    was.data_type()
                ),
            });
        }
    }
    errors
}

/// Where the column is named in the select list (after the first SELECT).
fn column_pos(sql: &str, column: &str) -> Pos {
    let start = word_offset(sql, "select", 0).unwrap_or(0);
    // Prefer the alias (`... AS column`), else the first mention.
    let mut first = None;
    let mut aliased = None;
    let mut from = start;
    while let Some(at) = word_offset(sql, column, from) {
        first.get_or_insert(at);
        // `get`, not slicing: the text before the name may end in a
        // multi-byte character (a comment in Chinese, say).
        let before = sql[..at].trim_end();
        let tail = before.len().checked_sub(2).and_then(|i| before.get(i..));
        if tail.is_some_and(|t| t.eq_ignore_ascii_case("as")) {
            aliased = Some(at);
            break;
        }
        from = at + column.len();
    }
    let at = aliased.or(first).unwrap_or(start);
    let before = &sql[..at];
    Pos {
        line: before.matches('\n').count() as u64 + 1,
        column: before
            .rfind('\n')
            .map(|n| before[n + 1..].chars().count())
            .unwrap_or(before.chars().count()) as u64
            + 1,
    }
}

/// Byte offset of `word` (case-insensitive, as a whole word) at or after `from`.
fn word_offset(text: &str, word: &str, from: usize) -> Option<usize> {
    let lower = text.to_ascii_lowercase();
    let w = word.to_ascii_lowercase();
    let is_word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut i = from;
    while let Some(k) = lower.get(i..)?.find(&w) {
        let at = i + k;
        let end = at + w.len();
        let before_ok = at == 0 || !is_word(lower.as_bytes()[at - 1]);
        let after_ok = end >= lower.len() || !is_word(lower.as_bytes()[end]);
        if before_ok && after_ok {
            return Some(at);
        }
        i = end;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demo;
    use crate::read::SourceSchema;
    use std::path::PathBuf;

    fn set(sql: &str) -> RuleSet {
        let schema = SourceSchema::new(demo::event_schema(), vec!["dt".into()]).full;
        RuleSet::compile_all(
            vec![(PathBuf::from("rules/t.sql"), sql.to_string())],
            "ods_events",
            &schema,
        )
        .unwrap()
    }

    const OLD: &str =
        "CREATE TABLE t PARTITIONED BY (dt)\nAS SELECT event_id, user_id, dt FROM ods_events;\n";

    fn recorded(sql: &str) -> BTreeMap<String, String> {
        let s = set(sql);
        BTreeMap::from([("t".to_string(), to_json(&s.rules[0].output_schema))])
    }

    #[test]
    fn a_type_change_is_refused_with_file_column_and_types() {
        let existing = recorded(OLD);
        let new = "CREATE TABLE t PARTITIONED BY (dt)\nAS SELECT event_id,\n  CAST(user_id AS VARCHAR) AS user_id, dt FROM ods_events;\n";
        let e = check(&set(new), &existing);
        assert_eq!(e.len(), 1, "{e:?}");
        let e = e[0].to_string();
        assert!(
            e.starts_with("rules/t.sql:3:31: column user_id of table t would change type from Int64 to Utf8View;"),
            "{e}"
        );
        assert!(e.contains(ALLOW_SCHEMA_CHANGE), "{e}");
        // With the directive it passes.
        let allowed = format!("{ALLOW_SCHEMA_CHANGE}\n{new}");
        assert!(check(&set(&allowed), &existing).is_empty());
    }

    #[test]
    fn adding_and_dropping_columns_is_fine() {
        let existing = recorded(OLD);
        let added = "CREATE TABLE t PARTITIONED BY (dt)\nAS SELECT event_id, user_id, mid, dt FROM ods_events;\n";
        assert!(check(&set(added), &existing).is_empty());
        let dropped =
            "CREATE TABLE t PARTITIONED BY (dt)\nAS SELECT event_id, dt FROM ods_events;\n";
        assert!(check(&set(dropped), &existing).is_empty());
        // A table never written has nothing to protect.
        assert!(check(&set(added), &BTreeMap::new()).is_empty());
    }

    #[test]
    fn multi_byte_text_before_the_column_is_located_not_a_panic() {
        // Recorded as a string; the new rule, with a Chinese comment right
        // before the name, makes it a BIGINT again.
        let existing = recorded(
            "CREATE TABLE t PARTITIONED BY (dt)\nAS SELECT CAST(user_id AS VARCHAR) AS user_id, dt FROM ods_events;\n",
        );
        let new = "CREATE TABLE t PARTITIONED BY (dt)\nAS SELECT -- 用户编号\n  user_id, /* 日期 */ dt FROM ods_events;\n";
        let e = check(&set(new), &existing);
        assert_eq!(e.len(), 1, "{e:?}");
        let e = e[0].to_string();
        assert!(
            e.starts_with("rules/t.sql:3:3: column user_id of table t would change type from Utf8View to Int64;"),
            "{e}"
        );
        // The position itself, on text ending in a multi-byte character.
        assert_eq!(
            column_pos("select 中 x", "x"),
            Pos {
                line: 1,
                column: 10
            }
        );
        assert_eq!(
            column_pos("select 中as x", "x"),
            Pos {
                line: 1,
                column: 12
            }
        );
        assert_eq!(
            column_pos("select y as\n中 x", "x"),
            Pos { line: 2, column: 3 }
        );
    }

    #[test]
    fn a_nullability_change_is_not_a_type_change() {
        // Tables recorded while source columns kept the first file's NOT NULL.
        let s = set(OLD);
        let strict = Schema::new(
            s.rules[0]
                .output_schema
                .fields()
                .iter()
                .map(|f| f.as_ref().clone().with_nullable(false))
                .collect::<Vec<_>>(),
        );
        let existing = BTreeMap::from([("t".to_string(), to_json(&strict))]);
        assert!(check(&s, &existing).is_empty());
    }

    #[test]
    fn stored_form_round_trips() {
        let s = set(OLD);
        let schema = &s.rules[0].output_schema;
        assert_eq!(&from_json(&to_json(schema)).unwrap(), schema);
    }
}
