//! User mistakes: each gets exit code 2, nothing on stdout, and one message on
//! stderr that says where the problem is (file:line, or the flag) and what
//! would be right.

use std::path::Path;

use crate::util::{portsim, text, write};

const GOOD: &str = r#"name = "good"
duration = "60s"
[host]
os = "linux"
port_range = "50000-50099"
time_wait = "60s"
[[destinations]]
address = "10.0.0.5:5432"
[traffic]
arrivals = "constant"
rate = 8
hold = "1s"
"#;

/// Run `portsim args...` in `dir` and expect a refusal; returns stderr.
fn refused(dir: &Path, args: &[&str]) -> String {
    let out = portsim().current_dir(dir).args(args).assert().code(2);
    let o = out.get_output();
    let err = text(&o.stderr);
    assert!(
        o.stdout.is_empty(),
        "{args:?}: nothing on stdout, got {}",
        text(&o.stdout)
    );
    assert!(!err.contains("panicked"), "{args:?}: {err}");
    assert!(err.starts_with("error: "), "{args:?}: {err}");
    assert_eq!(
        err.matches("error:").count(),
        1,
        "{args:?}: one message: {err}"
    );
    err
}

/// Refused with a message from portsim itself: exactly one line.
fn refused_one_line(dir: &Path, args: &[&str]) -> String {
    let err = refused(dir, args);
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "{args:?}: one line: {err}"
    );
    err
}

/// `GOOD` with the line starting with `key` replaced by `line` (or appended
/// under the last table when no line starts with `key`); returns the text and
/// the 1-based number of the new line.
fn with_line(key: &str, line: &str) -> (String, usize) {
    let mut lines: Vec<String> = GOOD.lines().map(str::to_string).collect();
    let n = match lines
        .iter()
        .position(|l| l.split('=').next().unwrap().trim() == key)
    {
        Some(i) => {
            lines[i] = line.to_string();
            i + 1
        }
        None => {
            lines.push(line.to_string());
            lines.len()
        }
    };
    (lines.join("\n") + "\n", n)
}

#[test]
fn the_good_scenario_runs() {
    // The base of every case below is valid, so each refusal is due to the one change.
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "good.toml", GOOD);
    portsim()
        .current_dir(dir.path())
        .args(["run", "good.toml"])
        .assert()
        .success();
}

#[test]
fn unknown_key_names_file_line_and_the_closest_key() {
    let dir = tempfile::tempdir().unwrap();
    for (key, typo, suggestion) in [
        ("rate", "rat = 8", "rate"),
        ("port_range", "prot_range = \"50000-50099\"", "port_range"),
        ("duration", "duraton = \"60s\"", "duration"),
    ] {
        let (toml, line) = with_line(key, typo);
        write(dir.path(), "bad.toml", &toml);
        let err = refused_one_line(dir.path(), &["run", "bad.toml"]);
        let typo_key = typo.split(' ').next().unwrap();
        assert!(err.contains(&format!("bad.toml:{line}:")), "{typo}: {err}");
        assert!(
            err.contains(&format!("unknown key `{typo_key}`")),
            "{typo}: {err}"
        );
        assert!(
            err.contains(&format!("did you mean `{suggestion}`")),
            "{typo}: {err}"
        );
    }
}

/// The keys listed after "allowed here: " in an unknown-key message.
fn allowed_keys(err: &str) -> Vec<String> {
    let rest = err
        .split("allowed here: ")
        .nth(1)
        .unwrap_or_else(|| panic!("no list in {err}"));
    let list = rest.split(" (did you mean").next().unwrap().trim();
    list.split(", ").map(str::to_string).collect()
}

#[test]
fn unknown_key_lists_only_the_keys_of_its_table() {
    // The list once ended with the table's own name ("..., retry,
    // requests_per_connection, traffic"), from toml's "in `traffic`" suffix.
    let dir = tempfile::tempdir().unwrap();
    let (toml, _) = with_line("rate", "rat = 8");
    write(dir.path(), "bad.toml", &toml);
    let err = refused_one_line(dir.path(), &["run", "bad.toml"]);
    let traffic_keys = [
        "arrivals",
        "rate",
        "schedule",
        "ramp",
        "rate_profile",
        "replay",
        "hold",
        "close",
        "bind",
        "pick",
        "source",
        "retry",
        "requests_per_connection",
        "connect_timeout",
        "protocol",
        "pool",
        "concurrency",
        "think",
        "streams_per_connection",
        "timeout",
    ];
    assert_eq!(allowed_keys(&err), traffic_keys, "{err}");
    let (toml, _) = with_line("port_range", "prot_range = \"50000-50099\"");
    write(dir.path(), "bad.toml", &toml);
    let err = refused_one_line(dir.path(), &["run", "bad.toml"]);
    assert!(!allowed_keys(&err).contains(&"host".to_string()), "{err}");
}

