//! `capacity.csv`: every value the capacity search tried, one row per
//! probe (seed, value, the figure it gave, whether it met the target), to
//! see how the search converged or plot the boundary per seed.

use super::{ExportError, Exporter};
use crate::sweep::capacity::Capacity;

pub struct CapacityCsv;

impl Exporter<Capacity> for CapacityCsv {
    fn file_name(&self) -> String {
        "capacity.csv".into()
    }
    fn render(&self, c: &Capacity) -> Result<Vec<u8>, ExportError> {
        let mut s = String::from("seed,value,figure,meets\n");
        for p in &c.probes {
            s.push_str(&format!(
                "{},{},{},{}\n",
                p.seed, p.value, p.figure, p.meets
            ));
        }
        Ok(s.into_bytes())
    }
}
