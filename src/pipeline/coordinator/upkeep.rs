//! The coordinator's upkeep between checkpoints: SIGHUP config reloads,
//! rule reloads at a barrier, partition commit ticks, stall detection and
//! the gauges and status an operator reads.

use super::*;

/// How long the rules directory must stay unchanged before a checkpoint
/// reloads it: long enough for `cp`, `git checkout` or `rsync` of several
/// files to finish, short next to a checkpoint interval.
pub(super) const RULES_SETTLE: Duration = Duration::from_secs(2);

impl Coordinator {
    /// SIGHUP: re-reads the config file; safe keys apply, the others are
    /// logged as needing a restart; a config that does not load is refused
    /// whole and the running one stays.
    pub(super) fn reload_config(&mut self) {
        let new = match Config::load(&self.cfg.path) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "SIGHUP: config refused; the running config stays");
                return;
            }
        };
        let r = crate::config::reload::diff(&self.cfg, &new);
        for c in &r.applied {
            tracing::info!(key = %c.key, from = %c.from, to = %c.to, "config change applied");
        }
        for c in &r.needs_restart {
            tracing::warn!(key = %c.key, from = %c.from, to = %c.to, "config change needs a restart; ignored until then");
        }
        if new.log_level != self.cfg.log_level
            && let Err(e) = crate::telemetry::set_log_level(&new.log_level)
        {
            tracing::warn!(error = %e, "SIGHUP: log.level not applied");
        }
        crate::config::reload::apply(&mut self.cfg, &new);
        self.metrics
            .stall_timeout_ms
            .store(self.cfg.stall_timeout.as_millis() as i64, Ordering::Relaxed);
        self.metrics.status.set_facts(status::RunFacts {
            readers: self.cfg.read.readers as u64,
            thresholds: status::Thresholds::from_config(&self.cfg),
            sink_root: self.cfg.sink.root.local_root(),
            state_dir: &self.cfg.state_dir,
        });
        tracing::info!(
            applied = r.applied.len(),
            needs_restart = r.needs_restart.len(),
            "SIGHUP: config reloaded; rules reload at the checkpoint taken now"
        );
    }

    /// Notes the rules directory's version (about once a second), so a
    /// checkpoint can tell how long it has been unchanged.
    pub(super) fn watch_rules(&mut self) {
        if let Ok(v) = RuleSet::version_of(&self.cfg.rules_dir) {
            self.saw_rules(v);
        }
    }

    /// Records `version` as seen; true when it has been seen unchanged for
    /// [`RULES_SETTLE`].
    fn saw_rules(&mut self, version: String) -> bool {
        match &self.rules_seen {
            Some((v, since)) if *v == version => since.elapsed() >= RULES_SETTLE,
            _ => {
                self.rules_seen = Some((version, Instant::now()));
                false
            }
        }
    }

    /// Swaps in the rules directory's new version if it compiles; a set with
    /// any error is refused whole and the running set stays. A version is
    /// taken only once the directory has been unchanged for
    /// [`RULES_SETTLE`] (or at once after SIGHUP), so rule files copied in
    /// one after another reload as one set.
    pub(super) fn reload_rules(&mut self) {
        let now = std::mem::take(&mut self.rules_now);
        // Read once: the version judged is the one compiled.
        let files = match crate::route::read_rule_files(&self.cfg.rules_dir) {
            Ok(f) => f,
            Err(e) => {
                if self.rules_tried != "unreadable" {
                    tracing::error!(error = %e, "cannot read the rules directory; the running rules stay");
                    self.metrics
                        .rule_reloads_refused
                        .fetch_add(1, Ordering::Relaxed);
                    self.rules_tried = "unreadable".into();
                }
                return;
            }
        };
        let version = RuleSet::version_of_files(&files);
        if version == self.rules_tried {
            return;
        }
        if !self.saw_rules(version.clone()) && !now {
            tracing::debug!(version = %version, "rules directory changed; reloaded once it has been unchanged for {RULES_SETTLE:?}");
            return;
        }
        self.rules_tried = version.clone();
        match compile_checked(&self.cfg, files, &self.rule_schema, &self.table_schemas) {
            Ok(set) => {
                tracing::info!(rules = set.rules.len(), version = %set.version, epoch = self.epoch, "rules reloaded; in effect from this epoch");
                self.metrics
                    .rule_reloads_accepted
                    .fetch_add(1, Ordering::Relaxed);
                self.rules.store(Arc::new(set));
            }
            Err(errors) => {
                for e in &errors {
                    tracing::error!(error = %e, "rule error");
                }
                tracing::error!(errors = errors.len(), version = %version, running = %self.rules.load().version, "new rule set refused; the running rules stay");
                self.metrics
                    .rule_reloads_refused
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Partition commit: complete partitions get `_SUCCESS` and notifications
    /// (see `partition_commit`). Every prepared epoch is committed here.
    pub(super) fn partition_commit_tick(&mut self) {
        if self.cluster.is_some() {
            return self.cluster_tick();
        }
        let Some(p) = self.pcommit.as_mut() else {
            return;
        };
        let source = source_progress(&self.files, &self.waiting_paths, &[]);
        if let Err(e) = p.tick(&self.state, source, &self.open_partitions, now_ms()) {
            tracing::error!(error = %e, "partition commit failed; retried at the next tick");
        }
    }

    /// Feeds the stall detector behind `/healthz`.
    pub(super) fn note_progress(&mut self) {
        let now = now_ms();
        self.metrics.loop_tick_ms.store(now, Ordering::Relaxed);
        let read = self.metrics.rows_read.load(Ordering::Relaxed);
        if read != self.last_rows_read || self.queue.is_idle() {
            self.last_rows_read = read;
            self.metrics.progress_ms.store(now, Ordering::Relaxed);
        }
    }

    /// Refreshes what `/status` shows beyond the metrics (at each checkpoint).
    pub(super) fn report_status(&self) {
        let now = now_ms();
        let day = crate::checkpoint::utc_day(now);
        let tables = match self.state.table_rows(&day) {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read today's row counts for /status");
                Default::default()
            }
        };
        let rules = self.rules.load();
        let facts = status::CheckpointFacts {
            quarantined: self
                .files
                .iter()
                .filter_map(|(p, r)| match &r.status {
                    FileStatus::Quarantined { reason, at_ms } => Some(status::Quarantined {
                        path: p.clone(),
                        reason: reason.clone(),
                        at_ms: *at_ms,
                    }),
                    _ => None,
                })
                .collect(),
            day,
            tables,
            rules: status::RulesInfo {
                version: rules.version.clone(),
                count: rules.rules.len(),
            },
            open_files: self.open_files as u64,
            oldest_open_ms: self.oldest_open_ms.clone(),
        };
        let wait = self.metrics.reader_wait_us.load(Ordering::Relaxed);
        self.metrics.status.checkpoint(facts, wait, now);
    }

    pub(super) fn update_gauges(&self) {
        let (queued, busy) = self.queue.sizes();
        self.metrics
            .splits_queued
            .store(queued as i64, Ordering::Relaxed);
        let active: Vec<&FileRecord> = self
            .files
            .values()
            .filter(|r| r.status == FileStatus::Active)
            .collect();
        self.metrics
            .backlog_files
            .store((active.len() + self.waiting) as i64, Ordering::Relaxed);
        self.metrics.backlog_bytes.store(
            active.iter().map(|r| r.size as i64).sum(),
            Ordering::Relaxed,
        );
        let oldest = active.iter().map(|r| r.mtime_ms).min();
        let lag_ms = oldest.map(|m| now_ms() - m).unwrap_or(0);
        self.metrics.lag_ms.store(lag_ms, Ordering::Relaxed);
        self.metrics.status.sample(
            status::Backlog {
                files: active.len() as u64,
                bytes: active.iter().map(|r| r.size).sum(),
                waiting_files: self.waiting as u64,
                lag_seconds: lag_ms.max(0) as f64 / 1e3,
            },
            queued,
            busy,
        );
        self.metrics.status.set_dimensions(self.enricher.status());
    }
}

/// The source files partition commit weighs, as (path, still to be read):
/// this shard's files, those waiting to be taken, and `others` (with
/// `[cluster]`, one path per other shard's folder, see
/// [`Coordinator::other_shard_paths`]), counted as read.
pub(super) fn source_progress<'a>(
    files: &'a BTreeMap<String, FileRecord>,
    waiting: &'a [String],
    others: &'a [String],
) -> impl Iterator<Item = (&'a str, bool)> {
    files
        .iter()
        .map(|(path, r)| (path.as_str(), r.status == FileStatus::Active))
        .chain(waiting.iter().map(|path| (path.as_str(), true)))
        .chain(others.iter().map(|p| (p.as_str(), false)))
}

impl Coordinator {
    /// `[cluster]`: a representative path in each other shard's folder.
    pub(super) fn other_shard_paths(&self) -> Vec<String> {
        self.other_shards.iter().map(|d| format!("{d}/_")).collect()
    }
}
