//! Deterministic traffic (constant arrivals, constant holds) gives exact
//! counts: closed forms, and an independent event loop in whole nanoseconds.
//!
//! Deterministic scenarios use a rate of 8/s: 1/8 s is exact in binary, so
//! attempt k arrives at exactly k × 125 ms and every count below is an
//! integer identity, not an approximation.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

use portsim::Report;

use super::{invariants, Det};
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

#[test]
fn bursts_are_exact_for_deterministic_traffic() {
    use portsim::scenario::Builder;
    use std::time::Duration;
    // One port held 1 s, no TIME_WAIT (server close), an attempt every
    // 0.25 s until 9.9 s: the attempt at k + 0.25 s takes the port the one
    // at k − 0.75 s frees at that instant; the three after it fail.
    let sc = Builder::new("bursts")
        .duration(Duration::from_millis(9900))
        .port_range(60000, 60000)
        .arrivals("constant")
        .rate(4.0)
        .hold(Duration::from_secs(1))
        .close("server")
        .build()
        .unwrap();
    let r = portsim::run(&sc);
    invariants(&r);
    assert_eq!((r.attempts, r.established), (39, 10));
    let b = r.bursts;
    // [0, 1 s): 2 of 3 failed; every later second 3 of 4.
    assert_eq!(b.worst_1s, 0.75);
    // All 39 attempts fall in the first 10 s and 60 s windows: 29 failed.
    assert_eq!(b.worst_10s, 29.0 / 39.0);
    assert_eq!(b.worst_60s, 29.0 / 39.0);
    assert_eq!(b.seconds_with_failures, 10);
    // Blocked from each k + 0.5 s to the success at k + 1.25 s.
    assert_eq!(b.longest_blocked_s, 0.75);
    // Nothing fails: every burst figure is 0.
    let calm = portsim::run(
        &Builder::new("calm")
            .duration(Duration::from_secs(10))
            .arrivals("constant")
            .rate(4.0)
            .hold(Duration::from_secs(1))
            .build()
            .unwrap(),
    );
    assert_eq!(calm.failures, 0);
    assert_eq!(
        (
            calm.bursts.worst_1s,
            calm.bursts.seconds_with_failures,
            calm.bursts.longest_blocked_s
        ),
        (0.0, 0, 0.0)
    );
}

#[test]
fn rates_at_the_first_failure_follow_the_profile() {
    use portsim::scenario::Builder;
    use std::time::Duration;
    let base = || {
        Builder::new("rates")
            .duration(Duration::from_secs(120))
            .port_range(60000, 60999)
            .arrivals("constant")
            .hold(Duration::from_secs(1))
    };
    // A ramp from 5/s to 65/s over 100 s after 10 s at 5/s: 1,000 ports
    // with 61 s held each run out below 65/s. The rate reported at the
    // first failure is the profile's at that instant, and the highest rate
    // reached before it is that same rate (the ramp only rises).
    let mut ramp = toml::Table::new();
    ramp.insert("from".into(), 5.0.into());
    ramp.insert("to".into(), 65.0.into());
    ramp.insert("over".into(), "100s".into());
    ramp.insert("at".into(), "10s".into());
    let r = util::run(&base().set("traffic.ramp", toml::Value::Table(ramp)).text());
    let f = r.first_failure.expect("the ramp runs out");
    let expected = 5.0 + 0.6 * (f.time_s - 10.0);
    assert!((f.rate.unwrap() - expected).abs() < 1e-9, "{f:?}");
    assert_eq!(r.highest_rate_before_failure, f.rate);
    // A step: 5/s, then 800/s from 20 s to 30 s, then 5/s. The ports run
    // out inside the step, at 800/s.
    let r = util::run(
        &base()
            .schedule(&[
                (Duration::ZERO, 5.0),
                (Duration::from_secs(20), 800.0),
                (Duration::from_secs(30), 5.0),
            ])
            .text(),
    );
    assert_eq!(r.first_failure.unwrap().rate, Some(800.0));
    assert_eq!(r.highest_rate_before_failure, Some(800.0));
    // Nothing fails: the highest rate of the whole run.
    let r = util::run(
        &base()
            .schedule(&[(Duration::ZERO, 2.0), (Duration::from_secs(60), 4.0)])
            .text(),
    );
    assert_eq!((r.failures, r.highest_rate_before_failure), (0, Some(4.0)));
    // A constant rate: neither figure, and report.json has neither key.
    let r = util::run(&base().rate(5.0).text());
    assert_eq!(r.highest_rate_before_failure, None);
    let json = r.to_json();
    assert!(!json.contains("highest_rate_before_failure"), "{json}");
}

