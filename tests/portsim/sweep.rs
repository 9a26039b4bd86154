//! `portsim sweep`, `capacity` and `merge`: the curves and answers they give,
//! that they do not depend on how the work is split, and how they refuse bad
//! input or stop on Ctrl-C.
//!
//! A sweep is only worth running if its curve is right (failures rise with
//! the rate and follow Erlang B once the ports run out), if `--jobs` and
//! `--shard`/`merge` change nothing but the wall time, and if an interrupted
//! sweep keeps what it finished. A capacity answer is only worth quoting if
//! it agrees with the closed forms it is printed beside.
//!
//! The scenarios are small so the whole module runs in seconds: 1,000 ports,
//! 60 s TIME_WAIT, one destination, Poisson arrivals, holds of mean 1 s, an
//! allocator that scans the whole range, 10 minutes. A connection keeps its
//! port hold + TIME_WAIT = 61 s, so the offered load is rate × 61 erlangs and
//! the ports run out near 1,000 / 61 ≈ 16.4 connections/s.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use portsim::report::erlang_b;
use serde_json::Value;

use crate::util::{interrupt_after_start, portsim, text, write};

/// Ports in the range of [`small`].
const PORTS: u64 = 1_000;
/// Seconds a connection keeps its port: mean hold 1 s + TIME_WAIT 60 s.
const OCCUPANCY_S: f64 = 61.0;
/// Seconds simulated.
const DURATION_S: f64 = 600.0;

/// The small scenario at `rate` connections/s. `rate` is written as a float
/// so that `capacity --vary traffic.rate` searches real values, not integers.
fn small(rate: f64) -> String {
    format!(
        r#"name = "small"
seed = 1
duration = "10m"

[host]
os = "generic"
allocator = "rfc6056-1"
port_range = "60000-60999"
time_wait = "60s"

[[destinations]]
address = "10.0.0.5:5432"

[traffic]
arrivals = "poisson"
rate = {rate:?}
hold = {{ dist = "exponential", mean = "1s" }}
close = "client"
"#
    )
}

/// The small scenario at 15/s in `dir`.
fn small_file(dir: &Path) -> PathBuf {
    write(dir, "small.toml", &small(15.0))
}

/// Run `portsim args...`, expect exit 0, return stdout.
fn ok(args: &[&OsStr]) -> String {
    let out = portsim().args(args).assert().success();
    text(&out.get_output().stdout)
}

/// `portsim sweep FILE --out DIR --quiet extra...`; returns stdout.
fn sweep(file: &Path, out: &Path, extra: &[&str]) -> String {
    let mut args: Vec<&OsStr> = vec![
        OsStr::new("sweep"),
        file.as_os_str(),
        OsStr::new("--out"),
        out.as_os_str(),
        OsStr::new("--quiet"),
    ];
    args.extend(extra.iter().map(OsStr::new));
    ok(&args)
}

/// `portsim capacity FILE --json --quiet extra...`, parsed.
fn capacity(file: &Path, extra: &[&str]) -> (String, Value) {
    let mut args: Vec<&OsStr> = vec![
        OsStr::new("capacity"),
        file.as_os_str(),
        OsStr::new("--json"),
        OsStr::new("--quiet"),
    ];
    args.extend(extra.iter().map(OsStr::new));
    let out = ok(&args);
    let v = serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"));
    (out, v)
}

fn read_json(path: &Path) -> Value {
    let t = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: cannot read: {e}", path.display()));
    serde_json::from_str(&t).unwrap_or_else(|e| panic!("{}: not JSON: {e}", path.display()))
}

fn f(v: &Value) -> f64 {
    v.as_f64()
        .unwrap_or_else(|| panic!("expected a number, got {v}"))
}

/// The files a finished sweep writes.
const SWEEP_FILES: [&str; 4] = ["sweep.json", "sweep.csv", "sweep.png", "sweep.svg"];

fn same_files(a: &Path, b: &Path, what: &str) {
    for name in SWEEP_FILES {
        let (x, y) = (std::fs::read(a.join(name)), std::fs::read(b.join(name)));
        let (x, y) = (
            x.unwrap_or_else(|e| panic!("{}: {e}", a.join(name).display())),
            y.unwrap_or_else(|e| panic!("{}: {e}", b.join(name).display())),
        );
        assert!(x == y, "{what}: {name} differs");
    }
}

