//! Connects whose SYN a NAT dropped: the socket stays in SYN_SENT, holding
//! its local port, and retransmits until a NAT lets a SYN through or the
//! connect gives up.
//!
//! Linux waits the initial RTO (1 s) before each of the first
//! `syn_linear_timeouts` + 1 retransmissions, then doubles it, and gives up
//! after `syn_retries + syn_linear_timeouts` retransmissions and one more
//! wait (`tcp_write_timeout`, `tcp_retransmit_timer`; with the defaults 6
//! and 4: retransmissions at 1, 2, 3, 4, 5, 7, 11, 19, 35, 67 s and
//! ETIMEDOUT at 131 s; without linear timeouts 1, 3, 7, …, 63 and 127 s).
//! An application's `connect_timeout` ends it earlier.
//!
//! UDP has no handshake and nothing retransmits: a flow whose first packet
//! a NAT dropped fails after one step, at once, or after `connect_timeout`
//! when the application waits that long for a reply (holding its port);
//! `traffic.retry` still applies, as the application's own re-send.
//!
//! Every connect follows the same schedule from its first SYN, so the
//! connects waiting for their `i`-th step are in the order of their first
//! SYNs: one FIFO per step, and the next event is the earliest of their
//! fronts — no heap.

use std::collections::VecDeque;

use crate::scenario::{Protocol, Scenario, NS_PER_S};

/// The initial SYN RTO (`TCP_TIMEOUT_INIT`).
const RTO_NS: u64 = NS_PER_S;

/// One step of the schedule: when, after the first SYN, and whether the
/// connect gives up then (else it retransmits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    pub after_ns: u64,
    pub give_up: bool,
}

/// The steps of a connect whose first SYN was dropped: each
/// retransmission, then giving up.
pub fn schedule(retries: u32, linear: u32, timeout_ns: Option<u64>) -> Vec<Step> {
    let total = retries + linear;
    let mut out = Vec::with_capacity(total as usize + 1);
    let mut at = 0u64;
    for i in 0..=total {
        let doublings = i.saturating_sub(linear).min(40);
        at = at.saturating_add(RTO_NS << doublings);
        out.push(Step {
            after_ns: at,
            give_up: i == total,
        });
    }
    if let Some(t) = timeout_ns {
        out.retain(|s| s.after_ns < t);
        out.push(Step {
            after_ns: t,
            give_up: true,
        });
    }
    out
}

/// The schedule of `sc`'s host and traffic.
pub fn schedule_of(sc: &Scenario) -> Vec<Step> {
    if sc.traffic.protocol == Protocol::Udp {
        return vec![Step {
            after_ns: sc.traffic.connect_timeout_ns.unwrap_or(0),
            give_up: true,
        }];
    }
    schedule(
        sc.host.syn_retries,
        sc.host.syn_linear_timeouts,
        sc.traffic.connect_timeout_ns,
    )
}

/// Connects in SYN_SENT, by the step they wait for.
pub struct Pending<T> {
    steps: Vec<Step>,
    /// Per step: (first SYN, item).
    waiting: Vec<VecDeque<(u64, T)>>,
    len: usize,
}

impl<T: Copy> Pending<T> {
    pub fn new(steps: Vec<Step>) -> Self {
        let waiting = steps.iter().map(|_| VecDeque::new()).collect();
        Pending {
            steps,
            waiting,
            len: 0,
        }
    }

    /// Whether the connect gives up at step `step` (so the SYN sent just
    /// before it is its last).
    #[inline]
    pub fn gives_up_at(&self, step: usize) -> bool {
        self.steps[step].give_up
    }

    /// `item`, whose first SYN was at `t0`, waits for step `step`.
    #[inline]
    pub fn push(&mut self, step: usize, t0: u64, item: T) {
        self.waiting[step].push_back((t0, item));
        self.len += 1;
    }

    /// When the next step falls due, and which.
    #[inline]
    pub fn peek(&self) -> Option<(u64, usize)> {
        if self.len == 0 {
            return None;
        }
        let mut best: Option<(u64, usize)> = None;
        for (i, q) in self.waiting.iter().enumerate() {
            if let Some(&(t0, _)) = q.front() {
                let t = t0.saturating_add(self.steps[i].after_ns);
                if best.is_none_or(|b| t < b.0) {
                    best = Some((t, i));
                }
            }
        }
        best
    }

    /// The connect of step `step` that [`Pending::peek`] named: its first
    /// SYN, the item, and whether it now gives up.
    #[inline]
    pub fn pop(&mut self, step: usize) -> (u64, T, bool) {
        let (t0, item) = self.waiting[step].pop_front().expect("peeked");
        self.len -= 1;
        (t0, item, self.steps[step].give_up)
    }

    /// Connects still waiting.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Every connect still waiting, and whether its last SYN was sent
    /// (it waits only to give up).
    pub fn items(&self) -> impl Iterator<Item = (bool, &T)> {
        self.waiting
            .iter()
            .zip(&self.steps)
            .flat_map(|(q, s)| q.iter().map(move |(_, x)| (s.give_up, x)))
    }
}

