//! The port space of one host: who holds each local port, and which ports a
//! new socket may use.
//!
//! Socket semantics live here, once, so every allocator gets them for free:
//! - per local address, a `busy` bitset of ports some socket (connection,
//!   TIME_WAIT entry, bind() owner) holds, for exclusive allocation (bind(0),
//!   or an OS whose connect() never shares a port), and a count of the
//!   further holders of the ports several sockets hold;
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

pub mod bitset;
mod candidates;
pub mod fastmap;
pub mod pool;
mod space;

pub use candidates::Candidates;
use candidates::Mask;
pub use space::PortSpace;

use std::sync::Arc;

use bitset::{words_for, Bitset};

/// Sentinel for "never freed".
const NEVER: u64 = u64::MAX;

/// The ports of one local address that something holds.
pub(super) struct Pool {
    busy: Bitset,
    busy_count: u32,
    /// Words of `busy` with a port neither busy nor reserved.
    open: Summary,
    /// When each port was last freed (`NEVER` if it has not been); with
    /// `busy`, also which ports were ever handed out. Empty when the pool
    /// is not timed ([`Range`]): then `ever` says which ports were used.
    freed_at: Vec<u64>,
    ever: Bitset,
}

impl Pool {
    /// An empty pool of `range`'s ports; `timed`: it keeps when each port
    /// was freed, to tell reuse intervals.
    pub(super) fn new(range: &Range, timed: bool) -> Self {
        let n = range.n;
        Pool {
            busy: Bitset::new(n),
            busy_count: 0,
            open: Summary::of(&range.unreserved),
            freed_at: if timed {
                vec![NEVER; n as usize]
            } else {
                Vec::new()
            },
            ever: if timed {
                Bitset::default()
            } else {
                Bitset::new(n)
            },
        }
    }

    /// `port` (free) becomes busy at `now`; returns how long it had been
    /// free, if it had been used before and the pool is timed.
    #[inline(always)]
    pub(super) fn take(&mut self, port: u32, blocked: &Bitset, now: u64) -> Option<u64> {
        let w = (port >> 6) as usize;
        let p = port as usize;
        self.busy.set(port);
        self.busy_count += 1;
        let full = self.busy.words()[w] | blocked.words()[w] == !0;
        self.open.clear_if(w as u32, full);
        if self.freed_at.is_empty() {
            self.ever.set(port);
            return None;
        }
        let freed = self.freed_at[p];
        (freed != NEVER).then(|| now - freed)
    }

    /// `port` (busy) is free again at `now`.
    #[inline(always)]
    pub(super) fn free(&mut self, port: u32, now: u64) {
        self.busy.clear(port);
        self.busy_count -= 1;
        self.open.set(port >> 6);
        if let Some(f) = self.freed_at.get_mut(port as usize) {
            *f = now;
        }
    }

    pub(super) fn busy_count(&self) -> u32 {
        self.busy_count
    }

