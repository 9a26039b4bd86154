//! Cloud NATs as port layers: AWS NAT gateway, Azure Load Balancer
//! outbound SNAT, Azure NAT gateway and Google Cloud NAT, one engine
//! driven by each preset's rules (`crate::scenario::nat::Preset`).
//!
//! What they share is the unit of exhaustion: an outside (address, port)
//! may serve any number of destinations at once but one connection per
//! destination, and after a flow ends it stays unusable toward that
//! destination for a hold (FIN, RST, half-open, UDP). Each (address,
//! destination) pair that is in use keeps a bitset of its taken ports, so
//! "the lowest free port of this block toward this destination" is a scan
//! of a few words.
//!
//! What differs:
//! - **who may use a port**: a shared inventory (AWS, Azure NAT gateway)
//!   or a block per host (Azure LB, Cloud NAT). Blocks are handed out in
//!   host order, from the first address until it is full, then the next;
//!   a host that finds too few free ports left gets none and every flow it
//!   makes fails (`hosts_without_ports`). A block may be made of pieces on
//!   several addresses, so `addresses × ports ÷ block` hosts fit, as the
//!   vendors' formulas say.
//! - **block size**: fixed, from Azure's pool-size table (a scale event
//!   that crosses a tier halves every block and drops the flows on the
//!   reclaimed ports), or Cloud NAT's dynamic allocation (a block that has
//!   no free port for a flow doubles, up to the maximum, after a lag during
//!   which the host's flows that find no port are dropped).
//! - **which port**: lowest free first (Azure LB) or a random offset and
//!   the next free one.
//! - **a per-destination cap** per address (AWS 55,000, Azure NAT gateway
//!   50,000), and endpoint-independent mapping (Cloud NAT): a source that
//!   holds a mapping must reuse its outside port for every destination, and
//!   is dropped when that port is taken toward the new one.
//!
//! Hosts are known by the address indices the NAT receives (as for
//! [`super::nat::LinuxNat`]): in a fleet, each host of each group whose
//! path starts at this NAT, and each outside address of a NAT whose `via`
//! is this one (a node behind a cloud NAT is one VM); behind a single
//! host, that host (or each address of the NAT before).

use rand::RngExt;
use rand_chacha::ChaCha8Rng;

use super::layer::{Cause, CloudFigures, Ctx, Due, NatFigures, Path, PortLayer, Refused, Site};
use super::nat::{reply_key, source_key, Held, Mapping};
use super::traffic::{rng, stream, Stream};
use super::Observer;
use crate::ports::fastmap::FastMap;
use crate::scenario::nat::{Blocks, Choice, CloudRules, Nat};
use crate::scenario::Scenario;

fn pair_key(addr: u32, dest: u32) -> u64 {
    (u64::from(addr) << 32) | u64::from(dest)
}

fn parts(reply: u64) -> (u32, u32, u32) {
    (
        ((reply >> 16) & 0xffff) as u32,
        (reply & 0xffff) as u32,
        (reply >> 32) as u32,
    )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Open,
    Closed,
    SynSent,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    state: State,
    stamp: u64,
    source: u64,
    host: u32,
}

/// The ports of one address taken toward one destination.
#[derive(Debug)]
struct Taken {
    bits: Vec<u64>,
    count: u32,
}

/// Host ids of a block of address indices: `len` indices from `start`,
/// `per` to a host, the first host `first`.
#[derive(Debug, Clone, Copy)]
struct HostBlock {
    start: u32,
    len: u32,
    per: u32,
    first: u32,
}

/// What one host behind the NAT has.
#[derive(Debug, Default, Clone)]
struct HostPorts {
    active: bool,
    /// Its block: (address, first port index, ports).
    chunks: Vec<(u32, u32, u32)>,
    total: u32,
    /// Dynamic allocation: when the doubling asked for takes effect.
    grow_at: Option<u64>,
    /// Ports of its block in use (shared pool: its mappings).
    used: u32,
    /// It was active at some time without a block.
    without: bool,
}

