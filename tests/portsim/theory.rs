//! The engine against results derived by hand, through the library API.
//!
//! Deterministic traffic (constant arrivals, constant holds) gives exact counts;
//! random traffic is checked against Little's law and Erlang B with bounds
//! derived from the mathematics, stated next to each assertion.
//!
//! Deterministic scenarios use a rate of 8/s: 1/8 s is exact in binary, so
//! attempt k arrives at exactly k × 125 ms and every count below is an
//! integer identity, not an approximation.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

use portsim::report::erlang_b;
use portsim::Report;

use crate::util;

/// Gap between constant arrivals at 8/s, in ns.
const TAU_NS: u64 = 125_000_000;
const NS: u64 = 1_000_000_000;

/// Allocators that find a usable port whenever one exists, with the host
/// lines that select them. `rfc6056-2` with (practically) unlimited tries and
/// `rfc6056-5` with steps of 1 (it then probes every port in turn) are
/// exhaustive too.
const EXHAUSTIVE: &[&str] = &[
    "allocator = \"sequential\"",
    "allocator = \"rfc6056-1\"",
    "allocator = \"rfc6056-3\"",
    "allocator = \"rfc6056-4\"",
    "allocator = \"rfc6056-2\"\nrfc6056_2_tries = 4000000000",
    "allocator = \"rfc6056-5\"\nrfc6056_5_increment = 1",
];

/// A deterministic scenario: constant arrivals, constant hold.
#[derive(Clone)]
struct Det {
    /// Ports in the range 50000..50000+ports-1.
    ports: u32,
    rate: f64,
    hold: String,
    time_wait: String,
    close: &'static str,
    duration: String,
    destinations: u32,
    /// Extra lines for [host] and [traffic], and at the top.
    host: String,
    traffic: String,
    top: String,
}

impl Default for Det {
    fn default() -> Self {
        Det {
            ports: 100,
            rate: 8.0,
            hold: "1s".into(),
            time_wait: "60s".into(),
            close: "client",
            duration: "300s".into(),
            destinations: 1,
            host: String::new(),
            traffic: String::new(),
            top: String::new(),
        }
    }
}

impl Det {
    fn toml(&self) -> String {
        format!(
            "name = \"det\"\nseed = 3\nduration = \"{}\"\n{}\n\
             [host]\nport_range = \"50000-{}\"\ntime_wait = \"{}\"\n{}\n\
             [[destinations]]\naddress = \"10.0.0.5:5432\"\ncount = {}\n\
             [traffic]\narrivals = \"constant\"\nrate = {}\nhold = \"{}\"\nclose = \"{}\"\n{}\n",
            self.duration,
            self.top,
            50000 + self.ports - 1,
            self.time_wait,
            self.host,
            self.destinations,
            self.rate,
            self.hold,
            self.close,
            self.traffic
        )
    }

    fn run(&self) -> Report {
        let r = util::run(&self.toml());
        invariants(&r);
        r
    }
}

/// Identities every report satisfies, whatever the scenario.
fn invariants(r: &Report) {
    assert_eq!(
        r.attempts,
        r.established + r.failures,
        "attempts = established + failures"
    );
    assert!(
        r.abandoned <= r.failures,
        "abandoned {} > failures {}",
        r.abandoned,
        r.failures
    );
    assert!(r.retries <= r.failures, "every retry follows a failure");
    let expect_ratio = if r.attempts > 0 {
        r.failures as f64 / r.attempts as f64
    } else {
        0.0
    };
    assert_eq!(r.failure_ratio, expect_ratio);
    let capacity = r.ports.usable * r.ports.addresses;
    assert!(
        r.ports.peak_in_use <= capacity,
        "peak {} > capacity {capacity}",
        r.ports.peak_in_use
    );
    assert!(r.ports.distinct_used <= capacity);
    assert!(r.ports.mean_in_use <= f64::from(r.ports.peak_in_use) + 1e-9);
    // The time series partitions the counters.
    let sum = |f: fn(&portsim::sim::record::Bin) -> u64| r.bins.iter().map(f).sum::<u64>();
    assert_eq!(sum(|b| b.attempts), r.attempts, "time series attempts");
    assert_eq!(sum(|b| b.failures), r.failures, "time series failures");
    assert_eq!(
        sum(|b| b.established),
        r.established,
        "time series established"
    );
}

/// Successful connections among `n` attempts arriving one per τ, each holding a
/// port for `s_ns` (hold + TIME_WAIT), from a pool of `p` ports.
///
/// Successes 1..=p take arrivals 1..=p. Success i+p takes the first arrival at
/// or after the instant success i frees its port (a port freed at an instant
/// is usable by an attempt at that instant), i.e. L = ceil(s/τ) arrivals later.
/// If L <= p no attempt ever finds the pool full; otherwise the successes come
/// in runs of p consecutive arrivals every L arrivals.
fn cycle_len(s_ns: u64, p: u64, tau_ns: u64) -> u64 {
    s_ns.div_ceil(tau_ns).max(p)
}

fn established_closed_form(n: u64, p: u64, s_ns: u64, tau_ns: u64) -> u64 {
    let l = cycle_len(s_ns, p, tau_ns);
    (n / l) * p + (n % l).min(p)
}

/// Time-integral of ports in use (port·ns) for the same pattern, cut at `end_ns`.
fn area_closed_form(n: u64, p: u64, s_ns: u64, end_ns: u64) -> f64 {
    let l = cycle_len(s_ns, p, TAU_NS);
    (1..=n)
        .filter(|k| (k - 1) % l < p)
        .map(|k| ((k * TAU_NS + s_ns).min(end_ns) - k * TAU_NS) as f64)
        .sum()
}

#[test]
fn exhaustion_point_is_exact_for_every_exhaustive_allocator() {
    // P = 100 ports, 8 attempts/s, TIME_WAIT 60 s. Hold 1 s: a port is busy
    // for S = 61 s = 488 τ, so each port frees exactly when an attempt arrives
    // (ties); hold 1.05 s: S = 488.4 τ, no ties. r·S = 488 > 100: the pool
    // fills with attempts 1..100 and attempt 101 (at 101 τ = 12.625 s) fails.
    let p = 100u64;
    let n = 300 * 8; // attempts in 300 s; the last one at exactly 300 s is inside the run
    for hold_ms in [1000u64, 1050] {
        let s_ns = hold_ms * 1_000_000 + 60 * NS;
        for host in EXHAUSTIVE {
            let d = Det {
                hold: format!("{hold_ms}ms"),
                host: host.to_string(),
                ..Det::default()
            };
            let r = d.run();
            let ctx = format!("{host}, hold {hold_ms} ms");
            assert_eq!(r.attempts, n, "{ctx}");
            assert_eq!(
                r.established,
                established_closed_form(n, p, s_ns, TAU_NS),
                "{ctx}"
            );
            let ff = r
                .first_failure
                .as_ref()
                .unwrap_or_else(|| panic!("{ctx}: no failure"));
            assert_eq!(ff.attempt, p + 1, "{ctx}");
            assert_eq!(ff.time_s, (p + 1) as f64 / 8.0, "{ctx}");
            assert_eq!(r.ports.peak_in_use, 100, "{ctx}");
            assert_eq!(r.ports.distinct_used, 100, "{ctx}");
            // Port·ns are whole numbers below 2^53, so the mean is exact.
            let mean = area_closed_form(n, p, s_ns, 300 * NS) / (300 * NS) as f64;
            assert_eq!(r.ports.mean_in_use, mean, "{ctx}");
        }
    }
}

