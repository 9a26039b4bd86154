//! Reuse-interval histogram: how long a port stayed free before it was
//! handed out again.
//!
//! The intervals come from the run's hdrhistogram, regrouped into bins of
//! equal width on a log time axis (eight per decade), because intervals span
//! microseconds (a port freed and taken at once near exhaustion) to hours.
//! TIME_WAIT is marked for scale, with the median and the 99th percentile.

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{
    backends, count_label, count_ticks, frame, legend, muted, seconds_label, swatch, text, Area,
    Chart, Drawn, Input, CONNECTIONS, FAILURE, GRID, INK, TIME_WAIT,
};
use crate::report::summary::human_s;

pub struct ReuseHistogram;

impl Chart for ReuseHistogram {
    fn name(&self) -> &'static str {
        "reuse"
    }
    fn heading(&self) -> &'static str {
        "How long ports sat free before reuse"
    }
    fn caption(&self) -> &'static str {
        "Time from a port becoming free (its TIME_WAIT over) to its next allocation, on a log time axis. Short intervals mean the allocator hands out ports as soon as they free up: the pool is close to exhausted."
    }
    backends!(draw);
}

/// Bins per decade of the log axis.
const PER_DECADE: f64 = 8.0;

/// (low edge s, high edge s, count) of each non-empty log bin.
pub fn log_bins(h: &hdrhistogram::Histogram<u64>) -> Vec<(f64, f64, u64)> {
    let mut bins: Vec<(i64, u64)> = Vec::new();
    for v in h.iter_recorded() {
        let s = h.median_equivalent(v.value_iterated_to()) as f64 / 1e9;
        let k = (s.max(1e-9).log10() * PER_DECADE).floor() as i64;
        match bins.last_mut() {
            Some((last, n)) if *last == k => *n += v.count_at_value(),
            _ => bins.push((k, v.count_at_value())),
        }
    }
    let edge = |k: i64| 10f64.powf(k as f64 / PER_DECADE);
    bins.into_iter()
        .map(|(k, n)| (edge(k), edge(k + 1), n))
        .collect()
}

fn draw<DB: DrawingBackend>(input: &Input, area: &Area<DB>) -> Drawn
where
    DB::ErrorType: 'static,
{
    let r = input.report;
    let body = frame(
        input,
        area,
        &format!("Reuse interval of ports — {}", r.scenario.name),
    )?;
    let bins = log_bins(&r.reuse_histogram);
    let tw = if r.scenario.close == crate::scenario::Close::Client {
        r.scenario.time_wait_s
    } else {
        0.0
    };
    let ri = &r.reuse_interval_s;
    let lo = bins.first().map_or(1e-3, |b| b.0);
    let hi = bins
        .last()
        .map_or(1.0, |b| b.1)
        .max(if tw > 0.0 { tw * 1.5 } else { 0.0 });
    let (x_lo, x_hi) = (
        10f64.powf(lo.log10().floor()),
        10f64
            .powf(hi.log10().ceil())
            .max(10f64.powf(lo.log10().floor() + 1.0)),
    );
    let y_max = bins.iter().map(|b| b.2).max().unwrap_or(0) as f64 * 1.25;
    let mut chart = ChartBuilder::on(&body)
        .margin_right(28)
        .x_label_area_size(48)
        .y_label_area_size(86)
        .build_cartesian_2d((x_lo..x_hi).log_scale(), 0f64..y_max.max(1.0))?;
    chart
        .configure_mesh()
        .light_line_style(TRANSPARENT)
        .bold_line_style(GRID)
        .y_labels(count_ticks(y_max.max(1.0)))
        .x_desc("time the port sat free before its next allocation (log scale)")
        .y_desc(format!("reuses per bin ({} bins per decade)", PER_DECADE))
        .x_label_formatter(&|v| seconds_label(*v))
        .y_label_formatter(&|v| count_label(*v))
        .label_style(text(14.0))
        .axis_desc_style(text(16.0))
        .draw()?;
    if bins.is_empty() {
        chart.draw_series(std::iter::once(Text::new(
            "no port was handed out twice in this run",
            ((x_lo * x_hi).sqrt(), 0.5),
            muted(18.0).pos(Pos::new(HPos::Center, VPos::Center)),
        )))?;
        return Ok(());
    }
    chart
        .draw_series(bins.iter().map(|&(a, b, n)| {
            Rectangle::new([(a, 0.0), (b, n as f64)], CONNECTIONS.mix(0.8).filled())
        }))?
        .label(format!(
            "{} reuses",
            crate::report::summary::thousands(ri.count)
        ))
        .legend(swatch(CONNECTIONS.mix(0.8).filled()));
    let top = y_max.max(1.0);
    let mut mark = |at: f64, color: RGBColor, label: String, row: f64| -> Drawn {
        if at <= 0.0 || at < x_lo || at > x_hi {
            return Ok(());
        }
        chart.draw_series(std::iter::once(PathElement::new(
            [(at, 0.0), (at, top)],
            color.stroke_width(2),
        )))?;
        // Right of the line, or left of it near the right edge.
        let (x, anchor) = if at.log10() < x_hi.log10() - 1.2 {
            (at * 1.15, HPos::Left)
        } else {
            (at / 1.15, HPos::Right)
        };
        chart.draw_series(std::iter::once(Text::new(
            label,
            (x, top * row),
            text(14.0).color(&color).pos(Pos::new(anchor, VPos::Top)),
        )))?;
        Ok(())
    };
    if tw > 0.0 {
        mark(tw, TIME_WAIT, format!("TIME_WAIT {}", human_s(tw)), 0.97)?;
    }
    if let Some(p50) = ri.p50 {
        mark(p50, INK, format!("p50 {}", human_s(p50)), 0.90)?;
    }
    if let Some(p99) = ri.p99 {
        mark(p99, FAILURE, format!("p99 {}", human_s(p99)), 0.83)?;
    }
    legend(&mut chart, SeriesLabelPosition::UpperLeft)?;
    Ok(())
}
