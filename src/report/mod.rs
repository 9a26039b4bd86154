//! The report of a run: a JSON contract and a readable summary.
//!
//! [`Report`] is built once from the scenario and the engine's [`Outcome`];
//! every output (terminal summary, and the files of [`crate::export`]:
//! `report.json`, `timeseries.csv`, charts, `report.html`) renders from it,
//! so they never disagree. It keeps typed values (the scenario's enums,
//! integer nanoseconds) beside the figures it shows, so a renderer branches
//! on an enum rather than on its printed name and never rebuilds a count of
//! nanoseconds from seconds; the JSON view prints the names. Field order is
//! fixed by the structs and every optional field is explicit: the JSON is a
//! contract (`schema_version` changes when a field changes meaning).

pub mod analytic;
pub mod client;
pub mod format;
pub mod sizing;
pub mod summary;

use schemars::JsonSchema;
use serde::{Serialize, Serializer};

use crate::scenario::{Arrivals, BindMode, Close, Protocol, Scenario, NS_PER_S};
use crate::sim::record::Bin;
use crate::sim::Outcome;
pub use analytic::{erlang_b, Analytic};

pub const SCHEMA_VERSION: u32 = 1;

/// Failed attempts as a share of attempts (0 when there were none).
pub fn failure_ratio(failures: u64, attempts: u64) -> f64 {
    if attempts > 0 {
        failures as f64 / attempts as f64
    } else {
        0.0
    }
}

fn secs(ns: u64) -> f64 {
    ns as f64 / NS_PER_S as f64
}

/// How `arrivals` is written in a scenario and in `report.json`.
pub fn arrivals_name(a: Arrivals) -> &'static str {
    match a {
        Arrivals::Poisson => "poisson",
        Arrivals::Constant => "constant",
    }
}

/// How `close` is written in a scenario and in `report.json`.
pub fn close_name(c: Close) -> &'static str {
    match c {
        Close::Client => "client",
        Close::Server => "server",
        Close::Reset => "reset",
    }
}

/// How `protocol` is written in a scenario and in `report.json`.
pub fn protocol_name(p: Protocol) -> &'static str {
    match p {
        Protocol::Tcp => "tcp",
        Protocol::Udp => "udp",
    }
}

/// How `bind` is written in a scenario and in `report.json`.
pub fn bind_name(b: BindMode) -> &'static str {
    match b {
        BindMode::Connect => "connect",
        BindMode::Bind => "bind",
        BindMode::BindNoPort => "bind-no-port",
    }
}

fn ser_arrivals<S: Serializer>(a: &Arrivals, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(arrivals_name(*a))
}

fn ser_close<S: Serializer>(c: &Close, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(close_name(*c))
}

fn ser_protocol<S: Serializer>(p: &Protocol, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(protocol_name(*p))
}