#[test]
fn exhaustion_point_moves_with_rate_and_range() {
    // The same identity at other sizes: first failure at attempt P + 1 whenever
    // r·S > P, and never when r·S <= P.
    for (ports, rate, hold) in [(10u32, 8.0, "2s"), (1000, 16.0, "5s"), (64, 4.0, "10s")] {
        let d = Det {
            ports,
            rate,
            hold: hold.into(),
            ..Det::default()
        };
        let r = d.run();
        assert_eq!(
            r.first_failure.map(|f| f.attempt),
            Some(u64::from(ports) + 1),
            "{ports} ports"
        );
        assert_eq!(r.ports.peak_in_use, ports);
    }
    // 2/s × (1 s + 30 s) = 62 <= 64 ports: never full.
    let d = Det {
        ports: 64,
        rate: 2.0,
        time_wait: "30s".into(),
        ..Det::default()
    };
    let r = d.run();
    assert_eq!(r.failures, 0);
    assert!(r.first_failure.is_none());
    assert_eq!(
        r.ports.peak_in_use, 62,
        "at most r·S = 62 ports are held at once"
    );
}

#[test]
fn reset_and_server_close_free_the_port_at_close() {
    // No TIME_WAIT: a port is held for the hold time only. Hold 12 s = 96 τ:
    // the connection of attempt k closes exactly when attempt k + 96 arrives,
    // and the close is processed first, so at most 96 ports are ever held.
    for close in ["reset", "server"] {
        let r = Det {
            ports: 96,
            hold: "12s".into(),
            close,
            ..Det::default()
        }
        .run();
        assert_eq!(r.failures, 0, "{close}: 96 ports suffice");
        assert_eq!(r.ports.peak_in_use, 96, "{close}");
        assert_eq!(r.ports.peak_time_wait, 0, "{close}: no TIME_WAIT");
        assert_eq!(r.established, 2400, "{close}");
        // One port fewer: attempt 96 finds all 95 held (attempt 1 closes at 97 τ).
        let r = Det {
            ports: 95,
            hold: "12s".into(),
            close,
            ..Det::default()
        }
        .run();
        assert_eq!(r.first_failure.map(|f| f.attempt), Some(96), "{close}");
        assert_eq!(
            r.established,
            established_closed_form(2400, 95, 12 * NS, TAU_NS),
            "{close}"
        );
    }
    // And well below saturation: r·hold = 8 × 1 s = 8 < 100, no failure.
    let r = Det {
        close: "reset",
        ..Det::default()
    }
    .run();
    assert_eq!((r.failures, r.ports.peak_in_use), (0, 8));
}

/// Records the port of every connect.
#[derive(Default)]
struct Ports(Vec<u16>);

impl portsim::sim::Observer for Ports {
    fn on_connect(&mut self, _t: u64, port: u16, _dest: u32) {
        self.0.push(port);
    }
}

#[test]
fn reserved_ports_are_never_handed_out() {
    // Reserved in range: 50000 and 50010-50020 (two overlapping entries) = 12
    // ports; 40000-40010 is outside the range and reserves nothing. So 88
    // usable ports and the first failure at attempt 100 - 12 + 1 = 89.
    for host in EXHAUSTIVE {
        let d = Det {
            hold: "100s".into(),
            host: format!("{host}\nreserved_ports = [50000, \"50010-50019\", \"50015-50020\", \"40000-40010\"]"),
            ..Det::default()
        };
        let sc = util::scenario(&d.toml());
        let mut seen = Ports::default();
        let r = portsim::run_with(&sc, &mut seen);
        invariants(&r);
        assert_eq!(r.ports.usable, 88, "{host}");
        assert_eq!(r.first_failure.map(|f| f.attempt), Some(89), "{host}");
        assert_eq!(r.ports.distinct_used, 88, "{host}");
        assert_eq!(r.ports.peak_in_use, 88, "{host}");
        assert_eq!(seen.0.len() as u64, r.established);
        for p in &seen.0 {
            assert!(
                (50000..=50099).contains(p),
                "{host}: port {p} outside the range"
            );
            assert!(
                *p != 50000 && !(50010..=50020).contains(p),
                "{host}: reserved port {p} handed out"
            );
        }
    }
}

#[test]
fn source_addresses_multiply_the_pool() {
    // Ports held for 100 s, so nothing frees during the first 300 attempts.
    // bind(addr, 0) with 3 addresses taken in turn: each address has its own
    // 100 ports, so attempts 1..300 succeed and attempt 301 fails.
    for bind in ["bind", "bind-no-port"] {
        for host in EXHAUSTIVE {
            let d = Det {
                hold: "100s".into(),
                host: format!("{host}\naddresses = 3"),
                traffic: format!("bind = \"{bind}\"\nsource = \"round-robin\""),
                ..Det::default()
            };
            let r = d.run();
            let ctx = format!("{bind}, {host}");
            assert_eq!(r.first_failure.map(|f| f.attempt), Some(301), "{ctx}");
            assert_eq!(r.ports.peak_in_use, 300, "{ctx}: (address, port) pairs");
            assert_eq!(r.ports.distinct_used, 300, "{ctx}");
        }
    }
    // An explicit list of addresses counts the same way.
    let d = Det {
        hold: "100s".into(),
        host: "addresses = [\"10.1.0.1\", \"10.1.0.2\"]".into(),
        traffic: "bind = \"bind\"\nsource = \"round-robin\"".into(),
        ..Det::default()
    };
    assert_eq!(d.run().first_failure.map(|f| f.attempt), Some(201));
}

