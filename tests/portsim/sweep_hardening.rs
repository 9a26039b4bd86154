//! The limits of `sweep`, `capacity` and `merge`: every size is counted
//! before it is built, every number read from a flag is finite, capacity
//! stays inside a key's domain and says what it found when stopped, and
//! merge checks what it merges.
//!
//! Each test is named after the defect it pins down and fails on the code
//! that had it: a range whose value count overflowed, a grid built before it
//! was counted, `--jobs` without a ceiling, NaN targets and limits, a merge
//! that wrote over its own input or took edited shards, a capacity search
//! that probed 0 or printed nothing on Ctrl-C, and messages that echoed
//! whatever they were given.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use portsim::sweep::capacity::{Kind, Search, Target};
use portsim::sweep::{max_jobs, pool, Plan, Vary, MAX_RUNS, MAX_VALUES};
use serde_json::Value;

use crate::util::{interrupt_after_start, portsim, text, write};

/// 1,000 ports held 61 s each (hold 1 s + TIME_WAIT 60 s), Poisson arrivals
/// at `rate`/s for 10 minutes, with `extra` lines at the top level.
fn small(rate: f64, extra: &str) -> String {
    format!(
        r#"name = "small"
seed = 1
duration = "10m"
{extra}

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

/// Run `portsim args...` in `dir`; expect exit 2, nothing on stdout and one
/// `error:` line on stderr, which is returned.
fn refused(dir: &Path, args: &[&str]) -> String {
    let out = portsim().current_dir(dir).args(args).assert().code(2);
    let o = out.get_output();
    let err = text(&o.stderr);
    assert!(o.stdout.is_empty(), "{args:?}: stdout {}", text(&o.stdout));
    assert!(!err.contains("panicked"), "{args:?}: {err}");
    assert!(err.starts_with("error: "), "{args:?}: {err}");
    assert_eq!(err.lines().count(), 1, "{args:?}: one line expected: {err}");
    err
}

/// `portsim args...`, expected to succeed; stdout.
fn ok(dir: &Path, args: &[&OsStr]) -> String {
    let out = portsim().current_dir(dir).args(args).assert().success();
    text(&out.get_output().stdout)
}

fn read_json(path: &Path) -> Value {
    let t = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: cannot read: {e}", path.display()));
    serde_json::from_str(&t).unwrap_or_else(|e| panic!("{}: not JSON: {e}", path.display()))
}

fn thousands(n: usize) -> String {
    portsim::report::summary::thousands(n as u64)
}

#[test]
fn vary_ranges_with_uncountable_values_are_refused_before_allocation() {
    // 1/1e-300 values: the count overflowed usize, wrapped to an empty
    // sweep (release) or panicked (debug). It must be refused with the
    // count and the limit, in exponent form rather than 300 digits.
    let e = "traffic.rate=1..2:1e-300".parse::<Vary>().unwrap_err();
    assert!(e.contains("--vary"), "{e}");
    assert!(e.contains("1.0e300 values"), "{e}");
    assert!(
        e.contains(&format!("at most {}", thousands(MAX_VALUES))),
        "{e}"
    );
    // TO − FROM overflows to infinity.
    let e = "traffic.rate=-1e308..1e308:1".parse::<Vary>().unwrap_err();
    assert!(e.contains("more than") && e.contains("values"), "{e}");
    // Non-finite numbers, in ranges and lists alike, are refused where read.
    for (spec, found) in [
        ("traffic.rate=1..inf:1", "\"inf\""),
        ("traffic.rate=nan..2:1", "\"nan\""),
        ("traffic.rate=1..2:NaN", "\"NaN\""),
        ("traffic.rate=1..1e400:1", "\"1e400\""),
        ("traffic.rate=1,inf", "\"inf\""),
        ("traffic.rate=1,-nan", "\"-nan\""),
    ] {
        let e = spec.parse::<Vary>().unwrap_err();
        assert!(
            e.contains(found) && e.contains("not a finite number"),
            "{spec}: {e}"
        );
    }
    // A step finer than values are written would repeat points.
    let e = "traffic.rate=0..1e-9:1e-12".parse::<Vary>().unwrap_err();
    assert!(e.contains("finer than values are written"), "{e}");
    let e = "traffic.rate=10,20,10".parse::<Vary>().unwrap_err();
    assert!(e.contains("\"10\" is listed twice"), "{e}");
    // A list is counted too.
    let long = format!(
        "traffic.rate={}",
        (1..=MAX_VALUES + 1)
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(",")
    );
    let e = long.parse::<Vary>().unwrap_err();
    assert!(
        e.contains(&format!("{} values", thousands(MAX_VALUES + 1))),
        "{e}"
    );
    // The largest allowed range still expands, exactly.
    let v: Vary = format!("traffic.rate=1..{MAX_VALUES}:1").parse().unwrap();
    assert_eq!(v.values.len(), MAX_VALUES);

    // End to end: exit 2, naming the flag, the count and the limit.
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), "small.toml", &small(15.0, ""));
    let err = refused(
        tmp.path(),
        &["sweep", "small.toml", "--vary", "traffic.rate=1..2:1e-300"],
    );
    assert!(
        err.contains("--vary \"traffic.rate=1..2:1e-300\"")
            && err.contains("1.0e300 values")
            && err.contains("at most 10,000"),
        "{err}"
    );
}

