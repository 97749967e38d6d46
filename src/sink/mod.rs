//! The sink: the only module that writes output. Owns the Parquet writers
//! (one per table and partition, see [`writers`]), the staging area no
//! reader of the output sees, output file naming, files that stay open
//! across checkpoints ([`staged`]), and the commit step of the checkpoint
//! protocol (staged -> final by a create-only move, idempotent, also used
//! by recovery).
//!
//! ```text
//! <sink>/.sluice-staging/part-<state>-<epoch>-<writer>-<seq>.zstd.parquet        (staged)
//! <sink>/<table>/<k=v>/.../part-<state>-<epoch>-<writer>-<seq>.zstd.parquet     (final)
//! ```
//! On an object store (S3, GCS, Azure) nothing is staged: a file is a
//! multipart upload to its final name, completed at commit (see
//! [`resumable`]).
//!
//! Final names are unique: `<state>` is the state's random id (16 hex
//! digits, see `checkpoint::identity`), so a wiped or replaced state that
//! counts epochs from 1 again never repeats a name; `<epoch>` is the epoch
//! the file was opened in, a number recorded at prepare and never reused by
//! a state; and (writer, seq) are unique within the process. So staged
//! names are too, and staging is flat: a file may stay open over many
//! epochs, and on a local disk each directory level of a new partition
//! costs a `mkdir`. The commit never replaces a file it did not stage (see
//! [`commit`]).

pub mod commit;
pub mod encoding;
pub mod health;
mod open_file;
pub mod resumable;
pub mod staged;
mod upload;
pub mod writers;

pub use writers::{Checkpointed, ClosePolicy, LatestPartitions, PartitionDue, Shed, Writers};

use arrow::array::RecordBatch;
use object_store::path::{Path as ObjPath, PathPart};

/// The hidden prefix under the sink root where files are staged.
pub const STAGING_DIR: &str = ".sluice-staging";

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("parquet encode for {table}: {source}")]
    Encode {
        table: String,
        source: parquet::errors::ParquetError,
    },
    #[error("object store {op} {path}: {source}")]
    Store {
        op: &'static str,
        path: String,
        source: object_store::Error,
    },
    /// The state could not record an upload begun or aborted (not a store
    /// error: never retried).
    #[error("cannot record the upload of {path} in the state: {message}")]
    UploadLog { path: String, message: String },
    #[error("invalid output path {0}")]
    Path(String),
    #[error("cannot make {path} durable: {source}")]
    Sync {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "staged file {staged} is gone and its final file {final_path} does not exist: epoch {epoch} cannot be committed"
    )]
    Lost {
        epoch: u64,
        staged: String,
        final_path: String,
    },
    #[error(
        "final name {final_path} is taken by a file this epoch did not stage ({final_bytes} bytes; ours, {staged}, has {bytes}): epoch {epoch} cannot be committed without overwriting it, and sluice never overwrites"
    )]
    Occupied {
        epoch: u64,
        staged: String,
        final_path: String,
        final_bytes: u64,
        bytes: u64,
    },
}

/// Writer settings.
#[derive(Clone, Debug)]
pub struct SinkSettings {
    /// The state's id, first in every file name (see the module doc); with
    /// replicas, after the replica's tag (see [`name_id`]).
    pub state_id: String,
    pub target_file_size: u64,
    pub row_group_rows: usize,
    pub zstd_level: i32,
    /// Min/max statistics on long text too (`sink.statistics = "all"`).
    pub all_statistics: bool,
    /// Bytes an upload buffers before sending a part: small on a local
    /// disk (memory held per open file), 5 MiB (the S3 minimum) elsewhere.
    pub part_size: usize,
    /// The sink's directory when it is a local one: files are then staged
    /// there directly and stay open across checkpoints (see [`staged`]).
    pub local_root: Option<std::path::PathBuf>,
    /// The sink's multipart uploads when it is an object store that has
    /// them: files then stay open across checkpoints as uploads (see
    /// [`resumable`]).
    pub remote: Option<std::sync::Arc<resumable::Uploader>>,
}

/// The sink as the commit step and recovery see it.
#[derive(Clone)]
pub struct Target {
    pub store: std::sync::Arc<dyn object_store::ObjectStore>,
    /// The sink's directory when it is a local one (durability by
    /// `syncfs`, files finished in place).
    pub local_root: Option<std::path::PathBuf>,
    /// Multipart uploads, when the sink is an object store with them.
    pub remote: Option<std::sync::Arc<resumable::Uploader>>,
}

impl Target {
    pub fn local_root(&self) -> Option<&std::path::Path> {
        self.local_root.as_deref()
    }
}

/// [`SinkSettings::part_size`] for a local directory.
pub const LOCAL_PART_SIZE: usize = 1 << 20;

/// Builds an object path from segments taken literally: table names are
/// identifiers and partition segments are Hive-escaped (no `/`, no control
/// characters, never `.` or `..`), so the name on disk is exactly the
/// segment. A segment that is not valid is refused, never re-encoded.
pub fn path_of<'a>(segments: impl IntoIterator<Item = &'a str>) -> Result<ObjPath, SinkError> {
    let joined: Vec<&str> = segments.into_iter().filter(|s| !s.is_empty()).collect();
    let raw = joined.join("/");
    if joined.iter().any(|s| PathPart::parse(s).is_err()) {
        return Err(SinkError::Path(raw));
    }
    parse_path(&raw)
}

/// Parses a path string written by [`ObjPath::to_string`].
pub fn parse_path(raw: &str) -> Result<ObjPath, SinkError> {
    ObjPath::parse(raw).map_err(|_| SinkError::Path(raw.to_string()))
}

/// What a replica's output file names start with (after `part-`): `r<i>`,
/// three digits.
pub fn replica_tag(replica: u32) -> String {
    format!("r{replica:03}")
}

/// The id first in every output file name ([`SinkSettings::state_id`]): the
/// state's id, after the replica's tag when the sink is shared by replicas
/// (`r001-<state id>`), so no two replicas can produce the same name.
pub fn name_id(state_id: &str, replica: Option<u32>) -> String {
    match replica {
        Some(r) => format!("{}-{state_id}", replica_tag(r)),
        None => state_id.to_string(),
    }
}

fn file_name(state_id: &str, epoch: u64, writer: u32, seq: u32) -> String {
    format!("part-{state_id}-{epoch:010}-{writer:05}-{seq:04}.zstd.parquet")
}

/// The bytes a batch's rows hold. Pieces are slices of one routed batch,
/// and Arrow's `get_array_memory_size` counts a slice's whole buffers.
pub fn slice_bytes(batch: &RecordBatch) -> u64 {
    batch
        .columns()
        .iter()
        .map(|c| {
            c.to_data()
                .get_slice_memory_size()
                .unwrap_or_else(|_| c.get_array_memory_size()) as u64
        })
        .sum()
}

#[cfg(test)]
pub(crate) mod tests;
