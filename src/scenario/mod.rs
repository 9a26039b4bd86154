//! Scenario files: what a user writes, checked and turned into typed settings.
//!
//! Loading happens in two stages, as in tools that take their inputs seriously:
//! `load` reads TOML (applying `--set` overrides) into the raw serde structs of
//! `raw`, and `validate` turns them into the typed [`Scenario`] the engine
//! runs. Every error carries the key path, which `load` maps back to a line of
//! the file, so messages read `file.toml:12: traffic.rate: ...`. Nothing after
//! this module re-validates.

mod builder;
mod load;
pub mod nat;
mod raw;
pub mod spec;
mod validate;

pub use builder::Builder;
pub use load::{load_file, load_str, read_file, Override, MAX_FILE_BYTES};
pub use validate::KeyError;

use crate::os::Os;

/// Nanoseconds in a second; simulated time is `u64` nanoseconds.
pub const NS_PER_S: u64 = 1_000_000_000;

/// Highest connection rate a scenario may give, per second: one connection
/// per nanosecond. It keeps every integral of a rate profile finite (at most
/// 1e9/s × 584 years, or a ramp's slope × its length squared).
pub const MAX_RATE: f64 = 1e9;

/// After a request failed, its virtual user waits at least this long
/// before the next one (a failed connect() returns within about this
/// long), so a user whose every request fails at once does not spin at
/// one instant.
pub const FAILED_PAUSE_NS: u64 = 1_000_000;

/// Highest destination weight (weights are relative; the bound keeps their
/// sum finite over a million destinations).
pub const MAX_WEIGHT: f64 = 1e9;

/// A validated scenario, ready to run.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: String,
    pub description: String,
    pub seed: u64,
    /// Simulated horizon; `None` when only `max_connections` bounds the run.
    pub duration_ns: Option<u64>,
    /// Stop after this many connection attempts (retries included).
    pub max_connections: Option<u64>,
    pub host: Host,
    pub destinations: Vec<Destination>,
    pub traffic: Traffic,
    /// Width of one time-series bin; `None` lets the engine choose.
    pub bin_ns: Option<u64>,
    /// The `[sweep]` table: defaults for `sweep` and `capacity`.
    pub sweep: SweepDefaults,
    /// `[[nat]]` tables, in file order.
    pub nats: Vec<nat::Nat>,
    /// The first NAT the host's connections cross (`host.via`, an index into
    /// `nats`); `None`: straight to the destinations.
    pub via: Option<usize>,
    /// `[[hosts]]` groups, in file order; empty for a file with `[host]`
    /// only (one host: `host`, `traffic`, `destinations`, `via`). With
    /// groups, those four are the first group's.
    pub groups: Vec<HostGroup>,
}

/// `[[hosts]]`: `count` identical hosts, each with its own port state,
/// allocator and random streams, and its own traffic at `traffic.rate`.
#[derive(Debug, Clone)]
pub struct HostGroup {
    pub name: String,
    pub count: u32,
    /// The settings of each host. `addresses` are the first host's; host
    /// `j` of the group has as many, the next ones after host `j - 1`'s.
    pub host: Host,
    pub traffic: Traffic,
    /// The group's own `destinations`, or the file's.
    pub destinations: Vec<Destination>,
    /// The first NAT its connections cross (an index into `nats`).
    pub via: Option<usize>,
    /// `scale`: from each step's time on, the group has that many hosts
    /// (in time order). `count` is the number at the start.
    pub scale: Vec<ScaleStep>,
}

/// One step of `[[hosts]] scale`: at `at_ns` the group has `count` hosts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScaleStep {
    pub at_ns: u64,
    pub count: u32,
}

impl HostGroup {
    /// The most hosts the group has at any time: the engine makes this
    /// many, and numbers the next group's addresses after them.
    pub fn max_count(&self) -> u32 {
        self.scale
            .iter()
            .map(|s| s.count)
            .fold(self.count, u32::max)
    }

    /// Address `k` of host `j` of a group whose first host has `first`:
    /// host 0's as listed, host `j` ≥ 1's the next ones after host
    /// `j − 1`'s. `None` past the end of the address space.
    pub fn host_address(first: &[std::net::IpAddr], j: u32, k: usize) -> Option<std::net::IpAddr> {
        if j == 0 {
            return first.get(k).copied();
        }
        let per = u32::try_from(first.len()).ok()?;
        let after = (j - 1).checked_mul(per)?.checked_add(k as u32 + 1)?;
        crate::util::ip_plus(*first.last()?, after)
    }
}

