//! What portsim does to the paths it writes: a FIFO, a device or a symbolic
//! link is never replaced by a plain file; `--trace -` streams to stdout; a
//! write error names the file and leaves no temporary file; Ctrl-C and
//! SIGTERM leave no temporary file either; two outputs of one run are never
//! the same file.
//!
//! Everything happens in temporary directories. The devices written to are
//! copies of `/dev/null` and `/dev/full` made there ([`device`]), so a
//! portsim that replaced a device by a file would replace only the copy.

#![cfg(unix)]

use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::{portsim, signal_and_wait, text, write};

/// 1 connection/s for 2 minutes: a trace of 120 connects, 120 closes and the
/// 58 ends of TIME_WAIT (61 s after each connect) before the end.
const SMALL: &str = r#"
name = "small"
duration = "120s"
[[destinations]]
address = "10.0.0.5:5432"
[traffic]
arrivals = "constant"
rate = 1
hold = "1s"
"#;

/// 20,000 connections/s for 500 s: 10 million connections, several seconds
/// of running and over a gigabyte of trace if it ran to the end.
const LONG: &str = r#"
name = "long"
duration = "500s"
[host]
port_range = "1024-65535"
time_wait = "1s"
[[destinations]]
address = "10.0.0.5:5432"
[traffic]
arrivals = "constant"
rate = 20000
hold = "1s"
"#;

/// The trace of SMALL, written to a plain file.
fn small_trace(dir: &Path) -> String {
    let sc = write(dir, "reference.toml", SMALL);
    let trace = dir.join("reference.csv");
    portsim()
        .arg("run")
        .arg(&sc)
        .arg("--trace")
        .arg(&trace)
        .assert()
        .success();
    let t = std::fs::read_to_string(&trace).unwrap();
    std::fs::remove_file(&trace).unwrap();
    assert_eq!(t.lines().count(), 1 + 120 + 120 + 58, "{t}");
    t
}

/// Names in `dir` that look like a temporary file.
fn temps(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect()
}

/// A character device with the numbers of `/dev/NAME` (`null` or `full`),
/// made in `dir`. Where no device can be made (not root, or a file system
/// mounted `nodev`) the real one, which a user who cannot make devices
/// cannot replace either.
fn device(dir: &Path, name: &str) -> PathBuf {
    let minor = match name {
        "null" => "3",
        "full" => "7",
        _ => panic!("no such device in the tests: {name}"),
    };
    let p = dir.join(name);
    let made = Command::new("mknod")
        .arg(&p)
        .args(["c", "1", minor])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if made && std::fs::OpenOptions::new().write(true).open(&p).is_ok() {
        p
    } else {
        let _ = std::fs::remove_file(&p);
        PathBuf::from(format!("/dev/{name}"))
    }
}

fn is_char_device(p: &Path) -> bool {
    std::fs::metadata(p).unwrap().file_type().is_char_device()
}

#[test]
fn trace_onto_a_fifo_is_written_through() {
    use std::io::{Read, Write};

    let dir = tempfile::tempdir().unwrap();
    let expected = small_trace(dir.path());
    let fifo = dir.path().join("trace.fifo");
    let made = Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
    assert!(made.success());
    // The reader holds the FIFO open for reading and writing (on Linux that
    // does not wait for a writer), so portsim's open does not wait either, and
    // the reader can end what it reads with a marker of its own: a FIFO that
    // portsim replaced would then give the marker alone instead of hanging.
    // The trace (12 kB) fits in the pipe's buffer (64 kB).
    let mut pipe = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&fifo)
        .unwrap();
    let reader = std::thread::spawn(move || {
        let sc = write(dir.path(), "small.toml", SMALL);
        portsim()
            .arg("run")
            .arg(&sc)
            .arg("--trace")
            .arg(dir.path().join("trace.fifo"))
            .assert()
            .success();
        dir
    });
    let dir = reader.join().unwrap();
    const END: &[u8] = b"<end of test>";
    pipe.write_all(END).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.ends_with(END) {
        let n = pipe.read(&mut buf).unwrap();
        got.extend_from_slice(&buf[..n]);
    }
    got.truncate(got.len() - END.len());
    assert_eq!(text(&got), expected);
    let ft = std::fs::symlink_metadata(&fifo).unwrap().file_type();
    assert!(ft.is_fifo(), "the FIFO was replaced: {ft:?}");
    assert!(temps(dir.path()).is_empty());
}

