//! Clients as they behave: requests, connection pools, virtual users,
//! streams per connection, backoff and request timeouts.
//!
//! Without a `[traffic]` client setting the engine opens a connection per
//! arrival and closes it after its hold ([`super::closes`]), which is the
//! fastest model and the one most sizing rules assume. With one, the unit
//! of work is a *request* and connections outlive it:
//! - a request takes a connection of its destination's pool: one with a
//!   free stream if `streams_per_connection > 1` (so connections fill
//!   before another opens), else the idle one used last (LIFO, as Go's
//!   `net/http` and HikariCP do, which lets the surplus time out), else it
//!   opens one while fewer than `max_open` are open, else it waits in FIFO
//!   order (or fails, with `wait = false`);
//! - a dialled connection serves the request that dialled it; a failed
//!   dial fails that request (and retries it, with `traffic.retry`);
//! - when a request ends, its connection goes to the first waiting request,
//!   else back to the idle set while it holds fewer than `max_idle`, else
//!   it closes (`idle_overflow`); `idle_timeout` and `max_lifetime` close
//!   connections by timer; `requests_per_connection` ends a connection
//!   after that many requests;
//! - requests arrive at `rate` (open loop) or come from `concurrency`
//!   virtual users, each sending its next request `think` after its last
//!   one ended (closed loop, as wrk, k6 and JMeter drive load).
//!
//! How a connection ends at the layers (TIME_WAIT here, at the server, or
//! an RST) is `traffic.close`, for every connection of the run, whatever
//! decided the end; `closed_by` counts the reasons.
//!
//! The client keeps its own timers in one heap of (time, class, sequence):
//! a class orders events at one instant (connection ends and timeouts,
//! then retries, then users joining, then users sending), the sequence
//! keeps ties in the order they were made, so runs repeat byte for byte.
//! Its methods are the engine's, in this file, because a request moves
//! through the engine's own attempt, SYN and close paths.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

use hdrhistogram::Histogram;
use rand_chacha::ChaCha8Rng;

use super::layer::{Due, Phase, PortLayer, Site};
use super::queue::next_retry_delay;
use super::traffic::{rng, stream, ArrivalClock, Chooser, HoldSampler, Stream};
use super::{Engine, Observer, Outcome};
use crate::ports::Ports;
use crate::scenario::{Close, Retry, Scenario, Wait, FAILED_PAUSE_NS};

/// Why a connection ended ([`ClientFigures::closed_by`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Returned when `max_idle` connections were already idle.
    IdleOverflow,
    IdleTimeout,
    Lifetime,
    /// Its request timed out (one stream per connection).
    Timeout,
    /// It carried `requests_per_connection` requests.
    RequestLimit,
    /// Ended by the server (`close = "server"`), whatever decided it.
    Server,
    /// Ended by an RST (`close = "reset"`).
    Reset,
}

impl Reason {
    pub const ALL: [Reason; 7] = [
        Reason::IdleOverflow,
        Reason::IdleTimeout,
        Reason::Lifetime,
        Reason::Timeout,
        Reason::RequestLimit,
        Reason::Server,
        Reason::Reset,
    ];
    /// The report's name (`connections.closed_by.*`).
    pub fn key(self) -> &'static str {
        match self {
            Reason::IdleOverflow => "idle_overflow",
            Reason::IdleTimeout => "idle_timeout",
            Reason::Lifetime => "lifetime",
            Reason::Timeout => "timeout",
            Reason::RequestLimit => "request_limit",
            Reason::Server => "server",
            Reason::Reset => "reset",
        }
    }
}

/// Why a request failed ([`ClientFigures::failed_by`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// Its connection could not be opened (no port, a NAT refused, the
    /// SYNs went unanswered).
    Connect,
    /// The pool was at `max_open` and it could not (or no longer) wait.
    Pool,
    /// `traffic.timeout` passed.
    Timeout,
}

impl Why {
    pub const ALL: [Why; 3] = [Why::Connect, Why::Pool, Why::Timeout];
    pub fn key(self) -> &'static str {
        match self {
            Why::Connect => "connect",
            Why::Pool => "pool",
            Why::Timeout => "timeout",
        }
    }
}

