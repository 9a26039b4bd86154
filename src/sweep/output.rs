//! What a sweep writes: a table on stdout, `sweep.json`, `sweep.csv` and a
//! chart, and how shard outputs merge back into exactly the unsharded ones.
//!
//! `sweep.json` carries every run's integers beside the figures derived from
//! them, so `merge` needs nothing but the shard directories: it checks they
//! are shards of one sweep, puts the points back in order, recomputes the
//! figures and writes the same bytes one machine would have.

use std::fmt::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::stats::Estimate;
use super::{PointResult, Shard};
use crate::error::InputError;
use crate::report::failure_ratio;
use crate::report::summary::{human_s, percent, thousands};

pub const SCHEMA_VERSION: u32 = 1;

/// The figures of one point, derived from its runs.
#[derive(Debug, Clone, Serialize)]
pub struct PointFigures {
    pub failure_ratio: Estimate,
    /// Over the seeds whose run had a failure.
    pub first_failure_s: Option<Estimate>,
    pub seeds_with_failure: usize,
    pub peak_in_use: Estimate,
}

impl PointFigures {
    pub fn of(p: &PointResult) -> PointFigures {
        let ratios: Vec<f64> = p
            .runs
            .iter()
            .map(|r| failure_ratio(r.failures, r.attempts))
            .collect();
        let first: Vec<f64> = p
            .runs
            .iter()
            .filter_map(|r| r.first_failure_ns.map(|ns| ns as f64 / 1e9))
            .collect();
        let peaks: Vec<f64> = p.runs.iter().map(|r| f64::from(r.peak_in_use)).collect();
        PointFigures {
            failure_ratio: Estimate::of(&ratios).expect("a point has runs"),
            first_failure_s: Estimate::of(&first),
            seeds_with_failure: first.len(),
            peak_in_use: Estimate::of(&peaks).expect("a point has runs"),
        }
    }
}

/// One row of `sweep.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Row {
    #[serde(flatten)]
    pub point: PointResult,
    /// Derived from `runs`; recomputed on merge, never read back.
    #[serde(skip_deserializing)]
    pub figures: Option<PointFigures>,
}

impl Row {
    /// The point's figures: those attached by [`SweepReport::with_figures`],
    /// or computed from the runs.
    pub fn figures(&self) -> PointFigures {
        self.figures
            .clone()
            .unwrap_or_else(|| PointFigures::of(&self.point))
    }
}

/// `sweep.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SweepReport {
    pub schema_version: u32,
    pub portsim_version: String,
    pub scenario: String,
    pub scenario_file: String,
    /// Identifies the sweep (scenario text, overrides, varied keys and
    /// values, seeds): only shards of the same sweep merge.
    pub sweep_id: String,
    pub keys: Vec<String>,
    pub points_total: usize,
    pub seeds: u32,
    pub base_seed: u64,
    /// False when the sweep was interrupted: some points are missing.
    pub complete: bool,
    pub shard: Option<Shard>,
    pub points: Vec<Row>,
}

