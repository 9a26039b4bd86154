//! The `portsim` binary end to end: subcommands, flags, output files, exit codes.

use std::path::Path;

use serde_json::Value;

use crate::util::{portsim, run_out, text, write};

/// 100 ports, 8 connections/s exactly 125 ms apart, hold 1 s, TIME_WAIT 60 s,
/// 300 s: each port is busy 61 s, so the 100 ports fill with attempts 1..100
/// and attempt 101 (at 101 × 125 ms = 12.625 s) is the first to fail.
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

/// 1 connection/s × (1 s + 60 s) = 61 ports at most, of 16,384.
const LIGHT: &str = r#"
name = "light"
duration = "120s"
[[destinations]]
address = "10.0.0.5:5432"
[traffic]
arrivals = "constant"
rate = 1
hold = "1s"
"#;

/// Random traffic that runs out of ports: Poisson arrivals, random holds,
/// two destinations picked at random, a random allocator. 15/s × 32 s = 480
/// erlangs over two pools of 200 ports: Erlang B(200, 240) ≈ 0.18.
pub const RANDOM: &str = r#"
name = "random"
seed = 42
duration = "120s"
[host]
allocator = "rfc6056-1"
port_range = "50000-50199"
time_wait = "30s"
[[destinations]]
address = "10.0.0.5:5432"
count = 2
[traffic]
rate = 15
hold = { dist = "exponential", mean = "2s" }
"#;

fn json(stdout: &[u8]) -> Value {
    serde_json::from_slice(stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(stdout)))
}

fn run_json(path: &Path, extra: &[&str]) -> Value {
    let out = portsim()
        .arg("run")
        .arg(path)
        .arg("--json")
        .args(extra)
        .assert()
        .success();
    json(&out.get_output().stdout)
}

fn u(v: &Value, key: &str) -> u64 {
    v.pointer(key)
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("{key} is not a count in {v}"))
}

#[test]
fn summary_answers_when_ports_ran_out() {
    let dir = tempfile::tempdir().unwrap();
    let sat = write(dir.path(), "sat.toml", SATURATING);
    let out = portsim().arg("run").arg(&sat).assert().success();
    let s = text(&out.get_output().stdout);
    assert!(
        s.contains("First failure at") && s.contains("attempt 101;"),
        "{s}"
    );
    assert!(!s.contains("No port ran out"), "{s}");
    assert!(
        s.contains("saturating"),
        "the summary names the scenario: {s}"
    );

    let light = write(dir.path(), "light.toml", LIGHT);
    let out = portsim().arg("run").arg(&light).assert().success();
    let s = text(&out.get_output().stdout);
    assert!(s.contains("No port ran out"), "{s}");
    assert!(!s.contains("First failure"), "{s}");
    // At most 1/s × 61 s = 61 ports are held (the port freed at an instant is
    // reused by the attempt at that instant).
    assert!(s.contains("at most 61 ports"), "{s}");
}