/// A plan over an empty scenario text: loading any point would fail, so a
/// refusal about the grid's size proves the size was checked first.
fn plan_of(varies: &[&str], seeds: u32) -> Plan {
    Plan {
        scenario: PathBuf::from("x.toml"),
        text: String::new(),
        overrides: vec![],
        varies: varies.iter().map(|v| v.parse().unwrap()).collect(),
        seeds,
        base_seed: 1,
    }
}

#[test]
fn grids_over_the_run_limit_are_refused_before_they_are_built() {
    // 10,000 × 10,000 points × 10 seeds: 1e9 runs.
    let plan = plan_of(&["a=1..10000:1", "b=1..10000:1"], 10);
    let err = match plan.points(None) {
        Ok(_) => panic!("a grid of 1e9 runs was built"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains("10,000 (a) × 10,000 (b) points × 10 seeds = 1,000,000,000 runs")
            && err.contains(&format!("at most {} runs", thousands(MAX_RUNS))),
        "{err}"
    );
    // Five keys of 10,000 values overflow usize: counted, not wrapped.
    let huge = plan_of(&["a=1..10000:1"; 5], 10_000);
    assert_eq!(huge.len(), usize::MAX, "len saturates");
    let err = huge.check_grid().unwrap_err().to_string();
    assert!(
        err.contains("more than 18,446,744,073,709,551,615 runs"),
        "{err}"
    );
    // Exactly at the limit is allowed, one run over is not.
    assert_eq!(
        plan_of(&["a=1..1000:1", "b=1..1000:1"], 1)
            .check_grid()
            .unwrap(),
        MAX_RUNS
    );
    assert!(plan_of(&["a=1..1000:1", "b=1..1000:1"], 2)
        .check_grid()
        .is_err());

    // End to end, before any point is loaded (so no time, no memory).
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), "small.toml", &small(15.0, ""));
    let err = refused(
        tmp.path(),
        &[
            "sweep",
            "small.toml",
            "--vary",
            "traffic.rate=1..10000:1",
            "--vary",
            "host.time_wait=1s..10000s:1s",
            "--out",
            "out",
        ],
    );
    assert!(err.contains("1,000,000,000 runs"), "{err}");
    assert!(!tmp.path().join("out").exists(), "nothing is written");
    // --help states both limits.
    let help = ok(tmp.path(), &[OsStr::new("sweep"), OsStr::new("--help")]);
    let help = help.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        help.contains(&format!("At most {} values", thousands(MAX_VALUES)))
            && help.contains(&format!("at most {} runs", thousands(MAX_RUNS))),
        "{help}"
    );
}

#[test]
fn jobs_beyond_four_per_core_are_refused() {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert_eq!(max_jobs(), 4 * cores);
    assert!(pool(max_jobs()).is_ok());
    let err = pool(max_jobs() + 1).expect_err("one thread too many");
    assert!(
        err.to_string().contains(&format!(
            "at most {} threads (4 × the {cores} cores",
            max_jobs()
        )),
        "{err}"
    );
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), "small.toml", &small(15.0, ""));
    for cmd in [
        &[
            "sweep",
            "small.toml",
            "--vary",
            "traffic.rate=10",
            "--jobs",
            "100000",
        ][..],
        &[
            "capacity",
            "small.toml",
            "--vary",
            "traffic.rate",
            "--jobs",
            "100000",
        ][..],
    ] {
        let err = refused(tmp.path(), cmd);
        assert!(err.contains("--jobs 100000: at most"), "{cmd:?}: {err}");
    }
    let help = ok(tmp.path(), &[OsStr::new("sweep"), OsStr::new("--help")]);
    let help = help.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(help.contains("at most 4 × the cores"), "{help}");
}

