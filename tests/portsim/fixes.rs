//! Computed fixes: which levers apply, the values the searches find where
//! they can be derived by hand, and the contract that rerunning a fix's
//! `--set` flags with the same seed gives exactly its figures.
//!
//! The exact cases use constant arrivals and a constant hold, so the ports
//! in use when a connection opens are exactly the connections opened in the
//! last hold + TIME_WAIT: with rate r, hold h and TIME_WAIT T, an attempt
//! finds r·(h + T) ports held (rounded up), and nothing fails while that is
//! at most the pool's ports.

use std::path::Path;

use portsim::fixes::{compute, Source};
use portsim::scenario::{load_str, Override};
use portsim::Report;

use crate::util::{portsim, text};

/// 20 requests/s, 1 s each, 10 s TIME_WAIT, 100 ports: 220 ports wanted.
const BASE: &str = r#"
name = "fixes"
seed = 3
duration = "60s"
[host]
os = "linux"
port_range = "60000-60099"
time_wait = "10s"
[[destinations]]
address = "10.0.0.9:80"
[traffic]
arrivals = "constant"
rate = 20
hold = "1s"
close = "client"
pick = "round-robin"
"#;

fn with(text: &str, sets: &[&str]) -> (portsim::Scenario, Report, Vec<Override>) {
    let overrides: Vec<Override> = sets.iter().map(|s| s.parse().expect("a --set")).collect();
    let sc = load_str(text, Path::new("fixes.toml"), &overrides).expect("scenario loads");
    let report = portsim::run(&sc);
    (sc, report, overrides)
}

fn fixes_of(text: &str, sets: &[&str]) -> (Report, portsim::fixes::Fixes) {
    fixes_in(text, sets, true)
}

/// The fixes of `text` with `sets`: every lever (`all`, as `--all-fixes`)
/// or within the shared budget (the default).
fn fixes_in(text: &str, sets: &[&str], all: bool) -> (Report, portsim::fixes::Fixes) {
    let (sc, report, overrides) = with(text, sets);
    let src = Source {
        text,
        path: Path::new("fixes.toml"),
        overrides: &overrides,
        seed: sc.seed,
        max_events: portsim::DEFAULT_MAX_EVENTS,
        max_memory: portsim::DEFAULT_MAX_MEMORY,
        target: None,
        all,
    };
    let fixes = compute(&src, &sc, &report);
    (report, fixes)
}

fn change_of<'a>(f: &'a portsim::fixes::Fixes, lever: &str) -> Option<&'a [String]> {
    f.list
        .iter()
        .find(|x| x.lever == lever)
        .map(|x| x.change.as_slice())
}

fn value_of(change: &[String], key: &str) -> String {
    change
        .iter()
        .find_map(|c| c.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("{key} in {change:?}"))
        .to_string()
}

#[test]
fn every_fix_reruns_to_its_own_figures() {
    let (base, fixes) = fixes_of(BASE, &[]);
    assert!(base.failures > 0);
    assert!(fixes.list.len() >= 5, "{:?}", fixes.list);
    for f in &fixes.list {
        let sets: Vec<&str> = f.change.iter().map(String::as_str).collect();
        let (_, r, _) = with(BASE, &sets);
        assert_eq!(r.failures, f.failures, "{:?}", f.change);
        assert_eq!(r.attempts, f.attempts, "{:?}", f.change);
        assert_eq!(r.failure_ratio, f.failure_ratio, "{:?}", f.change);
        assert_eq!(r.ports.peak_in_use, f.peak_in_use, "{:?}", f.change);
        assert_eq!(
            r.first_failure.as_ref().map(|x| x.attempt),
            f.first_failure.as_ref().map(|x| x.attempt)
        );
    }
    // Best first: everything that leaves nothing failing comes first.
    let passing = fixes.list.iter().take_while(|f| f.failures == 0).count();
    assert!(fixes.list[passing..].iter().all(|f| f.failures > 0));
}

