//! `run --seeds N`: one scenario run with N independent seeds (its seed,
//! then +1, +2, ..., as a sweep's replications), in parallel, and the
//! spread of every figure of its report over those seeds.
//!
//! A figure is a numeric leaf of a seed's `report.json`, named by its dotted
//! path (`attempts`, `ports.peak_in_use`, `reuse_interval_s.p99`,
//! `pools.0.peak_in_use`). Each seed's report is serialized and read back
//! into a tree that keeps the fields in the order the report writes them
//! (`serde_json::Value` would sort them), so the figures come out in the
//! report's own order, whatever order the seeds finish in. Arrays are
//! indexed when they have at most [`MAX_INDEXED`] elements and skipped
//! otherwise; the `scenario` echo, `timeseries`, `fixes` and `fixes_cost`,
//! the seed itself and every string and boolean are left out. A figure that
//! is null (or absent) in some seeds is taken over the seeds where it is a
//! number, and `n` says how many.
//!
//! Seeds run on the pool in chunks and are folded in seed order into
//! running sums per figure (count, sum, Welford's squared deviations, min,
//! max): memory grows with the figures, not with figures × seeds, which for
//! 100,000 seeds of a fleet would be gigabytes. The mean is the sum over n
//! in seed order, as [`super::stats::Estimate::of`] computes it, and the
//! interval is that estimate's Student's t interval on the same variance;
//! the bytes are the same for any `--jobs`. Fixes are never computed: they
//! answer one run.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};

use rayon::prelude::*;
use schemars::JsonSchema;
use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Serialize;

use super::stats::t975;
use super::Progress;
use crate::error::InputError;
use crate::limits::{Cost, Limits, Part};
use crate::report::format::{amount, human_s, measured_s, percent};
use crate::report::{Report, ScenarioEcho};
use crate::scenario::Scenario;
use crate::util::thousands;

/// The version of the `run --seeds N --json` document.
pub const SCHEMA_VERSION: u32 = 1;

/// The most seeds one `run --seeds` may ask for.
pub const MAX_SEEDS: u64 = 100_000;

/// Arrays with at most this many elements are flattened by index
/// (`pools.0.peak_in_use`); longer ones are left out.
pub const MAX_INDEXED: usize = 64;

/// Top-level fields of the report that are not figures of a run: the
/// document's version, the seed, the scenario as written, the time series'
/// bin count, and the fixes (never computed here).
pub const SKIPPED: [&str; 6] = [
    "schema_version",
    "seed",
    "scenario",
    "timeseries",
    "fixes",
    "fixes_cost",
];

/// `--seeds N`: at least 1, at most [`MAX_SEEDS`].
pub fn seed_count(n: u64) -> Result<u32, InputError> {
    match u32::try_from(n) {
        Ok(k) if k >= 1 && u64::from(k) <= MAX_SEEDS => Ok(k),
        _ => Err(InputError::usage(format!(
            "--seeds {n}: expected 1 to {} runs (seeds SEED, SEED+1, ...)",
            thousands(MAX_SEEDS)
        ))),
    }
}

/// Refuse N seeds that would take too long or too much memory: the work of
/// one run times N, and the memory of one run times the runs in flight at
/// once (`threads`, at most N), against the same limits as one run, with
/// the same message.
pub fn check_size(
    sc: &Scenario,
    source: &str,
    seeds: u32,
    limits: Limits,
    threads: usize,
) -> Result<(), InputError> {
    let one = crate::limits::estimate(sc, false);
    let n = f64::from(seeds);
    let in_flight = threads.min(seeds as usize).max(1);
    let scale = |parts: &[Part], k: f64, what: &str| -> Vec<Part> {
        parts
            .iter()
            .map(|p| Part {
                amount: p.amount * k,
                what: format!("{} {what}", p.what),
            })
            .collect()
    };
    let cost = Cost {
        attempts: one.attempts * n,
        events: one.events * n,
        event_parts: scale(
            &one.event_parts,
            n,
            &format!("× {} seeds", thousands(u64::from(seeds))),
        ),
        memory: one.memory * in_flight as f64,
        memory_parts: scale(
            &one.memory_parts,
            in_flight as f64,
            &format!("× {in_flight} runs at once (--jobs)"),
        ),
    };
    crate::limits::check_cost(&cost, &format!("{source} with --seeds {seeds}"), limits)
}

