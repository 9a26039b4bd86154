//! The live Linux host: its socket tables, the processes that own the
//! sockets, and the sysctls that decide how ports are handed out.
//!
//! Everything comes from `/proc` (or another root, for tests and for a
//! copy of a host's `/proc` taken elsewhere): `net/tcp`, `net/tcp6`,
//! `net/udp`, `net/udp6` for the sockets, `PID/fd/*` links
//! (`socket:[INODE]`) and `PID/comm` for their owners, and
//! `sys/net/...` for the settings. Without root only one's own processes'
//! descriptors can be read, so other sockets have no owner; nothing fails
//! for it. A table line that cannot be read is an error naming the file
//! and line: the kernel's format is fixed, so such a line means the root
//! is not a `/proc`.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};

use super::{Proto, Socket, State};

/// The sysctls that matter, as read (`None` where the file is absent).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Sysctls {
    /// `net.ipv4.ip_local_port_range`.
    pub ip_local_port_range: Option<(u16, u16)>,
    /// `net.ipv4.ip_local_reserved_ports`, as ranges.
    pub ip_local_reserved_ports: Option<Vec<(u16, u16)>>,
    pub tcp_tw_reuse: Option<u32>,
    pub tcp_max_tw_buckets: Option<u64>,
    pub tcp_fin_timeout: Option<u64>,
    pub nf_conntrack_count: Option<u64>,
    pub nf_conntrack_max: Option<u64>,
    pub nf_conntrack_tcp_timeout_time_wait: Option<u64>,
    pub nf_conntrack_tcp_timeout_established: Option<u64>,
    pub nf_conntrack_udp_timeout: Option<u64>,
}

/// A live host's sockets and settings.
#[derive(Debug, Clone)]
pub struct Host {
    pub sockets: Vec<Socket>,
    pub sysctls: Sysctls,
    /// `kernel.hostname`, when readable.
    pub hostname: Option<String>,
}

/// A table line that could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadError {
    pub file: PathBuf,
    pub line: usize,
    pub message: String,
}

/// The most sockets read from one table: far above any real host (a
/// host's ports × addresses), so a runaway file cannot exhaust memory.
pub const MAX_SOCKETS: usize = 16 << 20;

/// Read the host under `root` (normally `/proc`).
pub fn read(root: &Path) -> Result<Host, ReadError> {
    let mut sockets = Vec::new();
    let mut inodes = Vec::new();
    for (file, proto, v6) in [
        ("net/tcp", Proto::Tcp, false),
        ("net/tcp6", Proto::Tcp, true),
        ("net/udp", Proto::Udp, false),
        ("net/udp6", Proto::Udp, true),
    ] {
        let path = root.join(file);
        // A kernel without IPv6 (or UDP in a stripped /proc) has no file.
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        for (i, line) in text.lines().enumerate().skip(1) {
            if line.trim().is_empty() {
                continue;
            }
            let err = |message: String| ReadError {
                file: path.clone(),
                line: i + 1,
                message,
            };
            let (socket, inode) = table_line(line, proto, v6).map_err(err)?;
            if sockets.len() >= MAX_SOCKETS {
                return Err(err(format!(
                    "more than {MAX_SOCKETS} sockets; is this a /proc?"
                )));
            }
            sockets.push(socket);
            inodes.push(inode);
        }
    }
    let owners = owners(root);
    for (s, inode) in sockets.iter_mut().zip(&inodes) {
        if let Some((pid, name)) = owners.get(inode).filter(|_| *inode != 0) {
            s.pid = Some(*pid);
            s.process = name.clone();
        }
    }
    Ok(Host {
        sockets,
        sysctls: sysctls(root),
        hostname: read_trim(&root.join("sys/kernel/hostname")),
    })
}

