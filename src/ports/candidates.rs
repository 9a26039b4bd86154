//! What an allocator sees of the port state for one request: the usable
//! ports, read 64 at a time, with a word summary so a scan near exhaustion
//! visits only the words that may still hold a usable port.

use super::bitset::{select_in_word, words_for};

pub(super) enum Mask<'a> {
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
pub(super) fn four_tuple_taken(bind: &[u64], occ: &[u64], reusable: &[u64], w: usize) -> u64 {
    bind[w] | (occ[w] & !reusable[w])
}

/// The ports one request may use, as a read-only view of the port space.
pub struct Candidates<'a> {
    pub(super) n: u32,
    /// Reserved ports and the bits past the range.
    pub(super) blocked: &'a [u64],
    pub(super) mask: Mask<'a>,
    /// One bit per word of ports: clear only if the word has no usable port
    /// (set bits may still have none, when bind() owners fill them).
    pub(super) open: &'a [u64],
    /// The number of usable ports when it is known without a scan.
    pub(super) usable: Option<u32>,
}

impl Candidates<'_> {
    /// Number of ports in the range (usable or not).
    pub fn range(&self) -> u32 {
        self.n
    }

    /// Usable ports among indices `64*w .. 64*w+63`, as bits.
    #[inline(always)]
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
    /// The rest of `start`'s word and the next word are looked at inline
    /// (they usually have one); the scan beyond them is a call.
    #[inline(always)]
    pub fn scan_from(&self, start: u32) -> Option<u32> {
        // The rest of the word and the next one (where a busy stretch
        // usually ends) as one 128-bit value: one test, one branch.
        let w = (start >> 6) as usize;
        let lo = self.word(w) & (!0u64 << (start & 63));
        let hi = if w + 1 < self.blocked.len() {
            self.word(w + 1)
        } else {
            0
        };
        let both = u128::from(lo) | (u128::from(hi) << 64);
        if both != 0 {
            return Some(w as u32 * 64 + both.trailing_zeros());
        }
        // Neither holds one: the scan goes on past them.
        let looked = if w + 1 < self.blocked.len() { 2 } else { 1 };
        self.scan_pattern(start, !0, looked)
    }

    /// The first usable port of `start`'s parity at or after `start`,
    /// wrapping around the range (a scan stepping by two through an
    /// even-sized range).
    #[inline]
    pub fn scan_parity(&self, start: u32) -> Option<u32> {
        const EVEN: u64 = 0x5555_5555_5555_5555;
        self.scan_pattern(start, if start % 2 == 0 { EVEN } else { !EVEN }, 0)
    }

    /// The first usable port at or after `start` whose bit is set in
    /// `pattern` (the same mask for every word), wrapping around the range,
    /// when the `looked` words from `start`'s (the rest of its own, then
    /// whole words) are known to hold none.
    #[inline]
    fn scan_pattern(&self, start: u32, pattern: u64, looked: usize) -> Option<u32> {
        debug_assert!(start < self.n);
        if self.usable == Some(0) {
            return None;
        }
        // One tight loop per mask kind: the match stays out of the word loop.
        match self.mask {
            Mask::Exclusive { busy } => self.scan_words(start, looked, |w| busy[w] | !pattern),
            Mask::FourTuple {
                bind,
                occ,
                reusable,
            } => self.scan_words(start, looked, |w| {
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
    /// summary marks open, in circular order, ending with the summary word
    /// it began in (so `start`'s own word is looked at whole last).
    /// `looked`: the words from `start`'s already known to hold no usable
    /// port at or after `start` (0: none), which the scan begins after.
    #[inline(always)]
    fn scan_words(&self, start: u32, looked: usize, taken: impl Fn(usize) -> u64) -> Option<u32> {
        let usable = |w: usize| !(self.blocked[w] | taken(w));
        let first_w = (start >> 6) as usize;
        if looked == 0 {
            let bits = usable(first_w) & (!0u64 << (start & 63));
            if bits != 0 {
                return Some(first_w as u32 * 64 + bits.trailing_zeros());
            }
        }
        let sw = self.open.len();
        let next = first_w + looked.max(1);
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
