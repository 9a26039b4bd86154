//! Measured traffic: `traffic.replay` makes exactly the connections of its
//! CSV file (count, times, destinations, holds, checked against `--trace`
//! and figures worked out by hand), and `traffic.rate_profile` is the same
//! run as the `schedule` it spells out. Bad files and rows get exit code 2
//! and one line naming the file, the line, what was found and what is
//! allowed.

use std::path::Path;

use crate::util::{portsim, text, write};

/// A host of 100 ports, TIME_WAIT 10 s, two destinations; `bind()` keeps
/// each port to one connection, so ports in use are connections plus
/// TIME_WAIT entries. `extra` goes at the end of `[traffic]`.
fn scenario(extra: &str) -> String {
    format!(
        r#"name = "replay"
[host]
os = "linux"
port_range = "50000-50099"
time_wait = "10s"
[[destinations]]
address = "10.0.0.5:5432"
[[destinations]]
address = "10.0.0.6:443"
[traffic]
bind = "bind"
{extra}
"#
    )
}

/// Rows (start s, destination as written, destination index, hold s):
/// the first three overlap (3 open at 2 s), the fourth starts while those
/// are in TIME_WAIT (4 ports in use at 12 s, 3 of them TIME_WAIT).
const ROWS: &[(f64, &str, u32, f64)] = &[
    (0.0, "10.0.0.5:5432", 0, 5.0),
    (1.0, "10.0.0.6:443", 1, 2.0),
    (2.0, "0", 0, 1.5),
    (12.0, "1", 1, 3.0),
    (21.0, "10.0.0.5:5432", 0, 1.5),
    (40.0, "10.0.0.6:443", 1, 1.0),
];

/// The rows as a CSV file, times in seconds and as durations.
fn rows_csv() -> String {
    let mut s = String::from("start,destination,hold\n");
    for (i, (start, dest, _, hold)) in ROWS.iter().enumerate() {
        if i % 2 == 0 {
            s += &format!("{start},{dest},{hold}\n");
        } else {
            // The same times as durations.
            s += &format!("{}ms,{dest},{}ms\n", start * 1000.0, hold * 1000.0);
        }
    }
    s
}

/// `portsim run scenario args...` in `dir`, expected to succeed; stdout.
fn run_ok(dir: &Path, args: &[&str]) -> String {
    let out = portsim()
        .current_dir(dir)
        .arg("run")
        .args(args)
        .assert()
        .success();
    text(&out.get_output().stdout)
}

/// `portsim run bad.toml` in `dir`, expected to be refused with one line
/// on stderr and nothing on stdout; the line.
fn refused(dir: &Path) -> String {
    let out = portsim()
        .current_dir(dir)
        .args(["run", "bad.toml"])
        .assert()
        .code(2);
    let o = out.get_output();
    let err = text(&o.stderr);
    assert!(o.stdout.is_empty(), "{}", text(&o.stdout));
    assert!(err.starts_with("error: "), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    err
}

fn json(stdout: &str) -> serde_json::Value {
    serde_json::from_str(stdout).expect("report JSON")
}

/// The trace's rows as (time in ns, event, port, destination).
fn trace_rows(path: &Path) -> Vec<(u64, String, String, String)> {
    let t = std::fs::read_to_string(path).unwrap();
    let mut lines = t.lines();
    assert_eq!(lines.next(), Some("time_s,event,port,destination"));
    lines
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            let (s, ns) = f[0].split_once('.').unwrap();
            let t = s.parse::<u64>().unwrap() * 1_000_000_000 + ns.parse::<u64>().unwrap();
            (t, f[1].to_string(), f[2].to_string(), f[3].to_string())
        })
        .collect()
}

const NS: f64 = 1e9;

