//! The levers a fix can pull, one function each, registered in [`LEVERS`].
//!
//! A lever decides from the scenario whether it can help at all (TIME_WAIT
//! to save, ports shared by 4-tuple, an allocator that gives up early, ...)
//! and writes its change as `--set` pairs. Numeric levers carry a first
//! guess from the busiest pool's load factor ρ (offered load at the highest
//! rate over the pool's ports): the value that brings ρ to 95 %. The NAT
//! address lever is the exception: the kernel's address hash makes its
//! failures jump about with the count, so it follows the hash for every
//! pair that reaches the NAT and offers only the counts that spread the
//! load better than all smaller ones ([`hash_records`]). A new lever is one
//! function here and one line in [`LEVERS`].

use std::net::{IpAddr, Ipv4Addr};

use super::{Among, Change, Context, Grid, Lever, Plan, Search, AIM};
use crate::scenario::{BindMode, Close};

/// Every lever, in the order they are tried (and share the budget) and
/// fixes that do equally well are listed.
pub const LEVERS: &[Lever] = &[
    // First: where it applies, the allocator giving up is the cause.
    Lever {
        name: "allocator",
        plan: allocator,
    },
    // Then the NAT that ran out, where one did: the host's own levers
    // apply only where the host ran out too.
    Lever {
        name: "nat_addresses",
        plan: nat_addresses,
    },
    Lever {
        name: "nat_ports_per_host",
        plan: nat_ports_per_host,
    },
    Lever {
        name: "nat_port_range",
        plan: nat_port_range,
    },
    Lever {
        name: "pool_max_idle",
        plan: super::clients::pool_max_idle,
    },
    Lever {
        name: "keep_alive",
        plan: keep_alive,
    },
    Lever {
        name: "server_close",
        plan: server_close,
    },
    Lever {
        name: "tw_reuse",
        plan: tw_reuse,
    },
    Lever {
        name: "destinations",
        plan: destinations,
    },
    Lever {
        name: "source_addresses",
        plan: source_addresses,
    },
    Lever {
        name: "bind_no_port",
        plan: bind_no_port,
    },
    Lever {
        name: "port_range",
        plan: port_range,
    },
    Lever {
        name: "rate",
        plan: rate,
    },
    Lever {
        name: "concurrency",
        plan: super::clients::concurrency,
    },
];

/// Most requests per connection a search goes to.
const MAX_REQUESTS_PER_CONNECTION: f64 = 1_000_000.0;
/// Most destinations a file may expand to.
const MAX_DESTINATIONS: f64 = 1_000_000.0;
/// Most source addresses a host may have.
const MAX_ADDRESSES: f64 = 4096.0;
/// The widest range a fix proposes: every port above the well-known ones.
const WIDEST: (u32, u32) = (1024, 65535);

/// Keep-alive: `n` requests share a connection, so connections open at
/// rate / n and TIME_WAIT is paid once per `n` requests. Only TIME_WAIT
/// shrinks (the hold is paid per request), so the lever needs some.
fn keep_alive(cx: &Context) -> Option<Plan> {
    let sc = cx.sc;
    let tw = sc.effective_time_wait_ns() as f64;
    // With a client model the pool decides reuse ([`super::clients`]).
    if tw == 0.0 || sc.traffic.client.is_some() {
        return None;
    }
    let n = f64::from(sc.traffic.requests_per_connection);
    let hold = sc.traffic.hold.mean_ns() * n;
    // ρ = ρ_hold + ρ_tw, and only ρ_tw scales as n / n'.
    let rho = cx.load_factor();
    let rho_tw = rho * tw / (hold + tw);
    let rho_hold = rho - rho_tw;
    let guess = if rho_hold < AIM {
        n * rho_tw / (AIM - rho_hold)
    } else {
        2.0 * n
    };
    // A connection must close well within the run, or the run cannot tell
    // whether its TIME_WAIT would fit: at most half the run long.
    let limit = match sc.duration_ns {
        Some(d) => (0.5 * d as f64 / sc.traffic.hold.mean_ns().max(1.0)).floor(),
        None => MAX_REQUESTS_PER_CONNECTION,
    }
    .min(MAX_REQUESTS_PER_CONNECTION);
    if limit <= n {
        return None;
    }
    Some(Plan::Search(Search {
        from: n,
        guess,
        limit,
        grid: Grid::Integer,
        changes: Box::new(|v| {
            vec![Change::new(
                "traffic.requests_per_connection",
                Grid::Integer.write(v),
            )]
        }),
    }))
}

/// The server closes first, so TIME_WAIT stays on its side. Only where the
/// host ran out: a NAT holds its mapping after either side closes.
fn server_close(cx: &Context) -> Option<Plan> {
    (cx.host_ran_out() && cx.sc.traffic.close == Close::Client && cx.sc.host.time_wait_ns > 0)
        .then(|| Plan::Toggle(vec![Change::new("traffic.close", "server")]))
}

