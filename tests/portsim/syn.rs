//! SYN retransmissions: a connect whose SYN a NAT drops waits in SYN_SENT,
//! holding its port, and retransmits on Linux's schedule (1 s, then 1 s
//! four more times, then doubling; ETIMEDOUT 131 s after the first SYN with
//! `tcp_syn_retries` 6 and `tcp_syn_linear_timeouts` 4), or gives up at
//! `traffic.connect_timeout`. Every case is deterministic: constant
//! arrivals, constant holds, the `sequential` allocator.

use crate::util::run;

/// A host with a wide range behind a NAT named `gw` of `ports` ports,
/// `n` connects at 10/s held `hold`, and `extra` lines.
fn case(ports: u32, n: u32, hold: &str, traffic: &str, nat: &str) -> String {
    format!(
        r#"
name = "syn"
seed = 3
max_connections = {n}
[host]
os = "linux"
allocator = "sequential"
port_range = "50000-50999"
via = "gw"
[[destinations]]
address = "10.9.9.9:443"
[traffic]
arrivals = "constant"
rate = 10
hold = "{hold}"
{traffic}
[[nat]]
name = "gw"
type = "linux"
port_range = "40000-{hi}"
{nat}
"#,
        hi = 40000 + ports - 1
    )
}

/// 20 connects through 10 NAT ports held for good: the last 10 are each
/// dropped 11 times (the SYN and 10 retransmissions) and fail 131 s after
/// their first SYN, holding their host port until then.
#[test]
fn a_dropped_connect_retries_for_131_s_then_fails() {
    let r = run(&case(10, 20, "1000h", "", ""));
    assert_eq!((r.attempts, r.established, r.failures), (20, 10, 10));
    assert_eq!(r.connecting_at_end, 0);
    let f = r.first_failure.as_ref().unwrap();
    // The 11th connect's first SYN at 1.1 s.
    assert!((f.time_s - 132.1).abs() < 1e-9, "{}", f.time_s);
    assert_eq!(f.at, "gw");
    let n = &r.nats[0];
    assert_eq!((n.attempts, n.failures, n.syns_dropped), (20, 10, 110));
    assert_eq!(n.failures_by_cause.no_port, 10);
    assert_eq!(r.connect_delay_s.waited, 0);
    // Every connect holds a host port: 10 connected, 10 in SYN_SENT.
    assert_eq!(r.ports.peak_in_use, 20);
    assert_eq!(r.hosts[0].failures_at["gw"], 10);
    assert_eq!(r.hosts[0].failures_at["host"], 0);
}

/// One NAT port; the first connection (at 0.1 s) closes at 2.6 s and
/// conntrack holds it 100 ms more, so the port is free from 2.7 s. The
/// second connect (first SYN at 0.2 s) is dropped at 0.2, 1.2 and 2.2 s and
/// gets through with its retransmission at 3.2 s: 3 s late.
#[test]
fn a_retransmission_gets_through_once_the_port_is_free() {
    let nat = r#"timeouts = { time_wait = "100ms" }"#;
    let r = run(&case(1, 2, "2.5s", "", nat));
    assert_eq!((r.established, r.failures, r.connecting_at_end), (2, 0, 0));
    assert_eq!(r.nats[0].syns_dropped, 3);
    assert_eq!(r.nats[0].failures, 0);
    let d = &r.connect_delay_s;
    assert_eq!(d.waited, 1);
    assert!((d.max - 3.0).abs() < 0.01, "{d:?}");
    // A 2 s connect timeout gives up at 2.2 s, before the port is free.
    let r = run(&case(1, 2, "2.5s", "connect_timeout = \"2s\"", nat));
    assert_eq!((r.established, r.failures), (1, 1));
    assert!((r.first_failure.as_ref().unwrap().time_s - 2.2).abs() < 1e-9);
    assert_eq!(r.nats[0].syns_dropped, 2);
    assert_eq!(r.connect_delay_s.waited, 0);
    // Without linear timeouts the retransmissions come at 1.2 and 3.2 s: the
    // same 3 s, with one SYN fewer dropped.
    let r = run(&case(1, 2, "2.5s", "", nat)
        .replace("via = \"gw\"", "via = \"gw\"\nsyn_linear_timeouts = 0"));
    assert_eq!(r.nats[0].syns_dropped, 2);
    assert!((r.connect_delay_s.max - 3.0).abs() < 0.01);
}

