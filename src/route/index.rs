//! The equality index of a rule set: most rules pin one column to string
//! literals (`event_type = 'click'`, `app IN ('web', 'h5')`). The set picks
//! the Utf8 column most rules pin and maps each value to the rules that
//! accept it; `route` groups a batch's rows by that column once and runs
//! each indexed rule only on its values' rows.

use super::CompiledRule;
use arrow::array::{Array, ArrayRef, StringArray};
use arrow::datatypes::{DataType, SchemaRef};
use std::collections::HashMap;

#[derive(Debug)]
pub(super) struct EqIndex {
    /// Source column index.
    pub(super) column: usize,
    pub(super) column_name: String,
    pub(super) by_value: HashMap<String, Vec<usize>>,
    pub(super) unindexed: Vec<usize>,
}

/// Row indices per distinct string value (nulls skipped).
pub(super) fn group_rows(col: &ArrayRef) -> Vec<(&str, Vec<u32>)> {
    let Some(s) = col.as_any().downcast_ref::<StringArray>() else {
        return vec![];
    };
    let mut map: HashMap<&str, usize> = HashMap::new();
    let mut groups: Vec<(&str, Vec<u32>)> = Vec::new();
    for i in 0..s.len() {
        if s.is_null(i) {
            continue;
        }
        let v = s.value(i);
        let g = *map.entry(v).or_insert_with(|| {
            groups.push((v, Vec::new()));
            groups.len() - 1
        });
        groups[g].1.push(i as u32);
    }
    groups
}

/// Picks the Utf8 source column that most rules test with `= 'literal'`.
pub(super) fn build_index(rules: &[CompiledRule], schema: &SchemaRef) -> Option<EqIndex> {
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for r in rules {
        let mut seen: Vec<&str> = Vec::new();
        for (c, _) in &r.equalities {
            if !seen.contains(&c.as_str()) {
                seen.push(c);
                *counts.entry(c).or_default() += 1;
            }
        }
    }
    let (best, n) = counts
        .into_iter()
        .filter(|(c, _)| {
            schema
                .field_with_name(c)
                .is_ok_and(|f| f.data_type() == &DataType::Utf8)
        })
        .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(a.0)))?;
    if n < 2 {
        return None;
    }
    let column = schema.index_of(best).ok()?;
    let mut by_value: HashMap<String, Vec<usize>> = HashMap::new();
    let mut unindexed = Vec::new();
    for (i, r) in rules.iter().enumerate() {
        let pins: Vec<&Vec<String>> = r
            .equalities
            .iter()
            .filter(|(c, _)| c == best)
            .map(|(_, v)| v)
            .collect();
        match pins.as_slice() {
            // Each row has one value, so a rule listed under several values
            // still sees each row at most once.
            [values] => {
                let mut vs: Vec<&String> = values.iter().collect();
                vs.sort();
                vs.dedup();
                for v in vs {
                    by_value.entry(v.clone()).or_default().push(i);
                }
            }
            // Pinned twice (`c = 'a' AND c IN (...)`): let the predicate decide.
            _ => unindexed.push(i),
        }
    }
    Some(EqIndex {
        column,
        column_name: best.to_string(),
        by_value,
        unindexed,
    })
}
