//! NAT devices as port layers: Linux netfilter SNAT / MASQUERADE with
//! nf_conntrack ([`LinuxNat`]), and [`NatChain`], the NATs a connection
//! crosses in turn (pod → node → cloud).
//!
//! A Linux NAT follows `get_unique_tuple` in `net/netfilter/nf_nat_core.c`:
//! 1. unless `random`/`random-fully`, reuse the mapping of a live entry with
//!    the same original source (`find_appropriate_src`) if its reply tuple
//!    is free for this destination;
//! 2. pick the outside address as `find_best_ips_proto` does: the kernel's
//!    `jhash2` of the source's IPv4 address, seeded by the destination's
//!    (by 0 when `persistent`), scaled onto the addresses
//!    ([`super::jhash`]);
//! 3. unless random, keep the source port when it is in the NAT's range and
//!    its reply tuple is free;
//! 4. else `nf_nat_l4proto_unique_tuple`: a random 16-bit offset, up to
//!    min(range, 128) candidates in a row; if all are taken, half as many
//!    from a new random offset, until a round has fewer than 16 (or covered
//!    the whole range): then the SYN is dropped.
//!
//! "Taken" is per reply tuple (outside address, outside port, destination):
//! one outside port serves any number of destinations at once. A mapping
//! lives in the conntrack table until its timer after close ends:
//! `time_wait` after a FIN close (whichever side sent it first), `close`
//! after a reset, `syn_sent` for a SYN a later NAT dropped. A full table
//! (`max_entries`) drops new connections. Step 2 needs the addresses, not
//! the indices the engine passes around, so each NAT with several outside
//! addresses keeps the IPv4 address behind each index ([`Ips`]): with both
//! a flow gets the very address a real box gives it (the kernel suite
//! checks it); where either is IPv6, a fixed hash of the indices stands in
//! (the flows spread alike, over other addresses).

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr};

use rand::RngExt;
use rand_chacha::ChaCha8Rng;

use super::layer::{Cause, Ctx, Due, Path, Phase, PortLayer, Refused, Site};
use super::traffic::{rng, stream, Stream};
use super::Observer;
use crate::ports::fastmap::FastMap;
use crate::scenario::nat::{Nat, NatMode};
use crate::scenario::{Close, Protocol, Scenario};

/// Most candidates one round of `nf_nat_l4proto_unique_tuple` probes.
const MAX_ATTEMPTS: u32 = 128;
/// A round with fewer candidates than this is the last.
const MIN_ROUND: u32 = 16;

pub use super::layer::NatFigures;

/// One conntrack entry, as the connection holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mapping {
    /// The reply tuple: outside address, outside port index, destination.
    pub(super) reply: u64,
    /// The original source: upstream address and port index.
    pub(super) source: u64,
    /// Which entry of that reply tuple this is.
    pub(super) stamp: u64,
}

impl Mapping {
    /// No mapping: a NAT the connection does not cross.
    pub const NONE: Mapping = NO_MAPPING;
}

const NO_MAPPING: Mapping = Mapping {
    reply: u64::MAX,
    source: u64::MAX,
    stamp: u64::MAX,
};

/// Where a live conntrack entry stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// The connection is open.
    Open,
    /// Closed: TIME_WAIT after a FIN, CLOSE after a reset.
    Closed,
    /// Unreplied: a NAT further along dropped its SYN.
    SynSent,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    state: State,
    stamp: u64,
    source: u64,
}

/// Mappings a NAT holds after their flow ended, until their timers: one
/// FIFO per hold length, each in expiry order since its entries all last
/// as long, so the earliest timer of all is the earliest head. Queues are
/// tried in the order they were made, which orders timers at one instant.
#[derive(Debug, Default)]
pub struct Held {
    queues: Vec<(u64, VecDeque<(u64, Mapping)>)>,
}

