//! The scenario file as written: serde structs that mirror the TOML keys.
//!
//! Unknown keys are rejected here (`deny_unknown_fields`) so a typo never goes
//! unnoticed. Values that need a parser of their own (durations, port ranges,
//! addresses, names from a fixed list) stay strings at this stage; `validate`
//! turns them into typed settings and reports the key path on failure.

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawScenario {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub seed: Option<u64>,
    pub duration: Option<String>,
    pub max_connections: Option<u64>,
    #[serde(default)]
    pub host: RawHost,
    #[serde(default)]
    pub destinations: Vec<RawDestination>,
    pub traffic: RawTraffic,
    #[serde(default)]
    pub output: RawOutput,
    #[serde(default)]
    pub sweep: RawSweep,
    /// `[[nat]]` tables, in file order.
    #[serde(default)]
    pub nat: Vec<RawNat>,
    /// `[[hosts]]` groups, in file order.
    #[serde(default)]
    pub hosts: Vec<RawGroup>,
}

/// One `[[hosts]]` group: `count` identical hosts with any `[host]` key
/// (those it leaves out come from `[host]`), their own `[traffic]` keys
/// and, optionally, their own destinations.
#[derive(Debug, Clone, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a table: [[hosts]] with name = \"pods\" and count = 30"
)]
pub struct RawGroup {
    pub name: String,
    /// Signed, so a negative count gets the message of a count out of range.
    pub count: Option<i64>,
    /// `[traffic]` keys for each host of the group (`rate` is per host).
    pub traffic: Option<RawTraffic>,
    pub destinations: Option<Vec<RawDestination>>,
    pub os: Option<String>,
    pub allocator: Option<String>,
    pub port_range: Option<String>,
    pub reserved_ports: Option<toml::Value>,
    pub time_wait: Option<String>,
    pub tw_reuse: Option<bool>,
    pub tw_reuse_delay: Option<String>,
    pub max_tw_buckets: Option<u64>,
    pub addresses: Option<toml::Value>,
    pub share_across_destinations: Option<bool>,
    pub rfc6056_2_tries: Option<u32>,
    pub rfc6056_5_increment: Option<u32>,
    pub via: Option<String>,
    pub syn_retries: Option<i64>,
    pub syn_linear_timeouts: Option<i64>,
    /// Host counts from given times on, in time order.
    pub scale: Option<Vec<RawScaleStep>>,
}

/// One step of `[[hosts]] scale`.
#[derive(Debug, Clone, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a table such as { at = \"10m\", count = 52 }"
)]
pub struct RawScaleStep {
    pub at: String,
    /// Signed, so a negative count gets the message of a count out of range.
    pub count: i64,
}

impl RawGroup {
    /// The group's host: its own keys over `[host]`'s, and the names of
    /// the keys it set itself.
    pub fn host_over(&self, top: &RawHost) -> (RawHost, Vec<&'static str>) {
        let mut own = Vec::new();
        macro_rules! pick {
            ($($f:ident),*) => {
                RawHost {
                    $($f: match &self.$f {
                        Some(v) => {
                            own.push(stringify!($f));
                            Some(v.clone())
                        }
                        None => top.$f.clone(),
                    },)*
                }
            };
        }
        let h = pick!(
            os,
            allocator,
            port_range,
            reserved_ports,
            time_wait,
            tw_reuse,
            tw_reuse_delay,
            max_tw_buckets,
            addresses,
            share_across_destinations,
            rfc6056_2_tries,
            rfc6056_5_increment,
            via,
            syn_retries,
            syn_linear_timeouts
        );
        (h, own)
    }
}

