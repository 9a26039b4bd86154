//! Raw scenario -> typed [`Scenario`]: every check in one place.
//!
//! Each failure is a [`KeyError`] with the dotted key path (`traffic.hold.mean`)
//! and a message that says what was found and what is allowed; `load` adds the
//! file and line.

use std::net::{IpAddr, SocketAddr};

use super::raw::*;
use super::*;
use crate::error::{allowed_list, num, quote};

/// A bad value at a key path.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyError {
    pub key: String,
    pub message: String,
}

type R<T> = Result<T, KeyError>;

fn err<T>(key: &str, message: impl Into<String>) -> R<T> {
    Err(KeyError {
        key: key.to_string(),
        message: message.into(),
    })
}

/// Parse "60s", "250ms", "1h 30m", "0" into nanoseconds.
pub fn duration(key: &str, text: &str) -> R<u64> {
    let t = text.trim();
    if t == "0" {
        return Ok(0);
    }
    match humantime::parse_duration(t) {
        Ok(d) => u64::try_from(d.as_nanos()).or_else(|_| err(key, format!("found {}, which is longer than 584 years", quote(text)))),
        Err(e) => err(
            key,
            format!("found {} ({e}); expected a duration such as \"60s\", \"250ms\", \"2m\" or \"1h 30m\"", quote(text)),
        ),
    }
}

/// A TOML value found where another was expected, as a message shows it.
fn value(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => quote(s),
        other => quote(&other.to_string()),
    }
}

fn choice<T: Copy>(key: &str, found: Option<&str>, default: T, options: &[(&str, T)]) -> R<T> {
    let Some(found) = found else {
        return Ok(default);
    };
    if let Some((_, v)) = options.iter().find(|(n, _)| *n == found) {
        return Ok(*v);
    }
    let names: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
    err(
        key,
        format!("found {}; {}", quote(found), allowed_list(found, &names)),
    )
}

fn port_range(key: &str, text: &str) -> R<(u16, u16)> {
    let bad = || {
        err(
            key,
            format!(
                "found {}; expected a port or a range \"A-B\" with 1 <= A <= B <= 65535",
                quote(text)
            ),
        )
    };
    let (a, b) = match text.split_once('-') {
        Some((a, b)) => (a.trim(), b.trim()),
        None => (text.trim(), text.trim()),
    };
    match (a.parse::<u16>(), b.parse::<u16>()) {
        (Ok(a), Ok(b)) if a >= 1 && a <= b => Ok((a, b)),
        _ => bad(),
    }
}

fn positive(key: &str, v: f64, what: &str) -> R<f64> {
    if v.is_finite() && v > 0.0 {
        Ok(v)
    } else {
        err(key, format!("found {}; expected a positive {what}", num(v)))
    }
}

fn non_negative(key: &str, v: f64, what: &str) -> R<f64> {
    if v.is_finite() && v >= 0.0 {
        Ok(v)
    } else {
        err(key, format!("found {}; expected a {what} >= 0", num(v)))
    }
}

/// A rate in connections per second: finite, >= 0 and at most
/// [`MAX_RATE`], so every integral of a rate profile stays finite.
fn rate(key: &str, v: f64) -> R<f64> {
    let v = non_negative(key, v, "rate in connections per second")?;
    if v > MAX_RATE {
        return err(
            key,
            format!(
                "found {}; at most {} connections per second (one per nanosecond, the engine's time step)",
                num(v),
                num(MAX_RATE)
            ),
        );
    }
    Ok(v)
}

