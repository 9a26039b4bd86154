//! `linux-udp`: the Linux kernel's port choice for an unbound UDP socket
//! (autobind at connect() or sendto(), or bind(addr, 0)), step for step.
//!
//! `udp_lib_get_port()` (net/ipv4/udp.c) with `snum = 0`:
//! - `first = reciprocal_scale(rand, remaining) + low`: a uniform start over
//!   the range (`remaining` ports), from one 32-bit random draw;
//! - `rand = (rand | 1) * (mask + 1)`: the stride, an odd multiple of the
//!   `udptable` size, so from `first` the 16-bit sum `snum += rand` visits
//!   every number of `first`'s hash slot (the numbers congruent to it modulo
//!   the table size) once, in an order set by the draw, before it returns to
//!   `first`;
//! - the first of those inside the range, not used on the address and not
//!   reserved, is taken; else the next slot (`++first`), up to `mask + 1`
//!   slots, which cover every port: it finds a usable port whenever one
//!   exists.
//!
//! Everything is arithmetic on 16-bit port numbers, so it is unchanged when
//! the range and the slots are shifted together: the model counts from the
//! range's low end (index = port − low) and the slot of `first` stays the
//! slot of `first`, whatever the kernel's per-namespace hash mix.
//!
//! The table size is the allocator's parameter ([`LinuxUdp::new`]). The
//! kernel sizes `udp_table` at boot from memory (`alloc_large_system_hash`
//! with scale 21: one slot per 2 MiB, rounded to a power of two, between
//! 256 and 65,536, or `uhash_entries=`); [`DEFAULT_SLOTS`] = 8,192 is a
//! 16 GiB host. The size matters: the ports tried after a busy start are
//! those of the start's slot first, then the next slot's.
//!
//! A port is usable when no other socket holds it on the address (UDP has no
//! per-destination sharing): the port space says so, with exclusive sharing.
//! The walk itself is done per slot over the slot's ports inside the range
//! (each one's place in the kernel's order is computed, not walked to), so a
//! slot costs its ports in the range rather than 65,536 / slots steps. Near
//! exhaustion, when the first slots tried hold no usable port, the usable
//! ports folded onto one table's width (OR of the range's words, a table's
//! width at a time) name the next slot that has one, at the cost of one pass
//! over the range's words instead of a port-by-port walk. A test checks it
//! all against the kernel's loop as written.
//!
//! Not modelled: `SO_REUSEADDR` / `SO_REUSEPORT` sharing, and the secondary
//! (address, port) hash, which only speeds up lookups of explicit ports.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::{Allocator, Candidates, Entry, Request, Setup};

pub const ENTRY: Entry = Entry {
    name: "linux-udp",
    summary: "Linux udp_lib_get_port: random start, odd-multiple stride through one hash slot, then the next slot",
    build,
    exhaustive: true,
    extra_probes,
    check: super::no_settings,
};

/// Near exhaustion a walk checks about `range / free` ports (slot after
/// slot) before it finds a free one, as a random walk does, but never more
/// than [`WALK_SLOTS`] slots' ports and then the fold's pass over the
/// range's words; an attempt that finds the pool full costs one word scan.
fn extra_probes(s: &super::Settings, usable: u32, erlangs: f64) -> f64 {
    let per_slot = f64::from(s.range.div_ceil(DEFAULT_SLOTS));
    let most = f64::from(WALK_SLOTS) * per_slot + f64::from(s.range) / 64.0;
    super::walk_probes(s.range, usable, erlangs, 1.0).min(most)
}

/// `udp_table` slots (`mask + 1`) unless told otherwise: a 16 GiB host.
pub const DEFAULT_SLOTS: u32 = 8192;

/// Port numbers are 16-bit: the kernel's sums wrap at this.
const PORTS: u32 = 1 << 16;

/// Slots walked one by one before the fold names the next one with a
/// usable port.
const WALK_SLOTS: u32 = 64;

pub struct LinuxUdp {
    rng: ChaCha8Rng,
    slots: u32,
    /// The fold's words, kept between attempts.
    fold: Vec<u64>,
}

impl LinuxUdp {
    /// The allocator with a `udp_table` of `slots` (a power of two from 1
    /// to 65,536; the kernel's are 128 to 65,536).
    pub fn new(rng: ChaCha8Rng, slots: u32) -> Self {
        assert!(
            slots.is_power_of_two() && slots <= PORTS,
            "udp_table slots must be a power of two up to 65536, not {slots}"
        );
        LinuxUdp {
            rng,
            slots,
            fold: Vec::new(),
        }
    }
}

