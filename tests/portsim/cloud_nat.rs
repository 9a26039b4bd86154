//! Cloud NATs (`aws-nat-gateway`, `azure-lb-outbound`, `azure-nat-gateway`,
//! `gcp-cloud-nat`): the vendors' published formulas hold in the
//! simulation at their boundary, exactly; hold timers to the nanosecond;
//! per-host blocks never exceeded; runs deterministic.
//!
//! The fleets here open long-held connections at a constant rate with
//! `connect_timeout = "0s"`, so every connect the NAT refuses fails at
//! once and the counts are exact.

use crate::util::run;
use portsim::report::NatReport;

/// `hosts` hosts each opening `per_host` connections (one a second, for
/// `per_host` seconds, held 100 hours) to `dests` destinations in turn,
/// through `nat`.
fn fleet(hosts: u32, per_host: u32, dests: u32, nat: &str) -> String {
    let mut d = String::new();
    for i in 0..dests {
        d.push_str(&format!(
            "[[destinations]]\naddress = \"10.60.0.{}:443\"\n",
            i + 5
        ));
    }
    format!(
        r#"
name = "cloud"
seed = 3
duration = "{per_host}s"
[host]
os = "linux"
port_range = "1024-65535"
{d}
[traffic]
arrivals = "constant"
hold = "100h"
pick = "round-robin"
connect_timeout = "0s"
[[hosts]]
name = "vms"
count = {hosts}
addresses = ["10.30.0.11"]
traffic = {{ rate = 1 }}
via = "nat"
[[nat]]
name = "nat"
{nat}
"#
    )
}

fn nat(text: &str) -> NatReport {
    let r = run(text);
    r.nats.into_iter().next().expect("one NAT")
}

/// The connections each host opens: with the fleet's random phase, a
/// host at 1/s for `n` s opens `n` (the k-th at k − phase seconds).
fn per_host_attempts(n: &NatReport, hosts: u32, per_host: u32) {
    assert_eq!(n.attempts, u64::from(hosts) * u64::from(per_host));
}

/// AKS: max nodes = 64,000 × outbound addresses ÷ ports per node; with
/// 1,000 ports and 2 addresses, 128 hosts get blocks and the 129th none.
#[test]
fn aks_formula_gives_128_hosts_a_block_and_the_129th_none() {
    let lb = "type = \"azure-lb-outbound\"\naddresses = 2\nports_per_host = 1000";
    for (hosts, without) in [(128u32, 0u32), (129, 1), (131, 3)] {
        let n = nat(&fleet(hosts, 3, 1, lb));
        per_host_attempts(&n, hosts, 3);
        assert_eq!(n.hosts_without_ports, without, "{hosts} hosts");
        assert_eq!(n.failures_by_cause.no_block, u64::from(without) * 3);
        assert_eq!(n.failures, u64::from(without) * 3);
        let c = n.cloud.expect("cloud figures");
        assert_eq!(c.ports_per_host, 1000);
        assert_eq!(c.formula.hosts_served, Some(128));
        let on_each: Vec<u32> = c.per_address.iter().map(|a| a.hosts).collect();
        assert_eq!(
            on_each,
            [64, 64],
            "addresses are filled one after the other"
        );
    }
}

/// The Azure default table: 48 instances get 1,024 ports each, 52 get 512;
/// each host fits exactly its block of connections to one destination.
#[test]
fn azure_default_table_gives_48_hosts_1024_and_52_hosts_512() {
    let lb = "type = \"azure-lb-outbound\"";
    for (hosts, block) in [(48u32, 1024u32), (52, 512)] {
        let n = nat(&fleet(hosts, block + 1, 1, lb));
        let c = n.cloud.as_ref().expect("cloud figures");
        assert_eq!(c.ports_per_host, block, "{hosts} hosts");
        assert_eq!(c.peak_ports_used_per_host, block);
        assert_eq!(n.hosts_without_ports, 0);
        // One connection too many per host, refused for want of a port.
        assert_eq!(n.failures_by_cause.no_port, u64::from(hosts));
        assert_eq!(n.failures, u64::from(hosts));
        // Lowest free port first: the first host's block is used from its
        // start, so exactly hosts × block distinct ports.
        assert_eq!(n.distinct_ports, u64::from(hosts) * u64::from(block));
    }
}

