//! `linux`: the Linux kernel's own port choice, step for step.
//!
//! connect() follows `__inet_hash_connect()` (net/ipv4/inet_hashtables.c):
//! - a keyed 64-bit hash of (source address, destination address and port,
//!   10-second time bucket); its low 16 bits index a 65,536-entry
//!   perturbation table, its high 32 bits are the offset;
//! - `remaining` is the range size rounded down to even; the start is
//!   `(table[index] + offset) % remaining`, made even, so the first pass tries
//!   ports of the parity of the range's low end, stepping by two and wrapping
//!   by `remaining`; a second pass tries the other parity;
//! - after a success the table entry advances by `max(i, 2·rand(0..8)) + 2`,
//!   where `i` is twice the ports tried in the successful pass; a failure
//!   leaves the table alone.
//!
//! bind(0) follows `inet_csk_find_open_port()` (net/ipv4/inet_connection_sock.c):
//! a random odd offset, so the opposite parity first, then the other parity,
//! each pass stepping by two; the port must be free on the local address.
//!
//! Usability (reserved ports, ports held by bind() owners, the 4-tuple with
//! TIME_WAIT and `tcp_tw_reuse`, exclusive ownership for bind(0)) comes from
//! the port space, as for every allocator. The kernel's secret (siphash key and
//! the table's random fill) comes from the scenario seed; the kernel's own
//! hash function is replaced by a keyed mix of the same inputs, which changes
//! which ports are picked but none of the structure above. The phase of the
//! 10-second buckets relative to the start of the run is random too.
//!
//! Not modelled: `IP_LOCAL_PORT_RANGE` (per-socket ranges, step 1),
//! `ip_local_port_step_width`, SO_REUSEADDR's half-range scan for bind(0) and
//! `ip_autobind_reuse`.

use crate::ports::fastmap::FastMap;
use rand::Rng;
use rand::RngExt;
use rand_chacha::ChaCha8Rng;

use super::{mix64, Allocator, Candidates, Entry, Request, Setup};

pub const ENTRY: Entry = Entry {
    name: "linux",
    summary:
        "Linux __inet_hash_connect (even ports first, perturbation table) and bind(0) (odd first)",
    build,
    exhaustive: true,
    extra_probes: super::no_extra_probes,
    check: super::no_settings,
};

/// `1 << CONFIG_INET_TABLE_PERTURB_ORDER` with the default order 16.
const TABLE_SIZE: usize = 1 << 16;

/// `EPHEMERAL_PORT_SHUFFLE_PERIOD`: the hash is re-salted every 10 s.
const SHUFFLE_NS: u64 = 10_000_000_000;

struct Linux {
    rng: ChaCha8Rng,
    secret: u64,
    /// Where the run starts inside a 10-second bucket.
    phase_ns: u64,
    table: Perturb,
}

/// `table_perturb`: [`TABLE_SIZE`] random words, of which a host touches
/// one per (flow, 10 s bucket). Each is made when first read, as the word
/// of the host's allocator stream at its place, so the table is what it
/// would be drawn whole, without its 256 KiB per host.
struct Perturb {
    /// The stream, positioned anywhere; `base` is the word of entry 0.
    words: ChaCha8Rng,
    base: u128,
    entries: FastMap<u32, u32>,
    /// The entry read last and its value (a flow keeps one entry for 10 s).
    last: Option<(u32, u32)>,
}

impl Perturb {
    #[inline]
    fn get(&mut self, idx: u32) -> u32 {
        if let Some((i, v)) = self.last {
            if i == idx {
                return v;
            }
        }
        if let Some((i, v)) = self.last {
            self.entries.insert(i, v);
        }
        let (words, base) = (&mut self.words, self.base);
        let v = self.entries.remove(&idx).unwrap_or_else(|| {
            words.set_word_pos(base + u128::from(idx));
            words.next_u32()
        });
        self.last = Some((idx, v));
        v
    }

    /// Set entry `idx`, the one [`Perturb::get`] read last.
    #[inline]
    fn set(&mut self, idx: u32, v: u32) {
        debug_assert_eq!(self.last.map(|l| l.0), Some(idx));
        self.last = Some((idx, v));
    }
}

fn build(mut s: Setup<'_>) -> Box<dyn Allocator> {
    let secret = s.rng.random();
    let phase_ns = s.rng.random_range(0..SHUFFLE_NS);
    // The table's words follow, one per entry; the allocator's own draws
    // come after them.
    let base = s.rng.get_word_pos();
    let table = Perturb {
        words: s.rng.clone(),
        base,
        entries: FastMap::default(),
        last: None,
    };
    s.rng.set_word_pos(base + TABLE_SIZE as u128);
    Box::new(Linux {
        rng: s.rng,
        secret,
        phase_ns,
        table,
    })
}