#[test]
fn keep_alive_finds_the_smallest_count_by_hand() {
    // n requests per connection: 20 + 200/n ports held; ≤ 100 from n = 3.
    let (_, fixes) = fixes_of(BASE, &[]);
    let c = change_of(&fixes, "keep_alive").expect("keep-alive applies");
    assert_eq!(c, ["traffic.requests_per_connection=3"]);
    let (_, two, _) = with(BASE, &["traffic.requests_per_connection=2"]);
    assert!(two.failures > 0, "n = 2 holds 120 ports of 100");
}

#[test]
fn destinations_and_close_and_reuse_by_hand() {
    let (_, fixes) = fixes_of(BASE, &[]);
    // Round-robin over k destinations, each its own 4-tuple pool: 220 / k
    // ports each, ≤ 100 from k = 3.
    assert_eq!(
        change_of(&fixes, "destinations").expect("destinations apply"),
        ["destinations.0.count=3"]
    );
    // Server close: 20 × 1 s = 20 ports. tw_reuse (1 s delay): a port can be
    // taken again 2 s after it was opened, so 40 suffice; more stay held in
    // TIME_WAIT until taken over, never more than the pool.
    let sc = fixes
        .list
        .iter()
        .find(|f| f.lever == "server_close")
        .unwrap();
    assert_eq!((sc.failures, sc.peak_in_use), (0, 20));
    let tw = fixes.list.iter().find(|f| f.lever == "tw_reuse").unwrap();
    assert_eq!(tw.failures, 0);
    assert!(tw.peak_in_use <= 100, "{}", tw.peak_in_use);
}

#[test]
fn rate_and_range_within_the_search_resolution() {
    let (_, fixes) = fixes_of(BASE, &[]);
    // Nothing fails while 11 s × rate ≤ 100 ports: rate ≤ 9.09. The search
    // stops within a tenth of the change (20 − 9.09).
    let rate: f64 = value_of(change_of(&fixes, "rate").unwrap(), "traffic.rate")
        .parse()
        .unwrap();
    assert!(rate <= 100.0 / 11.0 + 1e-9, "{rate}");
    assert!(rate >= 100.0 / 11.0 - 0.1 * (20.0 - 100.0 / 11.0), "{rate}");
    // 220 ports are needed; the range grows upwards from 60000 first.
    let range = value_of(change_of(&fixes, "port_range").unwrap(), "host.port_range");
    let (lo, hi) = range.split_once('-').unwrap();
    let size = hi.parse::<u32>().unwrap() - lo.parse::<u32>().unwrap() + 1;
    assert_eq!(lo, "60000");
    assert!((220..=232).contains(&size), "{range}");
}

#[test]
fn levers_apply_only_where_they_work() {
    let levers = |sets: &[&str]| -> Vec<&'static str> {
        let (_, f) = fixes_of(BASE, sets);
        f.list.iter().map(|x| x.lever).collect()
    };
    // macOS never shares a port across destinations, so neither more
    // destinations nor tcp_tw_reuse can help there.
    let mac = levers(&["host.os=macos"]);
    assert!(!mac.contains(&"tw_reuse") && !mac.contains(&"destinations"));
    assert!(mac.contains(&"source_addresses"));
    // Already on: not proposed again.
    assert!(!levers(&["host.tw_reuse=true", "traffic.hold=8s"]).contains(&"tw_reuse"));
    // The server closes: no TIME_WAIT to save on this side.
    let server = levers(&["traffic.close=server", "traffic.hold=6s"]);
    for l in ["keep_alive", "server_close", "tw_reuse"] {
        assert!(!server.contains(&l), "{l} in {server:?}");
    }
    // An exhaustive allocator needs no other; one that gives up does.
    assert!(!levers(&[]).contains(&"allocator"));
    let give_up = levers(&[
        "host.allocator=rfc6056-2",
        "host.rfc6056_2_tries=2",
        "traffic.rate=8",
    ]);
    assert!(give_up.contains(&"allocator"), "{give_up:?}");
}

