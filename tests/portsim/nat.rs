//! The Linux NAT layer against counts derived by hand.
//!
//! Each case is a host with a wide range behind a NAT with a narrow one,
//! constant arrivals, and the `sequential` allocator, so which ports the host
//! offers is known; `connect_timeout = "0s"` makes a dropped SYN fail its
//! connect at once (the SYN retransmissions have tests of their own, in
//! `syn`). Uniqueness is per reply tuple (outside address, port,
//! destination): a NAT with P ports serves P connections per destination at
//! once, however many destinations share them.

use portsim::scenario::nat::{ConntrackTimeouts, Nat, NatKind, NatMode, DEFAULT_MAX_ENTRIES};
use portsim::Scenario;

use crate::util::scenario;

/// A host with 1,000 ports (60000-60999) and `rest` appended.
fn host(rate: f64, hold: &str, close: &str, dests: u32, extra: &str) -> Scenario {
    scenario(&format!(
        r#"
name = "nat"
seed = 5
duration = "60s"
[host]
os = "generic"
allocator = "sequential"
port_range = "60000-60999"
time_wait = "60s"
[[destinations]]
address = "10.9.0.1:443"
count = {dests}
[traffic]
arrivals = "constant"
rate = {rate}
hold = "{hold}"
close = "{close}"
pick = "round-robin"
connect_timeout = "0s"
{extra}
"#
    ))
}

fn nat(name: &str, lo: u16, hi: u16) -> Nat {
    Nat {
        name: name.into(),
        kind: NatKind::Linux,
        addresses: vec!["203.0.113.1".into()],
        port_lo: lo,
        port_hi: hi,
        mode: NatMode::Preserve,
        persistent: false,
        timeouts: ConntrackTimeouts::default(),
        max_entries: DEFAULT_MAX_ENTRIES,
        via: None,
        cloud: None,
    }
}

fn behind(mut sc: Scenario, nats: Vec<Nat>) -> Scenario {
    sc.nats = nats;
    sc.via = Some(0);
    sc
}

#[test]
fn a_narrow_nat_runs_out_before_the_host() {
    // 10/s held for the whole run: 600 connections; the NAT has 100 ports
    // toward one destination, the host 1,000.
    let sc = behind(
        host(10.0, "1000h", "client", 1, ""),
        vec![nat("node", 61000, 61099)],
    );
    let r = portsim::run(&sc);
    assert_eq!(r.attempts, 600);
    assert_eq!((r.established, r.failures), (100, 500));
    let n = &r.nats[0];
    assert_eq!(
        (n.attempts, n.failures, n.failures_by_cause.no_port),
        (600, 500, 500)
    );
    assert_eq!((n.peak_mappings, n.distinct_ports), (100, 100));
    assert_eq!(n.peak_ports_per_address, 100);
    // The host's ports (60000-) are outside the NAT's range: none kept.
    assert_eq!(n.ports_preserved, 0);
    assert_eq!(r.first_failure.as_ref().unwrap().attempt, 101);
    let s = portsim::report::summary::render(&r);
    assert!(
        s.contains("attempt 101, at the NAT node (no port left); 83.3 % of attempts failed. The host itself never ran out."),
        "{s}"
    );
}

#[test]
fn one_outside_port_serves_every_destination() {
    // Round-robin over two destinations: 100 each at once.
    let sc = behind(
        host(10.0, "1000h", "client", 2, ""),
        vec![nat("node", 61000, 61099)],
    );
    let r = portsim::run(&sc);
    assert_eq!((r.established, r.failures), (200, 400));
    let n = &r.nats[0];
    assert_eq!(n.peak_mappings, 200);
    // Both destinations use the same 100 ports of the one address.
    assert_eq!((n.peak_ports_per_address, n.distinct_ports), (100, 100));
}

#[test]
fn preserve_keeps_free_ports_and_random_fully_never_does() {
    // The host's range inside the NAT's: every port the host offers is free
    // at the NAT, so each is kept.
    let sc = behind(
        host(10.0, "1000h", "client", 1, ""),
        vec![nat("node", 60000, 60999)],
    );
    let r = portsim::run(&sc);
    assert_eq!((r.established, r.nats[0].ports_preserved), (600, 600));
    let mut n = nat("node", 60000, 60999);
    n.mode = NatMode::RandomFully;
    let sc = behind(host(10.0, "1000h", "client", 1, ""), vec![n]);
    let r = portsim::run(&sc);
    assert_eq!((r.established, r.nats[0].ports_preserved), (600, 0));
}

