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
//!
//! Near exhaustion a linear probe would walk hundreds of full words, so each
//! bitset that decides usability has a one-bit-per-word summary of words that
//! may still hold a usable port; a scan visits only those. The summary is kept
//! exact for reserved ports and 4-tuples and conservative for bind() owners
//! (a marked word may turn out full, never the other way round).

use std::cell::Cell;

pub mod bitset;
pub mod fastmap;
pub mod pool;

use fastmap::FastMap;

use bitset::{select_in_word, words_for, Bitset};

/// Sentinel for "never freed".
const NEVER: u64 = u64::MAX;

/// The ports of one local address that something holds.
pub(super) struct Pool {
    busy: Bitset,
    busy_count: u32,
    /// Words of `busy` with a port neither busy nor reserved.
    open: Bitset,
    /// When each port was last freed (`NEVER` if it has not been); with
    /// `busy`, also which ports were ever handed out.
    freed_at: Vec<u64>,
}

impl Pool {
    /// An empty pool of `n` ports whose words with an unreserved port are `unreserved`.
    pub(super) fn new(n: u32, unreserved: &Bitset) -> Self {
        Pool {
            busy: Bitset::new(n),
            busy_count: 0,
            open: unreserved.clone(),
            freed_at: vec![NEVER; n as usize],
        }
    }

    /// `port` (free) becomes busy at `now`; returns how long it had been
    /// free, if it had been used before.
    #[inline]
    pub(super) fn take(&mut self, port: u32, blocked: &Bitset, now: u64) -> Option<u64> {
        let w = (port >> 6) as usize;
        let p = port as usize;
        self.busy.set(port);
        self.busy_count += 1;
        note_taken(&mut self.open, self.busy.words()[w], blocked.words()[w], w);
        let freed = self.freed_at[p];
        (freed != NEVER).then(|| now - freed)
    }

    /// `port` (busy) is free again at `now`.
    #[inline]
    pub(super) fn free(&mut self, port: u32, now: u64) {
        self.busy.clear(port);
        self.busy_count -= 1;
        self.open.set(port >> 6);
        self.freed_at[port as usize] = now;
    }

    pub(super) fn busy_count(&self) -> u32 {
        self.busy_count
    }

    /// Ports handed out at least once: held now, or freed once.
    pub(super) fn distinct_used(&self) -> u32 {
        self.freed_at
            .iter()
            .enumerate()
            .filter(|&(p, &f)| f != NEVER || self.busy.get(p as u32))
            .count() as u32
    }

    /// The ports a request that needs the port to itself may use.
    #[inline]
    pub(super) fn candidates<'a>(
        &'a self,
        n: u32,
        free: u32,
        blocked: &'a Bitset,
    ) -> Candidates<'a> {
        Candidates {
            n,
            blocked: blocked.words(),
            mask: Mask::Exclusive {
                busy: self.busy.words(),
            },
            open: self.open.words(),
            usable: Some(free - self.busy_count),
        }
    }
}

struct FlowBits {
    key: u64,
    occ: Bitset,
    reusable: Bitset,
    /// Words with a port neither reserved nor taken (`occ` and not `reusable`).
    open: Bitset,
    /// Bits set in `occ`, and in `reusable`.
    count: u32,
    reusable_count: u32,
}

pub struct PortSpace {
    n: u32,
    /// Ports no socket may take: the reserved ones, and the bits past the
    /// range in the last word (so scans need no range mask).
    blocked: Bitset,
    reserved_count: u32,
    bind_count: Vec<u32>,
    /// Sockets holding a port through bind(), over all ports.
    bind_total: u64,
    bind_bits: Bitset,
    addrs: Vec<Pool>,
    /// Sockets holding each port, per address.
    holders: Vec<Vec<u32>>,
    flow_slot: FastMap<u64, u32>,
    /// The last flow looked up, and its slot: most runs talk to few flows.
    last_flow: Cell<Option<(u64, u32)>>,
    flows: Vec<FlowBits>,
    free_flows: Vec<u32>,
    zero: Vec<u64>,
    /// Words with a port that is not reserved.
    unreserved: Bitset,
}

