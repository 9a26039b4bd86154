//! The discrete-event engine.
//!
//! Time is `u64` nanoseconds and the run is single-threaded, so a scenario and
//! seed give the same result on every machine. The event set is split by kind,
//! because each kind has a cheaper structure than one global heap:
//! - the next arrival: a single pending time from [`traffic::ArrivalClock`];
//! - retries: constant delay, so a FIFO;
//! - closes: a FIFO when the hold time is constant, a memoryless close process
//!   for exponential holds, else a heap of the open connections (`closes`);
//! - TIME_WAIT expiries and `tcp_tw_reuse` eligibility: constant offsets from
//!   the close, so one FIFO read by two cursors.
//!
//! Attempts (arrivals and retries) drive the loop. Before each attempt every
//! timer due by then is drained in time order; ties go TIME_WAIT end, close,
//! reuse eligibility, then retry, then arrival, so ports freed at an instant
//! are usable by an attempt at that instant.
//!
//! Occupancy is tallied at each change rather than integrated between events
//! ([`record`]). Memory is proportional to ports, flows and connections in
//! flight; the time series merges bins instead of growing.
//!
//! The host is one port state ([`Ports`]) and one allocator; the run loop
//! talks to it only through `attempt`/`close`, the seam where several hosts
//! and a NAT layer between hosts and destinations plug in. The port state is
//! [`PortSpace`] in general and [`AddressPools`] when one bitset per address
//! describes the host; the engine is compiled for each, so neither pays for the other.

mod closes;
pub mod queue;
pub mod record;
pub mod traffic;

use std::collections::VecDeque;

use crate::ports::fastmap::FastMap;

use crate::alloc::{self, Allocator, Request};
use crate::ports::pool::AddressPools;
use crate::ports::{PortSpace, Ports, Sharing};
use crate::scenario::{BindMode, Close, Scenario};
use crate::util::mix64;
use closes::Closes;
use record::{Bin, Recorder, IN_USE, OPEN, TIME_WAIT};
use traffic::{stream, ArrivalClock, Chooser};

/// Receives every event of a run; all hooks default to doing nothing, so the
/// engine pays nothing for observers it does not have.
pub trait Observer {
    fn on_connect(&mut self, _t_ns: u64, _port: u16, _dest: u32) {}
    fn on_fail(&mut self, _t_ns: u64, _dest: u32) {}
    fn on_close(&mut self, _t_ns: u64, _port: u16, _dest: u32) {}
    fn on_time_wait_end(&mut self, _t_ns: u64, _port: u16, _dest: u32) {}
    /// Port `idx` (offset into the range) of source address `addr` became
    /// held (by a connection or TIME_WAIT entry) at `t_ns`, having been free.
    fn on_port_busy(&mut self, _t_ns: u64, _addr: u32, _idx: u32) {}
    /// Port `idx` of address `addr` is free again: nothing holds it.
    fn on_port_free(&mut self, _t_ns: u64, _addr: u32, _idx: u32) {}
    /// The run ends at `t_ns`; nothing happens after it.
    fn on_end(&mut self, _t_ns: u64) {}
}

/// Two observers side by side, e.g. a trace and the charts' port usage.
impl<A: Observer, B: Observer> Observer for (A, B) {
    fn on_connect(&mut self, t: u64, port: u16, dest: u32) {
        self.0.on_connect(t, port, dest);
        self.1.on_connect(t, port, dest);
    }
    fn on_fail(&mut self, t: u64, dest: u32) {
        self.0.on_fail(t, dest);
        self.1.on_fail(t, dest);
    }
    fn on_close(&mut self, t: u64, port: u16, dest: u32) {
        self.0.on_close(t, port, dest);
        self.1.on_close(t, port, dest);
    }
    fn on_time_wait_end(&mut self, t: u64, port: u16, dest: u32) {
        self.0.on_time_wait_end(t, port, dest);
        self.1.on_time_wait_end(t, port, dest);
    }
    fn on_port_busy(&mut self, t: u64, addr: u32, idx: u32) {
        self.0.on_port_busy(t, addr, idx);
        self.1.on_port_busy(t, addr, idx);
    }
    fn on_port_free(&mut self, t: u64, addr: u32, idx: u32) {
        self.0.on_port_free(t, addr, idx);
        self.1.on_port_free(t, addr, idx);
    }
    fn on_end(&mut self, t: u64) {
        self.0.on_end(t);
        self.1.on_end(t);
    }
}

