//! `[[hosts]]`: groups of identical hosts. Each group's host is `[host]`
//! with the group's own keys over it, its traffic `[traffic]` with the
//! group's `traffic` keys over it, and its destinations its own or the
//! file's; then the NAT paths from every group are checked together.
//!
//! A group is checked by the same functions as `[host]` and `[traffic]`;
//! an error in a key the group set is reported at the group's key
//! (`hosts[1].port_range`), one it took from the file at the file's.
//! Counts are added up before anything is built: at most [`MAX_HOSTS`],
//! each group counted at its largest (`count` or a `scale` step's), as the
//! engine builds that many hosts for it from the start.

use std::collections::HashMap;

use super::nat::{group_name, nats_from};
use super::*;
use crate::scenario::nat::Nat;

/// The most `[[hosts]]` groups a scenario may have.
pub const MAX_GROUPS: usize = 4096;

/// The most source addresses over all hosts (each host's are its own).
pub const MAX_FLEET_ADDRESSES: u64 = 1 << 26;

/// The most destinations the groups may list of their own, over all of
/// them (each group's list is also at most what `[[destinations]]` allows).
pub const MAX_GROUP_DESTINATIONS: usize = 1_000_000;

/// Move an error from `from` (`host.`) to `to` (`hosts[1].`) when the key
/// after `from` is one the group set itself.
fn rekey(mut e: KeyError, from: &str, to: &str, own: &[&str]) -> KeyError {
    if let Some(rest) = e.key.strip_prefix(from) {
        let field = rest.split(['.', '[']).next().unwrap_or_default();
        if own.contains(&field) {
            e.key = format!("{to}{rest}");
        }
    }
    e
}

/// `hosts[i].scale` (`key` is `hosts[i]`): each step's time and count,
/// in strictly increasing time. A count may be 0 (the group has no host
/// from then on); the hosts over all groups are counted by the caller.
fn scale(key: &str, steps: &[RawScaleStep]) -> R<Vec<ScaleStep>> {
    let mut out: Vec<ScaleStep> = Vec::with_capacity(steps.len());
    for (j, s) in steps.iter().enumerate() {
        let at_key = format!("{key}.scale[{j}].at");
        let at_ns = duration(&at_key, &s.at)?;
        if let Some(prev) = out.last() {
            if at_ns <= prev.at_ns {
                return err(
                    &at_key,
                    format!(
                        "found {}, not after the previous step ({}); steps must be in strictly increasing time order",
                        quote(&s.at),
                        quote(&steps[j - 1].at)
                    ),
                );
            }
        }
        let count = match u32::try_from(s.count) {
            Ok(c) if u64::from(c) <= MAX_HOSTS => c,
            _ => {
                return err(
                    &format!("{key}.scale[{j}].count"),
                    format!("found {}; expected 0 to {MAX_HOSTS} hosts", s.count),
                )
            }
        };
        out.push(ScaleStep { at_ns, count });
    }
    Ok(out)
}

