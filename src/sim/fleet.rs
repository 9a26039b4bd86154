//! Fleets: the hosts of `[[hosts]]` groups, each its own [`HostLayer`], and
//! the NATs their connections cross, as a graph (each group enters it at
//! its own `via`; NATs may be shared).
//!
//! Every host has its own port state, allocator, arrival clock and
//! destination choice, each drawing from the streams of its [`Site`] (host
//! `i` of the fleet, counted over the groups in file order), so adding a
//! host never shifts another's draws. Hold times are drawn per group, from
//! the stream of the group's first host: the close structure (a FIFO for a
//! constant hold, the memoryless process, or a heap) is the single host's,
//! one per group.
//!
//! The event loop is the single-host engine's, with three merges in place
//! of single values: the next arrival over the hosts (a heap of each host's
//! next arrival), the next close over the groups (a scan: groups are few),
//! and the next timer over hosts and NATs. Without `tcp_tw_reuse` a
//! TIME_WAIT entry is only ever waited out, and every entry of a group
//! lasts as long, so the group keeps its hosts' entries in one queue in
//! close order, which is their expiry order: memory is walked as one
//! stream, not one per host, and no host needs a timer key. With
//! `tcp_tw_reuse` each host keeps its own FIFO (a connect may take an entry
//! over); a heap keeps one key per such host and is corrected lazily: a key
//! that no longer matches its host's next timer is dropped when it
//! surfaces. At one instant hosts' timers go before a NAT's, and (but for
//! a group's queue, in close order) hosts go in index order, as in
//! [`super::Engine`].
//!
//! Inside the NAT graph, addresses and ports are global: each host's
//! addresses and each NAT's outside addresses get their own block of
//! address indices, ports travel as port numbers, and destinations as
//! indices into the fleet's list of distinct destination addresses, so a
//! NAT shared by two groups sees one destination where both name it.
//!
//! Poisson arrivals of a group of several hosts are drawn as one process
//! of the group's summed intensity, each arrival going to a host drawn
//! uniformly ([`Merged`]): the same process in law as one clock per host,
//! without a heap entry per host. Constant arrivals are shifted earlier by a random phase within one
//! interval, drawn from each host's stream: a thousand hosts do not connect
//! in lockstep, and each still has exactly rate × duration arrivals.
//!
//! Groups that scale (`[[hosts]] scale`) are built at their largest size
//! ([`crate::scenario::HostGroup::max_count`]) from the start, and at any time hosts
//! `0 .. active` of a group are active, the others not: a scale-in removes
//! the highest indices, a scale-out adds them back in index order, so a
//! host that returns is the same host, with its ports, allocator state and
//! streams. An inactive host makes no new connection: its arrivals (and the
//! retries it had queued, counted as abandoned) are discarded, while what
//! it holds (open connections, connects in SYN_SENT, TIME_WAIT) runs out as
//! usual. A step is an event of the run, taken in time order with the
//! others; at one instant it goes after the closes and timers due then and
//! before the SYN steps, retries and arrivals, so an arrival at the instant
//! of a step sees the new count. Each step is told to every NAT on the
//! group's path ([`LinuxNat::scale`]), and so is each group's starting
//! count, at time 0.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};

use rand::RngExt;

use super::closes::Closes;
use super::host::{port_rules, HostConn, HostLayer};
use super::layer::{Cause, Ctx, Due, Path, Phase, PortLayer, Refused, Site, Syn};
use super::nat::Mapping;
use super::nats::{AnyNat, MAX_CHAIN};
use super::record::{Recorder, IN_USE, OPEN, TIME_WAIT};
use super::traffic::{rng, stream, ArrivalClock, Chooser, Stream};
use super::{bursts, default_bin_ns, DestStats, Observer, Outcome, MAX_DEST_STATS};
use crate::ports::pool::AddressPools;
use crate::ports::{PortSpace, Ports, Range};
use crate::scenario::{Arrivals, Scenario};

/// What one group's hosts did together.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GroupFigures {
    pub attempts: u64,
    pub failures: u64,
    /// Failures by the layer that refused: index 0 the hosts themselves,
    /// `1 + n` the scenario's NAT `n`.
    pub failures_at: Vec<u64>,
    /// Most ports any one host of the group held at once (open connections
    /// and TIME_WAIT).
    pub peak_in_use_per_host: u32,
    /// Connects still in SYN_SENT at the end.
    pub connecting_at_end: u64,
    /// Failures at the NATs, by cause ([`Cause::index`]).
    pub failures_by_cause: [u64; 6],
}

/// What a host reads on every connect and timer; its arrivals and
/// destination choice ([`HostTraffic`]) are kept apart, so the fleet's hot
/// state is dense.
struct Host<P: Ports> {
    layer: HostLayer<P>,
    group: u32,
    /// The first of this host's global address indices.
    addr_base: u32,
    /// The key this host has in the timer heap ([`Due::NEVER`]: none).
    due: Due,
    /// Most ports held at once.
    peak: u32,
}

