//! The `linux` preset against the live Linux kernel.
//!
//! Each case runs twice: as real connect()s inside a fresh network namespace
//! ([`kernel_driver`]), and as a portsim scenario with `os = "linux"` and the
//! same range, reserved ports, destinations, close mode and sysctls. The
//! kernel is the reference. Compared: connections established, failures, the
//! 1-based attempt of the first failure, distinct ports used, the parity of
//! the ports chosen, and TIME_WAIT entries left at the end.
//!
//! Where the kernel is deterministic (what fails and when, the even-then-odd
//! passes, exclusive bind(0)) the counts must match exactly. Where the choice
//! of port is random in both (a port freed at once is found again by a random
//! walk of even steps 2..=16 over the even ports), the parity must still match
//! exactly and distinct ports must fall in a bound derived below. The only
//! timing-dependent cases are the `tcp_tw_reuse` ones, paced so that every
//! decision has a 250 ms margin.
//!
//! Without root, `unshare` or `ip`, or off Linux, each case prints why it was
//! skipped and passes.

use super::kernel_driver::{run_case, CloseMode, KernelCase, KernelResult};
use portsim::sim::Observer;

/// What portsim did, in the kernel driver's terms.
struct Model {
    ports: Vec<Option<u16>>,
    report: portsim::Report,
}

struct Record(Vec<Option<u16>>);

impl Observer for Record {
    fn on_connect(&mut self, _t: u64, port: u16, _dest: u32) {
        self.0.push(Some(port));
    }
    fn on_fail(&mut self, _t: u64, _dest: u32) {
        self.0.push(None);
    }
}

const LOW: u16 = 40000;
const HIGH: u16 = 40199;

fn case(name: &str, close: CloseMode, attempts: u32) -> KernelCase {
    KernelCase::new(name, (LOW, HIGH), close, attempts)
}

/// The same case as a portsim scenario.
fn model(c: &KernelCase) -> Model {
    let reserved: Vec<String> = c
        .reserved
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|s| format!("\"{s}\""))
        .collect();
    let (close, hold) = match c.close {
        // Held connections never close within the run.
        CloseMode::Hold => ("client", "1000h"),
        CloseMode::Client => ("client", "100us"),
        CloseMode::Server => ("server", "100us"),
        CloseMode::Reset => ("reset", "100us"),
    };
    let text = format!(
        r#"name = "{name}"
seed = 1
max_connections = {attempts}
[host]
os = "linux"
port_range = "{lo}-{hi}"
reserved_ports = [{reserved}]
tw_reuse = {reuse}
tw_reuse_delay = "{delay}ms"
max_tw_buckets = {buckets}
addresses = ["127.0.0.1"]
[[destinations]]
address = "127.0.0.1:{dport}"
count = {dests}
[traffic]
arrivals = "constant"
rate = {rate}
pick = "round-robin"
hold = "{hold}"
close = "{close}"
bind = "{bind}"
"#,
        name = c.name,
        attempts = c.attempts,
        lo = c.port_range.0,
        hi = c.port_range.1,
        reserved = reserved.join(", "),
        reuse = c.tw_reuse != 0,
        delay = c.tw_reuse_delay_ms.unwrap_or(1000),
        buckets = c.max_tw_buckets.unwrap_or(262_144),
        dport = c.dport,
        dests = c.destinations,
        rate = c.pace_per_s.unwrap_or(1000.0),
        bind = if c.bind0 { "bind" } else { "connect" },
    );
    let sc = super::util::scenario(&text);
    let mut rec = Record(Vec::new());
    let report = portsim::run_with(&sc, &mut rec);
    Model {
        ports: rec.0,
        report,
    }
}

/// Run the case on the kernel; `None` when skipped (the reason is printed).
fn kernel(c: &KernelCase) -> Option<KernelResult> {
    match run_case(c) {
        Ok(Ok(r)) => {
            assert_eq!(r.ports.len(), c.attempts as usize, "{}", c.name);
            Some(r)
        }
        Ok(Err(reason)) => {
            eprintln!("kernel case {} skipped: {reason}", c.name);
            None
        }
        Err(e) => panic!("kernel driver failed on {}: {e}", c.name),
    }
}

