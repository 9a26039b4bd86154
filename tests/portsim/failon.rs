//! `--fail-on EXPR` on `run`, `sweep` and `capacity` (exit 0 when false, 1
//! when true, 2 when the expression is bad, outputs written either way), and
//! `capacity --target` on the figures it shares with `--fail-on`, checked
//! against an answer computed by hand.

use std::path::Path;

use serde_json::Value;

use crate::util::{portsim, text, write};

/// 100 ports, 8 connections/s exactly 125 ms apart (attempt k at k/8 s),
/// hold 1 s, TIME_WAIT 60 s, 300 s. Each port is busy 61 s, so at a rate
/// r > 100/61 the ports fill with attempts 1..100 and attempt 101, at
/// 101/r s, is the first to fail: 12.625 s at r = 8. At r ≤ 100/61 nothing
/// ever fails.
const SATURATING: &str = r#"
name = "saturating"
seed = 5
duration = "300s"
[host]
port_range = "50000-50099"
time_wait = "60s"
[[destinations]]
address = "10.0.0.5:5432"
[traffic]
arrivals = "constant"
rate = 8
hold = "1s"
"#;

/// 1 connection/s × (1 s + 60 s) = 61 ports at most, of 16,384: nothing fails.
const LIGHT: &str = r#"
name = "light"
seed = 3
duration = "120s"
[[destinations]]
address = "10.0.0.5:5432"
[traffic]
arrivals = "constant"
rate = 1
hold = "1s"
"#;

const FIGURES: [&str; 10] = [
    "failure_ratio",
    "failures",
    "attempts",
    "first_failure_s",
    "peak_in_use",
    "worst_1s",
    "worst_10s",
    "worst_60s",
    "seconds_with_failures",
    "longest_blocked_s",
];

fn json(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(bytes)))
}

fn read_json(path: &Path) -> Value {
    json(&std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
}

/// Run `portsim ARGS` in `dir`, expecting exit `code`; its stderr.
fn stderr_of(dir: &Path, args: &[&str], code: i32) -> String {
    let out = portsim().current_dir(dir).args(args).assert().code(code);
    text(&out.get_output().stderr)
}

#[test]
fn run_exits_1_exactly_when_an_expression_is_true() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write(dir, "sat.toml", SATURATING);
    write(dir, "light.toml", LIGHT);
    // The saturating run: 1,900 of 2,400 attempts fail, the first at 12.625 s.
    let r = json(
        &portsim()
            .current_dir(dir)
            .args(["run", "sat.toml", "--json"])
            .assert()
            .code(0)
            .get_output()
            .stdout,
    );
    assert_eq!(
        (r["attempts"].as_u64(), r["failures"].as_u64()),
        (Some(2400), Some(1900))
    );
    assert_eq!(r["first_failure"]["time_s"], 12.625);
    assert_eq!(r["bursts"]["worst_10s"], 1.0);

    for (file, expr, code) in [
        ("sat.toml", "failures>0", 1),
        ("sat.toml", "failures>1900", 0),
        ("sat.toml", "failures>=1900", 1),
        ("sat.toml", "failure_ratio>0.79", 1),
        ("sat.toml", "failure_ratio>0.8", 0),
        ("sat.toml", "attempts<2400", 0),
        ("sat.toml", "first_failure_s<12.625", 0),
        ("sat.toml", "first_failure_s<=12.625", 1),
        ("sat.toml", "first_failure_s < 1h", 1),
        ("sat.toml", "peak_in_use<100", 0),
        ("sat.toml", "worst_10s>0.01", 1),
        // Nothing failed: first_failure_s is later than any bound.
        ("light.toml", "first_failure_s<3600", 0),
        ("light.toml", "first_failure_s>=3600", 1),
        ("light.toml", "failures>0", 0),
        ("light.toml", "worst_1s>0", 0),
        ("light.toml", "longest_blocked_s>0", 0),
        ("light.toml", "seconds_with_failures>=0", 1),
        ("light.toml", "peak_in_use>60", 1),
        ("light.toml", "peak_in_use>61", 0),
    ] {
        let err = stderr_of(dir, &["run", file, "--fail-on", expr], code);
        if code == 0 {
            assert_eq!(err, "", "{file} {expr}");
        } else {
            assert!(
                err.starts_with(&format!("portsim: --fail-on {} is true: ", expr.trim()))
                    && err.lines().count() == 1,
                "{file} {expr}: {err}"
            );
        }
    }
    // The message gives the figure in full.
    let err = stderr_of(
        dir,
        &["run", "sat.toml", "--fail-on", "failure_ratio>1e-4"],
        1,
    );
    assert_eq!(
        err,
        "portsim: --fail-on failure_ratio>1e-4 is true: failure_ratio = 0.791667\n"
    );
    let err = stderr_of(
        dir,
        &["run", "light.toml", "--fail-on", "first_failure_s>=3600"],
        1,
    );
    assert_eq!(
        err,
        "portsim: --fail-on first_failure_s>=3600 is true: first_failure_s = inf (nothing failed)\n"
    );
    // Repeated: exit 1 if any is true, one line for each that is.
    let err = stderr_of(
        dir,
        &[
            "run",
            "sat.toml",
            "--fail-on",
            "worst_60s>0.5",
            "--fail-on",
            "peak_in_use<100",
            "--fail-on",
            "longest_blocked_s>=48.5",
        ],
        1,
    );
    assert_eq!(
        err,
        "portsim: --fail-on worst_60s>0.5 is true: worst_60s = 0.7921\n\
         portsim: --fail-on longest_blocked_s>=48.5 is true: longest_blocked_s = 48.5\n"
    );
    // --fail-on-exhaustion is failures>0, and says so.
    let err = stderr_of(dir, &["run", "sat.toml", "--fail-on-exhaustion"], 1);
    assert_eq!(
        err,
        "portsim: --fail-on-exhaustion (failures>0) is true: failures = 1900\n"
    );
    stderr_of(dir, &["run", "light.toml", "--fail-on-exhaustion"], 0);
}

