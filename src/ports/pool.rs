//! The port state of a host whose ports one bitset per local address
//! describes: no `tcp_tw_reuse`, and either a single destination (so each
//! address has one flow) or sockets that need their port to themselves
//! (bind(0), or an OS whose connect() never shares a port). Then "usable" is
//! just "not busy on this address": no per-port holder counts, no flows, no
//! bind() owners to track.
//!
//! [`super::PortSpace`] gives the same answers for these scenarios
//! (a test runs both and compares every figure); this one does less work per
//! connection, and most scenarios have this shape.

use std::sync::Arc;

use super::bitset::Bitset;
use super::{Candidates, Occupied, Pool, Ports, Range, Release, Sharing, Take};

pub struct AddressPools {
    n: u32,
    /// Ports in the range that are not reserved.
    free: u32,
    blocked: Arc<Bitset>,
    /// The first local address's pool, kept inline (most hosts have one
    /// address, and a fleet's hosts are read from a vector: one pointer
    /// fewer to follow), then the others'.
    first: Pool,
    more: Vec<Pool>,
}

impl AddressPools {
    /// Whether one bitset per address describes the ports of `sc`'s host.
    pub fn fits(destinations: usize, sharing: Sharing, use_reuse: bool) -> bool {
        !use_reuse && (sharing == Sharing::Exclusive || destinations == 1)
    }

    /// `n` ports (indices `0..n`) on each of `addresses` addresses, `reserved` indices.
    pub fn new(n: u32, addresses: u32, reserved: impl IntoIterator<Item = u32>) -> Self {
        Self::on(&Range::new(n, reserved), addresses, true)
    }

    /// `addresses` addresses of `range`'s ports; `timed`: reuse intervals are
    /// told (else [`Occupied::interval`] is always `None`, and the pools keep
    /// one bit per port, not eight bytes).
    pub fn on(range: &Range, addresses: u32, timed: bool) -> Self {
        AddressPools {
            n: range.n,
            free: range.usable(),
            first: Pool::new(range, timed),
            more: (1..addresses).map(|_| Pool::new(range, timed)).collect(),
            blocked: Arc::clone(&range.blocked),
        }
    }
}

impl AddressPools {
    #[inline(always)]
    fn pool(&self, addr: u32) -> &Pool {
        match addr {
            0 => &self.first,
            a => &self.more[a as usize - 1],
        }
    }

    #[inline(always)]
    fn pool_mut(&mut self, addr: u32) -> &mut Pool {
        match addr {
            0 => &mut self.first,
            a => &mut self.more[a as usize - 1],
        }
    }
}

impl Ports for AddressPools {
    /// Flows are not told apart: every one is slot 0.
    #[inline]
    fn flow(&self, _: u64) -> Option<u32> {
        Some(0)
    }

    #[inline(always)]
    fn candidates(&self, addr: u32, _: Option<u32>, _: Sharing) -> Candidates<'_> {
        self.pool(addr).candidates(self.n, self.free, &self.blocked)
    }

    /// A usable port is a free one, so it always becomes busy.
    #[inline(always)]
    fn occupy(&mut self, take: Take) -> Occupied {
        Occupied {
            flow: 0,
            newly_busy: true,
            interval: {
                let pool = match take.addr {
                    0 => &mut self.first,
                    a => &mut self.more[a as usize - 1],
                };
                pool.take(take.port, &self.blocked, take.now)
            },
        }
    }

    /// The only holder lets go, so the port is free.
    #[inline(always)]
    fn release(&mut self, release: Release) -> bool {
        self.pool_mut(release.addr).free(release.port, release.now);
        true
    }

    // Without `tcp_tw_reuse` no TIME_WAIT entry is ever reusable.
    fn is_reusable_tw(&self, _: u32, _: u32) -> bool {
        false
    }
    fn mark_reusable(&mut self, _: u32, _: u32) {}
    fn take_over(&mut self, _: u32, _: u32) {}

    fn distinct_used(&self) -> u32 {
        self.first.distinct_used() + self.more.iter().map(Pool::distinct_used).sum::<u32>()
    }
}
