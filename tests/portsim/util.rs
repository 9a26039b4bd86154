//! Helpers shared by the test modules.

use std::path::{Path, PathBuf};

use portsim::{Report, Scenario};

/// Load scenario text, panicking with the loader's message if it is rejected.
pub fn scenario(text: &str) -> Scenario {
    portsim::scenario::load_str(text, Path::new("test.toml"), &[])
        .unwrap_or_else(|e| panic!("test scenario rejected: {e}\n{text}"))
}

/// Load and run scenario text.
pub fn run(text: &str) -> Report {
    portsim::run(&scenario(text))
}

/// The `portsim` binary.
pub fn portsim() -> assert_cmd::Command {
    assert_cmd::Command::cargo_bin("portsim").expect("the portsim binary is built")
}

/// Write `text` to `dir/name` and return the path.
pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write a scenario file");
    p
}

/// stdout or stderr of a finished command as text.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).expect("UTF-8 output")
}

/// `portsim run SCENARIO --out OUT extra...`, expected to succeed.
pub fn run_out(scenario: &Path, out: &Path, extra: &[&str]) -> assert_cmd::assert::Assert {
    portsim()
        .arg("run")
        .arg(scenario)
        .arg("--out")
        .arg(out)
        .args(extra)
        .assert()
        .success()
}