/// The most hosts a scenario may have, over all `[[hosts]]` groups.
pub const MAX_HOSTS: u64 = 1_000_000;

/// `[sweep]`: what `portsim sweep` and `portsim capacity` do on this
/// scenario when the command line does not say.
#[derive(Debug, Clone, Default)]
pub struct SweepDefaults {
    pub vary: Vec<spec::Vary>,
    pub seeds: Option<u32>,
    pub capacity: Option<String>,
    pub target: Option<spec::Target>,
}

#[derive(Debug, Clone)]
pub struct Host {
    pub os: Os,
    /// Registered allocator name, e.g. "rfc6056-1".
    pub allocator: String,
    /// Inclusive port range.
    pub port_lo: u16,
    pub port_hi: u16,
    /// Whether the scenario set `port_range` (a range or "native"), rather
    /// than leaving the default 49152-65535.
    pub port_range_given: bool,
    /// Inclusive ranges never handed out.
    pub reserved: Vec<(u16, u16)>,
    pub time_wait_ns: u64,
    pub tw_reuse: bool,
    pub tw_reuse_delay_ns: u64,
    pub max_tw_buckets: u64,
    /// Local addresses (text, for reports). At least one.
    pub addresses: Vec<String>,
    /// Whether an unbound connect() may share a local port across destinations.
    pub share_across_destinations: bool,
    /// Tries of `rfc6056-2` (RFC 6056 `num`); defaults to the range size.
    pub rfc6056_2_tries: Option<u32>,
    /// `N` of `rfc6056-5` (random increments in 1..=N).
    pub rfc6056_5_increment: u32,
    /// SYN retransmissions before connect() gives up (`tcp_syn_retries`).
    pub syn_retries: u32,
    /// Retransmissions at the initial RTO before it doubles
    /// (`tcp_syn_linear_timeouts`); they add to `syn_retries`.
    pub syn_linear_timeouts: u32,
}

impl Host {
    pub fn range_size(&self) -> u32 {
        u32::from(self.port_hi) - u32::from(self.port_lo) + 1
    }
    /// What the allocator reads of these settings.
    pub fn alloc_settings(&self) -> crate::alloc::Settings {
        crate::alloc::Settings {
            range: self.range_size(),
            rfc6056_2_tries: self.rfc6056_2_tries,
            rfc6056_5_increment: self.rfc6056_5_increment,
        }
    }

    /// Ports in the range that are not reserved.
    pub fn usable_ports(&self) -> u32 {
        self.range_size() - self.reserved_indices().count() as u32
    }

    /// Offsets into the range of the reserved ports, each once, ascending.
    /// Linear in the range plus the entries, however many entries overlap
    /// (a file may list `"1-65535"` a million times).
    pub fn reserved_indices(&self) -> impl Iterator<Item = u32> {
        let n = self.range_size() as usize;
        // +1 at each entry's start, -1 past its end.
        let mut delta = vec![0i32; n + 1];
        for &(a, b) in &self.reserved {
            let (a, b) = (a.max(self.port_lo), b.min(self.port_hi));
            if a <= b {
                delta[usize::from(a - self.port_lo)] += 1;
                delta[usize::from(b - self.port_lo) + 1] -= 1;
            }
        }
        let mut depth = 0i32;
        (0..n as u32).filter(move |&i| {
            depth += delta[i as usize];
            depth > 0
        })
    }
}

#[derive(Debug, Clone)]
pub struct Destination {
    /// "ip:port" as written (expanded for `count`).
    pub address: String,
    pub weight: f64,
    /// The server's TIME_WAIT after it closes first (`None`: the host's
    /// `time_wait`).
    pub time_wait_ns: Option<u64>,
}