/// One cloud NAT of a scenario.
pub struct CloudNat {
    site: Site,
    rules: CloudRules,
    addresses: u32,
    range: u32,
    words: usize,
    /// Concurrent connections per (address, destination).
    cap: u32,
    hold_close_ns: u64,
    used: FastMap<u64, Entry>,
    by_orig: FastMap<(u64, u32), u64>,
    /// Endpoint-independent mapping: a source's outside port, and how many
    /// live entries use it.
    sources: FastMap<u64, (u32, u32, u32)>,
    taken: FastMap<u64, Taken>,
    port_refs: Vec<u32>,
    ports_in_use: Vec<u32>,
    ever_used: Vec<u64>,
    host_blocks: Vec<HostBlock>,
    hosts: Vec<HostPorts>,
    /// Free port intervals of each address (start, length), by start.
    free: Vec<Vec<(u32, u32)>>,
    /// Table allocation: the block each host has now.
    block: u32,
    /// Entries held after their flows ended.
    held: Held,
    next_stamp: u64,
    entries: u64,
    rng: ChaCha8Rng,
    area: u128,
    last_t: u64,
    figures: NatFigures,
    cloud: CloudFigures,
}

impl CloudNat {
    /// The cloud NAT `nat` (index `index` of `sc.nats`, or along the
    /// single host's path) at `site`.
    pub fn new(sc: &Scenario, nat: &Nat, index: usize, site: Site) -> CloudNat {
        let rules = nat.cloud.clone().expect("a cloud NAT has its rules");
        let addresses = nat.addresses.len() as u32;
        let range = nat.range_size();
        let words = range.div_ceil(64) as usize;
        let cap = rules.preset.per_destination.unwrap_or(u32::MAX).min(range);
        let (host_blocks, active) = host_blocks(sc, index, site);
        let total_hosts = host_blocks.last().map_or(0, |b| b.first + b.len / b.per);
        let mut hosts = vec![HostPorts::default(); total_hosts as usize];
        for &h in &active {
            hosts[h as usize].active = true;
        }
        let mut n = CloudNat {
            site,
            addresses,
            range,
            words,
            cap,
            hold_close_ns: nat.hold_after(sc.traffic.close, sc.traffic.protocol),
            used: FastMap::default(),
            by_orig: FastMap::default(),
            sources: FastMap::default(),
            taken: FastMap::default(),
            port_refs: vec![0; addresses as usize * range as usize],
            ports_in_use: vec![0; addresses as usize],
            ever_used: vec![0; (addresses as usize * range as usize).div_ceil(64)],
            host_blocks,
            hosts,
            free: vec![vec![(0, range)]; addresses as usize],
            block: 0,
            held: Held::default(),
            next_stamp: 0,
            entries: 0,
            rng: rng(sc.seed, Stream::at(site, stream::ALLOCATOR)),
            area: 0,
            last_t: 0,
            figures: NatFigures::default(),
            cloud: CloudFigures {
                min_ports_per_host: u32::MAX,
                address_peaks: vec![0; addresses as usize],
                address_hosts: vec![0; addresses as usize],
                ..CloudFigures::default()
            },
            rules,
        };
        n.relayout(0);
        n.cloud.ports_per_host_at_start = n.block_size();
        n
    }

    /// The block a host gets now (0 with a shared pool).
    fn block_size(&self) -> u32 {
        match self.rules.preset.blocks {
            Blocks::Shared => 0,
            Blocks::Table(t) => self.rules.ports_per_host.unwrap_or_else(|| {
                let active = self.hosts.iter().filter(|h| h.active).count() as u32;
                CloudRules::table_ports(t, active)
            }),
            Blocks::PerHost { default_min, .. } => self.rules.ports_per_host.unwrap_or(default_min),
        }
    }

    fn shared(&self) -> bool {
        self.rules.preset.blocks == Blocks::Shared
    }

