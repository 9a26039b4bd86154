//! `NAME.svg`: one chart of a run as a vector drawing, for pages and print.
//! One exporter per chart of [`crate::chart::CHARTS`], so a new chart gets
//! its SVG without a line here.

use super::{ExportError, Exporter, Kind, Run};
use crate::chart::{render_svg, Chart};

pub struct ChartSvg(pub &'static dyn Chart);

impl Exporter<Run<'_>> for ChartSvg {
    fn file_name(&self) -> String {
        format!("{}.svg", self.0.name())
    }
    fn kind(&self) -> Kind {
        Kind::Svg
    }
    fn applies(&self, input: &Run) -> bool {
        self.0.applies(&input.charts())
    }
    fn render(&self, input: &Run) -> Result<Vec<u8>, ExportError> {
        Ok(render_svg(self.0, &input.charts())?.into_bytes())
    }
}