#[test]
fn targets_and_limits_must_be_finite() {
    for bound in ["nan", "NaN", "inf", "-inf", "+inf", "1e400"] {
        let t = format!("failure_ratio<={bound}");
        let e = t.parse::<Target>().unwrap_err();
        assert!(
            e.contains("a finite number is expected") && e.contains(&format!("\"{bound}\"")),
            "{t}: {e}"
        );
    }
    for t in [
        "failure_ratio<=1.5",
        "failure_ratio>=-0.1",
        "peak_in_use>-1",
    ] {
        let e = t.parse::<Target>().unwrap_err();
        assert!(e.contains("out of range"), "{t}: {e}");
    }
    // A bound prints briefly, not as 300 digits.
    let t: Target = "failure_ratio<=1e-300".parse().unwrap();
    assert_eq!(t.to_string(), "failure_ratio <= 1e-300");
    let t: Target = "failure_ratio<=1e-4".parse().unwrap();
    assert_eq!(t.to_string(), "failure_ratio <= 0.0001");

    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), "small.toml", &small(15.0, ""));
    let cap = |extra: &[&'static str]| -> Vec<&'static str> {
        [
            &["capacity", "small.toml", "--vary", "traffic.rate"][..],
            extra,
        ]
        .concat()
    };
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            cap(&["--target", "failure_ratio<=nan"]),
            "a finite number is expected",
        ),
        (
            cap(&["--target", "failure_ratio<=inf"]),
            "a finite number is expected",
        ),
        (
            vec!["capacity", "small.toml", "--vary", "traffic.rate=1..inf"],
            "\"inf\" is not a finite number",
        ),
        (
            vec!["capacity", "small.toml", "--vary", "traffic.rate=nan..2"],
            "\"nan\" is not a finite number",
        ),
        (
            cap(&["--max-events", "nan"]),
            "--max-events \"nan\": expected a positive finite number",
        ),
        (cap(&["--max-events", "inf"]), "--max-events \"inf\""),
        (cap(&["--max-events", "0"]), "--max-events \"0\""),
        (
            vec![
                "sweep",
                "small.toml",
                "--vary",
                "traffic.rate=10",
                "--max-events",
                "NaN",
            ],
            "--max-events \"NaN\"",
        ),
        (
            vec![
                "sweep",
                "small.toml",
                "--vary",
                "traffic.rate=10",
                "--max-events=-1",
            ],
            "--max-events \"-1\"",
        ),
    ];
    for (args, expect) in cases {
        let err = refused(tmp.path(), &args);
        assert!(
            err.contains(expect),
            "{args:?}: expected `{expect}` in {err}"
        );
    }
    // The same target in a scenario's [sweep] table.
    let f = write(
        tmp.path(),
        "table.toml",
        &format!(
            "{}\n[sweep]\ntarget = \"failure_ratio<=nan\"\n",
            small(15.0, "")
        ),
    );
    let err = refused(tmp.path(), &["check", f.to_str().unwrap()]);
    assert!(
        err.contains("sweep.target") && err.contains("finite"),
        "{err}"
    );
}

#[test]
fn sweep_size_guard_refuses_a_nan_estimate_or_limit() {
    let tmp = tempfile::tempdir().unwrap();
    let file = write(tmp.path(), "small.toml", &small(15.0, ""));
    let plan = Plan {
        scenario: file.clone(),
        text: std::fs::read_to_string(&file).unwrap(),
        overrides: vec![],
        varies: vec!["traffic.rate=10,20".parse().unwrap()],
        seeds: 2,
        base_seed: 1,
    };
    let points = plan.points(None).unwrap();
    // 10/s and 20/s for 600 s, 2 seeds: 36,000 attempts.
    assert!(plan.check_size(&points, 36_001.0, 2).is_ok());
    assert!(plan.check_size(&points, 35_999.0, 2).is_err());
    let err = plan
        .check_size(&points, f64::NAN, 2)
        .unwrap_err()
        .to_string();
    assert!(err.contains("3.60e4 events of work"), "{err}");
}

