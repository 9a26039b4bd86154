//! Builds a small routed network out of network namespaces, with a real
//! nftables SNAT/MASQUERADE rule and nf_conntrack in the middle, so that the
//! cases in `kernel_nat` can record what the Linux NAT does.
//!
//! Nothing here models a NAT: the kernel is the reference. [`run_lab`] runs a
//! named case of `kernel_nat::CASES` in this topology:
//!
//! ```text
//!  client c1 10.1.0.11 ─ veth ─┐                          ┌─ veth ─ server 10.2.0.2
//!  client c2 10.1.0.12 ─ veth ─┤ router: nft snat/masq,   │         (and 10.2.0.3)
//!  ...                         ┘ conntrack, ip_forward ───┘  10.2.0.1 on the router
//! ```
//!
//! The NAT's outside addresses are 10.9.0.1 (and .2), routed back to the
//! router by the server's default route (masquerade uses 10.2.0.1).
//!
//! # Why processes, and why the test binary re-executes itself
//!
//! A socket belongs to the network namespace of the thread that created it,
//! and switching a thread's namespace needs `setns(2)`, i.e. unsafe FFI. So
//! each namespace gets its own process instead, all of them this test binary:
//!
//! - the parent test runs `unshare -m -n -- sh -c 'mount -t tmpfs … /run &&
//!   ip link set lo up && exec "$0" "$@"' <test binary> --exact
//!   kernel_nat_driver::nat_lab_entry`, with the case name in
//!   `PORTSIM_NAT_CASE`. That child (the *lab*) lives in a private mount
//!   namespace and a fresh network namespace, which becomes the router;
//! - the lab creates the client and server namespaces with `ip netns add`
//!   (their handles live on the private tmpfs over /run, so nothing appears
//!   in the machine's /run/netns), wires them with veth pairs, loads the
//!   nftables ruleset and the conntrack sysctls of the case, all inside its
//!   own namespaces;
//! - it starts one *agent* per client and one for the server with `ip netns
//!   exec NS <test binary> --exact kernel_nat_driver::nat_agent_entry`. An
//!   agent reads one JSON request per line on stdin and answers each with
//!   one line `PORTSIM_NAT_REPLY <json>` (connect, close, what the server
//!   saw as the peer of a connection, read a sysctl);
//! - the case's script runs in the lab, asserts, and prints its measured
//!   figures as `PORTSIM_NAT_FACT` lines, then `PORTSIM_NAT_DONE`, which the
//!   parent relays. A failed assertion fails the lab and so the parent test.
//!
//! When the lab exits, its agents read EOF and exit, the mount namespace and
//! with it the namespace handles disappear, and the kernel frees every
//! namespace, socket and conntrack entry of the case. Before writing any
//! sysctl, the lab and each agent check that their network namespace is not
//! the parent's.
//!
//! Cases are skipped (printed, passing) without Linux, root, `unshare`,
//! `ip`, `nft` or `mount`, or when the kernel refuses namespaces or
//! nf_tables.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream};
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use socket2::{Domain, Protocol, Socket, Type};

/// The NAT rule of a case.
#[derive(Debug, Clone)]
pub struct Nat {
    /// `None`: `masquerade` (the router's 10.2.0.1); `Some(n)`: `snat to
    /// 10.9.0.1-10.9.0.n`.
    pub addresses: Option<u8>,
    /// The NAT's port range (`to :LO-HI`).
    pub ports: (u16, u16),
    /// `fully-random` (the kernel's NF_NAT_RANGE_PROTO_RANDOM_FULLY).
    pub fully_random: bool,
    /// `persistent`: the address is chosen by hashing the source only.
    pub persistent: bool,
}

/// The topology and router settings of a case.
#[derive(Debug, Clone)]
pub struct Setup {
    /// One entry per client namespace (client k is 10.1.0.(11+k)): its own
    /// `ip_local_port_range`.
    pub clients: Vec<(u16, u16)>,
    pub nat: Nat,
    /// Server addresses 10.2.0.2 .. 10.2.0.(1+n), n = 1 or 2.
    pub server_addresses: u8,
    /// Ports the server listens on, on every address.
    pub server_ports: Vec<u16>,
    /// `net.netfilter.nf_conntrack_tcp_timeout_<name>` = seconds, written in
    /// the router namespace only.
    pub timeouts: Vec<(&'static str, u32)>,
}

/// A case: its setup and its script, run in the lab.
pub struct LabCase {
    pub name: &'static str,
    pub setup: fn() -> Setup,
    pub script: fn(&mut Lab) -> Result<(), String>,
}

/// How a connection is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CloseHow {
    /// The client closes first: FIN, the server answers with its own FIN.
    Client,
    /// The server closes first; the client closes once it has read the FIN.
    Server,
    /// The client aborts with an RST (`SO_LINGER` 0 s).
    Reset,
}