#[test]
fn bad_duration_says_what_a_duration_looks_like() {
    let dir = tempfile::tempdir().unwrap();
    let (toml, line) = with_line("time_wait", "time_wait = \"60x\"");
    write(dir.path(), "bad.toml", &toml);
    let err = refused_one_line(dir.path(), &["run", "bad.toml"]);
    assert!(
        err.contains(&format!("bad.toml:{line}: host.time_wait:")),
        "{err}"
    );
    assert!(
        err.contains("\"60x\"") && err.contains("expected a duration"),
        "{err}"
    );
    // Inside an inline table: the line of the table, the full key path.
    let (toml, line) = with_line("hold", "hold = { dist = \"exponential\", mean = \"soon\" }");
    write(dir.path(), "bad.toml", &toml);
    let err = refused_one_line(dir.path(), &["run", "bad.toml"]);
    assert!(
        err.contains(&format!("bad.toml:{line}: traffic.hold.mean:")),
        "{err}"
    );
}

#[test]
fn bad_names_get_a_suggestion() {
    let dir = tempfile::tempdir().unwrap();
    for (key, line_text, want) in [
        ("os", "os = \"linus\"", "did you mean \"linux\""),
        ("os", "os = \"MacOS\"", "did you mean \"macos\""),
        (
            "os",
            "allocator = \"rfc6065-1\"",
            "did you mean \"rfc6056-1\"",
        ),
        (
            "arrivals",
            "arrivals = \"poison\"",
            "did you mean \"poisson\"",
        ),
        ("close", "close = \"clinet\"", "did you mean \"client\""),
    ] {
        let (toml, line) = with_line(key, line_text);
        write(dir.path(), "bad.toml", &toml);
        let err = refused_one_line(dir.path(), &["run", "bad.toml"]);
        assert!(
            err.contains(&format!("bad.toml:{line}:")),
            "{line_text}: {err}"
        );
        assert!(err.contains(want), "{line_text}: {err}");
    }
}

#[test]
fn bad_values_name_the_key() {
    let dir = tempfile::tempdir().unwrap();
    for (key, line_text, want) in [
        ("rate", "rate = -5", "traffic.rate"),
        (
            "port_range",
            "port_range = \"60000-50000\"",
            "host.port_range",
        ),
        (
            "port_range",
            "port_range = \"50000-70000\"",
            "host.port_range",
        ),
        ("duration", "duration = \"0s\"", "duration"),
        (
            "address",
            "address = \"10.0.0.5\"",
            "destinations[0].address",
        ),
        (
            "hold",
            "hold = { dist = \"lognormal\", median = \"2s\", p99 = \"1s\" }",
            "traffic.hold",
        ),
    ] {
        let (toml, line) = with_line(key, line_text);
        write(dir.path(), "bad.toml", &toml);
        let err = refused_one_line(dir.path(), &["run", "bad.toml"]);
        assert!(
            err.contains(&format!("bad.toml:{line}: {want}")),
            "{line_text}: {err}"
        );
    }
    // Reserving the whole range leaves nothing to hand out.
    let (toml, line) = with_line(
        "time_wait",
        "time_wait = \"60s\"\nreserved_ports = [\"50000-50099\"]",
    );
    write(dir.path(), "bad.toml", &toml);
    let err = refused_one_line(dir.path(), &["run", "bad.toml"]);
    assert!(
        err.contains(&format!("bad.toml:{}: host.reserved_ports", line + 1)),
        "{err}"
    );
    // Missing pieces: no [traffic] table, no duration nor max_connections.
    write(
        dir.path(),
        "bad.toml",
        &GOOD[..GOOD.find("[traffic]").unwrap()],
    );
    let err = refused_one_line(dir.path(), &["run", "bad.toml"]);
    assert!(err.contains("missing required key `traffic`"), "{err}");
    write(
        dir.path(),
        "bad.toml",
        &GOOD.replace("duration = \"60s\"\n", ""),
    );
    let err = refused_one_line(dir.path(), &["run", "bad.toml"]);
    assert!(
        err.contains("duration") && err.contains("max_connections"),
        "{err}"
    );
}