impl Destination {
    /// Its IPv4 address, if it is an IPv4 `ip:port`.
    pub fn ipv4(&self) -> Option<std::net::Ipv4Addr> {
        match self.address.parse::<std::net::SocketAddr>() {
            Ok(std::net::SocketAddr::V4(a)) => Some(*a.ip()),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrivals {
    Poisson,
    Constant,
}

/// Connection rate over time: piecewise linear, in connections per second.
#[derive(Debug, Clone, PartialEq)]
pub struct RateProfile {
    /// Segments in time order; the last one extends forever.
    pub segments: Vec<RateSegment>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateSegment {
    pub start_s: f64,
    /// Rate at `start_s`.
    pub from: f64,
    /// Change of rate per second within the segment (0 for steps).
    pub slope: f64,
}

impl RateProfile {
    pub fn constant(rate: f64) -> Self {
        RateProfile {
            segments: vec![RateSegment {
                start_s: 0.0,
                from: rate,
                slope: 0.0,
            }],
        }
    }
    /// Rate at time `t` seconds.
    pub fn at(&self, t: f64) -> f64 {
        let seg = self
            .segments
            .iter()
            .rev()
            .find(|s| s.start_s <= t)
            .unwrap_or(&self.segments[0]);
        (seg.from + seg.slope * (t - seg.start_s)).max(0.0)
    }
    /// The highest rate over `[0, t]` seconds: a piecewise-linear profile
    /// peaks at a segment's start or end, or at `t`.
    pub fn max_over(&self, t: f64) -> f64 {
        let mut best = self.at(0.0).max(self.at(t));
        for (i, seg) in self.segments.iter().enumerate() {
            if seg.start_s > t {
                break;
            }
            best = best.max(seg.from.max(0.0));
            let end = self.segments.get(i + 1).map_or(t, |n| n.start_s.min(t));
            best = best.max((seg.from + seg.slope * (end - seg.start_s)).max(0.0));
        }
        best
    }

    /// Expected number of arrivals in `[0, t]` seconds.
    pub fn integral(&self, t: f64) -> f64 {
        let mut total = 0.0;
        for (i, s) in self.segments.iter().enumerate() {
            if s.start_s >= t {
                break;
            }
            let end = self.segments.get(i + 1).map_or(t, |n| n.start_s.min(t));
            let d = end - s.start_s;
            total += s.from * d + 0.5 * s.slope * d * d;
        }
        total
    }
    /// Time-averaged rate over `[0, t]`.
    pub fn mean_rate(&self, t: f64) -> f64 {
        if t > 0.0 {
            self.integral(t) / t
        } else {
            self.at(0.0)
        }
    }
    pub fn is_constant(&self) -> bool {
        self.segments.len() == 1 && self.segments[0].slope == 0.0
    }
}

/// Time from connect to close.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Hold {
    Constant {
        ns: u64,
    },
    Exponential {
        mean_ns: f64,
    },
    /// ln(hold in ns) ~ Normal(mu, sigma).
    LogNormal {
        mu: f64,
        sigma: f64,
    },
    Uniform {
        min_ns: u64,
        max_ns: u64,
    },
}

impl Hold {
    pub fn mean_ns(&self) -> f64 {
        match *self {
            Hold::Constant { ns } => ns as f64,
            Hold::Exponential { mean_ns } => mean_ns,
            Hold::LogNormal { mu, sigma } => (mu + sigma * sigma / 2.0).exp(),
            Hold::Uniform { min_ns, max_ns } => (min_ns as f64 + max_ns as f64) / 2.0,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Close {
    /// This host closes first: TIME_WAIT here.
    Client,
    /// The peer closes first: the port is free at close.
    Server,
    /// RST: no TIME_WAIT.
    Reset,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindMode {
    /// Unbound connect(): ports shared across destinations where the OS allows.
    Connect,
    /// bind(addr, 0) then connect(): the port is exclusive on that address.
    Bind,
    /// IP_BIND_ADDRESS_NO_PORT: a chosen source address, port picked at connect().
    BindNoPort,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pick {
    Weighted,
    RoundRobin,
}

/// `traffic.retry`: what the application does when a request fails.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Retry {
    /// The first retry's delay (and every retry's, with a fixed backoff).
    pub after_ns: u64,
    pub max: u32,
    pub backoff: Backoff,
}

/// How retry delays grow.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Backoff {
    /// Every retry waits `after`.
    Fixed,
    /// Retry `k` (1-based) waits from a base of `after × factor^(k−1)`,
    /// at most `cap_ns`, with `jitter` applied to it.
    Exponential {
        factor: f64,
        cap_ns: u64,
        jitter: Jitter,
    },
}

/// `traffic.retry.jitter`, as in the AWS Architecture Blog's
/// "Exponential Backoff and Jitter" (2015): `full` waits uniform in
/// [0, base], `equal` base/2 plus uniform in [0, base/2], `none` the base.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Jitter {
    None,
    Full,
    Equal,
}

impl Retry {
    /// The base delay of retry `k` (1-based), before jitter.
    pub fn base_ns(&self, k: u32) -> u64 {
        match self.backoff {
            Backoff::Fixed => self.after_ns,
            Backoff::Exponential { factor, cap_ns, .. } => {
                let exp = i32::try_from(k.saturating_sub(1)).unwrap_or(i32::MAX);
                let base = self.after_ns as f64 * factor.powi(exp);
                if base.is_finite() && base < cap_ns as f64 {
                    base as u64
                } else {
                    cap_ns
                }
            }
        }
    }

    /// The delay before retry `k` (1-based); `u` is uniform in [0, 1).
    pub fn delay_ns(&self, k: u32, u: f64) -> u64 {
        let base = self.base_ns(k);
        match self.backoff {
            Backoff::Fixed
            | Backoff::Exponential {
                jitter: Jitter::None,
                ..
            } => base,
            Backoff::Exponential {
                jitter: Jitter::Full,
                ..
            } => (base as f64 * u) as u64,
            Backoff::Exponential {
                jitter: Jitter::Equal,
                ..
            } => base / 2 + (base as f64 / 2.0 * u) as u64,
        }
    }

    /// Whether delays are drawn at random (so the engine needs a stream).
    pub fn jittered(&self) -> bool {
        matches!(
            self.backoff,
            Backoff::Exponential {
                jitter: Jitter::Full | Jitter::Equal,
                ..
            }
        )
    }
}

/// `traffic.pool`: the connections a client keeps per destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pool {
    /// Idle connections kept; a connection returned when this many are
    /// idle is closed.
    pub max_idle: u32,
    /// Connections open at once, idle, busy or connecting (0: no limit).
    pub max_open: u32,
    /// An idle connection closes after this long idle.
    pub idle_timeout_ns: Option<u64>,
    /// A connection is retired this long after it opened: at once when
    /// idle, else when its last request ends.
    pub max_lifetime_ns: Option<u64>,
    /// What a request does when `max_open` are open and none is free.
    pub wait: Wait,
}

/// `traffic.pool.wait`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// Fail at once.
    No,
    /// Wait until a connection is free (or the request's `timeout`).
    Forever,
    /// Wait at most this long, then fail.
    UpTo(u64),
}

/// How requests reach connections, when the scenario says more than "one
/// connection per request, opened at `rate`": a pool, virtual users,
/// streams per connection or a request timeout.
#[derive(Debug, Clone, PartialEq)]
pub struct Client {
    /// The pool; without `traffic.pool`, none is kept (`max_idle = 0`).
    pub pool: Pool,
    pub pool_given: bool,
    /// `traffic.concurrency`: a closed loop of virtual users, as
    /// (time, users from then on) in time order, the first at 0; `None`
    /// for requests arriving at `rate`.
    pub users: Option<Vec<(u64, u32)>>,
    /// `traffic.think`: a user's pause between a response and its next
    /// request.
    pub think: Hold,
    /// `traffic.streams_per_connection`: requests one connection carries
    /// at once (HTTP/2 streams).
    pub streams: u32,
    /// `traffic.timeout`: a request fails this long after it started.
    pub timeout_ns: Option<u64>,
    /// `traffic.requests_per_connection` with a pool: requests after which
    /// the connection ends (a server's keep-alive limit); `None`: no limit.
    pub request_limit: Option<u32>,
}

impl Client {
    /// The most users at any time (0 for an open loop).
    pub fn max_users(&self) -> u32 {
        self.users
            .as_ref()
            .map_or(0, |u| u.iter().map(|s| s.1).max().unwrap_or(0))
    }
}

#[derive(Debug, Clone)]
pub struct Traffic {
    pub arrivals: Arrivals,
    /// Request rate; with keep-alive, connections open at rate / requests_per_connection.
    /// For a closed loop (`client.users`), the users' rate: users ÷ (mean
    /// hold + mean think), which the engine does not read.
    pub rate: RateProfile,
    /// Hold time of one request; a connection lives for the sum over its requests.
    pub hold: Hold,
    pub close: Close,
    pub bind: BindMode,
    pub pick: Pick,
    /// How a source address is chosen when there are several.
    pub source: Pick,
    pub retry: Option<Retry>,
    pub requests_per_connection: u32,
    /// The application gives up a connect after this long (`None`: when
    /// the kernel does, after its SYN retransmissions; 0: as soon as a SYN
    /// is dropped).
    pub connect_timeout_ns: Option<u64>,
    /// `traffic.protocol`: TCP connections, or UDP request/response flows.
    pub protocol: Protocol,
    /// Pools, virtual users, streams, request timeouts (`None`: a
    /// connection per request, or per `requests_per_connection`).
    pub client: Option<Box<Client>>,
    /// `traffic.replay`: the connections to make, instead of arrivals at
    /// `rate` held for `hold` (which then only describe the trace, for
    /// the closed-form figures). Shared, so copies of a scenario (sweeps,
    /// fixes) do not copy the rows.
    pub replay: Option<std::sync::Arc<Replay>>,
}

/// `traffic.replay`: measured connections, each made at its start and
/// held exactly its hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replay {
    /// The CSV file, as the scenario's directory resolves it.
    pub file: String,
    /// The rows in start order (the file must list them so).
    pub rows: Vec<ReplayRow>,
}

/// One replayed connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayRow {
    /// Time of the connect, in ns from the run's start.
    pub start_ns: u64,
    /// From connect to close, in ns.
    pub hold_ns: u64,
    /// Index into the scenario's destinations.
    pub dest: u32,
}

impl Replay {
    /// When the last connection of the trace closes (at least 1 ns): the
    /// run's length when the scenario gives no `duration`.
    pub fn end_ns(&self) -> u64 {
        self.rows
            .iter()
            .map(|r| r.start_ns.saturating_add(r.hold_ns))
            .max()
            .unwrap_or(0)
            .max(1)
    }
}

/// `traffic.protocol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    /// TCP: a connection per request (or per `requests_per_connection`).
    #[default]
    Tcp,
    /// UDP request/response flows (DNS and the like): no TIME_WAIT.
    Udp,
}

