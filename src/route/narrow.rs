//! Copies of a batch that carry only the columns a rule reads. Routing
//! copies a rule's rows at most once with every column its SELECT reads
//! (the `take` of an indexed rule's rows, or the filter of its WHERE), and
//! an indexed rule's WHERE is tested on a copy of only the columns it
//! tests; wide source columns a copy does not need (a user agent, a JSON
//! payload) are replaced by all-null stand-ins of their type instead of
//! being copied. Pure; used only by `route`.
//!
//! The stand-ins never reach an output: the rule's expressions read only
//! the columns of [`CompiledRule::reads`]. Error rows, which keep every
//! source column, are cut from the full batch (see `RuleSet::route`).

use super::CompiledRule;
use arrow::array::{
    ArrayRef, BooleanArray, RecordBatch, RecordBatchOptions, UInt32Array, new_null_array,
};
use arrow::compute::{filter, take};
use arrow::error::ArrowError;
use std::sync::atomic::{AtomicBool, Ordering};

/// Set only by `sluice bench --copy-all-columns`: routing then copies
/// every column, as before, so one build measures both.
static COPY_ALL: AtomicBool = AtomicBool::new(false);

/// For `sluice bench` only (see [`COPY_ALL`]).
pub fn set_copy_all_columns(on: bool) {
    COPY_ALL.store(on, Ordering::Relaxed);
}

/// Which columns of `batch` `rule` reads; `None` when it reads them all.
/// Columns that may not hold nulls count as read (no stand-in fits them).
pub(crate) fn read_mask(batch: &RecordBatch, rule: &CompiledRule) -> Option<Vec<bool>> {
    columns_mask(batch, &rule.reads)
}

/// Which columns of `batch` are among `names` (or may not hold nulls);
/// `None` when that is all of them.
pub(crate) fn columns_mask(batch: &RecordBatch, names: &[String]) -> Option<Vec<bool>> {
    if COPY_ALL.load(Ordering::Relaxed) {
        return None;
    }
    let schema = batch.schema();
    let mut mask: Vec<bool> = schema.fields().iter().map(|f| !f.is_nullable()).collect();
    for name in names {
        if let Ok(i) = schema.index_of(name) {
            mask[i] = true;
        }
    }
    (!mask.iter().all(|m| *m)).then_some(mask)
}

/// Rebuilds `batch` with each read column passed through `copy` and the
/// others as all-null columns of `rows` rows.
fn rebuild(
    batch: &RecordBatch,
    mask: &[bool],
    rows: usize,
    copy: impl Fn(&ArrayRef) -> Result<ArrayRef, ArrowError>,
) -> Result<RecordBatch, ArrowError> {
    let schema = batch.schema();
    let cols = batch
        .columns()
        .iter()
        .zip(mask)
        .zip(schema.fields())
        .map(|((c, &read), _field)| {
            if read {
                #[cfg(test)]
                copies::add(_field.name(), rows);
                copy(c)
            } else {
                Ok(new_null_array(c.data_type(), rows))
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    RecordBatch::try_new_with_options(
        batch.schema(),
        cols,
        &RecordBatchOptions::new().with_row_count(Some(rows)),
    )
}

/// `take_record_batch`, copying only the columns of `mask`.
pub(crate) fn take_read(
    batch: &RecordBatch,
    idx: &UInt32Array,
    mask: Option<&[bool]>,
) -> Result<RecordBatch, ArrowError> {
    let all;
    let m = match mask {
        Some(m) => m,
        None => {
            all = vec![true; batch.num_columns()];
            &all
        }
    };
    rebuild(batch, m, idx.len(), |c| take(c.as_ref(), idx, None))
}

/// `filter_record_batch`, copying only the columns of `mask`.
pub(crate) fn filter_read(
    batch: &RecordBatch,
    keep: &BooleanArray,
    mask: Option<&[bool]>,
) -> Result<RecordBatch, ArrowError> {
    let all;
    let m = match mask {
        Some(m) => m,
        None => {
            all = vec![true; batch.num_columns()];
            &all
        }
    };
    rebuild(batch, m, keep.true_count(), |c| filter(c.as_ref(), keep))
}

/// Tests count the rows each column is copied for (per thread).
#[cfg(test)]
pub(crate) mod copies {
    use std::cell::RefCell;
    use std::collections::HashMap;

    thread_local! {
        static ROWS: RefCell<HashMap<String, usize>> = RefCell::new(HashMap::new());
    }

    pub(crate) fn add(column: &str, rows: usize) {
        ROWS.with(|m| *m.borrow_mut().entry(column.to_string()).or_insert(0) += rows);
    }

    /// The counts since the last call, reset.
    pub(crate) fn take() -> HashMap<String, usize> {
        ROWS.with(|m| std::mem::take(&mut *m.borrow_mut()))
    }
}