impl Held {
    /// Hold `m` from `t` for `ns`.
    pub fn push(&mut self, t: u64, ns: u64, m: Mapping) {
        let i = match self.queues.iter().position(|(h, _)| *h == ns) {
            Some(i) => i,
            None => {
                self.queues.push((ns, VecDeque::new()));
                self.queues.len() - 1
            }
        };
        self.queues[i].1.push_back((t.saturating_add(ns), m));
    }

    /// The earliest timer ([`Due::NEVER`]: none).
    pub fn next_due(&self) -> Due {
        self.queues
            .iter()
            .filter_map(|(_, q)| q.front())
            .map(|e| Due::new(e.0, Phase::Release))
            .min()
            .unwrap_or(Due::NEVER)
    }

    /// The earliest held mapping if its timer is before `until`, taken
    /// out, with its time.
    pub fn pop_before(&mut self, until: Due) -> Option<(u64, Mapping)> {
        let next = self.next_due();
        if next >= until || next == Due::NEVER {
            return None;
        }
        self.queues
            .iter_mut()
            .find(|(_, q)| q.front().is_some_and(|e| e.0 == next.t))
            .and_then(|(_, q)| q.pop_front())
    }
}

/// In the last this many candidates of a round, a SYN may evict a closed
/// entry that holds the tuple (`NF_NAT_HARDER_THRESH`, kernel 6.5+).
const HARDER_THRESH: u32 = MAX_ATTEMPTS / 4;

/// What [`LinuxNat::unique_port`]'s search costs when every candidate is
/// taken and each one in the last [`HARDER_THRESH`] of a round is a closed
/// entry that the SYN takes over with probability `take_over`: the
/// expected candidates tried, and the probability that none was taken over
/// (the SYN is dropped). With `take_over` 0 that is the whole search, and
/// certain to fail.
pub fn search_when_full(range: u32, take_over: f64) -> (f64, f64) {
    let mut round = range.min(MAX_ATTEMPTS);
    let (mut tried, mut going) = (0.0, 1.0);
    loop {
        for i in 0..round {
            tried += going;
            if round - i <= HARDER_THRESH {
                going *= 1.0 - take_over;
            }
        }
        if round >= range || round < MIN_ROUND {
            return (tried, going);
        }
        round /= 2;
    }
}

/// A reply tuple as one key: outside address, port index, destination.
pub(super) fn reply_key(addr: u32, port: u32, dest: u32) -> u64 {
    (u64::from(dest) << 32) | (u64::from(addr) << 16) | u64::from(port)
}

/// An original source as one key: upstream address and port index.
pub(super) fn source_key(addr: u32, port: u32) -> u64 {
    (u64::from(addr) << 32) | u64::from(port)
}

/// The IPv4 addresses behind the address indices a NAT receives, and the
/// destinations', for the address hash. Kept as blocks (a host group, a
/// NAT's outside addresses) rather than one entry per index, so a fleet of
/// a million hosts costs a few words per group.
#[derive(Debug, Default)]
struct Ips {
    /// By first index, ascending.
    blocks: Vec<Block>,
    dests: Vec<Option<Ipv4Addr>>,
}

/// `count` hosts (or one NAT) of `per` addresses each, from index `start`:
/// index `start + j·per + k` is address `k` of host `j`
/// ([`crate::scenario::HostGroup::host_address`]).
#[derive(Debug)]
struct Block {
    start: u32,
    /// Indices in the block: `count` hosts × `per`.
    len: u32,
    per: u32,
    /// The first host's addresses.
    first: Vec<IpAddr>,
}

impl Block {
    fn new(start: u32, addresses: &[String], count: u32) -> Block {
        Block {
            start,
            len: (addresses.len() as u32).saturating_mul(count),
            per: addresses.len().max(1) as u32,
            first: addresses.iter().filter_map(|a| a.parse().ok()).collect(),
        }
    }

