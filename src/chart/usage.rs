//! Which ports were held when: the data behind the port usage map.
//!
//! An [`Observer`] that sees each (address, port) pair become held and free
//! again, and integrates the held time into a grid of port bins × time
//! columns, plus a count of allocations per port. Each port bin is split by
//! parity into two rows, because Linux's connect() searches even ports first
//! and that pattern would vanish if even and odd ports were averaged together.
//!
//! Memory is one timestamp per (address, port) and a grid of at most
//! `ROW_BLOCKS × 2` rows × `MAX_COLS` columns: when time passes the last
//! column, neighbouring columns merge and the column width doubles, so a run
//! of any length fits.
//!
//! It also carries the per-layer and per-host data of [`LayerUsage`], so a
//! run records everything the charts draw through one observer.

use super::layers::LayerUsage;
use crate::scenario::Scenario;
use crate::sim::layer::Site;
use crate::sim::Observer;

/// Port blocks along the port axis; each is drawn as an even and an odd row.
pub const ROW_BLOCKS: u32 = 64;
/// Time columns kept; more would be finer than the chart's pixels.
pub const MAX_COLS: usize = 256;

pub struct PortUsage {
    lo: u16,
    range: u32,
    /// Ports per block (even, so each row holds ports of one parity).
    block: u32,
    blocks: u32,
    col_ns: u64,
    /// Held port·ns per (row, column), row-major with `MAX_COLS` columns.
    cells: Vec<u64>,
    /// When each (address, port) became held; `FREE` when it is not.
    since: Vec<u64>,
    /// Allocations per port (all addresses), by offset into the range.
    uses: Vec<u32>,
    /// Columns in use so far (the grid's right edge).
    cols: usize,
    /// Occupancy per layer and per host.
    layers: LayerUsage,
}

const FREE: u64 = u64::MAX;

impl PortUsage {
    pub fn new(sc: &Scenario) -> PortUsage {
        let h = &sc.host;
        let range = h.range_size();
        let block = range.div_ceil(ROW_BLOCKS).next_multiple_of(2).max(2);
        let blocks = range.div_ceil(block);
        // Start near duration / MAX_COLS; an open-ended run starts at 1 ms.
        let col_ns = sc
            .duration_ns
            .map_or(1_000_000, |d| d.div_ceil(MAX_COLS as u64).max(1));
        PortUsage {
            lo: h.port_lo,
            range,
            block,
            blocks,
            col_ns,
            cells: vec![0; (blocks * 2) as usize * MAX_COLS],
            since: vec![FREE; range as usize * h.addresses.len().max(1)],
            uses: vec![0; range as usize],
            cols: 0,
            layers: LayerUsage::new(sc),
        }
    }

    /// Close every interval still open at `end_ns`, the end of the run.
    fn finish(&mut self, end_ns: u64) {
        for i in 0..self.since.len() {
            let s = self.since[i];
            if s != FREE {
                self.add(i as u32 % self.range, s, end_ns);
                self.since[i] = FREE;
            }
        }
        self.cover(end_ns);
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
        for row in self.cells.chunks_mut(MAX_COLS) {
            for c in 0..MAX_COLS / 2 {
                row[c] = row[2 * c] + row[2 * c + 1];
            }
            row[MAX_COLS / 2..].fill(0);
        }
        self.cols = self.cols.div_ceil(2);
        self.col_ns *= 2;
    }

    fn row_of(&self, idx: u32) -> usize {
        ((idx / self.block) * 2 + (idx & 1)) as usize
    }

    /// Add the held interval `[from, to)` of port `idx` to its row.
    fn add(&mut self, idx: u32, from: u64, to: u64) {
        self.cover(to);
        let row = self.row_of(idx) * MAX_COLS;
        let mut t = from;
        while t < to {
            let c = (t / self.col_ns) as usize;
            let edge = ((c as u64 + 1) * self.col_ns).min(to);
            self.cells[row + c] += edge - t;
            t = edge;
        }
    }

    /// Ports per block and blocks along the port axis.
    pub fn blocks(&self) -> (u32, u32) {
        (self.block, self.blocks)
    }

    /// First port number of the range.
    pub fn port_lo(&self) -> u16 {
        self.lo
    }

    /// Width of one time column, ns, and columns in use.
    pub fn columns(&self) -> (u64, usize) {
        (self.col_ns, self.cols)
    }

    /// Offsets of the first port of row `row` (block `row / 2`, parity
    /// `row % 2`) and of the end of its block; the row holds every second
    /// port in between.
    fn row_span(&self, row: usize) -> (u32, u32) {
        let b = row as u32 / 2;
        let first = b * self.block + (row as u32 & 1);
        (first, ((b + 1) * self.block).min(self.range))
    }

    /// Ports of the range in row `row`.
    pub fn row_ports(&self, row: usize) -> u32 {
        let (first, end) = self.row_span(row);
        end.saturating_sub(first).div_ceil(2)
    }

