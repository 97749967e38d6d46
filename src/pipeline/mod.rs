//! The pipeline: wiring of the stages with bounded channels, and the epoch
//! loop that drives the checkpoint protocol. No business logic of its own:
//! discovery decides, `split` cuts, `read` decodes, `route` evaluates,
//! `sink` writes and commits, `checkpoint` records.
//!
//! ```text
//!  coordinator (this thread)         readers (N threads)          writer (1 thread)
//!  discover -> open -> split ──► WorkQueue ──pull──► fetch+decode+route ──sync_channel(4)──► EpochWriters
//!        ▲                                                                                 │
//!        └─── checkpoint: barrier ─► Barrier msg ─► staged files + offsets ─► prepare ─► commit
//! ```
//!
//! Exactly once: a split's offset advances in state only in the same
//! transaction that names the staged files holding its rows (prepare), and
//! those files become visible only after that transaction is flushed.

mod coordinator;
#[cfg(test)]
mod io_retry_tests;
pub mod queue;
mod reader;
mod startup;
mod writer;

pub use coordinator::{RunMode, RunSummary, run};
pub use startup::{local_store, recover, source_schema, taken_of};

use crate::checkpoint::StateError;
use crate::discover::DiscoverError;
use crate::read::ReadError;
use crate::sink::SinkError;

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Discover(#[from] DiscoverError),
    #[error(transparent)]
    Sink(#[from] SinkError),
    #[error("source schema: {0}")]
    Schema(#[from] ReadError),
    #[error(transparent)]
    Enrich(#[from] crate::enrich::EnrichError),
    #[error("partition commit: {0}")]
    Commit(#[from] crate::partition_commit::CommitError),
    #[error("rules refused:\n{0}")]
    Rules(String),
    #[error("cannot open store {root}: {message}")]
    Store { root: String, message: String },
    #[error("a pipeline thread stopped unexpectedly: {0}")]
    Thread(String),
}