/// `tcp_tw_reuse`: only where the engine lets connect() take over a
/// TIME_WAIT 4-tuple (client close, ports shared by 4-tuple).
fn tw_reuse(cx: &Context) -> Option<Plan> {
    let sc = cx.sc;
    if !cx.host_ran_out()
        || sc.host.tw_reuse
        || sc.traffic.close != Close::Client
        || sc.host.time_wait_ns == 0
    {
        return None;
    }
    let mut on = sc.clone();
    on.host.tw_reuse = true;
    crate::sim::host::port_rules(&on)
        .1
        .then(|| Plan::Toggle(vec![Change::new("host.tw_reuse", "true")]))
}

/// More destination addresses: with ports shared by 4-tuple each one is a
/// fresh pool. Only for a file with one `[[destinations]]` entry, whose
/// `count` it raises.
fn destinations(cx: &Context) -> Option<Plan> {
    let sc = cx.sc;
    let entries = cx.file.get("destinations")?.as_array()?.len();
    if sc.exclusive_ports() || entries != 1 || cx.is_overridden("destinations") {
        return None;
    }
    let k = sc.destinations.len() as f64;
    // Each destination is a fresh set of 4-tuples on the host and of reply
    // tuples on a NAT: aim at the layer that ran out (the host's load can be
    // far above what a NAT let through).
    let factor = match failing_nat(cx) {
        Some((.., factor)) if !cx.host_ran_out() => factor,
        _ => cx.load_factor() / AIM,
    };
    Some(Plan::Search(Search {
        from: k,
        guess: k * factor,
        limit: MAX_DESTINATIONS,
        grid: Grid::Integer,
        changes: Box::new(|v| vec![Change::new("destinations.0.count", Grid::Integer.write(v))]),
    }))
}

/// More source addresses, each socket bound to one before connect()
/// (`bind-no-port` unless it binds already): each address is a fresh pool.
fn source_addresses(cx: &Context) -> Option<Plan> {
    if !cx.host_ran_out() {
        return None;
    }
    let sc = cx.sc;
    let have = sc.host.addresses.clone();
    let len = have.len() as f64;
    let connect = sc.traffic.bind == BindMode::Connect;
    let used = if connect { 1.0 } else { len };
    // As the file writes them: a count expands from the default address.
    let as_count = !cx.is_overridden("host.addresses")
        && cx
            .file
            .get("host")
            .and_then(|h| h.get("addresses"))
            .is_none_or(|a| a.is_integer());
    let last: IpAddr = have.last()?.parse().ok()?;
    let from = if connect { (len - 1.0).max(1.0) } else { len };
    Some(Plan::Search(Search {
        from,
        guess: (used * cx.load_factor() / AIM).max(from + 1.0),
        limit: MAX_ADDRESSES,
        grid: Grid::Integer,
        changes: Box::new(move |v| {
            let n = v.round() as usize;
            let mut out = Vec::new();
            if connect {
                out.push(Change::new("traffic.bind", "bind-no-port"));
            }
            if n != have.len() {
                out.push(Change::new(
                    "host.addresses",
                    addresses_value(&have, last, n, as_count),
                ));
            }
            out
        }),
    }))
}

/// `n` addresses as a scenario writes them: a count, or `have` extended
/// with the addresses after `last`.
fn addresses_value(have: &[String], last: IpAddr, n: usize, as_count: bool) -> String {
    if as_count {
        return n.to_string();
    }
    let list: Vec<String> = have
        .iter()
        .cloned()
        .chain((1..).map_while(|i| crate::util::ip_plus(last, i).map(|a| a.to_string())))
        .take(n)
        .map(|a| format!("\"{a}\""))
        .collect();
    format!("[{}]", list.join(", "))
}

/// The NAT that dropped the most connections for want of a port: its index
/// among the file's `[[nat]]` tables (the `--set nat.I.` path), the NAT,
/// its table in the file, and how much more it was asked than it served
/// (the first guess of how much larger it must be).
type FailingNat<'a> = (
    usize,
    &'a crate::scenario::nat::Nat,
    Option<&'a toml::Value>,
    f64,
);

fn failing_nat<'a>(cx: &'a Context) -> Option<FailingNat<'a>> {
    let worst = cx
        .report
        .nats
        .iter()
        .filter(|n| {
            n.failures_by_cause.no_port > 0 || n.syns_dropped > n.failures_by_cause.table_full
        })
        .max_by_key(|n| n.syns_dropped.max(n.failures_by_cause.no_port))?;
    let i = cx.sc.nats.iter().position(|n| n.name == worst.name)?;
    if cx.is_overridden(&format!("nat.{i}")) {
        return None;
    }
    let table = cx
        .file
        .get("nat")
        .and_then(|t| t.as_array())
        .and_then(|a| a.get(i));
    // Connects it was asked for over those it let through at once; a SYN
    // it dropped and later let through counts as asked again.
    let served = (worst.attempts - worst.failures).max(1) as f64;
    let asked = (worst.attempts + worst.syns_dropped - worst.failures) as f64;
    let factor = asked / served / AIM;
    Some((i, &cx.sc.nats[i], table, factor))
}

