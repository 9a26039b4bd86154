//! `[[hosts]] scale`: groups whose host count changes during the run.
//! Exact attempt counts for constant arrivals, the thinned Poisson process
//! of a merged group, no attempt from a group scaled to 0, retries of a
//! host that left, the report's `scale` and `max_count`, the summary line,
//! the memory estimate, the loader's refusals and determinism.

use serde_json::{json, Value};

use crate::util::{portsim, run, text, write};

/// One group `web` of `count` hosts at 1 connection/s each, held 10 ms
/// (nothing fails), with `scale` and the given arrivals and duration.
fn scaled(arrivals: &str, count: u32, scale: &str, duration: &str) -> String {
    format!(
        r#"
name = "scaled"
seed = 11
duration = "{duration}"
[output]
bin = "1s"
[[destinations]]
address = "10.0.0.5:443"
[traffic]
arrivals = "{arrivals}"
rate = 1
hold = "10ms"
[[hosts]]
name = "web"
count = {count}
addresses = ["10.1.0.1"]
scale = {scale}
"#
    )
}

/// Constant arrivals at rate r are host k's at n/r − φ_k (n = 1, 2, …),
/// with the phase φ_k in (0, 1/r): shifted earlier, never later. Over
/// [0, 100 s] at 1/s every host has n = 1 … 100: 100 arrivals. A host that
/// joins at 50 s keeps those at 50 ≤ n − φ, n = 51 … 100: 50 arrivals; one
/// that leaves at 50 s keeps those at n − φ < 50, n = 1 … 50: 50 too.
/// (φ = 0 exactly, probability 1e-9 per host, would move one arrival to
/// 50 s itself, which sees the new count.) So 10 hosts scaled to 20 make
/// 10·100 + 10·50 = 1,500 attempts, and 10 scaled to 5 make
/// 5·100 + 5·50 = 750.
#[test]
fn constant_arrivals_count_exactly_the_hosts_active() {
    let out = run(&scaled(
        "constant",
        10,
        r#"[{ at = "50s", count = 20 }]"#,
        "100s",
    ));
    assert_eq!(out.failures, 0);
    assert_eq!(out.attempts, 1_500);
    assert_eq!(out.hosts[0].attempts, 1_500);
    assert_eq!((out.hosts[0].count, out.hosts[0].max_count), (10, 20));
    // 10 hosts at 1/s before 50 s, 20 after: every bin has exactly that.
    for (k, b) in out.bins.iter().enumerate() {
        let want = if k < 50 { 10 } else { 20 };
        assert_eq!(b.attempts, want, "bin {k}");
    }

    let down = run(&scaled(
        "constant",
        10,
        r#"[{ at = "50s", count = 5 }]"#,
        "100s",
    ));
    assert_eq!(down.attempts, 750);
    // The same ten hosts without scale: each makes its 100.
    let steady = run(&scaled("constant", 10, "[]", "100s"));
    assert_eq!(steady.attempts, 1_000);
    assert_eq!(steady.hosts[0].max_count, 10);
    assert!(steady.hosts[0].scale.is_empty());
}

/// Out, in and out again: the hosts that come back are hosts 5 … 9 again,
/// each making attempts only while active. 10 hosts over [0, 30 s): 300;
/// 5 over [30, 60 s): 150; 10 over [60, 90 s]: 300 (hosts 0 … 4 have
/// n = 61 … 90, and so do hosts 5 … 9, whose arrivals before 60 s were
/// discarded).
#[test]
fn hosts_come_back_in_index_order() {
    let out = run(&scaled(
        "constant",
        10,
        r#"[{ at = "30s", count = 5 }, { at = "60s", count = 10 }]"#,
        "90s",
    ));
    assert_eq!(out.attempts, 300 + 150 + 300);
    let json = serde_json::to_value(&out).expect("a report serializes");
    assert_eq!(
        json["hosts"][0]["scale"],
        json!([{ "at_s": 30.0, "count": 5 }, { "at_s": 60.0, "count": 10 }])
    );
    assert_eq!(json["hosts"][0]["max_count"], 10);
    assert_eq!(json["hosts"][0]["count"], 10);
}

