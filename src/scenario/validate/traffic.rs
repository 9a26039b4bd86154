//! `[traffic]`: arrivals, the rate profile (constant, schedule, ramp or a
//! measured `rate_profile` file), hold-time distributions, close and bind
//! modes, retries, keep-alive and the protocol; or a `replay` file of the
//! connections to make, which replaces arrivals and holds (the files are
//! read in [`measured`]).
//!
//! A replayed trace decides when, where and for how long each connection
//! is made, so the keys that would say so (`rate`, `hold`, `pick`, pools,
//! users ...) are refused beside it rather than ignored; `rate` and `hold`
//! of the typed traffic then describe the trace (its mean rate and hold)
//! for the closed-form figures. Only a `[host]` scenario replays: a trace
//! is one host's connections, so a fleet's groups refuse it.
//!
//! With `protocol = "udp"` a flow is a socket that sends
//! `requests_per_connection` queries and closes: there is no close
//! handshake, so `close` other than its default is refused rather than
//! ignored (a user who wrote `close = "server"` expects something UDP
//! cannot do); `connect_timeout` is how long the application waits for a
//! reply that a NAT dropped, holding its port.

use super::measured;
use super::*;

/// The traffic of each host of a `[[hosts]]` group: a replayed trace is
/// one host's connections, so `replay` is refused.
pub(super) fn traffic(t: &RawTraffic) -> R<Traffic> {
    if t.replay.is_some() {
        return err(
            "traffic.replay",
            "found in a scenario with [[hosts]] groups; a replayed trace is one host's connections: replay it on one [host], or give the groups a rate (traffic.rate_profile takes a measured one)",
        );
    }
    common(t)
}

/// The traffic of a `[host]` scenario to `dests`; a replayed trace's
/// connections past `duration_ns` are not made.
pub(super) fn single(
    t: &RawTraffic,
    dests: &[Destination],
    duration_ns: Option<u64>,
) -> R<Traffic> {
    let Some(file) = &t.replay else {
        return common(t);
    };
    // Keys the trace decides: when, where, how long and how many.
    if let Some(k) = first_given(&[
        (t.rate.is_some(), "rate"),
        (t.schedule.is_some(), "schedule"),
        (t.ramp.is_some(), "ramp"),
        (t.rate_profile.is_some(), "rate_profile"),
        (t.arrivals.is_some(), "arrivals"),
        (t.hold.is_some(), "hold"),
        (t.pick.is_some(), "pick"),
        (
            t.requests_per_connection.is_some(),
            "requests_per_connection",
        ),
        (t.pool.is_some(), "pool"),
        (t.concurrency.is_some(), "concurrency"),
        (t.think.is_some(), "think"),
        (t.streams_per_connection.is_some(), "streams_per_connection"),
        (t.timeout.is_some(), "timeout"),
    ]) {
        return err(
            &format!("traffic.{k}"),
            "found with traffic.replay; the replayed file gives each connection's start, destination and hold, one connection per row: remove one of them (close, bind, source, retry, connect_timeout and protocol still apply)",
        );
    }
    let replay = measured::replay(file, dests)?;
    // What the closed-form figures read: the trace's mean rate over the
    // run and its mean hold, over the rows the run makes.
    let horizon = duration_ns.unwrap_or_else(|| replay.end_ns());
    let made = &replay.rows[..replay.rows.partition_point(|r| r.start_ns <= horizon)];
    let total: u128 = made.iter().map(|r| u128::from(r.hold_ns)).sum();
    let mean_hold = if made.is_empty() {
        0
    } else {
        (total / made.len() as u128) as u64
    };
    let rate = (made.len() as f64 / (horizon as f64 / NS_PER_S as f64)).min(MAX_RATE);
    let mut traffic = common(&RawTraffic {
        rate: Some(rate),
        hold: Some(toml::Value::String("0".into())),
        ..t.clone()
    })?;
    traffic.hold = Hold::Constant { ns: mean_hold };
    traffic.replay = Some(std::sync::Arc::new(replay));
    Ok(traffic)
}