/// What the client side of a run measured.
#[derive(Debug, Clone)]
pub struct ClientFigures {
    /// Requests started (retries of one request count once).
    pub total: u64,
    pub completed: u64,
    /// Requests that failed with no retry left.
    pub failed: u64,
    /// Final failures by [`Why`], in [`Why::ALL`] order.
    pub failed_by: [u64; 3],
    /// Requests that waited for a connection at `max_open`.
    pub waited: u64,
    /// Retries made (a request retried twice counts 2).
    pub retries: u64,
    pub in_flight_at_end: u64,
    pub peak_in_flight: u64,
    pub mean_in_flight: f64,
    /// Connections the pools opened (connects that got through).
    pub opened: u64,
    /// Requests served on a connection opened for an earlier one.
    pub reused: u64,
    /// Connections ended, by [`Reason`] in [`Reason::ALL`] order.
    pub closed_by: [u64; 7],
    /// Idle connections at the end.
    pub idle_at_end: u64,
    /// How long requests that waited for a connection waited (ns).
    pub waits: Histogram<u64>,
    /// From a request's start to its completion (ns), completed ones.
    pub responses: Histogram<u64>,
    /// The most virtual users at once (0 for an open loop).
    pub users_peak: u32,
}

impl ClientFigures {
    fn new() -> Self {
        let h = || Histogram::new(3).expect("3 significant digits");
        ClientFigures {
            total: 0,
            completed: 0,
            failed: 0,
            failed_by: [0; 3],
            waited: 0,
            retries: 0,
            in_flight_at_end: 0,
            peak_in_flight: 0,
            mean_in_flight: 0.0,
            opened: 0,
            reused: 0,
            closed_by: [0; 7],
            idle_at_end: 0,
            waits: h(),
            responses: h(),
            users_peak: 0,
        }
    }

    /// Requests that got a connection and found it open already, of all
    /// requests that got one.
    pub fn reuse_ratio(&self) -> f64 {
        let got = self.reused + self.opened;
        if got == 0 {
            0.0
        } else {
            self.reused as f64 / got as f64
        }
    }
}

/// A timer of the client. Ordered only so it can sit in the heap; the
/// sequence number before it decides ties.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Ev {
    /// The request on `slot` ends (`timed_out`: it failed at its timeout).
    Done {
        req: u32,
        slot: u32,
        timed_out: bool,
    },
    IdleEnd {
        slot: u32,
        stamp: u32,
    },
    LifeEnd {
        slot: u32,
        gen: u32,
    },
    /// A waiting request gives up (`timeout`: its own timeout, else the
    /// pool's `wait` limit).
    WaitEnd {
        req: u32,
        stamp: u32,
        timeout: bool,
    },
    Retry {
        req: u32,
    },
    Users {
        step: u32,
    },
    UserStart {
        user: u32,
    },
}

impl Ev {
    /// Order at one instant: ends and timeouts, retries, user count
    /// changes, users sending.
    fn class(self) -> u8 {
        match self {
            Ev::Done { .. } | Ev::IdleEnd { .. } | Ev::LifeEnd { .. } | Ev::WaitEnd { .. } => 0,
            Ev::Retry { .. } => 1,
            Ev::Users { .. } => 2,
            Ev::UserStart { .. } => 3,
        }
    }
}

const NO_USER: u32 = u32::MAX;
const NONE: u32 = u32::MAX;

#[derive(Clone, Copy, PartialEq, Eq)]
enum ReqState {
    Free,
    /// Waiting for a connection (in its pool's queue).
    Queued,
    /// Its connection is being opened.
    Dialing,
    Active,
    /// Failed, waiting for its retry.
    Retrying,
}

#[derive(Clone, Copy)]
struct Req {
    dest: u32,
    start: u64,
    /// When this try began (its start, or its latest retry): its
    /// `timeout` runs from here.
    try_start: u64,
    tries: u32,
    user: u32,
    /// Changes whenever it leaves a pool's queue, so stale entries and
    /// timers are known.
    stamp: u32,
    queued_at: u64,
    state: ReqState,
}

#[derive(Clone, Copy, Default)]
struct Conn {
    dest: u32,
    /// Requests on it now.
    active: u32,
    /// Requests it has carried.
    served: u32,
    /// Changes whenever it enters or leaves the idle set or closes.
    stamp: u32,
    /// Changes when a new connection takes the slot.
    gen: u32,
    idle: bool,
    /// Takes no new request: past `max_lifetime` or at the request limit.
    retiring: bool,
    expired: bool,
    /// Its index in its pool's `partial` (streams > 1), or [`NONE`].
    partial_at: u32,
    open: bool,
}