#[test]
fn conntrack_holds_a_mapping_for_its_own_time_wait_until_a_syn_evicts_it() {
    // 10/s, 1 s each: a mapping is held 1 s + the NAT's TIME_WAIT, whatever
    // the host does. 100 ports: 1 s + 8 s needs 90 and never fills the
    // table; 1 s + 10 s needs 110. Then a new SYN finds no free port and, in
    // the last 32 candidates of a round, evicts a closed entry with
    // probability 1/2 each: over 100 candidates, 90 of them closed, it
    // fails with probability below 2^-22.
    let run = |tw_s: u64, close: &str| {
        let mut n = nat("node", 61000, 61099);
        n.timeouts.time_wait = tw_s * 1_000_000_000;
        n.timeouts.close = tw_s * 1_000_000_000;
        portsim::run(&behind(host(10.0, "1s", close, 1, ""), vec![n]))
    };
    // (A search that meets closed entries before a free port in its last 32
    // candidates may evict one even with ports free, as the kernel does.)
    let short = run(8, "client");
    assert_eq!(short.failures, 0);
    assert!(short.nats[0].peak_mappings <= 90);
    let long = run(10, "client");
    assert_eq!(long.failures, 0);
    assert_eq!(long.nats[0].peak_mappings, 100);
    assert!(long.nats[0].evicted > 0);
    // At most one eviction per new connection.
    assert!(
        long.nats[0].evicted <= long.attempts,
        "{}",
        long.nats[0].evicted
    );
    assert!(long.nats[0].evicted > short.nats[0].evicted);
    // The same hold after a server's close (TIME_WAIT), `close` after a reset.
    assert_eq!(run(10, "server").nats[0].evicted, long.nats[0].evicted);
    assert_eq!(run(8, "reset").nats[0].evicted, short.nats[0].evicted);
}

#[test]
fn a_full_conntrack_table_drops_new_connections() {
    let mut n = nat("node", 61000, 61999);
    n.max_entries = 50;
    let r = portsim::run(&behind(host(10.0, "1000h", "client", 1, ""), vec![n]));
    assert_eq!((r.established, r.failures), (50, 550));
    assert_eq!(r.nats[0].failures_by_cause.table_full, 550);
    assert_eq!(r.nats[0].failures_by_cause.no_port, 0);
}

#[test]
fn stacked_nats_charge_the_one_that_ran_out() {
    // pod host → node NAT (200 ports) → cloud NAT (50 ports).
    let mut node = nat("node", 61000, 61199);
    node.via = Some(1);
    let cloud = nat("cloud", 40000, 40049);
    let r = portsim::run(&behind(
        host(10.0, "1000h", "client", 1, ""),
        vec![node, cloud],
    ));
    assert_eq!((r.established, r.failures), (50, 550));
    assert_eq!(r.nats.len(), 2);
    let (node, cloud) = (&r.nats[0], &r.nats[1]);
    assert_eq!((node.name.as_str(), cloud.name.as_str()), ("node", "cloud"));
    // Every SYN the cloud NAT dropped left its node entry in SYN_SENT for
    // 120 s: 50 established + 150 unreplied fill the node's 200 ports at
    // attempt 200, and the node drops the remaining 400 itself.
    assert_eq!((node.attempts, node.failures), (600, 400));
    assert_eq!((cloud.attempts, cloud.failures), (200, 150));
    assert_eq!(node.peak_mappings, 200);
}