/// Each row is one connect at its start to its destination, one close
/// at start + hold on the same port, and the end of its TIME_WAIT 10 s
/// later; nothing else happens.
#[test]
fn a_replayed_trace_connects_and_closes_at_its_rows_times() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "conns.csv", &rows_csv());
    write(
        dir.path(),
        "s.toml",
        &scenario("replay = \"conns.csv\"").replace("[host]", "duration = \"60s\"\n[host]"),
    );
    run_ok(dir.path(), &["s.toml", "--trace", "trace.csv"]);
    let got = trace_rows(&dir.path().join("trace.csv"));
    let dests = ["10.0.0.5:5432", "10.0.0.6:443"];
    // (time, order at one instant: TIME_WAIT end, close, connect).
    let mut want: Vec<(u64, u8, &str, &str)> = Vec::new();
    for &(start, _, d, hold) in ROWS {
        let (s, h) = ((start * NS) as u64, (hold * NS) as u64);
        want.push((s, 2, "connect", dests[d as usize]));
        want.push((s + h, 1, "close", dests[d as usize]));
        want.push((
            s + h + 10_000_000_000,
            0,
            "time_wait_end",
            dests[d as usize],
        ));
    }
    want.sort();
    let got_events: Vec<(u64, &str, &str)> = got
        .iter()
        .map(|(t, e, _, d)| (*t, e.as_str(), d.as_str()))
        .collect();
    let want_events: Vec<(u64, &str, &str)> = want.iter().map(|w| (w.0, w.2, w.3)).collect();
    assert_eq!(got_events, want_events);
    // Each connection keeps its port from connect to TIME_WAIT end.
    for &(start, _, _, hold) in ROWS {
        let (s, h) = ((start * NS) as u64, (hold * NS) as u64);
        let port = |t: u64, e: &str| {
            got.iter()
                .find(|r| r.0 == t && r.1 == e)
                .map(|r| r.2.clone())
                .unwrap()
        };
        let p = port(s, "connect");
        assert_eq!(port(s + h, "close"), p);
        assert_eq!(port(s + h + 10_000_000_000, "time_wait_end"), p);
    }
}

