//! UDP flows (`traffic.protocol = "udp"`): a flow holds a local port for
//! its duration and frees it at its end, without TIME_WAIT; its port is
//! exclusive on its address even toward different destinations; a flow a
//! NAT refuses fails at once (no SYN retransmissions); Erlang B over the
//! host's one pool; refusals of bad input; determinism.

use portsim::report::erlang_b;
use portsim::scenario::Protocol;
use portsim::Report;

use crate::util::{portsim, run, text, write};

/// Gap between constant arrivals at 8/s, in ns: 1/8 s is exact in binary,
/// so attempt k (from 1) arrives at exactly k × 125 ms.
const TAU_NS: u64 = 125_000_000;

/// One host of `ports` ports (from 50000) on `os`, constant arrivals at
/// 8/s to `dests` destinations for `duration`, each held `hold`, and
/// `traffic` lines (the protocol among them).
fn det(os: &str, ports: u32, dests: u32, hold: &str, duration: &str, traffic: &str) -> String {
    format!(
        "name = \"udp\"\nseed = 5\nduration = \"{duration}\"\n\
         [host]\nos = \"{os}\"\nport_range = \"50000-{hi}\"\ntime_wait = \"60s\"\n\
         [[destinations]]\naddress = \"10.0.0.53:53\"\ncount = {dests}\n\
         [traffic]\narrivals = \"constant\"\nrate = 8\nhold = \"{hold}\"\n{traffic}\n",
        hi = 50000 + ports - 1
    )
}

/// Established flows among `n` arrivals one per τ, each holding a port for
/// `s_ns`, from a pool of `p` ports. Arrivals 1..=p succeed; the port of
/// success i is free again `s` later, and an attempt at that very instant
/// may take it (frees go first), so success i + p is the first arrival at or
/// after that: L = ceil(s / τ) arrivals after success i, or p when L < p
/// (then nothing ever fails). Successes come in runs of p every L arrivals.
fn established(n: u64, p: u64, s_ns: u64) -> u64 {
    let l = s_ns.div_ceil(TAU_NS).max(p);
    (n / l) * p + (n % l).min(p)
}

#[test]
fn udp_flows_never_hold_a_port_in_time_wait() {
    // 1,000 ports, 8 flows/s held h. Just after arrival k the flows still
    // open are those j <= k with j·τ + h > k·τ (a flow ending at the instant
    // of an arrival has freed its port first): k − h/τ < j <= k, that is
    // ceil(h/τ) of them once k >= h/τ. So the peak is exactly ceil(r·h):
    // 80 for h = 10 s (r·h = 80, the close at the instant of an arrival
    // goes first) and 83 for h = 10.3 s (r·h = 82.4). As TCP with a client
    // close, the same flows hold their port h + 60 s: ceil(r·(h + 60 s)) =
    // 560 and 563. 120 s is longer than either, so both peaks are reached.
    for (hold, hold_ns) in [("10s", 10_000_000_000u64), ("10300ms", 10_300_000_000)] {
        let udp_peak = hold_ns.div_ceil(TAU_NS) as u32;
        let tcp_peak = (hold_ns + 60_000_000_000).div_ceil(TAU_NS) as u32;
        for os in ["linux", "freebsd", "macos", "windows", "generic"] {
            let ctx = format!("{os}, hold {hold}");
            let u = run(&det(os, 1000, 1, hold, "120s", "protocol = \"udp\""));
            assert_eq!(u.protocol, Protocol::Udp);
            assert_eq!((u.attempts, u.failures), (960, 0), "{ctx}");
            assert_eq!(u.ports.peak_in_use, udp_peak, "{ctx}");
            assert_eq!(u.ports.peak_time_wait, 0, "{ctx}");
            assert_eq!(u.ports.time_wait_at_end, 0, "{ctx}");
            assert_eq!(u.ports.peak_open_connections, udp_peak, "{ctx}");
            let t = run(&det(os, 1000, 1, hold, "120s", "protocol = \"tcp\""));
            assert_eq!(t.protocol, Protocol::Tcp);
            assert_eq!((t.attempts, t.failures), (960, 0), "{ctx}");
            assert_eq!(t.ports.peak_in_use, tcp_peak, "{ctx}");
            assert!(t.ports.peak_time_wait > 0, "{ctx}");
            // The default is TCP, byte for byte.
            let default = run(&det(os, 1000, 1, hold, "120s", ""));
            assert_eq!(default.to_json(), t.to_json(), "{ctx}");
        }
    }
}

