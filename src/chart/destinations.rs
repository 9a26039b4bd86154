//! Per-destination view: attempts to each destination, split into
//! established and failed, for scenarios with several destinations.
//!
//! Where connect() shares ports across destinations each destination is a
//! pool of its own, so one hot destination can fail while the others are
//! fine; this chart is where that shows.

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{
    backends, count_label, count_ticks, frame, legend, swatch, text, Area, Chart, Drawn, Input,
    CONNECTIONS, FAILURE, GRID,
};
use crate::report::summary::percent;

pub struct Destinations;

impl Chart for Destinations {
    fn name(&self) -> &'static str {
        "destinations"
    }
    fn heading(&self) -> &'static str {
        "Attempts per destination"
    }
    fn caption(&self) -> &'static str {
        "Connection attempts to each destination, established and failed. Each destination's failure ratio is printed above its bar when there are few enough to read."
    }
    fn applies(&self, input: &Input) -> bool {
        input.report.destinations.len() > 1
    }
    backends!(draw);
}

/// Destinations named on the axis; beyond this they are numbered.
const NAMED: usize = 8;

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
    let y_max = d.iter().map(|s| s.attempts).max().unwrap_or(0) as f64 * 1.25;
    let names: Vec<String> = d.iter().map(|s| s.address.clone()).collect();
    let mut chart = ChartBuilder::on(&body)
        .margin_right(24)
        .x_label_area_size(48)
        .y_label_area_size(86)
        .build_cartesian_2d(-0.5f64..n as f64 - 0.5, 0f64..y_max.max(1.0))?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .light_line_style(TRANSPARENT)
        .bold_line_style(GRID)
        .x_labels(n.min(NAMED.max(12)))
        .x_desc(if n <= NAMED {
            "destination"
        } else {
            "destination (number, in scenario order)"
        })
        .y_labels(count_ticks(y_max.max(1.0)))
        .y_desc("connection attempts")
        .x_label_formatter(&|v| {
            let i = v.round();
            if (v - i).abs() > 1e-6 || i < 0.0 || i as usize >= n {
                return String::new();
            }
            if n <= NAMED {
                names[i as usize].clone()
            } else {
                format!("{}", i as usize + 1)
            }
        })
        .y_label_formatter(&|v| count_label(*v))
        .label_style(text(14.0))
        .axis_desc_style(text(16.0))
        .draw()?;
    let half = if n > 200 { 0.5 } else { 0.38 };
    chart
        .draw_series(d.iter().enumerate().map(|(i, s)| {
            let x = i as f64;
            Rectangle::new(
                [(x - half, 0.0), (x + half, s.established as f64)],
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
                    let x = i as f64;
                    Rectangle::new(
                        [
                            (x - half, s.established as f64),
                            (x + half, s.attempts as f64),
                        ],
                        FAILURE.filled(),
                    )
                }),
        )?
        .label("failed")
        .legend(swatch(FAILURE.filled()));
    if n <= 12 && r.failures > 0 {
        chart.draw_series(d.iter().enumerate().map(|(i, s)| {
            let ratio = crate::report::failure_ratio(s.failures, s.attempts);
            Text::new(
                format!("{} failed", percent(ratio)),
                (i as f64, s.attempts as f64 + y_max * 0.02),
                text(13.0).pos(Pos::new(HPos::Center, VPos::Bottom)),
            )
        }))?;
    }
    legend(&mut chart, SeriesLabelPosition::UpperRight)?;
    Ok(())
}
