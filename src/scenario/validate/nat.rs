//! `[[nat]]` tables and `host.via`: each table checked and typed with the
//! kernel's defaults, then the names that chain them resolved to indices
//! into `Scenario::nats`.
//!
//! Names are resolved only after every table is read, since a `via` may
//! name a table written further down. The chain is then checked as a whole:
//! each name defined once, every `via` naming a table, no loop, and every
//! table on the host's path — a table no connection crosses is refused,
//! since a NAT that was meant to be in the path and is not would otherwise
//! go unnoticed. Each NAT has at most one `via`, so the path is a walk from
//! `host.via`, and loops are found in one pass over the tables (linear in
//! their number, however many a file holds).
//!
//! Sizes are counted before anything is expanded: at most [`MAX_NATS`]
//! tables and [`MAX_NAT_ADDRESSES`] outside addresses over all of them.

use std::collections::HashMap;

use super::host::{addresses, port_range};
use super::*;
use crate::error::did_you_mean;
use crate::scenario::nat::{
    ConntrackTimeouts, Nat, NatKind, NatMode, DEFAULT_MAX_ENTRIES, PRESETS,
};

/// The most `[[nat]]` tables a scenario may have.
pub const MAX_NATS: usize = 4096;

/// The most outside addresses over all `[[nat]]` tables.
pub const MAX_NAT_ADDRESSES: usize = 65_536;

/// First outside address of a NAT given a count (TEST-NET-3, RFC 5737).
const FIRST_ADDRESS: &str = "203.0.113.1";

/// MASQUERADE's range for source ports of 1024 and above (nf_nat_core.c,
/// `nf_nat_l4proto_unique_tuple`, when the rule gives no range).
const DEFAULT_PORT_RANGE: (u16, u16) = (1024, 65535);

/// `nf_conntrack_max` is an unsigned int in the kernel.
const MAX_ENTRIES_LIMIT: u64 = u32::MAX as u64;

/// How many names a message lists before it says how many there are.
const NAMES_SHOWN: usize = 12;

/// The `[[nat]]` tables typed and chained, and the index of the one
/// `host.via` names.
pub(super) fn nats(raw: &[RawNat], host_via: Option<&str>) -> R<(Vec<Nat>, Option<usize>)> {
    let (out, firsts) = nats_from(raw, &[("host.via".to_string(), host_via)])?;
    Ok((out, firsts[0]))
}

/// `[[nat]]` tables typed and chained for several starting points, each a
/// key (`host.via`, `hosts[i].via`) and the name it gives: the index of the
/// first NAT of each. Every table must be on some path.
pub(super) fn nats_from(
    raw: &[RawNat],
    starts: &[(String, Option<&str>)],
) -> R<(Vec<Nat>, Vec<Option<usize>>)> {
    if raw.len() > MAX_NATS {
        return err(
            &format!("nat[{MAX_NATS}]"),
            format!(
                "the file has {} [[nat]] tables; at most {MAX_NATS} are allowed",
                raw.len()
            ),
        );
    }
    let mut out: Vec<Nat> = Vec::with_capacity(raw.len());
    let mut index: HashMap<&str, usize> = HashMap::new();
    let mut total_addresses = 0usize;
    for (i, r) in raw.iter().enumerate() {
        let key = format!("nat[{i}]");
        name(&key, &r.name)?;
        if let Some(&j) = index.get(r.name.as_str()) {
            return err(
                &format!("{key}.name"),
                format!(
                    "found {}, the name of nat[{j}] too; each [[nat]] needs a name of its own",
                    quote(&r.name)
                ),
            );
        }
        index.insert(&r.name, i);
        out.push(table(&key, r, &mut total_addresses)?);
    }

    let names: Vec<&str> = raw.iter().map(|r| r.name.as_str()).collect();
    for (i, r) in raw.iter().enumerate() {
        let Some(via) = r.via.as_deref() else {
            continue;
        };
        let key = format!("nat[{i}].via");
        let j = resolve(&key, via, &index, &names)?;
        if j == i {
            return err(
                &key,
                format!(
                    "found {}, the table's own name; a NAT cannot send its connections through itself (the last NAT of a path has no via)",
                    quote(via)
                ),
            );
        }
        out[i].via = Some(j);
    }
    let firsts = paths(raw, &out, &index, &names, starts)?;
    Ok((out, firsts))
}