#[test]
fn destinations_share_ports_only_where_the_os_allows() {
    // Two destinations in turn, ports held for 100 s.
    // connect() on an OS that shares ports across destinations: only the
    // 4-tuple must be unique, so each destination has the whole range:
    // attempts 1..200 succeed, 201 fails, and the 100 ports are each held twice.
    for host in EXHAUSTIVE
        .iter()
        .map(|h| h.to_string())
        .chain(["os = \"linux\"".into(), "os = \"freebsd\"".into()])
    {
        let d = Det {
            hold: "100s".into(),
            destinations: 2,
            host: host.clone(),
            traffic: "pick = \"round-robin\"".into(),
            ..Det::default()
        };
        let r = d.run();
        assert_eq!(r.first_failure.map(|f| f.attempt), Some(201), "{host}");
        assert_eq!(r.ports.peak_in_use, 100, "{host}");
        assert_eq!(r.ports.distinct_used, 100, "{host}");
        // Each destination is a pool of 100 ports offered one attempt per 2 τ
        // (1,200 in 300 s), each busy S = 160 s = 640 × 2 τ.
        assert_eq!(r.destinations.len(), 2);
        for dest in &r.destinations {
            assert_eq!(dest.attempts, 1200, "{host}");
            assert_eq!(
                dest.established,
                established_closed_form(1200, 100, 160 * NS, 2 * TAU_NS),
                "{host}"
            );
        }
    }
    // macOS connect() never shares a port, and bind() makes a port exclusive on
    // its address: one pool of 100 ports for both destinations, failure at 101.
    for (host, bind) in [
        ("os = \"macos\"", "connect"),
        ("", "bind"),
        ("os = \"linux\"", "bind"),
    ] {
        let d = Det {
            hold: "100s".into(),
            destinations: 2,
            host: host.into(),
            traffic: format!("pick = \"round-robin\"\nbind = \"{bind}\""),
            ..Det::default()
        };
        let r = d.run();
        assert_eq!(
            r.first_failure.map(|f| f.attempt),
            Some(101),
            "{host} {bind}"
        );
        assert_eq!(r.ports.peak_in_use, 100, "{host} {bind}");
    }
}

#[test]
fn max_tw_buckets_skips_time_wait_and_keeps_ports_free() {
    // 8/s, hold 1 s (8 τ), TIME_WAIT 60 s (480 τ), 100 ports: without a cap
    // r·S = 488 > 100 and attempt 101 fails.
    let base = Det::default();
    assert_eq!(base.run().first_failure.map(|f| f.attempt), Some(101));
    // With max_tw_buckets = 50: at most 8 connections are open (attempt k's
    // close at (k + 8) τ is processed before attempt k + 8) and at most 50
    // TIME_WAIT entries exist, so at most 58 < 100 ports are ever held: no
    // failure. Close i (at (i + 8) τ) finds alive the entries of closes
    // j > i - 480 that entered (an entry ending at the instant of a close is
    // processed first), so by induction close i enters TIME_WAIT iff
    // (i - 1) mod 480 < 50 and is skipped otherwise.
    let m = 50u64;
    let d = Det {
        host: format!("max_tw_buckets = {m}"),
        ..Det::default()
    };
    let r = d.run();
    assert_eq!(r.failures, 0);
    assert_eq!(r.attempts, 2400);
    // Closes by 300 s: attempts 1..2392 (the close at exactly 300 s counts).
    let closes = 2400 - 8;
    let entered = (1..=closes).filter(|i| (i - 1) % 480 < m).count() as u64;
    assert_eq!(r.time_wait_skipped, closes - entered);
    assert_eq!(r.ports.peak_time_wait, 50);
    // Close 50 brings TIME_WAIT to 50 at 58 τ, when attempt 58 opens the 8th connection.
    assert_eq!(r.ports.peak_in_use, 58);
    assert_eq!(r.ports.open_at_end, 8);
}

#[test]
fn tw_reuse_takes_over_old_time_wait_entries() {
    // Same traffic as above (fails at attempt 101 without reuse). With
    // tw_reuse and a 1 s delay, a TIME_WAIT entry is reusable 8 τ after its
    // close. When attempt k arrives, 7 connections are open (k−7..k−1) and
    // 8 entries are younger than the delay (closes at (k−7..k) τ; eligibility
    // at an instant is processed before an arrival), so at most 15 of 100
    // ports are unusable: no failure.
    //
    // Allocators that walk the range in order for one destination (the
    // sequential cursor; rfc6056-3/-4, whose counter advances by the probes;
    // rfc6056-5 with steps of 1) give attempt k > 100 the port of attempt
    // k − 100: closed at (k − 92) τ, reusable from (k − 84) τ, in TIME_WAIT
    // until (k + 388) τ. So attempts 1..100 take fresh ports and every later
    // attempt takes over an entry: exactly 2400 − 100 takeovers. Random
    // allocators may take over earlier (from the first reusable entry at
    // 17 τ) or find an expired port: between 1 and 2400 − 16.
    for (host, walks) in EXHAUSTIVE
        .iter()
        .zip([true, false, true, true, false, true])
    {
        let d = Det {
            host: format!("{host}\ntw_reuse = true\ntw_reuse_delay = \"1s\""),
            ..Det::default()
        };
        let r = d.run();
        assert_eq!(r.failures, 0, "{host}");
        if walks {
            assert_eq!(r.time_wait_reused, 2300, "{host}");
            assert_eq!(r.ports.distinct_used, 100, "{host}");
        } else {
            assert!(
                (1..=2384).contains(&r.time_wait_reused),
                "{host}: {}",
                r.time_wait_reused
            );
        }
    }
    // Without the setting, the default 1 s delay is not used at all.
    let r = Det {
        host: "tw_reuse_delay = \"1s\"".into(),
        ..Det::default()
    }
    .run();
    assert_eq!(
        (r.time_wait_reused, r.first_failure.map(|f| f.attempt)),
        (0, Some(101))
    );
}

#[test]
fn tw_reuse_never_happens_when_the_delay_exceeds_time_wait() {
    // An entry ends (60 s) before it would become reusable (90 s): the run is
    // the same as without tw_reuse, counts by the closed form.
    let s_ns = 61 * NS;
    for host in EXHAUSTIVE {
        let d = Det {
            host: format!("{host}\ntw_reuse = true\ntw_reuse_delay = \"90s\""),
            ..Det::default()
        };
        let r = d.run();
        assert_eq!(r.time_wait_reused, 0, "{host}");
        assert_eq!(
            r.established,
            established_closed_form(2400, 100, s_ns, TAU_NS),
            "{host}"
        );
        assert_eq!(r.first_failure.map(|f| f.attempt), Some(101), "{host}");
    }
}

/// Counts of a single pool of ports with constant arrivals and holds, computed
/// by an independent event loop in whole nanoseconds: ports freed at an
/// instant come first, then retries due (oldest first), then the new arrival.
#[derive(Debug, PartialEq, Eq)]
struct Counts {
    attempts: u64,
    established: u64,
    failures: u64,
    retries: u64,
    abandoned: u64,
    first_failure: Option<u64>,
}

