//! Computed fixes: after a run with failures, the changes that would have
//! avoided them, each run on the same seed and stated with its effect.
//!
//! Each lever in [`levers::LEVERS`] is one way out of exhaustion (keep-alive,
//! server close, `tcp_tw_reuse`, more destinations, more source addresses,
//! `bind-no-port`, a wider range, another allocator, a lower rate). A lever
//! looks at the scenario, says whether it applies, and writes its change as
//! `--set KEY=VALUE` pairs, so the scenario loader judges every value (a value
//! it refuses is outside the lever's domain) and a user can rerun any fix
//! with those flags. Same seed means paired runs: the same arrivals and hold
//! times meet the changed host, so the difference is the change's alone.
//!
//! A numeric lever is searched for the smallest change that leaves nothing
//! failing: a first guess from the closed form (the busiest pool's load at
//! 95 % of its ports), doubling the change until a value passes, then
//! bisection between the last failing and the first passing value. A probe
//! that fails stops at its first failure ([`crate::sim::UntilFailure`]), so
//! a search costs little more than its passing runs; a passing probe is a
//! complete run, and its figures are the ones reported. Where a lever knows
//! that only a few values can pass where the values below them failed (the
//! NAT address counts at which the address hash spreads the load better
//! than at any smaller count), the same search runs over those candidates
//! alone ([`Among`]): the failures need not fall steadily between them.
//!
//! Fixes must cost little next to the run, and a lever's answer takes at
//! least one complete run, so by default the levers share one budget of
//! [`BUDGET_RUNS`] runs (counted in the run's own attempts): they are tried
//! in the order of [`levers::LEVERS`] (the layer that ran out first), a probe
//! starts only if its estimated complete run still fits, and the levers the
//! budget left unanswered are named (`not_computed`). `--all-fixes` answers
//! every lever, in parallel, each within its own [`LEVER_BUDGET_RUNS`].
//! Either way every count is of attempts, never of time or threads, so the
//! answer is the same on any machine.

pub mod clients;
pub mod levers;

use std::path::Path;

use rayon::prelude::*;

use crate::report::{Fix, FixesCost, Report};
use crate::scenario::spec::Target;
use crate::scenario::{load_str, Override, Scenario};

/// Attempts one lever may spend on its probes, in runs of the scenario
/// (counted in the run's own attempts).
pub const LEVER_BUDGET_RUNS: f64 = 2.0;

/// Attempts all levers together may spend by default, in runs of the
/// scenario (counted in the run's own attempts).
pub const BUDGET_RUNS: f64 = 2.0;

/// The load factor a lever's first guess aims at.
pub const AIM: f64 = 0.95;

/// Most times a search doubles its change before it gives up.
const MAX_EXPAND: u32 = 16;
/// A search stops when the last failing and the first passing values are
/// this close, as a share of the change from the scenario's value.
const RESOLUTION: f64 = 0.1;
/// Most bisection steps of a search.
const MAX_BISECT: u32 = 24;

/// The scenario as the user gave it: file text and `--set` flags, and the
/// seed the run used.
pub struct Source<'a> {
    pub text: &'a str,
    pub path: &'a Path,
    pub overrides: &'a [Override],
    pub seed: u64,
    /// Refuse any probe estimated above this many events (`--max-events`)
    /// or bytes of memory (`--max-memory`): a lever's change may need more
    /// than the run (more destinations, addresses, ports).
    pub max_events: f64,
    pub max_memory: f64,
    /// The goal (`--target`); `None`: nothing fails.
    pub target: Option<Target>,
    /// Answer every lever (`--all-fixes`), not only those the shared
    /// budget reaches.
    pub all: bool,
}

/// One `--set` change: key and value as the flag writes them.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub key: String,
    pub value: String,
}

impl Change {
    pub fn new(key: &str, value: impl Into<String>) -> Change {
        Change {
            key: key.to_string(),
            value: value.into(),
        }
    }
    fn text(&self) -> String {
        format!("{}={}", self.key, self.value)
    }
}

/// How a numeric lever's values are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grid {
    /// Whole numbers.
    Integer,
    /// Three significant digits (rates).
    Sig3,
}

