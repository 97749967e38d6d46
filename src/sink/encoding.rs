//! Per-column Parquet encoding, chosen from what the data shows. Owns the
//! `WriterProperties` of every output file; pure (no I/O), called once per
//! file with the file's first batch as a sample.
//!
//! Dictionary encoding pays when values repeat: the dictionary is built per
//! column chunk (row group), and a column whose chunk would hold more
//! distinct values than [`DICTIONARY_MAX_RATIO`] of its rows is written
//! plain. Unique ids, timestamps and free-form text then skip a dictionary
//! the encoder would build, outgrow and abandon.
//!
//! The sample is often far smaller than a row group (a wide table's first
//! batch can be ~1,500 rows), so the distinct values of a full chunk are
//! estimated, not read off the sample: Chao1 (from the values seen once and
//! twice) estimates how many values the column draws from, and the expected
//! distinct count of a chunk of `row_group_rows` follows. A column that is
//! unique in the sample estimates as unbounded; 3,000 user agents seen in a
//! 1,500-row sample estimate near 3,000.
//!
//! Statistics are kept for every column except long text: a string or
//! binary column whose sampled values average over
//! [`STATISTICS_MAX_MEAN_BYTES`] (a user agent, a JSON payload) gets none
//! (no min/max, no null count, no page index). Readers would see only a
//! truncated prefix of such values (64 bytes), which spans nearly every row
//! group of free text and prunes nothing, while the writer compares every
//! value twice to find it: 7-11% of the encoder's CPU on P100.
//! `sink.statistics = "all"` keeps them everywhere.

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, SchemaRef};
use hashbrown::HashMap;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties, WriterPropertiesBuilder};
use parquet::schema::types::ColumnPath;
use std::sync::atomic::{AtomicBool, Ordering};

/// A column chunk is dictionary-encoded when its expected distinct values
/// are under this fraction of its rows.
pub const DICTIONARY_MAX_RATIO: f64 = 0.10;

/// Rows of the sample looked at per column (the head of the first batch).
pub const SAMPLE_ROWS: usize = 16_384;

/// A string or binary column whose sampled values average more bytes than
/// this is written without min/max statistics (unless
/// [`EncodingSettings::all_statistics`]). It is the length parquet
/// truncates statistics to.
pub const STATISTICS_MAX_MEAN_BYTES: usize = 64;

/// What the writer needs besides the data.
#[derive(Clone, Debug)]
pub struct EncodingSettings {
    pub zstd_level: i32,
    /// Rows per row group: one dictionary per column per row group.
    pub row_group_rows: usize,
    /// Min/max statistics for every column, long text included
    /// (`sink.statistics = "all"`).
    pub all_statistics: bool,
}

/// The encoding chosen for one top-level column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Choice {
    Dictionary,
    Plain,
    /// Not judged (nested, already dictionary-typed, or an empty sample):
    /// the writer's default, which is a dictionary with plain fallback.
    Default,
}

/// Set only by `sluice bench --dictionary-everywhere`: every file then
/// gets [`uniform_properties`], as before per-column choices, so one build
/// measures both.
static DICTIONARY_EVERYWHERE: AtomicBool = AtomicBool::new(false);

/// For `sluice bench` only (see [`DICTIONARY_EVERYWHERE`]).
pub fn set_dictionary_everywhere(on: bool) {
    DICTIONARY_EVERYWHERE.store(on, Ordering::Relaxed);
}

/// The properties of one output file: zstd at the configured level, the
/// configured row group size, and per column the choice of [`choices`].
pub fn writer_properties(
    schema: &SchemaRef,
    sample: &RecordBatch,
    settings: &EncodingSettings,
) -> WriterProperties {
    if DICTIONARY_EVERYWHERE.load(Ordering::Relaxed) {
        return uniform_properties(settings);
    }
    let mut b = base(settings);
    for (name, choice) in choices(schema, sample, settings) {
        let col = ColumnPath::from(name);
        b = match choice {
            Choice::Dictionary => b.set_column_dictionary_enabled(col, true),
            Choice::Plain => b.set_column_dictionary_enabled(col, false),
            Choice::Default => b,
        };
    }
    if !settings.all_statistics {
        for f in schema.fields() {
            if sample
                .column_by_name(f.name())
                .is_some_and(|a| long_values(a.as_ref()))
            {
                b = b.set_column_statistics_enabled(
                    ColumnPath::from(f.name().as_str()),
                    EnabledStatistics::None,
                );
            }
        }
    }
    b.build()
}

/// Whether `array` is long text: string or binary values averaging more
/// than [`STATISTICS_MAX_MEAN_BYTES`] over its first [`SAMPLE_ROWS`]
/// non-null values (read off the offsets: a null's slot holds no bytes).
/// Other types, and a column of nulls, are not.
pub fn long_values(array: &dyn Array) -> bool {
    let n = array.len().min(SAMPLE_ROWS);
    let head = array.slice(0, n);
    let values = n - head.null_count();
    let bytes = match head.data_type() {
        DataType::Utf8 => span(head.as_string::<i32>().value_offsets()),
        DataType::LargeUtf8 => span(head.as_string::<i64>().value_offsets()),
        DataType::Binary => span(head.as_binary::<i32>().value_offsets()),
        DataType::LargeBinary => span(head.as_binary::<i64>().value_offsets()),
        DataType::Utf8View => head.as_string_view().lengths().map(|l| l as usize).sum(),
        DataType::BinaryView => head.as_binary_view().lengths().map(|l| l as usize).sum(),
        DataType::FixedSizeBinary(w) => values * (*w).max(0) as usize,
        _ => return false,
    };
    values > 0 && bytes > STATISTICS_MAX_MEAN_BYTES * values
}

