//! Regression tests for inputs that once panicked, ran far longer than their
//! estimate, took runaway memory or printed unreadable messages. Each test
//! is named after the defect it guards against and checks the exact figure
//! or the refusal that replaced it.

use std::time::Duration;

use portsim::scenario::Builder;

use crate::util::{portsim, run, scenario, text, write};

/// A scenario around a `[traffic]` body, bounded by `bound`.
fn with_traffic(bound: &str, host: &str, traffic: &str) -> String {
    format!(
        "name = \"h\"\n{bound}\n[host]\n{host}\n[[destinations]]\naddress = \"10.0.0.1:80\"\n[traffic]\n{traffic}\n"
    )
}

/// `portsim ARGS` refused with exit 2; returns its one-line message.
fn refused(args: &[&str], dir: &std::path::Path) -> String {
    let out = portsim().current_dir(dir).args(args).assert().code(2);
    let err = text(&out.get_output().stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    err
}

#[test]
fn arrivals_that_stop_without_a_duration_end_the_run() {
    // Rate 0 with only `max_connections`: no attempt, no panic.
    let sc = Builder::new("h")
        .max_connections(100)
        .rate(0.0)
        .hold(Duration::from_secs(1))
        .build()
        .unwrap();
    let r = portsim::run(&sc);
    assert_eq!((r.attempts, r.failures), (0, 0));
    // A schedule whose last step is 0: constant arrivals at 50/s for 10 s
    // are the arrivals at 0.02 s, 0.04 s, …, 10 s: exactly 500, and the run
    // ends with the last one.
    let sc = Builder::new("h")
        .max_connections(100_000)
        .arrivals("constant")
        .schedule(&[(Duration::ZERO, 50.0), (Duration::from_secs(10), 0.0)])
        .hold(Duration::from_secs(1))
        .build()
        .unwrap();
    let r = portsim::run(&sc);
    assert_eq!(r.attempts, 500);
    assert_eq!(r.established, 500);
    assert_eq!(r.simulated_s, 10.0);
}

#[test]
fn rates_above_one_per_nanosecond_are_refused_where_they_are_written() {
    let dir = tempfile::tempdir().unwrap();
    // Once a NaN rate integral, then an index out of bounds.
    let f = write(
        dir.path(),
        "ramp.toml",
        &with_traffic(
            "duration = \"60s\"",
            "",
            "ramp = { from = 1e308, to = 1, over = \"20s\", at = \"1s\" }\nhold = \"1s\"",
        ),
    );
    let err = refused(&["check", f.to_str().unwrap()], dir.path());
    assert!(
        err.contains("ramp.toml:8: traffic.ramp.from: found 1e308"),
        "{err}"
    );
    assert!(err.contains("at most 1000000000"), "{err}");
    // The limit itself is allowed.
    let sc = scenario(&with_traffic(
        "max_connections = 10",
        "",
        "ramp = { from = 1e9, to = 0, over = \"20s\" }\nhold = \"1s\"",
    ));
    assert_eq!(portsim::run(&sc).attempts, 10);
    for bad in ["rate = nan", "rate = inf", "rate = -1"] {
        let f = write(
            dir.path(),
            "bad.toml",
            &with_traffic("duration = \"1s\"", "", &format!("{bad}\nhold = \"1s\"")),
        );
        let err = refused(&["check", f.to_str().unwrap()], dir.path());
        assert!(err.contains("traffic.rate: found"), "{bad}: {err}");
    }
}

#[test]
fn hold_draws_per_request_count_as_work() {
    // 1,000 connections of 2^32 - 1 requests, each request's exponential
    // hold drawn: 4.3e12 draws, refused before the run and the message
    // names the key.
    let dir = tempfile::tempdir().unwrap();
    let text = with_traffic(
        "max_connections = 1000",
        "",
        "rate = 10\nrequests_per_connection = 4294967295\nhold = { dist = \"exponential\", mean = \"1ms\" }",
    );
    let f = write(dir.path(), "rpc.toml", &text);
    let err = refused(&["run", f.to_str().unwrap()], dir.path());
    assert!(err.contains("4.29e12 events"), "{err}");
    assert!(err.contains("traffic.requests_per_connection"), "{err}");
    // A constant hold sums in closed form. 10 requests/s in connections of
    // 2^32 - 1 requests is a connection every 429,496,729.5 s, each holding
    // its port 4,294,967.295 s + 60 s: never two at once.
    let r = run(&with_traffic(
        "max_connections = 20",
        "",
        "arrivals = \"constant\"\nrate = 10\nrequests_per_connection = 4294967295\nhold = \"1ms\"",
    ));
    assert_eq!((r.attempts, r.established), (20, 20));
    assert_eq!(r.ports.peak_in_use, 1);
    assert_eq!(r.simulated_s, 20.0 * 429_496_729.5);
}

#[test]
fn a_random_walk_allocator_near_exhaustion_counts_its_probes() {
    // rfc6056-5 over 65,535 ports at 20,000/s with a 60 s TIME_WAIT is 18×
    // overloaded: nearly every attempt walks the whole range. 200,000
    // attempts are 1.3e10 probes, over a limit of 1e9.
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "r5.toml",
        &with_traffic(
            "max_connections = 200000",
            "allocator = \"rfc6056-5\"\nport_range = \"1-65535\"",
            "rate = 20000\nhold = \"1s\"",
        ),
    );
    let err = refused(
        &["run", f.to_str().unwrap(), "--max-events", "1e9"],
        dir.path(),
    );
    assert!(err.contains("allocator probes"), "{err}");
    assert!(err.contains("1.31e10 events"), "{err}");
    // Far below saturation the same allocator costs one probe an attempt.
    let light = scenario(&with_traffic(
        "max_connections = 200000",
        "allocator = \"rfc6056-5\"\nport_range = \"1-65535\"",
        "rate = 10\nhold = \"1s\"",
    ));
    let cost = portsim::limits::estimate(&light, false);
    assert!(cost.events < 2.1e5, "{}", cost.events);
}