/// One pass of the kernel's scan: from `offset`, step 2, `remaining / 2`
/// ports, wrapping by `remaining` once past the end of the range. Returns the
/// port and `i` (twice the ports tried before it).
#[inline]
fn pass(c: &Candidates<'_>, offset: u32, remaining: u32) -> Option<(u32, u32)> {
    let n = c.range();
    if n == remaining && n > 1 {
        // An even-sized range wraps onto the same parity: the pass is every
        // port of the offset's parity in circular order, scanned by words.
        let port = c.scan_parity(offset)?;
        return Some((port, (port + n - offset) % n));
    }
    if n >= 3 {
        return pass_odd(c, offset, remaining);
    }
    pass_by_ports(c, offset, remaining)
}

/// The kernel's pass on an odd-sized range (`remaining = n - 1`), scanned by
/// words. Subtracting the even `remaining` keeps the parity, so:
/// - an odd offset visits every odd port in circular order;
/// - an even offset above 0 visits the even ports from it to `n - 1`, then
///   wraps to 2 (never 0) and goes on up to the offset;
/// - offset 0 visits 0, 2, …, `n - 3`: one step short of `n - 1`.
///
/// `i` is twice the ports tried before the one found, as in the loop.
fn pass_odd(c: &Candidates<'_>, offset: u32, remaining: u32) -> Option<(u32, u32)> {
    let i_of = |port: u32| {
        if port >= offset {
            port - offset
        } else {
            port + remaining - offset
        }
    };
    let port = c.scan_parity(offset)?;
    if offset % 2 == 1 {
        return Some((port, i_of(port)));
    }
    if offset == 0 {
        // The lowest usable even port, unless it is the last one, n - 1.
        return (port + 1 < remaining).then_some((port, port));
    }
    if port != 0 {
        return Some((port, i_of(port)));
    }
    // Port 0 is not on this pass; the next usable even port after it is,
    // if it lies below the offset (those from the offset up were not usable).
    let next = c.scan_parity(2)?;
    (next != 0 && next < offset).then(|| (next, i_of(next)))
}

/// The kernel's loop as written, port by port: needed for odd-sized ranges,
/// where the wrap by `remaining` changes parity.
fn pass_by_ports(c: &Candidates<'_>, offset: u32, remaining: u32) -> Option<(u32, u32)> {
    let mut port = offset;
    let mut i = 0;
    while i < remaining {
        if port >= c.range() {
            port -= remaining;
        }
        if c.is_usable(port) {
            return Some((port, i));
        }
        i += 2;
        port += 2;
    }
    None
}

/// `remaining`: the range size, rounded down to even when above one.
fn even_remaining(n: u32) -> u32 {
    if n > 1 {
        n & !1
    } else {
        n
    }
}

impl Linux {
    fn connect(&mut self, req: &Request, c: &Candidates<'_>) -> Option<u32> {
        let remaining = even_remaining(c.range());
        let bucket = (req.now_ns + self.phase_ns) / SHUFFLE_NS;
        let h = mix64(req.flow_key ^ self.secret ^ mix64(bucket));
        let idx = (h as usize & (TABLE_SIZE - 1)) as u32;
        let mut offset = self.table.get(idx).wrapping_add((h >> 32) as u32) % remaining;
        offset &= !1;
        loop {
            if let Some((port, i)) = pass(c, offset, remaining) {
                let i = i.max(self.rng.random_range(0..8u32) * 2);
                let v = self.table.get(idx).wrapping_add(i + 2);
                self.table.set(idx, v);
                return Some(port);
            }
            offset += 1;
            if offset & 1 == 1 && remaining > 1 {
                continue;
            }
            return None;
        }
    }

    fn bind_any(&mut self, c: &Candidates<'_>) -> Option<u32> {
        let remaining = even_remaining(c.range());
        let mut offset = self.rng.random_range(0..remaining) | 1;
        loop {
            if let Some((port, _)) = pass(c, offset, remaining) {
                return Some(port);
            }
            offset = offset.wrapping_sub(1);
            if offset & 1 == 0 {
                continue;
            }
            return None;
        }
    }
}

