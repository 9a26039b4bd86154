//! Command-line interface: flags in, exit code out.
//!
//! Exit codes: 0 done; 1 `--fail-on-exhaustion` and some attempt failed;
//! 2 bad input (scenario, flag or path), with one message on stderr;
//! 3 an output file could not be written (disk full, permissions), with the
//! file named; 130 / 143 stopped by SIGINT (Ctrl-C) / SIGTERM: a sweep or
//! capacity search after writing what finished, any other command at once,
//! leaving no temporary file (see [`crate::interrupt`]).
//! Output paths are checked before the run, so a typo costs no run time.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};

use crate::chart::{self, Formats, PortUsage};
use crate::error::InputError;
use crate::output::{check_files, distinct, prepare_dir, OutputSet, PendingFile, Target};
use crate::report::{export, summary};
use crate::scenario::{load_file, load_str, read_file, Override};
use crate::trace::TraceWriter;

#[derive(Parser, Debug)]
#[command(
    name = "portsim",
    version,
    about = "Simulate ephemeral-port exhaustion: when do clients run out of local ports, why, and what fixes it.",
    after_help = "Output files are written whole or not at all: each goes to a temporary name and is renamed into place once every output of the command is written; a symbolic link is followed, a FIFO or device (/dev/null) is written through, a directory is refused. On an error, Ctrl-C or SIGTERM no temporary file is left.\n\nExit codes: 0 done, 1 --fail-on-exhaustion tripped, 2 bad input (a path included, checked before running), 3 an output could not be written (the file is named), 130 / 143 stopped by Ctrl-C / SIGTERM (a sweep or capacity search writes its finished points first)."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run a scenario and print a summary (or the JSON report).
    Run(RunArgs),
    /// Validate scenario files without running them.
    Check {
        /// Scenario files (TOML).
        #[arg(required = true)]
        scenarios: Vec<PathBuf>,
    },
    /// List the allocators and OS presets with their defaults.
    Presets,
    /// Run a scenario over a grid of values × seeds, in parallel.
    Sweep(crate::sweep::command::SweepArgs),
    /// Find the largest (or smallest) value of a key that meets a target.
    Capacity(crate::sweep::command::CapacityArgs),
    /// Combine the outputs of `sweep --shard K/N` into the unsharded result.
    Merge(crate::sweep::command::MergeArgs),
}

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// Scenario file (TOML).
    pub scenario: PathBuf,
    /// Print the JSON report on stdout instead of the summary.
    #[arg(long)]
    pub json: bool,
    /// Write report.json, timeseries.csv, the charts and report.html into
    /// DIR (created if missing).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Which chart files --out writes: a comma-separated list of png, svg
    /// and html (report.html). Default: all three.
    #[arg(
        long,
        value_name = "LIST",
        requires = "out",
        conflicts_with = "no_charts"
    )]
    pub charts: Option<Formats>,
    /// Write no charts and no report.html with --out.
    #[arg(long, requires = "out")]
    pub no_charts: bool,
    /// Override the scenario's seed.
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
    /// Override a scenario key, e.g. --set traffic.rate=300 (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<Override>,
    /// Write one CSV row per connect, fail, close and TIME_WAIT end. `-`
    /// streams it to stdout; the summary then goes to stderr, and --json
    /// is refused (use --out DIR for report.json).
    #[arg(long, value_name = "FILE")]
    pub trace: Option<PathBuf>,
    /// Exit with code 1 if any connection attempt failed.
    #[arg(long)]
    pub fail_on_exhaustion: bool,
    /// Refuse runs estimated to need more events than this (connection
    /// attempts, plus hold times drawn and allocator probes beyond one per
    /// attempt; about 4 million a second on one core).
    #[arg(long, value_name = "N", default_value_t = crate::DEFAULT_MAX_EVENTS)]
    pub max_events: f64,
    /// Refuse runs estimated to need more memory than this, e.g. 16GiB.
    #[arg(long, value_name = "SIZE", default_value = "2GiB")]
    pub max_memory: String,
}

