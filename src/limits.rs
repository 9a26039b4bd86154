//! What a run will cost, known before it starts: work and memory estimates,
//! and the refusals that keep any accepted input from hanging or eating the
//! machine.
//!
//! Work is counted in *events*, each a few hundred nanoseconds of engine
//! time at most: one per connection attempt (retries counted at their
//! worst), one per hold time drawn beyond the first of a connection (a
//! connection of `requests_per_connection` requests draws each request's
//! hold unless the sum has a closed form), and one per allocator probe
//! beyond the first (an allocator that walks the range at random near
//! exhaustion, `rfc6056-5`, costs up to a range per attempt; a Linux NAT's
//! port search up to 248 candidates, see [`nat_probes`]). `--max-events`
//! bounds this figure, so it bounds wall time.
//!
//! Memory is the sum of what the engine keeps per source address and port,
//! per flow in flight, per open connection and TIME_WAIT entry, per
//! destination, per row of a replayed trace, per NAT (its mappings and its
//! port occupancy, see [`nat_memory`]), and for the charts. `--max-memory`
//! bounds it.
//!
//! Every figure is a float computed from validated, finite inputs; the guards
//! are written so that a NaN could never pass them.

use crate::error::{num, InputError};
use crate::scenario::{Close, Hold, Scenario, NS_PER_S};

/// Refuse runs estimated to need more events than this by default.
pub const DEFAULT_MAX_EVENTS: f64 = 2e10;

/// Refuse runs estimated to need more memory than this by default (bytes):
/// what a laptop can spare.
pub const DEFAULT_MAX_MEMORY: f64 = 2.0 * GIB;

const GIB: f64 = (1u64 << 30) as f64;

/// Engine events per second on one core, for the time in messages: about
/// 4 million connection attempts per second.
const EVENTS_PER_S: f64 = 4e6;

/// The bounds a run must stay within.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_events: f64,
    pub max_memory: f64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_events: DEFAULT_MAX_EVENTS,
            max_memory: DEFAULT_MAX_MEMORY,
        }
    }
}

/// One part of an estimate and the scenario keys that drive it.
#[derive(Debug, Clone)]
pub struct Part {
    pub amount: f64,
    pub what: String,
}

/// What a run of a scenario is expected to cost.
#[derive(Debug, Clone)]
pub struct Cost {
    /// Connection attempts, retries counted at their worst.
    pub attempts: f64,
    /// Events: attempts plus extra hold draws and allocator probes.
    pub events: f64,
    pub event_parts: Vec<Part>,
    /// Bytes of memory at the peak.
    pub memory: f64,
    pub memory_parts: Vec<Part>,
}

