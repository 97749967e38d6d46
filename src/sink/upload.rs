//! A `std::io::Write` over an object-store upload, for the synchronous
//! Parquet writer on a blocking thread.
//!
//! Bytes are held in memory until they exceed one part. A file that ends
//! before that (most files of a table with few rows per epoch) is sent with
//! one `put`, spawned on the I/O runtime so the writer goes on encoding the
//! next file while it is in flight: [`Uploads`] keeps those puts, bounded,
//! and waits for all of them before the epoch's files are reported. A
//! larger file becomes a multipart upload whose parts go out as they fill.
//! Either way the object appears whole or not at all (on a local store, an
//! atomic rename of a temporary file).

use super::SinkError;
use object_store::path::Path as ObjPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};
use std::collections::VecDeque;
use std::io;
use std::sync::Arc;
use tokio::runtime::Handle;
use tokio::task::JoinHandle;

enum Body {
    /// Not yet one part: nothing sent.
    Held(Vec<u8>),
    Multipart(WriteMultipart),
}

pub struct UploadWrite {
    store: Arc<dyn ObjectStore>,
    handle: Handle,
    body: Body,
    path: ObjPath,
    written: u64,
    part_size: usize,
}

impl UploadWrite {
    pub fn start(
        store: Arc<dyn ObjectStore>,
        handle: Handle,
        path: ObjPath,
        part_size: usize,
    ) -> UploadWrite {
        UploadWrite {
            store,
            handle,
            body: Body::Held(Vec::new()),
            path,
            written: 0,
            part_size: part_size.max(64 << 10),
        }
    }

    /// Bytes written but not yet sent.
    pub fn buffered(&self) -> usize {
        match &self.body {
            Body::Held(b) => b.len(),
            Body::Multipart(_) => (self.written % self.part_size as u64) as usize,
        }
    }

    /// Switches to a multipart upload and sends what is held.
    fn start_multipart(&mut self) -> Result<(), SinkError> {
        let up = self
            .handle
            .block_on(self.store.put_multipart(&self.path))
            .map_err(|source| SinkError::Store {
                op: "start upload",
                path: self.path.to_string(),
                source,
            })?;
        let mut upload = WriteMultipart::new_with_chunk_size(up, self.part_size);
        if let Body::Held(held) = std::mem::replace(&mut self.body, Body::Held(Vec::new())) {
            let _guard = self.handle.enter();
            upload.write(&held);
        }
        self.body = Body::Multipart(upload);
        Ok(())
    }

    /// Completes the upload: a held file is handed to `uploads` as one
    /// spawned `put`; a multipart upload completes here. Returns the size.
    pub fn finish(self, uploads: &mut Uploads) -> Result<u64, SinkError> {
        let path = self.path.to_string();
        match self.body {
            Body::Held(bytes) => {
                let store = self.store.clone();
                let to = self.path.clone();
                let payload = PutPayload::from(bytes);
                let task = self
                    .handle
                    .spawn(async move { store.put(&to, payload).await.map(|_| ()) });
                uploads.push(path, self.written, task)?;
            }
            Body::Multipart(upload) => {
                self.handle
                    .block_on(upload.finish())
                    .map_err(|source| SinkError::Store {
                        op: "complete upload",
                        path,
                        source,
                    })?;
            }
        }
        Ok(self.written)
    }
}

impl io::Write for UploadWrite {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Body::Held(held) = &mut self.body {
            if held.len() + buf.len() <= self.part_size {
                held.extend_from_slice(buf);
                self.written += buf.len() as u64;
                return Ok(buf.len());
            }
            self.start_multipart()
                .map_err(|e| io::Error::other(e.to_string()))?;
        }
        let Body::Multipart(upload) = &mut self.body else {
            return Err(io::Error::other("upload is not multipart"));
        };
        // Part uploads are spawned on the I/O runtime; bound them.
        let _guard = self.handle.enter();
        self.handle
            .block_on(upload.wait_for_capacity(4))
            .map_err(|e| io::Error::other(e.to_string()))?;
        upload.write(buf);
        self.written += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Single-`put` uploads in flight, oldest first, with the bytes each holds.
pub struct Uploads {
    handle: Handle,
    pending: VecDeque<(String, u64, JoinHandle<object_store::Result<()>>)>,
    bytes: u64,
}

/// Puts one writer keeps in flight before it waits for the oldest.
const MAX_IN_FLIGHT: usize = 16;

impl Uploads {
    pub fn new(handle: Handle) -> Uploads {
        Uploads {
            handle,
            pending: VecDeque::new(),
            bytes: 0,
        }
    }

    /// Bytes held by puts not yet complete.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    fn push(
        &mut self,
        path: String,
        bytes: u64,
        task: JoinHandle<object_store::Result<()>>,
    ) -> Result<(), SinkError> {
        self.pending.push_back((path, bytes, task));
        self.bytes += bytes;
        while self.pending.len() > MAX_IN_FLIGHT {
            self.wait_oldest()?;
        }
        Ok(())
    }

    fn wait_oldest(&mut self) -> Result<(), SinkError> {
        let Some((path, bytes, task)) = self.pending.pop_front() else {
            return Ok(());
        };
        self.bytes -= bytes;
        let store_err = |source| SinkError::Store {
            op: "upload",
            path: path.clone(),
            source,
        };
        match self.handle.block_on(task) {
            Ok(r) => r.map_err(store_err),
            Err(join) => Err(store_err(object_store::Error::Generic {
                store: "upload task",
                source: Box::new(join),
            })),
        }
    }

    /// Waits for every put; the first failure is returned (after all ended).
    pub fn wait_all(&mut self) -> Result<(), SinkError> {
        let mut first = Ok(());
        while !self.pending.is_empty() {
            let r = self.wait_oldest();
            if first.is_ok() {
                first = r;
            }
        }
        first
    }
}