/// One line of `/proc/net/{tcp,tcp6,udp,udp6}`: the socket and its inode.
///
/// ```text
///   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
///    0: 0100007F:0CEA 00000000:0000 0A 00000000:00000000 00:00000000 00000000   117        0 28911 ...
/// ```
/// Addresses are the kernel's words printed as hex numbers in host byte
/// order; ports are hex in the usual order.
pub fn table_line(line: &str, proto: Proto, v6: bool) -> Result<(Socket, u64), String> {
    let f: Vec<&str> = line.split_whitespace().collect();
    if f.len() < 10 {
        return Err(format!(
            "found {} fields in {:?}; a socket line has at least 10",
            f.len(),
            line.trim()
        ));
    }
    let local = address(f[1], v6)?;
    let remote = address(f[2], v6)?;
    let st = u8::from_str_radix(f[3], 16).map_err(|_| format!("state {:?} is not hex", f[3]))?;
    let state = match (proto, st) {
        (Proto::Udp, 7) => State::Unconn,
        (_, 1) => State::Established,
        (_, 2) => State::SynSent,
        // NEW_SYN_RECV (12) is a request socket: shown as SYN_RECV, as ss does.
        (_, 3) | (_, 12) => State::SynRecv,
        (_, 4) => State::FinWait1,
        (_, 5) => State::FinWait2,
        (_, 6) => State::TimeWait,
        (_, 7) => State::Close,
        (_, 8) => State::CloseWait,
        (_, 9) => State::LastAck,
        (_, 10) => State::Listen,
        (_, 11) => State::Closing,
        _ => return Err(format!("unknown state {:?}", f[3])),
    };
    let inode = f[9]
        .parse::<u64>()
        .map_err(|_| format!("inode {:?} is not a number", f[9]))?;
    let remote = (!(remote.ip().is_unspecified() && remote.port() == 0)).then_some(remote);
    Ok((
        Socket {
            proto,
            state,
            local,
            remote,
            pid: None,
            process: None,
        },
        inode,
    ))
}

/// `0100007F:0CEA` (IPv4) or 32 hex digits and a port (IPv6).
fn address(text: &str, v6: bool) -> Result<SocketAddr, String> {
    let (ip, port) = text
        .split_once(':')
        .ok_or_else(|| format!("address {text:?} has no ':'"))?;
    let port = u16::from_str_radix(port, 16).map_err(|_| format!("port in {text:?} is not hex"))?;
    let word =
        |s: &str| u32::from_str_radix(s, 16).map_err(|_| format!("address {text:?} is not hex"));
    let ip = match (v6, ip.len()) {
        (false, 8) => IpAddr::V4(Ipv4Addr::from(word(ip)?.to_ne_bytes())),
        (true, 32) => {
            let mut b = [0u8; 16];
            for k in 0..4 {
                b[4 * k..4 * k + 4].copy_from_slice(&word(&ip[8 * k..8 * k + 8])?.to_ne_bytes());
            }
            let v6 = Ipv6Addr::from(b);
            // An IPv4 peer of a dual-stack socket: read it as IPv4.
            match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => IpAddr::V6(v6),
            }
        }
        _ => {
            return Err(format!(
                "address {text:?}: expected {} hex digits before ':'",
                if v6 { 32 } else { 8 }
            ))
        }
    };
    Ok(SocketAddr::new(ip, port))
}

/// Socket inode → (pid, command name), from every `PID/fd` this user may
/// read. The first process found keeps a socket shared after fork().
fn owners(root: &Path) -> HashMap<u64, (u32, Option<String>)> {
    let mut out = HashMap::new();
    let Ok(dir) = std::fs::read_dir(root) else {
        return out;
    };
    let mut pids: Vec<u32> = dir
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    pids.sort_unstable();
    for pid in pids {
        let base = root.join(pid.to_string());
        let Ok(fds) = std::fs::read_dir(base.join("fd")) else {
            continue;
        };
        let name = read_trim(&base.join("comm"));
        for fd in fds.flatten() {
            let Ok(target) = std::fs::read_link(fd.path()) else {
                continue;
            };
            let Some(inode) = target
                .to_str()
                .and_then(|t| t.strip_prefix("socket:["))
                .and_then(|t| t.strip_suffix(']'))
                .and_then(|t| t.parse::<u64>().ok())
            else {
                continue;
            };
            out.entry(inode).or_insert_with(|| (pid, name.clone()));
        }
    }
    out
}

fn read_trim(path: &Path) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

fn number(root: &Path, key: &str) -> Option<u64> {
    read_trim(&root.join(key))?.parse().ok()
}

/// `32768\t60999`.
fn range(text: &str) -> Option<(u16, u16)> {
    let mut it = text.split_whitespace().map(|x| x.parse::<u16>().ok());
    Some((it.next()??, it.next()??))
}