#[test]
fn udp_runs_out_where_hold_alone_exceeds_the_ports() {
    // 50 ports, 8 flows/s held 7.3 s: ceil(7.3 s / τ) = 59 > 50, so each
    // port serves one flow every 59 arrivals: the closed form of
    // `established` with s = hold (no TIME_WAIT), for every OS's UDP
    // allocator (each finds a free port whenever one exists).
    let n = 8 * 300;
    for os in ["linux", "freebsd", "macos", "windows", "generic"] {
        let r = run(&det(os, 50, 1, "7300ms", "300s", "protocol = \"udp\""));
        assert_eq!(r.attempts, n, "{os}");
        assert_eq!(r.established, established(n, 50, 7_300_000_000), "{os}");
        assert_eq!(r.failures, n - r.established, "{os}");
        assert_eq!(r.ports.peak_in_use, 50, "{os}");
    }
}

#[test]
fn udp_ports_are_exclusive_across_destinations() {
    // 10 ports, two destinations taken in turn, 8 flows/s held 2 s (16 τ).
    // TCP connect() may give one local port to both destinations (only the
    // 4-tuple must be unique): each destination sees a flow every 250 ms
    // and holds 8 at once, so nothing fails (with close = "reset", no
    // TIME_WAIT, to compare holds alone). UDP autobind may not: the two
    // destinations draw on one pool of 10, which fills with arrivals 1..10;
    // L = 16, so of 480 arrivals in 60 s, 30 runs of 10 succeed: exactly
    // 300 established and 180 failures.
    let rr = "pick = \"round-robin\"";
    let tcp = run(&det(
        "linux",
        10,
        2,
        "2s",
        "60s",
        &format!("{rr}\nclose = \"reset\""),
    ));
    assert_eq!((tcp.attempts, tcp.failures), (480, 0));
    assert_eq!(tcp.ports.peak_in_use, 10);
    assert_eq!(tcp.pools_total, 2);
    let udp = run(&det(
        "linux",
        10,
        2,
        "2s",
        "60s",
        &format!("{rr}\nprotocol = \"udp\""),
    ));
    assert_eq!(established(480, 10, 2_000_000_000), 300);
    assert_eq!(
        (udp.attempts, udp.established, udp.failures),
        (480, 300, 180)
    );
    assert_eq!(udp.pools_total, 1);
    assert_eq!(udp.ports.peak_in_use, 10);
    // Each destination got half of the attempts and of the failures.
    let per: Vec<_> = udp
        .destinations
        .iter()
        .map(|d| (d.attempts, d.failures))
        .collect();
    assert_eq!(per, [(240, 90), (240, 90)]);
}

/// Mean and standard error of the mean.
fn mean_se(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    let m = xs.iter().sum::<f64>() / n;
    let var = xs.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (n - 1.0);
    (m, (var / n).sqrt())
}

/// (attempts, failures) after `warm_s` seconds, from the time series.
fn counts_after(r: &Report, warm_s: f64) -> (u64, u64) {
    let first = (warm_s / r.timeseries.bin_s).ceil() as usize;
    assert!(first < r.bins.len(), "warm-up longer than the run");
    r.bins[first..]
        .iter()
        .fold((0, 0), |(a, f), b| (a + b.attempts, f + b.failures))
}

