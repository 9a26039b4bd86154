//! Fuzzing: generated and mutated scenario files through the loader, the size
//! guard, the engine and the report, checked for panics, malformed messages and
//! broken invariants; a share of them through the `portsim` binary as well.
//!
//! Shaped to run inside `cargo test` on stable Rust, with no fuzzing engine:
//! - cases come from a small deterministic generator (splitmix64 seeded from
//!   `PORTSIM_FUZZ_SEED` and the case index, never the clock), so case `i` of
//!   seed `s` is the same input on every machine and can be replayed alone
//!   with `PORTSIM_FUZZ_START=i PORTSIM_FUZZ_CASES=1`;
//! - half the cases follow a grammar of every scenario key with values at and
//!   past the edges of what validation accepts (half of these files with
//!   1-4 `[[nat]]` tables chained by `via`); the other half are byte-level
//!   mutations of the shipped scenarios (bit flips, inserted and deleted bytes,
//!   duplicated lines, truncation, splices, values swapped for grammar values,
//!   a chain of NATs broken by a `via` to a missing or looping name or a
//!   table off the path);
//! - each case runs on a worker thread behind `catch_unwind` with a small event
//!   limit, so a panic is a finding rather than the end of the run, and a case
//!   that never returns is reported as a hang instead of stalling the suite;
//! - every finding of a run is collected, grouped (by panic location or by the
//!   invariant broken), written to the temporary directory and reported in one
//!   failure that says how to reproduce each group;
//! - defects already known to the project are listed once, in
//!   [`KNOWN_DEFECTS`], and do not fail the run; `PORTSIM_FUZZ_STRICT=1`
//!   ignores that list. The minimal reproducers live in `fuzz/regressions/`.
//!
//! If the test process itself dies (an abort, a stack overflow), the input
//! being checked is in `$TMPDIR/portsim-fuzz-SEED/current.toml`.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use portsim::scenario::Scenario;
use portsim::Report;

use crate::util::portsim;

/// Cases of a default `cargo test` run (about 25-40 s in the test profile).
const DEFAULT_CASES: u64 = 20_000;
/// The size guard of in-process cases: at most this many expected attempts.
const LIMIT: f64 = 2e5;
/// One case in this many also goes through the binary...
const CLI_EVERY: u64 = 40;
/// ...up to this many per run.
const CLI_MAX: u64 = 150;
/// A case slower than this is listed (not failed): a runtime finding.
const SLOW: Duration = Duration::from_secs(2);
/// A case that has not returned after this long (`PORTSIM_FUZZ_HANG_SECS`,
/// default 60) is a hang.
fn hang_limit() -> Duration {
    Duration::from_secs(env_u64("PORTSIM_FUZZ_HANG_SECS", 60))
}
/// A case whose peak memory, above what was resident before it, exceeds
/// this is a finding (Linux only).
const MAX_RSS_KB: u64 = 1 << 20;
/// The memory limit of in-process cases, in bytes: half of `MAX_RSS_KB`.
const MAX_MEMORY: f64 = (1u64 << 29) as f64;
/// Longest error message accepted, in characters.
const MAX_MESSAGE: usize = 1024;
/// Name of the worker threads, which the panic hook recognises.
const WORKER: &str = "portsim-fuzz-case";

/// How a known defect is recognised. (Unused while no defect is known.)
#[allow(dead_code)]
enum Known {
    /// The finding's text (panic message and location, or the broken
    /// invariant) contains this.
    Finding(&'static str),
    /// A loaded scenario of this shape is not run at all: running it would
    /// hang or allocate gigabytes.
    Shape(fn(&Scenario) -> bool),
}

struct KnownDefect {
    /// The reproducer in `fuzz/regressions/`.
    reproducer: &'static str,
    known: Known,
}

/// Defects of the engine that are known and being fixed: findings matching
/// one of these do not fail `random_scenarios`. Remove an entry when its fix
/// lands (and the reproducer passes `regressions`); the list should end empty.
const KNOWN_DEFECTS: &[KnownDefect] = &[];

/// Whether `random_scenarios` ignores `KNOWN_DEFECTS`.
fn strict_env() -> bool {
    std::env::var("PORTSIM_FUZZ_STRICT").is_ok_and(|v| v == "1")
}

fn known_finding(text: &str, strict: bool) -> Option<&'static str> {
    if strict {
        return None;
    }
    KNOWN_DEFECTS.iter().find_map(|d| match d.known {
        Known::Finding(s) if text.contains(s) => Some(d.reproducer),
        _ => None,
    })
}

fn known_shape(sc: &Scenario, strict: bool) -> Option<&'static str> {
    if strict {
        return None;
    }
    KNOWN_DEFECTS.iter().find_map(|d| match d.known {
        Known::Shape(f) if f(sc) => Some(d.reproducer),
        _ => None,
    })
}

// ---------------------------------------------------------------------------
// Deterministic randomness.

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

struct Rng {
    state: u64,
    /// How often a value is an edge case rather than an ordinary one: one
    /// in `edge`. Most files have a few edge values, so that they load and
    /// run; some have many, to exercise the loader's refusals.
    edge: u64,
}

