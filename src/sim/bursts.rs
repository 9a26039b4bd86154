//! Failure bursts: the worst failure ratio over any 1 s, 10 s and 60 s
//! window, the seconds with any failure, and the longest stretch in which
//! every attempt failed. A run's mean failure ratio hides bursts (8.7 % on
//! average can be 100 % for a second every minute), and SLOs are written
//! per window.
//!
//! Windows are aligned to the start of the run (`[k·W, (k+1)·W)`), which
//! makes every figure exact and cheap: each attempt adds to the open window
//! of each width, and a window is scored when the first attempt past its end
//! arrives (a compare per width per attempt, no division, no memory that
//! grows with simulated time). A blocked stretch runs from the first failure
//! after a success (or the start) to the next success, or to the end of the
//! run when none follows.

use crate::scenario::NS_PER_S;

/// Window widths, seconds.
pub const WIDTHS_S: [u64; 3] = [1, 10, 60];

/// What the bursts of a run were.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct BurstFigures {
    /// Worst failure ratio of a window of each of [`WIDTHS_S`] with at
    /// least one attempt (0 when none failed).
    pub worst: [f64; 3],
    /// 1 s windows with at least one failure.
    pub seconds_with_failures: u64,
    /// Longest time in which every attempt failed, ns.
    pub longest_blocked_ns: u64,
}

#[derive(Clone, Copy)]
struct Window {
    width_ns: u64,
    /// End of the open window (exclusive).
    end: u64,
    /// The run's attempts and failures when the open window began.
    attempts0: u64,
    failures0: u64,
    worst: f64,
    with_failures: u64,
}

impl Window {
    /// Score the open window, which saw the attempts and failures since it
    /// began up to the run's counts `attempts` and `failures`.
    fn close(&mut self, attempts: u64, failures: u64) {
        let (a, f) = (attempts - self.attempts0, failures - self.failures0);
        if f > 0 {
            self.with_failures += 1;
            // A connect that gave up after its SYN retransmissions fails in
            // a later window than its attempt: a window's ratio is capped
            // at 1 (every attempt failed).
            let r = (f as f64 / a.max(1) as f64).min(1.0);
            if r > self.worst {
                self.worst = r;
            }
        }
        self.attempts0 = attempts;
        self.failures0 = failures;
    }
}

/// Tallies bursts as attempts resolve, in time order. The engine tells it
/// each attempt's time before the attempt is counted ([`Bursts::attempt`],
/// one compare unless a window ends) and its outcome after.
pub struct Bursts {
    windows: [Window; 3],
    /// The earliest end among the open windows.
    next_end: u64,
    /// Start of the current blocked stretch.
    blocked_since: Option<u64>,
    longest_blocked_ns: u64,
    /// The run's end: an attempt at exactly that instant joins the windows
    /// before it (as it joins the last time-series bin) rather than opening
    /// windows that hold it alone.
    horizon: u64,
}

impl Bursts {
    /// Windows for a run that ends at `horizon` (`u64::MAX`: unknown).
    pub fn until(horizon: u64) -> Bursts {
        Bursts {
            horizon,
            ..Bursts::default()
        }
    }
}

impl Default for Bursts {
    fn default() -> Self {
        let windows = WIDTHS_S.map(|w| Window {
            width_ns: w * NS_PER_S,
            end: w * NS_PER_S,
            attempts0: 0,
            failures0: 0,
            worst: 0.0,
            with_failures: 0,
        });
        Bursts {
            next_end: windows[0].end,
            windows,
            blocked_since: None,
            longest_blocked_ns: 0,
            horizon: u64::MAX,
        }
    }
}

impl Bursts {
    /// An attempt at `t` is about to be made; the run has made `attempts`
    /// before it, of which `failures` failed.
    #[inline(always)]
    pub fn attempt(&mut self, t: u64, attempts: u64, failures: u64) {
        if t >= self.next_end && t < self.horizon {
            self.roll(t, attempts, failures);
        }
    }

    /// Close every window that ends at or before `t`, and open the one
    /// holding `t` (skipping empty ones in one step).
    #[inline(never)]
    fn roll(&mut self, t: u64, attempts: u64, failures: u64) {
        for w in &mut self.windows {
            if t >= w.end {
                w.close(attempts, failures);
                w.end = (t / w.width_ns)
                    .saturating_add(1)
                    .saturating_mul(w.width_ns);
            }
        }
        self.next_end = self.windows.iter().map(|w| w.end).min().unwrap_or(u64::MAX);
    }