#[derive(Default)]
struct Pool {
    /// (slot, stamp), most recently idle last; stale entries are skipped.
    idle: VecDeque<(u32, u32)>,
    idle_n: u32,
    /// Connections with a request on them and a stream free.
    partial: Vec<u32>,
    /// Open or being opened.
    open: u32,
    /// (request, stamp) waiting for a connection, first come first served.
    waiters: VecDeque<(u32, u32)>,
}

/// Virtual users: how many there should be and who is running.
struct Users {
    steps: Vec<(u64, u32)>,
    target: u32,
    /// Has a request in flight or is thinking.
    running: Vec<bool>,
}

/// The client side of a run (see the module doc).
pub(crate) struct Client {
    max_idle: u32,
    max_open: u32,
    idle_ns: Option<u64>,
    life_ns: Option<u64>,
    wait: Wait,
    streams: u32,
    timeout_ns: Option<u64>,
    limit: Option<u32>,
    close: Close,
    retry: Option<Retry>,
    pools: Vec<Pool>,
    conns: Vec<Conn>,
    reqs: Vec<Req>,
    free_reqs: Vec<u32>,
    timers: BinaryHeap<Reverse<(u64, u8, u64, Ev)>>,
    seq: u64,
    holds: HoldSampler,
    think: HoldSampler,
    retry_rng: ChaCha8Rng,
    users: Option<Users>,
    /// Pools whose waiters may now dial (a connection closed or a dial
    /// failed): served from the loop, not by recursion.
    kick: Vec<u32>,
    in_flight: u64,
    area: u128,
    last_t: u64,
    fig: ClientFigures,
}

impl Client {
    pub(crate) fn new(sc: &Scenario) -> Option<Box<Client>> {
        let c = sc.traffic.client.as_deref()?;
        let site = Site::HOST0;
        let users = c.users.as_ref().map(|steps| Users {
            steps: steps.clone(),
            target: 0,
            running: vec![false; c.max_users() as usize],
        });
        let mut client = Client {
            max_idle: c.pool.max_idle,
            max_open: if c.pool.max_open == 0 {
                u32::MAX
            } else {
                c.pool.max_open
            },
            idle_ns: c.pool.idle_timeout_ns,
            life_ns: c.pool.max_lifetime_ns,
            wait: c.pool.wait,
            streams: c.streams,
            timeout_ns: c.timeout_ns,
            limit: c.request_limit,
            close: sc.traffic.close,
            retry: sc.traffic.retry,
            pools: (0..sc.destinations.len())
                .map(|_| Pool::default())
                .collect(),
            conns: Vec::new(),
            reqs: Vec::new(),
            free_reqs: Vec::new(),
            timers: BinaryHeap::new(),
            seq: 0,
            holds: HoldSampler::at(sc.seed, site, sc.traffic.hold),
            think: HoldSampler::from_stream(sc.seed, Stream::at(site, stream::THINK), c.think),
            retry_rng: rng(sc.seed, Stream::at(site, stream::RETRY)),
            users,
            kick: Vec::new(),
            in_flight: 0,
            area: 0,
            last_t: 0,
            fig: ClientFigures::new(),
        };
        if client.users.is_some() {
            client.push(0, Ev::Users { step: 0 });
        }
        Some(Box::new(client))
    }

    fn push(&mut self, t: u64, ev: Ev) {
        self.timers.push(Reverse((t, ev.class(), self.seq, ev)));
        self.seq += 1;
    }

    fn peek(&self) -> (u64, u8) {
        self.timers
            .peek()
            .map_or((u64::MAX, u8::MAX), |Reverse(e)| (e.0, e.1))
    }

    /// Requests in flight change at `t` by `delta`.
    fn in_flight(&mut self, t: u64, up: bool) {
        self.area += u128::from(self.in_flight) * u128::from(t - self.last_t);
        self.last_t = t;
        if up {
            self.in_flight += 1;
            self.fig.peak_in_flight = self.fig.peak_in_flight.max(self.in_flight);
        } else {
            self.in_flight -= 1;
        }
    }

    fn new_req(&mut self, t: u64, dest: u32, user: u32) -> u32 {
        let req = Req {
            dest,
            start: t,
            try_start: t,
            tries: 0,
            user,
            stamp: 0,
            queued_at: 0,
            state: ReqState::Free,
        };
        match self.free_reqs.pop() {
            Some(r) => {
                let stamp = self.reqs[r as usize].stamp;
                self.reqs[r as usize] = Req { stamp, ..req };
                r
            }
            None => {
                self.reqs.push(req);
                (self.reqs.len() - 1) as u32
            }
        }
    }