/// One figure over the seeds.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Figure {
    /// The figure's dotted path in report.json.
    pub figure: String,
    pub mean: f64,
    /// Sample standard deviation (n − 1); null with one value.
    pub sd: Option<f64>,
    /// The 95 % interval of the mean (Student's t), as `sweep` gives it.
    pub low: f64,
    pub high: f64,
    pub min: f64,
    pub max: f64,
    /// Seeds where the figure is a number.
    #[schemars(range(min = 1))]
    pub n: usize,
}

/// What one seed's run gave, briefly.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct SeedRun {
    pub seed: u64,
    pub attempts: u64,
    pub failures: u64,
    #[schemars(range(min = 0.0, max = 1.0))]
    pub failure_ratio: f64,
    pub first_failure_s: Option<f64>,
    pub peak_in_use: u32,
}

/// The seeds run.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct SeedList {
    #[schemars(range(min = 1))]
    pub count: u32,
    pub first: u64,
    pub seeds: Vec<u64>,
}

/// `run --seeds N`: the spread of every figure over the seeds.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct SeedsReport {
    #[schemars(extend("const" = SCHEMA_VERSION))]
    pub schema_version: u32,
    pub portsim_version: &'static str,
    /// The first seed's scenario echo.
    pub scenario: ScenarioEcho,
    pub seeds: SeedList,
    /// In report.json's order.
    pub figures: Vec<Figure>,
    /// One per seed, in seed order.
    pub runs: Vec<SeedRun>,
    /// Names of the host groups and NATs (the first seed's), for the table.
    #[serde(skip)]
    pub host_groups: Vec<String>,
    #[serde(skip)]
    pub nat_names: Vec<String>,
    #[serde(skip)]
    pub fleet: bool,
}

/// Run `sc` with `seeds` seeds from `base` on `pool`. Seeds not started
/// when `stop` is set are skipped, and then nothing is returned: a spread
/// over the seeds that happened to finish first would not be the one asked
/// for.
pub fn run_seeds(
    sc: &Scenario,
    seeds: u32,
    base: u64,
    pool: &rayon::ThreadPool,
    stop: &AtomicBool,
    progress: &dyn Progress,
) -> Option<SeedsReport> {
    let chunk = pool.current_num_threads().max(1) * 8;
    let mut agg = Aggregate::default();
    let mut runs = Vec::with_capacity(seeds as usize);
    let mut first: Option<Report> = None;
    let mut start = 0u32;
    while start < seeds {
        let end = seeds.min(start.saturating_add(chunk as u32));
        let done: Vec<Option<One>> = pool.install(|| {
            (start..end)
                .into_par_iter()
                .map(|i| {
                    if stop.load(Ordering::Relaxed) {
                        return None;
                    }
                    let one = run_one(sc, base.wrapping_add(u64::from(i)), i == 0);
                    progress.tick();
                    Some(one)
                })
                .collect()
        });
        for one in done {
            let one = one?;
            agg.add(&one.figures);
            runs.push(one.run);
            if one.report.is_some() {
                first = one.report;
            }
        }
        start = end;
    }
    let first = first?;
    Some(SeedsReport {
        schema_version: SCHEMA_VERSION,
        portsim_version: env!("CARGO_PKG_VERSION"),
        seeds: SeedList {
            count: seeds,
            first: base,
            seeds: runs.iter().map(|r| r.seed).collect(),
        },
        figures: agg.figures(),
        runs,
        host_groups: first.hosts.iter().map(|h| h.name.clone()).collect(),
        nat_names: first.nats.iter().map(|n| n.name.clone()).collect(),
        fleet: first.is_fleet(),
        scenario: first.scenario,
    })
}

/// One seed's run: its brief row, its figures, and its report when it is
/// the first seed (for the scenario echo and the names).
struct One {
    run: SeedRun,
    figures: Vec<(String, Option<f64>)>,
    report: Option<Report>,
}

