//! Random traffic against queueing theory: Little's law for mean occupancy,
//! Erlang B for exhaustive allocators (whatever the hold-time law; with
//! `tw_reuse`, with the delay in place of TIME_WAIT), the
//! birth-death model of RFC 6056 algorithm 2, and Takács' GI/M/c/c formula
//! for round-robin streams. Each bound is derived from the mathematics and
//! stated next to its assertion.

use portsim::report::erlang_b;
use portsim::Report;

use super::{invariants, Det};
use crate::util;

/// Mean and standard error of a sample.
fn mean_se(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    let m = xs.iter().sum::<f64>() / n;
    let var = xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0);
    (m, (var / n).sqrt())
}

#[test]
fn littles_law_mean_ports_in_use() {
    // 16,384 ports, Poisson arrivals at λ = 2000/61 per s, exponential hold of
    // mean h = 1 s, TIME_WAIT T = 60 s: each port is busy S = H + T, offered
    // load A = λ·E[S] = 2000, so far from the 16,384 ports that nothing fails
    // and ports in use is an M/G/∞ occupancy N(t). Run R = 3600 s from empty.
    let (lambda, h, t, run_s): (f64, f64, f64, f64) = (2000.0 / 61.0, 1.0, 60.0, 3600.0);
    let toml = format!(
        "name = \"little\"\nseed = 11\nduration = \"{run_s}s\"\n[[destinations]]\naddress = \"10.0.0.5:80\"\n\
         [host]\ntime_wait = \"{t}s\"\n\
         [traffic]\nrate = {lambda:.12}\nhold = {{ dist = \"exponential\", mean = \"{h}s\" }}\n"
    );
    let r = util::run(&toml);
    invariants(&r);
    assert_eq!(r.failures, 0);
    let a = lambda * (h + t);
    // Bias from the empty start: E[N(u)] = A − λ·g(u), g(u) = ∫_u^∞ P(S > x) dx,
    // so E[mean] = A − (λ/R)·∫_0^R g. For S = T + Exp(h):
    //   ∫_0^R g = T²/2 + h·T + h²·(1 − e^{−(R−T)/h}).
    let bias = lambda / run_s * (t * t / 2.0 + h * t + h * h * (1.0 - (-(run_s - t) / h).exp()));
    // Noise: for M/G/∞ the time average over R has variance ≈ λ·E[S²]/R
    // (∫ of the autocovariance λ·g(u) over all lags), with
    // E[S²] = T² + 2·T·h + 2·h² for S = T + Exp(h).
    let sigma = (lambda * (t * t + 2.0 * t * h + 2.0 * h * h) / run_s).sqrt();
    let mean = r.ports.mean_in_use;
    assert!(
        (mean - (a - bias)).abs() <= 5.0 * sigma,
        "mean in use {mean:.2}, Little's law A = {a:.2} less start-up bias {bias:.2}, σ = {sigma:.2}"
    );
    // The report's own Little figure is λ·(mean hold + TIME_WAIT).
    assert!((r.analytic.little_mean_in_use - a).abs() < 1e-6 * a);
    // TIME_WAIT alone: entries start at t_k + H_k (still Poisson at rate λ)
    // and last T, an M/D/∞ occupancy of load λ·T. From empty, for u > T,
    // E[N_tw(u)] = λ·∫_{u−T}^{u} P(H <= v) dv = λT − λh·(e^{−(u−T)/h} − e^{−u/h}),
    // and λ·(u − h·(1 − e^{−u/h})) before; integrating the deficit over [0, R]
    // gives bias' = (λ/R)·(T²/2 + h·T) up to terms in e^{−T/h}. Noise:
    // σ'² ≈ λ·E[T²]/R = λ·T²/R.
    let tw_bias = lambda / run_s * (t * t / 2.0 + h * t);
    let tw_sigma = (lambda * t * t / run_s).sqrt();
    let tw = r.ports.mean_time_wait;
    assert!(
        (tw - (lambda * t - tw_bias)).abs() <= 5.0 * tw_sigma,
        "mean TIME_WAIT {tw:.2}, expected about {:.2}",
        lambda * t - tw_bias
    );
}

/// A service-time law: the hold (TOML) plus TIME_WAIT, with the moments of
/// S = hold + TIME_WAIT computed here from the parameters.
struct Service {
    hold: String,
    time_wait_s: f64,
    /// E[S], E[S³].
    m1: f64,
    m3: f64,
}