#[test]
fn more_addresses_when_bind_no_port_is_already_used() {
    let (_, fixes) = fixes_of(
        BASE,
        &[
            "traffic.bind=bind-no-port",
            "host.addresses=[\"10.1.0.1\", \"10.1.0.2\"]",
            "traffic.rate=40",
        ],
    );
    let c = change_of(&fixes, "source_addresses").expect("more addresses");
    assert!(!c.iter().any(|x| x.starts_with("traffic.bind")), "{c:?}");
    let list = value_of(c, "host.addresses");
    assert!(
        list.starts_with("[\"10.1.0.1\", \"10.1.0.2\", \"10.1.0.3\""),
        "{list}"
    );
}

#[test]
fn nothing_failed_nothing_to_fix() {
    let (r, fixes) = fixes_of(BASE, &["traffic.rate=5"]);
    assert_eq!(r.failures, 0);
    assert!(fixes.list.is_empty());
    assert_eq!(fixes.cost.runs, 0);
}

#[test]
fn a_search_probe_stops_at_its_first_failure() {
    let (sc, full, _) = with(BASE, &[]);
    let o = portsim::sim::simulate(&sc, &mut portsim::sim::UntilFailure);
    assert_eq!(o.failures, 1);
    let (_, attempt) = full
        .first_failure
        .as_ref()
        .map(|f| (f.time_s, f.attempt))
        .unwrap();
    assert_eq!(o.attempts, attempt);
}

#[test]
fn the_cli_prints_fixes_and_skips_them_on_request() {
    let dir = tempfile::tempdir().unwrap();
    let path = crate::util::write(dir.path(), "f.toml", BASE);
    let out = portsim().arg("run").arg(&path).assert().success();
    let s = text(&out.get_output().stdout);
    assert!(
        s.contains("fix             traffic.requests_per_connection=3: nothing fails (was"),
        "{s}"
    );
    assert!(s.contains("--no-fixes skips them"), "{s}");
    let out = portsim()
        .arg("run")
        .arg(&path)
        .arg("--no-fixes")
        .assert()
        .success();
    let s = text(&out.get_output().stdout);
    assert!(s.contains("fixes not computed (--no-fixes)"), "{s}");
    let out = portsim()
        .args(["run", "--json", "--no-fixes"])
        .arg(&path)
        .assert()
        .success();
    let json: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert!(json["fixes_cost"].is_null());
    assert_eq!(json["fixes"], serde_json::json!([]));
}

#[test]
fn a_target_is_the_goal_instead_of_nothing_failing() {
    let target: portsim::scenario::spec::Target = "failure_ratio<=0.2".parse().unwrap();
    let (sc, report, overrides) = with(BASE, &[]);
    assert!(report.failure_ratio > 0.2, "{}", report.failure_ratio);
    let src = Source {
        text: BASE,
        path: Path::new("fixes.toml"),
        overrides: &overrides,
        seed: sc.seed,
        max_events: portsim::DEFAULT_MAX_EVENTS,
        max_memory: portsim::DEFAULT_MAX_MEMORY,
        target: Some(target),
        all: true,
    };
    let fixes = compute(&src, &sc, &report);
    assert_eq!(fixes.cost.target, "failure_ratio <= 0.2");
    let holds = |sets: &[&str]| with(BASE, sets).1.failure_ratio <= 0.2;
    for f in fixes.list.iter().filter(|f| f.meets_target) {
        let sets: Vec<&str> = f.change.iter().map(String::as_str).collect();
        assert!(holds(&sets), "{:?}", f.change);
    }
    // Keep-alive: the smallest count that meets the target, so one less
    // misses it.
    let n: u32 = value_of(
        change_of(&fixes, "keep_alive").unwrap(),
        "traffic.requests_per_connection",
    )
    .parse()
    .unwrap();
    assert!(n >= 2);
    let fewer = format!("traffic.requests_per_connection={}", n - 1);
    assert!(!holds(&[fewer.as_str()]), "{n}");
    // A run that meets its target has nothing to fix.
    let met: portsim::scenario::spec::Target = "failure_ratio<=0.99".parse().unwrap();
    let src = Source {
        target: Some(met),
        ..src
    };
    assert!(compute(&src, &sc, &report).list.is_empty());
}

