//! What a socket table says about the ports: how much of the range is in
//! use, by state, per pool, by process and destination, which ports of the
//! range are listening, and how fast ports churn by the quick estimate.
//!
//! A pool is what competes for the same ports, as in the simulator: an
//! unbound `connect()` may use a port once per 4-tuple, so each (local
//! address, destination) is a pool of the whole range, less the ports of
//! the range that a listener holds on that address (a service bound in the
//! ephemeral range takes its port from every pool). Only TCP sockets count
//! towards pools and states; UDP ports are a space of their own and are
//! counted apart.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};

use serde::Serialize;

use super::{Proto, Socket, State};

/// The port rules a table is read under.
#[derive(Debug, Clone)]
pub struct Rules {
    pub low: u16,
    pub high: u16,
    /// Reserved ranges (`ip_local_reserved_ports`).
    pub reserved: Vec<(u16, u16)>,
    /// How long a TIME_WAIT entry lasts on this OS, seconds (Linux: 60).
    pub time_wait_s: f64,
}

impl Rules {
    fn in_range(&self, port: u16) -> bool {
        (self.low..=self.high).contains(&port)
    }
    fn reserved_in_range(&self) -> u32 {
        (self.low..=self.high)
            .filter(|p| self.reserved.iter().any(|&(a, b)| (a..=b).contains(p)))
            .count() as u32
    }
}

/// `range`: the dynamic range and how much of it is in use.
#[derive(Debug, Clone, Serialize)]
pub struct RangeView {
    pub low: u16,
    pub high: u16,
    pub size: u32,
    /// Ports of the range that are reserved (never handed out).
    pub reserved: u32,
    pub usable: u32,
    /// Distinct local ports of the range held by any socket (TCP or UDP).
    pub in_use: u32,
}

