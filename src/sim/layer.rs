//! The port layers a connection crosses on its way to a destination, and
//! what the event loop asks of each.
//!
//! A connection takes a port at every layer that translates it: the client
//! host's own port, then a mapping at each NAT device in between (a node's
//! MASQUERADE, a cloud NAT). Each layer can refuse an attempt, and each
//! decides what it still holds after the connection closes (the host keeps
//! the 4-tuple in TIME_WAIT; a NAT keeps its mapping for a timeout), so each
//! schedules its own timers. [`PortLayer`] is that contract: open, close,
//! and timer handling (when is something next due, process what is due).
//!
//! The engine is generic over its layers rather than holding `dyn` ones, so
//! a layer's calls inline into the loop; [`Direct`], the layer between host
//! and destination when there is no NAT, is zero-sized and every call on it
//! is a constant, so the single-host path compiles to what it would be
//! without the seam.
//!
//! Timers of different kinds fall due at the same instant; their order is
//! part of the model (ports freed at an instant are usable at that instant),
//! so due times are compared as [`Due`] keys: a time, then a [`Phase`].
//!
//! [`Site`] names one layer of one host (or device): observer events and
//! random streams are keyed by it, so a new layer or host draws from its own
//! streams and never shifts the draws of the others.

use super::record::Recorder;
use super::Observer;

/// Which layer of which host (or device) something belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Site {
    /// Position along the path: [`Site::HOST_LAYER`] for client hosts,
    /// then one per NAT tier.
    pub layer: u16,
    /// Which host (or device) of that layer.
    pub host: u32,
}

impl Site {
    /// The layer of the client hosts themselves.
    pub const HOST_LAYER: u16 = 0;
    /// The host layer of the first (today, the only) client host.
    pub const HOST0: Site = Site {
        layer: Site::HOST_LAYER,
        host: 0,
    };
}

/// Where an attempt's connection stands as it crosses a layer: the source
/// address and port index it presents, and its destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Path {
    pub addr: u32,
    pub port: u32,
    pub dest: u32,
    /// Which SYN of the connect this is.
    pub syn: Syn,
}

/// Which SYN of a connect crosses the layers: a NAT counts a connect once
/// (at its first SYN) and a failure once (at its last), and every SYN it
/// drops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Syn {
    /// The first SYN of the connect to reach this layer (set by whoever
    /// walks the path, from `reached`).
    pub first: bool,
    /// An earlier SYN of the connect got through this layer (a later one
    /// dropped it), so the layer let this connect through already.
    pub passed: bool,
    /// No SYN follows if this one is dropped.
    pub last: bool,
    /// How many NATs along the path the connect's previous SYN reached (0
    /// for its first SYN): NATs beyond see the connect for the first time.
    pub reached: u8,
}

impl Syn {
    /// A connect's only SYN.
    pub const ONLY: Syn = Syn {
        first: true,
        passed: false,
        last: true,
        reached: 0,
    };

    /// This SYN at the NAT at `position` (0-based) along the path.
    #[inline]
    pub fn at(self, position: usize) -> Syn {
        Syn {
            first: position >= usize::from(self.reached),
            passed: position + 1 < usize::from(self.reached),
            ..self
        }
    }
}

/// A layer refused an attempt: no port (or mapping) was left for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    /// The layer that refused, so the failure is charged to it.
    pub site: Site,
    pub cause: Cause,
}

/// Why a layer refused a connect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// No free port (or outside port toward this destination).
    NoPort,
    /// A NAT's conntrack table was full.
    TableFull,
    /// The host has no block of the cloud NAT's ports.
    NoBlock,
    /// The address's cap of connections to one destination was reached
    /// (AWS 55,000, Azure NAT gateway 50,000) on every address.
    PerDestination,
    /// Endpoint-independent mapping: the source's outside port is taken
    /// toward this destination by another source.
    EimConflict,
    /// Dynamic allocation: the host's block is being doubled.
    Growing,
}

/// At one instant, which timers go first. A layer's own timers are
/// [`Phase::Release`] (they free what a layer holds, before closes) or
/// [`Phase::Settle`] (after closes); [`Phase::Close`] and [`Phase::End`]
/// are the bounds the engine processes up to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    /// Ends of holds after close (TIME_WAIT, NAT mapping timeouts).
    Release,
    /// Connections closing: the engine's own timer.
    Close,
    /// Changes that only make more ports usable (tcp_tw_reuse eligibility).
    Settle,
    /// After everything at that instant: the bound for an attempt's drain.
    End,
}

/// A point in the run's order of events: a time, then a phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Due {
    pub t: u64,
    pub phase: Phase,
}

