//! The port layer of one client host: its port state, its allocator, and
//! the TIME_WAIT entries its closes leave behind.
//!
//! Everything a host's kernel decides lives here: which source address a
//! socket uses, which port the allocator picks under the sharing rules
//! (4-tuple or exclusive), when a closed connection's 4-tuple is held in
//! TIME_WAIT (and when not: `max_tw_buckets`), and when `tcp_tw_reuse` lets
//! a connect() take a TIME_WAIT 4-tuple over.
//!
//! TIME_WAIT lasts the same for every entry, and reuse eligibility comes a
//! fixed delay after the close, so both are read off one FIFO of entries in
//! close order by two cursors (expiry at the front, eligibility further in),
//! not a heap. With `tcp_tw_reuse` an index finds the entry of a 4-tuple
//! that a connect() takes over; the entry stays in the FIFO, marked dead.
//!
//! The port state is a type parameter ([`Ports`]) so the engine is compiled
//! once per kind of port state and neither pays for the other.
//!
//! A UDP flow (`traffic.protocol = "udp"`) holds its port for its duration
//! and frees it at its end: no TIME_WAIT, nothing to reuse. Its port is
//! exclusive on its address whatever the bind mode: an autobound UDP socket
//! takes a port no other socket uses on the address (the kernel's
//! `udp_lib_get_port` has no per-destination sharing as TCP's connect()
//! has), as bind(0) does; and it takes it from the OS's UDP allocator
//! ([`crate::os::Os::udp_allocator`]).
//!
//! When the server closes first the TIME_WAIT is the server's, which is not
//! simulated; the host only counts the connects that would meet it
//! ([`ServerTimeWait`]): two numbers per (source address, port), allocated
//! only for `close = "server"`.

use std::collections::VecDeque;

use super::layer::{Ctx, Due, Path, Phase, PortLayer, Refused, Site};
use super::pools::{PoolFigures, PoolTallies, Whole};
use super::record::{IN_USE, TIME_WAIT};
use super::traffic::{self, stream, Chooser, Stream};
use super::Observer;
use crate::alloc::{self, Allocator, Request};
use crate::ports::fastmap::FastMap;
use crate::ports::{Ports, Release, Sharing, Take};
use crate::scenario::{BindMode, Close, Protocol, Scenario};
use crate::util::mix64;

/// What the host keeps for one open connection (and, after close, for its
/// TIME_WAIT entry).
#[derive(Clone, Copy)]
pub struct HostConn {
    /// Port index (offset into the range).
    pub port: u32,
    pub addr: u32,
    pub dest: u32,
    /// The flow's slot in the port space (stable while the connection or its
    /// TIME_WAIT entry lives).
    flow: u32,
    /// The pool it counts against ([`PoolTallies::index`]).
    pool: u32,
    bind: bool,
    /// A TIME_WAIT entry taken over by `tcp_tw_reuse`.
    dead: bool,
}

/// A TIME_WAIT entry: expiry and reuse eligibility are fixed offsets from
/// `at`, the close, so one time serves both cursors.
#[derive(Clone, Copy)]
struct TwEntry {
    at: u64,
    conn: HostConn,
}

fn flow_of(addr: u32, dest: u32) -> u64 {
    (u64::from(addr) << 32) | u64::from(dest)
}

/// Key of a TIME_WAIT 4-tuple in `tw_index`: flow slot and port.
fn tw_key(flow: u32, port: u32) -> u64 {
    (u64::from(flow) << 32) | u64::from(port)
}

/// How requests compete for ports, and whether `tcp_tw_reuse` applies (it
/// needs ports shared by 4-tuple). UDP ports are exclusive on their address
/// and never in TIME_WAIT.
pub fn port_rules(sc: &Scenario) -> (Sharing, bool) {
    if sc.exclusive_ports() || sc.traffic.protocol == Protocol::Udp {
        (Sharing::Exclusive, false)
    } else {
        (Sharing::FourTuple, sc.host.tw_reuse)
    }
}