fn run_one(sc: &Scenario, seed: u64, keep: bool) -> One {
    let mut sc = sc.clone();
    sc.seed = seed;
    let report = crate::run(&sc);
    let json = serde_json::to_string(&report).expect("report serializes");
    One {
        run: SeedRun {
            seed,
            attempts: report.attempts,
            failures: report.failures,
            failure_ratio: report.failure_ratio,
            first_failure_s: report.first_failure.as_ref().map(|f| f.time_s),
            peak_in_use: report.ports.peak_in_use,
        },
        figures: figures_of(&json),
        report: keep.then_some(report),
    }
}

/// The figures of a report's JSON, in its order: every numeric or null
/// leaf by dotted path (null: not a number in this run), arrays of at most
/// [`MAX_INDEXED`] elements by index, the [`SKIPPED`] fields left out.
pub fn figures_of(json: &str) -> Vec<(String, Option<f64>)> {
    let mut out = Vec::new();
    // The report is ours and serializes to valid JSON; anything else has
    // no figures.
    if let Ok(Node::Obj(fields)) = serde_json::from_str::<Node>(json) {
        let mut path = String::new();
        for (key, value) in &fields {
            if !SKIPPED.contains(&key.as_str()) {
                path.clear();
                path.push_str(key);
                walk(value, &mut path, &mut out);
            }
        }
    }
    out
}

fn walk(node: &Node, path: &mut String, out: &mut Vec<(String, Option<f64>)>) {
    let mut child = |path: &mut String, name: &str, v: &Node| {
        let len = path.len();
        path.push('.');
        path.push_str(name);
        walk(v, path, out);
        path.truncate(len);
    };
    match node {
        Node::Num(x) => out.push((path.clone(), Some(*x))),
        Node::Null => out.push((path.clone(), None)),
        Node::Other => {}
        Node::Obj(fields) => {
            for (k, v) in fields {
                child(path, k, v);
            }
        }
        Node::Arr(items) if items.len() <= MAX_INDEXED => {
            for (i, v) in items.iter().enumerate() {
                child(path, &i.to_string(), v);
            }
        }
        Node::Arr(_) => {}
    }
}