impl Due {
    /// Nothing is due: every bound is before it.
    pub const NEVER: Due = Due {
        t: u64::MAX,
        phase: Phase::End,
    };

    #[inline]
    pub fn new(t: u64, phase: Phase) -> Due {
        Due { t, phase }
    }

    /// The bound just after an event key: everything at or before `self`.
    #[inline]
    pub fn just_after(self) -> Due {
        let phase = match self.phase {
            Phase::Release => Phase::Close,
            Phase::Close => Phase::Settle,
            Phase::Settle | Phase::End => Phase::End,
        };
        Due { t: self.t, phase }
    }
}

/// What a layer may touch while it works: the run's observer and its
/// measurement.
pub struct Ctx<'a, O: Observer> {
    pub obs: &'a mut O,
    pub rec: &'a mut Recorder,
}

/// One layer of ports along a connection's path.
pub trait PortLayer {
    /// What the layer keeps for one open connection, handed back at close.
    type Held: Copy;

    /// An attempt at `t` reaches this layer as `path`: take a port (or
    /// mapping) for it and return what the connection presents beyond this
    /// layer, or refuse. The host layer originates the path: it fills in
    /// the source address and port and uses only `path.dest`.
    fn open<O: Observer>(
        &mut self,
        t: u64,
        path: Path,
        cx: &mut Ctx<'_, O>,
    ) -> Result<(Self::Held, Path), Refused>;

    /// The connection ends at `t`: the layer decides what it holds on to
    /// (and schedules when to let it go) and frees the rest.
    fn close<O: Observer>(&mut self, t: u64, held: Self::Held, cx: &mut Ctx<'_, O>);

    /// A layer further along refused the attempt this layer opened at `t`:
    /// let go of what `open` took (a NAT keeps its unreplied entry for its
    /// SYN_SENT timeout).
    fn abort<O: Observer>(&mut self, t: u64, held: Self::Held, cx: &mut Ctx<'_, O>);

    /// The key of the earliest timer of this layer ([`Due::NEVER`]: none).
    fn next_due(&self) -> Due;

    /// Process, earliest first, every timer whose key is before `until`.
    fn run_due<O: Observer>(&mut self, until: Due, cx: &mut Ctx<'_, O>);

    /// A connect whose last SYN the layer at `site` refused for `cause` was
    /// still waiting to give up when the run ended: not a failure yet.
    fn still_connecting(&mut self, _site: Site, _cause: Cause) {}

    /// How many NATs this layer holds (each a layer of the path).
    fn nat_count(&self) -> usize {
        0
    }

    /// What each NAT of this layer measured, up to `end` (none for a layer
    /// that is not a NAT).
    fn nat_figures(&mut self, _end: u64) -> Vec<NatFigures> {
        Vec::new()
    }
}

/// What a NAT measured over a run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NatFigures {
    pub attempts: u64,
    pub failures_no_port: u64,
    pub failures_table_full: u64,
    /// Most conntrack entries (open and held after close) at once.
    pub peak_mappings: u64,
    /// Time-averaged entries.
    pub mean_mappings: f64,
    /// Most outside ports of one address in use at once (by any entry).
    pub peak_ports_per_address: u32,
    /// Mappings that kept the host's source port.
    pub ports_preserved: u64,
    /// Distinct (address, port) pairs ever used.
    pub distinct_ports: u64,
    /// When this NAT first dropped a SYN.
    pub first_failure_ns: Option<u64>,
    /// SYNs it dropped: first SYNs and retransmissions.
    pub syns_dropped: u64,
    /// Connects given an outside tuple whose last connection the server
    /// closed less than its TIME_WAIT before.
    pub stale_reuse: u64,
    /// Closed entries a new SYN evicted to take their tuple.
    pub evicted: u64,
    /// Cloud NATs: failures by their own causes.
    pub failures_no_block: u64,
    pub failures_per_destination: u64,
    pub failures_eim_conflict: u64,
    pub failures_growing: u64,
    /// What a cloud NAT measured besides.
    pub cloud: Option<Box<CloudFigures>>,
}

impl Cause {
    /// Every cause, in the order of [`Cause::index`].
    pub const ALL: [Cause; 6] = [
        Cause::NoPort,
        Cause::TableFull,
        Cause::NoBlock,
        Cause::PerDestination,
        Cause::EimConflict,
        Cause::Growing,
    ];

    /// A small index for per-cause counts.
    pub fn index(self) -> usize {
        self as usize
    }
}

impl NatFigures {
    /// The failure count of `cause`.
    pub fn failures_for(&mut self, cause: Cause) -> &mut u64 {
        match cause {
            Cause::NoPort => &mut self.failures_no_port,
            Cause::TableFull => &mut self.failures_table_full,
            Cause::NoBlock => &mut self.failures_no_block,
            Cause::PerDestination => &mut self.failures_per_destination,
            Cause::EimConflict => &mut self.failures_eim_conflict,
            Cause::Growing => &mut self.failures_growing,
        }
    }

    /// The failure count of `cause`, to read.
    pub fn failures_of(&self, cause: Cause) -> u64 {
        [
            self.failures_no_port,
            self.failures_table_full,
            self.failures_no_block,
            self.failures_per_destination,
            self.failures_eim_conflict,
            self.failures_growing,
        ][cause.index()]
    }

    /// Failures over all causes.
    pub fn failures(&self) -> u64 {
        self.failures_no_port
            + self.failures_table_full
            + self.failures_no_block
            + self.failures_per_destination
            + self.failures_eim_conflict
            + self.failures_growing
    }
}

/// What a cloud NAT measured beyond what every NAT does.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CloudFigures {
    /// Hosts that were, at some time, behind the NAT without a block.
    pub hosts_without_ports: u32,
    /// Hosts behind the NAT (at most at once).
    pub hosts: u32,
    /// The block of each host at the start, and the smallest and largest
    /// any host had (0 with a shared pool).
    pub ports_per_host_at_start: u32,
    pub min_ports_per_host: u32,
    pub max_ports_per_host: u32,
    /// Most ports of its block one host had in use at once (a port may
    /// serve several destinations); with a shared pool, most mappings one
    /// host held.
    pub peak_ports_used_per_host: u32,
    /// The fullest any host's block got: its ports in use then, and its
    /// size then (a scale event or a doubling changes a block's size).
    pub fullest_block: (u32, u32),
    /// Most connections one (address, destination) pair held at once.
    pub peak_per_destination: u32,
    /// Flows dropped because a scale event reclaimed their ports.
    pub flows_dropped_by_scale: u64,
    /// Doublings of a block (dynamic allocation), and those that found no
    /// ports.
    pub blocks_grown: u64,
    pub growth_failed: u64,
    /// Per outside address: most ports in use at once, and hosts with a
    /// block on it at the end.
    pub address_peaks: Vec<u32>,
    pub address_hosts: Vec<u32>,
}

/// The layer between host and destination when nothing translates: it takes
/// nothing, refuses nothing and has no timers.
#[derive(Debug, Clone, Copy, Default)]
pub struct Direct;

impl PortLayer for Direct {
    type Held = ();