impl Rng {
    fn for_case(seed: u64, index: u64) -> Rng {
        let mut r = Rng {
            state: splitmix(seed ^ splitmix(index.wrapping_add(0x0070_6f72_7473_696d))),
            edge: 4,
        };
        r.edge = *r.pick(&[4, 12, 30, 60, 100, 200, 400, 1000]);
        r
    }
    fn next(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        splitmix(self.state)
    }
    /// Whether the next value is an edge case.
    fn edgy(&mut self) -> bool {
        self.chance(1, self.edge)
    }
    /// Uniform in `0..n` (`n` > 0).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    /// True with probability `num / den`.
    fn chance(&mut self, num: u64, den: u64) -> bool {
        self.below(den) < num
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

// ---------------------------------------------------------------------------
// The grammar: every key of a scenario file, with values at and past the edges.

/// A TOML basic string holding `s` (control characters as `\u` escapes).
fn toml_str(s: impl AsRef<str>) -> String {
    let mut out = String::from("\"");
    for c in s.as_ref().chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn duration(r: &mut Rng) -> String {
    const MODEST: &[&str] = &[
        "1ms", "10ms", "50ms", "250ms", "1s", "2s", "10s", "30s", "60s", "2m", "5m", "1h", "1h 30m",
    ];
    const EDGES: &[&str] = &[
        "0",
        "1ns",
        "1us",
        "999999999ns",
        "500years",
        "584years",
        "585years",
        "1000000000000h",
        "18446744073709551615ns",
        "18446744073709551616ns",
        "-1s",
        "",
        "  ",
        "1.5s",
        "1e3s",
        "60",
        "s",
        "1 s",
        "1s1s",
        "2d",
        "52w",
        "1month",
        "59s 999ms 999us 999ns",
        "0s",
        "0ns",
        " 0 ",
    ];
    let s = if !r.edgy() {
        r.pick(MODEST).to_string()
    } else if r.chance(1, 2) {
        r.pick(EDGES).to_string()
    } else {
        let units = ["ns", "us", "ms", "s", "m", "h", "d", "years"];
        let bits = r.below(40);
        format!("{}{}", r.below(1 << bits), r.pick(&units))
    };
    toml_str(&s)
}

fn float(r: &mut Rng, modest: &[&str]) -> String {
    const EDGES: &[&str] = &[
        "0",
        "-0.0",
        "1",
        "5e-324",
        "1e-300",
        "2.2250738585072014e-308",
        "1e308",
        "1.7976931348623157e308",
        "inf",
        "-inf",
        "nan",
        "+nan",
        "-1",
        "1e9",
        "4294967295",
        "0.5",
        "1e-9",
        "123456789.123",
    ];
    if !r.edgy() {
        r.pick(modest).to_string()
    } else {
        r.pick(EDGES).to_string()
    }
}

/// An integer for a key of type `u32` / `u64`, from ordinary to out of range.
fn int(r: &mut Rng, modest: &[&str]) -> String {
    const EDGES: &[&str] = &[
        "0",
        "1",
        "2",
        "-1",
        "4294967295",
        "4294967296",
        "9223372036854775807",
        "-9223372036854775808",
        "65535",
        "65536",
        "1000000",
        "1000001",
    ];
    if !r.edgy() {
        r.pick(modest).to_string()
    } else {
        r.pick(EDGES).to_string()
    }
}

fn text(r: &mut Rng) -> String {
    let s = match if r.edgy() { r.below(8) } else { 8 } {
        0 => String::new(),
        1 => " ".to_string(),
        2 => "x".repeat(1 + r.below(20_000) as usize),
        3 => "\u{1b}[31mred\u{1b}[0m\u{1b}]0;title\u{7}".to_string(),
        4 => "nul\u{0}del\u{7f}csi\u{9b}2J".to_string(),
        5 => "line\nbreak\r\nand\ttab".to_string(),
        6 => "é ü 日本 \u{202e}txt.exe 😀".to_string(),
        7 => "quote\" back\\slash '".to_string(),
        _ => r.pick(&["a", "proxy", "load-test", "db pool"]).to_string(),
    };
    toml_str(&s)
}

/// A value of the wrong shape for any key.
fn wrong_type(r: &mut Rng) -> String {
    r.pick(&[
        "true",
        "[]",
        "[1, \"a\"]",
        "{}",
        "{ x = 1 }",
        "1979-05-27T07:32:00Z",
        "07:32:00",
        "\"\"",
        "\"\\u001b[2J\"",
        "-7",
        "3.5",
        "[[1], [2]]",
    ])
    .to_string()
}

/// Appends `key = value` lines; some keys are left out, a few get values of
/// the wrong type, and now and then an unknown key appears.
struct Table<'a> {
    r: &'a mut Rng,
    out: &'a mut String,
}

impl Table<'_> {
    fn key(&mut self, key: &str, keep: u64, value: impl FnOnce(&mut Rng) -> String) {
        if !self.r.chance(keep, 100) {
            return;
        }
        let v = if self.r.edgy() && self.r.chance(1, 10) {
            wrong_type(self.r)
        } else {
            value(self.r)
        };
        self.out.push_str(&format!("{key} = {v}\n"));
        if self.r.edgy() && self.r.chance(1, 20) {
            self.out
                .push_str(&format!("{}x = 1\n", &key[..key.len().min(3)]));
        }
    }
}

fn names(r: &mut Rng, valid: &[&'static str], invalid: &[&'static str]) -> String {
    if !r.edgy() {
        toml_str(r.pick(valid))
    } else {
        toml_str(r.pick(invalid))
    }
}

fn port_range(r: &mut Rng) -> String {
    const RANGES: &[&str] = &[
        "1-65535",
        "49152-65535",
        "32768-60999",
        "60000-60999",
        "60000-60003",
        "60000-60000",
        "65535-65535",
        "1-1",
        "1-2",
        "native",
        "0-100",
        "100-50",
        "65535",
        "1-65536",
        "x-y",
        "-5",
        " 1000 - 1010 ",
        "",
        "1024-1124",
        "40000-40599",
    ];
    if r.edgy() {
        toml_str(r.pick(RANGES))
    } else if r.chance(1, 3) {
        let a = 1 + r.below(65535);
        let b = a + r.below(65536 - a);
        toml_str(format!("{a}-{b}"))
    } else {
        toml_str(r.pick(&RANGES[..5]))
    }
}

fn reserved(r: &mut Rng) -> String {
    let n = {
        let big = r.chance(1, 20);
        r.below(if big { 400 } else { 6 })
    };
    let items: Vec<String> = (0..n)
        .map(
            |_| match if r.edgy() { r.below(3) } else { 1 + r.below(5) } {
                0 => r
                    .pick(&["0", "1", "65535", "65536", "-1", "50000"])
                    .to_string(),
                1 => (1 + r.below(65535)).to_string(),
                2 => toml_str(r.pick(&["1-65535", "60000-60999", "7-3", "x"])),
                _ => {
                    let a = 1 + r.below(65535);
                    let b = a + r.below((65536 - a).min(2000));
                    toml_str(format!("{a}-{b}"))
                }
            },
        )
        .collect();
    if r.edgy() && r.chance(1, 4) {
        return r.pick(&["5", "\"50000\"", "true"]).to_string();
    }
    format!("[{}]", items.join(", "))
}

fn addresses(r: &mut Rng) -> String {
    match if r.edgy() { r.below(3) } else { 1 + r.below(5) } {
        0 => r
            .pick(&["0", "1", "2", "3", "16", "4096", "4097", "-1"])
            .to_string(),
        1 => (1 + r.below(64)).to_string(),
        2 => "[]".to_string(),
        _ => {
            const IPS: &[&str] = &[
                "10.0.8.11",
                "10.0.8.12",
                "192.0.2.1",
                "::1",
                "2001:db8::1",
                "255.255.255.255",
                "0.0.0.0",
                "10.0.8.11",
                "not-an-ip",
                "10.0.0.1:80",
                "",
            ];
            let n = 1 + {
                let big = r.chance(1, 10);
                r.below(if big { 300 } else { 4 })
            };
            let items: Vec<String> = (0..n).map(|_| toml_str(r.pick(IPS))).collect();
            format!("[{}]", items.join(", "))
        }
    }
}

fn destination(r: &mut Rng, out: &mut String) {
    out.push_str("[[destinations]]\n");
    const ADDRS: &[&str] = &[
        "10.0.0.5:5432",
        "10.80.0.1:8443",
        "[2001:db8::1]:443",
        "[::1]:1",
        "255.255.255.255:65535",
        "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:80",
        "255.255.255.250:80",
        "0.0.0.0:0",
        "10.0.0.5",
        "10.0.0.5:65536",
        "example.com:80",
        "",
    ];
    let mut t = Table { r, out };
    t.key("address", 99, |r| {
        if !r.edgy() {
            toml_str(r.pick(&ADDRS[..3]))
        } else {
            toml_str(r.pick(ADDRS))
        }
    });
    t.key("weight", 30, |r| float(r, &["1", "2", "0.5", "10", "3.25"]));
    t.key("count", 30, |r| {
        int(r, &["1", "2", "3", "8", "100", "1000", "4096", "4097"])
    });
}

fn hold(r: &mut Rng) -> String {
    if r.chance(1, 2) {
        return duration(r);
    }
    let extra = if r.edgy() && r.chance(1, 3) {
        ", mean = \"1s\", extra = 1"
    } else {
        ""
    };
    match if r.edgy() { r.below(5) } else { r.below(4) } {
        0 => format!("{{ dist = \"constant\", value = {}{extra} }}", duration(r)),
        1 => format!(
            "{{ dist = \"exponential\", mean = {}{extra} }}",
            duration(r)
        ),
        2 | 3 => {
            // Ordered pairs unless this file is an edgy one.
            let (a, b) = if r.edgy() {
                (duration(r), duration(r))
            } else {
                let (a, b) = *r.pick(&[
                    ("10ms", "90ms"),
                    ("30ms", "500ms"),
                    ("1s", "10s"),
                    ("1ns", "2ns"),
                ]);
                (toml_str(a), toml_str(b))
            };
            if r.chance(1, 2) {
                format!("{{ dist = \"lognormal\", median = {a}, p99 = {b}{extra} }}")
            } else {
                format!("{{ dist = \"uniform\", min = {a}, max = {b}{extra} }}")
            }
        }
        _ => r
            .pick(&[
                "{ dist = \"pareto\", mean = \"1s\" }",
                "{ mean = \"1s\" }",
                "{ dist = \"exponential\" }",
                "{ dist = \"exponential\", mean = 5 }",
                "{ dist = 1 }",
                "{}",
            ])
            .to_string(),
    }
}

/// The run lengths most generated files have.
const MODEST_DURATIONS: &[&str] = &["1s", "10s", "30s", "1m", "5m", "90s", "2s"];

/// `traffic.retry`: a fixed delay, or an exponential backoff with its
/// factor, cap and jitter (and now and then a key the fixed one refuses).
fn retry(r: &mut Rng) -> String {
    let base = format!(
        "after = {}, max = {}",
        duration(r),
        int(r, &["0", "1", "3", "10"])
    );
    if r.chance(1, 2) {
        let extra = if r.edgy() {
            *r.pick(&[", cap = \"1s\"", ", jitter = \"full\"", ", factor = 2"])
        } else {
            ""
        };
        return format!("{{ {base}{extra} }}");
    }
    let mut items = vec![base, "backoff = \"exponential\"".to_string()];
    if r.chance(1, 2) {
        items.push(format!(
            "factor = {}",
            float(r, &["1", "1.5", "2", "3", "10"])
        ));
    }
    if r.chance(1, 2) {
        items.push(format!("cap = {}", duration(r)));
    }
    if r.chance(1, 2) {
        items.push(format!(
            "jitter = {}",
            names(r, &["full", "equal", "none"], &["Full", "decorrelated", ""])
        ));
    }
    format!("{{ {} }}", items.join(", "))
}

/// `traffic.pool`: some of its keys, at and past their edges.
fn pool(r: &mut Rng) -> String {
    let mut items = Vec::new();
    if r.chance(2, 3) {
        items.push(format!(
            "max_idle = {}",
            int(r, &["0", "1", "2", "10", "100"])
        ));
    }
    if r.chance(1, 2) {
        items.push(format!("max_open = {}", int(r, &["0", "1", "2", "10"])));
    }
    if r.chance(1, 3) {
        items.push(format!("idle_timeout = {}", duration(r)));
    }
    if r.chance(1, 4) {
        items.push(format!("max_lifetime = {}", duration(r)));
    }
    if r.chance(1, 3) {
        let wait = if r.edgy() {
            r.pick(&["5", "\"soon\"", "\"0s\"", "\"-1s\""]).to_string()
        } else {
            r.pick(&["true", "false", "\"1s\"", "\"50ms\""]).to_string()
        };
        items.push(format!("wait = {wait}"));
    }
    if r.edgy() && r.chance(1, 4) {
        items.push("max_idel = 2".into());
    }
    format!("{{ {} }}", items.join(", "))
}

/// `traffic.concurrency`: a few users, steps or a ramp of them; edgy
/// values are ones the loader refuses (a valid count of a million users
/// whose requests fail at once would run for hours, as `generated` says).
fn users(r: &mut Rng) -> String {
    if r.edgy() {
        return r
            .pick(&[
                "0",
                "-1",
                "1000001",
                "\"x\"",
                "[]",
                "[{ at = \"1m\", users = 2 }, { at = \"30s\", users = 1 }]",
                "[{ at = \"0s\", users = 0 }]",
                "{ from = 0, to = 0, over = \"1m\" }",
                "{ from = 1, to = 5, over = \"0s\" }",
                "{ from = 1, to = 5, over = \"1m\", step = 1 }",
            ])
            .to_string();
    }
    let few = ["1", "2", "5", "20"];
    match r.below(3) {
        0 => r.pick(&few).to_string(),
        1 => format!(
            "[{{ at = \"0s\", users = {} }}, {{ at = {}, users = {} }}]",
            r.pick(&few),
            duration(r),
            r.pick(&["0", "3", "10"])
        ),
        _ => format!(
            "{{ from = {}, to = {}, over = {} }}",
            r.pick(&["0", "1", "20"]),
            r.pick(&few),
            duration(r)
        ),
    }
}

const RATES: &[&str] = &[
    "0", "1", "2", "10", "20", "100", "250", "1000", "2000", "0.01",
];

fn schedule(r: &mut Rng) -> String {
    let n = {
        let big = r.chance(1, 10);
        r.below(if big { 200 } else { 5 })
    };
    let items: Vec<String> = (0..n)
        .map(|_| format!("{{ at = {}, rate = {} }}", duration(r), float(r, RATES)))
        .collect();
    format!("[{}]", items.join(", "))
}

fn ramp(r: &mut Rng) -> String {
    let at = if r.chance(1, 2) {
        format!(", at = {}", duration(r))
    } else {
        String::new()
    };
    format!(
        "{{ from = {}, to = {}, over = {}{at} }}",
        float(r, RATES),
        float(r, RATES),
        duration(r)
    )
}

fn vary(r: &mut Rng) -> String {
    const SPECS: &[&str] = &[
        "traffic.rate=100..1000:50",
        "host.time_wait=30s,60s,120s",
        "traffic.rate=0..1e308:1e-300",
        "traffic.rate=0..1:1e-320",
        "traffic.rate=1e308..1.7e308:1e292",
        "traffic.rate=5..1:1",
        "traffic.rate=1..5:0",
        "traffic.rate=1..5:-1",
        "traffic.rate=1s..5:1",
        "traffic.rate=1,,2",
        "traffic.rate",
        "=5",
        "a..b=1",
        "host.time_wait=0s..584years:1ns",
        "traffic.rate=nan..inf:1",
    ];
    let n = r.below(4);
    let items: Vec<String> = (0..n).map(|_| toml_str(r.pick(SPECS))).collect();
    format!("[{}]", items.join(", "))
}

/// Names of `[[nat]]` tables: ordinary ones, and edges the loader refuses
/// (empty, spaces at the ends, control characters, very long).
const NAT_NAMES: &[&str] = &["node", "pod", "cloud", "egress", "router", "gw-1"];

fn nat_name(r: &mut Rng, ordinary: &str) -> String {
    if !r.edgy() || r.chance(1, 2) {
        return toml_str(ordinary);
    }
    match r.below(6) {
        0 => toml_str(""),
        1 => toml_str(format!(" {ordinary}")),
        2 => toml_str(format!("{ordinary}\t")),
        3 => toml_str(format!("{ordinary}\u{1b}[2J")),
        4 => toml_str("n".repeat(1 + r.below(5000) as usize)),
        _ => toml_str("日本 😀"),
    }
}

/// A `via` that breaks the chain: a name no table has, or one of `names`
/// (which may close a loop or leave a table off the path).
fn broken_via(r: &mut Rng, names: &[String]) -> String {
    if names.is_empty() || r.chance(1, 3) {
        toml_str(r.pick(&["nodee", "Node", "", " node", "cloud ", "x"]))
    } else {
        toml_str(r.pick(names))
    }
}

fn nat_port_range(r: &mut Rng) -> String {
    const SMALL: &[&str] = &[
        "40000-40003",
        "40000-40099",
        "20000-29999",
        "60000-60000",
        "1024-1124",
        "1024-1151",
        "1024-1152",
        "30000-30015",
        "1024-65535",
        "5000",
    ];
    const EDGES: &[&str] = &[
        "100-50",
        "65535-65535",
        "1-65535",
        "0-100",
        "1-65536",
        "65536",
        "0",
        "native",
        "",
        " 1000 - 1010 ",
        "x-y",
        "-5",
    ];
    if r.edgy() {
        toml_str(r.pick(EDGES))
    } else if r.chance(1, 4) {
        let a = 1 + r.below(65535);
        let b = a + r.below((65536 - a).min(300));
        toml_str(format!("{a}-{b}"))
    } else {
        toml_str(r.pick(SMALL))
    }
}

fn nat_addresses(r: &mut Rng) -> String {
    match if r.edgy() { r.below(4) } else { 1 + r.below(3) } {
        0 => r
            .pick(&["0", "-1", "4096", "4097", "65536", "[]", "\"2\"", "1.5"])
            .to_string(),
        1 => (1 + r.below(4)).to_string(),
        3 if r.edgy() => {
            // Duplicates and addresses that are no IP address.
            const BAD: &[&str] = &[
                "198.51.100.10",
                "198.51.100.10",
                "::ffff:198.51.100.10",
                "2001:DB8::7",
                "2001:db8::7",
                "not-an-ip",
                "10.0.0.1:80",
                "[2001:db8::1]",
                "",
            ];
            let n = 1 + r.below(4);
            let items: Vec<String> = (0..n).map(|_| toml_str(r.pick(BAD))).collect();
            format!("[{}]", items.join(", "))
        }
        _ => {
            const IPS: &[&str] = &[
                "198.51.100.10",
                "198.51.100.11",
                "10.0.3.7",
                "2001:db8::7",
                "2001:db8::8",
                "fe80::1",
                "0.0.0.0",
                "255.255.255.255",
            ];
            let n = 1 + r.below(4) as usize;
            let start = r.below(IPS.len() as u64) as usize;
            let items: Vec<String> = (0..n)
                .map(|j| toml_str(IPS[(start + j) % IPS.len()]))
                .collect();
            format!("[{}]", items.join(", "))
        }
    }
}

fn nat_timeouts(r: &mut Rng) -> String {
    const KEYS: &[&str] = &[
        "syn_sent",
        "established",
        "fin_wait",
        "close_wait",
        "last_ack",
        "time_wait",
        "close",
    ];
    // Distinct keys (a key twice is not TOML), from a random one on.
    let n = 1 + r.below(4) as usize;
    let start = r.below(KEYS.len() as u64) as usize;
    let mut items: Vec<String> = (0..n)
        .map(|j| {
            let key = KEYS[(start + 2 * j) % KEYS.len()];
            let value = if r.chance(1, 3) {
                toml_str("0")
            } else if r.edgy() {
                duration(r)
            } else {
                toml_str(r.pick(&["1s", "10s", "30s", "120s", "1ms", "5m"]))
            };
            format!("{key} = {value}")
        })
        .collect();
    if r.edgy() && r.chance(1, 3) {
        items.push(
            r.pick(&["timewait = \"1s\"", "unreplied = \"30s\"", "close = 5"])
                .to_string(),
        );
    }
    format!("{{ {} }}", items.join(", "))
}

/// `[[nat]]` tables chained by `via`, and the `host.via` naming the first.
struct NatPlan {
    /// The tables, in the order of the path.
    names: Vec<String>,
    /// Tables written to the file, in file order (indices into `names`).
    order: Vec<usize>,
    /// A table no `via` reaches.
    unused: bool,
}

impl NatPlan {
    /// One file in two: 1 to 4 NATs along the path, now and then a fifth
    /// (a path too long).
    fn draw(r: &mut Rng) -> Option<NatPlan> {
        if r.chance(1, 2) {
            return None;
        }
        let mut n = *r.pick(&[1, 1, 1, 2, 2, 3, 4]);
        if r.edgy() && r.chance(1, 4) {
            n = 5;
        }
        let start = r.below(NAT_NAMES.len() as u64) as usize;
        let mut names: Vec<String> = (0..n)
            .map(|j| NAT_NAMES[(start + j) % NAT_NAMES.len()].to_string())
            .collect();
        if n == 5 {
            names[4] = "nat-5".into();
        }
        // Written in a random order: `via` refers forwards and backwards.
        let mut order: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            let j = r.below(i as u64 + 1) as usize;
            order.swap(i, j);
        }
        let unused = r.edgy() && r.chance(1, 4);
        Some(NatPlan {
            names,
            order,
            unused,
        })
    }

