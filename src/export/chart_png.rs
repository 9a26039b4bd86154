//! `NAME.png`: one chart of a run as a bitmap, for documents and chat. One
//! exporter per chart of [`crate::chart::CHARTS`], so a new chart gets its
//! PNG without a line here.

use super::{ExportError, Exporter, Kind, Run};
use crate::chart::{render_png, Chart};

pub struct ChartPng(pub &'static dyn Chart);

impl Exporter<Run<'_>> for ChartPng {
    fn file_name(&self) -> String {
        format!("{}.png", self.0.name())
    }
    fn kind(&self) -> Kind {
        Kind::Png
    }
    fn applies(&self, input: &Run) -> bool {
        self.0.applies(&input.charts())
    }
    fn render(&self, input: &Run) -> Result<Vec<u8>, ExportError> {
        Ok(render_png(self.0, &input.charts())?)
    }
}
