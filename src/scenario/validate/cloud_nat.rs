//! The keys of a cloud NAT `[[nat]]` table (`type` one of the presets of
//! `crate::scenario::nat`): each preset accepts the keys its vendor has,
//! within the vendor's limits, and the defaults fill the rest. What the
//! vendor leaves undocumented and the table does not set is listed in
//! `CloudRules::assumed`, so the summary can say it was assumed.

use super::*;
use crate::scenario::nat::{Blocks, CloudRules, Nat, Preset};

/// The most ports a Cloud NAT block may hold (`maxPortsPerVm`).
const GCP_MAX_PORTS: i64 = 65_536;

/// An Azure idle timeout's bounds, in minutes.
const AZURE_IDLE_MIN: (u64, u64) = (4, 120);

/// A doubling's default lag under dynamic allocation.
const DEFAULT_GROW_LAG_NS: u64 = NS_PER_S;

pub(super) fn rules(key: &str, r: &RawNat, p: &'static Preset, nat: &Nat) -> R<CloudRules> {
    let linux = [
        ("mode", r.mode.is_some()),
        ("persistent", r.persistent.is_some()),
        ("max_entries", r.max_entries.is_some()),
    ];
    let shared = [("timeouts", r.timeouts.is_some())];
    for (k, set) in linux.into_iter().chain(r.cloud_keys_given()).chain(shared) {
        if set && !p.keys.contains(&k) {
            let takes = if p.keys.is_empty() {
                "none".to_string()
            } else {
                p.keys.join(", ")
            };
            return err(
                &format!("{key}.{k}"),
                format!(
                    "is not a key of type {} ({}); besides name, type, addresses, port_range and via it takes: {takes}",
                    quote(p.name),
                    p.title
                ),
            );
        }
    }
    let mut holds = p.holds;
    let mut assumed: Vec<String> = p.assumed.iter().map(|s| s.to_string()).collect();
    if let Some(text) = &r.hold_after_close {
        let ns = duration(&format!("{key}.hold_after_close"), text)?;
        holds.fin = ns;
        if p.name == "aws-nat-gateway" {
            holds.rst = ns;
            holds.half_open = ns;
        }
        assumed.retain(|a| !a.contains("hold_after_close"));
    }
    if let Some(text) = &r.idle_timeout {
        let k = format!("{key}.idle_timeout");
        let ns = duration(&k, text)?;
        let (lo, hi) = AZURE_IDLE_MIN;
        if ns < lo * 60 * NS_PER_S || ns > hi * 60 * NS_PER_S {
            return err(
                &k,
                format!(
                    "found {}; {} takes {lo} to {hi} minutes",
                    quote(text),
                    p.title
                ),
            );
        }
        holds.idle = ns;
        if p.name == "azure-lb-outbound" {
            holds.udp = ns;
            holds.half_open = ns;
        }
    }
    if let Some(t) = &r.timeouts {
        let bad = [
            ("syn_sent", t.syn_sent.is_some()),
            ("fin_wait", t.fin_wait.is_some()),
            ("close_wait", t.close_wait.is_some()),
            ("last_ack", t.last_ack.is_some()),
            ("close", t.close.is_some()),
        ];
        if let Some((k, _)) = bad.iter().find(|(_, s)| *s) {
            return err(
                &format!("{key}.timeouts.{k}"),
                format!(
                    "is a Linux conntrack timeout; {} takes time_wait, transitory, established and udp",
                    p.title
                ),
            );
        }
        let get = |name: &str, v: &Option<String>, default: u64| -> R<u64> {
            let k = format!("{key}.timeouts.{name}");
            match v {
                None => Ok(default),
                Some(text) => {
                    let ns = duration(&k, text)?;
                    if ns == 0 {
                        return err(&k, format!("found {}; expected a positive duration (Cloud NAT's default is {}s)", quote(text), default / NS_PER_S));
                    }
                    Ok(ns)
                }
            }
        };
        holds.fin = get("time_wait", &t.time_wait, holds.fin)?;
        let transitory = get("transitory", &t.transitory, holds.rst)?;
        holds.rst = transitory;
        holds.half_open = transitory;
        holds.idle = get("established", &t.established, holds.idle)?;
        holds.udp = get("udp", &t.udp, holds.udp)?;
    }

    let a = nat.addresses.len() as u64;
    let per_address = i64::from(nat.range_size());
    let mut rules = CloudRules {
        preset: p,
        ports_per_host: None,
        max_ports_per_host: None,
        grow_lag_ns: 0,
        endpoint_independent: r.endpoint_independent.unwrap_or(false),
        holds,
        assumed,
    };
    match p.blocks {
        Blocks::Shared => {}
        Blocks::Table(_) => {
            if let Some(n) = r.ports_per_host {
                let k = format!("{key}.ports_per_host");
                let most = per_address * a as i64;
                if n < 8 || n % 8 != 0 || n > most {
                    return err(
                        &k,
                        format!(
                            "found {n}; expected a multiple of 8 from 8 to {} ({} ports on each of {a} frontend address{}); Azure rejects more",
                            crate::util::thousands(most as u64),
                            crate::util::thousands(per_address as u64),
                            if a == 1 { "" } else { "es" }
                        ),
                    );
                }
                rules.ports_per_host = Some(n as u32);
                rules.max_ports_per_host = Some(n as u32);
            }
        }
        Blocks::PerHost {
            default_min,
            dynamic_min,
        } => {
            let dynamic = r.max_ports_per_host.is_some();
            let floor = if dynamic { i64::from(dynamic_min) } else { 2 };
            let min = match r.min_ports_per_host {
                None => i64::from(if dynamic { dynamic_min } else { default_min }),
                Some(n) => {
                    let k = format!("{key}.min_ports_per_host");
                    power_of_two(&k, n, floor, GCP_MAX_PORTS.min(per_address * a as i64))?;
                    n
                }
            };
            rules.ports_per_host = Some(min as u32);
            rules.max_ports_per_host = Some(min as u32);
            if let Some(n) = r.max_ports_per_host {
                let k = format!("{key}.max_ports_per_host");
                power_of_two(&k, n, min * 2, GCP_MAX_PORTS)?;
                if rules.endpoint_independent {
                    return err(
                        &format!("{key}.endpoint_independent"),
                        "found true with max_ports_per_host (dynamic port allocation); Cloud NAT allows one or the other",
                    );
                }
                rules.max_ports_per_host = Some(n as u32);
                rules.grow_lag_ns = match &r.allocation_lag {
                    Some(text) => duration(&format!("{key}.allocation_lag"), text)?,
                    None => {
                        rules.assumed.push(
                            "a block's doubling takes 1 s, new flows of that VM dropped meanwhile (set allocation_lag)"
                                .to_string(),
                        );
                        DEFAULT_GROW_LAG_NS
                    }
                };
                rules
                    .assumed
                    .push("a VM's block never shrinks during the run".to_string());
            } else if r.allocation_lag.is_some() {
                return err(
                    &format!("{key}.allocation_lag"),
                    "applies to dynamic port allocation only; add max_ports_per_host (a power of two above min_ports_per_host)",
                );
            }
            if r.endpoint_independent.is_none() {
                rules.assumed.push(
                    "endpoint-independent mapping is off (set endpoint_independent = true)"
                        .to_string(),
                );
            }
        }
    }
    Ok(rules)
}

/// `n` is a power of two from `lo` to `hi`.
fn power_of_two(key: &str, n: i64, lo: i64, hi: i64) -> R<()> {
    if n < lo || n > hi || n.count_ones() != 1 {
        let up = if n > 0 && n <= hi {
            format!(
                " (Cloud NAT would round {n} up to {})",
                (n as u64).next_power_of_two()
            )
        } else {
            String::new()
        };
        return err(
            key,
            format!(
                "found {n}; expected a power of two from {} to {}{up}",
                crate::util::thousands(lo.max(1) as u64),
                crate::util::thousands(hi.max(1) as u64)
            ),
        );
    }
    Ok(())
}
