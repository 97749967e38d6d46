//! Output files on an object store (S3, GCS, Azure) that stay open across
//! checkpoints: each file is one multipart upload to its final name, and
//! completing the upload (the commit step) is the atomic moment the file
//! appears. Nothing is staged and nothing moves: S3 has no rename.
//!
//! The life of one file:
//! - Bytes collect in memory until they fill a part (`part_size`, at least
//!   the store's 5 MiB minimum); a full buffer goes out as one part,
//!   spawned on the I/O runtime so encoding goes on meanwhile.
//! - The upload is created with the first part; its id is recorded in the
//!   state ([`UploadLog`]) before any part is sent, so recovery can abort
//!   an upload no epoch will complete.
//! - At a checkpoint the writer finishes its row group, waits for the parts
//!   in flight and hands back the upload's parts and the bytes after them
//!   (the tail, below one part), which the prepare records with the file's
//!   footer chunk (see `checkpoint::open_files`, `checkpoint::uploads`).
//! - At close the footer and the tail go out as the last part (the only
//!   one that may be small); the epoch's prepare names the upload and its
//!   parts; the commit completes it ([`Uploader::complete`], idempotent).
//! - After a crash, recovery sends the recorded tail plus a footer built
//!   from the recorded chunks as the last part ([`Uploader::finish_recorded`])
//!   and commits the file with exactly its checkpointed rows; parts sent
//!   after the checkpoint are left out of the completion and discarded by
//!   the store.
//!
//! May touch: the sink's object store and the upload log; nothing else.

use super::health::{Patience, StoreHealth, retry};
use super::{SinkError, parse_path};
use crate::checkpoint::StagedFile;
use crate::checkpoint::open_files::OpenFileRecord;
use crate::checkpoint::uploads::{UploadLog, UploadParts};
use bytes::Bytes;
use object_store::ObjectStore;
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path as ObjPath;
use std::collections::VecDeque;
use std::io;
use std::sync::Arc;
use tokio::runtime::Handle;
use tokio::task::JoinHandle;

/// S3's smallest part (all but the last).
pub const MIN_PART_SIZE: usize = 5 << 20;

/// Parts one file keeps in flight before its writer waits.
const PARTS_IN_FLIGHT: usize = 2;

/// Closed files whose last part is in flight, per writer thread, before
/// the writer waits for the oldest.
const FINISHING: usize = 32;

/// Multipart uploads to the sink: the store, where the sink root is in
/// its bucket, and the log of uploads begun.
pub struct Uploader {
    store: Arc<dyn MultipartStore>,
    prefix: ObjPath,
    log: UploadLog,
    part_size: usize,
    /// Every request is retried through an outage (see [`super::health`]).
    health: Arc<StoreHealth>,
    patience: Patience,
}

impl std::fmt::Debug for Uploader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Uploader")
            .field("prefix", &self.prefix.as_ref())
            .field("part_size", &self.part_size)
            .finish()
    }
}

fn store_err(op: &'static str, path: &str) -> impl FnOnce(object_store::Error) -> SinkError {
    let path = path.to_string();
    move |source| SinkError::Store { op, path, source }
}

impl Uploader {
    /// `part_size`: the bytes of every part but the last; at least
    /// [`MIN_PART_SIZE`] on S3.
    pub fn new(
        store: Arc<dyn MultipartStore>,
        prefix: ObjPath,
        log: UploadLog,
        part_size: usize,
        health: Arc<StoreHealth>,
        patience: Patience,
    ) -> Uploader {
        Uploader {
            store,
            prefix,
            log,
            part_size,
            health,
            patience,
        }
    }

    pub fn part_size(&self) -> usize {
        self.part_size
    }

    /// The bucket key of a path relative to the sink root.
    fn key(&self, rel: &str) -> Result<ObjPath, SinkError> {
        let rel = parse_path(rel)?;
        Ok(self.prefix.parts().chain(rel.parts()).collect())
    }