fn common(t: &RawTraffic) -> R<Traffic> {
    let arrivals = choice(
        "traffic.arrivals",
        t.arrivals.as_deref(),
        Arrivals::Poisson,
        &[
            ("poisson", Arrivals::Poisson),
            ("constant", Arrivals::Constant),
        ],
    )?;
    let rate = match &t.concurrency {
        Some(_) => {
            if let Some(k) = first_given(&[
                (t.rate.is_some(), "rate"),
                (t.schedule.is_some(), "schedule"),
                (t.ramp.is_some(), "ramp"),
                (t.rate_profile.is_some(), "rate_profile"),
                (t.arrivals.is_some(), "arrivals"),
            ]) {
                return err(
                    &format!("traffic.{k}"),
                    "found with traffic.concurrency; a closed loop's load is its users (each sends its next request when the last one ends and it has thought), not an arrival rate: remove one of them",
                );
            }
            RateProfile::constant(0.0)
        }
        None => rate_profile(t)?,
    };
    let hold = match &t.hold {
        None => return err(
            "traffic.hold",
            "missing; e.g. hold = \"50ms\" or hold = { dist = \"exponential\", mean = \"50ms\" }",
        ),
        Some(v) => hold("traffic.hold", v)?,
    };
    let protocol = choice(
        "traffic.protocol",
        t.protocol.as_deref(),
        Protocol::Tcp,
        &[("tcp", Protocol::Tcp), ("udp", Protocol::Udp)],
    )?;
    let close = choice(
        "traffic.close",
        t.close.as_deref(),
        Close::Client,
        &[
            ("client", Close::Client),
            ("server", Close::Server),
            ("reset", Close::Reset),
        ],
    )?;
    if protocol == Protocol::Udp && close != Close::Client {
        return err(
            "traffic.close",
            format!(
                "found {} with protocol = \"udp\"; a UDP flow has no close handshake and no TIME_WAIT on either side, its port is free when the application closes the socket; remove traffic.close (or use protocol = \"tcp\")",
                quote(t.close.as_deref().unwrap_or_default())
            ),
        );
    }
    let bind = choice(
        "traffic.bind",
        t.bind.as_deref(),
        BindMode::Connect,
        &[
            ("connect", BindMode::Connect),
            ("bind", BindMode::Bind),
            ("bind-no-port", BindMode::BindNoPort),
        ],
    )?;
    let picks = [
        ("weighted", Pick::Weighted),
        ("round-robin", Pick::RoundRobin),
    ];
    let pick = choice("traffic.pick", t.pick.as_deref(), Pick::Weighted, &picks)?;
    let source = choice(
        "traffic.source",
        t.source.as_deref(),
        Pick::RoundRobin,
        &picks,
    )?;
    let retry = t.retry.as_ref().map(retry).transpose()?;
    if t.requests_per_connection == Some(0) {
        return err(
            "traffic.requests_per_connection",
            "found 0; expected at least 1",
        );
    }
    let client = client(t, hold, protocol)?;
    // A closed loop's requests come at about users ÷ (hold + think): the
    // rate the analytic figures and the charts' steady state read.
    let rate = match client
        .as_deref()
        .and_then(|c| Some((c.users.as_ref()?, c.think)))
    {
        Some((users, think)) => {
            let cycle_s = (hold.mean_ns() + think.mean_ns()) / NS_PER_S as f64;
            RateProfile {
                segments: users
                    .iter()
                    .map(|&(at, n)| RateSegment {
                        start_s: at as f64 / NS_PER_S as f64,
                        from: (f64::from(n) / cycle_s).min(MAX_RATE),
                        slope: 0.0,
                    })
                    .collect(),
            }
        }
        None => rate,
    };
    // With a pool it is a limit per connection, not a batch.
    let requests_per_connection = match &client {
        Some(_) => 1,
        None => t.requests_per_connection.unwrap_or(1),
    };
    // 0: the connect fails as soon as a SYN is dropped.
    let connect_timeout_ns = t
        .connect_timeout
        .as_deref()
        .map(|d| duration("traffic.connect_timeout", d))
        .transpose()?;
    Ok(Traffic {
        connect_timeout_ns,
        arrivals,
        rate,
        hold,
        close,
        bind,
        pick,
        source,
        retry,
        requests_per_connection,
        protocol,
        client,
        replay: None,
    })
}

