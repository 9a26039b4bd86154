//! When open connections close.
//!
//! Three shapes, chosen by the hold-time distribution:
//! - constant hold: closes come out in connect order, so a FIFO lane;
//! - exponential hold (one request per connection): memoryless, so the next
//!   close among `k` open connections is Exp(k / mean) away and is a uniformly
//!   chosen one of them. No heap at all: when a connection opens, the pending
//!   time to the next close is rescaled by k/(k+1), which keeps it
//!   Exp((k+1)/mean) distributed and independent of the past. The factors
//!   k/(k+1) and mean/k are kept in tables, so an event multiplies rather
//!   than divides;
//! - anything else: a heap of the open connections' close times;
//! - a replayed trace (`traffic.replay`): each connection's hold is its
//!   row's, given when it opens ([`Closes::open_held`]), so a heap too
//!   (holds differ, so closes do not come in connect order).

use rand::RngExt;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Exp1};

use super::layer::Site;
use super::queue::Lane;
use super::traffic::{ns_f64, rng, stream, whole_ns, HoldSampler, Stream};
use crate::scenario::{Hold, Scenario};

pub enum Closes {
    Timed(Timed),
    Memoryless(Memoryless),
    /// Holds given per connection (a replayed trace).
    Given {
        lane: Lane,
    },
}

/// Closes a hold time after each open: a FIFO lane when every connection
/// is held the same, else a heap.
pub struct Timed {
    lane: Lane,
    holds: HoldSampler,
    requests: u32,
}

/// The memoryless close process of exponential holds.
pub struct Memoryless {
    rng: ChaCha8Rng,
    mean_ns: f64,
    open: Vec<u32>,
    /// When the next close is due, exactly (infinite when none is open),
    /// and the same truncated to whole ns for the event loop.
    next_at: f64,
    next_ns: u64,
    /// `k / (k + 1)` and `mean / k` by `k`, grown as needed.
    shrink: Vec<f64>,
    mean_over: Vec<f64>,
}

/// What an engine asks of its close process. The enum [`Closes`] answers
/// for any traffic; an engine that knows the shape it runs takes the one
/// process directly, so the calls inline.
pub trait CloseProcess {
    /// A connection (`slot`: whatever the engine names it by) opened at `now`.
    fn open(&mut self, now: u64, slot: u32);
    /// When the next close is due (`u64::MAX`: none is open).
    fn peek_time(&self) -> u64;
    /// The connection that closes at `peek_time()`.
    fn pop(&mut self) -> u32;
}

/// An Exp(1) draw.
#[inline(always)]
fn exp1(rng: &mut ChaCha8Rng) -> f64 {
    Exp1.sample(rng)
}

impl Closes {
    pub fn new(sc: &Scenario) -> Closes {
        Self::at(sc, Site::HOST0)
    }

    /// The closes of `sc`'s traffic, drawing from the streams of `site`.
    pub fn at(sc: &Scenario, site: Site) -> Closes {
        if sc.traffic.replay.is_some() {
            return Closes::Given {
                lane: Lane::new(false),
            };
        }
        match Memoryless::of(sc, site) {
            Some(m) => Closes::Memoryless(m),
            None => Closes::Timed(Timed::of(sc, site)),
        }
    }

    /// A connection opened at `now`: decide (or account for) its close.
    #[inline]
    pub fn open(&mut self, now: u64, slot: u32) {
        match self {
            Closes::Timed(c) => c.open(now, slot),
            Closes::Memoryless(c) => c.open(now, slot),
            Closes::Given { .. } => {
                unreachable!("a replayed connection closes at its row's hold (open_held)")
            }
        }
    }

    /// A replayed connection opened at `now`, held `hold_ns`.
    #[inline]
    pub fn open_held(&mut self, now: u64, slot: u32, hold_ns: u64) {
        match self {
            Closes::Given { lane } => lane.push(now.saturating_add(hold_ns), slot),
            _ => unreachable!("only a replayed trace gives holds"),
        }
    }