/// A sweep of 3 rates × 2 seeds in two shards, `s1` and `s2`, and the
/// unsharded one in `whole`, under `dir`.
fn shards(dir: &Path) {
    write(dir, "small.toml", &small(15.0, ""));
    let grid = ["--vary", "traffic.rate=10,20,30", "--seeds", "2", "--quiet"];
    for (out, shard) in [("s1", Some("1/2")), ("s2", Some("2/2")), ("whole", None)] {
        let head = ["sweep", "small.toml", "--out", out];
        let mut args: Vec<&OsStr> = head.iter().chain(&grid).map(OsStr::new).collect();
        if let Some(s) = shard {
            args.extend([OsStr::new("--shard"), OsStr::new(s)]);
        }
        ok(dir, &args);
    }
}

#[test]
fn merge_refuses_an_out_that_is_one_of_its_inputs() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    shards(dir);
    let before = std::fs::read(dir.join("s1/sweep.json")).unwrap();
    let err = refused(dir, &["merge", "s1", "s2", "--out", "s1"]);
    assert!(
        err.contains("--out \"s1\": is the input directory \"s1\""),
        "{err}"
    );
    // The same directory by another path, and through a symlink.
    let err = refused(dir, &["merge", "s1", "s2", "--out", "./s2/../s1"]);
    assert!(
        err.contains("\"./s2/../s1\"") && err.contains("\"s1\""),
        "{err}"
    );
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink(dir.join("s2"), dir.join("link")).unwrap();
        let err = refused(dir, &["merge", "s1", "s2", "--out", "link"]);
        assert!(
            err.contains("--out \"link\": is the input directory \"s2\""),
            "{err}"
        );
    }
    assert_eq!(
        std::fs::read(dir.join("s1/sweep.json")).unwrap(),
        before,
        "the shard is untouched"
    );
    // Elsewhere, the merge is the unsharded sweep.
    ok(
        dir,
        &["merge", "s1", "s2", "--out", "merged"].map(OsStr::new),
    );
    assert_eq!(
        std::fs::read(dir.join("merged/sweep.json")).unwrap(),
        std::fs::read(dir.join("whole/sweep.json")).unwrap()
    );
}

/// Copy shard `from` to `to` under `dir`, with `edit` applied to its JSON.
fn edited(dir: &Path, from: &str, to: &str, edit: impl FnOnce(&mut Value)) {
    std::fs::create_dir_all(dir.join(to)).unwrap();
    let mut v = read_json(&dir.join(from).join("sweep.json"));
    edit(&mut v);
    std::fs::write(
        dir.join(to).join("sweep.json"),
        serde_json::to_string_pretty(&v).unwrap(),
    )
    .unwrap();
}