/// A group scaled to 0 at 30 s makes no attempt from then on, whether its
/// arrivals are per host (constant) or merged (Poisson); what its hosts
/// hold runs out as usual: connections held 20 s still close, the last
/// by 50 s.
#[test]
fn a_group_scaled_to_zero_makes_no_attempt() {
    for arrivals in ["constant", "poisson"] {
        let text = scaled(arrivals, 10, r#"[{ at = "30s", count = 0 }]"#, "80s")
            .replace("hold = \"10ms\"", "hold = \"20s\"");
        let out = run(&text);
        assert_eq!(out.bins.len(), 80, "{arrivals}");
        let before: u64 = out.bins[..30].iter().map(|b| b.attempts).sum();
        let after: u64 = out.bins[30..].iter().map(|b| b.attempts).sum();
        assert_eq!(after, 0, "{arrivals}: attempts after the scale-in");
        assert_eq!(before, out.attempts, "{arrivals}");
        assert!(out.attempts > 200, "{arrivals}: {}", out.attempts);
        if arrivals == "constant" {
            assert_eq!(out.attempts, 300);
        }
        // Connections opened before 30 s are open until up to 50 s.
        assert!(out.bins[40].open_area > 0.0, "{arrivals}");
        assert!(out.bins[49].open_area > 0.0, "{arrivals}");
        assert_eq!(out.bins[51].open_area, 0.0, "{arrivals}");
        // And their TIME_WAIT (60 s) is still held at the end.
        assert!(out.bins[79].time_wait_area > 0.0, "{arrivals}");
    }
}

/// A merged Poisson group of 100 hosts at 1/s for 200 s, scaled to 50 at
/// 100 s. The kept arrivals are a Poisson process of intensity
/// 100/s then 50/s, so the attempts are Poisson with mean
/// 100·100 + 50·100 = 15,000 and standard deviation √15,000 ≈ 122.5;
/// each seed must land within 5 of them (±612).
#[test]
fn a_merged_poisson_group_is_thinned_to_its_active_hosts() {
    let sd = 15_000f64.sqrt();
    for seed in [1, 2, 3] {
        let text = scaled("poisson", 100, r#"[{ at = "100s", count = 50 }]"#, "200s")
            .replace("seed = 11", &format!("seed = {seed}"));
        let out = run(&text);
        let dev = (out.attempts as f64 - 15_000.0).abs();
        assert!(
            dev <= 5.0 * sd,
            "seed {seed}: {} attempts, {:.1} sd from 15,000",
            out.attempts,
            dev / sd
        );
        // And each half on its own: 10,000 ± 5·100, 5,000 ± 5·70.7.
        let first: u64 = out.bins[..100].iter().map(|b| b.attempts).sum();
        let second: u64 = out.bins[100..].iter().map(|b| b.attempts).sum();
        assert!(
            (first as f64 - 10_000.0).abs() <= 500.0,
            "seed {seed}: {first}"
        );
        assert!(
            (second as f64 - 5_000.0).abs() <= 5.0 * 5_000f64.sqrt(),
            "seed {seed}: {second}"
        );
    }
}

/// A host whose retries are still queued when it leaves never makes them:
/// each is counted as abandoned. One host with one port, held by the first
/// connection's TIME_WAIT (60 s): its arrivals at n − φ, n = 1 … 5, before
/// it leaves at 5 s are 5 attempts, 1 established and 4 failed; their
/// retries (10 s later) find the host gone.
#[test]
fn retries_of_a_host_that_left_are_abandoned() {
    let text = r#"
name = "retry-gone"
seed = 4
duration = "30s"
[host]
port_range = "50000-50000"
time_wait = "60s"
[[destinations]]
address = "10.0.0.5:443"
[traffic]
arrivals = "constant"
rate = 1
hold = "10ms"
retry = { after = "10s", max = 3 }
[[hosts]]
name = "web"
count = 1
scale = [{ at = "5s", count = 0 }]
"#;
    let out = run(text);
    assert_eq!(out.attempts, 5);
    assert_eq!(out.failures, 4);
    assert_eq!(out.retries, 0);
    assert_eq!(out.abandoned, 4);
}

/// Through a NAT: every attempt of the hosts built beyond `count` crosses
/// it like the others.
#[test]
fn scaled_hosts_cross_their_nat() {
    let text = scaled(
        "constant",
        4,
        r#"[{ at = "10s", count = 8 }]"#,
        "20s",
    )
    .replace(
        "addresses = [\"10.1.0.1\"]",
        "addresses = [\"10.1.0.1\"]\nvia = \"node\"",
    ) + "[[nat]]\nname = \"node\"\ntype = \"linux\"\naddresses = [\"203.0.113.1\", \"203.0.113.2\"]\n";
    let out = run(&text);
    // 4 hosts × 20 + 4 × 10.
    assert_eq!(out.attempts, 120);
    assert_eq!(out.nats[0].attempts, 120);
    assert_eq!(out.failures, 0);
}

#[test]
fn the_summary_gives_the_steps_on_the_hosts_line() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "s.toml",
        &scaled(
            "constant",
            48,
            r#"[{ at = "10m", count = 52 }, { at = "20m", count = 48 }]"#,
            "30m",
        )
        .replace("rate = 1", "rate = 0.1"),
    );
    let out = portsim()
        .args(["run", f.to_str().unwrap(), "--no-fixes"])
        .assert()
        .success();
    let s = text(&out.get_output().stdout);
    // 48 hosts × 180 arrivals, and 4 more over [10, 20 min): 60 each.
    assert!(
        s.contains("  hosts           web: 48 hosts, 52 from 10 min, 48 from 20 min, 8,880 attempts, 0 failed;"),
        "{s}"
    );
    // The reuse intervals of the first 16 hosts, of the 52 the group had.
    assert!(s.contains("over 16 of 52 hosts)"), "{s}");
}

