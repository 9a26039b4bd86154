//! What the Linux NAT (nftables SNAT/MASQUERADE over nf_conntrack) does, as
//! measured on the running kernel, so that portsim's `type = "linux"` NAT
//! can be held against it.
//!
//! Each case builds its own namespaces with [`kernel_nat_driver`] (clients,
//! a router with the NAT rule, a server that records the address and port
//! it sees), runs a script of connects and closes, prints its measured
//! figures (`kernel_nat <case>: ...`) and asserts them: exactly where the
//! kernel is deterministic (which port is kept, how many connections fit,
//! which outside address a client gets, how long conntrack holds a closed
//! connection), by a bound derived in the case where it draws random
//! numbers (`fully-random`, the new port after a reopen, the eviction of a
//! closing entry). Where portsim models the behaviour, the case also runs
//! the same NAT in portsim (a `[[hosts]]` fleet for several clients) and
//! asserts the same figures: counts per client, kept ports, distinct NAT
//! ports, the outside address of each (client, destination) pair, when a
//! closed connection's port is free again.
//!
//! Facts behind the expectations (net/netfilter/nf_nat_core.c,
//! nf_conntrack_proto_tcp.c):
//! - `get_unique_tuple` keeps the packet's source port when it lies in the
//!   range and the reply tuple (NAT address, port, destination) is free,
//!   unless a random flag is set; else `nf_nat_l4proto_unique_tuple` probes
//!   from a random offset. Uniqueness is on the reply tuple, so one NAT port
//!   serves many destinations at once;
//! - `find_best_ips_proto` picks the outside address with `jhash2` of the
//!   source address, seeded by the destination address (0 with
//!   `persistent`): no random key, so the choice is fixed per pair and is
//!   predicted exactly below ([`predicted_nat_addr`]);
//! - when every candidate port is taken the SYN is dropped (the new
//!   conntrack entry clashes at confirm): the client sees no error, only
//!   its own SYN retransmission after 1 s, then 3 s, ...;
//! - in the last 32 probes (every probe when the range has 32 ports or
//!   fewer), `nf_nat_used_tuple_harder` evicts a colliding entry that is
//!   SNATed, in TIME_WAIT or CLOSE, if the new SYN's sequence number is
//!   ahead of the old connection's: about one time in two for a new client
//!   port, whose initial sequence number is unrelated to the old one;
//! - a SYN of the same original tuple meeting an entry in TIME_WAIT after a
//!   FIN (or CLOSE after an RST) deletes that entry and is tracked afresh
//!   (`tcp_packet`: "Attempt to reopen a closed/aborted connection"), so the
//!   NAT chooses again.
//!
//! Without root, `unshare`, `ip`, `nft` or `mount` (or off Linux) each case
//! prints why it was skipped and passes.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

use super::kernel_nat_driver::{
    client_addr, nat_addr, run_lab, server, CloseHow, Conn, Lab, LabCase, Nat, Setup, MASQ_ADDR,
};

/// Every case, by name (the lab finds its case here).
pub const CASES: &[LabCase] = &[
    LabCase {
        name: "preservation",
        setup: preservation_setup,
        script: preservation,
    },
    LabCase {
        name: "exhaustion-one-destination",
        setup: exhaustion_setup,
        script: exhaustion,
    },
    LabCase {
        name: "two-destinations",
        setup: two_destinations_setup,
        script: two_destinations,
    },
    LabCase {
        name: "two-addresses",
        setup: two_addresses_setup,
        script: two_addresses,
    },
    LabCase {
        name: "fully-random",
        setup: fully_random_setup,
        script: fully_random,
    },
    LabCase {
        name: "hold-after-close",
        setup: hold_setup,
        script: hold_after_close,
    },
    LabCase {
        name: "evict-closing-entry",
        setup: evict_setup,
        script: evict_closing_entry,
    },
    LabCase {
        name: "reopen-same-tuple",
        setup: reopen_setup,
        script: reopen_same_tuple,
    },
    LabCase {
        name: "overlapping-clients",
        setup: overlapping_setup,
        script: overlapping_clients,
    },
    LabCase {
        name: "interleaved-clients",
        setup: overlapping_setup,
        script: interleaved_clients,
    },
    LabCase {
        name: "conntrack-max",
        setup: conntrack_max_setup,
        script: conntrack_max,
    },
];

/// Run a case; print its figures; skip with a printed reason.
fn lab(name: &str) {
    let started = Instant::now();
    match run_lab(name) {
        Ok(Ok(facts)) => {
            for f in facts {
                eprintln!("kernel_nat {name}: {f}");
            }
            eprintln!("kernel_nat {name}: done in {:?}", started.elapsed());
        }
        Ok(Err(reason)) => eprintln!("kernel_nat {name} skipped: {reason}"),
        Err(report) => panic!("kernel_nat {report}"),
    }
}

/// ETIMEDOUT: a connect whose SYNs all went unanswered.
const ETIMEDOUT: i32 = 110;
/// Client source ports outside every NAT range used here.
const OUTSIDE: (u16, u16) = (50000, 50999);
const DPORT: u16 = 5000;
/// A connect that should succeed at once gets this long.
const QUICK: Duration = Duration::from_secs(3);

fn nat(addresses: Option<u8>, ports: (u16, u16)) -> Nat {
    Nat {
        addresses,
        ports,
        fully_random: false,
        persistent: false,
    }
}

fn setup(clients: Vec<(u16, u16)>, nat: Nat) -> Setup {
    Setup {
        clients,
        nat,
        server_addresses: 1,
        server_ports: vec![DPORT],
        timeouts: Vec::new(),
    }
}

fn ensure(cond: bool, what: impl FnOnce() -> String) -> Result<(), String> {
    if cond {
        Ok(())
    } else {
        Err(what())
    }
}

/// `n` held connections from `client` to `dest`, each of which must succeed.
fn hold(lab: &mut Lab, client: usize, dest: SocketAddrV4, n: usize) -> Result<Vec<Conn>, String> {
    (0..n)
        .map(|k| {
            let c = lab.connect(client, dest, None, QUICK)?;
            ensure(c.ok(), || {
                format!("client {client} attempt {k} to {dest} failed: {c:?}")
            })?;
            Ok(c)
        })
        .collect()
}

fn distinct_ports(conns: &[Conn]) -> Vec<u16> {
    let mut p: Vec<u16> = conns
        .iter()
        .filter_map(|c| c.nat.map(|n| n.port()))
        .collect();
    p.sort_unstable();
    p.dedup();
    p
}

fn in_range(conns: &[Conn], (lo, hi): (u16, u16)) -> bool {
    conns
        .iter()
        .filter_map(|c| c.nat)
        .all(|n| (lo..=hi).contains(&n.port()))
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1e3)
}

// a. Port preservation ------------------------------------------------------

fn preservation_setup() -> Setup {
    // Clients 0 and 1 share their own range 40000-40015, inside the NAT's
    // 40000-40063; client 2 uses ports outside it.
    setup(
        vec![(40000, 40015), (40000, 40015), OUTSIDE],
        nat(None, (40000, 40063)),
    )
}