impl Scenario {
    /// Whether a socket needs its local port to itself on its address
    /// (bind(0), or an OS whose connect() never shares a port across
    /// destinations), rather than only a unique 4-tuple.
    pub fn exclusive_ports(&self) -> bool {
        self.traffic.bind == BindMode::Bind
            || !self.host.share_across_destinations
            || self.traffic.protocol == Protocol::Udp
    }

    /// Source addresses connections use: connect() without bind() takes the
    /// first; bind() and IP_BIND_ADDRESS_NO_PORT spread over all of them.
    pub fn source_addresses(&self) -> u64 {
        match self.traffic.bind {
            BindMode::Connect => 1,
            BindMode::Bind | BindMode::BindNoPort => self.host.addresses.len() as u64,
        }
    }

    /// Whether the scenario is a fleet (`[[hosts]]`), not one `[host]`.
    pub fn is_fleet(&self) -> bool {
        !self.groups.is_empty()
    }

    /// The hosts a NAT (index `nat` of `nats`) gives ports to, at most at
    /// once: those of the groups whose path starts there (or the one host
    /// whose does), and one per outside address of each NAT whose `via`
    /// it is.
    pub fn hosts_behind(&self, nat: usize) -> u64 {
        let groups: u64 = if self.is_fleet() {
            self.groups
                .iter()
                .filter(|g| g.via == Some(nat))
                .map(|g| u64::from(g.max_count()))
                .sum()
        } else {
            u64::from(self.via == Some(nat))
        };
        let nats: u64 = self
            .nats
            .iter()
            .filter(|n| n.via == Some(nat))
            .map(|n| n.addresses.len() as u64)
            .sum();
        groups + nats
    }

