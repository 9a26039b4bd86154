//! `inspect --write-scenario`: a scenario calibrated to the host inspected,
//! so `portsim run` answers how much headroom it has and what breaks first.
//!
//! The host's rules come as read: its OS (Linux for `/proc` and `ss`,
//! Windows for its `netstat`, macOS for BSD `netstat` and `lsof`), the
//! range, reserved ports,
//! `tcp_tw_reuse`, `tcp_max_tw_buckets`, with the ports of the range a
//! service listens on reserved (a connect() never gets them). The load comes from what was
//! measured, best first: a watch's new connections per second, weighted
//! by destination, with its holds (a lognormal through the median and
//! 99th percentile when at least [`MIN_HOLDS`] were seen, else their mean
//! as an exponential); without a watch, the quick estimate (TIME_WAIT ÷
//! its length) for the rate and Little's law (open connections ÷ rate)
//! for the mean hold. The description says which, when and where.

use std::fmt::Write as _;

use super::figures::Inspection;
use super::live::Sysctls;
use super::watch::Watched;
use crate::report::format::thousands;

/// Holds needed before their shape (median, 99th percentile) is used.
pub const MIN_HOLDS: u64 = 20;

/// The most destinations written (the busiest; the rest are named in the
/// description by count).
pub const MAX_DESTINATIONS: usize = 50;

/// Why no scenario can be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoLoad(pub String);

/// A duration in TOML, from seconds: to the millisecond from 0.1 s up, to
/// the microsecond below (a measurement is no finer).
fn dur(s: f64) -> String {
    let us = if s >= 0.1 {
        (s * 1e3).round() as u64 * 1000
    } else {
        (s * 1e6).round().max(1.0) as u64
    };
    if us % 1_000_000 == 0 {
        format!("{}s", us / 1_000_000)
    } else if us % 1000 == 0 {
        format!("{}ms", us / 1000)
    } else {
        format!("{us}us")
    }
}