/// Estimate the cost of running `sc`; `charts` when the run also keeps
/// the port-usage map for charts (`--out` with charts).
pub fn estimate(sc: &Scenario, charts: bool) -> Cost {
    if sc.is_fleet() {
        return fleet_estimate(sc, charts);
    }
    let h = &sc.host;
    let attempts = sc.expected_attempts();
    let rpc = f64::from(sc.traffic.requests_per_connection);
    let n = f64::from(h.range_size());
    let addresses = h.addresses.len() as f64;
    let dests = sc.destinations.len() as f64;

    let mut event_parts = vec![Part {
        amount: attempts,
        what: match sc.traffic.replay {
            Some(_) => "connection attempts (the rows of traffic.replay, or max_connections, × (1 + traffic.retry.max))",
            None => "connection attempts (traffic.rate × duration, or max_connections, × (1 + traffic.retry.max))",
        }
        .into(),
    }];
    if hold_drawn_per_request(sc) {
        event_parts.push(Part {
            amount: attempts * (rpc - 1.0),
            what: "hold times drawn one per request (traffic.requests_per_connection with a random traffic.hold)".into(),
        });
    }
    let load = pool_load(sc);
    let allocator = crate::sim::host::allocator_name(sc);
    let probes = crate::alloc::entry(allocator).map_or(0.0, |e| {
        (e.extra_probes)(&h.alloc_settings(), load.ports, load.erlangs)
    });
    if probes > 0.0 {
        event_parts.push(Part {
            amount: attempts * probes,
            what: format!(
                "allocator probes near exhaustion (host.allocator = \"{allocator}\" walks up to the whole host.port_range per attempt)"
            ),
        });
    }
    event_parts.extend(nat_probes(sc, load.peak_rate, attempts));
    // The closed form: Erlang B over each distinct destination weight
    // beyond the first, a step per usable port, about a hundred steps per
    // event.
    let distinct = distinct_weights(sc) as f64;
    event_parts.push(Part {
        amount: (distinct - 1.0) * f64::from(load.ports) / 100.0,
        what: "the closed-form figures (distinct destination weights × usable ports)".into(),
    });
    let events = event_parts.iter().map(|p| p.amount).sum();

    // Memory.
    let mut memory_parts = Vec::new();
    let per_port = if sc.exclusive_ports() && !h.tw_reuse {
        8.3
    } else {
        12.3
    };
    memory_parts.push(Part {
        amount: addresses * n * per_port,
        what: format!(
            "{PORT_STATE}: {} source addresses (host.addresses) × {} ports (host.port_range)",
            num(addresses),
            num(n)
        ),
    });
    if sc.traffic.close == crate::scenario::Close::Server {
        // The server-close tracker: the last close time (8 bytes) and
        // destination (4 bytes) of each (address used, port).
        let used = sc.source_addresses() as f64;
        memory_parts.push(Part {
            amount: used * n * 12.0,
            what: format!(
                "the last close of each port, for the server's TIME_WAIT (traffic.close = \"server\"): {} source addresses used × {} ports",
                num(used),
                num(n)
            ),
        });
    }
    let hold_s = sc.traffic.hold.mean_ns() * rpc / NS_PER_S as f64;
    let rate = load.peak_rate;
    let (open, tw) = in_flight(sc, rate, attempts, 1000.0);
    memory_parts.push(Part {
        amount: open * 32.0 + tw * 48.0,
        what: format!("{IN_FLIGHT} (traffic.rate × (traffic.hold + host.time_wait))"),
    });
    if !sc.exclusive_ports() && dests > 1.0 {
        // Flows (address, destination) with a port taken keep three bitsets
        // of the range each.
        let flows = (addresses * dests).min(open + tw);
        memory_parts.push(Part {
            amount: flows * (n / 4.0 + 96.0),
            what: "flows in flight: (source address, destination) pairs with a connection, each a bitset of host.port_range".into(),
        });
    }
    memory_parts.push(Part {
        amount: dests * 96.0,
        what: "destinations (destinations.count)".into(),
    });
    if let Some(r) = &sc.traffic.replay {
        memory_parts.push(Part {
            amount: r.rows.len() as f64 * std::mem::size_of::<crate::scenario::ReplayRow>() as f64,
            what: format!(
                "the replayed connections ({} rows of traffic.replay)",
                r.rows.len()
            ),
        });
    }
    if let Some(c) = sc.traffic.client.as_deref() {
        memory_parts.push(client_memory(sc, c, rate, hold_s, attempts));
    }
    memory_parts.extend(nat_memory(sc, rate, hold_s, attempts));
    if charts {
        memory_parts.push(Part {
            amount: addresses * n * 8.0 + n * 4.0,
            what: "the port-usage map for the charts (host.addresses × host.port_range)".into(),
        });
    }
    let memory = memory_parts.iter().map(|p| p.amount).sum::<f64>() + 4e6;
    Cost {
        attempts,
        events,
        event_parts,
        memory,
        memory_parts,
    }
}

/// The memory part of connections and TIME_WAIT entries in flight, and
/// the margin for bursts in it (1,000 of each, at 32 and 48 bytes).
const IN_FLIGHT: &str = "connections and TIME_WAIT entries in flight";
const IN_FLIGHT_MARGIN: f64 = 1000.0 * (32.0 + 48.0);

/// Connections and TIME_WAIT entries one host holds in flight: by Little's
/// law at the peak `rate` with twice the mean and `margin` more for bursts,
/// but no more than its `attempts`.
fn in_flight(sc: &Scenario, rate: f64, attempts: f64, margin: f64) -> (f64, f64) {
    let rpc = f64::from(sc.traffic.requests_per_connection);
    let hold_s = sc.traffic.hold.mean_ns() * rpc / NS_PER_S as f64;
    let tw_s = sc.effective_time_wait_ns() as f64 / NS_PER_S as f64;
    let open = (2.0 * rate * hold_s + margin).min(attempts);
    let tw = (2.0 * rate * tw_s + margin)
        .min(attempts)
        .min(sc.host.max_tw_buckets as f64);
    (open, tw)
}

/// Requests in flight with a client model, about 100 bytes each with their
/// timers, and a pool per destination: a closed loop's users; an open
/// loop's arrivals over a hold and the longest a request may queue for a
/// connection at `max_open` (its wait limit, else its timeout, else the
/// run), twice over with a margin for bursts, but no more than its
/// requests.
fn client_memory(
    sc: &Scenario,
    c: &crate::scenario::Client,
    rate: f64,
    hold_s: f64,
    attempts: f64,
) -> Part {
    use crate::scenario::Wait;
    let s = |ns: u64| ns as f64 / NS_PER_S as f64;
    let requests = if c.users.is_some() {
        f64::from(c.max_users())
    } else {
        let queue_s = match (c.pool.max_open, c.pool.wait) {
            (0, _) | (_, Wait::No) => 0.0,
            (_, Wait::UpTo(ns)) => s(ns),
            (_, Wait::Forever) => c.timeout_ns.or(sc.duration_ns).map_or(f64::INFINITY, s),
        };
        (2.0 * rate * (hold_s + queue_s) + 1000.0).min(attempts)
    };
    Part {
        amount: requests * 100.0 + sc.destinations.len() as f64 * 96.0,
        what: "requests in flight (traffic.concurrency users, or traffic.rate × (traffic.hold + the longest wait for a pooled connection)) and a pool per destination".into(),
    }
}