/// `1000-1005,40000`: the kernel's list of ranges (empty: none).
pub fn reserved(text: &str) -> Option<Vec<(u16, u16)>> {
    let mut out = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (a.trim().parse().ok()?, b.trim().parse().ok()?),
            None => {
                let p = part.parse().ok()?;
                (p, p)
            }
        };
        out.push((a, b));
    }
    Some(out)
}

fn sysctls(root: &Path) -> Sysctls {
    let ipv4 = |k: &str| format!("sys/net/ipv4/{k}");
    let nf = |k: &str| format!("sys/net/netfilter/{k}");
    Sysctls {
        ip_local_port_range: read_trim(&root.join(ipv4("ip_local_port_range")))
            .and_then(|t| range(&t)),
        ip_local_reserved_ports: read_trim(&root.join(ipv4("ip_local_reserved_ports")))
            .and_then(|t| reserved(&t)),
        tcp_tw_reuse: number(root, &ipv4("tcp_tw_reuse")).and_then(|v| u32::try_from(v).ok()),
        tcp_max_tw_buckets: number(root, &ipv4("tcp_max_tw_buckets")),
        tcp_fin_timeout: number(root, &ipv4("tcp_fin_timeout")),
        nf_conntrack_count: number(root, &nf("nf_conntrack_count")),
        nf_conntrack_max: number(root, &nf("nf_conntrack_max")),
        nf_conntrack_tcp_timeout_time_wait: number(root, &nf("nf_conntrack_tcp_timeout_time_wait")),
        nf_conntrack_tcp_timeout_established: number(
            root,
            &nf("nf_conntrack_tcp_timeout_established"),
        ),
        nf_conntrack_udp_timeout: number(root, &nf("nf_conntrack_udp_timeout")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_kernel_table_lines() {
        // 127.0.0.1:3306 listening; 10.0.0.1:52814 -> 10.0.0.5:443 in TIME_WAIT.
        let (s, inode) = table_line(
            "   0: 0100007F:0CEA 00000000:0000 0A 00000000:00000000 00:00000000 00000000   117        0 28911 1 0000000000000000 100 0 0 10 0",
            Proto::Tcp,
            false,
        )
        .unwrap();
        if cfg!(target_endian = "little") {
            assert_eq!(s.local, "127.0.0.1:3306".parse().unwrap());
        }
        assert_eq!((s.state, s.remote, inode), (State::Listen, None, 28911));
        let (s, _) = table_line(
            "   1: 0100000A:CE4E 0500000A:01BB 06 00000000:00000000 03:00000A5B 00000000     0        0 0 3 0000000000000000",
            Proto::Tcp,
            false,
        )
        .unwrap();
        if cfg!(target_endian = "little") {
            assert_eq!(s.local, "10.0.0.1:52814".parse().unwrap());
            assert_eq!(s.remote, Some("10.0.0.5:443".parse().unwrap()));
        }
        assert_eq!(s.state, State::TimeWait);
        // IPv6 loopback, and an IPv4-mapped peer read as IPv4.
        let (s, _) = table_line(
            "   2: 00000000000000000000000001000000:1F90 0000000000000000FFFF00000100007F:D431 01 00000000:00000000 00:00000000 00000000  1000        0 5555 1",
            Proto::Tcp,
            true,
        )
        .unwrap();
        if cfg!(target_endian = "little") {
            assert_eq!(s.local, "[::1]:8080".parse().unwrap());
            assert_eq!(s.remote, Some("127.0.0.1:54321".parse().unwrap()));
        }
        // UDP state 7 is an unconnected socket.
        let (s, _) = table_line(
            "  3: 00000000:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 777 2",
            Proto::Udp,
            false,
        )
        .unwrap();
        assert_eq!((s.state, s.local.port()), (State::Unconn, 53));
        assert!(table_line("   4: zz", Proto::Tcp, false).is_err());
        assert!(table_line(
            "   0: 0100007F:0CEA 00000000:0000 FF 00000000:00000000 00:00000000 00000000 0 0 1",
            Proto::Tcp,
            false
        )
        .is_err());
    }

    #[test]
    fn reads_reserved_port_lists() {
        assert_eq!(reserved(""), Some(vec![]));
        assert_eq!(
            reserved("1000-1005,40000"),
            Some(vec![(1000, 1005), (40000, 40000)])
        );
        assert_eq!(reserved("x"), None);
        assert_eq!(range("32768\t60999"), Some((32768, 60999)));
    }
}