fn build(s: Setup<'_>) -> Box<dyn Allocator> {
    Box::new(LinuxUdp::new(s.rng, DEFAULT_SLOTS))
}

impl Allocator for LinuxUdp {
    fn pick(&mut self, _: &Request, c: &Candidates<'_>) -> Option<u32> {
        let rand = self.rng.next_u32();
        get_port_with(rand, self.slots, c, &mut self.fold)
    }
}

/// The inverse of odd `x` modulo 2³² (Newton's iteration doubles the bits
/// that are right each time: 3 → 6 → 12 → 24 → 48).
fn odd_inverse(x: u32) -> u32 {
    let mut y = x;
    for _ in 0..4 {
        y = y.wrapping_mul(2u32.wrapping_sub(x.wrapping_mul(y)));
    }
    y
}

/// `udp_lib_get_port` for the random draw `rand` on a table of `slots`:
/// the index of the port taken, or `None` (EADDRINUSE) when none is usable.
pub fn get_port(rand: u32, slots: u32, c: &Candidates<'_>) -> Option<u32> {
    get_port_with(rand, slots, c, &mut Vec::new())
}

/// [`get_port`] with the fold's words in `fold`.
fn get_port_with(rand: u32, slots: u32, c: &Candidates<'_>, fold: &mut Vec<u64>) -> Option<u32> {
    let n = c.range();
    // The kernel's walk covers every port, so it fails exactly when none is
    // usable; a word scan says so without walking.
    c.scan_from(0)?;
    let first = ((u64::from(rand) * u64::from(n)) >> 32) as u32;
    let walk = Walk::new(rand, slots);
    let direct = slots.min(WALK_SLOTS);
    for i in 0..direct {
        if let Some(port) = walk.best_in_slot(c, (first + i) % PORTS) {
            return Some(port);
        }
    }
    if direct == slots {
        return None;
    }
    // Slots `first .. first + direct` hold no usable port; the next slot in
    // the kernel's order that holds one is the first residue, cyclically
    // from `first + direct`, with a usable port. `slots` > 64 here, so a
    // table's width is whole words.
    let per = (slots / 64) as usize;
    fold.clear();
    fold.resize(per, 0);
    for w in 0..crate::ports::bitset::words_for(n) {
        fold[w % per] |= c.word(w);
    }
    let from = (first + direct) % slots;
    let r = first_set_from(fold, from)?;
    let i = (r + slots - first % slots) % slots;
    walk.best_in_slot(c, (first + i) % PORTS)
}

/// The first set bit of `bits` at or after `from`, wrapping around.
fn first_set_from(bits: &[u64], from: u32) -> Option<u32> {
    let len = bits.len();
    let w0 = (from / 64) as usize;
    let head = bits[w0] & (!0u64 << (from % 64));
    if head != 0 {
        return Some(w0 as u32 * 64 + head.trailing_zeros());
    }
    (1..=len)
        .map(|k| (w0 + k) % len)
        .find(|&w| bits[w] != 0)
        .map(|w| w as u32 * 64 + bits[w].trailing_zeros())
}

/// The order of the kernel's walk through one slot, from one draw.
struct Walk {
    slots: u32,
    /// Numbers per slot: 65,536 / slots.
    period: u32,
    /// The stride is `slots × mult` (mod 2¹⁶), so the `k`-th number of the
    /// slot after the start is reached at step `k × mult⁻¹` (mod `period`).
    inv: u32,
    shift: u32,
}

impl Walk {
    fn new(rand: u32, slots: u32) -> Walk {
        let period = PORTS / slots;
        let mult = (rand | 1) % period.max(2);
        Walk {
            slots,
            period,
            inv: odd_inverse(mult) & (period - 1),
            shift: slots.trailing_zeros(),
        }
    }

    /// The port the kernel takes in the slot it enters at `start`: of the
    /// slot's usable ports in the range (v ≡ start mod slots, v < n), the
    /// one its stride reaches first.
    #[inline]
    fn best_in_slot(&self, c: &Candidates<'_>, start: u32) -> Option<u32> {
        let mut v = start % self.slots;
        let mut best: Option<(u32, u32)> = None;
        while v < c.range() {
            if c.is_usable(v) {
                let k = ((v + PORTS - start) % PORTS) >> self.shift;
                let step = k.wrapping_mul(self.inv) & (self.period - 1);
                if best.is_none_or(|b| step < b.0) {
                    best = Some((step, v));
                }
            }
            v += self.slots;
        }
        best.map(|b| b.1)
    }
}

