//! `[[nat]]`: the NAT devices between the client host and its destinations,
//! as the engine runs them.
//!
//! A NAT translates each connection's source to one of its outside addresses
//! and ports and keeps the mapping in its table (netfilter's conntrack) until
//! its own timers let it go, whatever the host does with its socket. NATs are
//! listed in the file and chained by name (`host.via` names the first,
//! each NAT's `via` the next), so a pod → node → cloud NAT path is a list of
//! indices into [`super::Scenario::nats`].

use super::NS_PER_S;

/// Which NAT implementation a `[[nat]]` table is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NatKind {
    /// Linux netfilter SNAT / MASQUERADE with nf_conntrack.
    Linux,
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
}

impl Nat {
    /// Outside ports on each address.
    pub fn range_size(&self) -> u32 {
        u32::from(self.port_hi) - u32::from(self.port_lo) + 1
    }
}