#[test]
fn merge_checks_every_figure_and_field_it_can() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    shards(dir);
    // s1 holds points 0 and 2 (rates 10 and 30), s2 point 1 (rate 20).
    let s1 = read_json(&dir.join("s1/sweep.json"));
    assert!(s1["points"][1]["runs"][0]["failures"].as_u64().unwrap() > 0);
    assert_eq!(s1["points"][0]["runs"][0]["failures"], 0);

    // (edited copy of s1, edit, text the message must hold)
    type Edit = Box<dyn FnOnce(&mut Value)>;
    let cases: Vec<(&str, Edit, Vec<&str>)> = vec![
        (
            "failures",
            Box::new(|v| {
                let r = &mut v["points"][1]["runs"][0]["failures"];
                *r = Value::from(r.as_u64().unwrap() + 7);
            }),
            vec![
                "\"failures/sweep.json\"",
                "points[1].figures.failure_ratio",
                "its runs give",
            ],
        ),
        (
            "attempts",
            Box::new(|v| {
                let r = &mut v["points"][1]["runs"][1]["attempts"];
                *r = Value::from(r.as_u64().unwrap() - 1);
            }),
            vec!["points[1].figures.failure_ratio"],
        ),
        (
            "peak",
            Box::new(|v| v["points"][0]["figures"]["peak_in_use"]["mean"] = Value::from(1.5)),
            vec!["points[0].figures.peak_in_use.mean: the file says 1.5, but its runs give"],
        ),
        (
            "seeds_with_failure",
            Box::new(|v| v["points"][1]["figures"]["seeds_with_failure"] = Value::from(1)),
            vec!["points[1].figures.seeds_with_failure: the file says 1, but its runs give 2"],
        ),
        (
            "no_figures",
            Box::new(|v| {
                v["points"][0].as_object_mut().unwrap().remove("figures");
            }),
            vec!["points[0].figures: absent"],
        ),
        (
            "first_failure",
            Box::new(|v| v["points"][0]["runs"][0]["failures"] = Value::from(3)),
            vec!["points[0].runs[0].first_failure_ns: found null, but failures is 3"],
        ),
        (
            "more_failures",
            Box::new(|v| v["points"][1]["runs"][0]["failures"] = Value::from(u64::MAX)),
            vec!["points[1].runs[0].failures", "more than its attempts"],
        ),
        (
            "seed",
            Box::new(|v| v["points"][1]["runs"][1]["seed"] = Value::from(9)),
            vec!["points[1].runs[1].seed: found 9, but base_seed 1 gives 2"],
        ),
        (
            "runs",
            Box::new(|v| {
                v["points"][1]["runs"].as_array_mut().unwrap().pop();
            }),
            vec!["points[1].runs: found 1 runs, but seeds is 2"],
        ),
        (
            "index",
            Box::new(|v| v["points"][1]["index"] = Value::from(1)),
            vec!["points[1].index: found 1, which is not one of shard 1/2's points"],
        ),
        (
            "erlang",
            Box::new(|v| v["points"][0]["erlang_b_failure_ratio"] = Value::from(2.0)),
            vec!["points[0].erlang_b_failure_ratio: found 2"],
        ),
        (
            "seeds_meta",
            Box::new(|v| v["seeds"] = Value::from(3)),
            vec![
                "\"s2/sweep.json\"",
                "seeds is 2, but 3 in \"seeds_meta/sweep.json\"",
            ],
        ),
        (
            "total_meta",
            Box::new(|v| v["points_total"] = Value::from(4)),
            vec!["points_total is 3, but 4 in"],
        ),
        (
            "dropped",
            Box::new(|v| {
                v["points"].as_array_mut().unwrap().pop();
            }),
            vec!["points: found 1 points, but shard 1/2 of points_total 3 owns 2"],
        ),
        (
            "values",
            Box::new(|v| v["points"][0]["values"] = serde_json::json!(["20"])),
            vec![
                "not one grid",
                "2 distinct values per key make 2 points, but there are 3",
            ],
        ),
        (
            "huge_n",
            Box::new(|v| v["shard"] = serde_json::json!({"k": 1, "n": 4_000_000_000u32})),
            vec!["shard is 2/2, but \"huge_n/sweep.json\" is one of 4000000000"],
        ),
    ];
    for (name, edit, expect) in cases {
        edited(dir, "s1", name, edit);
        let err = refused(dir, &["merge", name, "s2", "--out", "out"]);
        for e in expect {
            assert!(err.contains(e), "{name}: expected `{e}` in {err}");
        }
        assert!(!dir.join("out").exists(), "{name}: a refused merge wrote");
    }
    // points_total changed alike in every shard: the shards' point counts
    // no longer add up to it.
    edited(dir, "s1", "t1", |v| v["points_total"] = Value::from(5));
    edited(dir, "s2", "t2", |v| v["points_total"] = Value::from(5));
    let err = refused(dir, &["merge", "t1", "t2", "--out", "out"]);
    assert!(
        err.contains(
            "\"t1/sweep.json\": points: found 2 points, but shard 1/2 of points_total 5 owns 3"
        ),
        "{err}"
    );
    // A point given twice.
    edited(dir, "s2", "dup", |v| {
        let p = v["points"][0].clone();
        v["points"].as_array_mut().unwrap().push(p);
    });
    let err = refused(dir, &["merge", "s1", "dup", "--out", "out"]);
    assert!(
        err.contains("found 2 points, but shard 2/2 of points_total 3 owns 1"),
        "{err}"
    );
    // A shard number a file claims is never used to size anything.
    edited(dir, "s1", "many", |v| {
        v["shard"] = serde_json::json!({"k": 1, "n": 4_000_000_000u32})
    });
    let err = refused(dir, &["merge", "many", "--out", "out"]);
    assert!(
        err.contains("missing shards 2/4000000000, 3/4000000000")
            && err.contains("and 3999999989 more"),
        "{err}"
    );
    // Untouched shards still merge.
    ok(dir, &["merge", "s1", "s2", "--out", "out"].map(OsStr::new));

    // Two keys: a point whose values repeat another's is not where the
    // grid puts it. Shard 2/2 holds points 1 (10, 60s) and 3 (20, 60s).
    for (out, shard) in [("g1", "1/2"), ("g2", "2/2")] {
        ok(
            dir,
            &[
                "sweep",
                "small.toml",
                "--vary",
                "traffic.rate=10,20",
                "--vary",
                "host.time_wait=30s,60s",
                "--seeds",
                "1",
                "--quiet",
                "--shard",
                shard,
                "--out",
                out,
            ]
            .map(OsStr::new),
        );
    }
    edited(dir, "g2", "g2dup", |v| {
        assert_eq!(v["points"][1]["index"], 3);
        v["points"][1]["values"] = serde_json::json!(["20", "30s"]);
    });
    let err = refused(dir, &["merge", "g1", "g2dup", "--out", "gout"]);
    assert!(
        err.contains("\"g2dup/sweep.json\": point 3 has host.time_wait = \"30s\", but the grid of all the shards' points puts \"60s\" there"),
        "{err}"
    );
    ok(dir, &["merge", "g1", "g2", "--out", "gout"].map(OsStr::new));
}

