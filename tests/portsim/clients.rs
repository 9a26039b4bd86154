//! The client model (`traffic.pool`, `concurrency`, `think`,
//! `streams_per_connection`, `timeout`, exponential `retry`) against what
//! can be derived by hand: exact counts where arrivals and holds are
//! constant or a pool never has to close a connection, a finite Markov
//! chain for a pool that keeps fewer idle connections than users, the
//! interactive response-time law and Little's law for closed loops,
//! M/G/∞ for multiplexed streams, and Kolmogorov–Smirnov bounds for the
//! retry delays read back from `--trace`.
//!
//! Every statistical check states its expectation and its bound in a
//! comment: an exact expectation (transients at the start included where
//! they matter) and a standard deviation derived from the model, checked
//! at 4 standard errors over several seeds. The seeds are fixed, so each
//! test gives the same answer every run. Each report also has its books
//! checked ([`books`]): requests and connections add up.

use portsim::report::client::{Connections, Requests};
use portsim::Report;

use crate::util::{portsim, run, text, write};

const NS: f64 = 1e9;

/// One Linux host with 64,512 ports (never the limit here unless a test
/// says so), one destination, and the `[traffic]` lines given.
fn sc(seed: u64, duration: &str, traffic: &str) -> String {
    format!(
        "name = \"clients\"\nseed = {seed}\nduration = \"{duration}\"\n\
         [host]\nos = \"linux\"\nport_range = \"1024-65535\"\ntime_wait = \"60s\"\n\
         [[destinations]]\naddress = \"10.0.0.5:443\"\n\
         [traffic]\n{traffic}\n"
    )
}

fn requests(r: &Report) -> &Requests {
    r.requests.as_ref().expect("a client run reports requests")
}

fn connections(r: &Report) -> &Connections {
    r.connections
        .as_ref()
        .expect("a client run reports connections")
}

fn closed(c: &Connections) -> u64 {
    let b = &c.closed_by;
    b.idle_overflow + b.idle_timeout + b.lifetime + b.timeout + b.request_limit + b.server + b.reset
}

/// The books of a client run: every request started completed, failed or
/// is still in flight; every connection opened closed for one reason or
/// is still open; failures add up by cause; connections are the connects
/// that got through.
fn books(r: &Report, ctx: &str) {
    let q = requests(r);
    let c = connections(r);
    assert_eq!(
        q.completed + q.failed + q.in_flight_at_end,
        q.total,
        "{ctx}: completed + failed + in flight == total"
    );
    assert_eq!(
        q.failed_by.connect + q.failed_by.pool + q.failed_by.timeout,
        q.failed,
        "{ctx}: failed_by adds up"
    );
    assert_eq!(
        c.opened - c.open_at_end,
        closed(c),
        "{ctx}: opened - open_at_end == sum of closed_by"
    );
    assert_eq!(c.opened, r.established, "{ctx}: opened == established");
    assert!(q.waited <= q.total, "{ctx}: waited <= total");
    assert!(
        (0.0..=1.0).contains(&c.reuse_ratio),
        "{ctx}: reuse_ratio {}",
        c.reuse_ratio
    );
}

/// Mean and standard error of the mean of `xs`.
fn mean_se(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, (var / n).sqrt())
}

// ---------------------------------------------------------------------------
// 1. A pool that keeps every connection.

#[test]
fn a_pool_with_room_for_every_user_opens_one_connection_per_user() {
    // N users, max_idle >= N, no timeouts: a connection closes only when it
    // comes back to a pool already holding max_idle idle ones, and at most
    // N − 1 others are idle then (each of the N open connections is a
    // user's or idle). So none ever closes, and a request opens one only
    // when none is idle, i.e. when all open ones are busy: the opened
    // count is the peak of requests in flight, which all N users reach at
    // the start (each sends its first request at 0). So opened == N
    // exactly, whatever the run length or the hold distribution.
    const N: u64 = 50;
    for (hold, think) in [
        ("\"50ms\"", "{ dist = \"exponential\", mean = \"200ms\" }"),
        (
            "{ dist = \"lognormal\", median = \"20ms\", p99 = \"400ms\" }",
            "\"30ms\"",
        ),
    ] {
        for (max_idle, duration) in [(N, "30s"), (64, "300s")] {
            let ctx = format!("hold {hold}, think {think}, max_idle {max_idle}, {duration}");
            let r = run(&sc(
                7,
                duration,
                &format!(
                    "concurrency = {N}\nhold = {hold}\nthink = {think}\npool = {{ max_idle = {max_idle} }}"
                ),
            ));
            books(&r, &ctx);
            let (q, c) = (requests(&r), connections(&r));
            assert_eq!(c.opened, N, "{ctx}");
            assert_eq!(r.attempts, N, "{ctx}");
            assert_eq!(closed(c), 0, "{ctx}");
            assert_eq!(c.open_at_end, N, "{ctx}");
            // Users thinking leave their connection idle.
            assert_eq!(c.idle_at_end + q.in_flight_at_end, N, "{ctx}");
            assert_eq!(
                (q.failed, q.users, q.peak_in_flight),
                (0, N as u32, N),
                "{ctx}"
            );
            // Every request got a connection; all but N found one open.
            assert!(q.total > 10 * N, "{ctx}: {} requests", q.total);
            assert_eq!(
                c.reuse_ratio,
                (q.total - N) as f64 / q.total as f64,
                "{ctx}"
            );
        }
    }
}

