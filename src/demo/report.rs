//! What landed: per table, the partitions, files and rows committed under
//! the sink root (read from the Parquet footers through `object_store`).

use futures::TryStreamExt;
use object_store::ObjectStore;
// ParquetObjectReader is deprecated in parquet 59 in favour of a hand-written
// AsyncFileReader; it still works and is the only footer reader used here.
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions};
#[allow(deprecated)]
use parquet::arrow::async_reader::ParquetObjectReader;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TableSummary {
    pub partitions: BTreeSet<String>,
    pub files: u64,
    pub rows: u64,
    pub bytes: u64,
}

/// Summarizes every table under the sink store (hidden paths skipped).
pub async fn summarize(
    store: &Arc<dyn ObjectStore>,
) -> Result<BTreeMap<String, TableSummary>, String> {
    let objs: Vec<object_store::ObjectMeta> = store
        .list(None)
        .try_collect()
        .await
        .map_err(|e| e.to_string())?;
    let mut out: BTreeMap<String, TableSummary> = BTreeMap::new();
    for o in objs {
        let path = o.location.to_string();
        if crate::discover::is_hidden_or_in_progress(&path) || !path.ends_with(".parquet") {
            continue;
        }
        let mut segs: Vec<&str> = path.split('/').collect();
        segs.pop();
        let Some(table) = segs.first() else { continue };
        #[allow(deprecated)]
        let mut reader =
            ParquetObjectReader::new(store.clone(), o.location.clone()).with_file_size(o.size);
        let meta = ArrowReaderMetadata::load_async(&mut reader, ArrowReaderOptions::new())
            .await
            .map_err(|e| format!("{path}: {e}"))?;
        let t = out.entry(table.to_string()).or_default();
        t.partitions.insert(segs[1..].join("/"));
        t.files += 1;
        t.rows += meta.metadata().file_metadata().num_rows() as u64;
        t.bytes += o.size;
    }
    Ok(out)
}

/// A plain-text table of [`summarize`]'s result.
pub fn render(tables: &BTreeMap<String, TableSummary>, root: &crate::store::Location) -> String {
    let mut s = format!(
        "{:<22} {:>10} {:>7} {:>11} {:>10}  location\n",
        "table", "partitions", "files", "rows", "size"
    );
    for (name, t) in tables {
        s.push_str(&format!(
            "{:<22} {:>10} {:>7} {:>11} {:>10}  {}\n",
            name,
            t.partitions.len(),
            t.files,
            t.rows,
            crate::config::units::format_bytes(t.bytes),
            root.join_display(name)
        ));
    }
    s
}
