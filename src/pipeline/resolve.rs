//! The operator's way out of an epoch that can never commit (`sluice state
//! resolve-epoch`, on a stopped daemon). Recovery rolls every prepared
//! epoch forward or fails; when one of its files cannot be moved to its
//! final name (its staged file is gone, the name is taken by a file sluice
//! did not stage, or the name is too long for the filesystem), every start
//! fails the same way and nothing else is read.
//!
//! [`check`] says where each file of each prepared epoch stands and what
//! resolving does with it; [`resolve`] commits what can be committed and
//! marks the epoch committed. The rows of the files left out are not in
//! the output, and they are not read again: the source offsets that
//! produced them were recorded with the epoch. Only a rewind
//! (`sluice state rewind`) reads their source files again, whole.

use super::PipelineError;
use crate::checkpoint::{EpochState, StagedFile, StateStore};
use crate::sink::{self, commit::FileState};
use object_store::ObjectStore;
use std::sync::Arc;
use tokio::runtime::Handle;

/// Longest file or directory name on the filesystems sluice writes to.
pub const NAME_MAX: usize = 255;
/// Longest path Linux accepts, in bytes, with its terminating NUL.
const PATH_MAX: usize = 4096;

/// What resolving does with one staged file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Moved to its final name.
    Commit,
    /// Already at its final name (a leftover staged link is removed).
    Done,
    /// Cannot be committed, for this reason: its rows are left out.
    LeftOut(String),
}

/// One staged file of a prepared epoch.
#[derive(Clone, Debug)]
pub struct FileCheck {
    pub file: StagedFile,
    pub state: FileState,
    pub verdict: Verdict,
}

/// A prepared, uncommitted epoch and its files.
#[derive(Clone, Debug)]
pub struct EpochCheck {
    pub epoch: u64,
    pub created_ms: i64,
    pub files: Vec<FileCheck>,
}

impl EpochCheck {
    /// Files whose rows resolving leaves out.
    pub fn left_out(&self) -> impl Iterator<Item = &FileCheck> {
        self.files
            .iter()
            .filter(|f| matches!(f.verdict, Verdict::LeftOut(_)))
    }
}

/// Why `final_path` cannot exist under `sink_root` on a local filesystem.
pub fn name_problem(sink_root: Option<&std::path::Path>, final_path: &str) -> Option<String> {
    if let Some(seg) = final_path.split('/').find(|s| s.len() > NAME_MAX) {
        return Some(format!(
            "its final name has a {}-byte part (the filesystem allows {NAME_MAX}): {seg}",
            seg.len()
        ));
    }
    let total = sink_root.map_or(0, |r| r.as_os_str().len() + 1) + final_path.len();
    (total >= PATH_MAX)
        .then(|| format!("its final path is {total} bytes long (the filesystem allows {PATH_MAX})"))
}

fn verdict(state: &FileState, name: Option<String>) -> Verdict {
    match state {
        FileState::Staged => match name {
            Some(why) => Verdict::LeftOut(why),
            None => Verdict::Commit,
        },
        FileState::Linked | FileState::Committed => Verdict::Done,
        FileState::Occupied { final_bytes, .. } => Verdict::LeftOut(format!(
            "its final name is taken by a file this epoch did not stage ({final_bytes} bytes), and sluice never overwrites"
        )),
        FileState::Lost => {
            Verdict::LeftOut("its staged file is missing and its final file does not exist".into())
        }
    }
}

/// Every prepared, uncommitted epoch, with where each of its files stands.
pub fn check(
    state: &StateStore,
    sink: &Arc<dyn ObjectStore>,
    sink_root: Option<&std::path::Path>,
    handle: &Handle,
) -> Result<Vec<EpochCheck>, PipelineError> {
    let mut out = Vec::new();
    for e in state.epochs()? {
        if e.state != EpochState::Prepared {
            continue;
        }
        let mut files = Vec::with_capacity(e.files.len());
        for f in e.files {
            let name = name_problem(sink_root, &f.final_path);
            // A name the filesystem refuses cannot even be looked up.
            let st = match &name {
                Some(_) => match handle.block_on(sink::commit::head_of(sink, &f.staged))? {
                    Some(_) => FileState::Staged,
                    None => FileState::Lost,
                },
                None => handle.block_on(sink::commit::inspect(sink, &f))?,
            };
            let v = verdict(&st, name);
            files.push(FileCheck {
                file: f,
                state: st,
                verdict: v,
            });
        }
        out.push(EpochCheck {
            epoch: e.epoch,
            created_ms: e.created_ms,
            files,
        });
    }
    Ok(out)
}

