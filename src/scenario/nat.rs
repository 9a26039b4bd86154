//! `[[nat]]`: the NAT devices between the client host and its destinations,
//! as the engine runs them.
//!
//! A NAT translates each connection's source to one of its outside addresses
//! and ports and keeps the mapping in its table (netfilter's conntrack) until
//! its own timers let it go, whatever the host does with its socket. NATs are
//! listed in the file and chained by name (`host.via` names the first,
//! each NAT's `via` the next), so a pod → node → cloud NAT path is a list of
//! indices into [`super::Scenario::nats`].

//!
//! Cloud NATs are presets ([`Preset`]): one file each under `nat/`, holding
//! the vendor's numbers with their sources, which behaviours the vendor
//! leaves undocumented (and what portsim assumes for them), and the
//! vendor's own sizing formula. They share one engine
//! (`crate::sim::cloud`), since they differ in numbers and a few rules —
//! per-host blocks or a shared pool, lowest or random port, addresses in
//! turn, a per-destination cap, hold timers — not in kind.

use super::NS_PER_S;

mod aws_nat_gateway;
mod azure_lb_outbound;
mod azure_nat_gateway;
mod gcp_cloud_nat;

/// Every cloud NAT preset, by its `type` name.
pub const PRESETS: &[&Preset] = &[
    &aws_nat_gateway::PRESET,
    &azure_lb_outbound::PRESET,
    &azure_nat_gateway::PRESET,
    &gcp_cloud_nat::PRESET,
];

/// Which NAT implementation a `[[nat]]` table is.
#[derive(Debug, Clone, Copy)]
pub enum NatKind {
    /// Linux netfilter SNAT / MASQUERADE with nf_conntrack.
    Linux,
    /// A cloud NAT preset.
    Cloud(&'static Preset),
}

impl PartialEq for NatKind {
    fn eq(&self, other: &Self) -> bool {
        self.name() == other.name()
    }
}

impl Eq for NatKind {}

impl NatKind {
    /// The `type` name.
    pub fn name(&self) -> &'static str {
        match self {
            NatKind::Linux => "linux",
            NatKind::Cloud(p) => p.name,
        }
    }
}

/// How a cloud NAT gives ports to the hosts behind it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blocks {
    /// One inventory shared on demand by every host.
    Shared,
    /// A block per host, its size from the pool-size table (hosts up to
    /// the first figure get the second), or `ports_per_host`.
    Table(&'static [(u32, u32)]),
    /// A block per host of `min_ports_per_host` (default given), grown by
    /// doubling up to `max_ports_per_host` when the preset allows it.
    PerHost { default_min: u32, dynamic_min: u32 },
}

/// Which free port a cloud NAT hands out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    /// The lowest free one (of the host's block).
    Lowest,
    /// From a random offset, the next free one.
    Random,
}

/// A cloud NAT's hold timers, in ns: how long a port stays unusable toward
/// the same destination after its flow ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Holds {
    /// After a FIN close (either side).
    pub fin: u64,
    /// After a reset.
    pub rst: u64,
    /// After a SYN that got no answer (a NAT further on dropped it).
    pub half_open: u64,
    /// After a UDP flow's last packet.
    pub udp: u64,
    /// An open TCP connection's mapping goes after this long idle.
    pub idle: u64,
}

/// The vendor's own sizing rule, worked out for one scenario.
#[derive(Debug, Clone, PartialEq)]
pub struct Formula {
    /// The rule as the vendor writes it.
    pub rule: String,
    /// Where it is published (a reference key of the module doc).
    pub source: &'static str,
    /// Hosts the rule says the NAT serves (`None`: not a per-host rule).
    pub hosts_served: Option<u64>,
    /// Concurrent connections the rule allows toward one destination.
    pub per_destination: Option<u64>,
    /// Ports each host gets by the rule (`None`: shared on demand).
    pub ports_per_host: Option<u32>,
}

/// One cloud NAT type: numbers, rules and sources.
#[derive(Debug)]
pub struct Preset {
    /// `type = "…"`.
    pub name: &'static str,
    /// What users call it.
    pub title: &'static str,
    /// Outside ports on each address (inclusive).
    pub ports: (u16, u16),
    pub max_addresses: usize,
    pub blocks: Blocks,
    pub choice: Choice,
    /// Addresses are used one after the other (the first until it is
    /// full), not spread.
    pub addresses_in_turn: bool,
    /// At most this many concurrent connections per (address, destination).
    pub per_destination: Option<u32>,
    pub holds: Holds,
    /// The optional keys this type accepts besides name, type, addresses,
    /// port_range and via.
    pub keys: &'static [&'static str],
    /// What the vendor's metric calls a connection it could not map.
    pub failure_metric: &'static str,
    /// Behaviours the vendor does not document, as portsim assumes them.
    pub assumed: &'static [&'static str],
    /// The vendor's sizing rule for `nat` with `hosts` hosts behind it.
    pub formula: fn(nat: &Nat, hosts: u64) -> Formula,
}

impl PartialEq for Preset {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

/// The preset called `name`.
pub fn preset(name: &str) -> Option<&'static Preset> {
    PRESETS.iter().copied().find(|p| p.name == name)
}

