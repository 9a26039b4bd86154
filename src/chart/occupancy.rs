//! The headline chart: ports in use over time.
//!
//! Above, the time-averaged connections open and TIME_WAIT entries per bin,
//! stacked, with the peak within each bin (exhaustion shows as the peak
//! touching the pool line even where the average stays below it), the pool of
//! usable ports, Little's-law steady state rate × (hold + TIME_WAIT), and the
//! first failure. Below, on the same time axis, failed attempts per bin.
//! Where one port can carry several 4-tuples (several destinations sharing
//! ports), connections and TIME_WAIT count 4-tuples and the ports actually
//! held are drawn as a line of their own.

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{
    backends, count_label, count_ticks, frame, key_line, legend, muted, number_label, swatch, text,
    Area, Chart, Drawn, Input, TimeUnit, CONNECTIONS, FAILURE, GRID, INK, REFERENCE, TIME_WAIT,
};
use crate::report::summary::{human_s, pool_size, thousands};

pub struct Occupancy;

impl Chart for Occupancy {
    fn name(&self) -> &'static str {
        "occupancy"
    }
    fn heading(&self) -> &'static str {
        "Ports in use over time"
    }
    fn caption(&self) -> &'static str {
        "Ports held by open connections and by TIME_WAIT, averaged per time bin, against the pool of usable ports; the thin line is the peak within each bin. Failed attempts per bin are below."
    }
    fn size(&self) -> (u32, u32) {
        (1100, 720)
    }
    backends!(draw);
}

