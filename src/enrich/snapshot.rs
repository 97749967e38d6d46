//! A dimension snapshot: the loaded rows (key plus the added columns, as
//! Arrow arrays) and a hash index from key to row. The index stores row
//! numbers only and hashes the keys where they lie in the Arrow array, so
//! a snapshot costs its Arrow size plus a few bytes a row. Joining a batch
//! computes one index per row and `take`s the added columns: the
//! dimension itself is never copied.

use super::EnrichError;
use crate::config::{DimColumn, OnDuplicate};
use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Int64Array, RecordBatch, UInt32Array};
use arrow::compute::kernels::zip::zip;
use arrow::compute::{cast, is_not_null, take};
use arrow::datatypes::{DataType, Field, FieldRef, Int64Type};
use hashbrown::{DefaultHashBuilder, HashTable};
use std::hash::BuildHasher;
use std::sync::Arc;

/// The key column, normalised to one string or one integer type.
enum Keys {
    Str(arrow::array::StringArray),
    Int(Int64Array),
}

/// Where the snapshot's rows came from, and the file fingerprint they had.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Fingerprint(pub Vec<(String, u64, i64)>);

pub struct Snapshot {
    keys: Keys,
    index: HashTable<u32>,
    hasher: DefaultHashBuilder,
    /// The added columns, in `fields` order.
    columns: Vec<ArrayRef>,
    /// The added columns' fields in enriched rows (always nullable).
    pub fields: Vec<FieldRef>,
    /// A value for rows without a match, per added column.
    defaults: Vec<Option<ArrayRef>>,
    /// The rows as loaded (key and columns under their dimension names),
    /// kept to persist the snapshot.
    pub data: RecordBatch,
    pub rows: usize,
    /// What was loaded: the file, dated folder or persisted copy.
    pub origin: String,
    pub fingerprint: Fingerprint,
    pub loaded_at_ms: i64,
}

fn key_kind(t: &DataType) -> Option<DataType> {
    match t {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => Some(DataType::Utf8),
        DataType::Dictionary(_, v) => key_kind(v),
        t if t.is_integer() => Some(DataType::Int64),
        _ => None,
    }
}

fn hash_row(h: &DefaultHashBuilder, keys: &Keys, row: usize) -> u64 {
    match keys {
        Keys::Str(a) => h.hash_one(a.value(row)),
        Keys::Int(a) => h.hash_one(a.value(row)),
    }
}

impl Snapshot {
    /// Builds the index over `data`, which holds the key column `key` and
    /// every `columns[i].from`.
    pub fn build(
        data: RecordBatch,
        key: &str,
        columns: &[DimColumn],
        on_duplicate: OnDuplicate,
        origin: String,
        fingerprint: Fingerprint,
        loaded_at_ms: i64,
    ) -> Result<Snapshot, EnrichError> {
        let bad = |m: String| EnrichError::Load(m);
        let key_col = data
            .column_by_name(key)
            .ok_or_else(|| bad(format!("the key column {key:?} is missing")))?;
        let kind = key_kind(key_col.data_type()).ok_or_else(|| {
            bad(format!(
                "the key column {key:?} has type {}; keys must be strings or integers",
                key_col.data_type()
            ))
        })?;
        let keys = match cast(key_col, &kind)? {
            a if kind == DataType::Utf8 => Keys::Str(a.as_string::<i32>().clone()),
            a => Keys::Int(a.as_primitive::<Int64Type>().clone()),
        };
        let mut out_cols = Vec::with_capacity(columns.len());
        let mut fields = Vec::with_capacity(columns.len());
        let mut defaults = Vec::with_capacity(columns.len());
        for c in columns {
            let a = data
                .column_by_name(&c.from)
                .ok_or_else(|| bad(format!("the column {:?} is missing", c.from)))?
                .clone();
            fields.push(Arc::new(Field::new(&c.to, a.data_type().clone(), true)));
            defaults.push(match &c.default {
                None => None,
                Some(v) => {
                    let s: ArrayRef = Arc::new(arrow::array::StringArray::from(vec![v.as_str()]));
                    let d = cast(&s, a.data_type())?;
                    if d.is_null(0) {
                        return Err(bad(format!(
                            "the default {v:?} for {:?} is not a {}",
                            c.to,
                            a.data_type()
                        )));
                    }
                    Some(d)
                }
            });
            out_cols.push(a);
        }
        let rows = data.num_rows();
        let hasher = DefaultHashBuilder::default();
        let mut index: HashTable<u32> = HashTable::with_capacity(rows);
        let valid = |r: usize| match &keys {
            Keys::Str(a) => a.is_valid(r),
            Keys::Int(a) => a.is_valid(r),
        };
        let eq = |a: usize, b: usize| match &keys {
            Keys::Str(k) => k.value(a) == k.value(b),
            Keys::Int(k) => k.value(a) == k.value(b),
        };
        for r in 0..rows {
            if !valid(r) {
                continue;
            }
            let h = hash_row(&hasher, &keys, r);
            match index.find_mut(h, |&o| eq(o as usize, r)) {
                None => {
                    index.insert_unique(h, r as u32, |&o| hash_row(&hasher, &keys, o as usize));
                }
                Some(slot) => match on_duplicate {
                    OnDuplicate::LastWins => *slot = r as u32,
                    OnDuplicate::Error => {
                        let shown = match &keys {
                            Keys::Str(k) => format!("{:?}", k.value(r)),
                            Keys::Int(k) => k.value(r).to_string(),
                        };
                        return Err(bad(format!(
                            "duplicate key {shown} in {key:?} (rows {} and {r}); fix the dimension or set on_duplicate = \"last_wins\"",
                            *slot
                        )));
                    }
                },
            }
        }
        Ok(Snapshot {
            keys,
            index,
            hasher,
            columns: out_cols,
            fields,
            defaults,
            data,
            rows,
            origin,
            fingerprint,
            loaded_at_ms,
        })
    }

