//! Criterion benches: the whole engine on the baseline's model, and each
//! allocator picking from a nearly full table.
//!
//! `cargo bench` runs them; `../shared/tools/perf-vs-naive` compares the
//! binary with the naive baseline end to end.

use std::path::Path;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use portsim::alloc::{self, mix64, Request};
use portsim::ports::{PortSpace, Ports, Sharing, Take};
use rand::SeedableRng;

fn scenario(rate: u32, hold: &str, allocator: &str) -> portsim::Scenario {
    let text = format!(
        r#"name = "bench"
seed = 42
duration = "10m"
[host]
os = "generic"
allocator = "{allocator}"
time_wait = "60s"
[[destinations]]
address = "10.0.0.1:443"
[traffic]
rate = {rate}
hold = {hold}
"#
    );
    portsim::scenario::load_str(&text, Path::new("bench.toml"), &[]).expect("bench scenario")
}

fn engine(c: &mut Criterion) {
    let mut g = c.benchmark_group("engine_10min");
    g.sample_size(10);
    let exp = r#"{ dist = "exponential", mean = "1s" }"#;
    let logn = r#"{ dist = "lognormal", median = "500ms", p99 = "5s" }"#;
    for (label, rate, hold) in [
        ("below_250_exp", 250, exp),
        ("above_300_exp", 300, exp),
        ("below_250_lognormal", 250, logn),
    ] {
        let sc = scenario(rate, hold, "rfc6056-1");
        g.throughput(Throughput::Elements(u64::from(rate) * 600));
        g.bench_function(label, |b| b.iter(|| portsim::run(&sc)));
    }
    g.finish();
}

fn allocators(c: &mut Criterion) {
    let mut g = c.benchmark_group("allocator_pick_90pct_full");
    let n = 16384u32;
    let host = scenario(1, "\"1s\"", "rfc6056-1").host;
    // Every tenth port free.
    let mut space = PortSpace::new(n, 1, []);
    for p in (0..n).filter(|p| p % 10 != 0) {
        space.occupy(Take {
            addr: 0,
            key: 0,
            slot: None,
            port: p,
            bind: false,
            now: 0,
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
        g.bench_with_input(BenchmarkId::from_parameter(e.name), &(), |b, _| {
            b.iter(|| {
                let c = space.candidates(0, space.flow(0), Sharing::FourTuple);
                a.pick(&req, &c)
            })
        });
    }
    g.finish();
}

criterion_group!(benches, engine, allocators);
criterion_main!(benches);