/// Connect delays: how long established connects waited for a SYN to get
/// through (0 for most), kept as a count of zeros and a histogram of the
/// rest.
pub struct Delays {
    pub zero: u64,
    pub waited: hdrhistogram::Histogram<u64>,
}

impl Default for Delays {
    fn default() -> Self {
        Delays {
            zero: 0,
            waited: hdrhistogram::Histogram::new(3).expect("3 significant digits"),
        }
    }
}

impl Delays {
    #[inline]
    pub fn record(&mut self, ns: u64) {
        if ns == 0 {
            self.zero += 1;
        } else {
            let _ = self.waited.record(ns);
        }
    }

    pub fn merge(&mut self, other: &Delays) {
        self.zero += other.zero;
        let _ = self.waited.add(&other.waited);
    }

    /// The `q`-quantile (0..=1) of all delays, zeros included, in ns.
    pub fn quantile(&self, q: f64) -> u64 {
        let n = self.zero + self.waited.len();
        if n == 0 {
            return 0;
        }
        let rank = (q * n as f64).ceil().max(1.0) as u64;
        if rank <= self.zero {
            return 0;
        }
        let within = (rank - self.zero) as f64 / self.waited.len() as f64;
        self.waited.value_at_quantile(within.min(1.0))
    }

    pub fn max(&self) -> u64 {
        if self.waited.is_empty() {
            0
        } else {
            self.waited.max()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(steps: &[Step]) -> Vec<f64> {
        steps.iter().map(|s| s.after_ns as f64 / 1e9).collect()
    }

    #[test]
    fn linux_schedules() {
        // Documentation/networking/ip-sysctl.rst, tcp_syn_linear_timeouts.
        let s = schedule(6, 4, None);
        assert_eq!(
            secs(&s),
            [1.0, 2.0, 3.0, 4.0, 5.0, 7.0, 11.0, 19.0, 35.0, 67.0, 131.0]
        );
        assert!(s[..10].iter().all(|x| !x.give_up) && s[10].give_up);
        assert_eq!(
            secs(&schedule(6, 0, None)),
            [1.0, 3.0, 7.0, 15.0, 31.0, 63.0, 127.0]
        );
        // An application timeout cuts it short.
        let s = schedule(6, 4, Some(2_500_000_000));
        assert_eq!(secs(&s), [1.0, 2.0, 2.5]);
        assert!(s[2].give_up);
        // No retransmission: give up after one RTO.
        assert_eq!(secs(&schedule(0, 0, None)), [1.0]);
    }

    #[test]
    fn udp_flows_have_one_step() {
        let load = |extra: &str| {
            crate::scenario::load_str(
                &format!(
                    "name='t'\nduration='1s'\n[host]\nsyn_retries = 3\n\
                     [[destinations]]\naddress='10.0.0.1:53'\n\
                     [traffic]\nrate=1\nhold='1s'\n{extra}\n"
                ),
                std::path::Path::new("t.toml"),
                &[],
            )
            .expect("test scenario")
        };
        let once = |after_ns| {
            vec![Step {
                after_ns,
                give_up: true,
            }]
        };
        assert_eq!(schedule_of(&load("protocol = 'udp'")), once(0));
        assert_eq!(
            schedule_of(&load("protocol = 'udp'\nconnect_timeout = '5s'")),
            once(5 * NS_PER_S)
        );
        // TCP keeps its retransmissions: 3 of them, then giving up at 15 s.
        assert_eq!(
            secs(&schedule_of(&load("protocol = 'tcp'"))),
            [1.0, 2.0, 3.0, 4.0, 5.0, 7.0, 11.0, 19.0]
        );
    }

    #[test]
    fn pending_connects_come_out_in_time_order() {
        let mut p: Pending<u32> = Pending::new(schedule(1, 0, None));
        p.push(0, 0, 7); // due at 1 s
        p.push(1, 0, 8); // due at 3 s
        p.push(0, 2_500_000_000, 9); // due at 3.5 s
        assert_eq!(p.peek(), Some((1_000_000_000, 0)));
        assert_eq!(p.pop(0), (0, 7, false));
        assert_eq!(p.peek(), Some((3_000_000_000, 1)));
        assert_eq!(p.pop(1), (0, 8, true));
        assert_eq!(p.peek(), Some((3_500_000_000, 0)));
        assert_eq!(p.len(), 1);
    }

    #[test]
    fn delay_quantiles_count_the_zeros() {
        let mut d = Delays::default();
        for _ in 0..98 {
            d.record(0);
        }
        d.record(1_000_000_000);
        d.record(3_000_000_000);
        assert_eq!(d.quantile(0.5), 0);
        assert_eq!(d.quantile(0.98), 0);
        let p99 = d.quantile(0.99);
        assert!((999_000_000..=1_001_000_000).contains(&p99), "{p99}");
        assert!((2_990_000_000..=3_010_000_000).contains(&d.max()));
    }
}