/// An observer that may be absent (e.g. no `--trace`).
impl<T: Observer> Observer for Option<T> {
    fn on_connect(&mut self, t: u64, port: u16, dest: u32) {
        self.iter_mut().for_each(|o| o.on_connect(t, port, dest));
    }
    fn on_fail(&mut self, t: u64, dest: u32) {
        self.iter_mut().for_each(|o| o.on_fail(t, dest));
    }
    fn on_close(&mut self, t: u64, port: u16, dest: u32) {
        self.iter_mut().for_each(|o| o.on_close(t, port, dest));
    }
    fn on_time_wait_end(&mut self, t: u64, port: u16, dest: u32) {
        self.iter_mut()
            .for_each(|o| o.on_time_wait_end(t, port, dest));
    }
    fn on_port_busy(&mut self, t: u64, addr: u32, idx: u32) {
        self.iter_mut().for_each(|o| o.on_port_busy(t, addr, idx));
    }
    fn on_port_free(&mut self, t: u64, addr: u32, idx: u32) {
        self.iter_mut().for_each(|o| o.on_port_free(t, addr, idx));
    }
    fn on_end(&mut self, t: u64) {
        self.iter_mut().for_each(|o| o.on_end(t));
    }
}

/// An observer that ignores everything.
pub struct Quiet;
impl Observer for Quiet {}

/// Per-destination counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DestStats {
    pub attempts: u64,
    pub established: u64,
    pub failures: u64,
}

/// Keep per-destination counters up to this many destinations.
pub const MAX_DEST_STATS: usize = 4096;

/// Everything a run measured.
pub struct Outcome {
    pub simulated_ns: u64,
    pub attempts: u64,
    pub established: u64,
    pub failures: u64,
    /// (time, 1-based attempt number) of the first failure.
    pub first_failure: Option<(u64, u64)>,
    pub retries: u64,
    /// Requests that failed and had no retry left.
    pub abandoned: u64,
    /// connect() calls that took over a TIME_WAIT 4-tuple (`tw_reuse`).
    pub tw_reused: u64,
    /// Closes that skipped TIME_WAIT because `max_tw_buckets` was reached.
    pub tw_skipped: u64,
    pub distinct_used: u32,
    pub peak_in_use: u32,
    pub mean_in_use: f64,
    pub peak_time_wait: u32,
    pub mean_time_wait: f64,
    pub peak_open: u32,
    pub open_at_end: u32,
    pub time_wait_at_end: u32,
    pub reuse: hdrhistogram::Histogram<u64>,
    pub bins: Vec<Bin>,
    pub bin_ns: u64,
    pub per_destination: Vec<DestStats>,
}

#[derive(Clone, Copy)]
struct Conn {
    port: u32,
    addr: u32,
    dest: u32,
    /// The flow's slot in the port space (stable while the connection or its
    /// TIME_WAIT entry lives).
    flow: u32,
    bind: bool,
    /// A TIME_WAIT entry taken over by `tcp_tw_reuse`.
    dead: bool,
}

/// A TIME_WAIT entry: expiry and reuse eligibility are fixed offsets from
/// `at`, the close, so one time serves both cursors.
#[derive(Clone, Copy)]
struct TwEntry {
    at: u64,
    conn: Conn,
}

fn flow_of(addr: u32, dest: u32) -> u64 {
    (u64::from(addr) << 32) | u64::from(dest)
}

