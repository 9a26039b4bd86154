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

use std::sync::atomic::{AtomicBool, Ordering};

use rayon::prelude::*;

use super::stats::Estimate;
use super::{at_most, below, num, run_once, write_quantity, Plan, Progress, Run};
use crate::error::InputError;
use crate::scenario::Scenario;
use crate::util::thousands;

mod answer;
mod vendor;
pub use answer::{Bracket, Capacity, Probe, VendorAnswer};

pub use crate::scenario::spec::{Metric, Op, Target};

/// The target's figure in a run.
fn value(target: &Target, r: &Run) -> f64 {
    target.metric.of(&r.figures())
}

/// How the searched key's values are written back into the scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Integer,
    Real,
    Duration,
    /// Whole multiples of a step (Azure's ports per instance: of 8).
    Step(u32),
    /// Powers of two (Cloud NAT's ports per VM).
    PowerOfTwo,
}

impl Kind {
    fn write(self, v: f64) -> String {
        match self {
            Kind::Integer | Kind::Step(_) | Kind::PowerOfTwo => {
                format!("{}", self.snap(v) as i64)
            }
            Kind::Real => write_quantity(v, false),
            Kind::Duration => write_quantity(v, true),
        }
    }
    /// The search stops when the bracket is this narrow.
    fn resolution(self, v: f64) -> f64 {
        match self {
            Kind::Integer => 1.0,
            Kind::Step(m) => f64::from(m),
            // Neighbours are told apart by `middle` snapping onto an end.
            Kind::PowerOfTwo => 1.0,
            Kind::Real => (v.abs() * 1e-3).max(1e-9),
            Kind::Duration => 1e-3,
        }
    }
    /// Whether only some whole numbers are values of the key.
    fn discrete(self) -> bool {
        matches!(self, Kind::Integer | Kind::Step(_) | Kind::PowerOfTwo)
    }
    /// The value of the key nearest `v` (up, for steps and powers).
    fn snap(self, v: f64) -> f64 {
        match self {
            Kind::Integer => v.round(),
            Kind::Step(m) => {
                let m = f64::from(m);
                ((v / m).ceil() * m).max(m)
            }
            Kind::PowerOfTwo => {
                let r = v.round().max(1.0);
                if r >= 2f64.powi(52) {
                    r
                } else {
                    (r as u64).next_power_of_two() as f64
                }
            }
            Kind::Real | Kind::Duration => v,
        }
    }
    /// The point between `a` and `b` a bisection probes.
    fn middle(self, a: f64, b: f64) -> f64 {
        match self {
            // Halfway in the exponent: between 256 and 1,024, 512.
            Kind::PowerOfTwo if a > 0.0 && b > 0.0 => (a * b).sqrt() * (1.0 - 1e-12),
            _ => a / 2.0 + b / 2.0,
        }
    }
}

/// Why a search ended without an answer.
enum Halt {
    /// Bad input, or a target the key cannot reach: exit 2.
    Input(InputError),
    /// The stop flag (Ctrl-C) was set before the next probe.
    Stopped,
}

impl From<InputError> for Halt {
    fn from(e: InputError) -> Halt {
        Halt::Input(e)
    }
}

/// Evaluates one value: whether it meets the target.
type Eval<'e> = &'e mut dyn FnMut(f64) -> Result<bool, Halt>;