/// One connection attempt, as the client and the server saw it.
#[derive(Debug, Clone)]
pub struct Conn {
    pub id: String,
    /// Client index (0-based).
    pub client: usize,
    pub dest: SocketAddrV4,
    /// The client's local port (bound or chosen by its kernel), if the
    /// connect succeeded; for a failed attempt the port it had bound.
    pub lport: Option<u16>,
    /// errno of a failed connect (110 ETIMEDOUT: the SYNs went unanswered).
    pub errno: Option<i32>,
    /// From the start of `connect()` to its outcome.
    pub delay: Duration,
    /// The source address and port the server saw (the NAT's choice).
    pub nat: Option<SocketAddrV4>,
}

impl Conn {
    pub fn ok(&self) -> bool {
        self.nat.is_some()
    }
    /// The NAT kept the client's source port.
    pub fn preserved(&self) -> bool {
        matches!((self.nat, self.lport), (Some(n), Some(l)) if n.port() == l)
    }
}

/// A conntrack entry of the router (`/proc/net/nf_conntrack`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CtEntry {
    pub state: String,
    /// Seconds left before the entry expires.
    pub timeout_s: u64,
    /// Original direction: client address and port, destination.
    pub src: SocketAddrV4,
    pub dst: SocketAddrV4,
    /// Reply direction's destination: the NAT address and port.
    pub nat: SocketAddrV4,
}

/// Client k's address.
pub fn client_addr(k: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 1, 0, 11 + u8::try_from(k).expect("few clients"))
}

/// Server address i (0-based) on `port`.
pub fn server(i: u8, port: u16) -> SocketAddrV4 {
    SocketAddrV4::new(Ipv4Addr::new(10, 2, 0, 2 + i), port)
}

/// The NAT's outside address i (0-based) of an `snat` rule.
pub fn nat_addr(i: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 9, 0, 1 + i)
}

/// The router's address toward the server (what `masquerade` uses).
pub const MASQ_ADDR: Ipv4Addr = Ipv4Addr::new(10, 2, 0, 1);

const CASE_ENV: &str = "PORTSIM_NAT_CASE";
const AGENT_ENV: &str = "PORTSIM_NAT_AGENT";
const PARENT_NETNS_ENV: &str = "PORTSIM_NAT_PARENT_NETNS";
const REPLY_TAG: &str = "PORTSIM_NAT_REPLY ";
const FACT_TAG: &str = "PORTSIM_NAT_FACT ";
const DONE_TAG: &str = "PORTSIM_NAT_DONE";
const SKIP_TAG: &str = "PORTSIM_NAT_SKIP ";
/// The lab is killed (and the case failed) after this long.
const LAB_TIMEOUT: Duration = Duration::from_secs(90);
/// How long the server agent waits for a connection's first line.
const PEER_WAIT: Duration = Duration::from_secs(2);
/// How long a closing client waits for the server's FIN.
const FIN_WAIT: Duration = Duration::from_secs(2);

/// Run the case `name` of `kernel_nat::CASES` in a fresh set of namespaces.
///
/// `Ok(Ok(facts))`: the case ran and passed; its measured figures, one per
/// line. `Ok(Err(reason))`: skipped. `Err(report)`: the case failed (the
/// report holds the lab's output, with the failed assertion).
pub fn run_lab(name: &str) -> Result<Result<Vec<String>, String>, String> {
    let (unshare, exe) =
        match super::kernel_driver::prerequisites_with(&["ip", "nft", "mount", "sh"]) {
            Ok(found) => found,
            Err(reason) => return Ok(Err(reason)),
        };
    let netns = std::fs::read_link("/proc/self/ns/net")
        .map_err(|e| format!("{name}: readlink /proc/self/ns/net: {e}"))?;
    let mut cmd = Command::new(unshare);
    cmd.args([
        "-m",
        "-n",
        "--",
        "sh",
        "-c",
        r#"mount -t tmpfs portsim-nat /run && ip link set lo up && exec "$0" "$@""#,
    ])
    .arg(&exe)
    .args([
        "--exact",
        &entry_name("nat_lab_entry"),
        "--nocapture",
        "--test-threads=1",
    ])
    .env(CASE_ENV, name)
    .env(PARENT_NETNS_ENV, netns)
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let (status, stdout, stderr) =
        run_with_timeout(cmd, LAB_TIMEOUT).map_err(|e| format!("{name}: {e}"))?;
    let report = || format!("{status}\n--- lab stdout ---\n{stdout}\n--- lab stderr ---\n{stderr}");
    let after = |line: &str, tag: &str| line.find(tag).map(|i| line[i + tag.len()..].to_string());
    if let Some(reason) = stdout.lines().find_map(|l| after(l, SKIP_TAG)) {
        return Ok(Err(reason));
    }
    if status.success() && stdout.lines().any(|l| l.contains(DONE_TAG)) {
        return Ok(Ok(stdout
            .lines()
            .filter_map(|l| after(l, FACT_TAG))
            .collect()));
    }
    if !status.success() && stdout.trim().is_empty() {
        return Ok(Err(format!(
            "could not enter fresh mount and network namespaces ({status}): {}",
            stderr.trim()
        )));
    }
    Err(format!("{name}: {}", report()))
}