/// What a socket taking a port changed.
pub struct Occupied {
    /// The flow's slot.
    pub flow: u32,
    /// The port was free on its address before.
    pub newly_busy: bool,
    /// How long it had been free, when it had been used before.
    pub interval: Option<u64>,
}

/// A socket taking a port: the arguments of [`Ports::occupy`].
#[derive(Debug, Clone, Copy)]
pub struct Take {
    /// Local address.
    pub addr: u32,
    /// Flow key (local address, destination).
    pub key: u64,
    /// The flow's slot when the caller already looked it up (`flow(key)`).
    pub slot: Option<u32>,
    /// Port index.
    pub port: u32,
    /// Held through bind() (exclusive of every flow's connect()).
    pub bind: bool,
    pub now: u64,
}

/// A socket letting go of its port: the arguments of [`Ports::release`].
#[derive(Debug, Clone, Copy)]
pub struct Release {
    /// Local address.
    pub addr: u32,
    /// The flow's slot.
    pub slot: u32,
    /// Port index.
    pub port: u32,
    /// Held through bind().
    pub bind: bool,
    pub now: u64,
}

/// How a request competes for ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sharing {
    /// Only the exact 4-tuple must be unique (Linux/FreeBSD connect()).
    FourTuple,
    /// The port must be unused on the local address (bind(0), macOS connect()).
    Exclusive,
}

/// After a port of word `w` was taken: clear bit `w` of the word summary
/// `open` if no port of the word is left.
#[inline]
fn note_taken(open: &mut Bitset, taken: u64, blocked: u64, w: usize) {
    if taken | blocked == !0 {
        open.clear(w as u32);
    }
}

/// What the engine asks of a host's port state. [`PortSpace`] answers for
/// every scenario; [`pool::AddressPools`] only for those where one
/// bitset per address says it all, and faster.
pub trait Ports {
    /// The slot of flow `key`, if any port is taken for it.
    fn flow(&self, key: u64) -> Option<u32>;
    /// The usable ports for one request on local address `addr` to the flow
    /// in slot `flow` (`None`: a flow with nothing taken yet).
    fn candidates(&self, addr: u32, flow: Option<u32>, sharing: Sharing) -> Candidates<'_>;
    /// A new socket of flow `key` takes `port` at `now`.
    fn occupy(&mut self, take: Take) -> Occupied;
    /// A socket of flow `slot` lets go of `port`; whether the port is now free.
    fn release(&mut self, release: Release) -> bool;
    /// Is `port` taken for flow `slot` by a TIME_WAIT entry ready for reuse?
    fn is_reusable_tw(&self, slot: u32, port: u32) -> bool;
    /// A TIME_WAIT entry of flow `slot` reached `tw_reuse_delay`.
    fn mark_reusable(&mut self, slot: u32, port: u32);
    /// A connect() takes over the TIME_WAIT 4-tuple of flow `slot`.
    fn take_over(&mut self, slot: u32, port: u32);
    /// Distinct (address, port) pairs ever handed out.
    fn distinct_used(&self) -> u32;
}

impl Ports for PortSpace {
    #[inline]
    fn flow(&self, key: u64) -> Option<u32> {
        if let Some((k, s)) = self.last_flow.get() {
            if k == key {
                return Some(s);
            }
        }
        let s = self.flow_slot.get(&key).copied();
        if let Some(s) = s {
            self.last_flow.set(Some((key, s)));
        }
        s
    }