    fn get(&self, offset: u32) -> Option<Ipv4Addr> {
        if offset >= self.len {
            return None;
        }
        let (j, k) = (offset / self.per, offset % self.per);
        match crate::scenario::HostGroup::host_address(&self.first, j, k as usize)? {
            IpAddr::V4(a) => Some(a),
            IpAddr::V6(_) => None,
        }
    }
}

impl Ips {
    /// What the NAT at path position `layer - 1` of `sc` receives. A
    /// fleet's NATs see global indices, numbered as the fleet numbers them
    /// (`super::fleet`): each host of each group in file order, then each
    /// NAT's outside addresses in file order. A single host's chain hands
    /// each NAT the indices of the layer before: the host's addresses, or
    /// the outside addresses of the NAT before.
    fn new(sc: &Scenario, layer: u16) -> Ips {
        let mut blocks = Vec::new();
        if sc.is_fleet() {
            let mut start = 0u32;
            for g in &sc.groups {
                let b = Block::new(start, &g.host.addresses, g.max_count());
                start = start.saturating_add(b.len);
                blocks.push(b);
            }
            for n in &sc.nats {
                blocks.push(Block::new(start, &n.addresses, 1));
                start = start.saturating_add(n.addresses.len() as u32);
            }
        } else {
            let path = sc.nat_path();
            let upstream = match usize::from(layer) {
                0 | 1 => &sc.host.addresses,
                i => path.get(i - 2).map_or(&sc.host.addresses, |n| &n.addresses),
            };
            blocks.push(Block::new(0, upstream, 1));
        }
        let dests = sc.all_destinations().iter().map(|d| d.ipv4()).collect();
        Ips { blocks, dests }
    }

    fn source(&self, index: u32) -> Option<Ipv4Addr> {
        let i = self.blocks.partition_point(|b| b.start <= index);
        let b = self.blocks.get(i.checked_sub(1)?)?;
        b.get(index - b.start)
    }

    fn dest(&self, index: u32) -> Option<Ipv4Addr> {
        self.dests.get(index as usize).copied().flatten()
    }
}

/// Linux netfilter NAT with nf_conntrack: one [`Nat`] table of a scenario.
pub struct LinuxNat {
    site: Site,
    addresses: u32,
    port_lo: u32,
    range: u32,
    mode: NatMode,
    persistent: bool,
    max_entries: u64,
    /// Hold after the scenario's close (conntrack TIME_WAIT after a FIN,
    /// CLOSE after a reset), and after a SYN dropped further on.
    hold_close_ns: u64,
    hold_syn_ns: u64,
    /// The port number of index 0 of the layer before (host or NAT).
    upstream_lo: u32,
    /// Live entries by reply tuple: their state, and a stamp that tells a
    /// timer of an entry evicted early from the entry now in its place.
    used: FastMap<u64, Entry>,
    /// Live entries by original tuple (source and destination).
    by_orig: FastMap<(u64, u32), u64>,
    next_stamp: u64,
    /// Live entries per original source, and the mapping of the first.
    sources: FastMap<u64, (u32, u32, u32)>,
    /// Live entries per (address, port), for ports in use per address.
    port_refs: Vec<u32>,
    ports_in_use: Vec<u32>,
    ever_used: Vec<bool>,
    /// Entries held after close and after a SYN dropped further on.
    held: Held,
    entries: u64,
    rng: ChaCha8Rng,
    seed: u64,
    area: u128,
    last_t: u64,
    figures: NatFigures,
    /// The IPv4 addresses the address hash reads.
    ips: Ips,
    /// Per destination (as the path numbers them), the server's TIME_WAIT
    /// after it closes first.
    server_tw_ns: Vec<u64>,
    /// Whether the scenario's server closes first (a fleet says per close).
    server_closes: bool,
    /// Whether the flows are TCP (every group's, in a fleet): only closed
    /// TCP entries may be evicted.
    tcp: bool,
    /// Reply tuples whose last connection the server closed, and when.
    server_closed: FastMap<u64, u64>,
}