    /// Hosts over all groups (1 without `[[hosts]]`).
    pub fn hosts_total(&self) -> u64 {
        if self.groups.is_empty() {
            1
        } else {
            self.groups.iter().map(|g| u64::from(g.count)).sum()
        }
    }

    /// Every destination any host connects to, each address once: the
    /// file's for one host; for a fleet, the groups' in group order (the
    /// order the engine counts them in).
    pub fn all_destinations(&self) -> Vec<&Destination> {
        if self.groups.is_empty() {
            return self.destinations.iter().collect();
        }
        let mut seen = std::collections::HashSet::new();
        self.groups
            .iter()
            .flat_map(|g| g.destinations.iter())
            .filter(|d| seen.insert(d.address.as_str()))
            .collect()
    }

    /// The scenario one host of group `g` sees: the group's host, traffic,
    /// destinations and `via`, no other group.
    pub fn group_scenario(&self, g: usize) -> Scenario {
        let grp = &self.groups[g];
        // Field by field: cloning `self` would copy every group.
        Scenario {
            name: self.name.clone(),
            description: self.description.clone(),
            seed: self.seed,
            duration_ns: self.duration_ns,
            max_connections: self.max_connections,
            host: grp.host.clone(),
            destinations: grp.destinations.clone(),
            traffic: grp.traffic.clone(),
            bin_ns: self.bin_ns,
            sweep: self.sweep.clone(),
            nats: self.nats.clone(),
            via: grp.via,
            groups: Vec::new(),
        }
    }