    fn candidates(&self, addr: u32, flow: Option<u32>, sharing: Sharing) -> Candidates<'_> {
        let free = self.n - self.reserved_count;
        let (mask, open, usable) = match sharing {
            Sharing::Exclusive => {
                return self.addrs[addr as usize].candidates(self.n, free, &self.blocked)
            }
            Sharing::FourTuple => {
                let (occ, reusable, open, taken) = match flow {
                    Some(s) => {
                        let f = &self.flows[s as usize];
                        (
                            f.occ.words(),
                            f.reusable.words(),
                            f.open.words(),
                            f.count - f.reusable_count,
                        )
                    }
                    None => (&self.zero[..], &self.zero[..], self.unreserved.words(), 0),
                };
                let mask = Mask::FourTuple {
                    bind: self.bind_bits.words(),
                    occ,
                    reusable,
                };
                // With bind() owners about, the count needs a scan.
                (mask, open, (self.bind_total == 0).then(|| free - taken))
            }
        };
        Candidates {
            n: self.n,
            blocked: self.blocked.words(),
            mask,
            open,
            usable,
        }
    }

    fn occupy(&mut self, take: Take) -> Occupied {
        let Take {
            addr,
            key,
            slot,
            port,
            bind,
            now,
        } = take;
        let w = (port >> 6) as usize;
        let blocked = self.blocked.words()[w];
        let p = port as usize;
        let holders = &mut self.holders[addr as usize][p];
        let newly_busy = *holders == 0;
        *holders += 1;
        let interval = if newly_busy {
            self.addrs[addr as usize].take(port, &self.blocked, now)
        } else {
            None
        };
        if bind {
            self.bind_total += 1;
            self.bind_count[p] += 1;
            self.bind_bits.set(port);
        }
        let slot = match slot {
            Some(s) => s,
            None => self.flow_or_new(key),
        };
        let f = &mut self.flows[slot as usize];
        f.occ.set(port);
        f.count += 1;
        note_taken(
            &mut f.open,
            f.occ.words()[w] & !f.reusable.words()[w],
            blocked,
            w,
        );
        Occupied {
            flow: slot,
            newly_busy,
            interval,
        }
    }

    /// The socket may be a connection or a TIME_WAIT entry; the port is
    /// free once no socket of any flow holds it.
    fn release(&mut self, release: Release) -> bool {
        let Release {
            addr,
            slot,
            port,
            bind,
            now,
        } = release;
        let p = port as usize;
        let holders = &mut self.holders[addr as usize][p];
        *holders -= 1;
        let freed = *holders == 0;
        if freed {
            self.addrs[addr as usize].free(port, now);
        }
        if bind {
            self.bind_total -= 1;
            self.bind_count[p] -= 1;
            if self.bind_count[p] == 0 {
                self.bind_bits.clear(port);
            }
        }
        let f = &mut self.flows[slot as usize];
        f.occ.clear(port);
        f.open.set(port >> 6);
        if f.reusable.get(port) {
            f.reusable.clear(port);
            f.reusable_count -= 1;
        }
        f.count -= 1;
        if f.count == 0 {
            let key = f.key;
            self.flow_slot.remove(&key);
            if self.last_flow.get().is_some_and(|(k, _)| k == key) {
                self.last_flow.set(None);
            }
            self.free_flows.push(slot);
        }
        freed
    }

    fn is_reusable_tw(&self, slot: u32, port: u32) -> bool {
        self.flows[slot as usize].reusable.get(port)
    }

    fn mark_reusable(&mut self, slot: u32, port: u32) {
        let f = &mut self.flows[slot as usize];
        if !f.reusable.get(port) {
            f.reusable.set(port);
            f.reusable_count += 1;
            f.open.set(port >> 6);
        }
    }

    /// The entry goes, the connection stays on the same port.
    fn take_over(&mut self, slot: u32, port: u32) {
        let w = (port >> 6) as usize;
        let blocked = self.blocked.words()[w];
        let f = &mut self.flows[slot as usize];
        if f.reusable.get(port) {
            f.reusable.clear(port);
            f.reusable_count -= 1;
            note_taken(
                &mut f.open,
                f.occ.words()[w] & !f.reusable.words()[w],
                blocked,
                w,
            );
        }
    }

    fn distinct_used(&self) -> u32 {
        // A port was handed out if it is held now or was freed once.
        self.addrs.iter().map(Pool::distinct_used).sum()
    }
}

