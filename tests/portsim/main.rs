//! Integration tests of portsim, as one test binary (one link, one run).
//!
//! - `cli`: the `portsim` binary end to end (flags, outputs, exit codes);
//! - `bad_input`: every kind of user mistake gets exit code 2 and one message;
//! - `determinism`: a scenario and a seed give the same bytes every time;
//! - `kernel`: the `linux` preset against the live kernel in a network
//!   namespace, driven by `kernel_driver`;
//! - `theory`: the engine against results that can be derived by hand
//!   (exact counts for deterministic traffic, Little's law, Erlang B).

mod bad_input;
mod browser;
mod cli;
mod determinism;
mod kernel;
mod kernel_driver;
mod theory;
mod util;
