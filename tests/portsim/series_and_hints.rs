//! What a new user reads first: `report.json` and `timeseries.csv` agree on
//! the number of rows for every shipped scenario, with no empty row at the
//! end; and the summary's lines that used to vanish or mislead (no port
//! reused, the server's TIME_WAIT with `close = "server"`, Linux's own port
//! range left unused) say what happened.

use std::path::Path;

use portsim::report::summary::render;
use serde_json::Value;

use crate::util::{self, run_out};

#[test]
fn timeseries_rows_match_the_json_count_for_every_shipped_scenario() {
    // Rule: one row per engine bin; the last bin also holds events at
    // exactly the end of the run, so no row starts at the end (width 0).
    // Rows start at 0 and are bin_s apart.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut scenarios: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    scenarios.sort();
    assert!(scenarios.len() >= 10, "shipped scenarios: {scenarios:?}");
    let tmp = tempfile::tempdir().unwrap();
    let mut wrong = Vec::new();
    for path in &scenarios {
        let stem = path.file_stem().unwrap().to_str().unwrap();
        let out = tmp.path().join(stem);
        run_out(path, &out, &["--no-charts"]);
        let json: Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap())
                .unwrap();
        let csv = std::fs::read_to_string(out.join("timeseries.csv")).unwrap();
        let starts: Vec<f64> = csv
            .lines()
            .skip(1)
            .map(|l| l.split(',').next().unwrap().parse().unwrap())
            .collect();
        let bins = json["timeseries"]["bins"].as_u64().unwrap() as usize;
        let bin_s = json["timeseries"]["bin_s"].as_f64().unwrap();
        let end = json["simulated_s"].as_f64().unwrap();
        if bins != starts.len() {
            wrong.push(format!(
                "{stem}: timeseries.bins {bins}, csv rows {}",
                starts.len()
            ));
        }
        if let Some(&last) = starts.last() {
            if last >= end && end > 0.0 {
                wrong.push(format!(
                    "{stem}: the last row starts at {last} s, the end of the run ({end} s)"
                ));
            }
        }
        for (i, s) in starts.iter().enumerate() {
            if (s - i as f64 * bin_s).abs() > 1e-6 {
                wrong.push(format!(
                    "{stem}: row {i} starts at {s} s, not {i} × {bin_s} s"
                ));
                break;
            }
        }
    }
    assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
}

/// 10 connections/s held 1 s for 10 s: 100 attempts, 100 ports used, none freed
/// and taken again (each in TIME_WAIT for 60 s).
fn linux(port_range: Option<&str>) -> String {
    format!(
        "name = \"hint\"\nduration = \"10s\"\n[host]\nos = \"linux\"\n{}\n\
         [[destinations]]\naddress = \"10.0.0.5:5432\"\n\
         [traffic]\narrivals = \"constant\"\nrate = 10\nhold = \"1s\"\n",
        port_range.map_or(String::new(), |r| format!("port_range = \"{r}\""))
    )
}

const HINT: &str =
    "a stock Linux uses 32768-60999, 28,232 ports: port_range = \"native\" models it";

#[test]
fn the_summary_says_when_no_port_was_reused() {
    let r = util::run(&linux(None));
    assert_eq!((r.attempts, r.reuse_interval_s.count), (100, 0));
    let s = render(&r);
    assert!(
        s.contains("\n  port reuse      no freed port was taken again (n = 0)\n"),
        "{s}"
    );
}

#[test]
fn linux_with_the_default_range_is_told_about_its_own() {
    let s = render(&util::run(&linux(None)));
    assert_eq!(s.matches(HINT).count(), 1, "{s}");
    // Not when the range is given, even as the default, or is the native one.
    for given in ["49152-65535", "native", "32768-60999"] {
        let s = render(&util::run(&linux(Some(given))));
        assert!(!s.contains("a stock Linux"), "{given}: {s}");
    }
    // Nor for an OS whose own range is the default.
    let s = render(&util::run(&linux(None).replace("\"linux\"", "\"windows\"")));
    assert!(!s.contains("a stock"), "{s}");
}

#[test]
fn server_close_reports_reuses_inside_the_servers_time_wait() {
    // 100 ports handed out in turn (sequential), 8 connections/s held 1 s
    // for 300 s: each port comes back 12.5 s after it was taken, 11.5 s after
    // its connection closed; 2,400 attempts, the last 2,300 reuses (see
    // theory::exact::server_close_counts_reuses_inside_the_servers_time_wait).
    let toml = "name = \"sc\"\nduration = \"300s\"\n\
                [host]\nos = \"linux\"\nallocator = \"sequential\"\nport_range = \"50000-50099\"\n\
                [[destinations]]\naddress = \"10.0.0.5:80\"\n\
                [traffic]\narrivals = \"constant\"\nrate = 8\nhold = \"1s\"\nclose = \"server\"\n";
    let r = util::run(toml);
    let s = render(&r);
    assert!(
        s.contains(
            "\n  TIME_WAIT       none here (server close); ports came back after a median 11.5 s, \
             inside the server's 60 s TIME_WAIT:\n                  2,300 reuses (95.8 % of connections) \
             would meet a 4-tuple the server still holds\n"
        ),
        "{s}"
    );
    let json: Value = serde_json::from_str(&r.to_json()).unwrap();
    assert_eq!(json["reuse_within_server_time_wait"]["count"], 2300);
    assert_eq!(
        json["reuse_within_server_time_wait"]["share"].as_f64(),
        Some(2300.0 / 2400.0)
    );
    // A server TIME_WAIT shorter than the 11.5 s: ports come back beyond it.
    let r = util::run(&toml.replace("sequential\"", "sequential\"\ntime_wait = \"10s\""));
    let s = render(&r);
    assert!(
        s.contains(
            "beyond the server's 10 s TIME_WAIT:\n                  0 reuses (0 % of connections)"
        ),
        "{s}"
    );
}

#[test]
fn the_ceiling_names_what_holds_a_port() {
    let base = r#"
name = "ceiling"
seed = 1
duration = "10s"
[host]
os = "linux"
port_range = "60000-60999"
[[destinations]]
address = "10.0.0.9:80"
[traffic]
rate = 10
hold = "1s"
"#;
    let line = |close: &str| {
        let r = crate::util::run(&format!("{base}close = \"{close}\"\n"));
        let s = portsim::report::summary::render(&r);
        s.lines()
            .find(|l| l.trim_start().starts_with("analytic"))
            .unwrap()
            .to_string()
    };
    // 1,000 ports ÷ 61 s with client close; ÷ 1 s where no TIME_WAIT stays here.
    assert!(line("client").ends_with("ports ÷ (hold + TIME_WAIT) = 16.4 conn/s per pool"));
    for close in ["server", "reset"] {
        let l = line(close);
        assert!(l.ends_with("ports ÷ hold = 1,000 conn/s per pool"), "{l}");
    }
}