fn reference_pool(ports: u32, busy_ns: u64, horizon_ns: u64, retry: Option<(u64, u32)>) -> Counts {
    let mut c = Counts {
        attempts: 0,
        established: 0,
        failures: 0,
        retries: 0,
        abandoned: 0,
        first_failure: None,
    };
    let mut frees: BinaryHeap<Reverse<u64>> = BinaryHeap::new();
    let mut retries: VecDeque<(u64, u32)> = VecDeque::new();
    let mut held = 0u32;
    let mut k = 1u64;
    loop {
        let t_free = frees.peek().map_or(u64::MAX, |r| r.0);
        let t_retry = retries.front().map_or(u64::MAX, |r| r.0);
        let t_arrival = k * TAU_NS;
        let t = t_free.min(t_retry).min(t_arrival);
        if t > horizon_ns {
            return c;
        }
        if t_free == t {
            frees.pop();
            held -= 1;
            continue;
        }
        let tries = if t_retry == t {
            c.retries += 1;
            retries.pop_front().expect("peeked").1
        } else {
            k += 1;
            0
        };
        c.attempts += 1;
        if held < ports {
            held += 1;
            c.established += 1;
            frees.push(Reverse(t + busy_ns));
        } else {
            c.failures += 1;
            c.first_failure.get_or_insert(c.attempts);
            match retry {
                Some((after, max)) if tries < max => retries.push_back((t + after, tries + 1)),
                _ => c.abandoned += 1,
            }
        }
    }
}

fn counts(r: &Report) -> Counts {
    Counts {
        attempts: r.attempts,
        established: r.established,
        failures: r.failures,
        retries: r.retries,
        abandoned: r.abandoned,
        first_failure: r.first_failure.as_ref().map(|f| f.attempt),
    }
}

#[test]
fn retries_when_no_port_ever_frees() {
    // 10 ports held for 1000 s; 100 s of arrivals at 8/s = 800 first attempts.
    // Attempts 11..800 fail; each is retried after 1 s (8 τ) and again after
    // 2 s, and the second retry's failure is final. Retries due after 100 s
    // never run. So with first failures at τ·(11..=800):
    //   first retries  = #{p <= 800 - 8}  = 782
    //   second retries = #{p <= 800 - 16} = 774 = abandoned
    let (n, p, a) = (800u64, 10u64, 8u64);
    let first = n - a - p;
    let second = n - 2 * a - p;
    let d = Det {
        ports: 10,
        hold: "1000s".into(),
        close: "reset",
        duration: "100s".into(),
        traffic: "retry = { after = \"1s\", max = 2 }".into(),
        ..Det::default()
    };
    let r = d.run();
    assert_eq!(r.retries, first + second);
    assert_eq!(
        r.attempts,
        n + first + second,
        "attempts = first attempts + retries"
    );
    assert_eq!(r.established, p);
    assert_eq!(r.abandoned, second);
    assert_eq!(r.failures, r.attempts - p);
}

#[test]
fn retries_match_a_reference_loss_model() {
    // Near saturation some retries succeed and some give up; the exact counts
    // come from `reference_pool`, an independent event loop over one pool.
    // Every exhaustive allocator must agree with it.
    let cases = [
        // (ports, hold, close, time_wait, retry after, max)
        (10u32, 1300u64, "reset", 0u64, 200u64, 3u32),
        (10, 700, "client", 600, 125, 2),
        (1, 200, "reset", 0, 100, 2),
        (25, 2000, "client", 1500, 1000, 1),
    ];
    for (ports, hold_ms, close, tw_ms, after_ms, max) in cases {
        let busy_ns = (hold_ms + tw_ms) * 1_000_000;
        let want = reference_pool(ports, busy_ns, 120 * NS, Some((after_ms * 1_000_000, max)));
        assert!(
            want.retries > 0 && want.abandoned > 0,
            "case {ports}/{hold_ms} does not exercise retries"
        );
        assert!(
            want.failures > want.abandoned,
            "case {ports}/{hold_ms}: some retries should succeed"
        );
        for host in EXHAUSTIVE {
            let d = Det {
                ports,
                hold: format!("{hold_ms}ms"),
                close,
                time_wait: format!("{tw_ms}ms"),
                duration: "120s".into(),
                host: host.to_string(),
                traffic: format!("retry = {{ after = \"{after_ms}ms\", max = {max} }}"),
                ..Det::default()
            };
            let r = d.run();
            assert_eq!(
                counts(&r),
                want,
                "{ports} ports, hold {hold_ms} ms, {close}, {host}"
            );
            assert_eq!(r.attempts - r.retries, 960, "first attempts = 120 s × 8/s");
        }
    }
    // Without retries the reference model reduces to the closed form.
    let want = reference_pool(100, 61 * NS, 300 * NS, None);
    assert_eq!(
        want.established,
        established_closed_form(2400, 100, 61 * NS, TAU_NS)
    );
}

#[test]
fn max_connections_counts_every_attempt() {
    // `max_connections` stops the run after that many connection attempts,
    // retries included (as documented). 10 ports held for 1000 s, first
    // attempts at k·τ, each failure retried once 8 τ later. By the first
    // attempt k >= 19 (retries due at an instant run before the arrival),
    // attempts are k first ones plus the retries of first attempts 11..k−8:
    // 2k − 18, which reaches 100 at k = 59, with 41 retries.
    let d = Det {
        ports: 10,
        hold: "1000s".into(),
        close: "reset",
        duration: "1000s".into(),
        top: "max_connections = 100".into(),
        traffic: "retry = { after = \"1s\", max = 1 }".into(),
        ..Det::default()
    };
    let r = d.run();
    assert_eq!(r.attempts, 100);
    assert_eq!(r.retries, 41);
    assert_eq!(r.attempts - r.retries, 59, "first attempts");
    assert_eq!(
        r.simulated_s,
        59.0 / 8.0,
        "the run ends at the last attempt"
    );
    // Without retries it is the number of first attempts, and the run ends
    // at the last one even when `duration` is longer.
    let d = Det {
        top: "max_connections = 300".into(),
        duration: "1000s".into(),
        ..Det::default()
    };
    let r = d.run();
    assert_eq!(r.attempts, 300);
    assert_eq!(r.simulated_s, 300.0 / 8.0);
    assert_eq!(r.first_failure.map(|f| f.attempt), Some(101));
}