/// libtest's name of a test of this module: its path without the crate.
fn entry_name(test: &str) -> String {
    let full = format!("{}::{test}", module_path!());
    full.split_once("::")
        .map_or(full.clone(), |(_, rest)| rest.to_string())
}

/// Run `cmd` to completion, killing it after `timeout`.
fn run_with_timeout(
    mut cmd: Command,
    timeout: Duration,
) -> Result<(ExitStatus, String, String), String> {
    let mut child = cmd.spawn().map_err(|e| format!("spawn {cmd:?}: {e}"))?;
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut bytes);
            }
            String::from_utf8_lossy(&bytes).into_owned()
        })
    };
    let out = drain(child.stdout.take().map(|p| Box::new(p) as _));
    let err = drain(child.stderr.take().map(|p| Box::new(p) as _));
    let deadline = Instant::now() + timeout;
    let waited = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Ok(status),
            Ok(None) if Instant::now() >= deadline => {
                break Err(format!("lab still running after {timeout:?}; killed it"))
            }
            Ok(None) => thread::sleep(Duration::from_millis(5)),
            Err(e) => break Err(format!("waiting for the lab: {e}")),
        }
    };
    if waited.is_err() {
        let _ = child.kill();
        let _ = child.wait();
    }
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    match waited {
        Ok(status) => Ok((status, stdout, stderr)),
        Err(e) => Err(format!(
            "{e}\n--- lab stdout ---\n{stdout}\n--- lab stderr ---\n{stderr}"
        )),
    }
}

/// The lab's `ip`/`nft`/`sysctl` helper: run `program args`, `Err` with its
/// stderr on failure.
fn run(program: &str, args: &[&str], input: Option<&str>) -> Result<(), String> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("spawn {program}: {e}"))?;
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        stdin
            .write_all(text.as_bytes())
            .map_err(|e| format!("{program} stdin: {e}"))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("{program}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`{program} {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn ip(args: &str) -> Result<(), String> {
    run("ip", &args.split_whitespace().collect::<Vec<_>>(), None)
}

/// Refuse to go on unless this process's network namespace differs from
/// the parent test's.
fn check_own_namespace() -> Result<(), String> {
    let here = std::fs::read_link("/proc/self/ns/net")
        .map_err(|e| format!("readlink /proc/self/ns/net: {e}"))?;
    match std::env::var_os(PARENT_NETNS_ENV) {
        Some(parent) if here.as_os_str() != parent => Ok(()),
        _ => Err("refusing to configure: not in a network namespace of our own".to_string()),
    }
}

fn write_proc(path: &str, value: &str) -> Result<(), String> {
    std::fs::write(path, format!("{value}\n"))
        .map_err(|e| format!("write {value:?} to {path}: {e}"))
}

/// Entry point of the lab (router namespace). Without `PORTSIM_NAT_CASE`
/// (every ordinary test run) it does nothing.
#[test]
fn nat_lab_entry() {
    let Ok(name) = std::env::var(CASE_ENV) else {
        return;
    };
    let case = super::kernel_nat::CASES
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no NAT case named {name:?}"));
    let mut lab = match Lab::build(&(case.setup)()) {
        Ok(Ok(lab)) => lab,
        Ok(Err(skip)) => {
            println!("\n{SKIP_TAG}{}", skip.replace('\n', " "));
            return;
        }
        Err(e) => panic!("{name}: building the lab: {e}"),
    };
    let outcome = (case.script)(&mut lab);
    lab.shutdown();
    match outcome {
        Ok(()) => println!("\n{DONE_TAG}"),
        Err(e) => panic!("{name}: {e}"),
    }
}

