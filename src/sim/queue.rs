//! Timer lanes for the event loop.
//!
//! Most timers in this model come out in time order and need no heap: a
//! constant TIME_WAIT, a constant retry delay, a constant hold time. Those go
//! in a FIFO lane (`VecDeque`: O(1) push and pop). Only random hold times need
//! a heap, and that heap holds just the connections open at once, not the
//! TIME_WAIT entries, which are usually far more numerous. Retries with a
//! growing or jittered backoff are the other exception ([`Retries`]).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

use rand::RngExt;
use rand_chacha::ChaCha8Rng;

use crate::scenario::{Backoff, Retry};

/// Timers `(time_ns, item)`, popped in time order; ties in insertion order.
pub enum Lane<T = u32> {
    Fifo(VecDeque<(u64, T)>),
    Heap {
        heap: BinaryHeap<Reverse<(u64, u64, T)>>,
        seq: u64,
    },
}

impl<T: Copy + Ord> Lane<T> {
    /// A FIFO lane when timers are known to arrive in order, else a heap.
    pub fn new(in_order: bool) -> Self {
        if in_order {
            Lane::Fifo(VecDeque::new())
        } else {
            Lane::Heap {
                heap: BinaryHeap::new(),
                seq: 0,
            }
        }
    }

    #[inline]
    pub fn push(&mut self, t: u64, item: T) {
        match self {
            Lane::Fifo(q) => {
                debug_assert!(q.back().is_none_or(|b| b.0 <= t), "FIFO lane out of order");
                q.push_back((t, item));
            }
            Lane::Heap { heap, seq } => {
                heap.push(Reverse((t, *seq, item)));
                *seq += 1;
            }
        }
    }

    #[inline]
    pub fn peek_time(&self) -> u64 {
        match self {
            Lane::Fifo(q) => q.front().map_or(u64::MAX, |e| e.0),
            Lane::Heap { heap, .. } => heap.peek().map_or(u64::MAX, |Reverse(e)| e.0),
        }
    }

    #[inline]
    pub fn pop(&mut self) -> Option<(u64, T)> {
        match self {
            Lane::Fifo(q) => q.pop_front(),
            Lane::Heap { heap, .. } => heap.pop().map(|Reverse((t, _, i))| (t, i)),
        }
    }
}

/// The delay before the retry after `tries` retries of `retry` (`None`:
/// none is left), drawing its jitter from `rng` only when it has any, so
/// runs without jitter never touch the stream.
#[inline]
pub fn next_retry_delay(retry: Option<Retry>, tries: u32, rng: &mut ChaCha8Rng) -> Option<u64> {
    let r = retry.filter(|r| tries < r.max)?;
    let u = if r.jittered() {
        rng.random::<f64>()
    } else {
        0.0
    };
    Some(r.delay_ns(tries + 1, u))
}

/// Failed requests waiting to be tried again: a FIFO lane with a fixed
/// delay (retries come due in failure order), a heap when the delay grows
/// or is drawn at random.
pub struct Retries<T> {
    lane: Lane<T>,
    retry: Option<Retry>,
    rng: ChaCha8Rng,
}

impl<T: Copy + Ord> Retries<T> {
    /// The retries of `retry`, drawing jitter from `rng` when it has any.
    pub fn new(retry: Option<Retry>, rng: ChaCha8Rng) -> Self {
        let fixed = retry.is_none_or(|r| r.backoff == Backoff::Fixed);
        Retries {
            lane: Lane::new(fixed),
            retry,
            rng,
        }
    }

    /// Request `item` failed at `t` after `tries` retries: queue retry
    /// `tries + 1` and return true, or false when it has none left.
    #[inline]
    pub fn schedule(&mut self, t: u64, tries: u32, item: impl FnOnce(u32) -> T) -> bool {
        match next_retry_delay(self.retry, tries, &mut self.rng) {
            Some(delay) => {
                self.lane.push(t.saturating_add(delay), item(tries + 1));
                true
            }
            None => false,
        }
    }

    #[inline]
    pub fn peek_time(&self) -> u64 {
        self.lane.peek_time()
    }

    #[inline]
    pub fn pop(&mut self) -> Option<(u64, T)> {
        self.lane.pop()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_lanes_pop_in_time_order_with_stable_ties() {
        let mut h = Lane::new(false);
        for (t, i) in [(5, 0), (1, 1), (5, 2), (3, 3)] {
            h.push(t, i);
        }
        let order: Vec<_> = std::iter::from_fn(|| h.pop()).collect();
        assert_eq!(order, vec![(1, 1), (3, 3), (5, 0), (5, 2)]);
        let mut f = Lane::new(true);
        f.push(1, 7);
        f.push(1, 8);
        assert_eq!(f.peek_time(), 1);
        assert_eq!(
            (f.pop(), f.pop(), f.pop()),
            (Some((1, 7)), Some((1, 8)), None)
        );
    }
}