/// Cloud NAT static allocation: 1 address at 64 ports per VM serves
/// 64,512 ÷ 64 = 1,008 VMs; the 1,009th gets none.
#[test]
fn cloud_nat_static_serves_1008_vms_on_one_address() {
    let gcp = "type = \"gcp-cloud-nat\"\naddresses = 1";
    let n = nat(&fleet(1009, 65, 1, gcp));
    assert_eq!(n.hosts_without_ports, 1);
    assert_eq!(n.failures_by_cause.no_block, 65);
    // Every served VM fits 64 connections to one destination, not 65.
    assert_eq!(n.failures_by_cause.no_port, 1008);
    assert_eq!(n.failures, 1008 + 65);
    let c = n.cloud.expect("cloud figures");
    assert_eq!(c.formula.hosts_served, Some(1008));
    assert_eq!(c.peak_ports_used_per_host, 64);
    assert_eq!(c.per_address[0].peak_in_use, 64_512);
}

/// AWS: 55,000 concurrent connections per address to one destination;
/// 110,000 with two addresses; twice that again over two destinations.
#[test]
fn aws_allows_55000_per_address_and_destination() {
    // 4 hosts × 13,751 = 55,004 connections to one destination.
    for (addresses, dests, hosts) in [(1u32, 1u32, 4u32), (2, 1, 8), (2, 2, 16)] {
        let aws = format!("type = \"aws-nat-gateway\"\naddresses = {addresses}");
        let n = nat(&fleet(hosts, 13_751, dests, &aws));
        let offered = u64::from(hosts) * 13_751;
        let allowed = 55_000 * u64::from(addresses) * u64::from(dests);
        assert_eq!(n.attempts, offered);
        assert_eq!(
            n.failures,
            offered - allowed,
            "{addresses} addresses, {dests} destinations"
        );
        assert_eq!(n.failures_by_cause.per_destination, offered - allowed);
        assert_eq!(n.peak_mappings, allowed);
        let c = n.cloud.expect("cloud figures");
        assert_eq!(c.peak_per_destination, 55_000);
        assert_eq!(
            c.formula.per_destination,
            Some(55_000 * u64::from(addresses))
        );
    }
}

/// One host, one outside port: a connection every 2 s held 1 s frees its
/// port at the hold's end, to the nanosecond: a hold after close of 1 s
/// lets every connection through, 1 s and 1 ns lets only every other.
#[test]
fn hold_after_close_is_honoured_to_the_nanosecond() {
    let text = |hold: &str| {
        format!(
            r#"
name = "hold"
seed = 1
duration = "100s"
[host]
os = "linux"
via = "nat"
[[destinations]]
address = "10.60.0.5:443"
[traffic]
arrivals = "constant"
rate = 0.5
hold = "1s"
connect_timeout = "0s"
[[nat]]
name = "nat"
type = "aws-nat-gateway"
port_range = "2000-2000"
hold_after_close = "{hold}"
"#
        )
    };
    let exact = run(&text("1s"));
    assert_eq!(exact.attempts, 50);
    assert_eq!(exact.failures, 0);
    let late = run(&text("1s 1ns"));
    assert_eq!(late.attempts, 50);
    // The first connection gets the port; the next finds it held 1 ns
    // more; the one after gets it again.
    assert_eq!(late.failures, 25);
    assert_eq!(late.nats[0].failures_by_cause.no_port, 25);
}

/// Azure NAT gateway: the 50,000 per address to one destination, and its
/// hold timers in the report.
#[test]
fn azure_nat_gateway_caps_50000_per_destination() {
    let n = nat(&fleet(
        4,
        12_501,
        1,
        "type = \"azure-nat-gateway\"\naddresses = 1",
    ));
    assert_eq!(n.failures, 4 * 12_501 - 50_000);
    assert_eq!(n.failures_by_cause.per_destination, 4);
    let c = n.cloud.expect("cloud figures");
    assert_eq!(
        (c.hold_s.fin, c.hold_s.rst, c.hold_s.half_open),
        (65.0, 16.0, 30.0)
    );
}

