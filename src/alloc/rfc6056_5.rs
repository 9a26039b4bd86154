//! `rfc6056-5`: Random-Increments Port Randomization (RFC 6056 §3.3.5): one
//! global `next`, advanced by a random step in `1..=N` before every probe, at
//! most `num` probes. Small N is nearly sequential; large N revisits recent
//! ports more. It may give up while free ports remain.
//!
//! When no port at all is usable the outcome is certain, so the `num` steps
//! are not drawn one by one: their sum modulo the range is drawn uniformly,
//! which is what it is to within a negligible error once the sum's standard
//! deviation `N·sqrt(num/12)` exceeds the range; below that, the steps are
//! drawn one by one.

use rand::RngExt;
use rand_chacha::ChaCha8Rng;

use super::{Allocator, Candidates, Entry, Request, Setup};

pub const ENTRY: Entry = Entry {
    name: "rfc6056-5",
    summary: "RFC 6056 alg. 5: random increments in 1..=N (N = 500) from one global counter",
    build,
    exhaustive: false,
    extra_probes,
    check,
};

/// Steps are drawn from 1..=N, so N is at least 1.
fn check(s: &super::Settings) -> Result<(), (&'static str, String)> {
    if s.rfc6056_5_increment == 0 {
        return Err((
            "host.rfc6056_5_increment",
            "found 0; expected N >= 1 (RFC 6056 suggests 500)".into(),
        ));
    }
    Ok(())
}

struct RandomIncrements {
    rng: ChaCha8Rng,
    next: u64,
    increment: u32,
}

fn build(mut s: Setup<'_>) -> Box<dyn Allocator> {
    let next = u64::from(s.rng.random::<u16>());
    Box::new(RandomIncrements {
        rng: s.rng,
        next,
        increment: s.settings.rfc6056_5_increment,
    })
}

/// Whether `num = n` steps in `1..=increment` wrap round a range of `n`
/// so often that their sum modulo `n` is uniform (standard deviation
/// `N·sqrt(n/12)` of at least `n`): then a failed walk is one draw.
fn sum_is_uniform(n: u32, increment: u32) -> bool {
    f64::from(increment) * (f64::from(n) / 12.0).sqrt() >= f64::from(n)
}

/// The walk near exhaustion: about `n / free` steps to land on one of
/// `free` usable ports, the whole range when none is free (one draw when
/// the sum of the steps is uniform).
fn extra_probes(h: &super::Settings, usable: u32, erlangs: f64) -> f64 {
    let n = h.range;
    let full = if sum_is_uniform(n, h.rfc6056_5_increment) {
        1.0
    } else {
        f64::from(n)
    };
    super::walk_probes(n, usable, erlangs, full)
}

impl Allocator for RandomIncrements {
    fn pick(&mut self, _: &Request, c: &Candidates<'_>) -> Option<u32> {
        let n = c.range();
        if sum_is_uniform(n, self.increment) && c.count() == 0 {
            self.next = self
                .next
                .wrapping_add(u64::from(self.rng.random_range(0..n)));
            return None;
        }
        for _ in 0..n {
            self.next = self
                .next
                .wrapping_add(u64::from(self.rng.random_range(1..=self.increment)));
            let p = (self.next % u64::from(n)) as u32;
            if c.is_usable(p) {
                return Some(p);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::fill;

    #[test]
    fn hands_out_most_of_the_range() {
        // Random steps cover most ports before giving up; a broken step (always
        // the same residue) would cover a small fraction.
        let ports = fill("rfc6056-5", 1000, 2);
        assert!(ports.len() > 500, "{}", ports.len());
    }
}