/// The ports no socket may take (reserved, and the padding past the range
/// in the last word) and the words that hold at least one other port.
pub(super) fn blocked_and_unreserved(
    n: u32,
    reserved: impl IntoIterator<Item = u32>,
) -> (Bitset, u32, Bitset) {
    let mut r = Bitset::new(n);
    for i in reserved {
        r.set(i);
    }
    let reserved_count = r.count_ones();
    let words = words_for(n);
    for i in n..words as u32 * 64 {
        r.set(i); // padding: reads as taken
    }
    let mut unreserved = Bitset::new(words as u32);
    for w in 0..words {
        if r.words()[w] != !0 {
            unreserved.set(w as u32);
        }
    }
    (r, reserved_count, unreserved)
}

impl PortSpace {
    /// `n` ports (indices `0..n`), `addresses` local addresses, `reserved` indices.
    pub fn new(n: u32, addresses: u32, reserved: impl IntoIterator<Item = u32>) -> Self {
        let (r, reserved_count, unreserved) = blocked_and_unreserved(n, reserved);
        let words = words_for(n);
        let addrs = (0..addresses).map(|_| Pool::new(n, &unreserved)).collect();
        let holders = (0..addresses).map(|_| vec![0; n as usize]).collect();
        PortSpace {
            n,
            reserved_count,
            blocked: r,
            bind_total: 0,
            bind_count: vec![0; n as usize],
            bind_bits: Bitset::new(n),
            addrs,
            holders,
            flow_slot: FastMap::default(),
            last_flow: Cell::new(None),
            flows: Vec::new(),
            free_flows: Vec::new(),
            zero: vec![0; words],
            unreserved,
        }
    }

    pub fn size(&self) -> u32 {
        self.n
    }

    /// (address, port) pairs held by anything.
    pub fn in_use(&self) -> u32 {
        self.addrs.iter().map(Pool::busy_count).sum()
    }

    fn flow_or_new(&mut self, key: u64) -> u32 {
        if let Some(s) = self.flow(key) {
            return s;
        }
        let s = match self.free_flows.pop() {
            Some(s) => {
                let f = &mut self.flows[s as usize];
                f.key = key;
                f.open = self.unreserved.clone();
                s
            }
            None => {
                self.flows.push(FlowBits {
                    key,
                    occ: Bitset::new(self.n),
                    reusable: Bitset::new(self.n),
                    open: self.unreserved.clone(),
                    count: 0,
                    reusable_count: 0,
                });
                (self.flows.len() - 1) as u32
            }
        };
        self.flow_slot.insert(key, s);
        self.last_flow.set(Some((key, s)));
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
    /// Reserved ports and the bits past the range.
    blocked: &'a [u64],
    mask: Mask<'a>,
    /// One bit per word of ports: clear only if the word has no usable port
    /// (set bits may still have none, when bind() owners fill them).
    open: &'a [u64],
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
        !(self.blocked[w] | taken)
    }

    #[inline]
    pub fn is_usable(&self, i: u32) -> bool {
        self.word((i >> 6) as usize) >> (i & 63) & 1 == 1
    }

    /// The first usable port at or after `start`, wrapping around the range.
    #[inline]
    pub fn scan_from(&self, start: u32) -> Option<u32> {
        self.scan_pattern(start, !0)
    }

    /// The first usable port of `start`'s parity at or after `start`,
    /// wrapping around the range (a scan stepping by two through an
    /// even-sized range).
    #[inline]
    pub fn scan_parity(&self, start: u32) -> Option<u32> {
        const EVEN: u64 = 0x5555_5555_5555_5555;
        self.scan_pattern(start, if start % 2 == 0 { EVEN } else { !EVEN })
    }

