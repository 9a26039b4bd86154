//! The `portsim` binary: parse flags, run, map errors to exit codes.

#![forbid(unsafe_code)]

fn main() {
    std::process::exit(portsim::commands::main());
}