fn rate_profile(t: &RawTraffic) -> R<RateProfile> {
    if let Some(file) = &t.rate_profile {
        if let Some(k) = first_given(&[
            (t.rate.is_some(), "rate"),
            (t.schedule.is_some(), "schedule"),
            (t.ramp.is_some(), "ramp"),
        ]) {
            return err(
                &format!("traffic.{k}"),
                "found with traffic.rate_profile; the file gives the rate at every time: remove one of them",
            );
        }
        return measured::rate_profile(file);
    }
    let given = [t.rate.is_some(), t.schedule.is_some(), t.ramp.is_some()];
    if given.iter().filter(|g| **g).count() == 0 {
        return err(
            "traffic.rate",
            "missing; set rate = 250 (connections per second), a schedule, a ramp, a measured rate_profile or a replay",
        );
    }
    if t.schedule.is_some() && t.ramp.is_some() {
        return err(
            "traffic.ramp",
            "found both schedule and ramp; use one of them",
        );
    }
    let base = t.rate.map(|r| rate("traffic.rate", r)).transpose()?;
    if let Some(steps) = &t.schedule {
        let mut segments = Vec::new();
        if let Some(b) = base {
            segments.push(RateSegment {
                start_s: 0.0,
                from: b,
                slope: 0.0,
            });
        }
        let mut last = -1.0;
        for (i, s) in steps.iter().enumerate() {
            let at =
                duration(&format!("traffic.schedule[{i}].at"), &s.at)? as f64 / NS_PER_S as f64;
            if at <= last {
                return err(&format!("traffic.schedule[{i}].at"), format!("found {}, not after the previous step; steps must be in increasing time order", quote(&s.at)));
            }
            last = at;
            let r = rate(&format!("traffic.schedule[{i}].rate"), s.rate)?;
            segments.retain(|seg: &RateSegment| seg.start_s < at);
            segments.push(RateSegment {
                start_s: at,
                from: r,
                slope: 0.0,
            });
        }
        if segments.is_empty() || segments[0].start_s > 0.0 {
            segments.insert(
                0,
                RateSegment {
                    start_s: 0.0,
                    from: 0.0,
                    slope: 0.0,
                },
            );
        }
        return Ok(RateProfile { segments });
    }
    if let Some(r) = &t.ramp {
        let from = rate("traffic.ramp.from", r.from)?;
        let to = rate("traffic.ramp.to", r.to)?;
        let over = duration("traffic.ramp.over", &r.over)? as f64 / NS_PER_S as f64;
        if over <= 0.0 {
            return err("traffic.ramp.over", "found 0; expected a positive duration");
        }
        let at = match &r.at {
            Some(a) => duration("traffic.ramp.at", a)? as f64 / NS_PER_S as f64,
            None => 0.0,
        };
        let mut segments = Vec::new();
        if at > 0.0 {
            segments.push(RateSegment {
                start_s: 0.0,
                from: base.unwrap_or(from),
                slope: 0.0,
            });
        }
        segments.push(RateSegment {
            start_s: at,
            from,
            slope: (to - from) / over,
        });
        segments.push(RateSegment {
            start_s: at + over,
            from: to,
            slope: 0.0,
        });
        return Ok(RateProfile { segments });
    }
    Ok(RateProfile::constant(base.unwrap_or(0.0)))
}