/// `masquerade to :40000-40063`: a client's free source port inside the
/// range is kept; the same ports from a second client (their reply tuples
/// taken) and ports outside the range are remapped into the range.
fn preservation(lab: &mut Lab) -> Result<(), String> {
    let dest = server(0, DPORT);
    let first = hold(lab, 0, dest, 16)?;
    let second = hold(lab, 1, dest, 16)?;
    let outside = hold(lab, 2, dest, 16)?;
    let kept = |v: &[Conn]| v.iter().filter(|c| c.preserved()).count();
    lab.fact(format!(
        "Linux {}: masquerade to :40000-40063, 16 held connections each: \
         client 0 (own range 40000-40015) kept {}/16 source ports; client 1 \
         (same range, ports taken by client 0) kept {}/16; client 2 (range \
         50000-50999) kept {}/16",
        lab.kernel,
        kept(&first),
        kept(&second),
        kept(&outside)
    ));
    ensure(kept(&first) == 16, || format!("client 0: {first:?}"))?;
    ensure(kept(&second) == 0, || format!("client 1: {second:?}"))?;
    ensure(kept(&outside) == 0, || format!("client 2: {outside:?}"))?;
    let all: Vec<Conn> = [first.clone(), second.clone(), outside.clone()].concat();
    ensure(
        all.iter()
            .all(|c| c.nat.map(|n| *n.ip()) == Some(MASQ_ADDR)),
        || "masquerade must use the router's 10.2.0.1".into(),
    )?;
    ensure(in_range(&all, (40000, 40063)), || {
        "a port outside the range".into()
    })?;
    ensure(distinct_ports(&all).len() == 48, || {
        format!("48 distinct NAT ports expected: {:?}", distinct_ports(&all))
    })?;
    ensure(
        distinct_ports(&second)
            .iter()
            .all(|p| !(40000..=40015).contains(p)),
        || "client 1 remapped onto a port held by client 0".into(),
    )
}

/// The same NAT in portsim: a host on `OUTSIDE` behind one outside address
/// with `nat_range`, `per_dest` connections held to each of `dests`
/// (round-robin), as the kernel case opens them, each given `timeout` to
/// connect (the driver's), with the kernel's `tcp_syn_linear_timeouts`.
fn portsim_nat(
    nat_range: (u16, u16),
    dests: &[SocketAddrV4],
    per_dest: usize,
    timeout: Duration,
    linear: u32,
) -> portsim::Report {
    let mut text = format!(
        r#"name = "kernel-nat"
seed = 1
max_connections = {}
[host]
os = "linux"
port_range = "{}-{}"
via = "router"
syn_linear_timeouts = {linear}
[traffic]
arrivals = "constant"
rate = 100
hold = "1000h"
pick = "round-robin"
connect_timeout = "{}ms"
[[nat]]
name = "router"
type = "linux"
addresses = ["10.9.0.1"]
port_range = "{}-{}"
"#,
        per_dest * dests.len(),
        OUTSIDE.0,
        OUTSIDE.1,
        timeout.as_millis(),
        nat_range.0,
        nat_range.1
    );
    for d in dests {
        text.push_str(&format!("[[destinations]]\naddress = \"{d}\"\n"));
    }
    let sc = portsim::scenario::load_str(&text, std::path::Path::new("kernel-nat.toml"), &[])
        .expect("the model scenario loads");
    portsim::run(&sc)
}

// b. Exhaustion toward one destination ----------------------------------------

fn exhaustion_setup() -> Setup {
    setup(vec![OUTSIDE], nat(Some(1), (40000, 40015)))
}

/// 16 NAT ports, connections held: exactly 16 established; the next 4 get no
/// answer (SYN dropped by the NAT) and time out, having sent their SYN and
/// one retransmission 1 s later.
fn exhaustion(lab: &mut Lab) -> Result<(), String> {
    let dest = server(0, DPORT);
    let syn0 = lab.syns()?;
    let (insert0, drop0) = (lab.ct_stat("insert_failed")?, lab.ct_stat("drop")?);
    let held = hold(lab, 0, dest, 16)?;
    // Four more at once, each given 2.5 s: SYN at 0 s, retransmission at
    // 1 s, the next one (3 s) after the deadline.
    let timeout = Duration::from_millis(2500);
    let ids = (0..4)
        .map(|_| lab.start(0, dest, None, timeout))
        .collect::<Result<Vec<_>, _>>()?;
    let failed = ids
        .iter()
        .map(|id| lab.finish(id))
        .collect::<Result<Vec<_>, _>>()?;
    let syns = lab.syns()? - syn0;
    let insert_failed = lab.ct_stat("insert_failed")? - insert0;
    let drops = lab.ct_stat("drop")? - drop0;
    let entries = lab.conntrack()?.len();
    let delays: Vec<String> = failed.iter().map(|c| ms(c.delay)).collect();
    // SYNs of one failing connect within 2.5 s: at 0 s and 1 s, and at 2 s
    // too where the first retransmissions back off linearly
    // (tcp_syn_linear_timeouts, default 4, Linux >= 6.5).
    let linear = lab.server_sysctl("net/ipv4/tcp_syn_linear_timeouts").ok();
    let per_failure = match linear.as_deref().map(str::parse::<u32>) {
        Some(Ok(n)) if n >= 1 => 3,
        _ => 2,
    };
    lab.fact(format!(
        "Linux {}: snat to 10.9.0.1:40000-40015, one destination, held: {} of 20 \
         established on {} distinct NAT ports; the other {} got no answer and \
         failed with errno {:?} after their 2.5 s timeout ({}); SYNs seen by the \
         router: {syns} (16 + 4 x {per_failure}: tcp_syn_linear_timeouts = {}, \
         so SYN retransmissions at 1 s, 2 s, 3 s, 4 s, 5 s, then 7, 11, ...; \
         without it 1 s, 3 s, 7 s, ...); conntrack entries: {entries}; insert_failed +{insert_failed}, \
         drop +{drops}",
        lab.kernel,
        held.len(),
        distinct_ports(&held).len(),
        failed.iter().filter(|c| !c.ok()).count(),
        failed.iter().map(|c| c.errno).collect::<Vec<_>>(),
        delays.join(", "),
        linear.as_deref().unwrap_or("absent")
    ));
    ensure(distinct_ports(&held).len() == 16, || format!("{held:?}"))?;
    ensure(in_range(&held, (40000, 40015)), || {
        "port outside range".into()
    })?;
    ensure(
        failed.iter().all(|c| !c.ok() && c.errno == Some(ETIMEDOUT)),
        || format!("the 4 extra connects must time out: {failed:?}"),
    )?;
    // The socket's timer may fire up to a jiffy or two before the wall
    // clock the driver reads shows the full timeout (2.4995 s seen for 2.5 s).
    let slack = std::time::Duration::from_millis(20);
    ensure(failed.iter().all(|c| c.delay + slack >= timeout), || {
        format!("a failing connect returned before its timeout: {failed:?}")
    })?;
    ensure(syns == 16 + 4 * per_failure, || {
        format!("SYNs: {syns}, expected 16 + 4 x {per_failure}")
    })?;
    ensure(insert_failed == syns - 16, || {
        format!(
            "insert_failed +{insert_failed} for {} dropped SYNs",
            syns - 16
        )
    })?;
    ensure(entries == 16, || format!("conntrack entries: {entries}"))?;
    // portsim, the same 20 connects with the same 2.5 s timeout and linear
    // timeouts: the same counts, and the same SYNs (every dropped SYN but a
    // failed connect's last is followed by a retransmission).
    let linear_n = linear.as_deref().and_then(|l| l.parse().ok()).unwrap_or(0);
    let m = portsim_nat((40000, 40015), &[dest], 20, timeout, linear_n);
    let n = &m.nats[0];
    let model_syns = n.attempts + n.syns_dropped - n.failures;
    lab.fact(format!(
        "portsim: {} of 20 established, {} dropped by the NAT (no port), {} distinct NAT ports, {} conntrack entries, {} SYNs dropped, {model_syns} SYNs in all",
        m.established, n.failures_by_cause.no_port, n.distinct_ports, n.peak_mappings, n.syns_dropped
    ));
    ensure(
        (
            m.established,
            n.failures,
            n.distinct_ports,
            n.peak_mappings,
            model_syns,
        ) == (
            held.len() as u64,
            failed.len() as u64,
            16,
            entries as u64,
            syns,
        ),
        || format!("portsim differs from the kernel: {n:?}"),
    )
}

