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

/// Whether chart `name` applies to a run with `destinations` destinations,
/// from the rules stated for each chart: the per-destination view needs
/// several destinations; the others always apply (the port usage map because
/// `--out` records port usage).
fn applies(name: &str, destinations: usize) -> bool {
    match name {
        "occupancy" | "reuse" | "port-map" => true,
        "destinations" => destinations > 1,
        other => panic!("chart `{other}` is new: state here when it applies"),
    }
}

/// The charts expected for a run with `destinations` destinations.
fn applicable(destinations: usize) -> Vec<&'static dyn Chart> {
    CHARTS
        .iter()
        .copied()
        .filter(|c| applies(c.name(), destinations))
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
    let destinations = report["destinations"]
        .as_array()
        .ok_or("report.json has no destinations")?
        .len();
    let charts = applicable(destinations);
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
        has_content(&png).map_err(|e| format!("{}.png: {e}", c.name()))?;

        let svg = read_text(&out.join(format!("{}.svg", c.name())));
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
    for c in applicable(report.destinations.len()) {
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
    let charts = applicable(1);
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
    assert_eq!(files, expected_files(&applicable(2), Formats::ALL));
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
