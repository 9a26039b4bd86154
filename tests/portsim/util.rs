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

/// What `portsim` left when interrupted: its exit status and its output.
pub struct Interrupted {
    pub status: std::process::ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Start `portsim ARGS` (no stdin, output to files in `dir`), send it
/// SIGINT after 1.5 s and wait up to `limit` for it to stop
/// ([`signal_and_wait`]).
pub fn interrupt_after_start<I, A>(dir: &Path, args: I, limit: std::time::Duration) -> Interrupted
where
    I: IntoIterator<Item = A>,
    A: AsRef<std::ffi::OsStr>,
{
    use std::process::Stdio;
    let file = |name: &str| std::fs::File::create(dir.join(name)).expect("an output file");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_portsim"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::from(file("stdout")))
        .stderr(Stdio::from(file("stderr")))
        .spawn()
        .expect("start portsim");
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let status = signal_and_wait(&mut child, "-INT", limit);
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).expect("an output file");
    Interrupted {
        status,
        stdout: read("stdout"),
        stderr: read("stderr"),
    }
}

/// Send `signal` (e.g. `-INT`) to `child` with kill(1) and wait up to
/// `limit` for it to exit; a child still running then is killed and the
/// test fails.
pub fn signal_and_wait(
    child: &mut std::process::Child,
    signal: &str,
    limit: std::time::Duration,
) -> std::process::ExitStatus {
    let sent = std::process::Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(sent.success(), "kill {signal} failed");
    let start = std::time::Instant::now();
    loop {
        if let Some(s) = child.try_wait().expect("the child's status") {
            return s;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("portsim did not stop within {limit:?} of {signal}");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}