/// Bytes between the first and the last of `offsets`.
fn span<O: arrow::array::OffsetSizeTrait>(offsets: &[O]) -> usize {
    match (offsets.first(), offsets.last()) {
        (Some(a), Some(b)) => b.as_usize().saturating_sub(a.as_usize()),
        _ => 0,
    }
}

/// The properties sluice used before per-column choices: a dictionary for
/// every column. Kept for `sluice bench`'s encoder comparison.
pub fn uniform_properties(settings: &EncodingSettings) -> WriterProperties {
    base(settings).build()
}

fn base(settings: &EncodingSettings) -> WriterPropertiesBuilder {
    WriterProperties::builder()
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(settings.zstd_level).unwrap_or_default(),
        ))
        .set_max_row_group_row_count(Some(settings.row_group_rows.max(1)))
        .set_created_by(format!("sluice {}", env!("CARGO_PKG_VERSION")))
}

/// The choice for each top-level column of `schema`, judged on the
/// sample's column of the same name.
pub fn choices(
    schema: &SchemaRef,
    sample: &RecordBatch,
    settings: &EncodingSettings,
) -> Vec<(String, Choice)> {
    schema
        .fields()
        .iter()
        .map(|f| {
            let choice = match sample.column_by_name(f.name()) {
                Some(a) => choose(a.as_ref(), settings.row_group_rows),
                None => Choice::Default,
            };
            (f.name().clone(), choice)
        })
        .collect()
}

/// Dictionary or plain for one column, from the head of `array`, for
/// chunks of `chunk_rows` rows.
pub fn choose(array: &dyn Array, chunk_rows: usize) -> Choice {
    let n = array.len().min(SAMPLE_ROWS);
    let head = array.slice(0, n);
    let counts = match head.data_type() {
        DataType::Boolean => return Choice::Plain,
        DataType::Utf8 => count(head.as_string::<i32>().iter().flatten().map(str::as_bytes)),
        DataType::LargeUtf8 => count(head.as_string::<i64>().iter().flatten().map(str::as_bytes)),
        DataType::Utf8View => count(head.as_string_view().iter().flatten().map(str::as_bytes)),
        DataType::Binary => count(head.as_binary::<i32>().iter().flatten()),
        DataType::LargeBinary => count(head.as_binary::<i64>().iter().flatten()),
        DataType::BinaryView => count(head.as_binary_view().iter().flatten()),
        DataType::FixedSizeBinary(_) => count(head.as_fixed_size_binary().iter().flatten()),
        t if t.is_primitive() => {
            let Some(width) = t.primitive_width() else {
                return Choice::Default;
            };
            let data = head.to_data();
            let Some(values) = data.buffers().first() else {
                return Choice::Default;
            };
            let bytes = values.as_slice();
            let start = data.offset();
            count(
                (0..data.len())
                    .filter(|&i| data.is_valid(i))
                    .filter_map(|i| {
                        let at = (start + i) * width;
                        bytes.get(at..at + width)
                    }),
            )
        }
        _ => return Choice::Default,
    };
    match counts {
        Some(c) if c.expected_distinct(chunk_rows) < DICTIONARY_MAX_RATIO * chunk_rows as f64 => {
            Choice::Dictionary
        }
        Some(_) => Choice::Plain,
        None => Choice::Default,
    }
}

/// Distinct values of a sample and how many were seen once and twice.
#[derive(Debug, PartialEq)]
struct Counts {
    rows: usize,
    distinct: usize,
    once: usize,
    twice: usize,
}

/// `None` when the sample has no values.
fn count<'a>(values: impl Iterator<Item = &'a [u8]>) -> Option<Counts> {
    let mut seen: HashMap<&[u8], u32> = HashMap::new();
    let mut rows = 0;
    for v in values {
        rows += 1;
        *seen.entry(v).or_insert(0) += 1;
    }
    if rows == 0 {
        return None;
    }
    let (mut once, mut twice) = (0, 0);
    for &c in seen.values() {
        match c {
            1 => once += 1,
            2 => twice += 1,
            _ => {}
        }
    }
    Some(Counts {
        rows,
        distinct: seen.len(),
        once,
        twice,
    })
}

impl Counts {
    /// Distinct values expected in a chunk of `chunk_rows` rows: read off
    /// the sample when it is that large, otherwise from the bias-corrected
    /// Chao1 estimate `K` of the values the column draws from, as
    /// `K (1 - e^(-rows / K))` (uniform draws).
    fn expected_distinct(&self, chunk_rows: usize) -> f64 {
        let (d, f1, f2) = (self.distinct as f64, self.once as f64, self.twice as f64);
        let rows = self.rows as f64;
        let chunk = chunk_rows.max(1) as f64;
        if rows >= chunk {
            return d * chunk / rows;
        }
        let k = d + f1 * (f1 - 1.0).max(0.0) / (2.0 * (f2 + 1.0));
        k * (1.0 - (-chunk / k).exp())
    }
}

#[cfg(test)]
mod tests;