fn quote(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// The scenario's text. `when` and `place` are written in its description.
pub fn write(
    i: &Inspection,
    os: &str,
    sysctls: Option<&Sysctls>,
    watched: Option<&Watched>,
    when: &str,
    place: &str,
    label: &str,
) -> Result<String, NoLoad> {
    // The load: rate, destinations' weights, hold.
    let open: u64 = [
        "ESTABLISHED",
        "SYN_SENT",
        "FIN_WAIT1",
        "FIN_WAIT2",
        "CLOSE_WAIT",
        "LAST_ACK",
        "CLOSING",
    ]
    .iter()
    .map(|k| i.by_state.get(k).copied().unwrap_or(0))
    .sum();
    let (rate, weights, hold, how): (f64, Vec<(String, f64)>, String, String) = match watched
        .filter(|w| w.new_connections > 0 && w.duration_s > 0.0)
    {
        Some(w) => {
            let weights = w
                .destinations
                .iter()
                .map(|d| (d.destination.to_string(), d.new as f64))
                .collect();
            let h = &w.hold_s;
            let (hold, hold_how) = if h.n >= MIN_HOLDS && h.p99 > h.p50 && h.p50 > 0.0 {
                (
                    format!(
                        "{{ dist = \"lognormal\", median = {}, p99 = {} }}",
                        quote(&dur(h.p50)),
                        quote(&dur(h.p99))
                    ),
                    format!(
                        "lognormal through the median and 99th percentile of {} holds seen",
                        h.n
                    ),
                )
            } else if h.n > 0 {
                (
                    format!(
                        "{{ dist = \"exponential\", mean = {} }}",
                        quote(&dur(h.mean.max(1e-3)))
                    ),
                    format!("exponential with the mean of {} holds seen", h.n),
                )
            } else {
                let mean = (open as f64 / w.per_second).max(1e-3);
                (
                    format!("{{ dist = \"exponential\", mean = {} }}", quote(&dur(mean))),
                    "exponential with Little's law's mean (open connections ÷ rate): no hold was seen whole".to_string(),
                )
            };
            (
                w.per_second,
                weights,
                hold,
                format!(
                    "rate: {} new connections in a {} watch ({} samples); hold: {hold_how}",
                    w.new_connections,
                    crate::report::format::human_s(w.duration_s),
                    w.samples
                ),
            )
        }
        None => {
            let c = &i.churn;
            if c.closes_per_s <= 0.0 {
                return Err(NoLoad(
                    "no TIME_WAIT socket on a port of the range and no watch: there is nothing to measure a rate from; run inspect --watch 60s --write-scenario FILE".into(),
                ));
            }
            let weights = i
                .pools
                .iter()
                .filter(|p| p.time_wait > 0)
                .map(|p| (p.destination.to_string(), p.time_wait as f64))
                .collect();
            // Little's law over the pools that churn: their open
            // connections ÷ their closes per second.
            let churning: u64 = i
                .pools
                .iter()
                .filter(|p| p.time_wait > 0)
                .map(|p| p.in_use - p.time_wait)
                .sum();
            let mean = (churning as f64 / c.closes_per_s).max(1e-3);
            (
                c.closes_per_s,
                weights,
                format!("{{ dist = \"exponential\", mean = {} }}", quote(&dur(mean))),
                format!(
                    "rate: {} TIME_WAIT sockets ÷ {} (the quick estimate; only connections this host closed); hold: Little's law, the {} connections open to those destinations ÷ rate",
                    c.time_wait,
                    dur(c.time_wait_s),
                    churning
                ),
            )
        }
    };
    let mut weights = merge(weights);
    let dropped = weights.len().saturating_sub(MAX_DESTINATIONS);
    weights.truncate(MAX_DESTINATIONS);
    let host = i.hostname.as_deref().unwrap_or("the host");
    let busiest = i
        .pools
        .first()
        .map(|p| {
            format!(
                " Busiest pool then: {} to {}, {} of {} ports.",
                p.local,
                p.destination,
                thousands(p.in_use),
                thousands(p.capacity)
            )
        })
        .unwrap_or_default();
    let mut s = String::new();
    let label = i.hostname.as_deref().unwrap_or(label);
    let name: String = format!("measured-{label}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let _ = writeln!(s, "name = {}", quote(&name));
    let _ = writeln!(
        s,
        "description = {}",
        quote(&format!(
            "Measured on {host} at {when} by portsim inspect ({place}): {} ports of {}-{} in use, {} TCP connections open, {} in TIME_WAIT. {how}.{busiest}{}",
            thousands(u64::from(i.range.in_use)),
            i.range.low,
            i.range.high,
            thousands(open),
            thousands(i.churn.time_wait),
            if dropped > 0 {
                format!(" {dropped} quieter destinations are left out.")
            } else {
                String::new()
            }
        ))
    );
    let _ = writeln!(
        s,
        "duration = \"10m\"\nseed = 1\n\n[host]\nos = {}",
        quote(os)
    );
    let _ = writeln!(s, "port_range = \"{}-{}\"", i.range.low, i.range.high);
    // Reserved ports, and the ports of the range a service listens on:
    // neither is handed out to a connect().
    let mut reserved: Vec<(u16, u16)> = sysctls
        .and_then(|x| x.ip_local_reserved_ports.clone())
        .unwrap_or_default();
    reserved.extend(i.listeners_in_range.iter().map(|&p| (p, p)));
    if !reserved.is_empty() {
        let list: Vec<String> = reserved
            .iter()
            .map(|&(a, b)| {
                if a == b {
                    format!("{a}")
                } else {
                    quote(&format!("{a}-{b}"))
                }
            })
            .collect();
        let _ = writeln!(s, "reserved_ports = [{}]", list.join(", "));
    }
    if let Some(x) = sysctls {
        // 1: on for every connect(); 2 (the default since 4.x): loopback
        // only, which the scenario's destinations are not.
        if let Some(v) = x.tcp_tw_reuse {
            let _ = writeln!(s, "tw_reuse = {}", v == 1);
        }
        if let Some(v) = x.tcp_max_tw_buckets {
            let _ = writeln!(s, "max_tw_buckets = {v}");
        }
    }
    if let Some(p) = i.pools.first() {
        if !p.local.is_unspecified() {
            let _ = writeln!(s, "addresses = [{}]", quote(&p.local.to_string()));
        }
    }
    for (address, weight) in &weights {
        let _ = writeln!(
            s,
            "\n[[destinations]]\naddress = {}\nweight = {weight}",
            quote(address)
        );
    }
    let _ = writeln!(s, "\n[traffic]\nrate = {}\nhold = {hold}", sig(rate));
    if weights.is_empty() {
        return Err(NoLoad("no destination was seen to measure".into()));
    }
    Ok(s)
}

/// Destinations' weights summed per address, busiest first.
fn merge(weights: Vec<(String, f64)>) -> Vec<(String, f64)> {
    let mut m: std::collections::BTreeMap<String, f64> = Default::default();
    for (a, w) in weights {
        *m.entry(a).or_default() += w;
    }
    let mut v: Vec<(String, f64)> = m.into_iter().collect();
    v.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    v
}

/// A rate to 4 significant digits.
fn sig(v: f64) -> String {
    if v <= 0.0 || !v.is_finite() {
        return "0".into();
    }
    let digits = (3 - v.log10().floor() as i32).max(0) as usize;
    let s = format!("{v:.digits$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_rates_read_well() {
        assert_eq!(dur(60.0), "60s");
        assert_eq!(dur(0.25), "250ms");
        assert_eq!(dur(0.0001234), "123us");
        assert_eq!(dur(0.9995934), "1s");
        assert_eq!(dur(0.2444), "244ms");
        assert_eq!(sig(3.33333), "3.333");
        assert_eq!(sig(1234.7), "1235");
        assert_eq!(sig(0.05), "0.05");
    }
}