#[test]
fn missing_file() {
    let dir = tempfile::tempdir().unwrap();
    let err = refused_one_line(dir.path(), &["run", "nope.toml"]);
    assert!(
        err.contains("nope.toml") && err.contains("cannot read"),
        "{err}"
    );
    let err = refused_one_line(dir.path(), &["check", "nope.toml"]);
    assert!(err.contains("nope.toml"), "{err}");
}

#[test]
fn unparsable_toml_gives_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let toml = GOOD.replace("[traffic]", "[traffic");
    let line = toml.lines().position(|l| l == "[traffic").unwrap() + 1;
    write(dir.path(), "bad.toml", &toml);
    let err = refused_one_line(dir.path(), &["run", "bad.toml"]);
    assert!(
        err.contains(&format!("bad.toml:{line}: not valid TOML")),
        "{err}"
    );
    // A value that is not TOML at all.
    let (toml, line) = with_line("rate", "rate = 8 per second");
    write(dir.path(), "bad.toml", &toml);
    let err = refused_one_line(dir.path(), &["run", "bad.toml"]);
    assert!(
        err.contains(&format!("bad.toml:{line}: not valid TOML")),
        "{err}"
    );
}

#[test]
fn bad_set_syntax() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "good.toml", GOOD);
    let err = refused(dir.path(), &["run", "good.toml", "--set", "traffic.rate"]);
    assert!(
        err.contains("--set traffic.rate") && err.contains("KEY=VALUE"),
        "{err}"
    );
    let err = refused(
        dir.path(),
        &["run", "good.toml", "--set", "traffic..rate=3"],
    );
    assert!(err.contains("dotted key"), "{err}");
}

#[test]
fn set_errors_name_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "good.toml", GOOD);
    let err = refused_one_line(dir.path(), &["run", "good.toml", "--set", "traffic.rat=5"]);
    assert!(err.starts_with("error: --set traffic.rat=5: "), "{err}");
    assert!(err.contains("did you mean `rate`"), "{err}");
    assert!(
        !err.contains("good.toml"),
        "the value came from the flag, not the file: {err}"
    );
    // A bad value for a key the file also sets: the flag is to blame, not line 6.
    let err = refused_one_line(
        dir.path(),
        &["run", "good.toml", "--set", "host.time_wait=soon"],
    );
    assert!(
        err.starts_with("error: --set host.time_wait=soon: host.time_wait:"),
        "{err}"
    );
    let err = refused_one_line(
        dir.path(),
        &["run", "good.toml", "--set", "traffic.rate.max=5"],
    );
    assert!(
        err.contains("--set traffic.rate.max=5") && err.contains("single value"),
        "{err}"
    );
    let err = refused_one_line(
        dir.path(),
        &[
            "run",
            "good.toml",
            "--set",
            "destinations.3.address=10.0.0.1:80",
        ],
    );
    assert!(err.contains("out of range"), "{err}");
    // An error elsewhere in the file still points at the file.
    let (toml, line) = with_line("os", "os = \"linus\"");
    write(dir.path(), "bad.toml", &toml);
    let err = refused_one_line(dir.path(), &["run", "bad.toml", "--set", "traffic.rate=3"]);
    assert!(err.contains(&format!("bad.toml:{line}: host.os")), "{err}");
}

#[test]
fn out_must_be_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "good.toml", GOOD);
    write(dir.path(), "taken", "keep me");
    let err = refused_one_line(dir.path(), &["run", "good.toml", "--out", "taken"]);
    assert!(
        err.contains("--out taken") && err.contains("not a directory"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("taken")).unwrap(),
        "keep me"
    );
    // A trace path that is a directory.
    std::fs::create_dir(dir.path().join("d")).unwrap();
    let err = refused_one_line(dir.path(), &["run", "good.toml", "--trace", "d"]);
    assert!(err.contains("d: is a directory"), "{err}");
    // A trace in a directory that does not exist.
    let err = refused_one_line(
        dir.path(),
        &["run", "good.toml", "--trace", "no/such/dir/t.csv"],
    );
    assert!(
        err.contains("no/such/dir/t.csv") && err.contains("cannot write"),
        "{err}"
    );
}

