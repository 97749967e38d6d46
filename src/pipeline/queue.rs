//! The split queue readers pull from, and the barrier. An idle reader pulls
//! the next split; nothing is pushed to a busy reader. For a checkpoint the
//! coordinator raises `stop`: readers finish the batch in hand, put the rest
//! of their split back at the front of the queue, and go idle; the barrier is
//! reached when no reader is busy.

use crate::split::SplitId;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};

/// A split to read from `offset` on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkItem {
    pub split: SplitId,
    pub offset: u64,
}

#[derive(Default)]
struct Inner {
    items: VecDeque<WorkItem>,
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

    /// Blocks until an item can be taken; `None` once closed. Marks the caller busy.
    pub fn pop(&self) -> Option<WorkItem> {
        let mut g = self.lock();
        loop {
            if g.closed {
                return None;
            }
            if !g.stop
                && let Some(item) = g.items.pop_front()
            {
                g.busy += 1;
                return Some(item);
            }
            g = self.cv.wait(g).unwrap_or_else(|p| p.into_inner());
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
        self.lock().items.retain(|i| i.split.file != file);
    }

    /// (queued, busy)
    pub fn sizes(&self) -> (usize, usize) {
        let g = self.lock();
        (g.items.len(), g.busy)
    }

    /// True when nothing is queued and no reader is busy.
    pub fn is_idle(&self) -> bool {
        let g = self.lock();
        g.items.is_empty() && g.busy == 0
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
}