/// The paths from each starting point: no loop, at most `MAX_CHAIN` long,
/// and every table on one of them.
fn paths(
    raw: &[RawNat],
    out: &[Nat],
    index: &HashMap<&str, usize>,
    names: &[&str],
    starts: &[(String, Option<&str>)],
) -> R<Vec<Option<usize>>> {
    let mut firsts = Vec::with_capacity(starts.len());
    for (key, via) in starts {
        firsts.push(match via {
            None => None,
            Some(via) if out.is_empty() => {
                return err(
                    key,
                    format!(
                        "found {}, but the file has no [[nat]] table; add one with name = {} and type = \"linux\", or remove {key}",
                        quote(via),
                        quote(via)
                    ),
                )
            }
            Some(via) => Some(resolve(key, via, index, names)?),
        });
    }
    if out.is_empty() {
        return Ok(firsts);
    }
    if firsts.iter().all(Option::is_none) {
        let key = &starts[0].0;
        return err(
            key,
            format!(
                "missing; the file has [[nat]] tables ({}) but no connection crosses them unless {key} names the first, e.g. {key} = {}",
                names_list(names),
                quote(&out[0].name)
            ),
        );
    }
    // Walked from the hosts first, so the link blamed is the one that
    // turns a host's path back on itself.
    let from_hosts = firsts.iter().flatten().copied();
    if let Some((i, cycle)) = first_cycle(out, from_hosts.chain(0..out.len())) {
        let mut path: Vec<String> = cycle.iter().map(|&k| quote(&out[k].name)).collect();
        path.push(path[0].clone());
        return err(
            &format!("nat[{i}].via"),
            format!(
                "found {}, which closes a loop: {}; a path of NATs must end (its last [[nat]] has no via)",
                quote(raw[i].via.as_deref().unwrap_or_default()),
                chain(&path, cycle.len())
            ),
        );
    }
    // No path has a loop (checked above), so these walks end.
    let mut on_path = vec![false; out.len()];
    let mut shown: Option<(Vec<String>, usize, &str)> = None;
    for (first, (key, _)) in firsts.iter().zip(starts) {
        let Some(first) = *first else { continue };
        let mut path = Vec::new();
        let mut last = first;
        let mut at = Some(first);
        while let Some(k) = at {
            on_path[k] = true;
            path.push(quote(&out[k].name));
            last = k;
            at = out[k].via;
        }
        if path.len() > crate::scenario::nat::MAX_CHAIN {
            // The table whose `via` takes the path past the limit.
            let mut k = first;
            for _ in 1..crate::scenario::nat::MAX_CHAIN {
                k = out[k].via.expect("the path is longer");
            }
            return err(
                &format!("nat[{k}].via"),
                format!(
                    "found {}, which makes the path {} NATs long: {}; at most {} are allowed",
                    quote(raw[k].via.as_deref().unwrap_or_default()),
                    path.len(),
                    chain(&path, path.len()),
                    crate::scenario::nat::MAX_CHAIN
                ),
            );
        }
        shown.get_or_insert((path, last, key.as_str()));
    }
    if let Some(i) = on_path.iter().position(|on| !on) {
        let (path, last, key) = shown.expect("some start has a path");
        let last = quote(&out[last].name);
        return err(
            &format!("nat[{i}].name"),
            format!(
                "found {}, a [[nat]] no connection crosses: the host's path is {key} = {}; put it on the path (host.via, or via = {} in {}) or remove the table",
                quote(&out[i].name),
                chain(&path, path.len()),
                quote(&out[i].name),
                last
            ),
        );
    }
    Ok(firsts)
}