#[test]
fn udp_losses_follow_erlang_b_over_one_pool() {
    // N = 20 ports, Poisson flows at 15/s with exponential holds of mean
    // 1 s: a = 15 erlangs. The flows go to 3 destinations, but UDP ports are
    // exclusive on the address, so all flows compete for one pool of 20 (as
    // TCP they would be 3 pools of 20 offered 5 erlangs each, B ≈ 2e-6).
    // Each OS's UDP allocator finds a free port whenever one exists, so the
    // host is an M/M/c/c loss system and the failure ratio is B(20, 15).
    //
    // 20 seeds × 700 s, counted after a warm-up of W = 20 s: about 204,000
    // attempts. Under independent losses the pooled ratio p̂ over n attempts
    // would have the binomial standard error σ_b = sqrt(B (1 − B) / n)
    // (≈ 4.6e-4, 1 % of B). Losses of a loss system come in bursts (a full
    // pool stays full for a while), which widens the spread by a factor
    // the model does not give in closed form, so the standard error σ is
    // taken from the 20 independent seeds (Student t, 19 degrees of
    // freedom: |p̂ − B| > 5 σ with probability < 1e-4), and σ itself must
    // stay within 4 σ_b, so the bound is tight.
    //
    // Warm-up bias: started empty, the pool at time u is offered at least
    // a·(1 − e^(−u)) for exponential holds; after W = 20 s that is
    // a·(1 − 2e-9), a bias below B(20, a) − B(20, a·(1 − 2e-9)) < 1e-9.
    let (ports, a, seeds, run_s, warm_s) = (20u64, 15.0, 20u64, 700u64, 20.0_f64);
    let b = erlang_b(ports, a);
    let bias = b - erlang_b(ports, a * (1.0 - (-warm_s).exp()));
    for (i, os) in ["linux", "macos"].into_iter().enumerate() {
        let mut ratios = Vec::new();
        let (mut n, mut lost) = (0u64, 0u64);
        for seed in 0..seeds {
            let text = format!(
                "name = \"erlang\"\nseed = {}\nduration = \"{run_s}s\"\n[output]\nbin = \"1s\"\n\
                 [host]\nos = \"{os}\"\nport_range = \"50000-50019\"\n\
                 [[destinations]]\naddress = \"10.0.0.53:53\"\ncount = 3\n\
                 [traffic]\nprotocol = \"udp\"\nrate = {a}\n\
                 hold = {{ dist = \"exponential\", mean = \"1s\" }}\n",
                1000 * (i as u64 + 1) + seed
            );
            let r = run(&text);
            assert_eq!(r.ports.usable, 20);
            assert_eq!(r.pools_total, 1);
            let (att, fail) = counts_after(&r, warm_s);
            ratios.push(fail as f64 / att as f64);
            n += att;
            lost += fail;
        }
        let p = lost as f64 / n as f64;
        let sigma_b = (b * (1.0 - b) / n as f64).sqrt();
        let (_, se) = mean_se(&ratios);
        // Per-seed ratios have about equal weight (equal run lengths), so
        // their standard error is that of the pooled ratio.
        let sigma = se;
        assert!(n > 195_000, "{os}: {n} attempts");
        assert!(
            sigma <= 4.0 * sigma_b,
            "{os}: seeds spread σ = {sigma:.2e}, binomial σ_b = {sigma_b:.2e}"
        );
        assert!(
            (p - b).abs() <= 5.0 * sigma + bias,
            "{os}: simulated {p:.5} over {n} flows, Erlang B(20, 15) = {b:.5}, σ = {sigma:.2e} (σ_b {sigma_b:.2e})"
        );
    }
}

/// A host behind a NAT `gw` of one port, toward one destination: 8
/// flows/s for 5 s, each held 10 s, and `traffic` lines.
fn behind_one_nat_port(traffic: &str) -> String {
    format!(
        "name = \"udp\"\nseed = 2\nduration = \"5s\"\n\
         [host]\nos = \"linux\"\nport_range = \"50000-50999\"\nvia = \"gw\"\n\
         [[destinations]]\naddress = \"10.9.9.9:53\"\n\
         [traffic]\narrivals = \"constant\"\nrate = 8\nhold = \"10s\"\n{traffic}\n\
         [[nat]]\nname = \"gw\"\ntype = \"linux\"\nport_range = \"40000-40000\"\n"
    )
}

