//! The lean engine: the commonest shape of run, made with the least work
//! per attempt.
//!
//! Most single-host runs are one source address, one destination, nothing
//! beyond the host, arrivals from the clock and no retries: every connection
//! is then just its port. The general engine ([`super::Engine`]) still pays
//! for what such a run never uses: a connection table beside the close
//! process, a layer stack whose timers are merged by phase, a flow hash for
//! allocators that ignore it, per-destination and per-pool tallies that
//! equal the run's own, and a dynamic call into the allocator.
//!
//! This engine keeps only what the shape needs and makes the same random
//! draws in the same order, so its outcome is the general engine's, bit for
//! bit (a test runs both on every shape it accepts and on the shipped
//! scenarios, and compares every figure):
//! - the close process ([`CloseProcess`], called directly) holds ports, not
//!   connection slots (the choices it makes depend only on its own draws
//!   and positions);
//! - TIME_WAIT is a ring of `(close time, port)`: constant length, so close
//!   order is expiry order;
//! - between two attempts, the closes due and the TIME_WAIT ends due are two
//!   independent streams (a close's entry ends a whole TIME_WAIT later, and
//!   only ends free ports), so each is drained in its own tight loop.
//!   Everything they update is a sum, except the TIME_WAIT peak, which is
//!   taken at each close from the exact count of earlier ends; and a stretch
//!   that crosses a time-series bin boundary is merged in time order, as the
//!   recorder's bins need;
//! - the allocator is a type parameter: `rfc6056-1` is called directly
//!   (inlined), any other through its box;
//! - when the server closes, a connect meets its TIME_WAIT when the port's
//!   reuse interval is shorter (one address and one destination: a 4-tuple
//!   is its port, freed at its close).
//!
//! One thing it does that is exact in distribution only: under heavy
//! overload it counts runs of certain failures at once ([`Lean::skip_failures`];
//! [`super::PortModel::EachAttempt`] turns it off).
//!
//! Observers that want closes and TIME_WAIT ends interleaved in time order
//! (a trace) use the general engine; [`super::Observer::EVENTS`] says which.
//! Others (the charts' port usage) are told ports taken and let go,
//! connects and failures, in time order.

use super::bursts::Bursts;
use super::closes::{CloseProcess, Memoryless, Timed};
use super::host::{allocator_name, port_rules, time_wait_ns};
use super::pools::{PoolTallies, Whole};
use super::record::{Recorder, IN_USE, OPEN, TIME_WAIT};
use super::traffic::{self, stream, whole_ns, ArrivalClock, Stream};
use super::{default_bin_ns, layer::Site, syn, DestStats, Observer, Outcome};
use crate::alloc::{self, Allocator, RandomStart, Request};
use crate::ports::pool::AddressPools;
use crate::ports::{Ports, Release, Sharing, Take};
use crate::scenario::NS_PER_S;
use crate::scenario::{Close, Scenario};
use crate::util::mix64;

/// Whether `sc` has the shape this engine makes exactly.
pub fn fits(sc: &Scenario) -> bool {
    let (sharing, use_reuse) = port_rules(sc);
    let usable = u64::from(sc.host.usable_ports());
    !sc.is_fleet()
        && sc.via.is_none()
        && sc.traffic.replay.is_none()
        && sc.traffic.retry.is_none()
        && sc.traffic.client.is_none()
        && sc.destinations.len() == 1
        && sc.source_addresses() == 1
        && AddressPools::fits(1, sharing, use_reuse)
        // One address and one destination hold at most `usable` entries,
        // so the bucket limit never binds.
        && sc.host.max_tw_buckets >= usable
}

/// Run `sc`, which [`fits`], to its end; `count_failures`: runs of
/// certain failures may be counted at once ([`Lean::skip_failures`]).
pub fn simulate<O: Observer>(sc: &Scenario, obs: &mut O, count_failures: bool) -> Outcome {
    debug_assert!(fits(sc) && !O::EVENTS);
    let rng = traffic::rng(sc.seed, Stream::at(Site::HOST0, stream::ALLOCATOR));
    let name = allocator_name(sc);
    if name == "rfc6056-1" {
        // A failed random-start pick draws its start and changes nothing
        // else, so failures may be counted at once.
        return with_closes(sc, obs, RandomStart::new(rng), count_failures);
    }
    let entry = alloc::entry(name).expect("validated allocator name");
    let boxed = (entry.build)(alloc::Setup {
        settings: &sc.host.alloc_settings(),
        rng,
    });
    with_closes(sc, obs, boxed, false)
}