/// A NAT's name: not empty, no control characters (it is printed in the
/// summary and the charts), no spaces at its ends (a `via` would then
/// have to repeat them).
fn name(key: &str, name: &str) -> R<()> {
    group_name(key, name, "[[nat]]", "\"node\"")
}

/// A name of a `what` (`[[nat]]`, `[[hosts]] group`) at `key`: not empty,
/// printable, no spaces at its ends; `example` is a name to suggest.
pub(super) fn group_name(key: &str, name: &str, what: &str, example: &str) -> R<()> {
    let key = format!("{key}.name");
    if name.trim().is_empty() {
        return err(
            &key,
            format!("found an empty name; give each {what} a short name such as {example}"),
        );
    }
    if name.chars().any(char::is_control) {
        return err(
            &key,
            format!(
                "found {}; control characters (newlines, tabs, escapes) are not allowed in a name",
                quote(name)
            ),
        );
    }
    if name.trim() != name {
        return err(
            &key,
            format!("found {}; a name has no spaces at its ends", quote(name)),
        );
    }
    Ok(())
}

/// One table's keys, with the kernel's defaults; `via` is resolved later.
fn table(key: &str, r: &RawNat, total_addresses: &mut usize) -> R<Nat> {
    let kind = match r.kind.as_str() {
        "linux" => NatKind::Linux,
        other => match crate::scenario::nat::preset(other) {
            Some(p) => NatKind::Cloud(p),
            None => {
                let names: Vec<&str> = std::iter::once("linux")
                    .chain(PRESETS.iter().map(|p| p.name))
                    .collect();
                return err(
                    &format!("{key}.type"),
                    format!("found {}; {}", quote(other), allowed_list(other, &names)),
                );
            }
        },
    };

    let k = format!("{key}.addresses");
    // Counted before a count is expanded.
    let planned = match &r.addresses {
        None => 1,
        Some(toml::Value::Integer(n)) => usize::try_from(*n).unwrap_or(0),
        Some(toml::Value::Array(a)) => a.len(),
        Some(_) => 0,
    };
    if *total_addresses + planned > MAX_NAT_ADDRESSES {
        return err(
            &k,
            format!(
                "brings the NATs' outside addresses to {} in all; at most {MAX_NAT_ADDRESSES} are allowed",
                *total_addresses + planned
            ),
        );
    }
    if let NatKind::Cloud(p) = kind {
        if planned > p.max_addresses {
            return err(
                &k,
                format!(
                    "found {planned} addresses; {} takes at most {} ({})",
                    p.name, p.max_addresses, p.title
                ),
            );
        }
    }
    let addresses = addresses(&k, FIRST_ADDRESS, r.addresses.as_ref())?;
    let mut seen: HashMap<std::net::IpAddr, usize> = HashMap::new();
    for (j, a) in addresses.iter().enumerate() {
        let ip: std::net::IpAddr = a.parse().expect("checked by addresses()");
        if let Some(first) = seen.insert(ip, j) {
            return err(
                &format!("{k}[{j}]"),
                format!(
                    "found {}, listed already as {k}[{first}]; each outside address is listed once",
                    quote(a)
                ),
            );
        }
    }
    *total_addresses += addresses.len();

    let default_range = match kind {
        NatKind::Linux => DEFAULT_PORT_RANGE,
        NatKind::Cloud(p) => p.ports,
    };
    let (port_lo, port_hi) = match r.port_range.as_deref() {
        None => default_range,
        Some(text) => port_range(&format!("{key}.port_range"), text)?,
    };
    let mut nat = Nat {
        name: r.name.clone(),
        kind,
        addresses,
        port_lo,
        port_hi,
        mode: NatMode::Preserve,
        persistent: false,
        timeouts: ConntrackTimeouts::default(),
        max_entries: DEFAULT_MAX_ENTRIES,
        via: None,
        cloud: None,
    };
    match kind {
        NatKind::Linux => linux(key, r, &mut nat)?,
        NatKind::Cloud(p) => nat.cloud = Some(super::cloud_nat::rules(key, r, p, &nat)?),
    }
    Ok(nat)
}