#[test]
fn a_ramp_of_users_opens_one_connection_per_peak_user() {
    // Users join one at a time over 20 s up to N = 40. With think = 0 every
    // user always has a request in flight (the next is sent at the instant
    // the last one ends, after its connection went back to the idle set),
    // so the peak in flight is the peak of users and, by the argument
    // above, opened == N. With a think time, opened == the peak of
    // requests in flight, which is at most N.
    const N: u64 = 40;
    let ramp = format!("concurrency = {{ from = 1, to = {N}, over = \"20s\" }}");
    let pool = "pool = { max_idle = 100 }";
    let r = run(&sc(
        3,
        "120s",
        &format!("{ramp}\nhold = {{ dist = \"exponential\", mean = \"80ms\" }}\n{pool}"),
    ));
    books(&r, "think 0");
    let (q, c) = (requests(&r), connections(&r));
    assert_eq!((c.opened, q.users, q.peak_in_flight), (N, N as u32, N));
    assert_eq!(closed(c), 0);
    assert_eq!(q.in_flight_at_end, N);
    let r = run(&sc(
        3,
        "120s",
        &format!(
            "{ramp}\nhold = {{ dist = \"exponential\", mean = \"80ms\" }}\n\
             think = {{ dist = \"exponential\", mean = \"100ms\" }}\n{pool}"
        ),
    ));
    books(&r, "think 100ms");
    let (q, c) = (requests(&r), connections(&r));
    assert_eq!(c.opened, q.peak_in_flight);
    assert!(q.peak_in_flight < N && q.peak_in_flight > N / 2, "{q:?}");
    assert_eq!(closed(c), 0);
}

// ---------------------------------------------------------------------------
// 2. A pool keeping fewer idle connections than users: a birth–death chain.

/// The stationary distribution of the pair (b busy users, i idle
/// connections) for N users, hold rate `mu`, think rate `theta`, and at
/// most `m` idle connections, as `pi[b][i]`: power iteration on the chain
/// uniformised at a rate above every state's exit rate (so it is
/// aperiodic). Transitions: a start, at (N−b)θ, moves (b, i) → (b+1, i−1)
/// when i > 0, else (b+1, 0) and opens a connection; a completion, at bμ,
/// moves (b, i) → (b−1, i+1) when i < m, else (b−1, m) and closes one.
fn pool_chain(n: usize, mu: f64, theta: f64, m: usize) -> Vec<Vec<f64>> {
    let lam = 1.01 * n as f64 * (mu + theta);
    let mut pi = vec![vec![0.0; m + 1]; n + 1];
    pi[0][0] = 1.0;
    for _ in 0..1_000_000 {
        let mut next = vec![vec![0.0; m + 1]; n + 1];
        for b in 0..=n {
            for i in 0..=m {
                let p = pi[b][i];
                let up = (n - b) as f64 * theta / lam;
                let down = b as f64 * mu / lam;
                next[b][i] += p * (1.0 - up - down);
                if b < n {
                    next[b + 1][i.saturating_sub(1)] += p * up;
                }
                if b > 0 {
                    next[b - 1][(i + 1).min(m)] += p * down;
                }
            }
        }
        let diff: f64 = (0..=n)
            .flat_map(|b| (0..=m).map(move |i| (b, i)))
            .map(|(b, i)| (next[b][i] - pi[b][i]).abs())
            .sum();
        pi = next;
        if diff < 1e-13 {
            return pi;
        }
    }
    panic!("the chain did not converge");
}