/// The groups and the NATs, with each group's first NAT resolved.
pub(super) fn groups(raw: &RawScenario) -> R<(Vec<HostGroup>, Vec<Nat>)> {
    if raw.hosts.len() > MAX_GROUPS {
        return err(
            &format!("hosts[{MAX_GROUPS}]"),
            format!(
                "the file has {} [[hosts]] groups; at most {MAX_GROUPS} are allowed",
                raw.hosts.len()
            ),
        );
    }
    let mut seen: HashMap<&str, usize> = HashMap::new();
    let mut total: u64 = 0;
    let mut addresses: u64 = 0;
    let mut own_dests: usize = 0;
    let mut out = Vec::with_capacity(raw.hosts.len());
    // The file's destinations, needed only by groups without their own.
    let mut top_dests: Option<R<Vec<Destination>>> = None;
    for (i, g) in raw.hosts.iter().enumerate() {
        let key = format!("hosts[{i}]");
        group_name(&key, &g.name, "[[hosts]] group", "\"pods\"")?;
        if let Some(&j) = seen.get(g.name.as_str()) {
            return err(
                &format!("{key}.name"),
                format!(
                    "found {}, the name of hosts[{j}] too; each [[hosts]] group needs a name of its own",
                    quote(&g.name)
                ),
            );
        }
        seen.insert(&g.name, i);
        let count = g.count.unwrap_or(1);
        if count < 1 || count as u64 > MAX_HOSTS {
            return err(
                &format!("{key}.count"),
                format!("found {count}; expected 1 to {MAX_HOSTS} hosts"),
            );
        }
        let scale = scale(&key, g.scale.as_deref().unwrap_or_default())?;
        // A group has as many hosts as it ever needs: `count` or the
        // largest step's (the first step that reaches it takes the blame).
        let (max, max_key) = scale.iter().enumerate().fold(
            (count as u32, format!("{key}.count")),
            |(m, k), (j, s)| {
                if s.count > m {
                    (s.count, format!("{key}.scale[{j}].count"))
                } else {
                    (m, k)
                }
            },
        );
        total += u64::from(max);
        if total > MAX_HOSTS {
            let largest = if scale.is_empty() {
                String::new()
            } else {
                " (each group counted at its largest count over `scale`)".to_string()
            };
            return err(
                &max_key,
                format!(
                    "brings the hosts to {total} in all{largest}; at most {MAX_HOSTS} are allowed"
                ),
            );
        }
        let (rh, own) = g.host_over(&raw.host);
        let host = host(&rh).map_err(|e| rekey(e, "host.", &format!("{key}."), &own))?;
        addresses += host.addresses.len() as u64 * u64::from(max);
        if addresses > MAX_FLEET_ADDRESSES {
            return err(
                &max_key,
                format!(
                    "brings the hosts' source addresses to {addresses} in all ({max} hosts × {} addresses); at most {MAX_FLEET_ADDRESSES} are allowed",
                    host.addresses.len()
                ),
            );
        }
        // Every host of the group gets addresses of its own, the next ones
        // after the previous host's: all of them must exist.
        if let Some(first) = host.addresses.first() {
            let per_host = host.addresses.len() as u64;
            let all = per_host * u64::from(max);
            if let Ok(ip) = first.parse() {
                let at = if own.contains(&"addresses") {
                    format!("{key}.addresses")
                } else {
                    max_key.clone()
                };
                let last = u32::try_from(all.saturating_sub(1)).unwrap_or(u32::MAX);
                if crate::util::ip_plus(ip, last).is_none() {
                    return err(
                        &at,
                        format!(
                            "{max} hosts of {per_host} address(es) each from {first} run past the end of the address space"
                        ),
                    );
                }
            }
        }
        let (rt, own_t) = match &g.traffic {
            Some(t) => t.over(&raw.traffic),
            None => (raw.traffic.clone(), Vec::new()),
        };
        let mut traffic =
            traffic(&rt).map_err(|e| rekey(e, "traffic.", &format!("{key}.traffic."), &own_t))?;
        if host.addresses.len() == 1 {
            traffic.source = Pick::RoundRobin;
        }
        if traffic.client.is_some() {
            let k = first_given(&[
                (rt.pool.is_some(), "pool"),
                (rt.concurrency.is_some(), "concurrency"),
                (rt.think.is_some(), "think"),
                (
                    rt.streams_per_connection.is_some(),
                    "streams_per_connection",
                ),
                (rt.timeout.is_some(), "timeout"),
            ])
            .unwrap_or("pool");
            let at = if own_t.contains(&k) {
                format!("{key}.traffic.{k}")
            } else {
                format!("traffic.{k}")
            };
            return err(
                &at,
                "found in a scenario with [[hosts]] groups; pools, virtual users, streams and request timeouts are modelled for one [host] so far: run the host on its own with [host], or remove this key",
            );
        }
        if let Some(d) = &g.destinations {
            // Counted before any is expanded.
            let n: usize = d.iter().map(|x| x.count.unwrap_or(1) as usize).sum();
            own_dests += n;
            if own_dests > MAX_GROUP_DESTINATIONS {
                return err(
                    &format!("{key}.destinations"),
                    format!(
                        "brings the groups' own destinations to {own_dests} in all; at most {MAX_GROUP_DESTINATIONS} are allowed"
                    ),
                );
            }
        }
        let destinations = match &g.destinations {
            Some(d) => destinations(d).map_err(|mut e| {
                e.key = format!("{key}.{}", e.key);
                e
            })?,
            None => top_dests
                .get_or_insert_with(|| destinations(&raw.destinations))
                .clone()
                .map_err(|mut e| {
                    if raw.destinations.is_empty() {
                        e.message = format!(
                            "missing; add [[destinations]] tables, or give {key} destinations of its own"
                        );
                    }
                    e
                })?,
        };
        out.push(HostGroup {
            name: g.name.clone(),
            count: count as u32,
            host,
            traffic,
            destinations,
            via: None,
            scale,
        });
    }
    let starts: Vec<(String, Option<&str>)> = raw
        .hosts
        .iter()
        .enumerate()
        .map(|(i, g)| match &g.via {
            Some(v) => (format!("hosts[{i}].via"), Some(v.as_str())),
            None => ("host.via".to_string(), raw.host.via.as_deref()),
        })
        .collect();
    let (nats, firsts) = nats_from(&raw.nat, &starts)?;
    // `hosts[].failures_at` names layers: a group and a NAT cannot share one.
    for (i, g) in raw.hosts.iter().enumerate() {
        if let Some(j) = nats.iter().position(|n| n.name == g.name) {
            return err(
                &format!("hosts[{i}].name"),
                format!(
                    "found {}, the name of nat[{j}] too; a [[hosts]] group and a [[nat]] need names of their own",
                    quote(&g.name)
                ),
            );
        }
    }
    for (g, first) in out.iter_mut().zip(firsts) {
        g.via = first;
    }
    Ok((out, nats))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(at: &str, count: i64) -> RawScaleStep {
        RawScaleStep {
            at: at.to_string(),
            count,
        }
    }

    #[test]
    fn scale_steps_are_read_in_time_order() {
        let steps = scale("hosts[2]", &[step("0s", 0), step("10m", 52), step("1h", 1)]).unwrap();
        let at = |s: u64| s * NS_PER_S;
        assert_eq!(
            steps,
            vec![
                ScaleStep { at_ns: 0, count: 0 },
                ScaleStep {
                    at_ns: at(600),
                    count: 52
                },
                ScaleStep {
                    at_ns: at(3600),
                    count: 1
                },
            ]
        );
        assert_eq!(scale("hosts[0]", &[]).unwrap(), Vec::new());
    }

    #[test]
    fn bad_steps_name_their_key() {
        let e = scale("hosts[2]", &[step("10s", 1), step("9s", 2)]).unwrap_err();
        assert_eq!(e.key, "hosts[2].scale[1].at");
        assert!(e.message.contains("strictly increasing"), "{}", e.message);
        let e = scale("hosts[0]", &[step("1s", 1), step("1s", 2)]).unwrap_err();
        assert_eq!(e.key, "hosts[0].scale[1].at");
        let e = scale("hosts[0]", &[step("later", 1)]).unwrap_err();
        assert_eq!(e.key, "hosts[0].scale[0].at");
        let e = scale("hosts[0]", &[step("1s", -3)]).unwrap_err();
        assert_eq!(
            (e.key.as_str(), e.message.as_str()),
            (
                "hosts[0].scale[0].count",
                "found -3; expected 0 to 1000000 hosts"
            )
        );
        let e = scale("hosts[0]", &[step("1s", MAX_HOSTS as i64 + 1)]).unwrap_err();
        assert_eq!(e.key, "hosts[0].scale[0].count");
    }
}
