//! `sweep.csv`: one row per point, for spreadsheets and plotting tools: the
//! varied keys' values, then each figure with its 95 % interval over seeds,
//! and the closed-form figures of the point. Values are quoted as CSV asks
//! only when they hold a comma, a quote or a newline.

use std::fmt::Write as _;

use super::{ExportError, Exporter};
use crate::sweep::output::SweepReport;
use crate::sweep::stats::Estimate;

pub struct SweepCsv;

impl Exporter<SweepReport> for SweepCsv {
    fn file_name(&self) -> String {
        "sweep.csv".into()
    }
    fn render(&self, r: &SweepReport) -> Result<Vec<u8>, ExportError> {
        let mut s = String::new();
        for k in &r.keys {
            s.push_str(&csv_field(k));
            s.push(',');
        }
        s.push_str("failure_ratio_mean,failure_ratio_low,failure_ratio_high,first_failure_s_mean,first_failure_s_low,first_failure_s_high,seeds_with_failure,seeds,peak_in_use_mean,peak_in_use_low,peak_in_use_high,erlang_b_failure_ratio,offered_load,pool\n");
        for row in &r.points {
            let f = row.figures();
            for v in &row.point.values {
                s.push_str(&csv_field(v));
                s.push(',');
            }
            let e = |x: Option<Estimate>| match x {
                Some(e) => format!("{},{},{}", e.mean, e.low, e.high),
                None => ",,".into(),
            };
            let _ = writeln!(
                s,
                "{},{},{},{},{},{},{},{}",
                e(Some(f.failure_ratio)),
                e(f.first_failure_s),
                f.seeds_with_failure,
                row.point.runs.len(),
                e(Some(f.peak_in_use)),
                row.point.erlang_b_failure_ratio,
                row.point.offered_load,
                row.point.pool
            );
        }
        Ok(s.into_bytes())
    }
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::csv_field;

    #[test]
    fn fields_are_quoted_only_when_needed() {
        assert_eq!(csv_field("traffic.rate"), "traffic.rate");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }
}