/// Parse, run, and return the process exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            print_parse_error(&e);
            return code;
        }
    };
    crate::interrupt::install();
    match dispatch(cli) {
        // A sweep stopped by SIGTERM says 143, not 130.
        Ok(code) => crate::interrupt::exit_code(code),
        Err(e) => {
            match e.downcast_ref::<InputError>() {
                Some(input) => eprintln!("error: {input}"),
                None => eprintln!("error: {e:#}"),
            }
            if e.downcast_ref::<InputError>().is_some() {
                2
            } else {
                3
            }
        }
    }
}

/// clap's message for a bad command line. clap repeats a bad value as
/// typed, so a value with a newline or a terminal escape would break the
/// message over lines or recolour the terminal: such values are shown
/// escaped and cut, as in every other message.
fn print_parse_error(e: &clap::Error) {
    let raw: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .filter(|a| a.chars().any(char::is_control) || a.chars().count() > 200)
        .collect();
    if raw.is_empty() || !e.use_stderr() {
        let _ = e.print();
        return;
    }
    use clap::error::{ContextKind, ContextValue};
    // A bad value of a flag: our own one line, naming the flag.
    if let (Some(ContextValue::String(arg)), Some(ContextValue::String(value))) = (
        e.get(ContextKind::InvalidArg),
        e.get(ContextKind::InvalidValue),
    ) {
        eprintln!(
            "error: {arg}: invalid value {}; see portsim --help",
            crate::error::quote(value)
        );
        return;
    }
    // Anything else (an unknown argument, say): what went wrong and the
    // argument, escaped, on one line.
    let offending = [ContextKind::InvalidArg, ContextKind::InvalidSubcommand]
        .into_iter()
        .find_map(|k| match e.get(k) {
            Some(ContextValue::String(s)) => Some(s.clone()),
            _ => None,
        })
        .unwrap_or_else(|| raw[0].clone());
    eprintln!(
        "error: {}: {}; see portsim --help",
        e.kind(),
        crate::error::quote(&offending)
    );
}

fn dispatch(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
        Command::Run(args) => run(args),
        Command::Check { scenarios } => {
            for path in &scenarios {
                let sc = load_file(path, &[])?;
                crate::check_size(&sc, &path.display().to_string(), crate::DEFAULT_MAX_EVENTS)?;
                println!("{}: ok ({})", path.display(), sc.name);
            }
            Ok(0)
        }
        Command::Presets => {
            print_out(&presets_text());
            Ok(0)
        }
        Command::Sweep(args) => crate::sweep::command::sweep(args),
        Command::Capacity(args) => crate::sweep::command::capacity(args),
        Command::Merge(args) => crate::sweep::command::merge_cmd(args),
    }
}

