//! Timer lanes for the event loop.
//!
//! Most timers in this model come out in time order and need no heap: a
//! constant TIME_WAIT, a constant retry delay, a constant hold time. Those go
//! in a FIFO lane (`VecDeque`: O(1) push and pop). Only random hold times need
//! a heap, and that heap holds just the connections open at once, not the
//! TIME_WAIT entries, which are usually far more numerous.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

/// Timers `(time_ns, item)`, popped in time order; ties in insertion order.
pub enum Lane {
    Fifo(VecDeque<(u64, u32)>),
    Heap {
        heap: BinaryHeap<Reverse<(u64, u64, u32)>>,
        seq: u64,
    },
}

impl Lane {
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
    pub fn push(&mut self, t: u64, item: u32) {
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
    pub fn pop(&mut self) -> Option<(u64, u32)> {
        match self {
            Lane::Fifo(q) => q.pop_front(),
            Lane::Heap { heap, .. } => heap.pop().map(|Reverse((t, _, i))| (t, i)),
        }
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
