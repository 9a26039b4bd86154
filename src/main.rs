//! The `portsim` binary: parse flags, run, map errors to exit codes.
fn main() {
    std::process::exit(portsim::cli::main());
}