/// Φ⁻¹(0.99): lognormal holds are given by median and 99th percentile.
const Z99: f64 = 2.326_347_874_040_841;

fn service(kind: &str, time_wait_s: f64) -> Service {
    let tw = time_wait_s;
    // Raw moments E[H], E[H²], E[H³] of the hold, then of S = H + tw.
    let (hold, h1, h2, h3) = match kind {
        "exponential" => {
            let m = 0.5;
            (
                "{ dist = \"exponential\", mean = \"500ms\" }".to_string(),
                m,
                2.0 * m * m,
                6.0 * m * m * m,
            )
        }
        "constant" => {
            let c = 1.0 - tw;
            (
                format!("\"{}ms\"", (c * 1000.0).round()),
                c,
                c * c,
                c * c * c,
            )
        }
        "uniform" => {
            // U(0, 1 s): E[H^k] = 1/(k+1).
            (
                "{ dist = \"uniform\", min = \"0ms\", max = \"1s\" }".to_string(),
                0.5,
                1.0 / 3.0,
                0.25,
            )
        }
        "lognormal" => {
            // median 0.4 s, p99 2 s: μ = ln 0.4, σ = ln(2/0.4)/z99, E[H^k] = e^{kμ + k²σ²/2}.
            let mu = 0.4f64.ln();
            let s = (2.0f64 / 0.4).ln() / Z99;
            let m = |k: f64| (k * mu + k * k * s * s / 2.0).exp();
            (
                "{ dist = \"lognormal\", median = \"400ms\", p99 = \"2s\" }".to_string(),
                m(1.0),
                m(2.0),
                m(3.0),
            )
        }
        other => panic!("unknown law {other}"),
    };
    Service {
        hold,
        time_wait_s: tw,
        m1: h1 + tw,
        m3: h3 + 3.0 * h2 * tw + 3.0 * h1 * tw * tw + tw * tw * tw,
    }
}

/// Failure ratio after a warm-up, per seed, for a pool of `ports`. Each call
/// site passes its own `seeds` range so that cases do not share random draws.
fn loss_ratios(
    host: &str,
    ports: u32,
    sv: &Service,
    rate: f64,
    seeds: std::ops::Range<u64>,
    run_s: u64,
    warm_s: f64,
) -> Vec<f64> {
    seeds
        .map(|seed| {
            let close = if sv.time_wait_s > 0.0 { "client" } else { "reset" };
            let toml = format!(
                "name = \"erlang\"\nseed = {seed}\nduration = \"{run_s}s\"\n[output]\nbin = \"1s\"\n\
                 [host]\n{host}\nport_range = \"50000-{}\"\ntime_wait = \"{}ms\"\n\
                 [[destinations]]\naddress = \"10.0.0.5:80\"\n\
                 [traffic]\nrate = {rate}\nhold = {}\nclose = \"{close}\"\n",
                50000 + ports - 1,
                (sv.time_wait_s * 1000.0).round(),
                sv.hold,
            );
            let r = util::run(&toml);
            invariants(&r);
            ratio_after(&r, warm_s)
        })
        .collect()
}

/// Failure ratio of the attempts made after `warm_s` seconds, from the time series.
fn ratio_after(r: &Report, warm_s: f64) -> f64 {
    let first = (warm_s / r.timeseries.bin_s).ceil() as usize;
    assert!(first < r.bins.len(), "warm-up longer than the run");
    let (att, fail) = r.bins[first..]
        .iter()
        .fold((0u64, 0u64), |(a, f), b| (a + b.attempts, f + b.failures));
    fail as f64 / att as f64
}

/// Poisson arrivals at `a / E[S]` per second with the rate written with 6
/// decimals; returns (rate, the offered load that rate gives).
fn rate_for(a: f64, sv: &Service) -> (f64, f64) {
    let rate: f64 = format!("{:.6}", a / sv.m1).parse().expect("a number");
    (rate, rate * sv.m1)
}

