//! The choice per column: unique columns plain, repeating ones dictionary,
//! including from samples far smaller than a row group.

use super::*;
use arrow::array::{ArrayRef, BooleanArray, Int64Array, StringArray};
use arrow::datatypes::{Field, Schema};
use std::sync::Arc;

const CHUNK: usize = 128 * 1024;

/// Deterministic pseudo-random indices below `n` (splitmix64).
fn draws(rows: usize, n: u64, seed: u64) -> Vec<u64> {
    let mut s = seed;
    (0..rows)
        .map(|_| {
            s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            (z ^ (z >> 31)) % n
        })
        .collect()
}

fn strings(values: impl IntoIterator<Item = u64>, width: usize) -> StringArray {
    StringArray::from_iter_values(values.into_iter().map(|v| format!("{v:0width$}")))
}

#[test]
fn unique_columns_are_plain() {
    let ids = Int64Array::from_iter_values(0..5_000);
    assert_eq!(choose(&ids, CHUNK), Choice::Plain);
    assert_eq!(choose(&strings(0..5_000, 20), CHUNK), Choice::Plain);
}

#[test]
fn few_values_are_dictionary() {
    let types = strings(draws(2_000, 8, 1), 6);
    assert_eq!(choose(&types, CHUNK), Choice::Dictionary);
    let small_ints =
        Int64Array::from_iter_values(draws(2_000, 20, 2).into_iter().map(|v| v as i64));
    assert_eq!(choose(&small_ints, CHUNK), Choice::Dictionary);
}

#[test]
fn a_small_sample_of_a_repeating_column_is_dictionary() {
    // 1,500 rows from 3,000 values: most are distinct in the sample (a
    // naive sample ratio says plain), but a 128k-row chunk holds at most
    // 3,000 of them.
    let uas = strings(draws(1_500, 3_000, 3), 265);
    assert_eq!(choose(&uas, CHUNK), Choice::Dictionary);
}

#[test]
fn a_small_sample_of_a_wide_column_is_plain() {
    let ids = strings(draws(1_500, 1_000_000, 4), 16);
    assert_eq!(choose(&ids, CHUNK), Choice::Plain);
}

#[test]
fn a_sliced_column_is_judged_on_its_own_rows() {
    // The first 4,000 values repeat; the slice after them is unique.
    let all = Int64Array::from_iter_values((0..4_000).map(|_| 7).chain(0..4_000));
    assert_eq!(choose(&all.slice(0, 4_000), CHUNK), Choice::Dictionary);
    assert_eq!(choose(&all.slice(4_000, 4_000), CHUNK), Choice::Plain);
}

#[test]
fn empty_null_and_boolean_columns() {
    let nulls = StringArray::from(vec![None::<&str>; 100]);
    assert_eq!(choose(&nulls, CHUNK), Choice::Default);
    assert_eq!(
        choose(&Int64Array::from(Vec::<i64>::new()), CHUNK),
        Choice::Default
    );
    let flags = BooleanArray::from(vec![true, false, true]);
    assert_eq!(choose(&flags, CHUNK), Choice::Plain);
}

fn sample() -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("event_id", DataType::Int64, false),
        Field::new("event_type", DataType::Utf8, true),
        Field::new("props", DataType::Utf8, true),
    ]));
    let rows = 3_000;
    let cols: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(0..rows as i64)),
        Arc::new(strings(draws(rows, 8, 5), 4)),
        // Long text: 100 bytes a value.
        Arc::new(strings(draws(rows, u64::MAX, 6), 100)),
    ];
    RecordBatch::try_new(schema, cols).unwrap()
}

#[test]
fn writer_properties_set_each_column() {
    let batch = sample();
    let s = EncodingSettings {
        zstd_level: 1,
        row_group_rows: 1_000,
        all_statistics: false,
    };
    let p = writer_properties(&batch.schema(), &batch, &s);
    let dict = |c: &str| p.dictionary_enabled(&ColumnPath::from(c));
    assert!(!dict("event_id"));
    assert!(dict("event_type"));
    assert!(!dict("props"));
    assert_eq!(p.max_row_group_row_count(), Some(1_000));
    assert_eq!(
        p.compression(&ColumnPath::from("props")),
        Compression::ZSTD(ZstdLevel::try_new(1).unwrap())
    );
    let stats = |p: &WriterProperties, c: &str| p.statistics_enabled(&ColumnPath::from(c));
    assert_eq!(stats(&p, "event_id"), EnabledStatistics::Page);
    assert_eq!(stats(&p, "event_type"), EnabledStatistics::Page);
    assert_eq!(stats(&p, "props"), EnabledStatistics::None);
    let all = EncodingSettings {
        all_statistics: true,
        ..s.clone()
    };
    let p = writer_properties(&batch.schema(), &batch, &all);
    assert_eq!(stats(&p, "props"), EnabledStatistics::Page);
    // The old behaviour: a dictionary everywhere.
    let u = uniform_properties(&s);
    assert!(u.dictionary_enabled(&ColumnPath::from("event_id")));
}

#[test]
fn long_text_is_told_by_its_mean_length() {
    let at = |width: usize| strings(0..100, width);
    assert!(!long_values(&at(STATISTICS_MAX_MEAN_BYTES)));
    assert!(long_values(&at(STATISTICS_MAX_MEAN_BYTES + 1)));
    // Nulls do not count as short values.
    let sparse = StringArray::from_iter((0..100).map(|i| (i % 10 == 0).then(|| "x".repeat(200))));
    assert!(long_values(&sparse));
    assert!(!long_values(&StringArray::from(vec![None::<&str>; 10])));
    assert!(!long_values(&Int64Array::from_iter_values(0..100)));
    // Judged on the head of a slice, not the array behind it.
    let both =
        StringArray::from_iter_values((0..200).map(|i| "y".repeat(if i < 100 { 200 } else { 8 })));
    assert!(long_values(&both.slice(0, 100)));
    assert!(!long_values(&both.slice(100, 100)));
}

#[test]
fn files_written_with_the_choice_read_back_and_skip_dictionaries() {
    use parquet::arrow::ArrowWriter;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use parquet::basic::Encoding;
    let batch = sample();
    let s = EncodingSettings {
        zstd_level: 3,
        row_group_rows: CHUNK,
        all_statistics: false,
    };
    let p = writer_properties(&batch.schema(), &batch, &s);
    let mut buf = Vec::new();
    let mut w = ArrowWriter::try_new(&mut buf, batch.schema(), Some(p)).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    let r = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(buf)).unwrap();
    let chunk_encodings = |i: usize| {
        r.metadata()
            .row_group(0)
            .column(i)
            .encodings()
            .collect::<Vec<_>>()
    };
    assert!(!chunk_encodings(0).contains(&Encoding::RLE_DICTIONARY));
    assert!(chunk_encodings(1).contains(&Encoding::RLE_DICTIONARY));
    assert!(!chunk_encodings(2).contains(&Encoding::RLE_DICTIONARY));
    // Min/max where they can prune, none on long text.
    let has_stats = |i: usize| r.metadata().row_group(0).column(i).statistics().is_some();
    assert!(has_stats(0) && has_stats(1));
    assert!(!has_stats(2));
    let back: Vec<RecordBatch> = r.build().unwrap().collect::<Result<_, _>>().unwrap();
    let back = arrow::compute::concat_batches(&back[0].schema(), &back).unwrap();
    assert_eq!(back.columns(), batch.columns());
}
