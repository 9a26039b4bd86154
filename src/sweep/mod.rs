//! Sweeps: one scenario run over a grid of key values × seeds, in parallel.
//!
//! A point is one combination of `--vary` values, applied as `--set`
//! overrides on top of the scenario file; each point runs once per seed
//! (scenario seed, +1, +2, ...). Every (point, seed) run is independent and
//! deterministic, so they run on all cores (rayon) and are put back in plan
//! order: the result is the same whatever `--jobs` is, and a shard of the
//! points (`--shard K/N`) holds exactly the rows the whole sweep would.
//!
//! A run keeps integers (attempts, failures, first failure in ns, peak
//! ports, failure bursts) and its worst windows' failure ratios, which JSON
//! carries exactly; every figure of a point is computed from them, so merged
//! shards give the same bytes as one machine.
//!
//! Every size is counted before anything is built: the values of a range
//! (at most [`MAX_VALUES`]), the runs of a grid (points × seeds, at most
//! [`MAX_RUNS`]) and the threads (at most [`MAX_JOBS_PER_CORE`] × cores), each
//! in checked arithmetic, so no flag can make a sweep allocate without bound.
//! Every number read from a flag is checked finite where it is read.

pub mod capacity;
pub mod merge;
pub mod output;
pub mod seeds;
pub mod stats;

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{quote, InputError};
use crate::scenario::{load_str, Override, Scenario};
pub(crate) use crate::util::{at_most, below, num};

/// The most runs (points × seeds) one sweep may have, shards included: the
/// whole grid is what `merge` holds in memory.
pub const MAX_RUNS: usize = 1_000_000;

/// `--jobs` may ask for at most this many threads per core.
pub const MAX_JOBS_PER_CORE: usize = 4;

use crate::scenario::spec::thousands;
pub use crate::scenario::spec::{
    parse_quantity, quantity, write_quantity, FailOn, Figures, Vary, MAX_VALUES,
};

/// Which share of the points this process runs: `K/N`, 1 ≤ K ≤ N.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    pub k: u32,
    pub n: u32,
}

impl FromStr for Shard {
    type Err = String;
    fn from_str(s: &str) -> Result<Shard, String> {
        let bad = || {
            format!(
                "--shard {}: expected K/N with 1 ≤ K ≤ N, e.g. 2/8",
                quote(s)
            )
        };
        let (k, n) = s.split_once('/').ok_or_else(bad)?;
        let (k, n): (u32, u32) = (
            k.trim().parse().map_err(|_| bad())?,
            n.trim().parse().map_err(|_| bad())?,
        );
        if k == 0 || n == 0 || k > n {
            return Err(bad());
        }
        Ok(Shard { k, n })
    }
}

impl Shard {
    /// Point `index` belongs to this shard (round robin, so every shard gets
    /// a mix of cheap and expensive points).
    pub fn has(&self, index: usize) -> bool {
        index % self.n as usize == (self.k - 1) as usize
    }
}

/// A sweep as asked for on the command line.
#[derive(Debug, Clone)]
pub struct Plan {
    pub scenario: PathBuf,
    /// The scenario file's text, read once for every point and probe.
    pub text: String,
    /// `--set` overrides applied to every point before the varied keys.
    pub overrides: Vec<Override>,
    pub varies: Vec<Vary>,
    pub seeds: u32,
    /// Seed of the first replication; the others follow it.
    pub base_seed: u64,
}

/// One point of the grid, loaded and validated.
pub struct Point {
    pub index: usize,
    pub values: Vec<String>,
    pub scenario: Scenario,
}

