//! `report.html`: the one self-contained page of a run (see
//! [`crate::chart::html`], which lays it out); the only run file that needs
//! the run's source (scenario path, text and overrides).

use super::{ExportError, Exporter, Kind, Run};
use crate::chart::html;

pub struct ReportHtml;

impl Exporter<Run<'_>> for ReportHtml {
    fn file_name(&self) -> String {
        "report.html".into()
    }
    fn kind(&self) -> Kind {
        Kind::Html
    }
    fn render(&self, input: &Run) -> Result<Vec<u8>, ExportError> {
        Ok(html::render(&input.charts(), &input.source)?.into_bytes())
    }
}