    /// Give blocks to the active hosts that have none, after resizing
    /// every block to the table's size for the active count.
    fn relayout(&mut self, t: u64) {
        if self.shared() {
            self.cloud.hosts = self
                .cloud
                .hosts
                .max(self.hosts.iter().filter(|h| h.active).count() as u32);
            return;
        }
        let size = self.block_size();
        let table = matches!(self.rules.preset.blocks, Blocks::Table(_))
            && self.rules.ports_per_host.is_none();
        if table && size != self.block && self.block != 0 {
            for h in 0..self.hosts.len() {
                if self.hosts[h].active && self.hosts[h].total > size {
                    self.trim(t, h, size);
                }
            }
        }
        self.block = size;
        for h in 0..self.hosts.len() {
            let host = &self.hosts[h];
            if !host.active {
                continue;
            }
            let want = if table { size } else { host.total.max(size) };
            if host.total < want && size > 0 {
                let need = want - host.total;
                if let Some(chunks) = self.allocate(need) {
                    let host = &mut self.hosts[h];
                    host.chunks.extend(chunks);
                    host.total += need;
                }
            }
            if self.hosts[h].total == 0 && !self.hosts[h].without {
                self.hosts[h].without = true;
                self.cloud.hosts_without_ports += 1;
            }
        }
        self.count_hosts();
    }

    fn count_hosts(&mut self) {
        let active = self.hosts.iter().filter(|h| h.active).count() as u32;
        self.cloud.hosts = self.cloud.hosts.max(active);
        for c in &mut self.cloud.address_hosts {
            *c = 0;
        }
        for h in self.hosts.iter().filter(|h| h.active && h.total > 0) {
            self.cloud.max_ports_per_host = self.cloud.max_ports_per_host.max(h.total);
            let mut last = u32::MAX;
            for &(a, _, _) in &h.chunks {
                if a != last {
                    self.cloud.address_hosts[a as usize] += 1;
                    last = a;
                }
            }
        }
        if let Some(m) = self
            .hosts
            .iter()
            .filter(|h| h.active && h.total > 0)
            .map(|h| h.total)
            .min()
        {
            self.cloud.min_ports_per_host = self.cloud.min_ports_per_host.min(m);
        }
    }

    /// `need` ports from the free intervals, addresses in turn, or none if
    /// fewer are free.
    fn allocate(&mut self, need: u32) -> Option<Vec<(u32, u32, u32)>> {
        let free: u64 = self.free.iter().flatten().map(|&(_, l)| u64::from(l)).sum();
        if free < u64::from(need) {
            return None;
        }
        let mut left = need;
        let mut out = Vec::new();
        for (a, list) in self.free.iter_mut().enumerate() {
            while left > 0 && !list.is_empty() {
                let (s, l) = list[0];
                let take = l.min(left);
                out.push((a as u32, s, take));
                left -= take;
                if take == l {
                    list.remove(0);
                } else {
                    list[0] = (s + take, l - take);
                }
            }
            if left == 0 {
                break;
            }
        }
        Some(out)
    }

    /// Give back a piece of a block.
    fn give_back(&mut self, a: u32, s: u32, l: u32) {
        let list = &mut self.free[a as usize];
        let i = list.partition_point(|&(st, _)| st < s);
        list.insert(i, (s, l));
        // Merge with the neighbours.
        if i + 1 < list.len() && list[i].0 + list[i].1 == list[i + 1].0 {
            list[i].1 += list[i + 1].1;
            list.remove(i + 1);
        }
        if i > 0 && list[i - 1].0 + list[i - 1].1 == list[i].0 {
            list[i - 1].1 += list[i].1;
            list.remove(i);
        }
    }

