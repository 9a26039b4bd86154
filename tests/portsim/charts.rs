//! Chart files and report.html: `--out` writes a PNG and an SVG of every chart
//! that applies to the run and one self-contained page, and nothing else.
//!
//! A chart that is missing, blank, the wrong size, or cannot be traced back
//! to its run (title, footer with version, scenario and seed, axis
//! descriptions) is useless in a write-up, so every shipped scenario is
//! rendered and each file is checked for those. The port usage map is also
//! checked for what it exists to show: Linux's even-ports-first search.

use std::collections::BTreeSet;
use std::path::Path;

use portsim::chart::{Chart, Formats, Input, PortUsage, CHARTS};
use serde_json::Value;

use crate::cli::RANDOM;
use crate::util::{self, portsim, run_out, text, write};

/// 1,000 ports, 20 connections/s held 1 s, 60 s TIME_WAIT, one destination:
/// 20 × 61 s = 1,220 ports wanted, so it runs out, and every chart but the
/// per-destination one applies.
const SMALL: &str = r#"
name = "small"
seed = 7
duration = "5m"
[host]
port_range = "60000-60999"
time_wait = "60s"
[[destinations]]
address = "10.0.0.5:5432"
[traffic]
rate = 20
hold = "1s"
"#;

/// Files written besides the charts, always.
const DATA: [&str; 2] = ["report.json", "timeseries.csv"];

/// What decides which charts a run gets.
#[derive(Debug, Clone, Copy)]
struct Shape {
    destinations: usize,
    nats: usize,
    hosts: u64,
    /// Cloud NATs among the NATs.
    cloud: usize,
}

impl Shape {
    /// One host, no NAT, `destinations` destinations.
    fn single(destinations: usize) -> Shape {
        Shape {
            destinations,
            nats: 0,
            hosts: 1,
            cloud: 0,
        }
    }

    /// From a report.json.
    fn of(report: &Value) -> Result<Shape, String> {
        let list = |key: &str| {
            report[key]
                .as_array()
                .ok_or(format!("report.json has no {key}"))
        };
        Ok(Shape {
            destinations: list("destinations")?.len(),
            nats: list("nats")?.len(),
            hosts: list("hosts")?
                .iter()
                .map(|h| h["count"].as_u64().unwrap_or(0))
                .sum(),
            cloud: list("nats")?
                .iter()
                .filter(|n| !n["cloud"].is_null())
                .count(),
        })
    }
}

/// Whether chart `name` applies to a run of this shape, from the rules
/// stated for each chart: the per-destination view needs several
/// destinations, the per-layer view a NAT, the per-host map a fleet of two
/// hosts or more, the cloud NAT view a cloud NAT; the others always apply
/// (the port usage map because `--out` records port usage).
fn applies(name: &str, shape: Shape) -> bool {
    match name {
        "occupancy" | "reuse" | "port-map" => true,
        "destinations" => shape.destinations > 1,
        "layers" => shape.nats > 0,
        "hosts" => shape.hosts >= 2,
        "cloud_nats" => shape.cloud > 0,
        other => panic!("chart `{other}` is new: state here when it applies"),
    }
}

/// The charts expected for a run of this shape.
fn applicable(shape: Shape) -> Vec<&'static dyn Chart> {
    CHARTS
        .iter()
        .copied()
        .filter(|c| applies(c.name(), shape))
        .collect()
}

/// Text each chart's SVG must hold besides the footer: its title (with the
/// scenario name) and its axis descriptions.
fn expected_text(name: &str, scenario: &str) -> Vec<String> {
    let (title, axes): (&str, &[&str]) = match name {
        "occupancy" => ("Ports in use over time", &["time since start", "ports"]),
        "reuse" => (
            "Reuse interval of ports",
            &["time the port sat free before its next allocation (log scale)"],
        ),
        "port-map" => (
            "Port usage map",
            &["time since start", "local port", "uses per port"],
        ),
        "destinations" => ("Attempts per destination", &["connection attempts"]),
        "layers" => (
            "Occupancy per layer",
            &["time since start", "ports held", "mappings", "pool of"],
        ),
        "hosts" => (
            "Ports held per host over time",
            &["time since start", "host", "peak ports held", "ports held"],
        ),
        "cloud_nats" => (
            "Cloud NAT ports",
            &["peak in use, % of the address's ports or the host's block"],
        ),
        other => panic!("chart `{other}` is new: state here what it must say"),
    };
    std::iter::once(format!("{title} — {scenario}"))
        .chain(axes.iter().map(|s| s.to_string()))
        .collect()
}