/// More outside addresses on the NAT that ran out of ports: each address
/// has the NAT's whole port range toward each destination.
///
/// The address of a connection is the kernel's hash of its source and
/// destination addresses scaled onto the count, so each (source,
/// destination) pair leaves from one address, and which one jumps about as
/// the count changes: with few pairs, failures do not fall steadily as
/// addresses are added (two sources may share an address at every count
/// up to 17 and again at 19). Where the hash can be followed (IPv4
/// addresses, at most [`MAX_PAIRS`] pairs), the counts worth a run are
/// known before any: those whose busiest (address, destination) carries
/// less of the load than at every smaller count ([`hash_records`]), and the
/// search runs over them ([`Plan::Among`]). Elsewhere the hash spreads many
/// pairs nearly evenly, and the counts are searched as numbers.
fn nat_addresses(cx: &Context) -> Option<Plan> {
    let (i, nat, table, factor) = failing_nat(cx)?;
    if let Some(rules) = &nat.cloud {
        return cloud_addresses(cx, i, nat, rules, table, factor);
    }
    // One source sends all its connections to a destination from one
    // address, so more addresses only help a NAT with several sources.
    if upstream_sources(cx.sc, i) < 2 {
        return None;
    }
    let have = nat.addresses.clone();
    let len = have.len() as f64;
    let last: IpAddr = have.last()?.parse().ok()?;
    let as_count = table
        .and_then(|t| t.get("addresses"))
        .is_none_or(|a| a.is_integer());
    let key = format!("nat.{i}.addresses");
    let changes: Box<dyn Fn(f64) -> Vec<Change> + Send + Sync> = Box::new(move |v| {
        let n = v.round() as usize;
        vec![Change::new(&key, addresses_value(&have, last, n, as_count))]
    });
    let spread = flows_into(cx.sc, i).and_then(|flows| {
        hash_records(
            &flows,
            nat.persistent,
            have_count(nat),
            MAX_ADDRESSES as u32,
        )
    });
    let Some((now, records)) = spread else {
        return Some(Plan::Search(Search {
            from: len,
            guess: len * factor,
            limit: MAX_ADDRESSES,
            grid: Grid::Integer,
            changes,
        }));
    };
    if records.is_empty() {
        // No count spreads the load better than now: more addresses
        // cannot help.
        return None;
    }
    // First the count whose busiest address carries what the NAT could
    // serve: the share now over how many more connections it was asked
    // for than it let through. Connections, not SYNs: a SYN dropped and
    // sent again asks for the same port, and a probe that passes is a
    // complete run, so a guess too high costs more than one too low.
    let asked = cx
        .report
        .nats
        .iter()
        .find(|n| n.name == nat.name)
        .map_or(factor, |n| {
            n.attempts as f64 / n.attempts.saturating_sub(n.failures).max(1) as f64 / AIM
        });
    let aim = now / asked.max(1.0);
    let guess = records
        .iter()
        .position(|&(_, share)| share <= aim)
        .unwrap_or(records.len() - 1);
    Some(Plan::Among(Among {
        values: records.iter().map(|&(n, _)| f64::from(n)).collect(),
        guess,
        changes,
    }))
}

/// More addresses on a cloud NAT: each adds its ports to a shared pool
/// (and its per-destination cap), or room for the blocks of hosts that got
/// none. Where every host has a block and ran out of it, more addresses do
/// not help ([`nat_ports_per_host`] does).
fn cloud_addresses(
    cx: &Context,
    i: usize,
    nat: &crate::scenario::nat::Nat,
    rules: &crate::scenario::nat::CloudRules,
    table: Option<&toml::Value>,
    factor: f64,
) -> Option<Plan> {
    let report = cx.report.nats.iter().find(|n| n.name == nat.name)?;
    let shared = rules.preset.blocks == crate::scenario::nat::Blocks::Shared;
    if !shared && report.failures_by_cause.no_block == 0 {
        return None;
    }
    let have = nat.addresses.clone();
    let len = have.len() as f64;
    let limit = rules.preset.max_addresses.min(MAX_ADDRESSES as usize) as f64;
    if len >= limit {
        return None;
    }
    let last: IpAddr = have.last()?.parse().ok()?;
    let as_count = table
        .and_then(|t| t.get("addresses"))
        .is_none_or(|a| a.is_integer());
    // Hosts left without a block: the addresses their blocks need.
    let guess = match &report.cloud {
        Some(c) if !shared && c.hosts > 0 && report.hosts_without_ports > 0 => {
            let served = f64::from(c.hosts - report.hosts_without_ports.min(c.hosts)).max(1.0);
            (len * f64::from(c.hosts) / served).ceil()
        }
        _ => (len * factor).ceil(),
    };
    let key = format!("nat.{i}.addresses");
    Some(Plan::Search(Search {
        from: len,
        guess: guess.clamp(len + 1.0, limit),
        limit,
        grid: Grid::Integer,
        changes: Box::new(move |v| {
            let n = v.round() as usize;
            vec![Change::new(&key, addresses_value(&have, last, n, as_count))]
        }),
    }))
}