#[test]
fn erlang_b_failure_ratio_for_exhaustive_allocators() {
    // 50 ports, Poisson arrivals, offered load A = 45 and 60 erlangs, service
    // S = hold + TIME_WAIT of mean 1 s. An allocator that finds a free port
    // whenever one exists makes the pool an M/G/c/c loss system, whose
    // failure ratio is Erlang B(c, A) whatever the law of S (insensitivity):
    // exponential, constant, uniform and lognormal holds all give B.
    //
    // 30 independent seeds × 2000 s (2000 mean services). Each seed's ratio
    // is taken after a warm-up of W = 50 s; the 30 ratios are i.i.d., so their
    // mean is within 5 standard errors of its expectation except with
    // probability < 1e-4 (Student t, 29 degrees of freedom).
    //
    // Warm-up bias: started empty, the occupancy that an infinite pool would
    // have at time u has mean A·(1 − P(S_e > u)), S_e the equilibrium residual
    // of S, with P(S_e > W) <= E[S_e²]/W² = E[S³]/(3·E[S]·W²) =: ε. Counting
    // the loss system as offered at least A·(1 − ε) after W bounds the bias by
    // B(c, A) − B(c, A·(1 − ε)), of order 1e-3·B here.
    let (ports, seeds, run_s, warm_s) = (50u32, 30u64, 2000u64, 50.0);
    let cases = [
        ("rfc6056-1", "exponential", 0.5, 45.0),
        ("rfc6056-1", "lognormal", 0.5, 60.0),
        ("sequential", "constant", 0.0, 45.0),
        ("sequential", "uniform", 0.5, 60.0),
        ("rfc6056-3", "lognormal", 0.5, 45.0),
        ("rfc6056-3", "exponential", 0.0, 60.0),
        ("rfc6056-4", "uniform", 0.5, 45.0),
        ("rfc6056-4", "constant", 0.5, 60.0),
    ];
    for (i, (allocator, law, tw, a_target)) in (0u64..).zip(cases) {
        let sv = service(law, tw);
        let (rate, a) = rate_for(a_target, &sv);
        let b = erlang_b(u64::from(ports), a);
        let eps = sv.m3 / (3.0 * sv.m1 * warm_s * warm_s);
        let bias = b - erlang_b(u64::from(ports), a * (1.0 - eps));
        let host = format!("allocator = \"{allocator}\"");
        let seeds = 1000 * (i + 1)..1000 * (i + 1) + seeds;
        let (m, se) = mean_se(&loss_ratios(&host, ports, &sv, rate, seeds, run_s, warm_s));
        assert!(
            (m - b).abs() <= 5.0 * se + bias,
            "{allocator}, {law} hold, A = {a:.3}: simulated {m:.5} ± {se:.5}, Erlang B {b:.5} (bias bound {bias:.2e})"
        );
    }
}

/// Failure ratio of RFC 6056 algorithm 2 with `tries` picks over `c` ports at
/// offered load `a`, exponential service, no TIME_WAIT. With k ports busy a
/// request fails iff all `tries` uniform picks land on busy ports, probability
/// (k/c)^tries, even when k < c. The occupancy is then a birth-death chain with
/// birth rate λ·(1 − (k/c)^tries) and death rate k·μ, so
///   π(k+1)/π(k) = A·(1 − (k/c)^tries)/(k + 1),
/// and (Poisson arrivals see time averages) the failure ratio is Σ π(k)·(k/c)^tries.
fn rfc6056_2_model(c: u32, a: f64, tries: u32) -> f64 {
    let fail = |k: u32| (f64::from(k) / f64::from(c)).powi(tries as i32);
    let mut pi = vec![1.0f64];
    for k in 0..c {
        pi.push(pi[k as usize] * a * (1.0 - fail(k)) / f64::from(k + 1));
    }
    let z: f64 = pi.iter().sum();
    pi.iter()
        .enumerate()
        .map(|(k, p)| p / z * fail(k as u32))
        .sum()
}

