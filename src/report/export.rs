//! Files written by `--out DIR`: one small type per format behind [`Export`].
//!
//! A new output is one implementation plus one line in [`exports`].

use std::fmt::Write as _;

use super::Report;

/// Turns a report into the bytes of one file.
pub trait Export {
    fn file_name(&self) -> &'static str;
    fn render(&self, r: &Report) -> Vec<u8>;
}

/// Every file `--out` writes.
pub fn exports() -> Vec<Box<dyn Export>> {
    vec![Box::new(Json), Box::new(TimeseriesCsv)]
}

pub struct Json;

impl Export for Json {
    fn file_name(&self) -> &'static str {
        "report.json"
    }
    fn render(&self, r: &Report) -> Vec<u8> {
        r.to_json().into_bytes()
    }
}

/// Per bin: time-averaged ports in use, TIME_WAIT entries and open
/// connections; the peak of ports in use; attempts, failures, established.
pub struct TimeseriesCsv;

impl Export for TimeseriesCsv {
    fn file_name(&self) -> &'static str {
        "timeseries.csv"
    }
    fn render(&self, r: &Report) -> Vec<u8> {
        let mut s = String::from(
            "time_s,bin_s,ports_in_use,ports_in_use_peak,time_wait,open_connections,attempts,failures,established\n",
        );
        let bin_ns = (r.timeseries.bin_s * 1e9).round() as u64;
        for row in r.series() {
            let _ = writeln!(
                s,
                "{},{},{:.3},{},{:.3},{:.3},{},{},{}",
                crate::trace::seconds(row.start_ns),
                crate::trace::seconds(bin_ns),
                row.in_use,
                row.in_use_peak,
                row.time_wait,
                row.open,
                row.attempts,
                row.failures,
                row.established
            );
        }
        s.into_bytes()
    }
}
