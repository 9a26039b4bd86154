//! `portsim run`: one scenario, its summary or JSON report on stdout, and
//! optionally every output file (`--out DIR`) and a trace (`--trace FILE`);
//! or, with `--seeds N`, N seeds in parallel and the spread of every figure
//! over them (the work is in [`crate::sweep::seeds`]; this is the plumbing).
//! Which files `--out` writes comes from the registry of
//! [`crate::export::run_files`], narrowed by `--files`, `--charts` or
//! `--no-charts`. Every output path is checked before the run starts, and
//! all the files of a run are written as one set: all of them, or none
//! replaced.

use std::path::{Path, PathBuf};

use super::{print_out, Exit};
use crate::chart::html::Source;
use crate::chart::{Formats, PortUsage};
use crate::error::InputError;
use crate::export::{self, select, Kind, RunExporter};
use crate::output::{check_files, distinct, prepare_dir, OutputSet, PendingFile, Target};
use crate::report::summary;
use crate::scenario::{load_str, read_file, Override};
use crate::sweep::seeds::{self, seed_count};
use crate::trace::TraceWriter;

#[derive(clap::Args, Debug)]
#[command(
    after_help = "Several seeds at once: --seeds N runs the scenario with seeds SEED to SEED+N-1 in parallel and prints the spread of each figure over them (mean ± sd, min – max), e.g. --seeds 20; with --json, every figure of report.json and its 95 % interval.

Examples:
  portsim run scenarios/api-no-pooling.toml
  portsim run scenarios/ramp.toml --json --seed 7 --no-fixes
  portsim run scenarios/retry-storm.toml --target \"worst_10s<=0.01\"
  portsim run scenarios/keep-alive.toml --out keep-alive --charts svg --fail-on-exhaustion"
)]
pub(crate) struct RunArgs {
    /// Scenario file (TOML).
    scenario: PathBuf,
    /// Print the JSON report on stdout instead of the summary.
    #[arg(long)]
    json: bool,
    /// Write report.json, timeseries.csv, the charts and report.html into
    /// DIR (created if missing).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Which chart files --out writes: a comma-separated list of png, svg
    /// and html (report.html). Default: all three.
    #[arg(
        long,
        value_name = "LIST",
        requires = "out",
        conflicts_with = "no_charts"
    )]
    charts: Option<Formats>,
    /// Write no charts and no report.html with --out.
    #[arg(long, requires = "out")]
    no_charts: bool,
    /// Which files --out writes: a comma-separated list of their names or
    /// globs, e.g. report.json,*.png. Default: all of them.
    #[arg(
        long,
        value_name = "LIST",
        requires = "out",
        conflicts_with_all = ["charts", "no_charts"]
    )]
    files: Option<String>,
    /// Override the scenario's seed.
    #[arg(long, value_name = "N")]
    seed: Option<u64>,
    /// Override a scenario key, e.g. --set traffic.rate=300 (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<Override>,
    /// Write one CSV row per connect, fail, close and TIME_WAIT end. `-`
    /// streams it to stdout; the summary then goes to stderr, and --json
    /// is refused (use --out DIR for report.json).
    #[arg(long, value_name = "FILE")]
    trace: Option<PathBuf>,
    /// Exit with code 1 if any connection attempt failed (--fail-on
    /// failures>0).
    #[arg(long)]
    fail_on_exhaustion: bool,
    /// Run N seeds (SEED, SEED+1, ...; at most 100,000) in parallel and
    /// print the spread of every figure over them: mean ± sd (min – max) of
    /// the main ones, and with --json every figure of report.json with its
    /// 95 % interval. Implies --no-fixes; --trace, --out, --all-fixes,
    /// --target, --fail-on and --fail-on-exhaustion apply to single runs
    /// and are refused with it. --max-events counts the N runs' work,
    /// --max-memory the runs in flight at once.
    #[arg(long, value_name = "N")]
    seeds: Option<u64>,
    /// Threads for --seeds (default 0: one per core; at most 4 × the
    /// cores). The result does not depend on it.
    #[arg(
        long,
        value_name = "J",
        default_value_t = 0,
        hide_default_value = true,
        requires = "seeds"
    )]
    jobs: usize,
    /// Skip the computed fixes: after a run with failures, portsim reruns
    /// the scenario (same seed) with each change that could avoid them and
    /// reports the smallest that does.
    #[arg(long)]
    no_fixes: bool,
    /// Answer every lever that applies, whatever it costs. By default the
    /// levers share a budget of two runs' attempts, tried in order, and
    /// those it leaves unanswered are named.
    #[arg(long, conflicts_with = "no_fixes")]
    all_fixes: bool,
    /// The goal the computed fixes reach instead of "nothing fails", e.g.
    /// "failure_ratio<=1e-4" or "worst_10s<=0.01" (the figures of
    /// --fail-on).
    #[arg(long, value_name = "EXPR", conflicts_with = "no_fixes")]
    target: Option<String>,
    /// Exit with code 1 if EXPR is true of the run, e.g. worst_10s>0.01.
    /// Repeatable: exit 1 if any is true.
    #[arg(
        long = "fail-on",
        value_name = "EXPR",
        long_help = concat!(
            "Exit with code 1 if EXPR is true of the run, e.g. worst_10s>0.01. Repeatable: exit 1 if any is true.\n\n",
            super::common::fail_on_help!()
        )
    )]
    fail_on: Vec<String>,
    /// Refuse runs estimated to need more events than this (connection
    /// attempts, plus hold times drawn and allocator probes beyond one per
    /// attempt; about 4 million a second on one core).
    #[arg(long, value_name = "N", default_value_t = crate::DEFAULT_MAX_EVENTS)]
    max_events: f64,
    /// Refuse runs estimated to need more memory than this, e.g. 16GiB.
    #[arg(long, value_name = "SIZE", default_value = "2GiB")]
    max_memory: String,
}

