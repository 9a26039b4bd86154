//! `portsim sweep`: one scenario over a grid of `--vary` values × seeds, in
//! parallel, optionally one shard of it; a table or JSON on stdout and the
//! sweep's files in `--out`. The work is in [`crate::sweep`]; this is the
//! plumbing (flags, progress bar, Ctrl-C, output files).

use std::path::PathBuf;

use super::common::{
    bar, fail_on_check, fail_on_flags, key_text, max_events, prepare_out, stop_flag, write_sweep,
    Runs,
};
use super::{print_out, Exit};
use crate::error::InputError;
use crate::scenario::{load_str, read_file};
use crate::sweep::output::{stable_id, Row, SweepReport, SCHEMA_VERSION};
use crate::sweep::{pool, run_points, Plan, Shard, Vary};

#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  portsim sweep scenarios/sweep-rate.toml
  portsim sweep scenarios/api-no-pooling.toml --vary traffic.rate=100..400:50 --seeds 5
  portsim sweep scenarios/sweep-time-wait.toml --seeds 3 --out time-wait-sweep
  portsim sweep scenarios/sweep-rate.toml --shard 1/2 --out shard-1 --json")]
pub(crate) struct SweepArgs {
    /// Scenario file (TOML).
    scenario: PathBuf,
    /// A key and its values: KEY=a,b,c or KEY=FROM..TO:STEP (repeat for a
    /// grid) [default: the scenario's [sweep] vary]. At most 10,000 values
    /// a key, and at most 1,000,000 runs (points × seeds) a sweep.
    #[arg(long = "vary", value_name = "KEY=SPEC")]
    vary: Vec<String>,
    #[command(flatten)]
    runs: Runs,
    /// Write sweep.json, sweep.csv and the chart (sweep.png, sweep.svg) into DIR.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Run only shard K of N (points K, K+N, ...); combine with `portsim merge`.
    #[arg(long, value_name = "K/N", requires = "out")]
    shard: Option<String>,
    /// Refuse sweeps expected to make more connection attempts than this in
    /// all (a positive finite number).
    #[arg(long, value_name = "N", default_value = "1e11")]
    max_events: String,
}

pub(crate) fn exec(args: SweepArgs) -> anyhow::Result<Exit> {
    let text = read_file(&args.scenario)?;
    let base = load_str(&text, &args.scenario, &args.runs.set)?;
    let max_events = max_events(&args.max_events)?;
    let fail_on = fail_on_flags(&args.runs.fail_on)?;
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
        prepare_out(dir, &crate::export::names(&crate::export::sweep_files()))?;
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
            .map(|point| Row {
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
    // `--fail-on`: of every (point, seed) run, in the order of the table.
    let runs: Vec<(usize, &crate::sweep::Run)> = report
        .points
        .iter()
        .enumerate()
        .flat_map(|(p, r)| r.point.runs.iter().map(move |run| (p, run)))
        .collect();
    let figures: Vec<_> = runs.iter().map(|(_, r)| r.figures()).collect();
    let at = |i: usize| {
        let (p, run) = runs[i];
        let set: Vec<String> = report
            .keys
            .iter()
            .zip(&report.points[p].point.values)
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        format!("at {}, seed {}", set.join(", "), run.seed)
    };
    let tripped = fail_on_check(&fail_on, &figures, "runs", &at);
    if interrupted {
        eprintln!(
            "interrupted: {} of {} points finished and written",
            report.points.len(),
            points.len()
        );
        return Ok(Exit::interrupted());
    }
    Ok(if tripped { Exit::Exhausted } else { Exit::Done })
}