impl Grid {
    fn snap(self, v: f64) -> f64 {
        match self {
            Grid::Integer => v.round(),
            Grid::Sig3 => {
                if v <= 0.0 || !v.is_finite() {
                    return v;
                }
                let unit = 10f64.powf(v.log10().floor() - 2.0);
                (v / unit).round() * unit
            }
        }
    }
    /// The next value after `v` towards `dir` (±1).
    fn step(self, v: f64, dir: f64) -> f64 {
        match self {
            Grid::Integer => v + dir,
            Grid::Sig3 => {
                let unit = 10f64.powf(v.abs().max(1e-9).log10().floor() - 2.0);
                self.snap(v + dir * unit)
            }
        }
    }
    /// `v` as a `--set` value.
    pub fn write(self, v: f64) -> String {
        match self {
            Grid::Integer => format!("{}", v.round() as i64),
            Grid::Sig3 => crate::scenario::spec::write_quantity(self.snap(v), false),
        }
    }
}

/// A numeric lever: the value now (which fails), a first guess, and the
/// furthest value to go to; passing values lie towards `limit`.
pub struct Search {
    pub from: f64,
    pub guess: f64,
    pub limit: f64,
    pub grid: Grid,
    /// The changes that set the lever to a value.
    pub changes: Box<dyn Fn(f64) -> Vec<Change> + Send + Sync>,
}

/// What a lever does for a scenario.
pub enum Plan {
    /// One change, run once; kept if it avoids a tenth of the failures.
    Toggle(Vec<Change>),
    /// Alternatives tried in order: the first that leaves nothing failing,
    /// else the one with the fewest failures.
    FirstOf(Vec<Vec<Change>>),
    /// The smallest value of a numeric knob that leaves nothing failing.
    Search(Search),
    /// The smallest of a few candidate values that leaves nothing failing,
    /// where the values between them cannot do better than the candidate
    /// below.
    Among(Among),
}

/// A numeric lever whose values can only pass at a few known candidates:
/// each candidate is more likely to pass than every value below it, and the
/// values between two candidates no more likely than the lower one (the NAT
/// address counts at which the hash spreads the load better than at every
/// smaller count). The smallest candidate that passes is searched among the
/// candidates alone.
pub struct Among {
    /// The candidates, ascending, all past the value now (which fails).
    pub values: Vec<f64>,
    /// The index of the candidate probed first.
    pub guess: usize,
    /// The changes that set the lever to a value.
    pub changes: Box<dyn Fn(f64) -> Vec<Change> + Send + Sync>,
}

/// What a lever sees: the scenario as run, its report, and the file.
pub struct Context<'a> {
    pub sc: &'a Scenario,
    pub report: &'a Report,
    /// The file's table before `--set` (how the user wrote each key).
    pub file: &'a toml::Table,
    /// Keys the user gave with `--set`.
    pub overridden: Vec<&'a str>,
}

impl Context<'_> {
    /// Whether `key` (or anything under it) was set with `--set`.
    pub fn is_overridden(&self, key: &str) -> bool {
        self.overridden
            .iter()
            .any(|k| *k == key || k.starts_with(&format!("{key}.")))
    }

    /// Whether the host itself ran out (some failure was not a NAT's):
    /// only then can a change to the host's ports help.
    pub fn host_ran_out(&self) -> bool {
        let at_nats: u64 = self.report.nats.iter().map(|n| n.failures).sum();
        self.report.failures > at_nats
    }

    /// Load factor of the busiest pool at the highest rate: offered load
    /// over ports, shared evenly among the pools.
    pub fn load_factor(&self) -> f64 {
        let a = &self.report.analytic;
        let ports = a.pools as f64 * f64::from(a.ports_per_pool);
        if ports > 0.0 {
            a.offered_load_peak / ports
        } else {
            f64::INFINITY
        }
    }
}

/// A lever: its name (as `report.json` gives it) and what it does here.
pub struct Lever {
    pub name: &'static str,
    pub plan: fn(&Context) -> Option<Plan>,
}

/// The fixes of a run, best first, and what finding them cost.
pub struct Fixes {
    pub list: Vec<Fix>,
    pub cost: FixesCost,
}