    /// Shrink host `h`'s block to `size`: it keeps the first ports of its
    /// block; the flows on the others are dropped.
    fn trim(&mut self, t: u64, h: usize, size: u32) {
        let mut keep = size;
        let mut kept = Vec::new();
        let mut reclaimed = Vec::new();
        for &(a, s, l) in &self.hosts[h].chunks {
            if keep >= l {
                kept.push((a, s, l));
                keep -= l;
            } else {
                if keep > 0 {
                    kept.push((a, s, keep));
                }
                reclaimed.push((a, s + keep, l - keep));
                keep = 0;
            }
        }
        self.hosts[h].chunks = kept;
        self.hosts[h].total = size;
        for &(a, s, l) in &reclaimed {
            self.give_back(a, s, l);
        }
        let doomed: Vec<(u64, Entry)> = self
            .used
            .iter()
            .filter(|(&r, e)| {
                let (a, p, _) = parts(r);
                e.host == h as u32
                    && reclaimed
                        .iter()
                        .any(|&(ra, s, l)| ra == a && p >= s && p < s + l)
            })
            .map(|(&r, &e)| (r, e))
            .collect();
        for (reply, e) in doomed {
            if e.state == State::Open {
                self.cloud.flows_dropped_by_scale += 1;
            }
            self.release(
                t,
                Mapping {
                    reply,
                    source: e.source,
                    stamp: e.stamp,
                },
            );
        }
    }

    /// Hosts of the group whose first address index is `first_addr` now
    /// number `after` (of those behind this NAT; other groups' calls are
    /// ignored).
    pub fn scale<O: Observer>(
        &mut self,
        t: u64,
        first_addr: u32,
        _per: u32,
        _before: u32,
        after: u32,
        cx: &mut Ctx<'_, O>,
    ) {
        let Some(b) = self
            .host_blocks
            .iter()
            .find(|b| b.start == first_addr)
            .copied()
        else {
            return;
        };
        let before_entries = self.entries;
        let count = b.len / b.per;
        for j in 0..count {
            let h = (b.first + j) as usize;
            let on = j < after;
            if self.hosts[h].active && !on {
                // The host is gone: its block goes back to the pool.
                let chunks = std::mem::take(&mut self.hosts[h].chunks);
                for (a, s, l) in chunks {
                    self.give_back(a, s, l);
                }
                self.hosts[h].total = 0;
                self.hosts[h].grow_at = None;
            }
            self.hosts[h].active = on;
        }
        self.relayout(t);
        if self.entries != before_entries {
            cx.obs.on_nat_entries(self.site, t, self.entries);
        }
    }

    fn host_of(&self, addr: u32) -> Option<usize> {
        let i = self.host_blocks.partition_point(|b| b.start <= addr);
        let b = self.host_blocks.get(i.checked_sub(1)?)?;
        let off = addr - b.start;
        (off < b.len).then(|| (b.first + off / b.per) as usize)
    }

    fn advance(&mut self, t: u64) {
        if t > self.last_t {
            self.area += u128::from(self.entries) * u128::from(t - self.last_t);
            self.last_t = t;
        }
    }

    fn free_for(&self, a: u32, p: u32, dest: u32) -> bool {
        match self.taken.get(&pair_key(a, dest)) {
            None => true,
            Some(tk) => tk.count < self.cap && tk.bits[(p / 64) as usize] & (1 << (p % 64)) == 0,
        }
    }

    /// A free port of address `a` toward `dest` in `[lo, hi)`.
    fn find(&mut self, a: u32, dest: u32, lo: u32, hi: u32) -> Option<u32> {
        let start = match self.rules.preset.choice {
            Choice::Lowest => lo,
            Choice::Random => self.rng.random_range(lo..hi),
        };
        let Some(tk) = self.taken.get(&pair_key(a, dest)) else {
            return Some(start);
        };
        if tk.count >= self.cap {
            return None;
        }
        first_zero(&tk.bits, start, hi).or_else(|| first_zero(&tk.bits, lo, start))
    }

