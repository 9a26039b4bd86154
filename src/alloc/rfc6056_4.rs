//! `rfc6056-4`: Double-Hash Port Randomization (RFC 6056 §3.3.4): start at
//! `F(flow) + table[G(flow)]`, probe linearly, and advance that one table
//! entry by every port examined. The counters are shared only by flows that
//! hash to the same entry, so one busy destination does not move the others.
//! The table has the RFC's example length of 10 entries, randomly filled.

use rand::RngExt;

use super::{mix64, Allocator, Candidates, Entry, Request, Setup};

pub const ENTRY: Entry = Entry {
    name: "rfc6056-4",
    summary: "RFC 6056 alg. 4: hash offset + a perturbation-table counter per flow bucket",
    build,
    exhaustive: true,
    extra_probes: super::no_extra_probes,
    check: super::no_settings,
};

const TABLE_LENGTH: usize = 10;

struct DoubleHash {
    key1: u64,
    key2: u64,
    table: [u32; TABLE_LENGTH],
}

fn build(mut s: Setup<'_>) -> Box<dyn Allocator> {
    let key1 = s.rng.random();
    let key2 = s.rng.random();
    let mut table = [0u32; TABLE_LENGTH];
    table.iter_mut().for_each(|t| *t = s.rng.random());
    Box::new(DoubleHash { key1, key2, table })
}

impl Allocator for DoubleHash {
    fn pick(&mut self, req: &Request, c: &Candidates<'_>) -> Option<u32> {
        let n = u64::from(c.range());
        let offset = mix64(req.flow_key ^ self.key1);
        let idx = (mix64(req.flow_key ^ self.key2) % TABLE_LENGTH as u64) as usize;
        let start = (offset.wrapping_add(u64::from(self.table[idx])) % n) as u32;
        let (found, probes) = match c.scan_from(start) {
            Some(p) => (Some(p), c.probes(start, p)),
            None => (None, c.range()),
        };
        self.table[idx] = self.table[idx].wrapping_add(probes);
        found
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::fill;

    #[test]
    fn one_destination_walks_the_range_in_order() {
        let ports = fill("rfc6056-4", 100, 9);
        for w in ports.windows(2) {
            assert_eq!((w[0] + 1) % 100, w[1]);
        }
    }
}