/// The keys of a Linux table: none of a cloud NAT's.
fn linux(key: &str, r: &RawNat, nat: &mut Nat) -> R<()> {
    let cloud_keys = r.cloud_keys_given();
    if let Some((k, _)) = cloud_keys.iter().find(|(_, given)| *given) {
        let takers: Vec<&str> = PRESETS
            .iter()
            .filter(|p| p.keys.contains(k))
            .map(|p| p.name)
            .collect();
        return err(
            &format!("{key}.{k}"),
            format!(
                "is a key of {}, not of type \"linux\" (a Linux NAT has no per-host blocks; its timers are timeouts = {{ ... }})",
                takers.join(" and ")
            ),
        );
    }
    nat.mode = choice(
        &format!("{key}.mode"),
        r.mode.as_deref(),
        NatMode::Preserve,
        &[
            ("preserve", NatMode::Preserve),
            ("random", NatMode::Random),
            ("random-fully", NatMode::RandomFully),
        ],
    )?;
    nat.persistent = r.persistent.unwrap_or(false);
    nat.timeouts = timeouts(key, r.timeouts.as_ref())?;
    nat.max_entries = match r.max_entries {
        None => DEFAULT_MAX_ENTRIES,
        Some(n) if (1..=MAX_ENTRIES_LIMIT as i64).contains(&n) => n as u64,
        Some(n) => {
            return err(
                &format!("{key}.max_entries"),
                format!(
                    "found {n}; expected a whole number from 1 to {MAX_ENTRIES_LIMIT} (nf_conntrack_max, an unsigned int; the default is {DEFAULT_MAX_ENTRIES})"
                ),
            )
        }
    };
    Ok(())
}

/// `timeouts = { ... }`: each a duration, the kernel's default where
/// absent. `syn_sent` and `established` hold a mapping while its connection
/// is being set up or is open, so they must be positive; the states after a
/// close may be `"0"` (the mapping goes at once).
fn timeouts(key: &str, t: Option<&RawTimeouts>) -> R<ConntrackTimeouts> {
    let d = ConntrackTimeouts::default();
    let Some(t) = t else {
        return Ok(d);
    };
    if t.transitory.is_some() {
        return err(
            &format!("{key}.timeouts.transitory"),
            "is a Cloud NAT timeout (type = \"gcp-cloud-nat\"); a Linux NAT's are syn_sent, established, fin_wait, close_wait, last_ack, time_wait, close and udp",
        );
    }
    let get = |name: &str, v: Option<&String>, default: u64, positive: bool| -> R<u64> {
        let k = format!("{key}.timeouts.{name}");
        let Some(text) = v else {
            return Ok(default);
        };
        let ns = duration(&k, text)?;
        if positive && ns == 0 {
            return err(
                &k,
                format!(
                    "found {}; expected a positive duration (the kernel's default is {}s)",
                    quote(text),
                    default / NS_PER_S
                ),
            );
        }
        Ok(ns)
    };
    Ok(ConntrackTimeouts {
        syn_sent: get("syn_sent", t.syn_sent.as_ref(), d.syn_sent, true)?,
        established: get("established", t.established.as_ref(), d.established, true)?,
        fin_wait: get("fin_wait", t.fin_wait.as_ref(), d.fin_wait, false)?,
        close_wait: get("close_wait", t.close_wait.as_ref(), d.close_wait, false)?,
        last_ack: get("last_ack", t.last_ack.as_ref(), d.last_ack, false)?,
        time_wait: get("time_wait", t.time_wait.as_ref(), d.time_wait, false)?,
        close: get("close", t.close.as_ref(), d.close, false)?,
        udp: get("udp", t.udp.as_ref(), d.udp, false)?,
    })
}