#[test]
fn fixes_widen_the_nat_that_ran_out() {
    // 600 connections held to one destination through a NAT of 100 ports:
    // its range must hold 600, within the search's tenth of the change.
    let text = r#"
name = "nat-fix"
seed = 5
duration = "60s"
[host]
os = "generic"
allocator = "sequential"
port_range = "60000-60999"
via = "node"
[[destinations]]
address = "10.9.0.1:443"
[traffic]
arrivals = "constant"
rate = 10
hold = "1000h"
close = "client"
connect_timeout = "0s"
[[nat]]
name = "node"
type = "linux"
port_range = "61000-61099"
"#;
    let sc = scenario(text);
    let report = portsim::run(&sc);
    assert_eq!(report.nats[0].failures, 500);
    let src = fix_source(text, sc.seed, true);
    let fixes = portsim::fixes::compute(&src, &sc, &report);
    let range = fixes
        .list
        .iter()
        .find(|f| f.lever == "nat_port_range")
        .expect("a wider NAT range");
    let value = range.change[0].strip_prefix("nat.0.port_range=").unwrap();
    let (lo, hi) = value.split_once('-').unwrap();
    let size = hi.parse::<u32>().unwrap() - lo.parse::<u32>().unwrap() + 1;
    assert!((600..=650).contains(&size), "{value}");
    assert_eq!(range.failures, 0);
    // More addresses cannot help one client: the address is a hash of the
    // source and destination addresses, so all its connections leave from
    // one of them.
    assert!(fixes.list.iter().all(|f| f.lever != "nat_addresses"));
    // Four hosts of 60 connections each behind it: two on one address
    // would need 120 of its 100 ports; with enough addresses the hash gives
    // each one of its own, and nothing fails. The hash is the kernel's
    // jhash of the source seeded by the destination: toward 10.9.0.1 it
    // puts the hosts 192.0.2.1 and 192.0.2.3 on one address for every
    // count from 2 to 17 (their key words differ in one byte), toward
    // 10.9.0.5 the four hosts have four addresses from 4 addresses on.
    let spread = |dst: [u8; 4], n: u32| {
        let mut a: Vec<u32> = (1..=4)
            .map(|h| {
                portsim::sim::jhash::nat_address_index(
                    std::net::Ipv4Addr::new(192, 0, 2, h),
                    dst.into(),
                    n,
                    false,
                )
            })
            .collect();
        a.sort_unstable();
        a.dedup();
        a.len()
    };
    assert!((2..=17).all(|n| spread([10, 9, 0, 1], n) < 4));
    assert!((4..=64).all(|n| spread([10, 9, 0, 5], n) == 4));
    let fleet = text
        .replace("via = \"node\"\n", "")
        .replace("10.9.0.1:443", "10.9.0.5:443")
        + "[[hosts]]\nname = \"web\"\ncount = 4\nvia = \"node\"\ntraffic = { rate = 1 }\n";
    let fsc = scenario(&fleet);
    let freport = portsim::run(&fsc);
    assert!(freport.nats[0].failures > 0);
    let fsrc = portsim::fixes::Source {
        text: &fleet,
        ..portsim::fixes::Source { ..src }
    };
    let ffixes = portsim::fixes::compute(&fsrc, &fsc, &freport);
    let more = ffixes
        .list
        .iter()
        .find(|f| f.lever == "nat_addresses")
        .expect("more NAT addresses for four hosts");
    assert!(
        more.change[0].starts_with("nat.0.addresses="),
        "{:?}",
        more.change
    );
    assert_eq!(more.failures, 0);
    // The host never ran out, so no change to its ports is tried, not even
    // one the budget would have left out.
    let host_side = [
        "allocator",
        "server_close",
        "tw_reuse",
        "source_addresses",
        "bind_no_port",
        "port_range",
    ];
    let tried = portsim::fixes::applicable(&src, &sc, &report);
    assert_eq!(tried[0], "nat_port_range", "{tried:?}");
    for lever in host_side {
        assert!(!tried.contains(&lever), "{lever} in {tried:?}");
    }
    // With the NAT out of the way and twice the connections, the host's
    // 1,000 ports are the limit, and its levers apply.
    let wide = text
        .replace("61000-61099", "1024-65535")
        .replace("rate = 10", "rate = 20");
    let sc = scenario(&wide);
    let report = portsim::run(&sc);
    assert!(report.failures > 0 && report.nats[0].failures == 0);
    let src = portsim::fixes::Source { text: &wide, ..src };
    let tried = portsim::fixes::applicable(&src, &sc, &report);
    assert!(
        tried.contains(&"server_close") && tried.contains(&"port_range"),
        "{tried:?}"
    );
}

