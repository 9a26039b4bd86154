//! Raw scenario -> typed [`Scenario`]: every check in one place.
//!
//! Each failure is a [`KeyError`] with the dotted key path (`traffic.hold.mean`)
//! and a message that says what was found and what is allowed; `load` adds the
//! file and line.

use super::raw::*;
use super::*;
use crate::error::{allowed_list, num, quote};
use destinations::destinations;
use host::host;
use nat::nats;
use traffic::traffic;

mod cloud_nat;
mod destinations;
mod host;
mod hosts;
mod measured;
mod nat;
mod traffic;

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

/// The first key of `keys` that was given (each a `(given, key)` pair):
/// the one a refusal of a combination names.
fn first_given<'a>(keys: &[(bool, &'a str)]) -> Option<&'a str> {
    keys.iter().find_map(|&(given, k)| given.then_some(k))
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
    let mut duration_ns = raw
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
    // A replayed trace ends: without a duration, the run lasts until its
    // last connection closes.
    if duration_ns.is_none() && raw.max_connections.is_none() && raw.traffic.replay.is_none() {
        return err(
            "duration",
            "missing; set `duration = \"1h\"` (simulated time) or `max_connections = N`, or both",
        );
    }
    // With [[hosts]] groups, [host] and [traffic] are their defaults and
    // the first group stands for the scenario where one host is asked for.
    let (groups, fleet_nats) = if raw.hosts.is_empty() {
        (Vec::new(), None)
    } else {
        let (g, n) = hosts::groups(&raw)?;
        (g, Some(n))
    };
    let (host, destinations, traffic) = match groups.first() {
        Some(g) => (g.host.clone(), g.destinations.clone(), g.traffic.clone()),
        None => {
            let host = host(&raw.host)?;
            let destinations = destinations(&raw.destinations)?;
            let mut traffic = traffic::single(&raw.traffic, &destinations, duration_ns)?;
            if let Some(r) = &traffic.replay {
                duration_ns = duration_ns.or(Some(r.end_ns()));
            }
            if host.addresses.len() == 1 {
                traffic.source = Pick::RoundRobin;
            }
            if traffic.client.is_some() && duration_ns.is_none() {
                return err(
                    "duration",
                    "missing; a run with a client model (traffic.pool, concurrency, streams_per_connection or timeout) needs a duration: requests on kept connections open no new ones, so max_connections alone might never end it",
                );
            }
            (host, destinations, traffic)
        }
    };
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
    let (nats, via) = match fleet_nats {
        Some(n) => (n, groups[0].via),
        None => nats(&raw.nat, raw.host.via.as_deref())?,
    };
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
        nats,
        via,
        groups,
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