fn ser_bind<S: Serializer>(b: &BindMode, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(bind_name(*b))
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Report {
    #[schemars(extend("const" = SCHEMA_VERSION))]
    pub schema_version: u32,
    pub portsim_version: &'static str,
    pub scenario: ScenarioEcho,
    pub seed: u64,
    /// `traffic.protocol`: "tcp", or "udp" (each attempt a UDP flow, which
    /// holds its port while it lasts and never enters TIME_WAIT).
    #[serde(serialize_with = "ser_protocol")]
    #[schemars(with = "String", extend("enum" = ["tcp", "udp"]))]
    pub protocol: Protocol,
    pub simulated_s: f64,
    /// Connection attempts, retries included.
    pub attempts: u64,
    pub established: u64,
    pub failures: u64,
    #[schemars(range(min = 0.0, max = 1.0))]
    pub failure_ratio: f64,
    pub first_failure: Option<FirstFailure>,
    /// How long established connects waited for a SYN to get through.
    pub connect_delay_s: ConnectDelay,
    /// Connects still in SYN_SENT at the end (a NAT dropped their SYN and
    /// they had not given up): neither established nor failed.
    pub connecting_at_end: u64,
    /// Connects whose tuple, as the destination sees it, the destination
    /// may still hold in TIME_WAIT (it closed the last one first): the
    /// host's own (`reuse_within_server_time_wait`) plus each NAT's.
    pub stale_reuse: u64,
    /// When the rate changes over time: the highest `traffic.rate` reached
    /// before the first failure (over the whole run when nothing failed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub highest_rate_before_failure: Option<f64>,
    /// Failure bursts over windows aligned to the start of the run.
    pub bursts: Bursts,
    /// Attempts that were retries of a failed one.
    pub retries: u64,
    /// Failed requests with no retry left.
    pub abandoned: u64,
    pub time_wait_reused: u64,
    /// Closes that skipped TIME_WAIT because `max_tw_buckets` was full.
    pub time_wait_skipped: u64,
    /// Only with `close = "server"`: connects that reused a 4-tuple sooner
    /// than `host.time_wait` after it closed, while the server would still
    /// hold it in TIME_WAIT.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reuse_within_server_time_wait: Option<ServerTimeWaitReuse>,
    pub ports: Ports,
    pub reuse_interval_s: ReuseInterval,
    pub analytic: Analytic,
    pub timeseries: SeriesInfo,
    /// Per destination, when there are at most 4096.
    pub destinations: Vec<DestinationReport>,
    /// Changes that avoid the failures, each run on the same seed, best
    /// first; empty when nothing failed or fixes were not computed.
    pub fixes: Vec<Fix>,
    /// What computing `fixes` cost; `None` when they were not computed
    /// (`--no-fixes`, or the library's plain [`crate::run`]).
    pub fixes_cost: Option<FixesCost>,
    /// Per pool (what competes for the same ports: each source address and
    /// destination with 4-tuple sharing, each source address with exclusive
    /// ports), busiest first (highest peak share of its size, then highest
    /// mean), at most [`MAX_POOLS_LISTED`]; none when there are more than
    /// [`crate::sim::pools::MAX_POOL_STATS`].
    pub pools: Vec<PoolReport>,
    /// How many pools there are, listed or not (`analytic.pools`).
    pub pools_total: u64,
    /// The hosts, per `[[hosts]]` group (one group of one host, `host`,
    /// for a file with `[host]`).
    pub hosts: Vec<HostGroupReport>,
    /// Each NAT along the path (`host.via`), in path order; for a fleet,
    /// every `[[nat]]` in file order.
    pub nats: Vec<NatReport>,
    /// Requests, with a client model (`traffic.pool`, `concurrency`,
    /// `streams_per_connection` or `timeout`); else null.
    pub requests: Option<client::Requests>,
    /// The pools' connections, with a client model; else null.
    pub connections: Option<client::Connections>,
    /// How long requests that waited for a connection (at `max_open`)
    /// waited, with a client model; else null.
    pub pool_wait_s: Option<client::Quantiles>,
    /// `simulated_s` in nanoseconds, as the engine counted it.
    #[serde(skip)]
    pub simulated_ns: u64,
    /// `timeseries.bin_s` in nanoseconds, as the engine counted it.
    #[serde(skip)]
    pub bin_ns: u64,
    #[serde(skip)]
    pub bins: Vec<Bin>,
    /// rate(t) × (hold + TIME_WAIT) as (time s, level) corners, for charts.
    #[serde(skip)]
    pub steady_state: Vec<(f64, f64)>,
    /// Reuse intervals, ns, for the histogram chart.
    #[serde(skip)]
    pub reuse_histogram: hdrhistogram::Histogram<u64>,
    /// The OS's own range, when the scenario left `port_range` at the
    /// default and the OS's differs (Linux: 32768-60999), for the summary.
    #[serde(skip)]
    pub native_range_hint: Option<(u16, u16)>,
    /// Per destination (in scenario order), the peak of its busiest pool,
    /// for charts; empty when pools are per address or were not kept.
    #[serde(skip)]
    pub destination_pool_peaks: Vec<u32>,
}

/// One NAT's figures over the run.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct NatReport {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Outside addresses.
    pub addresses: u32,
    /// Outside ports on each address.
    pub ports_per_address: u32,
    /// Connections that reached this NAT.
    pub attempts: u64,
    /// Connections it dropped, all causes.
    pub failures: u64,
    pub failures_by_cause: NatFailures,
    /// When it first dropped one; `null` if it never did.
    pub first_failure_s: Option<f64>,
    /// SYNs it dropped, first SYNs and retransmissions (`failures` counts
    /// connects, at their last SYN).
    pub syns_dropped: u64,
    /// Connects it gave an outside tuple whose last connection the server
    /// closed first less than the server's TIME_WAIT before.
    pub stale_reuse: u64,
    /// Most conntrack entries at once (open, and held after close).
    pub peak_mappings: u64,
    pub mean_mappings: f64,
    /// Most outside ports of one address in use at once.
    pub peak_ports_per_address: u32,
    /// Mappings that kept the source port they were given.
    pub ports_preserved: u64,
    /// Distinct (address, port) pairs ever used.
    pub distinct_ports: u64,
    /// Closed entries (TIME_WAIT, CLOSE) a new connection evicted to take
    /// their tuple when no port was free.
    pub evicted: u64,
    /// Hosts that were, at some time, behind this NAT with no block or
    /// allocation of its ports (0 for NATs without per-host blocks).
    pub hosts_without_ports: u32,
    /// A cloud NAT's own figures (`null` for Linux).
    pub cloud: Option<CloudReport>,
}

/// Why a NAT dropped connections.
#[derive(Debug, Clone, Copy, Serialize, JsonSchema)]
pub struct NatFailures {
    /// No free outside port for the destination.
    pub no_port: u64,
    /// The conntrack table (`max_entries`) was full.
    pub table_full: u64,
    /// The host had no block of the NAT's ports.
    pub no_block: u64,
    /// Every address held its cap of connections to the destination.
    pub per_destination: u64,
    /// Endpoint-independent mapping conflicts.
    pub endpoint_independence_conflict: u64,
    /// Dropped while the host's block was being doubled.
    pub allocation_in_flight: u64,
}