/// The run with its close process chosen.
fn with_closes<O: Observer, A: Allocator>(
    sc: &Scenario,
    obs: &mut O,
    alloc: A,
    skip: bool,
) -> Outcome {
    // Only a closing server needs the reuse intervals compared with its
    // TIME_WAIT; the others are made without the compare.
    let server = sc.traffic.close == Close::Server;
    match (Memoryless::of(sc, Site::HOST0), server) {
        (Some(closes), false) => Lean::<_, _, _, false>::new(sc, obs, alloc, closes, skip).run(),
        (Some(closes), true) => Lean::<_, _, _, true>::new(sc, obs, alloc, closes, skip).run(),
        (None, false) => {
            Lean::<_, _, _, false>::new(sc, obs, alloc, Timed::of(sc, Site::HOST0), skip).run()
        }
        (None, true) => {
            Lean::<_, _, _, true>::new(sc, obs, alloc, Timed::of(sc, Site::HOST0), skip).run()
        }
    }
}

/// Count failures at once only where at least this many are expected
/// before a port is let go: below it, a Poisson draw costs about as much as
/// the attempts it replaces.
const SKIP_MIN: f64 = 8.0;

/// A TIME_WAIT entry: when its connection closed, and its port.
#[derive(Clone, Copy, Default)]
struct TwEntry {
    at: u64,
    port: u32,
}

/// The TIME_WAIT entries in close order: a ring as large as the ports
/// (each entry holds one, so it never fills), indexed by a mask.
struct TwRing {
    buf: Vec<TwEntry>,
    mask: usize,
    head: usize,
    len: usize,
}

impl TwRing {
    fn new(ports: u32) -> Self {
        let cap = (ports as usize).max(1).next_power_of_two();
        TwRing {
            buf: vec![TwEntry::default(); cap],
            mask: cap - 1,
            head: 0,
            len: 0,
        }
    }

    #[inline(always)]
    fn is_empty(&self) -> bool {
        self.len == 0
    }

    #[inline(always)]
    fn push_back(&mut self, e: TwEntry) {
        debug_assert!(self.len <= self.mask, "an entry per port");
        self.buf[(self.head + self.len) & self.mask] = e;
        self.len += 1;
    }

    #[inline(always)]
    fn front(&self) -> Option<TwEntry> {
        (self.len > 0).then(|| self.buf[self.head & self.mask])
    }

    #[inline(always)]
    fn pop_front(&mut self) -> Option<TwEntry> {
        let e = self.front()?;
        self.head = (self.head + 1) & self.mask;
        self.len -= 1;
        Some(e)
    }

    /// The entries in close order.
    fn iter(&self) -> impl Iterator<Item = TwEntry> + '_ {
        (0..self.len).map(|i| self.buf[(self.head + i) & self.mask])
    }
}

/// `SERVER`: the server closes first.
struct Lean<'a, O: Observer, A: Allocator, C: CloseProcess, const SERVER: bool> {
    sc: &'a Scenario,
    alloc: A,
    ports: AddressPools,
    sharing: Sharing,
    /// The request every attempt makes (one address, one destination): only
    /// its time changes.
    req: Request,
    closes: C,
    /// Open connections.
    open: u32,
    tw: TwRing,
    /// When the oldest TIME_WAIT entry ends (`u64::MAX`: none), kept
    /// beside the queue: it is read before every attempt.
    tw_next: u64,
    /// How long TIME_WAIT lasts (0: closes free their port at once).
    tw_ns: u64,
    /// How long the server holds a 4-tuple in TIME_WAIT when it closes
    /// first (`SERVER`), and the connects that met one.
    server_tw_ns: u64,
    server_reuses: u64,
    rec: Recorder,
    bursts: Bursts,
    attempts: u64,
    failures: u64,
    first_failure: Option<(u64, u64)>,
    now: u64,
    /// Ports that can be held at once: when all are, every attempt fails
    /// until one is let go.
    usable: u32,
    /// Whether runs of certain failures may be counted at once
    /// ([`Self::skip_failures`]).
    skip: bool,
    obs: &'a mut O,
    /// The port number of index 0.
    port_lo: u16,
}