#[test]
fn run_writes_its_outputs_when_an_expression_is_true() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write(dir, "sat.toml", SATURATING);
    let out = portsim()
        .current_dir(dir)
        .args(["run", "sat.toml", "--out", "out", "--no-charts"])
        .args(["--fail-on", "worst_10s>0.01"])
        .assert()
        .code(1);
    assert!(text(&out.get_output().stdout).contains("First failure at"));
    let r = read_json(&dir.join("out/report.json"));
    assert_eq!(r["failures"], 1900);
    assert!(dir.join("out/timeseries.csv").is_file());
}

#[test]
fn bad_expressions_are_refused_before_anything_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write(dir, "sat.toml", SATURATING);
    let commands: [&[&str]; 3] = [
        &["run", "sat.toml", "--out", "out"],
        &[
            "sweep",
            "sat.toml",
            "--vary",
            "traffic.rate=4,8",
            "--out",
            "out",
        ],
        &[
            "capacity",
            "sat.toml",
            "--vary",
            "traffic.rate=8..16",
            "--out",
            "out",
        ],
    ];
    for cmd in commands {
        for (expr, says) in [
            (
                "worst_5s>0",
                "unknown figure \"worst_5s\" (did you mean \"worst_1s\"?)",
            ),
            ("failures=0", "\"=\" is not a comparison"),
            ("failures", "no comparison"),
            ("failure_ratio>2", "2 is out of range for failure_ratio"),
            ("failure_ratio>nan", "a finite number is expected"),
            ("first_failure_s<soon", "neither a number nor a duration"),
            ("failures>0,worst_10s>0.01", "one expression at a time"),
        ] {
            let mut args = cmd.to_vec();
            args.extend(["--fail-on", expr]);
            let err = stderr_of(dir, &args, 2);
            assert!(
                err.starts_with(&format!("error: --fail-on \"{expr}\": "))
                    && err.contains(says)
                    && err.lines().count() == 1,
                "{cmd:?} {expr}: {err}"
            );
            // Checked before the output directory is made.
            assert!(!dir.join("out").exists(), "{cmd:?} {expr}");
        }
        // Every message lists every figure.
        let mut args = cmd.to_vec();
        args.extend(["--fail-on", "peak>1"]);
        let err = stderr_of(dir, &args, 2);
        for f in FIGURES {
            assert!(err.contains(f), "{cmd:?}: {f} not in {err}");
        }
    }
    // capacity --target takes the same grammar and says so.
    let err = stderr_of(
        dir,
        &[
            "capacity",
            "sat.toml",
            "--vary",
            "traffic.rate",
            "--target",
            "worst_2s<=0.01",
        ],
        2,
    );
    assert!(
        err.starts_with("error: --target \"worst_2s<=0.01\": unknown figure"),
        "{err}"
    );
    for f in FIGURES {
        assert!(err.contains(f), "{f} not in {err}");
    }
}