// c. Two destinations ---------------------------------------------------------

fn two_destinations_setup() -> Setup {
    let mut s = setup(vec![OUTSIDE], nat(Some(1), (40000, 40015)));
    s.server_addresses = 2;
    s.server_ports = vec![DPORT, DPORT + 1];
    s
}

/// Uniqueness is on the reply tuple: 16 NAT ports carry 16 connections to
/// each of three destinations (two addresses, two ports on one of them).
fn two_destinations(lab: &mut Lab) -> Result<(), String> {
    let dests = [server(0, DPORT), server(1, DPORT), server(0, DPORT + 1)];
    let mut all = Vec::new();
    for d in dests {
        let conns = hold(lab, 0, d, 16)?;
        ensure(distinct_ports(&conns).len() == 16, || {
            format!("{d}: {conns:?}")
        })?;
        all.extend(conns);
    }
    let ids = dests
        .iter()
        .map(|d| lab.start(0, *d, None, Duration::from_millis(500)))
        .collect::<Result<Vec<_>, _>>()?;
    let extra = ids
        .iter()
        .map(|id| lab.finish(id))
        .collect::<Result<Vec<_>, _>>()?;
    let ports = distinct_ports(&all);
    lab.fact(format!(
        "Linux {}: snat to 10.9.0.1:40000-40015, 16 held connections to each of \
         10.2.0.2:5000, 10.2.0.3:5000 and 10.2.0.2:5001: {} established on {} \
         distinct NAT ports (each port used {} times); a 17th to each: {} failed",
        lab.kernel,
        all.len(),
        ports.len(),
        all.len() / ports.len().max(1),
        extra.iter().filter(|c| !c.ok()).count()
    ));
    ensure(ports == (40000..=40015).collect::<Vec<_>>(), || {
        format!("ports {ports:?}")
    })?;
    ensure(extra.iter().all(|c| !c.ok()), || format!("{extra:?}"))?;
    // portsim, 17 connects to each destination: 16 each, the 17th dropped.
    let m = portsim_nat((40000, 40015), &dests, 17, QUICK, 4);
    let n = &m.nats[0];
    lab.fact(format!(
        "portsim: {} established, {} dropped, {} distinct NAT ports, peak {} ports of the address",
        m.established, n.failures, n.distinct_ports, n.peak_ports_per_address
    ));
    ensure(
        (m.established, n.failures, n.distinct_ports)
            == (all.len() as u64, extra.len() as u64, ports.len() as u64),
        || format!("portsim differs from the kernel: {n:?}"),
    )
}

// d. Two outside addresses ----------------------------------------------------

/// The outside address `find_best_ips_proto` gives `src` toward `dst` over
/// the `n` addresses from 10.9.0.1: the library's transcription of it
/// (`portsim::sim::jhash`, checked against include/linux/jhash.h there).
pub fn predicted_nat_addr(src: Ipv4Addr, dst: Ipv4Addr, n: u8, persistent: bool) -> Ipv4Addr {
    let index = portsim::sim::jhash::nat_address_index(src, dst, u32::from(n), persistent);
    nat_addr(u8::try_from(index).expect("below n"))
}

/// The outside address portsim's engine gives client `client` toward
/// destination address `dst` (of `dests`), behind `snat to
/// 10.9.0.1-10.9.0.n`, the clients being one `[[hosts]]` group from
/// 10.1.0.11.
fn portsim_nat_addr(
    clients: u32,
    dests: &[SocketAddrV4],
    n: u8,
    client: u32,
    dst: usize,
) -> Ipv4Addr {
    let outside: Vec<String> = (0..n).map(|i| format!("\"{}\"", nat_addr(i))).collect();
    let mut text = format!(
        r#"name = "kernel-nat-addresses"
max_connections = 1
[traffic]
rate = 1
hold = "1s"
[[hosts]]
name = "clients"
count = {clients}
addresses = ["{}"]
via = "router"
[[nat]]
name = "router"
type = "linux"
addresses = [{}]
port_range = "40000-40015"
"#,
        client_addr(0),
        outside.join(", ")
    );
    for d in dests {
        text.push_str(&format!("[[destinations]]\naddress = \"{d}\"\n"));
    }
    let sc = portsim::scenario::load_str(&text, std::path::Path::new("kernel-nat.toml"), &[])
        .expect("the model scenario loads");
    let site = portsim::sim::layer::Site { layer: 1, host: 0 };
    let nat = portsim::sim::nat::LinuxNat::new(&sc, &sc.nats[0], site, 0);
    let index = nat.outside_address(client, u32::try_from(dst).expect("few destinations"));
    nat_addr(u8::try_from(index).expect("below n"))
}

fn two_addresses_setup() -> Setup {
    let mut s = setup(vec![OUTSIDE; 4], nat(Some(2), (40000, 40015)));
    s.server_addresses = 2;
    s
}