impl<'a, O: Observer, A: Allocator, C: CloseProcess, const SERVER: bool> Lean<'a, O, A, C, SERVER> {
    fn new(sc: &'a Scenario, obs: &'a mut O, alloc: A, closes: C, skip_ok: bool) -> Self {
        let h = &sc.host;
        let bin_ns = sc.bin_ns.unwrap_or_else(|| default_bin_ns(sc.duration_ns));
        let (sharing, _) = port_rules(sc);
        // The flow of address 0 to destination 0, keyed as the host layer
        // keys it.
        let key = 0u64;
        Lean {
            sc,
            alloc,
            ports: AddressPools::new(h.range_size(), 1, h.reserved_indices()),
            sharing,
            req: Request {
                addr: 0,
                dest: 0,
                flow_key: mix64(key ^ 0x706f_7274_7369_6d00),
                now_ns: 0,
                bind: sc.traffic.bind == crate::scenario::BindMode::Bind,
            },
            closes,
            open: 0,
            tw: TwRing::new(h.range_size()),
            tw_next: u64::MAX,
            tw_ns: if sc.traffic.close == Close::Client {
                time_wait_ns(sc)
            } else {
                0
            },
            server_tw_ns: h.time_wait_ns,
            server_reuses: 0,
            rec: {
                let mut rec = Recorder::new(bin_ns, sc.bin_ns.is_none());
                rec.derive();
                rec
            },
            bursts: Bursts::until(sc.duration_ns.unwrap_or(u64::MAX)),
            attempts: 0,
            failures: 0,
            first_failure: None,
            now: 0,
            usable: h.usable_ports(),
            // Counting needs the run's end to be its duration, and an
            // allocator whose failed picks change nothing but its draws.
            skip: skip_ok
                && sc.duration_ns.is_some()
                && sc.max_connections.is_none()
                && !O::STOP_AT_FAILURE,
            obs,
            port_lo: h.port_lo,
        }
    }

    fn run(mut self) -> Outcome {
        let sc = self.sc;
        let horizon = sc.duration_ns.unwrap_or(u64::MAX);
        let max_attempts = sc.max_connections.unwrap_or(u64::MAX);
        let mut clock = ArrivalClock::new(
            sc.seed,
            sc.traffic.arrivals,
            sc.traffic.rate.clone(),
            sc.traffic.requests_per_connection,
        );
        let mut stopped = false;
        let mut next = clock.next_arrival().unwrap_or(u64::MAX);
        loop {
            let t = next;
            if t == u64::MAX && horizon == u64::MAX {
                break;
            }
            self.drain(t.min(horizon));
            if t > horizon {
                break;
            }
            // The arrival after this one is drawn first (its stream is its
            // own, so the order of draws is unchanged): its latency then
            // overlaps the attempt's work.
            next = clock.next_arrival().unwrap_or(u64::MAX);
            self.now = t;
            let failures = self.failures;
            self.attempt(t);
            if self.skip && self.failures > failures && self.rec.level(IN_USE) == self.usable {
                next = self.skip_failures(&mut clock, next, horizon);
            }
            if self.attempts >= max_attempts {
                break;
            }
            if O::STOP_AT_FAILURE && self.failures > 0 {
                stopped = true;
                break;
            }
        }
        let end = if !stopped
            && horizon != u64::MAX
            && self.now <= horizon
            && self.attempts < max_attempts
        {
            horizon
        } else {
            self.now
        };
        self.finish(end)
    }

    /// When the oldest TIME_WAIT entry ends (`u64::MAX`: none).
    #[inline(always)]
    fn tw_due(&self) -> u64 {
        self.tw_next
    }

    /// A close at `t` leaves its port in TIME_WAIT.
    #[inline(always)]
    fn push_time_wait(&mut self, t: u64, port: u32) {
        if self.tw.is_empty() {
            self.tw_next = t.saturating_add(self.tw_ns);
        }
        self.tw.push_back(TwEntry { at: t, port });
    }

    /// Every close and TIME_WAIT end due by `limit`, as if in time order
    /// (at one instant an end goes first: it frees a port, a close only
    /// moves one to TIME_WAIT).
    #[inline(always)]
    fn drain(&mut self, limit: u64) {
        if limit >= self.rec.bin_end() {
            return self.drain_in_order(limit);
        }
        // Closes first, then ends: a close's own entry ends a whole
        // TIME_WAIT later, past `limit`, so neither stream changes the
        // other. Only the TIME_WAIT peak sees the interleaving: at a close
        // the count is too high by the ends due by then, which are counted
        // from the front of the queue when the count could be a new peak.
        loop {
            let tc = self.closes.peek_time();
            if tc > limit {
                break;
            }
            let port = self.closes.pop();
            self.close(tc, port);
        }
        while self.tw_next <= limit {
            self.end_time_wait(self.tw_next);
        }
    }