    /// `host.via`: the first table, or (edgy) a broken one.
    fn host_via(&self, r: &mut Rng) -> String {
        if r.edgy() && r.chance(1, 3) {
            broken_via(r, &self.names)
        } else {
            toml_str(&self.names[0])
        }
    }

    fn write(&self, r: &mut Rng, out: &mut String) {
        let mut tables: Vec<(String, Option<String>)> = self
            .order
            .iter()
            .map(|&k| (self.names[k].clone(), self.names.get(k + 1).cloned()))
            .collect();
        if self.unused {
            tables.push(("spare".into(), None));
        }
        for (name, next) in tables {
            out.push_str("[[nat]]\n");
            let mut t = Table {
                r: &mut *r,
                out: &mut *out,
            };
            t.key("name", 98, |r| nat_name(r, &name));
            t.key("type", 96, |r| {
                names(r, &["linux"], &["Linux", "bsd", "", "linux "])
            });
            t.key("addresses", 45, nat_addresses);
            t.key("port_range", 70, nat_port_range);
            t.key("mode", 45, |r| {
                names(
                    r,
                    &["preserve", "random", "random-fully"],
                    &["random_fully", "fully-random", ""],
                )
            });
            t.key("persistent", 30, |r| {
                if r.edgy() {
                    r.pick(&["\"true\"", "1", "yes"]).to_string()
                } else {
                    r.pick(&["true", "false"]).to_string()
                }
            });
            t.key("timeouts", 45, nat_timeouts);
            t.key("max_entries", 30, |r| {
                int(r, &["1", "2", "10", "100", "1000", "262144", "4294967295"])
            });
            let names = &self.names;
            match next {
                Some(next) => t.key("via", 99, |r| {
                    if r.edgy() && r.chance(1, 3) {
                        broken_via(r, names)
                    } else {
                        toml_str(&next)
                    }
                }),
                // The last of the path has no via, unless it loops back.
                None => t.key("via", 3, |r| broken_via(r, names)),
            }
            if t.r.edgy() && t.r.chance(1, 8) {
                let k =
                    *t.r.pick(&["masquerade", "to_ports", "random_fully", "hash"]);
                t.out.push_str(&format!("{k} = true\n"));
            }
        }
    }
}

/// A whole scenario file from the grammar.
fn generated(r: &mut Rng) -> String {
    let mut out = String::new();
    let os_names = portsim::os::Os::names();
    let allocators = portsim::alloc::names();
    {
        let mut t = Table {
            r: &mut *r,
            out: &mut out,
        };
        let keep = if t.r.edgy() { 90 } else { 100 };
        t.key("name", keep, text);
        t.key("description", 30, text);
        t.key("seed", 50, |r| {
            int(r, &["1", "7", "42", "9223372036854775807", "0"])
        });
        t.key("duration", 92, |r| {
            if r.chance(3, 4) {
                toml_str(r.pick(MODEST_DURATIONS))
            } else {
                duration(r)
            }
        });
        t.key("max_connections", 40, |r| {
            int(r, &["1", "10", "1000", "50000", "200000", "200001"])
        });
    }
    let nats = NatPlan::draw(r);
    if nats.is_some() || r.chance(9, 10) {
        out.push_str("[host]\n");
        let mut t = Table {
            r: &mut *r,
            out: &mut out,
        };
        t.key("os", 70, |r| {
            names(r, &os_names, &["Linux", "bsd", "", "linux "])
        });
        t.key("allocator", 60, |r| {
            names(r, &allocators, &["random", "LINUX", "rfc6056"])
        });
        t.key("port_range", 80, port_range);
        t.key("reserved_ports", 20, reserved);
        t.key("time_wait", 60, duration);
        t.key("tw_reuse", 30, |r| r.pick(&["true", "false"]).to_string());
        t.key("tw_reuse_delay", 20, duration);
        t.key("max_tw_buckets", 20, |r| {
            int(r, &["0", "1", "10", "1000", "262144"])
        });
        t.key("addresses", 30, addresses);
        t.key("share_across_destinations", 25, |r| {
            r.pick(&["true", "false"]).to_string()
        });
        t.key("rfc6056_2_tries", 15, |r| int(r, &["1", "2", "10", "100"]));
        t.key("rfc6056_5_increment", 15, |r| {
            int(r, &["1", "2", "500", "70000"])
        });
        match &nats {
            Some(plan) => t.key("via", 97, |r| plan.host_via(r)),
            // A via with no [[nat]] table.
            None => t.key("via", 1, |r| broken_via(r, &[])),
        }
    }
    let dests = match r.below(20) {
        0 if r.edgy() => 0,
        1 => 2 + r.below(60),
        2..=4 => 2 + r.below(4),
        _ => 1,
    };
    for _ in 0..dests {
        destination(r, &mut out);
    }
    if !r.edgy() || r.chance(9, 10) {
        // The client model only in files that run for a modest duration
        // and have no max_connections: the size guard caps a client run's
        // work at max_connections, but a run whose connections are reused
        // makes requests (and, without a duration, runs) past it; and a
        // closed loop whose requests fail at once sends one a millisecond
        // per user, more than the guard counts (defects of the engine,
        // open).
        let modest = out
            .lines()
            .find_map(|l| l.strip_prefix("duration = "))
            .is_some_and(|d| MODEST_DURATIONS.iter().any(|m| toml_str(m) == d))
            && !out.lines().any(|l| l.starts_with("max_connections"));
        let client = modest && r.chance(1, 4);
        // A closed loop has no rate (but now and then one, to be refused).
        let closed = client && r.chance(1, 2);
        let rate_too = !closed || (r.edgy() && r.chance(1, 4));
        out.push_str("[traffic]\n");
        let mut t = Table {
            r: &mut *r,
            out: &mut out,
        };
        if rate_too {
            t.key("arrivals", 50, |r| {
                names(r, &["poisson", "constant"], &["uniform", ""])
            });
        }
        let profile = if rate_too { t.r.below(10) } else { 10 };
        t.key(
            "rate",
            match profile {
                0..=7 => 95,
                8 | 9 => 30,
                _ => 0,
            },
            |r| float(r, RATES),
        );
        if profile == 8 {
            t.key("schedule", 95, schedule);
        }
        if profile == 9 {
            t.key("ramp", 95, ramp);
        }
        if t.r.chance(1, 50) {
            t.key("schedule", 100, schedule);
            t.key("ramp", 100, ramp);
        }
        t.key("hold", 95, hold);
        t.key("close", 60, |r| {
            names(r, &["client", "server", "reset"], &["both", "Client"])
        });
        t.key("bind", 40, |r| {
            names(r, &["connect", "bind", "bind-no-port"], &["bind_no_port"])
        });
        t.key("pick", 30, |r| {
            names(r, &["weighted", "round-robin"], &["random"])
        });
        t.key("source", 30, |r| {
            names(r, &["weighted", "round-robin"], &["roundrobin"])
        });
        t.key("retry", 20, retry);
        t.key("requests_per_connection", 25, |r| {
            int(r, &["1", "2", "3", "10", "100", "1000"])
        });
        if client {
            t.key("pool", 70, pool);
            if closed {
                t.key("concurrency", 95, users);
            }
            t.key("think", if closed { 60 } else { 2 }, hold);
            t.key("streams_per_connection", 25, |r| {
                int(r, &["1", "2", "8", "100"])
            });
            t.key("timeout", 25, duration);
        }
    }
    if let Some(plan) = &nats {
        plan.write(r, &mut out);
    }
    if r.chance(1, 5) {
        out.push_str("[output]\n");
        let mut t = Table {
            r: &mut *r,
            out: &mut out,
        };
        t.key("bin", 90, duration);
    }
    if r.chance(1, 8) {
        out.push_str("[sweep]\n");
        let mut t = Table {
            r: &mut *r,
            out: &mut out,
        };
        t.key("vary", 70, vary);
        t.key("seeds", 40, |r| int(r, &["1", "5", "10000", "10001"]));
        t.key("capacity", 40, |r| {
            toml_str(r.pick(&["traffic.rate", "", " ", "host.time_wait=1s..5s"]))
        });
        t.key("target", 40, |r| {
            toml_str(r.pick(&[
                "failure_ratio<=1e-4",
                "peak_in_use<1000",
                "failure_ratio",
                "p99<1",
                "failure_ratio<=nan",
                "failure_ratio<=x",
                "",
            ]))
        });
    }
    out
}