/// One pool: a local address and a destination.
#[derive(Debug, Clone, Serialize)]
pub struct PoolView {
    pub local: IpAddr,
    pub destination: SocketAddr,
    /// Its TCP sockets (4-tuples), each holding a port of the range.
    pub in_use: u64,
    /// Of them, in TIME_WAIT.
    pub time_wait: u64,
    /// Usable ports less those a listener holds on this address.
    pub capacity: u64,
    pub headroom: i64,
    /// Closes per second by the quick estimate: TIME_WAIT ÷ its length
    /// (client closes only; a server close leaves no TIME_WAIT here).
    pub closes_per_s: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ProcessView {
    pub pid: u32,
    pub name: Option<String>,
    /// Its sockets on ports of the range.
    pub sockets: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct DestinationView {
    pub destination: SocketAddr,
    /// TCP sockets to it from ports of the range.
    pub sockets: u64,
    pub time_wait: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ListenerView {
    pub port: u16,
    pub local: IpAddr,
    pub pid: Option<u32>,
    pub process: Option<String>,
}

/// The quick churn estimate.
#[derive(Debug, Clone, Serialize)]
pub struct Churn {
    pub time_wait: u64,
    pub time_wait_s: f64,
    /// `time_wait ÷ time_wait_s`: connections this host closed first per
    /// second over the last TIME_WAIT length.
    pub closes_per_s: f64,
    pub method: &'static str,
}

/// `portsim inspect --json`.
#[derive(Debug, Clone, Serialize)]
pub struct Inspection {
    /// Where the table came from: `/proc` or the file read (and its format).
    pub source: String,
    pub hostname: Option<String>,
    pub range: RangeView,
    /// Every socket read.
    pub sockets: u64,
    /// TCP sockets whose local port is in the range, by state.
    pub by_state: BTreeMap<&'static str, u64>,
    /// UDP sockets whose local port is in the range.
    pub udp_in_range: u64,
    /// Busiest first (most in use, then least headroom), at most
    /// [`MAX_LISTED`].
    pub pools: Vec<PoolView>,
    pub pools_total: u64,
    /// Ports of the range with a TCP listener, ascending.
    pub listeners_in_range: Vec<u16>,
    /// Who listens there.
    pub listeners: Vec<ListenerView>,
    /// Most sockets on ports of the range first, at most [`MAX_LISTED`].
    pub processes: Vec<ProcessView>,
    /// Most sockets first, at most [`MAX_LISTED`].
    pub destinations: Vec<DestinationView>,
    /// Sockets with no owner told (TIME_WAIT has none; others need root,
    /// or the source does not say).
    pub unowned: u64,
    pub churn: Churn,
    /// The live host's settings; `None` for a saved table.
    pub sysctls: Option<super::live::Sysctls>,
}

/// Lists are cut to this many entries (their totals are kept).
pub const MAX_LISTED: usize = 50;

/// One socket, as `inspect --port` lists it.
#[derive(Debug, Clone, Serialize)]
pub struct SocketView {
    pub proto: Proto,
    pub state: &'static str,
    pub local: SocketAddr,
    pub remote: Option<SocketAddr>,
    pub pid: Option<u32>,
    pub process: Option<String>,
}

/// `portsim inspect --port N --json`.
#[derive(Debug, Clone, Serialize)]
pub struct PortView {
    pub port: u16,
    pub in_range: bool,
    pub sockets: Vec<SocketView>,
}

/// Who holds local port `port`.
pub fn port(sockets: &[Socket], rules: &Rules, port: u16) -> PortView {
    let mut list: Vec<SocketView> = sockets
        .iter()
        .filter(|s| s.local.port() == port)
        .map(|s| SocketView {
            proto: s.proto,
            state: s.state.name(),
            local: s.local,
            remote: s.remote,
            pid: s.pid,
            process: s.process.clone(),
        })
        .collect();
    list.sort_by(|a, b| {
        (a.proto, a.state, a.local, a.remote, a.pid)
            .cmp(&(b.proto, b.state, b.local, b.remote, b.pid))
    });
    PortView {
        port,
        in_range: rules.in_range(port),
        sockets: list,
    }
}

/// The figures of a table under `rules`.
pub fn inspect(sockets: &[Socket], rules: &Rules, source: String) -> Inspection {
    let in_range = |s: &Socket| rules.in_range(s.local.port());
    let ports: BTreeSet<u16> = sockets
        .iter()
        .filter(|s| in_range(s))
        .map(|s| s.local.port())
        .collect();
    let size = u32::from(rules.high) - u32::from(rules.low) + 1;
    let reserved = rules.reserved_in_range();
    let usable = size - reserved;
    let tcp: Vec<&Socket> = sockets
        .iter()
        .filter(|s| s.proto == Proto::Tcp && in_range(s))
        .collect();
    let mut by_state: BTreeMap<&'static str, u64> = State::ALL
        .iter()
        .filter(|s| **s != State::Unconn)
        .map(|s| (s.name(), 0))
        .collect();
    for s in &tcp {
        *by_state.entry(s.state.name()).or_default() += 1;
    }
    let mut listeners: Vec<ListenerView> = tcp
        .iter()
        .filter(|s| s.state == State::Listen)
        .map(|s| ListenerView {
            port: s.local.port(),
            local: s.local.ip(),
            pid: s.pid,
            process: s.process.clone(),
        })
        .collect();
    listeners.sort_by_key(|l| (l.port, l.local));
    let listeners_in_range: Vec<u16> = listeners
        .iter()
        .map(|l| l.port)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    // Pools: (local address, destination) of connected TCP sockets.
    let mut pools: HashMap<(IpAddr, SocketAddr), (u64, u64)> = HashMap::new();
    let mut dests: HashMap<SocketAddr, (u64, u64)> = HashMap::new();
    for s in tcp.iter().filter(|s| s.state != State::Listen) {
        let Some(remote) = s.remote else { continue };
        let tw = u64::from(s.state == State::TimeWait);
        let p = pools.entry((s.local.ip(), remote)).or_default();
        p.0 += 1;
        p.1 += tw;
        let d = dests.entry(remote).or_default();
        d.0 += 1;
        d.1 += tw;
    }
    let blocked = |local: IpAddr| {
        listeners
            .iter()
            .filter(|l| l.local.is_unspecified() || l.local == local)
            .map(|l| l.port)
            .collect::<BTreeSet<_>>()
            .len() as u64
    };
    let mut pool_list: Vec<PoolView> = pools
        .into_iter()
        .map(|((local, destination), (in_use, time_wait))| {
            let capacity = u64::from(usable).saturating_sub(blocked(local));
            PoolView {
                local,
                destination,
                in_use,
                time_wait,
                capacity,
                headroom: capacity as i64 - in_use as i64,
                closes_per_s: time_wait as f64 / rules.time_wait_s,
            }
        })
        .collect();
    pool_list.sort_by(|a, b| {
        b.in_use
            .cmp(&a.in_use)
            .then(a.headroom.cmp(&b.headroom))
            .then(a.local.cmp(&b.local))
            .then(a.destination.cmp(&b.destination))
    });
    let pools_total = pool_list.len() as u64;
    pool_list.truncate(MAX_LISTED);
    let mut procs: HashMap<u32, (Option<String>, u64)> = HashMap::new();
    for s in sockets.iter().filter(|s| in_range(s)) {
        if let Some(pid) = s.pid {
            let e = procs.entry(pid).or_insert((s.process.clone(), 0));
            e.1 += 1;
        }
    }
    let mut processes: Vec<ProcessView> = procs
        .into_iter()
        .map(|(pid, (name, sockets))| ProcessView { pid, name, sockets })
        .collect();
    processes.sort_by(|a, b| b.sockets.cmp(&a.sockets).then(a.pid.cmp(&b.pid)));
    processes.truncate(MAX_LISTED);
    let mut destinations: Vec<DestinationView> = dests
        .into_iter()
        .map(|(destination, (sockets, time_wait))| DestinationView {
            destination,
            sockets,
            time_wait,
        })
        .collect();
    destinations.sort_by(|a, b| {
        b.sockets
            .cmp(&a.sockets)
            .then(a.destination.cmp(&b.destination))
    });
    destinations.truncate(MAX_LISTED);
    let time_wait = by_state.get("TIME_WAIT").copied().unwrap_or(0);
    Inspection {
        source,
        hostname: None,
        range: RangeView {
            low: rules.low,
            high: rules.high,
            size,
            reserved,
            usable,
            in_use: ports.len() as u32,
        },
        sockets: sockets.len() as u64,
        by_state,
        udp_in_range: sockets
            .iter()
            .filter(|s| s.proto == Proto::Udp && in_range(s))
            .count() as u64,
        pools: pool_list,
        pools_total,
        listeners_in_range,
        listeners,
        processes,
        destinations,
        unowned: sockets.iter().filter(|s| s.pid.is_none()).count() as u64,
        churn: Churn {
            time_wait,
            time_wait_s: rules.time_wait_s,
            closes_per_s: time_wait as f64 / rules.time_wait_s,
            method: "TIME_WAIT sockets ÷ TIME_WAIT length (closes by this host over the last TIME_WAIT length; inspect --watch measures instead)",
        },
        sysctls: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sock(state: State, local: &str, remote: Option<&str>, pid: Option<u32>) -> Socket {
        Socket {
            proto: Proto::Tcp,
            state,
            local: local.parse().unwrap(),
            remote: remote.map(|r| r.parse().unwrap()),
            pid,
            process: pid.map(|p| format!("p{p}")),
        }
    }

    #[test]
    fn counts_ports_states_pools_and_listeners() {
        let rules = Rules {
            low: 40000,
            high: 40099,
            reserved: vec![(40090, 40099)],
            time_wait_s: 60.0,
        };
        let s = vec![
            sock(
                State::Established,
                "10.0.0.1:40000",
                Some("10.0.0.5:443"),
                Some(7),
            ),
            sock(
                State::TimeWait,
                "10.0.0.1:40001",
                Some("10.0.0.5:443"),
                None,
            ),
            // The same port to another destination: another pool, one port.
            sock(
                State::Established,
                "10.0.0.1:40000",
                Some("10.0.0.6:443"),
                Some(7),
            ),
            sock(State::Listen, "0.0.0.0:40050", None, Some(9)),
            // Outside the range: not counted.
            sock(
                State::Established,
                "10.0.0.1:22",
                Some("10.0.0.9:50000"),
                Some(3),
            ),
        ];
        let i = inspect(&s, &rules, "test".into());
        assert_eq!((i.range.usable, i.range.in_use), (90, 3));
        assert_eq!(i.by_state["ESTABLISHED"], 2);
        assert_eq!(i.by_state["TIME_WAIT"], 1);
        assert_eq!(i.by_state["LISTEN"], 1);
        assert_eq!(i.listeners_in_range, vec![40050]);
        assert_eq!(i.pools_total, 2);
        let p = &i.pools[0];
        assert_eq!(
            (
                p.destination.to_string().as_str(),
                p.in_use,
                p.time_wait,
                p.capacity,
                p.headroom
            ),
            ("10.0.0.5:443", 2, 1, 89, 87)
        );
        assert_eq!((i.processes[0].pid, i.processes[0].sockets), (7, 2));
        assert_eq!(i.unowned, 1);
        let v = port(&s, &rules, 40000);
        assert_eq!(v.sockets.len(), 2);
        assert!(v.sockets.iter().all(|x| x.pid == Some(7)));
    }
}
