//! What a run measures: counters, time-weighted occupancy, the reuse-interval
//! histogram and a time series in a bounded number of bins.
//!
//! Occupancy is tallied at its changes, not integrated between events. Each
//! level (ports in use, TIME_WAIT entries, open connections) changes by ±1 at
//! an instant `x`; a bin keeps, per level, the net change `delta` and the sum
//! `off` of ±(x − bin start). The area of a bin of width `w` entered at level
//! `L` is then `(L + delta)·w − off`, exactly, in integers. So an event costs
//! two additions per level it moves, whatever the time since the last event,
//! and the run-wide means are exact sums rather than accumulated floats.
//!
//! Memory never grows with simulated time: when the series would exceed
//! `MAX_BINS`, neighbouring bins merge and the bin width doubles (the merge
//! rule for `off` is in `Tally::merge`).
//!
//! Bins are half-open, `[k·w, (k+1)·w)`, except the last, which also holds
//! the events at exactly the end of the run: a run ending on a bin boundary
//! has no zero-width bin after it, so every bin is a row of the time series
//! and the count of bins is the count of rows.

use hdrhistogram::Histogram;

/// Upper bound on time-series bins kept in memory.
pub const MAX_BINS: usize = 4096;

/// Longest reuse interval told apart (about 13 days); longer ones count as this.
pub const REUSE_MAX_NS: u64 = 1 << 50;

/// The levels the recorder integrates.
pub const IN_USE: usize = 0;
pub const TIME_WAIT: usize = 1;
pub const OPEN: usize = 2;

/// One time-series bin, as reported.
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

/// One bin while the run is going: exact integer tallies.
#[derive(Debug, Clone, Copy, Default)]
pub struct Tally {
    /// Net change of each level inside the bin.
    delta: [i64; 3],
    /// Sum over the bin's changes of ±(time − bin start), per level.
    off: [i128; 3],
    pub in_use_peak: u32,
    pub attempts: u64,
    pub failures: u64,
    /// Connects that completed in the bin (most in the bin of their
    /// attempt; a connect whose SYN was dropped, when one got through).
    pub established: u64,
}

impl Tally {
    /// Merge `b`, the bin that follows `self`, both of width `w`.
    fn merge(&mut self, b: &Tally, w: u64) {
        for k in 0..3 {
            // b's offsets were measured from its own start, w later.
            self.off[k] += b.off[k] + i128::from(b.delta[k]) * i128::from(w);
            self.delta[k] += b.delta[k];
        }
        self.in_use_peak = self.in_use_peak.max(b.in_use_peak);
        self.attempts += b.attempts;
        self.failures += b.failures;
        self.established += b.established;
    }
}

pub struct Recorder {
    pub bin_ns: u64,
    /// Whether the bin width may double (it may unless the user fixed it).
    adaptive: bool,
    /// The bins before the current one (and a stale copy of it).
    bins: Vec<Tally>,
    /// The current bin, kept out of the vector: every change goes here, and
    /// it is written back when the bin rolls.
    now: Tally,
    /// Index of the current bin, and where it starts and ends.
    cur: usize,
    cur_start: u64,
    cur_end: u64,
    /// Current value and run-wide peak of each level.
    level: [u32; 3],
    peak: [u32; 3],
    reuse: ReuseCounts,
    /// The caller's promise ([`Self::derive`]) that ports in use are always
    /// open connections plus TIME_WAIT entries, and that every connect
    /// completes at its attempt or fails: the in-use tallies and each bin's
    /// completed connects are then worked out at the end, not kept.
    derived: bool,
}

/// What the recorder hands back at the end of a run.
pub struct Recorded {
    pub bins: Vec<Bin>,
    pub bin_ns: u64,
    /// Integral of each level over the run, level·ns.
    pub area: [f64; 3],
    pub peak: [u32; 3],
    pub reuse: Histogram<u64>,
}

