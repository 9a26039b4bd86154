//! Occupancy per layer: the client hosts' ports and each NAT's conntrack
//! entries over time, each against its own pool, for scenarios with a NAT.
//!
//! A connection holds a port on its host and a mapping at every NAT it
//! crosses, and each layer runs out on its own: pods with ports to spare
//! can still be dropped by their node's MASQUERADE. So the chart is one
//! panel per layer on a shared time axis, the hosts on top and the NATs
//! below in path (or file) order, each with its own scale: the
//! time-averaged level per column filled, the peak within each column as a
//! thin line, the layer's pool as a red line (a NAT's is addresses × ports
//! per address; a mapping needs a free outside port for its destination,
//! so with one destination that is its ceiling) and where the layer first
//! refused an attempt. A pool far above the data would flatten it, so then
//! the panel fits the data and says what share of the pool the peak took,
//! as the occupancy chart does. More NATs than [`MAX_NATS`] are not drawn,
//! and the chart says so.

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::layers::LayerUsage;
use super::{
    backends, count_label, frame, key_line, legend, number_label, swatch, text, Area, Chart, Drawn,
    Input, TimeUnit, CONNECTIONS, FAILURE, GRID, INK,
};
use crate::report::summary::{human_s, percent, thousands};

pub struct PerLayer;

/// NAT panels drawn at most.
pub const MAX_NATS: usize = 5;

/// The fill of a NAT's panel.
const MAPPINGS: RGBColor = RGBColor(130, 90, 175);

impl Chart for PerLayer {
    fn name(&self) -> &'static str {
        "layers"
    }
    fn heading(&self) -> &'static str {
        "Occupancy per layer"
    }
    fn caption(&self) -> &'static str {
        "One panel per layer a connection crosses: the ports held by all client hosts together, then each NAT's conntrack entries (mappings), time-averaged per column with the peak within each column as a thin line, against the layer's pool (red line: for a NAT, addresses × ports per address). A red vertical line marks where the hosts first refused an attempt, or a NAT first dropped a SYN."
    }
    fn applies(&self, input: &Input) -> bool {
        input.usage.is_some() && !input.report.nats.is_empty()
    }
    fn size(&self) -> (u32, u32) {
        (1100, 900)
    }
    backends!(draw);
}

/// One panel's data: its name, its pool, columns of (mean, peak), its first
/// refusal (s) and refusals.
struct Panel {
    title: String,
    y_desc: &'static str,
    fill: RGBColor,
    pool: u64,
    what: &'static str,
    cells: Vec<(f64, u64)>,
    first_failure_s: Option<f64>,
    /// What the red line marks: a refusal (hosts) or a dropped SYN (NAT).
    nat: bool,
    refused: u64,
}

fn panels(input: &Input, l: &LayerUsage) -> Vec<Panel> {
    let r = input.report;
    let (_, cols) = l.columns();
    let hosts = l.hosts();
    let (first, refused) = l.failures_at(0);
    let per_host = match l.groups() {
        [g] => format!("{} ports each", thousands(g.pool_per_host)),
        g => format!(
            "{} ports over {} groups",
            thousands(l.hosts_pool()),
            g.len()
        ),
    };
    let mut out = vec![Panel {
        title: if hosts == 1 {
            format!("client host: pool of {}", per_host.replace(" each", ""))
        } else {
            format!(
                "{} client hosts together: pool of {per_host}",
                thousands(u64::from(hosts))
            )
        },
        y_desc: "ports held",
        fill: CONNECTIONS,
        pool: l.hosts_pool(),
        what: "ports",
        cells: (0..cols).map(|c| l.hosts_total(c)).collect(),
        first_failure_s: first.map(|t| t as f64 / 1e9),
        nat: false,
        refused,
    }];
    for (n, nat) in r.nats.iter().enumerate().take(MAX_NATS.min(l.nats())) {
        let (_, refused) = l.failures_at(1 + n);
        out.push(Panel {
            title: format!(
                "NAT {}: pool of {} address{} × {} ports",
                nat.name,
                thousands(u64::from(nat.addresses)),
                if nat.addresses == 1 { "" } else { "es" },
                thousands(u64::from(nat.ports_per_address))
            ),
            y_desc: "mappings",
            fill: MAPPINGS,
            pool: u64::from(nat.addresses) * u64::from(nat.ports_per_address),
            what: "outside ports",
            cells: (0..cols).map(|c| l.nat_entries(n, c)).collect(),
            first_failure_s: nat.first_failure_s,
            nat: true,
            refused,
        });
    }
    out
}

