//! `sweep.svg`: the sweep chart ([`crate::chart::sweep`]) as a vector
//! drawing; written only when the sweep has points to draw.

use super::{ExportError, Exporter, Kind};
use crate::chart::sweep;
use crate::sweep::output::SweepReport;

pub struct SweepSvg;

impl Exporter<SweepReport> for SweepSvg {
    fn file_name(&self) -> String {
        "sweep.svg".into()
    }
    fn kind(&self) -> Kind {
        Kind::Svg
    }
    fn applies(&self, r: &SweepReport) -> bool {
        !r.points.is_empty()
    }
    fn render(&self, r: &SweepReport) -> Result<Vec<u8>, ExportError> {
        Ok(sweep::svg(r)?.into_bytes())
    }
}
