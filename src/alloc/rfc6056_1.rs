//! `rfc6056-1`: Simple Port Randomization (RFC 6056 §3.3.1): a random start,
//! then a linear probe over the whole range (FreeBSD's `in_pcb_lport_dest()`
//! is this with an off-by-one start; see `freebsd`). It finds a free port whenever one exists; ports just after long busy runs
//! are picked more often.

use rand::RngExt;
use rand_chacha::ChaCha8Rng;

use super::{Allocator, Candidates, Entry, Request, Setup};

pub const ENTRY: Entry = Entry {
    name: "rfc6056-1",
    summary: "RFC 6056 alg. 1: random start, then linear probe",
    build,
    exhaustive: true,
    extra_probes: super::no_extra_probes,
    check: super::no_settings,
};

/// The allocator itself, public so an engine can call it without a box.
pub struct RandomStart {
    rng: ChaCha8Rng,
}

impl RandomStart {
    /// Drawing its starts from `rng` (the allocator stream).
    pub fn new(rng: ChaCha8Rng) -> Self {
        RandomStart { rng }
    }
}

fn build(s: Setup<'_>) -> Box<dyn Allocator> {
    Box::new(RandomStart::new(s.rng))
}

impl Allocator for RandomStart {
    #[inline(always)]
    fn pick(&mut self, _: &Request, c: &Candidates<'_>) -> Option<u32> {
        let start = self.rng.random_range(0..c.range());
        c.scan_from(start)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::fill;

    #[test]
    fn first_picks_spread_over_the_range() {
        // With an empty table the first pick is the random start itself:
        // uniform over 0..n. 400 seeds, 4 quarters: each expects 100, sd ≈ 8.7;
        // a bound of 100 ± 45 (over 5 sd) fails only if the start is not random.
        let mut quarters = [0u32; 4];
        for seed in 0..400 {
            quarters[(fill("rfc6056-1", 1000, seed)[0] / 250) as usize] += 1;
        }
        assert!(
            quarters.iter().all(|&q| (55..=145).contains(&q)),
            "{quarters:?}"
        );
    }
}
