//! The `sweep`, `capacity` and `merge` commands: flags in, files and a table
//! or sentence out. The work is in [`super`]; this is the plumbing (progress
//! bar, Ctrl-C, output files).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::capacity::{Kind, Search, Target};
use super::output::{merge, stable_id, SweepReport, SCHEMA_VERSION};
use super::{pool, quantity, run_points, Plan, Shard, Vary};
use crate::cli::print_out;
use crate::error::InputError;
use crate::output::{prepare_dir, write_atomic};
use crate::scenario::{load_str, read_file, Override};

/// Exit code of an interrupted sweep (128 + SIGINT), after its finished
/// points are written.
pub const INTERRUPTED: i32 = 130;

/// Flags `sweep` and `capacity` share: how many runs, on how many threads,
/// from which seed, with which overrides, and how the result is shown.
#[derive(clap::Args, Debug)]
pub struct Runs {
    /// Runs per point (sweep) or seeds searched (capacity), with seeds
    /// SEED, SEED+1, ...; results are their mean with a 95 % interval
    /// [default: the scenario's [sweep] seeds, else 10].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub seeds: Option<u32>,
    /// Threads (default: one per core). The result does not depend on it.
    #[arg(long, value_name = "J", default_value_t = 0)]
    pub jobs: usize,
    /// Print the result as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
    /// First seed (default: the scenario's).
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
    /// Override a scenario key (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<Override>,
}

#[derive(clap::Args, Debug)]
pub struct SweepArgs {
    /// Scenario file (TOML).
    pub scenario: PathBuf,
    /// A key and its values: KEY=a,b,c or KEY=FROM..TO:STEP (repeat for a
    /// grid) [default: the scenario's [sweep] vary].
    #[arg(long = "vary", value_name = "KEY=SPEC")]
    pub vary: Vec<Vary>,
    #[command(flatten)]
    pub runs: Runs,
    /// Write sweep.json, sweep.csv and the chart (sweep.png, sweep.svg) into DIR.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Run only shard K of N (points K, K+N, ...); combine with `portsim merge`.
    #[arg(long, value_name = "K/N", requires = "out")]
    pub shard: Option<Shard>,
    /// Refuse sweeps expected to make more connection attempts than this in all.
    #[arg(long, value_name = "N", default_value_t = 1e11)]
    pub max_events: f64,
}

#[derive(clap::Args, Debug)]
pub struct CapacityArgs {
    /// Scenario file (TOML).
    pub scenario: PathBuf,
    /// The key to search, optionally with a starting bracket: KEY or
    /// KEY=LOW..HIGH [default: the scenario's [sweep] capacity].
    #[arg(long = "vary", value_name = "KEY[=LOW..HIGH]")]
    pub vary: Option<String>,
    /// What the answer must keep: failure_ratio or peak_in_use, <=, <, >=, >,
    /// a number [default: the scenario's [sweep] target, else failure_ratio<=1e-4].
    #[arg(long, value_name = "FIGURE<=X")]
    pub target: Option<Target>,
    #[command(flatten)]
    pub runs: Runs,
    /// Write capacity.json and every value tried (capacity.csv) into DIR.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Refuse to probe a value expected to make more connection attempts
    /// than this in one run.
    #[arg(long, value_name = "N", default_value_t = 1e8)]
    pub max_events: f64,
}

