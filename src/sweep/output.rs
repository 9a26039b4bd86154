//! What a sweep is and prints: [`SweepReport`] (the content of `sweep.json`)
//! and the table on stdout. The files themselves are rendered in
//! [`crate::export`]; shards merge back in [`super::merge`].
//!
//! `sweep.json` carries every run's figures (integers, and the worst
//! windows' failure ratios, written exactly) beside the point figures
//! derived from them, so a merge needs nothing but the shard directories.
//!
//! The JSON Schema of `sweep.json` (`portsim schema sweep`) is derived from
//! these types. The parts defined elsewhere in [`super`] are described by
//! the mirrors in `described`, which refuse properties they do not list, so
//! a field added to those types fails the schema tests until it is mirrored.

use std::fmt::Write as _;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::stats::Estimate;
use super::{PointResult, Shard};
use crate::report::failure_ratio;
use crate::report::summary::{human_s, percent, thousands};

pub const SCHEMA_VERSION: u32 = 1;

/// The figures of one point, derived from its runs.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct PointFigures {
    #[schemars(with = "described::Estimate")]
    pub failure_ratio: Estimate,
    /// Over the seeds whose run had a failure.
    #[schemars(with = "Option<described::Estimate>")]
    pub first_failure_s: Option<Estimate>,
    pub seeds_with_failure: usize,
    #[schemars(with = "described::Estimate")]
    pub peak_in_use: Estimate,
    /// The busiest host's peak (`peak_in_use` for one host).
    #[schemars(with = "described::Estimate")]
    pub peak_in_use_per_host: Estimate,
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
        let per_host: Vec<f64> = p
            .runs
            .iter()
            .map(|r| f64::from(r.peak_in_use_per_host.unwrap_or(r.peak_in_use)))
            .collect();
        PointFigures {
            failure_ratio: Estimate::of(&ratios).expect("a point has runs"),
            first_failure_s: Estimate::of(&first),
            seeds_with_failure: first.len(),
            peak_in_use: Estimate::of(&peaks).expect("a point has runs"),
            peak_in_use_per_host: Estimate::of(&per_host).expect("a point has runs"),
        }
    }
}

/// One row of `sweep.json`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Row {
    #[serde(flatten)]
    #[schemars(with = "described::PointResult")]
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
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct SweepReport {
    #[schemars(extend("const" = SCHEMA_VERSION))]
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
    #[schemars(with = "Option<described::Shard>")]
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
                thousands(f.peak_in_use_per_host.mean.round() as u64),
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

/// What the types of `sweep.json` defined elsewhere serialize to, for its
/// JSON Schema only: [`crate::sweep::PointResult`], [`crate::sweep::Run`],
/// [`crate::sweep::Shard`] and [`crate::sweep::stats::Estimate`], field for field. Each
/// refuses properties it does not list, so a field added there and not
/// here fails validation of a real `sweep.json` in the tests.
#[allow(dead_code)]
mod described {
    use schemars::JsonSchema;

    /// A point with every seed run.
    #[derive(JsonSchema)]
    #[schemars(deny_unknown_fields)]
    pub struct PointResult {
        pub index: usize,
        pub values: Vec<String>,
        pub runs: Vec<Run>,
        /// Closed-form figures of the point (they do not depend on the seed).
        #[schemars(range(min = 0.0, max = 1.0))]
        pub erlang_b_failure_ratio: f64,
        pub offered_load: f64,
        /// Ports the connections can use (usable × source addresses in use).
        pub pool: u64,
    }

    /// What one run of one point measured.
    #[derive(JsonSchema)]
    #[schemars(deny_unknown_fields)]
    pub struct Run {
        pub seed: u64,
        pub attempts: u64,
        pub failures: u64,
        pub first_failure_ns: Option<u64>,
        pub peak_in_use: u32,
        #[schemars(range(min = 0.0, max = 1.0))]
        pub worst_1s: f64,
        #[schemars(range(min = 0.0, max = 1.0))]
        pub worst_10s: f64,
        #[schemars(range(min = 0.0, max = 1.0))]
        pub worst_60s: f64,
        pub seconds_with_failures: u64,
        pub longest_blocked_ns: u64,
        pub connect_delay_p99_ns: u64,
        pub connecting_at_end: u64,
        pub stale_reuse: u64,
        pub peak_in_use_per_host: Option<u32>,
    }

    /// Which share of the points this file holds: `K/N`, 1 ≤ K ≤ N.
    #[derive(JsonSchema)]
    #[schemars(deny_unknown_fields)]
    pub struct Shard {
        #[schemars(range(min = 1))]
        pub k: u32,
        #[schemars(range(min = 1))]
        pub n: u32,
    }

    /// Mean and 95 % interval of a sample.
    #[derive(JsonSchema)]
    #[schemars(deny_unknown_fields)]
    pub struct Estimate {
        pub mean: f64,
        pub low: f64,
        pub high: f64,
        /// Values the estimate is over.
        pub n: usize,
    }
}
