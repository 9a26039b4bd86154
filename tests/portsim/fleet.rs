//! Fleets (`[[hosts]]`): the same engine figures as one `[host]` where a
//! fleet is one host, exact counts where every host and NAT is exhausted
//! in a known way, Little's law over many hosts, the `hosts` report and
//! the loader's refusals.

use crate::util::{portsim, run, text, write};

/// One Linux host at 300/s with a 2,000-port range and Poisson arrivals,
/// either as `[host]` or as one `[[hosts]]` group of one host; `nat` adds
/// a NAT on its path.
fn one_host(as_group: bool, nat: bool) -> String {
    let via = if nat { "via = \"node\"" } else { "" };
    let (host_via, group) = if as_group {
        (
            String::new(),
            format!("[[hosts]]\nname = \"one\"\ncount = 1\n{via}\n"),
        )
    } else {
        (via.to_string(), String::new())
    };
    let nat = if nat {
        "[[nat]]\nname = \"node\"\ntype = \"linux\"\nport_range = \"20000-21499\"\n"
    } else {
        ""
    };
    format!(
        r#"
name = "one"
seed = 9
duration = "60s"
[host]
os = "linux"
port_range = "40000-41999"
time_wait = "10s"
{host_via}
[[destinations]]
address = "10.1.0.1:443"
[traffic]
arrivals = "poisson"
rate = 300
hold = {{ dist = "exponential", mean = "1s" }}
{group}
{nat}
"#
    )
}

/// A fleet of one host is that host: the same streams (host 0's) drive it,
/// so every engine figure is the same, with or without a NAT.
#[test]
fn a_fleet_of_one_host_is_the_host() {
    for nat in [false, true] {
        let single = run(&one_host(false, nat));
        let fleet = run(&one_host(true, nat));
        assert!(single.failures > 0, "the case must reach exhaustion");
        assert_eq!(single.attempts, fleet.attempts, "nat {nat}");
        assert_eq!(single.failures, fleet.failures, "nat {nat}");
        assert_eq!(
            single.first_failure.as_ref().map(|f| f.attempt),
            fleet.first_failure.as_ref().map(|f| f.attempt)
        );
        assert_eq!(single.ports.peak_in_use, fleet.ports.peak_in_use);
        assert_eq!(single.ports.mean_in_use, fleet.ports.mean_in_use);
        assert_eq!(single.ports.distinct_used, fleet.ports.distinct_used);
        assert_eq!(single.bursts.worst_10s, fleet.bursts.worst_10s);
        assert_eq!(single.bins, fleet.bins);
        assert_eq!(single.nats.len(), fleet.nats.len());
        for (a, b) in single.nats.iter().zip(&fleet.nats) {
            assert_eq!(a.failures, b.failures);
            assert_eq!(a.peak_mappings, b.peak_mappings);
            assert_eq!(a.ports_preserved, b.ports_preserved);
        }
        // The hosts report: one group, every failure where it happened.
        let g = &fleet.hosts[0];
        assert_eq!((g.name.as_str(), g.count), ("one", 1));
        assert_eq!(g.attempts, fleet.attempts);
        assert_eq!(g.failures, fleet.failures);
        let at_nat = fleet.nats.first().map_or(0, |n| n.failures);
        assert_eq!(g.failures_at["one"], fleet.failures - at_nat);
        let h = &single.hosts[0];
        assert_eq!(
            (h.name.as_str(), h.count, h.failures),
            ("host", 1, single.failures)
        );
    }
}

/// `count` hosts of `ports` ports each, constant arrivals at `rate` per host
/// and a hold longer than the run: each host establishes exactly `ports`
/// connections and every later attempt fails on that host.
fn never_closing(count: u32, ports: u32, rate: f64, extra: &str) -> String {
    format!(
        r#"
name = "full"
seed = 4
duration = "10s"
[host]
os = "generic"
allocator = "sequential"
port_range = "50000-{hi}"
[[destinations]]
address = "10.2.0.1:80"
[traffic]
arrivals = "constant"
rate = {rate}
hold = "1h"
connect_timeout = "0s"
[[hosts]]
name = "web"
count = {count}
{extra}
"#,
        hi = 50000 + ports - 1
    )
}

#[test]
fn each_host_runs_out_of_its_own_ports() {
    // 12 hosts × 20/s × 10 s: 200 attempts each, 50 ports each.
    let r = run(&never_closing(12, 50, 20.0, ""));
    assert_eq!(r.attempts, 12 * 200);
    assert_eq!(r.established, 12 * 50);
    assert_eq!(r.failures, 12 * 150);
    assert_eq!(r.hosts[0].failures_at["web"], 12 * 150);
    assert_eq!(r.hosts[0].peak_in_use_per_host, 50);
    assert_eq!(r.ports.peak_in_use, 12 * 50);
}

