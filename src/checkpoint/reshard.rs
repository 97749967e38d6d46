//! `sluice state reshard`: re-splits the exported states of every replica
//! of a cluster (`sluice state export` dumps, replicas stopped) into states
//! for a new number of replicas. Pure over the dumps' entries, so it is
//! tested without sled; the command reads and writes dump files, and each
//! new replica's dump is loaded with `sluice state import`.
//!
//! What goes where (new replica `j` of `N`):
//!
//! - `file:<path>`: to the replica that owns the path under `N`
//!   (`cluster::shard`), whichever replica recorded it: a file taken by any
//!   old replica is never taken again, a file none took is taken by its
//!   new owner.
//! - `meta:watermark`, `meta:pruned_below`: the highest of the old ones
//!   (every old state keeps its records down to its own floor, which is at
//!   or below the highest, so the new floor never hides a file that some
//!   state took but whose record would be missing).
//! - `meta:schema`, `schema_history:*`: from the state with the longest
//!   history (the source schema only gains columns or widens);
//!   `table_schema:*`: the first state's that has it; `meta:next_epoch`:
//!   the highest.
//! - `pcommit:*` (a replica's rows per output partition) and `rows:*`
//!   (rows per table per day): summed into replica 0, so the totals partition
//!   commit announces stay the same. What was announced (`pcluster:*` of
//!   replicas, or the one daemon's own `pcommit:` commit fields) goes to
//!   replica 0: into `pcluster:*` for replicas, into its `pcommit:`
//!   records for one daemon, so nothing is announced again as new.
//! - Each new state gets a fresh id (new output names) and `meta:replica`.
//! - Epoch records and hot-partition spreads are dropped. A state with a
//!   prepared epoch or an output file open is refused: start and stop that
//!   replica once (SIGTERM closes its files), then export it again.

use super::cluster_book::CLUSTER_PREFIX;
use super::identity::{K_REPLICA, K_STATE_ID, ReplicaClaim, new_state_id};
use super::open_files::{CHUNK_PREFIX, OPEN_PREFIX};
use super::pcommit::PCOMMIT_PREFIX;
use super::tools::KeyValue;
use super::{
    EpochRecord, EpochState, K_NEXT_EPOCH, K_PRUNED_BELOW, K_SCHEMA, K_SPREAD, K_VERSION,
    K_WATERMARK, PartitionRecord, ROWS_PREFIX, STATE_VERSION, StateError, encode,
};
use crate::cluster::shard::shard_of;
use std::collections::BTreeMap;

const SCHEMA_HISTORY_PREFIX: &str = "schema_history:";

