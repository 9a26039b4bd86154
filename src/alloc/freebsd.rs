//! `freebsd`: FreeBSD's `in_pcb_lport_dest()` (sys/netinet/in_pcb.c) with
//! `net.inet.ip.portrange.randomized = 1`, the default.
//!
//! The cursor is set to `first + arc4random() % (last - first)` and advanced
//! by one *before* each check, wrapping from `last` to `first`; so the first
//! port tried is uniform over every port but the lowest, which is reached
//! only by wrapping. At most `last - first + 1` ports are tried, so a free
//! port is always found. connect() checks the 4-tuple and bind(0) the local
//! address; both are the port space's business, so one algorithm serves both.
//! This is RFC 6056 algorithm 1 except for that off-by-one start.

use rand::RngExt;
use rand_chacha::ChaCha8Rng;

use super::{Allocator, Candidates, Entry, Request, Setup};

pub const ENTRY: Entry = Entry {
    name: "freebsd",
    summary: "FreeBSD in_pcb_lport_dest: random cursor, advanced before each check",
    build,
    exhaustive: true,
    extra_probes: super::no_extra_probes,
    check: super::no_settings,
};

struct FreeBsd {
    rng: ChaCha8Rng,
}

fn build(s: Setup<'_>) -> Box<dyn Allocator> {
    Box::new(FreeBsd { rng: s.rng })
}

impl Allocator for FreeBsd {
    fn pick(&mut self, _: &Request, c: &Candidates<'_>) -> Option<u32> {
        let n = c.range();
        let cursor = if n > 1 {
            self.rng.random_range(0..n - 1)
        } else {
            0
        };
        // Advanced before the first check, wrapping past the last port.
        c.scan_from((cursor + 1) % n)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::fill;

    #[test]
    fn first_port_is_never_the_lowest_on_an_empty_table() {
        // The first pick is cursor + 1 with the cursor uniform over 0..n-1:
        // over 300 seeds port 0 never comes first, and every other port of
        // a 4-port range does (each with probability 1/3; one missing has
        // probability below 3·(2/3)^300).
        let firsts: Vec<u32> = (0..300).map(|seed| fill("freebsd", 4, seed)[0]).collect();
        assert!(!firsts.contains(&0));
        for p in 1..4 {
            assert!(firsts.contains(&p), "{p} never first");
        }
    }
}
