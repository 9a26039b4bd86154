//! `portsim schema`: the JSON Schemas of report.json, sweep.json and
//! capacity.json, checked against what the commands really write (every
//! shipped scenario, a sweep, a sharded sweep and its merge, a capacity
//! search), against the contract fields, and against documents broken on
//! purpose, which must fail.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::util::{portsim, text};

fn scenarios() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios")
}

fn parse(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(bytes)))
}

/// The schema `portsim schema DOC` prints.
fn schema(doc: &str) -> Value {
    let out = portsim().args(["schema", doc]).assert().success();
    parse(&out.get_output().stdout)
}

fn validator(doc: &str) -> jsonschema::Validator {
    let s = schema(doc);
    jsonschema::meta::validate(&s).unwrap_or_else(|e| panic!("{doc}: not a valid schema: {e}"));
    jsonschema::draft202012::new(&s).unwrap_or_else(|e| panic!("{doc}: {e}"))
}

/// Every way `instance` breaks `v`, one per line (empty when it is valid).
fn errors(v: &jsonschema::Validator, instance: &Value) -> String {
    v.iter_errors(instance)
        .map(|e| format!("{} at {}\n", e, e.instance_path()))
        .collect()
}

/// How `v` rejects `doc` after `edit`, one error per line.
fn errors_after(v: &jsonschema::Validator, doc: &Value, edit: &dyn Fn(&mut Value)) -> String {
    let mut d = doc.clone();
    edit(&mut d);
    errors(v, &d)
}

fn assert_valid(v: &jsonschema::Validator, instance: &Value, what: &str) {
    let e = errors(v, instance);
    assert!(e.is_empty(), "{what} does not match its schema:\n{e}");
}

/// The stdout of a successful `portsim ARGS`, as JSON.
fn output(args: &[&str]) -> Value {
    let out = portsim().args(args).assert().success();
    parse(&out.get_output().stdout)
}

