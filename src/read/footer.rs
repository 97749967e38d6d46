//! Distrust of a footer: owns checking the numbers a Parquet footer gives
//! (row counts, column-chunk offsets and lengths) against the file's size
//! before any byte range is built from them, and turning a panic of the
//! Parquet decoder into an error. A bad file must quarantine itself, never
//! kill the thread that reads it.

use super::ReadError;
use parquet::file::metadata::{ColumnChunkMetaData, ParquetMetaData};
use std::any::Any;
use std::ops::Range;

/// Checks every row group of `md` against a file of `size` bytes: row
/// counts not negative and adding up to the file's, one chunk per column,
/// one value per row in a column that is not repeated, and every chunk's
/// bytes inside the file.
pub fn validate(md: &ParquetMetaData, size: u64) -> Result<(), ReadError> {
    let bad = |m: String| Err(ReadError::BadFooter(m));
    let columns = md.file_metadata().schema_descr().num_columns();
    let mut total: i64 = 0;
    for (i, rg) in md.row_groups().iter().enumerate() {
        if rg.num_rows() < 0 {
            return bad(format!(
                "row group {i} has a negative row count {}",
                rg.num_rows()
            ));
        }
        total = match total.checked_add(rg.num_rows()) {
            Some(t) => t,
            None => return bad("the row groups' row counts overflow".into()),
        };
        if rg.num_columns() != columns {
            return bad(format!(
                "row group {i} has {} column chunks where the schema has {columns} columns",
                rg.num_columns()
            ));
        }
        for (j, c) in rg.columns().iter().enumerate() {
            if let Err(m) = chunk_range(c, size) {
                return bad(format!("row group {i} column {j}: {m}"));
            }
            // A column that is not repeated holds one value (or null) per row.
            if c.column_descr().max_rep_level() == 0 && c.num_values() != rg.num_rows() {
                return bad(format!(
                    "row group {i} column {j} holds {} values where the row group says {} rows",
                    c.num_values(),
                    rg.num_rows()
                ));
            }
        }
    }
    let declared = md.file_metadata().num_rows();
    if total != declared {
        return bad(format!(
            "the footer says {declared} rows but its row groups hold {total}"
        ));
    }
    Ok(())
}

/// The bytes of a column chunk, checked: offsets and length not negative,
/// the end inside a file of `size` bytes. (`ColumnChunkMetaData::byte_range`
/// asserts instead, which panics on a crafted footer.)
pub fn chunk_range(c: &ColumnChunkMetaData, size: u64) -> Result<Range<u64>, String> {
    let data = c.data_page_offset();
    let start = c.dictionary_page_offset().unwrap_or(data);
    let len = c.compressed_size();
    if data < 0 || start < 0 || len < 0 {
        return Err(format!(
            "negative offset or length (data page {data}, start {start}, length {len})"
        ));
    }
    let (start, len) = (start as u64, len as u64);
    match start.checked_add(len) {
        Some(end) if end <= size => Ok(start..end),
        _ => Err(format!(
            "bytes {start}..{start}+{len} lie beyond the file's {size} bytes"
        )),
    }
}

/// The message of a caught panic (`&str` or `String` payloads; others are
/// named as such).
pub fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use parquet::file::metadata::ParquetMetaDataReader;

    fn demo_footer() -> (ParquetMetaData, u64) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.parquet");
        crate::demo::write_event_file(&p, 1, 1000, 400, crate::demo::DAY_START_MS).unwrap();
        let bytes = Bytes::from(std::fs::read(&p).unwrap());
        let md = ParquetMetaDataReader::new()
            .parse_and_finish(&bytes)
            .unwrap();
        (md, bytes.len() as u64)
    }

    /// `md` with the first row group's first column chunk changed by `f`.
    fn with_chunk(
        md: &ParquetMetaData,
        f: impl Fn(
            parquet::file::metadata::ColumnChunkMetaDataBuilder,
        ) -> parquet::file::metadata::ColumnChunkMetaDataBuilder,
    ) -> ParquetMetaData {
        let mut rgs = md.row_groups().to_vec();
        let mut cols = rgs[0].columns().to_vec();
        cols[0] = f(cols[0].clone().into_builder()).build().unwrap();
        rgs[0] = rgs[0]
            .clone()
            .into_builder()
            .set_column_metadata(cols)
            .build()
            .unwrap();
        md.clone().into_builder().set_row_groups(rgs).build()
    }

    #[test]
    fn a_good_footer_passes() {
        let (md, size) = demo_footer();
        validate(&md, size).unwrap();
    }

    #[test]
    fn offsets_beyond_the_file_or_negative_are_refused() {
        let (md, size) = demo_footer();
        let beyond = with_chunk(&md, |b| {
            b.set_dictionary_page_offset(None)
                .set_data_page_offset(size as i64 - 2)
        });
        let e = validate(&beyond, size).unwrap_err().to_string();
        assert!(e.contains("beyond the file's"), "{e}");
        let negative = with_chunk(&md, |b| b.set_total_compressed_size(-1));
        let e = validate(&negative, size).unwrap_err().to_string();
        assert!(
            e.starts_with("bad footer: row group 0 column 0: negative"),
            "{e}"
        );
        let huge = with_chunk(&md, |b| {
            b.set_dictionary_page_offset(Some(i64::MAX))
                .set_total_compressed_size(i64::MAX)
        });
        assert!(validate(&huge, size).is_err());
    }

    #[test]
    fn row_counts_that_disagree_are_refused() {
        let (md, size) = demo_footer();
        let mut rgs = md.row_groups().to_vec();
        rgs[1] = rgs[1]
            .clone()
            .into_builder()
            .set_num_rows(-5)
            .build()
            .unwrap();
        let neg = md.clone().into_builder().set_row_groups(rgs).build();
        assert!(
            validate(&neg, size)
                .unwrap_err()
                .to_string()
                .contains("negative row count")
        );
        let mut rgs = md.row_groups().to_vec();
        rgs[1] = rgs[1]
            .clone()
            .into_builder()
            .set_num_rows(7)
            .build()
            .unwrap();
        let short = md.into_builder().set_row_groups(rgs).build();
        assert!(
            validate(&short, size)
                .unwrap_err()
                .to_string()
                .contains("row group 1 column 0 holds 400 values where the row group says 7 rows")
        );
        let (md, size) = demo_footer();
        let fm = md.file_metadata();
        let fm = parquet::file::metadata::FileMetaData::new(
            fm.version(),
            fm.num_rows() + 1,
            None,
            None,
            fm.schema_descr_ptr(),
            None,
        );
        let more = parquet::file::metadata::ParquetMetaDataBuilder::new(fm)
            .set_row_groups(md.row_groups().to_vec())
            .build();
        assert!(
            validate(&more, size)
                .unwrap_err()
                .to_string()
                .contains("the footer says 1001 rows but its row groups hold 1000")
        );
    }

    #[test]
    fn panic_messages_are_kept() {
        let p = std::panic::catch_unwind(|| panic!("boom {}", 7)).unwrap_err();
        assert_eq!(panic_message(p.as_ref()), "boom 7");
        let p = std::panic::catch_unwind(|| panic!("plain")).unwrap_err();
        assert_eq!(panic_message(p.as_ref()), "plain");
    }
}
