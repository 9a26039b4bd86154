//! Capacity search: the largest (or smallest) value of one key that keeps a
//! figure within a target, e.g. the highest `traffic.rate` with
//! `failure_ratio <= 1e-4`.
//!
//! Each seed is searched on its own: bracket the boundary (doubling or
//! halving until one end meets the target and the other does not), then
//! bisect. With one seed the figure is, up to noise, monotone in the key, so
//! bisection finds that seed's boundary; across seeds the boundaries are
//! independent replications, and their mean and Student-t 95 % interval are
//! the answer with its confidence. Seeds run in parallel; each seed's search
//! is sequential, so the answer does not depend on `--jobs`.
//!
//! Which way is better is read off the bracket: if the low end meets the
//! target and the high end does not (a rate), the answer is the largest value
//! that meets it; the other way round (a port range, addresses) the smallest.

use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};

use rayon::prelude::*;
use serde::Serialize;

use super::stats::Estimate;
use super::{run_once, write_quantity, Plan, Progress, Run};
use crate::error::InputError;
use crate::report::summary::thousands;
use crate::scenario::Scenario;

/// A figure of a run that a target bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    FailureRatio,
    PeakInUse,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Op {
    #[serde(rename = "<=")]
    Le,
    #[serde(rename = "<")]
    Lt,
    #[serde(rename = ">=")]
    Ge,
    #[serde(rename = ">")]
    Gt,
}

/// `--target "failure_ratio<=1e-4"`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Target {
    pub metric: Metric,
    pub op: Op,
    pub bound: f64,
}

impl FromStr for Target {
    type Err = String;
    fn from_str(s: &str) -> Result<Target, String> {
        Target::parse_bare(s).map_err(|e| format!("--target {s}: {e}"))
    }
}

impl Target {
    /// `FIGURE<=X` and the like; messages say what is wrong, the caller
    /// says where (`--target`, `sweep.target`).
    pub fn parse_bare(s: &str) -> Result<Target, String> {
        let allowed = "allowed: failure_ratio or peak_in_use, then <=, <, >= or >, then a number, e.g. \"failure_ratio<=1e-4\"";
        let t = s.replace(' ', "");
        let (pos, op) = ["<=", ">=", "<", ">"]
            .iter()
            .find_map(|op| t.find(op).map(|i| (i, *op)))
            .ok_or_else(|| format!("no comparison; {allowed}"))?;
        let metric = match &t[..pos] {
            "failure_ratio" => Metric::FailureRatio,
            "peak_in_use" => Metric::PeakInUse,
            other => return Err(format!("unknown figure `{other}`; {allowed}")),
        };
        let bound: f64 = t[pos + op.len()..].parse().map_err(|_| {
            format!(
                "--target {s}: `{}` is not a number; {allowed}",
                &t[pos + op.len()..]
            )
        })?;
        let op = match op {
            "<=" => Op::Le,
            ">=" => Op::Ge,
            "<" => Op::Lt,
            _ => Op::Gt,
        };
        Ok(Target { metric, op, bound })
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let m = match self.metric {
            Metric::FailureRatio => "failure_ratio",
            Metric::PeakInUse => "peak_in_use",
        };
        let op = match self.op {
            Op::Le => "<=",
            Op::Lt => "<",
            Op::Ge => ">=",
            Op::Gt => ">",
        };
        write!(f, "{m} {op} {}", self.bound)
    }
}

impl Target {
    pub fn value(&self, r: &Run) -> f64 {
        match self.metric {
            Metric::FailureRatio => crate::report::failure_ratio(r.failures, r.attempts),
            Metric::PeakInUse => f64::from(r.peak_in_use),
        }
    }
    pub fn meets(&self, v: f64) -> bool {
        match self.op {
            Op::Le => v <= self.bound,
            Op::Lt => v < self.bound,
            Op::Ge => v >= self.bound,
            Op::Gt => v > self.bound,
        }
    }
}

/// How the searched key's values are written back into the scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Integer,
    Real,
    Duration,
}