/// The small scenario at 30/s, stopped after `max_connections` connections.
/// The 1,000 ports are all taken by the 1,001st connection (at about 33 s)
/// and none comes free before hold + TIME_WAIT = 61 s, so a run of M
/// connections, 1,000 < M < about 1,800, has exactly M − 1,000 failures.
fn capped(max_connections: u64) -> String {
    small(30.0, &format!("max_connections = {max_connections}"))
}

#[test]
fn capacity_never_probes_outside_the_keys_domain() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write(dir, "capped.toml", &capped(2000));
    let out = ok(
        dir,
        &[
            "capacity",
            "capped.toml",
            "--vary",
            "max_connections",
            "--seeds",
            "2",
            "--json",
            "--quiet",
        ]
        .map(OsStr::new),
    );
    let v: Value = serde_json::from_str(&out).unwrap();
    // (M − 1000) / M <= 1e-4 holds up to M = 1000 exactly.
    assert_eq!(v["value"], 1000.0, "{out}");
    assert_eq!(v["direction"], "largest");
    for p in v["probes"].as_array().unwrap() {
        let m: u64 = p["value"].as_str().unwrap().parse().unwrap();
        assert!(m >= 1, "probed max_connections = {m}");
    }

    // A target every value meets: the search walks down to 1, the smallest
    // value allowed, instead of probing 0 and failing with the loader's
    // message about 0.
    write(dir, "one.toml", &capped(1));
    let err = refused(
        dir,
        &[
            "capacity",
            "one.toml",
            "--vary",
            "max_connections",
            "--target",
            "peak_in_use>=1",
            "--seeds",
            "1",
            "--max-events",
            "1e5",
        ],
    );
    assert!(
        err.contains("holds at every value of max_connections tried, from 1 to")
            && err.contains("the smallest value the scenario allows"),
        "{err}"
    );
    assert!(!err.contains("found 0"), "{err}");

    // An upper edge: host.addresses takes 1 to 4096. 10 ports per address,
    // 50,000 connections in 10 s all held: peak_in_use is 10 × addresses.
    // Reaching 40,960 ports in use takes the largest value, 4096, which the
    // doubling from 3 (… 3072, 6144) would step over.
    let addresses = r#"name = "addresses"
seed = 1
duration = "10s"

[host]
os = "generic"
allocator = "rfc6056-1"
port_range = "60000-60009"
time_wait = "60s"
addresses = 3

[[destinations]]
address = "10.0.0.5:5432"