// ---------------------------------------------------------------------------
// Mutations of the shipped scenarios.

/// The shipped scenarios, each also with a `max_connections` cap so that
/// mutants of the larger ones still run under the event limit.
fn corpus() -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("the scenarios directory")
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).expect("a shipped scenario");
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        if !text.contains("max_connections") {
            let (first, rest) = text.split_once('\n').unwrap_or((&text, ""));
            let capped = format!("{first}\nmax_connections = 20000\n{rest}");
            out.push((format!("{name} (capped)"), capped.into_bytes()));
        }
        out.push((name, text.into_bytes()));
    }
    out
}

const INTERESTING: &[u8] = b"\"'[]{}=.,-+#\n\r\t\\ 0159eE_:x\x00\x1b\x7f\xff\xc3";

fn mutate(r: &mut Rng, data: &mut Vec<u8>, corpus: &[(String, Vec<u8>)]) {
    let pos = |r: &mut Rng, len: usize| r.below(len as u64 + 1) as usize;
    match r.below(12) {
        11 => break_chain(r, data),
        0 if !data.is_empty() => {
            let i = pos(r, data.len() - 1);
            data[i] ^= 1 << r.below(8);
        }
        1 => {
            let i = pos(r, data.len());
            let b = if r.chance(1, 2) {
                *r.pick(INTERESTING)
            } else {
                r.below(256) as u8
            };
            data.insert(i, b);
        }
        2 if !data.is_empty() => {
            let i = pos(r, data.len() - 1);
            let n = (1 + r.below(8) as usize).min(data.len() - i);
            data.drain(i..i + n);
        }
        3 | 4 => {
            // Duplicate, delete or swap whole lines.
            let mut lines: Vec<Vec<u8>> = data.split(|b| *b == b'\n').map(<[u8]>::to_vec).collect();
            let i = r.below(lines.len() as u64) as usize;
            let j = r.below(lines.len() as u64) as usize;
            match r.below(3) {
                0 => {
                    let l = lines[i].clone();
                    lines.insert(j, l);
                }
                1 => {
                    lines.remove(i);
                }
                _ => lines.swap(i, j),
            }
            *data = lines.join(&b'\n');
        }
        5 => {
            let n = pos(r, data.len());
            data.truncate(n);
        }
        6 => {
            let other = &r.pick(corpus).1;
            let a = pos(r, data.len());
            let b = pos(r, other.len());
            data.truncate(a);
            data.extend_from_slice(&other[b..]);
        }
        _ => {
            // Swap the value of a `key = value` line for a grammar value.
            let text = String::from_utf8_lossy(data).to_string();
            let lines: Vec<&str> = text.lines().collect();
            let candidates: Vec<usize> = (0..lines.len())
                .filter(|i| lines[*i].contains(" = ") && !lines[*i].trim_start().starts_with('#'))
                .collect();
            if candidates.is_empty() {
                return;
            }
            let i = *r.pick(&candidates);
            let key = lines[i].split(" = ").next().unwrap_or("");
            let value = match r.below(8) {
                0 => duration(r),
                1 => float(r, RATES),
                2 => int(r, &["0", "1", "65535"]),
                3 => text_or_name(r),
                4 => wrong_type(r),
                5 => hold(r),
                6 => port_range(r),
                _ => addresses(r),
            };
            let mut out: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
            out[i] = format!("{key} = {value}");
            *data = (out.join("\n") + "\n").into_bytes();
        }
    }
}

/// Break or bend the chain of NATs: a `via` to another table (a loop, a
/// table left off the path), to a name no table has, or none; a table
/// copied (its name twice) or added off the path; `host.via` added.
fn break_chain(r: &mut Rng, data: &mut Vec<u8>) {
    let text = String::from_utf8_lossy(data).to_string();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let value = |l: &str, key: &str| -> Option<String> {
        let v = l
            .trim_start()
            .strip_prefix(key)?
            .trim_start()
            .strip_prefix('=')?;
        Some(v.split('#').next().unwrap_or("").trim().to_string())
    };
    let mut names: Vec<String> = lines.iter().filter_map(|l| value(l, "name")).collect();
    names.push(toml_str("nodee"));
    let vias: Vec<usize> = (0..lines.len())
        .filter(|&i| value(&lines[i], "via").is_some())
        .collect();
    let nat_at: Vec<usize> = (0..lines.len())
        .filter(|&i| lines[i].trim() == "[[nat]]")
        .collect();
    match r.below(5) {
        0 | 1 if !vias.is_empty() => {
            let i = *r.pick(&vias);
            if r.chance(1, 4) {
                lines.remove(i);
            } else {
                lines[i] = format!("via = {}", r.pick(&names));
            }
        }
        2 if !nat_at.is_empty() => {
            // A table again, at the end: its name twice.
            let from = *r.pick(&nat_at);
            let to = (from + 1..lines.len())
                .find(|&j| lines[j].trim_start().starts_with('['))
                .unwrap_or(lines.len());
            let block: Vec<String> = lines[from..to].to_vec();
            lines.extend(block);
        }
        3 => {
            let via = r.pick(&names).clone();
            match lines.iter().position(|l| l.trim() == "[host]") {
                Some(h) => lines.insert(h + 1, format!("via = {via}")),
                None => lines.push(format!("[host]\nvia = {via}")),
            }
        }
        _ => {
            // A table no via reaches, or one that leads into the path.
            lines.push("[[nat]]".into());
            lines.push(format!(
                "name = {}",
                toml_str(r.pick(&["spare", "node", ""]))
            ));
            lines.push("type = \"linux\"".into());
            if r.chance(1, 2) {
                lines.push(format!("via = {}", r.pick(&names)));
            }
        }
    }
    *data = (lines.join("\n") + "\n").into_bytes();
}

fn text_or_name(r: &mut Rng) -> String {
    if r.chance(1, 2) {
        text(r)
    } else {
        toml_str(r.pick(&["linux", "bind", "client", "round-robin", "constant"]))
    }
}

/// Case `index` of stream `seed`: its bytes and where they come from.
fn case(seed: u64, index: u64, corpus: &[(String, Vec<u8>)]) -> (String, Vec<u8>) {
    let mut r = Rng::for_case(seed, index);
    match r.below(10) {
        0..=5 => ("generated".into(), generated(&mut r).into_bytes()),
        6 => {
            let mut data = generated(&mut r).into_bytes();
            for _ in 0..1 + r.below(3) {
                mutate(&mut r, &mut data, corpus);
            }
            ("generated, mutated".into(), data)
        }
        _ => {
            let (name, base) = r.pick(corpus);
            let mut data = base.clone();
            let n = if r.chance(1, 2) { 1 } else { 2 + r.below(4) };
            for _ in 0..n {
                mutate(&mut r, &mut data, corpus);
            }
            (format!("mutated {name}"), data)
        }
    }
}

// ---------------------------------------------------------------------------
// Checks.

/// Something wrong with one case: `key` groups findings of one kind.
#[derive(Debug, Clone)]
struct Finding {
    key: String,
    detail: String,
}

fn finding(key: impl Into<String>, detail: impl Into<String>) -> Finding {
    Finding {
        key: key.into(),
        detail: detail.into(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Outcome {
    /// Refused by the loader.
    Invalid,
    /// Loaded, refused by the size guard.
    TooBig,
    /// Loaded and run.
    Ran,
    /// Not run: a known defect's shape.
    KnownShape,
    /// Something went wrong (see the findings).
    Broken,
}

struct Verdict {
    outcome: Outcome,
    findings: Vec<Finding>,
    /// The scenario's shape matched a known defect: skip the binary too.
    skipped: Option<&'static str>,
    /// Whether the default size guard of the binary (`check`) accepts it.
    check_ok: bool,
    /// The key a refusal names (or "not valid TOML"), for the statistics.
    refused: Option<String>,
    /// Of a run: the NATs along its path, and whether one dropped a
    /// connection (for the statistics).
    nats: usize,
    nat_dropped: bool,
    elapsed: Duration,
}

thread_local! {
    /// The last panic of this thread: (message, location).
    static LAST_PANIC: RefCell<Option<(String, String)>> = const { RefCell::new(None) };
}

/// Panics of the worker threads are recorded, not printed; others go to the
/// hook that was there before.
fn install_panic_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if std::thread::current().name() == Some(WORKER) {
                let msg = info
                    .payload()
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| info.payload().downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "(non-text panic)".into());
                let loc = info
                    .location()
                    .map_or("(unknown)".into(), |l| format!("{}:{}", l.file(), l.line()));
                LAST_PANIC.with(|p| *p.borrow_mut() = Some((msg, loc)));
            } else {
                previous(info);
            }
        }));
    });
}

/// Run `f`, turning a panic into its (message, location); the location is
/// known when the panic happened on a worker thread (see the hook above).
fn guarded<T>(f: impl FnOnce() -> T) -> Result<T, (String, String)> {
    LAST_PANIC.with(|p| p.borrow_mut().take());
    catch_unwind(AssertUnwindSafe(f)).map_err(|_| {
        LAST_PANIC
            .with(|p| p.borrow_mut().take())
            .unwrap_or_else(|| ("(no message)".into(), "(unknown)".into()))
    })
}