/// A host's own arrivals (none when its group's are merged) and
/// destination choice (none with one destination).
struct HostTraffic {
    clock: Option<ArrivalClock>,
    /// Constant arrivals: this host's phase, as a share of its first
    /// interval, and that in ns once the first arrival is known.
    phase: f64,
    phase_ns: Option<u64>,
    dests: Option<Chooser>,
}

/// The Poisson arrivals of a whole group: the superposition of `count`
/// independent Poisson processes of intensity λ(t) is one of intensity
/// count·λ(t) whose arrivals belong to a host drawn uniformly, so a group
/// needs one clock, not one per host in the heap. A group that scales
/// keeps the clock at its largest count (`count` here) and discards the
/// arrivals that go to an inactive host: thinning, so the arrivals kept
/// are exactly a Poisson process of intensity active(t)·λ(t), each at a
/// host drawn uniformly from the active ones.
struct Merged {
    clock: ArrivalClock,
    pick: rand_chacha::ChaCha8Rng,
    first: u32,
    count: u32,
}

struct Group {
    sc: Scenario,
    /// The group's name (its `[[hosts]]` name).
    name: String,
    /// Its first host (fleet index) and how many of its hosts, from the
    /// first, are active now (`scale`).
    first: u32,
    active: u32,
    /// Its connects in SYN_SENT, with the schedule they follow.
    syns: super::syn::Pending<Waiting>,
    /// The group's arrivals when they are merged (Poisson, several hosts).
    merged: Option<Merged>,
    closes: Closes,
    /// The TIME_WAIT entries of the group's hosts, in close order, when
    /// the group keeps them ([`HostLayer::close_keeping_time_wait`]), and
    /// how long they last.
    time_wait: Option<VecDeque<Kept>>,
    time_wait_ns: u64,
    /// The group's destination `i` as an index into the fleet's.
    dest_map: Vec<u32>,
    port_lo: u32,
    figures: GroupFigures,
}

/// A connect in SYN_SENT: its host and local port, the path it presents
/// to the first NAT, and who dropped its last SYN.
#[derive(Clone, Copy)]
struct Waiting {
    host: u32,
    hc: HostConn,
    path: Path,
    /// The destination as the group numbers it.
    dest: u32,
    tries: u32,
    refused: Refused,
}

/// A TIME_WAIT entry a group keeps for host `host`: it closed at `at`.
#[derive(Clone, Copy)]
struct Kept {
    at: u64,
    host: u32,
    hc: HostConn,
}

#[derive(Clone, Copy)]
struct Conn {
    host: u32,
    hc: HostConn,
}

struct Fleet<'a, O: Observer, P: Ports> {
    sc: &'a Scenario,
    obs: &'a mut O,
    hosts: Vec<Host<P>>,
    traffic: Vec<HostTraffic>,
    groups: Vec<Group>,
    nats: Vec<AnyNat>,
    /// Each NAT's first global address index and first port.
    nat_addr_base: Vec<u32>,
    nat_port_lo: Vec<u32>,
    /// Each NAT's conntrack hold after a close, per group.
    nat_hold: Vec<Vec<u64>>,
    arrivals: BinaryHeap<Reverse<(u64, u32)>>,
    /// Host timers as packed keys ([`key`]), earliest first.
    timers: BinaryHeap<Reverse<u128>>,
    conns: Vec<Conn>,
    /// The NAT mappings of the connection in the same slot of `conns`,
    /// kept only when some group goes through a NAT: a fleet without one
    /// keeps its open connections in a quarter of the memory.
    conn_maps: Vec<[Mapping; MAX_CHAIN]>,
    free_conns: Vec<u32>,
    /// (time, host, the group's destination, tries so far).
    /// (host, dest, tries) of failed attempts to make again: a FIFO when
    /// every group retries after one fixed delay, else a heap.
    retries: super::queue::Lane<(u32, u32, u32)>,
    /// Retry jitter, for every group.
    retry_rng: rand_chacha::ChaCha8Rng,
    rec: Recorder,
    bursts: bursts::Bursts,
    attempts: u64,
    failures: u64,
    first_failure: Option<(u64, u64)>,
    retried: u64,
    abandoned: u64,
    /// Where the first failure happened: a group's name or a NAT's.
    first_failure_at: Option<String>,
    delays: super::syn::Delays,
    per_dest: Vec<DestStats>,
    /// Every group's `scale` steps as (time, group, count), in time order
    /// (groups in file order at one instant), and the next one to take.
    steps: Vec<(u64, u32, u32)>,
    next_step: usize,
    now: u64,
}

/// A host timer as one number that orders as (time, phase, host) does.
#[inline]
fn key(d: Due, h: u32) -> u128 {
    (u128::from(d.t) << 64) | ((d.phase as u128) << 32) | u128::from(h)
}