impl Kind {
    fn write(self, v: f64) -> String {
        match self {
            Kind::Integer => format!("{}", v.round() as i64),
            Kind::Real => write_quantity(v, false),
            Kind::Duration => write_quantity(v, true),
        }
    }
    /// The search stops when the bracket is this narrow.
    fn resolution(self, v: f64) -> f64 {
        match self {
            Kind::Integer => 1.0,
            Kind::Real => (v.abs() * 1e-3).max(1e-9),
            Kind::Duration => 1e-3,
        }
    }
}

/// One evaluated value.
#[derive(Debug, Clone, Serialize)]
pub struct Probe {
    pub seed: u64,
    pub value: String,
    pub figure: f64,
    pub meets: bool,
}

/// The answer.
#[derive(Debug, Clone, Serialize)]
pub struct Capacity {
    pub scenario: String,
    pub key: String,
    pub target: String,
    /// "largest" or "smallest": which end of the key meets the target.
    pub direction: &'static str,
    /// Mean over seeds of each seed's boundary.
    pub value: f64,
    /// 95 % interval of the mean.
    pub interval: [f64; 2],
    pub seeds: usize,
    pub per_seed: Vec<f64>,
    /// The same search on the closed form (Erlang B), for failure_ratio.
    pub analytic: Option<f64>,
    /// ports ÷ (hold + TIME_WAIT) × pools, for traffic.rate.
    pub ceiling: Option<f64>,
    /// False when interrupted: fewer seeds than asked.
    pub complete: bool,
    pub probes: Vec<Probe>,
}

/// One seed's boundary and the probes that found it.
type SeedSearch = Result<(f64, Vec<Probe>), InputError>;

/// Most doublings or halvings tried to bracket the boundary.
const MAX_EXPAND: u32 = 24;
/// Most bisection steps per seed.
const MAX_BISECT: u32 = 40;

/// The search problem: a plan whose single `--vary` names the key.
pub struct Search<'a> {
    pub plan: &'a Plan,
    pub key: &'a str,
    pub kind: Kind,
    pub target: Target,
    /// Initial bracket.
    pub lo: f64,
    pub hi: f64,
    /// Largest expected number of attempts one probe may run: the bracket
    /// stops widening there instead of running ever longer simulations.
    pub max_attempts: f64,
}