impl LinuxNat {
    /// The NAT `nat` at `site`, behind a layer whose port indices start at
    /// `upstream_lo`.
    pub fn new(sc: &Scenario, nat: &Nat, site: Site, upstream_lo: u16) -> LinuxNat {
        let addresses = nat.addresses.len() as u32;
        let range = nat.range_size();
        let t = &nat.timeouts;
        let cells = addresses as usize * range as usize;
        LinuxNat {
            site,
            addresses,
            port_lo: u32::from(nat.port_lo),
            range,
            mode: nat.mode,
            persistent: nat.persistent,
            max_entries: nat.max_entries,
            hold_close_ns: nat.hold_after(sc.traffic.close, sc.traffic.protocol),
            hold_syn_ns: t.syn_sent,
            upstream_lo: u32::from(upstream_lo),
            used: FastMap::default(),
            by_orig: FastMap::default(),
            next_stamp: 0,
            sources: FastMap::default(),
            port_refs: vec![0; cells],
            ports_in_use: vec![0; addresses as usize],
            ever_used: vec![false; cells],
            held: Held::default(),
            entries: 0,
            rng: rng(sc.seed, Stream::at(site, stream::ALLOCATOR)),
            seed: sc.seed,
            area: 0,
            last_t: 0,
            figures: NatFigures::default(),
            ips: if addresses > 1 {
                Ips::new(sc, site.layer)
            } else {
                Ips::default()
            },
            server_tw_ns: sc
                .all_destinations()
                .iter()
                .map(|d| d.time_wait_ns.unwrap_or(sc.host.time_wait_ns))
                .collect(),
            server_closes: sc.traffic.close == Close::Server,
            tcp: sc.traffic.protocol == Protocol::Tcp
                && sc
                    .groups
                    .iter()
                    .all(|g| g.traffic.protocol == Protocol::Tcp),
            server_closed: FastMap::default(),
        }
    }

    /// The connection of `m` closed at `t`: conntrack keeps the entry for
    /// `ns` (its `time_wait` after a FIN, `close` after a reset).
    pub fn close_after<O: Observer>(
        &mut self,
        t: u64,
        m: Mapping,
        ns: u64,
        server_closed: bool,
        cx: &mut Ctx<'_, O>,
    ) {
        if server_closed {
            self.server_closed.insert(m.reply, t);
        }
        if ns == 0 {
            let before = self.entries;
            self.release(t, m);
            self.report(t, before, cx);
        } else {
            self.hold(t, m, ns, State::Closed);
        }
    }

    fn advance(&mut self, t: u64) {
        if t > self.last_t {
            self.area += u128::from(self.entries) * u128::from(t - self.last_t);
            self.last_t = t;
        }
    }

    fn free(&self, addr: u32, port: u32, dest: u32) -> bool {
        !self.used.contains_key(&reply_key(addr, port, dest))
    }

    /// `nf_nat_used_tuple_harder` near the end of a round: a closed entry
    /// (TIME_WAIT or CLOSE) that holds the tuple is evicted when the new
    /// SYN's sequence number is past the old one's, which for an unrelated
    /// connection is a coin toss (the kernel measured here: 12 of 24).
    fn free_harder(&mut self, t: u64, addr: u32, port: u32, dest: u32) -> bool {
        let key = reply_key(addr, port, dest);
        match self.used.get(&key) {
            None => true,
            // Only a closing TCP connection can be taken over (the UDP
            // tracker has no such state).
            Some(e) if e.state == State::Closed && self.tcp && self.rng.random::<bool>() => {
                let m = Mapping {
                    reply: key,
                    source: e.source,
                    stamp: e.stamp,
                };
                self.release(t, m);
                self.figures.evicted += 1;
                true
            }
            Some(_) => false,
        }
    }