/// A hold-like distribution at `key` (`traffic.hold`, `traffic.think`).
fn hold(key: &str, v: &toml::Value) -> R<Hold> {
    let table = match v {
        toml::Value::String(s) => return Ok(Hold::Constant { ns: duration(key, s)? }),
        toml::Value::Table(t) => t,
        other => return err(key, format!("found {}; expected a duration string or a table {{ dist = \"exponential\", mean = \"50ms\" }}", value(other))),
    };
    let dists = ["constant", "exponential", "lognormal", "uniform"];
    let allowed_keys: &[&str] = match table.get("dist").and_then(|d| d.as_str()) {
        Some("constant") => &["dist", "value"],
        Some("exponential") => &["dist", "mean"],
        Some("lognormal") => &["dist", "median", "p99"],
        Some("uniform") => &["dist", "min", "max"],
        Some(other) => {
            return err(
                &format!("{key}.dist"),
                format!("found {}; {}", quote(other), allowed_list(other, &dists)),
            )
        }
        None => {
            return err(
                &format!("{key}.dist"),
                format!("missing; allowed: {}", dists.join(", ")),
            )
        }
    };
    for k in table.keys() {
        if !allowed_keys.contains(&k.as_str()) {
            return err(
                &format!("{key}.{k}"),
                format!(
                    "unknown key for this dist; {}",
                    allowed_list(k, allowed_keys)
                ),
            );
        }
    }
    let get = |name: &str| -> R<u64> {
        let k = format!("{key}.{name}");
        match table.get(name) {
            Some(toml::Value::String(s)) => duration(&k, s),
            Some(other) => err(
                &k,
                format!(
                    "found {}; expected a duration string such as \"50ms\"",
                    value(other)
                ),
            ),
            None => err(&k, "missing"),
        }
    };
    let dist = table
        .get("dist")
        .and_then(|d| d.as_str())
        .unwrap_or_default();
    Ok(match dist {
        "constant" => Hold::Constant { ns: get("value")? },
        "exponential" => {
            let mean = get("mean")?;
            if mean == 0 {
                return err(&format!("{key}.mean"), "found 0; expected a positive mean");
            }
            Hold::Exponential {
                mean_ns: mean as f64,
            }
        }
        "lognormal" => {
            let median = get("median")?;
            let p99 = get("p99")?;
            if median == 0 || p99 <= median {
                return err(&format!("{key}.p99"), "expected 0 < median < p99");
            }
            // The 99th percentile of a standard normal.
            const Z99: f64 = 2.326_347_874_040_841;
            let mu = (median as f64).ln();
            Hold::LogNormal {
                mu,
                sigma: ((p99 as f64).ln() - mu) / Z99,
            }
        }
        _ => {
            let (min_ns, max_ns) = (get("min")?, get("max")?);
            if min_ns > max_ns {
                return err(&format!("{key}.max"), "expected min <= max");
            }
            Hold::Uniform { min_ns, max_ns }
        }
    })
}

fn retry(r: &RawRetry) -> R<Retry> {
    let after_ns = duration("traffic.retry.after", &r.after)?;
    if after_ns == 0 {
        return err(
            "traffic.retry.after",
            "found 0; expected a positive delay such as \"100ms\"",
        );
    }
    let backoff = choice(
        "traffic.retry.backoff",
        r.backoff.as_deref(),
        "fixed",
        &[("fixed", "fixed"), ("exponential", "exponential")],
    )?;
    if backoff == "fixed" {
        if let Some(k) = first_given(&[
            (r.factor.is_some(), "factor"),
            (r.cap.is_some(), "cap"),
            (r.jitter.is_some(), "jitter"),
        ]) {
            return err(
                &format!("traffic.retry.{k}"),
                "found with a fixed backoff; it applies to backoff = \"exponential\" only (add that, or remove this key)",
            );
        }
        return Ok(Retry {
            after_ns,
            max: r.max,
            backoff: Backoff::Fixed,
        });
    }
    let factor = r.factor.unwrap_or(2.0);
    if !(factor.is_finite() && (1.0..=1000.0).contains(&factor)) {
        return err(
            "traffic.retry.factor",
            format!(
                "found {}; expected a growth factor from 1 to 1000 (2 doubles each delay)",
                num(factor)
            ),
        );
    }
    let cap_ns = match &r.cap {
        Some(c) => duration("traffic.retry.cap", c)?,
        None => u64::MAX,
    };
    if cap_ns < after_ns {
        return err(
            "traffic.retry.cap",
            format!(
                "found {}, shorter than retry.after ({}); the cap bounds the delays from above",
                quote(r.cap.as_deref().unwrap_or_default()),
                quote(&r.after)
            ),
        );
    }
    let jitter = choice(
        "traffic.retry.jitter",
        r.jitter.as_deref(),
        Jitter::Full,
        &[
            ("full", Jitter::Full),
            ("equal", Jitter::Equal),
            ("none", Jitter::None),
        ],
    )?;
    Ok(Retry {
        after_ns,
        max: r.max,
        backoff: Backoff::Exponential {
            factor,
            cap_ns,
            jitter,
        },
    })
}

/// The most virtual users `traffic.concurrency` may give.
pub const MAX_USERS: u32 = 1_000_000;

