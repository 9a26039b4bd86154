//! Sweeps: one scenario run over a grid of key values × seeds, in parallel.
//!
//! A point is one combination of `--vary` values, applied as `--set`
//! overrides on top of the scenario file; each point runs once per seed
//! (scenario seed, +1, +2, ...). Every (point, seed) run is independent and
//! deterministic, so they run on all cores (rayon) and are put back in plan
//! order: the result is the same whatever `--jobs` is, and a shard of the
//! points (`--shard K/N`) holds exactly the rows the whole sweep would.
//!
//! A run keeps integers only (attempts, failures, first failure in ns, peak
//! ports), and every figure of a point is computed from them, so merged
//! shards give the same bytes as one machine.

pub mod capacity;
pub mod command;
pub mod output;
pub mod stats;

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::InputError;
use crate::scenario::{load_str, Override, Scenario};

/// The most values one `--vary` may expand to.
pub const MAX_VALUES: usize = 10_000;

/// One `--vary KEY=SPEC`: a scenario key and the values it takes.
#[derive(Debug, Clone, PartialEq)]
pub struct Vary {
    pub key: String,
    pub values: Vec<String>,
}

impl FromStr for Vary {
    type Err = String;
    fn from_str(s: &str) -> Result<Vary, String> {
        Vary::parse_spec(s).map_err(|e| format!("--vary {s}: {e}"))
    }
}

impl Vary {
    /// `KEY=a,b,c` (a list) or `KEY=FROM..TO:STEP` (a range, `TO` included),
    /// with numbers or durations (`10s..120s:10s`). Messages say what is
    /// wrong; the caller says where (`--vary ...`, `sweep.vary[0]`).
    pub fn parse_spec(s: &str) -> Result<Vary, String> {
        let (key, spec) = s.split_once('=').ok_or(
            "expected KEY=SPEC, e.g. traffic.rate=100..1000:50 or host.time_wait=30s,60s,120s",
        )?;
        let key = key.trim();
        if key.is_empty() || key.split('.').any(str::is_empty) {
            return Err("expected a dotted key such as traffic.rate".into());
        }
        let spec = spec.trim();
        let values = if spec.contains("..") {
            range(spec)?
        } else {
            spec.split(',').map(|v| v.trim().to_string()).collect()
        };
        if values.iter().any(String::is_empty) {
            return Err("an empty value in the list".into());
        }
        Ok(Vary {
            key: key.to_string(),
            values,
        })
    }
}

/// A number or a duration, and how to write values of its kind back.
pub fn quantity(s: &str) -> Option<(f64, bool)> {
    if let Ok(v) = s.parse::<f64>() {
        return v.is_finite().then_some((v, false));
    }
    humantime::parse_duration(s)
        .ok()
        .map(|d| (d.as_secs_f64(), true))
}

/// Write a value: integers plainly, others with up to 9 decimals; durations
/// in the largest whole unit (s, ms, µs as `us`, ns).
pub fn write_quantity(v: f64, duration: bool) -> String {
    if duration {
        let ns = (v * 1e9).round() as u64;
        return match ns {
            n if n % 1_000_000_000 == 0 => format!("{}s", n / 1_000_000_000),
            n if n % 1_000_000 == 0 => format!("{}ms", n / 1_000_000),
            n if n % 1_000 == 0 => format!("{}us", n / 1_000),
            n => format!("{n}ns"),
        };
    }
    let r = (v * 1e9).round() / 1e9;
    if r == r.trunc() && r.abs() < 1e15 {
        format!("{}", r as i64)
    } else {
        let s = format!("{r:.9}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

fn range(spec: &str) -> Result<Vec<String>, String> {
    let (span, step) = spec
        .split_once(':')
        .ok_or("a range needs a step: FROM..TO:STEP, e.g. 100..1000:50")?;
    let (from, to) = span.split_once("..").ok_or("expected FROM..TO:STEP")?;
    let parse = |t: &str| {
        quantity(t.trim()).ok_or(format!(
            "`{}` is neither a number nor a duration such as 30s",
            t.trim()
        ))
    };
    let ((a, da), (b, db), (st, ds)) = (parse(from)?, parse(to)?, parse(step)?);
    if da != db || da != ds {
        return Err("FROM, TO and STEP must all be numbers or all durations".into());
    }
    if st <= 0.0 {
        return Err("the step must be positive".into());
    }
    if b < a {
        return Err(format!("the range runs backwards ({from} > {to})"));
    }
    let n = ((b - a) / st * (1.0 + 1e-12)).floor() as usize + 1;
    if n > MAX_VALUES {
        return Err(format!(
            "{n} values; at most {MAX_VALUES} are allowed (use a larger step)"
        ));
    }
    Ok((0..n)
        .map(|i| write_quantity(a + i as f64 * st, da))
        .collect())
}

/// Which share of the points this process runs: `K/N`, 1 ≤ K ≤ N.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    pub k: u32,
    pub n: u32,
}

impl FromStr for Shard {
    type Err = String;
    fn from_str(s: &str) -> Result<Shard, String> {
        let bad = || format!("--shard {s}: expected K/N with 1 ≤ K ≤ N, e.g. 2/8");
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

/// What one run of one point measured: integers only, so merged shards
/// reproduce the unsharded figures bit for bit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Run {
    pub seed: u64,
    pub attempts: u64,
    pub failures: u64,
    pub first_failure_ns: Option<u64>,
    pub peak_in_use: u32,
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
    /// Number of points in the grid.
    pub fn len(&self) -> usize {
        self.varies.iter().map(|v| v.values.len()).product()
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
    pub fn points(&self, shard: Option<Shard>) -> Result<Vec<Point>, InputError> {
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

    /// Refuse a sweep that would take absurdly long.
    pub fn check_size(&self, points: &[Point], max_attempts: f64) -> Result<(), InputError> {
        let total: f64 = points
            .iter()
            .map(|p| p.scenario.expected_attempts())
            .sum::<f64>()
            * f64::from(self.seeds);
        if total > max_attempts {
            return Err(InputError::usage(format!(
                "{}: the sweep would make about {total:.2e} connection attempts ({} points × {} seeds), over the limit of {max_attempts:.0e}; fewer points or seeds, a shorter duration, or --max-events",
                self.scenario.display(),
                points.len(),
                self.seeds
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

/// A rayon pool of `jobs` threads (0: one per core).
pub fn pool(jobs: usize) -> Result<rayon::ThreadPool, InputError> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(jobs)
        .build()
        .map_err(|e| InputError::usage(format!("--jobs {jobs}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

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