    /// The outside address for a source address and destination, as
    /// `find_best_ips_proto` picks it: never from the ports, so every
    /// connection of one client to one destination leaves from one outside
    /// address. With the IPv4 addresses of both, exactly the kernel's
    /// `jhash2` of the source seeded by the destination (0 with
    /// `persistent`), scaled onto the addresses ([`super::jhash`]). Where
    /// the model has no IPv4 address for either (IPv6, or a host address
    /// past the end of the address space), a fixed hash of the indices
    /// and the seed instead: the flows spread alike, on other addresses.
    fn address_for(&self, source_addr: u32, dest: u32) -> u32 {
        if self.addresses <= 1 {
            return 0;
        }
        // `persistent` seeds the hash with 0: no destination needed.
        let dst = if self.persistent {
            Some(Ipv4Addr::UNSPECIFIED)
        } else {
            self.ips.dest(dest)
        };
        if let (Some(src), Some(dst)) = (self.ips.source(source_addr), dst) {
            return super::jhash::nat_address_index(src, dst, self.addresses, self.persistent);
        }
        let source = u64::from(source_addr);
        let d = if self.persistent {
            0
        } else {
            u64::from(dest) + 1
        };
        let h = crate::util::mix64(source ^ d.rotate_left(40) ^ self.seed.rotate_left(17));
        ((u64::from(h as u32) * u64::from(self.addresses)) >> 32) as u32
    }

    /// The IPv4 address behind upstream address index `i`, as the hash
    /// reads it.
    #[cfg(test)]
    pub(crate) fn source_ip(&self, i: u32) -> Option<Ipv4Addr> {
        self.ips.source(i)
    }

    /// Where this NAT is.
    pub fn site(&self) -> Site {
        self.site
    }

    /// The outside address index a connection from upstream address index
    /// `source` to destination index `dest` leaves from (indices as this
    /// NAT receives them: a fleet's global ones, or the layer before's).
    pub fn outside_address(&self, source: u32, dest: u32) -> u32 {
        self.address_for(source, dest)
    }

    /// `nf_nat_l4proto_unique_tuple`: a free port index, or none.
    fn unique_port(&mut self, t: u64, addr: u32, dest: u32) -> Option<u32> {
        let mut attempts = self.range.min(MAX_ATTEMPTS);
        let mut off: u16 = self.rng.random();
        loop {
            for i in 0..attempts {
                let port = u32::from(off) % self.range;
                let free = if attempts - i > HARDER_THRESH {
                    self.free(addr, port, dest)
                } else {
                    self.free_harder(t, addr, port, dest)
                };
                if free {
                    return Some(port);
                }
                off = off.wrapping_add(1);
            }
            if attempts >= self.range || attempts < MIN_ROUND {
                return None;
            }
            attempts /= 2;
            off = self.rng.random();
        }
    }

    /// `get_unique_tuple`: the outside (address, port index) for a new
    /// connection from `path`, and whether it kept the source port.
    fn choose(&mut self, t: u64, path: Path) -> Option<(u32, u32, bool)> {
        let source = source_key(path.addr, path.port);
        // A SYN on the tuple of a closed entry (the host reused its port
        // toward the same destination) deletes it and starts afresh.
        if let Some(&reply) = self.by_orig.get(&(source, path.dest)) {
            let e = self.used[&reply];
            if e.state == State::Closed {
                self.release(
                    t,
                    Mapping {
                        reply,
                        source,
                        stamp: e.stamp,
                    },
                );
            }
        }
        let random = self.mode != NatMode::Preserve;
        if !random {
            if let Some(&(_, a, p)) = self.sources.get(&source) {
                if self.free(a, p, path.dest) {
                    return Some((a, p, false));
                }
            }
        }
        let addr = self.address_for(path.addr, path.dest);
        let number = self.upstream_lo + path.port;
        if !random && number >= self.port_lo && number < self.port_lo + self.range {
            let port = number - self.port_lo;
            if self.free(addr, port, path.dest) {
                return Some((addr, port, true));
            }
        }
        self.unique_port(t, addr, path.dest)
            .map(|p| (addr, p, false))
    }