/// The files in `dir`, by name.
fn listing(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect()
}

/// Names of the files `--out` should write for these charts and formats.
fn expected_files(charts: &[&dyn Chart], formats: Formats) -> BTreeSet<String> {
    let mut files: BTreeSet<String> = DATA.iter().map(|s| s.to_string()).collect();
    for c in charts {
        if formats.png {
            files.insert(format!("{}.png", c.name()));
        }
        if formats.svg {
            files.insert(format!("{}.svg", c.name()));
        }
    }
    if formats.html {
        files.insert("report.html".into());
    }
    files
}

/// Undo XML/HTML escaping, so text can be looked for however it was escaped.
fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&#39;", "'")
        .replace("&#x27;", "'")
        .replace("&amp;", "&")
}

/// The not-blank rule: an image has content when at least 2 % of its pixels
/// differ by more than 40 in some channel from the most common colour (the
/// background), and it has at least 16 distinct colours (text is
/// anti-aliased, so real text and plots give many). An empty canvas, or one
/// with a stray line, fails both.
fn has_content(img: &image::RgbImage) -> Result<(), String> {
    let mut colours: Vec<[u8; 3]> = img.pixels().map(|p| p.0).collect();
    colours.sort_unstable();
    let (mut distinct, mut background, mut most) = (0, [0; 3], 0);
    for run in colours.chunk_by(|a, b| a == b) {
        distinct += 1;
        if run.len() > most {
            (background, most) = (run[0], run.len());
        }
    }
    let far = colours
        .iter()
        .filter(|p| p.iter().zip(background).any(|(&a, b)| a.abs_diff(b) > 40))
        .count() as f64;
    let share = far / f64::from(img.width() * img.height());
    if share < 0.02 || distinct < 16 {
        return Err(format!(
            "blank: {:.2} % of pixels stand out from the background {background:?}, {} colours",
            share * 100.0,
            distinct
        ));
    }
    Ok(())
}

fn decode(png: &[u8]) -> image::RgbImage {
    image::load_from_memory_with_format(png, image::ImageFormat::Png)
        .unwrap_or_else(|e| panic!("not a PNG: {e}"))
        .to_rgb8()
}

fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn read_text(p: &Path) -> String {
    String::from_utf8(read(p)).unwrap_or_else(|e| panic!("{}: not UTF-8: {e}", p.display()))
}

/// The summary's headline: the line saying when ports first ran out, or that
/// they did not.
fn headline(summary: &str) -> String {
    summary
        .lines()
        .find(|l| {
            l.starts_with("  First failure")
                || l.starts_with("  No port ran out")
                || l.starts_with("  No connect failed")
        })
        .unwrap_or_else(|| panic!("no headline in the summary:\n{summary}"))
        .trim()
        .to_string()
}