#[test]
fn keep_alive_divides_connections_by_requests_per_connection() {
    // 80 requests/s for 60 s over 16,384 ports, TIME_WAIT 60 s. One request per
    // connection: 4,800 connections each holding a port 60.1 s > 60 s, so all
    // are still held at the end: peak = 4,800. Ten requests per connection:
    // 80/10 = 8 connections/s (one every 125 ms exactly), 480 connections,
    // each holding a port 10 × 100 ms + 60 s: peak = 480.
    let toml = |rpc: u32| {
        format!(
            "name = \"ka\"\nduration = \"60s\"\n[[destinations]]\naddress = \"10.0.0.5:80\"\n\
             [traffic]\narrivals = \"constant\"\nrate = 80\nhold = \"100ms\"\nrequests_per_connection = {rpc}\n"
        )
    };
    let one = util::run(&toml(1));
    let ten = util::run(&toml(10));
    invariants(&one);
    invariants(&ten);
    assert_eq!(one.attempts, 4800);
    assert_eq!(ten.attempts, 480);
    assert_eq!(one.attempts, 10 * ten.attempts);
    assert_eq!((one.failures, ten.failures), (0, 0));
    assert_eq!(one.ports.peak_in_use, 4800);
    assert_eq!(ten.ports.peak_in_use, 480);
    // Offered load: connections/s × (requests × hold + TIME_WAIT).
    assert!(
        (ten.analytic.offered_load - 8.0 * 61.0).abs() < 1e-9,
        "{}",
        ten.analytic.offered_load
    );
    assert!(
        (one.analytic.offered_load - 80.0 * 60.1).abs() < 1e-9,
        "{}",
        one.analytic.offered_load
    );
    // A connection lives 1 s (the sum of its ten 100 ms requests): with reset
    // close and ten requests per connection, 8 ports are busy in steady state.
    let ka = util::run(&(toml(10) + "close = \"reset\"\n"));
    let area = area_closed_form(480, 16384, NS, 60 * NS);
    assert_eq!(ka.ports.mean_in_use, area / (60 * NS) as f64);
    assert_eq!(ka.ports.peak_in_use, 8);
}

/// Records the time of every connect.
#[derive(Default)]
struct Times(Vec<u64>);

impl portsim::sim::Observer for Times {
    fn on_connect(&mut self, t: u64, _port: u16, _dest: u32) {
        self.0.push(t);
    }
}

#[test]
fn rate_profiles_shape_constant_arrivals_exactly() {
    // Constant arrivals follow the integral of the rate: attempt k arrives
    // when ∫_0^t rate = k. Three profiles with ∫_0^120 s = 1,440:
    //   schedule 8/s then 16/s from 60 s:         8·60 + 16·60            = 1440
    //   ramp 0 → 16/s over 60 s, then 16/s:       ½·16·60 + 16·60         = 1440
    //   8/s, ramp 8 → 16/s over 60 s from 30 s:   8·30 + 12·60 + 16·30    = 1440
    // Plenty of ports and reset close, so every attempt connects.
    let profiles = [
        "schedule = [{ at = \"0s\", rate = 8 }, { at = \"60s\", rate = 16 }]",
        "ramp = { from = 0, to = 16, over = \"60s\" }",
        "rate = 8\nramp = { from = 8, to = 16, over = \"60s\", at = \"30s\" }",
    ];
    for profile in profiles {
        let toml = format!(
            "name = \"profile\"\nduration = \"120s\"\n[[destinations]]\naddress = \"10.0.0.5:80\"\n\
             [traffic]\narrivals = \"constant\"\nhold = \"1s\"\nclose = \"reset\"\n{profile}\n"
        );
        let sc = util::scenario(&toml);
        let mut times = Times::default();
        let r = portsim::run_with(&sc, &mut times);
        invariants(&r);
        assert_eq!(r.attempts, 1440, "{profile}");
        assert_eq!(r.failures, 0, "{profile}");
        // Mean rate 1440/120 = 12/s; offered load 12/s × 1 s (no TIME_WAIT).
        assert!(
            (r.analytic.offered_load - 12.0).abs() < 1e-9,
            "{profile}: {}",
            r.analytic.offered_load
        );
        assert!(
            (r.analytic.offered_load_peak - 16.0).abs() < 1e-9,
            "{profile}: {}",
            r.analytic.offered_load_peak
        );
        // The last attempt lands exactly on 120 s, inside the run.
        assert_eq!(times.0.last(), Some(&(120 * NS)), "{profile}");
    }
    // On the ramp from 0 at slope 16/60 per s, ∫_0^t = (2/15)·t², so attempt
    // k arrives at t = sqrt(7.5·k) s for k <= 480, then every 1/16 s.
    let toml = format!(
        "name = \"ramp\"\nduration = \"120s\"\n[[destinations]]\naddress = \"10.0.0.5:80\"\n\
         [traffic]\narrivals = \"constant\"\nhold = \"1s\"\nclose = \"reset\"\n{}\n",
        profiles[1]
    );
    let mut times = Times::default();
    portsim::run_with(&util::scenario(&toml), &mut times);
    for (i, &t) in times.0.iter().enumerate() {
        let k = (i + 1) as f64;
        let want = if k <= 480.0 {
            (7.5 * k).sqrt()
        } else {
            60.0 + (k - 480.0) / 16.0
        };
        assert!(
            (t as f64 / 1e9 - want).abs() < 2e-9,
            "attempt {k} at {t} ns, expected {want} s"
        );
    }
}

/// Mean and standard error of a sample.
fn mean_se(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    let m = xs.iter().sum::<f64>() / n;
    let var = xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0);
    (m, (var / n).sqrt())
}

#[test]
fn littles_law_mean_ports_in_use() {
    // 16,384 ports, Poisson arrivals at λ = 2000/61 per s, exponential hold of
    // mean h = 1 s, TIME_WAIT T = 60 s: each port is busy S = H + T, offered
    // load A = λ·E[S] = 2000, so far from the 16,384 ports that nothing fails
    // and ports in use is an M/G/∞ occupancy N(t). Run R = 3600 s from empty.
    let (lambda, h, t, run_s): (f64, f64, f64, f64) = (2000.0 / 61.0, 1.0, 60.0, 3600.0);
    let toml = format!(
        "name = \"little\"\nseed = 11\nduration = \"{run_s}s\"\n[[destinations]]\naddress = \"10.0.0.5:80\"\n\
         [host]\ntime_wait = \"{t}s\"\n\
         [traffic]\nrate = {lambda:.12}\nhold = {{ dist = \"exponential\", mean = \"{h}s\" }}\n"
    );
    let r = util::run(&toml);
    invariants(&r);
    assert_eq!(r.failures, 0);
    let a = lambda * (h + t);
    // Bias from the empty start: E[N(u)] = A − λ·g(u), g(u) = ∫_u^∞ P(S > x) dx,
    // so E[mean] = A − (λ/R)·∫_0^R g. For S = T + Exp(h):
    //   ∫_0^R g = T²/2 + h·T + h²·(1 − e^{−(R−T)/h}).
    let bias = lambda / run_s * (t * t / 2.0 + h * t + h * h * (1.0 - (-(run_s - t) / h).exp()));
    // Noise: for M/G/∞ the time average over R has variance ≈ λ·E[S²]/R
    // (∫ of the autocovariance λ·g(u) over all lags), with
    // E[S²] = T² + 2·T·h + 2·h² for S = T + Exp(h).
    let sigma = (lambda * (t * t + 2.0 * t * h + 2.0 * h * h) / run_s).sqrt();
    let mean = r.ports.mean_in_use;
    assert!(
        (mean - (a - bias)).abs() <= 5.0 * sigma,
        "mean in use {mean:.2}, Little's law A = {a:.2} less start-up bias {bias:.2}, σ = {sigma:.2}"
    );
    // The report's own Little figure is λ·(mean hold + TIME_WAIT).
    assert!((r.analytic.little_mean_in_use - a).abs() < 1e-6 * a);
    // TIME_WAIT alone: entries start at t_k + H_k (still Poisson at rate λ)
    // and last T, an M/D/∞ occupancy of load λ·T. From empty, for u > T,
    // E[N_tw(u)] = λ·∫_{u−T}^{u} P(H <= v) dv = λT − λh·(e^{−(u−T)/h} − e^{−u/h}),
    // and λ·(u − h·(1 − e^{−u/h})) before; integrating the deficit over [0, R]
    // gives bias' = (λ/R)·(T²/2 + h·T) up to terms in e^{−T/h}. Noise:
    // σ'² ≈ λ·E[T²]/R = λ·T²/R.
    let tw_bias = lambda / run_s * (t * t / 2.0 + h * t);
    let tw_sigma = (lambda * t * t / run_s).sqrt();
    let tw = r.ports.mean_time_wait;
    assert!(
        (tw - (lambda * t - tw_bias)).abs() <= 5.0 * tw_sigma,
        "mean TIME_WAIT {tw:.2}, expected about {:.2}",
        lambda * t - tw_bias
    );
}