    /// An outside (address, port) for a new flow of host `host` (if hosts
    /// have blocks), or why there is none.
    fn choose(&mut self, t: u64, host: Option<usize>, path: Path) -> Result<(u32, u32), Cause> {
        let dest = path.dest;
        if self.rules.endpoint_independent {
            let source = source_key(path.addr, path.port);
            if let Some(&(_, a, p)) = self.sources.get(&source) {
                return if self.free_for(a, p, dest) {
                    Ok((a, p))
                } else {
                    Err(Cause::EimConflict)
                };
            }
        }
        let Some(h) = host.filter(|_| !self.shared()) else {
            let n = self.addresses;
            let first = if self.rules.preset.addresses_in_turn || n == 1 {
                0
            } else {
                self.rng.random_range(0..n)
            };
            let mut capped = false;
            for i in 0..n {
                let a = (first + i) % n;
                if self
                    .taken
                    .get(&pair_key(a, dest))
                    .is_some_and(|tk| tk.count >= self.cap)
                {
                    capped |= self.cap < self.range;
                    continue;
                }
                if let Some(p) = self.find(a, dest, 0, self.range) {
                    return Ok((a, p));
                }
            }
            return Err(if capped {
                Cause::PerDestination
            } else {
                Cause::NoPort
            });
        };
        if let Some(at) = self.hosts[h].grow_at {
            if at <= t {
                self.grow(h);
            }
        }
        if self.hosts[h].total == 0 {
            return Err(Cause::NoBlock);
        }
        for i in 0..self.hosts[h].chunks.len() {
            let (a, s, l) = self.hosts[h].chunks[i];
            if let Some(p) = self.find(a, dest, s, s + l) {
                return Ok((a, p));
            }
        }
        // The block is full toward this destination.
        let max = self.rules.max_ports_per_host.unwrap_or(0);
        if self.rules.dynamic() && self.hosts[h].total < max {
            if self.hosts[h].grow_at.is_none() {
                self.hosts[h].grow_at = Some(t.saturating_add(self.rules.grow_lag_ns));
                if self.rules.grow_lag_ns == 0 {
                    self.grow(h);
                    return self.choose(t, host, path);
                }
            }
            return Err(Cause::Growing);
        }
        Err(Cause::NoPort)
    }

    /// Double host `h`'s block (up to the maximum), if the ports are free.
    fn grow(&mut self, h: usize) {
        self.hosts[h].grow_at = None;
        let max = self.rules.max_ports_per_host.unwrap_or(0);
        let total = self.hosts[h].total;
        let need = total.min(max.saturating_sub(total));
        if need == 0 {
            return;
        }
        match self.allocate(need) {
            Some(chunks) => {
                self.hosts[h].chunks.extend(chunks);
                self.hosts[h].total += need;
                self.cloud.blocks_grown += 1;
                self.count_hosts();
            }
            None => self.cloud.growth_failed += 1,
        }
    }

