//! Traffic generators: when connections arrive, how long they are held, and
//! where they go. Each has its own ChaCha stream of the scenario seed.
//!
//! Arrivals follow the rate profile by a time change: a unit-rate process
//! (Exp(1) gaps for Poisson, gaps of 1 for constant) is mapped through the
//! integral of the rate, solved in closed form on each linear segment. This is
//! exact for steps and ramps, with no thinning and no wasted draws.
//!
//! A replayed trace (`traffic.replay`) takes the place of arrivals and
//! destination picks ([`Source`]) and draws nothing.
//!
//! A stream is named by [`Stream`]: the layer and host it belongs to, and
//! its purpose. The host layer of host 0 maps to the bare purpose ids, so
//! those draws are the ones a single-host run has always made.

use rand::RngExt;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::weighted::WeightedIndex;
use rand_distr::{Distribution, Exp, Exp1, LogNormal, Poisson};

use super::layer::Site;
use crate::scenario::{Arrivals, Hold, Pick, RateProfile, ReplayRow, NS_PER_S};

/// Stream ids of the scenario seed, one per purpose. New purposes take new
/// ids, so adding a feature never shifts the draws of the others.
pub mod stream {
    pub const ARRIVALS: u64 = 1;
    pub const HOLD: u64 = 2;
    pub const DESTINATION: u64 = 3;
    pub const SOURCE: u64 = 4;
    pub const ALLOCATOR: u64 = 5;
    /// Which host of a fleet group a merged arrival belongs to.
    pub const HOST: u64 = 6;
    /// Retry jitter.
    pub const RETRY: u64 = 7;
    /// Virtual users' think times.
    pub const THINK: u64 = 8;
}

/// One random stream of the scenario seed: the purpose (one of [`stream`])
/// of one layer of one host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stream {
    pub layer: u16,
    pub host: u32,
    pub purpose: u16,
}

impl Stream {
    /// The stream for `purpose` at `site`.
    pub fn at(site: Site, purpose: u64) -> Stream {
        Stream {
            layer: site.layer,
            host: site.host,
            purpose: u16::try_from(purpose).expect("purpose ids are small"),
        }
    }

    /// The ChaCha stream id: layer, host and purpose in separate bits
    /// (`layer << 48 | host << 16 | purpose`), so distinct streams never
    /// share an id, and host 0's host layer is the bare purpose.
    pub fn id(self) -> u64 {
        (u64::from(self.layer) << 48) | (u64::from(self.host) << 16) | u64::from(self.purpose)
    }
}

pub fn rng(seed: u64, stream: Stream) -> ChaCha8Rng {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    r.set_stream(stream.id());
    r
}

/// A non-negative time in ns truncated to an integer; `u64::MAX` for an
/// infinite one ("never").
#[inline]
pub fn whole_ns(t: f64) -> u64 {
    if t < 9.0e18 {
        // In range: the signed conversion is one instruction, the unsigned
        // one a branchy sequence.
        t as i64 as u64
    } else if t.is_finite() {
        t as u64
    } else {
        u64::MAX
    }
}

/// A time in ns as a float, exactly as `t as f64` rounds it (the signed
/// conversion is one instruction, the unsigned one several).
#[inline(always)]
pub fn ns_f64(t: u64) -> f64 {
    if t < 1 << 63 {
        t as i64 as f64
    } else {
        t as f64
    }
}

/// Round a non-negative time in ns to an integer (cheaper than `f64::round`).
#[inline]
fn to_ns(x: f64) -> u64 {
    whole_ns(x + 0.5)
}

pub struct ArrivalClock {
    rng: ChaCha8Rng,
    kind: Arrivals,
    profile: RateProfile,
    /// Requests carried per connection: the connection clock runs that much slower.
    per_connection: f64,
    segment: usize,
    t_s: f64,
    /// Constant arrivals: units of the clock handed out so far, and the
    /// integral of the rate up to the start of the current segment. Each
    /// arrival is solved from these rather than from the previous arrival,
    /// so no rounding accumulates: at 30,000/s the 3,600,000th arrival is at
    /// exactly 120 s, and a ramp down to 0 hands out all of its integral.
    count: f64,
    area_before: f64,
    /// Poisson arrivals at one constant positive rate (connections per
    /// second before `per_connection`): the commonest clock, answered
    /// inline. 0 for any other.
    flat: f64,
    /// The flat clock's mean gap and its time, in ns: an arrival is one
    /// multiply and one add.
    gap_ns: f64,
    t_ns: f64,
}