/// Ten hosts of 100 ports each behind one NAT of 500 ports toward one
/// destination: 60 connections per host fit on every host, but the NAT
/// serves 500 at once, so exactly 100 fail, all at the NAT.
#[test]
fn a_shared_nat_runs_out_before_its_hosts() {
    let nat =
        "via = \"gw\"\n[[nat]]\nname = \"gw\"\ntype = \"linux\"\nport_range = \"30000-30499\"";
    let r = run(&never_closing(10, 100, 6.0, nat));
    assert_eq!(r.attempts, 600);
    assert_eq!(r.established, 500);
    assert_eq!(r.failures, 100);
    let g = &r.hosts[0];
    assert_eq!(g.failures_at["gw"], 100);
    assert_eq!(g.failures_at["web"], 0);
    assert_eq!(r.nats[0].failures_by_cause.no_port, 100);
    assert_eq!(r.nats[0].peak_mappings, 500);
    // The summary names the NAT and clears the hosts.
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "f.toml", &never_closing(10, 100, 6.0, nat));
    let out = portsim()
        .args(["run", "--no-fixes"])
        .arg(&path)
        .assert()
        .success();
    let s = text(&out.get_output().stdout);
    assert!(s.contains("at the NAT gw (no port left)"), "{s}");
    assert!(s.contains("The web themselves never ran out."), "{s}");
    assert!(
        s.contains("hosts           web: 10 hosts, 600 attempts, 100 failed (100 at gw)"),
        "{s}"
    );
}

/// Two groups with the same narrow range behind a NAT that keeps source
/// ports where it can, with the same range: their port numbers collide at
/// the NAT, which has 100 reply tuples toward the one destination, so
/// exactly 100 of the 160 connections are established; every port number
/// is kept at most once.
#[test]
fn colliding_host_ranges_share_the_nats_ports() {
    let text = r#"
name = "collide"
seed = 2
duration = "10s"
[host]
os = "linux"
port_range = "40000-40099"
via = "gw"
[[destinations]]
address = "10.3.0.1:443"
[traffic]
arrivals = "constant"
rate = 8
hold = "1h"
connect_timeout = "0s"
[[hosts]]
name = "a"
[[hosts]]
name = "b"
addresses = ["10.0.9.1"]
[[nat]]
name = "gw"
type = "linux"
port_range = "40000-40099"
"#;
    let r = run(text);
    assert_eq!(r.attempts, 160);
    assert_eq!(r.established, 100);
    assert_eq!(r.failures, 60);
    assert_eq!(r.nats[0].failures, 60);
    assert!(r.nats[0].ports_preserved <= 100);
    assert_eq!(r.hosts.len(), 2);
    assert_eq!(r.hosts[0].attempts + r.hosts[1].attempts, 160);
    assert_eq!(r.hosts[0].failures_at["a"] + r.hosts[1].failures_at["b"], 0);
}

/// Little's law over a fleet: 20 hosts × 10/s with a constant 1 s hold and
/// 60 s TIME_WAIT hold λ·W ports, λ = 200/s, W = 61 s; averaged over a run
/// of H = 600 s from empty, E[mean] = λW(1 − W/(2H)) = 11,579.8. The time
/// average of a Poisson count over H with window W has a standard
/// deviation of about sqrt(λW · W/H) ≈ 35 (0.3 %); 2 % is six of them.
#[test]
fn littles_law_over_a_fleet() {
    let text = r#"
name = "little"
seed = 11
duration = "600s"
[host]
os = "linux"
time_wait = "60s"
[[destinations]]
address = "10.4.0.1:443"
[traffic]
arrivals = "poisson"
rate = 10
hold = "1s"
[[hosts]]
name = "api"
count = 20
"#;
    let r = run(text);
    assert_eq!(r.failures, 0);
    let (lambda, w, h) = (200.0, 61.0, 600.0);
    let expected = lambda * w * (1.0 - w / (2.0 * h));
    let rel = (r.ports.mean_in_use - expected).abs() / expected;
    assert!(rel < 0.02, "mean {} vs {expected}", r.ports.mean_in_use);
    // Attempts: a Poisson count of mean 120,000 (sd 346): within 6 sd.
    assert!(
        (r.attempts as f64 - 120_000.0).abs() < 6.0 * 346.0,
        "{}",
        r.attempts
    );
}