    fn take(&mut self, t: u64, a: u32, p: u32, path: Path, host: Option<usize>) -> Mapping {
        self.advance(t);
        let reply = reply_key(a, p, path.dest);
        let source = source_key(path.addr, path.port);
        let stamp = self.next_stamp;
        self.next_stamp += 1;
        let host = host.map_or(u32::MAX, |h| h as u32);
        self.used.insert(
            reply,
            Entry {
                state: State::Open,
                stamp,
                source,
                host,
            },
        );
        self.by_orig.insert((source, path.dest), reply);
        if self.rules.endpoint_independent {
            self.sources
                .entry(source)
                .and_modify(|e| e.0 += 1)
                .or_insert((1, a, p));
        }
        let words = self.words;
        let tk = self
            .taken
            .entry(pair_key(a, path.dest))
            .or_insert_with(|| Taken {
                bits: vec![0; words],
                count: 0,
            });
        tk.bits[(p / 64) as usize] |= 1 << (p % 64);
        tk.count += 1;
        self.cloud.peak_per_destination = self.cloud.peak_per_destination.max(tk.count);
        let cell = (a * self.range + p) as usize;
        let shared = self.shared();
        let first = self.port_refs[cell] == 0;
        if first {
            self.ports_in_use[a as usize] += 1;
            let n = self.ports_in_use[a as usize];
            self.figures.peak_ports_per_address = self.figures.peak_ports_per_address.max(n);
            let peak = &mut self.cloud.address_peaks[a as usize];
            *peak = (*peak).max(n);
        }
        self.port_refs[cell] += 1;
        if self.ever_used[cell / 64] & (1 << (cell % 64)) == 0 {
            self.ever_used[cell / 64] |= 1 << (cell % 64);
            self.figures.distinct_ports += 1;
        }
        // A block's ports are its host's alone: count them as it takes
        // them (one port may serve several destinations). A shared pool's
        // are anyone's: count the host's mappings.
        if let Some(hp) = self
            .hosts
            .get_mut(host as usize)
            .filter(|_| first || shared)
        {
            hp.used += 1;
            self.cloud.peak_ports_used_per_host = self.cloud.peak_ports_used_per_host.max(hp.used);
            let (u, b) = self.cloud.fullest_block;
            if !shared
                && u64::from(hp.used) * u64::from(b.max(1)) > u64::from(u) * u64::from(hp.total)
            {
                self.cloud.fullest_block = (hp.used, hp.total);
            }
        }
        self.entries += 1;
        self.figures.peak_mappings = self.figures.peak_mappings.max(self.entries);
        Mapping {
            reply,
            source,
            stamp,
        }
    }

    fn release(&mut self, t: u64, m: Mapping) {
        let e = match self.used.get(&m.reply) {
            Some(e) if e.stamp == m.stamp => *e,
            _ => return,
        };
        self.advance(t);
        self.used.remove(&m.reply);
        let (a, p, dest) = parts(m.reply);
        if self.by_orig.get(&(m.source, dest)) == Some(&m.reply) {
            self.by_orig.remove(&(m.source, dest));
        }
        if self.rules.endpoint_independent {
            if let Some(s) = self.sources.get_mut(&m.source) {
                s.0 -= 1;
                if s.0 == 0 {
                    self.sources.remove(&m.source);
                }
            }
        }
        let pk = pair_key(a, dest);
        if let Some(tk) = self.taken.get_mut(&pk) {
            tk.bits[(p / 64) as usize] &= !(1 << (p % 64));
            tk.count -= 1;
            if tk.count == 0 {
                self.taken.remove(&pk);
            }
        }
        let cell = (a * self.range + p) as usize;
        self.port_refs[cell] -= 1;
        let last = self.port_refs[cell] == 0;
        if last {
            self.ports_in_use[a as usize] -= 1;
        }
        let shared = self.shared();
        if let Some(hp) = self
            .hosts
            .get_mut(e.host as usize)
            .filter(|_| last || shared)
        {
            hp.used -= 1;
        }
        self.entries -= 1;
    }

    fn hold(&mut self, t: u64, m: Mapping, ns: u64, state: State) {
        if let Some(e) = self.used.get_mut(&m.reply) {
            if e.stamp == m.stamp {
                e.state = state;
            }
        }
        self.held.push(t, ns, m);
    }

    /// The connection of `m` closed at `t`: the NAT keeps the port toward
    /// its destination for `ns`.
    pub fn close_after<O: Observer>(
        &mut self,
        t: u64,
        m: Mapping,
        ns: u64,
        _server_closed: bool,
        cx: &mut Ctx<'_, O>,
    ) {
        if ns == 0 {
            let before = self.entries;
            self.release(t, m);
            if self.entries != before {
                cx.obs.on_nat_entries(self.site, t, self.entries);
            }
        } else {
            self.hold(t, m, ns, State::Closed);
        }
    }

    fn retransmitted(&mut self, t: u64, path: Path) -> Option<(Mapping, Path)> {
        let source = source_key(path.addr, path.port);
        let reply = *self.by_orig.get(&(source, path.dest))?;
        let e = self.used[&reply];
        if e.state != State::SynSent {
            return None;
        }
        let (a, p, _) = parts(reply);
        self.release(
            t,
            Mapping {
                reply,
                source,
                stamp: e.stamp,
            },
        );
        let host = (e.host != u32::MAX).then_some(e.host as usize);
        let m = self.take(t, a, p, path, host);
        Some((
            m,
            Path {
                addr: a,
                port: p,
                ..path
            },
        ))
    }

