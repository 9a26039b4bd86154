//! The sweep chart: failure ratio against the first varied key, with its
//! 95 % band over seeds and the Erlang B curve of the same points, one line
//! per value of the other varied keys.
//!
//! Lines of different groups that sit at 0 % everywhere would hide under
//! each other, so such a group says so in its legend entry. On the log
//! panel a line joins only measured (positive) figures: a point with no
//! failure is an open circle on the floor, never joined to its neighbours
//! by a slope that was not measured; Erlang B below the floor likewise
//! stops instead of running down to it.
//!
//! It draws from a [`SweepReport`] rather than a run's report, so it is not
//! in [`super::CHARTS`]; the `sweep.png` and `sweep.svg` exporters of
//! [`crate::export`] call it.

use plotters::prelude::*;

use super::{
    frame_with, key_line, legend, number_label, png_with, svg_with, text, Area, Drawn, GRID, INK,
    MUTED,
};
use crate::report::summary::percent;
use crate::sweep::output::{PointFigures, SweepReport};
use crate::sweep::quantity;

pub const SIZE: (u32, u32) = (1100, 900);

const PALETTE: [RGBColor; 6] = [
    RGBColor(49, 110, 180),
    RGBColor(220, 110, 30),
    RGBColor(40, 140, 80),
    RGBColor(150, 60, 160),
    RGBColor(190, 40, 40),
    RGBColor(90, 90, 90),
];

pub fn svg(r: &SweepReport) -> Result<String, String> {
    svg_with(SIZE, |a| draw(r, a))
}

pub fn png(r: &SweepReport) -> Result<Vec<u8>, String> {
    png_with(SIZE, |a| draw(r, a))
}

/// x position of each point: the number or duration (s) its value is, if
/// every value of the key is one; else its place among the distinct values,
/// which come back as the axis labels.
fn positions(r: &SweepReport) -> (Vec<f64>, Option<Vec<String>>) {
    let values = || r.points.iter().map(|p| p.point.values[0].as_str());
    if let Some(xs) = values().map(|v| quantity(v).map(|(x, _)| x)).collect() {
        return (xs, None);
    }
    let mut labels: Vec<String> = Vec::new();
    let xs = values()
        .map(|v| {
            let i = labels.iter().position(|s| s == v).unwrap_or_else(|| {
                labels.push(v.to_string());
                labels.len() - 1
            });
            i as f64
        })
        .collect();
    (xs, Some(labels))
}