    /// Ports handed out at least once: held now, or freed once.
    pub(super) fn distinct_used(&self) -> u32 {
        if self.freed_at.is_empty() {
            return self.ever.count_ones();
        }
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

/// The one-bit-per-word summary of a pool's `busy` bitset, kept in the
/// pool itself rather than on the heap: a range has at most 65,536 ports,
/// so 1,024 words, so 16 summary words, and the summary is read with the
/// pool's other fields instead of from a line of its own.
#[derive(Clone)]
struct Summary {
    words: [u64; 16],
    len: u8,
}

impl Summary {
    fn of(b: &Bitset) -> Summary {
        let mut words = [0; 16];
        words[..b.words().len()].copy_from_slice(b.words());
        Summary {
            words,
            len: b.words().len() as u8,
        }
    }
    #[inline]
    fn set(&mut self, i: u32) {
        self.words[(i >> 6) as usize] |= 1 << (i & 63);
    }
    /// Clear bit `i` when `cond`, without a branch (whether a word just
    /// filled up is a coin toss near exhaustion).
    #[inline(always)]
    fn clear_if(&mut self, i: u32, cond: bool) {
        self.words[(i >> 6) as usize] &= !(u64::from(cond) << (i & 63));
    }
    #[inline]
    fn words(&self) -> &[u64] {
        &self.words[..usize::from(self.len)]
    }
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

impl Take {
    /// A connect() on address 0 for flow key 1 taking `port` at time 0:
    /// what tests and benches fill a table with (vary it with
    /// `Take { bind: true, ..Take::port(p) }`).
    pub fn port(port: u32) -> Take {
        Take {
            addr: 0,
            key: 1,
            slot: None,
            port,
            bind: false,
            now: 0,
        }
    }
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

/// A host's port range: its size, the ports no socket may take (reserved,
/// and the padding past the range in the last word, so scans need no range
/// mask) and the words that hold at least one other port. Worked out once
/// and shared by every host with the same range: a fleet's hosts read one
/// copy, which stays in cache.
#[derive(Debug, Clone)]
pub struct Range {
    n: u32,
    blocked: Arc<Bitset>,
    reserved_count: u32,
    unreserved: Arc<Bitset>,
}

impl Range {
    /// `n` ports (indices `0..n`) of which `reserved` are reserved.
    pub fn new(n: u32, reserved: impl IntoIterator<Item = u32>) -> Range {
        assert!(n <= 1 << 16, "a port range has at most 65,536 ports");
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
        Range {
            n,
            blocked: Arc::new(r),
            reserved_count,
            unreserved: Arc::new(unreserved),
        }
    }

    /// Ports in the range that are not reserved.
    pub fn usable(&self) -> u32 {
        self.n - self.reserved_count
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
        let f1 = s.occupy(Take::port(0)).flow;
        assert!(!cand(&s, 1, Sharing::FourTuple).is_usable(0));
        assert!(cand(&s, 2, Sharing::FourTuple).is_usable(0));
        assert!(!cand(&s, 2, Sharing::Exclusive).is_usable(0));
        // Reserved ports are never usable.
        assert!(!cand(&s, 2, Sharing::FourTuple).is_usable(5));
        // A bind() owner keeps connect() of every flow away.
        s.occupy(Take {
            key: 3,
            bind: true,
            ..Take::port(1)
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
                now: 25,
                ..Take::port(0)
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
                s.occupy(Take::port(p));
            }
        }
        let c = cand(&s, 1, Sharing::FourTuple);
        assert_eq!(c.count(), 1);
        assert_eq!(c.scan_from(100), Some(3));
        assert_eq!(c.probes(100, 3), 130 - 100 + 3 + 1);
        assert_eq!(c.scan_from(3), Some(3));
        assert_eq!(c.probes(3, 3), 1);
        assert_eq!(c.select(0), Some(3));
        s.occupy(Take::port(3));
        assert_eq!(cand(&s, 1, Sharing::FourTuple).scan_from(7), None);
    }

    /// A scan from the last word that finds nothing there wraps to word 0
    /// first, whatever is free further on: for ranges whose word count ends
    /// a summary word (64 and 4,096 words) and ranges that do not.
    #[test]
    fn scan_from_the_last_word_wraps_to_the_first() {
        for words in [3u32, 63, 64, 65, 127, 128] {
            let n = words * 64;
            let mut s = PortSpace::new(n, 1, []);
            for p in 0..n {
                if p != 5 && p != 64 + 9 {
                    s.occupy(Take::port(p));
                }
            }
            for sharing in [Sharing::Exclusive, Sharing::FourTuple] {
                let c = cand(&s, 1, sharing);
                for start in [n - 64, n - 1] {
                    assert_eq!(c.scan_from(start), Some(5), "{words} words from {start}");
                }
                assert_eq!(c.scan_from(6), Some(64 + 9), "{words} words");
            }
        }
    }

    #[test]
    fn reusable_time_wait_is_usable_again() {
        let mut s = PortSpace::new(64, 1, []);
        let f = s.occupy(Take::port(9)).flow;
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
