//! `report.json`: the run's report as its JSON contract (see
//! [`crate::report`]). It needs the report alone, so it renders from a bare
//! [`Report`] as well as from a run.

use super::{ExportError, Exporter};
use crate::report::Report;

pub struct ReportJson;

impl<I: AsRef<Report> + ?Sized> Exporter<I> for ReportJson {
    fn file_name(&self) -> String {
        "report.json".into()
    }
    fn render(&self, input: &I) -> Result<Vec<u8>, ExportError> {
        Ok(input.as_ref().to_json().into_bytes())
    }
}
