//! Closed-form expectations printed beside every simulation.
//!
//! Ports behave like servers in a loss system: a connection holds a port for
//! its hold time plus TIME_WAIT, and an attempt that finds none usable fails.
//! With Poisson arrivals and an allocator that scans the whole range, the
//! failure ratio of one pool of `c` ports offered `A` erlangs is Erlang B,
//! whatever the hold-time distribution (Erlang B is insensitive to it). Pools
//! are what compete for the same ports: each (address, destination) flow when
//! connect() shares ports by 4-tuple, each address when ports are exclusive.
//!
//! With `tcp_tw_reuse` where the engine applies it (client close, ports
//! shared by 4-tuple: [`crate::sim::host::port_rules`]), a connect() of the
//! same flow may take over a TIME_WAIT entry `tw_reuse_delay` after its
//! close, so a port is lost to its pool for hold + min(TIME_WAIT,
//! `tw_reuse_delay`), not hold + TIME_WAIT: the loss system is the same
//! with that service time, and Erlang B, the offered load and the ceiling
//! use it. Ports *in use* still count a TIME_WAIT entry until it expires or
//! is taken over, so Little's figure keeps the whole TIME_WAIT (a bound).

use schemars::JsonSchema;
use serde::Serialize;

use crate::scenario::{BindMode, Close, Pick, Scenario, NS_PER_S};

/// Erlang B blocking probability for `c` servers and offered load `a`,
/// by the stable recursion B(k) = a·B(k-1) / (k + a·B(k-1)), B(0) = 1.
/// Once B underflows to 0 it stays 0, so the loop stops there: light loads
/// cost a few hundred steps, not `c`.
pub fn erlang_b(c: u64, a: f64) -> f64 {
    if a.is_nan() || a <= 0.0 {
        return 0.0;
    }
    let mut b = 1.0;
    for k in 1..=c {
        b = a * b / (k as f64 + a * b);
        if b == 0.0 {
            break;
        }
    }
    b
}

/// Above this many pools the Erlang B sum groups pools of one destination
/// instead of adding them one by one (same figure, to rounding).
const MAX_POOLS_SUMMED: u64 = 1 << 20;

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Analytic {
    /// Connection rate × (mean hold + TIME_WAIT), erlangs (mean rate over
    /// the run); with `tw_reuse` applying, × (mean hold + min(TIME_WAIT,
    /// `tw_reuse_delay`)).
    pub offered_load: f64,
    /// The same at the highest rate of the profile.
    pub offered_load_peak: f64,
    /// Ports each pool can hand out (range less reserved ports).
    pub ports_per_pool: u32,
    /// Independent pools the load is spread over.
    pub pools: u64,
    /// Expected failure ratio by Erlang B, load-weighted over pools.
    #[schemars(range(min = 0.0, max = 1.0))]
    pub erlang_b_failure_ratio: f64,
    /// Mean ports in use by Little's law, ignoring failures: rate × (hold +
    /// TIME_WAIT). With `tw_reuse` an upper bound: entries taken over end early.
    pub little_mean_in_use: f64,
    /// Whether Erlang B's assumptions hold for this scenario; when not,
    /// `erlang_b_caveat` says which one fails and the figure is indicative only.
    pub erlang_b_applies: bool,
    pub erlang_b_caveat: Option<String>,
    /// The back-of-envelope ceiling: ports ÷ (hold + TIME_WAIT), connections/s
    /// per pool; with `tw_reuse` applying, ports ÷ (hold + min(TIME_WAIT,
    /// `tw_reuse_delay`)).
    pub max_rate_per_pool: f64,
    /// Whether `tw_reuse` shortens the time a port is lost to its pool (on,
    /// client close, ports shared by 4-tuple, delay shorter than TIME_WAIT).
    pub tw_reuse_applies: bool,
}