#[derive(clap::Args, Debug)]
pub struct MergeArgs {
    /// Output directories of `portsim sweep --shard K/N --out DIR`, one per shard.
    #[arg(required = true)]
    pub dirs: Vec<PathBuf>,
    /// Where the combined sweep.json, sweep.csv and chart go.
    #[arg(long, value_name = "DIR", required = true)]
    pub out: PathBuf,
    /// Print the result as JSON on stdout instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// Set on the first Ctrl-C or SIGTERM; runs not yet started are skipped. A
/// second signal ends the process at once (see [`crate::interrupt`]).
fn stop_flag() -> Arc<AtomicBool> {
    crate::interrupt::stop_flag()
}

/// A bar on a terminal, nothing otherwise or with --quiet.
fn bar(len: u64, quiet: bool, what: &str) -> ProgressBar {
    if quiet || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template(&format!(
        "{{bar:40}} {{pos}}/{{len}} {what} · {{elapsed}} elapsed, {{eta}} left"
    ))
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    pb.set_style(style);
    pb
}

/// The files of a sweep, as one set: all rendered, then all written, or
/// none replaced.
fn write_sweep(dir: &Path, r: &SweepReport) -> anyhow::Result<()> {
    let mut set = crate::output::OutputSet::new();
    set.add(dir.join("sweep.json"), r.to_json().into_bytes());
    set.add(dir.join("sweep.csv"), r.to_csv().into_bytes());
    if !r.points.is_empty() {
        let png = crate::chart::sweep::png(r).map_err(anyhow::Error::msg)?;
        set.add(dir.join("sweep.png"), png);
        let svg = crate::chart::sweep::svg(r).map_err(anyhow::Error::msg)?;
        set.add(dir.join("sweep.svg"), svg.into_bytes());
    }
    set.commit()?;
    Ok(())
}

pub fn sweep(args: SweepArgs) -> anyhow::Result<i32> {
    let text = read_file(&args.scenario)?;
    let base = load_str(&text, &args.scenario, &args.runs.set)?;
    let varies = if args.vary.is_empty() {
        base.sweep.vary.clone()
    } else {
        args.vary.clone()
    };
    if varies.is_empty() {
        return Err(InputError::usage(format!(
            "{}: nothing to vary: give --vary KEY=SPEC (e.g. --vary traffic.rate=100..400:50) or a [sweep] table with vary = [...] in the scenario",
            args.scenario.display()
        ))
        .into());
    }
    let seeds = args.runs.seeds.or(base.sweep.seeds).unwrap_or(10);
    let mut seen: Vec<&str> = Vec::new();
    for v in &varies {
        if seen.contains(&v.key.as_str()) {
            return Err(
                InputError::usage(format!("--vary {}: the key is varied twice", v.key)).into(),
            );
        }
        seen.push(&v.key);
    }
    let plan = Plan {
        scenario: args.scenario.clone(),
        text,
        overrides: args.runs.set.clone(),
        varies,
        seeds,
        base_seed: args.runs.seed.unwrap_or(base.seed),
    };
    let points = plan.points(args.shard)?;
    plan.check_size(&points, args.max_events)?;
    if let Some(dir) = &args.out {
        prepare_dir(dir)?;
    }
    let threads = pool(args.runs.jobs)?;
    let stop = stop_flag();
    let pb = bar(points.len() as u64, args.runs.quiet, "points");
    let results = threads.install(|| run_points(&points, plan.seeds, plan.base_seed, &stop, &pb));
    pb.finish_and_clear();
    let mut id_parts: Vec<String> = vec![
        plan.text.clone(),
        plan.seeds.to_string(),
        plan.base_seed.to_string(),
    ];
    id_parts.extend(plan.overrides.iter().map(|o| o.text.clone()));
    id_parts.extend(
        plan.varies
            .iter()
            .map(|v| format!("{}={}", v.key, v.values.join(","))),
    );
    let ids: Vec<&str> = id_parts.iter().map(String::as_str).collect();
    let interrupted = results.len() < points.len();
    let report = SweepReport {
        schema_version: SCHEMA_VERSION,
        portsim_version: env!("CARGO_PKG_VERSION").to_string(),
        scenario: base.name.clone(),
        scenario_file: args.scenario.display().to_string(),
        sweep_id: stable_id(&ids),
        keys: plan.varies.iter().map(|v| v.key.clone()).collect(),
        points_total: plan.len(),
        seeds: plan.seeds,
        base_seed: plan.base_seed,
        // In a shard's file: whether all of *its* points ran.
        complete: !interrupted,
        shard: args.shard,
        points: results
            .into_iter()
            .map(|point| super::output::Row {
                point,
                figures: None,
            })
            .collect(),
    }
    .with_figures();
    if let Some(dir) = &args.out {
        write_sweep(dir, &report)?;
    }
    print_out(&if args.runs.json {
        report.to_json()
    } else {
        report.to_table()
    });
    if interrupted {
        eprintln!(
            "interrupted: {} of {} points finished and written",
            report.points.len(),
            points.len()
        );
        return Ok(INTERRUPTED);
    }
    Ok(0)
}

pub fn merge_cmd(args: MergeArgs) -> anyhow::Result<i32> {
    let dirs: Vec<&Path> = args.dirs.iter().map(PathBuf::as_path).collect();
    let report = merge(&dirs)?;
    prepare_dir(&args.out)?;
    write_sweep(&args.out, &report)?;
    print_out(&if args.json {
        report.to_json()
    } else {
        report.to_table()
    });
    Ok(0)
}

/// The value a key has in the scenario (after `--set`), to start a search from.
fn current_value(path: &Path, set: &[Override], key: &str) -> Option<toml::Value> {
    if let Some(o) = set.iter().rev().find(|o| o.key == key) {
        return Some(o.value.clone());
    }
    let text = std::fs::read_to_string(path).ok()?;
    let mut cur = toml::Value::Table(toml::from_str(&text).ok()?);
    for part in key.split('.') {
        cur = match cur {
            toml::Value::Table(mut t) => t.remove(part)?,
            toml::Value::Array(mut a) => {
                let i: usize = part.parse().ok()?;
                (i < a.len()).then(|| a.swap_remove(i))?
            }
            _ => return None,
        };
    }
    Some(cur)
}

pub fn capacity(args: CapacityArgs) -> anyhow::Result<i32> {
    let text = read_file(&args.scenario)?;
    let base = load_str(&text, &args.scenario, &args.runs.set)?;
    let vary = match args.vary.clone().or(base.sweep.capacity.clone()) {
        Some(v) => v,
        None => {
            return Err(InputError::usage(format!(
                "{}: nothing to search: give --vary KEY (e.g. --vary traffic.rate) or a [sweep] table with capacity = \"KEY\" in the scenario",
                args.scenario.display()
            ))
            .into())
        }
    };
    let seeds = args.runs.seeds.or(base.sweep.seeds).unwrap_or(10);
    let target = args.target.or(base.sweep.target).unwrap_or(Target {
        metric: super::capacity::Metric::FailureRatio,
        op: super::capacity::Op::Le,
        bound: 1e-4,
    });
    let (key, spec) = match vary.split_once('=') {
        Some((k, s)) => (k.trim().to_string(), Some(s.trim().to_string())),
        None => (vary.trim().to_string(), None),
    };
    let bad = |m: String| InputError::usage(format!("--vary {vary}: {m}"));
    let (lo, hi, kind) = match spec {
        Some(spec) => {
            let (a, b) = spec.split_once("..").ok_or_else(|| {
                bad("expected KEY or KEY=LOW..HIGH, e.g. traffic.rate=100..1000".into())
            })?;
            let (a, b) = (a.trim(), b.trim());
            let (qa, qb) = (quantity(a), quantity(b));
            let ((x, da), (y, db)) = qa.zip(qb).ok_or_else(|| {
                bad(format!(
                    "`{a}..{b}`: LOW and HIGH must be numbers or durations such as 30s"
                ))
            })?;
            if da != db || y <= x || x < 0.0 {
                return Err(
                    bad("expected 0 ≤ LOW < HIGH, both numbers or both durations".into()).into(),
                );
            }
            let kind = if da {
                Kind::Duration
            } else if a.parse::<i64>().is_ok() && b.parse::<i64>().is_ok() {
                Kind::Integer
            } else {
                Kind::Real
            };
            (x, y, kind)
        }
        None => {
            let v = current_value(&args.scenario, &args.runs.set, &key).ok_or_else(|| {
                bad(format!(
                    "the scenario does not set `{key}`, so there is nothing to start from; give a bracket: --vary {key}=LOW..HIGH"
                ))
            })?;
            let (x, kind) = match &v {
                toml::Value::Integer(i) => (*i as f64, Kind::Integer),
                toml::Value::Float(f) => (*f, Kind::Real),
                toml::Value::String(s) => match quantity(s) {
                    Some((d, true)) => (d, Kind::Duration),
                    Some((n, false)) => (n, Kind::Real),
                    None => return Err(bad(format!("`{key}` is `{s}`, not a number or duration; give a bracket: --vary {key}=LOW..HIGH")).into()),
                },
                other => return Err(bad(format!("`{key}` is `{other}`, not a number or duration")).into()),
            };
            if x <= 0.0 {
                return Err(bad(format!(
                    "`{key}` is {x}; give a bracket: --vary {key}=LOW..HIGH"
                ))
                .into());
            }
            (x / 2.0, x * 2.0, kind)
        }
    };
    let plan = Plan {
        scenario: args.scenario.clone(),
        text,
        overrides: args.runs.set.clone(),
        varies: vec![],
        seeds,
        base_seed: args.runs.seed.unwrap_or(base.seed),
    };
    // An integer in the file may still be a key that takes fractions (a
    // rate): search in reals when the scenario accepts a fractional value.
    let kind = if kind == Kind::Integer {
        if plan
            .load_with(&key, &format!("{}.5", lo.floor() as i64))
            .is_ok()
        {
            Kind::Real
        } else {
            Kind::Integer
        }
    } else {
        kind
    };
    let search = Search {
        plan: &plan,
        key: &key,
        kind,
        target,
        lo,
        hi,
        max_attempts: args.max_events,
    };
    search.validate()?;
    if let Some(dir) = &args.out {
        prepare_dir(dir)?;
    }
    let threads = pool(args.runs.jobs)?;
    let stop = stop_flag();
    let pb = bar(u64::from(seeds), args.runs.quiet, "seeds searched");
    let cap = threads.install(|| search.run(&stop, &pb))?;
    pb.finish_and_clear();
    if let Some(dir) = &args.out {
        write_atomic(&dir.join("capacity.json"), cap.to_json().as_bytes())?;
        write_atomic(&dir.join("capacity.csv"), cap.probes_csv().as_bytes())?;
    }
    if args.runs.json {
        print_out(&cap.to_json());
    } else {
        print_out(&format!("{}\n", cap.sentence()));
    }
    Ok(if cap.complete { 0 } else { INTERRUPTED })
}