/// An error the user sees: one line, bounded, no control characters, naming
/// where the problem is.
fn check_message(msg: &str, names: &str, out: &mut Vec<Finding>) {
    let shown: String = msg.chars().take(300).collect();
    let mut bad = |key: &str| out.push(finding(key, format!("{shown:?}")));
    if msg.trim().is_empty() {
        bad("error message is empty");
    }
    if msg.contains('\n') || msg.contains('\r') {
        bad("error message spans several lines");
    }
    if msg.chars().count() > MAX_MESSAGE {
        bad("error message is longer than MAX_MESSAGE characters");
    }
    if msg.chars().any(|c| c.is_control() && c != '\t') {
        bad("error message contains control characters (terminal escapes)");
    }
    if !msg.starts_with(names) {
        bad("error message does not start with the file it is about");
    }
}

/// JSON paths (array indices as `[]`) that may be null: the optional fields.
const NULLABLE: &[&str] = &[
    "first_failure",
    "reuse_interval_s.min",
    "reuse_interval_s.p50",
    "reuse_interval_s.p90",
    "reuse_interval_s.p99",
    "reuse_interval_s.max",
    "reuse_interval_s.mean",
    "analytic.erlang_b_caveat",
    "scenario.duration_s",
    "scenario.max_connections",
    "scenario.replay",
    "fixes_cost",
    "ports.busiest_pool",
    "fixes[].first_failure",
    "nats[].first_failure_s",
    "nats[].cloud",
    "nats[].cloud.per_destination_limit",
    "nats[].cloud.formula.hosts_served",
    "nats[].cloud.formula.per_destination",
    "nats[].cloud.formula.ports_per_host",
    // The client sections are null without a client model, and a pool's
    // timers are null when not set.
    "requests",
    "connections",
    "pool_wait_s",
    "connections.pool.idle_timeout_s",
    "connections.pool.max_lifetime_s",
    "connections.pool.wait_limit_s",
];

/// serde_json writes a NaN or an infinity as `null`: any null outside the
/// optional fields is a non-finite float.
fn json_nulls(v: &serde_json::Value, path: &str, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Null if !NULLABLE.contains(&path) => out.push(path.to_string()),
        serde_json::Value::Array(a) => a
            .iter()
            .for_each(|x| json_nulls(x, &format!("{path}[]"), out)),
        serde_json::Value::Object(o) => {
            for (k, x) in o {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                json_nulls(x, &p, out);
            }
        }
        _ => {}
    }
}

/// Invariants of a finished run, each with the reason it must hold.
fn check_report(sc: &Scenario, r: &Report, out: &mut Vec<Finding>) {
    let mut inv = |ok: bool, key: &str, detail: String| {
        if !ok {
            out.push(finding(format!("invariant: {key}"), detail));
        }
    };
    // Every attempt gets a port, fails, or is still connecting (a NAT
    // dropped its SYN and it had not given up by the end).
    inv(
        r.established + r.failures + r.connecting_at_end == r.attempts,
        "established + failures == attempts",
        format!("{} + {} != {}", r.established, r.failures, r.attempts),
    );
    inv(
        (0.0..=1.0).contains(&r.failure_ratio),
        "0 <= failure_ratio <= 1",
        format!("{}", r.failure_ratio),
    );
    inv(
        r.first_failure.is_some() == (r.failures > 0)
            && r.first_failure
                .as_ref()
                .is_none_or(|f| f.attempt <= r.attempts),
        "first_failure is set exactly when an attempt failed, within the attempts",
        format!(
            "{:?} with {} failures",
            r.first_failure.as_ref().map(|f| f.attempt),
            r.failures
        ),
    );
    // A failure is retried or abandoned (or its retry is still pending at
    // the end). With a client model a request also fails without a failed
    // connect (at the pool, at its timeout): `check_client` counts those.
    inv(
        r.retries + r.abandoned <= r.failures || sc.traffic.client.is_some(),
        "retries + abandoned <= failures",
        format!("{} + {} > {}", r.retries, r.abandoned, r.failures),
    );
    if let Some(m) = sc.max_connections {
        inv(
            r.attempts <= m,
            "attempts <= max_connections",
            format!("{} > {m}", r.attempts),
        );
    }
    if let Some(d) = r.scenario.duration_s {
        inv(
            r.simulated_s <= d,
            "simulated_s <= duration",
            format!("{} > {d}", r.simulated_s),
        );
    }
    let p = &r.ports;
    inv(
        p.usable == sc.host.usable_ports() && p.usable <= p.range_size,
        "ports.usable is the range less reserved ports",
        format!("{} of {}", p.usable, p.range_size),
    );
    // Ports are (source address, port) pairs; connections and TIME_WAIT
    // entries are 4-tuples, of which each pair has one per destination
    // unless ports are exclusive.
    // A fleet's figures are over all its hosts: each group's hosts add
    // theirs.
    let per_group = |s: &portsim::Scenario| {
        let pairs = u64::from(s.host.usable_ports()) * s.source_addresses();
        let tuples = if s.exclusive_ports() {
            pairs
        } else {
            pairs * s.destinations.len() as u64
        };
        (pairs, tuples)
    };
    let (pairs, tuples) = if sc.is_fleet() {
        (0..sc.groups.len()).fold((0, 0), |(a, b), g| {
            let (p, t) = per_group(&sc.group_scenario(g));
            let k = u64::from(sc.groups[g].count);
            (a + k * p, b + k * t)
        })
    } else {
        per_group(sc)
    };
    inv(
        u64::from(p.peak_in_use) <= pairs && u64::from(p.distinct_used) <= pairs,
        "peak_in_use and distinct_used <= usable ports x source addresses",
        format!(
            "peak {} distinct {} of {pairs}",
            p.peak_in_use, p.distinct_used
        ),
    );
    inv(
        u64::from(p.peak_open_connections) <= tuples && u64::from(p.peak_time_wait) <= tuples,
        "peak open connections and TIME_WAIT entries <= 4-tuples available",
        format!(
            "open {} time_wait {} of {tuples}",
            p.peak_open_connections, p.peak_time_wait
        ),
    );
    inv(
        u64::from(p.peak_open_connections) <= r.established
            && u64::from(p.open_at_end) + u64::from(p.time_wait_at_end) <= r.established
            && p.open_at_end <= p.peak_open_connections
            && p.time_wait_at_end <= p.peak_time_wait,
        "open and TIME_WAIT counts bounded by connections established and by their peaks",
        format!(
            "established {} peak open {} open at end {} peak tw {} tw at end {}",
            r.established,
            p.peak_open_connections,
            p.open_at_end,
            p.peak_time_wait,
            p.time_wait_at_end
        ),
    );
    // A close enters TIME_WAIT only while fewer than max_tw_buckets are held.
    inv(
        u64::from(p.peak_time_wait) <= sc.host.max_tw_buckets,
        "peak_time_wait <= max_tw_buckets",
        format!("{} > {}", p.peak_time_wait, sc.host.max_tw_buckets),
    );
    // A pair is held by a connection or a TIME_WAIT entry, or for no time
    // at all by an attempt a NAT refused (the host takes its port, then lets
    // it go at once: one such pair at a time).
    // A connect whose SYN a NAT dropped holds its port while it retries:
    // then the bound is the attempts.
    let refused_at_nat = u64::from(r.nats.iter().any(|n| n.failures > 0));
    let retrying = if r.nats.iter().any(|n| n.syns_dropped > 0) {
        r.attempts
    } else {
        0
    };
    inv(
        u64::from(p.peak_in_use)
            <= u64::from(p.peak_open_connections)
                + u64::from(p.peak_time_wait)
                + refused_at_nat
                + retrying,
        "peak_in_use <= peak open + peak TIME_WAIT (+ 1 for an attempt a NAT refused)",
        format!(
            "{} > {} + {} + {refused_at_nat}",
            p.peak_in_use, p.peak_open_connections, p.peak_time_wait
        ),
    );
    // A time average never exceeds the peak.
    let slack = |peak: u32| f64::from(peak) * (1.0 + 1e-9) + 1e-9;
    inv(
        p.mean_in_use >= 0.0
            && p.mean_in_use <= slack(p.peak_in_use)
            && p.mean_time_wait >= 0.0
            && p.mean_time_wait <= slack(p.peak_time_wait),
        "0 <= means <= peaks",
        format!(
            "in use {} (peak {}), time_wait {} (peak {})",
            p.mean_in_use, p.peak_in_use, p.mean_time_wait, p.peak_time_wait
        ),
    );
    // A fleet's groups may name destinations of their own: its rows are
    // every distinct one.
    let dests = sc.all_destinations().len();
    if dests <= portsim::sim::MAX_DEST_STATS {
        let sum = |f: fn(&portsim::report::DestinationReport) -> u64| -> u64 {
            r.destinations.iter().map(f).sum()
        };
        inv(
            r.destinations.len() == dests
                && sum(|d| d.attempts) == r.attempts
                && sum(|d| d.established) == r.established
                && sum(|d| d.failures) == r.failures,
            "per-destination counts add up to the totals",
            format!("{} destinations", r.destinations.len()),
        );
    }
    let bins = |f: fn(&portsim::sim::record::Bin) -> u64| -> u64 { r.bins.iter().map(f).sum() };
    inv(
        bins(|b| b.attempts) == r.attempts
            && bins(|b| b.established) == r.established
            && bins(|b| b.failures) == r.failures
            && r.timeseries.bins == r.bins.len(),
        "time-series bins add up to the totals",
        format!("{} bins", r.bins.len()),
    );
    check_nats(sc, r, out);
    check_client(sc, r, out);
    let mut inv = |ok: bool, key: &str, detail: String| {
        if !ok {
            out.push(finding(format!("invariant: {key}"), detail));
        }
    };
    let q = &r.reuse_interval_s;
    let order = [q.min, q.p50, q.p90, q.p99, q.max];
    // A host port is taken once per connection established, and once per
    // attempt a NAT further along refused (it is let go at once).
    let refused_beyond: u64 = r.nats.iter().map(|n| n.failures).sum();
    inv(
        q.count <= r.established + refused_beyond
            && order.iter().all(|v| v.is_some() == (q.count > 0))
            && order.windows(2).all(|w| w[0] <= w[1]),
        "reuse interval quantiles ordered, count <= host ports taken",
        format!("{q:?}"),
    );
    for row in r.series() {
        let ok = row.in_use >= -1e-9
            && row.in_use <= slack(row.in_use_peak)
            && row.time_wait >= -1e-9
            && row.open >= -1e-9;
        if !ok {
            inv(
                false,
                "time-series averages within 0..peak",
                format!("{row:?}"),
            );
            break;
        }
    }
    let a = &r.analytic;
    inv(
        (0.0..=1.0).contains(&a.erlang_b_failure_ratio)
            && a.offered_load >= 0.0
            && a.offered_load_peak >= 0.0,
        "analytic figures: ratio in 0..1, loads >= 0",
        format!("{a:?}"),
    );
    let json = r.to_json();
    match serde_json::from_str::<serde_json::Value>(&json) {
        Ok(v) => {
            let mut nulls = Vec::new();
            json_nulls(&v, "", &mut nulls);
            for path in nulls {
                inv(
                    false,
                    &format!("report.json {path} is a finite number (not null)"),
                    String::new(),
                );
            }
        }
        Err(e) => inv(false, "report.json parses", e.to_string()),
    }
    let summary = portsim::report::summary::render(r);
    inv(
        !summary
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\t'),
        "summary has no control characters (terminal escapes)",
        format!("{:?}", summary.chars().take(200).collect::<String>()),
    );
    for e in portsim::export::report_files() {
        let _ = e.render(r);
    }
}