    pub fn still_connecting(&mut self, cause: Cause) {
        *self.figures.failures_for(cause) -= 1;
    }

    pub fn site(&self) -> Site {
        self.site
    }

    /// The NAT's figures, up to `end`.
    pub fn figures(&mut self, end: u64) -> NatFigures {
        self.advance(end);
        let mut f = self.figures.clone();
        f.mean_mappings = self.area as f64 / end.max(1) as f64;
        let mut c = self.cloud.clone();
        if c.min_ports_per_host == u32::MAX {
            c.min_ports_per_host = 0;
        }
        f.cloud = Some(Box::new(c));
        f
    }
}

/// The first zero bit in `[lo, hi)`.
fn first_zero(bits: &[u64], lo: u32, hi: u32) -> Option<u32> {
    let mut i = lo;
    while i < hi {
        let w = (i / 64) as usize;
        let word = !bits[w] & (u64::MAX << (i % 64));
        if word != 0 {
            let p = (w as u32) * 64 + word.trailing_zeros();
            return (p < hi).then_some(p);
        }
        i = (w as u32 + 1) * 64;
    }
    None
}

/// The hosts behind NAT `index` as blocks of address indices, and the
/// hosts active at the start.
fn host_blocks(sc: &Scenario, index: usize, site: Site) -> (Vec<HostBlock>, Vec<u32>) {
    let mut blocks = Vec::new();
    let mut active = Vec::new();
    let mut first = 0u32;
    let mut push = |blocks: &mut Vec<HostBlock>, start: u32, count: u32, per: u32, on: u32| {
        blocks.push(HostBlock {
            start,
            len: count * per,
            per,
            first,
        });
        active.extend(first..first + on);
        first += count;
    };
    if sc.is_fleet() {
        let mut start = 0u32;
        for g in &sc.groups {
            let per = g.host.addresses.len().max(1) as u32;
            let count = g.max_count();
            if g.via == Some(index) {
                push(&mut blocks, start, count, per, g.count);
            }
            start += count * per;
        }
        for n in &sc.nats {
            let len = n.addresses.len() as u32;
            if n.via == Some(index) {
                push(&mut blocks, start, len, 1, len);
            }
            start += len;
        }
    } else if site.layer <= 1 {
        let per = sc.host.addresses.len().max(1) as u32;
        push(&mut blocks, 0, 1, per, 1);
    } else {
        let path = sc.nat_path();
        let up = path
            .get(usize::from(site.layer) - 2)
            .map_or(1, |n| n.addresses.len() as u32);
        push(&mut blocks, 0, up, 1, up);
    }
    (blocks, active)
}

