//! A `std::io::Write` over an object-store multipart upload, for the
//! synchronous Parquet writer on a blocking thread: bytes go out in parts as
//! they are produced, and `finish` completes the upload (on a local store,
//! an atomic rename of a temporary file).

use super::SinkError;
use object_store::path::Path as ObjPath;
use object_store::{ObjectStore, ObjectStoreExt, WriteMultipart};
use std::io;
use std::sync::Arc;
use tokio::runtime::Handle;

pub struct UploadWrite {
    handle: Handle,
    upload: WriteMultipart,
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
    ) -> Result<UploadWrite, SinkError> {
        let part_size = part_size.max(64 << 10);
        let up = handle
            .block_on(store.put_multipart(&path))
            .map_err(|source| SinkError::Store {
                op: "start upload",
                path: path.to_string(),
                source,
            })?;
        Ok(UploadWrite {
            handle,
            upload: WriteMultipart::new_with_chunk_size(up, part_size),
            path,
            written: 0,
            part_size,
        })
    }

    /// Bytes written but not yet sent as a part.
    pub fn buffered(&self) -> usize {
        (self.written % self.part_size as u64) as usize
    }

    /// Completes the upload; returns the file's size.
    pub fn finish(self, handle: &Handle) -> Result<u64, SinkError> {
        let path = self.path.to_string();
        handle
            .block_on(self.upload.finish())
            .map_err(|source| SinkError::Store {
                op: "complete upload",
                path,
                source,
            })?;
        Ok(self.written)
    }
}

impl io::Write for UploadWrite {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // Part uploads are spawned on the I/O runtime; bound them.
        let _guard = self.handle.enter();
        self.handle
            .block_on(self.upload.wait_for_capacity(4))
            .map_err(|e| io::Error::other(e.to_string()))?;
        self.upload.write(buf);
        self.written += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