    fn take(&mut self, t: u64, addr: u32, port: u32, path: Path) -> Mapping {
        self.advance(t);
        let reply = reply_key(addr, port, path.dest);
        // The destination sees this outside tuple again while it may still
        // hold the last connection on it in TIME_WAIT (it closed first).
        if let Some(&closed) = self.server_closed.get(&reply) {
            let tw = self
                .server_tw_ns
                .get(path.dest as usize)
                .copied()
                .unwrap_or(0);
            if t.saturating_sub(closed) < tw && !path.syn.passed {
                self.figures.stale_reuse += 1;
            }
        }
        let source = source_key(path.addr, path.port);
        let stamp = self.next_stamp;
        self.next_stamp += 1;
        self.used.insert(
            reply,
            Entry {
                state: State::Open,
                stamp,
                source,
            },
        );
        self.by_orig.insert((source, path.dest), reply);
        self.sources
            .entry(source)
            .and_modify(|e| e.0 += 1)
            .or_insert((1, addr, port));
        let cell = (addr * self.range + port) as usize;
        if self.port_refs[cell] == 0 {
            self.ports_in_use[addr as usize] += 1;
            let n = self.ports_in_use[addr as usize];
            self.figures.peak_ports_per_address = self.figures.peak_ports_per_address.max(n);
        }
        self.port_refs[cell] += 1;
        if !self.ever_used[cell] {
            self.ever_used[cell] = true;
            self.figures.distinct_ports += 1;
        }
        self.entries += 1;
        self.figures.peak_mappings = self.figures.peak_mappings.max(self.entries);
        Mapping {
            reply,
            source,
            stamp,
        }
    }

    /// Free `m`'s entry, unless it went already (evicted, or deleted by a
    /// SYN on its tuple) and the timer is late news.
    fn release(&mut self, t: u64, m: Mapping) {
        match self.used.get(&m.reply) {
            Some(e) if e.stamp == m.stamp => {}
            _ => return,
        }
        self.advance(t);
        self.used.remove(&m.reply);
        let dest = (m.reply >> 32) as u32;
        if self.by_orig.get(&(m.source, dest)) == Some(&m.reply) {
            self.by_orig.remove(&(m.source, dest));
        }
        if let Some(e) = self.sources.get_mut(&m.source) {
            e.0 -= 1;
            if e.0 == 0 {
                self.sources.remove(&m.source);
            }
        }
        let addr = ((m.reply >> 16) & 0xffff) as u32;
        let port = (m.reply & 0xffff) as u32;
        let cell = (addr * self.range + port) as usize;
        self.port_refs[cell] -= 1;
        if self.port_refs[cell] == 0 {
            self.ports_in_use[addr as usize] -= 1;
        }
        self.entries -= 1;
    }

    /// Keep `m` until `ns` after `t`, in `state`: closed, or unreplied
    /// after a SYN dropped further on.
    fn hold(&mut self, t: u64, m: Mapping, ns: u64, state: State) {
        if let Some(e) = self.used.get_mut(&m.reply) {
            if e.stamp == m.stamp {
                e.state = state;
            }
        }
        self.held.push(t, ns, m);
    }

    /// A SYN of `path` was dropped for `cause`: every drop is counted, the
    /// connect's failure only at its last SYN.
    fn dropped(&mut self, t: u64, path: Path, cause: Cause) {
        self.figures.syns_dropped += 1;
        self.figures.first_failure_ns.get_or_insert(t);
        if path.syn.last {
            *self.figures.failures_for(cause) += 1;
        }
    }

