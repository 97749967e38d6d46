//! The checkpoint protocol's commit sequence, in one place: the running
//! loop, recovery and the operator tools all call these (see DESIGN.md).
//!
//! ```text
//! sync (staged bytes durable) ─► prepare (one state transaction)
//!   ─► move staged files to their final names ─► sync ─► mark committed
//! ```
//! On an object-store sink there is nothing to sync and nothing to move:
//! step 3 completes each file's multipart upload (see `sink::resumable`).
//! A crash after the prepare is rolled forward by [`roll_forward`] at the
//! next start; a crash before it leaves staged bytes that no record names,
//! deleted by recovery (or, for open files, truncated back to their last
//! record: see `sink::staged`).

use super::PipelineError;
use crate::checkpoint::{EpochRecord, Prepare, StateStore};
use crate::crashpoint;
use crate::sink;
use tokio::runtime::Handle;

/// Committed epochs kept in the state for inspection.
const KEEP_EPOCHS: usize = 20;

/// Steps 1 to 3: makes the staged bytes durable, prepares, commits.
pub fn commit_epoch(
    state: &StateStore,
    sink: &sink::Target,
    handle: &Handle,
    prepare: &Prepare,
) -> Result<(), PipelineError> {
    let local_root = sink.local_root();
    sink::commit::sync_local(local_root)?;
    crashpoint::hit("before_prepare");
    state.prepare(prepare)?;
    crashpoint::hit("after_prepare");
    if prepare.source_schema.is_some() {
        crashpoint::hit("schema_change_prepared");
    }
    move_files(sink, handle, prepare.epoch, &prepare.files)?;
    sink::commit::sync_local(local_root)?;
    state.mark_committed(prepare.epoch, KEEP_EPOCHS)?;
    Ok(())
}

/// Step 3 for an epoch found prepared at start (or by an operator tool).
pub fn roll_forward(
    state: &StateStore,
    sink: &sink::Target,
    handle: &Handle,
    epoch: &EpochRecord,
) -> Result<(), PipelineError> {
    let local_root = sink.local_root();
    move_files(sink, handle, epoch.epoch, &epoch.files)?;
    crashpoint::hit("during_recovery");
    sink::commit::sync_local(local_root)?;
    state.mark_committed(epoch.epoch, KEEP_EPOCHS)?;
    Ok(())
}

fn move_files(
    sink: &sink::Target,
    handle: &Handle,
    epoch: u64,
    files: &[crate::checkpoint::StagedFile],
) -> Result<(), PipelineError> {
    handle
        .block_on(sink::commit::commit_files(
            &sink.store,
            sink.remote.as_deref(),
            epoch,
            files,
        ))
        .map_err(|source| PipelineError::Uncommittable { epoch, source })
}