#[test]
fn json_report_holds_the_contract_fields() {
    let dir = tempfile::tempdir().unwrap();
    let sat = write(dir.path(), "sat.toml", SATURATING);
    let v = run_json(&sat, &[]);
    assert_eq!(
        u(&v, "/schema_version"),
        u64::from(portsim::report::SCHEMA_VERSION)
    );
    assert_eq!(v["portsim_version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(v["scenario"]["name"], "saturating");
    assert_eq!(u(&v, "/seed"), 5);
    assert_eq!(u(&v, "/first_failure/attempt"), 101);
    assert_eq!(v["first_failure"]["time_s"].as_f64(), Some(12.625));
    assert_eq!(u(&v, "/attempts"), 2400, "8/s for 300 s");
    assert_eq!(
        u(&v, "/attempts"),
        u(&v, "/established") + u(&v, "/failures")
    );
    let ratio = v["failure_ratio"].as_f64().unwrap();
    assert_eq!(ratio, u(&v, "/failures") as f64 / u(&v, "/attempts") as f64);
    assert_eq!(u(&v, "/ports/peak_in_use"), 100);
    assert_eq!(u(&v, "/ports/usable"), 100);
    for key in [
        "/ports/mean_in_use",
        "/ports/mean_time_wait",
        "/analytic/erlang_b_failure_ratio",
        "/analytic/offered_load",
        "/analytic/little_mean_in_use",
        "/simulated_s",
    ] {
        assert!(
            v.pointer(key).and_then(Value::as_f64).is_some(),
            "{key} missing in {v}"
        );
    }
    // 8/s × 61 s = 488 erlangs.
    assert!((v["analytic"]["offered_load"].as_f64().unwrap() - 488.0).abs() < 1e-9);
    // The binary prints exactly what the library reports.
    let sc = portsim::scenario::load_file(&sat, &[]).unwrap();
    let mut lib: Value = serde_json::from_str(&portsim::run(&sc).to_json()).unwrap();
    // The library's plain run computes no fixes; the binary does.
    assert!(!v["fixes"].as_array().unwrap().is_empty(), "{v}");
    assert!(v["fixes_cost"]["runs"].as_u64().unwrap() > 0, "{v}");
    lib["fixes"] = v["fixes"].clone();
    lib["fixes_cost"] = v["fixes_cost"].clone();
    assert_eq!(v, lib);

    let light = write(dir.path(), "light.toml", LIGHT);
    let v = run_json(&light, &[]);
    assert!(v["first_failure"].is_null(), "{v}");
    assert_eq!(u(&v, "/failures"), 0);
    assert_eq!(u(&v, "/ports/peak_in_use"), 61);
}

/// Hidden or temporary files left in a directory by an interrupted write.
fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp") || n.starts_with('.'))
        .collect()
}

const TIMESERIES_HEADER: &str =
    "time_s,bin_s,ports_in_use,ports_in_use_peak,time_wait,open_connections,attempts,failures,established";

/// Parsed timeseries.csv: rows of columns by header name.
fn csv_rows(s: &str) -> Vec<Vec<String>> {
    s.lines()
        .skip(1)
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect()
}

fn column_sum(rows: &[Vec<String>], col: usize) -> u64 {
    rows.iter()
        .map(|r| {
            r[col]
                .parse::<u64>()
                .unwrap_or_else(|_| panic!("not a count: {r:?}"))
        })
        .sum()
}

#[test]
fn out_dir_gets_report_and_timeseries() {
    let dir = tempfile::tempdir().unwrap();
    let sc = write(dir.path(), "random.toml", RANDOM);
    // A directory that does not exist yet, two levels deep.
    let out_dir = dir.path().join("results/run1");
    let out = run_out(&sc, &out_dir, &["--json"]);
    let stdout = out.get_output().stdout.clone();
    let report = std::fs::read(out_dir.join("report.json")).unwrap();
    assert_eq!(report, stdout, "report.json is the JSON report");
    let v = json(&report);

    let csv = std::fs::read_to_string(out_dir.join("timeseries.csv")).unwrap();
    assert_eq!(csv.lines().next(), Some(TIMESERIES_HEADER));
    let rows = csv_rows(&csv);
    assert!(!rows.is_empty());
    let bin_s = v["timeseries"]["bin_s"].as_f64().unwrap();
    for (i, r) in rows.iter().enumerate() {
        assert_eq!(r.len(), 9, "row {i}: {r:?}");
        let t: f64 = r[0].parse().unwrap();
        assert!((t - i as f64 * bin_s).abs() < 1e-6, "row {i} starts at {t}");
        let (mean, peak): (f64, f64) = (r[2].parse().unwrap(), r[3].parse().unwrap());
        assert!(mean <= peak + 1e-3 && peak <= 200.0, "row {i}: {r:?}");
    }
    // Rows cover the run: 120 s in bins of bin_s.
    assert_eq!(rows.len() as f64, (120.0 / bin_s).ceil());
    // Poisson arrivals: no attempt falls exactly on the end of the run, so the
    // rows account for every attempt.
    assert_eq!(column_sum(&rows, 6), u(&v, "/attempts"));
    assert_eq!(column_sum(&rows, 7), u(&v, "/failures"));
    assert_eq!(column_sum(&rows, 8), u(&v, "/established"));

    let mut names: Vec<String> = std::fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    // Several destinations, so the per-destination chart too.
    assert_eq!(
        names,
        [
            "destinations.png",
            "destinations.svg",
            "occupancy.png",
            "occupancy.svg",
            "port-map.png",
            "port-map.svg",
            "report.html",
            "report.json",
            "reuse.png",
            "reuse.svg",
            "timeseries.csv"
        ],
        "the charts, the page and the data; no temporary or probe files left"
    );

    // Writing again into the same directory replaces the files.
    run_out(&sc, &out_dir, &["--seed", "7"]);
    assert_eq!(
        u(
            &json(&std::fs::read(out_dir.join("report.json")).unwrap()),
            "/seed"
        ),
        7
    );
    assert!(leftovers(&out_dir).is_empty(), "{:?}", leftovers(&out_dir));
}

#[test]
fn timeseries_accounts_for_every_attempt() {
    // Constant arrivals: attempt 2400 lands exactly at the end (300 s) and is
    // counted in the report. The time series must count it too.
    let dir = tempfile::tempdir().unwrap();
    let sc = write(dir.path(), "sat.toml", SATURATING);
    let out_dir = dir.path().join("out");
    let out = run_out(&sc, &out_dir, &["--json"]);
    let v = json(&out.get_output().stdout);
    let rows = csv_rows(&std::fs::read_to_string(out_dir.join("timeseries.csv")).unwrap());
    assert_eq!(column_sum(&rows, 6), u(&v, "/attempts"));
    assert_eq!(column_sum(&rows, 7), u(&v, "/failures"));
    assert_eq!(column_sum(&rows, 8), u(&v, "/established"));
}

#[test]
fn trace_has_one_row_per_event() {
    let dir = tempfile::tempdir().unwrap();
    for (name, toml) in [("sat.toml", SATURATING), ("random.toml", RANDOM)] {
        let sc = write(dir.path(), name, toml);
        let trace = dir.path().join(format!("{name}.csv"));
        let v = run_json(&sc, &["--trace", trace.to_str().unwrap()]);
        let t = std::fs::read_to_string(&trace).unwrap();
        let mut lines = t.lines();
        assert_eq!(lines.next(), Some("time_s,event,port,destination"));
        let mut count = std::collections::HashMap::<String, u64>::new();
        let mut last = 0.0f64;
        for l in lines {
            let f: Vec<&str> = l.split(',').collect();
            assert_eq!(f.len(), 4, "{l}");
            let time: f64 = f[0].parse().unwrap();
            assert!(time >= last, "rows out of time order at {l}");
            last = time;
            assert!(f[3] == "10.0.0.5:5432" || f[3] == "10.0.0.6:5432", "{l}");
            match f[1] {
                "fail" => assert_eq!(f[2], "", "a failure has no port: {l}"),
                "connect" | "close" | "time_wait_end" => {
                    let port: u16 = f[2].parse().unwrap();
                    assert!((50000..=50199).contains(&port), "{l}");
                }
                other => panic!("unknown event {other} in {l}"),
            }
            *count.entry(f[1].to_string()).or_default() += 1;
        }
        let n = |e: &str| count.get(e).copied().unwrap_or(0);
        assert_eq!(n("connect"), u(&v, "/established"), "{name}");
        assert_eq!(n("fail"), u(&v, "/failures"), "{name}");
        assert!(
            n("fail") > 0,
            "{name}: the scenario should run out of ports"
        );
        // Every connection closes unless still open at the end; every closed
        // one goes through TIME_WAIT (client close, no cap, no reuse) and
        // leaves it unless still there at the end.
        let closes = u(&v, "/established") - u(&v, "/ports/open_at_end");
        assert_eq!(n("close"), closes, "{name}");
        assert_eq!(
            n("time_wait_end"),
            closes - u(&v, "/ports/time_wait_at_end"),
            "{name}"
        );
        assert!(
            leftovers(dir.path()).is_empty(),
            "{:?}",
            leftovers(dir.path())
        );
    }
}

#[test]
fn set_overrides_scenario_keys() {
    let dir = tempfile::tempdir().unwrap();
    let sc = write(dir.path(), "sat.toml", SATURATING);
    let base = run_json(&sc, &[]);
    assert_eq!(u(&base, "/attempts"), 2400);
    // Twice the rate: twice the attempts (constant arrivals, 300 s).
    let v = run_json(&sc, &["--set", "traffic.rate=16"]);
    assert_eq!(u(&v, "/attempts"), 4800);
    // Twice the ports: the first failure moves to attempt 201.
    let v = run_json(&sc, &["--set", "host.port_range=50000-50199"]);
    assert_eq!(u(&v, "/first_failure/attempt"), 201);
    // Several flags at once, and a string value: reset close frees ports at
    // close, 8/s × 1 s = 8 ports: no failure.
    let v = run_json(
        &sc,
        &["--set", "traffic.close=reset", "--set", "duration=60s"],
    );
    assert_eq!(u(&v, "/failures"), 0);
    assert_eq!(u(&v, "/attempts"), 480);
    assert_eq!(u(&v, "/ports/peak_in_use"), 8);
    // A later flag for the same key wins.
    let v = run_json(
        &sc,
        &["--set", "traffic.rate=16", "--set", "traffic.rate=4"],
    );
    assert_eq!(u(&v, "/attempts"), 1200);
    // Keys inside the destination list are addressed by index.
    let v = run_json(
        &sc,
        &[
            "--set",
            "destinations.0.count=2",
            "--set",
            "traffic.pick=round-robin",
        ],
    );
    assert_eq!(
        u(&v, "/first_failure/attempt"),
        201,
        "two destinations share the 100 ports by 4-tuple"
    );
}

#[test]
fn seed_flag_overrides_the_scenario_seed() {
    let dir = tempfile::tempdir().unwrap();
    let sc = write(dir.path(), "random.toml", RANDOM);
    let a = run_json(&sc, &["--seed", "1"]);
    let b = run_json(&sc, &["--seed", "2"]);
    assert_eq!(u(&a, "/seed"), 1);
    assert_eq!(u(&b, "/seed"), 2);
    // Poisson arrivals: the number of attempts in 120 s at 15/s is Poisson(1800);
    // two seeds giving identical attempts, failures and mean occupancy would
    // mean the seed is ignored.
    let key = |v: &Value| {
        (
            u(v, "/attempts"),
            u(v, "/failures"),
            v["ports"]["mean_in_use"].as_f64().unwrap().to_bits(),
        )
    };
    assert_ne!(key(&a), key(&b));
    // --seed N is the same as writing seed = N in the file.
    let in_file = write(
        dir.path(),
        "seeded.toml",
        &RANDOM.replace("seed = 42", "seed = 2"),
    );
    assert_eq!(run_json(&in_file, &[]), b);
    // And the file's seed is used when there is no flag.
    assert_eq!(u(&run_json(&sc, &[]), "/seed"), 42);
}

#[test]
fn fail_on_exhaustion_sets_the_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let sat = write(dir.path(), "sat.toml", SATURATING);
    let light = write(dir.path(), "light.toml", LIGHT);
    let out = portsim()
        .arg("run")
        .arg(&sat)
        .arg("--fail-on-exhaustion")
        .assert()
        .code(1);
    assert!(
        text(&out.get_output().stdout).contains("First failure at"),
        "the summary is still printed"
    );
    portsim()
        .arg("run")
        .arg(&light)
        .arg("--fail-on-exhaustion")
        .assert()
        .code(0);
    // Without the flag running out of ports is a result, not an error.
    portsim().arg("run").arg(&sat).assert().code(0);
    // With --json too.
    let out = portsim()
        .arg("run")
        .arg(&sat)
        .arg("--json")
        .arg("--fail-on-exhaustion")
        .assert()
        .code(1);
    assert!(u(&json(&out.get_output().stdout), "/failures") > 0);
}