/// Two NATs: `node` lets the second connect through, `gw` (one port)
/// drops it. Each retransmission matches node's unreplied entry and keeps
/// its mapping: node hands out 2 ports, not one per SYN, and counts 2
/// connects.
#[test]
fn an_upstream_nat_keeps_its_mapping_for_the_retransmissions() {
    let text = case(1, 2, "1000h", "connect_timeout = \"4500ms\"", "")
        .replace("via = \"gw\"", "via = \"node\"")
        + "[[nat]]\nname = \"node\"\ntype = \"linux\"\nmode = \"random-fully\"\nvia = \"gw\"\n";
    let r = run(&text);
    assert_eq!((r.established, r.failures), (1, 1));
    let node = r.nats.iter().find(|n| n.name == "node").unwrap();
    let gw = r.nats.iter().find(|n| n.name == "gw").unwrap();
    assert_eq!(
        (node.attempts, node.syns_dropped, node.distinct_ports),
        (2, 0, 2)
    );
    // SYN at 0.2 s, retransmissions at 1.2, 2.2, 3.2, 4.2; gives up at 4.7.
    assert_eq!((gw.attempts, gw.failures, gw.syns_dropped), (2, 1, 5));
    assert_eq!(r.first_failure.as_ref().unwrap().at, "gw");
}

/// A run that ends while connects still retry reports them as connecting,
/// neither established nor failed; the summary says so.
#[test]
fn connects_still_retrying_at_the_end_are_neither() {
    let text = case(10, 20, "1000h", "", "").replace("max_connections = 20", "duration = \"60s\"");
    let r = run(&text);
    // 600 connects, 10 through, none has waited 131 s yet.
    assert_eq!((r.attempts, r.established, r.failures), (600, 10, 0));
    assert_eq!(r.connecting_at_end, 590);
    let summary = portsim::report::summary::render(&r);
    assert!(
        summary
            .contains("No connect failed in 60 s, but the NAT gw ran out and dropped 5,030 SYNs"),
        "{summary}"
    );
    assert!(
        summary.contains("590 still in SYN_SENT at the end"),
        "{summary}"
    );
}

/// `--fail-on` and `--target` read the connect delays: of the two connects
/// above, one waited 3 s, so the 99th percentile is 3 s (rank ⌈0.99·2⌉ =
/// 2), in `run` and in `sweep` alike.
#[test]
fn expressions_read_the_connect_delays() {
    let dir = tempfile::tempdir().unwrap();
    let text = case(1, 2, "2.5s", "", r#"timeouts = { time_wait = "100ms" }"#);
    let path = crate::util::write(dir.path(), "d.toml", &text);
    let run = |expr: &str| {
        crate::util::portsim()
            .args(["run", "--no-fixes", "--fail-on", expr])
            .arg(&path)
            .assert()
            .get_output()
            .status
            .code()
    };
    assert_eq!(run("connect_delay_p99>=1"), Some(1));
    assert_eq!(run("connect_delay_p99>=4"), Some(0));
    assert_eq!(run("connecting_at_end>0"), Some(0));
    assert_eq!(run("stale_reuse>0"), Some(0));
    let out = crate::util::portsim()
        .args([
            "sweep",
            "--vary",
            "traffic.rate=10,20",
            "--seeds",
            "1",
            "--fail-on",
            "connect_delay_p99>=1",
        ])
        .arg(&path)
        .arg("--json")
        .assert()
        .code(1);
    let json: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    // The delays' histogram keeps 3 significant digits.
    let p99 = json["points"][0]["runs"][0]["connect_delay_p99_ns"]
        .as_u64()
        .unwrap();
    assert!((2_997_000_000..=3_003_000_000).contains(&p99), "{p99}");
}