#[test]
fn sweep_fails_on_any_single_run_and_says_which() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write(dir, "sat.toml", SATURATING);
    let sweep = [
        "sweep",
        "sat.toml",
        "--vary",
        "traffic.rate=1,8,16",
        "--seeds",
        "2",
    ];
    // At 1/s nothing fails; at 8/s the first failure is at 12.625 s, at
    // 16/s at 101/16 = 6.3125 s, whatever the seed (constant traffic).
    let mut args = sweep.to_vec();
    args.extend(["--out", "out", "--fail-on", "first_failure_s<=12.625"]);
    let err = stderr_of(dir, &args, 1);
    assert_eq!(
        err,
        "portsim: --fail-on first_failure_s<=12.625 is true: first_failure_s = 12.625 at traffic.rate=8, seed 5 (true of 4 of 6 runs)\n"
    );
    // The outputs are written, and every run carries the burst figures of
    // the report of the same run.
    let s = read_json(&dir.join("out/sweep.json"));
    let run = &s["points"][1]["runs"][1];
    assert_eq!(run["seed"], 6);
    let r = json(
        &portsim()
            .current_dir(dir)
            .args(["run", "sat.toml", "--json", "--seed", "6"])
            .assert()
            .code(0)
            .get_output()
            .stdout,
    );
    for f in [
        "worst_1s",
        "worst_10s",
        "worst_60s",
        "seconds_with_failures",
    ] {
        assert_eq!(run[f], r["bursts"][f], "{f}");
    }
    assert_eq!(
        run["longest_blocked_ns"].as_u64().unwrap() as f64 / 1e9,
        r["bursts"]["longest_blocked_s"].as_f64().unwrap()
    );
    let quiet = &s["points"][0]["runs"][0];
    assert_eq!(
        (
            quiet["worst_1s"].as_f64(),
            quiet["longest_blocked_ns"].as_u64()
        ),
        (Some(0.0), Some(0))
    );

    // Nothing failed at 1/s: "later than an hour" is true of those runs only.
    let mut args = sweep.to_vec();
    args.extend(["--fail-on", "first_failure_s>=1h"]);
    let err = stderr_of(dir, &args, 1);
    assert_eq!(
        err,
        "portsim: --fail-on first_failure_s>=1h is true: first_failure_s = inf (nothing failed) at traffic.rate=1, seed 5 (true of 2 of 6 runs)\n"
    );
    // False of every run: exit 0, nothing said.
    for expr in ["first_failure_s<6.3125", "peak_in_use>100", "worst_10s>1"] {
        let mut args = sweep.to_vec();
        args.extend(["--fail-on", expr]);
        assert_eq!(stderr_of(dir, &args, 0), "", "{expr}");
    }
}

/// `capacity` with `--json`; the answer.
fn capacity(dir: &Path, extra: &[&str], code: i32) -> (Value, String) {
    let out = portsim()
        .current_dir(dir)
        .args(["capacity", "sat.toml", "--quiet", "--json"])
        .args(extra)
        .assert()
        .code(code);
    let o = out.get_output();
    (json(&o.stdout), text(&o.stderr))
}

