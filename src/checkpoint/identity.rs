//! The state's identity and history, as far as output naming needs them:
//!
//! - `meta:state_id`: a random id made when the state is created (a state
//!   written by an older build gets one the first time it is opened). The
//!   sink puts it in every output file name, so a state that starts again
//!   from epoch 1 (a wiped or replaced state dir) never produces a final
//!   name an earlier state produced.
//! - [`StateStore::never_committed`]: a state that has never prepared an
//!   epoch nor recorded a file; a run over such a state would read every
//!   visible source file again, which `sluice run` refuses while the sink
//!   already holds output.
//! - `meta:replica`: the `(replica, replicas)` a sharded state was written
//!   for ([`StateStore::claim_replica`]). A state holds only its shard's
//!   files, so it must not be run as another replica or with another N.

use super::{K_NEXT_EPOCH, StateError, StateStore, decode, encode};

pub(super) const K_STATE_ID: &str = "meta:state_id";
pub(super) const K_REPLICA: &str = "meta:replica";

/// What `meta:replica` holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ReplicaClaim {
    pub v: u32,
    pub replica: u32,
    pub replicas: u32,
}

/// Hex digits of a state id (64 random bits).
const STATE_ID_LEN: usize = 16;

/// A fresh random state id: 16 lowercase hex digits.
pub(super) fn new_state_id() -> Result<String, StateError> {
    let mut b = [0u8; STATE_ID_LEN / 2];
    getrandom::fill(&mut b).map_err(|e| StateError::Random(e.to_string()))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// Whether `id` is a state id this build would write.
fn valid_state_id(id: &str) -> bool {
    id.len() == STATE_ID_LEN
        && id
            .bytes()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
}

impl StateStore {
    /// Gives the state an id when it has none (new, or written by an older
    /// build). Flushed before it is used in any file name.
    pub(super) fn ensure_state_id(&self) -> Result<(), StateError> {
        if self.db.get(K_STATE_ID)?.is_some() {
            return Ok(());
        }
        let id = new_state_id()?;
        // Another opener cannot race this: sled locks the directory.
        self.db.insert(K_STATE_ID, encode(&id))?;
        self.db.flush()?;
        Ok(())
    }

    /// The state's id (see the module doc). Output file names carry it.
    pub fn state_id(&self) -> Result<String, StateError> {
        let Some(v) = self.db.get(K_STATE_ID)? else {
            return Err(StateError::Corrupt {
                key: K_STATE_ID.into(),
                message: "missing (the state was changed while open)".into(),
            });
        };
        let id: String = decode(K_STATE_ID.as_bytes(), &v)?;
        if !valid_state_id(&id) {
            return Err(StateError::Corrupt {
                key: K_STATE_ID.into(),
                message: format!("{id:?} is not {STATE_ID_LEN} lowercase hex digits"),
            });
        }
        Ok(id)
    }

    /// The `(replica, replicas)` the state was written for; `None`: not
    /// recorded (a state of one daemon).
    pub fn replica_claim(&self) -> Result<Option<ReplicaClaim>, StateError> {
        match self.db.get(K_REPLICA)? {
            Some(v) => Ok(Some(decode(K_REPLICA.as_bytes(), &v)?)),
            None => Ok(None),
        }
    }

    /// Checks that this state may run as `replica` of `replicas`, and
    /// records it in a state that has none. A state written for another
    /// `(replica, replicas)`, or a state of one daemon run as one of
    /// several replicas, is refused with what to do.
    pub fn claim_replica(&self, replica: u32, replicas: u32) -> Result<(), StateError> {
        let want = ReplicaClaim {
            v: 1,
            replica,
            replicas,
        };
        let reshard = "stop every replica and re-split their exported states with `sluice state reshard` (README: More than one machine), or give this replica the state.dir it was started with";
        match self.replica_claim()? {
            Some(c) if (c.replica, c.replicas) == (replica, replicas) => Ok(()),
            Some(c) => Err(StateError::Replica(format!(
                "this state was written for replica {} of {}, and this process is replica {replica} of {replicas}: {reshard}",
                c.replica, c.replicas
            ))),
            None if replicas <= 1 => Ok(()),
            None if self.never_committed()? => {
                self.db.insert(K_REPLICA, encode(&want))?;
                self.db.flush()?;
                Ok(())
            }
            None => Err(StateError::Replica(format!(
                "this state was written by a single daemon (it holds every source file), and this process is replica {replica} of {replicas}: {reshard}"
            ))),
        }
    }

    /// True when the state has never prepared an epoch and records no
    /// source file: a run would take every visible file as new.
    pub fn never_committed(&self) -> Result<bool, StateError> {
        Ok(self.db.get(K_NEXT_EPOCH)?.is_none()
            && self.db.scan_prefix("epoch:").next().transpose()?.is_none()
            && self.db.scan_prefix("file:").next().transpose()?.is_none())
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests_support::reopen;
    use super::super::{FileRecord, FileStatus, Prepare};
    use super::*;

    #[test]
    fn a_state_keeps_its_id_and_a_new_state_gets_another() {
        let a = tempfile::tempdir().unwrap();
        let s = StateStore::open(a.path()).unwrap();
        let id = s.state_id().unwrap();
        assert!(valid_state_id(&id), "{id}");
        drop(s);
        assert_eq!(reopen(a.path()).state_id().unwrap(), id);
        let b = tempfile::tempdir().unwrap();
        assert_ne!(StateStore::open(b.path()).unwrap().state_id().unwrap(), id);
    }

    #[test]
    fn a_state_from_an_older_build_gets_an_id_on_open() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = StateStore::open(dir.path()).unwrap();
            s.db.remove(K_STATE_ID).unwrap();
            s.db.flush().unwrap();
        }
        let s = reopen(dir.path());
        assert!(valid_state_id(&s.state_id().unwrap()));
    }

    #[test]
    fn a_state_refuses_another_replica_or_another_number_of_replicas() {
        let dir = tempfile::tempdir().unwrap();
        let s = StateStore::open(dir.path()).unwrap();
        s.claim_replica(0, 1).unwrap();
        assert_eq!(
            s.replica_claim().unwrap(),
            None,
            "one daemon records nothing"
        );
        s.claim_replica(1, 3).unwrap();
        s.claim_replica(1, 3).unwrap();
        let e = s.claim_replica(1, 2).unwrap_err().to_string();
        assert!(
            e.contains("replica 1 of 3") && e.contains("sluice state reshard"),
            "{e}"
        );
        let e = s.claim_replica(0, 3).unwrap_err().to_string();
        assert!(e.contains("this process is replica 0 of 3"), "{e}");
        assert!(s.claim_replica(0, 1).is_err());

        // A single daemon's state with records cannot become a replica.
        let dir = tempfile::tempdir().unwrap();
        let s = StateStore::open(dir.path()).unwrap();
        s.prepare(&Prepare {
            epoch: 1,
            ..Default::default()
        })
        .unwrap();
        let e = s.claim_replica(0, 2).unwrap_err().to_string();
        assert!(e.contains("written by a single daemon"), "{e}");
    }

    #[test]
    fn never_committed_until_an_epoch_or_a_file_is_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let s = StateStore::open(dir.path()).unwrap();
        assert!(s.never_committed().unwrap());
        s.put_schema("{}").unwrap();
        assert!(s.never_committed().unwrap(), "a schema is not output");
        s.prepare(&Prepare {
            epoch: 1,
            ..Default::default()
        })
        .unwrap();
        assert!(!s.never_committed().unwrap());

        let dir = tempfile::tempdir().unwrap();
        let s = StateStore::open(dir.path()).unwrap();
        let rec = FileRecord {
            v: 1,
            size: 1,
            mtime_ms: 1,
            status: FileStatus::Done,
            splits: vec![],
            changed_reported: false,
        };
        s.put_file("a.parquet", &rec).unwrap();
        assert!(!s.never_committed().unwrap());
    }
}