#[test]
fn rfc6056_2_fails_with_ports_free() {
    // The birth-death model above (exact for exponential service) against the
    // simulation, and both above Erlang B: algorithm 2 fails while ports are
    // free, unlike the exhaustive allocators. The model gives 1.2× Erlang B at
    // A = 40 with num = c = 50 tries (the default), 2.4× at A = 45 with 10.
    // 30 seeds × 2000 s, warm-up W = 50 s; tolerance 5 standard errors plus
    // the warm-up bound ε = E[S³]/(3·E[S]·W²) of the Erlang B test, applied
    // to the model: model(A) − model(A·(1 − ε)).
    let (c, seeds, run_s, warm_s) = (50u32, 30u64, 2000u64, 50.0);
    let sv = service("exponential", 0.0);
    let eps = sv.m3 / (3.0 * sv.m1 * warm_s * warm_s);
    for (i, (a_target, tries)) in (0u64..).zip([(40.0, None), (45.0, Some(10u32))]) {
        let (rate, a) = rate_for(a_target, &sv);
        let predicted = rfc6056_2_model(c, a, tries.unwrap_or(c));
        let bias = predicted - rfc6056_2_model(c, a * (1.0 - eps), tries.unwrap_or(c));
        let b = erlang_b(u64::from(c), a);
        let host = match tries {
            Some(t) => format!("allocator = \"rfc6056-2\"\nrfc6056_2_tries = {t}"),
            None => "allocator = \"rfc6056-2\"".to_string(),
        };
        let seeds = 20_000 + 1000 * i..20_000 + 1000 * i + seeds;
        let (m, se) = mean_se(&loss_ratios(&host, c, &sv, rate, seeds, run_s, warm_s));
        let ctx = format!("A = {a:.3}, tries {tries:?}: simulated {m:.5} ± {se:.5}, model {predicted:.5}, Erlang B {b:.5}");
        assert!((m - predicted).abs() <= 5.0 * se + bias, "{ctx}");
        assert!(m - 5.0 * se > b, "not above Erlang B: {ctx}");
    }
}

#[test]
fn pools_per_destination_follow_erlang_b() {
    // Two destinations picked at random with equal weights split a Poisson
    // stream into two independent Poisson streams of A/2 each. Where connect()
    // shares ports across destinations each destination is its own pool of c
    // ports: failure ratio B(c, A/2). On macOS (no sharing) the two share one
    // pool: B(c, A). A = 90, c = 50: B(50, 45) ≈ 0.05 vs B(50, 90) ≈ 0.46.
    // Exponential service of mean 1 s (hold 0.5 s + TIME_WAIT 0.5 s); 30 seeds
    // × 1000 s, ratios after W = 50 s, tolerance 5 standard errors (Student t,
    // 29 degrees of freedom: exceeded with probability < 1e-4) plus the warm-up
    // bound of the Erlang B test.
    let (c, a_total, warm_s) = (50u32, 90.0, 50.0);
    let sv = service("exponential", 0.5);
    for (os, load) in [("generic", a_total / 2.0), ("macos", a_total)] {
        let b = erlang_b(u64::from(c), load);
        let ratios: Vec<f64> = (30_000..30_030)
            .map(|seed| {
                let toml = format!(
                    "name = \"pools\"\nseed = {seed}\nduration = \"1000s\"\n\
                     [host]\nos = \"{os}\"\nport_range = \"50000-{}\"\ntime_wait = \"500ms\"\n\
                     [[destinations]]\naddress = \"10.0.0.5:80\"\ncount = 2\n\
                     [traffic]\nrate = {a_total}\nhold = {}\n",
                    50000 + c - 1,
                    sv.hold
                );
                let r = util::run(&toml);
                invariants(&r);
                assert!(
                    (r.analytic.erlang_b_failure_ratio - b).abs() <= 1e-12,
                    "{os}: analytic figure"
                );
                ratio_after(&r, warm_s)
            })
            .collect();
        let (m, se) = mean_se(&ratios);
        let eps = sv.m3 / (3.0 * sv.m1 * warm_s * warm_s);
        let bias = b - erlang_b(u64::from(c), load * (1.0 - eps));
        assert!(
            (m - b).abs() <= 5.0 * se + bias,
            "{os}: simulated {m:.5} ± {se:.5}, Erlang B {b:.5}"
        );
    }
}

/// Blocking of a GI/M/c/c loss system (Takács): with φ the Laplace–Stieltjes
/// transform of the time between arrivals and μ the service rate,
///   1/B = Σ_{j=0}^{c} C(c, j) · Π_{i=1}^{j} (1 − φ(iμ)) / φ(iμ).
/// For Poisson arrivals, φ(s) = λ/(λ + s), this is Erlang B.
fn gi_m_c_c(c: u32, mu: f64, phi: impl Fn(f64) -> f64) -> f64 {
    let (mut sum, mut binom, mut prod) = (1.0f64, 1.0f64, 1.0f64);
    for j in 1..=c {
        binom *= f64::from(c - j + 1) / f64::from(j);
        let p = phi(f64::from(j) * mu);
        prod *= (1.0 - p) / p;
        sum += binom * prod;
    }
    1.0 / sum
}

