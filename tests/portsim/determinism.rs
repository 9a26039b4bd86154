//! A scenario and a seed give the same bytes on every run (stdout, report.json,
//! timeseries.csv, trace); another seed gives other results.

use std::path::Path;

use crate::cli::RANDOM;
use crate::util::{self, portsim, write};

/// Variants of a random scenario that exercise every random stream and every
/// event path: allocators that draw (rfc6056-1/2/5) or hash (rfc6056-3/4),
/// hold laws (exponential closes are drawn differently from the others),
/// retries, tw_reuse, keep-alive, bound source addresses picked by weight.
const VARIANTS: &[&[&str]] = &[
    &[],
    &["host.allocator=rfc6056-2"],
    &["host.allocator=rfc6056-5"],
    &[
        "host.os=linux",
        "traffic.hold={ dist = \"lognormal\", median = \"1s\", p99 = \"5s\" }",
    ],
    &[
        "host.allocator=rfc6056-3",
        "traffic.hold={ dist = \"uniform\", min = \"0ms\", max = \"4s\" }",
    ],
    &["traffic.retry={ after = \"500ms\", max = 2 }"],
    &["host.tw_reuse=true", "traffic.rate=150"],
    &[
        "traffic.bind=bind",
        "host.addresses=2",
        "traffic.source=weighted",
    ],
    &["traffic.requests_per_connection=3", "traffic.rate=40"],
];

/// Every output of one run.
#[derive(PartialEq, Eq, Debug)]
struct Outputs {
    stdout: Vec<u8>,
    report: Vec<u8>,
    timeseries: Vec<u8>,
    trace: Vec<u8>,
}

fn run(dir: &Path, scenario: &Path, tag: &str, sets: &[&str], seed: Option<u64>) -> Outputs {
    let out_dir = dir.join(format!("out-{tag}"));
    let trace = dir.join(format!("trace-{tag}.csv"));
    let mut cmd = portsim();
    cmd.arg("run")
        .arg(scenario)
        .arg("--json")
        .arg("--out")
        .arg(&out_dir)
        .arg("--trace")
        .arg(&trace);
    for s in sets {
        cmd.arg("--set").arg(s);
    }
    if let Some(seed) = seed {
        cmd.arg("--seed").arg(seed.to_string());
    }
    let stdout = cmd.assert().success().get_output().stdout.clone();
    let read = |p: &Path| std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    Outputs {
        stdout,
        report: read(&out_dir.join("report.json")),
        timeseries: read(&out_dir.join("timeseries.csv")),
        trace: read(&trace),
    }
}

/// The JSON report without the field that names the seed.
fn without_seed(report: &[u8]) -> serde_json::Value {
    let mut v: serde_json::Value = serde_json::from_slice(report).unwrap();
    v.as_object_mut().unwrap().remove("seed");
    v
}

#[test]
fn same_seed_same_bytes_other_seed_other_results() {
    let dir = tempfile::tempdir().unwrap();
    let sc = write(dir.path(), "random.toml", RANDOM);
    for (i, sets) in VARIANTS.iter().enumerate() {
        let a = run(dir.path(), &sc, &format!("{i}a"), sets, None);
        let b = run(dir.path(), &sc, &format!("{i}b"), sets, None);
        assert!(a == b, "variant {sets:?}: two runs differ");
        assert_eq!(a.report, a.stdout, "variant {sets:?}");
        let failures = serde_json::from_slice::<serde_json::Value>(&a.report).unwrap()["failures"]
            .as_u64()
            .unwrap();
        assert!(
            failures > 0,
            "variant {sets:?} should run out of ports, to exercise failures"
        );

        let c = run(dir.path(), &sc, &format!("{i}c"), sets, Some(43));
        assert_ne!(
            without_seed(&a.report),
            without_seed(&c.report),
            "variant {sets:?}: the seed changed nothing"
        );
        assert_ne!(a.trace, c.trace, "variant {sets:?}");
        assert_ne!(a.timeseries, c.timeseries, "variant {sets:?}");
    }
}

#[test]
fn summary_is_deterministic_too() {
    let dir = tempfile::tempdir().unwrap();
    let sc = write(dir.path(), "random.toml", RANDOM);
    let once = || {
        portsim()
            .arg("run")
            .arg(&sc)
            .assert()
            .success()
            .get_output()
            .stdout
            .clone()
    };
    assert_eq!(once(), once());
}

#[test]
fn library_runs_are_repeatable_in_one_process() {
    // Same scenario twice in one process (no state carried between runs),
    // and the library's report equals the binary's.
    let sc = util::scenario(RANDOM);
    let (a, b) = (portsim::run(&sc), portsim::run(&sc));
    assert_eq!(a.to_json(), b.to_json());
    assert_eq!(a.bins, b.bins);
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "random.toml", RANDOM);
    let out = portsim()
        .arg("run")
        .arg(&path)
        .args(["--json", "--no-fixes"])
        .assert()
        .success();
    assert_eq!(out.get_output().stdout, a.to_json().into_bytes());
    // A different seed in the scenario itself changes the run.
    let mut other = sc.clone();
    other.seed += 1;
    let c = portsim::run(&other);
    assert_ne!(c.bins, a.bins);
}

/// The outputs asked for do not change the run: `--out` (charts included)
/// writes the report `--json` prints, also for a scenario that reaches
/// heavy overload, where the run counts runs of certain failures at once.
#[test]
fn the_report_is_the_same_whatever_else_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let args = ["run", "scenarios/api-no-pooling.toml", "--no-fixes"];
    let printed = portsim()
        .args(args)
        .arg("--json")
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    portsim()
        .args(args)
        .arg("--out")
        .arg(&out)
        .assert()
        .success();
    let written = std::fs::read(out.join("report.json")).unwrap();
    let parse = |b: &[u8]| serde_json::from_slice::<serde_json::Value>(b).unwrap();
    let printed = parse(&printed);
    assert!(printed["failures"].as_u64().unwrap() > 0);
    assert_eq!(parse(&written), printed);
}
