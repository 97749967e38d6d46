//! A bound shared by the writer threads (`sink.max_open_files`,
//! `sink.max_buffered`): owns only the per-thread figures each thread
//! publishes; touches nothing else.
//!
//! Each thread may use its fair share of the bound, or whatever the other
//! threads leave of it, whichever is larger. Tables hash to threads, so one
//! thread can hold most of the partitions being written (or most of the
//! buffered rows); with an even split it would close files or cut row
//! groups early while the other thread's share went unused. A thread never
//! gets less than its fair share, so no thread can starve another: when
//! one has taken the slack and another then grows, the total exceeds the
//! bound until the first one's next write, which sees the smaller
//! allowance and sheds down to it. Figures are published after every write
//! message; an allowance is read from them at the same moments.

use std::sync::atomic::{AtomicU64, Ordering};

/// One bound over several writer threads.
#[derive(Debug)]
pub struct SharedBudget {
    limit: u64,
    used: Box<[AtomicU64]>,
}

impl SharedBudget {
    /// A bound of `limit` over `threads` threads (at least one).
    pub fn new(limit: u64, threads: usize) -> SharedBudget {
        SharedBudget {
            limit,
            used: (0..threads.max(1)).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// Records what `thread` uses now; returns what it used before.
    pub fn publish(&self, thread: usize, used: u64) -> u64 {
        self.used
            .get(thread)
            .map_or(0, |u| u.swap(used, Ordering::Relaxed))
    }

    /// What `thread` may use: its fair share of the bound, or what the
    /// other threads leave of it, whichever is larger.
    pub fn allowance(&self, thread: usize) -> u64 {
        let others: u64 = self
            .used
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != thread)
            .map(|(_, u)| u.load(Ordering::Relaxed))
            .fold(0u64, u64::saturating_add);
        let fair = self.limit / self.used.len() as u64;
        fair.max(self.limit.saturating_sub(others))
    }

    /// What every thread uses together.
    #[cfg(test)]
    fn total(&self) -> u64 {
        self.used
            .iter()
            .map(|u| u.load(Ordering::Relaxed))
            .fold(0u64, u64::saturating_add)
    }
}

#[cfg(test)]
mod tests {
    use super::SharedBudget;

    #[test]
    fn a_thread_gets_what_the_others_leave_and_never_less_than_its_share() {
        let b = SharedBudget::new(512, 2);
        assert_eq!(b.allowance(0), 512, "the others use nothing");
        assert_eq!(b.publish(1, 100), 0);
        assert_eq!(b.allowance(0), 412);
        b.publish(1, 400);
        assert_eq!(b.allowance(0), 256, "never under the fair share");
        b.publish(0, 300);
        assert_eq!(b.allowance(1), 256);
        assert_eq!(b.total(), 700);
    }

    #[test]
    fn the_total_comes_back_under_the_bound_once_each_thread_sheds_to_its_allowance() {
        // Thread 0 took the slack, then thread 1 grew to its share.
        let b = SharedBudget::new(512, 2);
        b.publish(0, b.allowance(0));
        b.publish(1, b.allowance(1));
        assert!(b.total() > 512);
        b.publish(0, b.allowance(0));
        assert_eq!(b.total(), 512);
    }

    #[test]
    fn one_thread_and_out_of_range_threads_are_harmless() {
        let b = SharedBudget::new(10, 0);
        assert_eq!(b.allowance(0), 10);
        assert_eq!(b.publish(5, 99), 0);
        assert_eq!(b.total(), 0);
        let huge = SharedBudget::new(u64::MAX, 3);
        huge.publish(0, u64::MAX);
        huge.publish(1, u64::MAX);
        assert_eq!(huge.allowance(2), u64::MAX / 3);
    }
}
