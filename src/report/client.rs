//! The request side of a report: requests, the pools' connections and the
//! waits for them, for runs with a client model (`traffic.pool`,
//! `concurrency`, `streams_per_connection`, `timeout`).
//!
//! Connection attempts stay in the report's top-level counts (`attempts`,
//! `failures`): ports are taken per connection. These sections say what
//! the application saw: how many requests completed or failed and why,
//! how often a connection was reused, why connections ended (which is
//! where TIME_WAIT comes from) and how long requests queued for one.

use schemars::JsonSchema;
use serde::Serialize;

use super::secs;
use crate::scenario::{Scenario, Wait};
use crate::sim::client::{ClientFigures, Reason, Why};

/// `requests`: what the application asked for and got.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Requests {
    /// Requests started (a retried request counts once).
    pub total: u64,
    pub completed: u64,
    /// Failed with no retry left.
    pub failed: u64,
    /// Final failures by cause: `connect` (no connection could be opened),
    /// `pool` (`max_open` reached and no wait, or the wait ran out),
    /// `timeout` (`traffic.timeout`).
    pub failed_by: RequestFailures,
    /// Requests that waited for a connection at `max_open`.
    pub waited: u64,
    /// Retries made.
    pub retries: u64,
    /// Still in flight when the run ended.
    pub in_flight_at_end: u64,
    /// Completed requests per second over the run.
    pub per_second: f64,
    pub peak_in_flight: u64,
    /// Time-averaged requests in flight (Little's law: per_second × mean
    /// response time, when few are left in flight at the end).
    pub mean_in_flight: f64,
    /// From start to completion, completed requests (pool wait, connect,
    /// hold and retries included).
    pub response_s: Quantiles,
    /// The most virtual users at once (`traffic.concurrency`; 0 for
    /// requests arriving at a rate).
    pub users: u32,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct RequestFailures {
    pub connect: u64,
    pub pool: u64,
    pub timeout: u64,
}

/// `connections`: what the pools did with connections.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Connections {
    /// Connections opened (connects that got through).
    pub opened: u64,
    /// Requests served on a connection that was open already, of all
    /// requests that got a connection.
    #[schemars(range(min = 0.0, max = 1.0))]
    pub reuse_ratio: f64,
    /// Why connections ended. With `close = "client"` (the default) by the
    /// pool's reason; with `close = "server"` or `"reset"` every end is
    /// counted there, since the run's connections all end that way.
    pub closed_by: ClosedBy,
    /// Open when the run ended, idle or busy.
    pub open_at_end: u64,
    pub idle_at_end: u64,
    /// `streams_per_connection`.
    pub streams_per_connection: u32,
    /// The pool as set (per destination).
    pub pool: PoolSettings,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ClosedBy {
    /// Returned when `max_idle` connections were already idle.
    pub idle_overflow: u64,
    pub idle_timeout: u64,
    pub lifetime: u64,
    /// Their request timed out.
    pub timeout: u64,
    /// Carried `requests_per_connection` requests.
    pub request_limit: u64,
    pub server: u64,
    pub reset: u64,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct PoolSettings {
    /// Whether `traffic.pool` was given (else no connection is kept idle).
    pub given: bool,
    pub max_idle: u32,
    /// 0: no limit.
    pub max_open: u32,
    pub idle_timeout_s: Option<f64>,
    pub max_lifetime_s: Option<f64>,
    /// "no", "forever", or the longest wait in seconds as text.
    pub wait: String,
}

/// Quantiles of a time, seconds (0 when nothing was measured).
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Quantiles {
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

impl Quantiles {
    fn of(h: &hdrhistogram::Histogram<u64>) -> Quantiles {
        let q = |p: f64| {
            if h.is_empty() {
                0.0
            } else {
                secs(h.value_at_quantile(p))
            }
        };
        Quantiles {
            p50: q(0.5),
            p99: q(0.99),
            max: if h.is_empty() { 0.0 } else { secs(h.max()) },
        }
    }
}

/// The three sections of a client run.
pub fn sections(
    sc: &Scenario,
    f: &ClientFigures,
    open_at_end: u64,
    simulated_ns: u64,
) -> (Requests, Connections, Quantiles) {
    let c = sc.traffic.client.as_deref().expect("a client run");
    let by = |w: Why| f.failed_by[w as usize];
    let closed = |r: Reason| f.closed_by[r as usize];
    let requests = Requests {
        total: f.total,
        completed: f.completed,
        failed: f.failed,
        failed_by: RequestFailures {
            connect: by(Why::Connect),
            pool: by(Why::Pool),
            timeout: by(Why::Timeout),
        },
        waited: f.waited,
        retries: f.retries,
        in_flight_at_end: f.in_flight_at_end,
        per_second: if simulated_ns > 0 {
            f.completed as f64 / secs(simulated_ns)
        } else {
            0.0
        },
        peak_in_flight: f.peak_in_flight,
        mean_in_flight: f.mean_in_flight,
        response_s: Quantiles::of(&f.responses),
        users: f.users_peak,
    };
    let connections = Connections {
        opened: f.opened,
        reuse_ratio: f.reuse_ratio(),
        closed_by: ClosedBy {
            idle_overflow: closed(Reason::IdleOverflow),
            idle_timeout: closed(Reason::IdleTimeout),
            lifetime: closed(Reason::Lifetime),
            timeout: closed(Reason::Timeout),
            request_limit: closed(Reason::RequestLimit),
            server: closed(Reason::Server),
            reset: closed(Reason::Reset),
        },
        open_at_end,
        idle_at_end: f.idle_at_end,
        streams_per_connection: c.streams,
        pool: PoolSettings {
            given: c.pool_given,
            max_idle: c.pool.max_idle,
            max_open: c.pool.max_open,
            idle_timeout_s: c.pool.idle_timeout_ns.map(secs),
            max_lifetime_s: c.pool.max_lifetime_ns.map(secs),
            wait: match c.pool.wait {
                Wait::No => "no".to_string(),
                Wait::Forever => "forever".to_string(),
                Wait::UpTo(ns) => format!("{}", secs(ns)),
            },
        },
    };
    (requests, connections, Quantiles::of(&f.waits))
}
