//! The equality index of a rule set: most rules pin one column to string
//! literals (`event_type = 'click'`, `app IN ('web', 'h5')`). The set picks
//! the Utf8 column most rules pin and maps each value to the rules that
//! accept it; `route` groups a batch's rows by that column once and runs
//! each indexed rule only on its values' rows. The column chosen is the one
//! that leaves the fewest rules per row, not the one most rules pin.
//!
//! Pruning complements it: for every Utf8 column some rule pins, a batch's
//! distinct values (when there are few) tell which rules cannot select any
//! of its rows (`hour = '05'` on a batch of hour 00), and those rules are
//! not evaluated at all. Exact: a top-level `c = 'v'` conjunct selects no
//! row whose `c` is another value or NULL.

use super::CompiledRule;
use arrow::array::{Array, ArrayRef, RecordBatch, StringArray};
use arrow::datatypes::{DataType, SchemaRef};
use hashbrown::{HashMap, HashSet};

#[derive(Debug)]
pub(super) struct EqIndex {
    /// Source column index.
    pub(super) column: usize,
    pub(super) column_name: String,
    pub(super) by_value: HashMap<String, Vec<usize>>,
    pub(super) unindexed: Vec<usize>,
    /// Per rule: listed under its values (not in `unindexed`).
    pub(super) indexed: Vec<bool>,
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

/// The Utf8 source columns some rule pins, in order of first mention.
fn pinned_utf8_columns<'a>(rules: &'a [CompiledRule], schema: &SchemaRef) -> Vec<&'a str> {
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
    names
}

/// Picks the Utf8 source column whose index leaves the fewest rules to
/// evaluate per row: the rules it cannot index, plus the rules listed under
/// an average value. (`hour` pinned by 1,000 rules to 5 values leaves 200;
/// `spmid` pinned by the same rules to 200 values leaves 5.)
pub(super) fn build_index(rules: &[CompiledRule], schema: &SchemaRef) -> Option<EqIndex> {
    let mut names = pinned_utf8_columns(rules, schema);
    names.sort();
    let (_, cost, ix) = names
        .into_iter()
        .filter_map(|c| {
            let ix = index_on(rules, schema, c)?;
            let entries: usize = ix.by_value.values().map(Vec::len).sum();
            let per_value = entries as f64 / ix.by_value.len().max(1) as f64;
            Some((c, ix.unindexed.len() as f64 + per_value, ix))
        })
        .min_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(b.0)))?;
    // Only worth it when it saves evaluations over running every rule.
    (cost < rules.len() as f64).then_some(ix)
}

/// The index of `rules` on the Utf8 column `name`.
fn index_on(rules: &[CompiledRule], schema: &SchemaRef, name: &str) -> Option<EqIndex> {
    let column = schema.index_of(name).ok()?;
    let mut by_value: HashMap<String, Vec<usize>> = HashMap::new();
    let mut unindexed = Vec::new();
    for (i, r) in rules.iter().enumerate() {
        let pins: Vec<&Vec<String>> = r
            .equalities
            .iter()
            .filter(|(c, _)| c == name)
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
            // Pinned twice (`c = 'a' AND c IN (...)`) or not at all: let the
            // predicate decide.
            _ => unindexed.push(i),
        }
    }
    let mut indexed = vec![true; rules.len()];
    for &r in &unindexed {
        indexed[r] = false;
    }
    Some(EqIndex {
        column,
        column_name: name.to_string(),
        by_value,
        unindexed,
        indexed,
    })
}

/// The pinned Utf8 columns of a rule set, for pruning and for skipping
/// predicates a batch cannot fail.
#[derive(Debug)]
pub(super) struct Pins {
    /// (column index, per rule the values it accepts, or None when the rule
    /// does not pin the column exactly once).
    columns: Vec<(usize, Vec<Option<HashSet<String>>>)>,
    /// Per rule: its WHERE is nothing but pins, all on columns listed above.
    pins_only: Vec<bool>,
}

