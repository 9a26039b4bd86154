//! `timeseries.csv`: per bin, time-averaged ports in use, TIME_WAIT entries
//! and open connections; the peak of ports in use; attempts, failures,
//! established. It reads the report's [`Report::series`] rows and its bin
//! width in integer nanoseconds, so times print exactly as the engine
//! counted them.

use std::fmt::Write as _;

use super::{ExportError, Exporter};
use crate::report::Report;
use crate::trace::seconds;

pub struct TimeseriesCsv;

impl<I: AsRef<Report> + ?Sized> Exporter<I> for TimeseriesCsv {
    fn file_name(&self) -> String {
        "timeseries.csv".into()
    }
    fn render(&self, input: &I) -> Result<Vec<u8>, ExportError> {
        let r = input.as_ref();
        let mut s = String::from(
            "time_s,bin_s,ports_in_use,ports_in_use_peak,time_wait,open_connections,attempts,failures,established\n",
        );
        for row in r.series() {
            let _ = writeln!(
                s,
                "{},{},{:.3},{},{:.3},{:.3},{},{},{}",
                seconds(row.start_ns),
                seconds(r.bin_ns),
                row.in_use,
                row.in_use_peak,
                row.time_wait,
                row.open,
                row.attempts,
                row.failures,
                row.established
            );
        }
        Ok(s.into_bytes())
    }
}
