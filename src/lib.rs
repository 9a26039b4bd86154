//! # portsim — a discrete-event simulator of ephemeral-port exhaustion
//!
//! Every TCP client takes a local port for each connection from a small pool.
//! When the side that closed first keeps the 4-tuple in TIME_WAIT, that port is
//! pinned for a minute or more, and busy clients run out: `EADDRNOTAVAIL`,
//! "cannot assign requested address", SNAT port exhaustion. portsim simulates
//! the allocator handing out ports under a connection rate, hold times and
//! TIME_WAIT, and reports when ports ran out, why, and the closed-form figures
//! (Little's law, Erlang B) beside the simulated ones.
//!
//! The library does all the work; the `portsim` binary only parses flags.
//!
//! ```
//! use std::path::Path;
//! let text = r#"
//!     name = "example"
//!     seed = 7
//!     duration = "5m"
//!     [host]
//!     port_range = "60000-60999"   # 1,000 ports
//!     time_wait = "60s"
//!     [[destinations]]
//!     address = "10.0.0.5:5432"
//!     [traffic]
//!     rate = 20                    # 20/s x 61 s = 1,220 erlangs > 1,000 ports
//!     hold = "1s"
//! "#;
//! let scenario = portsim::scenario::load_str(text, Path::new("example.toml"), &[]).unwrap();
//! let report = portsim::run(&scenario);
//! assert!(report.failures > 0);
//! assert_eq!(report.ports.peak_in_use, 1000);
//! ```
//!
//! Modules form one-way layers, each using only those before it (a test,
//! `layers`, keeps it so): [`util`] and [`error`]; [`ports`] (bitsets and
//! the port state of a host); [`alloc`] (one file per allocator) and [`os`]
//! (presets); [`scenario`] (files, validation, the `[sweep]` specs); [`sim`]
//! (the engine); [`interrupt`], [`output`] and [`trace`] (signals and
//! files); [`report`] (JSON, summary, closed forms); [`limits`] (what a run
//! costs before it starts); [`inspect`] (a live host's or a saved table's
//! sockets, and a scenario measured from them); [`fixes`] (changes that avoid a run's failures,
//! each run on its seed); [`sweep`] (grids, capacity, merge); [`chart`];
//! [`export`] (every file `--out` writes, one file per format); and
//! [`commands`], one file per subcommand.

#![forbid(unsafe_code)]

pub mod alloc;
pub mod chart;
pub mod commands;
pub mod error;
pub mod export;
pub mod fixes;
pub mod inspect;
pub mod interrupt;
pub mod limits;
pub mod os;
pub mod output;
pub mod ports;
pub mod report;
pub mod scenario;
pub mod sim;
pub mod sweep;
pub mod trace;
pub mod util;

pub use error::InputError;
pub use report::Report;
pub use scenario::Scenario;

pub use limits::{Limits, DEFAULT_MAX_EVENTS, DEFAULT_MAX_MEMORY};

/// Run a scenario and build its report.
pub fn run(sc: &Scenario) -> Report {
    run_with(sc, &mut sim::Quiet)
}

/// Run a scenario with an observer that sees every event (e.g. a trace).
pub fn run_with<O: sim::Observer>(sc: &Scenario, obs: &mut O) -> Report {
    Report::new(sc, sim::simulate(sc, obs))
}

/// Refuse a run that would take absurdly long or need too much memory
/// (at the default memory limit), with the estimate and a way out. `source`
/// names the scenario in the message (usually its file).
pub fn check_size(sc: &Scenario, source: &str, max_events: f64) -> Result<(), InputError> {
    let limits = Limits {
        max_events,
        ..Limits::default()
    };
    limits::check(sc, source, limits, false)
}