/// How a memory part of a host's port state starts.
const PORT_STATE: &str = "port state";

/// A fleet host whose reuse intervals are not told (all but the first
/// [`crate::sim::fleet::REUSE_HOSTS`] of a group) keeps a few bits per port
/// (busy and used with one bitset per address, [`crate::ports::pool`];
/// three more with the general port space) and its allocator and other
/// state. Measured: 20,000 idle Linux hosts take 6.8 KB each with 16,384
/// ports and 18.9 KB with 64,512, so 0.25 bytes a port and 2.7 KB a host.
const UNTIMED_BYTES_PER_PORT: f64 = 0.3;
const UNTIMED_BYTES_PER_PORT_GENERAL: f64 = 0.7;
const UNTIMED_BYTES_PER_HOST: f64 = 4000.0;

/// A fleet: each group's hosts, its largest count (`count` or a `scale`
/// step's: the engine builds every host the group will have, and each may
/// run the whole time) times one host of the group.
fn fleet_estimate(sc: &Scenario, charts: bool) -> Cost {
    let mut cost = Cost {
        attempts: 0.0,
        events: 0.0,
        event_parts: Vec::new(),
        memory: 4e6,
        memory_parts: Vec::new(),
    };
    for (g, grp) in sc.groups.iter().enumerate() {
        let one = estimate(&sc.group_scenario(g), charts);
        let k = f64::from(grp.max_count());
        let ports = grp.host.addresses.len() as f64 * f64::from(grp.host.range_size());
        let attempts =
            (k * one.attempts).min(sc.max_connections.map_or(f64::INFINITY, |m| m as f64));
        let scale = if one.attempts > 0.0 {
            attempts / one.attempts
        } else {
            k
        };
        cost.attempts += attempts;
        cost.events += scale * one.events;
        cost.event_parts.push(Part {
            amount: scale * one.events,
            what: format!(
                "hosts[{g}] ({}): {} hosts × their connection attempts (traffic.rate is per host)",
                grp.name,
                num(k)
            ),
        });
        // Each part of one host's state k times, but the margin for bursts
        // of the connections in flight once for the group, and the port
        // state in full only for the hosts whose reuse intervals are told.
        let timed = k.min(f64::from(crate::sim::fleet::REUSE_HOSTS));
        let gs = sc.group_scenario(g);
        let (sharing, use_reuse) = crate::sim::host::port_rules(&gs);
        let per_port =
            if crate::ports::pool::AddressPools::fits(gs.destinations.len(), sharing, use_reuse) {
                UNTIMED_BYTES_PER_PORT
            } else {
                UNTIMED_BYTES_PER_PORT_GENERAL
            };
        let parts: f64 = one
            .memory_parts
            .iter()
            .map(|p| {
                if p.what.starts_with(IN_FLIGHT) {
                    let (open, tw) = in_flight(&gs, pool_load(&gs).peak_rate, one.attempts, 0.0);
                    k * (open * 32.0 + tw * 48.0) + IN_FLIGHT_MARGIN
                } else if p.what.starts_with(PORT_STATE) {
                    timed * p.amount + (k - timed) * (ports * per_port + UNTIMED_BYTES_PER_HOST)
                } else {
                    k * p.amount
                }
            })
            .sum();
        let memory = parts;
        cost.memory += memory;
        cost.memory_parts.push(Part {
            amount: memory,
            what: format!(
                "hosts[{g}] ({}): {} hosts × the state of one (port_range × addresses, connections in flight)",
                grp.name,
                num(k)
            ),
        });
    }
    cost
}

/// The most candidates a Linux NAT's port search tries for one attempt
/// with `range` outside ports: rounds of min(range, 128), 64, 32, 16 and 8
/// candidates, ending early once a round covered the whole range
/// (`nf_nat_l4proto_unique_tuple`, nf_nat_core.c), so 248 for a range of
/// more than 128 ports and the range itself for a smaller one.
pub fn nat_search_max(range: u32) -> u32 {
    crate::sim::nat::search_when_full(range, 0.0).0 as u32
}

