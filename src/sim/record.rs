//! What a run measures: counters, time-weighted occupancy, the reuse-interval
//! histogram and a time series in a bounded number of bins.
//!
//! Memory never grows with simulated time: when the series would exceed
//! `MAX_BINS`, neighbouring bins merge and the bin width doubles.

use hdrhistogram::Histogram;

/// Upper bound on time-series bins kept in memory.
pub const MAX_BINS: usize = 4096;

/// Longest reuse interval told apart (about 13 days); longer ones count as this.
pub const REUSE_MAX_NS: u64 = 1 << 50;

/// One time-series bin.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Bin {
    /// Integral of ports in use over the bin, port·ns.
    pub in_use_area: f64,
    /// Integral of TIME_WAIT entries over the bin, entry·ns.
    pub time_wait_area: f64,
    /// Integral of open connections over the bin, conn·ns.
    pub open_area: f64,
    pub in_use_peak: u32,
    pub attempts: u64,
    pub failures: u64,
    pub established: u64,
}

impl Bin {
    fn merge(&mut self, o: &Bin) {
        self.in_use_area += o.in_use_area;
        self.time_wait_area += o.time_wait_area;
        self.open_area += o.open_area;
        self.in_use_peak = self.in_use_peak.max(o.in_use_peak);
        self.attempts += o.attempts;
        self.failures += o.failures;
        self.established += o.established;
    }
}

/// Levels that change at events and are integrated over time.
#[derive(Debug, Clone, Copy, Default)]
pub struct Levels {
    pub in_use: u32,
    pub time_wait: u32,
    pub open: u32,
}

pub struct Recorder {
    pub bin_ns: u64,
    /// Whether the bin width may double (it may unless the user fixed it).
    adaptive: bool,
    pub bins: Vec<Bin>,
    /// Index of the bin holding `last_ns`, and where that bin ends.
    cur: usize,
    cur_end: u64,
    /// Time up to which levels have been integrated.
    last_ns: u64,
    pub levels: Levels,
    pub in_use_area: f64,
    pub time_wait_area: f64,
    pub peak_in_use: u32,
    pub peak_time_wait: u32,
    pub peak_open: u32,
    pub reuse: Histogram<u64>,
}

impl Recorder {
    pub fn new(bin_ns: u64, adaptive: bool) -> Self {
        Recorder {
            bin_ns: bin_ns.max(1),
            adaptive,
            bins: vec![Bin::default()],
            cur: 0,
            cur_end: bin_ns.max(1),
            last_ns: 0,
            levels: Levels::default(),
            in_use_area: 0.0,
            time_wait_area: 0.0,
            peak_in_use: 0,
            peak_time_wait: 0,
            peak_open: 0,
            reuse: Histogram::new_with_bounds(1, REUSE_MAX_NS, 3).expect("valid bounds"),
        }
    }

    /// Integrate the current levels up to `t` (called before every change).
    #[inline]
    pub fn advance(&mut self, t: u64) {
        if t <= self.last_ns {
            return;
        }
        let l = self.levels;
        let dt = (t - self.last_ns) as f64;
        let (u, w, o) = (
            f64::from(l.in_use),
            f64::from(l.time_wait),
            f64::from(l.open),
        );
        self.in_use_area += u * dt;
        self.time_wait_area += w * dt;
        if t < self.cur_end {
            // Still inside the current bin: the common case.
            let b = &mut self.bins[self.cur];
            b.in_use_area += u * dt;
            b.time_wait_area += w * dt;
            b.open_area += o * dt;
            self.last_ns = t;
            return;
        }
        // Spread the interval over the bins it covers.
        let mut from = self.last_ns;
        while from < t {
            let idx = (from / self.bin_ns) as usize;
            let bin_end = (idx as u64 + 1).saturating_mul(self.bin_ns);
            let to = t.min(bin_end);
            let part = (to - from) as f64;
            let b = self.bin_mut(idx);
            b.in_use_area += u * part;
            b.time_wait_area += w * part;
            b.open_area += o * part;
            b.in_use_peak = b.in_use_peak.max(l.in_use);
            from = to;
            if self.bins.len() > MAX_BINS {
                self.coarsen();
            }
        }
        self.last_ns = t;
        self.cur = (t / self.bin_ns) as usize;
        self.cur_end = (self.cur as u64 + 1).saturating_mul(self.bin_ns);
        let b = self.bin_mut(self.cur);
        b.in_use_peak = b.in_use_peak.max(l.in_use);
    }

    /// The bin for time index `idx`, creating bins up to it.
    #[inline]
    fn bin_mut(&mut self, idx: usize) -> &mut Bin {
        while self.bins.len() <= idx {
            self.bins.push(Bin::default());
        }
        &mut self.bins[idx]
    }

    /// The bin of the current time.
    #[inline]
    pub fn current_bin(&mut self) -> &mut Bin {
        &mut self.bins[self.cur]
    }

    fn coarsen(&mut self) {
        if !self.adaptive && self.bins.len() <= 16 * MAX_BINS {
            return;
        }
        let merged: Vec<Bin> = self
            .bins
            .chunks(2)
            .map(|c| {
                let mut b = c[0];
                if let Some(o) = c.get(1) {
                    b.merge(o);
                }
                b
            })
            .collect();
        self.bins = merged;
        self.bin_ns *= 2;
    }

    /// Record a change of levels at the current time.
    #[inline]
    pub fn set_levels(&mut self, l: Levels) {
        self.levels = l;
        self.peak_in_use = self.peak_in_use.max(l.in_use);
        self.peak_time_wait = self.peak_time_wait.max(l.time_wait);
        self.peak_open = self.peak_open.max(l.open);
        let b = &mut self.bins[self.cur];
        b.in_use_peak = b.in_use_peak.max(l.in_use);
    }

    #[inline]
    pub fn reuse_interval(&mut self, ns: u64) {
        self.reuse.saturating_record(ns.max(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integrates_levels_across_bins() {
        let mut r = Recorder::new(10, true);
        r.set_levels(Levels {
            in_use: 2,
            time_wait: 1,
            open: 1,
        });
        r.advance(25);
        assert_eq!(r.in_use_area, 50.0);
        assert_eq!(r.bins.len(), 3);
        assert_eq!(r.bins[0].in_use_area, 20.0);
        assert_eq!(r.bins[2].in_use_area, 10.0);
        assert_eq!(r.peak_in_use, 2);
    }

    #[test]
    fn bins_merge_instead_of_growing() {
        let mut r = Recorder::new(1, true);
        r.set_levels(Levels {
            in_use: 1,
            time_wait: 0,
            open: 1,
        });
        r.advance(100 * MAX_BINS as u64);
        assert!(r.bins.len() <= MAX_BINS + 1, "{}", r.bins.len());
        let total: f64 = r.bins.iter().map(|b| b.in_use_area).sum();
        assert_eq!(total, r.in_use_area);
    }
}
