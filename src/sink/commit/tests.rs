//! The create-only move over a real local store: it never replaces a file
//! it did not stage, and repeating it after a crash at any point finishes it.

use super::*;
use crate::sink::SinkError;

fn setup() -> (
    tempfile::TempDir,
    tokio::runtime::Runtime,
    Arc<dyn ObjectStore>,
) {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let store: Arc<dyn ObjectStore> =
        Arc::new(object_store::local::LocalFileSystem::new_with_prefix(dir.path()).unwrap());
    (dir, rt, store)
}

/// Stages `body` and returns its record, final name `t/p=1/<name>`.
fn stage(dir: &std::path::Path, name: &str, body: &[u8]) -> StagedFile {
    let staged = format!("{STAGING_DIR}/e0000000001/{name}");
    let p = dir.join(&staged);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, body).unwrap();
    StagedFile {
        table: "t".into(),
        partition: "p=1".into(),
        staged,
        final_path: format!("t/p=1/{name}"),
        rows: 1,
        bytes: body.len() as u64,
        upload: None,
    }
}

fn commit(
    rt: &tokio::runtime::Runtime,
    store: &Arc<dyn ObjectStore>,
    f: &StagedFile,
) -> Result<(), SinkError> {
    rt.block_on(commit_files(store, None, 1, std::slice::from_ref(f)))
}

#[test]
fn a_staged_file_moves_to_its_final_name_and_again_is_a_no_op() {
    let (d, rt, store) = setup();
    let f = stage(d.path(), "a.parquet", b"ours");
    commit(&rt, &store, &f).unwrap();
    assert_eq!(
        std::fs::read(d.path().join(&f.final_path)).unwrap(),
        b"ours"
    );
    assert!(!d.path().join(&f.staged).exists());
    // A crash after the move, before the epoch was marked committed.
    commit(&rt, &store, &f).unwrap();
    assert_eq!(
        rt.block_on(inspect(&store, &f)).unwrap(),
        FileState::Committed
    );
}

#[test]
fn a_final_name_taken_by_another_file_is_refused_never_overwritten() {
    let (d, rt, store) = setup();
    // Another size, and the same size: neither is ours.
    for theirs in [&b"committed by an earlier state"[..], b"THEM"] {
        let f = stage(d.path(), "b.parquet", b"ours");
        let fin = d.path().join(&f.final_path);
        std::fs::create_dir_all(fin.parent().unwrap()).unwrap();
        std::fs::write(&fin, theirs).unwrap();
        let e = commit(&rt, &store, &f).unwrap_err();
        assert!(matches!(e, SinkError::Occupied { .. }), "{e:?}");
        let msg = e.to_string();
        assert!(
            msg.contains(&f.final_path) && msg.contains(&f.staged),
            "{msg}"
        );
        assert!(msg.contains("never overwrites"), "{msg}");
        assert_eq!(std::fs::read(&fin).unwrap(), theirs, "overwritten");
        assert_eq!(std::fs::read(d.path().join(&f.staged)).unwrap(), b"ours");
        // Trying again changes nothing either.
        assert!(commit(&rt, &store, &f).is_err());
        assert_eq!(std::fs::read(&fin).unwrap(), theirs);
        std::fs::remove_file(&fin).unwrap();
    }
}

#[test]
fn a_crash_between_link_and_unlink_is_finished_by_the_next_attempt() {
    let (d, rt, store) = setup();
    let f = stage(d.path(), "c.parquet", b"ours, linked");
    let fin = d.path().join(&f.final_path);
    std::fs::create_dir_all(fin.parent().unwrap()).unwrap();
    // What rename_if_not_exists does first; the crash comes before the unlink.
    std::fs::hard_link(d.path().join(&f.staged), &fin).unwrap();
    assert_eq!(rt.block_on(inspect(&store, &f)).unwrap(), FileState::Linked);
    commit(&rt, &store, &f).unwrap();
    assert!(!d.path().join(&f.staged).exists());
    assert_eq!(std::fs::read(&fin).unwrap(), b"ours, linked");
    commit(&rt, &store, &f).unwrap();
}

#[test]
fn a_staged_file_gone_is_lost_or_occupied_never_done_by_accident() {
    let (d, rt, store) = setup();
    let f = stage(d.path(), "d.parquet", b"ours");
    std::fs::remove_file(d.path().join(&f.staged)).unwrap();
    let e = commit(&rt, &store, &f).unwrap_err();
    assert!(matches!(e, SinkError::Lost { .. }), "{e:?}");
    // A final file of another size is not our move's result.
    let fin = d.path().join(&f.final_path);
    std::fs::create_dir_all(fin.parent().unwrap()).unwrap();
    std::fs::write(&fin, b"someone else's").unwrap();
    let e = commit(&rt, &store, &f).unwrap_err();
    assert!(matches!(e, SinkError::Occupied { .. }), "{e:?}");
    assert_eq!(
        rt.block_on(inspect(&store, &f)).unwrap(),
        FileState::Occupied {
            staged_present: false,
            final_bytes: 14
        }
    );
}
