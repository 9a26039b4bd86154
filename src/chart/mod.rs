//! Charts of a run, as PNG and SVG, and the page that shows them.
//!
//! Each chart is one file implementing [`Chart`] and one line in [`CHARTS`];
//! the exporters of [`crate::export`] turn every chart listed there into
//! `NAME.png` and `NAME.svg` and put it on `report.html`.
//! A chart draws once, generically over plotters' backends, and the
//! [`backends!`] macro hands that one function to both the SVG and the bitmap
//! backend. Text is laid out with an embedded font (DejaVu Sans, licence in
//! `font/LICENSE`) through plotters' `ab_glyph` backend, so charts render
//! identically on a machine with no font packages, and the same run gives
//! the same bytes.
//!
//! Every chart carries its title, axis labels with units, and a footer with
//! the portsim version, scenario name and seed ([`frame`]), so an image
//! pasted into a document can be traced back to its run.

pub mod cloud_nats;
pub mod destinations;
pub mod host_map;
pub mod html;
pub mod layers;
pub mod occupancy;
pub mod per_layer;
pub mod port_map;
pub mod reuse;
pub mod sweep;
pub mod usage;

use std::error::Error;
use std::str::FromStr;
use std::sync::OnceLock;

use plotters::coord::{CoordTranslate, Shift};
use plotters::prelude::*;

use crate::report::Report;
pub use usage::PortUsage;

/// What a chart draws from.
pub struct Input<'a> {
    pub report: &'a Report,
    /// Port usage over time, when the run recorded it.
    pub usage: Option<&'a PortUsage>,
}

pub type Area<DB> = DrawingArea<DB, Shift>;
pub type Drawn = Result<(), Box<dyn Error>>;

/// One chart. Implement `draw` once with [`backends!`].
pub trait Chart: Sync {
    /// File stem: `occupancy` gives `occupancy.png` and `occupancy.svg`.
    fn name(&self) -> &'static str;
    /// Heading on the HTML page.
    fn heading(&self) -> &'static str;
    /// One sentence under the heading: how to read the chart.
    fn caption(&self) -> &'static str;
    /// Whether this run has anything to show (e.g. several destinations).
    fn applies(&self, _input: &Input) -> bool {
        true
    }
    fn size(&self) -> (u32, u32) {
        (1100, 650)
    }
    fn draw_svg(&self, input: &Input, area: &Area<SVGBackend>) -> Drawn;
    fn draw_png(&self, input: &Input, area: &Area<BitMapBackend>) -> Drawn;
}

/// Implements `draw_svg` and `draw_png` with one generic drawing function
/// `fn draw<DB: DrawingBackend>(&Input, &Area<DB>) -> Drawn`.
#[macro_export]
macro_rules! backends {
    ($draw:path) => {
        fn draw_svg(
            &self,
            input: &$crate::chart::Input,
            area: &$crate::chart::Area<plotters::prelude::SVGBackend>,
        ) -> $crate::chart::Drawn {
            $draw(input, area)
        }
        fn draw_png(
            &self,
            input: &$crate::chart::Input,
            area: &$crate::chart::Area<plotters::prelude::BitMapBackend>,
        ) -> $crate::chart::Drawn {
            $draw(input, area)
        }
    };
}
pub use backends;

/// Every chart, in the order the page shows them.
pub const CHARTS: &[&dyn Chart] = &[
    &occupancy::Occupancy,
    &reuse::ReuseHistogram,
    &port_map::PortMap,
    &destinations::Destinations,
    &per_layer::PerLayer,
    &host_map::HostMap,
    &cloud_nats::CloudNats,
];

/// Which files `--charts` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Formats {
    pub png: bool,
    pub svg: bool,
    pub html: bool,
}

impl Formats {
    pub const ALL: Formats = Formats {
        png: true,
        svg: true,
        html: true,
    };
    pub const NONE: Formats = Formats {
        png: false,
        svg: false,
        html: false,
    };
    pub fn any(&self) -> bool {
        self.png || self.svg || self.html
    }
}

impl FromStr for Formats {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let mut f = Formats::NONE;
        for part in s.split(',').map(str::trim) {
            match part {
                "png" => f.png = true,
                "svg" => f.svg = true,
                "html" => f.html = true,
                other => {
                    return Err(format!(
                        "found `{other}`; allowed: a comma-separated list of png, svg, html"
                    ))
                }
            }
        }
        Ok(f)
    }
}