#[test]
fn check_accepts_every_shipped_scenario() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no scenarios in {}", dir.display());
    let out = portsim().arg("check").args(&files).assert().success();
    let s = text(&out.get_output().stdout);
    assert_eq!(s.lines().count(), files.len(), "{s}");
    for f in &files {
        let sc = portsim::scenario::load_file(f, &[]).unwrap();
        let line = format!("{}: ok ({})", f.display(), sc.name);
        assert!(s.lines().any(|l| l == line), "no `{line}` in {s}");
    }
}

#[test]
fn check_stops_at_a_bad_file() {
    let dir = tempfile::tempdir().unwrap();
    let good = write(dir.path(), "good.toml", LIGHT);
    let bad = write(
        dir.path(),
        "bad.toml",
        &LIGHT.replace("rate = 1", "rate = -1"),
    );
    let out = portsim().arg("check").arg(&good).arg(&bad).assert().code(2);
    let err = text(&out.get_output().stderr);
    assert!(
        err.contains("bad.toml") && err.contains("traffic.rate"),
        "{err}"
    );
}

#[test]
fn presets_lists_every_allocator_and_os() {
    let out = portsim().arg("presets").assert().success();
    let s = text(&out.get_output().stdout);
    let names = portsim::alloc::names();
    assert_eq!(names.len(), 9);
    for name in names {
        assert!(
            s.lines().any(|l| l.trim_start().starts_with(name)),
            "allocator {name} missing:\n{s}"
        );
    }
    for os in portsim::os::Os::names() {
        assert!(
            s.lines()
                .any(|l| l.trim_start().starts_with(&format!("{os} "))),
            "OS {os} missing:\n{s}"
        );
    }
}