impl Recorder {
    pub fn new(bin_ns: u64, adaptive: bool) -> Self {
        let bin_ns = bin_ns.max(1);
        Recorder {
            bin_ns,
            adaptive,
            bins: vec![Tally::default()],
            now: Tally::default(),
            cur: 0,
            cur_start: 0,
            cur_end: bin_ns,
            level: [0; 3],
            peak: [0; 3],
            reuse: ReuseCounts::default(),
            derived: false,
        }
    }

    /// Promise that ports in use are exactly the open connections plus the
    /// TIME_WAIT entries (one address, one destination, nothing else holds
    /// a port), and that every connect completes at its attempt or fails.
    /// The caller then moves the in-use level with [`Self::in_use_up`] and
    /// [`Self::in_use_down`], which keep its peaks but no tallies, and
    /// never counts a bin's `established`: at the end each bin's in-use
    /// tallies are the sum of the other two levels' (tallies are linear in
    /// the changes), and its completed connects are its attempts less its
    /// failures. The figures are the ones tallying each change would give.
    pub fn derive(&mut self) {
        self.derived = true;
    }

    /// A port is taken at `t`, in the bin of the attempt just counted
    /// ([`Self::bin`]), under [`Self::derive`].
    #[inline(always)]
    pub fn in_use_up(&mut self, t: u64) {
        debug_assert!(self.derived && t >= self.cur_start && t < self.cur_end);
        let l = self.level[IN_USE] + 1;
        self.level[IN_USE] = l;
        self.peak[IN_USE] = self.peak[IN_USE].max(l);
        self.now.in_use_peak = self.now.in_use_peak.max(l);
    }

    /// A port is let go, after the change of the level that held it was
    /// recorded, under [`Self::derive`].
    #[inline(always)]
    pub fn in_use_down(&mut self) {
        debug_assert!(self.derived);
        self.level[IN_USE] -= 1;
    }

    pub fn level(&self, which: usize) -> u32 {
        self.level[which]
    }

    /// The run-wide peak of level `which` so far.
    #[inline]
    pub fn peak(&self, which: usize) -> u32 {
        self.peak[which]
    }

    /// Level `which` was `level` at some instant already recorded: a
    /// caller that records changes out of time order ([`Self::raise`])
    /// gives the peak this way.
    #[inline]
    pub fn note_peak(&mut self, which: usize, level: u32) {
        self.peak[which] = self.peak[which].max(level);
    }

    /// Where the current bin ends: changes before it need no roll.
    #[inline]
    pub fn bin_end(&self) -> u64 {
        self.cur_end
    }

    /// The bin of time `t`; times never go backwards.
    #[inline]
    pub fn bin(&mut self, t: u64) -> &mut Tally {
        if t >= self.cur_end {
            self.roll(t);
        }
        &mut self.now
    }

    /// Move the current bin forward to the one holding `t`. Bins passed over
    /// start at the level carried into them, which is their peak so far.
    #[cold]
    fn roll(&mut self, t: u64) {
        self.bins[self.cur] = self.now;
        let cap = if self.adaptive {
            MAX_BINS
        } else {
            16 * MAX_BINS
        };
        while (t / self.bin_ns) as usize >= cap {
            self.coarsen();
        }
        let idx = (t / self.bin_ns) as usize;
        while self.bins.len() <= idx {
            self.bins.push(Tally {
                in_use_peak: self.level[IN_USE],
                ..Tally::default()
            });
        }
        self.cur = idx;
        self.cur_start = idx as u64 * self.bin_ns;
        self.cur_end = (idx as u64 + 1).saturating_mul(self.bin_ns);
        let l = self.level[IN_USE];
        self.now = self.bins[idx];
        self.now.in_use_peak = self.now.in_use_peak.max(l);
    }

    /// Halve the number of bins by merging neighbours; the width doubles.
    fn coarsen(&mut self) {
        let w = self.bin_ns;
        let merged: Vec<Tally> = self
            .bins
            .chunks(2)
            .map(|c| {
                let mut b = c[0];
                if let Some(o) = c.get(1) {
                    b.merge(o, w);
                }
                b
            })
            .collect();
        self.bins = merged;
        self.bin_ns *= 2;
    }

    /// Level `which` goes up by one at `t`.
    #[inline]
    pub fn up(&mut self, which: usize, t: u64) {
        let l = self.raise(which, t);
        self.peak[which] = self.peak[which].max(l);
    }