#[test]
fn capacity_finds_the_rate_whose_first_failure_is_exactly_the_target() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write(dir, "sat.toml", SATURATING);
    // first_failure_s = 101/r at every rate above 100/61, so the largest
    // rate with first_failure_s >= 12.625 is 101/12.625 = 8 exactly. From
    // the bracket 8..16 the low end meets the target and is never moved:
    // the answer is 8 in every seed.
    let target = ["--target", "first_failure_s>=12.625", "--seeds", "2"];
    let (c, _) = capacity(
        dir,
        &[&["--vary", "traffic.rate=8..16"][..], &target].concat(),
        0,
    );
    assert_eq!(c["direction"], "largest");
    assert_eq!(c["value"], 8.0);
    assert_eq!(c["per_seed"], serde_json::json!([8.0, 8.0]));
    assert_eq!(c["target"], "first_failure_s >= 12.625");

    // From the scenario's rate (4..16, then bisection to 0.1 %), the answer
    // is within the resolution below 8, and every value tried is judged
    // exactly: it meets the target if and only if it is at most 8, with
    // its first failure at 101/r s.
    let (c, _) = capacity(dir, &[&["--vary", "traffic.rate"][..], &target].concat(), 0);
    let v = c["value"].as_f64().unwrap();
    assert!((8.0 - 8.0 * 1e-3..=8.0).contains(&v), "{v}");
    let probes = c["probes"].as_array().unwrap();
    assert!(probes.len() > 10, "{probes:?}");
    for p in probes {
        let r: f64 = p["value"].as_str().unwrap().parse().unwrap();
        assert_eq!(p["meets"].as_bool().unwrap(), r <= 8.0, "{p}");
        let first = p["figure"].as_f64().unwrap();
        assert!(
            (first - 101.0 / r).abs() < 1e-6,
            "{p}: 101/r = {}",
            101.0 / r
        );
    }

    // A bound past the end of the run: the largest rate at which nothing
    // fails, r·61 s ≤ 100 ports. A run without failures has no first
    // failure: its figure is null in capacity.json (inf in capacity.csv).
    let (c, _) = capacity(
        dir,
        &[
            "--vary",
            "traffic.rate=1..16",
            "--target",
            "first_failure_s>=1h",
            "--seeds",
            "1",
            "--out",
            "out",
        ],
        0,
    );
    let v = c["value"].as_f64().unwrap();
    let edge = 100.0 / 61.0;
    assert!(
        v <= edge * (1.0 + 1e-9) && v >= edge * (1.0 - 2e-3),
        "{v} vs {edge}"
    );
    assert_eq!(c["probes"][0]["value"], "1");
    assert_eq!(c["probes"][0]["figure"], Value::Null);
    assert_eq!(c["probes"][0]["meets"], true);
    let csv = std::fs::read_to_string(dir.join("out/capacity.csv")).unwrap();
    assert!(csv.lines().nth(1) == Some("5,1,inf,true"), "{csv}");

    // The windowed figures too: a 10 s window with no failure at all holds
    // exactly while nothing fails, so the same edge.
    let (c, _) = capacity(
        dir,
        &[
            "--vary",
            "traffic.rate=1..16",
            "--target",
            "worst_10s<=0",
            "--seeds",
            "1",
        ],
        0,
    );
    let w = c["value"].as_f64().unwrap();
    assert!(
        w <= edge * (1.0 + 1e-9) && w >= edge * (1.0 - 2e-3),
        "{w} vs {edge}"
    );
}

#[test]
fn capacity_fails_on_the_runs_at_the_value_found() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write(dir, "sat.toml", SATURATING);
    let search = [
        "--vary",
        "traffic.rate=8..16",
        "--target",
        "first_failure_s>=12.625",
        "--seeds",
        "2",
    ];
    // At 8/s (the answer) every seed's run fails 1,900 of 2,400 attempts.
    let mut args = search.to_vec();
    args.extend([
        "--out",
        "out",
        "--fail-on",
        "failures>0",
        "--fail-on",
        "failures>1900",
    ]);
    let (c, err) = capacity(dir, &args, 1);
    assert_eq!(c["value"], 8.0);
    assert_eq!(
        err,
        "portsim: --fail-on failures>0 is true: failures = 1900 at traffic.rate=8, seed 5 (true of 2 of 2 seeds)\n"
    );
    // The outputs are written.
    assert_eq!(read_json(&dir.join("out/capacity.json"))["value"], 8.0);
    // The answer meets its own target, so the opposite expression is false.
    for expr in ["first_failure_s<12.625", "peak_in_use<100"] {
        let out = portsim()
            .current_dir(dir)
            .args(["capacity", "sat.toml", "--quiet"])
            .args(search)
            .args(["--fail-on", expr])
            .assert()
            .code(0);
        assert_eq!(text(&out.get_output().stderr), "", "{expr}");
        // The ceiling, 100 ports ÷ 61 s, has digits of its own.
        assert_eq!(
            text(&out.get_output().stdout),
            "Sustains 8 conn/s with first_failure_s >= 12.625; 95 % interval 8–8 conn/s over 2 seeds; ports ÷ (hold + TIME_WAIT) = 1.64 conn/s.\n"
        );
    }
}