fn read(path: &Path) -> Value {
    parse(&std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
}

/// The `required` list of the object schema at `pointer` (a JSON pointer
/// into the schema, e.g. `/$defs/Bursts`).
fn required(schema: &Value, pointer: &str) -> Vec<String> {
    schema
        .pointer(&format!("{pointer}/required"))
        .and_then(Value::as_array)
        .unwrap_or_else(|| panic!("no required list at {pointer}"))
        .iter()
        .map(|v| v.as_str().expect("a field name").to_string())
        .collect()
}

fn assert_requires(schema: &Value, pointer: &str, fields: &[&str]) {
    let req = required(schema, pointer);
    for f in fields {
        assert!(
            req.iter().any(|r| r == f),
            "{pointer}: {f} not required: {req:?}"
        );
    }
}

#[test]
fn every_schema_is_draft_2020_12_and_requires_the_contract_fields() {
    let report = schema("report");
    assert_eq!(
        report["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
    assert_requires(
        &report,
        "",
        &[
            "schema_version",
            "portsim_version",
            "scenario",
            "seed",
            "attempts",
            "established",
            "failures",
            "failure_ratio",
            "first_failure",
            "bursts",
            "ports",
            "reuse_interval_s",
            "analytic",
            "timeseries",
            "destinations",
        ],
    );
    assert_requires(
        &report,
        "/$defs/Bursts",
        &[
            "worst_1s",
            "worst_10s",
            "worst_60s",
            "seconds_with_failures",
            "longest_blocked_s",
        ],
    );
    assert_requires(
        &report,
        "/$defs/Ports",
        &["usable", "peak_in_use", "mean_in_use"],
    );
    assert_requires(
        &report,
        "/$defs/Analytic",
        &["offered_load", "erlang_b_failure_ratio", "erlang_b_applies"],
    );
    // Written only when the rate changes over time, so not required; and
    // what the report keeps for charts is not in the file at all.
    let top = required(&report, "");
    assert!(!top.iter().any(|f| f == "highest_rate_before_failure"));
    assert!(report["properties"]["highest_rate_before_failure"].is_object());
    for internal in ["bins", "simulated_ns", "bin_ns", "steady_state"] {
        assert!(report["properties"].get(internal).is_none(), "{internal}");
    }

    let sweep = schema("sweep");
    assert_requires(
        &sweep,
        "",
        &[
            "schema_version",
            "sweep_id",
            "keys",
            "points_total",
            "seeds",
            "complete",
            "shard",
            "points",
        ],
    );
    assert_requires(
        &sweep,
        "/$defs/Row",
        &["index", "values", "runs", "pool", "figures"],
    );

    let capacity = schema("capacity");
    assert_requires(
        &capacity,
        "",
        &[
            "schema_version",
            "key",
            "target",
            "direction",
            "value",
            "interval",
            "seeds",
            "complete",
            "probes",
        ],
    );
    // Only an interrupted search writes its bracket.
    assert!(!required(&capacity, "").iter().any(|f| f == "bracket"));
}

#[test]
fn every_shipped_scenario_report_matches_the_schema() {
    let v = validator("report");
    let mut files: Vec<PathBuf> = std::fs::read_dir(scenarios())
        .expect("the scenarios directory")
        .map(|e| e.expect("an entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    assert!(files.len() >= 10, "{files:?}");
    for f in &files {
        let out = portsim().arg("run").arg(f).arg("--json").assert().success();
        let report = parse(&out.get_output().stdout);
        assert_valid(&v, &report, &f.display().to_string());
    }
    // The file --out writes is the same document.
    let tmp = tempfile::tempdir().unwrap();
    portsim()
        .arg("run")
        .arg(scenarios().join("ramp.toml"))
        .arg("--out")
        .arg(tmp.path())
        .args(["--files", "report.json"])
        .assert()
        .success();
    assert_valid(
        &v,
        &read(&tmp.path().join("report.json")),
        "ramp report.json",
    );
}

#[test]
fn sweeps_shards_and_merges_match_the_schema() {
    let v = validator("sweep");
    let sc = scenarios().join("sweep-rate.toml");
    let sc = sc.to_str().unwrap();
    let vary = "traffic.rate=10..22:4";
    let whole = output(&["sweep", sc, "--vary", vary, "--seeds", "2", "--json"]);
    assert_valid(&v, &whole, "sweep --json");
    assert_eq!(whole["points"].as_array().unwrap().len(), 4);
    assert!(whole["shard"].is_null());

    let tmp = tempfile::tempdir().unwrap();
    let mut dirs = Vec::new();
    for k in ["1/2", "2/2"] {
        let dir = tmp.path().join(format!("shard-{}", &k[..1]));
        let d = dir.to_str().unwrap();
        portsim()
            .args([
                "sweep", sc, "--vary", vary, "--seeds", "2", "--shard", k, "--out", d,
            ])
            .assert()
            .success();
        let shard = read(&dir.join("sweep.json"));
        assert_valid(&v, &shard, &format!("shard {k}"));
        assert!(shard["shard"].is_object(), "shard {k}: {}", shard["shard"]);
        dirs.push(d.to_string());
    }
    let merged = tmp.path().join("merged");
    let m = merged.to_str().unwrap();
    let out = output(&["merge", &dirs[0], &dirs[1], "--out", m, "--json"]);
    assert_valid(&v, &out, "merge --json");
    assert_valid(&v, &read(&merged.join("sweep.json")), "merged sweep.json");
}

#[test]
fn capacity_answers_match_the_schema() {
    let v = validator("capacity");
    let sc = scenarios().join("sweep-rate.toml");
    let sc = sc.to_str().unwrap();
    let rate = output(&["capacity", sc, "--seeds", "2", "--json"]);
    assert_valid(&v, &rate, "capacity --json");
    assert!(rate["value"].is_number(), "{rate}");

    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().to_str().unwrap();
    portsim()
        .args([
            "capacity",
            sc,
            "--vary",
            "host.time_wait=10s..120s",
            "--target",
            "peak_in_use<=900",
            "--seeds",
            "2",
            "--out",
            d,
        ])
        .assert()
        .success();
    assert_valid(
        &v,
        &read(&tmp.path().join("capacity.json")),
        "capacity.json",
    );
}

#[test]
fn documents_broken_on_purpose_fail_validation() {
    let sc = scenarios().join("api-no-pooling.toml");
    let report = output(&["run", sc.to_str().unwrap(), "--json"]);
    let v = validator("report");
    assert_valid(&v, &report, "api-no-pooling");
    let broken = |edit: &dyn Fn(&mut Value)| errors_after(&v, &report, edit);
    let e = broken(&|r| {
        r.as_object_mut().unwrap().remove("bursts");
    });
    assert!(e.contains("\"bursts\" is a required property"), "{e}");
    let e = broken(&|r| r["attempts"] = json!("many"));
    assert!(e.contains("/attempts"), "{e}");
    let e = broken(&|r| r["failures"] = json!(-1));
    assert!(e.contains("/failures"), "{e}");
    let e = broken(&|r| r["bursts"]["worst_10s"] = Value::Null);
    assert!(e.contains("/bursts/worst_10s"), "{e}");
    // A first failure without its attempt number: matches neither the
    // object nor null.
    let e = broken(&|r| r["first_failure"] = json!({ "time_s": 54.2 }));
    assert!(e.contains("anyOf") && e.contains("/first_failure"), "{e}");
    let e = broken(&|r| r["scenario"]["tw_reuse"] = json!("no"));
    assert!(e.contains("/scenario/tw_reuse"), "{e}");
    let e = broken(&|r| r["failure_ratio"] = json!(1.5));
    assert!(e.contains("/failure_ratio"), "{e}");
    let e = broken(&|r| r["bursts"]["worst_1s"] = json!(-0.1));
    assert!(e.contains("/bursts/worst_1s"), "{e}");
    // A schema describes the layout of its own version only.
    let e = broken(&|r| r["schema_version"] = json!(2));
    assert!(e.contains("/schema_version"), "{e}");

    // A field sweep.json does not have, in a run: the parts of sweep.json
    // described by hand refuse what they do not list.
    let sweep_sc = scenarios().join("sweep-rate.toml");
    let mut sweep = output(&[
        "sweep",
        sweep_sc.to_str().unwrap(),
        "--vary",
        "traffic.rate=12",
        "--seeds",
        "1",
        "--json",
    ]);
    let v = validator("sweep");
    assert_valid(&v, &sweep, "sweep");
    sweep["points"][0]["runs"][0]["retries"] = json!(0);
    let e = errors(&v, &sweep);
    assert!(e.contains("/points/0/runs/0"), "{e}");
    sweep["points"][0]["runs"][0]
        .as_object_mut()
        .unwrap()
        .remove("retries");
    sweep["points"][0]["surplus"] = json!(1);
    assert!(errors(&v, &sweep).contains("/points/0"));

    let v = validator("capacity");
    let mut cap = output(&[
        "capacity",
        sweep_sc.to_str().unwrap(),
        "--seeds",
        "1",
        "--json",
    ]);
    assert_valid(&v, &cap, "capacity");
    let mut wrong = cap.clone();
    wrong["direction"] = json!("biggest");
    let e = errors(&v, &wrong);
    assert!(e.contains("/direction"), "{e}");
    cap.as_object_mut().unwrap().remove("schema_version");
    let e = errors(&v, &cap);
    assert!(
        e.contains("\"schema_version\" is a required property"),
        "{e}"
    );
}

#[test]
fn seeds_spreads_match_the_schema() {
    let v = validator("seeds");
    for (file, n) in [
        ("api-no-pooling.toml", "3"),
        ("keep-alive.toml", "2"),
        ("k8s-node-masquerade.toml", "2"),
    ] {
        let sc = scenarios().join(file);
        let out = output(&["run", sc.to_str().unwrap(), "--seeds", n, "--json"]);
        assert_valid(&v, &out, &format!("{file} --seeds {n}"));
        assert_eq!(out["runs"].as_array().unwrap().len().to_string(), n);
    }
    // `--seeds 1` is a plain run: its output is a report.
    let sc = scenarios().join("api-no-pooling.toml");
    let one = output(&["run", sc.to_str().unwrap(), "--seeds", "1", "--json"]);
    assert_valid(&validator("report"), &one, "--seeds 1");
    assert!(!errors(&v, &one).is_empty());
    let spread = output(&["run", sc.to_str().unwrap(), "--seeds", "2", "--json"]);
    let broken = |edit: &dyn Fn(&mut Value)| errors_after(&v, &spread, edit);
    let e = broken(&|r| {
        r.as_object_mut().unwrap().remove("figures");
    });
    assert!(e.contains("\"figures\" is a required property"), "{e}");
    let e = broken(&|r| r["figures"][0]["n"] = json!(0));
    assert!(e.contains("/figures/0/n"), "{e}");
    let e = broken(&|r| r["figures"][0]["spread"] = json!(1));
    assert!(e.contains("/figures/0"), "{e}");
    let e = broken(&|r| r["runs"][0]["failure_ratio"] = json!(2.0));
    assert!(e.contains("/runs/0/failure_ratio"), "{e}");
    let e = broken(&|r| r["schema_version"] = json!(99));
    assert!(e.contains("/schema_version"), "{e}");
}