/// Failure ratios of `seeds` runs of two destinations picked by `pick` from
/// one Poisson stream of 90/s, each a pool of 50 ports (4-tuple sharing),
/// exponential holds of 1 s, reset close.
fn two_pool_ratios(pick: &str, seeds: std::ops::Range<u64>, warm_s: f64) -> (Vec<f64>, Report) {
    let mut last = None;
    let ratios = seeds
        .map(|seed| {
            let toml = format!(
                "name = \"split\"\nseed = {seed}\nduration = \"1000s\"\n\
                 [host]\nport_range = \"50000-50049\"\n\
                 [[destinations]]\naddress = \"10.0.0.5:80\"\ncount = 2\n\
                 [traffic]\nrate = 90\npick = \"{pick}\"\nclose = \"reset\"\n\
                 hold = {{ dist = \"exponential\", mean = \"1s\" }}\n"
            );
            let r = util::run(&toml);
            invariants(&r);
            let x = ratio_after(&r, warm_s);
            last = Some(r);
            x
        })
        .collect();
    (ratios, last.expect("at least one seed"))
}

#[test]
fn round_robin_destinations_are_not_poisson() {
    // Round-robin over two destinations gives each one every other arrival of
    // a Poisson stream of rate λ = 90/s: Erlang-2 gaps, φ(s) = (λ/(λ + s))²,
    // smoother than Poisson, so each pool of 50 ports with exponential
    // service (μ = 1/s) blocks less than Erlang B(50, 45): Takács' GI/M/c/c
    // formula gives the exact figure. Picking at random instead splits the
    // stream into two Poisson streams: Erlang B. 30 seeds × 1000 s each, 5
    // standard errors, warm-up W = 50 s (bound as in the Erlang B test; here
    // the service is exponential, E[S³]/(3·E[S]·W²) ≈ 8e-4).
    let lambda = 90.0;
    let b = erlang_b(50, 45.0);
    let takacs = gi_m_c_c(50, 1.0, |s| (lambda / (lambda + s)).powi(2));
    let poisson_check = gi_m_c_c(50, 1.0, |s| 45.0 / (45.0 + s));
    assert!(
        (poisson_check - b).abs() < 1e-12,
        "Takács reduces to Erlang B: {poisson_check} vs {b}"
    );
    assert!(takacs < 0.8 * b, "the model itself: {takacs} vs {b}");
    let warm_s = 50.0;
    let eps = 6.0 / (3.0 * warm_s * warm_s);
    // The warm-up deficit of the occupancy depends on the arrival rate, not
    // on the pattern, so the same load allowance applies to both picks.
    let bias = b - erlang_b(50, 45.0 * (1.0 - eps));
    for (pick, want, seeds) in [
        ("round-robin", takacs, 41_000..41_030),
        ("weighted", b, 40_000..40_030),
    ] {
        let (ratios, _) = two_pool_ratios(pick, seeds, warm_s);
        let (m, se) = mean_se(&ratios);
        assert!(
            (m - want).abs() <= 5.0 * se + bias,
            "{pick}: simulated {m:.5} ± {se:.5}, expected {want:.5}"
        );
    }
}

#[test]
fn analytic_flags_round_robin_pools() {
    // See `round_robin_destinations_are_not_poisson`: with pick = "round-robin"
    // over several pools the failure ratio is not Erlang B (Takács instead),
    // so the report must not claim that Erlang B applies.
    let (_, r) = two_pool_ratios("round-robin", 1..2, 50.0);
    assert!(
        !r.analytic.erlang_b_applies && r.analytic.erlang_b_caveat.is_some(),
        "{:?}",
        r.analytic
    );
    // Likewise for source addresses taken in turn with bind().
    let d = Det {
        host: "addresses = 2".into(),
        traffic: "bind = \"bind\"\nsource = \"round-robin\"\narrivals = \"poisson\"".into(),
        ..Det::default()
    };
    let toml = d.toml().replace("arrivals = \"constant\"\n", "");
    let r = util::run(&toml);
    assert!(!r.analytic.erlang_b_applies, "{:?}", r.analytic);
}

