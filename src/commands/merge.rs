//! `portsim merge`: the outputs of `sweep --shard K/N` combined into the
//! files and table the unsharded sweep gives. The combining is
//! [`crate::sweep::merge::merge`]; this checks `--out` and writes.

use std::path::{Path, PathBuf};

use super::common::{prepare_out, write_sweep};
use super::{print_out, Exit};
use crate::error::{quote, InputError};
use crate::sweep::merge::merge;

#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  portsim sweep scenarios/sweep-rate.toml --shard 1/2 --out shard-1
  portsim sweep scenarios/sweep-rate.toml --shard 2/2 --out shard-2
  portsim merge shard-1 shard-2 --out merged")]
pub(crate) struct MergeArgs {
    /// Output directories of `portsim sweep --shard K/N --out DIR`, one per shard.
    #[arg(required = true)]
    dirs: Vec<PathBuf>,
    /// Where the combined sweep.json, sweep.csv and chart go; not one of
    /// the input directories.
    #[arg(long, value_name = "DIR", required = true)]
    out: PathBuf,
    /// Print the result as JSON on stdout instead of the table.
    #[arg(long)]
    json: bool,
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

pub(crate) fn exec(args: MergeArgs) -> anyhow::Result<Exit> {
    let dirs: Vec<&Path> = args.dirs.iter().map(PathBuf::as_path).collect();
    out_is_not_an_input(&args.out, &dirs)?;
    let report = merge(&dirs)?;
    prepare_out(
        &args.out,
        &crate::export::names(&crate::export::sweep_files()),
    )?;
    write_sweep(&args.out, &report)?;
    print_out(&if args.json {
        report.to_json()
    } else {
        report.to_table()
    });
    Ok(Exit::Done)
}
