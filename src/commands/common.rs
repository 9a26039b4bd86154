//! What several subcommands share, each in one place: the `Runs` flag
//! group of `sweep` and `capacity`, the `--max-events` text they parse,
//! `--fail-on` (its help, its parsing before anything runs, and the one
//! line per expression that is true), the progress bar and graceful stop,
//! and the checked, all-or-nothing writing of `--out` files from an
//! exporter registry ([`crate::export`]).

use std::io::IsTerminal;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::error::{quote, InputError};
use crate::export::{self, Exporter};
use crate::output::{prepare_dir, OutputSet};
use crate::scenario::Override;
use crate::sweep::output::SweepReport;
use crate::sweep::{FailOn, Figures};

/// The grammar of `--fail-on`, in the help of every command that takes it.
macro_rules! fail_on_help {
    () => {
        "EXPR is FIGURE<=X (also <, >=, >) with FIGURE one of failure_ratio, failures, attempts, first_failure_s (infinite when nothing failed: first_failure_s<3600 is then false), peak_in_use, worst_1s, worst_10s, worst_60s, seconds_with_failures, longest_blocked_s, connect_delay_p99 (connect_delay_s.p99), connecting_at_end, stale_reuse (as in report.json); seconds may be written as durations (1h). The outputs are written as usual; stderr says which expression is true and the figure."
    };
}
pub(crate) use fail_on_help;

/// Flags `sweep` and `capacity` share: how many runs, on how many threads,
/// from which seed, with which overrides, and how the result is shown.
#[derive(clap::Args, Debug)]
pub(crate) struct Runs {
    /// Runs per point (sweep) or seeds searched (capacity), with seeds
    /// SEED, SEED+1, ...; results are their mean with a 95 % interval
    /// [default: the scenario's [sweep] seeds, else 10].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub(crate) seeds: Option<u32>,
    /// Threads (default 0: one per core; at most 4 × the cores, more is
    /// refused). The result does not depend on it.
    #[arg(long, value_name = "J", default_value_t = 0, hide_default_value = true)]
    pub(crate) jobs: usize,
    /// Print the result as JSON on stdout.
    #[arg(long)]
    pub(crate) json: bool,
    /// No progress bar.
    #[arg(long)]
    pub(crate) quiet: bool,
    /// First seed (default: the scenario's).
    #[arg(long, value_name = "N")]
    pub(crate) seed: Option<u64>,
    /// Override a scenario key (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub(crate) set: Vec<Override>,
    /// Exit with code 1 if EXPR is true of any run (sweep: any point and
    /// seed; capacity: any seed's run at the value found), e.g.
    /// worst_10s>0.01. Repeatable: exit 1 if any is true.
    #[arg(
        long = "fail-on",
        value_name = "EXPR",
        long_help = concat!(
            "Exit with code 1 if EXPR is true of any run (sweep: any point and seed; capacity: any seed's run at the value found), e.g. worst_10s>0.01. Repeatable: exit 1 if any is true.\n\n",
            fail_on_help!()
        )
    )]
    pub(crate) fail_on: Vec<String>,
}

/// Parse every `--fail-on` before anything runs: a bad one is exit 2.
pub(crate) fn fail_on_flags(list: &[String]) -> Result<Vec<FailOn>, InputError> {
    list.iter()
        .map(|s| s.parse().map_err(InputError::usage))
        .collect()
}

/// For each expression true of any of `runs`, print on stderr which and the
/// figure of the first run it is true of (`at` names that run: "at
/// traffic.rate=300, seed 3"), and, with several runs, of how many; say
/// whether any was true (exit 1).
pub(crate) fn fail_on_check(
    exprs: &[FailOn],
    runs: &[Figures],
    noun: &str,
    at: &dyn Fn(usize) -> String,
) -> bool {
    let mut tripped = false;
    for x in exprs {
        let mut first = None;
        let mut count = 0usize;
        for (i, f) in runs.iter().enumerate() {
            if let Some(m) = x.trips(f) {
                count += 1;
                first.get_or_insert((i, m));
            }
        }
        let Some((i, message)) = first else { continue };
        tripped = true;
        let mut line = format!("portsim: {message}");
        let place = at(i);
        if !place.is_empty() {
            line.push(' ');
            line.push_str(&place);
        }
        if runs.len() > 1 {
            line.push_str(&format!(" (true of {count} of {} {noun})", runs.len()));
        }
        eprintln!("{line}");
    }
    tripped
}

// Flags whose values carry their own checks (`--vary`, `--shard`,
// `--target`, `--fail-on`, `--max-events`) are taken as text and parsed by
// their command, so the one message about a bad value is ours, with the
// value quoted and cut, rather than clap's, which repeats the raw value
// first.

/// `--max-events`: a positive finite number (`nan`, `inf`, 0 and negative
/// limits are refused where the flag is read).
pub(crate) fn max_events(s: &str) -> Result<f64, InputError> {
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
pub(crate) fn key_text(key: &str) -> String {
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
pub(crate) fn stop_flag() -> Arc<AtomicBool> {
    crate::interrupt::stop_flag()
}

/// A bar on a terminal, nothing otherwise or with --quiet.
pub(crate) fn bar(len: u64, quiet: bool, what: &str) -> ProgressBar {
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

/// Create `--out DIR` and check, before any run, that each of `names` can
/// be written there (not a directory, not two names for one file).
pub(crate) fn prepare_out(dir: &Path, names: &[String]) -> Result<(), InputError> {
    prepare_dir(dir)?;
    crate::output::distinct(&crate::output::check_files(dir, names)?)
}

/// Write the files of `registry` that apply to `input` into `dir` as one
/// set: all rendered, then all written, or none replaced.
pub(crate) fn write_files<I: ?Sized, E: Exporter<I> + ?Sized>(
    dir: &Path,
    registry: &[Box<E>],
    input: &I,
) -> anyhow::Result<()> {
    let mut set = OutputSet::new();
    export::render_into(&mut set, dir, registry, input)?;
    set.commit()?;
    Ok(())
}

/// Write a sweep's files (`sweep`, `merge`) into `dir` as one set.
pub(crate) fn write_sweep(dir: &Path, r: &SweepReport) -> anyhow::Result<()> {
    write_files(dir, &export::sweep_files(), r)
}
