//! A Parquet `ChunkReader` over the byte ranges of one split, fetched ahead:
//! the decoder asks for column chunks by file offset and gets them from
//! memory, so a split costs one ranged fetch, never the whole file.

use bytes::{Buf, Bytes};
use parquet::errors::ParquetError;
use parquet::file::reader::{ChunkReader, Length};
use std::ops::Range;

/// Fetched ranges of a file of `len` bytes.
pub struct SparseFile {
    len: u64,
    chunks: Vec<(Range<u64>, Bytes)>,
}

impl SparseFile {
    pub fn new(len: u64, mut chunks: Vec<(Range<u64>, Bytes)>) -> SparseFile {
        chunks.sort_by_key(|(r, _)| r.start);
        SparseFile { len, chunks }
    }

    /// Bytes held (what was fetched).
    pub fn fetched_bytes(&self) -> u64 {
        self.chunks.iter().map(|(_, b)| b.len() as u64).sum()
    }

    fn slice(&self, start: u64, len: u64) -> Result<Bytes, ParquetError> {
        let end = start + len;
        self.chunks
            .iter()
            .find(|(r, _)| r.start <= start && end <= r.end)
            .map(|(r, b)| b.slice((start - r.start) as usize..(end - r.start) as usize))
            .ok_or_else(|| {
                ParquetError::General(format!(
                    "bytes {start}..{end} were not fetched for this split"
                ))
            })
    }
}

impl Length for SparseFile {
    fn len(&self) -> u64 {
        self.len
    }
}

impl ChunkReader for SparseFile {
    type T = bytes::buf::Reader<Bytes>;

    fn get_read(&self, start: u64) -> Result<Self::T, ParquetError> {
        let (r, b) = self
            .chunks
            .iter()
            .find(|(r, _)| r.start <= start && start < r.end)
            .ok_or_else(|| {
                ParquetError::General(format!("offset {start} was not fetched for this split"))
            })?;
        Ok(b.slice((start - r.start) as usize..).reader())
    }

    fn get_bytes(&self, start: u64, length: usize) -> Result<Bytes, ParquetError> {
        self.slice(start, length as u64)
    }
}

/// Sorts and merges overlapping or touching ranges.
pub fn merge(mut ranges: Vec<Range<u64>>) -> Vec<Range<u64>> {
    ranges.sort_by_key(|r| r.start);
    let mut out: Vec<Range<u64>> = Vec::with_capacity(ranges.len());
    for r in ranges {
        match out.last_mut() {
            Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
            _ => out.push(r),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_and_serves_slices() {
        assert_eq!(merge(vec![5..7, 0..2, 2..4, 6..9]), vec![0..4, 5..9]);
        let f = SparseFile::new(100, vec![(10..20, Bytes::from_static(b"0123456789"))]);
        assert_eq!(&f.get_bytes(12, 3).unwrap()[..], b"234");
        assert!(f.get_bytes(18, 5).is_err());
        assert!(f.get_read(25).is_err());
    }
}