/// Key of a TIME_WAIT 4-tuple in `tw_index`: flow slot and port.
fn tw_key(flow: u32, port: u32) -> u64 {
    (u64::from(flow) << 32) | u64::from(port)
}

/// Pick a time-series bin width near `duration / 1000` from a 1-2-5 ladder.
pub fn default_bin_ns(duration_ns: Option<u64>) -> u64 {
    let target = duration_ns.map_or(1_000_000_000, |d| (d / 1000).max(1_000_000));
    let mut unit = 1_000_000u64; // 1 ms
    loop {
        for m in [1, 2, 5] {
            if unit * m >= target {
                return unit * m;
            }
        }
        unit *= 10;
    }
}

struct Engine<'a, O: Observer, P: Ports> {
    sc: &'a Scenario,
    obs: &'a mut O,
    ports: P,
    alloc: Box<dyn Allocator>,
    sources: Chooser,
    closes: Closes,
    /// `tcp_tw_reuse` applies (on, and connect() shares ports by 4-tuple).
    use_reuse: bool,
    /// Closes enter TIME_WAIT for this long (0: they never do).
    tw_ns: u64,
    reuse_delay_ns: u64,
    conns: Vec<Conn>,
    free_conns: Vec<u32>,
    retries: VecDeque<(u64, u32, u32)>,
    tw: VecDeque<TwEntry>,
    /// Absolute id of `tw[0]`.
    tw_base: u64,
    /// Absolute id of the next entry whose reuse eligibility is pending.
    tw_reuse_cursor: u64,
    /// (flow slot, port) -> TIME_WAIT id, kept only with `tw_reuse`.
    tw_index: FastMap<u64, u64>,
    sharing: Sharing,
    rec: Recorder,
    out: Counters,
    per_dest: Vec<DestStats>,
    /// Time of the last event processed.
    now: u64,
}

#[derive(Default)]
struct Counters {
    attempts: u64,
    established: u64,
    failures: u64,
    first_failure: Option<(u64, u64)>,
    retries: u64,
    abandoned: u64,
    tw_reused: u64,
    tw_skipped: u64,
}

/// Which port state a run keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortModel {
    /// The cheapest one that fits the scenario.
    Auto,
    /// The general one, whatever the scenario (to check the others against).
    General,
}

/// Run a scenario to its end.
pub fn simulate<O: Observer>(sc: &Scenario, obs: &mut O) -> Outcome {
    simulate_with(sc, obs, PortModel::Auto)
}

/// Run a scenario to its end, keeping port state as `model` says.
pub fn simulate_with<O: Observer>(sc: &Scenario, obs: &mut O, model: PortModel) -> Outcome {
    let h = &sc.host;
    let reserved = h.reserved_indices();
    let (sharing, use_reuse) = port_rules(sc);
    if model == PortModel::Auto && AddressPools::fits(sc.destinations.len(), sharing, use_reuse) {
        let ports = AddressPools::new(h.range_size(), h.addresses.len() as u32, reserved);
        return run_with(sc, obs, ports, sharing, use_reuse);
    }
    let ports = PortSpace::new(h.range_size(), h.addresses.len() as u32, reserved);
    run_with(sc, obs, ports, sharing, use_reuse)
}

/// How requests compete for ports, and whether `tcp_tw_reuse` applies (it
/// needs ports shared by 4-tuple).
fn port_rules(sc: &Scenario) -> (Sharing, bool) {
    if sc.exclusive_ports() {
        (Sharing::Exclusive, false)
    } else {
        (Sharing::FourTuple, sc.host.tw_reuse)
    }
}