#[test]
fn memory_is_estimated_and_refused_before_allocation() {
    // 4,096 source addresses × 65,535 ports with bind(): over 2 GiB of port
    // state.
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "mem.toml",
        &with_traffic(
            "max_connections = 10",
            "addresses = 4096\nport_range = \"1-65535\"",
            "rate = 10\nhold = \"1s\"\nbind = \"bind\"",
        ),
    );
    let err = refused(
        &["run", f.to_str().unwrap(), "--max-memory", "1GiB"],
        dir.path(),
    );
    assert!(
        err.contains("of memory expected; the limit is 1.0 GiB"),
        "{err}"
    );
    assert!(err.contains("host.addresses"), "{err}");
    let err = refused(
        &["run", f.to_str().unwrap(), "--max-memory", "lots"],
        dir.path(),
    );
    assert!(err.contains("--max-memory"), "{err}");
    // A million destinations with IP_BIND_ADDRESS_NO_PORT over 4,096
    // addresses once built 4e9 Erlang B shares in memory; the closed form
    // now groups them and the run stays small.
    let sc = scenario(
        &with_traffic(
            "max_connections = 1000",
            "addresses = 4096\nport_range = \"60000-60999\"",
            "rate = 100\nhold = \"1s\"\nbind = \"bind-no-port\"",
        )
        .replace(
            "address = \"10.0.0.1:80\"",
            "address = \"10.0.0.1:80\"\ncount = 1000000",
        ),
    );
    let cost = portsim::limits::estimate(&sc, false);
    assert!(cost.memory < 1e9, "{}", cost.memory);
    let r = portsim::run(&sc);
    assert_eq!(r.analytic.pools, 4096 * 1_000_000);
    assert_eq!(r.attempts, 1000);
}

#[test]
fn scenario_files_above_16_mib_are_refused_unread() {
    let dir = tempfile::tempdir().unwrap();
    let err = refused(&["check", "/dev/zero"], dir.path());
    assert!(
        err.contains("/dev/zero: the scenario file is larger than 16 MiB"),
        "{err}"
    );
    let big = dir.path().join("big.toml");
    let f = std::fs::File::create(&big).unwrap();
    f.set_len((16 << 20) + 1).unwrap();
    let err = refused(&["check", big.to_str().unwrap()], dir.path());
    assert!(err.contains("larger than 16 MiB"), "{err}");
}