impl ArrivalClock {
    pub fn new(seed: u64, kind: Arrivals, profile: RateProfile, per_connection: u32) -> Self {
        Self::at(seed, Site::HOST0, kind, profile, per_connection)
    }

    /// The arrivals of the host at `site`, from its own stream.
    pub fn at(
        seed: u64,
        site: Site,
        kind: Arrivals,
        profile: RateProfile,
        per_connection: u32,
    ) -> Self {
        let segs = &profile.segments;
        let flat = if kind == Arrivals::Poisson && segs.len() == 1 && segs[0].slope == 0.0 {
            segs[0].from.max(0.0)
        } else {
            0.0
        };
        ArrivalClock {
            flat,
            gap_ns: if flat > 0.0 {
                f64::from(per_connection) * NS_PER_S as f64 / flat
            } else {
                0.0
            },
            t_ns: 0.0,
            rng: rng(seed, Stream::at(site, stream::ARRIVALS)),
            kind,
            profile,
            per_connection: f64::from(per_connection),
            segment: 0,
            t_s: 0.0,
            count: 0.0,
            area_before: 0.0,
        }
    }

    /// The time between connections at `t_ns` at the rate then, in ns
    /// (infinite where the rate is 0).
    pub fn interval_at(&self, t_ns: u64) -> f64 {
        let rate = self.profile.at(t_ns as f64 / NS_PER_S as f64);
        self.per_connection / rate * NS_PER_S as f64
    }

    /// Time of the next connection attempt in ns, or `None` if the rate stays 0.
    #[inline(always)]
    pub fn next_arrival(&mut self) -> Option<u64> {
        if self.flat > 0.0 {
            let unit: f64 = Exp1.sample(&mut self.rng);
            self.t_ns += unit * self.gap_ns;
            return Some(to_ns(self.t_ns));
        }
        self.next_on_profile()
    }

    /// Connections per second of Poisson arrivals at one constant rate
    /// (`None` for any other clock): where counts of arrivals over a span
    /// may be drawn at once ([`Self::skip_to`]).
    pub fn flat_rate(&self) -> Option<f64> {
        (self.flat > 0.0).then(|| self.flat / self.per_connection)
    }

    /// When the last arrival of a [`Self::flat_rate`] clock happened, in
    /// ns, unrounded.
    pub fn time_ns(&self) -> f64 {
        debug_assert!(self.flat > 0.0);
        self.t_ns
    }

    /// A Poisson count of mean `mean`, drawn from the arrival stream.
    pub fn poisson(&mut self, mean: f64) -> u64 {
        match Poisson::new(mean) {
            Ok(p) => p.sample(&mut self.rng) as u64,
            Err(_) => 0,
        }
    }

    /// Move a [`Self::flat_rate`] clock to `t_s` without handing out the
    /// arrivals before it (the caller counted them with
    /// [`Self::poisson`]): the next arrival is an exponential gap after
    /// `t_s`, which is exact because Poisson arrivals are memoryless.
    pub fn skip_to(&mut self, t_ns: f64) {
        debug_assert!(self.flat > 0.0 && t_ns >= self.t_ns);
        self.t_ns = t_ns;
    }

