//! `rfc6056-2`: Another Simple Port Randomization (RFC 6056 §3.3.2): up to
//! `num` independent uniform picks; the first usable one wins. It may give up
//! while free ports remain.
//!
//! Simulated exactly in distribution without drawing every try: with `k`
//! usable ports of `n`, each try succeeds with probability `k/n`, so the number
//! of failed tries before the first success is Geometric(k/n) and the winner
//! is uniform among the usable ports. One or two draws instead of up to `num`,
//! which matters once the table is nearly full.

use rand::RngExt;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Geometric};

use super::{Allocator, Candidates, Entry, Request, Setup};

pub const ENTRY: Entry = Entry {
    name: "rfc6056-2",
    summary: "RFC 6056 alg. 2: up to `num` random picks (may fail with ports free)",
    build,
    exhaustive: false,
    extra_probes: super::no_extra_probes,
    check,
};

/// `num` is at least one try.
fn check(s: &super::Settings) -> Result<(), (&'static str, String)> {
    if s.rfc6056_2_tries == Some(0) {
        return Err((
            "host.rfc6056_2_tries",
            "found 0; expected at least 1 try".into(),
        ));
    }
    Ok(())
}

struct RandomPick {
    rng: ChaCha8Rng,
    tries: Option<u32>,
}

fn build(s: Setup<'_>) -> Box<dyn Allocator> {
    Box::new(RandomPick {
        rng: s.rng,
        tries: s.settings.rfc6056_2_tries,
    })
}

impl Allocator for RandomPick {
    fn pick(&mut self, _: &Request, c: &Candidates<'_>) -> Option<u32> {
        let n = c.range();
        let k = c.count();
        if k == 0 {
            return None;
        }
        let tries = u64::from(self.tries.unwrap_or(n));
        if k < n {
            let failures = Geometric::new(f64::from(k) / f64::from(n))
                .map(|g| g.sample(&mut self.rng))
                .unwrap_or(0);
            if failures >= tries {
                return None;
            }
        }
        c.select(self.rng.random_range(0..k))
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::fill;

    #[test]
    fn gives_up_before_the_table_is_full_sometimes() {
        // With num = n tries and one port left of n = 200, a pick fails with
        // probability (1 - 1/200)^200 ≈ e^-1 ≈ 0.37. Over 200 seeds the number
        // of runs that end before handing out all 200 ports is at least that
        // often: mean ≥ 73, sd ≤ 7; below 40 is far outside.
        let short = (0..200)
            .filter(|&s| fill("rfc6056-2", 200, s).len() < 200)
            .count();
        assert!(short >= 40, "only {short} of 200 runs gave up early");
    }
}
