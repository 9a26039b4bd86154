//! Occupancy per layer and per host over time: the data behind the `layers`
//! and `hosts` charts.
//!
//! An [`Observer`] that follows three step functions and integrates them
//! into time columns: the ports held by all client hosts together (from
//! `on_port_busy_at` / `on_port_free_at` at layer 0), each NAT's conntrack
//! entries (`on_nat_entries`), and the ports each host holds. Per column it
//! keeps the time integral (for the mean) and the peak, where the peak counts
//! every level the function took in the column, even for no time (a port
//! taken and given back at one instant), so the largest column peak is the
//! run's peak as the report counts it.
//!
//! Memory is bounded whatever the run: the grid has [`MAX_COLS`] columns,
//! which merge in pairs (the width doubling) when time passes the last one,
//! as the port usage map's do; hosts share rows once there are more than
//! [`MAX_ROWS`] (a row then sums its hosts, and its peak is the busiest
//! one's); and each host costs its level and the time it last changed, so
//! a host's held interval is added to the grid only when it ends.
//! The first refusal at each layer is kept too, so a chart can mark where
//! each layer first ran out.

use crate::scenario::{BindMode, Scenario};
use crate::sim::layer::Site;
use crate::sim::Observer;

/// Time columns kept; more would be finer than the charts' pixels.
pub const MAX_COLS: usize = 256;
/// Host rows kept; beyond this, neighbouring hosts share a row.
pub const MAX_ROWS: usize = 200;

/// One `[[hosts]]` group (or the single host) as the charts name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSpan {
    pub name: String,
    /// Index of its first host in the fleet.
    pub first: u32,
    pub count: u32,
    /// Ports one host can hold: usable ports × the addresses it draws on.
    pub pool_per_host: u64,
}

/// A step function being integrated: its level and since when.
#[derive(Debug, Clone, Copy, Default)]
struct Step {
    level: u64,
    since: u64,
}

pub struct LayerUsage {
    col_ns: u64,
    /// Columns in use so far (the grid's right edge).
    cols: usize,
    /// The end of the run, once it is known.
    end_ns: Option<u64>,
    nats: usize,
    /// Hosts per row, and rows.
    per_row: u32,
    rows: usize,
    /// Level·ns and peak per (row, column), row-major with `MAX_COLS`
    /// columns. Row 0: all hosts; rows 1 ..= nats: the NATs; then the host
    /// rows.
    area: Vec<u128>,
    peak: Vec<u64>,
    /// The step function of each row of `area` that is not a host row.
    layers: Vec<Step>,
    /// Each host's ports held and since when.
    hosts: Vec<Step>,
    groups: Vec<GroupSpan>,
    /// First refusal and refusals per layer (0: the hosts, 1 + n: NAT n).
    first_failure: Vec<Option<u64>>,
    failures: Vec<u64>,
}

impl LayerUsage {
    pub fn new(sc: &Scenario) -> LayerUsage {
        let pool = |h: &crate::scenario::Host, bind: BindMode| {
            let addrs = if bind == BindMode::Connect {
                1
            } else {
                h.addresses.len() as u64
            };
            u64::from(h.usable_ports()) * addrs.max(1)
        };
        let (groups, nats) = if sc.is_fleet() {
            let mut first = 0;
            let groups = sc
                .groups
                .iter()
                .map(|g| {
                    // Every host the group ever has (`scale`), as the engine numbers them.
                    let span = GroupSpan {
                        name: g.name.clone(),
                        first,
                        count: g.max_count(),
                        pool_per_host: pool(&g.host, g.traffic.bind),
                    };
                    first += g.max_count();
                    span
                })
                .collect();
            (groups, sc.nats.len())
        } else {
            let one = GroupSpan {
                name: "host".into(),
                first: 0,
                count: 1,
                pool_per_host: pool(&sc.host, sc.traffic.bind),
            };
            (vec![one], sc.nat_path().len())
        };
        let hosts: u32 = groups.iter().map(|g| g.count).sum();
        let per_row = hosts.div_ceil(MAX_ROWS as u32).max(1);
        let rows = hosts.div_ceil(per_row) as usize;
        let grid = (1 + nats + rows) * MAX_COLS;
        LayerUsage {
            // Start near duration / MAX_COLS; an open-ended run at 1 ms.
            col_ns: sc
                .duration_ns
                .map_or(1_000_000, |d| d.div_ceil(MAX_COLS as u64).max(1)),
            cols: 0,
            end_ns: None,
            nats,
            per_row,
            rows,
            area: vec![0; grid],
            peak: vec![0; grid],
            layers: vec![Step::default(); 1 + nats],
            hosts: vec![Step::default(); hosts as usize],
            groups,
            first_failure: vec![None; 1 + nats],
            failures: vec![0; 1 + nats],
        }
    }