[traffic]
arrivals = "poisson"
rate = 5000
hold = "1s"
close = "client"
bind = "bind-no-port"
"#;
    write(dir, "addresses.toml", addresses);
    let cap = |target: &str| {
        portsim()
            .current_dir(dir)
            .args([
                "capacity",
                "addresses.toml",
                "--vary",
                "host.addresses",
                "--seeds",
                "1",
                "--json",
                "--quiet",
                "--target",
                target,
            ])
            .output()
            .unwrap()
    };
    let o = cap("peak_in_use>=40960");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["value"], 4096.0);
    assert_eq!(v["direction"], "smallest");
    for p in v["probes"].as_array().unwrap() {
        let n: u64 = p["value"].as_str().unwrap().parse().unwrap();
        assert!((1..=4096).contains(&n), "probed host.addresses = {n}");
    }
    let o = cap("peak_in_use>=50000");
    assert_eq!(o.status.code(), Some(2));
    let err = text(&o.stderr);
    assert!(
        err.contains("fails at every value of host.addresses tried, from 1 to 4096")
            && err.contains("both the smallest and the largest values the scenario allows"),
        "{err}"
    );
}

/// A progress sink that sets the stop flag when the first seed finishes,
/// as Ctrl-C would.
struct StopAfterFirst<'a>(&'a AtomicBool);

