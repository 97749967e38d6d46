//! Releasing a quarantined file (`sluice state quarantine retry`) without
//! reading a committed row twice. A file may be quarantined after some of
//! its splits committed rows; its record keeps each split's offset.
//!
//! - Unchanged (the size and mtime the source shows now are the recorded
//!   ones) and offsets that fit the file: reading resumes at each split's
//!   offset, so no committed row is read again.
//! - Nothing committed from it yet: read from its first row.
//! - Otherwise (rewritten since, or offsets that do not fit its row
//!   groups): reading from the first row puts the committed rows in the
//!   output a second time, so the operator must ask for it (`--reread`).
//!
//! Planning is pure: the caller looks at the source for the plan; the
//! records change only through [`release`], all files or none.

use super::{FileRecord, FileStatus, StateError, StateStore, decode, encode, file_key};
use crate::split::RowGroupInfo;

/// Why a file cannot resume at its recorded offsets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NoResume {
    /// Quarantined before it was split (unreadable when taken).
    NeverSplit,
    /// Its size or mtime differ from the record: rewritten since.
    Changed {
        size_was: u64,
        size_now: u64,
        mtime_was: i64,
        mtime_now: i64,
    },
    /// The recorded splits do not fit the file's row groups.
    Offsets(String),
}

impl std::fmt::Display for NoResume {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NoResume::NeverSplit => write!(f, "it was never read"),
            NoResume::Changed {
                size_was,
                size_now,
                mtime_was,
                mtime_now,
            } => write!(
                f,
                "it changed since it was quarantined (size {size_was} -> {size_now} bytes, mtime {} -> {})",
                rfc3339(*mtime_was),
                rfc3339(*mtime_now)
            ),
            NoResume::Offsets(why) => write!(f, "its recorded offsets cannot be trusted: {why}"),
        }
    }
}

use crate::clock::rfc3339_millis as rfc3339;

/// What releasing one file does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RetryPlan {
    /// Reading resumes at each split's recorded offset: `committed` rows
    /// are skipped, `left` rows are read.
    Resume { committed: u64, left: u64 },
    /// Read from its first row; nothing was committed from it.
    FromStart { why: NoResume },
    /// Read from its first row although `committed` rows from it are in
    /// the output already: they land a second time. Only with `--reread`.
    Reread { committed: u64, why: NoResume },
}

impl RetryPlan {
    pub fn needs_reread(&self) -> bool {
        matches!(self, RetryPlan::Reread { .. })
    }
}

/// Decides how to release `rec`, given the size and mtime the source shows
/// now and, when its footer could be read, the file's row groups.
pub fn plan_retry(
    rec: &FileRecord,
    size_now: u64,
    mtime_now: i64,
    row_groups: Option<&[RowGroupInfo]>,
) -> RetryPlan {
    let committed = rec.rows_committed();
    let why = if rec.size != size_now || rec.mtime_ms != mtime_now {
        Some(NoResume::Changed {
            size_was: rec.size,
            size_now,
            mtime_was: rec.mtime_ms,
            mtime_now,
        })
    } else if rec.splits.is_empty() {
        Some(NoResume::NeverSplit)
    } else {
        misfit(rec, row_groups).map(NoResume::Offsets)
    };
    match why {
        None => RetryPlan::Resume {
            committed,
            left: rec
                .splits
                .iter()
                .map(|s| s.rows.saturating_sub(s.offset))
                .sum(),
        },
        Some(why) if committed == 0 => RetryPlan::FromStart { why },
        Some(why) => RetryPlan::Reread { committed, why },
    }
}

/// Why the recorded splits do not fit the file, if they do not.
fn misfit(rec: &FileRecord, row_groups: Option<&[RowGroupInfo]>) -> Option<String> {
    for (i, s) in rec.splits.iter().enumerate() {
        if s.offset > s.rows {
            return Some(format!(
                "split {i} is past its end ({} of {} rows)",
                s.offset, s.rows
            ));
        }
        let Some(groups) = row_groups else { continue };
        let (a, b) = s.row_groups;
        let rows = groups
            .get(a..b)
            .map(|g| g.iter().map(|g| g.rows).sum::<u64>());
        if rows != Some(s.rows) {
            return Some(format!(
                "split {i} (row groups {a}..{b}, {} rows) does not match the file's {} row groups",
                s.rows,
                groups.len()
            ));
        }
    }
    None
}

/// The record after the plan: active again, its splits kept to resume or
/// cleared to be planned from the file as it is now.
pub fn released(rec: &FileRecord, plan: &RetryPlan, size_now: u64, mtime_now: i64) -> FileRecord {
    let mut r = rec.clone();
    r.status = FileStatus::Active;
    r.changed_reported = false;
    if !matches!(plan, RetryPlan::Resume { .. }) {
        r.size = size_now;
        r.mtime_ms = mtime_now;
        r.splits.clear();
    }
    r
}

/// One quarantined file to release: the plan made for it and the size and
/// mtime the source showed when it was made.
pub struct Release<'a> {
    pub path: &'a str,
    pub plan: &'a RetryPlan,
    pub size_now: u64,
    pub mtime_now: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    #[error("{0} is not in the state (see `sluice state show`)")]
    Unknown(String),
    #[error("{0} is not quarantined")]
    NotQuarantined(String),
    #[error(transparent)]
    State(#[from] StateError),
}