/// Per-host blocks are never exceeded, whatever the load, and a run is
/// the same twice.
#[test]
fn blocks_are_never_exceeded_and_runs_repeat() {
    let text = fleet(
        30,
        200,
        3,
        "type = \"gcp-cloud-nat\"\nmin_ports_per_host = 32\nmax_ports_per_host = 128",
    );
    let a = run(&text);
    let b = run(&text);
    assert_eq!(a.to_json(), b.to_json());
    let n = &a.nats[0];
    let c = n.cloud.as_ref().expect("cloud figures");
    assert!(c.max_ports_per_host <= 128);
    assert!(
        c.fullest_block[0] <= c.fullest_block[1],
        "{:?}",
        c.fullest_block
    );
    // 200 connections over 3 destinations need 67 ports toward one: the
    // block doubles 32 → 64 → 128 and then holds them all.
    assert_eq!(c.max_ports_per_host, 128);
    assert!(c.peak_ports_used_per_host <= 3 * 128);
    assert_eq!(c.blocks_grown, 60);
    // Each doubling drops the flows that find no port while it is in
    // flight (1 s: the next flow to that destination, 3 s later, finds
    // the bigger block).
    assert_eq!(n.failures, n.failures_by_cause.allocation_in_flight);
    assert_eq!(n.failures, 60);
}

// The shipped cloud NAT scenarios, each modelled on an incident: loaded
// from scenarios/ and checked for the incident's shape, with figures
// derived from the vendors' rules. A variant is the file's text with one
// line changed, as a user would change it.

/// The text of a shipped scenario.
fn shipped(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `text` with `from` replaced by `to`, which must be there exactly once.
fn with(text: &str, from: &str, to: &str) -> String {
    assert_eq!(text.matches(from).count(), 1, "`{from}` once in the file");
    text.replacen(from, to, 1)
}

/// The NAT called `name` in `r`.
fn nat_named<'a>(r: &'a portsim::Report, name: &str) -> &'a NatReport {
    r.nats
        .iter()
        .find(|n| n.name == name)
        .unwrap_or_else(|| panic!("no NAT {name}"))
}

/// Every failure of `r` was at NAT `name`, none on the hosts' own ports.
fn all_failures_at(r: &portsim::Report, name: &str) {
    let n = nat_named(r, name);
    assert_eq!(n.failures, r.failures, "every failure at {name}");
    for g in &r.hosts {
        assert_eq!(g.failures_at[&g.name], 0, "{}: own ports", g.name);
        assert_eq!(g.failures_at[name], g.failures, "{}", g.name);
    }
    assert_eq!(r.first_failure.as_ref().map(|f| f.at.as_str()), Some(name));
}

/// golang/go#52545: 256 Cloud NAT ports per VM run out toward github.com
/// (OUT_OF_RESOURCES: no port in the VM's block); 2,048, the minimum the
/// builders moved to, drops nothing.
#[test]
fn go_builders_run_out_at_256_ports_per_vm_and_not_at_2048() {
    let text = shipped("cloud-nat-go-builders.toml");
    let r = run(&text);
    let n = nat_named(&r, "cloud-nat");
    all_failures_at(&r, "cloud-nat");
    assert!(r.failures > 0);
    assert_eq!(n.failures_by_cause.no_port, n.failures);
    assert_eq!(n.hosts_without_ports, 0);
    let c = n.cloud.as_ref().expect("cloud figures");
    assert_eq!(c.failure_metric, "OUT_OF_RESOURCES drops");
    assert_eq!((c.hosts, c.ports_per_host), (40, 256));
    // Every VM's block fills: 40 × 256 ports toward github.com, on the
    // first address (addresses in turn).
    assert_eq!(c.peak_ports_used_per_host, 256);
    assert_eq!(n.peak_mappings, 40 * 256);
    // Google's rule: 2 × 64,512 ÷ 256 = 504 VMs.
    assert_eq!(c.formula.hosts_served, Some(2 * 64_512 / 256));

    let fixed = run(&with(
        &text,
        "min_ports_per_host = 256",
        "min_ports_per_host = 2048",
    ));
    assert_eq!(fixed.attempts, r.attempts, "the same arrivals");
    assert_eq!(fixed.failures, 0);
    let n = nat_named(&fixed, "cloud-nat");
    assert_eq!(n.syns_dropped, 0);
    let c = n.cloud.as_ref().expect("cloud figures");
    assert_eq!(c.formula.hosts_served, Some(2 * 64_512 / 2048));
    assert!(c.peak_ports_used_per_host < 2048);
}