    /// Level `which` goes up by one at `t`, leaving the run-wide peak to
    /// the caller ([`Self::note_peak`]); the new level.
    #[inline]
    pub fn raise(&mut self, which: usize, t: u64) -> u32 {
        if t >= self.cur_end {
            self.roll(t);
        }
        let l = self.level[which] + 1;
        self.level[which] = l;
        let x = t - self.cur_start;
        let b = &mut self.now;
        b.delta[which] += 1;
        b.off[which] += i128::from(x);
        if which == IN_USE {
            b.in_use_peak = b.in_use_peak.max(l);
        }
        l
    }

    /// Level `which` goes down by one at `t`.
    #[inline]
    pub fn down(&mut self, which: usize, t: u64) {
        if t >= self.cur_end {
            self.roll(t);
        }
        self.level[which] -= 1;
        let x = t - self.cur_start;
        let b = &mut self.now;
        b.delta[which] -= 1;
        b.off[which] -= i128::from(x);
    }

    #[inline]
    pub fn reuse_interval(&mut self, ns: u64) {
        self.reuse.count(ns);
    }

    /// Close the books at `end` (no event is later). Events at exactly
    /// `end`, when it falls on a bin boundary, join the bin before it.
    pub fn finish(mut self, end: u64) -> Recorded {
        self.bin(end);
        self.bins[self.cur] = self.now;
        if self.derived {
            for b in &mut self.bins {
                b.delta[IN_USE] = b.delta[OPEN] + b.delta[TIME_WAIT];
                b.off[IN_USE] = b.off[OPEN] + b.off[TIME_WAIT];
                b.established = b.attempts - b.failures;
            }
        }
        let w = self.bin_ns;
        if self.bins.len() > 1 && (self.bins.len() - 1) as u64 * w == end {
            let last = self.bins.pop().expect("more than one bin");
            let n = self.bins.len();
            self.bins[n - 1].merge(&last, w);
        }
        let mut level = [0i128; 3];
        let mut area = [0i128; 3];
        let mut bins = Vec::with_capacity(self.bins.len());
        for (i, t) in self.bins.iter().enumerate() {
            let start = i as u64 * w;
            let width = i128::from(w.min(end.saturating_sub(start)));
            let mut a = [0i128; 3];
            for k in 0..3 {
                let after = level[k] + i128::from(t.delta[k]);
                // Changes past the end cannot exist, so the offsets fit the width.
                a[k] = after * width - t.off[k];
                area[k] += a[k];
                level[k] = after;
            }
            bins.push(Bin {
                in_use_area: a[IN_USE] as f64,
                time_wait_area: a[TIME_WAIT] as f64,
                open_area: a[OPEN] as f64,
                in_use_peak: t.in_use_peak,
                attempts: t.attempts,
                failures: t.failures,
                established: t.established,
            });
        }
        Recorded {
            bins,
            bin_ns: w,
            area: area.map(|a| a as f64),
            peak: self.peak,
            reuse: self.reuse.into_histogram(),
        }
    }
}

/// Reuse intervals counted in the reuse histogram's own buckets (1 ns to
/// [`REUSE_MAX_NS`], 3 significant digits) and folded into it at the end.
/// A count is an index computation and an increment, where recording into
/// the histogram also checks bounds and tracks its total, minimum and
/// maximum; the histogram that comes out is the one recording each
/// interval would have made (every figure it reports: counts per bucket,
/// quantiles, mean, min and max, is read off bucket equivalents).
#[derive(Default)]
struct ReuseCounts {
    /// Counts modulo 2^32 (half the cache lines of whole counts), and the
    /// wraps of each, by index: a bucket wraps only after 4 billion
    /// intervals.
    counts: Vec<u32>,
    wraps: Vec<(usize, u64)>,
}

