//! A staged output file on a local sink that stays open across
//! checkpoints, and how one is finished after a crash.
//!
//! `object_store`'s local store has no resumable upload: an interrupted
//! `put_multipart` leaves a temporary file it cannot name again. A file that
//! must outlive checkpoints (and the process) is therefore written here, in
//! the sink's staging folder, with plain appends; everything else on the
//! sink (the create-only commit, listing, deletes) still goes through the
//! store.
//!
//! At a checkpoint the writer finishes its current row group, pushes the
//! bytes to the file, and records the file's length and the metadata of
//! the row groups added since the last checkpoint ([`footer_chunk`]); the
//! coordinator makes them durable (one `syncfs`) before it prepares. After
//! a crash [`finish`] truncates the file to its recorded length (dropping
//! rows the source offsets never covered) and appends a footer assembled
//! from the recorded chunks: a valid Parquet file with exactly the
//! checkpointed rows, committed like any other.

use super::SinkError;
use parquet::file::metadata::{
    FileMetaData, KeyValue, ParquetMetaData, ParquetMetaDataReader, ParquetMetaDataWriter,
    RowGroupMetaData,
};
use parquet::schema::types::SchemaDescriptor;
use std::fs::{File, OpenOptions};
use std::io::{self, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// An append-only staged file with a count of the bytes written. Writes go
/// straight to the kernel: the Parquet writer above buffers small writes
/// itself, and durability comes from the coordinator's `syncfs`.
///
/// Every [`WRITEBACK_EVERY`] bytes the file asks the kernel to start
/// writing them to disk (Linux `sync_file_range`, which does not wait): the
/// checkpoint's `syncfs` then waits for the last few bytes of each file
/// instead of everything written since the last checkpoint, while readers
/// sit parked behind the barrier.
pub struct LocalStaged {
    file: File,
    written: u64,
    /// Bytes whose writeback has been started.
    kicked: u64,
}

/// How many bytes a staged file gathers before their writeback starts.
pub const WRITEBACK_EVERY: u64 = 1 << 20;

impl LocalStaged {
    /// Creates the staged file (never replaces one).
    pub fn create(path: PathBuf) -> Result<LocalStaged, SinkError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| io_err("create folder", dir, e))?;
        }
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| io_err("create", &path, e))?;
        Ok(LocalStaged {
            file,
            written: 0,
            kicked: 0,
        })
    }

    /// Bytes written so far (all of them are with the kernel).
    pub fn written(&self) -> u64 {
        self.written
    }
}