/// A service-time law: the hold (TOML) plus TIME_WAIT, with the moments of
/// S = hold + TIME_WAIT computed here from the parameters.
struct Service {
    hold: String,
    time_wait_s: f64,
    /// E[S], E[S³].
    m1: f64,
    m3: f64,
}

/// Φ⁻¹(0.99): lognormal holds are given by median and 99th percentile.
const Z99: f64 = 2.326_347_874_040_841;

fn service(kind: &str, time_wait_s: f64) -> Service {
    let tw = time_wait_s;
    // Raw moments E[H], E[H²], E[H³] of the hold, then of S = H + tw.
    let (hold, h1, h2, h3) = match kind {
        "exponential" => {
            let m = 0.5;
            (
                "{ dist = \"exponential\", mean = \"500ms\" }".to_string(),
                m,
                2.0 * m * m,
                6.0 * m * m * m,
            )
        }
        "constant" => {
            let c = 1.0 - tw;
            (
                format!("\"{}ms\"", (c * 1000.0).round()),
                c,
                c * c,
                c * c * c,
            )
        }
        "uniform" => {
            // U(0, 1 s): E[H^k] = 1/(k+1).
            (
                "{ dist = \"uniform\", min = \"0ms\", max = \"1s\" }".to_string(),
                0.5,
                1.0 / 3.0,
                0.25,
            )
        }
        "lognormal" => {
            // median 0.4 s, p99 2 s: μ = ln 0.4, σ = ln(2/0.4)/z99, E[H^k] = e^{kμ + k²σ²/2}.
            let mu = 0.4f64.ln();
            let s = (2.0f64 / 0.4).ln() / Z99;
            let m = |k: f64| (k * mu + k * k * s * s / 2.0).exp();
            (
                "{ dist = \"lognormal\", median = \"400ms\", p99 = \"2s\" }".to_string(),
                m(1.0),
                m(2.0),
                m(3.0),
            )
        }
        other => panic!("unknown law {other}"),
    };
    Service {
        hold,
        time_wait_s: tw,
        m1: h1 + tw,
        m3: h3 + 3.0 * h2 * tw + 3.0 * h1 * tw * tw + tw * tw * tw,
    }
}

/// Failure ratio after a warm-up, per seed, for a pool of `ports`. Each call
/// site passes its own `seeds` range so that cases do not share random draws.
fn loss_ratios(
    host: &str,
    ports: u32,
    sv: &Service,
    rate: f64,
    seeds: std::ops::Range<u64>,
    run_s: u64,
    warm_s: f64,
) -> Vec<f64> {
    seeds
        .map(|seed| {
            let close = if sv.time_wait_s > 0.0 { "client" } else { "reset" };
            let toml = format!(
                "name = \"erlang\"\nseed = {seed}\nduration = \"{run_s}s\"\n[output]\nbin = \"1s\"\n\
                 [host]\n{host}\nport_range = \"50000-{}\"\ntime_wait = \"{}ms\"\n\
                 [[destinations]]\naddress = \"10.0.0.5:80\"\n\
                 [traffic]\nrate = {rate}\nhold = {}\nclose = \"{close}\"\n",
                50000 + ports - 1,
                (sv.time_wait_s * 1000.0).round(),
                sv.hold,
            );
            let r = util::run(&toml);
            invariants(&r);
            ratio_after(&r, warm_s)
        })
        .collect()
}

/// Failure ratio of the attempts made after `warm_s` seconds, from the time series.
fn ratio_after(r: &Report, warm_s: f64) -> f64 {
    let first = (warm_s / r.timeseries.bin_s).ceil() as usize;
    assert!(first < r.bins.len(), "warm-up longer than the run");
    let (att, fail) = r.bins[first..]
        .iter()
        .fold((0u64, 0u64), |(a, f), b| (a + b.attempts, f + b.failures));
    fail as f64 / att as f64
}

/// Poisson arrivals at `a / E[S]` per second with the rate written with 6
/// decimals; returns (rate, the offered load that rate gives).
fn rate_for(a: f64, sv: &Service) -> (f64, f64) {
    let rate: f64 = format!("{:.6}", a / sv.m1).parse().expect("a number");
    (rate, rate * sv.m1)
}