/// Commits the files of `e` that can be, leaves the others out, and marks
/// the epoch committed. A file that fails to move although [`check`] said
/// it could is an error, and the epoch stays prepared.
pub fn resolve(
    e: &EpochCheck,
    state: &StateStore,
    sink: &Arc<dyn ObjectStore>,
    sink_root: Option<&std::path::Path>,
    handle: &Handle,
) -> Result<(), PipelineError> {
    let movable: Vec<StagedFile> = e
        .files
        .iter()
        .filter(|f| !matches!(f.verdict, Verdict::LeftOut(_)))
        .map(|f| f.file.clone())
        .collect();
    handle
        .block_on(sink::commit::commit_files(sink, None, e.epoch, &movable))
        .map_err(|source| PipelineError::Uncommittable {
            epoch: e.epoch,
            source,
        })?;
    sink::commit::sync_local(sink_root)?;
    state.mark_committed(e.epoch, 20)?;
    tracing::warn!(
        epoch = e.epoch,
        committed = movable.len(),
        left_out = e.left_out().count(),
        rows_left_out = e.left_out().map(|f| f.file.rows).sum::<u64>(),
        "epoch resolved by the operator"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_too_long_for_the_filesystem_are_found() {
        assert_eq!(name_problem(None, "t/k=v/part-1.zstd.parquet"), None);
        let long = format!("t/k={}/part-1.zstd.parquet", "x".repeat(300));
        let why = name_problem(None, &long).unwrap();
        assert!(why.contains("302-byte part"), "{why}");
        let part = format!("k={}", "y".repeat(200));
        let deep = format!("t/{}", vec![part.as_str(); 21].join("/"));
        assert!(name_problem(Some(std::path::Path::new("/srv")), &deep).is_some());
    }

    #[test]
    fn resolving_commits_what_can_be_and_leaves_out_the_rest() {
        use crate::checkpoint::Prepare;
        let dir = tempfile::tempdir().unwrap();
        let (root, state_dir) = (dir.path().join("sink"), dir.path().join("state"));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let sink = super::super::local_store(&root, true).unwrap();
        let state = StateStore::open(&state_dir).unwrap();
        let stage = |name: &str, final_path: String, write: bool| {
            let staged = format!("{}/e0000000001/{name}", sink::STAGING_DIR);
            if write {
                let p = root.join(&staged);
                std::fs::create_dir_all(p.parent().unwrap()).unwrap();
                std::fs::write(&p, b"rows").unwrap();
            }
            StagedFile {
                table: "t".into(),
                partition: "k=v".into(),
                staged,
                final_path,
                rows: 10,
                bytes: 4,
                upload: None,
            }
        };
        let files = vec![
            stage("a", "t/k=v/a".into(), true),
            stage("b", "t/k=v/b".into(), false),
            stage("c", format!("t/k={}/c", "x".repeat(300)), true),
        ];
        state
            .prepare(&Prepare {
                epoch: 1,
                files,
                ..Default::default()
            })
            .unwrap();
        let h = rt.handle();
        let target = crate::sink::Target {
            store: sink.clone(),
            local_root: Some(root.clone()),
            remote: None,
        };
        // Recovery fails on it, and says what to run.
        let e = super::super::recover(&state, &target, h).unwrap_err();
        assert!(e.to_string().contains("sluice state resolve-epoch"), "{e}");
        let checks = check(&state, &sink, Some(&root), h).unwrap();
        assert_eq!(checks.len(), 1);
        let v: Vec<&Verdict> = checks[0].files.iter().map(|f| &f.verdict).collect();
        // The failed recovery may have moved it already.
        assert!(matches!(v[0], Verdict::Commit | Verdict::Done), "{v:?}");
        assert!(matches!(v[1], Verdict::LeftOut(m) if m.contains("missing")));
        assert!(matches!(v[2], Verdict::LeftOut(m) if m.contains("302-byte")));
        assert_eq!(checks[0].left_out().map(|f| f.file.rows).sum::<u64>(), 20);
        resolve(&checks[0], &state, &sink, Some(&root), h).unwrap();
        assert_eq!(std::fs::read(root.join("t/k=v/a")).unwrap(), b"rows");
        assert!(check(&state, &sink, Some(&root), h).unwrap().is_empty());
        // The next start recovers cleanly.
        assert_eq!(super::super::recover(&state, &target, h).unwrap(), 0);
    }

    #[test]
    fn only_files_that_can_move_are_committed() {
        assert_eq!(verdict(&FileState::Staged, None), Verdict::Commit);
        assert!(matches!(
            verdict(&FileState::Staged, Some("too long".into())),
            Verdict::LeftOut(_)
        ));
        assert_eq!(verdict(&FileState::Linked, None), Verdict::Done);
        assert_eq!(verdict(&FileState::Committed, None), Verdict::Done);
        assert!(
            matches!(verdict(&FileState::Lost, None), Verdict::LeftOut(m) if m.contains("missing"))
        );
        assert!(matches!(
            verdict(
                &FileState::Occupied {
                    staged_present: true,
                    final_bytes: 3
                },
                None
            ),
            Verdict::LeftOut(m) if m.contains("never overwrites")
        ));
    }
}