pub(super) fn validate(raw: RawScenario) -> R<Scenario> {
    if raw.name.trim().is_empty() {
        return err(
            "name",
            "found an empty name; give the scenario a short name",
        );
    }
    // Both are printed in the summary, the charts and report.html: no
    // terminal escapes, nothing an SVG file cannot hold.
    if raw.name.chars().any(char::is_control) {
        return err(
            "name",
            format!(
                "found {}; control characters (newlines, tabs, escapes) are not allowed in a name",
                quote(&raw.name)
            ),
        );
    }
    if let Some(c) = raw
        .description
        .chars()
        .find(|c| c.is_control() && *c != '\n' && *c != '\t')
    {
        return err(
            "description",
            format!(
                "found the control character {}; only newlines and tabs are allowed",
                quote(&c.to_string())
            ),
        );
    }
    let duration_ns = raw
        .duration
        .as_deref()
        .map(|d| duration("duration", d))
        .transpose()?;
    if duration_ns == Some(0) {
        return err(
            "duration",
            "found 0; expected a positive duration such as \"1h\"",
        );
    }
    if raw.max_connections == Some(0) {
        return err("max_connections", "found 0; expected a positive count");
    }
    if duration_ns.is_none() && raw.max_connections.is_none() {
        return err(
            "duration",
            "missing; set `duration = \"1h\"` (simulated time) or `max_connections = N`, or both",
        );
    }
    let host = host(&raw.host)?;
    let destinations = destinations(&raw.destinations)?;
    let mut traffic = traffic(&raw.traffic)?;
    if host.addresses.len() == 1 {
        traffic.source = Pick::RoundRobin;
    }
    let bin_ns = raw
        .output
        .bin
        .as_deref()
        .map(|b| duration("output.bin", b))
        .transpose()?;
    if bin_ns == Some(0) {
        return err(
            "output.bin",
            "found 0; expected a positive duration such as \"1s\"",
        );
    }
    let sweep = sweep_defaults(&raw.sweep)?;
    Ok(Scenario {
        name: raw.name,
        description: raw.description,
        seed: raw.seed.unwrap_or(1),
        duration_ns,
        max_connections: raw.max_connections,
        host,
        destinations,
        traffic,
        bin_ns,
        sweep,
    })
}

fn sweep_defaults(s: &RawSweep) -> R<SweepDefaults> {
    let mut vary = Vec::new();
    for (i, spec) in s.vary.iter().enumerate() {
        let v =
            super::spec::Vary::parse_spec(spec).or_else(|e| err(&format!("sweep.vary[{i}]"), e))?;
        vary.push(v);
    }
    if let Some(n) = s.seeds {
        if !(1..=10_000).contains(&n) {
            return err("sweep.seeds", format!("found {n}; expected 1 to 10000"));
        }
    }
    let target = s
        .target
        .as_deref()
        .map(|t| super::spec::Target::parse_bare(t).or_else(|e| err("sweep.target", e)))
        .transpose()?;
    if s.capacity.as_deref().is_some_and(|c| c.trim().is_empty()) {
        return err(
            "sweep.capacity",
            "found an empty key; expected KEY or KEY=LOW..HIGH, e.g. \"traffic.rate\"",
        );
    }
    Ok(SweepDefaults {
        vary,
        seeds: s.seeds,
        capacity: s.capacity.clone(),
        target,
    })
}