impl Write for LocalStaged {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.written += n as u64;
        if self.written - self.kicked >= WRITEBACK_EVERY {
            start_writeback(&self.file, self.kicked, self.written - self.kicked);
            self.kicked = self.written;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Starts writing `len` bytes at `offset` of `file` to disk without
/// waiting. Advisory: durability still comes from `syncfs`, so a failure
/// here (or another OS) changes nothing but when the bytes reach the disk.
#[cfg(target_os = "linux")]
fn start_writeback(file: &File, offset: u64, len: u64) {
    use std::os::fd::AsRawFd;
    let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else {
        return;
    };
    // SAFETY: a plain syscall on an open descriptor; it reads no memory.
    unsafe {
        libc::sync_file_range(file.as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE);
    }
}

#[cfg(not(target_os = "linux"))]
fn start_writeback(_file: &File, _offset: u64, _len: u64) {}

fn io_err(op: &'static str, path: &Path, e: io::Error) -> SinkError {
    SinkError::Store {
        op,
        path: path.display().to_string(),
        source: object_store::Error::Generic {
            store: "local staging",
            source: Box::new(e),
        },
    }
}

/// What a footer chunk needs besides the row groups: the file's schema and
/// key-value metadata (the Arrow schema), as the writer would put them in
/// its footer.
#[derive(Clone)]
pub struct FooterBase {
    pub schema: Arc<SchemaDescriptor>,
    pub created_by: Option<String>,
    pub key_value: Option<Vec<KeyValue>>,
}

impl FooterBase {
    /// The base for a file written by `ArrowWriter` with `props`.
    pub fn for_arrow(
        schema: &arrow::datatypes::Schema,
        props: &parquet::file::properties::WriterProperties,
    ) -> Result<FooterBase, parquet::errors::ParquetError> {
        let descr = parquet::arrow::ArrowSchemaConverter::new()
            .with_coerce_types(props.coerce_types())
            .convert(schema)?;
        let mut kv = props.key_value_metadata().cloned().unwrap_or_default();
        kv.push(KeyValue::new(
            parquet::arrow::ARROW_SCHEMA_META_KEY.to_string(),
            parquet::arrow::encode_arrow_schema(schema),
        ));
        Ok(FooterBase {
            schema: Arc::new(descr),
            created_by: Some(props.created_by().to_string()),
            key_value: Some(kv),
        })
    }

    fn metadata(&self, row_groups: Vec<RowGroupMetaData>) -> ParquetMetaData {
        let rows = row_groups.iter().map(|r| r.num_rows()).sum();
        let file = FileMetaData::new(
            1,
            rows,
            self.created_by.clone(),
            self.key_value.clone(),
            self.schema.clone(),
            None,
        );
        ParquetMetaData::new(file, row_groups)
    }
}

/// The Parquet footer (metadata, length, magic) of `row_groups`: a chunk
/// recorded at a checkpoint, and the tail [`finish`] appends.
pub fn footer_chunk(
    base: &FooterBase,
    row_groups: &[RowGroupMetaData],
) -> Result<Vec<u8>, parquet::errors::ParquetError> {
    let meta = base.metadata(row_groups.to_vec());
    let mut out = Vec::new();
    ParquetMetaDataWriter::new(&mut out, &meta).finish()?;
    Ok(out)
}

/// Decodes chunks written by [`footer_chunk`] into one footer holding all
/// their row groups, in order.
pub fn assemble_footer(chunks: &[Vec<u8>]) -> Result<Vec<u8>, parquet::errors::ParquetError> {
    let mut base: Option<FooterBase> = None;
    let mut groups = Vec::new();
    for c in chunks {
        // A chunk ends with the 4-byte length and `PAR1`.
        let body = c
            .len()
            .checked_sub(8)
            .and_then(|n| c.get(..n))
            .ok_or_else(|| {
                parquet::errors::ParquetError::General("footer chunk too short".into())
            })?;
        let meta = ParquetMetaDataReader::decode_metadata(body)?;
        if base.is_none() {
            let f = meta.file_metadata();
            base = Some(FooterBase {
                schema: f.schema_descr_ptr(),
                created_by: f.created_by().map(str::to_string),
                key_value: f.key_value_metadata().cloned(),
            });
        }
        groups.extend(meta.row_groups().iter().cloned());
    }
    let base = base.ok_or_else(|| {
        parquet::errors::ParquetError::General("an open file has no footer chunk".into())
    })?;
    footer_chunk(&base, &groups)
}

/// Finishes a staged file after a crash: truncates it to `durable_len`
/// and appends `footer`. Idempotent (the same record gives the same
/// bytes). Returns the file's final length.
pub fn finish(path: &Path, durable_len: u64, footer: &[u8]) -> Result<u64, SinkError> {
    let mut f = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| io_err("open to finish", path, e))?;
    let len = f.metadata().map_err(|e| io_err("stat", path, e))?.len();
    if len < durable_len {
        return Err(io_err(
            "finish",
            path,
            io::Error::other(format!(
                "holds {len} bytes but {durable_len} were recorded as durable"
            )),
        ));
    }
    f.set_len(durable_len)
        .map_err(|e| io_err("truncate", path, e))?;
    f.seek(io::SeekFrom::Start(durable_len))
        .map_err(|e| io_err("seek", path, e))?;
    f.write_all(footer)
        .map_err(|e| io_err("write footer", path, e))?;
    f.sync_all().map_err(|e| io_err("sync", path, e))?;
    Ok(durable_len + footer.len() as u64)
}

/// Raises the soft limit on open file descriptors to the hard limit: a
/// local sink keeps one descriptor per open output file, and thousands of
/// (table, partition)s can be open at once. Returns the limit now in force.
pub fn raise_open_file_limit() -> Option<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid rlimit for the duration of both calls.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return None;
        }
        if lim.rlim_cur < lim.rlim_max {
            let want = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &want) == 0 {
                lim = want;
            }
        }
    }
    Some(lim.rlim_cur)
}

#[cfg(test)]
mod tests;