/// gitlab.com infra#10629: 14 addresses at 2,048 ports per VM serve
/// 14 × 64,512 ÷ 2,048 = 441 VMs by Google's rule (GitLab's own count,
/// with 65,536 ports an address, was 448); all 280 get a block, and the
/// only NAT errors are the Sidekiq VMs' toward the SMTP relay. 4,096 ports
/// leave 280 − 220 VMs without any; dynamic allocation up to 4,096 ends
/// the failures.
#[test]
fn gitlab_fits_280_vms_and_only_the_relay_overflows() {
    let text = shipped("cloud-nat-gitlab.toml");
    let r = run(&text);
    let n = nat_named(&r, "cloud-nat");
    let c = n.cloud.as_ref().expect("cloud figures");
    assert_eq!(c.formula.hosts_served, Some(14 * 64_512 / 2048));
    assert_eq!(c.formula.hosts_served, Some(441));
    assert_eq!((c.hosts, c.ports_per_host), (280, 2048));
    assert_eq!(n.hosts_without_ports, 0);
    all_failures_at(&r, "cloud-nat");
    assert!(r.failures > 0);
    assert_eq!(n.failures_by_cause.no_port, n.failures);
    let fleet = r.hosts.iter().find(|g| g.name == "fleet").expect("fleet");
    assert_eq!(fleet.failures, 0, "the thin fan-out never runs out");
    let relay = r
        .destinations
        .iter()
        .find(|d| d.address == "192.0.2.25:587")
        .expect("the relay");
    assert_eq!(relay.failures, r.failures, "every failure toward the relay");
    // A baseline of NAT errors: most dropped SYNs get through on a
    // retransmission, few connects fail.
    assert!(n.syns_dropped > 10 * n.failures, "{} SYNs", n.syns_dropped);

    let bigger = run(&with(
        &text,
        "min_ports_per_host = 2048",
        "min_ports_per_host = 4096",
    ));
    let n = nat_named(&bigger, "cloud-nat");
    let served = 14 * 64_512 / 4096;
    assert_eq!(n.cloud.as_ref().unwrap().formula.hosts_served, Some(served));
    assert_eq!(u64::from(n.hosts_without_ports), 280 - served);
    assert!(n.failures_by_cause.no_block > 0);

    let dynamic = run(&with(
        &text,
        "min_ports_per_host = 2048",
        "min_ports_per_host = 2048\nmax_ports_per_host = 4096",
    ));
    assert_eq!(dynamic.failures, 0);
    let n = nat_named(&dynamic, "cloud-nat");
    assert_eq!(n.hosts_without_ports, 0);
    let c = n.cloud.as_ref().unwrap();
    assert!(c.blocks_grown > 0);
    assert_eq!(c.max_ports_per_host, 4096);
}

/// Azure/AKS#2220, on the default table: 48 nodes get 1,024 ports and
/// never fail; at 10 min 52 nodes get 512 and connects fail at the load
/// balancer, no port left in the node's block, and at no other layer.
#[test]
fn aks_scale_out_fails_only_after_the_table_halves_the_blocks() {
    let text = shipped("aks-scale-out.toml");
    let r = run(&text);
    let n = nat_named(&r, "outbound");
    all_failures_at(&r, "outbound");
    assert!(r.failures > 0);
    assert_eq!(n.failures_by_cause.no_port, n.failures);
    // Nothing dropped before the scale-out, not even a SYN.
    let first_drop = n.first_failure_s.expect("a SYN dropped");
    assert!(first_drop >= 600.0, "first drop at {first_drop} s");
    assert!(r.first_failure.as_ref().unwrap().time_s >= 600.0);
    let c = n.cloud.as_ref().expect("cloud figures");
    assert_eq!(c.failure_metric, "SnatConnectionCount (Failed)");
    assert_eq!(c.hosts, 52);
    assert_eq!((c.ports_per_host, c.min_ports_per_host), (1024, 512));
    assert_eq!(c.formula.ports_per_host, Some(512));
    assert_eq!(c.hold_s.fin, 240.0);
    // The halving takes back ports under open flows, which are dropped.
    assert!(c.flows_dropped_by_scale > 0);
    assert_eq!(n.hosts_without_ports, 0);

    // Without the scale-out the same nodes never fail.
    let steady = run(&with(&text, "scale = [{ at = \"10m\", count = 52 }]", ""));
    assert_eq!(steady.failures, 0);
    assert_eq!(nat_named(&steady, "outbound").syns_dropped, 0);
}