/// By default the levers share a budget of `BUDGET_RUNS` runs' attempts:
/// they spend no more, those it stops are named, and a lever it answers
/// is answered as `--all-fixes` answers it (the first, keep-alive, gets the
/// whole budget and needs one run of a third of the attempts at n = 3,
/// plus failing probes that stop at their first failure).
#[test]
fn the_levers_share_a_budget_and_name_what_it_left_out() {
    let (base, some) = fixes_in(BASE, &[], false);
    let (_, every) = fixes_in(BASE, &[], true);
    let budget = portsim::fixes::BUDGET_RUNS * base.attempts as f64;
    assert!(
        some.cost.attempts as f64 <= budget,
        "{} > {budget}",
        some.cost.attempts
    );
    assert_eq!(some.cost.budget_runs, Some(portsim::fixes::BUDGET_RUNS));
    assert_eq!(every.cost.budget_runs, None);
    assert!(every.cost.not_computed.is_empty());
    assert!(every.cost.attempts > some.cost.attempts);
    // What the budget left out is named, and it is what --all-fixes adds.
    assert!(!some.cost.not_computed.is_empty());
    for lever in &some.cost.not_computed {
        assert!(some.list.iter().all(|f| f.lever != *lever), "{lever}");
        assert!(every.list.iter().any(|f| f.lever == *lever), "{lever}");
    }
    for f in &some.list {
        assert!(every.list.iter().any(|g| g.lever == f.lever), "{}", f.lever);
    }
    assert_eq!(
        change_of(&some, "keep_alive"),
        change_of(&every, "keep_alive")
    );
    // The summary says so, and --all-fixes answers every lever.
    let dir = tempfile::tempdir().unwrap();
    let path = crate::util::write(dir.path(), "f.toml", BASE);
    let out = portsim().arg("run").arg(&path).assert().success();
    let s = text(&out.get_output().stdout);
    assert!(
        s.contains(&format!(
            "not computed within the budget: {} (--all-fixes computes every lever)",
            some.cost.not_computed.join(", ")
        )),
        "{s}"
    );
    assert!(s.contains("(budget 2×)"), "{s}");
    let out = portsim()
        .args(["run", "--json", "--all-fixes"])
        .arg(&path)
        .assert()
        .success();
    let json: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(json["fixes"].as_array().unwrap().len(), every.list.len());
    assert!(json["fixes_cost"]["budget_runs"].is_null());
    portsim()
        .args(["run", "--all-fixes", "--no-fixes"])
        .arg(&path)
        .assert()
        .code(2);
}

/// A pool that keeps one idle connection closes most of the others into
/// TIME_WAIT: 400 requests/s of about 100 ms on 1,000 ports with a 10 s
/// TIME_WAIT run out.
const POOL: &str = r#"
name = "pool-fix"
seed = 5
duration = "60s"
[host]
os = "linux"
port_range = "60000-60999"
time_wait = "10s"
[[destinations]]
address = "10.0.0.9:80"
[traffic]
rate = 400
hold = { dist = "exponential", mean = "100ms" }
pool = { max_idle = 1 }
close = "client"
"#;

#[test]
fn pool_max_idle_is_the_smallest_count_that_passes() {
    let (base, fixes) = fixes_in(POOL, &[], false);
    assert!(base.failures > 0);
    let c = change_of(&fixes, "pool_max_idle").expect("the pool lever applies");
    let n: u32 = value_of(c, "traffic.pool.max_idle").parse().unwrap();
    // Within ten of the current count the bisection ends on neighbours:
    // the count found passes and the one below it fails.
    assert!(n > 1 && n < 11, "{n}");
    let (_, at, _) = with(POOL, &[&format!("traffic.pool.max_idle={n}")]);
    assert_eq!(at.failures, 0, "{n}");
    let (_, below, _) = with(POOL, &[&format!("traffic.pool.max_idle={}", n - 1)]);
    assert!(below.failures > 0, "{}", n - 1);
}
