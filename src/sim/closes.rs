//! When open connections close.
//!
//! Three shapes, chosen by the hold-time distribution:
//! - constant hold: closes come out in connect order, so a FIFO lane;
//! - exponential hold (one request per connection): memoryless, so the next
//!   close among `k` open connections is Exp(k / mean) away and is a uniformly
//!   chosen one of them. No heap at all: when a connection opens, the pending
//!   time to the next close is rescaled by k/(k+1), which keeps it
//!   Exp((k+1)/mean) distributed and independent of the past;
//! - anything else: a heap of the open connections' close times;
//! - a replayed trace (`traffic.replay`): each connection's hold is its
//!   row's, given when it opens ([`Closes::open_held`]), so a heap too
//!   (holds differ, so closes do not come in connect order).

use rand::RngExt;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Exp1};

use super::layer::Site;
use super::queue::Lane;
use super::traffic::{rng, stream, whole_ns, HoldSampler, Stream};
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
    /// When the next close is due.
    next: Due,
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

/// Time to the next close among `open` connections with exponential holds
/// of mean `mean_ns`: Exp(open / mean).
#[inline]
fn next_gap(rng: &mut ChaCha8Rng, mean_ns: f64, open: usize) -> f64 {
    let e: f64 = Exp1.sample(rng);
    e * mean_ns / open as f64
}

/// When the next memoryless close is due: the exact time, and the same
/// truncated to whole ns for the event loop (`u64::MAX` when none is open).
pub struct Due {
    at: f64,
    ns: u64,
}

impl Due {
    const NEVER: Due = Due {
        at: f64::INFINITY,
        ns: u64::MAX,
    };

    #[inline]
    fn set(&mut self, at: f64) {
        self.at = at;
        self.ns = whole_ns(at);
    }
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
                    next: Due::NEVER,
                })
            }
            _ => None,
        }
    }
}

impl CloseProcess for Memoryless {
    #[inline(always)]
    fn open(&mut self, now: u64, slot: u32) {
        let k = self.open.len() as f64;
        let now = now as f64;
        let at = if self.open.is_empty() {
            now + next_gap(&mut self.rng, self.mean_ns, 1)
        } else {
            now + (self.next.at - now) * k / (k + 1.0)
        };
        self.next.set(at);
        self.open.push(slot);
    }

    #[inline]
    fn peek_time(&self) -> u64 {
        self.next.ns
    }

    #[inline(always)]
    fn pop(&mut self) -> u32 {
        let i = self.rng.random_range(0..self.open.len());
        let slot = self.open.swap_remove(i);
        let at = if self.open.is_empty() {
            f64::INFINITY
        } else {
            self.next.at + next_gap(&mut self.rng, self.mean_ns, self.open.len())
        };
        self.next.set(at);
        slot
    }
}