/// Bedrock Streaming's load test: 1,000 new connections a second to one
/// destination through one address pass AWS's 55,000 per address and
/// destination (per_destination, ErrorPortAllocation); a second address
/// doubles the cap and nothing fails.
#[test]
fn aws_gateway_hits_the_per_destination_cap_with_one_address_not_two() {
    let text = shipped("aws-nat-gateway-pods.toml");
    let r = run(&text);
    let n = nat_named(&r, "nat-gateway");
    all_failures_at(&r, "nat-gateway");
    assert!(r.failures > 0);
    assert_eq!(n.failures_by_cause.per_destination, n.failures);
    assert_eq!(n.failures_by_cause.no_port, 0);
    let c = n.cloud.as_ref().expect("cloud figures");
    assert_eq!(c.failure_metric, "ErrorPortAllocation");
    assert_eq!(c.per_destination_limit, Some(55_000));
    assert_eq!(c.peak_per_destination, 55_000);
    assert_eq!(n.peak_mappings, 55_000);
    assert_eq!(c.formula.per_destination, Some(55_000));
    // No port comes back before a connection's 60 s hold after close ends,
    // so the cap is reached by the first 55,000 connections: about 55 s
    // of Poisson arrivals at 1,000 a second (standard deviation 0.23 s),
    // before the first hold can end.
    let first_drop = n.first_failure_s.expect("a SYN dropped");
    assert!(
        (54.0..60.0).contains(&first_drop),
        "first drop at {first_drop} s"
    );

    let two = run(&with(
        &text,
        "addresses = [\"203.0.113.10\"]",
        "addresses = [\"203.0.113.10\", \"203.0.113.11\"]",
    ));
    assert_eq!(two.failures, 0);
    let n = nat_named(&two, "nat-gateway");
    assert_eq!(n.syns_dropped, 0);
    let c = n.cloud.as_ref().unwrap();
    assert_eq!(c.formula.per_destination, Some(110_000));
    assert!(c.peak_per_destination < 55_000);
}

/// Pods → node MASQUERADE → Cloud NAT: Cloud NAT sees the three nodes'
/// addresses as three VMs of 64 ports; every failure is there, none at the
/// nodes' own NATs (64,512 ports each) or the pods; 2,048 ports per VM
/// end them.
#[test]
fn stacked_nodes_run_out_at_cloud_nat_not_at_their_masquerade() {
    let text = shipped("stacked-node-cloud-nat.toml");
    let r = run(&text);
    all_failures_at(&r, "cloud-nat");
    assert!(r.failures > 0);
    let n = nat_named(&r, "cloud-nat");
    assert_eq!(n.failures_by_cause.no_port, n.failures);
    let c = n.cloud.as_ref().expect("cloud figures");
    assert_eq!((c.hosts, c.ports_per_host), (3, 64));
    assert_eq!(c.peak_ports_used_per_host, 64);
    assert_eq!(n.peak_mappings, 3 * 64);
    assert_eq!(c.formula.hosts_served, Some(64_512 / 64));
    for node in ["node-a", "node-b", "node-c"] {
        let l = nat_named(&r, node);
        assert_eq!((l.failures, l.syns_dropped), (0, 0), "{node}");
        assert!(l.cloud.is_none());
    }
    for g in &r.hosts {
        assert_eq!(g.count, 10, "{}", g.name);
    }

    let fixed = run(&with(
        &text,
        "addresses = 1                 # one NAT address",
        "addresses = 1\nmin_ports_per_host = 2048",
    ));
    assert_eq!(fixed.failures, 0);
    assert_eq!(nat_named(&fixed, "cloud-nat").syns_dropped, 0);
}