/// Find the fixes for a run that misses its goal (nothing failing, or the
/// `--target`); nothing to do when it meets it.
pub fn compute(src: &Source, sc: &Scenario, report: &Report) -> Fixes {
    let mut cost = FixesCost {
        runs: 0,
        attempts: 0,
        relative_to_run: 0.0,
        budget_runs: (!src.all).then_some(BUDGET_RUNS),
        not_computed: Vec::new(),
        target: src
            .target
            .map_or_else(|| "failures<=0".to_string(), |t| t.to_string()),
    };
    if meets(src.target, report) {
        return Fixes {
            list: Vec::new(),
            cost,
        };
    }
    let plans = plans(src, sc, report);
    let run = report.attempts.max(1) as f64;
    let lever_cap = (run * LEVER_BUDGET_RUNS) as u64;
    let prober = |shared: Option<f64>| Prober {
        src,
        base: report,
        base_expected: sc.expected_attempts(),
        spent: Spent::default(),
        lever_cap,
        shared,
        cut: false,
    };
    let results: Vec<(&'static str, Option<Fix>, Spent, bool)> = if src.all {
        plans
            .par_iter()
            .map(|(name, plan)| {
                let mut p = prober(None);
                let fix = p.run(name, plan);
                (*name, fix, p.spent, p.cut)
            })
            .collect()
    } else {
        // One after another: what a lever may spend depends on what the
        // levers before it spent.
        let mut left = run * BUDGET_RUNS;
        plans
            .iter()
            .map(|(name, plan)| {
                let mut p = prober(Some(left));
                let fix = p.run(name, plan);
                left -= p.spent.attempts as f64;
                (*name, fix, p.spent, p.cut)
            })
            .collect()
    };
    let mut list = Vec::new();
    for (name, fix, spent, cut) in results {
        cost.runs += spent.runs;
        cost.attempts += spent.attempts;
        match fix {
            Some(fix) => list.push(fix),
            // The budget stopped it before it had an answer.
            None if cut => cost.not_computed.push(name),
            None => {}
        }
    }
    cost.relative_to_run = cost.attempts as f64 / report.attempts.max(1) as f64;
    // Those that meet the goal first, then the fewest failures; ties keep
    // the levers' order.
    list.sort_by(|a, b| {
        b.meets_target
            .cmp(&a.meets_target)
            .then(a.failure_ratio.total_cmp(&b.failure_ratio))
    });
    Fixes { list, cost }
}

/// The levers that apply to a run, in the order they are tried, each
/// with what it would try.
fn plans(src: &Source, sc: &Scenario, report: &Report) -> Vec<(&'static str, Plan)> {
    let file: toml::Table = toml::from_str(src.text).unwrap_or_default();
    let cx = Context {
        sc,
        report,
        file: &file,
        overridden: src.overrides.iter().map(|o| o.key.as_str()).collect(),
    };
    levers::LEVERS
        .iter()
        .filter_map(|l| (l.plan)(&cx).map(|p| (l.name, p)))
        .collect()
}

/// The names of the levers that apply to a run, in the order they are
/// tried.
pub fn applicable(src: &Source, sc: &Scenario, report: &Report) -> Vec<&'static str> {
    plans(src, sc, report).into_iter().map(|(n, _)| n).collect()
}

/// Whether a run meets the goal: the target holds, or nothing failed, no
/// connect was left retrying and none waited for a dropped SYN.
fn meets(target: Option<Target>, r: &Report) -> bool {
    match target {
        Some(t) => t.holds(&r.figures()),
        None => r.failures == 0 && r.connecting_at_end == 0 && r.connect_delay_s.waited == 0,
    }
}

#[derive(Default, Clone, Copy)]
struct Spent {
    runs: u64,
    attempts: u64,
}

/// The outcome of one probe.
enum Probe {
    /// The goal is met: the complete run's report.
    Pass(Box<Report>),
    /// The goal is missed: the complete run's report, or none when the
    /// run stopped at its first failure.
    Fail(Option<Box<Report>>),
    /// The value is outside the lever's domain or budget.
    Out,
}