impl Search<'_> {
    fn scenario_at(&self, v: f64) -> Result<Scenario, InputError> {
        self.plan.load_with(self.key, &self.kind.write(v))
    }

    /// Check the bracket's ends load (a value the key does not allow fails
    /// here, before any run).
    pub fn validate(&self) -> Result<(), InputError> {
        self.scenario_at(self.lo)?;
        self.scenario_at(self.hi)?;
        Ok(())
    }

    /// Whether `v` meets the target at `seed`, recorded in `probes`.
    fn probe(&self, v: f64, seed: u64, probes: &mut Vec<Probe>) -> Result<bool, InputError> {
        let sc = self.scenario_at(v)?;
        let expected = sc.expected_attempts();
        if expected > self.max_attempts {
            let tried: Vec<&str> = probes.iter().map(|p| p.value.as_str()).collect();
            let all_meet = !probes.is_empty() && probes.iter().all(|p| p.meets);
            let why = if all_meet {
                format!("the target {} holds at every value tried", self.target)
            } else if probes.iter().all(|p| !p.meets) {
                format!("the target {} fails at every value tried", self.target)
            } else {
                "no bracket yet".to_string()
            };
            return Err(InputError::usage(format!(
                "capacity: {why} ({}); the next, {} = {}, would need about {expected:.1e} connection attempts per run (limit {:.0e}, --max-events). Give a bracket with --vary {}=LOW..HIGH, or a target the key can reach",
                if tried.is_empty() { "none".to_string() } else { tried.join(", ") },
                self.key,
                self.kind.write(v),
                self.max_attempts,
                self.key
            )));
        }
        let run = run_once(&sc, seed);
        let figure = self.target.value(&run);
        let meets = self.target.meets(figure);
        probes.push(Probe {
            seed,
            value: self.kind.write(v),
            figure,
            meets,
        });
        Ok(meets)
    }

    /// Find which end is better, and a bracket `(good, bad)` for `seed`.
    fn bracket(
        &self,
        eval: &mut dyn FnMut(f64) -> Result<bool, InputError>,
        largest: Option<bool>,
    ) -> Result<(bool, f64, f64), InputError> {
        let (mut lo, mut hi) = (self.lo, self.hi);
        let (mut m_lo, mut m_hi) = (eval(lo)?, eval(hi)?);
        for _ in 0..MAX_EXPAND {
            // Bracketed when the low end meets the target exactly when low
            // values are the good ones (`largest`) and the high end differs.
            let found = match largest {
                None => (m_lo != m_hi).then_some(m_lo),
                Some(l) => (m_lo == l && m_hi != l).then_some(l),
            };
            if let Some(l) = found {
                return Ok(if l { (true, lo, hi) } else { (false, hi, lo) });
            }
            match largest {
                // Both ends alike: widen both ways until they differ.
                None => {
                    lo /= 2.0;
                    hi *= 2.0;
                    m_lo = eval(lo)?;
                    m_hi = eval(hi)?;
                }
                // The low end is on the wrong side: move the bracket down.
                Some(l) if m_lo != l => {
                    (hi, m_hi) = (lo, m_lo);
                    lo /= 2.0;
                    m_lo = eval(lo)?;
                }
                // Otherwise the high end is: move it up.
                Some(_) => {
                    (lo, m_lo) = (hi, m_hi);
                    hi *= 2.0;
                    m_hi = eval(hi)?;
                }
            }
        }
        Err(InputError::usage(format!(
            "capacity: {} never changed between {} and {} for the target {}; give a bracket with --vary {}=LOW..HIGH",
            self.key,
            self.kind.write(lo),
            self.kind.write(hi),
            self.target,
            self.key
        )))
    }

    /// Bisect between a value that meets the target and one that does not.
    fn bisect(
        &self,
        eval: &mut dyn FnMut(f64) -> Result<bool, InputError>,
        mut good: f64,
        mut bad: f64,
    ) -> Result<f64, InputError> {
        for _ in 0..MAX_BISECT {
            if (bad - good).abs() <= self.kind.resolution(good) {
                break;
            }
            let mut mid = (good + bad) / 2.0;
            if self.kind == Kind::Integer {
                mid = mid.round();
                if mid == good || mid == bad {
                    break;
                }
            }
            if eval(mid)? {
                good = mid;
            } else {
                bad = mid;
            }
        }
        Ok(match self.kind {
            Kind::Integer => good.round(),
            _ => good,
        })
    }

    /// Search every seed (in parallel) and the closed form.
    pub fn run(&self, stop: &AtomicBool, progress: &dyn Progress) -> Result<Capacity, InputError> {
        let base = self.plan.base_seed;
        // The direction, from the first seed's bracket.
        let mut first_probes = Vec::new();
        let (largest, _, _) =
            self.bracket(&mut |v| self.probe(v, base, &mut first_probes), None)?;
        let per_seed: Vec<Option<SeedSearch>> = (0..self.plan.seeds)
            .into_par_iter()
            .map(|s| {
                if stop.load(Ordering::Relaxed) {
                    return None;
                }
                let seed = base.wrapping_add(u64::from(s));
                // The first seed's values tried for the direction are not run again.
                let known: &[Probe] = if s == 0 { &first_probes } else { &[] };
                let mut probes = Vec::new();
                let mut eval = |v: f64| {
                    let value = self.kind.write(v);
                    match known.iter().find(|p| p.value == value) {
                        Some(p) => {
                            probes.push(p.clone());
                            Ok(p.meets)
                        }
                        None => self.probe(v, seed, &mut probes),
                    }
                };
                let result = (|| {
                    let (_, good, bad) = self.bracket(&mut eval, Some(largest))?;
                    self.bisect(&mut eval, good, bad)
                })();
                progress.tick();
                Some(result.map(|v| (v, probes)))
            })
            .collect();
        let mut values = Vec::new();
        let mut probes = Vec::new();
        for r in per_seed.into_iter().flatten() {
            let (v, p) = r?;
            values.push(v);
            probes.extend(p);
        }
        let est = Estimate::of(&values)
            .ok_or_else(|| InputError::usage("capacity: interrupted before any seed finished"))?;
        let analytic = match self.target.metric {
            Metric::FailureRatio => self.analytic(largest).ok(),
            Metric::PeakInUse => None,
        };
        let ceiling = if self.key == "traffic.rate" {
            let sc = self.scenario_at(est.mean)?;
            let a = super::closed_form(&sc);
            let rate_per_conn = f64::from(sc.traffic.requests_per_connection);
            Some(a.max_rate_per_pool * a.pools as f64 * rate_per_conn)
        } else {
            None
        };
        let sc = self.scenario_at(self.lo)?;
        Ok(Capacity {
            scenario: sc.name.clone(),
            key: self.key.to_string(),
            target: self.target.to_string(),
            direction: if largest { "largest" } else { "smallest" },
            value: est.mean,
            interval: [est.low, est.high],
            seeds: values.len(),
            per_seed: values,
            analytic,
            ceiling,
            complete: est.n == self.plan.seeds as usize,
            probes,
        })
    }

    /// The boundary of the closed form: Erlang B's failure ratio in place of
    /// a run's.
    fn analytic(&self, largest: bool) -> Result<f64, InputError> {
        let mut eval = |v: f64| -> Result<bool, InputError> {
            let sc = self.scenario_at(v)?;
            let (b, _, _) = super::analytic_of(&sc);
            Ok(self.target.meets(b))
        };
        let (_, good, bad) = self.bracket(&mut eval, Some(largest))?;
        self.bisect(&mut eval, good, bad)
    }
}

