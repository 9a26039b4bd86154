//! Per-pool figures: for every pool the host allocates from, the ports it
//! held over time (peak and time-weighted mean), its attempts and failures.
//!
//! A pool is what competes for the same ports. With 4-tuple sharing
//! (connect(), or bind with IP_BIND_ADDRESS_NO_PORT) each (source address,
//! destination) pair is one, and its "in use" is the 4-tuples that pair
//! holds (connections and TIME_WAIT entries); with exclusive ports (bind(),
//! an OS whose connect() never shares, `share_across_destinations = false`)
//! each source address is one, and its "in use" is the address's busy
//! ports. This is the notion `report::analytic` counts as `pools`.
//!
//! The host layer tallies a pool where it already knows it: a 4-tuple
//! taken (`up`), a `tcp_tw_reuse` take-over (`reopen`), a 4-tuple let go
//! (`down`), a refusal (`refuse`) and an attempt that failed further along
//! (`abort`). Attempts are not counted on their own: an attempt either
//! opens (`up`, `reopen`) or is refused, so the hot path touches one
//! 32-byte entry per connection and the failure counters sit apart. A
//! pool's index is a linear function of (address, destination), kept as two
//! strides so the hot path computes it without a branch. Occupancy is
//! tallied like the run-wide levels of [`super::record`]: each change adds
//! ±t to an exact integer sum, so the area is `level·end − sum` at the end,
//! with no per-event float work. Beyond [`MAX_POOL_STATS`] pools nothing is
//! kept (the strides are zero and the table empty, so every lookup misses)
//! and the report gives only their count. Nor is anything kept for a host
//! with a single pool, the commonest case: that pool's figures are the
//! run's own (ports in use, attempts, failures), handed in at the end.

/// Keep per-pool figures up to this many pools.
pub const MAX_POOL_STATS: usize = 4096;

/// One pool while the run is going: exact integer tallies of what every
/// connection touches.
#[derive(Debug, Clone, Copy, Default)]
struct Tally {
    /// Sum over the pool's changes of ±(time of the change).
    off: i128,
    level: u32,
    peak: u32,
    /// Attempts that got a port (a new 4-tuple or a TIME_WAIT take-over).
    opens: u64,
}

/// One pool's failures, kept apart from the hot [`Tally`].
#[derive(Debug, Clone, Copy, Default)]
struct Failed {
    /// Attempts the host refused (no port).
    refused: u64,
    /// Attempts that got a port and were refused further along.
    aborted: u64,
}

/// What a run measured of one pool.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PoolFigures {
    /// Source address index (into `host.addresses`).
    pub addr: u32,
    /// Destination index, when ports are shared by 4-tuple (a pool per
    /// destination); `None` when ports are exclusive (a pool per address).
    pub dest: Option<u32>,
    /// Most ports (4-tuples) the pool held at once.
    pub peak_in_use: u32,
    /// Time-averaged ports (4-tuples) held.
    pub mean_in_use: f64,
    pub attempts: u64,
    pub failures: u64,
}

/// The run-wide figures, which are those of the only pool when there is one.
#[derive(Debug, Clone, Copy)]
pub struct Whole {
    pub peak_in_use: u32,
    pub mean_in_use: f64,
    pub attempts: u64,
    pub failures: u64,
}

/// The pools of one host while the run is going.
pub struct PoolTallies {
    /// Pool index = addr · addr_stride + dest · dest_stride.
    addr_stride: u32,
    dest_stride: u32,
    /// Destinations per address when ports are shared (0: exclusive).
    per_addr: u32,
    exclusive: bool,
    tallies: Vec<Tally>,
    failed: Vec<Failed>,
    /// How many pools there are, kept or not.
    total: u64,
}

impl PoolTallies {
    /// The pools of a host whose connections use `addresses` source
    /// addresses towards `destinations` destinations; `exclusive` when a
    /// port is held against every destination.
    pub fn new(addresses: u64, destinations: u64, exclusive: bool) -> Self {
        let total = if exclusive {
            addresses
        } else {
            addresses.saturating_mul(destinations)
        };
        if total > MAX_POOL_STATS as u64 || total <= 1 {
            return PoolTallies {
                addr_stride: 0,
                dest_stride: 0,
                per_addr: 0,
                exclusive,
                tallies: Vec::new(),
                failed: Vec::new(),
                total,
            };
        }
        let (addr_stride, dest_stride, per_addr) = if exclusive {
            (1, 0, 0)
        } else {
            (destinations as u32, 1, destinations as u32)
        };
        PoolTallies {
            addr_stride,
            dest_stride,
            per_addr,
            exclusive,
            tallies: vec![Tally::default(); total as usize],
            failed: vec![Failed::default(); total as usize],
            total,
        }
    }

    /// The pool of a connection from address `addr` to destination `dest`
    /// (any value when pools are not kept: every lookup then misses).
    #[inline(always)]
    pub fn index(&self, addr: u32, dest: u32) -> u32 {
        addr.wrapping_mul(self.addr_stride)
            .wrapping_add(dest.wrapping_mul(self.dest_stride))
    }

    /// An attempt on pool `pool` found no port.
    #[inline]
    pub fn refuse(&mut self, pool: u32) {
        if let Some(p) = self.failed.get_mut(pool as usize) {
            p.refused += 1;
        }
    }

    /// An attempt that got a port of pool `pool` was refused further along
    /// (its port goes back with [`Self::down`]).
    #[inline]
    pub fn abort(&mut self, pool: u32) {
        if let Some(p) = self.failed.get_mut(pool as usize) {
            p.aborted += 1;
        }
    }