#[test]
fn trace_onto_dev_null_leaves_it_a_device() {
    let dir = tempfile::tempdir().unwrap();
    let null = device(dir.path(), "null");
    let sc = write(dir.path(), "small.toml", SMALL);
    portsim()
        .arg("run")
        .arg(&sc)
        .arg("--trace")
        .arg(&null)
        .assert()
        .success();
    assert!(is_char_device(&null), "{} was replaced", null.display());
    // And through a link to it, as one of the --out files.
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    std::os::unix::fs::symlink(&null, out.join("timeseries.csv")).unwrap();
    portsim()
        .arg("run")
        .arg(&sc)
        .arg("--out")
        .arg(&out)
        .arg("--no-charts")
        .assert()
        .success();
    assert!(std::fs::symlink_metadata(out.join("timeseries.csv"))
        .unwrap()
        .file_type()
        .is_symlink());
    assert!(is_char_device(&null), "{} was replaced", null.display());
    assert!(out.join("report.json").is_file());
    assert!(temps(&out).is_empty() && temps(dir.path()).is_empty());
}

#[test]
fn a_symlink_is_followed_and_stays_a_link() {
    let dir = tempfile::tempdir().unwrap();
    let expected = small_trace(dir.path());
    let real = dir.path().join("real");
    std::fs::create_dir(&real).unwrap();
    std::fs::write(real.join("trace.csv"), "old").unwrap();
    let link = dir.path().join("link.csv");
    std::os::unix::fs::symlink("real/trace.csv", &link).unwrap();
    let sc = write(dir.path(), "small.toml", SMALL);
    portsim()
        .arg("run")
        .arg(&sc)
        .arg("--trace")
        .arg(&link)
        .assert()
        .success();
    let ft = std::fs::symlink_metadata(&link).unwrap().file_type();
    assert!(ft.is_symlink(), "the link was replaced: {ft:?}");
    assert_eq!(
        std::fs::read_link(&link).unwrap(),
        Path::new("real/trace.csv")
    );
    assert_eq!(
        std::fs::read_to_string(real.join("trace.csv")).unwrap(),
        expected
    );
    assert!(temps(dir.path()).is_empty() && temps(&real).is_empty());
}

#[test]
fn trace_dash_streams_to_stdout() {
    let dir = tempfile::tempdir().unwrap();
    let expected = small_trace(dir.path());
    let sc = write(dir.path(), "small.toml", SMALL);
    let out = portsim()
        .current_dir(dir.path())
        .arg("run")
        .arg(&sc)
        .args(["--trace", "-"])
        .assert()
        .success();
    let o = out.get_output();
    // stdout is the trace alone; the summary went to stderr.
    assert_eq!(text(&o.stdout), expected);
    let err = text(&o.stderr);
    assert!(err.contains("No port ran out"), "{err}");
    assert!(!dir.path().join("-").exists());

    // --json would need stdout too.
    let refused = portsim()
        .current_dir(dir.path())
        .arg("run")
        .arg(&sc)
        .args(["--trace", "-", "--json"])
        .assert()
        .code(2);
    let err = text(&refused.get_output().stderr);
    assert!(
        err.starts_with("error: --trace - and --json both write to stdout"),
        "{err}"
    );
    assert!(refused.get_output().stdout.is_empty());
}

#[test]
fn a_full_device_is_named_and_leaves_no_temp() {
    let dir = tempfile::tempdir().unwrap();
    let full = device(dir.path(), "full");
    let sc = write(dir.path(), "small.toml", SMALL);
    let failed = portsim()
        .arg("run")
        .arg(&sc)
        .arg("--trace")
        .arg(&full)
        .assert()
        .code(3);
    assert_eq!(
        text(&failed.get_output().stderr),
        format!(
            "error: {}: No space left on device (os error 28)\n",
            full.display()
        )
    );
    assert!(is_char_device(&full), "{} was replaced", full.display());
    assert!(temps(dir.path()).is_empty());

    // One file of an --out set fails: the message names it, and none of the
    // set is written, not even the trace.
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    std::os::unix::fs::symlink(&full, out.join("timeseries.csv")).unwrap();
    let failed = portsim()
        .arg("run")
        .arg(&sc)
        .arg("--out")
        .arg(&out)
        .arg("--trace")
        .arg(dir.path().join("trace.csv"))
        .assert()
        .code(3);
    assert_eq!(
        text(&failed.get_output().stderr),
        format!(
            "error: {}: No space left on device (os error 28)\n",
            out.join("timeseries.csv").display()
        )
    );
    let mut left: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, vec!["timeseries.csv"], "only the link is there");
    assert!(!dir.path().join("trace.csv").exists());
    assert!(temps(dir.path()).is_empty());
    assert!(is_char_device(&full), "{} was replaced", full.display());
}