impl portsim::sweep::Progress for StopAfterFirst<'_> {
    fn tick(&self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

#[test]
fn capacity_stopped_reports_the_bracket_it_has() {
    let tmp = tempfile::tempdir().unwrap();
    let file = write(tmp.path(), "small.toml", &small(15.0, ""));
    let plan = Plan {
        scenario: file.clone(),
        text: std::fs::read_to_string(&file).unwrap(),
        overrides: vec![],
        varies: vec![],
        seeds: 4,
        base_seed: 1,
    };
    let search = Search {
        plan: &plan,
        key: "traffic.rate",
        kind: Kind::Real,
        target: "failure_ratio<=1e-2".parse().unwrap(),
        lo: 7.5,
        hi: 30.0,
        max_attempts: 1e8,
    };
    // Stopped before anything ran: no direction, no bracket, nothing tried.
    let stop = AtomicBool::new(true);
    let cap = search.run(&stop, &()).unwrap();
    assert!(!cap.complete && cap.value.is_none() && cap.probes.is_empty());
    assert_eq!(cap.direction, None);
    let b = cap
        .bracket
        .clone()
        .expect("an interrupted answer has a bracket");
    assert_eq!((b.meets, b.misses, b.seeds_searched), (None, None, 0));
    assert!(
        cap.sentence()
            .starts_with("Interrupted: 0 of 4 seeds finished; no bracket yet"),
        "{}",
        cap.sentence()
    );

    // Stopped when the first seed finishes (one thread, so seeds run in
    // order): its boundary is the answer so far, and the bracket is the
    // value it met and the one it missed.
    let stop = AtomicBool::new(false);
    let threads = pool(1).unwrap();
    let cap = threads
        .install(|| search.run(&stop, &StopAfterFirst(&stop)))
        .unwrap();
    assert!(!cap.complete);
    assert_eq!(cap.seeds, 1);
    assert_eq!(cap.direction, Some("largest"));
    let b = cap.bracket.clone().unwrap();
    assert_eq!(b.seeds_searched, 1);
    let (meets, misses) = (b.meets.unwrap(), b.misses.unwrap());
    let value = cap.value.unwrap();
    // Written with 9 decimals.
    assert!(
        (meets.parse::<f64>().unwrap() - value).abs() < 1e-8,
        "{meets} vs {value}"
    );
    assert!(misses.parse::<f64>().unwrap() > value);
    // Both ends are probes of that seed, on their sides of the target.
    assert!(cap.probes.iter().any(|p| p.value == meets && p.meets));
    assert!(cap.probes.iter().any(|p| p.value == misses && !p.meets));
    let s = cap.sentence();
    assert!(
        s.contains("Interrupted: 1 of 4 seeds finished")
            && s.contains(&format!(
                "traffic.rate = {meets} conn/s meets failure_ratio <= 0.01"
            ))
            && s.contains(&format!("{misses} conn/s misses it")),
        "{s}"
    );
    let json: Value = serde_json::from_str(&cap.to_json()).unwrap();
    assert_eq!(json["complete"], false);
    assert_eq!(json["bracket"]["meets"], meets.as_str());
}

#[cfg(unix)]
#[test]
fn capacity_prints_what_it_found_on_ctrl_c() {
    use std::time::Duration;

    // 4 seeds of a 3-hour scenario with 21,000 ports on one thread: each
    // probe runs up to a few million connections, so the search is still
    // going when SIGINT comes after 1.5 s.
    let tmp = tempfile::tempdir().unwrap();
    let slow = small(100.0, "")
        .replace("duration = \"10m\"", "duration = \"3h\"")
        .replace("60000-60999", "40000-60999");
    let file = write(tmp.path(), "slow.toml", &slow);
    let out = tmp.path().join("out");
    let r = interrupt_after_start(
        tmp.path(),
        [
            OsStr::new("capacity"),
            file.as_os_str(),
            OsStr::new("--vary"),
            OsStr::new("traffic.rate"),
            OsStr::new("--seeds"),
            OsStr::new("4"),
            OsStr::new("--jobs"),
            OsStr::new("1"),
            OsStr::new("--out"),
            out.as_os_str(),
        ],
        Duration::from_secs(120),
    );
    let (status, err, stdout) = (r.status, r.stderr, r.stdout);
    assert_eq!(status.code(), Some(130), "{status:?}; stderr: {err}");
    assert!(
        err.starts_with("interrupted: ") && err.contains(" of 4 seeds finished"),
        "{err}"
    );
    assert!(!err.contains("panicked") && !err.contains("error"), "{err}");
    assert!(stdout.contains("Interrupted: "), "{stdout}");
    let cap = read_json(&out.join("capacity.json"));
    assert_eq!(cap["complete"], false, "{cap}");
    let b = &cap["bracket"];
    assert!(b.is_object(), "{cap}");
    // Whatever was established is consistent with the probes written.
    let probes = cap["probes"].as_array().unwrap();
    for (end, meets) in [("meets", true), ("misses", false)] {
        if let Some(v) = b[end].as_str() {
            assert!(
                probes
                    .iter()
                    .any(|p| p["value"] == v && p["meets"] == meets),
                "{end} = {v} is not a probe that {end}: {cap}"
            );
            assert!(stdout.contains(v), "{stdout}");
        }
    }
    if let (Some(m), Some(x)) = (b["meets"].as_str(), b["misses"].as_str()) {
        // Rates: the low end meets the target.
        assert!(
            m.parse::<f64>().unwrap() < x.parse::<f64>().unwrap(),
            "{cap}"
        );
    }
    let csv = std::fs::read_to_string(out.join("capacity.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + probes.len(), "{csv}");
}

#[test]
fn found_values_in_messages_are_escaped_and_cut() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write(dir, "small.toml", &small(15.0, ""));
    let junk = format!("\u{1b}[31m\n{}", "x".repeat(100_000));
    let vary = format!("traffic.rate={junk}..2:1");
    let target = format!("failure_ratio<={junk}");
    let cap_vary = format!("traffic.rate=1..{junk}");
    let key = format!("traffic.{junk}");
    let shard = format!("1/{junk}");
    let cases: Vec<Vec<&str>> = vec![
        vec!["sweep", "small.toml", "--vary", &vary],
        vec![
            "sweep",
            "small.toml",
            "--vary",
            "traffic.rate=1",
            "--shard",
            &shard,
            "--out",
            "o",
        ],
        vec![
            "sweep",
            "small.toml",
            "--vary",
            "traffic.rate=1",
            "--max-events",
            &junk,
        ],
        vec![
            "capacity",
            "small.toml",
            "--vary",
            "traffic.rate",
            "--target",
            &target,
        ],
        vec!["capacity", "small.toml", "--vary", &cap_vary],
        vec!["capacity", "small.toml", "--vary", &key],
        vec!["merge", &junk, "--out", "o"],
    ];
    for args in cases {
        let err = refused(dir, &args);
        assert!(!err.contains('\u{1b}'), "{:?}: a raw escape", &args[..2]);
        assert!(
            err.len() < 600,
            "{:?}: {} bytes: {err}",
            &args[..2],
            err.len()
        );
        assert!(err.contains("\\u{1b}[31m\\nxxx"), "{:?}: {err}", &args[..2]);
        assert!(err.contains("xxx…\" ("), "{:?}: {err}", &args[..2]);
    }
}