fn draw<DB: DrawingBackend>(input: &Input, area: &Area<DB>) -> Drawn
where
    DB::ErrorType: 'static,
{
    let r = input.report;
    let body = frame(
        input,
        area,
        &format!("Ports in use over time — {}", r.scenario.name),
    )?;
    let (_, h) = body.dim_in_pixel();
    let (top, bottom) = body.split_vertically((f64::from(h) * 0.72) as u32);
    let rows = r.series();
    let unit = TimeUnit::for_span(r.simulated_s);
    let x_end = unit.of(r.simulated_s).max(1e-9);
    let x = |ns: u64| unit.of(ns as f64 / 1e9);
    // A fleet's data adds up its hosts, so its pool line does too.
    let pool = if r.is_fleet() {
        r.hosts
            .iter()
            .map(|g| u64::from(g.max_count) * g.ports_per_host)
            .sum::<u64>() as f64
    } else {
        pool_size(r) as f64
    };
    let what = if r.is_fleet() {
        let hosts: u64 = r.hosts.iter().map(|g| u64::from(g.max_count)).sum();
        format!("usable ports over {} hosts", thousands(hosts))
    } else {
        "usable ports".to_string()
    };
    let peak = f64::from(r.ports.peak_in_use);
    let stacked_max = rows
        .iter()
        .map(|b| b.open + b.time_wait)
        .fold(0.0, f64::max);
    let steady_max = r.steady_state.iter().map(|p| p.1).fold(0.0, f64::max);
    // With lots of headroom the pool would flatten the data to a line at the
    // bottom: the axis then fits the data and a note gives the pool instead.
    let data_max = peak.max(stacked_max).max(steady_max);
    let zoomed = data_max < 0.2 * pool;
    let data_top = if zoomed {
        peak.max(stacked_max).max(1.0)
    } else {
        pool.max(peak).max(stacked_max).max(1.0)
    };
    // The steady-state curve is drawn in full when it is near the data; far
    // above it would squash the data, so it is cut at the top and a note
    // says by how much.
    let y_top = data_top.max(steady_max.min(1.6 * data_top)) * 1.32;
    let shared = rows
        .iter()
        .any(|b| (b.open + b.time_wait - b.in_use).abs() > 0.5);

    let mut chart = ChartBuilder::on(&top)
        .margin_right(24)
        .x_label_area_size(28)
        .y_label_area_size(86)
        .build_cartesian_2d(0f64..x_end, 0f64..y_top)?;
    chart
        .configure_mesh()
        .light_line_style(TRANSPARENT)
        .bold_line_style(GRID)
        .y_desc(if shared { "ports / 4-tuples" } else { "ports" })
        .y_label_formatter(&|v| count_label(*v))
        .x_label_formatter(&|v| number_label(*v))
        .label_style(text(14.0))
        .axis_desc_style(text(16.0))
        .draw()?;

    // Midpoint of each bin, so the curve sits where its average belongs.
    let mid = |b: &crate::report::SeriesRow| x(b.start_ns + b.width_ns / 2);
    let top_of_stack: Vec<(f64, f64)> = rows
        .iter()
        .map(|b| (mid(b), b.open + b.time_wait))
        .collect();
    let open: Vec<(f64, f64)> = rows.iter().map(|b| (mid(b), b.open)).collect();
    chart
        .draw_series(AreaSeries::new(top_of_stack, 0.0, TIME_WAIT))?
        .label(if shared {
            "4-tuples in TIME_WAIT (stacked)"
        } else {
            "held by TIME_WAIT (stacked)"
        })
        .legend(swatch(TIME_WAIT.filled()));
    chart
        .draw_series(AreaSeries::new(open, 0.0, CONNECTIONS))?
        .label("held by open connections")
        .legend(swatch(CONNECTIONS.filled()));
    if shared {
        chart
            .draw_series(LineSeries::new(
                rows.iter().map(|b| (mid(b), b.in_use)),
                CONNECTIONS.stroke_width(2),
            ))?
            .label("ports held (any 4-tuple)")
            .legend(key_line(CONNECTIONS.stroke_width(2)));
    }
    chart
        .draw_series(LineSeries::new(
            rows.iter().flat_map(|b| {
                let p = f64::from(b.in_use_peak);
                [(x(b.start_ns), p), (x(b.start_ns + b.width_ns), p)]
            }),
            INK.mix(0.55).stroke_width(1),
        ))?
        .label("peak within each bin")
        .legend(key_line(INK.mix(0.55)));
    if zoomed {
        chart.draw_series(std::iter::once(Text::new(
            format!(
                "pool of {} {what} is off the scale: the peak used {} of it",
                thousands(pool as u64),
                crate::report::summary::percent(peak / pool)
            ),
            (x_end * 0.01, y_top * 0.9),
            text(15.0).color(&FAILURE),
        )))?;
    } else {
        chart
            .draw_series(LineSeries::new(
                [(0.0, pool), (x_end, pool)],
                FAILURE.stroke_width(2),
            ))?
            .label(format!("pool: {} {what}", thousands(pool as u64)))
            .legend(key_line(FAILURE.stroke_width(2)));
    }
    let steady = &r.steady_state;
    let constant = steady.windows(2).all(|w| (w[0].1 - w[1].1).abs() < 1e-9);
    // A curve cut at the top says its peak in its legend entry, where no
    // other label can overlap it (a note inside the plot met the
    // first-failure label).
    let steady_label = if constant && steady_max <= y_top {
        format!(
            "rate × (hold + TIME_WAIT) = {}",
            thousands(steady_max.round() as u64)
        )
    } else if constant {
        format!(
            "rate × (hold + TIME_WAIT) = {}, above the chart",
            thousands(steady_max.round() as u64)
        )
    } else if steady_max > y_top {
        format!(
            "rate(t) × (hold + TIME_WAIT), peaks at {} above the chart",
            thousands(steady_max.round() as u64)
        )
    } else {
        "rate(t) × (hold + TIME_WAIT)".to_string()
    };
    if !steady.is_empty() && steady_max.is_finite() {
        chart
            .draw_series(DashedLineSeries::new(
                steady.iter().map(|&(t, v)| (unit.of(t), v.min(y_top))),
                10,
                6,
                REFERENCE.stroke_width(2),
            ))?
            .label(steady_label)
            .legend(key_line(REFERENCE.stroke_width(2)));
    }
    if let Some(f) = &r.first_failure {
        let fx = unit.of(f.time_s);
        chart.draw_series(std::iter::once(PathElement::new(
            [(fx, 0.0), (fx, y_top)],
            FAILURE.stroke_width(2),
        )))?;
        let label = format!(
            "first failure at {} (attempt {})",
            human_s(f.time_s),
            thousands(f.attempt)
        );
        // Keep the label inside the plot: right of the line in the left
        // half, left of it in the right half.
        let pos = if fx < x_end * 0.55 {
            Pos::new(HPos::Left, VPos::Top)
        } else {
            Pos::new(HPos::Right, VPos::Top)
        };
        let dx = x_end * if fx < x_end * 0.55 { 0.008 } else { -0.008 };
        chart.draw_series(std::iter::once(Text::new(
            label,
            (fx + dx, y_top * 0.985),
            text(15.0).color(&FAILURE).pos(pos),
        )))?;
    }
    legend(&mut chart, SeriesLabelPosition::UpperRight)?;

    // Failures per bin, same time axis.
    let bin_label = human_s(r.timeseries.bin_s);
    let max_fail = rows.iter().map(|b| b.failures).max().unwrap_or(0);
    let y_fail = (max_fail as f64 * 1.15).max(1.0);
    let mut lower = ChartBuilder::on(&bottom)
        .margin_right(24)
        .margin_top(6)
        .x_label_area_size(44)
        .y_label_area_size(86)
        .build_cartesian_2d(0f64..x_end, 0f64..y_fail)?;
    lower
        .configure_mesh()
        .light_line_style(TRANSPARENT)
        .bold_line_style(GRID)
        .y_labels(count_ticks(y_fail).min(5))
        .x_desc(format!("time since start ({})", unit.name))
        .y_desc(format!("failed per {bin_label}"))
        .x_label_formatter(&|v| number_label(*v))
        .y_label_formatter(&|v| count_label(*v))
        .label_style(text(14.0))
        .axis_desc_style(text(16.0))
        .draw()?;
    lower.draw_series(rows.iter().filter(|b| b.failures > 0).map(|b| {
        Rectangle::new(
            [
                (x(b.start_ns), 0.0),
                (x(b.start_ns + b.width_ns), b.failures as f64),
            ],
            FAILURE.filled(),
        )
    }))?;
    if max_fail == 0 {
        lower.draw_series(std::iter::once(Text::new(
            "no attempt failed",
            (x_end * 0.5, 0.55),
            muted(16.0).pos(Pos::new(HPos::Center, VPos::Center)),
        )))?;
    }
    Ok(())
}