#[derive(Debug, thiserror::Error)]
pub enum ReshardError {
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    State(#[from] StateError),
    #[error("{path}: {source}")]
    Dump {
        path: String,
        source: super::tools::ToolError,
    },
}

/// Reads the dumps at `inputs`, re-splits them for `replicas` and writes
/// `<out_dir>/replica-<j>.jsonl` for each new replica (written to a
/// temporary name, then renamed). Returns each file and its file records.
pub fn reshard_dumps(
    inputs: &[std::path::PathBuf],
    replicas: u32,
    out_dir: &std::path::Path,
    now_ms: i64,
) -> Result<Vec<(std::path::PathBuf, usize)>, ReshardError> {
    let dump_err = |path: &std::path::Path, source: super::tools::ToolError| ReshardError::Dump {
        path: path.display().to_string(),
        source,
    };
    let mut dumps = Vec::new();
    for p in inputs {
        let f = std::fs::File::open(p).map_err(|e| dump_err(p, e.into()))?;
        let entries =
            super::tools::read_dump(&mut std::io::BufReader::new(f)).map_err(|e| dump_err(p, e))?;
        dumps.push(entries);
    }
    let r = reshard(&dumps, replicas)?;
    std::fs::create_dir_all(out_dir).map_err(|e| dump_err(out_dir, e.into()))?;
    let mut out = Vec::new();
    for (j, (entries, files)) in r.states.iter().zip(r.files).enumerate() {
        let path = out_dir.join(format!("replica-{j}.jsonl"));
        let tmp = path.with_extension("partial");
        let write = || -> Result<(), super::tools::ToolError> {
            let mut f = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
            super::tools::write_dump(&mut f, entries, now_ms)?;
            f.into_inner().map_err(|e| e.into_error())?.sync_all()?;
            std::fs::rename(&tmp, &path)?;
            Ok(())
        };
        write().map_err(|e| dump_err(&path, e))?;
        out.push((path, files));
    }
    Ok(out)
}

/// The new states' entries, one list per new replica (key order), and how
/// many file records each got.
#[derive(Debug)]
pub struct Resharded {
    pub states: Vec<Vec<KeyValue>>,
    pub files: Vec<usize>,
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn json<T: for<'de> serde::Deserialize<'de>>(k: &[u8], v: &[u8]) -> Result<T, ReshardError> {
    serde_json::from_slice(v).map_err(|e| ReshardError::Refused(format!("entry {}: {e}", text(k))))
}

/// Re-splits `dumps` (the entries of every old replica's state, any order)
/// into `replicas` new states.
pub fn reshard(dumps: &[Vec<KeyValue>], replicas: u32) -> Result<Resharded, ReshardError> {
    if replicas == 0 || replicas > crate::config::cluster::MAX_REPLICAS {
        return Err(ReshardError::Refused(format!(
            "--replicas must be between 1 and {}",
            crate::config::cluster::MAX_REPLICAS
        )));
    }
    // Which old replica each dump is, and that they are all there.
    let mut claims = Vec::new();
    for d in dumps {
        let c = match d.iter().find(|(k, _)| k.as_slice() == K_REPLICA.as_bytes()) {
            Some((k, v)) => json::<ReplicaClaim>(k, v)?,
            None => ReplicaClaim {
                v: 1,
                replica: 0,
                replicas: 1,
            },
        };
        claims.push((c.replica, c.replicas));
    }
    let old_n = claims.first().map_or(0, |c| c.1);
    let mut seen: Vec<u32> = claims.iter().map(|c| c.0).collect();
    seen.sort_unstable();
    if claims.iter().any(|c| c.1 != old_n) || seen != (0..old_n).collect::<Vec<_>>() {
        return Err(ReshardError::Refused(format!(
            "the dumps must be the states of every replica of one cluster, each once; they are (replica, of): {claims:?}"
        )));
    }
    let mut out: Vec<BTreeMap<Vec<u8>, Vec<u8>>> = vec![BTreeMap::new(); replicas as usize];
    let mut files = vec![0usize; replicas as usize];
    let (mut next_epoch, mut watermark, mut pruned) = (1u64, None::<i64>, None::<i64>);
    let mut pcommit: BTreeMap<Vec<u8>, PartitionRecord> = BTreeMap::new();
    let mut rows: BTreeMap<Vec<u8>, u64> = BTreeMap::new();
    let mut shared: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    // What was announced per leaf: from the cluster's book (`pcluster:`)
    // when the old states were replicas, from the one daemon's own records
    // (`pcommit:`) when it was one.
    let mut announced: BTreeMap<(String, String), PartitionRecord> = BTreeMap::new();
    // The longest schema history wins: (its length, its entries).
    let mut schema: (usize, Vec<KeyValue>) = (0, Vec::new());
    for (d, (old, _)) in dumps.iter().zip(&claims) {
        let mut history = Vec::new();
        for (k, v) in d {
            let key = text(k);
            let max = |cur: Option<i64>| -> Result<Option<i64>, ReshardError> {
                let x: i64 = json(k, v)?;
                Ok(Some(cur.map_or(x, |c| c.max(x))))
            };
            match key.as_str() {
                K_VERSION => {
                    let found: u32 = json(k, v)?;
                    if found > STATE_VERSION {
                        return Err(StateError::TooNew {
                            dir: format!("the dump of replica {old}"),
                            found,
                        }
                        .into());
                    }
                }
                K_STATE_ID | K_REPLICA | K_SPREAD => {}
                K_NEXT_EPOCH => next_epoch = next_epoch.max(json(k, v)?),
                K_WATERMARK => watermark = max(watermark)?,
                K_PRUNED_BELOW => pruned = max(pruned)?,
                K_SCHEMA => history.push((k.clone(), v.clone())),
                _ if key.starts_with(SCHEMA_HISTORY_PREFIX) => history.push((k.clone(), v.clone())),
                _ if key.starts_with(OPEN_PREFIX) || key.starts_with(CHUNK_PREFIX) => {
                    return Err(ReshardError::Refused(format!(
                        "replica {old} has an output file open ({key}): start it and stop it with SIGTERM (which closes its files), export it again, then reshard"
                    )));
                }
                _ if key.starts_with("epoch:") => {
                    let e: EpochRecord = json(k, v)?;
                    if e.state == EpochState::Prepared {
                        return Err(ReshardError::Refused(format!(
                            "replica {old} has epoch {} prepared and not committed: start it once (recovery commits it) and stop it, export it again, then reshard",
                            e.epoch
                        )));
                    }
                }
                _ if key.starts_with("file:") => {
                    let path = key.strip_prefix("file:").unwrap_or_default();
                    let j = shard_of(path, replicas) as usize;
                    if let (Some(o), Some(n)) = (out.get_mut(j), files.get_mut(j)) {
                        o.insert(k.clone(), v.clone());
                        *n += 1;
                    }
                }
                _ if key.starts_with(PCOMMIT_PREFIX) => {
                    let r: PartitionRecord = json(k, v)?;
                    let e = pcommit.entry(k.clone()).or_insert_with(|| PartitionRecord {
                        v: r.v,
                        table: r.table.clone(),
                        partition: r.partition.clone(),
                        ..Default::default()
                    });
                    e.rows += r.rows;
                    e.files += r.files;
                    if old_n == 1 && r.committed_before() {
                        announced.insert((r.table.clone(), r.partition.clone()), r);
                    }
                }
                _ if key.starts_with(ROWS_PREFIX) => {
                    *rows.entry(k.clone()).or_default() += json::<u64>(k, v)?;
                }
                _ if key.starts_with(CLUSTER_PREFIX) => {
                    let r: PartitionRecord = json(k, v)?;
                    announced.insert((r.table.clone(), r.partition.clone()), r);
                }
                _ if key.starts_with("table_schema:") => {
                    shared.entry(k.clone()).or_insert_with(|| v.clone());
                }
                _ => {
                    return Err(ReshardError::Refused(format!(
                        "replica {old}'s state holds {key:?}, which this sluice does not know how to re-split; use the sluice that wrote it"
                    )));
                }
            }
        }
        if history.len() > schema.0 {
            schema = (history.len(), history);
        }
    }
    for (j, o) in out.iter_mut().enumerate() {
        o.insert(K_VERSION.into(), encode(&STATE_VERSION));
        o.insert(K_STATE_ID.into(), encode(&new_state_id()?));
        let claim = ReplicaClaim {
            v: 1,
            replica: j as u32,
            replicas,
        };
        o.insert(K_REPLICA.into(), encode(&claim));
        o.insert(K_NEXT_EPOCH.into(), encode(&next_epoch));
        if let Some(w) = watermark {
            o.insert(K_WATERMARK.into(), encode(&w));
        }
        if let Some(p) = pruned {
            o.insert(K_PRUNED_BELOW.into(), encode(&p));
        }
        for (k, v) in &schema.1 {
            o.insert(k.clone(), v.clone());
        }
        for (k, v) in &shared {
            o.insert(k.clone(), v.clone());
        }
        if j == 0 {
            // Replica 0 commits: what was announced goes into its book
            // (replicas) or into its own records (one daemon).
            for (k, r) in &pcommit {
                let mut r = r.clone();
                if let Some(a) = announced.get(&(r.table.clone(), r.partition.clone()))
                    && replicas == 1
                {
                    r.committed_rows = a.committed_rows.min(r.rows);
                    r.committed_at_ms = a.committed_at_ms;
                    r.late_count = a.late_count;
                }
                o.insert(k.clone(), encode(&r));
            }
            if replicas > 1 {
                for ((table, partition), a) in &announced {
                    let r = PartitionRecord {
                        v: 1,
                        table: table.clone(),
                        partition: partition.clone(),
                        rows: a.committed_rows,
                        files: a.files,
                        committed_rows: a.committed_rows,
                        committed_at_ms: a.committed_at_ms,
                        late_count: a.late_count,
                        ..Default::default()
                    };
                    let key = format!("{CLUSTER_PREFIX}{table}\0{partition}");
                    o.insert(key.into_bytes(), encode(&r));
                }
            }
            for (k, n) in &rows {
                o.insert(k.clone(), encode(n));
            }
        }
    }
    Ok(Resharded {
        states: out.into_iter().map(|o| o.into_iter().collect()).collect(),
        files,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::{FileRecord, FileStatus};

    fn file(path: &str) -> KeyValue {
        let r = FileRecord {
            v: 1,
            size: 1,
            mtime_ms: 1,
            status: FileStatus::Done,
            splits: vec![],
            changed_reported: false,
        };
        (format!("file:{path}").into_bytes(), encode(&r))
    }

    fn claim(i: u32, n: u32) -> KeyValue {
        (
            K_REPLICA.into(),
            encode(&ReplicaClaim {
                v: 1,
                replica: i,
                replicas: n,
            }),
        )
    }

    fn pc(rows: u64) -> KeyValue {
        let r = PartitionRecord {
            v: 1,
            table: "t".into(),
            partition: "dt=2026-11-20/hour=01".into(),
            rows,
            files: 1,
            ..Default::default()
        };
        (
            format!("{PCOMMIT_PREFIX}t\0dt=2026-11-20/hour=01").into_bytes(),
            encode(&r),
        )
    }

    #[test]
    fn two_replicas_become_three_with_every_file_once_and_the_totals_kept() {
        let paths: Vec<String> = (0..40).map(|i| format!("dt=1/p-{i}.parquet")).collect();
        let mut a = vec![claim(0, 2), pc(5)];
        let mut b = vec![
            claim(1, 2),
            pc(7),
            (K_WATERMARK.into(), encode(&50i64)),
            (K_NEXT_EPOCH.into(), encode(&9u64)),
        ];
        a.push((K_WATERMARK.into(), encode(&40i64)));
        for p in &paths {
            if shard_of(p, 2) == 0 {
                a.push(file(p));
            } else {
                b.push(file(p));
            }
        }
        let r = reshard(&[b, a], 3).unwrap();
        assert_eq!(r.files.iter().sum::<usize>(), 40);
        let mut ids = Vec::new();
        for (j, s) in r.states.iter().enumerate() {
            let get = |k: &str| s.iter().find(|(x, _)| x.as_slice() == k.as_bytes());
            let (_, c) = get(K_REPLICA).unwrap();
            let c: ReplicaClaim = serde_json::from_slice(c).unwrap();
            assert_eq!((c.replica, c.replicas), (j as u32, 3));
            assert_eq!(get(K_WATERMARK).unwrap().1, encode(&50i64));
            assert_eq!(get(K_NEXT_EPOCH).unwrap().1, encode(&9u64));
            ids.push(get(K_STATE_ID).unwrap().1.clone());
            for (k, _) in s.iter().filter(|(k, _)| k.starts_with(b"file:")) {
                let p = text(k).replacen("file:", "", 1);
                assert_eq!(shard_of(&p, 3), j as u32, "{p}");
            }
            let pcs: Vec<PartitionRecord> = s
                .iter()
                .filter(|(k, _)| k.starts_with(PCOMMIT_PREFIX.as_bytes()))
                .map(|(_, v)| serde_json::from_slice(v).unwrap())
                .collect();
            if j == 0 {
                assert_eq!((pcs[0].rows, pcs[0].files), (12, 2));
            } else {
                assert!(pcs.is_empty());
            }
        }
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 3, "fresh state ids");
    }

    #[test]
    fn what_was_announced_moves_between_one_daemon_and_replicas() {
        let mut one = pc(12);
        let mut r: PartitionRecord = serde_json::from_slice(&one.1).unwrap();
        r.committed_rows = 12;
        r.committed_at_ms = Some(7);
        one.1 = encode(&r);
        // One daemon -> 2 replicas: replica 0's book says 12 announced.
        let two = reshard(&[vec![one]], 2).unwrap();
        let book: Vec<PartitionRecord> = two.states[0]
            .iter()
            .filter(|(k, _)| k.starts_with(CLUSTER_PREFIX.as_bytes()))
            .map(|(_, v)| serde_json::from_slice(v).unwrap())
            .collect();
        assert_eq!(book.len(), 1);
        assert_eq!(
            (book[0].committed_rows, book[0].committed_at_ms),
            (12, Some(7))
        );
        // ... and back to one daemon: its own record says 12 announced.
        let back = reshard(&two.states, 1).unwrap();
        let own: Vec<PartitionRecord> = back.states[0]
            .iter()
            .filter(|(k, _)| k.starts_with(PCOMMIT_PREFIX.as_bytes()))
            .map(|(_, v)| serde_json::from_slice(v).unwrap())
            .collect();
        assert_eq!((own[0].rows, own[0].committed_rows), (12, 12));
        assert!(
            !back.states[0]
                .iter()
                .any(|(k, _)| k.starts_with(CLUSTER_PREFIX.as_bytes()))
        );
    }

    #[test]
    fn incomplete_sets_open_files_and_prepared_epochs_are_refused() {
        let e = reshard(&[vec![claim(0, 2)]], 3).unwrap_err().to_string();
        assert!(e.contains("every replica"), "{e}");
        let e = reshard(&[vec![claim(0, 2)], vec![claim(0, 2)]], 3)
            .unwrap_err()
            .to_string();
        assert!(e.contains("each once"), "{e}");
        let open = (b"open:x".to_vec(), b"{}".to_vec());
        let e = reshard(&[vec![open]], 2).unwrap_err().to_string();
        assert!(e.contains("SIGTERM"), "{e}");
        let ep = EpochRecord {
            v: 1,
            epoch: 4,
            state: EpochState::Prepared,
            created_ms: 1,
            files: vec![],
        };
        let e = reshard(&[vec![(b"epoch:4".to_vec(), encode(&ep))]], 2)
            .unwrap_err()
            .to_string();
        assert!(e.contains("epoch 4 prepared"), "{e}");
        // One daemon's state (no claim) splits into two.
        let r = reshard(&[vec![file("a"), file("b"), file("c")]], 2).unwrap();
        assert_eq!(r.files.iter().sum::<usize>(), 3);
    }
}