struct Prober<'a> {
    src: &'a Source<'a>,
    base: &'a Report,
    /// The run's expected attempts ([`Scenario::expected_attempts`]), to
    /// scale the estimate of a probe's.
    base_expected: f64,
    spent: Spent,
    /// Attempts this lever may spend.
    lever_cap: u64,
    /// Attempts left in the budget the levers share, if they share one.
    shared: Option<f64>,
    /// A probe was refused for want of budget.
    cut: bool,
}

impl Prober<'_> {
    fn scenario(&self, changes: &[Change]) -> Option<Scenario> {
        let mut overrides = self.src.overrides.to_vec();
        for c in changes {
            overrides.push(Override::parse_as(&c.text(), "--set").ok()?);
        }
        let mut sc = load_str(self.src.text, self.src.path, &overrides).ok()?;
        sc.seed = self.src.seed;
        let limits = crate::Limits {
            max_events: self.src.max_events,
            max_memory: self.src.max_memory,
        };
        crate::limits::check(&sc, "", limits, false).ok()?;
        Some(sc)
    }

    /// Whether a probe of `sc` fits: the lever is within its own cap and,
    /// with a shared budget, the probe's complete run (estimated from the
    /// run's attempts, scaled as the expected attempts scale) fits in it.
    fn affordable(&mut self, sc: &Scenario) -> bool {
        let fits = self.spent.attempts < self.lever_cap
            && self.shared.is_none_or(|left| {
                let scale = if self.base_expected > 0.0 {
                    sc.expected_attempts() / self.base_expected
                } else {
                    1.0
                };
                let estimate = self.base.attempts as f64 * scale;
                self.spent.attempts as f64 + estimate <= left
            });
        if !fits {
            self.cut = true;
        }
        fits
    }

    /// Run `changes` to the end (`full`, or with a `--target`) or to the
    /// first failure.
    fn probe(&mut self, changes: &[Change], full: bool) -> Probe {
        let Some(sc) = self.scenario(changes) else {
            return Probe::Out;
        };
        if !self.affordable(&sc) {
            return Probe::Out;
        }
        let until_failure = !full && self.src.target.is_none();
        let outcome = if until_failure {
            crate::sim::simulate(&sc, &mut crate::sim::UntilFailure)
        } else {
            crate::sim::simulate(&sc, &mut crate::sim::Quiet)
        };
        self.spent.runs += 1;
        self.spent.attempts += outcome.attempts;
        if (outcome.failures > 0 || outcome.connecting_at_end > 0) && until_failure {
            return Probe::Fail(None);
        }
        let report = Box::new(Report::new(&sc, outcome));
        if !meets(self.src.target, &report) {
            // Only a full run of a change that still fails gets here.
            Probe::Fail(Some(report))
        } else {
            Probe::Pass(report)
        }
    }

    fn run(&mut self, name: &'static str, plan: &Plan) -> Option<Fix> {
        match plan {
            Plan::Toggle(changes) => self.toggle(name, changes),
            Plan::FirstOf(options) => {
                let mut best: Option<Fix> = None;
                for changes in options {
                    let Some(fix) = self.toggle(name, changes) else {
                        continue;
                    };
                    if fix.meets_target {
                        return Some(fix);
                    }
                    if best.as_ref().is_none_or(|b| fix.failures < b.failures) {
                        best = Some(fix);
                    }
                }
                best
            }
            Plan::Search(s) => self.search(name, s),
            Plan::Among(a) => self.among(name, a),
        }
    }

    /// One complete run; kept if it fails less than the run itself.
    fn toggle(&mut self, name: &'static str, changes: &[Change]) -> Option<Fix> {
        match self.probe(changes, true) {
            Probe::Pass(r) => Some(fix(name, changes, &r, true)),
            Probe::Fail(r) => {
                // Kept when it avoids a tenth of the failures or more: a
                // change that moves them by chance is no fix.
                let r = r?;
                (r.failures as f64 <= 0.9 * self.base.failures as f64)
                    .then(|| fix(name, changes, &r, false))
            }
            Probe::Out => None,
        }
    }

    fn search(&mut self, name: &'static str, s: &Search) -> Option<Fix> {
        let dir = if s.limit > s.from { 1.0 } else { -1.0 };
        // A value at least one step past `from` and not past `limit`.
        let clamp = |v: f64| {
            let v = s.grid.snap(v);
            let v = if (v - s.from) * dir < 1e-12 {
                s.grid.step(s.from, dir)
            } else {
                v
            };
            if (v - s.limit) * dir > 0.0 {
                s.limit
            } else {
                v
            }
        };
        let mut bad = s.from;
        let mut v = clamp(s.guess);
        let mut good = None;
        for _ in 0..MAX_EXPAND {
            match self.probe(&(s.changes)(v), false) {
                Probe::Pass(r) => {
                    good = Some((v, r));
                    break;
                }
                Probe::Fail(_) => {
                    if v == s.limit {
                        return None;
                    }
                    bad = v;
                    v = clamp(s.from + 2.0 * (v - s.from));
                }
                Probe::Out => return None,
            }
        }
        let (mut g, mut report) = good?;
        for _ in 0..MAX_BISECT {
            // Close enough: within a tenth of the change itself.
            if (g - bad).abs() <= RESOLUTION * (g - s.from).abs() {
                break;
            }
            let mid = s.grid.snap((g + bad) / 2.0);
            if mid == g || mid == bad || (mid - bad) * dir <= 0.0 || (g - mid) * dir <= 0.0 {
                break;
            }
            match self.probe(&(s.changes)(mid), false) {
                Probe::Pass(r) => {
                    g = mid;
                    report = r;
                }
                Probe::Fail(_) => bad = mid,
                Probe::Out => break,
            }
        }
        Some(fix(name, &(s.changes)(g), &report, true))
    }

    /// The smallest candidate that passes, as [`Prober::search`] finds a
    /// value, over the candidates' indices: the first guess, then steps
    /// doubling up the list until one passes, then bisection down to the
    /// candidate just above the last that failed.
    fn among(&mut self, name: &'static str, a: &Among) -> Option<Fix> {
        let last = a.values.len().checked_sub(1)?;
        let value = |i: usize| (a.changes)(a.values[i]);
        // The highest candidate known to fail (`None`: only the value now).
        let mut bad: Option<usize> = None;
        let mut i = a.guess.min(last);
        let mut step = 1;
        let (mut good, mut report) = loop {
            match self.probe(&value(i), false) {
                Probe::Pass(r) => break (i, r),
                Probe::Fail(_) if i < last => {
                    bad = Some(i);
                    i = (i + step).min(last);
                    step *= 2;
                }
                Probe::Fail(_) | Probe::Out => return None,
            }
        };
        loop {
            let lo = bad.map_or(0, |b| b + 1);
            if lo >= good {
                break;
            }
            let mid = lo + (good - lo) / 2;
            match self.probe(&value(mid), false) {
                Probe::Pass(r) => {
                    good = mid;
                    report = r;
                }
                Probe::Fail(_) => bad = Some(mid),
                Probe::Out => break,
            }
        }
        Some(fix(name, &value(good), &report, true))
    }
}

