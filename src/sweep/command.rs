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
use super::{below, num, parse_quantity, pool, run_points, Plan, Shard, Vary};
use crate::cli::print_out;
use crate::error::{quote, InputError};
use crate::output::prepare_dir;
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
    /// Threads (default 0: one per core; at most 4 × the cores, more is
    /// refused). The result does not depend on it.
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
    /// grid) [default: the scenario's [sweep] vary]. At most 10,000 values
    /// a key, and at most 1,000,000 runs (points × seeds) a sweep.
    #[arg(long = "vary", value_name = "KEY=SPEC")]
    pub vary: Vec<String>,
    #[command(flatten)]
    pub runs: Runs,
    /// Write sweep.json, sweep.csv and the chart (sweep.png, sweep.svg) into DIR.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Run only shard K of N (points K, K+N, ...); combine with `portsim merge`.
    #[arg(long, value_name = "K/N", requires = "out")]
    pub shard: Option<String>,
    /// Refuse sweeps expected to make more connection attempts than this in
    /// all (a positive finite number).
    #[arg(long, value_name = "N", default_value = "1e11")]
    pub max_events: String,
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
    pub target: Option<String>,
    #[command(flatten)]
    pub runs: Runs,
    /// Write capacity.json and every value tried (capacity.csv) into DIR.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Refuse to probe a value expected to make more connection attempts
    /// than this in one run (a positive finite number).
    #[arg(long, value_name = "N", default_value = "1e8")]
    pub max_events: String,
}

#[derive(clap::Args, Debug)]
pub struct MergeArgs {
    /// Output directories of `portsim sweep --shard K/N --out DIR`, one per shard.
    #[arg(required = true)]
    pub dirs: Vec<PathBuf>,
    /// Where the combined sweep.json, sweep.csv and chart go; not one of
    /// the input directories.
    #[arg(long, value_name = "DIR", required = true)]
    pub out: PathBuf,
    /// Print the result as JSON on stdout instead of the table.
    #[arg(long)]
    pub json: bool,
}

// Flags whose values carry their own checks (`--vary`, `--shard`,
// `--target`, `--max-events`) are taken as text and parsed here, so the one
// message about a bad value is ours, with the value quoted and cut, rather
// than clap's, which repeats the raw value first.

/// `--max-events`: a positive finite number (`nan`, `inf`, 0 and negative
/// limits are refused where the flag is read).
fn max_events(s: &str) -> Result<f64, InputError> {
    match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(InputError::usage(format!(
            "--max-events {}: expected a positive finite number, e.g. 1e9",
            quote(s)
        ))),
    }
}