/// Bigger per-host blocks on a cloud NAT whose hosts ran out of theirs:
/// Azure's `ports_per_host` (a multiple of 8), Cloud NAT's
/// `min_ports_per_host` (a power of two; under dynamic allocation the
/// maximum rises with it where it must). Each block holds what a host
/// keeps toward its busiest destination, so the first guess is the block
/// times how many more connections the NAT was asked for than it served.
fn nat_ports_per_host(cx: &Context) -> Option<Plan> {
    let (i, nat, _, factor) = failing_nat(cx)?;
    let rules = nat.cloud.as_ref()?;
    let report = cx.report.nats.iter().find(|n| n.name == nat.name)?;
    let c = report.failures_by_cause;
    if c.no_port + c.allocation_in_flight == 0 {
        return None;
    }
    let now = report.cloud.as_ref()?.ports_per_host;
    if now == 0 {
        return None;
    }
    let per_address = nat.range_size();
    // Past this, some host gets no block at all: blocks bigger still only
    // fail more, so the search stays below it.
    let hosts = u64::from(report.cloud.as_ref()?.hosts.max(1));
    let fits = (u64::from(per_address) * nat.addresses.len() as u64 / hosts)
        .min(u64::from(per_address)) as u32;
    let (key, values): (String, Vec<f64>) = match rules.preset.blocks {
        crate::scenario::nat::Blocks::Table(_) => (
            format!("nat.{i}.ports_per_host"),
            (now / 8 + 1..=fits / 8).map(|k| f64::from(k * 8)).collect(),
        ),
        crate::scenario::nat::Blocks::PerHost { .. } => (
            format!("nat.{i}.min_ports_per_host"),
            (0..=16)
                .map(|k| 1u32 << k)
                .filter(|&v| v > now && v <= fits.min(1 << 16))
                .map(f64::from)
                .collect(),
        ),
        crate::scenario::nat::Blocks::Shared => return None,
    };
    if values.is_empty() {
        return dynamic_allocation(i, rules, now);
    }
    let aim = f64::from(now) * factor;
    let guess = values
        .iter()
        .position(|&v| v >= aim)
        .unwrap_or(values.len() - 1);
    let max = rules.max_ports_per_host.filter(|_| rules.dynamic());
    let max_key = format!("nat.{i}.max_ports_per_host");
    Some(Plan::Among(Among {
        values,
        guess,
        changes: Box::new(move |v| {
            let v = v.round() as u32;
            let mut out = vec![Change::new(&key, v.to_string())];
            if max.is_some_and(|m| m <= v) {
                out.push(Change::new(&max_key, (v * 2).min(1 << 16).to_string()));
            }
            out
        }),
    }))
}

/// Cloud NAT with static blocks that cannot grow for every VM at once:
/// dynamic allocation lets the VMs that need more take it, up to a
/// maximum (a power of two above the block), searched as the block is.
fn dynamic_allocation(
    i: usize,
    rules: &crate::scenario::nat::CloudRules,
    now: u32,
) -> Option<Plan> {
    let crate::scenario::nat::Blocks::PerHost { dynamic_min, .. } = rules.preset.blocks else {
        return None;
    };
    if rules.dynamic() || rules.endpoint_independent || now < dynamic_min {
        return None;
    }
    let values: Vec<f64> = (0..=16)
        .map(|k| 1u32 << k)
        .filter(|&v| v > now)
        .map(f64::from)
        .collect();
    let key = format!("nat.{i}.max_ports_per_host");
    Some(Plan::Among(Among {
        values,
        guess: 0,
        changes: Box::new(move |v| vec![Change::new(&key, (v.round() as u32).to_string())]),
    }))
}

/// A NAT's outside addresses, as a count.
fn have_count(nat: &crate::scenario::nat::Nat) -> u32 {
    u32::try_from(nat.addresses.len()).unwrap_or(u32::MAX)
}

/// Most (source address, destination) pairs whose addresses the NAT
/// address lever follows through the hash. Every count up to
/// `MAX_ADDRESSES` (4096) is scanned for each pair, so the bound keeps the scan
/// to some 16 million steps; with more pairs the hash spreads the load
/// nearly evenly, and a plain search does as well.
pub const MAX_PAIRS: usize = 4096;

/// The connections of one (source address, destination) pair as they
/// reach a NAT: the source's IPv4 address, the destination (its index among
/// the scenario's destinations, and its IPv4 address if it has one), and
/// the pair's load.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Flow {
    pub src: Ipv4Addr,
    pub dest: usize,
    pub dst: Option<Ipv4Addr>,
    /// The pair's share of its host's offered load, in erlangs: the peak
    /// rate of connections × how long each holds the NAT's mapping (the
    /// mean hold and the NAT's conntrack hold after close, at most the
    /// run), × the destination's share of the host's connections, over the
    /// host's addresses in use.
    pub weight: f64,
}

/// The pairs that reach NAT `i` of `sc` and their loads: the addresses of
/// the hosts whose path starts there (in a fleet, host `j` of a group has
/// the addresses after host `j - 1`'s, as the engine numbers them), and
/// the outside addresses of the NATs whose `via` it is, each carrying the
/// pairs that NAT's hash sends there. `None` where the hash cannot be
/// followed: an address that is not IPv4 where the hash reads it, more
/// than [`MAX_PAIRS`] pairs, or a chain deeper than the loader allows.
pub fn flows_into(sc: &crate::scenario::Scenario, i: usize) -> Option<Vec<Flow>> {
    let dests: std::collections::HashMap<&str, usize> = sc
        .all_destinations()
        .iter()
        .enumerate()
        .map(|(k, d)| (d.address.as_str(), k))
        .collect();
    flows_at(sc, i, sc.nats.get(i)?, &dests, 0)
}