#[test]
fn messages_quote_found_values_on_one_readable_line() {
    let dir = tempfile::tempdir().unwrap();
    // A terminal escape and a newline in a value.
    let f = write(
        dir.path(),
        "esc.toml",
        &with_traffic(
            "duration = \"1s\"",
            "os = \"li\\nnux\\u001b[31m\"",
            "rate = 1\nhold = \"1s\"",
        ),
    );
    let err = refused(&["check", f.to_str().unwrap()], dir.path());
    assert!(!err.contains('\u{1b}'), "{err:?}");
    assert!(err.contains(r#"found "li\nnux\u{1b}[31m""#), "{err}");
    // A 100 kB value is cut.
    let long = "x".repeat(100_000);
    let f = write(
        dir.path(),
        "long.toml",
        &with_traffic(
            "duration = \"1s\"",
            &format!("allocator = \"{long}\""),
            "rate = 1\nhold = \"1s\"",
        ),
    );
    let err = refused(&["check", f.to_str().unwrap()], dir.path());
    assert!(err.len() < 600, "{} bytes", err.len());
    assert!(err.contains("(100000 characters)"), "{err}");
    // A huge float is printed in a few digits.
    let f = write(
        dir.path(),
        "w.toml",
        &with_traffic("duration = \"1s\"", "", "rate = 1\nhold = \"1s\"").replace(
            "address = \"10.0.0.1:80\"",
            "address = \"10.0.0.1:80\"\nweight = 1e300",
        ),
    );
    let err = refused(&["check", f.to_str().unwrap()], dir.path());
    assert!(err.contains("found 1e300; weights are relative"), "{err}");
}

#[test]
fn size_messages_give_a_readable_time_and_reject_nan_limits() {
    // 173 million attempts at 4 million a second is about 44 s, not "0.0 hours".
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "big.toml",
        &with_traffic(
            "max_connections = 173000000",
            "",
            "rate = 1000\nhold = \"1s\"",
        ),
    );
    let err = refused(
        &["run", f.to_str().unwrap(), "--max-events", "1e8"],
        dir.path(),
    );
    assert!(
        err.contains("about 1.73e8 events of work expected, roughly 44 s"),
        "{err}"
    );
    for bad in ["nan", "inf", "-5", "0"] {
        let flag = format!("--max-events={bad}");
        let err = refused(&["run", f.to_str().unwrap(), &flag], dir.path());
        assert!(err.contains("--max-events"), "{bad}: {err}");
    }
}

#[test]
fn overlapping_reserved_ranges_and_destination_counts_stay_linear() {
    // 100,000 copies of one reserved range once cost 6.5e9 steps per pass
    // over them; each port is counted once.
    let reserved = vec!["\"2-65535\""; 100_000].join(", ");
    let sc = scenario(&with_traffic(
        "max_connections = 5",
        &format!("port_range = \"1-65535\"\nreserved_ports = [{reserved}]"),
        "rate = 10\nhold = \"1s\"",
    ));
    assert_eq!(sc.host.usable_ports(), 1);
    let r = portsim::run(&sc);
    // One usable port held for 1 s + 60 s: the first attempt connects and
    // the four after it, 0.1 s apart on average, all fail.
    assert_eq!((r.established, r.failures), (1, 4));
    // Destination counts are added up before any is expanded.
    let dir = tempfile::tempdir().unwrap();
    let many = "[[destinations]]\naddress = \"10.0.0.1:80\"\ncount = 1000000\n".repeat(3);
    let f = write(
        dir.path(),
        "d.toml",
        &format!("name = \"d\"\nduration = \"1s\"\n{many}[traffic]\nrate = 1\nhold = \"1s\"\n"),
    );
    let err = refused(&["check", f.to_str().unwrap()], dir.path());
    assert!(
        err.contains(
            "destinations[1].count: brings the destinations to 2000000 in all; at most 1000000"
        ),
        "{err}"
    );
}

#[test]
fn sweep_and_capacity_check_their_output_files_before_running() {
    // A directory where sweep.json (or capacity.json) goes: refused with exit
    // 2 before any run, not with exit 3 after them.
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "s.toml",
        &with_traffic(
            "duration = \"10s\"",
            "port_range = \"60000-60099\"",
            "rate = 5\nhold = \"1s\"",
        ),
    );
    for (cmd, file, vary) in [
        ("sweep", "sweep.json", "traffic.rate=5"),
        ("capacity", "capacity.json", "traffic.rate=1..10"),
    ] {
        let out = dir.path().join(format!("out-{cmd}"));
        std::fs::create_dir_all(out.join(file)).unwrap();
        let err = refused(
            &[
                cmd,
                f.to_str().unwrap(),
                "--vary",
                vary,
                "--seeds",
                "1",
                "--out",
                out.to_str().unwrap(),
            ],
            dir.path(),
        );
        assert!(err.contains(file), "{cmd}: {err}");
        // Nothing else was written.
        assert_eq!(std::fs::read_dir(&out).unwrap().count(), 1, "{cmd}");
    }
}