/// Most doublings or halvings tried to bracket the boundary.
const MAX_EXPAND: u32 = 24;
/// Most bisection steps per seed.
const MAX_BISECT: u32 = 40;
/// Most steps to find the edge of a key's domain (loads only, no runs).
const MAX_EDGE_STEPS: u32 = 80;

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

    /// Whether the scenario accepts the key at `v`.
    fn allows(&self, v: f64) -> bool {
        v.is_finite() && self.scenario_at(v).is_ok()
    }

    /// Check the bracket's ends load (a value the key does not allow fails
    /// here, before any run).
    pub fn validate(&self) -> Result<(), InputError> {
        self.scenario_at(self.lo)?;
        self.scenario_at(self.hi)?;
        Ok(())
    }

    /// Move each end of the starting bracket that the scenario does not
    /// accept back towards `start` (a value it accepts), to the edge of the
    /// key's domain: `max_connections = 1` starts from 1..2, not 0.5..2.
    pub fn fit_to_domain(&mut self, start: f64) {
        if !self.allows(self.lo) {
            self.lo = self.edge(start, self.lo);
        }
        if !self.allows(self.hi) {
            self.hi = self.edge(start, self.hi);
        }
    }

    /// The value nearest `bad` (not accepted) on the way from `ok`
    /// (accepted) that the scenario still accepts, to the search's
    /// resolution. The scenario loader is the judge of the key's domain, so
    /// no bound is written down twice.
    fn edge(&self, mut ok: f64, mut bad: f64) -> f64 {
        for _ in 0..MAX_EDGE_STEPS {
            if !bad.is_finite() {
                // Past the largest float: step back to a finite value first.
                bad = if bad > 0.0 { f64::MAX } else { f64::MIN };
            }
            if (bad - ok).abs() <= self.kind.resolution(ok) {
                break;
            }
            let mut mid = self.kind.middle(ok, bad);
            if self.kind.discrete() {
                mid = self.kind.snap(mid);
                if mid == self.kind.snap(ok) || mid == self.kind.snap(bad) {
                    break;
                }
            }
            if self.allows(mid) {
                ok = mid;
            } else {
                bad = mid;
            }
        }
        ok
    }

    /// The next value to probe when widening from `from` (accepted) to
    /// `to`: `to` itself, the edge of the domain before it, or `None` when
    /// `from` is already at that edge.
    fn widen(&self, from: f64, to: f64) -> Option<f64> {
        if self.allows(to) {
            return Some(to);
        }
        let e = self.edge(from, to);
        (self.kind.write(e) != self.kind.write(from)).then_some(e)
    }

    /// Whether `v` meets the target at `seed`, recorded in `probes`.
    fn probe(&self, v: f64, seed: u64, probes: &mut Vec<Probe>) -> Result<bool, InputError> {
        let sc = self.scenario_at(v)?;
        let expected = crate::limits::estimate(&sc, false).events;
        // Written so that a NaN estimate or limit stops the search.
        if !at_most(expected, self.max_attempts) {
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
                "capacity: {why} ({}); the next, {} = {}, would need about {expected:.1e} events of work per run (limit {}, --max-events). Give a bracket with --vary {}=LOW..HIGH, or a target the key can reach",
                if tried.is_empty() { "none".to_string() } else { tried.join(", ") },
                self.key,
                self.kind.write(v),
                num(self.max_attempts),
                self.key
            )));
        }
        let run = run_once(&sc, seed);
        let figure = value(&self.target, &run);
        let meets = self.target.meets(figure);
        probes.push(Probe {
            seed,
            value: self.kind.write(v),
            figure,
            meets,
            at: v,
            run,
        });
        Ok(meets)
    }

    /// The answer when the end at `edge` of the domain cannot move further:
    /// if the edge meets the target it is the answer (the bracket closes on
    /// it), otherwise no value the key allows meets the target.
    fn at_edge(&self, largest: bool, edge: f64, meets: bool) -> Result<(bool, f64, f64), Halt> {
        if meets {
            return Ok((largest, edge, edge));
        }
        Err(Halt::Input(InputError::usage(format!(
            "capacity: the target {} is not met even at {} = {}, the {} value the scenario allows",
            self.target,
            self.key,
            self.kind.write(edge),
            if largest { "smallest" } else { "largest" }
        ))))
    }

    /// Find which end is better, and a bracket `(good, bad)` for `seed`.
    /// An end never leaves the key's domain: at its edge it stops there.
    fn bracket(&self, eval: Eval, largest: Option<bool>) -> Result<(bool, f64, f64), Halt> {
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
                    let (down, up) = (self.widen(lo, lo / 2.0), self.widen(hi, hi * 2.0));
                    if down.is_none() && up.is_none() {
                        break;
                    }
                    if let Some(v) = down {
                        lo = v;
                        m_lo = eval(lo)?;
                    }
                    if let Some(v) = up {
                        hi = v;
                        m_hi = eval(hi)?;
                    }
                }
                // The low end is on the wrong side: move the bracket down.
                Some(l) if m_lo != l => match self.widen(lo, lo / 2.0) {
                    Some(v) => {
                        (hi, m_hi) = (lo, m_lo);
                        lo = v;
                        m_lo = eval(lo)?;
                    }
                    None => return self.at_edge(l, lo, m_lo),
                },
                // Otherwise the high end is: move it up.
                Some(l) => match self.widen(hi, hi * 2.0) {
                    Some(v) => {
                        (lo, m_lo) = (hi, m_hi);
                        hi = v;
                        m_hi = eval(hi)?;
                    }
                    None => return self.at_edge(l, hi, m_hi),
                },
            }
        }
        let edges = match (self.widen(lo, lo / 2.0), self.widen(hi, hi * 2.0)) {
            (None, None) => " (both the smallest and the largest values the scenario allows)",
            (None, Some(_)) => " (the smallest value the scenario allows and up)",
            (Some(_), None) => " (up to the largest value the scenario allows)",
            _ => "",
        };
        if m_lo != m_hi {
            // Both sides seen, but the other way round from the first seed.
            return Err(Halt::Input(InputError::usage(format!(
                "capacity: {} = {} {} the target {} and {} {} it, the opposite of the first seed; the figure is not monotone in the key here. Give a narrower bracket with --vary {}=LOW..HIGH",
                self.key,
                self.kind.write(lo),
                if m_lo { "meets" } else { "misses" },
                self.target,
                self.kind.write(hi),
                if m_hi { "meets" } else { "misses" },
                self.key
            ))));
        }
        Err(Halt::Input(InputError::usage(format!(
            "capacity: the target {} {} at every value of {} tried, from {} to {}{edges}: the key does not decide the target here. Give a bracket with --vary {}=LOW..HIGH, or another target",
            self.target,
            if m_lo { "holds" } else { "fails" },
            self.key,
            self.kind.write(lo),
            self.kind.write(hi),
            self.key
        ))))
    }

    /// Bisect between a value that meets the target and one that does not.
    fn bisect(&self, eval: Eval, mut good: f64, mut bad: f64) -> Result<f64, Halt> {
        for _ in 0..MAX_BISECT {
            if (bad - good).abs() <= self.kind.resolution(good) {
                break;
            }
            let mut mid = self.kind.middle(good, bad);
            if self.kind.discrete() {
                mid = self.kind.snap(mid);
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
        Ok(if self.kind.discrete() {
            self.kind.snap(good)
        } else {
            good
        })
    }

    /// Probe `v` at `seed` unless the stop flag is set, reusing the probes
    /// in `known` (the first seed's, run to find the direction).
    fn eval_at(
        &self,
        stop: &AtomicBool,
        v: f64,
        seed: u64,
        known: &[Probe],
        probes: &mut Vec<Probe>,
    ) -> Result<bool, Halt> {
        let value = self.kind.write(v);
        if let Some(p) = known.iter().find(|p| p.value == value) {
            probes.push(p.clone());
            return Ok(p.meets);
        }
        if stop.load(Ordering::Relaxed) {
            return Err(Halt::Stopped);
        }
        Ok(self.probe(v, seed, probes)?)
    }

    /// Search every seed (in parallel) and the closed form. When the stop
    /// flag is set, each seed ends before its next probe and the answer says
    /// what was established so far (`complete` false, `bracket` set).
    pub fn run(&self, stop: &AtomicBool, progress: &dyn Progress) -> Result<Capacity, InputError> {
        let base = self.plan.base_seed;
        // The direction, from the first seed's bracket.
        let mut first_probes = Vec::new();
        let direction = self.bracket(
            &mut |v| self.eval_at(stop, v, base, &[], &mut first_probes),
            None,
        );
        let largest = match direction {
            Ok((l, _, _)) => l,
            Err(Halt::Input(e)) => return Err(e),
            Err(Halt::Stopped) => return self.answer(None, Vec::new(), first_probes),
        };
        let per_seed: Vec<(Option<f64>, Vec<Probe>)> = (0..self.plan.seeds)
            .into_par_iter()
            .map(|s| {
                if stop.load(Ordering::Relaxed) {
                    return Ok((None, Vec::new()));
                }
                let seed = base.wrapping_add(u64::from(s));
                // The first seed's values tried for the direction are not run again.
                let known: &[Probe] = if s == 0 { &first_probes } else { &[] };
                let mut probes = Vec::new();
                let mut eval = |v: f64| self.eval_at(stop, v, seed, known, &mut probes);
                let result = (|| {
                    let (_, good, bad) = self.bracket(&mut eval, Some(largest))?;
                    self.bisect(&mut eval, good, bad)
                })();
                progress.tick();
                match result {
                    Ok(v) => Ok((Some(v), probes)),
                    Err(Halt::Stopped) => Ok((None, probes)),
                    Err(Halt::Input(e)) => Err(e),
                }
            })
            .collect::<Result<_, InputError>>()?;
        self.answer(Some(largest), per_seed, Vec::new())
    }

    /// Put the seeds' results together. `per_seed` holds each seed's
    /// boundary (`None` if it was stopped) and probes; `extra` probes that
    /// belong to no finished seed (a search stopped before the direction).
    fn answer(
        &self,
        largest: Option<bool>,
        per_seed: Vec<(Option<f64>, Vec<Probe>)>,
        extra: Vec<Probe>,
    ) -> Result<Capacity, InputError> {
        let asked = self.plan.seeds as usize;
        let values: Vec<f64> = per_seed.iter().filter_map(|(v, _)| *v).collect();
        let complete = values.len() == asked;
        let bracket = (!complete).then(|| self.bracket_so_far(largest, &per_seed, &extra));
        let mut probes: Vec<Probe> = per_seed.into_iter().flat_map(|(_, p)| p).collect();
        probes.extend(extra);
        let est = Estimate::of(&values);
        // Erlang B speaks of one host's ports, not of a NAT's keys or the
        // number of hosts.
        let analytic = match (largest, self.target.metric) {
            _ if self.key.starts_with("nat.") || self.key.starts_with("hosts.") => None,
            (Some(l), Metric::FailureRatio) => self.analytic(l).ok(),
            _ => None,
        };
        let vendor = vendor::answer(
            &self.scenario_at(est.map_or(self.lo, |e| e.mean))?,
            self.key,
        );
        let ceiling = if self.key == "traffic.rate" {
            let sc = self.scenario_at(est.map_or(self.lo, |e| e.mean))?;
            let a = super::closed_form(&sc);
            let rate_per_conn = f64::from(sc.traffic.requests_per_connection);
            Some(a.max_rate_per_pool * a.pools as f64 * rate_per_conn)
        } else {
            None
        };
        let sc = self.scenario_at(self.lo)?;
        Ok(Capacity {
            schema_version: answer::SCHEMA_VERSION,
            scenario: sc.name.clone(),
            key: self.key.to_string(),
            target: self.target.to_string(),
            direction: largest.map(|l| if l { "largest" } else { "smallest" }),
            value: est.map(|e| e.mean),
            interval: est.map(|e| [e.low, e.high]),
            seeds: values.len(),
            per_seed: values,
            analytic,
            ceiling,
            vendor,
            complete,
            bracket,
            seeds_asked: asked,
            probes,
        })
    }

    /// The bracket established so far. Per seed, the value nearest the
    /// boundary that missed the target and the one that met it on the good
    /// side of that miss; over seeds, the most cautious of the values met
    /// (one every seed searched met) and the nearest miss beyond it.
    fn bracket_so_far(
        &self,
        largest: Option<bool>,
        per_seed: &[(Option<f64>, Vec<Probe>)],
        extra: &[Probe],
    ) -> Bracket {
        let mut seeds: Vec<&[Probe]> = per_seed
            .iter()
            .map(|(_, p)| p.as_slice())
            .filter(|p| !p.is_empty())
            .collect();
        if !extra.is_empty() {
            seeds.push(extra);
        }
        let write = |v: Option<f64>| v.map(|v| self.kind.write(v));
        let Some(largest) = largest else {
            // No direction yet: no value is known to be on either side of
            // a boundary, so the bracket is empty.
            return Bracket {
                meets: None,
                misses: None,
                seeds_searched: seeds.len(),
            };
        };
        // Order values so that "better" (towards the good end) is smaller.
        let key = |v: f64| if largest { v } else { -v };
        let mut meets_all: Option<f64> = None;
        let mut every_seed_met = true;
        let mut misses_any: Option<f64> = None;
        for probes in &seeds {
            let miss = probes
                .iter()
                .filter(|p| !p.meets)
                .map(|p| p.at)
                .min_by(|a, b| key(*a).total_cmp(&key(*b)));
            let meet = probes
                .iter()
                .filter(|p| p.meets && miss.is_none_or(|m| key(p.at) < key(m)))
                .map(|p| p.at)
                .max_by(|a, b| key(*a).total_cmp(&key(*b)));
            match meet {
                Some(m) => {
                    meets_all = Some(meets_all.map_or(m, |a| if key(m) < key(a) { m } else { a }))
                }
                None => every_seed_met = false,
            }
            if let Some(m) = miss {
                misses_any = Some(misses_any.map_or(m, |a| if key(m) < key(a) { m } else { a }));
            }
        }
        Bracket {
            meets: write(meets_all.filter(|_| every_seed_met)),
            misses: write(misses_any),
            seeds_searched: seeds.len(),
        }
    }

    /// The runs at the answer, for `--fail-on`: the value found, written as
    /// it goes into the scenario, at every seed searched (a probe's run
    /// where that seed tried that very value, a new run otherwise), so
    /// `portsim run --set KEY=VALUE --seed S` reproduces each. `None` when
    /// the search found no value (interrupted).
    pub fn runs_at_answer(&self, cap: &Capacity) -> Result<Option<(String, Vec<Run>)>, InputError> {
        let Some(v) = cap.value.filter(|_| cap.complete) else {
            return Ok(None);
        };
        let value = self.kind.write(v);
        let sc = self.scenario_at(v)?;
        let runs = (0..self.plan.seeds)
            .into_par_iter()
            .map(|s| {
                let seed = self.plan.base_seed.wrapping_add(u64::from(s));
                cap.probes
                    .iter()
                    .find(|p| p.seed == seed && p.value == value)
                    .map_or_else(|| run_once(&sc, seed), |p| p.run)
            })
            .collect();
        Ok(Some((value, runs)))
    }

    /// The boundary of the closed form: Erlang B's failure ratio in place of
    /// a run's.
    fn analytic(&self, largest: bool) -> Result<f64, InputError> {
        let mut eval = |v: f64| -> Result<bool, Halt> {
            let sc = self.scenario_at(v)?;
            let (b, _, _) = super::analytic_of(&sc);
            Ok(self.target.meets(b))
        };
        let found = self
            .bracket(&mut eval, Some(largest))
            .and_then(|(_, good, bad)| self.bisect(&mut eval, good, bad));
        match found {
            Ok(v) => Ok(v),
            Err(Halt::Input(e)) => Err(e),
            Err(Halt::Stopped) => Err(InputError::usage("capacity: stopped")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Kind;

    /// Steps and powers of two snap up onto the key's values, and a
    /// bisection between two neighbours has nothing left to probe.
    #[test]
    fn discrete_kinds_snap_onto_their_values() {
        assert_eq!(Kind::Step(8).snap(1230.0), 1232.0);
        assert_eq!(Kind::Step(8).snap(3.0), 8.0);
        assert_eq!(Kind::Step(8).write(808.0), "808");
        assert_eq!(Kind::PowerOfTwo.snap(300.0), 512.0);
        assert_eq!(Kind::PowerOfTwo.snap(512.0), 512.0);
        assert_eq!(Kind::PowerOfTwo.snap(0.2), 1.0);
        assert_eq!(
            Kind::PowerOfTwo.snap(Kind::PowerOfTwo.middle(256.0, 1024.0)),
            512.0
        );
        assert_eq!(
            Kind::PowerOfTwo.snap(Kind::PowerOfTwo.middle(1024.0, 256.0)),
            512.0
        );
        let between = Kind::PowerOfTwo.snap(Kind::PowerOfTwo.middle(512.0, 1024.0));
        assert!(between == 512.0 || between == 1024.0);
    }

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
        for bad in ["failure<=1", "failure_ratio=1", "failure_ratio<=x"] {
            assert!(bad.parse::<Target>().is_err(), "{bad}");
        }
    }
}
