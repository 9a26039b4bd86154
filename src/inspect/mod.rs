//! `portsim inspect`: what is using this host's ports now, how close each
//! pool is to running out, how fast ports churn, and a scenario measured
//! from it.
//!
//! A snapshot is a list of [`Socket`]s and the port rules they live under
//! (the range, reserved ports, the sysctls that matter), read from the live
//! kernel ([`live`]) or parsed from saved `ss`, `netstat` or `lsof` output
//! ([`parse`]). Everything after that ([`figures`]) works on the list
//! alone, so a saved table and a live one give the same answer; [`watch`]
//! measures churn from samples, [`scenario`] writes a scenario from what
//! was measured and [`render`] prints it.

pub mod figures;
pub mod live;
pub mod parse;
pub mod render;
pub mod scenario;
pub mod socket;
pub mod watch;

pub use socket::{Proto, Socket, State};
