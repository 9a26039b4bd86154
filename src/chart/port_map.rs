//! Port usage map: which ports were held when, and how often each was used.
//!
//! Above, a heat map of ports (in blocks) against time, coloured by the share
//! of each block's ports that was held. Each block is drawn as two bands, its
//! even ports below its odd ports, so Linux's even-first search shows as
//! stripes, a sequential allocator as a diagonal sweep, and a random one as
//! an even wash. Below, allocations per port for even and odd ports.

use plotters::prelude::*;

use super::{
    backends, count_label, frame, key_line, legend, number_label, text, Area, Chart, Drawn, Input,
    TimeUnit, CONNECTIONS, GRID, TIME_WAIT,
};
use crate::report::summary::addresses_used;

pub struct PortMap;

impl Chart for PortMap {
    fn name(&self) -> &'static str {
        "port-map"
    }
    fn heading(&self) -> &'static str {
        "Which ports were used, and when"
    }
    fn caption(&self) -> &'static str {
        "Share of each block of ports held over time; every block is split into its even ports (lower band) and odd ports (upper band). Below: how many times each port was handed out, averaged over the block."
    }
    fn applies(&self, input: &Input) -> bool {
        input.usage.is_some()
    }
    fn size(&self) -> (u32, u32) {
        (1100, 760)
    }
    backends!(draw);
}

/// White through blue to navy (ColorBrewer "Blues" end points).
pub fn shade(share: f64) -> RGBColor {
    let stops = [
        (247.0, 251.0, 255.0),
        (107.0, 174.0, 214.0),
        (8.0, 48.0, 107.0),
    ];
    let s = share.clamp(0.0, 1.0) * 2.0;
    let i = (s.floor() as usize).min(1);
    let f = s - i as f64;
    let mix = |a: f64, b: f64| (a + (b - a) * f).round() as u8;
    let (a, b) = (stops[i], stops[i + 1]);
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

fn draw<DB: DrawingBackend>(input: &Input, area: &Area<DB>) -> Drawn
where
    DB::ErrorType: 'static,
{
    let r = input.report;
    let Some(u) = input.usage else {
        return Ok(());
    };
    let body = frame(
        input,
        area,
        &format!("Port usage map — {}", r.scenario.name),
    )?;
    let (w, h) = body.dim_in_pixel();
    let (top, bottom) = body.split_vertically((f64::from(h) * 0.68) as u32);
    let (map_area, bar_area) = top.split_horizontally(w.saturating_sub(110));
    let unit = TimeUnit::for_span(r.simulated_s);
    let x_end = unit.of(r.simulated_s).max(1e-9);
    let (block, blocks) = u.blocks();
    let lo = f64::from(u.port_lo());
    let hi = lo + f64::from(r.ports.range_size);
    let addrs = addresses_used(r);
    let (col_ns, cols) = u.columns();

    let mut map = ChartBuilder::on(&map_area)
        .margin_right(8)
        .x_label_area_size(44)
        .y_label_area_size(86)
        .build_cartesian_2d(0f64..x_end, lo..hi)?;
    map.configure_mesh()
        .disable_mesh()
        .x_desc(format!("time since start ({})", unit.name))
        .y_desc("local port")
        .x_label_formatter(&|v| number_label(*v))
        .y_label_formatter(&|v| format!("{}", v.round() as i64))
        .label_style(text(14.0))
        .axis_desc_style(text(16.0))
        .draw()?;
    let half = f64::from(block) / 2.0;
    // One rectangle per run of equal colour along a row: a saturated map is
    // a few long runs, which keeps the SVG small.
    let mut cells = Vec::new();
    for row in 0..(blocks * 2) as usize {
        let y0 = lo + f64::from(row as u32 / 2 * block) + if row % 2 == 1 { half } else { 0.0 };
        let y1 = (y0 + half).min(hi);
        let mut c = 0;
        while c < cols {
            let colour = shade(u.share(row, c, addrs));
            let mut end = c + 1;
            while end < cols && shade(u.share(row, end, addrs)) == colour {
                end += 1;
            }
            let t0 = unit.of((c as u64 * col_ns) as f64 / 1e9);
            let t1 = unit.of((end as u64 * col_ns) as f64 / 1e9).min(x_end);
            cells.push(Rectangle::new([(t0, y0), (t1, y1)], colour.filled()));
            c = end;
        }
    }
    map.draw_series(cells)?;

    // Colour bar.
    let mut bar = ChartBuilder::on(&bar_area)
        .margin_top(6)
        .margin_right(10)
        .x_label_area_size(44)
        .y_label_area_size(50)
        .caption("share held", text(14.0))
        .build_cartesian_2d(0f64..1.0, 0f64..1.0)?;
    bar.configure_mesh()
        .disable_mesh()
        .disable_x_axis()
        .y_labels(5)
        .y_label_formatter(&|v| format!("{:.0}%", v * 100.0))
        .label_style(text(13.0))
        .draw()?;
    bar.draw_series((0..100).map(|i| {
        let a = f64::from(i) / 100.0;
        Rectangle::new([(0.0, a), (1.0, a + 0.01)], shade(a + 0.005).filled())
    }))?;

    // Uses per port, averaged per block and parity.
    let per_band = |parity: u32| -> Vec<(f64, f64)> {
        (0..blocks)
            .filter_map(|b| {
                let mean = u.mean_uses((2 * b + parity) as usize)?;
                Some((lo + f64::from(b * block) + half, mean))
            })
            .collect()
    };
    let (even, odd) = (per_band(0), per_band(1));
    let y_max = even
        .iter()
        .chain(&odd)
        .map(|p| p.1)
        .fold(0.0, f64::max)
        .max(1.0)
        * 1.6;
    let mut lower = ChartBuilder::on(&bottom)
        .margin_top(8)
        .margin_right(118)
        .x_label_area_size(44)
        .y_label_area_size(86)
        .build_cartesian_2d(lo..hi, 0f64..y_max)?;
    lower
        .configure_mesh()
        .light_line_style(TRANSPARENT)
        .bold_line_style(GRID)
        .y_labels(4)
        .x_desc("local port")
        .y_desc("uses per port")
        .x_label_formatter(&|v| format!("{}", v.round() as i64))
        .y_label_formatter(&|v| count_label(*v))
        .label_style(text(14.0))
        .axis_desc_style(text(16.0))
        .draw()?;
    lower
        .draw_series(LineSeries::new(even, CONNECTIONS.stroke_width(3)))?
        .label("even ports")
        .legend(key_line(CONNECTIONS.stroke_width(2)));
    lower
        .draw_series(DashedLineSeries::new(odd, 8, 5, TIME_WAIT.stroke_width(2)))?
        .label("odd ports")
        .legend(key_line(TIME_WAIT.stroke_width(2)));
    legend(&mut lower, SeriesLabelPosition::UpperRight)?;
    Ok(())
}