/// The summary's sizing answer for a cloud NAT: what the fixes found it
/// needs, when it fails as set, the vendor's rule beside it and why they
/// differ (the AWS hold after close: 1,000/s to one destination, each
/// call a lognormal of median 150 ms and p99 1 s, mean 209 ms, is 209
/// connections open by AWS's count and 60,209 ports held).
#[test]
fn the_summary_sizes_the_nat_beside_the_vendors_rule() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let out = crate::util::portsim()
        .args([
            "run",
            "scenarios/aws-nat-gateway-pods.toml",
            "--charts",
            "html",
            "--out",
        ])
        .arg(dir.path())
        .output()
        .expect("runs");
    let text = crate::util::text(&out.stdout);
    let sizing: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("sizing"))
        .collect();
    assert!(sizing.len() >= 3, "{text}");
    assert!(
        sizing[0].contains("needs 2 NAT addresses; with 1 address it first drops a SYN at"),
        "{}",
        sizing[0]
    );
    assert!(
        sizing[1].contains(
            "AWS NAT gateway's rule: 55,000 concurrent connections per address per destination"
        ),
        "{}",
        sizing[1]
    );
    assert!(sizing[1].contains("need 1 address"), "{}", sizing[1]);
    assert!(
        sizing[2].contains("each closed one keeps its port 60 s more"),
        "{}",
        sizing[2]
    );
    // The page says it too.
    let page = std::fs::read_to_string(dir.path().join("report.html")).expect("report.html");
    assert!(
        page.contains("<li>nat-gateway needs 2 NAT addresses;"),
        "the page's sizing"
    );
}

/// `capacity` searches a cloud NAT's own keys, within their kinds: Cloud
/// NAT's ports per VM over powers of two, Azure's ports per instance over
/// multiples of 8 and below the block that leaves a host without one
/// (1,230 for 52 hosts on one address), each beside the vendor's rule.
#[test]
fn capacity_searches_the_nat_keys_within_their_kinds() {
    let json = |args: &[&str]| -> serde_json::Value {
        let out = crate::util::portsim().args(args).output().expect("runs");
        assert!(out.status.success(), "{}", crate::util::text(&out.stderr));
        serde_json::from_slice(&out.stdout).expect("capacity.json")
    };
    let gcp = json(&[
        "capacity",
        "scenarios/cloud-nat-go-builders.toml",
        "--vary",
        "nat.0.min_ports_per_host",
        "--seeds",
        "2",
        "--quiet",
        "--json",
    ]);
    assert_eq!(gcp["direction"], "smallest");
    for v in gcp["per_seed"].as_array().expect("per seed") {
        let v = v.as_f64().expect("a value") as u64;
        assert!(v.is_power_of_two(), "{v}");
        // The run's 256 fails; 2,048, the fix Go applied, is not needed.
        assert!((512..2048).contains(&v), "{v}");
    }
    // 2 × 64,512 ÷ 40 VMs.
    assert_eq!(gcp["vendor"]["value"], 3225.0);
    let azure = json(&[
        "capacity",
        "scenarios/aks-scale-out.toml",
        "--vary",
        "nat.0.ports_per_host",
        "--seeds",
        "2",
        "--quiet",
        "--json",
    ]);
    for v in azure["per_seed"].as_array().expect("per seed") {
        let v = v.as_f64().expect("a value") as u64;
        assert_eq!(v % 8, 0, "{v}");
        // Above what a node holds on average (3/s × 242 s = 726), below
        // the largest block 52 nodes fit.
        assert!((726..=1230).contains(&v), "{v}");
    }
    assert_eq!(azure["vendor"]["value"], 1230.0);
}

/// UDP through a cloud NAT: a flow's mapping outlives the flow by the
/// NAT's UDP timeout. Two outside ports, a 1 s query every 2 s: with
/// AWS's 350 s idle timeout only the first two of 50 get through; with
/// Cloud NAT's UDP timeout set to 1 s, all do (a port is free again at
/// the next query).
#[test]
fn udp_mappings_last_the_nats_udp_timeout() {
    let text = |nat: &str| {
        format!(
            r#"
name = "udp"
seed = 1
duration = "100s"
[host]
os = "linux"
via = "nat"
[[destinations]]
address = "8.8.8.8:53"
[traffic]
protocol = "udp"
arrivals = "constant"
rate = 0.5
hold = "1s"
[[nat]]
name = "nat"
port_range = "2000-2001"
{nat}
"#
        )
    };
    let aws = run(&text("type = \"aws-nat-gateway\""));
    assert_eq!(aws.attempts, 50);
    assert_eq!(aws.failures, 48);
    assert_eq!(aws.nats[0].failures_by_cause.no_port, 48);
    let gcp = run(&text(
        "type = \"gcp-cloud-nat\"\nmin_ports_per_host = 2\ntimeouts = { udp = \"1s\" }",
    ));
    assert_eq!(gcp.attempts, 50);
    assert_eq!(gcp.failures, 0);
}