pub(crate) fn exec(args: RunArgs) -> anyhow::Result<Exit> {
    if let Some(n) = args.seeds {
        // `--seeds 1` is a plain run.
        let n = seed_count(n)?;
        if n > 1 {
            return exec_seeds(&args, n);
        }
        if args.jobs > crate::sweep::max_jobs() {
            // The same refusal as with more seeds, though one run uses one thread.
            crate::sweep::pool(args.jobs)?;
        }
    }
    let (text, sc, limits) = load_run(&args)?;
    let mut fail_on = super::common::fail_on_flags(&args.fail_on)?;
    let target = match &args.target {
        Some(t) => Some(
            crate::scenario::spec::Target::parse_as(t, "--target").map_err(InputError::usage)?,
        ),
        None => None,
    };
    if args.fail_on_exhaustion {
        fail_on.insert(0, crate::sweep::FailOn::exhaustion());
    }
    let files = chosen_files(&args)?;
    // Charts draw port usage over time, which the run then records.
    let charts = files.iter().any(|e| e.kind() != Kind::Data);
    crate::limits::check(&sc, &args.scenario.display().to_string(), limits, charts)?;
    let (trace_target, stdout_free) = check_outputs(&args, &files)?;
    let trace = match &trace_target {
        Some(target) => {
            let names = sc.destinations.iter().map(|d| d.address.clone()).collect();
            let file = PendingFile::open(target).map_err(|e| e.usage("--trace"))?;
            Some(TraceWriter::new(file, names).map_err(|e| e.usage("--trace"))?)
        }
        None => None,
    };
    let usage = charts.then(|| PortUsage::new(&sc));
    // Without observers the engine is compiled with none: checking two empty
    // Options at every event costs about 4 % more instructions per attempt.
    // The charts alone need no closes and TIME_WAIT ends interleaved, so
    // they watch the same engine as a run without outputs (the lean one
    // where it fits): `--out` and `--json` give the same report.
    let (report, trace, usage) = match (trace, usage) {
        (None, None) => (crate::run(&sc), None, None),
        (None, Some(mut usage)) => (crate::run_with(&sc, &mut usage), None, Some(usage)),
        (trace, usage) => {
            let mut obs = (trace, usage);
            let report = crate::run_with(&sc, &mut obs);
            (report, obs.0, obs.1)
        }
    };
    let mut report = report;
    if !args.no_fixes {
        let src = crate::fixes::Source {
            text: &text,
            path: &args.scenario,
            overrides: &args.set,
            seed: sc.seed,
            max_events: limits.max_events,
            max_memory: limits.max_memory,
            target,
            all: args.all_fixes,
        };
        let found = crate::fixes::compute(&src, &sc, &report);
        report.fixes = found.list;
        report.fixes_cost = Some(found.cost);
    }
    // Every output of the run is one set: all written, or none replaced.
    let mut set = OutputSet::new();
    if let Some(trace) = trace {
        set.add_open(trace.finish()?);
    }
    if let Some(dir) = &args.out {
        let mut overrides: Vec<String> = args.set.iter().map(|o| o.to_string()).collect();
        if let Some(seed) = args.seed {
            overrides.push(format!("--seed {seed}"));
        }
        let run = export::Run {
            report: &report,
            usage: usage.as_ref(),
            source: Source {
                path: &args.scenario.display().to_string(),
                text: &text,
                overrides: &overrides,
            },
        };
        export::render_into(&mut set, dir, &files, &run)?;
    }
    set.commit()?;
    let shown = if args.json {
        report.to_json()
    } else {
        summary::render(&report)
    };
    if stdout_free {
        print_out(&shown);
    } else {
        // `--trace -`: stdout carries the trace alone.
        eprint!("{shown}");
    }
    let figures = [report.figures()];
    Ok(
        if super::common::fail_on_check(&fail_on, &figures, "runs", &|_| String::new()) {
            Exit::Exhausted
        } else {
            Exit::Done
        },
    )
}

