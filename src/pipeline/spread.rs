//! Hot partitions: which (table, partition)s are written by more than one
//! writer thread. Each (table, partition) has a home writer (a stable
//! hash); when one takes so much of the traffic that its writer is the
//! bottleneck, its rows are spread over `factor` writers, each with its own
//! file, and drawn back to one as it cools. No ratio to tune: the decision
//! comes from what each checkpoint measured (how busy the writers were, and
//! each partition's share of the bytes), and the factors are kept in the
//! state so a restart begins where the last run left off.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// (table, partition) -> writers it is spread over (only entries above 1).
pub type Factors = BTreeMap<(String, String), u32>;

/// What one epoch measured.
#[derive(Debug, Default, Clone)]
pub struct Load {
    /// Bytes each (table, partition) took.
    pub bytes: HashMap<(String, String), u64>,
    /// Per writer thread: the fraction of the epoch it spent encoding
    /// (0..1).
    pub busy: Vec<f64>,
}

/// A writer busier than this is a bottleneck.
const BUSY: f64 = 0.75;

/// The factors for the next epoch. A partition is spread when the writers
/// were busy and its bytes are more than one writer's fair share (total /
/// writers): it gets as many writers as shares it takes, up to all. A
/// spread partition steps down one writer per epoch while its share would
/// fit in one writer fewer, and leaves the table at one. Pure.
pub fn decide(prev: &Factors, load: &Load) -> Factors {
    let writers = load.busy.len().max(1) as u32;
    let total: u64 = load.bytes.values().sum();
    let mut next = Factors::new();
    if writers < 2 || total == 0 {
        return next;
    }
    let busiest = load.busy.iter().cloned().fold(0.0, f64::max);
    let fair = total as f64 / writers as f64;
    for (key, &bytes) in &load.bytes {
        let want = ((bytes as f64 / fair).ceil() as u32).clamp(1, writers);
        let had = prev.get(key).copied().unwrap_or(1);
        let f = if want > had && busiest >= BUSY {
            want
        } else if want < had {
            had - 1
        } else {
            had
        };
        if f > 1 {
            next.insert(key.clone(), f);
        }
    }
    // Spread partitions that took nothing this epoch cool down too.
    for (key, &had) in prev {
        if !load.bytes.contains_key(key) && had > 2 {
            next.insert(key.clone(), had - 1);
        }
    }
    next
}

/// The factors as the state keeps them (`meta:spread`).
#[derive(Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Stored {
    pub v: u32,
    pub factors: Vec<(String, String, u32)>,
}

impl Stored {
    pub fn from_factors(f: &Factors) -> Stored {
        Stored {
            v: 1,
            factors: f
                .iter()
                .map(|((t, p), n)| (t.clone(), p.clone(), *n))
                .collect(),
        }
    }

    pub fn into_factors(self) -> Factors {
        self.factors
            .into_iter()
            .map(|(t, p, n)| ((t, p), n))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(p: &str) -> (String, String) {
        ("t".to_string(), p.to_string())
    }

    fn load(bytes: &[(&str, u64)], busy: &[f64]) -> Load {
        Load {
            bytes: bytes.iter().map(|(p, b)| (key(p), *b)).collect(),
            busy: busy.to_vec(),
        }
    }

    #[test]
    fn a_hot_partition_is_spread_when_its_writer_is_busy() {
        let l = load(&[("hot", 900), ("a", 50), ("b", 50)], &[1.0, 0.1]);
        let f = decide(&Factors::new(), &l);
        assert_eq!(f, [(key("hot"), 2)].into());
        // Four writers: 900 of 1000 is 3.6 fair shares.
        let l = load(&[("hot", 900), ("a", 100)], &[1.0, 0.1, 0.1, 0.1]);
        assert_eq!(decide(&Factors::new(), &l), [(key("hot"), 4)].into());
    }

    #[test]
    fn idle_writers_or_an_even_load_spread_nothing() {
        let l = load(&[("hot", 900), ("a", 100)], &[0.3, 0.1]);
        assert!(decide(&Factors::new(), &l).is_empty(), "not a bottleneck");
        let l = load(&[("a", 500), ("b", 500)], &[1.0, 1.0]);
        assert!(decide(&Factors::new(), &l).is_empty(), "fair shares");
        let l = load(&[("hot", 900)], &[1.0]);
        assert!(decide(&Factors::new(), &l).is_empty(), "one writer");
    }

    #[test]
    fn a_cooling_partition_steps_down_one_writer_per_epoch() {
        let prev: Factors = [(key("hot"), 4)].into();
        let l = load(&[("hot", 100), ("a", 900)], &[0.2, 0.2, 0.2, 0.2]);
        let f = decide(&prev, &l);
        assert_eq!(f.get(&key("hot")), Some(&3));
        let f = decide(&f, &load(&[("a", 10)], &[0.1, 0.1, 0.1, 0.1]));
        assert_eq!(f.get(&key("hot")), Some(&2));
        let f = decide(&f, &load(&[("a", 10)], &[0.1, 0.1, 0.1, 0.1]));
        assert!(f.is_empty());
        // Still hot: stays.
        let prev: Factors = [(key("hot"), 2)].into();
        let l = load(&[("hot", 900), ("a", 100)], &[0.2, 0.2]);
        assert_eq!(decide(&prev, &l), prev);
    }

    #[test]
    fn stored_round_trip() {
        let f: Factors = [(key("hot"), 3)].into();
        let s = Stored::from_factors(&f);
        let json = serde_json::to_string(&s).unwrap();
        let back: Stored = serde_json::from_str(&json).unwrap();
        assert_eq!(back.into_factors(), f);
    }
}
