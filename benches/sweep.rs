//! Criterion bench of a sweep: 40 points × 10 seeds of a one-hour scenario
//! (`scenarios/sweep-rate.toml`, rates 5 to 24.5 conn/s), on one thread and
//! on two, so the parallel speed-up is measured rather than assumed.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use portsim::sweep::{pool, run_points, Plan};

fn sweep(c: &mut Criterion) {
    let scenario = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/scenarios/sweep-rate.toml"
    ));
    let plan = Plan {
        text: portsim::scenario::read_file(&scenario).expect("the scenario reads"),
        scenario,
        overrides: vec![],
        varies: vec!["traffic.rate=5..24.5:0.5".parse().expect("a valid spec")],
        seeds: 10,
        base_seed: 1,
    };
    let points = plan.points(None).expect("the sweep loads");
    assert_eq!(points.len(), 40);
    let stop = AtomicBool::new(false);
    let mut g = c.benchmark_group("sweep_40x10_1h");
    g.sample_size(10);
    g.throughput(Throughput::Elements(400));
    for jobs in [1, 2] {
        let threads = pool(jobs).expect("a thread pool");
        g.bench_with_input(BenchmarkId::new("jobs", jobs), &jobs, |b, _| {
            b.iter(|| {
                threads.install(|| run_points(&points, plan.seeds, plan.base_seed, &stop, &()))
            })
        });
    }
    g.finish();
}

criterion_group!(benches, sweep);
criterion_main!(benches);