#[test]
fn absurd_runs_are_refused_before_running() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "good.toml", GOOD);
    // 1e9/s for 1000 h = 3.6e15 attempts, far over the default limit.
    let err = refused_one_line(
        dir.path(),
        &[
            "run",
            "good.toml",
            "--set",
            "traffic.rate=1e9",
            "--set",
            "duration=1000h",
        ],
    );
    assert!(err.contains("--max-events"), "{err}");
    assert!(
        err.contains("3.60e15"),
        "the estimate, rate × duration: {err}"
    );
    // `check` applies the same limit to the file as written.
    let (toml, _) = with_line("rate", "rate = 1e9");
    write(
        dir.path(),
        "huge.toml",
        &toml.replace("duration = \"60s\"", "duration = \"1000h\""),
    );
    let err = refused_one_line(dir.path(), &["check", "huge.toml"]);
    assert!(err.contains("--max-events"), "{err}");
    // The limit is a flag: 8/s × 60 s = 480 attempts expected.
    let err = refused_one_line(dir.path(), &["run", "good.toml", "--max-events", "400"]);
    assert!(
        err.contains("--max-events") && err.contains("4.80e2"),
        "{err}"
    );
    portsim()
        .current_dir(dir.path())
        .args(["run", "good.toml", "--max-events", "500"])
        .assert()
        .success();
    // Retries count: with up to 1 retry each, 480 × 2 = 960 may be attempted.
    let err = refused_one_line(
        dir.path(),
        &[
            "run",
            "good.toml",
            "--max-events",
            "900",
            "--set",
            "traffic.retry={ after = \"1s\", max = 1 }",
        ],
    );
    assert!(err.contains("--max-events"), "{err}");
    let err = refused_one_line(dir.path(), &["run", "good.toml", "--max-events", "0"]);
    assert!(err.contains("--max-events 0"), "{err}");
}

#[test]
fn command_line_mistakes() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "good.toml", GOOD);
    refused(dir.path(), &["frobnicate"]);
    refused(dir.path(), &["run"]);
    refused(dir.path(), &["check"]);
    let err = refused(dir.path(), &["run", "good.toml", "--seed", "minus-one"]);
    assert!(err.contains("--seed"), "{err}");
    let err = refused(dir.path(), &["run", "good.toml", "--jsno"]);
    assert!(err.contains("--json"), "clap suggests the flag: {err}");
}

#[test]
fn a_bare_number_for_a_duration_suggests_a_unit() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "good.toml", GOOD);
    let err = refused_one_line(
        dir.path(),
        &["run", "good.toml", "--set", "host.time_wait=30"],
    );
    assert!(
        err.contains(
            "host.time_wait: found the number 30; a duration is a string with a unit, e.g. \"30s\""
        ),
        "{err}"
    );
    // In the file, with its line.
    let (toml, line) = with_line("time_wait", "time_wait = 2.5");
    write(dir.path(), "bad.toml", &toml);
    let err = refused_one_line(dir.path(), &["check", "bad.toml"]);
    assert!(
        err.contains(&format!("bad.toml:{line}: host.time_wait: found the number 2.5; a duration is a string with a unit, e.g. \"2.5s\"")),
        "{err}"
    );
    // Other keys keep serde's wording.
    let (toml, _) = with_line("address", "address = 5432");
    write(dir.path(), "addr.toml", &toml);
    let err = refused_one_line(dir.path(), &["check", "addr.toml"]);
    assert!(
        err.contains("found integer `5432`, expected a string"),
        "{err}"
    );
}

/// `GOOD` behind two NATs, every key of the first written out.
fn nat_good() -> String {
    GOOD.replace(
        "time_wait = \"60s\"\n",
        "time_wait = \"60s\"\nvia = \"pod\"\n",
    ) + r#"[[nat]]
name = "pod"
type = "linux"
addresses = 1
port_range = "1024-65535"
mode = "preserve"
persistent = false
timeouts = { time_wait = "120s", close = "10s" }
max_entries = 262144
via = "node"
[[nat]]
name = "node"
type = "linux"  # node
"#
}

