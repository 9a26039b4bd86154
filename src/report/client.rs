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
    /// Whether a request waits for a connection at `max_open` (else it
    /// fails at once).
    pub wait: bool,
    /// The longest it waits; null: until one is free (or its timeout).
    pub wait_limit_s: Option<f64>,
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
            wait: c.pool.wait != Wait::No,
            wait_limit_s: match c.pool.wait {
                Wait::UpTo(ns) => Some(secs(ns)),
                Wait::No | Wait::Forever => None,
            },
        },
    };
    (requests, connections, Quantiles::of(&f.waits))
}

/// The summary's lines for a client run, as (label, text); none without
/// a client model.
pub fn summary_lines(r: &super::Report) -> Vec<(&'static str, String)> {
    use super::format::{amount, human_s, measured_s, percent, thousands};
    let (Some(q), Some(c), Some(w)) = (&r.requests, &r.connections, &r.pool_wait_s) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut failed = Vec::new();
    for (n, what) in [
        (q.failed_by.connect, "no connection"),
        (q.failed_by.pool, "pool full"),
        (q.failed_by.timeout, "timed out"),
    ] {
        if n > 0 {
            failed.push(format!("{} {what}", thousands(n)));
        }
    }
    out.push((
        "requests",
        format!(
            "{} ({} completed, {} failed{}{}); {}/s; {}",
            thousands(q.total),
            thousands(q.completed),
            thousands(q.failed),
            if failed.is_empty() {
                String::new()
            } else {
                format!(": {}", failed.join(", "))
            },
            if q.in_flight_at_end > 0 {
                format!(", {} in flight at the end", thousands(q.in_flight_at_end))
            } else {
                String::new()
            },
            amount(q.per_second),
            if q.completed > 0 {
                format!(
                    "response p50 {}, p99 {}",
                    measured_s(q.response_s.p50),
                    measured_s(q.response_s.p99)
                )
            } else {
                "none completed".to_string()
            },
        ),
    ));
    let mut load = format!(
        "in flight peak {}, mean {}",
        thousands(q.peak_in_flight),
        amount(q.mean_in_flight)
    );
    if q.users > 0 {
        load = format!("{} virtual users; {load}", thousands(u64::from(q.users)));
    }
    if q.waited > 0 {
        load.push_str(&format!(
            "; {} waited for a connection (p50 {}, p99 {}, max {})",
            thousands(q.waited),
            measured_s(w.p50),
            measured_s(w.p99),
            measured_s(w.max)
        ));
    }
    out.push(("", load));
    let by = &c.closed_by;
    let mut closed = Vec::new();
    for (n, why) in [
        (
            by.idle_overflow,
            if c.pool.given {
                format!("returned with {} already idle", c.pool.max_idle)
            } else {
                "after their request (no pool keeps them)".to_string()
            },
        ),
        (by.idle_timeout, "idle timeout".to_string()),
        (by.lifetime, "max lifetime".to_string()),
        (by.timeout, "request timeout".to_string()),
        (by.request_limit, "request limit".to_string()),
        (by.server, "by the server".to_string()),
        (by.reset, "reset".to_string()),
    ] {
        if n > 0 {
            closed.push(format!("{} {why}", thousands(n)));
        }
    }
    out.push((
        "connections",
        format!(
            "{} opened, reused by {} of requests; {}",
            thousands(c.opened),
            percent(c.reuse_ratio),
            if closed.is_empty() {
                "none closed".to_string()
            } else {
                format!("closed: {}", closed.join(", "))
            }
        ),
    ));
    let p = &c.pool;
    let mut pool = if p.given {
        format!(
            "per destination: max_idle {}, {}",
            p.max_idle,
            if p.max_open == 0 {
                "no max_open".to_string()
            } else {
                format!(
                    "max_open {} ({})",
                    p.max_open,
                    match (p.wait, p.wait_limit_s) {
                        (false, _) => "a request finding all busy fails".to_string(),
                        (true, None) => "a request finding all busy waits".to_string(),
                        (true, Some(s)) =>
                            format!("a request finding all busy waits up to {}", human_s(s)),
                    }
                )
            }
        )
    } else {
        "none: a connection per request".to_string()
    };
    if let Some(s) = p.idle_timeout_s {
        pool.push_str(&format!(", idle_timeout {}", human_s(s)));
    }
    if let Some(s) = p.max_lifetime_s {
        pool.push_str(&format!(", max_lifetime {}", human_s(s)));
    }
    if c.streams_per_connection > 1 {
        pool.push_str(&format!(
            "; {} streams per connection",
            c.streams_per_connection
        ));
    }
    out.push(("pool", pool));
    out
}