    /// The NATs a connection crosses, in order: `host.via`, then each NAT's
    /// `via` (at most [`nat::MAX_CHAIN`]; the loader refuses cycles).
    pub fn nat_path(&self) -> Vec<&nat::Nat> {
        let mut out = Vec::new();
        let mut next = self.via;
        while let Some(i) = next {
            if out.len() == nat::MAX_CHAIN {
                break;
            }
            out.push(&self.nats[i]);
            next = self.nats[i].via;
        }
        out
    }

    /// Time a closed connection's 4-tuple stays in TIME_WAIT on this host.
    pub fn effective_time_wait_ns(&self) -> u64 {
        match (self.traffic.protocol, self.traffic.close) {
            (Protocol::Tcp, Close::Client) => self.host.time_wait_ns,
            _ => 0,
        }
    }

    /// Expected connection attempts over the run, retries counted at their
    /// worst (every attempt retried `retry.max` times), capped by
    /// `max_connections`: the bound that refuses absurd runs.
    pub fn expected_attempts(&self) -> f64 {
        if self.is_fleet() {
            let all: f64 = (0..self.groups.len())
                .map(|g| {
                    f64::from(self.groups[g].max_count())
                        * self.group_scenario(g).expected_attempts()
                })
                .sum();
            return match self.max_connections {
                Some(m) => all.min(m as f64),
                None => all,
            };
        }
        let worst = 1.0 + self.traffic.retry.map_or(0.0, |r| f64::from(r.max));
        if let Some(r) = &self.traffic.replay {
            // Rows that start after the run's end are never made.
            let made = match self.duration_ns {
                Some(d) => r.rows.partition_point(|x| x.start_ns <= d),
                None => r.rows.len(),
            };
            let rows = made as f64 * worst;
            return self.max_connections.map_or(rows, |m| rows.min(m as f64));
        }
        let by_time = self.duration_ns.map(|d| {
            let d_s = d as f64 / NS_PER_S as f64;
            match self.traffic.client.as_deref() {
                // A closed loop: each user makes a request per hold and
                // think, or at worst, when each fails at once, one per
                // think and the pause after a failure.
                Some(c) if c.users.is_some() => {
                    let pause = FAILED_PAUSE_NS as f64;
                    let cycle = (self.traffic.hold.mean_ns() + c.think.mean_ns())
                        .min(c.think.mean_ns().max(pause))
                        .max(1.0)
                        / 1e9;
                    f64::from(c.max_users()) * d_s / cycle * worst
                }
                // At most a connection per request.
                Some(_) => self.traffic.rate.integral(d_s) * worst,
                None => {
                    self.traffic.rate.integral(d_s)
                        / f64::from(self.traffic.requests_per_connection)
                        * worst
                }
            }
        });
        match (by_time, self.max_connections) {
            // `max_connections` counts connects, which a pool may make
            // far fewer of than requests.
            (Some(t), Some(_)) if self.traffic.client.is_some() => t,
            (Some(t), Some(m)) => t.min(m as f64),
            (Some(t), None) => t,
            (None, Some(m)) => m as f64,
            (None, None) => 0.0,
        }
    }
}