/// What a cloud NAT measured, and what its vendor's formula says.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct CloudReport {
    /// What the vendor's metric calls the failures.
    pub failure_metric: &'static str,
    /// Hosts behind the NAT (most at once).
    pub hosts: u32,
    /// Each host's block at the start (0: a shared pool), and the smallest
    /// and largest any host had.
    pub ports_per_host: u32,
    pub min_ports_per_host: u32,
    pub max_ports_per_host: u32,
    /// Most ports of its block one host had in use at once (a port may
    /// serve several destinations); with a shared pool, most mappings one
    /// host held.
    pub peak_ports_used_per_host: u32,
    /// The fullest any host's block got: `[ports in use, block size]` then
    /// (`[0, 0]` with a shared pool).
    pub fullest_block: [u32; 2],
    /// Most connections one (address, destination) pair held at once, and
    /// the cap (`null`: none but the ports).
    pub peak_per_destination: u32,
    pub per_destination_limit: Option<u32>,
    /// Flows dropped because a scale event took back their ports.
    pub flows_dropped_by_scale: u64,
    /// Blocks doubled (dynamic allocation), and doublings that found no
    /// free ports.
    pub blocks_grown: u64,
    pub growth_failed: u64,
    /// Hold after a FIN close, a reset, an unanswered SYN and a UDP flow,
    /// and the idle timeout, in seconds.
    pub hold_s: CloudHolds,
    pub per_address: Vec<AddressReport>,
    /// Behaviours the vendor does not document, as they were assumed.
    pub assumed: Vec<String>,
    /// What users call this NAT.
    pub title: &'static str,
    /// The expected loads behind it, as its vendor's rule counts them and
    /// as the NAT holds them.
    pub loads: sizing::Loads,
    /// The vendor's sizing rule for this scenario.
    pub formula: FormulaReport,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct CloudHolds {
    pub fin: f64,
    pub rst: f64,
    pub half_open: f64,
    pub udp: f64,
    pub idle: f64,
}

/// One outside address of a cloud NAT.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct AddressReport {
    pub address: String,
    /// Most of its ports in use at once.
    pub peak_in_use: u32,
    /// Hosts with a block on it at the end.
    pub hosts: u32,
}

/// A vendor's sizing rule, worked out.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct FormulaReport {
    pub rule: String,
    pub source: &'static str,
    pub hosts_served: Option<u64>,
    pub per_destination: Option<u64>,
    pub ports_per_host: Option<u32>,
}

/// Pools listed in `report.json`, busiest first.
pub const MAX_POOLS_LISTED: usize = 20;

/// One pool's figures.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct PoolReport {
    /// The destination address (one source address in use), the source
    /// address (exclusive ports), or "SOURCE → DESTINATION".
    pub label: String,
    /// Ports the pool can hand out (range less reserved ports).
    pub size: u32,
    /// Most ports (4-tuples) the pool held at once.
    pub peak_in_use: u32,
    /// Time-averaged ports (4-tuples) held.
    pub mean_in_use: f64,
    pub attempts: u64,
    pub failures: u64,
}

/// The worst failure ratio over any 1 s, 10 s and 60 s window (windows
/// `[k·W, (k+1)·W)` aligned to the start of the run), the 1 s windows with
/// any failure, and the longest stretch in which every attempt failed (from
/// the first failure after a success to the next success, or the end).
#[derive(Debug, Clone, Copy, Serialize, JsonSchema)]
pub struct Bursts {
    #[schemars(range(min = 0.0, max = 1.0))]
    pub worst_1s: f64,
    #[schemars(range(min = 0.0, max = 1.0))]
    pub worst_10s: f64,
    #[schemars(range(min = 0.0, max = 1.0))]
    pub worst_60s: f64,
    pub seconds_with_failures: u64,
    pub longest_blocked_s: f64,
}

/// One time-series bin with its averages: a row of `timeseries.csv`, a
/// column of the occupancy chart.
#[derive(Debug, Clone, Copy)]
pub struct SeriesRow {
    pub start_ns: u64,
    /// The bin's width; the last bin may be cut short by the end of the run.
    pub width_ns: u64,
    pub in_use: f64,
    pub in_use_peak: u32,
    pub time_wait: f64,
    pub open: f64,
    pub attempts: u64,
    pub failures: u64,
    pub established: u64,
}