/// What the pins say about one batch.
pub(super) struct BatchPins {
    /// The rule may select a row of the batch.
    pub(super) possible: Vec<bool>,
    /// The rule selects every row of the batch, or of any group of its rows
    /// that share one of its values of the index column: its predicate need
    /// not run.
    pub(super) certain: Vec<bool>,
}

/// Distinct values a batch column may have before pruning on it gives up.
const PRUNE_MAX_DISTINCT: usize = 256;

pub(super) fn build_pins(rules: &[CompiledRule], schema: &SchemaRef) -> Pins {
    let names = pinned_utf8_columns(rules, schema);
    let columns: Vec<(usize, Vec<Option<HashSet<String>>>)> = names
        .iter()
        .filter_map(|&c| {
            let idx = schema.index_of(c).ok()?;
            let per_rule = rules
                .iter()
                .map(|r| {
                    let mut sets = r.equalities.iter().filter(|(n, _)| n == c);
                    match (sets.next(), sets.next()) {
                        (Some((_, v)), None) => Some(v.iter().cloned().collect()),
                        // Pinned twice or not at all: no pruning on this column.
                        _ => None,
                    }
                })
                .collect();
            Some((idx, per_rule))
        })
        .collect();
    let pins_only = rules
        .iter()
        .map(|r| {
            r.pins_only
                && r.equalities.iter().all(|(c, _)| {
                    r.equalities.iter().filter(|(n, _)| n == c).count() == 1
                        && names.contains(&c.as_str())
                })
        })
        .collect();
    Pins { columns, pins_only }
}

impl Pins {
    /// What the pins say about `batch`. The `index` column is left out of
    /// `certain` for the rules it indexes: each of their groups holds only
    /// rows with one of their values.
    pub(super) fn check(
        &self,
        batch: &RecordBatch,
        rules: usize,
        index: Option<&EqIndex>,
    ) -> BatchPins {
        let mut possible = vec![true; rules];
        let mut certain: Vec<bool> = (0..rules)
            .map(|r| self.pins_only.get(r).copied().unwrap_or(false))
            .collect();
        for (idx, per_rule) in &self.columns {
            let distinct = batch
                .columns()
                .get(*idx)
                .and_then(|c| c.as_any().downcast_ref::<StringArray>())
                .and_then(distinct_values);
            let indexed_here = index.filter(|ix| ix.column == *idx);
            for (r, values) in per_rule.iter().enumerate().take(rules) {
                let Some(vs) = values else { continue };
                let Some((present, has_null)) = &distinct else {
                    // Unknown values: neither pruned nor certain.
                    certain[r] &= indexed_here.is_some_and(|ix| ix.indexed.get(r) == Some(&true));
                    continue;
                };
                // Probe the smaller set: a batch may hold 200 values and a
                // rule accept one.
                let meets = if vs.len() < present.len() {
                    vs.iter().any(|v| present.contains(v.as_str()))
                } else {
                    present.iter().any(|v| vs.contains(*v))
                };
                if !meets {
                    possible[r] = false;
                }
                let by_group = indexed_here.is_some_and(|ix| ix.indexed.get(r) == Some(&true));
                if !by_group
                    && (*has_null
                        || present.len() > vs.len()
                        || !present.iter().all(|v| vs.contains(*v)))
                {
                    certain[r] = false;
                }
            }
        }
        BatchPins { possible, certain }
    }
}

/// The distinct non-null values of `s` and whether it has nulls; None when
/// there are more than [`PRUNE_MAX_DISTINCT`].
fn distinct_values(s: &StringArray) -> Option<(HashSet<&str>, bool)> {
    let mut present: HashSet<&str> = HashSet::new();
    for i in 0..s.len() {
        if s.is_valid(i) && present.insert(s.value(i)) && present.len() > PRUNE_MAX_DISTINCT {
            return None;
        }
    }
    Some((present, s.null_count() > 0))
}
