//! Criterion bench: a fleet at scale. 1,000 Linux hosts, each opening 50
//! connections per second (Poisson, exponential holds of mean 100 ms, one
//! destination) through one Linux NAT with 100 outside addresses, for one
//! simulated hour: 180,000,000 attempts, all of them through the NAT's
//! conntrack table (about 6,000,000 entries at once: 50,000/s × the 120 s
//! conntrack TIME_WAIT). Throughput is attempts; criterion prints them per
//! second.
//!
//! One iteration takes minutes, so this bench has a file of its own:
//! `cargo bench --bench fleet_scale`.

use std::path::Path;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};

/// The fleet, simulated for `duration`.
fn fleet(duration: &str) -> portsim::Scenario {
    let addresses: Vec<String> = (1..=100).map(|i| format!("\"198.51.100.{i}\"")).collect();
    let text = format!(
        r#"name = "fleet-1000-hosts-one-nat"
seed = 42
duration = "{duration}"
[host]
os = "linux"
[[destinations]]
address = "10.0.0.1:443"
[traffic]
arrivals = "poisson"
hold = {{ dist = "exponential", mean = "100ms" }}
close = "client"
[[hosts]]
name = "web"
count = 1000
traffic = {{ rate = 50 }}
via = "egress"
[[nat]]
name = "egress"
type = "linux"
max_entries = 8000000
addresses = [{}]
"#,
        addresses.join(", ")
    );
    portsim::scenario::load_str(&text, Path::new("fleet-scale.toml"), &[])
        .expect("fleet bench scenario")
}

fn fleet_scale(c: &mut Criterion) {
    let mut g = c.benchmark_group("fleet_at_scale");
    g.sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(1))
        .measurement_time(Duration::from_secs(1));
    let sc = fleet("1h");
    g.throughput(Throughput::Elements(180_000_000));
    g.bench_function("1000_hosts_50_per_s_one_nat_1h", |b| {
        b.iter(|| portsim::run(&sc))
    });
    g.finish();
}

criterion_group!(benches, fleet_scale);
criterion_main!(benches);