impl Allocator for Linux {
    fn pick(&mut self, req: &Request, c: &Candidates<'_>) -> Option<u32> {
        if req.bind {
            self.bind_any(c)
        } else {
            self.connect(req, c)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{build, host, req};
    use super::*;
    use crate::ports::{PortSpace, Ports, Sharing, Take};
    use rand::SeedableRng;

    /// Fill a `n`-port range for one flow (or with bind(0)) and return the
    /// ports in the order handed out.
    fn fill(n: u32, bind: bool, seed: u64) -> Vec<u32> {
        let h = host(40000, 40000 + n as u16 - 1);
        let mut a = build("linux", &h, seed);
        let mut s = PortSpace::new(n, 1, []);
        let sharing = if bind {
            Sharing::Exclusive
        } else {
            Sharing::FourTuple
        };
        let mut out = Vec::new();
        let r = Request { bind, ..req(1) };
        while let Some(p) = a.pick(&r, &s.candidates(0, s.flow(1), sharing)) {
            s.occupy(Take {
                bind,
                ..Take::port(p)
            });
            out.push(p);
        }
        out
    }

    #[test]
    fn connect_takes_even_ports_first_then_odd() {
        for seed in 0..5 {
            let ports = fill(200, false, seed);
            assert_eq!(ports.len(), 200);
            assert!(ports[..100].iter().all(|p| p % 2 == 0), "{ports:?}");
            assert!(ports[100..].iter().all(|p| p % 2 == 1), "{ports:?}");
        }
    }

    #[test]
    fn bind_any_takes_odd_ports_first_then_even() {
        let ports = fill(200, true, 3);
        assert_eq!(ports.len(), 200);
        assert!(ports[..100].iter().all(|p| p % 2 == 1));
        assert!(ports[100..].iter().all(|p| p % 2 == 0));
    }

    #[test]
    fn odd_sized_range_skips_what_the_kernel_skips() {
        // 5 ports, remaining 4: from offset 2 the kernel tries 2, 4, then
        // wraps by 4 back to 2; the second pass tries 3 then 1. Port 0 is
        // reachable only from offsets that land on it.
        let s = PortSpace::new(5, 1, []);
        let c = s.candidates(0, None, Sharing::FourTuple);
        assert_eq!(pass(&c, 2, 4), Some((2, 0)));
        let mut s2 = PortSpace::new(5, 1, []);
        s2.occupy(Take::port(2));
        s2.occupy(Take::port(4));
        let c2 = s2.candidates(0, s2.flow(1), Sharing::FourTuple);
        assert_eq!(pass(&c2, 2, 4), None);
        assert_eq!(pass(&c2, 3, 4), Some((3, 0)));
    }

    #[test]
    fn word_wise_pass_matches_the_kernel_loop() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        // Even sizes, and odd ones, where the pass wraps by n - 1 and skips
        // a port: 0 from an even offset above 0, n - 1 from offset 0.
        let mut empty = 0;
        for n in [2u32, 64, 130, 1000, 3, 5, 63, 65, 129, 1001] {
            let remaining = even_remaining(n);
            let mut s = PortSpace::new(n, 1, (0..n).filter(|p| p % 37 == 3));
            let mut found = 0;
            for _ in 0..3 * n {
                let p = rng.random_range(0..n);
                if s.candidates(0, s.flow(1), Sharing::FourTuple).is_usable(p) {
                    s.occupy(Take::port(p));
                }
                let c = s.candidates(0, s.flow(1), Sharing::FourTuple);
                // Every offset of both parities, and the edge cases 0, 1 and
                // the highest even and odd offsets.
                let edge = [0, 1, remaining - 2, remaining - 1];
                for offset in edge.into_iter().chain([rng.random_range(0..remaining)]) {
                    let expect = pass_by_ports(&c, offset, remaining);
                    assert_eq!(pass(&c, offset, remaining), expect, "n {n} offset {offset}");
                    found += usize::from(expect.is_some());
                }
            }
            assert!(found > 0, "n {n}: no pass found a port");
            empty += 15 * n as usize - found;
        }
        // Passes that find nothing occur too (small ranges fill up).
        assert!(empty > 0);
    }

    #[test]
    fn consecutive_connects_walk_forward_by_two_to_sixteen() {
        // With nothing held, each connect to one destination inside one
        // 10 s bucket moves the table entry by 2·rand(0..8) + 2 (i = 0):
        // successive ports differ by an even step in 2..=16 (mod the range).
        let n = 1000u32;
        let h = host(40000, 40000 + n as u16 - 1);
        let mut a = build("linux", &h, 9);
        let s = PortSpace::new(n, 1, []);
        let r = req(1);
        let ports: Vec<u32> = (0..200)
            .map(|_| {
                a.pick(&r, &s.candidates(0, None, Sharing::FourTuple))
                    .unwrap()
            })
            .collect();
        let mut steps = std::collections::BTreeSet::new();
        for w in ports.windows(2) {
            let d = (w[1] + n - w[0]) % n;
            assert!(d % 2 == 0 && (2..=16).contains(&d), "step {d}");
            steps.insert(d);
        }
        // All eight steps show up in 199 draws: each has probability 1/8, so
        // one is missing with probability at most 8·(7/8)^199 < 1e-10.
        assert_eq!(steps.len(), 8, "{steps:?}");
    }
}