/// A process in one namespace, spoken to a line at a time.
struct Agent {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Agent {
    fn start(netns: &str, role: &str) -> Result<Agent, String> {
        let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
        let mut child = Command::new("ip")
            .args(["netns", "exec", netns])
            .arg(exe)
            .args([
                "--exact",
                &entry_name("nat_agent_entry"),
                "--nocapture",
                "--test-threads=1",
            ])
            .env(AGENT_ENV, role)
            .env_remove(CASE_ENV)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("start the agent in {netns}: {e}"))?;
        let stdin = child.stdin.take().ok_or("agent stdin")?;
        let stdout = BufReader::new(child.stdout.take().ok_or("agent stdout")?);
        let mut agent = Agent {
            child,
            stdin,
            stdout,
        };
        // The agent answers a first "ready" once it has set itself up.
        let ready = agent.reply()?;
        if let Some(e) = ready.error {
            return Err(format!("agent in {netns}: {e}"));
        }
        Ok(agent)
    }

    fn reply(&mut self) -> Result<Reply, String> {
        let mut line = String::new();
        loop {
            line.clear();
            let n = self
                .stdout
                .read_line(&mut line)
                .map_err(|e| format!("agent stdout: {e}"))?;
            if n == 0 {
                return Err("agent exited".to_string());
            }
            if let Some(i) = line.find(REPLY_TAG) {
                return serde_json::from_str(line[i + REPLY_TAG.len()..].trim())
                    .map_err(|e| format!("bad agent reply {line:?}: {e}"));
            }
        }
    }