    /// Extend the grid so its right edge is at or past `t`.
    fn cover(&mut self, t: u64) {
        while t > self.col_ns.saturating_mul(MAX_COLS as u64) {
            self.coarsen();
        }
        let c = t.div_ceil(self.col_ns) as usize;
        self.cols = self.cols.max(c.min(MAX_COLS));
    }

    fn coarsen(&mut self) {
        for (area, peak) in self
            .area
            .chunks_mut(MAX_COLS)
            .zip(self.peak.chunks_mut(MAX_COLS))
        {
            for c in 0..MAX_COLS / 2 {
                area[c] = area[2 * c] + area[2 * c + 1];
                peak[c] = peak[2 * c].max(peak[2 * c + 1]);
            }
            area[MAX_COLS / 2..].fill(0);
            peak[MAX_COLS / 2..].fill(0);
        }
        self.cols = self.cols.div_ceil(2);
        self.col_ns *= 2;
    }

    /// The column holding instant `t` (covered already).
    fn col(&self, t: u64) -> usize {
        ((t / self.col_ns) as usize).min(MAX_COLS - 1)
    }

    /// Row `row` held `level` over `[from, to)`, and takes `next` at `to`.
    fn held(&mut self, row: usize, level: u64, from: u64, to: u64, next: u64) {
        self.cover(to);
        let base = row * MAX_COLS;
        let mut t = from;
        while t < to {
            let c = self.col(t);
            let edge = ((c as u64 + 1) * self.col_ns).min(to);
            self.area[base + c] += u128::from(level) * u128::from(edge - t);
            let p = &mut self.peak[base + c];
            *p = (*p).max(level);
            t = edge;
        }
        let c = base + self.col(to);
        self.peak[c] = self.peak[c].max(next);
    }

    /// Row `row` (not a host row) changes to `level` at `t`.
    fn step(&mut self, row: usize, t: u64, level: u64) {
        let s = self.layers[row];
        let from = s.since.min(t);
        self.held(row, s.level, from, t, level);
        self.layers[row] = Step { level, since: t };
    }

    /// Host `host` holds one port more (`up`) or fewer from `t` on.
    fn host_step(&mut self, host: u32, t: u64, up: bool) {
        let Some(&s) = self.hosts.get(host as usize) else {
            return;
        };
        let level = if up {
            s.level + 1
        } else {
            s.level.saturating_sub(1)
        };
        let row = 1 + self.nats + (host / self.per_row) as usize;
        self.held(row, s.level, s.since.min(t), t, level);
        self.hosts[host as usize] = Step { level, since: t };
        let total = self.layers[0].level;
        let total = if up {
            total + 1
        } else {
            total.saturating_sub(1)
        };
        self.step(0, t, total);
    }

    /// Close every interval still open at `end`, the end of the run.
    fn finish(&mut self, end: u64) {
        for row in 0..self.layers.len() {
            let level = self.layers[row].level;
            self.step(row, end, level);
        }
        for h in 0..self.hosts.len() {
            let s = self.hosts[h];
            let row = 1 + self.nats + h / self.per_row as usize;
            self.held(row, s.level, s.since.min(end), end, s.level);
            self.hosts[h].since = end;
        }
        self.cover(end);
        self.end_ns = Some(end);
    }

    /// Width of one time column, ns, and columns in use.
    pub fn columns(&self) -> (u64, usize) {
        (self.col_ns, self.cols)
    }

    /// NATs followed (as many as the report's `nats`, in its order).
    pub fn nats(&self) -> usize {
        self.nats
    }

    /// Hosts in the fleet (1 for a single host).
    pub fn hosts(&self) -> u32 {
        self.hosts.len() as u32
    }

    /// Hosts per row of the host grid, and its rows.
    pub fn host_rows(&self) -> (u32, usize) {
        (self.per_row, self.rows)
    }

    /// The hosts' groups, in file order.
    pub fn groups(&self) -> &[GroupSpan] {
        &self.groups
    }

    /// Ports all hosts together can hold.
    pub fn hosts_pool(&self) -> u64 {
        self.groups
            .iter()
            .map(|g| u64::from(g.count) * g.pool_per_host)
            .sum()
    }

    /// Time column `col` spans `[start, start + width)` of the run (the last
    /// one ends with the run).
    pub fn span(&self, col: usize) -> (u64, u64) {
        let start = col as u64 * self.col_ns;
        let end = ((col as u64 + 1) * self.col_ns).min(self.end_ns.unwrap_or(u64::MAX));
        (start, end.saturating_sub(start))
    }

    fn mean(&self, row: usize, col: usize, per: u64) -> f64 {
        let (_, width) = self.span(col);
        if width == 0 || per == 0 {
            return 0.0;
        }
        self.area[row * MAX_COLS + col] as f64 / (width as f64 * per as f64)
    }