#[test]
fn analytic_erlang_b_matches_the_formula() {
    // B(c, A) = (A^c/c!) / Σ_{k<=c} A^k/k!, summed term by term (t_k = t_{k−1}·A/k),
    // independently of the library's recursion.
    let direct = |c: u64, a: f64| {
        let (mut t, mut sum) = (1.0f64, 1.0f64);
        for k in 1..=c {
            t *= a / k as f64;
            sum += t;
        }
        t / sum
    };
    for (c, a) in [
        (1u64, 1.0),
        (2, 1.0),
        (10, 5.0),
        (50, 45.0),
        (50, 60.0),
        (100, 80.0),
        (150, 200.0),
    ] {
        let (got, want) = (erlang_b(c, a), direct(c, a));
        assert!(
            (got - want).abs() <= 1e-12 * want.max(1e-300),
            "B({c}, {a}) = {got}, expected {want}"
        );
    }
    assert_eq!(erlang_b(1, 1.0), 0.5);
    // The report's figure for one pool: 50 ports, 20/s × (1 s + 1.5 s) = 50 erlangs.
    let toml = "name = \"a\"\nduration = \"10s\"\n[host]\nport_range = \"50000-50049\"\ntime_wait = \"1500ms\"\n\
                [[destinations]]\naddress = \"10.0.0.5:80\"\n[traffic]\nrate = 20\nhold = \"1s\"\n";
    let r = util::run(toml);
    assert!((r.analytic.offered_load - 50.0).abs() < 1e-9);
    assert_eq!(r.analytic.ports_per_pool, 50);
    assert_eq!(r.analytic.pools, 1);
    let want = direct(50, 50.0);
    assert!(
        (r.analytic.erlang_b_failure_ratio - want).abs() <= 1e-12,
        "{} vs {want}",
        r.analytic.erlang_b_failure_ratio
    );
    assert!((r.analytic.max_rate_per_pool - 50.0 / 2.5).abs() < 1e-9);
}

#[test]
fn tw_reuse_is_erlang_b_with_the_delay_in_place_of_time_wait() {
    // With tw_reuse, client close and ports shared by 4-tuple, a connect()
    // of the same flow may take a TIME_WAIT entry over `tw_reuse_delay` d
    // after its close, so a port is lost to its pool for S = hold + min(T, d):
    // an M/G/c/c loss system of load A = λ·E[S], failure ratio Erlang B(c, A)
    // whatever the law of S. Here c = 50 ports, exponential hold of mean
    // 0.5 s, d = 0.5 s, T = 60 s (so E[S] = 1 s, not 60.5 s), λ = 45/s:
    // B(50, 45) ≈ 5 %, where hold + TIME_WAIT would give A = 2,722 erlangs
    // and B ≈ 98 %.
    //
    // Bound: failures come in bursts (a full pool refuses every attempt
    // until a port frees), so the binomial standard error √(p(1−p)/n) over
    // the n attempts of one run understates the noise. Instead each of 30
    // seeds gives one ratio after a warm-up W = 50 s; the 30 ratios are
    // i.i.d., and their mean is within 5 standard errors of its expectation
    // except with probability < 1e-4 (Student t, 29 degrees of freedom),
    // plus the warm-up bias bound of `erlang_b_failure_ratio_for_exhaustive_allocators`,
    // ε = E[S³]/(3·E[S]·W²), for S = d + Exp(0.5 s).
    let (c, lambda, warm_s) = (50u32, 45.0, 50.0);
    let sv = service("exponential", 0.5);
    let a = lambda * sv.m1;
    let b = erlang_b(u64::from(c), a);
    assert!((0.02..0.1).contains(&b), "B(50, 45) = {b}");
    let eps = sv.m3 / (3.0 * sv.m1 * warm_s * warm_s);
    let bias = b - erlang_b(u64::from(c), a * (1.0 - eps));
    let toml = |allocator: &str, seed: u64| {
        format!(
            "name = \"tw-reuse\"\nseed = {seed}\nduration = \"2000s\"\n[output]\nbin = \"1s\"\n\
             [host]\nallocator = \"{allocator}\"\nport_range = \"50000-{}\"\ntime_wait = \"60s\"\n\
             tw_reuse = true\ntw_reuse_delay = \"500ms\"\n\
             [[destinations]]\naddress = \"10.0.0.5:80\"\n\
             [traffic]\nrate = {lambda}\nhold = {}\nclose = \"client\"\n",
            50000 + c - 1,
            sv.hold
        )
    };
    for (i, allocator) in (0u64..).zip(["rfc6056-1", "rfc6056-3"]) {
        let ratios: Vec<f64> = (50_000 + 1000 * i..50_030 + 1000 * i)
            .map(|seed| {
                let r = util::run(&toml(allocator, seed));
                invariants(&r);
                assert!(r.time_wait_reused > 0, "tw_reuse took nothing over");
                let an = &r.analytic;
                assert!(an.erlang_b_applies && an.tw_reuse_applies, "{an:?}");
                assert!((an.offered_load - a).abs() < 1e-9 * a, "{an:?}");
                assert!((an.erlang_b_failure_ratio - b).abs() <= 1e-12, "{an:?}");
                assert!((an.max_rate_per_pool - 50.0 / sv.m1).abs() < 1e-9, "{an:?}");
                // Little's figure keeps the whole TIME_WAIT (entries stay
                // in use until taken over or expired).
                assert!(
                    (an.little_mean_in_use - lambda * 60.5).abs() < 1e-6,
                    "{an:?}"
                );
                ratio_after(&r, warm_s)
            })
            .collect();
        let (m, se) = mean_se(&ratios);
        assert!(
            (m - b).abs() <= 5.0 * se + bias,
            "{allocator}: simulated {m:.5} ± {se:.5}, Erlang B with hold + tw_reuse_delay {b:.5} (bias bound {bias:.2e})"
        );
    }
}