/// Whether `tw_reuse` lets a connect() take a port back before TIME_WAIT
/// ends, exactly when the engine does: on, ports shared by 4-tuple, client
/// close, and a delay shorter than TIME_WAIT (an entry that expires no later
/// than it becomes reusable never is).
pub fn tw_reuse_applies(sc: &Scenario) -> bool {
    crate::sim::host::port_rules(sc).1
        && sc.traffic.close == Close::Client
        && sc.host.tw_reuse_delay_ns < sc.host.time_wait_ns
}

/// Mean hold of one connection (all its requests), ns.
fn hold_ns(sc: &Scenario) -> f64 {
    sc.traffic.hold.mean_ns() * f64::from(sc.traffic.requests_per_connection)
}

/// How long one connection keeps its 4-tuple, TIME_WAIT included, in
/// seconds: its requests' mean hold plus TIME_WAIT.
fn occupancy_s(sc: &Scenario) -> f64 {
    (hold_ns(sc) + sc.effective_time_wait_ns() as f64) / NS_PER_S as f64
}

/// How long one connection keeps a port from its pool, in seconds: hold
/// plus TIME_WAIT, or plus `tw_reuse_delay` when `tw_reuse` takes the
/// entry over sooner.
fn service_s(sc: &Scenario) -> f64 {
    if tw_reuse_applies(sc) {
        (hold_ns(sc) + sc.host.tw_reuse_delay_ns as f64) / NS_PER_S as f64
    } else {
        occupancy_s(sc)
    }
}

/// The highest rate a profile reaches within `[0, horizon_s]`.
pub fn peak_rate(rate: &crate::scenario::RateProfile, horizon_s: f64) -> f64 {
    let segs = &rate.segments;
    segs.iter()
        .enumerate()
        .map(|(i, s)| {
            let end = segs
                .get(i + 1)
                .map_or(horizon_s, |n| n.start_s)
                .max(s.start_s);
            s.from.max(s.from + s.slope * (end - s.start_s))
        })
        .fold(0.0, f64::max)
}

/// `horizon_s` is the simulated time the rates are averaged over.
pub fn analytic(sc: &Scenario, horizon_s: f64) -> Analytic {
    let per_conn = f64::from(sc.traffic.requests_per_connection);
    let mean_rate = sc.traffic.rate.mean_rate(horizon_s) / per_conn;
    let peak_rate = peak_rate(&sc.traffic.rate, horizon_s) / per_conn;
    let service_s = service_s(sc);
    let c = sc.host.usable_ports();
    let addresses = sc.source_addresses();
    let exclusive = sc.exclusive_ports();
    // Each pool's share of the load: one per address when ports are
    // exclusive, else one per (destination, address). Pools are visited
    // lazily, never collected: a million destinations × 4,096 addresses is
    // 4e9 pools.
    let per_dest: Vec<f64> = if exclusive {
        vec![1.0]
    } else {
        let total: f64 = sc.destinations.iter().map(|d| d.weight).sum();
        let n = sc.destinations.len() as f64;
        sc.destinations
            .iter()
            .map(|d| match sc.traffic.pick {
                Pick::Weighted => d.weight / total,
                Pick::RoundRobin => 1.0 / n,
            })
            .collect()
    };
    let pools = per_dest.len() as u64 * addresses;
    let offered = mean_rate * service_s;
    // Erlang B of each distinct share, computed once.
    let mut cache: std::collections::BTreeMap<u64, f64> = Default::default();
    let mut b_of = |s: f64| {
        *cache
            .entry(s.to_bits())
            .or_insert_with(|| erlang_b(u64::from(c), offered * s))
    };
    let mut blocking = 0.0;
    if pools <= MAX_POOLS_SUMMED {
        // Pool by pool, in order: the sum every release has printed.
        for d in &per_dest {
            let s = d / addresses as f64;
            let b = b_of(s);
            for _ in 0..addresses {
                blocking += s * b;
            }
        }
    } else {
        for d in &per_dest {
            let s = d / addresses as f64;
            blocking += addresses as f64 * s * b_of(s);
        }
    }
    let caveat = erlang_b_caveat(sc);
    Analytic {
        erlang_b_applies: caveat.is_none(),
        erlang_b_caveat: caveat,
        offered_load: offered,
        offered_load_peak: peak_rate * service_s,
        ports_per_pool: c,
        pools,
        erlang_b_failure_ratio: blocking,
        little_mean_in_use: mean_rate * occupancy_s(sc),
        // A port held for no time at all is still held for the engine's
        // time step, 1 ns: the ceiling stays a finite number.
        max_rate_per_pool: f64::from(c) / service_s.max(1e-9),
        tw_reuse_applies: tw_reuse_applies(sc),
    }
}

