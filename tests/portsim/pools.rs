//! Per-pool figures (`pools`, `pools_total`, `ports.busiest_pool` and the
//! summary's `pools` line): exact peaks, means and counts where the traffic
//! is deterministic, sums that must match the run's own figures, the count
//! the closed forms use, the cut to the busiest 20, and the JSON names.
//!
//! Deterministic scenarios use constant arrivals at 8/s (attempt k at
//! exactly k × 125 ms) and a run that ends between two arrivals, so every
//! figure below is an integer identity.

use portsim::Report;

use crate::util;

const MS: u64 = 1_000_000;

/// Two destinations taken in turn (round-robin), ports shared by 4-tuple:
/// each destination's pool gets every other arrival.
fn two_destinations(range: &str, end_ms: u64) -> String {
    format!(
        "name = 'pools'\nduration = '{end_ms}ms'\n\
         [host]\nos = 'linux'\nallocator = 'sequential'\nport_range = '{range}'\ntime_wait = '2s'\n\
         [[destinations]]\naddress = '10.0.0.1:80'\ncount = 2\n\
         [traffic]\narrivals = 'constant'\nrate = 8\nhold = '1s'\npick = 'round-robin'\n"
    )
}

/// Port·ns held by a pool whose attempts arrive at `arrivals_ms` and each
/// hold a port for `hold_ms` (hold + TIME_WAIT), cut at `end_ms`.
fn area_ns(arrivals_ms: impl Iterator<Item = u64>, hold_ms: u64, end_ms: u64) -> u64 {
    arrivals_ms
        .map(|t| ((t + hold_ms).min(end_ms) - t) * MS)
        .sum()
}

/// Each pool holds a port for 3 s (1 s hold + 2 s TIME_WAIT) per arrival,
/// one arrival every 250 ms: 12 at once, exactly, and the mean is the
/// integral of the arrivals' holds cut at the end.
#[test]
fn round_robin_pools_have_exact_peaks_and_means() {
    let end_ms = 60_100;
    let r = util::run(&two_destinations("40000-40999", end_ms));
    assert_eq!((r.attempts, r.failures), (480, 0));
    assert_eq!(r.pools_total, 2);
    // Attempt k (1-based) goes to destination (k - 1) mod 2.
    let end_ns = (end_ms * MS) as f64;
    let mean = |first: u64| {
        area_ns((first..=480).step_by(2).map(|k| k * 125), 3000, end_ms) as f64 / end_ns
    };
    let got: Vec<_> = r
        .pools
        .iter()
        .map(|p| {
            (
                p.label.as_str(),
                p.size,
                p.peak_in_use,
                p.mean_in_use,
                p.attempts,
                p.failures,
            )
        })
        .collect();
    // The first destination's arrivals come earlier, so fewer of its holds
    // are cut by the end: its mean is higher and it is listed first.
    assert_eq!(
        got,
        vec![
            ("10.0.0.1:80", 1000, 12, mean(1), 240, 0),
            ("10.0.0.2:80", 1000, 12, mean(2), 240, 0),
        ]
    );
    assert!(mean(1) > mean(2));
    assert_eq!(r.ports.busiest_pool.as_deref(), Some("10.0.0.1:80"));

    let s = portsim::report::summary::render(&r);
    let line = s.lines().find(|l| l.starts_with("  pools ")).unwrap_or("");
    assert_eq!(
        line,
        format!(
            "  pools           busiest 10.0.0.1:80: peak 12 of 1,000 (1.2 %), mean {}; 988 ports of headroom; 2 pools",
            portsim::report::summary::amount(mean(1))
        )
    );
    assert!(
        s.contains(": the busiest pool, 10.0.0.1:80, peaked at 12 of 1,000 (1.2 %).\n"),
        "{s}"
    );
    assert!(!s.contains("destinations"), "{s}");
}