    /// Entries at the front of the queue whose TIME_WAIT ends by `t`.
    #[cold]
    fn tw_ended_by(&self, t: u64) -> u32 {
        self.tw
            .iter()
            .take_while(|e| e.at.saturating_add(self.tw_ns) <= t)
            .count() as u32
    }

    /// [`Self::drain`] one event at a time, in time order: across a
    /// time-series bin boundary, where the recorder needs it.
    #[cold]
    fn drain_in_order(&mut self, limit: u64) {
        loop {
            let te = self.tw_due();
            let tc = self.closes.peek_time();
            if te <= tc {
                if te > limit || te == u64::MAX {
                    return;
                }
                self.end_time_wait(te);
            } else {
                if tc > limit {
                    return;
                }
                let port = self.closes.pop();
                self.close(tc, port);
            }
        }
    }

    /// The port number of port index `idx`.
    #[inline(always)]
    fn port_number(&self, idx: u32) -> u16 {
        (u32::from(self.port_lo) + idx) as u16
    }

    #[inline(always)]
    fn end_time_wait(&mut self, t: u64) {
        let e = self.tw.pop_front().expect("peeked");
        self.tw_next = self
            .tw
            .front()
            .map_or(u64::MAX, |e| e.at.saturating_add(self.tw_ns));
        self.rec.down(TIME_WAIT, t);
        self.release(t, e.port);
        let port = self.port_number(e.port);
        self.obs.on_time_wait_end_at(Site::HOST0, t, port, 0);
    }

    /// `port` is free at `t` (its level's change is already recorded).
    #[inline(always)]
    fn release(&mut self, t: u64, port: u32) {
        self.ports.release(Release {
            addr: 0,
            slot: 0,
            port,
            bind: self.req.bind,
            now: t,
        });
        self.rec.in_use_down();
        self.obs.on_port_free_at(Site::HOST0, t, 0, port);
    }

    #[inline(always)]
    /// The connection on `port` closes at `t`. Drained ahead of the
    /// TIME_WAIT ends due by `t` ([`Self::drain`]), the TIME_WAIT count is
    /// too high by them, so a possible new peak is taken less those; in
    /// time order there are none.
    fn close(&mut self, t: u64, port: u32) {
        self.open -= 1;
        self.rec.down(OPEN, t);
        self.obs.on_close(t, self.port_number(port), 0);
        if self.tw_ns == 0 {
            return self.release(t, port);
        }
        let level = self.rec.raise(TIME_WAIT, t);
        if level > self.rec.peak(TIME_WAIT) {
            let ended = self.tw_ended_by(t);
            self.rec.note_peak(TIME_WAIT, level - ended);
        }
        self.push_time_wait(t, port);
    }

    #[inline(always)]
    fn attempt(&mut self, t: u64) {
        self.bursts.attempt(t, self.attempts, self.failures);
        self.attempts += 1;
        self.rec.bin(t).attempts += 1;
        self.req.now_ns = t;
        let picked = {
            let c = self.ports.candidates(0, Some(0), self.sharing);
            self.alloc.pick(&self.req, &c)
        };
        let Some(port) = picked else {
            return self.fail(t);
        };
        let o = self.ports.occupy(Take {
            addr: 0,
            key: 0,
            slot: Some(0),
            port,
            bind: self.req.bind,
            now: t,
        });
        if let Some(iv) = o.interval {
            self.rec.reuse_interval(iv);
            // A closing server frees the port at its close, so the port
            // was last closed `iv` ago: in the server's TIME_WAIT if less.
            if SERVER {
                self.server_reuses += u64::from(iv < self.server_tw_ns);
            }
        }
        self.rec.in_use_up(t);
        self.obs.on_port_busy_at(Site::HOST0, t, 0, port);
        self.closes.open(t, port);
        self.open += 1;
        self.bursts.success(t);
        self.rec.up(OPEN, t);
        self.obs.on_connect(t, self.port_number(port), 0);
    }

