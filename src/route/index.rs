//! The equality index of a rule set: most rules pin one column to string
//! literals (`event_type = 'click'`, `app IN ('web', 'h5')`). The set picks
//! the Utf8 column most rules pin and maps each value to the rules that
//! accept it; `route` groups a batch's rows by that column once and runs
//! each indexed rule only on its values' rows.
//!
//! Pruning complements it: for every Utf8 column some rule pins, a batch's
//! distinct values (when there are few) tell which rules cannot select any
//! of its rows (`hour = '05'` on a batch of hour 00), and those rules are
//! not evaluated at all. Exact: a top-level `c = 'v'` conjunct selects no
//! row whose `c` is another value or NULL.

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

/// The pinned Utf8 columns of a rule set, for pruning: (column index,
/// per rule the values it accepts, or None when the rule does not pin it).
#[derive(Debug)]
pub(super) struct Pins {
    columns: Vec<(usize, Vec<Option<Vec<String>>>)>,
}

/// Distinct values a batch column may have before pruning on it gives up.
const PRUNE_MAX_DISTINCT: usize = 256;

pub(super) fn build_pins(rules: &[CompiledRule], schema: &SchemaRef) -> Pins {
    let mut names: Vec<&str> = Vec::new();
    for r in rules {
        for (c, _) in &r.equalities {
            if !names.contains(&c.as_str())
                && schema
                    .field_with_name(c)
                    .is_ok_and(|f| f.data_type() == &DataType::Utf8)
            {
                names.push(c);
            }
        }
    }
    let columns = names
        .into_iter()
        .filter_map(|c| {
            let idx = schema.index_of(c).ok()?;
            let per_rule = rules
                .iter()
                .map(|r| {
                    let mut sets = r.equalities.iter().filter(|(n, _)| n == c);
                    match (sets.next(), sets.next()) {
                        (Some((_, v)), None) => Some(v.clone()),
                        // Pinned twice or not at all: no pruning on this column.
                        _ => None,
                    }
                })
                .collect();
            Some((idx, per_rule))
        })
        .collect();
    Pins { columns }
}

impl Pins {
    /// For each rule, whether it may select a row of `batch`.
    pub(super) fn possible(&self, batch: &arrow::array::RecordBatch, rules: usize) -> Vec<bool> {
        let mut ok = vec![true; rules];
        for (idx, per_rule) in &self.columns {
            let Some(col) = batch.columns().get(*idx) else {
                continue;
            };
            let Some(s) = col.as_any().downcast_ref::<StringArray>() else {
                continue;
            };
            let mut present: std::collections::HashSet<&str> = Default::default();
            let mut bounded = true;
            for i in 0..s.len() {
                if s.is_valid(i) && present.insert(s.value(i)) && present.len() > PRUNE_MAX_DISTINCT
                {
                    bounded = false;
                    break;
                }
            }
            if !bounded {
                continue;
            }
            for (r, values) in per_rule.iter().enumerate() {
                if let Some(vs) = values
                    && !vs.iter().any(|v| present.contains(v.as_str()))
                {
                    ok[r] = false;
                }
            }
        }
        ok
    }
}