    /// [`Self::next_arrival`] for any clock.
    #[inline(never)]
    fn next_on_profile(&mut self) -> Option<u64> {
        if self.kind == Arrivals::Constant {
            return self.next_constant();
        }
        let unit: f64 = match self.kind {
            Arrivals::Poisson => Exp1.sample(&mut self.rng),
            Arrivals::Constant => 1.0,
        };
        let mut need = unit * self.per_connection;
        let segs = &self.profile.segments;
        if segs.len() == 1 && segs[0].slope == 0.0 {
            // One constant rate: a positive one is the inline path above,
            // so this one is 0 and nothing ever arrives.
            return None;
        }
        loop {
            let s = segs[self.segment];
            let end = segs
                .get(self.segment + 1)
                .map_or(f64::INFINITY, |n| n.start_s);
            let r = (s.from + s.slope * (self.t_s - s.start_s)).max(0.0);
            let span = end - self.t_s;
            let area = if span.is_finite() {
                r * span + 0.5 * s.slope * span * span
            } else if r > 0.0 || s.slope > 0.0 {
                f64::INFINITY
            } else {
                return None;
            };
            if area >= need {
                // Solve r·x + slope/2·x² = need in a form stable for either sign of slope.
                let disc = (r * r + 2.0 * s.slope * need).max(0.0);
                let x = 2.0 * need / (r + disc.sqrt());
                // need = 0 on a flat zero stretch is 0/0: no time passes.
                let x = if x >= 0.0 { x } else { 0.0 };
                self.t_s += x.min(span);
                return Some(to_ns(self.t_s * NS_PER_S as f64));
            }
            need -= area;
            self.t_s = end;
            self.segment += 1;
        }
    }
}

impl ArrivalClock {
    /// The next of evenly spaced units of the rate's integral: the `k`-th
    /// arrival is where the integral reaches `k × per_connection`, solved on
    /// the segment that holds it.
    fn next_constant(&mut self) -> Option<u64> {
        self.count += 1.0;
        let total = self.count * self.per_connection;
        let segs = &self.profile.segments;
        if segs.len() == 1 && segs[0].slope == 0.0 {
            if segs[0].from <= 0.0 {
                return None;
            }
            self.t_s = total / segs[0].from;
            return Some(to_ns(self.t_s * NS_PER_S as f64));
        }
        loop {
            let s = segs[self.segment];
            let span = segs
                .get(self.segment + 1)
                .map_or(f64::INFINITY, |n| n.start_s - s.start_s);
            let area = if span.is_finite() {
                s.from * span + 0.5 * s.slope * span * span
            } else if s.from > 0.0 || s.slope > 0.0 {
                f64::INFINITY
            } else {
                return None;
            };
            let need = total - self.area_before;
            if area >= need {
                // Solve from·x + slope/2·x² = need, stable for either sign.
                let disc = (s.from * s.from + 2.0 * s.slope * need).max(0.0);
                let x = 2.0 * need / (s.from + disc.sqrt());
                let x = if x >= 0.0 { x } else { 0.0 };
                self.t_s = s.start_s + x.min(span);
                return Some(to_ns(self.t_s * NS_PER_S as f64));
            }
            self.area_before += area;
            self.segment += 1;
        }
    }
}

pub struct HoldSampler {
    rng: ChaCha8Rng,
    dist: HoldDist,
}

enum HoldDist {
    Constant(u64),
    Exp(Exp<f64>),
    LogNormal(LogNormal<f64>),
    Uniform(u64, u64),
}

impl HoldSampler {
    pub fn new(seed: u64, hold: Hold) -> Self {
        Self::at(seed, Site::HOST0, hold)
    }

    /// Hold times from the stream of `site`.
    pub fn at(seed: u64, site: Site, hold: Hold) -> Self {
        Self::from_stream(seed, Stream::at(site, stream::HOLD), hold)
    }

    /// Times of distribution `hold` drawn from `stream`.
    pub fn from_stream(seed: u64, stream: Stream, hold: Hold) -> Self {
        let dist = match hold {
            Hold::Constant { ns } => HoldDist::Constant(ns),
            Hold::Exponential { mean_ns } => {
                HoldDist::Exp(Exp::new(1.0 / mean_ns).expect("validated positive mean"))
            }
            Hold::LogNormal { mu, sigma } => {
                HoldDist::LogNormal(LogNormal::new(mu, sigma).expect("validated sigma"))
            }
            Hold::Uniform { min_ns, max_ns } => HoldDist::Uniform(min_ns, max_ns),
        };
        HoldSampler {
            rng: rng(seed, stream),
            dist,
        }
    }