    /// Distinct keys in the index.
    pub fn keys(&self) -> usize {
        self.index.len()
    }

    /// The row of each source key (null: no match).
    fn lookup(&self, source_key: &ArrayRef) -> Result<UInt32Array, EnrichError> {
        let n = source_key.len();
        let rows = match &self.keys {
            Keys::Str(k) => {
                let s = cast(source_key, &DataType::Utf8)?;
                let s = s.as_string::<i32>();
                self.probe(n, |i| s.is_valid(i).then(|| s.value(i)), |r| k.value(r))
            }
            Keys::Int(k) => {
                let s = cast(source_key, &DataType::Int64)?;
                let s = s.as_primitive::<Int64Type>();
                self.probe(n, |i| s.is_valid(i).then(|| s.value(i)), |r| k.value(r))
            }
        };
        Ok(UInt32Array::from(rows))
    }

    /// For rows `0..n`, the snapshot row whose key equals `value(i)`.
    fn probe<T: std::hash::Hash + PartialEq>(
        &self,
        n: usize,
        value: impl Fn(usize) -> Option<T>,
        key_at: impl Fn(usize) -> T,
    ) -> Vec<Option<u32>> {
        (0..n)
            .map(|i| {
                let v = value(i)?;
                let h = self.hasher.hash_one(&v);
                self.index.find(h, |&r| key_at(r as usize) == v).copied()
            })
            .collect()
    }

    /// The added columns for `source_key`'s rows, and how many rows had no
    /// match.
    pub fn join(&self, source_key: &ArrayRef) -> Result<(Vec<ArrayRef>, u64), EnrichError> {
        let idx = self.lookup(source_key)?;
        let unmatched = idx.null_count() as u64;
        let matched: BooleanArray = is_not_null(&idx)?;
        let mut out = Vec::with_capacity(self.columns.len());
        for (col, default) in self.columns.iter().zip(&self.defaults) {
            let taken = take(col.as_ref(), &idx, None)?;
            out.push(match default {
                Some(d) if unmatched > 0 => {
                    zip(&matched, &taken, &arrow::array::Scalar::new(d.clone()))?
                }
                _ => taken,
            });
        }
        Ok((out, unmatched))
    }

    /// Bytes held by the arrays and the index.
    pub fn memory_size(&self) -> usize {
        // `columns` and (for string and Int64 keys) `keys` share `data`'s buffers.
        self.data.get_array_memory_size() + self.index.allocation_size()
    }
}