/// [`flows_into`] for NAT `i`, `depth` NATs before `nat` (the one asked
/// about, whose conntrack hold the loads count), with each destination's
/// index.
fn flows_at(
    sc: &crate::scenario::Scenario,
    i: usize,
    nat: &crate::scenario::nat::Nat,
    dests: &std::collections::HashMap<&str, usize>,
    depth: usize,
) -> Option<Vec<Flow>> {
    if depth > crate::scenario::nat::MAX_CHAIN {
        return None;
    }
    let mut out = Vec::new();
    let mut groups = Vec::new();
    if sc.is_fleet() {
        for g in &sc.groups {
            if g.via == Some(i) {
                groups.push((&g.host, &g.traffic, &g.destinations[..], g.count));
            }
        }
    } else if sc.via == Some(i) {
        groups.push((&sc.host, &sc.traffic, &sc.destinations[..], 1));
    }
    for (host, traffic, destinations, count) in groups {
        let in_use = match traffic.bind {
            crate::scenario::BindMode::Connect => 1,
            _ => host.addresses.len(),
        };
        let pairs = (count as usize)
            .saturating_mul(in_use)
            .saturating_mul(destinations.len());
        if out.len().saturating_add(pairs) > MAX_PAIRS {
            return None;
        }
        let load = host_load(sc, nat, traffic) / in_use.max(1) as f64;
        let shares = destination_shares(destinations, traffic.pick);
        let first: Vec<IpAddr> = host
            .addresses
            .iter()
            .map(|a| a.parse().ok())
            .collect::<Option<_>>()?;
        for j in 0..count {
            for k in 0..in_use.min(first.len()) {
                let src = match crate::scenario::HostGroup::host_address(&first, j, k)? {
                    IpAddr::V4(a) => a,
                    IpAddr::V6(_) => return None,
                };
                for (d, share) in destinations.iter().zip(&shares) {
                    let dest = *dests.get(d.address.as_str())?;
                    out.push(Flow {
                        src,
                        dest,
                        dst: d.ipv4(),
                        weight: load * share,
                    });
                }
            }
        }
    }
    for (k, up) in sc.nats.iter().enumerate() {
        if up.via != Some(i) || k == i {
            continue;
        }
        let outside: Vec<Ipv4Addr> = up
            .addresses
            .iter()
            .map(|a| a.parse().ok())
            .collect::<Option<_>>()?;
        let n = have_count(up);
        let mut merged = std::collections::BTreeMap::new();
        for f in flows_at(sc, k, nat, dests, depth + 1)? {
            let a = if n <= 1 {
                0
            } else {
                let dst = if up.persistent {
                    Ipv4Addr::UNSPECIFIED
                } else {
                    f.dst?
                };
                crate::sim::jhash::nat_address_index(f.src, dst, n, up.persistent)
            };
            let src = *outside.get(a as usize)?;
            let e = merged
                .entry((u32::from(src), f.dest))
                .or_insert((f.dst, 0.0));
            e.1 += f.weight;
        }
        if out.len().saturating_add(merged.len()) > MAX_PAIRS {
            return None;
        }
        out.extend(merged.into_iter().map(|((src, dest), (dst, weight))| Flow {
            src: Ipv4Addr::from(src),
            dest,
            dst,
            weight,
        }));
    }
    Some(out)
}

/// One host's offered load through `nat`, in erlangs (see [`Flow`]).
fn host_load(
    sc: &crate::scenario::Scenario,
    nat: &crate::scenario::nat::Nat,
    traffic: &crate::scenario::Traffic,
) -> f64 {
    let ns = crate::scenario::NS_PER_S as f64;
    let run_s = sc.duration_ns.map(|d| d as f64 / ns);
    let last_start = traffic.rate.segments.last().map_or(0.0, |s| s.start_s);
    let rate = traffic.rate.max_over(run_s.unwrap_or(last_start));
    let held =
        traffic.hold.mean_ns() / ns + nat.hold_after(traffic.close, traffic.protocol) as f64 / ns;
    let held = run_s.map_or(held, |r| held.min(r));
    rate / f64::from(traffic.requests_per_connection.max(1)) * held
}

/// Each destination's share of a host's connections: by weight, or even
/// when they are taken in turn.
fn destination_shares(
    dests: &[crate::scenario::Destination],
    pick: crate::scenario::Pick,
) -> Vec<f64> {
    let total: f64 = dests.iter().map(|d| d.weight).sum();
    dests
        .iter()
        .map(|d| match pick {
            crate::scenario::Pick::Weighted if total > 0.0 => d.weight / total,
            _ => 1.0 / dests.len() as f64,
        })
        .collect()
}

