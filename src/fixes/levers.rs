//! The levers a fix can pull, one function each, registered in [`LEVERS`].
//!
//! A lever decides from the scenario whether it can help at all (TIME_WAIT
//! to save, ports shared by 4-tuple, an allocator that gives up early, ...)
//! and writes its change as `--set` pairs. Numeric levers carry a first
//! guess from the busiest pool's load factor ρ (offered load at the highest
//! rate over the pool's ports): the value that brings ρ to 95 %. A new lever
//! is one function here and one line in [`LEVERS`].

use std::net::IpAddr;

use super::{Change, Context, Grid, Lever, Plan, Search};
use crate::scenario::{BindMode, Close};

/// The load factor a first guess aims at.
const AIM: f64 = 0.95;

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
        name: "nat_port_range",
        plan: nat_port_range,
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
    if tw == 0.0 {
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
    Some(Plan::Search(Search {
        from: k,
        guess: k * cx.load_factor() / AIM,
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
fn nat_addresses(cx: &Context) -> Option<Plan> {
    let (i, nat, table, factor) = failing_nat(cx)?;
    // The address is a hash of the source and destination addresses: one
    // source sends all its connections to a destination from one address,
    // so more addresses only help a NAT with several sources.
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
    Some(Plan::Search(Search {
        from: len,
        guess: len * factor,
        limit: MAX_ADDRESSES,
        grid: Grid::Integer,
        changes: Box::new(move |v| {
            let n = v.round() as usize;
            vec![Change::new(&key, addresses_value(&have, last, n, as_count))]
        }),
    }))
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
    if !r.is_constant() || cx.is_overridden("traffic.schedule") {
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
