//! Reuse-interval histogram: how long a port stayed free before it was
//! handed out again.
//!
//! The intervals come from the run's hdrhistogram, regrouped into bins of
//! equal width on a log time axis (eight per decade), because intervals span
//! microseconds (a port freed and taken at once near exhaustion) to hours.
//! TIME_WAIT is marked for scale (the server's with `close = "server"`),
//! with the median and the 99th percentile.
//!
//! The axis spans the data (and TIME_WAIT), at least one decade, and not
//! past the run's length where the data allow: no interval is longer than
//! the run. Its ticks are picked here from round durations (decades up to
//! 10 s, 1 and 10 min, hours, days; then 2 and 5 of each decade, 20 and
//! 30 s, 2, 5, 20 and 30 min...), kept only where labels stay apart on the
//! log scale; plotters' own log ticks crowd the top of a decade
//! ("15.0 min16.7 min"). A mark's label goes on the side of its
//! line with room, so it never runs past the axis.

use plotters::coord::combinators::BindKeyPoints;
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

/// Round durations, seconds, that a log time axis may tick at: first the
/// decades up to 10 s and 1 min, 10 min, 1 h, 10 h, 1 d, 10 d; then the
/// steps between them.
fn round_durations() -> [Vec<f64>; 2] {
    let mut major: Vec<f64> = (-9..=1).map(|e| 10f64.powi(e)).collect();
    major.extend([60.0, 600.0, 3600.0, 36000.0, 86400.0, 864_000.0]);
    let mut minor: Vec<f64> = (-9..=0)
        .flat_map(|e| [2.0, 5.0].map(|m| m * 10f64.powi(e)))
        .collect();
    minor.extend([
        20.0, 30.0, 120.0, 300.0, 1200.0, 1800.0, 7200.0, 18000.0, 172_800.0, 432_000.0,
    ]);
    [major, minor]
}

/// Ticks for a log axis over `[lo, hi]`: round durations at least 1/14 of
/// the axis (in log, some 65 pixels of the plot) apart, so no two labels
/// touch; decades first.
pub fn log_time_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let gap = (hi / lo).log10() / 14.0;
    let mut out: Vec<f64> = Vec::new();
    for tier in round_durations() {
        for t in tier {
            let inside = t >= lo * (1.0 - 1e-9) && t <= hi * (1.0 + 1e-9);
            if inside && out.iter().all(|&p| (t / p).log10().abs() >= gap) {
                out.push(t);
            }
        }
    }
    out.sort_by(f64::total_cmp);
    out
}

/// A tick label for a round duration: "500 ms", "20 s", "5 min", "2 h", "1 d".
fn tick_label(s: f64) -> String {
    let whole = |unit: f64| s >= unit && (s / unit - (s / unit).round()).abs() < 1e-9;
    if whole(86400.0) {
        format!("{} d", (s / 86400.0).round())
    } else if whole(3600.0) {
        format!("{} h", (s / 3600.0).round())
    } else if whole(60.0) {
        format!("{} min", (s / 60.0).round())
    } else {
        seconds_label(s)
    }
}

/// The axis range: the data from `lo` to `hi` with a margin, at least a
/// decade wide, ending at the run's length `run_s` when the data end
/// before it and the decade can grow to the left instead.
pub fn log_axis(lo: f64, hi: f64, run_s: f64) -> (f64, f64) {
    let mut x_hi = hi * 1.25;
    if run_s >= hi && run_s < x_hi {
        x_hi = run_s;
    }
    let x_lo = (lo / 1.25).min(x_hi / 10.0);
    (x_lo, x_hi)
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
    // The host's TIME_WAIT, or with server close the server's, which a port
    // back sooner meets on the same 4-tuple.
    use crate::scenario::Close;
    let (tw, tw_label) = match r.scenario.close {
        Close::Client => (r.scenario.time_wait_s, "TIME_WAIT"),
        Close::Server => (r.scenario.time_wait_s, "server's TIME_WAIT"),
        Close::Reset => (0.0, ""),
    };
    let ri = &r.reuse_interval_s;
    let lo = bins.first().map_or(1e-3, |b| b.0);
    let hi = bins
        .last()
        .map_or(1.0, |b| b.1)
        .max(if tw > 0.0 { tw * 1.5 } else { 0.0 });
    let (x_lo, x_hi) = log_axis(lo, hi, r.simulated_s);
    let ticks = log_time_ticks(x_lo, x_hi);
    let y_max = bins.iter().map(|b| b.2).max().unwrap_or(0) as f64 * 1.25;
    let mut chart = ChartBuilder::on(&body)
        .margin_right(28)
        .x_label_area_size(48)
        .y_label_area_size(86)
        .build_cartesian_2d(
            (x_lo..x_hi).log_scale().with_key_points(ticks),
            0f64..y_max.max(1.0),
        )?;
    chart
        .configure_mesh()
        .light_line_style(TRANSPARENT)
        .bold_line_style(GRID)
        .y_labels(count_ticks(y_max.max(1.0)))
        .x_desc("time the port sat free before its next allocation (log scale)")
        .y_desc(format!("reuses per bin ({} bins per decade)", PER_DECADE))
        .x_label_formatter(&|v| tick_label(*v))
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
        // Right of the line in the left half of the axis, else left of it.
        let f = (at / x_lo).log10() / (x_hi / x_lo).log10();
        let (x, anchor) = if f < 0.5 {
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
        mark(tw, TIME_WAIT, format!("{tw_label} {}", human_s(tw)), 0.97)?;
    }
    if let Some(p50) = ri.p50 {
        mark(p50, INK, format!("p50 {}", human_s(p50)), 0.90)?;
    }
    if let Some(p99) = ri.p99 {
        mark(p99, FAILURE, format!("p99 {}", human_s(p99)), 0.83)?;
    }
    // The legend where the marks' labels are not.
    let right = ri
        .p50
        .is_some_and(|p| (p / x_lo).log10() < 0.5 * (x_hi / x_lo).log10());
    legend(
        &mut chart,
        if right {
            SeriesLabelPosition::UpperRight
        } else {
            SeriesLabelPosition::UpperLeft
        },
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_axis_stays_within_the_run_and_spans_a_decade() {
        // keep-alive.toml: reuses at 100-178 s in a 180 s run.
        let (lo, hi) = log_axis(100.0, 177.8, 180.0);
        assert_eq!(hi, 180.0);
        assert_eq!(lo, 18.0);
        // Data past the run's length cannot be; data well inside it get a margin.
        assert_eq!(log_axis(1e-3, 1.0, 600.0), (1e-3 / 1.25, 1.25));
    }

    #[test]
    fn log_ticks_are_round_and_apart() {
        let t = log_time_ticks(18.0, 180.0);
        assert_eq!(t, vec![20.0, 30.0, 60.0, 120.0]);
        let labels: Vec<String> = t.iter().map(|&x| tick_label(x)).collect();
        assert_eq!(labels, ["20 s", "30 s", "1 min", "2 min"]);
        // Eight decades: never two ticks within 1/14 of the axis.
        let t = log_time_ticks(1e-6, 100.0);
        for w in t.windows(2) {
            assert!((w[1] / w[0]).log10() >= 8.0 / 14.0 - 1e-9, "{t:?}");
        }
        assert!(t.len() >= 5, "{t:?}");
    }
}