/// Little's-law steady state at each moment, rate(t) × (mean hold + TIME_WAIT),
/// as the corners of a piecewise-linear curve over `[0, horizon_s]`: the level
/// occupancy settles at if the rate stayed at its value at `t`.
pub fn steady_state_curve(sc: &Scenario, horizon_s: f64) -> Vec<(f64, f64)> {
    let per_conn = f64::from(sc.traffic.requests_per_connection);
    let service_s = occupancy_s(sc);
    let profile = &sc.traffic.rate;
    let level = |t: f64| profile.at(t) / per_conn * service_s;
    let mut points = Vec::new();
    let segs = &profile.segments;
    for (i, seg) in segs.iter().enumerate() {
        if seg.start_s > horizon_s {
            break;
        }
        let end = segs
            .get(i + 1)
            .map_or(horizon_s, |n| n.start_s.min(horizon_s));
        points.push((seg.start_s, level(seg.start_s)));
        // The segment's own end value (a step begins at the next start).
        let v = (seg.from + seg.slope * (end - seg.start_s)).max(0.0) / per_conn * service_s;
        points.push((end, v));
    }
    points
}

/// The first assumption of Erlang B this scenario breaks, if any.
fn erlang_b_caveat(sc: &Scenario) -> Option<String> {
    let exhaustive = crate::alloc::entry(&sc.host.allocator).is_some_and(|e| e.exhaustive);
    if let Some(c) = sc.traffic.client.as_deref() {
        let load = if c.users.is_some() {
            "a closed loop's requests come at about users ÷ (hold + think), not as Poisson arrivals"
        } else {
            "requests reuse pooled connections"
        };
        Some(format!(
            "{load}; the figures count a connection per request, an upper bound (connections.opened is what the pools opened)"
        ))
    } else if !exhaustive {
        Some(format!(
            "{} may give up while ports are free",
            sc.host.allocator
        ))
    } else if sc.traffic.arrivals != crate::scenario::Arrivals::Poisson {
        Some("arrivals are not Poisson".into())
    } else if !sc.traffic.rate.is_constant() {
        Some("the rate changes over time (figures use the mean rate)".into())
    } else if sc.traffic.pick == Pick::RoundRobin
        && sc.destinations.len() > 1
        && !sc.exclusive_ports()
        || sc.traffic.source == Pick::RoundRobin
            && sc.traffic.bind != BindMode::Connect
            && sc.host.addresses.len() > 1
    {
        Some("round-robin splits the arrivals into streams that are not Poisson".into())
    } else if sc.traffic.retry.is_some_and(|r| r.max > 0) {
        Some("retries add load that depends on failures".into())
    } else if (sc.host.max_tw_buckets as f64) < sc.host.usable_ports() as f64 {
        Some("max_tw_buckets cuts TIME_WAIT short".into())
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::erlang_b;

    #[test]
    fn erlang_b_matches_known_values() {
        // Textbook values: B(1, 1) = 1/2; B(2, 1) = 1/5; B(10, 5) ≈ 0.018385.
        assert!((erlang_b(1, 1.0) - 0.5).abs() < 1e-12);
        assert!((erlang_b(2, 1.0) - 0.2).abs() < 1e-12);
        assert!((erlang_b(10, 5.0) - 0.018_384_570).abs() < 1e-8);
        assert_eq!(erlang_b(5, 0.0), 0.0);
    }
}
