//! Which hosts were busy when: a heat map of hosts × time for fleets.
//!
//! One row per host (host 0 at the bottom, in fleet order: groups in file
//! order), one column per time bin, coloured by the ports the host held,
//! time-averaged over the bin, on a scale from 0 to the busiest cell (a
//! colour bar on the right). Beside the map, on the same rows, the most
//! ports each row's host held at once over the run, against its pool, so a
//! host near its ceiling stands out. A fleet of more than
//! [`MAX_ROWS`](super::layers::MAX_ROWS) hosts is drawn in rows of several
//! neighbouring hosts: a row's colour is then the mean over its hosts and its
//! peak the busiest one's, and the chart says how many hosts a row holds.
//! Groups are separated by a line and named at their first row.

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::port_map::shade;
use super::{
    backends, count_label, frame, number_label, text, Area, Chart, Drawn, Input, TimeUnit, FAILURE,
    GRID, INK, TIME_WAIT,
};
use crate::report::summary::thousands;

pub struct HostMap;

impl Chart for HostMap {
    fn name(&self) -> &'static str {
        "hosts"
    }
    fn heading(&self) -> &'static str {
        "Ports held per host over time"
    }
    fn caption(&self) -> &'static str {
        "One row per host of the fleet (or per run of neighbouring hosts when there are more than 200), coloured by the ports it held, time-averaged per column; beside it, the most ports the row's host held at once against its pool."
    }
    fn applies(&self, input: &Input) -> bool {
        input.usage.is_some_and(|u| u.layers().hosts() >= 2)
    }
    fn size(&self) -> (u32, u32) {
        (1100, 760)
    }
    backends!(draw);
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
    let body = frame(
        input,
        area,
        &format!("Ports held per host over time — {}", r.scenario.name),
    )?;
    let (w, _) = body.dim_in_pixel();
    let (map_area, side) = body.split_horizontally(w.saturating_sub(330));
    let (peak_area, bar_area) = side.split_horizontally(220);
    let unit = TimeUnit::for_span(r.simulated_s);
    let x_end = unit.of(r.simulated_s).max(1e-9);
    let (per_row, rows) = l.host_rows();
    let (_, cols) = l.columns();
    let top = rows as f64;
    let scale = (0..rows)
        .flat_map(|row| (0..cols).map(move |c| (row, c)))
        .map(|(row, c)| l.host_cell(row, c).0)
        .fold(0.0, f64::max)
        .max(1.0);
    let row_label = move |v: &f64| {
        let i = v.round();
        if (v - i).abs() > 1e-6 || i < 0.0 || i >= top {
            return String::new();
        }
        thousands(i as u64 * u64::from(per_row))
    };
    let y_desc = if per_row == 1 {
        "host".to_string()
    } else {
        format!("host (rows of {per_row})")
    };

    let mut map = ChartBuilder::on(&map_area)
        .margin_right(28)
        .margin_top(4)
        .x_label_area_size(44)
        .y_label_area_size(86)
        .build_cartesian_2d(0f64..x_end, 0f64..top)?;
    map.configure_mesh()
        .disable_mesh()
        .y_labels(rows.min(10))
        .x_desc(format!("time since start ({})", unit.name))
        .y_desc(y_desc)
        .x_label_formatter(&|v| number_label(*v))
        .y_label_formatter(&row_label)
        .label_style(text(14.0))
        .axis_desc_style(text(16.0))
        .draw()?;
    // One rectangle per run of equal colour along a row, as the port map.
    let mut cells = Vec::new();
    for row in 0..rows {
        let mut c = 0;
        while c < cols {
            let colour = shade(l.host_cell(row, c).0 / scale);
            let mut end = c + 1;
            while end < cols && shade(l.host_cell(row, end).0 / scale) == colour {
                end += 1;
            }
            let t0 = unit.of(l.span(c).0 as f64 / 1e9);
            let (s, wd) = l.span(end - 1);
            let t1 = unit.of((s + wd) as f64 / 1e9).min(x_end);
            let y = row as f64;
            cells.push(Rectangle::new([(t0, y), (t1, y + 1.0)], colour.filled()));
            c = end;
        }
    }
    map.draw_series(cells)?;
    // Groups: a line at each boundary, the name at the group's first row.
    let groups = l.groups();
    if groups.len() > 1 {
        for g in groups {
            let y = f64::from(g.first) / f64::from(per_row);
            map.draw_series(std::iter::once(PathElement::new(
                [(0.0, y), (x_end, y)],
                INK.stroke_width(1),
            )))?;
            map.draw_series(std::iter::once(Text::new(
                format!(" {}", g.name),
                (0.0, y + 0.2),
                text(13.0).pos(Pos::new(HPos::Left, VPos::Bottom)),
            )))?;
        }
    }

    // Peak per row against its pool.
    let peaks: Vec<u64> = (0..rows)
        .map(|row| (0..cols).map(|c| l.host_cell(row, c).1).max().unwrap_or(0))
        .collect();
    let pool_of = |row: usize| {
        let first = row as u32 * per_row;
        groups
            .iter()
            .find(|g| first >= g.first && first < g.first + g.count)
            .map_or(0, |g| g.pool_per_host)
    };
    // Pools far above every peak would squash the bars: the axis then fits
    // the peaks and its description gives the pool instead.
    let peak_max = peaks.iter().copied().max().unwrap_or(0);
    let pool_min = (0..rows).map(pool_of).min().unwrap_or(0);
    let pool_max = (0..rows).map(pool_of).max().unwrap_or(0);
    let zoomed = (peak_max as f64) < 0.2 * pool_min as f64;
    let x_max = if zoomed {
        peak_max
    } else {
        peak_max.max(pool_max)
    }
    .max(1) as f64
        * 1.05;
    let x_desc = if !zoomed {
        "peak ports held (red: pool)".to_string()
    } else if pool_min == pool_max {
        format!("peak ports held (pool {})", count_label(pool_max as f64))
    } else {
        "peak ports held (pools off scale)".to_string()
    };
    let mut side = ChartBuilder::on(&peak_area)
        .margin_right(12)
        .margin_top(4)
        .x_label_area_size(44)
        .y_label_area_size(4)
        .build_cartesian_2d(0f64..x_max, 0f64..top)?;
    side.configure_mesh()
        .disable_y_mesh()
        .light_line_style(TRANSPARENT)
        .bold_line_style(GRID)
        .y_labels(0)
        .x_labels(3)
        .x_desc(x_desc)
        .x_label_formatter(&|v| count_label(*v))
        .label_style(text(13.0))
        .axis_desc_style(text(15.0))
        .draw()?;
    let pad = if rows > 60 { 0.0 } else { 0.15 };
    side.draw_series(peaks.iter().enumerate().map(|(row, &p)| {
        let y = row as f64;
        let colour = if p >= pool_of(row) {
            FAILURE
        } else {
            TIME_WAIT
        };
        Rectangle::new([(0.0, y + pad), (p as f64, y + 1.0 - pad)], colour.filled())
    }))?;
    // Each row's pool: a red tick at its end.
    side.draw_series((0..rows).filter(|_| !zoomed).map(|row| {
        let p = pool_of(row) as f64;
        PathElement::new(
            [(p, row as f64), (p, row as f64 + 1.0)],
            FAILURE.stroke_width(2),
        )
    }))?;

    // Colour bar, in ports held per host.
    let mut bar = ChartBuilder::on(&bar_area)
        .margin_top(28)
        .margin_right(10)
        .x_label_area_size(44)
        .y_label_area_size(56)
        .build_cartesian_2d(0f64..1.0, 0f64..scale)?;
    bar.configure_mesh()
        .disable_mesh()
        .disable_x_axis()
        .y_labels(5)
        .y_label_formatter(&|v| count_label(*v))
        .label_style(text(13.0))
        .draw()?;
    bar.draw_series((0..100).map(|i| {
        let a = f64::from(i) / 100.0;
        Rectangle::new(
            [(0.0, a * scale), (1.0, (a + 0.01) * scale)],
            shade(a + 0.005).filled(),
        )
    }))?;
    let (bw, _) = bar_area.dim_in_pixel();
    bar_area.draw(&Text::new(
        "ports held",
        (bw as i32 / 2, 4),
        text(13.0).pos(Pos::new(HPos::Center, VPos::Top)),
    ))?;
    bar_area.draw(&Text::new(
        "(mean per column)",
        (bw as i32 / 2, 18),
        text(11.0).pos(Pos::new(HPos::Center, VPos::Top)),
    ))?;
    Ok(())
}
