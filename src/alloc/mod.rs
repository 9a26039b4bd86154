//! Port allocators: how a free port is chosen.
//!
//! An allocator only decides *which* usable port to take, probing in its own
//! order; whether a port is usable (range, reserved ports, bind() owners,
//! 4-tuple uniqueness, TIME_WAIT and its reuse) is decided by the port space
//! and handed over as [`Candidates`]. So each algorithm is one small file, and
//! adding one is that file plus one line in [`REGISTRY`].
//!
//! Every allocator owns its random generator (its own ChaCha stream of the
//! scenario seed), so its draws never shift those of arrivals or hold times.

mod freebsd;
mod linux;
pub mod linux_udp;
mod rfc6056_1;
mod rfc6056_2;
mod rfc6056_3;
mod rfc6056_4;
mod rfc6056_5;
mod sequential;

use rand_chacha::ChaCha8Rng;

pub use crate::ports::Candidates;
pub use rfc6056_1::RandomStart;

/// What an allocator may know about a request.
#[derive(Debug, Clone, Copy)]
pub struct Request {
    /// Local address index.
    pub addr: u32,
    /// Destination index.
    pub dest: u32,
    /// A stable 64-bit key of (local address, destination address, port):
    /// the input of hash-based algorithms.
    pub flow_key: u64,
    /// Simulated time, nanoseconds.
    pub now_ns: u64,
    /// bind(port 0) before connect(): the port must be free on the address.
    pub bind: bool,
}

/// Chooses a port among the usable ones.
pub trait Allocator {
    /// The index (0-based within the range) of the chosen port, or `None`
    /// when the algorithm gives up (EADDRNOTAVAIL).
    fn pick(&mut self, req: &Request, c: &Candidates<'_>) -> Option<u32>;
}

/// A boxed allocator is one (an engine generic over its allocator takes
/// either a concrete one, called directly, or any through its box).
impl Allocator for Box<dyn Allocator> {
    #[inline]
    fn pick(&mut self, req: &Request, c: &Candidates<'_>) -> Option<u32> {
        (**self).pick(req, c)
    }
}

/// What an allocator reads of its host's settings (the scenario layer
/// above fills it in from `[host]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// Ports in the range, reserved ones included.
    pub range: u32,
    /// Tries of `rfc6056-2` (RFC 6056 `num`); `None`: the range size.
    pub rfc6056_2_tries: Option<u32>,
    /// `N` of `rfc6056-5` (random increments in 1..=N).
    pub rfc6056_5_increment: u32,
}

/// What an allocator is built from.
pub struct Setup<'a> {
    pub settings: &'a Settings,
    /// The allocator's own random stream.
    pub rng: ChaCha8Rng,
}

/// A registered allocator.
pub struct Entry {
    pub name: &'static str,
    pub summary: &'static str,
    pub build: fn(Setup<'_>) -> Box<dyn Allocator>,
    /// Finds a usable port whenever one exists (so Erlang B applies).
    pub exhaustive: bool,
    /// Expected probes per attempt beyond the first, for a pool of the
    /// host's range with `usable` ports offered `erlangs`: the work
    /// estimate's share for this allocator ([`no_extra_probes`] for those
    /// that scan by words or draw in O(1)).
    pub extra_probes: fn(settings: &Settings, usable: u32, erlangs: f64) -> f64,
    /// Check the settings this allocator owns (`host.rfc6056_*`): the
    /// scenario key and what is wrong, or [`no_settings`].
    pub check: fn(settings: &Settings) -> Result<(), (&'static str, String)>,
}

/// The allocator has no settings of its own.
pub fn no_settings(_: &Settings) -> Result<(), (&'static str, String)> {
    Ok(())
}

/// The allocator's cost per attempt does not grow with the load.
pub fn no_extra_probes(_: &Settings, _: u32, _: f64) -> f64 {
    0.0
}

/// Expected probes per attempt beyond the first for an allocator that walks
/// the range at random: about `n / free` to find one of `free` usable ports
/// among `n`, at most `n`, weighted by how likely each number of free ports
/// is. The busy ports of a pool of `c` offered `a` erlangs follow the
/// truncated Poisson law of Erlang's loss system, P(b) ∝ aᵇ/b!, b = 0..=c.
/// `full` is the cost when no port is free.
pub fn walk_probes(n: u32, c: u32, a: f64, full: f64) -> f64 {
    walk_probes_within(n, c, a, full, f64::from(n))
}

/// [`walk_probes`] for a search that gives up, or ends otherwise, after
/// `most` probes whatever the free ports: no state costs more.
pub fn walk_probes_within(n: u32, c: u32, a: f64, full: f64, most: f64) -> f64 {
    if a.is_nan() || a <= 0.0 || c == 0 {
        return 0.0;
    }
    // log P(b) up to a constant, from b = 0; normalised at the end.
    let ln_a = a.ln();
    let mut ln_w = Vec::with_capacity(c as usize + 1);
    let mut acc = 0.0;
    ln_w.push(0.0);
    for b in 1..=c {
        acc += ln_a - f64::from(b).ln();
        ln_w.push(acc);
    }
    let max = ln_w.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let (mut total, mut probes) = (0.0, 0.0);
    for (b, lw) in ln_w.iter().enumerate() {
        let p = (lw - max).exp();
        let free = c - b as u32;
        let cost = if free == 0 {
            full
        } else {
            (f64::from(n) / f64::from(free)).min(most)
        };
        total += p;
        probes += p * (cost - 1.0).max(0.0);
    }
    probes / total
}

/// Every allocator a scenario can name.
pub const REGISTRY: &[Entry] = &[
    linux::ENTRY,
    linux_udp::ENTRY,
    freebsd::ENTRY,
    sequential::ENTRY,
    rfc6056_1::ENTRY,
    rfc6056_2::ENTRY,
    rfc6056_3::ENTRY,
    rfc6056_4::ENTRY,
    rfc6056_5::ENTRY,
];

pub fn names() -> Vec<&'static str> {
    REGISTRY.iter().map(|e| e.name).collect()
}

pub fn entry(name: &str) -> Option<&'static Entry> {
    REGISTRY.iter().find(|e| e.name == name)
}

