//! `portsim inspect` on a live kernel: in a network namespace of its own,
//! the test opens known sockets and holds the command's report against
//! them, exactly.
//!
//! In the namespace (`unshare -n`, as [`crate::kernel_driver`] does it) the
//! test binary runs [`namespace_entry`], which sets the range to
//! 40000-40999 and opens:
//! - listeners on 127.0.0.1:8080 and 127.0.0.2:5432 (outside the range) and
//!   one on 127.0.0.1:40500, inside it;
//! - 7 connections to 8080 and 5 to 5432, held open;
//! - 4 connections to 8080 that the client closes first, so each leaves a
//!   TIME_WAIT socket (the server waits for the client's FIN, then closes);
//! - 1 connection to 5432 from another process (the test binary again, in
//!   [`child_entry`]).
//!
//! It then runs `portsim inspect --json`, `--port` on the other process's
//! port and `--write-scenario`, and checks every count, state, pool and
//! owner against the sockets it made. Skipped (not failed) without root,
//! `unshare` or `ip`, or off Linux.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::kernel_driver::{in_namespace, prerequisites_with, run_with_timeout};

const NS_ENV: &str = "PORTSIM_INSPECT_NS";
const PARENT_NETNS_ENV: &str = "PORTSIM_INSPECT_PARENT_NETNS";
const CHILD_ENV: &str = "PORTSIM_INSPECT_CHILD";
const OK_TAG: &str = "PORTSIM_INSPECT_OK";
const PORT_TAG: &str = "PORTSIM_CHILD_PORT ";

fn name_of(f: &str) -> String {
    let full = format!("{}::{f}", module_path!());
    full.split_once("::")
        .map_or(full.clone(), |(_, r)| r.to_string())
}

#[test]
fn inspect_reports_exactly_the_sockets_of_a_namespace() {
    let (unshare, exe) = match prerequisites_with(&["ip", "sh"]) {
        Ok(found) => found,
        Err(reason) => {
            eprintln!("skipped: {reason}");
            return;
        }
    };
    let netns = std::fs::read_link("/proc/self/ns/net").unwrap();
    let mut cmd = in_namespace(&unshare, &exe, &name_of("namespace_entry"));
    cmd.env(NS_ENV, "1")
        .env(PARENT_NETNS_ENV, netns)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let (status, stdout, stderr) = run_with_timeout(cmd, Duration::from_secs(60)).unwrap();
    if !status.success() && stdout.trim().is_empty() {
        eprintln!("skipped: could not enter a network namespace: {stderr}");
        return;
    }
    assert!(
        status.success() && stdout.contains(OK_TAG),
        "{status}\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}"
    );
}

/// The other process: connects to the address in `PORTSIM_INSPECT_CHILD`,
/// prints its local port and holds the connection until stdin closes.
#[test]
fn child_entry() {
    let Ok(to) = std::env::var(CHILD_ENV) else {
        return;
    };
    let s = TcpStream::connect(to.parse::<SocketAddr>().unwrap()).unwrap();
    println!("\n{PORT_TAG}{}", s.local_addr().unwrap().port());
    std::io::stdout().flush().unwrap();
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
    drop(s);
}

