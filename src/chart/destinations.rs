//! Per-destination view: attempts to each destination, split into
//! established and failed, and how full each destination's pool of ports
//! got, for scenarios with several destinations.
//!
//! Where connect() shares ports across destinations each destination is a
//! pool of its own, so one hot destination can fail while the others are
//! fine; this chart is where that shows. Bars run across, one row per
//! destination named by its address (addresses are too long to sit side by
//! side under vertical bars), attempts on the left and, beside them on the
//! same rows, the peak of the destination's busiest pool as a share of the
//! pool's ports, so a destination near its ceiling stands out even when its
//! attempts look ordinary. With exclusive ports the pools are the source
//! addresses, not destinations, and the right panel is left out.

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{
    backends, count_label, count_ticks, frame, legend, swatch, text, Area, Chart, Drawn, Input,
    CONNECTIONS, FAILURE, GRID, MUTED, TIME_WAIT,
};
use crate::report::summary::{percent, thousands};

pub struct Destinations;

impl Chart for Destinations {
    fn name(&self) -> &'static str {
        "destinations"
    }
    fn heading(&self) -> &'static str {
        "Attempts per destination"
    }
    fn caption(&self) -> &'static str {
        "Connection attempts to each destination, established and failed, and (where ports are shared by 4-tuple, so each destination has its own pool) the peak of its pool as a share of the pool's ports. Failure ratios and peak shares are printed beside the bars when there are few enough to read."
    }
    fn applies(&self, input: &Input) -> bool {
        input.report.destinations.len() > 1
    }
    backends!(draw);
}

/// Rows named on the axis; beyond this every k-th is.
const NAMED: usize = 32;

/// Rows with their figures printed beside the bars.
const ANNOTATED: usize = 24;

fn draw<DB: DrawingBackend>(input: &Input, area: &Area<DB>) -> Drawn
where
    DB::ErrorType: 'static,
{
    let r = input.report;
    let body = frame(
        input,
        area,
        &format!("Attempts per destination — {}", r.scenario.name),
    )?;
    let d = &r.destinations;
    let n = d.len();
    // One row per destination, the first at the top.
    let row = |i: usize| (n - 1 - i) as f64;
    let names: Vec<String> = d.iter().map(|s| s.address.clone()).collect();
    let label = move |v: &f64| {
        let i = v.round();
        if (v - i).abs() > 1e-6 || i < 0.0 || i as usize >= n {
            return String::new();
        }
        names[n - 1 - i as usize].clone()
    };
    let peaks = &r.destination_pool_peaks;
    let size = f64::from(r.ports.usable.max(1));
    let (left, right) = if peaks.len() == n {
        let (w, _) = body.dim_in_pixel();
        let (l, r) = body.split_horizontally((f64::from(w) * 0.64) as u32);
        (l, Some(r))
    } else {
        (body, None)
    };
    let annotate = n <= ANNOTATED;
    let x_max = d.iter().map(|s| s.attempts).max().unwrap_or(0).max(1) as f64
        * if annotate { 1.3 } else { 1.05 };
    let y_range = -0.5f64..n as f64 - 0.5;
    let longest = d.iter().map(|s| s.address.len()).max().unwrap_or(0);
    let mut chart = ChartBuilder::on(&left)
        .margin_right(16)
        .x_label_area_size(48)
        .y_label_area_size((longest as u32 * 8 + 24).clamp(60, 200))
        .build_cartesian_2d(0f64..x_max, y_range.clone())?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .light_line_style(TRANSPARENT)
        .bold_line_style(GRID)
        .y_labels(n.min(NAMED))
        .x_labels(count_ticks(x_max).min(6))
        .x_desc("connection attempts")
        .y_desc("destination")
        .y_label_formatter(&label)
        .x_label_formatter(&|v| count_label(*v))
        .label_style(text(13.0))
        .axis_desc_style(text(15.0))
        .draw()?;
    let half = if n > 200 { 0.5 } else { 0.36 };
    chart
        .draw_series(d.iter().enumerate().map(|(i, s)| {
            let y = row(i);
            Rectangle::new(
                [(0.0, y - half), (s.established as f64, y + half)],
                CONNECTIONS.mix(0.85).filled(),
            )
        }))?
        .label("established")
        .legend(swatch(CONNECTIONS.mix(0.85).filled()));
    chart
        .draw_series(
            d.iter()
                .enumerate()
                .filter(|(_, s)| s.failures > 0)
                .map(|(i, s)| {
                    let y = row(i);
                    Rectangle::new(
                        [
                            (s.established as f64, y - half),
                            (s.attempts as f64, y + half),
                        ],
                        FAILURE.filled(),
                    )
                }),
        )?
        .label("failed")
        .legend(swatch(FAILURE.filled()));
    if annotate && r.failures > 0 {
        chart.draw_series(d.iter().enumerate().map(|(i, s)| {
            let ratio = crate::report::failure_ratio(s.failures, s.attempts);
            Text::new(
                format!(" {} failed", percent(ratio)),
                (s.attempts as f64, row(i)),
                text(12.0).pos(Pos::new(HPos::Left, VPos::Center)),
            )
        }))?;
    }
    // The legend goes by the shorter of the first and last rows.
    let corner = if d.first().map(|s| s.attempts) <= d.last().map(|s| s.attempts) {
        SeriesLabelPosition::UpperRight
    } else {
        SeriesLabelPosition::LowerRight
    };
    legend(&mut chart, corner)?;

    let Some(right) = right else {
        return Ok(());
    };
    let mut chart = ChartBuilder::on(&right)
        .margin_right(24)
        .x_label_area_size(48)
        .y_label_area_size(8)
        .build_cartesian_2d(0f64..if annotate { 125.0 } else { 100.0 }, y_range)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .light_line_style(TRANSPARENT)
        .bold_line_style(GRID)
        .y_labels(0)
        .x_labels(6)
        .x_desc(format!(
            "peak of its pool, % of {} ports",
            thousands(u64::from(r.ports.usable))
        ))
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
    let share = |p: u32| f64::from(p) / size * 100.0;
    chart.draw_series(peaks.iter().enumerate().map(|(i, &p)| {
        let y = row(i);
        let colour = if share(p) >= 100.0 {
            FAILURE
        } else {
            TIME_WAIT
        };
        Rectangle::new([(0.0, y - half), (share(p), y + half)], colour.filled())
    }))?;
    // The ceiling: a pool can hold no more than its ports.
    chart.draw_series(std::iter::once(PathElement::new(
        [(100.0, -0.5), (100.0, n as f64 - 0.5)],
        MUTED.stroke_width(1),
    )))?;
    if annotate {
        chart.draw_series(peaks.iter().enumerate().map(|(i, &p)| {
            Text::new(
                format!(" {}", percent(share(p) / 100.0)),
                (share(p), row(i)),
                text(12.0).pos(Pos::new(HPos::Left, VPos::Center)),
            )
        }))?;
    }
    Ok(())
}