pub use crate::util::mix64;

#[cfg(test)]
pub(crate) mod testing {
    //! A small harness: a port space with some ports taken, and a request.
    use super::*;
    use crate::ports::{PortSpace, Ports, Sharing, Take};
    use rand::SeedableRng;

    pub fn host(lo: u16, hi: u16) -> crate::scenario::Host {
        crate::scenario::load_str(
            &format!(
                "name='t'\nduration='1s'\n[host]\nport_range='{lo}-{hi}'\n[[destinations]]\naddress='10.0.0.1:80'\n[traffic]\nrate=1\nhold='1s'\n"
            ),
            std::path::Path::new("t.toml"),
            &[],
        )
        .expect("test scenario")
        .host
    }

    pub fn build(name: &str, host: &crate::scenario::Host, seed: u64) -> Box<dyn Allocator> {
        (entry(name).expect("registered").build)(Setup {
            settings: &host.alloc_settings(),
            rng: ChaCha8Rng::seed_from_u64(seed),
        })
    }

    pub fn req(dest: u32) -> Request {
        Request {
            addr: 0,
            dest,
            flow_key: mix64(u64::from(dest)),
            now_ns: 0,
            bind: false,
        }
    }

    /// Allocate until failure; returns the ports in order.
    pub fn fill(name: &str, n: u32, seed: u64) -> Vec<u32> {
        let h = host(1000, 1000 + n as u16 - 1);
        let mut a = build(name, &h, seed);
        let mut s = PortSpace::new(n, 1, []);
        let mut out = Vec::new();
        loop {
            let c = s.candidates(0, s.flow(1), Sharing::FourTuple);
            match a.pick(&req(1), &c) {
                Some(p) => {
                    assert!(c.is_usable(p), "{name} picked an unusable port {p}");
                    s.occupy(Take::port(p));
                    out.push(p);
                }
                None => return out,
            }
            assert!(
                out.len() <= n as usize,
                "{name} handed out more ports than exist"
            );
        }
    }

    #[test]
    fn walk_probes_follow_the_loss_system() {
        // No load: every port free, one probe finds one.
        assert_eq!(super::walk_probes(1000, 1000, 0.0, 1000.0), 0.0);
        // A light load (10 erlangs on 1,000 ports): about n / (c - a) - 1
        // = 1000/990 - 1 ≈ 0.0101 extra probes.
        let light = super::walk_probes(1000, 1000, 10.0, 1000.0);
        assert!((light - 0.0101).abs() < 0.001, "{light}");
        // Overload (10× the ports): the pool is full or nearly so, and a
        // walk costs close to the whole range.
        let heavy = super::walk_probes(1000, 1000, 10_000.0, 1000.0);
        assert!(heavy > 900.0, "{heavy}");
        // When a full pool fails at once, overload costs far less.
        assert!(super::walk_probes(1000, 1000, 10_000.0, 1.0) < heavy / 2.0);
    }

    #[test]
    fn each_allocator_checks_its_own_settings() {
        let ok = Settings {
            range: 100,
            rfc6056_2_tries: None,
            rfc6056_5_increment: 500,
        };
        for e in REGISTRY {
            assert_eq!((e.check)(&ok), Ok(()), "{}", e.name);
        }
        let refused = |s: Settings| -> Vec<&str> {
            REGISTRY
                .iter()
                .filter_map(|e| (e.check)(&s).err().map(|(key, _)| key))
                .collect()
        };
        let no_tries = Settings {
            rfc6056_2_tries: Some(0),
            ..ok
        };
        assert_eq!(refused(no_tries), vec!["host.rfc6056_2_tries"]);
        let no_step = Settings {
            rfc6056_5_increment: 0,
            ..ok
        };
        assert_eq!(refused(no_step), vec!["host.rfc6056_5_increment"]);
    }

    #[test]
    fn exhaustive_allocators_hand_out_every_port_once() {
        for e in REGISTRY.iter().filter(|e| e.exhaustive) {
            let mut ports = fill(e.name, 200, 7);
            assert_eq!(ports.len(), 200, "{}", e.name);
            ports.sort_unstable();
            ports.dedup();
            assert_eq!(ports.len(), 200, "{} repeated a port", e.name);
        }
    }

    #[test]
    fn every_allocator_is_deterministic_for_a_seed() {
        for e in REGISTRY {
            assert_eq!(fill(e.name, 150, 3), fill(e.name, 150, 3), "{}", e.name);
        }
    }
}