/// [`nat_good`] with the one line that reads `old` replaced by `new`;
/// returns the text and the 1-based number of that line.
fn nat_with(old: &str, new: &str) -> (String, usize) {
    let text = nat_good();
    let lines: Vec<&str> = text.lines().collect();
    let at: Vec<usize> = (0..lines.len()).filter(|&i| lines[i] == old).collect();
    assert_eq!(at.len(), 1, "{old:?} is one line of the file");
    let mut out: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    out[at[0]] = new.to_string();
    (out.join("\n") + "\n", at[0] + 1)
}

#[test]
fn the_good_nat_scenario_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "nat.toml", &nat_good());
    portsim()
        .current_dir(dir.path())
        .args(["check", "nat.toml"])
        .assert()
        .success();
}

#[test]
fn bad_nat_keys_name_the_key_and_the_line() {
    let dir = tempfile::tempdir().unwrap();
    // (line replaced, its new text, lines down from it where the error is, the message)
    for (old, new, down, want) in [
        (
            "name = \"pod\"",
            "name = \"\"",
            0,
            "nat[0].name: found an empty name; give each [[nat]] a short name such as \"node\"",
        ),
        (
            "name = \"node\"",
            "name = \"pod\"",
            0,
            "nat[1].name: found \"pod\", the name of nat[0] too; each [[nat]] needs a name of its own",
        ),
        (
            "type = \"linux\"",
            "type = \"lnux\"",
            0,
            "nat[0].type: found \"lnux\"; allowed: \"linux\", \"aws-nat-gateway\", \"azure-lb-outbound\", \"azure-nat-gateway\", \"gcp-cloud-nat\" (did you mean \"linux\"?)",
        ),
        (
            "addresses = 1",
            "addresses = 0",
            0,
            "nat[0].addresses: found \"0\"; expected a count from 1 to 4096 or a list of IP addresses",
        ),
        (
            "addresses = 1",
            "addresses = [\"203.0.113.9\", \"203.0.113.300\"]",
            0,
            "nat[0].addresses[1]: found \"203.0.113.300\"; expected an IP address such as \"10.0.0.7\"",
        ),
        (
            "addresses = 1",
            "addresses = [\"203.0.113.9\", \"203.0.113.9\"]",
            0,
            "nat[0].addresses[1]: found \"203.0.113.9\", listed already as nat[0].addresses[0]; each outside address is listed once",
        ),
        (
            "port_range = \"1024-65535\"",
            "port_range = \"60000-50000\"",
            0,
            "nat[0].port_range: found \"60000-50000\"; expected a port or a range \"A-B\" with 1 <= A <= B <= 65535",
        ),
        (
            "port_range = \"1024-65535\"",
            "port_range = \"0-1023\"",
            0,
            "nat[0].port_range: found \"0-1023\"; expected a port or a range",
        ),
        (
            "mode = \"preserve\"",
            "mode = \"fully-random\"",
            0,
            "nat[0].mode: found \"fully-random\"; allowed: \"preserve\", \"random\", \"random-fully\"",
        ),
        (
            "persistent = false",
            "persistent = \"no\"",
            0,
            "nat[0].persistent: found string \"no\", expected a boolean",
        ),
        (
            "timeouts = { time_wait = \"120s\", close = \"10s\" }",
            "timeouts = { time_wiat = \"120s\" }",
            0,
            "nat[0].timeouts.time_wiat: unknown key `time_wiat`; allowed here: syn_sent, established, fin_wait, close_wait, last_ack, time_wait, close, udp, transitory (did you mean `time_wait`?)",
        ),
        (
            "timeouts = { time_wait = \"120s\", close = \"10s\" }",
            "timeouts = { time_wait = \"2 minutes\", close = \"soon\" }",
            0,
            "nat[0].timeouts.close: found \"soon\"",
        ),
        (
            "timeouts = { time_wait = \"120s\", close = \"10s\" }",
            "timeouts = { close = 10 }",
            0,
            "nat[0].timeouts.close: found the number 10; a duration is a string with a unit, e.g. \"10s\"",
        ),
        (
            "timeouts = { time_wait = \"120s\", close = \"10s\" }",
            "timeouts = { established = \"0\" }",
            0,
            "nat[0].timeouts.established: found \"0\"; expected a positive duration (the kernel's default is 432000s)",
        ),
        (
            "timeouts = { time_wait = \"120s\", close = \"10s\" }",
            "timeouts = \"120s\"",
            0,
            "nat[0].timeouts: found string \"120s\", expected an inline table of durations such as { time_wait = \"120s\", close = \"10s\" }",
        ),
        (
            "max_entries = 262144",
            "max_entries = 0",
            0,
            "nat[0].max_entries: found 0; expected a whole number from 1 to 4294967295 (nf_conntrack_max, an unsigned int; the default is 262144)",
        ),
        (
            "max_entries = 262144",
            "max_entries = -5",
            0,
            "nat[0].max_entries: found -5; expected a whole number from 1 to 4294967295",
        ),
        (
            "max_entries = 262144",
            "max_entries = 1e6",
            0,
            "nat[0].max_entries: found floating point `1000000.0`, expected a whole number",
        ),
        (
            "via = \"node\"",
            "via = \"nodd\"",
            0,
            "nat[0].via: found \"nodd\", which no [[nat]] is named; the names are \"pod\", \"node\" (did you mean \"node\"?)",
        ),
        (
            "via = \"node\"",
            "via = \"pod\"",
            0,
            "nat[0].via: found \"pod\", the table's own name; a NAT cannot send its connections through itself",
        ),
        (
            "type = \"linux\"  # node",
            "type = \"linux\"\nvia = \"pod\"",
            1,
            "nat[1].via: found \"pod\", which closes a loop: \"pod\" → \"node\" → \"pod\"; a path of NATs must end (its last [[nat]] has no via)",
        ),
        (
            "via = \"pod\"",
            "via = \"cloud\"",
            0,
            "host.via: found \"cloud\", which no [[nat]] is named; the names are \"pod\", \"node\"",
        ),
        (
            "via = \"pod\"",
            "via = \"node\"",
            0,
            "nat[0].name: found \"pod\", a [[nat]] no connection crosses: the host's path is host.via = \"node\"; put it on the path (host.via, or via = \"pod\" in \"node\") or remove the table",
        ),
        (
            "mode = \"preserve\"",
            "mod = \"preserve\"",
            0,
            "nat[0].mod: unknown key `mod`; allowed here: name, type, addresses, port_range, mode, persistent, timeouts, max_entries, via, ports_per_host, min_ports_per_host, max_ports_per_host, hold_after_close, idle_timeout, allocation_lag, endpoint_independent (did you mean `mode`?)",
        ),
    ] {
        let (toml, line) = nat_with(old, new);
        // The off-path table is reported at its name.
        let line = if want.starts_with("nat[0].name: found \"pod\", a [[nat]]") {
            toml.lines().position(|l| l == "name = \"pod\"").unwrap() + 1
        } else {
            line + down
        };
        write(dir.path(), "bad.toml", &toml);
        let err = refused_one_line(dir.path(), &["check", "bad.toml"]);
        assert!(
            err.contains(&format!("bad.toml:{line}: {want}")),
            "{new}: want line {line}: {want}\n got {err}"
        );
    }
}

