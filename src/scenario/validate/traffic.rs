//! `[traffic]`: arrivals, the rate profile (constant, schedule or ramp),
//! hold-time distributions, close and bind modes, retries, keep-alive and
//! the protocol.
//!
//! With `protocol = "udp"` a flow is a socket that sends
//! `requests_per_connection` queries and closes: there is no close
//! handshake, so `close` other than its default is refused rather than
//! ignored (a user who wrote `close = "server"` expects something UDP
//! cannot do); `connect_timeout` is how long the application waits for a
//! reply that a NAT dropped, holding its port.

use super::*;

pub(super) fn traffic(t: &RawTraffic) -> R<Traffic> {
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