/// The port search of each `[[nat]]`, one part per NAT: every attempt may
/// cross every NAT of the path, and near exhaustion a Linux NAT probes up
/// to [`nat_search_max`] candidates before it drops the SYN.
///
/// The expected probes beyond the first come from
/// [`crate::alloc::walk_probes`]: the NAT's port range is the pool, offered
/// the peak rate × (`traffic.hold` + the NAT's hold after the close:
/// `timeouts.time_wait` after a FIN, `timeouts.close` after a reset), and a
/// pool with no port free costs a search of every candidate taken
/// ([`crate::sim::nat::search_when_full`]). Near the end of each round a
/// TCP SYN takes over a closed entry (TIME_WAIT or CLOSE) on a coin toss;
/// in a full NAT the entries not open are closed, and at most peak rate ×
/// `traffic.hold` are open, so each such candidate is taken over with
/// probability at least (1 − open ÷ range) ÷ 2. Only a search that takes
/// nothing over drops the SYN and costs a retransmission. The load is not
/// divided among the NAT's addresses or the destinations (few flows may
/// all hash to one address), and each occupancy is counted at its walk,
/// never more than a full search, so the figure errs high rather than
/// low.
fn nat_probes(sc: &Scenario, peak_rate: f64, attempts: f64) -> Vec<Part> {
    let hold_ns = sc.traffic.hold.mean_ns() * f64::from(sc.traffic.requests_per_connection);
    // A connect the NAT drops tries again with each SYN retransmission.
    let syns = 1 + crate::sim::syn::schedule_of(sc)
        .iter()
        .filter(|s| !s.give_up)
        .count();
    let tcp = sc.traffic.protocol == crate::scenario::Protocol::Tcp;
    let mut parts = Vec::new();
    for (i, nat) in sc.nats.iter().enumerate() {
        // A cloud NAT finds a free port by scanning bitset words (at most
        // one per 64 ports of a block): no search of candidates to count.
        if nat.cloud.is_some() {
            continue;
        }
        let (timer_ns, timer_key) = nat_hold_after_close(sc, i, nat);
        let erlangs = peak_rate * (hold_ns + timer_ns as f64) / NS_PER_S as f64;
        let range = nat.range_size();
        let open = peak_rate * hold_ns / NS_PER_S as f64;
        let closed = if tcp && timer_ns > 0 {
            (1.0 - open / f64::from(range)).clamp(0.0, 1.0)
        } else {
            0.0
        };
        let (full, dropped) = crate::sim::nat::search_when_full(range, closed / 2.0);
        let most = f64::from(nat_search_max(range));
        // A search with free ports left ends no later than one with none,
        // so no state costs more than `full` (itself at most `most`).
        let extra = crate::alloc::walk_probes_within(range, range, erlangs, full, full);
        let syns_each = 1.0 + (syns - 1) as f64 * dropped;
        if extra > 0.0 {
            parts.push(Part {
                amount: attempts * extra * syns_each,
                what: format!(
                    "the port search of the NAT {} near exhaustion (about {} of up to {} candidates per SYN when every port is taken, {} SYNs per connect of up to {syns} (host.syn_retries + host.syn_linear_timeouts retransmissions, or fewer within traffic.connect_timeout): traffic.rate × (traffic.hold + {timer_key}) offered to nat[{i}].port_range)",
                    crate::error::quote(&nat.name),
                    num((full * 10.0).round() / 10.0),
                    num(most),
                    num((syns_each * 100.0).round() / 100.0),
                ),
            });
        }
    }
    parts
}

/// How long a NAT keeps a mapping after the scenario's close, and the
/// `timeouts` key that sets it: conntrack reaches TIME_WAIT whichever side
/// sends the first FIN, CLOSE after a reset.
fn nat_hold_after_close(sc: &Scenario, i: usize, nat: &crate::scenario::nat::Nat) -> (u64, String) {
    let key = match (nat.cloud.is_some(), sc.traffic.protocol, sc.traffic.close) {
        (true, _, _) => format!("nat[{i}]'s hold after close"),
        (false, crate::scenario::Protocol::Udp, _) => format!("nat[{i}].timeouts.udp"),
        (false, _, Close::Reset) => format!("nat[{i}].timeouts.close"),
        (false, _, Close::Client | Close::Server) => format!("nat[{i}].timeouts.time_wait"),
    };
    (nat.hold_after(sc.traffic.close, sc.traffic.protocol), key)
}

/// Bytes of one NAT mapping (a conntrack entry: both tuples, state, timer).
const NAT_MAPPING_BYTES: f64 = 48.0;