#[test]
fn a_missing_nat_key_or_host_via_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let text = nat_good();
    let header = text.lines().position(|l| l == "[[nat]]").unwrap() + 1;
    for (drop, want) in [
        ("name = \"pod\"\n", format!("bad.toml:{header}: nat[0]: missing required key `name`")),
        ("type = \"linux\"\n", format!("bad.toml:{header}: nat[0]: missing required key `type`")),
        (
            "via = \"pod\"\n",
            "bad.toml:3: host.via: missing; the file has [[nat]] tables (\"pod\", \"node\") but no connection crosses them unless host.via names the first, e.g. host.via = \"pod\"".to_string(),
        ),
    ] {
        write(dir.path(), "bad.toml", &text.replacen(drop, "", 1));
        let err = refused_one_line(dir.path(), &["check", "bad.toml"]);
        assert!(err.contains(&want), "without {drop:?}: {err}");
    }
    // host.via with no [[nat]] at all.
    let no_nat = text[..text.find("[[nat]]").unwrap()].to_string();
    write(dir.path(), "bad.toml", &no_nat);
    let err = refused_one_line(dir.path(), &["check", "bad.toml"]);
    assert!(
        err.contains("bad.toml:7: host.via: found \"pod\", but the file has no [[nat]] table; add one with name = \"pod\" and type = \"linux\", or remove host.via"),
        "{err}"
    );
}