    #[inline]
    pub fn peek_time(&self) -> u64 {
        match self {
            Closes::Timed(c) => c.peek_time(),
            Closes::Memoryless(c) => c.peek_time(),
            Closes::Given { lane } => lane.peek_time(),
        }
    }

    /// The connection that closes at `peek_time()`.
    #[inline]
    pub fn pop(&mut self) -> u32 {
        match self {
            Closes::Timed(c) => c.pop(),
            Closes::Memoryless(c) => c.pop(),
            Closes::Given { lane } => lane.pop().expect("peeked").1,
        }
    }
}

impl Timed {
    /// The closes of `sc`'s traffic at `site` when they are not memoryless.
    pub fn of(sc: &Scenario, site: Site) -> Timed {
        let requests = sc.traffic.requests_per_connection;
        let hold = sc.traffic.hold;
        Timed {
            lane: Lane::new(matches!(hold, Hold::Constant { .. }) && requests == 1),
            holds: HoldSampler::at(sc.seed, site, hold),
            requests,
        }
    }
}

impl CloseProcess for Timed {
    #[inline]
    fn open(&mut self, now: u64, slot: u32) {
        // A constant hold sums in one multiplication; a random one is drawn
        // per request (the work estimate counts the draws).
        let hold = match self.holds.constant() {
            Some(ns) => ns.saturating_mul(u64::from(self.requests)),
            None => (0..self.requests).fold(0u64, |h, _| h.saturating_add(self.holds.sample())),
        };
        self.lane.push(now.saturating_add(hold), slot);
    }

    #[inline]
    fn peek_time(&self) -> u64 {
        self.lane.peek_time()
    }

    #[inline]
    fn pop(&mut self) -> u32 {
        self.lane.pop().expect("peeked").1
    }
}

impl Memoryless {
    /// The closes of `sc`'s traffic at `site` when they are memoryless:
    /// exponential holds, one request per connection.
    pub fn of(sc: &Scenario, site: Site) -> Option<Memoryless> {
        match sc.traffic.hold {
            Hold::Exponential { mean_ns } if sc.traffic.requests_per_connection == 1 => {
                Some(Memoryless {
                    rng: rng(sc.seed, Stream::at(site, stream::HOLD)),
                    mean_ns,
                    open: Vec::new(),
                    next_at: f64::INFINITY,
                    next_ns: u64::MAX,
                    shrink: Vec::new(),
                    mean_over: Vec::new(),
                })
            }
            _ => None,
        }
    }

    /// Grow the tables past `k`.
    #[cold]
    fn grow_tables(&mut self, k: usize) {
        let n = (k + 1).next_power_of_two().max(1024);
        let mean = self.mean_ns;
        self.shrink = (0..n).map(|k| k as f64 / (k as f64 + 1.0)).collect();
        self.mean_over = (0..n).map(|k| mean / k.max(1) as f64).collect();
    }
}

impl CloseProcess for Memoryless {
    #[inline(always)]
    fn open(&mut self, now: u64, slot: u32) {
        let now = ns_f64(now);
        let k = self.open.len();
        if self.shrink.len() <= k {
            self.grow_tables(k);
        }
        let at = if k == 0 {
            now + exp1(&mut self.rng) * self.mean_ns
        } else {
            now + (self.next_at - now) * self.shrink[k]
        };
        self.next_at = at;
        self.next_ns = whole_ns(at);
        self.open.push(slot);
    }

    #[inline]
    fn peek_time(&self) -> u64 {
        self.next_ns
    }

    #[inline(always)]
    fn pop(&mut self) -> u32 {
        let i = self.rng.random_range(0..self.open.len());
        let slot = self.open.swap_remove(i);
        let at = if self.open.is_empty() {
            f64::INFINITY
        } else {
            self.next_at + exp1(&mut self.rng) * self.mean_over[self.open.len()]
        };
        self.next_at = at;
        self.next_ns = whole_ns(at);
        slot
    }
}
