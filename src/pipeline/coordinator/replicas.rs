//! The coordinator's side of `[cluster]`: remembering which source
//! partitions the other shards have (for this replica's watermark), and the
//! partition commit tick of a replica: publish this replica's progress,
//! read everyone's, show it on `/status`, and on replica 0 commit what is
//! complete across all of them (see `partition_commit::cluster`).

use super::*;

impl Coordinator {
    /// `[cluster]` with more than one replica: links to the others, and
    /// makes replica 0's partition commit the cluster's.
    pub(super) fn join_cluster(&mut self) -> Result<(), PipelineError> {
        if !self.cfg.cluster.is_sharded() {
            return Ok(());
        }
        self.cluster = Some(crate::cluster::progress::Link::new(
            self.cfg.cluster,
            self.sink.store.clone(),
            self.handle.clone(),
            self.state.state_id()?,
        ));
        if self.cfg.cluster.replica == 0
            && let Some(p) = self.pcommit.as_mut()
        {
            p.use_cluster_book();
        }
        Ok(())
    }

    /// Notes one path per folder of the other shards' files in a listing:
    /// they count as done source files for this replica's watermark.
    pub(super) fn note_other_shards(&mut self, files: &[Listed]) {
        let shard = crate::cluster::shard::Shard::of(&self.cfg.cluster);
        for f in files {
            let name = f.path.rsplit('/').next().unwrap_or("");
            if shard.owns(&f.path)
                || discover::is_hidden_or_in_progress(&f.path)
                || !crate::names::glob_match(&self.cfg.source.pattern, name)
            {
                continue;
            }
            let dir = discover::dir_of(&f.path);
            if !self.other_shards.contains(dir) {
                self.other_shards.insert(dir.to_string());
            }
        }
    }

    /// The partition commit tick of a replica (`[cluster]` set).
    pub(super) fn cluster_tick(&mut self) {
        let now = now_ms();
        // Representative paths of the other shards' folders.
        let others = self.other_shard_paths();
        let Some(link) = self.cluster.as_mut() else {
            return;
        };
        let view = match self.pcommit.as_mut() {
            Some(p) => {
                let source =
                    super::upkeep::source_progress(&self.files, &self.waiting_paths, &others);
                match p.local_view(&self.state, source, &self.open_partitions, now) {
                    Ok(v) => v,
                    Err(e) => {
                        tracing::error!(error = %e, "partition commit: cannot read this replica's records; retried");
                        return;
                    }
                }
            }
            None => Default::default(),
        };
        link.publish(view.watermark_ms, view.leaves, view.open, now);
        if let Some(status) = link.refresh(now, false) {
            self.metrics.cluster.set(status);
        }
        if link.cluster.replica == 0
            && let Some(p) = self.pcommit.as_mut()
            && let Err(e) = p.tick_cluster(&self.state, &link.peers, now)
        {
            tracing::error!(error = %e, "partition commit failed; retried at the next tick");
        }
    }
}
