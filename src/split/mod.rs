//! Splitting: owns how a source file becomes splits. Pure: given the row
//! groups of a Parquet file (rows and compressed bytes each), it cuts
//! contiguous ranges of about `split_size` bytes. A split is the unit a
//! reader pulls and the unit whose row offset the checkpoint records.

use crate::checkpoint::SplitRecord;

/// Rows and compressed bytes of one row group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RowGroupInfo {
    pub rows: u64,
    pub bytes: u64,
}

/// Cuts row groups into contiguous splits of at least one row group and at
/// most about `split_size` bytes. A file without rows has no splits.
pub fn plan(row_groups: &[RowGroupInfo], split_size: u64) -> Vec<SplitRecord> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut bytes = 0u64;
    let mut rows = 0u64;
    for (i, rg) in row_groups.iter().enumerate() {
        if i > start && bytes + rg.bytes > split_size {
            out.push(SplitRecord {
                row_groups: (start, i),
                rows,
                offset: 0,
            });
            start = i;
            bytes = 0;
            rows = 0;
        }
        bytes += rg.bytes;
        rows += rg.rows;
    }
    if start < row_groups.len() {
        out.push(SplitRecord {
            row_groups: (start, row_groups.len()),
            rows,
            offset: 0,
        });
    }
    out.retain(|s| s.rows > 0);
    out
}

/// Identifies one split in the pipeline: the file and its index.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SplitId {
    pub file: String,
    pub index: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rg(rows: u64, bytes: u64) -> RowGroupInfo {
        RowGroupInfo { rows, bytes }
    }

    #[test]
    fn cuts_by_bytes_and_keeps_every_row_group() {
        let s = plan(&[rg(10, 60), rg(10, 60), rg(10, 60), rg(5, 10)], 100);
        let ranges: Vec<_> = s.iter().map(|s| s.row_groups).collect();
        assert_eq!(ranges, vec![(0, 1), (1, 2), (2, 4)]);
        assert_eq!(s.iter().map(|s| s.rows).sum::<u64>(), 35);
    }

    #[test]
    fn one_split_for_small_files_none_for_empty() {
        assert_eq!(plan(&[rg(3, 1), rg(4, 1)], 1 << 20).len(), 1);
        assert!(plan(&[], 100).is_empty());
        assert!(plan(&[rg(0, 10)], 100).is_empty());
    }

    #[test]
    fn a_huge_row_group_is_its_own_split() {
        let s = plan(&[rg(1, 1000), rg(1, 1)], 10);
        assert_eq!(s.len(), 2);
    }
}