/// The counts the kernel and the model are compared on.
#[derive(Debug, PartialEq, Eq)]
struct Counts {
    established: usize,
    failures: usize,
    first_failure: Option<usize>,
    distinct: usize,
}

/// 220 attempts on the 200 ports, every port pinned: 200 established, the
/// rest fail from attempt 201.
const RANGE_USED_UP: Counts = Counts {
    established: 200,
    failures: 20,
    first_failure: Some(201),
    distinct: 200,
};

fn counts(ports: &[Option<u16>]) -> Counts {
    let mut distinct: Vec<u16> = ports.iter().flatten().copied().collect();
    distinct.sort_unstable();
    distinct.dedup();
    Counts {
        established: ports.iter().filter(|p| p.is_some()).count(),
        failures: ports.iter().filter(|p| p.is_none()).count(),
        first_failure: ports.iter().position(Option::is_none).map(|i| i + 1),
        distinct: distinct.len(),
    }
}

/// Parity (0 even, 1 odd) of the successful ports, per destination in turn.
fn parities(ports: &[Option<u16>], destinations: u8) -> Vec<Vec<u16>> {
    let mut out = vec![Vec::new(); usize::from(destinations)];
    for (k, p) in ports.iter().enumerate() {
        if let Some(p) = p {
            out[k % usize::from(destinations)].push(p % 2);
        }
    }
    out
}

fn check_ports_in_range(c: &KernelCase, ports: &[Option<u16>], who: &str) {
    for p in ports.iter().flatten() {
        assert!(
            (c.port_range.0..=c.port_range.1).contains(p),
            "{}: {who} used port {p} outside the range",
            c.name
        );
    }
}

/// Runs of a kernel case before a departure from its expectation fails.
/// With the CPUs saturated by other work (three busy loops on two cores),
/// the kernel now and then lets one connect of `client-close` past a range
/// of TIME_WAIT entries (`tcp_tw_reuse` = 0): two runs of seven did. Five
/// runs keep a busy CI machine from failing on it; a model that differs
/// from the kernel fails whatever the runs.
const KERNEL_RUNS: usize = 5;

/// Deterministic case: the kernel shows the expected counts, portsim the
/// same counts and the same parity sequence per destination.
///
/// The kernel runs with real sockets beside the rest of the suite, and now
/// and then it lets one or two connects more through than the design allows
/// (seen in about one client-close run in twelve on Linux 6.18, with 200
/// sockets in TIME_WAIT at the end and the same ports reused; not explained
/// yet, and not timing: pacing the connects does not change it). A run that
/// departs from the expectation is repeated, up to three runs in all, each
/// departure printed; three in a row fail the test.
fn exact(c: &KernelCase, expect: Counts) -> Option<(KernelResult, Model)> {
    exact_with(c, expect, |_| true)
}

/// [`exact`], where a run must also satisfy `also` (e.g. how many sockets
/// the kernel left in TIME_WAIT) to count as the designed experiment.
fn exact_with(
    c: &KernelCase,
    expect: Counts,
    also: impl Fn(&KernelResult) -> bool,
) -> Option<(KernelResult, Model)> {
    let mut k = kernel(c)?;
    for _ in 1..KERNEL_RUNS {
        if counts(&k.ports) == expect && also(&k) {
            break;
        }
        eprintln!(
            "{}: the kernel gave {:?} where the case expects {expect:?} ({} in TIME_WAIT at the end, errnos {:?}); running it again",
            c.name,
            counts(&k.ports),
            k.time_wait_at_end,
            k.errnos
        );
        k = kernel(c)?;
    }
    let m = model(c);
    check_ports_in_range(c, &k.ports, "the kernel");
    check_ports_in_range(c, &m.ports, "portsim");
    let (kc, mc) = (counts(&k.ports), counts(&m.ports));
    eprintln!(
        "{} (kernel {}): kernel {kc:?}, portsim {mc:?}",
        c.name, k.kernel
    );
    assert_eq!(
        kc, expect,
        "{}: the kernel did not do what the case expects",
        c.name
    );
    assert_eq!(mc, kc, "{}: portsim differs from the kernel", c.name);
    assert_eq!(
        parities(&m.ports, c.destinations),
        parities(&k.ports, c.destinations),
        "{}: parity of the ports chosen differs",
        c.name
    );
    assert_eq!(m.report.attempts, u64::from(c.attempts));
    assert_eq!(
        m.report.first_failure.as_ref().map(|f| f.attempt as usize),
        kc.first_failure
    );
    Some((k, m))
}