    /// Creates an upload to `rel` and records it durably.
    pub async fn begin(&self, rel: &str) -> Result<String, SinkError> {
        retry(&self.health, self.patience, || self.begin_once(rel)).await
    }

    async fn begin_once(&self, rel: &str) -> Result<String, SinkError> {
        self.health.count("start");
        let id = self
            .store
            .create_multipart(&self.key(rel)?)
            .await
            .map_err(store_err("start upload", rel))?;
        let rec_id = id.clone();
        self.record(rel, move |log, path| log.begin(path, &rec_id))
            .await?;
        Ok(id)
    }

    /// Writes to the upload log off the runtime's threads (a flush).
    async fn record(
        &self,
        rel: &str,
        f: impl FnOnce(&UploadLog, &str) -> Result<(), crate::checkpoint::StateError> + Send + 'static,
    ) -> Result<(), SinkError> {
        let log = self.log.clone();
        let path = rel.to_string();
        let message = match tokio::task::spawn_blocking(move || f(&log, &path)).await {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(e)) => e.to_string(),
            Err(e) => e.to_string(),
        };
        Err(SinkError::UploadLog {
            path: rel.to_string(),
            message,
        })
    }

    /// Sends part `idx` (0-based); returns its e-tag.
    pub async fn put_part(
        &self,
        rel: &str,
        id: &str,
        idx: usize,
        bytes: Bytes,
    ) -> Result<String, SinkError> {
        retry(&self.health, self.patience, || {
            self.put_part_once(rel, id, idx, bytes.clone())
        })
        .await
    }

    async fn put_part_once(
        &self,
        rel: &str,
        id: &str,
        idx: usize,
        bytes: Bytes,
    ) -> Result<String, SinkError> {
        self.health.count("part");
        let part = self
            .store
            .put_part(&self.key(rel)?, &id.to_string(), idx, bytes.into())
            .await
            .map_err(store_err("upload part", rel))?;
        Ok(part.content_id)
    }

    /// The commit of one file: completes its upload, which makes it appear
    /// whole. Idempotent: a file already there with the recorded size is
    /// this upload, completed before a crash; a file of another size is
    /// never replaced.
    pub async fn complete(
        &self,
        sink: &Arc<dyn ObjectStore>,
        epoch: u64,
        f: &StagedFile,
        u: &UploadParts,
    ) -> Result<(), SinkError> {
        retry(&self.health, self.patience, || {
            self.complete_once(sink, epoch, f, u)
        })
        .await
    }

    async fn complete_once(
        &self,
        sink: &Arc<dyn ObjectStore>,
        epoch: u64,
        f: &StagedFile,
        u: &UploadParts,
    ) -> Result<(), SinkError> {
        let occupied = |final_bytes| SinkError::Occupied {
            epoch,
            staged: format!("upload {}", u.id),
            final_path: f.final_path.clone(),
            final_bytes,
            bytes: f.bytes,
        };
        self.health.count("head");
        match super::commit::head_of(sink, &f.final_path).await? {
            Some(m) if m.size == f.bytes => return Ok(()),
            Some(m) => return Err(occupied(m.size)),
            None => {}
        }
        let parts = u
            .parts
            .iter()
            .map(|e| PartId {
                content_id: e.clone(),
            })
            .collect();
        self.health.count("complete");
        let done = self
            .store
            .complete_multipart(&self.key(&f.final_path)?, &u.id, parts)
            .await;
        if let Err(source) = done {
            // Completed a moment ago by an attempt that did not return?
            self.health.count("head");
            return match super::commit::head_of(sink, &f.final_path).await? {
                Some(m) if m.size == f.bytes => Ok(()),
                Some(m) => Err(occupied(m.size)),
                None if matches!(source, object_store::Error::NotFound { .. }) => {
                    Err(SinkError::Lost {
                        epoch,
                        staged: format!("upload {}", u.id),
                        final_path: f.final_path.clone(),
                    })
                }
                None => Err(store_err("complete upload", &f.final_path)(source)),
            };
        }
        Ok(())
    }

    /// Aborts an upload no epoch will complete and forgets it.
    pub async fn abort(&self, rel: &str, id: &str) -> Result<(), SinkError> {
        let key = self.key(rel)?;
        let id_owned = id.to_string();
        retry(&self.health, self.patience, || async {
            self.health.count("abort");
            match self.store.abort_multipart(&key, &id_owned).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(source) => Err(store_err("abort upload", rel)(source)),
            }
        })
        .await?;
        let id = id.to_string();
        self.record(rel, move |log, path| log.forget(path, &id))
            .await
    }

    /// Recovery: ends a file recorded open with its recorded tail and
    /// `footer` as the last part. Returns its parts and final size; the
    /// caller commits it. Running it again sends the same last part again.
    pub async fn finish_recorded(
        &self,
        rec: &OpenFileRecord,
        tail: Vec<u8>,
        footer: &[u8],
    ) -> Result<(UploadParts, u64), SinkError> {
        let (id, mut parts) = match &rec.upload {
            Some(u) => (u.id.clone(), u.parts.clone()),
            None => (self.begin(&rec.final_path).await?, Vec::new()),
        };
        let mut last = tail;
        last.extend_from_slice(footer);
        let etag = self
            .put_part(&rec.final_path, &id, parts.len(), Bytes::from(last))
            .await?;
        parts.push(etag);
        Ok((
            UploadParts { id, parts },
            rec.durable_len + footer.len() as u64,
        ))
    }
}

