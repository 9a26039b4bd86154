//! `--trace FILE`: one CSV row per connect, fail, close and TIME_WAIT end.
//!
//! Rows stream through a buffered writer into a [`PendingFile`]: a temporary
//! file renamed into place with the run's other outputs when the run
//! completes (or a FIFO, a device or standard output, written as rows come),
//! so memory stays flat however long the run, and an interrupted or failed
//! run never leaves a half-written trace behind.
//!
//! The engine's observer cannot fail, so the first write error is kept and
//! later rows are skipped; [`TraceWriter::finish`] reports it, naming the file.

use std::io::Write;

use crate::output::{OutputError, PendingFile};
use crate::sim::Observer;

/// Format nanoseconds as exact decimal seconds ("12.000250000").
pub fn seconds(ns: u64) -> String {
    format!("{}.{:09}", ns / 1_000_000_000, ns % 1_000_000_000)
}

pub struct TraceWriter {
    file: PendingFile,
    destinations: Vec<String>,
    error: Option<std::io::Error>,
}

impl TraceWriter {
    pub fn new(file: PendingFile, destinations: Vec<String>) -> Result<Self, OutputError> {
        let mut t = TraceWriter {
            file,
            destinations,
            error: None,
        };
        if let Err(e) = t.file.write_all(b"time_s,event,port,destination\n") {
            return Err(t.file.error(e));
        }
        Ok(t)
    }

    fn row(&mut self, t: u64, event: &str, port: Option<u16>, dest: u32) {
        if self.error.is_some() {
            return;
        }
        let port = port.map(|p| p.to_string()).unwrap_or_default();
        let d = &self.destinations[dest as usize];
        if let Err(e) = writeln!(self.file, "{},{event},{port},{d}", seconds(t)) {
            self.error = Some(e);
        }
    }

    /// The written trace, to put in place with the run's other outputs
    /// ([`crate::output::OutputSet::add_open`]), or the first write error.
    pub fn finish(self) -> Result<PendingFile, OutputError> {
        match self.error {
            Some(e) => Err(self.file.error(e)),
            None => Ok(self.file),
        }
    }
}

impl Observer for TraceWriter {
    fn on_connect(&mut self, t: u64, port: u16, dest: u32) {
        self.row(t, "connect", Some(port), dest);
    }
    fn on_fail(&mut self, t: u64, dest: u32) {
        self.row(t, "fail", None, dest);
    }
    fn on_close(&mut self, t: u64, port: u16, dest: u32) {
        self.row(t, "close", Some(port), dest);
    }
    fn on_time_wait_end(&mut self, t: u64, port: u16, dest: u32) {
        self.row(t, "time_wait_end", Some(port), dest);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn seconds_are_exact() {
        assert_eq!(super::seconds(12_000_250_000), "12.000250000");
        assert_eq!(super::seconds(5), "0.000000005");
    }
}
