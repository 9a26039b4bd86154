//! `report.html`: one self-contained page to attach to a design review or an
//! incident write-up.
//!
//! Everything is inline (styles and charts as SVG), there is no script and
//! nothing is fetched, so the page opens from disk, survives being mailed,
//! and prints: each figure keeps to one page and the charts scale to the
//! paper's width.

use std::fmt::Write as _;

use super::{escape, render_svg, Input, CHARTS};
use crate::report::summary::{
    addresses_used, fix_lines, headline, human_s, percent, pool_size, thousands,
};
use crate::report::{bind_name, close_name};

/// Where the run came from, echoed on the page.
pub struct Source<'a> {
    /// The scenario file as given on the command line.
    pub path: &'a str,
    /// Its text.
    pub text: &'a str,
    /// `--set` overrides and a `--seed` override, as typed.
    pub overrides: &'a [String],
}

const STYLE: &str = r#"
:root { color-scheme: light; }
body { font-family: system-ui, -apple-system, "Segoe UI", "DejaVu Sans", sans-serif; color: #212121;
       max-width: 1120px; margin: 2rem auto; padding: 0 1.25rem; line-height: 1.45; background: #fff; }
h1 { font-size: 1.6rem; margin: 0 0 .25rem; }
h2 { font-size: 1.2rem; margin: 2rem 0 .4rem; border-bottom: 1px solid #e0e0e0; padding-bottom: .2rem; }
.meta { color: #666; font-size: .9rem; margin: 0 0 1rem; }
.headline { font-size: 1.25rem; font-weight: 600; padding: .8rem 1rem; border-left: 6px solid #316eb4;
            background: #f3f7fc; margin: 1rem 0; }
.headline.failed { border-left-color: #c82828; background: #fdf3f3; }
table { border-collapse: collapse; font-size: .95rem; margin: .5rem 0; }
th, td { text-align: left; padding: .3rem .9rem .3rem 0; border-bottom: 1px solid #eee; vertical-align: top; }
th { color: #555; font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 1rem 0 2rem; }
figure svg { width: 100%; height: auto; display: block; border: 1px solid #eee; }
figcaption { color: #555; font-size: .9rem; margin-top: .4rem; }
pre { background: #f7f7f7; padding: .8rem; overflow-x: auto; font-size: .85rem; border: 1px solid #eee; }
ul.advice li { margin: .2rem 0; }
.note { color: #666; font-size: .9rem; }
@media print {
  body { max-width: none; margin: 0; font-size: 10.5pt; }
  figure, table, .headline { break-inside: avoid; page-break-inside: avoid; }
  h2 { break-after: avoid; page-break-after: avoid; }
  pre { white-space: pre-wrap; }
}
"#;

/// The whole page.
pub fn render(input: &Input, source: &Source) -> Result<String, String> {
    let r = input.report;
    let sc = &r.scenario;
    let mut h = String::with_capacity(256 * 1024);
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>portsim — {}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n",
        escape(&sc.name)
    );
    let _ = writeln!(h, "<h1>{}</h1>", escape(&sc.name));
    let _ = writeln!(
        h,
        "<p class=\"meta\">portsim {} · scenario file <code>{}</code> · seed {} · {} simulated</p>",
        r.portsim_version,
        escape(source.path),
        r.seed,
        escape(&human_s(r.simulated_s))
    );
    if !sc.description.trim().is_empty() {
        let _ = writeln!(h, "<p>{}</p>", escape(sc.description.trim()));
    }
    let _ = writeln!(
        h,
        "<p class=\"headline{}\">{}</p>",
        if r.failures > 0 { " failed" } else { "" },
        escape(&headline(r))
    );
    let fixes = fix_lines(r);
    if !fixes.is_empty() {
        h.push_str("<p>Changes that avoid the failures, each run again on the same seed:</p>\n<ul class=\"advice\">\n");
        for t in fixes {
            let _ = writeln!(h, "<li>{}</li>", escape(&t));
        }
        h.push_str("</ul>\n");
    }
    // A cloud NAT's sizing: what it needs beside its vendor's rule.
    let sizing = crate::report::summary::sizing_lines(r);
    if !sizing.is_empty() {
        h.push_str("<p>Sizing of the cloud NATs, beside their vendors' rules:</p>\n<ul class=\"advice\">\n");
        for t in sizing {
            let _ = writeln!(h, "<li>{}</li>", escape(t.trim_start()));
        }
        h.push_str("</ul>\n");
    }

    // Requests and pools, with a client model: what the application saw.
    let client = crate::report::client::summary_lines(r);
    if !client.is_empty() {
        h.push_str("<p>Requests and the connection pool:</p>\n<ul class=\"advice\">\n");
        for (label, t) in client {
            let _ = writeln!(
                h,
                "<li>{}{}</li>",
                if label.is_empty() {
                    String::new()
                } else {
                    format!("{label}: ")
                },
                escape(&t)
            );
        }
        h.push_str("</ul>\n");
    }

    figures_table(&mut h, input);

    for chart in CHARTS.iter().filter(|c| c.applies(input)) {
        let svg = render_svg(*chart, input)?;
        let _ = writeln!(
            h,
            "<figure id=\"{}\">\n<h2>{}</h2>\n{}\n<figcaption>{}</figcaption>\n</figure>",
            chart.name(),
            escape(chart.heading()),
            svg,
            escape(chart.caption())
        );
    }

    h.push_str("<h2>Scenario</h2>\n");
    if !source.overrides.is_empty() {
        let _ = writeln!(
            h,
            "<p class=\"note\">Run with overrides: <code>{}</code></p>",
            escape(&source.overrides.join(" "))
        );
    }
    let _ = writeln!(
        h,
        "<p class=\"note\">{} · allocator {} · ports {} ({} usable{}) · TIME_WAIT {} · {} close · {}</p>",
        escape(sc.os),
        escape(&sc.allocator),
        escape(&sc.port_range),
        thousands(u64::from(r.ports.usable)),
        match addresses_used(r) {
            1 => String::new(),
            n => format!(" on each of {n} addresses"),
        },
        escape(&human_s(sc.time_wait_s)),
        close_name(sc.close),
        bind_name(sc.bind)
    );
    let _ = writeln!(h, "<pre>{}</pre>", escape(source.text.trim_end()));
    h.push_str("</body>\n</html>\n");
    Ok(h)
}

/// Simulated figures beside the closed-form ones.
fn figures_table(h: &mut String, input: &Input) {
    let r = input.report;
    let a = &r.analytic;
    let pool = pool_size(r);
    h.push_str("<h2>Simulated and expected</h2>\n<table>\n<tr><th>figure</th><th>simulated</th><th>closed form</th><th>formula</th></tr>\n");
    let mut row = |name: &str, sim: String, expect: String, how: &str| {
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td></tr>",
            escape(name),
            escape(&sim),
            escape(&expect),
            escape(how)
        );
    };
    row(
        "failure ratio",
        percent(r.failure_ratio),
        percent(a.erlang_b_failure_ratio),
        "Erlang B, c = ports per pool, A = offered load per pool",
    );
    // Little's law counts connections and TIME_WAIT entries; where several
    // destinations share a port that is more than the ports held, so the
    // simulated side counts the same thing.
    let series = r.series();
    let span: f64 = series.iter().map(|b| b.width_ns as f64).sum();
    let held = if span > 0.0 {
        series
            .iter()
            .map(|b| (b.open + b.time_wait) * b.width_ns as f64)
            .sum::<f64>()
            / span
    } else {
        0.0
    };
    row(
        "mean connections + TIME_WAIT entries",
        thousands(held.round() as u64),
        thousands(a.little_mean_in_use.round() as u64),
        "Little's law: rate × (mean hold + TIME_WAIT)",
    );
    row(
        "mean ports in use",
        thousands(r.ports.mean_in_use.round() as u64),
        String::new(),
        "equal to the row above unless destinations share ports",
    );
    row(
        "peak ports in use",
        thousands(u64::from(r.ports.peak_in_use)),
        format!("{} in the pool", thousands(pool)),
        "usable ports × source addresses in use",
    );
    row(
        "connection rate",
        format!("{:.1}/s mean", r.scenario.mean_rate),
        format!("{:.1}/s per pool", a.max_rate_per_pool),
        "back-of-envelope ceiling: ports ÷ (hold + TIME_WAIT)",
    );
    row(
        "attempts",
        format!(
            "{} ({} failed)",
            thousands(r.attempts),
            thousands(r.failures)
        ),
        String::new(),
        "",
    );
    h.push_str("</table>\n");
    if let Some(c) = &a.erlang_b_caveat {
        let _ = writeln!(
            h,
            "<p class=\"note\">Erlang B is indicative only here: {}</p>",
            escape(c)
        );
    }
}