    /// A retransmitted SYN whose first SYN this NAT let through (a NAT
    /// further on dropped it): conntrack still holds that entry, unreplied,
    /// and the SYN takes it again with the same mapping.
    fn retransmitted(&mut self, t: u64, path: Path) -> Option<(Mapping, Path)> {
        let source = source_key(path.addr, path.port);
        let reply = *self.by_orig.get(&(source, path.dest))?;
        let e = self.used[&reply];
        if e.state != State::SynSent {
            return None;
        }
        let (addr, port) = (((reply >> 16) & 0xffff) as u32, (reply & 0xffff) as u32);
        self.release(
            t,
            Mapping {
                reply,
                source,
                stamp: e.stamp,
            },
        );
        let m = self.take(t, addr, port, path);
        Some((
            m,
            Path {
                addr,
                port,
                dest: path.dest,
                syn: path.syn,
            },
        ))
    }

    /// A connect whose last SYN this NAT dropped for `cause` was still
    /// waiting to give up when the run ended: it is not a failure yet.
    pub fn still_connecting(&mut self, cause: Cause) {
        *self.figures.failures_for(cause) -= 1;
    }

    /// Tell the observer the entry count at `t` if it is no longer
    /// `before`. The entry count changes only in `take` and `release`,
    /// which have no observer; each caller that has one compares around
    /// them instead, so with an observer that ignores the hook all of this
    /// compiles to nothing.
    #[inline(always)]
    fn report<O: Observer>(&self, t: u64, before: u64, cx: &mut Ctx<'_, O>) {
        if self.entries != before {
            cx.obs.on_nat_entries(self.site, t, self.entries);
        }
    }

    /// The NAT's figures, up to `end`.
    pub fn figures(&mut self, end: u64) -> NatFigures {
        self.advance(end);
        let mut f = self.figures.clone();
        f.mean_mappings = self.area as f64 / end.max(1) as f64;
        f
    }
}

impl PortLayer for LinuxNat {
    type Held = Mapping;

    fn open<O: Observer>(
        &mut self,
        t: u64,
        path: Path,
        cx: &mut Ctx<'_, O>,
    ) -> Result<(Mapping, Path), Refused> {
        let before = self.entries;
        if path.syn.first {
            self.figures.attempts += 1;
        } else if let Some(reopened) = self.retransmitted(t, path) {
            // The retransmission matches the entry its first SYN made.
            self.report(t, before, cx);
            return Ok(reopened);
        }
        let site = self.site;
        let refused = |cause| Refused { site, cause };
        if self.entries >= self.max_entries {
            self.dropped(t, path, Cause::TableFull);
            return Err(refused(Cause::TableFull));
        }
        let Some((addr, port, preserved)) = self.choose(t, path) else {
            self.dropped(t, path, Cause::NoPort);
            self.report(t, before, cx);
            return Err(refused(Cause::NoPort));
        };
        // Counted once per connect: not again for a retransmission it let
        // through before (whose entry expired meanwhile).
        if preserved && !path.syn.passed {
            self.figures.ports_preserved += 1;
        }
        let m = self.take(t, addr, port, path);
        self.report(t, before, cx);
        Ok((
            m,
            Path {
                addr,
                port,
                dest: path.dest,
                syn: path.syn,
            },
        ))
    }

    fn close<O: Observer>(&mut self, t: u64, m: Mapping, cx: &mut Ctx<'_, O>) {
        self.close_after(t, m, self.hold_close_ns, self.server_closes, cx);
    }

    fn abort<O: Observer>(&mut self, t: u64, m: Mapping, _cx: &mut Ctx<'_, O>) {
        // The SYN went on and was dropped further along: the entry stays
        // unreplied in SYN_SENT.
        let ns = self.hold_syn_ns;
        self.hold(t, m, ns, State::SynSent);
    }

    fn next_due(&self) -> Due {
        self.held.next_due()
    }