/// The index of the table named `found`, or a message listing the names.
fn resolve(key: &str, found: &str, index: &HashMap<&str, usize>, names: &[&str]) -> R<usize> {
    if let Some(&i) = index.get(found) {
        return Ok(i);
    }
    let hint = did_you_mean(found, names.iter().copied())
        .map(|m| format!(" (did you mean {}?)", quote(m)))
        .unwrap_or_default();
    err(
        key,
        format!(
            "found {}, which no [[nat]] is named; the names are {}{hint}",
            quote(found),
            names_list(names)
        ),
    )
}

/// `"pod" → "node" → "cloud"`; a long path shows its first and last
/// names, so a message stays one readable line.
/// `distinct` is how many NATs the chain has (a loop repeats its first).
fn chain(names: &[String], distinct: usize) -> String {
    if names.len() <= NAMES_SHOWN {
        return names.join(" → ");
    }
    let head = names[..NAMES_SHOWN / 2].join(" → ");
    let tail = names[names.len() - 2..].join(" → ");
    format!("{head} → … ({distinct} NATs in all) → {tail}")
}

/// `"pod", "node"`, or the first few and how many there are in all.
fn names_list(names: &[&str]) -> String {
    let shown: Vec<String> = names.iter().take(NAMES_SHOWN).map(|n| quote(n)).collect();
    if names.len() > NAMES_SHOWN {
        format!("{}, … ({} in all)", shown.join(", "), names.len())
    } else {
        shown.join(", ")
    }
}