    /// The first usable port at or after `start` whose bit is set in
    /// `pattern` (the same mask for every word), wrapping around the range.
    #[inline]
    fn scan_pattern(&self, start: u32, pattern: u64) -> Option<u32> {
        debug_assert!(start < self.n);
        if self.usable == Some(0) {
            return None;
        }
        // One tight loop per mask kind: the match stays out of the word loop.
        match self.mask {
            Mask::Exclusive { busy } => self.scan_words(start, |w| busy[w] | !pattern),
            Mask::FourTuple {
                bind,
                occ,
                reusable,
            } => self.scan_words(start, |w| {
                four_tuple_taken(bind, occ, reusable, w) | !pattern
            }),
        }
    }

    /// Ports a linear probe from `start` examines to reach `found`, both
    /// included (1 when `start` itself is taken).
    #[inline]
    pub fn probes(&self, start: u32, found: u32) -> u32 {
        if found >= start {
            found - start + 1
        } else {
            found + self.n - start + 1
        }
    }

    /// Scan from `start`: the rest of its word, then only the words the
    /// summary marks open, in circular order, ending with `start`'s own word.
    #[inline(always)]
    fn scan_words(&self, start: u32, taken: impl Fn(usize) -> u64) -> Option<u32> {
        let first_w = (start >> 6) as usize;
        let usable = |w: usize| !(self.blocked[w] | taken(w));
        let bits = usable(first_w) & (!0u64 << (start & 63));
        if bits != 0 {
            return Some(first_w as u32 * 64 + bits.trailing_zeros());
        }
        let sw = self.open.len();
        let next = first_w + 1;
        let mut si = next >> 6;
        for step in 0..=sw {
            if si >= sw {
                si = 0;
            }
            let mut m = self.open[si];
            if step == 0 {
                m &= !0u64 << (next & 63);
            }
            while m != 0 {
                let w = si * 64 + m.trailing_zeros() as usize;
                let bits = usable(w);
                if bits != 0 {
                    return Some(w as u32 * 64 + bits.trailing_zeros());
                }
                m &= m - 1;
            }
            si += 1;
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
    use rand::{RngExt, SeedableRng};

    fn cand(s: &PortSpace, key: u64, sharing: Sharing) -> Candidates<'_> {
        s.candidates(0, s.flow(key), sharing)
    }

    #[test]
    fn four_tuple_sharing_and_exclusive_binds() {
        let mut s = PortSpace::new(100, 1, [5]);
        // Port 0 taken for flow 1: flow 2 may still use it, exclusive may not.
        let f1 = s
            .occupy(Take {
                addr: 0,
                key: 1,
                slot: None,
                port: 0,
                bind: false,
                now: 0,
            })
            .flow;
        assert!(!cand(&s, 1, Sharing::FourTuple).is_usable(0));
        assert!(cand(&s, 2, Sharing::FourTuple).is_usable(0));
        assert!(!cand(&s, 2, Sharing::Exclusive).is_usable(0));
        // Reserved ports are never usable.
        assert!(!cand(&s, 2, Sharing::FourTuple).is_usable(5));
        // A bind() owner keeps connect() of every flow away.
        s.occupy(Take {
            addr: 0,
            key: 3,
            slot: None,
            port: 1,
            bind: true,
            now: 0,
        });
        assert!(!cand(&s, 2, Sharing::FourTuple).is_usable(1));
        assert_eq!(s.in_use(), 2);
        s.release(Release {
            addr: 0,
            slot: f1,
            port: 0,
            bind: false,
            now: 10,
        });
        assert_eq!(s.flow(1), None);
        assert_eq!(
            s.occupy(Take {
                addr: 0,
                key: 1,
                slot: None,
                port: 0,
                bind: false,
                now: 25
            })
            .interval,
            Some(15)
        );
    }

    #[test]
    fn scan_wraps_and_counts_probes() {
        let mut s = PortSpace::new(130, 1, []);
        for p in 0..130 {
            if p != 3 {
                s.occupy(Take {
                    addr: 0,
                    key: 1,
                    slot: None,
                    port: p,
                    bind: false,
                    now: 0,
                });
            }
        }
        let c = cand(&s, 1, Sharing::FourTuple);
        assert_eq!(c.count(), 1);
        assert_eq!(c.scan_from(100), Some(3));
        assert_eq!(c.probes(100, 3), 130 - 100 + 3 + 1);
        assert_eq!(c.scan_from(3), Some(3));
        assert_eq!(c.probes(3, 3), 1);
        assert_eq!(c.select(0), Some(3));
        s.occupy(Take {
            addr: 0,
            key: 1,
            slot: None,
            port: 3,
            bind: false,
            now: 0,
        });
        assert_eq!(cand(&s, 1, Sharing::FourTuple).scan_from(7), None);
    }

    #[test]
    fn reusable_time_wait_is_usable_again() {
        let mut s = PortSpace::new(64, 1, []);
        let f = s
            .occupy(Take {
                addr: 0,
                key: 1,
                slot: None,
                port: 9,
                bind: false,
                now: 0,
            })
            .flow;
        assert!(!cand(&s, 1, Sharing::FourTuple).is_usable(9));
        s.mark_reusable(f, 9);
        assert!(cand(&s, 1, Sharing::FourTuple).is_usable(9));
        assert!(s.is_reusable_tw(f, 9));
        s.take_over(f, 9);
        assert!(!cand(&s, 1, Sharing::FourTuple).is_usable(9));
    }

    /// The word summary only skips words with nothing usable: after random
    /// occupies, releases, binds, reuse marks and take-overs, every scan
    /// finds what a port-by-port probe finds.
    #[test]
    fn summary_scan_matches_a_port_by_port_probe() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        for n in [1u32, 63, 64, 65, 200, 4096, 4100] {
            let reserved: Vec<u32> = (0..n)
                .filter(|p| p % 97 == 5 || (n > 300 && *p < 70))
                .collect();
            let mut s = PortSpace::new(n, 1, reserved);
            // (key, slot, port, bind) of every holder.
            let mut held: Vec<(u64, u32, u32, bool)> = Vec::new();
            for step in 0..4 * n as usize + 50 {
                let key = rng.random_range(0..3u64);
                let sharing = if rng.random_range(0..4) == 0 {
                    Sharing::Exclusive
                } else {
                    Sharing::FourTuple
                };
                let op = rng.random_range(0..10);
                if op < 6 {
                    let c = cand(&s, key, sharing);
                    let start = rng.random_range(0..n);
                    let probe = (0..n).map(|k| (start + k) % n).find(|&p| c.is_usable(p));
                    let got = c.scan_from(start);
                    assert_eq!(got, probe, "n {n} step {step} start {start}");
                    if let Some(p) = got {
                        if sharing == Sharing::FourTuple
                            && s.flow(key).is_some_and(|f| s.is_reusable_tw(f, p))
                        {
                            s.take_over(s.flow(key).unwrap(), p);
                        } else {
                            let bind = rng.random_range(0..8) == 0;
                            let slot = s
                                .occupy(Take {
                                    addr: 0,
                                    key,
                                    slot: None,
                                    port: p,
                                    bind,
                                    now: step as u64,
                                })
                                .flow;
                            held.push((key, slot, p, bind));
                        }
                    }
                } else if op < 9 && !held.is_empty() {
                    let i = rng.random_range(0..held.len());
                    let (_, slot, p, bind) = held.swap_remove(i);
                    s.release(Release {
                        addr: 0,
                        slot,
                        port: p,
                        bind,
                        now: step as u64,
                    });
                } else if !held.is_empty() {
                    let i = rng.random_range(0..held.len());
                    let (_, slot, p, bind) = held[i];
                    if !bind {
                        s.mark_reusable(slot, p);
                    }
                }
            }
        }
    }
}