    /// Request `r` moves on to `state` at `t`; if it waited in its pool's
    /// queue, the wait is counted.
    fn leave_queue(&mut self, t: u64, r: u32, state: ReqState) {
        let q = &mut self.reqs[r as usize];
        if q.state == ReqState::Queued {
            self.fig.waited += 1;
            let _ = self.fig.waits.record((t - q.queued_at).max(1));
        }
        q.state = state;
    }

    /// Take `slot` out of its pool's partly used connections.
    fn unpartial(&mut self, slot: u32) {
        let c = self.conns[slot as usize];
        if c.partial_at == NONE {
            return;
        }
        let p = &mut self.pools[c.dest as usize].partial;
        p.swap_remove(c.partial_at as usize);
        if let Some(&moved) = p.get(c.partial_at as usize) {
            self.conns[moved as usize].partial_at = c.partial_at;
        }
        self.conns[slot as usize].partial_at = NONE;
    }

    /// Keep `slot` among its pool's partly used connections while it has
    /// a request and a stream free and takes new requests.
    fn repartial(&mut self, slot: u32) {
        let c = self.conns[slot as usize];
        let wanted = self.streams > 1 && c.active > 0 && c.active < self.streams && !c.retiring;
        if wanted && c.partial_at == NONE {
            let p = &mut self.pools[c.dest as usize].partial;
            self.conns[slot as usize].partial_at = p.len() as u32;
            p.push(slot);
        } else if !wanted {
            self.unpartial(slot);
        }
    }

    /// The next request waiting at pool `d`, if any.
    fn next_waiter(&mut self, d: u32) -> Option<u32> {
        while let Some((r, stamp)) = self.pools[d as usize].waiters.pop_front() {
            let q = &mut self.reqs[r as usize];
            if q.stamp == stamp && q.state == ReqState::Queued {
                q.stamp = q.stamp.wrapping_add(1);
                return Some(r);
            }
        }
        None
    }

    /// The idle connection of pool `d` used last, taken out of the set.
    fn take_idle(&mut self, d: u32) -> Option<u32> {
        while let Some((slot, stamp)) = self.pools[d as usize].idle.pop_back() {
            let c = &mut self.conns[slot as usize];
            if c.stamp == stamp && c.idle {
                c.idle = false;
                c.stamp = c.stamp.wrapping_add(1);
                self.pools[d as usize].idle_n -= 1;
                return Some(slot);
            }
        }
        None
    }

    pub(crate) fn figures(mut self, end: u64) -> ClientFigures {
        self.area += u128::from(self.in_flight) * u128::from(end.saturating_sub(self.last_t));
        self.fig.mean_in_flight = self.area as f64 / end.max(1) as f64;
        self.fig.in_flight_at_end = self.in_flight;
        self.fig.idle_at_end = self.pools.iter().map(|p| u64::from(p.idle_n)).sum();
        self.fig
    }
}