#[test]
fn a_flow_a_nat_refuses_fails_at_once() {
    // Flow 1 (at 125 ms) takes the NAT's only port for 10 s; flows 2..=40
    // (up to 5 s) find none. As TCP each would wait in SYN_SENT, holding its
    // host port and retransmitting (the first give-up is 131 s away): 39
    // connecting at the end, none failed, 40 host ports held. As UDP nothing
    // retransmits: each fails at the instant it was refused and its host
    // port is back at once, so no more than 2 are ever held (flow 1's, and
    // the refused flow's within its instant).
    let tcp = run(&behind_one_nat_port(""));
    assert_eq!(
        (tcp.attempts, tcp.failures, tcp.connecting_at_end),
        (40, 0, 39)
    );
    assert_eq!(tcp.ports.peak_in_use, 40);
    let udp = run(&behind_one_nat_port("protocol = \"udp\""));
    assert_eq!(
        (udp.attempts, udp.failures, udp.connecting_at_end),
        (40, 39, 0)
    );
    assert_eq!(udp.established, 1);
    assert_eq!(udp.ports.peak_in_use, 2);
    assert_eq!(udp.connect_delay_s.waited, 0);
    let f = udp.first_failure.as_ref().expect("a failure");
    assert_eq!((f.attempt, f.at.as_str()), (2, "gw"));
    assert!((f.time_s - 0.25).abs() < 1e-12, "{}", f.time_s);
    assert_eq!(udp.hosts[0].failures_at["gw"], 39);

    // The application still re-sends: each of flows 2..=32 is retried 1 s
    // later, within the run (flow 32's retry at exactly 5 s counts), and
    // fails again, with no retry left.
    let retried = run(&behind_one_nat_port(
        "protocol = \"udp\"\nretry = { after = \"1s\", max = 1 }",
    ));
    assert_eq!(
        (
            retried.attempts,
            retried.failures,
            retried.retries,
            retried.abandoned
        ),
        (71, 70, 31, 31)
    );

    // With connect_timeout the application waits that long for the reply,
    // holding its port: flows 2..=32 fail 1 s after they were sent (the
    // last at exactly 5 s), flows 33..=40 still wait at the end, and at most
    // 1 + 8 ports are held (flow 1's and one second of refused flows).
    let waiting = run(&behind_one_nat_port(
        "protocol = \"udp\"\nconnect_timeout = \"1s\"",
    ));
    assert_eq!(
        (
            waiting.attempts,
            waiting.failures,
            waiting.connecting_at_end
        ),
        (40, 31, 8)
    );
    assert_eq!(waiting.ports.peak_in_use, 9);
    let f = waiting.first_failure.as_ref().expect("a failure");
    assert!((f.time_s - 1.25).abs() < 1e-12, "{}", f.time_s);

    // The summary speaks of flows, and of no TIME_WAIT.
    let summary = portsim::report::summary::render(&waiting);
    for line in [
        "  flows           40 (1 established, 31 failed)",
        "  replies         8 flows still waiting at the end for a reply a NAT dropped",
        "  TIME_WAIT       none: UDP flows free their port when they end",
    ] {
        assert!(summary.lines().any(|l| l == line), "{line}\n{summary}");
    }
    assert!(summary.contains("flows/s per pool"), "{summary}");
    assert!(!summary.contains("SYN"), "{summary}");
}

#[test]
fn a_group_of_hosts_may_send_udp() {
    // Two groups of 3 hosts, 8 flows/s each held 10 s: the UDP group's
    // hosts hold ceil(r·h) = 80 ports at most, the TCP group's ceil(r·(h +
    // 60 s)) = 560.
    let text = "name = \"fleet\"\nseed = 1\nduration = \"120s\"\n\
         [host]\nos = \"linux\"\nport_range = \"50000-50999\"\n\
         [[destinations]]\naddress = \"10.0.0.53:53\"\n\
         [traffic]\narrivals = \"constant\"\nrate = 8\nhold = \"10s\"\n\
         [[hosts]]\nname = \"dns\"\ncount = 3\n[hosts.traffic]\nprotocol = \"udp\"\n\
         [[hosts]]\nname = \"web\"\ncount = 3\n";
    let r = run(text);
    let peaks: Vec<_> = r
        .hosts
        .iter()
        .map(|h| (h.name.as_str(), h.peak_in_use_per_host, h.failures))
        .collect();
    assert_eq!(peaks, [("dns", 80, 0), ("web", 560, 0)]);
}

