//! `inspect --watch`: the socket table sampled over time, so the rate of new
//! connections and how long they are held are measured, not guessed.
//!
//! A connection is a TCP 4-tuple whose local port is in the range. The
//! first sample is the baseline: its connections were opened at unknown
//! times and are not counted. A 4-tuple seen for the first time later
//! opened since the sample before (a new connection, also when it is
//! already in TIME_WAIT: it opened and closed within one interval, and its
//! hold is below the interval). Its hold ends at the first sample that
//! sees it in TIME_WAIT (this host closed it) or no longer sees it (the
//! peer closed or it was reset), so holds are measured to within the
//! interval. A 4-tuple that leaves TIME_WAIT for another state was taken
//! again (`tcp_tw_reuse`): a new connection. Connections that open and
//! close within one interval and leave no TIME_WAIT here (the peer closed)
//! are not seen at all: the figures are a lower bound for such traffic,
//! and the report says how many holds were below the interval.

use std::collections::HashMap;
use std::net::SocketAddr;

use serde::Serialize;

use super::{Proto, Socket, State};

#[derive(Debug, Clone, Copy)]
struct Track {
    dest: SocketAddr,
    /// When it was first seen; `None` for the baseline's.
    opened_s: Option<f64>,
    time_wait: bool,
    /// Its hold is recorded (it was seen closing).
    closed: bool,
}

/// Holds measured for one destination (or all), seconds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Holds {
    pub n: u64,
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