/// Invariants of the `nats` rows: one per NAT of the path, in its order;
/// what reaches a NAT is what the one before let through; failures by
/// cause add up; ports and mappings within the NAT's pool and table.
/// The client sections: present exactly with a client model, and their
/// books balanced.
fn check_client(sc: &Scenario, r: &Report, out: &mut Vec<Finding>) {
    let mut inv = |ok: bool, key: &str, detail: String| {
        if !ok {
            out.push(finding(format!("invariant: client: {key}"), detail));
        }
    };
    let model = sc.traffic.client.is_some();
    inv(
        r.requests.is_some() == model
            && r.connections.is_some() == model
            && r.pool_wait_s.is_some() == model,
        "requests, connections and pool_wait_s present exactly with a client model",
        format!("client model {model}"),
    );
    let (Some(q), Some(c), Some(w)) = (&r.requests, &r.connections, &r.pool_wait_s) else {
        return;
    };
    // A request started completes, fails for good, or is in flight.
    inv(
        q.completed + q.failed + q.in_flight_at_end == q.total,
        "completed + failed + in_flight_at_end == total",
        format!(
            "{} + {} + {} != {}",
            q.completed, q.failed, q.in_flight_at_end, q.total
        ),
    );
    let f = &q.failed_by;
    inv(
        f.connect + f.pool + f.timeout == q.failed,
        "failed_by adds up to failed",
        format!("{:?} vs {}", (f.connect, f.pool, f.timeout), q.failed),
    );
    // The run's retries and abandoned requests are the requests'.
    inv(
        r.retries == q.retries && r.abandoned == q.failed && f.connect <= r.failures,
        "retries == requests.retries, abandoned == requests.failed, failed_by.connect <= failures",
        format!(
            "{} vs {}, {} vs {}, {} vs {}",
            r.retries, q.retries, r.abandoned, q.failed, f.connect, r.failures
        ),
    );
    // A connection opened is closed for one reason or still open.
    let b = &c.closed_by;
    let closed = b.idle_overflow
        + b.idle_timeout
        + b.lifetime
        + b.timeout
        + b.request_limit
        + b.server
        + b.reset;
    inv(
        c.opened >= c.open_at_end && c.opened - c.open_at_end == closed,
        "opened - open_at_end == the sum of closed_by",
        format!("{} - {} vs {closed}", c.opened, c.open_at_end),
    );
    inv(
        c.idle_at_end <= c.open_at_end,
        "idle_at_end <= open_at_end",
        format!("{} > {}", c.idle_at_end, c.open_at_end),
    );
    inv(
        (0.0..=1.0).contains(&c.reuse_ratio),
        "0 <= reuse_ratio <= 1",
        format!("{}", c.reuse_ratio),
    );
    // Only a request that got a connection after waiting counts.
    inv(
        q.waited <= q.total,
        "waited <= total",
        format!("{} > {}", q.waited, q.total),
    );
    inv(
        q.in_flight_at_end <= q.peak_in_flight
            && q.mean_in_flight >= 0.0
            && q.mean_in_flight <= q.peak_in_flight as f64 * (1.0 + 1e-9) + 1e-9,
        "in flight: at the end and the mean within the peak",
        format!(
            "end {} mean {} peak {}",
            q.in_flight_at_end, q.mean_in_flight, q.peak_in_flight
        ),
    );
    let ordered = |x: &portsim::report::client::Quantiles| x.p50 <= x.p99 && x.p99 <= x.max;
    inv(
        ordered(w) && ordered(&q.response_s),
        "quantiles ordered: p50 <= p99 <= max",
        format!("{w:?} {:?}", q.response_s),
    );
}

fn check_nats(sc: &Scenario, r: &Report, out: &mut Vec<Finding>) {
    let mut inv = |ok: bool, key: &str, detail: String| {
        if !ok {
            out.push(finding(format!("invariant: nats: {key}"), detail));
        }
    };
    // A fleet's groups may each start on a NAT of their own: its rows are
    // every NAT, in file order.
    let path = if sc.is_fleet() {
        sc.nats.iter().collect()
    } else {
        sc.nat_path()
    };
    let names: Vec<&str> = path.iter().map(|n| n.name.as_str()).collect();
    let rows: Vec<&str> = r.nats.iter().map(|n| n.name.as_str()).collect();
    inv(
        names == rows,
        "one row per NAT of host.via's path (a fleet's: every NAT), in order",
        format!("path {names:?}, rows {rows:?}"),
    );
    let mut reaching = None;
    for (k, (n, nat)) in r.nats.iter().zip(&path).enumerate() {
        let at = |what: &str| format!("nat {k} ({:?}): {what}", n.name);
        let c = &n.failures_by_cause;
        let causes = c.no_port
            + c.table_full
            + c.no_block
            + c.per_destination
            + c.endpoint_independence_conflict
            + c.allocation_in_flight;
        inv(
            n.failures == causes,
            "failures == the sum of failures_by_cause",
            at(&format!("{} != {causes}", n.failures)),
        );
        inv(
            n.failures <= n.attempts,
            "failures <= attempts",
            at(&format!("{} > {}", n.failures, n.attempts)),
        );
        // The first NAT sees the attempts that got a host port; each next
        // one those the NAT before let through.
        // (A fleet's NATs are listed in file order, not along one path.)
        match reaching {
            _ if sc.is_fleet() => {}
            None => inv(
                n.attempts <= r.attempts,
                "the first NAT's attempts <= attempts",
                at(&format!("{} > {}", n.attempts, r.attempts)),
            ),
            // Less those still retrying at the end, which got no further.
            Some(through) => inv(
                n.attempts <= through && n.attempts + r.connecting_at_end >= through,
                "attempts of NAT k+1 == attempts - failures of NAT k",
                at(&format!("{} != {through}", n.attempts)),
            ),
        }
        reaching = Some(n.attempts.saturating_sub(n.failures));
        // A NAT drops a connect's last SYN at most once.
        inv(
            n.first_failure_s.is_some() == (n.syns_dropped > 0)
                && n.failures <= n.syns_dropped
                && n.first_failure_s
                    .is_none_or(|t| t >= 0.0 && t <= r.simulated_s * (1.0 + 1e-12)),
            "first_failure_s set exactly when the NAT dropped one, within the run",
            at(&format!(
                "{:?} with {} failures",
                n.first_failure_s, n.failures
            )),
        );
        inv(
            n.addresses as usize == nat.addresses.len() && n.ports_per_address == nat.range_size(),
            "addresses and ports_per_address as in the scenario",
            at(&format!(
                "{} x {} for {} x {}",
                n.addresses,
                n.ports_per_address,
                nat.addresses.len(),
                nat.range_size()
            )),
        );
        inv(
            n.peak_ports_per_address <= n.ports_per_address,
            "peak_ports_per_address <= ports_per_address",
            at(&format!(
                "{} > {}",
                n.peak_ports_per_address, n.ports_per_address
            )),
        );
        inv(
            n.distinct_ports <= u64::from(n.addresses) * u64::from(n.ports_per_address),
            "distinct_ports <= addresses x ports_per_address",
            at(&format!(
                "{} > {} x {}",
                n.distinct_ports, n.addresses, n.ports_per_address
            )),
        );
        inv(
            n.peak_mappings <= nat.max_entries,
            "peak_mappings <= max_entries",
            at(&format!("{} > {}", n.peak_mappings, nat.max_entries)),
        );
        inv(
            n.mean_mappings >= 0.0
                && n.mean_mappings <= n.peak_mappings as f64 * (1.0 + 1e-9) + 1e-9,
            "0 <= mean_mappings <= peak_mappings",
            at(&format!("{} of {}", n.mean_mappings, n.peak_mappings)),
        );
        inv(
            n.ports_preserved <= n.attempts.saturating_sub(n.failures),
            "ports_preserved <= attempts - failures",
            at(&format!(
                "{} > {} - {}",
                n.ports_preserved, n.attempts, n.failures
            )),
        );
    }
    // A NAT's refusal fails the attempt.
    let dropped: u64 = r.nats.iter().map(|n| n.failures).sum();
    inv(
        dropped <= r.failures,
        "the sum of NAT failures <= failures",
        format!("{dropped} > {}", r.failures),
    );
}

/// Fixes of a failing case: each within the run's limits, and each one's
/// figures those of a plain run with its `--set` changes.
fn check_fixes(text: &str, sc: &Scenario, r: &Report, out: &mut Vec<Finding>) {
    let src = portsim::fixes::Source {
        text,
        path: Path::new("case.toml"),
        overrides: &[],
        seed: sc.seed,
        max_events: LIMIT,
        max_memory: MAX_MEMORY,
        target: None,
        all: false,
    };
    let found = portsim::fixes::compute(&src, sc, r);
    for f in found.list.iter().take(2) {
        let sets: Result<Vec<portsim::scenario::Override>, String> =
            f.change.iter().map(|c| c.parse()).collect();
        let rerun = sets
            .ok()
            .and_then(|sets| portsim::scenario::load_str(text, Path::new("case.toml"), &sets).ok());
        match rerun {
            Some(mut s2) => {
                s2.seed = sc.seed;
                let again = portsim::run(&s2);
                if (again.failures, again.attempts) != (f.failures, f.attempts) {
                    out.push(finding(
                        "invariant: a fix reruns to its own figures".to_string(),
                        format!("{:?}", f.change),
                    ));
                }
            }
            None => out.push(finding(
                "invariant: a fix's --set changes load".to_string(),
                format!("{:?}", f.change),
            )),
        }
    }
}

/// Reset the process's peak resident size (Linux; elsewhere a no-op) and
/// return the resident size it starts from, in KiB. The allocator keeps
/// some of what earlier cases freed, so that is not zero: a case is charged
/// only what it adds to it.
fn reset_peak_rss() -> u64 {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    status_kb("VmRSS:").unwrap_or(0)
}

/// The process's peak resident size since the last reset, in KiB.
fn peak_rss_kb() -> Option<u64> {
    status_kb("VmHWM:")
}