#[test]
fn tw_reuse_changes_the_closed_form_only_where_the_engine_applies_it() {
    // The engine applies tw_reuse only to connect() sharing ports by
    // 4-tuple, after a client close, with a delay shorter than TIME_WAIT.
    // Elsewhere the service time stays hold + TIME_WAIT (or hold alone
    // without TIME_WAIT): 20/s × (1 s + 1.5 s) = 50 erlangs on 50 ports.
    let base = "name = \"a\"\nduration = \"10s\"\n[host]\nport_range = \"50000-50049\"\n\
                time_wait = \"1500ms\"\ntw_reuse = true\ntw_reuse_delay = \"500ms\"\n{host}\n\
                [[destinations]]\naddress = \"10.0.0.5:80\"\n[traffic]\nrate = 20\nhold = \"1s\"\n{traffic}\n";
    let run = |host: &str, traffic: &str| {
        util::run(&base.replace("{host}", host).replace("{traffic}", traffic)).analytic
    };
    // Applies: 20 × (1 s + 0.5 s) = 30 erlangs; ceiling 50 / 1.5 s.
    let a = run("", "");
    assert!(a.tw_reuse_applies && a.erlang_b_applies, "{a:?}");
    assert!((a.offered_load - 30.0).abs() < 1e-9, "{a:?}");
    assert!((a.max_rate_per_pool - 50.0 / 1.5).abs() < 1e-9, "{a:?}");
    assert!((a.erlang_b_failure_ratio - erlang_b(50, 30.0)).abs() <= 1e-12);
    for (host, traffic, load, why) in [
        (
            "os = \"macos\"",
            "",
            50.0,
            "macOS: ports not shared by 4-tuple",
        ),
        ("", "bind = \"bind\"", 50.0, "bind(): exclusive ports"),
        (
            "",
            "close = \"server\"",
            20.0,
            "server close: no TIME_WAIT here",
        ),
        ("", "close = \"reset\"", 20.0, "reset: no TIME_WAIT"),
    ] {
        let a = run(host, traffic);
        assert!(!a.tw_reuse_applies, "{why}: {a:?}");
        assert!((a.offered_load - load).abs() < 1e-9, "{why}: {a:?}");
        assert!((a.erlang_b_failure_ratio - erlang_b(50, load)).abs() <= 1e-12);
    }
    // A delay at least as long as TIME_WAIT: entries expire first.
    let late = util::run(
        &base
            .replace("tw_reuse_delay = \"500ms\"", "tw_reuse_delay = \"1500ms\"")
            .replace("{host}", "")
            .replace("{traffic}", ""),
    )
    .analytic;
    assert!(!late.tw_reuse_applies, "{late:?}");
    assert!((late.offered_load - 50.0).abs() < 1e-9, "{late:?}");
}
