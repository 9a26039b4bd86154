//! The engine against results derived by hand, through the library API, in
//! two parts:
//! - `exact`: deterministic traffic (constant arrivals, constant holds) gives
//!   exact counts, checked against closed forms and an independent event loop;
//! - `queueing`: random traffic against Little's law, Erlang B and the loss
//!   models of the allocators that may give up, with bounds derived from the
//!   mathematics, stated next to each assertion.

use portsim::Report;

use crate::util;

mod exact;
mod queueing;

/// Identities every report satisfies, whatever the scenario.
pub(super) fn invariants(r: &Report) {
    assert_eq!(
        r.attempts,
        r.established + r.failures,
        "attempts = established + failures"
    );
    assert!(
        r.abandoned <= r.failures,
        "abandoned {} > failures {}",
        r.abandoned,
        r.failures
    );
    assert!(r.retries <= r.failures, "every retry follows a failure");
    let expect_ratio = if r.attempts > 0 {
        r.failures as f64 / r.attempts as f64
    } else {
        0.0
    };
    assert_eq!(r.failure_ratio, expect_ratio);
    let capacity = r.ports.usable * r.ports.addresses;
    assert!(
        r.ports.peak_in_use <= capacity,
        "peak {} > capacity {capacity}",
        r.ports.peak_in_use
    );
    assert!(r.ports.distinct_used <= capacity);
    assert!(r.ports.mean_in_use <= f64::from(r.ports.peak_in_use) + 1e-9);
    // The time series partitions the counters.
    let sum = |f: fn(&portsim::sim::record::Bin) -> u64| r.bins.iter().map(f).sum::<u64>();
    assert_eq!(sum(|b| b.attempts), r.attempts, "time series attempts");
    assert_eq!(sum(|b| b.failures), r.failures, "time series failures");
    assert_eq!(
        sum(|b| b.established),
        r.established,
        "time series established"
    );
}

/// A deterministic scenario: constant arrivals, constant hold.
#[derive(Clone)]
pub(super) struct Det {
    /// Ports in the range 50000..50000+ports-1.
    pub(super) ports: u32,
    pub(super) rate: f64,
    pub(super) hold: String,
    pub(super) time_wait: String,
    pub(super) close: &'static str,
    pub(super) duration: String,
    pub(super) destinations: u32,
    /// Extra lines for [host] and [traffic], and at the top.
    pub(super) host: String,
    pub(super) traffic: String,
    pub(super) top: String,
}

impl Default for Det {
    fn default() -> Self {
        Det {
            ports: 100,
            rate: 8.0,
            hold: "1s".into(),
            time_wait: "60s".into(),
            close: "client",
            duration: "300s".into(),
            destinations: 1,
            host: String::new(),
            traffic: String::new(),
            top: String::new(),
        }
    }
}

impl Det {
    pub(super) fn toml(&self) -> String {
        format!(
            "name = \"det\"\nseed = 3\nduration = \"{}\"\n{}\n\
             [host]\nport_range = \"50000-{}\"\ntime_wait = \"{}\"\n{}\n\
             [[destinations]]\naddress = \"10.0.0.5:5432\"\ncount = {}\n\
             [traffic]\narrivals = \"constant\"\nrate = {}\nhold = \"{}\"\nclose = \"{}\"\n{}\n",
            self.duration,
            self.top,
            50000 + self.ports - 1,
            self.time_wait,
            self.host,
            self.destinations,
            self.rate,
            self.hold,
            self.close,
            self.traffic
        )
    }

    fn run(&self) -> Report {
        let r = util::run(&self.toml());
        invariants(&r);
        r
    }
}