/// A JSON value with its object fields in the order they were written.
enum Node {
    Num(f64),
    Null,
    /// A string or a boolean: not a figure.
    Other,
    Obj(Vec<(String, Node)>),
    Arr(Vec<Node>),
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Node, D::Error> {
        d.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<Node, E> {
        Ok(Node::Other)
    }
    fn visit_i64<E>(self, v: i64) -> Result<Node, E> {
        Ok(Node::Num(v as f64))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Node, E> {
        Ok(Node::Num(v as f64))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Node, E> {
        Ok(Node::Num(v))
    }
    fn visit_str<E>(self, _: &str) -> Result<Node, E> {
        Ok(Node::Other)
    }
    fn visit_unit<E>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }
    fn visit_none<E>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
        Node::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(v) = seq.next_element::<Node>()? {
            items.push(v);
        }
        Ok(Node::Arr(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut fields = Vec::new();
        while let Some((k, v)) = map.next_entry::<String, Node>()? {
            fields.push((k, v));
        }
        Ok(Node::Obj(fields))
    }
}

/// Running sums of one figure, fed in seed order.
#[derive(Debug, Clone, Default)]
struct Acc {
    n: usize,
    sum: f64,
    /// Welford's running mean and sum of squared deviations from it.
    running_mean: f64,
    m2: f64,
    min: f64,
    max: f64,
}

impl Acc {
    fn push(&mut self, x: f64) {
        self.n += 1;
        self.sum += x;
        let d = x - self.running_mean;
        self.running_mean += d / self.n as f64;
        self.m2 += d * (x - self.running_mean);
        if self.n == 1 {
            (self.min, self.max) = (x, x);
        } else {
            self.min = self.min.min(x);
            self.max = self.max.max(x);
        }
    }

    /// Mean, sd and the 95 % interval as [`super::stats::Estimate::of`]
    /// gives them for the same values; `None` with no value.
    fn figure(&self, path: &str) -> Option<Figure> {
        let n = self.n;
        if n == 0 {
            return None;
        }
        let mean = self.sum / n as f64;
        let (sd, low, high) = if n == 1 {
            (None, mean, mean)
        } else {
            let var = (self.m2 / (n - 1) as f64).max(0.0);
            let half = t975(n - 1) * (var / n as f64).sqrt();
            (Some(var.sqrt()), mean - half, mean + half)
        };
        Some(Figure {
            figure: path.to_string(),
            mean,
            sd,
            low,
            high,
            min: self.min,
            max: self.max,
            n,
        })
    }
}

/// Every figure seen so far, in report order.
#[derive(Default)]
struct Aggregate {
    paths: Vec<String>,
    accs: Vec<Acc>,
    index: HashMap<String, usize>,
    /// Ids in report order. A path first seen in a later seed (a
    /// `first_failure` that was null before) goes right after the path
    /// that precedes it in that seed's report.
    order: Vec<usize>,
}

impl Aggregate {
    fn add(&mut self, figures: &[(String, Option<f64>)]) {
        let mut prev: Option<usize> = None;
        for (path, value) in figures {
            let id = match self.index.get(path) {
                Some(&id) => id,
                None => {
                    let id = self.paths.len();
                    self.paths.push(path.clone());
                    self.accs.push(Acc::default());
                    self.index.insert(path.clone(), id);
                    let at = prev
                        .and_then(|p| self.order.iter().position(|&o| o == p))
                        .map_or(0, |i| i + 1);
                    self.order.insert(at, id);
                    id
                }
            };
            if let Some(x) = value {
                self.accs[id].push(*x);
            }
            prev = Some(id);
        }
    }

    /// The figures that were a number in at least one seed, in order.
    fn figures(&self) -> Vec<Figure> {
        self.order
            .iter()
            .filter_map(|&id| self.accs[id].figure(&self.paths[id]))
            .collect()
    }
}

/// How a figure reads in the table.
#[derive(Clone, Copy)]
enum Unit {
    Count,
    Ratio,
    Seconds,
}

impl Unit {
    fn of(path: &str) -> Unit {
        let last = path.rsplit('.').next().unwrap_or(path);
        if path.split('.').any(|p| p.ends_with("_s")) {
            Unit::Seconds
        } else if last.contains("ratio") || last.starts_with("worst_") {
            Unit::Ratio
        } else {
            Unit::Count
        }
    }

    fn show(self, x: f64) -> String {
        match self {
            Unit::Count => amount(x),
            Unit::Ratio => percent(x),
            Unit::Seconds if x == 0.0 => "0 s".to_string(),
            Unit::Seconds => measured_s(x),
        }
    }
}

impl SeedsReport {
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).expect("the seeds report serializes");
        s.push('\n');
        s
    }

    /// A figure by its path.
    pub fn figure(&self, path: &str) -> Option<&Figure> {
        self.figures.iter().find(|f| f.figure == path)
    }

    /// The rows of the table: the main figures, then each fleet group's
    /// and NAT's, then the client model's, and a few only when not zero.
    fn table_rows(&self) -> Vec<(String, String)> {
        let mut rows: Vec<(String, String)> = Vec::new();
        let mut add = |path: String, label: String| rows.push((path, label));
        let plain = |p: &str| (p.to_string(), p.to_string());
        for p in [
            "attempts",
            "failures",
            "failure_ratio",
            "first_failure.time_s",
            "retries",
            "connect_delay_s.p99",
            "connecting_at_end",
            "stale_reuse",
            "ports.peak_in_use",
            "ports.mean_in_use",
            "ports.peak_time_wait",
            "bursts.worst_10s",
            "reuse_interval_s.p50",
            "reuse_interval_s.p99",
        ] {
            let (a, b) = plain(p);
            add(a, b);
        }
        const LISTED: usize = 8;
        if self.fleet || self.host_groups.len() > 1 {
            for (i, name) in self.host_groups.iter().enumerate().take(LISTED) {
                for f in ["failures", "peak_in_use_per_host"] {
                    add(format!("hosts.{i}.{f}"), format!("hosts.{i}.{f} ({name})"));
                }
            }
        }
        for (i, name) in self.nat_names.iter().enumerate().take(LISTED) {
            for f in ["failures", "peak_mappings", "peak_ports_per_address"] {
                add(format!("nats.{i}.{f}"), format!("nats.{i}.{f} ({name})"));
            }
        }
        for p in [
            "requests.failed",
            "requests.response_s.p99",
            "connections.reuse_ratio",
            "pool_wait_s.p99",
        ] {
            let (a, b) = plain(p);
            add(a, b);
        }
        // Shown only when some seed has them: they are zero in most runs.
        let only_if_seen = [
            "retries",
            "connect_delay_s.p99",
            "connecting_at_end",
            "stale_reuse",
        ];
        rows.retain(|(path, _)| match self.figure(path) {
            None => false,
            Some(f) => !only_if_seen.contains(&path.as_str()) || f.max != 0.0 || f.min != 0.0,
        });
        rows
    }

    /// The human view: what was run, how many seeds failed and when, and
    /// the main figures as mean ± sd (min – max).
    pub fn to_table(&self) -> String {
        let mut s = String::new();
        let count = self.seeds.count;
        let last = self.seeds.first.wrapping_add(u64::from(count) - 1);
        let simulated = match self.figure("simulated_s") {
            Some(f) if f.min == f.max => format!("{} simulated", human_s(f.min)),
            Some(f) => format!("{} – {} simulated", human_s(f.min), human_s(f.max)),
            None => "nothing simulated".to_string(),
        };
        let _ = writeln!(
            s,
            "portsim {} · {} · {} seeds ({}..{}) · {simulated}",
            self.portsim_version,
            self.scenario.name,
            thousands(u64::from(count)),
            self.seeds.first,
            last
        );
        if !self.scenario.description.is_empty() {
            let _ = writeln!(s, "{}", self.scenario.description.trim());
        }
        let failed: Vec<&SeedRun> = self.runs.iter().filter(|r| r.failures > 0).collect();
        let firsts: Vec<f64> = self.runs.iter().filter_map(|r| r.first_failure_s).collect();
        let line = if failed.is_empty() {
            format!(
                "Nothing failed in any of the {} seeds.",
                thousands(count.into())
            )
        } else {
            let lo = firsts.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = firsts.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let when = if firsts.is_empty() {
                String::new()
            } else if lo == hi {
                format!("; the first failure came at {}", measured_s(lo))
            } else {
                format!(
                    "; the first failure came between {} and {}",
                    measured_s(lo),
                    measured_s(hi)
                )
            };
            format!(
                "Attempts failed in {} of {} seeds{when}.",
                thousands(failed.len() as u64),
                thousands(count.into())
            )
        };
        let _ = writeln!(s, "\n  {line}\n");
        let rows = self.table_rows();
        let width = rows
            .iter()
            .map(|(_, l)| l.chars().count())
            .max()
            .unwrap_or(0);
        let _ = writeln!(
            s,
            "  {:width$}  mean ± sd (min – max) over the seeds",
            "figure"
        );
        for (path, label) in &rows {
            let Some(f) = self.figure(path) else { continue };
            let unit = Unit::of(path);
            let sd = match f.sd {
                Some(sd) => format!(" ± {}", unit.show(sd)),
                None => String::new(),
            };
            let seen = if f.n < count as usize {
                format!(
                    "; in {} of {} seeds",
                    thousands(f.n as u64),
                    thousands(count.into())
                )
            } else {
                String::new()
            };
            let _ = writeln!(
                s,
                "  {label:width$}  {}{sd} ({} – {}){seen}",
                unit.show(f.mean),
                unit.show(f.min),
                unit.show(f.max)
            );
        }
        let _ = writeln!(
            s,
            "\n  --json lists every figure of the report ({}) with its 95 % interval, and each seed's run.",
            thousands(self.figures.len() as u64)
        );
        s
    }
}

#[cfg(test)]
mod tests {
    use super::super::stats::Estimate;
    use super::*;