    /// Ports held by all hosts together, time-averaged over column `col`,
    /// and their peak within it.
    pub fn hosts_total(&self, col: usize) -> (f64, u64) {
        (self.mean(0, col, 1), self.peak[col])
    }

    /// Conntrack entries of NAT `nat`, time-averaged over column `col`, and
    /// their peak within it.
    pub fn nat_entries(&self, nat: usize, col: usize) -> (f64, u64) {
        let row = 1 + nat;
        (self.mean(row, col, 1), self.peak[row * MAX_COLS + col])
    }

    /// Hosts in row `row` of the host grid.
    pub fn row_hosts(&self, row: usize) -> u32 {
        let first = row as u32 * self.per_row;
        self.per_row.min(self.hosts().saturating_sub(first))
    }

    /// Ports held per host of row `row`, time-averaged over column `col`
    /// (the mean over the row's hosts), and the most any host of the row
    /// held within it.
    pub fn host_cell(&self, row: usize, col: usize) -> (f64, u64) {
        let r = 1 + self.nats + row;
        let n = u64::from(self.row_hosts(row));
        (self.mean(r, col, n), self.peak[r * MAX_COLS + col])
    }

    /// Held level·ns over the run of the hosts together (`None`) or of NAT
    /// `n`, for checks against the report's means.
    pub fn area_ns(&self, nat: Option<usize>) -> u128 {
        let row = nat.map_or(0, |n| 1 + n);
        self.area[row * MAX_COLS..(row + 1) * MAX_COLS].iter().sum()
    }

    /// When layer `layer` (0 the hosts, 1 + n NAT n) first refused an
    /// attempt, and how many it refused.
    pub fn failures_at(&self, layer: usize) -> (Option<u64>, u64) {
        (
            self.first_failure.get(layer).copied().flatten(),
            self.failures.get(layer).copied().unwrap_or(0),
        )
    }
}

impl Observer for LayerUsage {
    fn on_port_busy_at(&mut self, site: Site, t: u64, _addr: u32, _idx: u32) {
        if site.layer == Site::HOST_LAYER {
            self.host_step(site.host, t, true);
        }
    }
    fn on_port_free_at(&mut self, site: Site, t: u64, _addr: u32, _idx: u32) {
        if site.layer == Site::HOST_LAYER {
            self.host_step(site.host, t, false);
        }
    }
    fn on_nat_entries(&mut self, site: Site, t: u64, entries: u64) {
        let row = usize::from(site.layer);
        if (1..=self.nats).contains(&row) {
            self.step(row, t, entries);
        }
    }
    fn on_fail_at(&mut self, site: Site, t: u64, _dest: u32) {
        let layer = usize::from(site.layer);
        if let Some(n) = self.failures.get_mut(layer) {
            *n += 1;
            self.first_failure[layer].get_or_insert(t);
        }
    }
    fn on_end(&mut self, t: u64) {
        self.finish(t);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn load(text: &str) -> Scenario {
        crate::scenario::load_str(text, Path::new("l.toml"), &[])
            .unwrap_or_else(|e| panic!("{e}\n{text}"))
    }

    #[test]
    fn a_step_counts_in_the_mean_and_the_peak_of_its_columns() {
        let sc = load(
            "name = 'l'\nduration = '256s'\n[host]\nport_range = '40000-40099'\n\
             [[destinations]]\naddress = '10.0.0.1:80'\n[traffic]\nrate = 1\nhold = '1s'\n",
        );
        let mut u = LayerUsage::new(&sc);
        assert_eq!(u.columns(), (1_000_000_000, 0));
        // One port from 0.5 s to 2.5 s; a second taken and freed at 3 s.
        u.host_step(0, 500_000_000, true);
        u.host_step(0, 2_500_000_000, false);
        u.host_step(0, 3_000_000_000, true);
        u.host_step(0, 3_000_000_000, false);
        u.finish(256_000_000_000);
        let cells: Vec<_> = (0..4).map(|c| u.hosts_total(c)).collect();
        assert_eq!(cells, [(0.5, 1), (1.0, 1), (0.5, 1), (0.0, 1)]);
        assert_eq!(u.host_cell(0, 1), (1.0, 1));
        assert_eq!(u.area_ns(None), 2_000_000_000);
        assert_eq!(u.columns(), (1_000_000_000, 256));
        // Past the last column the columns merge in pairs.
        u.held(0, 0, 256_000_000_000, 300_000_000_000, 0);
        assert_eq!(u.columns().0, 2_000_000_000);
        assert_eq!(u.hosts_total(0).1, 1);
        assert_eq!(u.hosts_total(1), (0.25, 1));
        assert_eq!(u.area_ns(None), 2_000_000_000);
    }
}