/// report.json gives each group's steps and largest count, and matches the
/// schema `portsim schema report` prints, which requires both.
#[test]
fn report_json_has_the_steps_and_matches_the_schema() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "s.toml",
        &scaled("poisson", 3, r#"[{ at = "1.5s", count = 7 }]"#, "5s"),
    );
    let out = portsim()
        .args(["run", f.to_str().unwrap(), "--json", "--no-fixes"])
        .assert()
        .success();
    let report: Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    let g = &report["hosts"][0];
    assert_eq!(g["scale"], json!([{ "at_s": 1.5, "count": 7 }]));
    assert_eq!(
        (g["count"].as_u64(), g["max_count"].as_u64()),
        (Some(3), Some(7))
    );
    let schema_out = portsim().args(["schema", "report"]).assert().success();
    let schema: Value = serde_json::from_slice(&schema_out.get_output().stdout).unwrap();
    let required = schema["$defs"]["HostGroupReport"]["required"]
        .as_array()
        .expect("HostGroupReport lists its required fields");
    for field in ["scale", "max_count"] {
        assert!(required.contains(&json!(field)), "{field} not required");
    }
    let v = jsonschema::draft202012::new(&schema).expect("a valid schema");
    let errors: Vec<String> = v.iter_errors(&report).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{errors:?}");
    // A broken step fails it.
    let mut broken = report.clone();
    broken["hosts"][0]["scale"] = json!([{ "at_s": "soon", "count": 7 }]);
    assert!(!v.is_valid(&broken));
}