/// What one run of one point measured: integers (times in ns) and the
/// worst windows' failure ratios, which `sweep.json` writes and reads back
/// exactly (shortest round-trip floats), so merged shards reproduce the
/// unsharded figures bit for bit. Every figure an expression (`--target`,
/// `--fail-on`) names is here ([`Run::figures`]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Run {
    pub seed: u64,
    pub attempts: u64,
    pub failures: u64,
    pub first_failure_ns: Option<u64>,
    pub peak_in_use: u32,
    /// Worst failure ratio of a 1 s, 10 s and 60 s window aligned to the
    /// start of the run, as report.json's `bursts`.
    pub worst_1s: f64,
    pub worst_10s: f64,
    pub worst_60s: f64,
    /// 1 s windows with at least one failure.
    pub seconds_with_failures: u64,
    /// Longest time in which every attempt failed.
    pub longest_blocked_ns: u64,
    /// The 99th percentile of connect delays, connects still retrying at
    /// the end, and connects on a tuple the destination may still hold
    /// (as report.json's `connect_delay_s.p99`, `connecting_at_end`,
    /// `stale_reuse`); 0 in files written before they were kept.
    #[serde(default)]
    pub connect_delay_p99_ns: u64,
    #[serde(default)]
    pub connecting_at_end: u64,
    #[serde(default)]
    pub stale_reuse: u64,
    /// Most ports one host held at once: `peak_in_use` for one host, the
    /// busiest host's for a fleet (`hosts[].peak_in_use_per_host`), which
    /// the table compares with one host's ports; absent in files written
    /// before it was kept (then `peak_in_use` stands in).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_in_use_per_host: Option<u32>,
}

impl Run {
    /// The run's figures as expressions read them, converted as a report
    /// converts them, so `run --fail-on` and `sweep --fail-on` agree.
    pub fn figures(&self) -> Figures {
        Figures {
            attempts: self.attempts,
            failures: self.failures,
            first_failure_s: self.first_failure_ns.map(secs),
            peak_in_use: self.peak_in_use,
            worst_1s: self.worst_1s,
            worst_10s: self.worst_10s,
            worst_60s: self.worst_60s,
            seconds_with_failures: self.seconds_with_failures,
            longest_blocked_s: secs(self.longest_blocked_ns),
            connect_delay_p99: secs(self.connect_delay_p99_ns),
            connecting_at_end: self.connecting_at_end,
            stale_reuse: self.stale_reuse,
        }
    }
}

fn secs(ns: u64) -> f64 {
    ns as f64 / crate::scenario::NS_PER_S as f64
}

/// A point with every seed run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PointResult {
    pub index: usize,
    pub values: Vec<String>,
    pub runs: Vec<Run>,
    /// Closed-form figures of the point (they do not depend on the seed).
    pub erlang_b_failure_ratio: f64,
    pub offered_load: f64,
    /// Ports the connections can use (usable × source addresses in use).
    pub pool: u64,
}

impl Plan {
    /// Number of points in the grid (`usize::MAX` if it cannot be counted;
    /// [`Plan::check_grid`] refuses such a grid).
    pub fn len(&self) -> usize {
        self.varies
            .iter()
            .try_fold(1usize, |n, v| n.checked_mul(v.values.len()))
            .unwrap_or(usize::MAX)
    }

