//! `portsim check`: load and validate scenario files without running them,
//! including the size check a run would make.

use std::path::PathBuf;

use super::Exit;
use crate::scenario::load_file;

#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  portsim check scenarios/*.toml
  portsim check scenarios/ramp.toml scenarios/sweep-rate.toml")]
pub(crate) struct CheckArgs {
    /// Scenario files (TOML).
    #[arg(required = true)]
    scenarios: Vec<PathBuf>,
}

pub(crate) fn exec(args: CheckArgs) -> anyhow::Result<Exit> {
    for path in &args.scenarios {
        let sc = load_file(path, &[])?;
        crate::check_size(&sc, &path.display().to_string(), crate::DEFAULT_MAX_EVENTS)?;
        println!("{}: ok ({})", path.display(), sc.name);
    }
    Ok(Exit::Done)
}
