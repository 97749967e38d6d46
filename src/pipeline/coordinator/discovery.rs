//! The coordinator's discovery pass: one listing, the select decision, the
//! files taken, and the reports of what is not read (files below the floor,
//! entries that cannot be listed, paths reached through symlinks), each
//! once. A listing that fails is counted; `run --once` stops on it.

use super::*;
use crate::discover::skipped::OldFiles;

/// What discovery remembers between scans, besides the file records.
#[derive(Default)]
pub(super) struct DiscoveryBook {
    old: OldFiles,
    /// Bad listing entries already reported (their error names the path).
    bad: HashSet<String>,
    /// Symlinked paths already reported.
    links: HashSet<String>,
    /// Records of files below this mtime may have been pruned.
    pub(super) pruned_below: Option<i64>,
    /// When the last full listing ran (with `partition_pruning`).
    last_full: Option<Instant>,
    /// `visibility = "manifest"`: the index files read.
    manifests: discover::manifest::ManifestBook,
}

impl DiscoveryBook {
    pub(super) fn start(state: &StateStore, cfg: &Config) -> Result<DiscoveryBook, PipelineError> {
        Ok(DiscoveryBook {
            pruned_below: discover::pruned_horizon(
                state.pruned_below_ms()?,
                state.watermark_ms()?,
                cfg.source.lookback,
            ),
            ..Default::default()
        })
    }

    /// Records of these paths were pruned at a committed checkpoint.
    pub(super) fn pruned(&mut self, paths: &[String], horizon: Option<i64>) {
        self.old.pruned(paths);
        self.pruned_below = horizon;
    }
}

impl Coordinator {
    /// One scan. A listing that fails is logged and counted (and fails
    /// `/healthz` when it keeps failing); with `fail_on_listing` it is an error.
    pub(super) fn discover(&mut self, fail_on_listing: bool) -> Result<(), PipelineError> {
        let _span = tracing::debug_span!("discover").entered();
        let taken = taken_of(&self.files);
        let watermark = self.state.watermark_ms()?;
        let now = now_ms();
        // With pruning: the floor of the day folders listed, unless a full
        // (reconcile) listing is due.
        let floor = watermark.map(|w| {
            w.min(now)
                .saturating_sub(self.cfg.source.lookback.as_millis() as i64)
        });
        let reconcile_due = |every: Duration| {
            self.discovery
                .last_full
                .is_none_or(|t| t.elapsed() >= every)
        };
        let prune_floor = match self.cfg.source.pruning {
            Some(every) if !reconcile_due(every) => floor,
            _ => None,
        };
        let t0 = Instant::now();
        // Files of other replicas' shards are never looked at further (in
        // manifest mode not even checked with a HEAD request).
        // The folders of those files still count for this replica's
        // partition commit watermark (see `replicas`).
        let shard = crate::cluster::shard::Shard::of(&self.cfg.cluster);
        let others = std::sync::Mutex::new(Vec::new());
        let listed = match &self.cfg.source.visibility {
            crate::config::Visibility::Manifest { dir } => discover::manifest::scan(
                &self.source,
                &self.cfg.source.root,
                dir,
                &mut self.discovery.manifests,
                &|p| {
                    if shard.owns(p) {
                        return taken.contains_key(p);
                    }
                    if let Ok(mut o) = others.lock() {
                        o.push(discover::Listed {
                            path: p.to_string(),
                            size: 0,
                            mtime_ms: 0,
                        });
                    }
                    true
                },
            )
            .map(|l| (l, discover::Scope::Full)),
            _ => discover::list_scoped(
                &self.source,
                &self.cfg.source.root,
                self.cfg.source.follow_symlinks,
                &|p| taken.contains_key(p),
                prune_floor,
            ),
        };
        let listing = match listed {
            Ok((l, scope)) => {
                let full = scope == discover::Scope::Full;
                self.metrics.discovery.scanned(full, t0.elapsed());
                if full {
                    self.discovery.last_full = Some(Instant::now());
                }
                l
            }
            Err(e) => {
                self.metrics.discovery.listing_failed(&e.to_string());
                return if fail_on_listing {
                    Err(e.into())
                } else {
                    Ok(())
                };
            }
        };
        self.metrics.discovery.listing_ok();
        self.report_unlisted(&listing);
        if self.cfg.cluster.is_sharded() {
            self.note_other_shards(&listing.files);
            self.note_other_shards(&others.into_inner().unwrap_or_default());
        }
        let sel = discover::select(
            &listing.files,
            &SelectParams {
                pattern: &self.cfg.source.pattern,
                visibility: &self.cfg.source.visibility,
                now_ms: now,
                watermark_ms: watermark,
                lookback: self.cfg.source.lookback,
                older_than_lookback: self.cfg.source.older_than_lookback,
                pruned_below_ms: self.discovery.pruned_below,
                taken: &taken,
                reported: &self.reported,
                shard,
            },
        );
        let old = &mut self.discovery.old;
        let skipped = if prune_floor.is_some() {
            old.scan_partial(&sel.too_old, self.discovery.pruned_below)
        } else {
            old.scan(&sel.too_old, self.discovery.pruned_below)
        };
        for f in skipped {
            self.metrics
                .discovery
                .too_old(&f.path, f.mtime_ms, sel.floor_ms, watermark);
        }
        self.waiting = sel.waiting;
        self.waiting_paths = sel.waiting_paths;
        for (now, was) in sel.changed {
            tracing::warn!(file = %now.path, size_was = was.size, size_now = now.size, mtime_was = was.mtime_ms, mtime_now = now.mtime_ms,
                "file changed after it was taken; it is not re-read (use `sluice state rewind` to replay it)");
            self.metrics
                .files_changed_after_taken
                .fetch_add(1, Ordering::Relaxed);
            self.reported.insert(now.path.clone());
            if let Some(r) = self.files.get_mut(&now.path) {
                r.changed_reported = true;
                self.dirty.insert(now.path.clone());
            }
        }
        for f in sel.new {
            // A full listing with pruning on finds what pruned scans missed.
            if self.cfg.source.pruning.is_some()
                && prune_floor.is_none()
                && floor.is_some_and(|fl| discover::prune::skips_path(&f.path, fl))
            {
                self.metrics.discovery.late(&f.path, f.mtime_ms);
            }
            self.take(f);
        }
        Ok(())
    }

    /// Bad entries and symlinked paths, each reported once while listed.
    fn report_unlisted(&mut self, listing: &discover::Listing) {
        let book = &mut self.discovery;
        for e in &listing.bad {
            if !book.bad.contains(e) {
                self.metrics.discovery.bad_entry(e);
            }
        }
        book.bad = listing.bad.iter().cloned().collect();
        for l in &listing.links {
            if !book.links.contains(&l.path) {
                self.metrics
                    .discovery
                    .symlink_not_read(&l.path, &l.target, &l.why);
            }
        }
        book.links = listing.links.iter().map(|l| l.path.clone()).collect();
    }
}