/// A key as a message shows it: as typed when it is a plain dotted key,
/// quoted and escaped otherwise.
fn key_text(key: &str) -> String {
    let plain = key.len() <= 80
        && !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
    if plain {
        key.to_string()
    } else {
        quote(key)
    }
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
/// The files `sweep` and `merge` write into `--out`.
const SWEEP_FILES: [&str; 4] = ["sweep.json", "sweep.csv", "sweep.png", "sweep.svg"];

/// The files `capacity` writes into `--out`.
const CAPACITY_FILES: [&str; 2] = ["capacity.json", "capacity.csv"];

/// Create `--out DIR` and check, before any run, that each of `names` can
/// be written there (not a directory, not two names for one file).
fn prepare_out(dir: &Path, names: &[&str]) -> Result<(), InputError> {
    prepare_dir(dir)?;
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    crate::output::distinct(&crate::output::check_files(dir, &names)?)
}

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
    let max_events = max_events(&args.max_events)?;
    let shard: Option<Shard> = args
        .shard
        .as_deref()
        .map(str::parse)
        .transpose()
        .map_err(InputError::usage)?;
    let varies: Vec<Vary> = if args.vary.is_empty() {
        base.sweep.vary.clone()
    } else {
        args.vary
            .iter()
            .map(|v| v.parse())
            .collect::<Result<_, String>>()
            .map_err(InputError::usage)?
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
            return Err(InputError::usage(format!(
                "--vary {}: the key is varied twice",
                key_text(&v.key)
            ))
            .into());
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
    // Threads first: a bad --jobs is refused before any point is loaded.
    let threads = pool(args.runs.jobs)?;
    let points = plan.points(shard)?;
    plan.check_size(&points, max_events, threads.current_num_threads())?;
    if let Some(dir) = &args.out {
        prepare_out(dir, &SWEEP_FILES)?;
    }
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
        shard,
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

/// Refuse an `--out` that is (after following symlinks) one of the input
/// directories: writing there would replace the shard being merged.
fn out_is_not_an_input(out: &Path, dirs: &[&Path]) -> Result<(), InputError> {
    let Ok(target) = out.canonicalize() else {
        // Not there yet, so not an input (every input exists).
        return Ok(());
    };
    for d in dirs {
        if d.canonicalize().is_ok_and(|c| c == target) {
            return Err(InputError::usage(format!(
                "--out {}: is the input directory {} (both are {}); merge writes sweep.json there and would replace that shard, so write the merged sweep elsewhere",
                quote(&out.display().to_string()),
                quote(&d.display().to_string()),
                quote(&target.display().to_string())
            )));
        }
    }
    Ok(())
}

pub fn merge_cmd(args: MergeArgs) -> anyhow::Result<i32> {
    let dirs: Vec<&Path> = args.dirs.iter().map(PathBuf::as_path).collect();
    out_is_not_an_input(&args.out, &dirs)?;
    let report = merge(&dirs)?;
    prepare_out(&args.out, &SWEEP_FILES)?;
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
    let max_events = max_events(&args.max_events)?;
    let target: Option<Target> = args
        .target
        .as_deref()
        .map(str::parse)
        .transpose()
        .map_err(InputError::usage)?;
    let target = target.or(base.sweep.target).unwrap_or(Target {
        metric: super::capacity::Metric::FailureRatio,
        op: super::capacity::Op::Le,
        bound: 1e-4,
    });
    let (key, spec) = match vary.split_once('=') {
        Some((k, s)) => (k.trim().to_string(), Some(s.trim().to_string())),
        None => (vary.trim().to_string(), None),
    };
    let bad = |m: String| InputError::usage(format!("--vary {}: {m}", quote(&vary)));
    // With no bracket given, the search starts from half and twice the
    // scenario's value, brought back inside the key's domain.
    let mut start = None;
    let (lo, hi, kind) = match spec {
        Some(spec) => {
            let (a, b) = spec.split_once("..").ok_or_else(|| {
                bad("expected KEY or KEY=LOW..HIGH, e.g. traffic.rate=100..1000".into())
            })?;
            let (a, b) = (a.trim(), b.trim());
            let (x, da) = parse_quantity(a).map_err(|e| bad(format!("LOW: {e}")))?;
            let (y, db) = parse_quantity(b).map_err(|e| bad(format!("HIGH: {e}")))?;
            if da != db || !below(x, y) || x < 0.0 {
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
                    "the scenario does not set {}, so there is nothing to start from; give a bracket: --vary {}=LOW..HIGH",
                    key_text(&key), key_text(&key)
                ))
            })?;
            let (x, kind) = match &v {
                toml::Value::Integer(i) => (*i as f64, Kind::Integer),
                toml::Value::Float(f) => (*f, Kind::Real),
                toml::Value::String(s) => match parse_quantity(s) {
                    Ok((d, true)) => (d, Kind::Duration),
                    Ok((n, false)) => (n, Kind::Real),
                    Err(_) => {
                        return Err(bad(format!(
                        "{} is {}, not a number or duration; give a bracket: --vary {}=LOW..HIGH",
                        key_text(&key),
                        quote(s),
                        key_text(&key)
                    ))
                        .into())
                    }
                },
                other => {
                    return Err(bad(format!(
                        "{} is {}, not a number or duration",
                        key_text(&key),
                        quote(&other.to_string())
                    ))
                    .into())
                }
            };
            // Written so that NaN is refused too.
            if !(x > 0.0 && x.is_finite()) {
                return Err(bad(format!(
                    "{} is {}; give a bracket: --vary {}=LOW..HIGH",
                    key_text(&key),
                    num(x),
                    key_text(&key)
                ))
                .into());
            }
            start = Some(x);
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
    let mut search = Search {
        plan: &plan,
        key: &key,
        kind,
        target,
        lo,
        hi,
        max_attempts: max_events,
    };
    if let Some(x) = start {
        search.fit_to_domain(x);
    }
    search.validate()?;
    let threads = pool(args.runs.jobs)?;
    if let Some(dir) = &args.out {
        prepare_out(dir, &CAPACITY_FILES)?;
    }
    let stop = stop_flag();
    let pb = bar(u64::from(seeds), args.runs.quiet, "seeds searched");
    let cap = threads.install(|| search.run(&stop, &pb))?;
    pb.finish_and_clear();
    if let Some(dir) = &args.out {
        let mut set = crate::output::OutputSet::new();
        set.add(dir.join(CAPACITY_FILES[0]), cap.to_json().into_bytes());
        set.add(dir.join(CAPACITY_FILES[1]), cap.probes_csv().into_bytes());
        set.commit()?;
    }
    if args.runs.json {
        print_out(&cap.to_json());
    } else {
        print_out(&format!("{}\n", cap.sentence()));
    }
    if cap.complete {
        return Ok(0);
    }
    eprintln!(
        "interrupted: {} of {} seeds finished{}",
        cap.seeds,
        seeds,
        if args.out.is_some() {
            "; what was established is written"
        } else {
            ""
        }
    );
    Ok(INTERRUPTED)
}
