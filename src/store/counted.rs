//! A store that counts the requests made through it, by operation (`list`,
//! `get`, `head`): the source store is wrapped in one so discovery's cost
//! shows as `sluice_source_requests_total{op}`. A listing of an object
//! store is one request per page of 1000 keys, counted as such; a local
//! listing is counted once.

use async_trait::async_trait;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
};
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Keys per LIST page on S3-compatible stores.
const PAGE: u64 = 1000;

/// Request counters, shared with the metrics.
#[derive(Debug, Default)]
pub struct Requests {
    pub list: AtomicU64,
    pub get: AtomicU64,
    pub head: AtomicU64,
}

impl Requests {
    /// `(op, count)` pairs, for rendering.
    pub fn snapshot(&self) -> [(&'static str, u64); 3] {
        [
            ("list", self.list.load(Ordering::Relaxed)),
            ("get", self.get.load(Ordering::Relaxed)),
            ("head", self.head.load(Ordering::Relaxed)),
        ]
    }
}

#[derive(Debug)]
pub struct Counted {
    inner: Arc<dyn ObjectStore>,
    requests: Arc<Requests>,
    /// Listings are paged (object stores) rather than one walk (a disk).
    paged: bool,
}

impl Counted {
    pub fn wrap(
        inner: Arc<dyn ObjectStore>,
        requests: Arc<Requests>,
        paged: bool,
    ) -> Arc<dyn ObjectStore> {
        Arc::new(Counted {
            inner,
            requests,
            paged,
        })
    }
}

impl std::fmt::Display for Counted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Counted({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for Counted {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        let c = if options.head {
            &self.requests.head
        } else {
            &self.requests.get
        };
        c.fetch_add(1, Ordering::Relaxed);
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[Range<u64>],
    ) -> Result<Vec<bytes::Bytes>> {
        self.requests.get.fetch_add(1, Ordering::Relaxed);
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.requests.list.fetch_add(1, Ordering::Relaxed);
        let requests = self.requests.clone();
        let paged = self.paged;
        let mut seen = 0u64;
        self.inner
            .list(prefix)
            .inspect(move |_| {
                seen += 1;
                if paged && seen % PAGE == 1 && seen > 1 {
                    requests.list.fetch_add(1, Ordering::Relaxed);
                }
            })
            .boxed()
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.requests.list.fetch_add(1, Ordering::Relaxed);
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}
