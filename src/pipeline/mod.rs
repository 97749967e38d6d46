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

pub mod budget;
mod coordinator;
pub mod epoch;
#[cfg(test)]
mod io_retry_tests;
pub mod queue;
mod reader;
pub mod resolve;
pub mod spread;
#[cfg(test)]
mod spread_tests;
mod startup;
mod writer;

pub use coordinator::{RunMode, RunSummary, run, run_with};
pub use startup::{
    ExistingOutput, RunOptions, existing_output, load_checked, local_store, open_sink, open_store,
    recover, source_schema, taken_of,
};

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
    #[error(transparent)]
    Open(#[from] crate::store::StoreError),
    #[error("cannot open store {root}: {message}")]
    Store { root: String, message: String },
    #[error("a pipeline thread stopped unexpectedly: {0}")]
    Thread(String),
    #[error(
        "epoch {epoch} is prepared but cannot be committed, and nothing else is read until it is: {source}\n\
         stop the daemon and run `sluice state resolve-epoch --config <config>`: it lists the epoch's files with what is wrong with each and resolves it"
    )]
    Uncommittable { epoch: u64, source: SinkError },
    #[error(
        "the state at {state_dir} has never committed anything, but the sink {sink_root} already holds {files} output file(s) in {table_count} table(s): {tables}\n\
         starting here would read every visible source file again and add its rows a second time next to the existing ones (nothing existing is overwritten)\n\
         if this deployment's state was lost or replaced, restore it with `sluice state import`; for a new output, point sink.root elsewhere; \
         to write beside the existing files anyway, run again with --allow-existing-output"
    )]
    ExistingOutput {
        state_dir: String,
        sink_root: String,
        files: u64,
        table_count: usize,
        tables: String,
    },
}