#[test]
fn constant_arrivals_at_the_end_of_the_run_are_counted() {
    use portsim::scenario::Builder;
    use std::time::Duration;
    // The k-th constant arrival is at exactly k / rate, and an arrival at
    // the end of the run counts: rate × duration attempts, however the
    // rate rounds in binary (1/3 and 1/30,000 do not).
    for (rate, secs) in [(30_000.0, 12), (3.0, 10), (7.0, 3), (8.0, 60)] {
        let r = portsim::run(
            &Builder::new("end")
                .duration(Duration::from_secs(secs))
                .port_range(1, 65535)
                .destination("10.0.0.1:80", 1000)
                .arrivals("constant")
                .rate(rate)
                .hold(Duration::from_millis(1))
                .close("server")
                .build()
                .unwrap(),
        );
        assert_eq!(
            r.attempts as f64,
            rate * secs as f64,
            "{rate}/s for {secs} s"
        );
    }
    // A ramp from 300/s down to 0 over 100 s hands out its whole integral,
    // 300 × 100 / 2 = 15,000, the last at exactly 100 s.
    let mut ramp = toml::Table::new();
    ramp.insert("from".into(), 300.0.into());
    ramp.insert("to".into(), 0.0.into());
    ramp.insert("over".into(), "100s".into());
    let r = portsim::run(
        &Builder::new("down")
            .duration(Duration::from_secs(200))
            .port_range(1, 65535)
            .arrivals("constant")
            .set("traffic.ramp", toml::Value::Table(ramp))
            .hold(Duration::from_millis(1))
            .close("server")
            .build()
            .unwrap(),
    );
    assert_eq!(r.attempts, 15_000);
}

#[test]
fn server_close_counts_reuses_inside_the_servers_time_wait() {
    // close = "server": the client frees the port at close and the server
    // holds the 4-tuple in TIME_WAIT for host.time_wait. With the sequential
    // allocator, 100 ports, 8 arrivals/s (τ = 125 ms) and a hold of 1 s,
    // attempt k takes port (k − 1) mod 100 (its last holder arrived 100 τ =
    // 12.5 s earlier and closed 1 s later), so every attempt after the
    // first 100 reuses a 4-tuple 11.5 s after it closed: 2,400 attempts in
    // 300 s, 2,300 reuses. They count when 11.5 s < TIME_WAIT (strictly).
    let case = |time_wait: &str, destinations: u32, pick: &str| {
        let r = Det {
            close: "server",
            time_wait: time_wait.into(),
            destinations,
            host: "allocator = \"sequential\"".into(),
            traffic: format!("pick = \"{pick}\""),
            ..Det::default()
        }
        .run();
        assert_eq!((r.attempts, r.failures), (2400, 0), "{time_wait}");
        assert_eq!(r.reuse_interval_s.count, 2300);
        // The histogram keeps 3 significant digits.
        let (lo, hi) = (
            r.reuse_interval_s.min.unwrap(),
            r.reuse_interval_s.max.unwrap(),
        );
        assert!(
            (lo - 11.5).abs() < 0.0115 && (hi - 11.5).abs() < 0.0115,
            "{lo} {hi}"
        );
        r.reuse_within_server_time_wait.expect("close = server")
    };
    let inside = case("60s", 1, "weighted");
    assert_eq!(inside.count, 2300);
    assert_eq!(inside.share, 2300.0 / 2400.0);
    assert_eq!(case("11501ms", 1, "weighted").count, 2300);
    assert_eq!(case("11500ms", 1, "weighted").count, 0);
    assert_eq!(case("10s", 1, "weighted").count, 0);
    // Two destinations taken in turn: attempt k goes to destination
    // (k − 1) mod 2 on port (k − 1) mod 100, so a port always serves the
    // same destination and every reuse is of the same 4-tuple.
    assert_eq!(case("60s", 2, "round-robin").count, 2300);
    // Other closes leave no TIME_WAIT on the server: no figure.
    let r = Det::default().run();
    assert!(r.reuse_within_server_time_wait.is_none());
    assert!(!r.to_json().contains("reuse_within_server_time_wait"));
}