/// Connects that would meet a 4-tuple the server still holds in TIME_WAIT:
/// per (source address, port), the last connection on it went to the same
/// destination and closed less than `host.time_wait` before. Exact with one
/// destination; with several sharing a port, a lower bound (a port used for
/// another destination in between hides the older close).
#[derive(Debug, Clone, Copy, Serialize, JsonSchema)]
pub struct ServerTimeWaitReuse {
    pub count: u64,
    /// `count` as a share of established connections.
    pub share: f64,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ScenarioEcho {
    pub name: String,
    pub description: String,
    pub os: &'static str,
    /// The allocator the host's ports came from: `host.allocator`, or for
    /// UDP flows the OS's UDP allocator in its place.
    pub allocator: String,
    pub port_range: String,
    pub reserved_ports: Vec<String>,
    pub addresses: Vec<String>,
    pub time_wait_s: f64,
    pub tw_reuse: bool,
    pub tw_reuse_delay_s: f64,
    pub max_tw_buckets: u64,
    pub share_across_destinations: bool,
    pub destinations: usize,
    #[serde(serialize_with = "ser_arrivals")]
    #[schemars(with = "String")]
    pub arrivals: Arrivals,
    pub mean_rate: f64,
    pub mean_hold_s: f64,
    #[serde(serialize_with = "ser_close")]
    #[schemars(with = "String")]
    pub close: Close,
    #[serde(serialize_with = "ser_bind")]
    #[schemars(with = "String")]
    pub bind: BindMode,
    pub requests_per_connection: u32,
    pub retry_max: u32,
    pub duration_s: Option<f64>,
    pub max_connections: Option<u64>,
    /// `traffic.replay`: the connections made from a file, in place of
    /// `arrivals` at `mean_rate`; null otherwise.
    pub replay: Option<ReplayEcho>,
}

/// `scenario.replay`.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ReplayEcho {
    /// The CSV file, as the scenario's directory resolves it.
    pub file: String,
    /// Its rows: the connections the run makes (at most; those after
    /// `duration` are not).
    pub rows: u64,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct FirstFailure {
    pub time_s: f64,
    /// 1-based number of the first failed attempt.
    pub attempt: u64,
    /// `traffic.rate` at that moment, when the rate changes over time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
    /// Where it failed: `host` (a fleet's group name) when the host had no
    /// port, else the name of the NAT that dropped its last SYN.
    pub at: String,
}

/// How long established connects waited for a SYN to get through a NAT
/// that dropped the first (0 for those that did not wait).
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ConnectDelay {
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
    /// Established connects that waited at all.
    pub waited: u64,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Ports {
    pub range_size: u32,
    /// Range less reserved ports.
    pub usable: u32,
    pub addresses: u32,
    /// Distinct (address, port) pairs ever handed out.
    pub distinct_used: u32,
    /// Most (address, port) pairs held at once by connections or TIME_WAIT.
    pub peak_in_use: u32,
    /// Time-averaged (address, port) pairs held.
    pub mean_in_use: f64,
    pub peak_time_wait: u32,
    pub mean_time_wait: f64,
    pub peak_open_connections: u32,
    pub open_at_end: u32,
    pub time_wait_at_end: u32,
    /// Label of the busiest pool (`pools[0]`), when per-pool figures were kept.
    pub busiest_pool: Option<String>,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ReuseInterval {
    pub count: u64,
    /// Hosts whose intervals are counted: every host, except in a fleet,
    /// where the first 16 hosts of each group are (a group's hosts are
    /// alike, so their intervals follow one law).
    pub hosts: u64,
    pub min: Option<f64>,
    pub p50: Option<f64>,
    pub p90: Option<f64>,
    pub p99: Option<f64>,
    pub max: Option<f64>,
    pub mean: Option<f64>,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct SeriesInfo {
    pub bin_s: f64,
    pub bins: usize,
}

/// A change to the scenario and what a run with it gave (same seed): rerun
/// with `--set` for each of `change` to see the same figures.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Fix {
    /// What kind of change: allocator, keep_alive, server_close, tw_reuse,
    /// destinations, source_addresses, bind_no_port, port_range,
    /// nat_addresses, nat_port_range or rate.
    pub lever: &'static str,
    /// `KEY=VALUE` for each `--set` the change needs.
    pub change: Vec<String>,
    pub failure_ratio: f64,
    pub failures: u64,
    pub first_failure: Option<FirstFailure>,
    pub peak_in_use: u32,
    /// Ports the connections draw on with the change (usable ports × the
    /// source addresses used), as the headline counts them.
    pub ports: u64,
    pub attempts: u64,
    /// Whether the run with the change meets the goal: nothing fails, or
    /// the `--target` expression holds.
    pub meets_target: bool,
}

impl Report {
    /// Whether the run was a fleet (`[[hosts]]`), not one `[host]`.
    pub fn is_fleet(&self) -> bool {
        !(self.hosts.len() == 1 && self.hosts[0].count == 1 && self.hosts[0].name == "host")
    }
}

/// One `[[hosts]]` group: what its hosts did together.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct HostGroupReport {
    pub name: String,
    /// Hosts at the start.
    pub count: u32,
    /// The most hosts the group had at once: `count` or a `scale` step's.
    pub max_count: u32,
    /// `[[hosts]] scale`: from each step's time on, the group had that
    /// many hosts; empty when its count never changed.
    pub scale: Vec<ScaleStepReport>,
    pub attempts: u64,
    pub established: u64,
    pub failures: u64,
    /// Failures by the layer that refused: the group's own name for its
    /// hosts' ports, a NAT's name for that NAT.
    pub failures_at: std::collections::BTreeMap<String, u64>,
    /// The failures at NATs along its path, by cause.
    pub failures_by_cause: NatFailures,
    /// Most ports one host of the group held at once (connections and
    /// TIME_WAIT).
    pub peak_in_use_per_host: u32,
    /// The ports one host of the group draws on: usable ports × the source
    /// addresses its connections use.
    pub ports_per_host: u64,
}

/// One step of a group's `scale`.
#[derive(Debug, Clone, Copy, Serialize, JsonSchema)]
pub struct ScaleStepReport {
    /// When, in seconds from the start.
    pub at_s: f64,
    /// Hosts from then on.
    pub count: u32,
}

/// Connects whose tuple, as the destination sees it, it may still hold in
/// TIME_WAIT: the NATs' counts, or without a NAT the host's own.
pub fn stale_reuse(sc: &Scenario, o: &Outcome) -> u64 {
    let nats: u64 = o.nats.iter().map(|n| n.stale_reuse).sum();
    if sc.via.is_none() && !sc.is_fleet() {
        nats + o.server_time_wait_reuses.unwrap_or(0)
    } else {
        nats
    }
}

/// The `hosts` figures: the engine's per group, or the one host's.
fn host_groups(sc: &Scenario, o: &Outcome) -> Vec<HostGroupReport> {
    if !sc.is_fleet() {
        let mut failures_at = std::collections::BTreeMap::new();
        failures_at.insert(
            "host".to_string(),
            o.failures_at.first().copied().unwrap_or(0),
        );
        for (i, n) in sc.nat_path().into_iter().enumerate() {
            failures_at.insert(
                n.name.clone(),
                o.failures_at.get(i + 1).copied().unwrap_or(0),
            );
        }
        let mut causes = [0u64; 6];
        for n in &o.nats {
            for c in crate::sim::layer::Cause::ALL {
                causes[c.index()] += n.failures_of(c);
            }
        }
        return vec![HostGroupReport {
            failures_by_cause: nat_failures(&causes),
            name: "host".into(),
            count: 1,
            max_count: 1,
            scale: Vec::new(),
            attempts: o.attempts,
            established: o.established,
            failures: o.failures,
            failures_at,
            peak_in_use_per_host: o.peak_in_use,
            ports_per_host: ports_per_host(sc),
        }];
    }
    sc.groups
        .iter()
        .zip(&o.groups)
        .enumerate()
        .map(|(i, (g, f))| {
            let mut failures_at = std::collections::BTreeMap::new();
            failures_at.insert(g.name.clone(), f.failures_at[0]);
            // Every NAT on the group's path, failures or not.
            let mut at = g.via;
            while let Some(n) = at {
                failures_at.insert(sc.nats[n].name.clone(), f.failures_at[1 + n]);
                at = sc.nats[n].via;
            }
            HostGroupReport {
                failures_by_cause: nat_failures(&f.failures_by_cause),
                name: g.name.clone(),
                count: g.count,
                max_count: g.max_count(),
                scale: g
                    .scale
                    .iter()
                    .map(|s| ScaleStepReport {
                        at_s: secs(s.at_ns),
                        count: s.count,
                    })
                    .collect(),
                attempts: f.attempts,
                established: f.attempts - f.failures - f.connecting_at_end,
                failures: f.failures,
                failures_at,
                peak_in_use_per_host: f.peak_in_use_per_host,
                ports_per_host: ports_per_host(&sc.group_scenario(i)),
            }
        })
        .collect()
}

/// Failure counts by cause ([`crate::sim::layer::Cause::index`]).
fn nat_failures(c: &[u64; 6]) -> NatFailures {
    use crate::sim::layer::Cause;
    NatFailures {
        no_port: c[Cause::NoPort.index()],
        table_full: c[Cause::TableFull.index()],
        no_block: c[Cause::NoBlock.index()],
        per_destination: c[Cause::PerDestination.index()],
        endpoint_independence_conflict: c[Cause::EimConflict.index()],
        allocation_in_flight: c[Cause::Growing.index()],
    }
}

/// The ports one host of `sc` draws on: usable × source addresses used
/// (connect() takes the first).
fn ports_per_host(sc: &Scenario) -> u64 {
    let used = if sc.traffic.bind == crate::scenario::BindMode::Connect {
        1
    } else {
        sc.host.addresses.len() as u64
    };
    u64::from(sc.host.usable_ports()) * used
}

/// A fleet's rate × (hold + TIME_WAIT) over time: each group's curve times
/// its hosts, added up where the groups' curves change at the same times
/// (none otherwise: the sum of differently stepped curves is not drawn).
/// None either when a group scales: hosts that leave keep their TIME_WAIT
/// entries, so no curve of the count is the steady state.
fn fleet_steady_state(sc: &Scenario, horizon_s: f64) -> Vec<(f64, f64)> {
    if sc.groups.iter().any(|g| !g.scale.is_empty()) {
        return Vec::new();
    }
    let curves: Vec<Vec<(f64, f64)>> = (0..sc.groups.len())
        .map(|g| analytic::steady_state_curve(&sc.group_scenario(g), horizon_s))
        .collect();
    let first = &curves[0];
    let same_times = curves
        .iter()
        .all(|c| c.len() == first.len() && c.iter().zip(first).all(|(a, b)| a.0 == b.0));
    if !same_times {
        return Vec::new();
    }
    first
        .iter()
        .enumerate()
        .map(|(k, &(t, _))| {
            let v = curves
                .iter()
                .zip(&sc.groups)
                .map(|(c, g)| c[k].1 * f64::from(g.count))
                .sum();
            (t, v)
        })
        .collect()
}

/// The extra runs behind `fixes`.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct FixesCost {
    pub runs: u64,
    /// Attempts simulated by those runs (a run that failed while searching
    /// stops at its first failure).
    pub attempts: u64,
    /// `attempts` over the run's own attempts.
    pub relative_to_run: f64,
    /// The budget the levers shared, in runs of the scenario (counted in
    /// its attempts); `null` with `--all-fixes` (each lever within its own).
    pub budget_runs: Option<f64>,
    /// Levers that apply but that the budget stopped before they had an
    /// answer (`--all-fixes` answers them).
    pub not_computed: Vec<&'static str>,
    /// The goal the fixes reach: `--target`, or `failures<=0`.
    pub target: String,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct DestinationReport {
    pub address: String,
    pub attempts: u64,
    pub established: u64,
    pub failures: u64,
}

/// The busiest pools of a run, labelled, and each destination's busiest
/// pool's peak (when pools are per destination).
fn pool_reports(sc: &Scenario, o: &Outcome) -> (Vec<PoolReport>, Vec<u32>) {
    let size = sc.host.usable_ports();
    let one_source = sc.source_addresses() == 1;
    let address = |a: u32| sc.host.addresses.get(a as usize).map_or("", String::as_str);
    let mut peaks = Vec::new();
    let mut all: Vec<PoolReport> = o
        .pools
        .iter()
        .map(|p| {
            let label = match p.dest.and_then(|d| sc.destinations.get(d as usize)) {
                None => address(p.addr).to_string(),
                Some(d) if one_source => d.address.clone(),
                Some(d) => format!("{} → {}", address(p.addr), d.address),
            };
            if let Some(d) = p.dest {
                let d = d as usize;
                if peaks.len() <= d {
                    peaks.resize(d + 1, 0);
                }
                peaks[d] = peaks[d].max(p.peak_in_use);
            }
            PoolReport {
                label,
                size,
                peak_in_use: p.peak_in_use,
                mean_in_use: p.mean_in_use,
                attempts: p.attempts,
                failures: p.failures,
            }
        })
        .collect();
    // Stable: pools that tie keep their order (address, then destination).
    all.sort_by(|a, b| {
        let share = |p: &PoolReport| f64::from(p.peak_in_use) / f64::from(p.size.max(1));
        share(b)
            .total_cmp(&share(a))
            .then(b.mean_in_use.total_cmp(&a.mean_in_use))
    });
    all.truncate(MAX_POOLS_LISTED);
    (all, peaks)
}

impl Report {
    pub fn new(sc: &Scenario, o: Outcome) -> Report {
        let h = &sc.host;
        let hist = &o.reuse;
        let q = |p: f64| (!hist.is_empty()).then(|| secs(hist.value_at_quantile(p)));
        let reuse = ReuseInterval {
            count: hist.len(),
            hosts: o.reuse_hosts,
            min: (!hist.is_empty()).then(|| secs(hist.min())),
            p50: q(0.5),
            p90: q(0.9),
            p99: q(0.99),
            max: (!hist.is_empty()).then(|| secs(hist.max())),
            mean: (!hist.is_empty()).then(|| hist.mean() / NS_PER_S as f64),
        };
        let horizon = match sc.duration_ns {
            Some(d) => secs(d),
            None => secs(o.simulated_ns),
        };
        let echo = ScenarioEcho {
            name: sc.name.clone(),
            description: sc.description.clone(),
            os: h.os.preset().name,
            allocator: crate::sim::host::allocator_name(sc).to_string(),
            port_range: format!("{}-{}", h.port_lo, h.port_hi),
            reserved_ports: h
                .reserved
                .iter()
                .map(|(a, b)| {
                    if a == b {
                        a.to_string()
                    } else {
                        format!("{a}-{b}")
                    }
                })
                .collect(),
            addresses: h.addresses.clone(),
            time_wait_s: secs(h.time_wait_ns),
            tw_reuse: h.tw_reuse,
            tw_reuse_delay_s: secs(h.tw_reuse_delay_ns),
            max_tw_buckets: h.max_tw_buckets,
            share_across_destinations: h.share_across_destinations,
            destinations: sc.destinations.len(),
            arrivals: sc.traffic.arrivals,
            mean_rate: sc.traffic.rate.mean_rate(horizon),
            mean_hold_s: sc.traffic.hold.mean_ns() / NS_PER_S as f64,
            close: sc.traffic.close,
            bind: sc.traffic.bind,
            requests_per_connection: sc.traffic.requests_per_connection,
            retry_max: sc.traffic.retry.map_or(0, |r| r.max),
            duration_s: sc.duration_ns.map(secs),
            max_connections: sc.max_connections,
            replay: sc.traffic.replay.as_ref().map(|r| ReplayEcho {
                file: r.file.clone(),
                rows: r.rows.len() as u64,
            }),
        };
        let destinations = o
            .per_destination
            .iter()
            .zip(sc.all_destinations())
            .map(|(s, d)| DestinationReport {
                address: d.address.clone(),
                attempts: s.attempts,
                established: s.established,
                failures: s.failures,
            })
            .collect();
        let (pools, destination_pool_peaks) = pool_reports(sc, &o);
        let (requests, connections, pool_wait_s) = match o.client.as_deref() {
            Some(f) => {
                let (r, c, w) = client::sections(sc, f, u64::from(o.open_at_end), o.simulated_ns);
                (Some(r), Some(c), Some(w))
            }
            None => (None, None, None),
        };
        Report {
            requests,
            connections,
            pool_wait_s,
            schema_version: SCHEMA_VERSION,
            portsim_version: env!("CARGO_PKG_VERSION"),
            scenario: echo,
            seed: sc.seed,
            protocol: sc.traffic.protocol,
            simulated_s: secs(o.simulated_ns),
            attempts: o.attempts,
            established: o.established,
            failures: o.failures,
            failure_ratio: failure_ratio(o.failures, o.attempts),
            bursts: Bursts {
                worst_1s: o.bursts.worst[0],
                worst_10s: o.bursts.worst[1],
                worst_60s: o.bursts.worst[2],
                seconds_with_failures: o.bursts.seconds_with_failures,
                longest_blocked_s: secs(o.bursts.longest_blocked_ns),
            },
            first_failure: o.first_failure.map(|(t, a)| FirstFailure {
                time_s: secs(t),
                attempt: a,
                rate: (!sc.traffic.rate.is_constant()).then(|| sc.traffic.rate.at(secs(t))),
                at: o.first_failure_at.clone().unwrap_or_default(),
            }),
            connect_delay_s: ConnectDelay {
                p50: secs(o.delays.quantile(0.5)),
                p99: secs(o.delays.quantile(0.99)),
                max: secs(o.delays.max()),
                waited: o.delays.waited.len(),
            },
            connecting_at_end: o.connecting_at_end,
            stale_reuse: stale_reuse(sc, &o),
            highest_rate_before_failure: (!sc.traffic.rate.is_constant()).then(|| {
                let until = o.first_failure.map_or(o.simulated_ns, |(t, _)| t);
                sc.traffic.rate.max_over(secs(until))
            }),
            retries: o.retries,
            abandoned: o.abandoned,
            time_wait_reused: o.tw_reused,
            time_wait_skipped: o.tw_skipped,
            reuse_within_server_time_wait: o.server_time_wait_reuses.map(|count| {
                ServerTimeWaitReuse {
                    count,
                    share: failure_ratio(count, o.established),
                }
            }),
            ports: Ports {
                range_size: h.range_size(),
                usable: h.usable_ports(),
                addresses: h.addresses.len() as u32,
                distinct_used: o.distinct_used,
                peak_in_use: o.peak_in_use,
                mean_in_use: o.mean_in_use,
                peak_time_wait: o.peak_time_wait,
                mean_time_wait: o.mean_time_wait,
                peak_open_connections: o.peak_open,
                open_at_end: o.open_at_end,
                time_wait_at_end: o.time_wait_at_end,
                busiest_pool: pools.first().map(|p| p.label.clone()),
            },
            reuse_interval_s: reuse,
            analytic: analytic::analytic(sc, horizon),
            timeseries: SeriesInfo {
                bin_s: secs(o.bin_ns),
                bins: o.bins.len(),
            },
            destinations,
            fixes: Vec::new(),
            fixes_cost: None,
            pools,
            pools_total: o.pools_total,
            hosts: host_groups(sc, &o),
            nats: o
                .nats
                .iter()
                .zip(if sc.is_fleet() {
                    sc.nats.iter().collect()
                } else {
                    sc.nat_path()
                })
                .map(|(f, n)| NatReport {
                    name: n.name.clone(),
                    kind: n.kind.name(),
                    addresses: n.addresses.len() as u32,
                    ports_per_address: n.range_size(),
                    attempts: f.attempts,
                    failures: f.failures(),
                    failures_by_cause: NatFailures {
                        no_port: f.failures_no_port,
                        table_full: f.failures_table_full,
                        no_block: f.failures_no_block,
                        per_destination: f.failures_per_destination,
                        endpoint_independence_conflict: f.failures_eim_conflict,
                        allocation_in_flight: f.failures_growing,
                    },
                    first_failure_s: f.first_failure_ns.map(secs),
                    syns_dropped: f.syns_dropped,
                    stale_reuse: f.stale_reuse,
                    peak_mappings: f.peak_mappings,
                    mean_mappings: f.mean_mappings,
                    peak_ports_per_address: f.peak_ports_per_address,
                    ports_preserved: f.ports_preserved,
                    distinct_ports: f.distinct_ports,
                    evicted: f.evicted,
                    hosts_without_ports: f.cloud.as_ref().map_or(0, |c| c.hosts_without_ports),
                    cloud: cloud_report(sc, n, f, horizon),
                })
                .collect(),
            destination_pool_peaks,
            simulated_ns: o.simulated_ns,
            bin_ns: o.bin_ns,
            bins: o.bins,
            reuse_histogram: o.reuse,
            // A pool's connections do not open at the request rate: no
            // closed form to draw (the summary's analytic line says so).
            steady_state: if sc.traffic.client.is_some() {
                Vec::new()
            } else if sc.is_fleet() {
                fleet_steady_state(sc, horizon)
            } else {
                analytic::steady_state_curve(sc, horizon)
            },
            native_range_hint: {
                let native = h.os.preset().native_range;
                (!h.port_range_given && native != crate::os::DEFAULT_RANGE).then_some(native)
            },
        }
    }

    /// The time series up to the end of the run, averaged per bin: one row
    /// per engine bin, so `timeseries.bins` counts these rows. The engine
    /// puts events at exactly the end of the run in the last bin, so no row
    /// has width 0 (but for a run of length 0, whose one row is 1 ns wide).
    pub fn series(&self) -> Vec<SeriesRow> {
        let (bin_ns, end_ns) = (self.bin_ns, self.simulated_ns);
        let mut rows = Vec::with_capacity(self.bins.len());
        for (i, b) in self.bins.iter().enumerate() {
            let start = i as u64 * bin_ns;
            let width = bin_ns.min(end_ns.saturating_sub(start)).max(1);
            let w = width as f64;
            rows.push(SeriesRow {
                start_ns: start,
                width_ns: width,
                in_use: b.in_use_area / w,
                in_use_peak: b.in_use_peak,
                time_wait: b.time_wait_area / w,
                open: b.open_area / w,
                attempts: b.attempts,
                failures: b.failures,
                established: b.established,
            });
        }
        rows
    }

    /// The figures `--fail-on` and `--target` expressions compare.
    pub fn figures(&self) -> crate::scenario::spec::Figures {
        crate::scenario::spec::Figures {
            attempts: self.attempts,
            failures: self.failures,
            first_failure_s: self.first_failure.as_ref().map(|f| f.time_s),
            peak_in_use: self.ports.peak_in_use,
            worst_1s: self.bursts.worst_1s,
            worst_10s: self.bursts.worst_10s,
            worst_60s: self.bursts.worst_60s,
            seconds_with_failures: self.bursts.seconds_with_failures,
            longest_blocked_s: self.bursts.longest_blocked_s,
            connect_delay_p99: self.connect_delay_s.p99,
            connecting_at_end: self.connecting_at_end,
            stale_reuse: self.stale_reuse,
        }
    }

    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).expect("report serializes");
        s.push('\n');
        s
    }
}