fn run_with<O: Observer, P: Ports>(
    sc: &Scenario,
    obs: &mut O,
    ports: P,
    sharing: Sharing,
    use_reuse: bool,
) -> Outcome {
    let h = &sc.host;
    let entry = alloc::entry(&h.allocator).expect("validated allocator name");
    let alloc = (entry.build)(alloc::Setup {
        settings: &h.alloc_settings(),
        rng: traffic::rng(sc.seed, stream::ALLOCATOR),
    });
    let sources = Chooser::new(
        sc.seed,
        stream::SOURCE,
        &vec![1.0; h.addresses.len()],
        sc.traffic.source,
    );
    let bin_ns = sc.bin_ns.unwrap_or_else(|| default_bin_ns(sc.duration_ns));
    let n_dest = sc.destinations.len();
    let tw_ns = if sc.traffic.close == Close::Client {
        sc.effective_time_wait_ns()
    } else {
        0
    };
    let e = Engine {
        sc,
        obs,
        ports,
        alloc,
        closes: Closes::new(sc),
        use_reuse,
        tw_ns,
        reuse_delay_ns: h.tw_reuse_delay_ns,
        sources,
        conns: Vec::new(),
        free_conns: Vec::new(),
        retries: VecDeque::new(),
        tw: VecDeque::new(),
        tw_base: 0,
        tw_reuse_cursor: 0,
        tw_index: FastMap::default(),
        sharing,
        rec: Recorder::new(bin_ns, sc.bin_ns.is_none()),
        out: Counters::default(),
        per_dest: vec![DestStats::default(); if n_dest <= MAX_DEST_STATS { n_dest } else { 0 }],
        now: 0,
    };
    e.run()
}

