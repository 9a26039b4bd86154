//! `sweep.json`: every run's counts and each point's figures; what
//! `portsim merge` reads back, so it is the sweep report's own JSON (the
//! same text `--json` prints).

use super::{ExportError, Exporter};
use crate::sweep::output::SweepReport;

pub struct SweepJson;

impl Exporter<SweepReport> for SweepJson {
    fn file_name(&self) -> String {
        "sweep.json".into()
    }
    fn render(&self, r: &SweepReport) -> Result<Vec<u8>, ExportError> {
        Ok(r.to_json().into_bytes())
    }
}