type PartTask = JoinHandle<Result<String, SinkError>>;

async fn join_part(task: PartTask, path: &str) -> Result<String, SinkError> {
    match task.await {
        Ok(r) => r,
        Err(e) => Err(SinkError::Store {
            op: "upload part",
            path: path.to_string(),
            source: object_store::Error::Generic {
                store: "upload task",
                source: Box::new(e),
            },
        }),
    }
}

/// The bytes of one open file on an object store: a `Write` for the
/// synchronous Parquet writer on a blocking thread.
pub struct Resumable {
    up: Arc<Uploader>,
    handle: Handle,
    /// The final path, relative to the sink root.
    path: String,
    id: Option<String>,
    /// E-tags of the parts acknowledged, in order.
    done: Vec<String>,
    in_flight: VecDeque<(PartTask, usize)>,
    buf: Vec<u8>,
    written: u64,
}

impl Resumable {
    pub fn new(up: Arc<Uploader>, handle: Handle, path: String) -> Resumable {
        Resumable {
            up,
            handle,
            path,
            id: None,
            done: Vec::new(),
            in_flight: VecDeque::new(),
            buf: Vec::new(),
            written: 0,
        }
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Bytes held in memory: the buffer and the parts in flight.
    pub fn held(&self) -> u64 {
        (self.buf.len() + self.in_flight.iter().map(|(_, n)| n).sum::<usize>()) as u64
    }

    /// Sends the buffer as the next part.
    fn send(&mut self) -> Result<(), SinkError> {
        let id = match &self.id {
            Some(id) => id.clone(),
            None => {
                let id = self.handle.block_on(self.up.begin(&self.path))?;
                self.id = Some(id.clone());
                id
            }
        };
        let idx = self.done.len() + self.in_flight.len();
        let bytes = Bytes::from(std::mem::take(&mut self.buf));
        let n = bytes.len();
        let (up, path) = (self.up.clone(), self.path.clone());
        let task = self
            .handle
            .spawn(async move { up.put_part(&path, &id, idx, bytes).await });
        self.in_flight.push_back((task, n));
        while self.in_flight.len() > PARTS_IN_FLIGHT {
            self.wait_oldest()?;
        }
        Ok(())
    }

    fn wait_oldest(&mut self) -> Result<(), SinkError> {
        if let Some((task, _)) = self.in_flight.pop_front() {
            let etag = self.handle.block_on(join_part(task, &self.path))?;
            self.done.push(etag);
        }
        Ok(())
    }

    /// A checkpoint: every full part sent and acknowledged. Returns the
    /// upload (`None`: nothing sent yet) and the bytes after its parts.
    pub fn checkpoint(&mut self) -> Result<(Option<UploadParts>, Vec<u8>), SinkError> {
        if self.buf.len() >= self.up.part_size {
            self.send()?;
        }
        while !self.in_flight.is_empty() {
            self.wait_oldest()?;
        }
        let upload = self.id.as_ref().map(|id| UploadParts {
            id: id.clone(),
            parts: self.done.clone(),
        });
        Ok((upload, self.buf.clone()))
    }

    /// Sends the rest (the footer is in it) as the last part, in the
    /// background: `file` goes to `finishing`, which hands it back with
    /// its upload once every part is acknowledged.
    pub fn finish(self, file: StagedFile, finishing: &mut Finishing) -> Result<(), SinkError> {
        let Resumable {
            up,
            handle,
            path,
            id,
            done,
            in_flight,
            buf,
            written,
        } = self;
        let held = (buf.len() + in_flight.iter().map(|(_, n)| n).sum::<usize>()) as u64;
        let task = handle.spawn(async move {
            let mut parts = done;
            let idx = parts.len() + in_flight.len();
            let id = match id {
                Some(id) => id,
                None => up.begin(&path).await?,
            };
            // The last part goes out while the others finish.
            let last = {
                let (up, path, id) = (up.clone(), path.clone(), id.clone());
                tokio::spawn(async move { up.put_part(&path, &id, idx, Bytes::from(buf)).await })
            };
            for (t, _) in in_flight {
                parts.push(join_part(t, &path).await?);
            }
            parts.push(join_part(last, &path).await?);
            Ok(UploadParts { id, parts })
        });
        debug_assert_eq!(written, file.bytes);
        finishing.push(file, held, task)
    }
}

impl io::Write for Resumable {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(buf);
        self.written += buf.len() as u64;
        if self.buf.len() >= self.up.part_size {
            self.send().map_err(|e| io::Error::other(e.to_string()))?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

type FinishTask = JoinHandle<Result<UploadParts, SinkError>>;

/// Closed files whose last parts are in flight, oldest first.
pub struct Finishing {
    handle: Handle,
    pending: VecDeque<(StagedFile, u64, FinishTask)>,
    bytes: u64,
    done: Vec<StagedFile>,
}

impl Finishing {
    pub fn new(handle: Handle) -> Finishing {
        Finishing {
            handle,
            pending: VecDeque::new(),
            bytes: 0,
            done: Vec::new(),
        }
    }

    /// Bytes held by files still finishing.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    fn push(&mut self, file: StagedFile, held: u64, task: FinishTask) -> Result<(), SinkError> {
        self.pending.push_back((file, held, task));
        self.bytes += held;
        while self.pending.len() > FINISHING {
            self.wait_oldest()?;
        }
        Ok(())
    }

    fn wait_oldest(&mut self) -> Result<(), SinkError> {
        let Some((mut file, held, task)) = self.pending.pop_front() else {
            return Ok(());
        };
        self.bytes -= held;
        let path = file.final_path.clone();
        let upload = self.handle.block_on(async move {
            match task.await {
                Ok(r) => r,
                Err(e) => Err(SinkError::Store {
                    op: "upload",
                    path,
                    source: object_store::Error::Generic {
                        store: "upload task",
                        source: Box::new(e),
                    },
                }),
            }
        })?;
        file.upload = Some(upload);
        self.done.push(file);
        Ok(())
    }

    /// Waits for every file; returns them all with their uploads. The
    /// first failure is returned after all ended.
    pub fn wait_all(&mut self) -> Result<Vec<StagedFile>, SinkError> {
        let mut first = Ok(());
        while !self.pending.is_empty() {
            let r = self.wait_oldest();
            if first.is_ok() {
                first = r;
            }
        }
        first?;
        Ok(std::mem::take(&mut self.done))
    }
}