impl PortLayer for CloudNat {
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
            if self.entries != before {
                cx.obs.on_nat_entries(self.site, t, self.entries);
            }
            return Ok(reopened);
        }
        // A SYN on the original tuple of a held entry starts afresh.
        let source = source_key(path.addr, path.port);
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
        let host = self.host_of(path.addr);
        match self.choose(t, host, path) {
            Ok((a, p)) => {
                let m = self.take(t, a, p, path, host);
                if self.entries != before {
                    cx.obs.on_nat_entries(self.site, t, self.entries);
                }
                Ok((
                    m,
                    Path {
                        addr: a,
                        port: p,
                        ..path
                    },
                ))
            }
            Err(cause) => {
                self.figures.syns_dropped += 1;
                self.figures.first_failure_ns.get_or_insert(t);
                if path.syn.last {
                    *self.figures.failures_for(cause) += 1;
                }
                if self.entries != before {
                    cx.obs.on_nat_entries(self.site, t, self.entries);
                }
                Err(Refused {
                    site: self.site,
                    cause,
                })
            }
        }
    }

    fn close<O: Observer>(&mut self, t: u64, m: Mapping, cx: &mut Ctx<'_, O>) {
        self.close_after(t, m, self.hold_close_ns, false, cx);
    }

    fn abort<O: Observer>(&mut self, t: u64, m: Mapping, _cx: &mut Ctx<'_, O>) {
        let ns = self.rules.holds.half_open;
        self.hold(t, m, ns, State::SynSent);
    }

    fn next_due(&self) -> Due {
        self.held.next_due()
    }

    fn run_due<O: Observer>(&mut self, until: Due, cx: &mut Ctx<'_, O>) {
        while let Some((t, m)) = self.held.pop_before(until) {
            let before = self.entries;
            self.release(t, m);
            if self.entries != before {
                cx.obs.on_nat_entries(self.site, t, self.entries);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::layer::Syn;
    use crate::sim::record::Recorder;

    /// One host behind a Cloud NAT whose block is one port: endpoint-
    /// independent mapping keeps a source on its outside port for every
    /// destination, and a source whose port another took toward the new
    /// destination is dropped for the conflict, not for want of a port.
    #[test]
    fn endpoint_independent_mapping_drops_a_source_on_a_conflict() {
        for eim in [true, false] {
            let text = format!(
                "name = \"t\"\nmax_connections = 1\n[host]\nvia = \"nat\"\n[traffic]\nrate = 1\nhold = \"1s\"\n[[destinations]]\naddress = \"10.2.0.2:443\"\n[[destinations]]\naddress = \"10.2.0.3:443\"\n[[nat]]\nname = \"nat\"\ntype = \"gcp-cloud-nat\"\nport_range = \"2000-2001\"\nmin_ports_per_host = 2\nendpoint_independent = {eim}\n"
            );
            let mut sc = crate::scenario::load_str(&text, std::path::Path::new("t.toml"), &[])
                .expect("loads");
            // A block of one port, below what the loader accepts.
            sc.nats[0].cloud.as_mut().expect("cloud").ports_per_host = Some(1);
            sc.nats[0].cloud.as_mut().expect("cloud").max_ports_per_host = Some(1);
            let nat = sc.nats[0].clone();
            let mut n = CloudNat::new(&sc, &nat, 0, Site { layer: 1, host: 0 });
            let mut rec = Recorder::new(1_000_000, true);
            let mut obs = crate::sim::Quiet;
            let mut cx = Ctx {
                obs: &mut obs,
                rec: &mut rec,
            };
            let path = |port, dest| Path {
                addr: 0,
                port,
                dest,
                syn: Syn::ONLY,
            };
            let (_, a) = n.open(1, path(5, 0), &mut cx).expect("s5 to X");
            let (_, b) = n.open(2, path(6, 1), &mut cx).expect("s6 to Y");
            // One port in the block: both on it, toward different places.
            assert_eq!((a.addr, a.port), (b.addr, b.port));
            let want = if eim {
                Cause::EimConflict
            } else {
                Cause::NoPort
            };
            for (t, p) in [(3, path(5, 1)), (4, path(6, 0))] {
                let e = n.open(t, p, &mut cx).expect_err("the port is taken there");
                assert_eq!(e.cause, want, "eim {eim}");
            }
            let f = n.figures(5);
            assert_eq!(f.failures_of(want), 2);
            assert_eq!(f.failures(), 2);
        }
    }

    #[test]
    fn first_zero_finds_the_lowest_free_bit_in_range() {
        let bits = [u64::MAX, 0b1011, 0];
        assert_eq!(first_zero(&bits, 0, 192), Some(66));
        assert_eq!(first_zero(&bits, 67, 192), Some(68));
        assert_eq!(first_zero(&bits, 0, 64), None);
        assert_eq!(first_zero(&bits, 64, 66), None);
        assert_eq!(first_zero(&bits, 130, 131), Some(130));
    }
}
