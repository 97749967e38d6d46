//! Several replicas over one source and one sink (`[cluster]`, see the
//! README's "More than one machine"). Owns the shard function ([`shard`])
//! and the progress each replica publishes into the sink store
//! ([`progress`]). It writes only under `<sink>/_sluice/` (hidden from
//! Hive readers by the leading `_`), never data files; each replica's state
//! stays its own (the re-split of exported states for a new number of
//! replicas is `checkpoint::reshard`, which owns the state's keys).
//!
//! Each replica discovers, reads, routes and commits its own shard's files
//! exactly as one daemon does; what crosses replicas is partition commit:
//! replica 0 announces a unit only when every replica's published
//! watermark has passed it and no replica holds an output file open under
//! it, with the totals of all replicas (see `partition_commit::cluster`).

pub mod progress;
pub mod shard;
