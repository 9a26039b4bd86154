//! `[host]`: the OS preset, allocator, port range, reserved ports, timers
//! and local addresses, checked and typed. Settings that belong to one
//! allocator are checked by that allocator (`alloc::Entry::check`).

use std::net::IpAddr;

use super::*;

pub(super) fn port_range(key: &str, text: &str) -> R<(u16, u16)> {
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

/// `tcp_syn_retries` is at most 127 in the kernel (`MAX_TCP_SYNCNT`).
const MAX_SYN_RETRIES: i64 = 127;
/// Linux's defaults (Documentation/networking/ip-sysctl.rst:
/// `tcp_syn_retries` 6, `tcp_syn_linear_timeouts` 4 since Linux 6.5).
pub const DEFAULT_SYN_RETRIES: u32 = 6;
pub const DEFAULT_SYN_LINEAR_TIMEOUTS: u32 = 4;

pub(super) fn host(h: &RawHost) -> R<Host> {
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
    let addresses = addresses("host.addresses", "192.0.2.1", h.addresses.as_ref())?;
    let count = |key: &str, v: Option<i64>, default: u32| -> R<u32> {
        match v {
            None => Ok(default),
            Some(n) if (0..=MAX_SYN_RETRIES).contains(&n) => Ok(n as u32),
            Some(n) => err(key, format!("found {n}; expected 0 to {MAX_SYN_RETRIES}")),
        }
    };
    let syn_retries = count("host.syn_retries", h.syn_retries, DEFAULT_SYN_RETRIES)?;
    let syn_linear_timeouts = count(
        "host.syn_linear_timeouts",
        h.syn_linear_timeouts,
        DEFAULT_SYN_LINEAR_TIMEOUTS,
    )?;
    let host = Host {
        syn_retries,
        syn_linear_timeouts,
        os,
        allocator,
        port_lo,
        port_hi,
        port_range_given: h.port_range.is_some(),
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
    // Each allocator checks the settings it owns, whichever is chosen.
    let settings = host.alloc_settings();
    for e in crate::alloc::REGISTRY {
        if let Err((key, message)) = (e.check)(&settings) {
            return err(key, message);
        }
    }
    Ok(host)
}

/// Addresses at `key`: a count of consecutive addresses from `base`
/// (which is also the default, alone), or a list of IP addresses.
pub(super) fn addresses(key: &str, base: &str, v: Option<&toml::Value>) -> R<Vec<String>> {
    let v = match v {
        None => return Ok(vec![base.to_string()]),
        Some(v) => v,
    };
    match v {
        toml::Value::Integer(n) if (1..=4096).contains(n) => {
            Ok(
                expand_ip(key, base.parse().expect("literal address"), *n as u32)?
                    .into_iter()
                    .map(|ip| ip.to_string())
                    .collect(),
            )
        }
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

pub(super) fn expand_ip(key: &str, ip: IpAddr, count: u32) -> R<Vec<IpAddr>> {
    let mut out = Vec::with_capacity(count as usize);
    for i in 0..count {
        let next = crate::util::ip_plus(ip, i);
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