/// Run a fleet scenario (one with `[[hosts]]`) to its end.
pub fn simulate_fleet<O: Observer>(sc: &Scenario, obs: &mut O) -> Outcome {
    let fits = (0..sc.groups.len()).all(|g| {
        let gs = sc.group_scenario(g);
        let (sharing, use_reuse) = port_rules(&gs);
        AddressPools::fits(gs.destinations.len(), sharing, use_reuse)
    });
    if fits {
        run::<O, AddressPools>(sc, obs, AddressPools::on)
    } else {
        run::<O, PortSpace>(sc, obs, PortSpace::on)
    }
}

/// Hosts of a group (its first ones) whose reuse intervals are told. A
/// group's hosts are alike, so their intervals follow one law; counting a
/// few keeps eight bytes per port off every other host, which then holds
/// memory in proportion to the ports it uses, and keeps the run in cache.
pub const REUSE_HOSTS: u32 = 16;

fn run<O: Observer, P: Ports>(
    sc: &Scenario,
    obs: &mut O,
    ports: impl Fn(&Range, u32, bool) -> P,
) -> Outcome {
    // The fleet's destinations: each distinct address once.
    let dest_index: HashMap<&str, u32> = sc
        .all_destinations()
        .iter()
        .enumerate()
        .map(|(i, d)| (d.address.as_str(), i as u32))
        .collect();
    let mut groups = Vec::with_capacity(sc.groups.len());
    let mut hosts = Vec::new();
    let mut traffic = Vec::new();
    let mut addr_base = 0u32;
    for (g, grp) in sc.groups.iter().enumerate() {
        let gs = sc.group_scenario(g);
        let dest_map = grp
            .destinations
            .iter()
            .map(|d| dest_index[d.address.as_str()])
            .collect();
        let first_site = Site {
            layer: Site::HOST_LAYER,
            host: hosts.len() as u32,
        };
        let weights: Vec<f64> = grp.destinations.iter().map(|d| d.weight).collect();
        let range = Range::new(grp.host.range_size(), grp.host.reserved_indices());
        // Every host the group will ever have, built now (`scale`).
        let max = grp.max_count();
        let merge = grp.traffic.arrivals == Arrivals::Poisson && max > 1;
        for i in 0..max {
            let site = Site {
                layer: Site::HOST_LAYER,
                host: hosts.len() as u32,
            };
            let p = ports(&range, grp.host.addresses.len() as u32, i < REUSE_HOSTS);
            let phase = if grp.traffic.arrivals == Arrivals::Constant {
                rng(sc.seed, Stream::at(site, stream::ARRIVALS)).random()
            } else {
                0.0
            };
            traffic.push(HostTraffic {
                clock: (!merge).then(|| {
                    ArrivalClock::at(
                        sc.seed,
                        site,
                        grp.traffic.arrivals,
                        grp.traffic.rate.clone(),
                        grp.traffic.requests_per_connection,
                    )
                }),
                phase,
                phase_ns: None,
                dests: (weights.len() > 1).then(|| {
                    Chooser::new(
                        sc.seed,
                        Stream::at(site, stream::DESTINATION),
                        &weights,
                        grp.traffic.pick,
                    )
                }),
            });
            hosts.push(Host {
                layer: HostLayer::new(&gs, site, p),
                group: g as u32,
                addr_base,
                due: Due::NEVER,
                peak: 0,
            });
            addr_base += grp.host.addresses.len() as u32;
        }
        let merged = merge.then(|| {
            let mut rate = grp.traffic.rate.clone();
            for seg in &mut rate.segments {
                seg.from *= f64::from(max);
                seg.slope *= f64::from(max);
            }
            Merged {
                clock: ArrivalClock::at(
                    sc.seed,
                    first_site,
                    grp.traffic.arrivals,
                    rate,
                    grp.traffic.requests_per_connection,
                ),
                pick: rng(sc.seed, Stream::at(first_site, stream::HOST)),
                first: first_site.host,
                count: max,
            }
        });
        let first = &hosts[first_site.host as usize].layer;
        let (keep, time_wait_ns) = (first.time_wait_may_be_kept_outside(), first.time_wait_ns());
        groups.push(Group {
            time_wait: (keep && time_wait_ns > 0).then(VecDeque::new),
            time_wait_ns,
            name: grp.name.clone(),
            first: first_site.host,
            active: grp.count,
            syns: super::syn::Pending::new(super::syn::schedule_of(&gs)),
            merged,
            closes: Closes::at(&gs, first_site),
            sc: gs,
            dest_map,
            port_lo: u32::from(grp.host.port_lo),
            figures: GroupFigures {
                failures_at: vec![0; 1 + sc.nats.len()],
                ..GroupFigures::default()
            },
        });
    }
    let mut nats = Vec::with_capacity(sc.nats.len());
    let mut nat_addr_base = Vec::with_capacity(sc.nats.len());
    let mut nat_port_lo = Vec::with_capacity(sc.nats.len());
    let mut nat_hold = Vec::with_capacity(sc.nats.len());
    for (n, nat) in sc.nats.iter().enumerate() {
        let site = Site {
            layer: (n + 1) as u16,
            host: 0,
        };
        // Ports reach a NAT as numbers: its upstream range starts at 0.
        nats.push(AnyNat::new(sc, nat, n, site, 0));
        nat_addr_base.push(addr_base);
        addr_base += nat.addresses.len() as u32;
        nat_port_lo.push(u32::from(nat.port_lo));
        nat_hold.push(
            sc.groups
                .iter()
                .map(|g| nat.hold_after(g.traffic.close, g.traffic.protocol))
                .collect(),
        );
    }
    let bin_ns = sc.bin_ns.unwrap_or_else(|| default_bin_ns(sc.duration_ns));
    let n_dest = dest_index.len();
    let mut steps: Vec<(u64, u32, u32)> = sc
        .groups
        .iter()
        .enumerate()
        .flat_map(|(g, grp)| grp.scale.iter().map(move |s| (s.at_ns, g as u32, s.count)))
        .collect();
    // Stable: at one instant, groups in file order.
    steps.sort_by_key(|s| s.0);
    let mut f = Fleet {
        sc,
        obs,
        hosts,
        traffic,
        groups,
        nats,
        nat_addr_base,
        nat_port_lo,
        nat_hold,
        arrivals: BinaryHeap::new(),
        timers: BinaryHeap::new(),
        conns: Vec::new(),
        conn_maps: Vec::new(),
        free_conns: Vec::new(),
        retries: super::queue::Lane::new({
            let r: Vec<_> = sc.groups.iter().map(|g| g.traffic.retry).collect();
            r.iter()
                .all(|x| x.is_none_or(|x| x.backoff == crate::scenario::Backoff::Fixed))
                && r.iter()
                    .flatten()
                    .all(|x| Some(x.after_ns) == r.iter().flatten().next().map(|f| f.after_ns))
        }),
        retry_rng: super::traffic::rng(sc.seed, Stream::at(Site::HOST0, stream::RETRY)),
        rec: Recorder::new(bin_ns, sc.bin_ns.is_none()),
        bursts: bursts::Bursts::until(sc.duration_ns.unwrap_or(u64::MAX)),
        attempts: 0,
        failures: 0,
        first_failure: None,
        retried: 0,
        abandoned: 0,
        first_failure_at: None,
        delays: super::syn::Delays::default(),
        per_dest: vec![DestStats::default(); if n_dest <= MAX_DEST_STATS { n_dest } else { 0 }],
        steps,
        next_step: 0,
        now: 0,
    };
    // Each NAT on a group's path hears of its hosts before anything runs.
    for g in 0..f.groups.len() {
        let count = f.groups[g].active;
        f.tell_nats(0, g, 0, count);
    }
    for h in 0..f.hosts.len() {
        let g = f.hosts[h].group as usize;
        if f.groups[g].merged.is_none() {
            f.schedule_arrival(h as u32);
        }
    }
    let hosts = f.hosts.len() as u32;
    for g in 0..f.groups.len() {
        if f.groups[g].merged.is_some() {
            f.schedule_arrival(hosts + g as u32);
        }
    }
    f.run()
}