impl RawTraffic {
    /// These keys over `top`'s, and the names of the keys set here. A rate
    /// profile (`rate`, `schedule`, `ramp` or `rate_profile`) given here
    /// replaces the file's whole.
    pub fn over(&self, top: &RawTraffic) -> (RawTraffic, Vec<&'static str>) {
        let mut own = Vec::new();
        macro_rules! pick {
            ($($f:ident),*) => {
                RawTraffic {
                    $($f: match &self.$f {
                        Some(v) => {
                            own.push(stringify!($f));
                            Some(v.clone())
                        }
                        None => top.$f.clone(),
                    },)*
                }
            };
        }
        let mut t = pick!(
            arrivals,
            rate,
            schedule,
            ramp,
            rate_profile,
            replay,
            hold,
            close,
            bind,
            pick,
            source,
            retry,
            requests_per_connection,
            connect_timeout,
            protocol,
            pool,
            concurrency,
            think,
            streams_per_connection,
            timeout
        );
        if self.rate.is_some()
            || self.schedule.is_some()
            || self.ramp.is_some()
            || self.rate_profile.is_some()
        {
            t.rate = self.rate;
            t.schedule = self.schedule.clone();
            t.ramp = self.ramp.clone();
            t.rate_profile = self.rate_profile.clone();
        }
        (t, own)
    }
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a table: [host] with keys such as os = \"linux\""
)]
pub struct RawHost {
    pub os: Option<String>,
    pub allocator: Option<String>,
    pub port_range: Option<String>,
    /// Numbers or "A-B" strings; parsed in `validate` for clearer messages.
    pub reserved_ports: Option<toml::Value>,
    pub time_wait: Option<String>,
    pub tw_reuse: Option<bool>,
    pub tw_reuse_delay: Option<String>,
    pub max_tw_buckets: Option<u64>,
    /// A count or a list of addresses; parsed in `validate`.
    pub addresses: Option<toml::Value>,
    pub share_across_destinations: Option<bool>,
    pub rfc6056_2_tries: Option<u32>,
    pub rfc6056_5_increment: Option<u32>,
    /// Name of the first `[[nat]]` the host's connections cross.
    pub via: Option<String>,
    /// `tcp_syn_retries` and `tcp_syn_linear_timeouts`; signed, so a
    /// negative count gets the message of a count out of range.
    pub syn_retries: Option<i64>,
    pub syn_linear_timeouts: Option<i64>,
}

/// One `[[nat]]` table. `name` and `type` are required; the other keys
/// have the kernel's defaults, filled in by `validate`.
#[derive(Debug, Clone, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a table: [[nat]] with name = \"node\" and type = \"linux\""
)]
pub struct RawNat {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    /// A count or a list of addresses, as `host.addresses`; parsed in `validate`.
    pub addresses: Option<toml::Value>,
    pub port_range: Option<String>,
    pub mode: Option<String>,
    pub persistent: Option<bool>,
    pub timeouts: Option<RawTimeouts>,
    /// Signed, so a negative count gets the message of a count out of range.
    pub max_entries: Option<i64>,
    /// Name of the next `[[nat]]` along the path.
    pub via: Option<String>,
    /// Cloud NATs: each host's block (Azure LB), the least and most a
    /// host's block holds (Cloud NAT). Signed, for the range message.
    pub ports_per_host: Option<i64>,
    pub min_ports_per_host: Option<i64>,
    pub max_ports_per_host: Option<i64>,
    /// Cloud NATs: durations.
    pub hold_after_close: Option<String>,
    pub idle_timeout: Option<String>,
    pub allocation_lag: Option<String>,
    pub endpoint_independent: Option<bool>,
}