    #[test]
    fn figures_keep_the_report_order_and_skip_what_is_not_a_figure() {
        let json = r#"{"schema_version":1,"seed":3,"scenario":{"a":1},"zeta":2,
            "alpha":{"b":1.5,"a":null,"s":"x","t":true},
            "list":[{"x":1},{"x":2}],"timeseries":{"bins":9},"fixes":[],"fixes_cost":null,
            "long":[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31,32,33,34,35,36,37,38,39,40,41,42,43,44,45,46,47,48,49,50,51,52,53,54,55,56,57,58,59,60,61,62,63,64,65]}"#;
        let got = figures_of(json);
        assert_eq!(
            got,
            vec![
                ("zeta".to_string(), Some(2.0)),
                ("alpha.b".to_string(), Some(1.5)),
                ("alpha.a".to_string(), None),
                ("list.0.x".to_string(), Some(1.0)),
                ("list.1.x".to_string(), Some(2.0)),
            ]
        );
    }

    #[test]
    fn a_path_first_seen_later_keeps_its_place() {
        let mut agg = Aggregate::default();
        let f = |v: &[(&str, Option<f64>)]| -> Vec<(String, Option<f64>)> {
            v.iter().map(|(p, x)| (p.to_string(), *x)).collect()
        };
        agg.add(&f(&[("a", Some(1.0)), ("ff", None), ("z", Some(5.0))]));
        agg.add(&f(&[
            ("a", Some(3.0)),
            ("ff.t", Some(7.0)),
            ("ff.k", Some(8.0)),
            ("z", Some(6.0)),
        ]));
        let figs = agg.figures();
        let names: Vec<&str> = figs.iter().map(|f| f.figure.as_str()).collect();
        assert_eq!(names, ["a", "ff.t", "ff.k", "z"]);
        assert_eq!(figs[1].n, 1);
        assert_eq!(figs[1].sd, None);
        assert_eq!((figs[1].low, figs[1].high), (7.0, 7.0));
        assert_eq!(figs[0].n, 2);
        assert_eq!((figs[0].min, figs[0].max, figs[0].mean), (1.0, 3.0, 2.0));
    }