/// What each `[[nat]]` keeps, two parts per NAT: its mappings, and the
/// occupancy of its outside ports.
///
/// Every connection crosses every NAT of the path, and a NAT keeps its
/// mapping while the connection is open and then for its own timer after
/// the close: `timeouts.time_wait` after a FIN close (conntrack reaches
/// TIME_WAIT whichever side closes first), `timeouts.close` after a reset.
/// By Little's law at the peak rate, with the margin the host's entries
/// get, that is `2 × rate × (hold + timer) + 1000` mappings, but never more
/// than attempts nor than `max_entries` (a full table drops new ones).
///
/// Occupancy: a bit per outside address and port for each destination
/// with a mapping (uniqueness is on the reply tuple, so each destination
/// has its own view of the pool), plus a small header; at most one
/// destination per mapping.
fn nat_memory(sc: &Scenario, rate: f64, hold_s: f64, attempts: f64) -> Vec<Part> {
    let dests = sc.destinations.len() as f64;
    let mut parts = Vec::with_capacity(2 * sc.nats.len());
    for (i, nat) in sc.nats.iter().enumerate() {
        let (timer_ns, timer_key) = nat_hold_after_close(sc, i, nat);
        let timer_s = timer_ns as f64 / NS_PER_S as f64;
        let mappings = (2.0 * rate * (hold_s + timer_s) + 1000.0)
            .min(attempts)
            .min(nat.max_entries as f64);
        let name = crate::error::quote(&nat.name);
        parts.push(Part {
            amount: mappings * NAT_MAPPING_BYTES,
            what: format!(
                "the mappings of the NAT {name}: traffic.rate × (traffic.hold + {timer_key}), at most nat[{i}].max_entries"
            ),
        });
        let flows = dests.min(mappings.max(1.0));
        let pool = nat.addresses.len() as f64 * f64::from(nat.range_size());
        parts.push(Part {
            amount: flows * (pool / 8.0 + 96.0),
            what: format!(
                "the port occupancy of the NAT {name}: nat[{i}].addresses × nat[{i}].port_range bits for each of {} destinations",
                num(flows)
            ),
        });
    }
    parts
}

/// Whether closing a connection draws each request's hold time: the sum
/// of several random holds has no closed form here.
fn hold_drawn_per_request(sc: &Scenario) -> bool {
    sc.traffic.requests_per_connection > 1 && !matches!(sc.traffic.hold, Hold::Constant { .. })
}

/// The busiest pool: usable ports, offered erlangs, and the peak rate.
struct PoolLoad {
    ports: u32,
    erlangs: f64,
    peak_rate: f64,
}

fn pool_load(sc: &Scenario) -> PoolLoad {
    let rpc = f64::from(sc.traffic.requests_per_connection);
    // Every segment starts within the run or at its last segment's start;
    // the profile is flat after that.
    let rate = &sc.traffic.rate;
    let last_start = rate.segments.last().map_or(0.0, |s| s.start_s);
    let horizon_s = sc
        .duration_ns
        .map_or(last_start, |d| d as f64 / NS_PER_S as f64)
        .max(last_start);
    let peak_rate = rate.max_over(horizon_s) / rpc;
    let service_s =
        (sc.traffic.hold.mean_ns() * rpc + sc.effective_time_wait_ns() as f64) / NS_PER_S as f64;
    // The heaviest pool: with shared ports, the heaviest destination on one
    // address; with exclusive ports, one address.
    let share = if sc.exclusive_ports() {
        1.0
    } else {
        let total: f64 = sc.destinations.iter().map(|d| d.weight).sum();
        sc.destinations
            .iter()
            .map(|d| d.weight / total)
            .fold(0.0, f64::max)
    } / sc.source_addresses() as f64;
    PoolLoad {
        ports: sc.host.usable_ports(),
        erlangs: peak_rate * service_s * share,
        peak_rate,
    }
}

fn distinct_weights(sc: &Scenario) -> usize {
    let mut w: Vec<u64> = sc.destinations.iter().map(|d| d.weight.to_bits()).collect();
    w.sort_unstable();
    w.dedup();
    w.len()
}

/// Refuse a run whose estimate exceeds `limits`, naming what drives it.
/// `source` names the scenario in the message (usually its file).
pub fn check(sc: &Scenario, source: &str, limits: Limits, charts: bool) -> Result<(), InputError> {
    check_cost(&estimate(sc, charts), source, limits)
}

/// [`check`] for an estimate already made (a sweep adds its points up).
pub fn check_cost(cost: &Cost, source: &str, limits: Limits) -> Result<(), InputError> {
    let biggest = |parts: &[Part]| {
        parts
            .iter()
            .max_by(|a, b| a.amount.total_cmp(&b.amount))
            .map(|p| p.what.clone())
            .unwrap_or_default()
    };
    if cost.events.is_nan() || cost.events > limits.max_events {
        return Err(InputError::usage(format!(
            "{source}: about {} events of work expected, roughly {} of computing; the limit is {} (--max-events). Most of it: {}. Shorten `duration`, set `max_connections`, or raise the limit with --max-events",
            sci(cost.events),
            human_time(cost.events / EVENTS_PER_S),
            sci(limits.max_events),
            biggest(&cost.event_parts)
        )));
    }
    if cost.memory.is_nan() || cost.memory > limits.max_memory {
        return Err(InputError::usage(format!(
            "{source}: about {} of memory expected; the limit is {} (--max-memory). Most of it: {}. Reduce those keys, or raise the limit with --max-memory",
            bytes(cost.memory),
            bytes(limits.max_memory),
            biggest(&cost.memory_parts)
        )));
    }
    Ok(())
}