#[test]
fn a_small_pool_opens_connections_at_the_rate_of_its_markov_chain() {
    // N = 20 users, exponential holds of mean 1/μ = 100 ms and thinks of
    // mean 1/θ = 400 ms, max_idle = m = 3, no timeouts. The busy count b
    // is a birth–death chain (up at (N−b)θ, down at bμ) that does not
    // depend on the idle count i, and (b, i) is the finite chain of
    // `pool_chain`. A connection opens when a user starts with i = 0, so
    // the open rate is r = Σ_b π(b, 0)(N−b)θ, which equals the close rate
    // Σ_b π(b, m)bμ (every close is an idle overflow).
    const N: usize = 20;
    const M: usize = 3;
    let (mu, theta) = (10.0, 2.5);
    let pi = pool_chain(N, mu, theta, M);
    // The solver's own checks: b alone is Binomial(N, θ/(θ+μ)), and opens
    // balance closes.
    let p = theta / (theta + mu);
    let mut binom = (1.0 - p).powi(N as i32);
    for (b, row) in pi.iter().enumerate() {
        let marginal: f64 = row.iter().sum();
        assert!(
            (marginal - binom).abs() < 1e-9,
            "P(b = {b}) {marginal} vs {binom}"
        );
        binom *= (N - b) as f64 / (b + 1) as f64 * p / (1.0 - p);
    }
    let open_rate: f64 = (0..=N).map(|b| pi[b][0] * (N - b) as f64 * theta).sum();
    let close_rate: f64 = (0..=N).map(|b| pi[b][M] * b as f64 * mu).sum();
    assert!((open_rate - close_rate).abs() < 1e-9 * open_rate);

    // The run starts with all N users sending at 0: N opens, then the
    // chain from (N, 0), which forgets its start within a few
    // 1/(μ + θ) = 80 ms, so over T = 400 s the opens after the first N
    // differ from r·T by a few at most (< 0.1 % of r·T ≈ 2,700).
    // Per seed R = (opened − N)/T. Were opens Poisson, R's relative
    // standard deviation would be 1/√(rT) ≈ 1.9 %; the chain's correlation
    // changes that by a modest factor, so the test measures it: the
    // seeds' standard error must stay below 1.5 % of r (else the 4 SE
    // check is too loose to mean anything), and the mean over 10 seeds
    // must be within 4 of those standard errors of r and within 3 % of r.
    let t = 400.0;
    let mut rates = Vec::new();
    for seed in 1..=10 {
        let r = run(&sc(
            seed,
            "400s",
            &format!(
                "concurrency = {N}\nhold = {{ dist = \"exponential\", mean = \"100ms\" }}\n\
                 think = {{ dist = \"exponential\", mean = \"400ms\" }}\npool = {{ max_idle = {M} }}"
            ),
        ));
        let ctx = format!("seed {seed}");
        books(&r, &ctx);
        let (q, c) = (requests(&r), connections(&r));
        assert_eq!(q.failed, 0, "{ctx}");
        // Every close is a return to a pool already holding m idle.
        assert_eq!(c.closed_by.idle_overflow, closed(c), "{ctx}");
        assert_eq!(c.opened - c.open_at_end, c.closed_by.idle_overflow, "{ctx}");
        assert!(c.idle_at_end <= M as u64, "{ctx}");
        rates.push((c.opened - N as u64) as f64 / t);
    }
    let (mean, se) = mean_se(&rates);
    assert!(se < 0.015 * open_rate, "SE {se} of r = {open_rate}");
    assert!(
        (mean - open_rate).abs() <= 4.0 * se && (mean - open_rate).abs() <= 0.03 * open_rate,
        "open rate {mean} ± {se} vs the chain's {open_rate}"
    );
}

// ---------------------------------------------------------------------------
// 3. Closed loops: the interactive response-time law and Little's law.

#[test]
fn a_closed_loop_completes_n_over_hold_plus_think_requests_a_second() {
    // N = 20 users, exponential holds of mean 1/μ = 100 ms and thinks of
    // mean 1/θ = 400 ms, a pool with a connection for every user, so
    // nothing waits or fails and connects are instant: each user is on
    // its own a two-state Markov chain, busy with probability
    // p = θ/(θ+μ) = 0.2, and X = N/(E[hold] + E[think]) = 40/s.
    // Every user starts busy at 0, so P(busy at t) = p + (1−p)e^{−st},
    // s = μ + θ; completions come at μ while busy and busy time
    // integrates exactly:
    //   E[completed] = Nμ(pT + (1−p)(1−e^{−sT})/s),
    //   E[mean_in_flight] = N(p + (1−p)(1−e^{−sT})/(sT)),
    // where the second is Little's law, X × E[hold] = Np, plus the start.
    // Standard deviations per seed, users being independent: completions
    // are a renewal count of cycles of mean c = 0.5 s and variance
    // v = 1/μ² + 1/θ² = 0.17 s², so Var ≈ N·T·v/c³; the time average of a
    // two-state chain has Var ≈ 2p(1−p)/(sT) per user, N times that for
    // the sum. Over 16 seeds: the means within 4σ/√16 of the expectations,
    // and the seeds' spread within [0.4, 2] of σ (it checks σ too: for
    // 15 degrees of freedom a ratio outside happens with probability
    // below 1e-3).
    let (n, mu, theta, t): (f64, f64, f64, f64) = (20.0, 10.0, 2.5, 200.0);
    let p = theta / (theta + mu);
    let s = mu + theta;
    let start = (1.0 - p) * (1.0 - (-s * t).exp()) / s;
    let want_x = n * mu * (p * t + start) / t;
    let want_l = n * (p + start / t);
    let (c, v) = (
        1.0 / mu + 1.0 / theta,
        1.0 / mu.powi(2) + 1.0 / theta.powi(2),
    );
    let sd_x = (n * t * v / c.powi(3)).sqrt() / t;
    let sd_l = (n * 2.0 * p * (1.0 - p) / (s * t)).sqrt();
    let (mut xs, mut ls) = (Vec::new(), Vec::new());
    for seed in 1..=16 {
        let r = run(&sc(
            seed,
            "200s",
            "concurrency = 20\nhold = { dist = \"exponential\", mean = \"100ms\" }\n\
             think = { dist = \"exponential\", mean = \"400ms\" }\npool = { max_idle = 20 }",
        ));
        let ctx = format!("seed {seed}");
        books(&r, &ctx);
        let q = requests(&r);
        assert_eq!((q.failed, q.waited, q.retries), (0, 0, 0), "{ctx}");
        assert_eq!(q.per_second, q.completed as f64 / t, "{ctx}");
        xs.push(q.completed as f64 / t);
        ls.push(q.mean_in_flight);
    }
    for (name, xs, want, sd) in [("X", &xs, want_x, sd_x), ("L", &ls, want_l, sd_l)] {
        let (mean, se) = mean_se(xs);
        let spread = se * (xs.len() as f64).sqrt();
        assert!(
            (mean - want).abs() <= 4.0 * sd / (xs.len() as f64).sqrt(),
            "{name}: {mean} vs {want} (σ {sd} per seed)"
        );
        assert!(
            (0.4 * sd..=2.0 * sd).contains(&spread),
            "{name}: seeds' spread {spread} vs σ {sd}"
        );
    }
}