impl<O: Observer, P: Ports, N: PortLayer> Engine<'_, O, P, N> {
    fn cl(&mut self) -> &mut Client {
        self.client.as_mut().expect("a client run")
    }

    /// The loop of a client run: as [`Engine::run`], with requests, users
    /// and the pools' timers beside the arrivals, SYN steps and layers.
    pub(super) fn run_client(mut self) -> Outcome {
        let sc = self.sc;
        let horizon = sc.duration_ns.unwrap_or(u64::MAX);
        let max_attempts = sc.max_connections.unwrap_or(u64::MAX);
        let closed = self.cl().users.is_some();
        let mut clock = (!closed)
            .then(|| ArrivalClock::new(sc.seed, sc.traffic.arrivals, sc.traffic.rate.clone(), 1));
        let mut dests = Chooser::destinations(sc);
        let mut next_arrival = clock
            .as_mut()
            .and_then(|c| c.next_arrival())
            .unwrap_or(u64::MAX);
        let mut stopped = false;
        loop {
            let (t_ev, class) = self.cl().peek();
            let t_syn = self.syns.peek().map_or(u64::MAX, |s| s.0);
            let t = t_ev.min(t_syn).min(next_arrival);
            if t == u64::MAX && horizon == u64::MAX {
                break;
            }
            if t > horizon {
                self.drain(horizon);
                break;
            }
            self.now = t;
            if t_ev == t && class == 0 {
                // Ends go after the layers' releases at this instant, as
                // closes do.
                self.run_layers(Due::new(t, Phase::Close));
                self.client_event(t, &mut dests);
            } else {
                self.drain(t);
                if t_syn == t {
                    self.syn_step(t);
                } else if t_ev == t {
                    self.client_event(t, &mut dests);
                } else {
                    let dest = dests.pick();
                    self.start_request(t, dest, NO_USER);
                    next_arrival = clock
                        .as_mut()
                        .and_then(|c| c.next_arrival())
                        .unwrap_or(u64::MAX);
                }
            }
            self.settle(t);
            if self.out.attempts >= max_attempts {
                break;
            }
            if O::STOP_AT_FAILURE && (self.out.failures > 0 || !self.syns.is_empty()) {
                stopped = true;
                break;
            }
        }
        let end = if !stopped && horizon != u64::MAX && self.out.attempts < max_attempts {
            horizon
        } else {
            self.now
        };
        self.finish(end)
    }

    fn client_event(&mut self, t: u64, dests: &mut Chooser) {
        let Reverse((_, _, _, ev)) = self.cl().timers.pop().expect("peeked");
        match ev {
            Ev::Done {
                req,
                slot,
                timed_out,
            } => self.request_done(t, req, slot, timed_out),
            Ev::IdleEnd { slot, stamp } => {
                let c = self.cl().conns[slot as usize];
                if c.open && c.idle && c.stamp == stamp {
                    let cl = self.cl();
                    cl.conns[slot as usize].idle = false;
                    cl.conns[slot as usize].stamp = stamp.wrapping_add(1);
                    cl.pools[c.dest as usize].idle_n -= 1;
                    self.end_conn(t, slot, Reason::IdleTimeout);
                }
            }
            Ev::LifeEnd { slot, gen } => {
                let cl = self.cl();
                let c = cl.conns[slot as usize];
                if !c.open || c.gen != gen {
                    return;
                }
                cl.conns[slot as usize].expired = true;
                cl.conns[slot as usize].retiring = true;
                if c.idle {
                    cl.conns[slot as usize].idle = false;
                    cl.conns[slot as usize].stamp = c.stamp.wrapping_add(1);
                    cl.pools[c.dest as usize].idle_n -= 1;
                    self.end_conn(t, slot, Reason::Lifetime);
                } else {
                    cl.unpartial(slot);
                }
            }
            Ev::WaitEnd {
                req,
                stamp,
                timeout,
            } => {
                let q = self.cl().reqs[req as usize];
                if q.state == ReqState::Queued && q.stamp == stamp {
                    self.cl().reqs[req as usize].stamp = stamp.wrapping_add(1);
                    let why = if timeout { Why::Timeout } else { Why::Pool };
                    self.request_failed(t, req, why);
                }
            }
            Ev::Retry { req } => {
                self.cl().reqs[req as usize].try_start = t;
                self.cl().fig.retries += 1;
                self.out.retries += 1;
                self.acquire(t, req);
            }
            Ev::Users { step } => {
                let cl = self.cl();
                let users = cl.users.as_mut().expect("a closed loop");
                let (_, n) = users.steps[step as usize];
                let before = users.target;
                users.target = n;
                let mut start = Vec::new();
                for u in before..n {
                    if !users.running[u as usize] {
                        users.running[u as usize] = true;
                        start.push(u);
                    }
                }
                let next = users.steps.get(step as usize + 1).map(|s| s.0);
                cl.fig.users_peak = cl.fig.users_peak.max(n);
                for u in start {
                    cl.push(t, Ev::UserStart { user: u });
                }
                if let Some(at) = next {
                    cl.push(at, Ev::Users { step: step + 1 });
                }
            }
            Ev::UserStart { user } => {
                let users = self.cl().users.as_mut().expect("a closed loop");
                if user < users.target {
                    let dest = dests.pick();
                    self.start_request(t, dest, user);
                } else {
                    users.running[user as usize] = false;
                }
            }
        }
    }

    /// Dial for the waiters of pools where a connection may open again.
    fn settle(&mut self, t: u64) {
        while let Some(d) = self.client.as_mut().and_then(|c| c.kick.pop()) {
            loop {
                let cl = self.cl();
                if cl.pools[d as usize].open >= cl.max_open {
                    break;
                }
                let Some(r) = cl.next_waiter(d) else { break };
                self.dial(t, r);
            }
        }
    }

    fn start_request(&mut self, t: u64, dest: u32, user: u32) {
        let cl = self.cl();
        let r = cl.new_req(t, dest, user);
        cl.fig.total += 1;
        cl.in_flight(t, true);
        self.acquire(t, r);
    }

    /// Request `r` needs a connection: a stream, an idle one, a new one,
    /// or a place in the queue.
    fn acquire(&mut self, t: u64, r: u32) {
        let cl = self.cl();
        let d = cl.reqs[r as usize].dest;
        if let Some(&slot) = cl.pools[d as usize].partial.last() {
            return self.assign(t, r, slot);
        }
        if let Some(slot) = cl.take_idle(d) {
            return self.assign(t, r, slot);
        }
        if cl.pools[d as usize].open < cl.max_open {
            return self.dial(t, r);
        }
        let q = &mut cl.reqs[r as usize];
        let start = q.try_start;
        let deadline_wait = match cl.wait {
            Wait::No => return self.request_failed(t, r, Why::Pool),
            Wait::Forever => u64::MAX,
            Wait::UpTo(ns) => t.saturating_add(ns),
        };
        let deadline_req = cl
            .timeout_ns
            .map_or(u64::MAX, |to| start.saturating_add(to));
        q.state = ReqState::Queued;
        q.queued_at = t;
        let stamp = q.stamp;
        cl.pools[d as usize].waiters.push_back((r, stamp));
        if deadline_wait.min(deadline_req) != u64::MAX {
            cl.push(
                deadline_wait.min(deadline_req),
                Ev::WaitEnd {
                    req: r,
                    stamp,
                    timeout: deadline_req <= deadline_wait,
                },
            );
        }
    }

    /// Open a connection for request `r`.
    fn dial(&mut self, t: u64, r: u32) {
        let cl = self.cl();
        cl.leave_queue(t, r, ReqState::Dialing);
        let d = cl.reqs[r as usize].dest;
        cl.pools[d as usize].open += 1;
        self.attempt(t, d, 0, r);
    }

    /// The connect for request `r` got through: a new connection in `slot`.
    pub(super) fn client_connected(&mut self, t: u64, slot: u32, r: u32) {
        let cl = self.cl();
        if cl.conns.len() <= slot as usize {
            cl.conns.resize(slot as usize + 1, Conn::default());
        }
        let c = &mut cl.conns[slot as usize];
        *c = Conn {
            dest: cl.reqs[r as usize].dest,
            active: 0,
            served: 0,
            stamp: c.stamp.wrapping_add(1),
            gen: c.gen.wrapping_add(1),
            idle: false,
            retiring: false,
            expired: false,
            partial_at: NONE,
            open: true,
        };
        let gen = c.gen;
        cl.fig.opened += 1;
        if let Some(ns) = cl.life_ns {
            cl.push(t.saturating_add(ns), Ev::LifeEnd { slot, gen });
        }
        self.assign(t, r, slot);
    }

    /// The connect for request `r` failed.
    pub(super) fn client_connect_failed(&mut self, t: u64, r: u32) {
        let cl = self.cl();
        let d = cl.reqs[r as usize].dest;
        cl.pools[d as usize].open -= 1;
        cl.kick.push(d);
        self.request_failed(t, r, Why::Connect);
    }

    /// Request `r` runs on `slot` from `t`.
    fn assign(&mut self, t: u64, r: u32, slot: u32) {
        let cl = self.cl();
        cl.leave_queue(t, r, ReqState::Active);
        let q = &cl.reqs[r as usize];
        let start = q.try_start;
        let c = &mut cl.conns[slot as usize];
        c.active += 1;
        c.served += 1;
        if c.served > 1 {
            cl.fig.reused += 1;
        }
        if cl.limit.is_some_and(|l| c.served >= l) {
            c.retiring = true;
        }
        cl.repartial(slot);
        let hold = cl.holds.sample();
        let mut end = t.saturating_add(hold);
        let mut timed_out = false;
        if let Some(to) = cl.timeout_ns {
            let deadline = start.saturating_add(to);
            if end > deadline {
                end = deadline.max(t);
                timed_out = true;
            }
        }
        cl.push(
            end,
            Ev::Done {
                req: r,
                slot,
                timed_out,
            },
        );
    }

    /// The request `r` on `slot` ends at `t`.
    fn request_done(&mut self, t: u64, r: u32, slot: u32, timed_out: bool) {
        let cl = self.cl();
        cl.conns[slot as usize].active -= 1;
        let single = cl.streams == 1;
        if timed_out {
            self.request_failed(t, r, Why::Timeout);
            if single {
                // The client gives up on the connection with the request.
                return self.end_conn(t, slot, Reason::Timeout);
            }
        } else {
            let q = cl.reqs[r as usize];
            cl.fig.completed += 1;
            let _ = cl.fig.responses.record((t - q.start).max(1));
            self.request_ended(t, r, false);
        }
        self.release_conn(t, slot);
    }

    /// A request is off `slot`: hand the connection on, keep it idle, or
    /// end it.
    fn release_conn(&mut self, t: u64, slot: u32) {
        let cl = self.cl();
        let c = cl.conns[slot as usize];
        if c.retiring {
            cl.unpartial(slot);
            if c.active == 0 {
                let why = if c.expired {
                    Reason::Lifetime
                } else {
                    Reason::RequestLimit
                };
                self.end_conn(t, slot, why);
            }
            return;
        }
        if let Some(w) = cl.next_waiter(c.dest) {
            return self.assign(t, w, slot);
        }
        if c.active > 0 {
            cl.repartial(slot);
            return;
        }
        cl.unpartial(slot);
        let p = &mut cl.pools[c.dest as usize];
        if p.idle_n < cl.max_idle {
            p.idle_n += 1;
            let stamp = c.stamp.wrapping_add(1);
            p.idle.push_back((slot, stamp));
            // Entries that went stale are dropped now and then, so the
            // set stays the size of what is idle.
            if p.idle.len() > 2 * p.idle_n as usize + 16 {
                let conns = &cl.conns;
                p.idle.retain(|&(s, st)| {
                    conns[s as usize].stamp == st && conns[s as usize].idle || s == slot
                });
            }
            let cs = &mut cl.conns[slot as usize];
            cs.idle = true;
            cs.stamp = stamp;
            if let Some(ns) = cl.idle_ns {
                cl.push(t.saturating_add(ns), Ev::IdleEnd { slot, stamp });
            }
        } else {
            self.end_conn(t, slot, Reason::IdleOverflow);
        }
    }

    /// The connection in `slot` ends at `t` for `why`; the layers close it
    /// as `traffic.close` says.
    fn end_conn(&mut self, t: u64, slot: u32, why: Reason) {
        let cl = self.cl();
        let why = match cl.close {
            Close::Client => why,
            Close::Server => Reason::Server,
            Close::Reset => Reason::Reset,
        };
        cl.fig.closed_by[why as usize] += 1;
        cl.unpartial(slot);
        let c = &mut cl.conns[slot as usize];
        c.open = false;
        c.idle = false;
        c.stamp = c.stamp.wrapping_add(1);
        let d = c.dest;
        cl.pools[d as usize].open -= 1;
        cl.kick.push(d);
        self.close(t, slot);
    }

    /// Request `r` failed at `t`: retry it, or it has failed for good.
    fn request_failed(&mut self, t: u64, r: u32, why: Why) {
        let cl = self.cl();
        let tries = cl.reqs[r as usize].tries;
        if let Some(delay) = next_retry_delay(cl.retry, tries, &mut cl.retry_rng) {
            let q = &mut cl.reqs[r as usize];
            q.tries += 1;
            q.state = ReqState::Retrying;
            cl.push(t.saturating_add(delay), Ev::Retry { req: r });
            return;
        }
        cl.fig.failed += 1;
        cl.fig.failed_by[why as usize] += 1;
        self.out.abandoned += 1;
        self.request_ended(t, r, true);
    }

    /// Request `r` is over; its user thinks, then sends the next.
    fn request_ended(&mut self, t: u64, r: u32, failed: bool) {
        let cl = self.cl();
        cl.in_flight(t, false);
        let q = &mut cl.reqs[r as usize];
        q.state = ReqState::Free;
        let user = q.user;
        cl.free_reqs.push(r);
        if user != NO_USER {
            let mut pause = cl.think.sample();
            if failed {
                pause = pause.max(FAILED_PAUSE_NS);
            }
            cl.push(t.saturating_add(pause), Ev::UserStart { user });
        }
    }
}
