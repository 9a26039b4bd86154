//! Cloud NAT view: how full each outside address got, and how full the
//! fullest host block got, for scenarios with a cloud NAT.
//!
//! A cloud NAT runs out in two ways the other charts do not show: an
//! address's ports (a shared pool, or the blocks handed out on it), and one
//! host's block, which can be full while the addresses look half empty.
//! So the rows are, per cloud NAT, one per outside address (its peak ports
//! in use as a share of its ports, with the hosts that have a block there)
//! and one for the fullest block (the most of its block any host had in use,
//! against the block's size then, with the hosts left without one and the
//! failures by cause). Bars run across so the
//! long labels sit on the axis; a full bar is red.

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{backends, frame, text, Area, Chart, Drawn, Input, FAILURE, GRID, MUTED, TIME_WAIT};
use crate::report::summary::thousands;

pub struct CloudNats;

impl Chart for CloudNats {
    fn name(&self) -> &'static str {
        "cloud_nats"
    }
    fn heading(&self) -> &'static str {
        "Cloud NAT ports"
    }
    fn caption(&self) -> &'static str {
        "For each cloud NAT: the peak of each outside address's ports in use, with the hosts that have a block on it, and the fullest any host's block got (its ports in use against the block's size then), with the hosts that got no block and the NAT's failures by cause. A red bar is full."
    }
    fn applies(&self, input: &Input) -> bool {
        input.report.nats.iter().any(|n| n.cloud.is_some())
    }
    backends!(draw);
}

/// Addresses shown per NAT; the rest are summed up in one row.
const ADDRESSES_SHOWN: usize = 8;

/// One bar: its label, share of the ceiling (%), and the note beside it.
struct Row {
    label: String,
    share: f64,
    note: String,
}

fn rows(input: &Input) -> Vec<Row> {
    let mut out = Vec::new();
    for n in &input.report.nats {
        let Some(c) = &n.cloud else { continue };
        let per = f64::from(n.ports_per_address.max(1));
        for a in c.per_address.iter().take(ADDRESSES_SHOWN) {
            out.push(Row {
                label: format!("{} · {}", n.name, a.address),
                share: f64::from(a.peak_in_use) / per * 100.0,
                note: format!(
                    "{} of {}{}",
                    thousands(u64::from(a.peak_in_use)),
                    thousands(u64::from(n.ports_per_address)),
                    if c.ports_per_host > 0 {
                        format!(", {} hosts with a block", thousands(u64::from(a.hosts)))
                    } else {
                        String::new()
                    }
                ),
            });
        }
        if c.per_address.len() > ADDRESSES_SHOWN {
            let rest = &c.per_address[ADDRESSES_SHOWN..];
            let peak = rest.iter().map(|a| a.peak_in_use).max().unwrap_or(0);
            out.push(Row {
                label: format!("{} · {} more addresses", n.name, rest.len()),
                share: f64::from(peak) / per * 100.0,
                note: format!(
                    "busiest {} of {}",
                    thousands(u64::from(peak)),
                    thousands(u64::from(n.ports_per_address))
                ),
            });
        }
        if c.ports_per_host > 0 {
            let [used, block] = c.fullest_block;
            let block = block.max(1);
            let f = &n.failures_by_cause;
            let causes: Vec<String> = [
                (f.no_port, "no port"),
                (f.no_block, "no block"),
                (f.per_destination, "per-destination cap"),
                (f.endpoint_independence_conflict, "EIM conflict"),
                (f.allocation_in_flight, "doubling"),
            ]
            .iter()
            .filter(|(k, _)| *k > 0)
            .map(|(k, w)| format!("{w} {}", thousands(*k)))
            .collect();
            out.push(Row {
                label: format!("{} · fullest block", n.name),
                share: f64::from(used) / f64::from(block) * 100.0,
                note: format!(
                    "{} of {} ports of one host{}{}",
                    thousands(u64::from(used)),
                    thousands(u64::from(block)),
                    if n.hosts_without_ports > 0 {
                        format!(
                            "; {} hosts without ports",
                            thousands(u64::from(n.hosts_without_ports))
                        )
                    } else {
                        String::new()
                    },
                    if causes.is_empty() {
                        String::new()
                    } else {
                        format!("; failed: {}", causes.join(", "))
                    }
                ),
            });
        }
    }
    out
}

fn draw<DB: DrawingBackend>(input: &Input, area: &Area<DB>) -> Drawn
where
    DB::ErrorType: 'static,
{
    let r = input.report;
    let body = frame(
        input,
        area,
        &format!("Cloud NAT ports — {}", r.scenario.name),
    )?;
    let rows = rows(input);
    let n = rows.len().max(1);
    let row = |i: usize| (n - 1 - i) as f64;
    let names: Vec<String> = rows.iter().map(|r| r.label.clone()).collect();
    let label = move |v: &f64| {
        let i = v.round();
        if (v - i).abs() > 1e-6 || i < 0.0 || i as usize >= names.len() {
            return String::new();
        }
        names[n - 1 - i as usize].clone()
    };
    let longest = rows
        .iter()
        .map(|r| r.label.chars().count())
        .max()
        .unwrap_or(0);
    let mut chart = ChartBuilder::on(&body)
        .margin_right(24)
        .x_label_area_size(48)
        .y_label_area_size((longest as u32 * 8 + 24).clamp(60, 320))
        .build_cartesian_2d(0f64..200.0, -0.5f64..n as f64 - 0.5)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .light_line_style(TRANSPARENT)
        .bold_line_style(GRID)
        .y_labels(n)
        .x_labels(11)
        .x_desc("peak in use, % of the address's ports or the host's block")
        .y_label_formatter(&label)
        .x_label_formatter(&|v| {
            if *v <= 100.0 {
                format!("{v:.0}")
            } else {
                String::new()
            }
        })
        .label_style(text(13.0))
        .axis_desc_style(text(15.0))
        .draw()?;
    chart.draw_series(rows.iter().enumerate().map(|(i, w)| {
        let y = row(i);
        let colour = if w.share >= 100.0 { FAILURE } else { TIME_WAIT };
        Rectangle::new(
            [(0.0, y - 0.36), (w.share.min(100.0), y + 0.36)],
            colour.filled(),
        )
    }))?;
    chart.draw_series(std::iter::once(PathElement::new(
        [(100.0, -0.5), (100.0, n as f64 - 0.5)],
        MUTED.stroke_width(1),
    )))?;
    chart.draw_series(rows.iter().enumerate().map(|(i, w)| {
        Text::new(
            format!(" {}", w.note),
            (w.share.min(100.0), row(i)),
            text(12.0).pos(Pos::new(HPos::Left, VPos::Center)),
        )
    }))?;
    Ok(())
}