fn host(h: &RawHost) -> R<Host> {
    let os = match h.os.as_deref() {
        None => Os::Generic,
        Some(name) => Os::from_name(name).map_or_else(
            || {
                err(
                    "host.os",
                    format!(
                        "found {}; {}",
                        quote(name),
                        allowed_list(name, &Os::names())
                    ),
                )
            },
            Ok,
        )?,
    };
    let preset = os.preset();
    let allocator = match h.allocator.as_deref() {
        None => preset.allocator.to_string(),
        Some(a) if crate::alloc::names().contains(&a) => a.to_string(),
        Some(a) => {
            return err(
                "host.allocator",
                format!(
                    "found {}; {}",
                    quote(a),
                    allowed_list(a, &crate::alloc::names())
                ),
            )
        }
    };
    let (port_lo, port_hi) = match h.port_range.as_deref() {
        None => crate::os::DEFAULT_RANGE,
        Some("native") => preset.native_range,
        Some(r) => {
            let (a, b) = port_range("host.port_range", r).or_else(|_| {
                err(
                    "host.port_range",
                    format!(
                        "found {}; expected a range \"A-B\" with 1 <= A <= B <= 65535, \
                         or \"native\" for the OS's own range",
                        quote(r)
                    ),
                )
            })?;
            if a == b && !r.contains('-') {
                return err(
                    "host.port_range",
                    format!(
                        "found {}; expected a range \"A-B\" such as \"49152-65535\", or \"native\"",
                        quote(r)
                    ),
                );
            }
            (a, b)
        }
    };
    let mut reserved = Vec::new();
    if let Some(v) = &h.reserved_ports {
        let key = "host.reserved_ports";
        let toml::Value::Array(items) = v else {
            return err(
                key,
                format!(
                    "found {}; expected a list such as [\"50000\", \"50100-50199\"]",
                    value(v)
                ),
            );
        };
        for (i, item) in items.iter().enumerate() {
            let k = format!("{key}[{i}]");
            let r = match item {
                toml::Value::Integer(n) if (1..=65535).contains(n) => (*n as u16, *n as u16),
                toml::Value::String(s) => port_range(&k, s)?,
                other => {
                    return err(
                        &k,
                        format!(
                            "found {}; expected a port 1-65535 or a string \"A-B\"",
                            value(other)
                        ),
                    )
                }
            };
            reserved.push(r);
        }
    }
    let time_wait_ns = match h.time_wait.as_deref() {
        Some(t) => duration("host.time_wait", t)?,
        None => preset.time_wait_s * NS_PER_S,
    };
    let tw_reuse_delay_ns = match h.tw_reuse_delay.as_deref() {
        Some(t) => duration("host.tw_reuse_delay", t)?,
        None => NS_PER_S,
    };
    let addresses = addresses(h.addresses.as_ref())?;
    let host = Host {
        os,
        allocator,
        port_lo,
        port_hi,
        reserved,
        time_wait_ns,
        tw_reuse: h.tw_reuse.unwrap_or(false),
        tw_reuse_delay_ns,
        max_tw_buckets: h.max_tw_buckets.unwrap_or(262_144),
        addresses,
        share_across_destinations: h
            .share_across_destinations
            .unwrap_or(preset.share_across_destinations),
        rfc6056_2_tries: h.rfc6056_2_tries,
        rfc6056_5_increment: h.rfc6056_5_increment.unwrap_or(500),
    };
    if host.usable_ports() == 0 {
        return err(
            "host.reserved_ports",
            format!(
                "reserve every port of the range {}-{}; at least one port must stay usable",
                port_lo, port_hi
            ),
        );
    }
    if host.rfc6056_2_tries == Some(0) {
        return err("host.rfc6056_2_tries", "found 0; expected at least 1 try");
    }
    if host.rfc6056_5_increment == 0 {
        return err(
            "host.rfc6056_5_increment",
            "found 0; expected N >= 1 (RFC 6056 suggests 500)",
        );
    }
    Ok(host)
}

fn addresses(v: Option<&toml::Value>) -> R<Vec<String>> {
    let key = "host.addresses";
    let v = match v {
        None => return Ok(vec!["192.0.2.1".to_string()]),
        Some(v) => v,
    };
    match v {
        toml::Value::Integer(n) if (1..=4096).contains(n) => Ok(expand_ip(
            key,
            "192.0.2.1".parse().expect("literal address"),
            *n as u32,
        )?
        .into_iter()
        .map(|ip| ip.to_string())
        .collect()),
        toml::Value::Array(items) if !items.is_empty() => items
            .iter()
            .enumerate()
            .map(|(i, it)| match it {
                toml::Value::String(s) if s.parse::<IpAddr>().is_ok() => Ok(s.clone()),
                other => err(
                    &format!("{key}[{i}]"),
                    format!(
                        "found {}; expected an IP address such as \"10.0.0.7\"",
                        value(other)
                    ),
                ),
            })
            .collect(),
        other => err(
            key,
            format!(
                "found {}; expected a count from 1 to 4096 or a list of IP addresses",
                value(other)
            ),
        ),
    }
}

fn expand_ip(key: &str, ip: IpAddr, count: u32) -> R<Vec<IpAddr>> {
    let mut out = Vec::with_capacity(count as usize);
    for i in 0..count {
        let next = match ip {
            IpAddr::V4(v4) => u32::from(v4).checked_add(i).map(|n| IpAddr::V4(n.into())),
            IpAddr::V6(v6) => u128::from(v6)
                .checked_add(u128::from(i))
                .map(|n| IpAddr::V6(n.into())),
        };
        match next {
            Some(a) => out.push(a),
            None => {
                return err(
                    key,
                    format!(
                    "{count} consecutive addresses from {ip} run past the end of the address space"
                ),
                )
            }
        }
    }
    Ok(out)
}