/// `1.73e8`-style counts.
fn sci(v: f64) -> String {
    format!("{v:.2e}")
}

/// "40 s", "12 min", "3.5 hours", "21 days", "400 years".
pub fn human_time(s: f64) -> String {
    if !s.is_finite() {
        return "forever".into();
    }
    if s < 90.0 {
        format!("{} s", s.ceil().max(1.0))
    } else if s < 90.0 * 60.0 {
        format!("{:.0} min", s / 60.0)
    } else if s < 48.0 * 3600.0 {
        format!("{:.1} hours", s / 3600.0)
    } else if s < 730.0 * 86400.0 {
        format!("{:.0} days", s / 86400.0)
    } else {
        format!("{} years", sci(s / 86400.0 / 365.0))
    }
}

/// "512 MiB", "2.1 GiB".
pub fn bytes(b: f64) -> String {
    if b < GIB {
        format!("{:.0} MiB", (b / (1u64 << 20) as f64).max(1.0))
    } else {
        format!("{:.1} GiB", b / GIB)
    }
}

/// Parse a memory size: "4GiB", "512MiB", "2G", "1e9" (bytes).
pub fn parse_bytes(s: &str) -> Result<f64, String> {
    let t = s.trim();
    let split = t.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(t.len());
    let (n, unit) = t.split_at(split);
    let n: f64 = n.trim().parse().map_err(|_| {
        format!(
            "{}: expected a size such as 4GiB or 512MiB",
            crate::error::quote(s)
        )
    })?;
    let mult = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" | "kib" => 1024.0,
        "m" | "mb" | "mib" => 1024.0 * 1024.0,
        "g" | "gb" | "gib" => GIB,
        "t" | "tb" | "tib" => GIB * 1024.0,
        _ => {
            return Err(format!(
                "{}: unknown unit; use B, KiB, MiB, GiB or TiB",
                crate::error::quote(s)
            ))
        }
    };
    let v = n * mult;
    if v.is_finite() && v > 0.0 {
        Ok(v)
    } else {
        Err(format!(
            "{}: expected a positive size such as 4GiB",
            crate::error::quote(s)
        ))
    }
}