    /// Mean allocations per port of row `row`; `None` for an empty row.
    pub fn mean_uses(&self, row: usize) -> Option<f64> {
        let (first, end) = self.row_span(row);
        let n = self.row_ports(row);
        (n > 0).then(|| {
            let sum: u64 = (first..end)
                .step_by(2)
                .map(|i| u64::from(self.uses[i as usize]))
                .sum();
            sum as f64 / f64::from(n)
        })
    }

    /// Share of the (address, port) pairs of `row` held during column `col`,
    /// out of `addresses` source addresses.
    pub fn share(&self, row: usize, col: usize, addresses: u32) -> f64 {
        let cap = u64::from(self.row_ports(row)) * u64::from(addresses.max(1)) * self.col_ns;
        if cap == 0 {
            return 0.0;
        }
        self.cells[row * MAX_COLS + col] as f64 / cap as f64
    }

    /// Allocations of each port, by offset into the range.
    pub fn uses(&self) -> &[u32] {
        &self.uses
    }

    /// Occupancy per layer (hosts, each NAT) and per host.
    pub fn layers(&self) -> &LayerUsage {
        &self.layers
    }

    /// Total held port·ns over the run (for checks against the report).
    pub fn held_area_ns(&self) -> u128 {
        self.cells.iter().map(|&c| u128::from(c)).sum()
    }
}

/// It reads ports taken and let go, connects and failures, which every
/// engine tells in time order.
impl Observer for PortUsage {
    const EVENTS: bool = false;
    fn on_connect(&mut self, _t: u64, port: u16, _dest: u32) {
        self.uses[usize::from(port - self.lo)] += 1;
    }
    fn on_port_busy(&mut self, t: u64, addr: u32, idx: u32) {
        self.since[(addr * self.range + idx) as usize] = t;
    }
    fn on_port_free(&mut self, t: u64, addr: u32, idx: u32) {
        let i = (addr * self.range + idx) as usize;
        let from = std::mem::replace(&mut self.since[i], FREE);
        self.add(idx, from, t);
    }
    fn on_end(&mut self, t: u64) {
        self.finish(t);
        self.layers.on_end(t);
    }
    fn on_fail_at(&mut self, site: Site, t: u64, dest: u32) {
        self.layers.on_fail_at(site, t, dest);
    }
    fn on_port_busy_at(&mut self, site: Site, t: u64, addr: u32, idx: u32) {
        if site == Site::HOST0 {
            self.on_port_busy(t, addr, idx);
        }
        self.layers.on_port_busy_at(site, t, addr, idx);
    }
    fn on_port_free_at(&mut self, site: Site, t: u64, addr: u32, idx: u32) {
        if site == Site::HOST0 {
            self.on_port_free(t, addr, idx);
        }
        self.layers.on_port_free_at(site, t, addr, idx);
    }
    fn on_nat_entries(&mut self, site: Site, t: u64, entries: u64) {
        self.layers.on_nat_entries(site, t, entries);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn scenario(length: &str) -> Scenario {
        let text = format!(
            r#"
            name = "u"
            seed = 3
            {length}
            [host]
            port_range = "60000-60999"
            time_wait = "60s"
            [[destinations]]
            address = "10.0.0.5:5432"
            [traffic]
            rate = 20
            hold = "1s"
            "#
        );
        crate::scenario::load_str(&text, Path::new("u.toml"), &[]).unwrap()
    }

    #[test]
    fn held_time_matches_the_reports_mean_exactly() {
        // The grid integrates the same busy/free events the recorder does, so
        // its total held port·ns equals mean_in_use × simulated time (up to
        // the float rounding of the mean).
        let sc = scenario(r#"duration = "10m""#);
        let mut u = PortUsage::new(&sc);
        let r = crate::run_with(&sc, &mut u);
        let held = u.held_area_ns() as f64;
        let expect = r.ports.mean_in_use * r.simulated_s * 1e9;
        assert!((held - expect).abs() <= 1e-9 * expect, "{held} vs {expect}");
        assert_eq!(
            u.uses().iter().map(|&n| u64::from(n)).sum::<u64>(),
            r.established
        );
        // 1,000 ports in blocks of 16: 63 blocks, the last holding 8 ports.
        assert_eq!(u.blocks(), (16, 63));
        assert_eq!(u.row_ports(124), 4);
        assert_eq!(u.row_ports(125), 4);
    }

    #[test]
    fn an_open_ended_run_coarsens_to_fit() {
        // No duration: columns start at 1 ms and double until the run fits.
        let sc = scenario("max_connections = 20000");
        let mut u = PortUsage::new(&sc);
        let r = crate::run_with(&sc, &mut u);
        let end = (r.simulated_s * 1e9).round() as u64;
        let (w, cols) = u.columns();
        assert!(
            cols <= MAX_COLS && w * cols as u64 >= end,
            "{w} × {cols} < {end}"
        );
        let expect = r.ports.mean_in_use * r.simulated_s * 1e9;
        assert!((u.held_area_ns() as f64 - expect).abs() <= 1e-9 * expect);
    }
}