// ---------------------------------------------------------------------------
// 4. Streams per connection.

#[test]
fn multiplexed_connections_open_only_when_all_are_full() {
    // Poisson arrivals at λ = 50/s, exponential holds of mean E[S] = 1 s,
    // K streams per connection, max_idle far above what is ever open, no
    // timeouts. No connection ever closes (see the first test), and a
    // request opens one only when no open connection has a stream free:
    // - at the peak of L requests in flight, at least ceil(L/K)
    //   connections are open, each carrying at most K;
    // - when the c-th connection opens, the c − 1 open ones carry K each
    //   and the new request is one more: L ≥ (c−1)K + 1, so
    //   c ≤ ceil(L/K) at the peak.
    // So opened == ceil(peak_in_flight / K) exactly. The requests do not
    // depend on K at all (nothing waits, connects are instant, holds are
    // drawn in arrival order), so the request figures are identical for
    // K = 1, 8 and 100, and K = 1 opens exactly peak_in_flight.
    //
    // The requests in flight are an M/G/∞ queue started empty:
    //   E[mean_in_flight] = λ(E[S] − E[S]²(1 − e^{−T/E[S]})/T),
    // with Var ≈ λE[S²]/T = 50 × 2 / 300 per seed (the time average of a
    // stationary M/G/∞ count, whose autocovariance λ∫_τ^∞ P(S>u)du
    // integrates to λE[S²]/2). Over 6 seeds the mean is within 4σ/√6.
    let (lam, es, t): (f64, f64, f64) = (50.0, 1.0, 300.0);
    let want = lam * (es - es * es * (1.0 - (-t / es).exp()) / t);
    let sd = (lam * 2.0 * es * es / t).sqrt();
    let mut ls = Vec::new();
    for seed in 1..=6 {
        let mut first: Option<String> = None;
        for k in [1u64, 8, 100] {
            let ctx = format!("seed {seed}, K = {k}");
            let r = run(&sc(
                seed,
                "300s",
                &format!(
                    "rate = 50\nhold = {{ dist = \"exponential\", mean = \"1s\" }}\n\
                     streams_per_connection = {k}\npool = {{ max_idle = 1000 }}"
                ),
            ));
            books(&r, &ctx);
            let (q, c) = (requests(&r), connections(&r));
            assert_eq!(c.opened, q.peak_in_flight.div_ceil(k), "{ctx}");
            assert_eq!(closed(c), 0, "{ctx}");
            assert_eq!(c.streams_per_connection, k as u32, "{ctx}");
            assert_eq!(q.failed, 0, "{ctx}");
            let json = serde_json::to_string(q).unwrap();
            match &first {
                None => {
                    assert!(q.peak_in_flight > 60, "{ctx}: {q:?}");
                    ls.push(q.mean_in_flight);
                    first = Some(json);
                }
                Some(j) => assert_eq!(&json, j, "{ctx}: the requests as with K = 1"),
            }
        }
    }
    let (mean, _) = mean_se(&ls);
    assert!(
        (mean - want).abs() <= 4.0 * sd / (ls.len() as f64).sqrt(),
        "mean in flight {mean} vs M/G/∞ {want} (σ {sd} per seed)"
    );
}

// ---------------------------------------------------------------------------
// 5. Backoff, read back from the trace.

/// A host with one port that the first request (at 1 s) holds for an
/// hour: every later connect fails at once. Requests arrive every second
/// (request k at k s) and are retried `max` = 4 times after 100 ms ×
/// 2^(k−1), capped at 300 ms, with `jitter`: at most 900 ms in all, so the
/// failures of request k all fall within [k, k + 1) s. 600.95 s holds
/// arrivals 1..=600 and every retry of the last.
fn backoff_scenario(jitter: &str, pool: bool) -> String {
    format!(
        "name = \"backoff\"\nseed = 11\nduration = \"600950ms\"\n\
         [host]\nos = \"linux\"\nport_range = \"50000-50000\"\ntime_wait = \"60s\"\n\
         [[destinations]]\naddress = \"10.0.0.5:443\"\n\
         [traffic]\narrivals = \"constant\"\nrate = 1\nhold = \"1h\"\n\
         retry = {{ after = \"100ms\", max = 4, backoff = \"exponential\", factor = 2, cap = \"300ms\", jitter = \"{jitter}\" }}\n{}",
        if pool { "pool = { max_idle = 2 }\n" } else { "" }
    )
}