/// `run --seeds N` (N > 1): every seed on the pool, then the spread of
/// each figure, or nothing but a message if stopped by a signal.
/// The scenario file's text, the scenario with `--set` and `--seed`
/// applied, and the limits of `--max-events` and `--max-memory`.
fn load_run(args: &RunArgs) -> anyhow::Result<(String, crate::Scenario, crate::Limits)> {
    let text = read_file(&args.scenario)?;
    let mut sc = load_str(&text, &args.scenario, &args.set)?;
    if let Some(seed) = args.seed {
        sc.seed = seed;
    }
    let limits = crate::Limits {
        max_events: crate::limits::events_flag(args.max_events)?,
        max_memory: crate::limits::parse_bytes(&args.max_memory)
            .map_err(|e| InputError::usage(format!("--max-memory {e}")))?,
    };
    Ok((text, sc, limits))
}

fn exec_seeds(args: &RunArgs, seeds: u32) -> anyhow::Result<Exit> {
    let single: [(&str, bool); 6] = [
        ("--trace", args.trace.is_some()),
        ("--out", args.out.is_some()),
        ("--all-fixes", args.all_fixes),
        ("--target", args.target.is_some()),
        ("--fail-on", !args.fail_on.is_empty()),
        ("--fail-on-exhaustion", args.fail_on_exhaustion),
    ];
    if let Some((flag, _)) = single.iter().find(|(_, given)| *given) {
        return Err(InputError::usage(format!(
            "--seeds {seeds}: {flag} applies to a single run; drop {flag}, or --seeds"
        ))
        .into());
    }
    let (_, sc, limits) = load_run(args)?;
    // Threads first: a bad --jobs is refused before anything runs.
    let pool = crate::sweep::pool(args.jobs)?;
    let source = args.scenario.display().to_string();
    seeds::check_size(&sc, &source, seeds, limits, pool.current_num_threads())?;
    let stop = super::common::stop_flag();
    let pb = super::common::bar(u64::from(seeds), false, "seeds");
    let report = seeds::run_seeds(&sc, seeds, sc.seed, &pool, &stop, &pb);
    pb.finish_and_clear();
    let Some(report) = report else {
        eprintln!(
            "interrupted before all {seeds} seeds finished; nothing printed (the spread is over every seed)"
        );
        return Ok(Exit::interrupted());
    };
    print_out(&if args.json {
        report.to_json()
    } else {
        report.to_table()
    });
    Ok(Exit::Done)
}

/// The files `--out` writes, in order: the registered ones, narrowed by
/// `--files`, `--charts` or `--no-charts` (none without `--out`).
fn chosen_files(args: &RunArgs) -> Result<Vec<Box<RunExporter>>, InputError> {
    if args.out.is_none() {
        return Ok(Vec::new());
    }
    let all = export::run_files();
    let keep: Vec<bool> = match &args.files {
        Some(list) => select::choose("--files", list, &export::names(&all))?,
        None => {
            let formats = match args.no_charts {
                true => Formats::NONE,
                false => args.charts.unwrap_or(Formats::ALL),
            };
            all.iter()
                .map(|e| match e.kind() {
                    Kind::Data => true,
                    Kind::Png => formats.png,
                    Kind::Svg => formats.svg,
                    Kind::Html => formats.html,
                })
                .collect()
        }
    };
    Ok(all
        .into_iter()
        .zip(keep)
        .filter_map(|(e, k)| k.then_some(e))
        .collect())
}

