//! One output file while it is open: where its bytes go ([`Body`]: a
//! local staged file, an object-store upload kept across checkpoints, or a
//! one-checkpoint upload), and opening, recording and closing it. The
//! writers that decide when to do each are in [`super::writers`].

use super::resumable::{Finishing, Resumable};
use super::staged::{self, FooterBase, LocalStaged};
use super::upload::{self, UploadWrite};
use super::writers::PartitionWriter;
use super::{STAGING_DIR, SinkError, SinkSettings, file_name, path_of};
use crate::checkpoint::StagedFile;
use crate::checkpoint::open_files::{OpenFileRecord, OpenFileUpdate};
use crate::names::OutputName;
use arrow::array::RecordBatch;
use object_store::ObjectStore;
use object_store::path::Path as ObjPath;
use parquet::arrow::ArrowWriter;
use std::io::{self, Write};
use std::sync::Arc;
use tokio::runtime::Handle;

/// Where an open file's bytes go.
pub(super) enum Body {
    /// A local sink: appended to the staged file, kept across checkpoints.
    Local(LocalStaged),
    /// An object store with multipart uploads (S3, GCS, Azure): one upload
    /// to the final name, kept across checkpoints (see [`super::resumable`]).
    Remote(Resumable),
    /// Any other store: one upload, closed at every checkpoint.
    Upload(UploadWrite),
}

impl Body {
    /// Whether the file can stay open across checkpoints.
    pub(super) fn resumable(&self) -> bool {
        !matches!(self, Body::Upload(_))
    }
}

impl Write for Body {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Body::Local(l) => l.write(buf),
            Body::Remote(r) => r.write(buf),
            Body::Upload(u) => u.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Body::Local(l) => l.flush(),
            Body::Remote(r) => r.flush(),
            Body::Upload(u) => u.flush(),
        }
    }
}

pub(super) struct OpenFile {
    pub(super) writer: ArrowWriter<Body>,
    pub(super) staged: ObjPath,
    pub(super) final_path: ObjPath,
    pub(super) rows: u64,
    pub(super) opened_ms: i64,
    /// For a local file: what its footer chunks need.
    pub(super) footer: Option<FooterBase>,
    /// The last record written for it (None: never recorded).
    pub(super) record: Option<OpenFileRecord>,
    /// Row groups already in a recorded footer chunk.
    pub(super) recorded_groups: usize,
}

impl OpenFile {
    pub(super) fn held(&self) -> u64 {
        let body = match self.writer.inner() {
            Body::Local(_) => 0,
            Body::Remote(r) => r.held() as usize,
            Body::Upload(u) => u.buffered(),
        };
        (self.writer.memory_size() + body) as u64
    }
}

/// Finishes the open file's current row group, pushes its bytes to the
/// staged file (or, on an object store, sends its full parts and keeps
/// the rest as the tail) and records the row groups added since the last
/// record. `None` when nothing new became durable.
pub(super) fn record_durable(
    o: &mut OpenFile,
    table: &str,
    partition: &str,
) -> Result<Option<OpenFileUpdate>, SinkError> {
    let enc = |source| SinkError::Encode {
        table: table.to_string(),
        source,
    };
    o.writer.flush().map_err(enc)?;
    o.writer
        .sync()
        .map_err(|e| enc(parquet::errors::ParquetError::External(Box::new(e))))?;
    let Some(base) = &o.footer else {
        return Ok(None);
    };
    let groups = o.writer.flushed_row_groups();
    let Some(new) = groups.get(o.recorded_groups..).filter(|g| !g.is_empty()) else {
        return Ok(None);
    };
    let chunk = staged::footer_chunk(base, new).map_err(enc)?;
    let rows: u64 = groups.iter().map(|g| g.num_rows() as u64).sum();
    let recorded_groups = groups.len();
    let (durable_len, upload, tail) = match o.writer.inner_mut() {
        Body::Local(body) => (body.written(), None, None),
        Body::Remote(r) => {
            let (upload, tail) = r.checkpoint()?;
            (r.written(), upload, Some(tail))
        }
        Body::Upload(_) => return Ok(None),
    };
    let mut rec = o.record.clone().unwrap_or_else(|| {
        OpenFileRecord::new(
            table,
            partition,
            o.staged.as_ref(),
            o.final_path.as_ref(),
            o.opened_ms,
        )
    });
    o.recorded_groups = recorded_groups;
    rec.durable_len = durable_len;
    rec.rows = rows;
    rec.chunks += 1;
    rec.upload = upload;
    o.record = Some(rec.clone());
    Ok(Some(OpenFileUpdate {
        record: rec,
        chunk: Some(chunk),
        tail,
    }))
}

