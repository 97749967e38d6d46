//! Which replica owns a source file. Pure. The hash is part of the state's
//! meaning (a replica's records only hold its own shard's files), so it must
//! never change between versions: FNV-1a, 64 bits, over the UTF-8 bytes of
//! the path relative to the source root (`/`-separated, as discovery lists
//! it), modulo the number of replicas. The test vectors below pin it.

use crate::config::Cluster;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a 64 of `bytes`.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(FNV_OFFSET, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(FNV_PRIME)
    })
}

/// The replica (0-based) of `replicas` that owns the source file `path`.
pub fn shard_of(path: &str, replicas: u32) -> u32 {
    if replicas <= 1 {
        return 0;
    }
    (fnv1a64(path.as_bytes()) % u64::from(replicas)) as u32
}

/// A replica's shard: the files it discovers and reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    pub replica: u32,
    pub replicas: u32,
}

impl Shard {
    /// Every file (one replica).
    pub const ALL: Shard = Shard {
        replica: 0,
        replicas: 1,
    };

    pub fn of(cluster: &Cluster) -> Shard {
        Shard {
            replica: cluster.replica,
            replicas: cluster.replicas,
        }
    }

    /// Whether this shard owns the source file `path` (relative to the root).
    pub fn owns(&self, path: &str) -> bool {
        self.replicas <= 1 || shard_of(path, self.replicas) == self.replica
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_never_changes() {
        // FNV-1a 64 reference vectors, and paths as discovery lists them.
        assert_eq!(fnv1a64(b""), 0xcbf29ce484222325);
        assert_eq!(fnv1a64(b"a"), 0xaf63dc4c8601ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x85944171f73967e8);
        assert_eq!(shard_of("dt=2026-11-20/hour=13/part-0.parquet", 3), 2);
        assert_eq!(shard_of("dt=2026-11-20/hour=13/part-1.parquet", 3), 0);
        assert_eq!(shard_of("dt=2026-11-20/hour=13/part-2.parquet", 3), 0);
        assert_eq!(shard_of("dt=2026-11-20/hour=14/part-0.parquet", 2), 0);
        assert_eq!(shard_of("日志/a.parquet", 7), 3);
        assert_eq!(shard_of("anything", 1), 0);
    }

    #[test]
    fn every_file_has_exactly_one_owner_and_shards_are_balanced() {
        for n in 1..=5u32 {
            let mut counts = vec![0u32; n as usize];
            for f in 0..3000 {
                let p = format!(
                    "dt=2026-11-{:02}/hour={:02}/part-{f}.parquet",
                    f % 28,
                    f % 24
                );
                let owners: Vec<u32> = (0..n)
                    .filter(|&i| {
                        Shard {
                            replica: i,
                            replicas: n,
                        }
                        .owns(&p)
                    })
                    .collect();
                assert_eq!(owners.len(), 1, "{p} of {n}");
                counts[owners[0] as usize] += 1;
            }
            let fair = 3000 / n;
            assert!(counts.iter().all(|&c| c > fair * 8 / 10), "{n}: {counts:?}");
        }
    }
}