/// The first loop of `via` links met walking from each of `starts` in
/// turn: the table whose `via` closes it, and the loop from the table that
/// `via` names. Each table is walked once, however many starts there are.
fn first_cycle(nats: &[Nat], starts: impl Iterator<Item = usize>) -> Option<(usize, Vec<usize>)> {
    #[derive(Clone, Copy, PartialEq)]
    enum State {
        New,
        OnWalk,
        Done,
    }
    let mut state = vec![State::New; nats.len()];
    for start in starts {
        let mut walk = Vec::new();
        let mut at = Some(start);
        while let Some(k) = at {
            match state[k] {
                State::Done => break,
                State::OnWalk => {
                    let from = walk.iter().position(|&w| w == k).expect("on this walk");
                    let closing = *walk.last().expect("not empty");
                    return Some((closing, walk[from..].to_vec()));
                }
                State::New => {
                    state[k] = State::OnWalk;
                    walk.push(k);
                    at = nats[k].via;
                }
            }
        }
        for k in walk {
            state[k] = State::Done;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::MAX_NATS;
    use crate::scenario::nat::{ConntrackTimeouts, NatKind, NatMode, DEFAULT_MAX_ENTRIES};
    use crate::scenario::{load_str, Scenario, NS_PER_S};

    const BASE: &str = r#"name = "nat"
duration = "10s"
[[destinations]]
address = "10.0.0.5:443"
[traffic]
rate = 10
hold = "1s"
"#;

    fn load(extra: &str) -> Result<Scenario, String> {
        load_str(&format!("{BASE}{extra}"), Path::new("n.toml"), &[]).map_err(|e| e.to_string())
    }

    fn refused(extra: &str) -> String {
        load(extra).expect_err("refused")
    }

    #[test]
    fn no_nat_tables_and_no_via_is_a_direct_path() {
        let sc = load("").unwrap();
        assert!(sc.nats.is_empty());
        assert_eq!(sc.via, None);
    }

    #[test]
    fn a_table_with_only_name_and_type_takes_the_kernel_defaults() {
        let sc =
            load("[host]\nvia = \"node\"\n[[nat]]\nname = \"node\"\ntype = \"linux\"\n").unwrap();
        assert_eq!(sc.via, Some(0));
        let n = &sc.nats[0];
        assert_eq!(n.name, "node");
        assert_eq!(n.kind, NatKind::Linux);
        assert_eq!(n.addresses, ["203.0.113.1"]);
        assert_eq!((n.port_lo, n.port_hi), (1024, 65535));
        assert_eq!(n.range_size(), 64512);
        assert_eq!(n.mode, NatMode::Preserve);
        assert!(!n.persistent);
        assert_eq!(n.timeouts, ConntrackTimeouts::default());
        assert_eq!(n.timeouts.time_wait, 120 * NS_PER_S);
        assert_eq!(n.timeouts.established, 432_000 * NS_PER_S);
        assert_eq!(n.max_entries, DEFAULT_MAX_ENTRIES);
        assert_eq!(n.via, None);
    }

    #[test]
    fn every_key_is_read() {
        let sc = load(
            r#"[host]
via = "node"
[[nat]]
name = "node"
type = "linux"
addresses = 3
port_range = "20000-20999"
mode = "random-fully"
persistent = true
timeouts = { time_wait = "30s", close = "0", syn_sent = "1m", established = "1d", fin_wait = "2s", close_wait = "3s", last_ack = "4s" }
max_entries = 65536
"#,
        )
        .unwrap();
        let n = &sc.nats[0];
        assert_eq!(n.addresses, ["203.0.113.1", "203.0.113.2", "203.0.113.3"]);
        assert_eq!((n.port_lo, n.port_hi), (20000, 20999));
        assert_eq!(n.mode, NatMode::RandomFully);
        assert!(n.persistent);
        let s = NS_PER_S;
        assert_eq!(
            n.timeouts,
            ConntrackTimeouts {
                syn_sent: 60 * s,
                established: 86_400 * s,
                fin_wait: 2 * s,
                close_wait: 3 * s,
                last_ack: 4 * s,
                time_wait: 30 * s,
                close: 0,
                udp: 30 * s,
            }
        );
        assert_eq!(n.max_entries, 65536);
        // A list of addresses, and the other modes.
        let sc = load(
            "[host]\nvia = \"n\"\n[[nat]]\nname = \"n\"\ntype = \"linux\"\naddresses = [\"198.51.100.7\", \"2001:db8::1\"]\nmode = \"random\"\ntimeouts = { time_wait = \"5s\" }\n",
        )
        .unwrap();
        let n = &sc.nats[0];
        assert_eq!(n.addresses, ["198.51.100.7", "2001:db8::1"]);
        assert_eq!(n.mode, NatMode::Random);
        assert_eq!(
            n.timeouts,
            ConntrackTimeouts {
                time_wait: 5 * NS_PER_S,
                ..ConntrackTimeouts::default()
            }
        );
    }

    #[test]
    fn a_path_of_more_than_four_nats_is_refused() {
        let table = |n: usize, via: Option<usize>| {
            format!(
                "[[nat]]\nname = \"n{n}\"\ntype = \"linux\"\n{}",
                via.map(|v| format!("via = \"n{v}\"\n")).unwrap_or_default()
            )
        };
        let file = |len: usize| {
            let mut f = "[host]\nvia = \"n0\"\n".to_string();
            for i in 0..len {
                f.push_str(&table(i, (i + 1 < len).then_some(i + 1)));
            }
            f
        };
        assert_eq!(load(&file(4)).unwrap().nat_path().len(), 4);
        let e = refused(&file(5));
        assert!(
            e.contains("nat[3].via") && e.contains("5 NATs long") && e.contains("at most 4"),
            "{e}"
        );
    }

    #[test]
    fn a_pod_node_cloud_chain_resolves_to_indices_whatever_the_file_order() {
        // Written cloud, pod, node: the path is pod (1) → node (2) → cloud (0).
        let sc = load(
            r#"[host]
via = "pod"
[[nat]]
name = "cloud"
type = "linux"
addresses = 2
[[nat]]
name = "pod"
type = "linux"
via = "node"
[[nat]]
name = "node"
type = "linux"
via = "cloud"
"#,
        )
        .unwrap();
        let names: Vec<&str> = sc.nats.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["cloud", "pod", "node"]);
        assert_eq!(sc.via, Some(1));
        assert_eq!(sc.nats[1].via, Some(2));
        assert_eq!(sc.nats[2].via, Some(0));
        assert_eq!(sc.nats[0].via, None);
        assert_eq!(sc.nats[0].addresses, ["203.0.113.1", "203.0.113.2"]);
    }

    const CHAIN: &str = "[host]\nvia = \"pod\"\n[[nat]]\nname = \"pod\"\ntype = \"linux\"\nvia = \"node\"\n[[nat]]\nname = \"node\"\ntype = \"linux\"\n";

    #[test]
    fn names_that_do_not_resolve_list_the_names() {
        let e = refused(&CHAIN.replace("via = \"node\"", "via = \"nodes\""));
        assert_eq!(
            e,
            "n.toml:13: nat[0].via: found \"nodes\", which no [[nat]] is named; the names are \"pod\", \"node\" (did you mean \"node\"?)"
        );
        let e = refused(&CHAIN.replace("via = \"pod\"", "via = \"pdo\""));
        assert!(
            e.starts_with("n.toml:9: host.via: found \"pdo\", which no [[nat]] is named; the names are \"pod\", \"node\""),
            "{e}"
        );
        let e = refused("[host]\nvia = \"node\"\n");
        assert_eq!(
            e,
            "n.toml:9: host.via: found \"node\", but the file has no [[nat]] table; add one with name = \"node\" and type = \"linux\", or remove host.via"
        );
    }

    #[test]
    fn loops_are_refused_at_the_link_that_closes_them() {
        let e = refused(&format!("{CHAIN}via = \"pod\"\n"));
        assert_eq!(
            e,
            "n.toml:17: nat[1].via: found \"pod\", which closes a loop: \"pod\" → \"node\" → \"pod\"; a path of NATs must end (its last [[nat]] has no via)"
        );
        let e = refused(&format!("{CHAIN}via = \"node\"\n"));
        assert!(
            e.starts_with("n.toml:17: nat[1].via: found \"node\", the table's own name"),
            "{e}"
        );
    }

    #[test]
    fn a_loop_off_the_host_path_is_found_in_one_pass() {
        // 3000 tables: a chain from the host, then a loop of the last two.
        let mut t = String::from("[host]\nvia = \"n0\"\n");
        for i in 0..3000 {
            t.push_str(&format!("[[nat]]\nname = \"n{i}\"\ntype = \"linux\"\n"));
            if i < 2999 {
                t.push_str(&format!("via = \"n{}\"\n", i + 1));
            } else {
                t.push_str("via = \"n2998\"\n");
            }
        }
        let e = refused(&t);
        assert!(
            e.contains("nat[2999].via: found \"n2998\", which closes a loop: \"n2998\" → \"n2999\" → \"n2998\""),
            "{e}"
        );
        // A loop through all of them: its ends shown, and how many.
        let at = t.rfind("via = \"n2998\"").unwrap();
        let t = format!("{}via = \"n0\"\n", &t[..at]);
        let e = refused(&t);
        assert!(
            e.ends_with("nat[2999].via: found \"n0\", which closes a loop: \"n0\" → \"n1\" → \"n2\" → \"n3\" → \"n4\" → \"n5\" → … (3000 NATs in all) → \"n2999\" → \"n0\"; a path of NATs must end (its last [[nat]] has no via)"),
            "{e}"
        );
        // One table too many.
        let mut t = String::from("[host]\nvia = \"n0\"\n");
        for i in 0..=MAX_NATS {
            t.push_str(&format!("[[nat]]\nname = \"n{i}\"\ntype = \"linux\"\n"));
        }
        let e = refused(&t);
        let line = 10 + 3 * MAX_NATS;
        assert_eq!(
            e,
            format!("n.toml:{line}: nat[4096]: the file has 4097 [[nat]] tables; at most 4096 are allowed")
        );
    }

    #[test]
    fn duplicate_and_empty_names_are_refused() {
        let e = refused(&CHAIN.replace("name = \"node\"", "name = \"pod\""));
        assert_eq!(
            e,
            "n.toml:15: nat[1].name: found \"pod\", the name of nat[0] too; each [[nat]] needs a name of its own"
        );
        let e = refused(&CHAIN.replace("name = \"node\"", "name = \"  \""));
        assert!(e.contains("nat[1].name: found an empty name"), "{e}");
        let e = refused(&CHAIN.replace("name = \"node\"", "name = \"node \""));
        assert!(e.contains("no spaces at its ends"), "{e}");
    }

    #[test]
    fn a_table_off_the_path_is_refused_by_name() {
        let e = refused(&format!(
            "{CHAIN}[[nat]]\nname = \"spare\"\ntype = \"linux\"\n"
        ));
        assert_eq!(
            e,
            "n.toml:18: nat[2].name: found \"spare\", a [[nat]] no connection crosses: the host's path is host.via = \"pod\" → \"node\"; put it on the path (host.via, or via = \"spare\" in \"node\") or remove the table"
        );
        let e = refused("[[nat]]\nname = \"node\"\ntype = \"linux\"\n");
        assert!(
            e.starts_with("n.toml: host.via: missing; the file has [[nat]] tables (\"node\")"),
            "{e}"
        );
    }

    #[test]
    fn bad_values_say_what_is_allowed() {
        for (from, to, want) in [
            (
                "type = \"linux\"\nvia",
                "type = \"bsd\"\nvia",
                "nat[0].type: found \"bsd\"; allowed: \"linux\"",
            ),
            (
                "via = \"node\"",
                "via = \"node\"\nmode = \"random_fully\"",
                "nat[0].mode: found \"random_fully\"; allowed: \"preserve\", \"random\", \"random-fully\" (did you mean \"random-fully\"?)",
            ),
            (
                "via = \"node\"",
                "via = \"node\"\nport_range = \"2000-1000\"",
                "nat[0].port_range: found \"2000-1000\"; expected a port or a range \"A-B\" with 1 <= A <= B <= 65535",
            ),
            (
                "via = \"node\"",
                "via = \"node\"\nmax_entries = 0",
                "nat[0].max_entries: found 0; expected a whole number from 1 to 4294967295",
            ),
            (
                "via = \"node\"",
                "via = \"node\"\nmax_entries = -1",
                "nat[0].max_entries: found -1; expected a whole number from 1",
            ),
            (
                "via = \"node\"",
                "via = \"node\"\nmax_entries = 4294967296",
                "nat[0].max_entries: found 4294967296",
            ),
            (
                "via = \"node\"",
                "via = \"node\"\ntimeouts = { syn_sent = \"0\" }",
                "nat[0].timeouts.syn_sent: found \"0\"; expected a positive duration (the kernel's default is 120s)",
            ),
            (
                "via = \"node\"",
                "via = \"node\"\ntimeouts = { established = \"5x\" }",
                "nat[0].timeouts.established: found \"5x\"",
            ),
            (
                "via = \"node\"",
                "via = \"node\"\naddresses = [\"198.51.100.1\", \"198.51.100.1\"]",
                "nat[0].addresses[1]: found \"198.51.100.1\", listed already as nat[0].addresses[0]",
            ),
            (
                "via = \"node\"",
                "via = \"node\"\naddresses = 0",
                "nat[0].addresses: found \"0\"; expected a count from 1 to 4096 or a list of IP addresses",
            ),
        ] {
            let e = refused(&CHAIN.replacen(from, to, 1));
            assert!(e.starts_with("n.toml:"), "{e}");
            assert!(e.contains(want), "{to}: {e}");
        }
    }

    #[test]
    fn outside_addresses_are_counted_before_they_are_expanded() {
        // Seventeen tables of 4096 addresses each pass 65,536 at the last.
        let mut t = String::from("[host]\nvia = \"n0\"\n");
        for i in 0..17 {
            t.push_str(&format!(
                "[[nat]]\nname = \"n{i}\"\ntype = \"linux\"\naddresses = 4096\n"
            ));
            if i < 16 {
                t.push_str(&format!("via = \"n{}\"\n", i + 1));
            }
        }
        let e = refused(&t);
        assert!(
            e.contains("nat[16].addresses: brings the NATs' outside addresses to 69632 in all; at most 65536 are allowed"),
            "{e}"
        );
    }
}
