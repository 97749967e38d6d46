//! A store rooted at a prefix of another: `object_store`'s `PrefixStore`,
//! except that `get` and `head` name the object by its path under the
//! prefix, as `list` does (0.13's `PrefixStore` returns the full key there,
//! so a fingerprint taken from a listing and one taken from `head` differ).

use async_trait::async_trait;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
};
use std::ops::Range;
use std::sync::Arc;

#[derive(Debug)]
pub struct Rooted {
    inner: PrefixStore<Arc<dyn ObjectStore>>,
    prefix: Path,
}

impl Rooted {
    pub fn new(bucket: Arc<dyn ObjectStore>, prefix: Path) -> Rooted {
        Rooted {
            inner: PrefixStore::new(bucket, prefix.clone()),
            prefix,
        }
    }

    fn strip(&self, mut meta: ObjectMeta) -> ObjectMeta {
        let stripped = meta
            .location
            .prefix_match(&self.prefix)
            .map(Path::from_iter);
        if let Some(p) = stripped {
            meta.location = p;
        }
        meta
    }
}

impl std::fmt::Display for Rooted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.inner.fmt(f)
    }
}

#[async_trait]
impl ObjectStore for Rooted {
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
        let mut r = self.inner.get_opts(location, options).await?;
        r.meta = self.strip(r.meta);
        Ok(r)
    }

    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[Range<u64>],
    ) -> Result<Vec<bytes::Bytes>> {
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::TryStreamExt;
    use object_store::ObjectStoreExt;

    #[test]
    fn head_and_list_name_an_object_alike() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let bucket: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
        let rooted = Rooted::new(bucket, Path::from("dim/x"));
        let p = Path::from("a/b.csv");
        rt.block_on(async {
            rooted
                .put(&p, PutPayload::from_static(b"k\n"))
                .await
                .unwrap();
            let listed: Vec<ObjectMeta> = rooted.list(None).try_collect().await.unwrap();
            let head = rooted.head(&p).await.unwrap();
            assert_eq!(listed[0].location, p);
            assert_eq!(head.location, p);
            assert_eq!(rooted.get(&p).await.unwrap().meta.location, p);
        });
    }
}