fn run(args: RunArgs) -> anyhow::Result<i32> {
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
    let charts = args.out.is_some() && !args.no_charts;
    crate::limits::check(&sc, &args.scenario.display().to_string(), limits, charts)?;
    let formats = match (&args.out, args.no_charts) {
        (Some(_), false) => args.charts.unwrap_or(Formats::ALL),
        _ => Formats::NONE,
    };
    let (trace_target, stdout_free) = check_outputs(&args, formats)?;
    let trace = match &trace_target {
        Some(target) => {
            let names = sc.destinations.iter().map(|d| d.address.clone()).collect();
            let file = PendingFile::open(target).map_err(|e| e.usage("--trace"))?;
            Some(TraceWriter::new(file, names).map_err(|e| e.usage("--trace"))?)
        }
        None => None,
    };
    let usage = formats.any().then(|| PortUsage::new(&sc));
    // Without observers the engine is compiled with none: checking two empty
    // Options at every event costs about 4 % more instructions per attempt.
    let (report, trace, usage) = if trace.is_none() && usage.is_none() {
        (crate::run(&sc), None, None)
    } else {
        let mut obs = (trace, usage);
        let report = crate::run_with(&sc, &mut obs);
        (report, obs.0, obs.1)
    };
    // Every output of the run is one set: all written, or none replaced.
    let mut set = OutputSet::new();
    if let Some(trace) = trace {
        set.add_open(trace.finish()?);
    }
    if let Some(dir) = &args.out {
        for e in export::exports() {
            set.add(dir.join(e.file_name()), e.render(&report));
        }
    }
    if let (Some(dir), Some(usage)) = (&args.out, usage) {
        write_charts(&mut set, dir, &args, &text, formats, &report, &usage)?;
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
    Ok(if args.fail_on_exhaustion && report.failures > 0 {
        1
    } else {
        0
    })
}

/// Check every output path of `run` before it starts: the `--out` directory
/// and each file it will hold, the trace, and that no two of them (nor
/// stdout, when it is a file or pipe the summary goes to) are the same file.
/// Returns the trace's target and whether stdout is free for the summary.
fn check_outputs(args: &RunArgs, formats: Formats) -> anyhow::Result<(Option<Target>, bool)> {
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
        let mut names: Vec<String> = export::exports()
            .iter()
            .map(|e| e.file_name().to_string())
            .collect();
        for c in chart::CHARTS {
            if formats.png {
                names.push(format!("{}.png", c.name()));
            }
            if formats.svg {
                names.push(format!("{}.svg", c.name()));
            }
        }
        if formats.html {
            names.push("report.html".into());
        }
        outputs.extend(check_files(dir, &names)?);
    }
    if let (Some(path), Some(t)) = (&args.trace, &trace) {
        outputs.push((format!("--trace {}", path.display()), t.clone()));
    }
    distinct(&outputs)?;
    Ok((trace, !trace_on_stdout))
}

/// Render the chart files and report.html into the run's output set.
fn write_charts(
    set: &mut OutputSet,
    dir: &Path,
    args: &RunArgs,
    text: &str,
    formats: Formats,
    report: &crate::Report,
    usage: &PortUsage,
) -> anyhow::Result<()> {
    let input = chart::Input {
        report,
        usage: Some(usage),
    };
    for c in chart::CHARTS.iter().filter(|c| c.applies(&input)) {
        if formats.png {
            let png = chart::render_png(*c, &input).map_err(anyhow::Error::msg)?;
            set.add(dir.join(format!("{}.png", c.name())), png);
        }
        if formats.svg {
            let svg = chart::render_svg(*c, &input).map_err(anyhow::Error::msg)?;
            set.add(dir.join(format!("{}.svg", c.name())), svg.into_bytes());
        }
    }
    if formats.html {
        let mut overrides: Vec<String> = args.set.iter().map(|o| o.to_string()).collect();
        if let Some(seed) = args.seed {
            overrides.push(format!("--seed {seed}"));
        }
        let page = chart::html::render(
            &input,
            &chart::html::Source {
                path: &args.scenario.display().to_string(),
                text,
                overrides: &overrides,
            },
        )
        .map_err(anyhow::Error::msg)?;
        set.add(dir.join("report.html"), page.into_bytes());
    }
    Ok(())
}

/// Print to stdout; a closed pipe (`| head`) is not an error.
pub(crate) fn print_out(s: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(s.as_bytes()).and_then(|_| out.flush());
}

fn presets_text() -> String {
    let squash = |t: &str| t.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut s = String::from("Allocators (host.allocator):\n");
    for e in crate::alloc::REGISTRY {
        s.push_str(&format!("  {:<12} {}\n", e.name, e.summary));
    }
    let (lo, hi) = crate::os::DEFAULT_RANGE;
    s.push_str(&format!(
        "\nOS presets (host.os). Every preset uses ports {lo}-{hi} unless the scenario sets\nhost.port_range; port_range = \"native\" takes the OS's own range.\n"
    ));
    for p in crate::os::PRESETS {
        s.push_str(&format!(
            "\n  {:<8} allocator {}, TIME_WAIT {} s, ports shared across destinations: {}, native range {}-{}\n    {}\n",
            p.name,
            p.allocator,
            p.time_wait_s,
            if p.share_across_destinations { "yes" } else { "no" },
            p.native_range.0,
            p.native_range.1,
            squash(p.notes)
        ));
        for a in p.assumptions {
            s.push_str(&format!("    assumes: {}\n", squash(a)));
        }
    }
    s
}