/// With `close = "server"`: per (source address, port), when the last
/// connection on it closed and to which destination, to count the connects
/// that reuse that 4-tuple while the server still holds it in TIME_WAIT
/// (`host.time_wait` after the close). Only the last close of each port is
/// kept, so with several destinations sharing a port a 4-tuple whose port
/// went to another destination in between is not counted: with one
/// destination the count is exact, otherwise a lower bound.
struct ServerTimeWait {
    time_wait_ns: u64,
    range: usize,
    /// Close time of the last connection on each (address, port); `u64::MAX`: none.
    closed_at: Vec<u64>,
    dest: Vec<u32>,
    /// connects that met a 4-tuple in the server's TIME_WAIT.
    reuses: u64,
}

impl ServerTimeWait {
    fn new(sc: &Scenario) -> Self {
        let range = sc.host.range_size() as usize;
        let n = range * sc.source_addresses() as usize;
        ServerTimeWait {
            time_wait_ns: sc.host.time_wait_ns,
            range,
            closed_at: vec![u64::MAX; n],
            dest: vec![0; n],
            reuses: 0,
        }
    }

    #[inline]
    fn open(&mut self, t: u64, c: &HostConn) {
        let i = c.addr as usize * self.range + c.port as usize;
        let at = self.closed_at[i];
        if at != u64::MAX && self.dest[i] == c.dest && t - at < self.time_wait_ns {
            self.reuses += 1;
        }
    }

    #[inline]
    fn close(&mut self, t: u64, c: &HostConn) {
        let i = c.addr as usize * self.range + c.port as usize;
        self.closed_at[i] = t;
        self.dest[i] = c.dest;
    }
}

/// The allocator the host of `sc` takes its ports from: `host.allocator`,
/// or for UDP flows the OS's UDP allocator in its place.
pub fn allocator_name(sc: &Scenario) -> &str {
    match sc.traffic.protocol {
        Protocol::Tcp => &sc.host.allocator,
        Protocol::Udp => sc.host.os.udp_allocator(&sc.host.allocator),
    }
}

/// How long a closed connection of `sc` holds its port on the host: the
/// scenario's TIME_WAIT for TCP, nothing for UDP.
pub fn time_wait_ns(sc: &Scenario) -> u64 {
    match sc.traffic.protocol {
        Protocol::Tcp => sc.effective_time_wait_ns(),
        Protocol::Udp => 0,
    }
}

pub struct HostLayer<P: Ports> {
    site: Site,
    ports: P,
    alloc: Box<dyn Allocator>,
    /// The source address choice: read only with `bind`, so kept apart
    /// from the fields every connect reads.
    sources: Box<Chooser>,
    bind_mode: BindMode,
    sharing: Sharing,
    /// `tcp_tw_reuse` applies (on, and connect() shares ports by 4-tuple).
    use_reuse: bool,
    /// Closes enter TIME_WAIT for this long (0: they never do).
    tw_ns: u64,
    reuse_delay_ns: u64,
    max_tw_buckets: u64,
    port_lo: u16,
    tw: VecDeque<TwEntry>,
    /// Absolute id of `tw[0]`.
    tw_base: u64,
    /// Absolute id of the next entry whose reuse eligibility is pending.
    tw_reuse_cursor: u64,
    /// (flow slot, port) -> TIME_WAIT id, kept only with `tw_reuse`.
    tw_index: FastMap<u64, u64>,
    /// connect() calls that took over a TIME_WAIT 4-tuple.
    tw_reused: u64,
    /// Closes that skipped TIME_WAIT because `max_tw_buckets` was reached.
    tw_skipped: u64,
    /// This host's TIME_WAIT entries now (`max_tw_buckets` is per host).
    tw_live: u64,
    /// With `close = "server"`: what the server's TIME_WAIT would meet.
    server_tw: Option<Box<ServerTimeWait>>,
    /// Per-pool occupancy, attempts and failures.
    pools: PoolTallies,
    /// Ports held now (by a connection or a TIME_WAIT entry).
    held: u32,
}