/// Ten ports per pool against 12 wanted: each pool's deterministic stream
/// establishes 10 of every 12 attempts (the exact cycle of
/// `theory::exact`), so each fails 40 of its 240 and peaks at its size.
#[test]
fn exhausted_pools_fail_exactly_and_peak_at_their_size() {
    let r = util::run(&two_destinations("40000-40009", 60_100));
    let got: Vec<_> = r
        .pools
        .iter()
        .map(|p| {
            (
                p.label.as_str(),
                p.size,
                p.peak_in_use,
                p.attempts,
                p.failures,
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("10.0.0.1:80", 10, 10, 240, 40),
            ("10.0.0.2:80", 10, 10, 240, 40),
        ]
    );
    assert_eq!(r.failures, 80);
    let s = portsim::report::summary::render(&r);
    assert!(
        s.contains("  pools           busiest 10.0.0.1:80: peak 10 of 10 (100.0 %), mean "),
        "{s}"
    );
    assert!(s.contains("; no headroom; 2 pools\n"), "{s}");
}

/// Scenario text for the sum checks: `bind`, `share` and `extra` (host
/// lines) vary; Poisson traffic, a small range so some attempts fail.
fn mixed(bind: &str, share: bool, extra: &str) -> String {
    mixed_on(
        bind,
        &format!("share_across_destinations = {share}\n{extra}"),
    )
}

/// The same with every extra host line (`share_across_destinations` too)
/// in `host`.
fn mixed_on(bind: &str, host: &str) -> String {
    format!(
        "name = 'mixed'\nseed = 3\nduration = '40s'\n\
         [host]\nos = 'linux'\nport_range = '40000-40299'\ntime_wait = '5s'\n\
         addresses = ['10.9.0.1', '10.9.0.2']\n{host}\n\
         [[destinations]]\naddress = '10.0.0.1:80'\ncount = 3\n\
         [[destinations]]\naddress = '10.0.1.1:443'\nweight = 3\n\
         [traffic]\nrate = 120\nhold = {{ dist = 'exponential', mean = '1s' }}\n\
         bind = '{bind}'\nretry = {{ after = '100ms', max = 1 }}\n"
    )
}

fn sums(r: &Report) -> (u64, u64) {
    (
        r.pools.iter().map(|p| p.attempts).sum(),
        r.pools.iter().map(|p| p.failures).sum(),
    )
}

/// Whatever the pools are, their attempts and failures add up to the
/// run's; with exclusive ports (a pool per address) their means add up to
/// the run's mean of ports in use, and their peaks bound its peak.
#[test]
fn pool_figures_add_up_to_the_runs() {
    let mut failing = 0;
    for (bind, share, extra, exclusive) in [
        ("connect", true, "", false),
        ("bind-no-port", true, "", false),
        (
            "bind-no-port",
            true,
            "tw_reuse = true\ntw_reuse_delay = '1s'",
            false,
        ),
        ("bind", true, "", true),
        ("connect", false, "", true),
        ("bind-no-port", false, "", true),
    ] {
        let text = mixed(bind, share, extra);
        let r = util::run(&text);
        let what = format!("{bind} share {share} {extra}");
        assert_eq!(r.pools.len() as u64, r.pools_total, "{what}");
        assert_eq!(sums(&r), (r.attempts, r.failures), "{what}");
        failing += usize::from(r.failures > 0);
        for p in &r.pools {
            assert!(p.peak_in_use <= p.size, "{what}: {p:?}");
            assert!(p.mean_in_use <= f64::from(p.peak_in_use), "{what}: {p:?}");
        }
        let peaks: u64 = r.pools.iter().map(|p| u64::from(p.peak_in_use)).sum();
        assert!(peaks >= u64::from(r.ports.peak_in_use), "{what}");
        if exclusive {
            let mean: f64 = r.pools.iter().map(|p| p.mean_in_use).sum();
            let d = (mean - r.ports.mean_in_use).abs();
            assert!(
                d <= 1e-9 * r.ports.mean_in_use,
                "{what}: {mean} vs {}",
                r.ports.mean_in_use
            );
            let peak = r.pools.iter().map(|p| p.peak_in_use).max().unwrap();
            assert!(peak <= r.ports.peak_in_use, "{what}");
        }
    }
    // The small range makes most variants fail, so failures are summed too.
    assert!(failing >= 4, "{failing}");
}

/// The pools listed are the pools `analytic` counts, labelled by what
/// tells them apart.
#[test]
fn pools_are_those_the_closed_forms_count() {
    for (bind, share, os, labels) in [
        (
            "connect",
            true,
            "linux",
            &["10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80", "10.0.1.1:443"][..],
        ),
        (
            "bind-no-port",
            true,
            "linux",
            &[
                "10.9.0.1 → 10.0.0.1:80",
                "10.9.0.1 → 10.0.0.2:80",
                "10.9.0.1 → 10.0.0.3:80",
                "10.9.0.1 → 10.0.1.1:443",
                "10.9.0.2 → 10.0.0.1:80",
                "10.9.0.2 → 10.0.0.2:80",
                "10.9.0.2 → 10.0.0.3:80",
                "10.9.0.2 → 10.0.1.1:443",
            ][..],
        ),
        ("bind", true, "linux", &["10.9.0.1", "10.9.0.2"][..]),
        ("connect", false, "linux", &["10.9.0.1"][..]),
        // macOS's connect() never shares a port.
        ("connect", true, "macos", &["10.9.0.1"][..]),
    ] {
        // The OS's own default for share_across_destinations unless it is off.
        let share_line = if share {
            ""
        } else {
            "share_across_destinations = false"
        };
        let text = mixed_on(bind, share_line).replace("os = 'linux'", &format!("os = '{os}'"));
        let r = util::run(&text);
        assert_eq!(r.pools_total, r.analytic.pools, "{bind} {share} {os}");
        let mut got: Vec<&str> = r.pools.iter().map(|p| p.label.as_str()).collect();
        got.sort_unstable();
        assert_eq!(got, labels, "{bind} {share} {os}");
    }
}

/// One destination and two source addresses: two pools, and nothing in
/// the summary speaks of destinations.
#[test]
fn two_source_addresses_to_one_destination_are_two_pools() {
    let r = util::run(
        "name = 'two-sources'\nduration = '30s'\n\
         [host]\nos = 'linux'\nport_range = '40000-40999'\naddresses = ['10.9.0.1', '10.9.0.2']\n\
         [[destinations]]\naddress = '10.0.0.5:5432'\n\
         [traffic]\narrivals = 'constant'\nrate = 8\nhold = '1s'\nbind = 'bind-no-port'\n\
         source = 'round-robin'\n",
    );
    assert_eq!(r.failures, 0);
    assert_eq!((r.pools_total, r.analytic.pools), (2, 2));
    let labels: Vec<&str> = r.pools.iter().map(|p| p.label.as_str()).collect();
    assert_eq!(
        labels,
        ["10.9.0.1 → 10.0.0.5:5432", "10.9.0.2 → 10.0.0.5:5432"]
    );
    let s = portsim::report::summary::render(&r);
    assert!(!s.contains("destination"), "{s}");
    assert!(
        s.contains("the busiest pool, 10.9.0.1 → 10.0.0.5:5432, peaked at "),
        "{s}"
    );
}

/// A single pool gets no `pools` line, and its figures are the run's.
#[test]
fn a_single_pool_is_the_run() {
    let r = util::run(&two_destinations("40000-40009", 30_100).replace("count = 2", "count = 1"));
    assert_eq!(r.pools_total, 1);
    let p = &r.pools[0];
    assert_eq!(
        (
            p.label.as_str(),
            p.size,
            p.peak_in_use,
            p.attempts,
            p.failures
        ),
        (
            "10.0.0.1:80",
            10,
            r.ports.peak_in_use,
            r.attempts,
            r.failures
        )
    );
    assert_eq!(p.mean_in_use, r.ports.mean_in_use);
    let s = portsim::report::summary::render(&r);
    assert!(!s.contains("  pools "), "{s}");
}

/// More than 20 pools: the busiest 20 are listed, in order, and
/// `pools_total` counts them all; beyond 4,096 none are kept.
#[test]
fn pools_are_cut_to_the_busiest_20() {
    let text = "name = 'many'\nseed = 5\nduration = '20s'\n\
         [host]\nos = 'linux'\nport_range = '40000-40999'\n\
         [[destinations]]\naddress = '10.0.0.1:80'\ncount = 30\n\
         [traffic]\nrate = 300\nhold = { dist = 'exponential', mean = '1s' }\n";
    let r = util::run(text);
    assert_eq!((r.pools_total, r.analytic.pools), (30, 30));
    assert_eq!(r.pools.len(), 20);
    let key = |i: usize| {
        let p = &r.pools[i];
        (f64::from(p.peak_in_use) / f64::from(p.size), p.mean_in_use)
    };
    for i in 1..20 {
        assert!(key(i - 1) >= key(i), "{:?} before {:?}", key(i - 1), key(i));
    }
    assert_eq!(r.ports.busiest_pool.as_ref(), Some(&r.pools[0].label));
    // The busiest 20 of 30 hold at least two thirds of the attempts.
    let listed: u64 = r.pools.iter().map(|p| p.attempts).sum();
    assert!(
        listed * 3 >= r.attempts * 2 && listed < r.attempts,
        "{listed}"
    );
    let s = portsim::report::summary::render(&r);
    assert!(s.contains("; 30 pools\n"), "{s}");

    let text = text
        .replace("count = 30", "count = 4097")
        .replace("duration = '20s'", "duration = '1s'");
    let r = util::run(&text);
    assert_eq!((r.pools_total, r.analytic.pools), (4097, 4097));
    assert!(r.pools.is_empty());
    assert_eq!(r.ports.busiest_pool, None);
    let s = portsim::report::summary::render(&r);
    assert!(
        s.contains("  pools           4,097 pools of 1,000 ports; per-pool figures are kept for at most 4,096\n"),
        "{s}"
    );
    assert!(s.contains("over 4,097 pools of 1,000 ports each."), "{s}");
}

/// The JSON names are a contract.
#[test]
fn json_names_the_pool_figures() {
    let r = util::run(&two_destinations("40000-40999", 10_100));
    let v: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
    let pool = v["pools"][0]
        .as_object()
        .expect("pools is a list of objects");
    let names = [
        "label",
        "size",
        "peak_in_use",
        "mean_in_use",
        "attempts",
        "failures",
    ];
    let mut keys: Vec<&str> = pool.keys().map(String::as_str).collect();
    let mut want = names.to_vec();
    keys.sort_unstable();
    want.sort_unstable();
    assert_eq!(keys, want);
    // In this order in the file.
    let text = r.to_json();
    let first = text.find("\"pools\": [").unwrap();
    let at: Vec<usize> = names
        .iter()
        .map(|n| first + text[first..].find(&format!("\"{n}\": ")).unwrap())
        .collect();
    assert!(at.windows(2).all(|w| w[0] < w[1]), "{at:?}");
    assert_eq!(v["pools_total"], 2);
    assert_eq!(v["ports"]["busiest_pool"], "10.0.0.1:80");
    assert_eq!(v["pools"][0]["label"], "10.0.0.1:80");
    // Always present, null when no pool was kept.
    let r = util::run(
        "name = 'many'\nduration = '1s'\n[host]\nport_range = '40000-40999'\n\
         [[destinations]]\naddress = '10.0.0.1:80'\ncount = 4097\n[traffic]\nrate = 10\nhold = '1s'\n",
    );
    let v: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
    assert_eq!(v["pools"], serde_json::json!([]));
    assert_eq!(v["pools_total"], 4097);
    assert!(v["ports"]["busiest_pool"].is_null());
}