#[test]
fn erlang_b_failure_ratio_for_exhaustive_allocators() {
    // 50 ports, Poisson arrivals, offered load A = 45 and 60 erlangs, service
    // S = hold + TIME_WAIT of mean 1 s. An allocator that finds a free port
    // whenever one exists makes the pool an M/G/c/c loss system, whose
    // failure ratio is Erlang B(c, A) whatever the law of S (insensitivity):
    // exponential, constant, uniform and lognormal holds all give B.
    //
    // 30 independent seeds × 2000 s (2000 mean services). Each seed's ratio
    // is taken after a warm-up of W = 50 s; the 30 ratios are i.i.d., so their
    // mean is within 5 standard errors of its expectation except with
    // probability < 1e-4 (Student t, 29 degrees of freedom).
    //
    // Warm-up bias: started empty, the occupancy that an infinite pool would
    // have at time u has mean A·(1 − P(S_e > u)), S_e the equilibrium residual
    // of S, with P(S_e > W) <= E[S_e²]/W² = E[S³]/(3·E[S]·W²) =: ε. Counting
    // the loss system as offered at least A·(1 − ε) after W bounds the bias by
    // B(c, A) − B(c, A·(1 − ε)), of order 1e-3·B here.
    let (ports, seeds, run_s, warm_s) = (50u32, 30u64, 2000u64, 50.0);
    let cases = [
        ("rfc6056-1", "exponential", 0.5, 45.0),
        ("rfc6056-1", "lognormal", 0.5, 60.0),
        ("sequential", "constant", 0.0, 45.0),
        ("sequential", "uniform", 0.5, 60.0),
        ("rfc6056-3", "lognormal", 0.5, 45.0),
        ("rfc6056-3", "exponential", 0.0, 60.0),
        ("rfc6056-4", "uniform", 0.5, 45.0),
        ("rfc6056-4", "constant", 0.5, 60.0),
    ];
    for (i, (allocator, law, tw, a_target)) in (0u64..).zip(cases) {
        let sv = service(law, tw);
        let (rate, a) = rate_for(a_target, &sv);
        let b = erlang_b(u64::from(ports), a);
        let eps = sv.m3 / (3.0 * sv.m1 * warm_s * warm_s);
        let bias = b - erlang_b(u64::from(ports), a * (1.0 - eps));
        let host = format!("allocator = \"{allocator}\"");
        let seeds = 1000 * (i + 1)..1000 * (i + 1) + seeds;
        let (m, se) = mean_se(&loss_ratios(&host, ports, &sv, rate, seeds, run_s, warm_s));
        assert!(
            (m - b).abs() <= 5.0 * se + bias,
            "{allocator}, {law} hold, A = {a:.3}: simulated {m:.5} ± {se:.5}, Erlang B {b:.5} (bias bound {bias:.2e})"
        );
    }
}

/// Failure ratio of RFC 6056 algorithm 2 with `tries` picks over `c` ports at
/// offered load `a`, exponential service, no TIME_WAIT. With k ports busy a
/// request fails iff all `tries` uniform picks land on busy ports, probability
/// (k/c)^tries, even when k < c. The occupancy is then a birth-death chain with
/// birth rate λ·(1 − (k/c)^tries) and death rate k·μ, so
///   π(k+1)/π(k) = A·(1 − (k/c)^tries)/(k + 1),
/// and (Poisson arrivals see time averages) the failure ratio is Σ π(k)·(k/c)^tries.
fn rfc6056_2_model(c: u32, a: f64, tries: u32) -> f64 {
    let fail = |k: u32| (f64::from(k) / f64::from(c)).powi(tries as i32);
    let mut pi = vec![1.0f64];
    for k in 0..c {
        pi.push(pi[k as usize] * a * (1.0 - fail(k)) / f64::from(k + 1));
    }
    let z: f64 = pi.iter().sum();
    pi.iter()
        .enumerate()
        .map(|(k, p)| p / z * fail(k as u32))
        .sum()
}

#[test]
fn rfc6056_2_fails_with_ports_free() {
    // The birth-death model above (exact for exponential service) against the
    // simulation, and both above Erlang B: algorithm 2 fails while ports are
    // free, unlike the exhaustive allocators. The model gives 1.2× Erlang B at
    // A = 40 with num = c = 50 tries (the default), 2.4× at A = 45 with 10.
    // 30 seeds × 2000 s, warm-up W = 50 s; tolerance 5 standard errors plus
    // the warm-up bound ε = E[S³]/(3·E[S]·W²) of the Erlang B test, applied
    // to the model: model(A) − model(A·(1 − ε)).
    let (c, seeds, run_s, warm_s) = (50u32, 30u64, 2000u64, 50.0);
    let sv = service("exponential", 0.0);
    let eps = sv.m3 / (3.0 * sv.m1 * warm_s * warm_s);
    for (i, (a_target, tries)) in (0u64..).zip([(40.0, None), (45.0, Some(10u32))]) {
        let (rate, a) = rate_for(a_target, &sv);
        let predicted = rfc6056_2_model(c, a, tries.unwrap_or(c));
        let bias = predicted - rfc6056_2_model(c, a * (1.0 - eps), tries.unwrap_or(c));
        let b = erlang_b(u64::from(c), a);
        let host = match tries {
            Some(t) => format!("allocator = \"rfc6056-2\"\nrfc6056_2_tries = {t}"),
            None => "allocator = \"rfc6056-2\"".to_string(),
        };
        let seeds = 20_000 + 1000 * i..20_000 + 1000 * i + seeds;
        let (m, se) = mean_se(&loss_ratios(&host, c, &sv, rate, seeds, run_s, warm_s));
        let ctx = format!("A = {a:.3}, tries {tries:?}: simulated {m:.5} ± {se:.5}, model {predicted:.5}, Erlang B {b:.5}");
        assert!((m - predicted).abs() <= 5.0 * se + bias, "{ctx}");
        assert!(m - 5.0 * se > b, "not above Erlang B: {ctx}");
    }
}

#[test]
fn pools_per_destination_follow_erlang_b() {
    // Two destinations picked at random with equal weights split a Poisson
    // stream into two independent Poisson streams of A/2 each. Where connect()
    // shares ports across destinations each destination is its own pool of c
    // ports: failure ratio B(c, A/2). On macOS (no sharing) the two share one
    // pool: B(c, A). A = 90, c = 50: B(50, 45) ≈ 0.05 vs B(50, 90) ≈ 0.46.
    // Exponential service of mean 1 s (hold 0.5 s + TIME_WAIT 0.5 s); 30 seeds
    // × 1000 s, ratios after W = 50 s, tolerance 5 standard errors (Student t,
    // 29 degrees of freedom: exceeded with probability < 1e-4) plus the warm-up
    // bound of the Erlang B test.
    let (c, a_total, warm_s) = (50u32, 90.0, 50.0);
    let sv = service("exponential", 0.5);
    for (os, load) in [("generic", a_total / 2.0), ("macos", a_total)] {
        let b = erlang_b(u64::from(c), load);
        let ratios: Vec<f64> = (30_000..30_030)
            .map(|seed| {
                let toml = format!(
                    "name = \"pools\"\nseed = {seed}\nduration = \"1000s\"\n\
                     [host]\nos = \"{os}\"\nport_range = \"50000-{}\"\ntime_wait = \"500ms\"\n\
                     [[destinations]]\naddress = \"10.0.0.5:80\"\ncount = 2\n\
                     [traffic]\nrate = {a_total}\nhold = {}\n",
                    50000 + c - 1,
                    sv.hold
                );
                let r = util::run(&toml);
                invariants(&r);
                assert!(
                    (r.analytic.erlang_b_failure_ratio - b).abs() <= 1e-12,
                    "{os}: analytic figure"
                );
                ratio_after(&r, warm_s)
            })
            .collect();
        let (m, se) = mean_se(&ratios);
        let eps = sv.m3 / (3.0 * sv.m1 * warm_s * warm_s);
        let bias = b - erlang_b(u64::from(c), load * (1.0 - eps));
        assert!(
            (m - b).abs() <= 5.0 * se + bias,
            "{os}: simulated {m:.5} ± {se:.5}, Erlang B {b:.5}"
        );
    }
}