/// Check every output path of `run` before it starts: the `--out` directory
/// and each file it will hold, the trace, and that no two of them (nor
/// stdout, when it is a file or pipe the summary goes to) are the same file.
/// Returns the trace's target and whether stdout is free for the summary.
fn check_outputs(
    args: &RunArgs,
    files: &[Box<RunExporter>],
) -> anyhow::Result<(Option<Target>, bool)> {
    // The directory first: the trace may be meant to go into it.
    if let Some(dir) = &args.out {
        prepare_dir(dir)?;
    }
    let trace = match &args.trace {
        Some(path) => Some(Target::resolve(path).map_err(|e| e.usage("--trace"))?),
        None => None,
    };
    let trace_on_stdout = trace
        .as_ref()
        .is_some_and(|t| t.dest == crate::output::Dest::Stdout);
    if trace_on_stdout && args.json {
        return Err(InputError::usage(
            "--trace - and --json both write to stdout; give --trace a file, or use --out DIR to get report.json",
        )
        .into());
    }
    let mut outputs: Vec<(String, Target)> = Vec::new();
    if !trace_on_stdout {
        if let Ok(t) = Target::resolve(Path::new("-")) {
            outputs.push(("stdout (the summary)".into(), t));
        }
    }
    if let Some(dir) = &args.out {
        outputs.extend(check_files(dir, &export::names(files))?);
    }
    if let (Some(path), Some(t)) = (&args.trace, &trace) {
        outputs.push((format!("--trace {}", path.display()), t.clone()));
    }
    distinct(&outputs)?;
    Ok((trace, !trace_on_stdout))
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        run: RunArgs,
    }

    /// The files `run` with these flags would write, by name.
    fn chosen(flags: &[&str]) -> Result<Vec<String>, String> {
        let cli = Cli::try_parse_from(["run", "s.toml"].iter().chain(flags))
            .map_err(|e| e.kind().to_string())?;
        let files = chosen_files(&cli.run).map_err(|e| e.to_string())?;
        Ok(export::names(&files))
    }

    const DATA: [&str; 2] = ["report.json", "timeseries.csv"];

    fn charts(ext: &str) -> Vec<String> {
        crate::chart::CHARTS
            .iter()
            .map(|c| format!("{}.{ext}", c.name()))
            .collect()
    }

    #[test]
    fn chart_flags_and_files_choose_the_same_registry() {
        let mut all: Vec<String> = DATA.map(String::from).to_vec();
        for c in crate::chart::CHARTS {
            all.push(format!("{}.png", c.name()));
            all.push(format!("{}.svg", c.name()));
        }
        all.push("report.html".into());
        assert_eq!(chosen(&["--out", "d"]).unwrap(), all);
        assert_eq!(chosen(&["--out", "d", "--files", "*"]).unwrap(), all);
        assert_eq!(chosen(&[]).unwrap(), Vec::<String>::new());

        let data: Vec<String> = DATA.map(String::from).to_vec();
        assert_eq!(chosen(&["--out", "d", "--no-charts"]).unwrap(), data);
        let mut png = data.clone();
        png.extend(charts("png"));
        assert_eq!(chosen(&["--out", "d", "--charts", "png"]).unwrap(), png);
        assert_eq!(
            chosen(&["--out", "d", "--files", "*.png,*.json,*.csv"]).unwrap(),
            png
        );
        let mut html = data.clone();
        html.push("report.html".into());
        assert_eq!(chosen(&["--out", "d", "--charts", "html"]).unwrap(), html);
        assert_eq!(
            chosen(&["--out", "d", "--files", "report.json"]).unwrap(),
            ["report.json"]
        );
    }

    #[test]
    fn bad_file_lists_are_refused() {
        let e = chosen(&["--out", "d", "--files", "report.jsno"]).unwrap_err();
        assert!(e.contains("did you mean \"report.json\""), "{e}");
        assert!(chosen(&["--out", "d", "--files", "*.jpeg"]).is_err());
        // Without --out, or with --charts / --no-charts: clap refuses it.
        for flags in [
            &["--files", "report.json"][..],
            &["--out", "d", "--files", "report.json", "--no-charts"],
            &["--out", "d", "--files", "report.json", "--charts", "png"],
        ] {
            assert!(chosen(flags).is_err(), "{flags:?}");
        }
    }
}
