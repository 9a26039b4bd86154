//! The port space of one host: who holds each local port, and which ports a
//! new socket may use.
//!
//! Socket semantics live here, once, so every allocator gets them for free:
//! - per local address, a count of holders per port (connections, TIME_WAIT
//!   entries, bind() owners) and a `busy` bitset, for exclusive allocation
//!   (bind(0), or an OS whose connect() never shares a port);
//! - per flow (local address, destination), an `occ` bitset of ports whose
//!   4-tuple is taken by a connection or TIME_WAIT entry, and a `reusable`
//!   bitset of TIME_WAIT entries old enough for `tcp_tw_reuse`; flows are
//!   allocated when first used and recycled when empty, so memory follows the
//!   flows in flight, not the number of destinations;
//! - a global count of bind() owners per port, which keeps connect() off ports
//!   that bind() holds (Linux keys its bind buckets by port alone).
//!
//! An allocator sees this through [`Candidates`], a read-only view for one
//! request that yields usable ports 64 at a time.

use super::fastmap::FastMap;

use super::bitset::{select_in_word, valid_mask, words_for, Bitset};

/// Sentinel for "never freed".
const NEVER: u64 = u64::MAX;

struct AddrState {
    holders: Vec<u32>,
    busy: Bitset,
    busy_count: u32,
    freed_at: Vec<u64>,
    ever: Bitset,
}

struct FlowBits {
    occ: Bitset,
    reusable: Bitset,
    /// Bits set in `occ`, and in `reusable`.
    count: u32,
    reusable_count: u32,
}

pub struct PortSpace {
    n: u32,
    reserved: Bitset,
    reserved_count: u32,
    bind_count: Vec<u32>,
    /// Sockets holding a port through bind(), over all ports.
    bind_total: u64,
    bind_bits: Bitset,
    addrs: Vec<AddrState>,
    flow_slot: FastMap<u64, u32>,
    flows: Vec<FlowBits>,
    free_flows: Vec<u32>,
    zero: Vec<u64>,
    in_use: u32,
}

/// How a request competes for ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sharing {
    /// Only the exact 4-tuple must be unique (Linux/FreeBSD connect()).
    FourTuple,
    /// The port must be unused on the local address (bind(0), macOS connect()).
    Exclusive,
}

impl PortSpace {
    /// `n` ports (indices `0..n`), `addresses` local addresses, `reserved` indices.
    pub fn new(n: u32, addresses: u32, reserved: impl IntoIterator<Item = u32>) -> Self {
        let mut r = Bitset::new(n);
        for i in reserved {
            r.set(i);
        }
        let addrs = (0..addresses)
            .map(|_| AddrState {
                holders: vec![0; n as usize],
                busy: Bitset::new(n),
                busy_count: 0,
                freed_at: vec![NEVER; n as usize],
                ever: Bitset::new(n),
            })
            .collect();
        PortSpace {
            n,
            reserved_count: r.count_ones(),
            reserved: r,
            bind_total: 0,
            bind_count: vec![0; n as usize],
            bind_bits: Bitset::new(n),
            addrs,
            flow_slot: FastMap::default(),
            flows: Vec::new(),
            free_flows: Vec::new(),
            zero: vec![0; words_for(n)],
            in_use: 0,
        }
    }

    pub fn size(&self) -> u32 {
        self.n
    }

    /// (address, port) pairs held by anything.
    pub fn in_use(&self) -> u32 {
        self.in_use
    }

    /// Distinct (address, port) pairs ever handed out.
    pub fn distinct_used(&self) -> u32 {
        self.addrs.iter().map(|a| a.ever.count_ones()).sum()
    }