    /// The attempt at `t` connected.
    #[inline(always)]
    pub fn success(&mut self, t: u64) {
        if let Some(since) = self.blocked_since {
            self.blocked_since = None;
            self.longest_blocked_ns = self.longest_blocked_ns.max(t - since);
        }
    }

    /// The attempt at `t` failed.
    #[inline(always)]
    pub fn failure(&mut self, t: u64) {
        if self.blocked_since.is_none() {
            self.blocked_since = Some(t);
        }
    }

    /// The figures of a run that ended at `end` after `attempts` attempts,
    /// `failures` of them failed.
    pub fn finish(mut self, end: u64, attempts: u64, failures: u64) -> BurstFigures {
        if let Some(since) = self.blocked_since {
            self.longest_blocked_ns = self.longest_blocked_ns.max(end.saturating_sub(since));
        }
        for w in &mut self.windows {
            w.close(attempts, failures);
        }
        BurstFigures {
            worst: [
                self.windows[0].worst,
                self.windows[1].worst,
                self.windows[2].worst,
            ],
            seconds_with_failures: self.windows[0].with_failures,
            longest_blocked_ns: self.longest_blocked_ns,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = NS_PER_S;

    /// Feeds attempts as the engine does, counting them.
    #[derive(Default)]
    struct Feed {
        b: Bursts,
        attempts: u64,
        failures: u64,
    }

    impl Feed {
        fn success(&mut self, t: u64) {
            self.b.attempt(t, self.attempts, self.failures);
            self.attempts += 1;
            self.b.success(t);
        }
        fn failure(&mut self, t: u64) {
            self.b.attempt(t, self.attempts, self.failures);
            self.attempts += 1;
            self.failures += 1;
            self.b.failure(t);
        }
        fn finish(self, end: u64) -> BurstFigures {
            self.b.finish(end, self.attempts, self.failures)
        }
    }

    #[test]
    fn windows_are_aligned_and_scored_exactly() {
        let mut b = Feed::default();
        // [0, 1 s): 1 of 3 failed; [1, 2 s): 3 of 4; nothing until 12.5 s.
        b.success(S / 4);
        b.failure(S / 2);
        b.success(3 * S / 4);
        b.failure(S);
        b.failure(5 * S / 4);
        b.success(3 * S / 2);
        b.failure(7 * S / 4);
        b.success(12 * S + S / 2);
        let f = b.finish(13 * S);
        assert_eq!(f.worst[0], 0.75);
        // [0, 10 s): 4 failures of 7 attempts; [10, 20 s): none failed.
        assert_eq!(f.worst[1], 4.0 / 7.0);
        assert_eq!(f.worst[2], 4.0 / 8.0);
        assert_eq!(f.seconds_with_failures, 2);
        // Blocked from 1 s (the failure after the success at 0.75 s) to the
        // success at 1.5 s; the failure at 1.75 s is blocked until 12.5 s.
        assert_eq!(f.longest_blocked_ns, 12 * S + S / 2 - 7 * S / 4);
    }

    #[test]
    fn an_attempt_at_the_end_joins_the_last_windows() {
        // A 2 s run: a success at 1.5 s, a failure at exactly 2 s. It belongs
        // to [1 s, 2 s], not to a window [2 s, 3 s) of its own at 100 %.
        let mut b = Feed {
            b: Bursts::until(2 * S),
            ..Feed::default()
        };
        b.success(S + S / 2);
        b.failure(2 * S);
        let f = b.finish(2 * S);
        assert_eq!(f.worst, [0.5, 0.5, 0.5]);
        assert_eq!(f.seconds_with_failures, 1);
    }

    #[test]
    fn a_run_ending_blocked_counts_to_its_end() {
        let mut b = Feed::default();
        b.success(0);
        b.failure(2 * S);
        b.failure(3 * S);
        let f = b.finish(10 * S);
        assert_eq!(f.longest_blocked_ns, 8 * S);
        assert_eq!(f.worst, [1.0, 2.0 / 3.0, 2.0 / 3.0]);
        assert_eq!(f.seconds_with_failures, 2);
        // No failure at all: every figure 0.
        let mut b = Feed::default();
        b.success(S);
        assert_eq!(b.finish(2 * S), BurstFigures::default());
    }
}