    /// An attempt takes one more port (4-tuple) of pool `pool` at `t`.
    #[inline(always)]
    pub fn up(&mut self, pool: u32, t: u64) {
        if let Some(p) = self.tallies.get_mut(pool as usize) {
            p.level += 1;
            p.peak = p.peak.max(p.level);
            p.off += i128::from(t);
            p.opens += 1;
        }
    }

    /// An attempt takes over a TIME_WAIT 4-tuple of pool `pool`: what the
    /// pool holds does not change.
    #[inline]
    pub fn reopen(&mut self, pool: u32) {
        if let Some(p) = self.tallies.get_mut(pool as usize) {
            p.opens += 1;
        }
    }

    /// Pool `pool` lets go of one port (4-tuple) at `t`.
    #[inline(always)]
    pub fn down(&mut self, pool: u32, t: u64) {
        if let Some(p) = self.tallies.get_mut(pool as usize) {
            p.level -= 1;
            p.off -= i128::from(t);
        }
    }

    /// How many pools there are, whether or not their figures were kept.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Close the books at `end` (no change is later): every pool's figures
    /// in index order, or none when there were too many to keep. `whole`
    /// is the run's own figures, which a single pool's are.
    pub fn finish(self, end: u64, whole: Whole) -> Vec<PoolFigures> {
        if self.total == 1 {
            return vec![PoolFigures {
                addr: 0,
                dest: (!self.exclusive).then_some(0),
                peak_in_use: whole.peak_in_use,
                mean_in_use: whole.mean_in_use,
                attempts: whole.attempts,
                failures: whole.failures,
            }];
        }
        let span = end.max(1) as f64;
        let per_addr = self.per_addr;
        self.tallies
            .iter()
            .zip(&self.failed)
            .enumerate()
            .map(|(i, (p, f))| {
                let i = i as u32;
                let (addr, dest) = match i.checked_div(per_addr) {
                    None => (i, None),
                    Some(addr) => (addr, Some(i % per_addr)),
                };
                let area = i128::from(p.level) * i128::from(end) - p.off;
                PoolFigures {
                    addr,
                    dest,
                    peak_in_use: p.peak,
                    mean_in_use: area as f64 / span,
                    attempts: p.opens + f.refused,
                    failures: f.refused + f.aborted,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NONE: Whole = Whole {
        peak_in_use: 0,
        mean_in_use: 0.0,
        attempts: 0,
        failures: 0,
    };

    #[test]
    fn a_single_pool_has_the_runs_figures() {
        let mut p = PoolTallies::new(1, 1, false);
        assert_eq!(p.total(), 1);
        p.up(p.index(0, 0), 3);
        let whole = Whole {
            peak_in_use: 7,
            mean_in_use: 2.5,
            attempts: 9,
            failures: 1,
        };
        assert_eq!(
            p.finish(10, whole),
            vec![PoolFigures {
                addr: 0,
                dest: Some(0),
                peak_in_use: 7,
                mean_in_use: 2.5,
                attempts: 9,
                failures: 1,
            }]
        );
        let f = PoolTallies::new(1, 50, true).finish(10, whole);
        assert_eq!((f.len(), f[0].dest), (1, None));
    }

    #[test]
    fn shared_pools_are_per_address_and_destination() {
        let mut p = PoolTallies::new(2, 3, false);
        assert_eq!(p.total(), 6);
        let a = p.index(1, 2);
        assert_eq!(a, 5);
        p.up(a, 10);
        p.up(a, 20);
        p.down(a, 30);
        p.refuse(a);
        // Taken over from TIME_WAIT, then refused further along.
        p.reopen(a);
        p.abort(a);
        let f = p.finish(40, NONE);
        assert_eq!(f.len(), 6);
        assert_eq!(std::mem::size_of::<Tally>(), 32);
        // 1 over [10, 20), 2 over [20, 30), 1 over [30, 40): 40 in 40 ns.
        assert_eq!(
            f[5],
            PoolFigures {
                addr: 1,
                dest: Some(2),
                peak_in_use: 2,
                mean_in_use: 1.0,
                attempts: 4,
                failures: 2,
            }
        );
        assert_eq!((f[0].addr, f[0].dest, f[0].attempts), (0, Some(0), 0));
        assert_eq!((f[4].addr, f[4].dest), (1, Some(1)));
    }

    #[test]
    fn exclusive_pools_are_per_address() {
        let mut p = PoolTallies::new(3, 1000, true);
        assert_eq!(p.total(), 3);
        assert_eq!(p.index(2, 999), 2);
        p.up(2, 0);
        let f = p.finish(8, NONE);
        assert_eq!((f[2].addr, f[2].dest, f[2].peak_in_use), (2, None, 1));
        assert_eq!(f[2].mean_in_use, 1.0);
    }

    #[test]
    fn too_many_pools_keep_nothing_but_their_count() {
        let mut p = PoolTallies::new(4096, 1_000_000, false);
        assert_eq!(p.total(), 4_096_000_000);
        let i = p.index(4095, 999_999);
        p.up(i, 5);
        p.down(i, 6);
        p.refuse(i);
        p.reopen(i);
        p.abort(i);
        assert!(p.finish(10, NONE).is_empty());
        let p = PoolTallies::new(1, MAX_POOL_STATS as u64 + 1, false);
        assert_eq!(p.total(), MAX_POOL_STATS as u64 + 1);
        assert!(p.finish(1, NONE).is_empty());
        assert_eq!(
            PoolTallies::new(1, MAX_POOL_STATS as u64, false)
                .finish(1, NONE)
                .len(),
            MAX_POOL_STATS
        );
    }
}
