//! The split queue readers pull from, and the barrier. An idle reader pulls
//! the next split; nothing is pushed to a busy reader. For a checkpoint the
//! coordinator raises `stop`: readers finish the batch in hand, put the rest
//! of their split back at the front of the queue, and go idle; the barrier is
//! reached when no reader is busy. A split put back after an I/O error
//! waits here until its retry time, taken by no reader and holding no
//! barrier.

use crate::split::SplitId;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Instant;

/// A split to read from `offset` on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkItem {
    pub split: SplitId,
    pub offset: u64,
}

#[derive(Default)]
struct Inner {
    items: VecDeque<WorkItem>,
    /// Splits to retry after an I/O error, each not before its time.
    later: Vec<(Instant, WorkItem)>,
    stop: bool,
    closed: bool,
    busy: usize,
}

#[derive(Default)]
pub struct WorkQueue {
    inner: Mutex<Inner>,
    cv: Condvar,
    /// Mirror of `stop` that readers check between batches without locking.
    stop_flag: AtomicBool,
}

impl WorkQueue {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A poisoned lock means a reader panicked; the queue itself is still consistent.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn push(&self, item: WorkItem) {
        self.lock().items.push_back(item);
        self.cv.notify_all();
    }

    /// Puts an unfinished split back at the front (it keeps its place).
    pub fn push_front(&self, item: WorkItem) {
        self.lock().items.push_front(item);
        self.cv.notify_all();
    }

    /// Puts a split back after an I/O error: no reader takes it before `at`.
    pub fn push_at(&self, item: WorkItem, at: Instant) {
        self.lock().later.push((at, item));
        self.cv.notify_all();
    }

    /// Blocks until an item can be taken; `None` once closed. Marks the caller busy.
    pub fn pop(&self) -> Option<WorkItem> {
        let mut g = self.lock();
        loop {
            if g.closed {
                return None;
            }
            if !g.stop {
                let now = Instant::now();
                while let Some(i) = g.later.iter().position(|(at, _)| *at <= now) {
                    let (_, item) = g.later.swap_remove(i);
                    g.items.push_back(item);
                }
                if let Some(item) = g.items.pop_front() {
                    g.busy += 1;
                    return Some(item);
                }
            }
            let next = g.later.iter().map(|(at, _)| *at).min();
            g = match next {
                Some(at) if !g.stop => {
                    let wait = at.saturating_duration_since(Instant::now());
                    self.cv
                        .wait_timeout(g, wait)
                        .unwrap_or_else(|p| p.into_inner())
                        .0
                }
                _ => self.cv.wait(g).unwrap_or_else(|p| p.into_inner()),
            };
        }
    }

    /// The caller finished (or put back) the item it took.
    pub fn done(&self) {
        let mut g = self.lock();
        g.busy = g.busy.saturating_sub(1);
        drop(g);
        self.cv.notify_all();
    }

    pub fn stop_requested(&self) -> bool {
        self.stop_flag.load(Ordering::Acquire)
    }

    /// Raises the barrier and waits until no reader is busy.
    pub fn barrier(&self) {
        let mut g = self.lock();
        g.stop = true;
        self.stop_flag.store(true, Ordering::Release);
        while g.busy > 0 {
            g = self.cv.wait(g).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Lowers the barrier.
    pub fn resume(&self) {
        let mut g = self.lock();
        g.stop = false;
        self.stop_flag.store(false, Ordering::Release);
        drop(g);
        self.cv.notify_all();
    }

    /// Readers exit on their next pop.
    pub fn close(&self) {
        self.lock().closed = true;
        self.cv.notify_all();
    }

    /// Drops queued splits of `file` (it was quarantined).
    pub fn remove_file(&self, file: &str) {
        let mut g = self.lock();
        g.items.retain(|i| i.split.file != file);
        g.later.retain(|(_, i)| i.split.file != file);
    }

    /// Splits waiting to retry after an I/O error.
    pub fn retrying(&self) -> usize {
        self.lock().later.len()
    }

    /// (queued, busy)
    pub fn sizes(&self) -> (usize, usize) {
        let g = self.lock();
        (g.items.len(), g.busy)
    }

    /// True when nothing is queued or waiting to retry and no reader is busy.
    pub fn is_idle(&self) -> bool {
        let g = self.lock();
        g.items.is_empty() && g.later.is_empty() && g.busy == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn item(i: usize) -> WorkItem {
        WorkItem {
            split: SplitId {
                file: "f".into(),
                index: i,
            },
            offset: 0,
        }
    }

    #[test]
    fn barrier_waits_for_busy_readers_and_blocks_pops() {
        let q = Arc::new(WorkQueue::default());
        q.push(item(0));
        q.push(item(1));
        let got = q.pop().unwrap();
        assert_eq!(got, item(0));
        let q2 = q.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(50));
            assert!(q2.stop_requested());
            q2.push_front(WorkItem {
                offset: 7,
                ..item(0)
            });
            q2.done();
        });
        q.barrier();
        t.join().unwrap();
        assert_eq!(q.sizes(), (2, 0));
        q.resume();
        assert_eq!(q.pop().unwrap().offset, 7);
        q.done();
        q.close();
        assert!(q.pop().is_none());
    }

    #[test]
    fn a_split_waiting_to_retry_is_taken_at_its_time_and_never_holds_a_barrier() {
        let q = Arc::new(WorkQueue::default());
        let t0 = Instant::now();
        q.push_at(item(3), t0 + std::time::Duration::from_millis(150));
        assert!(!q.is_idle());
        assert_eq!(q.retrying(), 1);
        // Nobody holds it: the barrier passes at once.
        q.barrier();
        q.resume();
        let got = q.pop().unwrap();
        assert_eq!(got, item(3));
        assert!(t0.elapsed() >= std::time::Duration::from_millis(150));
        q.done();
        assert!(q.is_idle());
        q.push_at(item(4), Instant::now() + std::time::Duration::from_secs(60));
        q.remove_file("f");
        assert!(q.is_idle());
    }
}
