//! `--trace FILE`: one CSV row per connect, fail, close and TIME_WAIT end.
//!
//! Rows stream through a buffered writer into a temporary file that is renamed
//! into place when the run completes, so memory stays flat however long the
//! run, and an interrupted run never leaves a half-written trace behind.

use std::io::Write;

use crate::output::PendingFile;
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
    pub fn new(file: PendingFile, destinations: Vec<String>) -> std::io::Result<Self> {
        let mut t = TraceWriter {
            file,
            destinations,
            error: None,
        };
        t.file.write_all(b"time_s,event,port,destination\n")?;
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

    /// Flush and move the trace into place.
    pub fn finish(self) -> std::io::Result<()> {
        if let Some(e) = self.error {
            return Err(e);
        }
        self.file.commit()
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