/// Pools, users, streams and timeouts: `None` when the traffic uses none.
fn client(t: &RawTraffic, request: Hold, protocol: Protocol) -> R<Option<Box<Client>>> {
    let given = t.pool.is_some()
        || t.concurrency.is_some()
        || t.think.is_some()
        || t.streams_per_connection.is_some()
        || t.timeout.is_some();
    if !given {
        return Ok(None);
    }
    if protocol == Protocol::Udp {
        for (g, k) in [
            (t.pool.is_some(), "pool"),
            (t.streams_per_connection.is_some(), "streams_per_connection"),
        ] {
            if g {
                return err(
                    &format!("traffic.{k}"),
                    "found with protocol = \"udp\"; UDP flows are not kept or shared between requests: remove it (or use protocol = \"tcp\")",
                );
            }
        }
    }
    if t.pool.is_none() && t.requests_per_connection.is_some_and(|r| r > 1) {
        return err(
            "traffic.requests_per_connection",
            "found without traffic.pool in traffic with a client model (concurrency, think, streams_per_connection or timeout); only a pool keeps a connection between requests: add pool = { max_idle = N }, and requests_per_connection then ends a connection after that many requests",
        );
    }
    let pool = match &t.pool {
        Some(p) => pool(p)?,
        None => Pool {
            max_idle: 0,
            max_open: 0,
            idle_timeout_ns: None,
            max_lifetime_ns: None,
            wait: Wait::No,
        },
    };
    let users = t.concurrency.as_ref().map(users).transpose()?;
    if t.think.is_some() && users.is_none() {
        return err(
            "traffic.think",
            "found without traffic.concurrency; think time is a virtual user's pause between requests, and requests arriving at a rate have no users: add concurrency = N, or remove think",
        );
    }
    let think = match &t.think {
        Some(v) => hold("traffic.think", v)?,
        None => Hold::Constant { ns: 0 },
    };
    if users.is_some() && request.mean_ns() + think.mean_ns() <= 0.0 {
        return err(
            "traffic.think",
            "a closed loop with hold and think both 0 would send endless requests at one instant; give either a positive time",
        );
    }
    let streams = t.streams_per_connection.unwrap_or(1);
    if streams == 0 {
        return err(
            "traffic.streams_per_connection",
            "found 0; expected at least 1 (1: one request at a time per connection, HTTP/1.1; 100: an HTTP/2 server's usual SETTINGS_MAX_CONCURRENT_STREAMS)",
        );
    }
    let timeout_ns = t
        .timeout
        .as_deref()
        .map(|d| duration("traffic.timeout", d))
        .transpose()?;
    if timeout_ns == Some(0) {
        return err(
            "traffic.timeout",
            "found 0; expected a positive duration such as \"30s\" (leave it out for no timeout)",
        );
    }
    Ok(Some(Box::new(Client {
        pool,
        pool_given: t.pool.is_some(),
        users,
        think,
        streams,
        timeout_ns,
        request_limit: t.requests_per_connection,
    })))
}

fn pool(p: &RawPool) -> R<Pool> {
    let opt = |k: &str, v: &Option<String>| -> R<Option<u64>> {
        match v
            .as_deref()
            .map(|d| duration(&format!("traffic.pool.{k}"), d))
            .transpose()?
        {
            Some(0) => err(
                &format!("traffic.pool.{k}"),
                "found 0; expected a positive duration (leave it out for none)",
            ),
            other => Ok(other),
        }
    };
    let max_open = p.max_open.unwrap_or(0);
    let max_idle = p.max_idle.unwrap_or(2);
    let wait = match &p.wait {
        None => Wait::Forever,
        Some(toml::Value::Boolean(true)) => Wait::Forever,
        Some(toml::Value::Boolean(false)) => Wait::No,
        Some(toml::Value::String(s)) => match duration("traffic.pool.wait", s)? {
            0 => Wait::No,
            ns => Wait::UpTo(ns),
        },
        Some(other) => {
            return err(
                "traffic.pool.wait",
                format!(
                    "found {}; expected true (wait for a free connection), false (fail at once) or a duration such as \"30s\" (wait at most that long)",
                    value(other)
                ),
            )
        }
    };
    if p.wait.is_some() && max_open == 0 {
        return err(
            "traffic.pool.wait",
            "found without traffic.pool.max_open; a request waits only when max_open connections are open, and without max_open there is no limit: set max_open, or remove wait",
        );
    }
    Ok(Pool {
        max_idle,
        max_open,
        idle_timeout_ns: opt("idle_timeout", &p.idle_timeout)?,
        max_lifetime_ns: opt("max_lifetime", &p.max_lifetime)?,
        wait,
    })
}

