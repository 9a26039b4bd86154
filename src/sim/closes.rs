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
    Timed {
        lane: Lane,
        holds: HoldSampler,
        requests: u32,
    },
    Memoryless {
        rng: ChaCha8Rng,
        mean_ns: f64,
        open: Vec<u32>,
        /// When the next close is due.
        next: Due,
    },
    /// Holds given per connection (a replayed trace).
    Given { lane: Lane },
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
        let requests = sc.traffic.requests_per_connection;
        match sc.traffic.hold {
            Hold::Exponential { mean_ns } if requests == 1 => Closes::Memoryless {
                rng: rng(sc.seed, Stream::at(site, stream::HOLD)),
                mean_ns,
                open: Vec::new(),
                next: Due::NEVER,
            },
            hold => Closes::Timed {
                lane: Lane::new(matches!(hold, Hold::Constant { .. }) && requests == 1),
                holds: HoldSampler::at(sc.seed, site, hold),
                requests,
            },
        }
    }

    /// A connection opened at `now`: decide (or account for) its close.
    #[inline]
    pub fn open(&mut self, now: u64, slot: u32) {
        match self {
            Closes::Timed {
                lane,
                holds,
                requests,
            } => {
                // A constant hold sums in one multiplication; a random one
                // is drawn per request (the work estimate counts the draws).
                let hold = match holds.constant() {
                    Some(ns) => ns.saturating_mul(u64::from(*requests)),
                    None => (0..*requests).fold(0u64, |h, _| h.saturating_add(holds.sample())),
                };
                lane.push(now.saturating_add(hold), slot);
            }
            Closes::Memoryless {
                rng,
                mean_ns,
                open,
                next,
            } => {
                let k = open.len() as f64;
                let now = now as f64;
                next.set(if open.is_empty() {
                    now + next_gap(rng, *mean_ns, 1)
                } else {
                    now + (next.at - now) * k / (k + 1.0)
                });
                open.push(slot);
            }
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
            Closes::Timed { lane, .. } => lane.peek_time(),
            Closes::Memoryless { next, .. } => next.ns,
            Closes::Given { lane } => lane.peek_time(),
        }
    }

    /// The connection that closes at `peek_time()`.
    #[inline]
    pub fn pop(&mut self) -> u32 {
        match self {
            Closes::Timed { lane, .. } | Closes::Given { lane } => lane.pop().expect("peeked").1,
            Closes::Memoryless {
                rng,
                mean_ns,
                open,
                next,
            } => {
                let i = rng.random_range(0..open.len());
                let slot = open.swap_remove(i);
                next.set(if open.is_empty() {
                    f64::INFINITY
                } else {
                    next.at + next_gap(rng, *mean_ns, open.len())
                });
                slot
            }
        }
    }
}