fn draw<DB: DrawingBackend>(r: &SweepReport, area: &Area<DB>) -> Drawn
where
    DB::ErrorType: 'static,
{
    let key = r.keys.first().cloned().unwrap_or_default();
    let body = frame_with(
        area,
        &format!("Failure ratio against {key} — {}", r.scenario),
        &format!(
            "portsim {} · scenario {} · {} seed{} per point from seed {}",
            r.portsim_version,
            r.scenario,
            r.seeds,
            if r.seeds == 1 { "" } else { "s" },
            r.base_seed
        ),
        &format!("{} points", r.points.len()),
    )?;
    let (xs, labels) = positions(r);
    let numeric = labels.is_none();
    let figures: Vec<PointFigures> = r.points.iter().map(|p| p.figures()).collect();
    // Series: one per combination of the other keys' values, in plan order.
    let mut groups: Vec<(String, Vec<usize>)> = Vec::new();
    for (i, p) in r.points.iter().enumerate() {
        let label = r.keys[1..]
            .iter()
            .zip(&p.point.values[1..])
            .map(|(k, v)| format!("{k} = {v}"))
            .collect::<Vec<_>>()
            .join(", ");
        match groups.iter_mut().find(|g| g.0 == label) {
            Some(g) => g.1.push(i),
            None => groups.push((label, vec![i])),
        }
    }
    let (x_lo, x_hi) = xs
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| {
            (a.min(x), b.max(x))
        });
    let (x_lo, x_hi) = if x_lo.is_finite() && x_hi > x_lo {
        let pad = (x_hi - x_lo) * 0.03;
        (x_lo - pad, x_hi + pad)
    } else {
        (x_lo.min(0.0) - 0.5, x_hi.max(0.0) + 0.5)
    };
    let y_max = figures
        .iter()
        .map(|f| f.failure_ratio.high)
        .chain(r.points.iter().map(|p| p.point.erlang_b_failure_ratio))
        .fold(0.0, f64::max)
        .max(1e-6)
        * 1.15;
    let (_, h) = body.dim_in_pixel();
    let (top, bottom) = body.split_vertically((f64::from(h) * 0.6) as u32);
    let mut chart = ChartBuilder::on(&top)
        .margin_right(28)
        .x_label_area_size(48)
        .y_label_area_size(86)
        .build_cartesian_2d(x_lo..x_hi, 0f64..y_max)?;
    chart
        .configure_mesh()
        .light_line_style(TRANSPARENT)
        .bold_line_style(GRID)
        .x_desc(key.clone())
        .y_desc("failed attempts (mean over seeds, 95 % band)")
        .x_label_formatter(&|v| {
            let Some(labels) = &labels else {
                return number_label(*v);
            };
            let i = v.round();
            if (v - i).abs() < 1e-6 && i >= 0.0 {
                labels.get(i as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .y_label_formatter(&|v| percent(*v))
        .label_style(text(14.0))
        .axis_desc_style(text(16.0))
        .draw()?;
    for (g, (label, idx)) in groups.iter().enumerate() {
        let colour = PALETTE[g % PALETTE.len()];
        let mut band: Vec<(f64, f64)> = idx
            .iter()
            .map(|&i| (xs[i], figures[i].failure_ratio.high.min(y_max)))
            .collect();
        band.extend(
            idx.iter()
                .rev()
                .map(|&i| (xs[i], figures[i].failure_ratio.low.max(0.0))),
        );
        chart.draw_series(std::iter::once(Polygon::new(
            band,
            colour.mix(0.18).filled(),
        )))?;
        let name = if label.is_empty() {
            "simulated".to_string()
        } else {
            label.clone()
        };
        let name = if idx.iter().all(|&i| figures[i].failure_ratio.mean == 0.0) {
            format!("{name}: no failure at any point")
        } else {
            name
        };
        chart
            .draw_series(LineSeries::new(
                idx.iter().map(|&i| (xs[i], figures[i].failure_ratio.mean)),
                colour.stroke_width(2),
            ))?
            .label(name)
            .legend(key_line(colour.stroke_width(2)));
        chart
            .draw_series(idx.iter().map(|&i| {
                Circle::new((xs[i], figures[i].failure_ratio.mean), 3, colour.filled())
            }))?;
        // Dark dashes on top of the simulated line, so agreement shows as
        // a dashed line inside the band.
        let dash = if groups.len() == 1 { INK } else { colour };
        chart.draw_series(DashedLineSeries::new(
            idx.iter()
                .map(|&i| (xs[i], r.points[i].point.erlang_b_failure_ratio)),
            7,
            6,
            dash.stroke_width(2),
        ))?;
    }
    // One legend entry for every dashed Erlang B line, after the series.
    chart
        .draw_series(std::iter::empty::<PathElement<(f64, f64)>>())?
        .label("Erlang B (dashed)")
        .legend(key_line(INK.stroke_width(2)));
    legend(&mut chart, SeriesLabelPosition::UpperLeft)?;
    log_panel(r, &bottom, &xs, &figures, &groups, (x_lo, x_hi), numeric)
}

/// The runs of consecutive points at or above `floor`, each of two points
/// or more: what a line on a log axis may join.
fn above(points: &[(f64, f64)], floor: f64) -> Vec<Vec<(f64, f64)>> {
    let mut runs: Vec<Vec<(f64, f64)>> = vec![Vec::new()];
    for &(x, y) in points {
        if y >= floor {
            runs.last_mut().expect("never empty").push((x, y));
        } else if !runs.last().expect("never empty").is_empty() {
            runs.push(Vec::new());
        }
    }
    runs.retain(|r| r.len() >= 2);
    runs
}

/// The same curves on a log scale, where targets such as 1e-4 live. Zero
/// (no failure in any seed) cannot be drawn on a log axis: such points sit
/// on the floor as open circles.
fn log_panel<DB: DrawingBackend>(
    r: &SweepReport,
    area: &Area<DB>,
    xs: &[f64],
    figures: &[PointFigures],
    groups: &[(String, Vec<usize>)],
    (x_lo, x_hi): (f64, f64),
    numeric: bool,
) -> Drawn
where
    DB::ErrorType: 'static,
{
    let positive = figures
        .iter()
        .map(|f| f.failure_ratio.mean)
        .chain(r.points.iter().map(|p| p.point.erlang_b_failure_ratio))
        .filter(|&v| v >= 1e-9)
        .fold(f64::INFINITY, f64::min);
    // Down to at least 1e-6, where failure targets are set, and to the
    // smallest figure shown (not below 1e-9).
    let floor = if positive.is_finite() {
        10f64.powf(positive.log10().floor()).clamp(1e-9, 1e-6)
    } else {
        1e-6
    };
    let mut chart = ChartBuilder::on(area)
        .margin_right(28)
        .margin_top(10)
        .x_label_area_size(48)
        .y_label_area_size(86)
        .build_cartesian_2d(x_lo..x_hi, (floor..1.0).log_scale())?;
    chart
        .configure_mesh()
        .light_line_style(TRANSPARENT)
        .bold_line_style(GRID)
        .x_desc(r.keys.first().cloned().unwrap_or_default())
        .y_desc("failure ratio, log scale")
        .x_label_formatter(&|v| {
            if numeric {
                number_label(*v)
            } else {
                String::new()
            }
        })
        .y_label_formatter(&|v| format!("{:.0e}", v))
        .label_style(text(14.0))
        .axis_desc_style(text(16.0))
        .draw()?;
    let at = |v: f64| v.max(floor);
    for (g, (_, idx)) in groups.iter().enumerate() {
        let colour = PALETTE[g % PALETTE.len()];
        let simulated: Vec<(f64, f64)> = idx
            .iter()
            .map(|&i| (xs[i], figures[i].failure_ratio.mean))
            .collect();
        for run in above(&simulated, floor) {
            chart.draw_series(LineSeries::new(run, colour.stroke_width(2)))?;
        }
        chart.draw_series(idx.iter().map(|&i| {
            let m = figures[i].failure_ratio.mean;
            let style = if m >= floor {
                colour.filled()
            } else {
                colour.stroke_width(1)
            };
            Circle::new((xs[i], at(m)), 3, style)
        }))?;
        let dash = if groups.len() == 1 { INK } else { colour };
        let erlang: Vec<(f64, f64)> = idx
            .iter()
            .map(|&i| (xs[i], r.points[i].point.erlang_b_failure_ratio))
            .collect();
        for run in above(&erlang, floor) {
            chart.draw_series(DashedLineSeries::new(run, 7, 6, dash.stroke_width(2)))?;
        }
    }
    if figures.iter().any(|f| f.failure_ratio.mean < floor) {
        chart.draw_series(std::iter::once(Text::new(
            format!("open circles: no failure in any seed (drawn at {floor:.0e})"),
            (x_lo + (x_hi - x_lo) * 0.01, 0.5),
            text(14.0).color(&MUTED),
        )))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::above;

    #[test]
    fn log_lines_join_only_measured_points() {
        let pts = [
            (1.0, 0.0),
            (2.0, 1e-5),
            (3.0, 1e-4),
            (4.0, 0.0),
            (5.0, 1e-3),
            (6.0, 1e-9),
            (7.0, 1e-2),
        ];
        assert_eq!(
            above(&pts, 1e-8),
            vec![vec![(2.0, 1e-5), (3.0, 1e-4)]],
            "a lone point is a marker, not a line"
        );
        assert_eq!(above(&pts, 1e-10).len(), 2);
        assert!(above(&[(1.0, 0.0), (2.0, 0.0)], 1e-8).is_empty());
    }
}