    fn ask(&mut self, req: &Request) -> Result<Reply, String> {
        let line = serde_json::to_string(req).map_err(|e| e.to_string())?;
        writeln!(self.stdin, "{line}").map_err(|e| format!("agent stdin: {e}"))?;
        self.stdin
            .flush()
            .map_err(|e| format!("agent stdin: {e}"))?;
        let reply = self.reply()?;
        match &reply.error {
            Some(e) => Err(format!("{req:?}: {e}")),
            None => Ok(reply),
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum Request {
    /// Client: connect; `wait = false` returns at once (`Await` later).
    Connect {
        id: String,
        dest: SocketAddrV4,
        bind: Option<u16>,
        timeout_ms: u64,
        wait: bool,
    },
    Await {
        id: String,
    },
    Close {
        id: String,
        how: CloseHow,
    },
    /// Server: the peer of connection `id` (waits for its first line).
    Peer {
        id: String,
    },
    /// Server: close connection `id` first.
    ServerClose {
        id: String,
    },
    /// Any agent: read `/proc/sys/<path>` in its namespace.
    Sysctl {
        path: String,
    },
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Reply {
    error: Option<String>,
    lport: Option<u16>,
    errno: Option<i32>,
    delay_us: Option<u64>,
    peer: Option<SocketAddrV4>,
    value: Option<String>,
}

/// The running lab: the router is this process's namespace.
pub struct Lab {
    clients: Vec<Agent>,
    server: Agent,
    pending: HashMap<String, (usize, SocketAddrV4)>,
    next_id: u64,
    /// The kernel release.
    pub kernel: String,
}

impl Lab {
    /// Build the topology. Inner `Err`: skip (the kernel lacks a feature).
    fn build(setup: &Setup) -> Result<Result<Lab, String>, String> {
        check_own_namespace()?;
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map_err(|e| format!("read osrelease: {e}"))?
            .trim()
            .to_string();
        // Router side toward the server.
        ip("netns add srv")?;
        ip("link add vs type veth peer name eth0 netns srv")?;
        ip("addr add 10.2.0.1/24 dev vs")?;
        ip("link set vs up")?;
        for i in 0..setup.server_addresses {
            ip(&format!(
                "-n srv addr add {}/24 dev eth0",
                server(i, 0).ip()
            ))?;
        }
        ip("-n srv link set lo up")?;
        ip("-n srv link set eth0 up")?;
        ip("-n srv route add default via 10.2.0.1")?;
        // Clients: 10.1.0.(11+k)/24 behind vc<k>; the router answers as
        // 10.1.0.1 on every client link and routes each client by a /32.
        for k in 0..setup.clients.len() {
            let (ns, dev, addr) = (format!("c{k}"), format!("vc{k}"), client_addr(k));
            ip(&format!("netns add {ns}"))?;
            ip(&format!(
                "link add {dev} type veth peer name eth0 netns {ns}"
            ))?;
            ip(&format!("addr add 10.1.0.1/32 dev {dev}"))?;
            ip(&format!("link set {dev} up"))?;
            ip(&format!("route add {addr}/32 dev {dev}"))?;
            ip(&format!("-n {ns} addr add {addr}/24 dev eth0"))?;
            ip(&format!("-n {ns} link set lo up"))?;
            ip(&format!("-n {ns} link set eth0 up"))?;
            ip(&format!(
                "-n {ns} route replace default via 10.1.0.1 dev eth0"
            ))?;
        }
        write_proc("/proc/sys/net/ipv4/ip_forward", "1")?;
        if let Err(e) = run("nft", &["-f", "-"], Some(&ruleset(&setup.nat))) {
            if e.contains("not supported") || e.contains("No such file") {
                return Ok(Err(format!("nftables NAT unavailable: {e}")));
            }
            return Err(e);
        }
        for (name, secs) in &setup.timeouts {
            let path = format!("/proc/sys/net/netfilter/nf_conntrack_tcp_timeout_{name}");
            if !std::path::Path::new(&path).exists() {
                return Ok(Err(format!("{path} missing on this kernel")));
            }
            write_proc(&path, &secs.to_string())?;
        }
        let ports = setup
            .server_ports
            .iter()
            .map(u16::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let server = Agent::start("srv", &format!("server {} {ports}", setup.server_addresses))?;
        let clients = setup
            .clients
            .iter()
            .enumerate()
            .map(|(k, (lo, hi))| Agent::start(&format!("c{k}"), &format!("client {lo} {hi}")))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Ok(Lab {
            clients,
            server,
            pending: HashMap::new(),
            next_id: 0,
            kernel,
        }))
    }

    fn shutdown(self) {
        for mut agent in self.clients.into_iter().chain([self.server]) {
            drop(agent.stdin);
            let deadline = Instant::now() + Duration::from_secs(5);
            while matches!(agent.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(5));
            }
            let _ = agent.child.kill();
            let _ = agent.child.wait();
        }
    }

    /// Print a measured figure (relayed by the parent test).
    pub fn fact(&self, text: impl AsRef<str>) {
        for line in text.as_ref().lines() {
            println!("\n{FACT_TAG}{line}");
        }
    }

    fn new_id(&mut self) -> String {
        self.next_id += 1;
        format!("n{}", self.next_id)
    }

    /// Connect from client `client` to `dest` (from `bind` if given), giving
    /// up after `timeout`; on success the connection stays open.
    pub fn connect(
        &mut self,
        client: usize,
        dest: SocketAddrV4,
        bind: Option<u16>,
        timeout: Duration,
    ) -> Result<Conn, String> {
        let id = self.start(client, dest, bind, timeout)?;
        self.finish(&id)
    }

    /// Start a connect without waiting for it ([`Lab::finish`] collects it).
    pub fn start(
        &mut self,
        client: usize,
        dest: SocketAddrV4,
        bind: Option<u16>,
        timeout: Duration,
    ) -> Result<String, String> {
        let id = self.new_id();
        let timeout_ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        self.clients[client].ask(&Request::Connect {
            id: id.clone(),
            dest,
            bind,
            timeout_ms,
            wait: false,
        })?;
        self.pending.insert(id.clone(), (client, dest));
        Ok(id)
    }

    /// The outcome of a connect started with [`Lab::start`].
    pub fn finish(&mut self, id: &str) -> Result<Conn, String> {
        let (client, dest) = self
            .pending
            .remove(id)
            .ok_or(format!("no pending connect {id}"))?;
        let r = self.clients[client].ask(&Request::Await { id: id.into() })?;
        let nat = if r.errno.is_none() {
            let peer = self.server.ask(&Request::Peer { id: id.into() })?;
            Some(peer.peer.ok_or(format!("{id}: the server saw no peer"))?)
        } else {
            None
        };
        Ok(Conn {
            id: id.into(),
            client,
            dest,
            lport: r.lport,
            errno: r.errno,
            delay: Duration::from_micros(r.delay_us.unwrap_or(0)),
            nat,
        })
    }

    /// Close an open connection; returns once the close handshake is done
    /// on the client's side (for `Reset`: once the RST is sent).
    pub fn close(&mut self, conn: &Conn, how: CloseHow) -> Result<(), String> {
        if how == CloseHow::Server {
            self.server.ask(&Request::ServerClose {
                id: conn.id.clone(),
            })?;
        }
        self.clients[conn.client].ask(&Request::Close {
            id: conn.id.clone(),
            how,
        })?;
        Ok(())
    }

    /// Read `/proc/sys/<path>` in the server's namespace.
    pub fn server_sysctl(&mut self, path: &str) -> Result<String, String> {
        let r = self.server.ask(&Request::Sysctl { path: path.into() })?;
        r.value.ok_or("no value".to_string())
    }

    /// SYNs (without ACK) that reached the router from the clients, counted
    /// before conntrack and NAT see them: first SYNs and retransmissions.
    pub fn syns(&self) -> Result<u64, String> {
        self.counter("syns")
    }

    /// RSTs that reached the router from the clients.
    pub fn client_rsts(&self) -> Result<u64, String> {
        self.counter("rsts")
    }

    fn counter(&self, name: &str) -> Result<u64, String> {
        let out = Command::new("nft")
            .args(["list", "counter", "ip", "portsim_nat", name])
            .output()
            .map_err(|e| format!("nft list counter: {e}"))?;
        let text = String::from_utf8_lossy(&out.stdout);
        text.split_whitespace()
            .skip_while(|w| *w != "packets")
            .nth(1)
            .and_then(|n| n.parse().ok())
            .ok_or(format!("no packet count in {text:?}"))
    }

    /// The router's conntrack entries (expired ones are not listed).
    pub fn conntrack(&self) -> Result<Vec<CtEntry>, String> {
        let text = std::fs::read_to_string("/proc/net/nf_conntrack")
            .map_err(|e| format!("read /proc/net/nf_conntrack: {e}"))?;
        let mut out = Vec::new();
        for line in text.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.get(2) != Some(&"tcp") {
                continue;
            }
            let bad = || format!("unparsable conntrack line {line:?}");
            let kv: Vec<(&str, &str)> = f.iter().filter_map(|w| w.split_once('=')).collect();
            let get = |key: &str, nth: usize| -> Option<&str> {
                kv.iter()
                    .filter(|(k, _)| *k == key)
                    .nth(nth)
                    .map(|(_, v)| *v)
            };
            let addr = |a: &str, p: &str, nth: usize| -> Option<SocketAddrV4> {
                Some(SocketAddrV4::new(
                    get(a, nth)?.parse().ok()?,
                    get(p, nth)?.parse().ok()?,
                ))
            };
            out.push(CtEntry {
                timeout_s: f.get(4).and_then(|t| t.parse().ok()).ok_or_else(bad)?,
                state: f.get(5).ok_or_else(bad)?.to_string(),
                src: addr("src", "sport", 0).ok_or_else(bad)?,
                dst: addr("dst", "dport", 0).ok_or_else(bad)?,
                nat: addr("dst", "dport", 1).ok_or_else(bad)?,
            });
        }
        Ok(out)
    }

    /// Sum over CPUs of the router's conntrack statistics (`drop`,
    /// `insert_failed`, ... of `/proc/net/stat/nf_conntrack`).
    pub fn ct_stat(&self, column: &str) -> Result<u64, String> {
        let text = std::fs::read_to_string("/proc/net/stat/nf_conntrack")
            .map_err(|e| format!("read /proc/net/stat/nf_conntrack: {e}"))?;
        let mut lines = text.lines();
        let header: Vec<&str> = lines.next().unwrap_or("").split_whitespace().collect();
        let col = header
            .iter()
            .position(|h| *h == column)
            .ok_or(format!("no column {column} in {header:?}"))?;
        lines
            .map(|l| {
                l.split_whitespace()
                    .nth(col)
                    .and_then(|v| u64::from_str_radix(v, 16).ok())
                    .ok_or(format!("bad stat line {l:?}"))
            })
            .sum()
    }
}

/// The router's nftables ruleset: the NAT rule toward the server link, and
/// a SYN counter at priority raw (before conntrack).
fn ruleset(nat: &Nat) -> String {
    let (lo, hi) = nat.ports;
    let to = match nat.addresses {
        None => format!("masquerade to :{lo}-{hi}"),
        Some(1) => format!("snat to {}:{lo}-{hi}", nat_addr(0)),
        Some(n) => format!("snat to {}-{}:{lo}-{hi}", nat_addr(0), nat_addr(n - 1)),
    };
    let mut flags = Vec::new();
    if nat.fully_random {
        flags.push("fully-random");
    }
    if nat.persistent {
        flags.push("persistent");
    }
    format!(
        "table ip portsim_nat {{
  counter syns {{ }}
  counter rsts {{ }}
  chain raw {{
    type filter hook prerouting priority raw; policy accept;
    iifname \"vc*\" tcp flags & (syn | ack) == syn counter name \"syns\"
    iifname \"vc*\" tcp flags & rst == rst counter name \"rsts\"
  }}
  chain post {{
    type nat hook postrouting priority srcnat; policy accept;
    oifname \"vs\" ip protocol tcp {to} {flags}
  }}
}}
",
        flags = flags.join(",")
    )
}