impl RawNat {
    /// The keys only cloud NATs take, and whether the table set each.
    pub fn cloud_keys_given(&self) -> [(&'static str, bool); 7] {
        [
            ("ports_per_host", self.ports_per_host.is_some()),
            ("min_ports_per_host", self.min_ports_per_host.is_some()),
            ("max_ports_per_host", self.max_ports_per_host.is_some()),
            ("hold_after_close", self.hold_after_close.is_some()),
            ("idle_timeout", self.idle_timeout.is_some()),
            ("allocation_lag", self.allocation_lag.is_some()),
            ("endpoint_independent", self.endpoint_independent.is_some()),
        ]
    }
}

/// `[[nat]].timeouts`: nf_conntrack's TCP timeouts, each a duration.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "an inline table of durations such as { time_wait = \"120s\", close = \"10s\" }"
)]
pub struct RawTimeouts {
    pub syn_sent: Option<String>,
    pub established: Option<String>,
    pub fin_wait: Option<String>,
    pub close_wait: Option<String>,
    pub last_ack: Option<String>,
    pub time_wait: Option<String>,
    pub close: Option<String>,
    pub udp: Option<String>,
    /// Cloud NAT's TCP transitory idle timeout.
    pub transitory: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a table: [[destinations]] with address = \"10.0.0.5:5432\""
)]
pub struct RawDestination {
    pub address: String,
    pub weight: Option<f64>,
    pub count: Option<u32>,
    /// The server's TIME_WAIT (a duration).
    pub time_wait: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a table: [traffic] with keys such as rate = 100"
)]
pub struct RawTraffic {
    pub arrivals: Option<String>,
    pub rate: Option<f64>,
    pub schedule: Option<Vec<RawStep>>,
    pub ramp: Option<RawRamp>,
    /// A CSV file of `time,rate` rows: the rate profile, measured.
    pub rate_profile: Option<String>,
    /// A CSV file of `start,destination,hold` rows: the connections made.
    pub replay: Option<String>,
    /// A duration string or a `{ dist = ... }` table; parsed in `validate`.
    pub hold: Option<toml::Value>,
    pub close: Option<String>,
    pub bind: Option<String>,
    pub pick: Option<String>,
    pub source: Option<String>,
    pub retry: Option<RawRetry>,
    pub requests_per_connection: Option<u32>,
    /// The application's connect timeout (a duration).
    pub connect_timeout: Option<String>,
    /// "tcp" or "udp"; parsed in `validate`.
    pub protocol: Option<String>,
    /// `{ max_idle, max_open, idle_timeout, max_lifetime, wait }`.
    pub pool: Option<RawPool>,
    /// Users: a number, steps `[{ at, users }]` or a ramp table; parsed in
    /// `validate`.
    pub concurrency: Option<toml::Value>,
    /// Like `hold`.
    pub think: Option<toml::Value>,
    pub streams_per_connection: Option<u32>,
    /// A request's timeout (a duration).
    pub timeout: Option<String>,
}

impl RawScenario {
    /// Make the files the scenario names (`traffic.rate_profile`,
    /// `traffic.replay`, also in `[[hosts]]` groups) relative to the
    /// working directory: as written they are relative to the directory
    /// of the scenario file, `dir`, so a scenario runs from anywhere.
    pub fn resolve_paths(&mut self, dir: &std::path::Path) {
        let groups = self.hosts.iter_mut().filter_map(|g| g.traffic.as_mut());
        for t in std::iter::once(&mut self.traffic).chain(groups) {
            for f in [&mut t.rate_profile, &mut t.replay].into_iter().flatten() {
                let joined = dir.join(&*f);
                *f = joined.to_string_lossy().into_owned();
            }
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a table such as { max_idle = 2, idle_timeout = \"90s\" }"
)]
pub struct RawPool {
    pub max_idle: Option<u32>,
    pub max_open: Option<u32>,
    pub idle_timeout: Option<String>,
    pub max_lifetime: Option<String>,
    /// true, false or a duration; parsed in `validate`.
    pub wait: Option<toml::Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a table such as { at = \"30s\", rate = 200 }"
)]
pub struct RawStep {
    pub at: String,
    pub rate: f64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a table such as { from = 10, to = 500, over = \"10m\" }"
)]
pub struct RawRamp {
    pub from: f64,
    pub to: f64,
    pub over: String,
    pub at: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a table such as { after = \"1s\", max = 3 }"
)]
pub struct RawRetry {
    pub after: String,
    pub max: u32,
    /// "fixed" (the default) or "exponential".
    pub backoff: Option<String>,
    pub factor: Option<f64>,
    pub cap: Option<String>,
    /// "full", "equal" or "none".
    pub jitter: Option<String>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a table: [output] with keys such as bin = \"1s\""
)]
pub struct RawOutput {
    /// Width of one time-series bin; chosen from the duration when absent.
    pub bin: Option<String>,
}

/// Defaults for `portsim sweep` and `portsim capacity` on this scenario.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a table: [sweep] with keys such as seeds = 10"
)]
pub struct RawSweep {
    /// `--vary` specs used when the command line gives none.
    #[serde(default)]
    pub vary: Vec<String>,
    /// `--seeds` when the command line gives none.
    pub seeds: Option<u32>,
    /// `--vary KEY[=LOW..HIGH]` of `portsim capacity` when none is given.
    pub capacity: Option<String>,
    /// `--target` of `portsim capacity` when none is given.
    pub target: Option<String>,
}