    /// Every port is held and the attempt at hand failed: every attempt
    /// before the first port is let go fails too. Where that is many, they
    /// are counted, not made: `next`, the arrival already drawn, fails on
    /// its own, and the arrivals after it up to the port's release are a
    /// Poisson count, drawn per stretch of one time-series bin and one
    /// second (so each bin and each failure window gets its own count; the
    /// split of a Poisson count over sub-intervals is multinomial, so this
    /// is exact in distribution). The closes meanwhile are made in time
    /// order. The arrival after is an exponential gap after the release
    /// (Poisson arrivals are memoryless). The first failure of a run is
    /// always made on its own. Returns the next arrival.
    #[cold]
    fn skip_failures(&mut self, clock: &mut ArrivalClock, next: u64, horizon: u64) -> u64 {
        let Some(rate) = clock.flat_rate() else {
            return next;
        };
        let released = if self.tw_ns > 0 {
            self.tw_next
        } else {
            self.closes.peek_time()
        };
        // Arrivals round to whole ns: those before `released - 0.5` fail,
        // and those after `horizon + 0.5` are past the run.
        let end_ns = (released as f64 - 0.5).min(horizon as f64 + 0.5);
        let from_ns = clock.time_ns();
        if next >= released || next > horizon || rate * (end_ns - from_ns) / 1e9 < SKIP_MIN {
            return next;
        }
        // `next` itself.
        self.drain(next);
        self.count_failures(next, 1);
        // The rest, stretch by stretch.
        let mut a = from_ns;
        while a < end_ns {
            let at = whole_ns(a + 0.5);
            let second_end = (at / NS_PER_S + 1).saturating_mul(NS_PER_S);
            self.drain(at);
            self.rec.bin(at);
            let boundary = second_end.min(self.rec.bin_end());
            let c = (boundary as f64 - 0.5).min(end_ns);
            if c <= a {
                // Times past 2^53 ns no longer resolve half a ns: the rest
                // are made one by one.
                break;
            }
            let k = clock.poisson(rate * (c - a) / 1e9);
            if k > 0 {
                self.count_failures(at, k);
            }
            a = c;
        }
        clock.skip_to(a);
        clock.next_arrival().unwrap_or(u64::MAX)
    }

    /// `k` attempts failed at about `t` (the same second and bin).
    fn count_failures(&mut self, t: u64, k: u64) {
        self.bursts.attempt(t, self.attempts, self.failures);
        self.attempts += k;
        self.failures += k;
        self.bursts.failure(t);
        let b = self.rec.bin(t);
        b.attempts += k;
        b.failures += k;
        for _ in 0..k {
            self.obs.on_fail_at(Site::HOST0, t, 0);
        }
    }

    #[cold]
    fn fail(&mut self, t: u64) {
        self.failures += 1;
        self.bursts.failure(t);
        self.rec.bin(t).failures += 1;
        if self.first_failure.is_none() {
            self.first_failure = Some((t, self.attempts));
        }
        self.obs.on_fail_at(Site::HOST0, t, 0);
    }

    fn finish(self, end: u64) -> Outcome {
        self.obs.on_end(end);
        let span = end.max(1) as f64;
        let (attempts, failures) = (self.attempts, self.failures);
        let established = attempts - failures;
        let time_wait_at_end = self.rec.level(TIME_WAIT);
        let distinct_used = self.ports.distinct_used();
        let r = self.rec.finish(end);
        let whole = Whole {
            peak_in_use: r.peak[IN_USE],
            mean_in_use: r.area[IN_USE] / span,
            attempts,
            failures,
        };
        let pool_tallies = PoolTallies::new(1, 1, self.sharing == Sharing::Exclusive);
        let pools_total = pool_tallies.total();
        // Every connect completed at once.
        let delays = syn::Delays {
            zero: established,
            ..syn::Delays::default()
        };
        Outcome {
            bursts: self.bursts.finish(end, attempts, failures),
            simulated_ns: end,
            attempts,
            established,
            failures,
            first_failure: self.first_failure,
            retries: 0,
            // Without retries every failed request is abandoned.
            abandoned: failures,
            tw_reused: 0,
            tw_skipped: 0,
            server_time_wait_reuses: SERVER.then_some(self.server_reuses),
            distinct_used,
            peak_in_use: r.peak[IN_USE],
            mean_in_use: r.area[IN_USE] / span,
            peak_time_wait: r.peak[TIME_WAIT],
            mean_time_wait: r.area[TIME_WAIT] / span,
            peak_open: r.peak[OPEN],
            open_at_end: self.open,
            time_wait_at_end,
            bin_ns: r.bin_ns,
            bins: r.bins,
            reuse: r.reuse,
            reuse_hosts: 1,
            per_destination: vec![DestStats {
                attempts,
                established,
                failures,
            }],
            nats: Vec::new(),
            pools: pool_tallies.finish(end, whole),
            pools_total,
            groups: Vec::new(),
            connecting_at_end: 0,
            delays,
            failures_at: vec![failures],
            first_failure_at: (failures > 0).then(|| "host".to_string()),
            client: None,
        }
    }
}