#[test]
fn help_and_version_exit_zero() {
    let out = portsim().arg("--help").assert().success();
    let s = text(&out.get_output().stdout);
    for cmd in ["run", "check", "presets"] {
        assert!(s.contains(cmd), "{s}");
    }
    let out = portsim().arg("--version").assert().success();
    assert!(text(&out.get_output().stdout).contains(env!("CARGO_PKG_VERSION")));
    let out = portsim().args(["run", "--help"]).assert().success();
    let s = text(&out.get_output().stdout);
    for flag in [
        "--json",
        "--out",
        "--seed",
        "--set",
        "--trace",
        "--fail-on-exhaustion",
        "--max-events",
    ] {
        assert!(s.contains(flag), "{flag} not in run --help");
    }
}

#[test]
fn library_and_binary_agree_on_the_shipped_scenarios() {
    // The summary's headline is rendered from the same report the library returns.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let sc = portsim::scenario::load_file(&p, &[]).unwrap();
        portsim::check_size(&sc, &p.display().to_string(), portsim::DEFAULT_MAX_EVENTS).unwrap();
        let r = portsim::run(&sc);
        let out = portsim().arg("run").arg(&p).assert().success();
        let s = text(&out.get_output().stdout);
        let headline = portsim::report::summary::headline(&r);
        assert!(
            s.contains(&headline),
            "{}: `{headline}` not in\n{s}",
            p.display()
        );
    }
}

