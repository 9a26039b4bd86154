//! `rfc6056-3`: Simple Hash-Based Port Randomization (RFC 6056 §3.3.3), as
//! in Linux before 5.12: start at `next + F(local, remote, port, secret)`,
//! probe linearly, and advance one global `next` by every port examined.
//! Connections to one destination walk through the range in order; different
//! destinations start at independent offsets.

use rand::RngExt;

use super::{mix64, Allocator, Candidates, Entry, Request, Setup};

pub const ENTRY: Entry = Entry {
    name: "rfc6056-3",
    summary: "RFC 6056 alg. 3: per-destination hash offset + one global counter",
    build,
    exhaustive: true,
    extra_probes: super::no_extra_probes,
    check: super::no_settings,
};

struct HashOffset {
    secret: u64,
    next: u64,
}

fn build(mut s: Setup<'_>) -> Box<dyn Allocator> {
    Box::new(HashOffset {
        secret: s.rng.random(),
        next: s.rng.random::<u32>().into(),
    })
}

impl Allocator for HashOffset {
    fn pick(&mut self, req: &Request, c: &Candidates<'_>) -> Option<u32> {
        let n = u64::from(c.range());
        let offset = mix64(req.flow_key ^ self.secret);
        let start = (self.next.wrapping_add(offset) % n) as u32;
        match c.scan_from(start) {
            Some(p) => {
                self.next = self.next.wrapping_add(u64::from(c.probes(start, p)));
                Some(p)
            }
            None => {
                self.next = self.next.wrapping_add(n);
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::fill;

    #[test]
    fn one_destination_walks_the_range_in_order() {
        let ports = fill("rfc6056-3", 100, 5);
        for w in ports.windows(2) {
            assert_eq!((w[0] + 1) % 100, w[1]);
        }
    }
}