/// `snat to 10.9.0.1-10.9.0.2`: each (client, destination) pair always gets
/// the same outside address, the one the hash predicts; a client that has
/// used up the 16 ports of its address toward a destination fails although
/// the other address has free ports.
fn two_addresses(lab: &mut Lab) -> Result<(), String> {
    let dests = [server(0, DPORT), server(1, DPORT)];
    let mut all = Vec::new();
    let mut table = Vec::new();
    // A client port already mapped (toward the other destination, still
    // open) keeps that mapping when its reply tuple is free
    // (`find_appropriate_src`, step 1 of get_unique_tuple): such a
    // connection shows that rule instead of the hash. When another open
    // connection made before it already holds that outside address and
    // port toward its destination, the kernel goes on to the hash, as for
    // any other port. Every connection of the case stays open.
    let reused = |all: &[Conn], batch: &[Conn], c: &Conn| {
        let earlier = all
            .iter()
            .find(|p| p.client == c.client && p.lport == c.lport && p.nat.is_some())
            .and_then(|p| p.nat)?;
        let before = batch.iter().take_while(|q| q.id != c.id);
        let taken = all
            .iter()
            .chain(before)
            .any(|q| q.dest == c.dest && q.nat == Some(earlier));
        (!taken).then_some(earlier)
    };
    for client in 0..4 {
        for d in dests {
            let conns = hold(lab, client, d, 3)?;
            for c in &conns {
                if let Some(earlier) = reused(&all, &conns, c) {
                    ensure(c.nat == Some(earlier), || {
                        format!("{c:?} reuses a client port mapped to {earlier}")
                    })?;
                }
            }
            let mut addrs: Vec<Ipv4Addr> = conns
                .iter()
                .filter(|c| reused(&all, &conns, c).is_none())
                .filter_map(|c| c.nat)
                .map(|n| *n.ip())
                .collect();
            addrs.dedup();
            let predicted = predicted_nat_addr(client_addr(client), *d.ip(), 2, false);
            let dst = dests.iter().position(|x| *x == d).expect("listed");
            let model = portsim_nat_addr(4, &dests, 2, client as u32, dst);
            table.push(format!(
                "{} -> {}: kernel {:?}, portsim {model} (hash predicts {predicted})",
                client_addr(client),
                d.ip(),
                addrs
            ));
            ensure(addrs.is_empty() || addrs == [predicted], || {
                format!("client {client} to {d}: addresses {addrs:?}, predicted {predicted}")
            })?;
            ensure(addrs.is_empty() || addrs == [model], || {
                format!("client {client} to {d}: kernel {addrs:?}, portsim {model}")
            })?;
            all.extend(conns);
        }
    }
    let per = |a: Ipv4Addr| {
        all.iter()
            .filter(|c| c.nat.map(|n| *n.ip()) == Some(a))
            .count()
    };
    lab.fact(format!(
        "Linux {}: snat to 10.9.0.1-10.9.0.2:40000-40015, 4 clients x 2 \
         destinations x 3 connections: every pair kept one address, as \
         predicted by jhash2(source, seed = destination): {}; per address: \
         10.9.0.1 {}, 10.9.0.2 {}",
        lab.kernel,
        table.join("; "),
        per(nat_addr(0)),
        per(nat_addr(1))
    ));
    // Client 0 toward destination 0: its address has 16 ports toward that
    // destination, some already used by the clients hashed to the same one.
    let dest = dests[0];
    let mine = predicted_nat_addr(client_addr(0), *dest.ip(), 2, false);
    let used = all
        .iter()
        .filter(|c| c.dest == dest && c.nat.map(|n| *n.ip()) == Some(mine))
        .count();
    let room = 16 - used;
    let more = hold(lab, 0, dest, room)?;
    let extra = lab.connect(0, dest, None, Duration::from_millis(500))?;
    lab.fact(format!(
        "client {} toward {}: {used} ports of {mine} already used, {} more \
         established, the next failed: {}; the other address had {} free \
         ports toward it and was not used",
        client_addr(0),
        dest.ip(),
        more.len(),
        !extra.ok(),
        16 - all
            .iter()
            .filter(|c| c.dest == dest && c.nat.map(|n| *n.ip()) != Some(mine))
            .count()
    ));
    ensure(
        more.iter()
            .all(|c| c.nat.map(|n| *n.ip()) == Some(mine) || reused(&all, &more, c) == c.nat),
        || format!("{more:?}"),
    )?;
    // The 16 ports of its address toward the destination must all be held
    // (a connection of `more` may have kept an earlier mapping on the other
    // address instead), and its own port must not lend it an earlier
    // mapping: otherwise the kernel rightly lets it through.
    let held_on_mine = all
        .iter()
        .chain(&more)
        .filter(|c| c.dest == dest && c.nat.map(|n| *n.ip()) == Some(mine))
        .count();
    let earlier: Vec<Conn> = all.iter().chain(&more).cloned().collect();
    if held_on_mine < 16 || reused(&earlier, &[], &extra).is_some() {
        return Ok(());
    }
    ensure(!extra.ok() && extra.errno == Some(ETIMEDOUT), || {
        format!("{extra:?}")
    })
}

// e. fully-random ------------------------------------------------------------

fn fully_random_setup() -> Setup {
    let mut n = nat(Some(1), (40000, 40063));
    n.fully_random = true;
    setup(vec![(40000, 40015)], n)
}

/// `fully-random`: no preservation attempt; each port comes from a random
/// offset, so a client port survives only by chance.
///
/// Bound: connection k (0-based) starts the probe at a uniform offset over
/// the 64 ports and takes the first free one; it lands on the client's own
/// port p only if the start falls on p or on the run of taken ports just
/// before p. With at most 15 taken ports of 64, a run of length m has
/// probability at most (15/64)^m, so the chance is at most
/// (1/64)·1/(1 − 15/64) ≈ 0.020 per connection and the expected number of
/// kept ports over 16 is at most 0.33. Five or more has probability below
/// 0.33^5/5! ≈ 3·10^-5; the case asserts at most 4.
fn fully_random(lab: &mut Lab) -> Result<(), String> {
    let held = hold(lab, 0, server(0, DPORT), 16)?;
    let kept = held.iter().filter(|c| c.preserved()).count();
    lab.fact(format!(
        "Linux {}: snat to 10.9.0.1:40000-40063 fully-random, client range \
         40000-40015 (inside the NAT's), 16 held: {kept} source ports kept \
         (bound: at most 4; without fully-random all 16 are kept, see \
         preservation); {} distinct NAT ports",
        lab.kernel,
        distinct_ports(&held).len()
    ));
    ensure(kept <= 4, || format!("{kept} kept: {held:?}"))?;
    ensure(distinct_ports(&held).len() == 16, || format!("{held:?}"))?;
    ensure(in_range(&held, (40000, 40063)), || {
        "port outside range".into()
    })
}

// f. How long conntrack holds a closed connection ----------------------------

const TIME_WAIT_S: u32 = 3;
const CLOSE_S: u32 = 1;

fn hold_setup() -> Setup {
    let mut s = setup(vec![OUTSIDE], nat(Some(1), (40000, 40000)));
    s.timeouts = vec![("time_wait", TIME_WAIT_S), ("close", CLOSE_S)];
    s
}

/// The router's entry for `conn` (by the client's source port).
fn entry_of(lab: &Lab, conn: &Conn) -> Result<Option<super::kernel_nat_driver::CtEntry>, String> {
    let lport = conn.lport.ok_or("no local port")?;
    Ok(lab
        .conntrack()?
        .into_iter()
        .find(|e| e.src.port() == lport && e.dst == conn.dest))
}