/// Layout of the reuse histogram's buckets (`Histogram::new_with_bounds(1,
/// REUSE_MAX_NS, 3)`): sub-buckets of 2048 values, the upper half of each
/// bucket after the first in use. A test checks it against the library.
const SUB_HALF_BITS: u32 = 10;
const SUB_MASK: u64 = (1 << (SUB_HALF_BITS + 1)) - 1;
const LZ_BASE: u32 = 64 - (SUB_HALF_BITS + 1);
/// The largest value the histogram counts as itself: the top of the bucket
/// that holds [`REUSE_MAX_NS`]. Larger ones count as `REUSE_MAX_NS`.
const TRACKED_TOP: u64 =
    ((SUB_MASK + 1) << (LZ_BASE - (REUSE_MAX_NS | SUB_MASK).leading_zeros())) - 1;

impl ReuseCounts {
    /// The bucket index of `ns` (1 ..= [`REUSE_MAX_NS`]).
    #[inline(always)]
    fn index(ns: u64) -> usize {
        let bucket = LZ_BASE - (ns | SUB_MASK).leading_zeros();
        ((bucket << SUB_HALF_BITS) as usize) + (ns >> bucket) as usize
    }

    /// The lowest value of bucket index `i`.
    fn value(i: usize) -> u64 {
        let half = 1usize << SUB_HALF_BITS;
        let bucket = (i >> SUB_HALF_BITS) as i64 - 1;
        let sub = (i & (half - 1)) + half;
        if bucket < 0 {
            (sub - half) as u64
        } else {
            (sub as u64) << bucket
        }
    }

    /// One interval of `ns` (0 counts as 1 ns; longer than the histogram
    /// tracks counts as [`REUSE_MAX_NS`], as `saturating_record` does).
    #[inline(always)]
    fn count(&mut self, ns: u64) {
        let ns = if ns > TRACKED_TOP {
            REUSE_MAX_NS
        } else {
            ns.max(1)
        };
        let i = Self::index(ns);
        match self.counts.get_mut(i) {
            Some(c) => {
                *c = c.wrapping_add(1);
                if *c == 0 {
                    self.wrap(i);
                }
            }
            None => self.grow(i),
        }
    }

    #[cold]
    fn grow(&mut self, i: usize) {
        self.counts.resize(i + 1, 0);
        self.counts[i] += 1;
    }

    /// Bucket `i`'s count passed 2^32 once more.
    #[cold]
    fn wrap(&mut self, i: usize) {
        match self.wraps.iter_mut().find(|w| w.0 == i) {
            Some(w) => w.1 += 1,
            None => self.wraps.push((i, 1)),
        }
    }

    /// The whole count of bucket `i`.
    fn total(&self, i: usize) -> u64 {
        let wraps = self.wraps.iter().find(|w| w.0 == i).map_or(0, |w| w.1);
        (wraps << 32) + u64::from(self.counts[i])
    }