fn fix(lever: &'static str, changes: &[Change], r: &Report, meets_target: bool) -> Fix {
    // A NAT's lever is judged by that NAT: the busiest one's ports of one
    // address, against its range.
    let nat = r
        .nats
        .iter()
        .filter(|n| n.ports_per_address > 0)
        .max_by(|a, b| {
            let share = |n: &crate::report::NatReport| {
                f64::from(n.peak_ports_per_address) / f64::from(n.ports_per_address)
            };
            share(a).total_cmp(&share(b))
        });
    let (peak_in_use, ports) = match nat {
        Some(n) if lever.starts_with("nat_") => {
            (n.peak_ports_per_address, u64::from(n.ports_per_address))
        }
        // A fleet's peak is over all its hosts: judge the busiest host
        // against one host's ports.
        _ if r.is_fleet() => (
            r.hosts
                .iter()
                .map(|g| g.peak_in_use_per_host)
                .max()
                .unwrap_or(0),
            crate::report::summary::pool_size(r),
        ),
        _ => (r.ports.peak_in_use, crate::report::summary::pool_size(r)),
    };
    Fix {
        lever,
        change: changes.iter().map(Change::text).collect(),
        failure_ratio: r.failure_ratio,
        failures: r.failures,
        first_failure: r.first_failure.clone(),
        peak_in_use,
        ports,
        attempts: r.attempts,
        meets_target,
    }
}