/// The embedded font, registered once as plotters' `sans-serif`.
fn fonts() -> Result<(), String> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| {
        let bytes: &'static [u8] = include_bytes!("font/DejaVuSans.ttf");
        plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok()
    });
    ok.then_some(())
        .ok_or_else(|| "the embedded chart font could not be read".to_string())
}

/// The chart as an SVG document.
pub fn render_svg(chart: &dyn Chart, input: &Input) -> Result<String, String> {
    svg_with(chart.size(), |area| chart.draw_svg(input, area))
        .map_err(|e| format!("{} chart: {e}", chart.name()))
}

/// The chart as a PNG file's bytes.
pub fn render_png(chart: &dyn Chart, input: &Input) -> Result<Vec<u8>, String> {
    png_with(chart.size(), |area| chart.draw_png(input, area))
        .map_err(|e| format!("{} chart: {e}", chart.name()))
}

/// Draw with `draw` on an SVG canvas of `size` pixels.
pub fn svg_with(
    size: (u32, u32),
    draw: impl FnOnce(&Area<SVGBackend>) -> Drawn,
) -> Result<String, String> {
    fonts()?;
    let mut s = String::new();
    {
        let area = SVGBackend::with_string(&mut s, size).into_drawing_area();
        draw(&area)
            .and_then(|_| area.present().map_err(Into::into))
            .map_err(|e| e.to_string())?;
    }
    Ok(s)
}

/// Draw with `draw` on a bitmap of `size` pixels; PNG bytes.
pub fn png_with(
    size: (u32, u32),
    draw: impl FnOnce(&Area<BitMapBackend>) -> Drawn,
) -> Result<Vec<u8>, String> {
    fonts()?;
    let (w, h) = size;
    let mut rgb = vec![0u8; (w * h * 3) as usize];
    {
        let area = BitMapBackend::with_buffer(&mut rgb, (w, h)).into_drawing_area();
        draw(&area)
            .and_then(|_| area.present().map_err(Into::into))
            .map_err(|e| e.to_string())?;
    }
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, w, h);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    enc.set_compression(png::Compression::Best);
    enc.write_header()
        .and_then(|mut w| w.write_image_data(&rgb))
        .map_err(|e| format!("PNG encoding: {e}"))?;
    Ok(out)
}

// ---- shared look ----

pub const INK: RGBColor = RGBColor(33, 33, 33);
pub const MUTED: RGBColor = RGBColor(110, 110, 110);
pub const GRID: RGBColor = RGBColor(225, 225, 225);
pub const CONNECTIONS: RGBColor = RGBColor(49, 110, 180);
pub const TIME_WAIT: RGBColor = RGBColor(240, 150, 60);
pub const FAILURE: RGBColor = RGBColor(200, 40, 40);
pub const REFERENCE: RGBColor = RGBColor(40, 140, 80);

pub fn text(size: f64) -> TextStyle<'static> {
    ("sans-serif", size).into_font().color(&INK)
}

pub fn muted(size: f64) -> TextStyle<'static> {
    ("sans-serif", size).into_font().color(&MUTED)
}

/// Paint the background, the title and the footer of a run's chart; return
/// the plotting area.
pub fn frame<DB: DrawingBackend>(
    input: &Input,
    area: &Area<DB>,
    title: &str,
) -> Result<Area<DB>, Box<dyn Error>>
where
    DB::ErrorType: 'static,
{
    let r = input.report;
    frame_with(
        area,
        title,
        &format!(
            "portsim {} · scenario {} · seed {}",
            r.portsim_version, r.scenario.name, r.seed
        ),
        &format!(
            "{} simulated",
            crate::report::summary::human_s(r.simulated_s)
        ),
    )
}