    /// The hold time when it is not random.
    #[inline]
    pub fn constant(&self) -> Option<u64> {
        match self.dist {
            HoldDist::Constant(ns) => Some(ns),
            _ => None,
        }
    }

    #[inline]
    pub fn sample(&mut self) -> u64 {
        match &self.dist {
            HoldDist::Constant(ns) => *ns,
            HoldDist::Exp(e) => to_ns(e.sample(&mut self.rng)),
            HoldDist::LogNormal(l) => to_ns(l.sample(&mut self.rng).min(1e18)),
            HoldDist::Uniform(a, b) => self.rng.random_range(*a..=*b),
        }
    }
}

/// Where the engine's new connections come from: arrivals at the rate
/// profile to destinations the chooser picks, or the rows of a replayed
/// trace in order. An enum rather than a trait object, so the usual clock
/// costs one predictable branch per arrival. One lives on the stack of a
/// run, so the clock is kept inline rather than boxed.
#[allow(clippy::large_enum_variant)]
pub enum Source<'a> {
    Clock { clock: ArrivalClock, dests: Chooser },
    Replay { rows: &'a [ReplayRow], next: usize },
}

impl<'a> Source<'a> {
    /// The arrivals of a `[host]` scenario.
    pub fn new(sc: &'a crate::scenario::Scenario) -> Self {
        match &sc.traffic.replay {
            Some(r) => Source::Replay {
                rows: &r.rows,
                next: 0,
            },
            None => Source::Clock {
                clock: ArrivalClock::new(
                    sc.seed,
                    sc.traffic.arrivals,
                    sc.traffic.rate.clone(),
                    sc.traffic.requests_per_connection,
                ),
                dests: Chooser::destinations(sc),
            },
        }
    }

    /// Time of the next new connection (`u64::MAX`: none), after the one
    /// [`take`](Self::take) handed out.
    #[inline]
    pub fn next_arrival(&mut self) -> u64 {
        match self {
            Source::Clock { clock, .. } => clock.next_arrival().unwrap_or(u64::MAX),
            Source::Replay { rows, next } => rows.get(*next).map_or(u64::MAX, |r| r.start_ns),
        }
    }

    /// The connection due now: its destination, and its row of the trace
    /// (0 for the clock).
    #[inline]
    pub fn take(&mut self) -> (u32, u32) {
        match self {
            Source::Clock { dests, .. } => (dests.pick(), 0),
            Source::Replay { rows, next } => {
                let row = *next;
                *next += 1;
                (rows[row].dest, row as u32)
            }
        }
    }
}

/// Chooses among `n` items (destinations, source addresses) by weight or in turn.
pub struct Chooser {
    rng: ChaCha8Rng,
    n: u32,
    mode: Choice,
    turn: u32,
}

enum Choice {
    Single,
    RoundRobin,
    Uniform,
    Weighted(WeightedIndex<f64>),
}

impl Chooser {
    /// The destinations of one `[host]` scenario, by weight or in turn.
    pub fn destinations(sc: &crate::scenario::Scenario) -> Self {
        let weights: Vec<f64> = sc.destinations.iter().map(|d| d.weight).collect();
        Self::new(
            sc.seed,
            Stream::at(Site::HOST0, stream::DESTINATION),
            &weights,
            sc.traffic.pick,
        )
    }

    pub fn new(seed: u64, stream: Stream, weights: &[f64], pick: Pick) -> Self {
        let n = weights.len() as u32;
        let equal = weights.iter().all(|w| *w == weights[0]);
        let mode = if n == 1 {
            Choice::Single
        } else {
            match pick {
                Pick::RoundRobin => Choice::RoundRobin,
                Pick::Weighted if equal => Choice::Uniform,
                Pick::Weighted => Choice::Weighted(
                    WeightedIndex::new(weights.iter().copied())
                        .expect("validated positive weights"),
                ),
            }
        };
        Chooser {
            rng: rng(seed, stream),
            n,
            mode,
            turn: 0,
        }
    }