    fn into_histogram(self) -> Histogram<u64> {
        let mut h = Histogram::new_with_bounds(1, REUSE_MAX_NS, 3).expect("valid bounds");
        for i in 0..self.counts.len() {
            let c = self.total(i);
            if c > 0 {
                h.record_n(Self::value(i), c)
                    .expect("a bucket of the histogram's own range");
            }
        }
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bucket layout is the library's: every bucket's lowest value is
    /// its own lowest equivalent, and the values at both ends of a bucket
    /// map to it; folding gives the histogram recording would have made.
    #[test]
    fn reuse_counts_fold_into_the_histogram_recording_makes() {
        let h = Histogram::<u64>::new_with_bounds(1, REUSE_MAX_NS, 3).unwrap();
        let last = ReuseCounts::index(TRACKED_TOP);
        for i in 0..=last {
            let v = ReuseCounts::value(i);
            if v == 0 {
                continue;
            }
            assert_eq!(h.lowest_equivalent(v), v, "index {i}");
            assert_eq!(ReuseCounts::index(v), i, "value {v}");
            let top = h.highest_equivalent(v);
            assert_eq!(ReuseCounts::index(top), i, "value {top}");
        }
        let mut direct = h.clone();
        let mut counted = ReuseCounts::default();
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for k in 0..200_000u64 {
            x = crate::util::mix64(x.wrapping_add(k));
            // Spread over every magnitude, past the top and down to 0.
            let ns = x >> (x % 64) as u32;
            direct.saturating_record(ns.max(1));
            counted.count(ns);
        }
        let folded = counted.into_histogram();
        assert_eq!(folded.len(), direct.len());
        assert_eq!(folded.min(), direct.min());
        assert_eq!(folded.max(), direct.max());
        assert_eq!(folded.mean(), direct.mean());
        for q in [0.0, 0.1, 0.5, 0.9, 0.99, 0.999, 1.0] {
            assert_eq!(folded.value_at_quantile(q), direct.value_at_quantile(q));
        }
        let buckets = |h: &Histogram<u64>| {
            h.iter_recorded()
                .map(|v| (v.value_iterated_to(), v.count_at_value()))
                .collect::<Vec<_>>()
        };
        assert_eq!(buckets(&folded), buckets(&direct));
    }

    /// A bucket's count past 2^32 is carried whole into the histogram.
    #[test]
    fn reuse_counts_carry_past_four_billion() {
        let mut r = ReuseCounts::default();
        r.count(5_000);
        let i = ReuseCounts::index(5_000);
        r.counts[i] = u32::MAX;
        r.count(5_000);
        r.count(5_000);
        r.count(7);
        assert_eq!(r.total(i), (1 << 32) + 1);
        let h = r.into_histogram();
        assert_eq!(h.len(), (1 << 32) + 2);
        assert_eq!(h.count_at(5_000), (1 << 32) + 1);
        assert_eq!(h.count_at(7), 1);
    }

    #[test]
    fn integrates_levels_across_bins() {
        let mut r = Recorder::new(10, true);
        r.up(IN_USE, 0);
        r.up(IN_USE, 0);
        r.up(TIME_WAIT, 3);
        r.down(IN_USE, 17);
        let out = r.finish(25);
        // In use: 2 over [0, 17), 1 over [17, 25) = 34 + 8.
        assert_eq!(out.area[IN_USE], 42.0);
        assert_eq!(out.area[TIME_WAIT], 22.0);
        assert_eq!(out.bins.len(), 3);
        assert_eq!(out.bins[0].in_use_area, 20.0);
        assert_eq!(out.bins[1].in_use_area, 17.0);
        assert_eq!(out.bins[2].in_use_area, 5.0);
        assert_eq!(out.bins[2].in_use_peak, 1);
        assert_eq!(out.peak[IN_USE], 2);
    }

    #[test]
    fn events_at_the_end_join_the_last_bin() {
        let mut r = Recorder::new(10, true);
        r.up(IN_USE, 5);
        r.bin(20).attempts += 1;
        r.up(IN_USE, 20);
        let out = r.finish(20);
        // Two bins of width 10, not a third of width 0 at 20.
        assert_eq!(out.bins.len(), 2);
        assert_eq!(out.bins[1].attempts, 1);
        assert_eq!(out.bins[1].in_use_peak, 2);
        // The port taken at 20 holds no area: 1 over [5, 20).
        assert_eq!(out.bins[0].in_use_area, 5.0);
        assert_eq!(out.bins[1].in_use_area, 10.0);
        assert_eq!(out.area[IN_USE], 15.0);
        // A run of length 0 keeps its one bin.
        let out = Recorder::new(10, true).finish(0);
        assert_eq!(out.bins.len(), 1);
    }

    #[test]
    fn bins_merge_instead_of_growing() {
        let mut r = Recorder::new(1, true);
        let mut expect = 0i128;
        for k in 0..50u64 {
            let t = k * 7919 % (100 * MAX_BINS as u64);
            let t = t.max(k * 2 * MAX_BINS as u64);
            r.up(IN_USE, t);
            expect -= i128::from(t);
        }
        let end = 100 * MAX_BINS as u64;
        expect += 50 * i128::from(end);
        let out = r.finish(end);
        assert!(out.bins.len() <= MAX_BINS + 1, "{}", out.bins.len());
        let total: f64 = out.bins.iter().map(|b| b.in_use_area).sum();
        assert_eq!(total, expect as f64);
        assert_eq!(out.area[IN_USE], expect as f64);
    }
}