impl<O: Observer, P: Ports> Fleet<'_, O, P> {
    /// Whether host `h` is active (within its group's count now).
    #[inline]
    fn active(&self, h: u32) -> bool {
        let grp = &self.groups[self.hosts[h as usize].group as usize];
        h - grp.first < grp.active
    }

    /// Tell every NAT on group `g`'s path that its active hosts went from
    /// `before` to `after` at `t`.
    fn tell_nats(&mut self, t: u64, g: usize, before: u32, after: u32) {
        let first = self.groups[g].first;
        let Some(host) = self.hosts.get(first as usize) else {
            return;
        };
        let first_addr = host.addr_base;
        let per = self.sc.groups[g].host.addresses.len() as u32;
        let mut cx = Ctx {
            obs: &mut *self.obs,
            rec: &mut self.rec,
        };
        let mut at = self.groups[g].sc.via;
        while let Some(n) = at {
            self.nats[n].scale(t, first_addr, per, before, after, &mut cx);
            at = self.sc.nats[n].via;
        }
    }

    /// The next `scale` step: its group's active count changes at `t`.
    fn scale_step(&mut self, t: u64) {
        let (_, g, count) = self.steps[self.next_step];
        self.next_step += 1;
        let g = g as usize;
        let before = std::mem::replace(&mut self.groups[g].active, count);
        self.tell_nats(t, g, before, count);
    }

    /// Schedule the next arrival of `id`: a host, or (from the number of
    /// hosts on) a group whose arrivals are merged.
    fn schedule_arrival(&mut self, id: u32) {
        let h = id;
        if let Some(g) = (id as usize).checked_sub(self.hosts.len()) {
            if let Some(t) = self.groups[g]
                .merged
                .as_mut()
                .and_then(|m| m.clock.next_arrival())
            {
                self.arrivals.push(Reverse((t, id)));
            }
            return;
        }
        let host = &mut self.traffic[h as usize];
        let Some(clock) = host.clock.as_mut() else {
            return;
        };
        if let Some(t) = clock.next_arrival() {
            // The phase is a share of the interval at the first arrival (no
            // more than the time to it): a schedule that starts late still
            // starts within one interval of its start.
            let interval = clock.interval_at(t).min(t as f64);
            let phase = *host.phase_ns.get_or_insert((host.phase * interval) as u64);
            // Earlier by the phase: the k-th arrival at k intervals less
            // the phase, so a run of H at rate r still has r·H of them.
            self.arrivals.push(Reverse((t.saturating_sub(phase), h)));
        }
    }

    /// Put host `h`'s next timer in the heap if it changed.
    #[inline]
    fn touch(&mut self, h: u32) {
        let host = &mut self.hosts[h as usize];
        let d = host.layer.next_due();
        if d != host.due {
            host.due = d;
            if d != Due::NEVER {
                self.timers.push(Reverse(key(d, h)));
            }
        }
    }

    /// The earliest host timer: its key and host (stale keys dropped).
    #[inline]
    fn host_due(&mut self) -> (Due, u32) {
        while let Some(&Reverse(k)) = self.timers.peek() {
            let h = k as u32;
            let d = self.hosts[h as usize].due;
            if key(d, h) == k {
                return (d, h);
            }
            self.timers.pop();
        }
        (Due::NEVER, u32::MAX)
    }

    fn run(mut self) -> Outcome {
        let sc = self.sc;
        let horizon = sc.duration_ns.unwrap_or(u64::MAX);
        let max_attempts = sc.max_connections.unwrap_or(u64::MAX);
        let mut stopped = false;
        loop {
            let t_retry = self.retries.peek_time();
            let (t_arrival, h_arrival) = self.arrivals.peek().map_or((u64::MAX, u32::MAX), |r| r.0);
            let syn = self.next_syn();
            let t_syn = syn.map_or(u64::MAX, |s| s.0);
            let t_scale = self.steps.get(self.next_step).map_or(u64::MAX, |s| s.0);
            let t = t_retry.min(t_arrival).min(t_syn).min(t_scale);
            if t == u64::MAX && horizon == u64::MAX {
                break;
            }
            self.drain(t.min(horizon));
            if t > horizon {
                break;
            }
            self.now = t;
            if t_scale == t {
                // Before anything else at this instant.
                self.scale_step(t);
            } else if let Some((_, g, step)) = syn.filter(|s| s.0 == t) {
                self.syn_step(t, g, step);
            } else if t_retry == t {
                let (_, (h, dest, tries)) = self.retries.pop().expect("peeked");
                if self.active(h) {
                    self.retried += 1;
                    self.attempt(t, h, dest, tries);
                } else {
                    // The host is gone: its retry is never made.
                    self.abandoned += 1;
                }
            } else {
                self.arrivals.pop();
                let h = match (h_arrival as usize).checked_sub(self.hosts.len()) {
                    Some(g) => {
                        let m = self.groups[g].merged.as_mut().expect("a merged group");
                        m.first + m.pick.random_range(0..m.count)
                    }
                    None => h_arrival,
                };
                // An inactive host's arrival is discarded (for a merged
                // group, the thinning of [`Merged`]).
                if self.active(h) {
                    let dest = self.traffic[h as usize]
                        .dests
                        .as_mut()
                        .map_or(0, Chooser::pick);
                    self.attempt(t, h, dest, 0);
                }
                self.schedule_arrival(h_arrival);
            }
            if self.attempts >= max_attempts {
                break;
            }
            // A search for runs where nothing fails also stops at the first
            // connect left waiting for a dropped SYN.
            if O::STOP_AT_FAILURE
                && (self.failures > 0 || self.groups.iter().any(|g| !g.syns.is_empty()))
            {
                stopped = true;
                break;
            }
        }
        // The last attempt made: its connects in SYN_SENT still resolve.
        if !stopped && self.attempts >= max_attempts {
            while let Some((t, g, step)) = self.next_syn() {
                if t > horizon {
                    break;
                }
                self.drain(t);
                self.now = t;
                self.syn_step(t, g, step);
                if O::STOP_AT_FAILURE && self.failures > 0 {
                    break;
                }
            }
        }
        let now = self.now;
        let end =
            if !stopped && horizon != u64::MAX && now <= horizon && self.attempts < max_attempts {
                horizon
            } else {
                now
            };
        self.finish(end)
    }

    /// The group whose next close is earliest, and when.
    #[inline]
    fn next_close(&self) -> (u64, usize) {
        let mut best = (u64::MAX, usize::MAX);
        for (g, grp) in self.groups.iter().enumerate() {
            let t = grp.closes.peek_time();
            if t < best.0 {
                best = (t, g);
            }
        }
        best
    }

    fn drain(&mut self, limit: u64) {
        loop {
            let (t_close, g) = self.next_close();
            let close_due = t_close <= limit && t_close != u64::MAX;
            let until = if close_due {
                Due::new(t_close, Phase::Close)
            } else {
                Due::new(limit, Phase::End)
            };
            self.run_timers(until);
            if !close_due {
                return;
            }
            let slot = self.groups[g].closes.pop();
            self.close(t_close, slot);
        }
    }

    /// Every host and NAT timer before `until`, earliest first; at one key
    /// hosts go first.
    fn run_timers(&mut self, until: Due) {
        loop {
            let (mut hd, mut h) = self.host_due();
            // The groups' TIME_WAIT queues: each head against the hosts'.
            let mut kept = usize::MAX;
            for (g, grp) in self.groups.iter().enumerate() {
                if let Some(e) = grp.time_wait.as_ref().and_then(|q| q.front()) {
                    let d = Due::new(e.at.saturating_add(grp.time_wait_ns), Phase::Release);
                    if key(d, e.host) < key(hd, h) {
                        (hd, h, kept) = (d, e.host, g);
                    }
                }
            }
            let (nd, n) = self
                .nats
                .iter()
                .enumerate()
                .map(|(i, nat)| (nat.next_due(), i))
                .min()
                .unwrap_or((Due::NEVER, usize::MAX));
            let next = hd.min(nd);
            if next >= until || next == Due::NEVER {
                return;
            }
            let mut cx = Ctx {
                obs: &mut *self.obs,
                rec: &mut self.rec,
            };
            if hd <= nd && kept != usize::MAX {
                let e = self.groups[kept]
                    .time_wait
                    .as_mut()
                    .and_then(VecDeque::pop_front)
                    .expect("peeked");
                self.hosts[h as usize]
                    .layer
                    .end_time_wait(hd.t, e.hc, &mut cx);
            } else if hd <= nd {
                self.hosts[h as usize]
                    .layer
                    .run_due(hd.just_after().min(until), &mut cx);
                self.touch(h);
            } else {
                self.nats[n].run_due(nd.just_after().min(until), &mut cx);
            }
        }
    }

    fn attempt(&mut self, t: u64, h: u32, dest: u32, tries: u32) {
        self.bursts.attempt(t, self.attempts, self.failures);
        self.attempts += 1;
        self.rec.bin(t).attempts += 1;
        let g = self.hosts[h as usize].group as usize;
        let global = self.groups[g].dest_map[dest as usize];
        if let Some(d) = self.per_dest.get_mut(global as usize) {
            d.attempts += 1;
        }
        self.groups[g].figures.attempts += 1;
        let mut cx = Ctx {
            obs: &mut *self.obs,
            rec: &mut self.rec,
        };
        let host = &mut self.hosts[h as usize];
        let path = Path {
            addr: 0,
            port: 0,
            dest,
            syn: Syn::ONLY,
        };
        let (hc, mut path) = match host.layer.open(t, path, &mut cx) {
            Ok(opened) => opened,
            Err(r) => {
                self.touch(h);
                return self.fail(t, h, dest, tries, r);
            }
        };
        host.peak = host.peak.max(host.layer.ports_held());
        path.addr += host.addr_base;
        path.port += self.groups[g].port_lo;
        path.dest = global;
        path.syn = Syn {
            first: true,
            passed: false,
            last: self.groups[g].syns.gives_up_at(0),
            reached: 0,
        };
        self.touch(h);
        let w = Waiting {
            host: h,
            hc,
            path,
            dest,
            tries,
            refused: Refused {
                site: Site::HOST0,
                cause: Cause::NoPort,
            },
        };
        match self.cross(t, g, path) {
            Ok(maps) => self.established(t, w, maps, 0),
            // Dropped: the socket waits in SYN_SENT, holding its port.
            Err(refused) => self.groups[g].syns.push(0, t, Waiting { refused, ..w }),
        }
    }

    /// The NATs of group `g`'s path, in turn, for a SYN of `path`: the
    /// mappings, or the refusal (those before it keep unreplied entries).
    fn cross(&mut self, t: u64, g: usize, mut path: Path) -> Result<[Mapping; MAX_CHAIN], Refused> {
        let mut cx = Ctx {
            obs: &mut *self.obs,
            rec: &mut self.rec,
        };
        let mut maps = [Mapping::NONE; MAX_CHAIN];
        let mut at = self.groups[g].sc.via;
        let mut i = 0;
        let syn = path.syn;
        while let Some(n) = at {
            path.syn = syn.at(i);
            match self.nats[n].open(t, path, &mut cx) {
                Ok((m, p)) => {
                    maps[i] = m;
                    path = Path {
                        addr: p.addr + self.nat_addr_base[n],
                        port: p.port + self.nat_port_lo[n],
                        dest: p.dest,
                        syn: p.syn,
                    };
                    i += 1;
                    at = self.sc.nats[n].via;
                }
                Err(r) => {
                    let mut k = self.groups[g].sc.via;
                    for m in maps.iter().take(i) {
                        let nk = k.expect("on the path");
                        self.nats[nk].abort(t, *m, &mut cx);
                        k = self.sc.nats[nk].via;
                    }
                    return Err(r);
                }
            }
        }
        Ok(maps)
    }

    /// The earliest SYN step over the groups: when, which group, which step.
    #[inline]
    fn next_syn(&self) -> Option<(u64, usize, usize)> {
        let mut best: Option<(u64, usize, usize)> = None;
        for (g, grp) in self.groups.iter().enumerate() {
            if let Some((t, step)) = grp.syns.peek() {
                if best.is_none_or(|b| t < b.0) {
                    best = Some((t, g, step));
                }
            }
        }
        best
    }

    /// A SYN step of group `g`: a retransmission, or giving up.
    fn syn_step(&mut self, t: u64, g: usize, step: usize) {
        let (t0, mut w, give_up) = self.groups[g].syns.pop(step);
        if give_up {
            let mut cx = Ctx {
                obs: &mut *self.obs,
                rec: &mut self.rec,
            };
            self.hosts[w.host as usize].layer.abort(t, w.hc, &mut cx);
            self.touch(w.host);
            self.bursts.attempt(t, self.attempts, self.failures);
            return self.fail(t, w.host, w.dest, w.tries, w.refused);
        }
        // How many NATs of the group's path the previous SYN reached: up
        // to and including the one that dropped it.
        let dropped_at = usize::from(w.refused.site.layer).saturating_sub(1);
        let mut reached = 0u8;
        let mut at = self.groups[g].sc.via;
        while let Some(n) = at {
            reached += 1;
            if n == dropped_at {
                break;
            }
            at = self.sc.nats[n].via;
        }
        w.path.syn = Syn {
            first: false,
            passed: false,
            last: self.groups[g].syns.gives_up_at(step + 1),
            reached,
        };
        match self.cross(t, g, w.path) {
            Ok(maps) => self.established(t, w, maps, t - t0),
            Err(refused) => self.groups[g]
                .syns
                .push(step + 1, t0, Waiting { refused, ..w }),
        }
    }

    /// The connect `w` completed at `t` after waiting `delay` ns.
    fn established(&mut self, t: u64, w: Waiting, maps: [Mapping; MAX_CHAIN], delay: u64) {
        let g = self.hosts[w.host as usize].group as usize;
        self.delays.record(delay);
        self.rec.bin(t).established += 1;
        let conn = Conn {
            host: w.host,
            hc: w.hc,
        };
        let slot = match self.free_conns.pop() {
            Some(s) => {
                self.conns[s as usize] = conn;
                s
            }
            None => {
                self.conns.push(conn);
                (self.conns.len() - 1) as u32
            }
        };
        if self.groups[g].sc.via.is_some() {
            let s = slot as usize;
            if self.conn_maps.len() <= s {
                self.conn_maps.resize(s + 1, [Mapping::NONE; MAX_CHAIN]);
            }
            self.conn_maps[s] = maps;
        }
        self.groups[g].closes.open(t, slot);
        self.bursts.success(t);
        self.rec.up(OPEN, t);
        let port = self.hosts[w.host as usize].layer.port_number(w.hc.port);
        self.obs.on_connect(t, port, w.path.dest);
    }

    fn fail(&mut self, t: u64, h: u32, dest: u32, tries: u32, refused: Refused) {
        self.failures += 1;
        self.bursts.failure(t);
        self.rec.bin(t).failures += 1;
        let g = self.hosts[h as usize].group as usize;
        let global = self.groups[g].dest_map[dest as usize];
        if let Some(d) = self.per_dest.get_mut(global as usize) {
            d.failures += 1;
        }
        let fig = &mut self.groups[g].figures;
        fig.failures += 1;
        let layer = usize::from(refused.site.layer);
        if let Some(c) = fig.failures_at.get_mut(layer) {
            *c += 1;
        }
        if layer > 0 {
            fig.failures_by_cause[refused.cause.index()] += 1;
        }
        if self.first_failure.is_none() {
            self.first_failure = Some((t, self.attempts));
            self.first_failure_at = Some(match refused.site.layer {
                0 => self.groups[g].name.clone(),
                n => self.sc.nats[usize::from(n) - 1].name.clone(),
            });
        }
        self.obs.on_fail_at(refused.site, t, global);
        let retry = self.groups[g].sc.traffic.retry;
        match super::queue::next_retry_delay(retry, tries, &mut self.retry_rng) {
            Some(delay) => self
                .retries
                .push(t.saturating_add(delay), (h, dest, tries + 1)),
            None => self.abandoned += 1,
        }
    }

    fn close(&mut self, t: u64, slot: u32) {
        let c = self.conns[slot as usize];
        self.free_conns.push(slot);
        self.rec.down(OPEN, t);
        let h = c.host;
        let g = self.hosts[h as usize].group as usize;
        let port = self.hosts[h as usize].layer.port_number(c.hc.port);
        let global = self.groups[g].dest_map[c.hc.dest as usize];
        self.obs.on_close(t, port, global);
        let mut cx = Ctx {
            obs: &mut *self.obs,
            rec: &mut self.rec,
        };
        let host = &mut self.hosts[h as usize];
        match &mut self.groups[g].time_wait {
            Some(q) => {
                if host.layer.close_keeping_time_wait(t, c.hc, &mut cx) {
                    q.push_back(Kept {
                        at: t,
                        host: h,
                        hc: c.hc,
                    });
                }
            }
            None => host.layer.close(t, c.hc, &mut cx),
        }
        let mut at = self.groups[g].sc.via;
        let mut i = 0;
        while let Some(n) = at {
            let server = self.groups[g].sc.traffic.close == crate::scenario::Close::Server;
            let m = self.conn_maps[slot as usize][i];
            self.nats[n].close_after(t, m, self.nat_hold[n][g], server, &mut cx);
            i += 1;
            at = self.sc.nats[n].via;
        }
        self.touch(h);
    }

    fn finish(mut self, end: u64) -> Outcome {
        self.obs.on_end(end);
        // Every attempt established, failed, or is still connecting.
        let mut connecting_to = vec![0u64; self.per_dest.len()];
        let mut connecting_at_end = 0u64;
        for g in 0..self.groups.len() {
            let grp = &mut self.groups[g];
            grp.figures.connecting_at_end = grp.syns.len() as u64;
            connecting_at_end += grp.syns.len() as u64;
            for (sent_last, w) in grp.syns.items() {
                if let Some(c) = connecting_to.get_mut(w.path.dest as usize) {
                    *c += 1;
                }
                if sent_last && w.refused.site.layer > 0 {
                    let n = usize::from(w.refused.site.layer) - 1;
                    self.nats[n].still_connecting(w.refused.cause);
                }
            }
        }
        for (d, c) in self.per_dest.iter_mut().zip(connecting_to) {
            d.established = d.attempts - d.failures - c;
        }
        let span = end.max(1) as f64;
        let open_at_end = (self.conns.len() - self.free_conns.len()) as u32;
        let time_wait_at_end = self.rec.level(TIME_WAIT);
        let mut distinct_used = 0u32;
        let (mut tw_reused, mut tw_skipped) = (0, 0);
        let mut server_tw: Option<u64> = None;
        let mut pools_total = 0u64;
        for (g, grp) in self.groups.iter_mut().enumerate() {
            grp.figures.peak_in_use_per_host = self
                .hosts
                .iter()
                .filter(|h| h.group as usize == g)
                .map(|h| h.peak)
                .max()
                .unwrap_or(0);
        }
        for h in &self.hosts {
            distinct_used = distinct_used.saturating_add(h.layer.distinct_used());
            tw_reused += h.layer.tw_reused();
            tw_skipped += h.layer.tw_skipped();
            if let Some(n) = h.layer.server_time_wait_reuses() {
                *server_tw.get_or_insert(0) += n;
            }
            pools_total += h.layer.pools_total();
        }
        let nats: Vec<_> = self.nats.iter_mut().map(|n| n.figures(end)).collect();
        let r = self.rec.finish(end);
        Outcome {
            client: None,
            bursts: self.bursts.finish(end, self.attempts, self.failures),
            simulated_ns: end,
            attempts: self.attempts,
            established: self.attempts - self.failures - connecting_at_end,
            connecting_at_end,
            delays: self.delays,
            failures_at: Vec::new(),
            first_failure_at: self.first_failure_at,
            failures: self.failures,
            first_failure: self.first_failure,
            retries: self.retried,
            abandoned: self.abandoned,
            tw_reused,
            tw_skipped,
            server_time_wait_reuses: server_tw,
            distinct_used,
            peak_in_use: r.peak[IN_USE],
            mean_in_use: r.area[IN_USE] / span,
            peak_time_wait: r.peak[TIME_WAIT],
            mean_time_wait: r.area[TIME_WAIT] / span,
            peak_open: r.peak[OPEN],
            open_at_end,
            time_wait_at_end,
            bin_ns: r.bin_ns,
            bins: r.bins,
            reuse: r.reuse,
            reuse_hosts: self
                .sc
                .groups
                .iter()
                .map(|g| u64::from(g.max_count().min(REUSE_HOSTS)))
                .sum(),
            nats,
            per_destination: self.per_dest,
            pools: Vec::new(),
            pools_total,
            groups: self.groups.into_iter().map(|g| g.figures).collect(),
        }
    }
}