#[test]
fn a_fleet_is_deterministic_and_seeded() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "f.toml", &never_closing(5, 30, 7.0, ""));
    let json = |seed: &str| {
        let out = portsim()
            .args(["run", "--json", "--no-fixes", "--seed", seed])
            .arg(&path)
            .assert()
            .success();
        out.get_output().stdout.clone()
    };
    assert_eq!(json("3"), json("3"));
    let poisson = one_host(true, true).replace("count = 1", "count = 4");
    let a = run(&poisson);
    let b = run(&poisson.replace("seed = 9", "seed = 10"));
    assert_ne!(a.attempts, b.attempts);
}

#[test]
fn the_loader_refuses_bad_groups() {
    let base = never_closing(2, 10, 1.0, "");
    let cases: Vec<(String, &str)> = vec![
        (
            base.replace("count = 2", "count = 0"),
            "hosts[0].count: found 0; expected 1 to 1000000 hosts",
        ),
        (
            base.replace("count = 2", "count = 100000\naddresses = 4096"),
            "hosts[0].count: brings the hosts' source addresses to 409600000 in all",
        ),
        (
            format!("{base}[[hosts]]\nname = \"web\"\n"),
            "hosts[1].name: found \"web\", the name of hosts[0] too",
        ),
        (
            base.replace("count = 2", "count = 2\nportrange = \"1-2\""),
            "hosts[0].portrange: unknown key",
        ),
        (
            base.replace("count = 2", "count = 2\nvia = \"nope\""),
            "hosts[0].via: found \"nope\", but the file has no [[nat]] table",
        ),
        (
            format!("{base}[[hosts]]\nname = \"x\"\ntraffic = {{ rate = -1 }}\n"),
            "hosts[1].traffic.rate: found -1",
        ),
        (
            base.replace("count = 2", "count = 600000")
                .replace("name = \"full\"", "name = \"full\"\n")
                + "[[hosts]]\nname = \"more\"\ncount = 500000\n",
            "hosts[1].count: brings the hosts to 1100000 in all; at most 1000000 are allowed",
        ),
    ];
    let dir = tempfile::tempdir().unwrap();
    for (i, (text, want)) in cases.iter().enumerate() {
        let path = write(dir.path(), &format!("bad{i}.toml"), text);
        let out = portsim().arg("check").arg(&path).assert().code(2);
        let err = crate::util::text(&out.get_output().stderr);
        assert!(err.contains(want), "case {i}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "case {i}: {err}");
    }
    // A group's own port range refused at the group's key and line.
    let text = base.replace("count = 2", "count = 2\nport_range = \"9-3\"");
    let path = write(dir.path(), "line.toml", &text);
    let out = portsim().arg("check").arg(&path).assert().code(2);
    let err = crate::util::text(&out.get_output().stderr);
    let line = text.lines().position(|l| l.contains("9-3")).unwrap() + 1;
    assert!(
        err.contains(&format!("line.toml:{line}: hosts[0].port_range")),
        "{err}"
    );
    // A group named as a NAT: `failures_at` could not tell them apart.
    let text = base.replace("count = 2", "count = 2\nvia = \"web\"")
        + "[[nat]]\nname = \"web\"\ntype = \"linux\"\n";
    let path = write(dir.path(), "same.toml", &text);
    let out = portsim().arg("check").arg(&path).assert().code(2);
    let err = crate::util::text(&out.get_output().stderr);
    assert!(
        err.contains("hosts[0].name: found \"web\", the name of nat[0] too"),
        "{err}"
    );
    // A NAT no group reaches.
    let text = format!("{base}[[nat]]\nname = \"lost\"\ntype = \"linux\"\n");
    let path = write(dir.path(), "lost.toml", &text);
    let out = portsim().arg("check").arg(&path).assert().code(2);
    let err = crate::util::text(&out.get_output().stderr);
    assert!(
        err.contains("host.via: missing; the file has [[nat]] tables"),
        "{err}"
    );
}

/// `max_tw_buckets` bounds each host's TIME_WAIT entries, not the fleet's:
/// three hosts of 40 buckets each, 10 connects a second each closing after
/// 100 ms, hold 3 × 40 entries at the peak and skip TIME_WAIT only for
/// the closes past each host's 40th.
#[test]
fn max_tw_buckets_is_each_hosts_own() {
    let text = r#"
name = "buckets"
seed = 3
duration = "10s"
[host]
os = "linux"
time_wait = "60s"
max_tw_buckets = 40
[[destinations]]
address = "10.4.0.1:443"
[traffic]
arrivals = "constant"
rate = 10
hold = "100ms"
[[hosts]]
name = "api"
count = 3
"#;
    let r = run(text);
    // Constant arrivals: exactly 10/s × 10 s per host.
    assert_eq!(r.attempts, 300);
    assert_eq!(r.failures, 0);
    let closed = r.established - u64::from(r.ports.open_at_end);
    assert_eq!(r.ports.peak_time_wait, 3 * 40);
    assert_eq!(r.time_wait_skipped, closed - 3 * 40);
}

/// A group whose schedule starts late starts then: the random phase that
/// keeps hosts out of lockstep moves each host's arrivals earlier by less
/// than one interval (0.1 s at 10/s), never by the time before the start.
#[test]
fn a_late_schedule_starts_within_one_interval_of_its_start() {
    let text = r#"
name = "late"
seed = 5
duration = "200s"
[host]
os = "linux"
[[destinations]]
address = "10.4.0.1:443"
[traffic]
arrivals = "constant"
hold = "1s"
schedule = [{ at = "0s", rate = 0 }, { at = "100s", rate = 10 }]
[output]
bin = "100ms"
[[hosts]]
name = "api"
count = 8
"#;
    let r = run(text);
    assert_eq!(r.attempts, 8 * 1000);
    let early: u64 = r
        .series()
        .iter()
        .filter(|row| row.start_ns < 99_900_000_000)
        .map(|row| row.attempts)
        .sum();
    assert_eq!(early, 0, "no host connects before 99.9 s");
}

/// A fleet counts the reuse intervals of the first hosts of each group
/// only ([`portsim::sim::fleet::REUSE_HOSTS`]), and says so; every host
/// still counts its distinct ports. 40 hosts of 64 ports with a sequential
/// allocator, 20 connects a second for 20 s closing at once, no TIME_WAIT:
/// each host cycles through its 64 ports, so it uses all 64, and each
/// connect after its 64th reuses a port: (400 − 64) intervals per host.
#[test]
fn a_fleet_counts_reuse_intervals_of_its_first_hosts() {
    let text = r#"
name = "reuse"
seed = 8
duration = "20s"
[host]
os = "generic"
allocator = "sequential"
port_range = "50000-50063"
time_wait = "0s"
[[destinations]]
address = "10.4.0.1:443"
[traffic]
arrivals = "constant"
rate = 20
hold = "10ms"
[[hosts]]
name = "api"
count = 40
"#;
    let r = run(text);
    assert_eq!(r.attempts, 40 * 400);
    assert_eq!(r.ports.distinct_used, 40 * 64);
    let counted = u64::from(portsim::sim::fleet::REUSE_HOSTS);
    assert_eq!(r.reuse_interval_s.hosts, counted);
    assert_eq!(r.reuse_interval_s.count, counted * (400 - 64));
    let summary = portsim::report::summary::render(&r);
    assert!(summary.contains(", over 16 of 40 hosts)"), "{summary}");
}

/// The memory a fleet is expected to need grows with the ports its hosts
/// hold, beyond a few bits per port of the range: 100,000 hosts of 16,384
/// ports at 0.1/s are estimated under 0.75 bytes per port of the range in
/// all (a timestamp per port alone would be 8), within the default limit;
/// and ten times the rate adds exactly the connections and TIME_WAIT
/// entries ten times the rate holds (Little's law at twice the mean, no
/// more than the attempts: 32 and 48 bytes each).
#[test]
fn a_fleets_memory_follows_the_ports_it_holds() {
    let fleet = |rate: f64| {
        crate::util::scenario(&format!(
            r#"
name = "big"
seed = 1
duration = "10s"
[host]
os = "linux"
[[destinations]]
address = "10.4.0.1:443"
[traffic]
rate = {rate}
hold = "1s"
[[hosts]]
name = "api"
count = 100000
"#
        ))
    };
    let slow = portsim::limits::estimate(&fleet(0.1), false).memory;
    let fast = portsim::limits::estimate(&fleet(1.0), false).memory;
    let ports = 100_000.0 * 16_384.0;
    assert!(slow < 0.75 * ports, "{slow} bytes");
    assert!(slow < portsim::DEFAULT_MAX_MEMORY, "{slow} bytes");
    // Per host: open 2 × rate × 1 s and TIME_WAIT 2 × rate × 60 s, each
    // no more than the 10 s × rate attempts.
    let held = |rate: f64| {
        100_000.0 * (2.0 * rate * 1.0).min(10.0 * rate) * 32.0
            + 100_000.0 * (2.0 * rate * 60.0).min(10.0 * rate) * 48.0
    };
    let grown = fast - slow;
    let expected = held(1.0) - held(0.1);
    assert!(
        (grown - expected).abs() < 0.01 * expected,
        "grown {grown}, expected {expected}"
    );
}