/// Base delay of retry k (1-based) of [`backoff_scenario`], ns.
fn base_ns(k: usize) -> u64 {
    (100_000_000u64 << (k - 1)).min(300_000_000)
}

/// The retry delays of each request, from the `fail` rows of a trace:
/// the rows of request k are those in [k, k + 1) s, and the gaps between
/// them are its retries' delays.
fn retry_delays(trace: &str) -> Vec<Vec<u64>> {
    let mut by_second: std::collections::BTreeMap<u64, Vec<u64>> = Default::default();
    let mut lines = trace.lines();
    assert_eq!(lines.next(), Some("time_s,event,port,destination"));
    for line in lines {
        let f: Vec<&str> = line.split(',').collect();
        if f[1] != "fail" {
            continue;
        }
        let (s, frac) = f[0].split_once('.').expect("seconds with a fraction");
        assert_eq!(frac.len(), 9, "{line}");
        let ns = s.parse::<u64>().unwrap() * 1_000_000_000 + frac.parse::<u64>().unwrap();
        by_second.entry(ns / 1_000_000_000).or_default().push(ns);
    }
    by_second
        .into_iter()
        .map(|(k, ts)| {
            assert_eq!(ts[0], k * 1_000_000_000, "request {k} fails as it arrives");
            ts.windows(2).map(|w| w[1] - w[0]).collect()
        })
        .collect()
}

/// The Kolmogorov–Smirnov distance of `u` from the uniform on [0, 1].
fn ks_uniform(mut u: Vec<f64>) -> f64 {
    u.sort_by(f64::total_cmp);
    let n = u.len() as f64;
    u.iter()
        .enumerate()
        .map(|(i, &x)| ((i + 1) as f64 / n - x).max(x - i as f64 / n))
        .fold(0.0, f64::max)
}

#[test]
fn exponential_backoff_delays_follow_their_jitter() {
    // For each jitter, with and without a pool (the connection-per-request
    // engine and the client's both retry this way), the trace has 4 + 1
    // failures for each of requests 2..=600 (request 1 holds the port).
    // Retry k's base is 100, 200, 300, 300 ms (the cap), and its delay is
    // `none`: the base exactly; `full`: uniform on [0, base];
    // `equal`: base/2 + uniform on [0, base/2]. Scaled to [0, 1]
    // ((d/base), or (d − base/2)/(base/2)), the n = 599 × 4 = 2,396 delays
    // of a jittered run are uniform, so their KS distance stays below
    // D_crit = 1.95/√n ≈ 0.040 (α = 0.001); a wrong base for any retry
    // level (no growth, no cap) or a wrong jitter moves a quarter of them
    // and exceeds it.
    let dir = tempfile::tempdir().unwrap();
    for jitter in ["none", "full", "equal"] {
        for pool in [false, true] {
            let ctx = format!("jitter {jitter}, pool {pool}");
            let file = write(dir.path(), "b.toml", &backoff_scenario(jitter, pool));
            let trace = dir.path().join("t.csv");
            let out = portsim()
                .arg("run")
                .arg(&file)
                .args(["--json", "--no-fixes", "--trace"])
                .arg(&trace)
                .assert()
                .success();
            let r: serde_json::Value =
                serde_json::from_str(&text(&out.get_output().stdout)).unwrap();
            // 600 arrivals, one established; 599 × (1 + 4) failed connects.
            assert_eq!(r["attempts"], 600 + 599 * 4, "{ctx}");
            assert_eq!(r["failures"], 599 * 5, "{ctx}");
            assert_eq!(r["retries"], 599 * 4, "{ctx}");
            assert_eq!(r["abandoned"], 599, "{ctx}");
            if pool {
                let q = &r["requests"];
                assert_eq!(q["total"], 600, "{ctx}");
                assert_eq!(q["failed_by"]["connect"], 599, "{ctx}");
                assert_eq!(q["retries"], 599 * 4, "{ctx}");
                assert_eq!(q["in_flight_at_end"], 1, "{ctx}");
            } else {
                assert!(r["requests"].is_null(), "{ctx}");
            }
            let delays = retry_delays(&std::fs::read_to_string(&trace).unwrap());
            assert_eq!(delays.len(), 599, "{ctx}");
            let mut u = Vec::new();
            for d in &delays {
                assert_eq!(d.len(), 4, "{ctx}: {d:?}");
                for (k, &x) in d.iter().enumerate() {
                    let base = base_ns(k + 1);
                    match jitter {
                        "none" => assert_eq!(x, base, "{ctx}: retry {}", k + 1),
                        "full" => {
                            assert!(x <= base, "{ctx}: retry {}: {x}", k + 1);
                            u.push(x as f64 / base as f64);
                        }
                        _ => {
                            assert!(
                                (base / 2..=base).contains(&x),
                                "{ctx}: retry {}: {x}",
                                k + 1
                            );
                            u.push((x - base / 2) as f64 / (base / 2) as f64);
                        }
                    }
                }
            }
            if jitter != "none" {
                let n = u.len();
                assert_eq!(n, 599 * 4);
                let d = ks_uniform(u);
                let crit = 1.95 / (n as f64).sqrt();
                assert!(d < crit, "{ctx}: KS distance {d} >= {crit}");
            }
        }
    }
}