impl Capacity {
    /// The one-sentence answer.
    pub fn sentence(&self) -> String {
        // Three significant figures or whole numbers, the same for the
        // value and its interval; whole numbers stay whole.
        let whole = [self.value, self.interval[0], self.interval[1]]
            .iter()
            .all(|v| v.fract() == 0.0);
        let decimals = match self.value.abs() {
            _ if whole => 0,
            v if v >= 100.0 => 0,
            v if v >= 10.0 => 1,
            v if v >= 1.0 => 2,
            _ => 3,
        };
        let w = |v: f64| {
            if decimals == 0 && v >= 0.0 {
                thousands(v.round() as u64)
            } else {
                format!("{v:.decimals$}")
            }
        };
        let rate = self.key == "traffic.rate";
        let unit = if rate { " conn/s" } else { "" };
        let seeds = format!(
            "over {} seed{}",
            self.seeds,
            if self.seeds == 1 { "" } else { "s" }
        );
        let mut s = if rate && self.direction == "largest" {
            format!(
                "Sustains {}{unit} with {}; 95 % interval {}–{}{unit} {seeds}",
                w(self.value),
                self.target,
                w(self.interval[0]),
                w(self.interval[1])
            )
        } else {
            format!(
                "{}: the {} value with {} is {}{unit}; 95 % interval {}–{}{unit} {seeds}",
                self.key,
                self.direction,
                self.target,
                w(self.value),
                w(self.interval[0]),
                w(self.interval[1])
            )
        };
        if let Some(a) = self.analytic {
            s.push_str(&format!("; Erlang B gives {}{unit}", w(a)));
        }
        if let Some(c) = self.ceiling {
            s.push_str(&format!("; ports ÷ (hold + TIME_WAIT) = {}{unit}", w(c)));
        }
        s.push('.');
        if !self.complete {
            s.push_str(" (interrupted: fewer seeds than asked)");
        }
        s
    }

    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).expect("capacity serializes");
        s.push('\n');
        s
    }

    /// Every probe, one row each.
    pub fn probes_csv(&self) -> String {
        let mut s = String::from("seed,value,figure,meets\n");
        for p in &self.probes {
            s.push_str(&format!(
                "{},{},{},{}\n",
                p.seed, p.value, p.figure, p.meets
            ));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse() {
        let t: Target = "failure_ratio<=1e-4".parse().unwrap();
        assert_eq!(
            (t.metric, t.op, t.bound),
            (Metric::FailureRatio, Op::Le, 1e-4)
        );
        let t: Target = "peak_in_use < 1000".parse().unwrap();
        assert_eq!((t.metric, t.op), (Metric::PeakInUse, Op::Lt));
        assert!(t.meets(999.0) && !t.meets(1000.0));
        for bad in ["failures<=1", "failure_ratio=1", "failure_ratio<=x"] {
            assert!(bad.parse::<Target>().is_err(), "{bad}");
        }
    }
}