/// The DNS scenario: each node's 64 ports toward the resolver fill (20
/// queries/s held 30 s after each is about 600), every drop is Cloud NAT's,
/// and 1,024 ports per VM end them.
#[test]
fn dns_through_cloud_nat_fills_each_vms_block() {
    let text = std::fs::read_to_string("scenarios/cloud-nat-dns.toml").expect("shipped");
    let r = run(&text);
    let n = &r.nats[0];
    assert!(r.failures > 0);
    assert_eq!(n.failures, r.failures);
    assert_eq!(n.failures_by_cause.no_port, r.failures);
    let c = n.cloud.as_ref().expect("cloud figures");
    assert_eq!(c.peak_ports_used_per_host, 64);
    assert_eq!(n.peak_mappings, 50 * 64);
    // The summary counts flows, not connection attempts.
    let summary = portsim::report::summary::render(&r);
    let hosts = format!(
        "hosts           nodes: 50 hosts, {} flows, ",
        portsim::report::summary::thousands(r.attempts)
    );
    assert!(summary.contains(&hosts), "{summary}");
    let fixed = run(&text.replace(
        "addresses = 1\n",
        "addresses = 1\nmin_ports_per_host = 1024\n",
    ));
    assert_eq!(fixed.failures, 0);
}

/// The cloud NAT chart: a row per outside address and one for the fullest
/// block, never past its size (Cloud NAT static: 64 of 64
/// for the DNS scenario, whose every VM fills its block).
#[test]
fn the_cloud_nat_chart_shows_addresses_and_the_busiest_block() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    crate::util::run_out(
        std::path::Path::new("scenarios/cloud-nat-dns.toml"),
        dir.path(),
        &["--no-fixes", "--charts", "svg"],
    )
    .success();
    let svg = std::fs::read_to_string(dir.path().join("cloud_nats.svg")).expect("the chart");
    assert!(svg.contains("cloud-nat · 203.0.113.1"), "an address row");
    assert!(
        svg.contains("3,200 of 64,512, 50 hosts with a block"),
        "its peak and hosts"
    );
    assert!(svg.contains("cloud-nat · fullest block"), "the block row");
    assert!(
        svg.contains("64 of 64 ports of one host"),
        "the fullest block, full"
    );
}

/// With the server closing first behind a NAT, the TIME_WAIT line speaks
/// of the tuples the server sees: a Linux NAT's count of tuples handed out
/// again inside the server's TIME_WAIT, and a cloud NAT's hold after a FIN
/// against it (Cloud NAT's 120 s outlasts the server's 60 s).
#[test]
fn the_time_wait_line_speaks_of_the_nats_tuples_behind_a_nat() {
    let text = |nat: &str| {
        format!(
            r#"
name = "server-close"
seed = 1
duration = "60s"
[host]
os = "linux"
via = "nat"
[[destinations]]
address = "10.60.0.5:443"
[traffic]
arrivals = "constant"
rate = 1
hold = "1s"
close = "server"
[[nat]]
name = "nat"
port_range = "2000-2009"
{nat}
"#
        )
    };
    let r = run(&text("type = \"linux\"\ntimeouts = { time_wait = \"0\" }"));
    let n = r.nats[0].stale_reuse;
    // 60 connects over 10 ports, each free again at once at the NAT: all
    // but the first 10 take a tuple the server closed within 60 s.
    assert!(n >= 40, "{n}");
    let line = portsim::report::summary::render(&r);
    assert!(
        line.contains(&format!(
            "the server sees the NATs' outside tuples; {} connects got one a Linux NAT's last connection on it left in the server's 60 s TIME_WAIT",
            n
        )),
        "{line}"
    );
    let r = run(&text("type = \"gcp-cloud-nat\"\nmin_ports_per_host = 8"));
    let line = portsim::report::summary::render(&r);
    assert!(
        line.contains("a cloud NAT holds one 2.0 min after a FIN, at least the server's 60 s, so none comes back inside it"),
        "{line}"
    );
}