    fn run_due<O: Observer>(&mut self, until: Due, cx: &mut Ctx<'_, O>) {
        while let Some((t, m)) = self.held.pop_before(until) {
            let before = self.entries;
            self.release(t, m);
            self.report(t, before, cx);
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::sim::jhash::nat_address_index;

    /// A scenario from the keys after `name` (one connection at most).
    pub(crate) fn load(text: &str) -> Scenario {
        let text = format!("name = \"t\"\nmax_connections = 1\n{text}");
        crate::scenario::load_str(&text, std::path::Path::new("t.toml"), &[]).expect("loads")
    }

    pub(crate) fn ip(s: &str) -> Ipv4Addr {
        s.parse().expect("an address")
    }

    /// A fleet's NAT reads the IPv4 address behind each global index: the
    /// hosts of each group in turn (a list that is not consecutive: host 0
    /// as listed, the next ones after its last), then the NATs' outside
    /// addresses; and picks the outside address the kernel's hash picks.
    #[test]
    fn a_full_search_ends_at_a_take_over() {
        // Rounds of 128, 64, 32, 16 and 8 candidates, nothing taken over.
        assert_eq!(search_when_full(65535, 0.0), (248.0, 1.0));
        assert_eq!(search_when_full(100, 0.0), (100.0, 1.0));
        // One round of 128: the first 96 are tried for sure, then the j-th
        // of the last 32 only if none of the j before it was taken over:
        // 96 + Σ (1 − p)^j, j < 32 = 96 + (1 − (1 − p)^32) / p.
        let p = 0.3;
        let (tried, going) = search_when_full(128, p);
        let q = (1.0f64 - p).powi(32);
        assert!((tried - (96.0 + (1.0 - q) / p)).abs() < 1e-9, "{tried}");
        assert!((going - q).abs() < 1e-15, "{going}");
        // A range under 32 is all last candidates.
        let (tried, going) = search_when_full(10, 0.5);
        assert!((tried - 2.0 * (1.0 - 0.5f64.powi(10))).abs() < 1e-12);
        assert!((going - 0.5f64.powi(10)).abs() < 1e-15);
    }

    #[test]
    fn a_fleet_nat_hashes_each_hosts_real_address() {
        let sc = load(
            r#"
[traffic]
rate = 1
hold = "1s"
[[hosts]]
name = "a"
count = 3
addresses = ["10.1.0.11"]
via = "router"
[[hosts]]
name = "b"
count = 2
addresses = ["10.1.0.50", "10.1.0.60"]
via = "router"
[[destinations]]
address = "10.2.0.2:5000"
[[destinations]]
address = "10.2.0.3:5000"
[[destinations]]
address = "[2001:db8::1]:5000"
[[nat]]
name = "router"
type = "linux"
addresses = 4
"#,
        );
        let nat = LinuxNat::new(&sc, &sc.nats[0], Site { layer: 1, host: 0 }, 0);
        let hosts = [
            "10.1.0.11",
            "10.1.0.12",
            "10.1.0.13",
            "10.1.0.50",
            "10.1.0.60",
            "10.1.0.61",
            "10.1.0.62",
        ];
        for (i, h) in hosts.iter().enumerate() {
            assert_eq!(nat.ips.source(i as u32), Some(ip(h)), "index {i}");
            for (d, dst) in ["10.2.0.2", "10.2.0.3"].iter().enumerate() {
                assert_eq!(
                    nat.outside_address(i as u32, d as u32),
                    nat_address_index(ip(h), ip(dst), 4, false),
                    "{h} to {dst}"
                );
            }
        }
        // Then the NAT's own outside addresses.
        assert_eq!(nat.ips.source(7), Some(ip("203.0.113.1")));
        assert_eq!(nat.ips.source(10), Some(ip("203.0.113.4")));
        assert_eq!(nat.ips.source(11), None);
        // An IPv6 destination: the fallback, still fixed and in range.
        let a = nat.outside_address(0, 2);
        assert!(a < 4);
        assert_eq!(a, nat.outside_address(0, 2));
        assert_eq!(nat.ips.dest(2), None);
    }
}