fn status_kb(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Everything in-process for one input.
fn check_bytes(bytes: &[u8], strict: bool) -> Verdict {
    let rss_before = reset_peak_rss();
    let start = Instant::now();
    let text = String::from_utf8_lossy(bytes);
    let mut findings = Vec::new();
    let mut outcome = Outcome::Invalid;
    let mut skipped = None;
    let mut check_ok = false;
    let mut refused = None;
    let (mut nats, mut nat_dropped) = (0, false);
    let stage = std::cell::Cell::new("load");
    let res = guarded(|| {
        let sc = match portsim::scenario::load_str(&text, Path::new("case.toml"), &[]) {
            Ok(sc) => sc,
            Err(e) => {
                let msg = e.to_string();
                check_message(&msg, "case.toml", &mut findings);
                refused = msg.split(": ").nth(1).map(|k| k.chars().take(40).collect());
                return;
            }
        };
        stage.set("size guard");
        check_ok = portsim::check_size(&sc, "case", portsim::DEFAULT_MAX_EVENTS).is_ok();
        // A memory limit well under MAX_RSS_KB: a case the estimate lets
        // through and that still goes over is the estimate's fault.
        let limits = portsim::Limits {
            max_events: LIMIT,
            max_memory: MAX_MEMORY,
        };
        if let Err(e) = portsim::limits::check(&sc, "case", limits, false) {
            check_message(&e.to_string(), "case", &mut findings);
            outcome = Outcome::TooBig;
            return;
        }
        if let Some(d) = known_shape(&sc, strict) {
            skipped = Some(d);
            outcome = Outcome::KnownShape;
            return;
        }
        stage.set("run");
        let report = portsim::run(&sc);
        stage.set("report");
        check_report(&sc, &report, &mut findings);
        nats = report.nats.len();
        nat_dropped = report.nats.iter().any(|n| n.failures > 0);
        // Computed fixes rerun the case several times: one failing case in
        // eight (by its bytes, so a replay does the same) also checks them.
        if report.failures > 0 && portsim::util::mix64(bytes.len() as u64) % 8 == 0 {
            stage.set("fixes");
            check_fixes(&text, &sc, &report, &mut findings);
        }
        outcome = Outcome::Ran;
    });
    if let Err((msg, loc)) = res {
        let msg: String = msg.chars().take(300).collect();
        findings.push(finding(format!("panic in {} at {loc}", stage.get()), msg));
    }
    if let Some(kb) = peak_rss_kb().filter(|kb| kb.saturating_sub(rss_before) > MAX_RSS_KB) {
        findings.push(finding(
            "runaway memory: peak resident size above MAX_RSS_KB",
            format!(
                "{} MiB more than the {} MiB resident before the case, at the {} stage",
                (kb - rss_before) >> 10,
                rss_before >> 10,
                stage.get()
            ),
        ));
    }
    if !findings.is_empty() {
        outcome = Outcome::Broken;
    }
    Verdict {
        outcome,
        findings,
        skipped,
        check_ok,
        refused,
        nats,
        nat_dropped,
        elapsed: start.elapsed(),
    }
}

/// Runs cases on a worker thread so that one that never returns can be told
/// apart from a slow one.
struct Worker {
    jobs: mpsc::Sender<Vec<u8>>,
    verdicts: mpsc::Receiver<Verdict>,
    current: PathBuf,
    strict: bool,
}

impl Worker {
    fn new(current: PathBuf, strict: bool) -> Worker {
        install_panic_hook();
        let (jobs, job_rx) = mpsc::channel::<Vec<u8>>();
        let (verdict_tx, verdicts) = mpsc::channel();
        let path = current.clone();
        std::thread::Builder::new()
            .name(WORKER.into())
            .stack_size(64 << 20)
            .spawn(move || {
                for bytes in job_rx {
                    // Left behind if the process dies on this input.
                    let _ = std::fs::write(&path, &bytes);
                    if verdict_tx.send(check_bytes(&bytes, strict)).is_err() {
                        return;
                    }
                }
            })
            .expect("spawn the fuzz worker");
        Worker {
            jobs,
            verdicts,
            current,
            strict,
        }
    }

    /// The verdict on `bytes`, or `None` if the case hangs; then the stuck
    /// thread is abandoned and a fresh worker takes the next cases.
    fn check(&mut self, bytes: &[u8]) -> Option<Verdict> {
        self.jobs.send(bytes.to_vec()).expect("the worker is alive");
        let v = self.verdicts.recv_timeout(hang_limit()).ok();
        if v.is_none() {
            *self = Worker::new(self.current.clone(), self.strict);
        }
        v
    }
}

/// The first line of `portsim` stderr that names a panic location.
fn panic_location(stderr: &str) -> String {
    stderr
        .lines()
        .find_map(|l| l.split("panicked at ").nth(1))
        .map_or("(unknown)".into(), |s| s.trim_end_matches(':').to_string())
}

/// The binary on the same input: `check`, then `run` with the small limit.
fn check_cli(bytes: &[u8], v: &Verdict, dir: &Path, n: u64, out: &mut Vec<Finding>) {
    let path = dir.join(format!("cli-{n}.toml"));
    std::fs::write(&path, bytes).expect("write a case file");
    let utf8 = std::str::from_utf8(bytes).is_ok();
    let json = n % 2 == 0;
    let charts = n % 3 == 0;
    let out_dir = dir.join(format!("out-{n}"));
    let mut run_args: Vec<String> = vec![
        "run".into(),
        path.display().to_string(),
        "--max-events".into(),
        "2e5".into(),
    ];
    if json {
        run_args.push("--json".into());
    }
    if charts {
        run_args.extend([
            "--out".into(),
            out_dir.display().to_string(),
            "--charts".into(),
            "svg,html".into(),
        ]);
    }
    let loaded = matches!(
        v.outcome,
        Outcome::TooBig | Outcome::Ran | Outcome::KnownShape
    ) || (v.outcome == Outcome::Broken && v.check_ok);
    for (cmd, args) in [
        (
            "check",
            vec!["check".to_string(), path.display().to_string()],
        ),
        ("run", run_args),
    ] {
        let o = match portsim().args(&args).timeout(hang_limit()).output() {
            Ok(o) => o,
            Err(e) => {
                out.push(finding(format!("CLI {cmd}: could not run"), e.to_string()));
                continue;
            }
        };
        let stderr = String::from_utf8_lossy(&o.stderr).to_string();
        let stdout = String::from_utf8_lossy(&o.stdout).to_string();
        let code = o.status.code();
        if stderr.contains("panicked") || stderr.contains("RUST_BACKTRACE") {
            out.push(finding(
                format!("CLI {cmd}: panic at {}", panic_location(&stderr)),
                stderr.chars().take(300).collect::<String>(),
            ));
            continue;
        }
        if !matches!(code, Some(0) | Some(2)) {
            out.push(finding(
                format!("CLI {cmd}: exit code {code:?}"),
                stderr.chars().take(300).collect::<String>(),
            ));
            continue;
        }
        if code == Some(2) {
            let line = stderr.strip_suffix('\n').unwrap_or(&stderr);
            match line.strip_prefix("error: ") {
                Some(msg) => check_message(msg, &path.display().to_string(), out),
                None => out.push(finding(
                    format!("CLI {cmd}: exit 2 without an \"error: \" line"),
                    format!("{:?}", stderr.chars().take(300).collect::<String>()),
                )),
            }
            if !stdout.is_empty() {
                out.push(finding(
                    format!("CLI {cmd}: exit 2 with output on stdout"),
                    stdout.chars().take(200).collect::<String>(),
                ));
            }
        }
        if !utf8 {
            continue;
        }
        // The binary agrees with the library on what loads and what runs.
        let expected = match (cmd, v.outcome) {
            ("check", _) => {
                if loaded && v.check_ok {
                    0
                } else {
                    2
                }
            }
            (_, Outcome::Ran) => 0,
            (_, Outcome::Invalid | Outcome::TooBig) => 2,
            _ => continue,
        };
        if code != Some(expected) {
            out.push(finding(
                format!("CLI {cmd}: exit code disagrees with the library"),
                format!(
                    "exit {code:?}, library says {:?}; stderr {:?}",
                    v.outcome,
                    stderr.chars().take(200).collect::<String>()
                ),
            ));
        }
        if code == Some(0) && cmd == "run" && json {
            match serde_json::from_str::<serde_json::Value>(&stdout) {
                Ok(j) => {
                    let n = |k: &str| j[k].as_u64();
                    let a = (n("attempts"), n("established"), n("failures"));
                    let c = n("connecting_at_end").unwrap_or(u64::MAX);
                    if !matches!(a, (Some(a), Some(e), Some(f)) if e + f + c == a) {
                        out.push(finding(
                            "CLI run --json: attempts != established + failures + connecting_at_end",
                            format!("{a:?}"),
                        ));
                    }
                }
                Err(e) => out.push(finding("CLI run --json: stdout is not JSON", e.to_string())),
            }
        }
    }
    let _ = std::fs::remove_dir_all(&out_dir);
}

// ---------------------------------------------------------------------------
// The runs.

fn env_u64(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|n| *n >= 0.0)
            .map(|n| n as u64)
            .unwrap_or_else(|| panic!("{name}={v}: expected a whole number")),
        Err(_) => default,
    }
}

/// One group of findings: how often, and the first input that showed it.
struct Group {
    count: u64,
    detail: String,
    case: String,
    bytes: Vec<u8>,
}

/// Findings of a run, grouped by kind.
#[derive(Default)]
struct Findings {
    groups: BTreeMap<String, Group>,
    known: BTreeMap<&'static str, u64>,
    strict: bool,
}

impl Findings {
    fn add(&mut self, f: Finding, case: &str, bytes: &[u8]) {
        if let Some(d) = known_finding(&format!("{} {}", f.key, f.detail), self.strict) {
            *self.known.entry(d).or_default() += 1;
            return;
        }
        let g = self.groups.entry(f.key).or_insert_with(|| Group {
            count: 0,
            detail: f.detail,
            case: case.to_string(),
            bytes: bytes.to_vec(),
        });
        g.count += 1;
    }

    /// Write each group's input to `dir` and describe the groups, with a
    /// command to reproduce each.
    fn report(&self, dir: &Path, replay: impl Fn(&str) -> String) -> String {
        let mut s = String::new();
        for (i, (key, g)) in self.groups.iter().enumerate() {
            let path = dir.join(format!("finding-{i}.toml"));
            let _ = std::fs::write(&path, &g.bytes);
            let text = String::from_utf8_lossy(&g.bytes);
            let head: Vec<String> = text
                .lines()
                .take(12)
                .map(|l| l.chars().take(160).collect())
                .collect();
            s.push_str(&format!(
                "\n[{i}] {key}  ({} case(s))\n    {}\n    first: {}\n    input: {}\n    replay: {}\n    binary: cargo run -q -- run {} --max-events 2e5\n    --- first lines ---\n    {}\n",
                g.count,
                g.detail,
                g.case,
                path.display(),
                replay(&g.case),
                path.display(),
                head.join("\n    ")
            ));
        }
        s
    }
}

fn tmp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(name);
    std::fs::create_dir_all(&dir).expect("create a directory under the temporary directory");
    dir
}