/// Entry point of an agent (client or server namespace). Without
/// `PORTSIM_NAT_AGENT` it does nothing.
#[test]
fn nat_agent_entry() {
    let Ok(role) = std::env::var(AGENT_ENV) else {
        return;
    };
    let answer = |r: Reply| {
        let line = serde_json::to_string(&r).expect("a reply serializes");
        println!("\n{REPLY_TAG}{line}");
    };
    let words: Vec<&str> = role.split_whitespace().collect();
    let mut agent = match words.as_slice() {
        ["client", lo, hi] => ClientAgent::new(lo, hi).map(Role::Client),
        ["server", n, ports] => ServerAgent::new(n, ports).map(Role::Server),
        _ => Err(format!("bad agent role {role:?}")),
    };
    match &agent {
        Ok(_) => answer(Reply::default()),
        Err(e) => {
            answer(Reply {
                error: Some(e.clone()),
                ..Reply::default()
            });
            return;
        }
    }
    let agent = agent.as_mut().expect("checked above");
    for line in std::io::stdin().lines() {
        let Ok(line) = line else { break };
        let reply = match serde_json::from_str::<Request>(&line) {
            Ok(req) => match agent {
                Role::Client(c) => c.handle(req),
                Role::Server(s) => s.handle(req),
            },
            Err(e) => Err(format!("bad request {line:?}: {e}")),
        };
        answer(reply.unwrap_or_else(|e| Reply {
            error: Some(e),
            ..Reply::default()
        }));
    }
}