impl SweepReport {
    /// Attach the figures derived from each point's runs.
    pub fn with_figures(mut self) -> SweepReport {
        for r in &mut self.points {
            r.figures = Some(PointFigures::of(&r.point));
        }
        self
    }

    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).expect("sweep report serializes");
        s.push('\n');
        s
    }

    pub fn to_csv(&self) -> String {
        let mut s = String::new();
        for k in &self.keys {
            s.push_str(&csv_field(k));
            s.push(',');
        }
        s.push_str("failure_ratio_mean,failure_ratio_low,failure_ratio_high,first_failure_s_mean,first_failure_s_low,first_failure_s_high,seeds_with_failure,seeds,peak_in_use_mean,peak_in_use_low,peak_in_use_high,erlang_b_failure_ratio,offered_load,pool\n");
        for r in &self.points {
            let f = r.figures();
            for v in &r.point.values {
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
                r.point.runs.len(),
                e(Some(f.peak_in_use)),
                r.point.erlang_b_failure_ratio,
                r.point.offered_load,
                r.point.pool
            );
        }
        s
    }

    /// The table printed on stdout.
    pub fn to_table(&self) -> String {
        let mut head: Vec<String> = self.keys.clone();
        head.extend(
            [
                "failure ratio (95% interval)",
                "Erlang B",
                "first failure",
                "peak ports",
            ]
            .map(String::from),
        );
        let mut rows = vec![head];
        for r in &self.points {
            let f = r.figures();
            let mut row = r.point.values.clone();
            let fr = f.failure_ratio;
            row.push(if fr.n > 1 {
                format!(
                    "{} ({} – {})",
                    percent(fr.mean),
                    percent(fr.low.max(0.0)),
                    percent(fr.high)
                )
            } else {
                percent(fr.mean)
            });
            row.push(percent(r.point.erlang_b_failure_ratio));
            row.push(match f.first_failure_s {
                Some(e) if f.seeds_with_failure == r.point.runs.len() => human_s(e.mean),
                Some(e) => format!(
                    "{} ({} of {} seeds)",
                    human_s(e.mean),
                    f.seeds_with_failure,
                    r.point.runs.len()
                ),
                None => "none".into(),
            });
            row.push(format!(
                "{} of {}",
                thousands(f.peak_in_use.mean.round() as u64),
                thousands(r.point.pool)
            ));
            rows.push(row);
        }
        let widths: Vec<usize> = (0..rows[0].len())
            .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
            .collect();
        let mut s = String::new();
        for (i, row) in rows.iter().enumerate() {
            let line: Vec<String> = row
                .iter()
                .zip(&widths)
                .map(|(cell, w)| format!("{cell:<w$}"))
                .collect();
            let _ = writeln!(s, "{}", line.join("  ").trim_end());
            if i == 0 {
                let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
                let _ = writeln!(s, "{}", rule.join("  "));
            }
        }
        if !self.complete {
            let _ = writeln!(
                s,
                "interrupted: {} of {} points finished",
                self.points.len(),
                self.points_total
            );
        }
        s
    }
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// A stable 64-bit FNV-1a hash, as hex: the same on every machine and version.
pub fn stable_id(parts: &[&str]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in p.bytes().chain([0u8]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{h:016x}")
}

/// Read the shard outputs in `dirs` and combine them into the unsharded report.
pub fn merge(dirs: &[&Path]) -> Result<SweepReport, InputError> {
    let mut parts: Vec<(String, SweepReport)> = Vec::new();
    for d in dirs {
        let path = d.join("sweep.json");
        let text = std::fs::read_to_string(&path)
            .map_err(|e| InputError::usage(format!("{}: cannot read: {e}", path.display())))?;
        let r: SweepReport = serde_json::from_str(&text).map_err(|e| {
            InputError::usage(format!("{}: not a portsim sweep.json: {e}", path.display()))
        })?;
        parts.push((path.display().to_string(), r));
    }
    let (first_path, first) = parts
        .first()
        .cloned()
        .ok_or_else(|| InputError::usage("merge: no directories given"))?;
    let n = first.shard.map_or(1, |s| s.n);
    let mut seen = vec![None::<String>; n as usize];
    for (path, r) in &parts {
        if r.sweep_id != first.sweep_id || r.schema_version != first.schema_version {
            return Err(InputError::usage(format!(
                "{path}: a shard of another sweep (sweep_id {} against {} in {first_path}); only shards of one sweep merge",
                r.sweep_id, first.sweep_id
            )));
        }
        let s = r.shard.ok_or_else(|| {
            InputError::usage(format!("{path}: not a shard (written without --shard)"))
        })?;
        if s.n != n {
            return Err(InputError::usage(format!(
                "{path}: shard {}/{} but {first_path} is one of {n}",
                s.k, s.n
            )));
        }
        if let Some(other) = &seen[(s.k - 1) as usize] {
            return Err(InputError::usage(format!(
                "{path}: shard {}/{n} is also in {other}",
                s.k
            )));
        }
        if !r.complete {
            return Err(InputError::usage(format!(
                "{path}: shard {}/{n} was interrupted; run it again",
                s.k
            )));
        }
        seen[(s.k - 1) as usize] = Some(path.clone());
    }
    let missing: Vec<String> = seen
        .iter()
        .enumerate()
        .filter(|(_, p)| p.is_none())
        .map(|(k, _)| format!("{}/{n}", k + 1))
        .collect();
    if !missing.is_empty() {
        return Err(InputError::usage(format!(
            "merge: missing shard{} {}",
            if missing.len() == 1 { "" } else { "s" },
            missing.join(", ")
        )));
    }
    let mut points: Vec<Row> = parts.into_iter().flat_map(|(_, r)| r.points).collect();
    points.sort_by_key(|r| r.point.index);
    let out = SweepReport {
        shard: None,
        complete: points.len() == first.points_total,
        points,
        ..first
    };
    Ok(out.with_figures())
}
