//! `capacity.json`: the capacity search's answer, interval and every probe,
//! the same text `capacity --json` prints.

use super::{ExportError, Exporter};
use crate::sweep::capacity::Capacity;

pub struct CapacityJson;

impl Exporter<Capacity> for CapacityJson {
    fn file_name(&self) -> String {
        "capacity.json".into()
    }
    fn render(&self, c: &Capacity) -> Result<Vec<u8>, ExportError> {
        Ok(c.to_json().into_bytes())
    }
}