#[test]
fn every_shipped_scenario_gets_its_charts_and_page() {
    // Rule: for every shipped scenario, `--out` writes exactly report.json,
    // timeseries.csv, report.html and a PNG and an SVG of each chart that
    // applies; each PNG has its chart's size and is not blank; each SVG and
    // the page name the run; the page embeds one SVG per chart and fetches
    // nothing. Failures of all scenarios are collected, then reported.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut scenarios: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    scenarios.sort();
    assert!(!scenarios.is_empty(), "no scenarios in {}", root.display());
    let tmp = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    for path in &scenarios {
        let stem = path.file_stem().unwrap().to_str().unwrap();
        let out = tmp.path().join(stem);
        let run = run_out(path, &out, &[]);
        let summary = text(&run.get_output().stdout);
        if let Err(e) = check_run(&out, &headline(&summary)) {
            failures.push(format!("{stem}: {e}"));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

/// Every check of one `--out` directory written with all chart formats.
fn check_run(out: &Path, headline: &str) -> Result<(), String> {
    let report: Value = serde_json::from_slice(&read(&out.join("report.json")))
        .map_err(|e| format!("report.json: {e}"))?;
    let name = report["scenario"]["name"]
        .as_str()
        .ok_or("report.json has no scenario.name")?;
    let seed = report["seed"].as_u64().ok_or("report.json has no seed")?;
    let charts = applicable(Shape::of(&report)?);
    let expected = expected_files(&charts, Formats::ALL);
    let found = listing(out);
    if found != expected {
        return Err(format!(
            "missing {:?}, unexpected {:?}",
            expected.difference(&found).collect::<Vec<_>>(),
            found.difference(&expected).collect::<Vec<_>>()
        ));
    }
    let footer = format!(
        "portsim {} · scenario {name} · seed {seed}",
        env!("CARGO_PKG_VERSION")
    );
    for c in &charts {
        let png = decode(&read(&out.join(format!("{}.png", c.name()))));
        if png.dimensions() != c.size() {
            return Err(format!(
                "{}.png is {:?}, the chart says {:?}",
                c.name(),
                png.dimensions(),
                c.size()
            ));
        }
        let svg = read_text(&out.join(format!("{}.svg", c.name())));
        // A run whose connections all stay open (a pool that keeps them)
        // hands no port out twice: the reuse chart says so on its canvas
        // rather than plotting.
        if c.name() == "reuse" && report["reuse_interval_s"]["count"] == 0 {
            let says = "no port was handed out twice in this run";
            if !unescape(&svg).contains(says) {
                return Err(format!(
                    "reuse.svg has no interval and does not say {says:?}"
                ));
            }
        } else {
            has_content(&png).map_err(|e| format!("{}.png: {e}", c.name()))?;
        }

        if !svg.starts_with("<svg") || !svg.trim_end().ends_with("</svg>") {
            return Err(format!(
                "{}.svg is not one <svg> element: {:?} … {:?}",
                c.name(),
                &svg[..svg.len().min(60)],
                &svg[svg.len().saturating_sub(60)..]
            ));
        }
        let plain = unescape(&svg);
        for want in expected_text(c.name(), name)
            .iter()
            .chain(std::iter::once(&footer))
        {
            if !plain.contains(want.as_str()) {
                return Err(format!("{}.svg does not say {want:?}", c.name()));
            }
        }
    }

    let page = read_text(&out.join("report.html"));
    let plain = unescape(&page);
    if !page.starts_with("<!DOCTYPE html>") {
        return Err("report.html does not start with <!DOCTYPE html>".into());
    }
    for want in [name, headline] {
        if !plain.contains(want) {
            return Err(format!("report.html does not say {want:?}"));
        }
    }
    let svgs = page.matches("<svg").count();
    if svgs != charts.len() {
        return Err(format!(
            "report.html holds {svgs} <svg> elements, expected {} (one per chart)",
            charts.len()
        ));
    }
    // Self-contained: the only URL is the SVG namespace, which is a name,
    // not something fetched.
    let rest = page.replace("xmlns=\"http://www.w3.org/2000/svg\"", "");
    for scheme in ["http://", "https://"] {
        if let Some(at) = rest.find(scheme) {
            return Err(format!(
                "report.html refers to {:?}",
                &rest[at..rest.len().min(at + 80)]
            ));
        }
    }
    Ok(())
}

#[test]
fn a_blank_image_is_caught() {
    // Negative controls: the rule must call these blank, or it would pass
    // a chart that failed to draw.
    let white = image::RgbImage::from_pixel(1100, 650, image::Rgb([255, 255, 255]));
    assert!(has_content(&white).is_err(), "an all-white image");
    let mut line = white.clone();
    for x in 0..line.width() {
        line.put_pixel(x, 325, image::Rgb([0, 0, 0]));
    }
    assert!(has_content(&line).is_err(), "white with one black line");
    // A white image round-tripped through PNG, as the files are read.
    let mut bytes = std::io::Cursor::new(Vec::new());
    white
        .write_to(&mut bytes, image::ImageOutputFormat::Png)
        .unwrap();
    assert!(has_content(&decode(bytes.get_ref())).is_err());

    // And a real chart passes it.
    let sc = util::scenario(SMALL);
    let mut usage = PortUsage::new(&sc);
    let report = portsim::run_with(&sc, &mut usage);
    let input = Input {
        report: &report,
        usage: Some(&usage),
    };
    for c in applicable(Shape::single(report.destinations.len())) {
        let png = portsim::chart::render_png(c, &input).unwrap();
        let img = decode(&png);
        assert_eq!(img.dimensions(), c.size(), "{}", c.name());
        if let Err(e) = has_content(&img) {
            panic!("{} chart of a real run: {e}", c.name());
        }
    }
}

#[test]
fn chart_flags_choose_the_files() {
    let dir = tempfile::tempdir().unwrap();
    // Rule: `--charts` writes just the formats listed, `--no-charts` none;
    // an unknown format, `--charts`/`--no-charts` without `--out`, or both
    // together are usage errors (exit code 2) that write nothing.
    let sc = write(dir.path(), "small.toml", SMALL);
    let charts = applicable(Shape::single(1));
    let only = |png, svg, html| Formats { png, svg, html };
    let cases: [(&str, &[&str], Formats); 3] = [
        ("png", &["--charts", "png"], only(true, false, false)),
        (
            "svg-html",
            &["--charts", "svg,html"],
            only(false, true, true),
        ),
        ("none", &["--no-charts"], Formats::NONE),
    ];
    for (tag, flags, formats) in cases {
        let out = dir.path().join(tag);
        run_out(&sc, &out, flags);
        assert_eq!(
            listing(&out),
            expected_files(&charts, formats),
            "with {flags:?}"
        );
    }

    let out = dir.path().join("refused");
    let refused = |args: &[&str]| -> String {
        let o = portsim().arg("run").arg(&sc).args(args).assert().code(2);
        assert!(!out.exists(), "{args:?} wrote {}", out.display());
        text(&o.get_output().stderr)
    };
    let o = out.to_str().unwrap();
    let err = refused(&["--charts", "jpeg", "--out", o]);
    let first = err.lines().next().unwrap_or_default();
    for word in ["jpeg", "png", "svg", "html"] {
        assert!(first.contains(word), "no {word:?} in: {err}");
    }
    refused(&["--charts", "png"]);
    refused(&["--no-charts"]);
    refused(&["--charts", "png", "--no-charts", "--out", o]);
}

#[test]
fn charts_and_page_are_byte_identical_across_runs() {
    // Rule: one scenario and seed give the same bytes in every file, so a
    // chart can be regenerated and diffed. Random arrivals, holds and ports,
    // two destinations and failures: every chart, and every random stream
    // that feeds one.
    let dir = tempfile::tempdir().unwrap();
    let sc = write(dir.path(), "random.toml", RANDOM);
    let outs = ["a", "b"].map(|tag| {
        let out = dir.path().join(tag);
        run_out(&sc, &out, &[]);
        out
    });
    let files = listing(&outs[0]);
    assert_eq!(files, listing(&outs[1]));
    assert_eq!(
        files,
        expected_files(&applicable(Shape::single(2)), Formats::ALL)
    );
    for f in &files {
        let (a, b) = (read(&outs[0].join(f)), read(&outs[1].join(f)));
        assert!(a == b, "{f} differs between two runs of one scenario");
    }
}

/// 6 connections/s, each holding its port 1 s + 60 s TIME_WAIT: about
/// 6 × 61 ≈ 366 ports held once the run is past its first minute, of 1,000
/// ports (500 even, 500 odd), for 4 minutes.
fn held_by_parity(allocator: &str) -> (f64, f64) {
    let sc = util::scenario(&format!(
        r#"
        name = "parity"
        seed = 11
        duration = "4m"
        [host]
        os = "linux"
        allocator = "{allocator}"
        port_range = "40000-40999"
        time_wait = "60s"
        [[destinations]]
        address = "10.0.0.5:5432"
        [traffic]
        arrivals = "poisson"
        rate = 6
        hold = "1s"
        "#
    ));
    let mut usage = PortUsage::new(&sc);
    let report = portsim::run_with(&sc, &mut usage);
    // The reasoning below needs the even ports never to be all taken.
    assert!(
        report.ports.peak_in_use < 500 && report.failures == 0,
        "{allocator}: peak {} ports held, {} failures",
        report.ports.peak_in_use,
        report.failures
    );
    let (block, blocks) = usage.blocks();
    assert_eq!(block % 2, 0, "a block holds whole even/odd pairs");
    let (_, cols) = usage.columns();
    // Row 2b holds block b's even ports, row 2b + 1 its odd ports; the range
    // starts at an even port, so offset parity is port parity.
    let total = |parity: usize| -> f64 {
        (0..blocks as usize)
            .flat_map(|b| (0..cols).map(move |c| (2 * b + parity, c)))
            .map(|(row, c)| usage.share(row, c, 1))
            .sum()
    };
    (total(0), total(1))
}

#[test]
fn port_map_shows_linux_even_first() {
    // Linux's connect() scans the ports of the range's low-end parity (even,
    // for 40000) first, all of them, and turns to odd ports only when that
    // pass finds none usable. With fewer than 500 ports ever held, an even
    // port is always free, so odd ports should carry next to nothing. If the
    // usage map lost the parity split (or the allocator ignored parity), the
    // two totals would be about equal, as they are for the random control.
    let (even, odd) = held_by_parity("linux");
    eprintln!("linux: held share summed, even {even:.1}, odd {odd:.1}");
    assert!(even > 0.0, "no port was held at all");
    assert!(
        even >= 100.0 * odd,
        "linux: even ports {even:.1}, odd ports {odd:.1}: even-first does not show"
    );

    // Control: RFC 6056 algorithm 1 starts at a random port and probes
    // linearly, so parity does not matter: over ~1,400 connections the two
    // totals agree within a few percent (at most 5 % over 30 seeds).
    let (even, odd) = held_by_parity("rfc6056-1");
    eprintln!("rfc6056-1: held share summed, even {even:.1}, odd {odd:.1}");
    let gap = (even - odd).abs() / even.max(odd);
    assert!(
        gap <= 0.15,
        "rfc6056-1: even ports {even:.1}, odd ports {odd:.1}, {:.1} % apart",
        gap * 100.0
    );
}

/// Two groups of hosts (6 at 10/s, 3 at 25/s, each connection held 20 s)
/// behind a node NAT of 2,000 ports, then an edge NAT of 2 × 600 ports:
/// 135/s × 20 s = 2,700 connections open at once, more than either NAT has
/// ports (the edge uses one outside address, as the node presents one
/// source address), so both refuse attempts, while no host runs out
/// (25/s × 50 s = 1,250 of its 5,000 ports). The edge lets a mapping go at
/// close, with no timer.
const FLEET_NAT: &str = r#"
name = "fleet-nat"
seed = 5
duration = "2m"
[host]
port_range = "40000-44999"
time_wait = "30s"
[[destinations]]
address = "10.0.0.5:443"
[traffic]
hold = "20s"
connect_timeout = "3s"
[[hosts]]
name = "web"
count = 6
addresses = ["10.1.0.1"]
traffic = { rate = 10 }
via = "node"
[[hosts]]
name = "batch"
count = 3
addresses = ["10.2.0.1"]
traffic = { rate = 25 }
via = "node"
[[nat]]
name = "node"
type = "linux"
port_range = "20000-21999"
timeouts = { time_wait = "20s" }
via = "edge"
[[nat]]
name = "edge"
type = "linux"
addresses = 2
port_range = "30000-30599"
timeouts = { time_wait = "0" }
"#;

/// One host through two stacked NATs (the engine's NAT chain, not the
/// fleet's graph): 40/s held 10 s on average at a first NAT of 300 ports
/// (400 open at once), so it runs out; the second keeps mappings 0 s after
/// close (they go at once).
const CHAIN: &str = r#"
name = "chain"
seed = 9
duration = "90s"
[host]
port_range = "40000-44999"
time_wait = "20s"
via = "pod"
[[destinations]]
address = "10.0.0.5:443"
[traffic]
arrivals = "poisson"
rate = 40
hold = { dist = "exponential", mean = "10s" }
connect_timeout = "3s"
[[nat]]
name = "pod"
type = "linux"
port_range = "50000-50299"
mode = "random-fully"
timeouts = { time_wait = "10s" }
via = "out"
[[nat]]
name = "out"
type = "linux"
timeouts = { time_wait = "0" }
"#;

/// The largest of `f` over every column.
fn max_over(cols: usize, f: impl Fn(usize) -> u64) -> u64 {
    (0..cols).map(f).max().unwrap_or(0)
}

/// Close to within float rounding of an integral divided by a duration.
fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1e-300)
}

/// Every figure of the layer data that the report also has, against it:
/// each NAT's peak entries (exactly), mean entries, refusals and first
/// refusal; all hosts' ports (peak exactly, mean).
fn check_layers_against_report(sc: &portsim::Scenario) -> (PortUsage, portsim::Report) {
    let mut usage = PortUsage::new(sc);
    let report = portsim::run_with(sc, &mut usage);
    let l = usage.layers();
    let (_, cols) = l.columns();
    let end = report.simulated_ns as f64;
    assert_eq!(l.nats(), report.nats.len());
    for (n, nat) in report.nats.iter().enumerate() {
        let peak = max_over(cols, |c| l.nat_entries(n, c).1);
        assert_eq!(peak, nat.peak_mappings, "NAT {} peak", nat.name);
        let mean = l.area_ns(Some(n)) as f64 / end;
        assert!(
            close(mean, nat.mean_mappings),
            "NAT {}: mean {mean} vs {}",
            nat.name,
            nat.mean_mappings
        );
        // Connects failed there (when they gave up), which is at or after
        // the NAT's first dropped SYN.
        let (first, refused) = l.failures_at(1 + n);
        assert_eq!(refused, nat.failures, "NAT {} refusals", nat.name);
        assert_eq!(first.is_some(), nat.failures > 0, "NAT {}", nat.name);
        if let (Some(t), Some(drop)) = (first, nat.first_failure_s) {
            assert!(
                t as f64 / 1e9 >= drop,
                "NAT {}: {t} before {drop}",
                nat.name
            );
        }
    }
    let peak = max_over(cols, |c| l.hosts_total(c).1);
    assert_eq!(peak, u64::from(report.ports.peak_in_use), "hosts' peak");
    let mean = l.area_ns(None) as f64 / end;
    assert!(
        close(mean, report.ports.mean_in_use),
        "hosts' mean {mean} vs {}",
        report.ports.mean_in_use
    );
    // Every column's mean lies between 0 and its peak.
    for c in 0..cols {
        let (m, p) = l.hosts_total(c);
        assert!(m >= 0.0 && m <= p as f64 + 1e-9, "column {c}: {m} > {p}");
    }
    (usage, report)
}

#[test]
fn layer_data_matches_the_report_for_a_fleet() {
    // Rule: the per-layer data integrates the same changes the engine
    // counts, so its peaks are the report's exactly and its means agree to
    // float rounding; per host (one host a row: the bins are fine enough),
    // the busiest host of each group is the group's peak_in_use_per_host.
    let sc = util::scenario(FLEET_NAT);
    let (usage, report) = check_layers_against_report(&sc);
    assert!(
        report.nats.iter().all(|n| n.failures > 0),
        "both NATs should refuse: {:?}",
        report.nats
    );
    let l = usage.layers();
    let (_, cols) = l.columns();
    assert_eq!(l.hosts(), 9);
    assert_eq!(l.host_rows(), (1, 9));
    for (g, span) in report.hosts.iter().zip(l.groups()) {
        assert_eq!((span.name.as_str(), span.count), (g.name.as_str(), g.count));
        let rows = span.first as usize..(span.first + span.count) as usize;
        let peaks: Vec<u64> = rows
            .map(|row| max_over(cols, |c| l.host_cell(row, c).1))
            .collect();
        assert!(peaks
            .iter()
            .all(|&p| p <= u64::from(g.peak_in_use_per_host)));
        assert_eq!(
            peaks.iter().max().copied(),
            Some(u64::from(g.peak_in_use_per_host)),
            "group {}",
            g.name
        );
    }
    // The hosts refused nothing themselves.
    assert_eq!(l.failures_at(0), (None, 0));
}

#[test]
fn layer_data_matches_the_report_through_a_nat_chain() {
    // The same rule for one host behind stacked NATs (the single-host
    // engine), with a NAT that lets mappings go at close (no timer): each
    // of those releases is reported too, or the mean would be too high.
    let sc = util::scenario(CHAIN);
    let (usage, report) = check_layers_against_report(&sc);
    assert!(report.nats[0].failures > 0, "{:?}", report.nats[0]);
    assert_eq!(usage.layers().hosts(), 1);
    assert!(report.nats[1].mean_mappings < report.nats[0].mean_mappings);
}

#[test]
fn a_large_fleet_is_drawn_in_rows_of_several_hosts() {
    // Rule: at most 200 host rows; 450 hosts give rows of 3, whose peak is
    // the busiest host's (so the largest is still the group's peak), and
    // the chart says a row holds 3 hosts.
    let sc = util::scenario(
        r#"
        name = "big-fleet"
        seed = 2
        duration = "30s"
        [host]
        port_range = "40000-40999"
        time_wait = "10s"
        [[destinations]]
        address = "10.0.0.5:443"
        [traffic]
        hold = { dist = "exponential", mean = "1s" }
        [[hosts]]
        name = "workers"
        count = 450
        traffic = { rate = 2 }
        "#,
    );
    let mut usage = PortUsage::new(&sc);
    let report = portsim::run_with(&sc, &mut usage);
    let l = usage.layers();
    let (_, cols) = l.columns();
    assert_eq!(l.host_rows(), (3, 150));
    assert_eq!(l.row_hosts(149), 3);
    let peak = (0..150)
        .map(|row| max_over(cols, |c| l.host_cell(row, c).1))
        .max();
    assert_eq!(peak, Some(u64::from(report.hosts[0].peak_in_use_per_host)));
    let input = Input {
        report: &report,
        usage: Some(&usage),
    };
    let hosts = CHARTS.iter().find(|c| c.name() == "hosts").unwrap();
    assert!(hosts.applies(&input));
    let layers = CHARTS.iter().find(|c| c.name() == "layers").unwrap();
    assert!(!layers.applies(&input), "no NAT, no per-layer chart");
    let svg = unescape(&portsim::chart::render_svg(*hosts, &input).unwrap());
    assert!(svg.contains("host (rows of 3)"), "the rows are not named");
    let png = decode(&portsim::chart::render_png(*hosts, &input).unwrap());
    has_content(&png).unwrap();
}

#[test]
fn layer_and_host_charts_are_written_where_they_apply() {
    // Rule: `layers` only with a NAT, `hosts` only for a fleet of two hosts
    // or more; both in every format `--charts` asks for, and on the page.
    let dir = tempfile::tempdir().unwrap();
    let fleet_no_nat = FLEET_NAT
        .replace("via = \"node\"\n", "")
        .split("[[nat]]")
        .next()
        .unwrap()
        .to_string();
    let one_host_fleet = SMALL.replace("[traffic]", "[[hosts]]\nname = \"one\"\n[traffic]");
    let cases: [(&str, &str, Shape); 5] = [
        (
            "fleet-nat",
            FLEET_NAT,
            Shape {
                destinations: 1,
                nats: 2,
                hosts: 9,
                cloud: 0,
            },
        ),
        (
            "chain",
            CHAIN,
            Shape {
                destinations: 1,
                nats: 2,
                hosts: 1,
                cloud: 0,
            },
        ),
        (
            "fleet",
            &fleet_no_nat,
            Shape {
                destinations: 1,
                nats: 0,
                hosts: 9,
                cloud: 0,
            },
        ),
        ("one-host-fleet", &one_host_fleet, Shape::single(1)),
        ("single", SMALL, Shape::single(1)),
    ];
    for (tag, body, shape) in cases {
        let sc = write(dir.path(), &format!("{tag}.toml"), body);
        let out = dir.path().join(tag);
        let summary = text(&run_out(&sc, &out, &["--no-fixes"]).get_output().stdout);
        let report: Value = serde_json::from_slice(&read(&out.join("report.json"))).unwrap();
        let found = Shape::of(&report).unwrap();
        assert_eq!(
            (found.destinations, found.nats, found.hosts),
            (shape.destinations, shape.nats, shape.hosts),
            "{tag}"
        );
        let charts = applicable(shape);
        let names: Vec<_> = charts.iter().map(|c| c.name()).collect();
        assert_eq!(
            (names.contains(&"layers"), names.contains(&"hosts")),
            (shape.nats > 0, shape.hosts >= 2),
            "{tag}"
        );
        assert_eq!(
            listing(&out),
            expected_files(&charts, Formats::ALL),
            "{tag}"
        );
        let page = unescape(&read_text(&out.join("report.html")));
        for (name, heading) in [
            ("layers", "Occupancy per layer"),
            ("hosts", "Ports held per host over time"),
        ] {
            assert_eq!(
                page.contains(heading),
                names.contains(&name),
                "{tag}: report.html and {name}"
            );
        }
        check_run(&out, &headline(&summary)).unwrap_or_else(|e| panic!("{tag}: {e}"));
    }
    // `--files` reaches them by name.
    let sc = dir.path().join("fleet-nat.toml");
    let out = dir.path().join("picked");
    run_out(
        &sc,
        &out,
        &["--no-fixes", "--files", "layers.svg,hosts.png"],
    );
    assert_eq!(
        listing(&out),
        ["hosts.png", "layers.svg"].map(String::from).into()
    );
}

#[test]
fn layer_and_host_charts_are_byte_identical_across_runs() {
    // Rule: the same scenario and seed give the same bytes, for the charts
    // that read the per-layer data too.
    let dir = tempfile::tempdir().unwrap();
    let sc = write(dir.path(), "fleet-nat.toml", FLEET_NAT);
    let outs = ["a", "b"].map(|tag| {
        let out = dir.path().join(tag);
        run_out(&sc, &out, &["--no-fixes"]);
        out
    });
    for f in ["layers.png", "layers.svg", "hosts.png", "hosts.svg"] {
        let (a, b) = (read(&outs[0].join(f)), read(&outs[1].join(f)));
        assert!(!a.is_empty() && a == b, "{f} differs between two runs");
    }
}

/// A fleet's occupancy chart adds up its hosts, so its pool and its
/// rate × (hold + TIME_WAIT) line do too: 9 hosts of 5,000 ports are a
/// pool of 45,000; 6 hosts × 10/s and 3 × 25/s, each held 20 s then 30 s
/// in TIME_WAIT, hold 6 × 500 + 3 × 1,250 = 6,750.
#[test]
fn a_fleets_occupancy_chart_adds_up_its_hosts() {
    let dir = tempfile::tempdir().unwrap();
    let r = crate::util::run(FLEET_NAT);
    assert_eq!(
        r.hosts.iter().map(|g| g.ports_per_host).collect::<Vec<_>>(),
        [5000, 5000]
    );
    assert!(!r.steady_state.is_empty());
    for &(_, v) in &r.steady_state {
        assert!((v - 6750.0).abs() < 1e-6, "{:?}", r.steady_state);
    }
    let sc = write(dir.path(), "fleet-nat.toml", FLEET_NAT);
    let out = dir.path().join("o");
    run_out(&sc, &out, &["--no-fixes", "--files", "occupancy.svg"]);
    let svg = read_text(&out.join("occupancy.svg"));
    assert!(svg.contains("45,000 usable ports over 9 hosts"), "{svg}");
    assert!(svg.contains("6,750"), "the steady-state label");
}