/// Background, title, and a footer with `left` and `right` texts.
pub fn frame_with<DB: DrawingBackend>(
    area: &Area<DB>,
    title: &str,
    left: &str,
    right: &str,
) -> Result<Area<DB>, Box<dyn Error>>
where
    DB::ErrorType: 'static,
{
    area.fill(&WHITE)?;
    let (w, h) = area.dim_in_pixel();
    let (body, foot) = area.split_vertically(h.saturating_sub(26));
    foot.draw(&Text::new(left.to_string(), (12, 4), muted(14.0)))?;
    let est = muted(14.0);
    let (tw, _) = foot.estimate_text_size(right, &est)?;
    foot.draw(&Text::new(
        right.to_string(),
        (w as i32 - tw as i32 - 12, 4),
        est,
    ))?;
    Ok(body
        .margin(8, 0, 0, 0)
        .titled(title, text(22.0))?
        .margin(4, 0, 8, 16))
}

/// A legend key for an area: a filled swatch.
pub fn swatch(style: impl Into<ShapeStyle>) -> impl Fn((i32, i32)) -> Rectangle<(i32, i32)> {
    let style = style.into();
    move |(x, y)| Rectangle::new([(x, y - 6), (x + 18, y + 6)], style)
}

/// A legend key for a line: a short stroke.
pub fn key_line(style: impl Into<ShapeStyle>) -> impl Fn((i32, i32)) -> PathElement<(i32, i32)> {
    let style = style.into();
    move |(x, y)| PathElement::new([(x, y), (x + 18, y)], style)
}

/// Draw the legend of the series labelled so far, boxed, at `pos`.
pub fn legend<'a, DB, CT>(chart: &mut ChartContext<'a, DB, CT>, pos: SeriesLabelPosition) -> Drawn
where
    DB: DrawingBackend + 'a,
    DB::ErrorType: 'static,
    CT: CoordTranslate,
{
    chart
        .configure_series_labels()
        .position(pos)
        .margin(8)
        .background_style(WHITE.mix(0.9))
        .border_style(GRID)
        .label_font(text(14.0))
        .draw()?;
    Ok(())
}

/// A time axis in the unit that suits the run's length.
#[derive(Clone, Copy)]
pub struct TimeUnit {
    pub per_s: f64,
    pub name: &'static str,
}

impl TimeUnit {
    pub fn for_span(seconds: f64) -> TimeUnit {
        if seconds <= 180.0 {
            TimeUnit {
                per_s: 1.0,
                name: "s",
            }
        } else if seconds <= 3.0 * 3600.0 {
            TimeUnit {
                per_s: 1.0 / 60.0,
                name: "min",
            }
        } else {
            TimeUnit {
                per_s: 1.0 / 3600.0,
                name: "h",
            }
        }
    }
    pub fn of(&self, seconds: f64) -> f64 {
        seconds * self.per_s
    }
}

/// Tick label for counts: "16,384", "1.2 M".
pub fn count_label(v: f64) -> String {
    if v.abs() >= 1e6 {
        format!("{:.1} M", v / 1e6)
    } else if (v - v.round()).abs() < 1e-9 {
        crate::report::summary::thousands(v.round().max(0.0) as u64)
    } else {
        format!("{v:.1}")
    }
}

/// How many ticks a count axis from 0 to `max` gets: one per whole number
/// for small counts, so no tick falls between two integers.
pub fn count_ticks(max: f64) -> usize {
    if max < 8.0 {
        max.floor() as usize + 1
    } else {
        8
    }
}

/// Tick label for a plain number: "20", "2.5".
pub fn number_label(v: f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        format!("{}", v.round() as i64)
    } else {
        let s = format!("{v:.2}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// Tick label for seconds on a log axis: "1 ms", "2.5 s", "3 min".
pub fn seconds_label(s: f64) -> String {
    if s <= 0.0 {
        "0".into()
    } else if s < 1e-6 {
        format!("{} ns", (s * 1e9).round())
    } else {
        crate::report::summary::human_s(s)
    }
}

/// Escape text for XML and HTML.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_parse_and_reject() {
        assert_eq!("png,svg,html".parse::<Formats>(), Ok(Formats::ALL));
        let png: Formats = "png".parse().unwrap();
        assert!(png.png && !png.svg && !png.html);
        assert!("png,jpeg"
            .parse::<Formats>()
            .unwrap_err()
            .contains("`jpeg`"));
    }

    #[test]
    fn time_unit_follows_the_span() {
        assert_eq!(TimeUnit::for_span(60.0).name, "s");
        assert_eq!(TimeUnit::for_span(3600.0).name, "min");
        assert_eq!(TimeUnit::for_span(43200.0).name, "h");
    }
}