/// Destinations a scenario may expand to, over all `[[destinations]]`.
const MAX_DESTINATIONS: usize = 1_000_000;

fn destinations(raw: &[RawDestination]) -> R<Vec<Destination>> {
    if raw.is_empty() {
        return err(
            "destinations",
            "missing; add at least one [[destinations]] table with address = \"10.0.0.5:5432\"",
        );
    }
    let mut out = Vec::new();
    for (i, d) in raw.iter().enumerate() {
        let key = format!("destinations[{i}]");
        let sa: SocketAddr = d.address.parse().or_else(|_| {
            err(
                &format!("{key}.address"),
                format!("found {}; expected \"ip:port\" such as \"10.0.0.5:5432\" or \"[2001:db8::1]:443\"", quote(&d.address)),
            )
        })?;
        let weight = positive(&format!("{key}.weight"), d.weight.unwrap_or(1.0), "weight")?;
        if weight > MAX_WEIGHT {
            return err(
                &format!("{key}.weight"),
                format!(
                    "found {}; weights are relative, at most {}",
                    num(weight),
                    num(MAX_WEIGHT)
                ),
            );
        }
        let count = d.count.unwrap_or(1);
        if count == 0 || count > 1_000_000 {
            return err(
                &format!("{key}.count"),
                format!("found {count}; expected 1 to 1000000"),
            );
        }
        // Counted before anything is expanded: many tables with large
        // counts must not build billions of addresses first.
        if out.len() + count as usize > MAX_DESTINATIONS {
            return err(
                &format!("{key}.count"),
                format!(
                    "brings the destinations to {} in all; at most {MAX_DESTINATIONS} are allowed",
                    out.len() + count as usize
                ),
            );
        }
        for ip in expand_ip(&format!("{key}.count"), sa.ip(), count)? {
            out.push(Destination {
                address: SocketAddr::new(ip, sa.port()).to_string(),
                weight,
            });
        }
    }
    Ok(out)
}

fn traffic(t: &RawTraffic) -> R<Traffic> {
    let arrivals = choice(
        "traffic.arrivals",
        t.arrivals.as_deref(),
        Arrivals::Poisson,
        &[
            ("poisson", Arrivals::Poisson),
            ("constant", Arrivals::Constant),
        ],
    )?;
    let rate = rate_profile(t)?;
    let hold = match &t.hold {
        None => return err(
            "traffic.hold",
            "missing; e.g. hold = \"50ms\" or hold = { dist = \"exponential\", mean = \"50ms\" }",
        ),
        Some(v) => hold(v)?,
    };
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
    let retry = t
        .retry
        .as_ref()
        .map(|r| -> R<Retry> {
            let after_ns = duration("traffic.retry.after", &r.after)?;
            if after_ns == 0 {
                return err(
                    "traffic.retry.after",
                    "found 0; expected a positive delay such as \"100ms\"",
                );
            }
            Ok(Retry {
                after_ns,
                max: r.max,
            })
        })
        .transpose()?;
    let requests_per_connection = t.requests_per_connection.unwrap_or(1);
    if requests_per_connection == 0 {
        return err(
            "traffic.requests_per_connection",
            "found 0; expected at least 1",
        );
    }
    Ok(Traffic {
        arrivals,
        rate,
        hold,
        close,
        bind,
        pick,
        source,
        retry,
        requests_per_connection,
    })
}

fn rate_profile(t: &RawTraffic) -> R<RateProfile> {
    let given = [t.rate.is_some(), t.schedule.is_some(), t.ramp.is_some()];
    if given.iter().filter(|g| **g).count() == 0 {
        return err(
            "traffic.rate",
            "missing; set rate = 250 (connections per second), a schedule or a ramp",
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

fn hold(v: &toml::Value) -> R<Hold> {
    let key = "traffic.hold";
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