/// Generated and mutated scenario files, checked in process (and a share of
/// them through the binary). `PORTSIM_FUZZ_CASES` cases (default
/// `DEFAULT_CASES`) of stream `PORTSIM_FUZZ_SEED` (default 1), from case
/// `PORTSIM_FUZZ_START` (default 0).
#[test]
fn random_scenarios() {
    let seed = env_u64("PORTSIM_FUZZ_SEED", 1);
    let cases = env_u64("PORTSIM_FUZZ_CASES", DEFAULT_CASES);
    let first = env_u64("PORTSIM_FUZZ_START", 0);
    let strict = strict_env();
    let corpus = corpus();
    let dir = tmp_dir(&format!("portsim-fuzz-{seed}"));
    let cli_dir = tempfile::tempdir().expect("a temporary directory");
    let mut worker = Worker::new(dir.join("current.toml"), strict);
    let mut findings = Findings {
        strict,
        ..Findings::default()
    };
    let mut outcomes: BTreeMap<Outcome, u64> = BTreeMap::new();
    let mut refusals: BTreeMap<String, u64> = BTreeMap::new();
    // Runs by the number of NATs on their path, and those where a NAT dropped.
    let mut nat_runs = [0u64; portsim::scenario::nat::MAX_CHAIN + 1];
    let mut nat_drops = 0;
    let mut slow: Vec<(u64, Duration, String)> = Vec::new();
    let mut cli_runs = 0;
    let started = Instant::now();
    let mut done = 0;
    for index in first..first + cases {
        let (origin, bytes) = case(seed, index, &corpus);
        let label = format!("case {index} of seed {seed} ({origin})");
        let Some(v) = worker.check(&bytes) else {
            findings.add(
                finding(
                    "hang: no answer within PORTSIM_FUZZ_HANG_SECS",
                    format!("{:?}", hang_limit()),
                ),
                &label,
                &bytes,
            );
            continue;
        };
        done += 1;
        *outcomes.entry(v.outcome).or_default() += 1;
        if let Some(d) = v.skipped {
            *findings.known.entry(d).or_default() += 1;
        }
        if let Some(k) = &v.refused {
            *refusals.entry(k.clone()).or_default() += 1;
        }
        if v.outcome == Outcome::Ran {
            nat_runs[v.nats.min(nat_runs.len() - 1)] += 1;
            nat_drops += u64::from(v.nat_dropped);
        }
        if v.elapsed > SLOW {
            slow.push((index, v.elapsed, origin.clone()));
        }
        for f in &v.findings {
            findings.add(f.clone(), &label, &bytes);
        }
        if index % CLI_EVERY == 0 && cli_runs < CLI_MAX && v.skipped.is_none() {
            let mut cli = Vec::new();
            check_cli(&bytes, &v, cli_dir.path(), index, &mut cli);
            cli_runs += 1;
            for f in cli {
                findings.add(f, &label, &bytes);
            }
        }
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "fuzz: {done} cases of seed {seed} in {secs:.1} s ({:.0} cases/s), {cli_runs} through the binary; outcomes {outcomes:?}",
        done as f64 / secs
    );
    let mut top: Vec<(&String, &u64)> = refusals.iter().collect();
    top.sort_by(|a, b| b.1.cmp(a.1));
    println!("fuzz: most refused keys: {:?}", &top[..top.len().min(12)]);
    println!(
        "fuzz: runs by NATs on the path (0..={}): {nat_runs:?}; {nat_drops} with a NAT dropping connections",
        nat_runs.len() - 1
    );
    let nat_refusals: u64 = refusals
        .iter()
        .filter(|(k, _)| k.starts_with("nat") || k.as_str() == "host.via")
        .map(|(_, n)| n)
        .sum();
    println!("fuzz: refusals naming a [[nat]] key or host.via: {nat_refusals}");
    for (d, n) in &findings.known {
        println!("fuzz: known defect {d}: {n} case(s)");
    }
    for (index, t, origin) in &slow {
        println!("fuzz: slow: case {index} ({origin}) took {t:.1?}");
    }
    if !findings.groups.is_empty() {
        let report = findings.report(&dir, |case| {
            let index = case
                .split_whitespace()
                .nth(1)
                .unwrap_or("0");
            format!(
                "PORTSIM_FUZZ_SEED={seed} PORTSIM_FUZZ_START={index} PORTSIM_FUZZ_CASES=1 cargo test --test portsim fuzz::random_scenarios -- --nocapture"
            )
        });
        panic!(
            "{} kind(s) of finding in {done} cases; inputs written to {}:{report}",
            findings.groups.len(),
            dir.display()
        );
    }
}

/// The directory of minimal reproducers, one file per defect found.
fn regressions_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/portsim/fuzz/regressions")
}

fn regression_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(regressions_dir())
        .expect("the regressions directory")
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    files
}

/// Every reproducer in `fuzz/regressions/` passes every check, in process
/// and through the binary, with no allowance for known defects.
#[test]
fn regressions() {
    let files = regression_files();
    assert!(!files.is_empty());
    let dir = tmp_dir("portsim-fuzz-regressions");
    let strict = true;
    let cli_dir = tempfile::tempdir().expect("a temporary directory");
    let mut worker = Worker::new(dir.join("current.toml"), strict);
    let mut findings = Findings {
        strict,
        ..Findings::default()
    };
    for (n, f) in files.iter().enumerate() {
        let bytes = std::fs::read(f).expect("read a reproducer");
        let label = format!("file {}", f.display());
        let Some(v) = worker.check(&bytes) else {
            let key = format!(
                "{}: hang: no answer within PORTSIM_FUZZ_HANG_SECS",
                f.display()
            );
            findings.add(finding(key, ""), &label, &bytes);
            continue;
        };
        if v.elapsed > SLOW {
            findings.add(
                finding("slower than SLOW", format!("{:?}", v.elapsed)),
                &label,
                &bytes,
            );
        }
        let mut all = v.findings.clone();
        check_cli(&bytes, &v, cli_dir.path(), n as u64, &mut all);
        for x in all {
            // Key by file, so every failing reproducer is listed.
            findings
                .groups
                .entry(format!("{}: {}", f.display(), x.key))
                .or_insert(Group {
                    count: 1,
                    detail: x.detail,
                    case: label.clone(),
                    bytes: bytes.clone(),
                });
        }
    }
    assert!(
        findings.groups.is_empty(),
        "{} finding(s):{}",
        findings.groups.len(),
        findings.report(&dir, |_| {
            "cargo test --test portsim fuzz::regressions -- --ignored --nocapture".into()
        })
    );
}

/// The checks can fail: a tampered report breaks the invariants, and a
/// multi-line or escape-laden message is refused.
#[test]
fn checks_catch_broken_reports_and_messages() {
    let sc = crate::util::scenario(
        "name = 't'\nduration = '60s'\n[host]\nport_range = '50000-50099'\n\
         [[destinations]]\naddress = '10.0.0.5:5432'\n[traffic]\nrate = 8\nhold = '1s'\n",
    );
    let good = portsim::run(&sc);
    let mut none = Vec::new();
    check_report(&sc, &good, &mut none);
    assert!(none.is_empty(), "{none:?}");
    let mut bad = good.clone();
    bad.established += 1;
    bad.ports.peak_in_use = 101;
    bad.analytic.max_rate_per_pool = f64::NAN;
    let mut found = Vec::new();
    check_report(&sc, &bad, &mut found);
    let keys: Vec<&str> = found.iter().map(|f| f.key.as_str()).collect();
    assert!(
        keys.contains(&"invariant: established + failures == attempts"),
        "{keys:?}"
    );
    assert!(
        keys.contains(
            &"invariant: peak_in_use and distinct_used <= usable ports x source addresses"
        ),
        "{keys:?}"
    );
    assert!(
        keys.contains(
            &"invariant: report.json analytic.max_rate_per_pool is a finite number (not null)"
        ),
        "{keys:?}"
    );
    // The client sections: a pooled closed loop passes; tampered, its books
    // do not balance.
    let sc = crate::util::scenario(
        "name = 't'\nduration = '60s'\n[host]\nport_range = '50000-50099'\n\
         [[destinations]]\naddress = '10.0.0.5:5432'\n[traffic]\nconcurrency = 5\nhold = '1s'\n\
         think = '1s'\npool = { max_idle = 1 }\n",
    );
    let good = portsim::run(&sc);
    let mut none = Vec::new();
    check_report(&sc, &good, &mut none);
    assert!(none.is_empty(), "{none:?}");
    let mut bad = good.clone();
    bad.requests.as_mut().unwrap().completed += 1;
    bad.connections.as_mut().unwrap().opened += 1;
    let mut found = Vec::new();
    check_client(&sc, &bad, &mut found);
    let keys: Vec<&str> = found.iter().map(|f| f.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "invariant: client: completed + failed + in_flight_at_end == total",
            "invariant: client: opened - open_at_end == the sum of closed_by",
        ]
    );
    // The NAT rows: a run through two NATs, the second of 4 ports, passes;
    // tampered, it breaks the chain's arithmetic and the table's bound.
    let sc = crate::util::scenario(
        "name = 't'\nduration = '60s'\n[host]\nvia = 'node'\n\
         [[destinations]]\naddress = '10.0.0.5:5432'\n[traffic]\nrate = 8\nhold = '1s'\n\
         connect_timeout = '0s'\n[[nat]]\nname = 'cloud'\ntype = 'linux'\nport_range = '40000-40003'\n\
         [[nat]]\nname = 'node'\ntype = 'linux'\nmax_entries = 1000\nvia = 'cloud'\n",
    );
    let good = portsim::run(&sc);
    assert!(
        good.nats.len() == 2 && good.nats[1].failures > 0,
        "{:?}",
        good.nats
    );
    let mut none = Vec::new();
    check_report(&sc, &good, &mut none);
    assert!(none.is_empty(), "{none:?}");
    let mut bad = good.clone();
    bad.nats[0].failures += 1;
    bad.nats[0].peak_mappings = 1001;
    bad.nats[1].ports_preserved = bad.nats[1].attempts;
    let mut found = Vec::new();
    check_report(&sc, &bad, &mut found);
    let keys: Vec<&str> = found.iter().map(|f| f.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "invariant: nats: failures == the sum of failures_by_cause",
            "invariant: nats: first_failure_s set exactly when the NAT dropped one, within the run",
            "invariant: nats: peak_mappings <= max_entries",
            "invariant: nats: attempts of NAT k+1 == attempts - failures of NAT k",
            "invariant: nats: ports_preserved <= attempts - failures",
            "invariant: nats: the sum of NAT failures <= failures",
        ]
    );
    let mut m = Vec::new();
    check_message("case.toml:3: name: fine", "case.toml", &mut m);
    assert!(m.is_empty(), "{m:?}");
    check_message(
        "case.toml:3: name: found \"\u{1b}[2J\"\nsecond line",
        "case.toml",
        &mut m,
    );
    let keys: Vec<&str> = m.iter().map(|f| f.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "error message spans several lines",
            "error message contains control characters (terminal escapes)"
        ]
    );
    // A panic on a worker thread is caught and located, not fatal.
    install_panic_hook();
    let caught = std::thread::Builder::new()
        .name(WORKER.into())
        .spawn(|| guarded(|| -> u32 { panic!("planted {}", 7) }))
        .unwrap()
        .join()
        .unwrap();
    let (msg, loc) = caught.unwrap_err();
    assert_eq!(msg, "planted 7");
    assert!(loc.starts_with("tests/portsim/fuzz.rs:"), "{loc}");
    assert_eq!(check_bytes(b"name = 'x'\n", true).outcome, Outcome::Invalid);
    // The same case index of the same seed is the same input.
    let corpus = corpus();
    assert_eq!(case(9, 123, &corpus), case(9, 123, &corpus));
    assert_ne!(case(9, 123, &corpus), case(9, 124, &corpus));
}