impl<O: Observer, P: Ports> Engine<'_, O, P> {
    /// Attempts drive the loop: before each one, every timer due by then
    /// (TIME_WAIT ends, closes, reuse eligibility) is processed in time order.
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
        let weights: Vec<f64> = sc.destinations.iter().map(|d| d.weight).collect();
        let mut dests = Chooser::new(sc.seed, stream::DESTINATION, &weights, sc.traffic.pick);
        let mut next_arrival = clock.next_arrival().unwrap_or(u64::MAX);
        loop {
            let t_retry = self.retries.front().map_or(u64::MAX, |r| r.0);
            let t = t_retry.min(next_arrival);
            if t == u64::MAX && horizon == u64::MAX {
                // Arrivals stopped and no retry is pending, in a run bounded
                // only by `max_connections`: it ends with its last attempt.
                break;
            }
            self.drain(t.min(horizon));
            if t > horizon {
                break;
            }
            self.now = t;
            // At one instant a retry goes before a new arrival.
            if t_retry == t {
                let (_, dest, tries) = self.retries.pop_front().expect("peeked");
                self.out.retries += 1;
                self.attempt(t, dest, tries);
            } else {
                let dest = dests.pick();
                self.attempt(t, dest, 0);
                next_arrival = clock.next_arrival().unwrap_or(u64::MAX);
            }
            if self.out.attempts >= max_attempts {
                break;
            }
        }
        let now = self.now;
        let end = if horizon != u64::MAX && now <= horizon && self.out.attempts < max_attempts {
            horizon
        } else {
            now
        };
        self.finish(end)
    }

    /// Process the timers due at or before `limit`, earliest first; at one
    /// instant a TIME_WAIT end goes before a close, and both before a reuse
    /// eligibility, so ports freed at an instant are usable at that instant.
    fn drain(&mut self, limit: u64) {
        loop {
            let t_tw = self
                .tw
                .front()
                .map_or(u64::MAX, |e| e.at.saturating_add(self.tw_ns));
            let t_close = self.closes.peek_time();
            let t_reuse = if self.use_reuse {
                self.tw
                    .get((self.tw_reuse_cursor - self.tw_base) as usize)
                    .map_or(u64::MAX, |e| e.at.saturating_add(self.reuse_delay_ns))
            } else {
                u64::MAX
            };
            let t = t_tw.min(t_close).min(t_reuse);
            // `u64::MAX` is "never": nothing is due, whatever the limit.
            if t > limit || t == u64::MAX {
                return;
            }
            self.now = t;
            if t_tw == t {
                self.expire_time_wait(t);
            } else if t_close == t {
                let slot = self.closes.pop();
                self.close(t, slot);
            } else {
                let e = self.tw[(self.tw_reuse_cursor - self.tw_base) as usize];
                // An entry that expires no later than it becomes reusable never does.
                if !e.conn.dead && self.reuse_delay_ns < self.tw_ns {
                    self.ports.mark_reusable(e.conn.flow, e.conn.port);
                }
                self.tw_reuse_cursor += 1;
            }
        }
    }

    fn port_number(&self, idx: u32) -> u16 {
        (u32::from(self.sc.host.port_lo) + idx) as u16
    }

    fn attempt(&mut self, t: u64, dest: u32, tries: u32) {
        let sc = self.sc;
        self.out.attempts += 1;
        self.rec.bin(t).attempts += 1;
        if let Some(d) = self.per_dest.get_mut(dest as usize) {
            d.attempts += 1;
        }
        let addr = match sc.traffic.bind {
            BindMode::Connect => 0,
            BindMode::Bind | BindMode::BindNoPort => self.sources.pick(),
        };
        let key = flow_of(addr, dest);
        let bind = sc.traffic.bind == BindMode::Bind;
        let req = Request {
            addr,
            dest,
            flow_key: mix64(key ^ 0x706f_7274_7369_6d00),
            now_ns: t,
            bind,
        };
        let slot = self.ports.flow(key);
        let picked = {
            let c = self.ports.candidates(addr, slot, self.sharing);
            self.alloc.pick(&req, &c)
        };
        let Some(port) = picked else {
            self.fail(t, dest, tries);
            return;
        };
        let flow = match slot {
            Some(f) if self.use_reuse && self.ports.is_reusable_tw(f, port) => {
                self.take_over_time_wait(t, f, port);
                f
            }
            _ => {
                let o = self.ports.occupy(addr, key, slot, port, bind, t);
                if let Some(iv) = o.interval {
                    self.rec.reuse_interval(iv);
                }
                if o.newly_busy {
                    self.rec.up(IN_USE, t);
                    self.obs.on_port_busy(t, addr, port);
                }
                o.flow
            }
        };
        let conn = Conn {
            port,
            addr,
            dest,
            flow,
            bind,
            dead: false,
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
        self.closes.open(t, slot);
        self.out.established += 1;
        self.rec.up(OPEN, t);
        self.rec.bin(t).established += 1;
        if let Some(d) = self.per_dest.get_mut(dest as usize) {
            d.established += 1;
        }
        let p = self.port_number(port);
        self.obs.on_connect(t, p, dest);
    }

    fn fail(&mut self, t: u64, dest: u32, tries: u32) {
        self.out.failures += 1;
        self.rec.bin(t).failures += 1;
        if let Some(d) = self.per_dest.get_mut(dest as usize) {
            d.failures += 1;
        }
        if self.out.first_failure.is_none() {
            self.out.first_failure = Some((t, self.out.attempts));
        }
        self.obs.on_fail(t, dest);
        match self.sc.traffic.retry {
            Some(r) if tries < r.max => {
                self.retries
                    .push_back((t.saturating_add(r.after_ns), dest, tries + 1))
            }
            _ => self.out.abandoned += 1,
        }
    }

    fn take_over_time_wait(&mut self, t: u64, flow: u32, port: u32) {
        self.ports.take_over(flow, port);
        if let Some(id) = self.tw_index.remove(&tw_key(flow, port)) {
            self.tw[(id - self.tw_base) as usize].conn.dead = true;
        }
        self.rec.down(TIME_WAIT, t);
        self.out.tw_reused += 1;
    }

    fn close(&mut self, t: u64, slot: u32) {
        let c = self.conns[slot as usize];
        self.free_conns.push(slot);
        self.rec.down(OPEN, t);
        let port = self.port_number(c.port);
        self.obs.on_close(t, port, c.dest);
        if self.tw_ns > 0 {
            if u64::from(self.rec.level(TIME_WAIT)) < self.sc.host.max_tw_buckets {
                if self.use_reuse {
                    let id = self.tw_base + self.tw.len() as u64;
                    self.tw_index.insert(tw_key(c.flow, c.port), id);
                }
                self.tw.push_back(TwEntry { at: t, conn: c });
                self.rec.up(TIME_WAIT, t);
                return;
            }
            self.out.tw_skipped += 1;
        }
        self.release(t, c);
    }

    fn release(&mut self, t: u64, c: Conn) {
        if self.ports.release(c.addr, c.flow, c.port, c.bind, t) {
            self.rec.down(IN_USE, t);
            self.obs.on_port_free(t, c.addr, c.port);
        }
    }

    fn expire_time_wait(&mut self, t: u64) {
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
        self.rec.down(TIME_WAIT, t);
        self.release(t, c);
        let port = self.port_number(c.port);
        self.obs.on_time_wait_end(t, port, c.dest);
    }

    fn finish(self, end: u64) -> Outcome {
        self.obs.on_end(end);
        let span = end.max(1) as f64;
        let open_at_end = (self.conns.len() - self.free_conns.len()) as u32;
        let time_wait_at_end = self.rec.level(TIME_WAIT);
        let distinct_used = self.ports.distinct_used();
        let r = self.rec.finish(end);
        Outcome {
            simulated_ns: end,
            attempts: self.out.attempts,
            established: self.out.established,
            failures: self.out.failures,
            first_failure: self.out.first_failure,
            retries: self.out.retries,
            abandoned: self.out.abandoned,
            tw_reused: self.out.tw_reused,
            tw_skipped: self.out.tw_skipped,
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
            per_destination: self.per_dest,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fmt::Write;
    use std::path::Path;

    /// Every figure of an outcome, as text, so two runs compare in one assert.
    fn figures(o: &Outcome) -> String {
        let mut s = format!(
            "{} {} {} {} {:?} {} {} {} {} {} {} {} {} {} {} {} {} {} {} {:?} {:?}",
            o.simulated_ns,
            o.attempts,
            o.established,
            o.failures,
            o.first_failure,
            o.retries,
            o.abandoned,
            o.tw_reused,
            o.tw_skipped,
            o.distinct_used,
            o.peak_in_use,
            o.mean_in_use,
            o.peak_time_wait,
            o.mean_time_wait,
            o.peak_open,
            o.open_at_end,
            o.time_wait_at_end,
            o.bin_ns,
            o.bins.len(),
            o.bins,
            o.per_destination,
        );
        for v in o.reuse.iter_recorded() {
            write!(s, " {}:{}", v.value_iterated_to(), v.count_at_value()).unwrap();
        }
        s
    }

    fn both(sc: &Scenario) -> (String, String) {
        (
            figures(&simulate_with(sc, &mut Quiet, PortModel::Auto)),
            figures(&simulate_with(sc, &mut Quiet, PortModel::General)),
        )
    }

    fn fits(sc: &Scenario) -> bool {
        let (sharing, use_reuse) = port_rules(sc);
        AddressPools::fits(sc.destinations.len(), sharing, use_reuse)
    }

    /// Two source addresses, for the variants that use several.
    const ADDRS: &str = "addresses = ['10.9.0.1', '10.9.0.2']";

    /// The per-address bitsets are a shortcut, not a second model: on
    /// every scenario it accepts, each figure of the run (counts, peaks,
    /// means, every time-series bin, every reuse-histogram bucket) equals
    /// the general port space's. Variants cover each allocator, bind mode,
    /// close mode, reserved ports, retries, keep-alive, exclusive
    /// destinations and several source addresses, below and past exhaustion
    /// (a 600-port range).
    #[test]
    fn address_pools_match_the_general_port_space() {
        let mut checked = 0;
        let mut past_exhaustion = 0;
        for e in crate::alloc::REGISTRY {
            // (os, bind, close, [traffic] extra, [host] extra, destinations)
            for (i, (os, bind, close, extra, host, dests)) in [
                ("linux", "connect", "client", "", "", 1),
                (
                    "freebsd",
                    "bind",
                    "client",
                    "retry = { after = \"50ms\", max = 2 }",
                    "",
                    1,
                ),
                ("generic", "bind-no-port", "reset", "", "", 1),
                // macOS keeps ports exclusive, so several destinations still fit.
                (
                    "macos",
                    "connect",
                    "client",
                    "requests_per_connection = 3",
                    "",
                    3,
                ),
                ("windows", "connect", "server", "", "", 1),
                (
                    "linux",
                    "connect",
                    "client",
                    "arrivals = \"constant\"",
                    "",
                    1,
                ),
                // Several source addresses: bind() to many destinations, and
                // IP_BIND_ADDRESS_NO_PORT to one.
                (
                    "linux",
                    "bind",
                    "client",
                    "source = \"round-robin\"",
                    ADDRS,
                    4,
                ),
                ("linux", "bind-no-port", "client", "", ADDRS, 1),
            ]
            .into_iter()
            .enumerate()
            {
                let text = format!(
                    "name = 't'\nseed = {i}\nduration = '90s'\n\
                     [host]\nos = '{os}'\nallocator = '{}'\nport_range = '40000-40599'\n\
                     reserved_ports = ['40010-40019', '40333']\ntime_wait = '20s'\n{host}\n\
                     [[destinations]]\naddress = '10.0.0.1:80'\ncount = {dests}\n\
                     [traffic]\nrate = 40\nhold = {{ dist = 'exponential', mean = '2s' }}\n\
                     bind = '{bind}'\nclose = '{close}'\n{extra}\n",
                    e.name
                );
                let sc = crate::scenario::load_str(&text, Path::new("t.toml"), &[])
                    .unwrap_or_else(|err| panic!("{err}\n{text}"));
                assert!(fits(&sc), "{text}");
                let (fast, general) = both(&sc);
                assert_eq!(fast, general, "{} {os} {bind} {close}", e.name);
                checked += 1;
                past_exhaustion +=
                    usize::from(simulate_with(&sc, &mut Quiet, PortModel::Auto).failures > 0);
            }
        }
        assert_eq!(checked, 8 * crate::alloc::REGISTRY.len());
        // With TIME_WAIT, 40/s × (2 s + 20 s) = 880 ports are wanted of 589,
        // so those runs fail some attempts; without it (server close, reset)
        // about 80 are, so those do not. Both regimes must be covered.
        assert!(
            (8..=checked - 8).contains(&past_exhaustion),
            "{past_exhaustion} of {checked}"
        );

        // The shipped scenarios it accepts.
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
        let mut shipped = 0;
        for f in std::fs::read_dir(dir).unwrap() {
            let path = f.unwrap().path();
            if path.extension().is_some_and(|x| x == "toml") {
                let sc = crate::scenario::load_file(&path, &[]).unwrap();
                if fits(&sc) {
                    let (fast, general) = both(&sc);
                    assert_eq!(fast, general, "{}", path.display());
                    shipped += 1;
                }
            }
        }
        assert!(
            shipped >= 10,
            "only {shipped} shipped scenarios fit one pool"
        );
    }

    /// The comparison above can fail: a one-port change of the range moves
    /// the figures.
    #[test]
    fn figures_tell_runs_apart() {
        let run = |range: &str| {
            let text = format!(
                "name = 't'\nduration = '60s'\n[host]\nport_range = '{range}'\n\
                 [[destinations]]\naddress = '10.0.0.1:80'\n\
                 [traffic]\nrate = 20\nhold = '1s'\n"
            );
            let sc = crate::scenario::load_str(&text, Path::new("t.toml"), &[]).unwrap();
            figures(&simulate(&sc, &mut Quiet))
        };
        assert_ne!(run("40000-40999"), run("40000-40998"));
    }
}