/// A cloud NAT's part of its `nats[]` entry.
fn cloud_report(
    sc: &Scenario,
    n: &crate::scenario::nat::Nat,
    f: &crate::sim::layer::NatFigures,
    horizon_s: f64,
) -> Option<CloudReport> {
    let (rules, c) = (n.cloud.as_ref()?, f.cloud.as_ref()?);
    let formula = n.formula(u64::from(c.hosts))?;
    let h = &rules.holds;
    Some(CloudReport {
        failure_metric: rules.preset.failure_metric,
        hosts: c.hosts,
        ports_per_host: c.ports_per_host_at_start,
        min_ports_per_host: c.min_ports_per_host,
        max_ports_per_host: c.max_ports_per_host,
        peak_ports_used_per_host: c.peak_ports_used_per_host,
        fullest_block: [c.fullest_block.0, c.fullest_block.1],
        peak_per_destination: c.peak_per_destination,
        per_destination_limit: rules.preset.per_destination,
        flows_dropped_by_scale: c.flows_dropped_by_scale,
        blocks_grown: c.blocks_grown,
        growth_failed: c.growth_failed,
        hold_s: CloudHolds {
            fin: secs(h.fin),
            rst: secs(h.rst),
            half_open: secs(h.half_open),
            udp: secs(h.udp),
            idle: secs(h.idle),
        },
        per_address: n
            .addresses
            .iter()
            .enumerate()
            .map(|(i, a)| AddressReport {
                address: a.clone(),
                peak_in_use: c.address_peaks.get(i).copied().unwrap_or(0),
                hosts: c.address_hosts.get(i).copied().unwrap_or(0),
            })
            .collect(),
        assumed: rules.assumed.clone(),
        title: rules.preset.title,
        loads: sc
            .nats
            .iter()
            .position(|m| m.name == n.name)
            .map(|i| sizing::loads(sc, i, horizon_s))
            .unwrap_or_default(),
        formula: FormulaReport {
            rule: formula.rule,
            source: formula.source,
            hosts_served: formula.hosts_served,
            per_destination: formula.per_destination,
            ports_per_host: formula.ports_per_host,
        },
    })
}