/// `--max-memory` counts each group at its largest count: a group of one
/// host that scales to 200,000 is sized as 200,000 hosts.
#[test]
fn the_memory_estimate_counts_the_largest_count() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "s.toml",
        &scaled("poisson", 1, r#"[{ at = "1s", count = 200000 }]"#, "2s"),
    );
    let out = portsim()
        .args(["run", f.to_str().unwrap(), "--max-memory", "100MB"])
        .assert()
        .code(2);
    let err = text(&out.get_output().stderr);
    assert!(err.contains("hosts[0] (web): 200000 hosts"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    // Without the step, the same group fits.
    let g = write(dir.path(), "g.toml", &scaled("poisson", 1, "[]", "2s"));
    portsim()
        .args(["run", g.to_str().unwrap(), "--max-memory", "100MB"])
        .assert()
        .success();
}

/// Each bad `scale` exits 2 with one line naming the file, line and key.
#[test]
fn bad_scale_input_is_refused_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let base = scaled("constant", 10, "SCALE", "100s");
    let cases: &[(&str, &str, &str)] = &[
        (
            r#"[{ at = "50s", count = 20 }, { at = "40s", count = 5 }]"#,
            "hosts[0].scale[1].at",
            "strictly increasing",
        ),
        (
            r#"[{ at = "50s", count = 20 }, { at = "50s", count = 5 }]"#,
            "hosts[0].scale[1].at",
            "strictly increasing",
        ),
        (
            r#"[{ at = "-5s", count = 20 }]"#,
            "hosts[0].scale[0].at",
            "\"-5s\"",
        ),
        (
            r#"[{ at = "soon", count = 20 }]"#,
            "hosts[0].scale[0].at",
            "expected a duration",
        ),
        (
            r#"[{ at = 5, count = 20 }]"#,
            "hosts[0].scale[0].at",
            "a duration is a string",
        ),
        (
            r#"[{ at = "5s", count = -1 }]"#,
            "hosts[0].scale[0].count",
            "expected 0 to 1000000",
        ),
        (
            r#"[{ at = "5s", count = 1000001 }]"#,
            "hosts[0].scale[0].count",
            "expected 0 to 1000000",
        ),
        (
            r#"[{ at = "5s", count = 2, every = "1s" }]"#,
            "hosts[0].scale[0].every",
            "unknown key `every`; allowed here: at, count",
        ),
        (
            r#"[{ count = 2 }]"#,
            "hosts[0].scale[0]",
            "missing required key `at`",
        ),
        (r#""10m""#, "hosts[0].scale", "expected a sequence"),
    ];
    for (scale, key, says) in cases {
        let f = write(dir.path(), "bad.toml", &base.replace("SCALE", scale));
        let out = portsim()
            .args(["check", f.to_str().unwrap()])
            .assert()
            .code(2);
        let err = text(&out.get_output().stderr);
        assert!(
            err.contains(&format!("bad.toml:17: {key}: ")) && err.contains(says),
            "{scale}: {err}"
        );
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    }
    // Past MAX_HOSTS over the groups, each at its largest count: the step
    // that brings it there is named.
    let two = base.replace("SCALE", "[]").replace("count = 10", "count = 500000")
        + "[[hosts]]\nname = \"b\"\ncount = 2\naddresses = [\"11.0.0.1\"]\nscale = [{ at = \"1s\", count = 3 }, { at = \"2s\", count = 500001 }]\n";
    let f = write(dir.path(), "bad.toml", &two);
    let out = portsim()
        .args(["check", f.to_str().unwrap()])
        .assert()
        .code(2);
    let err = text(&out.get_output().stderr);
    assert!(
        err.contains("bad.toml:22: hosts[1].scale[1].count: brings the hosts to 1000001 in all"),
        "{err}"
    );
    // A single host has no `scale`.
    let single = r#"
name = "one"
duration = "10s"
[host]
scale = [{ at = "5s", count = 2 }]
[[destinations]]
address = "10.0.0.5:443"
[traffic]
rate = 1
hold = "1s"
"#;
    let f = write(dir.path(), "bad.toml", single);
    let out = portsim()
        .args(["check", f.to_str().unwrap()])
        .assert()
        .code(2);
    let err = text(&out.get_output().stderr);
    assert!(
        err.contains("bad.toml:5: host.scale: unknown key `scale`"),
        "{err}"
    );
}

/// The same scenario and seed give the same bytes, with steps (and a NAT
/// that hears of them); another seed gives other figures.
#[test]
fn scaled_runs_are_deterministic() {
    let dir = tempfile::tempdir().unwrap();
    let text_of = |s: &str| {
        scaled(
            "poisson",
            20,
            r#"[{ at = "3s", count = 30 }, { at = "6s", count = 5 }]"#,
            "10s",
        )
        .replace("rate = 1", "rate = 40")
        .replace("seed = 11", &format!("seed = {s}"))
        .replace(
            "addresses = [\"10.1.0.1\"]",
            "addresses = [\"10.1.0.1\"]\nvia = \"node\"",
        ) + "[[nat]]\nname = \"node\"\ntype = \"linux\"\nport_range = \"20000-20999\"\n"
    };
    let f = write(dir.path(), "a.toml", &text_of("5"));
    let json = || {
        let out = portsim()
            .args(["run", f.to_str().unwrap(), "--json", "--no-fixes"])
            .assert()
            .success();
        out.get_output().stdout.clone()
    };
    let (a, b) = (json(), json());
    assert_eq!(a, b);
    let g = write(dir.path(), "b.toml", &text_of("6"));
    let out = portsim()
        .args(["run", g.to_str().unwrap(), "--json", "--no-fixes"])
        .assert()
        .success();
    assert_ne!(a, out.get_output().stdout);
}

/// A step at 0 s takes effect before the first arrival, so a group can
/// start empty and join later: hosts 0 … 4 from 20 s, n = 21 … 30 each.
#[test]
fn a_step_at_zero_comes_first() {
    let out = run(&scaled(
        "constant",
        5,
        r#"[{ at = "0s", count = 0 }, { at = "20s", count = 5 }]"#,
        "30s",
    ));
    assert_eq!(out.attempts, 50);
    assert!(out.bins[..20].iter().all(|b| b.attempts == 0));
}

/// A group of one host scaled to 6 at 0 s is a group of 6: the same hosts
/// and streams, the merged clock at 6 × the rate, every host active from
/// the first arrival on, so every figure is the same.
#[test]
fn a_group_scaled_at_zero_is_a_group_of_that_count() {
    for arrivals in ["constant", "poisson"] {
        let plain = scaled(arrivals, 6, "[]", "60s").replace("rate = 1", "rate = 30");
        let grown = scaled(arrivals, 1, r#"[{ at = "0s", count = 6 }]"#, "60s")
            .replace("rate = 1", "rate = 30");
        let (a, b) = (run(&plain), run(&grown));
        assert!(a.attempts > 10_000, "{arrivals}: {}", a.attempts);
        assert_eq!(a.attempts, b.attempts, "{arrivals}");
        assert_eq!(a.bins, b.bins, "{arrivals}");
        assert_eq!(a.ports.peak_in_use, b.ports.peak_in_use, "{arrivals}");
        assert_eq!(a.ports.distinct_used, b.ports.distinct_used, "{arrivals}");
        assert_eq!(
            a.hosts[0].peak_in_use_per_host, b.hosts[0].peak_in_use_per_host,
            "{arrivals}"
        );
    }
}