impl<P: Ports> HostLayer<P> {
    /// The host of `sc` at `site`, keeping its ports in `ports`.
    pub fn new(sc: &Scenario, site: Site, ports: P) -> Self {
        let h = &sc.host;
        let (sharing, use_reuse) = port_rules(sc);
        let entry = alloc::entry(allocator_name(sc)).expect("validated allocator name");
        let alloc = (entry.build)(alloc::Setup {
            settings: &h.alloc_settings(),
            rng: traffic::rng(sc.seed, Stream::at(site, stream::ALLOCATOR)),
        });
        let sources = Box::new(Chooser::new(
            sc.seed,
            Stream::at(site, stream::SOURCE),
            &vec![1.0; h.addresses.len()],
            sc.traffic.source,
        ));
        let tw_ns = if sc.traffic.close == Close::Client {
            time_wait_ns(sc)
        } else {
            0
        };
        HostLayer {
            site,
            ports,
            alloc,
            sources,
            bind_mode: sc.traffic.bind,
            sharing,
            use_reuse,
            tw_ns,
            reuse_delay_ns: h.tw_reuse_delay_ns,
            max_tw_buckets: h.max_tw_buckets,
            port_lo: h.port_lo,
            tw: VecDeque::new(),
            tw_base: 0,
            tw_reuse_cursor: 0,
            tw_index: FastMap::default(),
            tw_reused: 0,
            tw_skipped: 0,
            tw_live: 0,
            server_tw: (sc.traffic.close == Close::Server)
                .then(|| Box::new(ServerTimeWait::new(sc))),
            pools: PoolTallies::new(
                sc.source_addresses(),
                sc.destinations.len() as u64,
                sharing == Sharing::Exclusive,
            ),
            held: 0,
        }
    }

    /// Ports this host holds now (by a connection or a TIME_WAIT entry).
    #[inline]
    pub fn ports_held(&self) -> u32 {
        self.held
    }

    /// How many pools the host allocates from, whether or not their
    /// figures are kept.
    pub fn pools_total(&self) -> u64 {
        self.pools.total()
    }

    /// Every pool's figures at the end of the run, `end` (none when there
    /// are more than [`super::pools::MAX_POOL_STATS`]); `whole` is the
    /// run's, which a single pool's are.
    pub fn into_pool_figures(self, end: u64, whole: Whole) -> Vec<PoolFigures> {
        self.pools.finish(end, whole)
    }

    /// The port number of port index `idx`.
    #[inline]
    pub fn port_number(&self, idx: u32) -> u16 {
        (u32::from(self.port_lo) + idx) as u16
    }

    /// connect() calls that took over a TIME_WAIT 4-tuple (`tw_reuse`).
    pub fn tw_reused(&self) -> u64 {
        self.tw_reused
    }

    /// Closes that skipped TIME_WAIT because `max_tw_buckets` was reached.
    pub fn tw_skipped(&self) -> u64 {
        self.tw_skipped
    }

    /// With `close = "server"`: connects whose (source address, port) last
    /// went to the same destination and closed less than `host.time_wait`
    /// before, so the server would still hold the 4-tuple in TIME_WAIT
    /// (see [`ServerTimeWait`] for when this is a lower bound). `None` for
    /// other closes.
    pub fn server_time_wait_reuses(&self) -> Option<u64> {
        self.server_tw.as_ref().map(|s| s.reuses)
    }

    /// Distinct (address, port) pairs ever handed out.
    pub fn distinct_used(&self) -> u32 {
        self.ports.distinct_used()
    }

    #[inline]
    fn t_expiry(&self) -> u64 {
        self.tw
            .front()
            .map_or(u64::MAX, |e| e.at.saturating_add(self.tw_ns))
    }

    #[inline]
    fn t_reusable(&self) -> u64 {
        if self.use_reuse {
            self.tw
                .get((self.tw_reuse_cursor - self.tw_base) as usize)
                .map_or(u64::MAX, |e| e.at.saturating_add(self.reuse_delay_ns))
        } else {
            u64::MAX
        }
    }

    fn take_over_time_wait<O: Observer>(
        &mut self,
        t: u64,
        flow: u32,
        port: u32,
        cx: &mut Ctx<'_, O>,
    ) {
        self.ports.take_over(flow, port);
        if let Some(id) = self.tw_index.remove(&tw_key(flow, port)) {
            self.tw[(id - self.tw_base) as usize].conn.dead = true;
        }
        cx.rec.down(TIME_WAIT, t);
        self.tw_live -= 1;
        self.tw_reused += 1;
    }