    #[inline(always)]
    fn open<O: Observer>(
        &mut self,
        _: u64,
        path: Path,
        _: &mut Ctx<'_, O>,
    ) -> Result<((), Path), Refused> {
        Ok(((), path))
    }

    #[inline(always)]
    fn close<O: Observer>(&mut self, _: u64, _: (), _: &mut Ctx<'_, O>) {}

    #[inline(always)]
    fn abort<O: Observer>(&mut self, _: u64, _: (), _: &mut Ctx<'_, O>) {}

    #[inline(always)]
    fn next_due(&self) -> Due {
        Due::NEVER
    }

    #[inline(always)]
    fn run_due<O: Observer>(&mut self, _: Due, _: &mut Ctx<'_, O>) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_keys_order_by_time_then_phase() {
        let close = Due::new(5, Phase::Close);
        assert!(Due::new(5, Phase::Release) < close);
        assert!(Due::new(5, Phase::Settle) > close);
        assert!(Due::new(4, Phase::Settle) < close);
        assert!(Due::new(5, Phase::Settle) < Due::new(5, Phase::End));
        assert!(Due::new(u64::MAX - 1, Phase::End) < Due::NEVER);
        // The bound just after an event admits it and what ties with it
        // in an earlier phase, nothing later.
        let ev = Due::new(7, Phase::Release);
        assert!(ev < ev.just_after());
        assert!(Due::new(7, Phase::Settle) > ev.just_after());
        let ev = Due::new(7, Phase::Settle);
        assert!(ev < ev.just_after());
        assert!(Due::new(8, Phase::Release) > ev.just_after());
    }

    #[test]
    fn direct_passes_the_path_through_and_holds_nothing() {
        assert_eq!(std::mem::size_of::<Direct>(), 0);
        let mut rec = Recorder::new(1_000_000, true);
        let mut obs = super::super::Quiet;
        let mut cx = Ctx {
            obs: &mut obs,
            rec: &mut rec,
        };
        let p = Path {
            addr: 3,
            port: 41,
            dest: 9,
            syn: Syn::ONLY,
        };
        assert_eq!(Direct.open(10, p, &mut cx), Ok(((), p)));
        assert_eq!(Direct.next_due(), Due::NEVER);
    }
}