/// `--max-events` as given: a positive, finite number.
pub fn events_flag(v: f64) -> Result<f64, InputError> {
    if v.is_finite() && v > 0.0 {
        Ok(v)
    } else {
        Err(InputError::usage(format!(
            "--max-events {}: expected a positive number such as 1e9",
            num(v)
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A host sending 100 connections/s of 1 s each for 10 min to
    /// `dests` destinations, through the NAT "node" given by `nat` (keys).
    fn behind_nat(dests: u32, close: &str, nat: &str) -> Scenario {
        let text = format!(
            "name = \"n\"\nduration = \"10m\"\n[host]\nvia = \"node\"\n[[destinations]]\naddress = \"10.0.0.1:443\"\ncount = {dests}\n[traffic]\narrivals = \"constant\"\nrate = 100\nhold = \"1s\"\nclose = \"{close}\"\n[[nat]]\nname = \"node\"\ntype = \"linux\"\n{nat}\n"
        );
        crate::scenario::load_str(&text, std::path::Path::new("n.toml"), &[]).unwrap()
    }

    fn part(cost: &Cost, starts: &str) -> f64 {
        let found: Vec<&Part> = cost
            .memory_parts
            .iter()
            .filter(|p| p.what.starts_with(starts))
            .collect();
        assert_eq!(
            found.len(),
            1,
            "one part {starts:?} in {:?}",
            cost.memory_parts
        );
        found[0].amount
    }

    #[test]
    fn a_nat_keeps_a_mapping_per_connection_and_per_timer_after_close() {
        let mappings = "the mappings of the NAT \"node\"";
        // 2 × 100/s × (1 s + 30 s) + 1000 = 7,200 mappings of 48 bytes.
        let sc = behind_nat(1, "client", "timeouts = { time_wait = \"30s\" }");
        assert_eq!(part(&estimate(&sc, false), mappings), 7200.0 * 48.0);
        // Conntrack reaches TIME_WAIT whoever closes first.
        let sc = behind_nat(1, "server", "timeouts = { time_wait = \"30s\" }");
        assert_eq!(part(&estimate(&sc, false), mappings), 7200.0 * 48.0);
        // After a reset, the close timer: 2 × 100 × (1 + 10) + 1000.
        let sc = behind_nat(1, "reset", "timeouts = { time_wait = \"30s\" }");
        assert_eq!(part(&estimate(&sc, false), mappings), 3200.0 * 48.0);
        // A full table holds no more.
        let sc = behind_nat(1, "client", "max_entries = 5000");
        assert_eq!(part(&estimate(&sc, false), mappings), 5000.0 * 48.0);
        // Without a NAT, no such part.
        let mut sc = behind_nat(1, "client", "");
        sc.nats.clear();
        sc.via = None;
        assert!(estimate(&sc, false)
            .memory_parts
            .iter()
            .all(|p| !p.what.contains("NAT")));
    }

    #[test]
    fn server_close_counts_the_last_close_of_each_port() {
        let tracker = "the last close of each port";
        // 1 address used × 16,384 ports (the default range) × 12 bytes.
        let sc = behind_nat(1, "server", "");
        assert_eq!(part(&estimate(&sc, false), tracker), 16384.0 * 12.0);
        let sc = behind_nat(1, "client", "");
        assert!(estimate(&sc, false)
            .memory_parts
            .iter()
            .all(|p| !p.what.starts_with(tracker)));
    }

    #[test]
    fn a_nat_keeps_its_pool_for_each_destination_in_use() {
        // 2 addresses × 1,024 ports = 2,048 bits = 256 bytes, + 96, for each of 3.
        let sc = behind_nat(3, "client", "addresses = 2\nport_range = \"1024-2047\"");
        let occupancy = "the port occupancy of the NAT \"node\"";
        assert_eq!(part(&estimate(&sc, false), occupancy), 3.0 * 352.0);
        // Never more destinations than mappings: 10 entries at most.
        let sc = behind_nat(
            3000,
            "client",
            "addresses = 2\nport_range = \"1024-2047\"\nmax_entries = 10",
        );
        assert_eq!(part(&estimate(&sc, false), occupancy), 10.0 * 352.0);
    }

    #[test]
    fn a_huge_nat_pool_is_refused_naming_it() {
        // 4,096 addresses × 64,512 ports ≈ 33 MB a destination, × 1,000.
        let sc = behind_nat(1000, "client", "addresses = 4096");
        let e = check(&sc, "n.toml", Limits::default(), false).unwrap_err();
        let e = e.to_string();
        assert!(
            e.contains("about 30.8 GiB of memory expected")
                && e.contains("Most of it: the port occupancy of the NAT \"node\": nat[0].addresses × nat[0].port_range bits for each of 1000 destinations"),
            "{e}"
        );
    }

    fn event_part(cost: &Cost, starts: &str) -> Option<f64> {
        let found: Vec<&Part> = cost
            .event_parts
            .iter()
            .filter(|p| p.what.starts_with(starts))
            .collect();
        assert!(found.len() <= 1, "{:?}", cost.event_parts);
        found.first().map(|p| p.amount)
    }

    #[test]
    fn a_nat_search_is_as_long_as_the_kernel_lets_it_be() {
        // Rounds of 128, 64, 32, 16, 8; a small range is covered at once.
        assert_eq!(nat_search_max(65535), 248);
        assert_eq!(nat_search_max(129), 248);
        assert_eq!(nat_search_max(128), 128);
        assert_eq!(nat_search_max(10), 10);
        assert_eq!(nat_search_max(1), 1);
    }

    #[test]
    fn a_nat_port_search_is_counted_near_exhaustion() {
        let search = "the port search of the NAT \"node\"";
        // Two ports offered 1 erlang (1/s × (1 s + a time_wait of 0)): the
        // busy ports follow P(0) : P(1) : P(2) = 1 : 1 : 1/2. Both free:
        // no extra probe; one free: 2/1 = 2 probes, one extra; none free:
        // the whole search of 2, one extra. (0 + 1 + 0.5) / 2.5 = 0.6 extra
        // probes per attempt, × 600 attempts, × 1 SYN (a connect timeout
        // of 0: no retransmission).
        let text = "name = \"n\"\nduration = \"10m\"\n[host]\nvia = \"node\"\n[[destinations]]\naddress = \"10.0.0.1:443\"\n[traffic]\narrivals = \"constant\"\nrate = 1\nhold = \"1s\"\nconnect_timeout = \"0s\"\n[[nat]]\nname = \"node\"\ntype = \"linux\"\nport_range = \"1024-1025\"\ntimeouts = { time_wait = \"0\" }\n";
        let sc = crate::scenario::load_str(text, std::path::Path::new("n.toml"), &[]).unwrap();
        let cost = estimate(&sc, false);
        let got = event_part(&cost, search).expect("a search part");
        assert!((got - 360.0).abs() < 1e-9, "{got}");
        // With Linux's 10 retransmissions, 11 SYNs per connect at worst.
        let retrying = text.replace("connect_timeout = \"0s\"\n", "");
        let sc = crate::scenario::load_str(&retrying, std::path::Path::new("n.toml"), &[]).unwrap();
        let got11 = event_part(&estimate(&sc, false), search).unwrap();
        assert!((got11 - 11.0 * 360.0).abs() < 1e-6, "{got11}");
        let part = cost
            .event_parts
            .iter()
            .find(|p| p.what.starts_with(search))
            .unwrap();
        assert_eq!(
            part.what,
            "the port search of the NAT \"node\" near exhaustion (about 2 of up to 2 candidates per SYN when every port is taken, 1 SYNs per connect of up to 1 (host.syn_retries + host.syn_linear_timeouts retransmissions, or fewer within traffic.connect_timeout): traffic.rate × (traffic.hold + nat[0].timeouts.time_wait) offered to nat[0].port_range)"
        );
        // 1,000 ports offered 100/s × (1 s + 120 s) = 12,100 erlangs: no
        // port free (or a few, whose search ends no later). At most 100/s ×
        // 1 s = 100 mappings are open, so at least 900 of 1,000 are closed,
        // and near a round's end a SYN takes one over with probability
        // 0.9 / 2: a search tries about 96 + 1 / 0.45 candidates, and one
        // of 0.55^32 (about 5e-9) drops the SYN, so there is hardly ever a
        // retransmission. × 60,000 attempts.
        let sc = behind_nat(1, "client", "port_range = \"1024-2023\"");
        let (full, dropped) = crate::sim::nat::search_when_full(1000, 0.45);
        assert!((full - (96.0 + 1.0 / 0.45)).abs() < 1e-6 && dropped < 1e-8);
        let got = event_part(&estimate(&sc, false), search).expect("a search part");
        let expect = (full - 1.0) * 60000.0;
        assert!(
            (got - expect).abs() < 1e-3 * expect,
            "{got} against {expect}"
        );
        // When the connections open at once (100) could fill the range (50
        // ports), no closed entry is counted on: every search of a full NAT
        // tries all 50 ports, 49 extra, and drops the SYN: 11 SYNs per
        // connect (a little less for the rare moments with a port free).
        let sc = behind_nat(1, "client", "port_range = \"1024-1073\"");
        let got = event_part(&estimate(&sc, false), search).unwrap();
        let most = 49.0 * 60000.0 * 11.0;
        assert!(got <= most && got > most * (1.0 - 1e-4), "{got}");
        // After a reset the close timer counts: 100 × (1 + 0) = 100 erlangs
        // on 64,512 ports, about 100 busy: 64,512 / 64,412 probes, so
        // 100 / 64,412 extra per attempt (the time_wait of 1 h is not used).
        let sc = behind_nat(
            1,
            "reset",
            "timeouts = { close = \"0\", time_wait = \"1h\" }",
        );
        let idle = event_part(&estimate(&sc, false), search).expect("a search part");
        assert!(
            (idle - 11.0 * 60000.0 * 100.0 / 64412.0).abs() < 0.11,
            "{idle}"
        );
        // Each NAT of a path has its part, named by its index.
        let sc = behind_nat(
            1,
            "client",
            "port_range = \"1024-2023\"\nvia = \"cloud\"\n[[nat]]\nname = \"cloud\"\ntype = \"linux\"\nport_range = \"5000-5009\"",
        );
        let cost = estimate(&sc, false);
        assert!((event_part(&cost, search).unwrap() - expect).abs() < 1e-3 * expect);
        let cloud =
            "the port search of the NAT \"cloud\" near exhaustion (about 10 of up to 10 candidates per SYN";
        // 10 ports, 12,100 erlangs: all busy but for a share of about
        // 10 × 9 / 12,100² with two free (5 probes, not 10). The 100
        // connections open at once could fill the 10 ports: no closed entry
        // is counted on, every search of a full NAT drops its SYN.
        let got = event_part(&cost, cloud).expect("a search part") / 11.0;
        assert!(got < 9.0 * 60000.0 && got > 9.0 * 60000.0 - 0.5, "{got}");
    }

    #[test]
    fn sizes_and_times_read_well() {
        assert_eq!(parse_bytes("4GiB").unwrap(), 4.0 * GIB);
        assert_eq!(parse_bytes("512 MiB").unwrap(), 512.0 * 1048576.0);
        assert!(parse_bytes("nan").is_err());
        assert!(parse_bytes("-1G").is_err());
        assert!(parse_bytes("3 parsecs").is_err());
        assert_eq!(human_time(43.25), "44 s");
        assert_eq!(human_time(7200.0), "2.0 hours");
        assert_eq!(bytes(2.1 * GIB), "2.1 GiB");
        assert!(events_flag(f64::NAN).is_err() && events_flag(f64::INFINITY).is_err());
        assert!(events_flag(0.0).is_err() && events_flag(1e9).is_ok());
    }
}