#[test]
fn the_ks_check_rejects_delays_without_growth() {
    // The bound above can fail: full-jitter delays drawn from a base that
    // never grows (every retry from 100 ms), scaled as if it did, are far
    // from uniform.
    let dir = tempfile::tempdir().unwrap();
    let toml = backoff_scenario("full", false).replace("factor = 2", "factor = 1");
    let file = write(dir.path(), "b.toml", &toml);
    let trace = dir.path().join("t.csv");
    portsim()
        .arg("run")
        .arg(&file)
        .args(["--no-fixes", "--trace"])
        .arg(&trace)
        .assert()
        .success();
    let delays = retry_delays(&std::fs::read_to_string(&trace).unwrap());
    let u: Vec<f64> = delays
        .iter()
        .flat_map(|d| {
            d.iter()
                .enumerate()
                .map(|(k, &x)| x as f64 / base_ns(k + 1) as f64)
        })
        .collect();
    let crit = 1.95 / (u.len() as f64).sqrt();
    assert!(ks_uniform(u) > crit);
}

// ---------------------------------------------------------------------------
// 6. Waits at max_open and request timeouts.

/// What one connection (`max_open = 1`) does for requests arriving every
/// `tau` ns, each holding it `hold` ns, each waiting at most `wait` ns for
/// it, FIFO, up to `end` ns: (completed, failed, waited, longest wait,
/// in flight at the end). The connection serves in arrival order those
/// still waiting when it comes free: request k (arriving at kτ) finds it
/// free at F (the end of the last one served) and starts at max(kτ, F) if
/// F − kτ < wait, else gives up at kτ + wait. At one instant an end goes
/// before an arrival (so F = kτ is no wait); the model refuses a tie
/// between a wait running out and the connection coming free, whose order
/// it does not define.
fn one_connection(tau: u64, hold: u64, wait: u64, end: u64) -> (u64, u64, u64, u64, u64) {
    let (mut free, mut completed, mut failed, mut waited, mut longest, mut in_flight) =
        (0u64, 0, 0, 0, 0, 0);
    let mut k = 1;
    while k * tau <= end {
        let a = k * tau;
        let w = free.saturating_sub(a);
        assert_ne!(w, wait, "a tie at request {k}");
        if w < wait {
            // Counted when it gets the connection, within the run.
            if w > 0 && a + w <= end {
                waited += 1;
                longest = longest.max(w);
            }
            free = a + w + hold;
            if free <= end {
                completed += 1;
            } else {
                in_flight += 1;
            }
        } else if a + wait <= end {
            failed += 1;
        } else {
            in_flight += 1;
        }
        k += 1;
    }
    (completed, failed, waited, longest, in_flight)
}

#[test]
fn waits_at_max_open_are_exact() {
    // One connection, requests every 500 ms holding it 733 ms: the queue
    // grows by 233 ms a request, and a request whose wait would reach 1 s
    // gives up (`failed_by.pool`), as `one_connection` counts. The
    // histogram of waits keeps 3 significant digits: its max is within
    // 1/1024 of the longest wait.
    let (tau, hold, wait, end) = (500_000_000, 733_000_000, 1_000_000_000, 60_100_000_000);
    let (completed, failed, waited, longest, in_flight) = one_connection(tau, hold, wait, end);
    assert!(failed > 10 && waited > 50, "{failed} {waited}");
    let r = run(&sc(
        1,
        "60100ms",
        "arrivals = \"constant\"\nrate = 2\nhold = \"733ms\"\n\
         pool = { max_open = 1, wait = \"1s\" }",
    ));
    books(&r, "wait 1s");
    let (q, c) = (requests(&r), connections(&r));
    assert_eq!(
        (
            q.total,
            q.completed,
            q.failed,
            q.failed_by.pool,
            q.waited,
            q.in_flight_at_end
        ),
        (120, completed, failed, failed, waited, in_flight)
    );
    assert_eq!((c.opened, closed(c)), (1, 0));
    let max = r.pool_wait_s.as_ref().unwrap().max;
    let exact = longest as f64 / NS;
    assert!(
        max >= exact && max <= exact * (1.0 + 1.0 / 1024.0),
        "pool_wait_s.max {max} vs {exact}"
    );
    assert!(c.pool.wait);
    assert_eq!(c.pool.wait_limit_s, Some(1.0));
    // wait = false: a request finding the connection busy fails at once,
    // so with a request every 500 ms holding it 733 ms every second one
    // fails: 60 of the 120 (the 120th, at 60 s, fails; the 119th ends at
    // 60.233 s, after the run).
    let r = run(&sc(
        1,
        "60100ms",
        "arrivals = \"constant\"\nrate = 2\nhold = \"733ms\"\n\
         pool = { max_open = 1, wait = false }",
    ));
    books(&r, "wait false");
    let q = requests(&r);
    assert_eq!(
        (
            q.total,
            q.completed,
            q.failed_by.pool,
            q.waited,
            q.in_flight_at_end
        ),
        (120, 59, 60, 0, 1)
    );
    assert_eq!(r.pool_wait_s.as_ref().unwrap().max, 0.0);
}

