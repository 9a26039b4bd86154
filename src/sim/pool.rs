//! The port state of a host whose ports one bitset describes: one local
//! address, no `tcp_tw_reuse`, and either a single destination or sockets
//! that need their port to themselves (bind(0), or an OS whose connect()
//! never shares a port). Then "usable" is just "not busy": no per-port holder
//! counts, no flows, no bind() owners to track.
//!
//! [`super::ports::PortSpace`] gives the same answers for these scenarios
//! (a test runs both and compares every figure); this one does less work per
//! connection, and most scenarios have this shape.

use super::bitset::Bitset;
use super::ports::{blocked_and_unreserved, Candidates, Occupied, Pool, Ports, Sharing};
use crate::scenario::Scenario;

pub struct OnePool {
    n: u32,
    /// Ports in the range that are not reserved.
    free: u32,
    blocked: Bitset,
    pool: Pool,
}

impl OnePool {
    /// Whether one bitset describes the ports of `sc`'s host.
    pub fn fits(sc: &Scenario, sharing: Sharing, use_reuse: bool) -> bool {
        sc.host.addresses.len() == 1
            && !use_reuse
            && (sharing == Sharing::Exclusive || sc.destinations.len() == 1)
    }

    /// `n` ports (indices `0..n`), `reserved` indices.
    pub fn new(n: u32, reserved: impl IntoIterator<Item = u32>) -> Self {
        let (blocked, reserved_count, unreserved) = blocked_and_unreserved(n, reserved);
        OnePool {
            n,
            free: n - reserved_count,
            pool: Pool::new(n, &unreserved),
            blocked,
        }
    }
}

impl Ports for OnePool {
    /// One flow, in slot 0.
    #[inline]
    fn flow(&self, _: u64) -> Option<u32> {
        Some(0)
    }

    #[inline]
    fn candidates(&self, _: u32, _: Option<u32>, _: Sharing) -> Candidates<'_> {
        self.pool.candidates(self.n, self.free, &self.blocked)
    }

    /// A usable port is a free one, so it always becomes busy.
    #[inline]
    fn occupy(&mut self, _: u32, _: u64, _: Option<u32>, port: u32, _: bool, now: u64) -> Occupied {
        Occupied {
            flow: 0,
            newly_busy: true,
            interval: self.pool.take(port, &self.blocked, now),
        }
    }

    /// The only holder lets go, so the port is free.
    #[inline]
    fn release(&mut self, _: u32, _: u32, port: u32, _: bool, now: u64) -> bool {
        self.pool.free(port, now);
        true
    }

    // Without `tcp_tw_reuse` no TIME_WAIT entry is ever reusable.
    fn is_reusable_tw(&self, _: u32, _: u32) -> bool {
        false
    }
    fn mark_reusable(&mut self, _: u32, _: u32) {}
    fn take_over(&mut self, _: u32, _: u32) {}

    fn distinct_used(&self) -> u32 {
        self.pool.distinct_used()
    }
}