#[test]
fn nat_keys_set_from_the_command_line_name_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "nat.toml", &nat_good());
    let err = refused_one_line(dir.path(), &["run", "nat.toml", "--set", "nat.1.via=pod"]);
    assert!(
        err.starts_with(
            "error: --set nat.1.via=pod: nat[1].via: found \"pod\", which closes a loop"
        ),
        "{err}"
    );
    let err = refused_one_line(
        dir.path(),
        &["run", "nat.toml", "--set", "nat.0.timeouts.time_wait=30"],
    );
    assert!(
        err.starts_with("error: --set nat.0.timeouts.time_wait=30: nat[0].timeouts.time_wait: found the number 30; a duration is a string with a unit"),
        "{err}"
    );
}

#[test]
fn a_table_where_a_table_belongs_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let (toml, line) = with_line("hold", "hold = \"1s\"\nretry = \"5s\"");
    write(dir.path(), "bad.toml", &toml);
    let err = refused_one_line(dir.path(), &["check", "bad.toml"]);
    assert!(
        err.contains(&format!(
            "bad.toml:{}: traffic.retry: found string \"5s\", expected a table such as {{ after = \"1s\", max = 3 }}",
            line + 1
        )),
        "{err}"
    );
    assert!(!err.contains("Raw"), "no type names of the code: {err}");
}

/// `GOOD` as a closed loop: its `arrivals` and `rate` lines dropped and
/// `line` appended to `[traffic]`; returns the text and the 1-based
/// number of the first appended line.
fn closed_loop(line: &str) -> (String, usize) {
    let kept: Vec<&str> = GOOD
        .lines()
        .filter(|l| !l.starts_with("arrivals") && !l.starts_with("rate"))
        .collect();
    (kept.join("\n") + "\n" + line + "\n", kept.len() + 1)
}