/// Each pair's destination, hash and load, sorted by destination and hash:
/// scaling is monotone, so at every count the pairs on one (address,
/// destination) are neighbours. `None` when a hash needs a destination's
/// IPv4 address that it lacks.
fn hashed(flows: &[Flow], persistent: bool) -> Option<Vec<(usize, u32, f64)>> {
    let mut out = flows
        .iter()
        .map(|f| {
            let dst = if persistent {
                Ipv4Addr::UNSPECIFIED
            } else {
                f.dst?
            };
            Some((
                f.dest,
                crate::sim::jhash::nat_address_hash(f.src, dst, persistent),
                f.weight,
            ))
        })
        .collect::<Option<Vec<_>>>()?;
    out.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)).then(a.2.total_cmp(&b.2)));
    Some(out)
}

/// The largest share of the load that lands on one (outside address,
/// destination) among `n` addresses, for pairs sorted by destination and hash:
/// ports are unique per outside address and destination, so that is the
/// pool that runs out first.
pub fn largest_share(sorted: &[(usize, u32, f64)], n: u32) -> f64 {
    let total: f64 = sorted.iter().map(|p| p.2).sum();
    if total <= 0.0 {
        return 0.0;
    }
    let mut best = 0.0f64;
    let mut run = 0.0;
    let mut at = None;
    for &(dest, h, w) in sorted {
        let key = (dest, crate::sim::jhash::reciprocal_scale(h, n.max(1)));
        if at != Some(key) {
            run = 0.0;
            at = Some(key);
        }
        run += w;
        best = best.max(run);
    }
    best / total
}

/// The NAT address counts past `from` (up to `limit`) whose largest share
/// ([`largest_share`]) is below that of every count from `from` on, each
/// with its share, and the share at `from`: only such a count can pass
/// where every smaller one failed. The scan ends at `limit`, or where one
/// (address, destination) carries no more than its heaviest pair, which no
/// count can split. `None` when the hash needs an address the pairs lack.
pub fn hash_records(
    flows: &[Flow],
    persistent: bool,
    from: u32,
    limit: u32,
) -> Option<(f64, Vec<(u32, f64)>)> {
    let sorted = hashed(flows, persistent)?;
    let total: f64 = sorted.iter().map(|p| p.2).sum();
    let now = largest_share(&sorted, from);
    if total <= 0.0 {
        return Some((now, Vec::new()));
    }
    // Sums of the same loads in another order may differ in the last bits.
    let below = |a: f64, b: f64| a < b * (1.0 - 1e-9);
    let floor = sorted.iter().map(|p| p.2).fold(0.0, f64::max) / total;
    let mut best = now;
    let mut records = Vec::new();
    for n in from.saturating_add(1)..=limit {
        if !below(floor, best) {
            break;
        }
        let share = largest_share(&sorted, n);
        if below(share, best) {
            records.push((n, share));
            best = share;
        }
    }
    Some((now, records))
}

/// Source addresses that reach NAT `i`: the hosts' (each host's addresses
/// in use) whose path starts there, and the outside addresses of the NATs
/// whose `via` it is.
fn upstream_sources(sc: &crate::scenario::Scenario, i: usize) -> u64 {
    let hosts: u64 = if sc.is_fleet() {
        (0..sc.groups.len())
            .filter(|&g| sc.groups[g].via == Some(i))
            .map(|g| u64::from(sc.groups[g].count) * sc.group_scenario(g).source_addresses())
            .sum()
    } else if sc.via == Some(i) {
        sc.source_addresses()
    } else {
        0
    };
    let nats: u64 = sc
        .nats
        .iter()
        .filter(|n| n.via == Some(i))
        .map(|n| n.addresses.len() as u64)
        .sum();
    hosts + nats
}

/// A wider port range on the NAT that ran out: up to 65535, then down to
/// 1024.
fn nat_port_range(cx: &Context) -> Option<Plan> {
    let (i, nat, _, factor) = failing_nat(cx)?;
    // A cloud NAT's ports are the vendor's: no range to widen.
    if nat.cloud.is_some() {
        return None;
    }
    let (lo, hi) = (u32::from(nat.port_lo), u32::from(nat.port_hi));
    let widest = f64::from(WIDEST.1 - WIDEST.0 + 1);
    let n = f64::from(hi - lo + 1);
    if n >= widest || lo < WIDEST.0 {
        return None;
    }
    let key = format!("nat.{i}.port_range");
    Some(Plan::Search(Search {
        from: n,
        guess: n * factor,
        limit: widest,
        grid: Grid::Sig3,
        changes: Box::new(move |v| vec![Change::new(&key, widened(lo, hi, v))]),
    }))
}

/// `IP_BIND_ADDRESS_NO_PORT`: a socket bound to an address still shares
/// ports by 4-tuple, where the OS shares them at all.
fn bind_no_port(cx: &Context) -> Option<Plan> {
    let sc = cx.sc;
    (cx.host_ran_out() && sc.traffic.bind == BindMode::Bind && sc.host.share_across_destinations)
        .then(|| Plan::Toggle(vec![Change::new("traffic.bind", "bind-no-port")]))
}

/// A wider range: first up to 65535, then down to 1024.
fn port_range(cx: &Context) -> Option<Plan> {
    if !cx.host_ran_out() {
        return None;
    }
    let h = &cx.sc.host;
    let (lo, hi) = (u32::from(h.port_lo), u32::from(h.port_hi));
    let widest = f64::from(WIDEST.1 - WIDEST.0 + 1);
    let n = f64::from(hi - lo + 1);
    if n >= widest || lo < WIDEST.0 {
        return None;
    }
    Some(Plan::Search(Search {
        from: n,
        guess: n * cx.load_factor() / AIM,
        limit: widest,
        grid: Grid::Sig3,
        changes: Box::new(move |v| vec![Change::new("host.port_range", widened(lo, hi, v))]),
    }))
}

