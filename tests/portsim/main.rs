//! Integration tests of portsim, as one test binary (one link, one run).
//!
//! - `cli`: the `portsim` binary end to end (flags, outputs, exit codes);
//! - `charts`: the chart files and report.html that `--out` writes, for
//!   every shipped scenario, and what the port usage map shows;
//! - `sweep`: `sweep`, `capacity` and `merge`: curves and answers against
//!   Erlang B, independence from `--jobs` and sharding, refusals, Ctrl-C;
//! - `sweep_hardening`: the limits of those commands: sizes counted before
//!   they are built, finite numbers, `--jobs` ceiling, capacity inside a
//!   key's domain and on Ctrl-C, merge checking what it merges, messages;
//! - `files`: what outputs do to FIFOs, devices, links and stdout, write
//!   errors, Ctrl-C and SIGTERM, and two outputs naming one file;
//! - `help`: every subcommand's `--help` examples run as written;
//!   `completions` and `man` print scripts and pages, refuse bad names;
//! - `schema`: the JSON Schemas `portsim schema` prints against real
//!   report.json, sweep.json and capacity.json, and against broken ones;
//! - `bad_input`: every kind of user mistake gets exit code 2 and one message;
//! - `hardening`: inputs that once panicked, ran past their estimate, took
//!   runaway memory or printed unreadable messages;
//! - `layers`: the library's modules refer only to layers below them;
//! - `series_and_hints`: report.json and timeseries.csv agree on the rows
//!   for every shipped scenario; the summary's lines on port reuse, the
//!   server's TIME_WAIT and the OS's own range;
//! - `determinism`: a scenario and a seed give the same bytes every time;
//! - `seeds`: `run --seeds`: every figure's spread against the single runs,
//!   independence from `--jobs`, refusals, a fleet, Ctrl-C;
//! - `kernel`: the `linux` preset against the live kernel in a network
//!   namespace, driven by `kernel_driver`;
//! - `theory`: the engine against results that can be derived by hand
//!   (exact counts for deterministic traffic, Little's law, Erlang B);
//! - `fleet`: `[[hosts]]` groups: a fleet of one host is the host, exact
//!   counts per host and at a shared NAT, Little's law, the loader;
//! - `scale`: `[[hosts]] scale`: exact counts as groups scale, thinning of
//!   merged Poisson arrivals, the report, the loader's refusals;
//! - `syn`: SYN retransmissions after a NAT drops a SYN: the schedule,
//!   exact counts, delays, upstream mappings kept, connects left retrying;
//! - `fixes`: computed fixes: which levers apply, searched values derived by
//!   hand, and each fix rerunning to its own figures;
//! - `udp`: UDP flows: no TIME_WAIT, ports exclusive across destinations,
//!   a flow a NAT refuses failing at once, Erlang B over one pool, refusals;
//! - `clients`: pools, closed loops, streams per connection, timeouts and
//!   backoff: exact counts, a pool's Markov chain, the response-time law,
//!   M/G/∞, retry delays against their distributions;
//!   (`ss`, Windows and BSD `netstat`, `lsof`): exact sockets per fixture,
//!   (count, times, holds, peaks by hand); `traffic.rate_profile` is its
//!   detection, broken files failing at their line, mutated tables;
//!   schedule byte for byte; bad files and rows name the file and line;
//! - `inspect_parse`: the saved socket tables `inspect --from` reads
//! - `replay`: `traffic.replay` makes exactly its file's connections
//! - `fuzz`: generated and mutated scenario files: no panic, one-line
//!   messages, report invariants; minimal reproducers in `fuzz/regressions/`.

mod bad_input;
mod browser;
mod charts;
mod cli;
mod clients;
mod cloud_nat;
mod determinism;
mod failon;
mod files;
mod fixes;
mod fleet;
mod fuzz;
mod hardening;
mod help;
mod inspect_live;
mod inspect_parse;
mod kernel;
mod kernel_driver;
mod kernel_nat;
mod kernel_nat_driver;
mod layers;
mod nat;
mod pools;
mod replay;
mod scale;
mod schema;
mod seeds;
mod series_and_hints;
mod sweep;
mod sweep_hardening;
mod syn;
mod theory;
mod udp;
mod util;