/// One NAT port, conntrack `time_wait` = 3 s and `close` = 1 s (set in the
/// router's namespace only; the server's namespace keeps 120 and 10). After
/// a client close, a server close and an RST, the entry's state and the
/// time until it leaves the table; then a new connection from another
/// client port gets the port with a single SYN.
fn hold_after_close(lab: &mut Lab) -> Result<(), String> {
    let elsewhere = lab.server_sysctl("net/netfilter/nf_conntrack_tcp_timeout_time_wait")?;
    let here =
        std::fs::read_to_string("/proc/sys/net/netfilter/nf_conntrack_tcp_timeout_time_wait")
            .map_err(|e| e.to_string())?;
    lab.fact(format!(
        "Linux {}: nf_conntrack_tcp_timeout_time_wait is per network namespace: \
         {} in the router, {elsewhere} in the server's namespace",
        lab.kernel,
        here.trim()
    ));
    ensure(
        here.trim() == TIME_WAIT_S.to_string() && elsewhere == "120",
        || format!("router {here:?}, server {elsewhere:?}"),
    )?;
    let dest = server(0, DPORT);
    for (how, state, secs) in [
        (CloseHow::Client, "TIME_WAIT", TIME_WAIT_S),
        (CloseHow::Server, "TIME_WAIT", TIME_WAIT_S),
        (CloseHow::Reset, "CLOSE", CLOSE_S),
    ] {
        let conn = lab.connect(0, dest, None, QUICK)?;
        ensure(conn.ok(), || format!("{conn:?}"))?;
        lab.close(&conn, how)?;
        let closed = Instant::now();
        // The state right after the close handshake.
        let mut seen = None;
        while closed.elapsed() < Duration::from_millis(500) {
            seen = entry_of(lab, &conn)?;
            if seen.as_ref().is_some_and(|e| e.state == state) {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let seen = seen.ok_or(format!("{how:?}: no conntrack entry after the close"))?;
        // Until it leaves the table (expired entries are not listed).
        while entry_of(lab, &conn)?.is_some() {
            if closed.elapsed() > Duration::from_secs(u64::from(secs) + 5) {
                return Err(format!("{how:?}: entry still there after {secs} + 5 s"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let held = closed.elapsed();
        let (syn0, rst0) = (lab.syns()?, lab.client_rsts()?);
        let next = lab.connect(0, dest, None, QUICK)?;
        let (syns, rsts) = (lab.syns()? - syn0, lab.client_rsts()? - rst0);
        lab.fact(format!(
            "{how:?} close: conntrack {} (timeout {} s), left the table after {}; \
             then a new connection from another client port got NAT port {:?} \
             in {} with {syns} SYN(s) and {rsts} client RST(s)",
            seen.state,
            seen.timeout_s,
            ms(held),
            next.nat.map(|n| n.port()),
            ms(next.delay)
        ));
        ensure(seen.state == state, || format!("{how:?}: {seen:?}"))?;
        let floor = Duration::from_secs(u64::from(secs)) - Duration::from_millis(100);
        ensure(held >= floor, || {
            format!("{how:?}: entry gone after {held:?}, before {secs} s")
        })?;
        ensure(next.ok(), || format!("{how:?}: {next:?}"))?;
        // After a server close the server itself still holds TIME_WAIT for
        // the same outside tuple (10.9.0.1:40000 to 10.2.0.2:5000). A SYN
        // whose sequence number is not ahead of the old connection's is
        // answered with an ACK of the old one; the client resets it and
        // sends its SYN again at once (TCP_TIMEOUT_MIN), which the server,
        // its TIME_WAIT killed by the RST, accepts: 2 SYNs, 1 RST, a few
        // ms. Otherwise 1 SYN. Without a TIME_WAIT at the server: 1 SYN.
        let stale = (syns, rsts) == (2, 1);
        ensure(
            (syns, rsts) == (1, 0) || (how == CloseHow::Server && stale),
            || format!("{how:?}: {syns} SYNs, {rsts} RSTs: {next:?}"),
        )?;
        // portsim: the same NAT, a connection closed the same way, and a
        // second one well after the timer.
        let (m, freed_after) = portsim_hold(how);
        lab.fact(format!(
            "{how:?} close: kernel freed the port after {}, the next connection \
             established: {}; portsim freed it after {}, established {} failed {}",
            ms(held),
            next.ok(),
            ms(freed_after),
            m.established,
            m.failures
        ));
        ensure(
            freed_after == Duration::from_secs(u64::from(secs))
                && (m.established, m.failures) == (2, 0),
            || format!("portsim {how:?}: freed after {freed_after:?}, {m:?}"),
        )?;
        // The listing drops an expired entry at once; the poll is every
        // 20 ms.
        ensure(
            held <= Duration::from_secs(u64::from(secs)) + Duration::from_millis(500),
            || format!("{how:?}: the kernel held the port {held:?}, timeout {secs} s"),
        )?;
        lab.close(&next, CloseHow::Reset)?;
        // Let that RST's CLOSE entry expire before the next round.
        while entry_of(lab, &next)?.is_some() {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    Ok(())
}

/// When the NAT's entry count last fell to 0, and when the host last
/// closed a connection.
#[derive(Default)]
struct Freed {
    closed: Option<u64>,
    freed: Option<u64>,
}

impl portsim::sim::Observer for Freed {
    fn on_close(&mut self, t: u64, _port: u16, _dest: u32) {
        self.closed.get_or_insert(t);
    }
    fn on_nat_entries(&mut self, _site: portsim::sim::layer::Site, t: u64, entries: u64) {
        if entries == 0 && self.closed.is_some() {
            self.freed.get_or_insert(t);
        }
    }
}

/// The hold-after-close NAT in portsim: one port, `time_wait` 3 s and
/// `close` 1 s; a connection at 5 s closed `how` after 100 ms, another at
/// 10 s. Its report, and how long after the first close the port was free.
fn portsim_hold(how: CloseHow) -> (portsim::Report, Duration) {
    let close = match how {
        CloseHow::Client => "client",
        CloseHow::Server => "server",
        CloseHow::Reset => "reset",
    };
    let text = format!(
        r#"name = "kernel-nat-hold"
seed = 1
max_connections = 2
[host]
os = "linux"
port_range = "{}-{}"
via = "router"
[traffic]
arrivals = "constant"
rate = 0.2
hold = "100ms"
close = "{close}"
[[destinations]]
address = "{}"
[[nat]]
name = "router"
type = "linux"
addresses = ["{}"]
port_range = "40000-40000"
timeouts = {{ time_wait = "{TIME_WAIT_S}s", close = "{CLOSE_S}s" }}
"#,
        OUTSIDE.0,
        OUTSIDE.1,
        server(0, DPORT),
        nat_addr(0)
    );
    let sc = portsim::scenario::load_str(&text, std::path::Path::new("kernel-nat-hold.toml"), &[])
        .expect("the model scenario loads");
    let mut f = Freed::default();
    portsim::sim::simulate(&sc, &mut f);
    let after = match (f.closed, f.freed) {
        (Some(c), Some(t)) => Duration::from_nanos(t - c),
        _ => Duration::MAX,
    };
    (portsim::run(&sc), after)
}

// f/g. A new connection meeting a closing entry ------------------------------

fn evict_setup() -> Setup {
    let mut s = setup(vec![OUTSIDE], nat(Some(1), (40000, 40000)));
    // Long enough that no entry expires during the case.
    s.timeouts = vec![("time_wait", 120)];
    s
}

/// Trials of the eviction case.
const EVICT_TRIALS: usize = 24;

/// One NAT port held by an entry in TIME_WAIT (client close); a new
/// connection from another client port needs it, long before the timeout.
/// Each such SYN either evicts the entry (the new connection is
/// established at once) or is dropped (and so is its retransmission: the
/// comparison of sequence numbers gives the same answer). The new client
/// port's initial sequence number is unrelated to the old one, so eviction
/// is a fair coin: out of 24 trials, 3 to 21 evictions (outside with
/// probability 2·P(Bin(24, 1/2) <= 2) ≈ 3·10^-4).
fn evict_closing_entry(lab: &mut Lab) -> Result<(), String> {
    let dest = server(0, DPORT);
    let first = lab.connect(0, dest, None, QUICK)?;
    lab.close(&first, CloseHow::Client)?;
    let (mut evicted, mut dropped) = (0, 0);
    let mut evict_delays = Vec::new();
    for trial in 0..EVICT_TRIALS {
        let holders = lab.conntrack()?;
        ensure(
            holders.len() == 1 && holders[0].state == "TIME_WAIT",
            || format!("trial {trial}: the port's entry: {holders:?}"),
        )?;
        let syn0 = lab.syns()?;
        let c = lab.connect(0, dest, None, Duration::from_millis(400))?;
        let syns = lab.syns()? - syn0;
        if c.ok() {
            evicted += 1;
            evict_delays.push(c.delay);
            ensure(syns == 1 && c.nat.map(|n| n.port()) == Some(40000), || {
                format!("trial {trial}: evicted with {syns} SYNs: {c:?}")
            })?;
            // The new connection now holds the port; put it in TIME_WAIT.
            lab.close(&c, CloseHow::Client)?;
        } else {
            dropped += 1;
            ensure(c.errno == Some(ETIMEDOUT), || {
                format!("trial {trial}: {c:?}")
            })?;
        }
    }
    let max_delay = evict_delays.iter().max().copied().unwrap_or_default();
    lab.fact(format!(
        "Linux {}: one NAT port held by a conntrack TIME_WAIT entry (timeout \
         120 s); {EVICT_TRIALS} new connections from other client ports: {evicted} \
         evicted the entry and were established at once (slowest {}), \
         {dropped} were dropped (expected: about half each)",
        lab.kernel,
        ms(max_delay)
    ));
    ensure((3..=21).contains(&evicted), || {
        format!("{evicted} evictions of {EVICT_TRIALS}")
    })
}

fn reopen_setup() -> Setup {
    let mut s = setup(vec![OUTSIDE, (40000, 40015)], nat(Some(1), (40000, 40015)));
    s.timeouts = vec![("time_wait", 120)];
    // Client 1 goes to port 5001, so that client 0's last connection (to
    // 5000, left open) cannot have taken its reply tuple.
    s.server_ports = vec![DPORT, DPORT + 1];
    s
}

/// Reopen trials per client.
const REOPEN_TRIALS: usize = 8;

/// A new SYN of the same tuple (same client port, same destination) while
/// the entry is in TIME_WAIT after a server close (the client keeps no
/// TIME_WAIT of its own): the entry is deleted and the SYN tracked afresh,
/// as it is from CLOSE, which a close now and then ends in under load (a
/// reset seen; the kernel reopens both states alike, and so does portsim),
/// so the connection is established with a single SYN and the NAT chooses
/// again. From port 50000 (outside the range) the new NAT port is drawn at
/// random over the 16 (the old one is free again): the same port comes back
/// with probability 1/16 per trial, 5 or more of 8 with probability about
/// 5·10^-5 (asserted: at most 4). From port 40005 (inside the range) the
/// port is kept every time.
fn reopen_same_tuple(lab: &mut Lab) -> Result<(), String> {
    let mut facts = Vec::new();
    for (client, port, dest) in [
        (0, 50000, server(0, DPORT)),
        (1, 40005, server(0, DPORT + 1)),
    ] {
        let mut conn = lab.connect(client, dest, Some(port), QUICK)?;
        ensure(conn.ok(), || format!("{conn:?}"))?;
        let mut same = 0;
        let (mut reset, mut client_resets) = (0, 0);
        for trial in 0..REOPEN_TRIALS {
            let before = conn.nat.ok_or("no NAT port")?;
            let rst0 = lab.client_rsts()?;
            lab.close(&conn, CloseHow::Server)?;
            let deadline = Instant::now() + Duration::from_millis(500);
            let closed = |e: &super::kernel_nat_driver::CtEntry| {
                e.state == "TIME_WAIT" || e.state == "CLOSE"
            };
            let state = loop {
                match entry_of(lab, &conn)? {
                    Some(e) if closed(&e) => break e.state,
                    _ => {}
                }
                ensure(Instant::now() < deadline, || {
                    format!("trial {trial}: no closed entry: {:?}", lab.conntrack())
                })?;
                std::thread::sleep(Duration::from_millis(2));
            };
            if state == "CLOSE" {
                reset += 1;
                client_resets += lab.client_rsts()? - rst0;
            }
            let syn0 = lab.syns()?;
            conn = lab.connect(client, dest, Some(port), QUICK)?;
            let syns = lab.syns()? - syn0;
            let entries: Vec<_> = lab
                .conntrack()?
                .into_iter()
                .filter(|e| e.dst == dest)
                .collect();
            ensure(conn.ok() && syns == 1, || {
                format!("trial {trial}: reopen from {port}: {conn:?}, {syns} SYNs")
            })?;
            ensure(
                entries.len() == 1 && entries[0].state == "ESTABLISHED",
                || format!("trial {trial}: the old entry survived: {entries:?}"),
            )?;
            if conn.nat == Some(before) {
                same += 1;
            }
        }
        facts.push(format!(
            "from client port {port}: {REOPEN_TRIALS} of {REOPEN_TRIALS} reopened with one \
             SYN, the old entry deleted; same NAT port {same} times; {reset} of the closes \
             ended in CLOSE (a reset, {client_resets} RSTs from the client) rather than \
             TIME_WAIT"
        ));
        if port == 40005 {
            ensure(same == REOPEN_TRIALS, || format!("port kept {same} times"))?;
        } else {
            ensure(same <= 4, || format!("same NAT port {same} times"))?;
        }
    }
    lab.fact(format!(
        "Linux {}: snat to 10.9.0.1:40000-40015, a SYN of the same tuple while \
         conntrack holds it closed (server closed first): {}",
        lab.kernel,
        facts.join("; ")
    ));
    Ok(())
}

// i. Fleets: several clients whose own ranges overlap ------------------------

/// Each client's own range, inside the NAT's twice as wide one.
const CLIENT_RANGE: (u16, u16) = (40000, 40007);
const FLEET_NAT_RANGE: (u16, u16) = (40000, 40015);
/// A connect expected to be dropped gets this long: its SYN only (the
/// first retransmission would come at 1 s).
const SHORT: Duration = Duration::from_millis(500);

fn overlapping_setup() -> Setup {
    setup(vec![CLIENT_RANGE; 3], nat(Some(1), FLEET_NAT_RANGE))
}

/// One client of a fleet case as portsim runs it: a `[[hosts]]` group of
/// one host at the client's address, its own port range, connecting at
/// 10/s (constant arrivals) from `from_s` for `n` connects.
struct Client {
    ports: (u16, u16),
    from_s: u64,
    n: u32,
}

/// The fleet of `clients` behind `snat to 10.9.0.1:<nat_range>` to
/// `dest`, connections held, with `nat_extra` lines in the `[[nat]]`
/// table and `traffic_extra` keys in `[traffic]`. Constant arrivals start
/// a random phase earlier (up to the host's first arrival time): clients
/// start at seconds far apart (0, 1000, 100000) so that, unless a phase
/// is within 0.1 % of its maximum, each client's connects come after the
/// one before's; [`portsim_fleet`] checks the order it got.
fn fleet_text(
    clients: &[Client],
    nat_range: (u16, u16),
    dest: SocketAddrV4,
    traffic_extra: &str,
) -> String {
    let end = clients
        .iter()
        .map(|c| c.from_s + u64::from(c.n) / 10 + 10)
        .max()
        .unwrap_or(10);
    let mut text = format!(
        r#"name = "kernel-nat-fleet"
seed = 1
duration = "{end}s"
[host]
os = "linux"
syn_linear_timeouts = 4
[traffic]
arrivals = "constant"
hold = "1000h"
connect_timeout = "{}ms"
{traffic_extra}
[[destinations]]
address = "{dest}"
[[nat]]
name = "router"
type = "linux"
addresses = ["{}"]
port_range = "{}-{}"
"#,
        SHORT.as_millis(),
        nat_addr(0),
        nat_range.0,
        nat_range.1
    );
    for (k, c) in clients.iter().enumerate() {
        // n arrivals at from + 0.1 s, + 0.2 s, ...: 10/s until 50 ms
        // after the n-th.
        let stop = c.from_s * 1000 + u64::from(c.n) * 100 + 50;
        let schedule = if c.from_s == 0 {
            format!(r#"[{{ at = "0s", rate = 10 }}, {{ at = "{stop}ms", rate = 0 }}]"#)
        } else {
            format!(
                r#"[{{ at = "0s", rate = 0 }}, {{ at = "{}s", rate = 10 }}, {{ at = "{stop}ms", rate = 0 }}]"#,
                c.from_s
            )
        };
        text.push_str(&format!(
            "[[hosts]]\nname = \"{}\"\naddresses = [\"{}\"]\nport_range = \"{}-{}\"\nvia = \"router\"\ntraffic = {{ schedule = {schedule} }}\n",
            client_name(k),
            client_addr(k),
            c.ports.0,
            c.ports.1
        ));
    }
    text
}

fn client_name(k: usize) -> String {
    ["A", "B", "C", "D"][k].to_string()
}

/// When each host took its first and last local port.
#[derive(Default)]
struct Order {
    spans: Vec<(u64, u64)>,
}

impl portsim::sim::Observer for Order {
    fn on_port_busy_at(&mut self, site: portsim::sim::layer::Site, t: u64, _addr: u32, _idx: u32) {
        if site.layer != portsim::sim::layer::Site::HOST_LAYER {
            return;
        }
        let h = site.host as usize;
        if self.spans.len() <= h {
            self.spans.resize(h + 1, (u64::MAX, 0));
        }
        let s = &mut self.spans[h];
        *s = (s.0.min(t), s.1.max(t));
    }
}

/// Run the fleet `text` in portsim: its report, and whether each host's
/// connects all came after the one before's.
fn portsim_fleet(text: &str) -> (portsim::Report, bool) {
    let sc = portsim::scenario::load_str(text, std::path::Path::new("kernel-nat-fleet.toml"), &[])
        .expect("the model scenario loads");
    let mut order = Order::default();
    portsim::sim::simulate(&sc, &mut order);
    let in_turn = order.spans.windows(2).all(|w| w[0].1 < w[1].0);
    (portsim::run(&sc), in_turn)
}

/// A host group's established and failed connects in portsim.
fn per_host(r: &portsim::Report) -> Vec<(u64, u64)> {
    r.hosts
        .iter()
        .map(|h| (h.established, h.failures))
        .collect()
}

fn slashes(v: impl IntoIterator<Item = u64>) -> String {
    v.into_iter()
        .map(|x| x.to_string())
        .collect::<Vec<_>>()
        .join("/")
}

/// Three clients with the same own range 40000-40007 behind one NAT
/// address with 40000-40015, one destination, connections held. A
/// connects 8 times, then B 8 times, then C 4 times. A's ports are all
/// free at the NAT: kept. B's are the same ports, their reply tuples
/// taken by A: each remapped, onto the 8 free ones (a probe from a random
/// offset over the 16 covers the range). C finds no free port: its SYNs
/// are dropped. Exactly, in the kernel and in portsim: A 8 established 8
/// kept, B 8 established 0 kept, C 4 failed; 16 distinct NAT ports.
fn overlapping_clients(lab: &mut Lab) -> Result<(), String> {
    let dest = server(0, DPORT);
    let a = hold(lab, 0, dest, 8)?;
    let b = hold(lab, 1, dest, 8)?;
    let ids = (0..4)
        .map(|_| lab.start(2, dest, None, SHORT))
        .collect::<Result<Vec<_>, _>>()?;
    let c = ids
        .iter()
        .map(|id| lab.finish(id))
        .collect::<Result<Vec<_>, _>>()?;
    let ok = |v: &[Conn]| v.iter().filter(|c| c.ok()).count() as u64;
    let kept = |v: &[Conn]| v.iter().filter(|c| c.preserved()).count() as u64;
    let all: Vec<Conn> = [a.clone(), b.clone(), c.clone()].concat();
    let kernel = (
        [ok(&a), ok(&b), ok(&c)],
        [8 - ok(&a), 8 - ok(&b), 4 - ok(&c)],
        [kept(&a), kept(&b), kept(&c)],
        distinct_ports(&all).len() as u64,
    );
    let clients = [
        Client {
            ports: CLIENT_RANGE,
            from_s: 0,
            n: 8,
        },
        Client {
            ports: CLIENT_RANGE,
            from_s: 1000,
            n: 8,
        },
        Client {
            ports: CLIENT_RANGE,
            from_s: 100_000,
            n: 4,
        },
    ];
    let (m, in_turn) = portsim_fleet(&fleet_text(&clients, FLEET_NAT_RANGE, dest, ""));
    let n = &m.nats[0];
    let hosts = per_host(&m);
    let at_nat: u64 = m.hosts.iter().map(|h| h.failures_at["router"]).sum();
    lab.fact(format!(
        "Linux {}: snat to 10.9.0.1:40000-40015, clients A, B, C each with own range \
         40000-40007, A 8 connects then B 8 then C 4, held: kernel established {} \
         failed {} preserved {} distinct NAT ports {}; portsim established {} failed {} \
         preserved {} distinct NAT ports {}, failed at the NAT {at_nat}",
        lab.kernel,
        slashes(kernel.0),
        slashes(kernel.1),
        slashes(kernel.2),
        kernel.3,
        slashes(hosts.iter().map(|h| h.0)),
        slashes(hosts.iter().map(|h| h.1)),
        n.ports_preserved,
        n.distinct_ports
    ));
    ensure(kernel == ([8, 8, 0], [0, 0, 4], [8, 0, 0], 16), || {
        format!("kernel: {all:?}")
    })?;
    ensure(c.iter().all(|x| x.errno == Some(ETIMEDOUT)), || {
        format!("C's connects must time out: {c:?}")
    })?;
    ensure(in_turn, || {
        "portsim: the clients' connects overlapped in time".into()
    })?;
    ensure(
        hosts == [(8, 0), (8, 0), (0, 4)]
            && (n.ports_preserved, n.distinct_ports, n.failures, at_nat) == (8, 16, 4, 4),
        || format!("portsim differs from the kernel: {:?} {n:?}", m.hosts),
    )
}

/// The same three clients connecting in turn (A, B, C, A, ...), 19
/// connects: the NAT's 16 ports fill at the 16th, whatever was kept or
/// remapped (each client holds at most 6 of its 8 ports, and a remap
/// probes the whole range), so exactly the first 16 are established (A 6,
/// B 5, C 5) and the last 3 dropped. Kept ports: the first connect is
/// always kept (the NAT is empty); a kept port is a NAT port inside
/// 40000-40007, each kept at most once: between 1 and 8, both in the
/// kernel and in portsim. portsim's constant arrivals go in a fixed order
/// per round that its phases decide, so only totals are compared there.
fn interleaved_clients(lab: &mut Lab) -> Result<(), String> {
    let dest = server(0, DPORT);
    let mut conns: Vec<Conn> = Vec::new();
    for k in 0..19 {
        let client = k % 3;
        let timeout = if k < 16 { QUICK } else { SHORT };
        conns.push(lab.connect(client, dest, None, timeout)?);
    }
    let by = |client: usize| {
        conns
            .iter()
            .filter(|c| c.client == client && c.ok())
            .count() as u64
    };
    let established = conns.iter().filter(|c| c.ok()).count() as u64;
    let kept = conns.iter().filter(|c| c.preserved()).count() as u64;
    let clients = [
        Client {
            ports: CLIENT_RANGE,
            from_s: 0,
            n: 7,
        },
        Client {
            ports: CLIENT_RANGE,
            from_s: 0,
            n: 6,
        },
        Client {
            ports: CLIENT_RANGE,
            from_s: 0,
            n: 6,
        },
    ];
    let (m, _) = portsim_fleet(&fleet_text(&clients, FLEET_NAT_RANGE, dest, ""));
    let n = &m.nats[0];
    lab.fact(format!(
        "Linux {}: the same NAT and clients connecting in turn, 19 connects: kernel \
         established {established} (A/B/C {}) failed {} preserved {kept} distinct NAT \
         ports {}; portsim established {} (A/B/C {}) failed {} preserved {} distinct NAT \
         ports {} (bound on preserved: 1 to 8)",
        lab.kernel,
        slashes([by(0), by(1), by(2)]),
        19 - established,
        distinct_ports(&conns).len(),
        m.established,
        slashes(m.hosts.iter().map(|h| h.established)),
        m.failures,
        n.ports_preserved,
        n.distinct_ports
    ));
    ensure(
        (established, [by(0), by(1), by(2)]) == (16, [6, 5, 5])
            && conns[..16].iter().all(Conn::ok)
            && conns[16..].iter().all(|c| c.errno == Some(ETIMEDOUT)),
        || format!("kernel: {conns:?}"),
    )?;
    ensure((1..=8).contains(&kept), || format!("kernel kept {kept}"))?;
    ensure(distinct_ports(&conns).len() == 16, || format!("{conns:?}"))?;
    ensure(
        (m.established, m.failures, n.failures, n.distinct_ports) == (16, 3, 3, 16)
            && (1..=8).contains(&n.ports_preserved),
        || format!("portsim differs from the kernel: {:?} {n:?}", m.hosts),
    )
}

// h. nf_conntrack_max --------------------------------------------------------

fn conntrack_max_setup() -> Setup {
    setup(vec![OUTSIDE], nat(Some(1), (40000, 40063)))
}

/// `nf_conntrack_max` in a namespace other than the initial one: if the
/// kernel lets it be set there, a table of 8 entries admits 8 connections
/// and drops the 9th's SYN; if not (read-only, as on Linux 6.18), the case
/// says so and stops there.
fn conntrack_max(lab: &mut Lab) -> Result<(), String> {
    let path = "/proc/sys/net/netfilter/nf_conntrack_max";
    match std::fs::write(path, "8\n") {
        Err(e) => {
            lab.fact(format!(
                "Linux {}: nf_conntrack_max cannot be set in a non-initial network \
                 namespace ({e}); the table-full case is skipped",
                lab.kernel
            ));
            Ok(())
        }
        Ok(()) => {
            let dest = server(0, DPORT);
            let held = hold(lab, 0, dest, 8)?;
            let extra = lab.connect(0, dest, None, Duration::from_millis(500))?;
            lab.fact(format!(
                "Linux {}: nf_conntrack_max = 8 in the router: {} established, \
                 the 9th failed: {}",
                lab.kernel,
                held.len(),
                !extra.ok()
            ));
            ensure(!extra.ok(), || format!("{extra:?}"))
        }
    }
}

// The tests ------------------------------------------------------------------

#[test]
fn nat_keeps_free_source_ports_in_range_and_remaps_the_rest() {
    lab("preservation");
}

#[test]
fn nat_runs_out_after_its_range_toward_one_destination() {
    lab("exhaustion-one-destination");
}

#[test]
fn nat_port_serves_several_destinations_at_once() {
    lab("two-destinations");
}

#[test]
fn nat_address_is_a_fixed_hash_of_source_and_destination() {
    lab("two-addresses");
}

#[test]
fn fully_random_does_not_preserve_ports() {
    lab("fully-random");
}

#[test]
fn conntrack_holds_the_port_for_its_close_timers() {
    lab("hold-after-close");
}

#[test]
fn a_new_connection_may_evict_a_closing_entry() {
    lab("evict-closing-entry");
}

#[test]
fn a_syn_of_the_same_tuple_reopens_a_time_wait_entry() {
    lab("reopen-same-tuple");
}

#[test]
fn overlapping_client_ranges_remap_the_second_client() {
    lab("overlapping-clients");
}

#[test]
fn interleaved_clients_fill_the_nat_exactly() {
    lab("interleaved-clients");
}

#[test]
fn conntrack_max_in_a_namespace() {
    lab("conntrack-max");
}