/// With the server closing first, the destination keeps each connection's
/// tuple in TIME_WAIT. A NAT whose conntrack lets the tuple go after 1 s
/// (`timeouts.time_wait`) hands it out again while the server (TIME_WAIT of
/// an hour here) still holds it: every connect but the first on each outside
/// port reuses a stale tuple, so `stale_reuse` = attempts − distinct ports.
/// A server TIME_WAIT of 1 s is always over by then: the tuple is held 1 s
/// after close, and with at most 6 of 100 ports taken no search reaches the
/// last 32 candidates, where a closed entry could be evicted early. With
/// the client closing there is no TIME_WAIT at the server.
#[test]
fn stale_reuse_counts_tuples_the_server_may_still_hold() {
    let text = |close: &str, server_tw: &str| {
        format!(
            r#"
name = "stale"
seed = 8
duration = "60s"
[host]
os = "linux"
port_range = "50000-50999"
via = "gw"
[[destinations]]
address = "10.9.0.1:443"
time_wait = "{server_tw}"
[traffic]
arrivals = "constant"
rate = 2
hold = "1s"
close = "{close}"
[[nat]]
name = "gw"
type = "linux"
port_range = "40000-40099"
timeouts = {{ time_wait = "1s" }}
"#
        )
    };
    let r = crate::util::run(&text("server", "1h"));
    let n = &r.nats[0];
    assert_eq!(r.failures, 0);
    assert!(n.distinct_ports <= 100 && n.distinct_ports > 0);
    assert_eq!(n.stale_reuse, n.attempts - n.distinct_ports);
    assert_eq!(r.stale_reuse, n.stale_reuse);
    assert!(n.stale_reuse >= 20, "{}", n.stale_reuse);
    let r = crate::util::run(&text("server", "1s"));
    assert_eq!(r.nats[0].stale_reuse, 0);
    let r = crate::util::run(&text("client", "1h"));
    assert_eq!(r.nats[0].stale_reuse, 0);
}

/// Four hosts of 60 connections each toward 10.9.0.1 behind a NAT of 100
/// ports: two on one address need 120 of its 100 ports. The address is
/// the kernel's hash of source and destination scaled onto the count, so
/// failures do not fall steadily with the count: 2 to 17 addresses fail,
/// 18 passes, 19 fails again. Doubling then bisecting the count missed
/// 18 within its budget; the lever follows the hash instead and probes
/// only the counts that spread the hosts better than every smaller one.
#[test]
fn nat_addresses_follows_the_hash_where_failures_are_not_monotone() {
    let text = r#"
name = "nat-fix"
seed = 5
duration = "60s"
[host]
os = "generic"
allocator = "sequential"
port_range = "60000-60999"
[[destinations]]
address = "10.9.0.1:443"
[traffic]
arrivals = "constant"
rate = 10
hold = "1000h"
close = "client"
connect_timeout = "0s"
[[nat]]
name = "node"
type = "linux"
port_range = "61000-61099"
[[hosts]]
name = "web"
count = 4
via = "node"
traffic = { rate = 1 }
"#;
    // The fewest addresses on which the hash gives each of the four hosts
    // (192.0.2.1 to .4) an address of its own.
    let apart = |n: u32| {
        let mut a: Vec<u32> = (1..=4)
            .map(|h| {
                portsim::sim::jhash::nat_address_index(
                    std::net::Ipv4Addr::new(192, 0, 2, h),
                    std::net::Ipv4Addr::new(10, 9, 0, 1),
                    n,
                    false,
                )
            })
            .collect();
        a.sort_unstable();
        a.dedup();
        a.len() == 4
    };
    let fewest = (2..=4096).find(|&n| apart(n)).expect("some count");
    assert_eq!(fewest, 18);
    assert!(!apart(19));
    let with = |n: u32| run_with(text, &format!("nat.0.addresses={n}"));
    assert_eq!(with(fewest).failures, 0);
    assert!(with(fewest - 1).failures > 0);
    assert!(with(fewest + 1).failures > 0);

    let sc = scenario(text);
    let report = portsim::run(&sc);
    assert_eq!(report.attempts, 240);
    assert_eq!(report.nats[0].failures, 140);
    let src = |all| fix_source(text, sc.seed, all);
    let want = vec![format!("nat.0.addresses={fewest}")];
    for all in [true, false] {
        let fixes = portsim::fixes::compute(&src(all), &sc, &report);
        let more = fixes
            .list
            .iter()
            .find(|f| f.lever == "nat_addresses")
            .unwrap_or_else(|| panic!("all={all}: {:?}", fixes.cost.not_computed));
        assert_eq!(more.change, want, "all={all}");
        assert_eq!(more.failures, 0);
        assert!(more.meets_target);
        assert_eq!(more.attempts, 240);
        assert!(!fixes.cost.not_computed.contains(&"nat_addresses"));
        if !all {
            // It is the first lever tried, and its passing run fits the
            // shared budget of twice the run's attempts.
            assert_eq!(fixes.cost.budget_runs, Some(2.0));
            assert!(fixes.cost.attempts <= 2 * report.attempts);
        }
    }

    // Toward an IPv6 destination the engine's stand-in hash spreads the
    // hosts, which the lever cannot follow: it searches the count as a
    // number, and still finds one that passes.
    let v6 = text.replace("10.9.0.1:443", "[2001:db8::1]:443");
    let sc = scenario(&v6);
    let report = portsim::run(&sc);
    assert!(report.nats[0].failures > 0);
    let fixes = portsim::fixes::compute(
        &portsim::fixes::Source {
            text: &v6,
            ..src(true)
        },
        &sc,
        &report,
    );
    let more = fixes
        .list
        .iter()
        .find(|f| f.lever == "nat_addresses")
        .expect("more NAT addresses toward an IPv6 destination");
    assert_eq!(more.failures, 0);
    let set = portsim::scenario::Override::parse_as(&more.change[0], "--set").expect("a flag");
    let sc = portsim::scenario::load_str(&v6, std::path::Path::new("t.toml"), &[set]).unwrap();
    assert_eq!(portsim::run(&sc).failures, 0, "{:?}", more.change);
}