#[test]
fn sweep_curve_rises_with_rate_and_tracks_erlang_b() {
    let tmp = tempfile::tempdir().unwrap();
    let file = small_file(tmp.path());
    let out = tmp.path().join("out");
    let stdout = sweep(
        &file,
        &out,
        &["--vary", "traffic.rate=10..24:2", "--seeds", "4"],
    );
    let rates: Vec<f64> = (0..8).map(|i| 10.0 + 2.0 * f64::from(i)).collect();
    let r = read_json(&out.join("sweep.json"));
    assert_eq!(r["complete"], true);
    assert_eq!(r["points_total"], 8);
    assert_eq!(r["keys"], serde_json::json!(["traffic.rate"]));
    let points = r["points"].as_array().unwrap();
    assert_eq!(points.len(), rates.len());

    let mut means = Vec::new();
    for (p, &rate) in points.iter().zip(&rates) {
        assert_eq!(
            p["values"][0].as_str().unwrap().parse::<f64>().unwrap(),
            rate
        );
        assert_eq!(p["runs"].as_array().unwrap().len(), 4, "{p}");
        assert_eq!(p["pool"], PORTS);
        // The closed form beside each point: A = rate × 61 s, B(1000, A).
        let a = rate * OCCUPANCY_S;
        assert!((f(&p["offered_load"]) - a).abs() < 1e-9, "{p}");
        let b = erlang_b(PORTS, a);
        let shown = f(&p["erlang_b_failure_ratio"]);
        assert!(
            (shown - b).abs() <= 1e-12 * b.max(1e-300),
            "{rate}: {shown} vs {b}"
        );
        // The mean is the mean of the runs' failures / attempts.
        let runs = p["runs"].as_array().unwrap();
        let by_hand = runs
            .iter()
            .map(|r| f(&r["failures"]) / f(&r["attempts"]))
            .sum::<f64>()
            / runs.len() as f64;
        let mean = f(&p["figures"]["failure_ratio"]["mean"]);
        assert!(
            (mean - by_hand).abs() < 1e-12,
            "{rate}: {mean} vs {by_hand}"
        );
        means.push((rate, mean, b));
    }
    eprintln!("rate, mean failure ratio, Erlang B: {means:?}");

    // Non-decreasing in the rate. Below saturation every point is 0; above
    // it, each step of 2/s raises Erlang B by 6 points or more, while the
    // seeds' noise in a 4-seed mean is about 1 point (and the same seeds are
    // used at every rate). The 0.002 slack only keeps equal zeros and
    // rounding from mattering.
    for w in means.windows(2) {
        assert!(
            w[1].1 >= w[0].1 - 0.002,
            "failure ratio fell from {} at {}/s to {} at {}/s",
            w[0].1,
            w[0].0,
            w[1].1,
            w[1].0
        );
    }
    // Well below saturation (rate ≤ 14: at most 854 ports wanted on average,
    // with a Poisson spread of √854 ≈ 29, so 1,000 is 5 standard deviations
    // away): no failures to speak of.
    for &(rate, mean, _) in means.iter().filter(|m| m.0 <= 14.0) {
        assert!(mean < 1e-3, "{rate}/s: failure ratio {mean}");
    }
    // Past saturation, Erlang B. The range starts empty, so the first
    // ~1000 / rate ≤ 61 s fill it without failures; over 600 s the simulated
    // ratio is lower than the steady state by up to that share, and a little
    // noise either way: B(1 − 61/600) − 0.02 ≤ sim ≤ B + 0.01. Only where
    // B ≥ 5 % (rate ≥ 18) is the lower bound positive and so meaningful.
    for &(rate, mean, b) in means.iter().filter(|m| m.2 >= 0.05) {
        let low = b * (1.0 - OCCUPANCY_S / DURATION_S) - 0.02;
        assert!(
            (low..=b + 0.01).contains(&mean),
            "{rate}/s: failure ratio {mean}, Erlang B {b}, allowed {low}..{}",
            b + 0.01
        );
    }
    assert!(
        means.iter().filter(|m| m.2 >= 0.05).count() >= 3,
        "rates 18, 20, 22 and 24 are past saturation: {means:?}"
    );

    // sweep.csv: a header and one row per point, all the same width.
    let csv = std::fs::read_to_string(out.join("sweep.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    let width = lines[0].split(',').count();
    assert!(
        lines[0].starts_with("traffic.rate,failure_ratio_mean,"),
        "{}",
        lines[0]
    );
    assert_eq!(lines.len(), 1 + points.len(), "{csv}");
    for (l, rate) in lines[1..].iter().zip(&rates) {
        assert_eq!(l.split(',').count(), width, "{l}");
        assert_eq!(l.split(',').next().unwrap().parse::<f64>().unwrap(), *rate);
    }
    // The table: a header, a rule, then one line per point, in order.
    let table: Vec<&str> = stdout.lines().collect();
    assert_eq!(table.len(), 2 + points.len(), "{stdout}");
    assert!(table[1].starts_with("---"), "{stdout}");
    for (l, rate) in table[2..].iter().zip(&rates) {
        assert_eq!(
            l.split_whitespace().next().unwrap().parse::<f64>().unwrap(),
            *rate,
            "{stdout}"
        );
    }
}

#[test]
fn results_do_not_depend_on_jobs() {
    // Every (point, seed) run is independent and deterministic, and the runs
    // are put back in plan order, so the thread count changes nothing.
    let tmp = tempfile::tempdir().unwrap();
    let file = small_file(tmp.path());
    let (a, b) = (tmp.path().join("j1"), tmp.path().join("j2"));
    let args = ["--vary", "traffic.rate=10..24:2", "--seeds", "4"];
    let one = sweep(&file, &a, &[&args[..], &["--jobs", "1"]].concat());
    let two = sweep(&file, &b, &[&args[..], &["--jobs", "2"]].concat());
    assert_eq!(one, two, "the table");
    same_files(&a, &b, "--jobs 1 against --jobs 2");
}

#[test]
fn no_progress_bar_when_stderr_is_not_a_terminal() {
    // Without --quiet the bar is drawn only on a terminal; under a test
    // harness stderr is a pipe, so a successful sweep writes nothing there.
    let tmp = tempfile::tempdir().unwrap();
    let file = small_file(tmp.path());
    let out = portsim()
        .arg("sweep")
        .arg(&file)
        .args(["--vary", "traffic.rate=10,20", "--seeds", "2"])
        .assert()
        .success();
    let o = out.get_output();
    assert!(o.stderr.is_empty(), "stderr: {}", text(&o.stderr));
    assert_eq!(
        text(&o.stdout).lines().count(),
        4,
        "header, rule, two points"
    );
}

#[test]
fn merged_shards_equal_the_unsharded_sweep() {
    let tmp = tempfile::tempdir().unwrap();
    let file = small_file(tmp.path());
    let d = |name: &str| tmp.path().join(name);
    let grid = [
        "--vary",
        "traffic.rate=12,16,20",
        "--vary",
        "host.time_wait=30s,60s",
        "--seeds",
        "3",
    ];
    let whole = sweep(&file, &d("d0"), &grid);
    for k in 1..=3 {
        let shard = format!("{k}/3");
        sweep(
            &file,
            &d(&format!("d{k}")),
            &[&grid[..], &["--shard", &shard]].concat(),
        );
        // Round robin: shard k holds points k-1 and k+2 of the 6.
        let r = read_json(&d(&format!("d{k}")).join("sweep.json"));
        let idx: Vec<u64> = r["points"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["index"].as_u64().unwrap())
            .collect();
        assert_eq!(idx, [k - 1, k + 2], "shard {shard}");
    }
    // Given out of order on purpose: merge must sort the points back.
    let merged = ok(&[
        OsStr::new("merge"),
        d("d3").as_os_str(),
        d("d1").as_os_str(),
        d("d2").as_os_str(),
        OsStr::new("--out"),
        d("dm").as_os_str(),
    ]);
    same_files(
        &d("d0"),
        &d("dm"),
        "merged shards against the unsharded sweep",
    );
    assert_eq!(merged, whole, "merge's table against the unsharded one");

    // Refusals: exit 2, one message, and no --out directory made.
    let refused = |dirs: &[PathBuf], expect: &[&str]| {
        let out = d("refused");
        let mut cmd = portsim();
        cmd.arg("merge").args(dirs).arg("--out").arg(&out);
        let o = cmd.assert().code(2);
        let err = text(&o.get_output().stderr);
        assert!(!err.contains("panicked"), "{err}");
        assert_eq!(err.matches("error:").count(), 1, "{err}");
        for e in expect {
            assert!(err.contains(e), "{dirs:?}: expected `{e}` in: {err}");
        }
        assert!(
            !out.exists(),
            "{dirs:?}: a refused merge wrote {}",
            out.display()
        );
    };
    refused(&[d("d1"), d("d2")], &["missing shard", "3/3"]);
    refused(&[d("d2"), d("d3")], &["missing shard", "1/3"]);
    refused(&[d("d1"), d("d1")], &["shard 1/3"]);
    refused(&[d("d1"), d("d2"), d("d3"), d("d2")], &["shard 2/3"]);
    // A shard of a different sweep (other seeds) among the right ones.
    sweep(
        &file,
        &d("other"),
        &[&grid[..4], &["--seeds", "2", "--shard", "3/3"]].concat(),
    );
    refused(&[d("d1"), d("d2"), d("other")], &["another sweep"]);
    // An unsharded sweep is not a shard.
    refused(&[d("d0")], &["not a shard"]);
}

#[test]
fn capacity_lies_in_the_analytic_bracket() {
    let tmp = tempfile::tempdir().unwrap();
    let file = small_file(tmp.path());
    let out = tmp.path().join("cap");
    let args = [
        "--vary",
        "traffic.rate",
        "--target",
        "failure_ratio<=1e-3",
        "--seeds",
        "4",
    ];
    let (json1, c) = capacity(
        &file,
        &[&args[..], &["--jobs", "1", "--out", out.to_str().unwrap()]].concat(),
    );
    let (json2, _) = capacity(&file, &[&args[..], &["--jobs", "2"]].concat());
    // Each seed's search is sequential and seeds are independent: --jobs
    // changes nothing.
    assert_eq!(json1, json2, "--jobs 1 against --jobs 2");
    assert_eq!(
        std::fs::read_to_string(out.join("capacity.json")).unwrap(),
        json1
    );

    let value = f(&c["value"]);
    let (low, high) = (f(&c["interval"][0]), f(&c["interval"][1]));
    let analytic = f(&c["analytic"]);
    let ceiling = f(&c["ceiling"]);
    eprintln!("capacity {value} ({low}–{high}), Erlang B {analytic}, ceiling {ceiling}");
    assert_eq!(c["key"], "traffic.rate");
    assert_eq!(c["schema_version"], 1);
    // A rate: low values meet the target, so the answer is the largest.
    assert_eq!(c["direction"], "largest");
    assert_eq!(c["complete"], true);
    assert!(low <= value && value <= high, "{c}");
    // Back of the envelope: 1,000 ports ÷ 61 s = 16.39/s, the rate at which
    // the mean demand equals the range; with random arrivals the demand
    // fluctuates above its mean, so the answer is below (2 % for rounding).
    assert!(
        (ceiling - PORTS as f64 / OCCUPANCY_S).abs() < 1e-9,
        "{ceiling}"
    );
    assert!(
        value <= ceiling * 1.02,
        "{value} above the ceiling {ceiling}"
    );
    // Erlang B's answer: the simulation's failure-free warm-up (the empty
    // range fills first) can only make a rate look better, so the simulated
    // answer is not below Erlang B's but for noise (3 %).
    assert!(
        value >= analytic * 0.97,
        "{value} below Erlang B's {analytic}"
    );
    // Erlang B's own answer lies between: B(1000, 15 × 61) ≈ 1e-4 meets the
    // target and B(1000, 16.39 × 61) ≈ 2.5 % does not.
    assert!(
        (15.0..PORTS as f64 / OCCUPANCY_S).contains(&analytic),
        "{analytic}"
    );
    assert!(erlang_b(PORTS, analytic * OCCUPANCY_S) <= 1e-3);

    let per_seed: Vec<f64> = c["per_seed"].as_array().unwrap().iter().map(f).collect();
    assert_eq!(per_seed.len(), 4);
    let mean = per_seed.iter().sum::<f64>() / 4.0;
    assert!((mean - value).abs() < 1e-9, "value is the mean of per_seed");

    // Every probe is judged by the target, and each seed's answer is the
    // boundary of its own probes: the largest value that met the target,
    // with a failing value within the search's resolution (0.1 %) above it.
    let probes = c["probes"].as_array().unwrap();
    for p in probes {
        let (fig, meets) = (f(&p["figure"]), p["meets"].as_bool().unwrap());
        assert_eq!(meets, fig <= 1e-3, "{p}");
    }
    for (i, &answer) in per_seed.iter().enumerate() {
        let seed = 1 + i as u64;
        let mine: Vec<(f64, bool)> = probes
            .iter()
            .filter(|p| p["seed"] == seed)
            .map(|p| {
                (
                    p["value"].as_str().unwrap().parse().unwrap(),
                    p["meets"].as_bool().unwrap(),
                )
            })
            .collect();
        let best = mine
            .iter()
            .filter(|p| p.1)
            .map(|p| p.0)
            .fold(f64::MIN, f64::max);
        let above = mine
            .iter()
            .filter(|p| !p.1)
            .map(|p| p.0)
            .fold(f64::MAX, f64::min);
        assert!(
            (best - answer).abs() <= 1e-6,
            "seed {seed}: {answer} vs {mine:?}"
        );
        assert!(
            above > answer && above <= answer * 1.001 + 1e-6,
            "seed {seed}: {answer}, first failing value {above}"
        );
    }
    let csv = std::fs::read_to_string(out.join("capacity.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + probes.len(), "{csv}");

    // Without --json: one sentence.
    let sentence = ok(&[
        OsStr::new("capacity"),
        file.as_os_str(),
        OsStr::new("--vary"),
        OsStr::new("traffic.rate"),
        OsStr::new("--target"),
        OsStr::new("failure_ratio<=1e-3"),
        OsStr::new("--seeds"),
        OsStr::new("4"),
    ]);
    assert_eq!(sentence.lines().count(), 1, "{sentence}");
    assert!(sentence.starts_with("Sustains "), "{sentence}");
}

#[test]
fn capacity_finds_the_smallest_port_range_style_key() {
    // Keep-alive: at 40 requests/s and k requests per connection, connections
    // open at 40/k per second and each lives for k holds of 1 s plus 60 s of
    // TIME_WAIT, so the offered load is (40/k)(k + 60) = 40 + 2400/k erlangs.
    //   k = 1: 2,440; k = 2: 1,240 (Erlang B ≥ 1 − 1000/1240 ≈ 19 %);
    //   k = 3: 840, 160 ports (5.5 standard deviations of √840) below the
    //   range, so no failures in 10 minutes.
    // More requests per connection is better, so the answer is the smallest
    // k that meets the target, and it is exactly 3, for every seed and for
    // Erlang B.
    let tmp = tempfile::tempdir().unwrap();
    let file = small_file(tmp.path());
    let (_, c) = capacity(
        &file,
        &[
            "--set",
            "traffic.rate=40",
            "--vary",
            "traffic.requests_per_connection=1..64",
            "--target",
            "failure_ratio<=1e-3",
            "--seeds",
            "4",
        ],
    );
    eprintln!(
        "requests_per_connection: {} ({}), Erlang B {}",
        c["value"], c["interval"], c["analytic"]
    );
    assert_eq!(c["direction"], "smallest", "{c}");
    assert_eq!(c["key"], "traffic.requests_per_connection");
    assert!(erlang_b(PORTS, 40.0 + 2400.0 / 2.0) > 0.15);
    assert!(erlang_b(PORTS, 40.0 + 2400.0 / 3.0) < 1e-6);
    assert_eq!(f(&c["analytic"]), 3.0, "{c}");
    let per_seed: Vec<f64> = c["per_seed"].as_array().unwrap().iter().map(f).collect();
    assert_eq!(per_seed, [3.0; 4], "{c}");
    assert_eq!(f(&c["value"]), 3.0);
    // The ceiling is stated for traffic.rate only.
    assert!(c["ceiling"].is_null(), "{c}");
    for p in c["probes"].as_array().unwrap() {
        let k: u32 = p["value"].as_str().unwrap().parse().unwrap();
        assert_eq!(p["meets"].as_bool().unwrap(), k >= 3, "{p}");
    }
}

/// Run `portsim args...` in `dir`, expect exit 2 with one message and nothing
/// on stdout, and no file written to `dir/out`; returns stderr.
fn refused(dir: &Path, args: &[&str]) -> String {
    let out = portsim().current_dir(dir).args(args).assert().code(2);
    let o = out.get_output();
    let err = text(&o.stderr);
    assert!(o.stdout.is_empty(), "{args:?}: stdout {}", text(&o.stdout));
    assert!(!err.contains("panicked"), "{args:?}: {err}");
    assert!(err.starts_with("error: "), "{args:?}: {err}");
    assert_eq!(err.matches("error:").count(), 1, "{args:?}: {err}");
    let written: Vec<_> = std::fs::read_dir(dir.join("out"))
        .map(|d| d.filter_map(Result::ok).map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(written.is_empty(), "{args:?}: wrote {written:?}");
    err
}

#[test]
fn bad_sweep_input_exits_2_with_one_message() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    small_file(dir);
    std::fs::create_dir(dir.join("empty")).unwrap();
    let s = |rest: &[&'static str]| -> Vec<&'static str> {
        [
            &["sweep", "small.toml", "--out", "out", "--quiet"][..],
            rest,
        ]
        .concat()
    };
    // (arguments, text the first line of the message must hold)
    let cases: Vec<(Vec<&str>, Vec<&str>)> = vec![
        (s(&["--vary", "traffic.rate"]), vec!["--vary", "KEY=SPEC"]),
        (
            s(&["--vary", "traffic.rate=1..2"]),
            vec!["--vary", "needs a step"],
        ),
        (
            s(&["--vary", "traffic.rate=5..1:1"]),
            vec!["--vary", "backwards"],
        ),
        (
            s(&["--vary", "traffic.rate=1..2:0"]),
            vec!["--vary", "positive"],
        ),
        (
            s(&["--vary", "traffic.rate=abc"]),
            vec!["traffic.rate", "abc", "number"],
        ),
        (
            s(&["--vary", "traffic.rate=10,abc"]),
            vec!["traffic.rate", "abc", "number"],
        ),
        (
            s(&["--vary", "traffic.bogus=1,2"]),
            vec!["unknown key `bogus`", "requests_per_connection"],
        ),
        (
            s(&["--vary", "traffic.rat=1,2"]),
            vec!["did you mean `rate`"],
        ),
        (
            s(&["--vary", "traffic.rate=1,2", "--vary", "traffic.rate=3"]),
            vec!["traffic.rate", "twice"],
        ),
        (
            s(&["--vary", "traffic.rate=1,2", "--shard", "0/3"]),
            vec!["--shard", "K/N"],
        ),
        (
            s(&["--vary", "traffic.rate=1,2", "--shard", "4/3"]),
            vec!["--shard", "K/N"],
        ),
        (
            vec![
                "sweep",
                "small.toml",
                "--vary",
                "traffic.rate=1,2",
                "--shard",
                "2/3",
            ],
            vec!["required"],
        ),
        (
            s(&["--vary", "traffic.rate=1,2", "--seeds", "0"]),
            vec!["--seeds", "1..="],
        ),
        (
            vec![
                "capacity",
                "small.toml",
                "--vary",
                "traffic.rate",
                "--target",
                "failed<1",
                "--out",
                "out",
            ],
            vec!["--target", "unknown figure", "failures"],
        ),
        (
            vec![
                "capacity",
                "small.toml",
                "--vary",
                "host.os",
                "--out",
                "out",
            ],
            vec!["host.os", "not a number or duration"],
        ),
        (
            vec![
                "capacity",
                "small.toml",
                "--vary",
                "traffic.rate=20..10",
                "--out",
                "out",
            ],
            vec!["--vary", "LOW < HIGH"],
        ),
        (
            vec!["merge", "empty", "--out", "out"],
            vec!["sweep.json", "cannot read"],
        ),
    ];
    for (args, expect) in cases {
        let err = refused(dir, &args);
        let first = err.lines().next().unwrap_or_default();
        for e in expect {
            assert!(first.contains(e), "{args:?}: expected `{e}` in: {err}");
        }
        // The --out requirement is stated on clap's next line.
        if args.contains(&"2/3") {
            assert!(err.contains("--out"), "{args:?}: {err}");
        }
    }
}

#[test]
fn a_bad_varied_value_is_blamed_on_vary() {
    // The user wrote --vary, not --set: the message must not send them
    // looking for a --set they never gave.
    let tmp = tempfile::tempdir().unwrap();
    small_file(tmp.path());
    for args in [
        [
            "sweep",
            "small.toml",
            "--vary",
            "traffic.rate=abc",
            "--out",
            "out",
        ],
        [
            "sweep",
            "small.toml",
            "--vary",
            "traffic.rat=1,2",
            "--out",
            "out",
        ],
    ] {
        let err = refused(tmp.path(), &args);
        assert!(err.contains("--vary"), "{args:?}: {err}");
        assert!(!err.contains("--set"), "{args:?}: {err}");
    }
}

#[cfg(unix)]
#[test]
fn ctrl_c_keeps_finished_points() {
    use std::time::Duration;

    // 400 points × 2 seeds of 30 minutes at 100 to 500 connections/s
    // (about 0.05 s a run here with one thread): half a minute or more, so
    // the sweep is still running when the signal comes after 1.5 s. The
    // range is wide enough that no run fails; only the time matters.
    let tmp = tempfile::tempdir().unwrap();
    let text_ = small(100.0)
        .replace("duration = \"10m\"", "duration = \"30m\"")
        .replace("60000-60999", "40000-60999");
    let file = write(tmp.path(), "big.toml", &text_);
    let out = tmp.path().join("out");
    let r = interrupt_after_start(
        tmp.path(),
        [
            OsStr::new("sweep"),
            file.as_os_str(),
            OsStr::new("--vary"),
            OsStr::new("traffic.rate=100..499:1"),
            OsStr::new("--seeds"),
            OsStr::new("2"),
            OsStr::new("--jobs"),
            OsStr::new("1"),
            OsStr::new("--out"),
            out.as_os_str(),
        ],
        Duration::from_secs(60),
    );
    let (status, err) = (r.status, r.stderr);
    // 128 + SIGINT, from the handler: not the default death by signal.
    assert_eq!(status.code(), Some(130), "{status:?}; stderr: {err}");
    assert!(err.contains("interrupted"), "{err}");
    assert!(!err.contains("panicked"), "{err}");

    let r = read_json(&out.join("sweep.json"));
    assert_eq!(r["complete"], false);
    assert_eq!(r["points_total"], 400);
    let points = r["points"].as_array().unwrap();
    eprintln!("interrupted with {} of 400 points", points.len());
    assert!(points.len() < 400, "{} points", points.len());
    // Only whole points are kept: every one has a run per seed, and their
    // figures are those of a finished sweep of the same points.
    for p in points {
        assert_eq!(p["runs"].as_array().unwrap().len(), 2, "{p}");
        assert_eq!(p["figures"]["failure_ratio"]["n"], 2, "{p}");
    }
    let csv = std::fs::read_to_string(out.join("sweep.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + points.len(), "{csv}");
    let table = std::fs::read_to_string(tmp.path().join("stdout")).unwrap();
    assert!(table.contains("interrupted"), "{table}");
}

#[test]
fn a_sweep_table_supplies_the_defaults() {
    // `[sweep]` in the scenario stands in for --vary, --seeds, and capacity's
    // --vary and --target; flags given on the command line win.
    let tmp = tempfile::tempdir().unwrap();
    let with_table = format!(
        "{}\n[sweep]\nvary = [\"traffic.rate=12,16\"]\nseeds = 2\ncapacity = \"traffic.rate\"\ntarget = \"failure_ratio<=1e-3\"\n",
        small(15.0)
    );
    let file = write(tmp.path(), "table.toml", &with_table);
    let from_table = sweep(&file, &tmp.path().join("a"), &[]);
    let from_flags = sweep(
        &file,
        &tmp.path().join("b"),
        &["--vary", "traffic.rate=12,16", "--seeds", "2"],
    );
    assert_eq!(from_table, from_flags, "[sweep] acts as the flags");
    let r = read_json(&tmp.path().join("a").join("sweep.json"));
    assert_eq!(r["points"].as_array().unwrap().len(), 2);
    assert_eq!(r["seeds"], 2);
    let overridden = sweep(&file, &tmp.path().join("c"), &["--vary", "traffic.rate=20"]);
    assert_eq!(overridden.lines().count(), 3, "--vary replaces the table's");

    let (_, cap) = capacity(&file, &["--seeds", "2"]);
    assert_eq!(cap["key"], "traffic.rate");
    assert_eq!(cap["target"], "failure_ratio <= 0.001");
    let (_, explicit) = capacity(
        &file,
        &[
            "--seeds",
            "2",
            "--vary",
            "traffic.rate",
            "--target",
            "failure_ratio<=1e-3",
        ],
    );
    assert_eq!(cap, explicit);

    // Without a table or flags there is nothing to vary: exit 2, one message.
    let plain = small_file(tmp.path());
    for cmd in ["sweep", "capacity"] {
        let out = portsim()
            .arg(cmd)
            .arg(&plain)
            .arg("--quiet")
            .assert()
            .code(2);
        let err = text(&out.get_output().stderr);
        assert!(
            err.contains("[sweep]") && err.contains("--vary"),
            "{cmd}: {err}"
        );
    }

    // A bad table is a scenario error naming its key, before any run.
    for (table, key) in [
        ("[sweep]\nvary = [\"traffic.rate=1..2\"]\n", "sweep.vary[0]"),
        ("[sweep]\nseeds = 0\n", "sweep.seeds"),
        ("[sweep]\ntarget = \"failed<1\"\n", "sweep.target"),
        ("[sweep]\nvaries = []\n", "varies"),
    ] {
        let f = write(tmp.path(), "bad.toml", &format!("{}\n{table}", small(15.0)));
        let out = portsim().arg("check").arg(&f).assert().code(2);
        let err = text(&out.get_output().stderr);
        assert!(
            err.contains(key) && err.lines().count() == 1,
            "{table}: {err}"
        );
    }
}

#[test]
fn capacity_names_the_unit_of_what_it_searched() {
    // 1,000 ports at 15/s: nothing fails while 15 × (1 s + TIME_WAIT) stays
    // well below 1,000, so the longest TIME_WAIT is about a minute, in seconds.
    let tmp = tempfile::tempdir().unwrap();
    let f = small_file(tmp.path());
    let s = ok(&[
        "capacity".as_ref(),
        f.as_os_str(),
        "--vary".as_ref(),
        "host.time_wait=10s..120s".as_ref(),
        "--seeds".as_ref(),
        "2".as_ref(),
        "--quiet".as_ref(),
    ]);
    let first = s.lines().next().unwrap();
    assert!(
        first.starts_with("host.time_wait: the largest value with"),
        "{s}"
    );
    // "is 58.3 s; 95 % interval 55.0–61.6 s": the value and both ends.
    assert_eq!(
        first.matches(" s;").count() + first.matches(" s ").count(),
        2,
        "{first}"
    );
    assert!(!first.contains("conn/s"), "{first}");
}

/// A fleet's "peak ports" is the busiest host's against one host's ports:
/// 5 hosts of 1,000 ports at 40/s with 1 s holds and 60 s TIME_WAIT each
/// fill their own 1,000 ports (the fleet's total is 5,000).
#[test]
fn a_fleets_sweep_compares_the_busiest_host_with_its_ports() {
    let dir = tempfile::tempdir().unwrap();
    let text = r#"
name = "sw"
seed = 1
duration = "60s"
[host]
os = "linux"
port_range = "50000-50999"
[[destinations]]
address = "10.0.0.1:443"
[traffic]
rate = 40
hold = "1s"
[[hosts]]
name = "web"
count = 5
"#;
    let path = write(dir.path(), "sw.toml", text);
    let out = portsim()
        .current_dir(dir.path())
        .args([
            "sweep",
            "--vary",
            "traffic.rate=40",
            "--seeds",
            "1",
            "--json",
        ])
        .arg(&path)
        .assert()
        .success();
    let json: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    let run = &json["points"][0]["runs"][0];
    assert_eq!(run["peak_in_use"], 5000, "{run}");
    assert_eq!(run["peak_in_use_per_host"], 1000, "{run}");
    let table = portsim()
        .current_dir(dir.path())
        .args(["sweep", "--vary", "traffic.rate=40", "--seeds", "1"])
        .arg(&path)
        .assert()
        .success();
    let text = String::from_utf8_lossy(&table.get_output().stdout).to_string();
    assert!(text.contains("1,000 of 1,000"), "{text}");
}