#[test]
fn bad_client_keys_name_the_key_and_what_is_allowed() {
    let dir = tempfile::tempdir().unwrap();
    // `GOOD` with `line` appended to [traffic], from line `new` on.
    let add = |line: &str| format!("{GOOD}{line}\n");
    let new = GOOD.lines().count() + 1;
    let rate = GOOD.lines().position(|l| l == "rate = 8").unwrap() + 1;
    let closed = |line: &str| closed_loop(line).0;
    let first_closed = closed_loop("").1;
    // (file, the line the message names, the message from the key on)
    let mut cases: Vec<(String, usize, &str)> = vec![
        // A closed loop has no arrival rate: the rate's line is named.
        (
            add("concurrency = 5"),
            rate,
            "traffic.rate: found with traffic.concurrency; a closed loop's load is its users",
        ),
        (
            add("think = \"1s\""),
            new,
            "traffic.think: found without traffic.concurrency; think time is a virtual user's pause between requests",
        ),
        (
            add("pool = { wait = true }"),
            new,
            "traffic.pool.wait: found without traffic.pool.max_open; a request waits only when max_open connections are open",
        ),
        (
            add("pool = { max_open = 2, wait = 5 }"),
            new,
            "traffic.pool.wait: found \"5\"; expected true (wait for a free connection), false (fail at once) or a duration such as \"30s\"",
        ),
        (
            add("pool = { max_idel = 2 }"),
            new,
            "traffic.pool.max_idel: unknown key `max_idel`; allowed here: max_idle, max_open, idle_timeout, max_lifetime, wait (did you mean `max_idle`?)",
        ),
        (
            add("pool = { max_idle = 2, idle_timeout = \"0s\" }"),
            new,
            "traffic.pool.idle_timeout: found 0; expected a positive duration (leave it out for none)",
        ),
        (
            add("streams_per_connection = 0"),
            new,
            "traffic.streams_per_connection: found 0; expected at least 1",
        ),
        (
            add("timeout = \"0s\""),
            new,
            "traffic.timeout: found 0; expected a positive duration such as \"30s\"",
        ),
        (
            add("retry = { after = \"1s\", max = 2, cap = \"5s\" }"),
            new,
            "traffic.retry.cap: found with a fixed backoff; it applies to backoff = \"exponential\" only",
        ),
        (
            add("retry = { after = \"1s\", max = 2, jitter = \"full\" }"),
            new,
            "traffic.retry.jitter: found with a fixed backoff",
        ),
        (
            add("retry = { after = \"1s\", max = 2, backoff = \"exponential\", cap = \"500ms\" }"),
            new,
            "traffic.retry.cap: found \"500ms\", shorter than retry.after (\"1s\"); the cap bounds the delays from above",
        ),
        (
            add("retry = { after = \"1s\", max = 2, backoff = \"exponential\", jitter = \"ful\" }"),
            new,
            "traffic.retry.jitter: found \"ful\"; allowed: \"full\", \"equal\", \"none\" (did you mean \"full\"?)",
        ),
        (
            add("retry = { after = \"1s\", max = 2, backoff = \"exponentail\" }"),
            new,
            "traffic.retry.backoff: found \"exponentail\"; allowed: \"fixed\", \"exponential\" (did you mean \"exponential\"?)",
        ),
        (
            add("retry = { after = \"1s\", max = 2, backoff = \"exponential\", factor = 0.5 }"),
            new,
            "traffic.retry.factor: found 0.5; expected a growth factor from 1 to 1000",
        ),
        (
            add("protocol = \"udp\"\npool = { max_idle = 4 }"),
            new + 1,
            "traffic.pool: found with protocol = \"udp\"; UDP flows are not kept or shared between requests",
        ),
        (
            add("protocol = \"udp\"\nstreams_per_connection = 4"),
            new + 1,
            "traffic.streams_per_connection: found with protocol = \"udp\"",
        ),
        (
            closed("concurrency = 0"),
            first_closed,
            "traffic.concurrency: found 0; expected at least 1 user",
        ),
        (
            closed("concurrency = 2000000"),
            first_closed,
            "traffic.concurrency: found \"2000000\"; expected a whole number of users from 0 to 1000000",
        ),
        (
            closed("concurrency = [{ at = \"1m\", users = 5 }, { at = \"30s\", users = 10 }]"),
            first_closed,
            "traffic.concurrency[1].at: not after the previous step; steps must be in increasing time order",
        ),
        (
            closed("concurrency = { from = 0, to = 0, over = \"1m\" }"),
            first_closed,
            "traffic.concurrency: from and to are both 0; expected at least 1 user",
        ),
        (
            closed("concurrency = { from = 1, to = 10, over = \"1m\", step = 2 }"),
            first_closed,
            "traffic.concurrency.step: unknown key; allowed: \"from\", \"to\", \"over\", \"at\"",
        ),
        (
            closed("concurrency = \"lots\""),
            first_closed,
            "traffic.concurrency: found \"lots\"; expected a number of users (500), steps",
        ),
        // Hold and think both 0: the key is not in the file, so its table.
        (
            closed("concurrency = 5").replace("hold = \"1s\"", "hold = \"0s\""),
            GOOD.lines().position(|l| l == "[traffic]").unwrap() + 1,
            "traffic.think: a closed loop with hold and think both 0 would send endless requests at one instant",
        ),
        // Pools and users are for one [host]: a fleet refuses them.
        (
            add("pool = { max_idle = 4 }\n[[hosts]]\nname = \"web\"\ncount = 2"),
            new,
            "traffic.pool: found in a scenario with [[hosts]] groups; pools, virtual users, streams and request timeouts are modelled for one [host] so far",
        ),
    ];
    // A group's own key is named as the group's.
    cases.push((
        closed("[[hosts]]\nname = \"web\"\ncount = 2\ntraffic = { concurrency = 4 }"),
        first_closed + 3,
        "hosts[0].traffic.concurrency: found in a scenario with [[hosts]] groups",
    ));
    for (toml, line, want) in cases {
        write(dir.path(), "bad.toml", &toml);
        let err = refused_one_line(dir.path(), &["check", "bad.toml"]);
        assert!(
            err.contains(&format!("bad.toml:{line}: {want}")),
            "want line {line}: {want}\n got {err}\n in\n{toml}"
        );
        // The same from `run`, which refuses before running.
        let err = refused_one_line(dir.path(), &["run", "bad.toml"]);
        assert!(err.contains(&format!("bad.toml:{line}: {want}")), "{err}");
    }
}