    #[inline(always)]
    fn release<O: Observer>(&mut self, t: u64, c: HostConn, cx: &mut Ctx<'_, O>) {
        let freed = self.ports.release(Release {
            addr: c.addr,
            slot: c.flow,
            port: c.port,
            bind: c.bind,
            now: t,
        });
        self.pools.down(c.pool, t);
        if freed {
            cx.rec.down(IN_USE, t);
            self.held -= 1;
            cx.obs.on_port_free_at(self.site, t, c.addr, c.port);
        }
    }

    #[inline(always)]
    fn expire_time_wait<O: Observer>(&mut self, t: u64, cx: &mut Ctx<'_, O>) {
        let e = self.tw.pop_front().expect("peeked");
        self.tw_base += 1;
        self.tw_reuse_cursor = self.tw_reuse_cursor.max(self.tw_base);
        let c = e.conn;
        if c.dead {
            return;
        }
        if self.use_reuse {
            self.tw_index.remove(&tw_key(c.flow, c.port));
        }
        self.end_time_wait(t, c, cx);
    }

    /// The TIME_WAIT entry of `c` ends at `t`: its port is let go.
    #[inline(always)]
    pub fn end_time_wait<O: Observer>(&mut self, t: u64, c: HostConn, cx: &mut Ctx<'_, O>) {
        cx.rec.down(TIME_WAIT, t);
        self.tw_live -= 1;
        self.release(t, c, cx);
        let port = self.port_number(c.port);
        cx.obs.on_time_wait_end_at(self.site, t, port, c.dest);
    }

    /// Whether the caller may keep this host's TIME_WAIT entries
    /// ([`Self::close_keeping_time_wait`]): without `tcp_tw_reuse` an entry
    /// is only ever waited out, so where it is kept does not matter.
    pub fn time_wait_may_be_kept_outside(&self) -> bool {
        !self.use_reuse
    }

    /// How long a TIME_WAIT entry lasts (0: closes never enter it).
    pub fn time_wait_ns(&self) -> u64 {
        self.tw_ns
    }

    /// A close whose TIME_WAIT entry, if it gets one, the caller keeps and
    /// ends with [`Self::end_time_wait`] after [`Self::time_wait_ns`]:
    /// whether it got one. Only where
    /// [`Self::time_wait_may_be_kept_outside`]. A fleet keeps the entries of
    /// all of a group's hosts in one queue, in close order, which is also
    /// their expiry order: one stream through memory instead of one per
    /// host.
    #[inline(always)]
    pub fn close_keeping_time_wait<O: Observer>(
        &mut self,
        t: u64,
        c: HostConn,
        cx: &mut Ctx<'_, O>,
    ) -> bool {
        debug_assert!(!self.use_reuse);
        self.enter_time_wait(t, c, cx)
    }

    /// A client close holds the 4-tuple in TIME_WAIT, unless
    /// `max_tw_buckets` entries already are; any other close frees it.
    /// Whether it entered TIME_WAIT (the entry is the caller's to keep).
    #[inline(always)]
    fn enter_time_wait<O: Observer>(&mut self, t: u64, c: HostConn, cx: &mut Ctx<'_, O>) -> bool {
        if let Some(s) = &mut self.server_tw {
            s.close(t, &c);
        }
        if self.tw_ns > 0 {
            if self.tw_live < self.max_tw_buckets {
                self.tw_live += 1;
                cx.rec.up(TIME_WAIT, t);
                return true;
            }
            self.tw_skipped += 1;
        }
        self.release(t, c, cx);
        false
    }

    #[inline]
    fn mark_reusable(&mut self) {
        let e = self.tw[(self.tw_reuse_cursor - self.tw_base) as usize];
        // An entry that expires no later than it becomes reusable never does.
        if !e.conn.dead && self.reuse_delay_ns < self.tw_ns {
            self.ports.mark_reusable(e.conn.flow, e.conn.port);
        }
        self.tw_reuse_cursor += 1;
    }
}

impl<P: Ports> PortLayer for HostLayer<P> {
    type Held = HostConn;