#[test]
fn a_timeout_shorter_than_the_hold_fails_every_request() {
    // A request every second holding its connection 2 s, timeout 500 ms:
    // each request opens a connection (the one it used last was closed
    // with it), fails at 500 ms with `timeout`, and its connection is
    // closed for it. Requests at 1..=60 s, the one at 60 s times out at
    // 60.5 s, after the run (60.3 s).
    let r = run(&sc(
        2,
        "60300ms",
        "arrivals = \"constant\"\nrate = 1\nhold = \"2s\"\ntimeout = \"500ms\"\n\
         pool = { max_idle = 2 }",
    ));
    books(&r, "timeout");
    let (q, c) = (requests(&r), connections(&r));
    assert_eq!(
        (
            q.total,
            q.completed,
            q.failed,
            q.failed_by.timeout,
            q.in_flight_at_end
        ),
        (60, 0, 59, 59, 1)
    );
    assert_eq!((c.opened, c.closed_by.timeout, closed(c)), (60, 59, 59));
    assert_eq!(c.reuse_ratio, 0.0);
    // A timeout longer than the hold changes nothing: no request fails.
    let r = run(&sc(
        2,
        "60300ms",
        "arrivals = \"constant\"\nrate = 1\nhold = \"2s\"\ntimeout = \"2500ms\"\n\
         pool = { max_idle = 2 }",
    ));
    books(&r, "long timeout");
    let q = requests(&r);
    assert_eq!((q.completed, q.failed, q.in_flight_at_end), (58, 0, 2));
}

#[test]
fn each_retry_of_a_timed_out_request_has_its_own_timeout() {
    // A request every second (1..=10 s) holding 2 s with a 500 ms timeout,
    // retried twice 100 ms after each failure: tries at k, k + 0.6 and
    // k + 1.2 s, each on a new connection (the last one closed with its
    // timeout) held exactly 500 ms. Requests 1..=8 fail for good by
    // 9.7 s; request 9's third try (10.2 s) and request 10's first are in
    // flight at 10.3 s. So 8 × 3 + 3 + 1 = 28 connections, 26 closed.
    let toml = sc(
        2,
        "10300ms",
        "arrivals = \"constant\"\nrate = 1\nhold = \"2s\"\ntimeout = \"500ms\"\n\
         retry = { after = \"100ms\", max = 2 }\npool = { max_idle = 2 }",
    );
    let r = run(&toml);
    books(&r, "retried timeouts");
    let (q, c) = (requests(&r), connections(&r));
    assert_eq!(
        (q.total, q.failed_by.timeout, q.retries, q.in_flight_at_end),
        (10, 8, 18, 2)
    );
    assert_eq!((c.opened, c.closed_by.timeout, c.open_at_end), (28, 26, 2));
    // Every connection that closed was open exactly 500 ms.
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "t.toml", &toml);
    let trace = dir.path().join("t.csv");
    portsim()
        .arg("run")
        .arg(&file)
        .args(["--no-fixes", "--trace"])
        .arg(&trace)
        .assert()
        .success();
    let text = std::fs::read_to_string(&trace).unwrap();
    let mut opened_at = std::collections::HashMap::new();
    let mut held = Vec::new();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let t: f64 = f[0].parse().unwrap();
        match f[1] {
            "connect" => {
                opened_at.insert(f[2].to_string(), t);
            }
            "close" => held.push(t - opened_at[f[2]]),
            _ => {}
        }
    }
    assert_eq!(held.len(), 26);
    assert!(held.iter().all(|h| (h - 0.5).abs() < 1e-9), "{held:?}");
}

// ---------------------------------------------------------------------------
// 7. Connections closed by timer and by request count.

#[test]
fn idle_timeouts_reopen_connections_after_each_gap() {
    // Three bursts of 5 users (0–10 s, 100–110 s, 200–210 s; think 0,
    // hold 100 ms): each burst keeps 5 connections busy, 100 requests per
    // user. The last requests of a burst end at its end (10 s, ...), the 5
    // connections go idle then. An idle timeout of 30 s (< the 90 s gap)
    // closes them at 40 s, 140 s and 240 s: 15 opened, 15 closed by
    // idle_timeout. One of 120 s (> the gap) keeps them: 5 opened, and
    // they are still open at the end (300 s < 210 s + 120 s).
    let bursts = "concurrency = [{ at = \"0s\", users = 5 }, { at = \"10s\", users = 0 }, \
                  { at = \"100s\", users = 5 }, { at = \"110s\", users = 0 }, \
                  { at = \"200s\", users = 5 }, { at = \"210s\", users = 0 }]\nhold = \"100ms\"";
    for (idle, opened, timed_out) in [("30s", 15, 15), ("120s", 5, 0)] {
        let r = run(&sc(
            1,
            "300s",
            &format!("{bursts}\npool = {{ max_idle = 10, idle_timeout = \"{idle}\" }}"),
        ));
        books(&r, idle);
        let (q, c) = (requests(&r), connections(&r));
        assert_eq!((q.total, q.completed, q.users), (1500, 1500, 5), "{idle}");
        assert_eq!(
            (c.opened, c.closed_by.idle_timeout, closed(c)),
            (opened, timed_out, timed_out),
            "{idle}"
        );
        assert_eq!(c.idle_at_end, opened - timed_out, "{idle}");
    }
}