    /// The usable ports for one request.
    pub fn candidates(&self, addr: u32, flow: u64, sharing: Sharing) -> Candidates<'_> {
        let a = &self.addrs[addr as usize];
        let free = self.n - self.reserved_count;
        let (mask, usable) = match sharing {
            Sharing::Exclusive => (
                Mask::Exclusive {
                    busy: a.busy.words(),
                },
                Some(free - a.busy_count),
            ),
            Sharing::FourTuple => {
                let (occ, reusable, taken) = match self.flow_slot.get(&flow) {
                    Some(&s) => {
                        let f = &self.flows[s as usize];
                        (
                            f.occ.words(),
                            f.reusable.words(),
                            f.count - f.reusable_count,
                        )
                    }
                    None => (&self.zero[..], &self.zero[..], 0),
                };
                let mask = Mask::FourTuple {
                    bind: self.bind_bits.words(),
                    occ,
                    reusable,
                };
                // With bind() owners about, the count needs a scan.
                (mask, (self.bind_total == 0).then(|| free - taken))
            }
        };
        Candidates {
            n: self.n,
            reserved: self.reserved.words(),
            mask,
            usable,
        }
    }

    /// Is `port` taken for this flow by a TIME_WAIT entry (the allocator chose
    /// to take it over)?
    pub fn is_reusable_tw(&self, flow: u64, port: u32) -> bool {
        self.flow_slot
            .get(&flow)
            .is_some_and(|&s| self.flows[s as usize].reusable.get(port))
    }

    /// A new socket takes `port`. Returns how long the port had been free, when
    /// it was free on this address and had been used before.
    pub fn occupy(&mut self, addr: u32, flow: u64, port: u32, bind: bool, now: u64) -> Option<u64> {
        let a = &mut self.addrs[addr as usize];
        let p = port as usize;
        let mut interval = None;
        if a.holders[p] == 0 {
            if a.freed_at[p] != NEVER {
                interval = Some(now - a.freed_at[p]);
            }
            a.busy.set(port);
            a.busy_count += 1;
            a.ever.set(port);
            self.in_use += 1;
        }
        a.holders[p] += 1;
        if bind {
            self.bind_total += 1;
            self.bind_count[p] += 1;
            self.bind_bits.set(port);
        }
        let slot = self.flow_slot_or_new(flow);
        let f = &mut self.flows[slot as usize];
        f.occ.set(port);
        f.count += 1;
        interval
    }

    /// A TIME_WAIT entry of this flow reached `tw_reuse_delay`.
    pub fn mark_reusable(&mut self, flow: u64, port: u32) {
        if let Some(&s) = self.flow_slot.get(&flow) {
            let f = &mut self.flows[s as usize];
            if !f.reusable.get(port) {
                f.reusable.set(port);
                f.reusable_count += 1;
            }
        }
    }

    /// A connect() takes over the TIME_WAIT 4-tuple of this flow: the entry
    /// goes, the connection stays on the same port.
    pub fn take_over(&mut self, flow: u64, port: u32) {
        if let Some(&s) = self.flow_slot.get(&flow) {
            let f = &mut self.flows[s as usize];
            if f.reusable.get(port) {
                f.reusable.clear(port);
                f.reusable_count -= 1;
            }
        }
    }

    /// A socket (connection or TIME_WAIT entry) lets go of `port`.
    pub fn release(&mut self, addr: u32, flow: u64, port: u32, bind: bool, now: u64) {
        let a = &mut self.addrs[addr as usize];
        let p = port as usize;
        a.holders[p] -= 1;
        if a.holders[p] == 0 {
            a.busy.clear(port);
            a.busy_count -= 1;
            a.freed_at[p] = now;
            self.in_use -= 1;
        }
        if bind {
            self.bind_total -= 1;
            self.bind_count[p] -= 1;
            if self.bind_count[p] == 0 {
                self.bind_bits.clear(port);
            }
        }
        if let Some(&s) = self.flow_slot.get(&flow) {
            let f = &mut self.flows[s as usize];
            f.occ.clear(port);
            if f.reusable.get(port) {
                f.reusable.clear(port);
                f.reusable_count -= 1;
            }
            f.count -= 1;
            if f.count == 0 {
                self.flow_slot.remove(&flow);
                self.free_flows.push(s);
            }
        }
    }

    fn flow_slot_or_new(&mut self, flow: u64) -> u32 {
        if let Some(&s) = self.flow_slot.get(&flow) {
            return s;
        }
        let s = match self.free_flows.pop() {
            Some(s) => s,
            None => {
                self.flows.push(FlowBits {
                    occ: Bitset::new(self.n),
                    reusable: Bitset::new(self.n),
                    count: 0,
                    reusable_count: 0,
                });
                (self.flows.len() - 1) as u32
            }
        };
        self.flow_slot.insert(flow, s);
        s
    }
}

enum Mask<'a> {
    Exclusive {
        busy: &'a [u64],
    },
    FourTuple {
        bind: &'a [u64],
        occ: &'a [u64],
        reusable: &'a [u64],
    },
}

/// Ports of word `w` a connect() to this flow may not take: held by bind(),
/// or by this flow's 4-tuple unless it is a TIME_WAIT entry ready for reuse.
#[inline(always)]
fn four_tuple_taken(bind: &[u64], occ: &[u64], reusable: &[u64], w: usize) -> u64 {
    bind[w] | (occ[w] & !reusable[w])
}

/// The ports one request may use, as a read-only view of the port space.
pub struct Candidates<'a> {
    n: u32,
    reserved: &'a [u64],
    mask: Mask<'a>,
    /// The number of usable ports when it is known without a scan.
    usable: Option<u32>,
}

