//! The command line: flags in, exit code out.
//!
//! One file per subcommand, each holding its clap arguments and an `exec`
//! that runs it and says how the process ends (`Exit`); what several
//! subcommands share (flag groups, the progress bar, output checks) is in
//! `common`. Adding a subcommand is one new file here plus one variant in
//! `Command` and one line in its dispatch. Nothing else in the crate
//! imports this module: the library does the work, this only parses flags
//! and prints.
//!
//! Exit codes (`Exit`): 0 done; 1 `--fail-on-exhaustion` and some attempt
//! failed; 2 bad input (scenario, flag or path), with one message on stderr;
//! 3 an output file could not be written (disk full, permissions), with the
//! file named; 130 / 143 stopped by SIGINT (Ctrl-C) / SIGTERM: a sweep or
//! capacity search after writing what finished, any other command at once,
//! leaving no temporary file (see [`crate::interrupt`]).
//! Output paths are checked before the run, so a typo costs no run time.

mod capacity;
mod check;
mod common;
mod completions;
mod inspect;
mod man;
mod merge;
mod presets;
mod run;
mod schema;
mod sweep;

use std::io::Write;

use clap::{Parser, Subcommand};

use crate::error::InputError;

#[derive(Parser, Debug)]
#[command(
    name = "portsim",
    version,
    about = "Simulate ephemeral-port exhaustion: when do clients run out of local ports, why, and what fixes it.",
    after_help = "Each command's --help ends with examples on the shipped scenarios (scenarios/*.toml).\n\nOutput files are written whole or not at all: each goes to a temporary name and is renamed into place once every output of the command is written; a symbolic link is followed, a FIFO or device (/dev/null) is written through, a directory is refused. On an error, Ctrl-C or SIGTERM no temporary file is left.\n\nExit codes: 0 done, 1 --fail-on-exhaustion tripped, 2 bad input (a path included, checked before running), 3 an output could not be written (the file is named), 130 / 143 stopped by Ctrl-C / SIGTERM (a sweep or capacity search writes its finished points first)."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a scenario and print a summary (or the JSON report).
    Run(run::RunArgs),
    /// Validate scenario files without running them.
    Check(check::CheckArgs),
    /// List the allocators and OS presets with their defaults.
    Presets(presets::PresetsArgs),
    /// Run a scenario over a grid of values × seeds, in parallel.
    Sweep(sweep::SweepArgs),
    /// Find the largest (or smallest) value of a key that meets a target.
    Capacity(capacity::CapacityArgs),
    /// Combine the outputs of `sweep --shard K/N` into the unsharded result.
    Merge(merge::MergeArgs),
    /// What is using this host's ports now (or a saved ss/netstat/lsof
    /// table's), and a scenario measured from it.
    Inspect(inspect::InspectArgs),
    /// Print a shell completion script (bash, zsh, fish, powershell, elvish).
    Completions(completions::CompletionsArgs),
    /// Print the man page (roff) of portsim or of one subcommand.
    Man(man::ManArgs),
    /// Print the JSON Schema of report.json, sweep.json, capacity.json or `run --seeds` output.
    Schema(schema::SchemaArgs),
}

/// How the process ends: each exit code the command line uses, in one place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Exit {
    /// 0: the command did what it was asked (or printed help or version).
    Done,
    /// 1: `--fail-on-exhaustion` was given and some attempt failed.
    Exhausted,
    /// 2: bad input (scenario, flag or path), reported on stderr.
    BadInput,
    /// 3: an output file could not be written.
    WriteFailed,
    /// 128 + the signal: a sweep or capacity search stopped by a signal
    /// after writing what finished.
    Interrupted(i32),
}

impl Exit {
    /// A graceful stop, by the signal received (SIGINT if none was seen).
    pub(crate) fn interrupted() -> Exit {
        Exit::Interrupted(crate::interrupt::received().unwrap_or(crate::interrupt::SIGINT))
    }

    /// The process exit code.
    pub(crate) fn code(self) -> i32 {
        match self {
            Exit::Done => 0,
            Exit::Exhausted => 1,
            Exit::BadInput => 2,
            Exit::WriteFailed => 3,
            Exit::Interrupted(signal) => 128 + signal,
        }
    }
}

/// Parse, run, and return the process exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let exit = if e.use_stderr() {
                Exit::BadInput
            } else {
                Exit::Done
            };
            print_parse_error(&e);
            return exit.code();
        }
    };
    crate::interrupt::install();
    match dispatch(cli) {
        Ok(exit) => exit.code(),
        Err(e) => match e.downcast_ref::<InputError>() {
            Some(input) => {
                eprintln!("error: {input}");
                Exit::BadInput.code()
            }
            None => {
                eprintln!("error: {e:#}");
                Exit::WriteFailed.code()
            }
        },
    }
}

fn dispatch(cli: Cli) -> anyhow::Result<Exit> {
    match cli.command {
        Command::Run(args) => run::exec(args),
        Command::Check(args) => check::exec(args),
        Command::Presets(args) => presets::exec(args),
        Command::Sweep(args) => sweep::exec(args),
        Command::Capacity(args) => capacity::exec(args),
        Command::Inspect(args) => inspect::exec(args),
        Command::Merge(args) => merge::exec(args),
        Command::Completions(args) => completions::exec(args),
        Command::Man(args) => man::exec(args),
        Command::Schema(args) => schema::exec(args),
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

/// Print to stdout; a closed pipe (`| head`) is not an error.
pub(crate) fn print_out(s: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(s.as_bytes()).and_then(|_| out.flush());
}

#[cfg(test)]
mod tests {
    use super::Exit;
    use crate::interrupt::{SIGINT, SIGTERM};

    #[test]
    fn exit_codes_are_the_documented_ones() {
        assert_eq!(Exit::Done.code(), 0);
        assert_eq!(Exit::Exhausted.code(), 1);
        assert_eq!(Exit::BadInput.code(), 2);
        assert_eq!(Exit::WriteFailed.code(), 3);
        assert_eq!(Exit::Interrupted(SIGINT).code(), 130);
        assert_eq!(Exit::Interrupted(SIGTERM).code(), 143);
    }

    #[test]
    fn a_stop_with_no_signal_seen_is_sigint() {
        // No signal reaches a unit test, so the stop counts as Ctrl-C.
        assert_eq!(Exit::interrupted(), Exit::Interrupted(SIGINT));
    }
}