    /// Refuse a grid of more than [`MAX_RUNS`] runs (points × seeds), counted
    /// in checked arithmetic before a point is made.
    pub fn check_grid(&self) -> Result<usize, InputError> {
        let runs = self
            .varies
            .iter()
            .try_fold(1usize, |n, v| n.checked_mul(v.values.len()))
            .and_then(|points| points.checked_mul(self.seeds as usize));
        match runs {
            Some(r) if r <= MAX_RUNS => Ok(r),
            _ => {
                let sizes: Vec<String> = self
                    .varies
                    .iter()
                    .map(|v| format!("{} ({})", thousands(v.values.len()), v.key))
                    .collect();
                let total = match runs {
                    Some(r) => thousands(r),
                    None => format!("more than {}", thousands(usize::MAX)),
                };
                Err(InputError::usage(format!(
                    "--vary: the grid has {} points × {} seeds = {total} runs; at most {} runs (points × seeds) are allowed in one sweep, shards included. Use fewer values or seeds",
                    sizes.join(" × "),
                    self.seeds,
                    thousands(MAX_RUNS)
                )))
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Values of point `index`; the first `--vary` changes slowest.
    pub fn values(&self, index: usize) -> Vec<String> {
        let mut rest = index;
        let mut out = vec![String::new(); self.varies.len()];
        for (i, v) in self.varies.iter().enumerate().rev() {
            out[i] = v.values[rest % v.values.len()].clone();
            rest /= v.values.len();
        }
        out
    }

    /// The scenario of a point: the file, then `--set`, then the varied keys.
    pub fn load(&self, values: &[String]) -> Result<Scenario, InputError> {
        let keys = self.varies.iter().map(|v| v.key.as_str());
        self.load_set(keys.zip(values.iter().map(String::as_str)))
    }

    /// The scenario with one key set to `value` (after `--set`).
    pub fn load_with(&self, key: &str, value: &str) -> Result<Scenario, InputError> {
        self.load_set(std::iter::once((key, value)))
    }

    fn load_set<'a>(
        &self,
        set: impl Iterator<Item = (&'a str, &'a str)>,
    ) -> Result<Scenario, InputError> {
        let mut overrides = self.overrides.clone();
        for (key, value) in set {
            let o = Override::parse_as(&format!("{key}={value}"), "--vary")
                .map_err(InputError::usage)?;
            overrides.push(o);
        }
        let mut sc = load_str(&self.text, &self.scenario, &overrides)?;
        sc.seed = self.base_seed;
        Ok(sc)
    }

    /// Load every point this shard runs, so a bad value fails before any run.
    /// The grid's size is checked first ([`Plan::check_grid`]).
    pub fn points(&self, shard: Option<Shard>) -> Result<Vec<Point>, InputError> {
        self.check_grid()?;
        (0..self.len())
            .filter(|&i| shard.is_none_or(|s| s.has(i)))
            .map(|index| {
                let values = self.values(index);
                let scenario = self.load(&values)?;
                Ok(Point {
                    index,
                    values,
                    scenario,
                })
            })
            .collect()
    }

    /// Refuse a sweep that would take absurdly long or run out of memory.
    /// Work is the events of every run ([`crate::limits::estimate`]: attempts,
    /// hold draws, allocator probes) added up; memory is the largest run's
    /// times the runs in flight at once (`threads`). The estimates are float
    /// sums (they saturate at infinity, never wrap) and the guards are
    /// written so that a NaN estimate or limit is refused, not let through.
    pub fn check_size(
        &self,
        points: &[Point],
        max_events: f64,
        threads: usize,
    ) -> Result<(), InputError> {
        let costs: Vec<crate::limits::Cost> = points
            .iter()
            .map(|p| crate::limits::estimate(&p.scenario, false))
            .collect();
        let total: f64 = costs.iter().map(|c| c.events).sum::<f64>() * f64::from(self.seeds);
        if !at_most(total, max_events) {
            let about = if total.is_finite() {
                format!("about {total:.2e}")
            } else {
                "an uncountable number of".to_string()
            };
            return Err(InputError::usage(format!(
                "{}: the sweep would need {about} events of work (connection attempts and the like; {} points × {} seeds), over the limit of {}; fewer points or seeds, a shorter duration, or --max-events",
                quote(&self.scenario.display().to_string()),
                points.len(),
                self.seeds,
                num(max_events)
            )));
        }
        let in_flight = threads
            .min(points.len().saturating_mul(self.seeds as usize))
            .max(1);
        let largest = costs.iter().map(|c| c.memory).fold(0.0, f64::max);
        let memory = largest * in_flight as f64;
        let limit = crate::DEFAULT_MAX_MEMORY;
        if !at_most(memory, limit) {
            return Err(InputError::usage(format!(
                "{}: the sweep would need about {} of memory ({in_flight} runs at once of up to {} each), over the limit of {}; fewer --jobs, or smaller points (host.addresses, host.port_range, destinations)",
                quote(&self.scenario.display().to_string()),
                crate::limits::bytes(memory),
                crate::limits::bytes(largest),
                crate::limits::bytes(limit)
            )));
        }
        Ok(())
    }
}

/// One run of a scenario at a seed, reduced to its integers.
pub fn run_once(sc: &Scenario, seed: u64) -> Run {
    let mut sc = sc.clone();
    sc.seed = seed;
    // The engine's outcome holds these integers; no report is needed.
    let o = crate::sim::simulate(&sc, &mut crate::sim::Quiet);
    Run {
        seed,
        attempts: o.attempts,
        failures: o.failures,
        first_failure_ns: o.first_failure.map(|(t, _)| t),
        peak_in_use: o.peak_in_use,
        worst_1s: o.bursts.worst[0],
        worst_10s: o.bursts.worst[1],
        worst_60s: o.bursts.worst[2],
        seconds_with_failures: o.bursts.seconds_with_failures,
        longest_blocked_ns: o.bursts.longest_blocked_ns,
        connect_delay_p99_ns: o.delays.quantile(0.99),
        connecting_at_end: o.connecting_at_end,
        stale_reuse: crate::report::stale_reuse(&sc, &o),
        peak_in_use_per_host: Some(
            o.groups
                .iter()
                .map(|g| g.peak_in_use_per_host)
                .max()
                .unwrap_or(o.peak_in_use),
        ),
    }
}

/// The closed form of a scenario over its duration.
pub fn closed_form(sc: &Scenario) -> crate::report::analytic::Analytic {
    let horizon = sc.duration_ns.map_or(0.0, |d| d as f64 / 1e9);
    crate::report::analytic::analytic(sc, horizon)
}

/// Closed-form figures of a point, and its pool.
pub fn analytic_of(sc: &Scenario) -> (f64, f64, u64) {
    let a = closed_form(sc);
    (
        a.erlang_b_failure_ratio,
        a.offered_load,
        u64::from(sc.host.usable_ports()) * sc.source_addresses(),
    )
}

/// Something told once per finished point or seed (a progress bar).
pub trait Progress: Sync {
    fn tick(&self);
}

impl Progress for () {
    fn tick(&self) {}
}

impl Progress for indicatif::ProgressBar {
    fn tick(&self) {
        self.inc(1);
    }
}

/// Run every (point, seed) on the current rayon pool. Runs not started when
/// `stop` is set are skipped, and a point missing any run is left out, so
/// an interrupted sweep keeps exactly its finished points.
pub fn run_points(
    points: &[Point],
    seeds: u32,
    base_seed: u64,
    stop: &AtomicBool,
    progress: &dyn Progress,
) -> Vec<PointResult> {
    let jobs: Vec<(usize, u32)> = (0..points.len())
        .flat_map(|p| (0..seeds).map(move |s| (p, s)))
        .collect();
    // Runs finished per point: the bar moves when a point has all its seeds.
    let done: Vec<AtomicU32> = points.iter().map(|_| AtomicU32::new(0)).collect();
    let runs: Vec<Option<Run>> = jobs
        .par_iter()
        .map(|&(p, s)| {
            if stop.load(Ordering::Relaxed) {
                return None;
            }
            let r = run_once(&points[p].scenario, base_seed.wrapping_add(u64::from(s)));
            if done[p].fetch_add(1, Ordering::Relaxed) + 1 == seeds {
                progress.tick();
            }
            Some(r)
        })
        .collect();
    points
        .iter()
        .zip(runs.chunks(seeds as usize))
        .filter_map(|(p, rs)| {
            let runs: Option<Vec<Run>> = rs.iter().copied().collect();
            let (erlang_b_failure_ratio, offered_load, pool) = analytic_of(&p.scenario);
            Some(PointResult {
                index: p.index,
                values: p.values.clone(),
                runs: runs?,
                erlang_b_failure_ratio,
                offered_load,
                pool,
            })
        })
        .collect()
}

/// Cores of this machine (1 if they cannot be told).
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}

/// The most threads `--jobs` may ask for: [`MAX_JOBS_PER_CORE`] × cores.
pub fn max_jobs() -> usize {
    cores().saturating_mul(MAX_JOBS_PER_CORE)
}

/// A rayon pool of `jobs` threads (0: one per core). More than
/// [`max_jobs`] is refused before a thread is started: more threads than
/// that only add memory and switching, never speed.
pub fn pool(jobs: usize) -> Result<rayon::ThreadPool, InputError> {
    let max = max_jobs();
    if jobs > max {
        return Err(InputError::usage(format!(
            "--jobs {jobs}: at most {max} threads ({MAX_JOBS_PER_CORE} × the {} cores here); the result does not depend on --jobs, 0 means one per core",
            cores()
        )));
    }
    rayon::ThreadPoolBuilder::new()
        .num_threads(jobs)
        .build()
        .map_err(|e| InputError::usage(format!("--jobs {jobs}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util::count_text;

    #[test]
    fn specs_expand() {
        let v: Vary = "traffic.rate=100..300:50".parse().unwrap();
        assert_eq!(v.values, ["100", "150", "200", "250", "300"]);
        let v: Vary = "host.time_wait=30s,60s, 120s".parse().unwrap();
        assert_eq!(v.values, ["30s", "60s", "120s"]);
        let v: Vary = "host.time_wait=500ms..2s:500ms".parse().unwrap();
        assert_eq!(v.values, ["500ms", "1s", "1500ms", "2s"]);
        let v: Vary = "traffic.rate=0.1..0.3:0.1".parse().unwrap();
        assert_eq!(v.values, ["0.1", "0.2", "0.3"]);
        for bad in [
            "traffic.rate",
            "=1,2",
            "traffic.rate=1..2",
            "traffic.rate=2..1:1",
            "traffic.rate=1..2:0",
            "traffic.rate=1s..2:1",
            "traffic.rate=1..100000:1",
            "traffic.rate=1,,2",
        ] {
            assert!(bad.parse::<Vary>().is_err(), "{bad}");
        }
    }

    #[test]
    fn numbers_print_briefly() {
        assert_eq!(num(1e-300), "1e-300");
        assert_eq!(num(1e300), "1e300");
        assert_eq!(num(0.0001), "0.0001");
        assert_eq!(num(0.00001), "1e-5");
        assert_eq!(num(123.5), "123.5");
        assert_eq!(num(0.0), "0");
        assert_eq!(num(f64::NAN), "NaN");
        assert_eq!(count_text(12345.0), "12,345");
        assert_eq!(count_text(1e300), "about 1.0e300");
        assert_eq!(write_quantity(1e300, false), "1e300");
    }

    #[test]
    fn grid_order_and_shards() {
        let plan = Plan {
            scenario: PathBuf::from("x.toml"),
            text: String::new(),
            overrides: vec![],
            varies: vec!["a=1,2,3".parse().unwrap(), "b=x,y".parse().unwrap()],
            seeds: 1,
            base_seed: 1,
        };
        assert_eq!(plan.len(), 6);
        assert_eq!(plan.values(0), ["1", "x"]);
        assert_eq!(plan.values(1), ["1", "y"]);
        assert_eq!(plan.values(5), ["3", "y"]);
        let s: Shard = "2/3".parse().unwrap();
        let mine: Vec<usize> = (0..6).filter(|&i| s.has(i)).collect();
        assert_eq!(mine, [1, 4]);
        for bad in ["0/3", "4/3", "1", "a/b", "1/0"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
    }
}