impl Candidates<'_> {
    /// Number of ports in the range (usable or not).
    pub fn range(&self) -> u32 {
        self.n
    }

    /// Usable ports among indices `64*w .. 64*w+63`, as bits.
    #[inline]
    pub fn word(&self, w: usize) -> u64 {
        let taken = match self.mask {
            Mask::Exclusive { busy } => busy[w],
            Mask::FourTuple {
                bind,
                occ,
                reusable,
            } => four_tuple_taken(bind, occ, reusable, w),
        };
        !(self.reserved[w] | taken) & valid_mask(w, self.n)
    }

    #[inline]
    pub fn is_usable(&self, i: u32) -> bool {
        self.word((i >> 6) as usize) >> (i & 63) & 1 == 1
    }

    /// The first usable port at or after `start`, wrapping around the range,
    /// with the number of ports examined to reach it (1 when `start` is usable).
    #[inline]
    pub fn scan_from(&self, start: u32) -> Option<(u32, u32)> {
        debug_assert!(start < self.n);
        if self.usable == Some(0) {
            return None;
        }
        // One tight loop per mask kind: the match stays out of the word loop.
        let found = match self.mask {
            Mask::Exclusive { busy } => self.scan_words(start, |w| busy[w]),
            Mask::FourTuple {
                bind,
                occ,
                reusable,
            } => self.scan_words(start, |w| four_tuple_taken(bind, occ, reusable, w)),
        }?;
        Some((found, (found + self.n - start) % self.n + 1))
    }

    #[inline(always)]
    fn scan_words(&self, start: u32, taken: impl Fn(usize) -> u64) -> Option<u32> {
        let words = self.reserved.len();
        let first_w = (start >> 6) as usize;
        let usable = |w: usize| !(self.reserved[w] | taken(w)) & valid_mask(w, self.n);
        let bits = usable(first_w) & (!0u64 << (start & 63));
        if bits != 0 {
            return Some(first_w as u32 * 64 + bits.trailing_zeros());
        }
        for w in (first_w + 1..words).chain(0..=first_w) {
            let bits = usable(w);
            if bits != 0 {
                return Some(w as u32 * 64 + bits.trailing_zeros());
            }
        }
        None
    }

    /// Number of usable ports.
    pub fn count(&self) -> u32 {
        if let Some(u) = self.usable {
            debug_assert_eq!(
                u,
                (0..words_for(self.n))
                    .map(|w| self.word(w).count_ones())
                    .sum::<u32>()
            );
            return u;
        }
        (0..words_for(self.n))
            .map(|w| self.word(w).count_ones())
            .sum()
    }

    /// The `k`-th usable port in index order (`k < count()`).
    pub fn select(&self, mut k: u32) -> Option<u32> {
        for w in 0..words_for(self.n) {
            let bits = self.word(w);
            let c = bits.count_ones();
            if k < c {
                return Some(w as u32 * 64 + select_in_word(bits, k));
            }
            k -= c;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn four_tuple_sharing_and_exclusive_binds() {
        let mut s = PortSpace::new(100, 1, [5]);
        // Port 0 taken for flow 1: flow 2 may still use it, exclusive may not.
        s.occupy(0, 1, 0, false, 0);
        assert!(!s.candidates(0, 1, Sharing::FourTuple).is_usable(0));
        assert!(s.candidates(0, 2, Sharing::FourTuple).is_usable(0));
        assert!(!s.candidates(0, 2, Sharing::Exclusive).is_usable(0));
        // Reserved ports are never usable.
        assert!(!s.candidates(0, 2, Sharing::FourTuple).is_usable(5));
        // A bind() owner keeps connect() of every flow away.
        s.occupy(0, 3, 1, true, 0);
        assert!(!s.candidates(0, 2, Sharing::FourTuple).is_usable(1));
        assert_eq!(s.in_use(), 2);
        s.release(0, 1, 0, false, 10);
        assert_eq!(s.occupy(0, 1, 0, false, 25), Some(15));
    }

    #[test]
    fn scan_wraps_and_counts_probes() {
        let mut s = PortSpace::new(130, 1, []);
        for p in 0..130 {
            if p != 3 {
                s.occupy(0, 1, p, false, 0);
            }
        }
        let c = s.candidates(0, 1, Sharing::FourTuple);
        assert_eq!(c.count(), 1);
        assert_eq!(c.scan_from(100), Some((3, 130 - 100 + 3 + 1)));
        assert_eq!(c.scan_from(3), Some((3, 1)));
        assert_eq!(c.select(0), Some(3));
        s.occupy(0, 1, 3, false, 0);
        assert_eq!(s.candidates(0, 1, Sharing::FourTuple).scan_from(7), None);
    }

    #[test]
    fn reusable_time_wait_is_usable_again() {
        let mut s = PortSpace::new(64, 1, []);
        s.occupy(0, 1, 9, false, 0);
        assert!(!s.candidates(0, 1, Sharing::FourTuple).is_usable(9));
        s.mark_reusable(1, 9);
        assert!(s.candidates(0, 1, Sharing::FourTuple).is_usable(9));
        assert!(s.is_reusable_tw(1, 9));
        s.take_over(1, 9);
        assert!(!s.candidates(0, 1, Sharing::FourTuple).is_usable(9));
    }
}