#[test]
fn one_destination_runs_out_after_every_port_even_first() {
    // 200 ports, every connection held: 100 even ports, then 100 odd, then
    // EADDRNOTAVAIL from attempt 201 on.
    exact(
        &case("one-destination-hold", CloseMode::Hold, 220),
        RANGE_USED_UP,
    );
}

#[test]
fn destinations_share_ports_by_four_tuple() {
    // Three listening addresses: each gets the whole range (the port is shared,
    // only the 4-tuple must be unique), so 600 succeed and attempt 601 fails.
    let mut c = case("three-destinations-hold", CloseMode::Hold, 620);
    c.destinations = 3;
    exact(
        &c,
        Counts {
            established: 600,
            failures: 20,
            first_failure: Some(601),
            distinct: 200,
        },
    );
}

#[test]
fn bind_zero_is_exclusive_and_odd_first() {
    // bind(0) then connect(): a port is exclusive on the address whatever the
    // destination, so three destinations share 200 ports; odd ports first.
    let mut c = case("bind0-three-destinations", CloseMode::Hold, 220);
    c.destinations = 3;
    c.bind0 = true;
    exact(&c, RANGE_USED_UP);
}

#[test]
fn client_close_pins_ports_in_time_wait() {
    // The client closes first: every port sits in TIME_WAIT for 60 s, so the
    // range is used up exactly as if the connections were held.
    let c = case("client-close", CloseMode::Client, 220);
    if let Some((k, m)) = exact_with(&c, RANGE_USED_UP, |k| k.time_wait_at_end == 200) {
        assert_eq!(k.time_wait_at_end, 200);
        assert_eq!(m.report.ports.time_wait_at_end, 200);
    }
}

#[test]
fn reserved_ports_are_skipped() {
    // 10 reserved (5 even, 5 odd) plus one odd: 189 usable, 95 even first.
    let mut c = case("reserved-ports", CloseMode::Hold, 220);
    c.reserved = "40010-40019,40101".into();
    exact(
        &c,
        Counts {
            established: 189,
            failures: 31,
            first_failure: Some(190),
            distinct: 189,
        },
    );
}

/// Random-walk cases: every attempt succeeds, every port chosen is even (the
/// first pass always finds one), and the walk over the 100 even ports covers
/// nearly all of them.
///
/// Bound: with nothing held, successive starts move by 2·U + 2, U uniform in
/// 0..8, i.e. 1 to 8 even slots (mean 4.5). 400 attempts advance about 1,800
/// slots, 18 laps of the 100 even ports; a renewal process with mean step 4.5
/// lands on a given slot in a lap with probability 1/4.5, so a slot is missed
/// in all 18 laps with probability about (1 − 1/4.5)^18 ≈ 0.011: about 1.1 of
/// 100 even ports go unused, and 6 or more (distinct < 95) has probability
/// about 0.1 % (Poisson with mean 1.1). A new 10 s hash bucket only restarts
/// the walk elsewhere, so the bound holds either way.
fn random_walk(c: &KernelCase) -> Option<(KernelResult, Model)> {
    let k = kernel(c)?;
    let m = model(c);
    check_ports_in_range(c, &k.ports, "the kernel");
    check_ports_in_range(c, &m.ports, "portsim");
    let (kc, mc) = (counts(&k.ports), counts(&m.ports));
    eprintln!(
        "{} (kernel {}): kernel {kc:?}, portsim {mc:?}",
        c.name, k.kernel
    );
    for (who, r) in [("kernel", &kc), ("portsim", &mc)] {
        assert_eq!(r.established, c.attempts as usize, "{}: {who}", c.name);
        assert_eq!(r.failures, 0, "{}: {who}", c.name);
        assert!((95..=100).contains(&r.distinct), "{}: {who} {r:?}", c.name);
    }
    for (who, ports) in [("kernel", &k.ports), ("portsim", &m.ports)] {
        assert!(
            ports.iter().flatten().all(|p| p % 2 == 0),
            "{}: {who} chose an odd port while even ones were free",
            c.name
        );
    }
    Some((k, m))
}