#[test]
fn two_outputs_cannot_be_one_file() {
    let dir = tempfile::tempdir().unwrap();
    let sc = write(dir.path(), "small.toml", SMALL);
    let out = dir.path().join("out");
    let report = out.join("report.json");
    let refused = portsim()
        .arg("run")
        .arg(&sc)
        .arg("--out")
        .arg(&out)
        .arg("--trace")
        .arg(&report)
        .assert()
        .code(2);
    let err = text(&refused.get_output().stderr);
    assert_eq!(
        err,
        format!(
            "error: --out {} and --trace {} are the same file ({}); give each output its own path\n",
            out.display(),
            report.display(),
            report.display()
        )
    );
    assert!(!report.exists());
    // The same through a symbolic link to where report.json will be.
    let link = dir.path().join("t.csv");
    std::os::unix::fs::symlink("out/report.json", &link).unwrap();
    let refused = portsim()
        .arg("run")
        .arg(&sc)
        .arg("--out")
        .arg(&out)
        .arg("--trace")
        .arg(&link)
        .assert()
        .code(2);
    let err = text(&refused.get_output().stderr);
    assert!(err.contains("are the same file"), "{err}");
    assert!(!report.exists());
    assert!(temps(&out).is_empty());
}

#[test]
fn out_files_are_checked_before_the_run() {
    // report.json is a directory: refused before anything runs, so the
    // trace is not even started.
    let dir = tempfile::tempdir().unwrap();
    let sc = write(dir.path(), "small.toml", SMALL);
    let out = dir.path().join("out");
    std::fs::create_dir_all(out.join("report.json")).unwrap();
    let trace = dir.path().join("trace.csv");
    let refused = portsim()
        .arg("run")
        .arg(&sc)
        .arg("--out")
        .arg(&out)
        .arg("--trace")
        .arg(&trace)
        .assert()
        .code(2);
    let err = text(&refused.get_output().stderr);
    assert_eq!(
        err,
        format!(
            "error: --out {}: {}: is a directory; expected a file path\n",
            out.display(),
            out.join("report.json").display()
        )
    );
    assert!(!trace.exists());
    assert!(temps(dir.path()).is_empty());
}

/// Start `run LONG --trace DIR/trace.csv`, wait for its temporary file,
/// send `signal`, and return the exit code, stderr, and the directory.
fn stop_a_long_trace(signal: &str) -> (Option<i32>, String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let sc = write(dir.path(), "long.toml", LONG);
    let stderr = std::fs::File::create(dir.path().join("stderr")).unwrap();
    let mut child = Command::new(assert_cmd::cargo::cargo_bin("portsim"))
        .arg("run")
        .arg(&sc)
        .arg("--trace")
        .arg(dir.path().join("trace.csv"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(stderr))
        .spawn()
        .expect("start portsim");
    let start = Instant::now();
    let stop = |child: &mut std::process::Child, why: &str| -> ! {
        let _ = child.kill();
        let _ = child.wait();
        panic!("{why}");
    };
    // The temporary file appears once the trace is open, just before the
    // run starts; the run then goes on for seconds.
    while temps(dir.path()).is_empty() {
        if child.try_wait().unwrap().is_some() {
            stop(&mut child, "portsim ended before its trace file appeared");
        }
        if start.elapsed() > Duration::from_secs(60) {
            stop(&mut child, "no temporary trace file within 60 s");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let status = signal_and_wait(&mut child, signal, Duration::from_secs(60));
    let err = std::fs::read_to_string(dir.path().join("stderr")).unwrap();
    (status.code(), err, dir)
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

/// Send `signal` to a long `run --trace`: it exits with `code`, says it was
/// interrupted by `name`, and leaves only the scenario and its stderr.
fn stopped_cleanly(signal: &str, code: i32, name: &str) {
    let (got, err, dir) = stop_a_long_trace(signal);
    assert_eq!(got, Some(code), "stderr: {err}");
    assert!(
        err.starts_with(&format!(
            "interrupted by {name}; removed unfinished output: "
        )),
        "{err}"
    );
    assert_eq!(
        files(dir.path()),
        vec![dir.path().join("long.toml"), dir.path().join("stderr")]
    );
}

#[test]
fn sigterm_removes_the_temporary_trace() {
    stopped_cleanly("-TERM", 143, "SIGTERM");
}

#[test]
fn sighup_removes_the_temporary_trace() {
    // A closed terminal: 128 + 1.
    stopped_cleanly("-HUP", 129, "SIGHUP");
}

#[test]
fn sigint_removes_the_temporary_trace() {
    stopped_cleanly("-INT", 130, "SIGINT");
}