    #[test]
    fn running_sums_agree_with_the_sweep_estimate() {
        let xs = [2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0, 0.1, 1e6, 3.25];
        let mut acc = Acc::default();
        for x in xs {
            acc.push(x);
        }
        let got = acc.figure("x").unwrap();
        let want = Estimate::of(&xs).unwrap();
        assert_eq!(got.mean, want.mean);
        assert_eq!(got.n, want.n);
        let tol = 1e-9 * want.mean.abs();
        assert!((got.low - want.low).abs() <= tol, "{got:?} {want:?}");
        assert!((got.high - want.high).abs() <= tol, "{got:?} {want:?}");
        let mean = want.mean;
        let sd = (xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / 10.0).sqrt();
        assert!((got.sd.unwrap() - sd).abs() <= 1e-9 * sd, "{got:?} {sd}");
        assert_eq!((got.min, got.max), (0.1, 1e6));
        // The same value every time: no spread at all.
        let mut same = Acc::default();
        for _ in 0..5 {
            same.push(0.3);
        }
        let f = same.figure("x").unwrap();
        assert_eq!((f.sd, f.low, f.high), (Some(0.0), f.mean, f.mean));
    }

    #[test]
    fn seed_counts_outside_the_range_are_refused() {
        assert_eq!(seed_count(1).unwrap(), 1);
        assert_eq!(seed_count(MAX_SEEDS).unwrap(), 100_000);
        for bad in [0, MAX_SEEDS + 1, u64::MAX] {
            let e = seed_count(bad).unwrap_err().to_string();
            assert!(e.starts_with(&format!("--seeds {bad}: ")), "{e}");
            assert!(e.contains("1 to 100,000"), "{e}");
        }
    }

    #[test]
    fn units_follow_the_path() {
        assert!(matches!(Unit::of("first_failure.time_s"), Unit::Seconds));
        assert!(matches!(Unit::of("reuse_interval_s.p99"), Unit::Seconds));
        assert!(matches!(Unit::of("failure_ratio"), Unit::Ratio));
        assert!(matches!(Unit::of("bursts.worst_10s"), Unit::Ratio));
        assert!(matches!(Unit::of("ports.peak_in_use"), Unit::Count));
    }
}