enum Role {
    Client(ClientAgent),
    Server(ServerAgent),
}

fn read_sysctl(path: &str) -> Result<Reply, String> {
    if path.contains("..") {
        return Err(format!("bad sysctl path {path:?}"));
    }
    let value = std::fs::read_to_string(format!("/proc/sys/{path}"))
        .map_err(|e| format!("read /proc/sys/{path}: {e}"))?;
    Ok(Reply {
        value: Some(value.trim().to_string()),
        ..Reply::default()
    })
}

type Attempt = thread::JoinHandle<(Reply, Option<Socket>)>;

struct ClientAgent {
    running: HashMap<String, Attempt>,
    open: HashMap<String, Socket>,
}

impl ClientAgent {
    fn new(lo: &str, hi: &str) -> Result<ClientAgent, String> {
        check_own_namespace()?;
        write_proc(
            "/proc/sys/net/ipv4/ip_local_port_range",
            &format!("{lo}\t{hi}"),
        )?;
        Ok(ClientAgent {
            running: HashMap::new(),
            open: HashMap::new(),
        })
    }

    fn handle(&mut self, req: Request) -> Result<Reply, String> {
        match req {
            Request::Connect {
                id,
                dest,
                bind,
                timeout_ms,
                wait,
            } => {
                let hello = id.clone();
                let attempt = thread::spawn(move || {
                    attempt(&hello, dest, bind, Duration::from_millis(timeout_ms))
                });
                self.running.insert(id.clone(), attempt);
                if wait {
                    self.handle(Request::Await { id })
                } else {
                    Ok(Reply::default())
                }
            }
            Request::Await { id } => {
                let (reply, socket) = self
                    .running
                    .remove(&id)
                    .ok_or(format!("no attempt {id}"))?
                    .join()
                    .map_err(|_| "attempt thread panicked".to_string())?;
                if let Some(s) = socket {
                    self.open.insert(id, s);
                }
                Ok(reply)
            }
            Request::Close { id, how } => {
                let socket = self.open.remove(&id).ok_or(format!("no open {id}"))?;
                match how {
                    CloseHow::Client => {
                        socket
                            .shutdown(std::net::Shutdown::Write)
                            .map_err(|e| format!("{id}: shutdown: {e}"))?;
                        super::kernel_driver::wait_for_fin_within(&socket, FIN_WAIT)
                            .map_err(|e| format!("{id}: {e}"))?;
                    }
                    CloseHow::Server => {
                        super::kernel_driver::wait_for_fin_within(&socket, FIN_WAIT)
                            .map_err(|e| format!("{id}: {e}"))?;
                    }
                    CloseHow::Reset => socket
                        .set_linger(Some(Duration::ZERO))
                        .map_err(|e| format!("{id}: SO_LINGER: {e}"))?,
                }
                drop(socket);
                Ok(Reply::default())
            }
            Request::Sysctl { path } => read_sysctl(&path),
            other => Err(format!("not a client request: {other:?}")),
        }
    }
}

/// One connect: non-blocking connect, poll with `timeout`; on success send
/// the connection's id as a first line so the server can name its peer.
fn attempt(
    id: &str,
    dest: SocketAddrV4,
    bind: Option<u16>,
    timeout: Duration,
) -> (Reply, Option<Socket>) {
    let fail = |e: String| {
        (
            Reply {
                error: Some(e),
                ..Reply::default()
            },
            None,
        )
    };
    let socket = match Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)) {
        Ok(s) => s,
        Err(e) => return fail(format!("{id}: socket: {e}")),
    };
    if let Some(port) = bind {
        let bound = socket
            .set_reuse_address(true)
            .and_then(|()| socket.bind(&SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port).into()));
        if let Err(e) = bound {
            return fail(format!("{id}: bind port {port}: {e}"));
        }
    }
    let t0 = Instant::now();
    let connected = socket.connect_timeout(&dest.into(), timeout);
    let delay_us = u64::try_from(t0.elapsed().as_micros()).ok();
    let lport = socket
        .local_addr()
        .ok()
        .and_then(|a| a.as_socket_ipv4())
        .map(|a| a.port());
    match connected {
        Ok(()) => {
            let mut writer = &socket;
            if let Err(e) = writer.write_all(format!("{id}\n").as_bytes()) {
                return fail(format!("{id}: send the id: {e}"));
            }
            (
                Reply {
                    lport,
                    delay_us,
                    ..Reply::default()
                },
                Some(socket),
            )
        }
        Err(e) => {
            const ETIMEDOUT: i32 = 110;
            let errno = e
                .raw_os_error()
                .unwrap_or(if e.kind() == ErrorKind::TimedOut {
                    ETIMEDOUT
                } else {
                    -1
                });
            (
                Reply {
                    lport: lport.filter(|p| *p != 0),
                    errno: Some(errno),
                    delay_us,
                    ..Reply::default()
                },
                None,
            )
        }
    }
}

