//! `sweep.png`: the sweep chart ([`crate::chart::sweep`]) as a bitmap;
//! written only when the sweep has points to draw.

use super::{ExportError, Exporter, Kind};
use crate::chart::sweep;
use crate::sweep::output::SweepReport;

pub struct SweepPng;

impl Exporter<SweepReport> for SweepPng {
    fn file_name(&self) -> String {
        "sweep.png".into()
    }
    fn kind(&self) -> Kind {
        Kind::Png
    }
    fn applies(&self, r: &SweepReport) -> bool {
        !r.points.is_empty()
    }
    fn render(&self, r: &SweepReport) -> Result<Vec<u8>, ExportError> {
        Ok(sweep::png(r)?)
    }
}
