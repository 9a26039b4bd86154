//! Criterion benches: the whole engine on the baseline's model, each
//! allocator picking from a table half, nine tenths and entirely full, the
//! engine on one shipped scenario of each family, and a fleet of 1,000
//! hosts against one host making the same attempts.
//!
//! `cargo bench` runs them; `../shared/tools/perf-vs-naive` compares the
//! binary with the naive baseline end to end.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use portsim::alloc::{self, mix64, Request};
use portsim::ports::{PortSpace, Ports, Sharing, Take};
use portsim::scenario::Builder;
use rand::SeedableRng;

/// Sets a scenario's holds.
type HoldFn = dyn Fn(Builder) -> Builder;

/// The baseline's model: one destination, Poisson arrivals at `rate` for
/// ten minutes, TIME_WAIT 60 s, holds as `hold` sets them.
fn scenario(
    rate: u32,
    hold: impl FnOnce(Builder) -> Builder,
    allocator: &str,
) -> portsim::Scenario {
    let b = Builder::new("bench")
        .seed(42)
        .duration(Duration::from_secs(600))
        .os("generic")
        .allocator(allocator)
        .time_wait(Duration::from_secs(60))
        .destination("10.0.0.1:443", 1)
        .rate(f64::from(rate));
    hold(b).build().expect("bench scenario")
}

fn engine(c: &mut Criterion) {
    let mut g = c.benchmark_group("engine_10min");
    g.sample_size(10);
    let exp = |b: Builder| b.hold_exponential(Duration::from_secs(1));
    let logn = |b: Builder| b.hold_lognormal(Duration::from_millis(500), Duration::from_secs(5));
    let cases: [(&str, u32, &HoldFn); 3] = [
        ("below_250_exp", 250, &exp),
        ("above_300_exp", 300, &exp),
        ("below_250_lognormal", 250, &logn),
    ];
    for (label, rate, hold) in cases {
        let sc = scenario(rate, hold, "rfc6056-1");
        g.throughput(Throughput::Elements(u64::from(rate) * 600));
        g.bench_function(label, |b| b.iter(|| portsim::run(&sc)));
    }
    g.finish();
}

/// Each allocator picking one port from a table of 16,384 that is half,
/// nine tenths or entirely full (every second, every tenth or no port
/// free): the cost of a connect() as the range fills, up to the full scan
/// that ends in a failure.
fn allocators(c: &mut Criterion) {
    let mut g = c.benchmark_group("allocator_pick");
    let n = 16384u32;
    let host = scenario(1, |b| b.hold(Duration::from_secs(1)), "rfc6056-1").host;
    // Ports taken: all but every `free_every`-th (0: none free).
    for (label, free_every) in [("50pct", 2u32), ("90pct", 10), ("100pct", 0)] {
        let taken = |p: u32| free_every == 0 || p % free_every != 0;
        let mut space = PortSpace::new(n, 1, []);
        for p in (0..n).filter(|&p| taken(p)) {
            space.occupy(Take {
                key: 0,
                ..Take::port(p)
            });
        }
        for e in alloc::REGISTRY {
            let mut a = (e.build)(alloc::Setup {
                settings: &host.alloc_settings(),
                rng: rand_chacha::ChaCha8Rng::seed_from_u64(1),
            });
            let req = Request {
                addr: 0,
                dest: 0,
                flow_key: mix64(0),
                now_ns: 0,
                bind: false,
            };
            g.bench_with_input(BenchmarkId::new(e.name, label), &(), |b, _| {
                b.iter(|| {
                    let c = space.candidates(0, space.flow(0), Sharing::FourTuple);
                    a.pick(&req, &c)
                })
            });
        }
    }
    g.finish();
}

/// The whole engine on one shipped scenario of each family, with its full
/// report (no fixes): a host alone, keep-alive, several destinations, a
/// Linux NAT, stacked NATs, a cloud NAT, UDP, a connection pool and a
/// closed loop. Throughput is the run's own connection attempts.
fn families(c: &mut Criterion) {
    let mut g = c.benchmark_group("scenario_family");
    g.sample_size(10);
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    for name in [
        "api-no-pooling",
        "keep-alive",
        "many-destinations",
        "k8s-node-masquerade",
        "nat-stacked",
        "cloud-nat-go-builders",
        "cloud-nat-dns",
        "go-default-transport",
        "k6-no-connection-reuse",
    ] {
        let sc = portsim::scenario::load_file(&dir.join(format!("{name}.toml")), &[])
            .expect("a shipped scenario");
        let attempts = portsim::run(&sc).attempts;
        g.throughput(Throughput::Elements(attempts));
        g.bench_function(name, |b| b.iter(|| portsim::run(&sc)));
    }
    g.finish();
}

/// 6,000,000 attempts at 50 connections/s per host (Linux, exponential
/// holds of mean 100 ms, one destination, no NAT): 1,000 hosts for 120 s
/// (past the 60 s TIME_WAIT, so ports are freed as well as taken), or one
/// host for 120,000 s. Both report attempts per second, so the cost of
/// spreading the same work over a fleet (a port table per host, the merged
/// arrivals and timers) reads directly.
fn fleet(c: &mut Criterion) {
    let mut g = c.benchmark_group("attempts_6m");
    g.sample_size(10);
    let base = |secs: u64| {
        Builder::new("bench")
            .seed(42)
            .duration(Duration::from_secs(secs))
            .os("linux")
            .destination("10.0.0.1:443", 1)
            .rate(50.0)
            .hold_exponential(Duration::from_millis(100))
    };
    let mut group = toml::Table::new();
    group.insert("name".into(), "web".into());
    group.insert("count".into(), 1000.into());
    let fleet = base(120)
        .set("hosts", toml::Value::Array(vec![group.into()]))
        .build()
        .expect("fleet bench scenario");
    let single = base(120_000).build().expect("single-host bench scenario");
    for (label, sc) in [("fleet_1000_hosts", &fleet), ("single_host", &single)] {
        g.throughput(Throughput::Elements(6_000_000));
        g.bench_function(label, |b| b.iter(|| portsim::run(sc)));
    }
    g.finish();
}

criterion_group!(benches, engine, allocators, families, fleet);
criterion_main!(benches);