pub(super) fn open_file(
    store: &Arc<dyn ObjectStore>,
    handle: &Handle,
    s: &SinkSettings,
    epoch: u64,
    w: &mut PartitionWriter,
    sample: &RecordBatch,
) -> Result<OpenFile, SinkError> {
    let name = file_name(&s.state_id, epoch, w.writer_id, w.seq);
    w.seq += 1;
    let parts: Vec<&str> = w.partition.split('/').collect();
    let output = OutputName::parse(&w.table);
    // Staging is flat: names are unique, and a file may stay open over
    // many epochs.
    let mut staged = path_of([STAGING_DIR, name.as_str()])?;
    let final_path = path_of(
        output
            .segments()
            .into_iter()
            .chain(parts.iter().copied())
            .chain([name.as_str()]),
    )?;
    // Dictionary or plain per column, judged on the file's first rows.
    let props = super::encoding::writer_properties(
        &w.schema,
        sample,
        &super::encoding::EncodingSettings {
            zstd_level: s.zstd_level,
            row_group_rows: s.row_group_rows,
            all_statistics: s.all_statistics,
        },
    );
    let enc = |source| SinkError::Encode {
        table: w.table.clone(),
        source,
    };
    let (body, footer) = match &s.local_root {
        Some(root) => {
            let body = LocalStaged::create(root.join(staged.as_ref()))?;
            let base = FooterBase::for_arrow(&w.schema, &props).map_err(enc)?;
            (Body::Local(body), Some(base))
        }
        None => match &s.remote {
            // Nothing is staged: the upload completes to the final name.
            Some(up) => {
                staged = final_path.clone();
                let body = Resumable::new(up.clone(), handle.clone(), final_path.to_string());
                let base = FooterBase::for_arrow(&w.schema, &props).map_err(enc)?;
                (Body::Remote(body), Some(base))
            }
            None => (
                Body::Upload(UploadWrite::start(
                    store.clone(),
                    handle.clone(),
                    staged.clone(),
                    s.part_size,
                )),
                None,
            ),
        },
    };
    let writer = ArrowWriter::try_new(body, w.schema.clone(), Some(props)).map_err(enc)?;
    Ok(OpenFile {
        writer,
        staged,
        final_path,
        rows: 0,
        opened_ms: crate::clock::now_ms(),
        footer,
        record: None,
        recorded_groups: 0,
    })
}

/// Closes the writer's open file: writes its footer and ends its upload.
/// The file goes to `closed` (or, on an object store, to `finishing`
/// until its last part is acknowledged). Returns, when it had been
/// recorded as open, the record to drop: (staged path, chunks).
pub(super) fn close_file(
    uploads: &mut upload::Uploads,
    finishing: &mut Finishing,
    closed: &mut Vec<StagedFile>,
    w: &mut PartitionWriter,
) -> Result<Option<(String, u32)>, SinkError> {
    let Some(o) = w.open.take() else {
        return Ok(None);
    };
    let body = o.writer.into_inner().map_err(|source| SinkError::Encode {
        table: w.table.clone(),
        source,
    })?;
    let mut file = StagedFile {
        table: w.table.clone(),
        partition: w.partition.clone(),
        staged: o.staged.to_string(),
        final_path: o.final_path.to_string(),
        rows: o.rows,
        bytes: 0,
        upload: None,
    };
    match body {
        Body::Local(l) => {
            file.bytes = l.written();
            closed.push(file);
        }
        Body::Remote(r) => {
            file.bytes = r.written();
            r.finish(file, finishing)?;
        }
        Body::Upload(u) => {
            file.bytes = u.finish(uploads)?;
            closed.push(file);
        }
    }
    Ok(o.record.map(|r| (r.staged, r.chunks)))
}