/// The range `lo-hi` grown to `size` ports: up to 65535 first, then down
/// to 1024.
fn widened(lo: u32, hi: u32, size: f64) -> String {
    let size = (size.round() as u32).clamp(1, WIDEST.1 - WIDEST.0 + 1);
    let top = WIDEST.1.min(lo + size - 1).max(hi);
    let bottom = (top + 1 - size).max(WIDEST.0);
    format!("{bottom}-{top}")
}

/// An allocator that finds a free port whenever there is one, for an
/// allocator that gives up early: the OS's own first, then the others.
fn allocator(cx: &Context) -> Option<Plan> {
    let h = &cx.sc.host;
    if !cx.host_ran_out() || crate::alloc::entry(&h.allocator).is_none_or(|e| e.exhaustive) {
        return None;
    }
    let preset = h.os.preset().allocator;
    let mut names: Vec<&str> = crate::alloc::REGISTRY
        .iter()
        .filter(|e| e.exhaustive && e.name != h.allocator)
        .map(|e| e.name)
        .collect();
    names.sort_by_key(|n| *n != preset);
    names.truncate(3);
    Some(Plan::FirstOf(
        names
            .into_iter()
            .map(|n| vec![Change::new("host.allocator", n)])
            .collect(),
    ))
}

/// The highest constant rate that runs without a failure.
fn rate(cx: &Context) -> Option<Plan> {
    let r = &cx.sc.traffic.rate;
    let closed_loop = cx
        .sc
        .traffic
        .client
        .as_ref()
        .is_some_and(|c| c.users.is_some());
    if !r.is_constant() || cx.is_overridden("traffic.schedule") || closed_loop {
        return None;
    }
    let now = r.at(0.0);
    if now <= 0.0 {
        return None;
    }
    Some(Plan::Search(Search {
        from: now,
        guess: now * AIM / cx.load_factor(),
        limit: Grid::Sig3.snap(now / 1000.0),
        grid: Grid::Sig3,
        changes: Box::new(|v| vec![Change::new("traffic.rate", Grid::Sig3.write(v))]),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::jhash::{nat_address_hash, nat_address_index, reciprocal_scale};

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().expect("an address")
    }

    fn load(text: &str) -> crate::scenario::Scenario {
        crate::scenario::load_str(text, std::path::Path::new("t.toml"), &[]).expect("loads")
    }

    /// One hash per pair answers every count.
    #[test]
    fn the_hash_scaled_is_the_index() {
        for (src, dst) in [("192.0.2.3", "10.9.0.1"), ("10.1.0.11", "10.2.0.2")] {
            for persistent in [false, true] {
                let h = nat_address_hash(ip(src), ip(dst), persistent);
                for n in 2..64 {
                    assert_eq!(
                        reciprocal_scale(h, n),
                        nat_address_index(ip(src), ip(dst), n, persistent),
                        "{src} to {dst}, {n} addresses"
                    );
                }
            }
        }
        // The kernel's value (the jhash module's first case).
        assert_eq!(
            nat_address_hash(ip("10.1.0.11"), ip("10.2.0.2"), false),
            0x5730_73f9
        );
    }

    /// Ports are unique per outside address and destination: pairs toward
    /// two destinations on one address do not add up.
    #[test]
    fn the_largest_share_is_per_address_and_destination() {
        let q = 1u32 << 30;
        // Among 2 addresses a hash below 2^31 is address 0; among 4, its
        // top two bits.
        let sorted = [(0, 0, 1.0), (0, q, 1.0), (0, 3 * q, 2.0), (1, 0, 1.0)];
        assert_eq!(largest_share(&sorted, 1), 4.0 / 5.0);
        assert_eq!(largest_share(&sorted, 2), 2.0 / 5.0);
        assert_eq!(largest_share(&sorted, 4), 2.0 / 5.0);
        // 0 and 2^30 share the lower half of 2, not a quarter of 4.
        assert_eq!(largest_share(&sorted[..2], 2), 1.0);
        assert_eq!(largest_share(&sorted[..2], 4), 1.0 / 2.0);
        assert_eq!(largest_share(&[], 4), 0.0);
    }

    /// Four hosts toward 10.9.0.1: the records are the counts whose
    /// busiest address holds fewer hosts than at every smaller count, as
    /// the kernel's hash places them one count at a time; the last is the
    /// first count with each host on its own address, 18, and nothing
    /// after it can do better.
    #[test]
    fn records_are_the_counts_that_spread_better_than_all_below() {
        let hosts: Vec<Ipv4Addr> = (1..=4).map(|h| Ipv4Addr::new(192, 0, 2, h)).collect();
        let dst = ip("10.9.0.1");
        let flows: Vec<Flow> = hosts
            .iter()
            .map(|&src| Flow {
                src,
                dest: 0,
                dst: Some(dst),
                weight: 60.0,
            })
            .collect();
        let most_on_one = |n: u32| {
            let mut on = vec![0u32; n as usize];
            for &h in &hosts {
                on[nat_address_index(h, dst, n, false) as usize] += 1;
            }
            f64::from(*on.iter().max().unwrap()) / 4.0
        };
        let mut want = Vec::new();
        let mut best = most_on_one(1);
        for n in 2..=64 {
            if most_on_one(n) < best {
                best = most_on_one(n);
                want.push((n, best));
            }
        }
        let (now, got) = hash_records(&flows, false, 1, 64).expect("IPv4 throughout");
        assert_eq!(now, 1.0);
        assert_eq!(got, want);
        assert_eq!(got.last(), Some(&(18, 0.25)));
        assert!((2..=17).all(|n| most_on_one(n) >= 0.5));
        // From 18 on nothing is left to split.
        assert_eq!(hash_records(&flows, false, 18, 64), Some((0.25, vec![])));
        // Without the destination's IPv4 address the hash cannot be
        // followed, unless `persistent` leaves it out.
        let v6: Vec<Flow> = flows.iter().map(|f| Flow { dst: None, ..*f }).collect();
        assert_eq!(hash_records(&v6, false, 1, 64), None);
        let (_, persistent) = hash_records(&v6, true, 1, 64).expect("no destination needed");
        assert_eq!(persistent.last().map(|r| r.1), Some(0.25));
    }

    /// A fleet's hosts reach the NAT with the addresses the engine numbers
    /// them by (each host's after the one before's), each with its load.
    #[test]
    fn flows_of_a_fleet_are_its_hosts_addresses() {
        let sc = load(
            r#"
name = "t"
duration = "60s"
[[destinations]]
address = "10.9.0.1:443"
weight = 3
[[destinations]]
address = "10.9.0.2:443"
[traffic]
rate = 2
hold = "10s"
[[nat]]
name = "node"
type = "linux"
timeouts = { time_wait = "20s" }
[[hosts]]
name = "a"
count = 2
addresses = ["10.1.0.5", "10.1.0.9"]
via = "node"
traffic = { bind = "bind-no-port" }
[[hosts]]
name = "b"
count = 3
"#,
        );
        let flows = flows_into(&sc, 0).expect("IPv4 throughout");
        let src: Vec<Ipv4Addr> = flows.iter().step_by(2).map(|f| f.src).collect();
        assert_eq!(
            src,
            [
                ip("10.1.0.5"),
                ip("10.1.0.9"),
                ip("10.1.0.10"),
                ip("10.1.0.11")
            ]
        );
        // 2/s × (10 s + 20 s) = 60 erlangs a host, over its two addresses,
        // 3 : 1 between the destinations.
        let w: Vec<(usize, f64)> = flows[..2].iter().map(|f| (f.dest, f.weight)).collect();
        assert_eq!(w, [(0, 22.5), (1, 7.5)]);
        assert_eq!(flows.len(), 8);
    }

    /// A NAT behind another sees the other's outside addresses, each with
    /// the load that NAT's hash sends it.
    #[test]
    fn flows_through_a_chain_carry_the_load_the_nat_before_sent() {
        let sc = load(
            r#"
name = "t"
duration = "60s"
[host]
addresses = ["10.1.0.11", "10.1.0.40", "10.1.0.41"]
via = "pod"
[traffic]
bind = "bind"
rate = 3
hold = "1s"
close = "reset"
[[destinations]]
address = "10.2.0.2:5000"
[[nat]]
name = "pod"
type = "linux"
addresses = ["10.5.0.1", "10.5.0.9"]
via = "node"
timeouts = { close = "9s" }
[[nat]]
name = "node"
type = "linux"
timeouts = { close = "1s" }
"#,
        );
        let flows = flows_into(&sc, 1).expect("IPv4 throughout");
        let mut want = std::collections::BTreeMap::new();
        for h in ["10.1.0.11", "10.1.0.40", "10.1.0.41"] {
            let a = nat_address_index(ip(h), ip("10.2.0.2"), 2, false);
            // 3/s × (1 s + the node's 1 s) over three addresses.
            *want
                .entry(["10.5.0.1", "10.5.0.9"][a as usize])
                .or_insert(0.0) += 2.0;
        }
        let got: std::collections::BTreeMap<&str, f64> = flows
            .iter()
            .map(|f| {
                let a = if f.src == ip("10.5.0.1") {
                    "10.5.0.1"
                } else {
                    "10.5.0.9"
                };
                (a, f.weight)
            })
            .collect();
        assert_eq!(got, want);
        assert!(flows.iter().all(|f| f.dst == Some(ip("10.2.0.2"))));
        // An IPv6 host address: not followed.
        let v6 = load(&sc_text_v6());
        assert_eq!(flows_into(&v6, 0), None);
    }

    fn sc_text_v6() -> String {
        r#"
name = "t"
duration = "60s"
[host]
addresses = ["2001:db8::1", "2001:db8::2"]
via = "node"
[traffic]
bind = "bind"
rate = 3
hold = "1s"
[[destinations]]
address = "[2001:db8::9]:5000"
[[nat]]
name = "node"
type = "linux"
"#
        .to_string()
    }
}