/// A cloud NAT's settings once defaults are filled in.
#[derive(Debug, Clone, PartialEq)]
pub struct CloudRules {
    pub preset: &'static Preset,
    /// Each host's block (`None`: the pool-size table, or a shared pool).
    pub ports_per_host: Option<u32>,
    /// With dynamic allocation, the most a host's block grows to (equal to
    /// `ports_per_host` when static).
    pub max_ports_per_host: Option<u32>,
    /// Dynamic allocation: how long a doubling takes, new flows of the
    /// host dropped meanwhile.
    pub grow_lag_ns: u64,
    /// Endpoint-independent mapping: a source keeps one outside port for
    /// every destination.
    pub endpoint_independent: bool,
    pub holds: Holds,
    /// What this table leaves to portsim's assumptions, for the summary.
    pub assumed: Vec<String>,
}

impl CloudRules {
    /// Each host's block under the pool-size table for `hosts` hosts (0:
    /// past the table).
    pub fn table_ports(table: &[(u32, u32)], hosts: u32) -> u32 {
        table
            .iter()
            .find(|&&(upto, _)| hosts <= upto)
            .map_or(0, |&(_, p)| p)
    }

    /// Whether dynamic allocation is on.
    pub fn dynamic(&self) -> bool {
        self.max_ports_per_host > self.ports_per_host
    }
}

/// How a Linux NAT picks the outside port (`masquerade` flags).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NatMode {
    /// Keep the host's source port when its reply tuple is free, else a
    /// random search of the range (no flag).
    Preserve,
    /// `random`: on current kernels the same as `random-fully`.
    Random,
    /// `random-fully`: always a random search, never the host's port.
    RandomFully,
}

/// nf_conntrack's TCP timeouts (`net.netfilter.nf_conntrack_tcp_timeout_*`),
/// in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConntrackTimeouts {
    pub syn_sent: u64,
    pub established: u64,
    pub fin_wait: u64,
    pub close_wait: u64,
    pub last_ack: u64,
    pub time_wait: u64,
    pub close: u64,
    /// `nf_conntrack_udp_timeout`: a UDP flow's entry after its last packet.
    pub udp: u64,
}

impl Default for ConntrackTimeouts {
    /// The kernel's defaults (Documentation/networking/nf_conntrack-sysctl.rst).
    fn default() -> Self {
        let s = NS_PER_S;
        ConntrackTimeouts {
            syn_sent: 120 * s,
            established: 432_000 * s,
            fin_wait: 120 * s,
            close_wait: 60 * s,
            last_ack: 30 * s,
            time_wait: 120 * s,
            close: 10 * s,
            udp: 30 * s,
        }
    }
}

/// The kernel's `nf_conntrack_max` on a machine with 4 GiB or more (the
/// bucket count, capped at 262,144).
pub const DEFAULT_MAX_ENTRIES: u64 = 262_144;

/// At most this many NATs along one path (the loader refuses longer chains).
pub const MAX_CHAIN: usize = 4;

/// A validated `[[nat]]` table.
#[derive(Debug, Clone)]
pub struct Nat {
    pub name: String,
    pub kind: NatKind,
    /// Outside addresses (text, for reports). At least one.
    pub addresses: Vec<String>,
    /// Inclusive range of outside ports on each address.
    pub port_lo: u16,
    pub port_hi: u16,
    pub mode: NatMode,
    /// `persistent`: the outside address depends on the source alone, not
    /// on the destination too.
    pub persistent: bool,
    pub timeouts: ConntrackTimeouts,
    /// `nf_conntrack_max`: a full table drops new connections.
    pub max_entries: u64,
    /// The next NAT along the path (an index into `Scenario::nats`).
    pub via: Option<usize>,
    /// A cloud NAT's rules (`None` for Linux).
    pub cloud: Option<CloudRules>,
}

impl Nat {
    /// Outside ports on each address.
    pub fn range_size(&self) -> u32 {
        u32::from(self.port_hi) - u32::from(self.port_lo) + 1
    }

    /// How long the NAT keeps a port (or conntrack entry) after a flow of
    /// kind `close` and `protocol` ends.
    pub fn hold_after(&self, close: super::Close, protocol: super::Protocol) -> u64 {
        use super::{Close, Protocol};
        match &self.cloud {
            Some(c) => match (protocol, close) {
                (Protocol::Udp, _) => c.holds.udp,
                (Protocol::Tcp, Close::Reset) => c.holds.rst,
                (Protocol::Tcp, _) => c.holds.fin,
            },
            None => match (protocol, close) {
                (Protocol::Udp, _) => self.timeouts.udp,
                (Protocol::Tcp, Close::Reset) => self.timeouts.close,
                (Protocol::Tcp, _) => self.timeouts.time_wait,
            },
        }
    }

    /// The vendor's sizing rule for this NAT with `hosts` hosts behind it
    /// (`None` for Linux, which has none).
    pub fn formula(&self, hosts: u64) -> Option<Formula> {
        self.cloud.as_ref().map(|c| (c.preset.formula)(self, hosts))
    }
}