    /// The next item; a single item is answered without a call.
    #[inline(always)]
    pub fn pick(&mut self) -> u32 {
        if let Choice::Single = self.mode {
            return 0;
        }
        self.pick_among()
    }

    #[inline(never)]
    fn pick_among(&mut self) -> u32 {
        match &self.mode {
            Choice::Single => 0,
            Choice::RoundRobin => {
                let t = self.turn;
                self.turn = (t + 1) % self.n;
                t
            }
            Choice::Uniform => self.rng.random_range(0..self.n),
            Choice::Weighted(w) => w.sample(&mut self.rng) as u32,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::RateSegment;

    #[test]
    fn constant_arrivals_follow_steps_and_ramps() {
        let mut c = ArrivalClock::new(1, Arrivals::Constant, RateProfile::constant(4.0), 1);
        assert_eq!(c.next_arrival(), Some(250_000_000));
        assert_eq!(c.next_arrival(), Some(500_000_000));
        // Rate 0 then 2/s from t = 10 s: first arrival at 10.5 s.
        let steps = RateProfile {
            segments: vec![
                RateSegment {
                    start_s: 0.0,
                    from: 0.0,
                    slope: 0.0,
                },
                RateSegment {
                    start_s: 10.0,
                    from: 2.0,
                    slope: 0.0,
                },
            ],
        };
        let mut c = ArrivalClock::new(1, Arrivals::Constant, steps, 1);
        assert_eq!(c.next_arrival(), Some(10_500_000_000));
        // A ramp from 0 at slope 2/s²: arrivals where t² = k, i.e. t = sqrt(k).
        let ramp = RateProfile {
            segments: vec![RateSegment {
                start_s: 0.0,
                from: 0.0,
                slope: 2.0,
            }],
        };
        let mut c = ArrivalClock::new(1, Arrivals::Constant, ramp, 1);
        for k in 1..=4u32 {
            let t = c.next_arrival().unwrap() as f64 / 1e9;
            assert!((t - f64::from(k).sqrt()).abs() < 1e-9, "{t}");
        }
        // Keep-alive: 3 requests per connection at 3/s is one connection per second.
        let mut c = ArrivalClock::new(1, Arrivals::Constant, RateProfile::constant(3.0), 3);
        assert_eq!(c.next_arrival(), Some(1_000_000_000));
        // A rate that stays 0 never produces an arrival.
        let mut c = ArrivalClock::new(1, Arrivals::Poisson, RateProfile::constant(0.0), 1);
        assert_eq!(c.next_arrival(), None);
    }

    /// Host 0's host layer keeps the bare purpose ids (so its draws are
    /// unchanged); other layers and hosts get ids of their own.
    #[test]
    fn stream_ids_keep_host_zero_and_keep_apart() {
        for p in [
            stream::ARRIVALS,
            stream::HOLD,
            stream::DESTINATION,
            stream::SOURCE,
            stream::ALLOCATOR,
        ] {
            assert_eq!(Stream::at(Site::HOST0, p).id(), p);
        }
        let site = |layer, host| Site { layer, host };
        let ids = [
            Stream::at(site(0, 1), stream::ALLOCATOR).id(),
            Stream::at(site(1, 0), stream::ALLOCATOR).id(),
            Stream::at(site(1, 1), stream::ALLOCATOR).id(),
            Stream::at(site(0, u32::MAX), stream::ALLOCATOR).id(),
        ];
        assert_eq!(ids[0], (1 << 16) | 5);
        assert_eq!(ids[1], (1 << 48) | 5);
        assert_eq!(ids[2], (1 << 48) | (1 << 16) | 5);
        assert_eq!(ids[3], (u64::from(u32::MAX) << 16) | 5);
    }

    #[test]
    fn round_robin_cycles() {
        let mut c = Chooser::new(
            1,
            Stream::at(Site::HOST0, stream::DESTINATION),
            &[1.0, 5.0, 1.0],
            Pick::RoundRobin,
        );
        assert_eq!(
            (0..6).map(|_| c.pick()).collect::<Vec<_>>(),
            vec![0, 1, 2, 0, 1, 2]
        );
    }
}