fn inspect(args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_portsim"))
        .arg("inspect")
        .args(args)
        .arg("--json")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "inspect {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn namespace_entry() {
    if std::env::var(NS_ENV).is_err() {
        return;
    }
    let here = std::fs::read_link("/proc/self/ns/net").unwrap();
    assert_ne!(
        Some(here.into_os_string()),
        std::env::var_os(PARENT_NETNS_ENV),
        "refusing to change sysctls outside a namespace of our own"
    );
    std::fs::write("/proc/sys/net/ipv4/ip_local_port_range", "40000 40999").unwrap();
    let a = TcpListener::bind("127.0.0.1:8080").unwrap();
    let b = TcpListener::bind("127.0.0.2:5432").unwrap();
    let in_range = TcpListener::bind("127.0.0.1:40500").unwrap();
    let mut keep = Vec::new();
    let mut clients = Vec::new();
    for (n, l, to) in [(7, &a, "127.0.0.1:8080"), (5, &b, "127.0.0.2:5432")] {
        for _ in 0..n {
            let c = TcpStream::connect(to).unwrap();
            clients.push((c.local_addr().unwrap(), to.to_string()));
            keep.push(c);
            keep.push(l.accept().unwrap().0);
        }
    }
    // Closed by the client first: TIME_WAIT on the client's port.
    let mut time_wait = Vec::new();
    for _ in 0..4 {
        let c = TcpStream::connect("127.0.0.1:8080").unwrap();
        let (mut s, _) = a.accept().unwrap();
        time_wait.push(c.local_addr().unwrap());
        drop(c);
        let mut buf = [0u8; 1];
        assert_eq!(s.read(&mut buf).unwrap(), 0, "the client's FIN");
        drop(s);
    }
    // One socket of another process.
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            &name_of("child_entry"),
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, "127.0.0.2:5432")
        .env_remove(NS_ENV)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let child_port: u16 = loop {
        let line = lines.next().expect("the child's port").unwrap();
        if let Some(p) = line.strip_prefix(PORT_TAG) {
            break p.trim().parse().unwrap();
        }
    };
    keep.push(b.accept().unwrap().0);
    std::thread::sleep(Duration::from_millis(100));
    let me = std::process::id();
    let child_pid = child.id();
    let child_name = std::fs::read_to_string(format!("/proc/{child_pid}/comm"))
        .unwrap()
        .trim()
        .to_string();

    let r = inspect(&[]);
    let n = |v: &Value| v.as_u64().unwrap();
    assert_eq!(
        (n(&r["range"]["low"]), n(&r["range"]["high"])),
        (40000, 40999)
    );
    let mut ports: Vec<u16> = clients.iter().map(|c| c.0.port()).collect();
    ports.extend(time_wait.iter().map(|a| a.port()));
    ports.extend([40500, child_port]);
    ports.sort_unstable();
    ports.dedup();
    assert_eq!(n(&r["range"]["in_use"]), ports.len() as u64, "{r}");
    let by = &r["by_state"];
    assert_eq!(
        (
            n(&by["ESTABLISHED"]),
            n(&by["TIME_WAIT"]),
            n(&by["LISTEN"]),
            n(&by["SYN_SENT"])
        ),
        (7 + 5 + 1, 4, 1, 0),
        "{by}"
    );
    assert_eq!(r["listeners_in_range"], serde_json::json!([40500]));
    // Pools: (local address, destination), from the sockets made.
    let mut want: std::collections::BTreeMap<(String, String), u64> = Default::default();
    for (local, to) in &clients {
        *want
            .entry((local.ip().to_string(), to.clone()))
            .or_default() += 1;
    }
    for t in &time_wait {
        *want
            .entry((t.ip().to_string(), "127.0.0.1:8080".into()))
            .or_default() += 1;
    }
    // The other process's connection leaves from 127.0.0.1 (the loopback
    // route's source), as ours do: read its local address from the table.
    let got: std::collections::BTreeMap<(String, String), u64> = r["pools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                (
                    p["local"].as_str().unwrap().to_string(),
                    p["destination"].as_str().unwrap().to_string(),
                ),
                n(&p["in_use"]),
            )
        })
        .collect();
    let child_local = clients
        .iter()
        .find(|c| c.1 == "127.0.0.2:5432")
        .map(|c| c.0.ip().to_string())
        .unwrap();
    *want
        .entry((child_local, "127.0.0.2:5432".into()))
        .or_default() += 1;
    assert_eq!(got, want, "{r}");
    let tw_pool = r["pools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["destination"] == "127.0.0.1:8080")
        .unwrap();
    assert_eq!(n(&tw_pool["time_wait"]), 4);
    // Processes: ours holds the 12 clients and the listener in the range;
    // the other process its one connection.
    let procs: std::collections::BTreeMap<u64, (String, u64)> = r["processes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                n(&p["pid"]),
                (
                    p["name"].as_str().unwrap_or("").to_string(),
                    n(&p["sockets"]),
                ),
            )
        })
        .collect();
    assert_eq!(
        procs.get(&u64::from(me)).map(|p| p.1),
        Some(13),
        "{procs:?}"
    );
    assert_eq!(
        procs.get(&u64::from(child_pid)),
        Some(&(child_name.clone(), 1)),
        "{procs:?}"
    );
    assert_eq!(procs.len(), 2, "{procs:?}");
    // TIME_WAIT sockets have no owner; every other socket has one.
    assert_eq!(n(&r["unowned"]), 4, "{r}");

    // Who holds the other process's port.
    let p = inspect(&["--port", &child_port.to_string()]);
    let socks = p["sockets"].as_array().unwrap();
    assert_eq!(socks.len(), 1, "{p}");
    assert_eq!(socks[0]["state"], "ESTABLISHED");
    assert_eq!(n(&socks[0]["pid"]), u64::from(child_pid));
    assert_eq!(socks[0]["process"], child_name.as_str());
    assert_eq!(socks[0]["remote"], "127.0.0.2:5432");
    // The listener in the range.
    let p = inspect(&["--port", "40500"]);
    assert_eq!(p["sockets"][0]["state"], "LISTEN");
    assert_eq!(n(&p["sockets"][0]["pid"]), u64::from(me));

    // A measured scenario loads and runs.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("measured.toml");
    let out = Command::new(env!("CARGO_BIN_EXE_portsim"))
        .arg("inspect")
        .arg("--write-scenario")
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("port_range = \"40000-40999\""), "{text}");
    assert!(text.contains("address = \"127.0.0.1:8080\""), "{text}");
    // 4 TIME_WAIT ÷ 60 s.
    assert!(text.contains("rate = 0.06667"), "{text}");
    let run = Command::new(env!("CARGO_BIN_EXE_portsim"))
        .args(["run", "--no-fixes"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );

    drop(child.stdin.take());
    let _ = child.wait();
    drop(in_range);
    println!("\n{OK_TAG}");
}