#[test]
fn bad_protocols_and_contradictions_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "protocol = \"icmp\"",
            "test.toml:15: traffic.protocol: found \"icmp\"; allowed: \"tcp\", \"udp\"",
        ),
        (
            "protocol = \"udp\"\nclose = \"server\"",
            "test.toml:16: traffic.close: found \"server\" with protocol = \"udp\"",
        ),
        (
            "protocol = \"udp\"\nclose = \"reset\"",
            "test.toml:16: traffic.close: found \"reset\" with protocol = \"udp\"",
        ),
        ("protocol = 17", "test.toml:15: traffic.protocol:"),
    ];
    for (extra, want) in cases {
        let path = write(
            dir.path(),
            "test.toml",
            &det("linux", 100, 1, "1s", "10s", extra),
        );
        let out = portsim().arg("run").arg(&path).assert().code(2);
        let err = text(&out.get_output().stderr);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.contains(&format!(
                "{}{}",
                path.parent().unwrap().join("").display(),
                want
            )),
            "{extra}: {err}"
        );
    }
    // In a [[hosts]] group's own traffic table the key names the group.
    let group = format!(
        "{}[[hosts]]\nname = \"dns\"\ncount = 2\n[hosts.traffic]\nprotocol = \"quic\"\n",
        det("linux", 100, 1, "1s", "10s", "")
    );
    let path = write(dir.path(), "group.toml", &group);
    let out = portsim().arg("run").arg(&path).assert().code(2);
    let err = text(&out.get_output().stderr);
    assert!(
        err.contains("hosts[0].traffic.protocol: found \"quic\"; allowed: \"tcp\", \"udp\""),
        "{err}"
    );
}

#[test]
fn same_seed_same_bytes() {
    let text = |seed: u32| {
        format!(
            "name = \"dns\"\nseed = {seed}\nduration = \"30s\"\n\
             [host]\nos = \"linux\"\nport_range = \"50000-50099\"\n\
             [[destinations]]\naddress = \"10.0.0.53:53\"\ncount = 4\n\
             [traffic]\nprotocol = \"udp\"\nrate = 40\n\
             hold = {{ dist = \"exponential\", mean = \"2s\" }}\n"
        )
    };
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "dns.toml", &text(9));
    // Every output of one run: stdout, report.json, timeseries.csv, trace.
    let outputs = |tag: &str| {
        let out = dir.path().join(tag);
        let trace = dir.path().join(format!("{tag}.csv"));
        let stdout = portsim()
            .arg("run")
            .arg(&path)
            .arg("--out")
            .arg(&out)
            .arg("--trace")
            .arg(&trace)
            .assert()
            .success()
            .get_output()
            .stdout
            .clone();
        let read = |p: &std::path::Path| std::fs::read(p).expect("an output written");
        [
            stdout,
            read(&out.join("report.json")),
            read(&out.join("timeseries.csv")),
            read(&trace),
        ]
    };
    let (a, b) = (outputs("a"), outputs("b"));
    assert_eq!(a, b);
    let json = String::from_utf8(a[1].clone()).unwrap();
    assert!(json.contains("\"protocol\": \"udp\""), "{json}");
    assert!(json.contains("\"allocator\": \"linux-udp\""), "{json}");
    // The comparison can fail: another seed moves the figures.
    assert_ne!(run(&text(9)).to_json(), run(&text(10)).to_json());
    // The run failed some flows (80 erlangs on 100 ports), so the
    // allocator's draws are in the bytes compared.
    assert!(run(&text(9)).failures > 0);
}