/// Blocking of a GI/M/c/c loss system (Takács): with φ the Laplace–Stieltjes
/// transform of the time between arrivals and μ the service rate,
///   1/B = Σ_{j=0}^{c} C(c, j) · Π_{i=1}^{j} (1 − φ(iμ)) / φ(iμ).
/// For Poisson arrivals, φ(s) = λ/(λ + s), this is Erlang B.
fn gi_m_c_c(c: u32, mu: f64, phi: impl Fn(f64) -> f64) -> f64 {
    let (mut sum, mut binom, mut prod) = (1.0f64, 1.0f64, 1.0f64);
    for j in 1..=c {
        binom *= f64::from(c - j + 1) / f64::from(j);
        let p = phi(f64::from(j) * mu);
        prod *= (1.0 - p) / p;
        sum += binom * prod;
    }
    1.0 / sum
}

/// Failure ratios of `seeds` runs of two destinations picked by `pick` from
/// one Poisson stream of 90/s, each a pool of 50 ports (4-tuple sharing),
/// exponential holds of 1 s, reset close.
fn two_pool_ratios(pick: &str, seeds: std::ops::Range<u64>, warm_s: f64) -> (Vec<f64>, Report) {
    let mut last = None;
    let ratios = seeds
        .map(|seed| {
            let toml = format!(
                "name = \"split\"\nseed = {seed}\nduration = \"1000s\"\n\
                 [host]\nport_range = \"50000-50049\"\n\
                 [[destinations]]\naddress = \"10.0.0.5:80\"\ncount = 2\n\
                 [traffic]\nrate = 90\npick = \"{pick}\"\nclose = \"reset\"\n\
                 hold = {{ dist = \"exponential\", mean = \"1s\" }}\n"
            );
            let r = util::run(&toml);
            invariants(&r);
            let x = ratio_after(&r, warm_s);
            last = Some(r);
            x
        })
        .collect();
    (ratios, last.expect("at least one seed"))
}

#[test]
fn round_robin_destinations_are_not_poisson() {
    // Round-robin over two destinations gives each one every other arrival of
    // a Poisson stream of rate λ = 90/s: Erlang-2 gaps, φ(s) = (λ/(λ + s))²,
    // smoother than Poisson, so each pool of 50 ports with exponential
    // service (μ = 1/s) blocks less than Erlang B(50, 45): Takács' GI/M/c/c
    // formula gives the exact figure. Picking at random instead splits the
    // stream into two Poisson streams: Erlang B. 30 seeds × 1000 s each, 5
    // standard errors, warm-up W = 50 s (bound as in the Erlang B test; here
    // the service is exponential, E[S³]/(3·E[S]·W²) ≈ 8e-4).
    let lambda = 90.0;
    let b = erlang_b(50, 45.0);
    let takacs = gi_m_c_c(50, 1.0, |s| (lambda / (lambda + s)).powi(2));
    let poisson_check = gi_m_c_c(50, 1.0, |s| 45.0 / (45.0 + s));
    assert!(
        (poisson_check - b).abs() < 1e-12,
        "Takács reduces to Erlang B: {poisson_check} vs {b}"
    );
    assert!(takacs < 0.8 * b, "the model itself: {takacs} vs {b}");
    let warm_s = 50.0;
    let eps = 6.0 / (3.0 * warm_s * warm_s);
    // The warm-up deficit of the occupancy depends on the arrival rate, not
    // on the pattern, so the same load allowance applies to both picks.
    let bias = b - erlang_b(50, 45.0 * (1.0 - eps));
    for (pick, want, seeds) in [
        ("round-robin", takacs, 41_000..41_030),
        ("weighted", b, 40_000..40_030),
    ] {
        let (ratios, _) = two_pool_ratios(pick, seeds, warm_s);
        let (m, se) = mean_se(&ratios);
        assert!(
            (m - want).abs() <= 5.0 * se + bias,
            "{pick}: simulated {m:.5} ± {se:.5}, expected {want:.5}"
        );
    }
}

#[test]
fn analytic_flags_round_robin_pools() {
    // See `round_robin_destinations_are_not_poisson`: with pick = "round-robin"
    // over several pools the failure ratio is not Erlang B (Takács instead),
    // so the report must not claim that Erlang B applies.
    let (_, r) = two_pool_ratios("round-robin", 1..2, 50.0);
    assert!(
        !r.analytic.erlang_b_applies && r.analytic.erlang_b_caveat.is_some(),
        "{:?}",
        r.analytic
    );
    // Likewise for source addresses taken in turn with bind().
    let d = Det {
        host: "addresses = 2".into(),
        traffic: "bind = \"bind\"\nsource = \"round-robin\"\narrivals = \"poisson\"".into(),
        ..Det::default()
    };
    let toml = d.toml().replace("arrivals = \"constant\"\n", "");
    let r = util::run(&toml);
    assert!(!r.analytic.erlang_b_applies, "{:?}", r.analytic);
}

#[test]
fn analytic_erlang_b_matches_the_formula() {
    // B(c, A) = (A^c/c!) / Σ_{k<=c} A^k/k!, summed term by term (t_k = t_{k−1}·A/k),
    // independently of the library's recursion.
    let direct = |c: u64, a: f64| {
        let (mut t, mut sum) = (1.0f64, 1.0f64);
        for k in 1..=c {
            t *= a / k as f64;
            sum += t;
        }
        t / sum
    };
    for (c, a) in [
        (1u64, 1.0),
        (2, 1.0),
        (10, 5.0),
        (50, 45.0),
        (50, 60.0),
        (100, 80.0),
        (150, 200.0),
    ] {
        let (got, want) = (erlang_b(c, a), direct(c, a));
        assert!(
            (got - want).abs() <= 1e-12 * want.max(1e-300),
            "B({c}, {a}) = {got}, expected {want}"
        );
    }
    assert_eq!(erlang_b(1, 1.0), 0.5);
    // The report's figure for one pool: 50 ports, 20/s × (1 s + 1.5 s) = 50 erlangs.
    let toml = "name = \"a\"\nduration = \"10s\"\n[host]\nport_range = \"50000-50049\"\ntime_wait = \"1500ms\"\n\
                [[destinations]]\naddress = \"10.0.0.5:80\"\n[traffic]\nrate = 20\nhold = \"1s\"\n";
    let r = util::run(toml);
    assert!((r.analytic.offered_load - 50.0).abs() < 1e-9);
    assert_eq!(r.analytic.ports_per_pool, 50);
    assert_eq!(r.analytic.pools, 1);
    let want = direct(50, 50.0);
    assert!(
        (r.analytic.erlang_b_failure_ratio - want).abs() <= 1e-12,
        "{} vs {want}",
        r.analytic.erlang_b_failure_ratio
    );
    assert!((r.analytic.max_rate_per_pool - 50.0 / 2.5).abs() < 1e-9);
}