/// The figures of the trace, worked out by hand: 6 attempts, all
/// established; 3 open at once at 2 s; at 12 s the fourth connection
/// and the first three's TIME_WAIT (until 15, 13 and 13.5 s) hold 4 ports,
/// 3 of them in TIME_WAIT. Without `duration` the run ends when the last
/// connection closes (41 s).
#[test]
fn a_replayed_trace_peaks_where_its_holds_overlap() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "conns.csv", &rows_csv());
    write(dir.path(), "s.toml", &scenario("replay = \"conns.csv\""));
    let r = json(&run_ok(dir.path(), &["s.toml", "--json"]));
    assert_eq!(r["attempts"], 6);
    assert_eq!(r["established"], 6);
    assert_eq!(r["failures"], 0);
    assert_eq!(r["simulated_s"], 41.0);
    assert_eq!(r["ports"]["peak_open_connections"], 3);
    assert_eq!(r["ports"]["peak_in_use"], 4);
    assert_eq!(r["ports"]["peak_time_wait"], 3);
    assert_eq!(r["ports"]["distinct_used"], 6);
    // Closed at 41 s, in TIME_WAIT until 51 s: the one entry at the end.
    assert_eq!(r["ports"]["open_at_end"], 0);
    assert_eq!(r["ports"]["time_wait_at_end"], 1);
    let per_dest: Vec<(String, u64)> = r["destinations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["address"].as_str().unwrap().to_string(),
                d["attempts"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        per_dest,
        vec![("10.0.0.5:5432".into(), 3), ("10.0.0.6:443".into(), 3)]
    );
    // The report says where the connections came from.
    assert_eq!(r["scenario"]["replay"]["rows"], 6);
    assert!(r["scenario"]["replay"]["file"]
        .as_str()
        .unwrap()
        .ends_with("conns.csv"));
    let summary = String::from_utf8(
        std::process::Command::new(env!("CARGO_BIN_EXE_portsim"))
            .current_dir(dir.path())
            .args(["run", "s.toml", "--no-fixes"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert!(
        summary.contains("  replay          6 connections from "),
        "{summary}"
    );
    // The closed-form figures read the trace's mean rate and hold.
    assert_eq!(r["scenario"]["mean_rate"], 6.0 / 41.0);
    // 14 s over 6 rows, in whole ns.
    assert_eq!(r["scenario"]["mean_hold_s"], 2_333_333_333.0 / 1e9);
    // A duration cuts the trace: rows starting after it are not made.
    let r = json(&run_ok(
        dir.path(),
        &["s.toml", "--json", "--set", "duration=20s"],
    ));
    assert_eq!(r["attempts"], 4);
    assert_eq!(r["simulated_s"], 20.0);
}

/// More rows at one instant than ports: the extra ones fail, and each is
/// retried with its own row's destination and hold. Ten ports, 15 rows
/// at 0 s (the first ten held 1 s, the last five 5 s), the server closes
/// (no TIME_WAIT here): five fail at 0 s, are retried at 2 s onto ports
/// freed at 1 s, and close at 7 s (within the 10 s `duration`; without
/// one the run would end at 5 s, when the trace's last row closes).
#[test]
fn failed_rows_are_retried_with_their_own_hold() {
    let dir = tempfile::tempdir().unwrap();
    let mut csv = String::new();
    for i in 0..15 {
        let hold = if i < 10 { "1s" } else { "5s" };
        csv += &format!("0,{},{hold}\n", i % 2);
    }
    write(dir.path(), "conns.csv", &csv);
    let text =
        scenario("replay = \"conns.csv\"\nclose = \"server\"\nretry = { after = \"2s\", max = 1 }")
            .replace("50000-50099", "50000-50009")
            .replace("[host]", "duration = \"10s\"\n[host]");
    write(dir.path(), "s.toml", &text);
    let r = json(&run_ok(
        dir.path(),
        &["s.toml", "--json", "--trace", "trace.csv"],
    ));
    assert_eq!(r["attempts"], 20);
    assert_eq!(r["failures"], 5);
    assert_eq!(r["retries"], 5);
    assert_eq!(r["abandoned"], 0);
    assert_eq!(r["simulated_s"], 10.0);
    let rows = trace_rows(&dir.path().join("trace.csv"));
    let at = |t: u64, e: &str| rows.iter().filter(|r| r.0 == t && r.1 == e).count();
    let s = 1_000_000_000;
    assert_eq!(
        (at(0, "connect"), at(0, "fail"), at(s, "close")),
        (10, 5, 10)
    );
    assert_eq!((at(2 * s, "connect"), at(7 * s, "close")), (5, 5));
    // Rows 10..15 alternate destinations 0, 1, 0, 1, 0.
    let retried: Vec<&str> = rows
        .iter()
        .filter(|r| r.0 == 2 * s)
        .map(|r| r.3.as_str())
        .collect();
    assert_eq!(
        retried,
        [
            "10.0.0.5:5432",
            "10.0.0.6:443",
            "10.0.0.5:5432",
            "10.0.0.6:443",
            "10.0.0.5:5432"
        ]
    );
    assert_eq!(rows.len(), 10 + 5 + 10 + 5 + 5);
}

/// A rate profile file is its schedule: the same report, byte for byte,
/// with Poisson arrivals (the same draws) and with constant ones; a file
/// whose first row is after 0 has rate 0 until then, as a schedule does.
#[test]
fn a_rate_profile_is_the_schedule_it_lists() {
    let cases = [
        (
            "time,rate\n0,5\n10,20\n30s,0\n1m,8.5\n",
            "schedule = [{ at = \"0s\", rate = 5 }, { at = \"10s\", rate = 20 }, { at = \"30s\", rate = 0 }, { at = \"1m\", rate = 8.5 }]",
        ),
        (
            "# measured\n\"time\",\"rate\"\n\n15,40\n 45.5 , 2 \n",
            "schedule = [{ at = \"15s\", rate = 40 }, { at = \"45500ms\", rate = 2 }]",
        ),
    ];
    for (csv, schedule) in cases {
        for arrivals in ["poisson", "constant"] {
            let a = tempfile::tempdir().unwrap();
            let b = tempfile::tempdir().unwrap();
            let common = format!("hold = \"3s\"\narrivals = \"{arrivals}\"");
            let with = |traffic: &str| {
                scenario(&format!("{common}\n{traffic}"))
                    .replace("[host]", "duration = \"2m\"\nseed = 7\n[host]")
                    .replace(
                        "port_range = \"50000-50099\"",
                        "port_range = \"50000-50499\"",
                    )
            };
            write(a.path(), "rates.csv", csv);
            write(a.path(), "s.toml", &with("rate_profile = \"rates.csv\""));
            write(b.path(), "s.toml", &with(schedule));
            let from_file = run_ok(a.path(), &["s.toml", "--json"]);
            let from_schedule = run_ok(b.path(), &["s.toml", "--json"]);
            assert_eq!(from_file, from_schedule, "{csv}");
            assert!(json(&from_file)["attempts"].as_u64().unwrap() > 500);
            assert_eq!(run_ok(a.path(), &["s.toml"]), run_ok(b.path(), &["s.toml"]));
        }
    }
}

/// The files are found next to the scenario, wherever it is run from.
#[test]
fn files_are_relative_to_the_scenario() {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("sub");
    std::fs::create_dir(&sub).unwrap();
    write(&sub, "conns.csv", &rows_csv());
    write(&sub, "rates.csv", "0,5\n");
    write(&sub, "s.toml", &scenario("replay = \"conns.csv\""));
    write(
        &sub,
        "p.toml",
        &scenario("rate_profile = \"rates.csv\"\nhold = \"1s\"")
            .replace("[host]", "duration = \"10s\"\n[host]"),
    );
    assert_eq!(
        json(&run_ok(dir.path(), &["sub/s.toml", "--json"]))["attempts"],
        6
    );
    let r = json(&run_ok(dir.path(), &["sub/p.toml", "--json"]));
    assert_eq!(r["scenario"]["mean_rate"], 5.0);
}

/// `scenario(traffic)` with a `duration`, as a rate profile needs.
fn timed(traffic: &str) -> String {
    scenario(traffic).replace("[host]", "duration = \"10s\"\n[host]")
}

/// Write `bad.toml` with `traffic` and `file` (its text) as `name`.
fn bad(dir: &Path, traffic: &str, name: &str, file: &str) -> String {
    write(dir, name, file);
    write(dir, "bad.toml", &timed(traffic));
    refused(dir)
}

/// The line of `[traffic]`'s key in `timed(...)`: the scenario file's
/// own line comes first in each message.
fn key_line(traffic: &str, key: &str) -> usize {
    timed(traffic)
        .lines()
        .position(|l| l.starts_with(key))
        .unwrap()
        + 1
}

#[test]
fn bad_replay_rows_name_the_file_line_and_what_is_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let t = "replay = \"conns.csv\"";
    let head = format!(
        "bad.toml:{}: traffic.replay: \"conns.csv\"",
        key_line(t, "replay")
    );
    for (file, want) in [
        (
            "start,destination,hold\n0,0,1\n5,1,1\n4,0,1\n",
            " line 4: the start: found \"4\", before the previous row's \"5\"; rows must be in start order",
        ),
        (
            "0,0,1\n1,10.0.0.7:5432,1\n",
            " line 2: the destination: found \"10.0.0.7:5432\", which is not an address of the scenario's [[destinations]]; expected the ip:port of one of the scenario's [[destinations]] (such as \"10.0.0.5:5432\") or its index, 0 to 1",
        ),
        (
            "0,2,1\n",
            " line 1: the destination: found the index \"2\"; expected the ip:port",
        ),
        (
            "0,db,1\n",
            " line 1: the destination: found \"db\"; expected the ip:port",
        ),
        (
            "0,0,1\n\n# pause\n3,0,soon\n",
            " line 4: the hold: found \"soon\"; expected seconds (such as 90 or 12.5) or a duration (such as 1m30s or 250ms)",
        ),
        (
            "0,0,1\n-1,0,1\n",
            " line 2: the start: found \"-1\"; expected seconds",
        ),
        (
            "0,0\n",
            " line 1: found 2 field(s), \"0,0\"; expected 3: start,destination,hold",
        ),
        (
            "1700000000,0,1\n",
            " line 1: the start: found \"1700000000\", about 54 years: times are from the run's start, not timestamps",
        ),
        ("start,destination,hold\n", " has no rows"),
    ] {
        let err = bad(dir.path(), t, "conns.csv", file);
        assert!(err.contains(&format!("{head}{want}")), "{file:?}\n{err}");
    }
    // No file.
    std::fs::remove_file(dir.path().join("conns.csv")).unwrap();
    write(dir.path(), "bad.toml", &timed(t));
    let err = refused(dir.path());
    assert!(
        err.contains(&format!(
            "bad.toml:{}: traffic.replay: cannot read \"conns.csv\":",
            key_line(t, "replay")
        )) && err.contains("relative to the scenario file's directory"),
        "{err}"
    );
    // Not text, and no end to it.
    std::fs::write(dir.path().join("conns.csv"), b"0,0,1\n1,0,\xff\n").unwrap();
    let err = refused(dir.path());
    assert!(
        err.contains("\"conns.csv\" line 2: not valid UTF-8"),
        "{err}"
    );
    std::fs::remove_file(dir.path().join("conns.csv")).unwrap();
    write(dir.path(), "bad.toml", &timed("replay = \"/dev/zero\""));
    let err = refused(dir.path());
    assert!(err.contains("\"/dev/zero\" is larger than 64 MiB"), "{err}");
}

/// The keys the trace decides are refused beside it, naming the key; a
/// fleet refuses a trace.
#[test]
fn replay_refuses_the_keys_it_decides() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "conns.csv", "0,0,1\n");
    for key in [
        "rate = 5",
        "hold = \"1s\"",
        "arrivals = \"constant\"",
        "pick = \"round-robin\"",
        "requests_per_connection = 2",
        "pool = { max_idle = 2 }",
        "concurrency = 10",
        "schedule = [{ at = \"0s\", rate = 1 }]",
        "rate_profile = \"conns.csv\"",
    ] {
        let t = format!("replay = \"conns.csv\"\n{key}");
        write(dir.path(), "bad.toml", &timed(&t));
        let err = refused(dir.path());
        let k = key.split(' ').next().unwrap();
        assert!(
            err.contains(&format!(
                "bad.toml:{}: traffic.{k}: found with traffic.replay;",
                key_line(&t, k)
            )),
            "{key}\n{err}"
        );
    }
    // What still applies does.
    write(
        dir.path(),
        "ok.toml",
        &scenario("replay = \"conns.csv\"\nclose = \"reset\"\nconnect_timeout = \"1s\"\nsource = \"weighted\""),
    );
    let r = json(&run_ok(dir.path(), &["ok.toml", "--json"]));
    assert_eq!(
        (
            r["attempts"].as_u64(),
            r["ports"]["peak_time_wait"].as_u64()
        ),
        (Some(1), Some(0))
    );
    // A fleet.
    let fleet = scenario("replay = \"conns.csv\"")
        .replace("[host]", "[[hosts]]\nname = \"pods\"\ncount = 2\n[host]");
    write(dir.path(), "bad.toml", &fleet);
    let err = refused(dir.path());
    assert!(
        err.contains("traffic.replay: found in a scenario with [[hosts]] groups;"),
        "{err}"
    );
}