    #[inline(always)]
    fn open<O: Observer>(
        &mut self,
        t: u64,
        path: Path,
        cx: &mut Ctx<'_, O>,
    ) -> Result<(HostConn, Path), Refused> {
        let dest = path.dest;
        let addr = match self.bind_mode {
            BindMode::Connect => 0,
            BindMode::Bind | BindMode::BindNoPort => self.sources.pick(),
        };
        let key = flow_of(addr, dest);
        let bind = self.bind_mode == BindMode::Bind;
        let req = Request {
            addr,
            dest,
            flow_key: mix64(key ^ 0x706f_7274_7369_6d00),
            now_ns: t,
            bind,
        };
        let pool = self.pools.index(addr, dest);
        let slot = self.ports.flow(key);
        let picked = {
            let c = self.ports.candidates(addr, slot, self.sharing);
            self.alloc.pick(&req, &c)
        };
        let Some(port) = picked else {
            self.pools.refuse(pool);
            return Err(Refused {
                site: self.site,
                cause: super::layer::Cause::NoPort,
            });
        };
        let flow = match slot {
            Some(f) if self.use_reuse && self.ports.is_reusable_tw(f, port) => {
                self.take_over_time_wait(t, f, port, cx);
                self.pools.reopen(pool);
                f
            }
            _ => {
                let o = self.ports.occupy(Take {
                    addr,
                    key,
                    slot,
                    port,
                    bind,
                    now: t,
                });
                if let Some(iv) = o.interval {
                    cx.rec.reuse_interval(iv);
                }
                self.pools.up(pool, t);
                if o.newly_busy {
                    cx.rec.up(IN_USE, t);
                    self.held += 1;
                    cx.obs.on_port_busy_at(self.site, t, addr, port);
                }
                o.flow
            }
        };
        let conn = HostConn {
            port,
            addr,
            dest,
            flow,
            pool,
            bind,
            dead: false,
        };
        if let Some(s) = &mut self.server_tw {
            s.open(t, &conn);
        }
        Ok((
            conn,
            Path {
                addr,
                port,
                dest,
                syn: super::layer::Syn::ONLY,
            },
        ))
    }

    /// A client close holds the 4-tuple in TIME_WAIT, in this host's FIFO
    /// ([`Self::enter_time_wait`]).
    #[inline(always)]
    fn close<O: Observer>(&mut self, t: u64, c: HostConn, cx: &mut Ctx<'_, O>) {
        if self.enter_time_wait(t, c, cx) {
            if self.use_reuse {
                let id = self.tw_base + self.tw.len() as u64;
                self.tw_index.insert(tw_key(c.flow, c.port), id);
            }
            self.tw.push_back(TwEntry { at: t, conn: c });
        }
    }

    /// The connection never got through: its socket goes without TIME_WAIT,
    /// and the attempt counts as failed in its pool.
    fn abort<O: Observer>(&mut self, t: u64, c: HostConn, cx: &mut Ctx<'_, O>) {
        self.pools.abort(c.pool);
        self.release(t, c, cx);
    }

    /// TIME_WAIT ends free ports before closes at the same instant;
    /// reuse eligibility comes after them.
    #[inline]
    fn next_due(&self) -> Due {
        let t_tw = self.t_expiry();
        let t_reuse = self.t_reusable();
        if t_tw <= t_reuse {
            Due::new(t_tw, Phase::Release)
        } else {
            Due::new(t_reuse, Phase::Settle)
        }
    }

    #[inline(always)]
    fn run_due<O: Observer>(&mut self, until: Due, cx: &mut Ctx<'_, O>) {
        loop {
            let t_tw = self.t_expiry();
            let t_reuse = self.t_reusable();
            // At one instant an expiry goes before an eligibility.
            if t_tw <= t_reuse {
                // `u64::MAX` is "never": nothing is due, whatever the bound.
                if t_tw == u64::MAX || Due::new(t_tw, Phase::Release) >= until {
                    return;
                }
                self.expire_time_wait(t_tw, cx);
            } else {
                if Due::new(t_reuse, Phase::Settle) >= until {
                    return;
                }
                self.mark_reusable();
            }
        }
    }
}