/// `traffic.concurrency`: `500`, steps `[{ at = "1m", users = 500 }, …]`
/// or a ramp `{ from = 10, to = 500, over = "5m", at = "1m" }` (users
/// join or leave one at a time along it). Returns (time, users) change
/// points in time order, the first at 0.
fn users(v: &toml::Value) -> R<Vec<(u64, u32)>> {
    const KEY: &str = "traffic.concurrency";
    let count = |key: &str, v: Option<&toml::Value>| -> R<u32> {
        match v {
            Some(toml::Value::Integer(n)) if (0..=i64::from(MAX_USERS)).contains(n) => {
                Ok(*n as u32)
            }
            Some(other) => err(
                key,
                format!(
                    "found {}; expected a whole number of users from 0 to {MAX_USERS}",
                    value(other)
                ),
            ),
            None => err(key, "missing; expected a whole number of users"),
        }
    };
    let text = |key: &str, v: Option<&toml::Value>| -> R<u64> {
        match v {
            Some(toml::Value::String(s)) => duration(key, s),
            Some(other) => err(
                key,
                format!("found {}; expected a duration such as \"1m\"", value(other)),
            ),
            None => err(key, "missing; expected a duration such as \"1m\""),
        }
    };
    let only = |key: &str, t: &toml::Table, allowed: &[&str]| -> R<()> {
        match t.keys().find(|k| !allowed.contains(&k.as_str())) {
            Some(k) => err(
                &format!("{key}.{k}"),
                format!("unknown key; {}", allowed_list(k, allowed)),
            ),
            None => Ok(()),
        }
    };
    match v {
        toml::Value::Integer(_) => {
            let n = count(KEY, Some(v))?;
            if n == 0 {
                return err(KEY, "found 0; expected at least 1 user");
            }
            Ok(vec![(0, n)])
        }
        toml::Value::Array(steps) => {
            let mut out: Vec<(u64, u32)> = vec![(0, 0)];
            for (i, s) in steps.iter().enumerate() {
                let key = format!("{KEY}[{i}]");
                let Some(t) = s.as_table() else {
                    return err(&key, format!("found {}; expected a step such as {{ at = \"1m\", users = 500 }}", value(s)));
                };
                only(&key, t, &["at", "users"])?;
                let at = text(&format!("{key}.at"), t.get("at"))?;
                let n = count(&format!("{key}.users"), t.get("users"))?;
                if i > 0 && at <= out.last().map_or(0, |l| l.0) {
                    return err(&format!("{key}.at"), "not after the previous step; steps must be in increasing time order");
                }
                if at == 0 {
                    out[0].1 = n;
                } else {
                    out.push((at, n));
                }
            }
            if out.iter().all(|s| s.1 == 0) {
                return err(KEY, "no step has a user; expected at least one step with users >= 1");
            }
            Ok(out)
        }
        toml::Value::Table(t) => {
            only(KEY, t, &["from", "to", "over", "at"])?;
            let from = count(&format!("{KEY}.from"), t.get("from"))?;
            let to = count(&format!("{KEY}.to"), t.get("to"))?;
            let over = text(&format!("{KEY}.over"), t.get("over"))?;
            if over == 0 {
                return err(&format!("{KEY}.over"), "found 0; expected a positive duration");
            }
            let at = match t.get("at") {
                None => 0,
                some => text(&format!("{KEY}.at"), some)?,
            };
            if from.max(to) == 0 {
                return err(KEY, "from and to are both 0; expected at least 1 user");
            }
            let mut out = vec![(0, from)];
            // The count steps by one where the line crosses a whole number.
            let span = i64::from(to) - i64::from(from);
            for k in 1..=span.unsigned_abs() {
                let time = at as f64 + over as f64 * k as f64 / span.unsigned_abs() as f64;
                let n = (i64::from(from) + span.signum() * k as i64) as u32;
                out.push((time.min(u64::MAX as f64) as u64, n));
            }
            Ok(out)
        }
        other => err(
            KEY,
            format!("found {}; expected a number of users (500), steps [{{ at = \"1m\", users = 500 }}] or a ramp {{ from = 10, to = 500, over = \"5m\" }}", value(other)),
        ),
    }
}