#[test]
fn max_lifetime_retires_busy_and_idle_connections() {
    // One user, think 0, holds of 100 ms, max_lifetime 1,050 ms: a
    // connection opened at o is past its lifetime at o + 1.05 s, during
    // the request of [o + 1.0, o + 1.1] s, and closes when that ends; the
    // next request opens another at o + 1.1 s. So connections open at
    // 1.1·j s and each carries 11 requests. Over 60.55 s: j = 0..=55,
    // 56 opened, 55 closed by lifetime; 605 requests completed (ends at
    // 0.1·i s <= 60.55), one in flight.
    let r = run(&sc(
        1,
        "60550ms",
        "concurrency = 1\nhold = \"100ms\"\npool = { max_idle = 2, max_lifetime = \"1050ms\" }",
    ));
    books(&r, "busy");
    let (q, c) = (requests(&r), connections(&r));
    assert_eq!((q.completed, q.in_flight_at_end), (605, 1));
    assert_eq!((c.opened, c.closed_by.lifetime, closed(c)), (56, 55, 55));
    // Open loop, a request every second holding 100 ms, max_lifetime
    // 2.5 s: a connection opened at o serves the requests at o, o+1, o+2,
    // is idle at o + 2.5 and closes then; the request at o + 3 opens the
    // next. Opens at 1 + 3j <= 60.05 s: 20; closes at 3.5 + 3j: 19;
    // 40 of 60 requests reuse a connection; the one at 60 s ends after
    // the run.
    let r = run(&sc(
        1,
        "60050ms",
        "arrivals = \"constant\"\nrate = 1\nhold = \"100ms\"\n\
         pool = { max_idle = 2, max_lifetime = \"2500ms\" }",
    ));
    books(&r, "idle");
    let (q, c) = (requests(&r), connections(&r));
    assert_eq!((q.total, q.completed, q.in_flight_at_end), (60, 59, 1));
    assert_eq!((c.opened, c.closed_by.lifetime, c.open_at_end), (20, 19, 1));
    assert_eq!(c.reuse_ratio, 40.0 / 60.0);
}

#[test]
fn requests_per_connection_ends_a_pooled_connection_after_that_many() {
    // One user, think 0, holds of 100 ms, requests_per_connection = 5:
    // each connection carries requests 5j+1..=5j+5 and closes at the end
    // of the fifth; 600 requests end by 60 s (the one ending at 60 s
    // included), so 120 connections closed by request_limit, and the
    // 601st request, in flight, opened the 121st.
    let r = run(&sc(
        1,
        "60s",
        "concurrency = 1\nhold = \"100ms\"\nrequests_per_connection = 5\npool = { max_idle = 2 }",
    ));
    books(&r, "limit");
    let (q, c) = (requests(&r), connections(&r));
    assert_eq!((q.completed, q.in_flight_at_end), (600, 1));
    assert_eq!(
        (c.opened, c.closed_by.request_limit, closed(c)),
        (121, 120, 120)
    );
    assert_eq!(c.reuse_ratio, 480.0 / 601.0);
}

// ---------------------------------------------------------------------------
// 8. Determinism.

#[test]
fn a_client_run_is_the_same_bytes_for_a_seed() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "c.toml",
        &sc(
            5,
            "60s",
            "concurrency = { from = 5, to = 50, over = \"30s\" }\n\
             hold = { dist = \"exponential\", mean = \"100ms\" }\n\
             think = { dist = \"lognormal\", median = \"50ms\", p99 = \"1s\" }\n\
             streams_per_connection = 2\ntimeout = \"300ms\"\n\
             retry = { after = \"10ms\", max = 2, backoff = \"exponential\" }\n\
             pool = { max_idle = 4, max_open = 20, idle_timeout = \"2s\", max_lifetime = \"10s\", wait = \"50ms\" }",
        ),
    );
    let json = |seed: &str| {
        let out = portsim()
            .arg("run")
            .arg(&file)
            .args(["--json", "--no-fixes", "--seed", seed])
            .assert()
            .success();
        text(&out.get_output().stdout)
    };
    let a = json("5");
    assert_eq!(a, json("5"));
    let b = json("6");
    assert_ne!(a, b);
    // Both runs exercise the model: users ramp up, requests time out and
    // are retried, connections close as the pool overflows and as they
    // reach their lifetime.
    for s in [&a, &b] {
        let v: serde_json::Value = serde_json::from_str(s).unwrap();
        let (q, c) = (&v["requests"], &v["connections"]["closed_by"]);
        let n = |x: &serde_json::Value| x.as_u64().unwrap();
        assert_eq!(n(&q["users"]), 50);
        // Timed-out requests (two streams a connection: the connection
        // stays) are retried, each try with a fresh timeout.
        assert!(n(&q["retries"]) > 0, "{q} {c}");
        assert!(n(&c["idle_overflow"]) > 0 && n(&c["lifetime"]) > 0, "{c}");
    }
}