#[test]
fn readme_charts_are_what_the_tool_draws() {
    // The README shows two charts as committed PNGs; they must be the bytes
    // `--out` writes for those scenarios today, or the README shows a picture
    // the tool no longer draws.
    let readme = std::fs::read_to_string("README.md").unwrap();
    let sweep_dir = tempfile::tempdir().unwrap();
    portsim()
        .args([
            "sweep",
            "scenarios/sweep-rate.toml",
            "--vary",
            "traffic.rate=12..19:0.5",
            "--seeds",
            "5",
            "--quiet",
            "--out",
        ])
        .arg(sweep_dir.path())
        .assert()
        .success();
    let image = "scenarios/charts/sweep-rate.png";
    assert!(
        readme.contains(&format!("]({image})")),
        "README shows {image}"
    );
    assert!(
        std::fs::read(sweep_dir.path().join("sweep.png")).unwrap() == std::fs::read(image).unwrap(),
        "{image} differs from the sweep chart; redraw it with the command in README's capacity walkthrough"
    );
    for (scenario, chart, image) in [
        (
            "scenarios/ramp.toml",
            "occupancy",
            "scenarios/charts/ramp-occupancy.png",
        ),
        (
            "scenarios/linux-native-range.toml",
            "port-map",
            "scenarios/charts/linux-native-range-port-map.png",
        ),
    ] {
        assert!(
            readme.contains(&format!("]({image})")),
            "README shows {image}"
        );
        let dir = tempfile::tempdir().unwrap();
        portsim()
            .args(["run", scenario, "--charts", "png", "--out"])
            .arg(dir.path())
            .assert()
            .success();
        let drawn = std::fs::read(dir.path().join(format!("{chart}.png"))).unwrap();
        let shown = std::fs::read(image).unwrap();
        assert!(
            drawn == shown,
            "{image} differs from the {chart} chart of {scenario}; redraw it with \
             `portsim run {scenario} --charts png --out DIR` and copy DIR/{chart}.png"
        );
    }
}
