//! Sizing a cloud NAT: what its vendor's rule counts, what the NAT
//! actually holds, and the summary's answer that puts the two side by side.
//!
//! The vendors' rules count ports or open connections: addresses × ports ÷
//! ports per host, or 55,000 (50,000) connections per address to one
//! destination. What a NAT holds is connections open *plus* ports held
//! after they close, toward each destination separately, with the bursts of
//! the arrivals on top. [`loads`] works out the expected figures (Little's
//! law at the peak rate) from the scenario, so the summary can say where
//! the rule and the simulation part ways and by how much; the simulated
//! answer itself comes from the computed fixes (the smallest number of
//! addresses, or the smallest block, with which nothing fails).

use schemars::JsonSchema;
use serde::Serialize;

use crate::scenario::Scenario;

/// The loads behind one NAT, at the peak rate.
#[derive(Debug, Clone, Default, Serialize, JsonSchema)]
pub struct Loads {
    /// Connections open at once toward the busiest destination: what a
    /// per-destination rule counts.
    pub open_per_destination: f64,
    /// Ports the NAT holds toward it, counting its hold after close.
    pub held_per_destination: f64,
    /// Ports the busiest host holds toward its busiest destination: what
    /// its block must hold.
    pub held_per_host: f64,
    /// The NAT's hold after close, in seconds.
    pub hold_after_close_s: f64,
    /// Mean connection hold, in seconds (of the busiest group).
    pub mean_hold_s: f64,
}

/// The expected loads behind NAT `index` of `sc` (its position in
/// `sc.nats`): every group (or the one host) whose path crosses it.
pub fn loads(sc: &Scenario, index: usize, horizon_s: f64) -> Loads {
    let nat = &sc.nats[index];
    // Whether a path from `at` crosses the NAT, and the NAT just before
    // it (whose outside addresses are its hosts), if any.
    let crosses = |mut at: Option<usize>| {
        let mut before = None;
        while let Some(n) = at {
            if n == index {
                return Some(before);
            }
            before = Some(n);
            at = sc.nats[n].via;
        }
        None
    };
    // Each group (or the host) crossing the NAT, how many hosts it has,
    // and over how many of the NAT's hosts its connections spread: its
    // own, or the addresses of the NAT before.
    let groups: Vec<(Scenario, f64, f64, Option<usize>)> = if sc.is_fleet() {
        (0..sc.groups.len())
            .filter_map(|g| {
                let count = f64::from(sc.groups[g].max_count());
                let up = crosses(sc.groups[g].via)?;
                let spread = up.map_or(count, |u| sc.nats[u].addresses.len() as f64);
                Some((sc.group_scenario(g), count, spread, up))
            })
            .collect()
    } else {
        match crosses(sc.via) {
            Some(up) => {
                let spread = up.map_or(1.0, |u| sc.nats[u].addresses.len() as f64);
                vec![(sc.clone(), 1.0, spread, up)]
            }
            None => Vec::new(),
        }
    };
    let mut per_dest: std::collections::HashMap<String, (f64, f64)> = Default::default();
    let mut out = Loads::default();
    // Ports each of the NAT's hosts holds per destination, by what it
    // stands for (a group's host, or the NAT before's address).
    let mut per_host: std::collections::HashMap<(usize, String), f64> = Default::default();
    for (k, (gs, count, spread, up)) in groups.iter().enumerate() {
        // Groups behind one NAT load its addresses together.
        let up = up.map_or(k, |u| groups.len() + u);
        let rate = super::analytic::peak_rate(&gs.traffic.rate, horizon_s)
            / f64::from(gs.traffic.requests_per_connection.max(1));
        let hold =
            gs.traffic.hold.mean_ns() * f64::from(gs.traffic.requests_per_connection.max(1)) / 1e9;
        let after = nat.hold_after(gs.traffic.close, gs.traffic.protocol) as f64 / 1e9;
        let total: f64 = gs
            .destinations
            .iter()
            .map(|d| d.weight)
            .sum::<f64>()
            .max(f64::MIN_POSITIVE);
        for d in &gs.destinations {
            let r = rate * d.weight / total;
            let e = per_dest.entry(d.address.clone()).or_default();
            e.0 += count * r * hold;
            e.1 += count * r * (hold + after);
            let host = per_host.entry((up, d.address.clone())).or_default();
            *host += count / spread * r * (hold + after);
            if *host > out.held_per_host {
                out.held_per_host = *host;
                out.mean_hold_s = hold;
                out.hold_after_close_s = after;
            }
        }
    }
    for (open, held) in per_dest.values() {
        out.open_per_destination = out.open_per_destination.max(*open);
        out.held_per_destination = out.held_per_destination.max(*held);
    }
    out
}
