//! Scenarios built in code, for tests, benches and tools that generate
//! scenarios: typed setters for the keys set most often, `set` for any
//! other key, and the same checks as a file.
//!
//! A builder keeps a TOML table and loads it exactly as a file is loaded, so
//! a built scenario is the one the equivalent file gives, with the same
//! defaults and the same messages; [`Builder::text`] is that file. Durations
//! are `std::time::Duration`s and counts and rates are numbers, so a test
//! reads as what it means rather than as a string template.

use std::path::Path;
use std::time::Duration;

use super::{load_str, Scenario};
use crate::error::InputError;

/// A scenario under construction; [`Builder::build`] checks and types it.
#[derive(Debug, Clone)]
pub struct Builder {
    table: toml::Table,
}

/// A duration as the files write it, in whole nanoseconds ("1500ms" is
/// "1500000000ns"), so no precision is lost on the way.
fn duration(d: Duration) -> toml::Value {
    toml::Value::String(format!("{}ns", d.as_nanos()))
}

impl Builder {
    /// A scenario named `name` with one destination, `10.0.0.1:80`. Its
    /// length (`duration` or `max_connections`), `rate` and `hold` must
    /// still be set, as in a file.
    pub fn new(name: &str) -> Builder {
        let mut b = Builder {
            table: toml::Table::new(),
        };
        b.table.insert("name".into(), name.into());
        b.destination("10.0.0.1:80", 1)
    }

    /// Any key by its dotted path (`host.tw_reuse`, `traffic.retry.max`),
    /// as `--set` takes it.
    pub fn set(mut self, key: &str, value: impl Into<toml::Value>) -> Builder {
        let mut parts: Vec<&str> = key.split('.').collect();
        let last = parts.pop().unwrap_or(key);
        let mut table = &mut self.table;
        for p in parts {
            let entry = table
                .entry(p.to_string())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            if !entry.is_table() {
                *entry = toml::Value::Table(toml::Table::new());
            }
            table = entry.as_table_mut().expect("made a table above");
        }
        table.insert(last.to_string(), value.into());
        self
    }

    pub fn seed(self, seed: u64) -> Builder {
        // TOML integers are signed; the loader reads seeds as u64.
        self.set("seed", seed as i64)
    }

    pub fn duration(self, d: Duration) -> Builder {
        self.set("duration", duration(d))
    }

    pub fn max_connections(self, n: u64) -> Builder {
        self.set("max_connections", n as i64)
    }

    /// `host.os`: "linux", "freebsd", "macos", "windows" or "generic".
    pub fn os(self, os: &str) -> Builder {
        self.set("host.os", os)
    }

    /// `host.allocator`, e.g. "rfc6056-1".
    pub fn allocator(self, name: &str) -> Builder {
        self.set("host.allocator", name)
    }

    /// `host.port_range`, both ends included.
    pub fn port_range(self, lo: u16, hi: u16) -> Builder {
        self.set("host.port_range", format!("{lo}-{hi}"))
    }

    pub fn time_wait(self, d: Duration) -> Builder {
        self.set("host.time_wait", duration(d))
    }

    /// `host.addresses` as a count of consecutive addresses.
    pub fn addresses(self, n: u32) -> Builder {
        self.set("host.addresses", i64::from(n))
    }

    /// The destinations: `count` consecutive addresses from `address`
    /// ("ip:port"), replacing any given before.
    pub fn destination(mut self, address: &str, count: u32) -> Builder {
        let mut d = toml::Table::new();
        d.insert("address".into(), address.into());
        if count != 1 {
            d.insert("count".into(), i64::from(count).into());
        }
        self.table.insert(
            "destinations".into(),
            toml::Value::Array(vec![toml::Value::Table(d)]),
        );
        self
    }

    /// `traffic.rate`, connections per second.
    pub fn rate(self, per_s: f64) -> Builder {
        self.set("traffic.rate", per_s)
    }

    /// `traffic.schedule`: the rate from each time on, in time order.
    pub fn schedule(self, steps: &[(Duration, f64)]) -> Builder {
        let steps = steps
            .iter()
            .map(|&(at, rate)| {
                let mut t = toml::Table::new();
                t.insert("at".into(), duration(at));
                t.insert("rate".into(), rate.into());
                toml::Value::Table(t)
            })
            .collect();
        self.set("traffic.schedule", toml::Value::Array(steps))
    }

    /// `traffic.arrivals`: "poisson" or "constant".
    pub fn arrivals(self, kind: &str) -> Builder {
        self.set("traffic.arrivals", kind)
    }

    /// A constant `traffic.hold`.
    pub fn hold(self, d: Duration) -> Builder {
        self.set("traffic.hold", duration(d))
    }

    /// Exponential holds of mean `mean`.
    pub fn hold_exponential(self, mean: Duration) -> Builder {
        let mut t = toml::Table::new();
        t.insert("dist".into(), "exponential".into());
        t.insert("mean".into(), duration(mean));
        self.set("traffic.hold", toml::Value::Table(t))
    }

    /// Log-normal holds given by their median and 99th percentile.
    pub fn hold_lognormal(self, median: Duration, p99: Duration) -> Builder {
        let mut t = toml::Table::new();
        t.insert("dist".into(), "lognormal".into());
        t.insert("median".into(), duration(median));
        t.insert("p99".into(), duration(p99));
        self.set("traffic.hold", toml::Value::Table(t))
    }

    /// `traffic.close`: "client", "server" or "reset".
    pub fn close(self, how: &str) -> Builder {
        self.set("traffic.close", how)
    }

    /// `traffic.bind`: "connect", "bind" or "bind-no-port".
    pub fn bind(self, how: &str) -> Builder {
        self.set("traffic.bind", how)
    }

    pub fn requests_per_connection(self, n: u32) -> Builder {
        self.set("traffic.requests_per_connection", i64::from(n))
    }

    /// The scenario file this builder stands for.
    pub fn text(&self) -> String {
        toml::to_string(&self.table).expect("a TOML table always serialises")
    }

    /// Check and type the scenario, as loading [`Builder::text`] from a file
    /// named `built.toml` would.
    pub fn build(&self) -> Result<Scenario, InputError> {
        load_str(&self.text(), Path::new("built.toml"), &[])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_built_scenario_is_the_file_it_stands_for() {
        let b = Builder::new("b")
            .duration(Duration::from_secs(90))
            .port_range(60000, 60999)
            .time_wait(Duration::from_millis(1500))
            .rate(20.0)
            .hold(Duration::from_secs(1))
            .set("host.tw_reuse", true);
        let sc = b.build().expect("valid");
        assert_eq!(sc.duration_ns, Some(90_000_000_000));
        assert_eq!((sc.host.port_lo, sc.host.port_hi), (60000, 60999));
        assert_eq!(sc.host.time_wait_ns, 1_500_000_000);
        assert!(sc.host.tw_reuse);
        assert_eq!(sc.destinations[0].address, "10.0.0.1:80");
        let text = b.text();
        let from_file = load_str(&text, Path::new("built.toml"), &[]).expect("valid");
        assert_eq!(format!("{:?}", from_file.host), format!("{:?}", sc.host));
        // Checked as a file is: a bad value is refused with its key.
        let err = Builder::new("b")
            .duration(Duration::from_secs(1))
            .rate(-1.0)
            .hold(Duration::from_secs(1))
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("traffic.rate: found -1"), "{err}");
    }
}