fn draw<DB: DrawingBackend>(input: &Input, area: &Area<DB>) -> Drawn
where
    DB::ErrorType: 'static,
{
    let r = input.report;
    let Some(u) = input.usage else {
        return Ok(());
    };
    let l = u.layers();
    let shown = r.nats.len().min(MAX_NATS);
    let title = if r.nats.len() > shown {
        format!(
            "Occupancy per layer — {} (first {shown} of {} NATs)",
            r.scenario.name,
            r.nats.len()
        )
    } else {
        format!("Occupancy per layer — {}", r.scenario.name)
    };
    let body = frame(input, area, &title)?;
    let unit = TimeUnit::for_span(r.simulated_s);
    let x_end = unit.of(r.simulated_s).max(1e-9);
    let (col_ns, _) = l.columns();
    let x = |ns: u64| unit.of(ns as f64 / 1e9);
    let panels = panels(input, l);
    let n = panels.len();
    // The bottom panel also carries the time axis.
    let (_, h) = body.dim_in_pixel();
    let axis = 44u32;
    let each = (h.saturating_sub(axis)) / n as u32;
    let mut rest = body;
    for (i, p) in panels.iter().enumerate() {
        let last = i + 1 == n;
        let (here, below) = if last {
            (rest.clone(), rest.clone())
        } else {
            rest.split_vertically(each)
        };
        rest = below;
        let peak = p.cells.iter().map(|c| c.1).max().unwrap_or(0) as f64;
        let pool = p.pool as f64;
        let zoomed = peak < 0.2 * pool;
        let y_top = if zoomed {
            peak.max(1.0)
        } else {
            pool.max(peak)
        }
        .max(1.0)
            * 1.35;
        let mut chart = ChartBuilder::on(&here)
            .margin_right(24)
            .margin_top(4)
            .x_label_area_size(if last { axis } else { 6 })
            .y_label_area_size(86)
            .build_cartesian_2d(0f64..x_end, 0f64..y_top)?;
        let mut mesh = chart.configure_mesh();
        mesh.light_line_style(TRANSPARENT)
            .bold_line_style(GRID)
            .y_labels(4)
            .y_desc(p.y_desc)
            .y_label_formatter(&|v| count_label(*v))
            .x_label_formatter(&|v| number_label(*v))
            .label_style(text(13.0))
            .axis_desc_style(text(15.0));
        if last {
            mesh.x_desc(format!("time since start ({})", unit.name));
        } else {
            mesh.x_labels(0);
        }
        mesh.draw()?;
        let mid = |c: usize| {
            let (s, w) = l.span(c);
            x(s + w / 2)
        };
        let mean_key = chart.draw_series(AreaSeries::new(
            p.cells.iter().enumerate().map(|(c, v)| (mid(c), v.0)),
            0.0,
            p.fill.mix(0.75),
        ))?;
        if i == 0 {
            mean_key
                .label(format!(
                    "time-averaged per {} column",
                    human_s(col_ns as f64 / 1e9)
                ))
                .legend(swatch(p.fill.mix(0.75).filled()));
        }
        let peak_key = chart.draw_series(LineSeries::new(
            p.cells.iter().enumerate().flat_map(|(c, v)| {
                let (s, w) = l.span(c);
                [(x(s), v.1 as f64), (x(s + w), v.1 as f64)]
            }),
            INK.mix(0.55).stroke_width(1),
        ))?;
        if i == 0 {
            peak_key
                .label("peak within each column")
                .legend(key_line(INK.mix(0.55)));
        }
        // The pool's line; off the scale, a note in its place. The top
        // panel's legend names it for every panel.
        let pool_key = chart.draw_series(LineSeries::new(
            if zoomed {
                vec![]
            } else {
                vec![(0.0, pool), (x_end, pool)]
            },
            FAILURE.stroke_width(2),
        ))?;
        if i == 0 {
            pool_key
                .label("the layer's pool")
                .legend(key_line(FAILURE.stroke_width(2)));
        }
        chart.draw_series(std::iter::once(Text::new(
            p.title.clone(),
            (x_end * 0.008, y_top * 0.98),
            text(15.0).pos(Pos::new(HPos::Left, VPos::Top)),
        )))?;
        if zoomed {
            chart.draw_series(std::iter::once(Text::new(
                format!(
                    "pool of {} {} is off the scale: the peak used {} of it",
                    thousands(p.pool),
                    p.what,
                    percent(peak / pool.max(1.0))
                ),
                (x_end * 0.008, y_top * 0.86),
                text(14.0)
                    .color(&FAILURE)
                    .pos(Pos::new(HPos::Left, VPos::Top)),
            )))?;
        }
        if let Some(s) = p.first_failure_s {
            let fx = unit.of(s);
            chart.draw_series(std::iter::once(PathElement::new(
                [(fx, 0.0), (fx, y_top)],
                FAILURE.stroke_width(2),
            )))?;
            let right = fx < x_end * 0.55;
            let label = if p.nat {
                format!(
                    "first SYN dropped at {} ({} connects failed here)",
                    human_s(s),
                    thousands(p.refused)
                )
            } else {
                format!(
                    "first refused at {} ({} refused here)",
                    human_s(s),
                    thousands(p.refused)
                )
            };
            chart.draw_series(std::iter::once(Text::new(
                label,
                (fx + x_end * if right { 0.008 } else { -0.008 }, y_top * 0.8),
                text(14.0).color(&FAILURE).pos(Pos::new(
                    if right { HPos::Left } else { HPos::Right },
                    VPos::Center,
                )),
            )))?;
        }
        if i == 0 {
            legend(&mut chart, SeriesLabelPosition::UpperRight)?;
        }
    }
    Ok(())
}