/// A connection the server accepted.
struct Accepted {
    peer: SocketAddrV4,
    stream: TcpStream,
    buf: Vec<u8>,
    id: Option<String>,
}

#[derive(Default)]
struct ServerState {
    /// Connection id → the peer the server saw.
    peers: HashMap<String, SocketAddrV4>,
    /// Ids the lab asked the server to close.
    to_close: Vec<String>,
}

struct ServerAgent {
    state: Arc<Mutex<ServerState>>,
}

impl ServerAgent {
    fn new(addresses: &str, ports: &str) -> Result<ServerAgent, String> {
        check_own_namespace()?;
        let n: u8 = addresses
            .parse()
            .map_err(|e| format!("addresses {addresses:?}: {e}"))?;
        let mut listeners = Vec::new();
        for i in 0..n {
            for port in ports.split(',') {
                let port: u16 = port.parse().map_err(|e| format!("port {port:?}: {e}"))?;
                let addr = server(i, port);
                let l = TcpListener::bind(addr).map_err(|e| format!("listen {addr}: {e}"))?;
                l.set_nonblocking(true)
                    .map_err(|e| format!("nonblocking: {e}"))?;
                listeners.push(l);
            }
        }
        let state = Arc::new(Mutex::new(ServerState::default()));
        let shared = Arc::clone(&state);
        thread::spawn(move || serve(&listeners, &shared));
        Ok(ServerAgent { state })
    }

    fn handle(&mut self, req: Request) -> Result<Reply, String> {
        match req {
            Request::Peer { id } => {
                let deadline = Instant::now() + PEER_WAIT;
                loop {
                    if let Some(peer) = self.lock().peers.get(&id) {
                        return Ok(Reply {
                            peer: Some(*peer),
                            ..Reply::default()
                        });
                    }
                    if Instant::now() >= deadline {
                        return Err(format!("{id}: no connection with this id accepted"));
                    }
                    thread::sleep(Duration::from_millis(1));
                }
            }
            Request::ServerClose { id } => {
                self.lock().to_close.push(id);
                Ok(Reply::default())
            }
            Request::Sysctl { path } => read_sysctl(&path),
            other => Err(format!("not a server request: {other:?}")),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ServerState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Accept everything, read each connection's id line, close a connection
/// when its client closes (EOF or RST) or when the lab asks.
fn serve(listeners: &[TcpListener], state: &Mutex<ServerState>) {
    let mut conns: Vec<Accepted> = Vec::new();
    let mut chunk = [0u8; 256];
    loop {
        let mut busy = false;
        for l in listeners {
            while let Ok((stream, peer)) = l.accept() {
                busy = true;
                let std::net::SocketAddr::V4(peer) = peer else {
                    continue;
                };
                if stream.set_nonblocking(true).is_ok() {
                    conns.push(Accepted {
                        peer,
                        stream,
                        buf: Vec::new(),
                        id: None,
                    });
                }
            }
        }
        let to_close =
            std::mem::take(&mut state.lock().unwrap_or_else(|e| e.into_inner()).to_close);
        conns.retain_mut(|c| {
            if c.id.as_ref().is_some_and(|id| to_close.contains(id)) {
                return false;
            }
            match c.stream.read(&mut chunk) {
                Ok(0) => false,
                Ok(n) => {
                    busy = true;
                    c.buf.extend_from_slice(&chunk[..n]);
                    if c.id.is_none() {
                        if let Some(end) = c.buf.iter().position(|b| *b == b'\n') {
                            let id = String::from_utf8_lossy(&c.buf[..end]).into_owned();
                            state
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .peers
                                .insert(id.clone(), c.peer);
                            c.id = Some(id);
                        }
                    }
                    true
                }
                Err(e) => matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted),
            }
        });
        if !busy {
            thread::sleep(Duration::from_micros(200));
        }
    }
}