#[test]
fn bad_flag_values_are_shown_escaped_on_one_line() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        vec!["run", "x.toml", "--seed", "X\nY\u{1b}[31m"],
        vec!["sweep", "x.toml", "--jobs", "X\nY\u{1b}[31m"],
        vec!["X\nY\u{1b}[2J"],
    ] {
        let err = refused(&args, dir.path());
        assert!(!err.contains('\u{1b}'), "{args:?}: {err:?}");
        assert!(err.contains(r#""X\nY\u{1b}["#), "{args:?}: {err}");
    }
}

#[test]
fn names_and_descriptions_hold_no_control_characters() {
    let dir = tempfile::tempdir().unwrap();
    let base = with_traffic("duration = \"1s\"", "", "rate = 1\nhold = \"1s\"");
    let f = write(
        dir.path(),
        "n.toml",
        &base.replace("name = \"h\"", "name = \"a\\u001b[2Jb\""),
    );
    let err = refused(&["check", f.to_str().unwrap()], dir.path());
    assert!(
        err.contains("n.toml:1: name: found \"a\\u{1b}[2Jb\""),
        "{err}"
    );
    let f = write(
        dir.path(),
        "d.toml",
        &base.replace("name = \"h\"", "name = \"h\"\ndescription = \"x\\u0007\""),
    );
    let err = refused(&["check", f.to_str().unwrap()], dir.path());
    assert!(
        err.contains("description: found the control character"),
        "{err}"
    );
    // Newlines and tabs are fine in a description.
    scenario(&base.replace("name = \"h\"", "name = \"h\"\ndescription = \"a\\n\\tb\""));
}

#[test]
fn a_zero_service_time_keeps_every_figure_a_number() {
    // Hold 0 and server close: no TIME_WAIT, no hold. The ceiling is one
    // connection per port per nanosecond: 100 ports × 1e9/s.
    let sc = Builder::new("h")
        .duration(Duration::from_secs(1))
        .port_range(60000, 60099)
        .rate(10.0)
        .hold(Duration::ZERO)
        .close("server")
        .build()
        .unwrap();
    let r = portsim::run(&sc);
    assert_eq!(r.analytic.max_rate_per_pool, 1e11);
    // Infinity would be written as `null` in report.json.
    let json = r.to_json();
    assert!(
        json.contains("\"max_rate_per_pool\": 100000000000"),
        "{json}"
    );
}

#[test]
fn the_default_memory_limit_refuses_4096_addresses_over_the_whole_range() {
    // 4,096 addresses × 65,535 ports with bind() took 2.1 GB: over the
    // default of 2 GiB, so `check` refuses it without allocating.
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "mem.toml",
        &with_traffic(
            "max_connections = 10",
            "addresses = 4096\nport_range = \"1-65535\"",
            "rate = 10\nhold = \"1s\"\nbind = \"bind\"",
        ),
    );
    let err = refused(&["check", f.to_str().unwrap()], dir.path());
    assert!(
        err.contains("about 2.1 GiB of memory expected; the limit is 2.0 GiB"),
        "{err}"
    );
}