/// Releases files from quarantine as planned, all or none: every record is
/// read again and must still be quarantined, then the released records
/// ([`released`]) are written in one batch. Returns how many.
pub fn release(state: &StateStore, files: &[Release<'_>]) -> Result<usize, ReleaseError> {
    let mut batch = sled::Batch::default();
    for f in files {
        let key = file_key(f.path);
        let Some(v) = state.db.get(&key).map_err(StateError::from)? else {
            return Err(ReleaseError::Unknown(f.path.to_string()));
        };
        let rec: FileRecord = decode(key.as_bytes(), &v)?;
        if !matches!(rec.status, FileStatus::Quarantined { .. }) {
            return Err(ReleaseError::NotQuarantined(f.path.to_string()));
        }
        batch.insert(
            key.as_bytes(),
            encode(&released(&rec, f.plan, f.size_now, f.mtime_now)),
        );
    }
    state.db.apply_batch(batch).map_err(StateError::from)?;
    state.db.flush().map_err(StateError::from)?;
    Ok(files.len())
}

#[cfg(test)]
mod tests {
    use super::super::SplitRecord;
    use super::*;

    fn rec(offsets: &[(u64, u64)]) -> FileRecord {
        FileRecord {
            v: 1,
            size: 100,
            mtime_ms: 7,
            status: FileStatus::Quarantined {
                reason: "split 1 failed".into(),
                at_ms: 9,
            },
            splits: offsets
                .iter()
                .enumerate()
                .map(|(i, &(offset, rows))| SplitRecord {
                    row_groups: (i, i + 1),
                    rows,
                    offset,
                })
                .collect(),
            changed_reported: true,
        }
    }

    fn groups(rows: &[u64]) -> Vec<RowGroupInfo> {
        rows.iter()
            .map(|&rows| RowGroupInfo { rows, bytes: 0 })
            .collect()
    }

    #[test]
    fn an_unchanged_file_resumes_where_its_splits_stopped() {
        let r = rec(&[(500, 500), (120, 500), (0, 500)]);
        let g = groups(&[500, 500, 500]);
        let p = plan_retry(&r, 100, 7, Some(&g));
        assert_eq!(
            p,
            RetryPlan::Resume {
                committed: 620,
                left: 880
            }
        );
        let back = released(&r, &p, 100, 7);
        assert_eq!(back.status, FileStatus::Active);
        assert_eq!(back.splits, r.splits);
        assert!(!back.changed_reported);
        // An unreadable footer does not stop a resume: the daemon
        // quarantines the file again if it still cannot read it.
        assert!(matches!(
            plan_retry(&r, 100, 7, None),
            RetryPlan::Resume { .. }
        ));
    }

    #[test]
    fn a_changed_file_with_committed_rows_needs_reread() {
        let r = rec(&[(500, 500), (120, 500)]);
        let p = plan_retry(&r, 101, 7, None);
        assert!(p.needs_reread(), "{p:?}");
        assert!(matches!(
            p,
            RetryPlan::Reread {
                committed: 620,
                why: NoResume::Changed { .. }
            }
        ));
        let back = released(&r, &p, 101, 8);
        assert!(back.splits.is_empty());
        assert_eq!((back.size, back.mtime_ms), (101, 8));
        // The same with an mtime change only.
        assert!(plan_retry(&r, 100, 8, None).needs_reread());
    }

    #[test]
    fn nothing_committed_reads_from_the_start_without_asking() {
        let r = rec(&[(0, 500), (0, 500)]);
        assert!(matches!(
            plan_retry(&r, 5, 5, None),
            RetryPlan::FromStart {
                why: NoResume::Changed { .. }
            }
        ));
        let never = rec(&[]);
        assert_eq!(
            plan_retry(&never, 100, 7, None),
            RetryPlan::FromStart {
                why: NoResume::NeverSplit
            }
        );
    }

    #[test]
    fn offsets_that_do_not_fit_the_file_are_not_trusted() {
        let r = rec(&[(500, 500), (120, 500)]);
        let p = plan_retry(&r, 100, 7, Some(&groups(&[500, 400])));
        assert!(
            matches!(&p, RetryPlan::Reread { why: NoResume::Offsets(m), .. } if m.contains("split 1")),
            "{p:?}"
        );
        let past = rec(&[(600, 500)]);
        assert!(plan_retry(&past, 100, 7, None).needs_reread());
    }

    #[test]
    fn release_writes_every_file_or_none() {
        let dir = tempfile::tempdir().unwrap();
        let st = StateStore::open(dir.path()).unwrap();
        let q = rec(&[(500, 500)]);
        let mut done = q.clone();
        done.status = FileStatus::Done;
        st.put_file("a", &q).unwrap();
        st.put_file("b", &done).unwrap();
        let plan = plan_retry(&q, 100, 7, Some(&groups(&[500])));
        let one = |path| Release {
            path,
            plan: &plan,
            size_now: 100,
            mtime_now: 7,
        };
        // "b" is not quarantined: "a" stays quarantined too.
        let err = release(&st, &[one("a"), one("b")]).unwrap_err();
        assert!(matches!(err, ReleaseError::NotQuarantined(p) if p == "b"));
        let err = release(&st, &[one("a"), one("c")]).unwrap_err();
        assert!(matches!(err, ReleaseError::Unknown(p) if p == "c"));
        assert_eq!(st.files().unwrap()["a"].status, q.status);
        assert_eq!(release(&st, &[one("a")]).unwrap(), 1);
        let files = st.files().unwrap();
        assert_eq!(files["a"], released(&q, &plan, 100, 7));
        assert_eq!(files["b"], done);
    }
}