/// More destinations for a NAT that ran out, not for the host: 4 hosts
/// hold 240 connections through a NAT of 100 ports per destination, so 3
/// destinations carry them (2 do not). The search starts from the NAT's
/// own shortfall (240 asked ÷ 100 let through ÷ 0.95), not from the hosts'
/// load, which a hold of 1000 h makes enormous.
#[test]
fn the_destinations_fix_aims_at_the_nat_that_ran_out() {
    let text = r#"
name = "nat-dests"
seed = 5
duration = "60s"
[host]
os = "generic"
allocator = "sequential"
port_range = "60000-60999"
[[destinations]]
address = "10.9.0.1:443"
[traffic]
arrivals = "constant"
rate = 1
hold = "1000h"
connect_timeout = "0s"
[[nat]]
name = "node"
type = "linux"
port_range = "61000-61099"
[[hosts]]
name = "web"
count = 4
via = "node"
"#;
    let with = |n: u32| run_with(text, &format!("destinations.0.count={n}"));
    assert!(with(2).failures > 0);
    assert_eq!(with(3).failures, 0);
    let sc = scenario(text);
    let report = portsim::run(&sc);
    assert_eq!((report.attempts, report.nats[0].failures), (240, 140));
    let src = fix_source(text, sc.seed, true);
    let fixes = portsim::fixes::compute(&src, &sc, &report);
    let dests = fixes
        .list
        .iter()
        .find(|f| f.lever == "destinations")
        .unwrap_or_else(|| panic!("{:?}", fixes.cost.not_computed));
    assert_eq!(dests.change, vec!["destinations.0.count=3".to_string()]);
    assert_eq!(dests.failures, 0);
}

/// When the hosts fail first but a NAT fails most, the headline says both:
/// in `nat-stacked` the pod runs out of its own ports first (connects
/// retrying SYNs the egress NAT dropped hold them), and most failures are
/// the egress NAT's.
#[test]
fn the_headline_names_the_nat_where_most_failed() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/nat-stacked.toml");
    let sc = portsim::scenario::load_file(&path, &[]).expect("the shipped scenario loads");
    let r = portsim::run(&sc);
    let egress = r.nats.iter().find(|n| n.name == "egress").expect("egress");
    assert!(2 * egress.failures > r.failures);
    let h = portsim::report::summary::headline(&r);
    assert!(h.contains("on the host itself"), "{h}");
    let most = format!(
        "Most failed at the NAT egress ({} of {}).",
        portsim::util::thousands(egress.failures),
        portsim::util::thousands(r.failures)
    );
    assert!(h.contains(&most), "{h}");
}

/// What the fixes see of `text` run with `seed`: every lever with `all`,
/// else the shared budget; the default limits.
fn fix_source(text: &str, seed: u64, all: bool) -> portsim::fixes::Source<'_> {
    portsim::fixes::Source {
        text,
        path: std::path::Path::new("nat-fix.toml"),
        overrides: &[],
        seed,
        max_events: portsim::DEFAULT_MAX_EVENTS,
        max_memory: portsim::DEFAULT_MAX_MEMORY,
        target: None,
        all,
    }
}

/// `text` run with one `--set KEY=VALUE`.
fn run_with(text: &str, set: &str) -> portsim::Report {
    let set = portsim::scenario::Override::parse_as(set, "--set").expect("a --set flag");
    let sc =
        portsim::scenario::load_str(text, std::path::Path::new("t.toml"), &[set]).expect("loads");
    portsim::run(&sc)
}