#[test]
fn server_close_frees_the_port_at_once() {
    random_walk(&case("server-close", CloseMode::Server, 400));
}

#[test]
fn reset_close_skips_time_wait() {
    if let Some((k, m)) = random_walk(&case("reset-close", CloseMode::Reset, 400)) {
        assert_eq!(k.time_wait_at_end, 0);
        assert_eq!(m.report.ports.time_wait_at_end, 0);
    }
}

#[test]
fn max_tw_buckets_caps_time_wait() {
    // tcp_max_tw_buckets = 50 < 200 ports: the first 50 closes enter
    // TIME_WAIT, later ones close at once, so at most 50 even ports are ever
    // blocked and the walk never leaves the even pass.
    let mut c = case("max-tw-buckets", CloseMode::Client, 400);
    c.max_tw_buckets = Some(50);
    // Paced, so each close handshake completes before the next connect even
    // on a loaded machine: a close still in progress holds its port outside
    // the TIME_WAIT count.
    c.pace_per_s = Some(200.0);
    if let Some((k, m)) = random_walk(&c) {
        assert_eq!(k.time_wait_at_end, 50);
        assert_eq!(m.report.ports.time_wait_at_end, 50);
        // The run stops at the 400th attempt, with that connection still
        // open: 399 closes, 50 into TIME_WAIT.
        assert_eq!(m.report.time_wait_skipped, 349);
    }
}

#[test]
fn tw_reuse_below_the_delay_never_runs_out() {
    // tcp_tw_reuse = 1, delay 1 s, 100 connects per second: at most about 100
    // TIME_WAIT entries are younger than the delay, so 100 ports are always
    // usable. Counts only: which ports are reused depends on timing.
    let mut c = case("tw-reuse-below", CloseMode::Client, 300);
    c.tw_reuse = 1;
    c.tw_reuse_delay_ms = Some(1000);
    c.pace_per_s = Some(100.0);
    let Some(k) = kernel(&c) else { return };
    let m = model(&c);
    let (kc, mc) = (counts(&k.ports), counts(&m.ports));
    eprintln!("{}: kernel {kc:?}, portsim {mc:?}", c.name);
    assert_eq!((kc.established, kc.failures), (300, 0));
    assert_eq!((mc.established, mc.failures), (300, 0));
    assert!(
        m.report.time_wait_reused > 0,
        "portsim never reused TIME_WAIT"
    );
}

#[test]
fn tw_reuse_above_the_delay_runs_out_until_the_first_entry_ages() {
    // 400 connects per second: the 200 ports are all in TIME_WAIT after
    // 0.5 s, and none is 2 s old before t = 2 s; attempts 201..300 come at
    // 0.50..0.75 s, so all fail, with a 1.25 s margin on the delay for a
    // connect held up on a busy machine.
    let mut c = case("tw-reuse-above", CloseMode::Client, 300);
    c.tw_reuse = 1;
    c.tw_reuse_delay_ms = Some(2000);
    c.pace_per_s = Some(400.0);
    exact(
        &c,
        Counts {
            established: 200,
            failures: 100,
            first_failure: Some(201),
            distinct: 200,
        },
    );
}
