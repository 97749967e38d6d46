//! `sluice rules explain NAME`: what one rule compiled to. The normalized
//! SQL (DataFusion's unparser over the type-coerced plan, so implicit casts
//! show), the plan itself, partition columns, the source columns it reads,
//! the `column = 'literal'` conjuncts the equality index can use, and the
//! output schema.

use crate::read::SourceSchema;
use crate::route::RuleSet;
use std::fmt::Write;

/// The report for rule `rule` of `rules`, compiled against `schema`.
/// `dimensions`: (added column, dimension name) of the configured dimensions.
pub fn explain(
    rules: &RuleSet,
    rule: usize,
    schema: &SourceSchema,
    dimensions: &[(String, String)],
) -> String {
    let r = &rules.rules[rule];
    let mut t = String::new();
    let _ = writeln!(t, "rule {} ({})", r.table, super::shown(&r.file));
    let _ = writeln!(t, "\nnormalized:");
    match datafusion_sql::unparser::plan_to_sql(&r.plan) {
        Ok(sql) => {
            let _ = writeln!(t, "  {sql}");
        }
        Err(e) => {
            let _ = writeln!(t, "  (cannot unparse: {})", e.strip_backtrace());
        }
    }
    let _ = writeln!(t, "\nplan:");
    for line in r.plan.display_indent().to_string().lines() {
        let _ = writeln!(t, "  {line}");
    }
    let _ = writeln!(
        t,
        "\npartitioned by: {}",
        if r.partition_columns.is_empty() {
            "(none: one directory)".to_string()
        } else {
            r.partition_columns.join(", ")
        }
    );
    let _ = writeln!(t, "\nreads columns:");
    for c in &r.reads {
        let ty = schema
            .full
            .field_with_name(c)
            .map(|f| f.data_type().to_string())
            .unwrap_or_else(|_| "?".into());
        let note = if schema.partition_columns.contains(c) {
            "  (Hive partition of the source path)".to_string()
        } else if let Some((_, d)) = dimensions.iter().find(|(col, _)| col == c) {
            format!("  (from dimension {d})")
        } else {
            String::new()
        };
        let _ = writeln!(t, "  {c}: {ty}{note}");
    }
    let _ = writeln!(t, "\nequality conjuncts (usable by the index):");
    if r.equalities.is_empty() {
        let _ = writeln!(t, "  none: the rule is evaluated on every row");
    }
    for (c, vs) in &r.equalities {
        let vs: Vec<String> = vs.iter().map(|v| format!("'{v}'")).collect();
        if vs.len() == 1 {
            let _ = writeln!(t, "  {c} = {}", vs[0]);
        } else {
            let _ = writeln!(t, "  {c} IN ({})", vs.join(", "));
        }
    }
    match rules.index_for(rule) {
        Some((col, true)) => {
            let _ = writeln!(
                t,
                "  the rule set indexes {col}: this rule only sees rows whose {col} it pins"
            );
        }
        Some((col, false)) => {
            let _ = writeln!(
                t,
                "  the rule set indexes {col}, which this rule does not pin: it sees every row"
            );
        }
        None => {
            let _ = writeln!(
                t,
                "  the rule set has no index (fewer than two rules pin the same column)"
            );
        }
    }
    let _ = writeln!(t, "\noutput schema:");
    for (i, f) in r.output_schema.fields().iter().enumerate() {
        let null = if f.is_nullable() {
            "nullable"
        } else {
            "not null"
        };
        let part = if r.partition_idx.contains(&i) {
            "  (partition: in the path, not in the files)"
        } else {
            ""
        };
        let _ = writeln!(t, "  {}: {} {null}{part}", f.name(), f.data_type());
    }
    t
}