impl Holds {
    fn of(mut xs: Vec<f64>) -> Holds {
        if xs.is_empty() {
            return Holds::default();
        }
        xs.sort_by(f64::total_cmp);
        let q = |p: f64| xs[((p * (xs.len() - 1) as f64).round() as usize).min(xs.len() - 1)];
        Holds {
            n: xs.len() as u64,
            mean: xs.iter().sum::<f64>() / xs.len() as f64,
            p50: q(0.5),
            p90: q(0.9),
            p99: q(0.99),
            max: xs[xs.len() - 1],
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct DestinationRate {
    pub destination: SocketAddr,
    /// New connections seen.
    pub new: u64,
    pub per_second: f64,
    /// Holds of the connections seen to open and close.
    pub hold_s: Holds,
}

/// What a watch measured.
#[derive(Debug, Clone, Serialize)]
pub struct Watched {
    pub duration_s: f64,
    pub samples: u64,
    /// The mean time between samples.
    pub interval_s: f64,
    /// New connections (4-tuples first seen after the first sample).
    pub new_connections: u64,
    pub per_second: f64,
    /// Connections this host closed (entered TIME_WAIT) during the watch.
    pub client_closes: u64,
    /// Holds of connections seen to open and close: `n` of them.
    pub hold_s: Holds,
    /// Connections first seen already in TIME_WAIT: held less than one
    /// interval (not in `hold_s`).
    pub holds_below_interval: u64,
    /// Busiest first.
    pub destinations: Vec<DestinationRate>,
    pub method: &'static str,
}

/// Samples in, figures out.
#[derive(Default)]
pub struct Watcher {
    tracks: HashMap<(SocketAddr, SocketAddr), Track>,
    holds: Vec<(SocketAddr, f64)>,
    new: HashMap<SocketAddr, u64>,
    below_interval: u64,
    client_closes: u64,
    first_s: Option<f64>,
    last_s: f64,
    samples: u64,
}

impl Watcher {
    pub fn new() -> Self {
        Self::default()
    }

    /// The table as seen at `t_s` seconds (increasing); `in_range` says
    /// which local ports are the range's.
    pub fn add(&mut self, t_s: f64, sockets: &[Socket], in_range: impl Fn(u16) -> bool) {
        let baseline = self.first_s.is_none();
        self.first_s.get_or_insert(t_s);
        self.samples += 1;
        let mut seen = std::collections::HashSet::new();
        for s in sockets {
            let Some(remote) = s.remote else { continue };
            if s.proto != Proto::Tcp || s.state == State::Listen || !in_range(s.local.port()) {
                continue;
            }
            let key = (s.local, remote);
            seen.insert(key);
            let tw = s.state == State::TimeWait;
            match self.tracks.get_mut(&key) {
                None => {
                    let opened_s = (!baseline).then_some(t_s);
                    if !baseline {
                        *self.new.entry(remote).or_default() += 1;
                        if tw {
                            self.below_interval += 1;
                            self.client_closes += 1;
                        }
                    }
                    self.tracks.insert(
                        key,
                        Track {
                            dest: remote,
                            opened_s,
                            time_wait: tw,
                            closed: tw,
                        },
                    );
                }
                Some(t) if t.time_wait && !tw => {
                    // Taken again from TIME_WAIT: a new connection.
                    *t = Track {
                        dest: remote,
                        opened_s: Some(t_s),
                        time_wait: false,
                        closed: false,
                    };
                    *self.new.entry(remote).or_default() += 1;
                }
                Some(t) if tw && !t.time_wait => {
                    t.time_wait = true;
                    self.client_closes += 1;
                    if let (Some(o), false) = (t.opened_s, t.closed) {
                        self.holds.push((remote, t_s - o));
                    }
                    t.closed = true;
                }
                Some(_) => {}
            }
        }
        // Gone without TIME_WAIT here: the peer closed, or a reset.
        let holds = &mut self.holds;
        self.tracks.retain(|key, t| {
            if seen.contains(key) {
                return true;
            }
            if let (Some(o), false) = (t.opened_s, t.closed) {
                holds.push((t.dest, t_s - o));
            }
            false
        });
        self.last_s = t_s;
    }

    pub fn finish(self) -> Watched {
        let duration_s = self.last_s - self.first_s.unwrap_or(self.last_s);
        let per_s = |n: u64| {
            if duration_s > 0.0 {
                n as f64 / duration_s
            } else {
                0.0
            }
        };
        let new_connections: u64 = self.new.values().sum();
        let mut destinations: Vec<DestinationRate> = self
            .new
            .iter()
            .map(|(&d, &n)| DestinationRate {
                destination: d,
                new: n,
                per_second: per_s(n),
                hold_s: Holds::of(
                    self.holds
                        .iter()
                        .filter(|(x, _)| *x == d)
                        .map(|h| h.1)
                        .collect(),
                ),
            })
            .collect();
        destinations.sort_by(|a, b| b.new.cmp(&a.new).then(a.destination.cmp(&b.destination)));
        destinations.truncate(super::figures::MAX_LISTED);
        Watched {
            duration_s,
            samples: self.samples,
            interval_s: if self.samples > 1 {
                duration_s / (self.samples - 1) as f64
            } else {
                0.0
            },
            new_connections,
            per_second: per_s(new_connections),
            client_closes: self.client_closes,
            hold_s: Holds::of(self.holds.iter().map(|h| h.1).collect()),
            holds_below_interval: self.below_interval,
            destinations,
            method: "new 4-tuples between samples (holds from first seen to TIME_WAIT or gone, to within one interval)",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(state: State, local: &str, remote: &str) -> Socket {
        Socket {
            proto: Proto::Tcp,
            state,
            local: local.parse().unwrap(),
            remote: Some(remote.parse().unwrap()),
            pid: None,
            process: None,
        }
    }

    #[test]
    fn measures_new_connections_and_their_holds() {
        let d = "10.0.0.5:443";
        let all = |_: u16| true;
        let mut w = Watcher::new();
        // Baseline: one connection of unknown age.
        w.add(0.0, &[tcp(State::Established, "10.0.0.1:40000", d)], all);
        // A new one opens; the old one closes (TIME_WAIT): no hold for it.
        w.add(
            1.0,
            &[
                tcp(State::TimeWait, "10.0.0.1:40000", d),
                tcp(State::Established, "10.0.0.1:40001", d),
            ],
            all,
        );
        // The new one is in TIME_WAIT 2 s later; a third came and went
        // within the interval (first seen in TIME_WAIT).
        w.add(
            2.0,
            &[
                tcp(State::Established, "10.0.0.1:40001", d),
                tcp(State::TimeWait, "10.0.0.1:40002", d),
            ],
            all,
        );
        w.add(3.0, &[tcp(State::TimeWait, "10.0.0.1:40001", d)], all);
        // A fourth opens and disappears without TIME_WAIT (peer closed).
        w.add(4.0, &[tcp(State::Established, "10.0.0.1:40003", d)], all);
        w.add(6.0, &[], all);
        let r = w.finish();
        assert_eq!((r.samples, r.duration_s), (6, 6.0));
        assert_eq!(r.new_connections, 3);
        assert_eq!(r.client_closes, 3);
        assert_eq!(r.holds_below_interval, 1);
        assert_eq!(r.hold_s.n, 2);
        assert_eq!((r.hold_s.p50, r.hold_s.max), (2.0, 2.0));
        assert_eq!(r.per_second, 0.5);
        assert_eq!(r.destinations[0].new, 3);
    }
}