#[test]
fn bad_rate_profile_rows_name_the_file_line_and_what_is_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let t = "rate_profile = \"rates.csv\"\nhold = \"1s\"";
    let head = format!(
        "bad.toml:{}: traffic.rate_profile: \"rates.csv\"",
        key_line(t, "rate_profile")
    );
    for (file, want) in [
        (
            "time,rate\n0,5\n10,abc\n",
            " line 3: the rate: found \"abc\"; expected connections per second from 0 to 1000000000",
        ),
        ("0,5\n10,-1\n", " line 2: the rate: found \"-1\"; expected connections per second"),
        (
            "0,5\n10s,6\n10,7\n",
            " line 3: the time: found \"10\", not after the previous row's \"10s\"; times must increase row by row",
        ),
        ("0,5\n1m,6\n30s,7\n", " line 3: the time: found \"30s\", not after the previous row's \"1m\""),
        ("0,5,6\n", " line 1: found 3 field(s), \"0,5,6\"; expected 2: time,rate"),
        ("", " has no rows; expected lines of time,rate"),
    ] {
        let err = bad(dir.path(), t, "rates.csv", file);
        assert!(err.contains(&format!("{head}{want}")), "{file:?}\n{err}");
    }
    // Too many rows.
    let mut many = String::new();
    for i in 0..100_001 {
        many += &format!("{i},1\n");
    }
    let err = bad(dir.path(), t, "rates.csv", &many);
    assert!(
        err.contains("\"rates.csv\" has more than 100000 rows; at most 100000 are allowed"),
        "{err}"
    );
    // With another rate.
    write(dir.path(), "rates.csv", "0,5\n");
    let t = "rate_profile = \"rates.csv\"\nhold = \"1s\"\nrate = 4";
    write(dir.path(), "bad.toml", &timed(t));
    let err = refused(dir.path());
    assert!(
        err.contains(&format!(
            "bad.toml:{}: traffic.rate: found with traffic.rate_profile;",
            key_line(t, "rate =")
        )),
        "{err}"
    );
}