/// The kernel's loops as written, on 16-bit numbers counted from the low
/// end of the range: the reference [`get_port`] is checked against.
#[cfg(test)]
fn get_port_by_steps(rand: u32, slots: u32, c: &Candidates<'_>) -> Option<u32> {
    let n = c.range();
    let mut first = ((u64::from(rand) * u64::from(n)) >> 32) as u16;
    let stride = (rand | 1).wrapping_mul(slots);
    let last = first.wrapping_add(slots as u16);
    loop {
        let mut snum = first;
        loop {
            if u32::from(snum) < n && c.is_usable(u32::from(snum)) {
                return Some(u32::from(snum));
            }
            snum = snum.wrapping_add(stride as u16);
            if snum == first {
                break;
            }
        }
        first = first.wrapping_add(1);
        if first == last {
            return None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::{PortSpace, Ports, Sharing, Take};
    use rand::{RngExt, SeedableRng};

    /// Ports handed out in order for one fixed draw, until none is left.
    fn sequence(rand: u32, n: u32, slots: u32) -> Vec<u32> {
        let mut s = PortSpace::new(n, 1, []);
        let mut out = Vec::new();
        loop {
            let c = s.candidates(0, None, Sharing::Exclusive);
            let got = get_port(rand, slots, &c);
            assert_eq!(got, get_port_by_steps(rand, slots, &c));
            let Some(p) = got else { return out };
            s.occupy(Take::port(p));
            out.push(p);
        }
    }

    #[test]
    fn hand_computed_sequences() {
        // 8 ports, 4 slots ({0, 4}, {1, 5}, {2, 6}, {3, 7}), rand 0xC000_0000:
        // first = (0xC000_0000 × 8) >> 32 = 6; stride (0xC000_0001 × 4) mod
        // 2¹⁶ = 4. From 6: 6 free. Then 6 busy: 6 + 4 = 10, 14, … wrap to 2.
        // Then slot 7: 7, then 3. Then slot 8 (numbers ≡ 0): 8 is out of
        // range, the walk wraps to 0 before 4. Then slot 9: 1 before 5.
        assert_eq!(sequence(0xC000_0000, 8, 4), [6, 2, 7, 3, 0, 4, 1, 5]);
        // 8 ports, 2 slots, rand 3: first = 0, stride 6, so within the even
        // slot 0, 6, then 6j ≡ 2 (mod 2¹⁶) at j = 10,923 before 6j ≡ 4 at
        // j = 21,846: 0, 6, 2, 4; the odd slot from 1 likewise: 1, 7, 3, 5.
        assert_eq!(sequence(3, 8, 2), [0, 6, 2, 4, 1, 7, 3, 5]);
        // rand 0x7FFF: first = 0, stride 0xFFFE = −2: each slot downwards.
        assert_eq!(sequence(0x7FFF, 8, 2), [0, 6, 4, 2, 1, 7, 5, 3]);
        // One port per slot (65,536 slots): a linear probe from `first`.
        assert_eq!(sequence(0x8000_0000, 8, 1 << 16), [4, 5, 6, 7, 0, 1, 2, 3]);
    }

    #[test]
    fn never_a_busy_or_reserved_port_and_the_last_free_one_is_found() {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        for (n, slots) in [
            (8u32, 4u32),
            (100, 8),
            (1000, 256),
            (1001, 8192),
            (5, 65536),
        ] {
            let reserved: Vec<u32> = (0..n).filter(|p| p % 13 == 5).collect();
            let mut s = PortSpace::new(n, 1, reserved.iter().copied());
            let usable = n - reserved.len() as u32;
            let mut taken = 0;
            loop {
                let c = s.candidates(0, None, Sharing::Exclusive);
                let rand = rng.random::<u32>();
                let got = get_port(rand, slots, &c);
                assert_eq!(
                    got,
                    get_port_by_steps(rand, slots, &c),
                    "n {n} slots {slots}"
                );
                let Some(p) = got else { break };
                assert!(c.is_usable(p) && !reserved.contains(&p), "n {n}: port {p}");
                s.occupy(Take::port(p));
                taken += 1;
            }
            // Every usable port, the last one included, was handed out.
            assert_eq!(taken, usable, "n {n} slots {slots}");
        }
    }

    #[test]
    fn fast_walk_matches_the_kernel_loop_on_random_states() {
        // Ports taken in a random order until two are left, comparing about
        // 300 states along the way and every one of the last 100, where the
        // first 64 slots tried are often empty and the fold picks the slot.
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        for (n, slots) in [
            (64u32, 16u32),
            (300, 128),
            (28232, 8192),
            (4000, 256),
            (700, 65536),
        ] {
            let mut order: Vec<u32> = (0..n).collect();
            for i in (1..order.len()).rev() {
                order.swap(i, rng.random_range(0..=i));
            }
            let mut s = PortSpace::new(n, 1, []);
            let every = (n / 300).max(1);
            for (taken, &p) in order[..n as usize - 2].iter().enumerate() {
                s.occupy(Take::port(p));
                let left = n - taken as u32 - 1;
                if taken as u32 % every == 0 || left <= 100 {
                    let c = s.candidates(0, None, Sharing::Exclusive);
                    let rand = rng.random::<u32>();
                    assert_eq!(
                        get_port(rand, slots, &c),
                        get_port_by_steps(rand, slots, &c),
                        "n {n} slots {slots} rand {rand:#x}, {left} left"
                    );
                }
            }
        }
    }

    /// How often each port is taken, over every start `first` (one draw
    /// for each), from a range of `n` ports where only `free` are free.
    fn by_start(n: u32, slots: u32, free: &[u32]) -> std::collections::BTreeMap<u32, u32> {
        let mut s = PortSpace::new(n, 1, []);
        for p in (0..n).filter(|p| !free.contains(p)) {
            s.occupy(Take::port(p));
        }
        let c = s.candidates(0, None, Sharing::Exclusive);
        let mut out = std::collections::BTreeMap::new();
        for first in 0..n {
            // The least draw whose reciprocal_scale is `first`.
            let rand = (u64::from(first) << 32).div_ceil(u64::from(n)) as u32;
            assert_eq!(((u64::from(rand) * u64::from(n)) >> 32) as u32, first);
            *out.entry(get_port(rand, slots, &c).unwrap()).or_insert(0) += 1;
        }
        out
    }

    #[test]
    fn slot_after_slot_not_port_after_port() {
        // The cases checked against a 6.18 kernel (16,384 udp_table slots,
        // `ip_local_port_range` set in a network namespace, every other port
        // held by an explicit bind()). 8 ports with 6 and 7 free: one port
        // per slot, so a walk from the start, wrapping: 7 only from start 7.
        // The kernel took 7 in 1,025 of 8,000 autobinds (1/8 would be 1,000).
        let a = by_start(8, 16384, &[6, 7]);
        assert_eq!(a.into_iter().collect::<Vec<_>>(), [(6, 7), (7, 1)]);
        // 16,400 ports with 3 and 16,390 free: slot after slot from the
        // start's, 16,390 (slot 6) comes before 3 (slot 3) only from starts
        // in slots 4..=6, that is starts 4, 5, 6 and 16,388, 16,389, 16,390:
        // 6 of 16,400 (a port-by-port walk would take 16,390 from almost
        // every start). The kernel took it in 8 of 20,000 (7.3 expected).
        let b = by_start(16400, 16384, &[3, 16390]);
        assert_eq!(b.into_iter().collect::<Vec<_>>(), [(3, 16394), (16390, 6)]);
    }

    #[test]
    fn first_set_bit_wraps_around() {
        let bits = [0u64, 1 << 5, 0, 1 << 63];
        assert_eq!(first_set_from(&bits, 0), Some(69));
        assert_eq!(first_set_from(&bits, 69), Some(69));
        assert_eq!(first_set_from(&bits, 70), Some(255));
        assert_eq!(first_set_from(&[1 << 3, 0], 100), Some(3));
        assert_eq!(first_set_from(&[0, 0], 7), None);
    }

    #[test]
    fn inverse_of_odd_numbers() {
        for x in [1u32, 3, 5, 0xFFFF, 0x8000_0001, u32::MAX] {
            assert_eq!(x.wrapping_mul(odd_inverse(x)), 1, "{x}");
        }
    }
}
